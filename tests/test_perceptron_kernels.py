"""Rosenblatt's one-pass kernel (``perceptron_epoch``) against the NumPy reference.

Integer-valued inputs make every backend exact, so the compiled and Numba kernels must
equal the reference bit for bit whatever their summation order; on real-valued data the
compiled kernel and its Numba twin share one summation order (8 partial sums by feature
index mod 8, folded the same way), so they agree bit for bit with each other, at any ISA
and any thread count. Feature counts cross the 8-feature chunks (1, 7, 8, 9, 17), down to
none (0: the scores are the intercepts), and output counts the SIMD lanes and output groups
(1..11, 13, 25), down to none (0: no mistakes, but a non-finite row is still reported).
"""

import functools
import warnings

import numpy as np
import pytest
from conftest import (
    assert_isas_agree,
    compiled_backends_under_test,
    forced_backend,
    isa_params,
    near_tie_rows,
    result_at_isa,
)
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rosenblatt import kernels as K
from rosenblatt.linear_model import Perceptron
from sklearn.exceptions import ConvergenceWarning

BACKENDS = K.available_backends()
# the compiled backends compared with the reference: the forced one (ROSENBLATT_BACKEND),
# else every one available
COMPILED = compiled_backends_under_test()
DTYPES = [np.float64, np.float32]
FEATURES = (0, 1, 7, 8, 9, 17)
OUTPUTS = tuple(range(12))


needs_compiled = pytest.mark.skipif(
    not COMPILED, reason="no compiled backend under test (none built, or "
    f"ROSENBLATT_BACKEND={forced_backend()!r})")


def _case(rng, n, d, k, dtype, step, labels):
    X = rng.integers(-3, 4, (n, d)).astype(dtype)
    lo = 0.0 if step == "heaviside" else -1.0
    if labels:
        Y = rng.integers(-1, k + 1, n).astype(np.int64)  # out of range: every output off
    else:
        Y = np.where(rng.random((n, k)) < 0.5, 1.0, lo).astype(dtype)
    W = rng.integers(-2, 3, (d, k)).astype(dtype)
    b = rng.integers(-2, 3, k).astype(dtype)
    return X, Y, W, b


def _epochs(be, X, Y, W0, b0, orders, eta, step, n_threads=1):
    W, b = W0.copy(), b0.copy()
    ms = [K.perceptron_epoch(X, Y, W, b, order=o, eta=eta, step=step, backend=be,
                             n_threads=n_threads) for o in orders]
    return ms, W, b


def _assert_same(got, want):
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[2], want[2])


@needs_compiled
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("step", ["heaviside", "sign"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 40), d=st.sampled_from(FEATURES), k=st.sampled_from(OUTPUTS),
       seed=st.integers(0, 2**32 - 1), eta=st.sampled_from([1.0, 0.5, 2.0]),
       labels=st.booleans(), repeats=st.booleans())
@example(n=1, d=1, k=1, seed=0, eta=1.0, labels=True, repeats=False)
@example(n=7, d=0, k=3, seed=2, eta=1.0, labels=True, repeats=False)  # (crashed the core)
@example(n=7, d=3, k=0, seed=3, eta=1.0, labels=False, repeats=True)  # (crashed it too)
@example(n=30, d=17, k=11, seed=1, eta=0.5, labels=False, repeats=True)
def test_epoch_equals_reference_on_exact_data(dtype, step, n, d, k, seed, eta, labels,
                                              repeats):
    rng = np.random.default_rng(seed)
    X, Y, W0, b0 = _case(rng, n, d, k, dtype, step, labels)
    orders = [(rng.integers(0, n, 2 * n) if repeats else rng.permutation(n)).astype(np.int64)
              for _ in range(3)]
    want = _epochs("numpy", X, Y, W0, b0, orders, eta, step)
    for be in COMPILED:
        _assert_same(_epochs(be, X, Y, W0, b0, orders, eta, step), want)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("step", ["heaviside", "sign"])
