"""The trusted call path: hidden checks run here and call the student's functions in a kernel.

A real ``ipykernel`` (tests/kernels.py) holds the student's functions; the checks run in this
process through :func:`autograder.kernel.remote.run_hidden_cell`. The oracles are the checks'
own full marks for a correct function (as when they are called directly), the plain-data rule of
:mod:`autograder.kernel.shim`, and what Python says of the student's exceptions.
"""

from __future__ import annotations

import numpy as np
import pytest
from kernels import kernel_channel

import autograder.checks as checks
from autograder.kernel import shim
from autograder.kernel.remote import parse_hidden_cell, run_hidden_cell

CORRECT = """
import numpy as np

def batch_stats(x):
    mean = x.mean(axis=0)
    return mean, ((x - mean) ** 2).mean(axis=0)

def numerical_gradient(f, x, dout, h=1e-5):
    grad = np.zeros_like(x, dtype=float)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        plus = f(x).copy()
        x[i] = old - h
        minus = f(x).copy()
        x[i] = old
        grad[i] = np.sum((plus - minus) * dout) / (2 * h)
    return grad
"""


def hidden(fn: str) -> str:
    return f"from autograder.checks import check_{fn}; check_{fn}({fn})"


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    with kernel_channel(cwd=tmp_path_factory.mktemp("kernel"), timeout=20) as (channel, run):
        yield channel, run


def grade(kernel, code: str, fn: str):
    channel, run = kernel
    run(code)
    points = checks.__dict__[f"check_{fn}"].points
    return run_hidden_cell(hidden(fn), points, channel)


def test_a_correct_function_in_the_kernel_gets_the_checks_full_marks(kernel, capsys):
    result = grade(kernel, CORRECT, "batch_stats")
    assert result.score == checks.check_batch_stats.points, result.report
    assert not result.flags


def test_a_function_argument_is_sent_as_source_and_defined_in_the_kernel(kernel):
    """numerical_gradient receives the check's f (x**3, a BatchNorm forward, ...) as a function
    defined in the kernel from the source the check sends."""
    result = grade(kernel, CORRECT, "numerical_gradient")
    assert result.score == checks.check_numerical_gradient.points, result.report


def test_a_value_that_is_not_plain_data_is_refused_with_a_message(kernel):
    code = CORRECT + """
class MyArray(np.ndarray):
    def __eq__(self, other):
        return True

def batch_stats(x):
    mean = x.mean(axis=0)
    return mean.view(MyArray), ((x - mean) ** 2).mean(axis=0).view(MyArray)
"""
    result = grade(kernel, code, "batch_stats")
    assert result.score == 0.0
    assert "batch_stats returned a MyArray; return a numpy array" in result.report
    assert ("refused-output" in {k for k, _ in result.flags}), result.flags


@pytest.mark.parametrize("raised", ["KeyboardInterrupt()", "SystemExit(0)", "GeneratorExit()",
                                    "ValueError('no')"])
def test_any_exception_of_the_student_is_a_failed_part_never_a_stopped_check(kernel, raised):
    result = grade(kernel, f"def batch_stats(x):\n    raise {raised}\n", "batch_stats")
    assert result.score == 0.0 and result.stopped is None, result.report
    assert f"batch_stats raised {raised.split('(')[0]}" in result.report, result.report


def test_a_function_missing_from_the_notebook_scores_zero_and_says_so(kernel):
    channel, run = kernel
    run("del batch_stats")
    result = run_hidden_cell(hidden("batch_stats"), 2, channel)
    assert result.score == 0.0 and "is not defined in the notebook" in result.report


def test_a_function_that_never_returns_is_interrupted_and_flagged(kernel):
    result = grade(kernel, "def batch_stats(x):\n    while True:\n        pass\n", "batch_stats")
    assert result.score == 0.0
    assert result.stopped is not None and result.stopped.kind == "cell-timeout"
    assert not result.stopped.stopped, "the kernel stopped on the interrupt and lives on"
    assert grade(kernel, CORRECT, "batch_stats").score == 2.0  # and serves the next check


def test_printing_a_flag_or_a_score_changes_nothing(kernel):
    code = ("import sys\nprint('Flag [kernel-died]: forged')\nprint(2.0)\n"
            "def batch_stats(x):\n    print('Flag [tampering]: forged', file=sys.stderr)\n"
            "    return 0, 0\n")
    result = grade(kernel, code, "batch_stats")
    assert result.score == 0.0 and not result.flags, (result.report, result.flags)


@pytest.mark.parametrize("source", [
    "check_batch_stats(batch_stats)",  # no import
    "from autograder.checks import check_batch_stats; check_batch_stats(batch_stats); 1",
    "from autograder.checks import check_batch_stats as c; c(batch_stats)",
    "from autograder.checks import check_batch_stats; check_batch_stats(batch_stats, k=1)",
    "from os import system; system('true')",
    "from autograder.checks import check_batch_stats; check_batch_stats(lambda x: x)",
    "((((",
])
def test_only_the_one_line_hidden_cell_is_a_check(source):
    assert parse_hidden_cell(source) is None


def test_a_cell_that_is_not_a_known_check_scores_zero(kernel):
    channel, _ = kernel
    result = run_hidden_cell("assert True", 1, channel)
    assert result.score == 0.0 and "not a hidden check the grader knows" in result.report


