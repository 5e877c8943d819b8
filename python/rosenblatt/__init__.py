"""rosenblatt: perceptrons and multilayer perceptrons on a SIMD C++ core.

Public names only; the estimators mirror scikit-learn's ``fit``/``predict`` API.
"""

__version__ = "0.1.0"

from .kernels import available_backends

__all__ = ["__version__", "available_backends"]
