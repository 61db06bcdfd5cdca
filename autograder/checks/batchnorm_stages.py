"""Hidden checks for assignment 02's three stages: ``batch_stats``, ``normalize`` and
``scale_shift`` (Ioffe & Szegedy 2015, Algorithm 1, one line each).

The mistakes they name (M1 ddof=1, M2 wrong axis, M3 eps missing or outside the square root, M4
one-pass variance, M5 zero variance, M10 inputs mutated, M11 ``gamma * x + beta``, M12 squared
numerator), their texts and the tolerances are those of :mod:`autograder.checks.batchnorm_forward`.
"""

from __future__ import annotations

import numpy as np

from autograder import reference as ref
from autograder.checks.batchnorm_forward import (
    ATOL32,
    ATOL64,
    RTOL32,
    RTOL64,
    _diagnose,
    _dtype,
    _mistakes,
    _unchanged,
)
from autograder.checks.framework import (
    DIAGNOSIS,
    Failure,
    Grader,
    close,
    hidden_check,
    rng,
    unpack,
)

__all__ = ["check_batch_stats", "check_normalize", "check_scale_shift"]


# ============================================================================= batch_stats
@hidden_check("batch_stats", points=2)
def check_batch_stats(g: Grader, batch_stats) -> None:
    """Per-feature mean and biased variance on several shapes, dtypes and hard cases."""
    r = rng(201)

    with g.part("mean and biased variance per feature on a 7x4 batch", weight=2, each=True):
        x = r.normal(loc=[0.0, 5.0, -3.0, 1.0], scale=[1.0, 3.0, 0.5, 2.0], size=(7, 4))
        mean, var = unpack(g.call(batch_stats, x.copy()), 2, "mean, var")
        g.compare("mean", mean, x.mean(axis=0), rtol=RTOL64, atol=ATOL64,
                  mistakes=_mistakes(M2=x.mean(axis=1)))
        g.compare("var", var, ref.batch_stats(x)[1], rtol=RTOL64, atol=ATOL64,
                  mistakes=_mistakes(M1=x.var(axis=0, ddof=1), M2=x.var(axis=1),
                                     M4=lambda: (x**2).mean(0) - x.mean(0) ** 2))

    with g.part("a batch of N=2 samples with a single feature (D=1)", weight=0.5, each=True):
        # mean 0.75, deviations +-1.25, biased variance 1.5625 (unbiased 3.125): no round
        # number a constant stub could return
        x = np.array([[2.0], [-0.5]])
        mean, var = unpack(g.call(batch_stats, x.copy()), 2, "mean, var")
        g.compare("mean", mean, [0.75], rtol=RTOL64, atol=ATOL64,
                  mistakes=_mistakes(M2=x.mean(axis=1)))
        g.compare("var", var, [1.5625], rtol=RTOL64, atol=ATOL64,
                  mistakes=_mistakes(M1=[3.125]))

    with g.part("float32 input gives float32 mean and var", weight=0.5, each=True):
        x = r.normal(loc=1.0, scale=2.0, size=(16, 3)).astype(np.float32)
        mean, var = unpack(g.call(batch_stats, x.copy()), 2, "mean, var")
        exp_mean, exp_var = ref.batch_stats(x.astype(np.float64))
        _dtype("mean", mean, np.float32)
        _dtype("var", var, np.float32)
        g.compare("mean", mean, exp_mean, rtol=RTOL32, atol=ATOL32,
                  mistakes=_mistakes(M2=lambda: x.astype(np.float64).mean(axis=1)))
        g.compare("var", var, exp_var, rtol=RTOL32, atol=ATOL32,
                  mistakes=_mistakes(M1=lambda: x.astype(np.float64).var(0, ddof=1)))

    with g.part("features with a large mean (1e4) and a tiny spread (std 1e-3), float64",
                weight=1):
        # float64 on purpose: see the module docstring. The exact biased variance is ~1e-6;
        # a one-pass formula loses it in E[x^2] ~ 1e8 (float64 rounding there is ~1e-8).
        x = 1e4 + 1e-3 * r.normal(size=(12, 3))
        mean, var = unpack(g.call(batch_stats, x.copy()), 2, "mean, var")
        g.compare("mean", mean, ref.batch_stats(x)[0], rtol=RTOL64, atol=ATOL64,
                  mistakes=_mistakes(M2=x.mean(axis=1)))
        try:
            g.compare("var", var, ref.batch_stats(x)[1], rtol=1e-6, atol=0.0,
                      mistakes=_mistakes(M1=x.var(axis=0, ddof=1),
                                         M4=lambda: (x**2).mean(0) - x.mean(0) ** 2))
        except Failure as f:
            # numpy may sum E[x^2] in another order than we did; the symptom is what counts:
            # right on centred data (the first part), wrong once the mean is large.
            if DIAGNOSIS not in str(f) and close(
                unpack(g.call(batch_stats, x - 1e4), 2, "mean, var")[1],
                ref.batch_stats(x - 1e4)[1], rtol=1e-6):
                raise Failure(f"{f}\n      {_diagnose('M4')}") from None
            raise

    with g.part("a constant feature has variance 0 (not nan, not negative)", weight=0.5, each=True):
        x = np.column_stack([np.full(5, 3.0), r.normal(size=5)])
        mean, var = unpack(g.call(batch_stats, x.copy()), 2, "mean, var")
        g.compare("mean", mean, x.mean(axis=0), rtol=RTOL64, atol=ATOL64,
                  mistakes=_mistakes(M2=x.mean(axis=1)))
        g.compare("var", var, ref.batch_stats(x)[1], rtol=RTOL64, atol=ATOL64,
                  mistakes=_mistakes(M1=x.var(axis=0, ddof=1)))

    with g.part("x is left unchanged", weight=0.5):
        x = r.normal(loc=2.0, size=(6, 3))
        x_in = x.copy()
        g.call(batch_stats, x_in)
        _unchanged({"x": x}, {"x": x_in})


