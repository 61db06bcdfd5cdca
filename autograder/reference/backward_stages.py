"""Reference of notebook 03's derivations: the backward pass stage by stage, and the two path
terms from which the closed form is assembled.

Sections 2a-2c: one backward function per stage of notebook 02's forward pass, visited in reverse
(``scale_shift``, ``normalize``, ``batch_stats``). Each returns the gradient of the loss with
respect to its stage's inputs, given the gradient with respect to the stage's outputs, holding
the stage's other inputs fixed. :func:`autograder.reference.batchnorm.batchnorm_backward`'s dx is
``normalize_backward``'s dx plus ``batch_stats_backward``'s (x feeds both stages).

Sections 3a-3b: dx regrouped by the path along which x reaches the loss, each written with
``dx_hat``, ``x_hat`` and ``inv_std`` only. The direct path (mean and variance held fixed) is
``dx_hat * inv_std``; :func:`dx_through_var` and :func:`dx_through_mean` are the other two; their
sum is the closed form of Ioffe & Szegedy (2015), arXiv:1502.03167, Sec. 3.

Every function is checked against finite differences and PyTorch's autograd in
``tests/test_backward_stages.py``.
"""

from __future__ import annotations

import numpy as np

from course.validate import as_float_array, check_real, check_vector


def _same_shape(name: str, a, shape) -> np.ndarray:
    a = as_float_array(name, a, ndim=2)
    if a.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {a.shape}")
    return a


def scale_shift_backward(dout, x_hat, gamma):
    """Backward of ``out = gamma * x_hat + beta`` (Ioffe & Szegedy 2015, Alg. 1 line 4).

    Parameters
    ----------
    dout : ndarray of float, shape (N, D)
        dL/d(out). Never modified.
    x_hat : ndarray of float, shape (N, D)
        The stage's input. Never modified.
    gamma : ndarray of float, shape (D,)

    Returns
    -------
    dx_hat : ndarray, shape (N, D)
        ``dout * gamma``.
    dgamma, dbeta : ndarray, shape (D,)
        ``sum_i dout_i * x_hat_i`` and ``sum_i dout_i``: gamma and beta are shared by the N rows.

    Raises
    ------
    TypeError, ValueError
        Non-numeric input; dout not 2-D, x_hat not of dout's shape, gamma not of shape (D,).
    """
    dout = as_float_array("dout", dout, ndim=2)
    x_hat = _same_shape("x_hat", x_hat, dout.shape)
    gamma = check_vector("gamma", gamma, dout.shape[1])
    return dout * gamma, np.einsum("ij,ij->j", dout, x_hat), dout.sum(axis=0)


def normalize_backward(dx_hat, x, mean, var, eps):
    """Backward of ``x_hat = (x - mean) / sqrt(var + eps)`` with respect to each of its three
    inputs, the other two held fixed (Alg. 1 line 3; the gradients of Sec. 3).

    Parameters
    ----------
    dx_hat : ndarray of float, shape (N, D)
        dL/d(x_hat). Never modified.
    x : ndarray of float, shape (N, D)
    mean, var : ndarray of float, shape (D,)
        The statistics the forward pass was given (the batch's in train mode; any in general).
    eps : float, >= 0

    Returns
    -------
    dx : ndarray, shape (N, D)
        ``dx_hat / sqrt(var + eps)``: the direct path only (mean and var fixed).
    dmean : ndarray, shape (D,)
        ``-sum_i dx_hat_i / sqrt(var + eps)``.
    dvar : ndarray, shape (D,)
        ``-0.5 * (var + eps)**-1.5 * sum_i dx_hat_i * (x_i - mean)``.

    Raises
    ------
    TypeError, ValueError
        Non-numeric input, mismatched shapes, negative eps.
    """
    dx_hat = as_float_array("dx_hat", dx_hat, ndim=2)
    x = _same_shape("x", x, dx_hat.shape)
    D = dx_hat.shape[1]
    mean = check_vector("mean", mean, D)
    var = check_vector("var", var, D)
    eps = check_real("eps", eps, low=0.0)
    inv_std = 1.0 / np.sqrt(var + eps)
    dmean = -inv_std * dx_hat.sum(axis=0)
    dvar = -0.5 * inv_std**3 * np.einsum("ij,ij->j", dx_hat, x - mean)
    return (dx_hat * inv_std).astype(x.dtype, copy=False), dmean, dvar


