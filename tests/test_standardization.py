"""Assignment 01 (standardization): the reference solution and the hidden checks.

Oracles: scikit-learn's ``StandardScaler``, numbers worked by hand, and invariants
(standardized training columns have mean 0 and population std 1). The checks are run on the
sample submissions and on small hand-written mistakes, and must name each mistake.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
from conftest import answer_cells, release_stub
from sklearn.preprocessing import StandardScaler

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autograder.checks import standardization as C  # noqa: E402
from autograder.checks.framework import diagnoses_in  # noqa: E402
from autograder.reference import fit_standardizer, standardize  # noqa: E402
from autograder.samples import standardization as samples  # noqa: E402
from autograder.samples import unmet_expectations  # noqa: E402

SOURCE = ROOT / "source" / "01_standardization" / samples.NOTEBOOK
FUNCTIONS = ("fit_standardizer", "standardize", "standardize_splits")
CHECKS = {name: getattr(C, f"check_{name}") for name in FUNCTIONS}


# =========================================================================== reference vs sklearn
def _data(seed, m, D, offset=0.0, dtype=np.float64):
    r = np.random.default_rng(seed)
    X = offset + r.uniform(-5, 5, D) + 10.0 ** r.uniform(-2, 2, D) * r.standard_normal((m, D))
    return X.astype(dtype)


@pytest.mark.parametrize(
    "m, D, offset",
    [(50, 4, 0.0), (7, 1, 0.0), (1, 5, 0.0), (2, 3, 0.0), (200, 6, 1e4)],
    ids=["50x4", "D=1", "m=1", "m=2", "offset_1e4"],
)
def test_reference_statistics_equal_standard_scaler(m, D, offset):
    X = _data(m * 10 + D, m, D, offset)
    scaler = StandardScaler().fit(X)
    mean, scale = fit_standardizer(X)
    assert mean.shape == scale.shape == (D,), "statistics must have one entry per feature"
    np.testing.assert_allclose(mean, scaler.mean_, rtol=1e-12, err_msg="mean differs from sklearn")
    np.testing.assert_allclose(scale, scaler.scale_, rtol=1e-9, err_msg="scale differs from sklearn")
    np.testing.assert_allclose(
        standardize(X, mean, scale), scaler.transform(X), rtol=1e-8, atol=1e-9,
        err_msg="standardized data differ from sklearn",
    )


def test_reference_on_hand_worked_example():
    # columns: 1,3,5,7 -> mean 4, var 20/4 = 5;  2,2,6,6 -> mean 4, var 4;  constant 7 -> scale 1
    X = np.array([[1.0, 2.0, 7.0], [3.0, 2.0, 7.0], [5.0, 6.0, 7.0], [7.0, 6.0, 7.0]])
    mean, scale = fit_standardizer(X)
    np.testing.assert_allclose(mean, [4.0, 4.0, 7.0])
    np.testing.assert_allclose(scale, [np.sqrt(5.0), 2.0, 1.0])
    Z = standardize(X, mean, scale)
    np.testing.assert_allclose(Z[:, 1], [-1.0, -1.0, 1.0, 1.0])
    np.testing.assert_array_equal(Z[:, 2], 0.0)


def test_reference_zero_variance_feature_gets_scale_one_like_sklearn():
    X = _data(3, 12, 4)
    X[:, 2] = 0.1  # not exactly summable: the mean is not exactly 0.1, the variance ~1e-34
    X[:, 0] = 5.0
    mean, scale = fit_standardizer(X)
    scaler = StandardScaler().fit(X)
    np.testing.assert_array_equal(scale[[0, 2]], 1.0)
    np.testing.assert_allclose(scale, scaler.scale_, rtol=1e-12)
    Z = standardize(X, mean, scale)
    assert np.all(np.isfinite(Z)), "a constant feature must not produce nan/inf"
    np.testing.assert_allclose(Z[:, [0, 2]], 0.0, atol=1e-12)


# Both directions of scikit-learn's zero-variance rule (_is_constant_feature, issue 10 §5):
# a near-constant feature with a large offset keeps its real spread, a computed constant is 0.
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_near_constant_feature_with_large_offset_keeps_its_scale_like_sklearn(seed):
    X = 1e6 + 1e-2 * np.random.default_rng(seed).standard_normal((100, 1))
    scaler = StandardScaler().fit(X)
    mean, scale = fit_standardizer(X)
    assert 0.005 < scaler.scale_[0] < 0.02, "oracle: StandardScaler keeps a spread of about 0.01"
    np.testing.assert_allclose(scale, scaler.scale_, rtol=1e-9,
                               err_msg="mean 1e6, std 1e-2 is not constant: scale must be ~0.01")


@pytest.mark.parametrize("value, m", [(0.1, 3), (0.1, 7), (1 / 3, 5), (-2.7, 11), (1e6 + 0.1, 9)])
def test_computed_constant_feature_is_zero_after_standardizing_like_sklearn(value, m):
    X = np.full((m, 1), value)
    var = ((X - X.mean(axis=0)) ** 2).mean(axis=0)
    scaler = StandardScaler().fit(X)
    mean, scale = fit_standardizer(X)
    np.testing.assert_array_equal(scaler.scale_, 1.0, err_msg="oracle: sklearn treats it as constant")
    np.testing.assert_array_equal(scale, 1.0, err_msg=f"computed variance {var[0]:.1e} is rounding")
    Z = standardize(X, mean, scale)
    np.testing.assert_allclose(Z, scaler.transform(X), atol=1e-12)
    np.testing.assert_allclose(Z, 0.0, atol=1e-9)


def test_exact_zero_test_fails_on_the_computed_constant_that_the_notebook_shows():
    """The example of notebook 01: np.full((3, 1), 0.1) has a variance of about 1e-34, so
    ``var == 0`` keeps a scale of about 1e-17 and maps every value to -1, not 0."""
    X = np.full((3, 1), 0.1)
    mean = X.mean(axis=0)
    var = ((X - mean) ** 2).mean(axis=0)
    assert 0 < var[0] < 1e-30
    naive = (X - mean) / np.sqrt(var)
    np.testing.assert_allclose(naive, -1.0)
    np.testing.assert_allclose(StandardScaler().fit_transform(X), 0.0, atol=1e-15)


@pytest.mark.parametrize("X", [np.full((3, 1), 0.1), 1e6 + 1e-2 * np.random.default_rng(5).standard_normal((50, 2)),
                               np.full((4, 2), 7.0)], ids=["0.1x3", "offset_1e6", "exact_7"])
def test_notebook_solution_follows_sklearns_zero_variance_rule(X):
    ns = _solution_namespace()
    mean, scale = ns["fit_standardizer"](X.copy())
    scaler = StandardScaler().fit(X)
    np.testing.assert_allclose(mean, scaler.mean_, rtol=1e-12)
    np.testing.assert_allclose(scale, scaler.scale_, rtol=1e-9)


def _solution_namespace() -> dict:
    nb = nbformat.read(SOURCE, as_version=4)
    ns: dict = {"np": np}
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "fit_standardizer":
            exec(cell.source, ns)
    return ns


def test_reference_float32_values_match_sklearn_and_keep_dtype():
    X = _data(4, 80, 5, dtype=np.float32)
    mean, scale = fit_standardizer(X)
    scaler = StandardScaler().fit(X)  # sklearn's statistics are float64 for float32 input
    assert mean.dtype == scale.dtype == np.float32
    np.testing.assert_allclose(mean, scaler.mean_, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(scale, scaler.scale_, rtol=1e-5)
    assert standardize(X, mean, scale).dtype == np.float32


def test_reference_standardized_training_columns_have_mean_0_and_std_1():
    X = _data(5, 60, 5, offset=1e4)
    Z = standardize(X, *fit_standardizer(X))
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(Z.std(axis=0), 1.0, rtol=1e-9)


@pytest.mark.parametrize(
    "bad",
    [np.arange(3.0), np.zeros((0, 3)), np.zeros((2, 3, 4)), np.float64(1.0)],
    ids=["1-D", "no rows", "3-D", "scalar"],
)
def test_reference_fit_rejects_bad_shapes_with_value_error(bad):
    with pytest.raises(ValueError, match="X"):
        fit_standardizer(bad)


@pytest.mark.parametrize(
    "bad", [np.array([["a", "b"]]), np.ones((2, 2), dtype=complex), [[1.0, 2.0], [3.0]]],
    ids=["strings", "complex", "ragged"],
)
def test_reference_fit_rejects_non_real_input_with_type_error(bad):
    with pytest.raises(TypeError, match="X"):
        fit_standardizer(bad)


def test_reference_standardize_rejects_mismatched_statistics():
    X = np.ones((4, 3))
    with pytest.raises(ValueError, match="mean"):
        standardize(X, np.zeros(2), np.ones(3))
    with pytest.raises(ValueError, match="scale"):
        standardize(X, np.zeros(3), np.ones((3, 1)))
    with pytest.raises(ValueError, match="X"):
        standardize(np.ones(3), np.zeros(3), np.ones(3))
    with pytest.raises(TypeError, match="mean"):
        standardize(X, np.array(["a", "b", "c"]), np.ones(3))


def test_reference_does_not_modify_its_inputs():
    X = _data(6, 10, 3)
    X0 = X.copy()
    mean, scale = fit_standardizer(X)
    m0, s0 = mean.copy(), scale.copy()
    Z = standardize(X, mean, scale)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(mean, m0)
    np.testing.assert_array_equal(scale, s0)
    assert not np.shares_memory(Z, X), "standardize must return a new array"


# =========================================================================== running the checks
def _answer_cells() -> dict[str, str]:
    return answer_cells(SOURCE)


def _namespace(answers: dict[str, str]) -> dict:
    """Exec the answer cells (the sample's, else the release stubs) as the notebook would."""
    cells = _answer_cells()
    ns = {"np": np}
    for fn in FUNCTIONS:
        exec(answers.get(fn, release_stub(cells[fn])), ns)  # noqa: S102 - our own samples
    return ns


def _run(check, fn, capsys):
    score = check(fn)
    out = capsys.readouterr()
    return score, out.out, out.err


def test_release_stubs_really_raise_not_implemented():
    ns = _namespace({})
    with pytest.raises(NotImplementedError):
        ns["fit_standardizer"](np.ones((2, 2)))


def test_samples_cover_the_notebooks_answer_cells():
    cells = _answer_cells()
    for sid, student in samples.STUDENTS.items():
        unknown = set(student["answers"]) - set(cells)
        assert not unknown, f"{sid} answers cells the notebook does not have: {unknown}"
    assert set(samples.STUDENTS) == {"ada", "ben", "cyd", "dee"}


@pytest.mark.parametrize("sid", list(samples.STUDENTS))
def test_sample_students_get_their_expected_grades_and_diagnoses(sid, capsys):
    student = samples.STUDENTS[sid]
    expect = student["expect"]
    ns = _namespace(student["answers"])
    total = maximum = 0.0
    report = ""
    for name, check in CHECKS.items():
        score, out, err = _run(check, ns[name], capsys)
        assert err == "", f"{sid}/{name}: the check wrote to stderr: {err!r}"
        assert 0 <= score <= check.points
        total += score
        maximum += check.points
        report += out
    problems = unmet_expectations(expect, total, maximum, diagnoses_in(report))
    assert not problems, f"{sid}: {problems}\n{report}"
    if expect["zero"]:
        assert "not implemented yet" in report


def test_the_reference_solution_in_the_notebook_gets_full_marks(capsys):
    ns = {"np": np}
    for fn in FUNCTIONS:
        exec(_answer_cells()[fn], ns)  # noqa: S102
    for name, check in CHECKS.items():
        score, out, err = _run(check, ns[name], capsys)
        assert score == check.points, out
        assert err == ""


# Correct but different implementations: all must get full marks.
CORRECT_VARIANTS = {
    "np.std and np.where": '''
def fit_standardizer(X):
    if np.ndim(X) != 2 or len(X) == 0:
        raise ValueError(f"bad shape {np.shape(X)}")
    s = np.std(X, axis=0)
    return np.mean(X, axis=0), np.where(s == 0, 1.0, s)
''',
    "StandardScaler inside": '''
def fit_standardizer(X):
    from sklearn.preprocessing import StandardScaler
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError("X must be 2-D with rows")
    sc = StandardScaler().fit(X)
    return sc.mean_, sc.scale_
''',
    "python loops": '''
import math
def fit_standardizer(X):
    if not hasattr(X, "shape") or len(X.shape) != 2 or X.shape[0] == 0:
        raise ValueError("X must be a non-empty 2-D array")
    m, D = X.shape
    mean, scale = np.empty(D), np.empty(D)
    for j in range(D):
        mu = sum(float(v) for v in X[:, j]) / m
        var = sum((float(v) - mu) ** 2 for v in X[:, j]) / m
        mean[j], scale[j] = mu, (math.sqrt(var) if var > 0 else 1.0)
    return mean, scale
''',
    "float32 kept": '''
def fit_standardizer(X):
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError("X must be 2-D with rows")
    mean = X.mean(axis=0)
    scale = np.sqrt(np.mean(np.square(X - mean), axis=0, dtype=X.dtype))
    scale[scale == 0] = 1
    return mean, scale
''',
}


@pytest.mark.parametrize("name", list(CORRECT_VARIANTS))
def test_correct_alternative_fit_standardizer_gets_full_marks(name, capsys):
    ns = {"np": np}
    exec(CORRECT_VARIANTS[name], ns)  # noqa: S102
    score, out, err = _run(C.check_fit_standardizer, ns["fit_standardizer"], capsys)
    assert score == C.check_fit_standardizer.points, f"{name}:\n{out}"
    assert err == ""


def test_float32_preserving_standardize_gets_full_marks(capsys):
    def standardize(X, mean, scale):
        return ((X - mean) / scale).astype(X.dtype)

    score, out, _ = _run(C.check_standardize, standardize, capsys)
    assert score == C.check_standardize.points, out


# Single mistakes, each with the diagnosis the report must name.
MISTAKES = {
    "M1 ddof=1 via np.std": ("fit_standardizer", "M1", '''
def fit_standardizer(X):
    if X.ndim != 2 or len(X) == 0:
        raise ValueError("bad X")
    s = X.std(axis=0, ddof=1)
    return X.mean(axis=0), np.where(s == 0, 1.0, s)
'''),
    "M2 axis=1": ("fit_standardizer", "M2", '''
def fit_standardizer(X):
    if X.ndim != 2 or len(X) == 0:
        raise ValueError("bad X")
    s = X.std(axis=1)
    return X.mean(axis=1), np.where(s == 0, 1.0, s)
'''),
    "M3 eps inside sqrt": ("fit_standardizer", "M3", '''
def fit_standardizer(X):
    if X.ndim != 2 or len(X) == 0:
        raise ValueError("bad X")
    return X.mean(axis=0), np.sqrt(X.var(axis=0) + 1e-8)
'''),
    "M3 std + eps": ("fit_standardizer", "M3", '''
def fit_standardizer(X):
    if X.ndim != 2 or len(X) == 0:
        raise ValueError("bad X")
    return X.mean(axis=0), X.std(axis=0) + 1e-5
'''),
    "M4 one-pass variance": ("fit_standardizer", "M4", '''
def fit_standardizer(X):
    if X.ndim != 2 or len(X) == 0:
        raise ValueError("bad X")
    mean = X.mean(axis=0)
    var = np.maximum((X * X).mean(axis=0) - mean * mean, 0.0)
    return mean, np.where(var == 0, 1.0, np.sqrt(var))
'''),
    "M5 no zero handling": ("fit_standardizer", "M5", '''
def fit_standardizer(X):
    if X.ndim != 2 or len(X) == 0:
        raise ValueError("bad X")
    return X.mean(axis=0), X.std(axis=0)
'''),
    "M10 fit centres X in place": ("fit_standardizer", "M10", '''
def fit_standardizer(X):
    if X.ndim != 2 or len(X) == 0:
        raise ValueError("bad X")
    mean = X.mean(axis=0)
    X -= mean
    s = np.sqrt((X ** 2).mean(axis=0))
    return mean, np.where(s == 0, 1.0, s)
'''),
    "M21 standardize recomputes statistics": ("standardize", "M21", '''
def standardize(X, mean, scale):
    return (X - X.mean(axis=0)) / X.std(axis=0)
'''),
    "M10 standardize in place": ("standardize", "M10", '''
def standardize(X, mean, scale):
    X -= mean
    X /= scale
    return X
'''),
    "M21 splits fitted on all data": ("standardize_splits", "M21", '''
def standardize_splits(X_train, X_val, X_test):
    mean, scale = fit_standardizer(np.concatenate([X_train, X_val, X_test]))
    return tuple(standardize(X, mean, scale) for X in (X_train, X_val, X_test))
'''),
    "M21 splits fitted on the test split": ("standardize_splits", "M21", '''
def standardize_splits(X_train, X_val, X_test):
    mean, scale = fit_standardizer(X_test)
    return tuple(standardize(X, mean, scale) for X in (X_train, X_val, X_test))
'''),
}


@pytest.mark.parametrize("case", list(MISTAKES))
def test_each_known_mistake_loses_points_and_is_named(case, capsys):
    fn_name, diag, src = MISTAKES[case]
    ns = _namespace({fn_name: src.strip("\n")} | {
        f: c for f, c in _answer_cells().items() if f != fn_name and f in FUNCTIONS
    })
    check = CHECKS[fn_name]
    score, out, err = _run(check, ns[fn_name], capsys)
    assert score < check.points, f"{case} should lose points\n{out}"
    assert f"Diagnosis {diag}:" in out, f"{case}: expected Diagnosis {diag}\n{out}"
    assert err == "", f"{case}: stderr {err!r}"


def test_a_single_ddof1_mistake_costs_points_only_in_the_parts_about_it(capsys):
    """M1 fails the main part and the one-row part (nan scale), not dtype/offset/constant parts."""
    ns = {"np": np}
    exec(MISTAKES["M1 ddof=1 via np.std"][2], ns)  # noqa: S102
    score, out, _ = _run(C.check_fit_standardizer, ns["fit_standardizer"], capsys)
    # weights: main 3 + one row 1 failed, of 9 in total -> 4 * 5/9
    assert score == pytest.approx(round(4 * 5 / 9, 2)), out


@pytest.mark.parametrize(
    "returned", [None, "mean", (1, 2, 3), {"mean": 0}, (np.zeros(2), None)],
    ids=["None", "str", "triple", "dict", "pair-with-None"],
)
def test_checks_survive_strange_return_values(returned, capsys):
    def fn(*args):
        return returned

    fn.__name__ = "whatever"
    for name, check in CHECKS.items():
        score, out, err = _run(check, fn, capsys)
        assert score < check.points, f"{name} gave full marks to {returned!r}\n{out}"
        assert "please tell the instructor" not in out, f"{name} crashed on {returned!r}\n{out}"
        assert err == ""


def test_checks_refuse_something_that_is_not_a_function(capsys):
    for check in CHECKS.values():
        score, out, _ = _run(check, 42, capsys)
        assert score == 0 and "should be a function" in out


def test_student_warnings_do_not_reach_stderr(capsys):
    def fit_standardizer(X):
        mean = X.mean(axis=0)
        s = X.std(axis=0)
        return mean, s / s * s  # 0 / 0 on a constant feature: numpy warns

    score, out, err = _run(C.check_fit_standardizer, fit_standardizer, capsys)
    assert err == ""
    assert score < C.check_fit_standardizer.points


def test_hidden_cells_in_the_notebook_are_worth_the_checks_points():
    nb = nbformat.read(SOURCE, as_version=4)
    hidden = {
        c.metadata["nbgrader"]["grade_id"]: c
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"
    }
    assert set(hidden) == {f"test_{f}" for f in FUNCTIONS}
    for fn in FUNCTIONS:
        cell = hidden[f"test_{fn}"]
        assert cell.metadata["nbgrader"]["points"] == CHECKS[fn].points
        assert f"check_{fn}({fn})" in cell.source.splitlines()[-2]


# =========================================================================== notebook 01's claims
def _wine_logistic():
    from course.data import load_wine

    data = load_wine()
    scaler = StandardScaler().fit(data.X_train)
    y = (data.y_train == 1).astype(float)
    return data, scaler, y


def _loss_and_grad(A, y, w):
    t = A @ w
    p = 0.5 * (1.0 + np.tanh(0.5 * t))
    return np.mean(np.logaddexp(0.0, t) - y * t), A.T @ (p - y) / len(y)


@pytest.mark.parametrize("fraction_of_2_over_L", [0.5, 0.99])
def test_descent_lemma_every_step_below_2_over_L_lowers_the_wine_loss(fraction_of_2_over_L):
    """Notebook 01, section 5: any eta < 2/L decreases the loss (not only eta <= 1/L)."""
    data, scaler, y = _wine_logistic()
    A = np.column_stack([np.ones(len(y)), scaler.transform(data.X_train)])
    L = np.linalg.eigvalsh(A.T @ A / (4 * len(A))).max()
    eta = fraction_of_2_over_L * 2.0 / L
    w = np.zeros(A.shape[1])
    loss, grad = _loss_and_grad(A, y, w)
    for _ in range(200):
        w = w - eta * grad
        new_loss, grad = _loss_and_grad(A, y, w)
        assert new_loss < loss, f"eta = {eta:.3g} < 2/L raised the loss"
        loss = new_loss


def test_wine_training_split_is_linearly_separable_and_raw_accuracy_near_majority():
    """Notebook 01, section 5: the standardized training split is separable (the loss has no
    finite minimizer), and the majority class of the validation split is 61 %."""
    from sklearn.svm import LinearSVC

    data, scaler, y = _wine_logistic()
    Z = scaler.transform(data.X_train)
    svm = LinearSVC(C=1e4, max_iter=200_000).fit(Z, y)
    assert svm.score(Z, y) == 1.0, "a linear classifier separates cultivar 1 on the training split"
    y_val = (data.y_val == 1).astype(float)
    assert max(y_val.mean(), 1 - y_val.mean()) == pytest.approx(22 / 36)
