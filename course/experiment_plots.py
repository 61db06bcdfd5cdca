"""The figures of notebook 04, each a function of the results of :mod:`course.experiments`.

Every figure is fully labelled (:func:`course.plots.finish`), uses log axes for weight scales,
batch sizes and learning rates, and the colour-blind-safe Okabe–Ito colours of
:mod:`course.plots`: blue for the BatchNorm network, orange for the baseline.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from course.experiments import Run
from course.nets import FullyConnectedNet
from course.plots import COLORS, LAYER_COLORS, LAYER_STYLES, finish

__all__ = ["plot_weight_scale", "plot_single_class", "plot_spread", "plot_batch_size",
           "plot_learning_rate", "plot_activations"]

CHANCE = 0.1  # 10 classes


def _labels(run: Run) -> tuple[str, str]:
    return ("with BatchNorm", COLORS[0]) if run.batchnorm else ("baseline (no BatchNorm)", COLORS[1])


def _chance(ax) -> None:
    ax.axhline(CHANCE, color="grey", ls=":", lw=1, label="chance (10 classes)")
    ax.set_ylim(0, 1.02)


def plot_weight_scale(sweep: dict[str, list[Run]]):
    """Best validation accuracy, best training accuracy and final training loss against weight
    scale, both networks on each panel (log x axis). Diverged runs are marked with an x at
    chance level. Returns the Figure."""
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
                ax.semilogx(bad, [CHANCE] * len(bad), "x", color=color, ms=10)
    axes[2].set_yscale("log")
    for ax in axes[:2]:
        _chance(ax)
    x = "weight scale s [std of the initial weights]"
    finish(axes[0], "Best validation accuracy", x, "accuracy [fraction]")
    finish(axes[1], "Best training accuracy", x, "accuracy [fraction]")
    finish(axes[2], "Final training loss", x, "cross-entropy [nats]")
    fig.tight_layout()
    return fig


def plot_single_class(iid: dict[str, Run], single: dict[str, Run]):
    """Validation accuracy (test mode) per epoch of both networks, trained on i.i.d. batches and
    on single-class batches in random order. Returns the Figure."""
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    for runs, style, kind in ((iid, "o--", "i.i.d. batches"), (single, "s-", "single-class batches")):
        for run in runs.values():
            label, color = _labels(run)
            epochs = np.arange(1, len(run.val_acc_history) + 1)
            ax.plot(epochs, run.val_acc_history, style, color=color, label=f"{label}, {kind}")
    _chance(ax)
    finish(ax, "Single-class batches in random order (validation, test mode)",
           "epoch [passes over the data]", "accuracy [fraction]")
    fig.tight_layout()
    return fig


def plot_spread(spread: dict):
    """The spread of the batch mean (relative to sigma) and of the batch variance (relative to
    sigma^2) against batch size, log-log, with sampling theory's sqrt(1/B) and
    sqrt((kappa - 1)/B), and sqrt(2/B) for a normal unit. Returns the Figure."""
    sizes = np.array(sorted(spread["mean"]), dtype=float)
    kappa = spread["kurtosis"]
    fig, ax = plt.subplots(figsize=(7.0, 4.4))
    ax.loglog(sizes, [spread["mean"][b] for b in sizes.astype(int)], "o", color=COLORS[0],
              label="std(batch mean) / σ")
    ax.loglog(sizes, np.sqrt(1 / sizes), "-", color=COLORS[0], lw=1, label="theory: sqrt(1/B)")
    ax.loglog(sizes, [spread["var"][b] for b in sizes.astype(int)], "s", color=COLORS[3],
              label="std(batch variance) / σ²")
    ax.loglog(sizes, np.sqrt((kappa - 1) / sizes), "-", color=COLORS[3], lw=1,
              label=f"theory: sqrt((κ − 1)/B), κ = {kappa:.1f}")
    ax.loglog(sizes, np.sqrt(2 / sizes), ":", color=COLORS[3], lw=1,
              label="a normal unit (κ = 3): sqrt(2/B)")
    finish(ax, "BatchNorm's statistics are noisy for small batches", "batch size B [examples]",
           "relative spread over resampled batches [dimensionless]")
    fig.tight_layout()
    return fig


def plot_batch_size(gaps: dict):
    """Left: final validation accuracy against batch size, for the baseline and for the BatchNorm
    network measured in test mode (running averages) and in train mode (batch statistics of
    validation batches of the same size). Right: the gap, train mode minus test mode. Every run
    took the same number of updates. ``gaps`` is :func:`course.experiments.mode_gaps`'s result.
    Returns the Figure."""
    bn = gaps["batchnorm"]
    sizes = sorted(bn)
    fig, (ax, ax_gap) = plt.subplots(1, 2, figsize=(12, 4.2))
    base = [gaps["baseline"][b] for b in sizes]
    ax.semilogx(sizes, base, "o-", color=COLORS[1], label="baseline (no BatchNorm)")
    ax.semilogx(sizes, [bn[b][1] for b in sizes], "s-", color=COLORS[0],
                label="BatchNorm, test mode (running averages)")
    ax.semilogx(sizes, [bn[b][0] for b in sizes], "^--", color=COLORS[2],
                label="BatchNorm, train mode (batch statistics)")
    _chance(ax)
    finish(ax, "Validation accuracy after the same number of updates", "batch size B [examples]",
           "accuracy [fraction]")
    ax_gap.semilogx(sizes, [bn[b][0] - bn[b][1] for b in sizes], "D-", color=COLORS[4],
                    label="train mode − test mode")
    ax_gap.axhline(0, color="grey", lw=1)
    finish(ax_gap, "BatchNorm's train/test-mode gap", "batch size B [examples]",
           "accuracy difference [fraction]", legend=True)
    for a in (ax, ax_gap):
        a.set_xticks(sizes, [str(b) for b in sizes])
    fig.tight_layout()
    return fig


def plot_learning_rate(sweep: dict[str, list[Run]]):
    """Best validation accuracy against Adam's learning rate, both networks. Returns the Figure."""
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    for runs in sweep.values():
        label, color = _labels(runs[0])
        ax.semilogx([r.learning_rate for r in runs], [r.best_val_acc for r in runs], "o-",
                    color=color, label=label)
    _chance(ax)
    finish(ax, "Higher learning rates with BatchNorm", "Adam's learning rate [per step]",
           "best validation accuracy [fraction]")
    fig.tight_layout()
    return fig


