"""Gradient-checking tools used by the visible tests.

The formulas are the standard ones of numerical analysis; the CS231n notes "Gradient checks"
(https://cs231n.github.io/neural-networks-3/#gradcheck) explain why the *centered* difference
and the *relative* error are the right choices.

This module never hands out a numerical gradient: writing one is exercise 1 of notebook 03, and
``course/`` is published to students on day one. :func:`gradient_error` compares an analytic
gradient with a finite difference that it computes internally and returns only the largest
relative error, a single number. Notebook 04, released after 03's deadline, ships a complete
``numerical_gradient`` in its own folder (``provided_gradcheck.py``).
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


def _loss(f: Callable, x: np.ndarray, dout: np.ndarray) -> float:
    out = np.asarray(f(x), dtype=np.float64)
    if out.shape != dout.shape:
        raise ValueError(f"f(x) has shape {out.shape} but dout has shape {dout.shape}")
    return float(np.sum(out * dout))


def gradient_error(analytic, f: Callable[[np.ndarray], np.ndarray], x, dout,
                   h: float = 1e-5, centered: bool = True) -> float:
    """Relative error of an analytic gradient against a finite difference; no gradient returned.

    The finite difference is that of the scalar ``L(x) = sum(f(x) * dout)``: centered,
    ``(L(x + h e_i) - L(x - h e_i)) / (2 h)`` (truncation error O(h²)), or one-sided,
    ``(L(x + h e_i) - L(x)) / h`` (O(h)). Each entry is compared with ``analytic[i]`` as soon as
    it is computed and then discarded, so the numerical gradient is never assembled: this is a
    *checker*, not a replacement for the ``numerical_gradient`` that notebook 03 asks you to
    write.

    Parameters
    ----------
    analytic : array_like of float, shape of ``x``
        The gradient to check, e.g. ``dx`` from a backward pass.
    f : callable
        Maps an array shaped like ``x`` to an array shaped like ``dout``.
    x : array_like of float, any shape
        The point. Copied to float64; the caller's array is never perturbed.
    dout : array_like of float, shape of ``f(x)``
        The upstream gradient.
    h : float, optional
        The step, > 0.
    centered : bool, optional
        Centered (default) or one-sided difference.

    Returns
    -------
    float
        ``max_i |analytic_i - numeric_i| / max(1e-8, |analytic_i| + |numeric_i|)``, as
        :func:`rel_error`.

    Raises
    ------
    ValueError
        If ``analytic`` and ``x`` differ in shape, ``h`` is not positive, or ``f(x)`` and
        ``dout`` differ in shape.
    """
    x = np.array(x, dtype=np.float64, copy=True)
    a = np.asarray(analytic, dtype=np.float64)
    dout = np.asarray(dout, dtype=np.float64)
    if a.shape != x.shape:
        raise ValueError(f"the gradient has shape {a.shape}, but x has shape {x.shape}")
    if not h > 0:
        raise ValueError(f"h must be positive, got {h}")
    base = None if centered else _loss(f, x, dout)
    worst = 0.0
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        plus = _loss(f, x, dout)
        if centered:
            x[i] = old - h
            slope = (plus - _loss(f, x, dout)) / (2.0 * h)
        else:
            slope = (plus - base) / h
        x[i] = old
        worst = max(worst, abs(a[i] - slope) / max(1e-8, abs(a[i]) + abs(slope)))
    return float(worst)
