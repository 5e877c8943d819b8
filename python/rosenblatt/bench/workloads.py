"""The workloads of PERFORMANCE.md, each with its contenders and its check.

Groups: ``kernel`` (dense forward / fused layer / backward at MLP, large and tiny shapes,
plus a batch sweep for the GFLOP/s-vs-batch plot, and an Adam step over the fashion
network's parameters), ``train`` (fashion-shaped epochs,
playground nets), ``perceptron``, ``predict`` (latency), ``import`` and ``memory``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from typing import ClassVar

import numpy as np
from scipy.special import expit, softmax

from .core import Config, Contender, Runner, Unavailable, Workload
from .machine import all_threads
from .peers import (
    MLPSpec,
    glorot_init,
    have,
    jax_mlp,
    rosenblatt_mlp,
    rosenblatt_perceptron,
    sklearn_mlp,
    sklearn_perceptron,
    torch_mlp,
)

__all__ = [
    "ImportWorkload",
    "KernelWorkload",
    "MemoryWorkload",
    "OptimizerWorkload",
    "PerceptronWorkload",
    "PredictWorkload",
    "TrainWorkload",
    "build_workloads",
]

BACKENDS = ("cpp", "numba", "numpy")


def _short(dtype):
    return {"float32": "f32", "float64": "f64"}[dtype]


def _peer(cfg: Config, name: str) -> bool:
    return cfg.peers is None or name in cfg.peers


def _backends(cfg: Config, heavy=False):
    """Backends to run: every one gets a row even when unavailable (the row says why,
    so a reader sees what is not measured). ``heavy`` workloads (training, Perceptron,
    memory) leave the NumPy reference out in --quick unless --backends names it."""
    if cfg.backends is not None:
        return list(cfg.backends)
    if heavy and not cfg.s("reference_everywhere"):
        return [b for b in BACKENDS if b != "numpy"]
    return list(BACKENDS)


def _rb(backend):
    return f"rosenblatt[{backend}]"


def _rel_err(out, ref):
    out = np.asarray(out, dtype=np.float64)
    scale = max(float(np.max(np.abs(ref))) if ref.size else 0.0, 1e-30)
    if out.shape != ref.shape:
        return np.inf
    if not np.all(np.isfinite(out)):
        return np.inf
    return float(np.max(np.abs(out - ref))) / scale if ref.size else 0.0


def _kernels_for(backend):
    """``rosenblatt.kernels``, once ``backend`` is known to run here (else Unavailable:
    the contender's row says why)."""
    from .. import kernels as K

    try:
        K.resolve_backend(backend)
    except (RuntimeError, ValueError) as exc:
        raise Unavailable(str(exc)) from None
    return K


# --------------------------------------------------------------------------------------
# kernels


class KernelWorkload(Workload):
    """One dense-layer kernel at one shape ``n x k @ k x m`` and dtype.

    kind:
      ``forward``  GEMM: numpy ``matmul(X, W)`` vs rosenblatt ``dense_forward`` (identity;
                   it also adds the bias, numpy does not - the comparison favours numpy);
      ``fused``    the layer ``f(X W + b)``: numpy's three calls (matmul, += b, f) vs one
                   fused ``dense_forward``;
      ``backward`` ``dW = X^T dZ``, ``db = sum dZ``, ``dX = dZ W^T`` (with ``f'`` fused when
                   the activation is not identity): numpy's calls vs ``dense_backward``.
    Every output is checked against a float64 product of the same inputs.
    """

    group = "kernel"
    data = ("X", "W", "b", "A", "dA", "ref", "ref_rb")
    baseline = "numpy"

    def __init__(self, kind, dtype, shape, activation="identity", sweep=False):
        self.kind, self.shape, self.activation = kind, tuple(shape), activation
        self.dtype = dtype
        n, k, m = shape
        self.id = f"kernel/{kind}/{dtype}/{n}x{k}x{m}"
        if kind != "forward":
            self.id += f"/{activation}"
        self.sweep = sweep
        label = {"forward": "dense forward", "fused": f"fused layer ({activation})",
                 "backward": "dense backward" + (f" ({activation})"
                                                 if activation != "identity" else "")}[kind]
        self.title = f"{label} {_short(dtype)} {n}x{k}@{k}x{m}"
        self.flops = (2.0 if kind in ("forward", "fused") else 4.0) * n * k * m
        self.short = n * k * m < 100_000

    def setup(self, cfg):
        n, k, m = self.shape
        rng = np.random.default_rng(42)
        dt = np.dtype(self.dtype)
        self.X = rng.uniform(-1, 1, (n, k)).astype(dt)
        self.W = (rng.standard_normal((k, m)) / np.sqrt(k)).astype(dt)
        self.b = rng.uniform(-0.5, 0.5, m).astype(dt)
        X, W, b = (a.astype(np.float64) for a in (self.X, self.W, self.b))
        if self.kind in ("forward", "fused"):
            z = X @ W + (b if self.kind == "fused" else 0.0)
            self.ref = {"A": _act(z, self.activation)}
            if self.kind == "forward":
                self.ref_rb = {"A": X @ W + b}  # rosenblatt adds the bias
        else:
            self.A = np.tanh(rng.uniform(-2, 2, (n, m))).astype(dt) \
                if self.activation == "tanh" else rng.uniform(-1, 1, (n, m)).astype(dt)
            self.dA = rng.uniform(-1, 1, (n, m)).astype(dt)
            A, dA = self.A.astype(np.float64), self.dA.astype(np.float64)
            dZ = dA * (1 - A * A) if self.activation == "tanh" else dA
            self.ref = {"dW": X.T @ dZ, "db": dZ.sum(axis=0), "dX": dZ @ W.T}
        eps = np.finfo(dt).eps
        # rounding of a length-k reduction grows like sqrt(k) eps; 200x leaves room for
        # blocked summation orders while a wrong kernel is off by O(1)
        self.tol = 200 * eps * max(1.0, np.sqrt(k))

    def contenders(self, cfg):
        out = []
        for t in cfg.threads:
            if _peer(cfg, "numpy"):
                out.append(Contender("numpy", t, self._numpy))
        for be in _backends(cfg):
            for t in cfg.threads:
                out.append(Contender(_rb(be), t, lambda be=be, t=t: self._rosenblatt(be, t),
                                     rosenblatt=True))
        return out

    def _numpy(self):
        X, W, b = self.X, self.W, self.b
        n, k, m = self.shape
        if self.kind == "forward":
            A = np.empty((n, m), dtype=X.dtype)

            def run():
                np.matmul(X, W, out=A)
            return Runner(run, lambda: {"A": A})
        if self.kind == "fused":
            A = np.empty((n, m), dtype=X.dtype)
            f = _numpy_act(self.activation)

            def run():
                np.matmul(X, W, out=A)
                np.add(A, b, out=A)
                f(A)
            return Runner(run, lambda: {"A": A})
        Aout, dA = self.A, self.dA
        dW = np.empty((k, m), dtype=X.dtype)
        db = np.empty(m, dtype=X.dtype)
        dX = np.empty((n, k), dtype=X.dtype)
        WT = W.T
        XT = X.T
        tanh = self.activation == "tanh"

        def run():
            dZ = dA * (1 - Aout * Aout) if tanh else dA
            np.matmul(XT, dZ, out=dW)
            np.sum(dZ, axis=0, out=db)
            np.matmul(dZ, WT, out=dX)
        return Runner(run, lambda: {"dW": dW, "db": db, "dX": dX})

    def _rosenblatt(self, be, t):
        K = _kernels_for(be)
        X, W, b = self.X, self.W, self.b
        n, k, m = self.shape
        if self.kind in ("forward", "fused"):
            A = np.empty((n, m), dtype=X.dtype)
            act = self.activation

            def run():
                K.dense_forward(X, W, b, act, out=A, backend=be, n_threads=t)
            return Runner(run, lambda: {"A": A})
        Aout, dA, act = self.A, self.dA, self.activation
        # preallocated outputs, as numpy's matmul(out=) gets them
        outs = (np.empty((k, m), X.dtype), np.empty(m, X.dtype), np.empty((n, k), X.dtype))

        def run():
            K.dense_backward(X, W, Aout, dA, act, out=outs, backend=be, n_threads=t)
        return Runner(run, lambda: dict(zip(("dW", "db", "dX"), outs)))

    def check(self, outputs):
        verdicts = {}
        for key, out in outputs.items():
            ref = self.ref_rb if (self.kind == "forward" and key[0] != "numpy") else self.ref
            errs = {name: _rel_err(out.get(name), r) for name, r in ref.items()}
            worst = max(errs.values())
            ok = worst <= self.tol
            detail = {"max_rel_err": worst, "tol": self.tol}
            if not ok:
                bad = max(errs, key=errs.get)
                detail["why"] = (f"{bad} differs from the float64 reference: max rel err "
                                 f"{worst:.3g} > tol {self.tol:.3g}")
            verdicts[key] = (ok, detail)
        return verdicts


class OptimizerWorkload(Workload):
    """One Adam step (scikit-learn's update rule) over the flat parameters of a network:
    NumPy's in-place array operations (one thread: they have no other) vs ``adam_step``.

    Every repetition takes the next step of the same run (the step counter and moments
    advance). The check takes one step from the initial state with the contender's own
    function and compares the update ``p_new - p`` with a float64 reference.
    """

    group = "kernel"
    data = ("p0", "g", "m0", "v0", "ref")
    baseline = "numpy"

    def __init__(self, dtype, n_params):
        self.dtype, self.n = dtype, int(n_params)
        self.id = f"kernel/adam/{dtype}/{self.n}"
        self.title = f"adam step {_short(dtype)} over {self.n} parameters"
        self.short = True
        self.hyper = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}

    def setup(self, cfg):
        rng = np.random.default_rng(43)
        dt = np.dtype(self.dtype)
        self.p0 = rng.uniform(-1, 1, self.n).astype(dt)
        self.g = (rng.standard_normal(self.n) * 1e-2).astype(dt)
        self.m0 = (rng.standard_normal(self.n) * 1e-3).astype(dt)
        self.v0 = (rng.uniform(0, 1e-4, self.n)).astype(dt)
        h = self.hyper
        g, m, v = (a.astype(np.float64) for a in (self.g, self.m0, self.v0))
        m = h["beta1"] * m + (1 - h["beta1"]) * g
        v = h["beta2"] * v + (1 - h["beta2"]) * g * g
        lr_t = h["lr"] * np.sqrt(1 - h["beta2"]) / (1 - h["beta1"])
        self.ref = {"update": -lr_t * m / (np.sqrt(v) + h["eps"])}
        # p_new - p carries the rounding of p_new (|p| <= 1: half an eps) and a few of the
        # update's own; relative to the largest update (~1e-3). A wrong rule is off by O(1).
        scale = float(np.max(np.abs(self.ref["update"])))
        self.tol = 16 * float(np.finfo(dt).eps) / scale

    def contenders(self, cfg):
        out = []
        # (NumPy's elementwise operations use one thread whatever the setting; it gets a
        # row per thread count all the same, the reference of that count's ratios)
        for t in cfg.threads:
            if _peer(cfg, "numpy"):
                out.append(Contender("numpy", t, lambda: self._runner(self._numpy_step())))
        for be in _backends(cfg):
            for t in cfg.threads:
                out.append(Contender(_rb(be), t,
                                     lambda be=be, t=t: self._runner(self._rb_step(be, t)),
                                     rosenblatt=True))
        return out

    def _numpy_step(self):
        h = self.hyper
        b1, b2, eps = h["beta1"], h["beta2"], h["eps"]
        tmp = np.empty_like(self.p0)

        def step(p, m, v, t):
            lr_t = h["lr"] * np.sqrt(1 - b2**t) / (1 - b1**t)
            m *= b1
            np.multiply(self.g, 1 - b1, out=tmp)
            m += tmp
            v *= b2
            np.multiply(self.g, self.g, out=tmp)
            np.multiply(tmp, 1 - b2, out=tmp)
            v += tmp
            np.sqrt(v, out=tmp)
            np.add(tmp, eps, out=tmp)
            np.divide(m, tmp, out=tmp)
            np.multiply(tmp, lr_t, out=tmp)
            p -= tmp
        return step

    def _rb_step(self, be, threads):
        K = _kernels_for(be)
        h = self.hyper

        def step(p, m, v, t):
            K.adam_step(p, self.g, m, v, t=t, lr=h["lr"], beta1=h["beta1"],
                        beta2=h["beta2"], eps=h["eps"], backend=be, n_threads=threads)
        return step

    def _runner(self, step):
        p, m, v = self.p0.copy(), self.m0.copy(), self.v0.copy()
        t = [0]

        def run():
            t[0] += 1
            step(p, m, v, t[0])

        def output():
            p1, m1, v1 = self.p0.copy(), self.m0.copy(), self.v0.copy()
            step(p1, m1, v1, 1)
            return {"update": p1.astype(np.float64) - self.p0.astype(np.float64)}
        return Runner(run, output)

    def check(self, outputs):
        verdicts = {}
        for key, out in outputs.items():
            err = _rel_err(out.get("update"), self.ref["update"])
            ok = err <= self.tol
            detail = {"max_rel_err": err, "tol": self.tol}
            if not ok:
                detail["why"] = (f"the update differs from the float64 reference: max rel err "
                                 f"{err:.3g} > tol {self.tol:.3g}")
            verdicts[key] = (ok, detail)
        return verdicts


