"""Whether the sandbox can start here, and the one switch that turns it off.

:func:`check_sandbox` starts a tiny program in the full sandbox once per process and raises
:class:`SandboxUnavailableError`, naming what is missing and how to install it, when it cannot;
:func:`unsandboxed_requested` reads ``BN_UNSANDBOXED`` (the only place that does);
:func:`validating_own_notebook` says when a kernel may start without the sandbox anyway (a
learner validating their own notebook on their own machine);
:func:`describe_exit` puts a kernel's exit status into words. As root, kernels enter a user
namespace made here (:class:`RootUserNamespace`, ``man 7 user_namespaces``).
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import typing as t
from pathlib import Path

from autograder.course_dir import is_inside
from autograder.kernel.bwrap import Limits, bwrap_command

#: The environment variable that turns the sandbox off (``1``, ``true``, ``yes`` or ``on``).
UNSANDBOXED_ENV = "BN_UNSANDBOXED"

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


#: Course folders holding other people's work: never run without the sandbox unless asked.
OTHERS_WORK = ("submitted", "autograded", "feedback")

#: The one line said when Validate runs a learner's notebook without the sandbox.
VALIDATE_UNSANDBOXED_NOTE = ("bubblewrap's sandbox is not available here, so Validate runs your "
                             "notebook without it: this is your own code on your own machine.")


def validating_own_notebook(cwd: Path | str, course_root: Path | str,
                            environ: t.Mapping[str, str] | None = None) -> bool:
    """Whether a kernel about to start validates a learner's own notebook, so that it may run
    without the sandbox when the sandbox cannot start.

    nbgrader's Validate (the toolbar button, ``nbgrader validate``) runs the notebook of the
    person who clicks it, on their own machine: their own code, which they run anyway. Grading
    runs other people's code and keeps refusing (:func:`check_sandbox`).

    Parameters
    ----------
    cwd : Path or str
        The kernel's working directory: nbgrader validates a notebook from its own folder.
    course_root : Path or str
        The course directory.
    environ : mapping, optional
        The environment to read; ``os.environ`` by default.

    Returns
    -------
    bool
        True while nbgrader validates (``NBGRADER_EXECUTION=validate``, which nbgrader's
        ``Validator`` sets around the run) a notebook outside the course's folders of other
        people's work (:data:`OTHERS_WORK`: ``submitted/``, ``autograded/``, ``feedback/``).
    """
    environ = os.environ if environ is None else environ
    if environ.get("NBGRADER_EXECUTION") != "validate":
        return False
    here = Path(os.path.realpath(cwd))
    root = Path(os.path.realpath(course_root))
    return not any(is_inside(here, root / folder) for folder in OTHERS_WORK)


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


def _missing_tools(bwrap: str, as_root: bool) -> list[str]:
    tools = [bwrap, "prlimit"] + (["setpriv", "unshare"] if as_root else [])
    return [tool for tool in tools if shutil.which(tool) is None]


class RootUserNamespace:
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


def chown_tree(path: Path, uid: int, gid: int) -> None:
    """Give ``path`` and everything below it (links themselves, not their targets) to
    ``uid``/``gid``: the sandbox's run directory, handed to the unprivileged kernel.

    Raises
    ------
    OSError
        If a file cannot be changed (not root, or a read-only file system).
    """
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
                chown_tree(Path(tmp), sandbox_uid, sandbox_uid)
                userns = RootUserNamespace(sandbox_uid, sandbox_uid)
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
