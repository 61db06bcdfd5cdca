"""A residual MLP whose blocks and normalization the caller supplies (assignment 06).

The architecture is the residual stack of a pre-norm or post-norm Transformer (Xiong et al. 2020,
arXiv:2002.04745, Fig. 1) with the attention left out, on flat inputs::

    x_0 = X @ W_in + b_in                          (D inputs -> width features)
    x_l = block(x_{l-1}),  l = 1 ... depth         (the caller's residual block)
    scores = [norm](x_depth) @ W_out + b_out       (a final RMSNorm for pre-norm stacks)

followed by the softmax loss of :mod:`course.layers`. Like :class:`course.nets.FullyConnectedNet`,
the network holds no solution of a graded exercise: the blocks are the functions passed in
(:class:`Block`; in notebook 06 the student's ``residual_block_forward``/``backward``), and so is
the final normalization (the student's ``rmsnorm_forward``/``backward``). The network only
chains them and exposes ``params`` and ``loss(X, y=None)``, the interface of
:class:`course.solver.Solver` and its update rules.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from course.layers import affine_backward, affine_forward, softmax_loss
from course.validate import as_float_array, check_int, check_real

__all__ = ["Block", "ResidualNet", "BLOCK_KEYS"]

#: The parameters of block ``l`` are ``params[f"{key}_{l}"]`` for these keys (l from 1).
BLOCK_KEYS = ("w1", "b1", "w2", "b2", "gamma")


@dataclass(frozen=True)
class Block:
    """A residual block for :class:`ResidualNet`.

    Attributes
    ----------
    name : str
        Shown in legends.
    forward : callable
        ``forward(x, w1, b1, w2, b2, norm_param, placement) -> (out, cache)`` on x (N, D),
        ``norm_param = {'gamma': (D,), 'eps': float}``.
    backward : callable
        ``backward(dout, cache) -> (dx, dw1, db1, dw2, db2, dgamma)``.
    placement : str
        Passed to ``forward`` as is (``'pre'`` or ``'post'`` for notebook 06's block).
    final_norm : bool
        Whether the network normalizes the last block's output before the classifier (pre-norm
        stacks do: their residual stream is never normalized otherwise).
    """

    name: str
    forward: Callable
    backward: Callable
    placement: str | None = None
    final_norm: bool = False


class ResidualNet:
    """Input affine layer, ``depth`` residual blocks, optional final norm, classifier, softmax.

    Parameters
    ----------
    depth : int
        Number of residual blocks (>= 1).
    block : Block
    norm : pair of callables
        ``(norm_forward, norm_backward)`` with the RMSNorm signatures ``norm_forward(x, gamma,
        rms_param) -> (out, cache)`` and ``norm_backward(dout, cache) -> (dx, dgamma)``, for the
        final normalization (used only when ``block.final_norm``).
    width : int
        D, the width of the residual stream.
    hidden : int
        H, the width inside each block's branch.
    input_dim, num_classes : int
    eps : float
        RMSNorm's eps in every block and in the final norm.
    gamma_init : float
        Initial value of every block's gamma (1.0 as in PyTorch; 0.0 for Goyal et al.'s
        zero-initialized last normalization of each branch). The final norm's gamma starts at 1.
    seed : int
        Seed of ``numpy.random.default_rng`` that draws the weights.
    dtype : {numpy.float64, numpy.float32}

    Notes
    -----
    Weights are drawn from ``N(0, gain / fan_in)``: gain 2 for ``w1``, which feeds a ReLU (He et
    al. 2015, arXiv:1502.01852), and 1 for ``w2``, ``W_in`` and ``W_out``; biases start at 0.

    Attributes
    ----------
    params : dict of str to ndarray
        ``W_in`` (input_dim, D), ``b_in``; for each block l = 1 ... depth ``w1_l`` (D, H),
        ``b1_l``, ``w2_l`` (H, D), ``b2_l``, ``gamma_l`` (D,); ``gamma_final`` (D,) when the block
        asks for a final norm; ``W_out`` (D, C), ``b_out``.
    """

    def __init__(self, depth: int, block: Block, norm: tuple[Callable, Callable], *,
                 width: int = 64, hidden: int = 64, input_dim: int = 64, num_classes: int = 10,
                 eps: float = 1e-6, gamma_init: float = 1.0, seed: int = 0, dtype=np.float64):
        self.depth = check_int("depth", depth, 1)
        if not isinstance(block, Block):
            raise TypeError(f"block must be a course.residual.Block, got {type(block).__name__}")
        if not (isinstance(norm, (tuple, list)) and len(norm) == 2 and all(map(callable, norm))):
            raise ValueError(f"norm must be a pair (norm_forward, norm_backward), got {norm!r}")
        self.block, self.norm = block, tuple(norm)
        D, H = check_int("width", width, 1), check_int("hidden", hidden, 1)
        self.input_dim = check_int("input_dim", input_dim, 1)
        C = check_int("num_classes", num_classes, 2)
        self.eps = check_real("eps", eps, low=0.0)
        gamma_init = check_real("gamma_init", gamma_init)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be numpy.float32 or numpy.float64, got {self.dtype}")
        rng = np.random.default_rng(check_int("seed", seed, 0))

        def weights(fan_in, fan_out, gain=1.0):
            return rng.normal(0.0, math.sqrt(gain / fan_in), (fan_in, fan_out)).astype(self.dtype)

        p = {"W_in": weights(self.input_dim, D), "b_in": np.zeros(D, self.dtype)}
        for layer in range(1, self.depth + 1):
            p[f"w1_{layer}"] = weights(D, H, gain=2.0)
            p[f"b1_{layer}"] = np.zeros(H, self.dtype)
            p[f"w2_{layer}"] = weights(H, D)
            p[f"b2_{layer}"] = np.zeros(D, self.dtype)
            p[f"gamma_{layer}"] = np.full(D, gamma_init, self.dtype)
        if block.final_norm:
            p["gamma_final"] = np.ones(D, self.dtype)
        p["W_out"], p["b_out"] = weights(D, C), np.zeros(C, self.dtype)
        self.params: dict[str, np.ndarray] = p

    def block_params(self, layer: int) -> list[str]:
        """The keys of ``params`` that belong to block ``layer`` (1 ... depth)."""
        return [f"{k}_{layer}" for k in BLOCK_KEYS]

    def forward(self, X) -> tuple[np.ndarray, list]:
        """Class scores (N, C) and the caches the backward pass needs."""
        X = as_float_array("X", X)
        if X.ndim != 2 or X.shape[1] != self.input_dim:
            raise ValueError(f"X must have shape (N, {self.input_dim}), got {X.shape}")
        p, blk = self.params, self.block
        h, cache_in = affine_forward(X.astype(self.dtype, copy=False), p["W_in"], p["b_in"])
        caches = [cache_in]
        for layer in range(1, self.depth + 1):
            w1, b1, w2, b2, gamma = (p[k] for k in self.block_params(layer))
            h, cache = blk.forward(h, w1, b1, w2, b2, {"gamma": gamma, "eps": self.eps},
                                   blk.placement)
            caches.append(cache)
        if blk.final_norm:
            h, cache = self.norm[0](h, p["gamma_final"], {"eps": self.eps})
            caches.append(cache)
        scores, cache_out = affine_forward(h, p["W_out"], p["b_out"])
        caches.append(cache_out)
        return scores, caches

    def loss(self, X, y=None):
        """Scores (``y`` None), or the mean softmax loss and the gradient of every parameter.

        Parameters
        ----------
        X : ndarray of float, shape (N, input_dim)
        y : ndarray of int, shape (N,), optional

        Returns
        -------
        scores : ndarray, shape (N, C)
            If ``y`` is None.
        loss : float, grads : dict of str to ndarray
            Otherwise; ``grads`` has the keys and shapes of :attr:`params`.
        """
        scores, caches = self.forward(X)
        if y is None:
            return scores
        loss, dscores = softmax_loss(scores, y)
        p, grads = self.params, {}
        dh, grads["W_out"], grads["b_out"] = affine_backward(dscores, caches.pop())
        if self.block.final_norm:
            dh, grads["gamma_final"] = self.norm[1](dh, caches.pop())
        for layer in range(self.depth, 0, -1):
            dh, *block_grads = self.block.backward(dh, caches.pop())
            grads.update(zip(self.block_params(layer), block_grads, strict=True))
        _, grads["W_in"], grads["b_in"] = affine_backward(dh, caches.pop())
        return float(loss), {k: np.asarray(grads[k], dtype=p[k].dtype) for k in p}
