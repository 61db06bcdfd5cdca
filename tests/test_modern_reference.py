"""Assignment 06: the reference RMSNorm, residual block and BatchNorm folding.

Oracles we did not write:

* ``torch.nn.RMSNorm`` (forward, float64, float32 and float16, which torch computes in float32 on
  the CPU) and torch autograd (the backward passes);
* the residual block written with torch's own ``nn.RMSNorm``, ``relu`` and matrix products, and
  differentiated by autograd;
* ``torch.nn.utils.fusion.fuse_linear_bn_eval`` on a ``Linear`` and an eval-mode ``BatchNorm1d``;
* invariants: RMSNorm is unchanged when a row is scaled; with eps = 0 each row of dx is
  orthogonal to x; a pre-norm block whose branch outputs 0 is the identity; a folded layer
  equals test-mode BatchNorm of the affine layer (the course's provided BatchNorm, itself
  checked against torch in test_forward_reference.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.utils.fusion import fuse_linear_bn_eval

from autograder import reference as R

torch.set_default_dtype(torch.float64)


def _rng(seed):
    return np.random.default_rng(seed)


def _torch_rms(x, gamma, eps):
    layer = torch.nn.RMSNorm(x.shape[-1], eps=eps, dtype=torch.from_numpy(x).dtype)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(gamma))
    return layer


# --------------------------------------------------------------------------- RMSNorm
@pytest.mark.parametrize("shape", [(6, 5), (2, 3, 4), (1, 7), (5,)])
@pytest.mark.parametrize("eps", [1e-6, 0.1])
def test_rmsnorm_forward_matches_torch_rmsnorm(shape, eps):
    r = _rng(1)
    x = r.normal(2.0, 3.0, size=shape)
    gamma = r.uniform(-2.0, 2.0, shape[-1])
    out, cache = R.rmsnorm_forward(x, gamma, {"eps": eps})
    expected = _torch_rms(x, gamma, eps)(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-14)
    assert cache["inv_rms"].shape == shape[:-1]


def test_rmsnorm_default_eps_is_llamas_1e_6():
    x = np.array([[1e-3, -2e-3, 3e-3]])  # mean square ~5e-6: the eps shows
    out = R.rmsnorm_forward(x, np.ones(3), {})[0]
    np.testing.assert_allclose(out, _torch_rms(x, np.ones(3), 1e-6)(torch.from_numpy(x)).detach(),
                               rtol=1e-12)


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-6), (np.float16, 1e-3)])
def test_rmsnorm_keeps_the_dtype_and_matches_torch_in_low_precision(dtype, rtol):
    r = _rng(2)
    x = (r.normal(size=(4, 6)) * np.array([[300.0], [1.0], [50.0], [1000.0]])).astype(dtype)
    gamma = r.uniform(0.5, 2.0, 6).astype(dtype)
    out = R.rmsnorm_forward(x, gamma, {})[0]
    assert out.dtype == dtype
    expected = _torch_rms(x, gamma, 1e-6)(torch.from_numpy(x)).detach().numpy()
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out.astype(np.float64), expected.astype(np.float64), rtol=rtol,
                               atol=rtol)


@pytest.mark.parametrize("dtype, compute", [(np.float16, np.float32), (np.float32, np.float32),
                                            (np.float64, np.float64)])
def test_torch_eps_none_is_the_machine_epsilon_of_the_type_torch_computes_in(dtype, compute):
    """What notebook 06 says of torch's default eps=None: float32's epsilon for float16 and
    float32 inputs, float64's for float64 (not float16's 9.8e-4 for float16)."""
    x = np.array([[1e-4, -2e-4, 3e-4]]).astype(dtype)  # mean square ~5e-8: any eps shows
    layer = torch.nn.RMSNorm(3, dtype=torch.from_numpy(x).dtype)
    got = layer(torch.from_numpy(x)).detach().numpy().astype(np.float64)
    ours = R.rmsnorm_forward(x, np.ones(3, dtype), {"eps": float(np.finfo(compute).eps)})[0]
    np.testing.assert_allclose(got, ours.astype(np.float64), rtol=2e-3 if dtype == np.float16 else 1e-6)


def test_float16_computed_in_float16_would_overflow_above_256():
    """Why the reference computes float16 in float32: in float16, 256**2 is already inf."""
    with np.errstate(over="ignore"):
        assert np.isinf(np.float16(256.0) * np.float16(256.0))
    assert np.isfinite(np.float16(255.0) * np.float16(255.0))
    x = np.array([[300.0, 10.0]], dtype=np.float16)
    assert np.abs(R.rmsnorm_forward(x, np.ones(2, np.float16), {})[0]).max() > 1.0


def test_rmsnorm_is_scale_invariant_and_subtracts_no_mean():
    r = _rng(3)
    x = 5.0 + r.normal(size=(4, 8))  # far from zero mean
    gamma = r.uniform(0.5, 2.0, 8)
    out = R.rmsnorm_forward(x, gamma, {"eps": 0.0})[0]
    np.testing.assert_allclose(R.rmsnorm_forward(7.5 * x, gamma, {"eps": 0.0})[0], out, rtol=1e-12)
    assert np.all(np.abs((out / gamma).mean(axis=1)) > 0.5), "the mean must survive"
    np.testing.assert_allclose(np.sqrt(np.mean((out / gamma) ** 2, axis=1)), 1.0, rtol=1e-12)


@pytest.mark.parametrize("shape", [(7, 5), (2, 3, 4)])
def test_rmsnorm_backward_matches_torch_autograd(shape):
    r = _rng(4)
    x, gamma, dout = r.normal(1.0, 2.0, shape), r.uniform(-2, 2, shape[-1]), r.normal(size=shape)
    _, cache = R.rmsnorm_forward(x, gamma, {"eps": 1e-3})
    dx, dgamma = R.rmsnorm_backward(dout, cache)
    xt = torch.tensor(x, requires_grad=True)
    layer = _torch_rms(x, gamma, 1e-3)
    layer(xt).backward(torch.from_numpy(dout))
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dgamma, layer.weight.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_rmsnorm_dx_is_orthogonal_to_x_when_eps_is_zero():
    r = _rng(5)
    x, dout = r.normal(size=(6, 5)), r.normal(size=(6, 5))
    dx, _ = R.rmsnorm_backward(dout, R.rmsnorm_forward(x, r.uniform(0.5, 2, 5), {"eps": 0.0})[1])
    np.testing.assert_allclose(np.sum(dx * x, axis=1), 0.0, atol=1e-12)


def test_rmsnorm_float32_backward_stays_float32():
    r = _rng(6)
    x = r.normal(size=(8, 4)).astype(np.float32)
    _, cache = R.rmsnorm_forward(x, np.ones(4, np.float32), {})
    dx, dgamma = R.rmsnorm_backward(r.normal(size=(8, 4)).astype(np.float32), cache)
    assert dx.dtype == dgamma.dtype == np.float32


@pytest.mark.parametrize("call, exc, name", [
    (lambda: R.rmsnorm_forward(np.ones((2, 3)), np.ones(4), {}), ValueError, "gamma"),
    (lambda: R.rmsnorm_forward(np.ones((2, 3)), np.ones(3), [1e-6]), TypeError, "rms_param"),
    (lambda: R.rmsnorm_forward(np.ones((2, 3)), np.ones(3), {"eps": -1.0}), ValueError, "eps"),
    (lambda: R.rmsnorm_forward(np.array(["a", "b"]), np.ones(2), {}), TypeError, "x"),
    (lambda: R.rmsnorm_backward(np.ones((2, 3)), {"x_hat": np.ones((2, 3))}), ValueError, "cache"),
    (lambda: R.rmsnorm_backward(np.ones((2, 4)), R.rmsnorm_forward(np.ones((2, 3)), np.ones(3), {})[1]),
     ValueError, "dout"),
])
def test_rmsnorm_bad_input_names_the_argument(call, exc, name):
    with pytest.raises(exc, match=name):
        call()


# --------------------------------------------------------------------------- residual block
def _block_case(seed, N=6, D=4, H=5):
    r = _rng(seed)
    return (1.0 + 2.0 * r.normal(size=(N, D)), r.normal(size=(D, H)), r.normal(size=H),
            r.normal(size=(H, D)), r.normal(size=D), r.uniform(0.5, 2.0, D), r.normal(size=(N, D)))


def _torch_block(x, w1, b1, w2, b2, gamma, placement, eps=1e-6):
    t = [torch.tensor(a, requires_grad=True) for a in (x, w1, b1, w2, b2, gamma)]
    xt, w1t, b1t, w2t, b2t, gt = t

    def norm(v):
        return torch.nn.functional.rms_norm(v, (v.shape[-1],), weight=gt, eps=eps)

    def branch(z):
        return torch.relu(z @ w1t + b1t) @ w2t + b2t

    out = xt + branch(norm(xt)) if placement == "pre" else norm(xt + branch(xt))
    return out, t


@pytest.mark.parametrize("placement", ["pre", "post"])
def test_residual_block_matches_torch_forward_and_autograd(placement):
    x, w1, b1, w2, b2, gamma, dout = _block_case(10)
    out, cache = R.residual_block_forward(x, w1, b1, w2, b2, {"gamma": gamma}, placement)
    t_out, tensors = _torch_block(x, w1, b1, w2, b2, gamma, placement)
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-12, atol=1e-12)
    t_out.backward(torch.from_numpy(dout))
    grads = R.residual_block_backward(dout, cache)
    for name, ours, t in zip(("dx", "dw1", "db1", "dw2", "db2", "dgamma"), grads, tensors, strict=True):
        np.testing.assert_allclose(ours, t.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


def test_pre_norm_block_with_a_zero_branch_is_the_identity_and_post_norm_normalizes():
    x, w1, b1, _, _, gamma, _ = _block_case(11)
    zero_w2, zero_b2 = np.zeros((5, 4)), np.zeros(4)
    pre = R.residual_block_forward(x, w1, b1, zero_w2, zero_b2, {"gamma": gamma}, "pre")[0]
    np.testing.assert_array_equal(pre, x)
    post = R.residual_block_forward(x, w1, b1, zero_w2, zero_b2, {"gamma": gamma}, "post")[0]
    np.testing.assert_allclose(post, R.rmsnorm_forward(x, gamma, {})[0], rtol=1e-14)


def test_residual_block_keeps_float32_and_leaves_its_inputs_alone():
    args = [a.astype(np.float32) for a in _block_case(12)[:5]]
    before = [a.copy() for a in args]
    param = {"gamma": np.ones(4, np.float32), "eps": 1e-6}
    for placement in ("pre", "post"):
        out, cache = R.residual_block_forward(*args, param, placement)
        assert out.dtype == np.float32
        grads = R.residual_block_backward(np.ones((6, 4), np.float32), cache)
        assert all(g.dtype == np.float32 for g in grads)
    for a, b in zip(args, before, strict=True):
        np.testing.assert_array_equal(a, b)
    assert set(param) == {"gamma", "eps"}


@pytest.mark.parametrize("change, exc, name", [
    ({"placement": "middle"}, ValueError, "placement"),
    ({"w2": np.ones((4, 4))}, ValueError, "w2"),
    ({"w1": np.ones((3, 5))}, ValueError, "w1"),
    ({"b1": np.ones(4)}, ValueError, "b1"),
    ({"norm_param": {"eps": 1e-6}}, ValueError, "gamma"),
    ({"norm_param": [1.0]}, TypeError, "norm_param"),
])
def test_residual_block_bad_input_names_the_argument(change, exc, name):
    x, w1, b1, w2, b2, gamma, _ = _block_case(13)
    args = {"x": x, "w1": w1, "b1": b1, "w2": w2, "b2": b2, "norm_param": {"gamma": gamma},
            "placement": "pre", **change}
    with pytest.raises(exc, match=name):
        R.residual_block_forward(**args)


# --------------------------------------------------------------------------- folding
def _bn_case(seed, D, M):
    r = _rng(seed)
    return (r.normal(size=(D, M)), r.normal(size=M), r.uniform(-2, 2, M), r.normal(size=M),
            3 * r.normal(size=M), r.uniform(1e-5, 4.0, M))


@pytest.mark.parametrize("D, M, eps", [(5, 3, 1e-5), (4, 4, 1e-3), (1, 6, 0.1)])
def test_fold_batchnorm_matches_torch_fuse_linear_bn_eval(D, M, eps):
    w, b, gamma, beta, rm, rv = _bn_case(20, D, M)
    linear = torch.nn.Linear(D, M).eval()
    bn = torch.nn.BatchNorm1d(M, eps=eps).eval()
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(w.T))  # torch stores (M, D)
        linear.bias.copy_(torch.from_numpy(b))
        bn.weight.copy_(torch.from_numpy(gamma))
        bn.bias.copy_(torch.from_numpy(beta))
        bn.running_mean.copy_(torch.from_numpy(rm))
        bn.running_var.copy_(torch.from_numpy(rv))
    fused = fuse_linear_bn_eval(linear, bn)
    w_f, b_f = R.fold_batchnorm(w, b, gamma, beta, rm, rv, eps)
    np.testing.assert_allclose(w_f, fused.weight.detach().numpy().T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b_f, fused.bias.detach().numpy(), rtol=1e-12, atol=1e-12)
    # and the folded layer equals the two layers in test mode, on data
    x = _rng(21).normal(size=(7, D))
    with torch.no_grad():
        unfolded = bn(linear(torch.from_numpy(x))).numpy()
    np.testing.assert_allclose(x @ w_f + b_f, unfolded, rtol=1e-10, atol=1e-10)


def test_fold_batchnorm_equals_the_provided_test_mode_batchnorm():
    w, b, gamma, beta, rm, rv = _bn_case(22, 6, 4)
    x = _rng(23).normal(size=(9, 6))
    bn_param = {"mode": "test", "eps": 1e-5, "running_mean": rm, "running_var": rv}
    expected = R.batchnorm_forward(x @ w + b, gamma, beta, bn_param)[0]
    w_f, b_f = R.fold_batchnorm(w, b, gamma, beta, rm, rv, 1e-5)
    np.testing.assert_allclose(x @ w_f + b_f, expected, rtol=1e-12, atol=1e-12)


def test_fold_batchnorm_keeps_float32_and_leaves_its_inputs_alone():
    arrays = [a.astype(np.float32) for a in _bn_case(24, 3, 2)]
    before = [a.copy() for a in arrays]
    w_f, b_f = R.fold_batchnorm(*arrays, 1e-5)
    assert w_f.dtype == b_f.dtype == np.float32
    for a, c in zip(arrays, before, strict=True):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("index, value, exc, name", [
    (0, np.ones(3), ValueError, "w"),
    (1, np.ones(4), ValueError, "b"),
    (5, np.ones(4), ValueError, "running_var"),
    (6, -1.0, ValueError, "eps"),
    (6, "1e-5", TypeError, "eps"),
    (5, np.zeros(2), ValueError, "running_var"),
])
def test_fold_batchnorm_bad_input_names_the_argument(index, value, exc, name):
    args = [*_bn_case(25, 3, 2), 1e-5]
    args[index] = value
    if index == 5 and value.shape == (2,):
        args[6] = 0.0  # zero variance and no eps: division by zero refused
    with pytest.raises(exc, match=name):
        R.fold_batchnorm(*args)
