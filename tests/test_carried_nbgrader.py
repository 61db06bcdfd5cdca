"""Issue 20 graded for real: nbgrader autograde in a scratch course, the sandboxed kernel, the
hidden checks on the trusted side, the records in the autograded notebooks, the report and the
self-check.

* Each chain of graded functions (``tests/chains.py``) with a mistake in the callee only: the
  callee loses points, every caller keeps full marks, and the caller's record and feedback name
  the callee and the mistake; with a mistake in the caller only: only the caller loses.
* Every check of every assignment on a student whose functions print, warn and raise text that
  imitates report lines ("Diagnosis M20: ...", "[ok  ] every part passed"): the record, the
  report, report.csv and the self-check show no diagnosis and no part the check did not find.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from chains import SCENARIOS, answers, hidden_checks
from conftest import ASSIGNMENTS, copy_course
from nbgrader.api import Gradebook
from rendering import logical_lines

import autograder.checks as checks
import autograder.notebooks as notebooks
from autograder.notebooks import check_records, diagnoses_in
from autograder.tools.demo import build_submission

pytestmark = [pytest.mark.nbgrader, pytest.mark.requires_bwrap]

FORGED = ("batch_stats: 9 / 9 points\\n  [ok  ] every part passed\\n"
          "      Diagnosis M20: planted by the student\\nFlag [tampering]: planted")
HOSTILE = f'''
def {{name}}(*args, **kwargs):
    import sys
    import warnings
    print("{FORGED}")
    print("{FORGED}", file=sys.stderr)
    warnings.warn("{FORGED}", UserWarning)
    raise ValueError("{FORGED}")
'''


def _code_answers(notebook: Path) -> list[str]:
    nb = nbformat.read(notebook, as_version=4)
    return [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if c.cell_type == "code"
            and c.metadata.get("nbgrader", {}).get("solution")]


def _hostile_answers(assignment: str) -> dict[str, str]:
    notebook = Path(__file__).resolve().parents[1] / "source" / assignment / ASSIGNMENTS[assignment]
    return {gid: HOSTILE.replace("{name}", gid) for gid in _code_answers(notebook)}


STUDENTS = {f"chain{i:02d}": scenario for i, scenario in enumerate(SCENARIOS)}
HOSTILE_STUDENTS = {f"hostile{a[:2]}": a for a in ASSIGNMENTS}


def _run(root: Path, *args: str) -> subprocess.CompletedProcess:
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": os.pathsep.join([bindir, os.environ.get("PATH", "")])}
    env.pop("PYTHONPATH", None)
    return subprocess.run(list(args), cwd=root, env=env, capture_output=True, text=True,
                          timeout=1800)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """``graded(assignment)``: the scratch course once nbgrader autograde has graded that
    assignment's chain and hostile students (each assignment graded once, when first needed)."""
    root = copy_course(tmp_path_factory.mktemp("carried"))
    done: set[str] = set()

    def grade(assignment: str) -> Path:
        if assignment in done:
            return root
        students = [s for s, sc in STUDENTS.items() if sc.assignment == assignment]
        students += [s for s, a in HOSTILE_STUDENTS.items() if a == assignment]
        notebook = ASSIGNMENTS[assignment]
        for student in students:
            given = (_hostile_answers(assignment) if student in HOSTILE_STUDENTS
                     else answers(STUDENTS[student]))
            folder = root / "submitted" / student / assignment
            folder.mkdir(parents=True)
            nbformat.write(build_submission(root / "release" / assignment / notebook, given),
                           folder / notebook)
            (folder / "timestamp.txt").write_text("2026-11-20 09:00:00.000000 UTC\n")
        nbgrader = str(Path(sys.executable).parent / "nbgrader")
        for args in (["generate_assignment", assignment, "--force"],  # the scratch gradebook
                     ["autograde", assignment, "--force", "--student=*"]):
            result = _run(root, nbgrader, *args)
            assert result.returncode == 0, result.stdout + result.stderr
        done.add(assignment)
        return root

    return grade


def _cell_scores(root: Path, assignment: str, student: str) -> dict[str, float]:
    notebook = Path(ASSIGNMENTS[assignment]).stem
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        nb = gb.find_submission_notebook(notebook, assignment, student)
        return {g.name: float(g.auto_score or 0.0) for g in nb.grades if g.cell_type == "code"}


def _autograded(root: Path, assignment: str, student: str):
    return nbformat.read(root / "autograded" / student / assignment / ASSIGNMENTS[assignment], 4)


