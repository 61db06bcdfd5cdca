"""Hidden checks for assignment 04: the affine-BatchNorm-ReLU "sandwich" layer.

The sandwich is graded as the student submits it, with whatever ``batchnorm_forward`` and
``batchnorm_backward`` it calls (the provided ones, or the student's own from 02/03 when the
notebook's ``USE_MY_BATCHNORM`` flag is on). So a wrong result is compared with what each known
mistake would give, whether it sits in the sandwich itself (ReLU before BatchNorm, the ReLU mask
taken from the wrong array, the ReLU step skipped in the backward pass) or in the BatchNorm it
calls (MISCONCEPTIONS.md M1, M8, M9, M11 forward; M15-M17 backward); the latter diagnoses say
where to look.

The backward pass is also checked against centered finite differences of the student's own
forward pass (consistency, whatever the forward does). Its inputs are chosen so that no ReLU
input lies within 1e-3 of the kink at 0 (checked in tests/test_experiments.py), so the
differences with h = 1e-6 are exact to ~1e-9.
"""

from __future__ import annotations

import copy

import numpy as np

from autograder import reference as ref
from autograder.checks.batchnorm_backward import _closest, _fd, _m15, _variant
from autograder.checks.batchnorm_forward import _bn_wrong
from autograder.checks.framework import (
    DIAGNOSIS,
    Failure,
    Grader,
    companion,
    copy_param,
    hidden_check,
    require_unchanged,
    rng,
    unpack,
)

__all__ = ["check_affine_bn_relu_forward", "check_affine_bn_relu_backward"]

RTOL, ATOL = 1e-7, 1e-9

_FROM_BN = (" It is a BatchNorm mistake: look where your sandwich does BatchNorm. If it calls the "
            "provided function, that one is correct, so the mistake is in code you wrote around or "
            "instead of it; with USE_MY_BATCHNORM = True, check your own function from "
            "notebook {nb}.")
EXPLAIN = {
    "order": "the ReLU comes before BatchNorm. The layer is relu(batchnorm(x @ w + b)): "
             "normalize the affine output, then apply the non-linearity.",
    "no_relu": "the ReLU is missing: the output has negative values. Apply relu_forward to the "
               "BatchNorm output.",
    "no_bn": "BatchNorm is skipped: the output is relu(x @ w + b). Pass the affine output through "
             "batchnorm_forward with gamma, beta and bn_param.",
    "M1": "the output matches BatchNorm with the unbiased variance (divide by N-1)."
          + _FROM_BN.format(nb="02"),
    "M8": "in test mode the output uses the batch statistics instead of bn_param's running ones."
          + _FROM_BN.format(nb="02"),
    "M9": "bn_param's running statistics did not change after a train step. Pass the caller's "
          "bn_param dict itself to batchnorm_forward (not a copy), so that the network keeps "
          "the running statistics it needs in test mode.",
    "M11": "the output is gamma * x + beta without normalizing." + _FROM_BN.format(nb="02"),
    "mask": "the ReLU mask comes from the wrong array. relu_backward must receive the cache of "
            "relu_forward, whose input is the BatchNorm output, not the affine output.",
    "skip_relu": "the backward pass skips the ReLU: dout reaches BatchNorm unchanged. Call "
                 "relu_backward first (the layers run backward in reverse order).",
    "M15": "dgamma/dbeta are not summed over the batch." + _FROM_BN.format(nb="03"),
    "M16": "the gradient is off by a wrong 1/N in the BatchNorm backward pass (1/D or 1/(N*D) "
           "where 1/N belongs)." + _FROM_BN.format(nb="03"),
    "M17": "the BatchNorm backward pass drops the path through the batch mean or the batch "
           "variance; a sign: db is not zero (a bias before BatchNorm cannot change the loss)."
           + _FROM_BN.format(nb="03"),
}


def _label(key: str) -> str:
    return key if key.startswith("M") else {"order": "ReLU before BN", "no_relu": "no ReLU",
                                            "no_bn": "no BatchNorm", "mask": "wrong ReLU mask",
                                            "skip_relu": "ReLU skipped"}[key]


def _mistakes(**values) -> dict:
    """``mistakes=`` for ``Grader.compare``: key -> (wrong value or callable, explanation)."""
    return {_label(k): (v, EXPLAIN[k]) for k, v in values.items()}


