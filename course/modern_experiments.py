"""The experiments of notebook 06: normalization in modern networks, on the digits data.

The notebook passes in every layer it tests: the student's RMSNorm and residual block (through
:class:`course.residual.Block`), the provided LayerNorm and BatchNorm, and the student's
``fold_batchnorm``. Nothing here holds the solution of an exercise: this module trains
:class:`course.residual.ResidualNet` and :class:`course.nets.FullyConnectedNet` with the
training loop of :mod:`course.modern_training` (re-exported here, the notebook's one import) and
the update rules of :mod:`course.solver`, and measures.

Every claim of the notebook is made over the seeds of :attr:`ModernConfig.seeds` (at least
three), on the held-out **test** split of :func:`course.experiments.digits_data`, after a fixed
number of steps (no model is selected on it). Sizes come from :func:`config`: the full
configuration is what a student runs, the reduced one what ``nbgrader autograde`` runs
(``NBGRADER_EXECUTION`` is set). Every random draw is seeded.
"""

from __future__ import annotations

import math
import time
import types
from collections.abc import Callable

import numpy as np

from course.beyond_experiments import READY, visible_test
from course.experiments import digits_data, running_under_nbgrader
from course.modern_training import (
    REDUCED,
    ModernConfig,
    Run,
    config,
    needs,
    steps_to,
    test_accuracy,
    train,
)
from course.nets import FullyConnectedNet
from course.residual import Block, ResidualNet

__all__ = [
    "READY", "visible_test", "needs", "ModernConfig", "config", "digits_data", "Run", "train",
    "test_accuracy", "block_gradient_norms", "warmup_runs", "with_norm", "layernorm_as_rms",
    "no_norm", "swapped_block", "lr_sweep", "stable",
    "highest_stable", "branch_norm_block", "zero_gamma_runs", "scale_invariance",
    "gradient_scaling", "fold_network", "trained_bn_net", "inference_times", "steps_to",
    "running_under_nbgrader", "Block", "REDUCED",
]


# --------------------------------------------------------------------------- pre- and post-norm
def _residual(cfg: ModernConfig, depth: int, block: Block, norm, seed: int,
              gamma_init: float = 1.0) -> ResidualNet:
    return ResidualNet(depth, block, norm, width=cfg.width, hidden=cfg.hidden,
                       gamma_init=gamma_init, seed=seed, dtype=cfg.dtype)


def block_gradient_norms(data, cfg: ModernConfig, blocks: list[Block], norm) -> dict:
    """The norm of the gradient of each block's parameters at initialization.

    One batch of ``cfg.init_batch`` training examples, the mean softmax loss; for block l the
    norm of the concatenated gradients of ``w1, b1, w2, b2, gamma`` (Xiong et al. 2020, Fig. 3).

    Returns
    -------
    dict
        ``{block name: {depth: ndarray (len(seeds), depth)}}``.
    """
    X, y = data["X_train"][:cfg.init_batch], data["y_train"][:cfg.init_batch]
    out: dict = {}
    for block in blocks:
        out[block.name] = {}
        for depth in cfg.init_depths:
            rows = []
            for seed in cfg.seeds:
                net = _residual(cfg, depth, block, norm, seed)
                _, grads = net.loss(X, y)
                rows.append([math.sqrt(sum(float(np.sum(np.square(grads[k])))
                                           for k in net.block_params(layer)))
                             for layer in range(1, depth + 1)])
            out[block.name][depth] = np.array(rows)
    return out


def warmup_runs(data, cfg: ModernConfig, blocks: list[Block], norm) -> dict:
    """Each block trained at ``cfg.warmup_lr`` with and without warm-up, every seed.

    Returns
    -------
    dict
        ``{(block name, warmed up: bool): [Run per seed]}``.
    """
    warm = int(cfg.warmup_fraction * cfg.warmup_steps)
    return {(block.name, w > 0): [
        train(_residual(cfg, cfg.warmup_depth, block, norm, seed), data, name=block.name,
              lr=cfg.warmup_lr, steps=cfg.warmup_steps, batch_size=cfg.batch_size, seed=seed,
              warmup=w, eval_every=cfg.eval_every) for seed in cfg.seeds]
        for block in blocks for w in (0, warm)}


# --------------------------------------------------------------------------- removing the norm
NORM_NAMES = ("rmsnorm_forward", "rmsnorm_backward")


