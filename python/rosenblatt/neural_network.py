"""Multilayer perceptrons with scikit-learn's API: MLPClassifier and MLPRegressor.

The estimators are drop-in replacements for ``sklearn.neural_network.MLPClassifier`` and
``MLPRegressor``: same parameters, defaults, fitted attributes and methods, and - with the
same ``random_state`` - the same model (initial weights and per-epoch row orders are drawn
exactly as scikit-learn draws them). The epoch loop runs inside the backend's
``train_epoch`` (see :mod:`rosenblatt.kernels`); Python is entered once per epoch for the
bookkeeping scikit-learn does there (loss curve, stopping rule, learning-rate schedule),
plus what this library adds (validation loss, callbacks, best-weight restoring).

Parameters live in ONE flat vector in the kernels' layout (``W_0, b_0, W_1, b_1, ...``).
``coefs_`` and ``intercepts_`` are lists of views into it, so in-place edits write through;
when a user replaces an array (or a whole list), the next ``predict``/``fit``/``partial_fit``
notices (an identity check per layer) and re-packs the flat vector from the lists.

With ``batch_norm=True`` each hidden layer's pre-activation is batch-normalised. Training
then runs a per-batch loop over the kernels from Python (:class:`_BatchNormTrainer`),
slower than ``train_epoch``; ``gamma``/``beta`` sit after the weights in one vector that
the optimizer steps as a whole. Prediction folds the running statistics into the dense
weights (``kernels.batchnorm_fold``) and runs the usual one-call ``mlp_forward``.
"""

import contextlib
import math
import operator
import time
import warnings
from collections.abc import Mapping
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import scipy.optimize
import scipy.sparse as sp
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    RegressorMixin,
    _fit_context,
    is_classifier,
)
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from . import _codes as C
from . import kernels as K
from ._rows import block_rows, check_narrowing, dense_rows, kernel_array
from ._validation import check_partial_fit_classes, fitted_dense_xy

__all__ = ["MLPClassifier", "MLPRegressor"]

# hidden activations a network may use; the step functions only in predict-only networks
_HIDDEN_NAMES = frozenset(C.ACTIVATION_NAMES[c] for c in C.HIDDEN)
_STEP_NAMES = frozenset(C.ACTIVATION_NAMES[c] for c in C.STEPS)
_SOLVERS = ("lbfgs", "sgd", "adam", "adagrad", "rmsprop", "adamw")
_STOCHASTIC = frozenset(s for s in _SOLVERS if s != "lbfgs")
# solvers whose learning rate follows `learning_rate` (adam's own schedule is built in)
_SCHEDULED = frozenset({"sgd", "adagrad", "rmsprop"})
_KERNEL_INITS = ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun")
# rows per block when predicting on sparse input or on a row subset of the training data:
# densify or gather a block, never the whole matrix
_BLOCK = 4096
# Fits of networks whose epoch is at most this many multiply-adds (rows x parameters) run
# up to _BLOCK_EPOCHS epochs per call of the compiled core, which spares the call and the
# per-epoch bookkeeping around it: a playground epoch (500 rows, 105 parameters, in fits
# of 100 epochs) 43.9 -> 41.0 us. Most of what remains is the core's 32 us and NumPy's
# shuffle (4.5 us, which the row orders of scikit-learn need). Larger epochs gain nothing
# from it, and a Ctrl-C drops a block whole.
_BLOCK_WORK = 1 << 20
_BLOCK_EPOCHS = 32
# batch normalisation (batch_norm=True): PyTorch's defaults, as the Playground
_BN_EPS = 1e-5
_BN_MOMENTUM = 0.1


def _quiet_numpy():
    # around the NumPy reference's epochs only: a diverging fit is reported by the
    # estimator, not by floating-point warnings (the compiled backends raise none)
    return np.errstate(over="ignore", invalid="ignore", divide="ignore")


# backend name -> module, for predict (kernels.get_backend re-resolves on every call)
_BACKEND_MODULES = {}


def _step_error(name):
    return ValueError(
        f"activation {name!r} is a step function: step functions are forward-only (their "
        "derivative is zero almost everywhere, so backpropagation cannot train them). Use "
        "logistic, tanh or relu to train, or build a predict-only network with "
        "from_weights(...)")


def _sparse_epoch(trainer, X, Y, sample_weight, order, batch_size):
    """One epoch over CSR ``X`` in ``order``: blocks of whole minibatches are densified
    and trained in turn (the same minibatches and steps as one epoch over dense X)."""
    dt = trainer.params.dtype
    block = block_rows(X.shape[1], dt, batch_size)
    total = 0.0
    for s in range(0, order.shape[0], block):
        rows = order[s:s + block]
        total += trainer.run_block(dense_rows(X, rows, dt), Y[rows],
                                   None if sample_weight is None else sample_weight[rows])
    return total


