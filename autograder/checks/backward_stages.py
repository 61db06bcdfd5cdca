"""Hidden checks for notebook 03's derivation steps: the backward pass stage by stage
(``scale_shift_backward``, ``normalize_backward``, ``batch_stats_backward``) and the two path
terms of the closed form (``dx_through_var``, ``dx_through_mean``).

Each compares the student's values with :mod:`autograder.reference.backward_stages` in float64 and
names the typical mistakes of a derivation (``MISCONCEPTIONS.md``): M15 a sum over the batch left
out, M16 a wrong 1/N (a mean where the sum belongs, the number of features, N - 1, or no 1/N),
M17 a path dropped, M18 x_hat where x - mu belongs, M3 eps missing or outside the square root,
M10 an input changed in place.

Data: the reference forward on columns with standard deviations 2 to 5 (so that
sqrt(var + eps) is far from 1 and M18 shows), N != D (so that 1/N and 1/D differ, M16), and a
random upstream gradient. Tolerances are relative to ``scale``, the size of the terms a value is
built from (a sum of N terms can cancel to near 0): float64 ``rtol = 1e-7``, ``atol = 1e-9 *
scale`` (rounding is ~1e-15 of scale; every mistake moves a value by a sizeable fraction of
it); float32 ``rtol = 1e-3``, ``atol = 1e-4 * scale`` (sums of a few hundred float32 terms carry
~1e-5 of scale).
"""

from __future__ import annotations

import numpy as np

from autograder import reference as ref
from autograder.checks.batchnorm_backward import _bn_case, _closest, _closest_explained
from autograder.checks.framework import Grader, hidden_check, require_unchanged, rng, unpack

__all__ = [
    "check_scale_shift_backward",
    "check_normalize_backward",
    "check_batch_stats_backward",
    "check_dx_through_var",
    "check_dx_through_mean",
]


# --------------------------------------------------------------------------- helpers
def _compare(g: Grader, what, got, expected, *, scale: float, dtype=np.float64, mistakes=None):
    """``g.compare`` with the module's tolerances (see the module docstring)."""
    scale = float(scale) or 1.0
    if np.dtype(dtype) == np.float32:
        rtol, atol = 1e-3, 1e-4 * scale
    else:
        rtol, atol = 1e-7, 1e-9 * scale
    g.compare(what, got, expected, rtol=rtol, atol=atol, mistakes=mistakes)


def _size(*terms) -> float:
    """The size of the terms a value is summed from: the largest |term| times their count."""
    return max(float(np.max(np.abs(t))) * (np.shape(t)[0] if np.ndim(t) == 2 else 1)
               for t in terms)


def _call(g: Grader, fn, *args):
    """Call the student's function on copies of ``args`` (arrays); return (result, copies)."""
    copies = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    return g.call(fn, *copies), copies


def _unchanged_part(g: Grader, fn, names: str, *args) -> None:
    """The part "<inputs> are left unchanged" (M10): ``names`` the first len(names) of ``args``."""
    *first, last = names.split()
    with g.part(f"{', '.join(first)} and {last} are left unchanged", weight=0.5):
        _, copies = _call(g, fn, *args)
        for name, before, after in zip(names.split(), args, copies, strict=False):
            require_unchanged(name, before, after)


def _per_sample(got, shape_nd, text: str) -> dict:
    """M15 when a (D,) gradient came back with one row per sample: the shape is the symptom."""
    return {"M15": (lambda: got if np.shape(got) == tuple(shape_nd) else np.empty((0, 0)), text)}


def _not_summed(name: str, broadcast: str) -> str:
    return (f"{name} has one row per sample. {broadcast} is one (D,) vector shared by all N rows "
            "of the batch, so its gradient adds up the contributions of every row: sum over "
            "axis 0.")


_MEAN_NOT_SUM = ("{name} is the sum over the batch divided by N. Each row contributes its own "
                 "term to the gradient of a shared (D,) vector, and the contributions add up: "
                 "sum them (np.sum(..., axis=0)); a mean divides by N once too often.")

_WRONG_N = ("dx is off by a wrong 1/N. The batch mean and variance average over the N rows of "
            "the batch, so each 1/N in their backward divides by N = x.shape[0]: not by the number "
            "of features D = x.shape[1], nor by N - 1, and it is not left out.")


