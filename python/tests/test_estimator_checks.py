"""scikit-learn's own estimator checks, over every estimator, on the CPU and on the GPU."""

import os

from sklearn.utils.estimator_checks import parametrize_with_checks

import gradflow
from gradflow import LinearRegression, LogisticRegression, MLPClassifier


def _estimators(backend):
    return [
        LinearRegression(backend=backend),
        LogisticRegression(backend=backend),
        MLPClassifier(hidden_layer_sizes=32, backend=backend),
    ]


def _gpu_estimators():
    """The GPU instances, on whatever adapter wgpu finds (Mesa's lavapipe in CI). Without
    one they are left out, unless GRADFLOW_REQUIRE_GPU=1 (as CI sets) makes that an error."""
    if gradflow.gpu_adapter() is not None:
        return _estimators("gpu")
    if os.environ.get("GRADFLOW_REQUIRE_GPU") == "1":
        raise RuntimeError("GRADFLOW_REQUIRE_GPU=1 but wgpu finds no adapter")
    return []


# The one expected failure, with its reason (tests/test_use.py checks the property at
# float32's tolerance).
EXPECTED_FAILURES = {
    "check_sample_weight_equivalence_on_dense_data": (
        "float32 training: weighted and repeated fits agree to ~1e-6, the check asks 1e-7"
    ),
}


def _expected_failures(estimator):
    return EXPECTED_FAILURES


@parametrize_with_checks(
    _estimators("cpu") + _gpu_estimators(), expected_failed_checks=_expected_failures
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
