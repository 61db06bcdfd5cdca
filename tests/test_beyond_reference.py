"""Assignment 05: the reference LayerNorm, GroupNorm and Batch Renormalization.

Oracles we did not write:

* ``torch.nn.functional.layer_norm`` and ``group_norm`` (forward, and autograd for the backward);
* torch autograd on Batch Renorm written from Ioffe (2017), Algorithm 1, with ``detach()`` on r
  and d (the paper's stop-gradient);
* ``torchrl.modules.BatchRenorm1d`` and Keras 3 ``BatchNormalization(renorm=True)`` on its torch
  backend, where their semantics match ours (each difference is stated in its test);
* centered finite differences;
* reductions and invariants: Batch Renorm with rmax = 1, dmax = 0 is BatchNorm; GroupNorm with
  G = 1 is LayerNorm over (C, H, W) and with G = C is InstanceNorm; LayerNorm rows have mean
  beta and standard deviation gamma.
"""

from __future__ import annotations

import copy
import os

os.environ["KERAS_BACKEND"] = "torch"  # before keras is imported: Keras 3 on its torch backend

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torchrl.modules import BatchRenorm1d  # noqa: E402

from autograder import reference as R  # noqa: E402

torch.set_default_dtype(torch.float64)


def _rng(seed):
    return np.random.default_rng(seed)


def _affine(r, n):
    return r.uniform(0.5, 2.0, n) * r.choice([-1.0, 1.0], n), r.normal(size=n)


def _fd(f, x, dout, h=1e-6):
    """Centered differences of sum(f(x) * dout) with respect to x (a float64 copy)."""
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        plus = np.array(f(x))
        x[i] = old - h
        minus = np.array(f(x))
        x[i] = old
        grad[i] = np.sum((plus - minus) * dout) / (2 * h)
    return grad


def _autograd(fn, *arrays):
    """Tensors requiring grad for ``arrays``, and ``fn`` applied to them."""
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    return ts, fn(*ts)


def _grads(out, dout, ts):
    out.backward(torch.tensor(dout))
    return [t.grad.numpy() for t in ts]


# =============================================================================== LayerNorm
@pytest.mark.parametrize("N,D,offset", [(4, 5, 0.0), (1, 7, 3.0), (9, 1, -2.0), (6, 3, 1e3)])
def test_layernorm_matches_torch_forward_and_autograd(N, D, offset):
    r = _rng(N * 10 + D)
    x = offset + r.uniform(0.5, 4.0, (N, 1)) * r.normal(size=(N, D))
    gamma, beta = _affine(r, D)
    dout = r.normal(size=(N, D))
    out, cache = R.layernorm_forward(x, gamma, beta, {})
    ts, t_out = _autograd(lambda a, g, b: F.layer_norm(a, (D,), g, b, eps=1e-5), x, gamma, beta)
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-10, atol=1e-12)
    got = R.layernorm_backward(dout, cache)
    for name, a, b in zip(("dx", "dgamma", "dbeta"), got, _grads(t_out, dout, ts), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10, err_msg=name)


def test_layernorm_dx_agrees_with_finite_differences():
    r = _rng(1)
    x = 2.0 + 3.0 * r.normal(size=(5, 6))
    gamma, beta = _affine(r, 6)
    dout = r.normal(size=(5, 6))
    _, cache = R.layernorm_forward(x, gamma, beta, {})
    dx = R.layernorm_backward(dout, cache)[0]
    num = _fd(lambda v: R.layernorm_forward(v, gamma, beta, {})[0], x, dout)
    np.testing.assert_allclose(dx, num, rtol=1e-6, atol=1e-8)


def test_layernorm_rows_have_mean_beta_and_std_gamma():
    r = _rng(2)
    x = r.normal(5.0, 3.0, size=(8, 50))
    out, cache = R.layernorm_forward(x, np.full(50, 2.5), np.full(50, -1.0), {"eps": 1e-5})
    np.testing.assert_allclose(out.mean(axis=1), -1.0, atol=1e-12)
    shrink = np.sqrt(cache["var"] / (cache["var"] + 1e-5))  # eps inside the root
    np.testing.assert_allclose(out.std(axis=1), 2.5 * shrink, rtol=1e-12)


