"""Hidden check for assignment 02's ``spatial_batchnorm_forward`` (N, C, H, W inputs).

The per-channel statistics over N, H and W of ``torch.nn.BatchNorm2d``
(https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm2d.html). Besides the spatial
mistakes (M13 per-activation statistics, M14 NCHW reshaped to (-1, C) without moving C last),
the check names the per-feature mistakes of :mod:`autograder.checks.batchnorm_forward` made per
channel (M1-M5, M8, M11, M12): a spatial forward usually reuses the student's
``batchnorm_forward``. Tolerances are that module's.
"""

from __future__ import annotations

import re

import numpy as np

from autograder import reference as ref
from autograder.checks.batchnorm_forward import (
    ATOL32,
    ATOL64,
    RTOL32,
    RTOL64,
    _bn_wrong,
    _call_bn,
    _compare_running,
    _diagnose,
    _dtype,
    _mistakes,
    _unchanged,
)
from autograder.checks.framework import (
    DIAGNOSIS,
    Failure,
    Grader,
    StudentError,
    close,
    copy_param,
    fmt,
    hidden_check,
    rng,
    unpack,
)
from autograder.reference import batchnorm as ref_batchnorm

__all__ = ["check_spatial_batchnorm_forward"]


def _spatial_wrong(x, gamma, beta, bn, kind, bnf=ref.batchnorm_forward):
    """(out, running_mean, running_var) of spatial BN under one mistake, float64; ``bnf`` is the
    batchnorm_forward a reshaping mistake passes its rows to (the student's own in the
    carried-forward run)."""
    N, C, H, W = x.shape
    g4, b4 = gamma[None, :, None, None], beta[None, :, None, None]
    eps, m = bn.get("eps", 1e-5), bn.get("momentum", 0.1)
    if kind == "M13":  # per activation: statistics over N only, for every (c, h, w)
        mu, var = x.mean(axis=0), x.var(axis=0)
        out = g4 * (x - mu) / np.sqrt(var + eps) + b4
        rm = (1 - m) * np.zeros((C, H, W)) + m * mu
        rv = (1 - m) * np.ones((C, H, W)) + m * x.var(axis=0, ddof=1)
        return out, rm, rv
    if kind == "M13_flat":  # the same, flattened to (N, C*H*W) and left flat
        o, rm, rv = _spatial_wrong(x, gamma, beta, bn, "M13")
        return o, rm.ravel(), rv.ravel()
    if kind == "M2":  # per sample and channel (instance norm): over H, W only
        mu, var = x.mean(axis=(2, 3), keepdims=True), x.var(axis=(2, 3), keepdims=True)
        return g4 * (x - mu) / np.sqrt(var + eps) + b4, None, None
    if kind == "M14":  # reshape(-1, C) without transposing, and back the same way
        rows = x.reshape(-1, C)
        bn_w = copy_param(bn)
        out, _ = unpack(bnf(rows, gamma.copy(), beta.copy(), bn_w), 2, "out, cache")
        return np.asarray(out).reshape(N, C, H, W), bn_w.get("running_mean"), \
            bn_w.get("running_var")
    if kind == "M14_back":  # right rows, wrong way back
        rows = x.transpose(0, 2, 3, 1).reshape(-1, C)
        out, _ = unpack(bnf(rows, gamma.copy(), beta.copy(), copy_param(bn)), 2, "out, cache")
        return np.asarray(out).reshape(N, C, H, W), None, None
    raise ValueError(kind)


def _spatial_rows_wrong(x, gamma, beta, bn, **mistake):
    """(out, running_mean, running_var) of per-channel BN with one of ``_bn_wrong``'s mistakes
    (M1, M3, M4, M8, M11, M12, ...) made on the (N*H*W, C) rows, float64."""
    out, rm, rv = _bn_wrong(ref_batchnorm._nchw_to_rows(np.asarray(x, np.float64)), gamma, beta, bn,
                            **mistake)
    return ref_batchnorm._rows_to_nchw(out, x.shape), rm, rv


def _spatial_formula_mistakes(x, gamma, beta, bn, **only) -> dict:
    """``mistakes=`` for a spatial output: the per-feature mistakes of batchnorm_forward, made
    per channel. ``only`` replaces the default set (EXPLAIN key -> ``_bn_wrong`` arguments)."""
    kinds = only or {"M1": {"ddof": 1}, "M3_missing": {"eps_mode": "missing"},
                     "M3_outside": {"eps_mode": "outside"}, "M11": {"use_x": True},
                     "M12": {"square": True}, "M8_train": {"train_stats": "running"}}
    return {k: (lambda kw=kw: _spatial_rows_wrong(x, gamma, beta, bn, **kw)[0])
            for k, kw in kinds.items()}


