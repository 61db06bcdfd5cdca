"""``python -m autograder grade ASSIGNMENT [--workers N | --scheduler ADDRESS] ...``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from autograder.tools.runner.app import DEFAULT_TIMEOUT, STATUSES
from autograder.tools.runner.run import grade


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m autograder grade",
        description="Autograde all submissions of an assignment with nbgrader, in parallel.",
    )
    parser.add_argument("assignment", help="assignment id, e.g. 02_batchnorm_forward")
    parser.add_argument("--workers", type=int, default=max(1, os.cpu_count() or 1),
                        help="grading processes (default: the number of CPUs)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="grade on a Dask cluster instead: its scheduler's address "
                             "(tcp://host:8786), or local:N for a LocalCluster of N workers")
    parser.add_argument("--students", nargs="+", metavar="S", help="only these student ids")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"wall-clock limit per student in seconds (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--unsandboxed", action="store_true",
                        help="run student code without the sandbox (warns; flags every student)")
    parser.add_argument("--root", type=Path, default=Path.cwd(),
                        help="course directory (default: the current directory)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, grade, print a one-line summary; 2 on a usage error."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    if args.timeout <= 0:
        parser.error(f"--timeout must be positive, got {args.timeout}")
    logging.getLogger("traitlets").setLevel(logging.WARNING)
    try:
        report = grade(args.assignment, args.root, args.workers, args.students, args.timeout,
                       args.unsandboxed, scheduler=args.scheduler)
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