class BaseMultilayerPerceptron(BaseEstimator):
    """Shared machinery of :class:`MLPClassifier` and :class:`MLPRegressor`.

    Not meant to be used directly.
    """

    _parameter_constraints: ClassVar[dict] = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(_HIDDEN_NAMES)), tuple, list],
        "solver": [StrOptions(set(_SOLVERS))],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"),
                             Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "rho": [Interval(Real, 0, 1, closed="left")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "kernel_init": [StrOptions(set(_KERNEL_INITS))],
        "callbacks": [list, tuple, None],
        "restore_best_weights": ["boolean"],
        "batch_norm": ["boolean"],
        "backend": [StrOptions({"auto", "cpp", "numba", "numpy"})],
        "n_threads": [Interval(Integral, 0, None, closed="left"), None],
    }

    # ----------------------------------------------------------------------------------
    # the flat parameter vector and the coefs_/intercepts_ views

    def _bind(self, params, layer_sizes):
        """Make ``params`` the model's flat vector; expose per-layer views of it."""
        self._params = params
        self._layer_sizes = np.asarray(layer_sizes, dtype=np.int64)
        self._layer_list = [int(v) for v in self._layer_sizes]
        self._block_rows = K.mlp_block_rows(self._layer_list)  # rows per forward call
        coefs, intercepts = [], []
        offs, _ = K.param_offsets(self._layer_sizes)
        for (w, bo), fan_in, fan_out in zip(offs, self._layer_sizes[:-1],
                                            self._layer_sizes[1:]):
            fan_in, fan_out = int(fan_in), int(fan_out)
            coefs.append(params[w:bo].reshape(fan_in, fan_out))
            intercepts.append(params[bo:bo + fan_out])
        self.coefs_ = coefs
        self.intercepts_ = intercepts
        self._views = (coefs, intercepts, tuple(coefs), tuple(intercepts))

    def _set_act_codes(self, acts):
        """Kernel codes of the hidden layers (``acts``, from ``activation``) and of the output
        layer (``out_activation_``)."""
        self._act_codes = np.array([C.ACTIVATIONS[a] for a in acts]
                                   + [C.ACTIVATIONS[self.out_activation_]], dtype=np.int32)
        self._act_param = self.activation

    def _sync(self):
        """Re-pack the flat vector if the user replaced ``coefs_``/``intercepts_`` entries,
        and take up an ``activation`` set since the codes were made (scikit-learn reads it
        at every forward pass, so a new activation applies to predict and to warm-started
        or partial fits; ``out_activation_`` stays).

        Identity tests: cheap enough to run before every predict.
        """
        if self.activation is not self.__dict__.get("_act_param"):
            self._set_act_codes(self._hidden_activations(len(self._act_codes) - 1))
        coefs, intercepts, cv, iv = self._views
        c, i = self.coefs_, self.intercepts_
        if (c is coefs and i is intercepts and len(c) == len(cv) and len(i) == len(iv)
                and all(map(operator.is_, c, cv)) and all(map(operator.is_, i, iv))):
            return
        self._repack(c, i)

    def _repack(self, coefs, intercepts):
        coefs = [np.asarray(W) for W in coefs]
        intercepts = [np.asarray(b) for b in intercepts]
        for name, arrays in (("coefs_", coefs), ("intercepts_", intercepts)):
            for k, a in enumerate(arrays):
                if a.dtype.kind not in "biuf":
                    raise TypeError(f"{name}[{k}] must hold real numbers; got dtype {a.dtype}")
        L = len(self._act_codes)
        if len(coefs) != L or len(intercepts) != L:
            raise ValueError(f"coefs_ and intercepts_ must hold {L} layers each; got "
                             f"{len(coefs)} and {len(intercepts)}")
        sizes = [coefs[0].shape[0] if coefs[0].ndim == 2 else -1]
        for k, (W, b) in enumerate(zip(coefs, intercepts)):
            if W.ndim != 2 or W.shape[0] != sizes[-1] or b.shape != (W.shape[1],):
                raise ValueError(
                    f"coefs_[{k}] has shape {W.shape} and intercepts_[{k}] {b.shape}; "
                    f"expected ({sizes[-1]}, m) and (m,) chaining with the previous layer")
            sizes.append(W.shape[1])
        if sizes[0] != self.n_features_in_ or sizes[-1] != self.n_outputs_:
            raise ValueError(f"coefs_ map {sizes[0]} inputs to {sizes[-1]} outputs; the "
                             f"model has {self.n_features_in_} and {self.n_outputs_}")
        dt = self._params.dtype
        params = K.aligned_zeros(sum(W.size + b.size for W, b in zip(coefs, intercepts)), dt)
        np.concatenate([np.concatenate([W.ravel(), b]) for W, b in zip(coefs, intercepts)],
                       out=params, casting="unsafe")
        self._bind(params, sizes)

    # ----------------------------------------------------------------------------------
    # batch normalisation state: gamma/beta (trained) and the running statistics

    def _has_bn(self):
        return self.__dict__.get("_bn_vec") is not None

    def _bn_bind(self, vec, run):
        """Make ``vec`` (gamma, beta per hidden layer) and ``run`` (running mean, var) the
        model's batch-norm vectors; expose per-layer views as ``batch_norm_params_``."""
        self._bn_vec, self._bn_run = vec, run
        layers, o = [], 0
        for m in (int(v) for v in self._layer_sizes[1:-1]):
            layers.append({"gamma": vec[o:o + m], "beta": vec[o + m:o + 2 * m],
                           "running_mean": run[o:o + m], "running_var": run[o + m:o + 2 * m]})
            o += 2 * m
        self.batch_norm_params_ = layers

    def _bn_init(self, dtype):
        """Identity normalisation to start from: gamma 1, beta 0, running mean 0, var 1."""
        size = 2 * int(sum(int(v) for v in self._layer_sizes[1:-1]))
        self._bn_bind(np.empty(size, dtype=dtype), np.empty(size, dtype=dtype))
        for p in self.batch_norm_params_:
            p["gamma"][...] = 1.0
            p["beta"][...] = 0.0
            p["running_mean"][...] = 0.0
            p["running_var"][...] = 1.0
        self._best_bn = None

    def _bn_clear(self):
        for key in ("_bn_vec", "_bn_run", "batch_norm_params_", "_best_bn"):
            self.__dict__.pop(key, None)

    def _bn_snapshot(self):
        return (self._bn_vec.copy(), self._bn_run.copy()) if self._has_bn() else None

    def _bn_restore(self, snap):
        if snap is not None and self._has_bn():
            np.copyto(self._bn_vec, snap[0])
            np.copyto(self._bn_run, snap[1])

    def _inference_params(self):
        """The flat vector ``mlp_forward`` runs: the weights, with batch normalisation's
        running statistics folded into each hidden layer when the model has it."""
        if not self._has_bn():
            return self._params
        L = len(self.coefs_)
        parts = []
        for k, (W, b) in enumerate(zip(self.coefs_, self.intercepts_)):
            if k < L - 1:
                p = self.batch_norm_params_[k]
                W, b = K.batchnorm_fold(W, b, p["gamma"], p["beta"], p["running_mean"],
                                        p["running_var"], _BN_EPS)
            parts += [W.ravel(), b]
        return np.concatenate(parts)

    # ----------------------------------------------------------------------------------
    # configuration read from the parameters

    def _hidden_activations(self, n_hidden):
        act = self.activation
        acts = [act] * n_hidden if isinstance(act, str) else list(act)
        if len(acts) != n_hidden:
            raise ValueError(f"activation has {len(acts)} entries but the network has "
                             f"{n_hidden} hidden layers; give one per hidden layer")
        for a in acts:
            if a not in _HIDDEN_NAMES:
                raise ValueError(f"activation {a!r} is unknown; expected one of "
                                 f"{sorted(_HIDDEN_NAMES)}")
        return acts

    def _hidden_sizes(self):
        hls = self.hidden_layer_sizes
        if not hasattr(hls, "__iter__"):
            hls = [hls]
        sizes = []
        for h in hls:
            # integers only, as in scikit-learn: 3.5 or True is a mistake, not 3 or 1 units
            try:
                if isinstance(h, (bool, np.bool_)):
                    raise TypeError
                sizes.append(operator.index(h))
            except TypeError:
                raise TypeError(f"hidden_layer_sizes must contain integers; got {h!r} "
                                f"({type(h).__name__})") from None
        if any(h <= 0 for h in sizes):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
        return sizes

    def _init_bound_factor(self, acts, layer):
        # scikit-learn: factor 2 when the hidden activation is logistic (output layer
        # included); a per-layer tuple takes each layer's own, the output the last one's
        if not acts:
            return 2.0 if self.activation == "logistic" else 6.0
        a = acts[min(layer, len(acts) - 1)]
        return 2.0 if a == "logistic" else 6.0

    def _init_params(self, layer_units, acts, dtype):
        """Draw the initial weights with self._random_state, layer by layer, W then b."""
        _, total = K.param_offsets(layer_units)
        params = K.aligned_zeros(total, dtype)
        self._bind(params, layer_units)
        rs = self._random_state
        init = self.kernel_init
        for k, (W, b) in enumerate(zip(self.coefs_, self.intercepts_)):
            fan_in, fan_out = W.shape
            if init == "glorot_uniform":
                bound = np.sqrt(self._init_bound_factor(acts, k) / (fan_in + fan_out))
                # drawn in float64 then cast, as scikit-learn; biases are not zero there
                W[...] = rs.uniform(-bound, bound, (fan_in, fan_out))
                b[...] = rs.uniform(-bound, bound, fan_out)
                continue
            if init == "glorot_normal":
                W[...] = rs.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), (fan_in, fan_out))
            elif init == "he_uniform":
                bound = np.sqrt(6.0 / fan_in)
                W[...] = rs.uniform(-bound, bound, (fan_in, fan_out))
            elif init == "he_normal":
                W[...] = rs.normal(0.0, np.sqrt(2.0 / fan_in), (fan_in, fan_out))
            else:  # lecun (normal)
                W[...] = rs.normal(0.0, np.sqrt(1.0 / fan_in), (fan_in, fan_out))
            b[...] = 0.0  # the usual convention of these schemes

    # ----------------------------------------------------------------------------------
    # the entry checks of fit and partial_fit, made cheap for repeated calls: on a small
    # network scikit-learn's generic checks cost more than many epochs (warm-started fits,
    # partial_fit loops), so the common cases take a short path with the same outcome

    @classmethod
    def _get_param_names(cls):
        # scikit-learn inspects __init__'s signature on every get_params; once per class
        names = cls.__dict__.get("_param_names")
        if names is None:
            names = cls._param_names = tuple(super()._get_param_names())
        return list(names)

    def _validate_params(self):
        """scikit-learn's parameter validation, skipped when every parameter is the very
        object validated by the previous fit (the constraints on mutable values, lists
        and arrays, are on their type, which an in-place change keeps)."""
        values = tuple(getattr(self, name) for name in self._get_param_names())
        last = self.__dict__.get("_validated_params")
        if last is not None and len(last) == len(values) and all(map(operator.is_, values,
                                                                      last)):
            return
        super()._validate_params()
        self._validated_params = values

    def _check_random_state(self):
        """check_random_state(self.random_state). For an int seed, the RandomState built
        by an earlier fit is re-seeded instead of building a new one (whose construction
        first seeds itself from OS entropy, ~0.1 ms): the same draws."""
        seed = self.random_state
        if not isinstance(seed, Integral):
            return check_random_state(seed)
        rs = self.__dict__.get("_own_random_state")
        if rs is None:
            rs = self._own_random_state = np.random.RandomState(seed)
        else:
            rs.seed(seed)
        return rs

    def _all_finite(self, X):
        """Whether float array X holds no NaN or infinity, by the estimator's backend
        (the compiled core reads X once; NumPy's isfinite writes a temporary as large)."""
        try:
            be = K.resolve_backend(self.backend)
        except (ValueError, RuntimeError):
            be = "numpy"  # the fit itself reports the bad backend
        return K.all_finite(X, backend=be)

    def _check_X_y(self, X, y, reset, y_numeric=False, finite_x=True):
        """validate_data(self, X, y, ...) as fit calls it; dense float X and numeric y of a
        fitted estimator (same feature count, no feature names) are only checked for
        finiteness, which is all validate_data would do with them - and not even that with
        ``finite_x=False``, when the first epoch's gather checks the rows it reads (see
        _fit)."""
        if not reset and fitted_dense_xy(self, X, y) and (not finite_x
                                                          or self._all_finite(X)):
            return X, y
        return validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             y_numeric=y_numeric, dtype=(np.float64, np.float32),
                             reset=reset)

    # ----------------------------------------------------------------------------------
    # fitting

    def _initialize(self, Y, layer_units, acts, dtype):
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = Y.shape[1]
        self.n_layers_ = len(layer_units)
        self.out_activation_ = self._output_activation()
        self._set_act_codes(acts)
        self._init_params(layer_units, acts, dtype)
        self._best_params = self._params.copy()
        self._opt_state = None
        if self.solver in _STOCHASTIC:
            self._init_curves()

    def _init_curves(self):
        self.loss_curve_ = []
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None
        self.validation_loss_curve_ = None

    def _fit(self, X, y, sample_weight=None, incremental=False, validation_data=None):
        for k, cb in enumerate(self.callbacks or ()):
            if not callable(cb):
                raise TypeError(f"callbacks[{k}] must be callable as cb(estimator, logs); got "
                                f"{type(cb).__name__}")
        hidden = self._hidden_sizes()
        acts = self._hidden_activations(len(hidden))
        for a in acts:
            if a in _STEP_NAMES:
                raise _step_error(a)
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        if self.batch_norm and self.solver == "lbfgs":
            raise ValueError("batch_norm=True needs a stochastic solver (batch statistics); "
                             "the lbfgs solver runs full-batch")

        # A fitted network's next fit without a validation split (partial_fit, warm_start)
        # reads every row of X in its first epoch: the trainer's gather looks for NaN and
        # infinity in the rows it copies (Trainer.run_epoch(check_finite=True)) instead of
        # a pass over all of X first, which read it from memory once more (4.6 ms of a
        # 177 ms fashion epoch). The estimator is then put back as it was on entry and
        # scikit-learn's error raised, as if validate_data had found the value. Only for
        # X of the model's dtype: float64 X of a float32 model is first checked for values
        # that would overflow float32 (check_narrowing), an infinity among them.
        fitted = self.__dict__.get("_params")
        defer_finite = (not first_pass and self.solver != "lbfgs" and not self.batch_norm
                        and not self.early_stopping and validation_data is None
                        and fitted is not None and isinstance(X, np.ndarray)
                        and X.dtype == fitted.dtype)
        entry = dict(self.__dict__) if defer_finite else None
        X_in, y_in = X, y
        X, y, Y = self._validate_input(X, y, incremental, reset=first_pass,
                                       finite_x=not defer_finite)
        if not first_pass:
            self._sync()
            dtype = self._params.dtype
            check_narrowing(X, dtype)
            check_narrowing(Y, dtype)  # a regressor's targets (a classifier's are 0/1)
        else:
            # the builtin dtype, not X's own instance (see __setstate__ on why)
            dtype = np.dtype(X.dtype.type)
        # at most one copy of X: a strided or other-dtype array is copied once, a
        # C-contiguous float array of the right dtype not at all. Sparse input stays sparse
        # for the stochastic solvers (densified a block of rows at a time, see
        # _sparse_epoch); lbfgs and batch norm densify it once.
        if sp.issparse(X) and self.solver != "lbfgs" and not self.batch_norm:
            X = X.tocsr()
        else:
            X = X.toarray() if sp.issparse(X) else X
            X = kernel_array(X, dtype)
        Y = kernel_array(Y, dtype)
        n_features = X.shape[1]
        sample_weight = self._sample_weight(sample_weight, X, y, incremental, dtype)

        layer_units = [n_features] + hidden + [Y.shape[1]]
        self._random_state = self._check_random_state()
        if first_pass:
            self._initialize(Y, layer_units, acts, dtype)
            self._bn_clear()
            if self.batch_norm:
                self._bn_init(dtype)
        else:
            # partial_fit and warm_start continue the fitted network
            new = ("call fit with warm_start=False to fit a new network" if incremental
                   else "set warm_start=False to fit a new network")
            if bool(self.batch_norm) != self._has_bn():
                raise ValueError(
                    f"the fitted network was built with batch_norm={self._has_bn()} but "
                    f"batch_norm={self.batch_norm} now; {new}")
            if self._layer_list != layer_units:
                raise ValueError(
                    f"the fitted network has layer sizes "
                    f"{[int(u) for u in self._layer_sizes]} but the data and "
                    f"hidden_layer_sizes ask for {layer_units}; {new}")
            for code in self._act_codes:
                if int(code) in C.STEPS:
                    raise _step_error(C.ACTIVATION_NAMES[int(code)])
        self.backend_ = K.resolve_backend(self.backend)

        if self.solver == "lbfgs":
            if validation_data is not None:
                raise ValueError("validation_data needs a stochastic solver; the lbfgs "
                                 "solver runs full-batch and keeps no curves")
            self._fit_lbfgs(X, Y, sample_weight)
        else:
            try:
                self._fit_stochastic(X, y, Y, sample_weight, incremental, validation_data,
                                     check_finite=defer_finite)
            except K.NonFiniteRowError:
                # (params, optimizer state and random state were restored by
                # _fit_stochastic; the attributes it and the lines above set, here)
                self.__dict__.clear()
                self.__dict__.update(entry)
                self._check_X_y(X_in, y_in, reset=False, y_numeric=not is_classifier(self))
                raise  # (the check above raises scikit-learn's error; this cannot run)

        if not np.isfinite(self._params).all():
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may"
                " contain large values and need to be preprocessed.")
        return self

    def _sample_weight(self, sample_weight, X, y, incremental, dtype):
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=dtype)
        cw = getattr(self, "class_weight", None)
        if cw is not None:
            if incremental and cw == "balanced":
                raise ValueError("class_weight='balanced' is not supported by partial_fit "
                                 "(the class frequencies of a stream are unknown); pass a "
                                 "dict of weights instead")
            if isinstance(cw, Mapping) and not all(
                    isinstance(v, Real) and math.isfinite(v) and v >= 0 for v in cw.values()):
                raise ValueError(f"class_weight values must be finite and non-negative; "
                                 f"got {cw!r}")
            w = compute_sample_weight(cw, y).astype(dtype)
            sample_weight = w if sample_weight is None else sample_weight * w
        if sample_weight is not None:
            sample_weight = kernel_array(sample_weight, dtype)
        return sample_weight

    # the settings an optimizer is made with; partial_fit keeps them (see _fit_stochastic)
    _OPT_SETTINGS = ("solver", "learning_rate_init", "learning_rate", "power_t", "momentum",
                     "nesterovs_momentum", "beta_1", "beta_2", "epsilon", "rho",
                     "weight_decay")

    def _hyper(self, lr):
        o = self._opt_config
        return {"lr": lr, "momentum": o["momentum"], "beta1": o["beta_1"],
                "beta2": o["beta_2"], "eps": o["epsilon"], "rho": o["rho"],
                "weight_decay": o["weight_decay"] if o["solver"] == "adamw" else 0.0,
                "alpha": self.alpha, "huber_delta": self._huber_delta()}

    def _huber_delta(self):
        return 1.0

    def _optimizer_name(self):
        o = self._opt_config
        if o["solver"] == "sgd":
            return "nesterov" if o["nesterovs_momentum"] else "sgd"
        return o["solver"]

    def _validation_set(self, X, y, Y, sample_weight, validation_data):
        """Return (train_idx, Xv, val_idx, yv, Yv, swv) - Nones without a validation set.

        With early stopping and no validation_data, rows are split off exactly as
        scikit-learn splits them (same train_test_split call, same RandomState), but as
        indices: training visits X through an index order and validation reads X's
        ``val_idx`` rows block by block, so X is never copied.
        """
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or \
                    len(validation_data) not in (2, 3):
                raise ValueError("validation_data must be a tuple (X_val, y_val) or "
                                 "(X_val, y_val, sample_weight_val)")
            Xv, yv = validation_data[0], validation_data[1]
            swv = validation_data[2] if len(validation_data) == 3 else None
            Xv, yv = validate_data(self, Xv, yv, reset=False, accept_sparse=["csr", "csc"],
                                   multi_output=True, dtype=(np.float64, np.float32),
                                   y_numeric=not hasattr(self, "classes_"))
            if yv.ndim == 2 and yv.shape[1] == 1:
                yv = column_or_1d(yv, warn=False)
            if is_classifier(self) and yv.ndim == 1:
                # an unknown label would be encoded as no class at all (an all-zero target)
                unknown = np.setdiff1d(np.unique(yv), self.classes_)
                if unknown.size:
                    raise ValueError(
                        f"validation_data has labels that are not in the training classes "
                        f"{self.classes_.tolist()}: {unknown.tolist()}")
            dt = self._params.dtype  # X's, unless X is sparse
            Xv = Xv.toarray() if sp.issparse(Xv) else Xv
            check_narrowing(Xv, dt)
            Xv = kernel_array(Xv, dt)
            Yv = kernel_array(self._encode_y(yv), dt)
            # checked before the first epoch (scoring the validation set after it would
            # raise with the model already changed, naming the kernels' arguments)
            if Yv.ndim != 2 or Yv.shape[1] != self.n_outputs_:
                raise ValueError(
                    f"validation_data's y has {Yv.shape[1] if Yv.ndim == 2 else 1} "
                    f"target(s) per row; the model has {self.n_outputs_}")
            if swv is not None:
                swv = kernel_array(_check_sample_weight(swv, Xv, dtype=Xv.dtype))
                if (swv < 0).any() or not swv.sum() > 0:
                    raise ValueError("validation_data's sample_weight must be non-negative "
                                     "with a positive sum")
            return None, Xv, None, yv, Yv, swv
        if not self.early_stopping:
            return None, None, None, None, None, None
        # don't stratify in multilabel (nor, as scikit-learn, in multiclass) problems
        stratify = self._stratify_target(Y) if self.n_outputs_ == 1 else None
        train_idx, val_idx = train_test_split(
            np.arange(X.shape[0], dtype=np.int64), random_state=self._random_state,
            test_size=self.validation_fraction, stratify=stratify)
        if val_idx.shape[0] < 2:
            raise ValueError(
                "The validation set is too small. Increase 'validation_fraction' "
                "or the size of your dataset.")
        swv = None if sample_weight is None else sample_weight[val_idx]
        return (np.ascontiguousarray(train_idx), X, np.ascontiguousarray(val_idx),
                y[val_idx], Y[val_idx], swv)

    def _stratify_target(self, Y):
        return None

    def _batch_size(self, n):
        if self.batch_size == "auto":
            return min(200, n)
        if self.batch_size > n:
            warnings.warn("Got `batch_size` less than 1 or larger than "
                          "sample size. It is going to be clipped")
        return int(min(max(self.batch_size, 1), n))

    def _fit_stochastic(self, X, y, Y, sample_weight, incremental, validation_data,
                        check_finite=False):
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        if not incremental or getattr(self, "_opt_state", None) is None \
                or self.__dict__.get("_opt_config") is None:
            # a new optimizer (scikit-learn: fit and warm_start start one afresh,
            # partial_fit keeps the one it finds - with the solver, learning-rate schedule
            # and optimizer settings it was made with, whatever set_params did since)
            self._opt_state = None
            self._opt_step = 0
            self._opt_lr = float(self.learning_rate_init)
            self._opt_config = {k: getattr(self, k) for k in self._OPT_SETTINGS}
        opt = self._opt_config
        solver = opt["solver"]

        if not hasattr(self, "loss_curve_"):
            # a network built by from_weights, or last fitted by lbfgs
            self._init_curves()
        train_idx, Xv, val_idx, yv, Yv, swv = self._validation_set(
            X, y, Y, sample_weight, validation_data)
        has_val = Xv is not None
        if has_val:
            # continued by warm_start and partial_fit, like loss_curve_
            if self.validation_loss_curve_ is None:
                self.validation_loss_curve_ = []
            if self.validation_scores_ is None:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf

        n_train = X.shape[0] if train_idx is None else train_idx.shape[0]
        batch_size = self._batch_size(n_train)
        if self._has_bn() and batch_size < 2:
            # (PyTorch refuses it too: the batch statistics of one row normalise it to 0)
            raise ValueError(f"batch_norm=True needs minibatches of at least 2 rows; got "
                             f"batch_size={batch_size} (1 sample per minibatch, of "
                             f"{n_train} training rows)")
        sparse_rows = sp.issparse(X)  # batch norm densified it in _fit
        if self._has_bn():
            trainer = _BatchNormTrainer(self, X, Y, sample_weight, batch_size)
            params = trainer.params  # weights, then gamma and beta
        else:
            # sparse X: the trainer is made with a first block (shapes, batch size) and
            # every epoch runs block by block
            first = slice(0, batch_size) if sparse_rows else slice(None)
            trainer = K.Trainer(
                dense_rows(X, first, self._params.dtype), Y[first], self._params,
                self._layer_sizes, self._act_codes, self._loss_name(),
                self._optimizer_name(), self._hyper(self._opt_lr), batch_size,
                sample_weight=None if sample_weight is None else sample_weight[first],
                state=self._opt_state, step=self._opt_step, backend=self.backend_,
                n_threads=self.n_threads)
            if sparse_rows:
                # the first block only gave the trainer its shapes; each run_block brings
                # its own rows (a batch of wide rows can be tens of megabytes)
                trainer.X = trainer.X[:1].copy()
            params = self._params
        self._opt_state = trainer.state

        last_good = np.empty_like(params)
        rbw = self.restore_best_weights and not self.early_stopping
        rbw_best, rbw_params, rbw_bn = np.inf, None, None
        rs = self._random_state
        sample_idx = np.arange(n_train, dtype=np.int64)
        # a minibatch of zero total weight has no loss: scikit-learn's np.average raises
        # ZeroDivisionError; looked for here, once per epoch for every trainer (run_epoch
        # with check=False does not), and only when a weight is 0
        zero_weights = sample_weight is not None and not (sample_weight != 0).all()
        quiet_numpy = _quiet_numpy if self.backend_ == "numpy" else contextlib.nullcontext
        callbacks = list(self.callbacks) if self.callbacks else []

        # What training changes, to undo it: a first epoch that meets a non-finite row of
        # X (check_finite), a block of epochs that diverged (sample_idx too: each epoch
        # shuffles the previous epoch's order again).
        def snapshot():
            return (params.copy(), trainer.state.copy(), int(trainer.step[0]),
                    rs.get_state(), sample_idx.copy())

        def restore(before):
            np.copyto(params, before[0])
            np.copyto(trainer.state, before[1])
            trainer.step[0] = before[2]
            rs.set_state(before[3])
            np.copyto(sample_idx, before[4])

        entry_state = snapshot() if check_finite else None
        # Epochs of a small network run in blocks, several per call of the backend (see
        # _BLOCK_WORK); their losses are then booked for the block at once, as each epoch
        # would have booked its own. A block that diverges is undone and run epoch by epoch.
        blockable = (not incremental and self.backend_ == "cpp" and not sparse_rows
                     and not self._has_bn() and not has_val and not callbacks
                     and not self.verbose and not rbw and not zero_weights
                     and not (solver in _SCHEDULED and opt["learning_rate"] == "invscaling")
                     and n_train * params.shape[0] <= _BLOCK_WORK)
        single_until = 0  # epochs up to this one run singly (after a diverged block)

        def train_block(k):
            """Train the next k epochs in one call; their totals, or None (all undone)
            when one of them diverged."""
            before = snapshot()
            orders = np.empty(k * n_train, dtype=np.int64)
            for e in range(k):
                if self.shuffle:
                    rs.shuffle(sample_idx)
                orders[e * n_train:(e + 1) * n_train] = sample_idx
            try:
                totals = trainer.run_epochs(orders, k)
            except KeyboardInterrupt:
                restore(before)
                raise
            # (a weight, once non-finite, stays so: the final ones show every epoch's)
            if np.isfinite(totals).all() and np.isfinite(params).all():
                return totals
            restore(before)
            return None

        self.n_iter_ = 0
        try:
            while self.n_iter_ < self.max_iter:
                if blockable and self.n_iter_ >= single_until and not check_finite:
                    # (a stop for want of improvement comes at the block's last epoch at
                    # the earliest: the count grows by at most one per epoch)
                    k = min(self.max_iter - self.n_iter_, _BLOCK_EPOCHS,
                            self.n_iter_no_change - self._no_improvement_count + 1)
                    totals = train_block(k) if k >= 2 else None
                    if totals is not None:
                        # the per-epoch bookkeeping below, for k epochs at once
                        losses = (totals / n_train).tolist()
                        for loss in losses:
                            self._count_no_improvement(loss)
                        self.n_iter_ += k
                        self._opt_step = int(trainer.step[0])
                        self.loss_ = losses[-1]
                        self.t_ += k * n_train
                        self.loss_curve_.extend(losses)
                        if self._stop_for_no_improvement(trainer):
                            break
                        self._warn_at_max_iter()
                        continue
                    if k >= 2:  # (diverged: undone, run singly to report the epoch)
                        single_until = self.n_iter_ + k
                t0 = time.perf_counter()
                if self.shuffle:
                    # sklearn.utils.shuffle: a fresh permutation perm (rs.shuffle of an
                    # arange) composed onto the order, sample_idx[perm] - which is what
                    # shuffling sample_idx in place gives (the same swaps)
                    rs.shuffle(sample_idx)
                order = sample_idx if train_idx is None else train_idx[sample_idx]
                if zero_weights:
                    K.check_batch_weights(sample_weight, order, batch_size)
                np.copyto(last_good, params)
                last_run = self._bn_snapshot()
                lr_epoch = self._opt_lr
                # a diverging fit is detected and reported below (with the learning rate);
                # the NumPy reference would first warn about overflow in its matmuls
                with quiet_numpy():
                    if sparse_rows:
                        total = _sparse_epoch(trainer, X, Y, sample_weight, order,
                                              batch_size)
                    elif check_finite:
                        try:
                            total = trainer.run_epoch(order, check=False, check_finite=True)
                        except K.NonFiniteRowError:
                            restore(entry_state)
                            raise
                    else:
                        total = trainer.run_epoch(order, check=False)
                loss = total / n_train
                if not math.isfinite(loss) or not np.isfinite(params).all():
                    np.copyto(params, last_good)
                    self._bn_restore(last_run)
                    what = (f"the loss became non-finite ({loss})" if not math.isfinite(loss)
                            else "the weights became non-finite")
                    raise ValueError(
                        f"Training diverged at epoch {self.n_iter_ + 1}: {what}; the "
                        f"learning rate (learning_rate_init="
                        f"{self.learning_rate_init}, current {lr_epoch:g}) is probably too "
                        "large, or the input needs scaling. The estimator keeps the last "
                        "finite weights (Solver produced non-finite parameter weights).")
                self.n_iter_ += 1
                check_finite = False  # (the first epoch read every row)
                # kept current so a callback may pickle a consistent model mid-fit
                self._opt_step = int(trainer.step[0])
                self.loss_ = loss
                self.t_ += n_train
                self.loss_curve_.append(loss)

                val_loss = val_score = None
                if has_val:
                    P = self._rows_forward(Xv, val_idx)
                    val_loss = self._data_loss(P, Yv, swv)
                    val_score = self._score_outputs(P, yv, swv)
                    self.validation_loss_curve_.append(val_loss)

                self._update_no_improvement_count(val_score, has_val)

                if rbw:
                    monitored = val_loss if has_val else loss
                    if monitored < rbw_best:
                        rbw_best = monitored
                        rbw_params = params.copy()
                        rbw_bn = self._bn_snapshot()

                # learning rates that change at epoch end (scikit-learn: iteration_ends)
                if solver in _SCHEDULED and opt["learning_rate"] == "invscaling":
                    self._opt_lr = float(opt["learning_rate_init"]) / \
                        (self.t_ + 1) ** opt["power_t"]
                    trainer.set_lr(self._opt_lr)

                seconds = time.perf_counter() - t0
                if self.verbose:
                    line = f"Iteration {self.n_iter_}, loss = {loss:.8f}"
                    if has_val:
                        line += f", val_loss = {val_loss:.8f}, val_score = {val_score:.6f}"
                    print(f"{line}, time = {seconds:.3f}s")
                stop = False
                if callbacks:
                    logs = {"epoch": self.n_iter_, "loss": loss, "val_loss": val_loss,
                            "val_score": val_score, "learning_rate": lr_epoch,
                            "seconds": seconds}
                    for k, cb in enumerate(callbacks):
                        wants = cb(self, logs)
                        # (not bool(wants): an array would fail with numpy's "truth value
                        # is ambiguous", naming neither the callback nor the contract)
                        if wants is not None and not isinstance(wants, (bool, np.bool_)):
                            raise TypeError(
                                f"callbacks[{k}] returned {type(wants).__name__}; expected "
                                "True to stop training, or False or None to go on")
                        stop = bool(wants) or stop
                if stop:
                    break

                if self._stop_for_no_improvement(trainer):
                    break
                if incremental:
                    break
                self._warn_at_max_iter()
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
        finally:
            self._opt_step = int(trainer.step[0])

        if self.early_stopping:
            np.copyto(self._params, self._best_params)
            self._bn_restore(self.__dict__.get("_best_bn"))
        elif rbw and rbw_params is not None:
            np.copyto(params, rbw_params)
            self._bn_restore(rbw_bn)

    def _rows_forward(self, X, rows):
        """Network outputs for X (dense, validated), or for its ``rows`` in blocks."""
        params = self._inference_params()
        if rows is None:
            return K.mlp_forward(X, params, self._layer_sizes, self._act_codes,
                                 backend=self.backend_, n_threads=self.n_threads)
        out = np.empty((rows.shape[0], self.n_outputs_), dtype=params.dtype)
        for s in range(0, rows.shape[0], _BLOCK):
            K.mlp_forward(dense_rows(X, rows[s:s + _BLOCK], params.dtype), params,
                          self._layer_sizes, self._act_codes, out=out[s:s + _BLOCK],
                          backend=self.backend_,
                          n_threads=self.n_threads)
        return out

    def _trigger_stopping(self, msg):
        """scikit-learn's optimizer.trigger_stopping: True stops training."""
        opt = self._opt_config
        if opt["solver"] not in _SCHEDULED or opt["learning_rate"] != "adaptive":
            if self.verbose:
                print(msg)
            return True
        if self._opt_lr <= 1e-6:
            if self.verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self._opt_lr /= 5.0
        if self.verbose:
            print(f"{msg} Setting learning rate to {self._opt_lr:f}")
        return False

    def _update_no_improvement_count(self, val_score, has_val):
        if has_val:
            self.validation_scores_.append(val_score)
        if self.early_stopping:
            if val_score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if val_score > self.best_validation_score_:
                self.best_validation_score_ = val_score
                np.copyto(self._best_params, self._params)
                self._best_bn = self._bn_snapshot()
        else:
            if has_val and val_score > self.best_validation_score_:
                self.best_validation_score_ = val_score
            self._count_no_improvement(self.loss_curve_[-1])

    def _count_no_improvement(self, loss):
        """scikit-learn's count of epochs whose training loss did not improve by tol."""
        if loss > self.best_loss_ - self.tol:
            self._no_improvement_count += 1
        else:
            self._no_improvement_count = 0
        self.best_loss_ = min(self.best_loss_, loss)

    def _stop_for_no_improvement(self, trainer):
        """After an epoch: whether the count of epochs without improvement stops
        training (an adaptive learning rate is divided by 5 instead, in ``trainer``)."""
        if self._no_improvement_count <= self.n_iter_no_change:
            return False
        what = "Validation score" if self.early_stopping else "Training loss"
        msg = (f"{what} did not improve more than tol={self.tol:f} for "
               f"{self.n_iter_no_change} consecutive epochs.")
        if self._trigger_stopping(msg):
            return True
        trainer.set_lr(self._opt_lr)
        self._no_improvement_count = 0
        return False

    def _warn_at_max_iter(self):
        if self.n_iter_ == self.max_iter:
            warnings.warn(
                f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) "
                "reached and the optimization hasn't converged yet.", ConvergenceWarning)

    def _data_loss(self, P, Y, sample_weight):
        """Loss of outputs P on targets Y (+ the L2 term over the batch), as in training."""
        value, _ = K.loss_gradient(P, Y, self._loss_name(), sample_weight=sample_weight,
                                   huber_delta=self._huber_delta(), backend=self.backend_,
                                   n_threads=self.n_threads)
        S = P.shape[0] if sample_weight is None else float(sample_weight.sum())
        sq = sum(float(np.dot(W.ravel().astype(np.float64), W.ravel().astype(np.float64)))
                 for W in self.coefs_)
        return value + 0.5 * self.alpha * sq / S

    def _fit_lbfgs(self, X, Y, sample_weight):
        params = self._params
        best = [np.inf, params.copy()]

        def fun(x):
            params[...] = x
            value, grad = self._loss_grad(X, Y, sample_weight)
            if value < best[0]:
                best[0] = value
                np.copyto(best[1], params)
            return value, grad

        iterations = [0]

        def callback(intermediate_result):
            iterations[0] += 1
            if self.verbose:
                print(f"Iteration {iterations[0]}, loss = {intermediate_result.fun:.8f}")

        try:
            res = scipy.optimize.minimize(
                fun, params.astype(np.float64), method="L-BFGS-B", jac=True,
                callback=callback,
                options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol})
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
            # the lowest-loss point evaluated so far (finite: L-BFGS-B would not have gone
            # on from a non-finite loss)
            np.copyto(params, best[1])
            self.loss_ = float(best[0])
            self.n_iter_ = iterations[0]
            return
        if res.status != 0:
            warnings.warn(
                f"lbfgs failed to converge after {res.nit} iteration(s) "
                f"(status={res.status}): {res.message}\n\nIncrease the number of "
                "iterations to improve the convergence (max_iter="
                f"{self.max_iter}). You might also want to scale the data.",
                ConvergenceWarning)
        self.n_iter_ = min(int(res.nit), self.max_iter)
        self.loss_ = float(res.fun)
        params[...] = res.x

    def _loss_grad(self, X, Y, sample_weight):
        """Full-batch loss and gradient (float64 flat vector) at the current parameters."""
        be, nt = self.backend_, self.n_threads
        codes = self._act_codes
        loss = self._loss_name()
        As, Zs = [X], []
        for k, (W, b) in enumerate(zip(self.coefs_, self.intercepts_)):
            A, Z = K.dense_forward(As[-1], W, b, int(codes[k]), return_z=True, backend=be,
                                   n_threads=nt)
            As.append(A)
            Zs.append(Z)
        value, G = K.loss_gradient(As[-1], Y, loss, sample_weight=sample_weight,
                                   huber_delta=self._huber_delta(), backend=be,
                                   n_threads=nt)
        S = X.shape[0] if sample_weight is None else float(sample_weight.sum())
        sq = sum(float(np.dot(W.ravel().astype(np.float64), W.ravel().astype(np.float64)))
                 for W in self.coefs_)
        value += 0.5 * self.alpha * sq / S
        grad = np.empty(self._params.shape[0], dtype=np.float64)
        offs, _ = K.param_offsets(self._layer_sizes)
        L = len(self.coefs_)
        out_code = int(codes[-1])
        out_back = (C.IDENTITY if C.CANONICAL_LINK.get(C.LOSSES[loss]) == out_code
                    else out_code)
        dA = G
        for k in range(L - 1, -1, -1):
            W = self.coefs_[k]
            act = out_back if k == L - 1 else int(codes[k])
            dW, db, dX = K.dense_backward(As[k], W, As[k + 1], dA, act, Z=Zs[k],
                                          l2=self.alpha / S, need_dX=k > 0, backend=be,
                                          n_threads=nt)
            w, bo = offs[k]
            grad[w:bo] = dW.ravel()
            grad[bo:bo + W.shape[1]] = db
            dA = dX
        return value, grad

    # ----------------------------------------------------------------------------------
    # prediction

    def _check_X(self, X):
        """Validated, C-contiguous X in the model's dtype (dense, or sparse CSR)."""
        dt = self._params.dtype
        # fast path for the common case (one row from a web request, say): a C-contiguous
        # array of the right dtype and width without NaN/inf skips sklearn's validation;
        # anything else takes the full path, which also raises sklearn's errors. The
        # finiteness test is one sum (no temporary array): NaN or inf makes it non-finite,
        # and so does overflow of large finite values, which the full path then accepts.
        # Large X: the all_finite kernel, which reads X at memory speed (the sum's
        # pairwise loop: half of that).
        # (A dot product of X with itself is faster but overflows - with a RuntimeWarning
        # - from values of about 1e17 on in float32.)
        if (type(X) is np.ndarray and (X.dtype is dt or X.dtype == dt)
                and len(shape := X.shape) == 2 and shape[0] > 0
                and shape[1] == self.n_features_in_ and (f := X.flags).c_contiguous
                and f.aligned
                and "feature_names_in_" not in self.__dict__
                and (math.isfinite(np.add.reduce(X, None)) if X.size < 65536
                     else self._all_finite(X))):
            return X if X.dtype is dt else X.view(dt)  # builtin dtype: see __setstate__
        X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        check_narrowing(X, dt)
        if sp.issparse(X):
            return X.tocsr()
        return kernel_array(X, dt)

    def _check_fitted(self):
        if "_views" not in self.__dict__:
            check_is_fitted(self)  # raises scikit-learn's NotFittedError
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet.")

    def _forward_fast(self, X):
        """Output layer activations for X (validated here)."""
        if "_views" not in self.__dict__:
            self._check_fitted()
        self._sync()
        X = self._check_X(X)
        if type(X) is np.ndarray or not sp.issparse(X):
            # X was validated by _check_X and the network (layer sizes, activation codes,
            # flat vector) when it was built; kernels.mlp_forward would check all of it
            # again on every call - tens of microseconds that dominate predict on one row
            dt = self._params.dtype
            params = self._params if self.__dict__.get("_bn_vec") is None \
                else self._inference_params()
            n = X.shape[0]
            out = np.empty((n, self.n_outputs_), dt)
            be = _BACKEND_MODULES.get(self.backend_)
            if be is None:
                be = _BACKEND_MODULES[self.backend_] = K.get_backend(self.backend_)
            nt = K.check_threads(self.n_threads)
            rows = self._block_rows
            # K.mlp_workspace_size: two buffers of a block's rows of the widest layer (its
            # generator over numpy integers costs ~1 us, as much as all the other
            # bookkeeping here)
            work = np.empty(2 * min(n, rows) * max(self._layer_list[1:]), dt)
            # blocks of rows as K.mlp_forward runs them: a bounded workspace, and Ctrl-C
            # lands between two blocks
            K.forward_blocks(be, X, params, self._layer_sizes, self._act_codes, out, work, nt,
                             rows)
            return out
        params = self._inference_params()
        dt = self._params.dtype
        out = np.empty((X.shape[0], self.n_outputs_), dtype=dt)
        for s in range(0, X.shape[0], _BLOCK):
            K.mlp_forward(dense_rows(X, slice(s, s + _BLOCK), dt), params,
                          self._layer_sizes, self._act_codes,
                          out=out[s:s + _BLOCK], backend=self.backend_,
                          n_threads=self.n_threads)
        return out

    def forward(self, X):
        """Return the activations of every layer for X, the input first.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        list of ndarray
            ``[X, A_1, ..., A_L]``: the (densified) input, each hidden layer's activations
            and the output layer's (probabilities for a classifier).
        """
        check_is_fitted(self)
        self._sync()
        X = self._check_X(X)
        if sp.issparse(X):
            X = kernel_array(X.toarray(), self._params.dtype)
        out = [X]
        # batch normalisation (inference mode) folded into the weights
        flat = self._inference_params()
        offs, _ = K.param_offsets(self._layer_sizes)
        for k, W in enumerate(self.coefs_):
            w, bo = offs[k]
            W = flat[w:bo].reshape(W.shape)
            b = flat[bo:bo + W.shape[1]]
            out.append(K.dense_forward(out[-1], W, b, int(self._act_codes[k]),
                                       backend=self.backend_, n_threads=self.n_threads))
        return out

    def summary(self):
        """Return a text table of the layers, their shapes and parameter counts.

        Returns
        -------
        str
            One row per layer (input, hidden layers, output) and the total number of
            trainable parameters (e.g. 266,610 for a 784-300-100-10 network).
        """
        check_is_fitted(self)
        self._sync()
        names = [C.ACTIVATION_NAMES[int(c)] for c in self._act_codes]
        rows = [("input", str(self.n_features_in_), "", "", "")]
        total = 0
        L = len(self.coefs_)
        bn = self._has_bn()
        for k, W in enumerate(self.coefs_):
            count = W.size + W.shape[1]
            shapes = f"{W.shape} + ({W.shape[1]},)"
            act = names[k]
            if bn and k < L - 1:
                count += 2 * W.shape[1]
                shapes += f" + bn 2 x ({W.shape[1]},)"
                act = f"batch norm, {act}"
            total += count
            rows.append(("output" if k == L - 1 else f"hidden {k + 1}", str(W.shape[1]),
                         act, shapes, f"{count:,}"))
        head = ("layer", "units", "activation", "weights + biases", "params")
        widths = [max(len(r[i]) for r in rows + [head]) for i in range(5)]
        fmt = "  ".join("{:" + ("<" if i in (0, 2, 3) else ">") + str(w) + "}"
                        for i, w in enumerate(widths))
        lines = [f"{type(self).__name__} ({self._params.dtype}, backend={self.backend_})",
                 fmt.format(*head), "-" * (sum(widths) + 8)]
        lines += [fmt.format(*r) for r in rows]
        lines += ["-" * (sum(widths) + 8), f"Total params: {total:,}"]
        return "\n".join(lines)

    def _score_outputs(self, P, y, sample_weight):
        """Validation score of outputs P: accuracy (classifier) or R^2 (regressor)."""
        y_pred = self._outputs_to_prediction(P)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return float(self._score_function(y, y_pred, sample_weight=sample_weight))

    # ----------------------------------------------------------------------------------
    # construction from given weights

    @classmethod
    def _from_weights(cls, coefs, intercepts, out_activation, params):
        params = dict(params)
        bn_params = params.pop("batch_norm_params", None)
        coefs = [np.asarray(W) for W in coefs]
        intercepts = [np.asarray(b) for b in intercepts]
        if not coefs or len(coefs) != len(intercepts):
            raise ValueError("coefs and intercepts must be non-empty lists of equal length")
        for name, arrays, ndim in (("coefs", coefs, 2), ("intercepts", intercepts, 1)):
            for k, a in enumerate(arrays):
                if a.ndim != ndim:
                    raise ValueError(f"{name}[{k}] must be {ndim}-D; got shape {a.shape}")
                if a.dtype.kind not in "biuf":
                    raise TypeError(f"{name}[{k}] must hold real numbers; got dtype {a.dtype}")
                if not np.isfinite(a).all():
                    raise ValueError(f"{name}[{k}] holds NaN or infinity; weights must be "
                                     "finite")
        if bn_params is not None and (
                not isinstance(bn_params, (list, tuple))
                or not all(isinstance(p, Mapping) for p in bn_params)):
            raise TypeError("batch_norm_params must be a list of dicts (one per hidden layer) "
                            f"with gamma, beta, running_mean, running_var; got {bn_params!r}")
        est = cls(hidden_layer_sizes=tuple(W.shape[1] for W in coefs[:-1]), **params)
        est._validate_params()
        hidden = est._hidden_sizes()
        acts = est._hidden_activations(len(hidden))
        floats = [a.dtype for a in coefs + intercepts]
        dtype = np.float32 if all(d == np.float32 for d in floats) else np.float64
        est.n_features_in_ = int(coefs[0].shape[0])
        est.n_outputs_ = int(coefs[-1].shape[1])
        est.n_layers_ = len(coefs) + 1
        est.out_activation_ = out_activation
        if out_activation not in C.ACTIVATIONS or out_activation == "softmax" and \
                est.n_outputs_ < 2:
            raise ValueError(f"out_activation {out_activation!r} is not usable here")
        est._set_act_codes(acts)
        est._params = np.empty(0, dtype=dtype)
        est._repack(coefs, intercepts)
        est._best_params = est._params.copy()
        if est.batch_norm:
            est._bn_init(dtype)
            n_hidden = len(coefs) - 1
            if bn_params is None or len(bn_params) != n_hidden:
                raise ValueError(
                    f"batch_norm=True needs batch_norm_params: one dict per hidden layer "
                    f"({n_hidden}) with gamma, beta, running_mean, running_var")
            for k, (given, mine) in enumerate(zip(bn_params, est.batch_norm_params_)):
                for key, view in mine.items():
                    a = np.asarray(given[key], dtype=dtype) if key in given else None
                    if a is None or a.shape != view.shape:
                        raise ValueError(f"batch_norm_params[{k}][{key!r}] must have shape "
                                         f"{view.shape}")
                    view[...] = a
                if (mine["running_var"] < 0).any():
                    raise ValueError(f"batch_norm_params[{k}]['running_var'] must be >= 0")
        elif bn_params is not None:
            raise ValueError("batch_norm_params needs batch_norm=True")
        est._opt_state = None
        est.n_iter_ = 0
        est.t_ = 0
        est.backend_ = K.resolve_backend(est.backend)
        return est

    # ----------------------------------------------------------------------------------
    # pickling: the flat vector is the state; views are rebuilt

    def __getstate__(self):
        if "_views" in self.__dict__:
            self._sync()
        state = dict(super().__getstate__())
        for key in ("coefs_", "intercepts_", "_views", "_random_state", "_own_random_state",
                    "_validated_params", "batch_norm_params_"):
            if key in state and "_params" in state:
                state.pop(key)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "_params" in self.__dict__:
            # unpickled arrays carry dtype instances that the compiled core's dtype test
            # rejects ("must have dtype float64, got float64"); zero-copy views with the
            # builtin dtypes are accepted everywhere
            for key in ("_params", "_layer_sizes", "_act_codes", "_opt_state",
                        "_best_params", "_bn_vec", "_bn_run"):
                a = self.__dict__.get(key)
                if isinstance(a, np.ndarray):
                    self.__dict__[key] = a.view(np.dtype(a.dtype.type))
            self._bind(self._params, self._layer_sizes)
            if self._has_bn():
                self._bn_bind(self._bn_vec, self._bn_run)
            if self.backend == "auto" and self.backend_ not in K.available_backends():
                self.backend_ = K.resolve_backend("auto")

    def _check_solver(self):
        if self.solver not in _STOCHASTIC:
            raise AttributeError(
                "partial_fit is only available for stochastic"
                f" optimizers. {self.solver} is not stochastic.")
        return True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


