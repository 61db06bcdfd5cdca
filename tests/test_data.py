"""The committed datasets equal scikit-learn's bundled copies; the splits are fixed and sound."""

import numpy as np
import pytest
from sklearn import datasets

from course import data


@pytest.mark.parametrize(
    ("loader", "sk_loader", "shape"),
    [(data.load_wine, datasets.load_wine, (178, 13)), (data.load_digits, datasets.load_digits, (1797, 64))],
)
def test_files_equal_sklearn_bundled_data(loader, sk_loader, shape):
    split = loader()
    X = np.vstack([split.X_train, split.X_val, split.X_test])
    y = np.concatenate([split.y_train, split.y_val, split.y_test])
    ref = sk_loader()
    assert X.shape == shape
    # same multiset of rows: sort rows lexicographically (with labels) on both sides
    ours = np.column_stack([X, y])
    theirs = np.column_stack([ref.data, ref.target])
    ours = ours[np.lexsort(ours.T[::-1])]
    theirs = theirs[np.lexsort(theirs.T[::-1])]
    np.testing.assert_array_equal(ours, theirs)


def test_wine_feature_scales_span_four_orders_of_magnitude():
    X = data.load_wine().X_train
    std = X.std(axis=0)
    assert std.min() < 0.2 and std.max() > 200, std


@pytest.mark.parametrize("loader", [data.load_wine, data.load_digits])
def test_split_is_deterministic_and_stratified(loader):
    a, b = loader(), loader()
    np.testing.assert_array_equal(a.X_train, b.X_train)
    other = loader(seed=1)
    assert not np.array_equal(a.X_train, other.X_train), "the seed must change the split"
    n = len(a.y_train) + len(a.y_val) + len(a.y_test)
    # disjoint and complete: test_files_equal_sklearn_bundled_data compares the union, row by row
    fractions = [np.bincount(y) / len(y) for y in (a.y_train, a.y_val, a.y_test)]
    assert np.max(np.abs(fractions[0] - fractions[2])) < 0.05, "splits must be stratified"
    assert abs(len(a.y_test) / n - 0.2) < 0.01 and abs(len(a.y_val) / n - 0.2) < 0.01


@pytest.mark.parametrize(("val", "test"), [(0.0, 0.2), (0.5, 0.5), (0.2, 1.0), (-0.1, 0.2)])
def test_bad_fractions_raise(val, test):
    with pytest.raises(ValueError, match="val_fraction and test_fraction"):
        data.load_wine(val_fraction=val, test_fraction=test)
