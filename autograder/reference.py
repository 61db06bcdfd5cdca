"""Hidden reference solutions: every graded function, same name and signature as the notebooks.

BatchNorm follows PyTorch's ``torch.nn.BatchNorm1d`` / ``BatchNorm2d`` semantics exactly
(https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm1d.html): normalize with the biased
batch variance, update ``running_var`` with the unbiased one, and
``running = (1 - momentum) * running + momentum * batch_stat``. The transform itself is
Algorithm 1 of Ioffe & Szegedy (2015), arXiv:1502.03167.
"""

from __future__ import annotations

import numpy as np

from course.layers import affine_backward, affine_forward, relu_backward, relu_forward
from course.validate import as_float_array, check_real, check_vector

__all__ = [
    "fit_standardizer",
    "standardize",
    "batch_stats",
    "normalize",
    "scale_shift",
    "batchnorm_forward",
    "spatial_batchnorm_forward",
    "numerical_gradient",
    "batchnorm_backward",
    "batchnorm_backward_alt",
    "spatial_batchnorm_backward",
    "fixed_backward_dgamma",
    "fixed_backward_inv_n",
    "fixed_backward_dvar",
    "affine_bn_relu_forward",
    "affine_bn_relu_backward",
    "mode_accuracies",
]


# --------------------------------------------------------------------------- 01 standardization
def fit_standardizer(X):
    """Per-feature mean and population standard deviation, as ``StandardScaler.fit``.

    Parameters
    ----------
    X : array_like, shape (m, D)
        m ≥ 1 rows (samples) of D features, in the features' own units.

    Returns
    -------
    mean : ndarray, shape (D,)
        Column means, in the units of X.
    scale : ndarray, shape (D,)
        Population standard deviations (``ddof=0``), in the units of X; 1.0 where a feature is
        constant up to rounding (:func:`is_constant_feature`), as scikit-learn's
        ``StandardScaler`` does. float64 for integer input, otherwise the dtype of X (the
        statistics are accumulated in float64, as scikit-learn does).

    Raises
    ------
    TypeError
        If X does not hold real numbers.
    ValueError
        If X is not 2-D or has no rows.
    """
    X = as_float_array("X", X, ndim=2)
    if X.shape[0] == 0:
        raise ValueError(f"X must have at least one row, got shape {X.shape}")
    X64 = X.astype(np.float64, copy=False)
    mean = X64.mean(axis=0)
    var = ((X64 - mean) ** 2).mean(axis=0)  # two-pass: exact for large offsets
    scale = np.sqrt(var)
    scale[is_constant_feature(var, mean, X.shape[0])] = 1.0
    return mean.astype(X.dtype, copy=False), scale.astype(X.dtype, copy=False)


def is_constant_feature(var, mean, n_samples: int) -> np.ndarray:
    """Which features are constant up to the rounding error of a two-pass variance.

    ``var <= n·eps·var + (n·mean·eps)²`` with ``eps`` the float64 machine epsilon: the error
    bound of the two-pass algorithm (Chan, Golub & LeVeque 1983), the rule of scikit-learn's
    ``sklearn.preprocessing._data._is_constant_feature``. A feature that is constant in exact
    arithmetic can have a computed variance of about 1e-34 (``np.full((3, 1), 0.1)``); one with
    a large offset and a small but real spread (mean 1e6, std 1e-2) is *not* constant.

    Parameters
    ----------
    var, mean : ndarray of float, shape (D,)
        The population variance and the mean of each feature.
    n_samples : int
        The number of rows they were computed from.

    Returns
    -------
    ndarray of bool, shape (D,)
    """
    eps = np.finfo(np.float64).eps
    var = np.asarray(var, dtype=np.float64)
    mean = np.asarray(mean, dtype=np.float64)
    return var <= n_samples * eps * var + (n_samples * mean * eps) ** 2


def standardize(X, mean, scale):
    """Standardize with given statistics: ``Z = (X - mean) / scale``, column by column.

    Parameters
    ----------
    X : array_like, shape (m, D)
    mean, scale : array_like, shape (D,)
        Statistics from :func:`fit_standardizer`, fitted on the *training* split only.

    Returns
    -------
    Z : ndarray, shape (m, D)
        Dimensionless. X itself is not modified.

    Raises
    ------
    TypeError, ValueError
        For non-numeric input or mismatched shapes.
    """
    X = as_float_array("X", X, ndim=2)
    mean = check_vector("mean", mean, X.shape[1])
    scale = check_vector("scale", scale, X.shape[1])
    return (X - mean) / scale


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
# *is* a correct BatchNorm backward, so the reference for all three is batchnorm_backward; the
# notebook's solutions show each fix in the style of the buggy code.
def fixed_backward_dgamma(dout, cache):
    """Bug hunt 1, fixed: dgamma and dbeta summed over the batch (MISCONCEPTIONS M15).

    Same contract, shapes and errors as :func:`batchnorm_backward` (train mode).
    """
    return batchnorm_backward(dout, cache)


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


