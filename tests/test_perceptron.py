"""rosenblatt.Perceptron: the same model as scikit-learn's, and Rosenblatt's own rule.

Parity means equality, not closeness: with the same random_state, coef_, intercept_,
n_iter_ and t_ equal scikit-learn's bit for bit. The compiled kernel's SIMD dot product
with its exact fallback (and its exact replay of an epoch whose stopping decision the
rounding bound leaves open) is exercised with inputs built to need them.
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import (
    LATER_PARTIAL_FIT_CASES,
    ctrl_c_latency,
    later_partial_fit_data,
    later_partial_fit_outcome,
    unaligned,
)
from rosenblatt import kernels as K
from rosenblatt.linear_model import Perceptron
from sklearn.base import clone
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Perceptron as SkPerceptron

BACKENDS = K.available_backends()


def _data(n=60, d=4, classes=2, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, d)
    if classes == 2:
        y = (X[:, 0] + 0.5 * rng.randn(n) > 0).astype(int)
    else:
        y = rng.randint(0, classes, n)
    return X, y


def _fit_both(X, y, fit_kw=None, backend=None, **params):
    fit_kw = fit_kw or {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = SkPerceptron(**params).fit(X, y, **fit_kw)
        ours = Perceptron(backend=backend or "auto", **params).fit(X, y, **fit_kw)
    return sk, ours


def assert_same_model(sk, ours):
    np.testing.assert_array_equal(ours.coef_, sk.coef_)
    np.testing.assert_array_equal(ours.intercept_, sk.intercept_)
    assert ours.coef_.dtype == sk.coef_.dtype
    assert ours.intercept_.dtype == sk.intercept_.dtype
    assert ours.n_iter_ == sk.n_iter_
    assert ours.t_ == sk.t_
    np.testing.assert_array_equal(ours.classes_, sk.classes_)


# ---------------------------------------------------------------- parity with scikit-learn

CASES = {
    "plain": {},
    "no_shuffle": {"shuffle": False},
    "eta0": {"eta0": 0.37},
    "balanced": {"class_weight": "balanced"},
    "class_weight": {"class_weight": {0: 0.3, 1: 1.7}},
    "early_stopping": {"early_stopping": True, "validation_fraction": 0.2},
    "no_intercept": {"fit_intercept": False},
    "tol_none": {"tol": None, "max_iter": 9},
    "l2": {"penalty": "l2", "alpha": 0.01},
    "l1": {"penalty": "l1", "alpha": 0.01},
    "elasticnet": {"penalty": "elasticnet", "alpha": 0.01, "l1_ratio": 0.4},
    "rs_none_l2_es": {"penalty": "l2", "early_stopping": True, "random_state": 3},
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("classes", [2, 3], ids=["binary", "3class"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unit", "sw"])
def test_parity_with_sklearn(case, classes, dtype, weighted):
    params = dict(CASES[case])
    if classes == 3 and "class_weight" in params and params["class_weight"] != "balanced":
        params["class_weight"] = {0: 0.3, 1: 1.7, 2: 0.9}
    X, y = _data(classes=classes, seed=classes)
    X = X.astype(dtype)
    sw = np.random.RandomState(9).uniform(0.2, 2.0, X.shape[0]) if weighted else None
    sk, ours = _fit_both(X, y, {"sample_weight": sw}, **params)
    assert_same_model(sk, ours)
    np.testing.assert_array_equal(ours.predict(X), sk.predict(X))
    np.testing.assert_array_equal(ours.decision_function(X), sk.decision_function(X))


@pytest.mark.parametrize("penalty", [None, "l2", "l1"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_parity_sparse(penalty, dtype):
    """CSR/CSC input: scikit-learn learns the intercept 100x slower on sparse data."""
    X, y = _data(n=50, d=6, classes=3, seed=4)
    X[np.abs(X) < 0.7] = 0.0
    X = X.astype(dtype)
    for fmt in (sp.csr_matrix, sp.csc_matrix):
        sk, ours = _fit_both(fmt(X), y, penalty=penalty, alpha=0.01)
        assert_same_model(sk, ours)


def test_parity_partial_fit_and_warm_start():
    X, y = _data(n=80, classes=3, seed=5)
    sk, ours = SkPerceptron(random_state=1), Perceptron(random_state=1)
    for start in (0, 40, 0):
        rows = slice(start, start + 40)
        sk.partial_fit(X[rows], y[rows], classes=np.unique(y))
        ours.partial_fit(X[rows], y[rows], classes=np.unique(y))
        assert_same_model(sk, ours)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = SkPerceptron(warm_start=True, max_iter=3).fit(X, y)
        ours = Perceptron(warm_start=True, max_iter=3).fit(X, y)
        assert_same_model(sk, ours)
        sk.set_params(max_iter=4).fit(X, y)
        ours.set_params(max_iter=4).fit(X, y)
    assert_same_model(sk, ours)
    rng = np.random.RandomState(0)
    coef, inter = rng.randn(3, X.shape[1]), rng.randn(3)
    # copies: scikit-learn trains in the caller's coef_init array when it can
    sk = SkPerceptron().fit(X, y, coef_init=coef.copy(), intercept_init=inter.copy())
    ours = Perceptron().fit(X, y, coef_init=coef.copy(), intercept_init=inter.copy())
    assert_same_model(sk, ours)


def test_iris_setosa_lecture_example():
    iris = load_iris()
    X = iris.data[:, (2, 3)]  # petal length, petal width
    y = iris.target == 0  # setosa
    clf = Perceptron(random_state=42).fit(X, y)
    np.testing.assert_allclose(clf.coef_, [[-1.4, -2.2]])
    np.testing.assert_allclose(clf.intercept_, [4.0])
    assert clf.n_iter_ == 7
    np.testing.assert_array_equal(clf.predict([[2, 0.5], [3, 1]]), [True, False])


# ---------------------------------------------------------------- backends agree


@pytest.mark.parametrize("classes", [2, 4])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_every_backend_same_model(classes, dtype):
    X, y = _data(n=70, d=5, classes=classes, seed=11)
    X = X.astype(dtype)
    models = [Perceptron(backend=b, random_state=2).fit(X, y) for b in BACKENDS]
    for m in models[1:]:
        np.testing.assert_array_equal(m.coef_, models[0].coef_)
        np.testing.assert_array_equal(m.intercept_, models[0].intercept_)
        assert m.n_iter_ == models[0].n_iter_
    # Rosenblatt's rule on integer-valued data: exact arithmetic, every backend equal
    Xi = np.random.RandomState(3).randint(-3, 4, size=(70, 5)).astype(dtype)
    for step in ("heaviside", "sign"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            ms = [Perceptron(rule="rosenblatt", step=step, backend=b, max_iter=6).fit(Xi, y)
                  for b in BACKENDS]
        for m in ms[1:]:
            np.testing.assert_array_equal(m.coef_, ms[0].coef_)
            np.testing.assert_array_equal(m.intercept_, ms[0].intercept_)


@pytest.mark.parametrize("classes", [2, 4])
def test_rosenblatt_rule_sparse_block_by_block(classes, monkeypatch):
    # sparse X is densified a few rows at a time (blocks of 16 here) in each epoch's order:
    # the same online rule, row after row, as on the dense array - with and without weights
    from rosenblatt import _rows

    monkeypatch.setattr(_rows, "BLOCK_BYTES", 16 * 9 * 8)
    X, y = _data(n=150, d=9, classes=classes, seed=4)
    X[np.abs(X) < 0.8] = 0.0
    sw = np.random.RandomState(5).uniform(0.5, 2.0, 150)
    for backend in BACKENDS:
        for kw in ({}, {"sample_weight": sw}):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                dense = Perceptron(rule="rosenblatt", backend=backend, random_state=1,
                                   max_iter=7).fit(X, y, **kw)
                csr = Perceptron(rule="rosenblatt", backend=backend, random_state=1,
                                 max_iter=7).fit(sp.csr_matrix(X), y, **kw)
            np.testing.assert_array_equal(csr.coef_, dense.coef_)
            np.testing.assert_array_equal(csr.intercept_, dense.intercept_)
            assert csr.n_iter_ == dense.n_iter_


def test_threads_do_not_change_the_model():
    X, y = _data(n=200, d=7, classes=5, seed=2)
    a = Perceptron(n_threads=1).fit(X, y)
    b = Perceptron(n_threads=2).fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    np.testing.assert_array_equal(a.intercept_, b.intercept_)


# ---------------------------------------------------------------- Rosenblatt's rule


def _separable(classes, n=120, seed=0):
    rng = np.random.RandomState(seed)
    if classes == 2:
        X = rng.uniform(-1, 1, size=(n, 3))
        s = X @ np.array([1.0, -2.0, 0.5]) + 0.1
        keep = np.abs(s) > 0.2  # a margin
        return X[keep], (s[keep] > 0).astype(int)
    angles = 2 * np.pi * np.arange(classes) / classes
    centers = 6 * np.c_[np.cos(angles), np.sin(angles)]
    y = rng.randint(0, classes, n)
    return centers[y] + rng.uniform(-0.5, 0.5, size=(n, 2)), y


@pytest.mark.parametrize("step", ["heaviside", "sign"])
@pytest.mark.parametrize("classes", [2, 3])
def test_rosenblatt_rule_converges_on_separable_data(step, classes):
    X, y = _separable(classes)
    clf = Perceptron(rule="rosenblatt", step=step, max_iter=500, tol=None,
                     random_state=0).fit(X, y)
    assert clf.n_iter_ < 500  # stopped after an epoch without mistakes
    assert clf.score(X, y) == 1.0
    assert clf.coef_.shape == ((1 if classes == 2 else classes), X.shape[1])
    # the last epoch had no mistakes: one more changes nothing
    coef = clf.coef_.copy()
    clf.partial_fit(X, y)
    np.testing.assert_array_equal(clf.coef_, coef)


def test_rosenblatt_rule_one_step_by_hand():
    # one row x = (1, 2), one-hot target (0, 1), W = 0, b = 0: heaviside gives (1, 1),
    # error (-1, 0), so W[:, 0] = -eta x and b[0] = -eta.
    clf = Perceptron(rule="rosenblatt", eta0=0.5, shuffle=False, max_iter=1, tol=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.partial_fit([[1.0, 2.0]], [1], classes=[0, 1, 2])
    np.testing.assert_array_equal(clf.coef_, [[-0.5, -1.0], [0.0, 0.0], [-0.5, -1.0]])
    np.testing.assert_array_equal(clf.intercept_, [-0.5, 0.0, -0.5])


# ---------------------------------------------------------------- C++ kernel specifics

needs_cpp = pytest.mark.skipif("cpp" not in BACKENDS, reason="compiled core not built")


@needs_cpp
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_cpp_ties_are_mistakes(dtype):
    """p == 0 exactly (the sequential fallback computes it) is a mistake in both kernels."""
    X = np.array([[1.0, -1.0], [2.0, -2.0], [-3.0, 3.0], [1.0, 1.0]], dtype=dtype)
    y = np.array([1.0, -1.0, 1.0, -1.0])
    for backend in ("numpy", "cpp"):
        w = np.zeros(2, dtype=dtype)
        b = np.zeros(1)
        s, m = K.perceptron_epoch_sklearn(X, y, w, b, fit_intercept=False, backend=backend)
        # row 0: p = 0, a tie -> mistake, w = (1, -1); row 1: p = 4, y = -1 -> mistake,
        # w = (-1, 1); row 2: p = 6 -> correct; row 3: p = 0, a tie -> mistake
        assert m == 3
        if backend == "numpy":
            ref = (w.copy(), s)
        else:
            np.testing.assert_array_equal(w, ref[0])
            assert s == ref[1]
    # the Rosenblatt kernel: heaviside(0) = 1, sign(0) = 0
    Xr = np.array([[0.0, 0.0]], dtype=dtype)
    for step, target, mistakes in (("heaviside", 1.0, 0), ("sign", 1.0, 1)):
        for backend in ("numpy", "cpp"):
            W = np.zeros((2, 1), dtype=dtype)
            bb = np.zeros(1, dtype=dtype)
            got = K.perceptron_epoch(Xr, np.array([[target]], dtype=dtype), W, bb, step=step,
                                     backend=backend)
            assert got == mistakes


@needs_cpp
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("tol", [1e-3, 0.0])
def test_cpp_exact_fallback_matches_sklearn(dtype, tol):
    """Inputs that put |p| inside the rounding bound: huge cancelling columns (p is a tiny
    difference of huge products) and small integers (exact ties, equal epoch losses that
    make the stopping rule's comparison ambiguous and force the exact replay)."""
    rng = np.random.RandomState(7)
    X = rng.randn(100, 5)
    X[:, 0] *= 1e16
    X[:, 1] = -X[:, 0] + rng.randn(100)
    X[:, 2] *= 1e-8
    y = (rng.randn(100) > 0).astype(int)
    Xi = rng.randint(-2, 3, size=(80, 6)).astype(float)
    yi = rng.randint(0, 3, 80)
    for data, labels in ((X, y), (Xi, yi)):
        sk, ours = _fit_both(data.astype(dtype), labels, backend="cpp", tol=tol, max_iter=60,
                             random_state=1)
        assert_same_model(sk, ours)


@needs_cpp
@pytest.mark.parametrize("k", [1, 3, 4, 5, 8, 9, 17, 33])
@pytest.mark.parametrize("d", [1, 7, 16, 33])
def test_cpp_rosenblatt_epoch_lane_edges(k, d):
    """The row-times-matrix kernel at output counts around the SIMD widths (integer data:
    every backend computes exactly)."""
    rng = np.random.RandomState(k * 100 + d)
    n = 23
    for dtype in (np.float32, np.float64):
        X = rng.randint(-3, 4, size=(n, d)).astype(dtype)
        Y = (rng.rand(n, k) > 0.5).astype(dtype)
        order = rng.permutation(n).astype(np.int64)
        out = {}
        for backend in ("numpy", "cpp"):
            W = np.zeros((d, k), dtype=dtype)
            b = np.zeros(k, dtype=dtype)
            m = K.perceptron_epoch(X, Y, W, b, order=order, eta=1.0, backend=backend)
            out[backend] = (W, b, m)
        np.testing.assert_array_equal(out["cpp"][0], out["numpy"][0])
        np.testing.assert_array_equal(out["cpp"][1], out["numpy"][1])
        assert out["cpp"][2] == out["numpy"][2]


@needs_cpp
def test_cpp_xorshift_shuffle_matches_reference():
    for n, seed in ((1, 5), (2, 0), (17, 123456789), (1000, 2**31 - 2)):
        a = np.arange(n, dtype=np.int64)
        b = a.copy()
        K.xorshift_shuffle(a, seed, backend="numpy")
        K.xorshift_shuffle(b, seed, backend="cpp")
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- robustness


def test_divergence_raises_value_error():
    # eta0 * x overflows on the first update: scikit-learn raises ValueError too
    X = np.array([[1e300], [-1e300], [1e300], [-1e300]])
    y = np.array([0, 0, 1, 1])
    for params in ({}, {"early_stopping": True, "validation_fraction": 0.5},
                   {"penalty": "l2"}, {"rule": "rosenblatt"}):
        with pytest.raises(ValueError, match="overflow"):
            Perceptron(eta0=1e10, shuffle=False, **params).fit(np.repeat(X, 3, axis=0),
                                                                np.repeat(y, 3))
    with pytest.raises(ValueError, match="overflow"):
        SkPerceptron(eta0=1e10, shuffle=False).fit(X, y)


def test_rosenblatt_rule_rejects_what_it_does_not_do():
    X, y = _data()
    with pytest.raises(ValueError, match="penalty"):
        Perceptron(rule="rosenblatt", penalty="l2").fit(X, y)
    with pytest.raises(ValueError, match="early_stopping"):
        Perceptron(rule="rosenblatt", early_stopping=True).fit(X, y)


def test_sparsify_densify_keep_predictions():
    X, y = _data(classes=3)
    clf = Perceptron(penalty="l1", alpha=0.05).fit(X, y)
    pred = clf.predict(X)
    assert sp.issparse(clf.sparsify().coef_)
    np.testing.assert_array_equal(clf.predict(X), pred)
    assert not sp.issparse(clf.densify().coef_)
    np.testing.assert_array_equal(clf.predict(X), pred)


def _fit_interrupted(est, X, y, after):
    """Fit with a Ctrl-C after ``after`` seconds; return the seconds from it to the end."""
    # a small fit first: numba compiles (or loads from its cache) on the first call, and
    # Ctrl-C cannot stop that
    step = max(1, X.shape[0] // 300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clone(est).set_params(max_iter=2).fit(X[::step], y[::step])
    return ctrl_c_latency(lambda: est.fit(X, y), after)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rule", ["sklearn", "rosenblatt"])
def test_keyboard_interrupt_stops_cleanly(backend, rule):
    # the NumPy reference loops over rows in Python: fewer of them, so that epochs end
    # before Ctrl-C there too (a compiled epoch over 200000 rows takes milliseconds)
    n = 5000 if backend == "numpy" else 200000
    rng = np.random.RandomState(0)
    X = rng.randn(n, 20)
    y = rng.randint(0, 4, n)
    clf = Perceptron(max_iter=100000, tol=None, rule=rule, backend=backend)
    assert _fit_interrupted(clf, X, y, 0.5) < 0.5
    assert clf.coef_.shape == (4, 20)
    assert np.isfinite(clf.coef_).all()
    assert clf.predict(X[:5]).shape == (5,)
    # the epochs run before Ctrl-C are counted, as in scikit-learn's t_ = 1 + epochs * n
    assert clf.n_iter_ >= 1 and clf.t_ == 1 + clf.n_iter_ * X.shape[0]


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "numpy"])
def test_keyboard_interrupt_while_other_threads_finish(backend):
    # one-vs-rest classes on two threads: classes 0 and 2 stop after some epochs; class 1
    # is separable at once, so with tol=0 its loss never improves on 0 and it runs to
    # max_iter - on a worker thread, typically, while the calling thread, out of classes,
    # waits for it (Python handles Ctrl-C on the calling thread only)
    rng = np.random.RandomState(0)
    X = rng.randn(20000, 50)
    y = np.where(X @ rng.randn(50) > 0, 0, 2)
    X[:2000, 0] += 50.0
    y[:2000] = 1
    clf = Perceptron(tol=0.0, n_iter_no_change=50, max_iter=100000, random_state=0,
                     backend=backend, n_threads=2)
    assert _fit_interrupted(clf, X, y, 1.0) < 0.5
    assert clf.n_iter_ >= 1 and np.isfinite(clf.coef_).all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rule", ["sklearn", "rosenblatt"])
