"""Student-facing helpers for the visible tests.

They compare a student's value with an expected value that the notebook states in the open
(hand-worked on a tiny input), print what was checked, and raise ``AssertionError`` with both
values side by side when they disagree. They contain no solutions.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from course.gradcheck import rel_error


def _show(a) -> str:
    arr = np.asarray(a)
    return np.array2string(arr, precision=6, separator=", ", threshold=20)


def check_shape(name: str, value, shape: tuple) -> None:
    """Assert that ``value`` is an array of the given shape.

    Raises
    ------
    AssertionError
        With the shape received and the shape expected.
    """
    got = np.shape(value)
    if got != tuple(shape):
        raise AssertionError(f"{name}: shape {got}, expected {tuple(shape)}")
    print(f"ok  {name} has shape {tuple(shape)}")


def check_close(name: str, got, expected, rtol: float = 1e-6, atol: float = 1e-8) -> None:
    """Assert that ``got`` equals ``expected`` (same shape, within tolerance); print both.

    Parameters
    ----------
    name : str
        What is compared, e.g. ``"mean"``.
    got, expected : array_like
    rtol, atol : float
        As in ``numpy.allclose``.

    Raises
    ------
    AssertionError
        On a shape mismatch, nan/inf, or values outside the tolerance; the message shows
        your value and the expected one.
    """
    g = np.asarray(got, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if g.shape != e.shape:
        raise AssertionError(
            f"{name}: shape {g.shape}, expected {e.shape}\n  yours:    {_show(g)}\n"
            f"  expected: {_show(e)}"
        )
    if not np.allclose(g, e, rtol=rtol, atol=atol):
        raise AssertionError(
            f"{name} is wrong\n  yours:    {_show(g)}\n  expected: {_show(e)}"
        )
    print(f"ok  {name} = {_show(g)}")


def check_raises(exc_type: type[BaseException], fn: Callable, *args, **kwargs) -> None:
    """Assert that ``fn(*args, **kwargs)`` raises ``exc_type``; print its message.

    Raises
    ------
    AssertionError
        If nothing, or another exception, is raised. ``NotImplementedError`` propagates so
        that an empty exercise is reported as such.
    """
    try:
        fn(*args, **kwargs)
    except NotImplementedError:
        raise
    except exc_type as exc:
        print(f"ok  {getattr(fn, '__name__', 'call')} raised {exc_type.__name__}: {exc}")
        return
    except Exception as exc:
        raise AssertionError(
            f"expected {exc_type.__name__}, got {type(exc).__name__}: {exc}"
        ) from exc
    raise AssertionError(f"expected {exc_type.__name__}, but nothing was raised")


def check_unchanged(name: str, before, after) -> None:
    """Assert that an input array was not modified by the call under test."""
    if not np.array_equal(np.asarray(before), np.asarray(after), equal_nan=True):
        raise AssertionError(f"{name} was modified in place; work on a copy or on new arrays")
    print(f"ok  {name} left unchanged")


def check_gradient(name: str, analytic, numeric, tol: float = 1e-7) -> float:
    """Assert that an analytic gradient matches a numerical one; print the relative error.

    Returns
    -------
    float
        ``rel_error(analytic, numeric)``.

    Raises
    ------
    AssertionError
        If the shapes differ or the relative error is ``tol`` or more.
    """
    a = np.asarray(analytic)
    n = np.asarray(numeric)
    if a.shape != n.shape:
        raise AssertionError(f"{name}: shape {a.shape}, numerical gradient has shape {n.shape}")
    err = rel_error(a, n)
    if not err < tol:
        raise AssertionError(
            f"{name}: relative error {err:.2e} against the numerical gradient (needs < {tol:g})\n"
            f"  analytic:  {_show(a)}\n  numerical: {_show(n)}"
        )
    print(f"ok  {name}: relative error {err:.2e} < {tol:g}")
    return err
