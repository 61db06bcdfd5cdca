"""What the runner finds in a submission before grading it: :func:`inspect_submission`.

Broken submissions (missing, malformed, renamed or wrong-assignment notebooks, files over
nbgrader's ``CourseDirectory.max_file_size``, links, edited or deleted read-only cells) get a
score and a readable flag instead of nbgrader's skip or failure. ``submitted/`` is never changed:
when a submission needs a repair, nbgrader grades a staged copy (:func:`stage_submission`).
"""

from __future__ import annotations

import copy
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

Flag = tuple[str, str]


@dataclass
class Inspection:
    """What the runner found in one submission folder before grading it.

    Attributes
    ----------
    flags : list of (kind, reason)
        Findings for the instructor (``missing-notebook``, ``tampering``, ...).
    stage : dict of str to Path, or None
        When not None, nbgrader grades a staged copy of the folder holding exactly these files
        (name in the staged folder -> file in the submission) instead of the folder itself.
    gradable : bool
        False when no expected notebook can be graded; the student then gets a zero.
    problem : str
        Why the submission is not gradable (empty when it is).
    """

    flags: list[Flag] = field(default_factory=list)
    stage: dict[str, Path | nbformat.NotebookNode] | None = None
    gradable: bool = True
    problem: str = ""


@dataclass(frozen=True)
class ReleaseNotebook:
    """The instructor's view of one released notebook: its grade ids and read-only cells."""

    assignment: str
    name: str
    grade_ids: frozenset[str]
    locked: dict[str, str]  # grade_id -> nbgrader checksum of the released cell
    graded: frozenset[str]  # grade ids of test cells (and written answers)
    notebook: nbformat.NotebookNode = field(compare=False, hash=False, repr=False)


def _nbgrader_cells(nb) -> dict[str, dict]:
    return {
        c.metadata["nbgrader"]["grade_id"]: c
        for c in nb.cells
        if "grade_id" in c.get("metadata", {}).get("nbgrader", {})
    }


