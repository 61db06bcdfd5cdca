"""The trusted preamble of a grading kernel: audit hooks, a reference guard, tamper detection.

:func:`install` runs in the kernel process before any student code (``python -m
autograder.kernel``, see :mod:`autograder.kernel`). It

* imports numpy, the hidden checks and the grading machinery, so that the modules the hidden
  test cells use are the grader's own (a student's ``numpy.py`` or ``autograder/`` in the
  submission folder can no longer shadow them), and keeps pristine copies of every namespace
  the checks rely on: numpy's modules (``numpy.allclose``, ``numpy.testing.assert_allclose``,
  ...), ``builtins``, and the ``autograder`` modules, functions and classes;
* wraps every function of :mod:`autograder.reference`: a call that does not come from grader
  code (the student's function calling it, directly or through an alias found in
  ``autograder.checks.batchnorm_forward.ref``, ``sys.modules``, ``gc``, ...) is refused and flagged;
* adds a Python audit hook (:pep:`578`, ``sys.addaudithook``) that sees imports, file opens,
  directory listings, sqlite connections, sockets, subprocesses, ``ctypes``, ``gc``
  introspection, and reads and writes of function code. An event is judged by the code that
  caused it: the stack is walked past the standard library and site-packages to the first frame
  that is either grader code (allowed; code objects collected at install, so a forged file name
  does not pass) or not (a notebook cell or a student's module: judged). :meth:`Grader.call`,
  which calls the student's function, counts as the student's. Importing ``autograder.reference``
  or any other hidden module, reading the grader's code (``autograder/``, ``source/``,
  ``tests/``, a function's ``__code__``), the gradebook, ``submitted/`` or other students'
  folders, writing outside the working directory, network access, and assigning the code or
  defaults of a grader function are flagged, and refused (``PermissionError``/``ImportError``)
  where they would succeed: a file the sandbox hides, or a network the sandbox does not have,
  fails by itself with the operating system's error, and the flag stays.

Tampering is looked for before every notebook cell (an IPython ``pre_run_cell`` callback set up
by :func:`attach_shell`) and at the start and end of every hidden check
(:func:`begin_check`/:func:`end_check`, called by :mod:`autograder.checks.framework`): replaced numpy
functions, builtins, ``autograder`` functions, classes (CPython does not audit class attribute
writes: this is where they are found) or ``sys.modules`` entries, and IPython machinery that
decides what a test cell outputs (``showtraceback``, nbgrader #1324; the display hook and the
``text/plain`` formatter, which print a check's score; input and AST transformers; event
callbacks; the notebook's ``__builtins__``). Everything changed is put back before the check
runs, and a ``tampering`` flag is recorded. ipykernel transforms a cell before ``pre_run_cell``,
so a hidden test cell may already have been rewritten by then: once the grader was tampered
with, every later hidden test cell writes its flags to stderr, which nbgrader scores 0.

Flags are ``(kind, reason)`` pairs (:func:`autograder.checks.framework.flag_line`). A hidden check's report
lists the flags that concern it, and the kinds in :data:`ZERO_KINDS` score the check 0: flags
raised while the check ran, flags tied to the function it grades (raised when that function ran
earlier, e.g. in a visible test), and global ones (raised by top-level cell code; every
``tampering`` flag). Flags raised outside any check are also printed in the cell that raised
them, and, when ``BN_GUARD_LOG`` names a file, appended to it as JSON lines as they happen.

This is detection inside the student's own process: it stops every direct attempt, but a
determined student can reach and disable anything in the process (``ctypes`` writes to memory,
``frame.f_locals`` of the check that called them, the unwrapped reference in a wrapper's
closure, the guard's own callbacks and registry). The sandbox (bubblewrap,
:mod:`autograder.kernel.sandbox`) is what enforces file and network isolation; this module makes the
attempts visible and keeps the comparisons honest.
"""

from __future__ import annotations

import functools
import inspect
import json
import linecache
import os
import sys
import sysconfig
import tempfile
import threading
import types
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autograder.course_dir import is_inside

#: Flags that score the affected hidden checks 0.
ZERO_KINDS = frozenset({"reference-access", "tampering", "forbidden-file", "network"})

#: Other kinds this module records (shown to the instructor, no effect on the score).
INFO_KINDS = frozenset({"subprocess", "native-code"})

#: Environment variable naming an append-only JSON-lines log of every flag, as it is raised.
LOG_ENV = "BN_GUARD_LOG"

#: Names in ``builtins`` that IPython and the interpreter manage themselves.
_BUILTINS_MANAGED = frozenset({
    "_", "__", "___", "exit", "quit", "get_ipython", "display", "help", "copyright",
    "credits", "license", "__IPYTHON__", "__debug__", "__build_class__", "__loader__",
    "__spec__", "__package__", "__name__", "__doc__",
    "input", "raw_input",  # ipykernel forwards them to the frontend during each request
})

#: Module-global names that the interpreter writes by itself.
_MODULE_MANAGED = frozenset({"__warningregistry__", "__builtins__"})

#: Top-level packages whose classes and functions student code may not modify.
_PROTECTED_PREFIXES = ("autograder", "numpy", "IPython", "ipykernel", "jupyter_client",
                       "traitlets", "comm")

