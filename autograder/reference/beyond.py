"""Reference of assignment 05: LayerNorm, GroupNorm and Batch Renormalization.
"""

from __future__ import annotations

import numpy as np

from course.validate import as_float_array, check_real, check_vector


# --------------------------------------------------------------------------- 05 beyond BatchNorm
# LayerNorm (Ba, Kiros & Hinton 2016, arXiv:1607.06450) with torch.nn.LayerNorm(D) semantics,
# GroupNorm (Wu & He 2018, arXiv:1803.08494) with torch.nn.GroupNorm(G, C) semantics, and Batch
# Renormalization (Ioffe 2017, arXiv:1702.03275, Algorithm 1). All three normalize with a biased
# variance and eps inside the square root; their backward passes share the closed form below.
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


def _check_groups(G, C: int) -> int:
    if isinstance(G, bool) or not isinstance(G, (int, np.integer)):
        raise TypeError(f"G must be an int, got {type(G).__name__} {G!r}")
    if G < 1 or C % G:
        raise ValueError(f"G must be a positive divisor of the number of channels C={C}, got G={G}")
    return int(G)


def spatial_groupnorm_forward(x, gamma, beta, G, gn_param):
    """GroupNorm forward pass, PyTorch ``nn.GroupNorm(G, C)`` semantics (Wu & He 2018, Sec. 3).

    The C channels form G groups of C/G consecutive channels (group k holds channels
    k*C/G ... (k+1)*C/G - 1). Each sample and group is normalized over its (C/G, H, W) values
    with the biased variance; then the affine part is applied **per channel**. G = 1 is
    LayerNorm over (C, H, W) and G = C is InstanceNorm (Ulyanov et al. 2016, arXiv:1607.08022).

    Parameters
    ----------
    x : ndarray of float, shape (N, C, H, W)
        Never modified; float32 in, float32 out.
    gamma, beta : ndarray, shape (C,)
        Per-channel scale and shift (CS231n stores them as (1, C, 1, 1); here they are (C,)).
    G : int
        Number of groups, a divisor of C.
    gn_param : dict
        ``eps`` (default 1e-5). Nothing is written to it.

    Returns
    -------
    out : ndarray, shape (N, C, H, W), dtype of x
    cache : dict
        ``x`` (N, C, H, W); ``G`` int; ``mean``, ``var``, ``inv_std`` (N, G); ``x_hat``
        (N, C, H, W); ``gamma``, ``beta`` (C,); ``eps``.

    Raises
    ------
    TypeError
        Non-numeric arrays, G not an int, gn_param not a dict.
    ValueError
        x not 4-D, gamma/beta not of shape (C,), G not a positive divisor of C, eps < 0.
    """
    x = as_float_array("x", x, ndim=4)
    N, C, H, W = x.shape
    gamma = check_vector("gamma", gamma, C)
    beta = check_vector("beta", beta, C)
    G = _check_groups(G, C)
    eps = check_real("gn_param['eps']", _param_dict("gn_param", gn_param).get("eps", 1e-5), low=0.0)
    mean, var, inv_std, x_hat = _standardize_last(x.reshape(N, G, -1), eps)
    x_hat = x_hat.reshape(x.shape)
    out = gamma[:, None, None] * x_hat + beta[:, None, None]
    cache = {"x": x, "G": G, "mean": mean, "var": var, "inv_std": inv_std, "x_hat": x_hat,
             "gamma": gamma, "beta": beta, "eps": eps}
    return out.astype(x.dtype, copy=False), cache


