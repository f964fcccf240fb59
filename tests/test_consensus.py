"""The consensus of clusterings (skmic.consensus) against naive references."""

import itertools

import numpy as np
import torch

from skmic.consensus import Consensus, fit_consensus
from skmic.metrics import cluster_accuracy


def naive_log_proba(consensus, labels):
    k, j, _ = consensus.log_mu.shape
    out = np.empty((len(labels), k))
    for i, row in enumerate(labels):
        for cluster in range(k):
            out[i, cluster] = consensus.log_prior[cluster] + sum(consensus.log_mu[cluster, h, row[h]] for h in range(j))
    return out - np.logaddexp.reduce(out, axis=1, keepdims=True)


def test_posterior_matches_the_product_formula():
    rng = np.random.default_rng(0)
    mu = rng.dirichlet(np.ones(4), size=(3, 5))  # (K=3, J=5, C=4)
    prior = rng.dirichlet(np.ones(3))
    consensus = Consensus(np.log(prior), np.log(mu))
    labels = rng.integers(0, 4, size=(50, 5))
    got = consensus.log_proba(torch.as_tensor(labels)).numpy()
    np.testing.assert_allclose(got, naive_log_proba(consensus, labels), rtol=1e-12, atol=1e-12)


def planted_ensemble(rng, n=300, k=5):
    """Twelve clusterings of a planted partition: eight right (up to 5% noise), two merge, two split."""
    truth = rng.integers(0, k, n)
    clusterings = []
    for h in range(12):
        labels = rng.permutation(k)[truth]
        noisy = rng.random(n) < 0.05
        labels[noisy] = rng.integers(0, k, noisy.sum())
        if h in (8, 9):  # two true classes merged into one cluster
            a, b = rng.choice(k, 2, replace=False)
            labels[labels == b] = a
        if h in (10, 11):  # one true class split over two clusters
            a = rng.integers(k)
            members = np.flatnonzero(labels == a)
            labels[members[: len(members) // 2]] = (a + 1) % k
        clusterings.append(labels)
    return truth, np.stack(clusterings, 1)


def test_recovers_the_planted_partition_better_than_any_member():
    rng = np.random.default_rng(1)
    truth, labels = planted_ensemble(rng)
    proba = torch.nn.functional.one_hot(torch.as_tensor(labels), 5).double()
    consensus = fit_consensus(proba, 5, generator=torch.Generator().manual_seed(0))
    found = consensus.log_proba(torch.as_tensor(labels)).argmax(1).numpy()
    best_member = max(cluster_accuracy(truth, labels[:, h]) for h in range(labels.shape[1]))
    assert cluster_accuracy(truth, found) == 1.0 > best_member


def test_mixture_parameters_are_the_smoothed_counts():
    rng = np.random.default_rng(2)
    truth, labels = planted_ensemble(rng, n=120, k=3)
    labels = labels[:, :8]  # the right clusterings only: k-means finds the truth
    proba = torch.nn.functional.one_hot(torch.as_tensor(labels), 3).double()
    consensus = fit_consensus(proba, 3, generator=torch.Generator().manual_seed(0), smoothing=0.5)
    found = consensus.log_proba(torch.as_tensor(labels)).argmax(1).numpy()
    assert cluster_accuracy(truth, found) == 1.0
    for cluster, h, c in itertools.product(range(3), range(8), range(3)):
        members = labels[found == cluster, h]
        expected = ((members == c).sum() + 0.5) / (len(members) + 3 * 0.5)
        assert np.isclose(np.exp(consensus.log_mu[cluster, h, c]), expected, rtol=1e-12)
    np.testing.assert_allclose(np.exp(consensus.log_prior), np.bincount(found, minlength=3) / len(found), rtol=1e-12)
