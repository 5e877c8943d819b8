"""The one dispatcher: backend registry, argument validation and allocation.

Every kernel has one name across the three backends (``"cpp"``, ``"numba"``, ``"numpy"``).
The functions here check their arguments once - shapes, dtypes, contiguity, writability -
and raise a ``TypeError``/``ValueError`` that names the argument before any native code
runs; they allocate the outputs and then call the backend, which only computes.

Backend choice: the ``backend`` argument, else the ``ROSENBLATT_BACKEND`` environment
variable, else the best available backend (cpp, then numba, then numpy). Forcing an
unavailable backend raises ``RuntimeError`` saying why; there is no silent fallback.
Importing this module imports neither numba nor the compiled core.
"""

import functools
import importlib
import importlib.util
import itertools
import os
import threading

import numpy as np

from . import _codes as C
from ._kernels_ref import mlp_workspace_size, train_workspace_size
from ._kernels_ref import param_offsets as _ref_param_offsets

__all__ = [
    "BACKENDS",
    "NonFiniteRowError",
    "Trainer",
    "activation_backward",
    "activation_code",
    "activation_forward",
    "adagrad_step",
    "adam_step",
    "aligned_zeros",
    "all_finite",
    "available_backends",
    "batchnorm_backward",
    "batchnorm_fold",
    "batchnorm_forward",
    "batchnorm_inference",
    "check_batch_weights",
    "check_threads",
    "dense_backward",
    "dense_forward",
    "forward_blocks",
    "get_backend",
    "loss_code",
    "loss_gradient",
    "mlp_block_rows",
    "mlp_forward",
    "optimizer_code",
    "param_offsets",
    "perceptron_epoch",
    "perceptron_epoch_sklearn",
    "perceptron_fit_sklearn",
    "resolve_backend",
    "rmsprop_step",
    "sgd_step",
    "softmax",
    "xorshift_shuffle",
]

BACKENDS = ("cpp", "numba", "numpy")
_MODULES = {"cpp": "._kernels_cpp", "numba": "._kernels_numba", "numpy": "._kernels_ref"}
_loaded = {}
_errors = {}
_lock = threading.Lock()
if hasattr(os, "register_at_fork"):
    # a child forked while another thread of the parent held the lock would wait on it
    # forever: the child starts with a fresh one (the registry itself is consistent, as
    # entries are added whole)
    def _new_lock():
        global _lock
        _lock = threading.Lock()

    os.register_at_fork(after_in_child=_new_lock)
# for the fast paths (see "fast paths" below): loaded backend modules by name, and the
# name the default ("auto", no ROSENBLATT_BACKEND) resolved to
_FAST_MODULES = {}
_DEFAULT = []
# loaded backend modules whose per-layer functions check every array argument themselves
# before they compute (the compiled core; see "fast paths")
_SELF_CHECKING = set()



# --------------------------------------------------------------------------------------
# backend registry


def _probe(name):
    """Import backend ``name`` once; remember the module or the reason it is missing."""
    mod = _loaded.get(name)
    if mod is not None:  # loaded: no lock (the common case, on every fit)
        return mod
    with _lock:
        if name in _loaded or name in _errors:
            return _loaded.get(name)
        try:
            if name == "numba" and not numba_installed():
                raise ImportError("numba is not installed (pip install numba)")
            mod = importlib.import_module(_MODULES[name], __package__)
            _loaded[name] = mod
            _FAST_MODULES[name] = mod
            if name == "cpp":
                _SELF_CHECKING.add(mod)
        except Exception as exc:  # noqa: BLE001 - any failure makes the backend unavailable; the reason is kept for the error
            _errors[name] = f"{type(exc).__name__}: {exc}"
        return _loaded.get(name)


@functools.cache
def numba_installed():
    """Whether numba can be imported, without importing it.

    Looked up once per process: ``importlib.util.find_spec`` searches ``sys.path`` on disk
    (about 0.4 ms), and every ``fit`` with ``backend="auto"`` asks.
    """
    return importlib.util.find_spec("numba") is not None


def _installed(name):
    """Cheap availability test that imports nothing heavy (numba stays unimported)."""
    if name == "numpy":
        return True
    if name == "numba":
        return numba_installed()
    return _probe(name) is not None


def available_backends():
    """Return the names of the backends usable here, best first.

    Returns
    -------
    list of str
        A subset of ``("cpp", "numba", "numpy")``; ``"numpy"`` is always present.
    """
    return [b for b in BACKENDS if _installed(b)]


def resolve_backend(backend=None):
    """Return the backend name to use for ``backend`` (``None``/``"auto"`` = default).

    Parameters
    ----------
    backend : {"auto", "cpp", "numba", "numpy"} or None
        ``None`` or ``"auto"`` picks ``ROSENBLATT_BACKEND`` when set, else the best
        available backend.

    Raises
    ------
    ValueError
        For an unknown name.
    RuntimeError
        When the requested backend is not available here, with the reason.
    """
    if backend is None or backend == "auto":
        env = os.environ.get("ROSENBLATT_BACKEND", "").strip()
        if env and env != "auto":
            name = env
            source = "ROSENBLATT_BACKEND"
        else:
            best = available_backends()[0]
            _DEFAULT[:] = [best]
            return best
    else:
        name = backend
        source = "backend"
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(
            f"{source} must be one of 'auto', 'cpp', 'numba', 'numpy'; got {name!r}")
    if _probe(name) is None:
        raise RuntimeError(
            f"{source}={name!r} was requested but that backend is unavailable: "
            f"{_errors.get(name, 'unknown reason')}")
    return name


def get_backend(backend=None):
    """Return the backend module for ``backend`` (see :func:`resolve_backend`)."""
    name = resolve_backend(backend)
    return _probe(name)


def _call(backend, kernel, *args):
    """Run ``kernel`` of the resolved backend.

    The arguments are evaluated - and so validated - before this runs, so a bad argument
    raises before the backend (numba, the compiled core) is even imported.
    """
    return getattr(get_backend(backend), kernel)(*args)


# --------------------------------------------------------------------------------------
# validation helpers (the only place that checks arguments)


_NAMES = {id(C.ACTIVATIONS): C.ACTIVATION_NAMES, id(C.LOSSES): C.LOSS_NAMES,
          id(C.OPTIMIZERS): C.OPTIMIZER_NAMES}


