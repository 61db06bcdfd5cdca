"""Hidden checks for assignment 03, the BatchNorm backward pass.

Every check builds seeded inputs, runs the reference forward to get a cache, hands the student
deep copies of ``dout`` and the cache, and compares the result with ``autograder.reference``
computed in float64. When the result is wrong it is compared with what each known mistake
(``MISCONCEPTIONS.md`` M10 dout or cache changed, M11 x for x_hat in dgamma, M13-M20) would
produce, computed below from the same cache, and the matching one is named, with the student's
value beside the expected one. The spatial check also names M15-M18 (made on the (N*H*W, C)
rows), since a spatial backward usually reuses the student's batchnorm_backward.

Data: columns with standard deviations between 2 and 5 (so that x_hat and x - mu differ, which
M18 needs), an offset (mean 1e3 in float64), N != D (so that 1/N and 1/D differ, M16), and an
upstream gradient ``dout`` drawn at random, never all ones.

Tolerances are relative to ``scale``, the size of the terms dx is built from
(max |gamma * inv_std| * max |dout|), because a correct dx can be near zero (exactly so for
N = 2, where x_hat = +-1 whatever x is):

* float64: the staged graph and the closed form round differently, by ~1e-13 of ``scale``;
  ``atol = 1e-9 * scale``, ``rtol = 1e-7`` leave a factor 1e4 of room, while every mistake
  changes dx by a sizeable fraction of ``scale``.
* float32: sums of N = 1000 float32 terms carry up to N * 6e-8 ~ 6e-5 relative error;
  ``atol = 2e-3 * scale``, ``rtol = 1e-3`` (the mistakes still differ by > 10 %).
"""

from __future__ import annotations

import copy

import numpy as np

from autograder import reference as ref
from autograder.checks.framework import (
    DIAGNOSIS,
    Failure,
    fmt,
    hidden_check,
    kernel_function,
    quiet,
    require_unchanged,
    rng,
    unpack,
)
from autograder.reference import batchnorm as ref_batchnorm

__all__ = [
    "check_numerical_gradient",
    "check_batchnorm_backward",
    "check_batchnorm_backward_alt",
    "check_spatial_batchnorm_backward",
    "check_fixed_backward_inv_n",
    "check_fixed_backward_dvar",
]


# --------------------------------------------------------------------------- inputs
def _bn_case(seed: int, N: int, D: int, dtype=np.float64, offset: float = 0.0):
    """Seeded train-mode forward: returns (x, gamma, beta, dout, cache), all of ``dtype``."""
    r = rng(seed)
    x = offset + r.uniform(2.0, 5.0, D) * r.normal(size=(N, D))
    gamma = r.uniform(0.5, 2.0, D) * r.choice([-1.0, 1.0], D)
    beta = r.normal(size=D)
    dout = r.normal(size=(N, D))  # not all ones: catches M20-like shortcuts
    x, gamma, beta, dout = (a.astype(dtype) for a in (x, gamma, beta, dout))
    _, cache = ref.batchnorm_forward(x, gamma, beta, {"mode": "train"})
    return x, gamma, beta, dout, cache


def _as64(cache: dict) -> dict:
    return {k: (v.astype(np.float64) if isinstance(v, np.ndarray) else v) for k, v in cache.items()}


def _tols(dtype, N: int, scale: float) -> tuple[float, float, float]:
    """(rtol, atol for dx, atol for the column sums dgamma/dbeta); see the module docstring."""
    if np.dtype(dtype) == np.float32:
        return 1e-3, 2e-3 * scale, 1e-5 * N * scale
    return 1e-7, 1e-9 * scale, 1e-12 * N * scale


def _scale(dout, cache) -> float:
    return float(np.max(np.abs(cache["gamma"] * cache["inv_std"])) * np.max(np.abs(dout))) or 1.0


