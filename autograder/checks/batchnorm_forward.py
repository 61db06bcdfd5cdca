"""Hidden checks for assignment 02, the BatchNorm forward pass (``batchnorm_forward.ipynb``).

Each check calls the student's function on seeded inputs (``autograder.checks.framework.rng``), compares
with ``autograder.reference`` (PyTorch ``BatchNorm1d``/``BatchNorm2d`` semantics) and, when the
result is wrong, tests it against the value each known mistake would produce
(``../shared/MISCONCEPTIONS.md``): M1 ddof=1, M2 wrong axis, M3 eps missing/outside the square
root, M4 one-pass variance, M5 zero variance, M6 momentum flipped, M7 biased running_var, M8
batch/running statistics swapped between modes, M9 running statistics not written back, M10
inputs mutated, M11 ``gamma * x + beta``, M12 squared numerator, M13 per-activation spatial
statistics, M14 NCHW reshaped to (-1, C) without moving C last. The spatial check names the
per-feature mistakes too (M1-M5, M8, M11, M12, made per channel): a spatial forward usually
reuses the student's batchnorm_forward. A mistake is named only where the output tells it apart
from the other candidates (``_out_mistakes``).

Tolerances, used throughout:

* ``RTOL64``/``ATOL64`` (float64). Correct implementations differ only in the order of
  roundings (``x_hat * gamma`` vs ``gamma * (x - mu) / std``, ``np.var`` vs a hand-written
  mean of squares): a few ulps, about 1e-15 relative, times the conditioning |x|/std ≤ 1e3 of
  our inputs. 1e-7 leaves a margin of 1e5 over that, while every mistake above changes the
  values by far more (M4 on the offset data, the subtlest, by ~1e-4 relative; the test suite
  checks that each mistake is caught and named).
* ``RTOL32``/``ATOL32`` (float32 input). float32 has eps 1.2e-7 and our float32 inputs are
  well conditioned (|mean|/std ≤ 5), so a float32 computation is off by about 1e-6; 1e-4 accepts
  float32 and float64 arithmetic alike and still rejects the mistakes tested in float32
  (M1, M6, M7, M13, M14 change values by 1% or more there).
  float32 is never combined with a large offset and a tiny variance: with mean 1e4 and std 1e-3
  the inputs themselves are rounded by 1e4 * 6e-8 = 6e-4 ≫ std, ill-conditioned for everyone.
  That case is tested in float64 only.
"""

from __future__ import annotations

import functools

import numpy as np

from autograder import reference as ref
from autograder.checks.batchnorm_models import (  # noqa: F401 - also the other checks' import
    ATOL32,
    ATOL64,
    EXPLAIN,
    RTOL32,
    RTOL64,
    _bn_wrong,
    _diagnose,
    _dtype,
    _m,
    _mistakes,
    _out_mistakes,
    _own_stats,
    _unchanged,
)
from autograder.checks.framework import (
    DIAGNOSIS,
    Failure,
    Grader,
    close,
    copy_param,
    fmt,
    hidden_check,
    rng,
    same_value,
    unpack,
)
from autograder.reference import batchnorm as ref_batchnorm

__all__ = [
    "check_batchnorm_forward",
]

def _bn_composed(uses, x, gamma, beta, bn_param):
    """PyTorch's BatchNorm1d forward built from ``uses.batch_stats``, ``uses.normalize`` and
    ``uses.scale_shift``, as the notebook's solution builds it: the reference composed with the
    student's own stages in the carried-forward run (autograder/checks/carried.py)."""
    x = np.asarray(x)
    N, D = x.shape
    mode, eps, momentum, rm, rv = ref_batchnorm._bn_settings(bn_param, D, x.dtype)
    if mode == "train":
        if N < 2:
            raise ValueError("train mode needs N >= 2")
        mean, var = unpack(uses.batch_stats(x.copy()), 2, "mean, var")
        bn_param["running_mean"] = (1 - momentum) * rm + momentum * np.asarray(mean)
        bn_param["running_var"] = (1 - momentum) * rv + momentum * np.asarray(var) * N / (N - 1)
    else:
        mean, var = rm, rv
    x_hat = uses.normalize(x.copy(), np.copy(mean), np.copy(var), eps)
    out = uses.scale_shift(np.copy(x_hat), gamma.copy(), beta.copy())
    return np.asarray(out).astype(x.dtype, copy=False), bn_param


