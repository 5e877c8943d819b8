"""Offline data sets for the lecture, with the chapter's splits.

Everything here is built from what scikit-learn ships or from a seeded generator, so the
whole chapter runs without network access. Loaders return a :class:`Split`, a small
:class:`sklearn.utils.Bunch` whose keys are ``X_train``, ``X_test``, ``y_train``,
``y_test`` (and ``X_valid``/``y_valid`` when a validation set is asked for), plus
``feature_names``, ``target_names`` and ``description``. Every split is deterministic for
a given ``random_state``.

The stand-ins, and why:

- Fashion-MNIST / MNIST (70,000 28x28 images) need a download; :func:`load_digits`
  (1,797 8x8 images, 10 classes) has the same shape of problem: images, ten classes,
  pixel intensities scaled to [0, 1].
- California housing needs a download; :func:`load_housing_standin` draws
  :func:`sklearn.datasets.make_friedman1` with 8 features and 20,640 rows, the size and
  width of the California table, and a smooth nonlinear target.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils import Bunch, check_random_state

__all__ = [
    "Split",
    "load_breast_cancer",
    "load_digits",
    "load_digits_multilabel",
    "load_housing_standin",
    "load_iris",
    "load_iris_petals",
    "load_wine",
    "make_positive_regression",
    "make_regression_outliers",
    "make_xor",
    "truth_table",
]


class Split(Bunch):
    """A train/(validation)/test split: a :class:`~sklearn.utils.Bunch` with a short repr.

    Keys are reachable as attributes (``split.X_train``) and as items
    (``split["X_train"]``).
    """

    def __repr__(self) -> str:
        parts = []
        for key in ("X_train", "X_valid", "X_test"):
            if key in self:
                parts.append(f"{key}={self[key].shape}")
        return f"Split({', '.join(parts)})"


def _standardize(split: Split, keys=("X_train", "X_valid", "X_test")) -> None:
    # Statistics come from the training rows only, as in the chapter (fit the scaler on
    # the training set, apply it to the others): the test set must not leak into training.
    mean = split.X_train.mean(axis=0)
    std = split.X_train.std(axis=0)
    std[std == 0] = 1.0  # constant columns (e.g. digits' border pixels) stay at zero
    for key in keys:
        if key in split:
            split[key] = (split[key] - mean) / std
    split["scaler_mean"] = mean
    split["scaler_scale"] = std


def _split(X, y, *, test_size, valid_size, random_state, stratify, extra=None) -> Split:
    """Split into train/test, then carve the validation set out of the training rows."""
    from sklearn.model_selection import train_test_split

    extra = {} if extra is None else extra
    names = list(extra)
    arrays = [X, y] + [extra[n] for n in names]
    parts = train_test_split(
        *arrays, test_size=test_size, random_state=random_state,
        stratify=y if stratify else None)
    out = Split(X_train=parts[0], X_test=parts[1], y_train=parts[2], y_test=parts[3])
    for i, n in enumerate(names):
        out[f"{n}_train"] = parts[4 + 2 * i]
        out[f"{n}_test"] = parts[5 + 2 * i]
    if valid_size:
        arrays = [out.X_train, out.y_train] + [out[f"{n}_train"] for n in names]
        parts = train_test_split(
            *arrays, test_size=valid_size, random_state=random_state,
            stratify=out.y_train if stratify else None)
        out.update(X_train=parts[0], X_valid=parts[1], y_train=parts[2], y_valid=parts[3])
        for i, n in enumerate(names):
            out[f"{n}_train"] = parts[4 + 2 * i]
            out[f"{n}_valid"] = parts[5 + 2 * i]
    return out


def _bundled_split(loader, description, *, test_size, valid_size, scale, random_state):
    """A data set scikit-learn ships (``sklearn.datasets.<loader>``), split stratified by
    class, optionally standardised with the training rows' statistics."""
    import sklearn.datasets

    data = getattr(sklearn.datasets, loader)()
    out = _split(data.data, data.target, test_size=test_size, valid_size=valid_size,
                 random_state=random_state, stratify=True)
    if scale:
        _standardize(out)
    out.update(feature_names=list(data.feature_names), target_names=list(data.target_names),
               description=description)
    return out


