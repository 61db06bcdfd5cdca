"""course/residual.py, modern_training.py and modern_experiments.py: notebook 06's support code.

Oracles: centered finite differences of the whole network's loss (``ResidualNet``, the
branch-end-norm block), torch autograd on the same residual stack, hand-worked update rules, and
invariants (a folded network equals the unfolded one; swapping a block's normalization for the
identity gives x + f(x)). The layers passed in are the reference's, as a student's correct ones.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from autograder import reference as R
from course import modern_experiments as E
from course import modern_training
from course.gradcheck import gradient_error
from course.residual import Block, ResidualNet

NORM = (R.rmsnorm_forward, R.rmsnorm_backward)
PRE = Block("pre", R.residual_block_forward, R.residual_block_backward, "pre", final_norm=True)
POST = Block("post", R.residual_block_forward, R.residual_block_backward, "post")


def _tiny(block, seed=0, **kw):
    return ResidualNet(2, block, NORM, width=3, hidden=4, input_dim=5, num_classes=3, seed=seed,
                       **kw)


def _batch(seed=1):
    r = np.random.default_rng(seed)
    return r.normal(size=(6, 5)), r.integers(0, 3, size=6)


@pytest.mark.parametrize("block", [PRE, POST, E.branch_norm_block(*NORM)], ids=["pre", "post", "branch-end"])
def test_residual_net_gradients_match_finite_differences(block):
    net = _tiny(block, gamma_init=0.7)
    X, y = _batch()
    _, grads = net.loss(X, y)
    assert set(grads) == set(net.params)
    for key, value in net.params.items():
        def loss_of(v, key=key):
            saved = net.params[key]
            net.params[key] = v
            try:
                return np.array(net.loss(X, y)[0])
            finally:
                net.params[key] = saved

        err = gradient_error(grads[key], loss_of, value.copy(), np.array(1.0))
        assert err < 1e-6, f"{block.name}: d{key} relative error {err:.1e}"


def test_residual_net_matches_torch_autograd_on_a_pre_norm_stack():
    net = _tiny(PRE, seed=3)
    X, y = _batch(4)
    loss, grads = net.loss(X, y)
    t = {k: torch.tensor(v, requires_grad=True) for k, v in net.params.items()}
    h = torch.from_numpy(X) @ t["W_in"] + t["b_in"]
    for layer in (1, 2):
        z = torch.nn.functional.rms_norm(h, (3,), weight=t[f"gamma_{layer}"], eps=1e-6)
        h = h + torch.relu(z @ t[f"w1_{layer}"] + t[f"b1_{layer}"]) @ t[f"w2_{layer}"] + t[f"b2_{layer}"]
    h = torch.nn.functional.rms_norm(h, (3,), weight=t["gamma_final"], eps=1e-6)
    t_loss = torch.nn.functional.cross_entropy(h @ t["W_out"] + t["b_out"], torch.from_numpy(y))
    t_loss.backward()
    assert loss == pytest.approx(t_loss.item(), rel=1e-12)
    for k, g in grads.items():
        np.testing.assert_allclose(g, t[k].grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=k)


def test_zero_gamma_makes_every_branch_end_block_the_identity():
    net = _tiny(E.branch_norm_block(*NORM), gamma_init=0.0)
    X, _ = _batch()
    scores, _ = net.forward(X)
    np.testing.assert_allclose(scores, (X @ net.params["W_in"] + net.params["b_in"])
                               @ net.params["W_out"] + net.params["b_out"], rtol=1e-12)


def test_swapping_the_norm_for_the_identity_gives_x_plus_f_of_x():
    block = E.swapped_block(PRE, E.no_norm(), "none")
    r = np.random.default_rng(5)
    x, w1, b1, w2, b2 = (r.normal(size=s) for s in ((4, 3), (3, 5), (5,), (5, 3), (3,)))
    out, _ = block.forward(x, w1, b1, w2, b2, {"gamma": np.ones(3)}, "pre")
    np.testing.assert_allclose(out, x + np.maximum(x @ w1 + b1, 0) @ w2 + b2, rtol=1e-12)
    assert R.residual_block_forward.__globals__["rmsnorm_forward"] is R.rmsnorm_forward


def test_a_block_that_does_not_call_rmsnorm_by_name_cannot_be_swapped():
    def inline(x, w1, b1, w2, b2, norm_param, placement):
        z = x / np.sqrt(np.mean(x * x, axis=1, keepdims=True) + 1e-6) * norm_param["gamma"]
        return x + np.maximum(z @ w1 + b1, 0) @ w2 + b2, {}

    with pytest.raises(ValueError, match="rmsnorm_forward"):
        E.swapped_block(Block("inline", inline, R.residual_block_backward, "pre"), E.no_norm(), "x")


def test_train_applies_sgd_with_weight_decay_on_the_weight_matrices_only():
    data = E.digits_data()
    net = E._bn_net((R.batchnorm_forward, R.batchnorm_backward), seed=0)
    before = {k: v.copy() for k, v in net.params.items()}
    probe = E._bn_net((R.batchnorm_forward, R.batchnorm_backward), seed=0)
    idx = next(modern_training._batches(len(data["y_train"]), 64, 1, np.random.default_rng(1000)))
    _, grads = probe.loss(data["X_train"][idx], data["y_train"][idx])
    E.train(net, data, name="x", lr=0.1, steps=1, batch_size=64, seed=0, rule="sgd",
            weight_decay=0.01)
    for k, w in before.items():
        decay = 0.01 * w if k.startswith("W") else 0.0
        np.testing.assert_allclose(net.params[k], w - 0.1 * (grads[k] + decay), rtol=1e-12,
                                   atol=1e-14, err_msg=k)


def test_highest_stable_is_the_top_of_an_unbroken_run_of_stable_rates():
    def run(losses, diverged=False):
        return E.Run("x", 0, 0.0, loss_history=losses, diverged=diverged)

    good, bad = run([2.3] + [0.5] * 20), run([2.3] + [2.0] * 20)
    sweep = {"a": {1e-3: [good, good], 1e-2: [good, bad], 1e-1: [bad, good]}}
    assert E.highest_stable(sweep) == {"a": [1e-2, 1e-3]}
    assert not E.stable(run([2.3, 0.1], diverged=True))


def test_steps_to_reads_the_recorded_test_accuracy():
    r = E.Run("x", 0, 0.0, trace={"eval_step": [0, 5, 10], "test_acc": [0.1, 0.7, 0.9]})
    assert E.steps_to(r, 0.8) == 10 and E.steps_to(r, 0.95) == -1


def test_a_diverging_run_stops_and_is_marked():
    data = E.digits_data()
    net = ResidualNet(2, E.swapped_block(PRE, E.no_norm(), "none"), E.no_norm(), width=8,
                      hidden=8)
    run = E.train(net, data, name="x", lr=30.0, steps=50, batch_size=32, seed=0)
    assert run.diverged and len(run.loss_history) < 50 and np.isnan(run.test_acc)


def test_fold_network_equals_the_unfolded_network_in_test_mode():
    data = E.digits_data()
    cfg = dataclasses.replace(E.config(reduced=True), fold_steps=10)
    net = E.trained_bn_net(data, cfg, (R.batchnorm_forward, R.batchnorm_backward), seed=0)
    before = {k: v.copy() for k, v in net.params.items()}
    folded = E.fold_network(net, R.fold_batchnorm)
    np.testing.assert_allclose(folded.loss(data["X_test"]), net.loss(data["X_test"]),
                               rtol=1e-10, atol=1e-12)
    assert folded.bn_params == [] and all(np.array_equal(net.params[k], v) for k, v in before.items())


def test_the_reduced_configuration_keeps_seeds_depths_and_learning_rates():
    full, reduced = E.config(reduced=False), E.config(reduced=True)
    assert len(full.seeds) >= 3
    for name in ("seeds", "init_depths", "warmup_depth", "warmup_lr", "sweep_lrs", "sweep_depth",
                 "zero_depths", "zero_lr", "si_lr", "si_weight_decay"):
        assert getattr(full, name) == getattr(reduced, name), name
    assert reduced.warmup_steps < full.warmup_steps and reduced.sweep_steps < full.sweep_steps


def test_needs_names_the_unfinished_exercise():
    with pytest.raises(NotImplementedError, match="no_such_exercise"):
        E.needs("no_such_exercise")
