"""Perceptron: scikit-learn's model bit for bit on the rosenblatt kernels, plus Rosenblatt's
own multi-output rule.

The default ``rule="sklearn"`` reproduces :class:`sklearn.linear_model.Perceptron` 1.9: the
same random draws (per-class shuffle seeds, validation split), the same xorshift row orders,
the same floating-point operations, so ``coef_``, ``intercept_`` and ``n_iter_`` are equal to
scikit-learn's for the same ``random_state``. The one-vs-rest problems run in one kernel
call, split over the core's threads.
"""

import functools
import numbers
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score
from sklearn.model_selection import StratifiedShuffleSplit
from sklearn.utils import check_random_state, compute_class_weight
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.validation import (
    _assert_all_finite,
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)

from . import kernels
from ._rows import block_rows, dense_rows, kernel_array
from ._validation import check_partial_fit_classes, fitted_dense_xy

__all__ = ["Perceptron"]

MAX_INT = np.iinfo(np.int32).max
# scikit-learn learns the intercept of sparse data 100 times slower (make_dataset)
SPARSE_INTERCEPT_DECAY = 0.01
_PENALTY = {None: 0, "l1": 1, "l2": 2, "elasticnet": 3}


# --------------------------------------------------------------------------------------
# scikit-learn's _plain_sgd for the perceptron loss, for what the kernels do not cover:
# penalties (the scaled weight vector, truncated-gradient L1) and sparse rows (intercept
# decay). Written in scalar loops so Numba can compile it; plain Python otherwise.
# st: float64 [intercept, wscale, sq_norm, l1_norm, u] (doubles in scikit-learn too); every
# value scikit-learn holds in the input's dtype is rounded to it (float32: compute in double, round once - for
# + - * / and sqrt, double has enough bits that this equals the float operation).


def _sgd_epoch(Xd, data, indices, indptr, dense, y, sw, order, vmask, w, q, st, eta0,
               alpha, l1_ratio, penalty, cw_pos, cw_neg, fit_intercept, intercept_decay,
               f32):
    d = w.shape[0]
    intercept = st[0]
    wscale = st[1]
    sq_norm = st[2]
    l1_norm = st[3]
    u = st[4]
    sumloss = 0.0
    objective = 0.0
    reset = 1e-6 if f32 else 1e-9
    for i in range(order.shape[0]):
        k = order[i]
        if vmask[k]:
            continue
        if dense:
            start = 0
            nnz = d
        else:
            start = indptr[k]
            nnz = indptr[k + 1] - start
        acc = 0.0
        for jj in range(nnz):
            if dense:
                j = jj
                xv = Xd[k, jj]
            else:
                j = indices[start + jj]
                xv = data[start + jj]
            pr = w[j] * xv
            if f32:
                pr = np.float64(np.float32(pr))
            acc += pr
        acc *= wscale
        if f32:
            acc = np.float64(np.float32(acc))
        p = acc + intercept
        yk = y[k]
        z = p * yk
        if z <= 0.0:
            sumloss += -z
            objective += -z
        if penalty > 0:
            nrm = np.sqrt(sq_norm)
            l1n = l1_norm
            if f32:
                nrm = np.float64(np.float32(nrm))
                l1n = np.float64(np.float32(l1n))
            objective += alpha * ((1.0 - l1_ratio) * 0.5 * (nrm * nrm) + l1_ratio * l1n)
        cw = cw_pos if yk > 0.0 else cw_neg
        cs = cw * sw[k]
        if f32:
            cs = np.float64(np.float32(cs))
        update = eta0 * yk * cs if z <= 0.0 else 0.0
        if penalty >= 2:
            c = max(0.0, 1.0 - ((1.0 - l1_ratio) * eta0 * alpha))
            cc = c * c
            if f32:
                c = np.float64(np.float32(c))
                cc = np.float64(np.float32(c * c))
            wscale = wscale * c
            sq_norm = sq_norm * cc
            l1_norm = l1_norm * abs(c)
            if wscale < reset:
                wsr = np.float64(np.float32(wscale)) if f32 else wscale
                for j in range(d):
                    w[j] = w[j] * wsr
                wscale = 1.0
        if update != 0.0:
            c = update
            if f32:
                c = np.float64(np.float32(c))
            wsl = wscale
            if f32:
                wsl = np.float64(np.float32(wscale))
            cq = c / wsl
            if f32:
                cq = np.float64(np.float32(cq))
            l2acc = 0.0
            l1acc = 0.0
            for jj in range(nnz):
                if dense:
                    j = jj
                    xv = Xd[k, jj]
                else:
                    j = indices[start + jj]
                    xv = data[start + jj]
                w[j] = w[j] + np.float64(xv) * cq
                wj = np.float64(w[j])
                sq = wj * wj
                if f32:
                    sq = np.float64(np.float32(sq))
                l2acc += sq
                l1acc += abs(wj)
            ws2 = wsl * wsl
            if f32:
                ws2 = np.float64(np.float32(ws2))
            sq_norm = l2acc * ws2
            l1_norm = l1acc * wsl
            if fit_intercept:
                intercept += update * intercept_decay
        if penalty == 1 or penalty == 3:
            u += l1_ratio * eta0 * alpha
            for jj in range(nnz):
                j = jj if dense else indices[start + jj]
                z0 = np.float64(w[j])
                if z0 > 0.0:
                    w[j] = max(0.0, z0 - (u + q[j]) / wscale)
                elif z0 < 0.0:
                    w[j] = min(0.0, z0 + (u - q[j]) / wscale)
                q[j] = q[j] + wscale * (np.float64(w[j]) - z0)
    st[0] = intercept
    st[1] = wscale
    st[2] = sq_norm
    st[3] = l1_norm
    st[4] = u
    return sumloss, objective


