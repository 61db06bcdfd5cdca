"""Diagnoses in both directions, table-driven (issue 5, section 1).

* Every mistake of ``autograder/MISCONCEPTIONS.md`` that applies to a graded function has a
  fixture submission with exactly that mistake (``tests/diagnoses/``). Its hidden check must
  take points off, name that mistake and no other (in its record, ``Diagnosis Mk`` in the
  rendering), and show the student's value beside the expected one (``yours:``/``expected:``,
  or ``before:``/``after:`` for an input changed in place) in the part that names it.
* Every correct alternative (np.var or manual sums, einsum, a closed form in the staged
  exercise, float32 kept, helper functions, other names and caches, keepdims, reshapes, in-place
  work on its own copies) gets full marks, with no diagnosis and no failed part.

``APPLICABILITY`` below is the one map from graded functions to the mistakes that apply to them;
every other (function, mistake) pair carries a one-line reason why it does not apply.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import cache
from pathlib import Path

import nbformat
import numpy as np
import pytest
from diagnoses import Fixture
from diagnoses import backward as fx_backward
from diagnoses import beyond_batchnorm as fx_beyond
from diagnoses import experiments as fx_experiments
from diagnoses import forward as fx_forward
from diagnoses import modern as fx_modern
from diagnoses import standardization as fx_standardization

from autograder.checks import backward_stages as checks_backward_stages
from autograder.checks import batchnorm_backward as checks_backward
from autograder.checks import batchnorm_forward as checks_forward
from autograder.checks import batchnorm_stages as checks_stages
from autograder.checks import batchrenorm as checks_batchrenorm
from autograder.checks import beyond_batchnorm as checks_beyond
from autograder.checks import experiments as checks_experiments
from autograder.checks import modern as checks_modern
from autograder.checks import numerical_gradient as checks_numerical_gradient
from autograder.checks import rmsnorm as checks_rmsnorm
from autograder.checks import spatial_backward as checks_spatial_backward
from autograder.checks import spatial_batchnorm as checks_spatial
from autograder.checks import standardization as checks_standardization
from autograder.record import PASSED

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = ROOT / "autograder" / "MISCONCEPTIONS.md"

# The notebook of each group of checks: its solution cells (and read-only provided forward pass)
# make the namespace a fixture runs in, as the student's other cells would.
NOTEBOOKS = {
    checks_standardization: ROOT / "source" / "01_standardization" / "standardization.ipynb",
    checks_forward: ROOT / "source" / "02_batchnorm_forward" / "batchnorm_forward.ipynb",
    checks_stages: ROOT / "source" / "02_batchnorm_forward" / "batchnorm_forward.ipynb",
    checks_spatial: ROOT / "source" / "02_batchnorm_forward" / "batchnorm_forward.ipynb",
    checks_backward: ROOT / "source" / "03_batchnorm_backward" / "batchnorm_backward.ipynb",
    checks_backward_stages: ROOT / "source" / "03_batchnorm_backward" / "batchnorm_backward.ipynb",
    checks_numerical_gradient: ROOT / "source" / "03_batchnorm_backward" / "batchnorm_backward.ipynb",
    checks_spatial_backward: ROOT / "source" / "03_batchnorm_backward" / "batchnorm_backward.ipynb",
    checks_beyond: ROOT / "source" / "05_beyond_batchnorm" / "beyond_batchnorm.ipynb",
    checks_batchrenorm: ROOT / "source" / "05_beyond_batchnorm" / "beyond_batchnorm.ipynb",
    checks_experiments: ROOT / "source" / "04_experiments" / "experiments.ipynb",
    checks_modern: ROOT / "source" / "06_modern_normalization" / "modern_normalization.ipynb",
    checks_rmsnorm: ROOT / "source" / "06_modern_normalization" / "modern_normalization.ipynb",
}
CHECKS = {getattr(m, n).function_name: getattr(m, n) for m in NOTEBOOKS for n in m.__all__}
NOTEBOOK_OF = {getattr(m, n).function_name: nb for m, nb in NOTEBOOKS.items() for n in m.__all__}

_FIXTURES = (fx_standardization, fx_forward, fx_backward, fx_beyond, fx_experiments, fx_modern)
MISTAKES: list[Fixture] = [f for m in _FIXTURES for f in m.MISTAKES]
ALTERNATIVES: list[Fixture] = [f for m in _FIXTURES for f in m.ALTERNATIVES]
UNCATALOGUED: list[Fixture] = [f for m in _FIXTURES for f in getattr(
    m, "UNCATALOGUED", [f for _, f in getattr(m, "LABELLED", [])])]

# =============================================================================== applicability
NO_RUNNING = "no running statistics and no train/test mode"
NO_GAMMA = "no gamma and beta: nothing is scaled or shifted"
NO_SPATIAL = "2-D input (N, D): channels exist only in the spatial functions"
NO_GRADIENT = "a forward computation: no gradients"
NO_FD = "no finite differences"
NO_SPLITS = "one array in: no train/validation/test splits"
GIVEN_STATS = "receives the statistics as arguments and computes none"

_BACKWARD_NA = {
    "M1 M4": "computes no variance: the cache holds it (a 1/(N - 1) in the backward is M16)",
    "M2": "computes no statistics; a sum over axis 1 gives dgamma/dbeta of the wrong shape, "
          "reported as such with the expected shape",
    "M3 M5": "the cache's std and inv_std already hold eps: no square root is taken here",
    "M6 M7 M9": "no running statistics in a backward pass",
    "M8": "graded in train mode only, as the notebook's backward exercises are",
    "M12": "normalizes nothing: x_hat comes from the cache",
    "M19 M20": "the analytic gradient: " + NO_FD,
    "M21": NO_SPLITS,
}


#: Notebook 03's derivation steps: one stage or one path each (shared one-line reasons).
_STEP_NA = {
    "M1 M4": "computes no variance: the statistics are given or come from the cache",
    "M6 M7 M9": "no running statistics in a backward pass",
    "M8": "graded in train mode only, as the notebook's backward exercises are",
    "M12": "normalizes nothing: it differentiates a stage whose inputs are given",
    "M13 M14": NO_SPATIAL,
    "M19 M20": "the analytic gradient: " + NO_FD,
    "M21": NO_SPLITS,
}
ONE_STEP = "one stage or path: the paths into x meet in batchnorm_backward (dropping one is M17 there)"


def _bug_hunt_na(bug: str, others: str) -> dict[str, str]:
    reason = (f"the given code is right there: the exercise fixes {bug} and nothing else (these "
              "mistakes are graded in batchnorm_backward)")
    return _BACKWARD_NA | {"M13 M14": NO_SPATIAL, others: reason}


#: function -> (the mistakes that apply, {mistakes that do not: the one-line reason}).
APPLICABILITY: dict[str, tuple[str, dict[str, str]]] = {
    "fit_standardizer": ("M1 M2 M3 M4 M5 M10", {
        "M6 M7 M8 M9": NO_RUNNING,
        "M11": "returns statistics, not a transformed output: " + NO_GAMMA,
        "M12": "returns statistics: no normalized output whose numerator could be squared",
        "M13 M14": NO_SPATIAL,
        "M15 M16 M17 M18": NO_GRADIENT,
        "M19 M20": NO_FD,
        "M21": "fits the X it is given; which split that is, standardize_splits decides",
    }),
    "standardize": ("M2 M10 M12 M21", {
        "M1 M4": GIVEN_STATS + " (recomputing them is M21)",
        "M3": "receives a scale that is already 1.0 for a constant feature: no variance, no "
              "square root, no eps",
        "M5": "the scale it receives is > 0 by contract (fit_standardizer maps var 0 to 1.0)",
        "M6 M7 M8 M9": NO_RUNNING,
        "M11": NO_GAMMA,
        "M13 M14": NO_SPATIAL,
        "M15 M16 M17 M18": NO_GRADIENT,
        "M19 M20": NO_FD,
    }),
    "standardize_splits": ("M10 M21", {
        "M1 M2 M3 M4 M5": "the statistics come from the student's fit_standardizer, graded "
                          "there; this check accepts any scale within 3 % to grade it once",
        "M12": "the transform is the student's standardize, graded there",
        "M6 M7 M8 M9": NO_RUNNING,
        "M11": NO_GAMMA,
        "M13 M14": NO_SPATIAL,
        "M15 M16 M17 M18": NO_GRADIENT,
        "M19 M20": NO_FD,
    }),
    "batch_stats": ("M1 M2 M4 M10", {
        "M3": "returns the variance itself; eps enters later, in normalize",
        "M5": "divides by nothing: a constant feature just has variance 0 (checked: no nan)",
        "M6 M7 M8 M9": NO_RUNNING,
        "M11 M12": "returns statistics, not a normalized or scaled output",
        "M13 M14": NO_SPATIAL,
        "M15 M16 M17 M18": NO_GRADIENT,
        "M19 M20": NO_FD,
        "M21": NO_SPLITS,
    }),
    "normalize": ("M3 M5 M10 M12", {
        "M1 M2 M4": GIVEN_STATS,
        "M6 M7 M8 M9": NO_RUNNING + ": it uses whichever statistics it is given",
        "M11": NO_GAMMA + " (scale_shift applies them)",
        "M13 M14": NO_SPATIAL,
        "M15 M16 M17 M18": NO_GRADIENT,
        "M19 M20": NO_FD,
        "M21": NO_SPLITS,
    }),
    "scale_shift": ("M10", {
        "M1 M2 M4": "computes no statistics",
        "M3 M5": "divides by nothing",
        "M6 M7 M8 M9": NO_RUNNING,
        "M11": "receives x_hat: the raw x is not among its inputs",
        "M12": "no numerator: the normalization happened before",
        "M13 M14": NO_SPATIAL,
        "M15 M16 M17 M18": NO_GRADIENT,
        "M19 M20": NO_FD,
        "M21": NO_SPLITS,
    }),
    "batchnorm_forward": ("M1 M2 M3 M4 M5 M6 M7 M8 M9 M10 M11 M12 M32", {
        "M13 M14": NO_SPATIAL,
        "M15 M16 M17 M18": NO_GRADIENT,
        "M19 M20": NO_FD,
        "M21": "train mode normalizes a batch with its own statistics by design; batch "
               "statistics in test mode are M8",
    }),
    "spatial_batchnorm_forward": ("M1 M2 M3 M4 M5 M6 M7 M8 M9 M10 M11 M12 M13 M14", {
        "M32": "updating in place is graded in batchnorm_forward, which a spatial forward "
               "calls (its error is carried forward, never charged twice)",
        "M15 M16 M17 M18": NO_GRADIENT,
        "M19 M20": NO_FD,
        "M21": "train mode normalizes a batch with its own statistics by design; batch "
               "statistics in test mode are M8",
    }),
    "numerical_gradient": ("M10 M19 M20", {
        "M1 M2 M3 M4 M5 M6 M7 M8 M9 M11 M12 M13 M14": "a generic finite-difference routine: f "
                                                      "is given, it computes no BatchNorm",
        "M15 M16 M17 M18": "estimates a gradient numerically: no analytic formula to get wrong",
        "M21": NO_SPLITS,
    }),
    "scale_shift_backward": ("M10 M15 M16", _STEP_NA | {
        "M2": "its sums run over the batch; a sum over axis 1 gives a wrong shape, reported with the "
              "expected one",
        "M3 M5": "takes no square root and divides by nothing",
        "M11": "receives x_hat: the raw x is not among its inputs",
        "M17": ONE_STEP,
        "M18": "no variance here: dvar is normalize_backward's",
    }),
    "normalize_backward": ("M3 M10 M15 M16 M18", _STEP_NA | {
        "M2": "receives the statistics; a sum over axis 1 gives dmean/dvar of the wrong shape, "
              "reported with the expected one",
        "M5": "eps is inside the root by contract, so a zero variance divides by sqrt(eps); "
              "dropping eps is M3",
        "M11": NO_GAMMA + ": dgamma is scale_shift_backward's",
        "M17": ONE_STEP,
    }),
    "batch_stats_backward": ("M10 M16 M17", _STEP_NA | {
        "M2": "sums nothing: it spreads dmean and dvar over the rows of their column",
        "M3 M5": "takes no square root and divides by nothing but N: eps belongs to normalize",
        "M11": NO_GAMMA,
        "M15": "sums nothing: it spreads dmean and dvar over the N rows (their sums are "
               "normalize_backward's)",
        "M18": "receives x, not x_hat: (x - mean) is all it can use",
    }),
    "batchnorm_backward": ("M10 M11 M15 M16 M17 M18", _BACKWARD_NA | {"M13 M14": NO_SPATIAL}),
    "dx_through_var": ("M10 M15 M16 M18", _STEP_NA | {
        "M2": "receives x_hat and inv_std: it computes no statistics",
        "M3 M5": "receives inv_std: no square root, no eps",
        "M11": "receives dx_hat: gamma was applied before",
        "M17": "one path by definition: the others are dx_through_mean and the direct term",
    }),
    "dx_through_mean": ("M10 M15 M16", _STEP_NA | {
        "M2": "receives dx_hat and inv_std: it computes no statistics",
        "M3 M5": "receives inv_std: no square root, no eps",
        "M11": "receives dx_hat: gamma was applied before",
        "M17": "one path by definition: the others are dx_through_var and the direct term",
        "M18": "the mean path has no (x - mu) factor: x_hat does not enter it",
    }),
    "batchnorm_backward_alt": ("M10 M11 M15 M16 M17 M18",
                               _BACKWARD_NA | {"M13 M14": NO_SPATIAL}),
    "spatial_batchnorm_backward": ("M10 M11 M13 M14 M15 M16 M17 M18", _BACKWARD_NA),
    "fixed_backward_inv_n": ("M16", _bug_hunt_na("bug 1 (1/D for 1/N)", "M10 M11 M15 M17 M18")),
    "fixed_backward_dvar": ("M17 M18", _bug_hunt_na("bug 2 (x_hat in dvar; deleting the dvar "
                                                    "term instead is M17)", "M10 M11 M15 M16")),
    "mode_accuracies": ("M8 M10", {
        "M1 M2 M3 M4 M5 M11 M12": "computes no statistics and normalizes nothing: the sandwich "
                                  "it calls does (its check names those)",
        "M6 M7 M9": "reads the running statistics, never updates them (writing them is M10)",
        "M13 M14": NO_SPATIAL,
        "M15 M16 M17 M18": NO_GRADIENT,
        "M19 M20": NO_FD,
        "M21": "measures two modes on the same examples: no splits to fit on",
    }),
}

#: Why M32 (running statistics updated in place, graded in batchnorm_forward) does not apply.
_M32_NA = {
    "spatial_batchnorm_forward": "updating in place is graded in batchnorm_forward, which a "
                                 "spatial forward calls (its error is carried forward)",
    "mode_accuracies": "receives bn_params to read; changing them at all is M10",
    **dict.fromkeys(("batchnorm_backward", "batchnorm_backward_alt", "spatial_batchnorm_backward",
                     "fixed_backward_dgamma", "fixed_backward_inv_n", "fixed_backward_dvar"),
                    "no running statistics in a backward pass"),
}
APPLICABILITY = {fn: (ids, na if "M32" in ids.split() else {**na, "M32": _M32_NA.get(fn, NO_RUNNING)})
                 for fn, (ids, na) in APPLICABILITY.items()}


# --------------------------------------------------------------------------- notebook 05
NB05 = "a mistake of notebook 05's layers (LayerNorm, GroupNorm, Batch Renorm)"
# notebooks 01-04 have none of LayerNorm's, GroupNorm's or Batch Renorm's mistakes
APPLICABILITY = {fn: (ids, {**na, "M22 M23 M24 M25 M26 M27 M28 M29 M30 M31": NB05})
                 for fn, (ids, na) in APPLICABILITY.items()}
NOT_LN = "LayerNorm's statistics are per row: "
GN_ONLY = "a GroupNorm mistake: LayerNorm has no groups and no channels"
BRN_ONLY = "a Batch Renorm mistake: r, d and running statistics exist only there"
NOT_GRADED_05 = "graded in notebooks 01-03; 05's checks name only the mistakes of its new layers"
_NEW_FORWARD_NA = {
    "M4": NOT_GRADED_05 + " (no large offsets here)",
    "M5": NOT_GRADED_05 + " (a constant row or group gives beta there)",
    "M11 M12": NOT_GRADED_05,
    "M13 M14": "05's spatial layer groups channels: its layout mistakes are M24-M26",
    "M15 M16 M17 M18": NO_GRADIENT,
    "M19 M20": NO_FD,
    "M21": NO_SPLITS,
}
_NEW_BACKWARD_NA = _BACKWARD_NA | {
    "M11 M18": NOT_GRADED_05,
    "M13 M14": "05's spatial layer groups channels: its layout mistakes are M24-M26",
    "M28 M29 M30 M31": "forward-pass mistakes of Batch Renorm: the cache is the reference's",
}
APPLICABILITY |= {
    "layernorm_forward": ("M1 M3 M10 M22 M23", _NEW_FORWARD_NA | {
        "M2": NOT_LN + "statistics over the wrong axis (the batch) are M22",
        "M6 M7 M8 M9": "no running statistics: keeping any is M23",
        "M24 M25 M26": GN_ONLY, "M27 M28 M29 M30 M31": BRN_ONLY, "M32": NO_RUNNING}),
    "layernorm_backward": ("M10 M15 M16 M17 M22", _NEW_BACKWARD_NA | {
        "M2": NOT_LN + "sums over the wrong axis are M22",
        "M23": "a backward pass has no mode", "M24 M25 M26": GN_ONLY, "M27": BRN_ONLY,
        "M32": NO_RUNNING}),
    "spatial_groupnorm_forward": ("M1 M3 M10 M24 M25 M26", _NEW_FORWARD_NA | {
        "M2": "statistics over the wrong axes are M24 (channels) or M26 (the batch)",
        "M6 M7 M8 M9": NO_RUNNING,
        "M22 M23": "LayerNorm's mistakes (G = 1 is graded as GroupNorm, by M24-M26)",
        "M27 M28 M29 M30 M31": BRN_ONLY, "M32": NO_RUNNING}),
    "spatial_groupnorm_backward": ("M10 M15 M16 M17 M24 M25 M26", _NEW_BACKWARD_NA | {
        "M22 M23": "LayerNorm's mistakes", "M27": BRN_ONLY, "M32": NO_RUNNING}),
    "batchrenorm_forward": ("M1 M3 M10 M28 M29 M30 M31", _NEW_FORWARD_NA | {
        "M2": NOT_GRADED_05 + " (BatchNorm's axis)",
        "M6 M7 M8 M9": "Batch Renorm's running statistics and modes have their own ids, M29-M31",
        "M22 M23": "LayerNorm's mistakes", "M24 M25 M26": "GroupNorm's mistakes",
        "M27": "a backward-pass mistake",
        "M32": "Batch Renorm's running statistics are graded by value (M30); in place or not "
               "is graded in batchnorm_forward"}),
    "batchrenorm_backward": ("M10 M15 M17 M27", _NEW_BACKWARD_NA | {
        "M16": "its sums run over the batch with BatchNorm's own 1/N: " + NOT_GRADED_05,
        "M22 M23": "LayerNorm's mistakes", "M24 M25 M26": "GroupNorm's mistakes",
        "M32": "no running statistics in a backward pass"}),
}


# --------------------------------------------------------------------------- notebook 06
NB06 = "a mistake of notebook 06's layers (RMSNorm, the residual block, folding)"
# notebooks 01-05 have none of RMSNorm's, the residual block's or folding's mistakes
APPLICABILITY = {fn: (ids, {**na, "M33 M34 M35 M36 M37 M38 M39 M40": NB06})
                 for fn, (ids, na) in APPLICABILITY.items()}
NOT_GRADED_06 = "graded in notebooks 02-05; 06's checks name only the mistakes of its new layers"
OF_05 = "a mistake of notebook 05's layers (LayerNorm, GroupNorm, Batch Renorm)"
RMS_ONLY = "RMSNorm's mistakes, graded in rmsnorm_forward"
BLOCK_ONLY = "the residual block's mistakes"
FOLD_ONLY = "folding's mistakes"
CARRIED = ("the normalization's own mistakes, graded in the student's RMSNorm, which the block "
           "calls: carried forward, never charged here")
_NB05_IDS = "M22 M23 M24 M25 M26 M27 M28 M29 M30 M31"
APPLICABILITY |= {
    "rmsnorm_forward": ("M3 M10 M33 M34 M35", {
        "M1 M4": "no variance: the mean square has no ddof and no centering (centering is M33)",
        "M2": "statistics over the wrong axis are M34, RMSNorm's own id",
        "M5": "a zero row gives 0 / sqrt(eps) = 0: nothing divides by zero while eps > 0",
        "M6 M7 M8 M9 M32": NO_RUNNING, "M11 M12": NOT_GRADED_06, "M13 M14": NO_SPATIAL,
        "M15 M16 M17 M18": NO_GRADIENT, "M19 M20": NO_FD, "M21": NO_SPLITS, _NB05_IDS: OF_05,
        "M36 M37 M38": BLOCK_ONLY, "M39 M40": FOLD_ONLY}),
    "rmsnorm_backward": ("M10 M15 M17 M33 M34", {
        "M1 M4": "computes no statistics: the cache holds inv_rms",
        "M2": "sums over the wrong axis are M34",
        "M3 M5": "the cache's inv_rms already holds eps: no square root is taken here",
        "M6 M7 M8 M9 M32": "no running statistics in a backward pass",
        "M11 M16 M18": NOT_GRADED_06, "M12": "normalizes nothing: x_hat comes from the cache",
        "M13 M14": NO_SPATIAL, "M19 M20": "the analytic gradient: " + NO_FD, "M21": NO_SPLITS,
        _NB05_IDS: OF_05, "M35": "float16 is graded in the forward pass",
        "M36 M37 M38": BLOCK_ONLY, "M39 M40": FOLD_ONLY}),
    "residual_block_forward": ("M10 M36 M37", {
        "M1 M2 M3 M4 M5 M11 M12 M33 M34 M35": CARRIED,
        "M6 M7 M8 M9 M32": NO_RUNNING, "M13 M14": NO_SPATIAL, "M15 M16 M17 M18": NO_GRADIENT,
        "M19 M20": NO_FD, "M21": NO_SPLITS, _NB05_IDS: OF_05, "M38": "a backward-pass mistake",
        "M39 M40": FOLD_ONLY}),
    "residual_block_backward": ("M10 M15 M36 M37 M38", {
        "M1 M2 M3 M4 M5 M11 M12 M33 M34 M35": CARRIED,
        "M16 M18": NOT_GRADED_06,
        "M17": "a path through the norm dropped is rmsnorm_backward's M17; the skip path "
               "dropped is M38",
        "M6 M7 M8 M9 M32": "no running statistics in a backward pass", "M13 M14": NO_SPATIAL,
        "M19 M20": "the analytic gradient: " + NO_FD, "M21": NO_SPLITS, _NB05_IDS: OF_05,
        "M39 M40": FOLD_ONLY}),
    "fold_batchnorm": ("M3 M10 M39 M40", {
        "M1 M2 M4": GIVEN_STATS,
        "M5": "a zero running_var is divided by sqrt(eps) > 0; without eps that is M3",
        "M6 M7 M8 M9 M32": "reads the running statistics, never updates them (changing them is "
                           "M10)",
        "M11 M12": NOT_GRADED_06, "M13 M14": NO_SPATIAL, "M15 M16 M17 M18": NO_GRADIENT,
        "M19 M20": NO_FD, "M21": NO_SPLITS, _NB05_IDS: OF_05, "M33 M34 M35": RMS_ONLY,
        "M36 M37 M38": BLOCK_ONLY}),
}


def _applies(function: str) -> set[str]:
    return set(APPLICABILITY[function][0].split())


def _not_applicable(function: str) -> dict[str, str]:
    return {mk: reason for ids, reason in APPLICABILITY[function][1].items() for mk in ids.split()}


def _catalogue_ids() -> list[str]:
    return re.findall(r"^\| (M\d+) \|", CATALOGUE.read_text(), flags=re.M)


def test_the_table_covers_every_graded_function_and_every_mistake_once():
    ids = _catalogue_ids()
    assert ids == [f"M{k}" for k in range(1, 41)], f"catalogue ids changed: {ids}"
    assert set(APPLICABILITY) == set(CHECKS), "one row per graded function"
    for function in APPLICABILITY:
        applies, na = _applies(function), _not_applicable(function)
        groups = [g.split() for g in APPLICABILITY[function][1]]
        assert sum(map(len, groups)) == len(na), f"{function}: an id is listed twice as n/a"
        assert not applies & set(na), f"{function}: both applicable and not: {applies & set(na)}"
        assert applies | set(na) == set(ids), f"{function}: missing {set(ids) - applies - set(na)}"
        for mk, reason in na.items():
            assert reason.strip() and "\n" not in reason, f"{function}/{mk}: one-line reason"


def test_the_instructors_catalogue_lists_the_same_functions_per_mistake():
    rows = re.findall(r"^\| (M\d+) \| .*? \| (.*?) \|$", CATALOGUE.read_text(), flags=re.M)
    listed = {mk: set(re.findall(r"`(\w+)`", cell)) for mk, cell in rows}
    table = {mk: {fn for fn in APPLICABILITY if mk in _applies(fn)} for mk in listed}
    assert listed == table, {mk: (listed[mk], table[mk]) for mk in listed if listed[mk] != table[mk]}


def test_every_applicable_mistake_has_a_fixture_and_every_fixture_is_applicable():
    have = {(f.function, f.mistake) for f in MISTAKES}
    need = {(fn, mk) for fn in APPLICABILITY for mk in _applies(fn)}
    assert not need - have, f"applicable mistakes without a fixture: {sorted(need - have)}"
    assert not have - need, f"fixtures for mistakes marked not applicable: {sorted(have - need)}"
    ids = Counter(f.id for f in MISTAKES + ALTERNATIVES + UNCATALOGUED)
    assert not [i for i, n in ids.items() if n > 1], "fixture ids must be unique"
    for f in MISTAKES:
        assert not set(f.also) - _applies(f.function), f"{f.id}: 'also' outside the table"


def test_the_three_kinds_of_fixture_are_told_apart():
    assert all(f.mistake and not f.other for f in MISTAKES)
    assert all(f.mistake is None and not f.other for f in ALTERNATIVES)
    assert all(f.mistake is None and f.other for f in UNCATALOGUED)


def test_every_graded_function_has_correct_alternatives():
    count = Counter(f.function for f in ALTERNATIVES)
    assert {fn: count[fn] for fn in CHECKS if count[fn] < 1} == {}


# =============================================================================== running
@cache
def _notebook_namespace(notebook: Path) -> dict:
    """The notebook's solution cells and read-only provided code, executed as the student's
    notebook would, on the names its setup cell gives them: ``np``, and for 04 the layers of
    ``course``, ``copy`` (04's answers deep-copy bn_params) and its provided BatchNorm (the
    reference's, character for character)."""
    import copy

    from autograder.reference import batchnorm_backward, batchnorm_forward
    from course.layers import affine_backward, affine_forward, relu_backward, relu_forward
    from course.nets import FullyConnectedNet

    ns: dict = {"np": np, "copy": copy, "affine_forward": affine_forward, "affine_backward": affine_backward,
                "relu_forward": relu_forward, "relu_backward": relu_backward,
                "batchnorm_forward": batchnorm_forward, "batchnorm_backward": batchnorm_backward,
                "FullyConnectedNet": FullyConnectedNet}
    for cell in nbformat.read(notebook, as_version=4).cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and (meta.get("solution") or
                                         meta.get("grade_id") == "provided_forward"):
            exec(compile(cell.source, f"<{meta['grade_id']}>", "exec"), ns)  # noqa: S102
    return ns


def _student_function(fixture: Fixture):
    ns = dict(_notebook_namespace(NOTEBOOK_OF[fixture.function]))
    exec(compile(fixture.source, f"<{fixture.id}>", "exec"), ns)  # noqa: S102 - our fixtures
    return ns[fixture.function]


def _grade(fixture: Fixture, capsys):
    """(score, the check's record, its rendering) for a fixture."""
    capsys.readouterr()
    check = CHECKS[fixture.function]
    score = check(_student_function(fixture))
    captured = capsys.readouterr()
    assert captured.err == "", f"{fixture.id}: the check wrote to stderr: {captured.err[:300]!r}"
    record = score.record
    assert not record.stopped, captured.out
    assert not any("please tell the instructor" in ln for p in record.parts for f in p.findings
                   for ln in f.lines), captured.out
    return score, record, captured.out


def _shows_example(part) -> bool:
    """Whether a part shows the student's value beside the expected one."""
    lines = [ln.strip() for f in part.findings for ln in f.lines]
    def has(label):
        return any(ln.startswith(f"{label}:") for ln in lines)

    return (has("yours") and has("expected")) or (has("before") and has("after"))


@pytest.mark.parametrize("fixture", MISTAKES, ids=[f.id for f in MISTAKES])
def test_each_mistake_loses_points_and_is_named_with_an_example(fixture, capsys):
    score, record, report = _grade(fixture, capsys)
    check = CHECKS[fixture.function]
    assert score < check.points, f"{fixture.id} got full marks\n{report}"
    found = set(record.diagnosis_ids)
    expected = {fixture.mistake, *fixture.also}
    assert found == expected, f"{fixture.id}: diagnosed {sorted(found)}\n{report}"
    named = [p for p in record.parts if any(d.id == fixture.mistake and d.part == p.name
                                            for d in record.diagnoses)]
    assert named, f"{fixture.id}: the diagnosis is outside any part\n{report}"
    bare = [p.name for p in named if not _shows_example(p)]
    assert not bare, f"{fixture.id}: no 'yours:'/'expected:' example beside:\n{bare[0]}"
    assert f"Diagnosis {fixture.mistake}" in report, "the rendering names it too"


@pytest.mark.parametrize("fixture", ALTERNATIVES, ids=[f.id for f in ALTERNATIVES])
def test_each_correct_alternative_gets_full_marks(fixture, capsys):
    score, record, report = _grade(fixture, capsys)
    check = CHECKS[fixture.function]
    assert score == check.points, f"{fixture.id}: {score}/{check.points}\n{report}"
    assert record.count(PASSED) == len(record.parts) and not record.diagnoses, report
    assert "[FAIL]" not in report and "[part]" not in report, report


@pytest.mark.parametrize("fixture", UNCATALOGUED, ids=[f.id for f in UNCATALOGUED])
def test_a_mistake_outside_the_catalogue_loses_points_under_no_catalogue_name(fixture, capsys):
    score, record, report = _grade(fixture, capsys)
    assert score < CHECKS[fixture.function].points, report
    assert not record.diagnosis_ids, f"{fixture.id}: misdiagnosed\n{report}"
    failed = [p for p in record.parts if p.status != PASSED]
    assert any(_shows_example(p) or any(" raised " in ln for f in p.findings for ln in f.lines)
               for p in failed), f"{fixture.id}: a failed part shows neither values nor the error\n{report}"
