"""Parallel autograding with nbgrader's own autograde: ``python -m autograder grade ASSIGNMENT``.

Every submission ``submitted/<student>/<assignment>/`` is graded by nbgrader's ``Autograde``
converter, the class behind ``nbgrader autograde ASSIGNMENT --student=ID --force``, with the
course's ``nbgrader_config.py``: same preprocessors, same kernel (sandboxed when the config says
so), same gradebook, so the grades and autograded notebooks equal those of a sequential
``nbgrader autograde`` (``tests/test_runner.py`` checks this). What the runner adds:

* **Workers.** ``--workers N`` processes, forked from the runner once it has imported nbgrader,
  so nbgrader's imports are paid once per run (about 2.5 s of CPU, most of it jsonschema
  compiling the ``rfc3987_syntax`` grammars) rather than once per worker or per student. Each
  worker then grades one student after another. A tqdm bar counts students done and failures.
* **A wall-clock limit per student** (``--timeout``, default 300 s). Past it the worker and every
  process below it (kernels run in sessions of their own, so each process group found under the
  worker is killed) are killed with SIGKILL, a new worker takes its place, and the student is
  recorded as ``timeout``.
* **Nothing is lost.** Before a student is graded the runner keeps a copy of their gradebook
  entries for this assignment and moves their previous autograded folder aside. If nbgrader then
  fails (kernel death, an exception, the wall-clock limit):

  - a student graded before keeps those earlier grades and that autograded folder; the failure
    is recorded in ``runs.json`` (status, reason and a flag saying the earlier grades were kept);
  - a student never graded before gets a zero on every cell of the assignment's notebooks in
    the gradebook (nbgrader's own treatment of a missing notebook: ``auto_score = 0``,
    ``needs_manual_grade = False``), so the student appears in exports with 0 and the reason.

  Other students are never touched, and the gradebook stays consistent: only nbgrader writes
  grades of a student being graded, and only the runner's parent process restores or zeroes.
* **Broken submissions** (see :func:`inspect_submission`) get a score and a readable reason
  instead of nbgrader's skip or failure: a missing, malformed, renamed or wrong-assignment
  notebook, files above nbgrader's ``CourseDirectory.max_file_size`` and links (not copied for
  grading), edited read-only cells (nbgrader's checksums restore the instructor's source) and
  deleted ones (put back). Each is flagged. ``submitted/`` is never changed: when a submission
  needs any of this, nbgrader grades a staged copy of it (in ``reports/``).
* **Interruptions.** Ctrl-C puts back the earlier grades of the students being graded. Two runs
  on the same assignment of a course refuse to overlap (a lock file in ``reports/``).
* **``reports/<assignment>/runs.json``**: ``{"assignment", "workers", "sandboxed", "started",
  "seconds", "students": {id: {"status", "reason", "seconds", "flags"}}}``; status is one of
  ``graded``, ``timeout``, ``crashed``, ``failed``. The flags are those found in the autograded
  notebooks' outputs (``autograder.checks.framework.flags_in``) plus the runner's own. Logs of every
  student's nbgrader run go to ``reports/<assignment>/logs/``.

SQLite and "database is locked"
-------------------------------
nbgrader opens the gradebook with ``sqlalchemy.create_engine(db_url)`` many times per notebook
(``Gradebook(db_url)`` in the converter and in OverwriteCells, SaveAutoGrades,
AssignLatePenalties), and commits after each cell. With SQLite every write takes the database's
single write lock; another process that wants to write meanwhile waits for pysqlite's *busy
timeout*, which defaults to 5 s, and then fails with ``sqlite3.OperationalError: database is
locked``. (pysqlite opens a transaction only at the first write, so an nbgrader connection never
holds a read lock while it asks for the write lock, the one case where SQLite gives up at once
to avoid a deadlock: waiting is all that happens.) nbgrader's own transactions last
milliseconds, so the 5 s are exceeded when a writer is stalled: a machine loaded by N kernels, a gradebook on a slow or network disk, or another
program holding the lock (the Formgrader saving a manual grade, a backup, ``sqlite3`` open on the
file, this runner's parent restoring an earlier grade). The runner therefore gives SQLite a busy
timeout of :data:`SQLITE_BUSY_TIMEOUT` seconds by adding ``?timeout=...`` to the ``db_url`` it
hands nbgrader (SQLAlchemy's pysqlite dialect passes URL query parameters to
``sqlite3.connect``; nbgrader 0.9.6 passes ``db_url`` through untouched), and it never writes
from two places at once for one student. ``tests/test_runner.py`` grades 100 students with 8
workers while another connection holds the write lock for longer than pysqlite's default.

PostgreSQL for larger courses
-----------------------------
For hundreds of students, or several graders at once, keep the gradebook on a database server:
``pip install "psycopg[binary]"`` (psycopg 3, which SQLAlchemy 2 names ``postgresql+psycopg``),
create an empty database, and set in ``nbgrader_config.py``::

    c.CourseDirectory.db_url = "postgresql+psycopg://USER:PASSWORD@HOST:5432/gradebook"

nbgrader creates its tables on first use (``nbgrader generate_assignment``). It has no command
that copies a gradebook between databases, so switch at the start of a term (or copy the tables
with a generic tool such as pgloader). Every nbgrader command, the Formgrader and this runner
then share the server, which lets writers wait on row locks instead of SQLite's one file lock;
the runner adds its busy timeout to ``sqlite`` URLs only.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import fcntl
import json
import logging
import multiprocessing as mp
import os
import shutil
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path

import nbformat

from autograder.checks.framework import flags_in
from autograder.course_dir import ROOT  # noqa: E402

#: Seconds a SQLite connection waits for the gradebook's write lock (pysqlite's default is 5).
SQLITE_BUSY_TIMEOUT = 120.0
#: Default wall-clock limit for grading one student, in seconds.
DEFAULT_TIMEOUT = 300.0
#: Characters of a student's nbgrader log kept in reports/<assignment>/logs/ (the end of it).
_LOG_LIMIT = 1_000_000
#: Statuses a student can end with in runs.json.
STATUSES = ("graded", "timeout", "crashed", "failed")
#: Log lines or tracebacks that mean the kernel died rather than nbgrader failing otherwise.
_KERNEL_DEATH = ("DeadKernelError", "Kernel died", "UnresponsiveKernelError", "kernel became unresponsive")

Flag = tuple[str, str]


# ----------------------------------------------------------------------------- configuration


def with_busy_timeout(db_url: str, seconds: float = SQLITE_BUSY_TIMEOUT) -> str:
    """``db_url`` with a SQLite busy timeout; other databases' URLs are returned unchanged.

    Parameters
    ----------
    db_url : str
        An SQLAlchemy URL, e.g. ``sqlite:////course/gradebook.db``.
    seconds : float
        How long a connection waits for the write lock before ``database is locked``.

    Returns
    -------
    str
        The URL with ``timeout=<seconds>`` in its query (kept if the URL already sets one).

    Raises
    ------
    ValueError
        If ``seconds`` is not positive.
    """
    from sqlalchemy.engine import make_url

    if not seconds > 0:
        raise ValueError(f"seconds must be a positive busy timeout, got {seconds!r}")
    url = make_url(db_url)
    if url.get_backend_name() != "sqlite" or "timeout" in url.query:
        return db_url
    return url.update_query_dict({"timeout": f"{seconds:g}"}).render_as_string(hide_password=False)


def nbgrader_app(root: Path, assignment: str):
    """An initialized ``AutogradeApp`` for ``root``, configured as ``nbgrader autograde`` is.

    It loads the same config files (``nbgrader_config.py`` in the course root, and Jupyter's
    config paths), with ``--force``, and the gradebook URL given a SQLite busy timeout
    (:func:`with_busy_timeout`). The current directory becomes ``root``.

    Raises
    ------
    autograder.kernel.trusted_config.UntrustedConfigError
        If ``nbgrader_config.py`` cannot be loaded or no longer names the sandbox.
    """
    from nbgrader.apps.autogradeapp import AutogradeApp

    from autograder.kernel.trusted_config import check_config, load_trusted_config

    load_trusted_config(Path(root))  # refuses (UntrustedConfigError) rather than fall back
    os.chdir(root)
    app = AutogradeApp()
    app.initialize([assignment, "--force"], root=str(root))
    check_config(app.config)
    app.coursedir.assignment_id = assignment
    app.coursedir.db_url = with_busy_timeout(app.coursedir.db_url)
    # INFO, as `nbgrader autograde` prints: DEBUG would copy every kernel message into the logs
    app.log.setLevel(logging.INFO)
    return app


# ----------------------------------------------------------------------------- inspection


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

    stage: dict[str, Path | nbformat.NotebookNode] = {}
    staged = False
    limit = max_file_size_kb * 1000
    for dirpath, _, files in os.walk(folder):
        for name in files:
            path = Path(dirpath) / name
            rel = path.relative_to(folder).as_posix()
            size = path.lstat().st_size
            if path.is_symlink() or not path.is_file():  # nbgrader's copy would follow a link
                staged = True
                result.flags.append((
                    "forbidden-file", f"{rel} is a link or special file; not copied for grading"
                ))
            elif size > limit:
                staged = True
                result.flags.append((
                    "large-file",
                    f"{rel} ({_mb(size)}) is over CourseDirectory.max_file_size "
                    f"({_mb(limit)}); not copied for grading",
                ))
            else:
                stage[rel] = path

    by_name = {nb.name: nb for nb in release if nb.assignment == assignment}
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

    unknown = {stem: nb for stem, nb in readable.items() if stem not in expected}
    gradable = []
    for name in expected:
        if name in readable:
            owner = _owner(readable[name], release, assignment)
            if owner and _best_match({name: readable[name]}, by_name.get(name)) is None:
                result.flags.append((
                    "wrong-assignment",
                    f"{name}.ipynb holds the notebook of assignment {owner}, not {assignment}",
                ))
            else:
                gradable.append((name, readable[name]))
            continue
        if name in notebooks:  # malformed: already flagged
            continue
        match = _best_match(unknown, by_name.get(name))
        if match is not None:
            staged = True
            stage.pop(f"{match}.ipynb", None)
            stage[f"{name}.ipynb"] = notebooks[match]
            gradable.append((name, unknown.pop(match)))
            result.flags.append((
                "renamed-notebook", f"{match}.ipynb graded as {name}.ipynb (its cells are {name}'s)"
            ))
            continue
        owners = [_owner(nb, release, assignment) for nb in unknown.values()]
        wrong = sorted({o for o in owners if o})
        if wrong:
            found = ", ".join(f"{s}.ipynb" for s, o in zip(unknown, owners, strict=True) if o)
            result.flags.append((
                "wrong-assignment",
                f"{found} belongs to assignment {', '.join(wrong)}, not {assignment}; "
                f"{name}.ipynb is missing",
            ))
        else:
            found = ", ".join(f"{s}.ipynb" for s in unknown) or "no notebook"
            result.flags.append(("missing-notebook", f"{name}.ipynb is missing (found {found})"))

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


def snapshot(gb, assignment: str, student: str) -> dict | None:
    """The student's autograde results for ``assignment`` in the gradebook, or None if none.

    Holds the submission timestamp, and per notebook the late penalty, each grade's
    ``auto_score`` and ``needs_manual_grade`` and each comment's ``auto_comment``: everything
    ``nbgrader autograde`` writes.
    """
    from nbgrader.api import MissingEntry

    try:
        sub = gb.find_submission(assignment, student)
    except MissingEntry:
        return None
    return {
        "timestamp": sub.timestamp,
        "notebooks": {
            nb.name: {
                "late_submission_penalty": nb.late_submission_penalty,
                "grades": {g.name: (g.auto_score, g.needs_manual_grade) for g in nb.grades},
                "comments": {c.name: c.auto_comment for c in nb.comments},
            }
            for nb in sub.notebooks
        },
    }


def has_grades(snap: dict | None) -> bool:
    """Whether a :func:`snapshot` holds an earlier autograde (any score set)."""
    return bool(snap) and any(
        auto is not None for nb in snap["notebooks"].values() for auto, _ in nb["grades"].values()
    )


def restore(gb, assignment: str, student: str, snap: dict) -> None:
    """Write a :func:`snapshot` back, undoing whatever a failed autograde changed."""
    sub = gb.find_submission(assignment, student)
    sub.timestamp = snap["timestamp"]
    for nb in sub.notebooks:
        saved = snap["notebooks"].get(nb.name)
        if saved is None:
            continue
        nb.late_submission_penalty = saved["late_submission_penalty"]
        for grade in nb.grades:
            if grade.name in saved["grades"]:
                grade.auto_score, grade.needs_manual_grade = saved["grades"][grade.name]
        for comment in nb.comments:
            if comment.name in saved["comments"]:
                comment.auto_comment = saved["comments"][comment.name]
    gb.db.commit()


def record_zero(gb, assignment: str, student: str, timestamp: dt.datetime | None) -> None:
    """Give the student's submission a zero on every cell, as nbgrader does for a missing notebook.

    Creates the student and the submission if needed (``update_or_create_*``, as autograde
    does), then sets ``auto_score = 0`` and ``needs_manual_grade = False`` on every grade.
    """
    from sqlalchemy.exc import SAWarning

    gb.update_or_create_student(student)
    kwargs = {"timestamp": timestamp} if timestamp else {}
    with warnings.catch_warnings():  # nbgrader's own autoflush quirk when it adds a submission
        warnings.simplefilter("ignore", SAWarning)
        sub = gb.update_or_create_submission(assignment, student, **kwargs)
    for nb in sub.notebooks:
        for grade in nb.grades:
            grade.auto_score = 0
            grade.needs_manual_grade = False
    gb.db.commit()


# ----------------------------------------------------------------------------- workers


def _joined(value) -> str:
    """A notebook text field: a string, or a list of lines as notebook files store them."""
    return "".join(value) if isinstance(value, list) else str(value)


def notebook_text(nb) -> str:
    """All output text of a notebook: streams, plain-text results, and error name/value/traceback.

    ``nb`` is a ``NotebookNode`` or the notebook file's JSON as read by ``json.loads`` (where
    multi-line texts may be lists of lines).
    """
    parts = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(_joined(out.get("text", "")))
            elif out.get("output_type") == "error":
                parts.extend([out.get("ename", ""), out.get("evalue", ""), *out.get("traceback", [])])
            else:
                parts.append(_joined(out.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def _grade_one(app, task: dict) -> dict:
    """Run nbgrader's Autograde converter for one student, as ``nbgrader autograde`` would."""
    from nbgrader.converters import Autograde
    from nbgrader.utils import capture_log

    coursedir = app.coursedir
    saved = {k: getattr(coursedir, k) for k in ("student_id", "submitted_directory")}
    coursedir.student_id = task["student"]
    if task.get("submitted_directory"):
        coursedir.submitted_directory = task["submitted_directory"]
    try:
        converter = Autograde(coursedir=coursedir, parent=app)
        converter.force = True
        converter.create_student = True
        return capture_log(converter)
    finally:
        for k, v in saved.items():
            setattr(coursedir, k, v)


