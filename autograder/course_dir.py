"""The course directory: its root, its nbgrader configuration, the assignments it teaches, and
the environment nbgrader's commands run in.

The repository root is nbgrader's course directory (``nbgrader_config.py`` lives there). Every
module that needs a path into the course asks here, so the root is computed in one place; the
PATH set-up for nbgrader's helper programs is here too (:func:`with_tools_on_path`).

Imports only the standard library at module level (nbgrader and traitlets inside functions), so
anything may import it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

#: The course root: the folder holding ``autograder/``, ``course/``, ``source/`` and ``release/``.
ROOT = Path(__file__).resolve().parent.parent

#: The hidden half's own folder (``autograder/``).
PACKAGE_DIR = Path(__file__).resolve().parent

#: The course's nbgrader configuration file, in the root.
CONFIG_FILE = "nbgrader_config.py"


def load_config(root: Path = ROOT):
    """The course's nbgrader configuration, loaded the one way nbgrader itself loads it.

    Parameters
    ----------
    root : Path
        The nbgrader course directory (it holds ``nbgrader_config.py``).

    Returns
    -------
    traitlets.config.Config
        What ``nbgrader_config.py`` sets, e.g. ``config.CourseDirectory.db_url``.

    Raises
    ------
    ValueError
        If ``root`` holds no ``nbgrader_config.py``.

    Notes
    -----
    ``os.environ`` is left as it was: what the file sets there is for nbgrader's own process.
    """
    from traitlets.config.loader import PyFileConfigLoader

    root = Path(root)
    if not (root / CONFIG_FILE).is_file():
        raise ValueError(f"root must be an nbgrader course directory with {CONFIG_FILE}, got {root}")
    # The file puts the course on os.environ's PYTHONPATH for the kernels of the nbgrader
    # process that loads it. Read here only for its values, it must not change this process's
    # environment: every later subprocess (a server, a terminal, a grading run of another
    # course copy) would import the grader from this root.
    with environ_kept():
        return PyFileConfigLoader(CONFIG_FILE, path=str(root)).load_config()


@contextlib.contextmanager
def environ_kept() -> Iterator[None]:
    """Inside the block, ``os.environ`` may change; afterwards it is exactly as it was
    (variables added are removed, changed or removed ones put back), also after an exception.
    """
    before = os.environ.copy()
    try:
        yield
    finally:
        for name in set(os.environ) - set(before):
            del os.environ[name]
        os.environ.update(before)


def course_directory(root: Path = ROOT):
    """nbgrader's ``CourseDirectory`` for the course at ``root`` (paths, ``db_url``).

    Raises
    ------
    ValueError
        If ``root`` holds no ``nbgrader_config.py``.
    """
    from nbgrader.coursedir import CourseDirectory

    return CourseDirectory(config=load_config(root), root=str(root))


def assignments(root: Path = ROOT) -> dict[str, str]:
    """``{assignment: notebook file name}`` in teaching order, as ``nbgrader_config.py`` declares
    them in its ``ASSIGNMENTS`` table (e.g. ``{"01_standardization": "standardization.ipynb"}``).

    Raises
    ------
    ValueError
        If ``root`` holds no ``nbgrader_config.py``, or it declares no ``ASSIGNMENTS``.
    """
    import runpy

    from traitlets.config import Config

    root = Path(root)
    if not (root / CONFIG_FILE).is_file():
        raise ValueError(f"root must be an nbgrader course directory with {CONFIG_FILE}, got {root}")
    namespace = runpy.run_path(str(root / CONFIG_FILE), init_globals={"get_config": Config})
    if not isinstance(namespace.get("ASSIGNMENTS"), dict):
        raise ValueError(f"{root / CONFIG_FILE} must define an ASSIGNMENTS dict")
    return dict(namespace["ASSIGNMENTS"])


def is_inside(path: Path | str, folder: Path | str) -> bool:
    """Whether ``path`` is ``folder`` or lies below it, compared as written (resolve both first
    where symbolic links or ``..`` matter).

    Parameters
    ----------
    path, folder : Path or str
        Two paths of the same kind (both absolute, or both relative to the same folder).

    Returns
    -------
    bool
        ``True`` for ``is_inside("/c/autograded/s", "/c")`` and ``is_inside("/c", "/c")``;
        ``False`` for ``is_inside("/cc", "/c")`` (a sibling sharing a prefix).
    """
    path, folder = Path(path), Path(folder)
    return path == folder or folder in path.parents


def with_tools_on_path(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``environ`` whose ``PATH`` starts with this Python's ``bin`` folder.

    nbgrader runs helper programs by name (``alembic`` for gradebook migrations, ``jupyter``,
    kernels): they must be this environment's copies, also when the venv is not activated.

    Parameters
    ----------
    environ : mapping of str to str, optional
        The environment to start from; ``os.environ`` by default. It is not modified.

    Returns
    -------
    dict of str to str
        ``environ`` with ``PATH`` = ``<sys.executable's folder>:<PATH>`` (unchanged when that
        folder is already on it).
    """
    env = dict(os.environ if environ is None else environ)
    bindir = os.path.dirname(sys.executable)
    path = env.get("PATH", "")
    if bindir not in path.split(os.pathsep):
        env["PATH"] = os.pathsep.join(p for p in (bindir, path) if p)
    return env


def put_tools_on_path() -> None:
    """Put this Python's ``bin`` folder first on this process's ``PATH`` (see
    :func:`with_tools_on_path`); idempotent."""
    os.environ["PATH"] = with_tools_on_path()["PATH"]
