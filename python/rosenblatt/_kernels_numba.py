"""Numba backend: the twins of ``_kernels_ref`` (same names, positional arguments, semantics).

Importing this module imports numba; ``kernels.py`` imports it lazily, so ``import
rosenblatt`` never does. Every kernel is compiled on first use and cached on disk
(``cache=True``); all numba flags come from :data:`_FLAGS`.

Design notes
------------
* The public functions are thin Python wrappers with the reference's signatures. They turn
  ``None`` (sample_weight, Z, dX, grad_norms) into an empty array plus a flag and coerce
  scalars to one type, so each compiled function has exactly two variants (float32,
  float64) instead of one per combination of optional arguments.
* Arithmetic stays in the arrays' dtype: constants are cast with ``dtype.type`` because a
  Python float literal would promote float32 expressions to float64. The operation order
  follows the reference, and ``fastmath`` is off, so no FMA contraction or reassociation:
  optimizer steps and the scikit-learn perceptron reproduce the reference bit for bit
  (the steps with subnormal numbers flushed to zero, as the compiled core does).
* Inside compiled code ``float(x)`` of a float32 stays float32 in numba; float64 values
  are made with ``np.float64(x)``.
* Matrix products go to BLAS (numba's ``np.dot`` with an ``out`` argument, no allocation)
  when they are large enough to repay the call, and to plain loops when they are tiny.
* Threads: the matrix products run in BLAS (the OpenBLAS that numba's ``np.dot`` calls),
  limited to ``n_threads`` for the duration of the call (threadpoolctl). ``n_threads = 0``
  (the library default) means ONE thread here: OpenBLAS's spinning workers made a
  fashion-sized epoch 10x slower on a loaded 2-core machine, while one thread stays within
  reach of the C++ backend; pass ``n_threads=2`` to use both cores of a quiet machine.
  Everything else runs on the calling thread with the GIL released (``nogil``), so
  several Python threads can train or predict at once. ``perceptron_fit_sklearn`` splits
  its independent classes over ``n_threads`` Python threads (0: all cores) when the work
  is large enough, a few epochs per compiled call so that Ctrl-C is seen between them.
* ``train_epoch`` gathers each batch into the caller's ``workspace`` (carved as
  :func:`train_workspace_size` documents) and runs its rows in one compiled call without
  allocating per batch. Compiled code cannot see Ctrl-C, so the dispatcher hands it an
  epoch in chunks of whole batches (``Trainer._numba_chunk``).
* The scikit-learn perceptron screens each row with a vectorised dot product and falls
  back to scikit-learn's sequential float64 sum inside the rounding bound and on every
  mistake, so its decisions, weights and online loss equal the reference's exactly.
* Read-only input arrays are a separate numba type: they compile their own variant once.
"""

import contextlib
import itertools
import math
import os
import platform
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from . import _codes as C
from ._kernels_ref import (  # noqa: F401  (re-exported pure bookkeeping)
    _epochs_one_by_one,
    mlp_workspace_size,
    param_offsets,
    train_workspace_size,
    unpack_params,
)

# The one place for numba flags. fastmath stays off: bit parity with the reference (and
# scikit-learn) depends on unfused multiply-adds and on the reference's operation order.
# error_model="numpy": float division by zero gives inf/nan like NumPy, without a check.
_FLAGS = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy",
          "boundscheck": False}
_jit = njit(**_FLAGS)
# Only for the perceptron's screening dot product, whose result never reaches the output
# unless its sign is certain (see _perceptron_epoch_sklearn): reassociation lets LLVM
# vectorise the float64 sum; no contraction, so each product is still rounded to X's dtype.
_jit_reassoc = njit(**{**_FLAGS, "fastmath": {"reassoc"}})

# Below this many multiply-adds a plain loop beats a BLAS call (call overhead dominates).
_BLAS_MIN = 4096

IDENTITY = C.IDENTITY
HEAVISIDE = C.HEAVISIDE
SIGN = C.SIGN
LOGISTIC = C.LOGISTIC
TANH = C.TANH
RELU = C.RELU
LEAKY_RELU = C.LEAKY_RELU
ELU = C.ELU
SOFTPLUS = C.SOFTPLUS
GELU = C.GELU
SOFTMAX = C.SOFTMAX
EXP = C.EXP
SLOPE = C.LEAKY_RELU_SLOPE
ELU_A = C.ELU_ALPHA
GELU_C = C.GELU_C
GELU_K = C.GELU_K

SQUARED_ERROR = C.SQUARED_ERROR
ABSOLUTE_ERROR = C.ABSOLUTE_ERROR
HUBER = C.HUBER
BINARY_LOG_LOSS = C.BINARY_LOG_LOSS
LOG_LOSS = C.LOG_LOSS
POISSON = C.POISSON

SGD = C.SGD
NESTEROV = C.NESTEROV
ADAGRAD = C.ADAGRAD
RMSPROP = C.RMSPROP
ADAM = C.ADAM
ADAMW = C.ADAMW

H_LR = C.H_LR
H_MOMENTUM = C.H_MOMENTUM
H_BETA1 = C.H_BETA1
H_BETA2 = C.H_BETA2
H_EPS = C.H_EPS
H_RHO = C.H_RHO
H_WEIGHT_DECAY = C.H_WEIGHT_DECAY
H_ALPHA = C.H_ALPHA
H_L1 = C.H_L1
H_HUBER_DELTA = C.H_HUBER_DELTA

_blas_libs = None
_blas_lock = threading.Lock()


@contextlib.contextmanager
def _blas_limit(n):
    global _blas_libs
    if _blas_libs is None:
        with _blas_lock:
            if _blas_libs is None:
                import scipy.linalg.cython_blas  # noqa: F401  (the BLAS numba's np.dot calls)
                from threadpoolctl import ThreadpoolController

                _blas_libs = ThreadpoolController().select(user_api="blas").lib_controllers
    old = [lib.get_num_threads() for lib in _blas_libs]
    for lib, o in zip(_blas_libs, old, strict=True):
        if o != n:
            lib.set_num_threads(n)
    try:
        yield
    finally:
        for lib, o in zip(_blas_libs, old, strict=True):
            if o != n:
                lib.set_num_threads(o)


def _blas_threads(n_threads, work):
    """Context limiting BLAS to ``n_threads`` (0: one) for a call of ``work`` multiply-adds.

    The OpenBLAS setters are called directly (a few microseconds), not through
    ``threadpool_limits`` (~80 us), since the dispatcher enters a Numba epoch in chunks.
    """
    if work < _BLAS_MIN:
        return contextlib.nullcontext()
    return _blas_limit(int(n_threads) or 1)


_EMPTY = {np.dtype(np.float32): np.empty(0, np.float32),
          np.dtype(np.float64): np.empty(0, np.float64)}
_EMPTY2 = {np.dtype(np.float32): np.empty((0, 0), np.float32),
           np.dtype(np.float64): np.empty((0, 0), np.float64)}
_EMPTY_I64 = np.empty(0, np.int64)


