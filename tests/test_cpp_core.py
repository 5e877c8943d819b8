"""Tests specific to the compiled core ``rosenblatt._core``.

The broad property tests of every kernel across backends live elsewhere; these check what
only the C++ core has: the codes table compiled into it, each ISA path (forced through
``ROSENBLATT_ISA`` in a subprocess, since dispatch happens at import), tile edges of the
GEMM, bit-identical results run to run and across thread counts, concurrent callers,
and that the binding rejects bad arrays with TypeError/ValueError instead of crashing.
"""

import functools
import hashlib
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

_core = pytest.importorskip("rosenblatt._core")

from conftest import assert_isas_agree, isa_params, result_at_isa, run_at_isa
from rosenblatt import _codes as C
from rosenblatt import _kernels_ref as R

DTYPES = (np.float32, np.float64)
# batch 1 / width 1, lanes - 1, lanes, lanes + 1 for 4, 8 and 16 lanes (float64 and float32
# on AVX2 and AVX-512), two 16-lane vectors +- 1, and several vectors plus a remainder
LANE_EDGES = (1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 67)
# activations that dense_backward / activation_backward accept
DIFFERENTIABLE = sorted(set(C.ACTIVATION_NAMES) - set(C.STEPS) - {C.SOFTMAX})
# (n, k, m): batch 1, width 1, lanes +- 1 (8/16 fp32, 4/8 fp64), MR edges (4/6/14),
# several register tiles plus a remainder, and k past one and two k-blocks (the depth is
# 256-1024 by ISA, dtype and threads: 407 fp32 and 320 fp64 on one AVX2 thread, 1024 for
# AVX-512)
SHAPES = [
    (1, 1, 1), (1, 5, 17), (3, 2, 8), (10, 2, 8), (7, 9, 15), (8, 16, 16), (9, 17, 33),
    (15, 31, 7), (29, 40, 100), (33, 300, 10), (64, 257, 49), (200, 130, 100), (5, 700, 3),
    (3001, 7, 5),  # many A blocks of few columns
    (70, 1030, 40),  # packed B, two or more k blocks for every ISA
    (13, 64, 70), (32, 100, 100),  # last rows split 4 + 3 and 4 + 4 (AVX2)
    # dX of few rows computed as (W dZ^T)^T (dense.hpp, dx_product): its smallest case and
    # both sides of its row limit (8 B panels, at most 128 rows: 128 / 64 rows for AVX2 float /
    # double, 128 for AVX-512)
    (3, 40, 5), (64, 50, 60), (65, 50, 60), (128, 50, 60), (129, 50, 60),
]


def _tol(dt, k=1):
    # float32 sums of k products: error grows with the reduction length
    if dt == np.float32:
        return {"rtol": 2e-4 * max(1.0, np.sqrt(k) / 4), "atol": 2e-5 * max(1.0, np.sqrt(k))}
    return {"rtol": 1e-10, "atol": 1e-12 * max(1.0, k)}


def _data(rng, shape, dt, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dt)


# --------------------------------------------------------------------------------------
# the battery run in-process for the default ISA and in a subprocess per forced ISA


def check_dense_forward(dts=DTYPES, shapes=SHAPES, acts=tuple(C.ACTIVATION_NAMES)):
    rng = np.random.default_rng(1)
    for dt in dts:
        for n, k, m in shapes:
            X = _data(rng, (n, k), dt)
            W = _data(rng, (k, m), dt, 1 / np.sqrt(k))
            b = _data(rng, (m,), dt)
            for act in acts:
                A = np.full((n, m), np.nan, dt)
                Z = np.full((n, m), np.nan, dt)
                _core.dense_forward(X, W, b, act, A, Z, 1)
                Zr = X.astype(np.float64) @ W.astype(np.float64) + b
                Ar = np.empty((n, m), np.float64)
                R.activation_forward(Zr, act, Ar)
                tol = _tol(dt, k)
                np.testing.assert_allclose(Z, Zr, **tol, err_msg=f"Z {dt} {n, k, m} {act}")
                if act not in C.STEPS:  # steps flip on rounding-level differences near 0
                    np.testing.assert_allclose(A, Ar, **tol, err_msg=f"A {dt} {n, k, m} {act}")
                else:
                    Ast = np.empty_like(A)
                    R.activation_forward(Z, act, Ast)
                    np.testing.assert_array_equal(A, Ast)
                # without Z the same A, to the bit
                A2 = np.full((n, m), np.nan, dt)
                _core.dense_forward(X, W, b, act, A2, None, 1)
                np.testing.assert_array_equal(A, A2)


def check_dense_backward(dts=DTYPES, shapes=SHAPES):
    rng = np.random.default_rng(2)
    for dt in dts:
        for n, k, m in shapes:
            X = _data(rng, (n, k), dt)
            W = _data(rng, (k, m), dt, 1 / np.sqrt(k))
            b = _data(rng, (m,), dt)
            dA = _data(rng, (n, m), dt)
            for act in DIFFERENTIABLE:
                A = np.empty((n, m), dt)
                Z = np.empty((n, m), dt)
                _core.dense_forward(X, W, b, act, A, Z, 1)
                dW, db, dX = np.empty((k, m), dt), np.empty(m, dt), np.empty((n, k), dt)
                _core.dense_backward(X, W, A, Z, dA, act, 0.25, dW, db, dX, 1)
                rW, rb, rX = np.empty((k, m)), np.empty(m), np.empty((n, k))
                f64 = [v.astype(np.float64) for v in (X, W, A, Z, dA)]
                R.dense_backward(*f64[:5], act, 0.25, rW, rb, rX)
                np.testing.assert_allclose(dW, rW, **_tol(dt, n), err_msg=f"dW {dt} {n, k, m}")
                np.testing.assert_allclose(db, rb, **_tol(dt, n), err_msg=f"db {dt} {n, k, m}")
                np.testing.assert_allclose(dX, rX, **_tol(dt, m), err_msg=f"dX {dt} {n, k, m}")
                dW2, db2 = np.empty_like(dW), np.empty_like(db)
                _core.dense_backward(X, W, A, Z, dA, act, 0.25, dW2, db2, None, 1)
                np.testing.assert_array_equal(dW, dW2)
                np.testing.assert_array_equal(db, db2)


