"""The experiments of notebook 04: BatchNorm in a deep network on the digits data.

Each experiment is a function that trains networks with :class:`course.nets.FullyConnectedNet`
and :class:`course.solver.Solver` and returns plain results; each plot is a function of those
results. The notebook passes in the BatchNorm sandwich layer to use (the student's own or the
provided one), so nothing here contains the solution of an exercise.

All runs share one data split (``course.data.load_digits``), standardized with the training
set's statistics (scikit-learn's ``StandardScaler``), and every random draw is seeded: the same
configuration gives the same numbers.

The sizes come from :func:`config`. The full configuration is what a student runs (about a
minute on one core); the reduced one is what ``nbgrader autograde`` runs (nbgrader sets the
``NBGRADER_EXECUTION`` environment variable), so that grading stays fast. The graded functions
never depend on it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
from sklearn.preprocessing import StandardScaler

from course.data import load_digits
from course.nets import FullyConnectedNet
from course.plots import COLORS, finish
from course.solver import Solver, TrainingDiverged

__all__ = [
    "ExperimentConfig", "config", "running_under_nbgrader", "digits_data", "Run", "train",
    "weight_scale_sweep", "batch_size_sweep", "batch_statistics_spread", "sorted_by_class",
    "plot_weight_scale", "plot_batch_size", "plot_spread", "plot_sorted", "plot_activations",
]

BnLayer = tuple[Callable, Callable]


@dataclass(frozen=True)
class ExperimentConfig:
    """Sizes of the experiments.

    Attributes
    ----------
    hidden_dims : tuple of int
        Hidden layer widths of every network (6 hidden layers, 7 affine layers).
    weight_scales : tuple of float
        Standard deviations of the initial weights for the weight-scale sweep (log-spaced).
    epochs : int
        Epochs per run of the weight-scale sweep and of the class-sorted run.
    batch_size : int
        Minibatch size of the weight-scale sweep.
    batch_sizes : tuple of int
        Batch sizes of the batch-size experiment.
    batch_size_epochs : int
        Epochs per run of the batch-size experiment.
    batch_size_weight_scale : float
        Weight scale of the batch-size experiment (one at which both networks train).
    learning_rate : float
        Adam's learning rate (Kingma & Ba 2015, arXiv:1412.6980) for every run.
    seed : int
        Seed of the weights and of the minibatch order.
    """

    hidden_dims: tuple[int, ...] = (100,) * 6
    weight_scales: tuple[float, ...] = tuple(np.logspace(-4, 0, 9))
    epochs: int = 8
    batch_size: int = 50
    batch_sizes: tuple[int, ...] = (5, 10, 50, 200)
    batch_size_epochs: int = 5
    batch_size_weight_scale: float = 0.1
    learning_rate: float = 3e-3
    seed: int = 0


def running_under_nbgrader() -> bool:
    """True while nbgrader executes the notebook (``autograde`` or ``validate``).

    nbgrader sets the environment variable ``NBGRADER_EXECUTION`` to ``'autograde'`` or
    ``'validate'`` in the kernels it starts (nbgrader docs, "Autograding resources").
    """
    return bool(os.environ.get("NBGRADER_EXECUTION"))


def config(reduced: bool | None = None) -> ExperimentConfig:
    """The full configuration, or the reduced one for grading.

    Parameters
    ----------
    reduced : bool, optional
        Default: :func:`running_under_nbgrader`. The reduced sweeps keep every experiment and
        every batch size but use 5 weight scales (1e-4 ... 1) and fewer epochs.

    Returns
    -------
    ExperimentConfig
    """
    if reduced is None:
        reduced = running_under_nbgrader()
    if not reduced:
        return ExperimentConfig()
    return ExperimentConfig(weight_scales=tuple(np.logspace(-4, 0, 5)), epochs=2,
                            batch_size_epochs=1)


def digits_data() -> dict[str, np.ndarray]:
    """The digits split of :func:`course.data.load_digits`, standardized on the training set.

    Returns
    -------
    dict
        ``X_train`` (1077, 64), ``X_val`` (360, 64), ``X_test`` (360, 64), float64, each pixel
        standardized with the training mean and standard deviation (``StandardScaler``; pixels
        that are constant in the training set keep scale 1); ``y_train``, ``y_val``, ``y_test``
        int64 labels 0-9.
    """
    split = load_digits()
    scaler = StandardScaler().fit(split.X_train)
    return {"X_train": scaler.transform(split.X_train), "y_train": split.y_train,
            "X_val": scaler.transform(split.X_val), "y_val": split.y_val,
            "X_test": scaler.transform(split.X_test), "y_test": split.y_test}


@dataclass
class Run:
    """One training run and its histories.

    Attributes
    ----------
    batchnorm : bool
    weight_scale : float
    batch_size : int
    loss_history : list of float
        Training loss per iteration.
    train_acc_history, val_acc_history : list of float
        Accuracy after each epoch (test mode).
    best_train_acc, best_val_acc : float
    final_loss : float
        Mean loss over the last epoch's iterations (nan if the run diverged).
    diverged : bool
        Whether training stopped on a nan/inf loss (:class:`course.solver.TrainingDiverged`).
    model : FullyConnectedNet
        The network after training (its last parameters).
    """

    batchnorm: bool
    weight_scale: float
    batch_size: int
    loss_history: list[float] = field(default_factory=list)
    train_acc_history: list[float] = field(default_factory=list)
    val_acc_history: list[float] = field(default_factory=list)
    best_train_acc: float = 0.0
    best_val_acc: float = 0.0
    final_loss: float = float("nan")
    diverged: bool = False
    model: FullyConnectedNet | None = None


def make_net(cfg: ExperimentConfig, weight_scale: float, bn_layer: BnLayer | None,
             input_dim: int = 64, num_classes: int = 10) -> FullyConnectedNet:
    """The experiments' network: BatchNorm exactly when ``bn_layer`` is given."""
    return FullyConnectedNet(list(cfg.hidden_dims), input_dim, num_classes,
                             normalization="batchnorm" if bn_layer else None,
                             weight_scale=weight_scale, seed=cfg.seed, bn_layer=bn_layer)


