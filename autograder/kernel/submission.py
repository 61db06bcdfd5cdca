"""Submissions sanitized before nbgrader touches them.

A submission folder, ``submitted/<student>/<assignment>/``, is the student's: it may hold
symlinks (nbgrader's ``shutil.copy`` follows them, reading ``gradebook.db`` or ``source/`` into the
autograded folder, or writing through them), FIFOs (``open`` blocks forever), deep folder chains
and deeply nested notebook JSON (``RecursionError`` stops the whole run), duplicated or retyped
grade cells (nbgrader stops), and metadata of its own (``skip-execution`` on a test cell, a forged
``autograder`` key). :func:`stage_submission` turns it into a sanitized staging copy holding only
what the rules below allow, and :class:`SanitizedAutograde` makes nbgrader read that copy, never
``submitted/``.

The rules (module constants):

- only regular files and folders: no symlink, hard link (``st_nlink > 1``), FIFO, socket or
  device anywhere, the submission folder and the student's folder included;
- at most :data:`MAX_DEPTH` folder levels, :data:`MAX_FILES` entries and :data:`MAX_TOTAL_BYTES`
  in all (:data:`MAX_NOTEBOOK_BYTES` per notebook);
- each notebook parses as JSON nested at most :data:`MAX_JSON_DEPTH` levels (``json`` raising
  ``RecursionError`` on a deeper one is caught: it is a rejection like any other) and reads as an
  nbformat 4 notebook.

A submission that breaks a rule is **rejected**: nbgrader grades the release notebooks instead
(every answer empty, so every test scores 0), each carrying the flag ``rejected-submission`` with
the reason in its trusted metadata (:func:`autograder.notebooks.add_flag`), and the run goes on
with the next student. A notebook that passes is **repaired** against the release notebook
(``release/<assignment>/<notebook>.ipynb``): every grade id exactly once (later duplicates
removed, deleted cells put back after the nearest earlier release cell), cell types and nbgrader
metadata restored from the release, locked cells given the release's whole metadata (so tags
such as ``skip-execution`` or ``raises-exception`` are dropped), execution tags dropped from
answer cells, nbgrader metadata dropped from cells the release does not have, and the trusted
``autograder`` key removed everywhere (:func:`autograder.notebooks.strip_trusted`).

Why a subclass of nbgrader's ``Autograde``: nbgrader 0.9.6 reads the submission in four places,
all through ``_format_source`` / ``coursedir.submitted_directory``: ``init_notebooks`` (glob),
``init_destination`` and ``init_assignment`` (``timestamp.txt``, ``shutil.copy`` of every other
file, the missing-notebook check) and the sanitize pass of ``convert_single_notebook``. The
exporter (``c.Autograde.exporter_class``) only sees the notebooks, after the file copies and the
timestamp read have already followed links or blocked on FIFOs; a ``pre_convert_hook`` runs after
``init_destination`` and is told only the glob, not the student. :class:`SanitizedAutograde`
stages every matched submission in ``init_notebooks``, before any of them, and points
``submitted_directory`` at the staging root (an absolute path, which nbgrader's ``format_path``
supports, as the runner's own staging relies on) for the rest of the run, so all four readers
see the sanitized copy. ``nbgrader_config.py`` installs it for the ``nbgrader autograde`` app
(:func:`install`); the runner's workers run the same app class with the same config.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

import nbformat
from nbgrader.converters import Autograde
from nbgrader.converters.base import NbGraderException

from autograder.kernel.trusted_config import UntrustedConfigError, check_config
from autograder.notebooks import add_flag, strip_ansi, strip_trusted

MiB = 1024**2

#: Folder levels allowed below the submission folder (``a/b/c.py`` is 2 levels).
MAX_DEPTH = 8
#: Files and folders allowed in one submission.
MAX_FILES = 500
#: Total size of one submission's files, bytes (nbgrader's own ``max_file_size`` is 100 MB, for
#: collect and release only).
MAX_TOTAL_BYTES = 100 * MiB
#: Size of one notebook file, bytes.
MAX_NOTEBOOK_BYTES = 20 * MiB
#: Nesting of a notebook's JSON (an nbformat 4 notebook needs about 6; widget state a few more).
MAX_JSON_DEPTH = 64
#: Tags that change how a cell runs; never honoured on a cell the instructor wrote or graded.
EXECUTION_TAGS = frozenset({"skip-execution", "raises-exception"})
#: The flag kind of a rejected submission.
REJECTED = "rejected-submission"


class RejectedSubmission(ValueError):
    """A submission that breaks a rule; ``str(exc)`` is the reason, in plain words."""


# ----------------------------------------------------------------------------- the folder
def scan_folder(folder: Path) -> dict[str, int]:
    """The regular files of a submission folder, checked against the rules.

    Parameters
    ----------
    folder : Path
        ``submitted/<student>/<assignment>``. Nothing in it is opened, only ``lstat``-ed, so a
        FIFO never blocks and a link is never followed. The walk is iterative, so a deep chain
        cannot raise ``RecursionError``.

    Returns
    -------
    dict of str to int
        ``{relative posix path: size in bytes}`` for every file.

    Raises
    ------
    RejectedSubmission
        On a link, hard link, FIFO, socket or device, or when the depth, count or total size
        limit (:data:`MAX_DEPTH`, :data:`MAX_FILES`, :data:`MAX_TOTAL_BYTES`) is exceeded.
    """
    for path in (folder.parent, folder):
        mode = os.lstat(path).st_mode
        if not stat.S_ISDIR(mode):
            raise RejectedSubmission(f"{path.name} is {_kind(mode)}, not a folder")
    files: dict[str, int] = {}
    total, count = 0, 0
    stack: list[tuple[Path, int]] = [(folder, 0)]
    while stack:
        here, depth = stack.pop()
        with os.scandir(here) as entries:
            for entry in entries:
                count += 1
                if count > MAX_FILES:
                    raise RejectedSubmission(f"more than {MAX_FILES} files and folders")
                st = entry.stat(follow_symlinks=False)
                rel = Path(entry.path).relative_to(folder).as_posix()
                if stat.S_ISDIR(st.st_mode):
                    if depth + 1 > MAX_DEPTH:
                        raise RejectedSubmission(f"{rel} is more than {MAX_DEPTH} folders deep")
                    stack.append((Path(entry.path), depth + 1))
                elif not stat.S_ISREG(st.st_mode):
                    raise RejectedSubmission(f"{rel} is {_kind(st.st_mode)}, not a regular file")
                elif st.st_nlink > 1:
                    raise RejectedSubmission(f"{rel} is a hard link ({st.st_nlink} names)")
                else:
                    total += st.st_size
                    if total > MAX_TOTAL_BYTES:
                        raise RejectedSubmission(
                            f"the files are larger than {MAX_TOTAL_BYTES // MiB} MiB in all")
                    files[rel] = st.st_size
    return files


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "a special file"


def _copy_regular(src: Path, dst: Path, limit: int) -> bytes | None:
    """Copy one file that :func:`scan_folder` accepted, refusing to follow a link or block on a
    FIFO that replaced it since (``O_NOFOLLOW | O_NONBLOCK``, re-checked with ``fstat``)."""
    fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1 or st.st_size > limit:
            raise RejectedSubmission(f"{src.name} changed while it was read")
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise RejectedSubmission(f"{src.name} changed while it was read")
    if dst is not None:
        dst.parent.mkdir(parents=True, exist_ok=True)
        with open(dst, "xb") as out:
            out.write(data)
    return data


# ----------------------------------------------------------------------------- the notebook
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


def parse_notebook(data: bytes, name: str) -> nbformat.NotebookNode:
    """A submitted notebook file's bytes as an nbformat 4 notebook, within the limits.

    Raises
    ------
    RejectedSubmission
        If it is larger than :data:`MAX_NOTEBOOK_BYTES`, not UTF-8 JSON, nested deeper than
        :data:`MAX_JSON_DEPTH`, or not a version 4 notebook with a list of cells.
    """
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
    for i, cell in enumerate(parsed["cells"]):
        if not (isinstance(cell, dict) and cell.get("cell_type") in _CELL_TYPES
                and isinstance(cell.get("metadata", {}), dict) and _is_text(cell.get("source"))):
            raise RejectedSubmission(f"{name}: cell {i} is not a notebook cell")
    if not isinstance(parsed.get("metadata", {}), dict):
        raise RejectedSubmission(f"{name} has notebook metadata that is not a mapping")
    nb = nbformat.from_dict(parsed)
    nb.setdefault("metadata", {})
    for cell in nb.cells:
        cell.setdefault("metadata", {})
    return nb


_CELL_TYPES = ("code", "markdown", "raw")


def _is_text(value: object) -> bool:
    return isinstance(value, str) or (isinstance(value, list)
                                      and all(isinstance(v, str) for v in value))


def _grade_id(cell) -> str | None:
    meta = cell.get("metadata", {}).get("nbgrader")
    gid = meta.get("grade_id") if isinstance(meta, dict) else None
    return gid if isinstance(gid, str) else None


def _is_locked(cell) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return not meta.get("solution", False)


def repair_notebook(nb: nbformat.NotebookNode,
                    release: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``nb`` with its grade cells made to match the release notebook (see the module text).

    Parameters
    ----------
    nb : NotebookNode
        The parsed submission (:func:`parse_notebook`); not changed.
    release : NotebookNode
        ``release/<assignment>/<notebook>.ipynb``.

    Returns
    -------
    NotebookNode
        A new notebook: every release grade id exactly once, in the submission's order, with
        the release's cell type and nbgrader metadata; no trusted metadata.
    """
    released = {_grade_id(c): c for c in release.cells if _grade_id(c)}
    order = [_grade_id(c) for c in release.cells if _grade_id(c)]
    cells, seen = [], set()
    for cell in nb.cells:
        cell = copy.deepcopy(cell)
        gid = _grade_id(cell)
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
        where = max((i + 1 for i, c in enumerate(cells) if _grade_id(c) in earlier), default=0)
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
    if _is_locked(ref):
        new.metadata = copy.deepcopy(ref.metadata)
    else:
        new.metadata["nbgrader"] = copy.deepcopy(ref.metadata["nbgrader"])
        tags = [t for t in new.metadata.get("tags", []) if isinstance(t, str)
                and t not in EXECUTION_TAGS]
        new.metadata["tags"] = tags
        if not tags:
            del new.metadata["tags"]
    if new.cell_type == "code":
        new.setdefault("outputs", [])
        new.setdefault("execution_count", None)
    return new