def check_elementwise():
    rng = np.random.default_rng(3)
    for dt in DTYPES:
        for shape in ((1, 1), (3, 7), (5, 33), (2, 1000), *((1, e) for e in LANE_EDGES)):
            Z = _data(rng, shape, dt, 3.0)
            Z.flat[::5] = 0.0  # the steps' (and relu's) edge, both signs of zero
            Z.flat[2::10] = -0.0
            for act in C.ACTIVATION_NAMES:
                A = np.empty_like(Z)
                _core.activation_forward(Z, act, A, 1)
                Ar = np.empty(shape)
                R.activation_forward(Z.astype(np.float64), act, Ar)
                if act not in C.STEPS:
                    np.testing.assert_allclose(A, Ar, **_tol(dt), err_msg=f"{act} {dt}")
                else:  # no rounding in a step of the same Z: equal to the reference
                    np.testing.assert_array_equal(A, Ar.astype(dt),
                                                  err_msg=f"{act} {dt} {shape}")
                if act in DIFFERENTIABLE:
                    dA = _data(rng, shape, dt)
                    dZ = np.empty_like(Z)
                    _core.activation_backward(Z, A, dA, act, dZ, 1)
                    rZ = np.empty(shape)
                    R.activation_backward(*(v.astype(np.float64) for v in (Z, A, dA)), act, rZ)
                    np.testing.assert_allclose(dZ, rZ, **_tol(dt), err_msg=f"d{act} {dt}")


def check_softmax():
    rng = np.random.default_rng(12)
    for dt in DTYPES:
        for n, m in ((1, 1), (9, 13), *((3, e) for e in LANE_EDGES), (1, 1000)):
            for scale in (1.0, 30.0):
                Z = _data(rng, (n, m), dt, scale)
                A = np.empty_like(Z)
                _core.softmax(Z, A, 1)
                Ar = np.empty(Z.shape)
                R.softmax(Z.astype(np.float64), Ar)
                tag = f"softmax {np.dtype(dt).name} {n, m} scale {scale}"
                np.testing.assert_allclose(A, Ar, **_tol(dt, m), err_msg=tag)
                np.testing.assert_allclose(A.sum(axis=1), 1.0, rtol=1e-5, err_msg=tag)
                A2 = np.empty_like(Z)  # the same through activation_forward
                _core.activation_forward(Z, C.SOFTMAX, A2, 1)
                np.testing.assert_array_equal(A2, A, err_msg=tag)


def _loss_inputs(rng, loss, n, k, dt):
    if loss in (C.BINARY_LOG_LOSS, C.LOG_LOSS):
        P = rng.uniform(0.01, 0.99, (n, k)).astype(dt)
        Y = (rng.uniform(size=(n, k)) < 0.5).astype(dt)
    elif loss == C.POISSON:
        P = rng.uniform(0.1, 3, (n, k)).astype(dt)
        Y = rng.poisson(1.0, (n, k)).astype(dt)
    else:
        P, Y = _data(rng, (n, k), dt), _data(rng, (n, k), dt)
    return P, Y


def check_losses():
    """loss_gradient of every loss, batch 1, width 1 and the lane edges, with and without
    sample weights, against the reference (as test_loss_gradient)."""
    rng = np.random.default_rng(13)
    shapes = [(1, 1), *((1, e) for e in LANE_EDGES), *((e, 3) for e in LANE_EDGES), (67, 17)]
    for dt in DTYPES:
        for loss in sorted(C.LOSS_NAMES):
            for n, k in shapes:
                P, Y = _loss_inputs(rng, loss, n, k, dt)
                for sw in (None, rng.uniform(0.5, 2, n).astype(dt)):
                    tag = f"{C.LOSS_NAMES[loss]} {np.dtype(dt).name} {n, k} sw={sw is not None}"
                    G = np.empty_like(P)
                    v = _core.loss_gradient(P, Y, sw, loss, 0.7, G, 1)
                    Gr = np.empty_like(P)
                    vr = R.loss_gradient(P, Y, sw, loss, 0.7, Gr)
                    assert v == pytest.approx(vr, rel=1e-12), tag
                    np.testing.assert_allclose(G, Gr, rtol=1e-6 if dt == np.float32 else 1e-14,
                                               err_msg=tag)


def _optimizer_cases():
    """(name, step(module, arrays, t)) for every optimizer: sgd with and without momentum,
    nesterov, adagrad, rmsprop, adam, and adamw (weight decay)."""
    return [
        ("sgd", lambda m, a, t: m.sgd_step(a[0], a[1], a[2], 0.1, 0.0, False, 1)),
        ("momentum", lambda m, a, t: m.sgd_step(a[0], a[1], a[2], 0.1, 0.9, False, 1)),
        ("nesterov", lambda m, a, t: m.sgd_step(a[0], a[1], a[2], 0.1, 0.9, True, 1)),
        ("adagrad", lambda m, a, t: m.adagrad_step(a[0], a[1], a[2], 0.1, 1e-8, 1)),
        ("rmsprop", lambda m, a, t: m.rmsprop_step(a[0], a[1], a[2], 0.1, 0.9, 1e-8, 1)),
        ("adam", lambda m, a, t: m.adam_step(a[0], a[1], a[2], a[3], 1e-3, 0.9, 0.999, 1e-8,
                                             0.0, t, 1)),
        ("adamw", lambda m, a, t: m.adam_step(a[0], a[1], a[2], a[3], 1e-3, 0.9, 0.999, 1e-8,
                                              0.01, t, 1)),
    ]


