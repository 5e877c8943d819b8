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


_F32_MAX = float(np.finfo(np.float32).max)


def check_narrowing(X, dtype):
    """Refuse float64 X with values a float32 model cannot hold (they would become inf).

    A model fitted on float32 data computes in float32, and validated float64 input is cast
    to it; a finite value beyond float32's range would turn into an infinity there and the
    outputs into NaN, silently.
    """
    if np.dtype(dtype) != np.float32 or X.dtype != np.float64:
        return
    data = X.data if sp.issparse(X) else X
    if data.size and max(float(data.max()), -float(data.min())) > _F32_MAX:
        raise ValueError(
            "X holds values beyond the float32 range (|x| > 3.4e38), and this model computes "
            "in float32 (it was fitted on float32 data): they would become infinite. Scale "
            "the input, or fit the model on float64 data.")


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