# --------------------------------------------------------------------------- inputs
def _case(seed: int, N: int = 12, D: int = 6, M: int = 5, x_shape: tuple | None = None):
    """Seeded inputs (x, w, b, gamma, beta, bn_param, dout) in float64."""
    r = rng(seed)
    x = 1.0 + 2.0 * r.normal(size=(N, D) if x_shape is None else (N, *x_shape))
    Dflat = x[0].size
    w = r.normal(size=(Dflat, M)) / np.sqrt(Dflat)
    b = r.normal(size=M)
    gamma = r.uniform(0.5, 2.0, M)
    beta = 0.5 * r.normal(size=M)
    bn = {"mode": "train", "eps": 1e-5, "momentum": 0.1,
          "running_mean": 0.1 * r.normal(size=M), "running_var": r.uniform(0.5, 2.0, M)}
    dout = r.normal(size=(N, M))
    return x, w, b, gamma, beta, bn, dout


def _reference(x, w, b, gamma, beta, bn):
    """Reference forward on copies: (out, cache, the updated bn_param)."""
    bn = copy_param(bn)
    out, cache = ref.affine_bn_relu_forward(x.copy(), w, b, gamma, beta, bn)
    return out, cache, bn


# --------------------------------------------------------------------------- forward
def _forward_wrong(x, w, b, gamma, beta, bn, kind: str, **bn_kw):
    """The forward output under one sandwich mistake, or one BatchNorm mistake (``bn_kw``)."""
    a = x.reshape(x.shape[0], -1) @ w + b
    if kind == "order":
        return _bn_wrong(np.maximum(a, 0), gamma, beta, bn)[0]
    if kind == "no_bn":
        return np.maximum(a, 0)
    out = _bn_wrong(a, gamma, beta, bn, **bn_kw)[0]
    return out if kind == "no_relu" else np.maximum(out, 0)


def _forward_mistakes(x, w, b, gamma, beta, bn) -> dict:
    def m(kind, **kw):
        return lambda: _forward_wrong(x, w, b, gamma, beta, bn, kind, **kw)

    return _mistakes(order=m("order"), no_relu=m("no_relu"), no_bn=m("no_bn"),
                     M1=m("bn", ddof=1), M11=m("bn", use_x=True),
                     M8=m("bn", test_stats="batch", train_stats="batch"))


def _call_forward(g: Grader, fn, x, w, b, gamma, beta, bn):
    """Call the student on copies; check the inputs survive; return (out, cache, bn_param)."""
    args = [a.copy() for a in (x, w, b, gamma, beta)]
    bn_in = copy_param(bn)
    out, cache = unpack(g.call(fn, *args, bn_in), 2, "out, cache")
    for name, before, after in zip(("x", "w", "b", "gamma", "beta"), (x, w, b, gamma, beta), args,
                                   strict=True):
        require_unchanged(name, before, after)
    return out, cache, bn_in


@hidden_check("affine_bn_relu_forward", points=3)
def check_affine_bn_relu_forward(g: Grader, fn) -> None:
    """Output in train and test mode, running statistics, N-d input, inputs left unchanged."""
    x, w, b, gamma, beta, bn, _ = _case(400)

    with g.part("returns (out, cache) with out of shape (N, M) on a 4x3 -> 2 example", weight=0.5):
        xs, ws, bs, gs, betas, bns, _ = _case(401, N=4, D=3, M=2)
        out, _, _ = _call_forward(g, fn, xs, ws, bs, gs, betas, bns)
        g.require(np.shape(out) == (4, 2), f"out has shape {np.shape(out)}, expected (4, 2)")

    with g.part("train mode: out = relu(batchnorm(x @ w + b)) on a 12x6 -> 5 batch", weight=1.5):
        out, _, _ = _call_forward(g, fn, x, w, b, gamma, beta, bn)
        expected, _, _ = _reference(x, w, b, gamma, beta, bn)
        g.compare("out", out, expected, rtol=RTOL, atol=ATOL,
                  mistakes=_forward_mistakes(x, w, b, gamma, beta, bn))

    with g.part("train mode writes the running statistics back into bn_param", weight=0.5):
        _, _, bn_after = _call_forward(g, fn, x, w, b, gamma, beta, bn)
        _, _, bn_exp = _reference(x, w, b, gamma, beta, bn)
        for key in ("running_mean", "running_var"):
            got = bn_after.get(key)
            if got is not None and np.array_equal(got, bn[key]):
                raise Failure(f"bn_param['{key}'] is unchanged after a train step.\n      "
                              f"{DIAGNOSIS} M9: {EXPLAIN['M9']}")
            g.compare(f"bn_param['{key}']", got, bn_exp[key], rtol=RTOL, atol=ATOL)

    with g.part("test mode uses bn_param's running statistics", weight=0.5):
        bn_test = {**copy_param(bn), "mode": "test"}
        out, _, _ = _call_forward(g, fn, x, w, b, gamma, beta, bn_test)
        expected, _, _ = _reference(x, w, b, gamma, beta, bn_test)
        g.compare("out (test mode)", out, expected, rtol=RTOL, atol=ATOL,
                  mistakes=_forward_mistakes(x, w, b, gamma, beta, bn_test))

    with g.part("x of shape (N, 2, 3) is flattened to (N, 6), as affine_forward does", weight=0.5):
        x3, w3, b3, g3, beta3, bn3, _ = _case(402, N=7, M=4, x_shape=(2, 3))
        out, _, _ = _call_forward(g, fn, x3, w3, b3, g3, beta3, bn3)
        expected, _, _ = _reference(x3, w3, b3, g3, beta3, bn3)
        g.compare("out", out, expected, rtol=RTOL, atol=ATOL)


