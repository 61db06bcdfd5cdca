"""A submitted notebook: parsed within limits (:func:`parse_notebook`), cleaned of what nbgrader
or our preprocessors would trip over, compared with the release notebook (:func:`tampering`)
and repaired against it (:func:`repair_notebook`).

Parsing refuses what cannot be a notebook (not UTF-8 JSON, nested deeper than
:data:`MAX_JSON_DEPTH`, not nbformat 4, a cell that is not a cell). Cleaning repairs the rest
rather than let it stop a run: outputs and execution counts are dropped (nbgrader clears them
before executing anyway), so ``outputs`` that are not a list never reach a preprocessor; a cell
``id`` that is not nbformat's short string (a list, a number, a duplicate) gets a fresh one;
``metadata.tags`` that is not a list of strings (``null``) is dropped; ``attachments`` that are
not a mapping of images are dropped; ``metadata.nbgrader`` that is not a mapping is dropped.
What was repaired is said in one ``repaired-notebook`` flag.

:class:`ReleaseNotebook` is the instructor's side: the release notebook of one assignment and
what tamper detection compares against. Only notebooks the course names are ever loaded as
one (the gradebook's, or ``nbgrader_config.ASSIGNMENTS``): a learner's other notebooks in a
release folder are never read as the reference.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat.v4.rwbase import rejoin_lines

from autograder.kernel.submission.files import MAX_NOTEBOOK_BYTES, MiB, RejectedSubmission
from autograder.notebooks import strip_trusted

#: Nesting of a notebook's JSON (an nbformat 4 notebook needs about 6; widget state a few more).
MAX_JSON_DEPTH = 64
#: Tags that change how a cell runs; never honoured on a cell the instructor wrote or graded.
EXECUTION_TAGS = frozenset({"skip-execution", "raises-exception"})
_CELL_TYPES = ("code", "markdown", "raw")
_CELL_KEYS = ("id", "cell_type", "metadata", "source", "attachments")
_CELL_ID = re.compile(r"^[a-zA-Z0-9-_]{1,64}$")  # nbformat 4.5's pattern
_IMAGES = ("image/png", "image/jpeg", "image/gif")

Flag = tuple[str, str]


# ----------------------------------------------------------------------------- parsing
def _json_depth(value: object) -> int:
    """Nesting depth of parsed JSON, computed iteratively."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, depth)
            if depth > MAX_JSON_DEPTH:
                return depth
            items = node.values() if isinstance(node, dict) else node
            stack.extend((item, depth + 1) for item in items)
    return deepest


def _is_text(value: object) -> bool:
    return isinstance(value, str) or (isinstance(value, list)
                                      and all(isinstance(v, str) for v in value))


