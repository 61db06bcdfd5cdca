"""Hidden checks for assignment 03, the BatchNorm backward pass.

Every check builds seeded inputs, runs the reference forward to get a cache, hands the student
deep copies of ``dout`` and the cache, and compares the result with ``autograder.reference``
computed in float64. When the result is wrong it is compared with what each known mistake
(``MISCONCEPTIONS.md`` M10 dout or cache changed, M11 x for x_hat in dgamma, M13-M20) would
produce, computed below from the same cache, and the matching one is named, with the student's
value beside the expected one. The spatial check (``spatial_backward.py``) reuses these helpers.

Error carried forward: the notebook's ``batchnorm_backward`` chains the student's three stage
functions (``scale_shift_backward``, ``normalize_backward``, ``batch_stats_backward``, checked in
``backward_stages.py``), so its check declares them (``uses=``) and, in the carried-forward run,
takes its expected values from :func:`_backward_composed`, the reference built from the student's
own stages (``autograder/checks/carried.py``): a stage's mistake is charged in that stage only.
``batchnorm_backward_alt`` calls no graded function in the solution (the notebook asks for the
closed form "without calling your staged functions"), but a student who writes it as the sum of
its paths calls ``dx_through_mean`` and ``dx_through_var``, so its check declares those
(:func:`_alt_composed`). The bug-hunt fixes declare nothing.

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
import functools

import numpy as np

from autograder import reference as ref
from autograder.checks.framework import (
    DIAGNOSIS,
    Failure,
    fmt,
    hidden_check,
    quiet,
    require_unchanged,
    rng,
    unpack,
)

__all__ = [
    "check_batchnorm_backward",
    "check_batchnorm_backward_alt",
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


def _dx_mistakes(got, dout, cache, counts=(), dropped=()) -> dict:
    """M16-M18 for dx in the (N, D) layout. ``counts``: other wrong values of N to try (the
    spatial check passes the number of images and of pixels); ``dropped``: more spellings of
    M17, ``(value callable, explanation)`` (:func:`_path_dropped`)."""
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
            *dropped,
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


# --------------------------------------------------------------------------- the solution's chain
def _staged(uses, dout, cache):
    """The notebook's staged backward on the callees ``uses``: (dx through the direct path, dx
    through the batch statistics, dgamma, dbeta), each stage given copies of its inputs."""
    x = np.asarray(cache["x"])
    dx_hat, dgamma, dbeta = unpack(uses.scale_shift_backward(
        np.copy(dout), np.copy(cache["x_hat"]), np.copy(cache["gamma"])), 3, "dx_hat, dgamma, dbeta")
    direct, dmean, dvar = unpack(uses.normalize_backward(
        np.copy(dx_hat), x.copy(), np.copy(cache["mean"]), np.copy(cache["var"]), cache["eps"]),
        3, "dx, dmean, dvar")
    through_stats = uses.batch_stats_backward(np.copy(dmean), np.copy(dvar), x.copy())
    return np.asarray(direct), np.asarray(through_stats), dgamma, dbeta


def _backward_composed(uses, dout, cache):
    """batchnorm_backward as the notebook's solution builds it from ``uses.scale_shift_backward``,
    ``uses.normalize_backward`` and ``uses.batch_stats_backward``: dx is the direct path's plus
    the statistics' (x feeds both stages). With the references it equals
    ``reference.batchnorm_backward`` up to rounding (~1e-13 of ``scale``); in the
    carried-forward run the stages are the student's own."""
    direct, through_stats, dgamma, dbeta = _staged(uses, dout, cache)
    return direct + through_stats, dgamma, dbeta


def _paths(uses, dout, cache):
    """batchnorm_backward_alt's three paths from x to the loss on the callees ``uses``: the
    direct one (``dx_hat * inv_std``), ``uses.dx_through_mean`` and ``uses.dx_through_var``,
    each path function given copies of its inputs."""
    dx_hat = np.asarray(dout) * cache["gamma"]
    inv_std = np.asarray(cache["inv_std"])
    mean = uses.dx_through_mean(dx_hat.copy(), inv_std.copy())
    var = uses.dx_through_var(dx_hat.copy(), np.copy(cache["x_hat"]), inv_std.copy())
    return dx_hat * inv_std, np.asarray(mean), np.asarray(var)


def _alt_composed(uses, dout, cache):
    """batchnorm_backward_alt as the sum of its paths (:func:`_paths`), for a student who writes
    it with ``dx_through_mean`` and ``dx_through_var`` (the notebook asks for one expression, but
    a caller of a wrong path function is charged once, there). With the references it equals
    ``reference.batchnorm_backward_alt`` up to rounding."""
    direct, mean, var = _paths(uses, dout, cache)
    dout = np.asarray(dout)
    return direct + mean + var, (dout * cache["x_hat"]).sum(axis=0), dout.sum(axis=0)


#: The composed reference of each check that declares callees, by graded function.
_COMPOSED = {"batchnorm_backward": _backward_composed, "batchnorm_backward_alt": _alt_composed}