def _worker(conn: Connection, root: str, assignment: str, log_path: str, unsandboxed: bool,
            close: tuple[int, ...] = ()) -> None:
    """A grading process, forked from the runner: loads the course config, then grades the
    students it is sent. ``close``: file descriptors of the parent's that it must not keep open
    (the run's lock file)."""
    os.setsid()  # its own process group: the parent can kill it without killing itself
    for fd in close:
        with contextlib.suppress(OSError):
            os.close(fd)
    if unsandboxed:
        os.environ["BN_UNSANDBOXED"] = "1"
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)  # kernels inherit these: their noise goes to the log, not the progress bar
    os.dup2(fd, 2)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    try:
        app = nbgrader_app(Path(root), assignment)
    except BaseException as exc:  # report and stop: the parent marks the student failed
        conn.send({"fatal": f"could not load nbgrader: {type(exc).__name__}: {exc}"})
        return
    conn.send({"ready": True})
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        start = time.perf_counter()
        try:
            result = _grade_one(app, task)
        except BaseException as exc:  # SystemExit from nbgrader's app.fail, too
            result = {"success": False, "error": f"{type(exc).__name__}: {exc}"}
        result["seconds"] = time.perf_counter() - start
        conn.send(result)


def kill_tree(pid: int) -> None:
    """SIGKILL a process, everything below it, and every process group they lead or belong to.

    jupyter_client starts each kernel with ``start_new_session=True``, so killing the worker's
    process group alone would leave kernels (and whatever they forked) running.
    """
    import psutil

    try:
        top = psutil.Process(pid)
        procs = [top, *top.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    own = os.getpgid(0)
    groups = set()
    for p in procs:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            groups.add(os.getpgid(p.pid))
    for pgid in groups - {own}:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(procs, timeout=10)


class _Worker:
    """One grading process and the task it is working on."""

    def __init__(self, ctx, root: Path, assignment: str, log_path: Path, unsandboxed: bool,
                 close: tuple[int, ...] = ()):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_worker, args=(child, str(root), assignment, str(log_path), unsandboxed, close),
            daemon=True,
        )
        self.process.start()
        child.close()
        self.student: str | None = None
        self.started = 0.0
        self.ready = False

    def send(self, task: dict, now: float) -> None:
        self.student, self.started = task["student"], now
        self.conn.send(task)

    def kill(self) -> None:
        kill_tree(self.process.pid)
        self.process.join(5)
        self.conn.close()

    def stop(self) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self.conn.send(None)
        self.process.join(30)
        if self.process.is_alive():
            self.kill()


