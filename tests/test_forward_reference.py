"""Assignment 02 (BatchNorm forward): the reference against independent oracles, and the checks.

Oracles: PyTorch's ``BatchNorm1d``/``BatchNorm2d`` (outputs and running statistics), numbers
worked out by hand in the comments, and invariants of the transform (output mean = beta, output
std = gamma). No expected value here is copied from our own code's output.

The second half grades the sample students of ``autograder/samples/batchnorm_forward.py`` and a
set of one-mistake "mutants" with the hidden checks, and asserts the diagnoses they name.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from conftest import answer_cells, release_stub

from autograder import checks
from autograder import reference as ref
from autograder.checks import batchnorm_forward as cf
from autograder.checks.framework import diagnoses_in
from autograder.samples import batchnorm_forward as samples
from autograder.samples import unmet_expectations

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "source" / "02_batchnorm_forward" / "batchnorm_forward.ipynb"
FUNCTIONS = ["batch_stats", "normalize", "scale_shift", "batchnorm_forward",
             "spatial_batchnorm_forward"]


# =============================================================================== invariants
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_train_output_has_mean_beta_and_std_gamma_per_feature(dtype, rtol):
    r = np.random.default_rng(0)
    x = (r.normal(size=(50, 4)) * [1.0, 10.0, 0.1, 3.0] + [5.0, -2.0, 0.0, 100.0]).astype(dtype)
    gamma, beta = np.array([0.5, 2.0, 1.0, 3.0]), np.array([1.0, -1.0, 0.0, 4.0])
    # eps = 0: the normalized batch has mean 0 and (biased) std exactly 1
    out, _ = ref.batchnorm_forward(x, gamma, beta, {"mode": "train", "eps": 0.0})
    out64 = out.astype(np.float64)
    np.testing.assert_allclose(out64.mean(axis=0), beta, rtol=rtol, atol=10 * rtol,
                               err_msg="train-mode output mean per feature must equal beta")
    np.testing.assert_allclose(out64.std(axis=0), gamma, rtol=rtol,
                               err_msg="train-mode output std per feature must equal gamma")


def test_output_std_is_gamma_times_shrink_factor_with_eps():
    # With eps the std is gamma * sqrt(var / (var + eps)) (a derivation, not our code's output).
    r = np.random.default_rng(1)
    x = r.normal(size=(40, 3)) * [1e-3, 1.0, 1e-2]
    gamma, eps = np.array([2.0, 1.0, 0.5]), 1e-5
    out, _ = ref.batchnorm_forward(x, gamma, np.zeros(3), {"mode": "train", "eps": eps})
    var = x.var(axis=0)
    np.testing.assert_allclose(out.std(axis=0), gamma * np.sqrt(var / (var + eps)), rtol=1e-10)


def test_output_is_invariant_to_shift_and_positive_scale_of_x():
    r = np.random.default_rng(2)
    x = r.normal(size=(16, 3))
    g, b = np.array([1.5, 0.5, 2.0]), np.array([0.1, 0.2, 0.3])
    a, _ = ref.batchnorm_forward(x, g, b, {"mode": "train", "eps": 0.0})
    c, _ = ref.batchnorm_forward(7.0 * x - 3.0, g, b, {"mode": "train", "eps": 0.0})
    np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-12,
                               err_msg="BN(a x + c) must equal BN(x) for a > 0 (eps = 0)")


# =============================================================================== hand-worked
def test_running_statistics_two_steps_by_hand():
    # Step 1: x = [[1], [3]]: mu_B = 2, biased var 1, unbiased var 2 (N - 1 = 1).
    #   x_hat = (-1, 1) / sqrt(1 + 1e-5); running_mean = 0.9*0 + 0.1*2 = 0.2;
    #   running_var = 0.9*1 + 0.1*2 = 1.1
    # Step 2: x = [[0], [4]]: mu_B = 2, biased var 4, unbiased var 8.
    #   running_mean = 0.9*0.2 + 0.1*2 = 0.38; running_var = 0.9*1.1 + 0.1*8 = 1.79
    # Test mode on x = [[2.38]]: x_hat = (2.38 - 0.38) / sqrt(1.79 + 1e-5) = 2 / sqrt(1.79001)
    bn = {"mode": "train"}
    one = np.ones(1)
    out, _ = ref.batchnorm_forward(np.array([[1.0], [3.0]]), one, np.zeros(1), bn)
    np.testing.assert_allclose(out, [[-1 / np.sqrt(1.00001)], [1 / np.sqrt(1.00001)]], rtol=1e-12)
    np.testing.assert_allclose(bn["running_mean"], [0.2], rtol=1e-12)
    np.testing.assert_allclose(bn["running_var"], [1.1], rtol=1e-12)
    ref.batchnorm_forward(np.array([[0.0], [4.0]]), one, np.zeros(1), bn)
    np.testing.assert_allclose(bn["running_mean"], [0.38], rtol=1e-12)
    np.testing.assert_allclose(bn["running_var"], [1.79], rtol=1e-12)
    bn["mode"] = "test"
    out, _ = ref.batchnorm_forward(np.array([[2.38]]), one, np.zeros(1), bn)
    np.testing.assert_allclose(out, [[2 / np.sqrt(1.79001)]], rtol=1e-12)
    np.testing.assert_allclose(bn["running_var"], [1.79], rtol=1e-12,
                               err_msg="test mode must not change the running statistics")


def test_batch_stats_by_hand_and_with_offset():
    # columns (1, 3, 5) and (2, 2, 8): means 3 and 4, biased variances 8/3 and 8
    x = np.array([[1.0, 2.0], [3.0, 2.0], [5.0, 8.0]])
    mean, var = ref.batch_stats(x)
    np.testing.assert_allclose(mean, [3.0, 4.0], rtol=1e-15)
    np.testing.assert_allclose(var, [8 / 3, 8.0], rtol=1e-15)
    # shifting by 1e8 (exact in float64) leaves the variance unchanged: two-pass formula
    np.testing.assert_allclose(ref.batch_stats(x + 1e8)[1], [8 / 3, 8.0], rtol=1e-12)


def test_spatial_by_hand():
    # channel 0 holds 1, 3, 5, 7 (mean 4, var 5); channel 1 holds 0, 0, 2, 2 (mean 1, var 1)
    x = np.array([[[[1.0, 3.0]], [[0.0, 0.0]]], [[[5.0, 7.0]], [[2.0, 2.0]]]])
    bn = {"mode": "train", "eps": 0.0}
    out, _ = ref.spatial_batchnorm_forward(x, np.ones(2), np.zeros(2), bn)
    s5 = np.sqrt(5.0)
    np.testing.assert_allclose(out[:, 0, 0], [[-3 / s5, -1 / s5], [1 / s5, 3 / s5]], rtol=1e-12)
    np.testing.assert_allclose(out[:, 1, 0], [[-1.0, -1.0], [1.0, 1.0]], rtol=1e-12)
    # unbiased: 20/3 and 4/3 over N*H*W - 1 = 3 values
    np.testing.assert_allclose(bn["running_mean"], [0.4, 0.1], rtol=1e-12)
    np.testing.assert_allclose(bn["running_var"], [0.9 + 2 / 3, 0.9 + 0.4 / 3], rtol=1e-12)


# =============================================================================== torch oracle


def _torch_dtype(dtype):
    return torch.float64 if dtype == np.float64 else torch.float32


@pytest.mark.parametrize("dtype, rtol, atol", [(np.float64, 1e-10, 1e-12),
                                               (np.float32, 1e-4, 1e-5)])
def test_batchnorm1d_matches_torch_over_several_steps(dtype, rtol, atol):
    r = np.random.default_rng(3)
    D, momentum, eps = 4, 0.3, 1e-5
    gamma, beta = r.normal(size=D).astype(dtype), r.normal(size=D).astype(dtype)
    layer = torch.nn.BatchNorm1d(D, eps=eps, momentum=momentum, dtype=_torch_dtype(dtype))
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(gamma))
        layer.bias.copy_(torch.from_numpy(beta))
    bn = {"mode": "train", "eps": eps, "momentum": momentum}
    for N in (5, 2, 9):
        x = (r.normal(size=(N, D)) * [1.0, 3.0, 0.2, 1.0] + [0.0, 2.0, -1.0, 5.0]).astype(dtype)
        out, _ = ref.batchnorm_forward(x, gamma, beta, bn)
        layer.train()
        expected = layer(torch.from_numpy(x)).detach().numpy()
        assert out.dtype == dtype
        np.testing.assert_allclose(out, expected, rtol=rtol, atol=atol)
        np.testing.assert_allclose(bn["running_mean"], layer.running_mean.numpy(), rtol=rtol,
                                   atol=atol)
        np.testing.assert_allclose(bn["running_var"], layer.running_var.numpy(), rtol=rtol,
                                   atol=atol)
    x = r.normal(size=(3, D)).astype(dtype)
    bn["mode"] = "test"
    layer.eval()
    out, _ = ref.batchnorm_forward(x, gamma, beta, bn)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, layer(torch.from_numpy(x)).detach().numpy(), rtol=rtol,
                               atol=atol)


@pytest.mark.parametrize("dtype, rtol, atol", [(np.float64, 1e-10, 1e-12),
                                               (np.float32, 1e-4, 1e-5)])
def test_spatial_matches_torch_batchnorm2d(dtype, rtol, atol):
    r = np.random.default_rng(4)
    C = 3
    gamma, beta = r.normal(size=C).astype(dtype), r.normal(size=C).astype(dtype)
    layer = torch.nn.BatchNorm2d(C, dtype=_torch_dtype(dtype))  # defaults eps 1e-5, momentum 0.1
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(gamma))
        layer.bias.copy_(torch.from_numpy(beta))
    bn = {"mode": "train"}
    for shape in [(2, C, 4, 5), (1, C, 3, 2), (5, C, 1, 1)]:
        x = (r.normal(size=shape) * 2.0 + 1.0).astype(dtype)
        out, _ = ref.spatial_batchnorm_forward(x, gamma, beta, bn)
        layer.train()
        np.testing.assert_allclose(out, layer(torch.from_numpy(x)).detach().numpy(),
                                   rtol=rtol, atol=atol)
        assert out.dtype == dtype and out.shape == shape
        np.testing.assert_allclose(bn["running_mean"], layer.running_mean.numpy(), rtol=rtol,
                                   atol=atol)
        np.testing.assert_allclose(bn["running_var"], layer.running_var.numpy(), rtol=rtol,
                                   atol=atol)
    bn["mode"] = "test"
    layer.eval()
    x = r.normal(size=(2, C, 3, 3)).astype(dtype)
    out, _ = ref.spatial_batchnorm_forward(x, gamma, beta, bn)
    np.testing.assert_allclose(out, layer(torch.from_numpy(x)).detach().numpy(), rtol=rtol,
                               atol=atol)


def test_torch_also_refuses_a_single_sample_in_train_mode():
    layer = torch.nn.BatchNorm1d(2)
    with pytest.raises(ValueError):
        layer(torch.ones(1, 2))
    with pytest.raises(ValueError):
        ref.batchnorm_forward(np.ones((1, 2)), np.ones(2), np.zeros(2), {"mode": "train"})


# =============================================================================== spatial stats
def test_spatial_statistics_are_per_channel_not_per_activation():
    r = np.random.default_rng(5)
    x = r.normal(size=(4, 3, 5, 6)) * np.array([1.0, 5.0, 0.5])[None, :, None, None]
    gamma, beta = np.array([2.0, 0.5, 1.0]), np.array([1.0, -1.0, 3.0])
    out, _ = ref.spatial_batchnorm_forward(x, gamma, beta, {"mode": "train", "eps": 0.0})
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), beta, rtol=1e-12)
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), gamma, rtol=1e-12)
    # per activation the means are NOT all beta: the statistics were pooled over H and W
    assert np.abs(out.mean(axis=0) - beta[:, None, None]).max() > 0.1


# =============================================================================== inputs, dtypes
def test_inputs_are_not_modified_and_dtype_is_preserved():
    r = np.random.default_rng(6)
    for dtype in (np.float32, np.float64):
        x = r.normal(size=(6, 3)).astype(dtype)
        g, b = np.ones(3, dtype), np.zeros(3, dtype)
        x0, g0, b0 = x.copy(), g.copy(), b.copy()
        rm, rv = np.zeros(3, dtype), np.ones(3, dtype)
        bn = {"mode": "train", "running_mean": rm, "running_var": rv}
        out, _ = ref.batchnorm_forward(x, g, b, bn)
        assert out.dtype == dtype
        assert ref.batch_stats(x)[0].dtype == dtype and ref.batch_stats(x)[1].dtype == dtype
        assert ref.normalize(x, x.mean(0), x.var(0), 1e-5).dtype == dtype
        assert ref.scale_shift(x, g, b).dtype == dtype
        for before, after in ((x0, x), (g0, g), (b0, b)):
            np.testing.assert_array_equal(before, after)
        np.testing.assert_array_equal(rm, np.zeros(3))  # new arrays are stored, not in place
        xs = r.normal(size=(2, 3, 2, 2)).astype(dtype)
        xs0 = xs.copy()
        out, _ = ref.spatial_batchnorm_forward(xs, g, b, {"mode": "train"})
        assert out.dtype == dtype
        np.testing.assert_array_equal(xs0, xs)


# =============================================================================== errors
X, G, B = np.ones((3, 2)), np.ones(2), np.zeros(2)


@pytest.mark.parametrize("call, exc", [
    (lambda: ref.batchnorm_forward(X, G, B, {"mode": "eval"}), ValueError),
    (lambda: ref.batchnorm_forward(X, G, B, {}), ValueError),
    (lambda: ref.batchnorm_forward(X[:1], G, B, {"mode": "train"}), ValueError),
    (lambda: ref.batchnorm_forward(X, G, B, {"mode": "train", "eps": -1.0}), ValueError),
    (lambda: ref.batchnorm_forward(X, G, B, {"mode": "train", "momentum": 1.5}), ValueError),
    (lambda: ref.batchnorm_forward(X, np.ones(3), B, {"mode": "train"}), ValueError),
    (lambda: ref.batchnorm_forward(X, G, B, {"mode": "test", "running_mean": np.zeros(3)}),
     ValueError),
    (lambda: ref.batchnorm_forward(np.ones(3), G, B, {"mode": "train"}), ValueError),
    (lambda: ref.batchnorm_forward(X, G, B, "train"), TypeError),
    (lambda: ref.batchnorm_forward(X, G, B, {"mode": "train", "eps": "small"}), TypeError),
    (lambda: ref.batchnorm_forward(np.array([["a", "b"]]), G, B, {"mode": "train"}), TypeError),
    (lambda: ref.spatial_batchnorm_forward(X, G, B, {"mode": "train"}), ValueError),
    (lambda: ref.spatial_batchnorm_forward(np.ones((1, 2, 1, 1)), G, B, {"mode": "train"}),
     ValueError),
    (lambda: ref.batch_stats(np.ones(3)), ValueError),
    (lambda: ref.batch_stats(np.ones((0, 3))), ValueError),
    (lambda: ref.batch_stats(np.array([[True, False]])), TypeError),
    (lambda: ref.normalize(X, np.zeros(3), np.ones(2), 1e-5), ValueError),
    (lambda: ref.normalize(X, np.zeros(2), np.ones(2), -1e-5), ValueError),
    (lambda: ref.scale_shift(X, np.ones(3), B), ValueError),
])
def test_reference_raises(call, exc):
    with pytest.raises(exc):
        call()


# =============================================================================== the checks
CHECKS = {f: getattr(checks, f"check_{f}") for f in FUNCTIONS}


def _grade(ns: dict, capsys) -> tuple[dict, str]:
    """Run every check on the functions in ``ns``; return ({fn: score}, report). No stderr."""
    scores, report = {}, []
    for name, check in CHECKS.items():
        fn = ns.get(name)
        scores[name] = check(fn)
        captured = capsys.readouterr()
        assert captured.err == "", f"check_{name} wrote to stderr: {captured.err[:300]}"
        report.append(captured.out)
    text = "\n".join(report)
    assert "could not run" not in text, text
    return scores, text


def _exec_cells(sources) -> dict:
    ns = {"np": np}
    for src in sources:
        exec(compile(src, "<answer cell>", "exec"), ns)  # noqa: S102 - sample code, by design
    return ns


def _answer_cells() -> dict:
    return answer_cells(NOTEBOOK, "code")


def test_notebook_solution_gets_full_marks(capsys):
    scores, text = _grade(_exec_cells(_answer_cells().values()), capsys)
    assert scores == {f: CHECKS[f].points for f in FUNCTIONS}, text


def test_reference_runs_through_every_forward_check_without_crashing(capsys):
    """The checks' expected values are the reference's own: full marks here only show that no
    check crashes on (or rejects) a correct submission; correctness is tested against torch."""
    scores, text = _grade(vars(ref), capsys)
    assert scores == {f: CHECKS[f].points for f in FUNCTIONS}, text


def test_hidden_cells_points_and_call_match_the_checks():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    graded = {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells
              if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"}
    assert set(graded) == {f"test_{f}" for f in FUNCTIONS}
    for f in FUNCTIONS:
        cell = graded[f"test_{f}"]
        assert cell.metadata["nbgrader"]["points"] == CHECKS[f].points
        lines = cell.source.strip().splitlines()
        assert lines[-2] == f"from autograder.checks import check_{f}; check_{f}({f})"
        assert lines[-1] == "### END HIDDEN TESTS"
    assert checks.batchnorm_stages.__all__ + cf.__all__ + checks.spatial_batchnorm.__all__ == [f"check_{f}" for f in FUNCTIONS]


@pytest.mark.parametrize("student", sorted(samples.STUDENTS))
def test_sample_students(student, capsys):
    spec = samples.STUDENTS[student]
    answers = spec["answers"]
    expect = spec["expect"]
    if answers:
        code = [answers[f] for f in FUNCTIONS if f in answers]
        assert all(f in answers for f in FUNCTIONS), "a sample answers every exercise"
    else:  # dee: the untouched release notebook
        code = [release_stub(src) for src in _answer_cells().values()]
    scores, text = _grade(_exec_cells(code), capsys)
    total, full = sum(scores.values()), sum(c.points for c in CHECKS.values())
    problems = unmet_expectations(expect, total, full, diagnoses_in(text))
    assert not problems, f"{student}: {problems}\n{text}"
    for key in [k for k in answers if k.startswith("answer_")]:
        assert key in {"answer_test_mode"}, f"unknown written answer {key}"


# ------------------------------------------------------------------ one-mistake mutants
def _student_bn(mistake=None):
    """A student's batchnorm_forward, correct except for one named mistake."""

    def batchnorm_forward(x, gamma, beta, bn_param):
        mode = bn_param["mode"]
        if mode not in ("train", "test"):
            raise ValueError(mode)
        eps = bn_param.get("eps", 1e-5)
        m = bn_param.get("momentum", 0.1)
        N, D = x.shape
        rm = bn_param.get("running_mean", np.zeros(D))
        rv = bn_param.get("running_var", np.ones(D))
        if mode == "train":
            if N < 2:
                raise ValueError("N = 1")
            if mistake == "M2":
                mu, var = x.mean(1, keepdims=True), x.var(1, keepdims=True)
            elif mistake == "M4":
                mu = x.mean(0)
                var = (x * x).mean(0) - mu * mu
            else:
                mu, var = x.mean(0), x.var(0, ddof=1 if mistake == "M1" else 0)
            unbiased = x.var(0, ddof=0 if mistake == "M7" else 1)
            a = 1 - m if mistake == "M6" else m
            new_rm, new_rv = (1 - a) * rm + a * x.mean(0), (1 - a) * rv + a * unbiased
            if mistake == "M9":
                bn_param = dict(bn_param)
            bn_param["running_mean"], bn_param["running_var"] = new_rm, new_rv
            if mistake == "M8_train":
                mu, var = rm, rv
        else:
            mu, var = (x.mean(0), x.var(0)) if mistake == "M8_test" else (rm, rv)
        if mistake == "M10":
            x -= mu
            centred = x
        else:
            centred = x - mu
        if mistake == "M12":
            centred = centred**2
        if mistake in ("M3_missing", "M5"):
            x_hat = centred / np.sqrt(var)
        elif mistake == "M3_outside":
            x_hat = centred / (np.sqrt(var) + eps)
        else:
            x_hat = centred / np.sqrt(var + eps)
        out = gamma * (x if mistake == "M11" else x_hat) + beta
        return out.astype(x.dtype), None

    return batchnorm_forward


