"""Building blocks of a fully-connected network: affine, ReLU and the softmax loss.

CS231n-style functional layers (https://cs231n.github.io/, assignment 2): every forward returns
``(out, cache)`` and every backward takes ``(dout, cache)`` and returns the gradients of the loss
with respect to the forward's inputs. The dtype of the input is kept: float32 in, float32 out.

BatchNorm is deliberately not here: students write it in assignments 02 and 03, and the network
of assignment 04 receives it as an argument (see :class:`course.nets.FullyConnectedNet`).
"""

from __future__ import annotations

import math

import numpy as np

from course.validate import as_float_array

__all__ = ["affine_forward", "affine_backward", "relu_forward", "relu_backward", "softmax_loss"]


def _floats(name: str, a, ndim: int | None = None) -> np.ndarray:
    """:func:`course.validate.as_float_array`, with a fast path for float arrays (the usual case
    inside a network, where these layers run thousands of times)."""
    if isinstance(a, np.ndarray) and a.dtype.kind == "f" and (ndim is None or a.ndim == ndim):
        return a
    return as_float_array(name, a, ndim)


def affine_forward(x, w, b) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Affine (fully-connected) layer: ``out = x.reshape(N, D) @ w + b``.

    Parameters
    ----------
    x : ndarray of float, shape (N, d_1, ..., d_k)
        A minibatch of N examples; each is flattened to a row of D = d_1 * ... * d_k values.
        Never modified.
    w : ndarray of float, shape (D, M)
        Weights.
    b : ndarray of float, shape (M,)
        Biases.

    Returns
    -------
    out : ndarray, shape (N, M), dtype of x
    cache : tuple
        ``(x, w)``, for :func:`affine_backward`.

    Raises
    ------
    TypeError
        If an argument does not hold real numbers.
    ValueError
        If ``x`` has fewer than 2 dimensions, ``w`` is not 2-D with ``w.shape[0] == D``, or ``b``
        is not of shape ``(M,)``.
    """
    x = _floats("x", x)
    w = _floats("w", w, ndim=2)
    b = _floats("b", b, ndim=1)
    if x.ndim < 2:
        raise ValueError(f"x must have shape (N, d_1, ..., d_k) with at least 2 dimensions, "
                         f"got shape {x.shape}")
    D = math.prod(x.shape[1:])
    if w.shape[0] != D:
        raise ValueError(f"w must have shape ({D}, M) for x of shape {x.shape}, got {w.shape}")
    if b.shape != (w.shape[1],):
        raise ValueError(f"b must have shape ({w.shape[1]},) to match w {w.shape}, got {b.shape}")
    out = x.reshape(x.shape[0], D) @ w
    out += b
    return out.astype(x.dtype, copy=False), (x, w)


def affine_backward(dout, cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward pass of :func:`affine_forward`.

    ``dx = dout @ w.T`` (reshaped like x), ``dw = x.reshape(N, D).T @ dout``,
    ``db = sum_i dout_i``: the chain rule through a matrix product.

    Parameters
    ----------
    dout : ndarray of float, shape (N, M)
        Upstream gradient dL/d(out). Never modified.
    cache : tuple
        ``(x, w)`` from :func:`affine_forward`.

    Returns
    -------
    dx : ndarray, shape and dtype of x
    dw : ndarray, shape (D, M), dtype of w
    db : ndarray, shape (M,), dtype of w

    Raises
    ------
    TypeError
        If ``cache`` is not the tuple returned by :func:`affine_forward` or ``dout`` is not numeric.
    ValueError
        If ``dout`` is not of shape ``(N, M)``.
    """
    if not (isinstance(cache, tuple) and len(cache) == 2):
        raise TypeError(f"cache must be the (x, w) tuple returned by affine_forward, "
                        f"got {type(cache).__name__}")
    x, w = cache
    dout = _floats("dout", dout, ndim=2)
    N, M = x.shape[0], w.shape[1]
    if dout.shape != (N, M):
        raise ValueError(f"dout must have shape ({N}, {M}), the shape of the forward output, "
                         f"got {dout.shape}")
    x2 = x.reshape(N, w.shape[0])
    dx = (dout @ w.T).reshape(x.shape).astype(x.dtype, copy=False)
    dw = (x2.T @ dout).astype(w.dtype, copy=False)
    db = dout.sum(axis=0).astype(w.dtype, copy=False)
    return dx, dw, db


