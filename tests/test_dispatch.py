"""The dispatcher's contract: backend registry, forcing, lazy imports and argument checks."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import rosenblatt
from conftest import unaligned
from rosenblatt import kernels as K

PYTHONPATH = os.pathsep.join(p for p in [os.path.dirname(os.path.dirname(rosenblatt.__file__)),
                                         os.environ.get("PYTHONPATH", "")] if p)


def run_py(code, env=None, extra_path=None):
    """Run ``code`` in a fresh interpreter that imports this checkout of rosenblatt."""
    e = dict(os.environ)
    e.pop("ROSENBLATT_BACKEND", None)
    e["PYTHONPATH"] = PYTHONPATH if extra_path is None else extra_path + os.pathsep + PYTHONPATH
    e.update(env or {})
    return subprocess.run([sys.executable, "-c", code], check=False, env=e, capture_output=True,
                          text=True, timeout=120)


# --------------------------------------------------------------------------------------
# registry and forcing


def test_available_backends():
    names = rosenblatt.available_backends()
    assert names == K.available_backends()
    assert names[-1] == "numpy"
    assert names == [b for b in K.BACKENDS if b in names]  # best first
    for name in names:
        assert K.resolve_backend(name) == name
        assert K.get_backend(name) is not None


def test_default_is_best_available(monkeypatch):
    monkeypatch.delenv("ROSENBLATT_BACKEND", raising=False)
    assert K.resolve_backend() == K.available_backends()[0]
    assert K.resolve_backend("auto") == K.available_backends()[0]


def test_unknown_backend_name():
    with pytest.raises(ValueError, match="backend"):
        K.resolve_backend("fortran")
    with pytest.raises(ValueError, match="backend"):
        K.dense_forward(np.ones((2, 2)), np.ones((2, 2)), np.ones(2), backend="fortran")


FORCE = """
import sys
from rosenblatt import kernels as K
import numpy as np
A = K.dense_forward(np.ones((2, 3)), np.ones((3, 2)), np.zeros(2), "relu")
assert (A == 3).all()
print(K.resolve_backend(), "numba" in sys.modules)
"""


@pytest.mark.parametrize("name", K.available_backends())
def test_env_forces_backend(name):
    r = run_py(FORCE, {"ROSENBLATT_BACKEND": name})
    assert r.returncode == 0, r.stderr
    resolved, numba_loaded = r.stdout.split()
    assert resolved == name
    if name != "numba":
        assert numba_loaded == "False"  # forcing another backend never touches numba


def test_env_unknown_name_fails_loudly():
    r = run_py(FORCE, {"ROSENBLATT_BACKEND": "fortran"})
    assert r.returncode != 0
    assert "ValueError" in r.stderr and "ROSENBLATT_BACKEND" in r.stderr


def test_env_unavailable_backend_fails_loudly(tmp_path):
    """A numba that cannot be imported: forcing it raises and says why, no fallback."""
    fake = tmp_path / "numba"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('numba is broken in this test')\n")
    r = run_py(FORCE, {"ROSENBLATT_BACKEND": "numba"}, extra_path=str(tmp_path))
    assert r.returncode != 0
    assert "RuntimeError" in r.stderr
    assert "ROSENBLATT_BACKEND='numba'" in r.stderr and "unavailable" in r.stderr
    assert "numba is broken in this test" in r.stderr


@pytest.mark.skipif("cpp" in K.available_backends(), reason="the C++ core is built here")
def test_env_missing_cpp_fails_loudly():
    r = run_py(FORCE, {"ROSENBLATT_BACKEND": "cpp"})
    assert r.returncode != 0
    assert "RuntimeError" in r.stderr and "unavailable" in r.stderr


def test_import_does_not_import_numba():
    code = ("import sys, json, rosenblatt; rosenblatt.available_backends(); "
            "from rosenblatt import kernels; kernels.resolve_backend('numpy'); "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('numba', 'llvmlite'))))")
    r = run_py(code)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []


def test_import_is_lazy():
    """``import rosenblatt`` alone imports neither numba (nor llvmlite), scikit-learn nor
    the compiled core: the estimators and backends load on first use (rosenblatt/__init__
    and kernels.py say so). How long the import takes is the benchmark suite's business
    (its import-time workload), not a test's."""
    code = ("import sys, json, rosenblatt; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('numba', 'llvmlite', 'sklearn') or m == 'rosenblatt._core')))")
    r = run_py(code)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []


# --------------------------------------------------------------------------------------
# bad input: the right exception, naming the argument, before any backend code runs


