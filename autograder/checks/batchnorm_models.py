"""The known mistakes of 02's BatchNorm forward pass, as values: their plain-words texts
(``EXPLAIN``, ids of ``autograder/MISCONCEPTIONS.md``) and what ``batchnorm_forward`` returns under
each (``_bn_wrong``, ``_out_mistakes``), for the checks of ``batch_stats``, ``normalize``,
``scale_shift``, ``batchnorm_forward`` and ``spatial_batchnorm_forward``, and the sandwich of 04.

The tolerances are justified in :mod:`autograder.checks.batchnorm_forward`'s docstring.
"""

from __future__ import annotations

import contextlib

import numpy as np

from autograder.checks.framework import (
    DIAGNOSIS,
    Failure,
    close,
    quiet,
    require_unchanged,
)

RTOL64, ATOL64 = 1e-7, 1e-10  # see the module docstring
RTOL32, ATOL32 = 1e-4, 1e-5  # see the module docstring

# ----------------------------------------------------------------------------- plain-words texts
EXPLAIN = {
    "M1": "you divide by N - 1 (np.var(..., ddof=1) or np.std(..., ddof=1)). BatchNorm "
    "normalizes with the biased batch variance, dividing by N; only running_var uses N - 1.",
    "M2": "the statistics are taken over the wrong axis: per sample (a row) instead of per "
    "feature (a column). Use axis=0: one mean and one variance for each of the D features.",
    "M2_image": "the statistics are per image and channel, over H and W only (that is "
    "instance normalization). BatchNorm2d takes one mean and one variance per channel over "
    "the whole batch too: axes (0, 2, 3), N*H*W values each.",
    "M3_missing": "eps is missing: you divide by sqrt(var). eps belongs inside the square "
    "root, sqrt(var + eps); it matters whenever var is not much larger than eps.",
    "M3_outside": "eps is added outside the square root, sqrt(var) + eps. It belongs inside: "
    "sqrt(var + eps). The two differ whenever var is comparable to eps.",
    "M4": "the variance looks computed in one pass, E[x^2] - E[x]^2. With a large mean (here "
    "1e4) the two terms are huge and nearly equal and their difference loses all its digits "
    "(it can even be negative). Subtract the mean first: mean((x - mu)**2).",
    "M5": "a constant feature (variance 0) gives nan/inf: 0 / sqrt(0). Keep eps inside the "
    "square root, sqrt(var + eps), so that a constant feature maps to 0 (then to beta).",
    "M6": "the running average uses the momentum the other way round: your running statistics "
    "move by (1 - momentum) toward the batch value instead of by momentum. With PyTorch's "
    "convention, running = (1 - momentum) * running + momentum * batch_stat (momentum=0.1 "
    "moves 10% of the way).",
    "M7": "running_var is updated with the biased batch variance (divide by N). PyTorch updates "
    "it with the unbiased variance, var * N / (N - 1), while it still normalizes the batch "
    "with the biased one.",
    "M8_test": "test mode normalizes with the statistics of the test batch. It must use "
    "bn_param['running_mean'] and bn_param['running_var'] (the output of one test sample "
    "must not depend on the others).",
    "M8_train": "train mode normalizes with the running statistics. In train mode use the "
    "batch mean and biased batch variance; the running ones are only for test mode.",
    "M9": "the running statistics in bn_param did not change after a train step. Store the "
    "new arrays in the caller's dict (bn_param['running_mean'] = ...); rebinding bn_param to a "
    "new dict does not reach the caller.",
    "M32": "the running statistics are updated in place (bn_param['running_mean'] += ... or "
    "*=): the arrays the caller passed in changed. A caller that copies bn_param with "
    "dict(bn_param, mode=...) shares those arrays, so its network's running statistics change "
    "behind its back (04's mode_accuracies). Compute new arrays and store them: "
    "bn_param['running_mean'] = (1 - momentum) * running_mean + momentum * mean.",
    "M10": "your function changed an input array in place (e.g. x -= mean). Work on new "
    "arrays: the caller's x, gamma and beta must be left as they were.",
    "M11": "the output is gamma * x + beta: the scale and shift are applied to the raw input "
    "x instead of to the normalized x_hat.",
    "M12": "the numerator is squared, (x - mu)**2 / sqrt(var + eps). It is x - mu, to the "
    "first power; the output then has both signs.",
    "M13": "the statistics are per activation (a separate mean for every channel *and* pixel, "
    "over N only). Spatial BatchNorm takes one mean and one variance per channel, over the "
    "N, H and W axes, so gamma, beta and the running statistics have shape (C,).",
    "M14": "the channels got mixed: x.reshape(-1, C) on an (N, C, H, W) array does not put "
    "one channel in each column. Move C last first, x.transpose(0, 2, 3, 1).reshape(-1, C), "
    "and undo both steps in the reverse order on the way back.",
    "M14_back": "the statistics are right but the output is put back in the wrong order: "
    "after the (N*H*W, C) rows, reshape to (N, H, W, C) and then transpose(0, 3, 1, 2); a "
    "direct reshape to (N, C, H, W) scrambles the values.",
    "swap": "gamma and beta are swapped: the output is beta * x_hat + gamma. gamma scales, "
    "beta shifts: out = gamma * x_hat + beta.",
    "eps_default": "the default eps is not 1e-5 (PyTorch's BatchNorm1d default); bn_param "
    "without an 'eps' key must use eps = 1e-5.",
}


