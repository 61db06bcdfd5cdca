"""Hidden checks for assignment 05, beyond BatchNorm: LayerNorm and GroupNorm.

Each check calls the student's function with plain inputs (ndarrays, scalars, dicts) on seeded
data, compares the plain numbers it returns with ``autograder.reference`` (PyTorch
``nn.LayerNorm`` / ``nn.GroupNorm`` semantics) and, when they are wrong, with what each known
mistake would give (``MISCONCEPTIONS.md``): M22 LayerNorm statistics over the batch axis, M23
LayerNorm that differs between train and test mode, M24 groups formed wrongly, M25 a per-group
affine, M26 GroupNorm statistics that include the batch axis, and the earlier M1 (ddof=1), M3
(eps), M10 (inputs changed), M15 (dgamma not summed), M16 (BatchNorm's 1/N kept in a backward
pass derived from it), M17 (a path of dx dropped). The Batch
Renorm checks live in :mod:`autograder.checks.batchrenorm`.

The backward checks hand the student a cache made by the reference forward pass, with the keys
the notebook's cache tables list. Tolerances are those of the BatchNorm checks: float64 rtol
1e-7 (correct implementations differ by a few ulps times the conditioning, < 1e3 here), float32
rtol 1e-4; every mistake changes the values by far more.
"""

from __future__ import annotations

import copy

import numpy as np

from autograder import reference as ref
from autograder.checks.batchnorm_backward import _call_backward
from autograder.checks.framework import (
    DIAGNOSIS,
    Failure,
    StudentError,
    copy_param,
    hidden_check,
    quiet,
    require_unchanged,
    rng,
    unpack,
)
from autograder.reference import beyond as ref_beyond

__all__ = [
    "check_layernorm_forward",
    "check_layernorm_backward",
    "check_spatial_groupnorm_forward",
    "check_spatial_groupnorm_backward",
]

RTOL64, ATOL64 = 1e-7, 1e-10
RTOL32, ATOL32 = 1e-4, 1e-5

EXPLAIN = {
    "M1": "you divide by D - 1 (or C/G*H*W - 1): np.var(..., ddof=1). These layers normalize "
          "with the biased variance, dividing by the number of values averaged.",
    "M3": "eps is missing or outside the square root. It belongs inside: sqrt(var + eps); "
          "that matters whenever var is comparable to eps.",
    "M10": "your function changed an input array in place. Work on new arrays: the caller's "
           "x, gamma, beta and dout must be left as they were.",
    "M15": "{name} is not summed over the batch. gamma and beta are shared by every sample (and "
           "pixel), so their gradients are sums over all of them: {name} has shape {shape}.",
    "M16": "dx divides its two sums by the wrong count, the batch size N or all of a sample's "
           "values, as BatchNorm's closed form does. Here the sums run over the values that share "
           "one mean and one variance, and they are averaged over those: D features of a row "
           "in LayerNorm, M = (C/G)*H*W values of a group in GroupNorm.",
    "M17": "dx misses a path: x_hat depends on x through the mean and through the variance of "
           "its row (or group), and each adds a term. Without the mean's term dx does not sum "
           "to 0 over the row; without the variance's, it is not orthogonal to x_hat.",
    "M22": "the statistics are taken over the batch axis (axis=0): that is BatchNorm. LayerNorm "
           "normalizes each sample over its own D features: mean and var over axis=1, one per "
           "row, so that a sample's output never depends on the other samples.",
    "M23": "LayerNorm computes the same thing in train and test mode: each sample's own "
           "statistics, no running averages. Your output changed with ln_param['mode'] (or "
           "your function stored statistics in ln_param).",
    "M24": "the groups mix the wrong channels. Group k holds the C/G consecutive channels "
           "k*C/G ... (k+1)*C/G - 1: x.reshape(N, G, C // G, H, W) (or (N, G, -1)) on x as it is. "
           "Moving the channels last before reshaping, or taking channel c into group c % G, "
           "forms other groups than PyTorch's GroupNorm.",
    "M25": "gamma and beta are applied per group. They are per channel, shape (C,): every "
           "channel of a group has its own scale and shift, applied after the group is "
           "normalized, as gamma.reshape(1, C, 1, 1).",
    "M26": "the statistics include the batch axis: one mean per group over all N samples. "
           "GroupNorm takes them per sample and group, over (C/G, H, W) only, so that a "
           "sample's output never depends on the other samples.",
}


