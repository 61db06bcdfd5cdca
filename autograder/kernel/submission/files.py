"""The front door's first step: what a submission folder holds (:func:`scan`), and reading or
copying one of its files without following a link or blocking on a FIFO.

Nothing here opens a path by name from the course root down: a folder is opened with
``O_DIRECTORY | O_NOFOLLOW`` relative to its parent's descriptor, one component at a time, and a
file with ``O_NOFOLLOW | O_NONBLOCK`` after an ``lstat``, then checked again with ``fstat``
(still a regular file with one name, the same inode the scan saw, within its size). A FIFO
therefore never blocks, a link is never followed, and a file swapped for either between the
scan and the read is refused. The walk is a loop over an explicit stack, never recursion, so a
chain of 1,100 folders is a finding, not a ``RecursionError``.

Sizes are measured twice (:attr:`FileEntry.footprint`): the apparent size (``st_size``, what a
reader gets) and the blocks used (``st_blocks * 512``, what the disk holds). A sparse file is
large by the first, a file the kernel has not flushed yet can be large by the second.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from autograder.notebooks import terminal_safe

MiB = 1024**2

#: Folder levels allowed below the submission folder (``a/b/c.py`` is 2 levels).
MAX_DEPTH = 8
#: Files and folders allowed in one submission.
MAX_FILES = 500
#: Size of one submission's files in all, bytes, by apparent size and by blocks used
#: (:attr:`FileEntry.footprint`); files past it are left out of grading.
MAX_TOTAL_BYTES = 100 * MiB
#: Size of one notebook file, bytes.
MAX_NOTEBOOK_BYTES = 20 * MiB
#: The submission time nbgrader reads (``submitted/<student>/<assignment>/timestamp.txt``).
TIMESTAMP = "timestamp.txt"
#: Bytes of ``timestamp.txt`` read at most (nbgrader writes about 30).
MAX_TIMESTAMP_BYTES = 1000
#: Bytes read or written at a time when a file is copied.
CHUNK = 1 * MiB

_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class RejectedSubmission(ValueError):
    """A submission that breaks a rule; ``str(exc)`` is the reason, in plain words."""


@dataclass(frozen=True)
class FileEntry:
    """One regular file of a submission, as :func:`scan` saw it (``lstat``, never opened).

    Attributes
    ----------
    rel : str
        Its path below the submission folder, with ``/`` (``"data/x.csv"``).
    size : int
        Apparent size, bytes (``st_size``).
    blocks : int
        Disk used, bytes (``st_blocks * 512``).
    dev, ino : int
        Its identity, checked again when it is opened.
    """

    rel: str
    size: int
    blocks: int
    dev: int = field(default=0, compare=False)
    ino: int = field(default=0, compare=False)

    @property
    def footprint(self) -> int:
        """The larger of the apparent size and the disk used, bytes: what the size rules count."""
        return max(self.size, self.blocks)


@dataclass
class Scan:
    """What :func:`scan` found in one submission folder.

    Attributes
    ----------
    folder : Path
        ``submitted/<student>/<assignment>``.
    files : list of FileEntry
        Every regular file, sorted by path (complete only when ``problem`` is None).
    problem : str or None
        The rule the folder breaks (a link, a FIFO, a hard link, too deep, too many entries,
        unreadable), in plain words; None when it breaks none. A folder that does not exist is
        not a problem of the scan: ``exists`` is then False.
    exists : bool
        Whether the submission folder exists (as a real folder or anything else).
    """

    folder: Path
    files: list[FileEntry] = field(default_factory=list)
    problem: str | None = None
    exists: bool = True


def printable(text: str, limit: int = 500) -> str:
    """``text`` safe for a terminal and a log: control characters (escape sequences included)
    replaced by ``?``, cut at ``limit`` characters."""
    text = "".join(ch if ch.isprintable() else "?" for ch in terminal_safe(str(text)))
    return text if len(text) <= limit else text[:limit] + "..."


def kind_of(mode: int) -> str:
    """What a file mode is, in words (``"a symbolic link"``, ``"a FIFO"``, ...)."""
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device"), (stat.S_ISDIR, "a folder"),
                       (stat.S_ISREG, "a regular file")):
        if test(mode):
            return name
    return "a special file"


def check_student_id(student: object) -> str:
    """``student`` if it is a literal student id: one path component, never a glob or a path.

    Parameters
    ----------
    student : str
        A student id as given on a command line or found in ``submitted/``.

    Returns
    -------
    str
        ``student``, unchanged. It is only ever used as one literal folder name below
        ``submitted/`` (never as a glob pattern or a shell word).

    Raises
    ------
    ValueError
        If it is not a non-empty string, is ``.`` or ``..``, or holds ``/``, a NUL or another
        control character.
    """
    if not isinstance(student, str) or not student:
        raise ValueError(f"a student id must be a non-empty string, got {student!r}")
    if student in (".", "..") or "/" in student or not student.isprintable():
        raise ValueError(f"a student id must be one folder name below submitted/ (no '/', "
                         f"'.', '..' or control characters), got {printable(repr(student), 80)}")
    return student


# ----------------------------------------------------------------------------- descriptors
@contextlib.contextmanager
def open_folder(folder: Path, rel: str = "") -> Iterator[int]:
    """A descriptor of ``folder / rel``, opened one component at a time without following a
    link: ``folder`` itself is opened relative to its parent, so neither may be a link.

    Raises
    ------
    OSError
        ``ELOOP``/``ENOTDIR`` when a component is a link or not a folder.
    """
    folder = Path(folder)
    fd = os.open(folder.parent, _DIR_FLAGS & ~os.O_NOFOLLOW)  # the instructor's path
    try:
        for part in [folder.name, *(p for p in rel.split("/") if p)]:
            if part in (".", ".."):
                raise OSError(f"{part!r} in a path below the submission")
            new = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = new
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def open_regular(folder: Path, entry: FileEntry, limit: int) -> Iterator[int]:
    """A read-only descriptor of the file ``entry`` of ``folder``, checked to be the regular
    file that :func:`scan` saw (one name, same inode) and at most ``limit`` bytes long.

    Raises
    ------
    RejectedSubmission
        If the file changed since the scan (now a link, a FIFO, another file, larger).
    OSError
        If it cannot be opened.
    """
    parent, _, name = entry.rel.rpartition("/")
    with open_folder(folder, parent) as dir_fd:
        try:
            fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENXIO):  # a link, a FIFO or socket meanwhile
                raise RejectedSubmission(f"{entry.rel} changed while it was read") from None
            raise
    try:
        st = os.fstat(fd)
        same = (st.st_dev, st.st_ino) == (entry.dev, entry.ino) or not entry.ino
        if not (stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and same
                and st.st_size <= limit):
            raise RejectedSubmission(f"{entry.rel} changed while it was read")
        yield fd
    finally:
        os.close(fd)


def read_regular(folder: Path, entry: FileEntry, limit: int) -> bytes:
    """The bytes of the file ``entry`` (see :func:`open_regular`), at most ``limit``.

    Raises
    ------
    RejectedSubmission
        If it changed since the scan or holds more than ``limit`` bytes after all.
    """
    with open_regular(folder, entry, limit) as fd:
        return _read_fd(fd, limit, f"{entry.rel} changed while it was read")


def _read_fd(fd: int, limit: int, too_long: str) -> bytes:
    """Everything left in ``fd``, at most ``limit`` bytes (``RejectedSubmission(too_long)``
    past that)."""
    chunks, total = [], 0
    while chunk := os.read(fd, min(CHUNK, limit + 1 - total)):
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise RejectedSubmission(too_long)
    return b"".join(chunks)


def read_path(path: Path, limit: int) -> bytes:
    """The bytes of one file named by the caller (a learner's own notebook): ``lstat``, then
    opened with ``O_NOFOLLOW | O_NONBLOCK`` and checked with ``fstat`` to be that regular
    file, read up to ``limit`` bytes.

    Raises
    ------
    RejectedSubmission
        If it is not a regular file (a link, a FIFO, a folder), is larger than ``limit`` or
        changed while it was read.
    OSError
        If it does not exist or cannot be read.
    """
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise RejectedSubmission(f"{Path(path).name} is {kind_of(st.st_mode)}, not a regular file")
    if st.st_size > limit:
        raise RejectedSubmission(f"{Path(path).name} is larger than {limit // MiB} MiB")
    fd = os.open(path, _FILE_FLAGS)
    try:
        now = os.fstat(fd)
        if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            raise RejectedSubmission(f"{Path(path).name} changed while it was read")
        return _read_fd(fd, limit, f"{Path(path).name} is larger than {limit // MiB} MiB")
    finally:
        os.close(fd)


def copy_regular(folder: Path, entry: FileEntry, target: Path, limit: int) -> None:
    """Copy the file ``entry`` of ``folder`` to the new file ``target``, :data:`CHUNK` bytes
    at a time (never the whole file in memory), refusing more than ``limit`` bytes.

    Raises
    ------
    RejectedSubmission
        If it changed since the scan.
    FileExistsError
        If ``target`` exists (a link planted there is never written through).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with open_regular(folder, entry, limit) as fd, open(target, "xb") as out:
        total = 0
        while chunk := os.read(fd, CHUNK):
            total += len(chunk)
            if total > limit:
                raise RejectedSubmission(f"{entry.rel} changed while it was read")
            out.write(chunk)


# ----------------------------------------------------------------------------- the walk
def scan(folder: Path) -> Scan:
    """Every regular file of a submission folder, and the first rule it breaks, if any.

    Parameters
    ----------
    folder : Path
        ``submitted/<student>/<assignment>``. Nothing in it is opened but its folders
        (``O_DIRECTORY | O_NOFOLLOW``); files are only ``lstat``-ed.

    Returns
    -------
    Scan
        ``problem`` names the first entry that is a symbolic link, hard link (``st_nlink >
        1``), FIFO, socket or device, a folder more than :data:`MAX_DEPTH` levels down, or the
        entry past :data:`MAX_FILES`; an ``OSError`` (a folder without permissions, vanished)
        is a problem too. Never raises.
    """
    folder = Path(folder)
    result = Scan(folder)
    try:
        for path in (folder.parent, folder):
            mode = os.lstat(path).st_mode
            if not stat.S_ISDIR(mode):
                result.problem = f"{path.name} is {kind_of(mode)}, not a folder"
                return result
    except FileNotFoundError:
        result.exists = False
        return result
    except OSError as exc:
        result.problem = f"the submission could not be read ({exc.strerror or exc})"
        return result
    try:
        result.problem = _walk(folder, result.files)
    except OSError as exc:  # a folder without permissions, or swapped for a link meanwhile
        result.problem = f"the submission could not be read ({printable(exc.strerror or exc)})"
    result.files.sort(key=lambda e: e.rel)
    return result


def _walk(folder: Path, files: list[FileEntry]) -> str | None:
    """Fill ``files`` (see :func:`scan`); return the first rule broken, or None."""
    count = 0
    stack: list[tuple[str, int]] = [("", 0)]
    while stack:
        rel_dir, depth = stack.pop()
        with open_folder(folder, rel_dir) as fd:
            names = sorted(os.listdir(fd))
            for name in names:
                count += 1
                rel = f"{rel_dir}/{name}" if rel_dir else name
                if count > MAX_FILES:
                    return f"more than {MAX_FILES} files and folders"
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    if depth + 1 > MAX_DEPTH:
                        return f"{printable(rel, 200)} is more than {MAX_DEPTH} folders deep"
                    stack.append((rel, depth + 1))
                elif not stat.S_ISREG(st.st_mode):
                    return f"{printable(rel, 200)} is {kind_of(st.st_mode)}, not a regular file"
                elif st.st_nlink > 1:
                    return f"{printable(rel, 200)} is a hard link ({st.st_nlink} names)"
                else:
                    files.append(FileEntry(rel, st.st_size, st.st_blocks * 512,
                                           st.st_dev, st.st_ino))
    return None


def scan_folder(folder: Path) -> dict[str, int]:
    """``{relative path: apparent size}`` of a submission's files (the older API of :func:`scan`).

    Raises
    ------
    RejectedSubmission
        When the folder breaks a rule of :func:`scan` or does not exist.
    """
    result = scan(folder)
    if not result.exists:
        raise RejectedSubmission(f"{Path(folder).name} does not exist")
    if result.problem:
        raise RejectedSubmission(result.problem)
    return {e.rel: e.size for e in result.files}
