"""The trusted side of a hidden check: the check runs here, the student's function in the kernel.

nbgrader's process runs the notebook through the course's execute preprocessor
(:class:`autograder.kernel.execute.SandboxedExecute`). For a hidden test cell it does not send the
cell to the kernel. It parses the cell's one line, ``from autograder.checks import check_x;
check_x(x)`` (:func:`parse_hidden_cell`), imports the check *here*, and calls it with a
:class:`KernelFunction` standing for ``x``. Calling that proxy sends the kernel a request with
the arguments as plain serialized data (:mod:`autograder.kernel.shim`); the kernel calls the
student's function and sends back plain data only. The check, the reference and every expected
value stay in this process, out of reach of the student's code; what the kernel sends is decoded
as untrusted input and is only ever compared.

The check's record (:class:`autograder.record.CheckRecord`: parts, diagnoses, notes, flags) and
its score go into the cell's trusted metadata (:func:`autograder.notebooks.set_record`); the
cell's printed output is the record's rendering, never text the check or the student printed. A
flag (``refused-output``, ``cell-timeout``, ``kernel-died``) is recorded by this side only.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import io
import json
import queue
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autograder.kernel import shim
from autograder.record import CheckRecord, render

#: How a hidden test cell imports its check.
CHECKS_MODULE = "autograder.checks"
#: Flag kinds the kernel's guard may report (autograder/kernel/guard.py), and those that score the
#: check that receives them 0.
GUARD_KINDS = frozenset({"reference-access", "forbidden-file", "network", "subprocess",
                         "native-code"})
ZERO_KINDS = frozenset({"reference-access", "forbidden-file", "network", "tampering"})
#: Seconds a kernel gets to stop a call after it was interrupted.
INTERRUPT_GRACE = 5.0


class KernelGone(BaseException):
    """The kernel died or hung during a check: the check stops, its cell scores 0.

    A ``BaseException``, so that no part of a check (which catch ``Exception``) can keep points.
    ``kind`` is the flag: ``"kernel-died"`` or ``"cell-timeout"``; ``stopped`` tells whether the
    kernel is gone for the rest of the notebook.
    """

    kernel_gone = True  # Grader.call lets it through (autograder/checks/framework.py)

    def __init__(self, kind: str, reason: str, stopped: bool):
        super().__init__(reason)
        self.kind, self.reason, self.stopped = kind, reason, stopped


class Refused(AssertionError):
    """The kernel sent something that is not plain data; the message says what to return.

    An ``AssertionError`` like :class:`autograder.checks.framework.Failure`, so a check reports it
    as a failed part.
    """

    refused = True  # Grader.call reports it as a failed part (autograder/checks/framework.py)


class RemoteError(Exception):
    """An exception the student's function raised in the kernel, by type name and message."""

    remote_type = "Exception"
    where = ""


_BUILTIN_BASES: dict[str, type] = {
    c.__name__: c for c in (ValueError, TypeError, NotImplementedError, IndexError, KeyError,
                            ZeroDivisionError, ArithmeticError, AttributeError, NameError,
                            LookupError, RuntimeError, AssertionError, MemoryError,
                            RecursionError, FloatingPointError, OverflowError)
}


def remote_exception(error: dict) -> RemoteError:
    """A local exception for what the kernel reported, an instance of its builtin base (e.g.
    ``ValueError``) so that ``isinstance`` checks work; never a ``BaseException`` that would stop
    the check (a student's ``KeyboardInterrupt`` or ``SystemExit`` is just an error here)."""
    bases = [str(b) for b in error.get("bases", []) if isinstance(b, str)]
    base = next((_BUILTIN_BASES[b] for b in bases if b in _BUILTIN_BASES), Exception)
    name = str(error.get("type", "Exception"))[:100]
    cls = type(name if name.isidentifier() else "StudentException", (RemoteError, base), {})
    exc = cls(str(error.get("message", ""))[:shim.MAX_TEXT])
    exc.remote_type = name
    exc.where = str(error.get("where", ""))[:shim.MAX_TEXT]
    return exc


