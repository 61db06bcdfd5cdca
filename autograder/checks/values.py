"""Values in the checks: plain-number tests, tolerant comparison, short renderings, copies.

The helpers every hidden check shares besides :class:`~autograder.checks.framework.Grader`:
``fmt`` (a value as short report text; student data in it is escaped to one line), ``close``,
``same_value``, ``is_plain_number``, ``unpack``, ``require_unchanged``, ``copy_param``, ``quiet``,
``trivial``, and the two ways a check reaches other functions of the student's notebook
(``companion``) or sends one of its own into the kernel (``kernel_function``). All of them are
re-exported by :mod:`autograder.checks.framework`, where checks import them from.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from autograder.notebooks import DIAGNOSIS
from autograder.record import one_line, quote

# The comparison path uses these, captured when the grader is imported (the checks run in the
# trusted grading process, autograder/kernel/remote.py; in a plain Jupyter kernel, at import).
_asarray, _allclose, _array_equal = np.asarray, np.allclose, np.array_equal
_isinstance, _len, _type, _tuple = isinstance, len, type, tuple


class Failure(AssertionError):
    """A part of a check failed; the message is shown to the student as is.

    The message is the check's own text; any student text in it must have gone through
    :func:`autograder.record.quote` (or :func:`fmt`), so that it stays on one line.
    """


class StudentError(Exception):
    """The student's function raised; wraps the original exception for the report."""

    def __init__(self, fn_name: str, exc: BaseException):
        self.fn_name = fn_name
        self.exc = exc
        super().__init__(f"{fn_name} raised {type(exc).__name__}: {quote(exc)}")


def fmt(a, max_items: int = 6) -> str:
    """Short, readable rendering of a value for a report line (first few entries of arrays), on
    one line and at most a few hundred characters: a student's string comes out quoted."""
    if isinstance(a, np.ndarray) or isinstance(a, (list, tuple)) and not isinstance(a, str):
        try:
            arr = np.asarray(a)
        except Exception:
            return _safe_repr(a)
        if arr.dtype == object:
            return _safe_repr(a)[:200]
        if arr.dtype.kind in "USV":
            return quote(_safe_repr(a), 200)
        flat = arr.ravel()
        body = np.array2string(flat[:max_items], precision=6, separator=", ", suppress_small=False)
        more = f" ... ({arr.size} values)" if arr.size > max_items else ""
        return one_line(f"{body[:-1]}{more}]" + (f" shape {arr.shape}" if arr.ndim > 1 else ""),
                        400)
    return _safe_repr(a)


def _safe_repr(a) -> str:
    """``repr(a)``, or the type's name when a student's ``__repr__`` fails or is not a string."""
    try:
        text = repr(a)
    except Exception:
        text = None
    if _type(text) is not str:
        return f"a {_type(a).__name__} object"
    return one_line(text, 400) if _type(a) is not str else quote(a)


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




def trivial(value, rtol: float = 0.0, atol: float = 0.0) -> bool:
    """Whether ``value`` is an output a stub could give without computing anything: an array
    (or number) whose entries are all one constant within (``rtol``, ``atol``), and for a
    single entry, zero. Non-numbers count as trivial."""
    try:
        arr = _asarray(value, dtype=np.float64)
    except Exception:
        return True
    if arr.size == 0:
        return True
    first = arr.flat[0]
    if not np.isfinite(first):
        return True
    if arr.size == 1:
        return bool(abs(first) <= atol)
    return bool(_allclose(arr, first, rtol=rtol, atol=atol, equal_nan=False))