class _Unreachable:
    """A backend whose every kernel fails: validation must raise before any is called."""

    def __getattr__(self, name):
        def kernel(*args, **kwargs):
            raise AssertionError(f"backend kernel {name} was called before validation failed")

        return kernel


@pytest.fixture
def no_backend(monkeypatch):
    monkeypatch.setattr(K, "get_backend", lambda backend=None: _Unreachable())
    monkeypatch.setattr(K, "_probe", lambda name: _Unreachable())


def f64(*shape):
    return np.ones(shape, dtype=np.float64)


def ro(a):
    a = a.copy()
    a.flags.writeable = False
    return a


X, W, b = f64(4, 3), f64(3, 2), f64(2)
A = f64(4, 2)
I64 = np.arange(4, dtype=np.int64)
SQ = f64(3, 3)  # a square layer: its input would fit as its output
DW3 = f64(3, 3)  # a dW whose first row is passed as db too

BAD = [
    # (id, call, exception, words the message must contain)
    ("Z-list", lambda: K.activation_forward([[1.0]], "relu"), TypeError, "Z"),
    ("Z-int", lambda: K.activation_forward(np.ones((2, 2), int), "relu"), TypeError, "Z"),
    ("Z-1d", lambda: K.activation_forward(f64(3), "relu"), ValueError, "Z"),
    ("Z-strided", lambda: K.activation_forward(f64(4, 4)[:, ::2], "relu"), ValueError,
     "C-contiguous"),
    ("Z-fortran", lambda: K.activation_forward(np.asfortranarray(f64(3, 2)), "relu"),
     ValueError, "Z"),
    ("act-name", lambda: K.activation_forward(A, "swish"), ValueError, "activation"),
    ("act-code", lambda: K.activation_forward(A, 99), ValueError, "activation"),
    ("out-shape", lambda: K.activation_forward(A, "relu", out=f64(2, 4)), ValueError, "out"),
    ("out-dtype", lambda: K.activation_forward(A, "relu", out=A.astype(np.float32)),
     TypeError, "out"),
    ("out-readonly", lambda: K.activation_forward(A, "relu", out=ro(A)), ValueError, "out"),
    ("back-heaviside", lambda: K.activation_backward(A, A, A, "heaviside"), ValueError,
     "step function"),
    ("back-sign", lambda: K.activation_backward(A, A, A, "sign"), ValueError, "step function"),
    ("back-softmax", lambda: K.activation_backward(A, A, A, "softmax"), ValueError, "softmax"),
    ("back-dA-shape", lambda: K.activation_backward(A, A, f64(2, 4), "tanh"), ValueError,
     "dA"),
    ("back-dA-dtype", lambda: K.activation_backward(None, A, A.astype(np.float32), "tanh"),
     TypeError, "dA"),
    ("back-gelu-noZ", lambda: K.activation_backward(None, A, A, "gelu"), TypeError, "Z"),
    ("fwd-W-shape", lambda: K.dense_forward(X, f64(2, 2), b), ValueError, "W"),
    ("fwd-W-dtype", lambda: K.dense_forward(X, W.astype(np.float32), b), TypeError, "W"),
    ("fwd-b-len", lambda: K.dense_forward(X, W, f64(3)), ValueError, "b"),
    ("fwd-X-strided", lambda: K.dense_forward(f64(4, 6)[:, ::2], W, b), ValueError, "X"),
    ("fwd-X-unaligned", lambda: K.dense_forward(unaligned(f64(4, 3)), W, b), ValueError,
     "X must be aligned"),
    ("fwd-out-is-X", lambda: K.dense_forward(SQ, SQ.copy(), f64(3), out=SQ), ValueError,
     "out must not share memory with X"),
    ("fwd-out-is-W", lambda: K.dense_forward(f64(3, 3), SQ, f64(3), out=SQ), ValueError,
     "out must not share memory with W"),
    ("fwd-out-over-b", lambda: K.dense_forward(X, W, A[0], out=A), ValueError,
     "out must not share memory with b"),
    ("mlp-out-is-X", lambda: K.mlp_forward(SQ, f64(12), [3, 3], "relu", out=SQ), ValueError,
     "out must not share memory with X"),
    ("bwd-sign", lambda: K.dense_backward(X, W, A, A, "sign"), ValueError, "step function"),
    ("bwd-A-shape", lambda: K.dense_backward(X, W, f64(3, 2), A, "tanh"), ValueError, "A"),
    ("bwd-dA-len", lambda: K.dense_backward(X, W, A, f64(5, 2), "tanh"), ValueError, "dA"),
    ("bwd-l2-neg", lambda: K.dense_backward(X, W, A, A, "tanh", l2=-1.0), ValueError, "l2"),
    ("bwd-out-len", lambda: K.dense_backward(X, W, A, A, "tanh", out=(f64(3, 2), f64(2))),
     TypeError, "out must be a tuple (dW, db, dX); got tuple of length 2"),
    ("bwd-out-dX-unneeded", lambda: K.dense_backward(X, W, A, A, "tanh", need_dX=False,
                                                     out=(f64(3, 2), f64(2), f64(4, 3))),
     ValueError, "out's dX must be None when need_dX is False"),
    ("bwd-out-dW-shape", lambda: K.dense_backward(X, W, A, A, "tanh",
                                                  out=(f64(2, 3), f64(2), f64(4, 3))),
     ValueError, "dW must have shape (3, 2)"),
    ("bwd-out-dX-is-X", lambda: K.dense_backward(X, W, A, A, "tanh",
                                                 out=(f64(3, 2), f64(2), X)),
     ValueError, "dX must not share memory with X"),
    ("bwd-out-db-in-dW", lambda: K.dense_backward(SQ, SQ, SQ, SQ, "tanh",
                                                  out=(DW3, DW3[0], f64(3, 3))),
     ValueError, "db must not share memory with dW"),
    ("bwd-l2-nan", lambda: K.dense_backward(X, W, A, A, "tanh", l2=np.nan), ValueError, "l2"),
    ("bwd-softplus-noZ", lambda: K.dense_backward(X, W, A, A, "softplus"), TypeError, "Z"),
    ("loss-Y-shape", lambda: K.loss_gradient(A, f64(4, 3), "squared_error"), ValueError, "Y"),
    ("loss-sw-len", lambda: K.loss_gradient(A, A, "squared_error", sample_weight=f64(3)),
     ValueError, "sample_weight"),
    ("loss-sw-neg", lambda: K.loss_gradient(A, A, "squared_error", sample_weight=-f64(4)),
     ValueError, "sample_weight"),
    ("loss-name", lambda: K.loss_gradient(A, A, "hinge"), ValueError, "loss"),
    ("loss-code", lambda: K.loss_gradient(A, A, 42), ValueError, "loss"),
    ("loss-empty", lambda: K.loss_gradient(f64(0, 2), f64(0, 2), "squared_error"), ValueError,
     "P"),
    ("loss-delta", lambda: K.loss_gradient(A, A, "huber", huber_delta=0.0), ValueError,
     "huber_delta"),
    ("sgd-params-ro", lambda: K.sgd_step(ro(f64(5)), f64(5), f64(5), lr=0.1), ValueError,
     "params"),
    ("sgd-grads-len", lambda: K.sgd_step(f64(5), f64(4), f64(5), lr=0.1), ValueError,
     "grads"),
    ("sgd-velocity-dtype", lambda: K.sgd_step(f64(5), f64(5), np.ones(5, np.float32), lr=0.1),
     TypeError, "velocity"),
    ("sgd-lr-neg", lambda: K.sgd_step(f64(5), f64(5), f64(5), lr=-0.1), ValueError, "lr"),
    ("sgd-momentum-inf", lambda: K.sgd_step(f64(5), f64(5), f64(5), lr=0.1, momentum=np.inf),
     ValueError, "momentum"),
    ("sgd-lr-str", lambda: K.sgd_step(f64(5), f64(5), f64(5), lr="fast"), TypeError, "lr"),
    ("adam-t0", lambda: K.adam_step(f64(5), f64(5), f64(5), f64(5), t=0), ValueError, "t"),
    ("adam-beta1", lambda: K.adam_step(f64(5), f64(5), f64(5), f64(5), t=1, beta1=1.0),
     ValueError, "beta1"),
    ("adam-m-ro", lambda: K.adam_step(f64(5), f64(5), ro(f64(5)), f64(5), t=1), ValueError,
     "m"),
    ("adam-eps0", lambda: K.adam_step(f64(5), f64(5), f64(5), f64(5), t=1, eps=0.0),
     ValueError, "eps"),
    ("rmsprop-rho", lambda: K.rmsprop_step(f64(5), f64(5), f64(5), lr=0.1, rho=1.0),
     ValueError, "rho"),
    ("adagrad-accum-len", lambda: K.adagrad_step(f64(5), f64(5), f64(6), lr=0.1), ValueError,
     "accum"),
    ("mlp-X-cols", lambda: K.mlp_forward(f64(4, 2), f64(8), [3, 2], "relu"), ValueError, "X"),
    ("mlp-params-len", lambda: K.mlp_forward(X, f64(7), [3, 2], "relu"), ValueError, "params"),
    ("mlp-acts-count", lambda: K.mlp_forward(X, f64(8), [3, 2], ["relu", "relu"]), ValueError,
     "activations"),
    ("mlp-hidden-softmax", lambda: K.mlp_forward(X, f64(17), [3, 2, 3], ["softmax", "relu"]),
     ValueError, "hidden layer"),
    ("mlp-sizes-zero", lambda: K.mlp_forward(X, f64(8), [3, 0, 2], "relu"), ValueError,
     "layer_sizes"),
    ("threads-neg", lambda: K.activation_forward(A, "relu", n_threads=-1), ValueError,
     "n_threads"),
    ("threads-str", lambda: K.activation_forward(A, "relu", n_threads="2"), TypeError,
     "n_threads"),
    ("pcp-Y-values", lambda: K.perceptron_epoch(X, f64(4, 2) * 2, f64(3, 2), f64(2)),
     ValueError, "Y"),
    ("pcp-step-relu", lambda: K.perceptron_epoch(X, A, f64(3, 2), f64(2), step="relu"),
     ValueError, "heaviside"),
    ("pcp-W-shape", lambda: K.perceptron_epoch(X, A, f64(2, 2), f64(2)), ValueError, "W"),
    ("pcp-W-ro", lambda: K.perceptron_epoch(X, A, ro(f64(3, 2)), f64(2)), ValueError, "W"),
    ("pcp-eta0", lambda: K.perceptron_epoch(X, A, f64(3, 2), f64(2), eta=0.0), ValueError,
     "eta"),
    ("pcp-order-range", lambda: K.perceptron_epoch(X, A, f64(3, 2), f64(2), order=I64 + 1),
     ValueError, "order"),
    ("pcp-order-dtype", lambda: K.perceptron_epoch(X, A, f64(3, 2), f64(2),
                                                   order=I64.astype(np.int32)),
     TypeError, "order"),
    ("shuffle-ro", lambda: K.xorshift_shuffle(ro(I64), 3), ValueError, "order"),
    ("shuffle-seed", lambda: K.xorshift_shuffle(I64.copy(), -1), ValueError, "seed"),
    ("shuffle-dtype", lambda: K.xorshift_shuffle(I64.astype(np.int32), 1), TypeError, "order"),
    ("sk-y-values", lambda: K.perceptron_epoch_sklearn(X, f64(4) * 0, f64(3), f64(1)),
     ValueError, "y"),
    ("sk-y-dtype", lambda: K.perceptron_epoch_sklearn(X, np.ones(4, np.float32), f64(3),
                                                      f64(1)), TypeError, "y"),
    ("sk-b-shape", lambda: K.perceptron_epoch_sklearn(X, f64(4), f64(3), f64(2)), ValueError,
     "b"),
    ("sk-cw-shape", lambda: K.perceptron_epoch_sklearn(X, f64(4), f64(3), f64(1),
                                                       class_weight=(1.0, 1.0, 1.0)),
     ValueError, "class_weight"),
    ("sk-sw-dtype", lambda: K.perceptron_epoch_sklearn(X, f64(4), f64(3), f64(1),
                                                       sample_weight=np.ones(4, np.float32)),
     TypeError, "sample_weight"),
    ("fit-Y-shape", lambda: K.perceptron_fit_sklearn(X, f64(2, 5), f64(2, 3), f64(2),
                                                     I64[:2]), ValueError, "Y"),
    ("fit-seeds-dtype", lambda: K.perceptron_fit_sklearn(X, f64(2, 4), f64(2, 3), f64(2),
                                                         I64[:2].astype(np.int32)),
     TypeError, "seeds"),
    ("fit-max-iter", lambda: K.perceptron_fit_sklearn(X, f64(2, 4), f64(2, 3), f64(2),
                                                      I64[:2].copy(), max_iter=0),
     ValueError, "max_iter"),
    ("fit-B-dtype", lambda: K.perceptron_fit_sklearn(X.astype(np.float32), f64(2, 4),
                                                     np.ones((2, 3), np.float32),
                                                     np.ones(2, np.float32), I64[:2].copy()),
     TypeError, "B"),
    ("fit-X-empty", lambda: K.perceptron_fit_sklearn(f64(0, 3), f64(2, 0), f64(2, 3), f64(2),
                                                     I64[:2].copy()), ValueError, "X"),
    ("fit-n-iter-dtype", lambda: K.perceptron_fit_sklearn(X, f64(2, 4), f64(2, 3), f64(2),
                                                          I64[:2].copy(), n_iter=f64(2)),
     TypeError, "n_iter"),
    ("fit-n-iter-ro", lambda: K.perceptron_fit_sklearn(X, f64(2, 4), f64(2, 3), f64(2),
                                                       I64[:2].copy(), n_iter=ro(I64[:2])),
     ValueError, "n_iter"),
]