#: Audit events that read a path (first argument).
_READ_EVENTS = frozenset({"os.listdir", "os.scandir", "glob.glob"})
#: Audit events that change the file system at the paths they name.
_WRITE_EVENTS = {
    "os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,), "os.rename": (0, 1),
    "os.symlink": (1,), "os.link": (1,), "os.truncate": (0,), "os.chmod": (0,),
    "os.chown": (0,), "os.utime": (0,), "shutil.rmtree": (0,), "shutil.copyfile": (1,),
    "shutil.copytree": (1,), "shutil.move": (0, 1), "shutil.make_archive": (0,),
}
_NETWORK_EVENTS = frozenset({
    "socket.connect", "socket.sendto", "socket.sendmsg", "socket.bind", "socket.getaddrinfo",
    "socket.gethostbyname", "socket.gethostbyaddr", "socket.getnameinfo", "urllib.Request",
    "http.client.connect", "ftplib.connect", "smtplib.connect", "telnetlib.Telnet.open",
})
_PROCESS_EVENTS = frozenset({
    "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
    "os.forkpty", "pty.spawn", "os.startfile",
})
_NATIVE_EVENTS = frozenset({"ctypes.dlopen", "ctypes.cdata", "ctypes.addressof",
                            "ctypes.string_at", "ctypes.wstring_at"})
_INTROSPECTION_EVENTS = frozenset({"gc.get_objects", "gc.get_referrers", "gc.get_referents"})


@dataclass(frozen=True)
class Flag:
    """One recorded event: what (``kind``), why (``reason``), and what it applies to.

    ``check`` is the token of the hidden check that was running (None: outside every check);
    ``function`` the code object of the student function the event is tied to (None: top-level
    cell code, or the function under test when ``check`` is set).
    """

    kind: str
    reason: str
    check: int | None
    function: types.CodeType | None


class _Denied(Exception):
    """Raised inside the audit hook to refuse an operation (re-raised as ``error``)."""

    def __init__(self, error: BaseException):
        self.error = error