def _rosenblatt_epoch_weighted(X, labels, lo, order, W, b, eta, sign):
    """Rosenblatt's rule with a step size per row (sample and class weights).

    The kernels' perceptron_epoch with one-hot targets (``labels``; ``lo`` the off target)
    and ``eta[r]`` for row r: the same operations, scores included (8 partial sums by
    feature index mod 8, folded ((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7))).
    """
    d = X.shape[1]
    n_out = W.shape[1]
    mistakes = 0
    acc = np.zeros(8, dtype=W.dtype)
    g = np.zeros(n_out, dtype=W.dtype)
    for i in range(order.shape[0]):
        r = order[i]
        wrong = False
        for c in range(n_out):
            for t in range(8):
                acc[t] = 0.0
            for j in range(d):
                acc[j % 8] += X[r, j] * W[j, c]
            zc = (((acc[0] + acc[4]) + (acc[2] + acc[6]))
                  + ((acc[1] + acc[5]) + (acc[3] + acc[7]))) + b[c]
            if sign:
                yhat = 1.0 if zc > 0 else (-1.0 if zc < 0 else 0.0)
            else:
                yhat = 1.0 if zc >= 0 else 0.0
            e = (1.0 if labels[r] == c else lo) - yhat
            g[c] = eta[r] * e
            if e != 0.0:
                wrong = True
        if wrong:
            mistakes += 1
            for c in range(n_out):
                if g[c] != 0.0:
                    for j in range(d):
                        W[j, c] += X[r, j] * g[c]
            for c in range(n_out):
                b[c] += g[c]
    return mistakes


_jitted = {}


def _jit(name, fn, backend):
    """``fn`` Numba-compiled (cached) unless the backend is the NumPy reference."""
    if backend == "numpy" or not kernels.numba_installed():
        return fn
    if name not in _jitted:
        import numba

        _jitted[name] = numba.njit(cache=True, nogil=True)(fn)
    return _jitted[name]


def _epoch_function(backend):
    """The generic scikit-learn epoch (penalties, sparse rows)."""
    return _jit("sgd", _sgd_epoch, backend)


def _int_seed(random_state):
    """random_state when it is an int (its draws are then always the same), else None."""
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state)
    return None


def _shuffle_seeds(random_state, K):
    """scikit-learn's shuffle seed of each one-vs-rest problem (one problem when K == 2).

    Binary: the second draw of check_random_state(random_state) (the first seeds
    make_dataset). K >= 3: one draw per class, each the second draw of a RandomState seeded
    with it. Creating those RandomStates takes milliseconds: for an int random_state the
    seeds are cached.
    """
    if _int_seed(random_state) is not None:
        return np.array(_int_shuffle_seeds(int(random_state), K), dtype=np.int64)
    return np.array(_draw_shuffle_seeds(check_random_state(random_state), K), dtype=np.int64)


def _draw_shuffle_seeds(rs, K):
    if K == 2:
        rs.randint(1, MAX_INT)  # make_dataset's own seed (unused for shuffling)
        return (int(rs.randint(MAX_INT)),)
    seeds = []
    for s in rs.randint(MAX_INT, size=K):
        r2 = check_random_state(s)
        r2.randint(1, MAX_INT)
        seeds.append(int(r2.randint(MAX_INT)))
    return tuple(seeds)


@functools.lru_cache(maxsize=64)
def _int_shuffle_seeds(random_state, K):
    return _draw_shuffle_seeds(check_random_state(random_state), K)


def _epoch_seeds(random_state):
    """The one-pass rule's shuffle seed of each epoch: successive draws of
    ``check_random_state(random_state).randint(MAX_INT)``. For an int random_state the
    first draw (all that partial_fit needs) is cached: creating the RandomState takes
    70 us, a percent of a one-pass epoch over 100000 rows."""
    seed = _int_seed(random_state)
    if seed is not None:
        yield _first_int_draw(seed)
        rs = check_random_state(seed)
        rs.randint(MAX_INT)
    else:
        rs = check_random_state(random_state)
    while True:
        yield int(rs.randint(MAX_INT))


@functools.lru_cache(maxsize=64)
def _first_int_draw(seed):
    return int(check_random_state(seed).randint(MAX_INT))


