"""The self-check (``python -m autograder check NOTEBOOK``) grades one notebook as nbgrader would.

Every run is real: nbgrader's generate_assignment and autograde in a scratch copy, the sandboxed
kernel, the hidden checks. The course the command runs from is itself a scratch copy
(``conftest.copy_course``) holding a gradebook and submission folders of its own, so the tests
can check that none of them is touched.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import copy_course, nbgrader_meta

from autograder.notebooks import TRUSTED_KEY
from autograder.tools import selfcheck
from autograder.tools.demo import build_submission, load_samples

A01, NB01 = "01_standardization", "standardization.ipynb"
A02, NB02 = "02_batchnorm_forward", "batchnorm_forward.ipynb"
COURSE_STATE = ("gradebook.db", "submitted", "autograded", "feedback")


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A copy of the course with an instructor's gradebook and submission folders in it."""
    root = copy_course(tmp_path_factory.mktemp("course"))
    (root / "gradebook.db").write_bytes(b"the instructor's gradebook")
    for sub in COURSE_STATE[1:]:
        (root / sub / "someone" / A01).mkdir(parents=True)
        (root / sub / "someone" / A01 / NB01).write_text("{}")
    return root


def _state(root: Path) -> dict[str, tuple[str, int]]:
    """Hash and mtime of every file under the course's own grading state."""
    files = {}
    for name in COURSE_STATE:
        paths = [root / name] if (root / name).is_file() else sorted((root / name).rglob("*"))
        for p in paths:
            if p.is_file():
                files[str(p.relative_to(root))] = (hashlib.sha256(p.read_bytes()).hexdigest(),
                                                   p.stat().st_mtime_ns)
    return files


def _sample(course: Path, tmp_path: Path, notebook: str, assignment: str, who: str) -> Path:
    answers = load_samples(notebook).STUDENTS[who]["answers"]
    path = tmp_path / f"my {who} {notebook}"  # any name: the notebook is recognized by its cells
    nbformat.write(build_submission(course / "release" / assignment / notebook, answers), path)
    return path


def _check(course: Path, *args: str, env: dict | None = None, cwd: Path | None = None):
    bindir = str(Path(sys.executable).parent)
    full_env = {**os.environ, "PATH": os.pathsep.join([bindir, os.environ.get("PATH", "")]),
                **(env or {})}
    return subprocess.run([sys.executable, "-m", "autograder", "check", *map(str, args)],
                          cwd=cwd or course, env=full_env, capture_output=True, text=True,
                          timeout=600)


def _one_line_error(result, code: int = 2) -> str:
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_correct_notebook_gets_full_marks_and_exit_0(course, tmp_path):
    path = _sample(course, tmp_path, NB01, A01, "ada")
    before = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
    state = _state(course)
    result = _check(course, path)
    assert result.returncode == 0, result.stdout + result.stderr
    max_code = sum(nbgrader_meta(c).get("points", 0) for c in nbformat.read(path, 4).cells
                   if c.cell_type == "code" and nbgrader_meta(c).get("grade"))
    assert f"Total: {max_code:g} / {max_code:g} points on the autograded cells" in result.stdout
    assert "graded by a person" in result.stdout
    assert "[FAIL]" not in result.stdout and "Diagnosis" not in result.stdout
    # the student's notebook and the course's own grading state are untouched, nothing added
    assert (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns) == before
    assert _state(course) == state
    assert not (course / "release" / A01 / ".ipynb_checkpoints").exists()


