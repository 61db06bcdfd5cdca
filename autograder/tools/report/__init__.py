"""The grade report of one assignment: ``python -m autograder report ASSIGNMENT``.

After grading, this writes ``reports/<assignment>/report.html`` (self-contained: plain CSS, the
figure embedded as a base64 PNG, no JavaScript, nothing fetched from the network) and
``reports/<assignment>/report.csv`` (one row per student). The report shows:

- a histogram of the students' total scores;
- per-test-cell pass rates (how many students got full, partial and zero points on each
  autograded test cell);
- an item analysis of every graded cell (:mod:`.items`): mean score, share at full marks,
  discrimination (corrected item-total correlation) and the misconceptions diagnosed, with a
  heat map of students × cells and misconceptions × cells;
- a link to ``similarity.html`` when ``python -m autograder similarity`` has written it;
- per-mistake counts: how many students were diagnosed with each misconception (the hidden
  checks' records in the trusted metadata, :func:`autograder.notebooks.diagnoses`; text in an
  output that looks like a diagnosis is only text), titled from the instructor catalogue
  ``autograder/MISCONCEPTIONS.md``;
- flagged submissions with their reasons: the flags the trusted grading process recorded in
  the autograded notebooks' metadata (:func:`autograder.notebooks.trusted_flags`; text in an
  output that looks like a flag is only text), the per-student status and
  flags of the parallel runner (``reports/<assignment>/runs.json``, optional), and students whose
  submission in ``submitted/`` has no autograded notebook (not graded).

Scores come from nbgrader's gradebook (:class:`nbgrader.api.Gradebook`, at the course's
``CourseDirectory.db_url``); diagnoses (the checks' records) and flags from the trusted
metadata of the autograded notebooks, both read through :mod:`autograder.notebooks`. Collecting the data
(:mod:`.data`, :func:`collect`, which returns a plain :class:`ReportData`) is kept apart from
rendering it (:mod:`.render`: :func:`render_html` from a Jinja2 template, :func:`write_csv`).
This package's ``__init__`` is the facade and the command line.
It may import ``autograder.course_dir``, ``autograder.notebooks`` and
``course`` (the plot style); nothing imports it but the ``python -m autograder`` commands, the
demo and the tests.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from autograder.course_dir import ROOT
from autograder.tools.report.data import (
    CATALOGUE,
    GRADED,
    NOT_GRADED,
    RUNS_FILE,
    CellRate,
    ReportData,
    StudentResult,
    collect,
    misconception_titles,
    read_runs,
)
from autograder.tools.report.render import (
    TEMPLATE,
    csv_rows,
    png_data_uri,
    render_html,
    score_histogram,
    summary,
    write_csv,
    write_report,
)

__all__ = [
    "CATALOGUE", "GRADED", "NOT_GRADED", "RUNS_FILE", "TEMPLATE", "CellRate", "ReportData",
    "StudentResult", "collect", "csv_rows", "main", "misconception_titles", "png_data_uri",
    "read_runs", "render_html", "score_histogram", "summary", "write_csv", "write_report",
]


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
