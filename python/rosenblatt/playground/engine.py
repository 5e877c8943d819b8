"""The Playground's training engine: one :class:`Session` per browser tab.

A session holds the data, the network (one flat parameter vector with per-layer views),
the optimizer state, the epoch counter, the loss history and per-layer gradient norms.
Every public method takes the session's lock, so a server may call a session from any
thread; two sessions share nothing mutable.

The network follows the original (``nn.ts``) unless told otherwise:

- weights ``U(-0.5, 0.5)``, biases 0.1 (``init="original"``); or Glorot-uniform / He-normal
  with zero biases;
- hidden activation relu, tanh, sigmoid or linear; the output is tanh for classification
  with the loss ``0.5 (o - t)^2`` (``loss="squared"``), or sigmoid read as ``2 p - 1`` with
  binary cross-entropy on ``(t + 1) / 2`` (``loss="cross_entropy"``); linear for regression;
- minibatches in the training set's (shuffled-once) order, each step on the batch-mean
  gradient;
- regularisation as the original applies it, after the data step and with the derivative at
  the weight before the step: ``w -= lr * rate * w`` (L2, penalty ``0.5 w^2``) or
  ``w -= lr * rate * sign(w)`` (L1); an L1 step that carries a weight across zero sets it to
  zero and prunes it for good (until reset). Biases are not regularised;
- optimizer sgd (the original), momentum (0.9), adagrad, rmsprop (0.9), adam
  (0.9, 0.999), all with eps 1e-8;
- batch normalisation (optional) of every hidden layer's pre-activation, running statistics
  (momentum 0.1) for evaluation and maps; with it the rows are reshuffled every epoch
  (seeded), since fixed batches let the network fit each batch's own statistics.

Per-layer gradient norms are the L2 norms of ``dL/dW_l`` of the mean training loss over the
whole training set, evaluated after each epoch (batch statistics of the whole set when
batch normalisation is on).
"""

from __future__ import annotations

import base64
import dataclasses
import math
import threading
from dataclasses import dataclass, field

import numpy as np

from . import _batchnorm as bn
from . import datasets as ds
from . import features as ft

__all__ = ["LEARNING_RATES", "REG_RATES", "Config", "ConfigError", "Session"]