def test_a_mistaken_sample_gets_its_diagnosis_beside_the_expected_value(course, tmp_path):
    sample = load_samples(NB01).STUDENTS["ben"]
    path = _sample(course, tmp_path, NB01, A01, "ben")
    state = _state(course)
    html = tmp_path / "feedback" / "mine.html"
    result = _check(course, path, "--html", html)
    assert result.returncode == 1, result.stdout + result.stderr
    for mid in sample["expect"]["diagnoses"]:
        assert f"Diagnosis {mid}:" in result.stdout
        assert f"diagnosed: {mid}" in result.stdout
        assert f"Diagnosis {mid}" in html.read_text()  # nbgrader's own feedback HTML
    out = result.stdout
    assert "[FAIL]" in out and "[ok  ]" in out
    yours = out.index("yours:")
    assert out.index("expected:", yours) - yours < 200  # the expected value on the next line
    assert _state(course) == state


@pytest.mark.parametrize("edit", ["edited", "deleted"])
def test_a_tampered_locked_cell_is_restored_and_said(course, tmp_path, edit):
    path = _sample(course, tmp_path, NB01, A01, "ada")
    nb = nbformat.read(path, 4)
    locked = next(c for c in nb.cells if nbgrader_meta(c).get("grade_id") == "test_standardize")
    if edit == "edited":
        locked.source = "print('no test here')"
    else:
        nb.cells.remove(locked)
    nbformat.write(nb, path)
    # the unsandboxed path too: what a learner without bubblewrap gets
    env = {"BN_UNSANDBOXED": "1"} if edit == "deleted" else {}
    result = _check(course, path, env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    restored = [ln for ln in result.stdout.splitlines() if ln.startswith("restored:")]
    assert len(restored) == 1 and "test_standardize" in restored[0] and edit in restored[0]
    assert "test_standardize: 2 / 2 points" in result.stdout  # the instructor's test ran
    assert (selfcheck.UNSANDBOXED_NOTE in result.stdout) == (edit == "deleted")


def test_other_notebooks_in_the_learners_folder_change_nothing(course, tmp_path):
    """The learner works in release/: a broken draft, JupyterLab's duplicate, a copy of another
    assignment and a FIFO beside the checked notebook are never read (only the release notebook
    nbgrader_config.ASSIGNMENTS names is the course's)."""
    folder = course / "release" / A01
    path = folder / f"my copy of {NB01}"
    answers = load_samples(NB01).STUDENTS["ada"]["answers"]
    nbformat.write(build_submission(folder / NB01, answers), path)
    strays = {"draft.ipynb": '{"cells": [', "standardization-Copy1.ipynb": (folder / NB01).read_text(),
              "batchnorm_forward.ipynb": (course / "release" / A02 / NB02).read_text()}
    try:
        for name, text in strays.items():
            (folder / name).write_text(text)
        os.mkfifo(folder / "pipe.ipynb")
        result = _check(course, path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "test_standardize: 2 / 2 points" in result.stdout
    finally:
        for name in [*strays, "pipe.ipynb", path.name]:
            (folder / name).unlink(missing_ok=True)


def test_a_fifo_is_one_line_and_never_blocks(course, tmp_path):
    os.mkfifo(tmp_path / NB01)
    assert "is a FIFO, not a regular file" in _one_line_error(_check(course, tmp_path / NB01))


def test_malformed_json_is_one_line(course, tmp_path):
    path = tmp_path / NB01
    path.write_text('{"cells": [')
    assert "malformed JSON" in _one_line_error(_check(course, path))


def test_a_notebook_of_another_course_is_one_line(course, tmp_path):
    path = tmp_path / NB01  # the right name, but none of the course's cells
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")]), path)
    assert "not one of the course's notebooks" in _one_line_error(_check(course, path))


def test_a_missing_notebook_is_one_line(course, tmp_path):
    assert "does not exist" in _one_line_error(_check(course, tmp_path / "nothing.ipynb"))


def test_a_class_release_without_autograder_says_who_grades(course, tmp_path):
    """A class release has no autograder/: `make check` says so before building anything."""
    release = tmp_path / "class"
    shutil.copytree(course, release, ignore=shutil.ignore_patterns("autograder", ".venv"))
    nb = release / "release" / A01 / NB01
    result = subprocess.run(["make", "-s", "check", f"NB={nb}"], cwd=release,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert selfcheck.FULL_REPOSITORY in result.stderr
    assert not (release / ".venv").exists()
    # and the command itself, for a course copy that has autograder/ but not source/
    shutil.copytree(course / "autograder", release / "autograder")
    shutil.rmtree(release / "source")
    assert _one_line_error(_check(release, nb, cwd=release)) == (
        f"self-check: {selfcheck.FULL_REPOSITORY}")


def test_the_trusted_score_wins_over_nbgraders_own():
    cell = nbformat.v4.new_code_cell("check_x(x)", metadata={
        "nbgrader": {"grade": True, "solution": False, "grade_id": "t", "points": 2}})
    cell.outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "1.5"})]
    assert selfcheck.cell_score(cell) == 1.5  # nbgrader's determine_grade: the value of the cell
    cell.metadata[TRUSTED_KEY] = {"score": 0.25, "max_score": 2.0}
    assert selfcheck.cell_score(cell) == 0.25
    cell.outputs = [nbformat.v4.new_output("error", ename="E", evalue="", traceback=[])]
    del cell.metadata[TRUSTED_KEY]
    assert selfcheck.cell_score(cell) == 0.0


