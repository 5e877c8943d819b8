"""The estimators' options beyond scikit-learn, checked against numbers computed here.

Each test starts from known weights (``from_weights`` + ``warm_start``) and compares what
the estimator does with a NumPy computation written out in this file:

* solvers 'adagrad', 'rmsprop', 'adam', 'adamw' and sgd's momentum flavours: one and two
  full-batch steps move the weights exactly as the optimizer formula predicts from the
  gradient. The gradient is taken from a plain SGD step (momentum 0: ``W1 = W0 - lr g``,
  so ``g = (W0 - W1) / lr``; sgd is parity-tested against scikit-learn) and also
  checked against a hand-written backward pass;
* a per-layer ``activation`` tuple: predictions, the training loss and its gradient
  follow a forward pass that uses each layer's own activation;
* the regressor's 'absolute_error' and 'huber' losses (with ``huber_delta``): the loss of
  the starting weights (``loss_curve_[0]`` of a one-step full-batch fit), the validation
  loss and the gradient are those of the formulas;
* ``kernel_init``: the spread and the shape (normal or uniform) of the drawn weights;
* solver='sgd' with early stopping gives scikit-learn's model.
"""

import math
import warnings
from itertools import pairwise

import numpy as np
import pytest
from rosenblatt.kernels import available_backends
from rosenblatt.neural_network import MLPClassifier, MLPRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor
from test_mlp_parity import _assert_same, _fit_both

BACKENDS = available_backends()

rng = np.random.RandomState(7)
N = 16
X = rng.randn(N, 3)
Y = X @ np.array([0.8, -1.5, 0.6]) + 0.3 * rng.randn(N)


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def _quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fn(*args, **kw)


def _start(sizes=(3, 5, 4, 1), seed=3, scale=0.8):
    """Known starting weights: (coefs, intercepts)."""
    r = np.random.RandomState(seed)
    coefs = [scale * r.randn(a, b) for a, b in pairwise(sizes)]
    intercepts = [0.3 * r.randn(b) for b in sizes[1:]]
    return coefs, intercepts


def _flat(coefs, intercepts):
    """The kernels' layout: W_0 (row-major), b_0, W_1, b_1, ..."""
    return np.concatenate([np.r_[W.ravel(), b] for W, b in zip(coefs, intercepts)])


def _est_flat(est):
    return _flat(est.coefs_, est.intercepts_)


def _unflat(p, sizes=(3, 5, 4, 1)):
    """(coefs, intercepts) of a flat vector in the kernels' layout."""
    coefs, intercepts, o = [], [], 0
    for a, b in pairwise(sizes):
        coefs.append(p[o:o + a * b].reshape(a, b).copy())
        intercepts.append(p[o + a * b:o + a * b + b].copy())
        o += a * b + b
    assert o == p.size
    return coefs, intercepts


# --------------------------------------------------------------------------------------
# the forward and backward pass, written out


GELU_C, GELU_K = math.sqrt(2.0 / math.pi), 0.044715


def _gelu(z):
    # tanh approximation (Hendrycks & Gimpel): 0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3)))
    return 0.5 * z * (1.0 + np.tanh(GELU_C * (z + GELU_K * z**3)))


def _gelu_prime(z):
    t = np.tanh(GELU_C * (z + GELU_K * z**3))
    return 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * GELU_K * z * z)


# name: (f, f') with f' a function of the pre-activation z
ACTS = {
    "identity": (lambda z: z, np.ones_like),
    "tanh": (np.tanh, lambda z: 1.0 - np.tanh(z) ** 2),
    "relu": (lambda z: np.maximum(z, 0.0), lambda z: (z > 0).astype(float)),
    "leaky_relu": (lambda z: np.where(z > 0, z, 0.01 * z),
                   lambda z: np.where(z > 0, 1.0, 0.01)),
    "gelu": (_gelu, _gelu_prime),
}


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _forward(X, coefs, intercepts, hidden, out="identity"):
    """Pre-activations and activations of every layer; ``hidden`` one name per layer."""
    names = [*hidden, out]
    a, zs, As = X, [], [X]
    for name, W, b in zip(names, coefs, intercepts, strict=True):
        z = a @ W + b
        a = _softmax(z) if name == "softmax" else ACTS[name][0](z)
        zs.append(z)
        As.append(a)
    return zs, As