def test_labels_mean_one_hot_targets(dtype, step):
    rng = np.random.default_rng(5)
    n, d, k = 25, 9, 4
    X = rng.integers(-3, 4, (n, d)).astype(dtype)
    lab = rng.integers(-2, k + 2, n).astype(np.int64)
    lo = 0.0 if step == "heaviside" else -1.0
    Y = np.where(lab[:, None] == np.arange(k), 1.0, lo).astype(dtype)
    order = rng.permutation(n).astype(np.int64)
    W0 = np.zeros((d, k), dtype)
    b0 = np.zeros(k, dtype)
    for be in BACKENDS:
        _assert_same(_epochs(be, X, lab, W0, b0, [order], 1.0, step),
                     _epochs(be, X, Y, W0, b0, [order], 1.0, step))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("labels", [True, False], ids=["labels", "targets"])
def test_no_outputs_make_no_mistakes_but_see_non_finite_rows(dtype, labels):
    X = np.ones((5, 3), dtype)
    Y = np.zeros(5, np.int64) if labels else np.zeros((5, 0), dtype)
    W, b = np.zeros((3, 0), dtype), np.zeros(0, dtype)
    for be in BACKENDS:
        for nt in (1, 2):
            assert K.perceptron_epoch(X, Y, W, b, backend=be, n_threads=nt) == 0
    X[3, 1] = np.inf
    for be in BACKENDS:
        assert K.perceptron_epoch(X, Y, W, b, backend=be) == -1
        assert K.perceptron_epoch(X, Y, W, b, order=np.array([0, 1, 2, 4]),
                                  backend=be) == 0


@needs_compiled
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("shape", [(300, 100, 10), (200, 7, 3), (150, 17, 1), (100, 9, 11),
                                   (60, 1, 2), (64, 8, 8), (80, 33, 25), (90, 16, 13)])
def test_compiled_backends_share_one_summation_order(dtype, shape):
    """Real-valued data: rounding matters, and the C++ and Numba kernels still agree."""
    n, d, k = shape
    rng = np.random.default_rng(n + d + k)
    X = rng.standard_normal((n, d)).astype(dtype)
    lab = rng.integers(0, k, n).astype(np.int64)
    W0 = np.zeros((d, k), dtype)
    b0 = np.zeros(k, dtype)
    orders = [rng.permutation(n).astype(np.int64) for _ in range(3)]
    for step in ("heaviside", "sign"):
        res = [_epochs(be, X, lab, W0, b0, orders, 0.3, step) for be in COMPILED]
        for r in res[1:]:
            _assert_same(r, res[0])
        ref = _epochs("numpy", X, lab, W0, b0, orders, 0.3, step)
        np.testing.assert_allclose(res[0][1], ref[1], rtol=1e-3, atol=1e-3)


@needs_compiled
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("labels", [True, False], ids=["labels", "Y"])
@pytest.mark.parametrize("n", [1, 15, 16, 17, 32, 33, 257, 1300])
def test_epoch_equals_reference_across_the_copy_ring(dtype, labels, n):
    # the compiled kernel copies the rows it visits 16 positions ahead into a ring of 32:
    # orders shorter than the lead, crossing the ring many times, and revisiting rows
    rng = np.random.default_rng(n)
    X, Y, W0, b0 = _case(rng, n, 9, 11, dtype, "sign", labels)
    orders = [rng.permutation(n).astype(np.int64), rng.integers(0, n, n + 300).astype(np.int64)]
    want = _epochs("numpy", X, Y, W0, b0, orders, 0.5, "sign")
    for be in COMPILED:
        _assert_same(_epochs(be, X, Y, W0, b0, orders, 0.5, "sign"), want)


def _threaded_case(dtype, n=4001, d=100, k=10, seed=3):
    # large enough (n d k >= 4e6) for the kernel to split the outputs over threads
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(dtype)
    lab = rng.integers(0, k, n).astype(np.int64)
    return rng, X, lab, np.zeros((d, k), dtype), np.zeros(k, dtype)