LEARNING_RATES = (1e-5, 1e-4, 1e-3, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
REG_RATES = (0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
ACTIVATIONS = ("relu", "tanh", "sigmoid", "linear")
OPTIMIZERS = ("sgd", "momentum", "adagrad", "rmsprop", "adam")
INITS = ("original", "glorot", "he")
LOSSES = ("squared", "cross_entropy")
REGULARIZATIONS = ("none", "L1", "L2")
MAX_LAYERS = 10
MAX_NEURONS = 32
MAX_BATCH = 1000
DENSITY = 100          # the decision map is DENSITY x DENSITY
THUMB = 10             # neuron thumbnails are THUMB x THUMB (block means)
DOMAIN = 6.0           # maps cover [-DOMAIN, DOMAIN]^2
BN_EPS = 1e-5
BN_MOMENTUM = 0.1
MOMENTUM = 0.9
RHO = 0.9
BETA1, BETA2 = 0.9, 0.999
EPS = 1e-8


class ConfigError(ValueError):
    """A setting is unknown, of the wrong type or out of range."""


@dataclass(frozen=True)
class Config:
    """Everything that defines a Playground setup (and goes into the page's URL)."""

    dataset: str = "circle"
    noise: float = 0
    train_ratio: float = 50
    seed: int = 0
    init_seed: int = 0
    features: tuple[str, ...] = ft.DEFAULT
    layers: tuple[int, ...] = (4, 2)
    activation: str = "tanh"
    learning_rate: float = 0.03
    regularization: str = "none"
    reg_rate: float = 0.0
    batch_size: int = 10
    optimizer: str = "sgd"
    init: str = "original"
    loss: str = "squared"
    batch_norm: bool = False

    @property
    def problem(self) -> str:
        return "regression" if self.dataset in ds.REGRESSION else "classification"

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["features"] = list(self.features)
        d["layers"] = list(self.layers)
        return d

    @classmethod
    def from_dict(cls, d: dict, base: Config | None = None) -> Config:
        """Validate ``d`` (a JSON object), applied over ``base``; raise :class:`ConfigError`."""
        if not isinstance(d, dict):
            raise ConfigError("config must be a JSON object")
        base = base or cls()
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown settings {unknown}; expected some of {sorted(names)}")
        v = base.to_dict() | d
        out = {
            "dataset": _choice("dataset", v["dataset"], (*ds.GENERATORS, "upload")),
            "noise": _number("noise", v["noise"], 0, 50),
            "train_ratio": _number("train_ratio", v["train_ratio"], 10, 90),
            "seed": _integer("seed", v["seed"], 0, 2**31 - 1),
            "init_seed": _integer("init_seed", v["init_seed"], 0, 2**31 - 1),
            "activation": _choice("activation", v["activation"], ACTIVATIONS),
            "learning_rate": _number("learning_rate", v["learning_rate"], 1e-6, 10,
                                     open_low=False),
            "regularization": _choice("regularization", v["regularization"],
                                      REGULARIZATIONS),
            "reg_rate": _number("reg_rate", v["reg_rate"], 0, 10),
            "batch_size": _integer("batch_size", v["batch_size"], 1, MAX_BATCH),
            "optimizer": _choice("optimizer", v["optimizer"], OPTIMIZERS),
            "init": _choice("init", v["init"], INITS),
            "loss": _choice("loss", v["loss"], LOSSES),
        }
        if not isinstance(v["batch_norm"], bool):
            raise ConfigError(f"batch_norm must be true or false, got {v['batch_norm']!r}")
        out["batch_norm"] = v["batch_norm"]
        feats = v["features"]
        if not isinstance(feats, (list, tuple)) or not all(isinstance(f, str) for f in feats):
            raise ConfigError("features must be a list of feature names")
        try:
            out["features"] = ft.validate(feats)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        layers = v["layers"]
        if not isinstance(layers, (list, tuple)):
            raise ConfigError("layers must be a list of neuron counts")
        if len(layers) > MAX_LAYERS:
            raise ConfigError(f"at most {MAX_LAYERS} hidden layers, got {len(layers)}")
        out["layers"] = tuple(_integer("layers[]", k, 1, MAX_NEURONS) for k in layers)
        return cls(**out)


def _choice(name, value, allowed):
    if not isinstance(value, str) or value not in allowed:
        raise ConfigError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return value


def _number(name, value, lo, hi, open_low=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or not lo <= value <= hi:
        raise ConfigError(f"{name} must be in [{lo}, {hi}], got {value}")
    return value


def _integer(name, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be in [{lo}, {hi}], got {value}")
    return value


# --- activations -------------------------------------------------------------------------

def _act(name, z):
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * z))   # overflow-free logistic
    return z.copy()


def _dact(name, a):
    """f' from the activation's output ``a``."""
    if name == "tanh":
        return 1.0 - a * a
    if name == "relu":
        return (a > 0).astype(a.dtype)
    if name == "sigmoid":
        return a * (1.0 - a)
    return np.ones_like(a)


@dataclass
class _Layer:
    W: np.ndarray
    b: np.ndarray
    gamma: np.ndarray | None = None
    beta: np.ndarray | None = None
    running_mean: np.ndarray | None = None
    running_var: np.ndarray | None = None


@dataclass
class _Cache:
    inputs: list = field(default_factory=list)    # input of each dense layer
    xhat: list = field(default_factory=list)
    invstd: list = field(default_factory=list)
    acts: list = field(default_factory=list)      # output of each layer (after f)


class Session:
    """One Playground: data, network, optimizer state and history, behind one lock."""

    def __init__(self, config: Config | dict | None = None, backend: str | None = None):
        self.lock = threading.RLock()
        self.backend = backend
        self.track_grad_norms = True   # the experiments switch it off where unused
        self._kernels = _load_kernels()
        self._grid_cache: dict = {}
        self._upload: tuple | None = None
        self.config = Config()
        self.data: ds.Dataset | None = None
        self.apply(config if config is not None else {})

    # --- setup ---------------------------------------------------------------------------
    def apply(self, changes: Config | dict) -> Config:
        """Apply settings; regenerate data and/or rebuild the network when they change."""
        with self.lock:
            new = changes if isinstance(changes, Config) else Config.from_dict(changes,
                                                                              self.config)
            if new.dataset == "upload" and self._upload is None:
                raise ConfigError("dataset 'upload' needs an uploaded CSV first")
            data_keys = ("dataset", "noise", "train_ratio", "seed")
            old = self.config
            if self.data is None or any(getattr(new, k) != getattr(old, k)
                                        for k in data_keys):
                self.config = new
                self._make_data()
            elif self.is_soft_change(old, new) and hasattr(self, "theta"):
                # as in the original: the network keeps training with the new rate
                self.config = new
                if new.optimizer != old.optimizer:
                    self._reset_optimizer()
                return new
            self.config = new
            self._build()
            return new

    SOFT = ("learning_rate", "reg_rate", "batch_size", "optimizer")

    @classmethod
    def is_soft_change(cls, old: Config, new: Config) -> bool:
        """True when only settings that keep the network (``SOFT``) differ."""
        return all(getattr(old, f.name) == getattr(new, f.name)
                   for f in dataclasses.fields(Config) if f.name not in cls.SOFT)

    def _reset_optimizer(self):
        # one (slots, P) array shared by the NumPy path and the kernels' Trainer, so the
        # two paths can take turns on the same optimizer state
        slots = 2 if self.config.optimizer == "adam" else 1
        self.opt_state_arr = np.zeros((slots, self.theta.size))
        self.opt_state = list(self.opt_state_arr)
        self.opt_t = 0
        self._trainer = None
        self._trainer_key = None

    def upload(self, text: str) -> dict:
        """Use the points of a CSV (``x1,x2,label`` rows) as the data set."""
        X, y, is_regression = ds.parse_csv(text)
        with self.lock:
            self._upload = (X, y, is_regression)
            self.apply({"dataset": "upload"})
            self._make_data()
            self._build()
            return {"n": len(X), "regression": is_regression}

    def _make_data(self):
        c = self.config
        if c.dataset == "upload":
            X, y, _ = self._upload
            self.data = ds.from_points(X, y, train_ratio=c.train_ratio, seed=c.seed)
        else:
            self.data = ds.make_dataset(c.dataset, noise=c.noise, train_ratio=c.train_ratio,
                                        seed=c.seed)

    @property
    def regression(self) -> bool:
        if self.config.dataset == "upload":
            return self._upload[2]
        return self.config.dataset in ds.REGRESSION

    @property
    def output(self) -> str:
        """The output unit: ``tanh``, ``sigmoid`` (cross-entropy) or ``linear``."""
        if self.regression:
            return "linear"
        return "sigmoid" if self.config.loss == "cross_entropy" else "tanh"

    def _build(self):
        """Fresh network, optimizer state and history for the current config."""
        c = self.config
        self.F_train = ft.transform(self.data.X_train, c.features) if len(
            self.data.X_train) else np.zeros((0, len(c.features)))
        self.F_test = ft.transform(self.data.X_test, c.features) if len(
            self.data.X_test) else np.zeros((0, len(c.features)))
        self.sizes = (len(c.features), *c.layers, 1)
        n_dense = len(self.sizes) - 1
        bn_on = c.batch_norm
        # one flat parameter vector; per-layer arrays are views into it
        counts = []
        for i in range(n_dense):
            k_in, k_out = self.sizes[i], self.sizes[i + 1]
            counts += [k_in * k_out, k_out]
            if bn_on and i < n_dense - 1:
                counts += [k_out, k_out]
        self.theta = np.zeros(sum(counts))
        self.grad = np.zeros_like(self.theta)
        self.is_weight = np.zeros(self.theta.size, dtype=bool)
        self.layers: list[_Layer] = []
        self._grad_layers: list[_Layer] = []
        self._w_offsets: list[int] = []
        off = 0

        def take(k, shape=None, weight=False):
            nonlocal off
            p = self.theta[off:off + k]
            g = self.grad[off:off + k]
            if weight:
                self.is_weight[off:off + k] = True
            off += k
            if shape is not None:
                p, g = p.reshape(shape), g.reshape(shape)
            return p, g

        for i in range(n_dense):
            k_in, k_out = self.sizes[i], self.sizes[i + 1]
            self._w_offsets.append(off)
            W, dW = take(k_in * k_out, (k_in, k_out), weight=True)
            b, db = take(k_out)
            layer, glayer = _Layer(W, b), _Layer(dW, db)
            if bn_on and i < n_dense - 1:
                layer.gamma, glayer.gamma = take(k_out)
                layer.beta, glayer.beta = take(k_out)
                layer.gamma[:] = 1.0
                layer.running_mean = np.zeros(k_out)
                layer.running_var = np.ones(k_out)
            self.layers.append(layer)
            self._grad_layers.append(glayer)
        self._init_weights()
        self.dead = np.zeros(self.theta.size, dtype=bool)
        self._reset_optimizer()
        self.epoch = 0
        self.history = {"train": [], "test": [], "grad_norms": []}
        self.status = ""
        tr, te = self._losses()
        self.history["train"].append(tr)
        self.history["test"].append(te)
        self.history["grad_norms"].append(self._grad_norms())

    def _init_weights(self):
        c = self.config
        rng = np.random.default_rng([c.seed, c.init_seed, 7])
        for i, layer in enumerate(self.layers):
            k_in, k_out = self.sizes[i], self.sizes[i + 1]
            if c.init == "original":
                layer.W[:] = rng.uniform(-0.5, 0.5, layer.W.shape)
                layer.b[:] = 0.1
            elif c.init == "glorot":
                lim = math.sqrt(6.0 / (k_in + k_out))
                layer.W[:] = rng.uniform(-lim, lim, layer.W.shape)
                layer.b[:] = 0.0
            else:
                layer.W[:] = rng.normal(0.0, math.sqrt(2.0 / k_in), layer.W.shape)
                layer.b[:] = 0.0

    # --- forward / backward --------------------------------------------------------------
    def _forward(self, F, train: bool, cache: _Cache | None = None, update_stats=False):
        """Network output for feature rows ``F``; all layer outputs go to ``cache``."""
        a = F
        hidden = self.config.activation
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            if cache is not None:
                cache.inputs.append(a)
            z = a @ layer.W
            z += layer.b
            if i < last and layer.gamma is not None:
                y = np.empty_like(z)
                if train:
                    xhat = np.empty_like(z)
                    mean = np.empty(z.shape[1])
                    invstd = np.empty(z.shape[1])
                    bn.batchnorm_forward(z, layer.gamma, layer.beta, BN_EPS, y, xhat, mean,
                                         invstd)
                    if cache is not None:
                        cache.xhat.append(xhat)
                        cache.invstd.append(invstd)
                    if update_stats:
                        n = z.shape[0]
                        var = 1.0 / invstd**2 - BN_EPS
                        unbiased = var * n / (n - 1) if n > 1 else var
                        layer.running_mean += BN_MOMENTUM * (mean - layer.running_mean)
                        layer.running_var += BN_MOMENTUM * (unbiased - layer.running_var)
                else:
                    bn.batchnorm_inference(z, layer.gamma, layer.beta, layer.running_mean,
                                           layer.running_var, BN_EPS, y)
                z = y
            a = _act(hidden if i < last else self.output, z)
            if cache is not None:
                cache.acts.append(a)
        return a

    def _output_gradient(self, o, t):
        """dL/dz of the output unit for the batch mean loss."""
        n = len(t)
        if self.output == "sigmoid":
            return (o - (t + 1) / 2) / n
        if self.output == "tanh":
            return (o - t) * (1 - o * o) / n
        return (o - t) / n

    def _backward(self, cache: _Cache, t):
        """Fill ``self.grad`` from a training-mode forward's cache."""
        o = cache.acts[-1]
        dz = self._output_gradient(o, t[:, None])
        hidden = self.config.activation
        for i in range(len(self.layers) - 1, -1, -1):
            layer, g = self.layers[i], self._grad_layers[i]
            np.matmul(cache.inputs[i].T, dz, out=g.W)
            np.sum(dz, axis=0, out=g.b)
            if i == 0:
                break
            da = dz @ layer.W.T
            dy = da * _dact(hidden, cache.acts[i - 1])
            prev, gprev = self.layers[i - 1], self._grad_layers[i - 1]
            if prev.gamma is not None:
                dz = np.empty_like(dy)
                bn.batchnorm_backward(dy, cache.xhat[i - 1], prev.gamma, cache.invstd[i - 1],
                                      dz, gprev.gamma, gprev.beta)
            else:
                dz = dy

    def _loss(self, o, t):
        if len(t) == 0:
            return float("nan")
        if self.output == "sigmoid":
            p = np.clip(o[:, 0], 1e-15, 1 - 1e-15)
            t01 = (t + 1) / 2
            return float(-np.mean(t01 * np.log(p) + (1 - t01) * np.log1p(-p)))
        return float(0.5 * np.mean((o[:, 0] - t) ** 2))

    def _losses(self):
        with np.errstate(all="ignore"):
            tr = self._loss(self._forward(self.F_train, train=False), self.data.y_train)
            te = self._loss(self._forward(self.F_test, train=False), self.data.y_test)
        return tr, te

    def _grad_norms(self):
        if len(self.F_train) < 2:
            return [0.0] * len(self.layers)
        cache = _Cache()
        with np.errstate(all="ignore"):
            self._forward(self.F_train, train=True, cache=cache)
            self._backward(cache, self.data.y_train)
        return [float(np.linalg.norm(g.W)) for g in self._grad_layers]

    # --- optimisation --------------------------------------------------------------------
    def _step(self):
        c = self.config
        lr, g, p = c.learning_rate, self.grad, self.theta
        w_before = p[self.is_weight] if c.regularization != "none" else None
        if c.optimizer == "sgd":
            p -= lr * g
        elif c.optimizer == "momentum":
            v = self.opt_state[0]
            v *= MOMENTUM
            v -= lr * g
            p += v
        elif c.optimizer == "adagrad":
            s = self.opt_state[0]
            s += g * g
            p -= lr * g / (np.sqrt(s) + EPS)
        elif c.optimizer == "rmsprop":
            s = self.opt_state[0]
            s *= RHO
            s += (1 - RHO) * g * g
            p -= lr * g / (np.sqrt(s) + EPS)
        else:
            m, v = self.opt_state
            self.opt_t += 1
            m += (1 - BETA1) * (g - m)
            v += (1 - BETA2) * (g * g - v)
            lr_t = lr * math.sqrt(1 - BETA2**self.opt_t) / (1 - BETA1**self.opt_t)
            p -= lr_t * m / (np.sqrt(v) + EPS)
        if w_before is not None and c.reg_rate > 0:
            mid = p[self.is_weight]
            der = w_before if c.regularization == "L2" else np.sign(w_before)
            new = mid - lr * c.reg_rate * der
            if c.regularization == "L1":
                crossed = mid * new < 0
                new[crossed] = 0.0
                dead = np.zeros_like(self.dead)
                dead[self.is_weight] = crossed
                self.dead |= dead
            p[self.is_weight] = new
        p[self.dead] = 0.0

    def uses_kernels(self) -> bool:
        """True when whole epochs run in the library's ``train_epoch`` kernel.

        That is every setup but batch normalisation, L1 (whose pruning needs each step)
        and L2 with an optimizer other than plain SGD (the original's decoupled L2 equals
        the kernel's coupled one only for SGD, with ``alpha = rate * batch``, when every
        batch is full).
        """
        c = self.config
        if self._kernels is None or c.batch_norm or c.regularization == "L1":
            return False
        if c.regularization == "L2" and c.reg_rate > 0:
            return c.optimizer == "sgd" and len(self.F_train) % c.batch_size == 0
        return True

    def _kernel_epoch(self):
        c = self.config
        key = (c.batch_size, c.optimizer, c.regularization, c.reg_rate, self.output)
        if self._trainer is None or self._trainer_key != key:
            K = self._kernels
            opt = {"sgd": "sgd", "momentum": "sgd"}.get(c.optimizer, c.optimizer)
            hyper = {"lr": c.learning_rate, "momentum": MOMENTUM if c.optimizer == "momentum"
                     else 0.0, "beta1": BETA1, "beta2": BETA2, "eps": EPS, "rho": RHO}
            if c.regularization == "L2":
                hyper["alpha"] = c.reg_rate * c.batch_size
            t = self.data.y_train[:, None]
            if self.output == "sigmoid":
                t = (t + 1) / 2
            loss = "binary_log_loss" if self.output == "sigmoid" else "squared_error"
            acts = [KERNEL_ACTIVATION[c.activation]] * (len(self.layers) - 1) + [
                KERNEL_ACTIVATION[self.output]]
            self._trainer = K.Trainer(self.F_train, np.ascontiguousarray(t), self.theta,
                                      self.sizes, acts, loss, opt, hyper, c.batch_size,
                                      state=self.opt_state_arr, step=self.opt_t,
                                      backend=self.backend)
            self._trainer_key = key
            self._order = np.arange(len(self.F_train), dtype=np.int64)
        tr = self._trainer
        tr.set_lr(c.learning_rate)
        tr.step[0] = self.opt_t
        tr.run_epoch(self._order)
        self.opt_t = int(tr.step[0])
        self.theta[self.dead] = 0.0

    def _epoch(self):
        if self.uses_kernels():
            self._kernel_epoch()
            return
        c = self.config
        F, T = self.F_train, self.data.y_train
        n, bs = len(F), c.batch_size
        if c.batch_norm:
            # Fresh batches every epoch. With the original's fixed batches a normalised
            # network learns each batch's own statistics: its minibatch loss falls while
            # its loss on the whole set rises (measured on spiral, 4 x 8: 0.13 against
            # 0.73 after 200 epochs).
            order = np.random.default_rng([c.seed, c.init_seed, self.epoch, 11]).permutation(n)
            F, T = F[order], T[order]
        for start in range(0, n, bs):
            if c.batch_norm and n - start < 2 and start > 0:
                break  # a batch of one has no batch statistics; skip the remainder row
            cache = _Cache()
            self._forward(F[start:start + bs], train=True, cache=cache,
                          update_stats=True)
            self._backward(cache, T[start:start + bs])
            self._step()

    def step(self, n_epochs: int = 1) -> dict:
        """Train ``n_epochs`` epochs; returns a small summary. Stops at divergence."""
        with self.lock:
            for _ in range(n_epochs):
                if self.status == "diverged" or len(self.F_train) == 0:
                    break
                saved = (self.theta.copy(), [(layer.running_mean.copy(),
                         layer.running_var.copy()) for layer in self.layers
                         if layer.running_mean is not None])
                with np.errstate(all="ignore"):
                    self._epoch()
                    tr, te = self._losses()
                if not (np.all(np.isfinite(self.theta)) and math.isfinite(tr)):
                    self.theta[:] = saved[0]
                    bns = [la for la in self.layers if la.running_mean is not None]
                    for la, (m, v) in zip(bns, saved[1]):
                        la.running_mean[:], la.running_var[:] = m, v
                    self.status = "diverged"
                    break
                self.epoch += 1
                self.history["train"].append(tr)
                self.history["test"].append(te)
                self.history["grad_norms"].append(
                    self._grad_norms() if self.track_grad_norms else None)
            return {"epoch": self.epoch, "train_loss": self.history["train"][-1],
                    "test_loss": self.history["test"][-1], "status": self.status}

    def reset(self, new_init: bool = False) -> Config:
        """Fresh weights (the next ``init_seed`` when ``new_init``), epoch 0."""
        with self.lock:
            if new_init:
                self.config = dataclasses.replace(self.config,
                                                  init_seed=(self.config.init_seed + 1)
                                                  % 2**31)
            self._build()
            return self.config

    # --- weights -------------------------------------------------------------------------
    def set_weight(self, layer: int, source: int, target: int, value: float) -> None:
        """Set weight ``W[layer][source, target]`` (``source == -1``: the bias)."""
        with self.lock:
            for name, v in (("layer", layer), ("source", source), ("target", target)):
                if isinstance(v, bool) or not isinstance(v, int):
                    raise ConfigError(f"{name} must be an integer, got {v!r}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not math.isfinite(value) or abs(value) > 100:
                raise ConfigError(f"value must be a finite number in [-100, 100], got {value!r}")
            if not 0 <= layer < len(self.layers):
                raise ConfigError(f"layer must be in [0, {len(self.layers) - 1}], got {layer}")
            W = self.layers[layer].W
            if not -1 <= source < W.shape[0]:
                raise ConfigError(f"source must be in [-1, {W.shape[0] - 1}], got {source}")
            if not 0 <= target < W.shape[1]:
                raise ConfigError(f"target must be in [0, {W.shape[1] - 1}], got {target}")
            if source == -1:
                self.layers[layer].b[target] = value
            else:
                W[source, target] = value
                idx = self._weight_index(layer, source, target)
                self.dead[idx] = False
            if self.status == "diverged":
                self.status = ""
            tr, te = self._losses()
            self.history["train"][-1], self.history["test"][-1] = tr, te

    def _weight_index(self, layer, source, target):
        """Index into ``theta`` of ``W[layer][source, target]``."""
        return self._w_offsets[layer] + source * self.layers[layer].W.shape[1] + target

    def weights(self):
        """``[(W, b), ...]`` as nested lists, and the dead-weight masks."""
        with self.lock:
            out = []
            for i, la in enumerate(self.layers):
                idx = self._weight_index(i, 0, 0)
                dead = self.dead[idx: idx + la.W.size].reshape(la.W.shape)
                out.append({"W": la.W.tolist(), "b": la.b.tolist(),
                            "dead": dead.astype(int).tolist()})
            return out

    # --- maps ----------------------------------------------------------------------------
    def _grid(self):
        key = self.config.features
        if key not in self._grid_cache:
            xs = np.linspace(-DOMAIN, DOMAIN, DENSITY)
            ys = np.linspace(DOMAIN, -DOMAIN, DENSITY)   # row 0 at the top, as drawn
            gx, gy = np.meshgrid(xs, ys)
            raw = np.column_stack([gx.ravel(), gy.ravel()])
            self._grid_cache = {key: (raw, ft.transform(raw, key))}
        return self._grid_cache[key]

    def maps(self):
        """Per-neuron activations over the 100 x 100 grid on [-6, 6]^2.

        Returns ``(inputs, hidden, output)``: ``inputs`` (100, 100, n_features), ``hidden``
        a list of (100, 100, k) per hidden layer, ``output`` (100, 100) on the [-1, 1]
        scale (a sigmoid output is shown as ``2 p - 1``).
        """
        with self.lock:
            _, F = self._grid()
            cache = _Cache()
            with np.errstate(all="ignore"):
                self._forward(F, train=False, cache=cache)
            shape = (DENSITY, DENSITY)
            hidden = [a.reshape(*shape, -1) for a in cache.acts[:-1]]
            out = cache.acts[-1].reshape(shape)
            if self.output == "sigmoid":
                out = 2 * out - 1
            return F.reshape(*shape, -1), hidden, out

    def accuracy(self) -> dict | None:
        """Train and test accuracy of ``sign(output)`` (classification only)."""
        if self.regression:
            return None
        with self.lock, np.errstate(all="ignore"):
            out = {}
            for name, X, y in (("train", self.data.X_train, self.data.y_train),
                               ("test", self.data.X_test, self.data.y_test)):
                out[name] = _finite(float(np.mean(np.where(self.predict_raw(X) > 0, 1, -1)
                                                  == y))) if len(y) else None
            return out

    def predict_raw(self, X) -> np.ndarray:
        """Output on the [-1, 1] scale for raw points ``X`` (n, 2)."""
        with self.lock:
            o = self._forward(ft.transform(X, self.config.features), train=False)[:, 0]
            return 2 * o - 1 if self.output == "sigmoid" else o

    # --- frames for the page -------------------------------------------------------------
    def frame(self, since: int = 0, maps: bool = True) -> dict:
        """JSON-ready state: counters, losses since epoch ``since``, weights and maps."""
        with self.lock:
            h = self.history
            f = {
                "epoch": self.epoch,
                "status": self.status,
                "train_loss": _finite(h["train"][-1]),
                "test_loss": _finite(h["test"][-1]),
                "since": since,
                "train": [_finite(v) for v in h["train"][since:]],
                "test": [_finite(v) for v in h["test"][since:]],
                "grad_norms": [None if row is None else [_finite(v) for v in row]
                               for row in h["grad_norms"][since:]],
                "sizes": list(self.sizes),
                "weights": self.weights(),
                "accuracy": self.accuracy(),
            }
            if maps:
                inputs, hidden, out = self.maps()
                # inputs (x1^2 reaches 36) are shown scaled by their largest magnitude
                inputs = inputs / np.maximum(np.abs(inputs).max(axis=(0, 1)), 1e-12)
                f["thumbs"] = [[_b64(_thumb(m[:, :, j])) for j in range(m.shape[2])]
                               for m in (inputs, *hidden)]
                f["thumbs"].append([_b64(_thumb(out))])
                f["output"] = _b64(out)
            return f

    def data_frame(self) -> dict:
        """The points (train and test) and the problem type."""
        with self.lock:
            d = self.data
            return {
                "problem": "regression" if self.regression else "classification",
                "train": np.round(np.column_stack([d.X_train, d.y_train]), 4).tolist(),
                "test": np.round(np.column_stack([d.X_test, d.y_test]), 4).tolist(),
                "config": self.config.to_dict(),
            }

    # --- export --------------------------------------------------------------------------
    def export_weights(self):
        """Dense weights with batch normalisation folded in, and the output unit.

        For a tanh output the last layer is scaled by 2, so that a logistic output gives
        ``p = (tanh(z) + 1) / 2`` (``tanh z = 2 sigmoid(2 z) - 1``): the exported classifier
        predicts +1 exactly where the playground's output is positive.
        """
        with self.lock:
            coefs, intercepts = [], []
            for la in self.layers:
                W, b = la.W.copy(), la.b.copy()
                if la.gamma is not None:
                    W, b = bn.fold(W, b, la.gamma, la.beta, la.running_mean, la.running_var,
                                   BN_EPS)
                coefs.append(W)
                intercepts.append(b)
            if self.output == "tanh":
                coefs[-1] = coefs[-1] * 2
                intercepts[-1] = intercepts[-1] * 2
            return coefs, intercepts


KERNEL_ACTIVATION = {"relu": "relu", "tanh": "tanh", "sigmoid": "logistic",
                     "linear": "identity"}


def _load_kernels():
    """``rosenblatt.kernels`` when it imports, else None (the NumPy path trains alone)."""
    try:
        from rosenblatt import kernels
    except ImportError:
        return None
    return kernels if hasattr(kernels, "Trainer") else None


def _finite(v):
    return v if isinstance(v, float) and math.isfinite(v) else None


def _thumb(m):
    k = DENSITY // THUMB
    return m.reshape(THUMB, k, THUMB, k).mean(axis=(1, 3))


def _b64(m):
    """A map in [-1, 1] (clipped) as base64 of uint8 0..254 (127 is 0)."""
    q = np.clip(np.nan_to_num(m, nan=0.0), -1, 1)
    return base64.b64encode(np.rint((q + 1) * 127).astype(np.uint8).tobytes()).decode()


# --- export --------------------------------------------------------------------------------
SKLEARN_ACTIVATION = {"relu": "relu", "tanh": "tanh", "sigmoid": "logistic",
                      "linear": "identity"}


def _from_weights(regression, coefs, intercepts, activation):
    """A fitted ``rosenblatt`` MLP from weights (falls back to a scikit-learn one).

    The fallback sets scikit-learn's fitted attributes by hand; it exists only until
    ``rosenblatt.MLPClassifier.from_weights`` is available.
    """
    try:
        from rosenblatt import MLPClassifier, MLPRegressor
        if regression:
            return MLPRegressor.from_weights(coefs, intercepts, activation=activation)
        return MLPClassifier.from_weights(coefs, intercepts, classes=[-1, 1],
                                          activation=activation)
    except (ImportError, AttributeError):
        pass
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.preprocessing import LabelBinarizer

    hidden = tuple(w.shape[1] for w in coefs[:-1])
    est = (MLPRegressor if regression else MLPClassifier)(hidden_layer_sizes=hidden,
                                                          activation=activation)
    est.coefs_ = [np.array(w, dtype=float) for w in coefs]
    est.intercepts_ = [np.array(b, dtype=float) for b in intercepts]
    est.n_features_in_ = coefs[0].shape[0]
    est.n_layers_ = len(coefs) + 1
    est.n_outputs_ = 1
    est.n_iter_ = 0
    est.t_ = 0
    if regression:
        est.out_activation_ = "identity"
    else:
        est.out_activation_ = "logistic"
        est.classes_ = np.array([-1, 1])
        est._label_binarizer = LabelBinarizer().fit(est.classes_)
    return est


def to_estimator(session: Session):
    """The session's network as a fitted pipeline: feature map, then the MLP.

    ``predict`` takes raw points ``(n, 2)``; the classifier's ``predict_proba[:, 1]`` is
    ``(o + 1) / 2`` of the playground's output ``o``.
    """
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    with session.lock:
        coefs, intercepts = session.export_weights()
        c = session.config
        mlp = _from_weights(session.regression, coefs, intercepts,
                            SKLEARN_ACTIVATION[c.activation])
        pre = FunctionTransformer(ft.transform, kw_args={"features": list(c.features)})
        return make_pipeline(pre, mlp)


def to_snippet(session: Session) -> str:
    """A short Python program that rebuilds the session's network as an estimator."""
    with session.lock:
        coefs, intercepts = session.export_weights()
        c = session.config
        cls = "MLPRegressor" if session.regression else "MLPClassifier"
        extra = "" if session.regression else "classes=[-1, 1], "

        def arr(a):
            return "np.array(" + repr(np.asarray(a).tolist()) + ")"

        lines = [
            (f"# rosenblatt playground: {c.dataset}, features {list(c.features)}, "
            f"layers {list(c.layers)}, {c.activation}, epoch {session.epoch}"),
            "import numpy as np",
            f"from rosenblatt import {cls}",
            "from rosenblatt.playground.features import transform",
            "",
            "coefs = [",
            *(f"    {arr(w)}," for w in coefs),
            "]",
            "intercepts = [",
            *(f"    {arr(b)}," for b in intercepts),
            "]",
            (f"model = {cls}.from_weights(coefs, intercepts, {extra}"
            f"activation={SKLEARN_ACTIVATION[c.activation]!r})"),
            f"FEATURES = {list(c.features)!r}",
            "",
            "def predict(points):",
            "    \"\"\"Predictions for raw points of shape (n, 2).\"\"\"",
            "    return model.predict(transform(points, FEATURES))",
            "",
        ]
        return "\n".join(lines)
