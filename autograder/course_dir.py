"""The course directory: its root, and the assignments it teaches.

The repository root is nbgrader's course directory (``nbgrader_config.py`` lives there). Every
module that needs a path into the course asks here, so the root is computed in one place.
"""

from __future__ import annotations

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
    """
    from traitlets.config.loader import PyFileConfigLoader

    root = Path(root)
    if not (root / CONFIG_FILE).is_file():
        raise ValueError(f"root must be an nbgrader course directory with {CONFIG_FILE}, got {root}")
    return PyFileConfigLoader(CONFIG_FILE, path=str(root)).load_config()


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