@pytest.mark.skipif("cpp" not in BACKENDS, reason="compiled core not built")
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("labels", [True, False], ids=["labels", "Y"])
def test_threads_split_outputs_without_changing_the_result(dtype, labels):
    rng, X, lab, W0, b0 = _threaded_case(dtype)
    Y = lab if labels else np.where(lab[:, None] == np.arange(10), 1.0, -1.0).astype(dtype)
    step = "heaviside" if labels else "sign"
    orders = [rng.permutation(len(X)).astype(np.int64) for _ in range(2)]
    one = _epochs("cpp", X, Y, W0, b0, orders, 1.0, step, n_threads=1)
    for t in (2, 3, 10):
        _assert_same(_epochs("cpp", X, Y, W0, b0, orders, 1.0, step, n_threads=t), one)


@pytest.mark.skipif("cpp" not in BACKENDS, reason="compiled core not built")
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("position", [5, 300, 2600, 4000])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_non_finite_row_stops_every_thread(dtype, position, n_threads):
    # every thread stops at the NaN row, the weights are left as they were, and the next
    # call (the pool reused) works. Repeated, because an earlier design whose threads met
    # at a barrier per block of rows could deadlock here depending on timing.
    rng, X, lab, W, b = _threaded_case(dtype)
    order = rng.permutation(len(X)).astype(np.int64)
    X[order[position], 7] = np.nan
    W += 1.0
    W0, b0 = W.copy(), b.copy()
    for _ in range(40):
        assert K.perceptron_epoch(X, lab, W, b, order=order, backend="cpp",
                                  n_threads=n_threads) == -1
    np.testing.assert_array_equal(W, W0)
    np.testing.assert_array_equal(b, b0)
    assert K.perceptron_epoch(X, lab, W, b, order=order[:position], backend="cpp",
                              n_threads=n_threads) >= 0


def isa_digests():
    """Run the compiled perceptron kernels on real-valued data (rounding matters) at the
    current ISA; check scikit-learn's rule against the reference; return digests.

    Rosenblatt's rule: one summation order at every vector width (see the module
    docstring). scikit-learn's rule: its decisions and updates are scikit-learn's bit for
    bit (hence the reference's, compared here) and so is the epoch's loss
    (perceptron.hpp), so every ISA computes the same bits. Run in a subprocess per ISA.
    """
    import hashlib

    rng = np.random.default_rng(0)
    ros, skl = hashlib.sha1(), hashlib.sha1()
    for dt in (np.float64, np.float32):
        for n, d, k in ((300, 100, 10), (100, 9, 11), (64, 8, 1), (80, 33, 17)):
            X = rng.standard_normal((n, d)).astype(dt)
            lab = rng.integers(0, k, n)
            W = np.zeros((d, k), dt)
            b = np.zeros(k, dt)
            for _ in range(3):
                K.perceptron_epoch(X, lab, W, b, order=rng.permutation(n), eta=0.3,
                                   backend="cpp")
            ros.update(W.tobytes())
            ros.update(b.tobytes())
        # one epoch of scikit-learn's rule: feature counts at the lane edges (4/8/16
        # lanes), weights and near-ties (rows almost orthogonal to w: p inside the
        # rounding bound of a reordered sum)
        for d in (1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33, 100):
            n = 40
            X, w0 = near_tie_rows(rng, n, d, dt)
            y = np.where(rng.random(n) < 0.5, -1.0, 1.0)
            sw = rng.choice([0.0, 0.5, 1.0, 2.0], n)
            cw = rng.uniform(0.5, 2.0, 2)
            order = rng.permutation(n).astype(np.int64)
            res = {}
            for be in ("numpy", "cpp"):
                w, bb = w0.copy(), np.array([0.05])
                s, m = K.perceptron_epoch_sklearn(X, y, w, bb, order=order, eta0=0.37,
                                                  sample_weight=sw, class_weight=cw,
                                                  backend=be)
                res[be] = (s, m, w, bb)
            (s, m, w, bb), (rs, rm, rw, rb) = res["cpp"], res["numpy"]
            tag = f"perceptron_epoch_sklearn {np.dtype(dt).name} d={d}"
            assert m == rm, tag
            np.testing.assert_array_equal(w, rw, err_msg=tag)
            np.testing.assert_array_equal(bb, rb, err_msg=tag)
            np.testing.assert_allclose(s, rs, rtol=1e-10 * max(1.0, d / 16) ** 0.5,
                                       err_msg=tag)
            for a in (np.float64(s), np.int64(m), w, bb):
                skl.update(np.ascontiguousarray(a).tobytes())
        # the whole fit: shuffles, the stopping rule, classes split over threads
        for n, d, K_ in ((57, 17, 3), (30, 8, 1), (45, 5, 4)):
            X = rng.standard_normal((n, d)).astype(dt)
            Y = np.where(rng.random((K_, n)) < 0.5, -1.0, 1.0)
            seeds = rng.integers(0, 2**31 - 1, K_).astype(np.int64)
            sw = rng.choice([0.0, 1.0, 2.0], n)
            cw = rng.uniform(0.5, 2.0, (K_, 2))
            res = {}
            for be in ("numpy", "cpp"):
                W, B = np.zeros((K_, d), dt), np.zeros(K_)
                it = K.perceptron_fit_sklearn(X, Y, W, B, seeds, eta0=0.5, sample_weight=sw,
                                              class_weight=cw, max_iter=15, tol=1e-3,
                                              backend=be, n_threads=2)
                res[be] = (it, W, B)
            tag = f"perceptron_fit_sklearn {np.dtype(dt).name} {n, d, K_}"
            for g, w in zip(res["cpp"], res["numpy"], strict=True):
                np.testing.assert_array_equal(g, w, err_msg=tag)
                skl.update(g.tobytes())
    return {"perceptron_epoch": ros.hexdigest(), "sklearn_rule": skl.hexdigest()}