def _diag(key: str, **fields) -> str:
    return f"{DIAGNOSIS} {key}: {EXPLAIN[key].format(**fields)}"


def _mistakes(**values) -> dict:
    """``mistakes=`` for ``Grader.compare``: id (or id_variant) -> (value, explanation)."""
    return {k.split("_")[0]: (v, EXPLAIN[k.split("_")[0]]) for k, v in values.items()}


def _closest(got, **candidates):
    """One candidate per id: the spelling nearest to ``got`` (so one id covers several)."""
    def dist(v):
        v = np.asarray(v)
        if v.shape != np.shape(got):
            return np.inf
        return float(np.nanmax(np.abs(np.asarray(got, np.float64) - v))) if v.size else 0.0

    out = {}
    for key, spellings in candidates.items():
        values = [quiet(s) for s in spellings]
        out[key] = min(values, key=dist)
    return out


def _call_forward(g, fn, arrays: dict, *extra, param: dict):
    """Call ``fn(*arrays.values(), *extra, param)`` on copies; fail with M10 if an array
    changed; return (out, the dict the student received, after the call)."""
    copies = [a.copy() for a in arrays.values()]
    p = copy_param(param)
    out, _cache = unpack(g.call(fn, *copies, *extra, p), 2, "out, cache")
    for (name, before), after in zip(arrays.items(), copies, strict=True):
        require_unchanged(name, before, after, EXPLAIN["M10"])
    return out, p


def _dtype(value, dtype) -> None:
    if getattr(value, "dtype", None) != dtype:
        raise Failure(f"out: dtype {getattr(value, 'dtype', None)}, expected {np.dtype(dtype)} "
                      "(the dtype of x: float32 in, float32 out)")


def _normalized(v, axis, eps, *, ddof=0, eps_mode="inside"):
    """(v - mean) / sqrt(var + eps) over ``axis`` with one mistake switched on, float64."""
    v = np.asarray(v, np.float64)
    mu = v.mean(axis=axis, keepdims=True)
    var = v.var(axis=axis, ddof=ddof, keepdims=True)
    den = {"inside": np.sqrt(var + eps), "missing": np.sqrt(var),
           "outside": np.sqrt(var) + eps}[eps_mode]
    return (v - mu) / den


def _formula_mistakes(make) -> dict:
    """M1 and M3 (two spellings) for a layer whose x_hat ``make(**kw)`` builds."""
    return {"M1": [lambda: make(ddof=1)],
            "M3": [lambda: make(eps_mode="missing"), lambda: make(eps_mode="outside")]}


# ============================================================================= LayerNorm
def _ln_case(seed, N, D, dtype=np.float64, offset=0.0):
    r = rng(seed)
    x = offset + r.uniform(0.5, 3.0, (N, 1)) * r.normal(size=(N, D))
    x[0] *= 1e-3  # a row with variance ~1e-6 < eps: M3 shows there
    gamma = r.uniform(0.5, 2.0, D) * r.choice([-1.0, 1.0], D)
    beta = r.normal(size=D)
    dout = r.normal(size=(N, D))
    return tuple(a.astype(dtype) for a in (x, gamma, beta, dout))


def _ln_out(x, gamma, beta, eps=1e-5, axis=1, **kw):
    return gamma * _normalized(x, axis, eps, **kw) + beta


def _ln_compare(g, fn, x, gamma, beta, param, rtol=RTOL64, atol=ATOL64):
    out, after = _call_forward(g, fn, {"x": x, "gamma": gamma, "beta": beta}, param=param)
    exp = ref.layernorm_forward(x.astype(np.float64), gamma, beta, copy_param(param))[0]
    wrong = _closest(out, M22=[lambda: _ln_out(x, gamma, beta, axis=0)],
                     **_formula_mistakes(lambda **kw: _ln_out(x, gamma, beta, **kw)))
    g.compare("out", out, exp, rtol=rtol, atol=atol, mistakes=_mistakes(**wrong))
    return out, after