def _act(z, name):
    return {"identity": lambda v: v, "relu": lambda v: np.maximum(v, 0.0),
            "tanh": np.tanh, "logistic": lambda v: 1.0 / (1.0 + np.exp(-v))}[name](z)


def _numpy_act(name):
    """In-place activation with numpy's ufuncs (what a careful numpy user writes)."""
    if name == "relu":
        return lambda a: np.maximum(a, 0, out=a)
    if name == "tanh":
        return lambda a: np.tanh(a, out=a)
    if name == "identity":
        return lambda a: a
    raise ValueError(name)


# --------------------------------------------------------------------------------------
# training


def fashion_like(n, dtype, seed=0, n_features=784, n_classes=10):
    """Generated stand-in for Fashion-MNIST: 10 smooth class templates in [0, 1]^784 plus
    pixel noise, hard enough that a few epochs do not reach 100% (so a loss that is off
    shows), easy enough that every correct trainer makes progress."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    side = round(np.sqrt(n_features))
    base = rng.random((n_classes, n_features))
    if side * side == n_features:   # blur the templates so that pixels correlate
        img = base.reshape(n_classes, side, side)
        for ax in (1, 2):
            img = (img + np.roll(img, 1, ax) + np.roll(img, -1, ax)) / 3
        base = img.reshape(n_classes, n_features)
    base = 0.5 + 0.6 * (base - base.mean(axis=1, keepdims=True))
    X = np.empty((n, n_features), dtype=dtype)
    step = 512  # in chunks: a float64 temporary of 3 MB, so that the memory
    # workload's RSS high-water mark is set by the fit, not by this generator
    for s in range(0, n, step):
        e = min(n, s + step)
        chunk = base[y[s:e]] + 0.35 * rng.standard_normal((e - s, n_features))
        np.clip(chunk, 0.0, 1.0, out=chunk)
        X[s:e] = chunk
    return X, y


def playground_like(n, dtype, seed=0):
    """Two-class XOR in 2-D with noise, as in the TensorFlow playground."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-5, 5, (n, 2))
    y = ((X[:, 0] * X[:, 1]) > 0).astype(np.int64)
    X += 0.3 * rng.standard_normal(X.shape)
    return np.ascontiguousarray(X, dtype=dtype), y


