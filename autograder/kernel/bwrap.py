"""The bubblewrap command line a sandboxed kernel starts with, and what it may see.

:func:`bwrap_command` builds it from :class:`Limits` (applied with ``prlimit``), the Python
installation's folders (:func:`python_paths`), the course folders the kernel may read
(:data:`COURSE_READABLE`, :data:`KERNEL_FILES`) and the kernel's private run directory;
:func:`sandbox_env` is the environment it gets. Pure functions of their arguments and the
file system: the kernel manager (:mod:`autograder.kernel.sandbox`) starts the process, and
:mod:`autograder.kernel.availability` checks that it can start here. bubblewrap's options:
``man 1 bwrap``; the limits: ``man 1 prlimit``, ``man 2 setrlimit``.
"""

from __future__ import annotations

import functools
import os
import sys
import sysconfig
import typing as t
from dataclasses import dataclass
from pathlib import Path

from autograder.course_dir import is_inside

MiB = 1024**2
GiB = 1024**3

#: Course folders the kernel may read: the support package, the hidden checks and the data.
COURSE_READABLE = ("course", "data")

#: The only files of ``autograder/`` the kernel may read: the launcher, what remains of the
#: guard, and the shim that serves the hidden checks' calls. The checks, the reference, the
#: samples and the tools are not in the sandbox at all; the checks run in the grader's process
#: (autograder/kernel/remote.py).
KERNEL_FILES = ("autograder/__init__.py", "autograder/kernel/__init__.py",
                "autograder/kernel/launcher.py", "autograder/kernel/guard.py",
                "autograder/kernel/shim.py")

#: Files and folders of ``/etc`` that the kernel's programs read (dynamic linker, users, time
#: zone, fonts); the rest of ``/etc`` is not visible.
ETC_READABLE = (
    "/etc/alternatives", "/etc/fonts", "/etc/group", "/etc/ld.so.cache", "/etc/ld.so.conf",
    "/etc/ld.so.conf.d", "/etc/localtime", "/etc/nsswitch.conf", "/etc/passwd", "/etc/timezone",
)

#: Top-level system folders: bound read-only when real folders, recreated when symlinks
#: (merged-/usr systems have ``/bin -> usr/bin``).
SYSTEM_READABLE = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")

#: Environment variables the kernel inherits from the grader (anything else, such as tokens in
#: the instructor's environment, stays outside). ``BN_*`` variables pass too.
ENV_PASSTHROUGH = (
    "PYTHONPATH", "NBGRADER_EXECUTION", "MPLBACKEND", "LANG", "LC_ALL", "LC_CTYPE", "TZ",
    "PYTHONHASHSEED", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
)

