import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestNeighbors

from skmic import self_labeling
from skmic.self_labeling import fit_softmax, nearest_neighbors, neighbor_vote


def test_nearest_neighbors_match_scikit_learn_across_blocks(monkeypatch):
    monkeypatch.setattr(self_labeling, "_BLOCK_ROWS", 64)  # several blocks, the last one partial
    X = np.random.default_rng(0).normal(size=(300, 7))
    got = nearest_neighbors(torch.tensor(X), 5).numpy()
    expected = NearestNeighbors(n_neighbors=6).fit(X).kneighbors(X, return_distance=False)[:, 1:]  # drop itself
    np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match="n_neighbors"):
        nearest_neighbors(torch.tensor(X[:5]), 5)


def test_neighbor_vote_matches_a_naive_loop():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 3))
    labels = rng.integers(0, 4, 120)
    k, rounds = 6, 3
    order = np.argsort(((X[:, None] - X[None]) ** 2).sum(2) + np.diag(np.full(120, np.inf)), axis=1)[:, :k]
    expected = labels.copy()
    for _ in range(rounds):
        new = np.empty_like(expected)
        for i in range(len(X)):
            counts = np.bincount(expected[order[i]], minlength=4)
            new[i] = np.argmax(counts)  # ties: the smallest label
        expected = new
    got = neighbor_vote(torch.tensor(X), torch.tensor(labels), 4, n_neighbors=k, n_rounds=rounds)
    np.testing.assert_array_equal(got.numpy(), expected)


def test_neighbor_vote_corrects_scattered_wrong_labels():
    rng = np.random.default_rng(2)
    X = np.concatenate([rng.normal(0, 1, (100, 2)), rng.normal(10, 1, (100, 2))])
    truth = np.repeat([0, 1], 100)
    noisy = truth.copy()
    flipped = rng.choice(200, 20, replace=False)
    noisy[flipped] = 1 - noisy[flipped]
    got = neighbor_vote(torch.tensor(X), torch.tensor(noisy), 2, n_neighbors=10, n_rounds=2)
    np.testing.assert_array_equal(got.numpy(), truth)


def test_fit_softmax_is_scikit_learns_logistic_regression():
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(300, 6)), rng.integers(0, 4, 300)
    weight_decay = 0.05
    coef, intercept = fit_softmax(torch.tensor(X), torch.tensor(y), 4, weight_decay=weight_decay)
    reference = LogisticRegression(C=1 / (weight_decay * len(X)), tol=1e-10, max_iter=10000).fit(X, y)
    np.testing.assert_allclose(coef.numpy(), reference.coef_, atol=1e-5)
    np.testing.assert_allclose(intercept.numpy(), reference.intercept_, atol=1e-5)
    assert not coef.requires_grad and not intercept.requires_grad
