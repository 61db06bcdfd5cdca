"""What runs on a Dask worker: :func:`grade_job`, one student's grading in a private scratch course.

This module imports only the standard library and psutil (a dependency of ``distributed``): the
client ships it *by value* (:class:`autograder.tools.runner.dask.ByValue`), so a worker needs the
Python environment (nbgrader, ipykernel, numpy, ...) but not a copy of this course. The course's
grading code comes with each job as a tarball (``material``): ``nbgrader_config.py``,
``autograder/``, ``course/``, ``data/``, the assignment's non-notebook ``source/`` files and its
``release/`` folder. Dask sends it to each worker once (the client scatters it).

On a worker, each thread keeps one scratch course directory per material (by hash), under
``$AUTOGRADER_SCRATCH`` (default: the temporary directory), and one grading subprocess running
:func:`autograder.tools.runner.worker.serve` in it, which imports nbgrader once and grades one
student after another, sandboxed as on the instructor's machine. Importing nbgrader takes
seconds of CPU, so the client registers :func:`spare_children` as soon as the cluster is up: each
worker starts one subprocess per thread that imports nbgrader (:data:`BOOTSTRAP`) while the
client is still inspecting the submissions, and the first job of each thread hands a spare its
course (:meth:`GradingChild.configure`) instead of starting one from nothing. A job writes the student's
files (and nothing of any other student) into ``submitted/<student>/<assignment>/``, has the
subprocess grade them into the gradebook at ``db_url``, and returns nbgrader's result with the
autograded folder's files; it then empties the scratch ``submitted/`` and ``autograded/``.

The job enforces the wall-clock limit itself, and it watches a ``distributed.Event``: when the
client sets it (Ctrl-C), the job kills its grading subprocess (and kernels) and returns
``{"died": "grading was interrupted"}``, so no grading goes on writing after the client has put
the earlier grades back. If the Dask worker process itself is killed, the subprocess notices its
parent is gone and kills itself; the scheduler then runs the job again on another worker.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

#: Seconds between two looks at the client's interrupt event while a job waits for nbgrader.
POLL_SECONDS = 0.5
#: Seconds a grading subprocess may take to load nbgrader and the course config.
START_SECONDS = 300.0
#: Files of the autograded folder larger than this (other than notebooks) are sent back by
#: digest, not by content: they are copies nbgrader made of files the client has
#: (:func:`_collect`).
RETURN_INLINE = 1024**2


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
    me = os.getpid()  # a process killing its own tree (worker.py's die-with-parent) goes last
    for p in sorted(procs, key=lambda p: p.pid == me):
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(procs, timeout=10)


def _remove_stale(base: Path) -> None:
    """Delete the scratch folders of worker processes that are gone (killed in mid-job)."""
    import psutil

    for folder in base.parent.glob("autograder-*-*"):
        pid = folder.name.split("-")[1]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def material_digest(material: bytes) -> str:
    """The name of ``material``'s scratch course directory: 16 hex digits of its SHA-256."""
    return hashlib.sha256(material).hexdigest()[:16]


def unpack(material: bytes, base: Path) -> Path:
    """The scratch course directory for ``material`` under ``base``, extracted once."""
    root = base / material_digest(material)
    if (root / ".complete").exists():
        return root
    _remove_stale(base)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(material), mode="r:gz") as tar:
        tar.extractall(root, filter="data")
    (root / ".complete").touch()
    return root


#: What a grading subprocess runs (``python -P -c BOOTSTRAP FD``): nbgrader's imports first, the
#: slow part, done before any job waits for it; then the course to grade, as the first message on
#: the socket ``FD`` (``None`` or a closed socket: exit), whose ``autograder`` package it imports
#: and whose :func:`~autograder.tools.runner.worker.serve` loop it runs.
BOOTSTRAP = """
import os, sys
from multiprocessing.connection import Connection
conn = Connection(int(sys.argv[1]))
failed = None
try:
    import nbgrader.api, nbgrader.apps.autogradeapp, nbgrader.converters, nbgrader.utils
except BaseException as exc:
    failed = f"could not load nbgrader: {type(exc).__name__}: {exc}"
try:
    config = conn.recv()
except (EOFError, OSError):
    config = None
if config is None:
    sys.exit(0)
if failed:
    conn.send({"fatal": failed})
    sys.exit(1)
root = config["root"]
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
sys.path.insert(0, root)
from autograder.tools.runner.worker import serve
serve(conn, root, config["assignment"], config["log"], config["unsandboxed"], db_url=config["db_url"])
"""


