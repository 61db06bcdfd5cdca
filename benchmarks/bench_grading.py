"""Grading throughput: plain sequential ``nbgrader autograde`` vs the parallel runner.

Run from the repository root::

    .venv/bin/python benchmarks/bench_grading.py                   # 40 submissions of 01
    .venv/bin/python benchmarks/bench_grading.py --students 12     # a quicker look

In a scratch copy of the course it generates the release notebook, builds ``--students``
submissions from it with the sample answers of ``autograder/samples/`` (correct, one mistake,
several mistakes, untouched, in turn; ``autograder.tools.demo.build_submission``), and then grades all
of them three times, one after the other on the same machine, each a full ``--force`` regrade:

* ``sequential``: ``nbgrader autograde ASSIGNMENT --force``, one process, as the README shows;
* ``runner -w1``: ``python -m autograder grade ASSIGNMENT --workers 1``;
* ``runner -w2``: the same with ``--workers 2``.

With ``--repeats R`` it does that R times, rotating the order, and keeps each mode's fastest
run, and prints every round too: on a shared virtual machine the speed of the same job drifts
by 10-20 % from minute to minute, so quote several rounds (``--repeats 3``) rather than one.
It prints wall-clock seconds per submission for each mode and the throughput ratios against
sequential (the target on a 2-core machine is at least 1.7x with 2 workers), checks that all
three left the same grades in the gradebook, and prints the load average from before it
started: on a busy machine the ratios understate the speedup, so say so when you quote them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autograder.course_dir import assignments, put_tools_on_path  # noqa: E402
from autograder.tools.demo import build_submission, load_samples, nbgrader  # noqa: E402

#: Runtime state that the scratch copy must not inherit from the working course.
_SKIP = (".git", ".venv", "submitted", "autograded", "feedback", "reports", "gradebook.db",
         "grades.csv", "__pycache__", ".pytest_cache", ".ruff_cache", "*.egg-info")


def scratch_course(dst: Path, assignment: str, students: int) -> list[str]:
    """Copy the course to ``dst``, release ``assignment``, write ``students`` submissions."""
    shutil.copytree(ROOT, dst, ignore=shutil.ignore_patterns(*_SKIP), symlinks=True)
    nbgrader("generate_assignment", assignment, "--force", root=dst)
    notebook = assignments(dst)[assignment]
    samples = load_samples(notebook).STUDENTS
    names = sorted(samples)
    ids = []
    for i in range(students):
        sample = samples[names[i % len(names)]]
        student = f"bench_{i:03d}"
        folder = dst / "submitted" / student / assignment
        folder.mkdir(parents=True)
        nb = build_submission(dst / "release" / assignment / notebook, sample["answers"])
        nbformat.write(nb, folder / notebook)
        (folder / "timestamp.txt").write_text("2026-11-20 09:00:00.000000 UTC\n")
        ids.append(student)
    return ids


def totals(root: Path, assignment: str) -> dict[str, float]:
    """``{student: autograded points}`` from the gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        return {
            sub.student.id: round(sum(g.auto_score or 0.0 for nb in sub.notebooks for g in nb.grades), 9)
            for sub in gb.find_assignment(assignment).submissions
        }


def timed(cmd: list[str], root: Path) -> float:
    """Wall-clock seconds of one command run from the course root (which must succeed)."""
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-3000:] + result.stderr[-3000:])
        raise SystemExit(f"{' '.join(cmd[:4])} failed with exit code {result.returncode}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignment", default="01_standardization",
                        help="assignment to grade (default 01_standardization)")
    parser.add_argument("--students", type=int, default=40, help="submissions (default 40)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="rounds, each mode once per round in rotating order; the minimum "
                             "counts (default 1)")
    args = parser.parse_args(argv)
    if args.students < 1:
        parser.error(f"--students must be at least 1, got {args.students}")
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")

    bindir = Path(sys.executable).parent
    put_tools_on_path()
    runner = [sys.executable, "-m", "autograder", "grade", args.assignment]
    modes = {
        "sequential": [str(bindir / "nbgrader"), "autograde", args.assignment, "--force"],
        "runner -w1": [*runner, "--workers", "1"],
        "runner -w2": [*runner, "--workers", "2"],
    }
    load_before = os.getloadavg()  # before the benchmark's own work raises it
    with tempfile.TemporaryDirectory(prefix="bench_grading_") as tmp:
        root = Path(tmp) / "course"
        ids = scratch_course(root, args.assignment, args.students)
        rounds: dict[str, list[float]] = {name: [] for name in modes}
        grades = {}
        names = list(modes)
        for round_ in range(args.repeats):
            for name in names[round_ % 3:] + names[: round_ % 3]:
                print(f"round {round_ + 1}: grading {len(ids)} submissions: {name} ...", flush=True)
                rounds[name].append(timed(modes[name], root))
                grades[name] = totals(root, args.assignment)
        seconds = {name: min(rounds[name]) for name in names}

    n = len(ids)
    print(f"\n{args.assignment}, {n} submissions, {os.cpu_count()} CPUs; 1-minute load average "
          f"{load_before[0]:.2f} before the benchmark started")
    print(f"{'mode':<12} {'total [s]':>10} {'s/submission':>13} {'throughput vs sequential':>25}")
    base = seconds["sequential"]
    for name, sec in seconds.items():
        print(f"{name:<12} {sec:>10.1f} {sec / n:>13.2f} {base / sec:>24.2f}x")
    if args.repeats > 1:
        print("\nevery round (s/submission; a shared machine drifts between rounds):")
        for name in names:
            print(f"{name:<12} " + " ".join(f"{sec / n:6.2f}" for sec in rounds[name]))
    same = all(g == grades["sequential"] and len(g) == n for g in grades.values())
    print(f"\ngrades identical in all three runs: {'yes' if same else 'NO'}")
    if load_before[0] > 0.5:
        print("note: the machine was already busy (load average above 0.5): other jobs compete "
              "with the workers, so the ratios understate the speedup on an idle machine.")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
