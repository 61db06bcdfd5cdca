"""Hidden checks for assignment 05, Batch Renormalization (Ioffe 2017, arXiv:1702.03275).

As the LayerNorm and GroupNorm checks (:mod:`autograder.checks.beyond_batchnorm`, whose helpers
these reuse): plain inputs in, plain numbers compared with ``autograder.reference``, and the
known mistakes named (``MISCONCEPTIONS.md``): M27 gradient through r and d, M28 r or d clipped
wrongly, M29 r and d from running statistics already updated with this batch, M30 running_std
tracking a variance or eps outside the root, M31 test mode with batch statistics or r and d, and
the earlier M1 (ddof=1), M3 (eps), M10 (inputs changed), M15, M17.

The data make every mistake visible: the running statistics differ from the batch's, so that r
is clipped below and above and d on both sides, one feature has d inside (-dmax, 0) (M28's
[0, dmax]), one has a variance below eps (M3, M30's eps), and momentum 0.3 makes the update
large enough for M29.
"""

from __future__ import annotations

import numpy as np

from autograder import reference as ref
from autograder.checks.beyond_batchnorm import (
    ATOL32,
    ATOL64,
    RTOL32,
    RTOL64,
    _backward_compare,
    _call_forward,
    _closest,
    _dtype,
)
from autograder.checks.framework import DIAGNOSIS, Failure, copy_param, fmt, hidden_check, rng

__all__ = ["check_batchrenorm_forward", "check_batchrenorm_backward"]

EXPLAIN = {
    "M1": "you divide by N - 1 (ddof=1). sigma_B is the square root of the biased batch "
          "variance plus eps: divide by N.",
    "M3": "eps is missing or outside the square root: sigma_B = sqrt(var_B + eps).",
    "M28": "r or d is clipped to the wrong interval (or not at all). r = sigma_B / running_std "
           "is clipped to [1/rmax, rmax] (a ratio: never below 1/rmax, and never negative), and "
           "d = (mu_B - running_mean) / running_std to [-dmax, dmax], negative values included.",
    "M29": "r and d come from running statistics that already include this batch. Compute r "
           "and d from running_mean and running_std as they were *before* the step, then "
           "update them (Ioffe 2017, Algorithm 1).",
    "M30": "running_std is updated with the wrong statistic. It tracks the standard deviation "
           "sigma_B = sqrt(var_B + eps): running_std += momentum * (sigma_B - running_std), not "
           "the variance, and with eps inside the square root.",
    "M31": "test mode must use the running statistics only: out = gamma * (x - running_mean) "
           "/ running_std + beta. Your output depends on the test batch's own statistics (or "
           "applies r and d, which exist only in training).",
    "M27": "the gradient flows through r and d. The paper treats them as constants (a "
           "stop-gradient): dx is BatchNorm's dx with the upstream gradient dout * gamma scaled "
           "by r, and nothing flows back through r = sigma_B / running_std or d.",
    "M17": "dx misses a path of BatchNorm's graph: the batch mean and sigma_B still depend on "
           "every x of the column, and each adds a term to dx (r and d do not).",
}


def _mistakes(**values) -> dict:
    return {k: (v, EXPLAIN[k]) for k, v in values.items()}