def with_norm(fn: Callable, norm_forward: Callable, norm_backward: Callable) -> Callable:
    """A copy of ``fn`` in which the names ``rmsnorm_forward`` and ``rmsnorm_backward`` mean
    another layer with the same signatures.

    The student's residual block calls their RMSNorm by name; the copy runs the same code with
    those two names bound to ``norm_forward`` and ``norm_backward`` (LayerNorm, or no
    normalization at all). ``fn`` and the notebook's names are left as they are.

    Raises
    ------
    ValueError
        If ``fn`` names neither ``rmsnorm_forward`` nor ``rmsnorm_backward`` (its normalization
        cannot be swapped).
    """
    if not set(NORM_NAMES) & set(fn.__code__.co_names):
        raise ValueError(f"{fn.__name__} does not call rmsnorm_forward or rmsnorm_backward, so "
                         "its normalization cannot be replaced: call your RMSNorm functions by "
                         "name inside the block")
    namespace = {**fn.__globals__, NORM_NAMES[0]: norm_forward, NORM_NAMES[1]: norm_backward}
    copy = types.FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__,
                              fn.__closure__)
    copy.__kwdefaults__ = fn.__kwdefaults__
    return copy


def layernorm_as_rms(ln_forward: Callable, ln_backward: Callable) -> tuple[Callable, Callable]:
    """LayerNorm without a shift (``nn.LayerNorm(D, bias=False)``) in RMSNorm's signatures."""
    def forward(x, gamma, rms_param):
        return ln_forward(x, gamma, np.zeros_like(gamma), {"eps": rms_param.get("eps", 1e-6)})

    def backward(dout, cache):
        dx, dgamma, _ = ln_backward(dout, cache)
        return dx, dgamma

    return forward, backward


def no_norm() -> tuple[Callable, Callable]:
    """The identity in RMSNorm's signatures: no normalization; gamma is unused (gradient 0)."""
    def forward(x, gamma, rms_param):
        return np.array(x, copy=True), np.shape(gamma)

    def backward(dout, cache):
        return np.array(dout, copy=True), np.zeros(cache, dtype=np.asarray(dout).dtype)

    return forward, backward


def swapped_block(block: Block, norm: tuple[Callable, Callable], name: str) -> Block:
    """``block`` with its RMSNorm replaced by ``norm`` (see :func:`with_norm`).

    Raises
    ------
    ValueError
        If the replacement does not change the block's output on a test input: the block
        normalizes without calling ``rmsnorm_forward`` by name.
    """
    swapped = Block(name, with_norm(block.forward, *norm), with_norm(block.backward, *norm),
                    block.placement, block.final_norm)
    rng = np.random.default_rng(0)
    x = 3.0 + 2.0 * rng.normal(size=(4, 6))  # mean and RMS far from 0 and 1: every norm differs
    args = (x, rng.normal(size=(6, 5)), np.zeros(5), rng.normal(size=(5, 6)), np.zeros(6),
            {"gamma": np.ones(6), "eps": 1e-6}, block.placement)
    if np.allclose(block.forward(*args)[0], swapped.forward(*args)[0]):
        raise ValueError(f"replacing rmsnorm_forward did not change {block.forward.__name__}'s "
                         "output: call your rmsnorm_forward by name inside the block (not a "
                         "helper that calls it, and not an inline copy)")
    return swapped


def lr_sweep(data, cfg: ModernConfig, variants: dict[str, tuple[Block, tuple]]) -> dict:
    """Train the pre-norm stack with each normalization at every learning rate of the sweep.

    Parameters
    ----------
    variants : dict
        ``{name: (block, (norm_forward, norm_backward))}``: the block and the network's final
        normalization, e.g. the student's pre-norm block with RMSNorm, LayerNorm or nothing.

    Returns
    -------
    dict
        ``{name: {lr: [Run per seed]}}``.
    """
    return {name: {lr: [train(_residual(cfg, cfg.sweep_depth, block, norm, seed), data,
                              name=name, lr=lr, steps=cfg.sweep_steps,
                              batch_size=cfg.batch_size, seed=seed) for seed in cfg.seeds]
                   for lr in cfg.sweep_lrs}
            for name, (block, norm) in variants.items()}


def stable(run: Run) -> bool:
    """A run is stable when its loss stayed finite and its mean over the last 20 steps is below
    half the loss at initialization (ln 10 = 2.30 for 10 balanced classes)."""
    return not run.diverged and run.final_loss() < 0.5 * run.loss_history[0]


