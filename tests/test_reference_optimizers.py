"""The optimizer kernels against their textbook formulas, written out here.

``test_kernels.py`` checks that the compiled backends agree with the NumPy reference; this
file checks the reference itself (and, where available, every compiled backend) against
formulas computed element by element with Python floats, independently of the library:

* SGD with momentum (scikit-learn's ``SGDOptimizer``, Sutskever et al.'s Nesterov form)::

      v <- mu v - lr g
      p <- p + v                      (classical momentum)
      p <- p + mu v - lr g            (Nesterov, with the new v)

* Adagrad (Duchi et al.; PyTorch's placement of eps, outside the square root)::

      s <- s + g^2
      p <- p - lr g / (sqrt(s) + eps)

* RMSprop (Tieleman & Hinton; PyTorch's placement of eps)::

      s <- rho s + (1 - rho) g^2
      p <- p - lr g / (sqrt(s) + eps)

* Adam (Kingma & Ba, with bias correction folded into the step size as in their section 2
  and in scikit-learn's ``AdamOptimizer``; ``t`` is the step number, 1 for the first)::

      m <- b1 m + (1 - b1) g
      v <- b2 v + (1 - b2) g^2
      lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)
      p <- p - lr_t m / (sqrt(v) + eps)

* AdamW (Loshchilov & Hutter, decoupled weight decay as in PyTorch's ``AdamW``: the decay
  uses the weights before the step and the plain ``lr``, not ``lr_t``)::

      p <- p - lr wd p,  then the Adam step above.

eps is chosen large in some cases so that where it sits (inside or outside the square
root, scaled by the bias correction or not) changes the result well beyond rounding.
"""

import math

import numpy as np
import pytest
from conftest import compiled_backends_under_test
from rosenblatt import kernels as K

BACKENDS = ["numpy", *compiled_backends_under_test()]

# float64 results agree to rounding; float32 ones to a few float32 ulps of the formula
# evaluated in float64
RTOL = {np.float64: 1e-13, np.float32: 2e-6}


@pytest.fixture(params=BACKENDS)
def be(request):
    return request.param


@pytest.fixture(params=[np.float64, np.float32], ids=["f64", "f32"])
def dt(request):
    return request.param


def _vectors(n=37, seed=0):
    """Parameters, gradient, a signed state (momentum, first moment) and a non-negative one
    (squared-gradient sums); the first entries are hand-picked (zero gradient, zero state,
    a tiny gradient), the rest random. 37 entries: SIMD bodies and their tails."""
    rng = np.random.RandomState(seed)
    p = np.r_[[0.5, -1.25, 2.0, 0.0, -0.3, 1.0, 0.75], rng.randn(n - 7)]
    g = np.r_[[0.2, -0.4, 1.5, -2.0, 0.0, 1e-3, -0.05], rng.randn(n - 7)]
    signed = np.r_[[0.1, -0.2, 0.0, 0.3, -0.05, 0.0, 0.02], 0.3 * rng.randn(n - 7)]
    nonneg = np.r_[[0.0, 0.09, 1.0, 0.25, 4.0, 0.0, 0.01], rng.rand(n - 7)]
    return p, g, signed, nonneg


def _cast(dt, *arrays):
    return [np.ascontiguousarray(a, dtype=dt) for a in arrays]


def _close(actual, expected, dt, what):
    np.testing.assert_allclose(actual, expected, rtol=RTOL[dt], atol=RTOL[dt], err_msg=what)


# --------------------------------------------------------------------------------------
# literal one-element examples, worked by hand


