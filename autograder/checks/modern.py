"""Hidden checks for assignment 06: RMSNorm, the residual block (pre- and post-norm), folding.

Each check calls the student's function on seeded plain inputs, compares what it returns with
:mod:`autograder.reference` (PyTorch ``nn.RMSNorm`` semantics; ``fuse_linear_bn_eval``'s fold)
and, when it is wrong, with what each known mistake would give (``MISCONCEPTIONS.md``): M33 the
mean subtracted (LayerNorm's centering), M34 statistics over the wrong axis, M35 float16 computed
in float16, M36 the pre-norm skip path taken after the norm, M37 the placements swapped, M38 the
skip connection's gradient dropped, M39 the bias not folded through the normalization, M40 the
scale folded along the wrong axis of w; and M3 (eps), M10 (inputs changed), M15 (gradients not
summed over the batch) and M17 (a path of dx dropped).

The residual block calls the student's RMSNorm (the notebook asks for it by name): its checks
declare ``uses=`` and build every expected value with ``g.uses``, so that a mistake of RMSNorm is
charged once, in RMSNorm's check (error carried forward, :mod:`autograder.checks.carried`).

Tolerances: float64 ``rtol 1e-7, atol 1e-10`` (correct implementations differ by a few ulps
times the conditioning, well below 1e3 here); float32 ``rtol 1e-4, atol 1e-5`` (sums of at most
a few dozen terms); float16 ``rtol 2e-3, atol 2e-3`` (one float16 ulp is 9.8e-4 of the value:
a float32 or float64 computation rounded to float16 may land one ulp apart). Every mistake
changes the values by far more: the inputs are chosen so that it does (a row of tiny values for
eps, rows whose mean is far from 0 for M33, N != D for the axes, values above 256 for M35).
"""

from __future__ import annotations

import copy

import numpy as np

from autograder import reference as ref
from autograder.checks.framework import (
    copy_param,
    hidden_check,
    quiet,
    require_unchanged,
    rng,
    unpack,
)

__all__ = [
    "check_rmsnorm_forward",
    "check_rmsnorm_backward",
    "check_residual_block_forward",
    "check_residual_block_backward",
    "check_fold_batchnorm",
]

TOL = {np.dtype(np.float64): (1e-7, 1e-10), np.dtype(np.float32): (1e-4, 1e-5),
       np.dtype(np.float16): (2e-3, 2e-3)}

EXPLAIN = {
    "M3": "eps is missing or outside the square root. It belongs inside: sqrt(mean(x**2) + eps) "
          "in RMSNorm, sqrt(running_var + eps) in BatchNorm; that matters whenever the mean "
          "square (or the variance) is comparable to eps.",
    "M10": "your function changed an input array in place. Work on new arrays: the caller's "
           "arrays (and norm_param) must be left as they were.",
    "M15": "{name} is not summed over the batch. The parameter is shared by every sample (and "
           "token), so its gradient is the sum over all of them: {name} has shape {shape}.",
    "M17": "dx misses the path through the root mean square: x_hat = x * r and r depends on x "
           "too, so dx has a second term besides r * g. Without it dx is not orthogonal to x "
           "when eps = 0, as it must be (RMSNorm is unchanged when a row is scaled).",
    "M33": "the mean is subtracted: that is LayerNorm. RMSNorm divides x itself by the root mean "
           "square of x, sqrt(mean(x**2) + eps), with no centering (and no beta); in the backward "
           "pass, LayerNorm's - mean(g) term has no counterpart.",
    "M34": "the statistics are taken over the wrong axis. RMSNorm normalizes each vector along "
           "the LAST axis (the D features), one root mean square per row or token: "
           "axis=-1 with keepdims, whatever the number of leading axes.",
    "M35": "float16 is computed in float16. x**2 overflows float16 (largest 65504) as soon as "
           "|x| > 255.9, the mean square becomes inf and the row's output 0. Compute in float32 "
           "(x.astype(np.float32)) and cast the output back to float16.",
    "M36": "in pre-norm the skip path carries the normalized x: out = RMSNorm(x) + f(RMSNorm(x)). "
           "The residual is x itself, added after the branch: out = x + f(RMSNorm(x)); the "
           "residual stream of a pre-norm stack is never normalized.",
    "M37": "the placements are swapped: 'pre' normalizes the branch's input, out = x + "
           "f(RMSNorm(x)); 'post' normalizes the sum, out = RMSNorm(x + f(x)).",
    "M38": "dx misses the skip connection's gradient. out = x + ... (or RMSNorm of x + ...), so the "
           "gradient reaching the sum flows to x unchanged along the skip path, besides the path "
           "through the branch: add it.",
    "M39": "the bias b is not folded through the normalization. BatchNorm sees a = x @ w + b, so "
           "it subtracts the running mean from b and scales the difference too: "
           "b_folded = (b - running_mean) * scale + beta.",
    "M40": "the scale is applied along the wrong axis of w. w has shape (D, M), the M units "
           "along axis 1; BatchNorm scales each unit, i.e. each COLUMN: w * scale (broadcast "
           "over rows), not w * scale[:, None] (torch's Linear stores the transpose).",
}