@dataclass
class KernelChannel:
    """Requests to the kernel of one notebook run, over the preprocessor's kernel client.

    Parameters
    ----------
    client : nbclient.NotebookClient
        The running execute preprocessor (its ``kc`` and ``km``).
    timeout : float
        Seconds for all the calls of one check together (``c.Execute.timeout``).
    """

    client: Any
    timeout: float
    flags: list[tuple[str, str]] = field(default_factory=list)
    calls: int = 0
    deadline: float = 0.0

    def start_check(self) -> None:
        """Reset the time budget and the flags for the next check."""
        self.deadline = time.monotonic() + self.timeout
        self.flags = []

    def request(self, payload: dict) -> dict:
        """Send one request and return the kernel's decoded response dict (untrusted)."""
        from jupyter_core.utils import run_sync

        self.calls += 1
        try:
            response = run_sync(self._request)(payload)
        finally:
            self._note_refusals()
        if response.get("tampering"):
            self.flags.append(("tampering", "the kernel answered a request it was not sent"))
        guard = response.get("guard")
        for item in guard if isinstance(guard, list) else []:
            if (isinstance(item, list) and len(item) == 2 and item[0] in GUARD_KINDS
                    and isinstance(item[1], str)):
                self.flags.append((item[0], f"the kernel's guard saw {item[1][:300]}"))
        return response

    def zeroed(self) -> list[tuple[str, str]]:
        """The flags of this check that score it 0 (tampering, and the guard's zero kinds)."""
        return [f for f in self.flags if f[0] in ZERO_KINDS]

    def _note_refusals(self) -> None:
        """Flag what the kernel client's relays refused during the call (see
        :mod:`autograder.kernel.channels`): the answer it was waiting for, if that was it."""
        from autograder.kernel.channels import describe
        from autograder.kernel.output_limits import refusals

        refused = refusals(self.client.kc, self.client.km)
        if refused:
            self.flags.append(("refused-output", describe(refused)))

    async def _request(self, payload: dict) -> dict:
        """Every wait here is bounded: the replies by the check's deadline (then the kernel is
        interrupted, and given :data:`INTERRUPT_GRACE` more), the kernel manager's calls and
        the execute reply after "idle" by :data:`INTERRUPT_GRACE` each."""
        kc, km = self.client.kc, self.client.km
        code = (f"__import__('autograder.kernel.shim', fromlist=['serve'])"
                f".serve({json.dumps(json.dumps(payload))})")
        msg_id = kc.execute(code, silent=True, store_history=False, allow_stdin=False,
                            stop_on_error=False)
        response, interrupted = None, False
        deadline = self.deadline or time.monotonic() + self.timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if interrupted:
                    raise KernelGone("cell-timeout", "the kernel did not stop when interrupted "
                                     "and was shut down", stopped=True)
                interrupted = True
                await _bounded(km.interrupt_kernel(), "interrupting it")
                deadline = time.monotonic() + INTERRUPT_GRACE
                continue
            try:
                msg = await kc.get_iopub_msg(timeout=min(remaining, 0.5))
            except queue.Empty:
                if not await _bounded(km.is_alive(), "asking whether it lives"):
                    raise KernelGone("kernel-died", "the kernel died", stopped=True) from None
                continue
            parent = msg.get("parent_header")
            if not isinstance(parent, dict) or parent.get("msg_id") != msg_id:
                continue
            kind, content = msg.get("msg_type"), msg.get("content")
            content = content if isinstance(content, dict) else {}
            data = content.get("data")
            if kind == "display_data" and response is None and isinstance(data, dict):
                response = self._parse(data.get(shim.MIME), payload["id"])
            elif kind == "status" and content.get("execution_state") == "idle":
                break
        if not await self._drain_reply(msg_id):
            raise KernelGone("cell-timeout", f"the kernel said the call of {payload['fn']} was "
                             f"over but sent no reply within {INTERRUPT_GRACE:g} s; it was "
                             "stopped", stopped=True)
        if interrupted:
            raise KernelGone("cell-timeout", f"a call of {payload['fn']} ran past the "
                             f"{self.timeout:g} s limit and was interrupted", stopped=False)
        if response is None:
            raise Refused(f"{payload['fn']} gave no answer the grader could read (too large, "
                          "or the notebook replaced IPython's display machinery)")
        return response

    async def _drain_reply(self, msg_id: str) -> bool:
        """Read shell messages until the reply to ``msg_id``, for at most
        :data:`INTERRUPT_GRACE` seconds in all (a kernel can send other messages for ever);
        whether it came."""
        deadline = time.monotonic() + INTERRUPT_GRACE
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                reply = await self.client.kc.get_shell_msg(timeout=remaining)
            except queue.Empty:
                return False
            parent = reply.get("parent_header")
            if isinstance(parent, dict) and parent.get("msg_id") == msg_id:
                return True
        return False

    @staticmethod
    def _parse(text: Any, nonce: str) -> dict:
        if not isinstance(text, str) or len(text) > 4 * shim.MAX_BYTES:
            return {"refused": "an answer that is not text of a readable size"}
        try:
            response = json.loads(text)
        except (ValueError, RecursionError):
            return {"refused": "an answer that is not valid JSON"}
        if not isinstance(response, dict) or response.get("id") != nonce:
            return {"refused": "an answer to another request", "tampering": True}
        return response


