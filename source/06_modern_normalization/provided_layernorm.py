"""LayerNorm forward and backward passes, provided for assignment 06.

These are the course's reference solutions of notebook 05 (``torch.nn.LayerNorm(D)`` semantics:
each row normalized over its D features with the biased variance, eps inside the square root),
released after 05's deadline. Section 2 of notebook 06 starts from ``layernorm_backward``.

Generated from autograder/reference/beyond.py by ``python -m autograder.tools.provided``; do not edit.
"""

import numpy as np

from course.validate import as_float_array, check_real, check_vector


def _param_dict(name: str, param) -> dict:
    if not isinstance(param, dict):
        raise TypeError(f"{name} must be a dict, got {type(param).__name__}")
    return param


def _standardize_last(v: np.ndarray, eps: float):
    """Mean, biased variance, 1/sqrt(var + eps) and x_hat over the last axis of ``v``."""
    mean = v.mean(axis=-1)
    xmu = v - mean[..., None]
    var = np.einsum("...j,...j->...", xmu, xmu) / v.shape[-1]
    inv_std = 1.0 / np.sqrt(var + eps)
    return mean, var, inv_std, xmu * inv_std[..., None]


def _centered_backward(g: np.ndarray, x_hat: np.ndarray, inv_std: np.ndarray, axis) -> np.ndarray:
    """Gradient through ``x_hat = (v - mean(v)) / sqrt(var(v) + eps)`` taken over ``axis``.

    ``g`` is dL/dx_hat; the result is ``inv_std / M * (M g - sum g - x_hat sum(g x_hat))``, sums
    over ``axis`` (M values each), ``inv_std`` broadcastable against ``g``. This is the closed
    form of Ioffe & Szegedy (2015), Sec. 3, over whichever axis the statistics were taken.
    """
    M = np.prod([g.shape[a] for a in np.atleast_1d(axis)])
    dsum = g.sum(axis=axis, keepdims=True)
    dproj = (g * x_hat).sum(axis=axis, keepdims=True)
    return inv_std * (g - dsum / M - x_hat * (dproj / M))


def _backward_cache(dout, cache, keys, ndim: int, made_by: str):
    """Validate a backward pass's ``(dout, cache)``; return ``dout`` as a float array."""
    if not isinstance(cache, dict):
        raise TypeError(f"cache must be the dict returned by {made_by}, got {type(cache).__name__}")
    missing = [k for k in keys if k not in cache]
    if missing:
        raise ValueError(f"cache is missing {missing}; pass the cache returned by {made_by}")
    dout = as_float_array("dout", dout, ndim=ndim)
    if dout.shape != np.shape(cache["x_hat"]):
        raise ValueError(f"dout must have the shape of x, {np.shape(cache['x_hat'])}, got {dout.shape}")
    return dout


def layernorm_forward(x, gamma, beta, ln_param):
    """LayerNorm forward pass, PyTorch ``nn.LayerNorm(D)`` semantics (Ba et al. 2016, Sec. 3).

    Each sample (row) is normalized over its own D features with the biased variance:
    ``x_hat[i] = (x[i] - mean_i) / sqrt(var_i + eps)``, ``out = gamma * x_hat + beta``. No
    statistic crosses the batch, so train and test mode compute the same thing.

    Parameters
    ----------
    x : ndarray of float, shape (N, D)
        Never modified; float32 in, float32 out.
    gamma, beta : ndarray, shape (D,)
        Per-feature scale and shift.
    ln_param : dict
        ``eps`` (default 1e-5). A ``mode`` key, if present, changes nothing; nothing is written.

    Returns
    -------
    out : ndarray, shape (N, D), dtype of x
    cache : dict
        ``x`` (N, D); ``mean``, ``var``, ``inv_std`` (N,) per-sample statistics,
        ``inv_std = 1 / sqrt(var + eps)``; ``x_hat`` (N, D); ``gamma``, ``beta`` (D,); ``eps``.

    Raises
    ------
    TypeError
        Non-numeric arrays, ln_param not a dict, non-numeric eps.
    ValueError
        x not 2-D, gamma/beta not of shape (D,), eps < 0.
    """
    x = as_float_array("x", x, ndim=2)
    D = x.shape[1]
    gamma = check_vector("gamma", gamma, D)
    beta = check_vector("beta", beta, D)
    eps = check_real("ln_param['eps']", _param_dict("ln_param", ln_param).get("eps", 1e-5), low=0.0)
    mean, var, inv_std, x_hat = _standardize_last(x, eps)
    out = gamma * x_hat + beta
    cache = {"x": x, "mean": mean, "var": var, "inv_std": inv_std, "x_hat": x_hat,
             "gamma": gamma, "beta": beta, "eps": eps}
    return out.astype(x.dtype, copy=False), cache


def layernorm_backward(dout, cache):
    """Backward pass of :func:`layernorm_forward`.

    The BatchNorm closed form with the sums taken along each row (over the D features)::

        dbeta = sum_i dout_i,  dgamma = sum_i dout_i * x_hat_i        (over the batch)
        dx    = inv_std / D * (D g - sum_j g - x_hat * sum_j g * x_hat), g = dout * gamma

    Parameters
    ----------
    dout : ndarray of float, shape (N, D)
        Never modified.
    cache : dict
        From :func:`layernorm_forward`; uses ``x_hat``, ``gamma``, ``inv_std``. Never modified.

    Returns
    -------
    dx : ndarray, shape (N, D)
    dgamma, dbeta : ndarray, shape (D,)

    Raises
    ------
    TypeError
        If cache is not a dict or dout is not numeric.
    ValueError
        If the cache lacks a key or dout does not have the shape of x.
    """
    dout = _backward_cache(dout, cache, ("x_hat", "gamma", "inv_std"), 2, "layernorm_forward")
    x_hat, gamma = cache["x_hat"], cache["gamma"]
    dbeta = dout.sum(axis=0)
    dgamma = np.einsum("ij,ij->j", dout, x_hat)
    dx = _centered_backward(dout * gamma, x_hat, np.asarray(cache["inv_std"])[:, None], axis=1)
    return dx.astype(dout.dtype, copy=False), dgamma, dbeta
