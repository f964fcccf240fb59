"""IICSegmentation: unsupervised image segmentation by Invariant Information Clustering."""

import math
import numbers
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import ClusterMixin
from sklearn.utils import check_array

from . import _distributed as distributed
from ._base import (
    CONTROL_CONSTRAINTS, BaseDeepEstimator, Interval, StrOptions, check_image_shape, check_input_scale,
    check_layer_sizes,
)
from ._restarts import Restarts, fit_restarts
from ._training import adam, batches, train
from .nn.encoders import init_weights
from .nn.heads import IICNet
from .nn.losses import segmentation_joint, segmentation_mi
from .nn.segmentation import FullyConvEncoder, PixelClassifier, pixel_heads
from .nn.stacked import restart_seeds
from .perturbations import (
    INVERTIBLE_PERTURBATIONS, ImagePerturbation, invert_affine, make_invertible_perturbation,
)

__all__ = ["IICSegmentation", "interior_pixels", "merge_overclusters", "merged_joint", "patch_features"]

#: pixels per forward pass at inference time (bounds activation memory)
INFERENCE_PIXELS = 2**18

#: optimizer steps per restart that ``max_epochs="auto"`` aims at
TRAINING_STEPS = 800

#: refinement (``refinement_rounds``): optimizer steps a round aims at, Adam's
#: rate, and how far (pixels, along each axis) a training pixel lies from a
#: border of the labels it learns
REFINEMENT_STEPS = 50
REFINEMENT_LEARNING_RATE = 1e-3
REFINEMENT_MARGIN = 4