def relu_forward(x) -> tuple[np.ndarray, np.ndarray]:
    """Rectified linear unit, elementwise: ``out = max(x, 0)``.

    Parameters
    ----------
    x : ndarray of float, any shape
        Never modified.

    Returns
    -------
    out : ndarray, shape and dtype of x
    cache : ndarray
        ``x`` itself, for :func:`relu_backward`.

    Raises
    ------
    TypeError
        If ``x`` does not hold real numbers.
    """
    x = _floats("x", x)
    return np.maximum(x, 0, dtype=x.dtype), x


def relu_backward(dout, cache) -> np.ndarray:
    """Backward pass of :func:`relu_forward`: ``dx = dout * (x > 0)``.

    At ``x == 0`` the ReLU has no derivative; like PyTorch we use 0 there.

    Parameters
    ----------
    dout : ndarray of float, shape of x
        Upstream gradient. Never modified.
    cache : ndarray
        The input ``x`` of the forward pass.

    Returns
    -------
    dx : ndarray, shape of x, dtype of dout

    Raises
    ------
    TypeError
        If ``dout`` or ``cache`` is not a numeric array.
    ValueError
        If ``dout`` and ``x`` differ in shape.
    """
    dout = _floats("dout", dout)
    x = _floats("cache", cache)
    if dout.shape != x.shape:
        raise ValueError(f"dout must have the shape of x, {x.shape}, got {dout.shape}")
    return np.where(x > 0, dout, dout.dtype.type(0))


def softmax_loss(scores, y) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy over a minibatch, and its gradient with respect to the scores.

    With ``p_ij = exp(s_ij) / sum_k exp(s_ik)``::

        loss    = -(1/N) sum_i log p_{i, y_i}
        dscores = (p - onehot(y)) / N

    Scores are shifted by their row maximum before exponentiating (log-sum-exp trick), which
    changes neither the loss nor p but keeps ``exp`` from overflowing (CS231n notes, "Softmax
    classifier: practical issues: numeric stability").

    Parameters
    ----------
    scores : ndarray of float, shape (N, C)
        Unnormalized class scores. Never modified.
    y : ndarray of int, shape (N,)
        Class labels, each in ``[0, C)``.

    Returns
    -------
    loss : float
        At small random scores it is close to ``log(C)`` (chance).
    dscores : ndarray, shape (N, C), dtype of scores

    Raises
    ------
    TypeError
        If ``scores`` is not numeric or ``y`` does not hold integers.
    ValueError
        If ``scores`` is not 2-D with N >= 1 and C >= 1, ``y`` is not of shape ``(N,)``, or a label
        lies outside ``[0, C)``.
    """
    scores = _floats("scores", scores, ndim=2)
    N, C = scores.shape
    if N == 0 or C == 0:
        raise ValueError(f"scores must have shape (N, C) with N >= 1 and C >= 1, got {scores.shape}")
    y = np.asarray(y)
    if y.dtype == bool or not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"y must hold integer class labels, got dtype {y.dtype}")
    if y.shape != (N,):
        raise ValueError(f"y must have shape ({N},), one label per row of scores, got {y.shape}")
    if y.min() < 0 or y.max() >= C:
        raise ValueError(f"y must hold labels in [0, {C}), got values from {y.min()} to {y.max()}")
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_p = shifted - log_z
    rows = np.arange(N)
    loss = -float(log_p[rows, y].mean())
    dscores = np.exp(log_p, out=log_p)
    dscores[rows, y] -= 1
    dscores /= N
    return loss, dscores
