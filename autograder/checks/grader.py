"""The Grader of one hidden check: weighted parts, calls into student code, comparisons with the
reference and the known mistakes, nothing for nothing, and the check's record.

:mod:`autograder.checks.framework` is the API checks import (``Grader``, ``hidden_check`` and the
value helpers); this module holds the class itself.
"""

from __future__ import annotations

import contextlib
import io
import traceback
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from autograder.checks import carried
from autograder.checks.values import (
    Failure,
    StudentError,
    _asarray,
    _type,
    close,
    fmt,
    is_plain_number,
    quiet,
    trivial,
)
from autograder.notebooks import DIAGNOSIS
from autograder.record import (
    FAILED,
    MAX_COMPARED,
    MAX_NOTES,
    PARTIAL,
    PASSED,
    CheckRecord,
    Compared,
    Diagnosis,
    Part,
    mistake_id,
    one_line,
    parse_finding,
    quote,
    render,
)


@dataclass
class PartResult:
    label: str
    weight: float
    passed: bool
    #: Why the part lost points, in the check's words (one message per failure).
    messages: list[str] = field(default_factory=list)
    #: How many of the part's comparisons with the reference matched.
    matched: int = 0
    #: With ``each=True``: comparisons that failed (the part then earns the fraction matched).
    missed: int = 0
    each: bool = False
    #: Matches with a reference output that a stub could not give (not a constant, not zero;
    #: not a self-consistency comparison). Only these anchor parts that compare no output.
    anchored: int = 0
    #: Notes (warnings, prints, remarks of the check); they never change the score.
    notes: list[str] = field(default_factory=list)
    compared: list[Compared] = field(default_factory=list)
    #: Graded functions of the notebook that the student's function called in this part, and
    #: how many calls of the student's function the part made.
    called: set[str] = field(default_factory=set)
    graded_calls: int = 0
    #: The check itself failed in this part (not the student's code).
    broken: bool = False
    #: Callees whose mistake this part carries forward (see autograder.checks.carried).
    carried: list[str] = field(default_factory=list)

    @property
    def earned(self) -> float:
        """The weight this part earns: all of it, none, or (``each=True``) the share of its
        comparisons that matched."""
        if not self.passed:
            return 0.0
        total = self.matched + self.missed
        return self.weight * (self.matched / total if self.each and total else 1.0)


#: Why a part that compared no output earns nothing when no other part matched the reference.
NOTHING_FOR_NOTHING = ("this part earns its weight only together with an output that matches the "
                       "reference, and none did")


class CheckScore(float):
    """The points a check earned (a float, nbgrader's partial credit), with the check's
    :class:`~autograder.record.CheckRecord` as ``record``."""

    record: CheckRecord

    def __new__(cls, value: float, record: CheckRecord):
        score = super().__new__(cls, value)
        score.record = record
        return score