def highest_stable(sweep: dict) -> dict:
    """``{name: [per seed, the highest learning rate at which that run and the runs at every
    lower learning rate of the sweep are stable]}`` (0.0 when even the lowest is not)."""
    out = {}
    for name, by_lr in sweep.items():
        lrs = sorted(by_lr)
        best = []
        for i in range(len(by_lr[lrs[0]])):
            ok = 0.0
            for lr in lrs:
                if not stable(by_lr[lr][i]):
                    break
                ok = lr
            best.append(ok)
        out[name] = best
    return out


# --------------------------------------------------------------------------- zero-init gamma
def branch_norm_block(norm_forward: Callable, norm_backward: Callable) -> Block:
    """A residual block whose branch *ends* in RMSNorm: ``out = x + rmsnorm(f(x))``.

    This is where Goyal et al. (2017, Sec. 2.1) put their zero-initialized gamma: the last
    normalization of each residual branch of a ResNet (He et al. 2016, arXiv:1512.03385), so that
    every block starts as the identity. ``f`` is the branch of notebook 06's block (affine, ReLU,
    affine); RMSNorm is the caller's pair ``(norm_forward, norm_backward)``.

    Returns
    -------
    Block
        Its ``forward(x, w1, b1, w2, b2, norm_param, placement)`` ignores ``placement``.
    """
    def forward(x, w1, b1, w2, b2, norm_param, placement=None):
        h = x @ w1 + b1
        a = np.maximum(h, 0.0)
        out, norm_cache = norm_forward(a @ w2 + b2, norm_param["gamma"],
                                       {"eps": norm_param.get("eps", 1e-6)})
        return x + out, (x, w1, w2, h, a, norm_cache)

    def backward(dout, cache):
        x, w1, w2, h, a, norm_cache = cache
        df, dgamma = norm_backward(dout, norm_cache)
        dh = (df @ w2.T) * (h > 0)
        return dout + dh @ w1.T, x.T @ dh, dh.sum(axis=0), a.T @ df, df.sum(axis=0), dgamma

    return Block("RMSNorm at the end of each branch", forward, backward)


def zero_gamma_runs(data, cfg: ModernConfig, norm) -> dict:
    """Branch-end-norm networks with gamma = 1 and gamma = 0 at each depth of ``cfg.zero_depths``.

    Returns
    -------
    dict
        ``{(depth, gamma_init): [Run per seed]}``.
    """
    block = branch_norm_block(*norm)
    return {(depth, g0): [
        train(_residual(cfg, depth, block, norm, seed, gamma_init=g0), data,
              name=f"depth {depth}, gamma = {g0:g}", lr=cfg.zero_lr, steps=cfg.zero_steps,
              batch_size=cfg.batch_size, seed=seed, eval_every=cfg.eval_every)
        for seed in cfg.seeds]
        for depth in cfg.zero_depths for g0 in (1.0, 0.0)}


# --------------------------------------------------------------------------- scale invariance
def _bn_net(bn_layer, seed: int, w1_scale: float = 1.0) -> FullyConnectedNet:
    """Three hidden layers of 64 units with BatchNorm, He-initialized; W1 times ``w1_scale``."""
    net = FullyConnectedNet([64] * 3, 64, 10, normalization="custom", norm_layer=bn_layer,
                            norm_param={"mode": "train", "eps": 1e-5, "momentum": 0.1},
                            weight_scale=math.sqrt(2 / 64), seed=seed)
    net.params["W1"] = net.params["W1"] * w1_scale
    return net


def _record_w1(run: Run, model, grads) -> None:
    """Append ||W1||, ||dL/dW1|| and cos(dL/dW1, W1) to the run's trace (before the update)."""
    w, g = model.params["W1"], grads["W1"]
    nw, ng = float(np.linalg.norm(w)), float(np.linalg.norm(g))
    run.trace.setdefault("w_norm", []).append(nw)
    run.trace.setdefault("grad_norm", []).append(ng)
    run.trace.setdefault("cos", []).append(float(np.sum(w * g)) / max(nw * ng, 1e-300))


def scale_invariance(data, cfg: ModernConfig, bn_layer) -> dict:
    """SGD on a BatchNorm network, without and with weight decay, recording W1 at every step.

    ``W1`` (64 x 64) is followed by BatchNorm, so the loss does not change when a column of W1 is
    scaled; its gradient is orthogonal to W1 and shrinks as 1/||W1|| (van Laarhoven 2017,
    arXiv:1706.05350). The trace holds ``w_norm`` ||W1||, ``grad_norm`` ||dL/dW1|| (the loss's
    gradient, without the decay term) and ``cos``, their cosine.

    Returns
    -------
    dict
        ``{weight decay: [Run per seed]}`` for weight decay 0 and ``cfg.si_weight_decay``.
    """
    return {wd: [train(_bn_net(bn_layer, seed, cfg.si_w1_scale), data,
                       name=f"weight decay {wd:g}", lr=cfg.si_lr,
                       steps=cfg.si_steps, batch_size=cfg.batch_size, seed=seed, rule="sgd",
                       weight_decay=wd, on_step=_record_w1) for seed in cfg.seeds]
            for wd in (0.0, cfg.si_weight_decay)}