# ----------------------------------------------------------------------------- staging
def release_notebooks(release_dir: Path) -> dict[str, nbformat.NotebookNode]:
    """``{notebook name: release notebook}`` of one assignment's release folder."""
    return {p.stem: nbformat.read(p, as_version=4) for p in sorted(release_dir.glob("*.ipynb"))}


def stage_submission(folder: Path, release_dir: Path, target: Path) -> str | None:
    """Write the sanitized copy of one submission folder into ``target``.

    Parameters
    ----------
    folder : Path
        ``submitted/<student>/<assignment>`` (read only: nothing there is changed).
    release_dir : Path
        ``release/<assignment>``: the notebooks the repair and a rejection use.
    target : Path
        An empty or missing folder (``<staging root>/<student>/<assignment>``).

    Returns
    -------
    str or None
        The reason the submission was rejected (``target`` then holds the release notebooks,
        flagged), or None when it was accepted (``target`` holds its files and repaired
        notebooks; notebooks the release does not have are left out, as nbgrader skips them).
    """
    release = release_notebooks(release_dir)
    target.mkdir(parents=True, exist_ok=False)
    try:
        files = scan_folder(folder)
        for rel, size in sorted(files.items()):
            name = Path(rel)
            if name.suffix == ".ipynb" and len(name.parts) == 1:
                if name.stem not in release:
                    continue
                data = _copy_regular(folder / rel, None, MAX_NOTEBOOK_BYTES)
                nb = repair_notebook(parse_notebook(data, rel), release[name.stem])
                nbformat.write(nb, target / rel)
            else:
                _copy_regular(folder / rel, target / rel, max(size, 0))
    except RejectedSubmission as exc:
        reason = str(exc)
    except OSError as exc:  # vanished, unreadable, or swapped for a link or FIFO meanwhile
        reason = f"the submission could not be read ({exc.strerror or exc})"
    else:
        return None
    reason = printable(reason)
    _clear(target)
    _stage_rejected(folder, release, target, reason)
    return reason