class _Guard:
    """All of the guard's state. One instance per process, made by :func:`install`."""

    def __init__(self, cwd: Path):
        import numpy  # noqa: F401 - pristine numpy before student code
        import numpy.linalg  # noqa: F401
        import numpy.testing  # noqa: F401

        import autograder
        import autograder.checks  # noqa: F401 - every checks_* module and grading
        import autograder.checks.framework
        import autograder.reference as reference

        self.cwd = cwd
        self.package_dir = Path(autograder.__file__).resolve().parent
        self.root = self.package_dir.parent
        if is_inside(self.package_dir, cwd):
            raise RuntimeError(
                f"the grader's package {self.package_dir} is inside the working directory {cwd}; "
                "a submission could replace it. Run the kernel from the submission's folder."
            )
        self.tls = threading.local()
        self.lock = threading.RLock()
        self.flags: list[Flag] = []
        self.reported: set[int] = set()  # indices of flags already printed
        self.active: list[int] = []  # tokens of running checks
        self.checks: dict[int, tuple[str, types.CodeType | None]] = {}
        self.next_token = 1
        self.shell = None
        self.stdout = None
        self.log_fd: int | None = None
        self.info_seen: set[tuple] = set()
        if os.environ.get(LOG_ENV):
            self.log_fd = os.open(os.environ[LOG_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                                  0o644)

        # ------------------------------------------------------------- where code comes from
        paths = sysconfig.get_paths()
        library = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
        library |= {str(Path(p).resolve()) for p in library}
        library.add(str(Path(__file__).resolve().parent / "launcher.py"))  # the launcher itself
        self.library_prefixes = tuple(sorted(p for p in library if p)) + ("<frozen",)
        self._library_cache: dict[str, bool] = {}

        # ------------------------------------------------------------- the reference guard
        self.reference = reference
        self.reference_originals: dict[str, Callable] = {}
        self.reference_ids: set[int] = set()
        for name, value in list(vars(reference).items()):
            if isinstance(value, types.FunctionType) and value.__module__ == reference.__name__:
                wrapper = self._wrap_reference(name, value)
                self.reference_originals[name] = value
                self.reference_ids.update({id(value), id(wrapper)})
                setattr(reference, name, wrapper)
        # Importing it again must go through the import system, where the audit hook sees it.
        sys.modules.pop("autograder.reference", None)
        if getattr(autograder, "reference", None) is reference:
            delattr(autograder, "reference")

        # ------------------------------------------------------------- trusted code
        grader_modules = {name: mod for name, mod in sys.modules.items()
                          if (name == "autograder" or name.startswith("autograder."))
                          and name != "autograder.kernel.launcher" and mod is not None}
        grader_modules["autograder.reference"] = reference
        self.grader_modules = grader_modules
        self.keep_alive: list[Any] = []
        self.trusted: set[int] = set()
        self.grader_functions: list[types.FunctionType] = []
        self.grader_classes: list[type] = []
        for mod in grader_modules.values():
            self._collect(mod)
        from autograder.checks.framework import Grader
        self.boundary = {id(Grader.call.__code__)}  # where grader code hands over to the student

        # ------------------------------------------------------------- pristine state
        self.pristine_modules = {name: mod for name, mod in sys.modules.items()
                                 if mod is not None and _is_watched_module(name)}
        self.pristine_modules.pop("autograder.reference", None)
        self.namespaces: dict[str, tuple[dict, dict]] = {}
        for name, mod in {**self.pristine_modules, **grader_modules}.items():
            ns = vars(mod)
            if name == "builtins":
                keep = {k: v for k, v in ns.items() if k not in _BUILTINS_MANAGED}
            else:
                keep = dict(ns)
            self.namespaces[name] = (ns, keep)
        self.function_state = {id(f): (f, _function_state(f)) for f in self.grader_functions}
        self.class_state = {id(c): (c, dict(vars(c))) for c in self.grader_classes}
        self.shell_watch: _ShellWatch | None = None

    # ================================================================== code classification
    def _collect(self, module: types.ModuleType) -> None:
        """Record the code of every function and class defined in a grader module as trusted."""
        prefix = "autograder"
        stack: list[Any] = [v for v in vars(module).values()]
        seen: set[int] = set()
        while stack:
            obj = stack.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            if isinstance(obj, (staticmethod, classmethod)):
                stack.append(obj.__func__)
            elif isinstance(obj, property):
                stack.extend(f for f in (obj.fget, obj.fset, obj.fdel) if f is not None)
            elif isinstance(obj, types.FunctionType):
                if not str(getattr(obj, "__module__", "")).startswith(prefix):
                    continue
                self.grader_functions.append(obj)
                self._trust_code(obj.__code__)
                for cell in obj.__closure__ or ():
                    try:
                        stack.append(cell.cell_contents)
                    except ValueError:  # empty cell
                        pass
            elif isinstance(obj, type):
                if not str(obj.__module__).startswith(prefix):
                    continue
                self.grader_classes.append(obj)
                stack.extend(vars(obj).values())

    def _trust_code(self, code: types.CodeType) -> None:
        todo = [code]
        while todo:
            c = todo.pop()
            if id(c) in self.trusted:
                continue
            self.trusted.add(id(c))
            self.keep_alive.append(c)
            todo.extend(k for k in c.co_consts if isinstance(k, types.CodeType))

    def _is_library(self, filename: str) -> bool:
        known = self._library_cache.get(filename)
        if known is None:
            known = filename.startswith(self.library_prefixes)
            self._library_cache[filename] = known
        return known

    def origin(self, frame) -> tuple[str, Any, types.CodeType | None]:
        """Who caused an event raised in ``frame``: ``("grader" | "student" | "system", ...)``.

        Library frames (standard library, site-packages) are walked past. The first other frame
        decides: grader code is trusted, except :meth:`Grader.call` itself, which calls the
        student's function (a C-level callable such as a ``functools.partial`` has no frame of
        its own). For a student, also returns the first student frame and the code of the
        outermost student *function* on the way (None for top-level cell code).
        """
        f = frame
        while f is not None:
            code = f.f_code
            if id(code) in self.boundary:
                return "student", f, None
            if id(code) in self.trusted:
                return "grader", None, None
            if not self._is_library(code.co_filename):
                first, tied = f, None
                while f is not None:
                    code = f.f_code
                    if id(code) in self.trusted:
                        break
                    if code.co_name != "<module>" and not self._is_library(code.co_filename):
                        tied = code
                    f = f.f_back
                return "student", first, tied
            f = f.f_back
        return "system", None, None

    # ================================================================== recording
    def record(self, kind: str, reason: str, function: types.CodeType | None = None,
               *, in_check: bool = True) -> Flag:
        """Record a flag; ``reason`` is made one line without ``<``/``>`` (flag_line format)."""
        reason = " ".join(reason.replace("<", "").replace(">", "").split())
        with self.lock:
            check = self.active[-1] if (self.active and in_check) else None
            flag = Flag(kind, reason, check, function)
            self.flags.append(flag)
        if self.log_fd is not None:
            line = json.dumps({"kind": kind, "reason": reason, "pid": os.getpid(),
                               "check": self.checks.get(check, ("", None))[0] or None})
            try:
                os.write(self.log_fd, (line + "\n").encode())
            except OSError:
                self.log_fd = None
        return flag

    @staticmethod
    def where(frame, function: types.CodeType | None) -> str:
        """Readable place of a student frame: ``in batch_stats`` or ``in a notebook cell``."""
        if frame is None:
            return "in the function under test"
        name = (function or frame.f_code).co_name
        if name == "<module>":
            return f"in a notebook cell (line {frame.f_lineno})"
        return f"in {name} (line {frame.f_lineno})"

    def describe_path(self, path: str) -> str:
        p = Path(path)
        for base, label in ((self.root, ""), (self.cwd, "./")):
            if is_inside(p, base):
                rel = p.relative_to(base)
                return f"{label}{rel}" if str(rel) != "." else str(base)
        return str(p)

    # ================================================================== the reference guard
    def _wrap_reference(self, name: str, fn: Callable) -> Callable:
        guard = self

        def guarded(*args, **kwargs):
            caller = sys._getframe(1)
            who, frame, function = guard.origin(caller)
            if who != "grader":
                where = guard.where(frame, function)
                guard.record("reference-access",
                             f"the grader's reference solution autograder.reference.{name} was "
                             f"called from student code {where}", function)
                raise PermissionError(
                    f"autograder.reference.{name} is the grader's reference solution; student "
                    "code may not call it (this attempt is reported to the instructor)"
                )
            return fn(*args, **kwargs)

        guarded.__name__ = fn.__name__
        guarded.__qualname__ = fn.__qualname__
        guarded.__doc__ = fn.__doc__
        guarded.__module__ = fn.__module__
        return guarded

    def is_reference(self, fn: Any) -> bool:
        """Whether ``fn`` is (or wraps, through partials, bound methods or ``__wrapped__``) a
        function of the reference."""
        seen = 0
        while fn is not None and seen < 10:
            seen += 1
            if id(fn) in self.reference_ids:
                return True
            code = getattr(fn, "__code__", None) if isinstance(fn, types.FunctionType) else None
            if code is not None and any(code is f.__code__
                                        for f in self.reference_originals.values()):
                return True
            fn = (getattr(fn, "func", None) if not isinstance(fn, types.FunctionType) else None) \
                or getattr(fn, "__func__", None) or getattr(fn, "__wrapped__", None)
        return False

    # ================================================================== the audit hook
    def hook(self, event: str, args: tuple) -> None:
        handler = _HANDLERS.get(event)
        if handler is None or getattr(self.tls, "busy", False):
            return
        self.tls.busy = True
        try:
            handler(self, event, args)
        except _Denied as denied:
            raise denied.error from None
        except Exception:  # a bug in the guard must never break the student's kernel
            pass
        finally:
            self.tls.busy = False

    def _student(self, depth: int = 3) -> tuple[Any, types.CodeType | None] | None:
        """The (frame, tied function) of the student code behind the current event, or None.

        ``depth``: frames between this call and the code that raised the event (3 from a
        handler: hook -> handler -> _student; one more from a helper of a handler).
        """
        who, frame, function = self.origin(sys._getframe(depth))
        return (frame, function) if who == "student" else None

    def _deny(self, kind: str, reason: str, function, error: BaseException,
              block: bool = True) -> None:
        """Record a flag; refuse the operation with ``error`` when ``block``.

        Where the operation would fail anyway (the sandbox hides the file, has no network), it is
        not refused: the student sees the operating system's own error, the flag stays.
        """
        self.record(kind, reason, function)
        if block:
            raise _Denied(error)

    def on_import(self, event: str, args: tuple) -> None:
        module = str(args[0])
        if module != "autograder" and not module.startswith("autograder."):
            return
        student = self._student()
        if student is None:
            return
        frame, function = student
        self._deny("reference-access",
                   f"import of the grader's hidden module {module} from student code "
                   f"{self.where(frame, function)}", function,
                   ImportError(f"{module} is part of the grader and may not be imported by "
                               "student code (this attempt is reported to the instructor)"))

    def check_path(self, path: Any, write: bool) -> tuple[str, str] | None:
        """``(kind, label)`` when student code may not read (or write) ``path``, else None."""
        if isinstance(path, int) or path is None:
            return None
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        path = str(path)
        if path in (":memory:", "") or path.startswith("file::memory:"):
            return None
        p = Path(os.path.realpath(path))  # relative to the current directory, as open() does
        if is_inside(p, self.package_dir):
            return "reference-access", "the grader's code"
        if is_inside(p, self.cwd):
            return None
        for name, label in (("source", "the instructor's source notebooks"),
                            ("tests", "the grader's tests")):
            if is_inside(p, self.root / name):
                return "reference-access", label
        if is_inside(p, self.root):
            if not write and (p == self.root or p.parent == self.root and p.suffix in (
                    ".egg-info", ".dist-info", ".pth") or any(
                    is_inside(p, self.root / ok) for ok in ("course", "data", ".venv")) or any(
                    part.endswith((".egg-info", ".dist-info")) for part in p.parts)):
                return None  # public parts, and what importlib scans on sys.path
            labels = {"gradebook.db": "the gradebook", "submitted": "other submissions",
                      "autograded": "other students' folders", "feedback": "students' feedback",
                      "release": "the release folder"}
            first = p.relative_to(self.root).parts[:1]
            label = labels.get(first[0], "the course directory") if first else "the course directory"
            return "forbidden-file", label
        if write and not any(is_inside(p, Path(ok)) for ok in _writable_dirs()):
            return "forbidden-file", "a place outside the submission's folder"
        return None

    def on_path(self, event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None, None))[:3]
            write = bool(mode and any(c in str(mode) for c in "wax+")) or bool(
                isinstance(flags, int)
                and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC))
            targets = [(path, write)]
        elif event == "sqlite3.connect":
            path = os.fsdecode(args[0]) if isinstance(args[0], (str, bytes)) else args[0]
            if isinstance(path, str) and path.startswith("file:"):  # sqlite URI filename
                path = urllib.parse.unquote(urllib.parse.urlsplit(path).path) or ":memory:"
            targets = [(path, False)]
        elif event in _READ_EVENTS:
            targets = [(args[0] if args else ".", False)]
        else:
            targets = [(args[i], True) for i in _WRITE_EVENTS[event] if i < len(args)]
        for path, write in targets:
            verdict = self.check_path(path, write)
            if verdict is None or write and _bytecode_cache(path, sys._getframe(2)):
                continue
            student = self._student()
            if student is None:
                return
            kind, label = verdict
            if not write and self._formatting_a_stack(sys._getframe(2)):
                # traceback.format_stack() and friends show each frame's source line: the
                # grader's lines are withheld, but printing a stack is no attempt to read them.
                raise _Denied(PermissionError(f"{path}: not readable during grading"))
            frame, function = student
            listing = event in _READ_EVENTS
            action = "write to" if write else ("listing of" if listing else "read of")
            real = os.path.realpath(os.fsdecode(path))
            shown = self.describe_path(real)
            # Refuse what would succeed: a file that exists, a folder that can be written to.
            # A listing shows names only: flagged, not refused.
            block = (os.access(os.path.dirname(real) or ".", os.W_OK) if write
                     else not listing and os.path.exists(real))
            self._deny(kind, f"{action} {shown} ({label}) from student code "
                       f"{self.where(frame, function)}", function,
                       PermissionError(f"{shown} ({label}) is off limits to submissions "
                                       "during grading (this attempt is reported to the "
                                       "instructor)"),
                       block)

    def _formatting_a_stack(self, frame) -> bool:
        """Whether the library frames above ``frame`` include the ``traceback`` module."""
        while frame is not None and self._is_library(frame.f_code.co_filename):
            if frame.f_code.co_filename.endswith(f"{os.sep}traceback.py"):
                return True
            frame = frame.f_back
        return False

    def on_network(self, event: str, args: tuple) -> None:
        student = self._student()
        if student is None:
            return
        frame, function = student
        with_self = ("socket.connect", "socket.sendto", "socket.sendmsg", "socket.bind",
                     "http.client.connect")
        target = args[1] if event in with_self and len(args) > 1 else args[0] if args else ""
        # In the sandbox there is no network (the connection fails by itself); unsandboxed, the
        # guard is all there is.
        self._deny("network", f"network access ({event} {target!r}) from student code "
                   f"{self.where(frame, function)}", function,
                   PermissionError("network access is disabled while grading (this attempt is "
                                   "reported to the instructor)"),
                   block=bool(os.environ.get("BN_UNSANDBOXED")))

    def on_info(self, event: str, args: tuple) -> None:
        student = self._student()
        if student is None:
            return
        frame, function = student
        kind = "subprocess" if event in _PROCESS_EVENTS else "native-code"
        what = str(args[0])[:80] if args else ""
        key = (kind, event, frame.f_code if frame is not None else None)
        if key in self.info_seen:  # ctypes raises one event per object: record the first
            return
        self.info_seen.add(key)
        self.record(kind, f"{event} {what!r} from student code {self.where(frame, function)}",
                    function)

    def on_introspection(self, event: str, args: tuple) -> None:
        student = self._student()
        if student is None:
            return
        frame, function = student
        self.record("tampering", f"{event} (searching the interpreter's objects for the "
                    f"grader's internals) from student code {self.where(frame, function)}",
                    function, in_check=False)

    def on_getframe(self, event: str, args: tuple) -> None:
        target = args[0] if args else None
        if target is None or id(target.f_code) not in self.trusted:
            return
        self._grader_frame_read(f"{event} reached a grader frame ({target.f_code.co_name})")

    def on_getattr(self, event: str, args: tuple) -> None:
        obj, name = args[0], args[1]
        if name == "__code__" and isinstance(obj, types.FunctionType):
            if id(obj.__code__) not in self.trusted and id(obj) not in self.reference_ids:
                return
            student = self._student()
            if student is None:
                return
            frame, function = student
            self._deny("reference-access",
                       f"read the code of the grader's function {obj.__module__}."
                       f"{obj.__qualname__} (to copy or inspect it) from student code "
                       f"{self.where(frame, function)}", function,
                       PermissionError(f"the code of {obj.__qualname__} belongs to the grader "
                                       "(this attempt is reported to the instructor)"))
        elif name == "f_code" and isinstance(obj, types.FrameType):
            # Only a direct read by student code: library helpers (traceback.print_stack,
            # inspect.stack) walk every frame and would flag honest debugging output.
            if id(obj.f_code) in self.trusted and self._direct_student(sys._getframe(2)):
                self._grader_frame_read(f"inspected the grader's frame {obj.f_code.co_name}")

    def _grader_frame_read(self, what: str) -> None:
        student = self._student(4)
        if student is None:
            return
        frame, function = student
        self.record("tampering", f"{what} from student code {self.where(frame, function)}",
                    function, in_check=False)

    def _direct_student(self, frame) -> bool:
        """Whether ``frame`` (the code that raised an event) is student code itself."""
        code = frame.f_code
        return id(code) not in self.trusted and not self._is_library(code.co_filename)

    def on_setattr(self, event: str, args: tuple) -> None:
        obj, name = args[0], args[1]
        if isinstance(obj, type):
            module = str(obj.__dict__.get("__module__", ""))
        elif isinstance(obj, types.FunctionType):
            module = str(getattr(obj, "__module__", "") or "")
        else:
            return
        # Only a direct write by student code: numpy's lazily imported modules set attributes of
        # numpy's own classes (a replacement through a library is found by verify()).
        if not module.startswith(_PROTECTED_PREFIXES) or not self._direct_student(
                sys._getframe(2)):
            return
        student = self._student()
        if student is None:
            return
        frame, function = student
        verb = "delete" if event == "object.__delattr__" else "set"
        self._deny("tampering", f"tried to {verb} {module}.{getattr(obj, '__qualname__', obj)}."
                   f"{name} from student code {self.where(frame, function)}", function,
                   PermissionError(f"{module} belongs to the grader and may not be modified "
                                   "(this attempt is reported to the instructor)"))

    # ================================================================== tamper detection
    def verify(self) -> list[str]:
        """Put back every watched object that changed; return what changed, in words."""
        busy = getattr(self.tls, "busy", False)
        self.tls.busy = True  # the guard's own reads and writes are not audited
        try:
            return self._verify()
        finally:
            self.tls.busy = busy

    def _verify(self) -> list[str]:
        changes: list[str] = []
        for name, mod in self.pristine_modules.items():
            if sys.modules.get(name) is not mod:
                changes.append(f"sys.modules[{name!r}] was replaced")
                sys.modules[name] = mod
        for mod_name, (ns, keep) in self.namespaces.items():
            for key, value in keep.items():
                current = ns.get(key, _MISSING)
                if current is not value and key not in _MODULE_MANAGED:
                    verb = "deleted" if current is _MISSING else "replaced"
                    changes.append(f"{mod_name}.{key} was {verb}")
                    ns[key] = value
            if mod_name == "builtins":
                continue
            for key in [k for k in ns if k not in keep]:
                value = ns[key]
                if key in _MODULE_MANAGED or isinstance(value, types.ModuleType):
                    continue
                changes.append(f"{mod_name}.{key} was added")
                del ns[key]
        for fn, state in self.function_state.values():
            if _function_ids(fn) != state[:4]:
                changes.append(f"the code of {fn.__module__}.{fn.__qualname__} was changed")
                _restore_function(fn, state)
        for cls, keep in self.class_state.values():
            now = dict(vars(cls))
            if any(now.get(k, _MISSING) is not v for k, v in keep.items()) or set(now) - set(keep):
                changes.append(f"the class {cls.__module__}.{cls.__qualname__} was changed")
                _restore_class(cls, keep)
        if self.shell_watch is not None:
            changes.extend(self.shell_watch.verify())
        _scrub_linecache(self.package_dir)
        return changes

    def verify_and_flag(self, when: str) -> None:
        changes = self.verify()
        if changes:
            shown = "; ".join(changes[:6]) + (f"; and {len(changes) - 6} more"
                                              if len(changes) > 6 else "")
            self.record("tampering", f"found {when}: {shown} (all restored before checking)",
                        in_check=False)

    # ================================================================== checks
    def begin_check(self, name: str, student_fn: Any) -> int:
        with self.lock:
            token = self.next_token
            self.next_token += 1
            code = getattr(student_fn, "__code__", None)
            self.checks[token] = (name, code if isinstance(code, types.CodeType) else None)
        self.verify_and_flag(f"before the check of {name}")
        self.active.append(token)
        if self.is_reference(student_fn):
            self.record("reference-access", f"the function graded as {name} is the grader's "
                        "reference solution itself")
        return token

    def end_check(self, token: int) -> list[tuple[str, str, bool]]:
        name, code = self.checks.get(token, ("", None))
        self.verify_and_flag(f"during the check of {name}")
        with self.lock:
            if token in self.active:
                self.active.remove(token)
            out, seen = [], set()
            for i, flag in enumerate(self.flags):
                if not self._applies(flag, token, name, code):
                    continue
                self.reported.add(i)
                if (flag.kind, flag.reason) not in seen:
                    seen.add((flag.kind, flag.reason))
                    out.append((flag.kind, flag.reason, flag.kind in ZERO_KINDS))
            return out

    @staticmethod
    def _applies(flag: Flag, token: int, name: str, code: types.CodeType | None) -> bool:
        if flag.check == token:
            return True
        if flag.check is not None:
            return flag.kind == "tampering"
        if flag.kind == "tampering":
            return True
        if flag.function is None:  # top-level cell code: global if it costs points
            return flag.kind in ZERO_KINDS
        return flag.function is code or flag.function.co_name == name

    def global_zero_flags(self) -> list[Flag]:
        """Flags that zero every later check: tampering, and top-level reaching past."""
        with self.lock:
            return [f for f in self.flags if f.kind in ZERO_KINDS and (
                f.kind == "tampering" or f.check is None and f.function is None)]

    def unreported(self) -> list[Flag]:
        with self.lock:
            out = [f for i, f in enumerate(self.flags) if i not in self.reported]
            self.reported.update(range(len(self.flags)))
            return out


