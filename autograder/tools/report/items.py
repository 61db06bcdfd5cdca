"""Item analysis of one assignment: how each graded cell did, as classical test theory reads it.

For every graded cell (autograded test cells and written answers) over the submissions in the
gradebook:

* **mean** score in points, and the **share at full marks**;
* **discrimination**: the corrected item-total correlation, Pearson's r between the cell's score
  and the rest of the student's total (the assignment's total without this cell), so the cell is
  not correlated with itself (Crocker and Algina, *Introduction to Classical and Modern Test
  Theory*, 1986, ch. 14; "corrected item-total correlation"). Near 0 or negative: the cell does
  not separate students who did well on the rest from those who did not. None when fewer than
  three students have a score on it, or when its scores or the rest are all equal;
* the **misconceptions** its hidden check diagnosed, with how many students (read through
  :func:`autograder.notebooks.diagnoses` from each autograded notebook's cell).

A written answer still waiting for manual grading has no score yet: that student is left out of
the cell's numbers (``n`` says how many count), while their total, nbgrader's, counts it as 0.
The figure is a heat map of students (rows, by total score) × cells, coloured by the share of
the cell's points, with the misconceptions × cells counts beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib as mpl
import nbformat
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from autograder.notebooks import diagnoses as notebook_diagnoses

#: Scores within this many points of the maximum count as full marks (gradebook floats).
_TOL = 1e-9


@dataclass
class ItemStats:
    """One graded cell's item analysis; ``written`` for a manually graded answer."""

    notebook: str
    cell: str
    max_score: float
    written: bool
    n: int
    mean: float | None
    full_share: float | None
    discrimination: float | None
    misconceptions: dict[str, int] = field(default_factory=dict)


@dataclass
class ItemAnalysis:
    """The item analysis of an assignment: per cell, and the students × cells matrix behind it
    (``scores[i][j]``: student ``i``'s points on cell ``j``, None while a written answer waits)."""

    items: list[ItemStats]
    students: list[str]
    scores: list[list[float | None]]


def corrected_item_total(item: list[float], totals: list[float]) -> float | None:
    """Pearson's r between ``item`` and ``totals - item`` (the rest of each student's total).

    Parameters
    ----------
    item, totals : list of float
        One value per student, in points, the same length.

    Returns
    -------
    float or None
        In [-1, 1]; None for fewer than three students or a constant item or rest.

    Raises
    ------
    ValueError
        If the two lists differ in length.
    """
    if len(item) != len(totals):
        raise ValueError(f"item and totals must have the same length, got {len(item)} and "
                         f"{len(totals)}")
    if len(item) < 3:
        return None
    x = np.asarray(item, dtype=float)
    rest = np.asarray(totals, dtype=float) - x
    dx, dy = x - x.mean(), rest - rest.mean()
    denominator = math.sqrt(float(dx @ dx) * float(dy @ dy))
    if denominator <= _TOL:
        return None
    return float(np.clip(float(dx @ dy) / denominator, -1.0, 1.0))


def analyse(cells: list[tuple[str, str, float, bool]], students: list[str],
            scores: list[list[float | None]], totals: list[float],
            diagnosed: dict[tuple[str, str], dict[str, int]]) -> ItemAnalysis:
    """The item analysis from plain numbers (no gradebook): see the module docstring.

    Parameters
    ----------
    cells : list of (notebook, cell, max_score, written)
    students : list of str
    scores : list of list of float or None
        ``scores[i][j]``: student ``i`` on cell ``j``; None while a written answer waits.
    totals : list of float
        Each student's total (nbgrader's: a waiting answer counts 0).
    diagnosed : dict
        ``{(notebook, cell): {"M1": count, ...}}``.
    """
    items = []
    for j, (notebook, cell, top, written) in enumerate(cells):
        rows = [i for i in range(len(students)) if scores[i][j] is not None]
        values = [float(scores[i][j]) for i in rows]
        n = len(values)
        items.append(ItemStats(
            notebook=notebook, cell=cell, max_score=top, written=written, n=n,
            mean=float(np.mean(values)) if n else None,
            full_share=sum(v >= top - _TOL for v in values) / n if n and top > 0 else None,
            discrimination=corrected_item_total(values, [totals[i] for i in rows]),
            misconceptions=dict(sorted(diagnosed.get((notebook, cell), {}).items(),
                                       key=lambda kv: (-kv[1], int(kv[0][1:])))),
        ))
    return ItemAnalysis(items, students, scores)


def cell_diagnoses(nb, grade_id: str) -> set[str]:
    """The misconception ids the hidden check of one test cell diagnosed, read with
    :func:`autograder.notebooks.diagnoses` on that cell alone."""
    cells = [c for c in nb.get("cells", [])
             if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id]
    return notebook_diagnoses({**nb, "cells": cells}) if cells else set()


