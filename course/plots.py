"""Shared plot style and helpers.

Colours come from the Okabe–Ito palette, which stays distinguishable under the common forms of
colour blindness (Okabe & Ito, "Color Universal Design", 2008).
"""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

#: Okabe–Ito colours, in the order the course uses them.
COLORS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")

#: One colour per layer for overlaid per-layer curves (up to 7 layers): the Okabe–Ito colours
#: without the yellow, which is hard to see on white, in an order in which neighbouring layers
#: differ in hue *and* lightness (blue, orange, green, vermillion, black, sky blue, purple).
LAYER_COLORS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#000000", "#56B4E9", "#CC79A7")
#: A line style per layer as well, so that the layers stay apart in greyscale print.
LAYER_STYLES = ("-", "--", "-", "--", "-", "--", "-")


def set_style() -> None:
    """Apply the course's plot style: colour-blind-safe cycle, grid, readable font sizes."""
    mpl.rcParams.update(
        {
            "axes.prop_cycle": mpl.cycler(color=list(COLORS)),
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "figure.figsize": (6.4, 4.0),
            "figure.dpi": 100,
            "font.size": 11,
            "axes.titlesize": 12,
            "legend.frameon": False,
        }
    )


def finish(ax, title: str, xlabel: str, ylabel: str, legend: bool | None = None):
    """Label an Axes completely: title, both axis labels (with units), and a legend.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    title, xlabel, ylabel : str
        Non-empty; put units in brackets, e.g. ``"step [iterations]"``.
    legend : bool or None
        ``None`` draws a legend exactly when the Axes has more than one labelled artist.

    Returns
    -------
    matplotlib.axes.Axes
        The same Axes, for chaining.

    Raises
    ------
    ValueError
        If a title or axis label is empty: every figure in the course is fully labelled.
    """
    for name, text in (("title", title), ("xlabel", xlabel), ("ylabel", ylabel)):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{name} must be a non-empty string, got {text!r}")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    handles, _ = ax.get_legend_handles_labels()
    if legend or (legend is None and len(handles) > 1):
        ax.legend()
    return ax


def histograms(columns, labels, title: str, xlabel: str, bins: int = 30, ax=None):
    """Overlaid, normalized histograms of several 1-D samples (e.g. a feature before and after).

    Parameters
    ----------
    columns : sequence of array_like, each 1-D
    labels : sequence of str, same length as ``columns``
    title, xlabel : str
    bins : int
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ValueError
        If ``columns`` and ``labels`` differ in length.
    """
    if len(columns) != len(labels):
        raise ValueError(f"got {len(columns)} columns but {len(labels)} labels")
    if ax is None:
        _, ax = plt.subplots()
    for col, lab in zip(columns, labels, strict=True):
        ax.hist(np.ravel(col), bins=bins, density=True, alpha=0.55, label=lab)
    return finish(ax, title, xlabel, "density [1/unit of x]")


def band(ax, x, values, color: str, label: str, marker: str = "o", ls: str = "-",
         alpha: float = 0.2):
    """The mean over seeds as a line, and the min-max range over seeds as a shaded band.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    x : array_like, shape (K,)
        The x values (a setting, or a training step).
    values : array_like, shape (n_seeds, K)
        One row per seed (nan where a seed has no value: it is left out of that point).
    color, label, marker, ls : str
        The line's colour, legend label, marker (``''`` for none) and line style.
    alpha : float
        Opacity of the band.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ValueError
        If ``values`` is not 2-D with one column per x value.
    """
    v = np.asarray(values, dtype=float)
    x = np.asarray(x)
    if v.ndim != 2 or v.shape[1] != len(x):
        raise ValueError(f"values must have shape (n_seeds, {len(x)}), got {v.shape}")
    ax.plot(x, np.nanmean(v, axis=0), marker=marker, ls=ls, color=color, label=label)
    ax.fill_between(x, np.nanmin(v, axis=0), np.nanmax(v, axis=0), color=color, alpha=alpha,
                    lw=0)
    return ax