@functools.cache
def _forced_isa_digests(isa):
    return result_at_isa(isa, "test_perceptron_kernels", "isa_digests")


@pytest.mark.skipif("cpp" not in BACKENDS, reason="compiled core not built")
@pytest.mark.parametrize("isa", isa_params())
def test_forced_isa_matches_the_reference(isa):
    _forced_isa_digests(isa)


@pytest.mark.skipif("cpp" not in BACKENDS, reason="compiled core not built")
def test_every_isa_gives_the_same_bits():
    from rosenblatt import _core

    isas = _core.available_isas()
    if len(isas) < 2:
        pytest.skip(f"one ISA here ({isas[0]}): nothing to compare")
    assert_isas_agree({isa: _forced_isa_digests(isa) for isa in isas})


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("labels", [True, False])
def test_non_finite_row_returns_minus_one_and_leaves_the_weights(backend, bad, labels):
    rng = np.random.default_rng(0)
    n, d, k = 30, 9, 3
    X = rng.standard_normal((n, d))
    X[17, 4] = bad
    lab = rng.integers(0, k, n).astype(np.int64)
    Y = lab if labels else np.where(lab[:, None] == np.arange(k), 1.0, 0.0)
    W = rng.standard_normal((d, k))
    b = rng.standard_normal(k)
    W0, b0 = W.copy(), b.copy()
    assert K.perceptron_epoch(X, Y, W, b, backend=backend) == -1
    np.testing.assert_array_equal(W, W0)
    np.testing.assert_array_equal(b, b0)
    # rows not visited do not count
    order = np.array([0, 1, 2, 18], dtype=np.int64)
    assert K.perceptron_epoch(X, Y, W, b, order=order, backend=backend) >= 0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("weighted", [False, True])
