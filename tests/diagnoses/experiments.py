"""Fixture submissions of notebook 04's ``mode_accuracies``: one per known mistake, correct
alternatives, and stubs. ``tests/test_experiments.py`` grades them with
``autograder.checks.check_mode_accuracies`` in a namespace holding the reference sandwich,
``affine_forward`` and ``np``, as the student's notebook would.

Each diagnosis is a label of ``autograder.checks.experiments.EXPLAIN``: ``M8`` and ``M10`` from
the catalogue, the others specific to this exercise (reported as ``Diagnosis <label>:``).
"""

from __future__ import annotations

from autograder.samples.experiments import _REF_MODES
from diagnoses import Fixture, alternative, mistake, uncatalogued

FUNCTION = "mode_accuracies"

#: The reference-style solution, shared with the demo's samples (ben's answer).
CORRECT = _REF_MODES


def _edit(old: str, new: str) -> str:
    if old not in CORRECT:
        raise ValueError(f"fixture edit does not apply: {old!r}")
    return CORRECT.replace(old, new)


# A test pass after all train passes, each on the caller's own bn_params (running stats written)
_WRITES_ALL_FIRST = '''
def mode_accuracies(params, bn_params, X, y, batch_size):
    L = len(bn_params) + 1
    n = len(y) // batch_size * batch_size

    def scores(xb, mode):
        h = xb
        for i in range(1, L):
            bn_params[i - 1]["mode"] = mode
            h, _ = affine_bn_relu_forward(h, params[f"W{i}"], params[f"b{i}"],
                                          params[f"gamma{i}"], params[f"beta{i}"], bn_params[i - 1])
        return affine_forward(h, params[f"W{L}"], params[f"b{L}"])[0]

    acc = []
    for mode in ("train", "test"):
        hits = 0
        for start in range(0, n, batch_size):
            pred = np.argmax(scores(X[start:start + batch_size], mode), axis=1)
            hits += np.sum(pred == y[start:start + batch_size])
        acc.append(hits / n)
    return acc[0], acc[1]
'''

MISTAKES: list[Fixture] = [
    mistake(FUNCTION, "M8", "test pass keeps bn_params' own mode",
            _edit('            bn["mode"] = mode\n', "")),
    mistake(FUNCTION, "M10", "running statistics written, interleaved per batch",
            _edit("bn = copy.deepcopy(bn_params[i - 1])", "bn = bn_params[i - 1]")),
    mistake(FUNCTION, "M10", "running statistics written, all train batches first",
            _WRITES_ALL_FIRST),
]

#: label of the diagnosis -> fixtures with that mistake outside the catalogue
LABELLED: list[tuple[str, Fixture]] = [
    ("one batch", uncatalogued(FUNCTION, "train mode on all n at once", _edit(
        '''    correct = {"train": 0, "test": 0}''',
        '''    correct = {"train": int(np.sum(np.argmax(scores(X[:n], "train"), axis=1) == y[:n])),
               "test": 0}''').replace('''        for mode in correct:
            correct[mode] +=''', '''        for mode in ("test",):
            correct[mode] +='''))),
    ("partial batch", uncatalogued(FUNCTION, "last partial batch kept", _edit(
        "n = len(y) // batch_size * batch_size", "n = len(y)"))),
    ("percent", uncatalogued(FUNCTION, "accuracies in percent", _edit(
        'return correct["train"] / n, correct["test"] / n',
        'return 100 * correct["train"] / n, 100 * correct["test"] / n'))),
    ("order", uncatalogued(FUNCTION, "test accuracy first", _edit(
        'return correct["train"] / n, correct["test"] / n',
        'return correct["test"] / n, correct["train"] / n'))),
]

ALTERNATIVES: list[Fixture] = [
    alternative(FUNCTION, "a network built with FullyConnectedNet.activations", '''
def mode_accuracies(params, bn_params, X, y, batch_size):
    import copy
    L = len(bn_params) + 1
    net = FullyConnectedNet([params[f"W{i}"].shape[1] for i in range(1, L)], X.shape[1],
                            params[f"W{L}"].shape[1], normalization="batchnorm",
                            bn_layer=(affine_bn_relu_forward, affine_bn_relu_forward))
    net.params = {k: v.copy() for k, v in params.items()}
    net.bn_params = copy.deepcopy(bn_params)
    n = len(y) // batch_size * batch_size
    out = []
    for mode in ("train", "test"):
        hits = 0
        for s in range(0, n, batch_size):
            h = net.activations(X[s:s + batch_size], mode=mode)["post"][-1]
            hits += np.sum(np.argmax(h @ params[f"W{L}"] + params[f"b{L}"], axis=1)
                           == y[s:s + batch_size])
        out.append(float(hits) / n)
    return tuple(out)
'''),
    alternative(FUNCTION, "numpy ints and a list", _edit(
        'return correct["train"] / n, correct["test"] / n',
        'return [np.float32(correct["train"]) / np.int64(n), np.mean([correct["test"] / n])]')),
]

#: stubs a student might leave: every one must score 0
STUBS = {
    "None": "def mode_accuracies(params, bn_params, X, y, batch_size):\n    return None\n",
    "zeros": "def mode_accuracies(params, bn_params, X, y, batch_size):\n    return 0.0, 0.0\n",
    "ones": "def mode_accuracies(params, bn_params, X, y, batch_size):\n    return 1.0, 1.0\n",
    "halves": "def mode_accuracies(params, bn_params, X, y, batch_size):\n    return 0.5, 0.5\n",
    "chance": "def mode_accuracies(params, bn_params, X, y, batch_size):\n    return 0.25, 0.25\n",
    "zeros array": ("def mode_accuracies(params, bn_params, X, y, batch_size):\n"
                    "    return np.zeros(2)\n"),
    "not implemented": ("def mode_accuracies(params, bn_params, X, y, batch_size):\n"
                        "    raise NotImplementedError('write mode_accuracies')\n"),
}