def _reference(g):
    """Where a backward pass's expected values come from: the reference, or in the
    carried-forward run (``g.carrying``) the reference composed with the student's own callees
    (:data:`_COMPOSED`). The checks that share these parts and declare no callees (the bug
    hunt) always get the reference."""
    composed = _COMPOSED.get(g.name) if g.carrying else None
    return functools.partial(composed, g.uses) if composed else ref.batchnorm_backward


#: M17's spellings on the student's own callees: (which paths are kept, explanation).
_DROPPED = {
    "batchnorm_backward": (_staged, [
        ((1,), "dx misses the direct path: your batchnorm_backward returns only the gradient "
               "that comes back through the batch statistics; the dx of normalize_backward "
               "(mean and var held fixed) is added to it, since x feeds both stages."),
        ((0,), "dx misses the paths through the batch mean and variance: your "
               "batchnorm_backward returns only the dx of normalize_backward; the gradient "
               "batch_stats_backward sends back to x is added to it, since x feeds both "
               "stages.")]),
    "batchnorm_backward_alt": (_paths, [
        ((0, 2), "dx misses the path through the batch mean: dx is the sum of three paths, the "
                 "direct one, dx_through_mean and dx_through_var."),
        ((0, 1), "dx misses the path through the batch variance: dx is the sum of three paths, "
                 "the direct one, dx_through_mean and dx_through_var."),
        ((1, 2), "dx misses the direct path (dx_hat * inv_std): dx is the sum of three paths, "
                 "the direct one, dx_through_mean and dx_through_var.")]),
}


def _path_dropped(g, dout, cache) -> list:
    """In the carried-forward run, M17's spellings built on the student's own callees (a path
    left out of the sum, :data:`_DROPPED`), so that a path the caller drops is named in the
    caller even when a callee has a mistake of its own; none in the first run."""
    if not g.carrying or g.name not in _DROPPED:
        return []
    paths_of, spellings = _DROPPED[g.name]
    paths = functools.cache(functools.partial(paths_of, g.uses, np.asarray(dout, np.float64),
                                              _as64(cache)))  # the callees run once

    def kept(ks: tuple[int, ...]):
        try:
            return sum(np.asarray(paths()[k]) for k in ks)
        except Exception:  # noqa: BLE001 - a callee that fails here already failed the part
            return np.empty((0, 0))

    return [(lambda ks=ks: kept(ks), text) for ks, text in spellings]


def _compare_backward(g, fn, dout, cache, *, dx_mistakes=True):
    """Compare the three gradients with the reference (or, carrying forward, the reference
    composed with the student's stages: :func:`_reference`); name the mistake if one matches."""
    dx, dgamma, dbeta = _call_backward(g, fn, dout, cache)
    N = dout.shape[0]
    scale = _scale(dout, cache)
    rtol, atol, atol_sum = _tols(dout.dtype, N, scale)
    e_dx, e_dg, e_db = _reference(g)(dout.astype(np.float64), _as64(cache))
    g.compare("dbeta", dbeta, e_db, rtol=rtol, atol=atol_sum, mistakes=_m15(dbeta, "dbeta", dout.shape))
    g.compare("dgamma", dgamma, e_dg, rtol=rtol, atol=atol_sum,
              mistakes=_dgamma_mistakes(dgamma, [dout.shape], dout, cache))
    g.compare("dx", dx, e_dx, rtol=rtol, atol=atol,
              mistakes=_dx_mistakes(dx, dout, cache, dropped=_path_dropped(g, dout, cache))
              if dx_mistakes else None)


def _backward_parts(g, fn, seed: int):
    """The parts shared by batchnorm_backward and batchnorm_backward_alt."""
    with g.part("returns dx (N, D), dgamma (D,), dbeta (D,) on a 4x3 example", weight=1):
        *_, dout, cache = _bn_case(seed, 4, 3)
        got = _call_backward(g, fn, dout, cache)
        expected = [np.asarray(e) for e in _reference(g)(dout, cache)]
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


# --------------------------------------------------------------------------- the backward passes
@hidden_check("batchnorm_backward", points=2,
              uses=("scale_shift_backward", "normalize_backward", "batch_stats_backward"),
              composed=_backward_composed)
def check_batchnorm_backward(g, fn):
    """dx, dgamma, dbeta against the reference; any correct route (staged or closed) passes.
    A mistake of a stage it calls is charged in that stage (error carried forward)."""
    _backward_parts(g, fn, seed=310)
    with g.part("dout and the cache are left unmodified (N=6, D=3)", weight=1):
        *_, dout, cache = _bn_case(316, 6, 3)
        _call_backward(g, fn, dout, cache)


@hidden_check("batchnorm_backward_alt", points=2, uses=("dx_through_mean", "dx_through_var"),
              composed=_alt_composed)
def check_batchnorm_backward_alt(g, fn):
    """The closed form: same answers as the staged graph. Written with the path functions
    instead, a mistake of theirs is charged there (error carried forward)."""
    _backward_parts(g, fn, seed=320)


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