# --------------------------------------------------------------------------------------
# scalar activations (dt: the arrays' dtype, so constants keep float32 in float32)


@_jit
def _logistic(z, dt):
    one = dt.type(1)
    if z >= 0:
        return one / (one + math.exp(-z))
    e = math.exp(z)
    return e / (one + e)


@_jit
def _f(z, act, dt):
    """f(z) for an elementwise activation code (softmax is handled row-wise elsewhere)."""
    zero = dt.type(0)
    one = dt.type(1)
    if act == IDENTITY:
        return z
    if act == HEAVISIDE:
        return one if z >= zero else zero
    if act == SIGN:
        if z > zero:
            return one
        if z < zero:
            return -one
        return z * zero  # 0 stays 0, nan stays nan (np.sign)
    if act == LOGISTIC:
        return _logistic(z, dt)
    if act == TANH:
        return math.tanh(z)
    if act == RELU:
        return z if (z >= zero or math.isnan(z)) else zero  # np.maximum propagates nan
    if act == LEAKY_RELU:
        return z if z > zero else z * dt.type(SLOPE)
    if act == ELU:
        return z if z > zero else math.expm1(min(z, zero)) * dt.type(ELU_A)
    if act == SOFTPLUS:
        return max(z, zero) + math.log1p(math.exp(-abs(z)))
    if act == GELU:  # z logistic(2 u) = 0.5 z (1 + tanh u), without its cancellation
        u = dt.type(GELU_C) * (z + dt.type(GELU_K) * z * z * z)
        return z * _logistic(u + u, dt)
    if act == EXP:
        return math.exp(z)
    return z * dt.type(np.nan)


@_jit
def _df(z, a, act, dt):
    """f'(.) from the saved state a = f(z) (and z for softplus and gelu)."""
    one = dt.type(1)
    zero = dt.type(0)
    if act == LOGISTIC:
        return a * (one - a)
    if act == TANH:
        return one - a * a
    if act == RELU:
        return one if a > zero else zero
    if act == LEAKY_RELU:
        return one if a > zero else dt.type(SLOPE)
    if act == ELU:
        return one if a > zero else a + dt.type(ELU_A)
    if act == SOFTPLUS:
        return _logistic(z, dt)
    if act == GELU:  # as the reference: 1 - tanh^2 u = 4 e / (1 + e)^2, e = exp(-|2 u|)
        c = dt.type(GELU_C)
        k = dt.type(GELU_K)
        u = c * (z + k * z * z * z)
        e = dt.type(math.exp(-abs(u + u)))
        d = one + e
        s = one / d if u >= zero else e / d
        return s + dt.type(2) * z * (e / (d * d)) * c * (one + dt.type(3) * k * z * z)
    if act == EXP:
        return a
    return one


# --------------------------------------------------------------------------------------
# fused row loops


@_jit
def _softmax_rows(Z, A):
    n, m = Z.shape
    for i in range(n):
        mx = Z[i, 0]
        for j in range(1, m):
            v = Z[i, j]
            if v > mx or math.isnan(v):
                mx = v
        s = Z.dtype.type(0)
        for j in range(m):
            e = math.exp(Z[i, j] - mx)
            A[i, j] = e
            s += e
        for j in range(m):
            A[i, j] = A[i, j] / s


@_jit
def _bias_act(Z, b, A, act, keep_z):
    """A = f(Z + b) in one pass; Z += b too when keep_z. Z and A may be the same array."""
    n, m = Z.shape
    dt = A.dtype
    zero = dt.type(0)
    if act == SOFTMAX:
        for i in range(n):
            for j in range(m):
                Z[i, j] = Z[i, j] + b[j]
        _softmax_rows(Z, A)
        return
    # the hot activations get their own loops (vectorisable, no per-element dispatch)
    if act == IDENTITY:
        for i in range(n):
            for j in range(m):
                z = Z[i, j] + b[j]
                Z[i, j] = z
                A[i, j] = z
    elif act == RELU:
        for i in range(n):
            for j in range(m):
                z = Z[i, j] + b[j]
                if keep_z:
                    Z[i, j] = z
                A[i, j] = z if (z >= zero or math.isnan(z)) else zero
    elif act == TANH:
        for i in range(n):
            for j in range(m):
                z = Z[i, j] + b[j]
                if keep_z:
                    Z[i, j] = z
                A[i, j] = math.tanh(z)
    elif act == LOGISTIC:
        for i in range(n):
            for j in range(m):
                z = Z[i, j] + b[j]
                if keep_z:
                    Z[i, j] = z
                A[i, j] = _logistic(z, dt)
    else:
        for i in range(n):
            for j in range(m):
                z = Z[i, j] + b[j]
                if keep_z:
                    Z[i, j] = z
                A[i, j] = _f(z, act, dt)


@_jit
def _act_grad_inplace(Z, A, dZ, act):
    """dZ *= f'(.) in place (dZ holds dA on entry)."""
    n, m = A.shape
    dt = A.dtype
    one = dt.type(1)
    zero = dt.type(0)
    if act == IDENTITY:
        return
    if act == RELU:
        for i in range(n):
            for j in range(m):
                dZ[i, j] = dZ[i, j] * (one if A[i, j] > zero else zero)
    elif act == TANH:
        for i in range(n):
            for j in range(m):
                a = A[i, j]
                dZ[i, j] = dZ[i, j] * (one - a * a)
    elif act == LOGISTIC:
        for i in range(n):
            for j in range(m):
                a = A[i, j]
                dZ[i, j] = dZ[i, j] * (a * (one - a))
    elif Z.shape[0] == n:
        for i in range(n):
            for j in range(m):
                dZ[i, j] = dZ[i, j] * _df(Z[i, j], A[i, j], act, dt)
    else:  # no Z given: only activations whose derivative comes from A get here
        for i in range(n):
            for j in range(m):
                dZ[i, j] = dZ[i, j] * _df(A[i, j], A[i, j], act, dt)


# --------------------------------------------------------------------------------------
# matrix products: BLAS for real work, loops for tiny shapes


@_jit
def _mm_nn(A, B, Out):
    """Out = A @ B;  A (n, k), B (k, m)."""
    n, k = A.shape
    m = B.shape[1]
    if n * k * m >= _BLAS_MIN:
        np.dot(A, B, Out)
        return
    zero = Out.dtype.type(0)
    for i in range(n):
        for j in range(m):
            Out[i, j] = zero
        for p in range(k):
            a = A[i, p]
            for j in range(m):
                Out[i, j] += a * B[p, j]


@_jit
def _mm_tn(A, B, Out):
    """Out = A.T @ B;  A (n, k), B (n, m), Out (k, m)."""
    n, k = A.shape
    m = B.shape[1]
    if n * k * m >= _BLAS_MIN:
        np.dot(A.T, B, Out)
        return
    zero = Out.dtype.type(0)
    for p in range(k):
        for j in range(m):
            Out[p, j] = zero
    for i in range(n):
        for p in range(k):
            a = A[i, p]
            for j in range(m):
                Out[p, j] += a * B[i, j]