# ----------------------------------------------------------------------------- the run


@dataclass
class StudentRun:
    """One student's line in runs.json."""

    status: str
    reason: str
    seconds: float
    flags: list[list[str]]


def list_students(root: Path, assignment: str, submitted_dir: str = "submitted") -> list[str]:
    """Every student with a folder ``submitted/<student>/<assignment>``, sorted."""
    return sorted(p.parent.name for p in (root / submitted_dir).glob(f"*/{assignment}") if p.is_dir())


def _failure_kind(result: dict) -> tuple[str, str]:
    """(status, reason) for an nbgrader run that failed, from its log and traceback."""
    text = f"{result.get('log', '')}\n{result.get('error', '')}"
    if any(marker in text for marker in _KERNEL_DEATH):
        return "crashed", "the kernel died while grading (nbgrader could not finish the notebook)"
    lines = [ln for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("[ERROR]") or "Error" in ln]
    detail = errors[-1] if errors else (lines[-1] if lines else "no log")
    return "failed", f"nbgrader autograde failed: {detail.strip()[:300]}"


def _outcome_flags(root: Path, assignment: str, student: str, autograded_dir: str) -> list[Flag]:
    """Flags printed in the outputs of the student's autograded notebooks.

    nbgrader wrote and validated these notebooks, so they are read as plain JSON (validating a
    notebook again costs this process about 0.1 s per student).
    """
    flags: list[Flag] = []
    for path in sorted((root / autograded_dir / student / assignment).glob("*.ipynb")):
        with contextlib.suppress(Exception):
            flags.extend(flags_in(notebook_text(json.loads(path.read_text(encoding="utf-8")))))
    return flags