def _mistakes(**values) -> dict:
    """``mistakes=`` for ``Grader.compare``: id -> (value or callable, explanation)."""
    return {k: (v, EXPLAIN[k]) for k, v in values.items()}


def _closest(got, **candidates):
    """One value per id: of its spellings (callables), the one nearest to ``got``."""
    def dist(v):
        v = np.asarray(v)
        if v.shape != np.shape(got):
            return np.inf
        return float(np.nanmax(np.abs(np.asarray(got, np.float64) - v))) if v.size else 0.0

    out = {}
    for key, spellings in candidates.items():
        values = []
        for s in spellings:
            try:
                values.append(quiet(s))
            except Exception:  # a mistake the input cannot show (e.g. a shape that breaks)
                continue
        if values:
            out[key] = min(values, key=dist)
    return out


def _tol(dtype) -> tuple[float, float]:
    return TOL.get(np.dtype(dtype), TOL[np.dtype(np.float64)])


# ============================================================================= RMSNorm forward
def _rms_case(seed: int, shape: tuple, dtype=np.float64):
    """x with rows of different scales and means far from 0 (M33); row 0 tiny (M3)."""
    r = rng(seed)
    D = shape[-1]
    x = r.uniform(0.5, 3.0, shape[:-1] + (1,)) * r.normal(size=shape) + r.normal(2.0, 1.0, shape[:-1] + (1,))
    x.reshape(-1, D)[0] *= 1e-3  # mean square ~1e-6, comparable to eps = 1e-6
    gamma = r.uniform(0.5, 2.0, D) * r.choice([-1.0, 1.0], D)
    dout = r.normal(size=shape)
    return tuple(a.astype(dtype) for a in (x, gamma, dout))


def _rms_wrong(x, gamma, eps, *, axis=-1, center=False, std=False, eps_mode="inside"):
    """RMSNorm's output (float64) with one mistake switched on."""
    x = np.asarray(x, np.float64)
    num = x - x.mean(axis=-1, keepdims=True) if center else x
    base = x - x.mean(axis=axis, keepdims=True) if (center or std) else x
    ms = np.mean(base**2, axis=axis, keepdims=True)
    den = {"inside": np.sqrt(ms + eps), "missing": np.sqrt(ms),
           "outside": np.sqrt(ms) + eps}[eps_mode]
    return gamma * num / den


def _rms_float16(x, gamma, eps):
    """RMSNorm computed in float16 arithmetic (M35): x * x overflows above 255.9."""
    x16, g16 = np.asarray(x, np.float16), np.asarray(gamma, np.float16)
    ms = np.mean(x16 * x16, axis=-1, keepdims=True, dtype=np.float16)
    return (g16 * (x16 / np.sqrt(ms + np.float16(eps)))).astype(np.float16)


def _rms_forward_mistakes(x, gamma, eps, got) -> dict:
    axes = [0, 1] if np.ndim(x) > 2 else [0]
    wrong = _closest(
        got,
        M33=[lambda: _rms_wrong(x, gamma, eps, center=True),
             lambda: _rms_wrong(x, gamma, eps, std=True)],
        M34=[lambda a=a: _rms_wrong(x, gamma, eps, axis=a) for a in axes],
        M3=[lambda: _rms_wrong(x, gamma, eps, eps_mode="missing"),
            lambda: _rms_wrong(x, gamma, eps, eps_mode="outside")],
        M35=[lambda: _rms_float16(x, gamma, eps)] if np.asarray(x).dtype == np.float16 else [])
    return _mistakes(**wrong)


