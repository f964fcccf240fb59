"""Looking inside fitted models: feature-map information and plots.

* :func:`histogram_mutual_information` -- plug-in MI of two samples;
* :func:`feature_map_mutual_information` -- how much each feature map of a
  conv encoder says about the input image, corrected for the plug-in bias by
  a pixel-shuffled baseline;
* :func:`plot_feature_maps`, :func:`plot_history`,
  :func:`plot_cluster_samples`, :func:`plot_contingency` -- matplotlib
  figures of those maps, of training curves, of samples per cluster and of
  the cluster/class table after Hungarian matching;
* :func:`plot_segmentation` -- images beside their predicted segmentation
  (and ground truth).
"""

import numpy as np
import torch
import torch.nn.functional as F

from .metrics import cluster_mapping, pixel_mapping

__all__ = [
    "feature_map_mutual_information",
    "histogram_mutual_information",
    "plot_cluster_samples",
    "plot_contingency",
    "plot_feature_maps",
    "plot_history",
    "plot_segmentation",
]


def histogram_mutual_information(a, b, bins=16):
    """Plug-in mutual information (nats) of paired samples, by a joint histogram.

    ``MI = sum_ij p_ij ln(p_ij / (p_i p_j))`` over a ``bins x bins``
    histogram with equal-width bins. Its upward bias is about
    ``(bins - 1)^2 / (2 N)`` nats: compare values only at equal ``N`` and
    ``bins``, or subtract a shuffled baseline.

    Parameters
    ----------
    a, b : array-like of shape (N,)
    bins : int, default=16

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from skmic.inspection import histogram_mutual_information
    >>> x = np.random.default_rng(0).random(10000)
    >>> round(histogram_mutual_information(x, x, bins=4), 3)  # ln 4
    1.386
    """
    joint, _, _ = np.histogram2d(np.ravel(a), np.ravel(b), bins=bins)
    p = joint / joint.sum()
    pa, pb = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    return float((p[nz] * np.log(p[nz] / (pa @ pb)[nz])).sum())


def _feature_maps(model, X, image_shape):
    """Last conv feature maps of ``X`` (n, C, h, w) from an estimator or module."""
    module = model
    for path in ("network_.trunk", "network_.members.0.encoder.local", "trunk", "local"):
        obj = model
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        module = obj
        break
    if not hasattr(module, "feature_map"):
        raise TypeError(
            f"{type(model).__name__} has no conv feature maps: pass a ConvEncoder, or an "
            "IICClustering / DeepInfoMaxEmbedder fitted with image_shape."
        )
    param = next(module.parameters())
    x = torch.as_tensor(np.asarray(X), dtype=param.dtype, device=param.device)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            return module.feature_map(x.reshape((-1,) + tuple(image_shape)))
    finally:
        module.train(was_training)


def feature_map_mutual_information(model, X, image_shape, *, bins=16, random_state=0):
    """MI between the input image and each feature map, bias-corrected.

    Every feature map of the encoder's last conv layer is resampled
    (bilinearly) to the image grid; the pairs (pixel value, map value) over
    all pixels of all images give a plug-in MI. The same is computed after
    shuffling the pixels of each image (which destroys the spatial
    correspondence but keeps both marginals), and subtracted.

    Parameters
    ----------
    model : estimator or torch.nn.Module
        A fitted :class:`~skmic.IICClustering` or
        :class:`~skmic.DeepInfoMaxEmbedder` with a conv encoder (its first
        network's, when it has ``n_estimators_`` above 1), or a
        :class:`~skmic.nn.encoders.ConvEncoder`.
    X : array-like of shape (n_samples, C*H*W)
    image_shape : tuple of int
        ``(C, H, W)``; MI is measured against the channel mean.
    bins : int, default=16
    random_state : int, default=0
        Seed of the shuffled baseline.

    Returns
    -------
    mi : ndarray of shape (n_maps,)
        Corrected MI (nats) of each map.
    raw : ndarray of shape (n_maps,)
        Uncorrected plug-in MI.

    See Also
    --------
    plot_feature_maps : The maps of one sample, ranked by this MI.
    histogram_mutual_information : The plug-in estimate used for each map.

    Examples
    --------
    A module only needs a ``feature_map`` method. Here map 0 copies the
    image and map 1 is its negative plus noise:

    >>> import numpy as np
    >>> import torch
    >>> from skmic.inspection import feature_map_mutual_information
    >>> class TwoMaps(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.scale = torch.nn.Parameter(torch.ones(1))
    ...     def feature_map(self, x):
    ...         noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(0))
    ...         return torch.cat([x * self.scale, noise - x], 1)
    >>> X = np.random.default_rng(0).random((50, 64))
    >>> mi, raw = feature_map_mutual_information(TwoMaps(), X, (1, 8, 8), bins=8)
    >>> mi.shape, bool(mi[0] > mi[1] > 0), bool((raw >= mi).all())
    ((2,), True, True)
    """
    image_shape = tuple(image_shape) if len(image_shape) == 3 else (1,) + tuple(image_shape)
    maps = _feature_maps(model, X, image_shape)
    _, h, w = image_shape
    up = F.interpolate(maps.float(), size=(h, w), mode="bilinear", align_corners=False).cpu().numpy()
    img = np.asarray(X, dtype=np.float64).reshape((-1,) + image_shape).mean(1)  # (n, H, W)
    rng = np.random.default_rng(random_state)
    perm = np.argsort(rng.random(img.reshape(len(img), -1).shape), axis=1)
    shuffled = np.take_along_axis(img.reshape(len(img), -1), perm, axis=1)
    raw = np.array([histogram_mutual_information(img, up[:, c], bins) for c in range(up.shape[1])])
    base = np.array([histogram_mutual_information(shuffled, up[:, c].reshape(len(img), -1), bins) for c in range(up.shape[1])])
    return raw - base, raw