def _backward(zs, As, coefs, hidden, d_out):
    """Flat gradient (kernels' layout) given d loss / d output pre-activation ``d_out``."""
    grads = []
    d = d_out
    for k in range(len(coefs) - 1, -1, -1):
        grads.append(np.r_[(As[k].T @ d).ravel(), d.sum(axis=0)])
        if k:
            d = (d @ coefs[k].T) * ACTS[hidden[k - 1]][1](zs[k - 1])
    return np.concatenate(grads[::-1])


def _regression_loss(p, y, loss, delta=1.0):
    """(mean loss over rows, d loss / d p) for one output column; half squared error as
    scikit-learn, absolute error, Huber: 0.5 r^2 for |r| <= delta else delta (|r| - delta/2)."""
    r = p - y
    n = r.shape[0]
    if loss == "squared_error":
        return float(np.mean(0.5 * r * r)), r / n
    if loss == "absolute_error":
        return float(np.mean(np.abs(r))), np.sign(r) / n
    assert loss == "huber"
    per = np.where(np.abs(r) <= delta, 0.5 * r * r, delta * (np.abs(r) - 0.5 * delta))
    return float(np.mean(per)), np.clip(r, -delta, delta) / n


def _manual_loss_grad(coefs, intercepts, hidden, loss="squared_error", delta=1.0):
    zs, As = _forward(X, coefs, intercepts, hidden)
    value, dp = _regression_loss(As[-1], Y[:, None], loss, delta)
    return value, _backward(zs, As, coefs, hidden, dp), As[-1]


def _one_step(coefs, intercepts, backend, *, max_iter=1, callbacks=None, fit_kw=None,
              **params):
    """A warm-started full-batch fit from the given weights: max_iter steps, rows in order,
    no L2 term."""
    params = {"activation": "tanh", "solver": "sgd", "momentum": 0.0, "alpha": 0.0,
              "learning_rate_init": 0.1, **params}
    est = MLPRegressor.from_weights([W.copy() for W in coefs], [b.copy() for b in intercepts],
                                    batch_size=N, shuffle=False, max_iter=max_iter,
                                    warm_start=True, n_iter_no_change=max_iter + 1,
                                    callbacks=callbacks, backend=backend, **params)
    return _quiet(est.fit, X, Y, **(fit_kw or {}))


def _sgd_gradient(coefs, intercepts, backend, lr=0.1, **params):
    """The full-batch gradient at the given weights, from one plain SGD step."""
    p0 = _flat(coefs, intercepts)
    est = _one_step(coefs, intercepts, backend, learning_rate_init=lr, **params)
    return (p0 - _est_flat(est)) / lr


# --------------------------------------------------------------------------------------
# optimizers through the estimator


LR, EPS, RHO, B1, B2, WD, MU = 0.1, 0.05, 0.8, 0.7, 0.9, 0.5, 0.6


