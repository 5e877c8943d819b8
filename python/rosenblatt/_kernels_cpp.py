"""The compiled backend: a thin adapter over :mod:`rosenblatt._core`.

Every kernel keeps the name, positional arguments and semantics of the NumPy reference
(``_kernels_ref``); the compiled functions already take exactly those arguments, so they
are re-exported as they are. The dispatcher (``kernels.py``) validates arguments before
calling them; ``_core`` still checks dtypes, shapes and contiguity itself so that no input
can make native code read or write out of bounds.

Importing this module raises ImportError when the core is not built, or when
``ROSENBLATT_ISA`` asks for an instruction set this CPU or build does not have.
"""

from . import _core
from ._core import (  # noqa: F401  (re-exported kernels)
    activation_backward,
    activation_forward,
    adagrad_step,
    adam_step,
    all_finite,
    batchnorm_backward,
    batchnorm_forward,
    batchnorm_inference,
    dense_backward,
    dense_forward,
    loss_gradient,
    mlp_forward,
    optimizer_step,
    rmsprop_step,
    sgd_step,
    softmax,
    train_epoch,
)

# Perceptron kernels: the compiled versions are added with cpp/include/rosenblatt/perceptron.hpp.
# Until then they are taken from the NumPy reference so the backend is complete.
_PERCEPTRON = ("perceptron_epoch", "xorshift_shuffle", "perceptron_epoch_sklearn",
               "perceptron_fit_sklearn")
for _name in _PERCEPTRON:
    if hasattr(_core, _name):
        globals()[_name] = getattr(_core, _name)
    else:
        from . import _kernels_ref as _ref

        globals()[_name] = getattr(_ref, _name)
del _name

isa = _core.isa
available_isas = _core.available_isas
set_num_threads = _core.set_num_threads
get_num_threads = _core.get_num_threads
