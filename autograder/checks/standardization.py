"""Hidden checks for assignment 01, standardization: ``fit_standardizer``, ``standardize``,
``standardize_splits``.

Expected values come from :mod:`autograder.reference`, which itself is tested against
scikit-learn's ``StandardScaler`` (``tests/test_standardization.py``).

Dtype policy. For float32 input the reference returns float32, but scikit-learn's
``StandardScaler`` returns float64 statistics for float32 data, so a float64 result is just as
correct. The checks therefore compare *values* (in float64) with a tolerance suited to float32
and never require a particular dtype.

Misconceptions these checks can name (``../shared/MISCONCEPTIONS.md``): M1 (ddof=1), M2 (per-row
statistics), M3 (an eps added to the variance or the std), M4 (one-pass variance E[x²]-E[x]²),
M5 (zero-variance feature not mapped to scale 1), M10 (input modified), M12 (numerator squared
in standardize), M21 (statistics not taken from the training split, or recomputed from the data
being transformed).
"""

from __future__ import annotations

import numpy as np

from autograder import reference as ref
from autograder.checks.framework import (
    Failure,
    Grader,
    close,
    fmt,
    hidden_check,
    quiet,
    require_unchanged,
    rng,
    unpack,
)

__all__ = ["check_fit_standardizer", "check_standardize", "check_standardize_splits"]

# Tolerances (relative unless stated).
# float64: a correct implementation differs from the reference only by summation order, about
# m * 2.2e-16 ≈ 1e-13 for the m ≤ 300 rows used here; 1e-7 leaves room for an eps below 1e-14
# added to a unit variance (harmless), yet is far below the smallest mistake tested (M1 with
# m = 300 rows changes the scale by 1.7e-3).
RTOL64 = 1e-7
# float32: eps32 = 1.2e-7; a naive loop over m ≤ 60 float32 values accumulates up to about
# m * eps32 ≈ 7e-6 relative error. 1e-4 is well above that and well below M1 (≥ 8e-3 at m = 60).
RTOL32 = 1e-4
# Entries of standardized output and means are O(1) and can be near zero: absolute slack of the
# same size as the relative tolerance above.
ATOL64 = 1e-9
ATOL32 = 1e-5

_EPS_CANDIDATES = (1e-12, 1e-10, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3)

_M1 = (
    "the scale matches the sample standard deviation (ddof=1, dividing by m-1). Standardization "
    "uses the population standard deviation (np.std's default ddof=0, dividing by m), as "
    "StandardScaler does."
)
_M2 = (
    "the statistics were taken over the wrong axis: one value per row (sample) instead of one "
    "per column (feature). Use axis=0, so that mean and scale have shape (D,)."
)
_M3 = (
    "the scale matches the std with a small eps added (inside or outside the square root). "
    "A standardizer needs no eps: use the exact population std, and set scale = 1.0 only where "
    "a feature's variance is zero."
)
_M4 = (
    "the scale is right when the data are centred but wrong when a large constant (1e4) is "
    "added: this is the one-pass formula var = mean(x**2) - mean(x)**2, which loses all "
    "precision to cancellation. Subtract the mean first: var = mean((x - mean)**2)."
)
_M5 = (
    "a feature with zero variance got scale 0 (or nan/inf) instead of 1.0. Dividing by 0 "
    "turns that feature into nan/inf; StandardScaler sets its scale to 1.0 so that the "
    "feature becomes all zeros."
)
_M5_ROUNDING = (
    "a computed constant, np.full((3, 1), 0.1), has a variance of about 2e-34 from rounding "
    "alone, and your scale for it is {scale:.1e} instead of 1.0, so it standardizes to "
    "{z:+.0f} instead of 0 (StandardScaler gives 0). Treat a feature as constant when "
    "var <= m*eps*var + (m*mean*eps)**2 with eps = np.finfo(np.float64).eps, as section 2 "
    "explains (scikit-learn's _is_constant_feature). Not graded: a note."
)
_M10 = (
    "your function modified its input array in place (e.g. `X -= mean`). The caller's data "
    "must stay unchanged: work on a new array, e.g. `Z = X - mean`."
)
_M12 = (
    "the numerator is squared: your Z is (X - mean)**2 / scale. Standardizing subtracts the "
    "mean and divides by the scale, Z = (X - mean) / scale, so Z has both signs."
)
_M21_RECOMPUTE = (
    "the output matches standardizing X with its *own* mean and std, ignoring the mean and "
    "scale you were given. Statistics must come from the training split and be re-used "
    "unchanged on validation and test data; recomputing them on each split is train/test skew "
    "(inconsistent preprocessing: each split goes through a different transformation)."
)


