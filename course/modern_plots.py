"""The figures of notebook 06, each a function of the results of :mod:`course.modern_experiments`.

Every curve is the mean over the seeds with a band from the lowest to the highest seed (the
claims of the notebook are made only where the bands do not overlap). Log axes for gradient
norms, learning rates and weight norms; the Okabe–Ito colours of :mod:`course.plots`.
"""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from course.modern_experiments import ModernConfig, Run, highest_stable
from course.plots import COLORS, finish

__all__ = ["band", "plot_gradient_norms", "plot_warmup", "plot_lr_sweep", "plot_zero_gamma",
           "plot_scale_invariance"]


def band(ax, x, rows, color: str, label: str, ls: str = "-", marker: str | None = None):
    """Plot the mean of ``rows`` (one row per seed) against ``x`` with a min-max band."""
    rows = np.asarray(rows, dtype=float)
    with warnings.catch_warnings():  # a point where every seed diverged (nan) is left blank
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high, mean = (f(rows, axis=0) for f in (np.nanmin, np.nanmax, np.nanmean))
    ax.fill_between(x, low, high, color=color, alpha=0.25, lw=0)
    ax.plot(x, mean, ls=ls, color=color, marker=marker, ms=4,
            label=f"{label} (mean, min-max of {len(rows)} seeds)")


def plot_gradient_norms(norms: dict):
    """Gradient norm of each block's parameters at initialization, one panel per depth."""
    depths = sorted(next(iter(norms.values())))
    fig, axes = plt.subplots(1, len(depths), figsize=(4.3 * len(depths), 3.8), sharey=True)
    for ax, depth in zip(np.atleast_1d(axes), depths, strict=True):
        for (name, by_depth), color in zip(norms.items(), COLORS, strict=False):
            band(ax, np.arange(1, depth + 1), by_depth[depth], color, name, marker="o")
        ax.set_yscale("log")
        finish(ax, f"{depth} blocks", "block l [1 = nearest the input]",
               "||dL/dθ_l|| at initialization [loss units]", legend=ax is np.atleast_1d(axes)[0])
    fig.suptitle("Gradient of each block's parameters at initialization (Xiong et al. 2020, Fig. 3)")
    fig.tight_layout()
    return fig


def _curves(runs: list[Run], key: str):
    """Steps and the (seeds, points) array of one recorded curve; diverged runs end early and
    are padded with nan."""
    if key == "loss":
        series = [r.loss_history for r in runs]
        steps = np.arange(max(map(len, series)))
    else:
        series = [r.trace.get(key, []) for r in runs]
        steps = np.asarray(max((r.trace.get("eval_step", []) for r in runs), key=len))
    rows = np.full((len(runs), len(steps)), np.nan)
    for i, s in enumerate(series):
        rows[i, :len(s)] = s
    return steps, rows


