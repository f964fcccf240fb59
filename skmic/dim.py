"""DeepInfoMaxEmbedder: Deep InfoMax as a scikit-learn transformer."""

import copy
import numbers

import numpy as np
import torch
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin

from ._base import (
    CONTROL_CONSTRAINTS, BaseDeepEstimator, Interval, StrOptions, auto_conv_channels, check_layer_sizes, is_small_image,
)
from ._training import batches, continue_history, mean_over_runs, train
from .nn.critics import GlobalCritic, LocalCritic, PriorDiscriminator, grad_reverse
from .nn.encoders import LocalGlobalEncoder, init_weights
from .nn.losses import MI_ESTIMATORS, prior_matching_loss
from .nn.stacked import restart_seeds
from .perturbations import PERTURBATIONS, check_perturbation, make_perturbation

__all__ = ["DeepInfoMaxEmbedder"]

#: n_estimators="auto" on small images (up to 12 x 12 pixels)
ENSEMBLE_SIZE = 4


class _DIMNetwork(torch.nn.Module):
    def __init__(self, encoder, critic_dim):
        super().__init__()
        self.encoder = encoder
        d = encoder.head.out_features
        self.local_critic = LocalCritic(encoder.channels, d, critic_dim)
        self.global_critic = GlobalCritic(encoder.n_locations * encoder.channels, d, critic_dim)
        self.discriminator = PriorDiscriminator(d)


class _DIMEnsemble(torch.nn.Module):
    """``n_estimators`` independent DIM networks (``members``); the code of a sample is theirs side by side."""

    def __init__(self, members):
        super().__init__()
        self.members = torch.nn.ModuleList(members)


def _side_by_side_codes(encoders, x):
    """The codes of the batch ``x`` by every encoder, concatenated: (n, n_estimators * n_components)."""
    return torch.cat([encoder(x)[1] for encoder in encoders], 1)


def code_statistics(Y):
    """Mean and standard deviation of every column of the codes ``Y``; a constant column's scale is 1.

    >>> import numpy as np
    >>> from skmic.dim import code_statistics
    >>> code_statistics(np.array([[0.0, 5.0], [2.0, 5.0]]))
    (array([1., 5.]), array([1., 1.]))
    """
    Y = np.asarray(Y, dtype=np.float64)
    mean, scale = Y.mean(0), Y.std(0)
    return mean, np.where(scale > 10 * np.finfo(np.float64).eps * np.maximum(np.abs(mean), 1.0), scale, 1.0)


def principal_axes(Y, n_components):
    """The ``n_components`` principal axes of the rows of ``Y`` (centred), as rows: (n_components, n_features).

    The first has the largest variance; each axis's sign is fixed so that
    its largest entry in absolute value is positive (the same axes for the
    same ``Y``, whatever the SVD routine returns). With fewer rows than
    ``n_components`` the axes beyond the data's rank are completed to an
    orthonormal set (variance 0 along them), so that there are always
    ``n_components`` of them.

    >>> import numpy as np
    >>> from skmic.dim import principal_axes
    >>> principal_axes(np.array([[1.0, 2.0], [-1.0, -2.0], [3.0, 6.0]]), 1).round(3)
    array([[0.447, 0.894]])
    """
    Y = np.asarray(Y, dtype=np.float64)
    _, _, vt = np.linalg.svd(Y - Y.mean(0), full_matrices=len(Y) < n_components)
    axes = vt[:n_components]
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(1)])
    return axes * signs[:, None]