def batch_stats_backward(dmean, dvar, x):
    """Backward of ``mean = x.mean(axis=0)``, ``var = ((x - mean)**2).mean(axis=0)`` (Alg. 1
    lines 1-2): the gradient that reaches x through the two batch statistics.

    ``var`` depends on x directly and through ``mean``; the second dependence contributes
    ``dvar * (-2 / N) * sum_i (x_i - mean) = 0``, so ``dx = (dmean + 2 * dvar * (x - mean)) / N``.

    Parameters
    ----------
    dmean, dvar : ndarray of float, shape (D,)
        dL/d(mean) and dL/d(var). Never modified.
    x : ndarray of float, shape (N, D)
        The stage's input. Never modified.

    Returns
    -------
    dx : ndarray, shape (N, D), dtype of x

    Raises
    ------
    TypeError, ValueError
        Non-numeric input, x not 2-D or without rows, dmean/dvar not of shape (D,).
    """
    x = as_float_array("x", x, ndim=2)
    N, D = x.shape
    if N == 0:
        raise ValueError(f"x must have at least one row, got shape {x.shape}")
    dmean = check_vector("dmean", dmean, D)
    dvar = check_vector("dvar", dvar, D)
    dx = (x - x.mean(axis=0)) * (2.0 * dvar / N) + dmean / N
    return dx.astype(x.dtype, copy=False)


def _path_inputs(dx_hat, inv_std) -> tuple[np.ndarray, np.ndarray]:
    dx_hat = as_float_array("dx_hat", dx_hat, ndim=2)
    return dx_hat, check_vector("inv_std", inv_std, dx_hat.shape[1])


def dx_through_var(dx_hat, x_hat, inv_std):
    """The part of dx that reaches x through the batch variance, written with x_hat.

    ``-(inv_std / N) * x_hat * sum_i dx_hat_i * x_hat_i``: ``batch_stats_backward``'s variance
    term, ``2 * dvar * (x - mean) / N``, with ``normalize_backward``'s dvar and
    ``x - mean = x_hat / inv_std`` substituted.

    Parameters
    ----------
    dx_hat, x_hat : ndarray of float, shape (N, D)
        Never modified.
    inv_std : ndarray of float, shape (D,)
        ``1 / sqrt(var + eps)``.

    Returns
    -------
    ndarray, shape (N, D)

    Raises
    ------
    TypeError, ValueError
        Non-numeric input or mismatched shapes.
    """
    dx_hat, inv_std = _path_inputs(dx_hat, inv_std)
    x_hat = _same_shape("x_hat", x_hat, dx_hat.shape)
    N = dx_hat.shape[0]
    return x_hat * (-inv_std / N * np.einsum("ij,ij->j", dx_hat, x_hat))


def dx_through_mean(dx_hat, inv_std):
    """The part of dx that reaches x through the batch mean: the same row for every sample.

    ``-(inv_std / N) * sum_i dx_hat_i``: ``normalize_backward``'s dmean spread over the rows by
    ``batch_stats_backward``; the mean's path through the variance adds nothing, because the
    deviations ``x_i - mean`` sum to zero.

    Parameters
    ----------
    dx_hat : ndarray of float, shape (N, D)
        Never modified.
    inv_std : ndarray of float, shape (D,)

    Returns
    -------
    ndarray, shape (N, D)
        Every row equal.

    Raises
    ------
    TypeError, ValueError
        Non-numeric input or mismatched shapes.
    """
    dx_hat, inv_std = _path_inputs(dx_hat, inv_std)
    N = dx_hat.shape[0]
    row = -inv_std / N * dx_hat.sum(axis=0)
    return np.broadcast_to(row, dx_hat.shape).copy()