# --------------------------------------------------------------------------- 2a scale_shift
@hidden_check("scale_shift_backward", points=1)
def check_scale_shift_backward(g: Grader, fn) -> None:
    """dx_hat, dgamma and dbeta of ``out = gamma * x_hat + beta``."""

    def compare_all(dout, x_hat, gamma, dtype=np.float64):
        result, _ = _call(g, fn, dout, x_hat, gamma)
        dx_hat, dgamma, dbeta = unpack(result, 3, "dx_hat, dgamma, dbeta")
        d64, xh64, g64 = (a.astype(np.float64) for a in (dout, x_hat, gamma))
        e_dxh, e_dg, e_db = ref.scale_shift_backward(d64, xh64, g64)
        N = dout.shape[0]
        _compare(g, "dx_hat", dx_hat, e_dxh, scale=_size(d64 * g64), dtype=dtype)
        _compare(g, "dgamma", dgamma, e_dg, scale=_size(d64 * xh64), dtype=dtype, mistakes={
            **_per_sample(dgamma, dout.shape, _not_summed("dgamma", "gamma")),
            "M16": (e_dg / N, _MEAN_NOT_SUM.format(name="dgamma"))})
        _compare(g, "dbeta", dbeta, e_db, scale=_size(d64), dtype=dtype, mistakes={
            **_per_sample(dbeta, dout.shape, _not_summed("dbeta", "beta")),
            "M16": (e_db / N, _MEAN_NOT_SUM.format(name="dbeta"))})

    with g.part("dx_hat, dgamma and dbeta on a 5x3 batch, dout not all ones", weight=2, each=True):
        *_, dout, cache = _bn_case(400, 5, 3)
        compare_all(dout, cache["x_hat"], cache["gamma"])
    with g.part("float32, N = 200, D = 4", weight=0.5, each=True):
        *_, dout, cache = _bn_case(401, 200, 4, dtype=np.float32, offset=10.0)
        compare_all(dout, cache["x_hat"], cache["gamma"], dtype=np.float32)
    *_, dout, cache = _bn_case(402, 4, 2)
    _unchanged_part(g, fn, "dout x_hat gamma", dout, cache["x_hat"], cache["gamma"])


# --------------------------------------------------------------------------- 2b normalize
_M3 = ("the gradients use 1/sqrt(var) or 1/(sqrt(var) + eps) where the forward pass divided by "
       "sqrt(var + eps): eps belongs inside the square root here too (it matters when var is "
       "small).")
_M18 = ("dvar is wrong by a factor of sqrt(var + eps): x_hat stands where (x - mean) belongs. "
        "x_hat depends on var only through the factor (var + eps)**-0.5, which multiplies "
        "(x - mean), not x_hat.")


def _normalize_with(dx_hat, x, mean, var, inv_std):
    """normalize_backward's three values with a given inv_std (the mistake M3 changes it)."""
    xmu = x - mean
    return (dx_hat * inv_std, -inv_std * dx_hat.sum(axis=0),
            -0.5 * inv_std**3 * (dx_hat * xmu).sum(axis=0))