def _reference(g):
    """The batchnorm_forward expected values come from: the reference, or in the carried-forward
    run the reference composed with the student's own stages."""
    return functools.partial(_bn_composed, g.uses) if g.carrying else ref.batchnorm_forward


def _stats(g):
    """The ``batch_stats`` the diagnoses' wrong values build on: numpy's (None), or in the
    carried-forward run the student's own, so that its mistake is not named again here."""
    return g.uses.batch_stats if g.carrying and "batch_stats" in g.uses.names else None


def _ref_bn(g, x, gamma, beta, bn):
    """Reference forward on float64 copies: (out, updated bn_param)."""
    bn = copy_param(bn)
    out, _ = _reference(g)(np.asarray(x, dtype=np.float64), gamma, beta, bn)
    return out, bn


# ============================================================================= batchnorm_forward
def _bn_wrong_g(g, *args, **kw):
    """:func:`_bn_wrong` on the batch statistics of this run (see :func:`_stats`)."""
    return _bn_wrong(*args, stats=_stats(g), **kw)


def _out_mistakes_g(g, *args, **kw) -> dict:
    """:func:`_out_mistakes` on the batch statistics of this run (see :func:`_stats`)."""
    return _out_mistakes(*args, stats=_stats(g), **kw)


def _bn_case(r, N=8):
    """A train-mode case: features on different scales, one with variance below eps."""
    loc = np.array([0.0, 5.0, -3.0, 1.0, 2.0])
    scale = np.array([1.0, 3.0, 0.5, 1e-3, 2.0])  # feature 3: var ~1e-6 < eps = 1e-5 (M3)
    x = loc + scale * r.normal(size=(N, 5))
    gamma = np.array([1.5, 0.5, 2.0, 1.0, -0.75])
    beta = np.array([0.5, -1.0, 0.0, 2.0, 0.3])
    bn = {"mode": "train", "eps": 1e-5, "momentum": 0.1,
          "running_mean": r.normal(size=5), "running_var": r.uniform(0.5, 2.0, size=5)}
    return x, gamma, beta, bn


def _call_bn(g, fn, x, gamma, beta, bn):
    """Call the student on copies; return (out, the student's bn_param dict after the call)."""
    bn_in = copy_param(bn)
    out, _cache = unpack(g.call(fn, x.copy(), gamma.copy(), beta.copy(), bn_in), 2, "out, cache")
    return out, bn_in


def _compare_running(g, bn_after, exp_bn, bn_before, wrong_runs: dict, rtol, atol):
    """Compare running_mean/var with the expected ones; wrong_runs: key -> (rm, rv).

    ``bn_before`` holds the running statistics before the train step(s): still finding them
    there afterwards is M9, tested after the other mistakes (an M7 value can coincide).
    """
    for name, idx in (("running_mean", 0), ("running_var", 1)):
        got = bn_after.get(name)
        if got is None:
            raise Failure(f"bn_param has no '{name}' after a train step.\n      yours:    "
                          f"bn_param with keys {sorted(bn_after)}\n      expected: "
                          f"bn_param['{name}'] = {fmt(exp_bn[name])}\n      {_diagnose('M9')}")
        runs = {k: v[idx] for k, v in wrong_runs.items()}
        runs["M9"] = bn_before[name]
        g.compare(f"bn_param['{name}']", got, exp_bn[name], rtol=rtol, atol=atol,
                  mistakes=_mistakes(**runs))


def _forward_train_output(g, batchnorm_forward, x, gamma, beta, bn) -> None:
    """Part of ``check_batchnorm_forward``: train-mode output on an 8x5 batch."""
    with g.part("train-mode output on an 8x5 batch (one feature with variance below eps)",
                weight=2):
        out, _ = _call_bn(g, batchnorm_forward, x, gamma, beta, bn)
        exp, _ = _ref_bn(g, x, gamma, beta, bn)
        g.compare("out", out, exp, rtol=RTOL64, atol=ATOL64,
                  mistakes=_out_mistakes_g(g, x, gamma, beta, bn))


