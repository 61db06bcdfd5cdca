"""Dataset loaders with fixed, seeded, stratified train/validation/test splits.

The data files live in ``data/`` at the repository root (see ``data/README.md`` for their
provenance). Nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

DATA_DIR = Path(__file__).resolve().parent.parent / "data"

#: Seed of every split made here. Changing it changes every number in the notebooks.
SPLIT_SEED = 0


@dataclass(frozen=True)
class Split:
    """A dataset split three ways.

    Attributes
    ----------
    X_train, X_val, X_test : ndarray of float64, shape (m_split, D)
        Features.
    y_train, y_val, y_test : ndarray of int64, shape (m_split,)
        Class labels.
    feature_names : tuple of str, length D
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    feature_names: tuple[str, ...]


def _read_csv(name: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    path = DATA_DIR / name
    if not path.exists():
        raise FileNotFoundError(
            f"dataset file {path} is missing; the course expects the repository's data/ folder "
            "next to course/"
        )
    table = np.genfromtxt(path, delimiter=",", names=True, dtype=np.float64)
    names = table.dtype.names
    X = np.column_stack([table[n] for n in names[:-1]])
    y = table[names[-1]].astype(np.int64)
    return X, y, tuple(names[:-1])


def _split(X, y, names, val_fraction: float, test_fraction: float, seed: int) -> Split:
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            "val_fraction and test_fraction must each lie in (0, 1) and sum to less than 1, "
            f"got {val_fraction} and {test_fraction}"
        )
    X_rest, X_test, y_rest, y_test = train_test_split(
        X, y, test_size=test_fraction, stratify=y, random_state=seed
    )
    val_of_rest = val_fraction / (1.0 - test_fraction)
    X_train, X_val, y_train, y_val = train_test_split(
        X_rest, y_rest, test_size=val_of_rest, stratify=y_rest, random_state=seed
    )
    return Split(X_train, y_train, X_val, y_val, X_test, y_test, names)


def load_wine(val_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = SPLIT_SEED) -> Split:
    """The UCI wine data (178 × 13), split train/validation/test.

    Parameters
    ----------
    val_fraction, test_fraction : float
        Fractions of all rows for validation and test, each in (0, 1), summing below 1.
    seed : int
        Seed of the stratified shuffles (``sklearn.model_selection.train_test_split``).

    Returns
    -------
    Split
        Features are float64 in their original units (e.g. ``proline`` in mg/L, about 300–1700;
        ``hue`` about 0.5–1.7). With the defaults: 106 train, 36 validation, 36 test rows.

    Raises
    ------
    ValueError
        If the fractions are out of range.
    FileNotFoundError
        If ``data/wine.csv`` is missing.
    """
    X, y, names = _read_csv("wine.csv")
    return _split(X, y, names, val_fraction, test_fraction, seed)


def load_digits(val_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = SPLIT_SEED) -> Split:
    """The UCI handwritten digits (1797 × 64, pixel intensities 0–16), split three ways.

    Parameters and errors are those of :func:`load_wine`. Features are float64 pixel counts
    (0–16) of 8×8 images flattened row by row; labels are the digits 0–9.
    """
    X, y, names = _read_csv("digits.csv.gz")
    return _split(X, y, names, val_fraction, test_fraction, seed)
