"""A grading process: loads nbgrader and the course config once, then grades the students it is
sent over a :class:`multiprocessing.connection.Connection`, one after another.

Both backends run this loop (:func:`serve`): the process pool forks it from the runner once
nbgrader is imported (:mod:`autograder.tools.runner.pool`), and each Dask worker runs it in a
subprocess that imported nbgrader before it was given its scratch course directory
(:data:`autograder.tools.runner.job.BOOTSTRAP`).

Messages: the process sends ``{"ready": True}`` once nbgrader is loaded (or ``{"fatal": why}``),
then for each task ``{"student": id, "submitted_directory"?: path}`` it answers with nbgrader's
``capture_log`` result (``{"success", "log", "error"?}``) plus ``"seconds"``. ``None`` or a
closed connection ends it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

from autograder.tools.runner.app import nbgrader_app
from autograder.tools.runner.engines import share_engines
from autograder.tools.runner.job import kill_tree


def _grade_one(app, task: dict) -> dict:
    """Run nbgrader's Autograde converter for one student, as ``nbgrader autograde`` would."""
    from nbgrader.converters import Autograde
    from nbgrader.utils import capture_log

    coursedir = app.coursedir
    saved = {k: getattr(coursedir, k) for k in ("student_id", "submitted_directory")}
    # nbgrader reads --student as a glob: escaped, the id is that one folder (student "*" is
    # not everyone)
    coursedir.student_id = glob.escape(task["student"])
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


def _die_with_parent(parent: int) -> None:
    """Kill this process and its kernels as soon as ``parent`` is gone (a killed Dask worker or
    runner must not leave a grader writing to the gradebook)."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.1)
        kill_tree(os.getpid())

    threading.Thread(target=watch, daemon=True, name="die-with-parent").start()


def _use_course_code(root: str) -> None:
    """Make ``root``'s own ``autograder`` package the one this process imports.

    A forked worker inherits its parent's modules: a parent that imported ``autograder`` from
    another copy of the course (a test run, a notebook) would otherwise grade with that copy's
    hidden checks, which nbgrader now runs in this process.
    """
    base = Path(root).resolve()
    for name, module in list(sys.modules.items()):
        where = getattr(module, "__file__", None)
        if (name == "autograder" or name.startswith("autograder.")) and where \
                and not Path(where).resolve().is_relative_to(base):
            del sys.modules[name]
    sys.path.insert(0, str(base))


def _redirect(log_path: str) -> None:
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)  # kernels inherit these: their noise goes to the log, not the progress bar
    os.dup2(fd, 2)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)


def serve(conn: Connection, root: str, assignment: str, log_path: str, unsandboxed: bool,
          close: tuple[int, ...] = (), db_url: str | None = None) -> None:
    """The grading loop (see the module docstring).

    ``close``: file descriptors of the parent's that this process must not keep open (the run's
    lock file). ``db_url``: the gradebook, when it is not the course config's (a Dask worker's
    scratch course grades into the instructor's gradebook).
    """
    parent = os.getppid()
    os.setsid()  # its own process group: the parent can kill it without killing itself
    _die_with_parent(parent)
    for fd in close:
        with contextlib.suppress(OSError):
            os.close(fd)
    if unsandboxed:
        os.environ["BN_UNSANDBOXED"] = "1"
    _redirect(log_path)
    _use_course_code(root)
    try:
        share_engines()  # nbgrader's ten Gradebooks a notebook: one engine, not ten connections
        app = nbgrader_app(Path(root), assignment, db_url)
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