def _forward_one_step(g, batchnorm_forward, x, gamma, beta, bn) -> None:
    """Part of ``check_batchnorm_forward``: one train step updates bn_param's running_mean and running_var."""
    with g.part("one train step stores new running_mean and running_var in bn_param "
                "(momentum 0.1, unbiased variance), leaving the arrays passed in unchanged",
                weight=1.5):
        bn_after = copy_param(bn)
        passed_in = {k: bn_after[k] for k in ("running_mean", "running_var")}
        unpack(g.call(batchnorm_forward, x.copy(), gamma.copy(), beta.copy(), bn_after), 2,
               "out, cache")
        _, exp_bn = _ref_bn(g, x, gamma, beta, bn)
        wrong = {k: _bn_wrong_g(g, x, gamma, beta, bn, **kw)[1:] for k, kw in
                 {"M6": {"flip": True}, "M7": {"run_ddof": 0}}.items()}
        _compare_running(g, bn_after, exp_bn, bn, wrong, RTOL64, ATOL64)
        for name, array in passed_in.items():
            if not same_value(bn[name], array):
                raise Failure(f"the array passed in as bn_param['{name}'] was changed in place."
                              f"\n      before: {fmt(bn[name])}\n      after:  {fmt(array)}"
                              f"\n      {_diagnose('M32')}")


def _forward_three_steps(g, batchnorm_forward, r, gamma, beta) -> None:
    """Part of ``check_batchnorm_forward``: running statistics after three train steps."""
    with g.part("running statistics after three train steps (momentum 0.3, batch sizes "
                "4, 6, 3)", weight=1):
        bn_s = {"mode": "train", "momentum": 0.3, "eps": 1e-5,
                "running_mean": np.zeros(5), "running_var": np.ones(5)}
        exp_bn = copy_param(bn_s)
        wrong = {"M6": (copy_param(bn_s), {"flip": True}), "M7": (copy_param(bn_s), {"run_ddof": 0})}
        for n in (4, 6, 3):
            xs = _bn_case(r, N=n)[0]
            out, _ = unpack(g.call(batchnorm_forward, xs.copy(), gamma.copy(), beta.copy(),
                                   bn_s), 2, "out, cache")
            _reference(g)(xs, gamma, beta, exp_bn)
            for state, kw in wrong.values():
                _, state["running_mean"], state["running_var"] = _bn_wrong_g(g,
                    xs, gamma, beta, state, **kw)
        wrong_runs = {k: (s["running_mean"], s["running_var"]) for k, (s, _) in wrong.items()}
        _compare_running(g, bn_s, exp_bn, {"running_mean": np.zeros(5),
                                           "running_var": np.ones(5)},
                         wrong_runs, RTOL64, ATOL64)


def _forward_defaults(g, batchnorm_forward, x, gamma, beta) -> None:
    """Part of ``check_batchnorm_forward``: defaults when bn_param holds only 'mode'."""
    with g.part("defaults when bn_param holds only 'mode': eps=1e-5, momentum=0.1, "
                "running_mean=0, running_var=1", weight=1):
        bn_d = {"mode": "train"}
        out, bn_after = _call_bn(g, batchnorm_forward, x, gamma, beta, bn_d)
        exp, exp_bn = _ref_bn(g, x, gamma, beta, bn_d)
        g.compare("out", out, exp, rtol=RTOL64, atol=ATOL64, mistakes=_out_mistakes_g(g,
            x, gamma, beta, bn_d,
            eps_default=lambda: _bn_wrong_g(g, x, gamma, beta, bn_d, eps=1e-8)[0]))
        wrong = {k: _bn_wrong_g(g, x, gamma, beta, bn_d, **kw)[1:] for k, kw in
                 {"M6": {"flip": True}, "M7": {"run_ddof": 0}}.items()}
        _compare_running(g, bn_after, exp_bn, {"running_mean": np.zeros(5),
                                               "running_var": np.ones(5)},
                         wrong, RTOL64, ATOL64)
        out_t, _ = _call_bn(g, batchnorm_forward, x, gamma, beta, {"mode": "test"})
        g.compare("test-mode out with default running statistics", out_t,
                  _ref_bn(g, x, gamma, beta, {"mode": "test"})[0], rtol=RTOL64, atol=ATOL64,
                  mistakes=_out_mistakes_g(g, x, gamma, beta, {"mode": "test"}))