def _code(table, kind, value, allowed=None):
    """Integer code for a name (or an already valid code) from one of the ``_codes`` tables."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        name = _NAMES[id(table)].get(int(value))
        if name is None:
            raise ValueError(f"{kind} code {value} is unknown")
        value = name
    if not isinstance(value, str) or value not in table:
        raise ValueError(f"{kind} must be one of {sorted(table)}; got {value!r}")
    code = table[value]
    if allowed is not None and code not in allowed:
        ok = [k for k, v in table.items() if v in allowed]
        raise ValueError(f"{kind} {value!r} is not allowed here; expected one of {ok}")
    return code


def activation_code(name, *, allowed=None):
    """Integer code of an activation name (``"relu"``, ...); ValueError if unknown."""
    return _code(C.ACTIVATIONS, "activation", name, allowed)


def loss_code(name):
    """Integer code of a loss name; ValueError if unknown."""
    return _code(C.LOSSES, "loss", name)


def optimizer_code(name):
    """Integer code of an optimizer name; ValueError if unknown."""
    return _code(C.OPTIMIZERS, "optimizer", name)


def _float_dtype(name, a):
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray; got {type(a).__name__}")
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must have dtype float32 or float64; got {a.dtype}")
    return a.dtype


def _arr(name, a, ndim, dtype, shape=None, writable=False, optional=False):
    """Check one array argument; ``shape`` entries of None are free."""
    if a is None:
        if optional:
            return None
        raise TypeError(f"{name} is required; got None")
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray; got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{name} must have dtype {np.dtype(dtype)}; got {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D; got shape {a.shape}")
    if shape is not None:
        for axis, (want, got) in enumerate(zip(shape, a.shape)):
            if want is not None and want != got:
                expect = tuple("*" if s is None else s for s in shape)
                raise ValueError(
                    f"{name} must have shape {expect}; got {a.shape} (axis {axis})")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous; got a strided view "
                         "(use numpy.ascontiguousarray)")
    if not a.flags.aligned:
        raise ValueError(f"{name} must be aligned to its dtype; got data at an odd address "
                         "(use numpy.require(a, requirements='CA'))")
    if writable and not a.flags.writeable:
        raise ValueError(f"{name} is written in place but is read-only")
    return a


_MAX_THREADS = 2**31 - 1


def check_threads(n_threads):
    """``n_threads`` as every backend takes it: 0 for the library default (None).

    Parameters
    ----------
    n_threads : int >= 0 or None

    Returns
    -------
    int
        At most what a C int holds: more threads than that mean all the pool has.
    """
    if n_threads is None:
        return 0
    if isinstance(n_threads, bool) or not isinstance(n_threads, (int, np.integer)):
        raise TypeError(f"n_threads must be an int or None; got {type(n_threads).__name__}")
    if n_threads < 0:
        raise ValueError(f"n_threads must be >= 0 (0 = library default); got {n_threads}")
    return min(int(n_threads), _MAX_THREADS)  # the pool stops at 64 anyway


def _finite_scalar(name, value, *, low=None, low_open=False):
    if isinstance(value, (str, bytes)):  # float("0.1") would parse it
        raise TypeError(f"{name} must be a real number; got {type(value).__name__}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__}") from None
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite; got {value!r}")
    if low is not None and (v < low or (low_open and v == low)):
        cmp = ">" if low_open else ">="
        raise ValueError(f"{name} must be {cmp} {low}; got {value!r}")
    return v


def _separate(name, a, **inputs):
    """Refuse an array written in place that shares memory with an input read meanwhile.

    A product reads its inputs while it writes its output, so an output over an input
    would be read half overwritten. (For the C-contiguous arrays checked here, overlapping
    bounds are overlapping memory.)
    """
    for arg, x in inputs.items():
        if x is not None and np.may_share_memory(a, x):
            raise ValueError(f"{name} must not share memory with {arg}: the kernel reads "
                             f"{arg} while it writes {name}; pass a separate array")
    return a


def _same_memory(a, b):
    """Whether two arrays are views of exactly the same elements (same start, shape, strides)."""
    return (a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
            and a.shape == b.shape and a.strides == b.strides)


def _separate_or_same(name, a, **inputs):
    """:func:`_separate` for elementwise kernels: an output may also be one of the inputs
    exactly (in place: element i is read before it is written), never a partial overlap."""
    for arg, x in inputs.items():
        if x is not None and np.may_share_memory(a, x) and not _same_memory(a, x):
            raise ValueError(f"{name} must not partly overlap {arg}: pass {arg} itself (in "
                             f"place) or a separate array")
    return a


def _all_apart(**arrays):
    """Refuse any two of ``arrays`` (kernel arguments, some written in place) sharing memory."""
    items = [(k, v) for k, v in arrays.items() if v is not None]
    for i, (na, a) in enumerate(items):
        for nb, b in items[i + 1:]:
            if np.may_share_memory(a, b):
                raise ValueError(f"{na} and {nb} must not share memory: the kernel writes one "
                                 "while it reads the other; pass separate arrays")


# Vector width of the widest compiled ISA (AVX-512) in bytes.
_ALIGN = 64


def aligned_zeros(shape, dtype):
    """Zeros whose data start on a 64-byte boundary.

    NumPy's large arrays start 16 bytes past one. The compiled kernels' 64-byte vectors
    then span two cache lines at every load and store: an Adam step over 266610 float32
    values took twice as long (100 us against 47 us on one core, AVX-512) on such arrays.
    The trainers allocate their parameter-sized vectors with this.

    Parameters
    ----------
    shape : int or tuple of int
    dtype : dtype

    Returns
    -------
    ndarray
        C-contiguous and writable, a view into a slightly larger buffer.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    buf = np.zeros(nbytes + _ALIGN, dtype=np.uint8)
    start = -buf.ctypes.data % _ALIGN
    return buf[start:start + nbytes].view(dtype).reshape(shape)


def _out(name, out, shape, dtype, *, in_place_ok=False, **inputs):
    """The output array: a new one, or ``out`` checked (shape, dtype, writable, and apart
    from ``inputs``; exactly one of them when ``in_place_ok``, for elementwise kernels)."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    _arr(name, out, len(shape), dtype, shape, writable=True)
    return (_separate_or_same if in_place_ok else _separate)(name, out, **inputs)


# --------------------------------------------------------------------------------------
# input checks


def all_finite(X, *, backend=None):
    """Whether every value of ``X`` is finite (no NaN, no infinity).

    The estimators' validation of a training set: numpy's ``np.isfinite(X).all()``
    writes a boolean temporary as large as X and reads it again; the compiled core reads
    X once.

    Parameters
    ----------
    X : ndarray of float32 or float64
        Any shape. A C-contiguous array is read in place; another layout is checked by
        NumPy.
    backend : str, optional
        Backend name; see :func:`resolve_backend`.

    Returns
    -------
    bool
    """
    dt = _float_dtype("X", X)
    if not (X.flags.c_contiguous and X.flags.aligned) or X.dtype is not np.dtype(dt.type):
        return bool(np.isfinite(X).all())
    return bool(_call(backend, "all_finite", X.reshape(-1), 0))


# --------------------------------------------------------------------------------------
# activations


def activation_forward(Z, activation, *, out=None, backend=None, n_threads=None):
    """Apply an activation elementwise (softmax: row-wise).

    Parameters
    ----------
    Z : ndarray of float32 or float64, 2-D, C-contiguous
        Pre-activations.
    activation : str
        One of the names in ``rosenblatt._codes.ACTIVATIONS``.
    out : ndarray, optional
        Preallocated output of Z's shape and dtype.
    backend : str, optional
        Backend name; see :func:`resolve_backend`.
    n_threads : int, optional
        Threads for the compiled core (0 or None: library default).

    Returns
    -------
    ndarray
        ``f(Z)``.
    """
    dt = _float_dtype("Z", Z)
    _arr("Z", Z, 2, dt)
    act = activation_code(activation)
    out = _out("out", out, Z.shape, dt, in_place_ok=True, Z=Z)
    _call(backend, "activation_forward", Z, act, out, check_threads(n_threads))
    return out


def activation_backward(Z, A, dA, activation, *, out=None, backend=None, n_threads=None):
    """Return ``dA * f'(.)`` for an elementwise activation.

    ``A = f(Z)`` is the saved forward output; ``Z`` is needed only for softplus and gelu
    (pass None otherwise). Step functions have no useful gradient and are rejected.
    """
    dt = _float_dtype("A", A)
    _arr("A", A, 2, dt)
    act = activation_code(activation)
    _check_differentiable(act)
    _arr("dA", dA, 2, dt, A.shape)
    _arr("Z", Z, 2, dt, A.shape, optional=act not in C.NEEDS_Z)
    out = _out("out", out, A.shape, dt, in_place_ok=True, Z=Z, A=A, dA=dA)
    _call(backend, "activation_backward", Z, A, dA, act, out, check_threads(n_threads))
    return out


def _check_differentiable(act):
    if act in C.STEPS:
        raise ValueError(
            f"activation {C.ACTIVATION_NAMES[act]!r} is a step function: it is forward-only "
            "(its derivative is zero almost everywhere, so it cannot be trained by "
            "backpropagation); use logistic, tanh or relu to train")
    if act == C.SOFTMAX:
        raise ValueError("softmax has no elementwise derivative; pair it with log_loss, "
                         "whose gradient w.r.t. the pre-activation is P - Y")


def softmax(Z, *, out=None, backend=None, n_threads=None):
    """Row-wise softmax (row maximum subtracted first) of a 2-D float array."""
    return activation_forward(Z, "softmax", out=out, backend=backend, n_threads=n_threads)


# --------------------------------------------------------------------------------------
# fast paths
#
# A tiny layer (10x2 @ 2x8) computes in about 0.1 us, while the checks above cost several
# microseconds (helper calls with keyword arguments, dtype comparisons, backend lookup).
# The per-layer kernels therefore try the common case first with the cheapest tests Python
# has: exact ndarray type, dtype identity with the builtin float32/float64, shape tuples,
# the contiguity and writability flags, an activation name, None or an int n_threads and a
# backend module loaded already. When any of them fails - every bad argument among others -
# the call takes the general path, which checks everything again and raises its usual
# error; so the fast path changes no message and accepts nothing the general path rejects.
#
# The compiled core checks its arguments natively before computing: dtype, dimensions,
# shapes, contiguity, alignment, writability, and outputs apart from inputs (module.cpp),
# in a fraction of the ~1.5 us the tests above cost in Python. For it, dense_forward and
# dense_backward go straight to the kernel; a TypeError or ValueError it raises (at most
# an allocation of the output has happened) sends the call to the general path, which
# raises the usual message. The general path calls the same checks, so this fast path
# too accepts nothing the general path rejects.

_ND = np.ndarray
_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_ACT_CODES = dict(C.ACTIVATIONS)
# activations dense_backward accepts (not the steps, not softmax), and those needing Z
_DIFF_CODES = {name: code for name, code in C.ACTIVATIONS.items()
               if code not in C.STEPS and code != C.SOFTMAX}
_MAX_FLOAT = float(np.finfo(np.float64).max)


# os.environ.get costs ~2 us when the variable is unset (a KeyError raised and caught
# inside); the mapping behind os.environ answers "is it set?" in ~0.1 us
_ENV_DATA = getattr(os.environ, "_data", None)
try:
    _ENV_KEY = os.environ.encodekey("ROSENBLATT_BACKEND")
except AttributeError:  # pragma: no cover - another os.environ implementation
    _ENV_DATA = None


def _fast_module(backend):
    """The loaded module of ``backend`` without re-resolving it, or None (general path)."""
    if backend is None or backend == "auto":
        if _ENV_DATA is None or _ENV_KEY in _ENV_DATA:
            env = os.environ.get("ROSENBLATT_BACKEND", "").strip()
            if env and env != "auto":
                return _FAST_MODULES.get(env)
        return _FAST_MODULES.get(_DEFAULT[0]) if _DEFAULT else None
    return _FAST_MODULES.get(backend) if type(backend) is str else None


# --------------------------------------------------------------------------------------
# dense layer


def _checked_forward_out(X, W, b, out):
    """The output array of dense_forward when the exact ndarrays X, W, b (and out) pass the
    fast path's tests in Python (backends that do not check natively); None otherwise."""
    dt = X.dtype
    try:
        n, k = X.shape
        k_w, m = W.shape
        (m_b,) = b.shape
    except ValueError:  # wrong number of dimensions
        return None
    if not (k == k_w and m == m_b and (dt is _F32 or dt is _F64)
            and W.dtype is dt and b.dtype is dt
            # C-contiguous and aligned (as _arr checks), one flags object per array
            and (f := X.flags).c_contiguous and f.aligned
            and (f := W.flags).c_contiguous and f.aligned
            and (f := b.flags).c_contiguous and f.aligned):
        return None
    if out is None:
        return np.empty((n, m), dt)
    if (type(out) is _ND and out.dtype is dt and out.shape == (n, m)
            and out.flags.carray  # C-contiguous, aligned, writable
            # apart from the inputs: arrays owning their data (base None) never overlap
            # another, which is cheaper to see than a bounds test
            and ((out.base is None and X.base is None and W.base is None
                  and b.base is None and out is not X and out is not W)
                 or not (np.may_share_memory(out, X) or np.may_share_memory(out, W)
                         or np.may_share_memory(out, b)))):
        return out
    return None