def _expected_steps(solver, p0, gradients):
    """The weights after each step of ``solver`` from p0 with the given gradients, by the
    documented formulas (state starting at zero, Adam's step counter at 1):
      sgd      v = mu v - lr g;  p += v  (classical)  or  p += mu v - lr g  (nesterov)
      adagrad  s += g^2;  p -= lr g / (sqrt(s) + eps)
      rmsprop  s = rho s + (1 - rho) g^2;  p -= lr g / (sqrt(s) + eps)
      adam     m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
               p -= lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps)
      adamw    p -= lr wd p (the weights before the step), then adam
    """
    p = p0.copy()
    s = np.zeros_like(p0)
    m = np.zeros_like(p0)
    out = []
    for t, g in enumerate(gradients, start=1):
        if solver in ("sgd-classical", "sgd-nesterov"):
            s = MU * s - LR * g
            p = p + (MU * s - LR * g if solver == "sgd-nesterov" else s)
        elif solver == "adagrad":
            s = s + g * g
            p = p - LR * g / (np.sqrt(s) + EPS)
        elif solver == "rmsprop":
            s = RHO * s + (1.0 - RHO) * g * g
            p = p - LR * g / (np.sqrt(s) + EPS)
        else:
            if solver == "adamw":
                p = p - LR * WD * p
            m = B1 * m + (1.0 - B1) * g
            s = B2 * s + (1.0 - B2) * g * g
            p = p - LR * math.sqrt(1.0 - B2**t) / (1.0 - B1**t) * m / (np.sqrt(s) + EPS)
        out.append(p)
    return out


SOLVER_PARAMS = {
    "sgd-classical": {"solver": "sgd", "momentum": MU, "nesterovs_momentum": False},
    "sgd-nesterov": {"solver": "sgd", "momentum": MU, "nesterovs_momentum": True},
    "adagrad": {"solver": "adagrad"},
    "rmsprop": {"solver": "rmsprop"},
    "adam": {"solver": "adam"},  # weight_decay is set below too: adam must ignore it
    "adamw": {"solver": "adamw"},
}


def test_sgd_gradient_is_the_hand_written_one(backend):
    coefs, intercepts = _start()
    _, want, _ = _manual_loss_grad(coefs, intercepts, ["tanh", "tanh"])
    got = _sgd_gradient(coefs, intercepts, backend)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("solver", list(SOLVER_PARAMS))
def test_full_batch_steps_follow_the_optimizer_formula(backend, solver):
    coefs, intercepts = _start()
    p0 = _flat(coefs, intercepts)
    # weights after each of two epochs (one full-batch step each), seen by a callback
    seen = []
    est = _one_step(coefs, intercepts, backend, max_iter=2,
                    callbacks=[lambda e, logs: seen.append(_est_flat(e))],
                    learning_rate_init=LR, epsilon=EPS, rho=RHO, beta_1=B1, beta_2=B2,
                    weight_decay=WD, **SOLVER_PARAMS[solver])
    assert est.n_iter_ == 2 and len(seen) == 2
    np.testing.assert_array_equal(seen[1], _est_flat(est))
    # the gradient at the start and at the weights after the first step
    g1 = _sgd_gradient(coefs, intercepts, backend)
    g2 = _sgd_gradient(*_unflat(seen[0]), backend)
    want = _expected_steps(solver, p0, [g1, g2])
    np.testing.assert_allclose(seen[0], want[0], rtol=1e-9, atol=1e-12, err_msg="step 1")
    np.testing.assert_allclose(seen[1], want[1], rtol=1e-9, atol=1e-12, err_msg="step 2")
    # the steps differ between solvers by much more than the tolerance (the test can tell)
    for other in SOLVER_PARAMS:
        if other != solver:
            assert np.abs(_expected_steps(other, p0, [g1])[0] - want[0]).max() > 1e-4, other


# --------------------------------------------------------------------------------------
# a per-layer activation tuple