# --------------------------------------------------------------------------- known mistakes
def _variant(dout, cache, *, n=None, dvar_with="xmu", dx_var_with="xmu", mean_path=True,
             var_path=True):
    """The staged backward with one mistake switched on, in float64 (dx only).

    n: the count used for the means (the mistake M16 puts D or N*D here). dvar_with /
    dx_var_with: what stands where (x - mu) belongs in dvar and in its path to dx (M18 puts
    x_hat there; seed 000 writes x_hat - mu). mean_path / var_path: drop a path (M17).
    """
    c = _as64(cache)
    dout = np.asarray(dout, dtype=np.float64)
    xmu, x_hat, inv_std, gamma, mean = c["xmu"], c["x_hat"], c["inv_std"], c["gamma"], c["mean"]
    n = dout.shape[0] if n is None else n
    pick = {"xmu": xmu, "x_hat": x_hat, "x_hat - mu": x_hat - mean}
    dx_hat = dout * gamma
    dx = dx_hat * inv_std
    dvar = np.zeros_like(inv_std)
    if var_path:
        dvar = -0.5 * inv_std**3 * (dx_hat * pick[dvar_with]).sum(axis=0)
        dx = dx + 2.0 * dvar * pick[dx_var_with] / n
    if mean_path:
        dmu = -(dx_hat * inv_std).sum(axis=0) - 2.0 * dvar * xmu.sum(axis=0) / n
        dx = dx + dmu / n
    return dx


def _closest(got, candidates):
    """The candidate nearest to ``got`` (so one diagnosis can cover several spellings)."""
    def dist(c):
        c = np.asarray(c)
        if c.shape != np.shape(got):
            return np.inf
        return float(np.nanmax(np.abs(np.asarray(got, dtype=np.float64) - c))) if c.size else 0.0
    return lambda: min(candidates, key=lambda c: dist(c()))()


def _closest_explained(got, candidates):
    """``(wrong value, explanation)`` of the (value callable, explanation) candidate nearest to
    ``got``: one diagnosis id, explained for the spelling of it that the student wrote."""
    values = [quiet(make) for make, _ in candidates]

    def dist(v):
        v = np.asarray(v)
        if v.shape != np.shape(got):
            return np.inf
        return float(np.nanmax(np.abs(np.asarray(got, dtype=np.float64) - v))) if v.size else 0.0

    best = min(range(len(values)), key=lambda i: dist(values[i]))
    return values[best], candidates[best][1]


def _dx_mistakes(got, dout, cache, counts=()) -> dict:
    """M16-M18 for dx in the (N, D) layout. ``counts``: other wrong values of N to try (the
    spatial check passes the number of images and of pixels)."""
    N, D = np.shape(dout)
    correct = ref.batchnorm_backward(np.asarray(dout, np.float64), _as64(cache))[0]
    wrong_n = [D, N * D, N - 1, *counts]
    return {
        "M16": (_closest(got, [
            *(lambda n=n: _variant(dout, cache, n=n) for n in wrong_n),
            *(lambda n=n: correct * N / n for n in wrong_n),
            lambda: correct * N,
        ]), "dx is off by a wrong 1/N. The mean and the variance are taken over the batch, so "
            "every 1/N in the backward pass divides by the number of values each mean is taken "
            "over: the batch size N = x.shape[0] (N*H*W for images), not the number of features "
            "D = x.shape[1], nor N*D, nor N - 1."),
        "M17": _closest_explained(got, [
            (lambda: _variant(dout, cache, mean_path=False),
             "dx misses the path through the batch mean. mu depends on every x[i, j] of its "
             "column, so the gradient that reaches mu, dmu, flows back to every row as dmu / N. "
             "Without it the columns of dx do not sum to zero, as they must."),
            (lambda: _variant(dout, cache, var_path=False),
             "dx misses the path through the batch variance. var depends on every x[i, j] of "
             "its column, so dvar flows back to every row as dvar * 2 * (x - mu) / N. Without "
             "it the columns of dx are not orthogonal to x_hat, as they must be."),
            (lambda: _variant(dout, cache, mean_path=False, var_path=False),
             "dx is only dout * gamma * inv_std, as if the batch mean and variance were "
             "constants. Both depend on every x[i, j] of the column, so each adds a term to "
             "dx: dmu / N through the mean and dvar * 2 * (x - mu) / N through the variance."),
            (lambda: correct - _variant(dout, cache, mean_path=False, var_path=False),
             "dx misses the direct path: x enters the normalization itself, not only through "
             "the batch mean and variance, so the gradient normalize sends to x (mean and var "
             "held fixed) is added to the one that comes back through the statistics."),
        ]),
        "M18": (_closest(got, [
            lambda: _variant(dout, cache, dvar_with="x_hat"),
            lambda: _variant(dout, cache, dx_var_with="x_hat"),
            lambda: _variant(dout, cache, dvar_with="x_hat", dx_var_with="x_hat"),
            lambda: _variant(dout, cache, dvar_with="x_hat - mu"),
        ]), "the variance term of dx is wrong by a factor of sqrt(var + eps): x_hat stands "
            "where (x - mu) belongs. var = mean((x - mu)**2), so dvar = sum(dx_hat * (x - mu)) "
            "* -0.5 * (var + eps)**-1.5 and dvar reaches x through 2 * (x - mu) / N."),
    }


