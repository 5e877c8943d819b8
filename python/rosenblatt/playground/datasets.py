"""The six data sets of the TensorFlow Playground, generated as its ``src/dataset.ts`` does.

Every generator takes the number of points, the noise as a *fraction* (the page's 0-50 %
divided by 100, as the original passes ``state.noise / 100``) and a NumPy ``Generator``,
and returns ``(X, y)`` with ``X`` of shape ``(n, 2)`` in generation order (the first half of
the points first where the original makes two halves). :func:`make_dataset` then shuffles
once and splits at ``floor(n * ratio)`` exactly as ``playground.ts`` does.

The original draws from ``Math.random`` seeded by ``seedrandom``; here the draws come from
``numpy.random.default_rng(seed)``, so the same seed gives the same data in this library
(not the same points as in the browser original - the distributions and formulas are
identical).

Formulas (``U`` uniform, ``N`` normal, ``noise`` in [0, 0.5]):

circle
    radius 5. Half of the points (``ceil(n / 2)``) at ``r ~ U(0, 2.5)``, half at
    ``r ~ U(3.5, 5)``; angle ``a ~ U(0, 2 pi)``; ``(x, y) = (r sin a, r cos a)``.
    Label +1 when ``(x + nx, y + ny)`` with ``nx, ny ~ U(-5, 5) * noise`` lies strictly
    within 2.5 of the origin, else -1.
xor
    ``x, y ~ U(-5, 5)``, each moved 0.3 away from zero (``+0.3`` if ``> 0`` else ``-0.3``);
    label +1 when ``(x + nx)(y + ny) >= 0`` with ``nx, ny ~ U(-5, 5) * noise``.
gauss
    variance ``0.5 + 7 noise`` (``d3.scaleLinear().domain([0, 0.5]).range([0.5, 4])``);
    half ``~ N((2, 2), variance I)`` labelled +1, half ``~ N((-2, -2), variance I)``
    labelled -1.
spiral
    ``m = n / 2`` per class, ``i = 0 .. ceil(m) - 1``, ``r = 5 i / m``,
    ``t = 1.75 (i / m) 2 pi + delta`` (``delta = 0`` for +1, ``pi`` for -1),
    ``x = r sin t + U(-1, 1) noise``, ``y = r cos t + U(-1, 1) noise``.
reg-plane
    ``x, y ~ U(-6, 6)``, label ``(x + nx + y + ny) / 10`` with ``nx, ny ~ U(-6, 6) * noise``
    (the original's unclamped ``scaleLinear([-10, 10] -> [-1, 1])``: the corners reach
    +-1.2, more with noise).
reg-gauss
    ``x, y ~ U(-6, 6)``; centres ``(-4, 2.5, +), (0, 2.5, -), (4, 2.5, +), (-4, -2.5, -),
    (0, -2.5, +), (4, -2.5, -)``; each gives ``sign * clamp(1 - d / 2, 0, 1)`` at the
    noisy point (``nx, ny ~ U(-6, 6) * noise``); the label is the one of largest magnitude
    (the first such centre on ties, 0 when none is within 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CLASSIFICATION",
    "GENERATORS",
    "N_SAMPLES",
    "REGRESSION",
    "Dataset",
    "circle",
    "gauss",
    "make_dataset",
    "reg_gauss",
    "reg_plane",
    "spiral",
    "xor",
]

N_CLASSIFY = 500
N_REGRESS = 1200


def _half(n: int) -> int:
    # ``for (i = 0; i < n / 2; i++)`` runs ceil(n / 2) times
    return math.ceil(n / 2)


def _ring(rng: np.random.Generator, k: int, r_lo: float, r_hi: float, noise: float):
    radius = 5.0
    r = rng.uniform(r_lo, r_hi, k)
    a = rng.uniform(0.0, 2 * math.pi, k)
    x, y = r * np.sin(a), r * np.cos(a)
    nx = rng.uniform(-radius, radius, k) * noise
    ny = rng.uniform(-radius, radius, k) * noise
    label = np.where(np.hypot(x + nx, y + ny) < radius * 0.5, 1.0, -1.0)
    return np.column_stack([x, y]), label


def circle(n: int, noise: float, rng: np.random.Generator):
    """Two concentric groups: inside r < 2.5 (+1) and a ring 3.5 <= r < 5 (-1)."""
    k = _half(n)
    xa, ya = _ring(rng, k, 0.0, 2.5, noise)
    xb, yb = _ring(rng, k, 3.5, 5.0, noise)
    return np.vstack([xa, xb]), np.concatenate([ya, yb])


def xor(n: int, noise: float, rng: np.random.Generator):
    """Four quadrants; +1 where x y >= 0."""
    pad = 0.3
    x = rng.uniform(-5, 5, n)
    x += np.where(x > 0, pad, -pad)
    y = rng.uniform(-5, 5, n)
    y += np.where(y > 0, pad, -pad)
    nx = rng.uniform(-5, 5, n) * noise
    ny = rng.uniform(-5, 5, n) * noise
    label = np.where((x + nx) * (y + ny) >= 0, 1.0, -1.0)
    return np.column_stack([x, y]), label


def gauss_variance(noise: float) -> float:
    """The original's ``scaleLinear().domain([0, 0.5]).range([0.5, 4])`` (unclamped)."""
    return 0.5 + (4.0 - 0.5) * noise / 0.5