def test_activation_tuple_from_weights_predicts_and_trains_per_layer(backend):
    coefs, intercepts = _start(scale=1.2)
    hidden = ["gelu", "leaky_relu"]
    zs, As = _forward(X, coefs, intercepts, hidden)
    # the data reach the regions where the two activations differ (negative inputs)
    assert (zs[1] < -0.5).any() and (zs[0] < -0.5).any()
    for other in (["gelu", "gelu"], ["leaky_relu", "leaky_relu"], ["leaky_relu", "gelu"]):
        assert np.abs(_forward(X, coefs, intercepts, other)[1][-1] - As[-1]).max() > 1e-2
    est = MLPRegressor.from_weights(coefs, intercepts, activation=tuple(hidden),
                                    backend=backend)
    np.testing.assert_allclose(est.predict(X), As[-1][:, 0], rtol=1e-12, atol=1e-12)
    # training: the loss of the starting weights and the gradient of the first step
    value, grad, _ = _manual_loss_grad(coefs, intercepts, hidden)
    fitted = _one_step(coefs, intercepts, backend, activation=tuple(hidden))
    assert fitted.loss_curve_[0] == pytest.approx(value, rel=1e-12)
    np.testing.assert_allclose((_flat(coefs, intercepts) - _est_flat(fitted)) / 0.1, grad,
                               rtol=1e-9, atol=1e-12)


def test_activation_tuple_in_a_fitted_classifier(backend):
    y = np.argsort(np.argsort(X[:, 0])) % 3  # three classes: a softmax output
    clf = _quiet(MLPClassifier((6, 4), activation=("gelu", "leaky_relu"), max_iter=5,
                               random_state=0, learning_rate_init=0.05, backend=backend).fit,
                 X, y)
    _, As = _forward(X, clf.coefs_, clf.intercepts_, ["gelu", "leaky_relu"], out="softmax")
    np.testing.assert_allclose(clf.predict_proba(X), As[-1], rtol=1e-10, atol=1e-13)
    _, same = _forward(X, clf.coefs_, clf.intercepts_, ["gelu", "gelu"], out="softmax")
    assert np.abs(same[-1] - As[-1]).max() > 1e-6  # the second layer's choice shows


# --------------------------------------------------------------------------------------
# regression losses


@pytest.mark.parametrize("loss,delta", [("squared_error", 1.0), ("absolute_error", 1.0),
                                        ("huber", 0.5), ("huber", 2.0)])
def test_regression_loss_value_and_gradient(backend, loss, delta):
    coefs, intercepts = _start()
    hidden = ["tanh", "tanh"]
    value, grad, P = _manual_loss_grad(coefs, intercepts, hidden, loss, delta)
    r = np.abs(P[:, 0] - Y)
    if loss == "huber":  # residuals on both sides of delta: both branches are used
        assert (r < delta).sum() >= 3 and (r > delta).sum() >= 3
    # the other losses give clearly different values here
    for other, d in (("squared_error", 1.0), ("absolute_error", 1.0), ("huber", 0.5),
                     ("huber", 2.0), ("huber", 1.0)):
        if (other, d) != (loss, delta):
            assert abs(_regression_loss(P, Y[:, None], other, d)[0] - value) > 1e-3 * value
    est = _one_step(coefs, intercepts, backend, loss=loss, huber_delta=delta,
                    activation="tanh", fit_kw={"validation_data": (X, Y)})
    assert est.loss_curve_[0] == pytest.approx(value, rel=1e-12)
    assert est.loss_ == est.loss_curve_[0]
    np.testing.assert_allclose((_flat(coefs, intercepts) - _est_flat(est)) / 0.1, grad,
                               rtol=1e-9, atol=1e-12)
    # the validation loss is the same loss, at the weights after the step
    after = _manual_loss_grad(est.coefs_, est.intercepts_, hidden, loss, delta)[0]
    assert est.validation_loss_curve_ == [pytest.approx(after, rel=1e-12)]


# --------------------------------------------------------------------------------------
# kernel_init


def _candidate_stds(fan_in, fan_out):
    return {"lecun": math.sqrt(1.0 / fan_in),  # LeCun normal: Var = 1 / fan_in
            "glorot": math.sqrt(2.0 / (fan_in + fan_out)),  # Glorot: 2 / (fan_in + fan_out)
            "he": math.sqrt(2.0 / fan_in)}  # He: 2 / fan_in


# init: (scheme whose variance it has, drawn from a normal distribution?)
INITS = {"glorot_uniform": ("glorot", False), "glorot_normal": ("glorot", True),
         "he_uniform": ("he", False), "he_normal": ("he", True), "lecun": ("lecun", True)}


