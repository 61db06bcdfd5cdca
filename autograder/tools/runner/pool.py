"""The process-pool backend: ``--workers N`` grading processes on this machine.

The processes are forked from the runner once it has imported nbgrader, so nbgrader's imports
are paid once per run (about 2.5 s of CPU, most of it jsonschema compiling the
``rfc3987_syntax`` grammars) rather than once per worker or per student. Each then grades one
student after another (:func:`autograder.tools.runner.worker.serve`). Past the wall-clock limit
a worker and every process below it are killed with SIGKILL (:func:`~.job.kill_tree`), a new
worker takes its place, and the student is settled as ``timeout``. Everything else (what is
sent, what is done with what comes back) is :class:`~autograder.tools.runner.run.Run`'s.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import threading
import time
from multiprocessing.connection import wait
from pathlib import Path

from autograder.tools.runner.job import kill_tree
from autograder.tools.runner.worker import serve


class _Worker:
    """One grading process and the task it is working on."""

    def __init__(self, ctx, root: Path, assignment: str, log_path: Path, unsandboxed: bool,
                 close: tuple[int, ...] = ()):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=serve, args=(child, str(root), assignment, str(log_path), unsandboxed, close),
            daemon=True,
        )
        self.process.start()
        child.close()
        self.student: str | None = None
        self.started = 0.0
        self.ready = False

    def send(self, task: dict, now: float) -> None:
        self.student, self.started = task["student"], now
        self.conn.send({k: v for k, v in task.items() if k != "folder"})

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


class Pool:
    """``workers`` grading processes, started before the run loads the gradebook."""

    def __init__(self, root: Path, assignment: str, workers: int, planned: int, timeout: float,
                 unsandboxed: bool, logs: Path, lock_fd: int):
        # Forked once nbgrader is imported here, and before this process starts any thread
        # (tqdm's monitor thread is off) or opens the gradebook: each worker inherits the
        # imported modules instead of spending seconds of CPU importing them again.
        import nbgrader.api  # noqa: F401
        import nbgrader.apps.autogradeapp  # noqa: F401
        import nbgrader.converters  # noqa: F401
        import nbgrader.utils  # noqa: F401
        import tqdm

        tqdm.tqdm.monitor_interval = 0
        self.root, self.assignment, self.workers, self.timeout = root, assignment, workers, timeout
        self.unsandboxed, self.logs, self.lock_fd = unsandboxed, logs, lock_fd
        self.pool = [self.spawn(i) for i in range(min(workers, planned))]

    def spawn(self, i: int) -> _Worker:
        # forking a process that runs threads can copy a lock some thread holds: a caller with
        # threads of its own (a Jupyter kernel, say) gets workers that start afresh instead
        ctx = mp.get_context("fork" if threading.active_count() == 1 else "spawn")
        return _Worker(ctx, self.root, self.assignment, self.logs / f"worker-{i}.log",
                       self.unsandboxed, (self.lock_fd,))

    def dispatch(self, run, queue: list[str]) -> None:
        """Grade ``queue`` on the pool, settling each student with ``run``."""
        pool = self.pool
        while len(pool) < min(self.workers, len(queue)):  # a submitted_directory other than the default
            pool.append(self.spawn(len(pool)))
        try:
            while queue or any(w.student for w in pool):
                for w in pool:
                    if w.ready and w.student is None and queue:
                        w.send(run.prepare(queue.pop(0)), time.perf_counter())
                now = time.perf_counter()
                deadlines = [w.started + self.timeout - now for w in pool if w.student]
                ready = wait([w.conn for w in pool] + [w.process.sentinel for w in pool],
                             timeout=max(0.05, min(deadlines, default=1.0)))
                now = time.perf_counter()
                for i, w in enumerate(pool):
                    self._look(run, i, w, ready, now)
        finally:  # interrupted (Ctrl-C, an error here): put back what students in flight had
            for w in pool:
                if w.student:
                    student, w.student = w.student, None
                    w.kill()
                    run.settle(student, {"died": "grading was interrupted"},
                               time.perf_counter() - w.started)
            self.close()

    def _look(self, run, i: int, w: _Worker, ready: list, now: float) -> None:
        """Handle what worker ``i`` said, or its death or overrun."""
        message = None
        if w.conn in ready:
            with contextlib.suppress(EOFError, OSError):
                message = w.conn.recv()
        if isinstance(message, dict) and message.get("ready"):
            w.ready = True
            return
        if isinstance(message, dict) and "fatal" in message:
            raise RuntimeError(f"grading worker failed to start: {message['fatal']}")
        if isinstance(message, dict) and w.student:
            student, w.student = w.student, None
            run.settle(student, message, now - w.started)
            return
        timed_out = w.student and now - w.started > self.timeout
        died = not w.process.is_alive() or (w.conn in ready and message is None)
        if died and not w.ready:  # would die again: respawning would loop
            raise RuntimeError(
                f"grading worker {i} exited before it was ready (exit code "
                f"{w.process.exitcode}); see {self.logs / f'worker-{i}.log'}")
        if timed_out or died:
            student, code = w.student, w.process.exitcode
            w.kill()
            self.pool[i] = self.spawn(i)
            if student:
                result = {"timeout": True} if timed_out else {
                    "died": f"the grading process died (exit code {code})"}
                run.settle(student, result, now - w.started)

    def close(self) -> None:
        for w in self.pool:
            w.kill() if w.student else w.stop()