def gauss(n: int, noise: float, rng: np.random.Generator):
    """Two isotropic Gaussians at (2, 2) (+1) and (-2, -2) (-1)."""
    k = _half(n)
    sd = math.sqrt(gauss_variance(noise))
    pos = rng.normal(2.0, sd, (k, 2))
    neg = rng.normal(-2.0, sd, (k, 2))
    return np.vstack([pos, neg]), np.concatenate([np.ones(k), -np.ones(k)])


def spiral(n: int, noise: float, rng: np.random.Generator):
    """Two interleaved spirals of 1.75 turns, radius 0 to 5."""
    m = n / 2
    i = np.arange(math.ceil(m), dtype=float)
    parts, labels = [], []
    for delta, label in ((0.0, 1.0), (math.pi, -1.0)):
        r = i / m * 5
        t = 1.75 * i / m * 2 * math.pi + delta
        x = r * np.sin(t) + rng.uniform(-1, 1, i.size) * noise
        y = r * np.cos(t) + rng.uniform(-1, 1, i.size) * noise
        parts.append(np.column_stack([x, y]))
        labels.append(np.full(i.size, label))
    return np.vstack(parts), np.concatenate(labels)


def _noisy_uniform(n: int, noise: float, rng: np.random.Generator):
    radius = 6.0
    p = np.empty((n, 4))
    # drawn point by point in the original's order: x, y, noise x, noise y
    p[:] = rng.uniform(-radius, radius, (n, 4))
    p[:, 2:] *= noise
    return p[:, :2].copy(), p[:, 0] + p[:, 2], p[:, 1] + p[:, 3]


def reg_plane(n: int, noise: float, rng: np.random.Generator):
    """Regression target (x + y) / 10 of the noisy point."""
    X, xn, yn = _noisy_uniform(n, noise, rng)
    return X, (xn + yn) / 10.0


REG_GAUSS_CENTRES = np.array([
    [-4, 2.5, 1],
    [0, 2.5, -1],
    [4, 2.5, 1],
    [-4, -2.5, -1],
    [0, -2.5, 1],
    [4, -2.5, -1],
], dtype=float)


