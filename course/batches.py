"""How the batches of notebook 04 are formed, and how noisy their statistics are.

:func:`single_class_batches` builds batches that are random in order but not i.i.d. inside;
:func:`batch_statistics_spread` measures the spread of BatchNorm's batch statistics against
sampling theory. :func:`require` turns a missing experiment result into a clear message.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["single_class_batches", "batch_statistics_spread", "require"]


def single_class_batches(data, batch_size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A copy of ``data`` whose training set is cut into single-class minibatches.

    Each class's training examples are shuffled (seeded) and cut into consecutive batches of
    ``batch_size``; a class's last partial batch is dropped, so that every batch holds exactly
    one class. The batches are then laid out one after another in a random (seeded) order.
    Trained with ``Solver(shuffle='batches')``, every minibatch is one of these and their order
    changes every epoch: the batches are random in order but not i.i.d. inside.

    Parameters
    ----------
    data : dict
        With ``X_train``, ``y_train`` (other entries are passed through unchanged).
    batch_size : int
        >= 2, at most the size of the smallest class.
    seed : int

    Returns
    -------
    dict
        ``X_train``, ``y_train`` of ``n_batches * batch_size`` rows, grouped by batch.

    Raises
    ------
    ValueError
        If ``batch_size`` is out of range.
    """
    y = np.asarray(data["y_train"])
    classes, counts = np.unique(y, return_counts=True)
    if not 2 <= batch_size <= counts.min():
        raise ValueError(f"batch_size must be in [2, {counts.min()}] (the smallest class), "
                         f"got {batch_size}")
    r = np.random.default_rng(seed)
    batches = []
    for c in classes:
        idx = r.permutation(np.flatnonzero(y == c))
        batches += [idx[k * batch_size:(k + 1) * batch_size] for k in range(len(idx) // batch_size)]
    order = np.concatenate([batches[k] for k in r.permutation(len(batches))])
    return {**data, "X_train": data["X_train"][order], "y_train": y[order]}


def batch_statistics_spread(X, w, b, batch_sizes: Sequence[int], unit: int = 0,
                            n_batches: int = 4000, seed: int = 0) -> dict:
    """How much BatchNorm's batch statistics of one unit vary from batch to batch.

    The unit's affine output ``a = (X @ w + b)[:, unit]`` over all of ``X`` is the population,
    with mean mu, standard deviation sigma and kurtosis kappa = E[(a - mu)^4] / sigma^4 (3 for a
    normal distribution). For each batch size B, ``n_batches`` batches of B values are drawn
    with replacement (i.i.d. from the population), and for each the batch mean and the biased
    batch variance are computed (Ioffe & Szegedy 2015, Alg. 1). Sampling theory predicts
    std(batch mean) = sigma / sqrt(B) and, for large B, std(batch variance) =
    sigma^2 * sqrt((kappa - 1) / B) (the variance of a sample variance).

    Parameters
    ----------
    X : ndarray of float, shape (N, D)
    w : ndarray of float, shape (D, H)
    b : ndarray of float, shape (H,)
    batch_sizes : sequence of int
        Each >= 2.
    unit : int
        Which of the H units, in [0, H).
    n_batches : int
        Batches per batch size, >= 2.
    seed : int

    Returns
    -------
    dict
        ``sigma``, ``kurtosis`` (floats); ``mean``: ``{B: std of the batch means / sigma}``;
        ``var``: ``{B: std of the batch variances / sigma^2}`` (both dimensionless).

    Raises
    ------
    ValueError
        If a batch size, ``n_batches`` or the unit is out of range, or the shapes disagree.
    """
    X, w, b = np.asarray(X, float), np.asarray(w, float), np.asarray(b, float)
    if X.ndim != 2 or w.ndim != 2 or w.shape[0] != X.shape[1] or b.shape != (w.shape[1],):
        raise ValueError(f"expected X (N, D), w (D, H), b (H,), got {X.shape}, {w.shape}, {b.shape}")
    if not 0 <= unit < w.shape[1]:
        raise ValueError(f"unit must be in [0, {w.shape[1]}), got {unit}")
    if n_batches < 2:
        raise ValueError(f"n_batches must be >= 2, got {n_batches}")
    a = X @ w[:, unit] + b[unit]
    sigma2 = a.var()
    kappa = float(np.mean((a - a.mean()) ** 4) / sigma2**2)
    r = np.random.default_rng(seed)
    out = {"sigma": float(np.sqrt(sigma2)), "kurtosis": kappa, "mean": {}, "var": {}}
    for B in batch_sizes:
        if B < 2:
            raise ValueError(f"each batch size must be >= 2, got {B}")
        batches = a[r.integers(0, len(a), size=(n_batches, int(B)))]
        out["mean"][int(B)] = float(batches.mean(axis=1).std() / np.sqrt(sigma2))
        out["var"][int(B)] = float(batches.var(axis=1).std() / sigma2)
    return out


def require(namespace: dict, name: str, where: str) -> None:
    """Raise ``NotImplementedError`` unless an earlier cell of the notebook defined ``name``.

    The notebook's later cells reuse the results of its experiments; until the exercises those
    need are written, the experiment raises and its result does not exist. This turns the
    ``NameError`` that would follow into the message that says what to do.

    Parameters
    ----------
    namespace : dict
        The notebook's ``globals()``.
    name : str
        The result the cell needs, e.g. ``'sweep'``.
    where : str
        The cell that computes it, e.g. ``'section 4'``.

    Raises
    ------
    NotImplementedError
        If ``name`` is not in ``namespace``.
    """
    if name not in namespace:
        raise NotImplementedError(f"run {where} first: this cell reuses its result `{name}`, "
                                  "which needs your sandwich layer (sections 1 and 2)")
