"""Hostile kernels against the grader's channels, graded for real (issue 19, section 2).

Every case of ``tests/hostile/channel_cases.py`` is graded through both front doors,
``nbgrader autograde`` and ``python -m autograder grade``, after an honest student with the same
``f`` (which scores 1 of 2) and before a correct one (``zz_after``). Each must score no more than
the honest student, leave every file outside the students' own autograded folders as it was,
let the run grade ``zz_after``, and keep the grading process under 500 MB. The pieces (the
relay, the grader's channel, the log) are tested alone in ``tests/test_relay.py``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest
from conftest import load_hostile_cases, require_bwrap
from test_hygiene import PEAK_RSS, peak_rss_mb, snapshot
from test_sandbox import ASSIGNMENT, autograded, released_course, score, submit

from autograder.course_dir import with_tools_on_path
from autograder.kernel import terminal
from autograder.notebooks import trusted_flags

cases = load_hostile_cases("channel_cases")
#: The most the grading process may hold (the issue's bound; honest grading takes ~135 MB).
PEAK_LIMIT_MB = 500


# -- graded for real, through both front doors ---------------------------------------------

HONEST_STUDENT, AFTER = "honest", "zz_after"
STUDENTS = {HONEST_STUDENT: cases.HONEST, **{n: c.answer for n, c in cases.CASES.items()},
            AFTER: cases.GOOD}


@pytest.fixture(scope="module")
def channel_course(tmp_path_factory):
    """The scratch course of tests/test_sandbox.py (assignment 99_sandbox)."""
    require_bwrap()
    return released_course(tmp_path_factory.mktemp("channels") / "course")


def _peak_of_tree(proc: subprocess.Popen) -> dict[int, float]:
    """Poll the peak resident memory (VmHWM, MB) of ``proc`` and its direct children (the
    runner's grading processes; the kernels are their children, not counted) until it ends."""
    import psutil

    peaks: dict[int, float] = {}
    while proc.poll() is None:
        try:
            tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children()]
        except psutil.NoSuchProcess:
            break
        for p in tree:
            try:
                text = Path(f"/proc/{p.pid}/status").read_text()
                peaks[p.pid] = max(peaks.get(p.pid, 0), int(text.split("VmHWM:")[1].split()[0])
                                   / 1000)
            except (OSError, IndexError):
                pass
        time.sleep(0.1)  # a sampling interval: VmHWM keeps the peak between two samples
    return peaks


def _grade(root: Path, door: str, tmp: Path) -> dict:
    """Submit every student as ``<door>_<name>`` and grade them all in one run of ``door``."""
    students = [f"{door}_{name}" for name in STUDENTS]
    for name, answer in STUDENTS.items():
        submit(root, f"{door}_{name}", answer)
    skip = {root / "autograded" / s for s in students} | {root / "gradebook.db",
                                                         root / "reports" / ASSIGNMENT}
    for made in ("autograded", "reports"):  # what the first run of each makes
        (root / made).mkdir(exist_ok=True)
    before = snapshot(root, skip)
    env = with_tools_on_path({**os.environ, "TMPDIR": str(tmp)})
    if door == "nb":
        cmd = [sys.executable, "-c", PEAK_RSS, "autograde", ASSIGNMENT, "--student=nb_*"]
    else:
        cmd = [sys.executable, "-m", "autograder", "grade", ASSIGNMENT, "--students", *students,
               "--workers", "1", "--root", str(root)]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    out: dict = {}
    reader = threading.Thread(target=lambda: out.update(zip(("stdout", "stderr"),
                                                            proc.communicate(timeout=900),
                                                            strict=True)))
    reader.start()
    peaks = _peak_of_tree(proc)
    reader.join()
    seconds = time.monotonic() - start
    if door == "nb":
        peak = peak_rss_mb(out["stderr"])
        log = out["stderr"]
    else:
        peak = max(peaks.values())
        logs = root / "reports" / ASSIGNMENT / "logs"
        log = "\n".join(p.read_text() for p in sorted(logs.glob("*.log")))
    print(f"{door}: {len(students)} students in {seconds:.0f} s, grader peak {peak:.0f} MB")
    return {"root": root, "door": door, "returncode": proc.returncode, "peak": peak, "log": log,
            "stderr": out["stderr"], "before": before, "after": snapshot(root, skip),
            "tmp": tmp}