def _m(key: str) -> str:
    """The misconception id shown in a diagnosis line for an EXPLAIN key."""
    return key.split("_")[0]


def _mistakes(**values) -> dict:
    """``mistakes=`` for ``Grader.compare``: EXPLAIN key -> (value or callable, explanation).

    Keys with a suffix (``M3_missing``) are shown by their id with the variant in brackets so
    that two variants of one misconception can be told apart.
    """
    out = {}
    for key, value in values.items():
        label = _m(key) if "_" not in key else f"{_m(key)} ({key.split('_', 1)[1]})"
        if key == "swap":
            label = "gamma/beta swapped"
        elif key == "eps_default":
            label = "M3 (default eps)"
        # Grader.compare evaluates a callable value quietly (mistakes may divide by zero)
        out[label] = (value, EXPLAIN[key] if key in EXPLAIN else EXPLAIN[_m(key)])
    return out


def _diagnose(key: str) -> str:
    return f"{DIAGNOSIS} {_m(key)}: {EXPLAIN[key]}"


def _unchanged(originals: dict, now: dict) -> None:
    for name, before in originals.items():
        require_unchanged(name, before, now[name], EXPLAIN["M10"])


def _dtype(what: str, value, dtype) -> None:
    got = getattr(value, "dtype", None)
    if got != dtype:
        raise Failure(
            f"{what}: dtype {got}, expected {np.dtype(dtype)} (the dtype of x: float32 in, "
            "float32 out; cast with .astype(x.dtype) if you compute in float64)"
        )