def _m13_from(g: Grader, err: StudentError, xx) -> None:
    """Fail with M13 if the student's error is a broadcast that involves a per-activation
    shape, (C, H, W) or C*H*W values; otherwise return (the caller re-raises)."""
    shapes = [tuple(int(d) for d in re.findall(r"\d+", m))
              for m in re.findall(r"\(([\d,\s]*)\)", str(err.exc))]
    _, c, h, w_ = xx.shape
    if "broadcast" in str(err.exc) and any(sh == (c, h, w_) or c * h * w_ in sh
                                           for sh in shapes):
        rows = ref_batchnorm._nchw_to_rows(np.asarray(xx, np.float64))
        raise Failure(
            f"{g._describe_student_error(err)}\n      gamma, beta and the running "
            f"statistics have shape (C,) = ({c},).\n      yours:    statistics of shape "
            f"{' and '.join(map(str, shapes))}, which do not broadcast\n      expected: "
            f"one mean per channel over (N, H, W), shape ({c},): {fmt(rows.mean(axis=0))}"
            f"\n      {_diagnose('M13')}") from None
    if "broadcast" in str(err.exc) and (c,) in shapes and xx.shape in shapes:
        raise Failure(
            f"{g._describe_student_error(err)}\n      gamma, beta and the per-channel "
            f"statistics have shape (C,) = ({c},); against an (N, C, H, W) array they line "
            f"up with W, not with C. Reshape them to (1, C, 1, 1) first, e.g. "
            f"gamma.reshape(1, -1, 1, 1).") from None


def _spatial_train_output(g, x, gamma, beta, bn, reference, w, call) -> None:
    """Part of ``check_spatial_batchnorm_forward``: train-mode output."""
    with g.part("train-mode output: one mean and variance per channel over (N, H, W)",
                weight=2):
        out, _ = call(x, bn)
        g.compare("out", out, reference(x, bn)[0], rtol=RTOL64, atol=ATOL64, mistakes=_mistakes(
            M13=w("M13"), M14=w("M14"), M14_back=w("M14_back"), M2_image=w("M2"),
            **_spatial_formula_mistakes(x, gamma, beta, bn)))


def _spatial_running_stats(g, x, gamma, beta, bn, C, reference, w, call) -> None:
    """Part of ``check_spatial_batchnorm_forward``: running_mean and running_var have shape."""
    with g.part("running_mean and running_var have shape (C,), unbiased over N*H*W - 1",
                weight=1):
        _, bn_after = call(x, bn)
        _, exp_bn = reference(x, bn)
        rows = x.transpose(0, 2, 3, 1).reshape(-1, C)
        wrong = {
            "M13": (w("M13", 1)(), w("M13", 2)()),
            "M13_flat": (w("M13_flat", 1)(), w("M13_flat", 2)()),
            "M14": (w("M14", 1)(), w("M14", 2)()),
            "M7": _bn_wrong(rows, gamma, beta, bn, run_ddof=0)[1:],
            "M6": _bn_wrong(rows, gamma, beta, bn, flip=True)[1:],
        }
        _compare_running(g, bn_after, exp_bn, bn, wrong, RTOL64, ATOL64)


def _spatial_test_mode(g, x, gamma, beta, bn, reference, call) -> None:
    """Part of ``check_spatial_batchnorm_forward``: test mode uses the running statistics per channel."""
    with g.part("test mode uses the running statistics per channel", weight=1):
        bn_t = dict(copy_param(bn), mode="test")
        out, _ = call(x, bn_t)
        g.compare("out", out, reference(x, bn_t)[0], rtol=RTOL64, atol=ATOL64,
                  mistakes=_mistakes(M8_test=lambda: reference(x, bn)[0],
                                     M14=lambda: _spatial_wrong(x, gamma, beta, bn_t, "M14",
                                                                g.uses.batchnorm_forward)[0],
                                     **_spatial_formula_mistakes(
                                         x, gamma, beta, bn_t,
                                         M3_missing={"eps_mode": "missing"},
                                         M3_outside={"eps_mode": "outside"},
                                         M11={"use_x": True}, M12={"square": True})))


def _spatial_float32(g, spatial_batchnorm_forward, r, gamma, beta, C, loc, scale, reference) -> None:
    """Part of ``check_spatial_batchnorm_forward``: float32 in, float32 out; x is left unchanged."""
    with g.part("float32 in, float32 out; x is left unchanged", weight=0.5):
        x32 = (loc + scale * r.normal(size=(2, C, 3, 3))).astype(np.float32)
        x_in = x32.copy()
        try:
            out, _ = unpack(g.call(spatial_batchnorm_forward, x_in, gamma.astype(np.float32),
                                   beta.astype(np.float32), {"mode": "train"}), 2, "out, cache")
        except StudentError as err:
            _m13_from(g, err, x32)
            raise
        _unchanged({"x": x32}, {"x": x_in})
        _dtype("out", out, np.float32)
        g.compare("out", out, reference(x32, {"mode": "train"})[0], rtol=RTOL32,
                  atol=ATOL32, mistakes=_mistakes(**{
                      k: (lambda k=k: _spatial_wrong(x32.astype(np.float64), gamma, beta,
                                                     {"mode": "train"}, k,
                                                     g.uses.batchnorm_forward)[0])
                      for k in ("M13", "M14", "M14_back")}))