def _m15_text(name: str, spatial: bool = False) -> str:
    if spatial:
        return (f"{name} has one value per pixel of every image. gamma and beta are shared by "
                f"all of them, so their gradients are summed over N, H and W: {name} has "
                "shape (C,).")
    return (f"{name} has one row per sample. gamma and beta are shared by all N rows of the "
            f"batch, so their gradients are summed over axis 0: {name} has shape (D,).")


def _m15(got, name, *shapes_nd):
    """An M15 'wrong value' that matches any array of shape (N, D) (or of another of
    ``shapes_nd``; more than one means the spatial layouts): the shape is the symptom."""
    return {"M15": (lambda: got if np.shape(got) in shapes_nd else np.empty((0, 0)),
                    _m15_text(name, spatial=len(shapes_nd) > 1))}


_M11 = ("dgamma uses x where x_hat belongs. The output is gamma * x_hat + beta, so dgamma is "
        "the sum over the batch of dout * x_hat (cache['x_hat'], the normalized input), not of "
        "dout * x.")


def _dgamma_mistakes(got, name_shapes, dout_rows, cache) -> dict:
    """M15 (not summed) and M11 (x for x_hat) for dgamma; ``dout_rows`` in the (N, D) layout."""
    x = np.asarray(cache["x"], np.float64)
    return {**_m15(got, "dgamma", *name_shapes),
            "M11": (lambda: (np.asarray(dout_rows, np.float64) * x).sum(axis=0), _M11)}


def _rows_of(value, shape):
    """A student's (N, C, H, W) array as (N*H*W, C) rows in float64, or None if it is not one."""
    if np.shape(value) != tuple(shape):
        return None
    try:
        return ref_batchnorm._nchw_to_rows(np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError):
        return None


def _example(got, expected) -> str:
    """The report lines that show the student's value beside the expected one."""
    return f"\n      yours:    {fmt(got)}\n      expected: {fmt(expected)}"


# --------------------------------------------------------------------------- calling the student
_M10_DOUT = ("your function changed dout in place: an in-place operation (*=, -=, out=...) on "
             "dout, or on another name for the same array (d = dout; d *= gamma). The caller "
             "still needs dout: compute new arrays instead (d = dout * gamma).")
_M10_CACHE = ("your function changed the cache: it assigned cache[key] = ... or worked in place "
              "on one of its arrays. The cache belongs to the forward pass: read from it and "
              "put what you compute in new variables.")