def from_gradebook(gb_assignment, submissions, notebooks: list[str],
                   autograded: dict[str, Path]) -> ItemAnalysis:
    """The item analysis of an assignment from nbgrader's gradebook objects.

    ``autograded`` maps a student to their autograded folder of this assignment; a notebook
    that is missing or unreadable gives no diagnoses (the report flags it elsewhere).
    """
    cells = []
    for name in notebooks:
        gb_notebook = next((n for n in gb_assignment.notebooks if n.name == name), None)
        for cell in gb_notebook.grade_cells if gb_notebook else []:
            cells.append((name, cell.name, float(cell.max_score), cell.cell_type != "code"))
    position = {(nb, cell): j for j, (nb, cell, _, _) in enumerate(cells)}
    students, scores, totals = [], [], []
    diagnosed: dict[tuple[str, str], dict[str, int]] = {}
    for sub in sorted(submissions, key=lambda s: s.student_id):
        row: list[float | None] = [0.0] * len(cells)
        for nb in sub.notebooks:
            for grade in nb.grades:
                j = position.get((nb.name, grade.name))
                if j is not None:
                    row[j] = None if grade.needs_manual_grade else float(grade.score)
            _count_diagnoses(autograded.get(sub.student_id), nb.name, cells, diagnosed)
        students.append(sub.student_id)
        scores.append(row)
        totals.append(float(sub.score))
    return analyse(cells, students, scores, totals, diagnosed)


def _count_diagnoses(folder: Path | None, notebook: str, cells, diagnosed) -> None:
    path = folder / f"{notebook}.ipynb" if folder else None
    if path is None or not path.is_file():
        return
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception:  # unreadable: flagged by the report's student rows, no diagnoses here
        return
    for name, cell, _, written in cells:
        if name == notebook and not written:
            for mistake in cell_diagnoses(nb, cell):
                counts = diagnosed.setdefault((name, cell), {})
                counts[mistake] = counts.get(mistake, 0) + 1


def item_figure(analysis: ItemAnalysis, assignment: str) -> Figure:
    """Students × cells heat map (share of each cell's points, students by total, best on top),
    and misconceptions × cells (how many students), side by side.

    Returns
    -------
    matplotlib.figure.Figure
        On an Agg canvas, made without pyplot; colour-blind-safe sequential colour maps
        (cividis, and Blues for counts). A written answer still waiting is grey.
    """
    from course.plots import set_style

    labels = [item.cell for item in analysis.items]
    tops = np.array([item.max_score or 1.0 for item in analysis.items])
    share = np.array([[np.nan if v is None else v for v in row] for row in analysis.scores],
                     dtype=float).reshape(len(analysis.students), len(labels)) / tops
    order = np.argsort(-np.nansum(share * tops, axis=1), kind="stable")
    mistakes = sorted({m for item in analysis.items for m in item.misconceptions},
                      key=lambda m: int(m[1:]))
    counts = np.array([[item.misconceptions.get(m, 0) for item in analysis.items]
                       for m in mistakes], dtype=float).reshape(len(mistakes), len(labels))
    height = min(12.0, 2.2 + 0.18 * len(analysis.students))
    with mpl.rc_context():
        set_style()
        fig = Figure(figsize=(6.4 + 0.5 * len(labels), height), layout="constrained")
        FigureCanvasAgg(fig)
        left, right = fig.subplots(1, 2, width_ratios=[3, 2]) if mistakes else (fig.add_subplot(), None)
        cmap = mpl.colormaps["cividis"].with_extremes(bad="#bbbbbb")
        image = left.imshow(share[order], aspect="auto", cmap=cmap, vmin=0, vmax=1,
                            interpolation="nearest")
        left.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        n = len(analysis.students)
        if n <= 40:
            left.set_yticks(range(n), [analysis.students[i] for i in order])
        left.set_ylabel(f"students ({n}), highest total on top")
        left.set_title(f"{assignment}: share of each cell's points")
        left.grid(False)
        fig.colorbar(image, ax=left, label="share of the cell's points", shrink=0.8)
        if right is not None:
            heat = right.imshow(counts, aspect="auto", cmap="Blues", vmin=0,
                                interpolation="nearest")
            right.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
            right.set_yticks(range(len(mistakes)), mistakes)
            right.set_title("misconceptions diagnosed [students]")
            right.grid(False)
            for (r, c), value in np.ndenumerate(counts):
                if value:
                    right.text(c, r, f"{value:g}", ha="center", va="center",
                               color="white" if value > counts.max() / 2 else "black")
            fig.colorbar(heat, ax=right, label="students", shrink=0.8)
    return fig


def collect_items(course, assignment: str, notebooks: list[str]) -> ItemAnalysis | None:
    """The item analysis of ``assignment`` from the course's gradebook and autograded notebooks
    (``course``: nbgrader's CourseDirectory), or None when the gradebook has no such assignment.
    The caller makes sure the gradebook exists (opening one creates it)."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(course.db_url, course_id=course.course_id) as gb:
        try:
            gb_assignment = gb.find_assignment(assignment)
        except MissingEntry:
            return None
        submissions = gb.assignment_submissions(assignment)
        folders = {s.student_id: Path(course.format_path(course.autograded_directory,
                                                         s.student_id, assignment))
                   for s in submissions}
        return from_gradebook(gb_assignment, submissions, notebooks, folders)