def dense_forward(X, W, b, activation="identity", *, out=None, return_z=False,
                  backend=None, n_threads=None):
    """Fused dense layer ``A = f(X W + b)``.

    Parameters
    ----------
    X : ndarray (n, k), float32 or float64, C-contiguous
    W : ndarray (k, m), same dtype
    b : ndarray (m,), same dtype
    activation : str, default="identity"
    out : ndarray (n, m), optional
        Preallocated output.
    return_z : bool, default=False
        Also return the pre-activation ``Z = X W + b`` (the saved state softplus and gelu
        need for their derivative).
    backend, n_threads
        See :func:`activation_forward`.

    Returns
    -------
    A : ndarray (n, m)
    Z : ndarray (n, m)
        Only when ``return_z``.
    """
    if (type(activation) is str
            and (n_threads is None or type(n_threads) is int and 0 <= n_threads <= _MAX_THREADS)
            and (act := _ACT_CODES.get(activation)) is not None
            and (be := _FAST_MODULES.get(backend) if type(backend) is str
                 and backend != "auto" else _fast_module(backend)) is not None):
        # fast paths (see "fast paths" above)
        if be in _SELF_CHECKING:
            try:
                if out is None or return_z:
                    if X.shape[1] != W.shape[0]:
                        # shapes that do not chain: nothing is allocated from them (X of
                        # 10**6 x 1 with W of 2 x 10**6 would ask for terabytes first)
                        raise ValueError  # the general path below names the problem
                    shape = (X.shape[0], W.shape[1])
                    A = np.empty(shape, X.dtype) if out is None else out
                    Z = np.empty(shape, X.dtype) if return_z else None
                else:
                    A, Z = out, None
                be.dense_forward(X, W, b, act, A, Z, n_threads or 0)
                return (A, Z) if return_z else A
            except (AttributeError, IndexError, TypeError, ValueError):
                pass  # a bad argument: the general path below names it
        elif type(X) is _ND and type(W) is _ND and type(b) is _ND:
            A = _checked_forward_out(X, W, b, out)
            if A is not None:
                Z = np.empty(A.shape, A.dtype) if return_z else None
                be.dense_forward(X, W, b, act, A, Z, n_threads or 0)
                return (A, Z) if return_z else A
    dt = _float_dtype("X", X)
    _arr("X", X, 2, dt)
    n, k = X.shape
    _arr("W", W, 2, dt, (k, None))
    m = W.shape[1]
    _arr("b", b, 1, dt, (m,))
    act = activation_code(activation)
    A = _out("out", out, (n, m), dt, X=X, W=W, b=b)
    Z = np.empty((n, m), dtype=dt) if return_z else None
    _call(backend, "dense_forward", X, W, b, act, A, Z, check_threads(n_threads))
    return (A, Z) if return_z else A


def _backward_inputs_ok(X, W, A, dA, Z, act):
    """dense_backward's arrays pass the fast path's tests in Python (backends that do not
    check natively): exact ndarrays of one float dtype, matching shapes, C-contiguous and
    aligned, Z where the activation needs it."""
    if not (type(X) is _ND and type(W) is _ND and type(A) is _ND and type(dA) is _ND):
        return False
    dt = X.dtype
    try:
        n, k = X.shape
        k_w, m = W.shape
    except ValueError:  # wrong number of dimensions
        return False
    return bool(k == k_w and (dt is _F32 or dt is _F64) and W.dtype is dt
                and A.dtype is dt and dA.dtype is dt and A.shape == (n, m)
                and dA.shape == (n, m)
                and (f := X.flags).c_contiguous and f.aligned
                and (f := W.flags).c_contiguous and f.aligned
                and (f := A.flags).c_contiguous and f.aligned
                and (f := dA.flags).c_contiguous and f.aligned
                and (act not in C.NEEDS_Z if Z is None else
                     type(Z) is _ND and Z.dtype is dt and Z.shape == (n, m)
                     and (f := Z.flags).c_contiguous and f.aligned))


def dense_backward(X, W, A, dA, activation="identity", *, Z=None, l2=0.0, need_dX=True,
                   out=None, backend=None, n_threads=None):
    """Backward pass of ``A = f(X W + b)``.

    Computes ``dZ = dA * f'(.)``, ``dW = X^T dZ + l2 W``, ``db = sum_rows dZ`` and, when
    ``need_dX``, ``dX = dZ W^T``. ``activation="identity"`` treats ``dA`` as the gradient
    w.r.t. the pre-activation (an output layer with its canonical loss).

    Parameters
    ----------
    X : ndarray (n, k)
        The layer's input in the forward pass.
    W : ndarray (k, m)
    A : ndarray (n, m)
        The layer's forward output.
    dA : ndarray (n, m)
        Gradient of the loss w.r.t. ``A``.
    activation : str, default="identity"
    Z : ndarray (n, m), optional
        The pre-activation; required for softplus and gelu.
    l2 : float, default=0.0
        Coefficient of the L2 term added to ``dW``.
    need_dX : bool, default=True
        False skips ``dX`` (the first layer needs none).
    out : tuple (dW, db, dX), optional
        Preallocated outputs, apart from the inputs and from each other, returned filled in
        (an entry None is allocated; ``dX`` must be None when ``need_dX`` is False).

    Returns
    -------
    dW : ndarray (k, m)
    db : ndarray (m,)
    dX : ndarray (n, k) or None
    """
    if (type(activation) is str and type(l2) is float and 0.0 <= l2 <= _MAX_FLOAT
            and (n_threads is None or type(n_threads) is int and 0 <= n_threads <= _MAX_THREADS)
            and (act := _DIFF_CODES.get(activation)) is not None
            and (be := _FAST_MODULES.get(backend) if type(backend) is str
                 and backend != "auto" else _fast_module(backend)) is not None
            and ((native := be in _SELF_CHECKING)
                 or out is None and _backward_inputs_ok(X, W, A, dA, Z, act))):
        # fast paths (see "fast paths" above; outputs given: the compiled core's only)
        try:
            if out is None:
                dt = X.dtype
                dW = np.empty(W.shape, dt)
                db = np.empty(W.shape[1], dt)
                dX = np.empty(X.shape, dt) if need_dX else None
            elif type(out) is tuple and len(out) == 3 and (need_dX or out[2] is None):
                dW, db, dX = out
            else:
                raise ValueError  # the general path below names the problem
            be.dense_backward(X, W, A, Z, dA, act, l2, dW, db, dX, n_threads or 0)
            return dW, db, dX
        except (AttributeError, IndexError, TypeError, ValueError):
            if not native:  # checked in Python above: not a bad argument
                raise
            # a bad argument: the general path below names it
    dt = _float_dtype("X", X)
    _arr("X", X, 2, dt)
    n, k = X.shape
    _arr("W", W, 2, dt, (k, None))
    m = W.shape[1]
    _arr("A", A, 2, dt, (n, m))
    _arr("dA", dA, 2, dt, (n, m))
    act = activation_code(activation)
    _check_differentiable(act)
    _arr("Z", Z, 2, dt, (n, m), optional=act not in C.NEEDS_Z)
    l2 = _finite_scalar("l2", l2, low=0.0)
    if out is None:
        out = (None, None, None)
    elif not isinstance(out, (tuple, list)) or len(out) != 3:
        raise TypeError(f"out must be a tuple (dW, db, dX); got {type(out).__name__}"
                        + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else ""))
    if not need_dX and out[2] is not None:
        raise ValueError("out's dX must be None when need_dX is False")
    ins = {"X": X, "W": W, "A": A, "Z": Z, "dA": dA}
    dW = _out("dW", out[0], (k, m), dt, **ins)
    db = _out("db", out[1], (m,), dt, dW=dW, **ins)
    dX = _out("dX", out[2], (n, k), dt, dW=dW, db=db, **ins) \
        if need_dX else None
    _call(backend, "dense_backward", X, W, A, Z, dA, act, l2, dW, db, dX,
          check_threads(n_threads))
    return dW, db, dX


