"""Bad input found by a robustness review: each case raises a clear ValueError/TypeError
naming the argument - before any kernel runs, leaving every array and the estimator as they
were - where it used to compute a silently wrong or NaN result, crash with an unrelated
error, or train first and fail afterwards."""

import numpy as np
import pytest
from conftest import compiled_backends_under_test
from rosenblatt import MLPClassifier, MLPRegressor
from rosenblatt import kernels as K

BACKENDS = ["numpy", *compiled_backends_under_test()]
RNG = np.random.RandomState(0)
X8 = RNG.randn(8, 3)


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


# ---- outputs overlapping inputs -------------------------------------------------------


def test_elementwise_outputs_may_be_an_input_but_not_overlap_one(backend):
    buf = np.linspace(-1, 1, 13)
    Z, out = buf[:-1].reshape(3, 4), buf[1:].reshape(3, 4)
    before = buf.copy()
    with pytest.raises(ValueError, match="out must not partly overlap Z"):
        K.activation_forward(Z, "tanh", out=out, backend=backend)
    np.testing.assert_array_equal(buf, before)
    # exactly in place is elementwise-safe and equals the reference
    ref = K.activation_forward(Z.copy(), "tanh", backend="numpy")
    Zi = Z.copy()
    assert K.activation_forward(Zi, "tanh", out=Zi, backend=backend) is Zi
    np.testing.assert_allclose(Zi, ref, rtol=1e-12)
    A = np.tanh(Z)
    dA = np.ones_like(Z)
    with pytest.raises(ValueError, match="out must not partly overlap dA"):
        K.activation_backward(None, A, buf[:12].reshape(3, 4), "tanh",
                              out=buf[1:].reshape(3, 4), backend=backend)
    ref = K.activation_backward(None, A, dA, "tanh", backend="numpy")
    np.testing.assert_allclose(K.activation_backward(None, A, dA, "tanh", out=dA,
                                                     backend=backend), ref, rtol=1e-12)


def test_loss_gradient_output_apart_from_its_inputs(backend):
    P = np.full((4, 2), 0.5)
    Y = np.eye(2)[[0, 1, 0, 1]]
    with pytest.raises(ValueError, match="out must not share memory with P"):
        K.loss_gradient(P, Y, "squared_error", out=P, backend=backend)
    np.testing.assert_array_equal(P, 0.5)


@pytest.mark.parametrize("case", ["adam m is v", "sgd velocity over params",
                                  "rmsprop grads over sq"])
def test_optimizer_arrays_apart(backend, case):
    p, g = np.ones(6), np.ones(6)
    buf = np.zeros(12)
    if case == "adam m is v":
        m = np.zeros(6)
        with pytest.raises(ValueError, match="m and v must not share memory"):
            K.adam_step(p, g, m, m, t=1, backend=backend)
    elif case == "sgd velocity over params":
        with pytest.raises(ValueError, match="params and velocity must not share memory"):
            K.sgd_step(buf[:6], g, buf[3:9], lr=0.1, momentum=0.9, backend=backend)
    else:
        with pytest.raises(ValueError, match="grads and sq must not share memory"):
            K.rmsprop_step(p, buf[:6], buf[2:8], lr=0.1, backend=backend)
    np.testing.assert_array_equal(p, 1.0)
    np.testing.assert_array_equal(buf, 0.0)


def test_perceptron_kernels_refuse_writing_over_their_inputs(backend):
    X = np.eye(3)
    seeds = np.array([7, 8, 9])
    with pytest.raises(ValueError, match="n_iter and seeds must not share memory"):
        K.perceptron_fit_sklearn(X, np.array([0, 1, 2]), np.zeros((3, 3)), np.zeros(3), seeds,
                                 n_iter=seeds, max_iter=3, backend=backend)
    np.testing.assert_array_equal(seeds, [7, 8, 9])  # used to be zeroed before use
    Xc = X.copy()
    with pytest.raises(ValueError, match="W and X must not share memory"):
        K.perceptron_fit_sklearn(Xc, np.array([0, 1, 2]), Xc[:3], np.zeros(3), seeds,
                                 max_iter=3, backend=backend)
    np.testing.assert_array_equal(Xc, X)
    with pytest.raises(ValueError, match="W and X must not share memory"):
        K.perceptron_epoch(Xc, np.eye(3), Xc, np.zeros(3), backend=backend)