def _log_loss_acc(p, y):
    p = np.clip(p, 1e-15, 1.0)
    return float(-np.mean(np.log(p[np.arange(len(y)), y]))), float(np.mean(p.argmax(1) == y))


class TrainWorkload(Workload):
    """One training epoch of an MLP, every peer on the same data, model and epochs.

    Every contender first trains one untimed epoch (warm-up: compilation, caches), then
    one epoch per repetition; at the end each has trained the same number of epochs and
    its log loss and accuracy on the first rows of the training set are compared with
    scikit-learn's.
    """

    group = "train"
    data = ("X", "y", "Xe", "ye", "loss0")
    baseline = "sklearn"
    unit = "epoch"
    calibrate = False
    # Every contender starts from the same weights (loss L0) and must end within 25% of
    # scikit-learn's progress L0 - L_ref (at least 0.02): an implementation that does not
    # learn, or learns something else, is far off. Not tighter, because float32 training
    # is chaotic near convergence: fashion-like data, b32, two epochs, 20000 rows gave
    # scikit-learn float32 0.059 against float64 0.075 (rosenblatt's cpp backend matched
    # scikit-learn's float64 run to every printed digit), and at 60000 rows float32
    # runs ended between 0.034 and 0.15.
    # rosenblatt draws the same initial weights and row orders, so its rows get 10%.
    # Accuracy must be within 0.15 (early in training it moves fast).
    progress_rtol, progress_rtol_own, loss_atol, acc_atol = 0.25, 0.10, 0.02, 0.15

    def __init__(self, name, spec: MLPSpec, n_rows, dtype, data, full_rows=None,
                 short=False):
        self.name, self.spec, self.n_rows, self.dtype = name, spec, n_rows, dtype
        self.data = data
        self.scaled = full_rows is not None and n_rows != full_rows
        self.id = f"train/{name}/{dtype}"
        size = f"{n_rows}x{784 if data == 'fashion' else 2}"
        self.title = (f"{name} epoch {_short(dtype)} {size} "
                      f"{'-'.join(map(str, spec.hidden))} {spec.activation} {spec.solver} "
                      f"b{spec.batch}" + (" (scaled down)" if self.scaled else ""))
        d = 784 if data == "fashion" else 2
        self.flops = float(spec.flops_per_row(d)) * n_rows
        self.short = short
        self.needs_torch = True
        self.weight = 3.0 if short else 25.0

    def setup(self, cfg):
        if self.data == "fashion":
            self.X, self.y = fashion_like(self.n_rows, self.dtype)
        else:
            self.X, self.y = playground_like(self.n_rows, self.dtype)
        self.Xe, self.ye = self.X[:5000], self.y[:5000]
        a = self.Xe.astype(np.float64)
        layers = glorot_init(self.spec, self.X.shape[1], np.float64)
        for W, b in layers[:-1]:
            a = _act(a @ W + b, self.spec.activation)
        z = a @ layers[-1][0] + layers[-1][1]
        if z.shape[1] == 1:
            p = expit(z[:, 0])
            p = np.column_stack([1 - p, p])
        else:
            p = softmax(z, axis=1)
        self.loss0 = _log_loss_acc(p, self.ye)[0]

    def contenders(self, cfg):
        out = []
        for t in cfg.threads:
            if _peer(cfg, "sklearn"):
                out.append(Contender("sklearn", t, lambda t=t: self._wrap(
                    sklearn_mlp, t, self.epochs_per_fit)))
        if _peer(cfg, "torch") and have("torch"):
            for t in cfg.threads:
                out.append(Contender("torch", t, lambda t=t: self._wrap(torch_mlp, t)))
        if _peer(cfg, "jax") and have("jax"):
            # XLA's pool uses every core whatever we ask: label the row with the truth
            t = all_threads()
            out.append(Contender("jax", t, lambda t=t: self._wrap(jax_mlp, t)))
        for be in _backends(cfg, heavy=True):
            for t in cfg.threads:
                out.append(Contender(
                    _rb(be), t, lambda be=be, t=t: self._wrap(
                        lambda s, X, y, tt, *k: rosenblatt_mlp(s, X, y, be, tt, *k), t,
                        self.epochs_per_fit),
                    rosenblatt=True))
        return out

    @property
    def epochs_per_fit(self):
        # Playground nets train an epoch in well under a millisecond, less than the input
        # validation of one partial_fit call (scikit-learn's utilities, in both libraries):
        # time them as epochs inside one fit, the way they are trained (scikit-learn's
        # default max_iter is 200). 100 rather than 20: a fit right after another
        # library's timed unit starts with cold caches and predictors, about 0.2 ms that 20
        # epochs of 40 us spread as a quarter more per epoch (rosenblatt's epoch measured
        # 50-70 us in the suite against 40 us alone; scikit-learn's 5 ms epochs hide it).
        # The peers that have no per-call validation (PyTorch, JAX loops) get as many
        # epochs per unit.
        return 100 if self.data == "playground" else 0

    def _wrap(self, adapter, t, *epochs_per_fit):
        """Runner of one adapter. ``epochs_per_fit`` is passed to the adapters that take it
        (a timed unit is then that many epochs in one fit); the others - plain loops - get
        the same number of epochs per unit here, so every contender trains as long."""
        k = self.epochs_per_fit
        epoch, proba, set_threads, note = adapter(self.spec, self.X, self.y, t,
                                                  *[e for e in epochs_per_fit if e])
        if k and not epochs_per_fit:
            one = epoch

            def epoch():
                t0 = time.perf_counter()
                for _ in range(k):
                    one()
                return (time.perf_counter() - t0) / k

        Xe, ye = self.Xe, self.ye
        r = Runner(epoch, lambda: _log_loss_acc(proba(Xe), ye), set_threads, note)
        r.self_timed = bool(k)
        return r

    parity_rows, parity_rtol = 1000, 1e-6

    def _parity(self, backend, cache):
        """Relative difference of the log loss after one float64 epoch on the first rows,
        rosenblatt ``backend`` against scikit-learn: same initial weights, same row
        orders, so it must vanish (float32 training is too chaotic for a tight bound, see
        above, float64 is not). None when rosenblatt runs through the Trainer fallback,
        which does not mirror scikit-learn's shuffles."""
        if "sklearn" not in cache:
            Xp = np.ascontiguousarray(self.X[:self.parity_rows], dtype=np.float64)
            yp = self.y[:self.parity_rows]
            ep, pr, _, _ = sklearn_mlp(self.spec, Xp, yp, 1)
            ep()
            cache["data"] = (Xp, yp)
            cache["sklearn"] = _log_loss_acc(pr(Xp), yp)[0]
        Xp, yp = cache["data"]
        ep, pr, _, note = rosenblatt_mlp(self.spec, Xp, yp, backend, 1)
        if note:
            return None
        ep()
        loss = _log_loss_acc(pr(Xp), yp)[0]
        return abs(loss - cache["sklearn"]) / max(abs(cache["sklearn"]), 1e-300)

    def check(self, outputs):
        ref_key = next((k for k in sorted(outputs) if k[0] == "sklearn"), None)
        verdicts = {}
        cache = {}
        for key, (loss, acc) in outputs.items():
            detail = {"loss": loss, "accuracy": acc}
            ok = bool(np.isfinite(loss))
            if key[0].startswith("rosenblatt[") and ref_key is not None:
                be = key[0][len("rosenblatt["):-1]
                if be not in cache:
                    cache[be] = self._parity(be, cache)
                if cache[be] is not None:
                    detail["f64_parity_rel"] = cache[be]
                    if not cache[be] <= self.parity_rtol:
                        verdicts[key] = (False, dict(detail, why=(
                            f"float64 parity: loss after one epoch on {self.parity_rows} "
                            f"rows differs from scikit-learn's by {cache[be]:.3g} (relative)"
                            f" > {self.parity_rtol:g}")))
                        continue
            if ref_key is not None:
                rl, ra = outputs[ref_key]
                rtol = self.progress_rtol_own if key[0].startswith("rosenblatt") \
                    else self.progress_rtol
                tol = max(self.loss_atol, rtol * abs(self.loss0 - rl))
                detail.update(ref="sklearn", ref_loss=rl, ref_accuracy=ra,
                              initial_loss=self.loss0, loss_tol=tol)
                ok = ok and abs(loss - rl) <= tol and abs(acc - ra) <= self.acc_atol
            else:
                detail["ref"] = "none (scikit-learn not in this run): loss must be finite"
            if not ok:
                detail["why"] = (f"after the same epochs: loss {loss:.4g}, accuracy "
                                 f"{acc:.3f} vs scikit-learn's {detail.get('ref_loss', 0):.4g}"
                                 f" (tol {detail.get('loss_tol', 0):.2g}, initial "
                                 f"{self.loss0:.4g}), {detail.get('ref_accuracy', 0):.3f}")
            verdicts[key] = (ok, detail)
        return verdicts


