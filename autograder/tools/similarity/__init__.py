"""``python -m autograder similarity ASSIGNMENT``: how much answer code each pair of submissions
shares, for an instructor to look at side by side. It never accuses anyone.

Every pair of graded submissions is compared cell by cell, over the answer cells only (nbgrader
``solution`` code cells), after the release's own text of each cell is taken out: the provided
``def`` line and stub make nobody similar. The fingerprints and their normalization (renamed
variables, reordered statements and changed comments make no difference) are
:mod:`.fingerprint`'s.

The similarity of a pair is the share of their fingerprinted answer tokens that lie in runs the
two share: ``sum(shared_a + shared_b) / sum(tokens_a + tokens_b)`` over the answer cells, in
[0, 1]. 0 for the untouched release, 1 for the same code under other names.

It writes ``reports/ASSIGNMENT/similarity.csv`` (``student_a,student_b,similarity,cells``, every
pair, highest first; ``cells`` lists the answer cells that share code, with their own
similarity) and ``similarity.html`` (the highest pairs with their shared code marked side by
side, and what the number measures), which the grade report links. Submissions are read from
``autograded/`` (the grader's staged copies: regular files of bounded size); a notebook that is
missing, not a regular file, too large or unreadable is named and left out.

This package may import ``autograder.course_dir``, ``autograder.tools.csv_safe``, nbformat,
Jinja2 and copydetect; nothing imports it but ``python -m autograder similarity`` and the tests.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import os
import stat
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from autograder.course_dir import ROOT, assignments, course_directory
from autograder.tools.csv_safe import SafeWriter
from autograder.tools.similarity.fingerprint import (
    CellPrint,
    fingerprint,
    marked_segments,
    shared_slices,
    shared_tokens,
    template_hashes,
)

#: The largest autograded notebook read (bytes); the grader's output limits keep them far below.
MAX_NOTEBOOK_BYTES = 64 * 1024 * 1024
#: Pairs shown side by side in the HTML page (the CSV has them all).
TOP_PAIRS = 20
TEMPLATE = Path(__file__).resolve().parent.parent / "templates" / "similarity.html.j2"
CSV_NAME, HTML_NAME = "similarity.csv", "similarity.html"


@dataclass
class Pair:
    """Two students, their similarity, and ``(grade_id, similarity)`` of each answer cell that
    shares code, highest first."""

    student_a: str
    student_b: str
    similarity: float
    cells: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class Similarity:
    """What :func:`compare` found: the students compared, every pair (highest first), the
    fingerprints of every answer cell, the answer cells' grade ids, and notes."""

    assignment: str
    students: list[str]
    pairs: list[Pair]
    prints: dict[str, dict[str, CellPrint]]
    cells: list[str]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def answer_cells(nb) -> dict[str, str]:
    """``{grade_id: source}`` of a notebook's answer code cells (nbgrader ``solution``)."""
    out = {}
    for cell in nb.get("cells", []):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.get("cell_type") == "code" and isinstance(meta, dict) and meta.get("solution"):
            source = cell.get("source", "")
            out[str(meta.get("grade_id"))] = "".join(source) if isinstance(source, list) else str(source)
    return out


def read_notebook(path: Path):
    """The notebook at ``path``, read without following a link or blocking on a FIFO.

    Raises
    ------
    ValueError
        If it is not a regular file, is larger than :data:`MAX_NOTEBOOK_BYTES` or is not a
        readable notebook (the message says which).
    """
    info = os.lstat(path)
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{path.name} is not a regular file")
    if info.st_size > MAX_NOTEBOOK_BYTES:
        raise ValueError(f"{path.name} is larger than {MAX_NOTEBOOK_BYTES // 2**20} MiB")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, encoding="utf-8") as fh:
        try:
            return nbformat.read(fh, as_version=4)
        except Exception as exc:  # malformed JSON or schema: named, never a crash
            raise ValueError(f"{path.name} is not a readable notebook ({exc})") from None


def compare_prints(a: dict[str, CellPrint], b: dict[str, CellPrint], cells: list[str]):
    """The similarity of two submissions' cells, and ``(grade_id, similarity)`` of each cell that
    shares code."""
    shared = total = 0
    matching = []
    for cell in cells:
        ca, cb = a.get(cell), b.get(cell)
        size = (ca.coverage if ca else 0) + (cb.coverage if cb else 0)
        total += size
        if ca is None or cb is None:
            continue
        sa, sb = shared_tokens(ca, cb)
        shared += sa + sb
        if sa + sb:
            matching.append((cell, min(1.0, (sa + sb) / size)))
    matching.sort(key=lambda item: -item[1])
    return (min(1.0, shared / total) if total else 0.0), matching


