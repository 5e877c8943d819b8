"""The Playground's input features: maps of the raw point (x1, x2).

Names and formulas as in the original's ``INPUTS`` table (``playground.ts``). The feature
order below is fixed; a selection keeps that order whatever order it is given in.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DEFAULT", "FEATURES", "LABELS", "transform", "validate"]

FEATURES = {
    "x": lambda x, y: x,
    "y": lambda x, y: y,
    "xSquared": lambda x, y: x * x,
    "ySquared": lambda x, y: y * y,
    "xTimesY": lambda x, y: x * y,
    "sinX": lambda x, y: np.sin(x),
    "sinY": lambda x, y: np.sin(y),
}
LABELS = {
    "x": "X1", "y": "X2", "xSquared": "X1^2", "ySquared": "X2^2", "xTimesY": "X1X2",
    "sinX": "sin(X1)", "sinY": "sin(X2)",
}
DEFAULT = ("x", "y")


def validate(features) -> tuple[str, ...]:
    """Return the selection in canonical order; raise ``ValueError`` on unknown names."""
    features = list(features)
    unknown = [f for f in features if f not in FEATURES]
    if unknown:
        raise ValueError(f"unknown features {unknown}; expected some of {list(FEATURES)}")
    chosen = tuple(f for f in FEATURES if f in features)
    if not chosen:
        raise ValueError("select at least one input feature")
    return chosen


def transform(X, features=DEFAULT) -> np.ndarray:
    """Map raw points ``X`` of shape ``(n, 2)`` to the selected features ``(n, k)``.

    A module-level function, so a ``FunctionTransformer(transform, kw_args=...)`` built on
    it pickles (used by the exported pipeline).
    """
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"X must have shape (n, 2), got {X.shape}")
    x, y = X[:, 0], X[:, 1]
    return np.column_stack([FEATURES[f](x, y) for f in validate(features)])
