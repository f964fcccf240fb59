"""DECClustering: Deep Embedded Clustering (and IDEC) as a scikit-learn clusterer."""

import copy
import math
import numbers
import warnings

import numpy as np
import torch
from sklearn.base import ClassNamePrefixFeaturesOutMixin, ClusterMixin, TransformerMixin
from sklearn.exceptions import ConvergenceWarning

from . import _distributed as distributed
from ._base import (
    CONTROL_CONSTRAINTS, BaseDeepEstimator, Interval, SoftClusterMixin, StrOptions, check_layer_sizes,
)
from ._data import Rows
from ._data import mean_square as mean_square_of
from ._training import adam, announce, announce_run, batches, continue_history, train
from .exceptions import TrainingDivergedError
from .kmeans import kmeans, size_entropy
from .nn.autoencoder import Autoencoder, Encoder
from .nn.losses import dec_kl_loss, student_t_assignment, target_distribution
from .perturbations import PERTURBATIONS, check_perturbation, make_perturbation

__all__ = ["DECClustering"]


#: rows per forward pass of DEC's passes over all the data (embedding, target)
_PASS_ROWS = 4096


def compactness(z, labels, n_clusters):
    """Within-cluster sum of squares of ``z`` over its total sum of squares.

    0 when every cluster is a point, 1 when the clusters' means coincide (or
    ``z`` is constant). Scale-free, so embeddings of different restarts
    compare. ``z`` is a tensor or :class:`~skmic._data.Rows` (two passes,
    in float64).
    """
    z = z if isinstance(z, Rows) else Rows(z, z.device, dtype=z.dtype)
    n, d = z.shape
    counts = torch.bincount(labels, minlength=n_clusters).clamp_min(1).double()
    sums = torch.zeros(n_clusters, d, dtype=torch.float64, device=z.device)
    for s, zb in z.chunks(_PASS_ROWS):
        sums.index_add_(0, labels[s : s + len(zb)], zb.double())
    means, mean = sums / counts[:, None], sums.sum(0) / n
    within = total = 0.0
    for s, zb in z.chunks(_PASS_ROWS):
        within += float(((zb.double() - means[labels[s : s + len(zb)]]) ** 2).sum())
        total += float(((zb.double() - mean) ** 2).sum())
    return within / total if total > 0 else 1.0


def agreement(labelings):
    """Mean adjusted Rand index of each labeling with the others.

    Parameters
    ----------
    labelings : sequence of array-like of shape (n_samples,)
        At least two clusterings of the same samples.

    Returns
    -------
    ndarray of shape (len(labelings),)
        Entry ``r``: the mean ARI between labeling ``r`` and every other
        one. The highest is the medoid, the clustering closest to all the
        others.
    """
    from sklearn.metrics import adjusted_rand_score

    labelings = [np.asarray(labels) for labels in labelings]
    n = len(labelings)
    ari = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            ari[i, j] = ari[j, i] = adjusted_rand_score(labelings[i], labelings[j])
    return (ari.sum(1) - 1.0) / (n - 1)


def balance(labelings, n_clusters):
    """Entropy of the cluster sizes of each labeling: highest for the most even sizes.

    Parameters
    ----------
    labelings : array-like of shape (n_labelings, n_samples)
        Clusterings of the same samples, labels in ``[0, n_clusters)``.
    n_clusters : int

    Returns
    -------
    ndarray of shape (n_labelings,)
        In nats, ``log(n_clusters)`` for equal sizes
        (:func:`skmic.kmeans.size_entropy` of the sizes).
    """
    counts = np.stack([np.bincount(labels, minlength=n_clusters) for labels in np.asarray(labelings)])
    return size_entropy(counts).numpy()


def _rms(z):
    """Root mean square of the entries of ``z`` (:class:`~skmic._data.Rows`), in float64."""
    total = sum(float(zb.double().pow(2).sum()) for _, zb in z.chunks(_PASS_ROWS))
    return math.sqrt(total / max(1, z.shape[0] * z.shape[1]))


#: DEC declares divergence when the embedding's root mean square exceeds this
#: multiple of its value at the k-means initialisation. Healthy runs stay far
#: below: on scikit-learn digits (defaults, 3000 iterations) it grew 3.5 times;
#: with learning_rate=10 on blobs it grew 590 times in 300 iterations and the
#: labels collapsed, with learning_rate=1e6 a hundred billion times.
_MAX_EMBEDDING_GROWTH = 1e3

_OPTIMIZERS = {"adam": adam, "sgd": torch.optim.SGD}

#: optimizer steps of each pretraining stage that ``pretrain_epochs="auto"`` aims at
PRETRAIN_STEPS = 1600

#: optimizer steps of the clustering phase that ``max_epochs="auto"`` allows at most
CLUSTERING_STEPS = 20000

#: the paper's encoder widths, which ``hidden_layer_sizes="auto"`` keeps for tables and larger images
PAPER_WIDTHS = (500, 500, 2000)

#: the encoder widths of ``hidden_layer_sizes="auto"`` for images of at most SMALL_IMAGE_FEATURES values
SMALL_IMAGE_WIDTHS = (256, 256, 1024)
SMALL_IMAGE_FEATURES = 256