# --------------------------------------------------------------------------- helpers
def _population_std(X):
    return quiet(lambda: np.sqrt(((X - X.mean(axis=0)) ** 2).mean(axis=0)))


def _ones_where_zero(scale):
    """The scale with 1.0 where it is exactly 0 (the ddof=1 model: with m - 1 the bound of
    :func:`autograder.reference.is_constant_feature` moves, so only exact zeros are mapped)."""
    scale = np.array(scale, dtype=np.float64, copy=True)
    scale[scale == 0] = 1.0
    return scale


def _note_rounding_constant(g: Grader, fit_standardizer) -> None:
    """A note (no points) when a computed constant is not treated as constant."""
    X = np.full((3, 1), 0.1)
    try:
        _, scale = unpack(g.call(fit_standardizer, X.copy()), 2, "mean, scale")
        scale = float(np.asarray(scale, dtype=np.float64).ravel()[0])
    except Exception:  # noqa: BLE001 - a note must never cost points
        return
    if np.isfinite(scale) and 0 < scale < 1e-8:
        g.note(_M5_ROUNDING.format(scale=scale, z=(0.1 - X.mean()) / scale))


def _eps_mistake(got, X, rtol, atol):
    """The M3 entry for ``mistakes`` if ``got`` matches std with some eps added, else {}."""
    var = quiet(lambda: ((X - X.mean(axis=0)) ** 2).mean(axis=0))
    for eps in _EPS_CANDIDATES:
        for variant in (quiet(np.sqrt, var + eps), quiet(np.sqrt, var) + eps):
            if close(got, variant, rtol, atol):
                return {"M3": (variant, _M3)}
    return {}


def _scale_mistakes(got, X, rtol, atol):
    """The known wrong scales for data X (shape (m, D)), in the order they are tried."""
    mistakes = {
        "M1": (
            lambda: _ones_where_zero(quiet(lambda: X.std(axis=0, ddof=1))),
            _M1,
        ),
        "M2": (lambda: quiet(lambda: X.std(axis=1)), _M2),
        "M5": (lambda: _population_std(X), _M5),
    }
    mistakes.update(_eps_mistake(got, X, rtol, atol))
    return mistakes


def _compare_side_scale(g: Grader, what: str, got, expected, X, rtol: float, mistakes) -> None:
    """Compare a scale in a part about another property (precision, dtype, zero variance).

    A scale that is exactly the ddof=1 one (M1, with scale 1 on zero-variance features) is
    accepted here with a note: the first part already takes the points for M1, and each part
    should cost points for its own property only.
    """
    ddof1 = _ones_where_zero(quiet(lambda: X.std(axis=0, ddof=1)))
    if not close(got, expected, rtol) and close(got, ddof1, rtol):
        g.note(f"{what} matches ddof=1 (M1, graded in the first part); not counted again here.")
        return
    g.compare(what, got, expected, rtol=rtol, mistakes=mistakes)


def _random_data(seed: int, m: int, D: int, dtype=np.float64):
    """Features with different means and spreads, as real data have."""
    r = rng(seed)
    loc = r.uniform(-5.0, 5.0, size=D)
    spread = 10.0 ** r.uniform(-1.0, 2.0, size=D)
    return (loc + spread * r.standard_normal((m, D))).astype(dtype)


