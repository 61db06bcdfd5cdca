"""Notebook 03's derivation steps in the reference (autograder/reference/backward_stages.py).

Oracles we did not write: PyTorch's autograd on each forward stage (and on the forward pass with
only one path from x left open), and the identity that the stages, chained, and the paths,
added, both give BatchNorm1d's own gradient.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_backward_reference import _case, _torch_train_grads

from autograder import reference as R

EPS = 1e-5
SHAPES = [(2, 3), (5, 1), (6, 4), (17, 5)]  # N = 2 (x_hat = +-1), D = 1, N != D


def _t(a, grad=False):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def _grads(loss, *leaves):
    loss.backward()
    return [leaf.grad.numpy() for leaf in leaves]


def _stats(x):
    mean = x.mean(axis=0)
    return mean, ((x - mean) ** 2).mean(axis=0)


def _close(ours, theirs, what):
    # float64 on both sides, the same sums in another order: ~1e-15 relative
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12, err_msg=what)


@pytest.mark.parametrize("N,D", SHAPES)
def test_scale_shift_backward_matches_torch_autograd(N, D):
    x, gamma, beta, dout, _ = _case(N * 10 + D, N, D)
    x_hat = R.batchnorm_forward(x, gamma, beta, {"mode": "train"})[1]["x_hat"]
    xh, g, b = _t(x_hat, True), _t(gamma, True), _t(beta, True)
    want = _grads(((g * xh + b) * _t(dout)).sum(), xh, g, b)
    for name, ours, theirs in zip(("dx_hat", "dgamma", "dbeta"),
                                  R.scale_shift_backward(dout, x_hat, gamma), want, strict=True):
        _close(ours, theirs, name)


@pytest.mark.parametrize("N,D", SHAPES)
def test_normalize_backward_matches_torch_autograd_for_any_given_statistics(N, D):
    """Each input held fixed by the others: mean and var are leaves of their own, here not the
    batch's statistics (as in test mode), so no term may rely on sum(x - mean) = 0."""
    r = np.random.default_rng(N * 7 + D)
    x, dx_hat = 3.0 + 2.0 * r.normal(size=(N, D)), r.normal(size=(N, D))
    mean, var = r.normal(size=D), r.uniform(0.5, 9.0, D)
    xt, mt, vt = _t(x, True), _t(mean, True), _t(var, True)
    want = _grads((((xt - mt) / torch.sqrt(vt + EPS)) * _t(dx_hat)).sum(), xt, mt, vt)
    for name, ours, theirs in zip(("dx", "dmean", "dvar"),
                                  R.normalize_backward(dx_hat, x, mean, var, EPS), want, strict=True):
        _close(ours, theirs, name)


@pytest.mark.parametrize("N,D", SHAPES)
def test_batch_stats_backward_matches_torch_autograd(N, D):
    r = np.random.default_rng(N * 3 + D)
    x, dmean, dvar = 10.0 + 3.0 * r.normal(size=(N, D)), r.normal(size=D), r.normal(size=D)
    xt = _t(x, True)
    mean = xt.mean(dim=0)
    var = ((xt - mean) ** 2).mean(dim=0)  # the mean inside is live: its (zero) term is included
    (want,) = _grads((mean * _t(dmean)).sum() + (var * _t(dvar)).sum(), xt)
    _close(R.batch_stats_backward(dmean, dvar, x), want, "dx")


@pytest.mark.parametrize("N,D", SHAPES)
def test_each_path_matches_torch_with_only_that_path_open(N, D):
    """dx_through_var: the variance recomputed from x, x - mean frozen; dx_through_mean: the mean
    recomputed from x, x and the variance frozen."""
    x, gamma, beta, dout, _ = _case(N * 5 + D, N, D, offset=2.0)
    cache = R.batchnorm_forward(x, gamma, beta, {"mode": "train"})[1]
    dx_hat = dout * gamma
    mean, var = _stats(x)

    xt = _t(x, True)
    var_open = ((xt - xt.mean(dim=0)) ** 2).mean(dim=0)
    (via_var,) = _grads((_t(x - mean) / torch.sqrt(var_open + EPS) * _t(dx_hat)).sum(), xt)
    _close(R.dx_through_var(dx_hat, cache["x_hat"], cache["inv_std"]), via_var, "through var")

    xt = _t(x, True)
    (via_mean,) = _grads(((_t(x) - xt.mean(dim=0)) / _t(np.sqrt(var + EPS)) * _t(dx_hat)).sum(), xt)
    _close(R.dx_through_mean(dx_hat, cache["inv_std"]), via_mean, "through mean")


