"""What still watches inside the grading kernel: reads past the submission, network, imports of
the grader's hidden half.

The hidden checks, the reference and every expected value run in the trusted grading process
(:mod:`autograder.kernel.remote`), and the sandbox (:mod:`autograder.kernel.sandbox`) does not
even mount them: there is nothing in the kernel left to protect. This module only makes attempts
visible to the instructor. :func:`install` adds a Python audit hook (:pep:`578`) before any
student code runs; it records

* ``reference-access``: an import of ``autograder.*`` (other than the kernel's own launcher,
  guard and shim), or a read of a file of ``autograder/``, ``source/`` or ``tests/``;
* ``forbidden-file``: a read of the gradebook, ``submitted/``, ``autograded/``, ``feedback/`` or
  ``release/``, or a write outside the submission's folder and ``/tmp``;
* ``network``: a socket connect, bind or send, or an HTTP connection;
* ``subprocess`` and ``native-code`` (informational): starting a process, loading a shared
  library or reading memory through ``ctypes``.

Nothing is refused here: in the sandbox those files do not exist and there is no network, so
the attempt fails by itself. The kernel's shim hands the new flags to the trusted side with its
next answer (:func:`take_flags`); the trusted side records them, and the first three kinds score
the check that received them 0.

**What it cannot see.** Anything below Python's audit events: ``ctypes`` writes to memory,
system calls made by native code, a student's code that removes the hook's effects in this
process (the flags are the student's own process's word, and a hostile kernel can drop them).
It is a record of attempts, not a boundary: the sandbox is the boundary, and the checks' values
come from the trusted side whatever this process does.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import urllib.parse
from pathlib import Path

#: Flag kinds that score 0 the hidden check that receives them.
ZERO_KINDS = frozenset({"reference-access", "forbidden-file", "network"})
#: Every kind this module records.
KINDS = ZERO_KINDS | {"subprocess", "native-code"}
#: The modules of ``autograder`` that live in the kernel.
KERNEL_MODULES = frozenset({"autograder", "autograder.kernel", "autograder.kernel.launcher",
                            "autograder.kernel.guard", "autograder.kernel.shim"})
#: Course folders and files that are public (importable by notebooks).
PUBLIC = ("course", "data", ".venv")
#: Course folders and files that belong to the instructor, with what they are.
PRIVATE = {"autograder": ("reference-access", "the grader's code"),
           "source": ("reference-access", "the instructor's source notebooks"),
           "tests": ("reference-access", "the grader's tests"),
           "gradebook.db": ("forbidden-file", "the gradebook"),
           "submitted": ("forbidden-file", "other submissions"),
           "autograded": ("forbidden-file", "other students' folders"),
           "feedback": ("forbidden-file", "students' feedback"),
           "release": ("forbidden-file", "the release folder")}
_NETWORK = frozenset({"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg",
                      "http.client.connect"})
_PROCESS = frozenset({"subprocess.Popen", "os.system", "os.exec", "os.spawn", "os.posix_spawn",
                      "os.fork", "pty.spawn"})
_NATIVE = frozenset({"ctypes.dlopen", "ctypes.addressof", "ctypes.string_at"})
_MAX_FLAGS = 100
_WATCHED = frozenset({"import", "open", "sqlite3.connect"}) | _NETWORK | _PROCESS | _NATIVE


class _State:
    def __init__(self, cwd: Path, root: Path):
        self.cwd, self.root = cwd, root
        paths = sysconfig.get_paths()
        library = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
        library |= {os.path.realpath(p) for p in library}
        library |= {str(root / "course"), str(Path(__file__).resolve().parent)}
        self.library = tuple(sorted(p for p in library if p)) + ("<frozen",)
        self.cache: dict[str, bool] = {}
        self.flags: list[tuple[str, str]] = []
        self.taken = 0
        self.seen: set[tuple[str, str]] = set()
        self.busy = False


_STATE: _State | None = None


def _inside(path: Path, folder: Path) -> bool:
    # not autograder.course_dir.is_inside: this file runs in the sandbox, without course_dir
    return path == folder or folder in path.parents


def classify_path(path: str, write: bool, cwd: Path, root: Path) -> tuple[str, str] | None:
    """``(kind, what)`` when a kernel reading (or writing) ``path`` should be flagged, else None.

    ``cwd`` is the submission's folder, ``root`` the course directory; both absolute.
    """
    p = Path(os.path.realpath(path))
    if _inside(p, cwd):
        return None
    if _inside(p, root) and p != root:  # first: a course directory may itself lie in /tmp
        first = p.relative_to(root).parts[0]
        parts = [x for x in p.relative_to(root).with_suffix("").parts if x != "__pycache__"]
        kernel_file = ".".join(parts).split(".cpython-")[0].removesuffix(".__init__")
        if first == "autograder" and kernel_file in KERNEL_MODULES:
            return None if not write else ("forbidden-file", "the grader's kernel")
        if first in PRIVATE:
            return PRIVATE[first]
        if first not in PUBLIC and not first.endswith((".egg-info", ".dist-info", ".pth")):
            return "forbidden-file", "the course directory"
        if write:
            return "forbidden-file", "the course's public files"
        return None
    if write and not (_inside(p, Path("/tmp")) or p == Path("/dev/null")):
        return "forbidden-file", "a place outside the submission's folder"
    return None


def _from_student(state: _State) -> bool:
    """Whether the event was caused by student code: the first frame outside the standard
    library, site-packages, ``course/`` and this kernel's own files (a notebook cell, a module of
    the submission) exists. Library code doing its own work (IPython starting, numpy loading its
    libraries) is not the student's."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        known = state.cache.get(name)
        if known is None:
            known = state.cache[name] = name.startswith(state.library)
        if not known:
            return True
        frame = frame.f_back
    return False


