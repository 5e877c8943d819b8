"""The Playground's six generators against the original's formulas, and the feature maps."""

import math

import numpy as np
import pytest
from rosenblatt.playground import datasets as ds
from rosenblatt.playground import features as ft


def gen(name, n=None, noise=0.0, seed=0):
    n = ds.N_SAMPLES[name] if n is None else n
    return ds.GENERATORS[name](n, noise, np.random.default_rng(seed))


@pytest.mark.parametrize("name", list(ds.GENERATORS))
def test_counts_and_determinism(name):
    X, y = gen(name, noise=0.1, seed=3)
    n = ds.N_SAMPLES[name]
    assert X.shape == (n, 2) and y.shape == (n,)
    X2, y2 = gen(name, noise=0.1, seed=3)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    X3, _ = gen(name, noise=0.1, seed=4)
    assert not np.array_equal(X, X3)
    assert np.all(np.isfinite(X)) and np.all(np.isfinite(y))


def test_sample_counts_of_the_original():
    assert ds.N_SAMPLES == {"circle": 500, "xor": 500, "gauss": 500, "spiral": 500,
                            "reg-plane": 1200, "reg-gauss": 1200}


@pytest.mark.parametrize("name", ds.CLASSIFICATION)
def test_labels_pm1(name):
    _, y = gen(name, noise=0.3)
    assert set(np.unique(y)) <= {-1.0, 1.0}


@pytest.mark.parametrize("name", ["circle", "gauss", "spiral"])
def test_two_halves_balanced_without_noise(name):
    _X, y = gen(name)
    assert np.sum(y == 1) == np.sum(y == -1) == 250
    # the first half is the positive class
    assert np.all(y[:250] == 1) and np.all(y[250:] == -1)


def test_odd_counts_follow_the_loop_bound():
    # ``i < n / 2`` runs ceil(n / 2) times per half
    for name in ("circle", "gauss", "spiral"):
        X, _ = gen(name, n=7)
        assert len(X) == 8


def test_circle_radii_and_labels():
    X, y = gen("circle")
    r = np.hypot(X[:, 0], X[:, 1])
    assert np.all(r[:250] <= 2.5) and np.all((r[250:] >= 3.5) & (r[250:] <= 5))
    np.testing.assert_array_equal(y, np.where(r < 2.5, 1.0, -1.0))
    # with noise, some labels flip (the label comes from the noisy point)
    Xn, yn = gen("circle", noise=0.5)
    rn = np.hypot(Xn[:, 0], Xn[:, 1])
    assert np.any(yn != np.where(rn < 2.5, 1.0, -1.0))


def test_circle_angles_cover_the_plane():
    X, _ = gen("circle")
    a = np.arctan2(X[:, 0], X[:, 1])  # (r sin a, r cos a)
    assert np.histogram(a, bins=4, range=(-math.pi, math.pi))[0].min() > 80


def test_xor_padding_and_labels():
    X, y = gen("xor")
    assert np.all(np.abs(X) >= 0.3) and np.all(np.abs(X) <= 5.3)
    np.testing.assert_array_equal(y, np.where(X[:, 0] * X[:, 1] >= 0, 1.0, -1.0))
    assert 200 < np.sum(y == 1) < 300


def test_gauss_means_and_variance():
    for noise in (0.0, 0.5):
        X, y = gen("gauss", n=20000, noise=noise)
        var = ds.gauss_variance(noise)
        pos, neg = X[y == 1], X[y == -1]
        np.testing.assert_allclose(pos.mean(0), [2, 2], atol=0.08)
        np.testing.assert_allclose(neg.mean(0), [-2, -2], atol=0.08)
        np.testing.assert_allclose(pos.var(0), [var, var], rtol=0.05)
    assert ds.gauss_variance(0) == 0.5 and ds.gauss_variance(0.5) == 4.0


def test_spiral_formula_exact_without_noise():
    X, _y = gen("spiral")
    m = 250
    i = np.arange(m)
    r = 5 * i / m
    t = 1.75 * i / m * 2 * math.pi
    np.testing.assert_allclose(X[:m], np.column_stack([r * np.sin(t), r * np.cos(t)]))
    np.testing.assert_allclose(X[m:], np.column_stack([r * np.sin(t + math.pi),
                                                      r * np.cos(t + math.pi)]), atol=1e-12)
    Xn, _ = gen("spiral", noise=0.5)
    d = np.abs(Xn - X)
    assert d.max() <= 0.5 and d.max() > 0.4


