"""The figures of notebook 04, each a function of the results of :mod:`course.experiments`
and :mod:`course.health`.

Every figure is fully labelled (:func:`course.plots.finish`), uses log axes for weight scales,
batch sizes and learning rates, and the colour-blind-safe Okabe–Ito colours of
:mod:`course.plots`: blue for the BatchNorm network, orange for the baseline. Results over seeds
are drawn as the mean with a shaded band from the smallest to the largest seed
(:func:`course.plots.band`).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from course.nets import FullyConnectedNet
from course.plots import COLORS, LAYER_COLORS, LAYER_STYLES, band, finish

__all__ = ["plot_weight_scale", "plot_single_class", "plot_spread", "plot_batch_size",
           "plot_learning_rate", "plot_activations", "plot_layer_input", "plot_health"]

CHANCE = 0.1  # 10 classes
NAMES = {"batchnorm": ("with BatchNorm", COLORS[0]), "baseline": ("baseline (no BatchNorm)", COLORS[1])}


def _chance(ax) -> None:
    ax.axhline(CHANCE, color="grey", ls=":", lw=1, label="chance (10 classes)")
    ax.set_ylim(0, 1.02)


def _seeds_note(runs) -> str:
    return f"mean, band: min–max over {len(runs.runs)} seeds"


def plot_weight_scale(sweep: dict):
    """Final test accuracy, final training accuracy and final training loss against weight
    scale, both networks on each panel (log x axis), mean over seeds with a min–max band.
    Seeds whose run diverged are marked with an x at chance level. Returns the Figure."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for name, runs in sweep.items():
        label, color = NAMES[name]
        scales = [r.weight_scale for r in runs]
        for ax, key in ((axes[0], "test_acc"), (axes[1], "train_acc"), (axes[2], "final_loss")):
            band(ax, scales, np.array([r.values(key) for r in runs]).T, color, label)
            bad = [s for s, r in zip(scales, runs, strict=True) if r.values("diverged").any()]
            if bad and key != "final_loss":
                ax.plot(bad, [CHANCE] * len(bad), "x", color=color, ms=10)
    for ax in axes:
        ax.set_xscale("log")
    axes[2].set_yscale("log")
    for ax in axes[:2]:
        _chance(ax)
    x = "weight scale s [std of the initial weights]"
    note = _seeds_note(sweep["batchnorm"][0])
    finish(axes[0], f"Test accuracy of the final network\n({note})", x, "accuracy [fraction]")
    finish(axes[1], "Training accuracy of the final network", x, "accuracy [fraction]")
    finish(axes[2], "Final training loss", x, "cross-entropy [nats]")
    fig.tight_layout()
    return fig


def plot_single_class(iid: dict, single: dict):
    """Validation accuracy (test mode) per epoch of both networks, trained on i.i.d. batches and
    on single-class batches in random order, mean over seeds with a min–max band. Returns the
    Figure."""
    fig, ax = plt.subplots(figsize=(10.5, 4.4))
    for runs, style, kind in ((iid, "--", "i.i.d. batches"), (single, "-", "single-class batches")):
        for name, seeds in runs.items():
            label, color = NAMES[name]
            curves = np.array([r.val_acc_history for r in seeds.runs])
            band(ax, np.arange(1, curves.shape[1] + 1), curves, color, f"{label}, {kind}",
                 marker="o" if kind.startswith("i") else "s", ls=style, alpha=0.15)
    _chance(ax)
    ax.xaxis.get_major_locator().set_params(integer=True)
    finish(ax, f"Single-class batches in random order\n(validation, test mode; "
               f"{_seeds_note(single['batchnorm'])})", "epoch [passes over the data]",
           "accuracy [fraction]")
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the curves
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
    """Left: test accuracy against batch size, for the baseline and for the BatchNorm network
    measured in test mode (running averages) and in train mode (batch statistics of test
    batches of the same size). Right: the gap, train mode minus test mode. Every run took the
    same number of updates; mean over seeds with a min–max band. ``gaps`` is
    :func:`course.experiments.mode_gaps`'s result. Returns the Figure."""
    bn = gaps["batchnorm"]
    sizes = sorted(bn)
    fig, (ax, ax_gap) = plt.subplots(1, 2, figsize=(12, 4.2))
    band(ax, sizes, np.array([gaps["baseline"][b] for b in sizes]).T, COLORS[1],
         "baseline (no BatchNorm)")
    band(ax, sizes, np.array([bn[b][1] for b in sizes]).T, COLORS[0],
         "BatchNorm, test mode (running averages)", marker="s")
    band(ax, sizes, np.array([bn[b][0] for b in sizes]).T, COLORS[2],
         "BatchNorm, train mode (batch statistics)", marker="^", ls="--")
    _chance(ax)
    n = len(gaps["baseline"][sizes[0]])
    finish(ax, f"Test accuracy after the same number of updates\n(mean, band: min–max over "
               f"{n} seeds)", "batch size B [examples]", "accuracy [fraction]")
    band(ax_gap, sizes, np.array([bn[b][0] - bn[b][1] for b in sizes]).T, COLORS[4],
         "train mode − test mode", marker="D")
    ax_gap.axhline(0, color="grey", lw=1)
    finish(ax_gap, "BatchNorm's train/test-mode gap", "batch size B [examples]",
           "accuracy difference [fraction]", legend=True)
    for a in (ax, ax_gap):
        a.set_xscale("log")
        a.set_xticks(sizes, [str(b) for b in sizes])
        a.minorticks_off()
    fig.tight_layout()
    return fig


