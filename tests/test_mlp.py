"""MLPClassifier / MLPRegressor: worked examples, the options beyond scikit-learn, backends,
robustness (errors, divergence, Ctrl-C, pickling)."""

import _thread
import itertools
import pickle
import re
import threading
import tracemalloc
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import (
    backends_under_test,
    ctrl_c_latency,
    later_partial_fit_data,
    later_partial_fit_outcome,
    unaligned,
)
from rosenblatt import neural_network as nn
from rosenblatt.kernels import available_backends
from rosenblatt.neural_network import MLPClassifier, MLPRegressor
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor

BACKENDS = available_backends()
FAST = BACKENDS[0]

rng = np.random.RandomState(0)
X = rng.randn(120, 6)
Y_CLS = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)  # 3 classes
Y_REG = X[:, :2].sum(1) + 0.1 * rng.randn(120)


def _flat(est):
    return np.concatenate([p.ravel() for p in est.coefs_ + est.intercepts_])


def _quiet(fn, *args, **kw):
    """Call fn with ConvergenceWarning silenced (short fits are expected not to converge)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fn(*args, **kw)


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


# ------------------------------------------------------------------------------------------
# worked examples


def test_one_sgd_step_by_hand():
    # Network 2-2-1, relu hidden, identity output, squared error; one sample x = (1, 2),
    # y = 1; plain SGD (momentum 0), lr = 0.1, alpha = 0, batch of 1.
    #   W1 = [[0.5, -1], [0.25, 0.5]], b1 = [0, 0.5]; W2 = [[1], [2]], b2 = [0.5]
    # forward:  z1 = x W1 + b1 = [0.5 + 0.5, -1 + 1 + 0.5] = [1.0, 0.5]; a1 = relu = z1
    #           out = a1 W2 + b2 = 1 + 1 + 0.5 = 2.5; loss = 0.5 (2.5 - 1)^2 = 1.125
    # backward: d2 = out - y = 1.5; gW2 = a1^T d2 = [[1.5], [0.75]]; gb2 = [1.5]
    #           d1 = (d2 W2^T) * relu'(a1) = [1.5, 3.0] * [1, 1] = [1.5, 3.0]
    #           gW1 = x^T d1 = [[1.5, 3.0], [3.0, 6.0]]; gb1 = [1.5, 3.0]
    # step:     W2 = [[0.85], [1.925]], b2 = [0.35]
    #           W1 = [[0.35, -1.3], [-0.05, -0.1]], b1 = [-0.15, 0.2]
    est = MLPRegressor.from_weights(
        [np.array([[0.5, -1.0], [0.25, 0.5]]), np.array([[1.0], [2.0]])],
        [np.array([0.0, 0.5]), np.array([0.5])], activation="relu", backend="numpy")
    assert est.predict(np.array([[1.0, 2.0]]))[0] == pytest.approx(2.5)
    est.set_params(solver="sgd", momentum=0.0, learning_rate_init=0.1, alpha=0.0,
                   batch_size=1, shuffle=False)
    est.partial_fit(np.array([[1.0, 2.0]]), np.array([1.0]))
    assert est.loss_curve_ == [pytest.approx(1.125)]
    np.testing.assert_allclose(est.coefs_[0], [[0.35, -1.3], [-0.05, -0.1]])
    np.testing.assert_allclose(est.intercepts_[0], [-0.15, 0.2])
    np.testing.assert_allclose(est.coefs_[1], [[0.85], [1.925]])
    np.testing.assert_allclose(est.intercepts_[1], [0.35])


def test_xor_from_weights_heaviside():
    # the lecture's XOR: an OR unit and an AND unit, output = OR - 2 AND > 0
    Xx = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    clf = MLPClassifier.from_weights(
        [np.array([[1.0, 1.0], [1.0, 1.0]]), np.array([[1.0], [-2.0]])],
        [np.array([-0.5, -1.5]), np.array([-0.5])],
        classes=[0, 1], activation="heaviside", out_activation="heaviside")
    np.testing.assert_array_equal(clf.predict(Xx), [0, 1, 1, 0])
    layers = clf.forward(Xx)
    assert len(layers) == 3
    np.testing.assert_array_equal(layers[1], [[0, 0], [1, 0], [1, 0], [1, 1]])
    # step functions cannot be trained
    with pytest.raises(ValueError, match="forward-only"):
        clf.set_params(warm_start=True).fit(Xx, [0, 1, 1, 0])
    with pytest.raises(ValueError, match="forward-only"):
        MLPClassifier(activation="heaviside").fit(Xx, [0, 1, 1, 0])


def test_from_weights_class_order():
    # outputs given in the order c, a, b: classes_ is sorted as scikit-learn's, the output
    # units follow it, and training (whose targets are encoded in sorted order) improves
    # the model instead of learning permuted labels
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 3.0], [3.0, 0.0], [-3.0, -3.0]])
    Xc = np.concatenate([c + 0.3 * rng.standard_normal((60, 2)) for c in centers])
    yc = np.repeat(np.array(["c", "a", "b"]), 60)
    W1 = rng.standard_normal((2, 6))
    W2 = rng.standard_normal((6, 3))
    b1, b2 = np.zeros(6), np.zeros(3)
    given = MLPClassifier.from_weights([W1, W2], [b1, b2], classes=["c", "a", "b"],
                                       learning_rate_init=0.05, random_state=0)
    same = MLPClassifier.from_weights([W1, W2[:, [1, 2, 0]]], [b1, b2[[1, 2, 0]]],
                                      classes=["a", "b", "c"])
    np.testing.assert_array_equal(given.classes_, ["a", "b", "c"])
    np.testing.assert_array_equal(given.predict(Xc), same.predict(Xc))
    # output j of the given network is class classes[j]
    scores = np.maximum(Xc @ W1 + b1, 0) @ W2 + b2
    np.testing.assert_array_equal(given.predict(Xc), np.array(["c", "a", "b"])[
        scores.argmax(axis=1)])
    for _ in range(60):
        given.partial_fit(Xc, yc)
    assert given.score(Xc, yc) > 0.95
    with pytest.raises(ValueError, match="distinct"):
        MLPClassifier.from_weights([W1, W2], [b1, b2], classes=["a", "a", "b"])
    with pytest.raises(ValueError, match="sorted order"):
        MLPClassifier.from_weights([W1, W2[:, :1]], [b1, b2[:1]], classes=[1, 0])


def test_summary_counts_parameters():
    sizes = [784, 300, 100, 10]
    coefs = [np.zeros((a, b)) for a, b in itertools.pairwise(sizes)]
    clf = MLPClassifier.from_weights(coefs, [np.zeros(b) for b in sizes[1:]],
                                     classes=np.arange(10))
    text = clf.summary()
    assert "266,610" in text and "235,500" in text and "softmax" in text
    with pytest.raises(NotFittedError):
        MLPClassifier().summary()


# ------------------------------------------------------------------------------------------
# options beyond scikit-learn


def test_callback_stops_at_chosen_epoch():
    seen = []

    def cb(est, logs):
        seen.append(dict(logs))
        return logs["epoch"] == 3

    clf = MLPClassifier((8,), max_iter=50, random_state=0, callbacks=[cb], backend=FAST)
    clf.fit(X, Y_CLS, validation_data=(X[:30], Y_CLS[:30]))  # no ConvergenceWarning
    assert clf.n_iter_ == 3 and len(clf.loss_curve_) == 3 and len(seen) == 3
    assert set(seen[0]) == {"epoch", "loss", "val_loss", "val_score", "learning_rate",
                            "seconds"}
    assert [s["epoch"] for s in seen] == [1, 2, 3]
    assert seen[-1]["loss"] == clf.loss_curve_[-1]
    assert seen[-1]["val_loss"] == clf.validation_loss_curve_[-1]
    assert seen[-1]["learning_rate"] == clf.learning_rate_init


@pytest.mark.parametrize("returned", [np.array([True, False]), "stop", 1, 0.5])
def test_callback_returning_other_than_a_flag(returned):
    # a callback stops training by returning True; anything but a bool or None is a
    # mistake to name, not numpy's "truth value of an array is ambiguous" (or, for a
    # string or a number, a stop nobody asked for)
    def go_on(est, logs):
        return None

    def bad(est, logs):
        return returned

    clf = MLPClassifier((8,), max_iter=5, random_state=0, callbacks=[go_on, bad],
                        backend=FAST)
    with pytest.raises(TypeError, match=r"callbacks\[1\] returned .*expected True to stop"):
        clf.fit(X, Y_CLS)
    assert clf.n_iter_ == 1  # stopped after the first epoch's callbacks


@pytest.mark.parametrize("returned", [None, False, np.False_])
def test_callback_returning_no_stop_goes_on(returned):
    clf = MLPClassifier((8,), max_iter=3, random_state=0, backend=FAST,
                        callbacks=[lambda est, logs: returned])
    _quiet(clf.fit, X, Y_CLS)
    assert clf.n_iter_ == 3


def test_validation_data_curves():
    reg = MLPRegressor(hidden_layer_sizes=(8,), max_iter=7, random_state=0, backend=FAST)
    _quiet(reg.fit, X[:80], Y_REG[:80], validation_data=(X[80:], Y_REG[80:]))
    assert len(reg.validation_loss_curve_) == reg.n_iter_ == 7
    assert len(reg.validation_scores_) == 7
    # the validation loss is the training formula evaluated on the validation set
    P = reg.predict(X[80:])
    l2 = 0.5 * reg.alpha * sum((W ** 2).sum() for W in reg.coefs_) / 40
    assert reg.validation_loss_curve_[-1] == pytest.approx(
        0.5 * np.mean((P - Y_REG[80:]) ** 2) + l2)
    assert reg.validation_scores_[-1] == pytest.approx(reg.score(X[80:], Y_REG[80:]))
    # early stopping records one too; without a validation set there is none
    clf = _quiet(MLPClassifier((8,), max_iter=5, early_stopping=True, random_state=0,
                               backend=FAST).fit, X, Y_CLS)
    assert len(clf.validation_loss_curve_) == len(clf.validation_scores_) == clf.n_iter_
    clf = _quiet(MLPClassifier((8,), max_iter=5, backend=FAST).fit, X, Y_CLS)
    assert clf.validation_loss_curve_ is None and clf.validation_scores_ is None
    # labels the classifier was not trained on are an error, not all-zero targets
    with pytest.raises(ValueError, match=r"not in the training classes \[0, 1, 2\]: \[7\]"):
        _quiet(clf.fit, X, Y_CLS, validation_data=(X[:20], np.r_[Y_CLS[:19], 7]))


def test_restore_best_weights():
    # a wide net on noise targets over-fits: the validation loss has its minimum early
    noise = np.random.RandomState(1).randn(120)
    snapshots = []

    def keep(est, logs):
        snapshots.append(_flat(est).copy())

    reg = MLPRegressor(hidden_layer_sizes=(64,), max_iter=40, learning_rate_init=0.02, random_state=0,
                       restore_best_weights=True, callbacks=[keep], backend=FAST)
    _quiet(reg.fit, X[:60], noise[:60], validation_data=(X[60:], noise[60:]))
    best = int(np.argmin(reg.validation_loss_curve_))
    assert best < len(snapshots) - 1  # the case is meaningful: the best is not the last
    np.testing.assert_array_equal(_flat(reg), snapshots[best])
    # without a validation set, the lowest training loss is the one restored
    snapshots.clear()
    reg.set_params(learning_rate_init=0.5, max_iter=8)
    _quiet(reg.fit, X[:60], noise[:60])
    np.testing.assert_array_equal(_flat(reg), snapshots[int(np.argmin(reg.loss_curve_))])


def test_class_weight_is_sample_weight():
    cw = {0: 1.0, 1: 3.0, 2: 0.5}
    a = _quiet(MLPClassifier((8,), max_iter=5, random_state=0, class_weight=cw,
                             backend=FAST).fit, X, Y_CLS)
    b = _quiet(MLPClassifier((8,), max_iter=5, random_state=0, backend=FAST).fit, X, Y_CLS,
               sample_weight=np.vectorize(cw.get)(Y_CLS).astype(float))
    c = _quiet(MLPClassifier((8,), max_iter=5, random_state=0, backend=FAST).fit, X, Y_CLS)
    np.testing.assert_array_equal(_flat(a), _flat(b))
    assert not np.array_equal(_flat(a), _flat(c))
    bal = _quiet(MLPClassifier((8,), max_iter=2, random_state=0, class_weight="balanced",
                               backend=FAST).fit, X, Y_CLS)
    assert bal.n_iter_ == 2
    with pytest.raises(ValueError, match="balanced"):
        MLPClassifier(class_weight="balanced").partial_fit(X, Y_CLS, classes=[0, 1, 2])


@pytest.mark.parametrize("init", ["glorot_uniform", "glorot_normal", "he_uniform",
                                  "he_normal", "lecun"])
def test_kernel_init(init):
    Xw = np.random.RandomState(0).randn(10, 400)
    clf = MLPClassifier((300, 200), max_iter=1, kernel_init=init, random_state=0,
                        backend=FAST)
    # warm_start with max_iter ... is not needed: init is visible before any step with
    # learning_rate_init tiny enough to leave the weights within rounding of their start
    clf.set_params(learning_rate_init=1e-12)
    _quiet(clf.fit, Xw, np.arange(10) % 3)
    for W, b in zip(clf.coefs_, clf.intercepts_):
        fan_in, fan_out = W.shape
        if init == "glorot_uniform":
            bound = np.sqrt(6.0 / (fan_in + fan_out))
            assert np.abs(W).max() <= bound * (1 + 1e-9)
            assert np.abs(W).max() > 0.95 * bound and np.abs(b).max() > 0
            continue
        np.testing.assert_allclose(b, 0.0, atol=1e-9)
        if init == "he_uniform":
            bound = np.sqrt(6.0 / fan_in)
            assert np.abs(W).max() <= bound * (1 + 1e-9)
            assert np.abs(W).max() > 0.95 * bound
        else:
            std = {"glorot_normal": np.sqrt(2.0 / (fan_in + fan_out)),
                   "he_normal": np.sqrt(2.0 / fan_in), "lecun": np.sqrt(1.0 / fan_in)}[init]
            if W.size > 1000:
                assert W.std() == pytest.approx(std, rel=0.1)
    # glorot_uniform is scikit-learn's draw
    if init == "glorot_uniform":
        sk = _quiet(SkMLPClassifier((300, 200), max_iter=1, random_state=0,
                                    learning_rate_init=1e-12).fit, Xw, np.arange(10) % 3)
        np.testing.assert_allclose(_flat(clf), _flat(sk), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("out", ["relu", "softplus"])
def test_out_activation_keeps_predictions_non_negative(out):
    reg = MLPRegressor(hidden_layer_sizes=(16,), out_activation=out, max_iter=20, random_state=0,
                       learning_rate_init=0.01, backend=FAST)
    _quiet(reg.fit, X, Y_REG)  # targets of both signs
    assert reg.out_activation_ == out
    P = reg.predict(np.random.RandomState(2).randn(500, 6) * 3)
    assert (P >= 0).all()
    assert reg.score(X, Y_REG) > -1  # it learned something of the positive part


def test_regressor_losses_and_poisson_link():
    for loss in ("absolute_error", "huber"):
        reg = _quiet(MLPRegressor(loss, (8,), max_iter=30, random_state=0,
                                  learning_rate_init=0.01, backend=FAST).fit, X, Y_REG)
        assert reg.loss_curve_[-1] < reg.loss_curve_[0]
    with pytest.raises(ValueError, match="poisson"):
        MLPRegressor("poisson", out_activation="relu").fit(X, np.abs(Y_REG))
    with pytest.raises(ValueError, match="non-negative"):
        MLPRegressor("poisson").fit(X, Y_REG)


def test_activation_tuple_and_more_solvers():
    # a tuple of identical entries is the plain string (same init, same model)
    a = _quiet(MLPClassifier((8, 4), activation="logistic", max_iter=3, random_state=0,
                             backend=FAST).fit, X, Y_CLS)
    b = _quiet(MLPClassifier((8, 4), activation=("logistic", "logistic"), max_iter=3,
                             random_state=0, backend=FAST).fit, X, Y_CLS)
    np.testing.assert_array_equal(_flat(a), _flat(b))
    c = _quiet(MLPClassifier((8, 4), activation=("gelu", "leaky_relu"), max_iter=3,
                             random_state=0, backend=FAST).fit, X, Y_CLS)
    assert [L.shape[1] for L in c.forward(X)] == [6, 8, 4, 3]
    with pytest.raises(ValueError, match="one per hidden layer"):
        MLPClassifier((8, 4), activation=("tanh",)).fit(X, Y_CLS)
    for solver in ("adagrad", "rmsprop", "adamw"):
        est = _quiet(MLPClassifier((16,), solver=solver, max_iter=20, random_state=0,
                                   learning_rate_init=0.01, backend=FAST).fit, X, Y_CLS)
        assert est.loss_curve_[-1] < est.loss_curve_[0]


def test_verbose_progress_line(capsys):
    _quiet(MLPClassifier((4,), max_iter=2, verbose=True, backend=FAST).fit, X, Y_CLS,
           validation_data=(X, Y_CLS))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1].startswith("Iteration 2, loss = ")
    assert "val_loss" in lines[1] and "val_score" in lines[1] and "time" in lines[1]


# ------------------------------------------------------------------------------------------
# parameters as data: user-assigned weights, float32, sparse, forward


def test_user_assigned_weights_are_used():
    clf = _quiet(MLPClassifier((8,), max_iter=3, random_state=0, backend=FAST).fit, X,
                 Y_CLS)
    clf.coefs_ = [np.zeros_like(W) for W in clf.coefs_]
    clf.intercepts_[-1] = np.array([0.0, 5.0, 0.0])
    assert (clf.predict(X) == 1).all()
    clf.intercepts_[-1][:] = [5.0, 0.0, 0.0]  # in place edits write through too
    assert (clf.predict(X) == 0).all()
    clf.partial_fit(X, Y_CLS)  # continues from the assigned weights
    assert np.abs(clf.coefs_[0]).max() < 0.05


def test_assigned_weights_are_checked():
    clf = _quiet(MLPClassifier((8,), max_iter=2, random_state=0, backend=FAST).fit, X,
                 Y_CLS)
    clf.coefs_ = [np.zeros((6, 5)), clf.coefs_[1]]
    with pytest.raises(ValueError, match="chaining"):
        clf.predict(X)
    clf.coefs_ = [np.zeros((6, 5)), np.zeros((5, 3))]
    clf.intercepts_ = [np.zeros(5), np.zeros(3)]
    # a new hidden width is accepted, as in scikit-learn (the arrays define the network)
    np.testing.assert_allclose(clf.predict_proba(X), 1 / 3)
    assert clf.summary().count("\n") > 3


def test_concurrent_predict_matches_serial():
    clf = _quiet(MLPClassifier((32,), max_iter=2, random_state=0, backend=FAST).fit, X,
                 Y_CLS)
    expected = clf.predict_proba(X)
    results = [None] * 4

    def work(k):
        for _ in range(50):
            results[k] = clf.predict_proba(X)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        np.testing.assert_array_equal(r, expected)


def test_float32_end_to_end(backend):
    X32 = X.astype(np.float32)
    clf = _quiet(MLPClassifier((8,), max_iter=3, random_state=0, backend=backend).fit, X32,
                 Y_CLS)
    assert all(a.dtype == np.float32 for a in clf.coefs_ + clf.intercepts_)
    assert clf.predict_proba(X32).dtype == np.float32
    assert all(a.dtype == np.float32 for a in clf.forward(X32))


def test_sparse_equals_dense():
    a = _quiet(MLPClassifier((8,), max_iter=3, random_state=0, backend=FAST).fit, X, Y_CLS)
    for fmt in (sp.csr_matrix, sp.csc_matrix):
        b = _quiet(MLPClassifier((8,), max_iter=3, random_state=0, backend=FAST).fit,
                   fmt(X), Y_CLS)
        np.testing.assert_allclose(_flat(a), _flat(b), rtol=1e-12)
        np.testing.assert_allclose(b.predict_proba(fmt(X)), a.predict_proba(X), rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sparse_trains_block_by_block(backend, monkeypatch):
    # sparse X is densified a few minibatches at a time (blocks of 2 x 7 rows here), never
    # whole: the same minibatches, steps and weights as training on the dense array
    from rosenblatt import _rows

    monkeypatch.setattr(_rows, "BLOCK_BYTES", 2 * 7 * 6 * 8)
    rs = np.random.RandomState(1)
    Xs = sp.random(120, 6, density=0.5, format="csr", random_state=rs) * 3
    sw = rs.uniform(0.5, 2.0, 120)
    kw = {"hidden_layer_sizes": (5,), "max_iter": 4, "batch_size": 7, "random_state": 0,
          "backend": backend}
    for extra in ({}, {"early_stopping": True}, {"solver": "sgd", "momentum": 0.5}):
        a = _quiet(MLPClassifier(**kw, **extra).fit, Xs.toarray(), Y_CLS, sample_weight=sw)
        b = _quiet(MLPClassifier(**kw, **extra).fit, Xs, Y_CLS, sample_weight=sw)
        np.testing.assert_array_equal(_flat(a), _flat(b))
        np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-13)
    # a float32 model goes on training on float64 sparse input in float32
    r = _quiet(MLPRegressor(**kw).fit, Xs.toarray().astype(np.float32), Y_REG)
    _quiet(r.set_params(warm_start=True).fit, Xs.tocsc(), Y_REG)
    assert r.coefs_[0].dtype == np.float32
    # memory: a wide sparse matrix is never densified whole. Here a minibatch of 200 rows
    # is 32 MB dense: the block being trained and the kernel's minibatch buffer are 20% of
    # X densified (the NumPy reference's temporaries add another 10%)
    wide = sp.random(2000, 20000, density=0.0005, format="csr", random_state=rs)
    tracemalloc.start()
    try:
        _quiet(MLPClassifier((4,), max_iter=1, random_state=0, backend=backend).fit,
               wide, rs.randint(0, 2, 2000))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 0.4 * 2000 * 20000 * 8, peak


def test_forward_and_predict_agree(backend):
    clf = _quiet(MLPClassifier((5, 4), max_iter=2, random_state=0, backend=backend).fit, X,
                 Y_CLS)
    acts = clf.forward(X)
    assert [a.shape for a in acts] == [(120, 6), (120, 5), (120, 4), (120, 3)]
    np.testing.assert_allclose(acts[-1], clf.predict_proba(X), rtol=1e-12)
    perm = np.random.RandomState(3).permutation(120)
    # the compiled core computes a row independently of the batch: bit-identical (see
    # test_row_invariance); BLAS (numpy, numba) may take another path for one row (gemv),
    # hence rounding-level differences
    same = (np.testing.assert_array_equal if backend == "cpp" else
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15))
    same(clf.predict_proba(X[perm]), clf.predict_proba(X)[perm])
    same(clf.predict_proba(X[:1]), clf.predict_proba(X)[:1])
    same(clf.predict_proba(X[7:30]), clf.predict_proba(X)[7:30])


@pytest.mark.parametrize("early_stopping", [False, True])
def test_training_copies_x_at_most_once(early_stopping):
    # C-contiguous float X is used in place (rows are visited through an index order,
    # the early-stopping split is a split of indices); an F-ordered X is copied once
    Xb = np.random.RandomState(0).randn(8000, 40)
    yb = (Xb[:, 0] > 0).astype(int)
    for Xin, limit in ((Xb, 0.6), (np.asfortranarray(Xb), 1.6)):
        est = MLPClassifier((8,), max_iter=1, early_stopping=early_stopping, backend=FAST)
        tracemalloc.start()
        try:
            _quiet(est.fit, Xin, yb)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < limit * Xb.nbytes


# ------------------------------------------------------------------------------------------
# backends


SAME_MODEL_CASES = {
    "classifier-adam-relu": (MLPClassifier, Y_CLS, {}, None),
    "regressor-sgd-tanh-early-stopping-weighted": (
        MLPRegressor, Y_REG, {"solver": "sgd", "activation": "tanh", "early_stopping": True,
                              "learning_rate_init": 0.01}, np.arange(120) % 3),
}


@pytest.mark.parametrize("case", list(SAME_MODEL_CASES))
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-9), (np.float32, 2e-4)])
def test_every_backend_fits_the_same_model(case, dtype, rtol):
    Est, y, params, sw = SAME_MODEL_CASES[case]
    Xd = X.astype(dtype)
    params = {"hidden_layer_sizes": (8, 4), "max_iter": 3, "random_state": 0,
              "batch_size": 32, **params}
    ref = _quiet(Est(backend="numpy", **params).fit, Xd, y, sample_weight=sw)
    for name in BACKENDS:
        est = _quiet(Est(backend=name, **params).fit, Xd, y, sample_weight=sw)
        assert est.backend_ == name
        scale = np.abs(_flat(ref)).max()
        assert np.abs(_flat(est) - _flat(ref)).max() <= rtol * scale, name
        np.testing.assert_allclose(est.loss_curve_, ref.loss_curve_, rtol=rtol)


# ------------------------------------------------------------------------------------------
# robustness


def test_pickle_round_trip_keeps_optimizer_state():
    clf = MLPClassifier((8,), random_state=0, backend=FAST)
    clf.partial_fit(X, Y_CLS, classes=[0, 1, 2])
    blob = pickle.dumps(clf)
    clone = pickle.loads(blob)
    np.testing.assert_array_equal(clone.predict_proba(X), clf.predict_proba(X))
    state = clone.__getstate__()
    assert "_opt_state" in state and "coefs_" not in state
    assert not any("trainer" in k or "workspace" in k for k in state)
    # a partial_fit after unpickling continues exactly like one without pickling (Adam's
    # moments and step count are part of the pickle)
    clf.partial_fit(X, Y_CLS)
    clone.partial_fit(X, Y_CLS)
    np.testing.assert_array_equal(_flat(clone), _flat(clf))
    # coefs_ are views of the flat vector again after loading
    clone.coefs_[0][:] = 0.0
    assert not np.array_equal(clone.predict_proba(X), clf.predict_proba(X))


def test_divergence_raises_and_keeps_finite_weights(backend):
    # the weights after each finished epoch, as a callback sees them
    seen = []
    reg = MLPRegressor(hidden_layer_sizes=(16,), solver="sgd", learning_rate_init=1e3,
                       max_iter=50, random_state=0, backend=backend,
                       callbacks=[lambda est, logs: seen.append(_flat(est))])
    with pytest.raises(ValueError, match="learning rate") as info:
        reg.fit(X, Y_REG * 1e3)
    assert "learning_rate_init=1000" in str(info.value)
    assert all(np.isfinite(W).all() for W in reg.coefs_ + reg.intercepts_)
    # a few epochs stay finite (one full batch each) before the loss overflows: the
    # estimator keeps exactly the weights of the last finite epoch
    assert len(seen) >= 2 and f"diverged at epoch {len(seen) + 1}:" in str(info.value)
    assert reg.n_iter_ == len(reg.loss_curve_) == len(seen)
    assert np.all(np.isfinite(seen[-1])) and np.abs(seen[-1]).max() > 0
    np.testing.assert_array_equal(_flat(reg), seen[-1])
    with np.errstate(over="ignore", invalid="ignore"):  # weights of a diverging fit
        assert reg.predict(X).shape == (120,)  # usable


def _fit_state(est):
    return ([c.tobytes() for c in est.coefs_], [b.tobytes() for b in est.intercepts_],
            list(est.loss_curve_), est.n_iter_, est.t_, est._no_improvement_count,
            est.best_loss_, est._opt_step, est._opt_lr,
            None if est._opt_state is None else est._opt_state.tobytes())


def _fit_singly_and_in_blocks(make, X, y, fits=1):
    """The fitted states (and warnings) of ``make()`` fitted ``fits`` times (warm start)
    epoch by epoch, and with small networks' epochs in blocks (the default)."""
    out = []
    for work in (0, nn._BLOCK_WORK):
        est = make()
        with warnings.catch_warnings(record=True) as caught, \
                pytest.MonkeyPatch.context() as mp:
            warnings.simplefilter("always")
            mp.setattr(nn, "_BLOCK_WORK", work)
            for _ in range(fits):
                est.fit(X, y)
        out.append((_fit_state(est), [(w.category, str(w.message)) for w in caught]))
    return out