def _student_spatial(mistake):
    bn1 = _student_bn()

    def spatial_batchnorm_forward(x, gamma, beta, bn_param):
        N, C, H, W = x.shape
        if mistake == "M13":  # per activation, per-channel gamma broadcast
            flat = x.reshape(N, -1)
            g = np.repeat(gamma, H * W)
            b = np.repeat(beta, H * W)
            out, cache = bn1(flat, g, b, bn_param)
            return out.reshape(N, C, H, W), cache
        if mistake == "M14":
            out, cache = bn1(x.reshape(-1, C), gamma, beta, bn_param)
            return out.reshape(N, C, H, W), cache
        rows = x.transpose(0, 2, 3, 1).reshape(-1, C)
        out, cache = bn1(rows, gamma, beta, bn_param)
        if mistake == "M14_back":
            return out.reshape(N, C, H, W), cache
        return out.reshape(N, H, W, C).transpose(0, 3, 1, 2), cache

    return spatial_batchnorm_forward


def _batch_stats(mistake):
    def batch_stats(x):
        if mistake == "M1":
            return x.mean(0), x.var(0, ddof=1)
        if mistake == "M2":
            return x.mean(1), x.var(1)
        return x.mean(0), (x**2).mean(0) - x.mean(0) ** 2  # M4

    return batch_stats