def check_optimizers():
    """Every optimizer step over lengths at the lane edges and several vectors plus a
    remainder: the reference's bits (optimizers.hpp: operation by operation, no FMA), so
    the same bits at every ISA. Three steps, so the state carries over. 200003 values are
    split over the threads (7 chunks in two parts, optimizers.hpp: over_chunks)."""
    rng = np.random.default_rng(14)
    for dt in DTYPES:
        for size in (*LANE_EDGES, 1003, 200003):
            p = _data(rng, size, dt)
            s1 = _data(rng, size, dt, 0.1)
            s2 = np.abs(_data(rng, size, dt, 0.1))
            grads = [_data(rng, size, dt) for _ in range(3)]
            for name, step in _optimizer_cases():
                if name in ("adagrad", "rmsprop"):  # squared-gradient sums: non-negative
                    state = [np.abs(s1), s2]
                else:
                    state = [s1, s2]
                mine = [p.copy(), None, state[0].copy(), state[1].copy()]
                ref = [p.copy(), None, state[0].copy(), state[1].copy()]
                for t, g in enumerate(grads, start=5):
                    mine[1], ref[1] = g, g
                    step(_core, mine, t)
                    step(R, ref, t)
                for i in (0, 2, 3):
                    np.testing.assert_array_equal(
                        mine[i], ref[i], err_msg=f"{name} {np.dtype(dt).name} {size} [{i}]")


def check_batchnorm():
    """Forward, backward and inference over column counts at the lane edges, against the
    reference (tolerance as test_kernels); the results feed the cross-ISA digest, since a
    column's arithmetic does not depend on the vector width (batchnorm.hpp)."""
    from conftest import assert_close

    rng = np.random.default_rng(15)
    digest = hashlib.sha1()
    for dt in DTYPES:
        for n in (1, 2, 3, 31):
            for k in LANE_EDGES:
                Z = _data(rng, (n, k), dt, 2.0) + dt(3.0)
                gamma, beta = _data(rng, k, dt) + dt(1.0), _data(rng, k, dt)
                dY = _data(rng, (n, k), dt)
                rm, rv = _data(rng, k, dt), (rng.random(k) * 3).astype(dt)
                rv[0] = 0.0  # eps alone keeps the scale finite
                tag = f"{np.dtype(dt).name} {n, k}"
                fwd = [np.empty((n, k), dt), np.empty((n, k), dt), np.empty(k, dt),
                       np.empty(k, dt)]
                ref = [np.empty_like(a) for a in fwd]
                _core.batchnorm_forward(Z, gamma, beta, 1e-5, *fwd, 1)
                R.batchnorm_forward(Z, gamma, beta, 1e-5, *ref)
                for name, got, want in zip(("Y", "Xhat", "mean", "invstd"), fwd, ref,
                                           strict=True):
                    assert_close(got, want, dt, n, err_msg=f"batchnorm_forward {name} {tag}")
                Xhat, invstd = ref[1], ref[3]
                bwd = [np.empty((n, k), dt), np.empty(k, dt), np.empty(k, dt)]
                rbwd = [np.empty_like(a) for a in bwd]
                _core.batchnorm_backward(dY, Xhat, gamma, invstd, *bwd, 1)
                R.batchnorm_backward(dY, Xhat, gamma, invstd, *rbwd)
                for name, got, want in zip(("dZ", "dgamma", "dbeta"), bwd, rbwd, strict=True):
                    assert_close(got, want, dt, n, err_msg=f"batchnorm_backward {name} {tag}")
                inf, rinf = np.empty((n, k), dt), np.empty((n, k), dt)
                _core.batchnorm_inference(Z, gamma, beta, rm, rv, 1e-5, inf, 1)
                R.batchnorm_inference(Z, gamma, beta, rm, rv, 1e-5, rinf)
                assert_close(inf, rinf, dt, err_msg=f"batchnorm_inference {tag}")
                for a in (*fwd, *bwd, inf):
                    digest.update(a.tobytes())
        # large enough for column blocks on two threads: the same bits as one
        n, k = 520, 133
        Z = _data(rng, (n, k), dt, 2.0)
        gamma, beta = _data(rng, k, dt) + dt(1.0), _data(rng, k, dt)
        dY = _data(rng, (n, k), dt)
        runs = []
        for nt in (1, 2):
            fwd = [np.empty((n, k), dt), np.empty((n, k), dt), np.empty(k, dt),
                   np.empty(k, dt)]
            _core.batchnorm_forward(Z, gamma, beta, 1e-5, *fwd, nt)
            bwd = [np.empty((n, k), dt), np.empty(k, dt), np.empty(k, dt)]
            _core.batchnorm_backward(dY, fwd[1], gamma, fwd[3], *bwd, nt)
            runs.append(fwd + bwd)
        for a, b in zip(*runs, strict=True):
            np.testing.assert_array_equal(a, b, err_msg=f"batchnorm threads {dt}")
            digest.update(a.tobytes())
    return digest.hexdigest()


def battery():
    """Everything that depends on the ISA; run once per ISA.

    Returns digests of the results the library promises bit-identical at every ISA and
    that are not already compared bit for bit with the reference here (the optimizers
    are): test_isas_agree_bit_for_bit compares them across ISAs.
    """
    check_dense_forward()
    check_dense_backward()
    check_elementwise()
    check_softmax()
    check_losses()
    check_optimizers()
    bn = check_batchnorm()
    check_determinism()
    return {"batchnorm": bn}


def check_determinism():
    """Same bits run to run and on one thread or two (every product is one FMA chain per
    element; db sums rows in order however dense_backward splits its first pass:
    (1024, 64, 300) splits the columns of dZ between the threads, (8192, 16, 10) has too few
    columns for that and sums them on one thread after f' on both; (200, 100, 10) computes
    dW transposed)."""
    rng = np.random.default_rng(4)
    for dt in DTYPES:
        for n, k, m in ((200, 300, 100), (33, 300, 10), (7, 9, 15), (32, 784, 300),
                        (1024, 64, 300), (8192, 16, 10), (200, 100, 10), (15, 784, 300),
                        (57, 784, 49), (256, 300, 100)):
            X = _data(rng, (n, k), dt)
            W = _data(rng, (k, m), dt)
            b = _data(rng, (m,), dt)
            dA = _data(rng, (n, m), dt)
            outs = []
            for nt in (2, 2, 1):
                A = np.empty((n, m), dt)
                _core.dense_forward(X, W, b, C.TANH, A, None, nt)
                dW, db, dX = np.empty((k, m), dt), np.empty(m, dt), np.empty((n, k), dt)
                _core.dense_backward(X, W, A, None, dA, C.TANH, 0.1, dW, db, dX, nt)
                outs.append((A, dW, db, dX))
            for a, b2, b1 in zip(*outs):
                np.testing.assert_array_equal(a, b2)  # same thread count: bit-identical
                np.testing.assert_array_equal(a, b1)  # and one thread: the same bits