@pytest.mark.skipif("cpp" not in BACKENDS, reason="blocks are the compiled core's")
@pytest.mark.parametrize("case", ["adam", "sgd_adaptive", "stops", "stops_adaptive",
                                  "no_shuffle", "regressor", "warm_start", "max_iter_1"])
def test_epochs_in_blocks_fit_the_same_model(case):
    """Small networks train several epochs per call of the compiled core; the model, the
    curves, the counters and the warnings are those of an epoch-by-epoch fit (stopping
    for want of improvement, adaptive learning rates and warm starts included)."""
    rng = np.random.RandomState(3)
    Xs = rng.randn(203, 3)
    ys = (Xs[:, 0] * Xs[:, 1] > 0).astype(int)
    kw = {"hidden_layer_sizes": (8, 8), "activation": "tanh", "batch_size": 16,
          "max_iter": 75, "random_state": 0, "backend": "cpp", "n_threads": 2,
          "tol": 0.0, "n_iter_no_change": 10**9}
    cls, target = MLPClassifier, ys
    fits = 1
    if case == "sgd_adaptive":
        kw.update(solver="sgd", learning_rate="adaptive", learning_rate_init=0.3,
                  tol=1e-3, n_iter_no_change=4)
    elif case == "stops":
        kw.update(tol=1e-2, n_iter_no_change=3)
    elif case == "stops_adaptive":
        kw.update(solver="sgd", learning_rate="adaptive", tol=1e-2, n_iter_no_change=2,
                  max_iter=300)
    elif case == "no_shuffle":
        kw.update(shuffle=False, solver="sgd", momentum=0.5)
    elif case == "regressor":
        cls, target = MLPRegressor, Xs[:, 0] * Xs[:, 1]
    elif case == "warm_start":
        kw.update(warm_start=True, max_iter=40)
        fits = 3
    elif case == "max_iter_1":
        kw.update(max_iter=1, warm_start=True)
        fits = 5
    singly, blocks = _fit_singly_and_in_blocks(lambda: cls(**kw), Xs, target, fits)
    assert blocks == singly


