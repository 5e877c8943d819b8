"""rosenblatt: perceptrons and multilayer perceptrons on a SIMD C++ core.

The estimators mirror scikit-learn's API::

    from rosenblatt import MLPClassifier, MLPRegressor, Perceptron

They are imported on first use (PEP 562), so ``import rosenblatt`` stays fast and does not
import scikit-learn or numba.
"""

__version__ = "0.1.0"

from .kernels import available_backends

# public name -> submodule that defines it
_LAZY = {
    "Perceptron": "linear_model",
    "MLPClassifier": "neural_network",
    "MLPRegressor": "neural_network",
    "datasets": None,
    "plot": None,
    "kernels": None,
}

__all__ = ["MLPClassifier", "MLPRegressor", "Perceptron", "__version__", "available_backends",
           "datasets", "kernels", "plot"]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'rosenblatt' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(f".{_LAZY[name] or name}", __name__)
    value = module if _LAZY[name] is None else getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