def _merge_flags(*groups: Iterable[Flag]) -> list[list[str]]:
    seen: dict[Flag, None] = {}
    for group in groups:
        for kind, reason in group:
            seen.setdefault((kind, reason), None)
    return [list(f) for f in seen]


def grade(
    assignment: str,
    root: Path = ROOT,
    workers: int = 1,
    students: list[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    unsandboxed: bool = False,
    progress: bool = True,
) -> dict:
    """Autograde every submission of ``assignment`` in parallel; write and return runs.json.

    Parameters
    ----------
    assignment : str
        The nbgrader assignment id (``source/<assignment>/``).
    root : Path
        The course directory (holds ``nbgrader_config.py``, ``submitted/``, the gradebook).
    workers : int
        Number of grading processes (at least 1).
    students : list of str, optional
        Only these students; by default every ``submitted/*/<assignment>``.
    timeout : float
        Wall-clock limit per student, in seconds.
    unsandboxed : bool
        Run kernels without the sandbox (``BN_UNSANDBOXED=1`` in the workers' environment);
        warns, and flags every student ``sandbox-off``.
    progress : bool
        Show a tqdm progress bar on stderr.

    Returns
    -------
    dict
        The content written to ``reports/<assignment>/runs.json``.

    Raises
    ------
    ValueError
        If ``workers`` < 1, ``timeout`` <= 0, the assignment is not in the gradebook, or another
        run is grading the same assignment of the same course.
    """
    from nbgrader.api import Gradebook, MissingEntry
    from tqdm import tqdm

    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    root = Path(root).resolve()
    bindir = str(Path(sys.executable).parent)  # nbgrader runs `alembic` from PATH
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([bindir, os.environ.get("PATH", "")])
    if unsandboxed:
        print("WARNING: --unsandboxed: student code runs without the sandbox (BN_UNSANDBOXED=1), "
              "with the instructor's rights.", file=sys.stderr)
    # BN_UNSANDBOXED as autograder.kernel.sandbox reads it (1/true/yes/on)
    env_off = os.environ.get("BN_UNSANDBOXED", "").strip().lower() in {"1", "true", "yes", "on"}
    unsandboxed = unsandboxed or env_off
    out_dir = root / "reports" / assignment
    work = out_dir / ".work"
    logs = out_dir / "logs"
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = open(out_dir / ".lock", "w")  # held for the whole run, closed at its end
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise ValueError(f"another grading run of {assignment} is in progress in {root}") from None
    shutil.rmtree(work, ignore_errors=True)
    for d in (work / "staged", work / "previous", logs):
        d.mkdir(parents=True, exist_ok=True)

    # Workers are forked once nbgrader is imported here, and before this process starts any
    # thread (tqdm's monitor thread is off) or opens the gradebook: each inherits the imported
    # modules instead of spending seconds of CPU importing them again.
    import nbgrader.api  # noqa: F401
    import nbgrader.apps.autogradeapp  # noqa: F401
    import nbgrader.converters  # noqa: F401
    import nbgrader.utils  # noqa: F401
    import tqdm as tqdm_module

    tqdm_module.tqdm.monitor_interval = 0

    def spawn(i: int) -> _Worker:
        # forking a process that runs threads can copy a lock some thread holds: a caller with
        # threads of its own (a Jupyter kernel, say) gets workers that start afresh instead
        ctx = mp.get_context("fork" if threading.active_count() == 1 else "spawn")
        return _Worker(ctx, root, assignment, logs / f"worker-{i}.log", unsandboxed, (lock.fileno(),))

    def stop_pool() -> None:
        for w in pool:
            w.kill() if w.student else w.stop()

    planned = len(set(students)) if students else len(list_students(root, assignment))
    pool: list[_Worker] = [spawn(i) for i in range(min(workers, planned))]
    try:
        cwd, environ = os.getcwd(), dict(os.environ)
        try:  # the course config (nbgrader_config.py) edits os.environ: keep the caller's as it was
            app = nbgrader_app(root, assignment)
        finally:
            os.chdir(cwd)
            os.environ.clear()
            os.environ.update(environ)
        cd = app.coursedir
        # the sandbox is the kernel manager class that nbgrader_config.py names for nbgrader's Execute
        sandboxed = not unsandboxed and bool(app.config.get("Execute", {}).get("kernel_manager_class"))

        with Gradebook(cd.db_url, cd.course_id) as gb:
            try:
                expected = [nb.name for nb in gb.find_assignment(assignment).notebooks]
            except MissingEntry:
                raise ValueError(
                    f"assignment {assignment!r} is not in the gradebook {cd.db_url}; "
                    f"run `nbgrader generate_assignment {assignment}` first"
                ) from None
        release = release_notebooks(root, cd.release_directory)
        students = sorted(set(students)) if students else list_students(root, assignment, cd.submitted_directory)
        started_at = dt.datetime.now(dt.UTC)
        t0 = time.perf_counter()
        runs: dict[str, StudentRun] = {}
        inspections = {
            s: inspect_submission(
                root / cd.submitted_directory / s / assignment, assignment, expected, release,
                cd.max_file_size,
            )
            for s in students
        }
        sandbox_flag = [("sandbox-off", "graded with --unsandboxed: no sandbox around student code")]
        extra = sandbox_flag if unsandboxed else []
        queue = [s for s in students if inspections[s].gradable]
        while len(pool) < min(workers, len(queue)):  # a submitted_directory other than the default
            pool.append(spawn(len(pool)))
        bar = tqdm(total=len(students), desc=f"autograde {assignment}", unit="student",
                   disable=not progress, file=sys.stderr)
        failures = 0

        def finish(student: str, run: StudentRun) -> None:
            nonlocal failures
            runs[student] = run
            failures += run.status != "graded"
            bar.update(1)
            bar.set_postfix(failed=failures)

        gb = Gradebook(cd.db_url, cd.course_id)
        try:
            for s in students:
                insp = inspections[s]
                if not insp.gradable:
                    folder = root / cd.submitted_directory / s / assignment
                    if not folder.is_dir():  # a student id with no submission: nothing to record
                        outcome = "nothing recorded in the gradebook"
                    elif has_grades(snapshot(gb, assignment, s)):
                        outcome = "the earlier grades were kept"
                    else:
                        record_zero(gb, assignment, s, cd.get_existing_timestamp(str(folder)))
                        outcome = "scored 0"
                    gb.db.rollback()
                    finish(s, StudentRun("failed", f"{insp.problem}; {outcome}", 0.0,
                                         _merge_flags(insp.flags, extra)))

            snaps: dict[str, dict | None] = {}
            def settle(student: str, result: dict, seconds: float) -> None:
                insp = inspections[student]
                text = result.get("log", "") + ("\n" + result["error"] if result.get("error") else "")
                (logs / f"{student}.log").write_text(text[-_LOG_LIMIT:])
                previous = work / "previous" / student
                dest = root / cd.autograded_directory / student / assignment
                gb.db.rollback()  # read what the worker committed
                if result.get("success") and not has_grades(snapshot(gb, assignment, student)):
                    result = {**result, "success": False,
                              "error": "nbgrader finished but no grades are in the gradebook"}
                gb.db.rollback()
                if result.get("success"):
                    shutil.rmtree(previous, ignore_errors=True)
                    found = _outcome_flags(root, assignment, student, cd.autograded_directory)
                    off = [] if any(k == "sandbox-off" for k, _ in found) else extra
                    flags = _merge_flags(insp.flags, found, off)
                    died = [r for k, r in found if k == "kernel-died"]
                    status, reason = ("crashed", died[0]) if died else ("graded", "graded")
                    finish(student, StudentRun(status, reason, seconds, flags))
                    return
                if result.get("timeout"):
                    status, reason = "timeout", f"stopped after the {timeout:g} s wall-clock limit"
                elif result.get("died"):
                    status, reason = "crashed", result["died"]
                else:
                    status, reason = _failure_kind(result)
                snap = snaps.get(student)
                if has_grades(snap):
                    restore(gb, assignment, student, snap)
                    if previous.exists():
                        shutil.rmtree(dest, ignore_errors=True)
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        os.replace(previous, dest)
                    reason += "; the earlier grades were kept"
                else:
                    shutil.rmtree(dest, ignore_errors=True)
                    ts = cd.get_existing_timestamp(str(root / cd.submitted_directory / student / assignment))
                    record_zero(gb, assignment, student, ts)
                    reason += "; scored 0"
                kind = {"timeout": "timeout", "crashed": "kernel-died"}.get(status, "grading-failed")
                finish(student, StudentRun(status, reason, seconds,
                                           _merge_flags(insp.flags, [(kind, reason)], extra)))

            def dispatch(w: _Worker) -> None:
                student = queue.pop(0)
                insp = inspections[student]
                snaps[student] = snapshot(gb, assignment, student)
                gb.db.rollback()  # end the read transaction: never hold a lock while others grade
                dest = root / cd.autograded_directory / student / assignment
                previous = work / "previous" / student
                if dest.exists():
                    os.replace(dest, previous)
                task = {"student": student}
                if insp.stage is not None:
                    stage_submission(insp.stage, work / "staged" / student / assignment)
                    task["submitted_directory"] = str(work / "staged")
                w.send(task, time.perf_counter())

            try:
                while queue or any(w.student for w in pool):
                    for w in pool:
                        if w.ready and w.student is None and queue:
                            dispatch(w)
                    now = time.perf_counter()
                    deadlines = [w.started + timeout - now for w in pool if w.student]
                    ready = wait([w.conn for w in pool] + [w.process.sentinel for w in pool],
                                 timeout=max(0.05, min(deadlines, default=1.0)))
                    now = time.perf_counter()
                    for i, w in enumerate(pool):
                        message = None
                        if w.conn in ready:
                            with contextlib.suppress(EOFError, OSError):
                                message = w.conn.recv()
                        if isinstance(message, dict) and message.get("ready"):
                            w.ready = True
                            continue
                        if isinstance(message, dict) and "fatal" in message:
                            raise RuntimeError(f"grading worker failed to start: {message['fatal']}")
                        if isinstance(message, dict) and w.student:
                            student, w.student = w.student, None
                            settle(student, message, now - w.started)
                            continue
                        timed_out = w.student and now - w.started > timeout
                        died = not w.process.is_alive() or (w.conn in ready and message is None)
                        if died and not w.ready:  # would die again: respawning would loop
                            raise RuntimeError(
                                f"grading worker {i} exited before it was ready (exit code "
                                f"{w.process.exitcode}); see {logs / f'worker-{i}.log'}")
                        if timed_out or died:
                            student = w.student
                            code = w.process.exitcode
                            w.kill()
                            pool[i] = spawn(i)
                            if student:
                                result = {"timeout": True} if timed_out else {
                                    "died": f"the grading process died (exit code {code})"}
                                settle(student, result, now - w.started)
            finally:  # interrupted (Ctrl-C, an error here): put back what students in flight had
                for w in pool:
                    if w.student:
                        student, w.student = w.student, None
                        w.kill()
                        settle(student, {"died": "grading was interrupted"},
                               time.perf_counter() - w.started)
                stop_pool()
        finally:
            gb.close()
            bar.close()
            shutil.rmtree(work, ignore_errors=True)
    finally:
        stop_pool()
        lock.close()

    report = {
        "assignment": assignment,
        "workers": workers,
        "sandboxed": sandboxed,
        "started": started_at.isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - t0, 3),
        "students": {s: asdict(runs[s]) for s in students},
    }
    for run in report["students"].values():
        run["seconds"] = round(run["seconds"], 3)
    (out_dir / "runs.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    """``python -m autograder grade ASSIGNMENT [--workers N] [--students S ...] ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m autograder grade",
        description="Autograde all submissions of an assignment with nbgrader, in parallel.",
    )
    parser.add_argument("assignment", help="assignment id, e.g. 02_batchnorm_forward")
    parser.add_argument("--workers", type=int, default=max(1, os.cpu_count() or 1),
                        help="grading processes (default: the number of CPUs)")
    parser.add_argument("--students", nargs="+", metavar="S", help="only these student ids")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"wall-clock limit per student in seconds (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--unsandboxed", action="store_true",
                        help="run student code without the sandbox (warns; flags every student)")
    parser.add_argument("--root", type=Path, default=Path.cwd(),
                        help="course directory (default: the current directory)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    if args.timeout <= 0:
        parser.error(f"--timeout must be positive, got {args.timeout}")
    logging.getLogger("traitlets").setLevel(logging.WARNING)
    try:
        report = grade(args.assignment, args.root, args.workers, args.students, args.timeout,
                       args.unsandboxed)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    counts = {s: 0 for s in STATUSES}
    for run in report["students"].values():
        counts[run["status"]] += 1
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    n = len(report["students"])
    print(f"{args.assignment}: {n} student{'' if n == 1 else 's'} in {report['seconds']:.1f} s "
          f"({summary or 'none'}); reports/{args.assignment}/runs.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