def _model(x, gamma, beta, brn, *, ddof=0, eps_mode="inside", clip="right", order="before",
           run="std", test="running"):
    """(out, running_mean, running_std) of Batch Renorm with one mistake switched on, float64."""
    x = np.asarray(x, np.float64)
    D = x.shape[1]
    eps, m = brn.get("eps", 1e-5), brn.get("momentum", 0.01)
    rmax, dmax = brn.get("rmax", 3.0), brn.get("dmax", 5.0)
    rm = np.asarray(brn.get("running_mean", np.zeros(D)), np.float64)
    rs = np.asarray(brn.get("running_std", np.ones(D)), np.float64)
    if brn["mode"] == "test" and test == "running":
        return gamma * (x - rm) / rs + beta, rm, rs
    mu, var = x.mean(axis=0), x.var(axis=0, ddof=ddof)
    sigma = {"inside": np.sqrt(var + eps), "missing": np.sqrt(var),
             "outside": np.sqrt(var) + eps}[eps_mode]
    if brn["mode"] == "test" and test == "batch":
        return gamma * (x - mu) / sigma + beta, rm, rs
    tracked = {"std": sigma, "var": var, "var_eps": var + eps, "eps_outside": np.sqrt(var) + eps}
    rm_new, rs_new = rm + m * (mu - rm), rs + m * (tracked[run] - rs)
    use_m, use_s = (rm_new, rs_new) if order == "after" else (rm, rs)
    r, d = sigma / use_s, (mu - use_m) / use_s
    r_lo, d_lo = {"right": (1 / rmax, -dmax), "none": (-np.inf, -np.inf), "r0": (0.0, -dmax),
                  "d0": (1 / rmax, 0.0)}[clip]
    if clip != "none":
        r, d = np.clip(r, r_lo, rmax), np.clip(d, d_lo, dmax)
    out = gamma * ((x - mu) / sigma * r + d) + beta
    if brn["mode"] == "test":  # test == "rd": the train-mode formula at test time
        return out, rm, rs
    return out, rm_new, rs_new


def _case(seed, N=8, dtype=np.float64, momentum=0.3):
    """Six features: r in range / clipped low / clipped high, d clipped low / high / in
    (-dmax, 0), and feature 5 with variance 1e-6 < eps."""
    r = rng(seed)
    loc = np.array([0.0, 2.0, -1.0, -4.0, 5.0, 1.0])
    scale = np.array([1.0, 0.1, 8.0, 1.0, 1.5, 1e-3])
    x = loc + scale * r.normal(size=(N, 6))
    mu, sd = x.mean(axis=0), np.sqrt(x.var(axis=0) + 1e-5)
    rs = np.array([1.2, 1.0, 1.0, 1.0, 1.0, 1.0]) * sd * np.array([1, 5, 0.2, 1, 1, 1])
    rm = mu - rs * np.array([-0.5, 0.3, 0.2, -2.5, 3.0, 0.4])  # d before clipping (dmax = 1)
    gamma = r.uniform(0.5, 2.0, 6) * r.choice([-1.0, 1.0], 6)
    beta = r.normal(size=6)
    brn = {"mode": "train", "eps": 1e-5, "momentum": momentum, "rmax": 2.0, "dmax": 1.0,
           "running_mean": rm, "running_std": rs}
    def cast(a):
        return (a.astype(dtype))
    return cast(x), cast(gamma), cast(beta), {k: (cast(v) if isinstance(v, np.ndarray) else v)
                                              for k, v in brn.items()}


def _reference(x, gamma, beta, brn):
    p = copy_param(brn)
    out = ref.batchrenorm_forward(np.asarray(x, np.float64), gamma, beta, p)[0]
    return out, p


def _out_mistakes(got, x, gamma, beta, brn) -> dict:
    def w(**kw):
        return _model(x, gamma, beta, brn, **kw)[0]

    if brn["mode"] == "test":
        return _mistakes(**_closest(got, M31=[lambda: w(test="batch"), lambda: w(test="rd")]))
    return _mistakes(**_closest(
        got, M1=[lambda: w(ddof=1)],
        M3=[lambda: w(eps_mode="missing"), lambda: w(eps_mode="outside")],
        M28=[lambda c=c: w(clip=c) for c in ("none", "r0", "d0")], M29=[lambda: w(order="after")]))


def _compare_out(g, fn, x, gamma, beta, brn, rtol=RTOL64, atol=ATOL64):
    out, after = _call_forward(g, fn, {"x": x, "gamma": gamma, "beta": beta}, param=brn)
    exp, exp_brn = _reference(x, gamma, beta, brn)
    g.compare("out", out, exp, rtol=rtol, atol=atol,
              mistakes=_out_mistakes(out, x, gamma, beta, brn))
    return out, after, exp_brn