@pytest.mark.skipif("cpp" not in BACKENDS, reason="blocks are the compiled core's")
def test_divergence_inside_a_block_is_reported_as_epoch_by_epoch():
    """A block whose epochs diverge is undone and run epoch by epoch: the same error (the
    epoch named) and the same last finite weights."""
    rng = np.random.RandomState(0)
    Xs, ys = rng.randn(100, 3), 1e4 * rng.randn(100)
    errors = []
    for work in (0, nn._BLOCK_WORK):
        est = MLPRegressor(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=1e-6,
                           momentum=0.9,
                           max_iter=60, tol=0.0, n_iter_no_change=10**9, random_state=0,
                           backend="cpp")
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(nn, "_BLOCK_WORK", work)
            _quiet(est.fit, Xs, ys)  # a few stable epochs first
            est.set_params(warm_start=True, learning_rate_init=0.5)
            with pytest.raises(ValueError, match="Training diverged at epoch") as err:
                est.fit(Xs, ys)
        errors.append((str(err.value), _fit_state(est)))
    assert errors[1] == errors[0]


@pytest.mark.skipif("cpp" not in BACKENDS, reason="blocks are the compiled core's")
def test_keyboard_interrupt_inside_a_block():
    """Ctrl-C inside a block of epochs drops the block whole: the model, the curve and
    the counters are those of the epochs before it."""
    rng = np.random.RandomState(0)
    Xs = rng.randn(300, 4)
    ys = (Xs[:, 0] > 0).astype(int)
    clf = MLPClassifier((8,), max_iter=10**7, tol=0, n_iter_no_change=10**9,
                        random_state=0, backend="cpp")
    _quiet(clone(clf).set_params(max_iter=2).fit, Xs, ys)
    assert ctrl_c_latency(lambda: clf.fit(Xs, ys), 0.3) < 0.5
    assert clf.n_iter_ == len(clf.loss_curve_) > 0
    assert clf.t_ == clf.n_iter_ * 300
    assert all(np.isfinite(W).all() for W in clf.coefs_)


