"""The reference backend checked against mathematics, not against another backend.

Central finite differences in float64 check every derivative the reference computes:
activations, the dense layer's backward pass (with L2), each loss's output gradient and
the whole-network gradient that ``train_epoch`` applies. Two hand-worked networks pin the
exact numbers (and every backend must reproduce them).
"""

import numpy as np
import pytest
from conftest import assert_close, loss_targets
from rosenblatt import _codes as C
from rosenblatt import _kernels_ref as R
from rosenblatt import kernels as K

DIFF = ("identity", "logistic", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu", "exp")
H = 1e-6


def f(Z, act):
    A = np.empty_like(Z)
    R.activation_forward(Z, C.ACTIVATIONS[act], A)
    return A


def away_from_zero(Z, gap=1e-2):
    """Move entries off the kink at 0 (relu, leaky_relu, elu), where f' is one-sided."""
    Z = Z.copy()
    Z[np.abs(Z) < gap] += 3 * gap
    return Z


def numeric_grad(fun, x, h=H):
    """Central differences of the scalar ``fun()`` w.r.t. every entry of ``x`` (in place)."""
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        up = fun()
        flat[i] = old - h
        down = fun()
        flat[i] = old
        gflat[i] = (up - down) / (2 * h)
    return g


@pytest.mark.parametrize("act", DIFF)
def test_activation_derivative(act):
    rng = np.random.default_rng(0)
    Z = away_from_zero(rng.uniform(-4, 4, (7, 9)))
    num = (f(Z + H, act) - f(Z - H, act)) / (2 * H)
    A = f(Z, act)
    dZ = np.empty_like(Z)
    R.activation_backward(Z, A, np.ones_like(Z), C.ACTIVATIONS[act], dZ)
    np.testing.assert_allclose(dZ, num, rtol=1e-6, atol=1e-8)


def test_activation_conventions_at_zero():
    """The documented choices at z = 0: heaviside 1, sign 0, relu' 0 (scikit-learn)."""
    Z = np.zeros((1, 1))
    assert f(Z, "heaviside")[0, 0] == 1.0
    assert f(Z, "sign")[0, 0] == 0.0
    dZ = np.empty_like(Z)
    R.activation_backward(Z, f(Z, "relu"), np.ones_like(Z), C.RELU, dZ)
    assert dZ[0, 0] == 0.0
    assert f(Z, "gelu")[0, 0] == 0.0
    assert f(Z, "softplus")[0, 0] == pytest.approx(np.log(2.0), rel=1e-15)


def test_softmax_rows_and_invariance():
    rng = np.random.default_rng(1)
    Z = rng.standard_normal((5, 4)) * 30
    A = f(Z, "softmax")
    np.testing.assert_allclose(A.sum(axis=1), 1.0, rtol=1e-14)
    np.testing.assert_allclose(f(Z + 1000.0, "softmax"), A, rtol=1e-12)  # max subtracted


@pytest.mark.parametrize("act", DIFF)
@pytest.mark.parametrize("l2", [0.0, 0.7])
def test_dense_backward_finite_differences(act, l2):
    rng = np.random.default_rng(2)
    n, k, m = 5, 4, 3
    X = rng.standard_normal((n, k))
    W = rng.standard_normal((k, m)) * 0.5
    b = rng.standard_normal(m) * 0.5
    code = C.ACTIVATIONS[act]
    if act in ("relu", "leaky_relu", "elu"):
        assert np.abs(X @ W + b).min() > 1e-3, "test data must stay off the kink"
    Cw = rng.standard_normal((n, m))  # the scalar loss is sum(Cw * A) + 0.5 l2 |W|^2

    def loss():
        Z = X @ W + b
        return float((Cw * f(Z, act)).sum() + 0.5 * l2 * (W * W).sum())

    A = np.empty((n, m))
    Z = np.empty((n, m))
    R.dense_forward(X, W, b, code, A, Z)
    dW, db, dX = np.empty((k, m)), np.empty(m), np.empty((n, k))
    R.dense_backward(X, W, A, Z, Cw, code, l2, dW, db, dX)
    for got, var in ((dW, W), (db, b), (dX, X)):
        np.testing.assert_allclose(got, numeric_grad(loss, var), rtol=1e-6, atol=1e-7)


def loss_value(P, Y, sw, loss, delta=1.0):
    G = np.empty_like(P)
    return R.loss_gradient(P, Y, sw, C.LOSSES[loss], delta, G), G


@pytest.mark.parametrize("loss", ["squared_error", "absolute_error", "huber"])
@pytest.mark.parametrize("weighted", [False, True])
def test_loss_gradient_wrt_outputs(loss, weighted):
    """Mean-over-outputs losses: G = k * dvalue/dP (scikit-learn does not divide by k)."""
    rng = np.random.default_rng(3)
    n, k = 6, 3
    P = rng.standard_normal((n, k))
    Y = rng.standard_normal((n, k))
    delta = 0.9
    r = np.abs(P - Y)
    P[np.abs(r - delta) < 1e-3] += 1e-2  # off huber's joint
    sw = rng.uniform(0.2, 2.0, n) if weighted else None
    _, G = loss_value(P, Y, sw, loss, delta)
    num = numeric_grad(lambda: loss_value(P, Y, sw, loss, delta)[0], P)
    np.testing.assert_allclose(G, k * num, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("loss", ["binary_log_loss", "log_loss", "poisson"])
@pytest.mark.parametrize("weighted", [False, True])
def test_loss_gradient_wrt_preactivation(loss, weighted):
    """Canonical links: G is the gradient w.r.t. Z of the output activation, summed outputs."""
    rng = np.random.default_rng(4)
    n, k = 6, 3
    Z = rng.standard_normal((n, k))
    link = {"binary_log_loss": "logistic", "log_loss": "softmax", "poisson": "exp"}[loss]
    if loss == "log_loss":
        Y = np.eye(k)[rng.integers(0, k, n)]
    elif loss == "binary_log_loss":
        Y = rng.uniform(0, 1, (n, k)).round(1)  # soft labels too: g = p - y holds for any y
    else:
        Y = rng.poisson(1.5, (n, k)).astype(float)
    sw = rng.uniform(0.2, 2.0, n) if weighted else None
    _, G = loss_value(f(Z, link), Y, sw, loss)
    num = numeric_grad(lambda: loss_value(f(Z, link), Y, sw, loss)[0], Z)
    np.testing.assert_allclose(G, num, rtol=1e-6, atol=1e-9)


NETS = [
    # layer sizes, activations, loss, alpha, l1, weighted
    ([3, 4, 2], ["tanh", "identity"], "squared_error", 0.0, 0.0, False),
    ([3, 5, 4, 3], ["logistic", "softplus", "softmax"], "log_loss", 0.1, 0.0, True),
    ([2, 4, 1], ["gelu", "logistic"], "binary_log_loss", 0.3, 0.0, False),
    ([3, 4, 2], ["elu", "exp"], "poisson", 0.0, 0.05, True),
    ([3, 6, 2], ["leaky_relu", "identity"], "huber", 0.05, 0.02, False),
    ([2, 3, 3, 2], ["tanh", "relu", "tanh"], "squared_error", 0.0, 0.0, True),
]


@pytest.mark.parametrize(("sizes", "acts", "loss", "alpha", "l1", "weighted"), NETS)
def test_train_epoch_gradient(sizes, acts, loss, alpha, l1, weighted):
    """One full batch of plain sgd moves the parameters by -lr times the numeric gradient."""
    rng = np.random.default_rng(5)
    n = 7
    ls = np.array(sizes, dtype=np.int64)
    codes = np.array([C.ACTIVATIONS[a] for a in acts], dtype=np.int32)
    X = rng.standard_normal((n, sizes[0]))
    Y = loss_targets(rng, loss, n, sizes[-1])
    sw = rng.uniform(0.3, 2.0, n) if weighted else None
    _, total = R.param_offsets(ls)
    p0 = rng.standard_normal(total) * 0.6
    p0[np.abs(p0) < 1e-2] = 0.05  # |W| is not differentiable at 0 (l1)
    order = np.arange(n, dtype=np.int64)
    lc = C.LOSSES[loss]

    def run(params, lr):
        hyper = np.zeros(C.N_HYPER)
        hyper[C.H_LR], hyper[C.H_ALPHA], hyper[C.H_L1], hyper[C.H_HUBER_DELTA] = lr, alpha, l1, 1.0
        grads = np.zeros(total)
        state = np.zeros((1, total))
        total_loss = R.train_epoch(X, Y, sw, order, n, ls, codes, lc, params, grads, state,
                                   C.SGD, hyper, np.zeros(1, np.int64), np.empty(0), None)
        return total_loss / n, grads

    offs, _ = R.param_offsets(ls)
    S = n if sw is None else sw.sum()
    k = sizes[-1] if loss in ("squared_error", "absolute_error", "huber") else 1

    def objective(params):
        """What the gradient differentiates: like scikit-learn, a mean-over-outputs loss
        contributes k times its value (the output gradient is not divided by k)."""
        value = run(params.copy(), 0.0)[0]
        Ws = np.concatenate([params[w:bo] for w, bo in offs])
        reg = 0.5 * alpha * (Ws @ Ws) / S + l1 * np.abs(Ws).sum() / S
        return k * (value - reg) + reg

    p = p0.copy()
    value, grads = run(p, 0.0)
    np.testing.assert_array_equal(p, p0)  # lr 0: no move
    work = p0.copy()
    num = numeric_grad(lambda: objective(work), work)
    np.testing.assert_allclose(grads, num, rtol=1e-5, atol=1e-8)
    lr = 1e-3
    p = p0.copy()
    value2, _ = run(p, lr)
    assert value2 == value  # the loss is measured before the step
    np.testing.assert_allclose(p - p0, -lr * num, rtol=1e-5, atol=1e-10)


def _trainer(params, sizes, acts, loss, X, Y, lr, backend):
    return K.Trainer(X, Y, params, sizes, acts, loss, "sgd", {"lr": lr, "momentum": 0.0},
                     X.shape[0], backend=backend)


@pytest.mark.parametrize("backend", K.available_backends())
def test_hand_worked_relu_network(backend):
    """x = (1, 2) -> relu(2) -> identity(1), squared error, one sgd step of lr 0.5.

    z0 = (1*0.5 + 2*0.25, 1*(-1) + 2*0.5) + (0, 0.5) = (1, 0.5); a0 = (1, 0.5)
    z1 = 1*1 + 0.5*2 + 0.5 = 2.5; loss = 0.5 (2.5 - 1)^2 = 1.125; G = 1.5
    dW1 = a0^T G = (1.5, 0.75); db1 = 1.5; dA0 = G W1^T = (1.5, 3); relu' = (1, 1)
    dW0 = x^T dZ0 = [[1.5, 3], [3, 6]]; db0 = (1.5, 3)
    """
    X = np.array([[1.0, 2.0]])
    Y = np.array([[1.0]])
    #                 W0 (2x2, row-major)   b0         W1        b1
    p = np.array([0.5, -1.0, 0.25, 0.5, 0.0, 0.5, 1.0, 2.0, 0.5])
    grads = np.array([1.5, 3.0, 3.0, 6.0, 1.5, 3.0, 1.5, 0.75, 1.5])
    tr = _trainer(p, [2, 2, 1], ["relu", "identity"], "squared_error", X, Y, 0.5, backend)
    p0 = p.copy()
    assert tr.run_epoch(np.array([0])) == 1.125
    np.testing.assert_array_equal(tr.grads, grads)
    np.testing.assert_array_equal(p, p0 - 0.5 * grads)


@pytest.mark.parametrize("backend", K.available_backends())
def test_hand_worked_softmax_layer(backend):
    """x = 0, b = (0, ln 3): p = (1/4, 3/4); y = (1, 0): loss = ln 4, G = (-3/4, 3/4)."""
    X = np.zeros((1, 1))
    Y = np.array([[1.0, 0.0]])
    p = np.array([0.0, 0.0, 0.0, np.log(3.0)])
    tr = _trainer(p, [1, 2], ["softmax"], "log_loss", X, Y, 1.0, backend)
    assert tr.run_epoch(np.array([0])) == pytest.approx(np.log(4.0), rel=1e-14)
    assert_close(tr.grads, [0.0, 0.0, -0.75, 0.75], np.float64)


# --------------------------------------------------------------------------------------
# batch normalisation


@pytest.mark.parametrize(("n", "k"), [(1, 2), (2, 1), (5, 3), (9, 8)])
def test_batchnorm_backward_finite_differences(n, k):
    rng = np.random.default_rng(10 * n + k)
    Z = rng.normal(1.0, 2.0, (n, k))
    gamma, beta = rng.normal(size=k), rng.normal(size=k)
    Cw = rng.normal(size=(n, k))  # the scalar loss is sum(Cw * Y), so dY = Cw
    eps = 1e-3

    def forward():
        Y, Xhat = np.empty((n, k)), np.empty((n, k))
        mean, invstd = np.empty(k), np.empty(k)
        R.batchnorm_forward(Z, gamma, beta, eps, Y, Xhat, mean, invstd)
        return Y, Xhat, mean, invstd

    def loss():
        return float((Cw * forward()[0]).sum())

    Y, Xhat, mean, invstd = forward()
    # the forward against its definition (biased variance)
    np.testing.assert_allclose(mean, Z.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(invstd, 1 / np.sqrt(Z.var(axis=0) + eps), rtol=1e-14)
    np.testing.assert_allclose(Y, gamma * (Z - Z.mean(0)) * invstd + beta, atol=1e-13)
    dZ, dgamma, dbeta = np.empty((n, k)), np.empty(k), np.empty(k)
    R.batchnorm_backward(Cw, Xhat, gamma, invstd, dZ, dgamma, dbeta)
    for got, var in ((dZ, Z), (dgamma, gamma), (dbeta, beta)):
        np.testing.assert_allclose(got, numeric_grad(loss, var), rtol=1e-6, atol=1e-7)


def test_batchnorm_inference_definition():
    rng = np.random.default_rng(11)
    Z = rng.normal(size=(4, 3))
    gamma, beta, rm = rng.normal(size=3), rng.normal(size=3), rng.normal(size=3)
    rv = rng.random(3)
    Y = np.empty_like(Z)
    R.batchnorm_inference(Z, gamma, beta, rm, rv, 1e-5, Y)
    np.testing.assert_allclose(Y, (Z - rm) / np.sqrt(rv + 1e-5) * gamma + beta, rtol=1e-14)
