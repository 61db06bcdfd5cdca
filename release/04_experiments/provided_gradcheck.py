"""A numerical gradient, provided for assignments 04 and 05.

This is the course's reference solution of notebook 03's ``numerical_gradient`` (centered
differences of ``sum(f(x) * dout)``), so it is released with 04 and 05, after 03's deadline, and never
placed in ``course/``, which students have from day one.

Generated from autograder/reference/batchnorm.py by ``python -m autograder.tools.provided``; do not edit.
"""

import numpy as np

from course.validate import as_float_array, check_real


def numerical_gradient(f, x, dout, h=1e-5):
    """Centered-difference gradient of ``sum(f(x) * dout)`` with respect to the array ``x``.

    ``grad[i] = sum((f(x + h e_i) - f(x - h e_i)) * dout) / (2 h)``: truncation error O(h²),
    against O(h) for the one-sided difference. ``x`` is perturbed in place, one entry at a time,
    and each entry is restored to its saved value, so ``x`` is bit-for-bit unchanged afterwards.

    Parameters
    ----------
    f : callable
        Maps an array shaped like ``x`` to an array shaped like ``dout``.
    x : ndarray of float, any shape
        Writable floating-point array, the point at which to differentiate.
    dout : array_like of float
        Upstream gradient, the shape of ``f(x)``. Never modified.
    h : float, optional
        Step, > 0. 1e-5 suits float64 (error ~1e-10); float32 needs ~1e-2.

    Returns
    -------
    grad : ndarray, shape and dtype of ``x``

    Raises
    ------
    TypeError
        If ``f`` is not callable or ``x`` is not a floating-point ndarray.
    ValueError
        If ``h`` is not positive, ``x`` is read-only, or ``f(x)`` and ``dout`` differ in shape.
    """
    if not callable(f):
        raise TypeError(f"f must be callable, got {type(f).__name__}")
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"x must be a floating-point ndarray, got {type(x).__name__}")
    if not x.flags.writeable:
        raise ValueError("x must be writable: it is perturbed in place (and restored)")
    h = check_real("h", h)
    if not h > 0:
        raise ValueError(f"h must be positive, got {h}")
    dout = as_float_array("dout", dout)
    grad = np.zeros(x.shape, dtype=np.float64)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        plus = np.array(f(x), dtype=np.float64)  # a copy: f may return a view of x
        x[i] = old - h
        minus = np.array(f(x), dtype=np.float64)
        x[i] = old
        if plus.shape != dout.shape:
            raise ValueError(f"f(x) has shape {plus.shape} but dout has shape {dout.shape}")
        grad[i] = np.sum((plus - minus) * dout) / (2.0 * h)
    return grad.astype(x.dtype, copy=False)
