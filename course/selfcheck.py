"""Check my work, from the notebook: the last cell of every assignment calls :func:`check_my_work`.

It grades the learner's *saved* notebook with the course's hidden checks, exactly as the
instructor's ``nbgrader autograde`` would, by running the course's self-check
(``python -m autograder check NOTEBOOK``, which works in a scratch copy of the course and never
touches its gradebook), and prints the self-check's own report into the cell: points, the parts
that passed and failed, your value beside the expected one, and each diagnosis.

This module is published to students with the rest of ``course/``, so it holds no solution and
imports nothing of ``autograder/`` (the hidden half): it only starts the self-check as a
separate program when the full course repository is there. In a class release, which has no
hidden half, it says that the instructor grades. While nbgrader grades or validates the
notebook, it does nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from course.mywork import course_root
from course.testing import running_under_nbgrader

#: What the cell says in a copy of the course without the hidden checks (a class release).
IN_A_CLASS = ("This copy of the course has no hidden checks (a class release): your instructor "
              "grades your work. Until then, the visible tests above are yours to run.")
#: What the cell says while nbgrader runs the notebook (grading, Validate).
UNDER_NBGRADER = "Check my work is skipped while nbgrader grades or validates this notebook."
#: What the cell says in the instructor's source notebook.
IN_SOURCE = ("This is the course's source notebook (with the solutions): Check my work checks "
             "a learner's copy of it (mywork/).")
#: The marker of an exercise not written yet (the stub nbgrader leaves in the release).
STUB = "raise NotImplementedError"


def find_full_course(start: Path) -> Path | None:
    """The course repository with the hidden checks that holds ``start`` (or, failing that, the
    one this package was installed from), or None in a class release.

    A folder counts when it has ``nbgrader_config.py``, ``source/`` and ``autograder/checks/``.
    """
    candidates = [start, *start.parents, course_root()]
    for folder in candidates:
        if ((folder / "nbgrader_config.py").is_file() and (folder / "source").is_dir()
                and (folder / "autograder" / "checks").is_dir()):
            return folder
    return None


def saved_notebook(notebook: str) -> Path:
    """The file of the notebook this kernel runs: the path Jupyter's server gives its kernels
    (``JPY_SESSION_NAME``), else ``notebook`` in the kernel's working folder (the notebook's).

    Raises
    ------
    ValueError
        If ``notebook`` is not a plain ``.ipynb`` file name.
    """
    if not notebook.endswith(".ipynb") or "/" in notebook or os.sep in notebook:
        raise ValueError(f"notebook must be a notebook's file name (*.ipynb), got {notebook!r}")
    session = os.environ.get("JPY_SESSION_NAME", "")
    if session.endswith(".ipynb") and Path(session).is_file():
        return Path(session).resolve()
    return (Path.cwd() / notebook).resolve()


def unwritten(path: Path) -> bool:
    """Whether every code exercise of the saved notebook at ``path`` is still the release's stub
    (nothing to check yet). A notebook that cannot be read counts as written: the self-check
    then says what is wrong with it."""
    try:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        answers = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
                   for c in cells if c.get("cell_type") == "code"
                   and c.get("metadata", {}).get("nbgrader", {}).get("solution")]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    return bool(answers) and all(STUB in source for source in answers)


def check_my_work(notebook: str) -> None:
    """Grade the saved notebook with the hidden checks and print the self-check's report.

    Parameters
    ----------
    notebook : str
        The notebook's file name, e.g. ``"batchnorm_forward.ipynb"``; used when the Jupyter
        server does not say which file this kernel runs (see :func:`saved_notebook`).

    Returns
    -------
    None
        Everything is printed (to standard output only: Validate fails a cell that writes to
        standard error): the report, or one line saying why nothing was checked.

    Raises
    ------
    ValueError
        If ``notebook`` is not a notebook's file name.
    """
    path = saved_notebook(notebook)
    if running_under_nbgrader():
        print(UNDER_NBGRADER)
        return
    root = find_full_course(path.parent)
    if root is None:
        print(IN_A_CLASS)
        return
    if (root / "source") in path.parents:
        print(IN_SOURCE)
        return
    if not path.is_file():
        print(f"{path} is not saved yet: save the notebook (Ctrl+S), then run this cell again.")
        return
    if unwritten(path):
        print(f"Nothing to check yet in the saved {path.name}: every exercise still says "
              f"`{STUB}()`. Write one, save the notebook (Ctrl+S), then run this cell again.")
        return
    saved = time.strftime("%H:%M:%S", time.localtime(path.stat().st_mtime))
    print(f"Checking {path.name} as saved at {saved} (save with Ctrl+S first); this takes "
          "about half a minute...", flush=True)
    bindir = os.path.dirname(sys.executable)  # nbgrader runs `alembic` and kernels from PATH
    env = {**os.environ, "PATH": os.pathsep.join([bindir, os.environ.get("PATH", "")])}
    for name in ("JPY_SESSION_NAME", "PYTHONPATH", "MPLBACKEND"):
        env.pop(name, None)  # this kernel's, not the grading's
    result = subprocess.run([sys.executable, "-m", "autograder", "check", str(path)], cwd=root,
                            env=env, capture_output=True, text=True)
    if result.stdout.strip():
        print(result.stdout.rstrip())
    if result.returncode > 1 or not result.stdout.strip():
        print(result.stderr.strip() or f"the self-check stopped (exit status {result.returncode})")