class _BatchNormTrainer:
    """Minibatch epochs of a network with batch normalisation, batch by batch in Python.

    The interface of :class:`rosenblatt.kernels.Trainer` (``run_epoch``, ``set_lr``,
    ``state``, ``step``) over the same semantics as ``train_epoch`` (loss value, L2 term,
    canonical output link, one optimizer step per batch), with each hidden layer computed
    as ``dense_forward`` (identity) -> ``batchnorm_forward`` -> ``activation_forward`` and
    its backward in reverse. The estimator's weights and its gamma/beta are re-bound as
    views of ONE vector (weights first, in the kernels' layout), so one optimizer step
    updates both. The running statistics follow PyTorch: ``r = (1 - m) r + m s`` with the
    batch mean and the unbiased batch variance (the biased one for a batch of one row).
    """

    def __init__(self, est, X, Y, sample_weight, batch_size):
        # validation, hyperparameters and codes exactly as the fused path takes them
        base = K.Trainer(X, Y, est._params, est._layer_sizes, est._act_codes,
                         est._loss_name(), est._optimizer_name(), est._hyper(est._opt_lr),
                         batch_size, sample_weight=sample_weight, backend=est.backend_,
                         n_threads=est.n_threads)
        self.est = est
        self.X, self.Y, self.sample_weight = X, Y, base.sample_weight
        self.batch_size = base.batch_size
        self.hyper = base.hyper
        self.loss, self.optimizer = base.loss, base.optimizer
        self.backend, self.n_threads = base.backend, base.n_threads
        self._be = K.get_backend(self.backend)
        P = est._params.shape[0]
        params = np.concatenate([est._params, est._bn_vec])
        est._bind(params[:P], est._layer_sizes)
        est._bn_bind(params[P:], est._bn_run)
        self.params = params
        self.grads = np.zeros_like(params)
        slots = C.OPTIMIZER_SLOTS[self.optimizer]
        state = est._opt_state
        if state is None or state.shape != (slots, params.shape[0]) or \
                state.dtype != params.dtype:
            state = np.zeros((slots, params.shape[0]), dtype=params.dtype)
        self.state = state
        self.step = np.array([int(est._opt_step)], dtype=np.int64)
        self.gcoefs, self.gintercepts = [], []
        offs, _ = K.param_offsets(est._layer_sizes)
        for (w, bo), W in zip(offs, est.coefs_):
            self.gcoefs.append(self.grads[w:bo].reshape(W.shape))
            self.gintercepts.append(self.grads[bo:bo + W.shape[1]])
        self.gbn, o = [], P
        for m in (int(v) for v in est._layer_sizes[1:-1]):
            self.gbn.append((self.grads[o:o + m], self.grads[o + m:o + 2 * m]))
            o += 2 * m

    def set_lr(self, lr):
        self.hyper[C.H_LR] = float(lr)

    def _batch(self, idx):
        """Forward, backward and one optimizer step on rows ``idx``; the batch loss."""
        est, h, kw = self.est, self.hyper, {"backend": self.backend,
                                             "n_threads": self.n_threads}
        xb, yb = self.X[idx], self.Y[idx]
        swb = None if self.sample_weight is None else self.sample_weight[idx]
        nb = xb.shape[0]
        S = float(nb) if swb is None else float(swb.sum(dtype=np.float64))
        if not S > 0:
            return 0.0  # zero total weight (the caller raises first): no loss, no gradient
        codes, bnp = est._act_codes, est.batch_norm_params_
        L = len(est.coefs_)
        As, Zs, Ys, saved = [xb], [], [], []
        for i, (W, b) in enumerate(zip(est.coefs_, est.intercepts_)):
            if i == L - 1:
                A, Z = K.dense_forward(As[-1], W, b, int(codes[i]), return_z=True, **kw)
                As.append(A)
                Zs.append(Z)
                break
            Z = K.dense_forward(As[-1], W, b, "identity", **kw)
            p = bnp[i]
            Yn, Xhat, mean, invstd = K.batchnorm_forward(Z, p["gamma"], p["beta"], _BN_EPS,
                                                         **kw)
            As.append(K.activation_forward(Yn, int(codes[i]), **kw))
            Zs.append(Z)
            Ys.append(Yn)
            saved.append((Xhat, invstd))
            var = 1.0 / invstd.astype(np.float64) ** 2 - _BN_EPS
            if nb > 1:
                var *= nb / (nb - 1.0)
            p["running_mean"][...] = (1.0 - _BN_MOMENTUM) * p["running_mean"] + \
                _BN_MOMENTUM * mean.astype(np.float64)
            p["running_var"][...] = (1.0 - _BN_MOMENTUM) * p["running_var"] + \
                _BN_MOMENTUM * np.maximum(var, 0.0)
        value, G = K.loss_gradient(As[-1], yb, self.loss, sample_weight=swb,
                                   huber_delta=float(h[C.H_HUBER_DELTA]), **kw)
        alpha = float(h[C.H_ALPHA])
        if alpha != 0.0:
            value += 0.5 * alpha * sum(float(np.dot(W.ravel().astype(np.float64),
                                                    W.ravel().astype(np.float64)))
                                       for W in est.coefs_) / S
        out_code = int(codes[-1])
        out_back = C.IDENTITY if C.CANONICAL_LINK.get(self.loss) == out_code else out_code
        dA = G
        for i in range(L - 1, -1, -1):
            W = est.coefs_[i]
            if i == L - 1:
                dW, db, dX = K.dense_backward(As[i], W, As[i + 1], dA, out_back, Z=Zs[i],
                                              l2=alpha / S, need_dX=i > 0, **kw)
            else:
                dYn = K.activation_backward(Ys[i], As[i + 1], dA, int(codes[i]), **kw)
                Xhat, invstd = saved[i]
                dZ, dgamma, dbeta = K.batchnorm_backward(dYn, Xhat, bnp[i]["gamma"], invstd,
                                                         **kw)
                self.gbn[i][0][...] = dgamma
                self.gbn[i][1][...] = dbeta
                dW, db, dX = K.dense_backward(As[i], W, Zs[i], dZ, "identity",
                                              l2=alpha / S, need_dX=i > 0, **kw)
            self.gcoefs[i][...] = dW
            self.gintercepts[i][...] = db
            dA = dX
        self._be.optimizer_step(self.params, self.grads, self.state, self.optimizer,
                                self.hyper, self.step, self.n_threads)
        return value * nb

    def run_epoch(self, order, *, check=True):
        """Train one epoch over the rows in ``order``; the accumulated loss (as Trainer,
        whose ``check`` is accepted: the estimator's orders are valid)."""
        total = 0.0
        for start in range(0, order.shape[0], self.batch_size):
            total += self._batch(order[start:start + self.batch_size])
        return float(total)