# --------------------------------------------------------------------------- fit_standardizer
def _fit_mean_and_std(g, fit_standardizer) -> None:
    """Part of ``check_fit_standardizer``: mean and population std per feature, float64, shapes."""
    with g.part("mean and population std per feature, float64, shapes (40, 5), (300, 3), (6, 1)", 3):
        for seed, (m, D) in enumerate([(40, 5), (300, 3), (6, 1)]):
            X = _random_data(seed, m, D)
            mean, scale = unpack(g.call(fit_standardizer, X.copy()), 2, "mean, scale")
            exp_mean, exp_scale = ref.fit_standardizer(X)
            g.compare(
                f"mean for X of shape {X.shape}", mean, exp_mean, rtol=RTOL64, atol=ATOL64,
                mistakes={"M2": (lambda X=X: X.mean(axis=1), _M2)},
            )
            g.compare(
                f"scale for X of shape {X.shape}", scale, exp_scale, rtol=RTOL64,
                mistakes=_scale_mistakes(scale, X, RTOL64, 0.0),
            )


def _fit_single_row(g, fit_standardizer) -> None:
    """Part of ``check_fit_standardizer``: a single row."""
    with g.part("a single row (m = 1): mean = that row, scale = 1.0 for every feature", 1):
        X = _random_data(10, 1, 4)
        mean, scale = unpack(g.call(fit_standardizer, X.copy()), 2, "mean, scale")
        g.compare("mean of a single row", mean, X[0], rtol=RTOL64, atol=ATOL64)
        g.compare(
            "scale of a single row", scale, np.ones(4), rtol=RTOL64,
            mistakes={
                "M1": (np.full(4, np.nan), _M1 + " With one row, ddof=1 divides 0 by 0."),
                "M5": (np.zeros(4), _M5 + " With one row, every feature has zero variance."),
                **_eps_mistake(scale, X, RTOL64, 0.0),
            },
        )


def _fit_float32(g, fit_standardizer) -> None:
    """Part of ``check_fit_standardizer``: float32 input, shape."""
    with g.part("float32 input, shape (60, 4): values to float32 precision", 1):
        X32 = _random_data(11, 60, 4, dtype=np.float32)
        mean, scale = unpack(g.call(fit_standardizer, X32.copy()), 2, "mean, scale")
        X64 = X32.astype(np.float64)
        exp_mean, exp_scale = ref.fit_standardizer(X64)
        # A float64 result is accepted (StandardScaler itself returns float64 statistics).
        g.compare("mean (float32 input)", mean, exp_mean, rtol=RTOL32, atol=ATOL32)
        _compare_side_scale(
            g, "scale (float32 input)", scale, exp_scale, X64, RTOL32,
            _scale_mistakes(scale, X64, RTOL32, 0.0),
        )


def _fit_large_mean(g, fit_standardizer) -> None:
    """Part of ``check_fit_standardizer``: features with a large mean."""
    with g.part("features with a large mean (1e4) and a small spread (std 0.01)", 1):
        r = rng(12)
        offset = 1e4
        centred = 0.01 * r.standard_normal((50, 3))
        X = offset + centred
        mean, scale = unpack(g.call(fit_standardizer, X.copy()), 2, "mean, scale")
        exp_mean, exp_scale = ref.fit_standardizer(X)
        # Means are 1e4: relative 1e-7 of that is 1e-3 absolute, still 10x below the spread.
        g.compare("mean (offset data)", mean, exp_mean, rtol=RTOL64)
        mistakes = {}
        if not close(scale, exp_scale, RTOL64):
            # M4 is recognised by its cause, not by its (rounding-dependent) value: the same
            # function gives the right scale once the offset is removed.
            _, scale_centred = unpack(g.call(fit_standardizer, X - offset), 2, "mean, scale")
            if close(scale_centred, exp_scale, 1e-6):  # X - offset is exact to ~1e-12 of 0.01
                mistakes["M4"] = (scale, _M4)
        mistakes.update(_scale_mistakes(scale, X, RTOL64, 0.0))
        # The two-pass std of this data is exact to ~1e-12 relative; RTOL64 is ample, and the
        # one-pass formula is off by ~1e-4 here.
        _compare_side_scale(g, "scale (offset data)", scale, exp_scale, X, RTOL64, mistakes)