#: Math libraries run single-threaded in the sandbox unless the instructor says otherwise: a
#: grading machine may have many cores, every thread counts against the process limit, and the
#: parallel runner already keeps every core busy.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed kernel and everything it starts.

    Parameters
    ----------
    memory_bytes : int
        Address-space limit (``RLIMIT_AS``) of each process. An allocation beyond it fails:
        numpy and Python raise ``MemoryError``, and the kernel survives.
    cpu_seconds : int
        CPU-time limit (``RLIMIT_CPU``) of each process. The kernel gets ``SIGXCPU`` when it is
        reached and ``SIGKILL`` 5 s of CPU later.
    processes : int
        Limit on processes and threads of the sandbox's uid in its user namespace
        (``RLIMIT_NPROC``): a fork bomb gets ``BlockingIOError``. ipykernel itself uses about 10
        threads.
    file_bytes : int
        Largest file any process may write (``RLIMIT_FSIZE``); Python ignores ``SIGXFSZ``, so a
        bigger write raises ``OSError: [Errno 27] File too large``.
    tmp_bytes : int
        Size of the private ``/tmp`` (a tmpfs).

    Raises
    ------
    ValueError
        If a limit is not a positive integer (the message names the field).

    Notes
    -----
    The limits are ``setrlimit(2)`` limits (see ``man 2 setrlimit``), set with util-linux's
    ``prlimit`` just before the kernel starts.
    """

    memory_bytes: int = 2 * GiB
    cpu_seconds: int = 120
    processes: int = 64
    file_bytes: int = 50 * MiB
    tmp_bytes: int = 512 * MiB

    def __post_init__(self) -> None:
        for name in ("memory_bytes", "cpu_seconds", "processes", "file_bytes", "tmp_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"Limits.{name} must be a positive int, got {value!r}")

    def prlimit_args(self) -> list[str]:
        """The ``prlimit`` options that set these limits (soft = hard, except CPU time)."""
        return [
            f"--as={self.memory_bytes}",
            f"--cpu={self.cpu_seconds}:{self.cpu_seconds + 5}",
            f"--nproc={self.processes}",
            f"--fsize={self.file_bytes}",
            "--core=0",
        ]


def holds_hidden_half(folder: Path) -> bool:
    """Whether ``folder`` holds a course's hidden half, which no sandbox may mount.

    Parameters
    ----------
    folder : Path
        A folder the kernel's environment names (a ``PYTHONPATH`` entry).

    Returns
    -------
    bool
        True when it has an ``autograder/`` package, a ``source/`` folder, a
        ``nbgrader_config.py`` or a ``gradebook.db``: a course directory or a copy of one.
    """
    folder = Path(folder)
    return ((folder / "autograder" / "__init__.py").is_file() or (folder / "source").is_dir()
            or (folder / "nbgrader_config.py").is_file() or (folder / "gradebook.db").exists())


def python_paths() -> list[Path]:
    """Folders of the running Python installation that a kernel started from it must read.

    Returns
    -------
    list of Path
        ``sys.prefix`` (the virtual environment), the base installation, the folder of the real
        executable, and the user site-packages when it exists, each also as its real path when
        that differs (symlinked installs), without duplicates.
    """
    candidates = [
        sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix,
        os.path.dirname(os.path.realpath(sys.executable)),
        sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"],
    ]
    user_site = sysconfig.get_path("purelib", f"{os.name}_user")
    if user_site and os.path.isdir(user_site):
        candidates.append(user_site)
    paths: list[Path] = []
    for c in candidates:
        for p in (Path(os.path.abspath(c)), Path(os.path.realpath(c))):
            if p.is_dir() and p not in paths:
                paths.append(p)
    return paths


def bwrap_command(
    kernel_cmd: t.Sequence[str],
    *,
    cwd: Path,
    run_dir: Path,
    course_root: Path,
    limits: Limits,
    bwrap: str = "bwrap",
    extra_readonly: t.Sequence[Path] = (),
    course_readable: t.Sequence[str] = COURSE_READABLE,
    userns_fd: int | None = None,
    sandbox_uid: int = 65534,
    sandbox_gid: int = 65534,
    seed_files: t.Mapping[int, Path] | None = None,
    work: Path | None = None,
) -> list[str]:
    """The ``bwrap`` command line that runs ``kernel_cmd`` in the sandbox.

    Parameters
    ----------
    kernel_cmd : sequence of str
        The kernel command, e.g. ``[python, "-m", "ipykernel_launcher", "-f", conn]``.
    cwd : Path
        The submission's folder: bound read-write and made the working directory.
    run_dir : Path
        The private run directory (connection file and ipc sockets), bound read-write.
    course_root : Path
        The course directory. It is masked by an empty tmpfs, then only ``course_readable``
        sub-folders (read-only) and ``cwd`` are bound back into it.
    limits : Limits
        Resource limits, applied with ``prlimit``.
    bwrap : str
        The bubblewrap executable.
    extra_readonly : sequence of Path
        More folders to bind read-only (e.g. ``PYTHONPATH`` entries outside the course).
    course_readable : sequence of str
        Course sub-folders the kernel may read.
    userns_fd : int, optional
        A user-namespace file descriptor to enter (``--userns``); used when the grader is root.
        The kernel then drops to ``sandbox_uid``/``sandbox_gid`` with ``setpriv``. When None,
        bwrap creates the user namespace itself (``--unshare-user``) and keeps the caller's uid.
    sandbox_uid, sandbox_gid : int
        The unprivileged ids the kernel runs as when ``userns_fd`` is given.
    seed_files : mapping of int to Path, optional
        Files to copy into the private ``/tmp`` (``--file FD DEST``): an open file descriptor
        (passed to bwrap) for each destination under ``/tmp``, whose folder is created
        world-writable. Used for matplotlib's font cache.
    work : Path, optional
        The folder bound read-write at ``cwd`` (the kernel's private scratch copy of the
        submission); ``cwd`` itself when None.

    Returns
    -------
    list of str
        The full command line (``bwrap ... -- [setpriv ...] prlimit ... kernel_cmd``).

    Raises
    ------
    ValueError
        If ``cwd`` or ``run_dir`` is not an absolute path, or ``kernel_cmd`` is empty.
    """
    if not kernel_cmd:
        raise ValueError("kernel_cmd must be a non-empty command, got an empty sequence")
    for name, p in (("cwd", cwd), ("run_dir", run_dir), ("course_root", course_root)):
        if not Path(p).is_absolute():
            raise ValueError(f"{name} must be an absolute path, got {str(p)!r}")
    cwd, run_dir, course_root = Path(cwd), Path(run_dir), Path(course_root)

    mounts = _mounts(cwd=cwd, run_dir=run_dir, course_root=course_root, work=work,
                     readonly=[*python_paths(), *map(Path, extra_readonly)],
                     course_readable=course_readable)
    args = [bwrap]
    if userns_fd is None:
        args += ["--unshare-user", "--disable-userns"]
    else:
        args += ["--userns", str(userns_fd)]
    args += [
        "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
        "--hostname", "sandbox", "--die-with-parent", "--new-session",
        "--tmpfs", "/", "--proc", "/proc", "--dev", "/dev",
        "--perms", "1777", "--size", str(limits.tmp_bytes), "--tmpfs", "/dev/shm",
    ]
    made: set[Path] = {Path("/"), Path("/proc"), Path("/dev")}
    args += _mount_args(mounts, made, limits)
    for fd, dest in (seed_files or {}).items():
        dest = Path(dest)
        if not is_inside(dest.parent, Path("/tmp")):
            raise ValueError(f"seed_files destinations must be under /tmp, got {str(dest)!r}")
        for parent in reversed([dest.parent, *dest.parent.parents]):
            if parent not in made:
                args += ["--perms", "1777", "--dir", str(parent)]
                made.add(parent)
        args += ["--perms", "0644", "--file", str(fd), str(dest)]
    args += ["--chdir", str(cwd), "--setenv", "JPY_PARENT_PID", "1", "--"]
    if userns_fd is not None:
        args += [
            "setpriv", f"--reuid={sandbox_uid}", f"--regid={sandbox_gid}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--",
        ]
    return [*args, "prlimit", *limits.prlimit_args(), "--", *kernel_cmd]


Mount = tuple[str, str, Path]  # (kind: "ro" | "rw" | "tmpfs" | "symlink", source, destination)


def _mounts(*, cwd: Path, run_dir: Path, course_root: Path, work: Path | None,
            readonly: list[Path], course_readable: t.Sequence[str]) -> list[Mount]:
    """Everything the sandbox shows, parents first: system folders, the Python installation
    (``readonly``), the course's readable folders and kernel files, the private ``/tmp``, the
    run directory and the working directory."""
    # mounts are applied parents first, so that a tmpfs that masks a folder (the course root)
    # comes before what is bound back into it.
    mounts: list[Mount] = []
    for name in SYSTEM_READABLE:
        p = Path(name)
        if p.is_symlink():
            mounts.append(("symlink", os.readlink(p), p))
        elif p.is_dir():
            mounts.append(("ro", str(p), p))
    for name in ETC_READABLE:
        if os.path.exists(name):
            mounts.append(("ro", name, Path(name)))
    readonly = list(readonly)
    readonly += [course_root / sub for sub in course_readable if (course_root / sub).is_dir()]
    readonly += [course_root / f for f in KERNEL_FILES if (course_root / f).is_file()]
    for p in readonly:
        if not is_inside(p, Path("/usr")):
            mounts.append(("ro", str(p), p))
    mounts.append(("tmpfs", "", Path("/tmp")))
    mounts.append(("tmpfs", "", course_root))
    mounts.append(("rw", str(run_dir), run_dir))
    mounts.append(("rw", str(work or cwd), cwd))
    mounts.sort(key=lambda m: len(m[2].parts))
    return mounts


def _mount_args(mounts: list[Mount], made: set[Path], limits: Limits) -> list[str]:
    """bwrap options for ``mounts``, creating each missing parent folder (mode 0755) first;
    ``made`` (the folders that exist in the sandbox) is updated."""
    args: list[str] = []
    bound: list[Path] = []
    for kind, src, dest in mounts:
        for parent in reversed(dest.parents):
            if parent in made or any(is_inside(parent, b) for b in bound):
                continue
            args += ["--perms", "0755", "--dir", str(parent)]
            made.add(parent)
        if kind == "symlink":
            args += ["--symlink", src, str(dest)]
        elif kind == "tmpfs":
            perms = "1777" if dest == Path("/tmp") else "0755"
            size = ["--size", str(limits.tmp_bytes)] if dest == Path("/tmp") else []
            args += ["--perms", perms, *size, "--tmpfs", str(dest)]
        else:
            args += ["--ro-bind" if kind == "ro" else "--bind", src, str(dest)]
            bound.append(dest)
        made.add(dest)
    return args


def sandbox_env(environ: t.Mapping[str, str], course_root: Path) -> dict[str, str]:
    """The environment of a sandboxed kernel, built from the grader's.

    Parameters
    ----------
    environ : mapping
        The grader's environment (what jupyter_client would give the kernel).
    course_root : Path
        The course directory; it goes first on ``PYTHONPATH`` so notebooks can ``import course``
        (and the kernel its launcher, the only part of ``autograder/`` in the sandbox).

    Returns
    -------
    dict
        Only :data:`ENV_PASSTHROUGH` and ``BN_*`` variables, plus ``PATH``, a ``HOME``,
        ``TMPDIR`` and the libraries' folders of :func:`private_dirs_env` inside the private
        ``/tmp``, ``PYTHONDONTWRITEBYTECODE=1``, ``MALLOC_ARENA_MAX=2`` and single-threaded math
        libraries unless set.
    """
    env = {k: v for k, v in environ.items() if k in ENV_PASSTHROUGH or k.startswith("BN_")}
    path = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(course_root) not in path:
        path.insert(0, str(course_root))
    env["PYTHONPATH"] = os.pathsep.join(path)
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), "/usr/local/bin", "/usr/bin",
                                   "/bin"])
    env.update(HOME="/tmp", TMPDIR="/tmp", USER="student", LOGNAME="student",
               **private_dirs_env(Path("/tmp")))
    env.setdefault("LANG", "C.UTF-8")
    # glibc reserves 64 MB of address space per thread arena; two arenas keep the address-space
    # limit close to the memory actually used
    env.setdefault("MALLOC_ARENA_MAX", "2")
    # the course folders are read-only in the sandbox: don't try to write bytecode there
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    for var in THREAD_VARS:
        env.setdefault(var, "1")
    return env


#: The variables that tell a kernel's libraries where to keep their caches and settings, and the
#: folder each names below the kernel's private folder (:func:`private_dirs_env`).
PRIVATE_DIRS = {"MPLCONFIGDIR": "matplotlib", "IPYTHONDIR": "ipython", "XDG_CACHE_HOME": "cache",
                "XDG_CONFIG_HOME": "config"}


def private_dirs_env(base: Path) -> dict[str, str]:
    """Where a kernel's libraries keep their caches and settings: folders of its own below ``base``.

    A library's cache is not the student's doing. Left to their defaults, matplotlib, fontconfig
    and IPython write below ``~`` (``~/.cache/matplotlib``, ``~/.ipython``): outside the
    submission's folder, which the guard records against the student (``forbidden-file``), and
    shared with the grader's own files. Every kernel, sandboxed or not, gets these instead.

    Parameters
    ----------
    base : Path
        The kernel's private folder: ``/tmp`` inside the sandbox (a tmpfs of its own), a fresh
        temporary folder without it. Absolute.

    Returns
    -------
    dict of str to str
        :data:`PRIVATE_DIRS`'s variables, each naming its folder below ``base`` (e.g.
        ``MPLCONFIGDIR=/tmp/matplotlib``); the folders are not created here.

    Raises
    ------
    ValueError
        If ``base`` is not an absolute path.
    """
    if not Path(base).is_absolute():
        raise ValueError(f"base must be an absolute path, got {str(base)!r}")
    return {var: str(Path(base) / name) for var, name in PRIVATE_DIRS.items()}


def _matplotlib_cache_dir() -> Path:
    # matplotlib.get_cachedir() on Linux, without importing matplotlib (about 0.5 s)
    if os.environ.get("MPLCONFIGDIR"):
        return Path(os.environ["MPLCONFIGDIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "matplotlib"


@functools.lru_cache(maxsize=1)
def matplotlib_font_caches() -> tuple[Path, ...]:
    """The grader's matplotlib font caches (``fontlist-v*.json``), built if there is none.

    Each sandbox starts with an empty ``/tmp``, so without a copy of this file every kernel
    rebuilds it, about a second per notebook (measured here). The sandbox sees the same font
    folders (the Python installation and ``/usr``), so the grader's list is valid inside;
    a font that is missing there makes matplotlib rebuild its list as usual. The file name
    carries matplotlib's font-list version, so the kernel reads only a list it understands.

    Returns
    -------
    tuple of Path
        The cache files (usually one); empty if matplotlib is not installed or cannot write
        its cache.
    """
    found = sorted(_matplotlib_cache_dir().glob("fontlist-v*.json"))
    if not found:
        try:
            from matplotlib import font_manager  # noqa: F401 - builds the cache on import
        except ImportError:
            return ()
        found = sorted(_matplotlib_cache_dir().glob("fontlist-v*.json"))
    return tuple(p for p in found if p.is_file())