def test_keyboard_interrupt_from_callback():
    def interrupt(est, logs):
        if logs["epoch"] == 2:
            raise KeyboardInterrupt

    clf = MLPClassifier((8,), max_iter=50, random_state=0, callbacks=[interrupt],
                        backend=FAST)
    with pytest.warns(UserWarning, match="interrupted"):
        clf.fit(X, Y_CLS)
    assert clf.n_iter_ == 2
    assert clf.predict(X).shape == (120,)


def test_keyboard_interrupt_stops_fit_quickly(backend):
    # a long fit; Ctrl-C arrives from a timer thread, inside an epoch or between two
    Xl = np.random.RandomState(0).randn(4000, 20)
    yl = (Xl[:, 0] > 0).astype(int)
    # (n_iter_no_change disables the stopping rule: on a fast machine the loss plateaus
    # and the fit would end on its own before Ctrl-C arrives)
    clf = MLPClassifier((64,), max_iter=10_000, batch_size=16, tol=0, backend=backend,
                        n_iter_no_change=10**9, random_state=0)
    # a short fit first: numba compiles (or loads its cache) on first use, which Ctrl-C
    # cannot stop - and a Ctrl-C before fit's training loop propagates as it should
    _quiet(clone(clf).set_params(max_iter=1).fit, Xl[:100], yl[:100])
    assert ctrl_c_latency(lambda: clf.fit(Xl, yl), 0.5) < 0.5
    assert clf.predict(Xl[:5]).shape == (5,)
    assert all(np.isfinite(W).all() for W in clf.coefs_)