async def _bounded(awaitable: Any, doing: str) -> Any:
    """Await a kernel manager's call for at most :data:`INTERRUPT_GRACE` seconds."""
    try:
        return await asyncio.wait_for(awaitable, INTERRUPT_GRACE)
    except TimeoutError:
        raise KernelGone("cell-timeout", f"the kernel manager did not answer within "
                         f"{INTERRUPT_GRACE:g} s when {doing}", stopped=True) from None


class KernelFunction:
    """Stands for the student's function ``name`` in the kernel; calling it is a request.

    Arguments are plain data (encoded by :func:`autograder.kernel.shim.encode`), functions made
    with :func:`autograder.checks.framework.kernel_function` (sent as their source), or other
    :class:`KernelFunction` objects (sent by name). What the call did to array, dict and list
    arguments is written back into them, as an in-place update in the kernel would have been.
    """

    def __init__(self, channel: KernelChannel, name: str):
        self.channel = channel
        self.__name__ = self.__qualname__ = name
        #: What the last call printed and warned (raw, capped; the check quotes it in its
        #: record): ``{"warnings": [...], "stdout": str, "stderr": str}``.
        self.output: dict[str, Any] = {}
        #: Notebook functions to watch during the next call, and those the last call called
        #: (a check's callees: autograder/checks/carried.py).
        self.watch: tuple[str, ...] = ()
        self.called: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"<student function {self.__name__} in the kernel>"

    def companion(self, name: str) -> KernelFunction | None:
        """Another function of the same notebook (e.g. the forward next to a backward)."""
        response = self.channel.request({"id": secrets.token_hex(8), "fn": "callable",
                                         "args": [name], "probe": True})
        return KernelFunction(self.channel, name) if response.get("value") is True else None

    def __call__(self, *args: Any) -> Any:
        nonce = secrets.token_hex(8)
        payload = {"id": nonce, "fn": self.__name__, "args": [self._argument(a) for a in args]}
        if self.watch:
            payload["watch"] = list(self.watch)
        response = self.channel.request(payload)
        warned = response.get("warnings")
        self.output = {"warnings": [w[:shim.MAX_TEXT] for w in warned[:20] if isinstance(w, str)]
                       if isinstance(warned, list) else []}
        for stream in ("stdout", "stderr"):
            text = response.get(stream)
            self.output[stream] = text[:shim.MAX_TEXT] if isinstance(text, str) else ""
        called = response.get("called")
        self.called = tuple(n for n in called if n in self.watch) \
            if isinstance(called, list) else ()
        if "missing" in response:
            raise remote_exception({"type": "NameError", "bases": ["NameError"],
                                    "message": f"name {self.__name__!r} is not defined in the "
                                               "notebook (was its cell run?)"})
        if "error" in response and isinstance(response["error"], dict):
            raise remote_exception(response["error"])
        if "refused" in response or "value" not in response:
            self._refuse(str(response.get("refused", "an answer without a value")))
        try:
            value = shim.decode(response["value"])
            after = response.get("after", [])
            kept = response.get("kept", [])
            kept = kept if isinstance(kept, list) else []
            for i, (original, now) in enumerate(zip(args, after if isinstance(after, list)
                                                     else [], strict=False)):
                if now is not None:
                    keys = kept[i] if i < len(kept) and isinstance(kept[i], list) else []
                    _write_back(original, shim.decode(now), {k for k in keys
                                                             if isinstance(k, str)})
        except (shim.NotPlainData, RecursionError, ValueError, TypeError) as exc:
            self._refuse(f"{self.__name__} returned {exc}")
        return value

    def _refuse(self, message: str):
        self.channel.flags.append(("refused-output", message[:300]))
        raise Refused(message)

    @staticmethod
    def _argument(value: Any) -> Any:
        if isinstance(value, KernelFunction):
            return {"$fn": value.__name__}
        spec = getattr(value, "__bn_source__", None)
        if spec is not None:
            source, name, constants = spec
            return {"$src": [source, name, shim.encode(constants)]}
        return shim.encode(value)