def test_estimator_raises_scikit_learns_message_for_non_finite_x(backend, weighted):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 5))
    y = rng.integers(0, 3, 40)
    sw = rng.uniform(0.5, 2, 40) if weighted else None
    for bad, msg in ((np.nan, "Input X contains NaN"), (np.inf, "Input X contains infinity")):
        Xb = X.copy()
        Xb[31, 2] = bad
        clf = Perceptron(rule="rosenblatt", backend=backend, max_iter=3)
        with pytest.raises(ValueError, match=msg):
            clf.fit(Xb, y, sample_weight=sw)
        with pytest.raises(ValueError, match=msg):
            Perceptron(rule="rosenblatt", backend=backend).partial_fit(
                Xb, y, classes=np.arange(3))


@pytest.mark.parametrize("rule", ["sklearn", "rosenblatt"])
def test_unknown_labels_in_partial_fit_raise_like_scikit_learn(rule):
    X = np.random.default_rng(0).standard_normal((12, 3))
    clf = Perceptron(rule=rule)
    clf.partial_fit(X, np.arange(12) % 3, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="classes should include all valid labels"):
        clf.partial_fit(X, np.arange(12) % 4)
    # string labels take the binary search
    ys = np.array(["a", "b", "c"])[np.arange(12) % 3]
    clf = Perceptron(rule=rule).partial_fit(X, ys, classes=["a", "b", "c"])
    with pytest.raises(ValueError, match="classes should include all valid labels"):
        clf.partial_fit(X, np.where(ys == "c", "d", ys))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("classes", [2, 3, 10])
