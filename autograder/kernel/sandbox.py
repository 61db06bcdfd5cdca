"""A bubblewrap sandbox for the kernels that run student code under ``nbgrader autograde``.

nbgrader starts one Jupyter kernel per notebook through nbclient's ``kernel_manager_class``.
:class:`SandboxedKernelManager` is that class (``nbgrader_config.py`` selects it): it starts the
kernel inside `bubblewrap <https://github.com/containers/bubblewrap>`_ (``bwrap``, Debian package
``bubblewrap``), the unprivileged sandboxing tool that Flatpak uses, with

- no network: a private network namespace holding only a loopback interface
  (``--unshare-net``). The kernel talks to nbgrader over ZeroMQ ``ipc`` sockets, which are unix
  socket files in a private run directory bound into the sandbox, instead of TCP;
- a private filesystem view: a fresh root with the system (``/usr``), the Python installation,
  the course's ``course/``, ``autograder/`` and ``data/`` read-only; a private ``/tmp``; and, as
  the working directory, a private scratch copy of the submission's folder
  (``autograded/<student>/<assignment>/``, copied into the kernel's run directory with regular
  files only, bound at that folder's path; :mod:`autograder.kernel.scratch`). The real folder,
  which nbgrader writes the graded notebook into, is never visible, so nothing the kernel
  creates (symlinks, FIFOs, deep trees) is ever where nbgrader reads or writes; the scratch copy
  is removed, whatever it holds, when the kernel's resources are cleaned up.
  ``source/``, ``release/``, ``submitted/``, ``autograded/``, ``feedback/``, ``gradebook.db``,
  ``nbgrader_config.py``, other students' folders and the instructor's home are not there;
- resource limits set with ``prlimit`` (util-linux) on the kernel process: address space
  (memory), CPU time, number of processes, size of any file written, no core dumps;
- its own PID, IPC and UTS namespaces, a new session (no controlling terminal), no capabilities,
  ``no_new_privs``, an unprivileged uid, and death with its parent (``--die-with-parent``).

``RLIMIT_NPROC`` is counted per (user namespace, real uid) and is not enforced for the root
user, so the kernel never runs as root:

- when the grader is a normal user, ``bwrap --unshare-user`` keeps that uid in a fresh user
  namespace, which also gives each kernel its own process count;
- when the grader is root (containers, CI), this module creates the user namespace itself, with
  uid/gid 0 and :attr:`~SandboxedKernelManager.sandbox_uid` (65534, ``nobody``) mapped to
  themselves, lets bwrap set the sandbox up as root in it (``--userns``), and drops to
  ``nobody`` with ``setpriv`` before the kernel starts. The run directory (with the scratch
  copy) is handed to that uid; nothing of the course is.

Opting out: ``BN_UNSANDBOXED=1`` runs the same kernel command without the sandbox (over loopback
TCP), with a warning on stderr and a ``sandbox-off`` flag in each autograded notebook.
Without it, grading refuses to start when the sandbox cannot (:func:`check_sandbox`).
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import typing as t
from dataclasses import dataclass
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from traitlets import Bool, DottedObjectName, Integer, List, Type, Unicode, default

from autograder.kernel.scratch import copy_regular_tree, remove_tree
from autograder.kernel.terminal import KernelOutputPump

#: The environment variable that turns the sandbox off (``1``, ``true``, ``yes`` or ``on``).
UNSANDBOXED_ENV = "BN_UNSANDBOXED"

#: The course root: the folder holding ``autograder/`` (this file's package) and ``course/``.
from autograder.course_dir import ROOT, is_inside  # noqa: E402

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

_HOW_TO_OPT_OUT = (
    f"Install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`) on a kernel that allows "
    f"user namespaces (sysctl user.max_user_namespaces > 0; on Ubuntu 23.10+ also "
    f"kernel.apparmor_restrict_unprivileged_userns=0 or an AppArmor profile for bwrap), or grade "
    f"WITHOUT the sandbox, at your own risk, with {UNSANDBOXED_ENV}=1 "
    f"(`python -m autograder grade --unsandboxed`)."
)


class SandboxUnavailableError(RuntimeError):
    """The sandbox cannot start here; the message names what is missing and how to opt out."""


def unsandboxed_requested(environ: t.Mapping[str, str] | None = None) -> bool:
    """Whether the instructor asked to grade without the sandbox (``BN_UNSANDBOXED``).

    Parameters
    ----------
    environ : mapping, optional
        The environment to read; ``os.environ`` by default.

    Returns
    -------
    bool
        True for ``1``, ``true``, ``yes`` or ``on`` (any case), False when unset or anything else.
    """
    environ = os.environ if environ is None else environ
    return environ.get(UNSANDBOXED_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


@functools.lru_cache(maxsize=1)
def warn_unsandboxed() -> str:
    """Print, once per process, the warning that kernels run without the sandbox; return it."""
    message = (
        f"WARNING: {UNSANDBOXED_ENV} is set: student code runs WITHOUT the sandbox, with network "
        "access, no resource limits, and the instructor's permissions on every file of the "
        "course (gradebook, solutions, other students' work)."
    )
    print(message, file=sys.stderr, flush=True)
    return message


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

    # (kind, source, destination): mounts are applied parents first, so that a tmpfs that masks
    # a folder (the course root) comes before what is bound back into it.
    mounts: list[tuple[str, str, Path]] = []
    for name in SYSTEM_READABLE:
        p = Path(name)
        if p.is_symlink():
            mounts.append(("symlink", os.readlink(p), p))
        elif p.is_dir():
            mounts.append(("ro", str(p), p))
    for name in ETC_READABLE:
        if os.path.exists(name):
            mounts.append(("ro", name, Path(name)))
    readonly = [*python_paths(), *map(Path, extra_readonly)]
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
        ``TMPDIR``, ``MPLCONFIGDIR`` and ``IPYTHONDIR`` inside the private ``/tmp``,
        ``PYTHONDONTWRITEBYTECODE=1``, ``MALLOC_ARENA_MAX=2`` and single-threaded math
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
               MPLCONFIGDIR="/tmp/matplotlib", IPYTHONDIR="/tmp/ipython")
    env.setdefault("LANG", "C.UTF-8")
    # glibc reserves 64 MB of address space per thread arena; two arenas keep the address-space
    # limit close to the memory actually used
    env.setdefault("MALLOC_ARENA_MAX", "2")
    # the course folders are read-only in the sandbox: don't try to write bytecode there
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    for var in THREAD_VARS:
        env.setdefault(var, "1")
    return env


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


def _missing_tools(bwrap: str, as_root: bool) -> list[str]:
    tools = [bwrap, "prlimit"] + (["setpriv", "unshare"] if as_root else [])
    return [tool for tool in tools if shutil.which(tool) is None]


class _RootUserNamespace:
    """A user namespace, created as root, in which uid/gid 0 and ``uid``/``gid`` map to
    themselves; :attr:`fd` is passed to ``bwrap --userns``.

    A helper ``unshare --user`` process creates it; root writes its ``uid_map``/``gid_map``
    (``man 7 user_namespaces``); the open ``/proc/PID/ns/user`` keeps it alive after the helper
    exits.
    """

    def __init__(self, uid: int, gid: int):
        helper = subprocess.Popen(
            ["unshare", "--user", "--", "sh", "-c", "echo ready; read _"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        try:
            assert helper.stdout is not None
            line = helper.stdout.readline()
            if line != b"ready\n":
                err = helper.stderr.read().decode(errors="replace") if helper.stderr else ""
                raise SandboxUnavailableError(
                    f"could not create a user namespace with `unshare --user`: {err.strip()}"
                )
            for name, n in (("uid_map", uid), ("gid_map", gid)):
                with open(f"/proc/{helper.pid}/{name}", "w") as fh:
                    fh.write(f"0 0 1\n{n} {n} 1\n")
            self.fd = os.open(f"/proc/{helper.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            if helper.stdin is not None:
                helper.stdin.close()
            helper.wait(timeout=10)
            for stream in (helper.stdout, helper.stderr):
                if stream is not None:
                    stream.close()

    def close(self) -> None:
        os.close(self.fd)


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.lchown(path, uid, gid)
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(folder, name), uid, gid)


@functools.lru_cache(maxsize=8)
def _probe(bwrap: str, sandbox_uid: int) -> None:
    """Start a tiny program in the full sandbox once per (bwrap, uid); raise if it fails."""
    as_root = os.geteuid() == 0
    missing = _missing_tools(bwrap, as_root)
    if missing:
        raise SandboxUnavailableError(
            f"The sandbox for student code cannot start: {', '.join(missing)} not found on PATH "
            f"({'bubblewrap' if bwrap in missing else 'util-linux'} is missing). {_HOW_TO_OPT_OUT}"
        )
    with tempfile.TemporaryDirectory(prefix="bn-probe-") as tmp:
        run_dir, cwd = Path(tmp) / "run", Path(tmp) / "work"
        run_dir.mkdir()
        cwd.mkdir()
        userns = None
        try:
            if as_root:
                _chown_tree(Path(tmp), sandbox_uid, sandbox_uid)
                userns = _RootUserNamespace(sandbox_uid, sandbox_uid)
            cmd = bwrap_command(
                [sys.executable, "-c", "import os; open('probe', 'w').write(str(os.getuid()))"],
                cwd=cwd, run_dir=run_dir, course_root=Path(tmp) / "course", limits=Limits(),
                bwrap=bwrap, userns_fd=None if userns is None else userns.fd,
                sandbox_uid=sandbox_uid, sandbox_gid=sandbox_uid,
            )
            result = subprocess.run(
                cmd, capture_output=True, text=True, timeout=60,
                pass_fds=() if userns is None else (userns.fd,),
            )
        except (OSError, subprocess.SubprocessError, SandboxUnavailableError) as exc:
            raise SandboxUnavailableError(
                f"The sandbox for student code cannot start: {exc}. {_HOW_TO_OPT_OUT}"
            ) from exc
        finally:
            if userns is not None:
                userns.close()
        if result.returncode != 0 or not (cwd / "probe").exists():
            raise SandboxUnavailableError(
                f"The sandbox for student code cannot start: `{bwrap}` failed "
                f"(exit {result.returncode}): {result.stderr.strip() or result.stdout.strip()}. "
                f"{_HOW_TO_OPT_OUT}"
            )


def check_sandbox(bwrap: str = "bwrap", sandbox_uid: int = 65534) -> None:
    """Make sure a kernel can start in the sandbox here, or explain why not.

    Runs a small Python program inside the same bubblewrap sandbox the kernels get (once per
    process; the result is cached).

    Parameters
    ----------
    bwrap : str
        The bubblewrap executable (a name on PATH or a path).
    sandbox_uid : int
        The uid kernels run as when the grader is root.

    Raises
    ------
    SandboxUnavailableError
        If bubblewrap, ``prlimit`` (or, as root, ``setpriv``/``unshare``) is missing, or the
        sandbox fails to start (user namespaces disabled, ...). The message says how to install
        what is missing and how to opt out with ``BN_UNSANDBOXED=1``.
    """
    _probe(bwrap, sandbox_uid)


def describe_exit(returncode: int | None, limits: Limits | None = None) -> str:
    """A plain-words reason for a kernel's end, from its (bwrap's) exit status.

    Parameters
    ----------
    returncode : int or None
        ``Popen.returncode``: negative for a signal (unsandboxed), ``128 + signal`` when bwrap
        passes on a signal death, otherwise the exit code. None when unknown.
    limits : Limits, optional
        The limits in force, to name the CPU-time limit.

    Returns
    -------
    str
        E.g. ``"killed by SIGSEGV (segmentation fault)"`` or ``"exited with code 1"``.
    """
    if returncode is None:
        return "stopped for an unknown reason"
    signum = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else 0
    if signum <= 0:
        return f"exited with code {returncode}"
    try:
        name = signal.Signals(signum).name
    except ValueError:
        return f"exited with code {returncode}"
    cpu = f"; the sandbox allows {limits.cpu_seconds} s of CPU" if limits else ""
    meaning = {
        "SIGSEGV": "segmentation fault",
        "SIGBUS": "bus error",
        "SIGABRT": "aborted, e.g. after running out of memory",
        "SIGXCPU": f"CPU-time limit reached{cpu}",
        "SIGKILL": f"CPU-time hard limit or the out-of-memory killer{cpu}",
        "SIGXFSZ": "file-size limit reached",
        "SIGFPE": "arithmetic error",
        "SIGILL": "illegal instruction",
    }.get(name)
    return f"killed by {name}" + (f" ({meaning})" if meaning else "")


class SandboxedKernelManager(AsyncKernelManager):
    """An ``AsyncKernelManager`` whose kernel runs in the bubblewrap sandbox.

    Select it in ``nbgrader_config.py`` (``c.Execute.kernel_manager_class``) and configure it
    with ``c.SandboxedKernelManager.<trait>``. With ``BN_UNSANDBOXED=1`` it starts the same
    kernel command without the sandbox and warns on stderr.

    The kernel command is ``python -m autograder.kernel.launcher -f CONNECTION_FILE`` when the course
    has ``autograder/kernel.py`` (the trusted preamble), otherwise
    ``python -m ipykernel_launcher -f CONNECTION_FILE``; ``python`` is the grader's own
    interpreter.
    """

    # its sockets refuse oversized messages, so the grader's memory stays bounded
    # (autograder.kernel.output_limits)
    client_class = DottedObjectName("autograder.kernel.output_limits.LimitedKernelClient",
                                    config=True)
    client_factory = Type("autograder.kernel.output_limits.LimitedKernelClient",
                          klass="jupyter_client.asynchronous.AsyncKernelClient", config=True)
    bwrap_path = Unicode("bwrap", help="The bubblewrap executable (name on PATH or path).").tag(
        config=True
    )
    memory_limit = Integer(Limits.memory_bytes, help="Address-space limit in bytes.").tag(
        config=True
    )
    cpu_limit = Integer(Limits.cpu_seconds, help="CPU-time limit in seconds.").tag(config=True)
    process_limit = Integer(Limits.processes, help="Processes + threads limit.").tag(config=True)
    file_size_limit = Integer(Limits.file_bytes, help="Largest file written, bytes.").tag(
        config=True
    )
    tmp_size = Integer(Limits.tmp_bytes, help="Size of the private /tmp, bytes.").tag(config=True)
    sandbox_uid = Integer(65534, help="uid/gid of the kernel when the grader is root.").tag(
        config=True
    )
    course_root = Unicode(help="The course directory (default: CourseDirectory.root).").tag(
        config=True
    )
    course_readable = List(
        Unicode(), default_value=list(COURSE_READABLE),
        help="Course sub-folders the kernel may read.",
    ).tag(config=True)
    readonly_paths = List(
        Unicode(), help="More folders the kernel may read (absolute paths)."
    ).tag(config=True)
    kernel_module = Unicode(help="Module run with `python -m` as the kernel.").tag(config=True)
    unsandboxed = Bool(help=f"Run without the sandbox (default: from ${UNSANDBOXED_ENV}).").tag(
        config=True
    )

    @default("unsandboxed")
    def _default_unsandboxed(self) -> bool:
        return unsandboxed_requested()

    @default("course_root")
    def _default_course_root(self) -> str:
        configured = self.config.get("CourseDirectory", {}).get("root")
        return str(Path(configured).resolve()) if configured else str(ROOT)

    @default("kernel_module")
    def _default_kernel_module(self) -> str:
        if (Path(self.course_root) / "autograder" / "kernel" / "launcher.py").is_file():
            return "autograder.kernel.launcher"
        return "ipykernel_launcher"

    @default("transport")
    def _default_transport(self) -> str:
        return "tcp" if self.unsandboxed else "ipc"

    def __init__(self, **kwargs: t.Any):
        super().__init__(**kwargs)
        self._run_dir: Path | None = None
        self._userns: _RootUserNamespace | None = None
        self._open_fds: list[int] = []  # passed to bwrap, closed once it has started

    @property
    def limits(self) -> Limits:
        """The :class:`Limits` of this manager's kernels, from its traits."""
        return Limits(
            memory_bytes=self.memory_limit, cpu_seconds=self.cpu_limit,
            processes=self.process_limit, file_bytes=self.file_size_limit,
            tmp_bytes=self.tmp_size,
        )

    def check(self) -> None:
        """Raise :class:`SandboxUnavailableError` unless the sandbox can start (or is off)."""
        if self.unsandboxed:
            warn_unsandboxed()
        else:
            check_sandbox(self.bwrap_path, self.sandbox_uid)

    def exit_reason(self) -> str:
        """Why the kernel process ended, in plain words (see :func:`describe_exit`)."""
        process = getattr(self.provisioner, "process", None)
        code = process.poll() if process is not None else None
        return describe_exit(code, self.limits)

    def _extra_readonly(self, environ: t.Mapping[str, str]) -> list[Path]:
        root = Path(self.course_root)
        extra = [Path(p) for p in self.readonly_paths]
        for entry in environ.get("PYTHONPATH", "").split(os.pathsep):
            p = Path(os.path.abspath(entry)) if entry else None
            # The course root itself is masked (only course_readable shows); a folder holding
            # the course would expose all of it.
            if p is None or is_inside(p, root) or is_inside(root, p) or not p.is_dir():
                continue
            # Another checkout of the course (the grader's own package on PYTHONPATH, a test's
            # source tree): binding it would show its reference, checks and source notebooks.
            if holds_hidden_half(p):
                self.log.debug("sandbox: not mounting PYTHONPATH entry %s (a course folder)", p)
                continue
            extra.append(p)
        return extra

    async def _async_pre_start_kernel(self, **kw: t.Any) -> tuple[list[str], dict[str, t.Any]]:
        self.check()
        if self.unsandboxed:
            return await super()._async_pre_start_kernel(**kw)
        spec = self.kernel_spec
        if spec is not None:
            # bwrap starts the kernel in a new session, out of reach of jupyter_client's
            # process-group SIGINT; ipykernel interrupts itself on an interrupt_request instead.
            spec.interrupt_mode = "message"
        if self._run_dir is None:  # a restart reuses the run directory and connection file
            tmp = tempfile.gettempdir()
            # unix socket paths are limited to 107 bytes
            self._run_dir = Path(tempfile.mkdtemp(prefix="bn-kernel-",
                                                  dir=tmp if len(tmp) < 60 else "/tmp"))
            self.connection_file = str(self._run_dir / "kernel.json")
            self.ip = str(self._run_dir / "ipc")
        cwd = Path(kw.get("cwd") or self._run_dir / "work").resolve()
        work = self._scratch(cwd)
        kw["cwd"] = str(work)
        kernel_cmd, kw = await super()._async_pre_start_kernel(**kw)
        try:
            return self._sandboxed(kernel_cmd, kw, cwd, work)
        except BaseException:
            self._release()
            raise

    def _scratch(self, cwd: Path) -> Path:
        """The kernel's private copy of ``cwd`` (``<run dir>/work``), made on first start.

        The kernel works there, seen at ``cwd``'s path inside the sandbox, so nothing it creates
        (symlinks, FIFOs, deep trees) is ever in the folder nbgrader writes the graded notebook
        into (:mod:`autograder.kernel.scratch`); a restart keeps the copy.
        """
        assert self._run_dir is not None
        work = self._run_dir / "work"
        if not work.exists():
            if cwd.is_dir() and cwd != work:
                copy_regular_tree(cwd, work)
            else:
                work.mkdir()
        return work

    def _sandboxed(self, kernel_cmd: list[str], kw: dict[str, t.Any],
                   cwd: Path, work: Path) -> tuple[list[str], dict[str, t.Any]]:
        """Wrap ``kernel_cmd`` in bwrap; set the kernel's environment and the fds to pass."""
        assert self._run_dir is not None
        environ = kw.get("env") or dict(os.environ)
        root = Path(self.course_root)
        if os.geteuid() == 0:
            uid = self.sandbox_uid
            _chown_tree(self._run_dir, uid, uid)
            self._userns = _RootUserNamespace(uid, uid)
            self._open_fds.append(self._userns.fd)
        env = sandbox_env(environ, root)
        seeds = {}
        for font_cache in matplotlib_font_caches():
            fd = os.open(font_cache, os.O_RDONLY | os.O_CLOEXEC)
            self._open_fds.append(fd)
            seeds[fd] = Path(env["MPLCONFIGDIR"]) / font_cache.name
        cmd = bwrap_command(
            kernel_cmd, cwd=cwd, run_dir=self._run_dir, course_root=root, limits=self.limits,
            bwrap=self.bwrap_path, extra_readonly=self._extra_readonly(environ),
            course_readable=self.course_readable,
            userns_fd=None if self._userns is None else self._userns.fd,
            sandbox_uid=self.sandbox_uid, sandbox_gid=self.sandbox_uid, seed_files=seeds,
            work=work,
        )
        kw["cwd"] = str(work)
        kw["env"] = env
        kw["pass_fds"] = tuple(self._open_fds)
        return cmd, kw

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        """``python [-P] -m <kernel_module> -f CONNECTION_FILE [extra arguments]``.

        ``-P`` (safe path) for the guarded kernel: Python then does not put the working
        directory, the student's folder, first on ``sys.path``, so a submission that ships its
        own ``autograder/`` package cannot replace the kernel or the checks. The guarded kernel
        adds the working directory back where IPython would, after the course's own path, so a
        notebook still imports the files of its folder (e.g. ``provided_batchnorm.py``).
        """
        safe = ["-P"] if self.kernel_module == "autograder.kernel.launcher" else []
        return [sys.executable, *safe, "-m", self.kernel_module, "-f",
                os.path.realpath(self.connection_file), *(extra_arguments or [])]

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: t.Any) -> None:
        # the kernel's own fds 1 and 2 go through a pipe to the log, cleaned of terminal
        # control sequences (autograder.kernel.terminal), never straight to the terminal
        pipe = os.pipe() if "stdout" not in kw and "stderr" not in kw else None
        if pipe is not None:
            kw["stdout"] = kw["stderr"] = pipe[1]
        try:
            await super()._async_launch_kernel(kernel_cmd, **kw)
        except BaseException:
            if pipe is not None:
                os.close(pipe[0])
            self._release()
            raise
        finally:
            if pipe is not None:
                os.close(pipe[1])
            self._close_fds()
        if pipe is not None:
            KernelOutputPump(pipe[0], self.log)

    def _close_fds(self) -> None:
        for fd in self._open_fds:
            os.close(fd)
        self._open_fds = []
        self._userns = None

    def _release(self) -> None:
        """Remove the run directory (scratch copy included, whatever the kernel left in it),
        close passed fds."""
        self._close_fds()
        if self._run_dir is not None:
            run_dir, self._run_dir = self._run_dir, None
            try:
                remove_tree(run_dir)
            except OSError as exc:
                self.log.warning("could not remove the kernel's folder %s: %s", run_dir, exc)

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart:
            self._release()

    cleanup_resources = _async_cleanup_resources  # type: ignore[assignment]
    pre_start_kernel = _async_pre_start_kernel  # type: ignore[assignment]
    _launch_kernel = _async_launch_kernel  # type: ignore[assignment]

