"""Parallel autograding with nbgrader's own autograde: ``python -m autograder grade ASSIGNMENT``.

Every submission ``submitted/<student>/<assignment>/`` is graded by nbgrader's ``Autograde``
converter, the class behind ``nbgrader autograde ASSIGNMENT --student=ID --force``, with the
course's ``nbgrader_config.py``: same preprocessors, same kernel (sandboxed when the config says
so), same gradebook, so the grades and autograded notebooks equal those of a sequential
``nbgrader autograde`` (``tests/test_runner.py`` checks this). What the runner adds:

* **Two backends, one flow.** ``--workers N`` processes on this machine (:mod:`.pool`), or a
  Dask cluster with ``--scheduler ADDRESS`` / ``local:N`` (:mod:`.dask`, :mod:`.job`). Everything
  but the dispatch is :class:`.run.Run`'s. A tqdm bar counts students done and failures.
* **A wall-clock limit per student** (``--timeout``, default 300 s): past it the grading process
  and every process below it are killed and the student is recorded as ``timeout``.
* **Nothing is lost** (:mod:`.gradebook`). If nbgrader fails (kernel death, an exception, the
  limit), a student graded before keeps the earlier grades and autograded folder; a student never
  graded before gets a zero on every cell, so they appear in exports with 0 and the reason.
* **Broken submissions** get a score and a readable reason (:mod:`.inspect`).
* **Interruptions.** Ctrl-C puts back the earlier grades of the students being graded. Two runs
  on the same assignment of a course refuse to overlap (a lock file in ``reports/``).
* **``reports/<assignment>/runs.json``**: ``{"assignment", "workers", "sandboxed", "started",
  "seconds", "students": {id: {"status", "reason", "seconds", "flags"}}}``; status is one of
  ``graded``, ``timeout``, ``crashed``, ``failed``; ``workers`` is the number of Dask worker
  threads with ``--scheduler``. Flags: :func:`.run.notebook_flags` plus the runner's own. Logs of
  every student's nbgrader run go to ``reports/<assignment>/logs/``.

Modules: ``app`` (nbgrader's app, the gradebook URL), ``engines`` (one database engine per
grading process), ``inspect``, ``gradebook``, ``worker`` (the grading loop), ``pool``, ``job``
(what a Dask worker runs), ``dask``, ``run``, ``cli``.
May import ``autograder.checks`` (flag lines), ``autograder.kernel`` and ``autograder.notebooks``.
"""

from autograder.tools.runner.app import (
    DEFAULT_TIMEOUT,
    SQLITE_BUSY_TIMEOUT,
    STATUSES,
    nbgrader_app,
    with_busy_timeout,
)
from autograder.tools.runner.cli import main
from autograder.tools.runner.inspect import inspect_submission, release_notebooks
from autograder.tools.runner.job import kill_tree
from autograder.tools.runner.run import grade, list_students, notebook_flags

__all__ = [
    "DEFAULT_TIMEOUT", "SQLITE_BUSY_TIMEOUT", "STATUSES", "grade", "inspect_submission",
    "kill_tree", "list_students", "main", "nbgrader_app", "notebook_flags", "release_notebooks",
    "with_busy_timeout",
]