# --------------------------------------------------------------------------------------
# tests


def test_codes_tables_agree():
    cpp = _core.codes()
    for name, value in cpp.items():
        assert hasattr(C, name), f"{name} is in codes.hpp but not in _codes.py"
        assert getattr(C, name) == value, f"{name}: C++ {value} != Python {getattr(C, name)}"
    for name in dir(C):
        value = getattr(C, name)
        if name.isupper() and isinstance(value, (int, float)) and not isinstance(value, bool):
            assert name in cpp, f"{name} is in _codes.py but not in codes.hpp"


def test_isa_listing():
    isas = _core.available_isas()
    assert isas[-1] == "baseline"
    assert _core.isa() in isas
    assert set(isas) <= set(_core.compiled_isas())
    if not os.environ.get("ROSENBLATT_ISA"):
        assert _core.isa() == isas[0]


@functools.cache
def _forced_battery(isa):
    """The battery at ``isa`` in a subprocess (once per session); its digests."""
    return result_at_isa(isa, "test_cpp_core", "battery")


@pytest.mark.parametrize("isa", isa_params())
def test_forced_isa_battery(isa):
    _forced_battery(isa)


def test_isas_agree_bit_for_bit():
    isas = _core.available_isas()
    if len(isas) < 2:
        pytest.skip(f"one ISA here ({isas[0]}): nothing to compare")
    assert_isas_agree({isa: _forced_battery(isa) for isa in isas})


@pytest.mark.parametrize("isa", ["bogus", "avx512", "avx2"])
def test_forced_isa_unavailable_raises(isa):
    if isa in _core.available_isas():
        pytest.skip(f"{isa} is available here")
    res = run_at_isa(isa, "import rosenblatt._core")
    assert res.returncode != 0
    assert "ImportError" in res.stderr and "ROSENBLATT_ISA" in res.stderr


def test_peak_probe():
    """The probe reports a number for every ISA here and dtype: positive and finite (a
    sanity check of its output - how fast a machine is, is the benchmarks' business)."""
    for isa in _core.available_isas():
        for dtype in ("float32", "float64"):
            g = _core.peak_flops_probe(isa, dtype, 0.01)
            assert isinstance(g, float), type(g)
            assert np.isfinite(g) and g > 0, (isa, dtype, g)
    assert np.isfinite(_core.peak_flops_probe(None, "float32", 0.01))  # the current ISA
    for bad in ({"isa": "nope"}, {"dtype": "float16"}, {"seconds": 0.0}):
        args = {"isa": None, "dtype": "float32", "seconds": 0.01, **bad}
        with pytest.raises(ValueError):
            _core.peak_flops_probe(args["isa"], args["dtype"], args["seconds"])


def test_threads_setting():
    old = _core.get_num_threads()
    try:
        _core.set_num_threads(1)
        assert _core.get_num_threads() == 1
        _core.set_num_threads(0)
        assert _core.get_num_threads() == _core.hardware_threads()
    finally:
        _core.set_num_threads(old)


def test_concurrent_callers_match_serial():
    rng = np.random.default_rng(5)
    X = _data(rng, (150, 200), np.float32)
    W = _data(rng, (200, 70), np.float32)
    b = _data(rng, (70,), np.float32)
    ref = np.empty((150, 70), np.float32)
    _core.dense_forward(X, W, b, C.RELU, ref, None, 2)
    errors = []

    def work():
        for _ in range(20):
            A = np.empty_like(ref)
            _core.dense_forward(X, W, b, C.RELU, A, None, 2)
            if not np.array_equal(A, ref):
                errors.append("mismatch")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


