"""Assignment 04: the sandwich layer's reference and hidden checks, the provided BatchNorm file,
and the hidden check of ``mode_accuracies``. The experiments' claims are asserted in
``tests/test_experiment_claims.py``."""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io

import numpy as np
import pytest
from conftest import ROOT
from diagnoses import experiments as fx_experiments

import course.layers as layers
from autograder import reference as ref
from autograder.checks.experiments import check_mode_accuracies
from autograder.checks.framework import diagnoses_in
from autograder.checks.sandwich import (
    _case,
    check_affine_bn_relu_backward,
    check_affine_bn_relu_forward,
)
from autograder.reference import numerical_gradient as numerical_gradient_array
from autograder.tools import provided
from course.gradcheck import rel_error


# --------------------------------------------------------------------------- provided file
def test_provided_batchnorm_is_generated_from_the_reference():
    for rel, items in provided.PROVIDED.items():
        path = ROOT / rel
        assert path.read_text() == provided.render(items), (
            f"{rel} differs from autograder/reference/; run `make release` and commit it"
        )


def test_provided_batchnorm_behaves_as_the_reference():
    path = ROOT / "source" / "04_experiments" / "provided_batchnorm.py"
    spec = importlib.util.spec_from_file_location("provided_batchnorm", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    r = np.random.default_rng(0)
    x, gamma, beta, dout = r.normal(size=(9, 4)), r.normal(size=4), r.normal(size=4), r.normal(size=(9, 4))
    bn_a, bn_b = {"mode": "train"}, {"mode": "train"}
    out_a, cache_a = mod.batchnorm_forward(x, gamma, beta, bn_a)
    out_b, cache_b = ref.batchnorm_forward(x, gamma, beta, bn_b)
    assert np.array_equal(out_a, out_b) and np.array_equal(bn_a["running_var"], bn_b["running_var"])
    for a, b in zip(mod.batchnorm_backward(dout, cache_a), ref.batchnorm_backward(dout, cache_b),
                    strict=True):
        assert np.array_equal(a, b)


def test_release_ships_the_provided_file_and_no_reference():
    folder = ROOT / "release" / "04_experiments"
    assert (folder / "provided_batchnorm.py").read_text() == (
        ROOT / "source" / "04_experiments" / "provided_batchnorm.py").read_text()
    assert "autograder" not in (folder / "provided_batchnorm.py").read_text().split('"""')[2]


# --------------------------------------------------------------------------- reference sandwich
def _sandwich_case(seed=0, N=6, D=5, M=4):
    r = np.random.default_rng(seed)
    return (r.normal(size=(N, D)), r.normal(size=(D, M)), r.normal(size=M), r.uniform(0.5, 2, M),
            r.normal(size=M), r.normal(size=(N, M)))


def test_reference_sandwich_is_relu_of_batchnorm_of_affine():
    x, w, b, gamma, beta, _ = _sandwich_case()
    out, _ = ref.affine_bn_relu_forward(x, w, b, gamma, beta, {"mode": "train"})
    a = x @ w + b
    by_hand = np.maximum(0, gamma * (a - a.mean(0)) / np.sqrt(a.var(0) + 1e-5) + beta)
    np.testing.assert_allclose(out, by_hand, rtol=1e-12, atol=1e-12)


def test_reference_sandwich_gradients_match_finite_differences():
    x, w, b, gamma, beta, dout = _sandwich_case(1)
    params = [x, w, b, gamma, beta]
    _, cache = ref.affine_bn_relu_forward(x, w, b, gamma, beta, {"mode": "train"})
    grads = ref.affine_bn_relu_backward(dout, cache)
    for i, p in enumerate(params):
        def f(v, i=i):
            args = list(params)
            args[i] = v
            return ref.affine_bn_relu_forward(*args, {"mode": "train"})[0]
        numeric = numerical_gradient_array(f, p.copy(), dout)
        if i == 2:  # db: both are zero up to rounding, so a relative error means nothing
            assert np.max(np.abs(grads[i])) < 1e-12 and np.max(np.abs(numeric)) < 1e-9
        else:
            assert rel_error(grads[i], numeric) < 1e-7, f"gradient {i}"


def test_reference_sandwich_rejects_a_foreign_cache():
    with pytest.raises(TypeError, match="cache must be the"):
        ref.affine_bn_relu_backward(np.ones((2, 2)), {"x": 1})


def test_finite_difference_cases_keep_away_from_the_relu_kink():
    # the backward check's finite differences (h = 1e-6) are exact only if no ReLU input is
    # within h * (largest input change) of 0; its docstring promises a margin of 1e-3
    x, w, b, gamma, beta, bn, _ = _case(412, N=5, D=4, M=3)
    a = x @ w + b
    y = gamma * (a - a.mean(0)) / np.sqrt(a.var(0) + bn["eps"]) + beta
    assert np.min(np.abs(y)) > 1e-3


# --------------------------------------------------------------------------- hidden checks
NS = {"np": np, **{k: getattr(layers, k) for k in
                   ("affine_forward", "affine_backward", "relu_forward", "relu_backward")},
      "batchnorm_forward": ref.batchnorm_forward, "batchnorm_backward": ref.batchnorm_backward}

CORRECT_FORWARD = '''
def affine_bn_relu_forward(x, w, b, gamma, beta, bn_param):
    a, fc = affine_forward(x, w, b)
    y, bn = batchnorm_forward(a, gamma, beta, bn_param)
    out, relu = relu_forward(y)
    return out, (fc, bn, relu)
'''
CORRECT_BACKWARD = '''
def affine_bn_relu_backward(dout, cache):
    fc, bn, relu = cache
    da, dgamma, dbeta = batchnorm_backward(relu_backward(dout, relu), bn)
    dx, dw, db = affine_backward(da, fc)
    return dx, dw, db, dgamma, dbeta
'''


def _grade(forward_src=CORRECT_FORWARD, backward_src=CORRECT_BACKWARD):
    """Exec a student's two functions in a notebook-like namespace; grade both."""
    ns = dict(NS)
    exec(forward_src, ns)
    exec(backward_src, ns)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        score = (check_affine_bn_relu_forward(ns["affine_bn_relu_forward"]),
                 check_affine_bn_relu_backward(ns["affine_bn_relu_backward"]))
    return score, out.getvalue()


def test_reference_runs_through_the_sandwich_checks_without_crashing():
    """The checks' expected values are the reference's own: this only shows that neither check
    crashes on it (the reference is tested against finite differences above)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert check_affine_bn_relu_forward(ref.affine_bn_relu_forward) == 3
        assert check_affine_bn_relu_backward(ref.affine_bn_relu_backward) == 5


def test_a_correct_student_written_apart_from_the_reference_gets_full_marks():
    assert _grade()[0] == (3, 5)


ALTERNATIVES = {
    "dict cache, own names": (
        CORRECT_FORWARD.replace("return out, (fc, bn, relu)", "return out, {'f': fc, 'b': bn, 'r': relu}"),
        CORRECT_BACKWARD.replace("fc, bn, relu = cache", "fc, bn, relu = cache['f'], cache['b'], cache['r']"),
    ),
    "relu by hand, mask from the output": (
        CORRECT_FORWARD.replace("out, relu = relu_forward(y)", "out = np.maximum(y, 0); relu = out > 0"),
        CORRECT_BACKWARD.replace("relu_backward(dout, relu)", "dout * relu"),
    ),
    "affine by hand, einsum": (
        CORRECT_FORWARD.replace("a, fc = affine_forward(x, w, b)",
                                "x2 = x.reshape(len(x), -1); a = np.einsum('nd,dm->nm', x2, w) + b; "
                                "fc = (x, w)"),
        CORRECT_BACKWARD.replace("dx, dw, db = affine_backward(da, fc)",
                                 "x, w = fc; dx = (da @ w.T).reshape(x.shape); "
                                 "dw = x.reshape(len(x), -1).T @ da; db = da.sum(0)"),
    ),
}


@pytest.mark.parametrize("name", list(ALTERNATIVES))
def test_correct_alternatives_get_full_marks(name):
    score, report = _grade(*ALTERNATIVES[name])
    assert score == (3, 5), report
    assert not diagnoses_in(report) and "FAIL" not in report, report


MISTAKES = {
    # id or label in the report: (forward source, backward source, diagnosis text expected)
    "M9": (CORRECT_FORWARD.replace("batchnorm_forward(a, gamma, beta, bn_param)",
                                   "batchnorm_forward(a, gamma, beta, dict(bn_param))"),
           CORRECT_BACKWARD, "Diagnosis M9"),
    "order": (CORRECT_FORWARD.replace(
        "y, bn = batchnorm_forward(a, gamma, beta, bn_param)\n    out, relu = relu_forward(y)",
        "h, relu = relu_forward(a)\n    out, bn = batchnorm_forward(h, gamma, beta, bn_param)"),
        CORRECT_BACKWARD, "ReLU before BN"),
    "no_relu": (CORRECT_FORWARD.replace("out, relu = relu_forward(y)", "out, relu = y, None"),
                CORRECT_BACKWARD.replace("relu_backward(dout, relu)", "dout"), "no ReLU"),
    "mask": (CORRECT_FORWARD.replace("return out, (fc, bn, relu)", "return out, (fc, bn, a)"),
             CORRECT_BACKWARD.replace("relu_backward(dout, relu)", "relu_backward(dout, relu)"),
             "wrong ReLU mask"),
    "skip_relu": (CORRECT_FORWARD, CORRECT_BACKWARD.replace("relu_backward(dout, relu)", "dout"),
                  "ReLU skipped"),
    "M15": (CORRECT_FORWARD, CORRECT_BACKWARD.replace(
        "return dx, dw, db, dgamma, dbeta",
        "dy = relu_backward(dout, relu)\n    return dx, dw, db, dy * bn['x_hat'], dy"),
        "Diagnosis M15"),
    "M16": (CORRECT_FORWARD, CORRECT_BACKWARD.replace(
        "da, dgamma, dbeta = batchnorm_backward(relu_backward(dout, relu), bn)",
        "dy = relu_backward(dout, relu)\n    D = dy.shape[1]\n"
        "    dgamma, dbeta = (dy * bn['x_hat']).sum(0), dy.sum(0)\n"
        "    da = bn['gamma'] * bn['inv_std'] / D * (len(dy) * dy - dbeta - bn['x_hat'] * dgamma)"),
        "Diagnosis M16"),
    "M17": (CORRECT_FORWARD, CORRECT_BACKWARD.replace(
        "da, dgamma, dbeta = batchnorm_backward(relu_backward(dout, relu), bn)",
        "dy = relu_backward(dout, relu)\n"
        "    dgamma, dbeta = (dy * bn['x_hat']).sum(0), dy.sum(0)\n"
        "    da = dy * bn['gamma'] * bn['inv_std']"),
        "Diagnosis M17"),
}


@pytest.mark.parametrize("name", list(MISTAKES))
def test_each_sandwich_mistake_is_named(name):
    fwd, bwd, expected = MISTAKES[name]
    assert fwd != CORRECT_FORWARD or bwd != CORRECT_BACKWARD, "the fixture must change something"
    (f_score, b_score), report = _grade(fwd, bwd)
    assert f_score + b_score < 8, report
    labels = {d.label for s in (f_score, b_score) for d in s.record.diagnoses}  # the records
    assert expected.removeprefix("Diagnosis ") in labels, f"{name} not named:\n{report}"
    assert expected in report, "and the rendering shows it"
    ids = {mk for s in (f_score, b_score) for mk in s.record.diagnosis_ids}
    if expected.startswith("Diagnosis M"):
        assert ids == {expected.split()[-1]}, f"expected only {expected}, got {ids}\n{report}"
    assert "yours:" in report or "before:" in report or "shape" in report, report


def test_an_empty_exercise_scores_zero_without_a_crash():
    def empty(*args):
        raise NotImplementedError()
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert check_affine_bn_relu_forward(empty) == 0
        assert check_affine_bn_relu_backward(empty) == 0
    assert "not implemented yet" in buf.getvalue()


# --------------------------------------------------------------------------- mode_accuracies check
def _fixture_function(source: str):
    from course.nets import FullyConnectedNet
    ns = {"np": np, "copy": copy, "affine_forward": layers.affine_forward,
          "FullyConnectedNet": FullyConnectedNet,
          "affine_bn_relu_forward": ref.affine_bn_relu_forward}
    exec(source, ns)  # noqa: S102 - our own fixtures
    return ns["mode_accuracies"]


def _grade_modes(source: str):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        score = check_mode_accuracies(_fixture_function(source))
    return score, buf.getvalue()


def test_mode_accuracies_reference_matches_a_hand_worked_case():
    # one hidden unit, scores (h, 0.5 - h): see the notebook's visible test for the arithmetic
    params = {"W1": np.array([[1.0]]), "b1": np.zeros(1), "gamma1": np.ones(1),
              "beta1": np.zeros(1), "W2": np.array([[1.0, -1.0]]), "b2": np.array([0.0, 0.5])}
    bn = [{"eps": 1e-5, "momentum": 0.1, "running_mean": np.zeros(1), "running_var": np.ones(1)}]
    X, y = np.array([[3.0], [2.0], [-1.0], [-2.0], [10.0]]), np.array([0, 1, 0, 1, 1])
    assert ref.mode_accuracies(params, bn, X, y, 2) == (1.0, 0.5)
    assert ref.mode_accuracies(params, bn, X, y, 4) == (0.5, 0.5)
    assert np.array_equal(bn[0]["running_mean"], np.zeros(1)), "measuring changed the network"
    with pytest.raises(ValueError, match="batch_size"):
        ref.mode_accuracies(params, bn, X, y, 1)


def test_mode_accuracies_check_case_is_not_trivial():
    from autograder.checks.experiments import BATCH_SIZES, _case
    params, bn_params, X, y = _case()
    values = np.array([ref.mode_accuracies(params, bn_params, X, y, B) for B in BATCH_SIZES])
    assert np.all((values > 0.05) & (values < 0.95)) and not np.any(np.isin(values, (0.25, 0.5)))
    assert np.min(np.abs(values[:, 0] - values[:, 1])) > 0.1, "the two modes must disagree"
    assert len(set(values[:, 0])) == len(BATCH_SIZES), "train mode must depend on the batch size"


def test_mode_accuracies_reference_gets_full_marks():
    assert _grade_modes(fx_experiments.CORRECT)[0] == check_mode_accuracies.points


@pytest.mark.parametrize("fixture", fx_experiments.ALTERNATIVES,
                         ids=[f.id for f in fx_experiments.ALTERNATIVES])
def test_mode_accuracies_correct_alternatives_get_full_marks(fixture):
    score, report = _grade_modes(fixture.source)
    assert score == check_mode_accuracies.points, report
    assert "[FAIL]" not in report and "Diagnosis" not in report, report


@pytest.mark.parametrize("fixture", fx_experiments.MISTAKES, ids=[f.id for f in fx_experiments.MISTAKES])
def test_mode_accuracies_catalogued_mistakes_are_named(fixture):
    score, report = _grade_modes(fixture.source)
    assert score < check_mode_accuracies.points, report
    assert diagnoses_in(report) == {fixture.mistake}, report
    assert "yours:" in report or "before:" in report, report


@pytest.mark.parametrize(("label", "fixture"), fx_experiments.LABELLED,
                         ids=[label for label, _ in fx_experiments.LABELLED])
def test_mode_accuracies_other_mistakes_are_named(label, fixture):
    score, report = _grade_modes(fixture.source)
    assert score < check_mode_accuracies.points, report
    assert f"Diagnosis {label}:" in report and not diagnoses_in(report), report


@pytest.mark.parametrize("name", list(fx_experiments.STUBS))
def test_mode_accuracies_stubs_score_zero(name):
    score, report = _grade_modes(fx_experiments.STUBS[name])
    assert score == 0, report
