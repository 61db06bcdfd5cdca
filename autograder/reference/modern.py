"""Reference of assignment 06: RMSNorm, a residual block with pre- or post-norm, BatchNorm folding.

RMSNorm is Zhang & Sennrich (2019), arXiv:1910.07467, with ``torch.nn.RMSNorm(D, eps)``
semantics (https://pytorch.org/docs/stable/generated/torch.nn.RMSNorm.html): the root mean
square over the last axis, no mean subtracted, no shift. The residual block is the MLP block of a
pre-norm or post-norm residual network (Xiong et al. 2020, arXiv:2002.04745, Fig. 1). Folding
turns an affine layer followed by test-mode BatchNorm (Ioffe & Szegedy 2015, arXiv:1502.03167,
Alg. 2, step 11) into one affine layer, as ``torch.nn.utils.fusion.fuse_linear_bn_eval`` does.
"""

from __future__ import annotations

import numpy as np

from course.validate import as_float_array, check_real, check_vector

#: RMSNorm's default eps: LLaMA's (Touvron et al. 2023, arXiv:2302.13971) and most of its
#: descendants'. torch.nn.RMSNorm's default, eps=None, means the input dtype's machine epsilon.
RMS_EPS = 1e-6

#: The cache keys each function documents in the notebook (the backward checks hand the
#: student a cache with exactly these).
RMS_CACHE_KEYS = ("x", "gamma", "eps", "inv_rms", "x_hat")
BLOCK_CACHE_KEYS = ("placement", "x", "z", "h", "a", "w1", "w2", "norm_cache")
PLACEMENTS = ("pre", "post")


def _param_dict(name: str, param) -> dict:
    if not isinstance(param, dict):
        raise TypeError(f"{name} must be a dict, got {type(param).__name__}")
    return param


def _compute_dtype(dtype: np.dtype) -> np.dtype:
    """float16 (and smaller) is computed in float32; float32 and float64 in themselves."""
    return np.dtype(np.float32) if np.dtype(dtype).itemsize < 4 else np.dtype(dtype)


def rmsnorm_forward(x, gamma, rms_param):
    """RMSNorm forward pass, PyTorch ``nn.RMSNorm(D, eps)`` semantics (Zhang & Sennrich 2019, eq. 4).

    Each row (each vector along the last axis) is divided by its root mean square::

        inv_rms = 1 / sqrt(mean(x**2, axis=-1) + eps),   x_hat = x * inv_rms,   out = gamma * x_hat

    No mean is subtracted and there is no shift (beta). float16 input is computed in float32 and
    the output cast back to float16: ``x**2`` overflows float16 (largest finite 65504) as soon as
    ``|x| > 255.9``.

    Parameters
    ----------
    x : ndarray of float, shape (..., D)
        At least 1-D; every leading axis is a batch axis (e.g. (N, D) or (N, T, D)). Never
        modified. Integer input is treated as float64.
    gamma : ndarray, shape (D,)
        Per-feature scale (PyTorch's ``weight``).
    rms_param : dict
        ``eps`` (default 1e-6, >= 0). Nothing is written to it.

    Returns
    -------
    out : ndarray, shape of x, dtype of x
    cache : dict
        ``x`` (..., D) the input in the compute dtype; ``gamma`` (D,); ``eps`` float;
        ``inv_rms`` (...,) ``1 / sqrt(mean(x**2) + eps)`` per row; ``x_hat`` (..., D); all
        arrays in the compute dtype (float32 for float16 input). Plain data only: the hidden
        checks send it to the student's backward pass in the kernel.

    Raises
    ------
    TypeError
        Non-numeric arrays, rms_param not a dict, eps not a real number.
    ValueError
        x 0-D, gamma not of shape (D,), eps < 0.
    """
    x = as_float_array("x", x)
    if x.ndim < 1:
        raise ValueError(f"x must have shape (..., D) with at least 1 axis, got shape {x.shape}")
    D = x.shape[-1]
    gamma = check_vector("gamma", gamma, D)
    eps = check_real("rms_param['eps']", _param_dict("rms_param", rms_param).get("eps", RMS_EPS),
                     low=0.0)
    ct = _compute_dtype(x.dtype)
    xc, gc = x.astype(ct, copy=False), gamma.astype(ct, copy=False)
    ms = np.einsum("...j,...j->...", xc, xc) / D
    inv_rms = (1.0 / np.sqrt(ms + eps)).astype(ct, copy=False)
    x_hat = xc * inv_rms[..., None]
    out = gc * x_hat
    cache = {"x": xc, "gamma": gc, "eps": eps, "inv_rms": inv_rms, "x_hat": x_hat}
    return out.astype(x.dtype, copy=False), cache