@pytest.mark.parametrize(("call", "exc", "words"), [c[1:] for c in BAD],
                         ids=[c[0] for c in BAD])
def test_bad_input(no_backend, call, exc, words):
    with pytest.raises(exc) as info:
        call()
    assert words in str(info.value), str(info.value)


def _trainer(**kw):
    args = {"X": f64(6, 3), "Y": f64(6, 2), "params": f64(8), "layer_sizes": [3, 2],
            "activations": ["identity"], "loss": "squared_error", "optimizer": "adam",
            "hyper": {}, "batch_size": 2}
    args.update(kw)
    return K.Trainer(**args)


BAD_TRAINER = [
    ("Y-cols", {"Y": f64(6, 3)}, ValueError, "Y"),
    ("Y-dtype", {"Y": np.ones((6, 2), np.float32)}, TypeError, "Y"),
    ("X-cols", {"X": f64(6, 4)}, ValueError, "X"),
    ("X-empty", {"X": f64(0, 3), "Y": f64(0, 2)}, ValueError, "X"),
    ("params-len", {"params": f64(9)}, ValueError, "params"),
    ("params-ro", {"params": ro(f64(8))}, ValueError, "params"),
    ("sw-len", {"sample_weight": f64(5)}, ValueError, "sample_weight"),
    ("step-hidden", {"layer_sizes": [3, 2, 2], "params": f64(14),
                     "activations": ["heaviside", "identity"]}, ValueError, "step function"),
    ("step-output", {"activations": ["sign"]}, ValueError, "step function"),
    ("softmax-mse", {"activations": ["softmax"]}, ValueError, "softmax"),
    ("logloss-identity", {"loss": "log_loss"}, ValueError, "log_loss"),
    ("poisson-relu", {"loss": "poisson", "activations": ["relu"]}, ValueError, "exp"),
    ("loss-name", {"loss": "hinge"}, ValueError, "loss"),
    ("optimizer-name", {"optimizer": "lbfgs"}, ValueError, "optimizer"),
    ("batch-zero", {"batch_size": 0}, ValueError, "batch_size"),
    ("batch-float", {"batch_size": 2.0}, ValueError, "batch_size"),
    ("hyper-key", {"hyper": {"learning_rate": 0.1}}, ValueError, "hyper"),
    ("hyper-lr", {"hyper": {"lr": -1.0}}, ValueError, "lr"),
    ("state-shape", {"state": f64(1, 8)}, ValueError, "state"),
    ("params-over-X", {"X": (_XP := f64(6, 3)), "params": _XP.reshape(-1)[:8]}, ValueError,
     "params must not share memory with X"),
    ("X-unaligned", {"X": unaligned(f64(6, 3))}, ValueError, "X must be aligned"),
]