def train(data, cfg: ExperimentConfig, *, weight_scale: float, bn_layer: BnLayer | None = None,
          batch_size: int | None = None, epochs: int | None = None, shuffle: bool = True) -> Run:
    """Train one network with Adam; a diverging run is recorded, not raised.

    Parameters
    ----------
    data : dict
        As returned by :func:`digits_data` (or :func:`sorted_by_class`).
    cfg : ExperimentConfig
    weight_scale : float
        > 0.
    bn_layer : pair of callables, optional
        ``(affine_bn_relu_forward, affine_bn_relu_backward)``; None trains the baseline.
    batch_size, epochs : int, optional
        Default ``cfg.batch_size`` and ``cfg.epochs``.
    shuffle : bool
        Reshuffle the training set every epoch (``False`` keeps the data's order, for the
        class-sorted run).

    Returns
    -------
    Run

    Raises
    ------
    TypeError, ValueError
        From :class:`FullyConnectedNet` and :class:`Solver` for invalid arguments.
    """
    batch_size = cfg.batch_size if batch_size is None else batch_size
    epochs = cfg.epochs if epochs is None else epochs
    model = make_net(cfg, weight_scale, bn_layer, input_dim=data["X_train"].shape[1])
    solver = Solver(model, data, update_rule="adam",
                    optim_config={"learning_rate": cfg.learning_rate}, batch_size=batch_size,
                    num_epochs=epochs, seed=cfg.seed, shuffle=shuffle)
    run = Run(batchnorm=bn_layer is not None, weight_scale=weight_scale, batch_size=batch_size,
              model=model)
    try:
        solver.train()
    except TrainingDiverged as exc:
        solver = exc.solver
        run.diverged = True
    run.loss_history = list(solver.loss_history)
    run.train_acc_history = list(solver.train_acc_history)
    run.val_acc_history = list(solver.val_acc_history)
    run.best_train_acc, run.best_val_acc = solver.best_train_acc, solver.best_val_acc
    per_epoch = len(data["y_train"]) // batch_size
    if not run.diverged:
        run.final_loss = float(np.mean(run.loss_history[-per_epoch:]))
    return run


def weight_scale_sweep(data, cfg: ExperimentConfig, bn_layer: BnLayer) -> dict[str, list[Run]]:
    """Train the baseline and the BatchNorm network at every weight scale of ``cfg``.

    Returns
    -------
    dict
        ``'baseline'`` and ``'batchnorm'``: lists of :class:`Run`, in the order of
        ``cfg.weight_scales``.
    """
    return {"baseline": [train(data, cfg, weight_scale=s) for s in cfg.weight_scales],
            "batchnorm": [train(data, cfg, weight_scale=s, bn_layer=bn_layer)
                          for s in cfg.weight_scales]}