def test_reg_plane():
    X, y = gen("reg-plane")
    assert np.all(np.abs(X) <= 6)
    np.testing.assert_allclose(y, (X[:, 0] + X[:, 1]) / 10)
    assert np.abs(y).max() <= 1.2
    _, yn = gen("reg-plane", noise=0.5)
    assert np.abs(yn).max() <= 1.2 * 1.5 + 1e-12


def test_reg_gauss_formula():
    X, y = gen("reg-gauss")
    assert np.all(np.abs(X) <= 6) and np.all(np.abs(y) <= 1)
    # hand-worked points: at a centre the label is its sign; far away 0;
    # at (2, 2.5) both neighbours are at distance 2 -> 0
    pts = np.array([[-4, 2.5], [0, 2.5], [4, -2.5], [2, 2.5], [-1, 2.5], [0, 0]], float)
    got = ds.reg_gauss_label(pts[:, 0], pts[:, 1])
    np.testing.assert_allclose(got, [1, -1, -1, 0, -0.5, 0])
    # brute force: the largest-magnitude bump, first one on ties
    for (x, yy), lab in zip(X[:50], y[:50]):
        best = 0.0
        for cx, cy, s in ds.REG_GAUSS_CENTRES:
            v = s * min(max(1 - math.hypot(x - cx, yy - cy) / 2, 0), 1)
            if abs(v) > abs(best):
                best = v
        assert lab == pytest.approx(best)


@pytest.mark.parametrize("ratio", [10, 50, 90, 33])
def test_make_dataset_split(ratio):
    d = ds.make_dataset("xor", train_ratio=ratio, seed=1)
    assert len(d.X_train) == math.floor(500 * ratio / 100)
    assert len(d.X_train) + len(d.X_test) == 500
    d2 = ds.make_dataset("xor", train_ratio=ratio, seed=1)
    np.testing.assert_array_equal(d.X_test, d2.X_test)
    # shuffled: the halves of the positive-first generators are mixed in the train part
    c = ds.make_dataset("circle", train_ratio=ratio, seed=1)
    assert 0 < np.mean(c.y_train == 1) < 1


def test_make_dataset_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown dataset"):
        ds.make_dataset("moons")
    with pytest.raises(ValueError, match="noise"):
        ds.make_dataset("circle", noise=51)
    with pytest.raises(ValueError, match="train_ratio"):
        ds.make_dataset("circle", train_ratio=5)


def test_parse_csv():
    X, y, reg = ds.parse_csv("x1,x2,label\n0,0,0\n1,1,1\n2,2,1\n3,3,0\n")
    assert not reg and list(y) == [-1, 1, 1, -1] and X.shape == (4, 2)
    X, y, reg = ds.parse_csv("0,0,0.5\n1,1,2\n2,2,-4\n3,3,1\n")
    assert reg and np.abs(y).max() == 1
    for bad, msg in [("1,2\n", "3 columns"), ("1,2,3\n1,2,x\n", "not numbers"),
                     ("1,2,nan\n" * 5, "non-finite"), ("1,2,3\n", "at least 4"),
                     ("1,2,1\n" * 5, "all labels")]:
        with pytest.raises(ValueError, match=msg):
            ds.parse_csv(bad)


def test_features():
    X = np.array([[1.0, 2.0], [-0.5, 3.0]])
    F = ft.transform(X, list(ft.FEATURES))
    x, y = X[:, 0], X[:, 1]
    np.testing.assert_allclose(F, np.column_stack(
        [x, y, x * x, y * y, x * y, np.sin(x), np.sin(y)]))
    # canonical order whatever the given order
    np.testing.assert_allclose(ft.transform(X, ["sinY", "x"]), np.column_stack([x, np.sin(y)]))
    assert ft.validate(["y", "x"]) == ("x", "y")
    with pytest.raises(ValueError, match="unknown features"):
        ft.validate(["cosX"])
    with pytest.raises(ValueError, match="at least one"):
        ft.validate([])
    with pytest.raises(ValueError, match="shape"):
        ft.transform(np.zeros((3, 3)))
