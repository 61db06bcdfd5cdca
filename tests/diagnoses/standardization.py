"""Fixtures for notebook 01 (standardization): fit_standardizer, standardize, standardize_splits.

The single-mistake functions and correct variants of ``tests/test_standardization.py`` and the
sample students of ``autograder/samples/standardization.py`` are reused, not copied.
"""

from __future__ import annotations

import test_standardization as earlier  # tests/ is on sys.path under pytest (rootdir conftest)

from autograder.samples import standardization as samples
from diagnoses import Fixture, alternative, mistake, uncatalogued

_ANSWERS = {sid: s["answers"] for sid, s in samples.STUDENTS.items()}

# ------------------------------------------------------------------------------ mistakes
_REUSED = [mistake(fn, mk, f"test_standardization: {name}", src)
           for name, (fn, mk, src) in earlier.MISTAKES.items()]

MISTAKES: list[Fixture] = _REUSED + [
    mistake("fit_standardizer", "M1", "sample ben", _ANSWERS["ben"]["fit_standardizer"]),
    mistake("standardize", "M10", "sample cyd", _ANSWERS["cyd"]["standardize"]),
    mistake("standardize_splits", "M21", "sample cyd: each split with its own statistics",
            _ANSWERS["cyd"]["standardize_splits"]),
    mistake("standardize", "M2", "rows standardized with their own statistics", '''
def standardize(X, mean, scale):
    row_mean = X.mean(axis=1, keepdims=True)
    row_std = X.std(axis=1, keepdims=True)
    return (X - row_mean) / row_std
'''),
    mistake("standardize", "M12", "numerator squared", '''
def standardize(X, mean, scale):
    centred = X - mean
    return centred**2 / scale
'''),
    mistake("standardize_splits", "M10", "splits standardized in place", '''
def standardize_splits(X_train, X_val, X_test):
    mean, scale = fit_standardizer(X_train)
    for X in (X_train, X_val, X_test):
        X -= mean
        X /= scale
    return X_train, X_val, X_test
'''),
]

# ------------------------------------------------------------------------------ alternatives
ALTERNATIVES: list[Fixture] = [
    *(alternative("fit_standardizer", f"test_standardization: {name}", src)
      for name, src in earlier.CORRECT_VARIANTS.items()),
    alternative("fit_standardizer", "sample ada: sum/m and einsum", _ANSWERS["ada"]["fit_standardizer"]),
    alternative("fit_standardizer", "np.std with keepdims", '''
def fit_standardizer(X):
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"X must be 2-D with at least one row, got shape {X.shape}")
    mu = np.mean(X, axis=0, keepdims=True)
    sd = np.std(X, axis=0, keepdims=True)
    sd[sd == 0] = 1.0
    return mu.ravel(), sd.ravel()
'''),
    alternative("fit_standardizer", "helper functions", '''
def column_means(data):
    return data.sum(axis=0) / len(data)


def column_stds(data, centre):
    return np.sqrt(((data - centre) ** 2).sum(axis=0) / len(data))


def fit_standardizer(X):
    if np.ndim(X) != 2 or len(X) == 0:
        raise ValueError("fit_standardizer needs a 2-D X with at least one row")
    means = column_means(X)
    stds = column_stds(X, means)
    return means, np.where(stds > 0, stds, 1.0)
'''),
    alternative("fit_standardizer", "in-place ops on its own float64 copy", '''
def fit_standardizer(X):
    if np.ndim(X) != 2 or np.shape(X)[0] == 0:
        raise ValueError(f"bad shape {np.shape(X)}")
    work = np.array(X, dtype=np.float64)  # my own copy: X stays as it was
    mean = work.mean(axis=0)
    work -= mean
    work **= 2
    scale = np.sqrt(work.mean(axis=0))
    scale[scale == 0] = 1.0
    return mean, scale
'''),
    alternative("standardize", "sample ada: np.subtract", _ANSWERS["ada"]["standardize"]),
    alternative("standardize", "float32 kept", '''
def standardize(X, mean, scale):
    return ((X - mean) / scale).astype(X.dtype)
'''),
    alternative("standardize", "in-place ops on its own copy", '''
def standardize(X, mean, scale):
    Z = np.array(X, dtype=float)
    Z -= mean
    Z /= scale
    return Z
'''),
    alternative("standardize", "einsum with 1/scale", '''
def standardize(X, mean, scale):
    return np.einsum("ij,j->ij", X - mean, 1.0 / scale)
'''),
    alternative("standardize_splits", "sample ada: generator", _ANSWERS["ada"]["standardize_splits"]),
    alternative("standardize_splits", "sample ben: three names", _ANSWERS["ben"]["standardize_splits"]),
    alternative("standardize_splits", "scikit-learn's StandardScaler", '''
def standardize_splits(X_train, X_val, X_test):
    from sklearn.preprocessing import StandardScaler
    scaler = StandardScaler().fit(X_train)
    return tuple(scaler.transform(X) for X in (X_train, X_val, X_test))
'''),
]

# ------------------------------------------------------------------------------ other mistakes
UNCATALOGUED: list[Fixture] = [
    uncatalogued("standardize", "multiplies by the scale", '''
def standardize(X, mean, scale):
    return (X - mean) * scale
'''),
]
