"""scikit-learn's estimator checks, over every public estimator of skmic."""

import pytest
from sklearn.utils.estimator_checks import (
    check_dataframe_column_names_consistency,
    check_param_validation,
    parametrize_with_checks,
)

from skmic import DECClustering, DeepInfoMaxEmbedder, IICClustering, KMeansBaseline


def tiny_estimators():
    """Every public estimator, configured small enough for the check suite."""
    return [
        KMeansBaseline(n_clusters=3, n_init=2, device="cpu", random_state=0),
        IICClustering(
            n_clusters=3, n_heads=2, n_init=1, max_epochs=15, hidden_layer_sizes=(16,),
            learning_rate=1e-2, device="cpu", random_state=0,
        ),
        DECClustering(
            n_clusters=3, hidden_layer_sizes=(16,), n_components=2, pretrain_epochs=10, kmeans_n_init=2,
            update_interval=5, max_epochs=25, batch_size=32, device="cpu", random_state=0,
        ),
        DeepInfoMaxEmbedder(
            n_components=3, hidden_layer_sizes=(16,), token_channels=4, critic_dim=8, max_epochs=3,
            batch_size=16, device="cpu", random_state=0,
        ),
    ]


# Expected failures, each with its reason. Empty means every check passes.
EXPECTED_FAILURES = {}


def expected_failed_checks(estimator):
    return EXPECTED_FAILURES.get(type(estimator).__name__, {})


@parametrize_with_checks(tiny_estimators(), expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    check(estimator)


# Checks that scikit-learn only runs on its own estimators.
@pytest.mark.parametrize("estimator", tiny_estimators(), ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("check", [check_param_validation, check_dataframe_column_names_consistency], ids=lambda c: c.__name__)
def test_sklearn_internal_checks(estimator, check):
    check(type(estimator).__name__, estimator)