def _plt():
    import matplotlib.pyplot as plt

    return plt


def plot_feature_maps(model, X, image_shape, *, sample=0, top=8, bins=16):
    """The ``top`` feature maps of one sample, ranked by corrected MI with the input.

    The ranking is computed over all of ``X`` with
    :func:`feature_map_mutual_information`; the figure shows the input image
    ``X[sample]`` and its ``top`` highest-ranked maps, each titled with its
    index and MI.

    Parameters
    ----------
    model : estimator or torch.nn.Module
        As in :func:`feature_map_mutual_information`.
    X : array-like of shape (n_samples, C*H*W)
    image_shape : tuple of int
        ``(C, H, W)`` or ``(H, W)``.
    sample : int, default=0
        Row of ``X`` whose maps are shown.
    top : int, default=8
        Number of maps shown.
    bins : int, default=16
        Histogram bins of the MI estimate.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from skmic.inspection import plot_feature_maps
    >>> from skmic.nn.encoders import ConvEncoder
    >>> X = np.random.default_rng(0).random((20, 64))
    >>> fig = plot_feature_maps(ConvEncoder((1, 8, 8), (4,)), X, (8, 8), top=3)
    >>> len(fig.axes)  # the input and three maps
    4
    """
    mi, _ = feature_map_mutual_information(model, X, image_shape, bins=bins)
    image_shape = tuple(image_shape) if len(image_shape) == 3 else (1,) + tuple(image_shape)
    maps = _feature_maps(model, np.asarray(X)[sample : sample + 1], image_shape)[0].cpu().numpy()
    order = np.argsort(mi)[::-1][:top]
    plt = _plt()
    fig, axes = plt.subplots(1, len(order) + 1, figsize=(1.6 * (len(order) + 1), 1.9))
    axes[0].imshow(np.asarray(X)[sample].reshape(image_shape).mean(0), cmap="gray_r")
    axes[0].set_title("input", fontsize=8)
    for ax, c in zip(axes[1:], order):
        ax.imshow(maps[c], cmap="viridis")
        ax.set_title(f"map {c}\nMI {mi[c]:.3f}", fontsize=7)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_history(estimator, keys=("loss",)):
    """Training curves from a fitted estimator's ``history_``.

    Parameters
    ----------
    estimator : fitted estimator
        Any skmic estimator with a ``history_`` list of dicts (per epoch,
        or per target update for :class:`~skmic.DECClustering`).
    keys : sequence of str, default=("loss",)
        Entries of the records to plot (e.g. ``"delta_label"`` for DEC),
        against ``epoch`` or, when absent, ``iteration``. An entry that
        holds one value per network (IIC's ``"restart_loss"``, DIM's
        ``"member_loss"``) gives one curve per network.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If no record holds a key, or a per-network entry changes length
        (IIC's screening drops restarts: plot ``"loss"`` or the epochs
        after the screening).

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from skmic import DeepInfoMaxEmbedder
    >>> from skmic.inspection import plot_history
    >>> X, _ = make_blobs(60, n_features=4, random_state=0)
    >>> dim = DeepInfoMaxEmbedder(n_components=2, hidden_layer_sizes=(8,), critic_dim=8,
    ...                           max_epochs=2, random_state=0, device="cpu").fit(X)
    >>> fig = plot_history(dim)
    >>> fig.axes[0].get_xlabel()
    'epoch'
    """
    plt = _plt()
    history = estimator.history_
    x_key = "epoch" if "epoch" in history[0] else "iteration"
    curves = []
    for key in keys:
        records = [r for r in history if key in r]
        if not records:
            raise ValueError(f"no record of history_ holds {key!r}; its keys: {sorted(history[0])}.")
        x, values = [r[x_key] for r in records], [r[key] for r in records]
        if not isinstance(values[0], list):
            curves.append((x, values, key))
            continue
        if len({len(v) for v in values}) > 1:
            raise ValueError(
                f"{key!r} holds one value per network, and their number changes along history_ "
                "(restarts dropped by screening); plot its mean or the epochs after the change."
            )
        curves += [(x, [v[k] for v in values], f"{key} {k}") for k in range(len(values[0]))]
    fig, ax = plt.subplots(figsize=(5, 3))
    for x, y, label in curves:
        ax.plot(x, y, label=label)
    ax.set_xlabel(x_key)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_cluster_samples(X, labels, image_shape, *, per_cluster=8, random_state=0):
    """A row of sample images for every cluster.

    Parameters
    ----------
    X : array-like of shape (n_samples, C*H*W)
        Flattened images (the channel mean is shown).
    labels : array-like of shape (n_samples,)
        Cluster of each row, e.g. ``labels_`` of a fitted clusterer.
    image_shape : tuple of int
        ``(C, H, W)`` or ``(H, W)``.
    per_cluster : int, default=8
        Images per row, drawn at random from the cluster's members.
    random_state : int, default=0
        Seed of that draw.

    Returns
    -------
    matplotlib.figure.Figure
        One row per cluster, titled with its id and size.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skmic.inspection import plot_cluster_samples
    >>> X, y = load_digits(return_X_y=True)
    >>> fig = plot_cluster_samples(X[:100], y[:100], (8, 8), per_cluster=4)
    >>> len(fig.axes)  # 10 clusters x 4 images
    40
    """
    plt = _plt()
    image_shape = tuple(image_shape) if len(image_shape) == 3 else (1,) + tuple(image_shape)
    clusters = np.unique(labels)
    rng = np.random.default_rng(random_state)
    fig, axes = plt.subplots(len(clusters), per_cluster, figsize=(per_cluster * 0.8, len(clusters) * 0.85), squeeze=False)
    for row, k in zip(axes, clusters):
        members = np.flatnonzero(labels == k)
        chosen = rng.choice(members, size=min(per_cluster, len(members)), replace=False)
        for j, ax in enumerate(row):
            ax.axis("off")
            if j < len(chosen):
                ax.imshow(np.asarray(X)[chosen[j]].reshape(image_shape).mean(0), cmap="gray_r")
        row[0].set_title(f"cluster {k} ({len(members)})", fontsize=7, loc="left")
    fig.tight_layout()
    return fig