class GradingChild:
    """A grading subprocess: started with nbgrader alone (:data:`BOOTSTRAP`), then given one
    scratch course to grade in (:meth:`configure`) and, from then on, one student per message."""

    def __init__(self):
        self.key: tuple | None = None
        ours, theirs = socket.socketpair()
        self.process = subprocess.Popen(
            [sys.executable, "-P", "-c", BOOTSTRAP, str(theirs.fileno())], cwd="/",
            pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        theirs.close()
        self.conn = Connection(ours.detach())

    def configure(self, root: Path, assignment: str, db_url: str, unsandboxed: bool) -> None:
        """Make this (spare) subprocess grade ``assignment`` of the scratch course ``root``."""
        self.key = (str(root), assignment, db_url, unsandboxed)
        self.conn.send({"root": str(root), "assignment": assignment, "db_url": db_url,
                        "unsandboxed": unsandboxed, "log": str(root / "worker.log")})

    def receive(self, deadline: float, cancelled) -> dict:
        """The next message, or ``{"timeout": True}`` / ``{"died": ...}`` (then it is killed)."""
        while True:
            if self.conn.poll(POLL_SECONDS):
                try:
                    return self.conn.recv()
                except (EOFError, OSError):
                    code = self.process.wait()
                    return {"died": f"the grading process died (exit code {code})"}
            if self.process.poll() is not None:
                return {"died": f"the grading process died (exit code {self.process.returncode})"}
            if time.monotonic() > deadline:
                self.kill()
                return {"timeout": True}
            if cancelled():
                self.kill()
                return {"died": "grading was interrupted"}

    def kill(self) -> None:
        kill_tree(self.process.pid)
        self.process.wait()
        self.conn.close()


def _on_worker(name: str, empty, worker=None):
    """What this module keeps on the Dask worker object across jobs, under ``name``."""
    from distributed import get_worker

    worker = worker or get_worker()
    if not hasattr(worker, name):
        setattr(worker, name, empty)
    return getattr(worker, name)


def _state(worker=None) -> dict:
    """This worker's configured grading subprocesses, per thread: ``{thread: GradingChild}``."""
    return _on_worker("_autograder_children", {}, worker)


def _spares(worker=None) -> list:
    """The Dask worker's started, not yet configured grading subprocesses."""
    return _on_worker("_autograder_spares", [], worker)


def spare_children(name: str):
    """A ``distributed.WorkerPlugin`` called ``name`` that starts one spare grading subprocess
    per worker thread when it is attached (registered, or a worker joins or restarts later), and
    stops the worker's spares when it is removed. Spares are not tied to a run or a course (a
    job configures one), so another run on the same cluster, with a plugin of another name,
    loses nothing when this one goes: its grading subprocesses are left alone."""
    from distributed import WorkerPlugin

    class SpareChildren(WorkerPlugin):
        def __init__(self):
            self.name = name

        def setup(self, worker) -> None:
            spares = _spares(worker)
            while len(spares) < worker.state.nthreads:
                spares.append(GradingChild())

        def teardown(self, worker) -> None:
            spares = _spares(worker)
            while spares:
                with contextlib.suppress(Exception):
                    spares.pop().kill()

    return SpareChildren()


def _scratch_base() -> Path:
    return Path(os.environ.get("AUTOGRADER_SCRATCH") or tempfile.gettempdir())


def cleanup(digest: str, dask_worker=None) -> int:
    """Stop this Dask worker's grading subprocesses of one run and delete that run's scratch
    course directories (the client runs it on every worker at the end of a run, ``Client.run``
    passing ``dask_worker``); return how many directories were deleted.

    ``digest`` is :func:`material_digest` of the run's material: another run grading on the
    same cluster keeps its subprocesses and folders. Spares belong to :func:`spare_children`.
    """
    state = _state(dask_worker)
    for thread in [t for t, child in state.items() if Path(child.key[0]).name == digest]:
        with contextlib.suppress(Exception):
            state.pop(thread).kill()
    folders = list(_scratch_base().glob(f"autograder-{os.getpid()}-*/{digest}"))
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):  # the thread's folder, once it holds no other course
            folder.parent.rmdir()
    return len(folders)