def _forward_test_mode(g, batchnorm_forward, r, gamma, beta, bn) -> None:
    """Part of ``check_batchnorm_forward``: test mode normalizes with the running statistics and leaves them unchanged."""
    with g.part("test mode normalizes with the running statistics and leaves them unchanged",
                weight=1.5):
        bn_t = dict(copy_param(bn), mode="test")
        xt = _bn_case(r, N=6)[0]
        out, bn_after = _call_bn(g, batchnorm_forward, xt, gamma, beta, bn_t)
        g.compare("out", out, _ref_bn(g, xt, gamma, beta, bn_t)[0], rtol=RTOL64, atol=ATOL64,
                  mistakes=_out_mistakes_g(g, xt, gamma, beta, bn_t))
        for name in ("running_mean", "running_var"):
            if not np.array_equal(bn_after.get(name), bn_t[name]):
                raise Failure(f"test mode changed bn_param['{name}']; only train mode updates "
                              "the running statistics.")
        one, _ = _call_bn(g, batchnorm_forward, xt[:1], gamma, beta, bn_t)
        g.compare("test-mode out for a single sample (N=1)", one,
                  _ref_bn(g, xt[:1], gamma, beta, bn_t)[0], rtol=RTOL64, atol=ATOL64)


def _forward_float32(g, batchnorm_forward, r) -> None:
    """Part of ``check_batchnorm_forward``: float32 in, float32 out."""
    with g.part("float32 in, float32 out (train and test mode)", weight=1):
        x32 = r.normal(loc=1.0, scale=2.0, size=(16, 3)).astype(np.float32)
        g32, b32 = np.float32([1.5, 0.5, -1.0]), np.float32([0.0, 1.0, -2.0])
        bn32 = {"mode": "train", "running_mean": np.zeros(3, np.float32),
                "running_var": np.ones(3, np.float32)}
        out, bn_after = _call_bn(g, batchnorm_forward, x32, g32, b32, bn32)
        exp, exp_bn = _ref_bn(g, x32, g32, b32, bn32)
        _dtype("out (train)", out, np.float32)
        g.compare("out (train)", out, exp, rtol=RTOL32, atol=ATOL32,
                  mistakes=_out_mistakes_g(g, x32, g32, b32, bn32, rtol=RTOL32, atol=ATOL32))
        wrong = {k: _bn_wrong_g(g, x32, g32, b32, bn32, **kw)[1:] for k, kw in
                 {"M6": {"flip": True}, "M7": {"run_ddof": 0}}.items()}
        _compare_running(g, bn_after, exp_bn, bn32, wrong, RTOL32, ATOL32)
        # test mode on the reference's running statistics (in the input's dtype), never on
        # what the student's call wrote back (issue 19: the reference reads no student value)
        bn32t = {"mode": "test", **{k: exp_bn[k].astype(np.float32)
                                    for k in ("running_mean", "running_var")}}
        out, _ = _call_bn(g, batchnorm_forward, x32, g32, b32, bn32t)
        _dtype("out (test)", out, np.float32)
        g.compare("out (test)", out, _ref_bn(g, x32, g32, b32, bn32t)[0], rtol=RTOL32,
                  atol=ATOL32,
                  mistakes=_out_mistakes_g(g, x32, g32, b32, bn32t, rtol=RTOL32, atol=ATOL32))


def _forward_two_samples(g, batchnorm_forward) -> None:
    """Part of ``check_batchnorm_forward``: N=2 samples, D=1 feature."""
    with g.part("N=2 samples, D=1 feature: output and running_var (N - 1 = 1)", weight=0.5):
        x2, g2, b2 = np.array([[1.0], [4.0]]), np.array([2.0]), np.array([0.5])
        bn2 = {"mode": "train", "running_mean": np.zeros(1), "running_var": np.ones(1)}
        out, bn_after = _call_bn(g, batchnorm_forward, x2, g2, b2, bn2)
        exp, exp_bn = _ref_bn(g, x2, g2, b2, bn2)
        g.compare("out", out, exp, rtol=RTOL64, atol=ATOL64,
                  mistakes=_out_mistakes_g(g, x2, g2, b2, bn2))
        wrong = {"M7": _bn_wrong_g(g, x2, g2, b2, bn2, run_ddof=0)[1:],
                 "M6": _bn_wrong_g(g, x2, g2, b2, bn2, flip=True)[1:]}
        _compare_running(g, bn_after, exp_bn, bn2, wrong, RTOL64, ATOL64)


def _forward_constant_feature(g, batchnorm_forward, r) -> None:
    """Part of ``check_batchnorm_forward``: a constant feature is mapped to beta."""
    with g.part("a constant feature is mapped to beta (no nan/inf)", weight=0.5):
        xc = np.column_stack([np.full(6, 3.0), r.normal(size=6)])
        gc, bc = np.array([2.0, 1.0]), np.array([-0.5, 0.0])
        bnc = {"mode": "train"}
        out, _ = _call_bn(g, batchnorm_forward, xc, gc, bc, bnc)
        g.compare("out", out, _ref_bn(g, xc, gc, bc, bnc)[0], rtol=RTOL64, atol=ATOL64,
                  mistakes=_out_mistakes_g(g,
                      xc, gc, bc, bnc,
                      M5=lambda: _bn_wrong_g(g, xc, gc, bc, bnc, eps_mode="missing")[0]))


