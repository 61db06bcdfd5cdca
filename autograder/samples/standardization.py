"""Sample submissions for assignment 01 (standardization); see CONTRIBUTING.md.

Each answer is the full source of the cell with that grade id, as the student would leave it.
The cells run after the notebook's setup cell, so ``np`` is already imported.
"""

NOTEBOOK = "standardization.ipynb"

# --------------------------------------------------------------------------- ada: correct
_ADA_FIT = '''
def fit_standardizer(X):
    """Column means and population standard deviations of X.

    Parameters
    ----------
    X : ndarray, shape (m, D)

    Returns
    -------
    mean, scale : ndarray, shape (D,)
    """
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (m, D), got shape {X.shape}")
    m = X.shape[0]
    if m == 0:
        raise ValueError("X has no rows; cannot fit a standardizer")
    mean = X.sum(axis=0) / m
    centred = X - mean                      # a new array: X is untouched
    var = np.einsum("ij,ij->j", centred, centred) / m
    scale = np.where(var > 0, np.sqrt(var), 1.0)
    return mean, scale
'''

_ADA_STANDARDIZE = '''
def standardize(X, mean, scale):
    """(X - mean) / scale, column by column. Shapes: X (m, D), mean and scale (D,)."""
    return np.subtract(X, mean) / scale
'''

_ADA_SPLITS = '''
def standardize_splits(X_train, X_val, X_test):
    """Fit on X_train only, then apply the same statistics to all three splits."""
    stats = fit_standardizer(X_train)
    return tuple(standardize(X, *stats) for X in (X_train, X_val, X_test))
'''

_ADA_LEAKAGE = """
(a) Fitting on all 178 rows makes the mean and std depend on the 36 test wines, so the
numbers used to preprocess the training data carry information about the test set: that is
leakage. (b) The test score is meant to estimate performance on wines the model has never seen;
with leaked statistics the whole pipeline has already seen the test inputs, so the score is
optimistic (slightly, for 178 rows; badly for small sets or drifting data, and it is a bug
that silently grows when people tune on it). No labels are needed for leakage: the feature
distribution is information too. (c) At deployment one wine arrives at a time: there is no
batch to compute a mean from (the std of one row is 0). We must store the training mean and
scale with the model and apply exactly those.
"""

_ADA_CONDITIONING = """
The curvature bound H has eigenvalues from about 4e-4 to 1.7e5 (condition number ~4e8), because
proline varies by hundreds while some features vary by 0.1. GD is only safe for a step below
about 1/lambda_max, so the largest eigenvalue (proline's direction) forces a tiny learning
rate, about 6e-6; along the directions with small eigenvalues each step then removes only
lr * lambda_min = 1/kappa, about 2e-9, of the remaining error, so after 300 steps they have
barely moved and the loss is stuck near 0.53. After standardizing, the eigenvalues lie
between about 0.03 and 1.1 (condition number ~41), a step of about 0.9 is safe, and every
direction shrinks by a useful fraction per step: the loss falls to 0.03. Standardizing does
not change which models can be represented (an affine change of variables, absorbed by w and
b), so the best loss is the same; only how fast GD gets there changes.
"""
# --------------------------------------------------------------------------- ben: M1
_BEN_FIT = '''
def fit_standardizer(X):
    """Mean and std of every column. X: (m, D) -> mean, scale: (D,)."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"X must be 2-D with at least one row, got shape {X.shape}")
    mean = X.mean(axis=0)
    scale = X.std(axis=0, ddof=1)   # unbiased estimate
    scale[scale == 0] = 1.0
    return mean, scale
'''

_BEN_STANDARDIZE = '''
def standardize(X, mean, scale):
    """Z = (X - mean) / scale."""
    return (X - mean) / scale
'''

_BEN_SPLITS = '''
def standardize_splits(X_train, X_val, X_test):
    """Train statistics for every split."""
    mean, scale = fit_standardizer(X_train)
    Z_train = standardize(X_train, mean, scale)
    Z_val = standardize(X_val, mean, scale)
    Z_test = standardize(X_test, mean, scale)
    return Z_train, Z_val, Z_test
'''

_BEN_LEAKAGE = """
The test set should not be used for anything before the final evaluation, so the scaler must be
fitted on the training data only and reused for the test data; otherwise the test score is too
optimistic.
"""

# --------------------------------------------------------------------------- cyd: M4, M5, M10, M21
_CYD_FIT = '''
def fit_standardizer(X):
    """Fast one-pass statistics."""
    mean = X.mean(axis=0)
    var = (X ** 2).mean(axis=0) - mean ** 2
    return mean, np.sqrt(np.abs(var))
'''

_CYD_STANDARDIZE = '''
def standardize(X, mean, scale):
    """In place, to save memory."""
    X -= mean
    X /= scale
    return X
'''

_CYD_SPLITS = '''
def standardize_splits(X_train, X_val, X_test):
    """Each split standardized to mean 0 and std 1."""
    return tuple(standardize(X, *fit_standardizer(X)) for X in (X_train, X_val, X_test))
'''

_CYD_LEAKAGE = """
It does not matter much: standardization uses no labels, so nothing can leak.
"""

STUDENTS = {
    "ada": {
        "answers": {
            "fit_standardizer": _ADA_FIT.strip("\n"),
            "standardize": _ADA_STANDARDIZE.strip("\n"),
            "standardize_splits": _ADA_SPLITS.strip("\n"),
            "answer_leakage": _ADA_LEAKAGE.strip("\n"),
            "answer_conditioning": _ADA_CONDITIONING.strip("\n"),
        },
        "expect": {"full_marks": True, "zero": False, "diagnoses": []},
    },
    "ben": {
        "answers": {
            "fit_standardizer": _BEN_FIT.strip("\n"),
            "standardize": _BEN_STANDARDIZE.strip("\n"),
            "standardize_splits": _BEN_SPLITS.strip("\n"),
            "answer_leakage": _BEN_LEAKAGE.strip("\n"),
        },
        "expect": {"full_marks": False, "zero": False, "diagnoses": ["M1"]},
    },
    "cyd": {
        "answers": {
            "fit_standardizer": _CYD_FIT.strip("\n"),
            "standardize": _CYD_STANDARDIZE.strip("\n"),
            "standardize_splits": _CYD_SPLITS.strip("\n"),
            "answer_leakage": _CYD_LEAKAGE.strip("\n"),
        },
        "expect": {"full_marks": False, "zero": False, "diagnoses": ["M4", "M5", "M10", "M21"]},
    },
    "dee": {
        "answers": {},
        "expect": {"full_marks": False, "zero": True, "diagnoses": []},
    },
}