@_jit
def _mm_nt(A, B, Out):
    """Out = A @ B.T;  A (n, m), B (k, m), Out (n, k)."""
    n, m = A.shape
    k = B.shape[0]
    if n * k * m >= _BLAS_MIN:
        np.dot(A, B.T, Out)
        return
    for i in range(n):
        for p in range(k):
            s = Out.dtype.type(0)
            for j in range(m):
                s += A[i, j] * B[p, j]
            Out[i, p] = s


# --------------------------------------------------------------------------------------
# activations


@_jit
def _activation_forward(Z, act, A):
    n, m = Z.shape
    if act == SOFTMAX:
        _softmax_rows(Z, A)
        return
    dt = A.dtype
    for i in range(n):
        for j in range(m):
            A[i, j] = _f(Z[i, j], act, dt)


@_jit
def _activation_backward(Z, A, dA, act, dZ):
    n, m = A.shape
    dt = A.dtype
    if act == IDENTITY:
        for i in range(n):
            for j in range(m):
                dZ[i, j] = dA[i, j]
        return
    for i in range(n):
        for j in range(m):
            z = Z[i, j] if Z.shape[0] else A[i, j]
            dZ[i, j] = dA[i, j] * _df(z, A[i, j], act, dt)


def _opt2(a, like):
    return _EMPTY2[like.dtype] if a is None else a


@_jit_reassoc
def _all_finite(x):
    # x - x is 0 for a finite x and NaN otherwise; summed a block at a time and looked at
    # after each block (an early exit per value would not vectorise). Reassociation lets
    # LLVM vectorise the sum, whose value (0 or NaN) does not depend on the order.
    n = x.shape[0]
    zero = x.dtype.type(0)
    for lo in range(0, n, 4096):
        blk = x[lo:min(n, lo + 4096)]  # (a loop from 0: range(lo, hi) did not vectorise)
        s = zero
        for i in range(blk.shape[0]):
            s += blk[i] - blk[i]
        if s != zero:
            return False
    return True


def all_finite(X, n_threads=0):
    """Whether every value of the 1-D array ``X`` is finite."""
    return bool(_all_finite(X))


def activation_forward(Z, activation, A, n_threads=0):
    """A = f(Z) elementwise (row-wise for softmax). Z and A have the same shape."""
    _activation_forward(Z, int(activation), A)


def activation_backward(Z, A, dA, activation, dZ, n_threads=0):
    """dZ = dA * f'(Z) with f' taken from A (or from Z for softplus and gelu)."""
    _activation_backward(_opt2(Z, A), A, dA, int(activation), dZ)


def softmax(Z, A, n_threads=0):
    """Row-wise softmax with the row maximum subtracted first."""
    _softmax_rows(Z, A)


# --------------------------------------------------------------------------------------
# dense layer


@_jit
def _dense_forward(X, W, b, act, A, Z, has_z):
    if has_z:
        _mm_nn(X, W, Z)
        _bias_act(Z, b, A, act, True)
    else:
        _mm_nn(X, W, A)
        _bias_act(A, b, A, act, False)


@_jit
def _dense_backward_inplace(X, W, A, Z, dZ, act, l2, dW, db, dX, has_dx):
    """Backward of one layer with dZ holding dA on entry (overwritten with dZ)."""
    _act_grad_inplace(Z, A, dZ, act)
    _mm_tn(X, dZ, dW)
    if l2 != 0.0:
        c = dW.dtype.type(l2)
        k, m = dW.shape
        for p in range(k):
            for j in range(m):
                dW[p, j] = dW[p, j] + c * W[p, j]
    n, m = dZ.shape
    zero = db.dtype.type(0)
    for j in range(m):
        db[j] = zero
    for i in range(n):
        for j in range(m):
            db[j] += dZ[i, j]
    if has_dx:
        _mm_nt(dZ, W, dX)


@_jit
def _dense_backward(X, W, A, Z, dA, act, l2, dW, db, dX, has_dx):
    dZ = dA.copy()  # the caller's dA is an input: never modified
    _dense_backward_inplace(X, W, A, Z, dZ, act, l2, dW, db, dX, has_dx)


def dense_forward(X, W, b, activation, A, Z, n_threads=0):
    """A = f(X W + b); when Z is not None it receives the pre-activation X W + b."""
    with _blas_threads(n_threads, X.shape[0] * W.size):
        _dense_forward(X, W, b, int(activation), A, _opt2(Z, A), Z is not None)


def dense_backward(X, W, A, Z, dA, activation, l2, dW, db, dX, n_threads=0):
    """dZ = dA * f'(.); dW = X^T dZ + l2 W; db = sum_rows dZ; dX = dZ W^T unless None."""
    with _blas_threads(n_threads, X.shape[0] * W.size):
        _dense_backward(X, W, A, _opt2(Z, A), dA, int(activation), float(l2), dW, db,
                        _opt2(dX, A), dX is not None)


# --------------------------------------------------------------------------------------
# losses


@_jit
def _loss_gradient(P, Y, sw, has_sw, loss, delta, G):
    n, k = P.shape
    S = 0.0
    if has_sw:
        for i in range(n):
            S += np.float64(sw[i])
    else:
        S = np.float64(n)
    eps = np.float64(np.finfo(P.dtype).eps)
    total = 0.0
    for j in range(k):
        col = 0.0
        for i in range(n):
            s = np.float64(sw[i]) if has_sw else 1.0
            p = np.float64(P[i, j])
            y = np.float64(Y[i, j])
            r = p - y
            if loss == SQUARED_ERROR:
                per = 0.5 * r * r
                g = r
            elif loss == ABSOLUTE_ERROR:
                per = abs(r)
                g = np.sign(r)
            elif loss == HUBER:
                ar = abs(r)
                per = 0.5 * r * r if ar <= delta else delta * (ar - 0.5 * delta)
                g = min(max(r, -delta), delta)
            elif loss == BINARY_LOG_LOSS or loss == LOG_LOSS:
                pc = min(max(p, eps), 1.0 - eps)
                per = -(y * math.log(pc)) if y != 0.0 else -0.0
                if loss == BINARY_LOG_LOSS and y != 1.0:
                    per -= (1.0 - y) * math.log(1.0 - pc)
                g = r
            else:  # POISSON: half deviance with scikit-learn's constant term
                t = y * math.log(y / p) if y != 0.0 else 0.0
                per = t - y + p
                g = r
            col += s * per
            G[i, j] = G.dtype.type(s * g / S)
        total += col / S
    if loss == SQUARED_ERROR or loss == ABSOLUTE_ERROR or loss == HUBER:
        return total / k
    return total


def loss_gradient(P, Y, sample_weight, loss, huber_delta, G, n_threads=0):
    """Return the batch loss and write its gradient into G (see ``_codes`` for formulas)."""
    sw = _EMPTY[P.dtype] if sample_weight is None else sample_weight
    return float(_loss_gradient(P, Y, sw, sample_weight is not None, int(loss),
                                float(huber_delta), G))


