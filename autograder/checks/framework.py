"""The machinery behind every hidden check: parts, partial credit, diagnoses, clean output.

A hidden test cell is one line, ``check_x(x)``, whose value is the points earned. nbgrader reads
that value as partial credit (``nbgrader.utils.determine_grade``: a numeric ``execute_result`` is
the cell's score). nbgrader also gives zero to a test cell that writes anything to stderr, so
every call into student code goes through :meth:`Grader.call`, which records warnings and
captures stderr and stdout, and turns them into readable report lines instead.

Usage::

    g = Grader("fit_standardizer", points=3)
    with g.part("matches the population std on a 5x3 example", weight=2):
        mean, scale = g.call(student_fn, X)
        g.compare("scale", scale, ref_scale, rtol=1e-12, mistakes={"M1": (ddof1, "...")})
    return g.finish()

Inside ``g.part(...)`` any exception counts as a failed part, never as a crashed cell:
:class:`Failure` carries our message; ``NotImplementedError`` means the exercise is still empty;
any other exception from student code is reported with its type and message.
"""

from __future__ import annotations

import contextlib
import io
import re
import traceback
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

# The comparison path uses these, captured when the grader is imported (the checks run in the
# trusted grading process, autograder/kernel/remote.py; in a plain Jupyter kernel, at import).
_asarray, _allclose, _array_equal = np.asarray, np.allclose, np.array_equal
_isinstance, _len, _type, _tuple = isinstance, len, type, tuple

# The report's text conventions (diagnosis and flag lines) live with the one notebook reader,
# which finds them again; the checks write them.
from autograder.notebooks import DIAGNOSIS, FLAG, diagnoses_in, flag_line, flags_in  # noqa: E402,F401


class Failure(AssertionError):
    """A part of a check failed; the message is shown to the student as is."""


class StudentError(Exception):
    """The student's function raised; wraps the original exception for the report."""

    def __init__(self, fn_name: str, exc: BaseException):
        self.fn_name = fn_name
        self.exc = exc
        super().__init__(f"{fn_name} raised {type(exc).__name__}: {exc}")


@dataclass
class PartResult:
    label: str
    weight: float
    passed: bool
    messages: list[str] = field(default_factory=list)
    #: How many of the part's comparisons with the reference matched.
    matched: int = 0
    #: With ``each=True``: comparisons that failed (the part then earns the fraction matched).
    missed: int = 0
    each: bool = False

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


def fmt(a, max_items: int = 6) -> str:
    """Short, readable rendering of a value for a report line (first few entries of arrays)."""
    if isinstance(a, np.ndarray) or isinstance(a, (list, tuple)) and not isinstance(a, str):
        try:
            arr = np.asarray(a)
        except Exception:
            return _safe_repr(a)
        if arr.dtype == object:
            return _safe_repr(a)[:200]
        flat = arr.ravel()
        body = np.array2string(flat[:max_items], precision=6, separator=", ", suppress_small=False)
        more = f" ... ({arr.size} values)" if arr.size > max_items else ""
        return f"{body[:-1]}{more}]" + (f" shape {arr.shape}" if arr.ndim > 1 else "")
    return _safe_repr(a)


def _safe_repr(a) -> str:
    """``repr(a)``, or the type's name when a student's ``__repr__`` fails or is not a string."""
    try:
        text = repr(a)
    except Exception:
        text = None
    return text if _type(text) is str else f"a {_type(a).__name__} object"