def gradient_scaling(data, cfg: ModernConfig, bn_layer, scales=(0.25, 0.5, 1.0, 2.0, 4.0)) -> dict:
    """||dL/dW1|| and cos(dL/dW1, W1) at initialization with W1 multiplied by each scale.

    Returns
    -------
    dict
        ``{'scales': ndarray, 'w_norm': (seeds, scales), 'grad_norm': (seeds, scales),
        'cos': (seeds, scales), 'loss': (seeds, scales)}``.
    """
    X, y = data["X_train"][:cfg.init_batch], data["y_train"][:cfg.init_batch]
    rows = {"w_norm": [], "grad_norm": [], "cos": [], "loss": []}
    for seed in cfg.seeds:
        net = _bn_net(bn_layer, seed)
        w1 = net.params["W1"].copy()
        row = {k: [] for k in rows}
        for c in scales:
            net.params["W1"] = c * w1
            loss, grads = net.loss(X, y)
            g = grads["W1"]
            row["w_norm"].append(float(np.linalg.norm(c * w1)))
            row["grad_norm"].append(float(np.linalg.norm(g)))
            row["cos"].append(float(np.sum(g * c * w1) / (np.linalg.norm(g) * np.linalg.norm(c * w1))))
            row["loss"].append(loss)
        for k in rows:
            rows[k].append(row[k])
    return {"scales": np.array(scales), **{k: np.array(v) for k, v in rows.items()}}


# --------------------------------------------------------------------------- folding
def fold_network(net: FullyConnectedNet, fold: Callable) -> FullyConnectedNet:
    """The network without normalization whose hidden layers are ``net``'s, folded.

    ``fold(w, b, gamma, beta, running_mean, running_var, eps) -> (w_folded, b_folded)`` is
    applied to every hidden layer with the running statistics and eps of its ``bn_params``; the
    classifier is copied. ``net`` is left unchanged.
    """
    folded = FullyConnectedNet(list(net.hidden_dims), net.input_dim, net.num_classes,
                               weight_scale=1.0, dtype=net.dtype)
    p = net.params
    for i in range(1, net.num_layers):
        bn = net.bn_params[i - 1]
        w, b = fold(p[f"W{i}"].copy(), p[f"b{i}"].copy(), p[f"gamma{i}"].copy(),
                    p[f"beta{i}"].copy(), bn["running_mean"].copy(), bn["running_var"].copy(),
                    float(bn.get("eps", 1e-5)))
        folded.params[f"W{i}"] = np.asarray(w, dtype=net.dtype)
        folded.params[f"b{i}"] = np.asarray(b, dtype=net.dtype)
    L = net.num_layers
    folded.params[f"W{L}"], folded.params[f"b{L}"] = p[f"W{L}"].copy(), p[f"b{L}"].copy()
    return folded


def trained_bn_net(data, cfg: ModernConfig, bn_layer, seed: int, dtype=np.float64):
    """A 3-hidden-layer BatchNorm network trained with Adam for ``cfg.fold_steps`` steps."""
    net = _bn_net(bn_layer, seed)
    train(net, data, name="BatchNorm", lr=3e-3, steps=cfg.fold_steps, batch_size=cfg.batch_size,
          seed=seed)
    if dtype != np.float64:
        net.params = {k: v.astype(dtype) for k, v in net.params.items()}
        net.dtype = np.dtype(dtype)
        for bn in net.bn_params:
            bn["running_mean"] = bn["running_mean"].astype(dtype)
            bn["running_var"] = bn["running_var"].astype(dtype)
    return net


def inference_times(nets: dict, X: np.ndarray, repeats: int) -> dict:
    """Seconds per test-mode forward pass of each network on ``X``, measured side by side.

    The calls alternate between the networks (A B A B ...) so that a change in the machine's
    load affects them alike; the median over ``repeats`` calls is reported.

    Returns
    -------
    dict
        ``{name: median seconds per call}``.
    """
    times: dict = {name: [] for name in nets}
    for _ in range(repeats):
        for name, net in nets.items():
            start = time.perf_counter()
            net.loss(X)
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}