def _call_rms_forward(g, fn, x, gamma, rms_param):
    """Call ``fn`` on copies; fail with M10 if an input changed; return its output."""
    xc, gc, pc = x.copy(), gamma.copy(), dict(rms_param)
    out, _cache = unpack(g.call(fn, xc, gc, pc), 2, "out, cache")
    require_unchanged("x", x, xc, EXPLAIN["M10"])
    require_unchanged("gamma", gamma, gc, EXPLAIN["M10"])
    require_unchanged("rms_param", rms_param, pc, EXPLAIN["M10"])
    return out


def _rms_compare(g, fn, x, gamma, rms_param, *, check_dtype=False):
    out = _call_rms_forward(g, fn, x, gamma, rms_param)
    eps = rms_param.get("eps", ref.RMS_EPS)
    if x.dtype == np.float16:
        expected = ref.rmsnorm_forward(x, gamma, dict(rms_param))[0]
    else:
        expected = ref.rmsnorm_forward(x.astype(np.float64), gamma, dict(rms_param))[0]
    rtol, atol = _tol(x.dtype)
    g.compare("out", out, expected.astype(x.dtype) if check_dtype else expected, rtol=rtol,
              atol=atol, check_dtype=check_dtype,
              mistakes=_rms_forward_mistakes(x, gamma, eps, out))
    return out


@hidden_check("rmsnorm_forward", points=4)
def check_rmsnorm_forward(g, fn):
    """No mean, the last axis, eps inside the root, any leading axes, float16 in float32."""
    x, gamma, _ = _rms_case(600, (6, 5))
    with g.part("output on a 6x5 batch: each row divided by its root mean square", weight=2):
        _rms_compare(g, fn, x, gamma, {})
    with g.part("a batch of sequences (N, T, D) = (2, 3, 4): one RMS per token", weight=1):
        x3, g3, _ = _rms_case(601, (2, 3, 4))
        _rms_compare(g, fn, x3, g3, {"eps": 1e-6})
    with g.part("float16 with values up to 400 (x**2 > 65504): computed in float32, float16 out",
                weight=0.5):
        r = rng(602)
        x16 = (r.normal(size=(4, 6)) * np.array([[300.0], [1.0], [50.0], [120.0]])).astype(np.float16)
        g16 = r.uniform(0.5, 2.0, 6).astype(np.float16)
        _rms_compare(g, fn, x16, g16, {}, check_dtype=True)
    with g.part("float32 in, float32 out; eps from rms_param (0.1)", weight=0.25):
        x32, g32, _ = _rms_case(603, (7, 3), np.float32)
        _rms_compare(g, fn, x32, g32, {"eps": 0.1}, check_dtype=True)
    with g.part("x, gamma and rms_param left unchanged; ValueError for a (D + 1,) gamma",
                weight=0.25):
        _rms_compare(g, fn, x, gamma, {"eps": 1e-6})
        g.expect_raises(ValueError, fn, x.copy(), np.ones(6), {}, what="gamma of shape (6,) for D = 5")


# ============================================================================= RMSNorm backward
def _rms_dx(dout, cache, *, mean_term=False, rms_path=True, axis=-1):
    """dx of RMSNorm from the cache (float64), with one mistake switched on."""
    x_hat = np.asarray(cache["x_hat"], np.float64)
    g = np.asarray(dout, np.float64) * np.asarray(cache["gamma"], np.float64)
    inv = np.asarray(cache["inv_rms"], np.float64)[..., None]
    dx = g.copy()
    if mean_term:
        dx -= g.mean(axis=-1, keepdims=True)
    if rms_path:
        dx -= x_hat * (g * x_hat).mean(axis=axis, keepdims=True)
    return inv * dx


def _as64(cache):
    return {k: (v.astype(np.float64) if isinstance(v, np.ndarray) else v) for k, v in cache.items()}


def _m15(got, name, shape, *not_summed):
    """M15 for a gradient whose shape is one of ``not_summed`` (the shape is the symptom)."""
    return {"M15": (lambda: got if np.shape(got) in not_summed else np.empty((0,)),
                    EXPLAIN["M15"].format(name=name, shape=shape))}