def parse_notebook(data: bytes, name: str, repairs: list[str] | None = None) -> nbformat.NotebookNode:
    """A submitted notebook file's bytes as a clean nbformat 4 notebook, within the limits.

    Parameters
    ----------
    data : bytes
        The file's content.
    name : str
        Its name, for the messages.
    repairs : list of str, optional
        Appended to: one phrase per repair made (see the module text).

    Returns
    -------
    NotebookNode
        Valid against nbformat's schema, with no outputs, execution counts or trusted metadata.

    Raises
    ------
    RejectedSubmission
        If it is larger than :data:`MAX_NOTEBOOK_BYTES`, not UTF-8 JSON, nested deeper than
        :data:`MAX_JSON_DEPTH`, not a version 4 notebook with a list of cells, has a cell that
        is not a notebook cell, or is still invalid after cleaning.
    """
    repairs = [] if repairs is None else repairs
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise RejectedSubmission(f"{name} is larger than {MAX_NOTEBOOK_BYTES // MiB} MiB")
    try:
        parsed = json.loads(data.decode("utf-8"))
    except RecursionError:
        raise RejectedSubmission(f"{name} is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise RejectedSubmission(f"{name} is not a notebook (not JSON: {exc})") from None
    if _json_depth(parsed) > MAX_JSON_DEPTH:
        raise RejectedSubmission(f"{name} is nested deeper than {MAX_JSON_DEPTH} levels")
    if not isinstance(parsed, dict) or parsed.get("nbformat") != 4 or not isinstance(
            parsed.get("cells"), list):
        raise RejectedSubmission(f"{name} is not an nbformat 4 notebook")
    if not isinstance(parsed.get("metadata", {}), dict):
        raise RejectedSubmission(f"{name} has notebook metadata that is not a mapping")
    for i, cell in enumerate(parsed["cells"]):
        if not (isinstance(cell, dict) and cell.get("cell_type") in _CELL_TYPES
                and isinstance(cell.get("metadata", {}), dict) and _is_text(cell.get("source"))):
            raise RejectedSubmission(f"{name}: cell {i} is not a notebook cell")
    minor = parsed.get("nbformat_minor")
    # every cell gets an id (nbformat 4.5), so a deleted cell put back never lacks one
    clean = {"nbformat": 4, "nbformat_minor": max(minor, 5) if isinstance(minor, int)
             and minor < 100 else 5, "metadata": parsed.get("metadata", {}),
             "cells": _clean_cells(parsed["cells"], repairs)}
    nb = rejoin_lines(nbformat.from_dict(clean))  # multi-line sources as one string, as read
    strip_trusted(nb)
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError:
        nb.metadata = {}  # nbgrader writes the kernelspec from the gradebook
        for cell in nb.cells:
            cell.metadata = {k: v for k, v in cell.metadata.items() if k in ("nbgrader", "tags")}
        repairs.append("metadata outside nbformat's schema dropped")
        try:
            nbformat.validate(nb)
        except nbformat.ValidationError as exc:
            first = str(exc).strip().splitlines()[0][:200]
            raise RejectedSubmission(f"{name} is not a valid notebook ({first})") from None
    return nb


def _clean_cells(cells: list[dict], repairs: list[str]) -> list[dict]:
    """The cells with only the keys a cell may have, each of the right type (see the module)."""
    out, ids = [], set()
    for i, cell in enumerate(cells):
        new = {k: cell[k] for k in _CELL_KEYS if k in cell}
        new["metadata"] = meta = dict(new.get("metadata", {}))
        cid = new.get("id")
        if not (isinstance(cid, str) and _CELL_ID.match(cid) and cid not in ids):
            if "id" in new:
                repairs.append(f"cell {i}'s id replaced (not a unique short string)")
            cid = new["id"] = _fresh_id(i, ids)
        ids.add(cid)
        if "tags" in meta and not (isinstance(meta["tags"], list)
                                   and all(isinstance(t, str) for t in meta["tags"])):
            repairs.append(f"cell {i}'s tags dropped (not a list of strings)")
            del meta["tags"]
        if "nbgrader" in meta and not isinstance(meta["nbgrader"], dict):
            repairs.append(f"cell {i}'s nbgrader metadata dropped (not a mapping)")
            del meta["nbgrader"]
        if new["cell_type"] == "code":
            new.pop("attachments", None)
            new["outputs"], new["execution_count"] = [], None
        elif "attachments" in new and not _images(new["attachments"]):
            repairs.append(f"cell {i}'s attachments dropped (not a mapping of images)")
            del new["attachments"]
        out.append(new)
    return out


def _fresh_id(index: int, taken: set[str]) -> str:
    n, cid = 0, f"cell-{index}"
    while cid in taken:
        n += 1
        cid = f"cell-{index}-{n}"
    return cid


def _images(value: object) -> bool:
    """Whether ``value`` is a cell's ``attachments``: name -> {image type: base64 text}."""
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, dict) and all(
            t in _IMAGES and _is_text(data) for t, data in v.items())
        for k, v in value.items())


# ----------------------------------------------------------------------------- the release
def grade_id(cell) -> str | None:
    """A cell's nbgrader ``grade_id``, or None."""
    meta = cell.get("metadata", {}).get("nbgrader") if isinstance(cell, dict) else None
    gid = meta.get("grade_id") if isinstance(meta, dict) else None
    return gid if isinstance(gid, str) else None


def graded_cells(nb) -> dict[str, dict]:
    """``{grade_id: cell}`` of a notebook's nbgrader cells (the first of each id)."""
    found: dict[str, dict] = {}
    for cell in nb.cells:
        gid = grade_id(cell)
        if gid is not None:
            found.setdefault(gid, cell)
    return found


@dataclass(frozen=True)
class ReleaseNotebook:
    """The instructor's view of one released notebook: its grade ids and read-only cells.

    Attributes
    ----------
    assignment, name : str
        ``release/<assignment>/<name>.ipynb``.
    grade_ids : frozenset of str
        Every nbgrader cell's id.
    locked : dict of str to str
        Read-only cell's grade id -> nbgrader checksum of the released cell.
    graded : frozenset of str
        Grade ids of test cells and written answers.
    notebook : NotebookNode
        The release notebook itself.
    """

    assignment: str
    name: str
    grade_ids: frozenset[str]
    locked: dict[str, str]
    graded: frozenset[str]
    notebook: nbformat.NotebookNode = field(compare=False, hash=False, repr=False)


def load_release(path: Path, assignment: str) -> ReleaseNotebook:
    """The release notebook at ``path`` (a file the course names; see the module text).

    Raises
    ------
    ValueError
        If it cannot be read as a notebook (the instructor's release must be regenerated).
    """
    from nbgrader.utils import compute_checksum, is_grade, is_locked

    try:
        nb = nbformat.read(path, as_version=4)
    except (OSError, ValueError) as exc:
        raise ValueError(f"the release notebook {path} cannot be read ({exc}); run "
                         f"`nbgrader generate_assignment {assignment} --force`") from None
    cells = graded_cells(nb)
    return ReleaseNotebook(
        assignment=assignment, name=Path(path).stem, grade_ids=frozenset(cells),
        locked={gid: compute_checksum(c) for gid, c in cells.items() if is_locked(c)},
        graded=frozenset(gid for gid, c in cells.items() if is_grade(c)), notebook=nb)