# --------------------------------------------------------------------------------------
# perceptron


class PerceptronWorkload(Workload):
    """One Perceptron epoch: scikit-learn vs rosenblatt's two rules.

    ``rosenblatt[<backend>]`` is scikit-learn's rule (one-vs-rest, the same model as
    scikit-learn's bit for bit); ``onepass[<backend>]`` is ``rule="rosenblatt"``: every
    output in one pass over X (one-hot targets, heaviside steps). sklearn's "threads" are
    ``n_jobs`` (its OvR classes run in parallel) plus the BLAS limit. The check compares
    training-set accuracy after the same epochs: scikit-learn's rule within ``acc_atol`` of
    scikit-learn's, the one-pass rule at least scikit-learn's minus ``acc_atol`` (a
    different algorithm: it may learn faster, never much slower).
    """

    group = "perceptron"
    data = ("X", "y")
    baseline = "sklearn"
    unit = "epoch"
    calibrate = False
    acc_atol = 0.05
    ONEPASS = "onepass"

    def __init__(self, n_classes, n_rows, dtype, full_rows):
        self.k, self.n_rows, self.dtype = n_classes, n_rows, dtype
        self.scaled = n_rows != full_rows
        self.id = f"perceptron/{n_classes}classes/{dtype}"
        self.title = (f"Perceptron epoch {_short(dtype)} {n_rows}x100, {n_classes} classes"
                      + (" (scaled down)" if self.scaled else "")
                      + "; rosenblatt[*] = scikit-learn's rule, onepass[*] = "
                        "rule='rosenblatt'")
        self.flops = 2.0 * n_rows * 100 * (1 if n_classes == 2 else n_classes)
        self.weight = 4.0

    def setup(self, cfg):
        rng = np.random.default_rng(1)
        X = rng.standard_normal((self.n_rows, 100))
        Wt = rng.standard_normal((100, self.k))
        self.y = np.argmax(X @ Wt + 0.5 * rng.standard_normal((self.n_rows, self.k)),
                           axis=1)
        self.X = np.ascontiguousarray(X, dtype=self.dtype)
        self.classes = np.arange(self.k)

    def contenders(self, cfg):
        out = []
        X, y, cl = self.X, self.y, self.classes
        for t in cfg.threads:
            if _peer(cfg, "sklearn"):
                out.append(Contender("sklearn", t, lambda t=t: self._runner(
                    *sklearn_perceptron(X, y, cl, t))))
        for rule, name in (("sklearn", "rosenblatt"), ("rosenblatt", self.ONEPASS)):
            for be in _backends(cfg, heavy=True):
                for t in cfg.threads:
                    out.append(Contender(f"{name}[{be}]", t, lambda be=be, t=t, rule=rule:
                                         self._runner(*rosenblatt_perceptron(
                                             X, y, cl, be, t, rule=rule)), rosenblatt=True))
        return out

    def _runner(self, epoch, predict):
        return Runner(epoch, lambda: float(np.mean(predict(self.X) == self.y)))

    def check(self, outputs):
        ref_key = next((k for k in sorted(outputs) if k[0] == "sklearn"), None)
        verdicts = {}
        for key, acc in outputs.items():
            detail = {"accuracy": acc}
            ok = True
            onepass = key[0].startswith(self.ONEPASS + "[")
            if ref_key is not None:
                ra = outputs[ref_key]
                detail.update(ref="sklearn", ref_accuracy=ra)
                ok = acc >= ra - self.acc_atol if onepass else abs(acc - ra) <= self.acc_atol
            else:
                # no reference in this run: at least better than guessing the commonest class
                base = float(np.bincount(self.y).max()) / self.y.shape[0]
                detail["ref"] = f"none (scikit-learn not in this run): above {base:.3f}"
                ok = acc > base
            if not ok:
                detail["why"] = (f"accuracy {acc:.3f} vs scikit-learn's "
                                 f"{detail.get('ref_accuracy', float('nan')):.3f}"
                                 + (" (the one-pass rule may not be worse by more than "
                                    f"{self.acc_atol})" if onepass else ""))
            verdicts[key] = (ok, detail)
        return verdicts