# --------------------------------------------------------------------------------------
# optimizers (fused loops in the parameters' dtype, the reference's operation order)
#
# Like the compiled core's steps (optimizers.hpp: FlushSubnormals), these run with
# subnormal numbers flushed to zero: Adam's moments of weights whose gradient stays zero
# decay into the subnormal range, where every product costs a microcode assist. Only values
# below 1.2e-38 (float32) or 2.2e-308 (float64) differ from the reference.

_MACHINE = platform.machine().lower()
_X86 = _MACHINE in ("x86_64", "amd64", "i386", "i686")
_ARM64 = _MACHINE in ("aarch64", "arm64")


def _mxcsr_call(builder, name, slot):
    fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer()])
    fn = cgutils.get_or_insert_function(builder.module, fnty, name)
    builder.call(fn, [builder.bitcast(slot, ir.IntType(8).as_pointer())])


def _fpcr(builder, value=None):
    i64 = ir.IntType(64)
    if value is None:
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i64, []),
                                            "llvm.aarch64.get.fpcr")
        return builder.call(fn, [])
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i64]),
                                        "llvm.aarch64.set.fpcr")
    return builder.call(fn, [value])


@intrinsic
def _flush_subnormals(typingctx):
    """Sets flush-to-zero and subnormals-are-zero on this thread (x86 MXCSR bits 15 and 6,
    aarch64 FPCR.FZ); returns the previous mode for :func:`_restore_fp_mode`."""
    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        if _X86:
            i32 = ir.IntType(32)
            slot = cgutils.alloca_once(builder, i32)
            _mxcsr_call(builder, "llvm.x86.sse.stmxcsr", slot)
            old = builder.load(slot)
            builder.store(builder.or_(old, ir.Constant(i32, 0x8040)), slot)
            _mxcsr_call(builder, "llvm.x86.sse.ldmxcsr", slot)
            return builder.zext(old, i64)
        if _ARM64:
            old = _fpcr(builder)
            _fpcr(builder, builder.or_(old, ir.Constant(i64, 1 << 24)))
            return old
        return ir.Constant(i64, 0)
    return types.int64(), codegen


@intrinsic
def _restore_fp_mode(typingctx, mode):
    def codegen(context, builder, signature, args):
        if _X86:
            i32 = ir.IntType(32)
            slot = cgutils.alloca_once(builder, i32)
            builder.store(builder.trunc(args[0], i32), slot)
            _mxcsr_call(builder, "llvm.x86.sse.ldmxcsr", slot)
        elif _ARM64:
            _fpcr(builder, args[0])
        return context.get_dummy_value()
    return types.void(mode), codegen


@_jit
def _sgd_step(params, grads, velocity, lr, momentum, nesterov):
    mode = _flush_subnormals()
    dt = params.dtype
    mu = dt.type(momentum)
    eta = dt.type(lr)
    if nesterov:
        for i in range(params.shape[0]):
            g = grads[i]
            v = velocity[i] * mu - eta * g
            velocity[i] = v
            params[i] = params[i] + (mu * v - eta * g)
    else:
        for i in range(params.shape[0]):
            v = velocity[i] * mu - eta * grads[i]
            velocity[i] = v
            params[i] = params[i] + v
    _restore_fp_mode(mode)


@_jit
def _adagrad_step(params, grads, accum, lr, eps):
    mode = _flush_subnormals()
    dt = params.dtype
    eta = dt.type(lr)
    e = dt.type(eps)
    for i in range(params.shape[0]):
        g = grads[i]
        s = accum[i] + g * g
        accum[i] = s
        params[i] = params[i] - eta * g / (np.sqrt(s) + e)
    _restore_fp_mode(mode)


@_jit
def _rmsprop_step(params, grads, sq, lr, rho, eps):
    mode = _flush_subnormals()
    dt = params.dtype
    eta = dt.type(lr)
    r = dt.type(rho)
    r1 = dt.type(1.0 - rho)
    e = dt.type(eps)
    for i in range(params.shape[0]):
        g = grads[i]
        s = sq[i] * r + r1 * g * g
        sq[i] = s
        params[i] = params[i] - eta * g / (np.sqrt(s) + e)
    _restore_fp_mode(mode)


@_jit
def _adam_span(params, grads, m, v, b1, b2, c1, c2, e, lr_t, wd, c):
    """Adam over one span of parameters, its constants given (dtype values); wd: AdamW's
    decay lr * weight_decay (0: none); c: an L2 term c w added to each gradient as it is
    read (0: none; train_epoch's weights, see _adam_l2_sums). The conditions are the same
    for every i: LLVM takes them out of the loop, which it vectorises in each form."""
    use_wd = wd != 0
    use_c = c != 0
    for i in range(params.shape[0]):
        w = params[i]
        g = grads[i] + c * w if use_c else grads[i]
        p = w - wd * w if use_wd else w
        mi = m[i] * b1 + c1 * g
        vi = v[i] * b2 + c2 * g * g
        m[i] = mi
        v[i] = vi
        params[i] = p - lr_t * mi / (np.sqrt(vi) + e)


@_jit
def _adam_consts(dt, lr, beta1, beta2, eps, weight_decay, t):
    # math.pow: the C pow() that Python's float ** int uses, so lr_t has the reference's bits
    lr_t = dt.type(lr * np.sqrt(1.0 - math.pow(beta2, np.float64(t)))
                   / (1.0 - math.pow(beta1, np.float64(t))))
    return (dt.type(beta1), dt.type(beta2), dt.type(1.0 - beta1), dt.type(1.0 - beta2),
            dt.type(eps), lr_t, dt.type(lr * weight_decay))


@_jit
def _adam_step(params, grads, m, v, lr, beta1, beta2, eps, weight_decay, t):
    b1, b2, c1, c2, e, lr_t, wd = _adam_consts(params.dtype, lr, beta1, beta2, eps,
                                               weight_decay, t)
    mode = _flush_subnormals()
    _adam_span(params, grads, m, v, b1, b2, c1, c2, e, lr_t, wd, params.dtype.type(0))
    _restore_fp_mode(mode)


@_jit
def _optimizer_step(params, grads, state, optimizer, hyper, step):
    if optimizer == SGD or optimizer == NESTEROV:
        _sgd_step(params, grads, state[0], hyper[H_LR], hyper[H_MOMENTUM],
                  optimizer == NESTEROV)
    elif optimizer == ADAGRAD:
        _adagrad_step(params, grads, state[0], hyper[H_LR], hyper[H_EPS])
    elif optimizer == RMSPROP:
        _rmsprop_step(params, grads, state[0], hyper[H_LR], hyper[H_RHO], hyper[H_EPS])
    elif optimizer == ADAM or optimizer == ADAMW:
        step[0] += 1
        wd = hyper[H_WEIGHT_DECAY] if optimizer == ADAMW else 0.0
        _adam_step(params, grads, state[0], state[1], hyper[H_LR], hyper[H_BETA1],
                   hyper[H_BETA2], hyper[H_EPS], wd, step[0])