def test_hand_worked_single_steps(be):
    def one(v):
        return np.array([v], dtype=np.float64)

    # sgd, momentum 0.5, lr 0.1: p = 1, g = 2, v = 0.4
    #   v = 0.5 * 0.4 - 0.1 * 2 = 0.0;  classical p = 1 + 0 = 1.0
    #   nesterov p = 1 + 0.5 * 0.0 - 0.1 * 2 = 0.8
    for nesterov, want in ((False, 1.0), (True, 0.8)):
        p, v = one(1.0), one(0.4)
        K.sgd_step(p, one(2.0), v, lr=0.1, momentum=0.5, nesterov=nesterov, backend=be)
        assert v[0] == pytest.approx(0.0, abs=1e-15) and p[0] == pytest.approx(want)

    # adagrad, lr 0.1, eps 0.5: p = 1, g = 0.5, s = 0.75
    #   s = 0.75 + 0.25 = 1;  p = 1 - 0.1 * 0.5 / (1 + 0.5) = 1 - 1/30
    #   (eps inside the root would give 1 - 0.05 / sqrt(1.5) = 0.95918...)
    p, s = one(1.0), one(0.75)
    K.adagrad_step(p, one(0.5), s, lr=0.1, eps=0.5, backend=be)
    assert s[0] == pytest.approx(1.0) and p[0] == pytest.approx(1.0 - 1.0 / 30.0)

    # rmsprop, lr 0.1, rho 0.75, eps 0.5: p = 1, g = 2, s = 1
    #   s = 0.75 * 1 + 0.25 * 4 = 1.75;  p = 1 - 0.1 * 2 / (sqrt(1.75) + 0.5)
    p, s = one(1.0), one(1.0)
    K.rmsprop_step(p, one(2.0), s, lr=0.1, rho=0.75, eps=0.5, backend=be)
    assert s[0] == pytest.approx(1.75)
    assert p[0] == pytest.approx(1.0 - 0.2 / (math.sqrt(1.75) + 0.5))  # 0.8894...

    # adam, first step (t = 1), lr 0.1, b1 0.5, b2 0.75, eps 0.25: p = 1, g = 2, m = v = 0
    #   m = 0.5 * 2 = 1;  v = 0.25 * 4 = 1;  lr_t = 0.1 * sqrt(0.25) / 0.5 = 0.1
    #   p = 1 - 0.1 * 1 / (1 + 0.25) = 0.92
    #   (Algorithm 1's mhat / (sqrt(vhat) + eps) would give 1 - 0.1 * 2 / (2 + 0.25))
    p, m, v = one(1.0), one(0.0), one(0.0)
    K.adam_step(p, one(2.0), m, v, t=1, lr=0.1, beta1=0.5, beta2=0.75, eps=0.25, backend=be)
    assert (m[0], v[0]) == (pytest.approx(1.0), pytest.approx(1.0))
    assert p[0] == pytest.approx(0.92)

    # adamw, same with weight decay 0.5: p = 1 - 0.1 * 0.5 * 1 - 0.08 = 0.87
    p, m, v = one(1.0), one(0.0), one(0.0)
    K.adam_step(p, one(2.0), m, v, t=1, lr=0.1, beta1=0.5, beta2=0.75, eps=0.25,
                weight_decay=0.5, backend=be)
    assert p[0] == pytest.approx(0.87)


# --------------------------------------------------------------------------------------
# the formulas element by element, several steps, state carried over


@pytest.mark.parametrize("nesterov", [False, True], ids=["classical", "nesterov"])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_step_formula(be, dt, momentum, nesterov):
    p0, g0, v0, _ = _vectors()
    lr = 0.05
    p, g, v = _cast(dt, p0, g0, v0)
    grads = [g, _cast(dt, -0.5 * g0[::-1])[0]]
    want_p, want_v = [float(x) for x in p], [float(x) for x in v]
    for step_g in grads:
        K.sgd_step(p, step_g, v, lr=lr, momentum=momentum, nesterov=nesterov, backend=be)
        for i, gi in enumerate(float(x) for x in step_g):
            want_v[i] = momentum * want_v[i] - lr * gi
            want_p[i] += (momentum * want_v[i] - lr * gi) if nesterov else want_v[i]
    _close(v, want_v, dt, "velocity")
    _close(p, want_p, dt, "params")


@pytest.mark.parametrize("eps", [1e-8, 0.3])
def test_adagrad_step_formula(be, dt, eps):
    p0, g0, _, s0 = _vectors()
    lr = 0.1
    p, g, s = _cast(dt, p0, g0, s0)
    grads = [g, _cast(dt, 2.0 * g0[::-1])[0]]
    want_p, want_s = [float(x) for x in p], [float(x) for x in s]
    for step_g in grads:
        K.adagrad_step(p, step_g, s, lr=lr, eps=eps, backend=be)
        for i, gi in enumerate(float(x) for x in step_g):
            want_s[i] += gi * gi
            want_p[i] -= lr * gi / (math.sqrt(want_s[i]) + eps)
    _close(s, want_s, dt, "accumulator")
    _close(p, want_p, dt, "params")