def test_estimator_one_pass_equals_the_kernel_loop(backend, classes):
    """rule='rosenblatt' is the kernel with one-hot targets (one output, positive class,
    for two classes) over an order that each epoch shuffles again by xorshift with a seed
    drawn from random_state; non-contiguous class labels included."""
    rng = np.random.default_rng(classes)
    X = rng.standard_normal((80, 6))
    names = np.array([3, 7, 8, 20, 21, 22, 40, 41, 50, 99])[:classes]
    y = names[rng.integers(0, classes, 80)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = Perceptron(rule="rosenblatt", backend=backend, max_iter=4, tol=None,
                         random_state=5).fit(X, y)
    k = 1 if classes == 2 else classes
    pos = np.searchsorted(np.unique(y), y)
    lab = (pos - 1 if classes == 2 else pos).astype(np.int64)
    W = np.zeros((6, k))
    b = np.zeros(k)
    rs = np.random.RandomState(5)
    order = np.arange(80, dtype=np.int64)
    for _ in range(4):
        K.xorshift_shuffle(order, int(rs.randint(np.iinfo(np.int32).max)))
        K.perceptron_epoch(X, lab, W, b, order=order, backend=backend)
    np.testing.assert_array_equal(clf.coef_, W.T)
    np.testing.assert_array_equal(clf.intercept_, b)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_weighted_loop_does_the_kernels_arithmetic(backend, dtype):
    """Sample weights 2 with eta0 1 take the weighted loop, eta0 2 the kernel: the same
    steps, so the same bits on real-valued data."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((120, 19)).astype(dtype)
    y = rng.integers(0, 4, 120)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = Perceptron(rule="rosenblatt", backend=backend, eta0=1.0, max_iter=3,
                       tol=None).fit(X, y, sample_weight=np.full(120, 2.0))
        b = Perceptron(rule="rosenblatt", backend=backend, eta0=2.0, max_iter=3,
                       tol=None).fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    np.testing.assert_array_equal(a.intercept_, b.intercept_)


# ---------------------------------------------------------------- scikit-learn's rule


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_sklearn_kernels_report_non_finite_rows(backend, dtype, bad):
    rng = np.random.default_rng(2)
    n, d, K_ = 40, 9, 3
    X = rng.standard_normal((n, d)).astype(dtype)
    X[23, 5] = bad
    Y = np.where(rng.integers(0, K_, n)[None, :] == np.arange(K_)[:, None], 1.0, -1.0)
    W = np.zeros((K_, d), dtype)
    B = np.zeros(K_)
    seeds = np.array([3, 5, 7], dtype=np.int64)
    it = K.perceptron_fit_sklearn(X, Y, W, B, seeds, max_iter=5, backend=backend,
                                  n_threads=2)
    np.testing.assert_array_equal(it, [-1, -1, -1])
    w = np.zeros(d, dtype)
    b = np.zeros(1)
    _, m = K.perceptron_epoch_sklearn(X, Y[0], w, b, backend=backend)
    assert m == -1
    # the bad row never visited: an ordinary epoch
    order = np.delete(np.arange(n), 23).astype(np.int64)
    _, m = K.perceptron_epoch_sklearn(X, Y[0], w, b, order=order, backend=backend)
    assert m >= 0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("classes", [2, 4])
def test_sklearn_rule_raises_scikit_learns_message_and_keeps_the_model(backend, classes):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((50, 4))
    y = rng.integers(0, classes, 50)
    clf = Perceptron(backend=backend, max_iter=3, tol=None).fit(X, y)
    coef, inter = clf.coef_.copy(), clf.intercept_.copy()
    for bad, msg in ((np.nan, "Input X contains NaN"), (np.inf, "Input X contains infinity")):
        Xb = X.copy()
        Xb[41, 1] = bad
        with pytest.raises(ValueError, match=msg):
            clf.partial_fit(Xb, y)
        np.testing.assert_array_equal(clf.coef_, coef)
        np.testing.assert_array_equal(clf.intercept_, inter)
        with pytest.raises(ValueError, match=msg):
            Perceptron(backend=backend).fit(Xb, y)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("K_", [1, 3, 11])
def test_sklearn_fit_labels_equal_plus_minus_one_targets(backend, dtype, K_):
    rng = np.random.default_rng(K_)
    n, d = 60, 9
    X = rng.standard_normal((n, d)).astype(dtype)
    lab = rng.integers(-1, K_ + 1, n).astype(np.int64)  # out of range: -1 for every problem
    Y = np.where(lab[None, :] == np.arange(K_)[:, None], 1.0, -1.0)
    seeds = rng.integers(0, 2**31 - 1, K_).astype(np.int64)
    out = []
    for targets in (Y, lab):
        W = np.zeros((K_, d), dtype)
        B = np.zeros(K_)
        it = K.perceptron_fit_sklearn(X, targets, W, B, seeds, max_iter=7, tol=1e-3,
                                      backend=backend, n_threads=2)
        out.append((it, W, B))
    for a, b in zip(out[0], out[1]):
        np.testing.assert_array_equal(a, b)


def test_cached_shuffle_seeds_are_scikit_learns_draws():
    from rosenblatt.linear_model import _draw_shuffle_seeds, _shuffle_seeds

    for seed in (0, 1, 12345):
        for K_ in (2, 3, 10):
            want = _draw_shuffle_seeds(np.random.RandomState(seed), K_)
            np.testing.assert_array_equal(_shuffle_seeds(seed, K_), want)
            np.testing.assert_array_equal(_shuffle_seeds(np.int64(seed), K_), want)
            np.testing.assert_array_equal(_shuffle_seeds(np.random.RandomState(seed), K_), want)


@pytest.mark.skipif("cpp" not in BACKENDS, reason="compiled core not built")
def test_callers_sharing_the_pool_get_the_same_result():
    # a caller that finds the thread pool busy runs its tasks itself, one after another
    from concurrent.futures import ThreadPoolExecutor

    rng, X, lab, W0, b0 = _threaded_case(np.float32)
    orders = [rng.permutation(len(X)).astype(np.int64) for _ in range(3)]
    want = _epochs("cpp", X, lab, W0, b0, orders, 1.0, "heaviside", n_threads=1)
    with ThreadPoolExecutor(4) as ex:
        futures = [ex.submit(_epochs, "cpp", X, lab, W0, b0, orders, 1.0, "heaviside", 2)
                   for _ in range(8)]
        for f in futures:
            _assert_same(f.result(timeout=60), want)