@pytest.mark.parametrize(("kw", "exc", "words"), [c[1:] for c in BAD_TRAINER],
                         ids=[c[0] for c in BAD_TRAINER])
def test_bad_trainer(no_backend, kw, exc, words):
    with pytest.raises(exc) as info:
        _trainer(**kw)
    assert words in str(info.value), str(info.value)


@pytest.mark.parametrize(("order", "exc"), [
    (np.arange(6, dtype=np.float64), TypeError),
    (np.arange(6, dtype=np.int32), TypeError),
    (np.arange(1, 7, dtype=np.int64), ValueError),
    (-np.arange(6, dtype=np.int64), ValueError),
    (np.zeros((2, 3), dtype=np.int64), ValueError),
    (np.arange(12, dtype=np.int64)[::2], ValueError),
    ([0, 1, 2], TypeError),
])
def test_bad_order(order, exc):
    tr = _trainer()
    tr._be = _Unreachable()
    with pytest.raises(exc, match="order"):
        tr.run_epoch(order)


# --------------------------------------------------------------------------------------
# inputs stay untouched, and read-only inputs are accepted


def _frozen(rng, shape, dtype=np.float64, low=-1.0, high=1.0):
    a = rng.uniform(low, high, shape).astype(dtype)
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("backend", K.available_backends())
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_inputs_never_modified(backend, dtype):
    """Every kernel on read-only inputs: it must neither fail nor write to them."""
    rng = np.random.default_rng(0)
    n, k, m = 6, 5, 3
    Xr, Wr, br = _frozen(rng, (n, k), dtype), _frozen(rng, (k, m), dtype), _frozen(rng, m, dtype)
    Ar = _frozen(rng, (n, m), dtype, 0.1, 0.9)
    dAr = _frozen(rng, (n, m), dtype)
    Yr = np.eye(m, dtype=dtype)[rng.integers(0, m, n)]
    Yr.flags.writeable = False
    swr = _frozen(rng, n, dtype, 0.5, 1.5)
    inputs = [Xr, Wr, br, Ar, dAr, Yr, swr]
    before = [a.copy() for a in inputs]
    kw = {"backend": backend}
    K.activation_forward(Xr, "gelu", **kw)
    K.activation_backward(Ar, Ar, dAr, "gelu", **kw)
    K.softmax(Xr, **kw)
    K.dense_forward(Xr, Wr, br, "tanh", return_z=True, **kw)
    for act in ("identity", "tanh", "softplus"):
        K.dense_backward(Xr, Wr, Ar, dAr, act, Z=dAr, l2=0.1, **kw)
    K.loss_gradient(Ar, Yr, "log_loss", sample_weight=swr, **kw)
    g = _frozen(rng, 7, dtype)
    p, s1, s2 = np.zeros(7, dtype), np.zeros(7, dtype), np.zeros(7, dtype)
    K.sgd_step(p, g, s1, lr=0.1, momentum=0.9, **kw)
    K.adam_step(p, g, s1, s2, t=1, **kw)
    params = _frozen(rng, K.param_offsets([k, 4, m])[1], dtype)
    K.mlp_forward(Xr, params, [k, 4, m], ["relu", "softmax"], **kw)
    order = np.arange(n, dtype=np.int64)
    order.flags.writeable = False
    p = params.copy()
    tr = K.Trainer(Xr, Yr, p, [k, 4, m], ["relu", "softmax"], "log_loss", "adam", {"lr": 0.1},
                   4, sample_weight=swr, track_grad_norms=True, **kw)
    tr.run_epoch(order)
    assert not np.array_equal(p, params)  # the parameters do train
    Yb = np.where(Yr > 0, 1.0, 0.0).astype(dtype)
    K.perceptron_epoch(Xr, Yb, np.zeros((k, m), dtype), np.zeros(m, dtype), order=order, **kw)
    y = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    y.flags.writeable = False
    K.perceptron_epoch_sklearn(Xr, y, np.zeros(k, dtype), np.zeros(1), order=order, **kw)
    Ypm = np.where(rng.random((2, n)) < 0.5, -1.0, 1.0)
    Ypm.flags.writeable = False
    seeds = np.array([1, 2], dtype=np.int64)
    seeds.flags.writeable = False
    K.perceptron_fit_sklearn(Xr, Ypm, np.zeros((2, k), dtype), np.zeros(2), seeds,
                             max_iter=3, **kw)
    for a, b0 in zip(inputs, before, strict=True):
        np.testing.assert_array_equal(a, b0)
    np.testing.assert_array_equal(order, np.arange(n))