class Grader:
    """Collects the parts of one hidden check, and makes its record.

    Parameters
    ----------
    name : str
        The graded function's name, shown in the report.
    points : float
        The cell's points in the notebook metadata; the score is ``points`` times the passed
        fraction of the parts' weights.
    uses : mapping, optional
        The other graded functions of the notebook that the graded one calls, by name: their
        references (first run) or the student's own (the carried-forward run). See
        :attr:`uses` and :mod:`autograder.checks.carried`.
    """

    def __init__(self, name: str, points: float, uses: Mapping[str, Callable] | None = None):
        self.name = name
        self.points = float(points)
        self.results: list[PartResult] = []
        self._current: PartResult | None = None
        self.notes: list[str] = []
        self._dropped_notes = 0
        #: Why the check stopped before its last part (then it scores 0), or None.
        self.stopped_early: str | None = None
        #: The callees as a namespace: ``g.uses.batch_stats(x)`` is the reference's in the first
        #: run and the student's own in the carried-forward run (``g.carrying``).
        self.uses = carried.Uses(uses or {})
        self.carrying = False
        #: The student's graded function (set by hidden_check): its calls are watched for the
        #: callees and logged, so that the carried-forward run can replay them.
        self.graded: Callable | None = None
        self.log = carried.CallLog()
        self.called_all: set[str] = set()
        self.carried: list = []

    # ------------------------------------------------------------------ parts
    @contextlib.contextmanager
    def part(self, label: str, weight: float = 1.0, each: bool = False):
        """A weighted part of the check. Exceptions inside it fail the part, never the cell.

        With ``each=True`` a failed comparison does not end the part: every comparison in it is
        made, and the part earns the share of them that matched (one mistake, e.g. the variance
        of ``batch_stats``, does not take the credit of a right mean with it).
        """
        result = PartResult(label, float(weight), passed=False, each=each)
        self._current = result
        try:
            yield result
            result.passed = result.matched > 0 or not result.missed
            # a part without a matching output waits for finish()
        except Failure as exc:
            result.messages.append(str(exc))
        except StudentError as exc:
            result.messages.append(self._describe_student_error(exc))
        except Exception as exc:  # a bug in a check must not crash grading either
            result.broken = True
            result.messages.append(
                f"the check could not run ({type(exc).__name__}: {quote(exc)}); "
                "please tell the instructor"
            )
        finally:
            self._current = None
            self.results.append(result)

    @staticmethod
    def _describe_student_error(exc: StudentError) -> str:
        inner = exc.exc
        if isinstance(inner, NotImplementedError):
            return f"{exc.fn_name} is not implemented yet (it raised NotImplementedError)."
        kind = one_line(getattr(inner, "remote_type", type(inner).__name__), 100)
        remote_where = getattr(inner, "where", None)  # raised in the kernel: its own line
        if isinstance(remote_where, str):
            where = f" ({one_line(remote_where, 300)})" if remote_where else ""
        else:
            tb = traceback.extract_tb(inner.__traceback__)
            last = tb[-1] if tb else None
            where = f" (line {last.lineno}: {quote(last.line, 200)})" if last and last.line else ""
        return f"{exc.fn_name} raised {kind}: {quote(inner)}{where}"

    def note(self, message: str) -> None:
        """Attach an informational line to the current part (or the whole check). Repeats are
        dropped, and at most :data:`~autograder.record.MAX_NOTES` are kept in each place."""
        notes = self._current.notes if self._current else self.notes
        message = one_line(message)
        if message in notes:
            return
        if len(notes) >= MAX_NOTES:
            self._dropped_notes += 1
            return
        notes.append(message)

    # ------------------------------------------------------------------ calling student code
    def call(self, fn: Callable, *args, **kwargs):
        """Call student code with warnings recorded and stdout/stderr captured.

        Warnings (numpy's included) and what the function printed become quoted notes, so that
        nothing reaches the cell's stderr. Exceptions are wrapped in StudentError. A call of the
        graded function is logged and watched for its callees (:mod:`autograder.checks.carried`);
        in the carried-forward run the same call is answered from that log.
        """
        name = getattr(fn, "__name__", "your function")
        graded = fn is self.graded and self.graded is not None
        replayed = self.log.replay(fn, args) if graded and self.carrying else None
        if replayed is not None:
            return replayed.answer(self, args)
        entry = self.log.start(fn, args) if graded and self.uses.names else None
        out_buf, err_buf = io.StringIO(), io.StringIO()
        with warnings.catch_warnings(record=True) as caught, np.errstate(all="warn"):
            warnings.simplefilter("always")
            try:
                with contextlib.redirect_stdout(out_buf), contextlib.redirect_stderr(err_buf), \
                        carried.watching(fn, self.uses.names if graded else ()) as called:
                    value = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - SystemExit, KeyboardInterrupt too
                if getattr(exc, "kernel_gone", False):
                    raise  # the kernel died or hung: the whole check stops and scores 0
                notes = self._output_notes(fn, name, caught, err_buf)
                wrapped = Failure(one_line(exc, 400)) if getattr(exc, "refused", False) \
                    else StudentError(name, exc)
                if graded:
                    self._called(called)
                if entry is not None:
                    entry.finish(args, wrapped, called, notes)
                raise wrapped from None
        notes = self._output_notes(fn, name, caught, err_buf)
        if graded:
            self._called(called)
        if entry is not None:
            entry.finish(args, value, called, notes)
        return value

    def _called(self, called: set[str]) -> None:
        """Note which callees a call of the graded function called (in its part and overall)."""
        self.called_all |= called
        if self._current is not None:
            self._current.called |= called
            self._current.graded_calls += 1

    def _output_notes(self, fn, name: str, caught, err_buf) -> list[str]:
        """Notes for what a call printed and warned, here or (for a function that ran there) in
        the kernel: every piece of its text quoted (:func:`autograder.record.quote`)."""
        texts: list[tuple[str, str]] = []
        for w in caught:
            texts.append((f"emitted a {one_line(w.category.__name__, 100)}", str(w.message)))
        if err_buf.getvalue().strip():
            texts.append(("wrote to stderr", err_buf.getvalue().strip()))
        output = getattr(fn, "output", None)  # a function that ran in the kernel
        if isinstance(output, dict):
            for w in output.get("warnings", [])[:MAX_NOTES]:
                kind, _, text = str(w).partition(": ")
                texts.append((f"emitted a {one_line(kind, 100)}", text))
            for stream, verb in (("stdout", "printed"), ("stderr", "wrote to stderr")):
                if isinstance(output.get(stream), str) and output[stream].strip():
                    texts.append((verb, output[stream].strip()))
        notes = [f"{name} {verb}: {quote(text)}" for verb, text in dict.fromkeys(texts)]
        for note in notes:
            self.note(note)
        return notes

    # ------------------------------------------------------------------ comparisons
    def compare(self, what: str, got, expected, *, self_consistency: bool = False,
                **kw) -> None:
        """Fail unless ``got`` matches ``expected`` (see :meth:`_compare` for the arguments).

        In a part made with ``each=True`` a mismatch is recorded and the part goes on.
        ``self_consistency=True`` marks a comparison of the student's function with another of
        the student's own functions (a backward pass with finite differences of the student's
        forward pass): its match counts for its part, but anchors nothing, so such a part only
        scores beside an output that matched the reference (issue 19: making both sides trivial
        must earn nothing).
        """
        part = self._current
        if part is None or not part.each:
            return self._compare(what, got, expected, self_consistency=self_consistency, **kw)
        try:
            self._compare(what, got, expected, self_consistency=self_consistency, **kw)
        except Failure as exc:
            part.missed += 1
            part.messages.append(str(exc))

    def _compare(
        self,
        what: str,
        got,
        expected,
        *,
        rtol: float,
        atol: float = 0.0,
        mistakes: Mapping[str, tuple[Callable[[], object] | object, str]] | None = None,
        check_dtype: bool = False,
        self_consistency: bool = False,
    ) -> None:
        """Fail unless ``got`` matches ``expected`` in shape and within tolerance.

        ``mistakes`` maps a misconception id (e.g. ``"M1"``) to ``(wrong_value, explanation)``,
        where ``wrong_value`` is what that mistake would produce (or a zero-argument callable
        that computes it). When ``got`` is wrong and matches one of them, the explanation is
        reported as the diagnosis.
        """
        expected = _asarray(expected)
        if not is_plain_number(got):
            self._compared(what, False, f"a {_type(got).__name__}", expected)
            raise Failure(f"{what}: expected a numpy array of numbers, got a "
                          f"{one_line(_type(got).__name__, 100)}; return a plain numpy array")
        try:
            arr = _asarray(got)  # a plain ndarray: subclasses and __array__ give up their values
        except Exception as exc:
            raise Failure(f"{what}: could not turn your value into an array "
                          f"({quote(exc)})") from None
        if arr.dtype == object or not np.issubdtype(arr.dtype, np.number) or \
                np.issubdtype(arr.dtype, np.complexfloating):
            self._compared(what, False, fmt(got), expected)
            raise Failure(
                f"{what}: expected a numpy array of numbers, got {_type(got).__name__} "
                f"{fmt(got)[:80]}, which cannot be compared as numbers"
            )
        if arr.shape != expected.shape:
            self._compared(what, False, fmt(arr), expected)
            diag = self._match_mistake(arr, mistakes, rtol, atol)
            raise Failure(
                f"{what}: shape {arr.shape}, expected {expected.shape}.\n      yours:    {fmt(arr)}"
                f"\n      expected: {fmt(expected)}" + (f"\n      {diag}" if diag else "")
            )
        if check_dtype and arr.dtype != expected.dtype:
            self._compared(what, False, f"dtype {arr.dtype}", f"dtype {expected.dtype}")
            raise Failure(f"{what}: dtype {arr.dtype}, expected {expected.dtype} (the input's dtype)")
        if close(arr, expected, rtol, atol):
            self._compared(what, True, fmt(arr), expected)
            if self._current is not None:
                self._current.matched += 1
                if not self_consistency and not trivial(expected, rtol, atol):
                    self._current.anchored += 1
            return
        self._compared(what, False, fmt(arr), expected)
        diag = self._match_mistake(arr, mistakes, rtol, atol)
        bad = ~np.isfinite(arr)
        detail = (
            f" It contains {int(bad.sum())} nan/inf values." if bad.any() else
            f" Largest difference {np.max(np.abs(arr.astype(np.float64) - expected)):.3g}."
        )
        raise Failure(
            f"{what} is wrong.{detail}\n      yours:    {fmt(arr)}\n      expected: {fmt(expected)}"
            + (f"\n      {diag}" if diag else "")
        )

    def _compared(self, what: str, matched: bool, yours: str, expected) -> None:
        part = self._current
        if part is not None and len(part.compared) < MAX_COMPARED:
            shown = expected if isinstance(expected, str) else fmt(expected)
            part.compared.append(Compared(one_line(what, 200), matched, yours, shown))

    def _match_mistake(self, arr, mistakes, rtol, atol) -> str | None:
        for key, (wrong, explanation) in (mistakes or {}).items():
            try:
                wrong_value = np.asarray(quiet(wrong) if callable(wrong) else wrong)
            except Exception:
                continue
            if wrong_value.shape == arr.shape and close(arr, wrong_value, rtol, atol):
                return f"{DIAGNOSIS} {key}: {explanation}"
        return None

    def expect_raises(self, exc_type: type[Exception], fn: Callable, *args, what: str,
                      hint: str = "") -> None:
        """Fail unless ``fn(*args)`` raises ``exc_type``; an empty exercise stays reported as empty.

        ``what`` names the bad input in the message; ``hint`` says how to fix a miss.
        """
        try:
            result = self.call(fn, *args)
        except StudentError as err:
            if isinstance(err.exc, NotImplementedError) or isinstance(err.exc, exc_type):
                if isinstance(err.exc, NotImplementedError):
                    raise
                return
            raise Failure(
                f"{what}: expected {exc_type.__name__}, got "
                f"{one_line(type(err.exc).__name__, 100)}: {quote(err.exc)}"
            ) from None
        raise Failure(
            f"{what}: expected {exc_type.__name__}, but your function returned {fmt(result)[:80]}."
            + (f" {hint}" if hint else "")
        )

    def require(self, condition: bool, message: str) -> None:
        """Fail the current part with ``message`` unless ``condition`` holds."""
        if not condition:
            raise Failure(message)

    # ------------------------------------------------------------------ result
    def lost_points(self) -> bool:
        """Whether some part has not earned its whole weight (so far)."""
        return any(r.earned < r.weight for r in self.results)

    def _settle(self) -> None:
        """Nothing for nothing: a part without an anchored match of its own (one that compared
        no output, such as "x unchanged", a shape or an error raised for bad input, or only a
        self-consistency or trivial one) keeps its weight only when another part matched a
        reference output a stub could not give. A stub (``pass``, zeros, the input returned, a
        constant) thus earns 0 on every part."""
        anchored = any(r.passed and r.anchored for r in self.results)
        for r in self.results:
            if r.passed and not r.anchored and not anchored:
                r.passed = False
                r.messages.append(NOTHING_FOR_NOTHING)

    def record(self) -> CheckRecord:
        """The check's :class:`~autograder.record.CheckRecord`, from its parts as they stand."""
        total = sum(r.weight for r in self.results) or 1.0
        earned = 0.0 if self.stopped_early else sum(r.earned for r in self.results)
        rec = CheckRecord(function=self.name, points=self.points,
                          score=round(self.points * earned / total, 2),
                          notes=list(self.notes), stopped=one_line(self.stopped_early or ""),
                          carried=list(self.carried))
        for r in self.results:  # a stopped check scores 0, but each part says how it went
            status = PASSED if r.passed and r.earned >= r.weight else \
                PARTIAL if r.earned > 0 else FAILED
            share = 0.0 if self.stopped_early else r.earned
            part = Part(r.label, r.weight, share, round(self.points * r.weight / total, 4),
                        round(self.points * share / total, 4), status, notes=list(r.notes),
                        compared=list(r.compared), carried=list(r.carried))
            for message in r.messages:
                finding, explanation = parse_finding(message)
                part.findings.append(finding)
                if finding.diagnosis:
                    rec.diagnoses.append(Diagnosis(mistake_id(finding.diagnosis), finding.diagnosis,
                                                   explanation, r.label))
            rec.parts.append(part)
        if self._dropped_notes:
            rec.notes.append(f"{self._dropped_notes} more notes of the same kind are not shown")
        messages = [m for r in self.results if not r.passed for m in r.messages]
        rec.empty = bool(earned == 0 and messages and all(
            "not implemented yet" in m or m == NOTHING_FOR_NOTHING for m in messages) and any(
            "not implemented yet" in m for m in messages))
        return rec

    def finish(self) -> CheckScore:
        """Settle the parts, print the report and return the points earned (nbgrader's partial
        credit) with the check's record.

        A check that stopped early (an exception outside any part, :attr:`stopped_early`)
        scores 0: the parts it never reached could not be earned, so none are.
        """
        self._settle()
        rec = self.record()
        print(render(rec), end="")
        return CheckScore(rec.score, rec)