def _fit_constant_feature(g, fit_standardizer) -> None:
    """Part of ``check_fit_standardizer``: a constant feature gets scale 1.0."""
    with g.part("a constant feature gets scale 1.0 (its standardized values are 0)", 1):
        X = _random_data(13, 8, 4)
        X[:, 1] = 3.0  # exactly representable: its mean is exactly 3.0 and its variance 0.0
        X[:, 3] = -2.0
        mean, scale = unpack(g.call(fit_standardizer, X.copy()), 2, "mean, scale")
        exp_mean, exp_scale = ref.fit_standardizer(X)
        g.compare("mean (constant features 1 and 3)", mean, exp_mean, rtol=RTOL64, atol=ATOL64)
        _compare_side_scale(
            g, "scale (constant features 1 and 3)", scale, exp_scale, X, RTOL64,
            {"M5": (lambda: _population_std(X), _M5), **_eps_mistake(scale, X, RTOL64, 0.0)},
        )
        _note_rounding_constant(g, fit_standardizer)


def _fit_rejects_1d(g, fit_standardizer) -> None:
    """Part of ``check_fit_standardizer``: ValueError for 1-D input."""
    with g.part("ValueError for 1-D input", 0.5):
        g.expect_raises(ValueError, fit_standardizer, rng(14).standard_normal(5),
                         what="1-D input of shape (5,)", hint="Check X.ndim and X.shape[0] first and raise ValueError with a clear message.")


def _fit_rejects_empty(g, fit_standardizer) -> None:
    """Part of ``check_fit_standardizer``: ValueError for input with no rows."""
    with g.part("ValueError for input with no rows", 0.5):
        g.expect_raises(ValueError, fit_standardizer, np.zeros((0, 3)),
                         what="input with no rows, shape (0, 3)", hint="Check X.ndim and X.shape[0] first and raise ValueError with a clear message.")


def _fit_input_unchanged(g, fit_standardizer) -> None:
    """Part of ``check_fit_standardizer``: X is not modified."""
    with g.part("X is not modified", 1):
        X = _random_data(15, 20, 3)
        X_arg = X.copy()
        g.call(fit_standardizer, X_arg)
        require_unchanged("X", X, X_arg, _M10)


@hidden_check("fit_standardizer", points=4)
def check_fit_standardizer(g: Grader, fit_standardizer) -> None:
    """Hidden check of ``fit_standardizer(X) -> (mean, scale)``."""
    _fit_mean_and_std(g, fit_standardizer)
    _fit_single_row(g, fit_standardizer)
    _fit_float32(g, fit_standardizer)
    _fit_large_mean(g, fit_standardizer)
    _fit_constant_feature(g, fit_standardizer)
    _fit_rejects_1d(g, fit_standardizer)
    _fit_rejects_empty(g, fit_standardizer)
    _fit_input_unchanged(g, fit_standardizer)


# --------------------------------------------------------------------------- standardize
def _given_stats(seed: int, D: int, dtype=np.float64):
    """A mean and scale that are *not* the statistics of the data they are applied to."""
    r = rng(seed)
    return r.uniform(-3.0, 3.0, size=D).astype(dtype), r.uniform(0.5, 4.0, size=D).astype(dtype)


def _recomputed(Z, X):
    """X standardized with its own statistics: with np.std as is, or with scale 1 where the
    std is 0 (whichever is closer to the student's Z)."""
    raw = quiet(lambda: (X - X.mean(axis=0)) / X.std(axis=0))
    return raw if close(Z, raw, RTOL32, ATOL32) else ref.standardize(X, *ref.fit_standardizer(X))


def _standardize_mistakes(Z, X, mean, scale):
    return {
        "M21": (lambda: _recomputed(Z, X), _M21_RECOMPUTE),
        "M2": (
            lambda: quiet(lambda: (X - X.mean(axis=1, keepdims=True)) / X.std(axis=1, keepdims=True)),
            "the rows were standardized instead of the columns; " + _M2,
        ),
        "M12": (lambda: (X - mean) ** 2 / scale, _M12),
    }


