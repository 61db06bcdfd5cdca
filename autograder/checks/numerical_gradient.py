"""Hidden check of notebook 03's numerical gradient (``numerical_gradient``), section 1.

The student's centered difference of ``sum(f(x) * dout)`` is compared with exact gradients
(x**3, sin, a function that couples the entries of a channel) and with the reference backward
pass of BatchNorm; x and dout must be left exactly as they were. A wrong answer is compared with
a one-sided difference (M19) and with the gradient of ``sum(f(x))`` that ignores dout (M20),
both computed here by :func:`_fd`, which :mod:`autograder.checks.sandwich` also uses. The data
and tolerances of the BatchNorm part are those of :mod:`autograder.checks.batchnorm_backward`.
"""

from __future__ import annotations

import numpy as np

from autograder import reference as ref
from autograder.checks.batchnorm_backward import _M10_DOUT, _bn_case, _scale
from autograder.checks.framework import (
    DIAGNOSIS,
    Failure,
    hidden_check,
    kernel_function,
    require_unchanged,
    rng,
)

__all__ = ["check_numerical_gradient"]


_FWD_DIFF = ("your gradient matches a one-sided difference (f(x+h) - f(x)) / h, whose error is "
             "about h times the second derivative (~1e-5 here). Use the centered difference "
             "(f(x+h) - f(x-h)) / (2h): its error is about h**2.")
_NO_DOUT = ("your gradient ignores dout: it is the gradient of sum(f(x)), not of "
            "sum(f(x) * dout). Multiply the change of f by dout before summing.")


def _fd(f, x, dout, h=1e-5, kind="central"):
    """Finite differences of sum(f(x) * dout), in float64 on a copy of x."""
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    base = np.array(f(x), dtype=np.float64)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        plus = np.array(f(x), dtype=np.float64)
        x[i] = old - h
        minus = np.array(f(x), dtype=np.float64)
        x[i] = old
        if kind == "central":
            grad[i] = np.sum((plus - minus) * dout) / (2 * h)
        elif kind == "forward":
            grad[i] = np.sum((plus - base) * dout) / h
        else:
            grad[i] = np.sum((base - minus) * dout) / h
    return grad


def _numgrad_mistakes(f, x, dout) -> dict:
    """Each mistake id with the spellings of it to try, as zero-argument callables."""
    ones = np.ones_like(np.asarray(dout, dtype=np.float64))
    return {
        "M19": ([lambda: _fd(f, x, dout, kind="forward"),
                 lambda: _fd(f, x, dout, kind="backward")], _FWD_DIFF),
        "M20": ([lambda: _fd(f, x, ones), lambda: _fd(f, x, ones, kind="forward"),
                 lambda: _fd(f, x, ones, kind="backward")], _NO_DOUT),
    }


def _compare_numgrad(g, what, got, expected, f, x, dout, *, rtol, atol):
    """compare() with the M19/M20 spellings, each tried in turn."""
    try:
        g.compare(what, got, expected, rtol=rtol, atol=atol)
    except Failure as exc:
        for key, (spellings, text) in _numgrad_mistakes(f, x, dout).items():
            for spelling in spellings:
                v = spelling()
                if np.shape(v) == np.shape(got) and np.allclose(
                        np.asarray(got, dtype=np.float64), v, rtol=rtol, atol=atol):
                    raise Failure(f"{exc}\n      {DIAGNOSIS} {key}: {text}") from None
        raise


#: f(x) = BatchNorm's train-mode forward with fixed gamma and beta, written out so that it can be
#: defined in the student's kernel (the reference is not there); equal to
#: reference.batchnorm_forward(z, gamma, beta, {"mode": "train"})[0] up to rounding.
_BN_SOURCE = """def bn(z):
    mu = z.mean(axis=0)
    var = ((z - mu) ** 2).mean(axis=0)
    return gamma * ((z - mu) / np.sqrt(var + 1e-5)) + beta
"""


def _call_numgrad(g, fn, f, x, dout):
    x_in, d_in = x.copy(), dout.copy()
    grad = g.call(fn, f, x_in, d_in)
    return grad, x_in, d_in


@hidden_check("numerical_gradient", points=3)
def check_numerical_gradient(g, fn):
    """Centered differences, weighted by dout, x restored, on 2-D and 4-D arrays."""
    r = rng(300)
    cube = kernel_function("def cube(z):\n    return z**3\n", "cube")

    with g.part("centered difference: f(x) = x**3 on a 3x4 x, dout = ones", weight=1):
        x = r.uniform(0.5, 2.0, (3, 4))
        dout = np.ones((3, 4))
        grad, _, _ = _call_numgrad(g, fn, cube, x, dout)
        # exact answer 3 x**2; centered error ~h**2 = 1e-10, one-sided ~3 x h ~ 1e-5 relative
        _compare_numgrad(g, "grad", grad, 3 * x**2 * dout, cube, x, dout, rtol=1e-7, atol=1e-9)

    with g.part("weights by dout: f = BatchNorm forward (5x3), dout not all ones", weight=1):
        x, gamma, beta, dout, cache = _bn_case(301, 5, 3, offset=2.0)

        bn = kernel_function(_BN_SOURCE, "bn", gamma=gamma, beta=beta)

        grad, _, _ = _call_numgrad(g, fn, bn, x, dout)
        expected = ref.batchnorm_backward(dout, cache)[0]
        scale = _scale(dout, cache)
        # centered differences of BN with h = 1e-5 are within ~1e-10 * scale of the exact dx
        _compare_numgrad(g, "grad", grad, expected, bn, x, dout, rtol=1e-6, atol=1e-7 * scale)

    with g.part("leaves x and dout exactly unchanged", weight=0.5):
        x = r.normal(size=(4, 3))
        dout = r.normal(size=(4, 3))
        sine = kernel_function("def sine(z):\n    return np.sin(z)\n", "sine")
        grad, x_after, d_after = _call_numgrad(g, fn, sine, x, dout)
        require_unchanged("dout", dout, d_after, _M10_DOUT)
        if not np.array_equal(x_after, x):
            diff = np.abs(x_after - x)
            at = np.unravel_index(int(np.argmax(diff)), x.shape)
            where = f"x[{', '.join(map(str, at))}]"
            raise Failure(
                f"x differs from its value before the call, by up to {float(diff[at]):.3g}.\n"
                f"      before: {where} = {float(x[at])!r}\n"
                f"      after:  {where} = {float(x_after[at])!r}\n"
                f"      {DIAGNOSIS} M19: x is not restored after it is perturbed. Save old = x[i] "
                "before changing it and write x[i] = old back (adding and subtracting h can "
                "leave rounding errors)."
            )
        _compare_numgrad(g, "grad", grad, np.cos(x) * dout, sine, x, dout, rtol=1e-6, atol=1e-8)

    with g.part("works on a 4-D x (2x3x2x2), f couples entries of a channel", weight=0.5):
        x = r.normal(size=(2, 3, 2, 2))
        dout = r.normal(size=(2, 3, 2, 2))

        coupled = kernel_function("def coupled(z):\n"
                                  "    return np.tanh(z) * z.sum(axis=(2, 3), keepdims=True)\n",
                                  "coupled")

        grad, _, _ = _call_numgrad(g, fn, coupled, x, dout)
        t = np.tanh(x)
        expected = (1 - t**2) * x.sum(axis=(2, 3), keepdims=True) * dout + (t * dout).sum(
            axis=(2, 3), keepdims=True)
        # analytic gradient; centered differences are within ~1e-9 of it
        _compare_numgrad(g, "grad", grad, expected, coupled, x, dout, rtol=1e-6, atol=1e-8)