# --------------------------------------------------------------------------------------
# concurrency: kernels release the GIL and share no mutable state


@pytest.mark.parametrize("backend", K.available_backends())
def test_concurrent_calls_match_serial(backend):
    """Several Python threads training and predicting at once get the serial results."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(7)
    ls = [6, 16, 3]
    X = rng.standard_normal((64, 6))
    Y = np.eye(3)[rng.integers(0, 3, 64)]
    starts = [rng.standard_normal(K.param_offsets(ls)[1]) * 0.3 for _ in range(4)]
    order = rng.permutation(64).astype(np.int64)

    def job(p0):
        p = p0.copy()
        tr = K.Trainer(X, Y, p, ls, ["tanh", "softmax"], "log_loss", "adam", {"lr": 0.01}, 8,
                       backend=backend, n_threads=1)
        losses = [tr.run_epoch(order) for _ in range(5)]
        return p, losses, K.mlp_forward(X, p, ls, ["tanh", "softmax"], backend=backend)

    serial = [job(p0) for p0 in starts]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(job, starts))
    for (p1, l1, o1), (p2, l2, o2) in zip(serial, threaded, strict=True):
        np.testing.assert_array_equal(p1, p2)
        assert l1 == l2
        np.testing.assert_array_equal(o1, o2)


# --------------------------------------------------------------------------------------
# every backend module implements every kernel of the reference, with its signature


def _ref_kernels():
    import inspect

    from rosenblatt import _kernels_ref as R

    # the pure bookkeeping helpers (param_offsets, ...) are the reference's, shared by all
    bookkeeping = {"param_offsets", "unpack_params", "train_workspace_size",
                   "mlp_workspace_size"}
    return {name: inspect.signature(f) for name, f in vars(R).items()
            if inspect.isfunction(f) and not name.startswith("_") and f.__module__ == R.__name__
            and name not in bookkeeping}


@pytest.mark.parametrize("name", [b for b in K.available_backends() if b != "numpy"])
def test_backend_has_every_kernel(name):
    import inspect

    mod = K.get_backend(name)
    for kernel, sig in _ref_kernels().items():
        f = getattr(mod, kernel, None)
        assert callable(f), f"backend {name} lacks {kernel}"
        try:
            got = inspect.signature(f)
        except (TypeError, ValueError):  # a compiled builtin without a signature
            continue
        assert list(got.parameters) == list(sig.parameters), f"{name}.{kernel}{got} != {sig}"


def _compiled_parameters(f):
    """Parameter names of a pybind11 function, from its docstring's signature line."""
    import re

    doc = (f.__doc__ or "").strip().splitlines()
    m = re.match(r"\w+\((.*)\)\s*->", doc[0]) if doc else None
    if m is None:
        return None
    return [p.split(":")[0].strip() for p in m.group(1).split(",") if p.strip()]


