"""Consensus of an ensemble of clusterings: one clustering that most of them agree with.

IIC trains several networks (restarts), each with several sub-heads; each
sub-head is a clustering of the data. Their mistakes differ (one restart
merges two classes, another splits one), while the true classes are what
most of them share. The consensus used here is the mixture model of
clustering ensembles (Topchy, Jain & Punch, "A mixture model for clustering
ensembles", SDM 2004): a consensus cluster ``k`` is a distribution over the
labels that each clustering ``j`` gives its members, ``mu[k, j, c]``, and a
sample whose clusterings give it the labels ``(c_1, ..., c_J)`` belongs to
cluster ``k`` with posterior probability

    p(k | c) ∝ pi_k * prod_j mu[k, j, c_j].

The model is fitted label-free in two steps: k-means (:func:`skmic.kmeans.kmeans`)
on the concatenated soft assignments of all clusterings (equivalently, it
groups the samples that share the same clusters in most clusterings, since
the squared distance between two one-hot concatenations is twice the number
of clusterings that separate them), then the maximum-likelihood ``pi`` and
``mu`` of that partition, with add-one smoothing. Further EM iterations
changed no label in our measurements on scikit-learn's digits and were
dropped.
"""

from dataclasses import dataclass

import numpy as np
import torch

from ._data import Rows
from .kmeans import kmeans

#: rows per chunk of the passes over the assignments (counts, labels)
_CHUNK_ROWS = 4096

__all__ = ["Consensus", "fit_consensus"]


@dataclass
class Consensus:
    """A fitted consensus of ``J`` clusterings into ``K`` clusters.

    Attributes
    ----------
    log_prior : ndarray of shape (K,)
        ``log pi_k``, the log fraction of the fitting samples in cluster ``k``.
    log_mu : ndarray of shape (K, J, C)
        ``log mu[k, j, c]``: log probability that clustering ``j`` gives label
        ``c`` to a member of consensus cluster ``k``.
    """

    log_prior: np.ndarray
    log_mu: np.ndarray

    def log_proba(self, labels):
        """Log posterior ``(n, K)`` of the consensus clusters given per-clustering labels.

        Parameters
        ----------
        labels : Tensor of shape (n, J), integer
            Label of each sample in each of the ``J`` clusterings.
        """
        log_mu = torch.as_tensor(self.log_mu, device=labels.device)  # (K, J, C)
        k, j, _ = log_mu.shape
        by_label = log_mu.permute(1, 2, 0)  # (J, C, K)
        ll = by_label[torch.arange(j, device=labels.device), labels].sum(1)  # (n, K)
        ll = ll + torch.as_tensor(self.log_prior, device=labels.device)
        return ll - ll.logsumexp(1, keepdim=True)

    def predict(self, proba):
        """The consensus cluster of every sample of ``proba``, read chunk by chunk.

        Parameters
        ----------
        proba : skmic._data.Rows of shape (n, J * C)
            Every clustering's soft assignment of every sample, flattened
            (as :func:`fit_consensus` takes it).

        Returns
        -------
        labels : LongTensor of shape (n,)
        """
        j, c = self.log_mu.shape[1:]
        return proba.map_chunks(lambda chunk: self.log_proba(chunk.view(len(chunk), j, c).argmax(2)).argmax(1),
                                _CHUNK_ROWS)


def fit_consensus(proba, n_clusters, *, n_init=10, generator=None, smoothing=1.0, n_clusterings=None, verbose=0,
                  owner=None):
    """Fit the consensus of ``J`` soft clusterings of the same ``n`` samples.

    Parameters
    ----------
    proba : Tensor of shape (n, J, C), or skmic._data.Rows of shape (n, J * C)
        Soft assignment of every sample by every clustering (rows over ``C``
        sum to 1). Rows (e.g. a :class:`~skmic._data.RowStore` on disk, for
        a streamed fit) are read chunk by chunk, never as a whole.
    n_clusters : int
        Clusters of the consensus.
    n_init : int, default=10
        Restarts of the k-means that finds the consensus partition.
    generator : torch.Generator, optional
        On ``proba``'s device; seeds k-means.
    smoothing : float, default=1.0
        Pseudo-count added to every ``(k, j, c)`` cell before normalising.
    n_clusterings : int, optional
        ``J``, when ``proba`` is given as Rows.
    verbose : int, default=0
        With 1 or more, the k-means' progress bar, labelled "consensus
        k-means" (:func:`skmic.kmeans.kmeans`).
    owner : str, optional
        The estimator's class name, which starts the bar's label.

    Returns
    -------
    consensus : Consensus

    Examples
    --------
    >>> import torch
    >>> from skmic.consensus import fit_consensus
    >>> truth = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    >>> # three clusterings, the third merges clusters 1 and 2
    >>> labels = torch.stack([truth, (truth + 1) % 3, torch.tensor([0, 0, 0, 1, 1, 1, 1, 1, 1])], 1)
    >>> proba = torch.nn.functional.one_hot(labels, 3).double()
    >>> consensus = fit_consensus(proba, 3, generator=torch.Generator().manual_seed(0))
    >>> consensus.log_proba(labels).argmax(1).unique_consecutive().numel()
    3
    """
    if isinstance(proba, Rows):
        rows, j = proba, int(n_clusterings)
        c = rows.shape[1] // j
    else:
        n, j, c = proba.shape
        rows = Rows(proba.reshape(n, j * c).double(), proba.device, dtype=torch.float64)
    _, members, _, _ = kmeans(rows, n_clusters, n_init=n_init, generator=generator, verbose=verbose,
                              desc="consensus k-means", owner=owner)
    counts = torch.zeros(n_clusters * j * c, dtype=torch.long, device=rows.device)
    for start, chunk in rows.chunks(_CHUNK_ROWS):
        hard = chunk.view(len(chunk), j, c).argmax(2)  # (m, J)
        cell = (members[start : start + len(chunk), None] * j + torch.arange(j, device=rows.device)) * c + hard
        counts += torch.bincount(cell.flatten(), minlength=n_clusters * j * c)
    counts = counts.view(n_clusters, j, c).double() + smoothing
    log_mu = (counts / counts.sum(2, keepdim=True)).log()
    sizes = torch.bincount(members, minlength=n_clusters).double().clamp_min(1)  # (members: n labels)
    log_prior = (sizes / sizes.sum()).log()
    return Consensus(log_prior.cpu().numpy(), log_mu.cpu().numpy())
