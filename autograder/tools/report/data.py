"""The report's data: :func:`collect` gathers one assignment's scores (from nbgrader's gradebook),
diagnoses and flags (from the autograded notebooks, through :mod:`autograder.notebooks`) and the
runner's ``runs.json`` into a plain :class:`ReportData`; rendering is :mod:`.render`'s job.
"""

from __future__ import annotations

import glob
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import numpy as np

from autograder.course_dir import ROOT, assignments, course_directory
from autograder.notebooks import diagnoses as notebook_diagnoses
from autograder.notebooks import trusted_flags
from autograder.tools.report.items import ItemAnalysis, collect_items

#: The instructor copy of the misconception catalogue; its table names each mistake.
CATALOGUE = ROOT / "autograder" / "MISCONCEPTIONS.md"
#: Per-run status written by the parallel runner, next to the report.
RUNS_FILE = "runs.json"
GRADED = "graded"
NOT_GRADED = "not graded"
#: Scores within this many points of a bound count as on it (gradebook floats such as 6.2200001).
_TOL = 1e-9
_CATALOGUE_ROW = re.compile(r"^\|\s*(M\d+)\s*\|\s*([^|]*?)\s*\|", re.MULTILINE)


@dataclass
class CellRate:
    """How the graded submissions did on one autograded test cell.

    ``full + partial + zero`` is the number of submissions in the gradebook.
    """

    notebook: str
    cell: str
    max_score: float
    full: int
    partial: int
    zero: int
    mean: float


@dataclass
class StudentResult:
    """One student's row of the report.

    ``score`` and ``notebook_scores`` are None when the student was not graded. ``flags`` holds
    ``(kind, reason)`` pairs; ``reason`` explains a status other than ``"graded"``.
    """

    student: str
    status: str
    score: float | None
    notebook_scores: dict[str, float | None]
    diagnoses: list[str] = field(default_factory=list)
    flags: list[tuple[str, str]] = field(default_factory=list)
    reason: str = ""
    manual_pending: bool = False


@dataclass
class ReportData:
    """Everything the report shows about one assignment, gathered by :func:`collect`."""

    assignment: str
    notebooks: list[str]
    max_score: float
    students: list[StudentResult]
    cells: list[CellRate]
    titles: dict[str, str]
    run: dict | None = None
    notes: list[str] = field(default_factory=list)
    items: ItemAnalysis | None = None  # the item analysis (.items), None without a gradebook

    @property
    def scores(self) -> list[float]:
        """Total scores of the students who have one (graded, or recorded by the runner)."""
        return [s.score for s in self.students if s.score is not None]

    @property
    def flagged(self) -> list[StudentResult]:
        """Students with a flag or a status other than ``"graded"``."""
        return [s for s in self.students if s.flags or s.status != GRADED]

    def mistake_counts(self) -> list[tuple[str, str, list[str]]]:
        """``(id, title, students)`` per diagnosed misconception, most frequent first."""
        who: dict[str, list[str]] = {}
        for s in self.students:
            for m in s.diagnoses:
                who.setdefault(m, []).append(s.student)
        order = sorted(who, key=lambda m: (-len(who[m]), _mistake_number(m)))
        return [(m, self.titles.get(m, "(not in the catalogue)"), who[m]) for m in order]


def _mistake_number(mistake: str) -> int:
    return int(mistake[1:])