def spatial_groupnorm_backward(dout, cache):
    """Backward pass of :func:`spatial_groupnorm_forward`.

    With ``g = dout * gamma`` (per channel) viewed as (N, G, C/G*H*W) groups of M values, dx is
    the closed form of :func:`layernorm_backward` within every group; dgamma and dbeta are summed
    over N, H and W.

    Parameters
    ----------
    dout : ndarray of float, shape (N, C, H, W)
        Never modified.
    cache : dict
        From :func:`spatial_groupnorm_forward`; uses ``x_hat``, ``gamma``, ``inv_std``, ``G``.

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
    dgamma, dbeta : ndarray, shape (C,)

    Raises
    ------
    TypeError
        If cache is not a dict or dout is not numeric.
    ValueError
        If the cache lacks a key or dout does not have the shape of x.
    """
    keys = ("x_hat", "gamma", "inv_std", "G")
    dout = _backward_cache(dout, cache, keys, 4, "spatial_groupnorm_forward")
    x_hat, gamma, G = cache["x_hat"], cache["gamma"], int(cache["G"])
    N = dout.shape[0]
    dbeta = dout.sum(axis=(0, 2, 3))
    dgamma = (dout * x_hat).sum(axis=(0, 2, 3))
    g = (dout * gamma[:, None, None]).reshape(N, G, -1)
    inv_std = np.asarray(cache["inv_std"])[:, :, None]
    dx = _centered_backward(g, x_hat.reshape(N, G, -1), inv_std, axis=2).reshape(dout.shape)
    return dx.astype(dout.dtype, copy=False), dgamma, dbeta


def _brn_settings(brn_param, D: int, dtype):
    """Validate ``brn_param``; return (mode, eps, momentum, rmax, dmax, running_mean, running_std)."""
    _param_dict("brn_param", brn_param)
    mode = brn_param.get("mode")
    if mode not in ("train", "test"):
        raise ValueError(f"brn_param['mode'] must be 'train' or 'test', got {mode!r}")
    eps = check_real("brn_param['eps']", brn_param.get("eps", 1e-5), low=0.0)
    momentum = check_real("brn_param['momentum']", brn_param.get("momentum", 0.01), 0.0, 1.0)
    rmax = check_real("brn_param['rmax']", brn_param.get("rmax", 3.0))
    if rmax < 1:
        raise ValueError(f"brn_param['rmax'] must be >= 1 (r is clipped to [1/rmax, rmax]), got {rmax}")
    dmax = check_real("brn_param['dmax']", brn_param.get("dmax", 5.0))
    if dmax < 0:
        raise ValueError(f"brn_param['dmax'] must be >= 0 (d is clipped to [-dmax, dmax]), got {dmax}")
    rm, rs = brn_param.get("running_mean"), brn_param.get("running_std")
    rm = np.zeros(D, dtype=dtype) if rm is None else check_vector("brn_param['running_mean']", rm, D)
    rs = np.ones(D, dtype=dtype) if rs is None else check_vector("brn_param['running_std']", rs, D)
    if not np.all(rs > 0):
        raise ValueError(f"brn_param['running_std'] must be positive, got {rs}")
    return mode, eps, momentum, rmax, dmax, rm, rs