@pytest.mark.skipif("cpp" not in BACKENDS, reason="compiled core not built")
def test_keyboard_interrupt_inside_a_long_batch():
    # one batch of 4000 rows through four 1000-unit layers (~90 GFLOP, a second or more):
    # Ctrl-C is looked at between layers too, and the batch is dropped whole
    rng = np.random.RandomState(0)
    Xl = rng.randn(4000, 1000).astype(np.float32)
    yl = (Xl[:, 0] > 0).astype(int)
    clf = MLPClassifier((1000,) * 4, batch_size=4000, max_iter=3, tol=0, backend="cpp",
                        random_state=0)
    _quiet(MLPClassifier((1000,) * 4, batch_size=500, max_iter=1, backend="cpp").fit,
           Xl[:500], yl[:500])  # (the pool's threads and pages warm)
    assert ctrl_c_latency(lambda: clf.fit(Xl, yl), 0.3) < 0.5
    assert clf.predict(Xl[:5]).shape == (5,)
    assert all(np.isfinite(W).all() for W in clf.coefs_)


def test_keyboard_interrupt_during_lbfgs():
    Xl = np.random.RandomState(0).randn(3000, 20)
    yl = (Xl[:, 0] * Xl[:, 1] > 0).astype(int)
    clf = MLPClassifier((64,), solver="lbfgs", max_iter=100_000, max_fun=10**6, tol=0,
                        backend="numpy", random_state=0)
    timer = threading.Timer(0.5, _thread.interrupt_main)
    timer.start()
    try:
        with pytest.warns(UserWarning, match="interrupted"):
            clf.fit(Xl, yl)
    finally:
        timer.cancel()
    assert np.isfinite(clf.loss_) and clf.predict(Xl[:5]).shape == (5,)