def _images_per_pass(X, restarts=1):
    """Images of ``X`` (n, C, H, W) per forward pass at inference: about INFERENCE_PIXELS pixels (x restarts)."""
    return max(1, INFERENCE_PIXELS // (restarts * X.shape[2] * X.shape[3]))


def patch_features(images, size=7):
    """The ``size x size`` patch around every pixel, as one feature row per pixel.

    The features of the k-means baseline of segmentation: k-means on them
    groups pixels whose neighbourhoods look alike pixel for pixel. Borders
    are reflected, so every pixel has a full patch.

    Parameters
    ----------
    images : array-like of shape (n, H, W) or (n, C, H, W)
        Finite numbers; not modified.
    size : int, default=7
        Side of the patch (odd); 7 pixels cover a period of the textures of
        :func:`~skmic.datasets.make_texture_mosaics`.

    Returns
    -------
    features : ndarray of shape (n * H * W, C * size * size)
        Rows in the order of ``images[i, :, y, x]`` flattened (image, row,
        column); ``labels.reshape(n, H, W)`` turns a clustering of the rows
        into label maps.

    Examples
    --------
    >>> import numpy as np
    >>> from skmic.segmentation import patch_features
    >>> patch_features(np.zeros((2, 8, 8)), size=3).shape
    (128, 9)
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"size must be a positive odd int, got {size}.")
    images = check_array(images, allow_nd=True, ensure_2d=False, dtype=[np.float64, np.float32])
    if images.ndim not in (3, 4) or min(images.shape) == 0:
        raise ValueError(f"images must be a non-empty (n, H, W) or (n, C, H, W) array, got shape {images.shape}.")
    x = torch.from_numpy(np.array(images if images.ndim == 4 else images[:, None]))  # a copy, never a view
    pad = size // 2
    if pad:
        x = F.pad(x, (pad, pad, pad, pad), mode="reflect" if min(x.shape[2:]) > pad else "replicate")
    patches = F.unfold(x, size)  # (n, C * size^2, H * W)
    return patches.transpose(1, 2).reshape(-1, patches.shape[1]).numpy()


def merge_overclusters(joint, n_clusters):
    """Merge over-clusters into ``n_clusters`` segments by how often they neighbour each other.

    Over-clusters that split one texture (its phases, orientations or
    shades) lie next to each other inside its regions, while over-clusters
    of different segments meet only along region borders. The affinity of
    over-clusters ``i`` and ``j`` is their co-occurrence summed over the
    displacements of ``joint``, symmetrised; spectral clustering of that
    affinity (scikit-learn's, ``assign_labels="cluster_qr"``, deterministic)
    groups them. Over-clusters that no pixel uses join the first segment.

    Parameters
    ----------
    joint : Tensor of shape (2d + 1, 2d + 1, C, C)
        Co-occurrence of the ``C`` over-clusters at every displacement
        (:func:`skmic.nn.losses.segmentation_joint` of one sub-head's
        assignments with themselves).
    n_clusters : int
        Segments wanted.

    Returns
    -------
    groups : ndarray of int of shape (C,)
        Segment of every over-cluster, or None when fewer than
        ``n_clusters`` over-clusters are used.

    Examples
    --------
    >>> import torch
    >>> from skmic.segmentation import merge_overclusters
    >>> blocks = torch.block_diag(torch.ones(2, 2), torch.ones(3, 3)) + 0.01
    >>> merge_overclusters(blocks[None, None], 2).tolist() in ([0, 0, 1, 1, 1], [1, 1, 0, 0, 0])
    True
    """
    from sklearn.cluster import SpectralClustering

    affinity = joint.sum((0, 1)).double()
    affinity = ((affinity + affinity.T) / 2).cpu().numpy()
    used = affinity.sum(1) > 1e-12 * affinity.sum()
    if used.sum() < n_clusters:
        return None
    groups = np.zeros(len(affinity), dtype=np.int64)
    spectral = SpectralClustering(n_clusters, affinity="precomputed", assign_labels="cluster_qr", random_state=0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Graph is not fully connected")
        groups[used] = spectral.fit_predict(affinity[np.ix_(used, used)])
    return groups


def interior_pixels(labels, n_clusters, margin):
    """Pixels with no other label within ``margin`` pixels along each axis.

    The pixels the refinement of :class:`IICSegmentation` learns from: away
    from the borders of a segmentation, where its labels are most reliable.
    The image's own edges are no border.

    Parameters
    ----------
    labels : LongTensor of shape (n, H, W)
        Labels in ``[0, n_clusters)``.
    n_clusters : int
    margin : int

    Returns
    -------
    BoolTensor of shape (n, H, W)

    Examples
    --------
    >>> import torch
    >>> from skmic.segmentation import interior_pixels
    >>> interior_pixels(torch.tensor([[[0, 0, 0, 1, 1]]]), 2, 1).int().tolist()
    [[[1, 1, 0, 0, 1]]]
    """
    onehot = F.one_hot(labels, n_clusters).permute(0, 3, 1, 2).float()
    # a label present in the (2 margin + 1)^2 window around a pixel; max_pool2d pads with -inf
    # the labels present in the (2 margin + 1)^2 window around each pixel; max_pool2d pads with -inf
    return F.max_pool2d(onehot, 2 * margin + 1, 1, margin).sum(1) == 1


def _group_matrix(groups, n_clusters, like):
    """The one-hot matrix ``G`` (C, n_clusters) of ``groups``, in the dtype and on the device of ``like``."""
    return F.one_hot(torch.as_tensor(groups, device=like.device), n_clusters).to(like.dtype)


def merged_joint(joint, groups, n_clusters):
    """The joint of the merged assignment: ``G^T J_t G`` at every displacement.

    Joints are linear in each assignment, so the joint of the assignments
    summed over each group's over-clusters is the joint of the
    over-clusters summed over each pair of groups.

    Parameters
    ----------
    joint : Tensor of shape (..., C, C)
        Joints of ``C`` over-clusters (e.g. one per displacement).
    groups : array-like of int of shape (C,)
        Segment of every over-cluster (:func:`merge_overclusters`).
    n_clusters : int
        Number of segments.

    Returns
    -------
    Tensor of shape (..., n_clusters, n_clusters)

    Examples
    --------
    >>> import torch
    >>> from skmic.segmentation import merged_joint
    >>> merged_joint(torch.eye(3), [0, 0, 1], 2)
    tensor([[2., 0.],
            [0., 1.]])
    """
    G = _group_matrix(groups, n_clusters, joint)
    return torch.einsum("...ij,ik,jl->...kl", joint, G, G)


class IICSegmentation(ClusterMixin, BaseDeepEstimator):
    """Unsupervised image segmentation by Invariant Information Clustering.

    The segmentation half of Ji, Henriques & Vedaldi (ICCV 2019, section
    3.3). A fully convolutional network gives every pixel ``u`` of an image
    ``x`` a soft assignment ``Phi_u(x)`` over ``n_clusters``. Each image is
    also perturbed by a random affine map and photometric jitter ``g``; the
    perturbed image's output is mapped back onto the original pixel grid
    with the inverse map ``g^-1``. Training maximises, for every
    displacement ``t`` with ``|t|_inf <= displacement``, the mutual
    information of the joint
    ``P_t = sum_i sum_u Phi_u(x_i) [g^-1 Phi(g x_i)]_{u + t}^T``, so a pixel's
    cluster must be predictable from its neighbours' in the perturbed view:
    clusters become regions that look alike under the perturbations
    (textures, materials), balanced and confidently assigned.

    As :class:`IICClustering`, the network has ``n_heads`` main sub-heads
    and as many over-clustering sub-heads, and of ``n_init`` restarts the
    one whose predicting assignment has the lowest loss is kept. By default
    the segments are read from the over-clustering heads: their clusters are
    merged into ``n_clusters`` segments by how often they neighbour each
    other (``selection``). Last, a small full-resolution network learns
    those segments from the pixels away from their borders and relabels
    the images, a few rounds over (``refinement_rounds``); it then predicts.

    Parameters
    ----------
    n_clusters : int, default=8
        Segment classes of the main heads. 8 is scikit-learn's default, as
        in every skmic clusterer (one name, one meaning and one default
        across the package); the paper's benchmarks had 3, 6 and 15
        classes: set it to the number of segment classes you expect.
    overclustering : int or "auto", default="auto"
        Clusters of the auxiliary over-clustering heads; 0 disables them;
        "auto" is ``5 * n_clusters`` (the paper's 15 for 3 classes).
    n_heads : int, default=3
        Sub-heads per head. The paper's segmentation runs used one; a few
        cost little (1x1 convolutions) and the lowest-loss one is usually
        better than a single one.
    n_init : int, default=3
        Independent trainings; the one whose predicting assignment has the
        lowest final loss is kept (``restart_losses_``). They train side by
        side as one stacked network (grouped convolutions,
        :mod:`skmic.nn.stacked`), one optimizer step for all, each from its
        own seed: restart ``k`` is the training a single restart with its
        seed would give (the mechanism of :class:`IICClustering`). Three by
        default: a single training sometimes ends in a partition that
        ignores the textures (pixel accuracy 0.30 on one 4-class mosaic seed
        of six, 0.58 on one 3-class restart of nine); the best of three
        avoided it on every seed on one machine, but not on all 4-class
        seeds on another, where all three restarts of a seed stayed at
        0.64-0.75 (the user guide).
    selection : {"auto", "merged_overclusters", "lowest_loss"}, default="auto"
        How the segments are read from the trained network.
        "lowest_loss": the main sub-head with the lowest loss on the
        training images (the paper's reading). "merged_overclusters": the
        clusters of every over-clustering sub-head are merged into
        ``n_clusters`` segments by their co-occurrence within
        ``displacement`` on the training images
        (:func:`merge_overclusters`), and the sub-head whose merged
        segmentation has the highest mutual information (the same
        co-occurrence, merged) predicts; a pixel's segment probability is
        the sum of its over-cluster probabilities in the segment. Not in
        the paper: on texture mosaics the over-clustering heads separate
        the textures better than the main heads (the user guide has the
        measurements). The restarts are then compared by the loss of their
        merged sub-head (minus its mutual information between the images
        and their perturbed copies), not by their main sub-heads': on
        3-class mosaics that kept a better restart on 2 seeds of 3 and the
        same one on the third (the user guide). "auto":
        "merged_overclusters" when there are more over-clusters than
        clusters, else "lowest_loss".
    displacement : int, default=1
        ``d``: pixels are paired with every pixel of the perturbed output
        within ``d`` along each axis, ``(2d + 1)^2`` displacements, counted
        in pixels of the network's output map (the input downsampled by
        ``2 ** n_pool``; 1 means +-4 input pixels by default). The paper
        used 10 input pixels on COCO-Stuff.
    reduction : {"mean", "sum"}, default="mean"
        How the displacements combine: "mean" averages one mutual
        information per displacement (the reference code's "uncollapsed"
        loss that all the paper's runs used), "sum" takes the mutual
        information of the pooled joint. See
        :func:`skmic.nn.losses.segmentation_mi`.
    sobel : bool, default=True
        Feed the network the Sobel x/y gradients of the grey level as two
        extra channels, as the paper did on COCO-Stuff; gradients expose
        orientation and edges, which is what separates textures.
    head_reset : float or None, default=None
        Re-initialise the main sub-heads once, after this fraction of the
        ``max_epochs`` (fresh N(0, 0.01) weights, their Adam state dropped),
        and train them on with the trunk and over-clustering heads trained so
        far; None never does. It lets heads that settled early on a poor
        partition start again on a better trunk (the user guide has the
        trial). With ``n_init > 1`` the restarts are compared at the reset
        and only the best one trains on.
    refinement_rounds : int, default=4
        Rounds of self-training of the refinement network, a small
        full-resolution net (:class:`~skmic.nn.segmentation.PixelClassifier`:
        five 3x3 conv layers without pooling, 15 input pixels a side, Sobel
        channels as ``sobel`` says) that then predicts (``refiner_``). In
        each round it learns, by cross-entropy, the current segment of every
        training pixel that has no other segment within 4 pixels, for about
        50 optimizer steps (Adam, rate 1e-3), then relabels the training
        images; the first round learns the IIC network's segments. The IIC
        network's output map is a quarter of the image side and each of its
        pixels sees 26 input pixels, so it blurs region borders; the
        refinement, which sees less and works at full resolution, places
        them by the texture on each side. 0: the IIC network predicts. Not
        in the paper (the user guide has the measurements).
    n_repeats : int, default=2
        Perturbed copies of each image per mini-batch.
    lamb : float, default=1.0
        Exponent of the marginals in the loss; 1 is exact mutual information.
    image_shape : tuple of int, default=None
        ``(C, H, W)`` or ``(H, W)`` when ``X`` holds the images as flat
        rows; None for images given as an array of shape ``(n, H, W)`` or
        ``(n, C, H, W)``, whose shape is read from ``X``.
    conv_channels : tuple of int, default=(32, 64, 128, 128)
        Widths of the conv blocks of the fully convolutional encoder. The
        blocks after the pools set how far a pixel's output sees (26
        input pixels a side with the default four blocks and two pools, 18
        with three blocks): a texture is recognised from a few of its
        periods.
    n_pool : int, default=2
        Blocks followed by a 2x2 max-pool: the output map is the input
        downsampled by ``2 ** n_pool`` and upsampled bilinearly for
        prediction. Pooling widens the receptive field and cuts the cost of
        the conv layers and of the joints 4x per pool.
    perturbation : str, callable or list, default="auto"
        The transformation ``g`` of the images, as in
        :class:`IICClustering`: a name, a callable ``g(x, generator)`` or a
        list applied in order. Its geometry must be undone on the output,
        so it is at most one :class:`~skmic.perturbations.ImagePerturbation`
        (whose affine maps are inverted exactly; the names "affine" and
        "shift-rotate" give one), and any other callable must leave every
        pixel in place (brightness, noise, colour); the other names are
        refused. "auto": rotations up to 15 degrees, zoom 0.9-1.1, shifts up
        to 0.1 of the side and horizontal flips (the paper's geometry), with
        brightness and contrast jitter of 0.4 and noise of 0.1 image
        standard deviations, so that texture, not grey level, defines a
        segment.
    batch_size : int, default=8
        Images per mini-batch (each with ``n_repeats`` perturbed copies).
    max_epochs : int or "auto", default="auto"
        Epochs per restart; "auto" trains for about 800 optimizer steps
        (``ceil(800 / steps_per_epoch)`` epochs, at least 5).
    learning_rate : float, default=1e-2
        Adam's learning rate; on the texture mosaics it trained both heads
        markedly faster than 3e-3 (the user guide has the trial).
    device : str or torch.device, default="auto"
        "auto" uses CUDA when available, else the CPU.
    random_state : int, RandomState instance or None, default=None
        Seed of initialisation, perturbations and shuffling; the same seed
        gives the same labels on the CPU.
    verbose : int, default=0
        0: silent; 1: a progress bar per phase ("screening", "training",
        "refinement" (one per round), "inference" over the training
        images), after a line saying which
        restarts train in it, numbered from 1 (``restarts 1-3 of 3 train
        together``, ``kept restart 2 of 3`` and, with a head reset,
        ``restart 2 of 3 trains on``); 2: one line per epoch as well.
    warm_start : bool, default=False
        When True and the estimator is fitted, ``fit`` trains the fitted
        network (the kept restart, all its sub-heads) for ``max_epochs``
        more epochs on ``X`` instead of starting over, with a fresh Adam
        optimizer, then chooses the best sub-head again. ``X`` must have the
        fitted channels (any height and width), and the parameters that
        shape the network (``n_clusters``, ``overclustering``, ``n_heads``,
        ``conv_channels``, ``n_pool``, ``sobel``) their fitted values.
        ``n_iter_`` and ``history_`` go on counting; ``restart_losses_``
        still describes the first fit's restarts.
    callbacks : list of callable, default=None
        Called after every epoch with its record (the ``history_`` entry,
        plus ``stage``); one that returns True stops training, and ``fit``
        finishes with the model trained so far. A
        :class:`~skmic.Checkpoint` among them saves the training state to a
        file and resumes a killed run from it. A KeyboardInterrupt while
        training also keeps the model trained so far, with a warning.

    Attributes
    ----------
    labels_ : ndarray of shape (n_images, H, W)
        Segment of every training pixel.
    best_head_ : int
        Sub-head used for prediction: a main sub-head with ``selection_``
        "lowest_loss", an over-clustering sub-head with
        "merged_overclusters".
    overcluster_groups_ : ndarray of int of shape (n_overclusters,) or None
        Segment of every over-cluster of the predicting sub-head, one entry
        per over-cluster (``overclustering_`` of them); None with
        "lowest_loss".
    head_losses_ : ndarray of shape (1, n_heads)
        Final loss (minus the mutual information over all training images,
        one perturbation draw, eval mode) of each main sub-head of the kept
        restart (a row per kept restart, as in :class:`IICClustering`).
    kept_restarts_ : ndarray of int of shape (1,)
        The restart kept (index into ``restart_losses_``).
    restart_losses_ : ndarray of shape (n_init,)
        What the restarts were compared by, the lowest kept: with
        ``selection_`` "merged_overclusters", minus the mutual information of
        each restart's merged over-clustering sub-head on the training
        images (minus :meth:`score`; inf for a restart none of whose
        sub-heads can be merged); with "lowest_loss", each restart's lowest
        main sub-head loss.
    history_ : list of dict
        Per-epoch training record of the kept restart.
    n_iter_ : int
        Epochs run by the kept restart.
    refiner_ : torch.nn.Module or None
        The refinement network that predicts (eval mode); None with
        ``refinement_rounds=0``, or when a callback or an interruption ended
        training before its last round completed (the IIC network then
        predicts).
    network_ : torch.nn.Module
        The trained network, in eval mode.
    image_shape_ : tuple of int
        ``(C, H, W)`` of the training images; prediction accepts other
        heights and widths (the network is fully convolutional) but not
        other channel counts.
    overclustering_, max_epochs_ : int
    selection_ : str
        The values that ran: the parameters, with "auto" resolved.
    perturbation_ : ImagePerturbation, str, callable or list
        The perturbation that ran ("auto" resolved to its
        :class:`~skmic.perturbations.ImagePerturbation`).
    device_ : torch.device
    world_size_ : int
        Processes that trained the model together: 1 for an ordinary fit,
        ``W`` for a fit in each of the ``W`` processes of a
        ``torch.distributed`` group (``torchrun``; see the user guide's
        "Distributed" page).

    See Also
    --------
    IICClustering : IIC for whole images or table rows.
    skmic.metrics.pixel_accuracy : Hungarian accuracy over pixels.
    skmic.datasets.make_texture_mosaics : A benchmark with per-pixel truth.

    Notes
    -----
    Deviations from the paper, for CPU budgets:

    * The joints are computed on the network's output map (a quarter of the
      input side by default), not on the output upsampled to the input
      size, and ``displacement`` counts pixels of that map; prediction
      upsamples the probabilities bilinearly.
    * The encoder is a small VGG-like net (3x3 convs 32-64-128-128, two pools)
      instead of the paper's VGG/ResNet trunks; Adam's rate is 1e-2.
    * The clean view is the image itself; the perturbed view is, by
      default, a random affine map (rotation, zoom, shift, flip) with
      brightness, contrast and noise jitter, undone on the output by the
      exact inverse map. Output pixels that the perturbed view did not show
      are zero after the inverse map and so contribute to no joint.
    * Main and over-clustering heads are trained jointly on every step (as
      ``IICClustering(head_training="joint")``), and restarts (absent from
      the paper) guard against merged-class optima.
    * By default the segments are read from merged over-clusters
      (``selection``) and then refined by a self-trained full-resolution
      network (``refinement_rounds``); the paper reads them from the main
      head and does not refine them.

    ``score`` is the mutual information of the predicting assignment (the
    refinement network's, else the best main sub-head's or the merged
    over-clustering sub-head's) averaged over displacements; at most
    ``ln n_clusters``.

    Measured (the results page, ``segmentation_refine_cpu``, an AMD EPYC
    2-core machine, 2 threads): on 4-class 64x64 texture mosaics the
    defaults reach pixel accuracies of 0.9409-0.9517 on six seeds (k-means on
    7x7 patches: 0.26-0.30), about 7 minutes a fit; without the refinement
    the same machine gave 0.83-0.86, the errors lying within a few pixels of
    region borders. On an Intel machine the IIC network itself merged
    textures on half the 4-class seeds (0.61-0.67, before the refinement
    existed; not re-run with it): the refinement sharpens borders, but it
    learns whatever segments it is given.

    Examples
    --------
    >>> from skmic import IICSegmentation
    >>> from skmic.datasets import make_texture_mosaics
    >>> images, masks = make_texture_mosaics(8, size=32, n_classes=2, random_state=0)
    >>> seg = IICSegmentation(n_clusters=2, n_init=1, max_epochs=2, conv_channels=(8, 16),
    ...                       refinement_rounds=1, random_state=0, device="cpu").fit(images)
    >>> seg.labels_.shape, seg.predict_proba(images[:2]).shape
    ((8, 32, 32), (2, 2, 32, 32))
    """

    _parameter_constraints = {
        **BaseDeepEstimator._parameter_constraints,
        "n_clusters": [Interval(numbers.Integral, 2, None, closed="left")],
        "overclustering": [Interval(numbers.Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "n_heads": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_init": [Interval(numbers.Integral, 1, None, closed="left")],
        "selection": [StrOptions({"auto", "merged_overclusters", "lowest_loss"})],
        "displacement": [Interval(numbers.Integral, 0, None, closed="left")],
        "reduction": [StrOptions({"mean", "sum"})],
        "head_reset": [Interval(numbers.Real, 0, 1, closed="neither"), None],
        "refinement_rounds": [Interval(numbers.Integral, 0, None, closed="left")],
        "sobel": ["boolean"],
        "n_repeats": [Interval(numbers.Integral, 1, None, closed="left")],
        "lamb": [Interval(numbers.Real, 0, None, closed="neither")],
        "image_shape": [tuple, list, None],
        "conv_channels": [tuple, list],
        "n_pool": [Interval(numbers.Integral, 0, None, closed="left")],
        "perturbation": [StrOptions({"auto", *INVERTIBLE_PERTURBATIONS}), callable, list, tuple],
        "max_epochs": [Interval(numbers.Integral, 1, None, closed="left"), StrOptions({"auto"})],
        **CONTROL_CONSTRAINTS,
    }

    #: one image is enough: its pixels are the samples
    _min_samples = 1

    _takes_images = True

    #: fully convolutional: a fitted model segments images of any size
    _fixed_image_size = False

    _network_params = ("n_clusters", "overclustering", "n_heads", "conv_channels", "n_pool", "sobel")

    def __init__(
        self,
        n_clusters=8,
        *,
        overclustering="auto",
        n_heads=3,
        n_init=3,
        selection="auto",
        displacement=1,
        reduction="mean",
        sobel=True,
        head_reset=None,
        refinement_rounds=4,
        n_repeats=2,
        lamb=1.0,
        image_shape=None,
        conv_channels=(32, 64, 128, 128),
        n_pool=2,
        perturbation="auto",
        batch_size=8,
        max_epochs="auto",
        learning_rate=1e-2,
        device="auto",
        random_state=None,
        verbose=0,
        warm_start=False,
        callbacks=None,
    ):
        self.n_clusters = n_clusters
        self.overclustering = overclustering
        self.n_heads = n_heads
        self.n_init = n_init
        self.selection = selection
        self.displacement = displacement
        self.reduction = reduction
        self.sobel = sobel
        self.head_reset = head_reset
        self.refinement_rounds = refinement_rounds
        self.n_repeats = n_repeats
        self.lamb = lamb
        self.image_shape = image_shape
        self.conv_channels = conv_channels
        self.n_pool = n_pool
        self.perturbation = perturbation
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.learning_rate = learning_rate
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.callbacks = callbacks

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags

    # ----------------------------------------------------------- validation
    def _validate_input(self, X, *, reset):
        """Images as a float array (n, C, H, W).

        The layout rules are the shared ones (:meth:`_flatten_images`); a
        fitted model takes images of any height and width with its channels.
        Flat rows need ``image_shape`` (fitting) or match the fitted
        ``image_shape_`` (prediction).
        """
        X, shape = self._flatten_images(X, reset=reset)
        X = check_array(X, dtype=[np.float64, np.float32], ensure_min_samples=self._min_samples if reset else 1)
        if reset:
            self.image_shape_ = shape = self._fit_image_shape(shape, X.shape[1])
        elif shape is None:
            shape = check_image_shape(self.image_shape_, X.shape[1])
        if shape is None:
            raise ValueError(
                f"X has shape {X.shape}: pass images of shape (n, H, W) or (n, C, H, W), "
                "or flat rows together with image_shape=(C, H, W)."
            )
        check_input_scale(X, self._compute_dtype)
        return X.reshape((len(X),) + shape)

    def _check_fit_data(self, X):
        if self.selection == "merged_overclusters" and self._over_clusters() <= self.n_clusters:
            raise ValueError(
                f"selection='merged_overclusters' merges the over-clusters into the n_clusters={self.n_clusters} "
                f"segments, so it needs more over-clusters than that (overclustering={self.overclustering}); "
                "raise overclustering or use selection='lowest_loss'."
            )
        check_layer_sizes("conv_channels", self.conv_channels)
        if len(self.conv_channels) == 0:
            raise ValueError("conv_channels must hold at least one width.")
        if self.n_pool > len(self.conv_channels):
            raise ValueError(f"n_pool={self.n_pool} exceeds the number of conv blocks ({len(self.conv_channels)}).")
        side = 2**self.n_pool
        if min(X.shape[2:]) < side:
            raise ValueError(
                f"images of {X.shape[2]}x{X.shape[3]} pixels are too small for n_pool={self.n_pool}: "
                f"each side needs at least {side} pixels."
            )

    # ------------------------------------------------------------------ fit
    def _over_clusters(self):
        """``overclustering`` with "auto" resolved (5x the clusters, the paper's 15 for 3 classes)."""
        return 5 * self.n_clusters if self.overclustering == "auto" else self.overclustering

    def _auto_defaults(self, X):
        steps_per_epoch = max(1, math.ceil(X.shape[0] / self.batch_size))
        return dict(
            overclustering=self._over_clusters(),
            selection="merged_overclusters" if self._over_clusters() > self.n_clusters else "lowest_loss",
            max_epochs=max(5, math.ceil(TRAINING_STEPS / steps_per_epoch)),
            perturbation=ImagePerturbation(
                X.shape[1:], rotation=15.0, p_rotation=1.0, scale=(0.9, 1.1), shear=0.0, translate=0.1, crop=None,
                hflip=True, brightness=0.4, contrast=0.4, noise=0.1, padding_mode="reflection",
            ),
        )

    def _perturbation(self):
        """The perturbation g, with its inverse (:class:`skmic.perturbations.InvertiblePerturbation`)."""
        return make_invertible_perturbation(self.perturbation_, self.image_shape_)

    def _build_network(self, restarts=1):
        trunk = FullyConvEncoder(
            self.image_shape_[0], self.conv_channels, self.n_pool, sobel=self.sobel, restarts=restarts
        )
        net = IICNet(trunk, self.n_clusters, self.n_heads, self.overclustering_, restarts=restarts)
        return init_weights(net).to(self.device_)

    def _fit(self, X):
        Xt = self._as_tensor(X).float()
        n_epochs = self.max_epochs_
        first = n_epochs if self.head_reset is None else min(n_epochs, max(1, round(self.head_reset * n_epochs)))
        g = self._perturbation()
        try:  # once on two images before training, so that a failing callable is reported as such
            g.perturb(Xt[:2], torch.Generator(self.device_).manual_seed(0))
        except Exception as exc:
            raise ValueError(f"the perturbation {self.perturbation_!r} failed on two training images: {exc}") from exc
        # every restart at once, as one stacked network (skmic._restarts); with a head
        # reset the restarts are compared at the reset and only the best trains on
        run, self.head_losses_, self.restart_losses_ = fit_restarts(
            _PixelRestarts, self, Xt, g, restart_seeds(torch.initial_seed(), self.n_init), first,
        )
        if first < n_epochs and not self._training_ended():
            run.reset_main_heads()
            run.train(n_epochs - first)
            self.head_losses_ = run.head_losses().cpu().numpy()
        self._keep(run, X)

    def _fit_warm(self, X):
        """The fitted network, trained on alone for ``max_epochs_`` more epochs (``warm_start``)."""
        run = _PixelRestarts.resume(self, self._as_tensor(X).float(), self._perturbation())
        run.train(self.max_epochs_)
        self.head_losses_ = run.head_losses().cpu().numpy()
        self._keep(run, X)

    def _keep(self, run, X):
        """The fitted attributes of the kept (lone) restart ``run``."""
        self.network_ = run.net
        self.kept_restarts_ = np.asarray(run.indices)
        self.best_head_ = int(np.argmin(self.head_losses_[0]))
        self.overcluster_groups_ = None
        if self.selection_ == "merged_overclusters":
            merge = self._best_merges(run)[0]
            if merge is None:
                warnings.warn(
                    f"every over-clustering sub-head uses fewer than n_clusters={self.n_clusters} over-clusters, "
                    "so none can be merged into the segments; the main sub-head with the lowest loss predicts "
                    "instead (selection_='lowest_loss').",
                    UserWarning,
                )
                self.selection_ = "lowest_loss"
            else:
                self.best_head_, self.overcluster_groups_ = merge
        self.history_ = run.history
        self.n_iter_ = len(run.history)
        self.refiner_ = None
        self.labels_ = self._proba(X).argmax(1)
        if self.refinement_rounds and not self._training_ended():
            self.refiner_ = self._refine(run.Xt, self.labels_)
            if self.refiner_ is not None:
                self.labels_ = self._proba(X).argmax(1)

    def _training_ended(self):
        """Whether a callback or an interruption has ended this fit's training."""
        control = getattr(self, "_training_control", None)
        return control is not None and control.ended

    def _refine(self, Xt, labels):
        """The full-resolution :class:`~skmic.nn.segmentation.PixelClassifier` self-trained from ``labels``.

        Each of the ``refinement_rounds`` rounds trains it (cross-entropy,
        Adam) for about REFINEMENT_STEPS steps on the current labels of the
        pixels that have no other label within REFINEMENT_MARGIN pixels, then
        relabels every image with it. Each round is a stage of the one
        training loop, so callbacks, interruptions and checkpoints see it;
        None when they end training before the last round has completed
        (the IIC network's segments then stand). ``Xt`` holds the training
        images (n, C, H, W) on the device, as the restarts trained on them.
        """
        net = PixelClassifier(Xt.shape[1], self.n_clusters, sobel=self.sobel).to(self.device_)
        optimizer = adam(net.parameters(), REFINEMENT_LEARNING_RATE)
        generator = torch.Generator(self.device_).manual_seed(int(torch.randint(2**62, ())))
        steps_per_epoch = max(1, math.ceil(Xt.shape[0] / self.batch_size))
        epochs = math.ceil(REFINEMENT_STEPS / steps_per_epoch)
        y = torch.as_tensor(labels, device=self.device_)
        for round_ in range(self.refinement_rounds):
            if round_:  # relabelled on the device by the trained float32 net itself (the same within a fit;
                # the float64 inference copy that makes predictions batch-independent runs several times slower)
                with torch.no_grad():
                    y = torch.cat([net(Xt[idx]).argmax(1) for idx in batches(
                        Xt.shape[0], _images_per_pass(Xt), shuffle=False, device=Xt.device)])
            weight = interior_pixels(y, self.n_clusters, REFINEMENT_MARGIN).float()

            def step(idx, phase, y=y, weight=weight):
                w = weight[idx]
                loss = F.cross_entropy(net(Xt[idx]), y[idx], reduction="none")
                return (loss * w).sum() / w.sum().clamp_min(1.0)

            result = train(step, n_samples=Xt.shape[0], optimizer=optimizer, max_epochs=epochs, generator=generator,
                           modules=[net], **dict(self._train_options(), desc="refinement"))
            if result.interrupted or result.n_epochs < epochs:
                return None
        return net

    def _best_merges(self, run):
        """The merged over-clustering sub-head of every restart of ``run``: ``(head, groups)``, or None.

        Every over-clustering sub-head's clusters are merged into
        ``n_clusters`` segments by their co-occurrence within
        ``displacement`` on the training images (:func:`merge_overclusters`);
        a restart's merged sub-head is the one whose merged co-occurrence
        has the highest mutual information. None for a restart none of whose
        sub-heads uses ``n_clusters`` over-clusters.
        """
        joints, k = run.cooccurrence_joints(), self.n_heads
        merges = []
        for r in range(run.n_restarts):
            best = None
            for head in range(k):
                groups = merge_overclusters(joints[r * k + head], self.n_clusters)
                if groups is None:
                    continue
                mi = -run.merged_loss(joints[r * k + head], groups)
                if best is None or mi > best[0]:
                    best = (mi, head, groups)
            merges.append(None if best is None else best[1:])
        return merges

    # ------------------------------------------------------------- inference
    def _infer_images(self, fn, X, network=None):
        """``fn(network, images)`` over ``X`` in batches of about INFERENCE_PIXELS pixels (default: ``network_``)."""
        module, dtype = self._for_inference(self.network_ if network is None else network)
        batch = _images_per_pass(X)
        return self._batched(lambda x: fn(module, x), X, batch_size=batch, dtype=dtype)

    def _proba(self, X):
        if getattr(self, "refiner_", None) is not None:  # absent from models pickled before it existed
            return self._infer_images(lambda net, x: net(x).softmax(1).double(), X, self.refiner_)
        head, groups = self.best_head_, self.overcluster_groups_

        def proba(net, x):
            if groups is None:
                z = pixel_heads(net.main, net(x))[:, head]
            else:  # the over-clusters' probabilities summed over each segment's over-clusters
                z = pixel_heads(net.over, net(x))[:, head]
                z = torch.einsum("nchw,ck->nkhw", z, _group_matrix(groups, self.n_clusters, z))
            return F.interpolate(z, size=x.shape[2:], mode="bilinear", align_corners=False).double()

        return self._infer_images(proba, X)

    def predict_proba(self, X):
        """Soft assignment of every pixel: the refinement network's (``refiner_``), else the predicting sub-head's.

        Parameters
        ----------
        X : array-like of shape (n, H, W), (n, C, H, W) or (n, C*H*W)
            Images with the training images' channels (any height and width
            for n-D input; flat rows need the fitted ``image_shape``).

        Returns
        -------
        proba : ndarray of shape (n, n_clusters, H, W)
            Sums to 1 over the clusters at every pixel.
        """
        return self._proba(self._check_fitted_input(X))

    def predict(self, X):
        """Segment of every pixel: the argmax of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like of shape (n, H, W), (n, C, H, W) or (n, C*H*W)

        Returns
        -------
        labels : ndarray of shape (n, H, W)
        """
        return self.predict_proba(X).argmax(1)

    def transform(self, X):
        """Per-pixel features: the encoder's output map upsampled to the image size.

        Parameters
        ----------
        X : array-like of shape (n, H, W), (n, C, H, W) or (n, C*H*W)

        Returns
        -------
        features : ndarray of shape (n, conv_channels[-1], H, W)
            In the dtype of ``X`` (float32 input gives float32 features).
        """
        X = self._check_fitted_input(X)

        def features(net, x):
            return F.interpolate(net(x), size=x.shape[2:], mode="bilinear", align_corners=False)

        return self._infer_images(features, X).astype(X.dtype, copy=False)

    def score(self, X, y=None):
        """Mutual information (nats) of the predicting assignment between ``X`` and ``g(X)``.

        Averaged over displacements (or of the pooled joint, following
        ``reduction``), in eval mode, with one draw of the perturbation from
        a fixed seed (so repeated calls agree). At most ``ln n_clusters``.
        The refinement network's full-resolution probabilities are first
        averaged over squares of ``2 ** n_pool`` pixels, so that
        ``displacement`` counts the same pixels as for the heads.

        Parameters
        ----------
        X : array-like of shape (n, H, W), (n, C, H, W) or (n, C*H*W)
        y : Ignored

        Returns
        -------
        score : float
        """
        X = self._check_fitted_input(X)
        run = _PixelRestarts(self, self.network_, None, self._as_tensor(X).float(), self._perturbation(), [None])
        if getattr(self, "refiner_", None) is not None:
            return -run.refined_loss(self.refiner_)
        if self.overcluster_groups_ is None:
            return -float(run.head_losses()[0, self.best_head_])
        return -run.merged_loss(run.head_joints(self.network_.over)[self.best_head_], self.overcluster_groups_)


class _PixelRestarts(Restarts):
    """IICSegmentation's restarts in training (:class:`skmic._restarts.Restarts`).

    ``Xt`` holds images (n, C, H, W); ``g`` is an
    :class:`~skmic.perturbations.InvertiblePerturbation`.
    """

    @classmethod
    def network(cls, est, Xt, restarts):
        return est._build_network(restarts)

    def _pairs(self, heads, x, x_pert, theta):
        """Per head: outputs ``(n, R * K, C, h, w)`` of the images and the sum of their perturbed copies' mapped back.

        ``x`` ``(R, n, C, H, W)`` holds each restart's images, ``x_pert``
        ``(R, r * n, C, H, W)`` their ``r`` perturbed copies (copy-major)
        and ``theta`` ``(R * r * n, 2, 3)`` the copies' affine maps. The
        joints are linear in the perturbed output, so pairing an image with
        the sum of its ``r`` mapped-back copies gives the sum of the ``r``
        joints (``r`` times fewer joint operations).
        """
        R, n = x.shape[:2]
        r = x_pert.shape[1] // n
        both = torch.cat([x, x_pert], 1)  # (R, n (1 + r), C, H, W)
        h = self.net(both.transpose(0, 1).flatten(1, 2))  # restarts stacked along the channels
        for head in heads:
            z = pixel_heads(head, h)  # (n (1 + r), R * K, C, h, w)
            k = z.shape[1] // R
            pert = z[n:].unflatten(1, (R, k)).transpose(0, 1)  # (R, r n, K, C, h, w)
            back = invert_affine(pert.flatten(0, 1).flatten(1, 2), theta).view_as(pert)
            back = back.view(R, r, n, *back.shape[2:]).sum(1)  # (R, n, K, C, h, w)
            yield z[:n], back.transpose(0, 1).flatten(1, 2)

    def _loss(self, heads, x, x_pert, theta):
        """Minus the mutual information ``(R * K,)`` of every sub-head of ``heads``, summed over heads."""
        loss = 0.0
        for z, z_back in self._pairs(heads, x, x_pert, theta):
            joint = distributed.all_reduce_sum(segmentation_joint(z, z_back, self.est.displacement), differentiable=True)
            loss = loss - segmentation_mi(joint, self.est.lamb, self.est.reduction)
        return loss

    def step(self, idx, phase):
        """Per-restart losses ``(R,)`` of the mini-batches of images ``idx`` ``(R, b)``."""
        net, r = self.net, self.est.n_repeats
        x = self.Xt[idx]  # (R, b, C, H, W)
        views = [self.g.perturb(xk.repeat(r, 1, 1, 1), gk) for xk, gk in zip(x, self.generators)]
        x_pert, theta = torch.stack([v for v, _ in views]), torch.cat([t for _, t in views])
        heads = {"main": (net.main,), "joint": (net.main, net.over)}[phase]
        return self._loss(heads, x, x_pert, theta).view(self.n_restarts, -1).mean(1)

    def head_losses(self):
        """Loss ``(R, n_heads)`` of every main sub-head over all the images (:meth:`head_joints`)."""
        return -segmentation_mi(self.head_joints(self.net.main), self.est.lamb, self.est.reduction).view(
            self.n_restarts, -1
        )

    def restart_losses(self, head_losses):
        """Minus the mutual information of what would predict, per restart ``(R,)``.

        With ``selection_`` "merged_overclusters" the segments come from a
        merged over-clustering sub-head (:meth:`IICSegmentation._best_merges`),
        so the restarts are compared by that merged assignment's loss on the
        training images (minus :meth:`IICSegmentation.score`; inf for a
        restart that cannot be merged), not by their main sub-heads'.
        """
        if self.est.selection_ != "merged_overclusters":
            return super().restart_losses(head_losses)
        joints, k = self.head_joints(self.net.over), self.est.n_heads
        losses = np.full(self.n_restarts, np.inf)
        for r, merge in enumerate(self.est._best_merges(self)):
            if merge is not None:
                head, groups = merge
                losses[r] = self.merged_loss(joints[r * k + head], groups)
        return losses

    def merged_loss(self, joint, groups):
        """Minus the mutual information of the over-clusters of ``joint`` merged by ``groups`` (a float)."""
        merged = merged_joint(joint, groups, self.est.n_clusters)
        return -float(segmentation_mi(merged, self.est.lamb, self.est.reduction))

    def criterion(self, n_kept):
        if self.est.selection_ != "merged_overclusters":
            return super().criterion(n_kept)
        return "highest mutual information of the merged over-clusters"

    def cooccurrence_joints(self):
        """Joints ``(R * n_heads, 2d + 1, 2d + 1, C, C)`` of every over-clustering sub-head with itself.

        Each image's over-cluster assignments paired with themselves at
        every displacement, summed over the training images (and over the
        ranks of a distributed fit); float64, from the inference copy of the
        network.
        """
        module, dtype = self.est._for_inference(self.net)
        Xt, R = self.Xt, self.n_restarts
        joint = 0.0
        with torch.no_grad():
            for idx in batches(Xt.shape[0], _images_per_pass(Xt, R), shuffle=False, device=Xt.device):
                z = pixel_heads(module.over, module(Xt[idx].to(dtype).repeat(1, R, 1, 1))).double()
                joint = joint + segmentation_joint(z, z, self.est.displacement)
        return distributed.all_reduce_sum(joint)  # scale-free: the same merge from a shard or from all rows

    def _fixed_views(self):
        """``(x, x_pert, theta)`` over all the images in batches: one perturbation draw from a fixed seed."""
        Xt = self.Xt
        generator = torch.Generator(Xt.device).manual_seed(0)
        for idx in batches(Xt.shape[0], _images_per_pass(Xt, self.n_restarts), shuffle=False, device=Xt.device):
            x = Xt[idx]
            yield (x, *self.g.perturb(x, generator))

    def head_joints(self, head):
        """Joints ``(R * n_heads, 2d + 1, 2d + 1, C, C)`` of every sub-head of ``head`` over all the images.

        In eval mode, with one draw of the perturbation from a fixed seed
        (:meth:`_fixed_views`), the same for every restart; accumulated in
        float64.
        """
        R = self.n_restarts
        expand = lambda t: t.expand(R, *t.shape)  # noqa: E731
        joint = 0.0
        with torch.no_grad():
            for x, x_pert, theta in self._fixed_views():
                for z, z_back in self._pairs((head,), expand(x), expand(x_pert), theta.repeat(R, 1, 1)):
                    joint = joint + segmentation_joint(z.double(), z_back.double(), self.est.displacement)
        return joint

    def refined_loss(self, refiner):
        """Minus the mutual information of the refinement network's assignment (a float).

        As :meth:`head_joints`, on the same views: the full-resolution
        probabilities of the images and of their perturbed copies (mapped
        back) are averaged over ``2 ** n_pool`` squares, so that the
        displacements count pixels of the trunk's output map as for the
        heads.
        """
        stride = self.net.trunk.stride
        joint = 0.0
        with torch.no_grad():
            for x, x_pert, theta in self._fixed_views():
                z, z_pert = refiner(x).softmax(1), refiner(x_pert).softmax(1)
                z_back = F.avg_pool2d(invert_affine(z_pert, theta), stride).double()
                z = F.avg_pool2d(z, stride).double()
                joint = joint + segmentation_joint(z, z_back, self.est.displacement)
        return -float(segmentation_mi(joint, self.est.lamb, self.est.reduction))
