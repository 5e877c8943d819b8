"""The fast paths: tiny layers and one-row prediction.

- The compiled core's GEMV path (cpp/include/rosenblatt/gemv.hpp: products with few rows,
  and tiny products) against the NumPy reference, for both dtypes and every activation,
  with sizes crossing the SIMD lane edges and the column split between threads; its results
  must not depend on the thread count at all (bit-identical), since threads split columns.
- The dispatcher's lean argument checks (kernels.dense_forward / dense_backward): bad input
  that enters them raises exactly the error of the general checks, before any backend code;
  good input never reaches the general checks; both paths compute the same bits. For the
  compiled core the fast path hands the arguments to the binding unchecked: its native
  checks must refuse every bad argument before computing, and the message is still the
  general checks' one.
- The METH_FASTCALL bindings: keyword arguments and argument errors still work.
- MLP predict on one row: the fast validation keeps scikit-learn's errors.
"""

import itertools

import numpy as np
import pytest
from conftest import assert_close, isa_params, result_at_isa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rosenblatt import _codes as C
from rosenblatt import _kernels_ref as R
from rosenblatt import kernels as K

HAVE_CPP = "cpp" in K.available_backends()
needs_cpp = pytest.mark.skipif(not HAVE_CPP, reason="the C++ core is not built")

ACTS = tuple(C.ACTIVATIONS)
DIFF_ACTS = tuple(a for a in ACTS
                  if C.ACTIVATIONS[a] not in C.STEPS and C.ACTIVATIONS[a] != C.SOFTMAX)
# lane edges of 4, 8 and 16 lanes; 33 is also past the depth (32) from which B is streamed
EDGES = (1, 7, 8, 9, 15, 16, 17, 33)


