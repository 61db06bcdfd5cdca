"""``python -m autograder COMMAND ...``: the instructor's grading commands.

* ``grade ASSIGNMENT [--workers N] [--students S ...] [--timeout SECONDS] [--unsandboxed]``:
  autograde every submission with nbgrader, in parallel (:mod:`autograder.tools.runner`).
* ``report ASSIGNMENT``: the HTML and CSV grade report (:mod:`autograder.tools.report`).
* ``check NOTEBOOK [--html FILE]``: a self-learner's self-check of one notebook, graded as
  ``nbgrader autograde`` would in a scratch copy (:mod:`autograder.tools.selfcheck`).
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "grade": ("autograder.tools.runner", "autograde all submissions of an assignment in parallel"),
    "report": ("autograder.tools.report", "write the HTML and CSV grade report of an assignment"),
    "demo": ("autograder.tools.demo", "build the release, autograde the sample submissions, print grades"),
    "release": ("autograder.tools.release", "regenerate release/ from source/ (nbgrader generate_assignment), never over a learner's file"),
    "check": ("autograder.tools.selfcheck", "self-check: grade one notebook as nbgrader would, with its diagnoses"),
}


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``argv[0]`` to its module's ``main(argv[1:])``; print usage for anything else."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        lines = [f"  {name:<7} {help_}" for name, (_, help_) in COMMANDS.items()]
        print("usage: python -m autograder {" + ",".join(COMMANDS) + "} [options]\n\n"
              "commands:\n" + "\n".join(lines), file=sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    module = importlib.import_module(COMMANDS[argv[0]][0])  # lazily: report needs matplotlib
    return module.main(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