def _compare_running(g, after, exp_brn, x, gamma, beta, brn, rtol=RTOL64, atol=ATOL64):
    for i, name in ((1, "running_mean"), (2, "running_std")):
        got = after.get(name)
        if got is None:
            raise Failure(f"brn_param has no '{name}' after a train step.\n      yours:    "
                          f"keys {sorted(after)}\n      expected: brn_param['{name}'] = "
                          f"{fmt(exp_brn[name])}")

        def w(i=i, **kw):
            return _model(x, gamma, beta, brn, **kw)[i]

        wrong = _closest(got, M30=[lambda: w(run="var"), lambda: w(run="var_eps"),
                                   lambda: w(run="eps_outside")],
                         M1=[lambda: w(ddof=1)],
                         M3=[lambda: w(eps_mode="missing"), lambda: w(eps_mode="outside")])
        if name == "running_mean":  # no mistake above changes the mean's update
            wrong = {}
        g.compare(f"brn_param['{name}']", got, exp_brn[name], rtol=rtol, atol=atol,
                  mistakes=_mistakes(**wrong))


@hidden_check("batchrenorm_forward", points=6)
def check_batchrenorm_forward(g, fn):
    """Algorithm 1 of Ioffe (2017): r and d clipped, running mean and std, test mode."""
    x, gamma, beta, brn = _case(540)
    with g.part("train-mode output on an 8x6 batch where r and d are clipped", weight=2):
        _compare_out(g, fn, x, gamma, beta, brn)
    with g.part("one train step writes running_mean and running_std (the std) back into "
                "brn_param (momentum 0.3)", weight=1.5):
        _, after, exp_brn = _compare_out(g, fn, x, gamma, beta, brn)
        _compare_running(g, after, exp_brn, x, gamma, beta, brn)
    with g.part("defaults (brn_param = {'mode': 'train'}): eps 1e-5, momentum 0.01, rmax 3, "
                "dmax 5, running statistics 0 and 1; three steps", weight=1):
        state = {"mode": "train"}
        for seed in (541, 542, 543):
            xs = _case(seed, N=5)[0] * 3.0 + 4.0  # far from (0, 1): r and d clip at 3 and 5
            _, after, exp_brn = _compare_out(g, fn, xs, gamma, beta, state)
            _compare_running(g, after, exp_brn, xs, gamma, beta, state)
            # the next step starts from the reference's state, never from what the student's
            # call wrote back (issue 19: the reference reads no value the student wrote)
            state = dict(copy_param(exp_brn), mode="train")
    with g.part("test mode: running statistics only, no r and d, brn_param unchanged",
                weight=1.5):
        test = dict(copy_param(brn), mode="test")
        xt = _case(544, N=6)[0]
        _, after, _ = _compare_out(g, fn, xt, gamma, beta, test)
        for name in ("running_mean", "running_std"):
            if not np.array_equal(after.get(name), test[name]):
                raise Failure(f"test mode changed brn_param['{name}']\n      yours:    "
                              f"{fmt(after.get(name))}\n      expected: {fmt(test[name])}"
                              f"\n      {DIAGNOSIS} M31: {EXPLAIN['M31']}")
        _compare_out(g, fn, xt[:1], gamma, beta, test)
    with g.part("rmax = 1 and dmax = 0 give BatchNorm's train-mode output", weight=0.5):
        bn_like = dict(copy_param(brn), rmax=1.0, dmax=0.0)
        out, _, _ = _compare_out(g, fn, x, gamma, beta, bn_like)
        g.compare("out vs batchnorm_forward", out,
                  ref.batchnorm_forward(x, gamma, beta, {"mode": "train"})[0],
                  rtol=RTOL64, atol=ATOL64)
    with g.part("float32 in, float32 out", weight=0.5):
        x32, g32, b32, brn32 = _case(545, N=16, dtype=np.float32)
        brn32["eps"] = 1e-3  # float32 keeps the tiny feature's variance resolvable
        out, after, exp_brn = _compare_out(g, fn, x32, g32, b32, brn32, RTOL32, ATOL32)
        _dtype(out, np.float32)
        _compare_running(g, after, exp_brn, x32, g32, b32, brn32, RTOL32, ATOL32)
    with g.part("ValueError for rmax < 1, dmax < 0 and N = 1 in train mode; inputs left "
                "unchanged", weight=1):
        _compare_out(g, fn, x, gamma, beta, brn)
        for bad, what in (({"rmax": 0.5}, "rmax = 0.5"), ({"dmax": -1.0}, "dmax = -1"),
                          ({}, "train mode with N = 1")):
            xs = x[:1] if not bad else x
            g.expect_raises(ValueError, fn, xs.copy(), gamma.copy(), beta.copy(),
                            dict(copy_param(brn), **bad), what=what)


