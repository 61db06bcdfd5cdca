"""Reference of assignments 02 and 03: the BatchNorm forward pass in stages, the backward pass, the
numerical gradient and the fixed versions of the bug hunt's published mistakes.

PyTorch's ``torch.nn.BatchNorm1d`` / ``BatchNorm2d`` semantics; the transform is Algorithm 1 of
Ioffe & Szegedy (2015), arXiv:1502.03167, its gradient their Sec. 3.
"""

from __future__ import annotations

import numpy as np

from course.validate import as_float_array, check_real, check_vector


# --------------------------------------------------------------------------- 02 forward, staged
def batch_stats(x):
    """Per-feature batch mean and *biased* variance (Ioffe & Szegedy 2015, Alg. 1, lines 1–2).

    Parameters
    ----------
    x : ndarray of float, shape (N, D)

    Returns
    -------
    mean, var : ndarray, shape (D,), dtype of x
        ``var = mean((x - mean)**2)``, divided by N, computed in two passes so that a large
        offset (mean 1e4) does not cancel the variance away.

    Raises
    ------
    TypeError, ValueError
        Non-numeric input; x not 2-D or with no rows.
    """
    x = as_float_array("x", x, ndim=2)
    if x.shape[0] == 0:
        raise ValueError(f"x must have at least one row, got shape {x.shape}")
    mean = x.mean(axis=0)
    xmu = x - mean
    var = np.einsum("ij,ij->j", xmu, xmu) / x.shape[0]
    return mean, var.astype(x.dtype, copy=False)


def normalize(x, mean, var, eps):
    """``x_hat = (x - mean) / sqrt(var + eps)`` (Alg. 1, line 3).

    Parameters
    ----------
    x : ndarray of float, shape (N, D)
    mean, var : ndarray, shape (D,)
    eps : float, ≥ 0
        Added to the variance *inside* the square root.

    Returns
    -------
    x_hat : ndarray, shape (N, D), dtype of x

    Raises
    ------
    TypeError, ValueError
        Non-numeric input, mismatched shapes, negative eps.
    """
    x = as_float_array("x", x, ndim=2)
    mean = check_vector("mean", mean, x.shape[1])
    var = check_vector("var", var, x.shape[1])
    eps = check_real("eps", eps, low=0.0)
    x_hat = (x - mean) / np.sqrt(var + eps)
    return x_hat.astype(x.dtype, copy=False)


def scale_shift(x_hat, gamma, beta):
    """``out = gamma * x_hat + beta`` (Alg. 1, line 4).

    Parameters
    ----------
    x_hat : ndarray of float, shape (N, D)
    gamma, beta : ndarray, shape (D,)

    Returns
    -------
    out : ndarray, shape (N, D), dtype of x_hat
    """
    x_hat = as_float_array("x_hat", x_hat, ndim=2)
    gamma = check_vector("gamma", gamma, x_hat.shape[1])
    beta = check_vector("beta", beta, x_hat.shape[1])
    return (gamma * x_hat + beta).astype(x_hat.dtype, copy=False)


def _bn_settings(bn_param, D: int, dtype):
    """Validate ``bn_param`` and return (mode, eps, momentum, running_mean, running_var)."""
    if not isinstance(bn_param, dict):
        raise TypeError(f"bn_param must be a dict, got {type(bn_param).__name__}")
    mode = bn_param.get("mode")
    if mode not in ("train", "test"):
        raise ValueError(f"bn_param['mode'] must be 'train' or 'test', got {mode!r}")
    eps = check_real("bn_param['eps']", bn_param.get("eps", 1e-5), low=0.0)
    momentum = check_real("bn_param['momentum']", bn_param.get("momentum", 0.1), 0.0, 1.0)
    rm = bn_param.get("running_mean")
    rv = bn_param.get("running_var")
    rm = np.zeros(D, dtype=dtype) if rm is None else check_vector("bn_param['running_mean']", rm, D)
    rv = np.ones(D, dtype=dtype) if rv is None else check_vector("bn_param['running_var']", rv, D)
    return mode, eps, momentum, rm, rv