@hidden_check("layernorm_forward", points=3)
def check_layernorm_forward(g, fn):
    """Per-sample statistics over D, biased variance, eps inside the root; no train/test gap."""
    x, gamma, beta, _ = _ln_case(500, 6, 5, offset=2.0)
    with g.part("output on a 6x5 batch: each row normalized over its 5 features", weight=2):
        _ln_compare(g, fn, x, gamma, beta, {"mode": "train"})
    with g.part("the same output in test mode, and nothing stored in ln_param", weight=1):
        out_test, after = _call_forward(g, fn, {"x": x, "gamma": gamma, "beta": beta},
                                        param={"mode": "test"})
        exp = ref.layernorm_forward(x, gamma, beta, {})[0]
        try:
            g.compare("test-mode out", out_test, exp, rtol=RTOL64, atol=ATOL64)
        except Failure as exc:
            out_train, _ = _call_forward(g, fn, {"x": x, "gamma": gamma, "beta": beta},
                                         param={"mode": "train"})
            if np.shape(out_train) == exp.shape and np.allclose(out_train, exp, RTOL64, ATOL64):
                raise Failure(f"{exc}\n      {_diag('M23')}") from None
            raise
        if set(after) - {"mode", "eps"}:
            raise Failure(f"ln_param gained the keys {sorted(set(after) - {'mode', 'eps'})}."
                          f"\n      yours:    {sorted(after)}\n      expected: ['mode']"
                          f"\n      {_diag('M23')}")
    with g.part("N = 1 (one sample) and D = 1 (out = beta)", weight=0.5):
        _ln_compare(g, fn, x[1:2], gamma, beta, {})
        _ln_compare(g, fn, x[:, :1], gamma[:1], beta[:1], {"mode": "train"})
    with g.part("float32 in, float32 out; eps from ln_param (0.1)", weight=0.5):
        x32, g32, b32, _ = _ln_case(501, 7, 4, dtype=np.float32)
        out, _ = _ln_compare(g, fn, x32, g32, b32, {"eps": 0.1}, RTOL32, ATOL32)
        _dtype(out, np.float32)
    with g.part("x, gamma and beta are left unchanged; ValueError for a (D + 1,) gamma",
                weight=0.5):
        _ln_compare(g, fn, x, gamma, beta, {"mode": "train"})
        g.expect_raises(ValueError, fn, x.copy(), np.ones(6), beta.copy(), {},
                        what="gamma of shape (6,) for D = 5")


def _ln_dx(dout, cache, *, axis=1, mean_path=True, var_path=True, count=None):
    """dx of LayerNorm from the cache, with a mistake switched on (float64); ``count``: the
    number the row sums are divided by (D when right; M16 keeps BatchNorm's N)."""
    x_hat = np.asarray(cache["x_hat"], np.float64)
    gdx = np.asarray(dout, np.float64) * cache["gamma"]
    inv_std = np.asarray(cache["inv_std"], np.float64)[:, None]
    if axis == 0:  # BatchNorm's backward on LayerNorm's cache
        return ref_beyond._centered_backward(gdx, x_hat, inv_std, axis=0)
    count = x_hat.shape[1] if count is None else count
    dx = gdx.copy()
    if mean_path:
        dx -= gdx.sum(axis=1, keepdims=True) / count
    if var_path:
        dx -= x_hat * (gdx * x_hat).sum(axis=1, keepdims=True) / count
    return inv_std * dx


def _m15(got, name, shape, *not_summed):
    """M15 for a gradient whose shape is one of ``not_summed`` (the shape is the symptom)."""
    return {"M15": (lambda: got if np.shape(got) in not_summed else np.empty((0,)),
                    EXPLAIN["M15"].format(name=name, shape=shape))}