def _call_backward(g, fn, dout, cache, n: int, names: str):
    """Call ``fn`` on deep copies; fail with M10 if dout or the cache changed."""
    d_copy, c_copy = dout.copy(), copy.deepcopy(cache)
    result = unpack(g.call(fn, d_copy, c_copy), n, names)
    require_unchanged("dout", dout, d_copy, EXPLAIN["M10"])
    for k, v in cache.items():
        if isinstance(v, (np.ndarray, dict)):
            require_unchanged(f"cache[{k!r}]", v, c_copy.get(k), EXPLAIN["M10"])
    return result


def _rms_backward_parts(g, fn, dout, cache):
    dx, dgamma = _call_backward(g, fn, dout, cache, 2, "dx, dgamma")
    e_dx, e_dg = ref.rmsnorm_backward(dout.astype(np.float64), _as64(cache))
    rtol, atol = _tol(dout.dtype)
    scale = float(np.max(np.abs(e_dx))) or 1.0
    rows = int(np.prod(dout.shape[:-1]))
    lead = [dout.shape, dout.shape[1:]] if dout.ndim > 2 else [dout.shape]
    g.compare("dgamma", dgamma, e_dg, rtol=rtol, atol=atol * rows,
              mistakes=_m15(dgamma, "dgamma", e_dg.shape, *lead))
    axes = [0, 1] if dout.ndim > 2 else [0]
    wrong = _closest(dx, M33=[lambda: _rms_dx(dout, cache, mean_term=True)],
                     M17=[lambda: _rms_dx(dout, cache, rms_path=False)],
                     M34=[lambda a=a: _rms_dx(dout, cache, axis=a) for a in axes])
    g.compare("dx", dx, e_dx, rtol=rtol, atol=atol * scale, mistakes=_mistakes(**wrong))


def _rms_backward_case(seed, shape, dtype=np.float64):
    x, gamma, dout = _rms_case(seed, shape, dtype)
    x.reshape(-1, shape[-1])[0] *= 1e3  # a well-conditioned first row for the gradient
    return dout, ref.rmsnorm_forward(x, gamma, {})[1]


@hidden_check("rmsnorm_backward", points=3)
def check_rmsnorm_backward(g, fn):
    """dx: LayerNorm's closed form without the mean's term; dgamma summed over every row."""
    with g.part("dx (N, D) and dgamma (D,) on a 7x5 example, random dout", weight=2):
        _rms_backward_parts(g, fn, *_rms_backward_case(610, (7, 5)))
    with g.part("a batch of sequences (N, T, D) = (2, 3, 4): dgamma summed over N and T",
                weight=0.5):
        _rms_backward_parts(g, fn, *_rms_backward_case(611, (2, 3, 4)))
    with g.part("float32, N = 64, D = 8", weight=0.25):
        _rms_backward_parts(g, fn, *_rms_backward_case(612, (64, 8), np.float32))
    with g.part("dout and the cache left unchanged (the values are checked too)", weight=0.25):
        _rms_backward_parts(g, fn, *_rms_backward_case(613, (4, 6)))


# ============================================================================= residual block
def _block_case(seed, N=6, D=4, H=5, dtype=np.float64):
    """x with a mean and scale far from 0 and 1 (every placement differs), weights, gamma."""
    r = rng(seed)
    x = 1.5 + 2.0 * r.normal(size=(N, D))
    w1, b1 = r.normal(size=(D, H)) / np.sqrt(D), 0.3 * r.normal(size=H)
    w2, b2 = r.normal(size=(H, D)) / np.sqrt(H), 0.3 * r.normal(size=D)
    gamma = r.uniform(0.5, 2.0, D)
    dout = r.normal(size=(N, D))
    cast = (lambda a: a.astype(dtype))
    return tuple(map(cast, (x, w1, b1, w2, b2))), {"gamma": cast(gamma), "eps": 1e-6}, cast(dout)


def _norm(uses, v, gamma, eps):
    """RMSNorm of ``v`` by ``uses.rmsnorm_forward`` (the reference, or the student's own)."""
    out, _ = unpack(uses.rmsnorm_forward(np.array(v), np.array(gamma), {"eps": eps}), 2,
                    "out, cache")
    return np.asarray(out, dtype=np.float64)


