"""One vocabulary across the estimators: the same name means the same thing everywhere."""

import inspect

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV

from skmic import DECClustering, DeepInfoMaxEmbedder, IICClustering, KMeansBaseline
from skmic.exceptions import TrainingDivergedError

from test_common import tiny_estimators

#: estimator -> (the grid GridSearchCV searches, fitted attributes it must have)
TABLE = {
    "KMeansBaseline": ({"n_clusters": [2, 3]}, ["labels_", "n_iter_", "cluster_centers_"]),
    "IICClustering": ({"learning_rate": [1e-2, 1e-3]}, ["labels_", "n_iter_", "network_", "history_", "restart_losses_"]),
    "DECClustering": ({"degrees_of_freedom": [1.0, 2.0]}, ["labels_", "n_iter_", "network_", "history_", "restart_losses_"]),
    "DeepInfoMaxEmbedder": ({"learning_rate": [1e-2, 1e-3]}, ["n_iter_", "network_", "history_"]),
}

#: parameters every estimator has, and those every network-training one adds
SHARED = {"device", "random_state", "verbose"}
DEEP = SHARED | {"batch_size", "max_epochs", "learning_rate", "warm_start", "callbacks"}

#: names that must not come back (one name per concept)
RETIRED = {"n_restarts", "alpha", "beta", "gamma", "max_iter_", "encoder_"}


def by_name():
    return {type(e).__name__: e for e in tiny_estimators()}


@pytest.fixture
def X(blobs):
    return (blobs[0] - blobs[0].mean(0)) / blobs[0].std(0)


@pytest.mark.parametrize("name", TABLE)
def test_parameter_names(name):
    est = by_name()[name]
    params = set(est.get_params())
    assert (SHARED if name == "KMeansBaseline" else DEEP) <= params
    assert not params & RETIRED
    # n_init means full runs of the method everywhere (scikit-learn's meaning)
    if name != "DeepInfoMaxEmbedder":
        assert "n_init" in params
    # scikit-learn's default number of clusters
    if "n_clusters" in params:
        assert inspect.signature(type(est)).parameters["n_clusters"].default == 8


@pytest.mark.parametrize("name", TABLE)
def test_fitted_attributes_and_score(name, X):
    grid, attributes = TABLE[name]
    est = by_name()[name].fit(X)
    for attribute in attributes:
        assert hasattr(est, attribute), f"{name} has no {attribute}"
    assert isinstance(est.n_iter_, int) and est.n_iter_ >= 1
    if hasattr(est, "history_"):  # one record per epoch, numbered
        assert [r["epoch"] for r in est.history_] == list(range(1, est.n_iter_ + 1))
        assert all("loss" in r for r in est.history_)
    score = est.score(X)
    assert isinstance(score, float) and np.isfinite(score)


@pytest.mark.parametrize("name", TABLE)
def test_grid_search_needs_no_scoring(name, X):
    grid, _ = TABLE[name]
    search = GridSearchCV(by_name()[name], grid, cv=2, error_score="raise").fit(X)
    assert search.best_params_.keys() == grid.keys()
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


@pytest.mark.parametrize("name", ["IICClustering", "DECClustering", "DeepInfoMaxEmbedder"])
def test_divergence_is_one_error_type(name, X):
    calls = []

    def poisoned(x, generator):  # fine when fit checks it, NaN once training runs
        calls.append(1)
        return x * float("nan") if len(calls) > 1 else x

    est = by_name()[name].set_params(perturbation=poisoned)
    with pytest.raises(TrainingDivergedError):
        est.fit(X)


def test_segmentation_shares_the_vocabulary():
    # IICSegmentation labels pixels, not rows, so the table's row-based fits do not apply to it;
    # its parameter names and the default number of clusters are the shared ones
    from skmic import IICSegmentation

    params = set(IICSegmentation().get_params())
    assert DEEP | {"n_init", "n_clusters", "n_heads", "overclustering"} <= params
    assert not params & RETIRED
    assert inspect.signature(IICSegmentation).parameters["n_clusters"].default == 8
