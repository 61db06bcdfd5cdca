"""Hidden checks for assignment 06: the residual block (pre- and post-norm) and BatchNorm folding.

Each check calls the student's function on seeded plain inputs, compares what it returns with
:mod:`autograder.reference` (the block of Xiong et al. 2020, Fig. 1; ``fuse_linear_bn_eval``'s
fold) and, when it is wrong, with what each known mistake would give (``MISCONCEPTIONS.md``):
M36 the pre-norm skip path taken after the norm, M37 the placements swapped, M38 the skip
connection's gradient dropped, M39 the bias not folded through the normalization, M40 the scale
folded along the wrong axis of w; and M3 (eps), M10 (inputs changed) and M15 (gradients not
summed over the batch). The texts, tolerances and shared helpers are those of
:mod:`autograder.checks.rmsnorm`.

The residual block calls the student's RMSNorm (the notebook asks for it by name): its checks
declare ``uses=`` and build every expected value with ``g.uses``, so that a mistake of RMSNorm is
charged once, in RMSNorm's check (error carried forward, :mod:`autograder.checks.carried`).
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
from autograder.checks.rmsnorm import (
    EXPLAIN,
    _call_backward,
    _closest,
    _m15,
    _mistakes,
    _tol,
)

__all__ = [
    "check_residual_block_forward",
    "check_residual_block_backward",
    "check_fold_batchnorm",
]


# ============================================================================= residual block
def _block_case(seed, N=6, D=4, H=5, dtype=np.float64):
    """x with a mean and scale far from 0 and 1 (every placement differs), weights, gamma."""
    r = rng(seed)
    x = 1.5 + 2.0 * r.normal(size=(N, D))
    w1, b1 = r.normal(size=(D, H)) / np.sqrt(D), 0.3 * r.normal(size=H)
    w2, b2 = r.normal(size=(H, D)) / np.sqrt(H), 0.3 * r.normal(size=D)
    gamma = r.uniform(0.5, 2.0, D)
    dout = r.normal(size=(N, D))
    x, w1, b1, w2, b2, gamma, dout = (a.astype(dtype) for a in (x, w1, b1, w2, b2, gamma, dout))
    return (x, w1, b1, w2, b2), {"gamma": gamma, "eps": 1e-6}, dout


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