def test_layernorm_is_the_same_in_train_and_test_mode_and_writes_nothing():
    r = _rng(3)
    x = r.normal(size=(4, 3))
    gamma, beta = _affine(r, 3)
    train_param, test_param = {"mode": "train"}, {"mode": "test"}
    a = R.layernorm_forward(x, gamma, beta, train_param)[0]
    b = R.layernorm_forward(x, gamma, beta, test_param)[0]
    np.testing.assert_array_equal(a, b)
    assert train_param == {"mode": "train"} and test_param == {"mode": "test"}


def test_layernorm_keeps_float32_and_rejects_bad_input():
    x = _rng(4).normal(size=(3, 4)).astype(np.float32)
    out, cache = R.layernorm_forward(x, np.ones(4, np.float32), np.zeros(4, np.float32), {})
    assert out.dtype == np.float32
    assert all(g.dtype == np.float32 for g in R.layernorm_backward(np.ones_like(x), cache))
    with pytest.raises(ValueError, match="gamma"):
        R.layernorm_forward(x, np.ones(3), np.zeros(4), {})
    with pytest.raises(ValueError, match="x"):
        R.layernorm_forward(x[0], np.ones(4), np.zeros(4), {})
    with pytest.raises(TypeError, match="ln_param"):
        R.layernorm_forward(x, np.ones(4), np.zeros(4), None)
    with pytest.raises(ValueError, match="dout"):
        R.layernorm_backward(np.ones((2, 4)), cache)


# =============================================================================== GroupNorm
@pytest.mark.parametrize("shape,G", [((2, 6, 3, 4), 3), ((3, 4, 2, 2), 1), ((2, 4, 3, 1), 4),
                                     ((1, 8, 1, 1), 2), ((4, 6, 2, 3), 6)])
def test_groupnorm_matches_torch_forward_and_autograd(shape, G):
    r = _rng(sum(shape) + G)
    C = shape[1]
    x = 5.0 + r.uniform(0.5, 4.0, (1, C, 1, 1)) * r.normal(size=shape)
    gamma, beta = _affine(r, C)
    dout = r.normal(size=shape)
    out, cache = R.spatial_groupnorm_forward(x, gamma, beta, G, {})
    ts, t_out = _autograd(lambda a, g, b: F.group_norm(a, G, g, b, eps=1e-5), x, gamma, beta)
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-10, atol=1e-12)
    got = R.spatial_groupnorm_backward(dout, cache)
    for name, a, b in zip(("dx", "dgamma", "dbeta"), got, _grads(t_out, dout, ts), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10, err_msg=name)


def test_groupnorm_dx_agrees_with_finite_differences():
    r = _rng(5)
    x = r.normal(size=(2, 4, 2, 3)) * 3.0 + 1.0
    gamma, beta = _affine(r, 4)
    dout = r.normal(size=x.shape)
    _, cache = R.spatial_groupnorm_forward(x, gamma, beta, 2, {})
    dx = R.spatial_groupnorm_backward(dout, cache)[0]
    num = _fd(lambda v: R.spatial_groupnorm_forward(v, gamma, beta, 2, {})[0], x, dout)
    np.testing.assert_allclose(dx, num, rtol=1e-6, atol=1e-8)


def test_groupnorm_with_one_group_is_layernorm_over_chw_and_with_c_groups_instancenorm():
    r = _rng(6)
    N, C, H, W = 3, 4, 2, 5
    x = r.normal(size=(N, C, H, W)) * 2.0 + 3.0
    gamma, beta = _affine(r, C)
    out1 = R.spatial_groupnorm_forward(x, gamma, beta, 1, {})[0]
    ln = R.layernorm_forward(x.reshape(N, -1), np.repeat(gamma, H * W), np.repeat(beta, H * W), {})[0]
    np.testing.assert_allclose(out1, ln.reshape(x.shape), rtol=1e-12, atol=1e-12)
    outC = R.spatial_groupnorm_forward(x, gamma, beta, C, {})[0]
    inorm = F.instance_norm(torch.tensor(x), weight=torch.tensor(gamma), bias=torch.tensor(beta),
                            eps=1e-5).numpy()
    np.testing.assert_allclose(outC, inorm, rtol=1e-10, atol=1e-12)