def batchrenorm_forward(x, gamma, beta, brn_param):
    """Batch Renormalization forward pass (Ioffe 2017, arXiv:1702.03275, Algorithm 1).

    Train mode, with the running statistics *before* this step's update::

        sigma_B = sqrt(var_B + eps)                   (biased batch variance)
        r = clip(sigma_B / running_std, 1/rmax, rmax)
        d = clip((mu_B - running_mean) / running_std, -dmax, dmax)
        x_hat = (x - mu_B) / sigma_B * r + d,   out = gamma * x_hat + beta

    then ``running_mean += momentum * (mu_B - running_mean)`` and ``running_std += momentum *
    (sigma_B - running_std)``. r and d are constants of the graph (stop-gradient). Test mode:
    ``out = gamma * (x - running_mean) / running_std + beta``. With rmax = 1 and dmax = 0, train
    mode is BatchNorm (Ioffe & Szegedy 2015, Alg. 1).

    Parameters
    ----------
    x : ndarray of float, shape (N, D)
        Never modified; float32 in, float32 out.
    gamma, beta : ndarray, shape (D,)
    brn_param : dict
        ``mode``: ``'train'`` or ``'test'`` (required); ``eps`` (1e-5); ``momentum`` (0.01);
        ``rmax`` (3.0, >= 1); ``dmax`` (5.0, >= 0); ``running_mean`` (default zeros(D));
        ``running_std`` (default ones(D), > 0). Train mode writes the updated running statistics
        back into this dict.

    Returns
    -------
    out : ndarray, shape (N, D), dtype of x
    cache : dict
        ``x`` (N, D); ``mean`` (D,) mu_B; ``xmu`` (N, D); ``var`` (D,); ``std`` (D,) sigma_B;
        ``inv_std`` (D,) 1/sigma_B; ``x_bn`` (N, D) (x - mu_B)/sigma_B; ``r``, ``d`` (D,);
        ``x_hat`` (N, D) the corrected x_bn * r + d; ``running_mean``, ``running_std`` (D,) the
        statistics r and d were computed from (before this step's update); ``gamma``,
        ``beta``; ``eps``; ``mode``. In test mode mean/std are the running statistics, r = 1
        and d = 0.

    Raises
    ------
    TypeError
        Non-numeric arrays or settings, brn_param not a dict.
    ValueError
        x not 2-D, shapes not (D,), mode not 'train'/'test', eps < 0, momentum outside [0, 1],
        rmax < 1, dmax < 0, running_std not positive, or train mode with N = 1.
    """
    x = as_float_array("x", x, ndim=2)
    N, D = x.shape
    gamma = check_vector("gamma", gamma, D)
    beta = check_vector("beta", beta, D)
    mode, eps, momentum, rmax, dmax, rm, rs = _brn_settings(brn_param, D, x.dtype)
    if mode == "test":
        mean, std = rm, rs
        var = std**2
        r, d = np.ones(D, dtype=x.dtype), np.zeros(D, dtype=x.dtype)
    else:
        if N < 2:
            raise ValueError(f"train mode needs more than 1 value per feature, got N={N}")
        mean = x.mean(axis=0)
        var = np.einsum("ij,ij->j", x - mean, x - mean) / N
        std = np.sqrt(var + eps)
        r = np.clip(std / rs, 1.0 / rmax, rmax)
        d = np.clip((mean - rm) / rs, -dmax, dmax)
        brn_param["running_mean"] = rm + momentum * (mean - rm)
        brn_param["running_std"] = rs + momentum * (std - rs)
    xmu = x - mean
    inv_std = 1.0 / std
    x_bn = xmu * inv_std
    x_hat = x_bn * r + d
    out = gamma * x_hat + beta
    cache = {"x": x, "mean": mean, "xmu": xmu, "var": var, "std": std, "inv_std": inv_std,
             "x_bn": x_bn, "r": r, "d": d, "x_hat": x_hat, "running_mean": rm, "running_std": rs,
             "gamma": gamma, "beta": beta, "eps": eps, "mode": mode}
    return out.astype(x.dtype, copy=False), cache


def batchrenorm_backward(dout, cache):
    """Backward pass of :func:`batchrenorm_forward`, with r and d held constant (stop-gradient).

    Ioffe (2017), Sec. 3: "r and d are treated as constants", so dx is BatchNorm's dx with the
    upstream gradient scaled by r, and dgamma uses the corrected x_hat::

        dbeta = sum_i dout_i,  dgamma = sum_i dout_i * x_hat_i
        dx    = inv_std / N * (N g - sum_i g_i - x_bn * sum_i g_i x_bn_i),  g = dout * gamma * r

    In test mode the statistics are constants too: ``dx = dout * gamma / running_std``.

    Parameters
    ----------
    dout : ndarray of float, shape (N, D)
        Never modified.
    cache : dict
        From :func:`batchrenorm_forward`; uses ``x_bn``, ``x_hat``, ``r``, ``inv_std``,
        ``gamma`` and ``mode``. Never modified.

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
    keys = ("x_bn", "x_hat", "r", "inv_std", "gamma", "mode")
    dout = _backward_cache(dout, cache, keys, 2, "batchrenorm_forward")
    gamma, r, inv_std = cache["gamma"], cache["r"], cache["inv_std"]
    dbeta = dout.sum(axis=0)
    dgamma = np.einsum("ij,ij->j", dout, cache["x_hat"])
    g = dout * (gamma * r)
    if cache["mode"] == "test":
        return (g * inv_std).astype(dout.dtype, copy=False), dgamma, dbeta
    dx = _centered_backward(g, cache["x_bn"], inv_std, axis=0)
    return dx.astype(dout.dtype, copy=False), dgamma, dbeta