def compare(assignment: str, root: Path = ROOT) -> Similarity:
    """Fingerprint every autograded submission of ``assignment`` and compare every pair.

    Raises
    ------
    ValueError
        If ``root`` is not a course directory, the assignment is unknown, or its release
        notebook (the template taken out of every cell) is missing.
    """
    start = time.perf_counter()
    root = Path(root).resolve()
    known = assignments(root)
    if assignment not in known:
        raise ValueError(f"unknown assignment {assignment!r}; the course has: {', '.join(known)}")
    notebook = known[assignment]
    release = root / "release" / assignment / notebook
    if not release.is_file():
        raise ValueError(f"{release} is missing: run `nbgrader generate_assignment {assignment}`")
    templates = answer_cells(read_notebook(release))
    boilerplate = {cell: template_hashes(text) for cell, text in templates.items()}
    course = course_directory(root)
    graded = Path(course.root) / course.autograded_directory
    prints: dict[str, dict[str, CellPrint]] = {}
    notes = []
    for folder in sorted(graded.iterdir()) if graded.is_dir() else []:
        path = folder / assignment / notebook
        if not path.exists() and not path.is_symlink():
            continue
        try:
            answers = answer_cells(read_notebook(path))
        except (OSError, ValueError) as exc:
            notes.append(f"{folder.name}: left out, {exc}")
            continue
        prints[folder.name] = {cell: fingerprint(answers.get(cell, ""), boilerplate[cell])
                               for cell in templates}
    students = sorted(prints)
    pairs = []
    for a, b in itertools.combinations(students, 2):
        value, matching = compare_prints(prints[a], prints[b], list(templates))
        pairs.append(Pair(a, b, value, matching))
    pairs.sort(key=lambda p: (-p.similarity, p.student_a, p.student_b))
    return Similarity(assignment, students, pairs, prints, list(templates), notes,
                      time.perf_counter() - start)


def write_csv(result: Similarity, path: Path) -> None:
    """``student_a,student_b,similarity,cells``: every pair, highest first; ``cells`` is
    ``grade_id similarity`` of each answer cell that shares code, ``; ``-separated."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = SafeWriter(fh)  # student ids are neutralized (CSV injection)
        writer.writerow(["student_a", "student_b", "similarity", "cells"])
        for p in result.pairs:
            writer.writerow([p.student_a, p.student_b, f"{p.similarity:.2f}",
                             "; ".join(f"{cell} {value:.2f}" for cell, value in p.cells)])


@functools.lru_cache(maxsize=1)
def _template():
    env = Environment(loader=FileSystemLoader(TEMPLATE.parent), autoescape=True,
                      undefined=StrictUndefined, keep_trailing_newline=True)
    return env.get_template(TEMPLATE.name)


def render_html(result: Similarity, top: int = TOP_PAIRS) -> str:
    """The page: what the number measures, the highest ``top`` pairs with a similarity above 0,
    and for each the answer cells they share, side by side with the shared code marked."""
    shown = []
    for pair in [p for p in result.pairs if p.similarity > 0][:top]:
        cells = []
        for cell, value in pair.cells:
            a, b = result.prints[pair.student_a][cell], result.prints[pair.student_b][cell]
            slices_a, slices_b = shared_slices(a, b)
            cells.append({"cell": cell, "similarity": value,
                          "a": marked_segments(a, slices_a), "b": marked_segments(b, slices_b)})
        shown.append({"pair": pair, "cells": cells})
    return _template().render(result=result, shown=shown, top=top,
                              n_pairs=len(result.pairs))


def write(result: Similarity, out: Path, top: int = TOP_PAIRS) -> tuple[Path, Path]:
    """Write ``similarity.csv`` and ``similarity.html`` into ``out`` (created)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(result, out / CSV_NAME)
    (out / HTML_NAME).write_text(render_html(result, top), encoding="utf-8")
    return out / CSV_NAME, out / HTML_NAME


def main(argv: list[str] | None = None) -> int:
    """``python -m autograder similarity ASSIGNMENT [--root DIR] [--top N]``; the exit code (2
    for an unknown assignment or course, 0 otherwise)."""
    parser = argparse.ArgumentParser(
        prog="python -m autograder similarity",
        description="Write reports/ASSIGNMENT/similarity.csv and similarity.html: how much "
                    "answer code each pair of submissions shares.")
    parser.add_argument("assignment", help="assignment name, as in nbgrader_config.py")
    parser.add_argument("--root", type=Path, default=ROOT, help="nbgrader course directory")
    parser.add_argument("--top", type=int, default=TOP_PAIRS,
                        help=f"pairs shown side by side in the page (default {TOP_PAIRS})")
    args = parser.parse_args(argv)
    try:
        result = compare(args.assignment, args.root)
    except ValueError as exc:
        print(f"similarity: {exc}", file=sys.stderr)
        return 2
    csv_path, html_path = write(result, Path(args.root) / "reports" / args.assignment, args.top)
    for note in result.notes:
        print(f"note: {note}")
    top = result.pairs[0] if result.pairs else None
    print(f"{args.assignment}: {len(result.students)} submissions, {len(result.pairs)} pairs "
          f"compared in {result.seconds:.1f} s"
          + (f"; highest {top.similarity:.2f} ({top.student_a}, {top.student_b})" if top else ""))
    print(f"wrote {csv_path} and {html_path.name}")
    return 0