def load_iris_petals(target: str | int | None = "setosa"):
    """The chapter's perceptron data: iris petal length and width, "is it setosa?".

    No split: the chapter fits on all 150 flowers.

    Parameters
    ----------
    target : str, int or None, default="setosa"
        Class whose membership becomes the boolean target (name or index). ``None`` keeps
        the three-class integer target.

    Returns
    -------
    X : ndarray of shape (150, 2)
        Petal length and petal width in cm.
    y : ndarray of shape (150,)
        ``iris.target == target`` as booleans (so ``predict`` answers ``True``/``False``,
        as in the lecture), or the integer classes 0, 1, 2 when ``target`` is None.
    """
    from sklearn.datasets import load_iris as _load

    iris = _load()
    X = iris.data[:, (2, 3)]
    if target is None:
        return X, iris.target
    if isinstance(target, str):
        names = list(iris.target_names)
        if target not in names:
            raise ValueError(f"target must be one of {names} or None, got {target!r}")
        target = names.index(target)
    return X, iris.target == target


def load_iris(*, test_size=0.25, valid_size=None, scale=False, random_state=42) -> Split:
    """Iris (150 flowers, 4 features, 3 classes), split stratified by class.

    Parameters
    ----------
    test_size : float, default=0.25
        Fraction of the rows held out for testing.
    valid_size : float or None, default=None
        Fraction of the *training* rows held out for validation (none by default).
    scale : bool, default=False
        Standardise the features with the training rows' mean and standard deviation.
    random_state : int, default=42
        Seed of the split.

    Returns
    -------
    Split
        ``X_train``, ``X_test``, ``y_train``, ``y_test`` (and ``X_valid``, ``y_valid``),
        ``feature_names``, ``target_names``, ``description``.
    """
    return _bundled_split("load_iris", "iris: 150 flowers, 4 measurements in cm, 3 species",
                          test_size=test_size, valid_size=valid_size, scale=scale,
                          random_state=random_state)


def load_digits(*, test_size=0.25, valid_size=0.1, random_state=42, dtype=np.float64) -> Split:
    """Handwritten digits, the offline stand-in for Fashion-MNIST and MNIST.

    Like the chapter's ``X_train_full / 255.``, pixel intensities (0 to 16 here) are
    divided by their maximum so every feature lies in [0, 1]. The default split mirrors
    the chapter's (a test set, then a validation set cut from the training rows):
    1,797 images give 1,212 train, 135 validation and 450 test.

    Parameters
    ----------
    test_size : float, default=0.25
        Fraction of all images held out for testing.
    valid_size : float or None, default=0.1
        Fraction of the training images held out for validation; ``None`` for none.
    random_state : int, default=42
        Seed of the (stratified) split.
    dtype : numpy dtype, default=np.float64
        Float type of ``X``; float32 halves memory and trains in float32.

    Returns
    -------
    Split
        ``X_*`` of shape (n, 64), ``y_*`` integer digits, ``images_*`` of shape (n, 8, 8)
        (the same pixels, for drawing), ``target_names``, ``description``.
    """
    from sklearn.datasets import load_digits as _load

    data = _load()
    X = (data.data / 16.0).astype(dtype)
    out = _split(X, data.target, test_size=test_size, valid_size=valid_size,
                 random_state=random_state, stratify=True,
                 extra={"images": (data.images / 16.0).astype(dtype)})
    out.update(target_names=[str(d) for d in range(10)],
               feature_names=[f"pixel_{r}_{c}" for r in range(8) for c in range(8)],
               description="digits: 1,797 8x8 grey images of handwritten digits 0-9, "
                           "pixels scaled to [0, 1] (stand-in for Fashion-MNIST)")
    return out


def load_digits_multilabel(*, test_size=0.25, valid_size=None, random_state=42) -> Split:
    """Digits with two binary labels per image: "is odd" and "is >= 5".

    The chapter's multilabel example (one logistic output per label): a digit can be
    both odd and large (7, 9), either, or neither (0, 2, 4).

    Parameters
    ----------
    test_size, valid_size, random_state
        As in :func:`load_digits`.

    Returns
    -------
    Split
        As :func:`load_digits`, but ``y_*`` has shape (n, 2) with 0/1 columns
        ``target_names = ["is odd", "is >= 5"]``; the original digits are in
        ``digit_train``/``digit_test`` (and ``digit_valid``).
    """
    out = load_digits(test_size=test_size, valid_size=valid_size, random_state=random_state)
    for part in ("train", "valid", "test"):
        key = f"y_{part}"
        if key in out:
            digit = out[key]
            out[f"digit_{part}"] = digit
            out[key] = np.column_stack([digit % 2 == 1, digit >= 5]).astype(int)
    out.update(target_names=["is odd", "is >= 5"],
               description="digits with two labels per image: is odd, is >= 5")
    return out


