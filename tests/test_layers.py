"""course.layers: affine, ReLU and softmax loss.

Oracles we did not write: centered finite differences (autograder.reference.numerical_gradient,
with an upstream gradient that is not all ones), PyTorch's ``F.linear`` / ``F.relu`` / ``F.cross_entropy`` and autograd,
scikit-learn's ``log_loss``, and the value log(C) of the loss at chance.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import log_loss

from autograder.reference import numerical_gradient as numerical_gradient_array
from course.gradcheck import rel_error
from course.layers import (
    affine_backward,
    affine_forward,
    relu_backward,
    relu_forward,
    softmax_loss,
)

# Centered differences with h = 1e-5 in float64: truncation O(h^2) ~ 1e-10 and rounding
# ~ 1e-16 / h ~ 1e-11 relative; 1e-8 leaves two orders of margin for entries of order 1e-2.
GRAD_TOL = 1e-8


def _affine_case(seed, shape=(4, 2, 3), M=5, dtype=np.float64):
    r = np.random.default_rng(seed)
    x = r.normal(size=shape).astype(dtype)
    D = int(np.prod(shape[1:]))
    w = r.normal(size=(D, M)).astype(dtype)
    b = r.normal(size=M).astype(dtype)
    dout = r.normal(size=(shape[0], M)).astype(dtype)
    return x, w, b, dout


# --------------------------------------------------------------------------- affine
@pytest.mark.parametrize("shape", [(4, 6), (4, 2, 3), (3, 2, 1, 2)])
def test_affine_forward_matches_torch_linear(shape):
    x, w, b, _ = _affine_case(0, shape)
    out, _ = affine_forward(x, w, b)
    expected = F.linear(torch.from_numpy(x.reshape(shape[0], -1)), torch.from_numpy(w.T.copy()),
                        torch.from_numpy(b)).numpy()
    assert out.shape == (shape[0], w.shape[1])
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


def test_affine_forward_hand_case():
    x = np.array([[1.0, 2.0]])
    w = np.array([[1.0, 0.0, -1.0], [2.0, 1.0, 0.5]])
    b = np.array([0.5, -1.0, 0.0])
    out, _ = affine_forward(x, w, b)
    # [1*1 + 2*2 + 0.5, 1*0 + 2*1 - 1, 1*-1 + 2*0.5 + 0] = [5.5, 1, 0]
    np.testing.assert_array_equal(out, [[5.5, 1.0, 0.0]])


@pytest.mark.parametrize("seed, shape", [(1, (4, 6)), (2, (4, 2, 3)), (3, (2, 3, 2, 2))])
def test_affine_backward_matches_finite_differences(seed, shape):
    x, w, b, dout = _affine_case(seed, shape)
    _, cache = affine_forward(x, w, b)
    dx, dw, db = affine_backward(dout, cache)
    dx_num = numerical_gradient_array(lambda v: affine_forward(v, w, b)[0], x.copy(), dout)
    dw_num = numerical_gradient_array(lambda v: affine_forward(x, v, b)[0], w.copy(), dout)
    db_num = numerical_gradient_array(lambda v: affine_forward(x, w, v)[0], b.copy(), dout)
    assert dx.shape == x.shape, "dx must have x's original (unflattened) shape"
    assert rel_error(dx, dx_num) < GRAD_TOL, f"dx: {rel_error(dx, dx_num):.2e}"
    assert rel_error(dw, dw_num) < GRAD_TOL, f"dw: {rel_error(dw, dw_num):.2e}"
    assert rel_error(db, db_num) < GRAD_TOL, f"db: {rel_error(db, db_num):.2e}"


def test_affine_float32_in_float32_out_and_inputs_untouched():
    x, w, b, dout = _affine_case(4, dtype=np.float32)
    copies = [a.copy() for a in (x, w, b, dout)]
    out, cache = affine_forward(x, w, b)
    dx, dw, db = affine_backward(dout, cache)
    assert {a.dtype for a in (out, dx, dw, db)} == {np.dtype(np.float32)}
    for before, after in zip(copies, (x, w, b, dout), strict=True):
        np.testing.assert_array_equal(before, after)


def test_affine_bad_inputs():
    x, w, b, dout = _affine_case(5, (4, 6))
    with pytest.raises(ValueError, match=r"w must have shape \(6, M\)"):
        affine_forward(x, w[:5], b)
    with pytest.raises(ValueError, match=r"b must have shape \(5,\)"):
        affine_forward(x, w, b[:4])
    with pytest.raises(ValueError, match="x must have shape"):
        affine_forward(x[0], w, b)
    with pytest.raises(TypeError, match="x must hold real numbers"):
        affine_forward(np.full((4, 6), "a"), w, b)
    _, cache = affine_forward(x, w, b)
    with pytest.raises(ValueError, match=r"dout must have shape \(4, 5\)"):
        affine_backward(dout[:, :4], cache)
    with pytest.raises(TypeError, match="cache must be the"):
        affine_backward(dout, {"x": x})


# --------------------------------------------------------------------------- relu
def test_relu_forward_matches_torch_and_keeps_dtype():
    r = np.random.default_rng(6)
    for dtype in (np.float64, np.float32):
        x = r.normal(size=(5, 3, 2)).astype(dtype)
        out, _ = relu_forward(x)
        assert out.dtype == dtype and out.shape == x.shape
        np.testing.assert_array_equal(out, F.relu(torch.from_numpy(x)).numpy())


def test_relu_backward_matches_finite_differences():
    r = np.random.default_rng(7)
    x = r.normal(size=(6, 5))
    x[np.abs(x) < 1e-3] = 0.5  # no entry within h of the kink, where the derivative jumps
    dout = r.normal(size=x.shape)
    _, cache = relu_forward(x)
    dx = relu_backward(dout, cache)
    dx_num = numerical_gradient_array(lambda v: relu_forward(v)[0], x.copy(), dout)
    assert rel_error(dx, dx_num) < GRAD_TOL


def test_relu_backward_hand_case_and_dtype():
    x = np.array([[-1.0, 0.0, 2.0]], dtype=np.float32)
    dout = np.array([[3.0, 4.0, 5.0]], dtype=np.float32)
    dx = relu_backward(dout, relu_forward(x)[1])
    # negative input and the kink at 0 pass no gradient (PyTorch's convention at 0)
    np.testing.assert_array_equal(dx, [[0.0, 0.0, 5.0]])
    assert dx.dtype == np.float32


def test_relu_bad_inputs():
    _, cache = relu_forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"dout must have the shape of x, \(2, 3\)"):
        relu_backward(np.ones((3, 2)), cache)
    with pytest.raises(TypeError, match="x must hold real numbers"):
        relu_forward(np.array([[True, False]]))


# --------------------------------------------------------------------------- softmax loss
def _scores_case(seed, N=7, C=5, scale=3.0):
    r = np.random.default_rng(seed)
    return scale * r.normal(size=(N, C)), r.integers(0, C, size=N)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_softmax_loss_matches_torch_cross_entropy_and_autograd(seed):
    scores, y = _scores_case(seed)
    loss, dscores = softmax_loss(scores, y)
    s = torch.tensor(scores, requires_grad=True)
    expected = F.cross_entropy(s, torch.from_numpy(y))  # mean over the batch, like ours
    expected.backward()
    assert math.isclose(loss, expected.item(), rel_tol=1e-12)
    np.testing.assert_allclose(dscores, s.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_softmax_loss_matches_sklearn_log_loss():
    scores, y = _scores_case(3, N=20, C=4)
    p = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    loss, _ = softmax_loss(scores, y)
    assert math.isclose(loss, log_loss(y, p, labels=np.arange(4)), rel_tol=1e-10)


def test_softmax_loss_gradient_matches_finite_differences():
    # scale 1: every probability stays above ~1e-2, so no gradient entry is so small that the
    # ~1e-11 rounding error of the difference quotient dominates the relative error
    scores, y = _scores_case(4, scale=1.0)
    _, dscores = softmax_loss(scores, y)
    num = numerical_gradient_array(lambda s: np.array(softmax_loss(s, y)[0]), scores.copy(),
                                   np.array(1.0))
    assert rel_error(dscores, num) < GRAD_TOL


@pytest.mark.parametrize("C", [2, 10, 100])
def test_softmax_loss_at_small_random_scores_is_log_c(C):
    scores, y = _scores_case(5, N=50, C=C, scale=1e-3)
    loss, dscores = softmax_loss(scores, y)
    # |s| ~ 1e-3 moves each log-probability by O(1e-3) from -log(C)
    assert abs(loss - math.log(C)) < 1e-2
    # each row of the gradient sums to 0: softmax is invariant to adding a constant to a row
    np.testing.assert_allclose(dscores.sum(axis=1), 0.0, atol=1e-15)


def test_softmax_loss_is_stable_at_huge_scores():
    scores, y = _scores_case(6)
    shifted = scores + 1e4  # exp(1e4) overflows without the max shift
    loss, dscores = softmax_loss(shifted, y)
    ref_loss, ref_d = softmax_loss(scores, y)
    # the shift by the row maximum makes the loss invariant to a constant; rounding of
    # (s + 1e4) loses about 1e4 * 1e-16 = 1e-12 absolute
    assert math.isclose(loss, ref_loss, rel_tol=1e-9)
    np.testing.assert_allclose(dscores, ref_d, atol=1e-9)


def test_softmax_loss_float32_and_inputs_untouched():
    scores, y = _scores_case(7)
    scores = scores.astype(np.float32)
    s0, y0 = scores.copy(), y.copy()
    loss, dscores = softmax_loss(scores, y)
    assert dscores.dtype == np.float32 and isinstance(loss, float)
    np.testing.assert_array_equal(scores, s0)
    np.testing.assert_array_equal(y, y0)


def test_softmax_loss_bad_inputs():
    scores, y = _scores_case(8, N=4, C=3)
    with pytest.raises(ValueError, match=r"labels in \[0, 3\)"):
        softmax_loss(scores, np.array([0, 1, 3, 2]))
    with pytest.raises(ValueError, match=r"labels in \[0, 3\)"):
        softmax_loss(scores, np.array([0, -1, 2, 2]))
    with pytest.raises(ValueError, match=r"y must have shape \(4,\)"):
        softmax_loss(scores, y[:3])
    with pytest.raises(ValueError, match=r"y must have shape \(4,\)"):
        softmax_loss(scores, y[:, None])
    with pytest.raises(TypeError, match="y must hold integer class labels"):
        softmax_loss(scores, y.astype(float))
    with pytest.raises(ValueError, match="scores must be 2-D"):
        softmax_loss(scores[0], y[:1])
    with pytest.raises(ValueError, match="N >= 1"):
        softmax_loss(np.zeros((0, 3)), np.zeros(0, dtype=int))