def test_batchnorm_outputs_apart(backend):
    Z = RNG.randn(5, 4)
    g, b = np.ones(4), np.zeros(4)
    with pytest.raises(ValueError, match="out must not share memory with gamma"):
        K.batchnorm_forward(Z[:1].copy(), g, b, out=g.reshape(1, 4), backend=backend)
    with pytest.raises(ValueError, match="out must not share memory with Z"):
        K.batchnorm_inference(Z, g, b, np.zeros(4), np.ones(4), out=Z, backend=backend)


# ---- Trainer --------------------------------------------------------------------------


def _trainer(**kw):
    _, total = K.param_offsets([3, 4, 1])
    params = kw.pop("params", np.full(total, 0.1))
    hyper = kw.pop("hyper", {"lr": 0.01})
    return K.Trainer(X8, X8[:, :1].copy(), params, [3, 4, 1], ["relu", "identity"],
                     "squared_error", "adam", hyper, 4, **kw)


@pytest.mark.parametrize("hyper, match", [
    ({"beta1": 1.0}, r"hyper\['beta1'\] must be in \[0, 1\)"),
    ({"beta2": 1.5}, r"hyper\['beta2'\] must be in \[0, 1\)"),
    ({"rho": 1.0}, r"hyper\['rho'\] must be in \[0, 1\)"),
    ({"eps": 0.0}, r"hyper\['eps'\] must be > 0"),
    ({"momentum": 5.0}, r"hyper\['momentum'\] must be in \[0, 1\]"),
    ({"huber_delta": 0.0}, r"hyper\['huber_delta'\] must be > 0"),
])
def test_trainer_hyperparameter_ranges(hyper, match):
    with pytest.raises(ValueError, match=match):
        _trainer(hyper={"lr": 0.01, **hyper})


@pytest.mark.parametrize("step", [-1, 2.5, "3", 2**63, True])
def test_trainer_step_is_a_valid_count(step):
    with pytest.raises(ValueError, match=r"step must be an int in \[0, 2\*\*62\)"):
        _trainer(step=step)


def test_trainer_arrays_apart_and_weights_finite():
    _, total = K.param_offsets([3, 4, 1])
    st = np.zeros((3, total))
    with pytest.raises(ValueError, match="state must not share memory with params"):
        _trainer(params=st[2], state=st[1:])
    with pytest.raises(ValueError, match="sample_weight must be non-negative and finite"):
        _trainer(sample_weight=np.r_[np.inf, np.ones(7)])
    tr = _trainer()
    blk = np.zeros((4, 3))
    with pytest.raises(ValueError, match="params must not share memory with X"):
        tr.run_block(tr.params[:12].reshape(4, 3), blk[:, :1].copy())
    with pytest.raises(ValueError, match="state must not share memory with Y"):
        tr.run_block(blk, tr.state[0, :4].reshape(4, 1))


# ---- estimators -----------------------------------------------------------------------