def test_groupnorm_output_does_not_depend_on_the_other_samples():
    r = _rng(7)
    x = r.normal(size=(4, 6, 2, 2))
    gamma, beta = _affine(r, 6)
    full = R.spatial_groupnorm_forward(x, gamma, beta, 3, {})[0]
    alone = R.spatial_groupnorm_forward(x[1:2], gamma, beta, 3, {})[0]
    np.testing.assert_allclose(full[1:2], alone, rtol=1e-12)


def test_groupnorm_rejects_a_g_that_does_not_divide_c_and_keeps_float32():
    x = _rng(8).normal(size=(2, 6, 2, 2)).astype(np.float32)
    with pytest.raises(ValueError, match="G"):
        R.spatial_groupnorm_forward(x, np.ones(6), np.zeros(6), 4, {})
    with pytest.raises(TypeError, match="G"):
        R.spatial_groupnorm_forward(x, np.ones(6), np.zeros(6), 2.0, {})
    with pytest.raises(ValueError, match="gamma"):
        R.spatial_groupnorm_forward(x, np.ones((1, 6, 1, 1)), np.zeros(6), 3, {})
    out, cache = R.spatial_groupnorm_forward(x, np.ones(6, np.float32), np.zeros(6, np.float32), 3, {})
    assert out.dtype == np.float32
    assert all(g.dtype == np.float32 for g in R.spatial_groupnorm_backward(np.ones_like(x), cache))


# =============================================================================== Batch Renorm
def torch_batchrenorm(x, gamma, beta, running_mean, running_std, *, rmax, dmax, eps=1e-5):
    """Ioffe (2017), Algorithm 1, in torch; r and d detached (stop-gradient)."""
    mean = x.mean(dim=0)
    std = torch.sqrt(x.var(dim=0, unbiased=False) + eps)
    r = torch.clamp(std.detach() / running_std, 1.0 / rmax, rmax)
    d = torch.clamp((mean.detach() - running_mean) / running_std, -dmax, dmax)
    x_hat = (x - mean) / std * r + d
    return gamma * x_hat + beta, mean.detach(), std.detach(), r, d


def _brn_case(seed, N, D, shift=2.0):
    """Data whose statistics differ from the running ones, so that r and d clip sometimes."""
    r = _rng(seed)
    x = shift + r.uniform(0.2, 6.0, D) * r.normal(size=(N, D))
    gamma, beta = _affine(r, D)
    brn = {"mode": "train", "running_mean": r.normal(size=D), "running_std": r.uniform(0.5, 2.0, D),
           "rmax": 2.0, "dmax": 1.0, "momentum": 0.1}
    return x, gamma, beta, r.normal(size=(N, D)), brn