# --------------------------------------------------------------------------------------
# predict latency


class PredictWorkload(Workload):
    """``predict`` of a fitted 784-300-100-10 relu network on ``rows`` rows.

    All peers hold the same weights (scikit-learn's, after one epoch on fashion-like
    data); rosenblatt gets them through ``MLPClassifier.from_weights`` (or, before that
    exists, through the ``mlp_forward`` kernel). Predictions must equal scikit-learn's.
    """

    group = "predict"
    data = ("est", "Xq", "ref")
    baseline = "sklearn"
    unit = "call"

    def __init__(self, rows, dtype, fit_rows):
        self.rows, self.dtype, self.fit_rows = rows, dtype, fit_rows
        self.id = f"predict/{rows}rows/{dtype}"
        self.title = f"predict {rows} row{'s' if rows > 1 else ''} {_short(dtype)}, 784-300-100-10"
        self.flops = 2.0 * rows * (784 * 300 + 300 * 100 + 100 * 10)
        self.short = rows < 100
        self.needs_torch = True
        self.weight = 2.0

    def setup(self, cfg):
        from sklearn.neural_network import MLPClassifier

        from .peers import _quiet

        X, y = fashion_like(self.fit_rows, self.dtype, seed=3)
        est = MLPClassifier(hidden_layer_sizes=(300, 100), max_iter=1, random_state=0)
        ctx = _quiet()
        try:
            est.fit(X, y)
        finally:
            ctx.__exit__(None, None, None)
        self.est = est
        Xq, _ = fashion_like(max(self.rows, 1), self.dtype, seed=4)
        self.Xq = Xq[:self.rows]
        self.ref = est.predict(self.Xq)

    def contenders(self, cfg):
        out = []
        for t in cfg.threads:
            if _peer(cfg, "sklearn"):
                out.append(Contender("sklearn", t, self._sklearn))
        if _peer(cfg, "torch") and have("torch"):
            for t in cfg.threads:
                out.append(Contender("torch", t, lambda t=t: self._torch(t)))
        if _peer(cfg, "jax") and have("jax"):
            out.append(Contender("jax", all_threads(), self._jax))
        for be in _backends(cfg):
            for t in cfg.threads:
                out.append(Contender(_rb(be), t, lambda be=be, t=t: self._rosenblatt(be, t),
                                     rosenblatt=True))
        return out

    def _result(self, fn):
        box = {}

        def run():
            box["p"] = fn()
        return Runner(run, lambda: box["p"])

    def _sklearn(self):
        est, Xq = self.est, self.Xq
        return self._result(lambda: est.predict(Xq))

    def _weights(self):
        return [(np.asarray(W, dtype=self.dtype), np.asarray(b, dtype=self.dtype))
                for W, b in zip(self.est.coefs_, self.est.intercepts_)]

    def _torch(self, t):
        import torch

        tdt = torch.float64 if self.dtype == "float64" else torch.float32
        layers = []
        ws = self._weights()
        for i, (W, b) in enumerate(ws):
            lin = torch.nn.Linear(*W.shape, dtype=tdt)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
                lin.bias.copy_(torch.from_numpy(b))
            layers.append(lin)
            if i < len(ws) - 1:
                layers.append(torch.nn.ReLU())
        model = torch.nn.Sequential(*layers).eval()
        Xq, classes = self.Xq, self.est.classes_

        def pred():
            # what a user writes: numpy in, numpy labels out
            with torch.no_grad():
                z = model(torch.from_numpy(Xq))
            return classes[z.argmax(dim=1).numpy()]
        r = self._result(pred)
        r.set_threads = lambda: torch.set_num_threads(t)
        return r

    def _jax(self):
        import jax
        import jax.numpy as jnp

        if self.dtype == "float64":
            jax.config.update("jax_enable_x64", True)
        ws = [(jnp.asarray(W), jnp.asarray(b)) for W, b in self._weights()]

        @jax.jit
        def fwd(x):
            for W, b in ws[:-1]:
                x = jax.nn.relu(x @ W + b)
            W, b = ws[-1]
            return jnp.argmax(x @ W + b, axis=1)
        Xq, classes = self.Xq, self.est.classes_
        r = self._result(lambda: classes[np.asarray(fwd(Xq))])
        r.note = "XLA CPU: all cores"
        return r

    def _rosenblatt(self, be, t):
        import rosenblatt

        K = _kernels_for(be)
        ws = self._weights()
        classes, Xq = self.est.classes_, self.Xq
        try:
            cls = rosenblatt.MLPClassifier
        except (ImportError, AttributeError):
            cls = None
        if cls is not None and hasattr(cls, "from_weights"):
            try:
                est = cls.from_weights([W for W, _ in ws], [b for _, b in ws],
                                       classes=classes, activation="relu", backend=be,
                                       n_threads=t)
            except (TypeError, ValueError) as exc:
                raise Unavailable(f"MLPClassifier.from_weights failed: {exc}") from None
            got = getattr(est, "backend_", be)
            if got != be:  # a row must measure the backend it is labelled with
                raise Unavailable(f"from_weights resolved backend {got!r}, not {be!r}")
            return self._result(lambda: est.predict(Xq))
        params = np.concatenate([np.concatenate([W.ravel(), b]) for W, b in ws])
        ls = [784, 300, 100, 10]
        acts = ["relu", "relu", "identity"]

        def pred():
            z = K.mlp_forward(Xq, params, ls, acts, backend=be, n_threads=t)
            return classes[z.argmax(axis=1)]
        r = self._result(pred)
        r.note = "MLPClassifier.from_weights missing: via kernels.mlp_forward"
        return r

    def check(self, outputs):
        verdicts = {}
        for key, pred in outputs.items():
            pred = np.asarray(pred)
            wrong = int(np.sum(pred != self.ref)) if pred.shape == self.ref.shape \
                else len(self.ref)
            # float32 rounding may flip a near-tie; more than 0.5% of rows is a bug
            ok = wrong <= int(0.005 * len(self.ref))
            detail = {"mismatches": wrong, "rows": len(self.ref)}
            if not ok:
                detail["why"] = f"{wrong} of {len(self.ref)} predictions differ from sklearn's"
            verdicts[key] = (ok, detail)
        return verdicts