def misconception_titles(path: Path = CATALOGUE) -> dict[str, str]:
    """Short titles of the misconceptions, from the table of ``autograder/MISCONCEPTIONS.md``.

    Parameters
    ----------
    path : Path
        A markdown file whose table rows start ``| M<k> | title |``.

    Returns
    -------
    dict
        ``{"M1": "sample variance (ddof=1, ...) ...", ...}`` in the file's order.

    Raises
    ------
    FileNotFoundError
        If the catalogue is missing (it lives in ``autograder/``, next to this module).
    ValueError
        If the file has no such table rows.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"the misconception catalogue {path} is missing")
    titles = dict(_CATALOGUE_ROW.findall(path.read_text(encoding="utf-8")))
    if not titles:
        raise ValueError(f"{path} has no table rows of the form '| M<k> | title |'")
    return titles


def read_runs(path: Path, assignment: str) -> tuple[dict | None, list[str]]:
    """The runner's ``runs.json`` for ``assignment``, or None; plus notes on what was wrong.

    A missing file is normal (plain ``nbgrader autograde`` writes none) and gives no note. An
    unreadable file, or one written for another assignment, is ignored with a note.
    """
    if not path.is_file():
        return None, []
    try:
        runs = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, [f"{path.name} ignored: it is not readable JSON ({exc})"]
    if not isinstance(runs, dict) or not isinstance(runs.get("students"), dict):
        return None, [f"{path.name} ignored: expected an object with a 'students' object"]
    if runs.get("assignment") != assignment:
        return None, [
            f"{path.name} ignored: it is for assignment {runs.get('assignment')!r}, "
            f"not {assignment!r}"
        ]
    return runs, []


def _run_flags(entry: dict) -> list[tuple[str, str]]:
    flags = []
    for item in entry.get("flags", []) or []:
        if isinstance(item, (list, tuple)) and len(item) == 2:
            flags.append((str(item[0]), " ".join(str(item[1]).split())))
    return flags


def _course_directory(root: Path):
    """nbgrader's CourseDirectory for the course at ``root``, from its ``nbgrader_config.py``."""
    return course_directory(root)


def _gradebook_exists(db_url: str) -> bool:
    """False only for an SQLite gradebook file that does not exist (opening would create it)."""
    prefix = "sqlite:///"
    if not db_url.startswith(prefix):
        return True
    return Path(db_url[len(prefix):]).is_file()


def collect(assignment: str, root: Path = ROOT) -> ReportData:
    """Gather the report's data for one assignment from the gradebook and autograded notebooks.

    Parameters
    ----------
    assignment : str
        An assignment named in the course's ``nbgrader_config.py`` (``ASSIGNMENTS``).
    root : Path
        The nbgrader course directory.

    Returns
    -------
    ReportData
        Students sorted by id: everyone with a gradebook submission, a folder in ``submitted/``,
        or an entry in ``runs.json``.

    Raises
    ------
    ValueError
        If ``root`` is not a course directory, or ``assignment`` is not one of its assignments
        (the message lists the known ones).
    FileNotFoundError
        If the misconception catalogue ``autograder/MISCONCEPTIONS.md`` is missing.
    """
    root = Path(root).resolve()
    course = _course_directory(root)
    known = assignments(root)
    if assignment not in known:
        raise ValueError(f"unknown assignment {assignment!r}; the course has: {', '.join(known)}")
    notebooks = [Path(known[assignment]).stem]
    runs, notes = read_runs(root / "reports" / assignment / RUNS_FILE, assignment)
    run_students = {k: v for k, v in runs["students"].items() if isinstance(v, dict)} if runs else {}

    max_score, cells, totals, notebooks = _from_gradebook(course, assignment, notebooks)

    pattern = course.format_path(course.submitted_directory, "*", assignment)
    on_disk = {Path(p).parent.name for p in glob.glob(pattern) if Path(p).is_dir()}
    students = sorted(set(totals) | on_disk | set(run_students))

    results = []
    for student in students:
        autograded = Path(course.format_path(course.autograded_directory, student, assignment))
        results.append(
            _student_result(student, notebooks, autograded, totals.get(student),
                            run_students.get(student))
        )
    return ReportData(
        assignment=assignment,
        notebooks=notebooks,
        max_score=max_score,
        students=results,
        cells=cells,
        titles=misconception_titles(),
        run={k: v for k, v in runs.items() if k != "students"} if runs else None,
        notes=notes,
        items=collect_items(course, assignment, notebooks) if _gradebook_exists(course.db_url)
        else None,
    )