# --------------------------------------------------------------------------- backward
def _backward_wrong(x, w, b, cache, dout, *, mask="bn", dgamma_summed=True, factor=1.0,
                    **variant_kw):
    """(dx, dw, db, dgamma, dbeta) in float64 under one mistake, from the reference cache.

    ``mask``: which array the ReLU mask comes from (``"bn"`` correct, ``"affine"``, ``"none"``).
    ``factor``: BatchNorm's dx scaled by a constant (the closed form with a wrong 1/N, M16).
    ``variant_kw``: a BatchNorm backward mistake for checks_backward._variant (M16, M17).
    """
    bn_cache = cache[1]
    x2 = x.reshape(x.shape[0], -1)
    if mask == "bn":
        d_bn = dout * (bn_cache["x_hat"] * bn_cache["gamma"] + bn_cache["beta"] > 0)
    elif mask == "affine":
        d_bn = dout * (x2 @ w + b > 0)
    else:
        d_bn = dout
    da, dgamma, dbeta = ref.batchnorm_backward(d_bn, bn_cache)
    if variant_kw:
        da = _variant(d_bn, bn_cache, **variant_kw)
    da = da * factor
    if not dgamma_summed:
        dgamma, dbeta = d_bn * bn_cache["x_hat"], d_bn
    return (da @ w.T).reshape(x.shape), x2.T @ da, da.sum(axis=0), dgamma, dbeta


def _backward_mistakes(got, x, w, b, cache, dout, index: int) -> dict:
    """Mistakes for output ``index`` of (dx, dw, db, dgamma, dbeta)."""
    def m(**kw):
        return lambda: _backward_wrong(x, w, b, cache, dout, **kw)[index]

    N, M = dout.shape
    return _mistakes(mask=m(mask="affine"), skip_relu=m(mask="none"),
                     M16=_closest(got, [m(n=M), m(n=N * M), m(factor=N / M), m(factor=N)]),
                     M17=_closest(got, [m(mean_path=False), m(var_path=False),
                                        m(mean_path=False, var_path=False)]))


_NAMES = ("dx", "dw", "db", "dgamma", "dbeta")


def _call_backward(g: Grader, fwd, bwd, x, w, b, gamma, beta, bn, dout):
    """Student forward (for its own cache), then backward on copies; dout and cache unchanged."""
    _, cache, _ = _call_forward(g, fwd, x, w, b, gamma, beta, bn)
    d_copy, c_copy = dout.copy(), copy.deepcopy(cache)
    grads = unpack(g.call(bwd, d_copy, c_copy), 5, ", ".join(_NAMES))
    require_unchanged("dout", dout, d_copy)
    return grads


def _compare_grads(g: Grader, grads, x, w, b, gamma, beta, bn, dout) -> None:
    _, cache, _ = _reference(x, w, b, gamma, beta, bn)
    expected = ref.affine_bn_relu_backward(dout, cache)
    # one scale for all five: db is exactly 0, so its own scale would be rounding noise
    scale = max(float(np.max(np.abs(e))) for e in expected) or 1.0
    for i, (name, got, exp) in enumerate(zip(_NAMES, grads, expected, strict=True)):
        mistakes = _backward_mistakes(got, x, w, b, cache, dout, i)
        if name in ("dgamma", "dbeta"):
            mistakes = {**_m15(got, name, dout.shape), **mistakes}
        g.compare(name, got, exp, rtol=RTOL, atol=ATOL * scale, mistakes=mistakes)


