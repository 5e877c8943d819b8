"""scikit-learn's estimator checks for MLPClassifier and MLPRegressor.

No expected failures: the checks run as scikit-learn runs them on its own MLPs, including
the per-check parameters scikit-learn declares for them (``PER_ESTIMATOR_CHECK_PARAMS``,
e.g. the sample-weight equivalence check with ``solver="lbfgs"``), which
``parametrize_with_checks`` applies only to scikit-learn's own classes. ``max_iter`` is
small to keep the suite fast; the ConvergenceWarning that follows is expected and
silenced here explicitly (pytest turns warnings into errors). The estimators with
``batch_norm=True`` run every check too, except the two sample-weight equivalence checks,
which do not apply to batch statistics (see ``BN_NOT_APPLICABLE``).
"""

import warnings

import pytest
from rosenblatt.kernels import resolve_backend
from rosenblatt.neural_network import MLPClassifier, MLPRegressor
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor
from sklearn.utils.estimator_checks import estimator_checks_generator

try:  # scikit-learn's private table of per-check parameters for its own estimators
    from sklearn.utils._test_common.instance_generator import PER_ESTIMATOR_CHECK_PARAMS
except ImportError:  # pragma: no cover - layout of another scikit-learn version
    PER_ESTIMATOR_CHECK_PARAMS = {}

# the default backend: ROSENBLATT_BACKEND when set (CI runs this file once per backend,
# .ci/run), else the fastest one here
BACKEND = resolve_backend(None)
# scikit-learn's own test setting for its MLPs is max_iter=100; 30 keeps this file fast
ESTIMATORS = [
    (MLPClassifier(max_iter=30, backend=BACKEND), SkMLPClassifier),
    (MLPRegressor(max_iter=30, backend=BACKEND), SkMLPRegressor),
]


def _check_name(check):
    return getattr(check, "func", check).__name__


def _cases():
    for est, sk_cls in ESTIMATORS:
        per_check = PER_ESTIMATOR_CHECK_PARAMS.get(sk_cls, {})
        for inst, check in estimator_checks_generator(est, legacy=True):
            name = _check_name(check)
            param_sets = per_check.get(name, [{}])
            if isinstance(param_sets, dict):
                param_sets = [param_sets]
            for params in param_sets:
                case = clone(inst).set_params(**params) if params else inst
                extra = "".join(f",{k}={v}" for k, v in params.items())
                yield pytest.param(case, check, id=f"{type(est).__name__}-{name}{extra}")


# batch_norm=True: every check, with scikit-learn's default parameters. Sample weights
# weight the loss but not the batch statistics (as in PyTorch, which has no weighted batch
# norm), so a weighted fit is not a fit on repeated rows: those two checks do not apply.
BN_NOT_APPLICABLE = {
    "check_sample_weight_equivalence_on_dense_data":
        "batch statistics are unweighted: sample_weight is not row repetition",
    "check_sample_weight_equivalence_on_sparse_data":
        "batch statistics are unweighted: sample_weight is not row repetition",
}
BN_ESTIMATORS = [
    MLPClassifier(max_iter=30, batch_norm=True, backend=BACKEND),
    MLPRegressor(max_iter=30, batch_norm=True, backend=BACKEND),
]


def _bn_cases():
    for est in BN_ESTIMATORS:
        for inst, check in estimator_checks_generator(est, legacy=True):
            name = _check_name(check)
            marks = ([pytest.mark.skip(reason=BN_NOT_APPLICABLE[name])]
                     if name in BN_NOT_APPLICABLE else [])
            yield pytest.param(inst, check, id=f"{type(est).__name__}-bn-{name}",
                               marks=marks)


@pytest.mark.parametrize("estimator, check", list(_cases()) + list(_bn_cases()))
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)
