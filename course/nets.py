"""A fully-connected network of any depth, with optional BatchNorm supplied by the caller.

The architecture is the one of the CS231n assignment 2 ``FullyConnectedNet``
(https://cs231n.github.io/assignments2024/assignment2/)::

    {affine -> [batchnorm] -> relu} x (L - 1) -> affine -> softmax

This package is published to students from day one, so it holds no BatchNorm: with
``normalization='batchnorm'`` the network calls the "sandwich" layer ``affine -> batchnorm ->
relu`` that the caller passes in ``bn_layer`` (in assignment 04, the student's own functions).
With ``normalization='custom'`` it calls any normalization layer passed in ``norm_layer`` as
``affine -> norm -> relu`` (in assignment 05, the student's LayerNorm, GroupNorm or Batch Renorm).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import numpy as np

from course.layers import (
    affine_backward,
    affine_forward,
    relu_backward,
    relu_forward,
    softmax_loss,
)
from course.validate import as_float_array, check_int, check_real

__all__ = ["FullyConnectedNet"]


class FullyConnectedNet:
    """Multi-layer perceptron with ReLU hidden layers, optional BatchNorm, and a softmax loss.

    Parameters
    ----------
    hidden_dims : sequence of int
        Width of each hidden layer, each >= 1; L - 1 = ``len(hidden_dims)`` hidden layers
        (an empty sequence gives softmax regression).
    input_dim : int
        D, the number of input features (>= 1). Inputs of shape (N, d_1, ..., d_k) are
        flattened, so ``d_1 * ... * d_k`` must equal D.
    num_classes : int
        C, the number of classes (>= 2).
    normalization : {None, 'batchnorm', 'custom'}
        ``'batchnorm'`` inserts BatchNorm between every hidden affine layer and its ReLU;
        ``'custom'`` inserts the layer given in ``norm_layer`` there.
    weight_scale : float
        Standard deviation of the initial weights (> 0): every ``W_l`` is drawn from
        ``N(0, weight_scale**2)``. Biases start at 0, BatchNorm's gamma at 1 and beta at 0.
    reg : float
        L2 regularization strength (>= 0). The loss gains ``0.5 * reg * sum_l sum(W_l**2)``;
        biases, gamma and beta are not regularized.
    dtype : {numpy.float64, numpy.float32}
        Dtype of every parameter and computation. Use float64 for gradient checks.
    seed : int
        Seed of ``numpy.random.default_rng`` that draws the initial weights (>= 0).
    bn_layer : pair of callables, optional
        Required with ``normalization='batchnorm'``, refused without it:
        ``(affine_bn_relu_forward, affine_bn_relu_backward)`` with the signatures
        ``affine_bn_relu_forward(x, w, b, gamma, beta, bn_param) -> (out, cache)`` and
        ``affine_bn_relu_backward(dout, cache) -> (dx, dw, db, dgamma, dbeta)``.
    norm_layer : pair of callables, optional
        Required with ``normalization='custom'``, refused without it: ``(norm_forward,
        norm_backward)`` with ``norm_forward(a, gamma, beta, norm_param) -> (out, cache)`` on
        a of shape (N, H_l) and ``norm_backward(dout, cache) -> (da, dgamma, dbeta)``.
    norm_param : dict, optional
        With ``normalization='custom'``: the initial ``norm_param`` of every hidden layer (each
        layer gets its own deep copy; default ``{'mode': 'train'}``). The network sets its
        ``'mode'`` key as it does BatchNorm's; the layer may add and update other keys.

    Attributes
    ----------
    params : dict of str to ndarray
        ``'W1'`` ... ``'WL'`` of shapes (D, H_1), ..., (H_{L-1}, C); ``'b1'`` ... ``'bL'``; with
        BatchNorm also ``'gamma1'``, ``'beta1'`` ... ``'gamma{L-1}'``, ``'beta{L-1}'`` of shape
        (H_l,).
    bn_params : list of dict
        One dict per hidden layer with BatchNorm (empty list without it), starting as
        ``{'mode': 'train', 'eps': 1e-5, 'momentum': 0.1}`` (with ``'custom'``: copies of
        ``norm_param``). The BatchNorm function adds and
        updates ``running_mean`` and ``running_var`` itself (PyTorch convention:
        ``running = (1 - momentum) * running + momentum * batch_stat``).
    num_layers : int
        L, the number of affine layers.
    use_batchnorm : bool
    reg : float
    dtype : numpy.dtype

    Raises
    ------
    TypeError
        If an integer argument is not an int, or a real argument is not a real number.
    ValueError
        If a size is out of range, ``weight_scale <= 0``, ``reg < 0``, ``dtype`` is not float32
        or float64, ``normalization`` is not None or ``'batchnorm'``, ``bn_layer`` is missing
        with BatchNorm or given without it, or is not a pair of callables.
    """

    def __init__(
        self,
        hidden_dims: Sequence[int],
        input_dim: int,
        num_classes: int,
        normalization: str | None = None,
        weight_scale: float = 1e-2,
        reg: float = 0.0,
        dtype=np.float64,
        seed: int = 0,
        bn_layer: tuple[Callable, Callable] | None = None,
        norm_layer: tuple[Callable, Callable] | None = None,
        norm_param: dict | None = None,
    ):
        if isinstance(hidden_dims, (str, bytes)) or not isinstance(hidden_dims, (Sequence, np.ndarray)):
            raise TypeError(f"hidden_dims must be a sequence of ints, got {type(hidden_dims).__name__}")
        dims = [check_int(f"hidden_dims[{i}]", h, 1) for i, h in enumerate(hidden_dims)]
        self.input_dim = check_int("input_dim", input_dim, 1)
        self.num_classes = check_int("num_classes", num_classes, 2)
        if normalization not in (None, "batchnorm", "custom"):
            raise ValueError(
                f"normalization must be None or 'batchnorm' (or 'custom' with norm_layer), got "
                f"{normalization!r}")
        self.use_batchnorm = normalization == "batchnorm"
        self.normalization = normalization
        self._custom = self._custom_layer(normalization, norm_layer, norm_param)
        if self.use_batchnorm:
            if bn_layer is None:
                raise ValueError(
                    "normalization='batchnorm' needs bn_layer=(affine_bn_relu_forward, "
                    "affine_bn_relu_backward), got None"
                )
            if not (isinstance(bn_layer, (tuple, list)) and len(bn_layer) == 2
                    and all(callable(f) for f in bn_layer)):
                raise ValueError(
                    "bn_layer must be a pair of callables (affine_bn_relu_forward, "
                    f"affine_bn_relu_backward), got {bn_layer!r}"
                )
            self._bn_forward, self._bn_backward = bn_layer
        elif bn_layer is not None:
            raise ValueError(
                "bn_layer is only used with normalization='batchnorm'; got bn_layer with "
                f"normalization={normalization!r}"
            )
        weight_scale = check_real("weight_scale", weight_scale, low=0.0)
        if weight_scale <= 0:
            raise ValueError(f"weight_scale must be > 0, got {weight_scale}")
        self.weight_scale = weight_scale
        self.reg = check_real("reg", reg, low=0.0)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be numpy.float32 or numpy.float64, got {self.dtype}")
        self.seed = check_int("seed", seed, 0)
        self.hidden_dims = tuple(dims)
        self.num_layers = len(dims) + 1

        rng = np.random.default_rng(self.seed)
        sizes = [self.input_dim, *dims, self.num_classes]
        self.params: dict[str, np.ndarray] = {}
        for i in range(1, self.num_layers + 1):
            fan_in, fan_out = sizes[i - 1], sizes[i]
            self.params[f"W{i}"] = rng.normal(0.0, weight_scale, (fan_in, fan_out)).astype(self.dtype)
            self.params[f"b{i}"] = np.zeros(fan_out, dtype=self.dtype)
            if (self.use_batchnorm or self._custom) and i < self.num_layers:
                self.params[f"gamma{i}"] = np.ones(fan_out, dtype=self.dtype)
                self.params[f"beta{i}"] = np.zeros(fan_out, dtype=self.dtype)
        self.bn_params: list[dict] = (
            [{"mode": "train", "eps": 1e-5, "momentum": 0.1} for _ in dims]
            if self.use_batchnorm else []
        )
        if self._custom:
            self.bn_params = [copy.deepcopy(self._custom[2]) for _ in dims]

    @staticmethod
    def _custom_layer(normalization, norm_layer, norm_param):
        """``(forward, backward, norm_param)`` for ``normalization='custom'``, else None."""
        if normalization != "custom":
            if norm_layer is not None or norm_param is not None:
                raise ValueError("norm_layer and norm_param are only used with "
                                 f"normalization='custom', got normalization={normalization!r}")
            return None
        if not (isinstance(norm_layer, (tuple, list)) and len(norm_layer) == 2
                and all(callable(f) for f in norm_layer)):
            raise ValueError("normalization='custom' needs norm_layer=(norm_forward, "
                             f"norm_backward), a pair of callables, got {norm_layer!r}")
        if norm_param is not None and not isinstance(norm_param, dict):
            raise TypeError(f"norm_param must be a dict, got {type(norm_param).__name__}")
        return (*norm_layer, {"mode": "train"} if norm_param is None else norm_param)

    # ------------------------------------------------------------------ helpers
    def _check_X(self, X) -> np.ndarray:
        X = as_float_array("X", X)
        if X.ndim < 2 or math.prod(X.shape[1:]) != self.input_dim or X.shape[0] == 0:
            raise ValueError(
                f"X must have shape (N, {self.input_dim}) with N >= 1 (or (N, d_1, ..., d_k) with "
                f"d_1 * ... * d_k = {self.input_dim}), got {X.shape}"
            )
        return X.reshape(X.shape[0], self.input_dim).astype(self.dtype, copy=False)

    def _hidden_forward(self, h: np.ndarray, i: int, bn_param: dict | None):
        """Hidden layer ``i`` (1-based): returns (output, cache)."""
        p = self.params
        if self._custom:
            a, fc_cache = affine_forward(h, p[f"W{i}"], p[f"b{i}"])
            n, norm_cache = self._custom[0](a, p[f"gamma{i}"], p[f"beta{i}"], bn_param)
            out, relu_cache = relu_forward(n)
            return out, (fc_cache, norm_cache, relu_cache)
        if self.use_batchnorm:
            return self._bn_forward(
                h, p[f"W{i}"], p[f"b{i}"], p[f"gamma{i}"], p[f"beta{i}"], bn_param
            )
        a, fc_cache = affine_forward(h, p[f"W{i}"], p[f"b{i}"])
        out, relu_cache = relu_forward(a)
        return out, (fc_cache, relu_cache)

    # ------------------------------------------------------------------ public API
    def loss(self, X, y=None):
        """Class scores (prediction), or the loss and the gradient of every parameter (training).

        Parameters
        ----------
        X : ndarray of float, shape (N, D) or (N, d_1, ..., d_k)
            A minibatch; cast to the network's dtype. Never modified.
        y : ndarray of int, shape (N,), optional
            Labels in ``[0, C)``. If None, every ``bn_param`` is set to ``'test'`` mode (BatchNorm
            uses its running statistics, so each example's scores do not depend on the rest of
            the batch); otherwise to ``'train'`` mode (batch statistics, running ones updated).

        Returns
        -------
        scores : ndarray, shape (N, C), the network's dtype
            If ``y`` is None.
        loss : float
            If ``y`` is given: mean softmax cross-entropy plus ``0.5 * reg * sum_l sum(W_l**2)``.
        grads : dict of str to ndarray
            If ``y`` is given: same keys, shapes and dtype as :attr:`params`.

        Raises
        ------
        TypeError, ValueError
            If ``X`` or ``y`` has the wrong type or shape, or a label is out of range (see
            :func:`course.layers.softmax_loss`).
        """
        X = self._check_X(X)
        mode = "test" if y is None else "train"
        for bn_param in self.bn_params:
            bn_param["mode"] = mode
        L = self.num_layers
        p = self.params
        h = X
        caches = []
        for i in range(1, L):
            h, cache = self._hidden_forward(h, i, self.bn_params[i - 1] if self.bn_params else None)
            caches.append(cache)
        scores, last_cache = affine_forward(h, p[f"W{L}"], p[f"b{L}"])
        if y is None:
            return scores

        loss, dscores = softmax_loss(scores, y)
        grads: dict[str, np.ndarray] = {}
        dh, grads[f"W{L}"], grads[f"b{L}"] = affine_backward(dscores, last_cache)
        for i in range(L - 1, 0, -1):
            cache = caches[i - 1]
            if self._custom:
                fc_cache, norm_cache, relu_cache = cache
                da, dgamma, dbeta = self._custom[1](relu_backward(dh, relu_cache), norm_cache)
                dh, dw, db = affine_backward(da, fc_cache)
                grads[f"gamma{i}"], grads[f"beta{i}"] = dgamma, dbeta
            elif self.use_batchnorm:
                dh, dw, db, dgamma, dbeta = self._bn_backward(dh, cache)
                grads[f"gamma{i}"], grads[f"beta{i}"] = dgamma, dbeta
            else:
                fc_cache, relu_cache = cache
                dh, dw, db = affine_backward(relu_backward(dh, relu_cache), fc_cache)
            grads[f"W{i}"], grads[f"b{i}"] = dw, db
        if self.reg:
            for i in range(1, L + 1):
                W = p[f"W{i}"]
                loss += 0.5 * self.reg * float(np.sum(W * W))
                grads[f"W{i}"] = grads[f"W{i}"] + self.reg * W
        return loss, grads

    def activations(self, X, mode: str = "test") -> dict[str, list[np.ndarray]]:
        """Each hidden layer's affine output and final output, for histograms.

        Parameters
        ----------
        X : ndarray of float, shape (N, D) or (N, d_1, ..., d_k)
        mode : {'test', 'train'}
            BatchNorm mode: running statistics (``'test'``) or the statistics of ``X``
            (``'train'``). Either way the network's running statistics are left untouched: the
            BatchNorm function works on copies of :attr:`bn_params`. Without BatchNorm the
            mode changes nothing.

        Returns
        -------
        dict
            ``'pre'``: list of L - 1 arrays ``W_l h_{l-1} + b_l``, shape (N, H_l), the affine
            output of each hidden layer (before BatchNorm and ReLU); ``'post'``: list of L - 1
            arrays, shape (N, H_l), each hidden layer's output (after ReLU).

        Raises
        ------
        ValueError
            If ``mode`` is not ``'test'`` or ``'train'``, or ``X`` has the wrong shape.
        """
        if mode not in ("test", "train"):
            raise ValueError(f"mode must be 'test' or 'train', got {mode!r}")
        h = self._check_X(X)
        pre, post = [], []
        for i in range(1, self.num_layers):
            a, _ = affine_forward(h, self.params[f"W{i}"], self.params[f"b{i}"])
            pre.append(a)
            bn_param = None
            if self.bn_params:
                bn_param = {k: (v.copy() if isinstance(v, np.ndarray) else v)
                            for k, v in self.bn_params[i - 1].items()}
                bn_param["mode"] = mode
            h, _ = self._hidden_forward(h, i, bn_param)
            post.append(h)
        return {"pre": pre, "post": post}