class _ShellWatch:
    """Pristine copies of the IPython machinery that decides what a test cell outputs."""

    #: Shell attributes whose identity must not change.
    ATTRS = ("displayhook", "display_pub", "display_formatter", "display_trap", "compile",
             "events", "input_transformer_manager", "InteractiveTB", "SyntaxTB", "CustomTB",
             "custom_exceptions", "kernel")
    #: Lists of transformers and hooks run on every cell.
    LISTS = ("ast_transformers", "input_transformers_post")

    def __init__(self, guard: _Guard, shell):
        self.guard = guard
        self.shell = shell
        self.attrs = {a: getattr(shell, a, None) for a in self.ATTRS}
        self.lists = {a: list(getattr(shell, a, [])) for a in self.LISTS}
        itm = shell.input_transformer_manager
        self.itm_lists = {a: list(getattr(itm, a, [])) for a in
                          ("cleanup_transforms", "line_transforms", "token_transformers")}
        self.objects = [o for o in (shell, getattr(shell, "kernel", None),
                                    getattr(getattr(shell, "kernel", None), "session", None),
                                    shell.displayhook, shell.display_pub, shell.display_formatter,
                                    shell.display_trap, shell.compile, shell.events, itm,
                                    shell.InteractiveTB, shell.SyntaxTB,
                                    *shell.display_formatter.formatters.values())
                        if o is not None]
        self.instance_dicts = {id(o): (o, dict(vars(o))) for o in self.objects}
        classes = {c for o in self.objects for c in type(o).__mro__ if c is not object}
        self.class_state = {id(c): (c, dict(vars(c))) for c in classes
                            if str(c.__module__).startswith(_PROTECTED_PREFIXES)}
        self.formatters = dict(shell.display_formatter.formatters)
        self.active_types = list(shell.display_formatter.active_types)
        plain = self.formatters.get("text/plain")
        self.plain = plain
        self.plain_state = {a: (dict(getattr(plain, a)) if isinstance(getattr(plain, a), dict)
                                else getattr(plain, a))
                            for a in ("type_printers", "deferred_printers", "singleton_printers",
                                      "enabled", "float_format", "float_precision", "pprint")
                            if plain is not None and hasattr(plain, a)}
        self.printer_ids = {id(v) for a in ("type_printers", "deferred_printers",
                                            "singleton_printers")
                            for v in self.plain_state.get(a, {}).values()}
        self.callbacks = {k: list(v) for k, v in shell.events.callbacks.items()}
        self.builtins_ns = shell.user_ns.get("__builtins__")

    def _library_callable(self, fn: Any) -> bool:
        """Whether a callback is library or grader code (read statically: a student's object
        must not run code while the guard looks at it)."""
        func = fn
        for _ in range(5):  # unwrap bound methods and partials
            if isinstance(func, types.MethodType):
                func = func.__func__
            elif isinstance(func, functools.partial):
                func = func.func
        if isinstance(func, types.FunctionType):
            code = func.__code__
        elif isinstance(func, types.BuiltinFunctionType):
            return True
        else:  # an instance of a class with __call__
            call = inspect.getattr_static(type(func), "__call__", None)
            if not isinstance(call, types.FunctionType):
                return True  # a C-level callable
            code = call.__code__
        return self.guard._is_library(code.co_filename) or id(code) in self.guard.trusted

    def verify(self) -> list[str]:
        shell, changes = self.shell, []
        for name, value in self.attrs.items():
            if getattr(shell, name, None) is not value:
                changes.append(f"IPython's shell.{name} was replaced")
                setattr(shell, name, value)
        for name, value in self.lists.items():
            current = getattr(shell, name, None)
            if current is None or not _same_items(current, value):
                changes.append(f"IPython's shell.{name} was changed")
                if isinstance(current, list):
                    current[:] = value
                else:
                    setattr(shell, name, list(value))
        itm = shell.input_transformer_manager
        for name, value in self.itm_lists.items():
            current = getattr(itm, name, None)
            if current is not None and not _same_items(current, value):
                changes.append(f"IPython's input transformers ({name}) were changed")
                current[:] = value
        for obj, keep in self.instance_dicts.values():
            changes.extend(_instance_overrides(obj, keep))
        for cls, keep in self.class_state.values():
            now = dict(vars(cls))
            if any(now.get(k, _MISSING) is not v for k, v in keep.items()) or set(now) - set(keep):
                changes.append(f"the class {cls.__module__}.{cls.__qualname__} was changed")
                _restore_class(cls, keep)
        fmt = shell.display_formatter
        if not _same_mapping(fmt.formatters, self.formatters):
            changes.append("IPython's display formatters were replaced")
            fmt.formatters.clear()
            fmt.formatters.update(self.formatters)
        if not _same_items(fmt.active_types, self.active_types):
            changes.append("IPython's active display types were changed")
            fmt.active_types = list(self.active_types)
        if self.plain is not None:
            changes.extend(self._verify_plain())
        for event, pristine in self.callbacks.items():
            current = shell.events.callbacks.get(event)
            if current is None:
                shell.events.callbacks[event] = list(pristine)
                changes.append(f"IPython's {event} callbacks were removed")
                continue
            for cb in pristine:
                if not any(cb is c for c in current):
                    changes.append(f"the grader's {event} callback was unregistered")
                    current.insert(0, cb)
            for i in reversed(range(len(current))):
                cb = current[i]
                if not any(cb is p for p in pristine) and not self._library_callable(cb):
                    changes.append(f"a {event} callback was registered by student code")
                    del current[i]
        if shell.user_ns.get("__builtins__") is not self.builtins_ns:
            changes.append("the notebook's __builtins__ was replaced")
            shell.user_ns["__builtins__"] = self.builtins_ns
        return changes

    def _verify_plain(self) -> list[str]:
        plain, changes = self.plain, []
        for name, value in self.plain_state.items():
            current = getattr(plain, name)
            if isinstance(value, dict):
                foreign = [v for v in current.values()
                           if id(v) not in self.printer_ids and not self._library_callable(v)]
                if foreign:
                    changes.append(f"IPython's text/plain {name} got a printer from student code")
                if not _same_mapping(current, value):
                    current.clear()
                    current.update(value)
            elif name == "enabled" and current is not value:
                changes.append("IPython's text/plain formatter was disabled")
                setattr(plain, name, value)
            elif current is not value:  # %precision and the like: put back silently
                setattr(plain, name, value)
        return changes