# ----------------------------------------------------------------------------- comparing
def tampering(nb, reference: ReleaseNotebook) -> list[Flag]:
    """``tampering`` flags for ``reference``'s read-only cells deleted or edited in ``nb``, and
    for grade cells it holds more than once (nbgrader grades the instructor's version of each,
    :func:`repair_notebook` puts deleted ones back and keeps the first of duplicates)."""
    from nbgrader.utils import compute_checksum

    cells = graded_cells(nb)
    flags: list[Flag] = []
    name = f"{reference.name}.ipynb"
    for gid, checksum in reference.locked.items():
        what = "test cell" if gid in reference.graded else "read-only cell"
        if gid not in cells:
            then = ("restored and run as the instructor wrote it" if gid in reference.graded
                    else "restored from the release")
            flags.append(("tampering", f"{name}: {what} '{gid}' was deleted; {then}"))
            continue
        try:
            same = compute_checksum(cells[gid]) == checksum
        except (KeyError, ValueError, TypeError, AttributeError):
            same = False
        if not same:
            flags.append(("tampering",
                          f"{name}: {what} '{gid}' was edited; the instructor's version was graded"))
    ids = [grade_id(c) for c in nb.cells if grade_id(c) in reference.grade_ids]
    for gid in sorted({g for g in ids if ids.count(g) > 1}):
        flags.append(("tampering", f"{name}: grade cell '{gid}' appears {ids.count(gid)} times; "
                                   "the first one was graded"))
    return flags


def repair_notebook(nb: nbformat.NotebookNode,
                    release: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``nb`` with its grade cells made to match the release notebook.

    Every grade id of the release exactly once, in the submission's order (later duplicates
    removed, deleted cells put back after the nearest earlier release cell); cell types and
    nbgrader metadata restored from the release; locked cells given the release's whole
    metadata (so tags such as ``skip-execution`` are dropped); execution tags dropped from
    answer cells; nbgrader metadata dropped from cells the release does not have; the trusted
    ``autograder`` key removed everywhere.

    Parameters
    ----------
    nb : NotebookNode
        The parsed submission (:func:`parse_notebook`); not changed.
    release : NotebookNode
        ``release/<assignment>/<notebook>.ipynb``.

    Returns
    -------
    NotebookNode
        A new notebook.
    """
    released = {gid: c for gid, c in graded_cells(release).items()}
    order = [grade_id(c) for c in release.cells if grade_id(c)]
    cells, seen = [], set()
    for cell in nb.cells:
        cell = copy.deepcopy(cell)
        gid = grade_id(cell)
        if gid is None or gid not in released:
            cell.metadata.pop("nbgrader", None)
        elif gid in seen:
            continue  # a duplicate: the first one is graded
        else:
            seen.add(gid)
            cell = _restored(cell, released[gid])
        cells.append(cell)
    for gid in order:
        if gid in seen:
            continue
        earlier = order[: order.index(gid)]
        where = max((i + 1 for i, c in enumerate(cells) if grade_id(c) in earlier), default=0)
        cells.insert(where, copy.deepcopy(released[gid]))
        seen.add(gid)
    out = copy.deepcopy(nb)
    out.cells = cells
    strip_trusted(out)
    return out


def _restored(cell, ref):
    """A submitted grade cell with the release cell's type and nbgrader metadata."""
    new = copy.deepcopy(ref) if ref.cell_type != cell.cell_type else cell
    if new is not cell:
        new.source = cell.get("source", "")
    if not ref.metadata.get("nbgrader", {}).get("solution", False):  # locked
        new.metadata = copy.deepcopy(ref.metadata)
    else:
        new.metadata["nbgrader"] = copy.deepcopy(ref.metadata["nbgrader"])
        tags = new.metadata.get("tags", [])
        tags = [t for t in tags if isinstance(t, str) and t not in EXECUTION_TAGS] if isinstance(
            tags, list) else []
        new.metadata["tags"] = tags
        if not tags:
            del new.metadata["tags"]
    if new.cell_type == "code":
        new.setdefault("outputs", [])
        new.setdefault("execution_count", None)
        new.pop("attachments", None)
    return new


def owner(nb, releases: list[ReleaseNotebook]) -> ReleaseNotebook | None:
    """The release notebook ``nb`` is a copy of: the one sharing the largest part of its grade
    ids (at least half of them), or None."""
    ids = set(graded_cells(nb))
    best = max(((len(r.grade_ids & ids) / len(r.grade_ids), r.assignment, r.name, r)
                for r in releases if r.grade_ids), default=None, key=lambda t: t[:3])
    return best[3] if best is not None and best[0] >= 0.5 else None