def load_breast_cancer(*, test_size=0.25, valid_size=None, scale=True,
                       random_state=42) -> Split:
    """Breast cancer Wisconsin (569 tumours, 30 features, malignant/benign).

    The binary classification example: one logistic output read as the probability of
    the positive class (``target == 1``, benign, as scikit-learn codes it).

    Parameters
    ----------
    test_size : float, default=0.25
        Fraction held out for testing.
    valid_size : float or None, default=None
        Fraction of the training rows held out for validation.
    scale : bool, default=True
        Standardise features with training statistics (the raw features span five orders
        of magnitude, which stalls gradient descent).
    random_state : int, default=42
        Seed of the stratified split.

    Returns
    -------
    Split
    """
    return _bundled_split("load_breast_cancer",
                          "breast cancer Wisconsin: 569 tumours, 30 features, "
                          "0 = malignant, 1 = benign",
                          test_size=test_size, valid_size=valid_size, scale=scale,
                          random_state=random_state)


def load_wine(*, test_size=0.25, valid_size=None, scale=True, random_state=42) -> Split:
    """Wine (178 wines, 13 chemical measurements, 3 cultivars).

    Parameters
    ----------
    test_size, valid_size, scale, random_state
        As in :func:`load_breast_cancer`.

    Returns
    -------
    Split
    """
    return _bundled_split("load_wine", "wine: 178 wines, 13 chemical measurements, 3 cultivars",
                          test_size=test_size, valid_size=valid_size, scale=scale,
                          random_state=random_state)


def load_housing_standin(*, n_samples=20640, n_features=8, noise=2.0, scale=True,
                         test_size=0.25, valid_size=0.25, random_state=42) -> Split:
    """The offline stand-in for California housing: ``make_friedman1``, split as the chapter.

    The chapter splits the 20,640 districts into test (25 %), then validation (25 % of
    the rest) and training, and standardises the 8 features with the training set's
    statistics. This does the same with Friedman's first function,
    ``y = 10 sin(pi x0 x1) + 20 (x2 - 0.5)^2 + 10 x3 + 5 x4 + noise`` (the remaining
    features are pure noise the network must learn to ignore). The target is divided
    by 10 so it has roughly the scale of house prices in units of $100,000 (0.5 to 2.5).

    Parameters
    ----------
    n_samples : int, default=20640
        Number of rows (California has 20,640).
    n_features : int, default=8
        Number of features, at least 5 (California has 8).
    noise : float, default=2.0
        Standard deviation of the Gaussian noise added before rescaling (0.2 after it):
        like house prices, the target is not a function of the features alone, so no
        model reaches zero error; the best possible R^2 is about 0.85.
    scale : bool, default=True
        Standardise features with training statistics.
    test_size, valid_size : float, default=0.25
        Fractions for the test set and for the validation set (of the training rows).
    random_state : int, default=42
        Seed of the generator and of the split.

    Returns
    -------
    Split
    """
    from sklearn.datasets import make_friedman1

    X, y = make_friedman1(n_samples=n_samples, n_features=n_features, noise=noise,
                          random_state=random_state)
    out = _split(X, y / 10.0, test_size=test_size, valid_size=valid_size,
                 random_state=random_state, stratify=False)
    if scale:
        _standardize(out)
    out.update(feature_names=[f"x{i}" for i in range(n_features)], target_names=["y"],
               description=f"make_friedman1: {n_samples} rows, {n_features} features "
                           "(5 informative), target / 10 (California housing stand-in)")
    return out