def _write_back(original: Any, now: Any, kept: set[str] = frozenset()) -> None:
    """Make ``original`` (the check's argument) what the kernel's copy became.

    In a dict, the arrays the call changed in place (``kept``: the same object before and
    after, as the shim saw it) are changed in place here too; a value the call stored anew is
    stored anew, and the array it replaced is left as it was, as in the kernel.
    """
    if isinstance(original, np.ndarray) and isinstance(now, np.ndarray):
        if original.shape == now.shape and original.flags.writeable:
            with np.errstate(all="ignore"):
                original[...] = now.astype(original.dtype, copy=False)
    elif isinstance(original, dict) and isinstance(now, dict):
        for key, value in now.items():
            old = original.get(key)
            if (key in kept and isinstance(old, np.ndarray) and isinstance(value, np.ndarray)
                    and old.shape == value.shape and old.dtype == value.dtype):
                old[...] = value
                now[key] = old
        original.clear()
        original.update(now)
    elif isinstance(original, list) and isinstance(now, list):
        original[:] = now


# ----------------------------------------------------------------------------- the hidden cell
@dataclass
class HiddenCall:
    """A hidden test cell's one line: the check's name and its arguments."""

    check: str
    args: list[tuple[str, Any]]  # ("name", "x") for a notebook function, ("value", v) otherwise


def parse_hidden_cell(source: str) -> HiddenCall | None:
    """The check call of a hidden test cell, or None when the cell is not exactly
    ``from autograder.checks import check_x[, ...]; check_x(arg, ...)`` (comments aside)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if len(tree.body) != 2:
        return None
    imp, expr = tree.body
    if not (isinstance(imp, ast.ImportFrom) and imp.module == CHECKS_MODULE and imp.level == 0
            and isinstance(expr, ast.Expr) and isinstance(expr.value, ast.Call)):
        return None
    imported = {a.name for a in imp.names if a.asname is None}
    call = expr.value
    if not isinstance(call.func, ast.Name) or call.func.id not in imported or call.keywords:
        return None
    args: list[tuple[str, Any]] = []
    for arg in call.args:
        if isinstance(arg, ast.Name):
            args.append(("name", arg.id))
        elif isinstance(arg, ast.Constant) and isinstance(arg.value, (int, float, str)):
            args.append(("value", arg.value))
        else:
            return None
    return HiddenCall(call.func.id, args)


@dataclass
class HiddenResult:
    """What the trusted side writes into a hidden test cell: the printed report (a rendering of
    ``record``), the score, the flags, and the check's record as data."""

    report: str
    score: float
    flags: list[tuple[str, str]]
    stopped: KernelGone | None = None
    record: CheckRecord | None = None