def _class_index(classes, y):
    """Position in ``classes`` (sorted, unique) of each label of ``y``, as int64.

    Raises compute_class_weight's ValueError when a label is not a class. Integer labels
    of a contiguous range take a subtraction instead of a binary search.
    """
    K = classes.shape[0]
    if (classes.dtype.kind == "i" and y.dtype.kind == "i"
            and int(classes[-1]) - int(classes[0]) == K - 1):
        pos = np.subtract(y, np.int64(classes[0]), dtype=np.int64)  # one pass, one array
        ok = pos.min() >= 0 and pos.max() < K
    else:
        pos = np.searchsorted(classes, y)
        np.minimum(pos, K - 1, out=pos)
        ok = bool(np.all(classes[pos] == y))
    if not ok:
        raise ValueError("classes should include all valid labels that can be in y")
    return pos.astype(np.int64, copy=False)


def _nonfinite_error(epoch):
    return ValueError(
        f"Floating-point under-/overflow occurred at epoch #{epoch}. Scaling input data "
        "with StandardScaler or MinMaxScaler might help (or lower eta0).")


# --------------------------------------------------------------------------------------


class Perceptron(ClassifierMixin, BaseEstimator):
    """Linear perceptron classifier, a drop-in for :class:`sklearn.linear_model.Perceptron`.

    With ``rule="sklearn"`` (default) the fitted model equals scikit-learn 1.9's for the
    same parameters and ``random_state``: ``coef_``, ``intercept_`` and ``n_iter_`` match
    bit for bit (binary and one-vs-rest multiclass, shuffled or not, float64 and float32,
    ``sample_weight``, ``class_weight``, ``early_stopping``, ``warm_start``,
    ``partial_fit``). The per-class problems run in one call of the backend, split over
    ``n_threads`` threads. ``rule="rosenblatt"`` trains all outputs in one pass with the
    lecture's rule ``W += eta0 (y - yhat) x^T`` on one-hot targets.

    Parameters
    ----------
    penalty : {'l2', 'l1', 'elasticnet'}, default=None
        Regularization, applied as scikit-learn does (weight decay by a scaled weight
        vector for L2, cumulative truncated gradient for L1). These, and sparse input,
        run on a generic epoch loop (Numba-compiled when Numba is installed) instead of
        the SIMD kernels; the computation follows scikit-learn's operation by operation.
    alpha : float, default=0.0001
        Regularization strength (with a penalty).
    l1_ratio : float, default=0.15
        Elastic-net mixing (``penalty='elasticnet'`` only).
    fit_intercept : bool, default=True
    max_iter : int, default=1000
        Maximum number of epochs (``fit``); ``partial_fit`` runs one.
    tol : float or None, default=1e-3
        Stop when the epoch's mean loss is not below ``best - tol`` for
        ``n_iter_no_change`` epochs in a row (with early stopping: the validation
        accuracy is not above ``best + tol``). None disables the rule.
    shuffle : bool, default=True
        Shuffle the rows each epoch (scikit-learn's xorshift permutation).
    verbose : int, default=0
        Print a line per class (and, for the Python-driven paths, per epoch).
    eta0 : float, default=1.0
        Step size of an update.
    n_jobs : int, default=None
        Accepted for compatibility; threads are set by ``n_threads`` (when ``n_threads`` is
        None, ``n_jobs`` is used as the thread count, -1 or None meaning the library
        default).
    random_state : int, RandomState instance or None, default=0
        Seeds the shuffling and the validation split, exactly as scikit-learn.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the rows (stratified) and stop when the
        validation accuracy stops improving. The held-out rows take no part in training.
    validation_fraction : float, default=0.1
    n_iter_no_change : int, default=5
    class_weight : dict, 'balanced' or None, default=None
        Weights of the classes (multiclass: the weight of the positive side of each
        one-vs-rest problem, as scikit-learn).
    warm_start : bool, default=False
        Start ``fit`` from the previous solution.
    rule : {'sklearn', 'rosenblatt'}, default='sklearn'
        'rosenblatt': one pass for all outputs, ``yhat = step(x W + b)`` with one-hot
        targets (one output for binary problems), ``W += eta0 (y - yhat) x^T``; training
        stops after an epoch without mistakes or when the mistake rate has not improved by
        ``tol`` for ``n_iter_no_change`` epochs. Prediction: argmax of the scores, binary
        ``score >= 0 -> classes_[1]``. Sample and class weights scale the step of a row
        (a Numba or Python loop instead of the kernel); no penalty or early stopping. Rows
        are shuffled each epoch by scikit-learn's xorshift shuffle, with a seed drawn
        from ``random_state``.
    step : {'heaviside', 'sign'}, default='heaviside'
        Output unit of ``rule='rosenblatt'`` (targets 0/1 or -1/+1). For the default rule
        it is ignored.
    backend : {'auto', 'cpp', 'numba', 'numpy'}, default='auto'
        Kernel backend (see :func:`rosenblatt.available_backends`).
    n_threads : int or None, default=None
        Threads for the one-vs-rest problems (None: see ``n_jobs``).

    Attributes
    ----------
    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
    intercept_ : ndarray of shape (1,) or (n_classes,)
    classes_ : ndarray of shape (n_classes,)
    n_iter_ : int
        Epochs run (the maximum over the one-vs-rest problems).
    t_ : float
        ``n_iter_ * n_samples + 1``, accumulated over ``partial_fit`` calls.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when X has string feature names.
    backend_ : str
        The backend used.

    Notes
    -----
    Differences from scikit-learn: with a penalty the stopping objective adds the
    regularization term evaluated from scikit-learn's running norms; its rounding may differ
    in the last bits from scikit-learn's compiled code, so ``n_iter_`` can (rarely) differ
    by an epoch. A ``KeyboardInterrupt`` during ``fit`` stops training with a
    ``UserWarning`` and leaves a usable model with the weights reached so far; ``n_iter_``
    and ``t_`` count the epochs run until then.
    """

    _parameter_constraints: dict = {  # noqa: RUF012 (scikit-learn's convention)
        "penalty": [StrOptions({"l2", "l1", "elasticnet"}), None],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "l1_ratio": [Interval(numbers.Real, 0, 1, closed="both")],
        "fit_intercept": ["boolean"],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left"), None],
        "shuffle": ["boolean"],
        "verbose": ["verbose"],
        "eta0": [Interval(numbers.Real, 0, None, closed="neither")],
        "n_jobs": [numbers.Integral, None],
        "random_state": ["random_state"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left")],
        "class_weight": [StrOptions({"balanced"}), dict, None],
        "warm_start": ["boolean"],
        "rule": [StrOptions({"sklearn", "rosenblatt"})],
        "step": [StrOptions({"heaviside", "sign"})],
        "backend": [StrOptions({"auto", "cpp", "numba", "numpy"})],
        "n_threads": [Interval(numbers.Integral, 0, None, closed="left"), None],
    }

    def __init__(self, *, penalty=None, alpha=0.0001, l1_ratio=0.15, fit_intercept=True,
                 max_iter=1000, tol=1e-3, shuffle=True, verbose=0, eta0=1.0, n_jobs=None,
                 random_state=0, early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=5, class_weight=None, warm_start=False, rule="sklearn",
                 step="heaviside", backend="auto", n_threads=None):
        self.penalty = penalty
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.shuffle = shuffle
        self.verbose = verbose
        self.eta0 = eta0
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.class_weight = class_weight
        self.warm_start = warm_start
        self.rule = rule
        self.step = step
        self.backend = backend
        self.n_threads = n_threads

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    # ---------------------------------------------------------------- public API

    def fit(self, X, y, coef_init=None, intercept_init=None, sample_weight=None):
        """Fit the model with ``max_iter`` epochs at most.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        coef_init : ndarray of shape (n_classes, n_features), default=None
            Initial coefficients (warm start).
        intercept_init : ndarray of shape (n_classes,), default=None
            Initial intercept.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self
        """
        self._validate_params()
        self._check_rule_options(for_partial_fit=False)
        if hasattr(self, "classes_"):
            del self.classes_
        y = validate_data(self, y=y)
        classes = np.unique(y)
        if self.warm_start and hasattr(self, "coef_"):
            if coef_init is None:
                coef_init = self.coef_
            if intercept_init is None:
                intercept_init = self.intercept_
        else:
            self.coef_ = None
            self.intercept_ = None
        self.t_ = 1.0
        self._partial_fit(X, y, self.max_iter, classes, sample_weight, coef_init,
                          intercept_init)
        if (self.tol is not None and self.tol > -np.inf
                and self.n_iter_ == self.max_iter and not self._interrupted):
            warnings.warn("Maximum number of iteration reached before convergence. Consider "
                          "increasing max_iter to improve the fit.", ConvergenceWarning)
        return self

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over the given rows, keeping the current weights.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        classes : ndarray of shape (n_classes,), default=None
            All classes, required on the first call.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self
        """
        if not hasattr(self, "classes_"):
            self._validate_params()
            self._check_rule_options(for_partial_fit=True)
            if self.class_weight == "balanced":
                raise ValueError(
                    "class_weight 'balanced' is not supported for partial_fit. In order to "
                    "use 'balanced' weights, use compute_class_weight('balanced', "
                    "classes=classes, y=y). In place of y you can use a large enough sample "
                    "of the full training set target to properly estimate the class "
                    "frequency distributions. Pass the resulting weights as the "
                    "class_weight parameter.")
        return self._partial_fit(X, y, 1, classes, sample_weight, None, None)

    def decision_function(self, X):
        """Signed distances to the hyperplanes: ``X coef_^T + intercept_``.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_classes)
        """
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse="csr", reset=False)
        scores = safe_sparse_dot(X, self.coef_.T, dense_output=True) + self.intercept_
        return scores.ravel() if scores.shape[1] == 1 else scores

    def predict(self, X):
        """Class labels: argmax of the scores; binary ``score > 0`` (``>= 0`` for
        ``rule='rosenblatt'``) gives ``classes_[1]``."""
        scores = self.decision_function(X)
        if scores.ndim == 1:
            if getattr(self, "_rule_fitted", "sklearn") == "rosenblatt":
                idx = (scores >= 0).astype(int)
            else:
                idx = (scores > 0).astype(int)
        else:
            idx = scores.argmax(axis=1)
        return self.classes_.take(idx)

    def densify(self):
        """Convert ``coef_`` back to a dense ndarray (no-op when it is dense)."""
        check_is_fitted(self, msg="Estimator, %(name)s, must be fitted before densifying.")
        if sp.issparse(self.coef_):
            self.coef_ = self.coef_.toarray()
        return self

    def sparsify(self):
        """Convert ``coef_`` to a scipy.sparse CSR matrix (``intercept_`` stays dense)."""
        check_is_fitted(self, msg="Estimator, %(name)s, must be fitted before sparsifying.")
        self.coef_ = sp.csr_matrix(self.coef_)
        return self

    # ---------------------------------------------------------------- internals

    def _check_rule_options(self, for_partial_fit):
        if self.early_stopping and for_partial_fit:
            raise ValueError("early_stopping should be False with partial_fit")
        if self.rule == "rosenblatt":
            bad = [name for name, off in (("penalty", self.penalty is None),
                                          ("early_stopping", not self.early_stopping))
                   if not off]
            if bad:
                raise ValueError(f"rule='rosenblatt' does not support {', '.join(bad)}; "
                                 "use rule='sklearn'")

    def _threads(self):
        if self.n_threads is not None:
            return int(self.n_threads)
        if self.n_jobs is None or self.n_jobs < 0:
            return 0
        return int(self.n_jobs)

    def _partial_fit(self, X, y, max_iter, classes, sample_weight, coef_init,
                     intercept_init):
        # scikit-learn finds a NaN or an infinity in X in validate_data, before it changes
        # anything; the kernels find it later (below), and the estimator then returns to
        # this state before the error propagates
        entry = dict(self.__dict__)
        first_call = not hasattr(self, "classes_")
        # The kernels read every row of dense X anyway and report a non-finite one (then
        # scikit-learn's error is raised): no separate pass over X. The Python-driven
        # paths (penalties, early stopping, sparse X) keep scikit-learn's check.
        self._finite_checked = sp.issparse(X) or (
            self.rule == "sklearn" and (self.penalty is not None or self.early_stopping))
        # (a fitted estimator's next dense epoch: nothing for validate_data to do, X's
        # finiteness left to the kernels as above)
        if first_call or self._finite_checked or not fitted_dense_xy(self, X, y, (1,)):
            X, y = validate_data(self, X, y, accept_sparse="csr",
                                 dtype=[np.float64, np.float32], order="C",
                                 accept_large_sparse=False, reset=first_call,
                                 ensure_all_finite=self._finite_checked)
        if not sp.issparse(X):
            X = kernel_array(X)
        n_features = X.shape[1]
        check_partial_fit_classes(self, classes)
        n_classes = self.classes_.shape[0]
        if self.class_weight is None:
            # compute_class_weight would only check that y holds no unknown label (with a
            # np.unique of y on every call): _class_index checks that
            self._expanded_class_weight = np.ones(n_classes)
        else:
            self._expanded_class_weight = compute_class_weight(self.class_weight,
                                                               classes=self.classes_, y=y)
        y_index = _class_index(self.classes_, y)
        if sample_weight is not None:  # None: unit weights, without an array of ones
            sample_weight = kernel_array(_check_sample_weight(
                sample_weight, X, dtype=X.dtype, allow_all_zero_weights=self.early_stopping))
        if getattr(self, "coef_", None) is None or coef_init is not None:
            self._allocate(n_classes, n_features, X.dtype, coef_init, intercept_init)
        elif n_features != self.coef_.shape[-1]:
            raise ValueError(f"Number of features {n_features} does not match previous "
                             f"data {self.coef_.shape[-1]}.")
        if sp.issparse(self.coef_):
            self.coef_ = self.coef_.toarray()
        if not hasattr(self, "t_"):
            self.t_ = 1.0
        if n_classes < 2:
            raise ValueError("The number of classes has to be greater than one; got "
                             f"{n_classes} class")
        self.backend_ = kernels.resolve_backend(self.backend)
        self._interrupted = False
        # overflow is detected after each epoch and raised as a ValueError
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                if self.rule == "rosenblatt":
                    self._fit_rosenblatt(X, y_index, sample_weight, max_iter)
                else:
                    self._fit_sklearn(X, y, y_index, sample_weight, max_iter)
        except ValueError:
            if self.__dict__.get("_x_not_finite"):
                self.__dict__.clear()
                self.__dict__.update(entry)
            raise
        self._rule_fitted = self.rule
        return self

    def _allocate(self, n_classes, n_features, dtype, coef_init, intercept_init):
        """scikit-learn's _allocate_parameter_mem (shapes, dtypes and error messages)."""
        if sp.issparse(coef_init):
            coef_init = coef_init.toarray()
        if n_classes > 2:
            if coef_init is not None:
                coef_init = np.array(coef_init, dtype=dtype, order="C")
                if coef_init.shape != (n_classes, n_features):
                    raise ValueError("Provided ``coef_`` does not match dataset. ")
                self.coef_ = coef_init
            else:
                self.coef_ = np.zeros((n_classes, n_features), dtype=dtype, order="C")
            if intercept_init is not None:
                intercept_init = np.array(intercept_init, order="C", dtype=dtype)
                if intercept_init.shape != (n_classes,):
                    raise ValueError("Provided intercept_init does not match dataset.")
                self.intercept_ = intercept_init
            else:
                self.intercept_ = np.zeros(n_classes, dtype=dtype, order="C")
        else:
            if coef_init is not None:
                coef_init = np.array(coef_init, dtype=dtype, order="C").ravel()
                if coef_init.shape != (n_features,):
                    raise ValueError("Provided coef_init does not match dataset.")
                self.coef_ = coef_init.reshape(1, -1)
            else:
                self.coef_ = np.zeros((1, n_features), dtype=dtype, order="C")
            if intercept_init is not None:
                intercept_init = np.array(intercept_init, dtype=dtype)
                if intercept_init.shape != (1,) and intercept_init.shape != ():
                    raise ValueError("Provided intercept_init does not match dataset.")
                self.intercept_ = intercept_init.reshape(1)
            else:
                self.intercept_ = np.zeros(1, dtype=dtype, order="C")

    def _interrupt_warning(self):
        self._interrupted = True
        warnings.warn("Training interrupted by the user (KeyboardInterrupt): the model keeps "
                      "the weights reached so far.", UserWarning)

    # ---- scikit-learn's rule

    def _problems(self, y_index):
        """(labels, class_weight) of the one-vs-rest problems: problem c has +1 where
        labels == c (binary: one problem, the positive class classes_[1])."""
        K = self.classes_.shape[0]
        cw = self._expanded_class_weight
        if K == 2:
            labels = 1 - y_index
            CW = np.array([[cw[0], cw[1]]], dtype=np.float64)
        else:
            labels = y_index
            CW = np.stack([[1.0, cw[i]] for i in range(K)]).astype(np.float64)
        return labels, np.ascontiguousarray(CW)

    def _validation_mask(self, y, sample_weight):
        """scikit-learn's stratified validation split (all False without early stopping);
        sample_weight None means unit weights."""
        n = y.shape[0]
        mask = np.zeros(n, dtype=np.bool_)
        if not self.early_stopping:
            return mask
        cv = StratifiedShuffleSplit(test_size=self.validation_fraction,
                                    random_state=self.random_state)
        idx_train, idx_val = next(cv.split(np.zeros(shape=(n, 1)), y))
        if sample_weight is not None and not np.any(sample_weight[idx_val] > 0):
            raise ValueError("The sample weights for validation set are all zero, consider "
                             "using a different random state.")
        if idx_train.shape[0] == 0 or idx_val.shape[0] == 0:
            raise ValueError(
                f"Splitting {n} samples into a train set and a validation set with "
                f"validation_fraction={self.validation_fraction!r} led to an empty set "
                f"({idx_train.shape[0]} and {idx_val.shape[0]} samples). Please either "
                "change validation_fraction, increase number of samples, or disable "
                "early_stopping.")
        mask[idx_val] = True
        return mask

    def _fit_sklearn(self, X, y, y_index, sample_weight, max_iter):
        dtype = X.dtype
        unit_weights = sample_weight is None
        K = self.classes_.shape[0]
        labels, CW = self._problems(y_index)
        P = CW.shape[0]

        def pm1(c):  # targets of problem c, -1/+1
            return np.where(labels == c, 1.0, -1.0)

        # random draws in scikit-learn's order (which matters when random_state is a
        # RandomState the validation split draws from too)
        cached = _int_seed(self.random_state)
        if K == 2:
            if cached is None:
                rs = check_random_state(self.random_state)
                rs.randint(1, MAX_INT)  # make_dataset's own seed (unused for shuffling)
            masks = [self._validation_mask(pm1(0).astype(dtype), sample_weight)]
            seeds = (np.array([rs.randint(MAX_INT)], dtype=np.int64) if cached is None
                     else _shuffle_seeds(cached, K))
        else:
            masks = [self._validation_mask(y, sample_weight)] * K
            seeds = _shuffle_seeds(self.random_state if cached is None else cached, K)
        W = np.array(self.coef_, dtype=dtype, order="C").reshape(P, -1)
        B = np.asarray(self.intercept_, dtype=np.float64).reshape(-1).copy()
        sw = np.ones(X.shape[0]) if unit_weights else np.asarray(sample_weight, np.float64)
        tol = -np.inf if self.tol is None else float(self.tol)
        n_iter = np.zeros(P, dtype=np.int64)
        sparse = sp.issparse(X)
        store = True
        try:
            if self.penalty is None and not sparse and not self.early_stopping:
                sw_arg = None if unit_weights or np.all(sw == 1.0) else sw
                # (n_iter filled in place: after Ctrl-C it holds the epochs run)
                kernels.perceptron_fit_sklearn(
                    X, labels, W, B, seeds, eta0=self.eta0, sample_weight=sw_arg, class_weight=CW,
                    fit_intercept=self.fit_intercept, shuffle=self.shuffle,
                    max_iter=int(max_iter), tol=self.tol,
                    n_iter_no_change=int(self.n_iter_no_change), n_iter=n_iter,
                    backend=self.backend_, n_threads=self._threads())
                if n_iter.min() < 0:  # a NaN or an infinity in X: nothing is stored
                    store = False
                    self._kernel_found_nonfinite(X)
                if not (np.isfinite(W).all() and np.isfinite(B).all()):
                    raise _nonfinite_error(int(n_iter.max()))
            else:
                for c in range(P):
                    n_iter[c] = self._fit_one_python(X, pm1(c), W[c], B[c:c + 1], sw, CW[c],
                                                     int(seeds[c]), masks[c], max_iter, tol)
        except KeyboardInterrupt:
            self._interrupt_warning()
        finally:
            if store:
                self._store(W, B, K, dtype)
        it = int(n_iter.max())
        self.n_iter_ = it
        self.t_ += it * X.shape[0]
        if self.verbose:
            for c in range(P):
                print(f"-- Class {c}: {int(n_iter[c])} epochs, norm {np.linalg.norm(W[c]):.2f},"
                      f" bias {B[c]:.6f}")

    def _store(self, W, B, K, dtype):
        if K == 2:
            self.coef_ = W.reshape(1, -1)
            self.intercept_ = B.copy()  # scikit-learn keeps the binary intercept in float64
        else:
            self.coef_ = W
            inter = np.asarray(self.intercept_)
            self.intercept_ = B.astype(inter.dtype if inter.dtype.kind == "f" else dtype)

    def _fit_one_python(self, X, y, w, b, sw, cw, seed, vmask, max_iter, tol):
        """One binary problem, epochs driven from Python (early stopping, penalties, sparse).

        Without a penalty on dense rows each epoch is the backend's
        perceptron_epoch_sklearn, the validation rows passed with sample weight 0 (that
        is exactly scikit-learn's skipping of them); otherwise the generic epoch.
        """
        n = X.shape[0]
        dtype = X.dtype
        f32 = dtype == np.float32
        sparse = sp.issparse(X)
        generic = self.penalty is not None or sparse
        order = np.arange(n, dtype=np.int64)
        train_count = n - int(vmask.sum())
        if self.early_stopping:
            Xv = X[vmask]
            yv = y[vmask].astype(dtype)
            swv = sw.astype(dtype)[vmask]
        if generic:
            penalty = _PENALTY[self.penalty]
            l1_ratio = {0: 0.0, 1: 1.0, 2: 0.0}.get(penalty, float(self.l1_ratio))
            epoch_fn = _epoch_function(self.backend_)
            from scipy.linalg import blas

            ddot, dasum = (blas.sdot, blas.sasum) if f32 else (blas.ddot, blas.dasum)
            st = np.array([b[0], 1.0, float(ddot(w, w)) if w.size else 0.0,
                           float(dasum(w)) if w.size else 0.0, 0.0])
            q = np.zeros(w.shape[0], dtype=dtype) if penalty in (1, 3) else \
                np.zeros(1, dtype=dtype)
            cwr = cw.astype(dtype).astype(np.float64)
            swr = sw.astype(dtype).astype(np.float64)
            decay = SPARSE_INTERCEPT_DECAY if sparse else 1.0
            if sparse:
                Xd = np.zeros((1, 1), dtype=dtype)
                data, indices, indptr = X.data, X.indices.astype(np.int64), \
                    X.indptr.astype(np.int64)
            else:
                Xd = X
                data = np.zeros(1, dtype=dtype)
                indices = indptr = np.zeros(1, dtype=np.int64)
            yv64 = y.astype(np.float64)
        else:
            sw_train = np.where(vmask, 0.0, sw)
            sw_arg = None if np.all(sw_train == 1.0) else sw_train
        best = np.inf
        best_score = -np.inf
        no_imp = 0
        epoch = 0
        for epoch in range(max_iter):
            if self.shuffle:
                kernels.xorshift_shuffle(order, seed, backend=self.backend_)
            if generic:
                _, objective = epoch_fn(Xd, data, indices, indptr, not sparse, yv64, swr, order,
                                        vmask, w, q, st, float(self.eta0), float(self.alpha),
                                        l1_ratio, penalty, cwr[1], cwr[0],
                                        bool(self.fit_intercept), decay, f32)
                b[0] = st[0]
                raw = w  # scikit-learn scores the unscaled vector during training
            else:
                sumloss, _ = kernels.perceptron_epoch_sklearn(
                    X, y, w, b, order=order, eta0=self.eta0, sample_weight=sw_arg,
                    class_weight=cw, fit_intercept=self.fit_intercept, backend=self.backend_)
                objective = sumloss
                raw = w
            if not (np.isfinite(b[0]) and np.isfinite(w).all()):
                raise _nonfinite_error(epoch + 1)
            if self.early_stopping:
                scores = safe_sparse_dot(Xv, raw.reshape(1, -1).T, dense_output=True) + b
                pred = np.where(scores.ravel() > 0, 1.0, -1.0).astype(dtype)
                score = accuracy_score(yv, pred, sample_weight=swv)
                if self.verbose:
                    print(f"-- Epoch {epoch + 1}: validation score {score:.6f}")
                if tol > -np.inf and score < best_score + tol:
                    no_imp += 1
                else:
                    no_imp = 0
                best_score = max(best_score, score)
            else:
                obj = objective / train_count
                if self.verbose:
                    print(f"-- Epoch {epoch + 1}: avg. loss {obj:.6f}")
                if tol > -np.inf and obj > best - tol:
                    no_imp += 1
                else:
                    no_imp = 0
                best = min(best, obj)
            if no_imp >= self.n_iter_no_change:
                break
        if generic and st[1] != 1.0:
            wscale = st[1]
            w[:] = (w * (np.float32(wscale) if f32 else wscale)).astype(dtype)
            st[1] = 1.0
        return epoch + 1

    # ---- Rosenblatt's rule

    def _assert_finite(self, X):
        _assert_all_finite(X.data if sp.issparse(X) else X, input_name="X",
                           estimator_name=type(self).__name__)

    def _kernel_found_nonfinite(self, X):
        """A kernel met a NaN or an infinity in X: scikit-learn's error, after which
        _partial_fit restores the estimator as it was before the call."""
        self._x_not_finite = True
        self._assert_finite(X)
        raise ValueError("Input X contains NaN or infinity.")  # (the kernel saw one)

    def _fit_rosenblatt(self, X, y_index, sample_weight, max_iter):
        # sparse X (validated finite) is densified a block of rows at a time in each
        # epoch's order: the rule is online, row after row, so blocks change nothing
        # (X as _partial_fit left it: CSR, or an aligned C-contiguous array)
        sparse_rows = sp.issparse(X)
        dtype = X.dtype
        K = self.classes_.shape[0]
        sign = self.step == "sign"
        lo = -1.0 if sign else 0.0
        # one-hot targets as labels: output c's target is 1 where labels == c (a binary
        # problem has one output, label 0 for the positive class, -1 for the other)
        if K == 2:
            labels = y_index - 1
            k = 1
        else:
            labels = y_index
            k = K
        W = np.array(np.asarray(self.coef_, dtype=dtype).reshape(k, -1).T, order="C")
        b = np.array(np.asarray(self.intercept_, dtype=dtype).reshape(-1), order="C")
        seeds = _epoch_seeds(self.random_state)
        n = X.shape[0]
        # sample and class weights scale the step of a row (all its outputs)
        cw = np.asarray(self._expanded_class_weight, dtype=np.float64)
        weighted = not (np.all(cw == 1.0) and (sample_weight is None
                                               or np.all(sample_weight == 1.0)))
        if weighted:
            sw = np.ones(n) if sample_weight is None else np.asarray(sample_weight, np.float64)
            if not self._finite_checked:
                self._assert_finite(X)
            epoch_w = _jit("rosenblatt", _rosenblatt_epoch_weighted, self.backend_)
            eta_row = (float(self.eta0) * sw * cw[y_index]).astype(dtype)
        else:
            eta_row = None

        def visit(Xe, lab, rows, eta):
            """The rule over rows ``rows`` of Xe; returns the mistakes (< 0: non-finite X)."""
            if weighted:
                return int(epoch_w(Xe, lab, lo, rows, W, b, eta, sign))
            return kernels.perceptron_epoch(Xe, lab, W, b, order=rows, eta=self.eta0,
                                            step=self.step, backend=self.backend_,
                                            n_threads=self._threads())

        tol = -np.inf if self.tol is None else float(self.tol)
        best = np.inf
        no_imp = 0
        epochs = 0
        order = np.arange(n, dtype=np.int64)
        block = block_rows(X.shape[1], dtype)
        try:
            for _ in range(max_iter):
                # each epoch shuffles the previous order again (the kernel's xorshift
                # Fisher-Yates, a fraction of a NumPy permutation's time)
                if self.shuffle:
                    kernels.xorshift_shuffle(order, next(seeds),
                                             backend=self.backend_)
                if sparse_rows:
                    mistakes = 0
                    for s in range(0, n, block):
                        rows = order[s:s + block]
                        mistakes += visit(dense_rows(X, rows, dtype), labels[rows],
                                          np.arange(rows.shape[0], dtype=np.int64),
                                          None if eta_row is None else eta_row[rows])
                else:
                    mistakes = visit(X, labels, order, eta_row)
                    if mistakes < 0:  # a NaN or an infinity in X; W and b are unchanged
                        self._kernel_found_nonfinite(X)
                epochs += 1
                if not (np.isfinite(W).all() and np.isfinite(b).all()):
                    raise _nonfinite_error(epochs)
                if self.verbose:
                    print(f"-- Epoch {epochs}: {mistakes} mistakes")
                if mistakes == 0:
                    break
                rate = mistakes / n
                if tol > -np.inf and rate > best - tol:
                    no_imp += 1
                else:
                    no_imp = 0
                best = min(best, rate)
                if no_imp >= self.n_iter_no_change:
                    break
        except KeyboardInterrupt:
            self._interrupt_warning()
        finally:
            self.coef_ = np.ascontiguousarray(W.T)
            self.intercept_ = b
        self.n_iter_ = epochs
        self.t_ += epochs * n
