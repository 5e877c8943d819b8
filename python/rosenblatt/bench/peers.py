"""The same network trained by each peer: scikit-learn, PyTorch, JAX and rosenblatt.

Every adapter trains the *same model* on the same data: same layer sizes, activation,
optimizer and hyperparameters, same batch size, same initial weights (scikit-learn's
Glorot-uniform draw, replicated here for the peers that do not share its RNG) and one
epoch per call. scikit-learn's L2 term ``alpha`` adds ``alpha W / batch`` to each weight
gradient; PyTorch and JAX get the same term as weight decay on the weights only.

Each MLP adapter returns ``(epoch, proba, set_threads, note)``: ``epoch()`` trains one
epoch, ``proba(X)`` gives class probabilities (float64, one column per class) for the
checks, ``set_threads`` (or None) sets the peer's own pool, ``note`` says anything the
row must carry.
"""

from __future__ import annotations

import importlib.util
import time
import warnings
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from scipy.special import expit, softmax

from .core import Unavailable

__all__ = [
    "MLPSpec",
    "glorot_init",
    "have",
    "jax_mlp",
    "rosenblatt_mlp",
    "rosenblatt_perceptron",
    "sklearn_mlp",
    "sklearn_perceptron",
    "torch_mlp",
]


def have(module: str) -> bool:
    """True when ``module`` is installed (without importing it)."""
    return importlib.util.find_spec(module) is not None


@dataclass(frozen=True)
class MLPSpec:
    """One MLP training problem (scikit-learn's parameter names)."""

    hidden: tuple
    activation: str
    solver: str            # "adam" or "sgd"
    lr: float
    batch: int
    n_classes: int
    alpha: float = 1e-4
    momentum: float = 0.0  # sgd only; the playground trains with plain sgd
    seed: int = 0

    def layer_sizes(self, n_features):
        n_out = 1 if self.n_classes == 2 else self.n_classes
        return [n_features, *self.hidden, n_out]

    def sklearn_params(self):
        return {"hidden_layer_sizes": self.hidden, "activation": self.activation,
                "solver": self.solver, "learning_rate_init": self.lr,
                "batch_size": self.batch, "alpha": self.alpha, "momentum": self.momentum,
                "nesterovs_momentum": False, "shuffle": True, "random_state": self.seed,
                "max_iter": 1}

    def flops_per_row(self, n_features):
        """Forward 2 f_in f_out per layer; backward 4 f_in f_out, minus the first
        layer's dX (never computed)."""
        ls = self.layer_sizes(n_features)
        macs = [a * b for a, b in pairwise(ls)]
        return 2 * sum(macs) + 4 * sum(macs) - 2 * macs[0]


def glorot_init(spec: MLPSpec, n_features: int, dtype):
    """Initial (W, b) per layer exactly as scikit-learn draws them for ``spec.seed``."""
    rs = np.random.RandomState(spec.seed)
    ls = spec.layer_sizes(n_features)
    out = []
    for fan_in, fan_out in pairwise(ls):
        factor = 2.0 if spec.activation == "logistic" else 6.0
        bound = np.sqrt(factor / (fan_in + fan_out))
        W = rs.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype)
        b = rs.uniform(-bound, bound, fan_out).astype(dtype)
        out.append((W, b))
    return out


def _quiet():
    """Silence the ConvergenceWarning of one-epoch fits (the suite runs under -W error)."""
    from sklearn.exceptions import ConvergenceWarning

    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.simplefilter("ignore", ConvergenceWarning)
    return ctx


def _proba2(p):
    p = np.asarray(p, dtype=np.float64)
    if p.ndim == 1 or p.shape[1] == 1:
        p = p.reshape(-1)
        return np.column_stack([1.0 - p, p])
    return p


# --------------------------------------------------------------------------------------
# scikit-learn