def batch_size_sweep(data, cfg: ExperimentConfig, bn_layer: BnLayer) -> dict[str, dict[int, Run]]:
    """Train both networks at every batch size of ``cfg`` (weight scale
    ``cfg.batch_size_weight_scale``, ``cfg.batch_size_epochs`` epochs).

    Returns
    -------
    dict
        ``'baseline'`` and ``'batchnorm'``: ``{batch_size: Run}``.
    """
    def runs(layer):
        return {bs: train(data, cfg, weight_scale=cfg.batch_size_weight_scale, bn_layer=layer,
                          batch_size=bs, epochs=cfg.batch_size_epochs) for bs in cfg.batch_sizes}

    return {"baseline": runs(None), "batchnorm": runs(bn_layer)}


def batch_statistics_spread(X, w, b, batch_sizes: Sequence[int], unit: int = 0,
                            seed: int = 0) -> dict[int, tuple[float, float]]:
    """How much BatchNorm's batch statistics of one unit vary from batch to batch.

    For each batch size B, one epoch of ``X`` is shuffled (seeded) and cut into ``len(X) // B``
    batches; for each batch the mean and the biased variance of the unit's affine output
    ``(X @ w + b)[:, unit]`` are computed (Ioffe & Szegedy 2015, Alg. 1). Their standard
    deviations over the batches shrink roughly like 1/sqrt(B) (the standard error of a mean).

    Parameters
    ----------
    X : ndarray of float, shape (N, D)
    w : ndarray of float, shape (D, H)
    b : ndarray of float, shape (H,)
    batch_sizes : sequence of int
        Each in [2, N].
    unit : int
        Which of the H units, in [0, H).
    seed : int

    Returns
    -------
    dict
        ``{B: (std of the batch means, std of the batch variances)}``.

    Raises
    ------
    ValueError
        If a batch size or the unit is out of range, or the shapes disagree.
    """
    X, w, b = np.asarray(X, float), np.asarray(w, float), np.asarray(b, float)
    if X.ndim != 2 or w.ndim != 2 or w.shape[0] != X.shape[1] or b.shape != (w.shape[1],):
        raise ValueError(f"expected X (N, D), w (D, H), b (H,), got {X.shape}, {w.shape}, {b.shape}")
    if not 0 <= unit < w.shape[1]:
        raise ValueError(f"unit must be in [0, {w.shape[1]}), got {unit}")
    a = X @ w[:, unit] + b[unit]
    order = np.random.default_rng(seed).permutation(len(a))
    spread = {}
    for B in batch_sizes:
        if not 2 <= B <= len(a):
            raise ValueError(f"each batch size must be in [2, {len(a)}], got {B}")
        batches = a[order[: len(a) // B * B]].reshape(-1, B)
        spread[int(B)] = (float(batches.mean(axis=1).std()), float(batches.var(axis=1).std()))
    return spread


def sorted_by_class(data) -> dict[str, np.ndarray]:
    """A copy of ``data`` whose training set is sorted by label (stable sort): trained without
    shuffling, almost every minibatch then holds a single class, so batches are not i.i.d."""
    order = np.argsort(data["y_train"], kind="stable")
    return {**data, "X_train": data["X_train"][order], "y_train": data["y_train"][order]}


# --------------------------------------------------------------------------- plots
def _labels(run: Run) -> tuple[str, str]:
    return ("with BatchNorm", COLORS[0]) if run.batchnorm else ("baseline (no BatchNorm)", COLORS[1])


def plot_weight_scale(sweep: dict[str, list[Run]]):
    """Best validation accuracy, best training accuracy and final training loss against weight
    scale, both networks on each panel (log x axis). Diverged runs are marked with an x at
    chance level / at the top of the loss panel. Returns the Figure."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for runs in sweep.values():
        label, color = _labels(runs[0])
        scales = [r.weight_scale for r in runs]
        for ax, values in ((axes[0], [r.best_val_acc for r in runs]),
                           (axes[1], [r.best_train_acc for r in runs]),
                           (axes[2], [r.final_loss for r in runs])):
            ax.semilogx(scales, values, "o-", color=color, label=label)
            bad = [s for s, r in zip(scales, runs, strict=True) if r.diverged]
            if bad and ax is not axes[2]:
                ax.semilogx(bad, [0.1] * len(bad), "x", color=color, ms=10)
    axes[2].set_yscale("log")
    finish(axes[0], "Best validation accuracy", "weight scale [std of initial weights]",
           "accuracy [fraction]")
    finish(axes[1], "Best training accuracy", "weight scale [std of initial weights]",
           "accuracy [fraction]")
    finish(axes[2], "Final training loss", "weight scale [std of initial weights]",
           "cross-entropy [nats]")
    for ax in axes[:2]:
        ax.axhline(0.1, color="grey", ls=":", lw=1)
        ax.set_ylim(0, 1.02)
    fig.tight_layout()
    return fig


def plot_batch_size(sweep: dict[str, dict[int, Run]]):
    """Training and validation accuracy per epoch for every batch size: one panel per batch
    size, both networks, solid = validation, dashed = training. Returns the Figure."""
    sizes = list(next(iter(sweep.values())))
    lowest = min(min(run.val_acc_history + run.train_acc_history, default=0.0)
                 for runs in sweep.values() for run in runs.values())
    fig, axes = plt.subplots(1, len(sizes), figsize=(4 * len(sizes), 3.8), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, bs in zip(axes, sizes, strict=True):
        for runs in sweep.values():
            run = runs[bs]
            label, color = _labels(run)
            epochs = np.arange(1, len(run.val_acc_history) + 1)
            ax.plot(epochs, run.val_acc_history, "o-", color=color, label=f"{label}, validation")
            ax.plot(epochs, run.train_acc_history, "s--", color=color, alpha=0.7,
                    label=f"{label}, training")
        ax.set_ylim(max(0.0, lowest - 0.05), 1.01)
        finish(ax, f"Batch size {bs}", "epoch [passes over the data]", "accuracy [fraction]",
               legend=ax is axes[0])
    fig.tight_layout()
    return fig


def plot_spread(spread: dict[int, tuple[float, float]]):
    """Standard deviation, over the batches of an epoch, of the batch mean and of the batch
    variance of one unit, against batch size (log-log), with the 1/sqrt(B) slope for
    reference. Returns the Figure."""
    sizes = np.array(sorted(spread))
    means = np.array([spread[b][0] for b in sizes])
    variances = np.array([spread[b][1] for b in sizes])
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.loglog(sizes, means, "o-", color=COLORS[0], label="std of the batch mean")
    ax.loglog(sizes, variances, "s-", color=COLORS[3], label="std of the batch variance")
    ax.loglog(sizes, means[0] * np.sqrt(sizes[0] / sizes), ":", color="grey",
              label="slope 1/sqrt(B)")
    finish(ax, "BatchNorm's statistics are noisy for small batches", "batch size B [examples]",
           "std over the batches of an epoch [units of the activation]")
    fig.tight_layout()
    return fig


def plot_sorted(shuffled: Run, sorted_run: Run):
    """Validation accuracy per epoch of the BatchNorm network trained on shuffled batches and on
    class-sorted batches. Returns the Figure."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for run, label, color in ((shuffled, "shuffled (i.i.d.) batches", COLORS[0]),
                              (sorted_run, "class-sorted batches", COLORS[3])):
        epochs = np.arange(1, len(run.val_acc_history) + 1)
        ax.plot(epochs, run.val_acc_history, "o-", color=color, label=label)
    ax.set_ylim(0, 1.02)
    finish(ax, "BatchNorm with non-i.i.d. batches (validation, test mode)",
           "epoch [passes over the data]", "accuracy [fraction]")
    fig.tight_layout()
    return fig


def plot_activations(panels: dict[str, FullyConnectedNet], X):
    """Histograms of each hidden layer's pre-activations (affine outputs W h + b), as log10 of
    their magnitude so that layers whose scales differ by orders of magnitude fit on one axis.

    Parameters
    ----------
    panels : dict
        ``{panel title: network}``, e.g. baseline and BatchNorm, at initialization and trained.
    X : ndarray, shape (N, D)
        The inputs (BatchNorm in test mode when the network has been trained, train mode
        before: the running statistics do not exist yet).

    Returns
    -------
    Figure
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), sharey=True,
                             sharex=True)
    axes = np.atleast_1d(axes)
    cmap = plt.get_cmap("viridis")  # sequential and colour-blind safe: layer 1 dark, last light
    mags = {}
    for title, net in panels.items():
        mode = "test" if net.bn_params and "running_mean" in net.bn_params[0] else "train"
        mags[title] = [np.log10(np.abs(a.ravel()) + 1e-300)
                       for a in net.activations(X, mode=mode)["pre"]]
    low = np.floor(min(np.percentile(m, 0.5) for ms in mags.values() for m in ms))
    high = np.ceil(max(np.percentile(m, 99.5) for ms in mags.values() for m in ms))
    for ax, (title, layers) in zip(axes, mags.items(), strict=True):
        for i, mag in enumerate(layers):
            ax.hist(mag, bins=60, range=(low, high), density=True, histtype="step", lw=1.5,
                    color=cmap(i / max(len(layers) - 1, 1)), label=f"layer {i + 1}")
        finish(ax, title, "log10 |pre-activation| [log10 of activation units]",
               "density [per unit of log10]", legend=ax is axes[0])
    fig.tight_layout()
    return fig