# ----------------------------------------------------------------------------- mistaken models
def _bn_wrong(x, gamma, beta, bn, *, ddof=0, run_ddof=1, flip=False, use_x=False, square=False,
              eps_mode="inside", axis=0, onepass=False, train_stats="batch",
              test_stats="running", eps=None, stats=None):
    """What ``batchnorm_forward`` returns under one set of mistakes: (out, running_mean, running_var).

    All in float64, on copies. The default arguments reproduce the reference. ``stats``, when
    given, is the ``batch_stats`` to take the batch mean and biased variance from (the
    student's own in the carried-forward run, so that its mistake is taken out of the others).
    """
    x = np.asarray(x, dtype=np.float64)
    mode = bn["mode"]
    eps = bn.get("eps", 1e-5) if eps is None else eps
    m = bn.get("momentum", 0.1)
    D = x.shape[1]
    rm = np.asarray(bn.get("running_mean", np.zeros(D)), dtype=np.float64)
    rv = np.asarray(bn.get("running_var", np.ones(D)), dtype=np.float64)
    own = _own_stats(stats, x) if axis == 0 and not onepass else None
    batch_mean = x.mean(axis=axis, keepdims=True) if own is None else own[0][None]
    if onepass:
        batch_var = (x**2).mean(axis=axis, keepdims=True) - batch_mean**2
    elif own is not None:
        batch_var = own[1][None] * (x.shape[0] / (x.shape[0] - ddof))
    else:
        batch_var = x.var(axis=axis, ddof=ddof, keepdims=True)
    use_batch = (train_stats if mode == "train" else test_stats) == "batch"
    mu, var = (batch_mean, batch_var) if use_batch else (rm, rv)
    num = (x - mu) ** 2 if square else x - mu
    if eps_mode == "inside":
        den = np.sqrt(var + eps)
    elif eps_mode == "missing":
        den = np.sqrt(var)
    else:
        den = np.sqrt(var) + eps
    x_hat = num / den
    out = gamma * (x if use_x else x_hat) + beta
    if mode == "train":
        b_mean = x.mean(axis=0) if own is None else own[0]
        b_var = x.var(axis=0, ddof=run_ddof) if own is None else \
            own[1] * (x.shape[0] / (x.shape[0] - run_ddof))
        a = (1 - m) if flip else m
        rm = (1 - a) * rm + a * b_mean
        rv = (1 - a) * rv + a * b_var
    return out, rm, rv


def _own_stats(stats, x):
    """(mean, biased var) as float64 arrays from a ``batch_stats`` function, or None without one."""
    if stats is None:
        return None
    mean, var = stats(x.copy())
    return np.asarray(mean, dtype=np.float64), np.asarray(var, dtype=np.float64)


def _out_mistakes(x, gamma, beta, bn, *, rtol=RTOL64, atol=ATOL64, stats=None, **first) -> dict:
    """``mistakes=`` for batchnorm_forward's output on ``(x, bn)``.

    The values in ``first`` (EXPLAIN key -> value) are always tried, first. Then each formula
    mistake of ``bn``'s mode, unless on this input its output coincides (within ``rtol``,
    ``atol``) with another candidate's: the output cannot tell them apart, so neither is named
    (e.g. with running statistics 0 and 1, "train mode uses the running statistics" is
    ``gamma * x + beta`` up to eps; a missing eps on a constant feature is M5's 0 / 0).
    """
    if bn["mode"] == "train":
        kinds = {"M1": {"ddof": 1}, "M2": {"axis": 1}, "M3_missing": {"eps_mode": "missing"},
                 "M3_outside": {"eps_mode": "outside"}, "M11": {"use_x": True},
                 "M12": {"square": True}, "M8_train": {"train_stats": "running"}}
    else:
        kinds = {"M8_test": {"test_stats": "batch"}, "M3_missing": {"eps_mode": "missing"},
                 "M3_outside": {"eps_mode": "outside"}, "M11": {"use_x": True},
                 "M12": {"square": True}}
    if "eps" not in bn:  # a default other than PyTorch's 1e-5 (the smallest one seen: 1e-8)
        kinds["eps_default"] = {"eps": 1e-8}
    fixed = {k: np.asarray(quiet(v) if callable(v) else v) for k, v in first.items()}
    formula = {}
    for k, kw in kinds.items():
        if k not in fixed:
            with contextlib.suppress(Exception):  # a student's batch_stats may return anything
                formula[k] = quiet(lambda kw=kw: _bn_wrong(x, gamma, beta, bn, stats=stats,
                                                           **kw)[0])
    candidates = {**fixed, **formula}
    def mistake(key):  # two spellings of one mistake may coincide: that tells them apart
        return "M3" if key == "eps_default" else _m(key)

    clear = {k: v for k, v in formula.items()
             if not any(close(v, w, rtol, atol) for j, w in candidates.items()
                        if mistake(j) != mistake(k))}
    return _mistakes(**fixed, **clear)