@pytest.mark.parametrize("N,D", SHAPES)
def test_stages_chained_and_paths_added_give_batchnorm1d_gradient(N, D):
    x, gamma, beta, dout, _ = _case(N * 11 + D, N, D, offset=-3.0)
    cache = R.batchnorm_forward(x, gamma, beta, {"mode": "train"})[1]
    t_dx, t_dgamma, t_dbeta = _torch_train_grads(x, gamma, beta, dout)

    dx_hat, dgamma, dbeta = R.scale_shift_backward(dout, cache["x_hat"], gamma)
    direct, dmean, dvar = R.normalize_backward(dx_hat, x, cache["mean"], cache["var"], EPS)
    staged = direct + R.batch_stats_backward(dmean, dvar, x)
    paths = (dx_hat * cache["inv_std"] + R.dx_through_var(dx_hat, cache["x_hat"], cache["inv_std"])
             + R.dx_through_mean(dx_hat, cache["inv_std"]))
    for name, ours in (("stages", staged), ("paths", paths)):
        np.testing.assert_allclose(ours, t_dx, rtol=1e-9, atol=1e-12, err_msg=name)
    _close(dgamma, t_dgamma, "dgamma")
    _close(dbeta, t_dbeta, "dbeta")


def test_float32_in_float32_out():
    x, gamma, beta, dout, _ = (a.astype(np.float32) if isinstance(a, np.ndarray) else a
                               for a in _case(3, 20, 4))
    c = R.batchnorm_forward(x, gamma, beta, {"mode": "train"})[1]
    dx_hat = dout * gamma
    outputs = {
        "scale_shift_backward": R.scale_shift_backward(dout, c["x_hat"], gamma),
        "normalize_backward": R.normalize_backward(dx_hat, x, c["mean"], c["var"], EPS),
        "batch_stats_backward": (R.batch_stats_backward(c["mean"], c["var"], x),),
        "dx_through_var": (R.dx_through_var(dx_hat, c["x_hat"], c["inv_std"]),),
        "dx_through_mean": (R.dx_through_mean(dx_hat, c["inv_std"]),),
    }
    for name, values in outputs.items():
        assert all(v.dtype == np.float32 for v in values), (name, [v.dtype for v in values])


@pytest.mark.parametrize("call, exc, match", [
    (lambda: R.scale_shift_backward(np.ones((3, 2)), np.ones((2, 3)), np.ones(2)), ValueError, "x_hat"),
    (lambda: R.scale_shift_backward(np.ones((3, 2)), np.ones((3, 2)), np.ones(3)), ValueError, "gamma"),
    (lambda: R.normalize_backward(np.ones((3, 2)), np.ones((3, 2)), np.ones(2), np.ones(2), -1.0),
     ValueError, "eps"),
    (lambda: R.normalize_backward(np.ones(3), np.ones((3, 2)), np.ones(2), np.ones(2), 0.0),
     ValueError, "dx_hat"),
    (lambda: R.batch_stats_backward(np.ones(2), np.ones(3), np.ones((4, 2))), ValueError, "dvar"),
    (lambda: R.batch_stats_backward(np.ones(2), np.ones(2), np.array([["a", "b"]])), TypeError, "x"),
    (lambda: R.dx_through_var(np.ones((3, 2)), np.ones((3, 2)), np.ones(3)), ValueError, "inv_std"),
    (lambda: R.dx_through_mean(np.ones((3, 2)), "r"), TypeError, "inv_std"),
])
def test_bad_input_is_refused_with_the_argument_named(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