def test_unaligned_input(backend, rule):
    # data at an odd address (numpy.frombuffer at an offset, a memmap after an odd-sized
    # header) passes scikit-learn's checks as it is
    X, y = _data(n=90, classes=3)
    U = unaligned(X)
    sw = np.linspace(0.5, 1.5, 90)
    kw = {"rule": rule, "backend": backend, "max_iter": 5, "tol": None, "random_state": 0}
    a = Perceptron(**kw).fit(X, y, sample_weight=sw)
    b = Perceptron(**kw).fit(U, y, sample_weight=unaligned(sw))
    np.testing.assert_array_equal(a.coef_, b.coef_)
    np.testing.assert_array_equal(a.predict(U), a.predict(X))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rule", ["sklearn", "rosenblatt"])
@pytest.mark.parametrize("classes", [2, 3])
def test_nonfinite_x_leaves_the_estimator_as_sklearn_does(backend, rule, classes):
    # scikit-learn finds a NaN in X before it changes anything; the kernels find it while
    # training, and the estimator returns to its state before the call: fit has cleared
    # the model (coef_ None, as scikit-learn's fit does first), partial_fit keeps it
    X, y = _data(n=40, classes=classes)
    Xn = X.copy()
    Xn[17, 2] = np.nan
    kw = {"rule": rule, "backend": backend, "max_iter": 5, "tol": None, "random_state": 0}
    sk, ours = SkPerceptron(max_iter=5, tol=None, random_state=0), Perceptron(**kw)
    for est in (sk, ours):
        with pytest.raises(ValueError, match="Input X contains NaN"):
            est.fit(Xn, y)
        assert est.coef_ is None and est.intercept_ is None
        assert not hasattr(est, "classes_") and not hasattr(est, "n_features_in_")
        with pytest.raises(AttributeError):
            est.predict(X)
    ours.fit(X, y)
    before = {k: (v.copy() if isinstance(v, np.ndarray) else v)
              for k, v in ours.__dict__.items()}
    with pytest.raises(ValueError, match="Input X contains NaN"):
        ours.partial_fit(Xn, y)
    assert ours.__dict__.keys() == before.keys()
    for k, v in before.items():
        if isinstance(v, np.ndarray):
            np.testing.assert_array_equal(ours.__dict__[k], v)
    assert ours.t_ == before["t_"] and ours.n_iter_ == before["n_iter_"]
    with pytest.raises(ValueError, match="Input X contains NaN"):
        ours.set_params(warm_start=True).fit(Xn, y)
    np.testing.assert_array_equal(ours.coef_, before["coef_"])



@pytest.mark.parametrize("rule", ["sklearn", "rosenblatt"])
@pytest.mark.parametrize("case", LATER_PARTIAL_FIT_CASES)
def test_later_partial_fit_validates_as_sklearn(rule, case):
    """A fitted estimator's partial_fit takes a shortcut past scikit-learn's validation
    when that has nothing to do (_validation.py); every other later call still gets
    scikit-learn's errors and warnings."""
    first, later = later_partial_fit_data(case)
    ours = Perceptron(rule=rule, max_iter=1, tol=None, random_state=0)
    sk = SkPerceptron(max_iter=1, tol=None, random_state=0)
    (etype, msg), cats = later_partial_fit_outcome(ours, first, later)
    (sk_etype, sk_msg), sk_cats = later_partial_fit_outcome(sk, first, later)
    assert etype is sk_etype, (msg, sk_msg)
    assert msg == sk_msg
    assert cats == sk_cats
    if etype is None and rule == "sklearn":  # the same model as scikit-learn's
        np.testing.assert_allclose(ours.coef_, sk.coef_, rtol=1e-6)