def release_notebooks(root: Path, release_dir: str = "release") -> list[ReleaseNotebook]:
    """Every notebook in ``release/<assignment>/``, with what tamper detection compares against.

    The release, not the gradebook, is the reference for read-only cells: the gradebook keeps
    hidden-test cells with their hidden tests, which students never see.
    """
    from nbgrader.utils import compute_checksum, is_grade, is_locked

    found = []
    for path in sorted((root / release_dir).glob("*/*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        cells = _nbgrader_cells(nb)
        found.append(ReleaseNotebook(
            assignment=path.parent.name,
            name=path.stem,
            grade_ids=frozenset(cells),
            locked={gid: compute_checksum(c) for gid, c in cells.items() if is_locked(c)},
            graded=frozenset(gid for gid, c in cells.items() if is_grade(c)),
            notebook=nb,
        ))
    return found


def _read_notebook(path: Path):
    """The notebook at ``path``, or the reason it cannot be read as one."""
    try:
        nb = nbformat.read(path, as_version=4)
        _nbgrader_cells(nb)
    except Exception as exc:  # json, nbformat or structure errors: all mean "not a notebook"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return None, f"{type(exc).__name__}: {first[:200]}"
    return nb, ""


def _mb(nbytes: int) -> str:
    return f"{nbytes / 1e6:.0f} MB"


def inspect_submission(
    folder: Path,
    assignment: str,
    expected: list[str],
    release: list[ReleaseNotebook],
    max_file_size_kb: int,
) -> Inspection:
    """Check one submission folder for the broken cases nbgrader skips, fails on, or grades silently.

    What nbgrader 0.9.6 does, and what this adds:

    * **missing notebook**: nbgrader skips the student ("No notebooks were matched"), or, when
      only some notebooks of the assignment are missing, zeroes those. Added: a
      ``missing-notebook`` flag, and a zero when nothing can be graded.
    * **malformed notebook** (not JSON, not a notebook): nbgrader fails the student with a
      traceback. Added: the notebook is left out of grading, scored 0, flagged
      ``malformed-notebook`` with the parser's message.
    * **renamed notebook** (``foo (1).ipynb``): nbgrader skips it as unknown, then fails with
      "No notebooks found". Added: a notebook whose nbgrader cells match the missing expected
      notebook is graded under the expected name (from a staged copy; ``submitted/`` is never
      changed) and flagged ``renamed-notebook``.
    * **wrong assignment** (another assignment's notebook in this folder, under its own name or
      under this assignment's): skipped and failed as above, or graded against cells it does
      not have. Added: a zero and a ``wrong-assignment`` flag naming the assignment it belongs
      to.
    * **large files**: nbgrader copies every file of the submission into ``autograded/``
      (``shutil.copy``: a 200 MB sparse file becomes 200 MB of disk); its
      ``CourseDirectory.max_file_size`` only applies to collect/release. Added: files above that
      size are left out of the staged copy and flagged ``large-file``.
    * **edited read-only cells** (tests or provided code): nbgrader's OverwriteCells restores
      the instructor's source of a locked cell whose checksum changed, so the hidden test runs
      as the instructor wrote it. Added: a ``tampering`` flag.
    * **deleted read-only cells**: nbgrader does not run them (a deleted setup cell zeroes
      every test that needs it; a deleted test cell keeps a regraded student's earlier score).
      Added: they are put back from the release in the staged copy (see :func:`_tampering`),
      so nbgrader runs the instructor's version, and flagged ``tampering``.

    Parameters
    ----------
    folder : Path
        ``submitted/<student>/<assignment>``.
    assignment : str
        The assignment being graded.
    expected : list of str
        The assignment's notebook names (without ``.ipynb``) in the gradebook.
    release : list of ReleaseNotebook
        All released notebooks (:func:`release_notebooks`), to recognize renamed and
        wrong-assignment notebooks and tampered cells.
    max_file_size_kb : int
        nbgrader's ``CourseDirectory.max_file_size`` (kilobytes).

    Returns
    -------
    Inspection
    """
    result = Inspection()
    if not folder.is_dir():
        result.gradable, result.problem = False, f"nothing submitted ({folder} does not exist)"
        result.flags.append(("missing-notebook", result.problem))
        return result
    stage, staged = _copyable_files(folder, max_file_size_kb, result.flags)
    notebooks = {p.stem: p for p in folder.glob("*.ipynb")}
    readable: dict[str, object] = {}
    for stem, path in sorted(notebooks.items()):
        nb, error = _read_notebook(path)
        if nb is None:
            staged = True
            stage.pop(path.name, None)
            result.flags.append(("malformed-notebook", f"{path.name} is not a readable notebook ({error})"))
        else:
            readable[stem] = nb
    gradable, renamed = _match_expected(readable, notebooks, assignment, expected, release,
                                        result.flags)
    by_name = {nb.name: nb for nb in release if nb.assignment == assignment}
    for name, match in renamed.items():
        staged = True
        stage.pop(f"{match}.ipynb", None)
        stage[f"{name}.ipynb"] = notebooks[match]
    for name, nb in gradable:
        flags, repaired = _tampering(name, nb, by_name.get(name))
        result.flags.extend(flags)
        if repaired is not None:
            staged = True
            stage[f"{name}.ipynb"] = repaired
    if not gradable:
        result.gradable = False
        result.problem = "; ".join(reason for _, reason in result.flags) or "no notebook to grade"
    if staged and result.gradable:
        result.stage = stage
    return result


def _copyable_files(folder: Path, max_file_size_kb: int, flags: list[Flag]):
    """``({relative name: path}, left_out)``: the submission's regular files within nbgrader's
    size limit, and whether any file was left out (a link, a special file, a large file)."""
    stage: dict[str, Path | nbformat.NotebookNode] = {}
    left_out = False
    limit = max_file_size_kb * 1000
    for dirpath, _, files in os.walk(folder):
        for name in files:
            path = Path(dirpath) / name
            rel = path.relative_to(folder).as_posix()
            size = path.lstat().st_size
            if path.is_symlink() or not path.is_file():  # nbgrader's copy would follow a link
                left_out = True
                flags.append(("forbidden-file", f"{rel} is a link or special file; not copied for grading"))
            elif size > limit:
                left_out = True
                flags.append((
                    "large-file",
                    f"{rel} ({_mb(size)}) is over CourseDirectory.max_file_size "
                    f"({_mb(limit)}); not copied for grading",
                ))
            else:
                stage[rel] = path
    return stage, left_out


def _match_expected(readable: dict, notebooks: dict[str, Path], assignment: str,
                    expected: list[str], release: list[ReleaseNotebook], flags: list[Flag]):
    """``(gradable, renamed)``: the expected notebooks that can be graded as ``[(name, nb)]``,
    and ``{expected name: submitted stem}`` for renamed ones; flags what is missing or wrong."""
    by_name = {nb.name: nb for nb in release if nb.assignment == assignment}
    unknown = {stem: nb for stem, nb in readable.items() if stem not in expected}
    gradable, renamed = [], {}
    for name in expected:
        if name in readable:
            owner = _owner(readable[name], release, assignment)
            if owner and _best_match({name: readable[name]}, by_name.get(name)) is None:
                flags.append(("wrong-assignment",
                              f"{name}.ipynb holds the notebook of assignment {owner}, not {assignment}"))
            else:
                gradable.append((name, readable[name]))
            continue
        if name in notebooks:  # malformed: already flagged
            continue
        match = _best_match(unknown, by_name.get(name))
        if match is not None:
            renamed[name] = match
            gradable.append((name, unknown.pop(match)))
            flags.append(("renamed-notebook",
                          f"{match}.ipynb graded as {name}.ipynb (its cells are {name}'s)"))
            continue
        owners = [_owner(nb, release, assignment) for nb in unknown.values()]
        wrong = sorted({o for o in owners if o})
        if wrong:
            found = ", ".join(f"{s}.ipynb" for s, o in zip(unknown, owners, strict=True) if o)
            flags.append(("wrong-assignment",
                          f"{found} belongs to assignment {', '.join(wrong)}, not {assignment}; "
                          f"{name}.ipynb is missing"))
        else:
            found = ", ".join(f"{s}.ipynb" for s in unknown) or "no notebook"
            flags.append(("missing-notebook", f"{name}.ipynb is missing (found {found})"))
    return gradable, renamed


def _best_match(candidates: dict[str, object], reference: ReleaseNotebook | None) -> str | None:
    """The candidate notebook holding most of ``reference``'s graded cells (at least half)."""
    if reference is None or not reference.grade_ids:
        return None
    scored = [
        (len(reference.grade_ids & set(_nbgrader_cells(nb))), stem) for stem, nb in candidates.items()
    ]
    best = max(scored, default=(0, None))
    return best[1] if best[0] * 2 >= len(reference.grade_ids) else None


def _owner(nb, release: list[ReleaseNotebook], assignment: str) -> str | None:
    """The other assignment whose released notebook ``nb`` matches (half its cells or more)."""
    ids = set(_nbgrader_cells(nb))
    best = max(
        ((len(r.grade_ids & ids) / len(r.grade_ids), r.assignment) for r in release
         if r.grade_ids and r.assignment != assignment),
        default=(0.0, None),
    )
    return best[1] if best[0] >= 0.5 else None


def _tampering(name: str, nb, reference: ReleaseNotebook | None):
    """Flags for read-only cells of ``nb`` deleted or edited with respect to the release.

    Returns ``(flags, repaired)``: ``repaired`` is ``nb`` with every deleted read-only cell put
    back from the release (after the nearest earlier cell of the release that the submission
    still has), or None when nothing was deleted. nbgrader's OverwriteCells then gives each
    restored cell the instructor's source, hidden tests included. (nbgrader's own
    ``OverwriteCells.add_missing_cells`` puts back only test cells, and 0.9.6 fails with a
    KeyError when the cell before a deleted test cell is read-only, as the visible tests are.)
    """
    from nbgrader.utils import compute_checksum

    if reference is None:
        return [], None
    cells = _nbgrader_cells(nb)
    flags: list[Flag] = []
    deleted = []
    for gid, checksum in reference.locked.items():
        what = "test cell" if gid in reference.graded else "read-only cell"
        if gid not in cells:
            deleted.append(gid)
            then = "restored and run as the instructor wrote it" if gid in reference.graded else (
                "restored from the release")
            flags.append(("tampering", f"{name}.ipynb: {what} '{gid}' was deleted; {then}"))
            continue
        try:
            same = compute_checksum(cells[gid]) == checksum
        except (KeyError, ValueError, TypeError):
            same = False
        if not same:
            flags.append((
                "tampering",
                f"{name}.ipynb: {what} '{gid}' was edited; the instructor's version was graded",
            ))
    if not deleted:
        return flags, None
    repaired = copy.deepcopy(nb)
    order = [c.metadata.get("nbgrader", {}).get("grade_id") for c in reference.notebook.cells]
    for gid in (g for g in order if g in deleted):
        position = 0
        for earlier in reversed(order[: order.index(gid)]):
            present = _nbgrader_cells(repaired)
            if earlier in present:
                position = repaired.cells.index(present[earlier]) + 1
                break
        released = next(c for c in reference.notebook.cells
                        if c.metadata.get("nbgrader", {}).get("grade_id") == gid)
        repaired.cells.insert(position, copy.deepcopy(released))
    return flags, repaired


def stage_submission(files: dict[str, Path | nbformat.NotebookNode], target: Path) -> None:
    """Lay out ``files`` in ``target``: name -> file to copy, or notebook to write. Copies, not
    hard links: the sanitizer nbgrader runs (autograder.kernel.submission) rejects hard links."""
    shutil.rmtree(target, ignore_errors=True)
    for rel, src in files.items():
        dst = target / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(src, nbformat.NotebookNode):
            nbformat.write(src, dst)
            continue
        shutil.copy2(src, dst)


# ----------------------------------------------------------------------------- gradebook