def plot_contingency(y_true, y_pred):
    """The class x cluster counts, clusters ordered by their Hungarian match.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Classes.
    y_pred : array-like of shape (n_samples,)
        Cluster ids; there may be more or fewer clusters than classes.

    Returns
    -------
    matplotlib.figure.Figure
        A heat map with one row per class and one column per cluster; the
        column of the cluster matched to the i-th class comes i-th, so a good
        clustering shows a bright diagonal. Unmatched clusters come last.

    See Also
    --------
    skmic.metrics.cluster_mapping : The matching used to order the columns.

    Examples
    --------
    >>> from skmic.inspection import plot_contingency
    >>> fig = plot_contingency([0, 0, 1, 1, 2], [2, 2, 0, 0, 1])
    >>> [t.get_text() for t in fig.axes[0].get_xticklabels()]
    ['2', '0', '1']
    """
    from sklearn.metrics.cluster import contingency_matrix

    plt = _plt()
    classes, clusters = np.unique(y_true), np.unique(y_pred)
    table = contingency_matrix(y_true, y_pred)
    mapping = cluster_mapping(y_true, y_pred)
    class_index = {c: i for i, c in enumerate(classes)}
    order = sorted(range(len(clusters)), key=lambda j: class_index.get(mapping.get(clusters[j]), len(classes) + j))
    table = table[:, order]
    fig, ax = plt.subplots(figsize=(0.5 * len(clusters) + 2, 0.5 * len(classes) + 1.5))
    ax.imshow(table, cmap="Blues")
    for i in range(table.shape[0]):
        for j in range(table.shape[1]):
            ax.text(j, i, table[i, j], ha="center", va="center", fontsize=6)
    ax.set_xticks(range(len(order)), [str(clusters[j]) for j in order])
    ax.set_yticks(range(len(classes)), [str(c) for c in classes])
    ax.set_xlabel("cluster (ordered by matched class)")
    ax.set_ylabel("class")
    fig.tight_layout()
    return fig


