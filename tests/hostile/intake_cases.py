"""Hostile submissions against the front door (``autograder/kernel/submission/``), one student each.

The assignment is ``tiny`` of tests/test_runner.py (see tests/hostile/runner_cases.py): an answer
cell ``answer`` and one hidden test cell worth 1 point. ``build(folder, root, release)`` writes
the student's submission into ``folder`` (``submitted/<id>/tiny``); ``root`` is the course,
``release`` the ``tiny`` release notebook.

Each case names its honest twin, the same code without the trick: ``"stub"`` (the release
notebook, unanswered), ``"correct"`` (the correct answer) or ``None`` (nothing gradable at all);
its score is the ceiling. ``reason`` is a substring of the flags that runs.json and the
autograded notebook carry (a rejection's, or the repair's), ``rejected`` whether the whole
submission is refused. These were all observed to stop a run, block it, or score what the
student did not write before the front door (issue 19).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbformat

CORRECT = "def answer():\n    return 42.0"
TIMESTAMP = "2026-11-20 09:00:00.000000 UTC\n"
#: Folders nested in the deep case: more than Python's recursion limit.
DEPTH = 1100
#: The sparse case: files of this apparent size, each within nbgrader's 100 MB file limit.
SPARSE_FILES, SPARSE_BYTES = 10, 99 * 10**6


def answered(release: nbformat.NotebookNode, source: str | None) -> nbformat.NotebookNode:
    nb = copy.deepcopy(release)
    for cell in nb.cells:
        if source is not None and cell.metadata.get("nbgrader", {}).get("grade_id") == "answer":
            cell.source = source
    return nb


def _write(folder: Path, nb, name: str = "tiny.ipynb", stamp: str | None = TIMESTAMP) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if nb is not None:
        nbformat.write(nb, folder / name)
    if stamp is not None:
        (folder / "timestamp.txt").write_text(stamp)


def _edit(folder: Path, change: Callable[[dict, dict], None]) -> None:
    """Rewrite the submitted notebook's JSON: ``change(notebook, answer_cell)``."""
    nb = json.loads((folder / "tiny.ipynb").read_text())
    cell = next(c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == "answer")
    change(nb, cell)
    (folder / "tiny.ipynb").write_text(json.dumps(nb))


def link_to_source(folder: Path, root: Path, release) -> None:
    """The release stub, and ``tiny (1).ipynb`` a link to the instructor's source notebook."""
    _write(folder, answered(release, None), "stub.ipynb")
    (folder / "tiny (1).ipynb").symlink_to(root / "source" / "tiny" / "tiny.ipynb")


def link_to_other(folder: Path, root: Path, release) -> None:
    """The release stub, and ``tiny (1).ipynb`` a link to another student's notebook."""
    _write(folder, answered(release, None), "stub.ipynb")
    (folder / "tiny (1).ipynb").symlink_to(root / "submitted" / "alice" / "tiny" / "tiny.ipynb")


def fifo_notebook(folder: Path, root: Path, release) -> None:
    _write(folder, None)
    os.mkfifo(folder / "tiny.ipynb")


def fifo_timestamp(folder: Path, root: Path, release) -> None:
    """No notebook, and ``timestamp.txt`` a FIFO (nbgrader's reader opens it)."""
    _write(folder, None, stamp=None)
    os.mkfifo(folder / "timestamp.txt")


def deep_folders(folder: Path, root: Path, release) -> None:
    """A correct notebook beside :data:`DEPTH` nested folders (made without recursion)."""
    _write(folder, answered(release, CORRECT))
    fd = os.open(folder, os.O_RDONLY)
    try:
        for _ in range(DEPTH):
            os.mkdir("d", dir_fd=fd)
            inner = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
    finally:
        os.close(fd)


def bad_timestamp(folder: Path, root: Path, release) -> None:
    """No notebook, and a timestamp that is not a date (nbgrader's reader calls a ``fail``
    that ``CourseDirectory`` does not have)."""
    _write(folder, None, stamp="not a date\n")


def tags_null(folder: Path, root: Path, release) -> None:
    _write(folder, answered(release, CORRECT))
    _edit(folder, lambda nb, cell: cell["metadata"].update(tags=None))


def unhashable_id(folder: Path, root: Path, release) -> None:
    _write(folder, answered(release, CORRECT))
    _edit(folder, lambda nb, cell: cell.update(id=["not", "hashable"]))


def outputs_not_list(folder: Path, root: Path, release) -> None:
    _write(folder, answered(release, CORRECT))
    _edit(folder, lambda nb, cell: cell.update(outputs={"output_type": "stream"}))


def attachments_not_list(folder: Path, root: Path, release) -> None:
    """A markdown cell whose ``attachments`` is a list of numbers."""
    _write(folder, answered(release, CORRECT))
    _edit(folder, lambda nb, cell: nb["cells"].insert(0, {
        "cell_type": "markdown", "id": "note", "metadata": {}, "source": "my notes",
        "attachments": [1, 2]}))


def sparse_files(folder: Path, root: Path, release) -> None:
    """A correct notebook and :data:`SPARSE_FILES` sparse files (no disk used) of
    :data:`SPARSE_BYTES` each."""
    _write(folder, answered(release, CORRECT))
    for i in range(SPARSE_FILES):
        with open(folder / f"big{i}.bin", "wb") as fh:
            fh.truncate(SPARSE_BYTES)


@dataclass(frozen=True)
class Case:
    build: Callable[[Path, Path, object], None]
    honest: str | None  # "stub", "correct" or None
    rejected: bool
    reason: str


CASES: dict[str, Case] = {
    "link_to_source": Case(link_to_source, "stub", True, "tiny (1).ipynb is a symbolic link"),
    "link_to_other": Case(link_to_other, "stub", True, "tiny (1).ipynb is a symbolic link"),
    "fifo_notebook": Case(fifo_notebook, None, True, "tiny.ipynb is a FIFO"),
    "fifo_timestamp": Case(fifo_timestamp, None, True, "timestamp.txt is a FIFO"),
    "deep_folders": Case(deep_folders, "correct", True, "is more than 8 folders deep"),
    "bad_timestamp": Case(bad_timestamp, None, True, "tiny.ipynb is missing"),
    "tags_null": Case(tags_null, "correct", False, "tags dropped (not a list of strings)"),
    "unhashable_id": Case(unhashable_id, "correct", False, "id replaced"),
    "outputs_not_list": Case(outputs_not_list, "correct", False, ""),
    "attachments_not_list": Case(attachments_not_list, "correct", False,
                                 "attachments dropped (not a mapping of images)"),
    "sparse_files": Case(sparse_files, "correct", False,
                         "not copied for grading"),
}
