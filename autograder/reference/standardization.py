"""Reference of assignment 01: feature standardization, as scikit-learn's ``StandardScaler``
(https://scikit-learn.org/stable/modules/generated/sklearn.preprocessing.StandardScaler.html).
"""

from __future__ import annotations

import numpy as np

from course.validate import as_float_array, check_vector


def fit_standardizer(X):
    """Per-feature mean and population standard deviation, as ``StandardScaler.fit``.

    Parameters
    ----------
    X : array_like, shape (m, D)
        m ≥ 1 rows (samples) of D features, in the features' own units.

    Returns
    -------
    mean : ndarray, shape (D,)
        Column means, in the units of X.
    scale : ndarray, shape (D,)
        Population standard deviations (``ddof=0``), in the units of X; 1.0 where a feature is
        constant up to rounding (:func:`is_constant_feature`), as scikit-learn's
        ``StandardScaler`` does. float64 for integer input, otherwise the dtype of X (the
        statistics are accumulated in float64, as scikit-learn does).

    Raises
    ------
    TypeError
        If X does not hold real numbers.
    ValueError
        If X is not 2-D or has no rows.
    """
    X = as_float_array("X", X, ndim=2)
    if X.shape[0] == 0:
        raise ValueError(f"X must have at least one row, got shape {X.shape}")
    X64 = X.astype(np.float64, copy=False)
    mean = X64.mean(axis=0)
    var = ((X64 - mean) ** 2).mean(axis=0)  # two-pass: exact for large offsets
    scale = np.sqrt(var)
    scale[is_constant_feature(var, mean, X.shape[0])] = 1.0
    return mean.astype(X.dtype, copy=False), scale.astype(X.dtype, copy=False)


def is_constant_feature(var, mean, n_samples: int) -> np.ndarray:
    """Which features are constant up to the rounding error of a two-pass variance.

    ``var <= n·eps·var + (n·mean·eps)²`` with ``eps`` the float64 machine epsilon: the error
    bound of the two-pass algorithm (Chan, Golub & LeVeque 1983), the rule of scikit-learn's
    ``sklearn.preprocessing._data._is_constant_feature``. A feature that is constant in exact
    arithmetic can have a computed variance of about 1e-34 (``np.full((3, 1), 0.1)``); one with
    a large offset and a small but real spread (mean 1e6, std 1e-2) is *not* constant.

    Parameters
    ----------
    var, mean : ndarray of float, shape (D,)
        The population variance and the mean of each feature.
    n_samples : int
        The number of rows they were computed from.

    Returns
    -------
    ndarray of bool, shape (D,)
    """
    eps = np.finfo(np.float64).eps
    var = np.asarray(var, dtype=np.float64)
    mean = np.asarray(mean, dtype=np.float64)
    return var <= n_samples * eps * var + (n_samples * mean * eps) ** 2


def standardize(X, mean, scale):
    """Standardize with given statistics: ``Z = (X - mean) / scale``, column by column.

    Parameters
    ----------
    X : array_like, shape (m, D)
    mean, scale : array_like, shape (D,)
        Statistics from :func:`fit_standardizer`, fitted on the *training* split only.

    Returns
    -------
    Z : ndarray, shape (m, D)
        Dimensionless. X itself is not modified.

    Raises
    ------
    TypeError, ValueError
        For non-numeric input or mismatched shapes.
    """
    X = as_float_array("X", X, ndim=2)
    mean = check_vector("mean", mean, X.shape[1])
    scale = check_vector("scale", scale, X.shape[1])
    return (X - mean) / scale
