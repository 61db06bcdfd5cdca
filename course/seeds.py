"""Results over several seeds: their mean, their range, and whether two of them really differ.

Every experiment of notebooks 04 and 05 that draws a conclusion runs once per seed (the seed
draws the initial weights and the order of the minibatches) and reports the mean with the
min-max range. A difference between two settings is claimed only when their ranges do not
overlap (:func:`separated`): a difference smaller than the spread between seeds is noise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

__all__ = ["SeedRuns", "over_seeds", "separated", "spread_text"]


@dataclass(frozen=True)
class SeedRuns:
    """The runs of one setting, one per seed, in the order of the seeds.

    Attributes
    ----------
    runs : tuple
        One result object per seed (e.g. :class:`course.experiments.Run`); they share the
        setting and differ only in their seed.
    """

    runs: tuple

    def __post_init__(self):
        if not self.runs:
            raise ValueError("runs is empty: a setting needs at least one seed")

    def values(self, name: str) -> np.ndarray:
        """``getattr(run, name)`` for every seed, as a float array of shape (n_seeds,)."""
        return np.array([float(getattr(r, name)) for r in self.runs])

    def mean(self, name: str) -> float:
        """Mean over the seeds of the attribute ``name``."""
        return float(np.mean(self.values(name)))

    def low(self, name: str) -> float:
        """Smallest value over the seeds."""
        return float(np.min(self.values(name)))

    def high(self, name: str) -> float:
        """Largest value over the seeds."""
        return float(np.max(self.values(name)))

    @property
    def first(self):
        """The run of the first seed (its model, its histories), for figures of one network."""
        return self.runs[0]

    def __getattr__(self, name: str) -> Any:
        # The setting (weight scale, batch size, learning rate ...) is the same for every seed:
        # read it from the first run. Per-seed results go through values()/mean() instead.
        if name.startswith("_") or name == "runs":
            raise AttributeError(name)
        value = getattr(self.runs[0], name)
        if isinstance(value, (bool, int, float, str)) and all(
                getattr(r, name) == value for r in self.runs):
            return value
        raise AttributeError(f"{name!r} differs between the seeds (or is not a setting): use "
                             f"values({name!r}), mean({name!r}), low() or high()")

    def text(self, name: str, fmt: str = ".3f") -> str:
        """``'mean [min, max]'`` of the attribute ``name``, e.g. ``'0.912 [0.900, 0.925]'``."""
        return spread_text(self.values(name), fmt)


def spread_text(values, fmt: str = ".3f") -> str:
    """``'mean [min, max]'`` of a 1-D array of per-seed values."""
    v = np.asarray(values, dtype=float)
    return f"{np.mean(v):{fmt}} [{np.min(v):{fmt}}, {np.max(v):{fmt}}]"


def over_seeds(cfg, run: Callable[[Any], Any], seeds: Sequence[int] | None = None) -> SeedRuns:
    """``run(cfg_s)`` for every seed ``s``, with ``cfg_s = dataclasses.replace(cfg, seed=s)``.

    Parameters
    ----------
    cfg : dataclass with fields ``seed`` and ``seeds``
        An experiment configuration (:class:`course.experiments.ExperimentConfig`,
        :class:`course.beyond_experiments.BeyondConfig`).
    run : callable
        Trains one network with the configuration it receives and returns its result.
    seeds : sequence of int, optional
        Default ``cfg.seeds``.

    Returns
    -------
    SeedRuns
    """
    seeds = cfg.seeds if seeds is None else seeds
    return SeedRuns(tuple(run(replace(cfg, seed=int(s))) for s in seeds))


def separated(a, b) -> bool:
    """Whether two settings differ by more than their seed spread: the ranges ``[min, max]`` of
    the per-seed values ``a`` and ``b`` do not overlap.

    Parameters
    ----------
    a, b : array_like of float, shape (n_seeds,)

    Returns
    -------
    bool
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return bool(a.min() > b.max() or b.min() > a.max())
