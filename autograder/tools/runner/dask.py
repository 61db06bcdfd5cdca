"""The Dask backend: ``--scheduler ADDRESS`` fans the students out over a ``dask.distributed``
cluster; ``--scheduler local:N`` starts a ``LocalCluster`` of N single-threaded worker processes.

Workers are stateless: each job (:func:`autograder.tools.runner.job.grade_job`) carries one
student's files (the front door's staged copy, :meth:`~.run.Run.staged`: within the size rule)
and the course's grading material (:func:`pack_material`, scattered to the workers once per
run); the worker grades in a private scratch course directory, sandboxed, into the gradebook at
the course's ``db_url``, and sends the autograded folder back; this process writes
``autograded/``.

Memory: this process never holds a submission. Files are read :data:`SCATTER_CHUNK` bytes at a
time and scattered to the workers as they are read (a job carries the futures, which Dask
resolves on the worker that runs it); large files come back by digest and are copied from the
staged copy (:func:`autograder.tools.runner.job._collect`); and no new job is staged while the
jobs in flight carry more than :data:`BYTES_IN_FLIGHT`.
No shared filesystem is assumed, except by a SQLite ``db_url``, which only a cluster on this
machine can reach: use PostgreSQL for workers elsewhere.

Guarantees: a worker killed in mid-job makes the scheduler run the job again elsewhere (up to
``distributed.scheduler.allowed-failures`` times, 3 by default), and nbgrader's ``--force``
regrade overwrites whatever the killed attempt wrote, so no row is duplicated and no student
lost; past that the student is settled as ``crashed`` (the earlier grades kept, or a zero), as
in the process pool. Ctrl-C sets a ``distributed.Event`` that every job watches: running jobs
kill their grading and return, jobs not yet started return at once, and only then are the
earlier grades of the students in flight put back (:meth:`~.run.Run.settle`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import tarfile
import time
import uuid
from pathlib import Path

from autograder.tools.runner import job as job_module

#: Jobs in flight per worker thread: enough to keep workers busy, few enough that the
#: submissions of 10,000 students are not all held in memory at once.
IN_FLIGHT_PER_THREAD = 2
#: Seconds the client waits, after Ctrl-C, for the running jobs to stop their grading.
STOP_SECONDS = 60.0
#: Bytes of a file read and scattered at a time; smaller files travel inside the job.
SCATTER_CHUNK = 8 * 1024**2
#: Bytes of submissions in flight beyond which no new job is sent (one job always may be).
BYTES_IN_FLIGHT = 64 * 1024**2
#: Course folders a worker needs to grade (``autograder/`` is the grading code).
MATERIAL = ("nbgrader_config.py", "autograder", "course", "data")


def _ignored(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    name = Path(info.name).name
    return None if name in ("__pycache__", ".ipynb_checkpoints") or name.endswith(".pyc") else info


def pack_material(root: Path, assignment: str, source_dir: str = "source",
                  release_dir: str = "release") -> bytes:
    """The grading material of ``assignment`` as a gzipped tarball.

    It holds :data:`MATERIAL`, the assignment's ``release/`` folder and the non-notebook files
    of its ``source/`` folder (nbgrader autograde copies those over the student's; the source
    notebooks, which hold the solutions, are not needed and not sent). No submission is in it.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as tar:
        for name in MATERIAL:
            if (root / name).exists():
                tar.add(root / name, arcname=name, filter=_ignored)
        if (root / release_dir / assignment).is_dir():
            tar.add(root / release_dir / assignment, arcname=f"release/{assignment}", filter=_ignored)
        source = root / source_dir / assignment
        for path in sorted(source.rglob("*")) if source.is_dir() else []:
            if path.is_file() and path.suffix != ".ipynb" and _ignored(tarfile.TarInfo(path.name)):
                tar.add(path, arcname=f"source/{assignment}/{path.relative_to(source).as_posix()}")
    return buffer.getvalue()


def send_files(client, folder: Path) -> tuple[dict[str, bytes | list], int]:
    """``({relative path: bytes, or list of scattered chunks}, total bytes)`` of a staged
    folder (the front door's copy: regular files only). A file up to :data:`SCATTER_CHUNK`
    bytes travels inside the job; a larger one is read and scattered a chunk at a time, so
    this process holds one chunk, never the file."""
    files: dict[str, bytes | list] = {}
    total = 0
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        rel = path.relative_to(folder).as_posix()
        total += path.stat().st_size
        with open(path, "rb") as fh:
            if path.stat().st_size <= SCATTER_CHUNK:
                files[rel] = fh.read(SCATTER_CHUNK)
                continue
            chunks = []
            while data := fh.read(SCATTER_CHUNK):
                chunks.append(client.scatter(data, hash=False))
            files[rel] = chunks
    return files, total


class ByValue:
    """``function``, pickled by value (cloudpickle) wherever it goes.

    Dask pickles a task with plain ``pickle`` first, which names a function by reference
    (``autograder.tools.runner.job.grade_job``): a worker would import it, and with it this
    course's package and nbgrader (seconds of CPU per worker), or fail where the course is not
    installed. ``cloudpickle.register_pickle_by_value`` alone does not help, as Dask consults it
    for the task, not for the function inside. This object pickles as ``cloudpickle.loads(bytes)``,
    so what a worker unpickles is the function itself, built from its code.
    """

    def __init__(self, function):
        import cloudpickle

        self.function = function
        self.payload = cloudpickle.dumps(function)

    def __call__(self, *args, **kwargs):
        return self.function(*args, **kwargs)

    def __reduce__(self):
        import cloudpickle

        return cloudpickle.loads, (self.payload,)