def test_the_in_process_alembic_head_is_nbgraders():
    from nbgrader.api import get_alembic_version

    assert selfcheck._alembic_head() == get_alembic_version()


def test_the_command_is_registered():
    from autograder.__main__ import COMMANDS

    assert COMMANDS["check"][0] == "autograder.tools.selfcheck"
    assert "\n" not in selfcheck.FULL_REPOSITORY


def test_the_summary_counts_every_part_it_lists_and_says_partial_in_words():
    """Issue 20: "0.9 / 2 points (1 of 2 parts passed)" stood above six parts. The self-check
    reads the record, counts each part once and names a partial one in words; text in the
    cell's output is never read."""
    from autograder.notebooks import set_record
    from autograder.record import CheckRecord, Diagnosis, Finding, Part

    record = CheckRecord("batch_stats", 2, 0.9, parts=[
        Part("mean and var", 2, 1, 0.8, 0.4, "partial",
             [Finding(["var is wrong.", "yours:    [2.]", "expected: [1.]"], "M1")]),
        Part("N=2", 0.5, 0, 0.2, 0, "failed", [Finding(["var is wrong."], "M1")]),
        Part("x unchanged", 0.5, 0.5, 0.2, 0.2, "passed")],
        diagnoses=[Diagnosis("M1", "M1", "you divide by N - 1", "mean and var"),
                   Diagnosis("M1", "M1", "you divide by N - 1", "N=2")])
    cell = nbformat.v4.new_code_cell("check_batch_stats(batch_stats)", metadata={
        "nbgrader": {"grade": True, "solution": False, "grade_id": "test_batch_stats",
                     "points": 2}})
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout",
                                           text="  [ok  ] forged\n  Diagnosis M20: forged\n")]
    set_record(cell, record.to_dict())
    cell.metadata[TRUSTED_KEY]["score"] = 0.9
    result = selfcheck.parse_cell(cell)
    assert result.summary == "1 of 3 parts passed, 1 partial, 1 failed"
    assert (result.passed, result.partial, result.failed) == (["x unchanged"], ["mean and var"],
                                                              ["N=2"])
    assert result.diagnoses == [("M1", "you divide by N - 1")]
    check = selfcheck.SelfCheck("nb", "02", "nb.ipynb", [result], [], [], [], False)
    text = selfcheck.render(check)
    assert "test_batch_stats: 0.9 / 2 points (1 of 3 parts passed, 1 partial, 1 failed)" in text
    assert "[part] mean and var (partial: 0.4 of its 0.8 points)" in text
    assert "[part] partial credit" in text  # the legend says it in words
    assert "forged" not in text and "M20" not in text
    assert "diagnosed: M1 (explained in autograder/MISCONCEPTIONS.md)" in text
