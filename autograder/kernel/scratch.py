"""The kernel's private scratch folder: made from the autograded folder, removed whatever is left.

The sandboxed kernel never works in ``autograded/<student>/<assignment>/``, the folder nbgrader
writes the graded notebook into: a symlink planted there would make nbgrader write through it
(into ``source/``, ``nbgrader_config.py`` or the gradebook), a FIFO would block it. The kernel
works in a scratch copy instead (:func:`copy_regular_tree`), bound at the autograded folder's
path inside the sandbox, and everything it leaves there is thrown away (:func:`remove_tree`):
nbgrader only reads the kernel's outputs, from its messages.
"""

from __future__ import annotations

import itertools
import os
import shutil
import stat
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def copy_regular_tree(src: Path, dst: Path) -> list[str]:
    """Copy the regular files and folders of ``src`` into ``dst`` (created), nothing else.

    Links, FIFOs, sockets and devices are skipped (never followed or opened); the walk is
    iterative, so a deep tree cannot raise ``RecursionError``.

    Parameters
    ----------
    src : Path
        The folder to copy (the autograded folder, as nbgrader laid it out).
    dst : Path
        The scratch folder; must not exist yet.

    Returns
    -------
    list of str
        The relative paths skipped because they were not regular files or folders.

    Raises
    ------
    FileExistsError
        If ``dst`` exists.
    """
    dst.mkdir(mode=0o755)
    skipped: list[str] = []
    stack = [Path(".")]
    while stack:
        rel = stack.pop()
        with os.scandir(src / rel) as entries:
            for entry in entries:
                mode = entry.stat(follow_symlinks=False).st_mode
                child = rel / entry.name
                if stat.S_ISDIR(mode):
                    (dst / child).mkdir(mode=0o755)
                    stack.append(child)
                elif stat.S_ISREG(mode):
                    fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
                                 | os.O_CLOEXEC)
                    with os.fdopen(fd, "rb") as fin, open(dst / child, "xb") as fout:
                        shutil.copyfileobj(fin, fout)
                    os.chmod(dst / child, 0o644)
                else:
                    skipped.append(child.as_posix())
    return skipped


def remove_tree(path: Path) -> None:
    """Remove ``path`` and everything in it, whatever a kernel made of it.

    Survives folders of any depth (subfolders are moved up into ``path`` one level at a time,
    so no path grows long and nothing recurses), folders without permissions (each is given
    ``0o700`` before it is emptied; it is the grader's, or the grader is root), symlinks (removed,
    never followed), FIFOs and sockets (unlinked, never opened). A missing ``path`` is fine.

    Raises
    ------
    OSError
        If something cannot be removed at all (e.g. an immutable file); the message names it.
    """
    try:
        top = os.open(path, _DIR_FLAGS)
    except FileNotFoundError:
        return
    except OSError:  # a file, a link or a FIFO where a folder was expected
        os.unlink(path)
        return
    names = (f".rm-{n}" for n in itertools.count())
    try:
        os.fchmod(top, 0o700)
        while True:
            entries = list(os.scandir(top))
            if not entries:
                break
            for entry in entries:
                if not entry.is_dir(follow_symlinks=False):
                    os.unlink(entry.name, dir_fd=top)
                    continue
                _hoist(top, entry.name, names)
                os.rmdir(entry.name, dir_fd=top)
    finally:
        os.close(top)
    os.rmdir(path)


def _hoist(top: int, name: str, names) -> None:
    """Empty the folder ``name`` of ``top``: unlink its files, move its folders up into ``top``."""
    fd = os.open(name, _DIR_FLAGS, dir_fd=top)
    try:
        os.fchmod(fd, 0o700)
        for entry in list(os.scandir(fd)):
            if entry.is_dir(follow_symlinks=False):
                new = next(names)
                while os.path.lexists(f"/proc/self/fd/{top}/{new}"):
                    new = next(names)
                os.rename(entry.name, new, src_dir_fd=fd, dst_dir_fd=top)
            else:
                os.unlink(entry.name, dir_fd=fd)
    finally:
        os.close(fd)