@hidden_check("standardize", points=2)
def check_standardize(g: Grader, standardize) -> None:
    """Hidden check of ``standardize(X, mean, scale) -> Z``."""
    with g.part("Z = (X - mean) / scale with the given statistics, shapes (30, 4) and (5, 1)", 2):
        for seed, (m, D) in [(20, (30, 4)), (21, (5, 1))]:
            X = _random_data(seed, m, D)
            mean, scale = _given_stats(seed + 100, D)
            Z = g.call(standardize, X.copy(), mean.copy(), scale.copy())
            g.compare(
                f"Z for X of shape {X.shape}", Z, ref.standardize(X, mean, scale),
                rtol=RTOL64, atol=ATOL64, mistakes=_standardize_mistakes(Z, X, mean, scale),
            )

    with g.part("a single row is standardized with the given statistics", 1):
        X = _random_data(22, 1, 3)
        mean, scale = _given_stats(122, 3)
        Z = g.call(standardize, X.copy(), mean.copy(), scale.copy())
        g.compare(
            "Z for one row", Z, ref.standardize(X, mean, scale), rtol=RTOL64, atol=ATOL64,
            mistakes=_standardize_mistakes(Z, X, mean, scale),
        )

    with g.part("float32 input, shape (40, 3): values to float32 precision", 1):
        X = _random_data(23, 40, 3, dtype=np.float32)
        mean, scale = _given_stats(123, 3, dtype=np.float32)
        Z = g.call(standardize, X.copy(), mean.copy(), scale.copy())
        # float32 or float64 output are both accepted; values compared in float64.
        g.compare(
            "Z (float32 input)", Z, ref.standardize(X.astype(np.float64), mean, scale),
            rtol=RTOL32, atol=ATOL32,
            mistakes=_standardize_mistakes(Z, X.astype(np.float64), mean, scale),
        )

    with g.part("X, mean and scale are not modified", 1):
        X = _random_data(24, 10, 3)
        mean, scale = _given_stats(124, 3)
        args = (X.copy(), mean.copy(), scale.copy())
        g.call(standardize, *args)
        for name, before, after in zip(("X", "mean", "scale"), (X, mean, scale), args, strict=True):
            require_unchanged(name, before, after, _M10)


# --------------------------------------------------------------------------- standardize_splits
def _affine_map(X, Z):
    """Per column, the (centre, scale) with Z = (X - centre) / scale, and the fit's residual.

    Least squares of X on Z per column: X ≈ centre + scale * Z. Works whatever formula the
    student's fit_standardizer uses for the scale, so this check grades the protocol only.
    """
    Zc = Z - Z.mean(axis=0)
    s = (Zc * (X - X.mean(axis=0))).sum(axis=0) / (Zc**2).sum(axis=0)
    c = X.mean(axis=0) - s * Z.mean(axis=0)
    resid = np.max(np.abs(X - (c + s * Z)) / X.std(axis=0))
    return c, s, resid


def _leak_mistake(got_centre, candidates):
    for centre, text in candidates:
        if close(got_centre, centre, 1e-6):
            return {"M21": (centre, text)}
    return {}


def _composed_splits(g: Grader, name: str, Z, X, splits) -> None:
    """The carried-forward comparison of one split (autograder/checks/carried.py): ``Z`` against
    the student's own ``standardize`` applied with the student's own ``fit_standardizer`` fitted
    on X_train, as the notebook's solution composes them; fitting on all splits is M21."""
    X_tr, X_all = splits

    def composed(X_fit):
        mean, scale = unpack(g.uses.fit_standardizer(X_fit.copy()), 2, "mean, scale")
        return g.uses.standardize(X.copy(), np.copy(mean), np.copy(scale))

    # Z is exact to rounding either way (~1e-15 of its O(1) values)
    g.compare(f"Z for {name}", Z, composed(X_tr), rtol=1e-7, atol=1e-9, mistakes={
        "M21": (lambda: composed(X_all), "the statistics were fitted on the training, validation "
                "and test data together. Fit on X_train only.")})