def _brn_dx(dout, cache, *, mean_path=True, var_path=True, through_rd=None):
    """dx of Batch Renorm from the cache with a mistake switched on (float64).

    ``through_rd``: None (stop-gradient, correct), ``'all'`` (the gradients of r = sigma_B /
    running_std and d = (mu_B - running_mean) / running_std added for every feature) or
    ``'unclipped'`` (only where r, d are not clipped: autograd without the stop-gradient)."""
    c = {k: (np.asarray(v, np.float64) if isinstance(v, np.ndarray) else v)
         for k, v in cache.items()}
    g0 = np.asarray(dout, np.float64) * c["gamma"]
    x_bn, r, inv_std = c["x_bn"], c["r"], c["inv_std"]
    g = g0 * r
    dx = g.copy()
    if mean_path:
        dx -= g.mean(axis=0)
    if var_path:
        dx -= x_bn * (g * x_bn).mean(axis=0)
    dx *= inv_std
    if through_rd:
        inv_rs = 1.0 / c["running_std"]
        r_free = d_free = np.ones_like(r, dtype=bool)
        if through_rd == "unclipped":
            raw_r = c["std"] * inv_rs
            raw_d = (c["mean"] - c["running_mean"]) * inv_rs
            r_free, d_free = np.isclose(r, raw_r), np.isclose(c["d"], raw_d)
        dx += r_free * (g0 * x_bn).mean(axis=0) * x_bn * inv_rs + d_free * g0.mean(axis=0) * inv_rs
    return dx


def _backward_parts(g, fn, dout, cache):
    expected = ref.batchrenorm_backward(np.asarray(dout, np.float64), cache)
    dx_mistakes = {
        "M27": [lambda: _brn_dx(dout, cache, through_rd="all"),
                lambda: _brn_dx(dout, cache, through_rd="unclipped")],
        "M17": [lambda: _brn_dx(dout, cache, mean_path=False),
                lambda: _brn_dx(dout, cache, var_path=False),
                lambda: _brn_dx(dout, cache, mean_path=False, var_path=False)]}
    _backward_compare(g, fn, dout, cache, expected, dx_mistakes, [dout.shape], explain=EXPLAIN)


def _bwd_case(seed, N, dtype=np.float64):
    x, gamma, beta, brn = _case(seed, N=N, dtype=dtype)
    x[:, 5] = (x[:, 5] - 1.0) * 1e3  # well-conditioned for the gradient
    brn["running_std"][5] = np.asarray(x[:, 5].std() * 0.8, dtype)
    dout = rng(seed + 1).normal(size=x.shape).astype(dtype)
    return dout, ref.batchrenorm_forward(x, gamma, beta, brn)[1]


@hidden_check("batchrenorm_backward", points=3)
def check_batchrenorm_backward(g, fn):
    """BatchNorm's dx with dout * gamma scaled by r; r and d constants; dgamma from x_hat."""
    with g.part("dx (N, D), dgamma and dbeta (D,) on an 8x6 batch with r and d clipped",
                weight=1.5):
        _backward_parts(g, fn, *_bwd_case(550, 8))
    with g.part("N = 3", weight=0.5):
        _backward_parts(g, fn, *_bwd_case(551, 3))
    with g.part("float32, N = 32", weight=0.5):
        _backward_parts(g, fn, *_bwd_case(552, 32, np.float32))
    with g.part("dout and the cache are left unchanged (the values are checked too)", weight=0.5):
        _backward_parts(g, fn, *_bwd_case(553, 5))

