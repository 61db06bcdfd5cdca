"""The README's instructor commands, run as written in a fresh clone: everything they write that
holds student data is git-ignored (``git status --porcelain`` lists nothing afterwards), and
the written answers graded in between reach the feedback and the exports.

The commands are read from the first ``bash`` block of the README's "For instructors" section.
Two students (the demo's ada and ben) fetch and submit through nbgrader's own exchange
(``nbgrader fetch_assignment`` and ``nbgrader submit --student``), and the Formgrader step
(the comment line) is done through nbgrader's Gradebook API, as the Formgrader does.
"""

from __future__ import annotations

import csv
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT, copy_course, requires_bwrap

from autograder.samples import batchnorm_forward as samples
from autograder.tools.demo import build_submission

pytestmark = [pytest.mark.nbgrader, requires_bwrap]

NBGRADER = str(Path(sys.executable).parent / "nbgrader")
COURSE_ID = "batchnorm-from-scratch"
ROSTER = ("id,first_name,last_name,email,lms_user_id\n"
          "ada,Ada,Lovelace,ada@example.org,S1\nben,Ben,Franklin,ben@example.org,S2\n")


def readme_commands() -> list[str]:
    """The lines of the first ``bash`` block of the README's "For instructors" section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## For instructors"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def run(cmd: list[str], cwd: Path, env: dict | None = None) -> str:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, f"{cmd}\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def students_submit(assignment: str, exchange: Path, home: Path) -> None:
    """ada and ben fetch the released assignment and submit the demo's answers."""
    for student in ("ada", "ben"):
        work = home / student
        work.mkdir(parents=True)
        run([NBGRADER, "fetch_assignment", assignment, f"--course={COURSE_ID}",
             f"--Exchange.root={exchange}"], work)
        notebook = work / assignment / samples.NOTEBOOK
        nbformat.write(build_submission(notebook, samples.STUDENTS[student]["answers"]), notebook)
        run([NBGRADER, "submit", assignment, f"--course={COURSE_ID}", f"--student={student}",
             f"--Exchange.root={exchange}"], work)


def grade_written_answers(clone: Path, assignment: str) -> None:
    """What the Formgrader does when the instructor scores each written answer: 1.5 points."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{clone / 'gradebook.db'}", course_id=COURSE_ID) as gb:
        for student in ("ada", "ben"):
            submission = gb.find_submission(assignment, student)
            for nb in submission.notebooks:
                for grade in nb.grades:
                    if grade.cell_type == "markdown":
                        grade.manual_score = 1.5
        gb.db.commit()


def test_readme_instructor_commands_leave_git_status_clean(tmp_path):
    clone = copy_course(tmp_path / "clone")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "clone"]):
        run(cmd, clone, env)
    (clone / "roster.csv").write_text(ROSTER)
    exchange = tmp_path / "exchange"
    exchange.mkdir(mode=0o777)
    assignment = "02_batchnorm_forward"
    commands = readme_commands()
    assert any("Formgrader" in line for line in commands)
    logs: dict[str, str] = {}
    for line in commands:
        if line.startswith("#"):
            if "Formgrader" in line:
                grade_written_answers(clone, assignment)
            continue
        argv = shlex.split(line, comments=True)
        argv[0] = {"nbgrader": NBGRADER, "python": sys.executable}[argv[0]]
        if argv[1] in ("release_assignment", "collect"):
            argv.append(f"--Exchange.root={exchange}")
        logs[argv[1]] = run(argv, clone)
        if argv[1] == "release_assignment":
            students_submit(assignment, exchange, tmp_path / "students")

    # nbgrader's noise about the release's hidden content is gone (autograder/tools/quiet.py)
    assert "Attribute 'checksum'" not in logs["autograde"], logs["autograde"]
    assert "display_data_priority" not in logs["generate_feedback"], logs["generate_feedback"]
    status = run(["git", "status", "--porcelain", "--untracked-files=all"], clone)
    assert status.strip() == "", f"files with student data are not ignored:\n{status}"
    # the commands did their work: grades with the written answers, in every file
    with open(clone / "grades.csv", newline="") as fh:
        grades = {row["student_id"]: row for row in csv.DictReader(fh)
                  if row["assignment"] == assignment}
    assert sorted(grades) == ["ada", "ben"]
    with open(clone / "moodle.csv", newline="") as fh:
        moodle = {row["ID number"]: row for row in csv.DictReader(fh)}
    assert sorted(moodle) == ["S1", "S2"]
    for student, idnumber in (("ada", "S1"), ("ben", "S2")):
        assert float(moodle[idnumber][f"Assignment: {assignment} (Real)"]) == pytest.approx(
            float(grades[student]["score"]))
    feedback = (clone / "feedback" / "ada" / assignment / "batchnorm_forward.html").read_text()
    assert "Score: 1.5" in feedback  # the written answer's grade, not 0
    for name in ("report.html", "report.csv", "similarity.html", "similarity.csv"):
        assert (clone / "reports" / assignment / name).is_file(), name
    assert (clone / "canvas.csv").is_file()
