"""Hidden check for assignment 04's measuring exercise: ``mode_accuracies``.

The student's function receives plain data only (a network's ``params`` dict of arrays, its
``bn_params`` list of dicts, ``X``, ``y`` and an int batch size) and returns two floats, the
accuracies in train mode (batch statistics) and in test mode (running averages). It runs the
network with the student's own ``affine_bn_relu_forward``, so a wrong sandwich shows here too; the
report says so when no known mistake explains a failure.

Known mistakes are recognised from the values alone, so that they are found whether or not the
check can see the student's inputs afterwards:

* M8: test mode normalizes with batch statistics (or train mode with the running ones);
* M10: the train-mode passes wrote into ``bn_params``' running statistics, and the test-mode
  accuracy used the updated ones (measuring changed the network); when the check can see the
  inputs, modified ``params``/``bn_params`` are also named directly;
* the whole set normalized as one batch, the last partial batch kept, test mode measured on all
  N examples instead of the same n as train mode, and accuracies in percent.
"""

from __future__ import annotations

import copy

import numpy as np

from autograder import reference as ref
from autograder.checks.framework import (
    DIAGNOSIS,
    Failure,
    Grader,
    close,
    fmt,
    hidden_check,
    require_unchanged,
    rng,
    unpack,
)
from autograder.reference import experiments as ref_experiments

__all__ = ["check_mode_accuracies"]

RTOL, ATOL = 0.0, 1e-9
BATCH_SIZES = (8, 5, 16)  # with N = 50: the last partial batch has 2, 0 and 2 examples

_USES_SANDWICH = ("mode_accuracies runs your affine_bn_relu_forward: if its hidden check fails, "
                  "fix the sandwich first.")
EXPLAIN = {
    "M8": "the test-mode accuracy equals what batch statistics give: in test mode BatchNorm must "
          "normalize with bn_param's running_mean and running_var. Set each layer's "
          "bn_param['mode'] to 'test' (on a copy) for the test-mode pass.",
    "M8 train": "the train-mode accuracy equals what the running averages give: in train mode "
                "BatchNorm must normalize each batch with its own statistics. Set each layer's "
                "bn_param['mode'] to 'train' (on a copy) for the train-mode pass.",
    "M10": "the test-mode accuracy is what the running statistics give *after* your train-mode "
           "passes updated them: a train-mode pass writes new running_mean/running_var into the "
           "bn_param it receives. Measuring must not change the network: give each call a deep copy, "
           "e.g. bn = copy.deepcopy(bn_params[i]); bn['mode'] = 'train' (a dict(...) copy shares "
           "the running_mean and running_var arrays).",
    "one batch": "the train-mode accuracy is that of the n examples normalized as one single "
                 "batch: cut them into consecutive batches of batch_size, each normalized with its "
                 "own statistics.",
    "partial batch": "the last partial batch was kept. Use only the first "
                     "n = (N // batch_size) * batch_size examples, as the Solver does in training.",
    "all N": "the test-mode accuracy is measured on all N examples; measure both modes on the "
             "same first n = (N // batch_size) * batch_size examples.",
    "percent": "the accuracies are in percent; return fractions in [0, 1].",
    "order": "return (train_acc, test_acc), in that order.",
}


def _diag(**values) -> dict:
    """``mistakes=`` for ``Grader.compare``: label -> (wrong value or callable, explanation)."""
    return {k.replace("M8 train", "M8"): (v, EXPLAIN[k]) for k, v in values.items()}


# --------------------------------------------------------------------------- inputs
def _case(seed: int = 500, N: int = 50, D: int = 6, hidden=(7, 5), C: int = 4):
    """A random 3-layer BatchNorm network with running statistics unlike its batch statistics,
    inputs, and labels that the train-mode predictions (batches of 8) get right for about 60 %."""
    r = rng(seed)
    sizes = [D, *hidden, C]
    params, bn_params = {}, []
    for i in range(1, len(sizes)):
        params[f"W{i}"] = r.normal(size=(sizes[i - 1], sizes[i])) / np.sqrt(sizes[i - 1])
        params[f"b{i}"] = 0.3 * r.normal(size=sizes[i])
        if i < len(sizes) - 1:
            params[f"gamma{i}"] = r.uniform(0.5, 2.0, sizes[i])
            params[f"beta{i}"] = 0.5 * r.normal(size=sizes[i])
            bn_params.append({"mode": "train", "eps": 1e-5, "momentum": 0.1,
                              "running_mean": 0.8 * r.normal(size=sizes[i]),
                              "running_var": r.uniform(0.3, 3.0, sizes[i])})
    X = 0.5 + 1.5 * r.normal(size=(N, D))
    y = r.integers(0, C, size=N)
    pred = np.concatenate([np.argmax(ref_experiments._network_scores(params, bn_params, X[s:s + 8], "train"),
                                     axis=1) for s in range(0, N - N % 8, 8)])
    keep = r.random(len(pred)) < 0.6
    y[:len(pred)][keep] = pred[keep]
    return params, bn_params, X, y