def load_check_files(paths) -> dict[str, Any]:
    """The hidden checks named in the ``__all__`` of each Python file in ``paths`` (trusted
    configuration: ``c.SandboxedExecute.extra_check_files``)."""
    import importlib.util

    found: dict[str, Any] = {}
    for path in paths:
        spec = importlib.util.spec_from_file_location(f"_course_checks_{len(found)}", path)
        if spec is None or spec.loader is None:
            raise ValueError(f"extra_check_files: {path} is not a Python file")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        found.update({name: getattr(module, name) for name in getattr(module, "__all__", [])})
    return found


def run_hidden_cell(source: str, points: float, channel: KernelChannel,
                    extra: dict[str, Any] | None = None) -> HiddenResult:
    """Run a hidden test cell's check here, calling the student's functions in the kernel.

    Parameters
    ----------
    source : str
        The cell's source, as nbgrader restored it from the gradebook.
    points : float
        The cell's maximum score (its nbgrader metadata); the score is clipped to [0, points].
    channel : KernelChannel
        Requests to the notebook's kernel.
    extra : dict, optional
        More checks by name, beside ``autograder.checks`` (:func:`load_check_files`).

    Returns
    -------
    HiddenResult
        The check's printed report, the score, and the flags raised on the way. A cell that is
        not a known check, a check that fails to run, or a kernel that dies or hangs scores 0.
    """
    import autograder.checks as checks

    call = parse_hidden_cell(source)
    known = {name: getattr(checks, name) for name in checks.__all__} | dict(extra or {})
    check = known.get(call.check) if call else None
    if call is None or not callable(check):
        record = CheckRecord(function=call.check if call else "this test cell",
                             points=float(points), score=0.0, notes=[
                                 "this test cell is not a hidden check the grader knows; it "
                                 "scores 0 (tell the instructor)"])
        return HiddenResult(render(record), 0.0, [], record=record)
    args = [KernelFunction(channel, v) if kind == "name" else v for kind, v in call.args]
    channel.start_check()
    out = io.StringIO()  # the check prints its report; the record is what counts
    stopped = None
    try:
        with contextlib.redirect_stdout(out):
            score = check(*args)
        record = getattr(score, "record", None)
    except KernelGone as exc:
        stopped, score = exc, 0.0
        record = getattr(exc, "record", None)
        if record is not None:
            record.stopped = f"{exc.reason}; the kernel is not answering"
    if not isinstance(score, (int, float)) or isinstance(score, bool) or not np.isfinite(score):
        score = 0.0
    score = float(min(max(score, 0.0), float(points)))
    zeroed = channel.zeroed()
    legacy = record is None  # a course's own check that makes no record: its printed text
    if legacy:
        record = CheckRecord(function=call.check, points=float(points), score=score,
                             stopped=stopped.reason if stopped is not None else "")
    if zeroed and score > 0:
        record.zeroed = f"the grader flagged {zeroed[0][0].replace('-', ' ')} ({zeroed[0][1]})"
        score = 0.0
    record.score = score
    flags = list(channel.flags)
    record.flags = [[kind, " ".join(str(reason).split())] for kind, reason in flags]
    if stopped is not None:
        flags.append((stopped.kind, stopped.reason))
    report = render(record)
    if legacy:
        report = out.getvalue() + "\n".join(report.splitlines()[1:]) + "\n"
    return HiddenResult(report, score, flags, stopped, record)