def _call_backward(g, fn, dout, cache):
    """Call ``fn`` on deep copies; fail if it changed them; return (dx, dgamma, dbeta)."""
    d_copy, c_copy = dout.copy(), copy.deepcopy(cache)
    result = unpack(g.call(fn, d_copy, c_copy), 3, "dx, dgamma, dbeta")
    require_unchanged("dout", dout, d_copy, _M10_DOUT)
    for k, v in cache.items():
        require_unchanged(f"cache[{k!r}]", v, c_copy.get(k), _M10_CACHE)
    if isinstance(result[0], np.ndarray) and result[0].dtype != dout.dtype:
        g.note(f"on {dout.dtype} input your dx is {result[0].dtype}; that is accepted, but a layer "
               "usually keeps its input's dtype.")
    return result


def _compare_backward(g, fn, dout, cache, *, dx_mistakes=True):
    """Compare the three gradients with the reference; name the mistake if one matches."""
    dx, dgamma, dbeta = _call_backward(g, fn, dout, cache)
    N = dout.shape[0]
    scale = _scale(dout, cache)
    rtol, atol, atol_sum = _tols(dout.dtype, N, scale)
    e_dx, e_dg, e_db = ref.batchnorm_backward(dout.astype(np.float64), _as64(cache))
    g.compare("dbeta", dbeta, e_db, rtol=rtol, atol=atol_sum, mistakes=_m15(dbeta, "dbeta", dout.shape))
    g.compare("dgamma", dgamma, e_dg, rtol=rtol, atol=atol_sum,
              mistakes=_dgamma_mistakes(dgamma, [dout.shape], dout, cache))
    g.compare("dx", dx, e_dx, rtol=rtol, atol=atol,
              mistakes=_dx_mistakes(dx, dout, cache) if dx_mistakes else None)


def _backward_parts(g, fn, seed: int):
    """The parts shared by batchnorm_backward and batchnorm_backward_alt."""
    with g.part("returns dx (N, D), dgamma (D,), dbeta (D,) on a 4x3 example", weight=1):
        *_, dout, cache = _bn_case(seed, 4, 3)
        got = _call_backward(g, fn, dout, cache)
        expected = ref.batchnorm_backward(dout, cache)
        for name, v, e in zip(("dx", "dgamma", "dbeta"), got, expected, strict=True):
            if np.shape(v) != e.shape:
                hint = (f"\n      {DIAGNOSIS} M15: {_m15_text(name)}"
                        if name != "dx" and np.shape(v) == (4, 3) else "")
                raise Failure(f"{name} has shape {np.shape(v)}, expected {e.shape}."
                              f"{_example(v, e)}{hint}")
    with g.part("matches the reference: float64, offset 1e3, N=50, D=7, random dout", weight=2):
        *_, dout, cache = _bn_case(seed + 1, 50, 7, offset=1e3)
        _compare_backward(g, fn, dout, cache)
    with g.part("N = 2 (x_hat = +-1, so dx is almost exactly zero)", weight=0.5):
        *_, dout, cache = _bn_case(seed + 2, 2, 5)
        _compare_backward(g, fn, dout, cache)
    with g.part("D = 1 (a single feature)", weight=0.5):
        *_, dout, cache = _bn_case(seed + 3, 9, 1, offset=-20.0)
        _compare_backward(g, fn, dout, cache)
    with g.part("float32, N = 1000, D = 4, offset 10", weight=1):
        # offset 10, not 1e3: float32 keeps ~7 digits, and a correct student who recomputes
        # x_hat from cache['x'] must not lose them all to the offset.
        *_, dout, cache = _bn_case(seed + 4, 1000, 4, dtype=np.float32, offset=10.0)
        _compare_backward(g, fn, dout, cache)


# --------------------------------------------------------------------------- numerical gradient
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


