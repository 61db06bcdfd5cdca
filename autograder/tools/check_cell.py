"""``python -m autograder.tools.check_cell``: (re)write the standard *Check my work* ending and
the header's "How to check your work" paragraph into every source notebook.

Every notebook ends with the same two locked cells: a short explanation, and a code cell that
calls :func:`course.selfcheck.check_my_work` on the notebook's own file (it grades the learner's
saved notebook with the hidden checks and prints the report in the notebook). Its header says
how to check one's work in one paragraph. Both are written here, from one template, so that
after other edits of the notebooks the lead can re-apply them in one command (then
``make release``); ``tests/test_notebooks.py`` checks that every source notebook has them.

Only those cells change: the trailing cells of an older ending (``## Self-study: check your
work``, or an earlier version of these two) are replaced, and the header paragraph that starts
with ``**How to check your work.**`` is replaced, or inserted after the header's
``**How to run the checks.**`` paragraph.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

from autograder.course_dir import ROOT, assignments

#: grade_ids of the two cells of the ending.
INTRO_ID, CELL_ID = "check_my_work_intro", "check_my_work"
#: grade_ids and first lines of earlier endings, replaced by this one.
OLD_IDS = frozenset({"self_study", INTRO_ID, CELL_ID})
OLD_HEADING = "## Self-study: check your work"

INTRO = """\
## Check my work

Save this notebook (Ctrl+S, or *File → Save Notebook*), then run the cell below. It grades your
**saved** notebook with the same hidden checks your instructor uses, in a scratch copy of the
course, and shows here, for each graded function, the points, the parts that passed and failed,
your value beside the expected one and the diagnosis of a known mistake. It takes about half a
minute, changes nothing of yours, and needs no terminal and no install (on Binder too). In a
class, your copy of the course has no hidden checks: your instructor grades, and the cell says so."""

CODE = """\
# Check my work: grades your saved notebook with the hidden checks (read-only).
from course.selfcheck import check_my_work

check_my_work("{notebook}")"""

HEADER = """\
**How to check your work.** Save the notebook, then run its last cell, *Check my work*: it grades
your saved notebook with the hidden checks, as your instructor would, and shows the points and the
diagnosis of each mistake right there. Written answers are graded by a person."""
_HEADER_RE = re.compile(
    r"\*\*How to check your work\.\*\*.*?(?:\n\n|(?=\*\*How to run the checks\.\*\*)|\Z)", re.S)
_RUN_CHECKS_RE = re.compile(r"\*\*How to run the checks\.\*\*.*?(?=\n\n|\Z)", re.S)


def _locked(grade_id: str) -> dict:
    return {"nbgrader": {"grade": False, "grade_id": grade_id, "locked": True,
                         "schema_version": 3, "solution": False, "task": False}}


def ending(notebook: str) -> list[nbformat.NotebookNode]:
    """The two cells every notebook ends with, for the notebook file ``notebook``."""
    intro = nbformat.v4.new_markdown_cell(INTRO, metadata=_locked(INTRO_ID))
    code = nbformat.v4.new_code_cell(CODE.format(notebook=notebook), metadata=_locked(CELL_ID))
    intro.id, code.id = "check-my-work-intro", "check-my-work"
    return [intro, code]


def header_with_check_line(text: str) -> str:
    """The header cell's text with its "How to check your work" paragraph set to :data:`HEADER`,
    right after the "How to run the checks" paragraph (or at the end); any earlier version of
    the paragraph is removed first."""
    text = _HEADER_RE.sub("", text).rstrip("\n")
    run = _RUN_CHECKS_RE.search(text)
    if run:
        return text[:run.end()] + "\n\n" + HEADER + text[run.end():]
    return text + "\n\n" + HEADER


def _is_old_ending(cell) -> bool:
    grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
    return grade_id in OLD_IDS or cell.source.startswith(OLD_HEADING)


def apply(nb: nbformat.NotebookNode, notebook: str) -> nbformat.NotebookNode:
    """``nb`` with the standard ending and header paragraph (in place; also returned).

    Raises
    ------
    ValueError
        If the notebook's first cell is not its markdown header.
    """
    if not nb.cells or nb.cells[0].cell_type != "markdown":
        raise ValueError(f"{notebook}: the first cell must be the markdown header")
    nb.cells[0].source = header_with_check_line(nb.cells[0].source)
    while nb.cells and _is_old_ending(nb.cells[-1]):
        nb.cells.pop()
    nb.cells.extend(ending(notebook))
    return nb


def write_all(root: Path = ROOT) -> list[Path]:
    """Apply :func:`apply` to every source notebook of the course; return those changed."""
    changed = []
    for assignment, notebook in assignments(root).items():
        path = Path(root) / "source" / assignment / notebook
        before = path.read_text(encoding="utf-8")
        nb = apply(nbformat.read(path, as_version=4), notebook)
        after = nbformat.writes(nb)
        after += "" if after.endswith("\n") else "\n"
        if after != before:
            path.write_text(after, encoding="utf-8")
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    for path in write_all():
        print(f"wrote {path.relative_to(ROOT)}")
    print("now run `make release` to regenerate release/", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