def test_errors_match_sklearn():
    for bad in (np.c_[X[:, :5], np.full(120, np.nan)], np.c_[X[:, :5], np.full(120, np.inf)]):
        with pytest.raises(ValueError, match="NaN|infinity"):
            MLPClassifier(backend=FAST).fit(bad, Y_CLS)
    clf = _quiet(MLPClassifier((4,), max_iter=2, backend=FAST).fit, X, Y_CLS)
    with pytest.raises(ValueError, match="X has 5 features"):
        clf.predict(X[:, :5])
    with pytest.raises(ValueError, match="NaN"):
        clf.predict(np.full((2, 6), np.nan))
    with pytest.raises(ValueError, match="0 sample"):
        MLPClassifier(backend=FAST).fit(X[:0], Y_CLS[:0])
    with pytest.raises(ValueError, match="0 sample"):
        clf.predict(X[:0])
    with pytest.raises(ValueError, match="Expected 2D array"):
        clf.predict(X[0])
    with pytest.raises(NotFittedError):
        MLPRegressor().predict(X)
    # one class: whatever scikit-learn does (it fits and predicts that class)
    one = _quiet(MLPClassifier((4,), max_iter=2, backend=FAST).fit, X, np.ones(120))
    sk = _quiet(SkMLPClassifier((4,), max_iter=2).fit, X, np.ones(120))
    np.testing.assert_array_equal(one.predict(X), sk.predict(X))
    # hidden layer sizes are integers, as in scikit-learn (3.5 is not 3 units)
    for sizes in ((3.5,), (True,), (4, 2.0)):
        for cls in (MLPClassifier, SkMLPClassifier):
            with pytest.raises(TypeError):
                _quiet(cls(sizes, max_iter=1).fit, X, Y_CLS)
    assert _quiet(MLPClassifier((np.int64(3),), max_iter=1, backend=FAST).fit,
                  X, Y_CLS).coefs_[0].shape == (6, 3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_weight_minibatch_raises_like_sklearn(backend):
    # the first minibatch weighs nothing: scikit-learn's np.average raises
    sw = np.r_[np.zeros(10), np.ones(110)]
    kw = {"hidden_layer_sizes": (4,), "batch_size": 10, "shuffle": False, "max_iter": 2}
    with pytest.raises(ZeroDivisionError, match="Weights sum to zero"):
        _quiet(SkMLPClassifier(**kw).fit, X, Y_CLS, sample_weight=sw)
    for bn in (False, True):
        with pytest.raises(ZeroDivisionError, match="Weights sum to zero.*minibatch 1 "):
            _quiet(MLPClassifier(**kw, batch_norm=bn, backend=backend).fit, X, Y_CLS,
                   sample_weight=sw)
    # zero weights that share a minibatch with others train
    sw[:5] = 1
    _quiet(MLPClassifier(**kw, backend=backend).fit, X, Y_CLS, sample_weight=sw)


def test_n_threads_beyond_a_c_int():
    # "as many as there are": the pool's size, not an error from the bindings
    clf = _quiet(MLPClassifier((4,), max_iter=2, n_threads=2**40, random_state=0,
                               backend=FAST).fit, X, Y_CLS)
    ref = _quiet(MLPClassifier((4,), max_iter=2, n_threads=64, random_state=0, backend=FAST).fit, X, Y_CLS)
    np.testing.assert_array_equal(clf.predict_proba(X), ref.predict_proba(X))
    clf.set_params(n_threads=2**70)
    np.testing.assert_array_equal(clf.predict_proba(X), ref.predict_proba(X))


# ------------------------------------------------------------------------------------------
# batch normalisation (batch_norm=True)


def _bn_clf(**kw):
    params = {"hidden_layer_sizes": (16, 8), "batch_norm": True, "random_state": 0,
              "max_iter": 15, "batch_size": 32, "learning_rate_init": 0.01, "backend": FAST}
    return MLPClassifier(**(params | kw))


def test_batch_norm_trains(backend):
    clf = _quiet(_bn_clf(backend=backend).fit, X, Y_CLS)
    assert clf.loss_curve_[-1] < 0.5 * clf.loss_curve_[0]
    assert clf.score(X, Y_CLS) > 0.9
    assert len(clf.batch_norm_params_) == 2
    for p, m in zip(clf.batch_norm_params_, (16, 8), strict=True):
        assert set(p) == {"gamma", "beta", "running_mean", "running_var"}
        assert all(a.shape == (m,) and a.dtype == np.float64 for a in p.values())
        assert not np.allclose(p["gamma"], 1.0)  # trained by the optimizer
        assert (p["running_var"] > 0).all()
    reg = _quiet(MLPRegressor(hidden_layer_sizes=(8,), batch_norm=True, random_state=0,
                              max_iter=20, solver="sgd", backend=backend).fit,
                 X.astype(np.float32), Y_REG)
    assert reg.loss_curve_[-1] < reg.loss_curve_[0]
    assert reg.batch_norm_params_[0]["gamma"].dtype == np.float32
    assert "batch norm" in clf.summary() and "Total params: 323" in clf.summary()


def test_batch_norm_running_statistics_follow_pytorch():
    # one full batch, one SGD step: the running statistics move from (0, 1) by momentum
    # 0.1 towards the batch mean and the UNBIASED batch variance of the pre-activation
    rs = np.random.RandomState(1)
    W0, b0 = rs.randn(6, 5), rs.randn(5)
    W1, b1 = rs.randn(5, 1), rs.randn(1)
    ident = [{"gamma": np.ones(5), "beta": np.zeros(5), "running_mean": np.zeros(5),
              "running_var": np.ones(5)}]
    reg = MLPRegressor.from_weights([W0, W1], [b0, b1], activation="tanh", batch_norm=True,
                                    batch_norm_params=ident, solver="sgd", batch_size=120,
                                    shuffle=False, backend=FAST)
    reg.partial_fit(X, Y_REG)
    Z = X @ W0 + b0
    p = reg.batch_norm_params_[0]
    np.testing.assert_allclose(p["running_mean"], 0.1 * Z.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(p["running_var"], 0.9 + 0.1 * Z.var(axis=0, ddof=1),
                               rtol=1e-12)


def test_batch_norm_predict_uses_running_statistics():
    from rosenblatt import kernels as K

    clf = _quiet(_bn_clf().fit, X, Y_CLS)
    a = X
    for k in range(2):
        p = clf.batch_norm_params_[k]
        z = a @ clf.coefs_[k] + clf.intercepts_[k]
        a = np.maximum(K.batchnorm_inference(z, p["gamma"], p["beta"], p["running_mean"],
                                             p["running_var"], backend="numpy"), 0)
    z = a @ clf.coefs_[2] + clf.intercepts_[2]
    P = np.exp(z - z.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(clf.predict_proba(X), P, rtol=1e-9, atol=1e-12)
    # inference does not depend on the rest of the batch
    np.testing.assert_allclose(clf.predict_proba(X[:1]), clf.predict_proba(X)[:1],
                               rtol=1e-12)
    layers = clf.forward(X[:7])
    assert [a.shape for a in layers] == [(7, 6), (7, 16), (7, 8), (7, 3)]
    np.testing.assert_allclose(layers[2], a[:7], rtol=1e-9, atol=1e-12)
    # in-place edits of the running statistics reach predict
    before = clf.predict_proba(X)
    clf.batch_norm_params_[0]["running_var"] *= 4.0
    assert not np.allclose(clf.predict_proba(X), before)


def test_batch_norm_pickle_and_from_weights():
    clf = _quiet(_bn_clf().fit, X, Y_CLS)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    assert again.batch_norm_params_[1]["running_mean"].base is not None  # views again
    again.batch_norm_params_[0]["beta"] += 1.0
    assert not np.array_equal(again.predict_proba(X), clf.predict_proba(X))
    # continued training after unpickling (warm start keeps the statistics)
    _quiet(again.set_params(warm_start=True, max_iter=2).fit, X, Y_CLS)
    built = MLPClassifier.from_weights(clf.coefs_, clf.intercepts_, classes=clf.classes_,
                                       batch_norm=True, backend=clf.backend_,
                                       batch_norm_params=clf.batch_norm_params_)
    np.testing.assert_array_equal(built.predict_proba(X), clf.predict_proba(X))
    with pytest.raises(ValueError, match="batch_norm_params"):
        MLPClassifier.from_weights(clf.coefs_, clf.intercepts_, classes=clf.classes_,
                                   batch_norm=True)
    with pytest.raises(ValueError, match="batch_norm=True"):
        MLPClassifier.from_weights(clf.coefs_, clf.intercepts_, classes=clf.classes_,
                                   batch_norm_params=clf.batch_norm_params_)


def test_batch_norm_same_model_on_every_backend(dtype_=np.float64):
    fits = {be: _quiet(_bn_clf(backend=be, max_iter=5, solver="adam").fit, X, Y_CLS)
            for be in BACKENDS}
    ref = fits[BACKENDS[-1]]  # numpy
    for be, clf in fits.items():
        np.testing.assert_allclose(clf.loss_curve_, ref.loss_curve_, rtol=1e-9)
        np.testing.assert_allclose(_flat(clf), _flat(ref), rtol=1e-7, atol=1e-9)
        for p, q in zip(clf.batch_norm_params_, ref.batch_norm_params_, strict=True):
            for key in p:
                np.testing.assert_allclose(p[key], q[key], rtol=1e-7, atol=1e-9,
                                           err_msg=f"{be} {key}")
        np.testing.assert_allclose(clf.predict_proba(X), ref.predict_proba(X), rtol=1e-7,
                                   atol=1e-9)


def test_batch_norm_options_and_errors():
    with pytest.raises(ValueError, match="stochastic solver"):
        _bn_clf(solver="lbfgs").fit(X, Y_CLS)
    plain = _quiet(MLPClassifier((4,), max_iter=2, random_state=0, backend=FAST).fit, X,
                   Y_CLS)
    assert not hasattr(plain, "batch_norm_params_")
    with pytest.raises(ValueError, match="batch_norm"):
        plain.set_params(warm_start=True, batch_norm=True).fit(X, Y_CLS)
    # early stopping restores the best epoch's statistics with its weights
    es = _quiet(_bn_clf(early_stopping=True, max_iter=30).fit, X, Y_CLS)
    assert es.best_validation_score_ == max(es.validation_scores_)
    # switching batch_norm off refits a plain network
    off = _quiet(_bn_clf(max_iter=2).fit, X, Y_CLS).set_params(batch_norm=False)
    _quiet(off.fit, X, Y_CLS)
    assert not hasattr(off, "batch_norm_params_")
    assert "batch norm" not in off.summary()
    # sample weights (zero weights included) and sparse input train as well
    sw = np.r_[np.zeros(30), np.ones(90)]
    _quiet(_bn_clf(max_iter=2, batch_size=40, shuffle=False).fit, X, Y_CLS, sample_weight=sw)
    _quiet(_bn_clf(max_iter=2).fit, sp.csr_matrix(X), Y_CLS)


@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
def test_unaligned_input(backend, Est):
    rng = np.random.RandomState(0)
    X = rng.randn(80, 5)
    y = (X[:, 0] > 0).astype(int) if Est is MLPClassifier else X[:, 0]
    sw = rng.rand(80) + 0.5
    kw = {"hidden_layer_sizes": (6,), "max_iter": 5, "random_state": 0, "backend": backend,
          "validation_fraction": 0.2}
    a = _quiet(Est(**kw).fit, X, y, sample_weight=sw)
    b = _quiet(Est(**kw).fit, unaligned(X), y, sample_weight=unaligned(sw))
    for Wa, Wb in zip(a.coefs_, b.coefs_):
        np.testing.assert_array_equal(Wa, Wb)
    np.testing.assert_array_equal(a.predict(unaligned(X)), a.predict(X))
    _quiet(b.partial_fit, unaligned(X), y)
    _quiet(a.partial_fit, X, y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    _quiet(Est(**kw).fit, X, y, validation_data=(unaligned(X), y))


def test_changed_network_shape_is_refused_with_a_fitting_hint():
    # scikit-learn silently keeps the old network when hidden_layer_sizes changes; here the
    # change is refused, and the message says how to get the new network
    rng = np.random.RandomState(0)
    X, y = rng.randn(40, 4), rng.randint(0, 2, 40)
    est = MLPClassifier((5,), max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
        est.set_params(hidden_layer_sizes=(6,))
        with pytest.raises(ValueError, match="layer sizes .* call fit with warm_start=False"):
            est.partial_fit(X, y)
        with pytest.raises(ValueError, match="layer sizes .*; set warm_start=False"):
            est.set_params(warm_start=True).fit(X, y)
        est.set_params(warm_start=False).fit(X, y)  # a new network
    assert est.coefs_[0].shape == (4, 6)



@pytest.mark.parametrize("case", ["same", "list_classes", "other_classes", "no_classes",
                                  "features", "nan_X", "nan_y"])
def test_later_partial_fit_validates_as_sklearn(case):
    """MLPClassifier's later partial_fit calls skip scikit-learn's validation only when it
    has nothing to do (_validation.py): otherwise the same errors as scikit-learn's."""
    first, later = later_partial_fit_data(case)
    outcomes = [later_partial_fit_outcome(est, first, later)[0] for est in (
        MLPClassifier(hidden_layer_sizes=(5,), random_state=0),
        SkMLPClassifier(hidden_layer_sizes=(5,), random_state=0))]
    assert outcomes[0] == outcomes[1]


def _training_state(est):
    """Everything a later fit continues from, as bytes and values."""
    return ([c.tobytes() for c in est.coefs_], [b.tobytes() for b in est.intercepts_],
            None if est._opt_state is None else est._opt_state.tobytes(), est._opt_step,
            est.n_iter_, est.t_, list(est.loss_curve_), est._random_state.get_state()[1].tobytes())


@pytest.mark.parametrize("backend_name", sorted({*backends_under_test(), "numpy"}))
@pytest.mark.parametrize("kind", ["classifier", "regressor"])
@pytest.mark.parametrize("how", ["partial_fit", "warm_start"])
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_nonfinite_x_of_a_fitted_network(backend_name, kind, how, where, dtype):
    """A fitted network's partial_fit and warm-start fit find a NaN or an infinity of X
    while the first epoch gathers its minibatches (no pass over X before it). The error is
    scikit-learn's, and the estimator is left as it was: parameters, optimizer state and
    step, curves, and the random state the next fit draws its row order from."""
    rng = np.random.RandomState(0)
    n = 203  # batches of 40: the last one short
    X = rng.randn(n, 70).astype(dtype)
    y = rng.randint(0, 3, n) if kind == "classifier" else rng.randn(n)
    cls, sk_cls = ((MLPClassifier, SkMLPClassifier) if kind == "classifier"
                   else (MLPRegressor, SkMLPRegressor))
    # shuffle=False: the row's batch is known (first, a middle one, the short last one)
    row = {"first": 3, "middle": 101, "last": n - 1}[where]
    bad = X.copy()
    bad[row, 69 if where == "last" else 0] = np.inf if where == "middle" else np.nan

    def new(seed):
        # (80 units: the compiled core's path for wider layers, the gather overlapped)
        return cls(hidden_layer_sizes=(80, 17), batch_size=40, shuffle=how == "partial_fit",
                   random_state=np.random.RandomState(seed), max_iter=3,
                   warm_start=how == "warm_start", backend=backend_name, n_threads=2)

    def later(est, data):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            if how == "partial_fit":
                est.partial_fit(data, y)
            else:
                est.fit(data, y)

    est, twin = new(0), new(0)
    for e in (est, twin):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            e.fit(X, y)
    before = _training_state(est)
    with pytest.raises(ValueError) as ours:
        later(est, bad)
    sk = sk_cls(hidden_layer_sizes=(5,), max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk.fit(X[:20], y[:20])
    with pytest.raises(ValueError) as theirs:
        sk.partial_fit(bad, y)
    assert str(ours.value) == str(theirs.value).replace(sk_cls.__name__, cls.__name__)
    assert _training_state(est) == before
    # and it goes on as if the call had not happened
    later(est, X)
    later(twin, X)
    assert _training_state(est) == _training_state(twin)


def test_infinite_float64_x_of_a_float32_network():
    """float64 X of a float32 model is checked by scikit-learn's validation first (an
    infinity is reported as scikit-learn reports it, not as a value beyond float32's range,
    which the cast's own check would say)."""
    rng = np.random.RandomState(0)
    X, y = rng.randn(50, 4), np.arange(50) % 2
    ours = MLPClassifier((5,), max_iter=2, random_state=0)
    sk = SkMLPClassifier((5,), max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X.astype(np.float32), y)
        sk.fit(X, y)
    bad = X.copy()
    bad[3, 1] = np.inf
    with pytest.raises(ValueError) as theirs:
        sk.partial_fit(bad, y)
    with pytest.raises(ValueError, match=re.escape(str(theirs.value))):
        ours.partial_fit(bad, y)


@pytest.mark.parametrize("backend_name", sorted({*backends_under_test(), "numpy"}))
def test_nonfinite_x_after_divergence(backend_name):
    """A partial_fit that diverges before its gather reaches the NaN of X (in the last
    row) reports the NaN, as scikit-learn's validation would have, not the divergence
    (which is looked for after the epoch, by then stopped at the NaN's minibatch)."""
    rng = np.random.RandomState(1)
    X, y = rng.randn(400, 70), 1e3 * rng.randn(400)
    est = MLPRegressor(hidden_layer_sizes=(80,), solver="sgd", learning_rate_init=1e-4,
                       batch_size=10, shuffle=False, random_state=np.random.RandomState(0),
                       backend=backend_name)
    est.partial_fit(X, y)
    before = _training_state(est)
    est.set_params(learning_rate_init=1e6)
    # (partial_fit keeps the optimizer it made, learning rate included: a new one)
    est._opt_config = None
    bad = X.copy()
    bad[-1, 3] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        est.partial_fit(bad, y)
    assert _training_state(est) == before
    with pytest.raises(ValueError, match="Training diverged at epoch 1"):
        est.partial_fit(X, y)  # (the same epoch without the NaN)