def _cache(cache, keys, made_by: str) -> dict:
    if not isinstance(cache, dict):
        raise TypeError(f"cache must be the dict returned by {made_by}, got {type(cache).__name__}")
    missing = [k for k in keys if k not in cache]
    if missing:
        raise ValueError(f"cache is missing {missing}; pass the cache returned by {made_by}")
    return cache


def rmsnorm_backward(dout, cache):
    """Backward pass of :func:`rmsnorm_forward`.

    With ``g = dout * gamma`` (the gradient reaching x_hat) and sums along the last axis::

        dx     = inv_rms * (g - x_hat * mean(g * x_hat, axis=-1))
        dgamma = sum over every leading axis of dout * x_hat

    LayerNorm's closed form (Ba et al. 2016) without its ``- mean(g)`` term: no mean is
    subtracted in the forward pass, so there is no path through it.

    Parameters
    ----------
    dout : ndarray of float, shape of x
        Never modified. float16 is computed in float32.
    cache : dict
        From :func:`rmsnorm_forward`; uses ``x_hat``, ``gamma`` and ``inv_rms``. Never modified.

    Returns
    -------
    dx : ndarray, shape of x, dtype of dout
    dgamma : ndarray, shape (D,), dtype of dout

    Raises
    ------
    TypeError
        If cache is not a dict or dout is not numeric.
    ValueError
        If the cache lacks a key or dout does not have the shape of x.
    """
    cache = _cache(cache, ("x_hat", "gamma", "inv_rms"), "rmsnorm_forward")
    dout = as_float_array("dout", dout)
    x_hat = np.asarray(cache["x_hat"])
    if dout.shape != x_hat.shape:
        raise ValueError(f"dout must have the shape of x, {x_hat.shape}, got {dout.shape}")
    ct = np.promote_types(_compute_dtype(dout.dtype), x_hat.dtype)
    x_hat = x_hat.astype(ct, copy=False)
    d = dout.astype(ct, copy=False)
    g = d * np.asarray(cache["gamma"], dtype=ct)
    proj = np.einsum("...j,...j->...", g, x_hat)[..., None] / x_hat.shape[-1]
    dx = np.asarray(cache["inv_rms"], dtype=ct)[..., None] * (g - x_hat * proj)
    dgamma = (d * x_hat).reshape(-1, x_hat.shape[-1]).sum(axis=0)
    return dx.astype(dout.dtype, copy=False), dgamma.astype(dout.dtype, copy=False)