def _block_composed(uses, x, w1, b1, w2, b2, norm_param, placement, *, skip_normalized=False):
    """The block's output (float64) built on ``uses.rmsnorm_forward``, as the solution builds
    it; ``skip_normalized`` is M36 (the skip path carries RMSNorm(x))."""
    x, w1, b1, w2, b2 = (np.asarray(a, np.float64) for a in (x, w1, b1, w2, b2))
    gamma, eps = norm_param["gamma"], norm_param.get("eps", ref.RMS_EPS)
    z = _norm(uses, x, gamma, eps) if placement == "pre" else x
    f = np.maximum(z @ w1 + b1, 0) @ w2 + b2
    if placement == "pre":
        return (z if skip_normalized else x) + f
    return _norm(uses, x + f, gamma, eps)


def _call_block_forward(g, fn, arrays, norm_param, placement):
    copies = [a.copy() for a in arrays]
    p = copy_param(norm_param)
    out, _ = unpack(g.call(fn, *copies, p, placement), 2, "out, cache")
    for name, before, after in zip(("x", "w1", "b1", "w2", "b2"), arrays, copies, strict=True):
        require_unchanged(name, before, after, EXPLAIN["M10"])
    require_unchanged("norm_param", norm_param, p, EXPLAIN["M10"])
    return out


def _block_compare(g, fn, arrays, norm_param, placement, *, check_dtype=False):
    out = _call_block_forward(g, fn, arrays, norm_param, placement)
    other = "post" if placement == "pre" else "pre"
    expected = _block_composed(g.uses, *arrays, norm_param, placement)
    spellings = {"M37": [lambda: _block_composed(g.uses, *arrays, norm_param, other)]}
    if placement == "pre":
        spellings["M36"] = [lambda: _block_composed(g.uses, *arrays, norm_param, "pre",
                                                    skip_normalized=True)]
    dtype = arrays[0].dtype
    rtol, atol = _tol(dtype)
    g.compare("out", out, expected.astype(dtype) if check_dtype else expected, rtol=rtol,
              atol=atol, check_dtype=check_dtype, mistakes=_mistakes(**_closest(out, **spellings)))


@hidden_check("residual_block_forward", points=3, uses=("rmsnorm_forward",))
def check_residual_block_forward(g, fn):
    """x + f(RMSNorm(x)) and RMSNorm(x + f(x)), on the student's own RMSNorm when it has a mistake."""
    arrays, norm_param, _ = _block_case(620)
    with g.part("pre-norm on a 6x4 batch, branch width 5: out = x + f(RMSNorm(x))", weight=1.25):
        _block_compare(g, fn, arrays, norm_param, "pre")
    with g.part("post-norm on the same batch: out = RMSNorm(x + f(x))", weight=1.25):
        _block_compare(g, fn, arrays, norm_param, "post")
    with g.part("float32 in, float32 out, both placements; eps from norm_param", weight=0.25):
        a32, p32, _ = _block_case(621, N=5, D=3, H=4, dtype=np.float32)
        p32["eps"] = 1e-3
        _block_compare(g, fn, a32, p32, "pre", check_dtype=True)
        _block_compare(g, fn, a32, p32, "post", check_dtype=True)
    with g.part("inputs left unchanged; ValueError for placement 'middle' and for a w2 of the "
                "wrong shape", weight=0.25):
        _block_compare(g, fn, arrays, norm_param, "pre")
        x, w1, b1, w2, b2 = arrays
        g.expect_raises(ValueError, fn, x.copy(), w1.copy(), b1.copy(), w2.copy(), b2.copy(),
                        copy_param(norm_param), "middle", what="placement 'middle'")
        g.expect_raises(ValueError, fn, x.copy(), w1.copy(), b1.copy(), w2[:, :-1].copy(),
                        b2.copy(), copy_param(norm_param), "pre",
                        what=f"w2 of shape {w2[:, :-1].shape} for H = {w1.shape[1]}, D = {x.shape[1]}")


def _norm_backward(uses, dout, norm_cache):
    dx, dgamma = unpack(uses.rmsnorm_backward(np.array(dout), copy.deepcopy(norm_cache)), 2,
                        "dx, dgamma")
    return np.asarray(dx, np.float64), np.asarray(dgamma, np.float64)


