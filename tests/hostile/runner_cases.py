"""Broken notebooks and tampered cells for the grading runner, each with its expected outcome.

Each case builds one student's submission folder for the throw-away assignment ``tiny`` (made
by ``tests/test_runner.py``), whose release notebook is::

    setup        read-only     import math
    answer       answer cell   def answer(): ...          <- a correct answer returns 42.0
    visible      read-only     assert callable(answer)
    test_answer  test, 1 pt    (hidden) check_answer(answer): answer() == 42.0, run by the grader

A second assignment, ``tiny2`` (notebook ``tiny2.ipynb``, cells ``setup2``, ``answer2``,
``test_answer2``), exists so that a notebook can be submitted under the wrong assignment.

``build(folder, release)`` writes the submission into ``folder`` (``submitted/<id>/tiny``);
``release`` maps each assignment to its release notebook (an ``nbformat`` node, to copy).
Expected: ``status`` and ``score`` (the student's autograded points in the gradebook),
``flags`` the flag kinds that runs.json must list for the student, ``reason`` a substring of
one of those flags' reasons (or of the run's reason).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbformat

CORRECT = "def answer():\n    return 42.0"
WRONG = "def answer():\n    return 41.0"
TIMESTAMP = "2026-11-20 09:00:00.000000 UTC\n"


def answered(release: nbformat.NotebookNode, source: str, grade_id: str = "answer"):
    """A copy of a release notebook with the answer cell ``grade_id`` replaced by ``source``."""
    nb = copy.deepcopy(release)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            cell.source = source
    return nb


def cell(nb, grade_id: str):
    """The cell of ``nb`` with nbgrader ``grade_id``."""
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def _write(folder: Path, nb, name: str = "tiny.ipynb") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / name)
    (folder / "timestamp.txt").write_text(TIMESTAMP)


def malformed(folder: Path, release: dict) -> None:
    """A notebook cut off mid-file (an interrupted upload): not valid JSON."""
    _write(folder, answered(release["tiny"], CORRECT))
    text = (folder / "tiny.ipynb").read_text()
    (folder / "tiny.ipynb").write_text(text[: len(text) // 2])


def missing(folder: Path, release: dict) -> None:
    """A folder with the timestamp and a stray text file, but no notebook."""
    folder.mkdir(parents=True)
    (folder / "timestamp.txt").write_text(TIMESTAMP)
    (folder / "notes.txt").write_text("I could not get the notebook to save, sorry\n")


def renamed(folder: Path, release: dict) -> None:
    """A correct notebook downloaded twice: ``tiny (1).ipynb``."""
    _write(folder, answered(release["tiny"], CORRECT), "tiny (1).ipynb")


def wrong_assignment(folder: Path, release: dict) -> None:
    """The other assignment's notebook, fully answered, in this assignment's folder."""
    _write(folder, answered(release["tiny2"], CORRECT, "answer2"), "tiny2.ipynb")


def wrong_assignment_renamed(folder: Path, release: dict) -> None:
    """The other assignment's notebook saved under this assignment's notebook name."""
    _write(folder, answered(release["tiny2"], CORRECT, "answer2"), "tiny.ipynb")


def large_file(folder: Path, release: dict) -> None:
    """A correct notebook plus a 200 MB file (sparse: it takes no disk space here)."""
    _write(folder, answered(release["tiny"], CORRECT))
    with open(folder / "checkpoint.bin", "wb") as fh:
        fh.truncate(200 * 2**20)


def symlink(folder: Path, release: dict) -> None:
    """A correct notebook plus a link to the course's gradebook, for the kernel to read."""
    _write(folder, answered(release["tiny"], CORRECT))
    (folder / "grades.db").symlink_to(folder.parents[2] / "gradebook.db")


def deleted_test_cell(folder: Path, release: dict) -> None:
    """A wrong answer whose hidden-test cell was deleted, hoping it will not run."""
    nb = answered(release["tiny"], WRONG)
    nb.cells.remove(cell(nb, "test_answer"))
    _write(folder, nb)


def deleted_locked_cell(folder: Path, release: dict) -> None:
    """A correct answer (which needs no import) with the read-only setup cell deleted."""
    nb = answered(release["tiny"], CORRECT)
    nb.cells.remove(cell(nb, "setup"))
    _write(folder, nb)


def edited_test_cell(folder: Path, release: dict) -> None:
    """A wrong answer with the test cell rewritten to always pass."""
    nb = answered(release["tiny"], WRONG)
    cell(nb, "test_answer").source = "assert True  # nothing to see here"
    _write(folder, nb)


def edited_locked_cell(folder: Path, release: dict) -> None:
    """A wrong answer with the read-only setup cell edited to make every comparison pass."""
    nb = answered(release["tiny"], WRONG)
    cell(nb, "setup").source = "import math\nmath.isclose = lambda *args, **kwargs: True"
    _write(folder, nb)


@dataclass(frozen=True)
class Case:
    build: Callable[[Path, dict], None]
    status: str
    score: float
    flags: tuple[str, ...]
    reason: str


CASES: dict[str, Case] = {
    "malformed": Case(malformed, "failed", 0, ("malformed-notebook",), "not a readable notebook"),
    "missing": Case(missing, "failed", 0, ("missing-notebook",), "tiny.ipynb is missing"),
    "renamed": Case(renamed, "graded", 1, ("renamed-notebook",), "tiny (1).ipynb graded as"),
    "wrong_assignment": Case(
        wrong_assignment, "failed", 0, ("wrong-assignment",), "belongs to assignment tiny2"
    ),
    "wrong_assignment_renamed": Case(
        wrong_assignment_renamed, "failed", 0, ("wrong-assignment",),
        "holds the notebook of assignment tiny2",
    ),
    "large_file": Case(large_file, "graded", 1, ("large-file",), "checkpoint.bin (210 MB)"),
    # the front door refuses a submission holding a link (nothing is opened through it), as
    # nbgrader autograde does (tests/hostile/hygiene_cases.py)
    "symlink": Case(symlink, "failed", 0, ("rejected-submission",),
                    "grades.db is a symbolic link"),
    "deleted_test_cell": Case(
        deleted_test_cell, "graded", 0, ("tampering",), "test cell 'test_answer' was deleted"
    ),
    "deleted_locked_cell": Case(
        deleted_locked_cell, "graded", 1, ("tampering",), "read-only cell 'setup' was deleted"
    ),
    "edited_test_cell": Case(
        edited_test_cell, "graded", 0, ("tampering",), "test cell 'test_answer' was edited"
    ),
    "edited_locked_cell": Case(
        edited_locked_cell, "graded", 0, ("tampering",), "read-only cell 'setup' was edited"
    ),
}
