"""BatchNorm forward and backward passes, provided for assignments 04 and 05.

These are the course's reference solutions of notebooks 02 and 03, with PyTorch's semantics
(``torch.nn.BatchNorm1d``): normalize with the biased batch variance, update ``running_var`` with
the unbiased one, ``running = (1 - momentum) * running + momentum * batch_stat``.

Generated from autograder/reference/batchnorm.py by ``python -m autograder.tools.provided``; do not edit.
"""

import numpy as np

from course.validate import as_float_array, check_real, check_vector


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


_CACHE_KEYS = ('x', 'mean', 'xmu', 'var', 'std', 'inv_std', 'x_hat', 'gamma', 'beta', 'eps', 'mode')


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