def _numeric_grads(fwd, x, w, b, gamma, beta, bn, dout, h=1e-6):
    """Centered differences of sum(fwd(...)[0] * dout) for each of x, w, b, gamma, beta."""
    params = [x, w, b, gamma, beta]

    def f_of(i):
        def f(v):
            args = [p.copy() for p in params]
            args[i] = v
            return fwd(*args, copy_param(bn))[0]
        return f

    return [_fd(f_of(i), p, dout, h=h) for i, p in enumerate(params)]


def _backward_check(g: Grader, bwd) -> None:
    fwd = companion(bwd, "affine_bn_relu_forward")
    if fwd is None:
        fwd = ref.affine_bn_relu_forward
        g.note("affine_bn_relu_forward was not found next to your backward function; the "
               "reference forward made the cache, so a cache of your own design will not work.")
    x, w, b, gamma, beta, bn, dout = _case(410)

    with g.part("returns dx, dw, db, dgamma, dbeta with the shapes of x, w, b, gamma, beta",
                weight=0.5):
        xs, ws, bs, gs, betas, bns, ds = _case(411, N=4, D=3, M=2)
        grads = _call_backward(g, fwd, bwd, xs, ws, bs, gs, betas, bns, ds)
        for name, got, like in zip(_NAMES, grads, (xs, ws, bs, gs, betas), strict=True):
            if np.shape(got) != like.shape:
                hint = (f"\n      {DIAGNOSIS} M15: {EXPLAIN['M15']}"
                        if name in ("dgamma", "dbeta") and np.shape(got) == ds.shape else "")
                raise Failure(f"{name} has shape {np.shape(got)}, expected {like.shape}.{hint}")

    with g.part("matches the reference on a 12x6 -> 5 batch with a random dout", weight=2):
        grads = _call_backward(g, fwd, bwd, x, w, b, gamma, beta, bn, dout)
        _compare_grads(g, grads, x, w, b, gamma, beta, bn, dout)

    with g.part("agrees with centered finite differences of your forward pass", weight=1.5):
        xs, ws, bs, gs, betas, bns, ds = _case(412, N=5, D=4, M=3)
        grads = _call_backward(g, fwd, bwd, xs, ws, bs, gs, betas, bns, ds)
        numeric = g.call(_numeric_grads, fwd, xs, ws, bs, gs, betas, bns, ds)
        # one scale for all five: db is exactly 0 and its differences are rounding noise
        scale = max(float(np.max(np.abs(num))) for num in numeric) or 1.0
        for name, got, num in zip(_NAMES, grads, numeric, strict=True):
            # your forward against your backward: scores only beside a part that matched the
            # reference (two trivial sides agree too: issue 19)
            g.compare(f"{name} (finite differences)", got, num, rtol=1e-5, atol=1e-7 * scale,
                      self_consistency=True)

    with g.part("x of shape (N, 2, 3): dx has the shape of x", weight=0.5):
        x3, w3, b3, g3, beta3, bn3, d3 = _case(413, N=7, M=4, x_shape=(2, 3))
        grads = _call_backward(g, fwd, bwd, x3, w3, b3, g3, beta3, bn3, d3)
        _compare_grads(g, grads, x3, w3, b3, g3, beta3, bn3, d3)

    with g.part("leaves dout and the cache unchanged", weight=0.5):
        _, cache, _ = _call_forward(g, fwd, x, w, b, gamma, beta, bn)
        before = copy.deepcopy(cache)
        g.call(bwd, dout.copy(), cache)
        for i, (part_before, part_after) in enumerate(_leaves(before, cache)):
            require_unchanged(f"cache item {i}", part_before, part_after,
                              "the cache belongs to the forward pass; read from it, never write "
                              "into it")


def _leaves(a, b):
    """Pairs of corresponding arrays/scalars in two nested caches (tuples, lists, dicts)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in a:
            yield from _leaves(a[k], b.get(k))
    elif isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)) and len(a) == len(b):
        for u, v in zip(a, b, strict=True):
            yield from _leaves(u, v)
    elif isinstance(a, np.ndarray):
        yield a, b


@hidden_check("affine_bn_relu_backward", points=5)
def check_affine_bn_relu_backward(g: Grader, fn) -> None:
    """The five gradients against the reference and against finite differences."""
    _backward_check(g, fn)