_COMMON_DOC = """
    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        The ith element is the number of neurons in the ith hidden layer.
    activation : str or tuple of str, default='relu'
        Activation of the hidden layers: 'identity', 'logistic', 'tanh', 'relu' (as
        scikit-learn) or 'leaky_relu', 'elu', 'softplus', 'gelu'; a tuple gives one per
        hidden layer. 'heaviside' and 'sign' are accepted only by predict-only networks
        built with ``from_weights`` (fitting with a step function raises ValueError).
    solver : {'lbfgs', 'sgd', 'adam', 'adagrad', 'rmsprop', 'adamw'}, default='adam'
        Weight optimizer. 'lbfgs' is scipy's L-BFGS-B on the full-batch loss; the others
        run minibatch epochs in the backend's ``train_epoch``.
    alpha : float, default=1e-4
        Strength of the L2 penalty (divided by the batch weight sum, as scikit-learn).
    batch_size : int or 'auto', default='auto'
        Minibatch size of the stochastic solvers; 'auto' is ``min(200, n_samples)``.
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        Schedule of the 'sgd' (and 'adagrad', 'rmsprop') learning rate: constant,
        ``learning_rate_init / (t_ + 1) ** power_t`` after each epoch, or divided by 5
        each time ``n_iter_no_change`` epochs fail to improve by ``tol``.
    learning_rate_init : float, default=1e-3
        Initial learning rate of the stochastic solvers.
    power_t : float, default=0.5
        Exponent of the 'invscaling' schedule.
    max_iter : int, default=200
        Maximum number of epochs (stochastic solvers) or iterations (lbfgs).
    shuffle : bool, default=True
        Shuffle the rows every epoch (a permutation composed onto the previous order, drawn
        from ``random_state`` exactly as scikit-learn draws it).
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the early-stopping split and the row orders.
    tol : float, default=1e-4
        Improvement threshold of the stopping rule.
    verbose : bool, default=False
        Print a progress line per epoch (loss, validation loss and score, time).
    warm_start : bool, default=False
        Start ``fit`` from the current weights (a new optimizer, curves continued).
    momentum : float, default=0.9
        Momentum of 'sgd'.
    nesterovs_momentum : bool, default=True
        Nesterov momentum for 'sgd'.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data (or use ``validation_data``) and
        stop when its score stops improving; the best epoch's weights are restored.
    validation_fraction : float, default=0.1
        Share of the data held out by early stopping.
    beta_1, beta_2 : float, default=0.9, 0.999
        Adam's moment decay rates ('adam', 'adamw').
    epsilon : float, default=1e-8
        Numerical-stability term of 'adam', 'adamw', 'adagrad', 'rmsprop'.
    n_iter_no_change : int, default=10
        Epochs without ``tol`` improvement before stopping.
    max_fun : int, default=15000
        Maximum loss evaluations of 'lbfgs'.
    rho : float, default=0.9
        Decay of the squared-gradient average of 'rmsprop'.
    weight_decay : float, default=0.01
        Decoupled weight decay of 'adamw' (``p -= lr * weight_decay * p`` per step).
    kernel_init : {'glorot_uniform', 'glorot_normal', 'he_uniform', 'he_normal', \
'lecun'}, default='glorot_uniform'
        Weight initialisation. 'glorot_uniform' is scikit-learn's (weights and biases
        uniform in +-sqrt(factor / (fan_in + fan_out)), factor 2 for logistic else 6);
        the others draw weights from the named scheme and set biases to zero.
    callbacks : list of callable, default=None
        Each is called as ``cb(estimator, logs)`` after every epoch with ``logs`` a dict
        of ``epoch, loss, val_loss, val_score, learning_rate, seconds`` (None where no
        validation set exists); returning True stops training after that epoch, False or
        None goes on (any other return value is a TypeError).
    restore_best_weights : bool, default=False
        At the end of fit, restore the weights of the epoch with the lowest validation
        loss (or training loss without a validation set). Early stopping always restores
        the best validation score's weights, as scikit-learn.
    batch_norm : bool, default=False
        Batch-normalise each hidden layer's pre-activation: in training with the batch's
        statistics (biased variance), keeping running averages (momentum 0.1, unbiased
        variance, as PyTorch); in prediction with the running statistics. ``gamma`` and
        ``beta`` are trained by the same optimizer (stochastic solvers only). Sample
        weights weight the loss, not the batch statistics (as PyTorch). Training then
        runs a per-batch loop over the kernels from Python: slower than the fused epoch.
    backend : {'auto', 'cpp', 'numba', 'numpy'}, default='auto'
        Compute backend; 'auto' picks the best available (see ``rosenblatt.kernels``).
    n_threads : int or None, default=None
        Threads of the compiled backend (None or 0: the library default).
"""

