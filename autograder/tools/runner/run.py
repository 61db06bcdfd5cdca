"""One grading run of an assignment, whatever the backend: :class:`Run`.

Everything except the dispatch is here, so the process pool (:mod:`.pool`) and Dask
(:mod:`.dask`) share one code path:

* :meth:`Run.open` loads the course config and the gradebook's notebooks, has the front door
  classify every submission (:func:`~autograder.tools.runner.inspect.inspect_submission`) and
  records the ungradable ones;
* :meth:`Run.prepare` is called just before a student is sent out: it keeps a snapshot of the
  student's gradebook entries and moves their earlier ``autograded/`` folder aside; it returns
  the task. The grading process reads the submission through the front door itself
  (:class:`~autograder.kernel.submission.SanitizedAutograde`); a Dask job carries the front
  door's staged copy instead (:meth:`Run.staged`);
* :meth:`Run.settle` is called with what came back (nbgrader's result, a timeout, a death, an
  interruption): on success it reads the flags of the autograded notebooks, on failure it puts the
  earlier grades and folder back or records a zero;
* :meth:`Run.report` writes ``reports/<assignment>/runs.json``.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import shutil
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from autograder.kernel.submission import check_student_id, inspect, stage
from autograder.notebooks import trusted_flags
from autograder.tools.runner.app import DEFAULT_TIMEOUT, nbgrader_app
from autograder.tools.runner.gradebook import has_grades, record_zero, restore, snapshot
from autograder.tools.runner.inspect import Flag, inspect_submission, release_notebooks

#: Characters of a student's nbgrader log kept in reports/<assignment>/logs/ (the end of it).
_LOG_LIMIT = 1_000_000
#: Log lines or tracebacks that mean the kernel died rather than nbgrader failing otherwise.
_KERNEL_DEATH = ("DeadKernelError", "Kernel died", "UnresponsiveKernelError", "kernel became unresponsive")
_SANDBOX_OFF = ("sandbox-off", "graded with --unsandboxed: no sandbox around student code")


@dataclass
class StudentRun:
    """One student's line in runs.json."""

    status: str
    reason: str
    seconds: float
    flags: list[list[str]]


def list_students(root: Path, assignment: str, submitted_dir: str = "submitted") -> list[str]:
    """Every student with an entry ``submitted/<student>/<assignment>``, sorted: a listing of
    the folder, never a glob, so every id is a literal folder name (a student folder or a
    submission that is a link is listed, and the front door says what it is)."""
    top = root / submitted_dir
    if not top.is_dir():
        return []
    return sorted(e.name for e in os.scandir(top) if not e.name.startswith(".")
                  and os.path.lexists(os.path.join(e.path, assignment)))


def notebook_flags(nb: Mapping) -> list[Flag]:
    """The flags of an autograded notebook (a ``NotebookNode`` or its file's plain JSON).

    Read from the trusted metadata that only the grading side writes
    (:func:`autograder.notebooks.trusted_flags`); a ``Flag [kind]: reason`` line that a student
    printed is only text.
    """
    return list(trusted_flags(nb))


def _merge_flags(*groups: Iterable[Flag]) -> list[list[str]]:
    seen: dict[Flag, None] = {}
    for group in groups:
        for kind, reason in group:
            seen.setdefault((kind, reason), None)
    return [list(f) for f in seen]


def _failure_kind(result: dict) -> tuple[str, str]:
    """(status, reason) for an nbgrader run that failed, from its log and traceback."""
    text = f"{result.get('log', '')}\n{result.get('error', '')}"
    if any(marker in text for marker in _KERNEL_DEATH):
        return "crashed", "the kernel died while grading (nbgrader could not finish the notebook)"
    lines = [ln for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("[ERROR]") or "Error" in ln]
    detail = errors[-1] if errors else (lines[-1] if lines else "no log")
    return "failed", f"nbgrader autograde failed: {detail.strip()[:300]}"