_MISSING = object()
#: How every hidden test cell starts (see autograder/checks.py).
_HIDDEN_TEST = "from autograder.checks import"
_GUARD: _Guard | None = None

_HANDLERS: dict[str, Callable[[_Guard, str, tuple], None]] = {
    "import": _Guard.on_import,
    "open": _Guard.on_path,
    "sqlite3.connect": _Guard.on_path,
    **{e: _Guard.on_path for e in _READ_EVENTS},
    **{e: _Guard.on_path for e in _WRITE_EVENTS},
    **{e: _Guard.on_network for e in _NETWORK_EVENTS},
    **{e: _Guard.on_info for e in _PROCESS_EVENTS | _NATIVE_EVENTS},
    **{e: _Guard.on_introspection for e in _INTROSPECTION_EVENTS},
    "sys._getframe": _Guard.on_getframe,
    "object.__getattr__": _Guard.on_getattr,
    "object.__setattr__": _Guard.on_setattr,
    "object.__delattr__": _Guard.on_setattr,
}


# ====================================================================== helpers
def _same_items(a: Iterable, b: list) -> bool:
    """Same objects in the same order (identity: no student ``__eq__`` is called)."""
    a = list(a)
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


def _same_mapping(a: dict, b: dict) -> bool:
    """Same keys, and the same object under each (identity)."""
    return len(a) == len(b) and all(k in a and a[k] is v for k, v in b.items())




