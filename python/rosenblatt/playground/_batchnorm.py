"""Batch normalisation for the Playground: the library's kernels under their kernel names.

The kernels live in the backends (``rosenblatt._kernels_ref`` is the specification,
``_kernels_numba`` and the compiled core implement the same functions); the validating
public versions are ``rosenblatt.kernels.batchnorm_forward`` and friends. This module
re-exports the raw NumPy kernels the engine calls (float64 arrays it allocates itself,
arguments already consistent), so there is one implementation per backend.

For a batch ``Z`` of shape ``(n, k)``::

    mu = mean(Z, axis=0);  var = mean((Z - mu)^2, axis=0)  (biased);
    invstd = 1 / sqrt(var + eps);  Xhat = (Z - mu) invstd;  Y = gamma Xhat + beta

and backward ``dbeta = sum dY``, ``dgamma = sum dY Xhat``,
``dZ = gamma invstd / n (n dY - dbeta - Xhat dgamma)``. In inference the running
statistics replace the batch ones, an affine map that :func:`fold` merges into the
preceding dense layer.
"""

from __future__ import annotations

from .. import kernels as _K
from .._kernels_ref import batchnorm_backward, batchnorm_forward, batchnorm_inference

__all__ = [
    "batchnorm_backward",
    "batchnorm_forward",
    "batchnorm_inference",
    "fold",
    "numba_kernels",
]


def fold(W, b, gamma, beta, running_mean, running_var, eps):
    """Return ``(W', b')`` with ``x W' + b' == batchnorm_inference(x W + b)``.

    See :func:`rosenblatt.kernels.batchnorm_fold`.
    """
    return _K.batchnorm_fold(W, b, gamma, beta, running_mean, running_var, eps)


def numba_kernels():
    """The Numba backend's ``(forward, backward, inference)`` kernels.

    Raises ``ImportError`` when numba is not installed.
    """
    from .. import _kernels_numba as nb

    return nb.batchnorm_forward, nb.batchnorm_backward, nb.batchnorm_inference