class Grader:
    """Collects the parts of one hidden check and prints a report for the student.

    Parameters
    ----------
    name : str
        The graded function's name, shown in the report.
    points : float
        The cell's points in the notebook metadata; the score is ``points`` times the passed
        fraction of the parts' weights.
    """

    def __init__(self, name: str, points: float):
        self.name = name
        self.points = float(points)
        self.results: list[PartResult] = []
        self._current: PartResult | None = None
        self.notes: list[str] = []
        #: Why the check stopped before its last part (then it scores 0), or None.
        self.stopped_early: str | None = None

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
            result.messages.append(
                f"the check could not run ({type(exc).__name__}: {exc}); "
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
        remote_where = getattr(inner, "where", None)  # raised in the kernel: its own line
        if isinstance(remote_where, str):
            where = f" ({remote_where})" if remote_where else ""
            return f"{exc.fn_name} raised {type(inner).__name__}: {inner}{where}"
        tb = traceback.extract_tb(inner.__traceback__)
        where = ""
        if tb:
            last = tb[-1]
            where = f" (line {last.lineno}: {last.line!r})" if last.line else ""
        return f"{exc.fn_name} raised {type(inner).__name__}: {inner}{where}"

    def note(self, message: str) -> None:
        """Attach an informational line to the current part (or the whole check)."""
        (self._current.messages if self._current else self.notes).append(message)

    # ------------------------------------------------------------------ calling student code
    def call(self, fn: Callable, *args, **kwargs):
        """Call student code with warnings recorded and stdout/stderr captured.

        Warnings (numpy's included) become report notes; output the function prints is dropped
        so that nothing reaches the cell's stderr. Exceptions are wrapped in StudentError.
        """
        name = getattr(fn, "__name__", "your function")
        out_buf, err_buf = io.StringIO(), io.StringIO()
        with warnings.catch_warnings(record=True) as caught, np.errstate(all="warn"):
            warnings.simplefilter("always")
            try:
                with contextlib.redirect_stdout(out_buf), contextlib.redirect_stderr(err_buf):
                    value = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - SystemExit, KeyboardInterrupt too
                if getattr(exc, "kernel_gone", False):
                    raise  # the kernel died or hung: the whole check stops and scores 0
                self._kernel_notes(fn)
                if getattr(exc, "refused", False):
                    raise Failure(str(exc)) from None
                raise StudentError(name, exc) from None
        self._kernel_notes(fn)
        seen = set()
        for w in caught:
            text = f"{w.category.__name__}: {w.message}"
            if text not in seen:
                seen.add(text)
                self.note(f"{name} emitted a warning: {text}")
        if err_buf.getvalue().strip():
            self.note(f"{name} wrote to stderr: {err_buf.getvalue().strip()[:200]!r}")
        return value

    def _kernel_notes(self, fn) -> None:
        """What a function that ran in the kernel printed and warned (autograder/kernel/remote)."""
        notes = getattr(fn, "notes", None)
        for note in notes if isinstance(notes, list) else []:
            self.note(note)

    # ------------------------------------------------------------------ comparisons
    def compare(self, what: str, got, expected, **kw) -> None:
        """Fail unless ``got`` matches ``expected`` (see :meth:`_compare` for the arguments).

        In a part made with ``each=True`` a mismatch is recorded and the part goes on.
        """
        part = self._current
        if part is None or not part.each:
            return self._compare(what, got, expected, **kw)
        try:
            self._compare(what, got, expected, **kw)
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
    ) -> None:
        """Fail unless ``got`` matches ``expected`` in shape and within tolerance.

        ``mistakes`` maps a misconception id (e.g. ``"M1"``) to ``(wrong_value, explanation)``,
        where ``wrong_value`` is what that mistake would produce (or a zero-argument callable
        that computes it). When ``got`` is wrong and matches one of them, the explanation is
        reported as the diagnosis.
        """
        expected = _asarray(expected)
        if not is_plain_number(got):
            raise Failure(f"{what}: expected a numpy array of numbers, got a "
                          f"{_type(got).__name__}; return a plain numpy array")
        try:
            arr = _asarray(got)  # a plain ndarray: subclasses and __array__ give up their values
        except Exception as exc:
            raise Failure(f"{what}: could not turn your value into an array ({exc})") from None
        if arr.dtype == object or not np.issubdtype(arr.dtype, np.number) or \
                np.issubdtype(arr.dtype, np.complexfloating):
            raise Failure(
                f"{what}: expected a numpy array of numbers, got {_type(got).__name__} "
                f"{fmt(got)[:80]}, which cannot be compared as numbers"
            )
        if arr.shape != expected.shape:
            diag = self._match_mistake(arr, mistakes, rtol, atol)
            raise Failure(
                f"{what}: shape {arr.shape}, expected {expected.shape}.\n      yours:    {fmt(arr)}"
                f"\n      expected: {fmt(expected)}" + (f"\n      {diag}" if diag else "")
            )
        if check_dtype and arr.dtype != expected.dtype:
            raise Failure(f"{what}: dtype {arr.dtype}, expected {expected.dtype} (the input's dtype)")
        if close(arr, expected, rtol, atol):
            if self._current is not None:
                self._current.matched += 1
            return
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
                f"{what}: expected {exc_type.__name__}, got {type(err.exc).__name__}: {err.exc}"
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
    def _settle(self) -> None:
        """Nothing for nothing: a part that compared no output of its own (a property such as
        "x unchanged", a shape, an error raised for bad input) keeps its weight only when
        another part of the check matched the reference. A stub (``pass``, zeros, the input
        returned, a constant) thus earns 0 on every part."""
        anchored = any(r.passed and r.matched for r in self.results)
        for r in self.results:
            if r.passed and not r.matched and not anchored:
                r.passed = False
                r.messages.append(NOTHING_FOR_NOTHING)

    def finish(self) -> float:
        """Print the report and return the points earned (nbgrader's partial credit).

        A check that stopped early (an exception outside any part, :attr:`stopped_early`)
        scores 0: the parts it never reached could not be earned, so none are.
        """
        self._settle()
        total = sum(r.weight for r in self.results) or 1.0
        earned = 0.0 if self.stopped_early else sum(r.earned for r in self.results)
        score = round(self.points * earned / total, 2)
        print(f"{self.name}: {score:g} / {self.points:g} points")
        explained: set[str] = set()
        for r in self.results:
            mark = "ok  " if r.passed and not r.missed else "part" if r.earned else "FAIL"
            print(f"  [{mark}] {r.label}")
            for m in r.messages:
                print(f"      {_once(m, explained)}")
        for m in self.notes:
            print(f"  note: {m}")
        if self.stopped_early:
            print(f"  The check stopped early ({self.stopped_early}), so it scores 0.")
            return score
        messages = [m for r in self.results if not r.passed for m in r.messages]
        if earned == 0 and messages and all("not implemented yet" in m or m == NOTHING_FOR_NOTHING
                                            for m in messages) and any(
                "not implemented yet" in m for m in messages):
            print("  Nothing to grade yet: the function still raises NotImplementedError.")
        elif score < self.points and not any(DIAGNOSIS in m for m in messages):
            print("  No known mistake explains this; compare your values with the expected ones above.")
        return score