@pytest.fixture(scope="module", params=["nb", "runner"])
def graded_by(request, channel_course, tmp_path_factory):
    """The run of one front door: ``nb`` (``nbgrader autograde``) or ``runner``
    (``python -m autograder grade``)."""
    return _grade(channel_course, request.param, tmp_path_factory.mktemp("kernels"))




def _student(graded: dict, name: str) -> str:
    return f"{graded['door']}_{name}"


@pytest.mark.nbgrader
@pytest.mark.requires_bwrap
def test_the_run_finished_and_graded_the_next_student(graded_by):
    assert graded_by["returncode"] == 0, graded_by["stderr"][-3000:]
    assert score(graded_by["root"], _student(graded_by, HONEST_STUDENT)) == 1
    assert score(graded_by["root"], _student(graded_by, AFTER)) == 2
    if graded_by["door"] == "runner":
        runs = json.loads((graded_by["root"] / "reports" / ASSIGNMENT / "runs.json").read_text())
        assert {s: r["status"] for s, r in runs["students"].items()
                if s.startswith("runner_")} == {f"runner_{n}": "graded" for n in STUDENTS}


@pytest.mark.nbgrader
@pytest.mark.requires_bwrap
@pytest.mark.parametrize("name", list(cases.CASES))
def test_a_hostile_kernel_scores_no_more_than_honest_code(graded_by, name):
    case, root = cases.CASES[name], graded_by["root"]
    honest = score(root, _student(graded_by, HONEST_STUDENT))
    got = score(root, _student(graded_by, name))
    assert got <= honest and got == case.score, graded_by["stderr"][-3000:]
    nb = nbformat.read(autograded(root, _student(graded_by, name)), as_version=4)
    assert set(case.flags) <= {kind for kind, _ in trusted_flags(nb)}, trusted_flags(nb)


@pytest.mark.nbgrader
@pytest.mark.requires_bwrap
def test_the_grader_stayed_under_500_mb(graded_by):
    # before the relay: 950 MB (iopub_frames), 1115 MB (shell_big), 884 MB (stdin_flood),
    # 893 MB (control_flood), 367 MB (big_reply), each graded alone; an honest student 134 MB
    assert graded_by["peak"] < PEAK_LIMIT_MB, graded_by["peak"]


@pytest.mark.nbgrader
@pytest.mark.requires_bwrap
def test_nothing_outside_the_students_own_output_changed(graded_by):
    before, after = graded_by["before"], graded_by["after"]
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert changed == [], [(k, before.get(k), after.get(k)) for k in changed[:20]]
    assert sorted(p.name for p in graded_by["tmp"].iterdir()) == []  # kernels' and relays'


@pytest.mark.nbgrader
@pytest.mark.requires_bwrap
def test_kernel_text_never_reads_as_a_line_of_the_graders_log(graded_by):
    log = graded_by["log"]  # the terminal (nbgrader), the students' and workers' logs (runner)
    assert f"kernel output: '[AutogradeApp | INFO] {cases.FORGED} (stderr)'" in log
    forged = [line for line in log.splitlines() if cases.FORGED in line
              and not line.startswith(INDENTED) and not QUOTED.match(line)]
    assert forged == []


INDENTED = terminal.INDENT
#: A line of the grader's log that quotes the kernel's output (terminal.KernelOutputPump).
QUOTED = re.compile(r"\[(\w+ \| )?INFO\] kernel output: (['\"]).*\2$")