@pytest.mark.skipif("cpp" not in K.available_backends(), reason="the C++ core is not built")
def test_compiled_core_signatures():
    """The compiled builtins have no inspect.signature: read pybind11's docstrings."""
    mod = K.get_backend("cpp")
    checked = 0
    for kernel, sig in _ref_kernels().items():
        got = _compiled_parameters(getattr(mod, kernel))
        if got is None:  # a Python fallback: test_backend_has_every_kernel checks it
            continue
        assert got == list(sig.parameters), f"cpp.{kernel}({', '.join(got)}) != {sig}"
        checked += 1
    assert checked >= 3


# --------------------------------------------------------------------------------------
# batch normalisation: bad input


Zb, gb = f64(4, 3), f64(3)

BAD_BN = [
    ("bn-Z-list", lambda: K.batchnorm_forward([[1.0]], f64(1), f64(1)), TypeError, "Z"),
    ("bn-Z-1d", lambda: K.batchnorm_forward(f64(3), gb, gb), ValueError, "Z"),
    ("bn-Z-empty", lambda: K.batchnorm_forward(f64(0, 3), gb, gb), ValueError, "row"),
    ("bn-Z-strided", lambda: K.batchnorm_forward(f64(4, 6)[:, ::2], gb, gb), ValueError,
     "C-contiguous"),
    ("bn-gamma-len", lambda: K.batchnorm_forward(Zb, f64(4), gb), ValueError, "gamma"),
    ("bn-beta-dtype", lambda: K.batchnorm_forward(Zb, gb, gb.astype(np.float32)), TypeError,
     "beta"),
    ("bn-eps-zero", lambda: K.batchnorm_forward(Zb, gb, gb, 0.0), ValueError, "eps"),
    ("bn-eps-nan", lambda: K.batchnorm_forward(Zb, gb, gb, np.nan), ValueError, "eps"),
    ("bn-eps-str", lambda: K.batchnorm_forward(Zb, gb, gb, "small"), TypeError, "eps"),
    ("bn-out-ro", lambda: K.batchnorm_forward(Zb, gb, gb, out=ro(Zb)), ValueError, "out"),
    ("bn-out-shape", lambda: K.batchnorm_forward(Zb, gb, gb, out=f64(3, 4)), ValueError,
     "out"),
    ("bn-threads", lambda: K.batchnorm_forward(Zb, gb, gb, n_threads=-2), ValueError,
     "n_threads"),
    ("bnb-Xhat-shape", lambda: K.batchnorm_backward(Zb, f64(3, 3), gb, gb), ValueError,
     "Xhat"),
    ("bnb-invstd-len", lambda: K.batchnorm_backward(Zb, Zb, gb, f64(2)), ValueError,
     "invstd"),
    ("bnb-gamma-dtype", lambda: K.batchnorm_backward(Zb, Zb, gb.astype(np.float32), gb),
     TypeError, "gamma"),
    ("bnb-dY-empty", lambda: K.batchnorm_backward(f64(0, 3), f64(0, 3), gb, gb), ValueError,
     "dY"),
    ("bni-var-neg", lambda: K.batchnorm_inference(Zb, gb, gb, gb, -gb), ValueError,
     "running_var"),
    ("bni-mean-len", lambda: K.batchnorm_inference(Zb, gb, gb, f64(4), gb), ValueError,
     "running_mean"),
    ("bni-eps-neg", lambda: K.batchnorm_inference(Zb, gb, gb, gb, gb, eps=-1.0), ValueError,
     "eps"),
    ("fold-W-shape", lambda: K.batchnorm_fold(f64(2, 4), gb, gb, gb, gb, gb), ValueError,
     "b"),
    ("fold-var-neg", lambda: K.batchnorm_fold(f64(2, 3), gb, gb, gb, gb, -gb), ValueError,
     "running_var"),
]


