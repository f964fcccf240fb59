"""Hyperparameter search over skmic estimators on real engines: Dask and Ray.

``GridSearchCV`` runs its fits through joblib; joblib's Dask backend (with a
real ``distributed.LocalCluster`` of worker processes) and Ray's joblib
backend (a local Ray instance) must find what the default backend finds, the
estimators travelling to the workers by pickling. The engines are optional
(``pip install skmic[dask]`` / ``skmic[ray]``): their tests skip without them.
The recipe is the user guide's "Distributed" page.
"""

import os
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.model_selection import GridSearchCV

from skmic import IICClustering, KMeansBaseline
from skmic.engines import register_dask_backend

# Starting a Dask LocalCluster and a Ray instance costs about 150 s of a 2-core
# CI machine, and the default suite must stay under 10 minutes: `pytest -m slow`.
pytestmark = pytest.mark.slow

#: 4 candidates of a small IIC, 2 folds: 8 fits of about a second
GRID = {"learning_rate": [1e-2, 3e-3], "n_repeats": [1, 3]}


def _estimator():
    return IICClustering(n_clusters=3, n_heads=2, n_init=1, max_epochs=5, hidden_layer_sizes=(16,),
                         device="cpu", random_state=0)


@pytest.fixture(scope="module")
def X():
    X, _ = make_blobs(n_samples=150, centers=3, n_features=4, random_state=0)
    return (X - X.mean(0)) / X.std(0)


@pytest.fixture(scope="module")
def reference(X):
    """The search with joblib's default backend, in this process's workers."""
    return GridSearchCV(_estimator(), GRID, cv=2, n_jobs=2, error_score="raise").fit(X)


def assert_same_search(search, reference):
    assert search.best_params_ == reference.best_params_
    for key in ("mean_test_score", "split0_test_score", "split1_test_score"):
        np.testing.assert_allclose(search.cv_results_[key], reference.cv_results_[key], rtol=1e-6)


class DiesInFit(KMeansBaseline):
    """A k-means whose process dies (no exception, no cleanup) when it fits 4 clusters."""

    def _fit(self, X):
        if self.n_clusters == 4:
            os._exit(3)
        super()._fit(X)


# ------------------------------------------------------------------ Dask
@pytest.fixture(scope="module")
def dask_client():
    pytest.importorskip("distributed")
    import dask
    from distributed import Client, LocalCluster

    # a task whose worker died is not retried on another one (the default retries it 3 times)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                          env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}) as cluster:
            with Client(cluster) as client:
                register_dask_backend()
                yield client


@pytest.mark.parametrize("backend", ["dask", "skmic-dask"])
def test_dask_search_finds_the_same_best_parameters(dask_client, X, reference, backend):
    with joblib.parallel_config(backend=backend, scatter=[X]):
        search = GridSearchCV(_estimator(), GRID, cv=2, n_jobs=2, error_score="raise").fit(X)
        # X was shipped to every worker up front, not with each of the 8 fits
        held = dask_client.run(lambda dask_worker: [v.shape for v in dask_worker.data.values()
                                                    if isinstance(v, np.ndarray) and v.shape == X.shape])
    assert sorted(held) == sorted(dask_client.scheduler_info()["workers"])
    # scattered once: a worker that ran no fit may hold no copy (seen in a full-suite run), none holds
    # one per fit
    assert sum(len(shapes) for shapes in held.values()) >= 1, held
    assert all(len(shapes) < 8 for shapes in held.values()), held
    assert_same_search(search, reference)


def test_dask_worker_that_dies_stops_the_search(dask_client, X):
    """The search raises KilledWorker, naming the task, instead of hanging.

    Run after a search on the same cluster, as here, joblib 1.6's own Dask
    backend hung in 1 of 3 runs (and raised an unexplained
    FutureCancelledError in the others): it never tells joblib of a task that
    failed because its worker died. Three searches in a row, each once the
    nannies have restarted the dead worker (with one worker, joblib would run
    the search in this process).
    """
    from distributed.scheduler import KilledWorker

    for _ in range(3):
        dask_client.wait_for_workers(2, timeout=120)
        search = GridSearchCV(DiesInFit(n_init=1, device="cpu", random_state=0), {"n_clusters": [2, 3, 4, 5]},
                              cv=2, n_jobs=2, error_score="raise")
        with joblib.parallel_config(backend="skmic-dask", scatter=[X]):
            with pytest.raises(KilledWorker, match="died"):
                search.fit(X)


# ------------------------------------------------------------------- Ray
@pytest.fixture(scope="module")
def ray_backend():
    ray = pytest.importorskip("ray")
    from ray.util.joblib import register_ray

    # Ray's workers import skmic and this module (DiesInFit) from the checkout under test
    here = Path(__file__).resolve().parent
    path = os.pathsep.join([str(here.parent), str(here)])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": path}})
    register_ray()
    try:
        yield ray
    finally:
        ray.shutdown()


def test_ray_search_finds_the_same_best_parameters(ray_backend, X, reference):
    with joblib.parallel_config(backend="ray"):
        search = GridSearchCV(_estimator(), GRID, cv=2, n_jobs=2, error_score="raise").fit(X)
    assert_same_search(search, reference)


def test_ray_worker_that_dies_is_a_clear_error(ray_backend, X):
    search = GridSearchCV(DiesInFit(n_init=1, device="cpu", random_state=0), {"n_clusters": [2, 3, 4, 5]},
                          cv=2, n_jobs=2, error_score="raise")
    with joblib.parallel_config(backend="ray"):
        with pytest.raises(Exception, match="(?i)died|crashed|exited") as info:
            search.fit(X)
    assert "ray" in type(info.value).__module__
