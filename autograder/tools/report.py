"""The grade report of one assignment: ``python -m autograder report ASSIGNMENT``.

After grading, this writes ``reports/<assignment>/report.html`` (self-contained: plain CSS, the
figure embedded as a base64 PNG, no JavaScript, nothing fetched from the network) and
``reports/<assignment>/report.csv`` (one row per student). The report shows:

- a histogram of the students' total scores;
- per-test-cell pass rates (how many students got full, partial and zero points on each
  autograded test cell);
- per-mistake counts: how many students were diagnosed with each misconception
  (``Diagnosis M<k>: ...`` lines, :func:`autograder.checks.framework.diagnoses_in`), titled from the
  instructor catalogue ``autograder/MISCONCEPTIONS.md``;
- flagged submissions with their reasons: ``Flag [kind]: reason`` lines
  (:func:`autograder.checks.framework.flags_in`) in the autograded notebooks, the per-student status and
  flags of the parallel runner (``reports/<assignment>/runs.json``, optional), and students whose
  submission in ``submitted/`` has no autograded notebook (not graded).

Scores come from nbgrader's gradebook (:class:`nbgrader.api.Gradebook`, at the course's
``CourseDirectory.db_url``); diagnoses and flags come from the autograded notebooks' outputs
(stream text, and the ``ename``/``evalue``/``traceback`` of error outputs). Collecting the data
(:func:`collect`, which returns a plain :class:`ReportData`) is kept apart from rendering it
(:func:`render_html`, :func:`write_csv`).
"""

from __future__ import annotations

import argparse
import base64
import csv
import functools
import glob
import io
import json
import math
import re
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib as mpl
import nbformat
import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from autograder.course_dir import ROOT, assignments, course_directory
from autograder.notebooks import diagnoses as notebook_diagnoses
from autograder.notebooks import trusted_flags

#: The instructor copy of the misconception catalogue; its table names each mistake.
CATALOGUE = ROOT / "autograder" / "MISCONCEPTIONS.md"
#: Per-run status written by the parallel runner, next to the report.
RUNS_FILE = "runs.json"
GRADED = "graded"
NOT_GRADED = "not graded"
#: Scores within this many points of a bound count as on it (gradebook floats such as 6.2200001).
_TOL = 1e-9
_CATALOGUE_ROW = re.compile(r"^\|\s*(M\d+)\s*\|\s*([^|]*?)\s*\|", re.MULTILINE)


# ---------------------------------------------------------------------------------------- data
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
    from nbgrader.api import Gradebook, MissingEntry

    root = Path(root).resolve()
    course = _course_directory(root)
    known = assignments(root)
    if assignment not in known:
        raise ValueError(f"unknown assignment {assignment!r}; the course has: {', '.join(known)}")
    notebooks = [Path(known[assignment]).stem]
    runs, notes = read_runs(root / "reports" / assignment / RUNS_FILE, assignment)
    run_students = {k: v for k, v in runs["students"].items() if isinstance(v, dict)} if runs else {}

    max_score = 0.0
    cells: list[CellRate] = []
    totals: dict[str, tuple[float, dict[str, float], bool]] = {}
    if _gradebook_exists(course.db_url):
        with Gradebook(course.db_url, course_id=course.course_id) as gb:
            try:
                gb_assignment = gb.find_assignment(assignment)
            except MissingEntry:
                gb_assignment = None
            if gb_assignment is not None:
                notebooks += sorted(n.name for n in gb_assignment.notebooks if n.name not in notebooks)
                max_score = float(gb_assignment.max_score)
                submissions = gb.assignment_submissions(assignment)
                for sub in submissions:
                    totals[sub.student_id] = (
                        float(sub.score),
                        {nb.name: float(nb.score) for nb in sub.notebooks},
                        bool(sub.needs_manual_grade),
                    )
                cells = _cell_rates(gb_assignment, submissions, notebooks)

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
    )


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


# ----------------------------------------------------------------------------------- rendering
def score_histogram(scores: list[float], max_score: float, assignment: str) -> Figure:
    """Histogram of total scores, in the course's colour-blind-safe style.

    Parameters
    ----------
    scores : list of float
        Total scores in points, one per graded student.
    max_score : float
        The assignment's maximum in points; the x axis spans ``[0, max_score]``.
    assignment : str
        Shown in the title.

    Returns
    -------
    matplotlib.figure.Figure
        On an Agg canvas, made without pyplot (no global figure state).
    """
    from course.plots import COLORS, finish, set_style

    top = max_score if max_score > 0 else max([*scores, 1.0])
    # one bin per point for small maxima, at most 20 bins otherwise
    edges = np.linspace(0.0, top, int(np.clip(math.ceil(top), 5, 20)) + 1)
    with mpl.rc_context():
        set_style()
        fig = Figure(figsize=(6.4, 3.6), layout="constrained")
        FigureCanvasAgg(fig)  # Agg, whatever backend pyplot may have chosen
        ax = fig.add_subplot()
        ax.hist(np.clip(scores, 0.0, top), bins=edges, color=COLORS[0], edgecolor="white",
                label=f"{len(scores)} students")
        if scores:
            mean = statistics.fmean(scores)
            ax.axvline(mean, color=COLORS[3], linestyle="--", label=f"mean {mean:.3g}")
        ax.set_xlim(0.0, top)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        finish(ax, f"{assignment}: total scores", f"total score [points out of {top:g}]",
               "students [count]", legend=False)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: never hides a bar
    return fig