def _epochs_in_fit(est, X, y, k):
    """A self-timed unit of ``k`` epochs inside one warm-started ``fit``; returns seconds
    per epoch. Input validation (milliseconds in scikit-learn's utilities, for both
    libraries) is then paid once per ``k`` epochs, as in real training, instead of once
    per epoch as with ``partial_fit`` - which on a playground-sized net costs more than
    the epoch itself."""
    est.set_params(warm_start=True, max_iter=k, tol=0.0, n_iter_no_change=10**9,
                   shuffle=True)

    def unit():
        ctx = _quiet()
        try:
            t0 = time.perf_counter()
            est.fit(X, y)
            return (time.perf_counter() - t0) / k
        finally:
            ctx.__exit__(None, None, None)

    return unit


def _mlp_units(est, X, y, n_classes, epochs_per_fit):
    """The adapter tuple of a scikit-learn-API MLP classifier (scikit-learn's or ours):
    one ``partial_fit`` per timed unit, or ``epochs_per_fit`` epochs in one warm-started
    ``fit`` (self-timed, seconds per epoch)."""
    proba = est.predict_proba
    if epochs_per_fit:
        return (_epochs_in_fit(est, X, y, epochs_per_fit), proba, None,
                f"{epochs_per_fit} epochs per fit")
    classes = np.arange(n_classes)

    def epoch():
        ctx = _quiet()
        try:
            est.partial_fit(X, y, classes=classes)
        finally:
            ctx.__exit__(None, None, None)

    return epoch, proba, None, ""


def sklearn_mlp(spec: MLPSpec, X, y, threads, epochs_per_fit=0):
    """scikit-learn's MLPClassifier; one ``partial_fit`` per epoch, or ``epochs_per_fit``
    epochs per warm-started ``fit`` (self-timed, per epoch). BLAS threads are set by the
    runner through threadpoolctl."""
    from sklearn.neural_network import MLPClassifier

    return _mlp_units(MLPClassifier(**spec.sklearn_params()), X, y, spec.n_classes,
                      epochs_per_fit)


def sklearn_perceptron(X, y, classes, threads, seed=0):
    """scikit-learn's Perceptron, one ``partial_fit`` per epoch, OvR over ``threads``."""
    from sklearn.linear_model import Perceptron

    est = Perceptron(random_state=seed, n_jobs=threads, shuffle=True)

    def epoch():
        ctx = _quiet()
        try:
            est.partial_fit(X, y, classes=classes)
        finally:
            ctx.__exit__(None, None, None)

    return epoch, lambda Xe: est.predict(Xe)


# --------------------------------------------------------------------------------------
# PyTorch