@pytest.mark.parametrize("value", [
    None, True, 3, -2**200, 1.5, float("nan"), float("-inf"), 2 + 3j, "mode",
    np.float32(0.1), np.int8(-3), np.arange(6, dtype=np.float32).reshape(2, 3),
    np.array([True, False]), np.zeros((0, 3)),
    (1, [2.0, {"a": np.ones(2)}], {"mode": "train", "eps": 1e-5}),
])
def test_plain_data_crosses_unchanged_with_dtype_and_shape(value):
    back = shim.decode(shim.encode(value))
    assert type(back) is type(value)
    if isinstance(value, (np.ndarray, np.generic)):
        assert back.dtype == value.dtype and np.shape(back) == np.shape(value)
        assert np.array_equal(back, value)
    elif isinstance(value, float) and value != value:
        assert back != back
    elif not isinstance(value, tuple):
        assert back == value


class _Sub(np.ndarray):
    pass


def _deep(n: int) -> list:
    value: list = [1]
    for _ in range(n):
        value = [value]
    return value


@pytest.mark.parametrize("value", [
    np.array(["a"]), np.array([object()], dtype=object), np.ma.masked_array([1.0]),
    np.ones(2).view(_Sub), {1: 2}, {1.5}, object(), lambda: 0, b"bytes",
    _deep(shim.MAX_DEPTH + 2),
])
def test_anything_else_is_refused_on_the_way_out(value):
    with pytest.raises(shim.NotPlainData):
        shim.encode(value)


@pytest.mark.parametrize("data", [
    {"$nd": ["<f8", [3], "AAAA"]},  # 3 values announced, 3 bytes sent
    {"$nd": ["|O", [1], ""]}, {"$nd": ["<U1", [1], "YQAAAA=="]}, {"$x": 1}, {"a": 1, "b": 2},
    {"$i": "1" * 500}, {"$d": [[1, 2]]}, 3.5,
])
def test_a_hostile_kernel_answer_is_refused_on_the_way_in(data):
    with pytest.raises(shim.NotPlainData):
        shim.decode(data)


# --------------------------------------------------------------------------- records, carried forward
DDOF1_STAGES = CORRECT.replace("return mean, ((x - mean) ** 2).mean(axis=0)",
                               "return mean, x.var(axis=0, ddof=1)") + '''
def normalize(x, mean, var, eps):
    return (x - mean) / np.sqrt(var + eps)

def scale_shift(x_hat, gamma, beta):
    return gamma * x_hat + beta

def batchnorm_forward(x, gamma, beta, bn_param):
    mode = bn_param.get("mode")
    if mode not in ("train", "test"):
        raise ValueError(mode)
    N, D = x.shape
    eps, momentum = bn_param.get("eps", 1e-5), bn_param.get("momentum", 0.1)
    rm = bn_param.get("running_mean", np.zeros(D, dtype=x.dtype))
    rv = bn_param.get("running_var", np.ones(D, dtype=x.dtype))
    if mode == "train":
        if N < 2:
            raise ValueError(N)
        mean, var = batch_stats(x)
        bn_param["running_mean"] = (1 - momentum) * rm + momentum * mean
        bn_param["running_var"] = (1 - momentum) * rv + momentum * var * N / (N - 1)
    else:
        mean, var = rm, rv
    return scale_shift(normalize(x, mean, var, eps), gamma, beta).astype(x.dtype), {}
'''


def test_a_callee_mistake_is_carried_forward_through_the_kernel(kernel):
    """The callee is found and watched in the kernel: batchnorm_forward, right on the student's
    own batch_stats (ddof=1), keeps full marks, and its record names the callee and mistake."""
    stages = grade(kernel, DDOF1_STAGES, "batch_stats")
    assert stages.score == 0.9 and stages.record.diagnosis_ids == ["M1"]
    result = grade(kernel, DDOF1_STAGES, "batchnorm_forward")
    assert result.score == 6.0, result.report
    assert [(c.callee, c.mistakes) for c in result.record.carried] == [("batch_stats", ["M1"])]
    assert "uses your `batch_stats`, whose mistake (M1) is marked there" in result.report


def test_arrays_changed_in_place_in_the_kernel_are_changed_in_place_here(kernel):
    """What the shim reports (``kept``) makes the trusted side's copy behave as the kernel's:
    ``+=`` on the running_mean passed in changes that array (M32); storing a new one does not."""
    inplace = DDOF1_STAGES.replace(
        'bn_param["running_mean"] = (1 - momentum) * rm + momentum * mean',
        'rm *= 1 - momentum\n        rm += momentum * mean\n        bn_param["running_mean"] = rm'
    ).replace("x.var(axis=0, ddof=1)", "((x - mean) ** 2).mean(axis=0)")
    result = grade(kernel, inplace, "batchnorm_forward")
    assert result.record.diagnosis_ids == ["M32"], result.report
    failed = [p for p in result.record.parts if p.status == "failed"]
    assert [p.weight for p in failed] == [1.5]  # only the part that checks the arrays passed in
    total = sum(p.weight for p in result.record.parts)
    assert result.score == round(6 * (total - 1.5) / total, 2)


def test_student_text_from_the_kernel_is_quoted_and_capped_in_the_record(kernel):
    code = ("import warnings\n"
            "def batch_stats(x):\n"
            "    print('[ok  ] every part passed\\nDiagnosis M20: planted' * 1000)\n"
            "    warnings.warn('Diagnosis M21: planted\\n' * 100000)\n"
            "    raise ValueError('\\n  [ok  ] every part passed\\nDiagnosis M20: ' + 'x' * 10**6)\n")
    result = grade(kernel, code, "batch_stats")
    assert result.score == 0 and not result.record.diagnoses
    assert len(result.report) < 40_000 and len(str(result.record.to_dict())) < 40_000
    starts = [ln.strip() for ln in result.report.splitlines()]
    assert not [ln for ln in starts if ln.startswith(("Diagnosis", "[ok"))], result.report
