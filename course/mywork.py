"""Your own copy of every assignment: ``mywork/<assignment>/``, made from ``release/`` on first use
and never overwritten.

``release/`` is what the course generated (nbgrader's ``generate_assignment``), and the course's
tools may regenerate it; your work lives in ``mywork/``, which git ignores and no command of the
course writes into except to add a file you do not have yet. This is nbgrader's own model: a
student works in a copy of the released assignment, never in the release. ``make lab`` and
Binder make the copies before JupyterLab opens; by hand::

    python -m course.mywork        # prints the files it copied; copies nothing you already have
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

#: The learner's folder, in the course root.
MYWORK = "mywork"
#: The folder the copies are made from, in the course root.
RELEASE = "release"
#: What is never copied: JupyterLab's checkpoints and Python's caches.
SKIPPED = frozenset({".ipynb_checkpoints", "__pycache__"})


def course_root() -> Path:
    """The course root: the folder that holds ``course/`` (this package), ``release/`` and
    ``mywork/``."""
    return Path(__file__).resolve().parent.parent


def copy_path(assignment: str, filename: str, root: Path | None = None) -> Path:
    """Where your copy of a released file is: ``<root>/mywork/<assignment>/<filename>``.

    Parameters
    ----------
    assignment : str
        The assignment's folder name, e.g. ``"02_batchnorm_forward"``.
    filename : str
        A file of that folder, e.g. ``"batchnorm_forward.ipynb"``.
    root : Path, optional
        The course root (default: :func:`course_root`).

    Raises
    ------
    ValueError
        If ``assignment`` or ``filename`` is not a plain name (empty, ``..``, or with a ``/``).
    """
    for name, value in (("assignment", assignment), ("filename", filename)):
        if not value or value in (".", "..") or "/" in value or os.sep in value:
            raise ValueError(f"{name} must be a plain file or folder name, got {value!r}")
    return (course_root() if root is None else Path(root)) / MYWORK / assignment / filename


def _release_files(release: Path) -> list[Path]:
    """Every regular file below ``release/<assignment>/``, relative to ``release/``, in order,
    without :data:`SKIPPED` folders."""
    found = []
    for folder, dirs, files in os.walk(release):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED)
        rel = Path(folder).relative_to(release)
        if rel == Path("."):
            continue  # files directly in release/ belong to no assignment
        found += [rel / f for f in sorted(files) if (Path(folder) / f).is_file()]
    return found


def make_copies(root: Path | None = None) -> list[Path]:
    """Copy every released file you do not have yet into ``mywork/``; never overwrite one.

    Parameters
    ----------
    root : Path, optional
        The course root (default: :func:`course_root`).

    Returns
    -------
    list of Path
        The files copied now (empty when you have them all). A file already in ``mywork/``,
        edited or not, is left exactly as it is.

    Raises
    ------
    FileNotFoundError
        If ``root`` has no ``release/`` folder.
    """
    root = course_root() if root is None else Path(root)
    release = root / RELEASE
    if not release.is_dir():
        raise FileNotFoundError(f"{release} does not exist: root must be the course's folder")
    copied = []
    for rel in _release_files(release):
        target = root / MYWORK / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:  # "x": created here or not at all, even if another process makes it meanwhile
            with open(release / rel, "rb") as src, open(target, "xb") as dst:
                shutil.copyfileobj(src, dst)
        except FileExistsError:
            continue
        copied.append(target)
    return copied


def main(argv: list[str] | tuple[str, ...] = ()) -> int:
    """``python -m course.mywork [ROOT]``: make the copies and say which; exit status 0.

    From a notebook: ``main()`` (the course this package belongs to)."""
    root = Path(argv[0]) if argv else course_root()
    copied = make_copies(root)
    for path in copied:
        print(f"copied {path.relative_to(root)}")
    print(f"your work is in {root / MYWORK}: {len(copied)} new file(s), nothing overwritten")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