# --------------------------------------------------------------------------- the backward passes
@hidden_check("batchnorm_backward", points=2)
def check_batchnorm_backward(g, fn):
    """dx, dgamma, dbeta against the reference; any correct route (staged or closed) passes."""
    _backward_parts(g, fn, seed=310)
    with g.part("dout and the cache are left unmodified (N=6, D=3)", weight=1):
        *_, dout, cache = _bn_case(316, 6, 3)
        _call_backward(g, fn, dout, cache)


@hidden_check("batchnorm_backward_alt", points=2)
def check_batchnorm_backward_alt(g, fn):
    """The closed form: same answers as the staged graph."""
    _backward_parts(g, fn, seed=320)


def _spatial_composed(uses, dout, cache):
    """The spatial backward as the notebook's solution builds it: ``uses.batchnorm_backward`` on
    the (N*H*W, C) rows of dout, dx put back as (N, C, H, W) (the student's own
    batchnorm_backward in the carried-forward run, autograder/checks/carried.py)."""
    dx_rows, dgamma, dbeta = unpack(uses.batchnorm_backward(ref_batchnorm._nchw_to_rows(dout),
                                                            copy.deepcopy(cache)),
                                    3, "dx, dgamma, dbeta")
    return ref_batchnorm._rows_to_nchw(np.asarray(dx_rows), dout.shape), dgamma, dbeta