# --------------------------------------------------------------------------- 02/03 forward
def batchnorm_forward(x, gamma, beta, bn_param):
    """BatchNorm forward pass with PyTorch ``BatchNorm1d`` semantics.

    Parameters
    ----------
    x : ndarray of float, shape (N, D)
        Never modified. Its dtype is kept: float32 in, float32 out.
    gamma, beta : ndarray, shape (D,)
        Scale and shift.
    bn_param : dict
        ``mode``: ``'train'`` or ``'test'`` (required). ``eps`` (default 1e-5), ``momentum``
        (default 0.1), ``running_mean`` (default zeros(D)), ``running_var`` (default ones(D)).
        In train mode the updated running statistics are written back into this dict:
        ``running = (1 - momentum) * running + momentum * batch_stat``, with the *unbiased*
        batch variance (divide by N - 1) for ``running_var``, as in PyTorch.

    Returns
    -------
    out : ndarray, shape (N, D), dtype of x
    cache : dict
        Every node of the computational graph, for the backward pass:
        ``x`` (N, D) input; ``mean`` (D,) mu_B; ``xmu`` (N, D) x - mu_B; ``var`` (D,) biased
        sigma²_B; ``std`` (D,) sqrt(var + eps); ``inv_std`` (D,) 1 / std; ``x_hat`` (N, D);
        ``gamma``, ``beta`` (D,); ``eps`` float; ``mode`` str. In test mode ``mean`` and ``var``
        are the running statistics, which are constants for the backward pass.

    Raises
    ------
    TypeError
        Non-numeric arrays, bn_param not a dict, non-numeric eps or momentum.
    ValueError
        x not 2-D, gamma/beta/running stats not of shape (D,), mode not 'train'/'test', eps < 0,
        momentum outside [0, 1], or train mode with N = 1 (PyTorch: "Expected more than 1 value
        per channel when training").
    """
    x = as_float_array("x", x, ndim=2)
    N, D = x.shape
    gamma = check_vector("gamma", gamma, D)
    beta = check_vector("beta", beta, D)
    mode, eps, momentum, rm, rv = _bn_settings(bn_param, D, x.dtype)
    if mode == "train":
        if N < 2:
            raise ValueError(
                f"train mode needs more than 1 value per feature to compute a variance, got N={N}"
            )
        mean = x.mean(axis=0)
        xmu = x - mean
        var = np.einsum("ij,ij->j", xmu, xmu) / N
        bn_param["running_mean"] = (1.0 - momentum) * rm + momentum * mean
        bn_param["running_var"] = (1.0 - momentum) * rv + momentum * var * (N / (N - 1))
    else:
        mean, var = rm, rv
        xmu = x - mean
    std = np.sqrt(var + eps)
    inv_std = 1.0 / std
    x_hat = xmu * inv_std
    out = x_hat * gamma
    out += beta
    cache = {
        "x": x, "mean": mean, "xmu": xmu, "var": var, "std": std, "inv_std": inv_std,
        "x_hat": x_hat, "gamma": gamma, "beta": beta, "eps": eps, "mode": mode,
    }
    return out.astype(x.dtype, copy=False), cache


