"""scikit-learn's estimator checks for rosenblatt.Perceptron.

The expected failures are exactly the ones scikit-learn declares for its own Perceptron
(sample_weight is not equivalent to repeating rows for an online algorithm). The checks run
with scikit-learn's test setting for its Perceptron (``max_iter=5``); the
ConvergenceWarning that setting produces is expected and silenced here explicitly (pytest
turns warnings into errors).
"""

import warnings

import pytest
from rosenblatt.kernels import resolve_backend
from rosenblatt.linear_model import Perceptron
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

# scikit-learn 1.9 declares these for sklearn.linear_model.Perceptron
# (sklearn/utils/_test_common/instance_generator.py, PER_ESTIMATOR_XFAIL_CHECKS)
EXPECTED_FAILED = {
    "check_sample_weight_equivalence_on_dense_data":
        "sample_weight is not equivalent to removing/repeating samples.",
    "check_sample_weight_equivalence_on_sparse_data":
        "sample_weight is not equivalent to removing/repeating samples.",
}

# the default backend (ROSENBLATT_BACKEND when set)
BACKEND = resolve_backend(None)


@parametrize_with_checks(
    [Perceptron(max_iter=5, backend=BACKEND),
     Perceptron(max_iter=5, rule="rosenblatt", backend=BACKEND)],
    expected_failed_checks=lambda est: EXPECTED_FAILED,
)
def test_sklearn_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


def test_expected_failures_match_sklearn():
    """Our expected failures are scikit-learn's own for its Perceptron, nothing more."""
    try:
        from sklearn.linear_model import Perceptron as SkPerceptron
        from sklearn.utils._test_common.instance_generator import PER_ESTIMATOR_XFAIL_CHECKS
    except ImportError:  # pragma: no cover - another scikit-learn layout
        pytest.skip("scikit-learn's private check tables moved")
    assert set(EXPECTED_FAILED) == set(PER_ESTIMATOR_XFAIL_CHECKS[SkPerceptron])


def test_class_weight_balanced_check_for_linear_classifiers():
    """scikit-learn runs this check only for subclasses of its LinearClassifierMixin; the
    Perceptron here is not one (it has its own decision_function), so it is run directly:
    class_weight='balanced' must equal the weights computed by hand."""
    from sklearn.utils.estimator_checks import check_class_weight_balanced_linear_classifier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check_class_weight_balanced_linear_classifier(
            "Perceptron", Perceptron(backend=BACKEND))