_DIAGNOSIS_LINE = re.compile(rf"({DIAGNOSIS} [^:\n]+): ([^\n]+)")


def _once(message: str, explained: set[str]) -> str:
    """``message`` with a diagnosis already explained in this report shortened to its id:
    one cause is explained once, however many parts it fails."""
    def shorten(match: re.Match) -> str:
        key = match.group(0)
        if key in explained:
            return f"{match.group(1)} (explained above)"
        explained.add(key)
        return key

    return _DIAGNOSIS_LINE.sub(shorten, message)


def is_plain_number(value, depth: int = 0) -> bool:
    """Whether ``value`` is plain numeric data: an ``int``, ``float`` or ``bool``, a numpy scalar,
    an ndarray of exactly type ``numpy.ndarray`` (no subclass, no masked array), or a list or
    tuple of those. Only these are compared with the reference; dtypes are checked after."""
    kind = _type(value)
    if kind in (np.ndarray, int, float, bool):
        return True
    if _isinstance(value, np.generic) and kind.__module__ == "numpy":
        return True
    if kind in (list, _tuple) and depth < 8:
        return all(is_plain_number(v, depth + 1) for v in value)
    return False


def close(a, b, rtol: float, atol: float = 0.0) -> bool:
    """``allclose`` that treats nan/inf in ``a`` as a mismatch unless ``b`` has them too.

    Answers False, never raises, for shapes that differ or values that are not numbers.
    """
    try:
        a = _asarray(a, dtype=np.float64)
        b = _asarray(b, dtype=np.float64)
    except Exception:
        return False
    if a.shape != b.shape:
        return False
    return bool(_allclose(a, b, rtol=rtol, atol=atol, equal_nan=True))