def plot_activations(panels: dict[str, FullyConnectedNet], X):
    """Histograms of each hidden layer's pre-activations (affine outputs W h + b), as log10 of
    their magnitude so that layers whose scales differ by orders of magnitude fit on one axis.
    Each layer has its own Okabe–Ito colour and line style (:data:`course.plots.LAYER_COLORS`).

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

    Raises
    ------
    ValueError
        If a network has more hidden layers than there are layer colours.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), sharey=True,
                             sharex=True)
    axes = np.atleast_1d(axes)
    mags = {}
    for title, net in panels.items():
        if net.num_layers - 1 > len(LAYER_COLORS):
            raise ValueError(f"{title}: {net.num_layers - 1} hidden layers, at most "
                             f"{len(LAYER_COLORS)} can be told apart")
        mode = "test" if net.bn_params and "running_mean" in net.bn_params[0] else "train"
        mags[title] = [np.log10(np.abs(a.ravel()) + 1e-300)
                       for a in net.activations(X, mode=mode)["pre"]]
    low = np.floor(min(np.percentile(m, 0.5) for ms in mags.values() for m in ms))
    high = np.ceil(max(np.percentile(m, 99.5) for ms in mags.values() for m in ms))
    for ax, (title, layers) in zip(axes, mags.items(), strict=True):
        for i, mag in enumerate(layers):
            ax.hist(mag, bins=60, range=(low, high), density=True, histtype="step", lw=1.6,
                    color=LAYER_COLORS[i], ls=LAYER_STYLES[i], label=f"layer {i + 1}")
        finish(ax, title, "log10 |pre-activation| [log10 of activation units]",
               "density [per unit of log10]", legend=ax is axes[0])
    fig.tight_layout()
    return fig
