"""rosenblatt.datasets: offline loaders, the chapter's splits, deterministic generators."""

import numpy as np
import pytest
from rosenblatt import datasets


def test_iris_petals_is_the_chapters_data():
    X, y = datasets.load_iris_petals()
    assert X.shape == (150, 2)
    assert y.dtype == bool and y.sum() == 50  # 50 setosa
    # petal length and width: setosa petals are short
    assert X[y, 0].max() < X[~y, 0].min()
    X3, y3 = datasets.load_iris_petals(target=None)
    assert np.array_equal(X3, X) and set(y3) == {0, 1, 2}
    _, yv = datasets.load_iris_petals("virginica")
    assert np.array_equal(yv, y3 == 2)
    with pytest.raises(ValueError, match="target must be one of"):
        datasets.load_iris_petals("rose")


@pytest.mark.parametrize("loader, n, d, k", [
    (datasets.load_iris, 150, 4, 3),
    (datasets.load_breast_cancer, 569, 30, 2),
    (datasets.load_wine, 178, 13, 3),
])
def test_classification_splits(loader, n, d, k):
    s = loader()
    assert s.X_train.shape[1] == s.X_test.shape[1] == d
    assert len(s.y_train) + len(s.y_test) == n
    assert len(s.y_test) == int(np.ceil(0.25 * n))
    assert len(s.target_names) == k
    assert "X_valid" not in s
    # stratified: every class in both parts, in about the same proportion
    p_train = np.bincount(s.y_train) / len(s.y_train)
    p_test = np.bincount(s.y_test) / len(s.y_test)
    assert np.allclose(p_train, p_test, atol=0.05)
    # deterministic for a seed, different for another
    again = loader()
    assert np.array_equal(s.X_train, again.X_train)
    other = loader(random_state=0)
    assert not np.array_equal(s.X_train, other.X_train)


def test_scaling_uses_training_statistics_only():
    s = datasets.load_breast_cancer(scale=True, valid_size=0.2)
    assert np.allclose(s.X_train.mean(axis=0), 0, atol=1e-12)
    assert np.allclose(s.X_train.std(axis=0), 1)
    # the held-out parts are transformed with the same statistics, so they are not
    # exactly standardised themselves
    assert not np.allclose(s.X_test.mean(axis=0), 0, atol=1e-6)
    raw = datasets.load_breast_cancer(scale=False, valid_size=0.2)
    assert np.allclose(s.X_test, (raw.X_test - s.scaler_mean) / s.scaler_scale)
    assert s.X_valid.shape[0] == s.y_valid.shape[0] > 0


def test_digits_mirror_the_chapters_split():
    s = datasets.load_digits()
    assert (len(s.y_train), len(s.y_valid), len(s.y_test)) == (1212, 135, 450)
    assert s.X_train.shape == (1212, 64)
    assert s.X_train.min() >= 0 and s.X_train.max() <= 1  # pixels / 16, like / 255.
    # the images are the same pixels as X, for drawing
    assert np.array_equal(s.images_test.reshape(len(s.y_test), 64), s.X_test)
    assert s.target_names == [str(i) for i in range(10)]
    s32 = datasets.load_digits(dtype=np.float32, valid_size=None)
    assert s32.X_train.dtype == np.float32 and "X_valid" not in s32


def test_digits_multilabel_labels():
    s = datasets.load_digits_multilabel(valid_size=0.1)
    for part in ("train", "valid", "test"):
        Y, digit = s[f"y_{part}"], s[f"digit_{part}"]
        assert Y.shape == (len(digit), 2)
        assert np.array_equal(Y[:, 0], digit % 2)
        assert np.array_equal(Y[:, 1], (digit >= 5).astype(int))
    assert s.target_names == ["is odd", "is >= 5"]


def test_housing_standin_shape_and_scale():
    s = datasets.load_housing_standin(n_samples=2000)
    n_test = int(np.ceil(0.25 * 2000))
    n_valid = int(np.ceil(0.25 * (2000 - n_test)))
    assert s.X_test.shape == (n_test, 8)
    assert s.X_valid.shape == (n_valid, 8)
    assert s.X_train.shape == (2000 - n_test - n_valid, 8)
    assert np.allclose(s.X_train.mean(axis=0), 0, atol=1e-12)
    # target / 10: house-price-like units
    assert 0 < np.median(s.y_train) < 3
    assert np.array_equal(s.y_train, datasets.load_housing_standin(n_samples=2000).y_train)
    with pytest.raises(ValueError):
        datasets.load_housing_standin(n_samples=100, n_features=3)  # Friedman needs 5


def test_regression_outliers():
    X, y, y_clean, is_out = datasets.make_regression_outliers(200, outlier_fraction=0.1)
    assert X.shape == (200, 1) and y.shape == y_clean.shape == is_out.shape == (200,)
    assert is_out.sum() == 20
    # outliers are all far above the clean relation, the rest are close to it
    assert np.all(y[is_out] - y_clean[is_out] > 2)
    assert np.abs(y[~is_out] - y_clean[~is_out]).max() < 2
    _, y2, _, _ = datasets.make_regression_outliers(200, outlier_fraction=0.1)
    assert np.array_equal(y, y2)


def test_positive_regression():
    X, y = datasets.make_positive_regression(300)
    assert X.shape == (300, 1)
    assert y.min() >= 0
    assert np.mean(y < 0.2) > 0.3  # many targets near zero, where the output must clip


def test_xor_and_truth_table():
    assert datasets.truth_table(2).tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert datasets.truth_table(3).shape == (8, 3)
    assert datasets.truth_table(3)[5].tolist() == [1, 0, 1]
    X, y = datasets.make_xor()
    assert X.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert y.tolist() == [0, 1, 1, 0]
    Xc, yc = datasets.make_xor(100, noise=0.1)
    assert Xc.shape == (100, 2)
    # the label is XOR of the nearest corner
    corners = np.round(Xc).clip(0, 1).astype(int)
    assert np.mean((corners[:, 0] ^ corners[:, 1]) == yc) > 0.95


def test_split_repr():
    assert repr(datasets.load_digits()) == \
        "Split(X_train=(1212, 64), X_valid=(135, 64), X_test=(450, 64))"