def _function(check_name: str) -> str:
    return getattr(checks, check_name).function_name


@pytest.mark.parametrize("student", sorted(STUDENTS), ids=[STUDENTS[s].id for s in sorted(STUDENTS)])
def test_a_mistake_costs_points_only_in_the_function_that_holds_it(graded, student, capsys):
    scenario = STUDENTS[student]
    root = graded(scenario.assignment)
    scores = _cell_scores(root, scenario.assignment, student)
    records = check_records(_autograded(root, scenario.assignment, student))
    by_function = {}
    for grade_id, check_name in hidden_checks(scenario.assignment):
        function, points = _function(check_name), getattr(checks, check_name).points
        by_function[function] = scores[grade_id]
        if function in scenario.lose:
            assert scores[grade_id] < points, (student, function)
        else:
            assert scores[grade_id] == points, (student, function, records[grade_id].parts)
        assert records[grade_id].score == scores[grade_id], "the record holds the cell's score"
    with capsys.disabled():  # the numbers the closing note asks for
        total = sum(by_function.values())
        print(f"\n{scenario.id}: {total:g} ({', '.join(f'{f} {s:g}' for f, s in by_function.items())})")
    for caller, (callee, mistake) in scenario.notes.items():
        grade_id = next(g for g, c in hidden_checks(scenario.assignment) if _function(c) == caller)
        record = records[grade_id]
        assert [(c.callee, mistake in c.mistakes) for c in record.carried] == [(callee, True)]
        assert not record.diagnosis_ids, "the callee's mistake is not named again in the caller"
        cell = next(c for c in notebooks.test_cells(_autograded(root, scenario.assignment, student))
                    if c.metadata.nbgrader.grade_id == grade_id)
        shown = "".join(o.get("text", "") for o in cell.outputs)
        assert f"`{callee}`, whose mistake ({mistake}) is marked there; no second" in \
            shown.replace("\n    ", " ")


def _parts_of_a_silent_stub(check_name: str) -> list[str]:
    def stub(*args):
        raise ValueError("no")

    stub.__name__ = _function(check_name)
    with contextlib.redirect_stdout(io.StringIO()):
        return [p.name for p in getattr(checks, check_name)(stub).record.parts]


@pytest.mark.parametrize("student", sorted(HOSTILE_STUDENTS))
def test_student_text_adds_no_diagnosis_part_or_point_anywhere(graded, student, tmp_path):
    assignment = HOSTILE_STUDENTS[student]
    root = graded(assignment)
    nb = _autograded(root, assignment, student)
    records = check_records(nb)
    assert set(records) == {g for g, _ in hidden_checks(assignment)}, "every check left a record"
    for grade_id, check_name in hidden_checks(assignment):
        record = records[grade_id]
        assert record.score == 0 and not record.diagnoses and not record.carried
        assert [p.name for p in record.parts] == _parts_of_a_silent_stub(check_name)
        assert all(p.status == "failed" for p in record.parts)
        assert any("planted by the student" in note for p in record.parts for note in p.notes)
    shown = [ln for c in notebooks.test_cells(nb) for o in c.outputs for ln in
             logical_lines(o.get("text", ""))]
    assert not [ln for ln in shown if ln.startswith(("Diagnosis", "[ok", "Flag", "batch_stats: 9"))]

    out = tmp_path / "report"
    done = _run(root, sys.executable, "-m", "autograder", "report", assignment,
                "--root", str(root), "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    with open(out / "report.csv") as f:
        row = next(r for r in csv.DictReader(f) if r["student"] == student)
    assert row["diagnoses"] == "" and float(row["score"]) == 0
    html = (out / "report.html").read_text()
    assert "M20" not in html

    path = root / "submitted" / student / assignment / ASSIGNMENTS[assignment]
    done = _run(root, sys.executable, "-m", "autograder", "check", str(path))
    assert done.returncode == 1, done.stdout + done.stderr
    lines = logical_lines(done.stdout)
    assert not [ln for ln in lines if ln.startswith(("Diagnosis", "[ok", "diagnosed:"))]
    for grade_id, check_name in hidden_checks(assignment):
        parts = len(_parts_of_a_silent_stub(check_name))
        assert f"{grade_id}: 0 / " in done.stdout
        assert f"(0 of {parts} parts passed, {parts} failed)" in done.stdout
    assert diagnoses_in(done.stdout) <= {"M20"}  # only inside the quoted student text
