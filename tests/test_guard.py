"""The trusted preamble of grading kernels (autograder.kernel.guard, autograder.kernel).

Every hostile case of ``tests/hostile/guard_cases.py`` runs as a real notebook in the guarded
kernel (``python -P -m autograder.kernel.launcher``, started by nbclient from a kernelspec), inside a
scratch copy of the course; most also run in a plain ``ipykernel`` to show that the attack works
there. A few submissions then go through real ``nbgrader autograde`` with the course's
configuration (the sandboxed kernel manager, which starts ``autograder.kernel.launcher``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
from conftest import cell_metadata, copy_course, load_hostile_cases, require_bwrap
from nbclient import NotebookClient
from nbgrader.api import Gradebook
from nbgrader.utils import determine_grade

from autograder import notebooks
from autograder.checks.framework import close, flags_in, require_unchanged, same_value, unpack
from autograder.course_dir import with_tools_on_path

cases = load_hostile_cases("guard_cases")

ASSIGNMENT = "02_batchnorm_forward"
GUARDED = "bn-guarded"
#: Unguarded kernels: plain ipykernel, and the grading kernel started without ``python -P``.
UNGUARDED_KERNELS = {"plain": "bn-plain", "no-safe-path": "bn-no-safe-path"}
HIDDEN_RE = re.compile(r"from autograder\.checks import (check_\w+)")


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A scratch copy of the course, with a gradebook file and the two kernelspecs."""
    root = copy_course(tmp_path_factory.mktemp("course"))
    (root / "gradebook.db").write_bytes(b"SQLite format 3\x00 (a stand-in)")
    return root


@pytest.fixture(scope="module")
def kernels(course, tmp_path_factory) -> Path:
    """A JUPYTER_PATH with the guarded kernel and the unguarded ones."""
    path = tmp_path_factory.mktemp("jupyter")
    for name, argv in ((GUARDED, ["-P", "-m", "autograder.kernel.launcher"]),
                       ("bn-plain", ["-m", "ipykernel_launcher"]),
                       ("bn-no-safe-path", ["-m", "autograder.kernel.launcher"])):
        spec = path / "kernels" / name
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, *argv, "-f", "{connection_file}"],
            "display_name": name, "language": "python",
            "env": {"PYTHONPATH": str(course), "MPLBACKEND": "module://matplotlib_inline.backend_inline"},
        }))
    return path


def run_notebook(course: Path, kernels: Path, folder: Path, cells: list[str], kernel: str,
                 monkeypatch, log: Path | None = None) -> nbformat.NotebookNode:
    """Execute ``cells`` as a notebook in ``folder``; errors stay in outputs.

    With ``kernel == GUARDED`` the notebook goes through the course's own execute preprocessor
    (sandboxed kernel, hidden checks run in this process: autograder/kernel/remote.py), as
    ``nbgrader autograde`` runs it; otherwise through plain nbclient in that kernel, where the
    hidden test cells run inside the student's process (the old design).
    """
    monkeypatch.setenv("JUPYTER_PATH", str(kernels))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    for cell in nb.cells:  # hidden test cells are nbgrader grade cells, as in the course
        found = HIDDEN_RE.match(cell.source)
        if found:
            cell.metadata["nbgrader"] = {
                "grade": True, "solution": False, "locked": True, "schema_version": 3,
                "grade_id": f"test_{found.group(1)}", "points": cases.POINTS[found.group(1)]}
    if kernel == GUARDED:
        from autograder.kernel.execute import SandboxedExecute
        from autograder.kernel.sandbox import SandboxedKernelManager

        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
        from traitlets.config import Config

        config = Config({"SandboxedKernelManager": {"course_root": str(course)}})
        SandboxedExecute(timeout=60, kernel_manager_class=SandboxedKernelManager,
                         config=config).preprocess(nb, {"metadata": {"path": str(folder)}})
        return nb
    NotebookClient(nb, kernel_name=kernel, timeout=60, allow_errors=True,
                   resources={"metadata": {"path": str(folder)}}).execute()
    return nb


def cell_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        parts += [out.get("text", ""), out.get("ename", ""), out.get("evalue", "")]
        parts += [str(v) for v in out.get("data", {}).values()]
    return "\n".join(parts)


def hidden_results(nb) -> dict[str, dict]:
    """For each hidden-test cell: the points nbgrader awards it, its flags, errors and text."""
    results = {}
    for cell in nb.cells:
        found = HIDDEN_RE.match(cell.source)
        if not found:
            continue
        errors = [o.ename for o in cell.outputs if o.output_type == "error"]
        text = cell_text(cell)
        trusted = notebooks.trusted_score(cell)
        results[found.group(1)] = {"score": determine_grade(cell)[0] if trusted is None
                                   else trusted, "error": errors,
                                   "flags": {k for k, _ in notebooks.trusted_flags(
                                       {"cells": [cell]})} or {k for k, _ in flags_in(text)},
                                   "text": text,
                                   "stderr": [o for o in cell.outputs if o.get("name") == "stderr"]}
    return results


