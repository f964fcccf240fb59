import itertools

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.model_selection import GridSearchCV

from skmic.metrics import (
    cluster_accuracy,
    cluster_accuracy_scorer,
    cluster_mapping,
    many_to_one_accuracy_scorer,
    remap_labels,
)


def brute_force_accuracy(y_true, y_pred):
    """Best accuracy over every injective map from clusters to classes."""
    classes = sorted(set(y_true))
    clusters = sorted(set(y_pred))
    best = 0
    # pad classes with "unmatched" placeholders when there are more clusters
    targets = classes + [object()] * max(0, len(clusters) - len(classes))
    for perm in itertools.permutations(targets, len(clusters)):
        m = dict(zip(clusters, perm))
        best = max(best, sum(m[p] == t for t, p in zip(y_true, y_pred)))
    return best / len(y_true)


@pytest.mark.parametrize("seed", range(25))
def test_accuracy_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n_classes, n_clusters = rng.integers(1, 5), rng.integers(1, 6)
    y_true = rng.integers(0, n_classes, 30)
    y_pred = rng.integers(0, n_clusters, 30) * 7 + 3  # non-contiguous ids
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(brute_force_accuracy(list(y_true), list(y_pred)))


def test_string_labels_and_permutation_invariance():
    y_true = np.array(["cat", "cat", "dog", "dog", "eel", "eel"])
    y_pred = np.array([2, 2, 0, 0, 1, 1])
    assert cluster_accuracy(y_true, y_pred) == 1.0
    assert cluster_mapping(y_true, y_pred) == {2: "cat", 0: "dog", 1: "eel"}
    assert remap_labels(y_true, y_pred).tolist() == y_true.tolist()


def test_float_labels_are_not_truncated():
    # astype(int) would merge 0.1 and 0.9 into class 0
    assert cluster_accuracy([0.1, 0.9, 0.1, 0.9], [0, 1, 0, 1]) == 1.0
    assert cluster_accuracy([0.1, 0.9, 0.1, 0.9], [0, 0, 0, 0]) == 0.5


def test_more_clusters_than_classes():
    y_true = [0, 0, 0, 1, 1, 1]
    y_pred = [0, 0, 1, 2, 2, 3]
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(4 / 6)
    assert cluster_accuracy(y_true, y_pred, kind="many_to_one") == 1.0
    assert remap_labels(y_true, y_pred, unmatched=-1).tolist().count(-1) == 2
    assert cluster_mapping(y_true, y_pred, kind="many_to_one") == {0: 0, 1: 0, 2: 1, 3: 1}


def test_bad_input():
    with pytest.raises(ValueError, match="inconsistent"):
        cluster_accuracy([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="empty"):
        cluster_accuracy([], [])
    with pytest.raises(ValueError, match="kind"):
        cluster_accuracy([0, 1], [0, 1], kind="best")


def test_scorers_in_grid_search(blobs):
    X, y = blobs
    search = GridSearchCV(KMeans(n_init=2, random_state=0), {"n_clusters": [2, 3]}, scoring=cluster_accuracy_scorer, cv=3)
    search.fit(X, y)
    assert search.best_params_ == {"n_clusters": 3}
    assert search.best_score_ > 0.95
    model = search.best_estimator_
    assert many_to_one_accuracy_scorer(model, X, y) >= cluster_accuracy_scorer(model, X, y)
