"""Rendering the report's data: the score histogram, the HTML page (a Jinja2 template with
autoescape, ``autograder/tools/templates/report.html.j2``) and the CSV."""

from __future__ import annotations

import base64
import functools
import io
import math
import re
import statistics
from pathlib import Path

import matplotlib as mpl
import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from autograder.tools.csv_safe import write_dicts
from autograder.tools.report.data import GRADED, NOT_GRADED, CellRate, ReportData
from autograder.tools.report.items import ItemAnalysis, item_figure


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


def _mean(x: float | None) -> str:
    """A mean in points for a person to read: two decimals at most (1.514286 -> 1.51)."""
    return "" if x is None else _num(round(x, 2))


def item_rows(analysis: ItemAnalysis | None) -> list[list]:
    """The item-analysis table: cell, kind, points, n, mean, share at full marks,
    discrimination (two decimals; "-" when undefined), misconceptions (``M1 ×3``)."""
    rows = []
    for item in analysis.items if analysis else []:
        rows.append([
            Markup("<code>{}</code>").format(item.cell), "written" if item.written else "test",
            _num(item.max_score), item.n, _mean(item.mean),
            "-" if item.full_share is None else f"{100 * item.full_share:.0f}%",
            "-" if item.discrimination is None else f"{item.discrimination:.2f}",
            ", ".join(f"{m} ×{k}" for m, k in item.misconceptions.items()) or "-",
        ])
    return rows


def _pass_rate(cell: CellRate) -> str:
    """Share of submissions with full points on a test cell, as a percentage."""
    n = cell.full + cell.partial + cell.zero
    return f"{100 * cell.full / n:.0f}%" if n else "-"


#: Pages that other commands write beside the report, linked from it when they are there.
PAGES = [("similarity.html", "Similarity of submissions (python -m autograder similarity)")]
#: The report's page template (autoescaped), in ``autograder/tools/templates/``.
TEMPLATE = Path(__file__).resolve().parent.parent / "templates" / "report.html.j2"


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


def render_html(data: ReportData, links: list[tuple[str, str]] | None = None) -> str:
    """The report as one self-contained HTML page (no scripts, no external resources), rendered
    from ``templates/report.html.j2`` with autoescaping: student-controlled text (reasons,
    ids) is always escaped. ``links``: ``(file name, text)`` of pages beside it (similarity)."""
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
                    c.full, c.partial, c.zero, _pass_rate(c), _mean(c.mean)] for c in data.cells],
        item_rows=item_rows(data.items),
        item_figure=png_data_uri(item_figure(data.items, data.assignment))
        if data.items and data.items.students and data.items.items else None,
        links=links or [],
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
        write_dicts(handle, fields, csv_rows(data))  # student ids are neutralized (CSV injection)


def write_report(data: ReportData, out: Path) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.csv`` into ``out`` (created); return their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    html_path, csv_path = out / "report.html", out / "report.csv"
    links = [(name, text) for name, text in PAGES if (out / name).is_file()]
    html_path.write_text(render_html(data, links), encoding="utf-8")
    write_csv(data, csv_path)
    return html_path, csv_path