def _timed(method):
    """Count the time spent in a :class:`Run` method in ``Run.client_seconds``."""
    @functools.wraps(method)
    def timed(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        finally:
            self.client_seconds += time.perf_counter() - start
    return timed


class Run:
    """The state of one run: course config, gradebook, inspections, results, progress bar."""

    def __init__(self, root: Path, assignment: str, app, students: list[str] | None,
                 unsandboxed: bool, timeout: float, progress: bool):
        from nbgrader.api import Gradebook
        from tqdm import tqdm

        self.root, self.assignment, self.timeout = root, assignment, timeout
        self.cd = cd = app.coursedir
        # the sandbox is the kernel manager class that nbgrader_config.py names for nbgrader's Execute
        self.sandboxed = not unsandboxed and bool(app.config.get("Execute", {}).get("kernel_manager_class"))
        self.extra: list[Flag] = [_SANDBOX_OFF] if unsandboxed else []
        self.out_dir = root / "reports" / assignment
        self.work, self.logs = self.out_dir / ".work", self.out_dir / "logs"
        self.expected = _expected_notebooks(cd, assignment)
        self.releases = release_notebooks(cd)
        if not self.releases.get(assignment):
            raise ValueError(f"the release notebooks of {assignment!r} cannot be read; run "
                             f"`nbgrader generate_assignment {assignment} --force`")
        self.students = sorted(set(students)) if students else list_students(root, assignment, cd.submitted_directory)
        #: Seconds this process spent on the students (inspection, snapshots, staging, writing
        #: autograded/, settling): the serial part of a run, whatever the number of workers.
        self.client_seconds = -time.perf_counter()
        self.inspections = {
            s: inspect_submission(self.submitted(s), assignment, self.releases, cd.max_file_size)
            for s in self.students
        }
        self.client_seconds += time.perf_counter()
        self.started_at, self.t0 = dt.datetime.now(dt.UTC), time.perf_counter()
        self.runs: dict[str, StudentRun] = {}
        self.snaps: dict[str, dict | None] = {}
        self.failures, self.progress = 0, progress
        self.bar = tqdm(total=len(self.students), desc=f"autograde {assignment}", unit="student",
                        disable=not progress, file=sys.stderr)
        self.gb = Gradebook(cd.db_url, cd.course_id)

    @classmethod
    def open(cls, root: Path, assignment: str, students: list[str] | None, unsandboxed: bool,
             timeout: float, progress: bool) -> Run:
        """Load the course (keeping the caller's environment, which ``nbgrader_config.py``
        edits, and working directory) and start the run."""
        cwd, environ = os.getcwd(), dict(os.environ)
        try:
            app = nbgrader_app(root, assignment)
        finally:
            os.chdir(cwd)
            os.environ.clear()
            os.environ.update(environ)
        return cls(root, assignment, app, students, unsandboxed, timeout, progress)

    # ------------------------------------------------------------------------- paths
    def submitted(self, student: str) -> Path:
        return self.root / self.cd.submitted_directory / student / self.assignment

    def autograded(self, student: str) -> Path:
        return self.root / self.cd.autograded_directory / student / self.assignment

    def previous(self, student: str) -> Path:
        return self.work / "previous" / student

    def queue(self) -> list[str]:
        """The students to send out (those with a gradable submission), in order."""
        return [s for s in self.students if self.inspections[s].gradable]

    # ------------------------------------------------------------------------- the flow
    def finish(self, student: str, run: StudentRun) -> None:
        self.runs[student] = run
        self.failures += run.status != "graded"
        self.bar.update(1)
        self.bar.set_postfix(failed=self.failures)

    def record_ungradable(self) -> None:
        """Settle every student whose submission cannot be graded (before any grading starts)."""
        for s in self.students:
            insp = self.inspections[s]
            if insp.gradable:
                continue
            if not os.path.lexists(self.submitted(s)):  # an id with no submission: nothing to record
                outcome = "nothing recorded in the gradebook"
            elif has_grades(snapshot(self.gb, self.assignment, s)):
                outcome = "the earlier grades were kept"
            else:
                record_zero(self.gb, self.assignment, s, self._timestamp(s))
                outcome = "scored 0"
            self.gb.db.rollback()
            self.finish(s, StudentRun("failed", f"{insp.problem}; {outcome}", 0.0,
                                      _merge_flags(insp.flags, self.extra)))

    @_timed
    def prepare(self, student: str) -> dict:
        """Snapshot, move the earlier autograded folder aside; return the task to send:
        ``{"student", "folder"}`` (the submission, which the grading process reads through the
        front door)."""
        self.snaps[student] = snapshot(self.gb, self.assignment, student)
        self.gb.db.rollback()  # end the read transaction: never hold a lock while others grade
        if self.autograded(student).exists():
            os.replace(self.autograded(student), self.previous(student))
        return {"student": student, "folder": str(self.submitted(student))}

    @_timed
    def staged(self, student: str) -> Path:
        """The front door's sanitized copy of ``student``'s submission (scanned, classified,
        repaired and staged again now, so a change since the run opened is seen), in
        ``reports/<assignment>/.work/staged/``: what a Dask job carries. Its files are within
        the size rule (:mod:`autograder.kernel.submission.classify`)."""
        folder = self.work / "staged" / student / self.assignment
        shutil.rmtree(folder.parent, ignore_errors=True)
        inspection = inspect(self.submitted(student), self.assignment, self.releases,
                             int(self.cd.max_file_size) * 1000)
        stage(inspection, self.releases, folder)
        return folder

    def unstage(self, student: str) -> None:
        """Delete :meth:`staged`'s copy once the student is settled."""
        shutil.rmtree(self.work / "staged" / student, ignore_errors=True)

    @_timed
    def receive(self, student: str, files: Mapping[str, bytes | dict]) -> None:
        """Write the autograded folder that a remote worker sent back: ``{relative path:
        bytes}``, or ``{"sha256", "size"}`` for a large copy that nbgrader made of a file of the
        staged submission or of ``source/<assignment>/`` (copied from there here).

        Raises
        ------
        ValueError
            If a path leaves the folder, or a digest matches neither of those files.
        """
        dest = self.autograded(student)
        shutil.rmtree(dest, ignore_errors=True)
        source = self.root / self.cd.source_directory / self.assignment
        for rel, data in files.items():
            path = dest / rel
            if ".." in Path(rel).parts or Path(rel).is_absolute():
                raise ValueError(f"files must be relative paths inside the folder, got {rel!r}")
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, bytes):
                path.write_bytes(data)
                continue
            staged = self.work / "staged" / student / self.assignment
            origin = next((p for p in (staged / rel, source / rel)
                           if p.is_file() and not p.is_symlink() and _sha256(p) == data["sha256"]),
                          None)
            if origin is None:
                raise ValueError(f"{rel} came back by digest and matches no file sent")
            shutil.copyfile(origin, path)

    @_timed
    def settle(self, student: str, result: dict, seconds: float) -> None:
        """Record what came back for ``student``: nbgrader's result, or ``{"timeout": True}``,
        ``{"died": reason}`` when the worker was killed, died or the run was interrupted."""
        text = result.get("log", "") + ("\n" + result["error"] if result.get("error") else "")
        (self.logs / f"{student}.log").write_text(text[-_LOG_LIMIT:])
        insp = self.inspections[student]
        self.gb.db.rollback()  # "graded" only when the worker's grades really are in the gradebook
        if result.get("success") and not has_grades(snapshot(self.gb, self.assignment, student)):
            result = {**result, "success": False,
                      "error": "nbgrader finished but no grades are in the gradebook"}
        self.gb.db.rollback()
        if result.get("success"):
            shutil.rmtree(self.previous(student), ignore_errors=True)
            found = self._outcome_flags(student)
            off = [] if any(k == "sandbox-off" for k, _ in found) else self.extra
            died = [r for k, r in found if k == "kernel-died"]
            status, reason = ("crashed", died[0]) if died else ("graded", "graded")
            self.finish(student, StudentRun(status, reason, seconds, _merge_flags(insp.flags, found, off)))
            return
        if result.get("timeout"):
            status, reason = "timeout", f"stopped after the {self.timeout:g} s wall-clock limit"
        elif result.get("died"):
            status, reason = "crashed", result["died"]
        else:
            status, reason = _failure_kind(result)
        reason += self._undo(student)
        kind = {"timeout": "timeout", "crashed": "kernel-died"}.get(status, "grading-failed")
        self.finish(student, StudentRun(status, reason, seconds,
                                        _merge_flags(insp.flags, [(kind, reason)], self.extra)))

    def _undo(self, student: str) -> str:
        """Put back the earlier grades and folder of a student whose grading failed, or record
        a zero; say which."""
        dest, previous = self.autograded(student), self.previous(student)
        if has_grades(self.snaps.get(student)):
            restore(self.gb, self.assignment, student, self.snaps[student])
            if previous.exists():
                shutil.rmtree(dest, ignore_errors=True)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(previous, dest)
            return "; the earlier grades were kept"
        shutil.rmtree(dest, ignore_errors=True)
        record_zero(self.gb, self.assignment, student, self._timestamp(student))
        return "; scored 0"

    def _timestamp(self, student: str):
        """The submission time the front door read (nbgrader's own reader fails on a file that
        is not a date, and blocks on a FIFO)."""
        return self.inspections[student].timestamp

    def _outcome_flags(self, student: str) -> list[Flag]:
        """Flags of the student's autograded notebooks (:func:`notebook_flags`).

        nbgrader wrote and validated these notebooks, so they are read as plain JSON (validating a
        notebook again costs this process about 0.1 s per student).
        """
        flags: list[Flag] = []
        for path in sorted(self.autograded(student).glob("*.ipynb")):
            try:
                flags.extend(notebook_flags(json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError, AttributeError, TypeError):
                continue
        return flags

    # ------------------------------------------------------------------------- the end
    def close(self) -> None:
        self.gb.close()
        self.bar.close()
        shutil.rmtree(self.work, ignore_errors=True)

    def report(self, workers: int) -> dict:
        """Write and return ``reports/<assignment>/runs.json``."""
        report = {
            "assignment": self.assignment,
            "workers": workers,
            "sandboxed": self.sandboxed,
            "started": self.started_at.isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - self.t0, 3),
            "students": {s: asdict(self.runs[s]) for s in self.students},
        }
        for run in report["students"].values():
            run["seconds"] = round(run["seconds"], 3)
        (self.out_dir / "runs.json").write_text(json.dumps(report, indent=2) + "\n")
        if self.progress and self.students:
            print(f"this machine's share of the run (inspection, gradebook snapshots, autograded/ "
                  f"files): {self.client_seconds / len(self.students) * 1000:.0f} ms per student",
                  file=sys.stderr)
        return report


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(2**20):
            digest.update(chunk)
    return digest.hexdigest()