def _fitted_regressor(dtype=np.float64):
    return MLPRegressor(hidden_layer_sizes=(3,), max_iter=20, random_state=0, tol=0.0,
                        warm_start=True).fit(X8.astype(dtype), X8[:, 0])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("bad, match", [
    ((X8, np.c_[X8[:, 0], X8[:, 0]]), "validation_data's y has 2 target"),
    ((X8, X8[:, 0], -np.ones(8)), "validation_data's sample_weight must be non-negative"),
])
def test_bad_validation_data_fails_before_training(bad, match):
    m = _fitted_regressor()
    coefs = [W.copy() for W in m.coefs_]
    n_iter, curve = m.n_iter_, list(m.loss_curve_)
    with pytest.raises(ValueError, match=match):
        m.fit(X8, X8[:, 0], validation_data=bad)
    assert m.n_iter_ == n_iter and m.loss_curve_ == curve
    for W, W0 in zip(m.coefs_, coefs):
        np.testing.assert_array_equal(W, W0)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_float32_model_refuses_float64_values_beyond_its_range():
    m = _fitted_regressor(np.float32)
    big = np.array([[1e39, 0.0, 0.0]])
    for call in (m.predict, lambda Xb: m.partial_fit(Xb, [1.0]),
                 lambda Xb: m.fit(X8, X8[:, 0], validation_data=(Xb, [1.0]))):
        with pytest.raises(ValueError, match="beyond the float32 range"):
            call(big)
    assert np.isfinite(m.predict(np.array([[1e30, 0.0, 0.0]]))).all()
    c = MLPClassifier(hidden_layer_sizes=(3,), max_iter=5, random_state=0).fit(
        X8.astype(np.float32), [0, 1] * 4)
    with pytest.raises(ValueError, match="beyond the float32 range"):
        c.predict_proba(big)


def test_from_weights_refuses_malformed_weights():
    with pytest.raises(ValueError, match=r"coefs\[0\] must be 2-D; got shape \(3,\)"):
        MLPRegressor.from_weights([np.ones(3), np.ones((3, 1))], [np.ones(3), np.ones(1)])
    with pytest.raises(ValueError, match=r"coefs\[0\] holds NaN or infinity"):
        MLPClassifier.from_weights([np.full((3, 2), np.nan), np.ones((2, 1))],
                                   [np.zeros(2), np.zeros(1)], classes=[0, 1])
    with pytest.raises(ValueError, match=r"intercepts\[1\] holds NaN or infinity"):
        MLPRegressor.from_weights([np.ones((3, 2)), np.ones((2, 1))],
                                  [np.zeros(2), np.array([np.inf])])
    with pytest.raises(TypeError, match=r"coefs\[1\] must hold real numbers; got dtype complex"):
        MLPRegressor.from_weights([np.ones((3, 2)), np.ones((2, 1)) * 1j],
                                  [np.zeros(2), np.zeros(1)])
    with pytest.raises(TypeError, match="batch_norm_params must be a list of dicts"):
        MLPRegressor.from_weights([np.ones((3, 2)), np.ones((2, 1))],
                                  [np.zeros(2), np.zeros(1)], batch_norm=True,
                                  batch_norm_params=[5])
    m = MLPRegressor.from_weights([np.ones((3, 2)), np.ones((2, 1))], [np.zeros(2), np.zeros(1)])
    m.coefs_[0] = np.ones((3, 2)) * 1j
    with pytest.raises(TypeError, match=r"coefs_\[0\] must hold real numbers"):
        m.predict(X8)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_estimator_arguments_checked_before_training():
    m = MLPRegressor(hidden_layer_sizes=(3,), max_iter=2, callbacks=[1])
    with pytest.raises(TypeError, match=r"callbacks\[0\] must be callable"):
        m.fit(X8, X8[:, 0])
    assert not hasattr(m, "coefs_")
    bn = MLPRegressor(hidden_layer_sizes=(3,), max_iter=2, batch_norm=True, batch_size=1)
    with pytest.raises(ValueError, match="batch_norm=True needs minibatches of at least 2"):
        bn.fit(X8, X8[:, 0])
    c = MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, class_weight={0: -1.0, 1: 1.0})
    with pytest.raises(ValueError, match="class_weight values must be finite and non-negative"):
        c.fit(X8, [0, 1] * 4)


# ---- kernels: shapes, counts and scalars ----------------------------------------------


