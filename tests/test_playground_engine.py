"""The Playground's engine: batch-norm kernels, gradients, regularisation, sessions, export."""

import pickle
import threading

import numpy as np
import pytest
from rosenblatt.playground import _batchnorm as bn
from rosenblatt.playground import engine as en


def _bn_loss(Z, gamma, beta, R):
    Y = np.empty_like(Z)
    Xhat = np.empty_like(Z)
    mean, invstd = np.empty(Z.shape[1]), np.empty(Z.shape[1])
    bn.batchnorm_forward(Z, gamma, beta, 1e-5, Y, Xhat, mean, invstd)
    return float(np.sum(Y * R)), Xhat, invstd


@pytest.mark.parametrize("n,k", [(2, 1), (5, 3), (10, 8)])
def test_batchnorm_forward_and_finite_differences(n, k):
    rng = np.random.default_rng(n * k)
    Z = rng.normal(1.0, 2.0, (n, k))
    gamma, beta = rng.normal(size=k), rng.normal(size=k)
    R = rng.normal(size=(n, k))       # L = sum(Y * R), so dY = R
    _L, Xhat, invstd = _bn_loss(Z, gamma, beta, R)
    np.testing.assert_allclose(Xhat.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose((Xhat**2).mean(0), Z.var(0) / (Z.var(0) + 1e-5), rtol=1e-12)
    dZ, dg, db = np.empty_like(Z), np.empty(k), np.empty(k)
    bn.batchnorm_backward(R, Xhat, gamma, invstd, dZ, dg, db)
    h = 1e-6
    for arr, grad in ((Z, dZ), (gamma, dg), (beta, db)):
        num = np.empty_like(arr)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + h
            lp = _bn_loss(Z, gamma, beta, R)[0]
            arr[idx] = old - h
            lm = _bn_loss(Z, gamma, beta, R)[0]
            arr[idx] = old
            num[idx] = (lp - lm) / (2 * h)
        np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-7)


def test_batchnorm_numba_matches_numpy():
    pytest.importorskip("numba")
    fwd, bwd, inf = bn.numba_kernels()
    rng = np.random.default_rng(1)
    n, k = 7, 5
    Z = rng.normal(size=(n, k))
    gamma, beta, dY = rng.normal(size=k), rng.normal(size=k), rng.normal(size=(n, k))
    outs = []
    for f, b_, i_ in ((bn.batchnorm_forward, bn.batchnorm_backward, bn.batchnorm_inference),
                      (fwd, bwd, inf)):
        Y, Xhat, mean, invstd = (np.empty_like(Z), np.empty_like(Z), np.empty(k),
                                 np.empty(k))
        f(Z, gamma, beta, 1e-5, Y, Xhat, mean, invstd)
        dZ, dg, db = np.empty_like(Z), np.empty(k), np.empty(k)
        b_(dY, Xhat, gamma, invstd, dZ, dg, db)
        Yi = np.empty_like(Z)
        i_(Z, gamma, beta, mean, 1 / invstd**2 - 1e-5, 1e-5, Yi)
        outs.append((Y, Xhat, mean, invstd, dZ, dg, db, Yi))
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    # inference with the batch's own statistics equals the training forward
    np.testing.assert_allclose(outs[0][7], outs[0][0], atol=1e-12)


def test_fold_equals_inference():
    rng = np.random.default_rng(2)
    W, b = rng.normal(size=(3, 4)), rng.normal(size=4)
    g, be, m, v = rng.normal(size=4), rng.normal(size=4), rng.normal(size=4), rng.random(4)
    X = rng.normal(size=(6, 3))
    Y = np.empty((6, 4))
    bn.batchnorm_inference(X @ W + b, g, be, m, v, 1e-5, Y)
    W2, b2 = bn.fold(W, b, g, be, m, v, 1e-5)
    np.testing.assert_allclose(X @ W2 + b2, Y, atol=1e-12)


@pytest.mark.parametrize("cfg", [
    {},
    {"activation": "relu", "layers": [3, 3], "features": ["x", "y", "xTimesY"]},
    {"activation": "sigmoid", "loss": "cross_entropy"},
    {"dataset": "reg-gauss", "activation": "linear", "layers": [2]},
    {"batch_norm": True, "layers": [4, 3, 2]},
    {"layers": []},
])
def test_network_gradient_finite_differences(cfg):
    s = en.Session(cfg | ({"dataset": "gauss"} if "dataset" not in cfg else {}))
    s.step(2)
    F, T = s.F_train[:12], s.data.y_train[:12]
    cache = en._Cache()
    s._forward(F, train=True, cache=cache)
    s._backward(cache, T)
    g = s.grad.copy()

    def loss():
        o = s._forward(F, train=True)
        if s.output == "sigmoid":
            return s._loss(o, T)
        return float(0.5 * np.mean((o[:, 0] - T) ** 2))

    h = 1e-6
    num = np.empty_like(g)
    for i in range(len(s.theta)):
        old = s.theta[i]
        s.theta[i] = old + h
        lp = loss()
        s.theta[i] = old - h
        lm = loss()
        s.theta[i] = old
        num[i] = (lp - lm) / (2 * h)
    np.testing.assert_allclose(g, num, rtol=1e-4, atol=1e-8)