def submission_folder(course: Path, case_name: str, case) -> Path:
    folder = course / "autograded" / case_name / ASSIGNMENT
    folder.mkdir(parents=True, exist_ok=True)
    for rel, text in case.files.items():
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return folder


#: Flag kinds that the trusted side still raises for these cases: the kernel's guard records
#: reads past the submission and network attempts. Tampering inside the kernel no longer matters
#: (the checks and the reference are not there), so it is no longer looked for.
STILL_FLAGGED = frozenset({"forbidden-file", "network"})


@pytest.mark.parametrize("name", sorted(cases.CASES))
def test_hostile_case_scores_no_more_than_its_honest_part(name, course, kernels, monkeypatch):
    """Each attack, graded the way nbgrader grades (the checks in the grader's process), scores
    at most what the case allows: the cheating function earns nothing, an untouched honest
    function keeps its points, and reads past the submission and network attempts are flagged."""
    case = cases.CASES[name]
    folder = submission_folder(course, name, case)
    nb = run_notebook(course, kernels, folder, [cases.HONEST, *case.cells], GUARDED, monkeypatch)
    results = hidden_results(nb)
    assert set(results) == set(case.checks)
    for check, want in case.checks.items():
        got = results[check]
        where = f"{name}/{check}: {got['score']}\n{got['text']}"
        assert got["score"] is not None, where
        if want.below is not None:
            assert got["score"] < want.below, where
        elif set(want.flags) <= {"tampering", "reference-access"} and want.flags:
            # tampering inside the kernel changes nothing the trusted side computes: the
            # function keeps what its own outputs earn, at most the full points
            assert got["score"] <= cases.POINTS[check], where
        elif want.flags or want.score < cases.POINTS[check]:
            assert got["score"] <= want.score, where
        else:  # an honest, untouched function: full points, nothing flagged
            assert got["score"] == want.score and not got["flags"] & STILL_FLAGGED, where
        assert set(want.flags) & STILL_FLAGGED <= got["flags"] | {
            k for c in results.values() for k in c["flags"]}, where
        assert got["stderr"] == [], where  # the trusted side writes the cell's outputs
    for rel in case.absent:
        assert not (course / rel).exists(), rel


UNGUARDED = sorted(name for name, case in cases.CASES.items() if case.unguarded)


@pytest.mark.parametrize("name", UNGUARDED)
def test_the_attack_works_in_a_plain_kernel(name, course, kernels, monkeypatch):
    """Without the guard the same notebook cheats (so the guarded outcome is the guard's doing);
    the grading hooks are no-ops there and flag nothing."""
    case = cases.CASES[name]
    folder = submission_folder(course, f"{name}-plain", case)
    nb = run_notebook(course, kernels, folder, [cases.HONEST, *case.cells],
                      UNGUARDED_KERNELS[case.unguarded_kernel], monkeypatch)
    results = hidden_results(nb)
    for check, score in case.unguarded.items():
        assert results[check]["score"] == score, results[check]["text"]
    assert not flags_in("\n".join(cell_text(c) for c in nb.cells))


def test_the_kernel_reports_itself_and_keeps_python_semantics(course, kernels, monkeypatch):
    """``autograder.kernel.launcher`` is a drop-in ipykernel: same outputs, own modules importable, the
    guard installed before the student's first cell."""
    folder = course / "autograded" / "semantics" / ASSIGNMENT
    folder.mkdir(parents=True)
    (folder / "mymod.py").write_text("VALUE = 41\n")
    cells = ["import sys, autograder.kernel.guard\nprint(autograder.kernel.guard.is_installed(), sys.flags.safe_path)",
             "import mymod\nmymod.VALUE + 1",
             "1 / 0"]
    nb = run_notebook(course, kernels, folder, cells, GUARDED, monkeypatch)
    assert nb.cells[0].outputs[0].text.strip() == "True True"
    assert nb.cells[1].outputs[0].data["text/plain"] == "42"
    assert nb.cells[2].outputs[0].ename == "ZeroDivisionError"


# -- real nbgrader autograde ----------------------------------------------------------------------

NB_ASSIGNMENT = "98_guard"


def _test_cell(function: str, points: int):
    return nbformat.v4.new_code_cell(
        f"### BEGIN HIDDEN TESTS\n{cases.hidden(function)}\n### END HIDDEN TESTS",
        metadata=cell_metadata(f"test_{function}", grade=True, solution=False, points=points))


def nbgrader(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "nbgrader"), *args], cwd=root,
                          env=with_tools_on_path(), capture_output=True, text=True, timeout=600)


