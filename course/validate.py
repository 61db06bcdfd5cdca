"""Input validation shared by the course's layers and the reference: clear errors at the boundary.

Messages name the argument, what was expected and what was received (scikit-learn's style).
"""

from __future__ import annotations

import numpy as np


def as_float_array(name: str, a, ndim: int | None = None) -> np.ndarray:
    """Return ``a`` as a floating-point ndarray; integer input becomes float64.

    Parameters
    ----------
    name : str
        The argument's name, for the error message.
    a : array_like
    ndim : int, optional
        Required number of dimensions.

    Returns
    -------
    ndarray of float
        ``a`` itself when it already is a float ndarray (no copy).

    Raises
    ------
    TypeError
        If ``a`` does not hold real numbers (strings, objects, complex, ragged lists).
    ValueError
        If ``ndim`` is given and differs.
    """
    if isinstance(a, np.ndarray):
        arr = a
    else:
        try:
            arr = np.asarray(a)
        except Exception as exc:  # ragged lists and the like
            raise TypeError(f"{name} must be array-like of real numbers: {exc}") from exc
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    return arr


def check_vector(name: str, v, length: int) -> np.ndarray:
    """Return ``v`` as a float vector of shape ``(length,)``.

    Raises
    ------
    TypeError
        As :func:`as_float_array`.
    ValueError
        If the shape is not ``(length,)``.
    """
    v = as_float_array(name, v)
    if v.shape != (length,):
        raise ValueError(f"{name} must have shape ({length},), got {v.shape}")
    return v


def check_real(name: str, value, low: float | None = None, high: float | None = None) -> float:
    """Return ``value`` as a float after checking its type and range ``[low, high]``.

    Raises
    ------
    TypeError
        If ``value`` is not a real number (bools are refused).
    ValueError
        If it lies outside ``[low, high]`` or is nan.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if np.isnan(value) or (low is not None and value < low) or (high is not None and value > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ValueError(f"{name} must lie in [{lo}, {hi}], got {value}")
    return value


def check_int(name: str, value, low: int, allow_none: bool = False) -> int | None:
    """Return ``value`` as a Python int after checking its type and that it is ``>= low``.

    Parameters
    ----------
    name : str
        The argument's name, used in the messages (e.g. ``"batch_size"``).
    value : int, numpy integer or None
        The value to check; bools are refused (``True`` is no count).
    low : int
        The smallest allowed value.
    allow_none : bool
        Whether None is allowed (and returned as is).

    Raises
    ------
    TypeError
        If ``value`` is not an integer (nor None when ``allow_none``).
    ValueError
        If it is smaller than ``low``.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        expected = "an int or None" if allow_none else "an int"
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value}")
    return int(value)
