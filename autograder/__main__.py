"""``python -m autograder COMMAND ...``: the instructor's grading commands.

* ``grade ASSIGNMENT [--workers N] [--students S ...] [--timeout SECONDS] [--unsandboxed]``:
  autograde every submission with nbgrader, in parallel (:mod:`autograder.tools.runner`).
* ``report ASSIGNMENT``: the HTML and CSV grade report (:mod:`autograder.tools.report`).
* ``similarity ASSIGNMENT``: how much answer code each pair of submissions shares
  (:mod:`autograder.tools.similarity`).
* ``check NOTEBOOK [--html FILE]``: a self-learner's self-check of one notebook, graded as
  ``nbgrader autograde`` would in a scratch copy (:mod:`autograder.tools.selfcheck`).

Grades go to an LMS with nbgrader's own ``nbgrader export`` and this course's exporters
(:mod:`autograder.tools.export`): :data:`EXPORTS` is what ``--help`` prints about them.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "grade": ("autograder.tools.runner", "autograde all submissions of an assignment in parallel"),
    "report": ("autograder.tools.report", "write the HTML and CSV grade report of an assignment"),
    "demo": ("autograder.tools.demo", "grade the sample submissions in a scratch course (yours is not touched), print grades"),
    "release": ("autograder.tools.release", "regenerate release/ from source/ (nbgrader generate_assignment), never over a learner's file"),
    "similarity": ("autograder.tools.similarity",
                   "how much answer code each pair of submissions shares (CSV and a side-by-side page)"),
    "check": ("autograder.tools.selfcheck", "self-check: grade one notebook as nbgrader would, with its diagnoses"),
}

#: The exports, printed by ``--help`` (they are nbgrader commands, not ours).
EXPORTS = """grades to an LMS (nbgrader's export, with this course's exporters; see README.md):
  nbgrader export                                                        grades.csv
  nbgrader export --exporter=autograder.tools.export.CanvasExport --to=canvas.csv
  nbgrader export --exporter=autograder.tools.export.MoodleExport --to=moodle.csv
  (--assignment=02_batchnorm_forward chooses the assignments; default: the graded ones)"""


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``argv[0]`` to its module's ``main(argv[1:])``; print usage for anything else."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        lines = [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
        print("usage: python -m autograder {" + ",".join(COMMANDS) + "} [options]\n\n"
              "commands:\n" + "\n".join(lines) + "\n\n" + EXPORTS, file=sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    module = importlib.import_module(COMMANDS[argv[0]][0])  # lazily: report needs matplotlib
    return module.main(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
