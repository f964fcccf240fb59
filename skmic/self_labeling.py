"""Self-labelling: refine a clustering of features by its neighbours' votes, then learn it with a linear classifier.

IIC's ``selection="self_labeling"`` uses these two steps on the k-means
labels of its kept restarts' features (SCAN's idea, Van Gansbeke et al.
2020: a sample's nearest neighbours in a learned feature space mostly share
its class, and a classifier trained on trusted pseudo-labels corrects the
rest). Both steps are plain tensor code on the features' device.
"""

import torch

__all__ = ["neighbor_vote", "fit_softmax"]

#: query rows per distance block of :func:`nearest_neighbors` (a block holds ``rows * n`` distances)
_BLOCK_ROWS = 1024


def nearest_neighbors(features, n_neighbors):
    """Indices ``(n, n_neighbors)`` of each row's nearest other rows (Euclidean), nearest first.

    The distances are computed a block of rows at a time, so memory is
    ``O(n)`` a block, never ``n x n``.
    """
    n = len(features)
    if not 0 < n_neighbors < n:
        raise ValueError(f"n_neighbors={n_neighbors} must be between 1 and n_samples - 1 = {n - 1}.")
    out = torch.empty(n, n_neighbors, dtype=torch.long, device=features.device)
    for start in range(0, n, _BLOCK_ROWS):
        block = torch.cdist(features[start : start + _BLOCK_ROWS], features)
        rows = torch.arange(len(block), device=features.device)
        block[rows, start + rows] = float("inf")  # not its own neighbour
        out[start : start + len(block)] = block.topk(n_neighbors, dim=1, largest=False).indices
    return out


def neighbor_vote(features, labels, n_clusters, n_neighbors=20, n_rounds=5):
    """Relabel every row by the majority label of its ``n_neighbors`` nearest rows, ``n_rounds`` times.

    Parameters
    ----------
    features : Tensor of shape (n_samples, n_features)
    labels : Tensor of shape (n_samples,)
        Integer labels in ``[0, n_clusters)``: the clustering to refine.
    n_clusters : int
    n_neighbors : int, default=20
        Neighbours that vote (the row itself does not); SCAN's 20.
    n_rounds : int, default=5
        Rounds of voting, each on the previous round's labels (a label
        spreads at most ``n_rounds`` hops through the neighbour graph).

    Returns
    -------
    Tensor of shape (n_samples,)
        The refined labels. Ties go to the smallest label.
    """
    neighbors = nearest_neighbors(features, n_neighbors)
    for _ in range(n_rounds):
        votes = torch.zeros(len(labels), n_clusters, device=labels.device)
        votes.scatter_add_(1, labels[neighbors], torch.ones_like(neighbors, dtype=votes.dtype))
        labels = votes.argmax(1)
    return labels


def fit_softmax(features, labels, n_classes, weight_decay=1e-3, max_iter=100):
    """Multinomial logistic regression by L-BFGS: weights ``(n_classes, n_features)`` and intercepts.

    Minimises the mean cross-entropy of ``softmax(features @ W.T + b)``
    plus ``weight_decay / 2 * ||W||^2`` (the intercepts are not penalised),
    as scikit-learn's ``LogisticRegression(C=1 / (weight_decay * n_samples))``
    does, on the features' device and dtype, full batch.

    Returns
    -------
    coef : Tensor of shape (n_classes, n_features)
    intercept : Tensor of shape (n_classes,)
    """
    coef = torch.zeros(n_classes, features.shape[1], dtype=features.dtype, device=features.device, requires_grad=True)
    intercept = torch.zeros(n_classes, dtype=features.dtype, device=features.device, requires_grad=True)
    optimizer = torch.optim.LBFGS([coef, intercept], max_iter=max_iter, line_search_fn="strong_wolfe",
                                  tolerance_grad=1e-7, tolerance_change=1e-12)

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(features @ coef.T + intercept, labels)
        loss = loss + 0.5 * weight_decay * coef.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return coef.detach(), intercept.detach()
