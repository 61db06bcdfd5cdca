"""Hidden check of notebook 03's spatial BatchNorm backward pass (``spatial_batchnorm_backward``).

The (N, C, H, W) backward is the 2-D one on the (N*H*W, C) rows, channels last: the notebook's
solution calls the student's ``batchnorm_backward`` on those rows, so the check declares it
(``uses=``; a mistake of ``batchnorm_backward``, or of the stages it calls, is charged there
only: ``autograder/checks/carried.py``). Besides the spatial mistakes (M13 sums per activation,
M14 channels mixed by a bare reshape) it names the 2-D backward's M11 and M15-M18 made on the
rows, with the inputs, data and tolerances of :mod:`autograder.checks.batchnorm_backward`.
"""

from __future__ import annotations

import copy

import numpy as np

from autograder import reference as ref
from autograder.checks.batchnorm_backward import (
    _as64,
    _call_backward,
    _closest,
    _dgamma_mistakes,
    _dx_mistakes,
    _example,
    _m15,
    _m15_text,
    _scale,
    _tols,
)
from autograder.checks.framework import DIAGNOSIS, Failure, hidden_check, rng, unpack
from autograder.reference import batchnorm as ref_batchnorm

__all__ = ["check_spatial_batchnorm_backward"]


def _rows_of(value, shape):
    """A student's (N, C, H, W) array as (N*H*W, C) rows in float64, or None if it is not one."""
    if np.shape(value) != tuple(shape):
        return None
    try:
        return ref_batchnorm._nchw_to_rows(np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError):
        return None


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
        expected = [np.asarray(e) for e in (_spatial_composed(g.uses, dout, cache) if g.carrying
                                            else ref.spatial_batchnorm_backward(dout, cache))]
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