@pytest.mark.parametrize("rho", [0.0, 0.9, 0.5])
@pytest.mark.parametrize("eps", [1e-8, 0.3])
def test_rmsprop_step_formula(be, dt, rho, eps):
    p0, g0, _, s0 = _vectors()
    lr = 0.01
    p, g, s = _cast(dt, p0, g0, s0)
    grads = [g, _cast(dt, 2.0 * g0[::-1])[0]]
    want_p, want_s = [float(x) for x in p], [float(x) for x in s]
    for step_g in grads:
        K.rmsprop_step(p, step_g, s, lr=lr, rho=rho, eps=eps, backend=be)
        for i, gi in enumerate(float(x) for x in step_g):
            want_s[i] = rho * want_s[i] + (1.0 - rho) * gi * gi
            want_p[i] -= lr * gi / (math.sqrt(want_s[i]) + eps)
    _close(s, want_s, dt, "squared average")
    _close(p, want_p, dt, "params")


@pytest.mark.parametrize("wd", [0.0, 0.2], ids=["adam", "adamw"])
@pytest.mark.parametrize("t0", [1, 5])
@pytest.mark.parametrize("eps", [1e-8, 0.3])
def test_adam_step_formula(be, dt, wd, t0, eps):
    p0, g0, m0, v0 = _vectors()
    lr, b1, b2 = 0.05, 0.8, 0.95
    p, g, m, v = _cast(dt, p0, g0, m0, v0)
    if t0 == 1:  # a fresh optimizer starts from zero moments
        m[:] = 0.0
        v[:] = 0.0
    grads = [g, _cast(dt, 2.0 * g0[::-1])[0], _cast(dt, -g0)[0]]
    want_p = [float(x) for x in p]
    want_m, want_v = [float(x) for x in m], [float(x) for x in v]
    for k, step_g in enumerate(grads):
        t = t0 + k
        K.adam_step(p, step_g, m, v, t=t, lr=lr, beta1=b1, beta2=b2, eps=eps,
                    weight_decay=wd, backend=be)
        lr_t = lr * math.sqrt(1.0 - b2**t) / (1.0 - b1**t)
        for i, gi in enumerate(float(x) for x in step_g):
            want_p[i] -= lr * wd * want_p[i]  # decoupled decay, from the old weights
            want_m[i] = b1 * want_m[i] + (1.0 - b1) * gi
            want_v[i] = b2 * want_v[i] + (1.0 - b2) * gi * gi
            want_p[i] -= lr_t * want_m[i] / (math.sqrt(want_v[i]) + eps)
    _close(m, want_m, dt, "first moment")
    _close(v, want_v, dt, "second moment")
    _close(p, want_p, dt, "params")


def test_adamw_decay_alone_is_geometric(be):
    # zero gradients leave the moments at zero and the Adam term at 0 / (0 + eps) = 0, so
    # k AdamW steps multiply the weights by (1 - lr wd)^k - the decay is not scaled by
    # the bias-corrected lr_t (which is 0.1 * sqrt(1 - 0.999) / 0.1 = 0.0316 at t = 1)
    p0, _, _, _ = _vectors()
    p, g, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0), np.zeros_like(p0)
    lr, wd = 0.1, 0.3
    for t in range(1, 4):
        K.adam_step(p, g, m, v, t=t, lr=lr, weight_decay=wd, backend=be)
    np.testing.assert_allclose(p, p0 * (1.0 - lr * wd) ** 3, rtol=1e-14)
    assert not m.any() and not v.any()


def test_adam_and_sgd_match_scikit_learn_optimizers(be):
    # scikit-learn's own optimizer classes as a second oracle (its MLPs use them)
    opt = pytest.importorskip("sklearn.neural_network._stochastic_optimizers")
    p0, g0, _, _ = _vectors()
    grads = [g0, 2.0 * g0[::-1], -g0]
    for nesterov in (False, True):
        sk_p = [p0.copy()]
        sk = opt.SGDOptimizer(sk_p, learning_rate_init=0.05, momentum=0.9, nesterov=nesterov)
        p, v = p0.copy(), np.zeros_like(p0)
        for g in grads:
            sk.update_params(sk_p, [g])
            K.sgd_step(p, g, v, lr=0.05, momentum=0.9, nesterov=nesterov, backend=be)
        np.testing.assert_allclose(p, sk_p[0], rtol=1e-13, atol=1e-15)
    sk_p = [p0.copy()]
    sk = opt.AdamOptimizer(sk_p, learning_rate_init=0.05, beta_1=0.8, beta_2=0.95,
                           epsilon=0.3)
    p, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
    for t, g in enumerate(grads, start=1):
        sk.update_params(sk_p, [g])
        K.adam_step(p, g, m, v, t=t, lr=0.05, beta1=0.8, beta2=0.95, eps=0.3, backend=be)
    np.testing.assert_allclose(p, sk_p[0], rtol=1e-13, atol=1e-15)
