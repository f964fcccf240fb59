"""KMeansBaseline against scikit-learn's KMeans and against its own definition."""

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans

from skmic import KMeansBaseline
from skmic import kmeans as km_module
from skmic.kmeans import kmeans


def test_matches_sklearn_inertia_on_digits(digits):
    X, _ = digits
    ours = KMeansBaseline(10, n_init=10, device="cpu", random_state=0).fit(X)
    ref = KMeans(10, n_init=10, random_state=0).fit(X)
    assert ours.inertia_ <= ref.inertia_ * 1.005
    # inertia_ is the definition: sum of squared distances to the assigned centre
    d = ((X - ours.cluster_centers_[ours.labels_]) ** 2).sum()
    assert ours.inertia_ == pytest.approx(d, rel=1e-9)
    np.testing.assert_array_equal(ours.predict(X), ours.labels_)
    assert ours.score(X) == pytest.approx(-ours.inertia_)


def test_centres_are_means_of_their_clusters(blobs):
    X, _ = blobs
    km = KMeansBaseline(3, device="cpu", random_state=0).fit(X)
    for k in range(3):
        np.testing.assert_allclose(km.cluster_centers_[k], X[km.labels_ == k].mean(0), rtol=1e-10)


def test_transform_is_distances(blobs):
    X, _ = blobs
    km = KMeansBaseline(3, device="cpu", random_state=0).fit(X)
    expected = np.linalg.norm(X[:, None] - km.cluster_centers_[None], axis=2)
    np.testing.assert_allclose(km.transform(X), expected, rtol=1e-9)


def test_float32_is_kept(blobs):
    X, _ = blobs
    km = KMeansBaseline(3, device="cpu", random_state=0).fit(X.astype(np.float32))
    assert km.cluster_centers_.dtype == np.float32


def test_chunked_distances_equal_unchunked(monkeypatch, digits):
    X, _ = digits
    full = KMeansBaseline(10, n_init=3, device="cpu", random_state=1).fit(X)
    monkeypatch.setattr(km_module, "_CHUNK_ELEMENTS", 97)  # many small chunks
    chunked = KMeansBaseline(10, n_init=3, device="cpu", random_state=1).fit(X)
    np.testing.assert_array_equal(full.labels_, chunked.labels_)
    assert full.inertia_ == pytest.approx(chunked.inertia_, rel=1e-12)


def test_explicit_init_and_random_init(blobs):
    X, y = blobs
    init = np.stack([X[y == k].mean(0) for k in range(3)])
    km = KMeansBaseline(3, init=init, device="cpu").fit(X)
    assert km.n_iter_ <= 2
    with pytest.raises(ValueError, match="expected"):
        KMeansBaseline(3, init=init[:2], device="cpu").fit(X)
    km = KMeansBaseline(3, init="random", n_init=5, device="cpu", random_state=0).fit(X)
    assert len(np.unique(km.labels_)) == 3


def test_empty_clusters_are_relocated():
    # duplicated points: k-means++ cannot give distinct seeds; 'random' init
    # starts with coinciding centres, so some clusters start empty
    X = np.repeat(np.array([[0.0, 0.0], [5.0, 5.0], [9.0, 0.0]]), 10, axis=0)
    X += np.random.default_rng(0).normal(scale=0.01, size=X.shape)
    init = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    km = KMeansBaseline(3, init=init, device="cpu").fit(X)
    assert len(np.unique(km.labels_)) == 3