# --------------------------------------------------------------------------------------
# losses


def loss_gradient(P, Y, loss, *, sample_weight=None, huber_delta=1.0, out=None,
                  backend=None, n_threads=None):
    """Loss value of a batch and its output gradient.

    Parameters
    ----------
    P : ndarray (n, k)
        Network outputs (probabilities for the log losses, positive for poisson).
    Y : ndarray (n, k), same dtype
        Targets.
    loss : str
        One of ``squared_error, absolute_error, huber, binary_log_loss, log_loss,
        poisson``.
    sample_weight : ndarray (n,), same dtype, optional
    huber_delta : float, default=1.0

    Returns
    -------
    value : float
        scikit-learn's batch loss (see ``rosenblatt._codes``).
    G : ndarray (n, k)
        ``s_i g(p, y) / S``: w.r.t. the pre-activation for the log losses and poisson
        (canonical links), w.r.t. ``P`` otherwise.
    """
    dt = _float_dtype("P", P)
    _arr("P", P, 2, dt)
    _arr("Y", Y, 2, dt, P.shape)
    code = loss_code(loss)
    sw = _arr("sample_weight", sample_weight, 1, dt, (P.shape[0],), optional=True)
    if sw is not None and (not np.isfinite(sw).all() or (sw < 0).any() or not sw.sum() > 0):
        raise ValueError("sample_weight must be finite and non-negative with a positive sum")
    if P.shape[0] == 0 or P.shape[1] == 0:
        raise ValueError(f"P must have at least one row and one column; got shape {P.shape}")
    delta = _finite_scalar("huber_delta", huber_delta, low=0.0, low_open=True)
    G = _out("out", out, P.shape, dt, P=P, Y=Y, sample_weight=sw)
    value = _call(backend, "loss_gradient", P, Y, sw, code, delta, G, check_threads(n_threads))
    return float(value), G


# --------------------------------------------------------------------------------------
# optimizers (in place: the parameters and the state are the outputs)
#
# Every backend follows the reference's arithmetic operation by operation. The compiled
# backends (C++ and Numba) run the steps with subnormal numbers flushed to zero (as XLA
# does on the CPU): an optimizer state decaying into the subnormal range (Adam's moments
# of a weight whose gradient stays zero) made every product a microcode assist. Where no
# operand or intermediate is subnormal (below 1.2e-38 in float32, 2.2e-308 in float64),
# a step's result is the reference's bit for bit.


def _opt_arrays(params, grads, *states):
    dt = _float_dtype("params", params)
    _arr("params", params, 1, dt, writable=True)
    _arr("grads", grads, 1, dt, params.shape)
    for name, s in states:
        _arr(name, s, 1, dt, params.shape, writable=True)
    _all_apart(params=params, grads=grads, **dict(states))
    return dt


def sgd_step(params, grads, velocity, *, lr, momentum=0.0, nesterov=False, backend=None,
             n_threads=None):
    """In place: ``v = momentum v - lr g``; ``p += momentum v - lr g`` (nesterov) or ``v``."""
    _opt_arrays(params, grads, ("velocity", velocity))
    lr = _finite_scalar("lr", lr, low=0.0)
    momentum = _finite_scalar("momentum", momentum, low=0.0)
    if momentum > 1.0:
        raise ValueError(f"momentum must be in [0, 1]; got {momentum}")
    _call(backend, "sgd_step", params, grads, velocity, lr, momentum, bool(nesterov),
                                  check_threads(n_threads))


def adagrad_step(params, grads, accum, *, lr, eps=1e-8, backend=None, n_threads=None):
    """In place: ``s += g^2``; ``p -= lr g / (sqrt(s) + eps)``."""
    _opt_arrays(params, grads, ("accum", accum))
    _call(backend, "adagrad_step", params, grads, accum, _finite_scalar("lr", lr, low=0.0),
                                      _finite_scalar("eps", eps, low=0.0, low_open=True),
                                      check_threads(n_threads))


def rmsprop_step(params, grads, sq, *, lr, rho=0.9, eps=1e-8, backend=None, n_threads=None):
    """In place: ``s = rho s + (1 - rho) g^2``; ``p -= lr g / (sqrt(s) + eps)``."""
    _opt_arrays(params, grads, ("sq", sq))
    rho = _finite_scalar("rho", rho, low=0.0)
    if rho >= 1.0:
        raise ValueError(f"rho must be in [0, 1); got {rho}")
    _call(backend, "rmsprop_step", params, grads, sq, _finite_scalar("lr", lr, low=0.0),
                                      rho, _finite_scalar("eps", eps, low=0.0, low_open=True),
                                      check_threads(n_threads))


def adam_step(params, grads, m, v, *, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
              weight_decay=0.0, backend=None, n_threads=None):
    """In place Adam step number ``t`` (>= 1); AdamW when ``weight_decay > 0``."""
    _opt_arrays(params, grads, ("m", m), ("v", v))
    if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 1 <= t < 2**62:
        raise ValueError(f"t must be an int in [1, 2**62) (the step number); got {t!r}")
    for name, beta in (("beta1", beta1), ("beta2", beta2)):
        if not 0.0 <= _finite_scalar(name, beta) < 1.0:
            raise ValueError(f"{name} must be in [0, 1); got {beta}")
    _call(backend, "adam_step", 
        params, grads, m, v, _finite_scalar("lr", lr, low=0.0), float(beta1), float(beta2),
        _finite_scalar("eps", eps, low=0.0, low_open=True),
        _finite_scalar("weight_decay", weight_decay, low=0.0), int(t), check_threads(n_threads))


# --------------------------------------------------------------------------------------
# whole networks


def _layer_sizes(layer_sizes):
    """``layer_sizes`` as an int64 array: at least two widths, each a positive int (no
    floats truncated, strings parsed or bools taken for 1)."""
    if isinstance(layer_sizes, np.ndarray) and layer_sizes.dtype.kind in "iu":
        ok = layer_sizes.ndim == 1
        values = layer_sizes
    else:
        try:
            values = list(layer_sizes)
        except TypeError:
            values = None
        ok = values is not None and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
            for v in values)
    try:
        ls = np.ascontiguousarray(values, dtype=np.int64) if ok else None
    except OverflowError:  # a Python int beyond int64
        ls = None
    if ls is None or ls.shape[0] < 2 or (ls < 1).any() or (
            # uint64 widths beyond int64 wrap around in the cast
            isinstance(layer_sizes, np.ndarray) and (ls != layer_sizes).any()):
        raise ValueError(f"layer_sizes must list >= 2 positive int widths; got {layer_sizes!r}")
    return ls