def _spatial_single_image(g, x, gamma, beta, reference, call) -> None:
    """Part of ``check_spatial_batchnorm_forward``: a single image."""
    with g.part("a single image (N=1, H*W > 1) trains: statistics over its pixels", weight=0.5):
        x1 = x[:1]
        out, _ = call(x1, {"mode": "train"})
        g.compare("out", out, reference(x1, {"mode": "train"})[0], rtol=RTOL64, atol=ATOL64,
                  mistakes=_mistakes(**_spatial_formula_mistakes(x1, gamma, beta,
                                                                 {"mode": "train"})))


def _spatial_hard_channels(g, gamma, beta, C, reference, call) -> None:
    """Part of ``check_spatial_batchnorm_forward``: a channel with a large mean."""
    with g.part("a channel with a large mean (1e4) and std 1e-2, and a constant channel "
                "(float64)", weight=0.5):
        # As in batchnorm_forward's offset part: var ~1e-4 against eps 1e-5, so the variance
        # decides the output, and a one-pass variance is off by ~1e-4 relative. Channel 1 is
        # exactly 3.0 everywhere: variance 0, output beta[1].
        ro = rng(206)
        xo = ro.normal(size=(2, C, 3, 3))
        xo[:, 0] = 1e4 + 1e-2 * xo[:, 0]
        xo[:, 1] = 3.0
        offset = np.zeros((1, C, 1, 1))
        offset[0, 0] = 1e4
        bno = {"mode": "train"}
        out, _ = call(xo, bno)
        formula = _spatial_formula_mistakes(xo, gamma, beta, bno, M4={"onepass": True},
                                            M5={"eps_mode": "missing"}, M1={"ddof": 1},
                                            M3_outside={"eps_mode": "outside"})
        try:
            g.compare("out", out, reference(xo, bno)[0], rtol=1e-6, atol=1e-8,
                      mistakes=_mistakes(**formula))
        except Failure as f:
            # the symptom of M4, whatever order the student sums in: right once centred
            if DIAGNOSIS not in str(f):
                centred, _ = call(xo - offset, bno)
                if close(centred, reference(xo - offset, bno)[0], 1e-6, 1e-8):
                    raise Failure(f"{f}\n      {_diagnose('M4')}") from None
            raise


def _composed(uses, x, gamma, beta, bn_param):
    """BatchNorm2d as the notebook's solution builds it: ``uses.batchnorm_forward`` on the
    (N*H*W, C) rows, put back as (N, C, H, W) (the student's own batchnorm_forward in the
    carried-forward run, autograder/checks/carried.py)."""
    x = np.asarray(x, np.float64)
    rows = ref_batchnorm._nchw_to_rows(x)
    out, _ = unpack(uses.batchnorm_forward(rows, gamma.copy(), beta.copy(), bn_param), 2,
                    "out, cache")
    return ref_batchnorm._rows_to_nchw(np.asarray(out), x.shape), bn_param


@hidden_check("spatial_batchnorm_forward", points=3, uses=("batchnorm_forward",))
def check_spatial_batchnorm_forward(g: Grader, spatial_batchnorm_forward) -> None:
    """Per-channel statistics over (N, H, W), as ``BatchNorm2d``."""
    r = rng(205)
    N, C, H, W = 3, 4, 2, 5
    loc = np.array([0.0, 4.0, -2.0, 1.0])[None, :, None, None]
    scale = np.array([1.0, 2.0, 0.5, 3.0])[None, :, None, None]
    x = loc + scale * r.normal(size=(N, C, H, W))
    gamma, beta = np.array([1.5, 0.5, 2.0, -1.0]), np.array([0.0, 1.0, -1.0, 0.5])
    bn = {"mode": "train", "eps": 1e-5, "momentum": 0.1,
          "running_mean": r.normal(size=C), "running_var": r.uniform(0.5, 2.0, size=C)}

    def reference(xx, bb):
        bb = copy_param(bb)
        if g.carrying:  # the reference composed with the student's own batchnorm_forward
            return _composed(g.uses, xx, gamma, beta, bb)
        out, _ = ref.spatial_batchnorm_forward(np.asarray(xx, np.float64), gamma, beta, bb)
        return out, bb

    bnf = g.uses.batchnorm_forward

    def w(kind, i=0):
        return lambda: _spatial_wrong(x, gamma, beta, bn, kind, bnf)[i]

    def call(xx, bb):
        """(out, the student's bn_param after the call), on copies; M13 on its errors."""
        try:
            return _call_bn(g, spatial_batchnorm_forward, xx, gamma, beta, bb)
        except StudentError as err:
            _m13_from(g, err, xx)
            raise

    _spatial_train_output(g, x, gamma, beta, bn, reference, w, call)
    _spatial_running_stats(g, x, gamma, beta, bn, C, reference, w, call)
    _spatial_test_mode(g, x, gamma, beta, bn, reference, call)
    _spatial_float32(g, spatial_batchnorm_forward, r, gamma, beta, C, loc, scale, reference)
    _spatial_single_image(g, x, gamma, beta, reference, call)
    _spatial_hard_channels(g, gamma, beta, C, reference, call)