def sgd_step(params, grads, velocity, lr, momentum, nesterov, n_threads=0):
    """v = momentum v - lr g; p += (momentum v - lr g) if nesterov else v."""
    _sgd_step(params, grads, velocity, float(lr), float(momentum), bool(nesterov))


def adagrad_step(params, grads, accum, lr, eps, n_threads=0):
    """s += g^2; p -= lr g / (sqrt(s) + eps)."""
    _adagrad_step(params, grads, accum, float(lr), float(eps))


def rmsprop_step(params, grads, sq, lr, rho, eps, n_threads=0):
    """s = rho s + (1 - rho) g^2; p -= lr g / (sqrt(s) + eps)."""
    _rmsprop_step(params, grads, sq, float(lr), float(rho), float(eps))


def adam_step(params, grads, m, v, lr, beta1, beta2, eps, weight_decay, t, n_threads=0):
    """One Adam (AdamW when weight_decay > 0) step; ``t`` is the step number."""
    _adam_step(params, grads, m, v, float(lr), float(beta1), float(beta2), float(eps),
               float(weight_decay), int(t))


def optimizer_step(params, grads, state, optimizer, hyper, step, n_threads=0):
    """Apply one step of the optimizer ``optimizer`` (code) with the ``hyper`` vector."""
    if int(optimizer) not in C.OPTIMIZER_NAMES:
        raise ValueError(f"unknown optimizer code {optimizer}")
    _optimizer_step(params, grads, state, int(optimizer), hyper, step)


# --------------------------------------------------------------------------------------
# whole networks


@_jit
def _view2(buf, off, rows, cols):
    return buf[off:off + rows * cols].reshape((rows, cols))


@_jit
def _mlp_forward(X, params, layer_sizes, activations, out, workspace):
    n = X.shape[0]
    L = layer_sizes.shape[0] - 1
    half = workspace.shape[0] // 2
    pos = 0
    for i in range(L):
        fi = layer_sizes[i]
        fo = layer_sizes[i + 1]
        W = _view2(params, pos, fi, fo)
        b = params[pos + fi * fo:pos + fi * fo + fo]
        pos += fi * fo + fo
        # layer i writes ping-pong buffer i % 2 (the last layer writes out); X may be
        # read-only, so it is never unified with the buffers in one variable
        dst = out if i == L - 1 else _view2(workspace, (i % 2) * half, n, fo)
        if i == 0:
            _mm_nn(X, W, dst)
        else:
            _mm_nn(_view2(workspace, ((i - 1) % 2) * half, n, fi), W, dst)
        _bias_act(dst, b, dst, activations[i], False)


def mlp_forward(X, params, layer_sizes, activations, out, workspace, n_threads=0):
    """Forward pass of the whole network: out = f_L(... f_1(X W_1 + b_1) ...)."""
    with _blas_threads(n_threads, X.shape[0] * params.shape[0]):
        _mlp_forward(X, params, layer_sizes, activations, out, workspace)


@_jit_reassoc
def _sum_sq(x):
    """Sum of x^2 in float64, reassociated (vectorised): see _weight_sums."""
    s = 0.0
    for q in range(x.shape[0]):
        w = np.float64(x[q])
        s += w * w
    return s


# Weights per span of _adam_l2_sums: their new values are still in L1 for the sum.
_SUM_SPAN = 4096


@_jit
def _adam_l2_sums(params, grads, m, v, hyper, t, weight_decay, l2, woff, layer_sizes):
    """train_epoch's Adam step with the L2 term l2 w added to each weight's gradient as it is
    read, and the sum of the new weights' squares (the next batch's penalty) gathered a
    span at a time while they are in L1: the C++ core's folding (optimizers.hpp,
    WeightSums). A pass adding l2 W to each dW in the backward pass and one summing the
    weights took 18 + 11 us of a 267 us batch of fashion b32. g + c w is that pass's
    dW + c W: params and state get the same bits; the sum is reassociated like
    _weight_sums'. Returns the sum."""
    dt = params.dtype
    b1, b2, c1, c2, e, lr_t, wd = _adam_consts(dt, hyper[H_LR], hyper[H_BETA1],
                                               hyper[H_BETA2], hyper[H_EPS], weight_decay, t)
    c = dt.type(l2)
    zero = dt.type(0)
    mode = _flush_subnormals()
    sq = 0.0
    for i in range(layer_sizes.shape[0] - 1):
        lo = woff[i]
        mid = lo + layer_sizes[i] * layer_sizes[i + 1]
        hi = mid + layer_sizes[i + 1]
        for q0 in range(lo, mid, _SUM_SPAN):
            q1 = min(q0 + _SUM_SPAN, mid)
            _adam_span(params[q0:q1], grads[q0:q1], m[q0:q1], v[q0:q1], b1, b2, c1, c2, e,
                       lr_t, wd, c)
            sq += _sum_sq(params[q0:q1])
        _adam_span(params[mid:hi], grads[mid:hi], m[mid:hi], v[mid:hi], b1, b2, c1, c2, e,
                   lr_t, wd, zero)
    _restore_fp_mode(mode)
    return sq


@_jit_reassoc
def _weight_sums(params, woff, layer_sizes, want_abs):
    """Sums of w^2 and (when ``want_abs``) of |w| over the weights, not the biases, in
    float64: the loss's penalty terms. Reassociated, so that LLVM vectorises them: they only
    feed the reported loss, held to the reference by tolerance (the C++ backend sums them
    in SIMD lanes too). A sequential float64 chain over the 266k weights of a 784-300-100-10
    network cost some 270 us a batch, half of a batch-32 epoch."""
    sq = 0.0
    ab = 0.0
    for i in range(layer_sizes.shape[0] - 1):
        # a slice indexed from 0: over range(lo, hi) of the whole vector LLVM did not
        # vectorise (74 us against 11 us for 235200 float32 weights)
        x = params[woff[i]:woff[i] + layer_sizes[i] * layer_sizes[i + 1]]
        sq += _sum_sq(x)
        if want_abs:
            a = 0.0
            for q in range(x.shape[0]):
                a += abs(np.float64(x[q]))
            ab += a
    return sq, ab