def plot_learning_rate(sweep: dict):
    """Final test accuracy against Adam's learning rate, both networks, mean over seeds with a
    min–max band. Returns the Figure."""
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    for name, runs in sweep.items():
        label, color = NAMES[name]
        band(ax, [r.learning_rate for r in runs], np.array([r.values("test_acc") for r in runs]).T,
             color, label)
    ax.set_xscale("log")
    _chance(ax)
    finish(ax, f"Higher learning rates with BatchNorm\n({_seeds_note(sweep['batchnorm'][0])})",
           "Adam's learning rate [per step]", "test accuracy of the final network [fraction]")
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


def plot_layer_input(rec: dict, layer: int = 3):
    """Internal covariate shift, measured: one hidden layer's input over training, both networks.

    Left, the scale: the median over the layer's units of each unit's standard deviation over
    the probe images. Right, the location: how far each unit's mean moved since initialization,
    in units of its current standard deviation (median over units). Solid: the input of the
    layer's ReLU; dashed: the BatchNorm network's affine output, the input of its BatchNorm.
    Mean over seeds with a min–max band. ``rec`` is :func:`course.health.record_training`'s
    result. Returns the Figure."""
    fig, (ax_s, ax_m) = plt.subplots(1, 2, figsize=(12, 4.2), sharex=True)
    lines = (("baseline", "input_scale", "input_shift", "-", "baseline: the ReLU's input (= W h + b)"),
             ("batchnorm", "input_scale", "input_shift", "-", "BatchNorm: the ReLU's input (BN output)"),
             ("batchnorm", "affine_scale", "affine_shift", "--", "BatchNorm: BN's input (W h + b)"))
    for name, scale, shift, ls, label in lines:
        t = rec[name]
        color = NAMES[name][1] if ls == "-" else COLORS[2]
        band(ax_s, t.probe_steps, getattr(t, scale), color, label, marker="", ls=ls)
        band(ax_m, t.probe_steps, getattr(t, shift), color, label, marker="", ls=ls)
    n = len(rec["baseline"].test_acc)
    finish(ax_s, f"Layer {layer}: spread of its input over 200 images\n(median over units; mean, "
                 f"band: min–max over {n} seeds)", "training step [updates]",
           "std of a unit's input [activation units]")
    finish(ax_m, f"Layer {layer}: how far its input's mean has moved", "training step [updates]",
           "|mean(step) − mean(0)| / std(step) [stds]", legend=False)
    ax_s.legend(fontsize=9)
    fig.tight_layout()
    return fig


def plot_health(rec: dict, weight_scale: float, eps: float):
    """Training-health diagnostics (Karpathy, "Building makemore part 3", 2022), both networks.

    Top: each weight matrix's update-to-data ratio, log10(std(update) / std(W)), against the
    training step, mean over seeds with a min–max band, with the ~1e-3 reference line. Bottom:
    histograms of log10 |dL/dW| per layer at initialization (pooled over seeds; gradients that
    are exactly 0 are left out), with Adam's eps. ``rec`` is :func:`course.health.record_training`'s result. Returns the Figure."""
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.2), sharey="row")
    titles = {"baseline": "baseline (no BatchNorm)", "batchnorm": "with BatchNorm"}
    # exact zeros (units a ReLU switched off for the whole batch) have no logarithm: left out
    logs = {name: [np.log10(g[g > 0]) for g in t.grad_init] for name, t in rec.items()}
    low = np.floor(min(np.percentile(g, 0.5) for gs in logs.values() for g in gs))
    high = np.ceil(max(np.percentile(g, 99.5) for gs in logs.values() for g in gs))
    for col, (name, t) in enumerate(rec.items()):
        ax, hx = axes[0, col], axes[1, col]
        steps = np.arange(t.update_ratio.shape[1])
        for i in range(t.update_ratio.shape[2]):
            band(ax, steps, np.log10(t.update_ratio[:, :, i]), LAYER_COLORS[i], f"W{i + 1}",
                 marker="", ls=LAYER_STYLES[i], alpha=0.12)
            hx.hist(logs[name][i], bins=60, range=(low, high), density=True, histtype="step",
                    lw=1.5, color=LAYER_COLORS[i], ls=LAYER_STYLES[i], label=f"dL/dW{i + 1}")
        ax.axhline(-3, color="grey", ls=":", lw=1.5, label="~1e-3 (healthy)")
        hx.axvline(np.log10(eps), color="grey", ls=":", lw=1.5, label=f"Adam's eps = {eps:g}")
        finish(ax, f"{titles[name]}, s = {weight_scale:g}: update-to-data ratio",
               "training step [updates]", "log10(std(ΔW) / std(W)) [decades]", legend=False)
        finish(hx, f"{titles[name]}: weight gradients at initialization",
               "log10 |dL/dW| [log10 of loss per weight unit]", "density [per decade]",
               legend=False)
    axes[0, 1].legend(fontsize=8, ncol=2)
    axes[1, 1].legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return fig