def torch_mlp(spec: MLPSpec, X, y, threads):
    """A plain PyTorch eager loop: randperm, index, forward, loss, backward, step."""
    if not have("torch"):
        raise Unavailable("PyTorch is not installed (pip install torch==2.13.0 for the CPU "
                          "build)")
    import torch

    torch.manual_seed(spec.seed)
    tdt = torch.float64 if X.dtype == np.float64 else torch.float32
    acts = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "logistic": torch.nn.Sigmoid,
            "identity": torch.nn.Identity}
    layers = []
    init = glorot_init(spec, X.shape[1], X.dtype)
    for i, (W, b) in enumerate(init):
        lin = torch.nn.Linear(W.shape[0], W.shape[1], dtype=tdt)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        if i < len(init) - 1:
            layers.append(acts[spec.activation]())
    model = torch.nn.Sequential(*layers)
    binary = spec.n_classes == 2
    Xt = torch.from_numpy(X)
    if binary:
        yt = torch.from_numpy(y.astype(X.dtype)).reshape(-1, 1)
        lossf = torch.nn.BCEWithLogitsLoss()
    else:
        yt = torch.from_numpy(y.astype(np.int64))
        lossf = torch.nn.CrossEntropyLoss()
    weights = [m.weight for m in model if isinstance(m, torch.nn.Linear)]
    biases = [m.bias for m in model if isinstance(m, torch.nn.Linear)]
    groups = [{"params": weights, "weight_decay": spec.alpha / spec.batch},
              {"params": biases, "weight_decay": 0.0}]
    if spec.solver == "adam":
        opt = torch.optim.Adam(groups, lr=spec.lr, betas=(0.9, 0.999), eps=1e-8)
    else:
        opt = torch.optim.SGD(groups, lr=spec.lr, momentum=spec.momentum)
    gen = torch.Generator().manual_seed(spec.seed)
    n, bs = X.shape[0], spec.batch

    def epoch():
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, bs):
            idx = perm[i:i + bs]
            opt.zero_grad(set_to_none=True)
            loss = lossf(model(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()

    def proba(Xe):
        with torch.no_grad():
            z = model(torch.from_numpy(np.ascontiguousarray(Xe, dtype=X.dtype)))
            p = torch.sigmoid(z) if binary else torch.softmax(z, dim=1)
        return _proba2(p.double().numpy())

    return epoch, proba, lambda: torch.set_num_threads(threads), ""


# --------------------------------------------------------------------------------------
# JAX


def jax_mlp(spec: MLPSpec, X, y, threads):
    """JAX's strongest form: the whole epoch compiled (``jit`` over ``lax.scan`` of the
    minibatch steps). XLA's CPU thread pool is fixed when JAX starts, so JAX runs on every
    core only (the row says so). Rows beyond the last full batch are skipped, because
    ``scan`` needs equal batches; the workloads use sizes divisible by the batch."""
    if not have("jax"):
        raise Unavailable("JAX is not installed (pip install jax)")
    import jax
    import jax.numpy as jnp
    from jax import lax

    if X.dtype == np.float64:
        jax.config.update("jax_enable_x64", True)
    binary = spec.n_classes == 2
    init = glorot_init(spec, X.shape[1], X.dtype)
    params = [(jnp.asarray(W), jnp.asarray(b)) for W, b in init]
    f = {"relu": jax.nn.relu, "tanh": jnp.tanh, "logistic": jax.nn.sigmoid,
         "identity": lambda z: z}[spec.activation]
    bs, alpha, lr = spec.batch, spec.alpha, spec.lr
    nb = X.shape[0] // bs
    Xd = jnp.asarray(X)
    Yd = jnp.asarray(y.astype(X.dtype) if binary else y.astype(np.int32))

    def forward(ps, x):
        for W, b in ps[:-1]:
            x = f(x @ W + b)
        W, b = ps[-1]
        return x @ W + b

    def loss(ps, xb, yb):
        z = forward(ps, xb)
        if binary:
            z = z[:, 0]
            val = jnp.mean(jnp.logaddexp(0.0, z) - yb * z)
        else:
            val = -jnp.mean(jax.nn.log_softmax(z)[jnp.arange(z.shape[0]), yb])
        return val + 0.5 * alpha / bs * sum(jnp.sum(W * W) for W, _ in ps)

    grad = jax.grad(loss)
    b1, b2, eps = 0.9, 0.999, 1e-8

    def step(carry, ib):
        ps, m, v, t = carry
        g = grad(ps, Xd[ib], Yd[ib])
        if spec.solver == "adam":
            t = t + 1
            m = jax.tree_util.tree_map(lambda a, gg: b1 * a + (1 - b1) * gg, m, g)
            v = jax.tree_util.tree_map(lambda a, gg: b2 * a + (1 - b2) * gg * gg, v, g)
            lr_t = lr * jnp.sqrt(1 - b2 ** t) / (1 - b1 ** t)
            ps = jax.tree_util.tree_map(lambda p, a, c: p - lr_t * a / (jnp.sqrt(c) + eps),
                                        ps, m, v)
        else:
            ps = jax.tree_util.tree_map(lambda p, gg: p - lr * gg, ps, g)
        return (ps, m, v, t), None

    @jax.jit
    def run_epoch(ps, m, v, t, idx):
        (ps, m, v, t), _ = lax.scan(step, (ps, m, v, t), idx)
        return ps, m, v, t

    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    state = [params, zeros, zeros, jnp.asarray(0.0, dtype=X.dtype)]
    rng = np.random.default_rng(spec.seed)
    fwd = jax.jit(forward)

    def epoch():
        idx = rng.permutation(X.shape[0])[:nb * bs].reshape(nb, bs).astype(np.int32)
        out = run_epoch(*state, jnp.asarray(idx))
        jax.block_until_ready(out)
        state[:] = out

    def proba(Xe):
        z = fwd(state[0], jnp.asarray(Xe, dtype=X.dtype))
        z = np.asarray(z, dtype=np.float64)
        if binary:
            return _proba2(expit(z[:, 0]))
        return softmax(z, axis=1)

    note = "XLA CPU: all cores (its pool is fixed at start)"
    if X.shape[0] % bs:
        note += f"; {X.shape[0] % bs} rows past the last full batch skipped"
    return epoch, proba, None, note


# --------------------------------------------------------------------------------------
# rosenblatt


def _rosenblatt_estimator(name):
    import rosenblatt

    try:
        est = getattr(rosenblatt, name)
    except (ImportError, AttributeError) as exc:
        # the estimators land in stages; until then the row says what is missing
        raise Unavailable(f"rosenblatt.{name} is not importable yet ({exc})") from None
    return est


def rosenblatt_mlp(spec: MLPSpec, X, y, backend, threads, epochs_per_fit=0):
    """rosenblatt's MLPClassifier (``backend``, ``n_threads``), one ``partial_fit`` per
    epoch. Before the estimator exists, falls back to the kernel-level ``Trainer`` with
    scikit-learn's initial weights (the row says so)."""
    from .. import kernels as K

    try:
        K.resolve_backend(backend)
    except (RuntimeError, ValueError) as exc:
        raise Unavailable(str(exc)) from None
    try:
        cls = _rosenblatt_estimator("MLPClassifier")
    except Unavailable as exc:
        return _trainer_mlp(spec, X, y, backend, threads, note=f"{exc}: via kernels.Trainer")
    try:
        est = cls(**spec.sklearn_params(), backend=backend, n_threads=threads)
    except TypeError as exc:
        raise Unavailable(f"MLPClassifier does not take backend/n_threads: {exc}") from None
    return _mlp_units(est, X, y, spec.n_classes, epochs_per_fit)


def _trainer_mlp(spec, X, y, backend, threads, note):
    from .. import kernels as K

    binary = spec.n_classes == 2
    ls = spec.layer_sizes(X.shape[1])
    acts = [spec.activation] * len(spec.hidden) + ["logistic" if binary else "softmax"]
    if binary:
        Y = y.astype(X.dtype).reshape(-1, 1)
    else:
        Y = np.zeros((X.shape[0], spec.n_classes), dtype=X.dtype)
        Y[np.arange(X.shape[0]), y] = 1
    params = np.concatenate([np.concatenate([W.ravel(), b]) for W, b in
                             glorot_init(spec, X.shape[1], X.dtype)]).astype(X.dtype)
    hyper = {"lr": spec.lr, "alpha": spec.alpha}
    if spec.solver == "sgd":
        hyper["momentum"] = spec.momentum
    tr = K.Trainer(X, Y, params, ls, acts, "binary_log_loss" if binary else "log_loss",
                   spec.solver, hyper, spec.batch, backend=backend, n_threads=threads)
    rng = np.random.default_rng(spec.seed)

    def epoch():
        tr.run_epoch(rng.permutation(X.shape[0]).astype(np.int64))

    def proba(Xe):
        Xe = np.ascontiguousarray(Xe, dtype=X.dtype)
        return _proba2(K.mlp_forward(Xe, params, ls, acts, backend=backend,
                                     n_threads=threads))

    return epoch, proba, None, note


def rosenblatt_perceptron(X, y, classes, backend, threads, seed=0, rule="sklearn"):
    """rosenblatt's Perceptron, one ``partial_fit`` per epoch: scikit-learn's rule (the
    same model as scikit-learn's), or ``rule="rosenblatt"`` (all outputs in one pass)."""
    from .. import kernels as K

    try:
        K.resolve_backend(backend)
    except (RuntimeError, ValueError) as exc:
        raise Unavailable(str(exc)) from None
    cls = _rosenblatt_estimator("Perceptron")
    try:
        est = cls(random_state=seed, shuffle=True, backend=backend, n_threads=threads,
                  **({} if rule == "sklearn" else {"rule": rule}))
    except TypeError as exc:
        raise Unavailable(f"Perceptron does not take backend/n_threads: {exc}") from None

    def epoch():
        ctx = _quiet()
        try:
            est.partial_fit(X, y, classes=classes)
        finally:
            ctx.__exit__(None, None, None)

    return epoch, lambda Xe: est.predict(Xe)