def test_defaults_follow_the_original():
    s = en.Session()
    c = s.config
    assert (c.dataset, c.features, c.layers, c.activation, c.learning_rate, c.batch_size,
            c.train_ratio, c.noise) == ("circle", ("x", "y"), (4, 2), "tanh", 0.03, 10, 50, 0)
    assert s.sizes == (2, 4, 2, 1) and s.output == "tanh"
    for layer in s.layers:
        assert np.all(np.abs(layer.W) <= 0.5) and np.all(layer.b == 0.1)
    assert len(s.F_train) == 250


def test_one_sgd_step_by_hand():
    # no hidden layer, one batch of the whole set: w <- w - lr * mean((o - t)(1 - o^2) x)
    s = en.Session({"layers": [], "batch_size": 250, "learning_rate": 0.1})
    W0, b0 = s.layers[0].W.copy(), s.layers[0].b.copy()
    X, t = s.F_train, s.data.y_train
    o = np.tanh(X @ W0 + b0)[:, 0]
    d = (o - t) * (1 - o * o)
    s.step(1)
    np.testing.assert_allclose(s.layers[0].W[:, 0], W0[:, 0] - 0.1 * (X * d[:, None]).mean(0))
    np.testing.assert_allclose(s.layers[0].b, b0 - 0.1 * d.mean())


def test_l2_and_l1_as_the_original():
    base = {"layers": [], "batch_size": 250, "learning_rate": 0.1}
    a = en.Session(base)
    a.step(1)
    w_data = a.layers[0].W.copy()                 # after the data step alone
    w0 = en.Session(base).layers[0].W.copy()
    b = en.Session(base | {"regularization": "L2", "reg_rate": 0.3})
    b.step(1)
    np.testing.assert_allclose(b.layers[0].W, w_data - 0.1 * 0.3 * w0)
    c = en.Session(base | {"regularization": "L1", "reg_rate": 3})
    c.step(1)
    new = w_data - 0.1 * 3 * np.sign(w0)
    crossed = w_data * new < 0
    assert crossed.any() and not crossed.all()
    np.testing.assert_allclose(c.layers[0].W, np.where(crossed, 0, new))
    # a pruned weight is dead: it stays at zero and is reported so
    c.step(2)
    assert np.all(c.layers[0].W[crossed] == 0)
    assert np.all(np.array(c.weights()[0]["dead"], bool)[crossed])


@pytest.mark.parametrize("opt", en.OPTIMIZERS)
def test_every_optimizer_learns_the_default_problem(opt):
    lr = {"sgd": 0.03, "momentum": 0.03, "adagrad": 0.1}.get(opt, 0.01)
    s = en.Session({"optimizer": opt, "learning_rate": lr, "layers": [8]})
    first = s.history["test"][-1]
    s.step(40)
    assert s.history["test"][-1] < 0.5 * first


@pytest.mark.parametrize("init", en.INITS)
def test_inits(init):
    s = en.Session({"init": init, "layers": [8, 8]})
    W = s.layers[1].W
    if init == "original":
        assert np.all(np.abs(W) <= 0.5) and np.all(s.layers[1].b == 0.1)
    elif init == "glorot":
        assert np.all(np.abs(W) <= np.sqrt(6 / 16)) and np.all(s.layers[1].b == 0)
    else:
        assert np.all(s.layers[1].b == 0) and W.std() > 0.2


def test_history_and_gradient_norms():
    s = en.Session({"layers": [4, 4, 4]})
    s.step(3)
    assert s.epoch == 3
    assert len(s.history["train"]) == len(s.history["test"]) == 4
    assert len(s.history["grad_norms"]) == 4
    assert all(len(g) == 4 and all(v >= 0 for v in g) for g in s.history["grad_norms"])


def test_divergence_is_caught_and_reported():
    s = en.Session({"dataset": "reg-plane", "learning_rate": 10, "layers": [8, 8],
                    "activation": "relu"})
    s.step(20)
    assert s.status == "diverged"
    assert np.all(np.isfinite(s.theta))
    f = s.frame()
    assert f["status"] == "diverged"


def test_maps_and_frame():
    s = en.Session({"layers": [3, 2]})
    inputs, hidden, out = s.maps()
    assert inputs.shape == (100, 100, 2) and [h.shape for h in hidden] == [
        (100, 100, 3), (100, 100, 2)] and out.shape == (100, 100)
    # row 0 is the top (x2 = 6), column 0 the left (x1 = -6)
    assert inputs[0, 0, 0] == -6 and inputs[0, 0, 1] == 6 and inputs[-1, -1, 1] == -6
    f = s.frame()
    assert [len(t) for t in f["thumbs"]] == [2, 3, 2, 1]
    assert set(f["accuracy"]) == {"train", "test"} and 0 <= f["accuracy"]["test"] <= 1
    assert en.Session({"dataset": "reg-plane"}).frame(maps=False)["accuracy"] is None
    import base64
    assert len(base64.b64decode(f["thumbs"][1][0])) == 100
    assert len(base64.b64decode(f["output"])) == 10000
    thumb = en._thumb(hidden[0][:, :, 0])
    np.testing.assert_allclose(thumb[0, 0], hidden[0][:10, :10, 0].mean())