def _expected_notebooks(cd, assignment: str) -> list[str]:
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(cd.db_url, cd.course_id) as gb:
        try:
            return [nb.name for nb in gb.find_assignment(assignment).notebooks]
        except MissingEntry:
            raise ValueError(
                f"assignment {assignment!r} is not in the gradebook {cd.db_url}; "
                f"run `nbgrader generate_assignment {assignment}` first"
            ) from None


def _locked(out_dir: Path, assignment: str, root: Path):
    """The run's lock file, held (``flock``) for the whole run: two runs on the same assignment
    of a course refuse to overlap."""
    import fcntl

    out_dir.mkdir(parents=True, exist_ok=True)
    lock = open(out_dir / ".lock", "w")  # noqa: SIM115 - closed by grade() at the run's end
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise ValueError(f"another grading run of {assignment} is in progress in {root}") from None
    return lock


def grade(
    assignment: str,
    root: Path | None = None,
    workers: int = 1,
    students: list[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    unsandboxed: bool = False,
    progress: bool = True,
    scheduler: str | None = None,
) -> dict:
    """Autograde every submission of ``assignment``; write and return runs.json.

    Parameters
    ----------
    assignment : str
        The nbgrader assignment id (``source/<assignment>/``).
    root : Path, optional
        The course directory (holds ``nbgrader_config.py``, ``submitted/``, the gradebook);
        :data:`autograder.course_dir.ROOT` by default.
    workers : int
        Number of grading processes of the process pool (at least 1); ignored with ``scheduler``.
    students : list of str, optional
        Only these students; by default every ``submitted/*/<assignment>``.
    timeout : float
        Wall-clock limit per student, in seconds.
    unsandboxed : bool
        Run kernels without the sandbox (``BN_UNSANDBOXED=1`` in the workers' environment);
        warns, and flags every student ``sandbox-off``.
    progress : bool
        Show a tqdm progress bar on stderr.
    scheduler : str, optional
        Grade on Dask instead: a scheduler address (``tcp://host:8786``) or ``local:N``
        (:mod:`autograder.tools.runner.dask`).

    Returns
    -------
    dict
        The content written to ``reports/<assignment>/runs.json``.

    Raises
    ------
    ValueError
        If ``workers`` < 1, ``timeout`` <= 0, ``scheduler`` is malformed, the assignment is not
        in the gradebook, or another run is grading the same assignment of the same course.
    """
    from autograder.course_dir import ROOT, put_tools_on_path
    from autograder.kernel.sandbox import unsandboxed_requested

    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    for student in students or []:
        check_student_id(student)  # literal folder names below submitted/, never a glob or path
    root = Path(root or ROOT).resolve()
    put_tools_on_path()  # nbgrader runs `alembic` from PATH
    if unsandboxed:
        print("WARNING: --unsandboxed: student code runs without the sandbox (BN_UNSANDBOXED=1), "
              "with the instructor's rights.", file=sys.stderr)
    unsandboxed = unsandboxed or unsandboxed_requested()
    out_dir = root / "reports" / assignment
    lock = _locked(out_dir, assignment, root)
    try:
        shutil.rmtree(out_dir / ".work", ignore_errors=True)
        for d in (out_dir / ".work" / "staged", out_dir / ".work" / "previous", out_dir / "logs"):
            d.mkdir(parents=True, exist_ok=True)
        backend = _backend(root, assignment, workers, students, timeout, unsandboxed, scheduler,
                           out_dir / "logs", lock.fileno())
        try:
            run = Run.open(root, assignment, students, unsandboxed, timeout, progress)
            try:
                run.record_ungradable()
                backend.dispatch(run, run.queue())
            finally:
                run.close()
        finally:
            backend.close()
    finally:
        lock.close()
    return run.report(getattr(backend, "threads", workers))


def _backend(root: Path, assignment: str, workers: int, students: list[str] | None,
             timeout: float, unsandboxed: bool, scheduler: str | None, logs: Path, lock_fd: int):
    """The dispatch: a process pool on this machine, or a Dask cluster."""
    if scheduler is not None:
        from autograder.tools.runner.dask import DaskBackend

        return DaskBackend(scheduler, timeout, unsandboxed)
    from autograder.tools.runner.pool import Pool

    planned = len(set(students)) if students else len(list_students(root, assignment))
    return Pool(root, assignment, workers, planned, timeout, unsandboxed, logs, lock_fd)