def _record(state: _State, kind: str, what: str) -> None:
    key = (kind, what)
    if key in state.seen or len(state.flags) >= _MAX_FLAGS:
        return
    state.seen.add(key)
    state.flags.append(key)


def _hook(event: str, args: tuple) -> None:
    state = _STATE
    if state is None or state.busy:
        return
    state.busy = True  # the hook's own os.path calls raise events too
    try:
        if event not in _WATCHED or not _from_student(state):
            return
        if event == "import":
            name = str(args[0])
            if (name == "autograder" or name.startswith("autograder.")) and \
                    name not in KERNEL_MODULES:
                _record(state, "reference-access", f"import of {name} (the grader's hidden "
                        "half, not available to student code)")
        elif event == "sqlite3.connect" and isinstance(args[0], (str, bytes, os.PathLike)):
            path = os.fsdecode(args[0])
            if path.startswith("file:"):  # an sqlite URI filename
                path = urllib.parse.unquote(urllib.parse.urlsplit(path).path)
            verdict = classify_path(path, False, state.cwd, state.root) if path else None
            if verdict is not None:
                _record(state, verdict[0], f"sqlite connection to {path} ({verdict[1]})")
        elif event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            mode, flags = (tuple(args) + ("r", 0))[1:3]
            write = any(c in str(mode or "") for c in "wax+") or bool(
                isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            verdict = classify_path(os.fsdecode(args[0]), write, state.cwd, state.root)
            if verdict is not None:
                action = "write to" if write else "read of"
                _record(state, verdict[0], f"{action} {os.fsdecode(args[0])} ({verdict[1]})")
        elif event in _NETWORK:
            target = args[1] if len(args) > 1 else ""
            _record(state, "network", f"network access ({event} {str(target)[:80]!r})")
        elif event in _PROCESS:
            _record(state, "subprocess", f"{event} {str(args[0])[:80] if args else ''!r}")
        elif event in _NATIVE:
            _record(state, "native-code", f"{event} {str(args[0])[:80] if args else ''!r}")
    except Exception:  # noqa: BLE001 - the hook must never break the student's code
        pass
    finally:
        state.busy = False


def install(cwd: str | os.PathLike | None = None, root: str | os.PathLike | None = None) -> None:
    """Install the audit hook in this process (once; later calls do nothing).

    Parameters
    ----------
    cwd : path, optional
        The submission's folder (default: the current directory).
    root : path, optional
        The course directory (default: the folder holding this package).

    Raises
    ------
    RuntimeError
        If this module was imported from inside ``cwd`` (a submission shipping its own
        ``autograder/`` to replace the kernel's).
    """
    global _STATE
    if _STATE is not None:
        return
    here = Path(__file__).resolve()
    cwd_path = Path(os.path.realpath(cwd if cwd is not None else os.getcwd()))
    if _inside(here, cwd_path):
        raise RuntimeError(f"the grader's kernel {here} is inside the working directory "
                           f"{cwd_path}; a submission could replace it")
    root_path = Path(os.path.realpath(root)) if root is not None else here.parents[2]
    _STATE = _State(cwd_path, root_path)
    sys.addaudithook(_hook)


def is_installed() -> bool:
    """Whether :func:`install` ran in this process."""
    return _STATE is not None


def take_flags() -> list[tuple[str, str]]:
    """The flags recorded since the last call (the shim sends them with its next answer)."""
    state = _STATE
    if state is None:
        return []
    new = state.flags[state.taken:]
    state.taken = len(state.flags)
    return list(new)


__all__ = ["KINDS", "ZERO_KINDS", "classify_path", "install", "is_installed", "take_flags"]
