"""Clustering accuracy under the best matching of clusters to classes.

Cluster ids are arbitrary, so the accuracy of a clustering is measured after
mapping clusters to classes. With the one-to-one (Hungarian) map this is the
customary "ACC" of deep-clustering papers; with the many-to-one map (each
cluster to its majority class) it is the customary score of over-clustering.
scikit-learn's :func:`~sklearn.metrics.normalized_mutual_info_score` and
:func:`~sklearn.metrics.adjusted_rand_score` complete the usual trio.

Examples
--------
The scorers :data:`cluster_accuracy_scorer` and
:data:`many_to_one_accuracy_scorer` score a fitted clusterer's ``predict`` on
held-out data, e.g. in :func:`~sklearn.model_selection.cross_val_score` or
:class:`~sklearn.model_selection.GridSearchCV`:

>>> from sklearn.datasets import make_blobs
>>> from sklearn.model_selection import cross_val_score
>>> from skmic import KMeansBaseline
>>> from skmic.metrics import cluster_accuracy_scorer, many_to_one_accuracy_scorer
>>> X, y = make_blobs(90, centers=3, random_state=0)
>>> km = KMeansBaseline(3, random_state=0, device="cpu")
>>> cross_val_score(km, X, y, scoring=cluster_accuracy_scorer, cv=3).round(2).tolist()
[0.9, 0.9, 0.9]

With more clusters than classes, the one-to-one map leaves clusters
unmatched (their samples count as errors); the many-to-one map does not:

>>> km6 = KMeansBaseline(6, random_state=0, device="cpu").fit(X)
>>> round(cluster_accuracy_scorer(km6, X, y), 2), round(many_to_one_accuracy_scorer(km6, X, y), 2)
(0.56, 0.82)
"""

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import make_scorer
from sklearn.metrics.cluster import contingency_matrix
from sklearn.utils import column_or_1d
from sklearn.utils.validation import check_consistent_length

__all__ = [
    "cluster_accuracy",
    "cluster_accuracy_scorer",
    "cluster_mapping",
    "many_to_one_accuracy_scorer",
    "pixel_accuracy",
    "pixel_mapping",
    "remap_labels",
]

_KINDS = ("one_to_one", "many_to_one")


def _contingency(y_true, y_pred):
    y_true = column_or_1d(y_true, warn=True)
    y_pred = column_or_1d(y_pred, warn=True)
    check_consistent_length(y_true, y_pred)
    if y_true.shape[0] == 0:
        raise ValueError("y_true and y_pred are empty: nothing to score.")
    classes = np.unique(y_true)
    clusters = np.unique(y_pred)
    table = contingency_matrix(y_true, y_pred)  # rows: classes, cols: clusters
    return classes, clusters, table


def _match(table, kind):
    """Pairs (class_row, cluster_col) of the best map for a contingency table."""
    if kind == "one_to_one":
        rows, cols = linear_sum_assignment(table, maximize=True)
    elif kind == "many_to_one":
        cols = np.arange(table.shape[1])
        rows = table.argmax(axis=0)
    else:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}.")
    return rows, cols


def cluster_mapping(y_true, y_pred, *, kind="one_to_one"):
    """The map from cluster ids to classes that maximises agreement.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Ground-truth classes (any hashable labels: ints, strings, ...).
    y_pred : array-like of shape (n_samples,)
        Cluster ids (any labels; need not be contiguous).
    kind : {"one_to_one", "many_to_one"}, default="one_to_one"
        ``"one_to_one"``: each cluster maps to a distinct class (Hungarian
        algorithm on the contingency matrix); with more clusters than
        classes, the unmatched clusters are absent from the map.
        ``"many_to_one"``: every cluster maps to its majority class.

    Returns
    -------
    mapping : dict
        ``{cluster_id: class_label}``.

    Examples
    --------
    >>> from skmic.metrics import cluster_mapping
    >>> m = cluster_mapping(["a", "a", "b", "b"], [1, 1, 0, 0])
    >>> sorted((int(k), str(v)) for k, v in m.items())
    [(0, 'b'), (1, 'a')]
    """
    classes, clusters, table = _contingency(y_true, y_pred)
    rows, cols = _match(table, kind)
    return {clusters[c]: classes[r] for r, c in zip(rows, cols)}