def settings_(n):
    return settings(max_examples=n, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _data(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def _layer(seed, m, k, n, dtype):
    rng = np.random.default_rng(seed)
    return (_data(rng, (m, k), dtype), _data(rng, (k, n), dtype, 1 / np.sqrt(k)),
            _data(rng, (n,), dtype))


def _reference_forward(X, W, b, act):
    """The NumPy reference in float64 on the same (possibly float32) inputs."""
    X64, W64, b64 = (a.astype(np.float64) for a in (X, W, b))
    A = np.empty((X.shape[0], W.shape[1]))
    Z = np.empty_like(A)
    R.dense_forward(X64, W64, b64, C.ACTIVATIONS[act], A, Z)
    return A, Z


def _forward_threads(X, W, b, act, threads=(1, 2)):
    """(A, Z) per thread count through the dispatcher; asserts they are bit-identical."""
    outs = [K.dense_forward(X, W, b, act, return_z=True, backend="cpp", n_threads=nt)
            for nt in threads]
    for A, Z in outs[1:]:
        np.testing.assert_array_equal(A, outs[0][0])
        np.testing.assert_array_equal(Z, outs[0][1])
    return outs[0]


# --------------------------------------------------------------------------------------
# the GEMV path of the compiled core


@needs_cpp
@pytest.mark.parametrize("act", ACTS)
@settings_(12)
@given(m=st.integers(1, 4), k=st.sampled_from(EDGES + (64, 129)),
       n=st.sampled_from(EDGES), seed=st.integers(0, 2**32 - 1))
@example(m=1, k=1, n=1, seed=0)
@example(m=4, k=33, n=33, seed=1)
@example(m=2, k=40, n=1030, seed=2)  # past one 4 KiB pass of columns (1024 f32, 512 f64)
def test_gemv_matches_reference(dtype, act, m, k, n, seed):
    X, W, b = _layer(seed, m, k, n, dtype)
    A, Z = _forward_threads(X, W, b, act)
    rA, rZ = _reference_forward(X, W, b, act)
    assert_close(Z, rZ, dtype, k, err_msg="Z")
    assert_close(A, rA, dtype, k, err_msg="A")


@needs_cpp
@pytest.mark.parametrize("m", [1, 2, 3, 4])
@pytest.mark.parametrize("k, n", [(784, 300), (700, 1100), (300, 2200)])
@pytest.mark.parametrize("act", ["relu", "tanh", "softmax", "identity"])
def test_gemv_thread_split_is_bit_identical(dtype, m, k, n, act):
    """One thread per MiB of B: 784 x 300 stays on one (float32 and float64), the others
    split over 2 and 3 threads (column ranges at cache lines; 2200 columns also cross a
    4 KiB pass within a thread)."""
    X, W, b = _layer(m * 1000 + k, m, k, n, dtype)
    A, Z = _forward_threads(X, W, b, act, threads=(1, 2, 3))
    rA, rZ = _reference_forward(X, W, b, act)
    assert_close(Z, rZ, dtype, k, err_msg="Z")
    assert_close(A, rA, dtype, k, err_msg="A")


@needs_cpp
@pytest.mark.parametrize("act", ["tanh", "relu", "softmax", "gelu"])
@pytest.mark.parametrize("m, k, n", [(10, 2, 8), (5, 8, 8), (33, 2, 17), (10, 8, 3),
                                     (7, 9, 15)])
def test_tiny_products_match_reference(dtype, act, m, k, n):
    """Products small enough for the register-blocked form whatever the number of rows."""
    X, W, b = _layer(m + k + n, m, k, n, dtype)
    A, Z = _forward_threads(X, W, b, act)
    rA, rZ = _reference_forward(X, W, b, act)
    assert_close(Z, rZ, dtype, k, err_msg="Z")
    assert_close(A, rA, dtype, k, err_msg="A")


@needs_cpp
@pytest.mark.parametrize("act", ["tanh", "softplus"])
@settings_(15)
@given(k=st.integers(1, 4), m=st.sampled_from(EDGES), n=st.sampled_from((1, 10, 64, 200)),
       l2=st.sampled_from([0.0, 0.25]), seed=st.integers(0, 2**32 - 1))
def test_backward_with_few_features(dtype, act, k, m, n, l2, seed):
    """dW = X^T dZ + l2 W has k <= 4 rows: the GEMV path with a strided A and an addend."""
    X, W, b = _layer(seed, n, k, m, dtype)
    A, Z = K.dense_forward(X, W, b, act, return_z=True, backend="numpy")
    dA = _data(np.random.default_rng(seed + 1), (n, m), dtype)
    outs = [K.dense_backward(X, W, A, dA, act, Z=Z, l2=l2, backend="cpp", n_threads=nt)
            for nt in (1, 2)]
    for a, b2 in zip(outs[0], outs[1], strict=True):
        np.testing.assert_array_equal(a, b2)
    ref = K.dense_backward(X, W, A, dA, act, Z=Z, l2=l2, backend="numpy")
    for name, got, want in zip(("dW", "db", "dX"), outs[0], ref, strict=True):
        assert_close(got, want, dtype, max(n, m), err_msg=name)


# products of 1-4 rows with column counts (and depths) at every lane edge: the edges of
# the current ISA's lanes are among them whichever ISA runs
GEMV_EDGE_SHAPES = tuple((m, k, n) for m in (1, 2, 3, 4) for k in (1, 17)
                         for n in (*EDGES, 31, 67))


def gemv_battery():
    """GEMV and tiny shapes against the reference; run once per ISA (subprocess)."""
    for dtype in (np.float32, np.float64):
        for m, k, n in ((1, 784, 300), (3, 33, 17), (4, 7, 9), (2, 129, 1000), (10, 2, 8),
                        (1, 16, 15), (1, 300, 2200), *GEMV_EDGE_SHAPES):
            for act in ("tanh", "relu", "softmax"):
                X, W, b = _layer(m + k + n, m, k, n, dtype)
                A, Z = _forward_threads(X, W, b, act, threads=(1, 2))
                rA, rZ = _reference_forward(X, W, b, act)
                assert_close(Z, rZ, dtype, k, err_msg=f"Z {m}x{k}x{n} {act}")
                assert_close(A, rA, dtype, k, err_msg=f"A {m}x{k}x{n} {act}")


@needs_cpp
@pytest.mark.parametrize("isa", isa_params())
def test_gemv_every_isa(isa):
    result_at_isa(isa, "test_fast_paths", "gemv_battery", keep_backend=False)


# --------------------------------------------------------------------------------------
# the compiled bindings (METH_FASTCALL): keywords, defaults and argument errors


@needs_cpp
def test_fastcall_bindings_take_keywords_and_check_arguments():
    from rosenblatt import _core

    X, W, b = _layer(0, 4, 3, 2, np.float64)
    A1, A2 = np.empty((4, 2)), np.empty((4, 2))
    _core.dense_forward(X, W, b, C.TANH, A1)  # Z and n_threads default
    _core.dense_forward(A=A2, b=b, W=W, X=X, activation=C.TANH, n_threads=None)
    np.testing.assert_array_equal(A1, A2)
    dW, db = np.empty((3, 2)), np.empty(2)
    _core.dense_backward(X, W, A1, None, A1, C.TANH, l2=0.5, dW=dW, db=db, dX=None)
    with pytest.raises(TypeError, match="unexpected keyword argument 'Y'"):
        _core.dense_forward(X, W, b, C.TANH, A1, Y=None)
    with pytest.raises(TypeError, match="multiple values for argument 'W'"):
        _core.dense_forward(X, W, b, C.TANH, A1, W=W)
    with pytest.raises(TypeError, match="missing required argument 'A'"):
        _core.dense_forward(X, W, b, C.TANH)
    with pytest.raises(TypeError, match="at most 7 arguments"):
        _core.dense_forward(X, W, b, C.TANH, A1, None, 1, 2)
    with pytest.raises(TypeError, match="activation"):
        _core.dense_forward(X, W, b, 4.0, A1)
    with pytest.raises(TypeError, match="l2"):
        _core.dense_backward(X, W, A1, None, A1, C.TANH, "0.5", dW, db, None)
    with pytest.raises(TypeError, match="n_threads"):
        _core.mlp_forward(X, np.zeros(8), np.array([3, 2]), np.array([0], np.int32),
                          A1, np.empty(8), "2")
    # a subclass and an equivalent (non-builtin) dtype instance take the general check
    sub = X.view(type("Sub", (np.ndarray,), {}))
    _core.dense_forward(sub, W, b, C.TANH, A2)
    np.testing.assert_array_equal(A1, A2)
    Xn = X.astype(np.dtype("=f8").newbyteorder("="))
    _core.dense_forward(Xn, W, b, C.TANH, A2)
    np.testing.assert_array_equal(A1, A2)
    with pytest.raises(TypeError, match="dtype"):  # byte-swapped: not our float64
        _core.dense_forward(X.astype(X.dtype.newbyteorder()), W, b, C.TANH, A2)
    # outputs apart from the inputs (an output over an input would be read half written)
    S = np.ones((3, 3))
    with pytest.raises(ValueError, match="A must not share memory with X"):
        _core.dense_forward(S, S.copy(), np.ones(3), C.TANH, S)
    with pytest.raises(ValueError, match="Z must not share memory with W"):
        _core.dense_forward(np.ones((3, 3)), S, np.ones(3), C.TANH, np.empty((3, 3)), S)
    with pytest.raises(ValueError, match="A must not share memory with Z"):
        _core.dense_forward(X, W, b, C.TANH, A2, A2)
    with pytest.raises(ValueError, match="dW must not share memory with X"):
        _core.dense_backward(S, S.copy(), A1[:3, :1].copy().repeat(3, 1), None,
                             np.ones((3, 3)), C.TANH, 0.0, S, np.empty(3), None)
    with pytest.raises(ValueError, match="dX must not share memory with dA"):
        dA = np.ones((3, 3))
        _core.dense_backward(np.ones((3, 3)), S, np.ones((3, 3)), None, dA, C.TANH, 0.0,
                             np.empty((3, 3)), np.empty(3), dA)
    with pytest.raises(ValueError, match="out must not share memory with X"):
        _core.mlp_forward(S, np.zeros(12), np.array([3, 3]), np.array([0], np.int32), S,
                          np.empty(18), 1)
    with pytest.raises(ValueError, match="workspace must not share memory with params"):
        P = np.zeros(12)
        _core.mlp_forward(np.ones((1, 3)), P, np.array([3, 3]), np.array([0], np.int32),
                          np.empty((1, 3)), P, 1)


# --------------------------------------------------------------------------------------
# the dispatcher's fast path


def _f64(*shape):
    return np.ones(shape)


def _ro(a):
    a = a.copy()
    a.flags.writeable = False
    return a


_X, _W, _b, _A = _f64(4, 3), _f64(3, 2), _f64(2), _f64(4, 2)
_CW = "W must have shape (3, '*'); got (2, 2) (axis 0)"
_STRIDED = "must be C-contiguous; got a strided view (use numpy.ascontiguousarray)"
_SQ = _f64(3, 3)  # a square layer: its input fits as its output
_APART = "the kernel reads {0} while it writes out; pass a separate array"

# Bad arguments that pass the fast path's first gate (exact ndarrays, a str activation, an
# int n_threads): its later tests fail and the general checks raise. The messages are
# those the dispatcher gave before it had a fast path.
BAD = [
    ("X-f16", lambda: K.dense_forward(_X.astype(np.float16), _W, _b, "tanh", n_threads=1),
     TypeError, "X must have dtype float32 or float64; got float16"),
    ("W-f32", lambda: K.dense_forward(_X, _W.astype(np.float32), _b, "tanh", n_threads=1),
     TypeError, "W must have dtype float64; got float32"),
    ("b-f32", lambda: K.dense_forward(_X, _W, _b.astype(np.float32), "tanh", n_threads=1),
     TypeError, "b must have dtype float64; got float32"),
    ("X-1d", lambda: K.dense_forward(_f64(3), _W, _b, "tanh", n_threads=1), ValueError,
     "X must be 2-D; got shape (3,)"),
    ("W-rows", lambda: K.dense_forward(_X, _f64(2, 2), _b, "tanh", n_threads=1), ValueError,
     _CW),
    ("b-len", lambda: K.dense_forward(_X, _W, _f64(3), "tanh", n_threads=1), ValueError,
     "b must have shape (2,); got (3,) (axis 0)"),
    ("b-2d", lambda: K.dense_forward(_X, _W, _f64(1, 2), "tanh", n_threads=1), ValueError,
     "b must be 1-D; got shape (1, 2)"),
    ("X-strided", lambda: K.dense_forward(_f64(4, 6)[:, ::2], _W, _b, "tanh", n_threads=1),
     ValueError, "X " + _STRIDED),
    ("W-fortran", lambda: K.dense_forward(_X, np.asfortranarray(_f64(3, 2)), _b, "tanh"),
     ValueError, "W " + _STRIDED),
    ("out-shape", lambda: K.dense_forward(_X, _W, _b, "tanh", out=_f64(2, 4)), ValueError,
     "out must have shape (4, 2); got (2, 4) (axis 0)"),
    ("out-dtype", lambda: K.dense_forward(_X, _W, _b, "tanh", out=_A.astype(np.float32)),
     TypeError, "out must have dtype float64; got float32"),
    ("out-readonly", lambda: K.dense_forward(_X, _W, _b, "tanh", out=_ro(_A)), ValueError,
     "out is written in place but is read-only"),
    ("out-strided", lambda: K.dense_forward(_X, _W, _b, "tanh", out=_f64(4, 4)[:, ::2]),
     ValueError, "out " + _STRIDED),
    ("out-list", lambda: K.dense_forward(_X, _W, _b, "tanh", out=[[0.0] * 2] * 4), TypeError,
     "out must be a numpy.ndarray; got list"),
    ("out-is-X", lambda: K.dense_forward(_SQ, _SQ.copy(), _f64(3), "tanh", out=_SQ),
     ValueError, "out must not share memory with X: " + _APART.format("X")),
    ("out-is-W", lambda: K.dense_forward(_f64(3, 3), _SQ, _f64(3), "tanh", out=_SQ),
     ValueError, "out must not share memory with W: " + _APART.format("W")),
    ("out-over-b", lambda: K.dense_forward(_X, _W, _A[1], "tanh", out=_A), ValueError,
     "out must not share memory with b: " + _APART.format("b")),
    ("act-name", lambda: K.dense_forward(_X, _W, _b, "swish"), ValueError,
     ("activation must be one of ['elu', 'exp', 'gelu', 'heaviside', 'identity', "
      "'leaky_relu', 'logistic', 'relu', 'sign', 'softmax', 'softplus', 'tanh']; "
      "got 'swish'")),
    ("threads-neg", lambda: K.dense_forward(_X, _W, _b, "tanh", n_threads=-1), ValueError,
     "n_threads must be >= 0 (0 = library default); got -1"),
    ("threads-bool", lambda: K.dense_forward(_X, _W, _b, "tanh", n_threads=True), TypeError,
     "n_threads must be an int or None; got bool"),
    ("backend-name", lambda: K.dense_forward(_X, _W, _b, "tanh", backend="fortran"),
     ValueError, "backend must be one of 'auto', 'cpp', 'numba', 'numpy'; got 'fortran'"),
    ("bwd-A-shape", lambda: K.dense_backward(_X, _W, _f64(3, 2), _A, "tanh", n_threads=1),
     ValueError, "A must have shape (4, 2); got (3, 2) (axis 0)"),
    ("bwd-dA-shape", lambda: K.dense_backward(_X, _W, _A, _f64(4, 3), "tanh"), ValueError,
     "dA must have shape (4, 2); got (4, 3) (axis 1)"),
    ("bwd-dA-dtype", lambda: K.dense_backward(_X, _W, _A, _A.astype(np.float32), "tanh"),
     TypeError, "dA must have dtype float64; got float32"),
    ("bwd-Z-shape", lambda: K.dense_backward(_X, _W, _A, _A, "tanh", Z=_f64(4, 3)),
     ValueError, "Z must have shape (4, 2); got (4, 3) (axis 1)"),
    ("bwd-Z-missing", lambda: K.dense_backward(_X, _W, _A, _A, "softplus"), TypeError,
     "Z is required; got None"),
    ("bwd-Z-strided", lambda: K.dense_backward(_X, _W, _A, _A, "gelu", Z=_f64(4, 4)[:, ::2]),
     ValueError, "Z " + _STRIDED),
    ("bwd-sign", lambda: K.dense_backward(_X, _W, _A, _A, "sign"), ValueError,
     ("activation 'sign' is a step function: it is forward-only (its derivative is zero "
      "almost everywhere, so it cannot be trained by backpropagation); use logistic, tanh "
      "or relu to train")),
    ("bwd-softmax", lambda: K.dense_backward(_X, _W, _A, _A, "softmax"), ValueError,
     ("softmax has no elementwise derivative; pair it with log_loss, whose gradient "
      "w.r.t. the pre-activation is P - Y")),
    ("bwd-l2-neg", lambda: K.dense_backward(_X, _W, _A, _A, "tanh", l2=-1.0), ValueError,
     "l2 must be >= 0.0; got -1.0"),
    ("bwd-l2-nan", lambda: K.dense_backward(_X, _W, _A, _A, "tanh", l2=float("nan")),
     ValueError, "l2 must be finite; got nan"),
    ("bwd-l2-inf", lambda: K.dense_backward(_X, _W, _A, _A, "tanh", l2=float("inf")),
     ValueError, "l2 must be finite; got inf"),
    ("bwd-W-rows", lambda: K.dense_backward(_X, _f64(2, 2), _A, _A, "tanh"), ValueError, _CW),
    ("bwd-X-strided", lambda: K.dense_backward(_f64(4, 6)[:, ::2], _W, _A, _A, "tanh"),
     ValueError, "X " + _STRIDED),
]


class _Unreachable:
    """A backend whose every kernel fails: nothing may be called on bad input."""

    def __getattr__(self, name):
        def kernel(*args, **kwargs):
            raise AssertionError(f"backend kernel {name} was called on bad input")

        return kernel


@pytest.mark.parametrize(("call", "exc", "message"), [c[1:] for c in BAD],
                         ids=[c[0] for c in BAD])
def test_bad_input_through_the_fast_path(monkeypatch, call, exc, message):
    # every backend "loaded" and the default resolved: the fast path runs all its tests
    unreachable = _Unreachable()
    monkeypatch.setattr(K, "_FAST_MODULES", dict.fromkeys(K.BACKENDS, unreachable))
    monkeypatch.setattr(K, "_DEFAULT", ["numpy"])
    monkeypatch.setattr(K, "_probe", lambda name: unreachable)
    resolve = K.resolve_backend  # still rejects unknown names
    monkeypatch.setattr(K, "get_backend", lambda backend=None: resolve(backend) and unreachable)
    monkeypatch.delenv("ROSENBLATT_BACKEND", raising=False)
    with pytest.raises(exc) as info:
        call()
    assert str(info.value) == message


class _Spy:
    """The compiled backend, counting the kernel calls that return (no error)."""

    def __init__(self, module):
        self.module = module
        self.returned = []

    def __getattr__(self, name):
        real = getattr(self.module, name)

        def kernel(*args, **kwargs):
            result = real(*args, **kwargs)
            self.returned.append(name)
            return result

        return kernel


@needs_cpp
@pytest.mark.parametrize(("call", "exc", "message"), [c[1:] for c in BAD],
                         ids=[c[0] for c in BAD])
def test_bad_input_through_the_compiled_fast_path(monkeypatch, call, exc, message):
    # the compiled core's fast path hands the arguments to the binding unchecked: the
    # binding must refuse every bad one before computing, and the general checks then
    # raise the same message as above
    spy = _Spy(K.get_backend("cpp"))
    monkeypatch.setattr(K, "_FAST_MODULES", dict.fromkeys(K.BACKENDS, spy))
    monkeypatch.setattr(K, "_SELF_CHECKING", {spy})
    monkeypatch.setattr(K, "_DEFAULT", ["cpp"])
    unreachable = _Unreachable()  # the general path must raise before any kernel
    monkeypatch.setattr(K, "_probe", lambda name: unreachable)
    resolve = K.resolve_backend
    monkeypatch.setattr(K, "get_backend", lambda backend=None: resolve(backend) and unreachable)
    monkeypatch.delenv("ROSENBLATT_BACKEND", raising=False)
    inputs = [a.copy() for a in (_X, _W, _b, _A, _SQ)]
    with pytest.raises(exc) as info:
        call()
    assert str(info.value) == message
    assert spy.returned == []  # no kernel computed
    for a, before in zip((_X, _W, _b, _A, _SQ), inputs, strict=True):
        np.testing.assert_array_equal(a, before)


def _no_general_checks(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("good input reached the general checks")

    for name in ("_arr", "_float_dtype", "_out", "check_threads", "_finite_scalar",
                 "activation_code"):
        monkeypatch.setattr(K, name, boom)


@pytest.mark.parametrize("backend", [None, "auto"] + K.available_backends())
def test_good_input_takes_the_fast_path(monkeypatch, dtype, backend):
    # (without ROSENBLATT_BACKEND for both calls: the default must resolve alike)
    monkeypatch.delenv("ROSENBLATT_BACKEND", raising=False)
    X, W, b = _layer(3, 10, 2, 8, dtype)
    A0, Z0 = K.dense_forward(X, W, b, "tanh", return_z=True, backend=backend)  # loads it
    dW0, db0, dX0 = K.dense_backward(X, W, A0, A0, "softplus", Z=Z0, l2=0.5, backend=backend)
    _no_general_checks(monkeypatch)
    out = np.empty_like(A0)
    A, Z = K.dense_forward(X, W, b, "tanh", out=out, return_z=True, backend=backend,
                           n_threads=1)
    assert A is out
    np.testing.assert_array_equal(A, A0)
    np.testing.assert_array_equal(Z, Z0)
    np.testing.assert_array_equal(K.dense_forward(X, W, b, "tanh", backend=backend), A0)
    for got, want in zip(K.dense_backward(X, W, A0, A0, "softplus", Z=Z0, l2=0.5,
                                          backend=backend), (dW0, db0, dX0), strict=True):
        np.testing.assert_array_equal(got, want)
    dW, db, dX = K.dense_backward(X, W, A0, A0, "relu", need_dX=False, backend=backend)
    assert dX is None and dW.shape == W.shape and db.shape == b.shape


@needs_cpp
def test_backward_into_given_outputs_takes_the_fast_path(monkeypatch, dtype):
    X, W, b = _layer(3, 10, 2, 8, dtype)
    A = K.dense_forward(X, W, b, "tanh")
    want = K.dense_backward(X, W, A, A, "tanh", l2=0.5, backend="cpp")
    _no_general_checks(monkeypatch)
    outs = tuple(np.full_like(w, np.nan) for w in want)
    got = K.dense_backward(X, W, A, A, "tanh", l2=0.5, out=outs, backend="cpp", n_threads=1)
    assert all(g is o for g, o in zip(got, outs, strict=True))
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("backend", K.available_backends())
def test_fast_and_general_paths_agree(dtype, backend):
    """Same bits whichever path validated the call (np.int64 n_threads: general path)."""
    X, W, b = _layer(5, 6, 5, 3, dtype)
    Xr = X.copy()
    Xr.flags.writeable = False  # read-only inputs are fine
    for act in ("identity", "tanh", "softmax"):
        fast = K.dense_forward(Xr, W, b, act, return_z=True, backend=backend, n_threads=1)
        general = K.dense_forward(Xr, W, b, act, return_z=True, backend=backend,
                                  n_threads=np.int64(1))
        for f, g in zip(fast, general, strict=True):
            np.testing.assert_array_equal(f, g)
    A = fast[0]
    fast = K.dense_backward(Xr, W, A, A, "tanh", l2=0.1, backend=backend, n_threads=1)
    general = K.dense_backward(Xr, W, A, A, "tanh", l2=0.1, backend=backend,
                               n_threads=np.int64(1))
    for f, g in zip(fast, general, strict=True):
        np.testing.assert_array_equal(f, g)
    np.testing.assert_array_equal(Xr, X)  # the caller's arrays are never modified


def test_env_forces_the_backend_on_the_fast_path(monkeypatch):
    X, W, b = _layer(0, 3, 2, 4, np.float64)
    K.dense_forward(X, W, b, "tanh")  # the default is resolved and loaded
    calls = []

    class Spy:
        def dense_forward(self, *args):
            calls.append(args[3])
            R.dense_forward(*args)

    monkeypatch.setitem(K._FAST_MODULES, "numpy", Spy())
    monkeypatch.setenv("ROSENBLATT_BACKEND", "numpy")
    K.dense_forward(X, W, b, "tanh")
    K.dense_forward(X, W, b, "relu", backend="auto")
    assert calls == [C.TANH, C.RELU]
    monkeypatch.setenv("ROSENBLATT_BACKEND", "fortran")
    with pytest.raises(ValueError, match="ROSENBLATT_BACKEND"):
        K.dense_forward(X, W, b, "tanh")


# --------------------------------------------------------------------------------------
# predict on one row


def _net(dtype=np.float32, backend=None):
    from rosenblatt import MLPClassifier

    rng = np.random.default_rng(0)
    sizes = [20, 16, 8, 3]
    Ws = [(rng.standard_normal((a, c)) * 0.3).astype(dtype)
          for a, c in itertools.pairwise(sizes)]
    bs = [(rng.standard_normal(c) * 0.1).astype(dtype) for c in sizes[1:]]
    kw = {} if backend is None else {"backend": backend}
    return MLPClassifier.from_weights(Ws, bs, classes=np.array([3, 5, 7]), **kw)


def _sklearn_net(dtype=np.float32):
    from sklearn.neural_network import MLPClassifier as SkMLP

    ours = _net(dtype)
    sk = SkMLP(hidden_layer_sizes=(16, 8))
    sk.coefs_ = [W.copy() for W in ours.coefs_]
    sk.intercepts_ = [b.copy() for b in ours.intercepts_]
    sk.n_features_in_, sk.n_outputs_, sk.n_layers_ = 20, 3, 4
    sk.out_activation_ = "softmax"
    sk.classes_ = ours.classes_
    from sklearn.preprocessing import LabelBinarizer

    sk._label_binarizer = LabelBinarizer().fit(ours.classes_)
    return ours, sk


@pytest.mark.parametrize("backend", K.available_backends())
def test_predict_one_row_fast_path_matches_general(backend):
    clf = _net(backend=backend)
    rng = np.random.default_rng(1)
    row = rng.standard_normal((1, 20)).astype(np.float32)
    fast = clf.predict_proba(row)
    for other in (row.tolist(), row.astype(np.float64), np.asfortranarray(row),
                  np.vstack([row, row])[:1]):
        np.testing.assert_array_equal(clf.predict_proba(other), fast)
    assert clf.predict(row).tolist() == [clf.classes_[fast.argmax()]]
    # large but finite values: accepted, without warnings (pytest turns them into errors)
    huge = np.full((1, 20), 1e20, np.float32)
    assert clf.predict_proba(huge).shape == (1, 3)


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "features", "1d", "empty"])
def test_predict_one_row_errors_match_sklearn(bad):
    ours, sk = _sklearn_net()
    row = np.random.default_rng(2).standard_normal((1, 20)).astype(np.float32)
    if bad in ("nan", "inf", "-inf"):
        row[0, 7] = float(bad)
    elif bad == "features":
        row = row[:, :19].copy()
    elif bad == "1d":
        row = row[0]
    else:
        row = row[:0]
    errors = []
    for est in (ours, sk):
        with pytest.raises(ValueError) as info:
            est.predict(row)
        errors.append(str(info.value))
    assert errors[0] == errors[1]