def _is_watched_module(name: str) -> bool:
    return (name in ("builtins", "autograder") or name.startswith("autograder.")
            or name == "numpy" or name.startswith("numpy.")) and name != "autograder.kernel.launcher"


def _bytecode_cache(path: Any, frame) -> bool:
    """Whether this is the import system writing a ``__pycache__/*.pyc`` file itself."""
    name = os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else ""
    return ("__pycache__" in name and ".pyc" in name
            and frame.f_code.co_filename == "<frozen importlib._bootstrap_external>")


def _writable_dirs() -> Iterable[str]:
    """Where library code may legitimately write outside the submission's folder (caches)."""
    home = Path.home()
    dirs = [tempfile.gettempdir(), "/dev", str(home / ".cache"), str(home / ".ipython"),
            str(home / ".config" / "matplotlib"), str(home / ".local" / "share" / "jupyter")]
    for var in ("MPLCONFIGDIR", "IPYTHONDIR", "JUPYTER_RUNTIME_DIR", "XDG_CACHE_HOME",
                "JUPYTER_DATA_DIR"):
        if os.environ.get(var):
            dirs.append(os.environ[var])
    return [os.path.realpath(d) for d in dirs]


def _function_ids(fn: types.FunctionType) -> tuple:
    """Identities of what a function runs: code, defaults, closure cells' contents."""
    return (id(fn.__code__), id(fn.__defaults__), id(fn.__kwdefaults__),
            tuple(id(_cell_value(c)) for c in fn.__closure__ or ()))