@pytest.mark.parametrize("seed,N,D", [(0, 8, 5), (1, 2, 3), (2, 16, 1), (3, 5, 9)])
def test_batchrenorm_matches_torch_autograd_with_detached_r_and_d(seed, N, D):
    x, gamma, beta, dout, brn = _brn_case(seed, N, D)
    rm0, rs0 = brn["running_mean"].copy(), brn["running_std"].copy()
    out, cache = R.batchrenorm_forward(x, gamma, beta, brn)
    ts = [torch.tensor(a, requires_grad=True) for a in (x, gamma, beta)]
    t_out, mean, std, r, d = torch_batchrenorm(*ts, torch.tensor(rm0), torch.tensor(rs0),
                                               rmax=2.0, dmax=1.0)
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cache["r"], r.numpy(), rtol=1e-12)
    np.testing.assert_allclose(cache["d"], d.numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(brn["running_mean"], rm0 + 0.1 * (mean.numpy() - rm0), rtol=1e-12)
    np.testing.assert_allclose(brn["running_std"], rs0 + 0.1 * (std.numpy() - rs0), rtol=1e-12)
    got = R.batchrenorm_backward(dout, cache)
    for name, a, b in zip(("dx", "dgamma", "dbeta"), got, _grads(t_out, dout, ts), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10, err_msg=name)


def test_the_case_above_really_clips_both_r_and_d():
    clipped_r = clipped_d = 0
    for seed, N, D in [(0, 8, 5), (1, 2, 3), (2, 16, 1), (3, 5, 9)]:
        x, gamma, beta, _, brn = _brn_case(seed, N, D)
        cache = R.batchrenorm_forward(x, gamma, beta, brn)[1]
        clipped_r += int(np.sum(np.isclose(np.abs(np.log(cache["r"])), np.log(2.0))))
        clipped_d += int(np.sum(np.isclose(np.abs(cache["d"]), 1.0)))
    assert clipped_r > 0 and clipped_d > 0, (clipped_r, clipped_d)


def test_batchrenorm_dx_is_batchnorm_dx_of_dout_scaled_by_r():
    x, gamma, beta, dout, brn = _brn_case(4, 7, 4)
    _, cache = R.batchrenorm_forward(x, gamma, beta, brn)
    _, bn_cache = R.batchnorm_forward(x, gamma, beta, {"mode": "train"})
    expected = R.batchnorm_backward(dout * cache["r"], bn_cache)[0]
    np.testing.assert_allclose(R.batchrenorm_backward(dout, cache)[0], expected, rtol=1e-10,
                               atol=1e-12)


def test_batchrenorm_gradient_agrees_with_finite_differences_when_r_and_d_are_frozen():
    x, gamma, beta, dout, brn = _brn_case(5, 6, 3)
    _, cache = R.batchrenorm_forward(x, gamma, beta, copy.deepcopy(brn))
    r, d = cache["r"], cache["d"]

    def frozen(v):  # BatchNorm's x_hat of v, then the constant correction of this step
        bn = R.batchnorm_forward(v, np.ones(3), np.zeros(3), {"mode": "train"})[0]
        return gamma * (bn * r + d) + beta

    num = _fd(frozen, x, dout)
    np.testing.assert_allclose(R.batchrenorm_backward(dout, cache)[0], num, rtol=1e-6, atol=1e-8)


def test_batchrenorm_with_rmax_1_and_dmax_0_is_batchnorm_exactly():
    x, gamma, beta, dout, brn = _brn_case(6, 9, 4)
    brn.update(rmax=1.0, dmax=0.0)
    out, cache = R.batchrenorm_forward(x, gamma, beta, brn)
    bn_out, bn_cache = R.batchnorm_forward(x, gamma, beta, {"mode": "train"})
    np.testing.assert_array_equal(out, bn_out)
    for a, b in zip(R.batchrenorm_backward(dout, cache), R.batchnorm_backward(dout, bn_cache),
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_batchrenorm_test_mode_uses_the_running_statistics_only():
    x, gamma, beta, dout, brn = _brn_case(7, 5, 3)
    brn["mode"] = "test"
    before = copy.deepcopy(brn)
    out, cache = R.batchrenorm_forward(x, gamma, beta, brn)
    expected = gamma * (x - before["running_mean"]) / before["running_std"] + beta
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    np.testing.assert_array_equal(brn["running_mean"], before["running_mean"])
    np.testing.assert_allclose(R.batchrenorm_backward(dout, cache)[0],
                               dout * gamma / before["running_std"], rtol=1e-12)


def test_batchrenorm_defaults_and_errors():
    x = _rng(8).normal(size=(4, 3)).astype(np.float32)
    g, b = np.ones(3, np.float32), np.zeros(3, np.float32)
    brn = {"mode": "train"}
    out, cache = R.batchrenorm_forward(x, g, b, brn)
    assert out.dtype == np.float32 and brn["running_std"].dtype == np.float32
    np.testing.assert_allclose(brn["running_mean"], 0.01 * x.mean(axis=0), rtol=1e-5)
    for bad, match in [({"rmax": 0.5}, "rmax"), ({"dmax": -1.0}, "dmax"), ({"mode": "eval"}, "mode"),
                       ({"momentum": 2.0}, "momentum"), ({"running_std": np.zeros(3)}, "running_std")]:
        with pytest.raises(ValueError, match=match):
            R.batchrenorm_forward(x, g, b, {"mode": "train", **bad})
    with pytest.raises(ValueError, match="N=1"):
        R.batchrenorm_forward(x[:1], g, b, {"mode": "train"})
    with pytest.raises(TypeError, match="brn_param"):
        R.batchrenorm_forward(x, g, b, [("mode", "train")])
    R.batchrenorm_forward(x[:1], g, b, {"mode": "test"})  # one sample is fine in test mode


# =============================================================================== torchrl, Keras
def test_batchrenorm_matches_torchrl_batchrenorm1d_where_the_semantics_agree():
    """torchrl's ``BatchRenorm1d(warmup_steps=0)`` is Algorithm 1 with r, d detached, except for
    what it tracks: ``running_var`` (the *unbiased* batch variance, averaged) from which it derives
    ``running_std = sqrt(running_var + eps)``, where we (and the paper) average sigma_B itself.
    So each step starts our layer from torchrl's own running_std; then out, r/d, dx, dgamma,
    dbeta and running_mean agree, and running_var follows torchrl's rule, not ours."""
    D, m = 4, 0.1
    layer = BatchRenorm1d(D, momentum=m, eps=1e-5, max_r=2.0, max_d=1.0, warmup_steps=0).double()
    r = _rng(10)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(r.uniform(0.5, 2.0, D)))
        layer.bias.copy_(torch.tensor(r.normal(size=D)))
        layer.running_mean.copy_(torch.tensor(r.normal(size=D)))
        layer.running_var.copy_(torch.tensor(r.uniform(0.2, 3.0, D)))
    layer.train()
    for step in range(4):
        x = (3.0 - step) + r.uniform(0.2, 5.0, D) * r.normal(size=(6, D))
        dout = r.normal(size=(6, D))
        rm = layer.running_mean.numpy().copy()
        rv = layer.running_var.numpy().copy()
        brn = {"mode": "train", "momentum": m, "rmax": 2.0, "dmax": 1.0, "running_mean": rm.copy(),
               "running_std": np.sqrt(rv + 1e-5)}
        gamma, beta = layer.weight.detach().numpy().copy(), layer.bias.detach().numpy().copy()
        out, cache = R.batchrenorm_forward(x, gamma, beta, brn)
        xt = torch.tensor(x, requires_grad=True)
        layer.zero_grad()
        t_out = layer(xt)
        t_out.backward(torch.tensor(dout))
        np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-10, atol=1e-12)
        dx, dgamma, dbeta = R.batchrenorm_backward(dout, cache)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(dgamma, layer.weight.grad.numpy(), rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(dbeta, layer.bias.grad.numpy(), rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(brn["running_mean"], layer.running_mean.numpy(), rtol=1e-12)
        unbiased = x.var(axis=0, ddof=1)  # the difference: torchrl averages the unbiased variance
        np.testing.assert_allclose(layer.running_var.numpy(), rv + m * (unbiased - rv), rtol=1e-12)
    # test mode: the same formula once running_std = sqrt(running_var + eps)
    layer.eval()
    x = r.normal(size=(3, D))
    brn = {"mode": "test", "running_mean": layer.running_mean.numpy().copy(),
           "running_std": np.sqrt(layer.running_var.numpy() + 1e-5)}
    out = R.batchrenorm_forward(x, layer.weight.detach().numpy(), layer.bias.detach().numpy(), brn)[0]
    np.testing.assert_allclose(out, layer(torch.tensor(x)).detach().numpy(), rtol=1e-10)


def _keras_layer(D, momentum, **clipping):
    """Keras 3 renorm layer in float64 whose two sets of statistics are ours, with the Keras
    momentum convention (``new = momentum * old + (1 - momentum) * batch``)."""
    assert keras.backend.backend() == "torch", "this test needs Keras on its torch backend"
    layer = keras.layers.BatchNormalization(epsilon=1e-5, momentum=1 - momentum, renorm=True,
                                            renorm_momentum=1 - momentum,
                                            renorm_clipping=clipping or None, dtype="float64")
    layer.build((None, D))
    return layer


def test_batchrenorm_matches_keras_renorm_with_clipping_and_one_momentum():
    """Keras 3 ``BatchNormalization(renorm=True)`` keeps two sets of statistics: ``renorm_mean``
    / ``renorm_stddev`` for r and d (momentum ``renorm_momentum``), and the inference
    ``moving_mean`` / ``moving_stddev`` (momentum ``momentum``). Its momenta are 1 - ours. It
    clips only with ``renorm_clipping`` (r to [rmin, rmax]: we pass rmin = 1/rmax) and floors
    renorm_stddev at sqrt(eps). With both momenta equal to 1 - ours, both sets start equal and
    stay equal to our running_mean / running_std (a std well above sqrt(eps)), so every output,
    gradient and statistic agrees, to float32 precision: on this backend the layer computes the
    batch moments (and so r, d and the output) in float32 even with ``dtype='float64'``
    (measured: the moments come back as torch.float32), so the tolerances are float32's."""
    D, m = 3, 0.1
    layer = _keras_layer(D, m, rmax=2.0, rmin=0.5, dmax=1.0)
    r = _rng(11)
    gamma, beta = _affine(r, D)
    brn = {"mode": "train", "momentum": m, "rmax": 2.0, "dmax": 1.0,
           "running_mean": r.normal(size=D), "running_std": r.uniform(0.5, 2.0, D)}
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    for w in (layer.renorm_mean, layer.moving_mean):
        w.assign(brn["running_mean"])
    for w in (layer.renorm_stddev, layer.moving_stddev):
        w.assign(brn["running_std"])
    for step in range(3):
        x = (2.0 - step) + r.uniform(0.2, 5.0, D) * r.normal(size=(5, D))
        dout = r.normal(size=(5, D))
        out, cache = R.batchrenorm_forward(x, gamma, beta, brn)
        xt = torch.tensor(x, requires_grad=True)
        t_out = layer(xt, training=True)
        t_out.backward(torch.tensor(dout))
        np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(R.batchrenorm_backward(dout, cache)[0], xt.grad.numpy(),
                                   rtol=1e-4, atol=1e-5)
        for ours, theirs in [("running_mean", layer.renorm_mean), ("running_std", layer.renorm_stddev),
                             ("running_mean", layer.moving_mean), ("running_std", layer.moving_stddev)]:
            np.testing.assert_allclose(brn[ours], keras.ops.convert_to_numpy(theirs.value),
                                       rtol=1e-5, err_msg=f"{ours} vs {theirs.path}")
    x = r.normal(size=(4, D))
    ours = R.batchrenorm_forward(x, gamma, beta, {**brn, "mode": "test"})[0]
    theirs = keras.ops.convert_to_numpy(layer(torch.tensor(x), training=False))
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)  # moving_variance = std**2 - eps


def test_keras_without_renorm_clipping_equals_ours_with_limits_never_reached():
    """Keras does not clip unless ``renorm_clipping`` is given: our layer with rmax = dmax = 1e6
    (limits a batch never reaches) gives the same output."""
    D, m = 4, 0.2
    layer = _keras_layer(D, m)
    r = _rng(12)
    x = 10.0 + 8.0 * r.normal(size=(6, D))  # far from the initial statistics (0, 1): r and d large
    out = R.batchrenorm_forward(x, np.ones(D), np.zeros(D),
                                {"mode": "train", "momentum": m, "rmax": 1e6, "dmax": 1e6})[0]
    theirs = keras.ops.convert_to_numpy(layer(torch.tensor(x), training=True))
    np.testing.assert_allclose(out, theirs, rtol=1e-5, atol=1e-5)  # float32 moments, as above
    clipped = R.batchrenorm_forward(x, np.ones(D), np.zeros(D), {"mode": "train", "momentum": m})[0]
    assert not np.allclose(clipped, theirs), "with the defaults rmax=3, dmax=5 ours clips here"