def plot_warmup(runs: dict, cfg: ModernConfig):
    """Training loss and test accuracy over training, pre-norm and post-norm, with and without
    warm-up (solid: no warm-up; dashed: warm-up)."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    names = list(dict.fromkeys(name for name, _ in runs))
    for (name, warm), rs in runs.items():
        color = COLORS[names.index(name)]
        label = f"{name}, {'warm-up' if warm else 'no warm-up'}"
        ls = "--" if warm else "-"
        band(axes[0], *_curves(rs, "loss"), color, label, ls)
        band(axes[1], *_curves(rs, "test_acc"), color, label, ls)
    warm = int(cfg.warmup_fraction * cfg.warmup_steps)
    for ax in axes:
        ax.axvline(warm, color="grey", ls=":", lw=1)
    axes[0].set_yscale("log")
    axes[1].axhline(0.1, color="grey", ls="-.", lw=1)
    axes[1].set_ylim(0, 1.02)
    finish(axes[0], f"Training loss, {cfg.warmup_depth} blocks, peak lr {cfg.warmup_lr:g}",
           "step [minibatches]", "training loss [nats]", legend=False)
    finish(axes[1], "Test accuracy (held-out split) during training", "step [minibatches]",
           "test accuracy [fraction]")
    axes[1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_lr_sweep(sweep: dict):
    """Final training loss and test accuracy against the learning rate, one line per
    normalization; diverged runs are drawn at the top of the loss panel with an x."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    best = highest_stable(sweep)
    for (name, by_lr), color in zip(sweep.items(), COLORS, strict=False):
        lrs = np.array(sorted(by_lr))
        loss = np.array([[r.final_loss() for r in by_lr[lr]] for lr in lrs]).T
        acc = np.array([[r.test_acc for r in by_lr[lr]] for lr in lrs]).T
        finite = np.where(np.isfinite(loss), loss, np.nan)
        band(axes[0], lrs, finite, color, name, marker="o")
        blown = [lr for lr, col in zip(lrs, loss.T, strict=True) if not np.isfinite(col).all()]
        axes[0].plot(blown, [30.0] * len(blown), "x", color=color, ms=9)
        band(axes[1], lrs, np.nan_to_num(acc, nan=0.0), color, name, marker="o")
        axes[1].axvline(min(best[name]), color=color, ls=":", lw=1.5)
    for ax in axes:
        ax.set_xscale("log")
    axes[0].set_yscale("log")
    axes[0].set_ylim(top=60)
    axes[1].set_ylim(0, 1.02)
    finish(axes[0], "Final training loss (x: diverged)", "Adam learning rate [1]",
           "mean loss of the last 20 steps [nats]", legend=False)
    finish(axes[1], "Test accuracy (0 if diverged; dotted: highest stable lr)",
           "Adam learning rate [1]", "test accuracy [fraction]")
    axes[1].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def plot_zero_gamma(runs: dict):
    """Test accuracy during training, gamma = 1 against gamma = 0, one panel per depth."""
    depths = sorted({d for d, _ in runs})
    fig, axes = plt.subplots(1, len(depths), figsize=(6 * len(depths), 4), sharey=True)
    for ax, depth in zip(np.atleast_1d(axes), depths, strict=True):
        for g0, color in ((1.0, COLORS[0]), (0.0, COLORS[2])):
            band(ax, *_curves(runs[(depth, g0)], "test_acc"), color, f"gamma starts at {g0:g}")
        ax.set_ylim(0, 1.02)
        finish(ax, f"{depth} blocks, RMSNorm at the end of each branch", "step [minibatches]",
               "test accuracy [fraction]")
    fig.tight_layout()
    return fig


def plot_scale_invariance(si: dict, scaling: dict, lr: float):
    """||W1|| and the effective step lr/||W1||^2 over SGD training with and without weight
    decay, and ||dL/dW1|| against ||W1|| when W1 is rescaled at initialization."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for (wd, runs), color in zip(si.items(), COLORS, strict=False):
        w = np.array([r.trace["w_norm"] for r in runs])
        steps = np.arange(w.shape[1])
        label = f"weight decay {wd:g}"
        band(axes[0], steps, w, color, label)
        band(axes[1], steps, lr / w**2, color, label)
    axes[1].set_yscale("log")
    finish(axes[0], "Norm of W1 (followed by BatchNorm)", "step [minibatches]", "||W1|| [1]",
           legend=False)
    finish(axes[1], "Effective step size", "step [minibatches]", "lr / ||W1||^2 [1]",
           legend=False)
    axes[0].legend(fontsize=8, loc="lower right")
    axes[1].legend(fontsize=8, loc="upper right")
    wn, gn = scaling["w_norm"], scaling["grad_norm"]
    for i in range(len(wn)):
        axes[2].loglog(wn[i], gn[i], "o-", color=COLORS[i % len(COLORS)], ms=5,
                       label=f"seed {i}: W1 scaled by {scaling['scales'].min():g} ... "
                             f"{scaling['scales'].max():g}")
    ref = gn[0, len(gn[0]) // 2] * wn[0, len(wn[0]) // 2] / wn[0]
    axes[2].loglog(wn[0], ref, "k:", label="slope -1: ||g|| proportional to 1 / ||W1||")
    finish(axes[2], "Gradient against weight norm, at initialization", "||W1|| [1]",
           "||dL/dW1|| [loss units]", legend=False)
    for axis in (axes[2].xaxis, axes[2].yaxis):
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FormatStrFormatter("%g"))
        axis.set_minor_formatter(NullFormatter())
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    return fig
