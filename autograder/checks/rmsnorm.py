"""Hidden checks for assignment 06, RMSNorm forward and backward, and the catalogue texts and
helpers that 06's other checks (:mod:`autograder.checks.modern`) share.

Each check calls the student's function on seeded plain inputs, compares what it returns with
:mod:`autograder.reference` (PyTorch ``nn.RMSNorm`` semantics) and, when it is wrong, with what
each known mistake would give (``MISCONCEPTIONS.md``): M33 the mean subtracted (LayerNorm's
centering), M34 statistics over the wrong axis, M35 float16 computed in float16, and M3 (eps),
M10 (inputs changed), M15 (dgamma not summed) and M17 (a path of dx dropped).

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
    hidden_check,
    quiet,
    require_unchanged,
    rng,
    unpack,
)

__all__ = [
    "check_rmsnorm_forward",
    "check_rmsnorm_backward",
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