def _block_settings(x, w1, b1, w2, b2, norm_param, placement):
    """Validate the block's arguments; return them as arrays with (gamma, eps)."""
    x = as_float_array("x", x, ndim=2)
    N, D = x.shape
    w1 = as_float_array("w1", w1, ndim=2)
    if w1.shape[0] != D:
        raise ValueError(f"w1 must have shape ({D}, H) for x of shape {x.shape}, got {w1.shape}")
    H = w1.shape[1]
    b1 = check_vector("b1", b1, H)
    w2 = as_float_array("w2", w2, ndim=2)
    if w2.shape != (H, D):
        raise ValueError(f"w2 must have shape ({H}, {D}) (H from w1, D from x), got {w2.shape}")
    b2 = check_vector("b2", b2, D)
    _param_dict("norm_param", norm_param)
    if "gamma" not in norm_param:
        raise ValueError("norm_param must hold 'gamma', the RMSNorm scale of shape "
                         f"({D},); it has {sorted(norm_param)}")
    gamma = check_vector("norm_param['gamma']", norm_param["gamma"], D)
    eps = check_real("norm_param['eps']", norm_param.get("eps", RMS_EPS), low=0.0)
    if not isinstance(placement, str) or placement not in PLACEMENTS:
        raise ValueError(f"placement must be 'pre' or 'post', got {placement!r}")
    return x, w1, b1, w2, b2, gamma, eps


def residual_block_forward(x, w1, b1, w2, b2, norm_param, placement):
    """One MLP residual block with RMSNorm, pre-norm or post-norm (Xiong et al. 2020, Fig. 1).

    With the branch ``f(z) = relu(z @ w1 + b1) @ w2 + b2``::

        pre:   out = x + f(rmsnorm(x))       (the skip carries x itself)
        post:  out = rmsnorm(x + f(x))       (the sum is normalized)

    Parameters
    ----------
    x : ndarray of float, shape (N, D)
        Never modified; float32 in, float32 out.
    w1 : ndarray, shape (D, H)
    b1 : ndarray, shape (H,)
    w2 : ndarray, shape (H, D)
    b2 : ndarray, shape (D,)
    norm_param : dict
        ``gamma`` (D,), the RMSNorm scale (required); ``eps`` (default 1e-6). Nothing is written.
    placement : {'pre', 'post'}

    Returns
    -------
    out : ndarray, shape (N, D), dtype of x
    cache : dict
        ``placement``; ``x`` (N, D); ``z`` (N, D) the branch's input (pre: rmsnorm(x); post: x);
        ``h`` (N, H) ``z @ w1 + b1``; ``a`` (N, H) ``relu(h)``; ``w1``, ``w2``; ``norm_cache``
        the cache of :func:`rmsnorm_forward` (pre: of x; post: of x + f(x)).

    Raises
    ------
    TypeError
        Non-numeric arrays, norm_param not a dict.
    ValueError
        Shapes that do not fit, no ``gamma`` in norm_param, eps < 0, placement not 'pre'/'post'.
    """
    x, w1, b1, w2, b2, gamma, eps = _block_settings(x, w1, b1, w2, b2, norm_param, placement)
    rms_param = {"eps": eps}
    if placement == "pre":
        z, norm_cache = rmsnorm_forward(x, gamma, rms_param)
    else:
        z = x
    h = z @ w1 + b1
    a = np.maximum(h, 0)
    f = a @ w2 + b2
    if placement == "pre":
        out = x + f
    else:
        out, norm_cache = rmsnorm_forward(x + f, gamma, rms_param)
    cache = {"placement": placement, "x": x, "z": z, "h": h, "a": a, "w1": w1, "w2": w2,
             "norm_cache": norm_cache}
    return out.astype(x.dtype, copy=False), cache


