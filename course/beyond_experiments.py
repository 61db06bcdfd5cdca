"""The experiments of notebook 05: BatchNorm, Batch Renorm, LayerNorm and GroupNorm at small and
non-i.i.d. batches, on the digits data.

The notebook passes in the normalization layers as functions (the student's own LayerNorm,
GroupNorm and Batch Renorm, and the provided BatchNorm), so nothing here holds the solution of an
exercise: this module only trains :class:`course.nets.FullyConnectedNet` with Adam, in minibatch
orders of its choosing, and reads what the layers put in their caches.

Every comparison runs once per seed of ``cfg.seeds`` (a seed draws the initial weights and the
order of the minibatches) and returns :class:`course.seeds.SeedRuns`; the accuracies it reports
are those of the *final* network on the held-out test split (the validation split only gives the
curves per epoch).

Sizes come from :func:`config`: the full configuration is what a student runs (about a minute on
one core), the reduced one what ``nbgrader autograde`` runs (``NBGRADER_EXECUTION`` is set). Every
random draw is seeded.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from course.experiments import digits_data, running_under_nbgrader
from course.nets import FullyConnectedNet
from course.seeds import SeedRuns, over_seeds, spread_text
from course.solver import UPDATE_RULES, adam

__all__ = [
    "READY", "visible_test", "ready", "Method", "BeyondConfig", "config", "digits_data", "paper_schedule",
    "as_fc_groupnorm", "Run", "train", "small_batch_sweep", "non_iid_runs", "accuracy",
    "gradient_ratio", "SeedRuns", "spread_text",
]

#: Names of the exercises whose visible tests passed in this kernel (see :func:`visible_test`).
READY: set[str] = set()


@contextlib.contextmanager
def visible_test(*names: str):
    """Run a visible test; on success record ``names`` in :data:`READY`.

    An exercise that still raises ``NotImplementedError`` gets one line saying what the
    experiments will skip, and the error goes on (Jupyter stops a *Run All* there, as at every
    unfinished exercise; a notebook executed with errors allowed runs to the end). Any other
    failure propagates too, with the student's value beside the expected one.
    """
    try:
        yield
    except NotImplementedError:
        print(f"not implemented yet: {', '.join(names)}. The experiments skip the layer that "
              "needs it until this visible test passes.")
        raise
    READY.update(names)


def ready(methods: list) -> list:
    """The methods whose exercises passed their visible tests; prints a line for each other."""
    for m in methods:
        if not m.ready():
            missing = sorted(set(m.needs) - READY)
            print(f"skipped: {m.name} (finish {', '.join(missing)} so that the visible tests "
                  "pass, then run this cell again)")
    return [m for m in methods if m.ready()]


@dataclass(frozen=True)
class Method:
    """One normalization choice for the network.

    Attributes
    ----------
    name : str
        Shown in legends and tables.
    layer : pair of callables or None
        ``(norm_forward, norm_backward)`` for ``FullyConnectedNet(normalization='custom')``;
        None for the network without normalization.
    norm_param : dict
        The initial ``norm_param`` of each hidden layer.
    needs : tuple of str
        Exercises (names in :data:`READY`) that the layer uses.
    schedule : bool
        Relax ``rmax`` and ``dmax`` during training with :func:`paper_schedule` (Batch Renorm).
    """

    name: str
    layer: tuple[Callable, Callable] | None
    norm_param: dict = field(default_factory=lambda: {"mode": "train"})
    needs: tuple[str, ...] = ()
    schedule: bool = False

    def ready(self) -> bool:
        """Whether every exercise the layer needs passed its visible test."""
        return set(self.needs) <= READY


@dataclass(frozen=True)
class BeyondConfig:
    """Sizes of the experiments.

    Attributes
    ----------
    hidden_dims : tuple of int
        Hidden layer widths (a multiple of ``groups`` each).
    groups : int
        GroupNorm's G in the fully connected net (hidden units as channels, H = W = 1).
    batch_sizes : tuple of int
        Batch sizes of the small-batch sweep.
    samples_seen : int
        Training examples per run (``epochs`` = samples_seen / N_train, rounded up): every batch
        size sees the same data, so small batches take many more steps (the design holds the
        examples fixed and leaves the number of steps confounded with the batch size).
    non_iid_batch_size : int
        Batch size of the single-class-batch runs.
    non_iid_samples_seen : int
        Training examples per run of the single-class-batch experiment and its control.
    train_subset : int or None
        Train on the first this many (shuffled) training examples; None uses all 1077.
    weight_scale, learning_rate : float
        Initial weight std; Adam's step (Kingma & Ba 2015, arXiv:1412.6980).
    seeds : tuple of int
        One run per seed for every comparison (at least 3).
    seed : int
        The seed of the run at hand (:func:`course.seeds.over_seeds` sets it from ``seeds``).
    """

    hidden_dims: tuple[int, ...] = (64, 64, 64)
    groups: int = 4
    batch_sizes: tuple[int, ...] = (2, 4, 8, 16, 64)
    samples_seen: int = 3 * 1077
    non_iid_batch_size: int = 16
    non_iid_samples_seen: int = 3 * 1077
    train_subset: int | None = None
    weight_scale: float = 0.1
    learning_rate: float = 1e-3
    seeds: tuple[int, ...] = (0, 1, 2)
    seed: int = 0


#: What the reduced configuration changes, for the notebook to print.
REDUCED = ("every method, batch size and seed, but the runs train on 540 of the 1077 training "
           "images: one pass in the small-batch sweep, four in the single-class experiment, "
           "instead of three passes over all 1077")


def config(reduced: bool | None = None) -> BeyondConfig:
    """The full configuration, or the reduced one for grading.

    Parameters
    ----------
    reduced : bool, optional
        Default: :func:`course.experiments.running_under_nbgrader`. The reduced runs keep every
        method, batch size and seed but train on fewer examples (:data:`REDUCED`).
    """
    if reduced is None:
        reduced = running_under_nbgrader()
    if not reduced:
        return BeyondConfig()
    return BeyondConfig(train_subset=540, samples_seen=540, non_iid_samples_seen=4 * 540)


def paper_schedule(step: int, total: int) -> tuple[float, float]:
    """``(rmax, dmax)`` at ``step`` of ``total``: Ioffe (2017, Sec. 4), scaled to ``total``.

    The paper keeps rmax = 1 and dmax = 0 (plain BatchNorm) for 5k steps, then relaxes them
    linearly to rmax = 3 by step 40k and dmax = 5 by step 25k. Here 40k steps are ``total``.
    """
    t = 40_000 * step / max(total, 1)
    rmax = 1.0 + 2.0 * min(max(t - 5_000, 0.0) / 35_000, 1.0)
    dmax = 5.0 * min(max(t - 5_000, 0.0) / 20_000, 1.0)
    return rmax, dmax


def as_fc_groupnorm(forward: Callable, backward: Callable, G: int):
    """GroupNorm for a fully connected layer: the (N, H) units as H channels of 1 x 1 images.

    Returns ``(norm_forward, norm_backward)`` with the BatchNorm signatures, which call the
    student's spatial functions on the (N, H, 1, 1) view.
    """
    def norm_forward(a, gamma, beta, gn_param):
        out, cache = forward(a[:, :, None, None], gamma, beta, G, gn_param)
        return out.reshape(a.shape), cache

    def norm_backward(dout, cache):
        dx, dgamma, dbeta = backward(dout[:, :, None, None], cache)
        return dx.reshape(dout.shape), dgamma, dbeta

    return norm_forward, norm_backward


@dataclass
class Run:
    """One training run.

    Attributes
    ----------
    method : str
    batch_size : int
    seed : int
    val_acc_history : list of float
        Validation accuracy (test mode) after each epoch.
    best_val_acc : float
        The highest of ``val_acc_history`` (for reference; the notebook reports ``test_acc``).
    test_acc, train_mode_acc : float
        Accuracy of the final network on the held-out test split, with the running statistics
        (test mode) and with the statistics of random test batches of ``batch_size`` (train
        mode).
    loss_history : list of float
    trace : dict of str to ndarray
        Batch Renorm only (else empty): per step, ``rmax``, ``dmax``, and over the units of the
        first hidden layer ``r_min``, ``r_mean``, ``r_max``, ``d_min``, ``d_mean``, ``d_max``,
        and ``clipped``, the fraction of units whose r or d sits on its limit.
    diverged : bool
    """

    method: str
    batch_size: int
    seed: int = 0
    val_acc_history: list[float] = field(default_factory=list)
    best_val_acc: float = 0.0
    test_acc: float = float("nan")
    train_mode_acc: float = float("nan")
    loss_history: list[float] = field(default_factory=list)
    trace: dict[str, np.ndarray] = field(default_factory=dict)
    diverged: bool = False

    @property
    def gap(self) -> float:
        """Test-mode minus train-mode accuracy on the test split."""
        return self.test_acc - self.train_mode_acc


def _batches(y, batch_size: int, order: str, rng) -> list[np.ndarray]:
    """One epoch of minibatch indices: shuffled (``'iid'``) or single-class, in random order."""
    if order == "iid":
        idx = rng.permutation(len(y))
        return [idx[i:i + batch_size] for i in range(0, len(y) - batch_size + 1, batch_size)]
    if order != "single_class":
        raise ValueError(f"order must be 'iid' or 'single_class', got {order!r}")
    out = []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        out += [idx[i:i + batch_size] for i in range(0, len(idx) - batch_size + 1, batch_size)]
    return [out[i] for i in rng.permutation(len(out))]


def _scores(net: FullyConnectedNet, X, mode: str):
    """Class scores in ``mode``; train mode uses copies of the running statistics."""
    if mode == "test":
        return net.loss(X)
    L = net.num_layers
    h = net.activations(X, mode="train")["post"][-1] if L > 1 else X
    return h @ net.params[f"W{L}"] + net.params[f"b{L}"]


def accuracy(net: FullyConnectedNet, X, y, mode: str = "test", batch_size: int = 1000,
             seed: int = 0) -> float:
    """Fraction classified right, in test mode or in train mode on random batches.

    In train mode every normalization uses the statistics of its batch of ``batch_size``
    examples (the last partial batch joins the one before it), as it did during training.
    """
    idx = np.random.default_rng(seed).permutation(len(y)) if mode == "train" else np.arange(len(y))
    n = max(len(y) // batch_size, 1)
    correct = 0
    for part in np.array_split(idx, n):
        correct += int(np.sum(np.argmax(_scores(net, X[part], mode), axis=1) == y[part]))
    return correct / len(y)


def _record(trace: dict, cache, rmax: float, dmax: float) -> None:
    """Append the first hidden layer's r and d (from its cache) to ``trace``."""
    r, d = np.asarray(cache["r"]), np.asarray(cache["d"])
    lim = np.isclose(np.abs(np.log(r)), np.log(rmax)) | np.isclose(np.abs(d), dmax)
    row = {"rmax": rmax, "dmax": dmax, "r_min": r.min(), "r_mean": r.mean(), "r_max": r.max(),
           "d_min": d.min(), "d_mean": d.mean(), "d_max": d.max(), "clipped": lim.mean()}
    for k, v in row.items():
        trace.setdefault(k, []).append(float(v))