#: clustering phases per pretrained embedding that ``clustering_n_init="auto"`` runs on images
CLUSTERING_N_INIT = 3


class DECClustering(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, SoftClusterMixin, ClusterMixin, BaseDeepEstimator
):
    """Deep Embedded Clustering (Xie, Girshick & Farhadi, ICML 2016).

    1. An autoencoder is pretrained to reconstruct the data (end to end, or
       the paper's greedy layer-wise denoising autoencoders followed by
       end-to-end fine-tuning).
    2. The centroids are initialised by k-means (``kmeans_n_init`` restarts)
       on the embedding of the whole dataset.
    3. The encoder and the centroids are then trained jointly to minimise
       ``KL(P || Q)`` between the Student's t soft assignment ``Q`` and the
       sharpened target ``P = q^2 / f`` (normalised), recomputed on the
       **whole** dataset every ``update_interval`` iterations; training stops
       when fewer than ``label_change_tol`` of the labels change between two
       updates, or after ``max_epochs`` epochs.

    With ``reconstruction_weight > 0`` the decoder is kept and its loss is
    added (IDEC, Guo et al. 2017), which preserves the local structure of
    the embedding. With a ``perturbation``, pretraining and clustering see
    randomly perturbed samples, whose assignments are pulled toward the
    clean data's targets (DEC-DA, Guo et al. 2018).

    Defaults chosen from the data (parameters left at "auto"; the fitted
    values are ``hidden_layer_sizes_``, ``selection_``, ``perturbation_``, ``rescale_input_``,
    ``pretrain_``, ``kmeans_selection_``, ``kmeans_n_init_``, ``clustering_n_init_``,
    ``pretrain_epochs_`` and ``max_epochs_``):

    ==================  ==========================  ==========================
    parameter           images                      tabular data
    ==================  ==========================  ==========================
    hidden_layer_sizes  (256, 256, 1024) up to 256  (500, 500, 2000)
                        values an image, else
                        (500, 500, 2000)
    perturbation        "shift-rotate" (DEC-DA)     None (DEC)
    rescale_input       True                        False
    pretrain            "greedy"                    "end_to_end"
    kmeans_selection    "balance"                   "inertia"
    kmeans_n_init       100                         20
    clustering_n_init   3                           1
    selection           "balance"                   "agreement" from three
                                                    phases, else
                                                    "compactness"
    pretrain_epochs     about 1600 steps a stage    about 1600 steps a stage
    max_epochs          20,000 steps, <= 1000       20,000 steps, <= 1000
    ==================  ==========================  ==========================

    The user guide's DEC page has the measurements behind these choices.
    The paper's DEC is ``perturbation=None, kmeans_selection="inertia",
    pretrain="greedy", clustering_n_init=1, hidden_layer_sizes=(500, 500, 2000)``.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters (centroids); scikit-learn's default, as in every
        skmic clusterer.
    rescale_input : bool or "auto", default="auto"
        Multiply the data by one constant, ``1 / sqrt(mean(X ** 2))`` of the
        training data, so that ``(1/d) ||x||^2`` is 1 on average, as the paper
        normalises its datasets before pretraining; the same constant
        (``input_scale_``) is applied in ``predict``, ``predict_proba`` and
        ``transform``. One scalar for the whole dataset: the geometry of the
        data is unchanged, only the scale the autoencoder and the Student's t
        kernel (``degrees_of_freedom``) see. "auto": on for images, off for tabular data
        (see the table above). Leave it off when ``pretrained_encoder``
        expects the raw features.
    hidden_layer_sizes : tuple of int or "auto", default="auto"
        Encoder widths between the input and the embedding (the decoder
        mirrors them). "auto": the paper's (500, 500, 2000), except for
        small images (at most 256 values, e.g. 8x8 or 16x16), which get
        (256, 256, 1024), about a third of the arithmetic (see the table
        above).
    n_components : int, default=10
        Dimension of the embedding.
    pretrain : {"end_to_end", "greedy", "auto"}, default="auto"
        "end_to_end": train the whole autoencoder at once (DEC-DA's
        pretraining). "greedy": the paper's layer-wise denoising
        autoencoders (each layer trained for ``pretrain_epochs`` on the
        frozen output of the previous ones, with dropout ``dropout`` on its
        input and code), then end-to-end fine-tuning for
        ``pretrain_epochs``; five stages instead of one, about 2.5 times
        the pretraining time of "end_to_end" on the digits. "auto": greedy
        for images, end to end for tabular data.
    pretrain_epochs : int or "auto", default="auto"
        Epochs of each pretraining stage. "auto" aims at about 1600
        optimizer steps a stage (10 to 200 epochs): 200 on scikit-learn's
        digits, 40 on 10,000 MNIST images.
    pretrain_optimizer : {"adam", "sgd"}, default="adam"
        Optimizer of every pretraining stage. Adam converges in far fewer
        steps than the paper's SGD, as popular reimplementations found.
    pretrain_learning_rate : float, default=1e-3
        Learning rate of the pretraining optimizer (Adam's usual 1e-3).
    dropout : float, default=0.2
        Input corruption of the denoising autoencoders (greedy pretraining).
    pretrained_encoder : torch.nn.Module, default=None
        An already trained encoder mapping ``(n, n_features)`` to
        ``(n, d)``; pretraining is skipped. It is copied, never modified.
        Needs ``reconstruction_weight=0`` (there is no decoder). A copy is
        first run on a few rows of ``X``: an encoder that fails on them (e.g.
        made for another number of features) or does not return a finite
        ``(n, d)`` tensor is a ValueError that says so.
    degrees_of_freedom : float, default=1.0
        Degrees of freedom of the Student's t kernel that turns distances to
        the centroids into soft assignments (the paper's alpha, 1).
    kmeans_n_init : int or "auto", default="auto"
        k-means restarts of the centroid initialisation. "auto": 20 (the
        paper's) when ``kmeans_selection`` keeps the lowest inertia, 100
        when it keeps the most balanced restart, whose pick among 20
        restarts is itself a draw (the user guide's DEC page has the
        measurements).
    kmeans_selection : {"auto", "inertia", "balance"}, default="auto"
        Which of the ``kmeans_n_init`` k-means restarts initialises the
        centroids: "inertia", the lowest inertia (k-means' own rule, as in
        the paper); "balance", the most balanced cluster sizes (the highest
        entropy of the sizes), for data whose classes have similar sizes.
        "auto": "balance" for images, "inertia" for tabular data, whose
        classes are often unequal (the user guide's DEC page has the
        measurements).
    n_init : int, default=1
        Independent runs of the whole method (pretraining, k-means
        initialisation, clustering phase), one after another, from new
        random weights; ``selection`` keeps one. One by default: each run
        costs a whole fit (the user guide's DEC page has the measurements of
        cheaper runs and when more pay).
    clustering_n_init : int or "auto", default="auto"
        Clustering phases run from each pretrained embedding, one after
        another, each from its own k-means initialisation (its own draw of
        ``kmeans_n_init`` restarts) and its own shuffling; every phase of
        every run is a candidate for ``selection``. The phases share the
        pretraining, so that several cost far less than as many runs.
        "auto": 3 for images, 1 for tabular data (see the table above; the
        user guide's DEC page has the measurements). With 1, a run is the
        paper's single clustering phase.
    selection : {"auto", "balance", "agreement", "compactness"}, default="auto"
        Which clustering phase is kept, among the ``n_init *
        clustering_n_init`` phases: "balance", the phase whose cluster
        sizes are the most balanced (the highest entropy of the sizes, the
        rule of ``kmeans_selection="balance"``; ties go to the earlier
        phase), for data whose classes have similar sizes; "agreement", the
        phase whose labels agree most with the other phases' (highest mean
        adjusted Rand index; needs at least three phases); "compactness",
        the phase of lowest within-cluster over total sum of squares in its
        embedding. "auto": "balance" for images; for tabular data
        agreement from three phases on, compactness below (see the table
        above; the user guide's DEC page has the measurements).
    update_interval : int, default=140
        Optimizer steps (mini-batches) between two updates of the target
        distribution (140, as popular reimplementations use; the paper:
        160). On small datasets that is several epochs (the user guide's DEC
        page measures shorter intervals).
    label_change_tol : float, default=0.001
        Stop when the fraction of labels that changed between two target
        updates is below this (the paper's tolerance, 0.1%). Not a centre
        shift, hence not scikit-learn's ``tol``.
    reconstruction_weight : float, default=0.0
        0 is DEC. A positive weight ``w`` minimises
        ``KL(P || Q) + w * reconstruction MSE`` (IDEC: ``L_rec + 0.1 KL``,
        i.e. ``w = 10`` up to the scale of the learning rate).
    perturbation : str, callable, list, None or "auto", default="auto"
        None is DEC. Otherwise DEC with data augmentation (DEC-DA, Guo et
        al., ACML 2018): the autoencoder is pretrained on randomly perturbed
        samples (every stage), and in the clustering phase ``q`` of a
        perturbed sample is pulled toward the target ``p`` computed on the
        clean data, so that the clusters become invariant to the
        perturbation. A name from :data:`skmic.perturbations.PERTURBATIONS`
        (``"affine"``, ``"elastic"`` and ``"shift-rotate"`` need images), a
        callable ``g(x, generator)`` or a list of them, as in
        :class:`IICClustering`. Perturbations see the data in its own units
        (before ``rescale_input``). "auto": ``"shift-rotate"`` (the DEC-DA
        paper's rotations of up to 10 degrees and shifts of up to 10%) for
        images, None for tabular data.
    image_shape : tuple of int, default=None
        ``(C, H, W)`` or ``(H, W)`` when rows are flattened images; used by
        the image perturbations only (the autoencoder stays fully
        connected, as in the paper). Images given as an array of shape
        ``(n, H, W)`` or ``(n, C, H, W)`` (channels first; transpose
        channels-last photos) need no ``image_shape``: it is read from
        ``X`` (``image_shape_``).
    batch_size : int, default=256
        Samples per mini-batch of pretraining and clustering (the paper's
        256).
    max_epochs : int or "auto", default="auto"
        Upper bound on the epochs of the clustering phase (the
        ``label_change_tol`` criterion usually ends it first). "auto": about 20,000 optimizer
        steps, at most 1000 epochs (the bound of popular reimplementations:
        73 epochs on 70,000 MNIST images, 1000 on scikit-learn's digits).
    learning_rate : float, default=0.01
        SGD learning rate of the clustering phase (momentum 0.9). Too large
        a rate makes the embedding explode: when its root mean square grows
        to more than 1000 times its value at the k-means initialisation (or
        the loss becomes NaN), ``fit`` raises
        :class:`~skmic.exceptions.TrainingDivergedError`, a ValueError.
    device : str or torch.device, default="auto"
        "auto" uses CUDA when available, else the CPU.
    random_state : int, RandomState instance or None, default=None
        Seed of the weights, perturbations, shuffling and k-means; the same
        seed gives the same labels on the CPU.
    verbose : int, default=0
        0: silent; 1: a progress bar per phase (pretraining stages, k-means,
        clustering), each run of ``n_init`` numbered; 2: one line per epoch
        as well.
    warm_start : bool, default=False
        When True and the estimator is fitted, ``fit`` continues the
        clustering phase on ``X`` from the fitted encoder and centroids, for
        up to ``max_epochs`` more epochs (no pretraining, no k-means; the
        input scale of the first fit is kept), with a fresh optimizer and a
        target distribution recomputed at its first step. ``X`` must have
        the fitted features, and ``n_clusters``, ``hidden_layer_sizes`` and
        ``n_components`` their fitted values. ``n_iter_`` and ``history_``
        go on counting.
    callbacks : list of callable, default=None
        Called after every epoch of every stage with its record (plus
        ``stage``: "pretrain layer 1", ..., "clustering"); one that
        returns True stops training, and ``fit`` finishes from the model
        trained so far (centroids by k-means if pretraining was stopped).
        A :class:`~skmic.Checkpoint` among them saves the training state to
        a file and resumes a killed run from it.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
        DEC's own final assignment (argmax of ``q`` on the training data).
    cluster_centers_ : ndarray of shape (n_clusters, n_components)
        Centroids in the embedding space.
    n_iter_ : int
        Epochs of the clustering phase (the last one possibly partial, when
        the ``label_change_tol`` criterion stopped it within the epoch).
    converged_ : bool
        Whether the ``label_change_tol`` criterion stopped training.
    history_ : list of dict
        One record per epoch of the clustering phase: ``epoch``, ``loss``
        (the mean mini-batch loss) and, once two target updates were made,
        ``delta_label`` (the fraction of labels changed at the latest).
    restart_losses_ : ndarray of shape (n_phases,)
        ``n_phases`` is ``n_init * clustering_n_init_`` (fewer when a
        callback or an interruption ended the fit early). The selection
        criterion of each clustering phase (run by run, the
        phases of a run in order), lowest kept: minus the entropy of its
        cluster sizes (``selection_ == "balance"``), one minus its mean
        adjusted Rand index with the other phases (``"agreement"``), or the
        within-cluster over total sum of squares of its final embedding
        (``"compactness"``; also for ``"agreement"`` when a callback or an
        interruption left fewer than three phases).
    kept_restarts_ : ndarray of int of shape (1,)
        The phase kept (index into ``restart_losses_``).
    restart_labels_ : ndarray of shape (n_phases, n_samples)
        Each phase's final labels on the training data (row
        ``kept_restarts_[0]`` is ``labels_``).
    pretrain_history_ : list of dict
        Per-epoch reconstruction losses of the kept phase's pretraining
        (empty with a pretrained encoder).
    network_ : torch.nn.Module
        The trained encoder, in eval mode.
    image_shape_ : tuple of int or None
        ``image_shape`` as ``(C, H, W)``.
    hidden_layer_sizes_, selection_, perturbation_, rescale_input_, pretrain_, kmeans_selection_, kmeans_n_init_, clustering_n_init_, pretrain_epochs_, max_epochs_
        The values that ran: the parameters, with "auto" resolved.
    input_scale_ : float
        The constant the data is multiplied by (1.0 without
        ``rescale_input``, or when the training data is all zeros).
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (``n_features_in_``,)
    device_ : torch.device
    world_size_ : int
        Processes that trained the model together: 1 for an ordinary fit,
        ``W`` for a fit in each of the ``W`` processes of a
        ``torch.distributed`` group (``torchrun``; see the user guide's
        "Distributed" page).

    See Also
    --------
    IICClustering : Clustering by mutual information of perturbed pairs.
    KMeansBaseline : The k-means that initialises the centroids.

    Notes
    -----
    Faithful to the paper in what decides the result: the target is computed
    on the full dataset (not per mini-batch), ``labels_`` are DEC's own
    assignments (not a final k-means), and the stop test is on the fraction
    of changed labels. Deviations: pretraining runs for ``pretrain_epochs``
    epochs with Adam by default (the paper: 50,000 SGD iterations per layer
    and 100,000 of fine-tuning), which popular reimplementations found as
    good at a fraction of the cost; greedy pretraining uses the same number
    of epochs for each layer and for fine-tuning. The paper's normalisation
    of the data (``(1/d) ||x||^2`` about 1) is left to the user, or to
    ``rescale_input=True``.

    ``score`` is minus ``KL(P || Q)`` on ``X``, the clustering phase's
    objective with the target computed from ``X`` itself: higher is better,
    0 for assignments already as sharp as their target. Compare it only
    between models with the same ``n_clusters``.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from skmic import DECClustering
    >>> X, y = make_blobs(200, centers=3, random_state=0)
    >>> dec = DECClustering(n_clusters=3, hidden_layer_sizes=(16,), n_components=2,
    ...                     pretrain_epochs=20, random_state=0, device="cpu")
    >>> dec.fit_predict(X).shape
    (200,)
    >>> dec.predict_proba(X).shape, dec.transform(X).shape
    ((200, 3), (200, 2))
    """

    _takes_images = True
    _streams_input = True

    _parameter_constraints = {
        **BaseDeepEstimator._parameter_constraints,
        "n_clusters": [Interval(numbers.Integral, 1, None, closed="left")],
        "rescale_input": ["boolean", StrOptions({"auto"})],
        "hidden_layer_sizes": [tuple, list, StrOptions({"auto"})],
        "n_components": [Interval(numbers.Integral, 1, None, closed="left")],
        "pretrain": [StrOptions({"end_to_end", "greedy", "auto"})],
        "pretrain_epochs": [Interval(numbers.Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "pretrain_optimizer": [StrOptions(set(_OPTIMIZERS))],
        "pretrain_learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "pretrained_encoder": [torch.nn.Module, None],
        "degrees_of_freedom": [Interval(numbers.Real, 0, None, closed="neither")],
        "kmeans_n_init": [Interval(numbers.Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "kmeans_selection": [StrOptions({"auto", "inertia", "balance"})],
        "n_init": [Interval(numbers.Integral, 1, None, closed="left")],
        "clustering_n_init": [Interval(numbers.Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "selection": [StrOptions({"auto", "agreement", "balance", "compactness"})],
        "update_interval": [Interval(numbers.Integral, 1, None, closed="left")],
        "label_change_tol": [Interval(numbers.Real, 0, 1, closed="both")],
        "max_epochs": [Interval(numbers.Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "reconstruction_weight": [Interval(numbers.Real, 0, None, closed="left")],
        "image_shape": [tuple, list, None],
        "perturbation": [StrOptions(set(PERTURBATIONS) | {"auto"}), callable, list, tuple, None],
        **CONTROL_CONSTRAINTS,
    }

    _network_params = ("n_clusters", "hidden_layer_sizes", "n_components")

    def __init__(
        self,
        n_clusters=8,
        *,
        rescale_input="auto",
        hidden_layer_sizes="auto",
        n_components=10,
        pretrain="auto",
        pretrain_epochs="auto",
        pretrain_optimizer="adam",
        pretrain_learning_rate=1e-3,
        dropout=0.2,
        pretrained_encoder=None,
        degrees_of_freedom=1.0,
        kmeans_n_init="auto",
        kmeans_selection="auto",
        n_init=1,
        clustering_n_init="auto",
        selection="auto",
        update_interval=140,
        label_change_tol=0.001,
        reconstruction_weight=0.0,
        perturbation="auto",
        image_shape=None,
        batch_size=256,
        max_epochs="auto",
        learning_rate=0.01,
        device="auto",
        random_state=None,
        verbose=0,
        warm_start=False,
        callbacks=None,
    ):
        self.n_clusters = n_clusters
        self.rescale_input = rescale_input
        self.hidden_layer_sizes = hidden_layer_sizes
        self.n_components = n_components
        self.pretrain = pretrain
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_optimizer = pretrain_optimizer
        self.pretrain_learning_rate = pretrain_learning_rate
        self.dropout = dropout
        self.pretrained_encoder = pretrained_encoder
        self.degrees_of_freedom = degrees_of_freedom
        self.kmeans_n_init = kmeans_n_init
        self.kmeans_selection = kmeans_selection
        self.n_init = n_init
        self.clustering_n_init = clustering_n_init
        self.selection = selection
        self.update_interval = update_interval
        self.label_change_tol = label_change_tol
        self.reconstruction_weight = reconstruction_weight
        self.perturbation = perturbation
        self.image_shape = image_shape
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.learning_rate = learning_rate
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.callbacks = callbacks

    # ------------------------------------------------------------------ fit
    def _auto_defaults(self, X):
        image = self.image_shape_ is not None
        steps_per_epoch = math.ceil(distributed.rows_per_rank(X.shape[0]) / self.batch_size)
        kmeans_selection = "balance" if image else "inertia"
        balance = (kmeans_selection if self.kmeans_selection == "auto" else self.kmeans_selection) == "balance"
        clustering_n_init = CLUSTERING_N_INIT if image else 1
        given = clustering_n_init if self.clustering_n_init == "auto" else self.clustering_n_init
        small_images = image and X.shape[1] <= SMALL_IMAGE_FEATURES
        return dict(
            hidden_layer_sizes=SMALL_IMAGE_WIDTHS if small_images else PAPER_WIDTHS,
            clustering_n_init=clustering_n_init,
            selection="balance" if image else "agreement" if self.n_init * given >= 3 else "compactness",
            perturbation="shift-rotate" if image else None,
            rescale_input=image,
            pretrain="greedy" if image else "end_to_end",
            pretrain_epochs=int(min(200, max(10, math.ceil(PRETRAIN_STEPS / steps_per_epoch)))),
            max_epochs=int(min(1000, math.ceil(CLUSTERING_STEPS / steps_per_epoch))),
            kmeans_selection=kmeans_selection,
            kmeans_n_init=100 if balance else 20,
        )

    def _check_fit_data(self, X):
        if self.n_clusters > X.shape[0]:
            raise ValueError(
                f"n_clusters={self.n_clusters} is larger than n_samples={X.shape[0]}; "
                "ask for fewer clusters or pass more samples."
            )
        check_layer_sizes("hidden_layer_sizes", self.hidden_layer_sizes_)
        if self.selection == "agreement" and self.n_init * self.clustering_n_init_ < 3:
            raise ValueError(
                f"selection='agreement' keeps the clustering phase that agrees most with the others, which "
                f"needs n_init * clustering_n_init >= 3 phases (got n_init={self.n_init}, clustering_n_init="
                f"{self.clustering_n_init_}); use selection='compactness' or more runs or phases."
            )
        if self.pretrained_encoder is not None and self.reconstruction_weight > 0:
            raise ValueError(
                "reconstruction_weight > 0 (IDEC) needs a decoder, which a "
                "pretrained_encoder does not have; use reconstruction_weight=0."
            )

    def _pretrain(self, ae, Xt, augment, generator):
        """Reconstruction pretraining of ``ae`` on ``augment``-ed batches; returns the per-epoch history."""
        history = []
        mse = torch.nn.MSELoss()

        def run(params, loss_of, desc):
            if self.pretrain_epochs_ == 0:
                return
            opt = _OPTIMIZERS[self.pretrain_optimizer](params, lr=self.pretrain_learning_rate)
            result = train(
                lambda idx, phase: loss_of(augment(Xt.rows(idx))),
                n_samples=Xt.shape[0],
                optimizer=opt,
                max_epochs=self.pretrain_epochs_,
                generator=generator,
                modules=[ae],
                **dict(self._train_options(), desc=desc),
            )
            history.extend(dict(r, stage=desc) for r in result.history)

        if self.pretrain_ == "greedy":
            for i in range(ae.n_layers):
                def layer_loss(x, i=i):
                    with torch.no_grad():
                        h = ae.encode(x, depth=i)
                    return mse(ae.layer_reconstruction(h, i), h)

                params = list(ae.enc[i].parameters()) + list(ae.dec[i].parameters())
                run(params, layer_loss, f"pretrain layer {i + 1}")
            ae.dropout.p = 0.0  # fine-tuning reconstructs clean inputs
        run(ae.parameters(), lambda x: mse(ae(x), x), "pretrain end-to-end")
        ae.dropout.p = 0.0
        return history

    def _embed(self, encoder, Xt):
        """The embedding of every row of ``Xt``, in a :class:`~skmic._data.RowStore` (on disk when streamed)."""
        z = None
        with torch.no_grad():
            for idx in batches(len(Xt), _PASS_ROWS, shuffle=False, device=Xt.device):
                zb = encoder(Xt.rows(idx))
                if z is None:
                    z = Xt.store(zb.shape[1])
                z.write(int(idx[0]), zb)
        return z

    def _fit(self, X):
        mean_square = mean_square_of(X)
        self.input_scale_ = 1.0 / math.sqrt(mean_square) if self.rescale_input_ and mean_square > 0 else 1.0
        Xt, generator = self._scaled(X), self._make_generator()
        augment = self._augmentation(Xt, generator)
        control = getattr(self, "_training_control", None)
        runs = []
        for index in range(self.n_init):
            announce_run(self.verbose, self, index, self.n_init)
            encoder, pretrain_history = self._pretrained_encoder(Xt, augment, generator)
            z = self._embed(encoder, Xt)
            if not all(bool(torch.isfinite(zb).all()) for _, zb in z.chunks(_PASS_ROWS)):
                raise TrainingDivergedError(
                    "DEC's pretrained embedding contains NaN or infinity; lower pretrain_learning_rate "
                    "or rescale X (e.g. with StandardScaler, or rescale_input=True)."
                )
            for phase in range(self.clustering_n_init_):
                if self.clustering_n_init_ > 1:
                    announce(self.verbose, self, f"clustering phase {phase + 1} of {self.clustering_n_init_}")
                centers, _, _, _ = kmeans(
                    z, self.n_clusters, n_init=self.kmeans_n_init_, generator=generator, verbose=self.verbose,
                    owner=type(self).__name__, select=self.kmeans_selection_,
                )
                start = encoder if phase == self.clustering_n_init_ - 1 else copy.deepcopy(encoder)
                runs.append(self._cluster(start, centers, Xt, augment, generator, []))
                runs[-1]["pretrain_history"] = pretrain_history
                if control is not None and control.ended:
                    break
            if control is not None and control.ended:  # interrupted or stopped: no further run or phase
                break
        self.restart_labels_ = np.stack([run["labels"].cpu().numpy() for run in runs])
        if self.selection_ == "balance":
            self.restart_losses_ = -balance(self.restart_labels_, self.n_clusters)
        elif self.selection_ == "agreement" and len(runs) >= 3:
            self.restart_losses_ = 1.0 - agreement(self.restart_labels_)
        else:  # one or two runs (also when a callback or an interruption ended the restarts early)
            self.restart_losses_ = np.asarray([run["compactness"] for run in runs])
        self.kept_restarts_ = np.array([int(np.argmin(self.restart_losses_))])
        best = runs[self.kept_restarts_[0]]
        self.pretrain_history_ = best["pretrain_history"]
        self._set_run(best)

    def _fit_warm(self, X):
        Xt, generator = self._scaled(X), self._make_generator()
        centers = torch.as_tensor(self.cluster_centers_, device=self.device_, dtype=torch.float32)
        run = self._cluster(copy.deepcopy(self.network_), centers, Xt, self._augmentation(Xt, generator),
                            generator, self.history_)
        self._set_run(run)

    def _scaled(self, X):
        return self._rows(X, scale=self.input_scale_)

    def _set_run(self, run):
        """The fitted attributes of a run of the clustering phase (:meth:`_cluster`)."""
        self.network_ = run["encoder"]
        self.cluster_centers_ = run["centers"].cpu().numpy()
        self.history_ = run["history"]
        self.n_iter_ = len(self.history_)
        self.converged_ = run["stop_reason"] == "hook"
        self.labels_ = run["labels"].cpu().numpy()
        self._n_features_out = int(self.cluster_centers_.shape[1])
        if run["stop_reason"] is None:  # neither converged nor stopped by the user
            warnings.warn(
                f"DECClustering did not converge: more than label_change_tol={self.label_change_tol} "
                f"of the labels still changed after max_epochs={self.max_epochs_} epochs. "
                "Increase max_epochs or label_change_tol.",
                ConvergenceWarning,
            )

    def _augmentation(self, Xt, generator):
        """``x -> g(x)`` on scaled batches (the identity without a perturbation)."""
        if self.perturbation_ is None:
            return lambda x: x
        g = make_perturbation(self.perturbation_, self.image_shape_)
        scale = self.input_scale_
        check_perturbation(g, Xt.slice(0, 8) / scale, generator)
        return lambda x: g(x / scale, generator) * scale

    def _copy_pretrained_encoder(self, Xt):
        """A float32 copy of ``pretrained_encoder`` on ``device_``, probed on a few rows.

        Raises
        ------
        ValueError
            If the encoder fails on a batch of X's rows, or does not return a
            finite 2-D tensor with one row per sample.
        """
        encoder = copy.deepcopy(self.pretrained_encoder).to(self.device_).float().eval()
        batch = Xt.slice(0, 8)
        expected = f"it must map (n, n_features={Xt.shape[1]}) to (n, n_components)"
        try:
            with torch.no_grad():
                z = encoder(batch)
        except Exception as exc:
            raise ValueError(
                f"pretrained_encoder failed on a batch of X of shape {tuple(batch.shape)}: "
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}; {expected}."
            ) from None
        if not isinstance(z, torch.Tensor) or z.ndim != 2 or z.shape[0] != batch.shape[0]:
            got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(
                f"pretrained_encoder returned {got} for a batch of X of shape {tuple(batch.shape)}; {expected}."
            )
        if not torch.isfinite(z).all():
            raise ValueError("pretrained_encoder returns NaN or infinity on rows of X; check it and the input's scale.")
        return encoder

    def _pretrained_encoder(self, Xt, augment, generator):
        """The encoder to cluster with (pretrained, or the user's copy) and its pretraining history."""
        if self.pretrained_encoder is not None:
            encoder, history = self._copy_pretrained_encoder(Xt), []
        else:
            ae = Autoencoder(Xt.shape[1], self.hidden_layer_sizes_, self.n_components, dropout=self.dropout)
            ae = ae.to(self.device_)
            if self.pretrain_ == "end_to_end":
                ae.dropout.p = 0.0
            history = self._pretrain(ae, Xt, augment, generator)
            encoder = Encoder(ae)
        return encoder.eval(), history

    def _cluster(self, encoder, centers, Xt, augment, generator, history):
        """The clustering phase from ``encoder`` and ``centers``, after ``history``; returns the run.

        In a distributed fit each rank computes the target of its shard's rows
        (the rows it trains on), from the soft cluster frequencies summed over
        the ranks.
        """
        initial_rms = _rms(self._embed(encoder, Xt))
        centers = torch.nn.Parameter(centers.clone())
        optimizer = torch.optim.SGD(list(encoder.parameters()) + [centers], lr=self.learning_rate, momentum=0.9)
        state = {"p": None, "labels": None, "delta": None}

        def full_q():
            """Write ``q`` of every sample into ``p`` (one pass); its labels and soft cluster frequencies.

            Every sample of this rank's shard, in a distributed fit (``p`` and
            the labels indexed by position in the shard); the frequencies and
            the embedding's sum of squares are summed over the ranks.
            """
            n_own = distributed.shard_size(len(Xt))
            p = state["p"] if state["p"] is not None else Xt.store(self.n_clusters, n_rows=n_own)
            labels = torch.empty(n_own, dtype=torch.long, device=Xt.device)
            sums = torch.zeros(self.n_clusters + 1, dtype=torch.float64, device=Xt.device)  # frequencies, square
            with torch.no_grad():
                for position, x in distributed.shard_chunks(Xt, _PASS_ROWS):
                    z = encoder(x)
                    q = student_t_assignment(z, centers.detach(), self.degrees_of_freedom)
                    sums[:-1] += q.double().sum(0)
                    sums[-1] += z.double().pow(2).sum()
                    p.write(position, q)
                    labels[position : position + len(q)] = q.argmax(1)
            sums = distributed.all_reduce_sum(sums)
            frequencies, rms = sums[:-1], math.sqrt(float(sums[-1]) / (len(Xt) * centers.shape[1]))
            if not math.isfinite(rms) or (initial_rms > 0 and rms > _MAX_EMBEDDING_GROWTH * initial_rms):
                raise TrainingDivergedError(
                    f"DEC diverged: the scale (root mean square) of the embedding grew from "
                    f"{initial_rms:.3g} at the k-means initialisation to {rms:.3g} in the clustering "
                    f"phase, more than {_MAX_EMBEDDING_GROWTH:g} times; lower learning_rate "
                    f"(now {self.learning_rate:g})."
                )
            return p, labels, frequencies.to(torch.float32)

        def before_step(iteration):
            """Update the target every ``update_interval`` steps (and first); True once converged."""
            if state["p"] is not None and iteration % self.update_interval:
                return False
            p, labels, frequencies = full_q()
            for s, q in p.chunks(_PASS_ROWS):  # q -> the target, in place
                p.write(s, target_distribution(q, frequencies))
            if state["labels"] is not None:
                state["delta"] = float(distributed.global_mean((labels != state["labels"]).float()))
            state["p"], state["labels"] = p, labels
            return state["delta"] is not None and state["delta"] < self.label_change_tol

        def on_epoch_end(record):
            if state["delta"] is not None:
                record["delta_label"] = state["delta"]

        reconstruct = self.reconstruction_weight > 0
        mse = torch.nn.MSELoss()

        def step(idx, phase):
            x = augment(Xt.rows(idx))
            zb = encoder(x)
            p = state["p"].rows(distributed.shard_position(idx))  # (idx itself in one process)
            loss = dec_kl_loss(p, student_t_assignment(zb, centers, self.degrees_of_freedom))
            if reconstruct:
                loss = loss + self.reconstruction_weight * mse(encoder.autoencoder.decode(zb), x)
            return loss

        result = train(
            step,
            n_samples=Xt.shape[0],
            optimizer=optimizer,
            max_epochs=self.max_epochs_,
            generator=generator,
            modules=[encoder],
            before_step=before_step,
            on_epoch_end=on_epoch_end,
            **dict(self._train_options(), desc="clustering"),
        )
        encoder.eval()
        z = self._embed(encoder, Xt)
        labels = z.map_chunks(lambda zb: student_t_assignment(zb, centers.detach(), self.degrees_of_freedom).argmax(1),
                              _PASS_ROWS)
        return dict(
            encoder=encoder, centers=centers.detach(), stop_reason=result.stop_reason,
            history=continue_history(history, result.history), labels=labels,
            compactness=compactness(z, labels, self.n_clusters),
        )

    # ------------------------------------------------------------- inference
    def _inference(self, X, fn):
        """``fn(embedding, centres)`` over the rows of ``X``."""
        centers = torch.as_tensor(self.cluster_centers_, device=self.device_)
        scale = self.input_scale_
        return self._infer(self.network_, lambda enc, x: fn(enc(x * scale), centers.to(x.dtype)), X)

    def predict_proba(self, X):
        """Soft assignment ``q`` of each sample to the centroids.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        q : ndarray of shape (n_samples, n_clusters)
        """
        X = self._check_fitted_input(X)
        return self._inference(X, lambda z, c: student_t_assignment(z, c, self.degrees_of_freedom))

    def transform(self, X):
        """The embedding of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components)
        """
        X = self._check_fitted_input(X)
        return self._inference(X, lambda z, c: z).astype(X.dtype, copy=False)

    def score(self, X, y=None):
        """Minus ``KL(P || Q)`` on ``X``: the clustering objective, higher is better.

        ``Q`` is :meth:`predict_proba` of ``X`` and ``P`` its sharpened
        target, computed from all of ``X`` as in training. 0 when the
        assignments are already as sharp as their target; compare models
        with the same ``n_clusters`` only.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored

        Returns
        -------
        score : float
        """
        q = torch.as_tensor(self.predict_proba(X))
        return -float(dec_kl_loss(target_distribution(q), q))