def make_regression_outliers(n_samples=400, *, outlier_fraction=0.1, outlier_scale=8.0,
                             noise=0.3, random_state=42):
    """One-feature regression data with a fraction of gross outliers.

    The clean relation is ``y = sin(2 x) + x / 2`` on ``x`` in [-3, 3] plus Gaussian
    noise. A fraction of the rows get a large *positive* offset (always upwards, so the
    outliers pull a squared-error fit up rather than cancelling out): the situation in
    which the chapter recommends the mean absolute error over the mean squared error.

    Parameters
    ----------
    n_samples : int, default=400
        Number of rows.
    outlier_fraction : float, default=0.1
        Fraction of rows turned into outliers.
    outlier_scale : float, default=8.0
        Mean size of the outliers' offset (uniform between half and 1.5 times this).
    noise : float, default=0.3
        Standard deviation of the ordinary noise.
    random_state : int, RandomState or None, default=42
        Seed.

    Returns
    -------
    X : ndarray of shape (n_samples, 1)
    y : ndarray of shape (n_samples,)
        Noisy targets, outliers included.
    y_clean : ndarray of shape (n_samples,)
        The noiseless relation at ``X`` (what a robust fit should recover).
    is_outlier : ndarray of bool, shape (n_samples,)
    """
    rng = check_random_state(random_state)
    x = rng.uniform(-3, 3, size=n_samples)
    y_clean = np.sin(2 * x) + x / 2
    y = y_clean + rng.normal(scale=noise, size=n_samples)
    n_out = round(outlier_fraction * n_samples)
    is_outlier = np.zeros(n_samples, dtype=bool)
    is_outlier[rng.choice(n_samples, size=n_out, replace=False)] = True
    y[is_outlier] += rng.uniform(0.5, 1.5, size=n_out) * outlier_scale
    return x[:, None], y, y_clean, is_outlier


def make_positive_regression(n_samples=600, *, noise=0.05, random_state=42):
    """One-feature regression data whose targets are never negative, often near zero.

    ``y = max(0, sin(x)) + |noise|`` on ``x`` in [-2 pi, 2 pi]: half of the curve sits on
    zero, where a network with an identity output is free to predict small negative
    values, while a ReLU or softplus output cannot. (Think of prices, counts, or the
    width of a bounding box.)

    Parameters
    ----------
    n_samples : int, default=600
    noise : float, default=0.05
        Scale of the absolute Gaussian noise.
    random_state : int, RandomState or None, default=42

    Returns
    -------
    X : ndarray of shape (n_samples, 1)
    y : ndarray of shape (n_samples,)
    """
    rng = check_random_state(random_state)
    x = rng.uniform(-2 * np.pi, 2 * np.pi, size=n_samples)
    y = np.maximum(0.0, np.sin(x)) + np.abs(rng.normal(scale=noise, size=n_samples))
    return x[:, None], y


def make_xor(n_samples: int | None = None, *, noise=0.15, random_state=42):
    """XOR: the four corners of the unit square, or a noisy cloud around them.

    Parameters
    ----------
    n_samples : int or None, default=None
        ``None`` gives exactly the truth table (4 rows, in the order 00, 01, 10, 11).
        An integer draws that many points: a random corner plus Gaussian noise.
    noise : float, default=0.15
        Standard deviation of the noise around each corner (ignored for ``None``).
    random_state : int, RandomState or None, default=42

    Returns
    -------
    X : ndarray of shape (n, 2)
    y : ndarray of int, shape (n,)
        ``x1 XOR x2`` of the corner each point came from.
    """
    if n_samples is None:
        X = truth_table(2).astype(float)
        return X, np.array([0, 1, 1, 0])
    rng = check_random_state(random_state)
    corners = rng.randint(0, 2, size=(n_samples, 2))
    X = corners + rng.normal(scale=noise, size=(n_samples, 2))
    return X, np.logical_xor(corners[:, 0], corners[:, 1]).astype(int)


def truth_table(n_inputs: int = 2) -> np.ndarray:
    """All ``2 ** n_inputs`` rows of binary inputs, in counting order (00, 01, 10, 11).

    Parameters
    ----------
    n_inputs : int, default=2

    Returns
    -------
    ndarray of int, shape (2 ** n_inputs, n_inputs)
    """
    rows = np.arange(2 ** n_inputs)
    # bit k of the row number, most significant first: row 1 -> (0, 1)
    return (rows[:, None] >> np.arange(n_inputs - 1, -1, -1)) & 1
