"""The compiled core's small-network path of ``train_epoch``.

When every layer width (input and output included) fits in four SIMD vectors, the C++
``train_epoch`` runs its small-layer kernels instead of the GEMM-based ones: a different
code path with its own lane edges (1, lanes - 1, lanes, lanes + 1, ..., 4 lanes, then the
general path at 4 lanes + 1) and two orientations for dW (along the outputs, or along the
inputs when the outputs are the narrower side). Each ISA has its own lane count, so the
checks run once per ISA, forced through ``ROSENBLATT_ISA`` in a subprocess. The NumPy
reference is the oracle; the same call twice must give bit-identical results.
"""

import itertools
import warnings

import numpy as np
import pytest
from conftest import assert_close, isa_params, loss_targets, result_at_isa
from sklearn.exceptions import ConvergenceWarning

_core = pytest.importorskip("rosenblatt._core")

from rosenblatt import kernels as K

# (layer sizes, hidden activation, output activation, loss): widths around 2, 4, 8, 16,
# 32 and 64 lanes (baseline, AVX2 and AVX-512 in both precisions), narrow outputs after
# wide layers (dW along the inputs), a softmax head, and nets just past the small limit
NETS = [
    ([2, 8, 8, 1], "tanh", "logistic", "binary_log_loss"),  # the playground
    ([1, 1, 1], "relu", "identity", "squared_error"),
    ([3, 5, 7, 3], "logistic", "softmax", "log_loss"),
    ([9, 15, 17, 2], "tanh", "identity", "huber"),
    ([7, 31, 33, 5], "gelu", "exp", "poisson"),
    ([16, 32, 4], "elu", "tanh", "squared_error"),
    ([20, 64, 3], "softplus", "identity", "absolute_error"),
    ([65, 8, 1], "leaky_relu", "logistic", "binary_log_loss"),
    ([4, 65, 2], "relu", "identity", "squared_error"),
]
# (optimizer, batch, sample weights, grad norms, alpha, l1)
OPTIONS = [
    ("sgd", 10, False, False, 1e-4, 0.0),
    ("nesterov", 7, True, True, 1e-3, 1e-4),
    ("adam", 1, False, True, 0.0, 1e-4),
    ("rmsprop", 64, True, False, 1e-3, 0.0),
]


def _train(be, dt, net, opt, batch, weighted, norms, alpha, l1, n_threads=1):
    sizes, hidden, out, loss = net
    rng = np.random.default_rng(0)
    n = 53
    X = rng.standard_normal((n, sizes[0])).astype(dt)
    Y = loss_targets(rng, loss, n, sizes[-1], dt)
    sw = rng.uniform(0.1, 2.0, n).astype(dt) if weighted else None
    parts = []
    for fi, fo in itertools.pairwise(sizes):
        parts += [rng.standard_normal(fi * fo) / np.sqrt(fi), rng.standard_normal(fo) * 0.1]
    params = np.concatenate(parts).astype(dt)
    acts = [hidden] * (len(sizes) - 2) + [out]
    lr = 1e-3 if opt in ("adam", "rmsprop") or loss == "poisson" else 0.01
    tr = K.Trainer(X, Y, params, sizes, acts, loss, opt,
                   {"lr": lr, "alpha": alpha, "l1": l1, "huber_delta": 0.8}, batch,
                   sample_weight=sw, backend=be, n_threads=n_threads, track_grad_norms=norms)
    losses, gnorms = [], []
    for _ in range(3):
        losses.append(tr.run_epoch(rng.permutation(n).astype(np.int64)))
        gnorms.append(None if tr.grad_norms is None else tr.grad_norms.copy())
    return params, tr.state.copy(), np.array(losses), gnorms


def check_all():
    """Every net with every option set, both dtypes, against the reference (this ISA)."""
    for dt in (np.float32, np.float64):
        for net in NETS:
            for i, options in enumerate(OPTIONS):
                # reductions over a few epochs of ~width-long sums
                n = 64 * max(net[0])
                want = _train("numpy", dt, net, *options)
                got = _train("cpp", dt, net, *options)
                again = _train("cpp", dt, net, *options)
                tag = f"{_core.isa()} {np.dtype(dt).name} {net[0]} options {i}"
                for g, a, w, name in zip(got, again, want, ("params", "state", "loss", "gn"),
                                         strict=True):
                    if name == "gn":
                        for gi, ai, wi in zip(g, a, w, strict=True):
                            if wi is None:
                                assert gi is None and ai is None, tag
                            else:
                                np.testing.assert_array_equal(gi, ai, err_msg=tag)
                                assert_close(gi, wi, dt, n, err_msg=f"{tag} {name}")
                        continue
                    np.testing.assert_array_equal(g, a, err_msg=f"{tag} {name} run to run")
                    assert_close(g, w, dt, n, err_msg=f"{tag} {name}")