def _forward_large_mean(g, batchnorm_forward, r) -> None:
    """Part of ``check_batchnorm_forward``: features with a large mean."""
    with g.part("features with a large mean (1e4) and a small spread (std 1e-2), float64",
                weight=0.5):
        # float64 on purpose (module docstring). var ~1e-4 vs eps 1e-5: the variance decides
        # the output, and a one-pass variance is off by ~1e-8 absolute, ~1e-4 relative.
        xo = 1e4 + 1e-2 * r.normal(size=(10, 3))
        go, bo = np.array([1.0, 2.0, 0.5]), np.array([0.0, 1.0, -1.0])
        bno = {"mode": "train"}
        out, _ = _call_bn(g, batchnorm_forward, xo, go, bo, bno)
        try:
            g.compare("out", out, _ref_bn(g, xo, go, bo, bno)[0], rtol=1e-6, atol=1e-8,
                      mistakes=_out_mistakes_g(g,
                          xo, go, bo, bno, rtol=1e-6, atol=1e-8,
                          M4=lambda: _bn_wrong_g(g, xo, go, bo, bno, onepass=True)[0]))
        except Failure as f:
            if DIAGNOSIS not in str(f):
                centred, _ = _call_bn(g, batchnorm_forward, xo - 1e4, go, bo, bno)
                if close(centred, _ref_bn(g, xo - 1e4, go, bo, bno)[0], 1e-6, 1e-8):
                    raise Failure(f"{f}\n      {_diagnose('M4')}") from None
            raise


def _forward_errors(g, batchnorm_forward, x, gamma, beta, bn) -> None:
    """Part of ``check_batchnorm_forward``: ValueError for a mode other than 'train'/'test', and for N=1 in train mode."""
    with g.part("ValueError for a mode other than 'train'/'test', and for N=1 in train mode",
                weight=1):
        for bad in ("eval", "training"):
            g.expect_raises(ValueError, batchnorm_forward, x.copy(), gamma, beta,
                            dict(copy_param(bn), mode=bad), what=f"mode={bad!r}")
        g.expect_raises(ValueError, batchnorm_forward, x[:1].copy(), gamma, beta,
                        copy_param(bn), what="train mode with N=1 (a variance needs two samples)")


def _forward_inputs_unchanged(g, batchnorm_forward, x, gamma, beta, bn) -> None:
    """Part of ``check_batchnorm_forward``: x, gamma and beta are left unchanged."""
    with g.part("x, gamma and beta are left unchanged (train and test mode)", weight=0.5):
        for mode in ("train", "test"):
            args = (x.copy(), gamma.copy(), beta.copy())
            g.call(batchnorm_forward, *args, dict(copy_param(bn), mode=mode))
            _unchanged({"x": x, "gamma": gamma, "beta": beta},
                       {"x": args[0], "gamma": args[1], "beta": args[2]})


@hidden_check("batchnorm_forward", points=6, uses=("batch_stats", "normalize", "scale_shift"),
              composed=_bn_composed)
def check_batchnorm_forward(g: Grader, batchnorm_forward) -> None:
    """Train and test mode, running statistics, defaults, dtypes, errors; PyTorch semantics."""
    r = rng(204)
    x, gamma, beta, bn = _bn_case(r)
    _forward_train_output(g, batchnorm_forward, x, gamma, beta, bn)
    _forward_one_step(g, batchnorm_forward, x, gamma, beta, bn)
    _forward_three_steps(g, batchnorm_forward, r, gamma, beta)
    _forward_defaults(g, batchnorm_forward, x, gamma, beta)
    _forward_test_mode(g, batchnorm_forward, r, gamma, beta, bn)
    _forward_float32(g, batchnorm_forward, r)
    _forward_two_samples(g, batchnorm_forward)
    _forward_constant_feature(g, batchnorm_forward, r)
    _forward_large_mean(g, batchnorm_forward, r)
    _forward_errors(g, batchnorm_forward, x, gamma, beta, bn)
    _forward_inputs_unchanged(g, batchnorm_forward, x, gamma, beta, bn)
