"""Batch normalisation kernels: the NumPy specification and its Numba twins.

Written to the library's kernel contract (DESIGN.md): inputs are validated, C-contiguous
arrays of one float dtype; every output is allocated by the caller and written in place;
no allocation of results, no RNG, no Python objects inside. These are meant to move into
``_kernels_ref.py`` / ``_kernels_numba.py`` / the C++ core under the same names.

For a batch ``Z`` of shape ``(n, k)`` (rows are samples, columns features)::

    mu      = mean(Z, axis=0)                              (k,)
    var     = mean((Z - mu)^2, axis=0)     (biased, / n)   (k,)
    invstd  = 1 / sqrt(var + eps)                          (k,)
    Xhat    = (Z - mu) * invstd                            (n, k)
    Y       = gamma * Xhat + beta                          (n, k)

and backward, from ``dY = dL/dY``::

    dbeta   = sum(dY, axis=0)
    dgamma  = sum(dY * Xhat, axis=0)
    dZ      = gamma * invstd / n * (n dY - dbeta - Xhat * dgamma)

In inference the running statistics replace the batch ones (``batchnorm_inference``), an
affine map that :func:`fold` merges into the preceding dense layer.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "batchnorm_backward",
    "batchnorm_forward",
    "batchnorm_inference",
    "fold",
    "numba_kernels",
]


def batchnorm_forward(Z, gamma, beta, eps, Y, Xhat, mean, invstd):
    """Training-mode forward. Writes ``Y``, ``Xhat`` (n, k), ``mean``, ``invstd`` (k,).

    ``eps`` is a Python float; the other arguments are arrays of ``Z.dtype``.
    """
    n = Z.shape[0]
    np.sum(Z, axis=0, out=mean)
    mean /= n
    np.subtract(Z, mean, out=Xhat)
    np.sum(Xhat * Xhat, axis=0, out=invstd)
    invstd /= n
    invstd += eps
    np.sqrt(invstd, out=invstd)
    np.divide(1, invstd, out=invstd)
    Xhat *= invstd
    np.multiply(Xhat, gamma, out=Y)
    Y += beta


def batchnorm_backward(dY, Xhat, gamma, invstd, dZ, dgamma, dbeta):
    """Backward of :func:`batchnorm_forward`. Writes ``dZ`` (n, k), ``dgamma``, ``dbeta``."""
    n = dY.shape[0]
    np.sum(dY, axis=0, out=dbeta)
    np.sum(dY * Xhat, axis=0, out=dgamma)
    np.multiply(dY, n, out=dZ)
    dZ -= dbeta
    dZ -= Xhat * dgamma
    dZ *= gamma * invstd / n


def batchnorm_inference(Z, gamma, beta, running_mean, running_var, eps, Y):
    """Inference-mode forward with running statistics. Writes ``Y`` (n, k)."""
    scale = gamma / np.sqrt(running_var + eps)
    np.subtract(Z, running_mean, out=Y)
    Y *= scale
    Y += beta


def fold(W, b, gamma, beta, running_mean, running_var, eps):
    """Return ``(W', b')`` with ``x W' + b' == batchnorm_inference(x W + b)``."""
    scale = gamma / np.sqrt(running_var + eps)
    return W * scale, (b - running_mean) * scale + beta


_NUMBA = None


def numba_kernels():
    """The Numba twins ``(forward, backward, inference)``, compiled lazily (cache=True).

    Raises ``ImportError`` when numba is not installed.
    """
    global _NUMBA
    if _NUMBA is None:
        import numba

        @numba.njit(cache=True, fastmath=False)
        def forward(Z, gamma, beta, eps, Y, Xhat, mean, invstd):
            n, k = Z.shape
            for j in range(k):
                s = 0.0
                for i in range(n):
                    s += Z[i, j]
                mu = s / n
                v = 0.0
                for i in range(n):
                    d = Z[i, j] - mu
                    v += d * d
                inv = 1.0 / np.sqrt(v / n + eps)
                mean[j] = mu
                invstd[j] = inv
                for i in range(n):
                    xh = (Z[i, j] - mu) * inv
                    Xhat[i, j] = xh
                    Y[i, j] = gamma[j] * xh + beta[j]

        @numba.njit(cache=True, fastmath=False)
        def backward(dY, Xhat, gamma, invstd, dZ, dgamma, dbeta):
            n, k = dY.shape
            for j in range(k):
                sb = 0.0
                sg = 0.0
                for i in range(n):
                    sb += dY[i, j]
                    sg += dY[i, j] * Xhat[i, j]
                dbeta[j] = sb
                dgamma[j] = sg
                c = gamma[j] * invstd[j] / n
                for i in range(n):
                    dZ[i, j] = c * (n * dY[i, j] - sb - Xhat[i, j] * sg)

        @numba.njit(cache=True, fastmath=False)
        def inference(Z, gamma, beta, running_mean, running_var, eps, Y):
            n, k = Z.shape
            for j in range(k):
                scale = gamma[j] / np.sqrt(running_var[j] + eps)
                for i in range(n):
                    Y[i, j] = (Z[i, j] - running_mean[j]) * scale + beta[j]

        _NUMBA = (forward, backward, inference)
    return _NUMBA