def _function_state(fn: types.FunctionType) -> tuple:
    """:func:`_function_ids`, then the objects themselves (kept alive, to put them back)."""
    return (*_function_ids(fn), fn.__code__, fn.__defaults__, fn.__kwdefaults__,
            tuple(_cell_value(c) for c in fn.__closure__ or ()))


def _cell_value(cell):
    try:
        return cell.cell_contents
    except ValueError:
        return _MISSING


def _restore_function(fn: types.FunctionType, state: tuple) -> None:
    code, defaults, kwdefaults, values = state[4], state[5], state[6], state[7]
    fn.__code__ = code
    fn.__defaults__ = defaults
    fn.__kwdefaults__ = kwdefaults
    for cell, value in zip(fn.__closure__ or (), values, strict=False):
        if value is not _MISSING:
            cell.cell_contents = value


def _restore_class(cls: type, keep: dict) -> None:
    for key in [k for k in vars(cls) if k not in keep]:
        delattr(cls, key)
    for key, value in keep.items():
        if vars(cls).get(key, _MISSING) is not value and key not in ("__dict__", "__weakref__"):
            setattr(cls, key, value)


def _instance_overrides(obj: Any, keep: dict) -> list[str]:
    """Instance attributes that now shadow (or replace) a method: put the originals back."""
    changes = []
    cls = type(obj)
    try:
        current = vars(obj)
    except TypeError:
        return changes
    for key in list(current):
        value = current[key]
        pristine = keep.get(key, _MISSING)
        if value is pristine:
            continue
        shadowed = getattr(cls, key, None)
        if callable(shadowed) or callable(pristine) and pristine is not _MISSING:
            changes.append(f"{cls.__name__}.{key} was overridden on IPython's "
                           f"{cls.__name__} object")
            if pristine is _MISSING:
                del current[key]
            else:
                current[key] = pristine
    return changes