@_jit
def _train_epoch(X, Y, sw, has_sw, order, batch_size, layer_sizes, activations, loss,
                 params, grads, state, optimizer, hyper, step, workspace, grad_norms,
                 has_norms, Xbits, expo, nonfinite, check_x):
    dt = X.dtype
    d = X.shape[1]
    k = Y.shape[1]
    L = layer_sizes.shape[0] - 1
    alpha = hyper[H_ALPHA]
    l1 = hyper[H_L1]
    delta = hyper[H_HUBER_DELTA]
    out_act = activations[L - 1]
    canonical = ((loss == BINARY_LOG_LOSS and out_act == LOGISTIC)
                 or (loss == LOG_LOSS and out_act == SOFTMAX)
                 or (loss == POISSON and out_act == EXP))
    out_back = IDENTITY if canonical else out_act
    bs = batch_size
    # workspace: Xb (bs, d) | Yb (bs, k) | swb (bs) | per layer: Z, A, dA, spare (bs, m)
    woff = np.empty(L, np.int64)   # W_i offset in params (b_i follows)
    loff = np.empty(L, np.int64)   # layer i's block in workspace
    pos = 0
    wpos = bs * (d + k + 1)
    for i in range(L):
        woff[i] = pos
        pos += layer_sizes[i] * layer_sizes[i + 1] + layer_sizes[i + 1]
        loff[i] = wpos
        wpos += 4 * bs * layer_sizes[i + 1]
    m_rows = order.shape[0]
    # Adam with alpha alone: the L2 term and the penalty's sum go into the step
    # (_adam_l2_sums); l1 and the gradient norms need the term in dW first
    fused = ((optimizer == ADAM or optimizer == ADAMW) and alpha != 0.0 and l1 == 0.0
             and not has_norms)
    wd = hyper[H_WEIGHT_DECAY] if optimizer == ADAMW else 0.0
    sums_current = False  # sq holds the current weights' sum (the last step gathered it)
    sq = 0.0
    total = 0.0
    for start in range(0, m_rows, bs):
        nb = min(bs, m_rows - start)
        Xb = _view2(workspace, 0, nb, d)
        Yb = _view2(workspace, bs * d, nb, k)
        swb = workspace[bs * (d + k):bs * (d + k) + nb]
        S = 0.0
        for r in range(nb):
            row = order[start + r]
            if check_x:
                # NaN and the infinities have every exponent bit set; an integer max
                # (unlike a float reduction) keeps the copy loop vectorized
                top = expo & 0
                for j in range(d):
                    Xb[r, j] = X[row, j]
                    top = max(top, Xbits[row, j] & expo)
                if top == expo:
                    nonfinite[0] = row
                    return total
            else:
                for j in range(d):
                    Xb[r, j] = X[row, j]
            for j in range(k):
                Yb[r, j] = Y[row, j]
            if has_sw:
                swb[r] = sw[row]
                S += np.float64(sw[row])
        if not has_sw:
            S = np.float64(nb)
        # forward
        src = Xb
        for i in range(L):
            fi = layer_sizes[i]
            fo = layer_sizes[i + 1]
            W = _view2(params, woff[i], fi, fo)
            b = params[woff[i] + fi * fo:woff[i] + fi * fo + fo]
            Zi = _view2(workspace, loff[i], nb, fo)
            Ai = _view2(workspace, loff[i] + bs * fo, nb, fo)
            _mm_nn(src, W, Zi)
            _bias_act(Zi, b, Ai, activations[i], True)
            src = Ai
        fo = layer_sizes[L]
        G = _view2(workspace, loff[L - 1] + 2 * bs * fo, nb, fo)
        value = _loss_gradient(src, Yb, swb, has_sw, loss, delta, G)
        if alpha != 0.0 or l1 != 0.0:
            ab = 0.0
            if not sums_current:
                sq, ab = _weight_sums(params, woff, layer_sizes, l1 != 0.0)
            if alpha != 0.0:
                value += 0.5 * alpha * sq / S
            if l1 != 0.0:
                value += l1 * ab / S
        total += value * nb
        # backward; dA of layer i lives in its block, dX of layer i is dA of layer i - 1
        l2 = alpha / S
        l2_back = 0.0 if fused else l2
        c1 = dt.type(l1 / S)
        zero = dt.type(0)
        for i in range(L - 1, -1, -1):
            fi = layer_sizes[i]
            fo = layer_sizes[i + 1]
            W = _view2(params, woff[i], fi, fo)
            dW = _view2(grads, woff[i], fi, fo)
            db = grads[woff[i] + fi * fo:woff[i] + fi * fo + fo]
            Zi = _view2(workspace, loff[i], nb, fo)
            Ai = _view2(workspace, loff[i] + bs * fo, nb, fo)
            dAi = _view2(workspace, loff[i] + 2 * bs * fo, nb, fo)
            act = out_back if i == L - 1 else activations[i]
            if i > 0:
                Xi = _view2(workspace, loff[i - 1] + bs * fi, nb, fi)
                dX = _view2(workspace, loff[i - 1] + 2 * bs * fi, nb, fi)
            else:
                Xi = Xb
                dX = Xb  # unused
            _dense_backward_inplace(Xi, W, Ai, Zi, dAi, act, l2_back, dW, db, dX, i > 0)
            if l1 != 0.0 or has_norms:
                acc = 0.0
                for p in range(fi):
                    for j in range(fo):
                        g = dW[p, j]
                        if l1 != 0.0:
                            w = W[p, j]
                            sg = (dt.type(1) if w > zero
                                  else (-dt.type(1) if w < zero else w * zero))
                            g = g + c1 * sg
                            dW[p, j] = g
                        acc += np.float64(g) * np.float64(g)
                if has_norms:
                    grad_norms[i] += np.sqrt(acc)
        if fused:
            step[0] += 1
            sq = _adam_l2_sums(params, grads, state[0], state[1], hyper, step[0], wd, l2,
                               woff, layer_sizes)
            sums_current = True
        else:
            _optimizer_step(params, grads, state, optimizer, hyper, step)
    return total


def train_epoch(X, Y, sample_weight, order, batch_size, layer_sizes, activations, loss,
                params, grads, state, optimizer, hyper, step, workspace, grad_norms,
                n_threads=0, nonfinite=None, epoch_rows=0, epoch_totals=None):
    """One epoch of minibatch training, rows visited in ``order`` (see the reference)."""
    if epoch_rows:  # epoch by epoch (the compiled loop runs one)
        return _epochs_one_by_one(
            lambda part: train_epoch(X, Y, sample_weight, part, batch_size, layer_sizes,
                                     activations, loss, params, grads, state, optimizer,
                                     hyper, step, workspace, grad_norms, n_threads,
                                     nonfinite),
            order, epoch_rows, epoch_totals, nonfinite)
    sw = _EMPTY[X.dtype] if sample_weight is None else sample_weight
    gn = _EMPTY[np.dtype(np.float64)] if grad_norms is None else grad_norms
    f32 = X.dtype == np.float32
    # X's bits, for the finiteness test of the gather (X is C-contiguous)
    Xbits = X.view(np.int32 if f32 else np.int64)
    expo = np.int32(0x7F800000) if f32 else np.int64(0x7FF0000000000000)
    nf = _EMPTY_I64 if nonfinite is None else nonfinite
    if nonfinite is not None:
        nonfinite[0] = -1
    with _blas_threads(n_threads, int(batch_size) * params.shape[0]):
        return float(_train_epoch(X, Y, sw, sample_weight is not None, order,
                                  int(batch_size), layer_sizes, activations, int(loss),
                                  params, grads, state, int(optimizer), hyper, step,
                                  workspace, gn, grad_norms is not None, Xbits, expo, nf,
                                  nonfinite is not None))


# --------------------------------------------------------------------------------------
# perceptrons