@pytest.mark.parametrize(("call", "exc", "words"), [c[1:] for c in BAD_BN],
                         ids=[c[0] for c in BAD_BN])
def test_bad_batchnorm_input(no_backend, call, exc, words):
    with pytest.raises(exc) as info:
        call()
    assert words in str(info.value), str(info.value)


@pytest.mark.skipif("cpp" not in K.available_backends(), reason="the C++ core is not built")
@pytest.mark.parametrize(("args", "exc", "words"), [
    ((f64(0, 3), gb, gb, 1e-5, f64(0, 3), f64(0, 3), gb.copy(), gb.copy()), ValueError, "row"),
    ((Zb, f64(2), gb, 1e-5, Zb.copy(), Zb.copy(), gb.copy(), gb.copy()), ValueError, "gamma"),
    ((Zb, gb, gb, 1e-5, ro(Zb), Zb.copy(), gb.copy(), gb.copy()), ValueError, "Y"),
    ((Zb, gb, gb, 0.0, Zb.copy(), Zb.copy(), gb.copy(), gb.copy()), ValueError, "eps"),
    ((Zb, gb, gb, 1e-5, Zb.copy(), Zb.copy(), gb.copy(), np.ones(3, np.float32)), TypeError,
     "invstd"),
])
def test_core_batchnorm_checks(args, exc, words):
    """The compiled core's own safety net (direct callers bypass kernels.py)."""
    with pytest.raises(exc, match=words):
        K.get_backend("cpp").batchnorm_forward(*args)


