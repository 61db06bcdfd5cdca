"""Student-facing helpers for the visible tests.

They compare a student's value with an expected value that the notebook states in the open
(hand-worked on a tiny input), print what was checked, and raise ``AssertionError`` with both
values side by side when they disagree. They contain no solutions.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from course.gradcheck import gradient_error, rel_error


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


def check_keys(name: str, value, keys) -> None:
    """Assert that ``value`` is a dict holding (at least) every key in ``keys``.

    Parameters
    ----------
    name : str
        What is checked, e.g. ``"cache"``.
    value : object
        The dict received.
    keys : iterable of str
        The keys the contract requires.

    Raises
    ------
    AssertionError
        If ``value`` is not a dict, or names the missing keys.
    """
    if not isinstance(value, dict):
        raise AssertionError(f"{name}: expected a dict, got {type(value).__name__}")
    missing = [k for k in keys if k not in value]
    if missing:
        raise AssertionError(f"{name} is missing the keys {missing}; it has {sorted(value)}")
    print(f"ok  {name} has the keys {list(keys)}")


def check_equal(name: str, got, expected) -> None:
    """Assert that ``got == expected`` for a plain value (str, int, bool, tuple); print it.

    Raises
    ------
    AssertionError
        With both values.
    """
    if type(got) is not type(expected) or got != expected:
        raise AssertionError(f"{name} is wrong\n  yours:    {got!r}\n  expected: {expected!r}")
    print(f"ok  {name} = {got!r}")


def check_dtype(name: str, value, dtype) -> None:
    """Assert that the array ``value`` has the given dtype.

    Raises
    ------
    AssertionError
        With the dtype received and the dtype expected.
    """
    got = getattr(value, "dtype", None)
    if got != np.dtype(dtype):
        raise AssertionError(f"{name}: dtype {got}, expected {np.dtype(dtype)}")
    print(f"ok  {name} has dtype {np.dtype(dtype)}")


def check_true(name: str, condition: bool, detail: str = "") -> None:
    """Assert a property that has no single expected value; print it.

    Parameters
    ----------
    name : str
        The property, stated so that it reads as a claim (``"loss decreased"``).
    condition : bool
    detail : str, optional
        The numbers behind the claim, shown in both cases.

    Raises
    ------
    AssertionError
        Naming the property and the numbers.
    """
    suffix = f" ({detail})" if detail else ""
    if not bool(condition):
        raise AssertionError(f"{name} does not hold{suffix}")
    print(f"ok  {name}{suffix}")


def check_gradient_against_reference(name: str, analytic, f: Callable, x, dout,
                                     tol: float = 1e-7, yours: Callable | None = None) -> float:
    """Check an analytic gradient against a trusted centered difference; report only the error.

    The finite difference is computed inside :func:`course.gradcheck.gradient_error`, entry by
    entry, and never returned: this helper reports a relative error and nothing else, so it
    cannot stand in for notebook 03's ``numerical_gradient``. If ``yours`` (your own
    ``numerical_gradient``) is given, it is run on the same function and point, and compared
    with ``analytic`` too: when the analytic gradient passes but yours disagrees, the message
    says to fix section 1 first, instead of blaming a correct backward pass.

    Parameters
    ----------
    name : str
        What is checked, e.g. ``"dx"``.
    analytic : array_like of float, shape of ``x``
    f : callable
        Maps an array shaped like ``x`` to an array shaped like ``dout``.
    x : ndarray of float
        The point (never modified).
    dout : ndarray of float, shape of ``f(x)``
    tol : float, optional
        The largest relative error accepted.
    yours : callable, optional
        ``numerical_gradient(f, x, dout)``, called on a copy of ``x``. Skipped with a note if
        it raises ``NotImplementedError``.

    Returns
    -------
    float
        The relative error of ``analytic`` against the trusted centered difference.

    Raises
    ------
    AssertionError
        If the shapes differ, if ``analytic`` is off by ``tol`` or more, or if ``yours`` is.
    """
    if np.shape(analytic) != np.shape(x):
        raise AssertionError(f"{name}: shape {np.shape(analytic)}, expected {np.shape(x)}")
    err = gradient_error(analytic, f, x, dout)
    if not err < tol:
        raise AssertionError(
            f"{name}: relative error {err:.2e} against a trusted centered difference "
            f"(needs < {tol:g}): the analytic gradient is wrong"
        )
    print(f"ok  {name}: relative error {err:.2e} < {tol:g} against a trusted centered difference")
    if yours is None:
        return err
    try:
        numeric = yours(f, np.array(x, dtype=np.float64, copy=True), dout)
    except NotImplementedError:
        print(f"    (your numerical_gradient is not written yet: not compared for {name})")
        return err
    yours_err = rel_error(analytic, numeric) if np.shape(numeric) == np.shape(x) else np.inf
    if not yours_err < tol:
        raise AssertionError(
            f"{name} is right, but your numerical_gradient is not: it differs from it by "
            f"{yours_err:.2e} (shape {np.shape(numeric)}). Fix section 1 first."
        )
    print(f"ok  {name}: your numerical_gradient agrees ({yours_err:.2e})")
    return err


def running_under_nbgrader() -> bool:
    """True while nbgrader executes the notebook (``autograde`` or ``validate``).

    nbgrader sets the environment variable ``NBGRADER_EXECUTION`` to ``'autograde'`` or
    ``'validate'`` in the kernels it starts (nbgrader docs, "Autograding resources"). Notebooks
    01-03 then skip their ungraded demos and figures.
    """
    return bool(os.environ.get("NBGRADER_EXECUTION"))
