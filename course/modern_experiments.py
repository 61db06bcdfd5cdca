"""The experiments of notebook 06: normalization in modern networks, on the digits data.

The notebook passes in every layer it tests: the student's RMSNorm and residual block (through
:class:`course.residual.Block`), the provided LayerNorm and BatchNorm, and the student's
``fold_batchnorm``. Nothing here holds the solution of an exercise: this module trains
:class:`course.residual.ResidualNet` and :class:`course.nets.FullyConnectedNet` with the update
rules of :mod:`course.solver`, and measures.

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
from dataclasses import dataclass, field

import numpy as np

from course.beyond_experiments import READY, visible_test
from course.experiments import digits_data, running_under_nbgrader
from course.nets import FullyConnectedNet
from course.residual import Block, ResidualNet
from course.solver import UPDATE_RULES

__all__ = [
    "READY", "visible_test", "needs", "ModernConfig", "config", "digits_data", "Run", "train",
    "test_accuracy", "block_gradient_norms", "warmup_runs", "with_norm", "layernorm_as_rms",
    "no_norm", "swapped_block", "lr_sweep", "stable",
    "highest_stable", "branch_norm_block", "zero_gamma_runs", "scale_invariance",
    "gradient_scaling", "fold_network", "trained_bn_net", "inference_times", "steps_to",
    "running_under_nbgrader", "Block", "REDUCED",
]


def needs(*names: str) -> None:
    """Raise ``NotImplementedError`` unless the visible tests of ``names`` passed in this kernel.

    An experiment cell starts with it, so that an unfinished exercise stops the cell with a
    message that says which exercise to finish, rather than deep inside a training loop.
    """
    missing = [n for n in names if n not in READY]
    if missing:
        raise NotImplementedError(f"this experiment uses {', '.join(missing)}: finish it so that "
                                  "its visible test passes, then run this cell again")


@dataclass(frozen=True)
class ModernConfig:
    """Sizes of the experiments (the full configuration; :func:`config` gives the reduced one).

    Attributes
    ----------
    seeds : tuple of int
        Every experiment is repeated with each seed (weights and minibatch order).
    batch_size : int
        Minibatch size of every training run.
    width, hidden : int
        D, the residual stream's width, and H, the width inside each block's branch.
    dtype : numpy dtype
        Of every network's parameters and computations (float32, as deep learning trains).
    init_depths : tuple of int
        Depths of the residual stacks whose gradients are measured at initialization.
    init_batch : int
        Training examples in the one batch those gradients are taken on.
    warmup_depth, warmup_steps : int
        The pre-norm/post-norm training runs.
    warmup_lr : float
        Their peak Adam learning rate (Kingma & Ba 2015, arXiv:1412.6980).
    warmup_fraction : float
        Share of the steps over which warm-up raises the learning rate linearly to its peak.
    sweep_depth : int
        Blocks of the pre-norm stack of the learning-rate sweep.
    sweep_lrs : tuple of float
        Adam learning rates of the sweep.
    sweep_steps : int
    zero_depths : tuple of int
        The two depths of the zero-gamma experiment.
    zero_steps : int
    zero_lr : float
    eval_every : int
        Steps between two measurements of the test accuracy during the warm-up and zero-gamma
        runs.
    si_steps : int
        Steps of the scale-invariance runs (plain SGD).
    si_lr, si_weight_decay : float
    si_w1_scale : float
        W1 of the scale-invariance runs starts this many times He's scale: BatchNorm makes the
        network's function the same, and the norm's growth shows within the run.
    fold_steps : int
        Adam steps of the BatchNorm network that is folded.
    timing_repeats : int
        Timed calls per network in the inference benchmark.
    """

    seeds: tuple[int, ...] = (0, 1, 2)
    batch_size: int = 64
    width: int = 32
    hidden: int = 64
    dtype: type = np.float32
    init_depths: tuple[int, ...] = (8, 16, 32)
    init_batch: int = 512
    warmup_depth: int = 24
    warmup_steps: int = 120
    warmup_lr: float = 3e-3
    warmup_fraction: float = 0.5
    sweep_depth: int = 8
    sweep_lrs: tuple[float, ...] = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0)
    sweep_steps: int = 100
    zero_depths: tuple[int, ...] = (8, 32)
    zero_steps: int = 120
    zero_lr: float = 3e-3
    eval_every: int = 5
    si_steps: int = 400
    si_lr: float = 0.2
    si_weight_decay: float = 5e-3
    si_w1_scale: float = 0.1
    fold_steps: int = 200
    timing_repeats: int = 200


#: What the reduced configuration changes, for the notebook to print.
REDUCED = ("the same seeds, depths and learning rates, with fewer steps and a smaller batch for "
           "the gradients at initialization")


def config(reduced: bool | None = None) -> ModernConfig:
    """The full configuration, or the reduced one for grading.

    Parameters
    ----------
    reduced : bool, optional
        Default: :func:`course.experiments.running_under_nbgrader`.

    Returns
    -------
    ModernConfig
    """
    if reduced is None:
        reduced = running_under_nbgrader()
    if not reduced:
        return ModernConfig()
    return ModernConfig(init_batch=256, warmup_steps=50, sweep_steps=40, zero_steps=60,
                        si_steps=150, fold_steps=60, timing_repeats=30)


@dataclass
class Run:
    """One training run.

    Attributes
    ----------
    name : str
    seed : int
    lr : float
        Peak learning rate.
    loss_history : list of float
        Training loss of every step (minibatch), before the step's update.
    test_acc : float
        Accuracy on the test split after the last step (nan if the run diverged).
    diverged : bool
        The loss (or a parameter) became nan or infinite; training stopped there.
    trace : dict of str to list
        What a run records at every step besides the loss (see :func:`scale_invariance`).
    model : object
        The network after training.
    """

    name: str
    seed: int
    lr: float
    loss_history: list[float] = field(default_factory=list)
    test_acc: float = float("nan")
    diverged: bool = False
    trace: dict[str, list] = field(default_factory=dict)
    model: object = None

    def final_loss(self, last: int = 20) -> float:
        """Mean training loss over the last ``last`` steps (inf if the run diverged)."""
        if self.diverged or not self.loss_history:
            return math.inf
        return float(np.mean(self.loss_history[-last:]))


class _Flat:
    """A model's parameters as views into one buffer, so that one call of an update rule moves
    them all (a network of 32 blocks has 163 arrays; one call each would cost more than the
    forward pass)."""

    def __init__(self, params: dict[str, np.ndarray]):
        self.keys = list(params)
        self.shapes = [params[k].shape for k in self.keys]
        self.buffer = np.concatenate([params[k].ravel() for k in self.keys])
        self.slices, start = [], 0
        for k, shape in zip(self.keys, self.shapes, strict=True):
            stop = start + int(np.prod(shape))
            self.slices.append(slice(start, stop))
            params[k] = self.buffer[start:stop].reshape(shape)
            start = stop

    def flatten(self, grads: dict[str, np.ndarray]) -> np.ndarray:
        return np.concatenate([np.ravel(grads[k]) for k in self.keys]).astype(self.buffer.dtype)

    def mask(self, keys) -> np.ndarray:
        """1.0 on the entries of the parameters named in ``keys``, 0.0 elsewhere."""
        m = np.zeros_like(self.buffer)
        for k, s in zip(self.keys, self.slices, strict=True):
            if k in keys:
                m[s] = 1.0
        return m


def _batches(n: int, batch_size: int, steps: int, rng: np.random.Generator):
    """``steps`` minibatches of indices: epochs of a fresh permutation, last partial batch dropped."""
    per_epoch = n // batch_size
    order = rng.permutation(n)
    for step in range(steps):
        if step and step % per_epoch == 0:
            order = rng.permutation(n)
        i = step % per_epoch
        yield order[i * batch_size:(i + 1) * batch_size]


def test_accuracy(model, data) -> float:
    """Fraction of the test split classified right (the network in test mode); 0 when the
    scores are not finite."""
    scores = model.loss(data["X_test"])
    if not np.isfinite(scores).all():
        return 0.0
    return float(np.mean(np.argmax(scores, axis=1) == data["y_test"]))


def train(model, data, *, name: str, lr: float, steps: int, batch_size: int, seed: int,
          rule: str = "adam", warmup: int = 0, weight_decay: float = 0.0,
          on_step: Callable | None = None, eval_every: int = 0) -> Run:
    """Train ``model`` on the training split; stop at a nan/inf loss and mark the run diverged.

    Parameters
    ----------
    model : object
        ``params`` and ``loss(X, y=None)``, as :class:`course.solver.Solver` expects.
    data : dict
        From :func:`digits_data`.
    name : str
    lr : float
        Peak learning rate.
    steps, batch_size, seed : int
        ``seed`` draws the minibatch order.
    rule : {'adam', 'sgd'}
        An update rule of :mod:`course.solver` (default hyperparameters otherwise).
    warmup : int
        Steps over which the learning rate rises linearly from ``lr / warmup`` to ``lr``
        (Goyal et al. 2017, arXiv:1706.02677, Sec. 2.2); 0: no warm-up.
    weight_decay : float
        L2 penalty ``0.5 * weight_decay * ||W||^2`` on the weight matrices (keys starting with
        ``W``), added to their gradients; biases and normalization parameters are not decayed.
    on_step : callable, optional
        ``on_step(run, model, grads)`` after each gradient, before the update (to record).
    eval_every : int
        If > 0, the test accuracy is recorded before step 0 and after every ``eval_every``
        steps, in ``run.trace['eval_step']`` and ``run.trace['test_acc']``.

    Returns
    -------
    Run
        Marked diverged (and stopped) when the loss is nan or infinite, or exceeds
        :data:`BLOWUP` times the loss of the first step.
    """
    update, defaults = UPDATE_RULES[rule]
    flat = _Flat(model.params)
    decay = flat.mask([k for k in flat.keys if k.startswith("W")]) * weight_decay
    optim = {**defaults, "learning_rate": lr}
    run = Run(name, seed, lr, model=model)
    rng = np.random.default_rng(seed + 1000)
    X, y = data["X_train"].astype(flat.buffer.dtype), data["y_train"]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for step, idx in enumerate(_batches(len(y), batch_size, steps, rng)):
            if eval_every and step % eval_every == 0:
                _evaluate(run, model, data, step)
            loss, grads = model.loss(X[idx], y[idx])
            if not (math.isfinite(loss) and np.isfinite(flat.buffer).all()) or \
                    run.loss_history and loss > BLOWUP * run.loss_history[0]:
                run.diverged = True
                return run
            run.loss_history.append(loss)
            if on_step is not None:
                on_step(run, model, grads)
            optim["learning_rate"] = lr * min(1.0, (step + 1) / warmup) if warmup else lr
            g = flat.flatten(grads)
            if weight_decay:
                g += decay * flat.buffer
            flat.buffer[...] = update(flat.buffer, g, optim)[0]
        if eval_every:
            _evaluate(run, model, data, steps)
        run.test_acc = test_accuracy(model, data)
        if not np.isfinite(flat.buffer).all():
            run.diverged, run.test_acc = True, float("nan")
    return run


#: A run whose training loss grows past this many times its first loss has diverged (for a
#: softmax over 10 classes, hundreds of nats: scores far out of range), even if still finite.
BLOWUP = 100.0


def steps_to(run: Run, accuracy: float) -> int:
    """The first step at which the run's recorded test accuracy reached ``accuracy`` (-1: never)."""
    for step, acc in zip(run.trace.get("eval_step", []), run.trace.get("test_acc", []),
                         strict=True):
        if acc >= accuracy:
            return int(step)
    return -1


def _evaluate(run: Run, model, data, step: int) -> None:
    run.trace.setdefault("eval_step", []).append(step)
    run.trace.setdefault("test_acc", []).append(test_accuracy(model, data))


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