def _make_net(cfg: BeyondConfig, method: Method, caches: list) -> FullyConnectedNet:
    """The network of ``method``; its normalization appends every cache it makes to ``caches``."""
    if method.layer is None:
        return FullyConnectedNet(list(cfg.hidden_dims), 64, 10, weight_scale=cfg.weight_scale,
                                 seed=cfg.seed)
    forward, backward = method.layer

    def recording(a, gamma, beta, norm_param):
        out, cache = forward(a, gamma, beta, norm_param)
        caches.append(cache)
        return out, cache

    return FullyConnectedNet(list(cfg.hidden_dims), 64, 10, normalization="custom",
                             norm_layer=(recording, backward), norm_param=method.norm_param,
                             weight_scale=cfg.weight_scale, seed=cfg.seed)


def train(data, cfg: BeyondConfig, method: Method, *, batch_size: int,
          order: str = "iid", samples_seen: int | None = None) -> Run:
    """Train one network with Adam; a run whose loss becomes nan/inf stops and is marked.

    Parameters
    ----------
    data : dict
        From :func:`digits_data`.
    cfg : BeyondConfig
    method : Method
    batch_size : int
    order : {'iid', 'single_class'}
        Shuffled minibatches, or batches that each hold one class, in random order.
    samples_seen : int, optional
        Training examples to see (default ``cfg.samples_seen``), rounded up to whole epochs.

    Returns
    -------
    Run
    """
    X, y = data["X_train"], data["y_train"]
    if cfg.train_subset:
        keep = np.random.default_rng(cfg.seed).permutation(len(y))[:cfg.train_subset]
        X, y = X[keep], y[keep]
    caches: list = []
    net = _make_net(cfg, method, caches)
    optim = {k: {**UPDATE_RULES["adam"][1], "learning_rate": cfg.learning_rate} for k in net.params}
    rng = np.random.default_rng(cfg.seed + 1)
    epochs = math.ceil((cfg.samples_seen if samples_seen is None else samples_seen) / len(y))
    total = epochs * (len(y) // batch_size)
    run = Run(method.name, batch_size, cfg.seed)
    step = 0
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(epochs):
            for idx in _batches(y, batch_size, order, rng):
                limits = paper_schedule(step, total) if method.schedule else None
                for p in net.bn_params:
                    if limits:
                        p["rmax"], p["dmax"] = limits
                caches.clear()
                loss, grads = net.loss(X[idx], y[idx])
                if not math.isfinite(loss):
                    run.diverged = True
                    return _finish(run, net, data, batch_size)
                run.loss_history.append(loss)
                if method.schedule:
                    _record(run.trace, caches[0], *limits)
                for k in net.params:
                    net.params[k], _ = adam(net.params[k], grads[k], optim[k])
                step += 1
            run.val_acc_history.append(accuracy(net, data["X_val"], data["y_val"]))
    return _finish(run, net, data, batch_size)


def _finish(run: Run, net, data, batch_size: int) -> Run:
    run.best_val_acc = max(run.val_acc_history, default=0.0)
    run.test_acc = accuracy(net, data["X_test"], data["y_test"])
    run.train_mode_acc = accuracy(net, data["X_test"], data["y_test"], "train", batch_size)
    run.trace = {k: np.array(v) for k, v in run.trace.items()}
    return run


def small_batch_sweep(data, cfg: BeyondConfig, methods: list[Method]) -> dict[str, dict[int, SeedRuns]]:
    """Train every ready method at every batch size of ``cfg`` (i.i.d. batches), once per seed.

    Returns
    -------
    dict
        ``{method name: {batch size: SeedRuns}}``, for the methods whose exercises are ready.
    """
    return {m.name: {bs: over_seeds(cfg, lambda c, m=m, bs=bs: train(data, c, m, batch_size=bs))
                     for bs in cfg.batch_sizes}
            for m in methods if m.ready()}


def non_iid_runs(data, cfg: BeyondConfig, methods: list[Method]) -> dict[str, tuple[SeedRuns, SeedRuns]]:
    """Each ready method with i.i.d. and with single-class batches (``cfg.non_iid_batch_size``),
    once per seed: the same method, batch size, number of examples and seeds, only the
    composition of the batches changes.

    Returns
    -------
    dict
        ``{method name: (i.i.d. runs, single-class runs)}``.
    """
    bs = cfg.non_iid_batch_size
    seen = cfg.non_iid_samples_seen
    return {m.name: (over_seeds(cfg, lambda c, m=m: train(data, c, m, batch_size=bs,
                                                          samples_seen=seen)),
                     over_seeds(cfg, lambda c, m=m: train(data, c, m, batch_size=bs,
                                                          order="single_class", samples_seen=seen)))
            for m in methods if m.ready()}


def gradient_ratio(forward: Callable, backward: Callable, N: int, norm_param: dict | None = None,
                   D: int = 256, seed: int = 0) -> dict[str, float]:
    """How much of the upstream gradient a normalization layer passes back, for a batch of N.

    ``x`` and ``dout`` are drawn from N(0, 1) with shape (N, D), gamma = 1, beta = 0; the layer
    runs forward in the mode of ``norm_param`` (default train) on a deep copy of it, then
    backward.

    Returns
    -------
    dict
        ``'ratio'``: the median over the N*D entries of |dx| / |dout|; ``'x_hat_min'``,
        ``'x_hat_max'``: the smallest and largest |output| (with gamma = 1, beta = 0: |x_hat|).
    """
    r = np.random.default_rng(seed)
    x, dout = r.normal(size=(N, D)), r.normal(size=(N, D))
    param = copy.deepcopy({"mode": "train"} if norm_param is None else norm_param)
    out, cache = forward(x, np.ones(D), np.zeros(D), param)
    dx = backward(dout, cache)[0]
    return {"ratio": float(np.median(np.abs(dx) / np.abs(dout))),
            "x_hat_min": float(np.min(np.abs(out))), "x_hat_max": float(np.max(np.abs(out)))}
