"""course.seeds (results over seeds) and course.plots.band (their figure), against numpy."""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib
import numpy as np
import pytest

from course.plots import band
from course.seeds import SeedRuns, over_seeds, separated, spread_text

matplotlib.use("Agg")


@dataclass(frozen=True)
class _Cfg:
    scale: float = 0.1
    seeds: tuple = (0, 1, 2)
    seed: int = 0


@dataclass
class _Run:
    seed: int
    scale: float
    acc: float


def _runs(accs, scale=0.1):
    return SeedRuns(tuple(_Run(i, scale, a) for i, a in enumerate(accs)))


def test_mean_min_max_and_text_are_numpys():
    runs = _runs([0.9, 0.7, 0.8])
    np.testing.assert_array_equal(runs.values("acc"), [0.9, 0.7, 0.8])
    assert runs.mean("acc") == pytest.approx(np.mean([0.9, 0.7, 0.8]))
    assert (runs.low("acc"), runs.high("acc")) == (0.7, 0.9)
    assert runs.text("acc") == "0.800 [0.700, 0.900]" == spread_text([0.9, 0.7, 0.8])
    assert runs.first.seed == 0


def test_a_setting_shared_by_every_seed_reads_through_and_a_result_does_not():
    runs = _runs([0.9, 0.7, 0.8], scale=1e-3)
    assert runs.scale == 1e-3
    with pytest.raises(AttributeError, match="differs between the seeds"):
        _ = runs.acc
    with pytest.raises(AttributeError):
        _ = runs._private
    with pytest.raises(ValueError, match="at least one seed"):
        SeedRuns(())


def test_over_seeds_runs_once_per_seed_with_the_seed_set():
    seen = []
    runs = over_seeds(_Cfg(), lambda c: seen.append(c.seed) or _Run(c.seed, c.scale, 0.5))
    assert seen == [0, 1, 2] and [r.seed for r in runs.runs] == [0, 1, 2]
    assert [r.seed for r in over_seeds(_Cfg(), lambda c: _Run(c.seed, 0, 0), seeds=(7,)).runs] == [7]


@pytest.mark.parametrize(("a", "b", "apart"), [
    ([0.1, 0.2, 0.15], [0.3, 0.4, 0.35], True),
    ([0.3, 0.4, 0.35], [0.1, 0.2, 0.15], True),
    ([0.1, 0.3, 0.2], [0.25, 0.4, 0.35], False),   # 0.3 > 0.25: the ranges overlap
    ([0.1, 0.2], [0.2, 0.3], False),               # touching is not apart
])
def test_separated_means_the_ranges_do_not_overlap(a, b, apart):
    assert separated(a, b) is apart


def test_band_draws_the_mean_and_fills_min_to_max():
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    values = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, np.nan], [2.0, 5.0, 4.0]])
    band(ax, [1, 2, 3], values, "#0072B2", "label")
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [2.0, 3.0, 3.5])
    (path,) = ax.collections[0].get_paths()
    ys = path.vertices[:, 1]
    assert ys.min() == 1.0 and ys.max() == 5.0
    with pytest.raises(ValueError, match="n_seeds, 3"):
        band(ax, [1, 2, 3], values[:, :2], "#0072B2", "label")
    plt.close(fig)