def test_dense_forward_with_shapes_that_do_not_chain_allocates_nothing(backend):
    # used to ask for 7 TiB (a MemoryError) on the compiled core before naming W
    with pytest.raises(ValueError, match="W must have shape"):
        K.dense_forward(np.zeros((10**6, 1)), np.zeros((2, 10**6)), np.zeros(10**6),
                        backend=backend)


@pytest.mark.parametrize("sizes", [[2, -3, 1], [2.9, 3, 1], ["2", "3", "1"], [True, 3, 1],
                                   [4], 5])
def test_layer_sizes_are_positive_ints(sizes):
    with pytest.raises(ValueError, match="layer_sizes must list >= 2 positive int widths"):
        K.param_offsets(sizes)
    with pytest.raises(ValueError, match="layer_sizes must list >= 2 positive int widths"):
        K.mlp_forward(np.zeros((1, 2)), np.zeros(20), sizes, "relu")


@pytest.mark.parametrize("kw, match", [
    ({"n_iter_no_change": 0}, "n_iter_no_change must be a positive int"),
    ({"n_iter_no_change": -1}, "n_iter_no_change must be a positive int"),
    ({"n_iter_no_change": 2.7}, "n_iter_no_change must be a positive int"),
    ({"n_iter_no_change": 2**63}, "n_iter_no_change must be a positive int"),
    ({"sample_weight": np.r_[np.nan, 1.0, 1.0]}, "sample_weight must be finite"),
    ({"class_weight": np.full((3, 2), np.nan)}, "class_weight must be finite"),
])
def test_perceptron_fit_arguments(backend, kw, match):
    W = np.zeros((3, 3))
    with pytest.raises(ValueError, match=match):
        K.perceptron_fit_sklearn(np.eye(3), np.array([0, 1, 2]), W, np.zeros(3),
                                 np.array([1, 2, 3]), backend=backend, **kw)
    np.testing.assert_array_equal(W, 0.0)


def test_scalar_arguments(backend):
    p, g, s = np.ones(3), np.ones(3), np.zeros(3)
    with pytest.raises(ValueError, match=r"t must be an int in \[1, 2\*\*62\)"):
        K.adam_step(p, g, s, s.copy(), t=2**63, backend=backend)
    with pytest.raises(TypeError, match="lr must be a real number; got str"):
        K.sgd_step(p, g, s, lr="0.1", backend=backend)
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\]"):
        K.sgd_step(p, g, s, lr=0.1, momentum=5, backend=backend)
    np.testing.assert_array_equal(p, 1.0)
    with pytest.raises(ValueError, match=r"seed must be an int in \[0, 2\*\*32\)"):
        K.xorshift_shuffle(np.arange(4), 2**32 + 5, backend=backend)


def test_loss_gradient_degenerate_inputs(backend):
    with pytest.raises(ValueError, match="P must have at least one row and one column"):
        K.loss_gradient(np.zeros((3, 0)), np.zeros((3, 0)), "squared_error", backend=backend)
    with pytest.raises(ValueError, match="sample_weight must be finite and non-negative"):
        K.loss_gradient(np.full((2, 1), 0.5), np.ones((2, 1)), "squared_error",
                        sample_weight=np.array([np.inf, 1.0]), backend=backend)


def test_trainer_minibatch_of_zero_weight_raises_on_every_backend(backend):
    # the compiled backends used to divide by zero into NaN parameters
    sw = np.r_[np.zeros(4), np.ones(4)]
    tr = _trainer(sample_weight=sw, backend=backend)
    before = tr.params.copy()
    with pytest.raises(ZeroDivisionError, match="minibatch 1 of this epoch"):
        tr.run_epoch(np.arange(8))
    np.testing.assert_array_equal(tr.params, before)
    assert np.isfinite(tr.run_epoch(np.array([0, 4, 1, 5, 2, 6, 3, 7])))