def _scrub_linecache(package_dir: Path) -> None:
    """Forget cached source lines of the grader's files (``linecache.cache`` is readable)."""
    prefix = str(package_dir)
    for key in [k for k in list(linecache.cache) if str(k).startswith(prefix)]:
        linecache.cache.pop(key, None)


# ====================================================================== public API
def install(cwd: str | os.PathLike | None = None) -> None:
    """Install the trusted preamble in this process (once; later calls do nothing).

    Parameters
    ----------
    cwd : path, optional
        The submission's folder (default: the current directory). Student code may read and
        write inside it; outside it, see :meth:`_Guard.check_path`.

    Raises
    ------
    RuntimeError
        If the ``autograder`` package was imported from inside ``cwd`` (a submission
        providing its own ``autograder/``).
    """
    global _GUARD
    if _GUARD is not None:
        return
    guard = _Guard(Path(os.path.realpath(cwd if cwd is not None else os.getcwd())))
    _GUARD = guard
    guard.namespaces["autograder.kernel.guard"] = (globals(), dict(globals()))
    sys.addaudithook(guard.hook)


def is_installed() -> bool:
    """Whether :func:`install` ran in this process (grading.py's hooks are no-ops otherwise)."""
    return _GUARD is not None


def attach_shell(shell) -> None:
    """Watch the IPython shell that will run the notebook (call after the kernel initialized).

    Takes pristine copies of the shell's output machinery, and registers ``pre_run_cell`` (look
    for tampering before every cell, so that a replaced check or ``showtraceback`` is put back
    before the hidden test cell runs) and ``post_run_cell`` (print the flags a cell raised
    outside any check into that cell's output) callbacks.
    """
    from autograder.checks.framework import flag_line

    guard = _require()
    guard.shell = shell
    guard.stdout, guard.stderr = sys.stdout, sys.stderr

    def before_cell(info=None):
        guard.verify_and_flag("before a cell ran")
        # ipykernel transforms a cell before this callback runs, so a student's input
        # transformer may already have rewritten a hidden test cell. nbgrader scores any test
        # cell that writes to stderr 0: after tampering, every hidden test cell does.
        if _HIDDEN_TEST in str(getattr(info, "raw_cell", "") or ""):
            zero = guard.global_zero_flags()
            if zero:
                lines = [flag_line(f.kind, f.reason) for f in zero]
                guard.stderr.write("\n".join(lines) + "\nThis hidden test scores 0: the "
                                   "grader was tampered with or reached past the submission.\n")
                guard.stderr.flush()

    def after_cell(result=None):
        lines = [flag_line(f.kind, f.reason) for f in guard.unreported()]
        if lines and guard.stdout is not None:
            guard.stdout.write("\n".join(lines) + "\n")
            guard.stdout.flush()

    guard._trust_code(before_cell.__code__)
    guard._trust_code(after_cell.__code__)
    shell.events.register("pre_run_cell", before_cell)
    shell.events.register("post_run_cell", after_cell)
    guard.shell_watch = _ShellWatch(guard, shell)


def begin_check(name: str, student_fn: Any) -> int:
    """Called by :func:`autograder.checks.framework.hidden_check` before a check runs: restore anything
    tampered with (flagging it) and return the check's token for :func:`end_check`."""
    return _require().begin_check(name, student_fn)


def end_check(token: int) -> list[tuple[str, str, bool]]:
    """Called by :meth:`autograder.checks.framework.Grader.finish`: look for tampering again and return
    the flags that apply to this check as ``(kind, reason, zeroes_the_score)``."""
    return _require().end_check(token)


def flags() -> list[tuple[str, str]]:
    """Every flag recorded in this process so far, in order."""
    return [(f.kind, f.reason) for f in _require().flags]


def verify() -> list[str]:
    """Look for tampering now; restore and return what changed (also recorded as a flag)."""
    guard = _require()
    changes = guard.verify()
    if changes:
        guard.record("tampering", "; ".join(changes), in_check=False)
    return changes


def _require() -> _Guard:
    if _GUARD is None:
        raise RuntimeError("autograder.kernel.guard.install() has not run in this process")
    return _GUARD


__all__ = ["ZERO_KINDS", "INFO_KINDS", "LOG_ENV", "Flag", "install", "is_installed",
           "attach_shell", "begin_check", "end_check", "flags", "verify"]
