"""course.solver: update rules, minibatches, histories, reproducibility, divergence, silence.

Oracles we did not write: ``torch.optim.SGD`` (momentum) and ``torch.optim.Adam`` stepping on the
same gradients, hand-worked accuracies, and invariants of the minibatch schedule (every epoch a
permutation, every batch full).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from autograder import reference as R
from course.data import load_digits
from course.nets import FullyConnectedNet
from course.solver import Solver, TrainingDiverged, adam, sgd, sgd_momentum


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def _net(bn=False, hidden=(100, 100), seed=0, weight_scale=5e-2):
    kw = {"normalization": "batchnorm",
          "bn_layer": (R.affine_bn_relu_forward, R.affine_bn_relu_backward)} if bn else {}
    return FullyConnectedNet(list(hidden), 64, 10, weight_scale=weight_scale, seed=seed, **kw)


class Recorder:
    """A stub model: zero gradients, scores = the first 3 columns of X; records every minibatch."""

    def __init__(self):
        self.params = {"w": np.zeros(3)}
        self.batches = []

    def loss(self, X, y=None):
        if y is None:
            return X[:, :3]
        self.batches.append(X[:, 0].astype(int))
        return 1.0, {"w": np.zeros(3)}


# --------------------------------------------------------------------------- update rules
def _torch_steps(opt_cls, w0, grads, **kw):
    p = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    opt = opt_cls([p], **kw)
    out = []
    for g in grads:
        p.grad = torch.from_numpy(g.copy())
        opt.step()
        out.append(p.detach().numpy().copy())
    return out


def _our_steps(rule, w0, grads, config):
    w, out = w0.copy(), []
    for g in grads:
        g0, w_before = g.copy(), w.copy()
        w, config = rule(w, g, config)
        np.testing.assert_array_equal(g, g0)  # the gradient is not modified
        assert not np.shares_memory(w, w_before)  # a new array: the old one is left alone
        out.append(w.copy())
    return out


def _problem(seed):
    r = np.random.default_rng(seed)
    return r.normal(size=(4, 3)), [r.normal(size=(4, 3)) for _ in range(4)]


def test_sgd_momentum_matches_torch_sgd_with_momentum():
    w0, grads = _problem(0)
    ours = _our_steps(sgd_momentum, w0, grads, {"learning_rate": 0.1, "momentum": 0.9})
    theirs = _torch_steps(torch.optim.SGD, w0, grads, lr=0.1, momentum=0.9)
    for step, (a, b) in enumerate(zip(ours, theirs, strict=True), start=1):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=f"step {step}")


def test_sgd_momentum_follows_torch_when_the_learning_rate_decays():
    # Under decay PyTorch's form (v = mu v + g; w -= lr v) and Sutskever's (v = mu v - lr g;
    # w += v) differ: PyTorch rescales the whole velocity by the new rate. We document PyTorch's.
    w0, grads = _problem(3)
    rates = [0.1, 0.05, 0.025, 0.0125]
    config = {"momentum": 0.9}
    w = w0.copy()
    p = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    opt = torch.optim.SGD([p], lr=rates[0], momentum=0.9)
    for lr, g in zip(rates, grads, strict=True):
        config["learning_rate"] = lr
        w, config = sgd_momentum(w, g, config)
        opt.param_groups[0]["lr"] = lr
        p.grad = torch.from_numpy(g.copy())
        opt.step()
        np.testing.assert_allclose(w, p.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_adam_matches_torch_adam():
    w0, grads = _problem(1)
    config = {"learning_rate": 0.01, "beta1": 0.8, "beta2": 0.99, "eps": 1e-8}
    ours = _our_steps(adam, w0, grads, config)
    theirs = _torch_steps(torch.optim.Adam, w0, grads, lr=0.01, betas=(0.8, 0.99), eps=1e-8)
    for step, (a, b) in enumerate(zip(ours, theirs, strict=True), start=1):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13, err_msg=f"step {step}")
    assert config["t"] == 4


def test_sgd_matches_torch_sgd_and_first_adam_step_is_lr_sign():
    w0, grads = _problem(2)
    ours = _our_steps(sgd, w0, grads, {"learning_rate": 0.05})
    theirs = _torch_steps(torch.optim.SGD, w0, grads, lr=0.05)
    np.testing.assert_allclose(ours[-1], theirs[-1], rtol=1e-12)
    # Kingma & Ba, Sec. 2.1: after bias correction the first step is lr * g / (|g| + eps')
    w1, _ = adam(w0, grads[0], {"learning_rate": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8})
    np.testing.assert_allclose(w0 - w1, 0.01 * np.sign(grads[0]), rtol=1e-6)


def test_update_rules_keep_float32():
    w = np.ones(5, dtype=np.float32)
    g = np.full(5, 0.5, dtype=np.float32)
    for rule, cfg in [(sgd, {"learning_rate": 0.1}),
                      (sgd_momentum, {"learning_rate": 0.1, "momentum": 0.9}),
                      (adam, {"learning_rate": 0.1, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8})]:
        assert rule(w, g, cfg)[0].dtype == np.float32, rule.__name__


# --------------------------------------------------------------------------- training
@pytest.mark.parametrize(
    "rule, lr, bn",
    [("adam", 1e-3, False), ("sgd_momentum", 1e-2, False), ("adam", 1e-3, True)],
)
def test_small_net_learns_digits(digits, rule, lr, bn):
    solver = Solver(_net(bn), digits, update_rule=rule, optim_config={"learning_rate": lr},
                    batch_size=50, num_epochs=5).train()
    assert solver.best_val_acc > 0.9, solver.val_acc_history
    assert solver.val_acc_history[-1] > 0.9, solver.val_acc_history
    assert solver.loss_history[-1] < 0.5 * solver.loss_history[0]


def _run(digits, seed, bn=False, rule="sgd_momentum"):
    return Solver(_net(bn), digits, update_rule=rule, batch_size=64, num_epochs=3,
                  num_train_samples=300, seed=seed).train()


@pytest.mark.parametrize("bn", [False, True])
def test_same_seed_same_history_different_seed_different(digits, bn):
    a, b, c = _run(digits, 3, bn), _run(digits, 3, bn), _run(digits, 4, bn)
    assert a.loss_history == b.loss_history
    assert a.train_acc_history == b.train_acc_history
    assert a.val_acc_history == b.val_acc_history
    for k in a.model.params:
        assert np.array_equal(a.model.params[k], b.model.params[k]), k
        assert np.array_equal(a.best_params[k], b.best_params[k]), k
    for p, q in zip(a.model.bn_params, b.model.bn_params, strict=True):
        assert np.array_equal(p["running_mean"], q["running_mean"])
        assert np.array_equal(p["running_var"], q["running_var"])
    assert a.loss_history != c.loss_history
    assert not np.array_equal(a.model.params["W1"], c.model.params["W1"])


def test_training_twice_continues_the_same_run(digits):
    once = Solver(_net(), digits, num_epochs=2, batch_size=100, lr_decay=0.5, seed=1).train()
    twice = Solver(_net(), digits, num_epochs=1, batch_size=100, lr_decay=0.5, seed=1)
    twice.train().train()
    assert once.loss_history == twice.loss_history
    assert once.val_acc_history == twice.val_acc_history
    assert twice.epoch == 2
    assert all(c["learning_rate"] == 1e-2 * 0.5**2 for c in twice.optim_configs.values())


def test_histories_lengths_and_best_values(digits):
    """Four epochs, one ``train()`` call each (the same run: see the test above), with the
    parameters copied after every epoch: ``best_params`` is the copy of the best epoch's."""
    n = len(digits.y_train)
    s = Solver(_net(), digits, batch_size=50, num_epochs=1, num_train_samples=None)
    after_epoch = []
    for _ in range(4):
        s.train()
        after_epoch.append({k: v.copy() for k, v in s.model.params.items()})
    assert len(s.loss_history) == 4 * (n // 50)
    assert len(s.train_acc_history) == len(s.val_acc_history) == 4
    assert s.best_val_acc == max(s.val_acc_history)
    assert s.best_train_acc == max(s.train_acc_history)
    best_epoch = s.val_acc_history.index(s.best_val_acc)  # the first one on ties, as documented
    for k, v in s.best_params.items():
        assert not np.shares_memory(v, s.model.params[k]), "best_params must be a copy"
        np.testing.assert_array_equal(v, after_epoch[best_epoch][k], err_msg=k)
    # the last epoch's accuracies are those of the final parameters (num_train_samples=None: all)
    assert s.train_acc_history[-1] == s.check_accuracy(digits.X_train, digits.y_train)
    assert s.val_acc_history[-1] == s.check_accuracy(digits.X_val, digits.y_val)


def test_every_epoch_is_a_fresh_shuffle_of_full_batches():
    n, bs = 103, 10
    X = np.column_stack([np.arange(n), np.zeros((n, 2))]).astype(float)  # column 0: example id
    y = np.zeros(n, dtype=int)
    model = Recorder()
    Solver(model, {"X_train": X, "y_train": y, "X_val": X[:5], "y_val": y[:5]},
           update_rule="sgd", batch_size=bs, num_epochs=3).train()
    assert len(model.batches) == 3 * (n // bs)
    assert all(len(b) == bs for b in model.batches), "the last partial batch is dropped"
    epochs = [np.concatenate(model.batches[e * 10:(e + 1) * 10]) for e in range(3)]
    for e in epochs:
        assert len(np.unique(e)) == 100, "no example twice in an epoch"
    assert not np.array_equal(epochs[0], epochs[1]), "each epoch reshuffles"


def test_shuffle_false_takes_the_batches_in_the_data_order_every_epoch():
    n, bs = 23, 5
    X = np.column_stack([np.arange(n), np.zeros((n, 2))]).astype(float)  # column 0: example id
    y = np.zeros(n, dtype=int)
    model = Recorder()
    Solver(model, {"X_train": X, "y_train": y, "X_val": X[:5], "y_val": y[:5]},
           update_rule="sgd", batch_size=bs, num_epochs=2, shuffle=False).train()
    expected = [np.arange(i * bs, (i + 1) * bs) for i in range(n // bs)] * 2
    assert len(model.batches) == len(expected)
    for got, want in zip(model.batches, expected, strict=True):
        assert np.array_equal(got, want), f"batch {got} should be examples {want} in order"


def test_shuffle_batches_visits_the_fixed_consecutive_batches_in_a_new_order_each_epoch():
    n, bs = 23, 5
    X = np.column_stack([np.arange(n), np.zeros((n, 2))]).astype(float)  # column 0: example id
    y = np.zeros(n, dtype=int)
    model = Recorder()
    Solver(model, {"X_train": X, "y_train": y, "X_val": X[:5], "y_val": y[:5]},
           update_rule="sgd", batch_size=bs, num_epochs=4, shuffle="batches").train()
    fixed = {tuple(range(i * bs, (i + 1) * bs)) for i in range(n // bs)}
    epochs = [model.batches[e * 4:(e + 1) * 4] for e in range(4)]
    for batches in epochs:
        assert {tuple(b.astype(int)) for b in batches} == fixed, "each epoch: the same 4 batches"
    firsts = [int(batches[0][0]) for batches in epochs]
    assert len(set(firsts)) > 1, f"the batch order never changed over 4 epochs: {firsts}"


def test_max_iterations_stops_mid_epoch_and_records_the_final_accuracy(digits):
    n = len(digits.y_train)
    per_epoch = n // 50
    s = Solver(_net(), digits, batch_size=50, num_epochs=10, max_iterations=per_epoch + 3,
               num_train_samples=None).train()
    assert len(s.loss_history) == per_epoch + 3, "exactly max_iterations updates"
    assert len(s.val_acc_history) == 2 and s.epoch == 2, "one full epoch and one cut short"
    assert s.val_acc_history[-1] == s.check_accuracy(digits.X_val, digits.y_val)


def test_split_and_dict_data_give_the_same_run(digits):
    as_dict = {k: getattr(digits, k) for k in ("X_train", "y_train", "X_val", "y_val")}
    a = Solver(_net(), digits, num_epochs=1).train()
    b = Solver(_net(), as_dict, num_epochs=1).train()
    assert a.loss_history == b.loss_history and a.val_acc_history == b.val_acc_history


# --------------------------------------------------------------------------- accuracy
def test_check_accuracy_hand_case():
    model = Recorder()
    s = Solver(model, {"X_train": np.zeros((4, 3)), "y_train": np.zeros(4, dtype=int),
                       "X_val": np.zeros((2, 3)), "y_val": np.zeros(2, dtype=int)}, batch_size=2)
    X = np.array([[0.9, 0.1, 0.0],   # argmax 0, label 0: right
                  [0.1, 0.5, 0.4],   # argmax 1, label 2: wrong
                  [0.0, 0.2, 0.8],   # argmax 2, label 2: right
                  [0.3, 0.6, 0.1]])  # argmax 1, label 1: right
    y = np.array([0, 2, 2, 1])
    assert s.check_accuracy(X, y) == 0.75
    assert s.check_accuracy(X, y, batch_size=3) == 0.75
    assert s.check_accuracy(X, y, batch_size=1) == 0.75


def test_accuracy_is_measured_in_test_mode(digits):
    s = Solver(_net(bn=True), digits, num_epochs=1, batch_size=50).train()
    assert all(p["mode"] == "test" for p in s.model.bn_params)
    # test mode: the result cannot depend on how the examples are grouped into batches
    assert s.check_accuracy(digits.X_val, digits.y_val, batch_size=7) == s.val_acc_history[-1]


# --------------------------------------------------------------------------- divergence
def test_huge_learning_rate_raises_training_diverged_with_history(digits, capsys):
    s = Solver(_net(weight_scale=1.0, hidden=(100,) * 4), digits, update_rule="sgd",
               optim_config={"learning_rate": 1e3}, batch_size=50, num_epochs=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy overflow warnings would surface as errors here
        with pytest.raises(TrainingDiverged) as info:
            s.train()
    exc = info.value
    assert isinstance(exc, FloatingPointError)
    assert exc.solver is s
    assert all(math.isfinite(v) for v in s.loss_history)
    assert exc.iteration == len(s.loss_history) + 1
    assert exc.epoch == 1 and exc.last_finite_loss == s.loss_history[-1]
    message = str(exc)
    assert "epoch 1" in message and f"iteration {exc.iteration}" in message
    assert "learning rate" in message and "weight scale" in message
    assert capsys.readouterr() == ("", "")


# --------------------------------------------------------------------------- output
def test_silent_unless_verbose(digits, capsys):
    Solver(_net(), digits, num_epochs=2).train()
    assert capsys.readouterr() == ("", "")
    Solver(_net(), digits, num_epochs=2, verbose=True).train()
    err = capsys.readouterr().err  # tqdm's text bar (no notebook here) goes to stderr
    assert "2/2" in err and "val_acc" in err


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"update_rule": "rmsprop"}, ValueError, "update_rule must be one of"),
        ({"batch_size": 0}, ValueError, "batch_size must be an int >= 1"),
        ({"batch_size": 5000}, ValueError, "batch_size must be at most"),
        ({"batch_size": 2.5}, TypeError, "batch_size must be an int"),
        ({"num_epochs": 0}, ValueError, "num_epochs must be an int >= 1"),
        ({"optim_config": {"learning_rate": 0.0}}, ValueError, "learning_rate'] must lie in"),
        ({"optim_config": {"learning_rate": -1e-3}}, ValueError, "learning_rate'] must lie in"),
        ({"optim_config": {"lr": 1e-3}}, ValueError, r"keys \['lr'\]"),
        ({"optim_config": {"momentum": 1.0}}, ValueError, "momentum'] must lie in"),
        ({"update_rule": "adam", "optim_config": {"momentum": 0.9}}, ValueError, "momentum"),
        ({"update_rule": "adam", "optim_config": {"beta2": 1.5}}, ValueError, "beta2"),
        ({"optim_config": [0.1]}, TypeError, "optim_config must be a dict"),
        ({"lr_decay": 0.0}, ValueError, "lr_decay must lie in"),
        ({"lr_decay": 1.5}, ValueError, "lr_decay must lie in"),
        ({"num_train_samples": 0}, ValueError, "num_train_samples must be an int >= 1"),
        ({"seed": -2}, ValueError, "seed must be an int >= 0"),
        ({"verbose": "yes"}, TypeError, "verbose must be a bool"),
        ({"shuffle": "no"}, ValueError, "shuffle must be True, False or 'batches'"),
        ({"max_iterations": 0}, ValueError, "max_iterations must be an int >= 1"),
        ({"shuffle": 1}, TypeError, "shuffle must be a bool or 'batches'"),
    ],
)
def test_solver_rejects_bad_arguments(digits, kwargs, error, match):
    with pytest.raises(error, match=match):
        Solver(_net(), digits, **kwargs)


def test_solver_rejects_bad_data_and_model(digits):
    full = {k: getattr(digits, k) for k in ("X_train", "y_train", "X_val", "y_val")}
    with pytest.raises(ValueError, match=r"data is missing \['y_val'\]"):
        Solver(_net(), {k: v for k, v in full.items() if k != "y_val"})
    with pytest.raises(TypeError, match="data must be a course.data.Split or a dict"):
        Solver(_net(), (digits.X_train, digits.y_train))
    with pytest.raises(ValueError, match=r"data\['y_train'\] must have shape"):
        Solver(_net(), {**full, "y_train": full["y_train"][:-1]})
    with pytest.raises(TypeError, match=r"data\['y_val'\] must hold integer class labels"):
        Solver(_net(), {**full, "y_val": full["y_val"].astype(float)})
    with pytest.raises(TypeError, match="model must have a dict `params`"):
        Solver(object(), digits)
    s = Solver(_net(), digits)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        s.check_accuracy(digits.X_val, digits.y_val, batch_size=0)
    with pytest.raises(ValueError, match=r"y must have shape"):
        s.check_accuracy(digits.X_val, digits.y_val[:3])