NB_SUBMISSIONS = {
    # student: (answer cell, score of test_batch_stats, of test_scale_shift, flag kinds)
    "honest": (cases.HONEST, 2.0, 1.0, set()),
    # the kernel's IPython machinery no longer decides a score: the missing function scores 0,
    # the honest one keeps its point
    "traceback": (cases.HONEST + "\nget_ipython().showtraceback = lambda *a, **k: None\n"
                  "del batch_stats\n", 0.0, 1.0, set()),
    # the checks are not in the kernel: there is nothing to reach
    "reference": (cases.HONEST + "\nimport sys\n\ndef batch_stats(x):\n"
                  "    return sys.modules['autograder.checks.batchnorm_forward'].ref.batch_stats(x)\n",
                  0.0, 1.0, set()),
    "import_reference": (cases.HONEST + "\n\ndef batch_stats(x):\n"
                         "    import autograder.reference as ref\n    return ref.batch_stats(x)\n",
                         0.0, 1.0, {"reference-access"}),
    # the comparisons run in the grader's process: the kernel's numpy is the student's own
    "allclose": (cases.HONEST + "\nnp.allclose = lambda *a, **k: True\n", 2.0, 1.0, set()),
    "stub_with_allclose": ("import numpy as np\nnp.allclose = lambda *a, **k: True\n"
                           "def batch_stats(x):\n    return np.zeros(x.shape[1]), "
                           "np.zeros(x.shape[1])\n"
                           "def scale_shift(x_hat, gamma, beta):\n    return x_hat\n",
                           0.0, 0.0, set()),
}


@pytest.fixture(scope="module")
def autograded_course(tmp_path_factory):
    """A throw-away assignment graded by ``nbgrader autograde`` with the course's config."""
    require_bwrap()
    course = copy_course(tmp_path_factory.mktemp("nbgrader-course"))
    source = course / "source" / NB_ASSIGNMENT
    source.mkdir(parents=True)
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(f"### BEGIN SOLUTION\n{cases.HONEST}### END SOLUTION",
                                  metadata=cell_metadata("answer", grade=False, solution=True)),
        _test_cell("batch_stats", 2),
        _test_cell("scale_shift", 1),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, source / "guard.ipynb")
    gen = nbgrader(course, "generate_assignment", NB_ASSIGNMENT, "--force")
    assert gen.returncode == 0, gen.stderr
    for student, (answer, *_rest) in NB_SUBMISSIONS.items():
        sub = nbformat.read(course / "release" / NB_ASSIGNMENT / "guard.ipynb", as_version=4)
        sub.cells[0].source = answer
        folder = course / "submitted" / student / NB_ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(sub, folder / "guard.ipynb")
    run = nbgrader(course, "autograde", NB_ASSIGNMENT)
    assert run.returncode == 0, run.stderr[-3000:]
    return course


@pytest.mark.parametrize("student", sorted(NB_SUBMISSIONS))
def test_nbgrader_autograde_with_the_guarded_kernel(student, autograded_course):
    _, batch_stats_score, scale_shift_score, kinds = NB_SUBMISSIONS[student]
    with Gradebook(f"sqlite:///{autograded_course / 'gradebook.db'}") as gb:
        def grade(grade_id):
            return gb.find_grade(grade_id, "guard", NB_ASSIGNMENT, student).score
        assert grade("test_batch_stats") == batch_stats_score
        assert grade("test_scale_shift") == scale_shift_score
    nb = nbformat.read(autograded_course / "autograded" / student / NB_ASSIGNMENT / "guard.ipynb",
                       as_version=4)
    text = "\n".join(cell_text(c) for c in nb.cells)
    assert {k for k, _ in notebooks.trusted_flags(nb)} - {"sandbox-off"} == kinds, text[-3000:]


# -- the comparison path without a guard (students' own Jupyter, the rest of the tests) -------------


class AlwaysEqual:
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = object.__hash__


class LyingTuple(tuple):
    """Holds (a, b, c) but claims to hold 2 items and iterates over others."""

    def __len__(self):
        return 2

    def __iter__(self):
        return iter((np.zeros(2), np.zeros(2)))


def test_same_value_never_asks_the_students_object():
    assert not same_value(0.1, AlwaysEqual())
    assert not same_value(np.ones(3), AlwaysEqual())
    assert not same_value("train", AlwaysEqual())
    assert not same_value({"eps": 1e-5}, {"eps": AlwaysEqual()})
    assert same_value({"x": np.array([1.0, np.nan])}, {"x": np.array([1.0, np.nan])})
    assert not same_value([1.0, 2.0], (1.0, 2.0))
    with pytest.raises(AssertionError, match="M10"):
        require_unchanged("momentum", 0.1, AlwaysEqual())


def test_unpack_reads_the_items_as_stored():
    with pytest.raises(AssertionError, match="expected a tuple"):
        unpack(LyingTuple((1, 2, 3)), 2, "mean, var")
    a, b = unpack(LyingTuple((1.0, 2.0)), 2, "mean, var")
    assert (a, b) == (1.0, 2.0)


def test_close_converts_to_plain_float64():
    class Agreeable(np.ndarray):
        def __array_function__(self, func, types, args, kwargs):
            return True

    assert not close(np.zeros(3).view(Agreeable), np.ones(3), rtol=1e-7)
    assert not close(AlwaysEqual(), 1.0, rtol=1e-7)
    assert close(np.ones(3).view(Agreeable), np.ones(3), rtol=1e-7)