# ============================================================================= normalize
@hidden_check("normalize", points=2)
def check_normalize(g: Grader, normalize) -> None:
    """``(x - mean) / sqrt(var + eps)`` with the statistics it is given."""
    r = rng(202)

    def expected(x, mean, var, eps):
        return ref.normalize(np.asarray(x, np.float64), mean, var, eps)

    def wrong(x, mean, var, eps, kind):
        with np.errstate(all="ignore"):
            x, mean, var = (np.asarray(a, np.float64) for a in (x, mean, var))
            if kind == "missing":
                return (x - mean) / np.sqrt(var)
            if kind == "outside":
                return (x - mean) / (np.sqrt(var) + eps)
            return (x - mean) ** 2 / np.sqrt(var + eps)

    with g.part("uses the mean and var it is given (6x3 batch, eps=1e-5)", weight=2):
        x = r.normal(loc=[1.0, -2.0, 0.0], scale=[1.0, 2.0, 0.5], size=(6, 3))
        mean = np.array([0.5, -1.0, 0.2])  # deliberately not the batch statistics
        var = np.array([2.0, 0.5, 1.5])
        x_hat = g.call(normalize, x.copy(), mean.copy(), var.copy(), 1e-5)
        g.compare("x_hat", x_hat, expected(x, mean, var, 1e-5), rtol=RTOL64, atol=ATOL64,
                  mistakes=_mistakes(M12=lambda: wrong(x, mean, var, 1e-5, "square"),
                                     M3_missing=lambda: wrong(x, mean, var, 1e-5, "missing"),
                                     M3_outside=lambda: wrong(x, mean, var, 1e-5, "outside")))

    with g.part("eps inside the square root matters when var is small (var 1e-6..1e-3, "
                "eps=1e-3)", weight=1):
        x = 1e-2 * r.normal(size=(5, 3))
        mean = np.zeros(3)
        var = np.array([1e-6, 1e-4, 1e-3])
        x_hat = g.call(normalize, x.copy(), mean.copy(), var.copy(), 1e-3)
        g.compare("x_hat", x_hat, expected(x, mean, var, 1e-3), rtol=RTOL64, atol=ATOL64,
                  mistakes=_mistakes(M3_missing=lambda: wrong(x, mean, var, 1e-3, "missing"),
                                     M3_outside=lambda: wrong(x, mean, var, 1e-3, "outside"),
                                     M12=lambda: wrong(x, mean, var, 1e-3, "square")))

    with g.part("a zero variance gives finite values (x - mean) / sqrt(eps)", weight=0.5):
        x = np.array([[3.0, 1.0], [3.0, -1.0]])
        mean = np.array([3.0, 0.0])
        var = np.array([0.0, 1.0])
        x_hat = g.call(normalize, x.copy(), mean.copy(), var.copy(), 1e-5)
        g.compare("x_hat", x_hat, expected(x, mean, var, 1e-5), rtol=RTOL64, atol=ATOL64,
                  mistakes=_mistakes(M5=lambda: wrong(x, mean, var, 1e-5, "missing"),
                                     M3_outside=lambda: wrong(x, mean, var, 1e-5, "outside")))

    with g.part("N=2 samples, D=1 feature", weight=0.5):
        x = np.array([[4.0], [0.0]])
        x_hat = g.call(normalize, x.copy(), np.array([2.0]), np.array([4.0]), 0.0)
        g.compare("x_hat", x_hat, [[1.0], [-1.0]], rtol=RTOL64, atol=ATOL64)

    with g.part("float32 in, float32 out", weight=0.5):
        x = r.normal(loc=1.0, size=(8, 3)).astype(np.float32)
        mean = x.mean(axis=0)
        var = x.var(axis=0)
        x_hat = g.call(normalize, x.copy(), mean.copy(), var.copy(), 1e-5)
        _dtype("x_hat", x_hat, np.float32)
        g.compare("x_hat", x_hat, expected(x, mean, var, 1e-5), rtol=RTOL32, atol=ATOL32)

    with g.part("x, mean and var are left unchanged", weight=0.5):
        x = r.normal(size=(4, 2))
        mean, var = np.array([0.1, -0.2]), np.array([1.5, 0.7])
        args = (x.copy(), mean.copy(), var.copy())
        g.call(normalize, *args, 1e-5)
        _unchanged({"x": x, "mean": mean, "var": var},
                   {"x": args[0], "mean": args[1], "var": args[2]})