def _from_gradebook(course, assignment: str, notebooks: list[str]):
    """``(max_score, cell rates, {student: (score, {notebook: score}, needs manual grading)},
    notebooks)`` from the gradebook; the notebooks it knows are added after ``notebooks``.
    Nothing (and no new gradebook file) when it has no such assignment or does not exist."""
    from nbgrader.api import Gradebook, MissingEntry

    totals: dict[str, tuple[float, dict[str, float], bool]] = {}
    if not _gradebook_exists(course.db_url):
        return 0.0, [], totals, notebooks
    with Gradebook(course.db_url, course_id=course.course_id) as gb:
        try:
            gb_assignment = gb.find_assignment(assignment)
        except MissingEntry:
            return 0.0, [], totals, notebooks
        notebooks = notebooks + sorted(n.name for n in gb_assignment.notebooks
                                       if n.name not in notebooks)
        submissions = gb.assignment_submissions(assignment)
        for sub in submissions:
            totals[sub.student_id] = (float(sub.score),
                                      {nb.name: float(nb.score) for nb in sub.notebooks},
                                      bool(sub.needs_manual_grade))
        cells = _cell_rates(gb_assignment, submissions, notebooks)
        return float(gb_assignment.max_score), cells, totals, notebooks


def _cell_rates(gb_assignment, submissions, notebooks: list[str]) -> list[CellRate]:
    """Full/partial/zero counts per autograded test cell (grade cells of type code)."""
    by_cell: dict[tuple[str, str], list[float]] = {}
    for sub in submissions:
        for nb in sub.notebooks:
            for grade in nb.grades:
                if grade.cell_type == "code":
                    by_cell.setdefault((nb.name, grade.name), []).append(grade.auto_score or 0.0)
    rates = []
    for name in notebooks:
        gb_notebook = next((n for n in gb_assignment.notebooks if n.name == name), None)
        if gb_notebook is None:
            continue
        for cell in gb_notebook.grade_cells:
            if cell.cell_type != "code":
                continue
            points = by_cell.get((name, cell.name), [])
            top = float(cell.max_score)
            full = sum(p >= top - _TOL for p in points)
            zero = sum(p <= _TOL for p in points)
            rates.append(CellRate(
                notebook=name, cell=cell.name, max_score=top, full=full,
                partial=len(points) - full - zero, zero=zero,
                mean=float(np.mean(points)) if points else 0.0,
            ))
    return rates


def _student_result(student: str, notebooks: list[str], autograded: Path,
                    total: tuple[float, dict[str, float], bool] | None,
                    run: dict | None) -> StudentResult:
    """One student's status, scores, diagnoses and flags."""
    diagnoses: set[str] = set()
    flags: list[tuple[str, str]] = list(_run_flags(run)) if run else []
    missing = []
    for name in notebooks:
        path = autograded / f"{name}.ipynb"
        if not path.is_file():
            missing.append(name)
            continue
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception as exc:  # any unreadable notebook is reported, never a crash
            flags.append(("malformed-notebook", f"autograded {path.name} is unreadable: {exc}"))
            continue
        diagnoses |= notebook_diagnoses(nb)
        flags += trusted_flags(nb)  # never text that looks like a flag: only the grader writes these

    if run:
        status, reason = str(run.get("status", GRADED)), str(run.get("reason", ""))
    elif len(missing) == len(notebooks):
        status = NOT_GRADED
        reason = f"no autograded notebook in {autograded.parent.parent.name}/{student}/"
    else:
        status, reason = GRADED, ""
    # a timeout or crash explains a missing notebook already; a "graded" status does not
    if missing and status == GRADED and not any(k == "missing-notebook" for k, _ in flags):
        flags.append(("missing-notebook", "no autograded " + ", ".join(
            f"{m}.ipynb" for m in missing)))

    graded = total is not None and status != NOT_GRADED
    return StudentResult(
        student=student,
        status=status,
        score=total[0] if graded else None,
        notebook_scores={n: total[1].get(n) if graded else None for n in notebooks},
        diagnoses=sorted(diagnoses, key=_mistake_number),
        flags=list(dict.fromkeys(flags)),
        reason=" ".join(reason.split()),
        manual_pending=bool(total[2]) if graded else False,
    )