# --------------------------------------------------------------------------- 04 experiments
def affine_bn_relu_forward(x, w, b, gamma, beta, bn_param):
    """One hidden layer of the network: affine, then BatchNorm, then ReLU.

    ``out = relu(batchnorm(x @ w + b))``; the "sandwich" layer of CS231n's ``layer_utils``.

    Parameters
    ----------
    x : ndarray of float, shape (N, d_1, ..., d_k)
        Input; flattened to (N, D) with D = d_1 * ... * d_k. Never modified.
    w : ndarray, shape (D, M)
    b, gamma, beta : ndarray, shape (M,)
    bn_param : dict
        As for :func:`batchnorm_forward`; its running statistics are updated in train mode.

    Returns
    -------
    out : ndarray, shape (N, M)
    cache : tuple (affine cache, batchnorm cache, relu cache)

    Raises
    ------
    TypeError, ValueError
        From the three layers, for inputs of the wrong type or shape.
    """
    a, fc_cache = affine_forward(x, w, b)
    a_bn, bn_cache = batchnorm_forward(a, gamma, beta, bn_param)
    out, relu_cache = relu_forward(a_bn)
    return out, (fc_cache, bn_cache, relu_cache)


def affine_bn_relu_backward(dout, cache):
    """Backward pass of :func:`affine_bn_relu_forward`: the chain rule through the three layers,
    in reverse order (ReLU, then BatchNorm, then affine).

    Parameters
    ----------
    dout : ndarray of float, shape (N, M)
        Upstream gradient. Never modified.
    cache : tuple
        The cache returned by :func:`affine_bn_relu_forward`.

    Returns
    -------
    dx : ndarray, shape of x
    dw : ndarray, shape (D, M)
    db, dgamma, dbeta : ndarray, shape (M,)

    Raises
    ------
    TypeError
        If ``cache`` is not the 3-tuple made by :func:`affine_bn_relu_forward`.
    """
    if not isinstance(cache, tuple) or len(cache) != 3:
        raise TypeError("cache must be the (affine, batchnorm, relu) tuple returned by "
                        f"affine_bn_relu_forward, got {type(cache).__name__}")
    fc_cache, bn_cache, relu_cache = cache
    da_bn = relu_backward(dout, relu_cache)
    da, dgamma, dbeta = batchnorm_backward(da_bn, bn_cache)
    dx, dw, db = affine_backward(da, fc_cache)
    return dx, dw, db, dgamma, dbeta


def _network_scores(params, bn_params, X, mode: str, sandwich=None):
    """Class scores of the network {affine -> BN -> ReLU} x (L - 1) -> affine for the batch X,
    BatchNorm in ``mode``, on copies of ``bn_params`` (the caller's are never written)."""
    sandwich = affine_bn_relu_forward if sandwich is None else sandwich
    L = len(bn_params) + 1
    h = X
    for i in range(1, L):
        bn = {**bn_params[i - 1], "mode": mode}
        h, _ = sandwich(h, params[f"W{i}"], params[f"b{i}"], params[f"gamma{i}"],
                        params[f"beta{i}"], bn)
    scores, _ = affine_forward(h, params[f"W{L}"], params[f"b{L}"])
    return scores


def mode_accuracies(params, bn_params, X, y, batch_size):
    """Accuracy of a trained BatchNorm network in train mode and in test mode, on the same examples.

    The examples ``X[:n]``, ``n = (N // batch_size) * batch_size``, are cut into consecutive
    batches of ``batch_size`` (the last partial batch is dropped, as the Solver does in
    training). In **train mode** each batch is normalized with its own statistics (Ioffe &
    Szegedy 2015, Alg. 1), in **test mode** with the running averages (Alg. 2, step 10); the
    running statistics are read, never updated: measuring does not change the network.

    Parameters
    ----------
    params : dict of str to ndarray
        ``W1``...``WL`` (D, H_1), ..., (H_{L-1}, C); ``b1``...``bL``; ``gamma1``, ``beta1`` ...
        ``gamma{L-1}``, ``beta{L-1}``, as :attr:`course.nets.FullyConnectedNet.params`.
    bn_params : list of dict
        One per hidden layer, with ``eps``, ``momentum``, ``running_mean``, ``running_var``.
        Not modified.
    X : ndarray of float, shape (N, D)
    y : ndarray of int, shape (N,)
    batch_size : int
        B, with 2 <= B <= N.

    Returns
    -------
    train_acc, test_acc : float
        Fractions of the n examples whose highest score is their label, in train mode and in
        test mode.

    Raises
    ------
    ValueError
        If ``batch_size`` is not in [2, N].
    """
    N = len(y)
    if not 2 <= batch_size <= N:
        raise ValueError(f"batch_size must be in [2, {N}], got {batch_size}")
    n = N // batch_size * batch_size
    correct = {"train": 0, "test": 0}
    for start in range(0, n, batch_size):
        Xb, yb = X[start:start + batch_size], y[start:start + batch_size]
        for mode in correct:
            pred = np.argmax(_network_scores(params, bn_params, Xb, mode), axis=1)
            correct[mode] += int(np.count_nonzero(pred == yb))
    return correct["train"] / n, correct["test"] / n


# --------------------------------------------------------------------------- 05 beyond BatchNorm
# LayerNorm (Ba, Kiros & Hinton 2016, arXiv:1607.06450) with torch.nn.LayerNorm(D) semantics,
# GroupNorm (Wu & He 2018, arXiv:1803.08494) with torch.nn.GroupNorm(G, C) semantics, and Batch
# Renormalization (Ioffe 2017, arXiv:1702.03275, Algorithm 1). All three normalize with a biased
# variance and eps inside the square root; their backward passes share the closed form below.
__all__ += [
    "layernorm_forward",
    "layernorm_backward",
    "spatial_groupnorm_forward",
    "spatial_groupnorm_backward",
    "batchrenorm_forward",
    "batchrenorm_backward",
]


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