@_jit
def _perceptron_epoch(X, Y, labels, onehot, order, W, b, eta, step):
    # The C++ kernel's arithmetic: W transposed and padded to whole chunks of 8 features,
    # each score the fold ((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7)) of 8 partial
    # sums by feature index mod 8, and only the wrong outputs updated: every backend gives
    # the same bits. (Unsigned indices spare numba's negative-index fix-ups in the loops.)
    d = X.shape[1]
    k = W.shape[1]
    dt = X.dtype
    e_eta = dt.type(eta)
    zero = dt.type(0)
    one = dt.type(1)
    lo = zero if step == HEAVISIDE else -one
    nc = (d + 7) // 8
    dp = nc * 8
    Wt = np.zeros(k * dp, dt)
    for j in range(d):
        for c in range(k):
            Wt[c * dp + j] = W[j, c]
    bb = b.copy()
    xb = np.zeros(dp, dt)
    g = np.empty(k, dt)
    u1 = np.uint64(1)
    mistakes = 0
    for r in order:
        for j in range(d):
            xb[j] = X[r, j]
        wrong = False
        finite = True
        for c in range(k):
            w0 = np.uint64(c * dp)
            s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = zero
            for qq in range(nc):
                q = np.uint64(qq * 8)
                w = w0 + q
                s0 += xb[q] * Wt[w]
                s1 += xb[q + u1] * Wt[w + u1]
                s2 += xb[q + np.uint64(2)] * Wt[w + np.uint64(2)]
                s3 += xb[q + np.uint64(3)] * Wt[w + np.uint64(3)]
                s4 += xb[q + np.uint64(4)] * Wt[w + np.uint64(4)]
                s5 += xb[q + np.uint64(5)] * Wt[w + np.uint64(5)]
                s6 += xb[q + np.uint64(6)] * Wt[w + np.uint64(6)]
                s7 += xb[q + np.uint64(7)] * Wt[w + np.uint64(7)]
            z = (((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7))) + bb[c]
            if z - z != zero:
                finite = False
            if step == HEAVISIDE:
                yhat = one if z >= zero else zero
            else:
                yhat = one if z > zero else (-one if z < zero else zero)
            if onehot:
                yc = one if labels[r] == c else lo
            else:
                yc = Y[r, c]
            e = yc - yhat
            g[c] = e_eta * e
            if e != zero:
                wrong = True
        if not finite or k == 0:  # (without outputs no score shows a non-finite row)
            for j in range(d):
                if not np.isfinite(X[r, j]):
                    return -1
        if wrong:
            mistakes += 1
            for c in range(k):
                gc = g[c]
                if gc != zero:
                    w0 = np.uint64(c * dp)
                    for jj in range(dp):
                        j = np.uint64(jj)
                        Wt[w0 + j] = Wt[w0 + j] + xb[j] * gc
            for c in range(k):
                bb[c] = bb[c] + g[c]
    for j in range(d):
        for c in range(k):
            W[j, c] = Wt[c * dp + j]
    for c in range(k):
        b[c] = bb[c]
    return mistakes


def perceptron_epoch(X, Y, order, W, b, eta, step, n_threads=0):
    """One online epoch of Rosenblatt's rule; returns the number of rows with a mistake
    (-1, with W and b unchanged, when a visited row of X is not finite)."""
    if Y.ndim == 1:
        return int(_perceptron_epoch(X, _EMPTY2[X.dtype], Y, True, order, W, b, float(eta),
                                     int(step)))
    return int(_perceptron_epoch(X, Y, _EMPTY_I64, False, order, W, b, float(eta), int(step)))


@_jit
def _xorshift_shuffle(order, seed):
    n = order.shape[0]
    s = seed & 0xFFFFFFFF
    for i in range(n - 1):
        if s == 0:
            s = 1
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        j = i + (s % 2147483648) % (n - i)
        t = order[i]
        order[i] = order[j]
        order[j] = t


def xorshift_shuffle(order, seed, n_threads=0):
    """scikit-learn's SequentialDataset shuffle applied in place to ``order``."""
    _xorshift_shuffle(order, int(seed) & 0xFFFFFFFF)


@_jit_reassoc
def _dot_screen(w, X, k):
    """w . X[k] summed in any order, and the sum of |w_j X[k, j]| (its error scale)."""
    acc = 0.0
    mag = 0.0
    for j in range(X.shape[1]):
        t = np.float64(w[j] * X[k, j])
        acc += t
        mag += abs(t)
    return acc, mag


@_jit
def _dot_exact(w, X, k):
    """scikit-learn's p without b: products in X's dtype added one by one in float64."""
    acc = 0.0
    for j in range(X.shape[1]):
        acc += w[j] * X[k, j]
    return np.float64(X.dtype.type(acc))


@_jit
def _perceptron_epoch_sklearn(X, y, order, w, b, eta0, sw, has_sw, class_weight,
                              fit_intercept):
    dt = X.dtype
    d = X.shape[1]
    # Any summation order differs from the sequential one by at most ~d eps64 sum|t|; the
    # rounding to float32 adds one float32 ulp. Outside that margin the vectorised sum has
    # the sign of scikit-learn's; inside it, and on every mistake (whose loss uses p), the
    # exact sequential sum is recomputed, so the results are the reference's bit for bit.
    e64 = 2.220446049250313e-16
    e32 = 1.1920928955078125e-07 if X.itemsize == 4 else 0.0
    rel = (2.0 * d + 4.0) * e64 + 4.0 * e32
    sumloss = 0.0
    mistakes = 0
    for k in order:
        yk = y[k]
        acc, mag = _dot_screen(w, X, k)
        p = np.float64(dt.type(acc)) + b[0]
        if abs(p) <= rel * mag + 4.0 * e64 * abs(b[0]) or p * yk <= 0.0:
            p = _dot_exact(w, X, k) + b[0]
        if p - p != 0.0:  # NaN or infinity: from the row (report it) or from the weights
            for j in range(d):
                if not np.isfinite(X[k, j]):
                    return sumloss, -1
        z = p * yk
        if z <= 0.0:
            sumloss -= z
            mistakes += 1
            s = sw[k] if has_sw else 1.0
            cw = class_weight[1] if yk > 0 else class_weight[0]
            # scikit-learn holds class and sample weight in X's dtype, and its
            # WeightVector.add forms x_j * u and the sum in double, rounding once
            u = (eta0 * yk) * np.float64(dt.type(dt.type(cw) * dt.type(s)))
            if u != 0.0:
                c = np.float64(dt.type(u))
                for j in range(d):
                    w[j] = dt.type(np.float64(w[j]) + np.float64(X[k, j]) * c)
                if fit_intercept:
                    b[0] += u
    return sumloss, mistakes


def perceptron_epoch_sklearn(X, y, order, w, b, eta0, sample_weight, class_weight,
                             fit_intercept, n_threads=0):
    """One epoch of scikit-learn's Perceptron for one class; returns (sumloss, mistakes)."""
    sw = _EMPTY[np.dtype(np.float64)] if sample_weight is None else sample_weight
    s, m = _perceptron_epoch_sklearn(X, y, order, w, b, float(eta0), sw,
                                     sample_weight is not None, class_weight,
                                     bool(fit_intercept))
    return float(s), int(m)


