"""Rows of X for the kernels, which read dense C-contiguous arrays of one float dtype.

Sparse X is never densified whole for training: an epoch walks its row order a block of
rows at a time, each block densified just before a kernel trains on it.
"""

import numpy as np
import scipy.sparse as sp

# Dense bytes of one block of sparse rows: enough rows that Python is entered rarely, and
# little next to X densified whole.
BLOCK_BYTES = 8 << 20


def kernel_array(a, dtype=None):
    """``a`` as the kernels read it: a C-contiguous, aligned ndarray of ``dtype``.

    ``a`` itself when it is one already. Alignment matters for data viewed at an odd byte
    offset (``numpy.frombuffer`` with an offset, a memmap after an odd-sized header), which
    ``numpy.ascontiguousarray`` and scikit-learn's ``check_array`` pass through as they are.
    """
    return np.require(a, dtype=dtype, requirements=("C_CONTIGUOUS", "ALIGNED"))


def dense_rows(X, rows, dtype):
    """Rows of X (a slice or an index array) as a C-contiguous array of ``dtype``."""
    Xr = X[rows]
    if sp.issparse(Xr):
        Xr = Xr.toarray()
    return kernel_array(Xr, dtype)


def block_rows(n_features, dtype, unit=1):
    """Rows per densified block: a multiple of ``unit`` (a minibatch), at least one."""
    per_row = max(1, n_features) * np.dtype(dtype).itemsize
    return max(1, BLOCK_BYTES // (per_row * unit)) * unit