@pytest.mark.parametrize("backend", K.available_backends())
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_batchnorm_inputs_never_modified(backend, dtype):
    """The batch-norm kernels on read-only inputs: no failure, no write."""
    rng = np.random.default_rng(1)
    n, k = 9, 17
    Zr, dYr = _frozen(rng, (n, k), dtype), _frozen(rng, (n, k), dtype)
    gr, br, mr = _frozen(rng, k, dtype), _frozen(rng, k, dtype), _frozen(rng, k, dtype)
    vr = _frozen(rng, k, dtype, 0.1, 2.0)
    inputs = [Zr, dYr, gr, br, mr, vr]
    before = [a.copy() for a in inputs]
    kw = {"backend": backend}
    _, Xhat, _, invstd = K.batchnorm_forward(Zr, gr, br, **kw)
    Xhat.flags.writeable = False
    invstd.flags.writeable = False
    K.batchnorm_backward(dYr, Xhat, gr, invstd, **kw)
    K.batchnorm_inference(Zr, gr, br, mr, vr, **kw)
    K.batchnorm_fold(_frozen(rng, (3, k), dtype), br, gr, br, mr, vr)
    for a, b0 in zip(inputs, before, strict=True):
        np.testing.assert_array_equal(a, b0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_while_the_registry_lock_is_held():
    # another thread of the parent holds the backend registry's lock at the fork: the
    # child must not wait for it forever (every fit looks a backend up)
    with K._lock:
        pid = os.fork()
        if pid == 0:  # child: exit code 0 only if a lookup finishes
            code = 1
            try:
                K._errors.pop("numpy", None)
                K._loaded.pop("numpy", None)  # force the locked path
                if K._lock.acquire(timeout=5):
                    K._lock.release()
                    code = 0 if K._probe("numpy") is not None else 1
            finally:
                os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