def _block_grads(uses, dout, cache, *, placement=None, skip=True, skip_normalized=False):
    """(dx, dw1, db1, dw2, db2, dgamma) in float64 on ``uses.rmsnorm_backward``, with one
    mistake switched on: ``placement`` other than the cache's (M37), ``skip=False`` (M38),
    ``skip_normalized`` (M36, pre-norm only)."""
    placement = placement or cache["placement"]
    a, h, z, w1, w2 = (np.asarray(cache[k], np.float64) for k in ("a", "h", "z", "w1", "w2"))
    dout = np.asarray(dout, np.float64)
    if placement == "post":
        ds, dgamma = _norm_backward(uses, dout, cache["norm_cache"])
    else:
        ds = dout
    dh = (ds @ w2.T) * (h > 0)
    dz = dh @ w1.T
    if placement == "pre":
        dx_norm, dgamma = _norm_backward(uses, dz + ds if skip_normalized else dz,
                                         cache["norm_cache"])
        dx = dx_norm if skip_normalized else (ds + dx_norm if skip else dx_norm)
    else:
        dx = ds + dz if skip else dz
    return dx, z.T @ dh, dh.sum(axis=0), a.T @ ds, ds.sum(axis=0), dgamma


_BLOCK_GRADS = ("dx", "dw1", "db1", "dw2", "db2", "dgamma")


def _block_backward_parts(g, fn, dout, cache):
    got = _call_backward(g, fn, dout, cache, 6, ", ".join(_BLOCK_GRADS))
    expected = _block_grads(g.uses, dout, cache)
    other = "post" if cache["placement"] == "pre" else "pre"
    wrong = {"M38": lambda: _block_grads(g.uses, dout, cache, skip=False),
             "M37": lambda: _block_grads(g.uses, dout, cache, placement=other)}
    if cache["placement"] == "pre":
        wrong["M36"] = lambda: _block_grads(g.uses, dout, cache, skip_normalized=True)
    values = {}
    for key, make in wrong.items():
        try:
            values[key] = quiet(make)
        except Exception:  # the student's callee cannot run on this input
            continue
    rtol, atol = _tol(dout.dtype)
    N = dout.shape[0]
    order = (5, 2, 4, 1, 3, 0)  # the parameters first, dx last: a skip mistake shows in dx only
    for i in order:
        name, exp = _BLOCK_GRADS[i], expected[i]
        mistakes = {k: (v[i], EXPLAIN[k]) for k, v in values.items()
                    if not np.allclose(v[i], exp, rtol=rtol, atol=atol)}
        if name in ("db1", "db2", "dgamma"):
            mistakes.update(_m15(got[i], name, exp.shape, (N,) + exp.shape))
        scale = float(np.max(np.abs(exp), initial=0.0)) or 1.0
        g.compare(name, got[i], exp, rtol=rtol, atol=atol * scale * (N if i in (1, 2, 3, 4, 5) else 1),
                  mistakes=mistakes)


def _block_backward_case(seed, placement, dtype=np.float64, **kw):
    arrays, norm_param, dout = _block_case(seed, dtype=dtype, **kw)
    return dout, ref.residual_block_forward(*arrays, norm_param, placement)[1]


@hidden_check("residual_block_backward", points=4, uses=("rmsnorm_backward",))
def check_residual_block_backward(g, fn):
    """The six gradients, both placements, on the student's own RMSNorm backward when it errs."""
    with g.part("pre-norm: dx, dw1, db1, dw2, db2, dgamma on a 6x4 batch, branch width 5",
                weight=1.5):
        _block_backward_parts(g, fn, *_block_backward_case(630, "pre"))
    with g.part("post-norm: the six gradients on a 6x4 batch", weight=1.5):
        _block_backward_parts(g, fn, *_block_backward_case(631, "post"))
    with g.part("float32, both placements", weight=0.5):
        _block_backward_parts(g, fn, *_block_backward_case(632, "pre", np.float32, N=16))
        _block_backward_parts(g, fn, *_block_backward_case(633, "post", np.float32, N=16))
    with g.part("dout and the cache left unchanged (the values are checked too)", weight=0.5):
        _block_backward_parts(g, fn, *_block_backward_case(634, "pre", N=3, D=5, H=2))


