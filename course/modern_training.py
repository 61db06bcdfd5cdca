"""The training core of notebook 06's experiments: sizes, runs, the training loop.

:func:`train` trains any model with ``params`` and ``loss(X, y=None)`` (the interface of
:class:`course.solver.Solver`) with an update rule of :mod:`course.solver`, optional linear
warm-up and weight decay, and records the test accuracy on the held-out split as it goes.
:func:`config` gives the full sizes (a student's run) or the reduced ones (``nbgrader
autograde``, ``NBGRADER_EXECUTION`` set). :mod:`course.modern_experiments` builds the
experiments on it. Every random draw is seeded; nothing here holds a graded exercise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from course.beyond_experiments import READY
from course.experiments import running_under_nbgrader
from course.solver import UPDATE_RULES

__all__ = ["needs", "ModernConfig", "config", "REDUCED", "Run", "train", "test_accuracy",
           "steps_to", "BLOWUP"]


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
    return ModernConfig(init_batch=256, warmup_steps=50, sweep_steps=40, zero_steps=40,
                        si_steps=100, fold_steps=40, timing_repeats=30)


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
