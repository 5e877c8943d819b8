"""The same model as scikit-learn: same random_state and settings give the same weights.

Initial weights and per-epoch row orders are drawn exactly as scikit-learn draws them and
the NumPy reference follows its formulas, so float64 fits agree to rounding (~1e-15 here;
the requirement is 1e-9 relative). Small problems (200 x 10, a few epochs) keep it fast.
The numpy backend is the reference; other backends are compared with it in test_mlp.py.
"""

import warnings

import numpy as np
import pytest
from rosenblatt.neural_network import MLPClassifier, MLPRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor

RTOL = 1e-9

rng = np.random.RandomState(0)
X = rng.randn(200, 10)
Y_MULTI = rng.randint(0, 3, 200)
Y_BIN = rng.randint(0, 2, 200)
Y_LABELS = rng.randint(0, 2, (200, 3))
Y_REG = X[:, :3].sum(1) + 0.1 * rng.randn(200)
SW = rng.randint(0, 4, 200).astype(float)

BASE = {"hidden_layer_sizes": (16, 8), "max_iter": 5, "random_state": 1, "batch_size": 32}


def _flat(est):
    return np.concatenate([p.ravel() for p in est.coefs_ + est.intercepts_])


def _fit_both(sk_cls, our_cls, params, X, y, sample_weight=None):
    with warnings.catch_warnings():
        # a few epochs end with ConvergenceWarning on both sides: expected
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = sk_cls(**params).fit(X, y, sample_weight=sample_weight)
        ours = our_cls(backend="numpy", **params).fit(X, y, sample_weight=sample_weight)
    return sk, ours


def _assert_same(sk, ours, rtol=RTOL):
    a, b = _flat(sk), _flat(ours)
    scale = np.abs(a).max()
    assert np.abs(a - b).max() <= rtol * scale
    for W, V in zip(sk.coefs_, ours.coefs_):
        assert W.shape == V.shape and W.dtype == V.dtype
    assert ours.n_iter_ == sk.n_iter_
    assert ours.t_ == sk.t_
    assert ours.n_layers_ == sk.n_layers_ and ours.n_outputs_ == sk.n_outputs_
    assert ours.out_activation_ == sk.out_activation_
    if hasattr(sk, "loss_curve_"):
        np.testing.assert_allclose(ours.loss_curve_, sk.loss_curve_, rtol=rtol)
        assert ours.best_loss_ == pytest.approx(sk.best_loss_, rel=rtol) \
            if sk.best_loss_ is not None else ours.best_loss_ is None
    if getattr(sk, "validation_scores_", None) is not None:
        np.testing.assert_allclose(ours.validation_scores_, sk.validation_scores_, rtol=rtol)
        assert ours.best_validation_score_ == pytest.approx(sk.best_validation_score_)
    assert ours.loss_ == pytest.approx(sk.loss_, rel=rtol)


CLASSIFIER_CASES = {
    "multiclass-adam-relu": (Y_MULTI, {}, None),
    "binary-sgd-tanh-nesterov-invscaling": (
        Y_BIN, {"solver": "sgd", "activation": "tanh", "learning_rate": "invscaling",
                    "learning_rate_init": 0.05}, None),
    "binary-sgd-momentum-no-nesterov": (
        Y_BIN, {"solver": "sgd", "nesterovs_momentum": False, "learning_rate_init": 0.05}, None),
    "multilabel-adam-logistic": (Y_LABELS, {"activation": "logistic"}, None),
    "multiclass-early-stopping": (Y_MULTI, {"early_stopping": True, "max_iter": 8}, None),
    "binary-early-stopping-stratified": (Y_BIN, {"early_stopping": True, "max_iter": 8}, None),
    "multiclass-sample-weight": (Y_MULTI, {}, SW),
    "multiclass-no-shuffle-identity": (Y_MULTI, {"shuffle": False, "activation": "identity"},
                                       None),
    "binary-auto-batch-alpha": (Y_BIN, {"batch_size": "auto", "alpha": 0.5}, None),
}


@pytest.mark.parametrize("case", list(CLASSIFIER_CASES))
def test_classifier_matches_sklearn(case):
    y, extra, sw = CLASSIFIER_CASES[case]
    sk, ours = _fit_both(SkMLPClassifier, MLPClassifier, dict(BASE, **extra), X, y, sw)
    _assert_same(sk, ours)
    np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_array_equal(ours.predict(X), sk.predict(X))
    np.testing.assert_array_equal(ours.classes_, sk.classes_)


REGRESSOR_CASES = {
    "adam-relu": (Y_REG, {}, None),
    "sgd-logistic-alpha": (Y_REG, {"solver": "sgd", "activation": "logistic", "alpha": 0.1,
                                       "learning_rate_init": 0.01}, None),
    "sgd-adaptive": (Y_REG, {"solver": "sgd", "learning_rate": "adaptive", "tol": 10,
                                 "n_iter_no_change": 1, "max_iter": 8, "learning_rate_init": 0.01},
                     None),
    "early-stopping-sample-weight": (Y_REG, {"early_stopping": True, "max_iter": 8}, SW),
    "poisson": (np.exp(Y_REG / 3), {"loss": "poisson"}, None),
    "multi-output": (np.c_[Y_REG, -Y_REG], {}, None),
}


