"""Notebook 04 executed end to end (nbclient), three ways.

* With the provided BatchNorm, as nbgrader's autograde runs it (``NBGRADER_EXECUTION``: reduced
  sweeps).
* With ``USE_MY_BATCHNORM = True`` and the *source* solutions of notebooks 02 and 03 pasted in,
  as the notebook tells a student to do (``batch_stats``, ``normalize``, ``scale_shift``,
  ``batchnorm_forward``; ``scale_shift_backward``, ``normalize_backward``, ``batch_stats_backward``,
  ``batchnorm_backward``): every curve must agree with the provided run.
* As a student runs it (full sweeps): the graded results — every hidden test cell's output —
  must be the same as under autograde.
"""

from __future__ import annotations

import json
import os
import textwrap

import nbformat
import pytest
from conftest import ROOT, nbgrader_meta
from nbclient import NotebookClient

pytestmark = pytest.mark.nbgrader  # each test runs notebook 04 in a Jupyter kernel

SOURCE = ROOT / "source" / "04_experiments" / "experiments.ipynb"
PASTE = {  # the functions the notebook tells a student to paste, by source notebook
    ROOT / "source" / "02_batchnorm_forward" / "batchnorm_forward.ipynb":
        ("batch_stats", "normalize", "scale_shift", "batchnorm_forward"),
    ROOT / "source" / "03_batchnorm_backward" / "batchnorm_backward.ipynb":
        ("scale_shift_backward", "normalize_backward", "batch_stats_backward", "batchnorm_backward"),
}
MARK = "CURVES "
LOOSE = ("loss", "spread", "histograms", "ics", "health")  # real-valued; accuracies are exact counts

# Appended to the notebook: every curve of every figure, at full precision, for every seed.
DUMP = r'''
import json as _json

def _run(r):
    return {"loss": r.loss_history, "train": r.train_acc_history, "val": r.val_acc_history,
            "test": r.test_acc}

def _seeds(runs):
    return [_run(r) for r in runs.runs]

_curves = {
    "weight_scale": {k: [_seeds(r) for r in v] for k, v in sweep.items()},
    "learning_rate": {k: [_seeds(r) for r in v] for k, v in lr_sweep.items()},
    "batch_size": {k: {str(b): _seeds(r) for b, r in v.items()} for k, v in bs_sweep.items()},
    "single_class": {k: _seeds(r) for k, r in single.items()},
    "gaps": {k: {str(b): np.asarray(v).tolist() for b, v in d.items()} for k, d in gaps.items()},
    "spread": {"mean": list(spread["mean"].values()), "var": list(spread["var"].values())},
    "histograms": [float(a.std()) for net in panels.values()
                   for a in net.activations(data["X_val"])["pre"]],
    "ics": {k: [t.input_scale.tolist(), t.input_shift.tolist(), t.affine_scale.tolist()]
            for k, t in ics.items()},
    "health": {k: t.update_ratio.tolist() for k, t in health.items()},
}
print("CURVES " + _json.dumps(_curves))
'''


def _solution_code(path, name: str) -> str:
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "code" and nbgrader_meta(cell).get("grade_id") == name:
            return cell.source
    raise LookupError(f"{path.name} has no solution cell {name!r}")


def _with_my_batchnorm(nb):
    """The notebook with USE_MY_BATCHNORM = True and 02's and 03's solutions pasted in."""
    pasted = "\n\n".join(_solution_code(path, name) for path, names in PASTE.items() for name in names)
    cell = next(c for c in nb.cells if "USE_MY_BATCHNORM = False" in c.source)
    head = cell.source.split("if USE_MY_BATCHNORM:")[0].replace("USE_MY_BATCHNORM = False",
                                                                 "USE_MY_BATCHNORM = True")
    cell.source = head + "if USE_MY_BATCHNORM:\n" + textwrap.indent(pasted, "    ") + "\n"
    return nb


def _execute(nb, autograde: bool):
    env_before = dict(os.environ)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), env_before.get("PYTHONPATH", "")])
    os.environ.pop("MPLBACKEND", None)
    os.environ.pop("NBGRADER_EXECUTION", None)
    if autograde:
        os.environ["NBGRADER_EXECUTION"] = "autograde"
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(SOURCE.parent)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    return nb


def _curves(nb) -> dict:
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    assert MARK in text, f"the curve dump printed nothing:\n{text[:500]}"
    return json.loads(text.split(MARK, 1)[1])


def _run(my_batchnorm: bool, autograde: bool):
    nb = nbformat.read(SOURCE, as_version=4)
    if my_batchnorm:
        nb = _with_my_batchnorm(nb)
    nb.cells.append(nbformat.v4.new_code_cell(DUMP))
    return _execute(nb, autograde)


@pytest.fixture(scope="module")
def provided_autograde():
    return _run(my_batchnorm=False, autograde=True)


def _close(a, b, path="", rtol=0.0) -> list[str]:
    """Paths where two nested JSON values differ by more than rounding.

    Accuracies are counts over a fixed set, so they must be equal; losses and spreads may differ
    by rounding (the two BatchNorms order their floating-point operations differently, and
    training amplifies differences of 1e-16 to about 1e-9 over hundreds of steps at B = 5), so
    they must agree to 1e-6 relative, far below anything a figure shows.
    """
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        return [p for k in a for p in _close(a[k], b[k], f"{path}/{k}",
                                             1e-6 if k in LOOSE else rtol)]
    if isinstance(a, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} values, {len(b)} values"]
        return [p for i, (u, v) in enumerate(zip(a, b, strict=True))
                for p in _close(u, v, f"{path}[{i}]", rtol)]
    return [] if abs(a - b) <= rtol * max(abs(a), abs(b)) else [f"{path}: {a!r} vs {b!r}"]


def test_own_batchnorm_from_02_and_03_gives_the_same_curves(provided_autograde):
    mine = _run(my_batchnorm=True, autograde=True)
    differ = _close(_curves(provided_autograde), _curves(mine))
    assert not differ, f"{len(differ)} values differ, e.g. {differ[:5]}"
    compare = next(c for c in mine.cells if "provided_batchnorm as provided" in c.source)
    printed = "".join(o.get("text", "") for o in compare.outputs)
    assert "YOUR BatchNorm" in printed and "agrees with provided_batchnorm.py" in printed, printed


def _graded_outputs(nb) -> dict[str, str]:
    """Each hidden test cell's printed text (per stream) and its value. The kernel may deliver one
    print in several stream messages, more so on a loaded machine, so the text is joined."""
    out = {}
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if cell.cell_type == "code" and meta.get("grade"):
            streams = {name: "".join(o.get("text", "") for o in cell.outputs
                                     if o.output_type == "stream" and o.name == name)
                       for name in ("stdout", "stderr")}
            values = [o.get("data", {}).get("text/plain") for o in cell.outputs
                      if o.output_type == "execute_result"]
            errors = [o.get("ename") for o in cell.outputs if o.output_type == "error"]
            out[meta["grade_id"]] = json.dumps({**streams, "values": values, "errors": errors})
    return out


def test_graded_results_do_not_depend_on_the_grading_mode(provided_autograde):
    student = _run(my_batchnorm=False, autograde=False)
    graded, as_student = _graded_outputs(provided_autograde), _graded_outputs(student)
    assert graded and graded.keys() == as_student.keys()
    for grade_id, outputs in graded.items():
        assert outputs == as_student[grade_id], f"{grade_id} differs between the two modes"
    # and the two runs did differ where they should: the sweeps are reduced under autograde
    assert _curves(provided_autograde)["weight_scale"] != _curves(student)["weight_scale"]
