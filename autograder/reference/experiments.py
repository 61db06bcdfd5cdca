"""Reference of assignment 04: the affine-BatchNorm-ReLU sandwich and the train/test-mode
accuracies of a trained network.
"""

from __future__ import annotations

import copy

import numpy as np

from autograder.reference.batchnorm import batchnorm_backward, batchnorm_forward
from course.layers import affine_backward, affine_forward, relu_backward, relu_forward


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
    BatchNorm in ``mode``, on deep copies of ``bn_params`` (the caller's dicts and their
    running-statistics arrays are never written, even by a BatchNorm that updates in place)."""
    sandwich = affine_bn_relu_forward if sandwich is None else sandwich
    L = len(bn_params) + 1
    h = X
    for i in range(1, L):
        bn = copy.deepcopy(bn_params[i - 1])
        bn["mode"] = mode
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