@pytest.mark.parametrize("case", list(REGRESSOR_CASES))
def test_regressor_matches_sklearn(case):
    y, extra, sw = REGRESSOR_CASES[case]
    sk, ours = _fit_both(SkMLPRegressor, MLPRegressor, dict(BASE, **extra), X, y, sw)
    _assert_same(sk, ours)
    np.testing.assert_allclose(ours.predict(X), sk.predict(X), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("Est,SkEst,y", [(MLPClassifier, SkMLPClassifier, Y_MULTI),
                                         (MLPRegressor, SkMLPRegressor, Y_REG)])
def test_lbfgs_matches_sklearn(Est, SkEst, y):
    # same objective and gradient, so the same L-BFGS-B path up to summation order
    sk, ours = _fit_both(SkEst, Est, dict(BASE, solver="lbfgs", max_iter=30), X, y)
    assert np.abs(_flat(sk) - _flat(ours)).max() <= 1e-8 * np.abs(_flat(sk)).max()
    assert ours.loss_ == pytest.approx(sk.loss_, rel=1e-8)
    assert ours.n_iter_ == sk.n_iter_


def test_float32_matches_sklearn():
    X32 = X.astype(np.float32)
    sk, ours = _fit_both(SkMLPClassifier, MLPClassifier, BASE, X32, Y_MULTI)
    assert all(c.dtype == np.float32 for c in ours.coefs_ + ours.intercepts_)
    assert ours.predict_proba(X32).dtype == np.float32
    _assert_same(sk, ours, rtol=1e-5)


@pytest.mark.parametrize("Est,SkEst,y", [(MLPClassifier, SkMLPClassifier, Y_MULTI),
                                         (MLPRegressor, SkMLPRegressor, Y_REG)])
def test_partial_fit_and_warm_start_match_sklearn(Est, SkEst, y):
    params = dict(BASE, solver="sgd", learning_rate="invscaling", learning_rate_init=0.05)
    kw = {"classes": np.unique(y)} if Est is MLPClassifier else {}
    sk, ours = SkEst(**params), Est(backend="numpy", **params)
    for start in (0, 100, 50):  # the optimizer (velocity, schedule) carries over
        sk.partial_fit(X[start:start + 100], y[start:start + 100], **kw)
        ours.partial_fit(X[start:start + 100], y[start:start + 100], **kw)
        kw = {}
    _assert_same(sk, ours)
    # warm_start: a new optimizer, the weights, t_ and curves continue
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk.set_params(warm_start=True, max_iter=3).fit(X, y)
        ours.set_params(warm_start=True, max_iter=3).fit(X, y)
    _assert_same(sk, ours)


def test_user_assigned_weights_match_sklearn():
    # weights assigned by the user are used by predict and by warm_start, as in sklearn
    sk, ours = _fit_both(SkMLPClassifier, MLPClassifier, BASE, X, Y_MULTI)
    new = [np.full_like(W, 0.01) * (k + 1) for k, W in enumerate(sk.coefs_)]
    sk.coefs_ = [W.copy() for W in new]
    ours.coefs_ = [W.copy() for W in new]
    np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), rtol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk.set_params(warm_start=True, max_iter=2).fit(X, Y_MULTI)
        ours.set_params(warm_start=True, max_iter=2).fit(X, Y_MULTI)
    _assert_same(sk, ours)


def test_changed_activation_applies_as_in_sklearn():
    # scikit-learn reads `activation` at every forward pass: after set_params, predict and
    # a warm-started fit use the new one (out_activation_ stays)
    params = dict(BASE, solver="sgd", learning_rate_init=0.05)
    sk, ours = _fit_both(SkMLPClassifier, MLPClassifier, params, X, Y_MULTI)
    sk.set_params(activation="tanh")
    ours.set_params(activation="tanh")
    np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), rtol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk.set_params(warm_start=True).fit(X, Y_MULTI)
        ours.set_params(warm_start=True).fit(X, Y_MULTI)
    _assert_same(sk, ours)
    sk.set_params(activation="logistic")
    ours.set_params(activation="logistic")
    sk.partial_fit(X, Y_MULTI)
    ours.partial_fit(X, Y_MULTI)
    _assert_same(sk, ours)
    assert ours.summary().count("logistic") == len(BASE["hidden_layer_sizes"])


@pytest.mark.parametrize("change", [{"solver": "adam"}, {"momentum": 0.0},
                                    {"nesterovs_momentum": False},
                                    {"learning_rate": "invscaling"}, {"power_t": 2.0},
                                    {"learning_rate_init": 0.5}])
def test_partial_fit_keeps_its_optimizer_as_sklearn(change):
    # the optimizer made by the first partial_fit keeps its solver, schedule and settings
    # through later set_params, as in scikit-learn (fit makes a new one)
    params = dict(BASE, solver="sgd", learning_rate="invscaling", learning_rate_init=0.05,
                  power_t=0.25)
    if "learning_rate" in change:
        params["learning_rate"] = "constant"
    sk, ours = SkMLPClassifier(**params), MLPClassifier(backend="numpy", **params)
    sk.partial_fit(X, Y_MULTI, classes=np.unique(Y_MULTI))
    ours.partial_fit(X, Y_MULTI, classes=np.unique(Y_MULTI))
    sk.set_params(**change)
    ours.set_params(**change)
    for _ in range(2):
        sk.partial_fit(X, Y_MULTI)
        ours.partial_fit(X, Y_MULTI)
    _assert_same(sk, ours)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk.set_params(warm_start=True, max_iter=2).fit(X, Y_MULTI)  # a new optimizer
        ours.set_params(warm_start=True, max_iter=2).fit(X, Y_MULTI)
    _assert_same(sk, ours)
