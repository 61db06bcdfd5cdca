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