def png_data_uri(fig: Figure) -> str:
    """The figure as a ``data:image/png;base64,...`` URI, to embed in an offline HTML page."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _num(x: float | None) -> str:
    """A score for humans and CSV: up to 6 decimals, no float noise (6.220000000000001 -> 6.22)."""
    return "" if x is None else f"{round(x, 6):.10g}"


def _code_spans(title: str) -> Markup:
    """A catalogue title with its `code` spans as ``<code>`` elements, everything else escaped."""
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(title))))


def _pass_rate(cell: CellRate) -> str:
    """Share of submissions with full points on a test cell, as a percentage."""
    n = cell.full + cell.partial + cell.zero
    return f"{100 * cell.full / n:.0f}%" if n else "-"


#: The report's page template (autoescaped), next to this module.
TEMPLATE = Path(__file__).resolve().parent / "templates" / "report.html.j2"


@functools.lru_cache(maxsize=1)
def _template():
    env = Environment(loader=FileSystemLoader(TEMPLATE.parent), autoescape=True,
                      undefined=StrictUndefined, keep_trailing_newline=True)
    env.filters["num"] = _num
    return env.get_template(TEMPLATE.name)


def summary(data: ReportData) -> str:
    """One line: how many students, graded, flagged, not graded, and the mean score."""
    n = len(data.students)
    if n == 0:
        return f"{data.assignment}: no submissions yet."
    graded = sum(s.status == GRADED for s in data.students)
    not_graded = sum(s.status == NOT_GRADED for s in data.students)
    line = (f"{data.assignment}: {n} students, {graded} graded, {len(data.flagged)} flagged, "
            f"{not_graded} not graded")
    if data.scores:
        line += f"; mean score {statistics.fmean(data.scores):.3g} / {data.max_score:g}"
    counts = data.mistake_counts()
    if counts:
        line += "; mistakes (students): " + ", ".join(f"{m} {len(who)}" for m, _, who in counts)
    return line + "."


def render_html(data: ReportData) -> str:
    """The report as one self-contained HTML page (no scripts, no external resources), rendered
    from ``templates/report.html.j2`` with autoescaping: student-controlled text (reasons,
    ids) is always escaped."""
    n = len(data.students)
    flag_rows = []
    for s in data.flagged:
        if s.status != GRADED:
            flag_rows.append([s.student, s.status, s.status, s.reason])
        for kind, reason in s.flags:
            flag_rows.append([s.student, s.status,
                              Markup('<span class="flag">{}</span>').format(kind), reason])
    return _template().render(
        data=data,
        summary=summary(data),
        pending=sum(s.manual_pending for s in data.students),
        histogram=png_data_uri(score_histogram(data.scores, data.max_score, data.assignment))
        if data.students and data.scores else None,
        cell_rows=[[c.notebook, Markup("<code>{}</code>").format(c.cell), _num(c.max_score),
                    c.full, c.partial, c.zero, _pass_rate(c), _num(c.mean)] for c in data.cells],
        mistake_rows=[[m, _code_spans(title), len(who), f"{100 * len(who) / n:.0f}%",
                       ", ".join(who)] for m, title, who in data.mistake_counts()],
        flag_rows=flag_rows,
        student_rows=[[s.student, s.status, _num(s.score), " ".join(s.diagnoses),
                       " ".join(dict.fromkeys(k for k, _ in s.flags))] for s in data.students],
    )


def csv_rows(data: ReportData) -> list[dict[str, str]]:
    """The CSV's rows: student, score, max_score, one column per notebook, diagnoses, flags, status.

    Notebook columns are named ``<notebook>.ipynb``; diagnoses and flag kinds are space-separated.
    """
    rows = []
    for s in data.students:
        row = {"student": s.student, "score": _num(s.score), "max_score": _num(data.max_score)}
        row.update({f"{n}.ipynb": _num(s.notebook_scores.get(n)) for n in data.notebooks})
        row["diagnoses"] = " ".join(s.diagnoses)
        row["flags"] = " ".join(dict.fromkeys(k for k, _ in s.flags))
        row["status"] = s.status
        rows.append(row)
    return rows


def write_csv(data: ReportData, path: Path) -> None:
    """Write :func:`csv_rows` (with a header, also when there are no students) to ``path``."""
    fields = ["student", "score", "max_score", *(f"{n}.ipynb" for n in data.notebooks),
              "diagnoses", "flags", "status"]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(csv_rows(data))


def write_report(data: ReportData, out: Path) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.csv`` into ``out`` (created); return their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    html_path, csv_path = out / "report.html", out / "report.csv"
    html_path.write_text(render_html(data), encoding="utf-8")
    write_csv(data, csv_path)
    return html_path, csv_path


def main(argv: list[str] | None = None) -> int:
    """``python -m autograder report ASSIGNMENT [--root DIR] [--out DIR]``; returns the exit code.

    Prints a one-line summary and the two paths written. Exit code 2 (with a message on stderr)
    for an unknown assignment or a root that is not a course directory; 0 otherwise, also when
    there are no submissions yet.
    """
    parser = argparse.ArgumentParser(
        prog="python -m autograder report",
        description="Write reports/<assignment>/report.html and report.csv after grading.",
    )
    parser.add_argument("assignment", help="assignment name, as in nbgrader_config.py")
    parser.add_argument("--root", type=Path, default=ROOT,
                        help="nbgrader course directory (default: this repository)")
    parser.add_argument("--out", type=Path, default=None,
                        help="directory for report.html and report.csv "
                             "(default: ROOT/reports/ASSIGNMENT)")
    args = parser.parse_args(argv)
    try:
        data = collect(args.assignment, args.root)
    except ValueError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    out = args.out if args.out is not None else Path(args.root) / "reports" / args.assignment
    html_path, csv_path = write_report(data, out)
    print(summary(data))
    print(f"wrote {html_path} and {csv_path.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