@hidden_check("normalize_backward", points=2)
def check_normalize_backward(g: Grader, fn) -> None:
    """dx (mean and var held fixed), dmean and dvar of ``(x - mean) / sqrt(var + eps)``."""

    def compare_all(dx_hat, x, mean, var, eps, dtype=np.float64):
        result, _ = _call(g, fn, dx_hat, x, mean, var, eps)
        dx, dmean, dvar = unpack(result, 3, "dx, dmean, dvar")
        d, x, mean, var = (np.asarray(a, np.float64) for a in (dx_hat, x, mean, var))
        e_dx, e_dm, e_dv = ref.normalize_backward(d, x, mean, var, eps)
        N = d.shape[0]
        wrong = [_normalize_with(d, x, mean, var, r) for r in
                 (1.0 / np.sqrt(var), 1.0 / (np.sqrt(var) + eps))]

        def m3(k, got):
            return {"M3": (_closest(got, [lambda w=w: w[k] for w in wrong]), _M3)}

        inv_std = 1.0 / np.sqrt(var + eps)
        x_hat = (x - mean) * inv_std
        _compare(g, "dx", dx, e_dx, scale=_size(d * inv_std), dtype=dtype, mistakes=m3(0, dx))
        _compare(g, "dmean", dmean, e_dm, scale=_size(d * inv_std), dtype=dtype, mistakes={
            **_per_sample(dmean, d.shape, _not_summed("dmean", "The mean")),
            "M16": (e_dm / N, _MEAN_NOT_SUM.format(name="dmean")), **m3(1, dmean)})
        _compare(g, "dvar", dvar, e_dv, scale=_size(d * (x - mean) * inv_std**3), dtype=dtype,
                 mistakes={
                     **_per_sample(dvar, d.shape, _not_summed("dvar", "The variance")),
                     "M16": (e_dv / N, _MEAN_NOT_SUM.format(name="dvar")),
                     "M18": (_closest(dvar, [
                         lambda: -0.5 * inv_std**3 * (d * x_hat).sum(axis=0),
                         lambda: -0.5 * inv_std**3 * (d * (x_hat - mean)).sum(axis=0)]), _M18),
                     **m3(2, dvar)})

    with g.part("dx, dmean and dvar on a 6x3 batch with its own statistics, eps = 1e-5",
                weight=2, each=True):
        x, *_, dx_hat, cache = _bn_case(410, 6, 3, offset=2.0)
        compare_all(dx_hat, x, cache["mean"], cache["var"], 1e-5)
    with g.part("statistics that are not the batch's (as test mode passes running statistics)",
                weight=1, each=True):
        r = rng(411)
        x = 1.0 + r.normal(size=(7, 4))
        mean, var = r.normal(size=4), r.uniform(4.0, 9.0, 4)
        compare_all(r.normal(size=(7, 4)), x, mean, var, 1e-5)
    with g.part("eps inside the square root: var from 1e-6 to 1e-3, eps = 1e-3", weight=0.5,
                each=True):
        r = rng(412)
        var = np.array([1e-6, 1e-4, 1e-3])
        x = 0.5 + np.sqrt(var) * r.normal(size=(5, 3))
        compare_all(r.normal(size=(5, 3)), x, x.mean(axis=0), var, 1e-3)
    with g.part("float32, N = 300, D = 3", weight=0.5, each=True):
        x, *_, dx_hat, cache = _bn_case(413, 300, 3, dtype=np.float32, offset=10.0)
        compare_all(dx_hat, x, cache["mean"], cache["var"], 1e-5, dtype=np.float32)
    x, *_, dx_hat, cache = _bn_case(414, 4, 2)
    _unchanged_part(g, fn, "dx_hat x mean var", dx_hat, x, cache["mean"], cache["var"], 1e-5)


# --------------------------------------------------------------------------- 2c batch_stats
def _stats_terms(dmean, dvar, x):
    """The two terms of batch_stats_backward's dx before their 1/N: through mean, through var."""
    return np.broadcast_to(dmean, x.shape), 2.0 * dvar * (x - x.mean(axis=0))


def _stats_mistakes(got, dmean, dvar, x) -> dict:
    N, D = x.shape
    through_mean, through_var = _stats_terms(dmean, dvar, x)
    counts = [D, N - 1, N * D, 1]
    return {
        "M16": (_closest(got, [
            *(lambda n=n: (through_mean + through_var) / n for n in counts),
            lambda: through_mean + through_var / N,
            lambda: through_mean / N + through_var,
        ]), _WRONG_N),
        "M17": _closest_explained(got, [
            (lambda: through_var / N,
             "dx misses the path through the batch mean. mean depends on every x[i, j] of its "
             "column, so dmean flows back to every row of the column, divided by N."),
            (lambda: through_mean / N,
             "dx misses the path through the batch variance. var depends on every x[i, j] of its "
             "column, so dvar flows back to every row, through the derivative of "
             "mean((x - mean)**2) with respect to x[i, j]."),
        ]),
    }


@hidden_check("batch_stats_backward", points=2)
def check_batch_stats_backward(g: Grader, fn) -> None:
    """dx from dmean and dvar through ``mean = x.mean(0)`` and ``var = ((x - mean)**2).mean(0)``."""

    def compare_dx(dmean, dvar, x, dtype=np.float64):
        dx, _ = _call(g, fn, dmean, dvar, x)
        m, v, x = (np.asarray(a, np.float64) for a in (dmean, dvar, x))
        expected = ref.batch_stats_backward(m, v, x)
        N = x.shape[0]
        _compare(g, "dx", dx, expected, scale=_size(*_stats_terms(m, v, x)) / N, dtype=dtype,
                 mistakes=_stats_mistakes(dx, m, v, x))

    with g.part("dx on a 6x4 batch (offset 3, std 2 to 5), dmean and dvar at random", weight=2):
        r = rng(420)
        x, *_ = _bn_case(420, 6, 4, offset=3.0)
        compare_dx(r.normal(size=4), r.normal(size=4), x)
    with g.part("N = 2, D = 1: x = [[2], [-0.5]], dmean = [0.7], dvar = [-1.3]", weight=0.5):
        # mean 0.75, deviations +-1.25: dx = (0.7 + 2 * -1.3 * [-1.25, 1.25]) / 2
        compare_dx(np.array([0.7]), np.array([-1.3]), np.array([[2.0], [-0.5]]))
    with g.part("float32, N = 300, D = 3, offset 10", weight=0.5):
        r = rng(421)
        x, *_ = _bn_case(421, 300, 3, dtype=np.float32, offset=10.0)
        compare_dx(r.normal(size=3).astype(np.float32), r.normal(size=3).astype(np.float32), x,
                   dtype=np.float32)
    r = rng(422)
    _unchanged_part(g, fn, "dmean dvar x", r.normal(size=3), r.normal(size=3), r.normal(size=(5, 3)))