@hidden_check("spatial_batchnorm_backward", points=3, uses=("batchnorm_backward",))
def check_spatial_batchnorm_backward(g, fn):
    """Per-channel backward on (N, C, H, W); sums over N, H, W."""

    def case(seed, shape, dtype=np.float64, offset=0.0):
        r = rng(seed)
        N, C, H, W = shape
        x = offset + r.uniform(2.0, 5.0, (1, C, 1, 1)) * r.normal(size=shape)
        gamma = r.uniform(0.5, 2.0, C)
        beta = r.normal(size=C)
        dout = r.normal(size=shape)
        x, gamma, beta, dout = (a.astype(dtype) for a in (x, gamma, beta, dout))
        _, cache = ref.spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})
        return dout, cache

    def compare(dout, cache):
        dx, dgamma, dbeta = _call_backward(g, fn, dout, cache)
        N, C, H, W = dout.shape
        rows = N * H * W
        scale = _scale(dout, cache)
        rtol, atol, atol_sum = _tols(dout.dtype, rows, scale)
        d64, c64 = dout.astype(np.float64), _as64(cache)
        if g.carrying:  # the reference composed with the student's own batchnorm_backward
            e_dx, e_dg, e_db = _spatial_composed(g.uses, d64, c64)
        else:
            e_dx, e_dg, e_db = ref.spatial_batchnorm_backward(d64, c64)
        # M14: dout reshaped to (-1, C) without moving C last, or dx reshaped back that way
        flat = d64.reshape(-1, C)
        backward = g.uses.batchnorm_backward
        m14_dx = lambda: np.asarray(backward(flat.copy(), copy.deepcopy(c64))[0]).reshape(  # noqa: E731
            dout.shape)
        m14_dx2 = lambda: np.asarray(backward(ref_batchnorm._nchw_to_rows(d64),  # noqa: E731
                                              copy.deepcopy(c64))[0]).reshape(dout.shape)
        m14_dg = (flat * c64["x_hat"]).sum(axis=0)
        x_hat4 = ref_batchnorm._rows_to_nchw(c64["x_hat"], dout.shape)
        m14 = "channels are mixed: (N, C, H, W) was reshaped to (-1, C) without moving C last. "
        m14 += "Transpose to (N, H, W, C) first (and back after), then reshape."
        m13 = "the sums are per activation (over N only), not per channel: sum over N, H and W "
        m13 += "so that dgamma and dbeta have shape (C,)."
        # M15-M18 and M11 as in batchnorm_backward, made on the (N*H*W, C) rows; a wrong 1/N
        # may also count the images (N) or the pixels (H*W) instead of N*H*W
        not_summed = (dout.shape, (rows, C))
        d_rows = ref_batchnorm._nchw_to_rows(d64)
        dx_rows = _rows_of(dx, dout.shape)
        per_row = _dx_mistakes(dx_rows, d_rows, c64, counts=(N, H * W))
        g.compare("dbeta", dbeta, e_db, rtol=rtol, atol=atol_sum, mistakes={
            "M13": (lambda: d64.sum(axis=0), m13), "M14": (lambda: flat.sum(axis=0), m14),
            **_m15(dbeta, "dbeta", *not_summed)})
        g.compare("dgamma", dgamma, e_dg, rtol=rtol, atol=atol_sum, mistakes={
            "M13": (lambda: (d64 * x_hat4).sum(axis=0), m13), "M14": (m14_dg, m14),
            **_dgamma_mistakes(dgamma, not_summed, d_rows, c64)})
        g.compare("dx", dx, e_dx, rtol=rtol, atol=atol, mistakes={
            "M14": (_closest(dx, [m14_dx, m14_dx2]), m14),
            **{k: (lambda w=w: ref_batchnorm._rows_to_nchw(np.asarray(w() if callable(w) else w),
                                                 dout.shape), text)
               for k, (w, text) in per_row.items()}})

    with g.part("shapes: dx (N, C, H, W), dgamma and dbeta (C,)", weight=0.5):
        dout, cache = case(330, (2, 3, 4, 5))
        got = _call_backward(g, fn, dout, cache)
        expected = ref.spatial_batchnorm_backward(dout, cache)
        per_activation, per_value = (3, 4, 5), ((2, 3, 4, 5), (2 * 4 * 5, 3))
        for name, v, e in zip(("dx", "dgamma", "dbeta"), got, expected, strict=True):
            if np.shape(v) != e.shape:
                hint = ""
                if name != "dx" and np.shape(v) == per_activation:
                    hint = (f"\n      {DIAGNOSIS} M13: the sums are per activation (over N "
                            "only), not per channel: sum over N, H and W so that dgamma and "
                            "dbeta have shape (C,).")
                elif name != "dx" and np.shape(v) in per_value:
                    hint = f"\n      {DIAGNOSIS} M15: {_m15_text(name, spatial=True)}"
                raise Failure(f"{name} has shape {np.shape(v)}, expected {e.shape}."
                              f"{_example(v, e)}{hint}")
    with g.part("matches the reference: float64, N=3, C=4, H=5, W=2, offset 50", weight=1.5):
        compare(*case(331, (3, 4, 5, 2), offset=50.0))
    with g.part("float32, N=8, C=3, H=W=6", weight=0.5):
        compare(*case(332, (8, 3, 6, 6), dtype=np.float32, offset=5.0))
    with g.part("dout and the cache are left unmodified", weight=0.5):
        dout, cache = case(333, (2, 2, 3, 3))
        _call_backward(g, fn, dout, cache)


# --------------------------------------------------------------------------- the bug hunt
def _fixed_parts(g, fn, seed):
    with g.part("matches the reference: float64, N=6, D=4, std 2-5, random dout", weight=2):
        *_, dout, cache = _bn_case(seed, 6, 4, offset=3.0)
        _compare_backward(g, fn, dout, cache)
    with g.part("float32, N=1000, D=3, offset 10; dout and cache unmodified", weight=1):
        *_, dout, cache = _bn_case(seed + 1, 1000, 3, dtype=np.float32, offset=10.0)
        _compare_backward(g, fn, dout, cache)


@hidden_check("fixed_backward_inv_n", points=1)
def check_fixed_backward_inv_n(g, fn):
    """Bug 2 fixed: 1/N, not 1/D (M16)."""
    _fixed_parts(g, fn, 350)


@hidden_check("fixed_backward_dvar", points=1)
def check_fixed_backward_dvar(g, fn):
    """Bug 3 fixed: (x - mu) in dvar, not x_hat (M18)."""
    _fixed_parts(g, fn, 360)