_COMMON_ATTR_DOC = """
    loss_ : float
        Loss of the last epoch (or lbfgs' final loss).
    best_loss_ : float or None
        Lowest training loss (None with early stopping).
    loss_curve_ : list of float
        Training loss per epoch (stochastic solvers).
    validation_scores_ : list of float or None
        Validation score per epoch when a validation set exists.
    best_validation_score_ : float or None
        Best validation score.
    validation_loss_curve_ : list of float or None
        Validation loss per epoch when a validation set exists (early stopping or
        ``validation_data``).
    t_ : int
        Training samples seen (cumulative).
    coefs_ : list of ndarray of shape (fan_in, fan_out)
        Weight matrices; views of the flat parameter vector (assignable).
    intercepts_ : list of ndarray of shape (fan_out,)
        Bias vectors; views of the flat parameter vector (assignable).
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of str
        Names of the features seen during fit (only when X has string column names).
    n_iter_ : int
        Epochs (or lbfgs iterations) run by the last fit/partial_fit call.
    n_layers_ : int
        Number of layers, input and output included.
    n_outputs_ : int
        Number of outputs.
    out_activation_ : str
        Output activation.
    backend_ : str
        The backend that was used.
    batch_norm_params_ : list of dict
        Only with ``batch_norm=True``: per hidden layer, ``gamma``, ``beta``,
        ``running_mean`` and ``running_var`` (views of the model's vectors; in-place edits
        write through).
"""