@hidden_check("standardize_splits", points=2, uses=("fit_standardizer", "standardize"))
def check_standardize_splits(g: Grader, standardize_splits) -> None:
    """Hidden check of ``standardize_splits(X_train, X_val, X_test) -> (Z_train, Z_val, Z_test)``.

    The three splits come from shifted distributions, so fitting on the wrong split (or on all
    of them) gives a visibly different centre. The exact scale formula is graded by
    ``check_fit_standardizer``; here a scale within 3 % of the population std is accepted, so a
    mistake there (e.g. ddof=1, 1 % at m = 60) is not penalized twice.
    """
    r = rng(30)
    D = 3
    spread = np.array([0.5, 20.0, 3.0])
    X_tr = np.array([1.0, 100.0, -4.0]) + spread * r.standard_normal((60, D))
    X_va = np.array([1.8, 130.0, -2.0]) + spread * r.standard_normal((25, D))
    X_te = np.array([0.3, 60.0, -7.0]) + spread * r.standard_normal((20, D))
    originals = (X_tr.copy(), X_va.copy(), X_te.copy())
    args = (X_tr.copy(), X_va.copy(), X_te.copy())
    names = ("X_train", "X_val", "X_test")
    mean_tr, scale_tr = ref.fit_standardizer(X_tr)
    mean_all = np.concatenate([X_tr, X_va, X_te]).mean(axis=0)
    own = {"X_train": X_tr.mean(axis=0), "X_val": X_va.mean(axis=0), "X_test": X_te.mean(axis=0)}

    outputs = None
    with g.part("returns three arrays shaped like X_train, X_val, X_test", 1):
        result = g.call(standardize_splits, *args)
        if not isinstance(result, (tuple, list)) or len(result) != 3:
            raise Failure(f"expected a tuple (Z_train, Z_val, Z_test), got {fmt(result)}")
        try:
            arrays = [np.asarray(z, dtype=np.float64) for z in result]
        except (TypeError, ValueError) as exc:
            raise Failure(f"the three outputs should be arrays of numbers ({exc})") from None
        for name, X, Z in zip(names, originals, arrays, strict=True):
            g.require(Z.shape == X.shape, f"Z for {name}: shape {Z.shape}, expected {X.shape}")
            g.require(bool(np.all(np.isfinite(Z))), f"Z for {name} contains nan/inf: {fmt(Z)}")
        outputs = arrays

    for name, X in zip(names, originals, strict=True):
        with g.part(f"{name} is standardized with the training mean and scale", 1):
            if outputs is None:
                raise Failure("no output to check (see the first part)")
            Z = outputs[names.index(name)]
            if g.carrying:  # the reference composed with the student's own two functions
                _composed_splits(g, name, Z, X, (X_tr, np.concatenate([X_tr, X_va, X_te])))
                continue
            centre, scale, resid = quiet(_affine_map, X, Z)
            # A per-column affine map reproduces X to rounding error (~1e-15); 1e-6 of the
            # column's spread separates it clearly from any non-affine output.
            g.require(
                resid < 1e-6,
                f"Z for {name} is not (X - centre) / scale column by column "
                f"(mismatch {resid:.2g} of a column's spread).",
            )
            candidates = [
                (mean_all, "the statistics were fitted on the training, validation and test data "
                 "together. Fit on X_train only; using the other splits leaks their "
                 "information into training and makes the validation and test scores optimistic."),
            ]
            if name != "X_train":
                candidates.insert(0, (own[name], f"{name} was standardized with its own mean "
                                  "and std (fitted on it separately). Re-use the training "
                                  "statistics: a model sees its inputs through the training "
                                  "statistics, and at deployment there is no test set to fit."))
            candidates.append((own["X_test"], "the statistics come from the test split."))
            # Centres are O(1..100); the reference centre is exact to ~1e-14 relative.
            g.compare(
                f"centre (mean) used for {name}", centre, mean_tr, rtol=1e-6, atol=1e-9,
                mistakes=_leak_mistake(centre, candidates),
            )
            # 3 %: accepts ddof=0 and ddof=1 (factor 0.992 at m = 60); the formula itself is
            # graded in fit_standardizer.
            g.compare(f"scale used for {name}", scale, scale_tr, rtol=0.03)

    with g.part("X_train, X_val and X_test are not modified", 1):
        if outputs is None:
            raise Failure("no output to check (see the first part)")
        for name, before, after in zip(names, originals, args, strict=True):
            require_unchanged(name, before, after, _M10)