@pytest.mark.parametrize("isa", isa_params())
def test_small_nets_per_isa(isa):
    result_at_isa(isa, "test_small_net", "check_all", timeout=600)


def test_thread_count_does_not_matter_for_small_nets():
    """Small nets run on the calling thread: any n_threads gives the same bits."""
    outs = [_train("cpp", np.float64, NETS[2], *OPTIONS[1], n_threads=nt) for nt in (1, 2, 0)]
    for got in outs[1:]:
        for g, w in zip(got[:3], outs[0][:3], strict=True):
            np.testing.assert_array_equal(g, w)


# --------------------------------------------------------------------------------------
# the entry of fit/partial_fit on a fitted estimator: short paths for the common inputs
# (dense float X, numeric or string labels already known), the same outcomes as the
# generic scikit-learn checks they stand in for


def _fitted(y, **params):
    from rosenblatt.neural_network import MLPClassifier

    X = np.random.default_rng(0).standard_normal((len(y), 3))
    params = {"random_state": 0, **params}
    clf = MLPClassifier(hidden_layer_sizes=(4,), solver="sgd", max_iter=2, warm_start=True,
                        **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    return clf, X


def _quiet_fit(est, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kw)


@pytest.mark.parametrize("y", [np.array([0, 1] * 10), np.array([3, 7, 9, 7] * 5),
                               np.array(["a", "b"] * 10), np.array([0.0, 1.0] * 10),
                               np.array([True, False] * 10)],
                         ids=["binary", "multiclass", "strings", "floats", "bools"])
def test_warm_start_labels_match_a_fresh_encoding(y):
    clf, X = _fitted(y)
    _, _, Y = clf._validate_input(X, y, incremental=False, reset=False)
    want = clf._label_binarizer.transform(y).astype(bool)
    np.testing.assert_array_equal(Y, want)
    assert Y.dtype == want.dtype and Y.shape == want.shape
    # a new label, or a known one missing, is refused as before
    with pytest.raises(ValueError, match="warm_start can only be used"):
        _quiet_fit(clf, X, np.where(y == clf.classes_[-1], clf.classes_[0], y))
    other = np.array(["zz"] * len(y)) if y.dtype.kind == "U" else np.full(len(y), 42)
    with pytest.raises(ValueError):
        _quiet_fit(clf, X, np.where(np.arange(len(y)) == 0, other, y))


def test_partial_fit_accepts_known_subsets_and_refuses_unknown_labels():
    from rosenblatt.neural_network import MLPClassifier

    X = np.random.default_rng(0).standard_normal((30, 3))
    clf = MLPClassifier(hidden_layer_sizes=(4,), random_state=0)
    clf.partial_fit(X, np.arange(30) % 3, classes=[0, 1, 2])
    clf.partial_fit(X[:10], np.zeros(10, int))  # one known class only
    with pytest.raises(ValueError, match="classes not in"):
        clf.partial_fit(X[:10], np.full(10, 5))


def test_fitted_estimator_still_checks_its_input():
    clf, X = _fitted(np.array([0, 1] * 10))
    y = np.array([0, 1] * 10)
    Xn = X.copy()
    Xn[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        _quiet_fit(clf, Xn, y)
    with pytest.raises(ValueError, match="features"):
        _quiet_fit(clf, X[:, :2], y)
    with pytest.raises(ValueError):
        _quiet_fit(clf, X[:5], y)
    yf = y.astype(float)
    yf[0] = np.inf
    with pytest.raises(ValueError):
        _quiet_fit(clf, X, yf)
    big = np.full_like(X, 1e308)  # finite, but its sum overflows: the full test decides
    _quiet_fit(clf.set_params(max_iter=1, learning_rate_init=1e-300), big, y)


def test_parameters_are_validated_again_when_they_change():
    from sklearn.utils._param_validation import InvalidParameterError

    clf, X = _fitted(np.array([0, 1] * 10))
    y = np.array([0, 1] * 10)
    _quiet_fit(clf, X, y)
    clf.alpha = -1.0  # assigned directly, not through set_params
    with pytest.raises(InvalidParameterError):
        _quiet_fit(clf, X, y)
    clf.alpha = 1e-4
    _quiet_fit(clf, X, y)
    with pytest.raises(InvalidParameterError):
        _quiet_fit(clf.set_params(batch_size=0), X, y)


def test_seeded_fits_repeat_and_a_given_random_state_is_not_reseeded():
    y = np.array([0, 1, 2] * 10)
    a, X = _fitted(y)
    b, _ = _fitted(y)
    for _ in range(2):
        _quiet_fit(a, X, y)
        _quiet_fit(b, X, y)
    np.testing.assert_array_equal(a._params, b._params)
    rs = np.random.RandomState(5)
    c, _ = _fitted(y, random_state=rs)
    state = rs.get_state()[1].copy()
    _quiet_fit(c.set_params(random_state=3), X, y)
    _quiet_fit(c, X, y)
    np.testing.assert_array_equal(rs.get_state()[1], state)