def _normalize(mistake):
    def normalize(x, mean, var, eps):
        if mistake == "M12":
            return (x - mean) ** 2 / np.sqrt(var + eps)
        if mistake == "M3_outside":
            return (x - mean) / (np.sqrt(var) + eps)
        return (x - mean) / np.sqrt(var)  # M3 missing, M5 on a zero variance

    return normalize


MUTANTS = [
    ("batch_stats", _batch_stats("M1"), "M1"),
    ("batch_stats", _batch_stats("M2"), "M2"),
    ("batch_stats", _batch_stats("M4"), "M4"),
    ("normalize", _normalize("M12"), "M12"),
    ("normalize", _normalize("M3_outside"), "M3 (outside)"),
    ("normalize", _normalize("M3_missing"), "M3 (missing)"),
    ("normalize", _normalize("M5"), "M5"),
    ("scale_shift", lambda x_hat, gamma, beta: beta * x_hat + gamma, "gamma/beta swapped"),
] + [("batchnorm_forward", _student_bn(m), m.replace("_", " (") + (")" if "_" in m else ""))
     for m in ["M1", "M2", "M3_missing", "M3_outside", "M4", "M5", "M6", "M7", "M8_train",
               "M8_test", "M9", "M10", "M11", "M12"]] + [
    ("spatial_batchnorm_forward", _student_spatial("M13"), "M13"),
    ("spatial_batchnorm_forward", _student_spatial("M14"), "M14"),
    ("spatial_batchnorm_forward", _student_spatial("M14_back"), "M14 (back)"),
]