def residual_block_backward(dout, cache):
    """Backward pass of :func:`residual_block_forward`.

    The skip path adds ``dout`` (pre) or the gradient reaching the sum (post) to dx unchanged;
    the branch is the chain rule through affine, ReLU (gradient 1 where ``h > 0``) and affine,
    and, for pre-norm, through :func:`rmsnorm_backward` into x.

    Parameters
    ----------
    dout : ndarray of float, shape (N, D)
        Never modified.
    cache : dict
        From :func:`residual_block_forward`. Never modified.

    Returns
    -------
    dx : ndarray, shape (N, D)
    dw1 : ndarray, shape (D, H)
    db1 : ndarray, shape (H,)
    dw2 : ndarray, shape (H, D)
    db2 : ndarray, shape (D,)
    dgamma : ndarray, shape (D,)

    Raises
    ------
    TypeError
        If cache is not a dict or dout is not numeric.
    ValueError
        If the cache lacks a key, its placement is unknown, or dout does not have the shape of x.
    """
    cache = _cache(cache, BLOCK_CACHE_KEYS, "residual_block_forward")
    placement = cache["placement"]
    if placement not in PLACEMENTS:
        raise ValueError(f"cache['placement'] must be 'pre' or 'post', got {placement!r}")
    dout = as_float_array("dout", dout, ndim=2)
    if dout.shape != np.shape(cache["x"]):
        raise ValueError(f"dout must have the shape of x, {np.shape(cache['x'])}, got {dout.shape}")
    if placement == "post":
        ds, dgamma = rmsnorm_backward(dout, cache["norm_cache"])
    else:
        ds = dout
    db2 = ds.sum(axis=0)
    dw2 = cache["a"].T @ ds
    dh = (ds @ cache["w2"].T) * (cache["h"] > 0)
    db1 = dh.sum(axis=0)
    dw1 = cache["z"].T @ dh
    dz = dh @ cache["w1"].T
    if placement == "pre":
        dxn, dgamma = rmsnorm_backward(dz, cache["norm_cache"])
        dx = ds + dxn
    else:
        dx = ds + dz
    return tuple(g.astype(dout.dtype, copy=False) for g in (dx, dw1, db1, dw2, db2, dgamma))


def fold_batchnorm(w, b, gamma, beta, running_mean, running_var, eps):
    """The affine layer equal to ``affine(w, b)`` followed by test-mode BatchNorm.

    Test-mode BatchNorm is the fixed affine map ``y = gamma * (a - running_mean) /
    sqrt(running_var + eps) + beta`` of each unit (Ioffe & Szegedy 2015, Alg. 2, step 11), so
    with ``scale = gamma / sqrt(running_var + eps)`` per output unit::

        w_folded = w * scale            (column j of w scaled by scale[j])
        b_folded = (b - running_mean) * scale + beta

    and ``x @ w_folded + b_folded`` equals BatchNorm(x @ w + b) in test mode, to rounding.
    ``torch.nn.utils.fusion.fuse_linear_bn_eval`` computes the same with torch's (M, D) weight.

    Parameters
    ----------
    w : ndarray of float, shape (D, M)
        The affine layer's weights (inputs along axis 0, units along axis 1). Never modified.
    b : ndarray, shape (M,)
    gamma, beta, running_mean, running_var : ndarray, shape (M,)
        BatchNorm's parameters and running statistics; running_var >= 0.
    eps : float
        BatchNorm's eps (>= 0; with eps = 0 every running_var must be > 0).

    Returns
    -------
    w_folded : ndarray, shape (D, M), dtype of w
    b_folded : ndarray, shape (M,), dtype of w

    Raises
    ------
    TypeError
        Non-numeric arrays or eps.
    ValueError
        w not 2-D, a vector not of shape (M,), eps < 0, running_var + eps not > 0.
    """
    w = as_float_array("w", w, ndim=2)
    M = w.shape[1]
    b, gamma, beta, rm, rv = (check_vector(n, v, M) for n, v in (
        ("b", b), ("gamma", gamma), ("beta", beta), ("running_mean", running_mean),
        ("running_var", running_var)))
    eps = check_real("eps", eps, low=0.0)
    if not np.all(rv + eps > 0):
        raise ValueError(f"running_var + eps must be > 0 for every unit, got running_var {rv} "
                         f"and eps {eps}")
    scale = gamma / np.sqrt(rv + eps)
    w_folded = w * scale
    b_folded = (b - rm) * scale + beta
    return w_folded.astype(w.dtype, copy=False), b_folded.astype(w.dtype, copy=False)