class MLPClassifier(ClassifierMixin, BaseMultilayerPerceptron):
    """Multi-layer perceptron classifier (scikit-learn compatible).

    Same parameters, defaults, fitted attributes and methods as
    ``sklearn.neural_network.MLPClassifier`` (1.9), and with the same ``random_state``
    the same fitted model; training runs in the compiled core.

    Parameters
    ----------
    %(common)s
    class_weight : dict, 'balanced' or None, default=None
        Weights of the classes, multiplied into ``sample_weight`` ('balanced': inversely
        proportional to the class frequencies in ``y``).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    %(attrs)s

    See Also
    --------
    MLPRegressor : Multi-layer perceptron regressor.

    Examples
    --------
    >>> import numpy as np
    >>> from rosenblatt.neural_network import MLPClassifier
    >>> X = np.array([[0., 0.], [0., 1.], [1., 0.], [1., 1.]])
    >>> clf = MLPClassifier.from_weights(
    ...     [np.array([[1., 1.], [1., 1.]]), np.array([[1.], [-2.]])],
    ...     [np.array([-0.5, -1.5]), np.array([-0.5])],
    ...     classes=[0, 1], activation="heaviside", out_activation="heaviside")
    >>> clf.predict(X)
    array([0, 1, 1, 0])
    """

    _parameter_constraints: ClassVar[dict] = {
        **BaseMultilayerPerceptron._parameter_constraints,
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
                 max_fun=15000, rho=0.9, weight_decay=0.01, kernel_init="glorot_uniform",
                 callbacks=None, restore_best_weights=False, class_weight=None,
                 batch_norm=False, backend="auto", n_threads=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.rho = rho
        self.weight_decay = weight_decay
        self.kernel_init = kernel_init
        self.callbacks = callbacks
        self.restore_best_weights = restore_best_weights
        self.class_weight = class_weight
        self.batch_norm = batch_norm
        self.backend = backend
        self.n_threads = n_threads

    _score_function = staticmethod(accuracy_score)

    def _loss_name(self):
        return "log_loss" if self.out_activation_ == "softmax" else "binary_log_loss"

    def _output_activation(self):
        return "softmax" if self._y_type == "multiclass" else "logistic"

    def _validate_input(self, X, y, incremental, reset, finite_x=True):
        X, y = self._check_X_y(X, y, reset, finite_x=finite_x)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        # when classes_ are (re)defined: see scikit-learn's table in its _validate_input
        if (not hasattr(self, "classes_")) or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            Y = self._encode_known(y)
            if Y is not None:
                self._y_type = self._label_binarizer.y_type_
                return X, y, Y
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same "
                        "classes as in the previous call to fit. Previously "
                        f"got {self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(
                    "`y` has classes not in `self.classes_`. "
                    f"`self.classes_` has {self.classes_}. 'y' has {classes}.")
        self._y_type = self._label_binarizer.y_type_
        # bool first keeps float32 data float32 (as scikit-learn); cast later
        Y = self._label_binarizer.transform(y).astype(bool)
        return X, y, Y

    def _encode_y(self, y):
        return self._label_binarizer.transform(y)

    def _encode_known(self, y):
        """The indicator matrix of 1-d labels y (as bool), if they are all in classes_ and,
        with warm_start, cover them: what the checks and LabelBinarizer.transform of
        _validate_input give, without their generic machinery (~1 ms per fit). None when
        y needs that machinery (errors included)."""
        classes = self.classes_
        kinds = (y.dtype.kind, classes.dtype.kind)
        y_type = self._label_binarizer.y_type_
        if (y.ndim != 1 or y_type not in ("binary", "multiclass") or len(classes) < 2
                or not (set(kinds) <= set("biuf") or kinds == ("U", "U"))):
            return None
        if y_type == "binary":
            pos = y == classes[1]
            n1, n0 = np.count_nonzero(pos), np.count_nonzero(y == classes[0])
            if n0 + n1 != y.shape[0] or (self.warm_start and not (n0 and n1)):
                return None
            return pos.reshape(-1, 1)
        k = len(classes)
        if (kinds[0] in "iu" and kinds[1] in "iu"
                and int(classes[-1]) - int(classes[0]) == k - 1):
            # consecutive integer classes (sorted and unique): a label's position is its
            # offset, once two reductions show every label in range (searchsorted and the
            # comparison took 1.4 ms of 60000 labels, this 0.2)
            if not int(classes[0]) <= int(y.min()) <= int(y.max()) <= int(classes[-1]):
                return None
            pos = y - classes[0] if classes[0] else y
        else:
            pos = np.minimum(np.searchsorted(classes, y), k - 1)
            if not (classes[pos] == y).all():
                return None
        if self.warm_start and np.bincount(pos, minlength=k).min() == 0:
            return None
        Y = np.zeros((y.shape[0], k), dtype=bool)
        Y[np.arange(y.shape[0]), pos] = True
        return Y

    def _stratify_target(self, Y):
        return Y.astype(bool)

    def _outputs_to_prediction(self, P):
        # scikit-learn's LabelBinarizer.inverse_transform (threshold 0.5 / argmax),
        # written out so that predict on one row stays cheap
        if self.n_outputs_ == 1:
            p = P.ravel()
            if len(self.classes_) == 1:
                return np.repeat(self.classes_[0], p.shape[0])
            return self.classes_[(p > 0.5).astype(int)]
        if self._y_type == "multilabel-indicator":
            return (P > 0.5).astype(int)
        return self.classes_[P.argmax(axis=1)]

    def predict(self, X):
        """Predict the classes of X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_classes)
            Predicted classes (an indicator matrix for multilabel problems).
        """
        return self._outputs_to_prediction(self._forward_fast(X))

    def predict_proba(self, X):
        """Probability estimates.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Probabilities in the order of ``classes_``.
        """
        P = self._forward_fast(X)
        if self.n_outputs_ == 1:
            p = P.ravel()
            return np.vstack([1 - p, p]).T
        return P

    def predict_log_proba(self, X):
        """Logarithm of the probability estimates.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            ``log(predict_proba(X))``.
        """
        P = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(P, out=P)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, *, validation_data=None):
        """Fit the model to X and y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data (float32 data trains in float32). Sparse data is densified a
            few megabytes of rows at a time (all at once by lbfgs and batch norm).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels (an indicator matrix for multilabel problems).
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights, non-negative (scikit-learn also takes negative ones). A
            minibatch whose weights sum to zero raises ``ZeroDivisionError``, as in
            scikit-learn.
        validation_data : tuple (X_val, y_val) or (X_val, y_val, sample_weight_val)
            A validation set scored after every epoch (``validation_loss_curve_``,
            ``validation_scores_``); with ``early_stopping`` it replaces the held-out
            fraction.

        Returns
        -------
        self : MLPClassifier
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False,
                         validation_data=validation_data)

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """Update the model with one epoch over X and y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights, as in :meth:`fit`.
        classes : array of shape (n_classes,), default=None
            All classes of the stream; required on the first call.

        Returns
        -------
        self : MLPClassifier
        """
        if check_partial_fit_classes(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    @classmethod
    def from_weights(cls, coefs, intercepts, *, classes, activation="relu",
                     out_activation=None, **params):
        """Build a fitted classifier from given weights, without training.

        Parameters
        ----------
        coefs : list of array-like of shape (fan_in, fan_out)
            Weight matrices, input layer first.
        intercepts : list of array-like of shape (fan_out,)
            Bias vectors.
        classes : array-like of shape (n_classes,)
            Class labels, distinct. One output means a binary problem (class
            ``classes[1]`` when the output exceeds 0.5; the two labels in sorted order);
            otherwise output ``j`` is class ``classes[j]`` and the prediction is the
            argmax. ``classes_`` is sorted, as in scikit-learn: the output units are
            reordered with it.
        activation : str or tuple of str, default='relu'
            Hidden activation(s); the step functions 'heaviside' and 'sign' are allowed.
        out_activation : str, default=None
            Output activation: 'logistic' for one output, 'softmax' otherwise by default;
            e.g. 'heaviside' for a step output.
        **params
            Other constructor parameters (backend, n_threads, ...). With
            ``batch_norm=True`` also ``batch_norm_params``: one dict per hidden layer with
            ``gamma``, ``beta``, ``running_mean`` and ``running_var``.

        Returns
        -------
        MLPClassifier
            A fitted estimator (predict, predict_proba, forward, summary work).
        """
        classes = np.asarray(classes)
        n_out = np.asarray(coefs[-1]).shape[-1]
        if classes.ndim != 1:
            raise ValueError(f"classes must be 1-D; got shape {classes.shape}")
        order = np.argsort(classes, kind="stable")
        sorted_classes = classes[order]
        if len(classes) > 1 and np.any(sorted_classes[1:] == sorted_classes[:-1]):
            raise ValueError(f"classes must be distinct; got {classes.tolist()}")
        if n_out == 1:
            if len(classes) != 2:
                raise ValueError(f"one output needs exactly 2 classes; got {len(classes)}")
            if order[0] != 0:
                # the output's meaning ("classes[1] when above 0.5") would have to be
                # inverted, which is not exact for step outputs
                raise ValueError(
                    f"classes must be in sorted order for a network with one output (the "
                    f"output is the probability of the larger class); got {classes.tolist()}")
            y_type = "binary"
        elif n_out == len(classes):
            y_type = "multiclass"
            if np.any(order != np.arange(len(classes))) and np.ndim(coefs[-1]) == 2 \
                    and np.ndim(intercepts[-1]) == 1:
                # classes_ is sorted (training encodes labels in that order): output units
                # are permuted to match, so output j still means the class given j-th
                coefs = [np.asarray(c) for c in coefs]
                intercepts = [np.asarray(b) for b in intercepts]
                coefs[-1] = coefs[-1][:, order]
                intercepts[-1] = intercepts[-1][order]
                classes = sorted_classes
        else:
            raise ValueError(f"the network has {n_out} outputs for {len(classes)} classes")
        if out_activation is None:
            out_activation = "logistic" if n_out == 1 else "softmax"
        est = cls._from_weights(coefs, intercepts, out_activation,
                                dict(params, activation=activation))
        est.classes_ = classes
        est._y_type = y_type
        est._label_binarizer = LabelBinarizer().fit(classes)
        return est

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, BaseMultilayerPerceptron):
    """Multi-layer perceptron regressor (scikit-learn compatible).

    Same parameters, defaults, fitted attributes and methods as
    ``sklearn.neural_network.MLPRegressor`` (1.9), and with the same ``random_state``
    the same fitted model; training runs in the compiled core.

    Parameters
    ----------
    loss : {'squared_error', 'absolute_error', 'huber', 'poisson'}, \