def printable(text: str, limit: int = 500) -> str:
    """``text`` safe for a terminal and a log: control characters (escape sequences included)
    replaced by ``?``, cut at ``limit`` characters."""
    text = "".join(ch if ch.isprintable() else "?" for ch in strip_ansi(text))
    return text if len(text) <= limit else text[:limit] + "..."


def _clear(target: Path) -> None:
    for entry in list(target.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _stage_rejected(folder: Path, release: dict, target: Path, reason: str) -> None:
    """The release notebooks, flagged, plus the submission's timestamp when it is plain."""
    note = "".join(ch if ch.isalnum() or ch in " .,:;-_/()'" else f"&#{ord(ch)};" for ch in reason)
    for name, nb in release.items():
        nb = copy.deepcopy(nb)
        add_flag(nb, REJECTED, f"the submission was not graded: {reason}")
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(
            f"**Submission rejected, graded 0:** {note}. The release notebook was graded instead."))
        nbformat.write(nb, target / f"{name}.ipynb")
    stamp = folder / "timestamp.txt"
    try:
        _copy_regular(stamp, target / "timestamp.txt", 1000)
    except (OSError, RejectedSubmission):
        pass


class SanitizedAutograde(Autograde):
    """nbgrader's ``Autograde``, reading every submission from a sanitized staging copy.

    It first refuses to run unless the configuration still names the sandbox
    (:func:`autograder.kernel.trusted_config.check_config`). ``init_notebooks`` finds the
    submissions as nbgrader does, stages each one
    (:func:`stage_submission`) into a private temporary folder, and grades from there; the
    staging folder is removed when the run ends. A rejected submission is logged with its
    reason and graded from the flagged release notebooks (every test scores 0).
    """

    def start(self) -> None:
        try:
            check_config(self.config)
        except UntrustedConfigError as exc:
            self.log.error("%s", exc)
            raise NbGraderException(str(exc)) from exc
        original = self.coursedir.submitted_directory
        self._staging: Path | None = None
        try:
            super().start()
        finally:
            self.coursedir.submitted_directory = original
            if self._staging is not None:
                shutil.rmtree(self._staging, ignore_errors=True)

    def init_notebooks(self) -> None:
        super().init_notebooks()  # the glob over submitted/ (only listings, nothing opened)
        self._staging = Path(tempfile.mkdtemp(prefix="bn-staging-"))
        regexp = self._format_source("(?P<assignment_id>.*)", "(?P<student_id>.*)", escape=True)
        for folder in sorted(self.assignments):
            match = re.match(regexp, folder)
            if match is None:
                continue
            student, assignment = match["student_id"], match["assignment_id"]
            release_dir = Path(self.coursedir.format_path(
                self.coursedir.release_directory, ".", assignment)).resolve()
            reason = stage_submission(Path(folder), release_dir,
                                      self._staging / student / assignment)
            if reason is not None:
                self.log.warning("Rejected submission of %s for %s, graded 0: %s",
                                 student, assignment, reason)
        self.coursedir.submitted_directory = str(self._staging)
        super().init_notebooks()


def install() -> None:
    """Make ``nbgrader autograde`` (and the runner's workers, which run the same converter) use
    :class:`SanitizedAutograde`. nbgrader 0.9.6 has no setting for the converter class, so
    ``nbgrader_config.py`` calls this: the app looks ``Autograde`` up in its module when it
    starts, after the config is loaded."""
    import nbgrader.apps.autogradeapp as app
    import nbgrader.converters as converters

    app.Autograde = SanitizedAutograde
    converters.Autograde = SanitizedAutograde


__all__ = ["MAX_DEPTH", "MAX_FILES", "MAX_JSON_DEPTH", "MAX_NOTEBOOK_BYTES", "MAX_TOTAL_BYTES",
           "RejectedSubmission", "SanitizedAutograde", "install", "parse_notebook",
           "repair_notebook", "scan_folder", "stage_submission"]