_KEEP_OFF_CALLER = """
import os, time
import numpy as np
from rosenblatt import _core, _codes as C
X = np.ones((400, 400), np.float32); W = np.ones((400, 400), np.float32)
b = np.zeros(400, np.float32); A = np.empty((400, 400), np.float32)
_core.dense_forward(X, W, b, C.RELU, A, None, 2)  # starts the pool's worker
for cpu in sorted(os.sched_getaffinity(0))[:2]:
    os.sched_setaffinity(0, {cpu})  # (this thread only: the caller now runs on cpu)
    time.sleep(0.05)  # the worker goes to sleep
    _core.dense_forward(X, W, b, C.RELU, A, None, 2)
    assert (A == 400).all()
    workers = [int(t) for t in os.listdir("/proc/self/task")
               if open(f"/proc/self/task/{t}/comm").read().strip() == "rosenblatt"]
    assert workers, "no worker thread named rosenblatt"
    for t in workers:
        assert cpu not in os.sched_getaffinity(t), (cpu, os.sched_getaffinity(t))
print("ok")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2,
                    reason="Linux with 2 CPUs or more")
def test_woken_workers_are_kept_off_the_callers_cpu():
    """A worker woken from its sleep would often share the caller's CPU for milliseconds
    (threads.cpp, place_workers); the caller narrows the sleeping workers' CPUs first."""
    out = subprocess.run([sys.executable, "-c", _KEEP_OFF_CALLER], capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_softmax_rows():
    """Against the reference, and each row's values the same bits whatever rows share its
    call: rows narrower than a vector go a vector of rows at a time (softmax_rows), the
    rest of them and wider rows one at a time."""
    rng = np.random.default_rng(6)
    for dt in DTYPES:
        for rows, cols in ((9, 13), (37, 10), (33, 7), (17, 1), (40, 15), (20, 16), (18, 17)):
            Z = _data(rng, (rows, cols), dt, 30.0)
            Z[3, 0] = 80.0  # one large logit: the max subtracted matters
            A = np.empty_like(Z)
            _core.softmax(Z, A, 1)
            Ar = np.empty(Z.shape)
            R.softmax(Z.astype(np.float64), Ar)
            np.testing.assert_allclose(A, Ar, **_tol(dt))
            np.testing.assert_allclose(A.sum(axis=1), 1.0, rtol=1e-5)
            for r in (0, 3, rows - 1):
                one = np.empty((1, cols), dt)
                _core.softmax(Z[r:r + 1].copy(), one, 1)
                assert np.array_equal(one[0], A[r]), (dt, rows, cols, r)
            # the softmax output layer's forward takes the same path
            W = np.eye(cols, dtype=dt)
            A2 = np.empty_like(Z)
            _core.dense_forward(Z, W, np.zeros(cols, dt), C.SOFTMAX, A2, None, 1)
            assert np.array_equal(A2, A)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("loss", sorted(C.LOSS_NAMES))
def test_loss_gradient(dt, loss):
    rng = np.random.default_rng(7)
    n, k = 11, 3
    P, Y = _loss_inputs(rng, loss, n, k, dt)
    for sw in (None, rng.uniform(0.5, 2, n).astype(dt)):
        G = np.empty_like(P)
        v = _core.loss_gradient(P, Y, sw, loss, 0.7, G, 1)
        Gr = np.empty_like(P)
        vr = R.loss_gradient(P, Y, sw, loss, 0.7, Gr)
        assert v == pytest.approx(vr, rel=1e-12)
        np.testing.assert_allclose(G, Gr, rtol=1e-6 if dt == np.float32 else 1e-14)


@pytest.mark.parametrize("dt", DTYPES)
def test_optimizers_match_reference_bitwise(dt):
    rng = np.random.default_rng(8)
    P = 1000 + 3

    def fresh():
        return (_data(rng, P, dt), _data(rng, P, dt), np.abs(_data(rng, P, dt)),
                np.abs(_data(rng, P, dt)))

    p, g, s1, s2 = fresh()
    cases = [
        ("sgd_step", lambda m, a: m.sgd_step(a[0], a[1], a[2], 0.1, 0.9, False)),
        ("nesterov", lambda m, a: m.sgd_step(a[0], a[1], a[2], 0.1, 0.9, True)),
        ("adagrad_step", lambda m, a: m.adagrad_step(a[0], a[1], a[2], 0.1, 1e-8)),
        ("rmsprop_step", lambda m, a: m.rmsprop_step(a[0], a[1], a[2], 0.1, 0.9, 1e-8)),
        ("adam_step", lambda m, a: m.adam_step(a[0], a[1], a[2], a[3], 1e-3, 0.9, 0.999,
                                               1e-8, 0.0, 3)),
        ("adamw", lambda m, a: m.adam_step(a[0], a[1], a[2], a[3], 1e-3, 0.9, 0.999, 1e-8,
                                           0.01, 7)),
    ]
    for name, fn in cases:
        mine = [v.copy() for v in (p, g, s1, s2)]
        ref = [v.copy() for v in (p, g, s1, s2)]
        fn(_core, mine)
        fn(R, ref)
        for a, r in zip(mine, ref):
            np.testing.assert_array_equal(a, r, err_msg=name)


def _net(rng, sizes, dt):
    _, total = R.param_offsets(sizes)
    return (rng.standard_normal(total) * 0.3).astype(dt)


@pytest.mark.parametrize("dt", DTYPES)
def test_mlp_forward(dt):
    rng = np.random.default_rng(9)
    sizes = np.array([5, 17, 9, 3], np.int64)
    acts = np.array([C.TANH, C.RELU, C.SOFTMAX], np.int32)
    X = _data(rng, (23, 5), dt)
    params = _net(rng, sizes, dt)
    out = np.empty((23, 3), dt)
    work = np.empty(R.mlp_workspace_size(sizes, 23), dt)
    _core.mlp_forward(X, params, sizes, acts, out, work, 1)
    ref = np.empty((23, 3), dt)
    R.mlp_forward(X, params, sizes, acts, ref, None)
    np.testing.assert_allclose(out, ref, **_tol(dt, 17))


TRAIN_CASES = [
    # sizes, activations, loss, optimizer, sample weights, alpha, l1
    ([4, 8, 8, 3], [C.TANH, C.RELU, C.SOFTMAX], C.LOG_LOSS, C.ADAM, False, 1e-3, 0.0),
    ([4, 6, 1], [C.LOGISTIC, C.LOGISTIC], C.BINARY_LOG_LOSS, C.SGD, True, 0.0, 1e-3),
    ([4, 7, 2], [C.GELU, C.IDENTITY], C.SQUARED_ERROR, C.NESTEROV, False, 1e-2, 0.0),
    ([4, 5, 2], [C.SOFTPLUS, C.EXP], C.POISSON, C.RMSPROP, True, 0.0, 0.0),
    ([4, 9, 2], [C.ELU, C.IDENTITY], C.HUBER, C.ADAGRAD, False, 0.0, 0.0),
    ([4, 9, 2], [C.LEAKY_RELU, C.TANH], C.ABSOLUTE_ERROR, C.ADAMW, False, 0.0, 0.0),
]


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("case", range(len(TRAIN_CASES)))
def test_train_epoch_matches_reference(dt, case):
    sizes, acts, loss, opt, weighted, alpha, l1 = TRAIN_CASES[case]
    rng = np.random.default_rng(10 + case)
    n = 37
    sizes = np.array(sizes, np.int64)
    acts = np.array(acts, np.int32)
    X = _data(rng, (n, sizes[0]), dt)
    k = int(sizes[-1])
    if loss == C.LOG_LOSS:
        Y = np.eye(k, dtype=dt)[rng.integers(0, k, n)]
    elif loss == C.BINARY_LOG_LOSS:
        Y = (rng.uniform(size=(n, k)) < 0.5).astype(dt)
    elif loss == C.POISSON:
        Y = rng.poisson(1.0, (n, k)).astype(dt)
    else:
        Y = _data(rng, (n, k), dt)
    sw = rng.uniform(0.5, 2, n).astype(dt) if weighted else None
    hyper = np.zeros(C.N_HYPER)
    hyper[[C.H_LR, C.H_MOMENTUM, C.H_BETA1, C.H_BETA2, C.H_EPS, C.H_RHO, C.H_WEIGHT_DECAY,
           C.H_ALPHA, C.H_L1, C.H_HUBER_DELTA]] = [0.05, 0.9, 0.9, 0.999, 1e-8, 0.9, 0.01,
                                                   alpha, l1, 0.5]
    params = _net(rng, sizes, dt)
    slots = C.OPTIMIZER_SLOTS[opt]
    order = rng.permutation(n).astype(np.int64)
    bs = 10
    results = []
    for mod in (_core, R):
        p = params.copy()
        grads = np.zeros_like(p)
        state = np.zeros((slots, p.size), dt)
        step = np.zeros(1, np.int64)
        norms = np.zeros(len(acts))
        ws = np.empty(R.train_workspace_size(sizes, bs), dt)
        total = 0.0
        for _ in range(2):
            total += mod.train_epoch(X, Y, sw, order, bs, sizes, acts, loss, p, grads, state,
                                     opt, hyper, step, ws, norms, 1)
        results.append((total, p, state, step, norms))
    (t1, p1, s1, st1, n1), (t2, p2, s2, st2, n2) = results
    tol = {"rtol": 1e-3, "atol": 1e-4} if dt == np.float32 else {"rtol": 1e-9, "atol": 1e-11}
    assert t1 == pytest.approx(t2, rel=tol["rtol"])
    np.testing.assert_allclose(p1, p2, **tol)
    np.testing.assert_allclose(s1, s2, **tol)
    np.testing.assert_array_equal(st1, st2)
    np.testing.assert_allclose(n1, n2, rtol=tol["rtol"])


def test_train_epoch_deterministic_across_runs():
    rng = np.random.default_rng(11)
    sizes = np.array([30, 64, 32, 5], np.int64)
    acts = np.array([C.RELU, C.TANH, C.SOFTMAX], np.int32)
    n = 300
    X = _data(rng, (n, 30), np.float32)
    Y = np.eye(5, dtype=np.float32)[rng.integers(0, 5, n)]
    params0 = _net(rng, sizes, np.float32)
    hyper = np.zeros(C.N_HYPER)
    hyper[[C.H_LR, C.H_BETA1, C.H_BETA2, C.H_EPS]] = [1e-3, 0.9, 0.999, 1e-8]
    outs = []
    for nt in (2, 2):
        p = params0.copy()
        state = np.zeros((2, p.size), np.float32)
        step = np.zeros(1, np.int64)
        ws = np.empty(R.train_workspace_size(sizes, 64), np.float32)
        loss = _core.train_epoch(X, Y, None, np.arange(n, dtype=np.int64), 64, sizes, acts,
                                 C.LOG_LOSS, p, np.zeros_like(p), state, C.ADAM, hyper, step,
                                 ws, None, nt)
        outs.append((loss, p))
    assert outs[0][0] == outs[1][0]
    np.testing.assert_array_equal(outs[0][1], outs[1][1])


def _epochs_on_1_2_threads_and_reference(X, Y, sw, order, bs, sizes, acts, opt, hyper, params0,
                                         norms=False):
    """Two epochs of train_epoch from params0: the core on one thread, on two, and the
    reference. Returns (losses, params, state, grad_norms) of each."""
    outs = []
    for mod, nt in ((_core, 1), (_core, 2), (R, 1)):
        p = params0.copy()
        state = np.zeros((C.OPTIMIZER_SLOTS[opt], p.size), p.dtype)
        step = np.zeros(1, np.int64)
        gn = np.zeros(len(acts)) if norms else None
        ws = np.empty(R.train_workspace_size(sizes, bs), p.dtype)
        losses = [mod.train_epoch(X, Y, sw, order, bs, sizes, acts, C.LOG_LOSS, p,
                                  np.zeros_like(p), state, opt, hyper, step, ws, gn, nt)
                  for _ in range(2)]
        outs.append((losses, p, state, gn))
    return outs


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize(("opt", "alpha", "l1", "weighted", "norms"), [
    (C.ADAM, 1e-3, 0.0, False, False), (C.ADAM, 0.0, 0.0, True, False),
    (C.NESTEROV, 1e-3, 1e-4, True, False), (C.RMSPROP, 1e-3, 0.0, False, True)])
def test_train_epoch_same_bits_on_two_threads(dt, opt, alpha, l1, weighted, norms):
    """On two threads the next batch's rows are gathered into a second buffer while the
    layers after the first run on the other thread, up to the last one's backward pass
    (train.hpp). Every product and sum is the one-thread one: the same bits, for every
    batch including a short last one, with sample weights and penalty terms, three layers
    and two."""
    rng = np.random.default_rng(13)
    n, bs = 517, 50
    for sizes in ([90, 70, 100, 3], [90, 70, 3]):
        sizes = np.array(sizes, np.int64)
        acts = np.array([C.RELU] * (len(sizes) - 2) + [C.SOFTMAX], np.int32)
        k = int(sizes[-1])
        X = _data(rng, (n, int(sizes[0])), dt)
        Y = np.eye(k, dtype=dt)[rng.integers(0, k, n)]
        sw = rng.uniform(0.5, 2, n).astype(dt) if weighted else None
        hyper = np.zeros(C.N_HYPER)
        hyper[[C.H_LR, C.H_MOMENTUM, C.H_BETA1, C.H_BETA2, C.H_EPS, C.H_RHO, C.H_ALPHA,
               C.H_L1]] = [1e-3, 0.9, 0.9, 0.999, 1e-8, 0.9, alpha, l1]
        params0 = _net(rng, sizes, dt)
        order = rng.permutation(n).astype(np.int64)
        outs = _epochs_on_1_2_threads_and_reference(X, Y, sw, order, bs, sizes, acts, opt, hyper,
                                                    params0, norms)
        (l1t, p1, s1, g1), (l2t, p2, s2, g2), (lref, pref, _, _) = outs
        assert l1t == l2t
        np.testing.assert_array_equal(p1, p2)
        np.testing.assert_array_equal(s1, s2)
        if norms:
            np.testing.assert_array_equal(g1, g2)
        tol = {"rtol": 1e-3, "atol": 1e-5} if dt == np.float32 else {"rtol": 1e-9, "atol": 1e-12}
        np.testing.assert_allclose(l1t, lref, rtol=tol["rtol"])
        np.testing.assert_allclose(p1, pref, **tol)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("opt", [C.SGD, C.ADAGRAD, C.RMSPROP, C.ADAM])
@pytest.mark.parametrize(("alpha", "l1"), [(1e-2, 0.0), (1e-2, 3e-3)])
def test_train_epoch_penalty_sums_over_chunks(dt, opt, alpha, l1):
    """The penalty terms of batches after the first come from sums the optimizer step
    gathers while it writes the weights, in chunks of 32768 values: with 76505 parameters
    the first layer's weights span three chunks and the last chunk holds the end of them, both
    biases and the second layer's weights. The loss must still be the reference's, and
    the same bits on one thread or two."""
    rng = np.random.default_rng(12)
    sizes = np.array([300, 250, 5], np.int64)
    acts = np.array([C.TANH, C.SOFTMAX], np.int32)
    n, bs = 40, 10
    X = _data(rng, (n, 300), dt)
    Y = np.eye(5, dtype=dt)[rng.integers(0, 5, n)]
    params0 = _net(rng, sizes, dt) * dt(0.2)
    assert params0.size == 76505
    hyper = np.zeros(C.N_HYPER)
    hyper[[C.H_LR, C.H_MOMENTUM, C.H_BETA1, C.H_BETA2, C.H_EPS, C.H_RHO, C.H_ALPHA,
           C.H_L1]] = [1e-3, 0.9, 0.9, 0.999, 1e-8, 0.9, alpha, l1]
    order = rng.permutation(n).astype(np.int64)
    outs = _epochs_on_1_2_threads_and_reference(X, Y, None, order, bs, sizes, acts, opt, hyper,
                                                params0)
    (l1t, p1, _, _), (l2t, p2, _, _), (lref, pref, _, _) = outs
    assert l1t == l2t
    np.testing.assert_array_equal(p1, p2)
    rtol = 1e-5 if dt == np.float32 else 1e-12
    np.testing.assert_allclose(l1t, lref, rtol=rtol)
    np.testing.assert_allclose(p1, pref, **_tol(dt, 300))
    # the penalty is a visible part of these losses: a wrong sum would show
    penalty = 0.5 * alpha * float(np.sum(params0[:75000].astype(np.float64) ** 2)) / bs
    assert penalty > 100 * rtol * lref[0] / (n // bs)


# --------------------------------------------------------------------------------------
# bad input at the binding level: exceptions, never a crash


def _dense_args(dt=np.float64):
    X = np.ones((4, 3), dt)
    W = np.ones((3, 2), dt)
    b = np.ones(2, dt)
    A = np.empty((4, 2), dt)
    return X, W, b, A


@pytest.mark.parametrize("mutate, exc", [
    (lambda a: a.update(X=a["X"].astype(np.float16)), TypeError),
    (lambda a: a.update(X=a["X"].astype(np.int64)), TypeError),
    (lambda a: a.update(W=a["W"].astype(np.float32)), TypeError),
    (lambda a: a.update(X=[[1.0, 2.0, 3.0]]), TypeError),
    (lambda a: a.update(W=np.ones((4, 2))), ValueError),
    (lambda a: a.update(b=np.ones(3)), ValueError),
    (lambda a: a.update(b=np.ones((1, 2))), ValueError),
    (lambda a: a.update(A=np.empty((4, 3))), ValueError),
    (lambda a: a.update(A=np.empty((2, 4)).T), ValueError),
    (lambda a: a.update(X=np.ones((3, 4)).T), ValueError),
    (lambda a: a.update(Z=np.empty((5, 2))), ValueError),
    (lambda a: a.update(act=99), ValueError),
    (lambda a: a.update(act=-1), ValueError),
    (lambda a: a.update(A=None), TypeError),
])
def test_dense_forward_rejects_bad_input(mutate, exc):
    X, W, b, A = _dense_args()
    args = {"X": X, "W": W, "b": b, "act": C.RELU, "A": A, "Z": None}
    mutate(args)
    with pytest.raises(exc):
        _core.dense_forward(args["X"], args["W"], args["b"], args["act"], args["A"],
                            args["Z"], 1)


def test_readonly_output_rejected():
    X, W, b, A = _dense_args()
    A.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _core.dense_forward(X, W, b, C.RELU, A, None, 1)


def test_unaligned_rejected():
    buf = np.zeros(4 * 3 * 8 + 1, np.uint8)[1:].view(np.float64).reshape(4, 3)
    _, W, b, A = _dense_args()
    with pytest.raises(ValueError):
        _core.dense_forward(buf, W, b, C.RELU, A, None, 1)


def test_backward_rejects_steps_softmax_and_missing_z():
    X, W, _b, A = _dense_args()
    dA = np.ones_like(A)
    dW, db = np.empty((3, 2)), np.empty(2)
    for act in (C.HEAVISIDE, C.SIGN, C.SOFTMAX):
        with pytest.raises(ValueError):
            _core.dense_backward(X, W, A, None, dA, act, 0.0, dW, db, None, 1)
    with pytest.raises(TypeError):  # gelu needs Z
        _core.dense_backward(X, W, A, None, dA, C.GELU, 0.0, dW, db, None, 1)
    with pytest.raises(ValueError):
        _core.dense_backward(X, W, A, None, dA, C.RELU, 0.0, dW, db, np.empty((4, 2)), 1)


def _train_args(dt=np.float64):
    sizes = np.array([3, 4, 2], np.int64)
    acts = np.array([C.RELU, C.IDENTITY], np.int32)
    _, P = R.param_offsets(sizes)
    return {"X": np.ones((5, 3), dt), "Y": np.ones((5, 2), dt), "sw": None,
                "order": np.arange(5, dtype=np.int64), "bs": 2, "sizes": sizes, "acts": acts,
                "loss": C.SQUARED_ERROR, "params": np.zeros(P, dt), "grads": np.zeros(P, dt),
                "state": np.zeros((1, P), dt), "opt": C.SGD, "hyper": np.full(C.N_HYPER, 0.1),
                "step": np.zeros(1, np.int64), "ws": np.empty(R.train_workspace_size(sizes, 2), dt),
                "norms": None, "nf": None, "er": 0, "et": None}


def _call_train(a):
    return _core.train_epoch(a["X"], a["Y"], a["sw"], a["order"], a["bs"], a["sizes"],
                             a["acts"], a["loss"], a["params"], a["grads"], a["state"],
                             a["opt"], a["hyper"], a["step"], a["ws"], a["norms"], 1,
                             nonfinite=a["nf"], epoch_rows=a["er"], epoch_totals=a["et"])


@pytest.mark.parametrize("key, value, exc", [
    ("order", np.array([0, 5], np.int64), ValueError),
    ("order", np.array([-1], np.int64), ValueError),
    ("order", np.array([0, 1], np.int32), TypeError),
    ("ws", np.empty(10), ValueError),
    ("bs", 0, ValueError),
    ("sizes", np.array([3, 4, 3], np.int64), ValueError),
    ("sizes", np.array([3, 0, 2], np.int64), ValueError),
    ("acts", np.array([C.SOFTMAX, C.IDENTITY], np.int32), ValueError),
    ("acts", np.array([C.HEAVISIDE, C.IDENTITY], np.int32), ValueError),
    ("acts", np.array([C.RELU], np.int32), ValueError),
    ("state", np.zeros((2, 3)), ValueError),
    ("opt", 17, ValueError),
    ("loss", 17, ValueError),
    ("hyper", np.zeros(3), ValueError),
    ("step", np.zeros(1, np.int32), TypeError),
    ("norms", np.zeros(5), ValueError),
    ("sw", np.ones(4), ValueError),
    ("Y", np.ones((4, 2)), ValueError),
    ("params", np.zeros(3), ValueError),
    ("nf", np.zeros(2, np.int64), ValueError),
    ("nf", np.zeros(1, np.int32), TypeError),
    ("nf", np.zeros(1, np.int64)[::1].view(np.float64), TypeError),
    ("er", -1, ValueError),
    ("er", 2, ValueError),  # 5 rows are not whole epochs of 2
    ("et", np.zeros(2), ValueError),  # one epoch
    ("et", np.zeros(1, np.float32), TypeError),
])
def test_train_epoch_rejects_bad_input(key, value, exc):
    a = _train_args()
    a[key] = value
    with pytest.raises(exc):
        _call_train(a)


def test_train_epoch_accepts_good_input():
    a = _train_args()
    assert np.isfinite(_call_train(a))
    a["nf"] = np.zeros(1, np.int64)
    assert np.isfinite(_call_train(a)) and a["nf"][0] == -1


def test_train_epoch_epoch_totals_apart_from_hyper():
    a = _train_args()
    a["et"] = a["hyper"][:1]
    with pytest.raises(ValueError, match="epoch_totals must not share memory"):
        _call_train(a)


@pytest.mark.parametrize("other", ["order", "step", "sizes"])
def test_train_epoch_nonfinite_apart_from_its_inputs(other):
    """nonfinite is written: it must not share memory with the int64 arrays read (an
    order overwritten with -1 would index X out of bounds)."""
    a = _train_args()
    a["nf"] = a[other][:1]
    with pytest.raises(ValueError, match="nonfinite must not share memory"):
        _call_train(a)


def test_mlp_forward_small_workspace_rejected():
    sizes = np.array([3, 4, 2], np.int64)
    acts = np.array([C.RELU, C.IDENTITY], np.int32)
    _, P = R.param_offsets(sizes)
    with pytest.raises(ValueError):
        _core.mlp_forward(np.ones((5, 3)), np.zeros(P), sizes, acts, np.empty((5, 2)),
                          np.empty(3), 1)


def test_empty_arrays_are_fine():
    X = np.ones((0, 3))
    W = np.ones((3, 2))
    A = np.empty((0, 2))
    _core.dense_forward(X, W, np.ones(2), C.RELU, A, None, 1)
    dW, db = np.full((3, 2), np.nan), np.full(2, np.nan)
    _core.dense_backward(X, W, A, None, np.empty((0, 2)), C.RELU, 0.0, dW, db, None, 1)
    np.testing.assert_array_equal(dW, 0.0)
    np.testing.assert_array_equal(db, 0.0)


@pytest.mark.parametrize(("hidden", "nt"), [(32, 1), (80, 2)])
def test_train_epoch_ctrl_c_stops_between_batches(hidden, nt):
    # (80 units on two threads: the next batch's gather overlaps this one's later layers)
    code = r"""
import os, signal, threading
import numpy as np
from rosenblatt import _core, _codes as C, _kernels_ref as R
rng = np.random.default_rng(0)
sizes = np.array([20, __HIDDEN__, 3], np.int64)
acts = np.array([C.TANH, C.SOFTMAX], np.int32)
X = rng.standard_normal((500, 20))
Y = np.eye(3)[rng.integers(0, 3, 500)]
order = np.tile(np.arange(500, dtype=np.int64), 20000)  # 1e7 rows: ~10x the timer at least
_, P = R.param_offsets(sizes)
p = rng.standard_normal(P) * 0.1
hyper = np.zeros(C.N_HYPER)
hyper[[C.H_LR, C.H_BETA1, C.H_BETA2, C.H_EPS]] = [1e-3, 0.9, 0.999, 1e-8]
state = np.zeros((2, P)); step = np.zeros(1, np.int64)
ws = np.empty(R.train_workspace_size(sizes, 10))
threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
try:
    _core.train_epoch(X, Y, None, order, 10, sizes, acts, C.LOG_LOSS, p, np.zeros(P), state,
                      C.ADAM, hyper, step, ws, None, __NT__)
    print("finished")
except KeyboardInterrupt:
    print("interrupted", int(step[0]), bool(np.isfinite(p).all()))
"""
    code = code.replace("__HIDDEN__", str(hidden)).replace("__NT__", str(nt))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                         timeout=120, env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                             p for p in sys.path if p)))
    assert res.returncode == 0, res.stderr
    words = res.stdout.split()
    assert words[0] == "interrupted", res.stdout
    assert 0 < int(words[1]) < 1_000_000 and words[2] == "True"