def plot_segmentation(images, labels, truth=None, *, n_images=4, cmap="tab10"):
    """Images beside their predicted segmentation and, if given, the ground truth.

    One row per image: the image (grey level, or RGB for 3 channels), the
    predicted segments and the true classes. With ``truth``, the predicted
    cluster ids are renamed to the classes they match (one Hungarian map for
    all the images shown, :func:`skmic.metrics.pixel_mapping`), so that a
    correct segment has the colour of its class; unmatched clusters keep
    colours after the classes'. Every panel's title says what it shows, and
    the prediction's title gives the pixel accuracy under that map.

    Parameters
    ----------
    images : array-like of shape (n, H, W) or (n, C, H, W)
        The images (any value range: each is scaled to its own min and max).
    labels : array-like of shape (n, H, W)
        Predicted segment of every pixel, e.g. ``IICSegmentation.predict``.
    truth : array-like of shape (n, H, W), default=None
        True class of every pixel; None shows two columns.
    n_images : int, default=4
        Rows: the first ``n_images`` images.
    cmap : str, default="tab10"
        Colour map of the segments (a qualitative one keeps them distinct).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from skmic.inspection import plot_segmentation
    >>> images = np.random.default_rng(0).random((3, 8, 8))
    >>> truth = (np.arange(8) >= 4).astype(int)[None, None].repeat(8, 1).repeat(3, 0)
    >>> fig = plot_segmentation(images, 1 - truth, truth, n_images=2)
    >>> len(fig.axes), fig.axes[1].get_title()
    (6, 'prediction (acc 1.00)')
    """
    images, labels = np.asarray(images)[:n_images], np.asarray(labels)[:n_images]
    if images.ndim == 4:
        images = images.transpose(0, 2, 3, 1) if images.shape[1] == 3 else images.mean(1)
    shown = labels
    n_colours = len(np.unique(labels))
    if truth is not None:
        truth = np.asarray(truth)[:n_images]
        mapping = pixel_mapping(truth, labels)
        classes = np.unique(truth)
        rank = {c: i for i, c in enumerate(classes)}
        extra = iter(range(len(classes), len(classes) + n_colours))
        ids = {c: rank[mapping[c]] if c in mapping else next(extra) for c in np.unique(labels)}
        shown = np.vectorize(ids.get)(labels)
        truth = np.vectorize(rank.get)(truth)
        n_colours = max(n_colours, len(classes))
    plt = _plt()
    cols = 2 if truth is None else 3
    fig, axes = plt.subplots(len(images), cols, figsize=(2.2 * cols, 2.2 * len(images)), squeeze=False)
    accuracy = None if truth is None else float((shown == truth).mean())
    for row, image, seg, true in zip(axes, images, shown, truth if truth is not None else [None] * len(images)):
        lo, hi = float(image.min()), float(image.max())
        row[0].imshow((image - lo) / (hi - lo if hi > lo else 1), cmap="gray", vmin=0, vmax=1)
        row[0].set_title("image", fontsize=8)
        row[1].imshow(seg, cmap=cmap, vmin=0, vmax=max(n_colours - 1, 1), interpolation="nearest")
        row[1].set_title("prediction" if accuracy is None else f"prediction (acc {accuracy:.2f})", fontsize=8)
        if true is not None:
            row[2].imshow(true, cmap=cmap, vmin=0, vmax=max(n_colours - 1, 1), interpolation="nearest")
            row[2].set_title("ground truth", fontsize=8)
        for ax in row:
            ax.axis("off")
    fig.tight_layout()
    return fig
