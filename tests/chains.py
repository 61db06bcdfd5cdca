"""Submissions for the error-carried-forward tests: a source notebook's solutions with one edit.

Every chain of graded functions that call each other (issue 20) appears twice: with a mistake in
the callee only (the callee loses points, every caller keeps full marks, and the caller's note
names the callee and the mistake) and with a mistake in the caller only (only the caller loses).
``tests/test_carried.py`` grades them with the checks called directly; ``tests/test_carried_nbgrader.py``
grades them for real, with nbgrader in a scratch course.

A scenario's ``edits`` are ``{grade_id: (old text, new text)}`` applied to the source solutions;
``lose`` is the set of graded functions that must lose points (all others score full marks), and
``notes`` maps a caller to the ``(callee, mistake)`` its carried-forward note must name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = {
    "01_standardization": ROOT / "source" / "01_standardization" / "standardization.ipynb",
    "02_batchnorm_forward": ROOT / "source" / "02_batchnorm_forward" / "batchnorm_forward.ipynb",
    "03_batchnorm_backward": ROOT / "source" / "03_batchnorm_backward" / "batchnorm_backward.ipynb",
    "04_experiments": ROOT / "source" / "04_experiments" / "experiments.ipynb",
    "05_beyond_batchnorm": ROOT / "source" / "05_beyond_batchnorm" / "beyond_batchnorm.ipynb",
    "06_modern_normalization": ROOT / "source" / "06_modern_normalization" / "modern_normalization.ipynb",
}


@dataclass(frozen=True)
class Scenario:
    name: str
    assignment: str
    edits: dict[str, tuple[str, str]]
    lose: frozenset[str]
    notes: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.assignment[:2]}-{self.name}"


_DDOF1 = ("var = ((x - mean) ** 2).mean(axis=0)", "var = x.var(axis=0, ddof=1)")
#: 03's normalize_backward with x_hat where x - mean belongs in dvar (M18, seed 000's slip)
M18_DVAR = ("(dx_hat * xmu).sum(axis=0)", "(dx_hat * xmu * inv_std).sum(axis=0)")

#: 03's batchnorm_backward_alt as the sum of its three paths, calling dx_through_mean and
#: dx_through_var
ALT_BY_PATHS = ("dx = (gamma * inv_std / N) * (N * dout - dbeta - x_hat * dgamma)",
                "dx_hat = dout * gamma\n"
                "    dx = dx_hat * inv_std + dx_through_mean(dx_hat, inv_std) + "
                "dx_through_var(dx_hat, x_hat, inv_std)")

SCENARIOS = [
    # ------------------------------------------------------------------ 01
    Scenario("callee standardize squares the numerator (M12)", "01_standardization",
             {"standardize": ("return (np.asarray(X) - mean) / scale",
                              "return (np.asarray(X) - mean) ** 2 / scale")},
             frozenset({"standardize"}), {"standardize_splits": ("standardize", "M12")}),
    Scenario("caller standardize_splits fits on all splits (M21)", "01_standardization",
             {"standardize_splits": ("mean, scale = fit_standardizer(X_train)",
                                     "mean, scale = fit_standardizer("
                                     "np.concatenate([X_train, X_val, X_test]))")},
             frozenset({"standardize_splits"})),
    # ------------------------------------------------------------------ 02
    Scenario("callee batch_stats divides by N - 1 (M1)", "02_batchnorm_forward",
             {"batch_stats": _DDOF1}, frozenset({"batch_stats"}),
             {"batchnorm_forward": ("batch_stats", "M1"),
              "spatial_batchnorm_forward": ("batch_stats", "M1")}),
    Scenario("callee normalize adds eps outside the root (M3)", "02_batchnorm_forward",
             {"normalize": ("np.sqrt(var + eps)", "(np.sqrt(var) + eps)")},
             frozenset({"normalize"}),
             {"batchnorm_forward": ("normalize", "M3"),
              "spatial_batchnorm_forward": ("normalize", "M3")}),
    Scenario("caller batchnorm_forward flips the momentum (M6)", "02_batchnorm_forward",
             {"batchnorm_forward": ("(1 - momentum) * running_mean + momentum * mean",
                                    "momentum * running_mean + (1 - momentum) * mean")},
             frozenset({"batchnorm_forward"}),
             {"spatial_batchnorm_forward": ("batchnorm_forward", "M6")}),
    Scenario("caller spatial_batchnorm_forward reshapes without moving C (M14)",
             "02_batchnorm_forward",
             {"spatial_batchnorm_forward": ("rows = x.transpose(0, 2, 3, 1).reshape(-1, C)",
                                            "rows = x.reshape(-1, C)")},
             frozenset({"spatial_batchnorm_forward"})),
    # ------------------------------------------------------------------ 03
    # batchnorm_backward chains the three stage functions, and spatial_batchnorm_backward calls
    # batchnorm_backward; a stage's mistake reaches the spatial pass through batchnorm_backward
    Scenario("callee scale_shift_backward leaves dgamma per sample (M15)", "03_batchnorm_backward",
             {"scale_shift_backward": ("dgamma = (dout * x_hat).sum(axis=0)",
                                       "dgamma = dout * x_hat")},
             frozenset({"scale_shift_backward"}),
             {"batchnorm_backward": ("scale_shift_backward", "M15"),
              "spatial_batchnorm_backward": ("scale_shift_backward", "M15")}),
    Scenario("callee normalize_backward has x_hat for x - mean in dvar (M18)",
             "03_batchnorm_backward",
             {"normalize_backward": M18_DVAR},
             frozenset({"normalize_backward"}),
             {"batchnorm_backward": ("normalize_backward", "M18"),
              "spatial_batchnorm_backward": ("normalize_backward", "M18")}),
    Scenario("callee batch_stats_backward divides by D (M16)", "03_batchnorm_backward",
             {"batch_stats_backward": ("N = x.shape[0]", "N = x.shape[1]")},
             frozenset({"batch_stats_backward"}),
             {"batchnorm_backward": ("batch_stats_backward", "M16"),
              "spatial_batchnorm_backward": ("batch_stats_backward", "M16")}),
    # batchnorm_backward writes the statistics' path itself, with 1/D, instead of calling its
    # batch_stats_backward: its own mistake, carried into the spatial pass that calls it
    Scenario("callee batchnorm_backward divides by D (M16)", "03_batchnorm_backward",
             {"batchnorm_backward": ("dx = dx_direct + batch_stats_backward(dmean, dvar, x)",
                                     "dx = dx_direct + (dmean + 2.0 * dvar * (x - cache[\"mean\"]))"
                                     " / x.shape[1]")},
             frozenset({"batchnorm_backward"}),
             {"spatial_batchnorm_backward": ("batchnorm_backward", "M16")}),
    Scenario("caller batchnorm_backward drops the direct path (M17)", "03_batchnorm_backward",
             {"batchnorm_backward": ("dx = dx_direct + batch_stats_backward(dmean, dvar, x)",
                                     "dx = batch_stats_backward(dmean, dvar, x)")},
             frozenset({"batchnorm_backward"}),
             {"spatial_batchnorm_backward": ("batchnorm_backward", "M17")}),
    # batchnorm_backward_alt written as the sum of its paths (the notebook asks for one
    # expression, but a caller of a wrong path function is charged once, there)
    Scenario("callee dx_through_var divides by D (M16)", "03_batchnorm_backward",
             {"dx_through_var": ("N = dx_hat.shape[0]", "N = dx_hat.shape[1]"),
              "batchnorm_backward_alt": ALT_BY_PATHS},
             frozenset({"dx_through_var"}),
             {"batchnorm_backward_alt": ("dx_through_var", "M16")}),
    Scenario("caller spatial_batchnorm_backward reshapes without moving C (M14)",
             "03_batchnorm_backward",
             {"spatial_batchnorm_backward": ("dout_rows = dout.transpose(0, 2, 3, 1).reshape(-1, C)",
                                             "dout_rows = dout.reshape(-1, C)")},
             frozenset({"spatial_batchnorm_backward"})),
    # ------------------------------------------------------------------ 04
    Scenario("callee affine_bn_relu_forward always uses batch statistics (M8)", "04_experiments",
             {"affine_bn_relu_forward": ("    y, bn_cache = batchnorm_forward(a, gamma, beta, bn_param)",
                                         "    bn_param[\"mode\"] = \"train\"\n"
                                         "    y, bn_cache = batchnorm_forward(a, gamma, beta, bn_param)")},
             frozenset({"affine_bn_relu_forward"}),
             {"mode_accuracies": ("affine_bn_relu_forward", "M8")}),
    Scenario("caller mode_accuracies keeps bn_params' own mode (M8)", "04_experiments",
             {"mode_accuracies": ('            bn["mode"] = mode\n', "")},
             frozenset({"mode_accuracies"})),
    # ------------------------------------------------------------------ 06
    Scenario("callee rmsnorm_forward subtracts the mean (M33)", "06_modern_normalization",
             {"rmsnorm_forward": ("    inv_rms = 1.0 / np.sqrt(",
                                  "    xc = xc - xc.mean(axis=-1, keepdims=True)\n"
                                  "    inv_rms = 1.0 / np.sqrt(")},
             frozenset({"rmsnorm_forward"}),
             {"residual_block_forward": ("rmsnorm_forward", "M33")}),
    Scenario("callee rmsnorm_backward drops the path through the RMS (M17)",
             "06_modern_normalization",
             {"rmsnorm_backward": ("dx = inv_rms * (g - x_hat * np.mean(g * x_hat, axis=-1, keepdims=True))",
                                   "dx = inv_rms * g")},
             frozenset({"rmsnorm_backward"}),
             {"residual_block_backward": ("rmsnorm_backward", "M17")}),
    Scenario("caller residual_block_forward normalizes the skip path (M36)",
             "06_modern_normalization",
             {"residual_block_forward": ("out = x + (a @ w2 + b2)",
                                         "out = (z if placement == 'pre' else x) + (a @ w2 + b2)")},
             frozenset({"residual_block_forward"})),
    Scenario("caller residual_block_backward drops the skip gradient (M38)",
             "06_modern_normalization",
             {"residual_block_backward": ("return ds + dz, dw1", "return dz, dw1")},
             frozenset({"residual_block_backward"})),
]

#: The single-ddof=1 notebook of issue 20 (02 right everywhere except ddof=1 in batch_stats).
DDOF1 = SCENARIOS[2]


def answers(scenario: Scenario) -> dict[str, str]:
    """``{grade_id: source}`` of the notebook's answer cells: the solutions, with the edits."""
    nb = nbformat.read(NOTEBOOKS[scenario.assignment], as_version=4)
    found = {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells
             if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")}
    for grade_id, (old, new) in scenario.edits.items():
        if old not in found[grade_id]:
            raise ValueError(f"{scenario.id}: the edit of {grade_id} does not apply: {old!r}")
        found[grade_id] = found[grade_id].replace(old, new)
    return found


def hidden_checks(assignment: str) -> list[tuple[str, str]]:
    """``(grade_id, check name)`` of the notebook's hidden test cells, in order."""
    nb = nbformat.read(NOTEBOOKS[assignment], as_version=4)
    found = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
            line = [ln for ln in cell.source.splitlines() if "import" in ln][-1]
            found.append((meta["grade_id"], line.split("import ")[1].split(";")[0].strip()))
    return found