def _backward_compare(g, fn, dout, cache, expected, dx_mistakes, sum_shapes, extra=None,
                      explain=EXPLAIN):
    """Compare (dx, dgamma, dbeta) with ``expected``; ``dx_mistakes``: id -> spellings of dx
    (texts from ``explain``); ``extra(name, got)`` adds mistakes for dgamma and dbeta."""
    dx, dgamma, dbeta = _call_backward(g, fn, dout, cache)
    f32 = dout.dtype == np.float32
    scale = float(np.max(np.abs(expected[0]))) or 1.0
    rtol, atol = (RTOL32, 2e-3 * scale) if f32 else (RTOL64, 1e-9 * scale)
    shape = expected[1].shape
    for name, got, exp in (("dbeta", dbeta, expected[2]), ("dgamma", dgamma, expected[1])):
        mistakes = {**_m15(got, name, shape, *sum_shapes), **(extra(name, got) if extra else {})}
        g.compare(name, got, exp, rtol=rtol, atol=atol * dout.shape[0], mistakes=mistakes)
    g.compare("dx", dx, expected[0], rtol=rtol, atol=atol,
              mistakes={k: (v, explain[k]) for k, v in _closest(dx, **dx_mistakes).items()})


def _ln_backward_parts(g, fn, dout, cache):
    expected = ref.layernorm_backward(dout.astype(np.float64), _as64(cache))
    dx_mistakes = {"M22": [lambda: _ln_dx(dout, cache, axis=0)],
                   "M17": [lambda: _ln_dx(dout, cache, mean_path=False),
                           lambda: _ln_dx(dout, cache, var_path=False),
                           lambda: _ln_dx(dout, cache, mean_path=False, var_path=False)],
                   "M16": [lambda: _ln_dx(dout, cache, count=dout.shape[0])]}
    _backward_compare(g, fn, dout, cache, expected, dx_mistakes, [dout.shape])


def _as64(cache):
    return {k: (v.astype(np.float64) if isinstance(v, np.ndarray) else v) for k, v in cache.items()}


@hidden_check("layernorm_backward", points=3)
def check_layernorm_backward(g, fn):
    """dx with the sums along each row; dgamma and dbeta summed over the batch."""
    def case(seed, N, D, dtype=np.float64):
        x, gamma, beta, dout = _ln_case(seed, N, D, dtype, offset=1.0)
        x[0] /= 1e-3  # a well-conditioned first row for the gradient
        return dout, ref.layernorm_forward(x, gamma, beta, {})[1]

    with g.part("dx (N, D), dgamma and dbeta (D,) on a 7x5 example, random dout", weight=2):
        _ln_backward_parts(g, fn, *case(510, 7, 5))
    with g.part("N = 2, D = 3", weight=0.5):
        _ln_backward_parts(g, fn, *case(511, 2, 3))
    with g.part("float32, N = 64, D = 8", weight=0.5):
        _ln_backward_parts(g, fn, *case(512, 64, 8, np.float32))
    with g.part("dout and the cache are left unchanged (the values are checked too)", weight=0.5):
        _ln_backward_parts(g, fn, *case(513, 4, 6))


# ============================================================================= GroupNorm
def _gn_case(seed, shape, dtype=np.float64, offset=0.0):
    r = rng(seed)
    C = shape[1]
    x = offset + r.uniform(0.5, 4.0, (1, C, 1, 1)) * r.normal(size=shape)
    x[:, 0] = x[:, 0] * 1e-3 + offset  # a group with variance < eps: M3 shows there
    gamma = r.uniform(0.5, 2.0, C) * r.choice([-1.0, 1.0], C)
    beta = r.normal(size=C)
    dout = r.normal(size=shape)
    return tuple(a.astype(dtype) for a in (x, gamma, beta, dout))


def _regroup(kind, N, C, H, W, G):
    """(to, back): the student's grouped view (N, G, M) of an NCHW array and its inverse."""
    if kind == "channels_last":
        return (lambda v: v.transpose(0, 2, 3, 1).reshape(N, G, -1),
                lambda v: v.reshape(N, H, W, C).transpose(0, 3, 1, 2))
    if kind == "strided":  # channel c in group c % G
        perm = np.argsort(np.arange(C) % G, kind="stable")
        inv = np.argsort(perm)
        return (lambda v: v[:, perm].reshape(N, G, -1),
                lambda v: v.reshape(N, C, H, W)[:, inv])
    return lambda v: v.reshape(N, G, -1), lambda v: v.reshape(N, C, H, W)