class DeepInfoMaxEmbedder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseDeepEstimator):
    """Deep InfoMax (Hjelm et al., ICLR 2019): representations by maximising MI.

    An encoder computes a local feature map ``M`` (conv features for images,
    per-feature tokens for tables) and from it a global code ``Y``
    (``n_components``). Training maximises estimates of the mutual
    information between ``Y`` and ``M`` as a whole (global, weight
    ``global_weight``) and between ``Y`` and every location of ``M`` (local, weight
    ``local_weight``), with the other samples of the mini-batch as negatives, and
    makes ``sigmoid(Y)`` look like samples of a uniform prior (weight
    ``prior_weight``) through an adversarial discriminator. ``transform`` returns
    ``Y``, ready for k-means or any other estimator. With ``n_estimators``
    above 1, that many such networks train side by side from their own
    seeds, and ``transform`` returns their codes side by side, projected on
    their ``n_components`` principal axes.

    Defaults chosen from the data (parameters left at "auto"; the fitted
    values are ``n_estimators_``, ``perturbation_``, ``global_weight_``,
    ``local_weight_``, ``prior_weight_``, ``batch_size_``, ``standardize_``
    and ``conv_channels_``):

    =============  ==========================  =====================
    parameter      images                      tabular data
    =============  ==========================  =====================
    n_estimators   4 to 12 x 12 pixels,        1
                   else 1
    perturbation   ``["elastic", "affine"]``   None
    global_weight  1                           0
    local_weight   0                           1
    prior_weight   0                           0.1
    batch_size     128                         64
    standardize    True                        False
    conv_channels  (32, 64, 128) to 12 x 12     (no conv trunk)
                   pixels, else (16, 32, 64)
    =============  ==========================  =====================

    For images that is the multi-view, global-only objective; k-means
    clusters its standardised codes better than the pixels. On
    scikit-learn's digits, with four networks, every seed of ten at two
    threads and of five at one is ahead on ACC and NMI (two threads, seeds
    0-4: ACC 0.9149 [0.8809, 0.9288] against 0.7924 for k-means on the
    pixels); one network alone fell below k-means on ACC on some seeds,
    which ones moving with the float rounding. On the MNIST test set (the
    16-32-64 trunk that ``conv_channels="auto"`` gives larger images, one
    network) every seed of three is ahead of k-means on the pixels on ACC
    and NMI (median ACC 0.6968 against 0.5414); with ``max_epochs=8`` and
    raw codes the median was
    0.801. The user guide has the study. The paper's DIM(L) (``global_weight=0,
    local_weight=1, prior_weight=0.1, perturbation=None``) gave codes that
    k-means clusters worse than the pixels (0.40 on digits). Tabular data
    keeps DIM(L) and raw codes, for want of a measured better choice.

    Parameters
    ----------
    n_components : int, default=64
        Size of the code ``Y`` of each network, and of the output of
        ``transform``.
    n_estimators : int or "auto", default="auto"
        Networks (encoder, critics, discriminator) trained independently,
        side by side in one training loop, each from its own seed (its
        initialisation, mini-batches and perturbations; the first is the fit
        with a single network). ``transform`` puts their codes (each
        standardised when ``standardize``) side by side and projects them on
        their ``n_components`` principal axes over the training data
        (``components_``). One network's code may group the data well or
        not, depending on its seed; the principal axes of several keep
        what they agree on. Costs up to ``n_estimators`` times one
        network's training (on scikit-learn's digits four cost about 2.5
        times one: they share the training loop). "auto": see the table
        above.
    mi_estimator : {"jsd", "infonce", "dv"}, default="jsd"
        Mutual-information estimator: Jensen-Shannon, InfoNCE or
        Donsker-Varadhan.
    global_weight : float or "auto", default="auto"
        Weight of the global objective (see the table above).
    local_weight : float or "auto", default="auto"
        Weight of the local objective.
    prior_weight : float or "auto", default="auto"
        Weight of the prior-matching objective (DIM(L): 0, 1, 0.1).
    image_shape : tuple of int, default=None
        ``(C, H, W)`` or ``(H, W)`` when rows are flattened images (conv
        encoder, conv feature map as local features); None for tabular data
        (MLP on per-feature tokens, one location per feature) for 2-D
        ``X``. Images given as an array of shape
        ``(n, H, W)`` or ``(n, C, H, W)`` (channels first; transpose
        channels-last photos) need no ``image_shape``: it is read from
        ``X`` (``image_shape_``).
    conv_channels : tuple of int or "auto", default="auto"
        Widths of the conv blocks of the image encoder (the last block's
        map is ``M``); the small VGG-like trunk of :class:`IICClustering`.
        "auto": (32, 64, 128) on images up to 12 x 12 pixels, (16, 32, 64)
        on larger ones, as in :class:`IICClustering`.
    hidden_layer_sizes : tuple of int, default=(512,)
        Layers between the local map and the code.
    token_channels : int, default=16
        Width of each feature's token (tabular data).
    perturbation : str, callable, list, None or "auto", default="auto"
        None is the paper's DIM: the code ``Y`` of a sample is contrasted
        with the features ``M`` of the same sample. Otherwise the positives
        pair ``Y`` of a sample with ``M`` of a randomly perturbed copy of
        it (a name from :data:`skmic.perturbations.PERTURBATIONS`, a
        callable ``g(x, generator)`` or a list, as in
        :class:`IICClustering`), the multi-view form of Bachman et al.
        (AMDIM, 2019): the code must then predict features that survive the
        perturbation, which groups samples by what the perturbation keeps.
        Costs a second encoder pass per step. "auto": see the table above.
    standardize : bool or "auto", default="auto"
        When True, ``transform`` returns every component of the code minus
        its mean and divided by its standard deviation over the training
        data (``code_mean_``, ``code_scale_``, computed at the end of
        ``fit``), so that each weighs the same in the distances k-means
        uses. The network's raw code spreads some components two or three
        times wider than others, and k-means then cut along those: on
        scikit-learn's digits one seed in five fell below k-means on the
        pixels, and standardised codes lifted the worst seed above it (the
        user guide has the study). False returns the raw code.
        "auto": see the table above.
    critic_dim : int, default=128
        Size of the critics' shared space.
    max_locations : int, default=64
        Locations of ``M`` used per mini-batch by the local objective: when
        the map has more, a random subset is drawn each step, which bounds
        the (n, n, locations) score tensor.
    batch_size : int or "auto", default="auto"
        Also the number of negatives (minus one) per positive (128 for
        images, 64 for tabular data).
    max_epochs : int, default=30
        Epochs of training; 30 converges the default objective on datasets
        of a few thousand images within a CPU budget.
    learning_rate : float, default=1e-3
        Adam's learning rate (the paper: 1e-4; larger converges within a
        CPU budget).
    device : str or torch.device, default="auto"
        "auto" uses CUDA when available, else the CPU.
    random_state : int, RandomState instance or None, default=None
        Seed of initialisation, perturbations, negatives and shuffling; the
        same seed gives the same codes on the CPU.
    verbose : int, default=0
        0: silent; 1: a progress bar over the epochs ("training"); 2: one
        line per epoch as well.
    warm_start : bool, default=False
        When True and the estimator is fitted, ``fit`` trains the fitted
        networks (encoders, critics and discriminators) for ``max_epochs``
        more epochs on ``X`` instead of starting over, with a fresh Adam
        optimizer. ``X`` must have the fitted features, and the parameters
        that shape the networks (``n_components``, ``n_estimators``, ``conv_channels``,
        ``hidden_layer_sizes``, ``token_channels``, ``critic_dim``) their
        fitted values. ``n_iter_`` and ``history_`` go on counting.
    callbacks : list of callable, default=None
        Called after every epoch with its record (the ``history_`` entry,
        plus ``stage``); one that returns True stops training. A
        :class:`~skmic.Checkpoint` among them saves the training state to a
        file and resumes a killed run from it.

    Attributes
    ----------
    network_ : torch.nn.Module
        The networks, in eval mode: ``network_.members[k]`` holds the
        ``encoder``, critics and ``discriminator`` of network ``k``.
    history_ : list of dict
        Per-epoch training loss; with several networks (``n_estimators_ >
        1``) ``loss`` is their mean and each network's is under
        ``member_loss``.
    n_iter_ : int
        Epochs run.
    image_shape_ : tuple of int or None
    n_estimators_, perturbation_, global_weight_, local_weight_, prior_weight_, batch_size_, standardize_, conv_channels_
        The values that ran: the parameters, with "auto" resolved.
    code_mean_, code_scale_ : ndarray of shape (n_codes,) or None
        Mean and standard deviation (1 for a constant component) of the
        raw code over the training data, which ``transform`` standardises
        with; None when ``standardize_`` is False. ``n_codes`` is
        ``n_estimators_ * n_components``: the networks' codes side by side.
    components_ : ndarray of shape (n_components, n_codes) or None
        The principal axes (rows, largest variance first) of the networks'
        codes side by side over the training data, which ``transform``
        projects on; None for a single network.
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
    KMeansBaseline : Cluster the codes.
    IICClustering : Clustering heads trained by mutual information directly.

    Notes
    -----
    The adversarial prior term uses a gradient-reversal layer: in one
    optimizer step the discriminator minimises its classification loss and
    the encoder maximises it (the popular PyTorch port minimised it for
    both, which is not adversarial). The DV estimator's negatives are
    exactly the off-diagonal pairs. The local InfoNCE contrasts, at each
    location, the code's own sample with the other samples of the batch at
    that location. On tabular data the "local" features are per-feature
    tokens, an assumption of ours: DIM defines no local structure there;
    set ``local_weight=0, global_weight=1`` for global-only training.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from skmic import DeepInfoMaxEmbedder
    >>> X, _ = load_iris(return_X_y=True)
    >>> dim = DeepInfoMaxEmbedder(n_components=4, max_epochs=2, random_state=0, device="cpu")
    >>> dim.fit_transform(X).shape
    (150, 4)
    """

    _takes_images = True
    _streams_input = True

    _parameter_constraints = {
        **BaseDeepEstimator._parameter_constraints,
        "n_components": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_estimators": [Interval(numbers.Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "mi_estimator": [StrOptions(set(MI_ESTIMATORS))],
        "global_weight": [Interval(numbers.Real, 0, None, closed="left"), StrOptions({"auto"})],
        "local_weight": [Interval(numbers.Real, 0, None, closed="left"), StrOptions({"auto"})],
        "prior_weight": [Interval(numbers.Real, 0, None, closed="left"), StrOptions({"auto"})],
        "batch_size": [Interval(numbers.Integral, 2, None, closed="left"), StrOptions({"auto"})],
        "image_shape": [tuple, list, None],
        "conv_channels": [tuple, list, StrOptions({"auto"})],
        "hidden_layer_sizes": [tuple, list],
        "token_channels": [Interval(numbers.Integral, 1, None, closed="left")],
        "critic_dim": [Interval(numbers.Integral, 1, None, closed="left")],
        "max_locations": [Interval(numbers.Integral, 1, None, closed="left")],
        "perturbation": [StrOptions(set(PERTURBATIONS) | {"auto"}), callable, list, tuple, None],
        "standardize": ["boolean", StrOptions({"auto"})],
        **CONTROL_CONSTRAINTS,
    }

    _network_params = (
        "n_components", "n_estimators", "conv_channels", "hidden_layer_sizes", "token_channels", "critic_dim",
    )

    def __init__(
        self,
        n_components=64,
        *,
        n_estimators="auto",
        mi_estimator="jsd",
        global_weight="auto",
        local_weight="auto",
        prior_weight="auto",
        image_shape=None,
        conv_channels="auto",
        hidden_layer_sizes=(512,),
        token_channels=16,
        perturbation="auto",
        standardize="auto",
        critic_dim=128,
        max_locations=64,
        batch_size="auto",
        max_epochs=30,
        learning_rate=1e-3,
        device="auto",
        random_state=None,
        verbose=0,
        warm_start=False,
        callbacks=None,
    ):
        self.n_components = n_components
        self.n_estimators = n_estimators
        self.mi_estimator = mi_estimator
        self.global_weight = global_weight
        self.local_weight = local_weight
        self.prior_weight = prior_weight
        self.image_shape = image_shape
        self.conv_channels = conv_channels
        self.hidden_layer_sizes = hidden_layer_sizes
        self.token_channels = token_channels
        self.perturbation = perturbation
        self.standardize = standardize
        self.critic_dim = critic_dim
        self.max_locations = max_locations
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
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def _auto_defaults(self, X):
        image = self.image_shape_ is not None
        return dict(
            n_estimators=ENSEMBLE_SIZE if image and is_small_image(self.image_shape_) else 1,
            conv_channels=auto_conv_channels(self.image_shape_),
            perturbation=["elastic", "affine"] if image else None,
            global_weight=1.0 if image else 0.0,
            local_weight=0.0 if image else 1.0,
            prior_weight=0.0 if image else 0.1,
            batch_size=128 if image else 64,
            standardize=image,
        )

    def _check_fit_data(self, X):
        check_layer_sizes("conv_channels", self.conv_channels_ or ())
        check_layer_sizes("hidden_layer_sizes", self.hidden_layer_sizes)
        if self.global_weight_ == 0 and self.local_weight_ == 0:
            raise ValueError("global_weight and local_weight are both 0: there is no mutual information to maximise.")

    def _mi_loss(self, net, x, generator=None, view=None):
        """global_weight * global + local_weight * local estimator losses on a batch (and the code).

        ``view`` (a perturbed copy of ``x``) supplies the features ``M``
        when given; the code always comes from ``x``.
        """
        local, code = net.encoder(x)
        if view is not None:
            local = net.encoder(view)[0]
        estimate = MI_ESTIMATORS[self.mi_estimator]
        loss = 0.0
        if self.global_weight_:
            loss = loss + self.global_weight_ * estimate(net.global_critic(local, code))
        if self.local_weight_:
            if generator is not None and local.shape[1] > self.max_locations:
                keep = torch.randperm(local.shape[1], generator=generator, device=local.device)[: self.max_locations]
                local = local[:, keep]
            loss = loss + self.local_weight_ * estimate(net.local_critic(local, code))
        return loss, code

    def _member_seeds(self):
        """The seed of every member: the fit's own seed first, so that one member is the plain fit."""
        return restart_seeds(torch.initial_seed(), self.n_estimators_)

    def _fit(self, X):
        members, seeds = [], self._member_seeds()
        for seed in seeds:  # each member initialised as a lone fit with its seed would be
            torch.manual_seed(seed)
            encoder = LocalGlobalEncoder(
                X.shape[1], self.n_components, image_shape=self.image_shape_, conv_channels=self.conv_channels_,
                token_channels=self.token_channels, hidden=self.hidden_layer_sizes,
            )
            members.append(init_weights(_DIMNetwork(encoder, self.critic_dim)))
        self._train_network(_DIMEnsemble(members).to(self.device_), X, [], seeds)

    def _fit_warm(self, X):
        self._train_network(copy.deepcopy(self.network_), X, self.history_, self._member_seeds())

    def _train_network(self, net, X, history, seeds):
        """Train ``net`` for ``max_epochs`` epochs after ``history``; set the fitted attributes.

        Member ``k`` draws its mini-batches, perturbations, locations and
        prior samples from a generator of its own seed ``seeds[k]`` only, and its loss
        depends on its own weights only: the members train together as they
        would one after another (one optimizer step minimises the sum of
        their losses, and Adam updates every parameter on its own).
        """
        Xt = self._rows(X)
        generators = [torch.Generator(self.device_).manual_seed(seed) for seed in seeds]
        optimizer = torch.optim.Adam(net.parameters(), lr=self.learning_rate)
        g = self._perturbation()
        if g is not None:
            for generator in generators:
                check_perturbation(g, Xt.slice(0, 8), generator)

        def member_loss(member, idx, generator):
            x = Xt.rows(idx)
            loss, code = self._mi_loss(member, x, generator, None if g is None else g(x, generator))
            if self.prior_weight_:
                prior = torch.rand(code.shape, generator=generator, device=code.device)
                fake = member.discriminator(grad_reverse(torch.sigmoid(code)))
                loss = loss + self.prior_weight_ * prior_matching_loss(member.discriminator(prior), fake)
            return loss

        def step(idx, phase):
            if len(generators) == 1:
                return member_loss(net.members[0], idx, generators[0])
            return torch.stack([member_loss(*args) for args in zip(net.members, idx, generators)])

        result = train(
            step, n_samples=X.shape[0], optimizer=optimizer, max_epochs=self.max_epochs,
            generator=generators[0] if len(generators) == 1 else generators, modules=[net],
            **dict(self._train_options(), batch_size=self.batch_size_),
        )
        self.network_ = net
        self.code_mean_ = self.code_scale_ = self.components_ = None
        if self.standardize_ or self.n_estimators_ > 1:
            Y = self._codes(X)
            if self.standardize_:
                self.code_mean_, self.code_scale_ = code_statistics(Y)
                Y = (Y - self.code_mean_) / self.code_scale_
            if self.n_estimators_ > 1:
                self.components_ = principal_axes(Y, self.n_components)
        self.history_ = continue_history(history, [mean_over_runs(r, "member") for r in result.history])
        self.n_iter_ = len(self.history_)
        self._n_features_out = self.n_components

    def _perturbation(self):
        if self.perturbation_ is None:
            return None
        return make_perturbation(self.perturbation_, self.image_shape_)

    def transform(self, X):
        """The code ``Y`` of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        Y : ndarray of shape (n_samples, n_components)
            In the dtype of ``X`` (float32 or float64); standardised by
            ``code_mean_`` and ``code_scale_`` when ``standardize_``; with
            several networks, their codes side by side (so standardised)
            projected on ``components_``.
        """
        X = self._check_fitted_input(X)
        Y = self._codes(X)
        if self.code_mean_ is not None:
            Y = (Y - self.code_mean_) / self.code_scale_
        if self.components_ is not None:
            Y = Y @ self.components_.T
        return Y.astype(X.dtype, copy=False)

    def _codes(self, X):
        """The networks' codes ``Y`` of the validated ``X``, side by side (float64 on the CPU), unstandardised.

        Only the encoders are copied for inference, not the critics and discriminators.
        """
        encoders = torch.nn.ModuleList(member.encoder for member in self.network_.members)
        return self._infer(encoders, _side_by_side_codes, X)

    def score(self, X, y=None):
        """Estimated mutual information between codes and features on ``X``.

        Minus the weighted (``global_weight``, ``local_weight``) estimator loss, averaged
        over the networks and over mini-batches of ``batch_size`` in eval mode, using every
        location; with a ``perturbation``, ``M`` comes from one draw of it
        from a fixed seed (so repeated calls agree). Higher is better;
        compare models with the same estimator, weights and batch size.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored

        Returns
        -------
        score : float
        """
        X = self._check_fitted_input(X)
        net = self.network_
        Xt = self._rows(X)
        g = self._perturbation()
        generator = torch.Generator(self.device_).manual_seed(0)
        members = net.members
        losses, sizes = [], []
        with torch.no_grad():
            for idx in batches(Xt.shape[0], self.batch_size_, shuffle=False, device=Xt.device):
                if len(idx) < 2:
                    continue
                x = Xt.rows(idx)
                view = None if g is None else g(x, generator)
                losses.append(sum(float(self._mi_loss(member, x, view=view)[0]) for member in members) / len(members))
                sizes.append(len(idx))
        if not losses:
            raise ValueError("score needs at least 2 samples (negatives come from the batch).")
        return -float(np.average(losses, weights=sizes))