def test_set_weight_and_validation():
    s = en.Session()
    s.set_weight(0, 1, 2, 0.75)
    assert s.layers[0].W[1, 2] == 0.75
    s.set_weight(1, -1, 0, -0.25)
    assert s.layers[1].b[0] == -0.25
    for args, msg in [((5, 0, 0, 1.0), "layer"), ((0, 2, 0, 1.0), "source"),
                      ((0, 0, 4, 1.0), "target"), ((0, 0, 0, float("nan")), "value"),
                      ((0, 0, 0, "1"), "value"), ((0, 0.5, 0, 1.0), "source")]:
        with pytest.raises(en.ConfigError, match=msg):
            s.set_weight(*args)


@pytest.mark.parametrize("bad,msg", [
    ({"dataset": "moons"}, "dataset"), ({"noise": 60}, "noise"), ({"noise": "5"}, "noise"),
    ({"layers": [0]}, "layers"), ({"layers": [4] * 11}, "at most"),
    ({"layers": [33]}, "layers"), ({"batch_size": 0}, "batch_size"),
    ({"learning_rate": -1}, "learning_rate"), ({"learning_rate": float("inf")}, "learning"),
    ({"features": []}, "at least one"), ({"features": ["z"]}, "unknown features"),
    ({"batch_norm": 1}, "batch_norm"), ({"colour": 1}, "unknown settings"),
    ({"seed": 1.5}, "seed"), ({"activation": None}, "activation"),
])
def test_config_validation(bad, msg):
    with pytest.raises(en.ConfigError, match=msg):
        en.Config.from_dict(bad)


def test_sessions_in_threads_equal_serial_runs():
    cfgs = [{"seed": 1}, {"seed": 2, "activation": "relu"}, {"dataset": "xor"}]
    serial = []
    for c in cfgs:
        s = en.Session(c)
        s.step(5)
        serial.append(s.theta.copy())
    sessions = [en.Session(c) for c in cfgs]

    def run(s):
        for _ in range(5):
            s.step(1)
            s.frame()

    threads = [threading.Thread(target=run, args=(s,)) for s in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s, th in zip(sessions, serial):
        np.testing.assert_array_equal(s.theta, th)


@pytest.mark.parametrize("cfg", [{"batch_norm": True, "layers": [5, 3]},
                                 {"loss": "cross_entropy", "activation": "relu"},
                                 {"dataset": "reg-plane", "layers": [3]}])
def test_export_predicts_as_the_playground(cfg):
    s = en.Session(cfg)
    s.step(5)
    model = en.to_estimator(s)
    X = np.random.default_rng(0).uniform(-6, 6, (300, 2))
    o = s.predict_raw(X)
    model = pickle.loads(pickle.dumps(model))
    if s.regression:
        np.testing.assert_allclose(model.predict(X), o, atol=1e-12)
    else:
        np.testing.assert_allclose(model.predict_proba(X)[:, 1], (o + 1) / 2, atol=1e-12)
        np.testing.assert_array_equal(model.predict(X), np.where(o > 0, 1, -1))
    snippet = en.to_snippet(s)
    compile(snippet, "<snippet>", "exec")
    assert "from_weights" in snippet


@pytest.mark.parametrize("cfg", [
    {}, {"optimizer": "adam", "learning_rate": 0.01}, {"loss": "cross_entropy"},
    {"regularization": "L2", "reg_rate": 0.01}, {"optimizer": "momentum"},
    {"optimizer": "rmsprop", "learning_rate": 0.01},
    {"optimizer": "adagrad", "learning_rate": 0.1, "dataset": "reg-gauss"},
])
def test_kernel_epochs_equal_the_numpy_path(cfg):
    fast = en.Session(cfg)
    if fast._kernels is None:
        pytest.skip("rosenblatt.kernels is not importable")
    assert fast.uses_kernels()
    slow = en.Session(cfg)
    slow._kernels = None
    assert not slow.uses_kernels()
    fast.step(3)
    slow.step(3)
    np.testing.assert_allclose(fast.theta, slow.theta, rtol=1e-10, atol=1e-12)
    # switching path mid-run keeps the optimizer state (soft change to L1 is not soft:
    # check a learning-rate change instead)
    fast.apply({"learning_rate": fast.config.learning_rate / 2})
    slow.apply({"learning_rate": slow.config.learning_rate / 2})
    fast.step(2)
    slow.step(2)
    np.testing.assert_allclose(fast.theta, slow.theta, rtol=1e-10, atol=1e-12)


def test_paths_for_the_original_extras():
    assert not en.Session({"regularization": "L1", "reg_rate": 0.01}).uses_kernels()
    assert not en.Session({"batch_norm": True}).uses_kernels()
    assert not en.Session({"regularization": "L2", "reg_rate": 0.01,
                           "optimizer": "adam"}).uses_kernels()