def cluster_accuracy(y_true, y_pred, *, kind="one_to_one"):
    """Accuracy of a clustering after the best map from clusters to classes.

    ``ACC = max_m (1/n) sum_i 1[y_true_i == m(y_pred_i)]`` over one-to-one
    maps ``m`` (Hungarian algorithm on the contingency matrix, via
    :func:`scipy.optimize.linear_sum_assignment`). Samples in clusters that
    no class is matched to count as errors.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Ground-truth classes (ints, strings, ...).
    y_pred : array-like of shape (n_samples,)
        Cluster ids; there may be more or fewer clusters than classes.
    kind : {"one_to_one", "many_to_one"}, default="one_to_one"
        See :func:`cluster_mapping`. ``"many_to_one"`` is the customary
        score for over-clustering; it rewards more clusters.

    Returns
    -------
    accuracy : float
        In [0, 1].

    Examples
    --------
    >>> from skmic.metrics import cluster_accuracy
    >>> cluster_accuracy([0, 0, 1, 1, 2, 2], [5, 5, 3, 3, 3, 9])
    0.8333333333333334
    """
    _, _, table = _contingency(y_true, y_pred)
    rows, cols = _match(table, kind)
    return float(table[rows, cols].sum() / table.sum())


def remap_labels(y_true, y_pred, *, kind="one_to_one", unmatched=-1):
    """Cluster ids translated into the classes they are matched with.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
    kind : {"one_to_one", "many_to_one"}, default="one_to_one"
    unmatched : object, default=-1
        Label given to samples of clusters that no class is matched to.

    Returns
    -------
    y_mapped : ndarray of shape (n_samples,)

    Examples
    --------
    >>> from skmic.metrics import remap_labels
    >>> remap_labels([0, 0, 1, 1], [7, 7, 4, 4]).tolist()
    [0, 0, 1, 1]
    """
    mapping = cluster_mapping(y_true, y_pred, kind=kind)
    clusters, inverse = np.unique(column_or_1d(y_pred), return_inverse=True)
    targets = np.array([mapping.get(c, unmatched) for c in clusters])
    return targets[inverse]


def _valid_pixels(y_true, y_pred, ignore_label):
    """Both label maps flattened, without the pixels whose true label is ``ignore_label``."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must have the same shape, got {y_true.shape} and {y_pred.shape}.")
    y_true, y_pred = y_true.ravel(), y_pred.ravel()
    if ignore_label is not None:
        keep = y_true != ignore_label
        y_true, y_pred = y_true[keep], y_pred[keep]
    return y_true, y_pred


def pixel_accuracy(y_true, y_pred, *, ignore_label=None, kind="one_to_one"):
    """Segmentation accuracy over all valid pixels of all images.

    The protocol of IIC's segmentation results (Ji et al. 2019): one map
    from clusters to classes for the whole set, found by the Hungarian
    algorithm over all valid pixels, then the fraction of valid pixels whose
    mapped cluster is their class (:func:`cluster_accuracy` with every pixel
    a sample). Use :func:`pixel_mapping` for the map itself.

    Parameters
    ----------
    y_true : array-like of shape (n_images, H, W)
        True class of every pixel (any shape: it is flattened).
    y_pred : array-like of the same shape
        Cluster of every pixel, e.g. ``IICSegmentation.predict``.
    ignore_label : object, default=None
        Pixels whose true class is this value (unlabelled pixels, e.g. 255)
        are left out of the matching and of the accuracy.
    kind : {"one_to_one", "many_to_one"}, default="one_to_one"
        See :func:`cluster_mapping`.

    Returns
    -------
    accuracy : float
        Correct valid pixels / valid pixels.

    Examples
    --------
    >>> import numpy as np
    >>> from skmic.metrics import pixel_accuracy
    >>> truth = np.array([[[0, 0], [1, 255]]])
    >>> pixel_accuracy(truth, np.array([[[7, 7], [3, 7]]]), ignore_label=255)
    1.0
    """
    return cluster_accuracy(*_valid_pixels(y_true, y_pred, ignore_label), kind=kind)


def pixel_mapping(y_true, y_pred, *, ignore_label=None, kind="one_to_one"):
    """The map from clusters to classes that :func:`pixel_accuracy` scores with.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_images, H, W)
    ignore_label : object, default=None
        True class of pixels left out.
    kind : {"one_to_one", "many_to_one"}, default="one_to_one"

    Returns
    -------
    mapping : dict
        ``{cluster_id: class_label}``, as :func:`cluster_mapping`.

    Examples
    --------
    >>> import numpy as np
    >>> from skmic.metrics import pixel_mapping
    >>> m = pixel_mapping(np.array([[[0, 0], [1, 1]]]), np.array([[[5, 5], [2, 2]]]))
    >>> sorted((int(k), int(v)) for k, v in m.items())
    [(2, 1), (5, 0)]
    """
    return cluster_mapping(*_valid_pixels(y_true, y_pred, ignore_label), kind=kind)


#: Scorer for ``GridSearchCV(..., scoring=cluster_accuracy_scorer)``: calls the
#: fitted model's ``predict`` on the test fold and scores it against ``y``.
cluster_accuracy_scorer = make_scorer(cluster_accuracy)

#: Like :data:`cluster_accuracy_scorer` with the many-to-one map.
many_to_one_accuracy_scorer = make_scorer(cluster_accuracy, kind="many_to_one")
