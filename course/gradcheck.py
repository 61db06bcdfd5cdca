"""Gradient-checking tools used by the visible tests.

The formulas are the standard ones of numerical analysis; the CS231n notes "Gradient checks"
(https://cs231n.github.io/neural-networks-3/#gradcheck) explain why the *centered* difference
and the *relative* error are the right choices.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def rel_error(a, b) -> float:
    """Largest elementwise relative error between two arrays.

    ``max |a - b| / max(1e-8, |a| + |b|)``, the measure used by the CS231n assignments.

    Parameters
    ----------
    a, b : array_like of float, same shape
        Two arrays to compare (scalars allowed).

    Returns
    -------
    float
        0.0 for identical inputs; around 1e-7 or below for a correct float64 gradient; near 1 or
        above for unrelated arrays.

    Raises
    ------
    ValueError
        If the shapes differ: a silent broadcast would hide a wrong shape.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"rel_error: a has shape {a.shape} but b has shape {b.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


def numerical_gradient_array(
    f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, dout: np.ndarray, h: float = 1e-5
) -> np.ndarray:
    """Centered-difference gradient of ``sum(f(x) * dout)`` with respect to the array ``x``.

    ``grad[i] = sum((f(x + h e_i) - f(x - h e_i)) * dout) / (2 h)``, with truncation error
    O(h²). ``x`` is perturbed in place one entry at a time and restored exactly afterwards.

    Parameters
    ----------
    f : callable
        Maps an array shaped like ``x`` to an array shaped like ``dout``.
    x : ndarray of float, any shape
        The point at which to differentiate. Must be a writable float array.
    dout : ndarray of float
        Upstream gradient, the shape of ``f(x)``.
    h : float, optional
        Step size, > 0. 1e-5 suits float64; float32 needs about 1e-2.

    Returns
    -------
    ndarray of float64, shape of ``x``

    Raises
    ------
    TypeError
        If ``x`` is not a floating-point ndarray.
    ValueError
        If ``h`` is not positive or ``f(x)`` and ``dout`` differ in shape.
    """
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"x must be a floating-point numpy array, got {type(x).__name__}")
    if not h > 0:
        raise ValueError(f"h must be positive, got {h}")
    dout = np.asarray(dout)
    grad = np.zeros(x.shape, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    while not it.finished:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        pos = np.array(f(x), dtype=np.float64, copy=True)
        x[i] = old - h
        neg = np.array(f(x), dtype=np.float64, copy=True)
        x[i] = old
        if pos.shape != dout.shape:
            raise ValueError(f"f(x) has shape {pos.shape} but dout has shape {dout.shape}")
        grad[i] = np.sum((pos - neg) * dout) / (2.0 * h)
        it.iternext()
    return grad