# ============================================================================= folding
def _fold_case(seed, D, M, dtype=np.float64):
    """An affine layer (D, M) and its BatchNorm; unit 0's running_var is comparable to eps."""
    r = rng(seed)
    w, b = r.normal(size=(D, M)), r.normal(size=M)
    gamma = r.uniform(0.5, 2.0, M) * r.choice([-1.0, 1.0], M)
    beta, running_mean = r.normal(size=M), 3.0 * r.normal(size=M)
    running_var = r.uniform(0.5, 4.0, M)
    running_var[0] = 2e-5  # comparable to eps = 1e-5: eps inside or not shows (M3)
    return [a.astype(dtype) for a in (w, b, gamma, beta, running_mean, running_var)]


def _fold_wrong(w, b, gamma, beta, rm, rv, eps, *, eps_mode="inside", bias="folded",
                axis=1):
    """(w_folded, b_folded) in float64 with one mistake switched on."""
    w, b, gamma, beta, rm, rv = (np.asarray(a, np.float64) for a in (w, b, gamma, beta, rm, rv))
    std = {"inside": np.sqrt(rv + eps), "missing": np.sqrt(rv), "outside": np.sqrt(rv) + eps}
    scale = gamma / std[eps_mode]
    w_f = w * scale if axis == 1 else w * scale[:, None]
    b_f = {"folded": (b - rm) * scale + beta, "unscaled": b + beta - rm * scale,
           "dropped": beta - rm * scale, "unnormalized": b + beta}[bias]
    return w_f, b_f


def _fold_compare(g, fn, arrays, eps, *, check_dtype=False):
    copies = [a.copy() for a in arrays]
    w_f, b_f = unpack(g.call(fn, *copies, eps), 2, "w_folded, b_folded")
    names = ("w", "b", "gamma", "beta", "running_mean", "running_var")
    for name, before, after in zip(names, arrays, copies, strict=True):
        require_unchanged(name, before, after, EXPLAIN["M10"])
    e_w, e_b = ref.fold_batchnorm(*(a.astype(np.float64) for a in arrays), eps)
    dtype = arrays[0].dtype
    rtol, atol = _tol(dtype)

    def spellings(i):
        return _closest((w_f, b_f)[i],
                        M3=[lambda m=m: _fold_wrong(*arrays, eps, eps_mode=m)[i]
                            for m in ("missing", "outside")],
                        M39=[lambda k=k: _fold_wrong(*arrays, eps, bias=k)[i]
                             for k in ("unscaled", "dropped", "unnormalized")] if i else [],
                        M40=[lambda: _fold_wrong(*arrays, eps, axis=0)[i]]
                        if arrays[0].shape[0] == arrays[0].shape[1] else [])

    scale = float(np.max(np.abs(e_w)))
    g.compare("w_folded", w_f, e_w.astype(dtype) if check_dtype else e_w, rtol=rtol,
              atol=atol * scale, check_dtype=check_dtype, mistakes=_mistakes(**spellings(0)))
    g.compare("b_folded", b_f, e_b.astype(dtype) if check_dtype else e_b, rtol=rtol,
              atol=atol * max(scale, float(np.max(np.abs(e_b)))), check_dtype=check_dtype,
              mistakes=_mistakes(**spellings(1)))


@hidden_check("fold_batchnorm", points=3)
def check_fold_batchnorm(g, fn):
    """scale = gamma / sqrt(running_var + eps) per unit; w scaled by column; b folded through."""
    arrays = _fold_case(640, 5, 3)
    with g.part("a 5 -> 3 affine layer and its BatchNorm (eps 1e-5)", weight=1.5):
        _fold_compare(g, fn, arrays, 1e-5)
    with g.part("a square 4 -> 4 layer: the units are the columns of w", weight=0.75):
        _fold_compare(g, fn, _fold_case(641, 4, 4), 1e-5)
    with g.part("float32 in, float32 out; eps = 1e-3", weight=0.25):
        _fold_compare(g, fn, _fold_case(642, 6, 2, np.float32), 1e-3, check_dtype=True)
    with g.part("inputs left unchanged; ValueError for a running_var of the wrong shape",
                weight=0.5):
        _fold_compare(g, fn, arrays, 1e-5)
        bad = [a.copy() for a in arrays]
        bad[5] = np.ones(4)
        g.expect_raises(ValueError, fn, *bad, 1e-5, what="running_var of shape (4,) for 3 units")