def _child(root: Path, job: dict, cancelled) -> GradingChild | dict:
    """This thread's grading subprocess for ``root`` (started if needed), or why it could not start."""
    children, thread = _state(), threading.get_ident()
    key = (str(root), job["assignment"], job["db_url"], job["unsandboxed"])
    child = children.get(thread)
    if child is not None and (child.key != key or child.process.poll() is not None):
        child.kill()
        del children[thread]
        child = None
    if child is None:
        spares = _spares()
        while spares and child is None:  # started by spare_children while the client prepared
            child = spares.pop()
            if child.process.poll() is not None:
                child = None
        child = child or GradingChild()
        child.configure(root, *key[1:])
        message = child.receive(time.monotonic() + START_SECONDS, cancelled)
        if not message.get("ready"):
            with contextlib.suppress(Exception):
                child.kill()
            return {"fatal": message.get("fatal") or message.get("died") or "did not start"}
        children[thread] = child
    return child


def _collect(folder: Path) -> dict[str, bytes | dict]:
    """The autograded folder: ``{relative path: content}``, except that a file over
    :data:`RETURN_INLINE` bytes that is not a notebook comes as ``{"sha256", "size"}``. Such a
    file is a copy nbgrader made of a file of the submission (which the client staged) or of the
    assignment's ``source/`` folder (which the client has), so the client copies its own and
    the result stays small (never a submission's worth of bytes in the client's memory)."""
    found: dict[str, bytes | dict] = {}
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or p.is_symlink():
            continue
        rel = p.relative_to(folder).as_posix()
        if p.suffix == ".ipynb" or p.stat().st_size <= RETURN_INLINE:
            found[rel] = p.read_bytes()
            continue
        digest = hashlib.sha256()
        with open(p, "rb") as fh:
            while chunk := fh.read(RETURN_INLINE):
                digest.update(chunk)
        found[rel] = {"sha256": digest.hexdigest(), "size": p.stat().st_size}
    return found


def _write(path: Path, data: bytes | list) -> None:
    """Write one submitted file: its bytes, or the list of its chunks (sent one by one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        for chunk in data if isinstance(data, list) else [data]:
            fh.write(chunk)


def grade_job(material: bytes, job: dict) -> dict:
    """Grade one student on this Dask worker.

    Parameters
    ----------
    material : bytes
        The course's grading material, a gzipped tarball (see the module docstring).
    job : dict
        ``student``, ``assignment``, ``files`` (``{relative path: bytes or list of chunks}``,
        the front door's staged copy of the submission; Dask resolves the chunks the client
        scattered), ``db_url``, ``timeout`` (seconds), ``unsandboxed``, and ``cancel`` (the
        name of the client's interrupt ``distributed.Event``).

    Returns
    -------
    dict
        nbgrader's result (``success``, ``log``, ``error``?, ``seconds``) or ``timeout`` /
        ``died``, plus ``files`` (the autograded folder, :func:`_collect`, on success) and
        ``worker`` (where it ran).
    """
    from distributed import Event, get_worker

    event = Event(job["cancel"])
    cancelled = event.is_set
    scratch = _scratch_base() / f"autograder-{os.getpid()}-{threading.get_ident()}"
    root = unpack(material, scratch)
    student, assignment = job["student"], job["assignment"]
    where = f"{get_worker().address} (pid {os.getpid()})"
    for sub in ("submitted", "autograded"):
        shutil.rmtree(root / sub, ignore_errors=True)
    folder = root / "submitted" / student / assignment
    if cancelled():  # the client was interrupted before this job started: grade nothing
        return {"died": "grading was interrupted", "worker": where}
    try:
        for rel, data in job["files"].items():
            _write(folder / rel, data)
        start = time.monotonic()
        child = _child(root, job, cancelled)
        if isinstance(child, dict):
            return {"success": False, "error": f"grading worker failed to start: {child['fatal']}",
                    "worker": where}
        child.conn.send({"student": student})
        result = child.receive(start + job["timeout"], cancelled)
        result.setdefault("seconds", time.monotonic() - start)
        result["worker"] = where
        if result.get("success"):
            result["files"] = _collect(root / "autograded" / student / assignment)
        return result
    finally:
        for sub in ("submitted", "autograded"):
            shutil.rmtree(root / sub, ignore_errors=True)