def _accuracy(params, bn_params, X, y, mode: str, batch: int | None = None, write: bool = False):
    """Accuracy of X, y in ``mode``, cut into consecutive batches of ``batch`` (all at once if
    None); ``write``: the forward passes write their running statistics into ``bn_params``."""
    batch = len(y) if batch is None else batch
    correct = 0
    for s in range(0, len(y), batch):
        Xb, yb = X[s:s + batch], y[s:s + batch]
        if write:
            for bn in bn_params:
                bn["mode"] = mode
            scores = _scores_in_place(params, bn_params, Xb)
        else:
            scores = ref_experiments._network_scores(params, bn_params, Xb, mode)
        correct += int(np.count_nonzero(np.argmax(scores, axis=1) == yb))
    return correct / len(y)


def _scores_in_place(params, bn_params, X):
    L = len(bn_params) + 1
    h = X
    for i in range(1, L):
        h, _ = ref.affine_bn_relu_forward(h, params[f"W{i}"], params[f"b{i}"], params[f"gamma{i}"],
                                          params[f"beta{i}"], bn_params[i - 1])
    return ref.affine_forward(h, params[f"W{L}"], params[f"b{L}"])[0]


def _m10(params, bn_params, X, y, B: int, interleaved: bool) -> float:
    """Test-mode accuracy when the train-mode passes updated the running statistics first: all
    of them before the test pass, or batch by batch (train, then test, on each batch)."""
    bns = copy.deepcopy(bn_params)
    n = len(y) // B * B
    if not interleaved:
        _accuracy(params, bns, X[:n], y[:n], "train", B, write=True)
        return _accuracy(params, bns, X[:n], y[:n], "test", B)
    correct = 0.0
    for s in range(0, n, B):
        _accuracy(params, bns, X[s:s + B], y[s:s + B], "train", B, write=True)
        correct += _accuracy(params, bns, X[s:s + B], y[s:s + B], "test", B) * B
    return correct / n


def _wrong_one(params, bn_params, X, y, kind: str, B: int) -> float:
    """What one mistake gives for batch size B (a train or a test accuracy)."""
    n = len(y) // B * B
    Xn, yn = X[:n], y[:n]
    if kind == "test_batch":
        return _accuracy(params, bn_params, Xn, yn, "train", B)
    if kind in ("test_whole", "one_batch"):
        return _accuracy(params, bn_params, Xn, yn, "train")
    if kind == "train_running":
        return _accuracy(params, bn_params, Xn, yn, "test")
    if kind in ("m10_all", "m10_each"):
        return _m10(params, bn_params, X, y, B, interleaved=kind == "m10_each")
    if kind == "partial":
        return _accuracy(params, bn_params, X, y, "train", B)
    if kind == "all_n":
        return _accuracy(params, bn_params, X, y, "test")
    raise ValueError(f"unknown mistake {kind!r}")


def _wrong(params, bn_params, X, y, kind: str) -> np.ndarray:
    """The vector over BATCH_SIZES that one mistake gives (train or test accuracies)."""
    return np.array([_wrong_one(params, bn_params, X, y, kind, B) for B in BATCH_SIZES])


def _closest_of(got, kinds, case):
    """The wrong vector of ``kinds`` nearest to ``got`` (one label, several spellings)."""
    def value():
        options = [_wrong(*case, k) for k in kinds]
        g = np.asarray(got, dtype=np.float64)
        return min(options, key=lambda v: float(np.max(np.abs(v - g))) if v.shape == g.shape
                   else np.inf)
    return value


# --------------------------------------------------------------------------- the check
def _call(g: Grader, fn, case, B: int) -> tuple[float, float]:
    params, bn_params, X, y = case
    p_in, bn_in = copy.deepcopy(params), copy.deepcopy(bn_params)
    train_acc, test_acc = unpack(g.call(fn, p_in, bn_in, X.copy(), y.copy(), B), 2,
                                 "train_acc, test_acc")
    require_unchanged("params", params, p_in)
    require_unchanged("bn_params", bn_params, bn_in,
                      "measuring must not change the network: give each BatchNorm call a deep "
                      "copy of its bn_param, e.g. bn = copy.deepcopy(bn_params[i]); "
                      "bn['mode'] = 'train'")
    return train_acc, test_acc