def reg_gauss_label(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The signed bump of largest magnitude among the six centres (first one on ties)."""
    d = np.hypot(x[:, None] - REG_GAUSS_CENTRES[:, 0], y[:, None] - REG_GAUSS_CENTRES[:, 1])
    v = REG_GAUSS_CENTRES[:, 2] * np.clip(1.0 - d / 2.0, 0.0, 1.0)
    # the original replaces the running label only when strictly larger in magnitude:
    # argmax returns the first maximum, and an all-zero row gives 0
    return v[np.arange(len(x)), np.argmax(np.abs(v), axis=1)]


def reg_gauss(n: int, noise: float, rng: np.random.Generator):
    """Six signed cones of radius 2 on a 3 x 2 grid."""
    X, xn, yn = _noisy_uniform(n, noise, rng)
    return X, reg_gauss_label(xn, yn)


GENERATORS = {
    "circle": circle,
    "xor": xor,
    "gauss": gauss,
    "spiral": spiral,
    "reg-plane": reg_plane,
    "reg-gauss": reg_gauss,
}
CLASSIFICATION = ("circle", "xor", "gauss", "spiral")
REGRESSION = ("reg-plane", "reg-gauss")
N_SAMPLES = {name: N_CLASSIFY for name in CLASSIFICATION} | {
    name: N_REGRESS for name in REGRESSION}


@dataclass(frozen=True)
class Dataset:
    """A shuffled, split data set; points are raw (x1, x2), labels +-1 or real."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    @property
    def is_regression(self) -> bool:
        return self.name in REGRESSION or (
            self.name.startswith("upload") and not _is_pm1(self.y_train))


def _is_pm1(y: np.ndarray) -> bool:
    return bool(np.all((y == 1) | (y == -1)))


def split(X: np.ndarray, y: np.ndarray, train_ratio: float, rng: np.random.Generator):
    """Shuffle once, then split at ``floor(n * ratio)`` (the original's order of steps)."""
    order = rng.permutation(len(X))
    X, y = X[order], y[order]
    cut = math.floor(len(X) * train_ratio)
    return X[:cut], y[:cut], X[cut:], y[cut:]


def make_dataset(name: str = "circle", *, noise: float = 0, train_ratio: float = 50,
                 seed: int = 0, n_samples: int | None = None) -> Dataset:
    """Generate, shuffle and split one of the six data sets.

    Parameters
    ----------
    name : {"circle", "xor", "gauss", "spiral", "reg-plane", "reg-gauss"}
    noise : float
        Percent, 0 to 50, as on the page (the generators receive ``noise / 100``).
    train_ratio : float
        Percent of points used for training, 10 to 90.
    seed : int
        Seed of the one ``numpy.random.Generator`` used for generation and shuffling.
    n_samples : int, optional
        Defaults to the original's 500 (classification) or 1200 (regression).
    """
    if name not in GENERATORS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(GENERATORS)}")
    if not 0 <= noise <= 50:
        raise ValueError(f"noise must be in [0, 50] percent, got {noise}")
    if not 10 <= train_ratio <= 90:
        raise ValueError(f"train_ratio must be in [10, 90] percent, got {train_ratio}")
    n = N_SAMPLES[name] if n_samples is None else int(n_samples)
    if n < 2:
        raise ValueError(f"n_samples must be at least 2, got {n}")
    rng = np.random.default_rng(seed)
    X, y = GENERATORS[name](n, noise / 100, rng)
    return Dataset(name, *split(X, y, train_ratio / 100, rng))


def from_points(X, y, *, train_ratio: float = 50, seed: int = 0) -> Dataset:
    """Wrap user points (an uploaded CSV) as a shuffled, split :class:`Dataset`."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    rng = np.random.default_rng(seed)
    return Dataset("upload", *split(X, y, train_ratio / 100, rng))


def parse_csv(text: str, max_rows: int = 10000):
    """Parse ``x1,x2,label`` rows (an optional header line is skipped).

    Labels may be any two distinct values (mapped to -1/+1, the larger one to +1) for
    classification, or real numbers (more than two distinct values) for regression, which
    are scaled into [-1, 1] by their largest magnitude. Returns ``(X, y, is_regression)``.
    """
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.replace(";", ",").replace("\t", ",").split(",")]
        if len(parts) != 3:
            raise ValueError(f"line {lineno}: expected 3 columns x1,x2,label, got {len(parts)}")
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            if not rows:  # a header
                continue
            raise ValueError(f"line {lineno}: not numbers: {line[:60]!r}") from None
        if not all(math.isfinite(v) for v in vals):
            raise ValueError(f"line {lineno}: non-finite value")
        rows.append(vals)
        if len(rows) > max_rows:
            raise ValueError(f"too many rows (more than {max_rows})")
    if len(rows) < 4:
        raise ValueError(f"need at least 4 data rows, got {len(rows)}")
    a = np.array(rows)
    X, raw = a[:, :2], a[:, 2]
    values = np.unique(raw)
    if values.size == 1:
        raise ValueError("all labels are equal; need two classes or real-valued targets")
    if values.size == 2:
        return X, np.where(raw == values[1], 1.0, -1.0), False
    return X, raw / np.max(np.abs(raw)), True