# ============================================================================= scale_shift
@hidden_check("scale_shift", points=1)
def check_scale_shift(g: Grader, scale_shift) -> None:
    """``gamma * x_hat + beta`` column by column."""
    r = rng(203)

    with g.part("gamma scales and beta shifts each feature (5x3)", weight=1):
        x_hat = r.normal(size=(5, 3))
        gamma, beta = np.array([2.0, 0.5, -1.0]), np.array([1.0, -3.0, 0.25])
        out = g.call(scale_shift, x_hat.copy(), gamma.copy(), beta.copy())
        g.compare("out", out, ref.scale_shift(x_hat, gamma, beta), rtol=RTOL64, atol=ATOL64,
                  mistakes=_mistakes(swap=beta * x_hat + gamma))

    with g.part("N=2, D=1", weight=0.5):
        out = g.call(scale_shift, np.array([[1.0], [-1.0]]), np.array([3.0]), np.array([0.5]))
        g.compare("out", out, [[3.5], [-2.5]], rtol=RTOL64, atol=ATOL64)

    with g.part("float32 in, float32 out", weight=0.5):
        x_hat = r.normal(size=(4, 2)).astype(np.float32)
        gamma, beta = np.float32([1.5, -0.5]), np.float32([0.1, 2.0])
        out = g.call(scale_shift, x_hat.copy(), gamma.copy(), beta.copy())
        _dtype("out", out, np.float32)
        g.compare("out", out, ref.scale_shift(x_hat.astype(np.float64), gamma, beta),
                  rtol=RTOL32, atol=ATOL32)

    with g.part("x_hat, gamma and beta are left unchanged", weight=0.5):
        x_hat, gamma, beta = r.normal(size=(3, 2)), np.array([2.0, 3.0]), np.array([1.0, -1.0])
        args = (x_hat.copy(), gamma.copy(), beta.copy())
        g.call(scale_shift, *args)
        _unchanged({"x_hat": x_hat, "gamma": gamma, "beta": beta},
                   {"x_hat": args[0], "gamma": args[1], "beta": args[2]})
