"""The main job end to end: `python -m autograder.tools.demo` with real nbgrader in a scratch copy."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import ASSIGNMENTS, copy_course, course_state, without_bubblewrap
from nbgrader.api import Gradebook

from autograder.checks.framework import diagnoses_in
from autograder.notebooks import diagnoses
from autograder.samples import unmet_expectations
from autograder.tools.demo import DEMO_PREFIX, load_samples

CASES = [
    (assignment, notebook, name)
    for assignment, notebook in ASSIGNMENTS.items()
    for name in load_samples(notebook).STUDENTS
]


def _auto_scores(root, assignment, notebook, student):
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        nb = gb.find_submission_notebook(notebook.removesuffix(".ipynb"), assignment, student)
        code = [g for g in nb.grades if g.cell_type == "code"]
        return sum(g.auto_score or 0.0 for g in code), sum(g.max_score for g in code)


def test_every_assignment_has_the_four_kinds_of_sample():
    for notebook in ASSIGNMENTS.values():
        students = load_samples(notebook).STUDENTS
        kinds = {(s["expect"].get("full_marks", False), s["expect"].get("zero", False))
                 for s in students.values()}
        assert (True, False) in kinds and (False, True) in kinds, notebook
        assert sum(1 for s in students.values() if s["expect"].get("diagnoses")) >= 2, notebook
        assert any(not s["answers"] for s in students.values()), f"{notebook}: no untouched sample"


@pytest.mark.parametrize(("assignment", "notebook", "name"), CASES,
                         ids=[f"{a}-{n}" for a, _, n in CASES])
def test_sample_grade_and_feedback(demo_run, assignment, notebook, name):
    root, _ = demo_run
    expect = load_samples(notebook).STUDENTS[name]["expect"]
    student = DEMO_PREFIX + name
    auto, auto_max = _auto_scores(root, assignment, notebook, student)
    assert auto_max > 0
    html = (root / "feedback" / student / assignment / notebook.replace(".ipynb", ".html")).read_text()
    graded = nbformat.read(root / "autograded" / student / assignment / notebook, as_version=4)
    recorded = diagnoses(graded)  # the checks' records, never the printed text
    problems = unmet_expectations(expect, auto, auto_max, recorded)
    assert not problems, f"{name} in {assignment}: {problems}"
    assert recorded <= diagnoses_in(html), "the feedback shows every recorded diagnosis"


def test_demo_prints_the_grade_table_and_exports(demo_run):
    root, stdout = demo_run
    assert "as expected" in stdout and "\nada " in stdout
    assert " NO " not in stdout, stdout
    with open(root / "grades.csv") as f:
        rows = list(csv.DictReader(f))
    graded = {(r["assignment"], r["student_id"]) for r in rows}
    for assignment in ASSIGNMENTS:
        assert (assignment, DEMO_PREFIX + "ada") in graded


def test_demo_leaves_the_course_untouched_and_says_where_it_graded(demo_course, demo_run):
    course, before = demo_course
    scratch, stdout = demo_run
    after = course_state(course)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert changed == [], f"the demo changed the course: {changed[:10]}"
    assert before["gradebook.db"] and "submitted/real_student/01_standardization/standardization.ipynb" in before
    assert f"Demo course (a scratch copy; your course is not touched): {scratch}" in stdout
    assert stdout.rstrip().splitlines()[-2].endswith(str(scratch))
    for name in ("gradebook.db", "grades.csv", "submitted", "autograded", "feedback", "reports"):
        assert (scratch / name).exists(), name


def test_feedback_never_shows_rubrics_or_reference_code(demo_run):
    root, _ = demo_run
    pages = list((root / "feedback").rglob("*.html"))
    assert len(pages) >= 4 * len(ASSIGNMENTS)
    for page in pages:
        html = page.read_text()
        assert "MARK SCHEME" not in html, f"{page} shows a rubric to the student"
        assert "autograder.reference" not in html, f"{page} names the hidden reference module"


def test_rubric_is_restored_for_the_grader(demo_run):
    root, _ = demo_run
    for assignment, notebook in ASSIGNMENTS.items():
        graded = (root / "autograded" / (DEMO_PREFIX + "ada") / assignment / notebook).read_text()
        assert "BEGIN MARK SCHEME" in graded, f"{assignment}: the Formgrader would not show the rubric"


def _without_bubblewrap(cmd: list[str], root) -> subprocess.CompletedProcess:
    return without_bubblewrap(cmd, root)


@pytest.mark.nbgrader
def test_demo_without_bubblewrap_grades_the_samples_and_real_grading_still_refuses(tmp_path):
    course = copy_course(tmp_path / "course")
    root = tmp_path / "demo"
    assignment = "01_standardization"
    demo = _without_bubblewrap(
        [sys.executable, "-m", "autograder.tools.demo", "--assignment", assignment,
         "--scratch", str(root)], course)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    said = [line for line in demo.stdout.splitlines() if "sandbox" in line.lower()]
    assert len(said) == 1, said
    assert said[0].startswith("Sandbox off for the demo") and "install bubblewrap" in said[0]
    table = {line.split()[0]: line for line in demo.stdout.splitlines()
             if line.split()[:2][1:] == [assignment]}
    assert sorted(table) == sorted(load_samples(ASSIGNMENTS[assignment]).STUDENTS)
    assert all(" yes " in row for row in table.values()), table

    # A real submission (a copy of a sample's) is not graded without the sandbox, by either
    # tool: tried in the demo's course, which has a gradebook and a release.
    notebook = ASSIGNMENTS[assignment]
    real = root / "submitted" / "real" / assignment
    shutil.copytree(root / "submitted" / (DEMO_PREFIX + "ada") / assignment, real)
    nbgrader = str(Path(sys.executable).parent / "nbgrader")
    refused = _without_bubblewrap([nbgrader, "autograde", assignment, "--student=real"], root)
    assert refused.returncode != 0
    assert "bubblewrap is missing" in refused.stdout + refused.stderr
    assert not (root / "autograded" / "real").exists(), notebook
    runner = _without_bubblewrap(
        [sys.executable, "-m", "autograder", "grade", assignment, "--students", "real"], root)
    runs = json.loads((root / "reports" / assignment / "runs.json").read_text())
    assert runs["sandboxed"] is True, runs
    real_run = runs["students"]["real"]
    assert real_run["status"] != "graded", (real_run, runner.stdout + runner.stderr)
    assert "bubblewrap is missing" in json.dumps(real_run), real_run