default='squared_error'
        Loss (half squared error, absolute error, Huber with ``huber_delta``, half
        Poisson deviance with an exp output, as scikit-learn).
    %(common)s
    out_activation : {'identity', 'relu', 'softplus'} or None, default=None
        Output activation; None is 'identity' ('exp' for the poisson loss). 'relu' and
        'softplus' keep predictions non-negative.
    huber_delta : float, default=1.0
        Threshold of the huber loss.

    Attributes
    ----------
    %(attrs)s

    See Also
    --------
    MLPClassifier : Multi-layer perceptron classifier.
    """

    _parameter_constraints: ClassVar[dict] = {
        **BaseMultilayerPerceptron._parameter_constraints,
        "loss": [StrOptions({"squared_error", "absolute_error", "huber", "poisson"})],
        "out_activation": [StrOptions({"identity", "relu", "softplus", "exp"}), None],
        "huber_delta": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu",
                 *, solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
                 max_fun=15000, rho=0.9, weight_decay=0.01, kernel_init="glorot_uniform",
                 callbacks=None, restore_best_weights=False, out_activation=None,
                 huber_delta=1.0, batch_norm=False, backend="auto", n_threads=None):
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.rho = rho
        self.weight_decay = weight_decay
        self.kernel_init = kernel_init
        self.callbacks = callbacks
        self.restore_best_weights = restore_best_weights
        self.out_activation = out_activation
        self.huber_delta = huber_delta
        self.batch_norm = batch_norm
        self.backend = backend
        self.n_threads = n_threads

    _score_function = staticmethod(r2_score)

    def _loss_name(self):
        return self.loss

    def _huber_delta(self):
        return float(self.huber_delta)

    def _output_activation(self):
        if self.loss == "poisson":
            if self.out_activation not in (None, "exp"):
                raise ValueError("loss='poisson' uses the exp output activation; got "
                                 f"out_activation={self.out_activation!r}")
            return "exp"
        if self.out_activation == "exp":
            raise ValueError("out_activation='exp' is reserved for loss='poisson'")
        return self.out_activation or "identity"

    def _validate_input(self, X, y, incremental, reset, finite_x=True):
        X, y = self._check_X_y(X, y, reset, y_numeric=True, finite_x=finite_x)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError("loss='poisson' requires non-negative y")
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        return X, y, Y

    def _encode_y(self, y):
        return y.reshape(-1, 1) if y.ndim == 1 else y

    def _outputs_to_prediction(self, P):
        return P.ravel() if P.shape[1] == 1 else P

    def predict(self, X):
        """Predict targets for X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        """
        return self._outputs_to_prediction(self._forward_fast(X))

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, *, validation_data=None):
        """Fit the model to X and y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data (float32 data trains in float32). Sparse data is densified a
            few megabytes of rows at a time (all at once by lbfgs and batch norm).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights, non-negative (scikit-learn also takes negative ones). A
            minibatch whose weights sum to zero raises ``ZeroDivisionError``, as in
            scikit-learn.
        validation_data : tuple (X_val, y_val) or (X_val, y_val, sample_weight_val)
            A validation set scored after every epoch (``validation_loss_curve_``,
            ``validation_scores_``); with ``early_stopping`` it replaces the held-out
            fraction.

        Returns
        -------
        self : MLPRegressor
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False,
                         validation_data=validation_data)

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Update the model with one epoch over X and y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights, as in :meth:`fit`.

        Returns
        -------
        self : MLPRegressor
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    @classmethod
    def from_weights(cls, coefs, intercepts, *, activation="relu", out_activation=None,
                     **params):
        """Build a fitted regressor from given weights, without training.

        Parameters
        ----------
        coefs : list of array-like of shape (fan_in, fan_out)
            Weight matrices, input layer first.
        intercepts : list of array-like of shape (fan_out,)
            Bias vectors.
        activation : str or tuple of str, default='relu'
            Hidden activation(s); the step functions 'heaviside' and 'sign' are allowed.
        out_activation : str, default=None
            Output activation ('identity' by default).
        **params
            Other constructor parameters (loss, backend, n_threads, ...); see
            :meth:`MLPClassifier.from_weights` for ``batch_norm_params``.

        Returns
        -------
        MLPRegressor
            A fitted estimator.
        """
        return cls._from_weights(coefs, intercepts, out_activation or "identity",
                                 dict(params, activation=activation))


MLPClassifier.__doc__ = MLPClassifier.__doc__ % {"common": _COMMON_DOC.strip(),
                                                 "attrs": _COMMON_ATTR_DOC.strip()}
MLPRegressor.__doc__ = MLPRegressor.__doc__ % {"common": _COMMON_DOC.strip(),
                                               "attrs": _COMMON_ATTR_DOC.strip()}