def _as_number(value):
    """A real number as a float; anything else (complex, objects, strings) as it came, so that
    the comparison rejects it instead of float() quietly dropping an imaginary part."""
    if type(value) not in (int, float) and not (
            isinstance(value, (np.integer, np.floating)) and type(value).__module__ == "numpy"):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def _require_order(test, train, expected) -> None:
    """Fail with the 'order' diagnosis when the two accuracies come back swapped."""
    if close(train, expected[:, 1], RTOL, ATOL) and close(test, expected[:, 0], RTOL, ATOL) \
            and not close(expected[:, 0], expected[:, 1], RTOL, ATOL):
        raise Failure("the two accuracies are swapped.\n      yours:    "
                      f"{fmt(np.column_stack([train, test]).ravel())}\n      expected: "
                      f"{fmt(expected.ravel())}\n      {DIAGNOSIS} order: {EXPLAIN['order']}")


def _composed(uses, params, bn_params, X, y, B: int) -> tuple[float, float]:
    """mode_accuracies as the notebook's solution builds it, on ``uses.affine_bn_relu_forward``
    (the student's own sandwich in the carried-forward run, autograder/checks/carried.py), with
    the solution's deep copies of a copy of ``bn_params``."""
    bn_params = copy.deepcopy(bn_params)
    n = len(y) // B * B
    correct = {"train": 0, "test": 0}
    for start in range(0, n, B):
        for mode in correct:
            scores = ref_experiments._network_scores(params, bn_params, X[start:start + B], mode,
                                                     sandwich=uses.affine_bn_relu_forward)
            correct[mode] += int(np.count_nonzero(np.argmax(scores, axis=1)
                                                  == y[start:start + B]))
    return correct["train"] / n, correct["test"] / n


def _expected(g: Grader, case) -> np.ndarray:
    """(train, test) accuracy per batch size: the reference's, or in the carried-forward run the
    reference composed with the student's own sandwich."""
    params, bn_params, X, y = case
    if g.carrying:
        return np.array([_composed(g.uses, params, bn_params, X, y, B) for B in BATCH_SIZES])
    return np.array([ref.mode_accuracies(params, bn_params, X, y, B) for B in BATCH_SIZES])


@hidden_check("mode_accuracies", points=4, uses=("affine_bn_relu_forward",))
def check_mode_accuracies(g: Grader, fn) -> None:
    """Test-mode and train-mode accuracies of a random BatchNorm network, for three batch sizes."""
    case = _case()
    got = []
    with g.part("test mode: the running averages, on the first (N // B) * B of 50 examples, "
                f"for B = {', '.join(map(str, BATCH_SIZES))}", weight=2):
        expected = _expected(g, case)
        got = [_call(g, fn, case, B) for B in BATCH_SIZES]
        test = [_as_number(t) for _, t in got]
        _require_order(test, [_as_number(t) for t, _ in got], expected)
        g.compare("test-mode accuracies", test, expected[:, 1], rtol=RTOL, atol=ATOL, mistakes={
            **_diag(M8=_closest_of(test, ("test_batch", "test_whole"), case),
                    M10=_closest_of(test, ("m10_all", "m10_each"), case)),
            **_diag(**{"all N": lambda: _wrong(*case, "all_n"),
                       "percent": 100 * expected[:, 1]})})
    with g.part("train mode: consecutive batches of B, each normalized with its own statistics",
                weight=2):
        expected = _expected(g, case)
        if len(got) != len(BATCH_SIZES):
            got = [_call(g, fn, case, B) for B in BATCH_SIZES]
        train = [_as_number(t) for t, _ in got]
        _require_order([_as_number(t) for _, t in got], train, expected)
        g.compare("train-mode accuracies", train, expected[:, 0], rtol=RTOL, atol=ATOL,
                  mistakes=_diag(**{"M8 train": lambda: _wrong(*case, "train_running"),
                                    "one batch": lambda: _wrong(*case, "one_batch"),
                                    "partial batch": lambda: _wrong(*case, "partial"),
                                    "percent": 100 * expected[:, 0]}))
    if any(not r.passed for r in g.results) and not g.carrying:
        g.note(_USES_SANDWICH)