@pytest.mark.parametrize("init", list(INITS))
def test_kernel_init_spread_and_shape(init):
    # layers 10 -> 1000 -> 10: fan_in and fan_out far apart, so the three variances
    # differ by factors > 1.4 in the first layer; 10 000 draws per layer
    Xw = np.random.RandomState(0).randn(30, 10)
    Yw = np.random.RandomState(1).randn(30, 10)
    est = MLPRegressor(hidden_layer_sizes=(1000,), kernel_init=init, random_state=0,
                       solver="sgd", momentum=0.0, learning_rate_init=1e-30, max_iter=1,
                       backend="numpy")
    _quiet(est.fit, Xw, Yw)  # a step of 1e-30 leaves the drawn weights as they were
    scheme, normal = INITS[init]
    for W, b in zip(est.coefs_, est.intercepts_):
        fan_in, fan_out = W.shape
        stds = _candidate_stds(fan_in, fan_out)
        std = stds[scheme]
        assert W.std() == pytest.approx(std, rel=0.03)
        assert abs(W.mean()) < 5 * std / math.sqrt(W.size)
        # uniform on +-sqrt(3) std never exceeds sqrt(3) std (and comes close to it);
        # a normal draw exceeds it with probability 2 (1 - Phi(sqrt(3))) = 0.0833
        beyond = float(np.mean(np.abs(W) > math.sqrt(3.0) * std))
        if normal:
            assert 0.07 < beyond < 0.097
        else:
            assert beyond == 0.0 and np.abs(W).max() > 0.99 * math.sqrt(3.0) * std
        if init == "glorot_uniform":  # scikit-learn's: the biases drawn like the weights
            assert 0 < np.abs(b).max() <= math.sqrt(3.0) * std
        else:
            np.testing.assert_allclose(b, 0.0, rtol=0, atol=1e-25)  # zero + the 1e-30 step
    fan_in, fan_out = est.coefs_[0].shape
    stds = sorted(_candidate_stds(fan_in, fan_out).values())
    assert all(b / a > 1.4 for a, b in pairwise(stds))  # the test can tell them apart


# --------------------------------------------------------------------------------------
# scikit-learn parity: sgd with early stopping

rs = np.random.RandomState(0)
XP = rs.randn(200, 10)
YP_CLS = rs.randint(0, 3, 200)
YP_REG = XP[:, :3].sum(1) + 0.1 * rs.randn(200)
SGD_ES = {"hidden_layer_sizes": (16, 8), "random_state": 1, "batch_size": 32,
          "solver": "sgd", "early_stopping": True, "n_iter_no_change": 3, "max_iter": 40}


@pytest.mark.parametrize("extra", [{"learning_rate_init": 0.05},
                                   {"learning_rate_init": 0.05, "nesterovs_momentum": False,
                                    "learning_rate": "adaptive", "tol": 1e-2}],
                         ids=["constant", "adaptive"])
@pytest.mark.parametrize("Est,SkEst,y", [(MLPClassifier, SkMLPClassifier, YP_CLS),
                                         (MLPRegressor, SkMLPRegressor, YP_REG)],
                         ids=["classifier", "regressor"])
def test_sgd_early_stopping_matches_sklearn(Est, SkEst, y, extra):
    sk, ours = _fit_both(SkEst, Est, dict(SGD_ES, **extra), XP, y)
    _assert_same(sk, ours)
    assert sk.n_iter_ < SGD_ES["max_iter"]  # stopped (adaptive: once the rate is too small)
    assert len(ours.validation_scores_) == ours.n_iter_
    assert ours.best_validation_score_ == max(ours.validation_scores_)
    if "learning_rate" not in extra:
        # the best epoch is not the last: the weights compared above are restored ones
        assert np.argmax(ours.validation_scores_) < ours.n_iter_ - 1