def _gn_out(x, gamma, beta, G, eps=1e-5, *, grouping="consecutive", batch=False,
            per_group=None, **kw):
    """GroupNorm output with one mistake switched on, float64."""
    N, C, H, W = x.shape
    to, back = _regroup(grouping, N, C, H, W, G)
    x_hat = back(_normalized(to(x), (0, 2) if batch else 2, eps, **kw))
    if per_group is not None:  # one gamma per group, broadcast over its channels
        pick = {"first": lambda v: v[:G], "head": lambda v: v[::C // G],
                "mean": lambda v: v.reshape(G, -1).mean(axis=1)}[per_group]
        gamma, beta = np.repeat(pick(gamma), C // G), np.repeat(pick(beta), C // G)
    return gamma[:, None, None] * x_hat + beta[:, None, None]


def _gn_compare(g, fn, x, gamma, beta, G, param, rtol=RTOL64, atol=ATOL64):
    arrays = {"x": x, "gamma": gamma, "beta": beta}
    try:
        out, _ = _call_forward(g, fn, arrays, G, param=param)
    except StudentError as err:  # M25: it works only with a gamma of shape (G,)
        try:
            _call_forward(g, fn, {"x": x, "gamma": gamma[:G], "beta": beta[:G]}, G, param=param)
        except (StudentError, Failure):
            raise err from None
        raise Failure(f"{g._describe_student_error(err)}\n      yours:    works with gamma and "
                      f"beta of shape ({G},), one per group\n      expected: gamma and beta of "
                      f"shape ({x.shape[1]},), one per channel\n      {_diag('M25')}") from None
    exp = ref.spatial_groupnorm_forward(x.astype(np.float64), gamma, beta, G, copy_param(param))[0]

    def w(**kw):
        return _gn_out(x, gamma, beta, G, param.get("eps", 1e-5), **kw)

    wrong = _closest(out, M24=[lambda: w(grouping="channels_last"), lambda: w(grouping="strided")],
                     M25=[lambda k=k: w(per_group=k) for k in ("first", "head", "mean")],
                     M26=[lambda: w(batch=True)], **_formula_mistakes(w))
    g.compare("out", out, exp, rtol=rtol, atol=atol, mistakes=_mistakes(**wrong))
    return out


@hidden_check("spatial_groupnorm_forward", points=4)
def check_spatial_groupnorm_forward(g, fn):
    """G groups of C/G consecutive channels, statistics per sample and group, affine per channel."""
    x, gamma, beta, _ = _gn_case(520, (3, 6, 2, 3), offset=1.0)
    with g.part("output on a (3, 6, 2, 3) batch with G = 3 groups of 2 channels", weight=2):
        _gn_compare(g, fn, x, gamma, beta, 3, {})
    with g.part("G = 2 on a (2, 8, 3, 2) batch, and G = 1 (LayerNorm over C, H, W)", weight=1):
        x8, g8, b8, _ = _gn_case(521, (2, 8, 3, 2), offset=-2.0)
        _gn_compare(g, fn, x8, g8, b8, 2, {"eps": 1e-5})
        _gn_compare(g, fn, x8, g8, b8, 1, {})
    with g.part("G = C (InstanceNorm) and a single image (N = 1)", weight=0.5):
        _gn_compare(g, fn, x, gamma, beta, 6, {})
        _gn_compare(g, fn, x[1:2], gamma, beta, 3, {})
    with g.part("float32 in, float32 out", weight=0.5):
        x32, g32, b32, _ = _gn_case(522, (4, 4, 3, 3), dtype=np.float32)
        _dtype(_gn_compare(g, fn, x32, g32, b32, 2, {}, RTOL32, ATOL32), np.float32)
    with g.part("inputs left unchanged; ValueError when G does not divide C (G = 4, C = 6)",
                weight=1):
        _gn_compare(g, fn, x, gamma, beta, 2, {})
        g.expect_raises(ValueError, fn, x.copy(), gamma.copy(), beta.copy(), 4, {},
                        what="G = 4 with C = 6 channels")


def _gn_dx(dout, cache, *, grouping="consecutive", batch=False, mean_path=True,
           var_path=True, count=None):
    """dx of GroupNorm from the cache, with a mistake switched on (float64); ``count``: the
    number the group sums are divided by (M when right; M16: N, or C*H*W)."""
    N, C, H, W = np.shape(dout)
    G = int(cache["G"])
    to, back = _regroup(grouping, N, C, H, W, G)
    gdx = to(np.asarray(dout, np.float64) * cache["gamma"][:, None, None])
    x_hat = to(np.asarray(cache["x_hat"], np.float64))
    inv_std = np.asarray(cache["inv_std"], np.float64)[:, :, None]
    axis = (0, 2) if batch else 2
    if count is None:
        count = int(np.prod([gdx.shape[a] for a in np.atleast_1d(axis)]))
    dx = gdx.copy()
    if mean_path:
        dx -= gdx.sum(axis=axis, keepdims=True) / count
    if var_path:
        dx -= x_hat * (gdx * x_hat).sum(axis=axis, keepdims=True) / count
    return back(inv_std * dx)


def _gn_backward_parts(g, fn, dout, cache):
    N, C, H, W = dout.shape
    G = int(cache["G"])
    expected = ref.spatial_groupnorm_backward(dout.astype(np.float64), _as64(cache))
    dx_mistakes = {
        "M24": [lambda: _gn_dx(dout, cache, grouping="channels_last"),
                lambda: _gn_dx(dout, cache, grouping="strided")],
        "M26": [lambda: _gn_dx(dout, cache, batch=True)],
        "M16": [lambda: _gn_dx(dout, cache, count=N), lambda: _gn_dx(dout, cache, count=C * H * W)],
        "M17": [lambda: _gn_dx(dout, cache, mean_path=False),
                lambda: _gn_dx(dout, cache, var_path=False),
                lambda: _gn_dx(dout, cache, mean_path=False, var_path=False)]}

    def per_group(name, got):  # M25: summed per group, shape (G,)
        text = EXPLAIN["M25"] + f" Its gradient {name} then has shape (C,) too."
        return {"M25": (lambda: got if np.shape(got) in ((G,), (1, G, 1)) else np.empty((0,)),
                        text)}

    _backward_compare(g, fn, dout, cache, expected, dx_mistakes,
                      [(N, C, H, W), (N, C), (C, H, W)], extra=per_group)


@hidden_check("spatial_groupnorm_backward", points=3)
def check_spatial_groupnorm_backward(g, fn):
    """dx within each sample's group; dgamma and dbeta per channel, summed over N, H, W."""
    def case(seed, shape, G, dtype=np.float64):
        x, gamma, beta, dout = _gn_case(seed, shape, dtype, offset=3.0)
        x[:, 0] = (x[:, 0] - 3.0) * 1e3  # a well-conditioned first channel for the gradient
        return dout, ref.spatial_groupnorm_forward(x, gamma, beta, G, {})[1]

    with g.part("dx (N, C, H, W), dgamma and dbeta (C,): (3, 6, 2, 2), G = 3", weight=2):
        _gn_backward_parts(g, fn, *case(530, (3, 6, 2, 2), 3))
    with g.part("G = 2 on (2, 4, 3, 1), and G = 1", weight=0.5):
        _gn_backward_parts(g, fn, *case(531, (2, 4, 3, 1), 2))
        _gn_backward_parts(g, fn, *case(532, (2, 4, 3, 1), 1))
    with g.part("float32, (8, 4, 3, 3), G = 2", weight=0.5):
        _gn_backward_parts(g, fn, *case(533, (8, 4, 3, 3), 2, np.float32))
    with g.part("dout and the cache are left unchanged (the values are checked too)", weight=0.5):
        dout, cache = case(534, (2, 6, 2, 2), 3)
        _gn_backward_parts(g, fn, dout, copy.deepcopy(cache))

