"""Assignment 04's experiments: every qualitative claim the notebook's text makes, asserted on the
reduced configuration that grading runs, for EVERY seed it uses (``course.experiments``,
``course.health``). The full configuration is larger and shows the same more strongly; the
notebook prints its numbers.

Oracles: sampling theory, Adam's update written out (Kingma & Ba 2015, Alg. 1), BatchNorm's
std(x_hat) = sigma / sqrt(sigma^2 + eps) computed with numpy, the |x_hat| <= sqrt(N - 1) bound.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from autograder import reference as ref
from course import experiment_plots as P
from course import experiments as E
from course import health as H
from course.seeds import separated

BN_LAYER = (ref.affine_bn_relu_forward, ref.affine_bn_relu_backward)

#: Tests that train networks over three seeds: a minute or more of CPU, so ``make test-fast``
#: leaves them out (the project's marker for slow tests is ``nbgrader``).
SLOW = pytest.mark.nbgrader


@pytest.fixture(scope="module")
def data():
    return E.digits_data()


@pytest.fixture(scope="module")
def cfg():
    return E.config(reduced=True)


@pytest.fixture(scope="module")
def reduced_sweep(data, cfg):
    return E.weight_scale_sweep(data, cfg, BN_LAYER)


def _per_seed(runs, name):
    """{seed: value} of one attribute, for assertion messages that name the seed."""
    return {r.seed: getattr(r, name) for r in runs.runs}


# --------------------------------------------------------------------------- configuration
def test_config_follows_nbgrader_execution_and_keeps_three_seeds(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    full = E.config()
    assert len(full.weight_scales) >= 7 and len(full.hidden_dims) >= 6
    assert min(full.weight_scales) == pytest.approx(1e-4) and max(full.weight_scales) == pytest.approx(1)
    assert list(full.weight_scales) == sorted(full.weight_scales)
    for s in (1e-4, 1e-3, 1e-2, full.batch_size_weight_scale):
        assert any(np.isclose(s, full.weight_scales)), f"the notebook reads the sweep at s = {s}"
    assert full.batch_sizes == (5, 10, 50, 200)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    reduced = E.config()
    assert reduced != full and reduced.batch_sizes == full.batch_sizes
    assert reduced.hidden_dims == full.hidden_dims
    assert len(full.seeds) >= 3 and reduced.seeds == full.seeds, "every claim runs over >= 3 seeds"


def test_digits_data_is_standardized_on_the_training_set(data):
    from sklearn.preprocessing import StandardScaler

    from course.data import load_digits
    split = load_digits()
    scaler = StandardScaler().fit(split.X_train)
    assert np.allclose(data["X_val"], scaler.transform(split.X_val))
    assert np.allclose(data["X_test"], scaler.transform(split.X_test))
    assert np.allclose(data["X_train"].mean(0), 0, atol=1e-12)


def test_experiments_are_deterministic_and_seeds_differ(data, cfg):
    a = E.train(data, cfg, weight_scale=1e-2, bn_layer=BN_LAYER, epochs=1)
    b = E.train(data, cfg, weight_scale=1e-2, bn_layer=BN_LAYER, epochs=1)
    assert a.loss_history == b.loss_history and a.val_acc_history == b.val_acc_history
    other = E.train(data, replace(cfg, seed=1), weight_scale=1e-2,
                    bn_layer=BN_LAYER, epochs=1)
    assert other.loss_history != a.loss_history, "the seed must change the weights and the order"


@SLOW
def test_reported_accuracies_are_the_final_networks_on_the_test_split(data, cfg, reduced_sweep):
    run = E.run_at(reduced_sweep["batchnorm"], 0.1).first
    pred = np.argmax(run.model.loss(data["X_test"]), axis=1)
    assert run.test_acc == pytest.approx(np.mean(pred == data["y_test"]), abs=0)
    pred = np.argmax(run.model.loss(data["X_train"]), axis=1)
    assert run.train_acc == pytest.approx(np.mean(pred == data["y_train"]), abs=0)


# --------------------------------------------------------------------------- section 4
@SLOW
def test_at_the_smallest_weight_scale_batchnorm_trains_and_the_baseline_stays_at_chance(reduced_sweep):
    base, bn = reduced_sweep["baseline"][0], reduced_sweep["batchnorm"][0]
    assert base.weight_scale == bn.weight_scale == pytest.approx(1e-4)
    assert base.high("test_acc") < 0.15, _per_seed(base, "test_acc")
    for b, n in zip(base.runs, bn.runs, strict=True):
        assert n.test_acc - b.test_acc >= 0.2, (b.seed, b.test_acc, n.test_acc)
    assert separated(base.values("test_acc"), bn.values("test_acc"))


@SLOW
def test_large_weights_explode_the_baselines_logits_and_saturate_batchnorms_last_layer(reduced_sweep):
    base, bn = E.run_at(reduced_sweep["baseline"], 1.0), E.run_at(reduced_sweep["batchnorm"], 1.0)
    assert base.low("initial_loss") > 1e3, _per_seed(base, "initial_loss")
    # only the unnormalized last layer is left to inflate BN's scores: well above log 10, far
    # below the baseline's
    assert 2 * np.log(10) < bn.low("initial_loss") and bn.high("initial_loss") < 100
    at_01 = E.run_at(reduced_sweep["batchnorm"], 0.1).values("initial_loss")
    assert np.allclose(at_01, np.log(10), atol=0.4), at_01


@SLOW
def test_small_weights_get_gradients_far_below_adams_eps_and_stay_at_chance(data, cfg, reduced_sweep):
    runs = E.run_at(reduced_sweep["baseline"], 1e-3)
    for run in runs.runs:
        report = H.adam_small_weights(run, data, cfg)
        assert np.all(report["grad_W"] < 1e-3 * report["eps"]), (run.seed, report["grad_W"])
        # Adam's first step is lr * g / (g + eps): with g << eps that is ~ lr * g / eps
        np.testing.assert_allclose(report["step_W"],
                                   cfg.learning_rate * report["grad_W"] / report["eps"], rtol=1e-3)
        assert run.test_acc < 0.15, (run.seed, run.test_acc)
    # the notebook's table (the first seed): the first layers do not move, the later biases do
    report = H.adam_small_weights(runs.first, data, cfg)
    assert np.all(report["rel_change_W"][:3] < 1e-3), report["rel_change_W"]
    assert report["change_b"][3:].max() > 1e-3 > report["change_b"][0], report["change_b"]


def test_batchnorm_output_std_is_sigma_over_sqrt_sigma2_plus_eps(data, cfg):
    net = E.make_net(cfg, 1e-4, BN_LAYER)
    X = data["X_train"][:50]
    got = H.bn_output_std(net, X, ref.batchnorm_forward)
    for layer, a in enumerate(net.activations(X, mode="train")["pre"]):
        var = a.var(axis=0)
        assert got["affine"][layer] == pytest.approx(np.sqrt(var).mean(), rel=1e-12)
        assert got["batchnorm"][layer] == pytest.approx(np.mean(np.sqrt(var / (var + 1e-5))), rel=1e-9)


def test_batchnorm_is_scale_free_only_while_the_variance_is_far_above_eps(data, cfg):
    X, y = data["X_train"][:cfg.batch_size], data["y_train"][:cfg.batch_size]
    for seed in cfg.seeds:
        c = replace(cfg, seed=seed)
        tiny = H.bn_output_std(E.make_net(c, 1e-4, BN_LAYER), X, ref.batchnorm_forward)["batchnorm"]
        ok = H.bn_output_std(E.make_net(c, 1e-2, BN_LAYER), X, ref.batchnorm_forward)["batchnorm"]
        assert 0.1 < tiny[0] < 0.4 and np.all(tiny[2:] < 0.02), (seed, tiny)
        assert np.all(np.diff(tiny) < 0), (seed, "the deficit compounds layer by layer", tiny)
        assert np.all(ok > 0.99), (seed, ok)
        stepped = H.one_adam_step(E.make_net(c, 1e-4, BN_LAYER), X, y, cfg.learning_rate)
        after = H.bn_output_std(stepped, X, ref.batchnorm_forward)["batchnorm"]
        assert np.all(after > 0.95), (seed, "one Adam step leaves the eps regime", after)


def test_one_adam_step_is_lr_times_g_over_abs_g_plus_eps(data, cfg):
    # Kingma & Ba (2015), Alg. 1 at t = 1: m_hat = g, sqrt(v_hat) = |g|
    X, y = data["X_train"][:cfg.batch_size], data["y_train"][:cfg.batch_size]
    net = E.make_net(cfg, 1e-2, BN_LAYER)
    before = {k: v.copy() for k, v in net.params.items()}
    _, grads = net.loss(X, y)
    H.one_adam_step(net, X, y, 3e-3)
    for k, g in grads.items():
        np.testing.assert_allclose(before[k] - net.params[k], 3e-3 * g / (np.abs(g) + 1e-8),
                                   rtol=1e-9, atol=1e-15, err_msg=k)


@SLOW
def test_the_first_epoch_is_lost_from_small_weights_but_the_end_catches_up(reduced_sweep):
    small, good = E.run_at(reduced_sweep["batchnorm"], 1e-4), E.run_at(reduced_sweep["batchnorm"], 0.1)
    first = lambda runs: np.array([r.val_acc_history[0] for r in runs.runs])  # noqa: E731
    assert separated(first(small), first(good)) and first(small).max() < first(good).min()


# --------------------------------------------------------------------------- sections 5 to 7
@SLOW
def test_batchnorm_trains_at_a_learning_rate_where_the_baseline_is_at_chance(data, cfg):
    sweep = E.learning_rate_sweep(data, cfg, BN_LAYER)
    base, bn = sweep["baseline"][-1], sweep["batchnorm"][-1]
    assert base.learning_rate == bn.learning_rate == pytest.approx(0.1)
    assert base.high("test_acc") < 0.25 and bn.low("test_acc") > 0.5, (
        _per_seed(base, "test_acc"), _per_seed(bn, "test_acc"))


@SLOW
def test_single_class_batches_leave_batchnorm_at_chance_while_the_baseline_learns(data, cfg, reduced_sweep):
    single = E.single_class_experiment(data, cfg, BN_LAYER)
    iid = E.iid_control(data, cfg, BN_LAYER, reduced_sweep)
    assert single["batchnorm"].high("test_acc") < 0.2, _per_seed(single["batchnorm"], "test_acc")
    assert single["baseline"].low("test_acc") > 0.6, _per_seed(single["baseline"], "test_acc")
    assert iid["batchnorm"].low("test_acc") > 0.8, "the i.i.d. control trains"
    for name in single:  # the control has the single-class runs' settings
        assert iid[name].batch_size == single[name].batch_size
        assert len(iid[name].first.val_acc_history) == len(single[name].first.val_acc_history)


@pytest.fixture(scope="module")
def batch_size_runs(data, cfg):
    sweep = E.batch_size_sweep(data, cfg, BN_LAYER)
    return sweep, E.mode_gaps(sweep, data["X_test"], data["y_test"], ref.mode_accuracies)


@SLOW
def test_every_batch_size_gets_the_same_number_of_updates(cfg, batch_size_runs):
    sweep, _ = batch_size_runs
    for runs in sweep.values():
        assert {r.updates for seeds in runs.values() for r in seeds.runs} == {cfg.batch_size_updates}


@SLOW
def test_the_train_test_mode_gap_grows_as_the_batch_shrinks_for_every_seed(batch_size_runs):
    _, gaps = batch_size_runs
    gap = {B: np.abs(train - test) for B, (train, test) in gaps["batchnorm"].items()}
    assert np.all(gap[5] > 0.05) and np.all(gap[200] < 0.03), gap
    assert np.all(gap[5] > gap[50]) and np.all(gap[10] > gap[200]), gap


@SLOW
def test_mode_gaps_hands_the_function_deep_copies(batch_size_runs, data):
    sweep, _ = batch_size_runs
    run = sweep["batchnorm"][5].first
    before = [p["running_mean"].copy() for p in run.model.bn_params]

    def writes_in_place(params, bn_params, X, y, batch_size):
        for p in bn_params:
            p["running_mean"] *= 0.0  # what a shallow copy would let through to the network
        return 0.5, 0.5

    E.mode_gaps({"batchnorm": {5: sweep["batchnorm"][5]}, "baseline": {}}, data["X_test"],
                data["y_test"], writes_in_place)
    for b, p in zip(before, run.model.bn_params, strict=True):
        np.testing.assert_array_equal(b, p["running_mean"])


def test_x_hat_is_bounded_by_sqrt_n_minus_1_within_a_batch():
    # sum x_hat = 0 and sum x_hat^2 = N (eps = 0) force |x_hat| <= sqrt(N - 1); the bound is
    # reached by one outlier among N - 1 equal values
    for N in (2, 5, 12):
        x = np.zeros((N, 1))
        x[0] = 1.0
        _, cache = ref.batchnorm_forward(x, np.ones(1), np.zeros(1), {"mode": "train", "eps": 0.0})
        assert np.max(np.abs(cache["x_hat"])) == pytest.approx(np.sqrt(N - 1), rel=1e-12)
        r = np.random.default_rng(N)
        for _ in range(50):
            _, cache = ref.batchnorm_forward(r.standard_cauchy((N, 3)), np.ones(3), np.zeros(3),
                                             {"mode": "train", "eps": 0.0})
            assert np.max(np.abs(cache["x_hat"])) <= np.sqrt(N - 1) * (1 + 1e-12)


def test_batch_statistics_spread_matches_sampling_theory():
    # the unit is the input column itself (w = e_0). Normal data: std(mean)/sigma = sqrt(1/B) and
    # std(biased var)/sigma^2 = sqrt(2 (B - 1)) / B (chi-square); Laplace data (kurtosis 6): the
    # variance's spread is sqrt(5/B) for large B. Sampling theory, not our code.
    r = np.random.default_rng(3)
    w, b = np.array([[1.0], [0.0]]), np.zeros(1)
    normal = E.batch_statistics_spread(r.normal(size=(200_000, 2)), w, b, [4, 16, 100],
                                       n_batches=8000)
    assert normal["kurtosis"] == pytest.approx(3, rel=0.05)
    for B in (4, 16, 100):
        assert normal["mean"][B] == pytest.approx(1 / np.sqrt(B), rel=0.05), B
        assert normal["var"][B] == pytest.approx(np.sqrt(2 * (B - 1)) / B, rel=0.06), B
    laplace = E.batch_statistics_spread(r.laplace(size=(400_000, 2)), w, b, [400], n_batches=8000)
    assert laplace["kurtosis"] == pytest.approx(6, rel=0.05)
    assert laplace["var"][400] == pytest.approx(np.sqrt(5 / 400), rel=0.08)
    with pytest.raises(ValueError, match="batch size"):
        E.batch_statistics_spread(r.normal(size=(10, 2)), w, b, [1])
    with pytest.raises(ValueError, match="unit"):
        E.batch_statistics_spread(r.normal(size=(10, 2)), w, b, [4], unit=3)


def test_single_class_batches_hold_one_class_each_and_come_in_random_order(data):
    s = E.single_class_batches(data, 50, seed=0)
    batches = s["y_train"].reshape(-1, 50)
    assert all(len(np.unique(batch)) == 1 for batch in batches), "every batch holds one class"
    assert len(batches) == sum(np.sum(data["y_train"] == c) // 50 for c in range(10))
    assert len(np.unique(batches[:10, 0])) > 3, "the classes are interleaved, not sorted"
    rows = {tuple(row) for row in data["X_train"]}
    assert all(tuple(row) in rows for row in s["X_train"]), "only training examples"
    assert s["X_val"] is data["X_val"]
    with pytest.raises(ValueError, match="batch_size"):
        E.single_class_batches(data, 1000)


# --------------------------------------------------------------------------- sections 8 and 10
@pytest.fixture(scope="module")
def ics(data, cfg):
    return H.record_training(data, cfg, BN_LAYER, ref.batchnorm_forward, cfg.batch_size_weight_scale)


@SLOW
def test_without_batchnorm_the_layer_input_shifts_and_with_it_the_relus_input_does_not(ics):
    base, bn = ics["baseline"], ics["batchnorm"]
    # baseline: the ReLU's input is the affine output; its spread grows and its mean moves
    np.testing.assert_array_equal(base.input_scale, base.affine_scale)
    assert np.all(base.input_scale[:, -1] > 1.5 * base.input_scale[:, 0]), base.input_scale[:, [0, -1]]
    assert np.all(base.input_shift[:, -1] > 0.2), base.input_shift[:, -1]
    # BatchNorm: the ReLU sees spread ~gamma = 1 and a mean ~beta that hardly moves ...
    assert np.all(np.abs(bn.input_scale - 1) < 0.01), bn.input_scale
    assert np.all(bn.input_shift < 0.05), bn.input_shift
    # ... while BN's own input still drifts, more than what the ReLU sees
    assert np.all(bn.affine_shift[:, -1] > 2 * bn.input_shift[:, -1]), bn.affine_shift[:, -1]
    assert np.all(bn.affine_scale[:, -1] > bn.affine_scale[:, 0]), bn.affine_scale[:, [0, -1]]


@SLOW
def test_the_recorded_shift_is_measured_from_initialization(ics):
    for t in ics.values():
        assert t.probe_steps[0] == 0 and np.all(np.diff(t.probe_steps) > 0)
        np.testing.assert_array_equal(t.input_shift[:, 0], 0.0)
        np.testing.assert_array_equal(t.affine_shift[:, 0], 0.0)


@pytest.fixture(scope="module")
def health(data, cfg):
    return H.record_training(data, cfg, BN_LAYER, ref.batchnorm_forward, 1e-3)


@SLOW
def test_health_gradients_lie_below_adams_eps_without_batchnorm_and_far_above_with_it(health, cfg):
    n = len(cfg.seeds)
    for t in health.values():
        assert t.update_ratio.shape == (n, cfg.record_steps, len(cfg.hidden_dims) + 1)
    base = [np.median(g[g > 0]) for g in health["baseline"].grad_init]
    bn = [np.median(g[g > 0]) for g in health["batchnorm"].grad_init]
    assert max(base) < 1e-3 * H.ADAM_EPS, base
    assert min(bn) > 1e3 * H.ADAM_EPS, bn


@SLOW
def test_health_update_ratios_freeze_the_baselines_first_layers_and_start_high_with_batchnorm(health, cfg):
    base, bn = np.log10(health["baseline"].update_ratio), np.log10(health["batchnorm"].update_ratio)
    # the baseline's W1-W3 start near 1e-6, never reach 1e-2 and fade again (every seed) ...
    assert np.all(base[:, 0, :3] < -5.5), base[:, 0, :3]
    assert np.all(base[:, :, :3] < -2.3), base[:, :, :3].max(axis=1)
    assert np.all(base[:, -1, :3] < base[:, :, :3].max(axis=1) - 0.5), "they fade"
    # ... while W4-W7 jump up in the first steps (they fit the constant of the later biases)
    assert np.all(base[:, :, 3:].max(axis=1) > -2), base[:, :, 3:].max(axis=1)
    # with BatchNorm the first step changes W by about lr / s = 3 times its size ...
    expected = np.log10(cfg.learning_rate / 1e-3)
    assert np.all(np.abs(bn[:, 0, :] - expected) < 0.3), bn[:, 0, :]
    # ... and the ratio falls as the weights grow
    assert np.all(bn[:, -1, :] < bn[:, 0, :] - 1), bn[:, [0, -1], :]
    assert np.all(health["batchnorm"].test_acc > health["baseline"].test_acc + 0.3)


def test_update_ratio_is_the_std_of_the_step_over_the_std_of_the_weights(data, cfg):
    one = replace(cfg, seeds=(0,), record_steps=1)
    rec = H.record_training(data, one, BN_LAYER, ref.batchnorm_forward, 1e-2)
    net = E.make_net(one, 1e-2, BN_LAYER)
    idx = np.random.default_rng(0).permutation(len(data["y_train"]))[:one.batch_size]
    _, grads = net.loss(data["X_train"][idx], data["y_train"][idx])
    for i in range(1, net.num_layers + 1):
        g = grads[f"W{i}"]
        step = one.learning_rate * g / (np.abs(g) + H.ADAM_EPS)  # Adam's first step, written out
        assert rec["batchnorm"].update_ratio[0, 0, i - 1] == pytest.approx(
            np.std(step) / np.std(net.params[f"W{i}"]), rel=1e-9)


def test_record_training_rejects_a_layer_that_is_not_hidden(data, cfg):
    with pytest.raises(ValueError, match="hidden layer"):
        H.record_training(data, cfg, BN_LAYER, ref.batchnorm_forward, 0.1, layer=7)
    with pytest.raises(ValueError, match="probe_every"):
        H.record_training(data, cfg, BN_LAYER, ref.batchnorm_forward, 0.1, probe_every=0)


# --------------------------------------------------------------------------- figures
@SLOW
def test_plots_are_fully_labelled(data, cfg, reduced_sweep, batch_size_runs, ics, health):
    import matplotlib
    matplotlib.use("Agg")
    spread = {"sigma": 1.0, "kurtosis": 5.0, "mean": {5: 0.4, 50: 0.1}, "var": {5: 0.9, 50: 0.3}}
    runs = reduced_sweep["batchnorm"]
    figs = [P.plot_weight_scale(reduced_sweep), P.plot_spread(spread),
            P.plot_batch_size(batch_size_runs[1]),
            P.plot_single_class({"batchnorm": runs[0]}, {"batchnorm": runs[0]}),
            P.plot_learning_rate({"batchnorm": runs}),
            P.plot_activations({"baseline": reduced_sweep["baseline"][0].first.model,
                                "BatchNorm": runs[0].first.model}, data["X_val"]),
            P.plot_layer_input(ics), P.plot_health(health, 1e-3, H.ADAM_EPS)]
    for fig in figs:
        for ax in fig.axes:
            assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
        assert any(ax.get_legend() for ax in fig.axes), "a figure of several lines has a legend"


def test_histogram_layer_colours_are_distinct_and_not_yellow():
    from matplotlib.colors import to_rgb

    from course.plots import LAYER_COLORS
    rgb = np.array([to_rgb(c) for c in LAYER_COLORS])
    distances = np.linalg.norm(rgb[:, None] - rgb[None], axis=-1)[np.triu_indices(len(rgb), 1)]
    assert distances.min() > 0.25, f"two layer colours are too close: {distances.min():.2f}"
    assert "#F0E442" not in LAYER_COLORS, "Okabe-Ito yellow is unreadable on white"