def test_tensor_api_stays_on_device_and_dtype():
    X = torch.randn(200, 5, dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    centers, labels, inertia, n_iter = kmeans(X, 4, n_init=3, generator=g)
    assert centers.dtype == torch.float32 and centers.shape == (4, 5)
    assert labels.dtype == torch.long and labels.shape == (200,)
    assert inertia > 0 and n_iter >= 1


def test_fewer_distinct_points_than_clusters_warns():
    from sklearn.exceptions import ConvergenceWarning

    X = np.repeat(np.array([[0.0, 0.0], [5.0, 5.0]]), 5, axis=0)
    with pytest.warns(ConvergenceWarning, match=r"Number of distinct clusters \(2\) found smaller than n_clusters \(3\)"):
        km = KMeansBaseline(3, device="cpu", random_state=0).fit(X)
    assert len(np.unique(km.labels_)) == 2


def test_restart_inertia_is_each_restarts_own_run():
    # 'random' seeding draws one permutation per restart from the generator, in order: restart j
    # alone is a one-restart run from the generator after j draws (a naive reference, restart by restart)
    X = torch.from_numpy(np.random.default_rng(0).normal(size=(300, 3)))
    result = kmeans(X, 6, n_init=4, init="random", generator=torch.Generator().manual_seed(0))
    alone = []
    for j in range(4):
        g = torch.Generator().manual_seed(0)
        for _ in range(j):
            torch.randperm(len(X), generator=g)
        alone.append(kmeans(X, 6, n_init=1, init="random", generator=g).inertia)
    np.testing.assert_allclose(result.restart_inertia, alone, rtol=1e-9)
    assert len(set(alone)) > 1  # the restarts differ: the test tells them apart
    assert result.best == np.argmin(alone) and result.inertia == result.restart_inertia[result.best]
    centers, labels, inertia, n_iter = result  # unpacks as the kept restart's model
    assert inertia == result.inertia and n_iter == len(result.history)


def test_restart_diagnostics_of_the_estimator(blobs):
    X = blobs[0]
    km = KMeansBaseline(3, init="random", n_init=5, device="cpu", random_state=0).fit(X)
    assert km.restart_losses_.shape == (5,) and km.kept_restarts_.tolist() == [np.argmin(km.restart_losses_)]
    assert km.inertia_ == km.restart_losses_.min() == pytest.approx(-km.score(X))
    one = KMeansBaseline(3, init=km.cluster_centers_, device="cpu").fit(X)  # explicit centres: one restart
    assert one.restart_losses_.shape == (1,) and one.kept_restarts_.tolist() == [0]


def _corners():
    """40 + 40 points on the bottom corners of a 1 x 2 rectangle, 10 + 10 on the top ones (jittered).

    With two clusters, bottom | top (80 / 20 points, inertia about 25) is the
    lowest inertia, left | right (50 / 50, about 64) another local optimum.
    """
    rng = np.random.default_rng(0)
    points = [(0, 0)] * 40 + [(1, 0)] * 40 + [(0, 2)] * 10 + [(1, 2)] * 10
    return torch.tensor(np.array(points) + 0.01 * rng.standard_normal((100, 2)), dtype=torch.float32)


def test_select_balance_keeps_the_most_balanced_restart():
    X = _corners()
    by_inertia = kmeans(X, 2, n_init=20, generator=torch.Generator().manual_seed(0))
    balanced = kmeans(X, 2, n_init=20, generator=torch.Generator().manual_seed(0), select="balance")
    # same restarts (same draws), another one kept
    np.testing.assert_array_equal(by_inertia.restart_inertia, balanced.restart_inertia)
    np.testing.assert_array_equal(by_inertia.restart_counts, balanced.restart_counts)
    assert sorted(np.bincount(by_inertia.labels.numpy())) == [20, 80]
    assert sorted(np.bincount(balanced.labels.numpy())) == [50, 50]
    assert balanced.inertia == balanced.restart_inertia[balanced.best] > by_inertia.inertia
    # restart_counts are each restart's sizes; the kept one's are its labels' counts
    assert (balanced.restart_counts.sum(1) == len(X)).all()
    np.testing.assert_array_equal(np.bincount(balanced.labels.numpy(), minlength=2),
                                  balanced.restart_counts[balanced.best])
    # a naive reference: the entropy of every restart's sizes, highest kept, ties to the lower inertia
    p = balanced.restart_counts / len(X)
    entropy = -(p * np.log(np.where(p > 0, p, 1))).sum(1)
    top = np.flatnonzero(entropy >= entropy.max() - 1e-12)
    assert balanced.best == top[np.argmin(balanced.restart_inertia[top])]
    with pytest.raises(ValueError, match="select"):
        kmeans(X, 2, n_init=2, select="sizes")