@_jit
def _perceptron_fit_epochs(X, y, w, bb, order, seed, eta0, sw, has_sw, class_weight,
                           fit_intercept, shuffle, tol, n_iter_no_change, state, epochs):
    """Up to ``epochs`` more epochs of one problem, resumed from ``state``.

    state (float64): [epochs run, best loss, epochs without improvement, finished]; order
    is the row order of the previous epoch (scikit-learn shuffles it again in place with
    the same seed every epoch). finished: 1 stopped by the rule, -1 met a non-finite row.
    """
    n = X.shape[0]
    for _ in range(epochs):
        if shuffle:
            _xorshift_shuffle(order, seed)
        sumloss, m = _perceptron_epoch_sklearn(X, y, order, w, bb, eta0, sw, has_sw,
                                               class_weight, fit_intercept)
        state[0] += 1.0
        if m < 0:  # a row of X holds a NaN or an infinity
            state[3] = -1.0
            return
        obj = sumloss / n
        if tol > -np.inf:
            if obj > state[1] - tol:
                state[2] += 1.0
            else:
                state[2] = 0.0
            state[1] = min(state[1], obj)
            if state[2] >= n_iter_no_change:
                state[3] = 1.0
                return


def perceptron_fit_sklearn(X, Y, W, B, seeds, eta0, sample_weight, class_weight,
                           fit_intercept, shuffle, max_iter, tol, n_iter_no_change, n_iter,
                           n_threads=0):
    """scikit-learn's whole Perceptron fit for K one-vs-rest problems.

    Classes are independent, so with several threads each Python thread runs a contiguous
    range of classes in the compiled (GIL-free) loop; the result does not depend on the
    thread count. The compiled loop runs a few epochs per call (some hundredths of a
    second of work), so that Ctrl-C stops the fit soon: n_iter then holds the epochs each
    class completed.
    """
    if Y.ndim == 1:  # labels: problem c has +1 where Y == c
        Y = np.where(Y[None, :] == np.arange(W.shape[0])[:, None], 1.0, -1.0)
    sw = _EMPTY[np.dtype(np.float64)] if sample_weight is None else sample_weight
    K = Y.shape[0]
    n = X.shape[0]
    # epochs per call: some 0.03 s of work, at most (a row costs ~15 ns a feature plus
    # ~16 features' worth of its own when the model is often wrong); an epoch is never
    # split, as its loss must be summed in scikit-learn's order
    chunk = max(1, int(2e6 // (n * (X.shape[1] + 16))))
    stop = threading.Event()

    def run(c0, c1):
        order = np.empty(n, np.int64)
        for c in range(c0, c1):
            order[:] = np.arange(n)
            state = np.array([0.0, np.inf, 0.0, 0.0])
            try:
                while state[3] == 0.0 and state[0] < max_iter and not stop.is_set():
                    _perceptron_fit_epochs(
                        X, Y[c], W[c], B[c:c + 1], order, int(seeds[c]) & 0xFFFFFFFF,
                        float(eta0), sw, sample_weight is not None, class_weight[c],
                        bool(fit_intercept), bool(shuffle), float(tol), int(n_iter_no_change),
                        state, int(min(chunk, max_iter - state[0])))
            finally:
                n_iter[c] = -1 if state[3] < 0 else int(state[0])
            if stop.is_set():
                return

    threads = int(n_threads) if n_threads else (os.cpu_count() or 1)
    threads = max(1, min(threads, K))
    if threads == 1 or n * X.shape[1] * K < 100_000:
        run(0, K)
        return
    bounds = np.linspace(0, K, threads + 1).astype(np.int64)
    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(run, int(lo), int(hi)) for lo, hi in itertools.pairwise(bounds)]
        try:
            # wait in short slices: a Ctrl-C is handled when this thread runs Python code
            # (a blocking wait can outlast it), and then the workers stop after their chunk
            pending = futures
            while pending:
                pending = wait(pending, timeout=0.05).not_done
            for f in futures:
                f.result()
        except BaseException:
            stop.set()
            raise


# --------------------------------------------------------------------------------------
# batch normalisation: row-major sweeps that sum each column in row order (the order of the
# compiled core's column-block vectors), accumulating in the outputs themselves


@_jit
def _batchnorm_forward(Z, gamma, beta, eps, Y, Xhat, mean, invstd):
    n, k = Z.shape
    dt = Z.dtype.type
    nf = dt(n)
    e = dt(eps)
    for j in range(k):
        mean[j] = dt(0)
        invstd[j] = dt(0)
    for i in range(n):
        for j in range(k):
            mean[j] += Z[i, j]
    for j in range(k):
        mean[j] = mean[j] / nf
    for i in range(n):
        for j in range(k):
            d = Z[i, j] - mean[j]
            invstd[j] += d * d
    for j in range(k):
        invstd[j] = dt(1) / np.sqrt(invstd[j] / nf + e)
    for i in range(n):
        for j in range(k):
            xh = (Z[i, j] - mean[j]) * invstd[j]
            Xhat[i, j] = xh
            Y[i, j] = xh * gamma[j] + beta[j]


@_jit
def _batchnorm_backward(dY, Xhat, gamma, invstd, dZ, dgamma, dbeta):
    n, k = dY.shape
    dt = dY.dtype.type
    nf = dt(n)
    for j in range(k):
        dbeta[j] = dt(0)
        dgamma[j] = dt(0)
    for i in range(n):
        for j in range(k):
            dbeta[j] += dY[i, j]
            dgamma[j] += dY[i, j] * Xhat[i, j]
    for i in range(n):
        for j in range(k):
            c = gamma[j] * invstd[j] / nf
            dZ[i, j] = (dY[i, j] * nf - dbeta[j] - Xhat[i, j] * dgamma[j]) * c


@_jit
def _batchnorm_inference(Z, gamma, beta, running_mean, running_var, eps, Y):
    n, k = Z.shape
    e = Z.dtype.type(eps)
    for i in range(n):
        for j in range(k):
            scale = gamma[j] / np.sqrt(running_var[j] + e)
            Y[i, j] = (Z[i, j] - running_mean[j]) * scale + beta[j]


def batchnorm_forward(Z, gamma, beta, eps, Y, Xhat, mean, invstd, n_threads=0):
    """Training-mode batch normalisation (see the reference); writes Y, Xhat, mean, invstd."""
    _batchnorm_forward(Z, gamma, beta, float(eps), Y, Xhat, mean, invstd)


def batchnorm_backward(dY, Xhat, gamma, invstd, dZ, dgamma, dbeta, n_threads=0):
    """Backward of batchnorm_forward; writes dZ, dgamma, dbeta."""
    _batchnorm_backward(dY, Xhat, gamma, invstd, dZ, dgamma, dbeta)


def batchnorm_inference(Z, gamma, beta, running_mean, running_var, eps, Y, n_threads=0):
    """Y = (Z - running_mean) * gamma / sqrt(running_var + eps) + beta."""
    _batchnorm_inference(Z, gamma, beta, running_mean, running_var, float(eps), Y)