def param_offsets(layer_sizes):
    """Offsets of ``(W_i, b_i)`` in a flat parameter vector, and its total length.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``[n_features, hidden..., n_outputs]``, each >= 1.

    Returns
    -------
    offsets : list of (int, int)
        For each layer, where ``W_i`` (``fan_in x fan_out``, row-major) starts and where
        ``b_i`` starts (right after it).
    total : int
        Length of the vector.
    """
    return _ref_param_offsets(_layer_sizes(layer_sizes))


def _layers(layer_sizes, activations, *, training):
    ls = _layer_sizes(layer_sizes)
    L = ls.shape[0] - 1
    if isinstance(activations, (str, int, np.integer)):
        activations = [activations] * L
    acts = list(activations)
    if len(acts) != L:
        raise ValueError(f"activations must have one entry per layer ({L}); got {len(acts)}")
    codes = np.empty(L, dtype=np.int32)
    for i, a in enumerate(acts):
        code = activation_code(a)
        if i < L - 1 and code not in C.HIDDEN:
            raise ValueError(f"activation {a!r} of hidden layer {i} must be elementwise; "
                             f"expected one of {sorted(C.ACTIVATION_NAMES[c] for c in C.HIDDEN)}")
        if training and code in C.STEPS:
            _check_differentiable(code)
        codes[i] = code
    return ls, codes


def mlp_forward(X, params, layer_sizes, activations, *, out=None, backend=None,
                n_threads=None):
    """Forward pass of a whole network stored as one flat parameter vector.

    Parameters
    ----------
    X : ndarray (n, layer_sizes[0])
    params : ndarray (P,)
        ``W_0, b_0, W_1, b_1, ...`` flattened (see :func:`param_offsets`).
    layer_sizes : sequence of int
        ``[n_features, hidden..., n_outputs]``.
    activations : str or sequence of str
        One per layer, the last is the output activation.

    Returns
    -------
    ndarray (n, layer_sizes[-1])
    """
    dt = _float_dtype("X", X)
    ls, codes = _layers(layer_sizes, activations, training=False)
    _arr("X", X, 2, dt, (None, int(ls[0])))
    _, total = _ref_param_offsets(ls)
    _arr("params", params, 1, dt, (total,))
    out = _out("out", out, (X.shape[0], int(ls[-1])), dt, X=X, params=params)
    nt = check_threads(n_threads)
    n = X.shape[0]
    if n == 0:
        return out
    rows = mlp_block_rows(ls)
    work = np.empty(mlp_workspace_size(ls, min(n, rows)), dtype=dt)
    forward_blocks(get_backend(backend), X, params, ls, codes, out, work, nt, rows)
    return out


def forward_blocks(be, X, params, ls, codes, out, work, nt, rows):
    """Backend module ``be``'s ``mlp_forward`` over the rows of X, ``rows`` at a time.

    The arguments are checked already (by :func:`mlp_forward`, or by an estimator when it
    built its network); ``work`` holds ``mlp_workspace_size(ls, min(n, rows))`` values.
    """
    n = X.shape[0]
    if n <= rows:
        be.mlp_forward(X, params, ls, codes, out, work, nt)
        return
    for s in range(0, n, rows):
        be.mlp_forward(X[s:s + rows], params, ls, codes, out[s:s + rows], work, nt)


# A forward pass over many rows runs in blocks of rows, one backend call each: one call for
# all rows would hold a workspace of 2 n max(width) values (2.4 GB for a million rows of a
# 784-300-100-10 network) and could not be interrupted, since Ctrl-C reaches Python only
# when the call returns. A block does about 1e9 multiply-adds (tens of milliseconds); at
# least 256 rows, so that a block still amortises the packing of the weights (a few
# percent of a block of a 784-2000-2000-10 network, which then takes ~0.1 s on one core).
_FORWARD_BLOCK_MADDS = 1e9
_FORWARD_MIN_ROWS = 256