def _nchw_to_rows(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> (N*H*W, C): move channels last, then flatten the rest."""
    return x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])


def _rows_to_nchw(rows: np.ndarray, shape) -> np.ndarray:
    N, C, H, W = shape
    return rows.reshape(N, H, W, C).transpose(0, 3, 1, 2)


def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    """Per-channel (spatial) BatchNorm, PyTorch ``BatchNorm2d`` semantics.

    Statistics are taken per channel over the N, H and W axes: the (N, C, H, W) input is viewed as
    N·H·W rows of C features (channels moved last, *then* reshaped) and passed through
    :func:`batchnorm_forward`.

    Parameters
    ----------
    x : ndarray of float, shape (N, C, H, W)
    gamma, beta : ndarray, shape (C,)
    bn_param : dict
        As for :func:`batchnorm_forward`; running statistics have shape (C,) and the unbiased
        variance divides by N·H·W - 1.

    Returns
    -------
    out : ndarray, shape (N, C, H, W), dtype of x
    cache : dict
        The cache of :func:`batchnorm_forward` on the (N·H·W, C) view, plus
        ``input_shape`` = (N, C, H, W).

    Raises
    ------
    TypeError, ValueError
        As :func:`batchnorm_forward`; also if x is not 4-D. Train mode needs N·H·W ≥ 2.
    """
    x = as_float_array("x", x, ndim=4)
    out_rows, cache = batchnorm_forward(_nchw_to_rows(x), gamma, beta, bn_param)
    cache["input_shape"] = x.shape
    return _rows_to_nchw(out_rows, x.shape), cache


# --------------------------------------------------------------------------- 03 backward
# The gradients are those of Ioffe & Szegedy (2015), arXiv:1502.03167, Sec. 3; the staged graph
# follows F. Kratzert, "Understanding the backward pass through Batch Normalization Layer" (2016).
def numerical_gradient(f, x, dout, h=1e-5):
    """Centered-difference gradient of ``sum(f(x) * dout)`` with respect to the array ``x``.

    ``grad[i] = sum((f(x + h e_i) - f(x - h e_i)) * dout) / (2 h)``: truncation error O(h²),
    against O(h) for the one-sided difference. ``x`` is perturbed in place, one entry at a time,
    and each entry is restored to its saved value, so ``x`` is bit-for-bit unchanged afterwards.

    Parameters
    ----------
    f : callable
        Maps an array shaped like ``x`` to an array shaped like ``dout``.
    x : ndarray of float, any shape
        Writable floating-point array, the point at which to differentiate.
    dout : array_like of float
        Upstream gradient, the shape of ``f(x)``. Never modified.
    h : float, optional
        Step, > 0. 1e-5 suits float64 (error ~1e-10); float32 needs ~1e-2.

    Returns
    -------
    grad : ndarray, shape and dtype of ``x``

    Raises
    ------
    TypeError
        If ``f`` is not callable or ``x`` is not a floating-point ndarray.
    ValueError
        If ``h`` is not positive, ``x`` is read-only, or ``f(x)`` and ``dout`` differ in shape.
    """
    if not callable(f):
        raise TypeError(f"f must be callable, got {type(f).__name__}")
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"x must be a floating-point ndarray, got {type(x).__name__}")
    if not x.flags.writeable:
        raise ValueError("x must be writable: it is perturbed in place (and restored)")
    h = check_real("h", h)
    if not h > 0:
        raise ValueError(f"h must be positive, got {h}")
    dout = as_float_array("dout", dout)
    grad = np.zeros(x.shape, dtype=np.float64)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        plus = np.array(f(x), dtype=np.float64)  # a copy: f may return a view of x
        x[i] = old - h
        minus = np.array(f(x), dtype=np.float64)
        x[i] = old
        if plus.shape != dout.shape:
            raise ValueError(f"f(x) has shape {plus.shape} but dout has shape {dout.shape}")
        grad[i] = np.sum((plus - minus) * dout) / (2.0 * h)
    return grad.astype(x.dtype, copy=False)


_CACHE_KEYS = ("x", "mean", "xmu", "var", "std", "inv_std", "x_hat", "gamma", "beta", "eps", "mode")


def _backward_inputs(dout, cache):
    """Validate ``(dout, cache)`` for the backward pass; return ``dout`` as a float array."""
    if not isinstance(cache, dict):
        raise TypeError(f"cache must be the dict returned by batchnorm_forward, got {type(cache).__name__}")
    missing = [k for k in _CACHE_KEYS if k not in cache]
    if missing:
        raise ValueError(f"cache is missing {missing}; pass the cache returned by batchnorm_forward")
    dout = as_float_array("dout", dout, ndim=2)
    if dout.shape != cache["x_hat"].shape:
        raise ValueError(f"dout must have the shape of x, {cache['x_hat'].shape}, got {dout.shape}")
    return dout


def batchnorm_backward(dout, cache):
    """BatchNorm backward pass: gradients of the loss with respect to x, gamma and beta.

    Train mode uses the closed form (derived in notebook 03; Ioffe & Szegedy 2015, Sec. 3)::

        dbeta  = sum_i dout_i
        dgamma = sum_i dout_i * x_hat_i
        dx     = gamma * inv_std / N * (N * dout - dbeta - x_hat * dgamma)

    computed in one output buffer, with no other (N, D) temporary. In test mode the statistics
    are the running ones, constants of the graph, so ``dx = gamma * inv_std * dout`` (what
    PyTorch's autograd gives for ``BatchNorm1d`` in ``eval()``).

    Parameters
    ----------
    dout : ndarray of float, shape (N, D)
        Upstream gradient dL/d(out). Never modified.
    cache : dict
        From :func:`batchnorm_forward`; uses ``x_hat``, ``gamma``, ``inv_std`` and ``mode``.
        Never modified.

    Returns
    -------
    dx : ndarray, shape (N, D)
    dgamma, dbeta : ndarray, shape (D,)
        Summed over the batch: gamma and beta are shared by all N rows. All three have the
        dtype of ``dout`` and the cache (float32 in, float32 out).

    Raises
    ------
    TypeError
        If cache is not a dict or dout is not numeric.
    ValueError
        If the cache lacks a node or dout is not 2-D with the shape of x.
    """
    dout = _backward_inputs(dout, cache)
    x_hat, gamma, inv_std = cache["x_hat"], cache["gamma"], cache["inv_std"]
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = np.einsum("ij,ij->j", dout, x_hat)  # column sums of dout * x_hat, no temporary
    if cache["mode"] == "test":
        return dout * (gamma * inv_std), dgamma, dbeta
    dx = x_hat * (dgamma / N)  # the path through the variance
    dx += dbeta / N  # the path through the mean
    np.subtract(dout, dx, out=dx)
    dx *= gamma * inv_std
    return dx, dgamma, dbeta


def batchnorm_backward_alt(dout, cache):
    """The closed-form backward pass, written as the formula.

    ``dx = (gamma * inv_std / N) * (N * dout - sum(dout) - x_hat * sum(dout * x_hat))``, sums
    over the batch axis. Same inputs, outputs and errors as :func:`batchnorm_backward`.
    """
    dout = _backward_inputs(dout, cache)
    if cache["mode"] == "test":
        return batchnorm_backward(dout, cache)
    x_hat, gamma, inv_std = cache["x_hat"], cache["gamma"], cache["inv_std"]
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = (gamma * inv_std / N) * (N * dout - dbeta - x_hat * dgamma)
    return dx, dgamma, dbeta


def spatial_batchnorm_backward(dout, cache):
    """Backward pass of :func:`spatial_batchnorm_forward` (per-channel BatchNorm).

    Parameters
    ----------
    dout : ndarray of float, shape (N, C, H, W)
        Never modified.
    cache : dict
        From :func:`spatial_batchnorm_forward`: the flat cache on the (N·H·W, C) rows, plus
        ``input_shape``.

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
    dgamma, dbeta : ndarray, shape (C,)
        Summed over N, H and W.

    Raises
    ------
    TypeError, ValueError
        As :func:`batchnorm_backward`; also if dout is not 4-D with ``cache['input_shape']``.
    """
    dout = as_float_array("dout", dout, ndim=4)
    if not isinstance(cache, dict) or "input_shape" not in cache:
        raise ValueError("cache must be the dict returned by spatial_batchnorm_forward")
    if dout.shape != tuple(cache["input_shape"]):
        raise ValueError(f"dout must have shape {tuple(cache['input_shape'])}, got {dout.shape}")
    dx_rows, dgamma, dbeta = batchnorm_backward(_nchw_to_rows(dout), cache)
    return _rows_to_nchw(dx_rows, dout.shape), dgamma, dbeta


# --------------------------------------------------------------------------- 03 bug hunt, fixed
# Each bug-hunt exercise asks for the buggy function with its one mistake fixed. A fixed function
# *is* a correct BatchNorm backward, so the reference for both is batchnorm_backward; the
# notebook's solutions show each fix in the style of the buggy code.
def fixed_backward_inv_n(dout, cache):
    """Bug hunt 2, fixed: the batch mean divides by N, not by D (MISCONCEPTIONS M16).

    Same contract, shapes and errors as :func:`batchnorm_backward` (train mode).
    """
    return batchnorm_backward(dout, cache)


def fixed_backward_dvar(dout, cache):
    """Bug hunt 3, fixed: dvar uses x - mu, not x_hat (MISCONCEPTIONS M18).

    Same contract, shapes and errors as :func:`batchnorm_backward` (train mode).
    """
    return batchnorm_backward(dout, cache)