class DaskBackend:
    """A Dask client (and, for ``local:N``, the cluster it started)."""

    def __init__(self, scheduler: str, timeout: float, unsandboxed: bool):
        import cloudpickle
        from distributed import Client, LocalCluster

        if not isinstance(scheduler, str) or not scheduler:
            raise ValueError(f"scheduler must be an address or local:N, got {scheduler!r}")
        logging.getLogger("distributed").setLevel(logging.ERROR)
        cloudpickle.register_pickle_by_value(job_module)  # workers need no copy of this course
        self.grade_job = ByValue(job_module.grade_job)
        self.timeout, self.unsandboxed, self.cluster = timeout, unsandboxed, None
        self.digest: str | None = None  # the material's, once dispatch has packed it
        if scheduler.startswith("local:"):
            n = scheduler.removeprefix("local:")
            if not n.isdigit() or int(n) < 1:
                raise ValueError(f"scheduler local:N needs a positive N, got {scheduler!r}")
            self.cluster = LocalCluster(n_workers=int(n), threads_per_worker=1, processes=True,
                                        dashboard_address=None, silence_logs=logging.ERROR)
            self.client = Client(self.cluster)
        else:
            self.client = Client(scheduler, timeout="30s")
        self.client.wait_for_workers(1, timeout=120)
        # each worker starts importing nbgrader now, while this process inspects the submissions
        self.plugin = f"autograder-spare-children-{uuid.uuid4().hex}"
        self.client.register_plugin(job_module.spare_children(self.plugin))
        self.threads = sum(w["nthreads"] for w in self.client.scheduler_info()["workers"].values())

    def dispatch(self, run, queue: list[str]) -> None:
        """Grade ``queue`` on the cluster, settling each student with ``run``."""
        from distributed import Event, as_completed

        cancel = f"autograder-cancel-{uuid.uuid4().hex}"
        event = Event(cancel, client=self.client)
        packed = pack_material(run.root, run.assignment, run.cd.source_directory,
                               run.cd.release_directory)
        self.digest = job_module.material_digest(packed)  # close() cleans up this run's only
        material = self.client.scatter(packed, broadcast=True)
        base = {"assignment": run.assignment, "db_url": run.cd.db_url, "timeout": self.timeout,
                "unsandboxed": self.unsandboxed, "cancel": cancel}
        # key -> (student, start, future, bytes it carries)
        flight: dict[str, tuple[str, float, object, int]] = {}
        queue = list(queue)
        done = as_completed()

        def room() -> bool:
            carried = sum(entry[3] for entry in flight.values())
            return not flight or (len(flight) < max(1, self.threads * IN_FLIGHT_PER_THREAD)
                                  and carried < BYTES_IN_FLIGHT)

        try:
            while queue and room():
                done.add(self._submit(run, queue.pop(0), material, base, flight))
            for future in done:
                student, started, _, _ = flight.pop(future.key)
                run.settle(student, *self._outcome(run, student, future, started))
                run.unstage(student)
                while queue and room():
                    done.add(self._submit(run, queue.pop(0), material, base, flight))
        finally:  # interrupted: stop the jobs in flight, then put back what their students had
            if flight:
                event.set()
                self._stop(run, flight)

    def _submit(self, run, student: str, material, base: dict, flight: dict):
        """Prepare ``student`` (:meth:`~.run.Run.prepare`), stage their submission through the
        front door (:meth:`~.run.Run.staged`) and send their job out."""
        run.prepare(student)
        files, size = send_files(self.client, run.staged(student))
        job = dict(base, student=student, files=files)
        future = self.client.submit(self.grade_job, material, job, pure=False,
                                    key=f"autograde-{run.assignment}-{uuid.uuid4().hex}")
        flight[future.key] = (student, time.perf_counter(), future, size)
        return future

    def _outcome(self, run, student: str, future, started: float) -> tuple[dict, float]:
        """(result, seconds) of a finished job; writes the autograded folder it sent back."""
        from distributed import KilledWorker

        try:
            result = future.result()
        except KilledWorker:
            result = {"died": "the Dask worker running it died each time it was tried "
                              "(distributed.scheduler.allowed-failures reached)"}
        except Exception as exc:  # the job itself raised: nbgrader's failures come back as results
            result = {"success": False, "error": f"{type(exc).__name__}: {exc}"}
        if result.get("success"):
            try:
                run.receive(student, result.pop("files"))
            except (OSError, ValueError) as exc:
                result = {"success": False, "error": f"the autograded folder could not be "
                                                     f"written: {exc}"}
        if result.get("worker"):
            result["log"] = f"[runner] graded on Dask worker {result['worker']}\n" + result.get("log", "")
        return result, result.get("seconds", time.perf_counter() - started)

    def _stop(self, run, flight: dict) -> None:
        """After Ctrl-C (the cancel event is set): wait for the jobs in flight to stop, then
        settle their students as interrupted (earlier grades put back)."""
        from distributed import wait

        with contextlib.suppress(Exception):  # a worker that never answers: settle anyway
            wait([entry[2] for entry in flight.values()], timeout=STOP_SECONDS)
        for student, started, _, _ in flight.values():
            run.settle(student, {"died": "grading was interrupted"}, time.perf_counter() - started)
        flight.clear()

    def close(self) -> None:
        with contextlib.suppress(Exception):  # its spares stop with it
            self.client.unregister_worker_plugin(self.plugin)
        with contextlib.suppress(Exception):  # scratch folders of dead workers go at the next run
            if self.digest is not None:  # nothing of this run's on the workers otherwise
                self.client.run(job_module.cleanup, self.digest)
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
