"""The figures of notebook 05, each a function of the results of :mod:`course.beyond_experiments`.

Every method keeps one colour, marker and line style in every figure (:data:`STYLES`): five
Okabe–Ito colours that stay apart under colour blindness and in greyscale (black, blue,
vermillion, green, reddish purple; orange is left out, too close to vermillion). Results over
seeds are drawn as the mean with a min–max band (:func:`course.plots.band`).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from course.plots import COLORS, band, finish

__all__ = ["STYLES", "style", "plot_small_batches", "plot_non_iid", "plot_renorm_trace"]

#: method name (its start) -> (colour, marker, line style)
STYLES = {
    "no normalization": ("#000000", "o", ":"),
    "BatchNorm": (COLORS[0], "s", "-"),
    "Batch Renorm": (COLORS[3], "^", "-"),
    "LayerNorm": (COLORS[2], "D", "--"),
    "GroupNorm": (COLORS[4], "v", "--"),
}


def style(name: str) -> tuple[str, str, str]:
    """``(colour, marker, line style)`` of a method, by the start of its name.

    Raises
    ------
    KeyError
        If the name starts with none of :data:`STYLES`' keys.
    """
    for key, value in STYLES.items():
        if name.startswith(key):
            return value
    raise KeyError(f"no style for method {name!r}; known: {list(STYLES)}")


def _n_seeds(runs) -> int:
    return len(runs.runs)


def plot_small_batches(sweep: dict):
    """Test accuracy of the final network (test mode) against batch size, one line per method,
    mean over seeds with a min–max band. Returns the Figure."""
    fig, ax = plt.subplots(figsize=(9.5, 4.4))
    n = 0
    for name, runs in sweep.items():
        sizes = sorted(runs)
        color, marker, ls = style(name)
        band(ax, sizes, np.array([runs[b].values("test_acc") for b in sizes]).T, color, name,
             marker=marker, ls=ls, alpha=0.15)
        n = _n_seeds(runs[sizes[0]])
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(b) for b in sizes])
    ax.minorticks_off()
    ax.axhline(0.1, color="grey", ls=":", lw=1, label="chance")
    ax.set_ylim(0, 1.02)
    finish(ax, f"Normalization at small batch sizes\n(mean, band: min–max over {n} seeds)",
           "batch size [examples]", "test accuracy, test mode [fraction]", legend=False)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9)  # beside the curves
    fig.tight_layout()
    return fig


def plot_non_iid(runs: dict):
    """Validation accuracy per epoch, i.i.d. batches (left) and single-class batches (right), one
    line per method, mean over seeds with a min–max band; one legend for both panels, beside
    them; whole epochs on the x axis. Returns the Figure."""
    fig, axes = plt.subplots(1, 2, figsize=(12.5, 4.2), sharey=True)
    n = 0
    for name, pair in runs.items():
        color, marker, ls = style(name)
        for ax, seeds in zip(axes, pair, strict=True):
            curves = np.array([r.val_acc_history for r in seeds.runs])
            epochs = np.arange(1, curves.shape[1] + 1)
            band(ax, epochs, curves, color, name, marker=marker, ls=ls, alpha=0.15)
            n = _n_seeds(seeds)
    for ax, kind in zip(axes, ("i.i.d. batches", "single-class batches, random order"), strict=True):
        ax.axhline(0.1, color="grey", ls=":", lw=1, label="chance")
        ax.set_ylim(0, 1.02)
        ax.set_xticks(epochs)  # whole epochs: accuracy is measured after each one
        finish(ax, f"{kind}\n(mean, band: min–max over {n} seeds)", "epoch [passes over the data]",
               "validation accuracy, test mode [fraction]", legend=False)
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=9)
    fig.tight_layout()
    return fig


def plot_renorm_trace(run):
    """r and d of Batch Renorm's first hidden layer over training (one run: its ``trace``), with
    the schedule's limits. Returns the Figure."""
    t = run.trace
    steps = np.arange(len(t["rmax"]))
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharex=True)
    for ax, q, lo, hi, label in ((axes[0], "r", 1 / t["rmax"], t["rmax"], "r"),
                                 (axes[1], "d", -t["dmax"], t["dmax"], "d")):
        ax.fill_between(steps, t[f"{q}_min"], t[f"{q}_max"], color=COLORS[0], alpha=0.3,
                        label=f"{label}: min to max over the units")
        ax.plot(steps, t[f"{q}_mean"], color=COLORS[0], lw=1, label=f"{label}: mean")
        ax.plot(steps, hi, color=COLORS[3], ls="--", label="clipping limits")
        ax.plot(steps, lo, color=COLORS[3], ls="--")
        if q == "r":
            ax.set_yscale("log")
        finish(ax, f"{label} over training (batch {run.batch_size}, seed {run.seed})",
               "training step [iterations]", f"{label} (first hidden layer) [dimensionless]")
    fig.tight_layout()
    return fig