def quiet(fn: Callable, *args, **kwargs):
    """Evaluate one of the checks' own formulas (e.g. a mistake's wrong value) with numpy's
    warnings silenced: a mistake that divides by zero is expected to."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def unpack(value, n: int, names: str) -> tuple:
    """A student's returned ``n``-tuple, or a Failure naming what was expected.

    ``names`` describes the tuple for the message, e.g. ``"dx, dgamma, dbeta"``.
    """
    # The items as stored: a tuple/list subclass's own __len__/__iter__/__getitem__ are not asked.
    if _isinstance(value, _tuple):
        items = _tuple(_tuple.__iter__(value))
    elif _isinstance(value, list):
        items = _tuple(list.__iter__(value))
    else:
        items = None
    if items is None or _len(items) != n:
        raise Failure(f"expected a tuple ({names}), got {_type(value).__name__} {fmt(value)[:80]}")
    return items


#: Why an input must not be modified (MISCONCEPTIONS M10), shown after the name of the input.
M10_ADVICE = "the caller still needs it; compute into new arrays instead of writing into it"


def require_unchanged(name: str, before, after, advice: str = M10_ADVICE) -> None:
    """Fail with diagnosis M10 unless the input ``after`` still equals its copy ``before``."""
    if not same_value(before, after):
        raise Failure(
            f"{name} was modified by the call.\n      before: {fmt(before)}\n      after:  "
            f"{fmt(after)}\n      {DIAGNOSIS} M10: {advice}"
        )


def same_value(before, after) -> bool:
    """Whether ``after`` still equals ``before`` (one of our inputs), never asking ``after``.

    Numbers and arrays are compared as float64 ndarrays (shape and values, nan equal to nan);
    dicts, lists and tuples item by item; anything else must be of exactly the same type and
    equal by that type's ``==``, so an object whose ``__eq__`` always answers True cannot pass.
    """
    if _isinstance(before, (np.ndarray, np.number, int, float)) and _type(before) is not bool:
        try:
            a = _asarray(before, dtype=np.float64)
            b = _asarray(after, dtype=np.float64)
        except Exception:
            return False
        return a.shape == b.shape and bool(_array_equal(a, b, equal_nan=True))
    if _type(after) is not _type(before):
        return False
    if _isinstance(before, dict):
        return before.keys() == after.keys() and all(same_value(v, after[k])
                                                      for k, v in before.items())
    if _isinstance(before, (list, _tuple)):
        return _len(before) == _len(after) and all(same_value(a, b)
                                                   for a, b in zip(before, after, strict=True))
    return bool(before == after)


def copy_param(param: dict) -> dict:
    """A copy of a layer's parameter dict (``bn_param``, ``ln_param``, ...) whose arrays are
    copies too (``running_mean``, ``running_var``), so the call's updates can be compared with
    the state before it.

    Parameters
    ----------
    param : dict
        str keys; ndarray values are copied, anything else (``mode``, ``eps``) is shared.

    Returns
    -------
    dict
    """
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in param.items()}


def kernel_function(source: str, name: str, **constants):
    """A function of the check's own that a student function receives as an argument.

    The checks run outside the student's kernel, so a function passed to the student (the ``f``
    of ``numerical_gradient``) is sent as source and defined in the kernel
    (:mod:`autograder.kernel.shim`); called here, it is the same code. ``source`` defines
    ``name`` using ``np`` and the plain-data ``constants`` only.

    Returns
    -------
    callable
        The function, with ``__bn_source__ = (source, name, constants)``.
    """
    namespace = {"np": np, "numpy": np, **constants}
    exec(compile(source, f"<check function {name}>", "exec"), namespace)  # noqa: S102
    fn = namespace[name]
    fn.__bn_source__ = (source, name, constants)
    return fn


def companion(fn, name: str):
    """Another function of the notebook that defines ``fn`` (e.g. the forward pass next to a
    backward pass), or None: looked up in the kernel for a function that runs there, in
    ``fn.__globals__`` for a plain Python function."""
    lookup = getattr(fn, "companion", None)
    if callable(lookup) and not isinstance(fn, type(companion)):
        return lookup(name)
    found = getattr(fn, "__globals__", {}).get(name)
    return found if callable(found) else None


def rng(seed: int) -> np.random.Generator:
    """The seeded generator every check draws its inputs from."""
    return np.random.default_rng(seed)


def hidden_check(name: str, points: float):
    """Turn ``body(g, student_fn)`` into a hidden check ``check(student_fn) -> points earned``.

    The wrapper makes the :class:`Grader`, runs the body, and always prints the report and
    returns a score, even if the body itself fails outside a part. ``check.points`` is the
    cell's maximum, which a test compares with the notebook's metadata.
    """

    def decorate(body):
        def check(student_fn):
            g = Grader(name, points)
            if not callable(student_fn):
                with g.part(f"{name} is a function"):
                    raise Failure(f"{name} should be a function, got {type(student_fn).__name__}")
                return g.finish()
            # Nothing may reach stderr (nbgrader would score the cell 0): the check's own
            # warnings and output are captured too, not only the student's (see Grader.call).
            stray = io.StringIO()
            with warnings.catch_warnings(record=True), contextlib.redirect_stderr(stray):
                warnings.simplefilter("always")
                try:
                    body(g, student_fn)
                except Exception as exc:  # outside any part: nothing after it could be earned
                    g.stopped_early = f"{type(exc).__name__}: {exc}"
            return g.finish()

        check.__name__ = body.__name__
        check.__qualname__ = body.__qualname__
        check.__doc__ = body.__doc__
        check.__module__ = body.__module__
        check.points = float(points)
        check.function_name = name
        return check

    return decorate