@pytest.mark.parametrize("fn_name, student, diagnosis", MUTANTS,
                         ids=[f"{f}-{d}" for f, _, d in MUTANTS])
def test_check_names_the_mistake(fn_name, student, diagnosis, capsys):
    student.__name__ = fn_name
    score = CHECKS[fn_name](student)
    captured = capsys.readouterr()
    assert captured.err == ""
    assert "could not run" not in captured.out, captured.out
    assert score < CHECKS[fn_name].points, captured.out
    assert f"Diagnosis {diagnosis}:" in captured.out, captured.out


def test_correct_student_variants_get_full_marks(capsys):
    # the mutant factory without a mistake is a correct, different implementation
    assert CHECKS["batchnorm_forward"](_student_bn()) == CHECKS["batchnorm_forward"].points
    assert CHECKS["spatial_batchnorm_forward"](_student_spatial(None)) == 3
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(("n", "m"), [(4, 0.1), (16, 0.5), (16, 0.02)])
def test_running_mean_noise_follows_the_formula_of_notebook_02(n, m):
    """Notebook 02's running-statistics figure: after warm-up, running_mean scatters around the
    population mean with sd sigma/sqrt(N) * sqrt(m/(2-m)) (stationary variance of an EMA)."""
    r = np.random.default_rng(7)
    bn = {"mode": "train", "momentum": m}
    history = []
    for _ in range(20_000):
        ref.batchnorm_forward(r.normal(3.0, 2.0, size=(n, 1)), np.ones(1), np.zeros(1), bn)
        history.append(bn["running_mean"][0])
    measured = np.std(history[int(10 / m):])
    predicted = 2.0 / np.sqrt(n) * np.sqrt(m / (2 - m))
    assert measured == pytest.approx(predicted, rel=0.1)