def mlp_block_rows(layer_sizes):
    """Rows per backend call of a forward pass through a network of ``layer_sizes``.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``[n_features, hidden..., n_outputs]``.

    Returns
    -------
    int
        About ``1e9`` multiply-adds per block, and at least 256 rows.
    """
    sizes = [int(v) for v in _layer_sizes(layer_sizes)]
    madds = sum(a * b for a, b in itertools.pairwise(sizes))
    return max(_FORWARD_MIN_ROWS, int(_FORWARD_BLOCK_MADDS // max(madds, 1)))


def check_batch_weights(sample_weight, order, batch_size):
    """Raise ZeroDivisionError, as scikit-learn's ``np.average`` does, when a minibatch of
    ``order`` has only zero weights (its loss, a weighted mean, is undefined).

    Parameters
    ----------
    sample_weight : ndarray (n,)
    order : ndarray of int64 (m,)
        Row indices in visiting order; minibatches are consecutive runs of ``batch_size``.
    batch_size : int
    """
    sums = np.add.reduceat(sample_weight[order], np.arange(0, order.shape[0], batch_size))
    if not (sums != 0).all():
        first = int(np.flatnonzero(sums == 0)[0])
        raise ZeroDivisionError(
            f"Weights sum to zero, can't be normalized: minibatch {first + 1} of this epoch "
            f"(rows {first * batch_size} to {min(order.shape[0], (first + 1) * batch_size) - 1}"
            " of its order) has only zero sample weights")


def _train_weights(sample_weight, dt, n):
    """Checked per-row weights of a training set of n rows, or None."""
    sw = _arr("sample_weight", sample_weight, 1, dt, (n,), optional=True)
    if sw is not None and not ((sw >= 0).all() and np.isfinite(sw).all()):
        # (a batch whose weights sum to 0 has no defined loss: see check_batch_weights)
        raise ValueError("sample_weight must be non-negative and finite")
    return sw


class NonFiniteRowError(ValueError):
    """A row of X met by :meth:`Trainer.run_epoch` holds a NaN or an infinity.

    Attributes
    ----------
    row : int
        The row's index in X.
    """

    def __init__(self, row):
        super().__init__(f"X[{row}] holds a NaN or an infinity; the epoch stopped before "
                         "the minibatch holding it")
        self.row = row


class Trainer:
    """Validated, preallocated state for running :func:`train_epoch` epoch after epoch.

    Checks everything once, allocates the gradient, optimizer state and workspace once,
    then :meth:`run_epoch` calls the backend's ``train_epoch`` with a row order. The
    parameters, optimizer state and Adam counter are updated in place.

    Parameters
    ----------
    X : ndarray (n, d), float32 or float64, C-contiguous
    Y : ndarray (n, k), same dtype
    params : ndarray (P,), same dtype, writable
        Flat parameter vector (``W_0, b_0, ...``).
    layer_sizes : sequence of int
    activations : sequence of str or int codes
        One per layer; the last is the output activation.
    loss, optimizer : str
    hyper : dict
        Hyperparameters: lr, momentum, beta1, beta2, eps, rho, weight_decay, alpha, l1,
        huber_delta (missing keys default to 0 except the obvious ones).
    batch_size : int
    sample_weight : ndarray (n,), optional
    state : ndarray (slots, P), optional
        Existing optimizer state to continue from (partial_fit); allocated zero otherwise.
    step : int, default=0
        Adam step counter to continue from.
    backend, n_threads
        See :func:`resolve_backend`.
    track_grad_norms : bool, default=False
        Accumulate each layer's gradient norm per epoch into :attr:`grad_norms`.
    """

    # hyperparameter name, slot in `hyper`, default
    _HYPER = (("lr", C.H_LR, 1e-3), ("momentum", C.H_MOMENTUM, 0.9), ("beta1", C.H_BETA1, 0.9),
              ("beta2", C.H_BETA2, 0.999), ("eps", C.H_EPS, 1e-8), ("rho", C.H_RHO, 0.9),
              ("weight_decay", C.H_WEIGHT_DECAY, 0.0), ("alpha", C.H_ALPHA, 0.0),
              ("l1", C.H_L1, 0.0), ("huber_delta", C.H_HUBER_DELTA, 1.0))

    def __init__(self, X, Y, params, layer_sizes, activations, loss, optimizer, hyper,
                 batch_size, *, sample_weight=None, state=None, step=0, backend=None,
                 n_threads=None, track_grad_norms=False):
        dt = _float_dtype("X", X)
        _arr("X", X, 2, dt)
        n = X.shape[0]
        if n == 0:
            raise ValueError("X must have at least one row; got 0")
        self.layer_sizes, self.activations = _layers(layer_sizes, activations, training=True)
        if X.shape[1] != self.layer_sizes[0]:
            raise ValueError(f"X must have {self.layer_sizes[0]} columns (layer_sizes[0]); "
                             f"got {X.shape[1]}")
        _arr("Y", Y, 2, dt, (n, int(self.layer_sizes[-1])))
        _, total = _ref_param_offsets(self.layer_sizes)
        _arr("params", params, 1, dt, (total,), writable=True)
        self.sample_weight = _train_weights(sample_weight, dt, n)
        _separate("params", params, X=X, Y=Y, sample_weight=self.sample_weight)
        self.loss = loss_code(loss)
        self.optimizer = optimizer_code(optimizer)
        out_act = int(self.activations[-1])
        link = C.CANONICAL_LINK.get(self.loss)
        if out_act == C.SOFTMAX and self.loss != C.LOG_LOSS:
            raise ValueError("a softmax output must be trained with loss='log_loss'")
        if link is not None and out_act != link:
            raise ValueError(f"loss {loss!r} needs the output activation "
                             f"{C.ACTIVATION_NAMES[link]!r}; got "
                             f"{C.ACTIVATION_NAMES[out_act]!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int; got {batch_size!r}")
        self.batch_size = int(min(batch_size, n))
        keys = [key for key, _, _ in self._HYPER]
        unknown = set(hyper) - set(keys)
        if unknown:
            raise ValueError(f"hyper has unknown keys {sorted(unknown)}; "
                             f"expected some of {sorted(keys)}")
        values = [hyper.get(key, default) for key, _, default in self._HYPER]
        try:
            floats = [float(v) for v in values]
        except (TypeError, ValueError):
            floats = None
        if floats is None or not all(0.0 <= v < float("inf") for v in floats):
            # one by one, for the error message
            floats = [_finite_scalar(k, v, low=0.0) for k, v in zip(keys, values, strict=True)]
        given = dict(zip(keys, floats, strict=True))
        # the ranges the single-step kernels enforce (a decay rate of 1 never forgets, an
        # eps of 0 divides by zero: NaN or exploding parameters, silently)
        for key in ("beta1", "beta2", "rho"):
            if given[key] >= 1.0:
                raise ValueError(f"hyper[{key!r}] must be in [0, 1); got {given[key]}")
        if given["momentum"] > 1.0:
            raise ValueError(f"hyper['momentum'] must be in [0, 1]; got {given['momentum']}")
        for key in ("eps", "huber_delta"):
            if given[key] <= 0.0:
                raise ValueError(f"hyper[{key!r}] must be > 0; got {given[key]}")
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) \
                or not 0 <= step < 2**62:
            raise ValueError(f"step must be an int in [0, 2**62) (Adam steps taken so far); "
                             f"got {step!r}")
        self.hyper = np.zeros(C.N_HYPER, dtype=np.float64)
        self.hyper[[slot for _, slot, _ in self._HYPER]] = floats
        self.X, self.Y, self.params = X, Y, params
        slots = C.OPTIMIZER_SLOTS[self.optimizer]
        if state is None:
            state = aligned_zeros((slots, total), dt)
        else:
            _arr("state", state, 2, dt, (slots, total), writable=True)
            _separate("state", state, params=params, X=X, Y=Y, sample_weight=self.sample_weight)
        self.state = state
        self.grads = aligned_zeros(total, dt)
        self.step = np.array([int(step)], dtype=np.int64)
        self.backend = resolve_backend(backend)
        self._be = _probe(self.backend)
        self.n_threads = check_threads(n_threads)
        self.workspace = aligned_zeros(train_workspace_size(self.layer_sizes, self.batch_size),
                                       dt)
        L = self.layer_sizes.shape[0] - 1
        self.grad_norms = np.zeros(L, dtype=np.float64) if track_grad_norms else None
        self._checked_sw = (None, False)  # (weights, whether some are 0): see run_epoch
        self._nonfinite = np.full(1, -1, dtype=np.int64)  # run_epoch(check_finite=True)

    def set_lr(self, lr):
        """Change the learning rate between epochs (schedules)."""
        self.hyper[C.H_LR] = _finite_scalar("lr", lr, low=0.0)

    def run_epoch(self, order, *, check=True, check_finite=False):
        """Train one epoch over the rows in ``order``; return the accumulated loss.

        Parameters
        ----------
        order : ndarray of int64 (m,)
            Row indices in visiting order, each in ``[0, n)``.
        check : bool, default=True
            Validate ``order``, and that no minibatch of it has zero total sample weight
            (:func:`check_batch_weights`). A caller that builds it from a permutation of
            valid indices and checks the weights itself may skip the tests (on a small
            network they cost as much as the minibatches); a wrong order must not reach
            the backend.
        check_finite : bool, default=False
            Look for NaN and infinity in each minibatch's rows of X as the backend gathers
            them, instead of a pass over all of X before the epoch (which reads it from
            memory once more: 3% of a fashion-sized epoch). The minibatch holding one is
            not trained.

        Returns
        -------
        float
            Sum over batches of ``batch_loss * batch_length`` (divide by ``m``).

        Raises
        ------
        NonFiniteRowError
            With ``check_finite``, when a row of X in ``order`` holds a NaN or an infinity.
            The minibatches before its own were trained: params, state and step are as they
            left them (a caller that must not change anything snapshots them first).
        """
        if check:
            n = self.X.shape[0]
            if not isinstance(order, np.ndarray) or order.dtype != np.int64:
                raise TypeError("order must be an int64 numpy.ndarray")
            order = _arr("order", order, 1, np.int64)
            if order.size and (order.min() < 0 or order.max() >= n):
                raise ValueError(f"order must hold row indices in [0, {n}); got values "
                                 f"in [{order.min()}, {order.max()}]")
            sw = self.sample_weight
            if sw is not None and order.size:
                # a minibatch of zero total weight has no loss: the same ZeroDivisionError
                # on every backend (the compiled ones would divide by zero into NaN
                # parameters). Whether sw has zeros at all is looked up once per array.
                if sw is not self._checked_sw[0]:
                    self._checked_sw = (sw, not (sw != 0).all())
                if self._checked_sw[1]:
                    check_batch_weights(sw, order, self.batch_size)
        if self.grad_norms is not None:
            self.grad_norms[:] = 0.0
        bad = self._nonfinite if check_finite else None
        total = self._run(order, bad)
        if bad is not None and bad[0] >= 0:
            raise NonFiniteRowError(int(bad[0]))
        return total

    def _run(self, order, nonfinite=None):
        """The backend's train_epoch over one epoch's ``order``; its loss total."""
        # The compiled core checks for Ctrl-C itself, between minibatches and between the
        # layers of one (a batch stopped there is dropped whole). A Numba epoch
        # cannot, so it runs in chunks of whole batches lasting ~0.1 s: Python is entered a
        # handful of times per epoch (not per batch) and KeyboardInterrupt lands in time.
        if self.backend != "numba":
            return float(self._train(order, nonfinite))
        chunk = self._numba_chunk
        total = 0.0
        for start in range(0, max(order.shape[0], 1), chunk):
            total += self._train(order[start:start + chunk], nonfinite)
            if nonfinite is not None and nonfinite[0] >= 0:
                break
        return float(total)

    def run_epochs(self, order, n_epochs):
        """Train ``n_epochs`` epochs whose row orders are ``order`` back to back, in one
        call of the backend; return each epoch's accumulated loss.

        The same minibatches, steps and losses as ``n_epochs`` calls of :meth:`run_epoch`
        (with ``check=False``) on the parts of ``order``, for the cost of one call (a
        playground-sized epoch: 31.8 -> 29.9 us); ``grad_norms`` accumulates over all of
        them.

        Parameters
        ----------
        order : ndarray of int64 (n_epochs * m,)
            The row orders of the epochs, each of m rows in ``[0, n)``; not validated (as
            ``run_epoch(order, check=False)``).
        n_epochs : int

        Returns
        -------
        ndarray of float64 (n_epochs,)
            As :meth:`run_epoch` returns for each epoch.
        """
        if isinstance(n_epochs, bool) or not isinstance(n_epochs, (int, np.integer)) \
                or n_epochs < 1 or order.shape[0] % n_epochs:
            raise ValueError(f"n_epochs must be a positive int dividing len(order) = "
                             f"{order.shape[0]}; got {n_epochs!r}")
        m = order.shape[0] // int(n_epochs)
        totals = np.zeros(int(n_epochs), dtype=np.float64)
        if self.grad_norms is not None:
            self.grad_norms[:] = 0.0
        if self.backend == "numba":  # (an epoch per call, in chunks: see _run)
            for e in range(int(n_epochs)):
                totals[e] = self._run(order[e * m:(e + 1) * m])
            return totals
        self._train(order, epoch_rows=m, epoch_totals=totals)
        return totals

    def run_block(self, X, Y, sample_weight=None):
        """Train on the rows of another block of data, in their order; return the loss.

        An epoch over data kept elsewhere (sparse ``X``, densified a block of rows at a
        time) runs block by block: blocks of whole minibatches give the same minibatches,
        steps and summed loss as one :meth:`run_epoch` over all the rows.

        Parameters
        ----------
        X : ndarray (m, d) of the parameters' dtype, C-contiguous
        Y : ndarray (m, k), same dtype
        sample_weight : ndarray (m,), optional
            Required when the trainer was made with sample weights, refused otherwise.

        Returns
        -------
        float
            As :meth:`run_epoch`.
        """
        dt = self.params.dtype
        _arr("X", X, 2, dt, (None, int(self.layer_sizes[0])))
        m = X.shape[0]
        _arr("Y", Y, 2, dt, (m, int(self.layer_sizes[-1])))
        if (sample_weight is None) != (self.sample_weight is None):
            made = "with" if self.sample_weight is not None else "without"
            raise ValueError("sample_weight must be given for every block or for none: "
                             f"the trainer was made {made} them")
        sw = _train_weights(sample_weight, dt, m)
        _separate("params", self.params, X=X, Y=Y, sample_weight=sw)
        _separate("state", self.state, X=X, Y=Y, sample_weight=sw)
        saved = self.X, self.Y, self.sample_weight
        self.X, self.Y, self.sample_weight = X, Y, sw
        try:
            return self.run_epoch(np.arange(m, dtype=np.int64), check=False)
        finally:
            self.X, self.Y, self.sample_weight = saved

    def _train(self, order, nonfinite=None, **epochs):
        """The backend's train_epoch on this trainer's arrays (``epochs``: its
        epoch_rows and epoch_totals)."""
        return self._be.train_epoch(
            self.X, self.Y, self.sample_weight, order, self.batch_size, self.layer_sizes,
            self.activations, self.loss, self.params, self.grads, self.state, self.optimizer,
            self.hyper, self.step, self.workspace, self.grad_norms, self.n_threads,
            nonfinite=nonfinite, **epochs)

    @property
    def _numba_chunk(self):
        # ~6 FLOPs per parameter per row (forward 2, backward 4); assume a modest
        # 10 GFLOP/s so a chunk stays near 0.1 s even on slow machines.
        rows = int(1e9 / (6.0 * self.params.shape[0]))
        return max(1, rows // self.batch_size) * self.batch_size


# --------------------------------------------------------------------------------------
# perceptrons


def perceptron_epoch(X, Y, W, b, *, order=None, eta=1.0, step="heaviside", backend=None,
                     n_threads=None):
    """One online epoch of Rosenblatt's rule, all outputs at once, in place on W and b.

    For each row x in ``order``: ``yhat = step(x W + b)``; ``W += eta x^T (y - yhat)``;
    ``b += eta (y - yhat)``.

    Parameters
    ----------
    X : ndarray (n, d), float32 or float64
    Y : ndarray (n, k) of X's dtype, or int64 ndarray (n,) of labels
        Targets: 0/1 for ``step="heaviside"``, -1/+1 for ``step="sign"``. Labels mean one-hot
        targets (k = ``W.shape[1]``): output c of row r has target 1 when ``Y[r] == c``, else
        0 / -1 (a label outside [0, k) gives every output 0 / -1).
    W : ndarray (d, k), X's dtype, written in place
    b : ndarray (k,), X's dtype, written in place
    order : ndarray of int64, optional
        Row visiting order (default: 0..n-1).
    eta : float, default=1.0
    step : {"heaviside", "sign"}
    n_threads : int, optional
        The compiled backend splits the outputs over threads on large problems (an
        output's weights depend on its own scores only, so the result is the same).

    Returns
    -------
    int
        Rows with at least one wrong output (counted before their update), or -1 when a
        visited row of X holds a NaN or an infinity; W and b are then left unchanged.
    """
    dt = _float_dtype("X", X)
    _arr("X", X, 2, dt)
    n, d = X.shape
    code = _code(C.ACTIVATIONS, "step", step, C.STEPS)
    if isinstance(Y, np.ndarray) and Y.ndim == 1:
        _arr("Y", Y, 1, np.int64, (n,))
        _arr("W", W, 2, dt, (d, None), writable=True)
        k = W.shape[1]
    else:
        _arr("Y", Y, 2, dt, (n, None))
        k = Y.shape[1]
        _arr("W", W, 2, dt, (d, k), writable=True)
        allowed = (0.0, 1.0) if code == C.HEAVISIDE else (-1.0, 1.0)
        if Y.size and not np.isin(Y, allowed).all():
            raise ValueError(f"Y must hold only {allowed} for step={step!r}")
    _arr("b", b, 1, dt, (k,), writable=True)
    order = _order(order, n)
    _all_apart(W=W, b=b, X=X, Y=Y, order=order)
    eta = _finite_scalar("eta", eta, low=0.0, low_open=True)
    return int(_call(backend, "perceptron_epoch", X, Y, order, W, b, eta, code,
                     check_threads(n_threads)))


def _weights(name, w):
    """Per-row or per-class weights of the perceptron kernels: finite (or None)."""
    if w is not None and not np.isfinite(w).all():
        raise ValueError(f"{name} must be finite")
    return w


def _order(order, n):
    if order is None:
        return np.arange(n, dtype=np.int64)
    _arr("order", order, 1, np.int64)
    if order.size and (order.min() < 0 or order.max() >= n):
        raise ValueError(f"order must hold row indices in [0, {n})")
    return order


def xorshift_shuffle(order, seed, *, backend=None):
    """Shuffle ``order`` in place exactly as scikit-learn's SGD datasets do."""
    _arr("order", order, 1, np.int64, writable=True)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) \
            or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an int in [0, 2**32); got {seed!r}")
    _call(backend, "xorshift_shuffle", order, int(seed), 0)


def _y_pm1(name, y, shape):
    _arr(name, y, len(shape), np.float64, shape)
    if y.size and not ((y == 1.0) | (y == -1.0)).all():
        raise ValueError(f"{name} must hold only -1.0 and +1.0")


def perceptron_epoch_sklearn(X, y, w, b, *, order=None, eta0=1.0, sample_weight=None,
                             class_weight=(1.0, 1.0), fit_intercept=True, backend=None):
    """One epoch of scikit-learn's Perceptron update for one binary problem, in place.

    Returns
    -------
    sumloss : float
        Sum of ``max(0, -y p)`` over the epoch.
    mistakes : int
        -1 when a visited row of X holds a NaN or an infinity (the epoch stops at that
        row; w and b are then undefined).
    """
    dt = _float_dtype("X", X)
    _arr("X", X, 2, dt)
    n, d = X.shape
    _y_pm1("y", y, (n,))
    _arr("w", w, 1, dt, (d,), writable=True)
    _arr("b", b, 1, np.float64, (1,), writable=True)
    sw = _weights("sample_weight", _arr("sample_weight", sample_weight, 1, np.float64, (n,),
                                        optional=True))
    cw = np.ascontiguousarray(class_weight, dtype=np.float64)
    if cw.shape != (2,):
        raise ValueError(f"class_weight must have shape (2,); got {cw.shape}")
    _weights("class_weight", cw)
    order = _order(order, n)
    _all_apart(w=w, b=b, X=X, y=y, sample_weight=sw, order=order)
    s, m = _call(backend, "perceptron_epoch_sklearn", 
        X, y, order, w, b, _finite_scalar("eta0", eta0, low=0.0, low_open=True), sw, cw,
        bool(fit_intercept), 0)
    return float(s), int(m)


def perceptron_fit_sklearn(X, Y, W, B, seeds, *, eta0=1.0, sample_weight=None,
                           class_weight=None, fit_intercept=True, shuffle=True, max_iter=1000,
                           tol=1e-3, n_iter_no_change=5, n_iter=None, backend=None,
                           n_threads=None):
    """scikit-learn's Perceptron fit for K one-vs-rest problems (threads split classes).

    Parameters
    ----------
    X : ndarray (n, d)
    Y : float64 ndarray (K, n) of -1/+1, or int64 ndarray (n,) of labels
        Targets of each problem; labels: problem c has +1 where ``Y == c``, -1 elsewhere
        (K = ``W.shape[0]``).
    W : ndarray (K, d), X's dtype, in/out
    B : float64 ndarray (K,), in/out
    seeds : int64 ndarray (K,)
        Shuffle seed per class.
    class_weight : float64 ndarray (K, 2), optional
        Weights of (-1, +1) per class; ones by default.
    tol : float or None
        None disables the stopping rule.
    n_iter : int64 ndarray (K,), optional
        Receives the result, also when Ctrl-C stops the fit (KeyboardInterrupt then
        propagates; W and B hold the weights reached, n_iter the epochs run so far).

    Returns
    -------
    ndarray of int64 (K,)
        Epochs run per class; -1 for a class that met a row of X holding a NaN or an
        infinity (its weights are then undefined).
    """
    dt = _float_dtype("X", X)
    _arr("X", X, 2, dt)
    n, d = X.shape
    if n == 0:
        raise ValueError("X must have at least one row; got 0")
    if isinstance(Y, np.ndarray) and Y.ndim == 1:
        _arr("Y", Y, 1, np.int64, (n,))
        _arr("W", W, 2, dt, (None, d), writable=True)
        K = W.shape[0]
    else:
        _y_pm1("Y", Y, (None, n))
        K = Y.shape[0]
    _arr("W", W, 2, dt, (K, d), writable=True)
    _arr("B", B, 1, np.float64, (K,), writable=True)
    _arr("seeds", seeds, 1, np.int64, (K,))
    sw = _weights("sample_weight", _arr("sample_weight", sample_weight, 1, np.float64, (n,),
                                        optional=True))
    if class_weight is None:
        class_weight = np.ones((K, 2))
    _weights("class_weight", _arr("class_weight", class_weight, 2, np.float64, (K, 2)))
    for name, v in (("max_iter", max_iter), ("n_iter_no_change", n_iter_no_change)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v < 2**31:
            raise ValueError(f"{name} must be a positive int (below 2**31); got {v!r}")
    tol = -np.inf if tol is None else _finite_scalar("tol", tol)
    if n_iter is None:
        n_iter = np.zeros(K, dtype=np.int64)
    else:
        _arr("n_iter", n_iter, 1, np.int64, (K,), writable=True)
    _all_apart(W=W, B=B, n_iter=n_iter, X=X, Y=Y, seeds=seeds, sample_weight=sw,
               class_weight=class_weight)
    n_iter[:] = 0
    _call(backend, "perceptron_fit_sklearn", 
        X, Y, W, B, seeds, _finite_scalar("eta0", eta0, low=0.0, low_open=True), sw,
        class_weight, bool(fit_intercept), bool(shuffle), int(max_iter), float(tol),
        int(n_iter_no_change), n_iter, check_threads(n_threads))
    return n_iter


# --------------------------------------------------------------------------------------
# batch normalisation


def _bn_eps(eps):
    return _finite_scalar("eps", eps, low=0.0, low_open=True)


def batchnorm_forward(Z, gamma, beta, eps=1e-5, *, out=None, backend=None, n_threads=None):
    """Training-mode batch normalisation of the rows of ``Z`` with the batch's statistics.

    Per column: ``Xhat = (Z - mean) / sqrt(var + eps)`` with the biased batch variance,
    then ``Y = gamma * Xhat + beta``.

    Parameters
    ----------
    Z : ndarray (n, k), float32 or float64, C-contiguous, n >= 1
        Pre-activations of a batch (rows are samples).
    gamma, beta : ndarray (k,), same dtype
        Scale and shift.
    eps : float, default=1e-5
        Added to the variance (> 0).
    out : ndarray (n, k), optional
        Preallocated ``Y``.
    backend, n_threads
        See :func:`activation_forward`.

    Returns
    -------
    Y : ndarray (n, k)
    Xhat : ndarray (n, k)
        The normalised batch (saved for :func:`batchnorm_backward`).
    mean : ndarray (k,)
    invstd : ndarray (k,)
        ``1 / sqrt(var + eps)`` (saved for the backward; ``var = invstd**-2 - eps``).
    """
    dt = _float_dtype("Z", Z)
    _arr("Z", Z, 2, dt)
    n, k = Z.shape
    if n == 0:
        raise ValueError("Z must have at least one row; got 0 (batch statistics of an "
                         "empty batch are undefined)")
    _arr("gamma", gamma, 1, dt, (k,))
    _arr("beta", beta, 1, dt, (k,))
    eps = _bn_eps(eps)
    Y = _out("out", out, (n, k), dt, Z=Z, gamma=gamma, beta=beta)
    Xhat = np.empty((n, k), dtype=dt)
    mean = np.empty(k, dtype=dt)
    invstd = np.empty(k, dtype=dt)
    _call(backend, "batchnorm_forward", Z, gamma, beta, eps, Y, Xhat, mean, invstd,
          check_threads(n_threads))
    return Y, Xhat, mean, invstd


def batchnorm_backward(dY, Xhat, gamma, invstd, *, backend=None, n_threads=None):
    """Backward of :func:`batchnorm_forward` from its saved ``Xhat`` and ``invstd``.

    Parameters
    ----------
    dY : ndarray (n, k), float32 or float64, n >= 1
        Gradient of the loss w.r.t. ``Y``.
    Xhat : ndarray (n, k), same dtype
    gamma, invstd : ndarray (k,), same dtype

    Returns
    -------
    dZ : ndarray (n, k)
        ``(n dY - dbeta - Xhat dgamma) * gamma * invstd / n``.
    dgamma : ndarray (k,)
        ``sum_rows dY * Xhat``.
    dbeta : ndarray (k,)
        ``sum_rows dY``.
    """
    dt = _float_dtype("dY", dY)
    _arr("dY", dY, 2, dt)
    n, k = dY.shape
    if n == 0:
        raise ValueError("dY must have at least one row; got 0")
    _arr("Xhat", Xhat, 2, dt, (n, k))
    _arr("gamma", gamma, 1, dt, (k,))
    _arr("invstd", invstd, 1, dt, (k,))
    dZ = np.empty((n, k), dtype=dt)
    dgamma = np.empty(k, dtype=dt)
    dbeta = np.empty(k, dtype=dt)
    _call(backend, "batchnorm_backward", dY, Xhat, gamma, invstd, dZ, dgamma, dbeta,
          check_threads(n_threads))
    return dZ, dgamma, dbeta


def _running(name, a, dt, k):
    _arr(name, a, 1, dt, (k,))
    if name == "running_var" and not (a >= 0).all():
        raise ValueError("running_var must be non-negative (a variance)")
    return a


def batchnorm_inference(Z, gamma, beta, running_mean, running_var, eps=1e-5, *, out=None,
                        backend=None, n_threads=None):
    """Inference-mode batch normalisation with running statistics.

    ``Y = (Z - running_mean) * gamma / sqrt(running_var + eps) + beta`` per column.

    Parameters
    ----------
    Z : ndarray (n, k), float32 or float64
    gamma, beta, running_mean, running_var : ndarray (k,), same dtype
        ``running_var`` must be non-negative.
    eps : float, default=1e-5
    out : ndarray (n, k), optional

    Returns
    -------
    ndarray (n, k)
    """
    dt = _float_dtype("Z", Z)
    _arr("Z", Z, 2, dt)
    n, k = Z.shape
    _arr("gamma", gamma, 1, dt, (k,))
    _arr("beta", beta, 1, dt, (k,))
    _running("running_mean", running_mean, dt, k)
    _running("running_var", running_var, dt, k)
    eps = _bn_eps(eps)
    Y = _out("out", out, (n, k), dt, Z=Z, gamma=gamma, beta=beta,
             running_mean=running_mean, running_var=running_var)
    if n == 0:
        return Y
    _call(backend, "batchnorm_inference", Z, gamma, beta, running_mean, running_var, eps, Y,
          check_threads(n_threads))
    return Y


def batchnorm_fold(W, b, gamma, beta, running_mean, running_var, eps=1e-5):
    """Merge inference-mode batch normalisation into the preceding dense layer.

    Returns ``(W', b')`` with ``X W' + b' == batchnorm_inference(X W + b, ...)``:
    ``W' = W * s`` and ``b' = (b - running_mean) * s + beta`` with
    ``s = gamma / sqrt(running_var + eps)`` (new arrays of W's dtype).

    Parameters
    ----------
    W : ndarray (d, k), float32 or float64
    b, gamma, beta, running_mean, running_var : ndarray (k,), same dtype
    eps : float, default=1e-5
    """
    dt = _float_dtype("W", W)
    _arr("W", W, 2, dt)
    k = W.shape[1]
    _arr("b", b, 1, dt, (k,))
    _arr("gamma", gamma, 1, dt, (k,))
    _arr("beta", beta, 1, dt, (k,))
    _running("running_mean", running_mean, dt, k)
    _running("running_var", running_var, dt, k)
    scale = gamma / np.sqrt(running_var + dt.type(_bn_eps(eps)))
    return W * scale, (b - running_mean) * scale + beta
