"""The runner on a real Dask cluster (``--scheduler local:2``): same grades, killed workers,
failures, interruptions.

Each test starts its own ``LocalCluster`` through ``runner.grade(..., scheduler="local:2")``, in
a scratch course with the throw-away assignment ``tiny`` of tests/test_runner.py. The workers'
scratch course directories are put under the test's own folder (``AUTOGRADER_SCRATCH``), so a
test can see which worker is grading whom: ``<scratch>/autograder-<pid>-<thread>/<material>/
autograded/<student>/``.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest
from test_runner import (
    SLEEPER,
    _course_processes,
    _outputs,
    cases,
    make_course,
    nbgrader,
    scores,
    submit,
    total,
)

from autograder.tools import runner

#: A submission that takes a while to grade: long enough to be killed in mid-job, short enough
#: to be graded again within the test.
SLOW = "import time\ntime.sleep(6)\n\ndef answer():\n    return 42.0"


@pytest.fixture
def scratch(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setenv("AUTOGRADER_SCRATCH", str(folder))  # LocalCluster workers inherit it
    return folder


def grading(scratch: Path, student: str) -> list[int]:
    """Pids of the Dask worker processes whose scratch course holds ``student`` right now."""
    return sorted({int(p.parts[-4].split("-")[1])
                   for p in scratch.glob(f"autograder-*/*/autograded/{student}")})


class Killer(threading.Thread):
    """Kills (SIGKILL) each Dask worker process seen grading ``student``, up to ``times``."""

    def __init__(self, scratch: Path, student: str, times: int):
        super().__init__(daemon=True)
        self.scratch, self.student, self.times = scratch, student, times
        self.killed: list[int] = []
        self.stop = threading.Event()

    def run(self):
        while len(self.killed) < self.times and not self.stop.is_set():
            for pid in grading(self.scratch, self.student):
                if pid not in self.killed:
                    os.kill(pid, signal.SIGKILL)
                    self.killed.append(pid)
            self.stop.wait(0.05)


def rows(root: Path, student: str) -> dict[str, int]:
    """How many gradebook rows the student has, table by table (nbgrader's schema)."""
    with sqlite3.connect(root / "gradebook.db") as db:
        sub = "SELECT id FROM submitted_assignment WHERE student_id = ?"
        nbs = f"SELECT id FROM submitted_notebook WHERE assignment_id IN ({sub})"
        return {
            "submissions": db.execute(f"SELECT count(*) FROM ({sub})", (student,)).fetchone()[0],
            "notebooks": db.execute(f"SELECT count(*) FROM ({nbs})", (student,)).fetchone()[0],
            "grades": db.execute(f"SELECT count(*) FROM grade WHERE notebook_id IN ({nbs})",
                                 (student,)).fetchone()[0],
        }


def test_hostile_cases_and_sequential_nbgrader_agree_with_dask(tmp_path, scratch):
    """Every broken-submission case graded on Dask ends as it does in the process pool, and
    ordinary submissions get nbgrader's own scores and outputs."""
    roots = []
    for name in ("sequential", "dask"):
        root, release = make_course(tmp_path / name)
        submit(root, release, "good", cases.CORRECT)
        submit(root, release, "wrong", cases.WRONG)
        submit(root, release, "chatty", "print('thinking...')\ndef answer():\n    return 42.0")
        roots.append(root)
    sequential, root = roots
    for name, case in cases.CASES.items():
        case.build(root / "submitted" / f"case_{name}" / "tiny", release)
    nbgrader(sequential, "autograde", "tiny", "--force")
    report = runner.grade("tiny", root, scheduler="local:2", progress=False)

    on_disk = json.loads((root / "reports" / "tiny" / "runs.json").read_text())
    assert on_disk == report and report["workers"] == 2
    for name, case in cases.CASES.items():
        run = report["students"][f"case_{name}"]
        assert run["status"] == case.status, (name, run)
        assert total(root, f"case_{name}") == case.score, (name, run)
        assert set(case.flags) <= {kind for kind, _ in run["flags"]}, (name, run)
    for student in ("good", "wrong", "chatty"):
        assert report["students"][student]["status"] == "graded"
        assert scores(root)[student] == scores(sequential)[student]
        path = sequential / "autograded" / student / "tiny" / "tiny.ipynb"
        twin = root / "autograded" / student / "tiny" / "tiny.ipynb"
        assert _outputs(twin, root) == _outputs(path, sequential), student
    # only what nbgrader grades came back: the large file and the link were never sent
    assert not (root / "autograded" / "case_large_file" / "tiny" / "checkpoint.bin").exists()
    assert not list(scratch.glob("autograder-*/*/submitted/*"))  # scratch emptied after each job
    assert _course_processes(root) == []


def test_killed_worker_is_retried_elsewhere_without_duplicate_rows(tmp_path, scratch):
    root, release = make_course(tmp_path)
    submit(root, release, "victim", SLOW)
    others = [f"s{i}" for i in range(3)]
    for student in others:
        submit(root, release, student, cases.CORRECT)
    killer = Killer(scratch, "victim", times=1)
    killer.start()
    try:
        report = runner.grade("tiny", root, scheduler="local:2", progress=False)
    finally:
        killer.stop.set()
        killer.join()
    assert len(killer.killed) == 1, "the victim's worker was never seen grading"
    run = report["students"]["victim"]
    assert run["status"] == "graded", run
    assert total(root, "victim") == 1.0
    log = (root / "reports" / "tiny" / "logs" / "victim.log").read_text()
    assert "graded on Dask worker" in log and f"(pid {killer.killed[0]})" not in log
    assert rows(root, "victim") == {"submissions": 1, "notebooks": 1, "grades": 1}
    assert {s: report["students"][s]["status"] for s in others} == dict.fromkeys(others, "graded")
    assert _course_processes(root) == []


def test_student_failing_after_retries_keeps_earlier_grades(tmp_path, scratch):
    import dask

    root, release = make_course(tmp_path)
    submit(root, release, "doomed", cases.CORRECT)
    first = runner.grade("tiny", root, scheduler="local:2", students=["doomed"], progress=False)
    assert first["students"]["doomed"]["status"] == "graded"
    graded_nb = root / "autograded" / "doomed" / "tiny" / "tiny.ipynb"
    earlier = graded_nb.read_bytes()
    submit(root, release, "doomed", SLOW)  # resubmitted; every worker grading it will be killed
    submit(root, release, "bystander", cases.CORRECT)
    killer = Killer(scratch, "doomed", times=2)
    killer.start()
    try:
        with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
            report = runner.grade("tiny", root, scheduler="local:2", progress=False,
                                  students=["doomed", "bystander"])
    finally:
        killer.stop.set()
        killer.join()
    assert len(killer.killed) == 2
    run = report["students"]["doomed"]
    assert run["status"] == "crashed"
    assert "died each time it was tried" in run["reason"]
    assert "earlier grades were kept" in run["reason"]
    assert total(root, "doomed") == 1.0
    assert graded_nb.read_bytes() == earlier
    assert rows(root, "doomed") == {"submissions": 1, "notebooks": 1, "grades": 1}
    assert report["students"]["bystander"]["status"] == "graded"
    assert _course_processes(root) == []


def test_interrupted_dask_run_puts_back_the_earlier_grades_and_can_be_rerun(tmp_path, scratch):
    root, release = make_course(tmp_path)
    submit(root, release, "halted", cases.CORRECT)
    runner.grade("tiny", root, scheduler="local:2", students=["halted"], progress=False)
    graded_nb = root / "autograded" / "halted" / "tiny" / "tiny.ipynb"
    earlier = graded_nb.read_bytes()
    submit(root, release, "halted", SLEEPER)
    proc = subprocess.Popen(
        [sys.executable, "-m", "autograder", "grade", "tiny", "--students", "halted",
         "--scheduler", "local:2"],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    kernel_started = False
    deadline = time.time() + 180
    while not kernel_started and time.time() < deadline and proc.poll() is None:
        # the event: nbgrader has copied the submission and is executing it on a worker
        kernel_started = any(p.name == "tiny.ipynb" for p in scratch.glob("autograder-*/*/autograded/halted/tiny/*"))
        time.sleep(0.1)
    assert kernel_started, "the regrade never started"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    assert "autograde tiny" in err  # the progress bar
    assert total(root, "halted") == 1.0
    assert graded_nb.read_bytes() == earlier
    assert rows(root, "halted") == {"submissions": 1, "notebooks": 1, "grades": 1}
    assert _course_processes(root) == []

    submit(root, release, "halted", cases.WRONG)  # rerun: graded as if nothing had happened
    report = runner.grade("tiny", root, scheduler="local:2", students=["halted"], progress=False)
    assert report["students"]["halted"]["status"] == "graded"
    assert total(root, "halted") == 0.0
    assert nbformat.read(graded_nb, 4) != nbformat.reads(earlier.decode(), 4)


@pytest.mark.nbgrader  # starts the grade command, which imports Dask and nbgrader
def test_bad_scheduler_is_a_usage_error(tmp_path):
    root, _ = make_course(tmp_path)
    with pytest.raises(ValueError, match="local:N needs a positive N"):
        runner.grade("tiny", root, scheduler="local:zero", progress=False)
    assert not (root / "reports" / "tiny" / ".lock").exists() or runner.grade(
        "tiny", root, students=["nobody"], progress=False)  # the lock was released


#: A ``dask worker --preload``: this worker's Python cannot import the course's ``autograder``
#: package (as on a machine without the course); what it was asked for is written to LOG.
NO_COURSE = """
import sys

LOG = {log!r}


class NoCourse:
    def find_spec(self, name, path=None, target=None):
        if name == "autograder" or name.startswith("autograder."):
            with open(LOG, "a") as fh:
                fh.write(name + "\\n")
            raise ImportError(f"{{name}}: this worker has no copy of the course")
        return None


sys.meta_path.insert(0, NoCourse())
"""


def _started(path: Path, process: subprocess.Popen, seconds: float = 120.0) -> dict:
    """The scheduler file ``path`` once the process wrote it (it dies or times out: fail)."""
    deadline = time.monotonic() + seconds
    while not (path.exists() and path.read_text().strip()):
        assert process.poll() is None, f"exited with {process.returncode} before writing {path}"
        assert time.monotonic() < deadline, f"{path} not written within {seconds} s"
        time.sleep(0.1)
    return json.loads(path.read_text())


def test_workers_without_a_copy_of_the_course_grade_it(tmp_path, scratch):
    """`dask scheduler` and `dask worker` processes, as the README starts them on other machines,
    and a worker whose Python cannot import ``autograder``: it grades with the code the job
    brought, the same scores as nbgrader's, and never tries to import the course's package
    (Dask pickles a task with plain pickle, which would name the job function by reference)."""
    roots = []
    for name in ("sequential", "remote"):
        root, release = make_course(tmp_path / name)
        submit(root, release, "good", cases.CORRECT)
        submit(root, release, "wrong", cases.WRONG)
        roots.append(root)
    sequential, root = roots
    nbgrader(sequential, "autograde", "tiny", "--force")
    log, preload = tmp_path / "imports.log", tmp_path / "no_course.py"
    log.write_text("")
    preload.write_text(NO_COURSE.format(log=str(log)))
    dask = str(Path(sys.executable).parent / "dask")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    procs = []
    try:
        procs.append(subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(tmp_path / "scheduler.json")],
            cwd="/", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        address = _started(tmp_path / "scheduler.json", procs[0])["address"]
        procs.append(subprocess.Popen(
            [dask, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
             "--preload", str(preload)],
            cwd="/", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        report = runner.grade("tiny", root, scheduler=address, progress=False)
    finally:
        for proc in procs[::-1]:
            proc.terminate()
            proc.wait(30)
    assert {s: r["status"] for s, r in report["students"].items()} == {
        "good": "graded", "wrong": "graded"}
    assert scores(root) == scores(sequential) and total(root, "good") > total(root, "wrong")
    assert log.read_text() == ""  # the worker never reached for the course's package


class _Child:
    """Stands in for a GradingChild: its scratch course and whether it was killed."""

    def __init__(self, root: Path):
        self.key, self.killed = (str(root), "tiny", "sqlite://", False), False

    def kill(self):
        self.killed = True


def test_end_of_a_run_cleans_up_only_that_run(scratch):
    """Two runs grading on one cluster: the end of one (``cleanup`` with its material's digest)
    stops its grading subprocesses and deletes its scratch courses, and leaves the other's."""
    from types import SimpleNamespace

    from autograder.tools.runner import job

    ours, theirs = job.material_digest(b"run one"), job.material_digest(b"run two")
    assert ours != theirs and len(ours) == 16
    roots = {d: scratch / f"autograder-{os.getpid()}-{i}" / d for i, d in enumerate((ours, theirs))}
    for root in roots.values():
        (root / "autograded").mkdir(parents=True)
    worker = SimpleNamespace(_autograder_children={1: _Child(roots[ours]), 2: _Child(roots[theirs])},
                             _autograder_spares=[])
    mine, other = worker._autograder_children[1], worker._autograder_children[2]
    assert job.cleanup(ours, worker) == 1
    assert mine.killed and not other.killed
    assert worker._autograder_children == {2: other}
    assert not roots[ours].exists() and (roots[theirs] / "autograded").is_dir()
    assert job.cleanup(theirs, worker) == 1 and other.killed and not roots[theirs].exists()
    assert not list(scratch.iterdir())  # the threads' folders went with their last course