# --------------------------------------------------------------------------------------
# import time and memory: fresh interpreters


def _child_env():
    env = dict(os.environ)
    # the child must import this very rosenblatt (a dev tree or an install)
    import rosenblatt

    root = os.path.dirname(os.path.dirname(os.path.abspath(rosenblatt.__file__)))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                else "")
    return env


def _run_child(code, timeout=600):
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=_child_env(), timeout=timeout, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        raise RuntimeError(f"child failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


class ImportWorkload(Workload):
    """``import rosenblatt`` in a fresh interpreter, timed inside the child (interpreter
    start excluded), against importing scikit-learn's and PyTorch's MLP modules."""

    group = "import"
    baseline = "sklearn"
    unit = "import"
    calibrate = False
    weight = 6.0
    id = "import/rosenblatt"
    title = "import time (fresh interpreter)"
    MODULES: ClassVar[dict] = {"rosenblatt": "rosenblatt", "sklearn": "sklearn.neural_network",
               "torch": "torch"}

    def repetitions(self, cfg):
        return cfg.repeat or cfg.s("import_runs")

    def contenders(self, cfg):
        out = [Contender("rosenblatt", 1, lambda: self._runner("rosenblatt"),
                         rosenblatt=True)]
        for peer in cfg.s("import_peers"):
            if _peer(cfg, peer) and have(peer):
                out.append(Contender(peer, 1, lambda p=peer: self._runner(p)))
        return out

    def _runner(self, name):
        mod = self.MODULES[name]
        code = textwrap.dedent(f"""
            import json, sys, time
            t = time.perf_counter()
            import {mod}
            dt = time.perf_counter() - t
            print(json.dumps({{"s": dt, "numba": "numba" in sys.modules}}))
        """)
        box = {}

        def run():
            box.update(_run_child(code))
            return box["s"]
        r = Runner(run, lambda: dict(box))
        r.self_timed = True
        return r

    def check(self, outputs):
        return {k: (True, {"numba_imported": v.get("numba")}) for k, v in outputs.items()}


class RssSampler:
    """Peak growth of the resident set while the ``with`` block runs.

    A thread reads ``/proc/self/statm`` every millisecond: unlike tracemalloc it sees the
    core's own C++ buffers, and unlike ``ru_maxrss`` it is not masked by an earlier peak
    (imports, data generation). Elsewhere than Linux it falls back to ``ru_maxrss``.
    """

    def __init__(self, interval=0.001):
        self.interval = interval
        self.growth = 0

    @staticmethod
    def _rss():
        try:
            with open("/proc/self/statm", encoding="ascii") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def __enter__(self):
        import threading

        self.base = self.peak = self._rss()
        self._stop = threading.Event()

        def watch():
            while not self._stop.wait(self.interval):
                self.peak = max(self.peak, self._rss())
        self._t = threading.Thread(target=watch, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._rss())
        self.growth = self.peak - self.base
        return False


class MemoryWorkload(Workload):
    """Peak memory of one ``fit`` (one epoch, 784-300-100-10) in a fresh interpreter.

    Two views: tracemalloc's peak (every Python and numpy allocation, not the core's own
    C++ buffers) and the peak growth of the resident set sampled every millisecond
    (everything, see :class:`RssSampler`). Both are also given in copies of X, the unit of
    the target "at most one copy of X".
    """

    group = "memory"
    baseline = "sklearn"
    unit = "fit"
    calibrate = False
    weight = 8.0

    def __init__(self, rows, dtype="float32", full_rows=20000):
        self.rows, self.dtype = rows, dtype
        self.scaled = rows != full_rows
        self.id = f"memory/fit/{dtype}"
        self.title = (f"peak memory of fit {_short(dtype)} {rows}x784, 300-100-10, 1 epoch"
                      + (" (scaled down)" if self.scaled else ""))

    def repetitions(self, cfg):
        # peak memory of a deterministic fit does not need a median of many; the warm-up
        # child plus one measured child keep it cheap (each is a fresh interpreter)
        return 1

    def contenders(self, cfg):
        t = max(cfg.threads)
        out = []
        if _peer(cfg, "sklearn"):
            out.append(Contender("sklearn", t, lambda: self._runner("sklearn", None, t)))
        for be in _backends(cfg, heavy=True):
            out.append(Contender(_rb(be), t, lambda be=be: self._runner("rosenblatt", be, t),
                                 rosenblatt=True))
        return out

    def _runner(self, lib, be, t):
        if lib == "rosenblatt":
            _kernels_for(be)
            from .peers import _rosenblatt_estimator

            _rosenblatt_estimator("MLPClassifier")
            make = (f"from rosenblatt import MLPClassifier as E\n"
                    f"extra = dict(backend={be!r}, n_threads={t})")
        else:
            make = "from sklearn.neural_network import MLPClassifier as E\nextra = {}"
        code = "\n".join([
            "import json, time, tracemalloc, warnings",
            "from threadpoolctl import threadpool_limits",
            "from rosenblatt.bench.workloads import fashion_like",
            *make.splitlines(),
            f"X, y = fashion_like({self.rows}, {self.dtype!r})",
            "warnings.simplefilter('ignore')",
            "est = E(hidden_layer_sizes=(300, 100), max_iter=1, random_state=0, **extra)",
            # a first small fit compiles what needs compiling (numba), so the measured
            # fit is about training, not about the JIT's memory
            "est.fit(X[:64], y[:64])",
            "from rosenblatt.bench.workloads import RssSampler",
            "rss = RssSampler()",
            "tracemalloc.start()",
            "t = time.perf_counter()",
            f"with threadpool_limits({t}), rss:",
            "    est.fit(X, y)",
            "dt = time.perf_counter() - t",
            "peak = tracemalloc.get_traced_memory()[1]",
            "tracemalloc.stop()",
            ("print(json.dumps({'s': dt, 'traced_peak': peak, 'rss_growth': rss.growth,"
             " 'x_bytes': X.nbytes}))"),
        ])
        box = {}

        def run():
            box.update(_run_child(code))
            return box["s"]
        r = Runner(run, lambda: dict(box))
        r.self_timed = True
        return r

    def check(self, outputs):
        verdicts = {}
        for key, m in outputs.items():
            xb = m["x_bytes"]
            verdicts[key] = (True, {
                "traced_peak_MB": m["traced_peak"] / 2**20,
                "traced_peak_copies_of_X": m["traced_peak"] / xb,
                "rss_growth_MB": m["rss_growth"] / 2**20,
                "rss_growth_copies_of_X": m["rss_growth"] / xb,
                "X_MB": xb / 2**20})
        return verdicts


# --------------------------------------------------------------------------------------
# the list


def build_workloads(cfg: Config):
    """All workloads of ``cfg.size``, in report order (unfiltered).

    Returns
    -------
    list of Workload
    """
    s = cfg.s
    W = []
    for dt in s("dtypes"):
        shapes = list(s("mlp_shapes")) + list(s("large_shapes"))
        for sh in shapes:
            W.append(KernelWorkload("forward", dt, sh))
        # the batch sweep at the first MLP layer's width (784 -> 300) for the plot
        k, m = 784, 300
        if cfg.size == "tiny":
            k, m = s("mlp_shapes")[0][1:]
        have_shapes = {w.shape for w in W if w.dtype == dt}
        for nb in s("sweep_batches"):
            if (nb, k, m) not in have_shapes:
                W.append(KernelWorkload("forward", dt, (nb, k, m), sweep=True))
        for sh in s("mlp_shapes"):
            W.append(KernelWorkload("fused", dt, sh, "relu"))
        for sh in s("tiny_shapes"):
            W.append(KernelWorkload("fused", dt, sh, "tanh"))
        for sh in shapes:
            W.append(KernelWorkload("backward", dt, sh))
        for sh in s("tiny_shapes"):
            W.append(KernelWorkload("backward", dt, sh, "tanh"))
        W.append(OptimizerWorkload(dt, s("optimizer_params")))

    rows = s("fashion_rows")
    for bs in s("fashion_batches"):
        # rows rounded to a multiple of the batch so that JAX's scan sees equal batches
        n = rows - rows % bs
        spec = MLPSpec(hidden=(300, 100), activation="relu", solver="adam", lr=1e-3,
                       batch=bs, n_classes=10)
        W.append(TrainWorkload(f"fashion_b{bs}", spec, n, "float32", "fashion",
                               full_rows=60000))
    for dt in s("playground_dtypes"):
        spec = MLPSpec(hidden=(8, 8), activation="tanh", solver="sgd", lr=0.03, batch=10,
                       n_classes=2)
        W.append(TrainWorkload("playground", spec, s("playground_rows"), dt, "playground",
                               full_rows=500, short=True))

    for dt in s("perceptron_dtypes"):
        for k in (2, 10):
            W.append(PerceptronWorkload(k, s("perceptron_rows"), dt, 100000))

    for dt in s("dtypes"):
        for rows in s("predict_rows"):
            W.append(PredictWorkload(rows, dt, s("predict_fit_rows")))

    W.append(ImportWorkload())
    W.append(MemoryWorkload(s("memory_rows")))
    return W


__all__ += ["fashion_like", "glorot_init", "playground_like"]