# --------------------------------------------------------------------------- 3a, 3b the paths
_SUM_IN_PATH = ("the sum over the batch is missing: {what} is a (D,) vector shared by all N "
                "rows, so the gradient that reaches it adds up the contributions of every row "
                "before it flows back to x[i]; your value keeps row i's contribution only.")
_M18_PATH = ("the variance path is off by a power of sqrt(var + eps): substituting "
             "x - mean = x_hat / inv_std went wrong (x_hat written where x - mean belongs, or "
             "x_hat * inv_std). It appears twice: in dvar and in the derivative of var with "
             "respect to x.")


def _path_case(seed, N, D, dtype=np.float64, offset=0.0):
    """(dx_hat, x_hat, inv_std) from the reference forward."""
    *_, dx_hat, cache = _bn_case(seed, N, D, dtype=dtype, offset=offset)
    return dx_hat, cache["x_hat"], cache["inv_std"]


def _path_parts(g: Grader, fn, compare, seed: int, names: str, with_x_hat: bool) -> None:
    """The parts shared by the two path checks; ``compare(dx_hat, x_hat, inv_std, dtype)``."""
    with g.part("a 6x4 batch, columns with standard deviations around 2 to 5", weight=2):
        compare(*_path_case(seed, 6, 4))
    with g.part("N = 2, D = 3", weight=0.5):
        compare(*_path_case(seed + 1, 2, 3))
    with g.part("float32, N = 300, D = 3", weight=0.5):
        compare(*_path_case(seed + 2, 300, 3, dtype=np.float32, offset=10.0), dtype=np.float32)
    dx_hat, x_hat, inv_std = _path_case(seed + 3, 4, 2)
    _unchanged_part(g, fn, names, *((dx_hat, x_hat, inv_std) if with_x_hat else (dx_hat, inv_std)))


@hidden_check("dx_through_var", points=2)
def check_dx_through_var(g: Grader, fn) -> None:
    """The part of dx that flows through the batch variance, written with x_hat."""

    def compare(dx_hat, x_hat, inv_std, dtype=np.float64):
        got, _ = _call(g, fn, dx_hat, x_hat, inv_std)
        d, xh, r = (np.asarray(a, np.float64) for a in (dx_hat, x_hat, inv_std))
        expected = ref.dx_through_var(d, xh, r)
        N, D = d.shape
        _compare(g, "dx_through_var", got, expected, scale=_size(d * xh) * float(np.max(r)) / N,
                 dtype=dtype, mistakes={
                     "M15": (-r / N * xh * (d * xh), _SUM_IN_PATH.format(what="var")),
                     "M16": (_closest(got, [lambda n=n: expected * N / n for n in (D, N - 1, 1)]),
                             _WRONG_N),
                     "M18": (_closest(got, [lambda k=k: expected * r**k for k in (1, 2, -1, -2)]),
                             _M18_PATH)})

    _path_parts(g, fn, compare, 430, "dx_hat x_hat inv_std", with_x_hat=True)


@hidden_check("dx_through_mean", points=1)
def check_dx_through_mean(g: Grader, fn) -> None:
    """The part of dx that flows through the batch mean: the same row for every sample."""

    def compare(dx_hat, x_hat, inv_std, dtype=np.float64):
        got, _ = _call(g, fn, dx_hat, inv_std)
        d, r = np.asarray(dx_hat, np.float64), np.asarray(inv_std, np.float64)
        expected = ref.dx_through_mean(d, r)
        N, D = d.shape
        _compare(g, "dx_through_mean", got, expected, scale=_size(d) * float(np.max(r)) / N,
                 dtype=dtype, mistakes={
                     "M15": (-r / N * d, _SUM_IN_PATH.format(what="mean")),
                     "M16": (_closest(got, [lambda n=n: expected * N / n for n in (D, N - 1, 1)]),
                             _WRONG_N)})

    _path_parts(g, fn, compare, 440, "dx_hat inv_std", with_x_hat=False)
