"""IIC's perturbations g: random transformations that should not change a cluster.

Every perturbation is a callable ``g(x, generator) -> x'`` on a batch of flat
rows (a float tensor of shape (n, n_features)) that returns a tensor of the
same shape, dtype and device, drawing all randomness from ``generator`` (a
:class:`torch.Generator` on the batch's device), so that a seed reproduces it.
Everything is batched tensor code on the batch's device: no per-sample Python.

* :class:`ImagePerturbation` -- random affine maps (rotation, scale, shear,
  translation), random crop-and-resize and flips, all folded into one
  resampling per image, then brightness/contrast jitter and noise;
* :class:`TabularPerturbation` -- Gaussian noise scaled per feature and
  random marginal corruption (entries replaced by the same feature of
  random other rows);
* :class:`PointSetPerturbation` -- random affine maps and jitter of rows
  that hold the (x, y) coordinates of 2-D points (pen strokes, landmarks);
* :class:`ElasticPerturbation` -- smooth random displacement fields;
* :class:`WassersteinPerturbation` -- proposals kept with probability
  ``exp(-W2(x, x')^2 / eta^2)``, the squared 2-Wasserstein distance between
  the images as mass distributions computed by batched Sinkhorn iterations;
* :class:`Compose` -- several perturbations in sequence;
* :func:`make_perturbation` -- the lookup by name used by
  :class:`~skmic.IICClustering` (``"affine"``, ``"elastic"``,
  ``"wasserstein"``, ``"tabular"``, ``"points"``, ``"auto"``)
  which also accepts any user callable;
* :func:`restart_views` -- the views of several restarts' batches, each
  from its own generator, in one call (image perturbations draw each
  restart's random numbers apart and transform all images at once);
* :class:`InvertiblePerturbation` and :func:`make_invertible_perturbation`
  -- :class:`~skmic.IICSegmentation`'s ``g``, which also returns the affine
  maps that :func:`invert_affine` undoes on the output (at most one
  :class:`ImagePerturbation`, other steps leaving pixels in place).
"""

import math

import torch
import torch.nn.functional as F

from ._base import as_chw

__all__ = [
    "Compose",
    "ElasticPerturbation",
    "ImagePerturbation",
    "InvertiblePerturbation",
    "NeighborPerturbation",
    "PointSetPerturbation",
    "TabularPerturbation",
    "WassersteinPerturbation",
    "inverse_affine",
    "invert_affine",
    "make_invertible_perturbation",
    "make_perturbation",
    "restart_views",
    "sinkhorn_w2",
    "warp_affine",
]


def _uniform(n, low, high, generator, device, dtype):
    return low + (high - low) * torch.rand(n, generator=generator, device=device, dtype=dtype)


def _rotation_shear(angle, shear):
    """(n, 2, 2) matrices: a shear of x by y (angle ``shear``), then a rotation by ``angle`` (radians)."""
    cos, sin, tan = angle.cos(), angle.sin(), shear.tan()
    return torch.stack([cos, cos * tan - sin, sin, sin * tan + cos], 1).view(-1, 2, 2)


def _range(value, name):
    """``value`` as a (low, high) range; a scalar is a fixed value."""
    if isinstance(value, (tuple, list)):
        low, high = value
    else:
        low = high = value
    if low > high:
        raise ValueError(f"{name} range {value!r} has low > high.")
    return float(low), float(high)


class ImagePerturbation:
    """Random geometric and photometric changes of images, batched.

    The geometric part is one random affine map per image, applied with a
    single :func:`torch.nn.functional.grid_sample`: rotation, anisotropic
    shear, zoom (``scale``), translation and a crop of a random sub-window
    resized to the full image (``crop``), plus optional flips. The
    photometric part then shifts brightness and stretches contrast, and adds
    Gaussian noise; both are measured in units of each image's standard
    deviation so that they mean the same for data in [0, 1] or standardised.

    Parameters
    ----------
    image_shape : tuple of int
        ``(C, H, W)`` or ``(H, W)`` (one channel) of the flat rows.
    rotation : float, default=25.0
        Maximum rotation in degrees (uniform in [-rotation, rotation]).
    p_rotation : float, default=0.5
        Probability of rotating an image at all (IIC's MNIST setting).
    scale : float or (float, float), default=(0.9, 1.1)
        Zoom factor range (> 1 enlarges the content); a number is fixed.
    shear : float, default=10.0
        Maximum shear angle in degrees.
    translate : float, default=0.1
        Maximum shift as a fraction of the image size.
    crop : float, (float, float) or None, default=(0.85, 1.0)
        Side (range) of the random crop, as a fraction of the image, resized
        back to full size (IIC's random crop of 16/20/24 of 28 pixels).
    hflip, vflip : bool, default=False
        Random horizontal / vertical flips (not for digits).
    brightness : float, default=0.4
        Maximum brightness shift, in image standard deviations.
    contrast : float, default=0.4
        Contrast factor drawn from [1 - contrast, 1 + contrast].
    noise : float, default=0.1
        Standard deviation of additive Gaussian noise, in image standard
        deviations.
    padding_mode : {"zeros", "border", "reflection"}, default="zeros"
        What the resampling shows outside the image.

    Examples
    --------
    >>> import torch
    >>> from skmic.perturbations import ImagePerturbation
    >>> g = ImagePerturbation((1, 8, 8))
    >>> x = torch.rand(4, 64)
    >>> g(x, torch.Generator().manual_seed(0)).shape
    torch.Size([4, 64])
    """

    def __init__(
        self,
        image_shape,
        *,
        rotation=25.0,
        p_rotation=0.5,
        scale=(0.9, 1.1),
        shear=10.0,
        translate=0.1,
        crop=(0.85, 1.0),
        hflip=False,
        vflip=False,
        brightness=0.4,
        contrast=0.4,
        noise=0.1,
        padding_mode="zeros",
    ):
        self.image_shape = as_chw(image_shape)
        self.rotation = rotation
        self.p_rotation = p_rotation
        self.scale = _range(scale, "scale")
        self.shear = shear
        self.translate = translate
        self.crop = None if crop is None else _range(crop, "crop")
        if self.crop is not None and not 0 < self.crop[0] <= self.crop[1] <= 1:
            raise ValueError(f"crop must lie in (0, 1], got {crop!r}.")
        self.hflip = hflip
        self.vflip = vflip
        self.brightness = brightness
        self.contrast = contrast
        self.noise = noise
        self.padding_mode = padding_mode

    def affine_matrices(self, n, generator, device, dtype=torch.float32):
        """Random (n, 2, 3) sampling matrices in normalised coordinates.

        ``affine_grid`` maps each output location u to the input location
        ``A u + t``; zooming in by ``s`` means ``A = R S / s``.
        """
        def u(low, high):
            return _uniform(n, low, high, generator, device, dtype)

        angle = u(-self.rotation, self.rotation) * math.pi / 180
        if self.p_rotation < 1:
            angle = angle * (torch.rand(n, generator=generator, device=device) < self.p_rotation)
        shear = u(-self.shear, self.shear) * math.pi / 180
        zoom = u(*self.scale)
        side = u(*self.crop) if self.crop is not None else torch.ones(n, device=device, dtype=dtype)
        # rotation @ shear(x by y), then shrink by zoom and crop window side
        a = _rotation_shear(angle, shear) * (side / zoom)[:, None, None]
        flips = torch.ones(n, 2, device=device, dtype=dtype)
        if self.hflip:
            flips[:, 0] = torch.where(torch.rand(n, generator=generator, device=device) < 0.5, -1.0, 1.0)
        if self.vflip:
            flips[:, 1] = torch.where(torch.rand(n, generator=generator, device=device) < 0.5, -1.0, 1.0)
        a = a * flips[:, None, :]
        # window centre anywhere that keeps the crop inside, plus translation
        slack = (1 - side)[:, None]
        t = slack * (2 * torch.rand(n, 2, generator=generator, device=device, dtype=dtype) - 1)
        t = t + self.translate * 2 * (torch.rand(n, 2, generator=generator, device=device, dtype=dtype) - 0.5)
        return torch.cat([a, t[:, :, None]], 2)

    def __call__(self, x, generator=None):
        n = x.shape[0]
        out, _ = self.perturb(x.reshape((n,) + self.image_shape), generator)
        return out.reshape(n, -1)

    def draw(self, shape, generator, device, dtype=torch.float32):
        """The random numbers of perturbations of images of ``shape`` ``(n, C, H, W)``, from ``generator``.

        Drawn in a fixed order that does not depend on the images' values,
        so that the draws of several generators can be concatenated and
        applied at once (:meth:`apply`, :func:`restart_views`).
        """
        n = shape[0]
        draws = {"theta": self.affine_matrices(n, generator, device, dtype)}
        if self.brightness or self.contrast or self.noise:
            draws["contrast"] = _uniform(n, 1 - self.contrast, 1 + self.contrast, generator, device, dtype)[:, None]
            draws["brightness"] = _uniform(n, -self.brightness, self.brightness, generator, device, dtype)[:, None]
            if self.noise:
                draws["noise"] = torch.randn((n, math.prod(shape[1:])), generator=generator, device=device, dtype=dtype)
        return draws

    def apply(self, images, draws):
        """Images ``(n, C, H, W)`` perturbed with the random numbers ``draws`` of :meth:`draw`."""
        n = images.shape[0]
        out = warp_affine(images, draws["theta"], padding_mode=self.padding_mode).reshape(n, -1)
        if "contrast" in draws:
            x = images.reshape(n, -1)
            std = x.std(1, keepdim=True).clamp_min(1e-6)
            mean = out.mean(1, keepdim=True)
            out = (out - mean) * draws["contrast"] + mean + draws["brightness"] * std
            if "noise" in draws:
                out = out + self.noise * std * draws["noise"]
        return out.reshape(images.shape)

    def perturb(self, images, generator=None):
        """Perturb a batch of images and return the affine maps used.

        The same transformation as calling the perturbation on flat rows, on
        (n, C, H, W) images of any size; the returned matrices let
        :func:`invert_affine` map anything computed on the perturbed images
        (e.g. per-pixel network outputs) back onto the original pixel grid.

        Parameters
        ----------
        images : Tensor of shape (n, C, H, W)
        generator : torch.Generator, optional

        Returns
        -------
        perturbed : Tensor of shape (n, C, H, W)
        theta : Tensor of shape (n, 2, 3)
            The sampling matrices of :meth:`affine_matrices`.
        """
        draws = self.draw(images.shape, generator, images.device, images.dtype)
        return self.apply(images, draws), draws["theta"]

    def __repr__(self):
        default = vars(ImagePerturbation(self.image_shape))
        changed = "".join(f", {k}={v!r}" for k, v in vars(self).items() if v != default[k])
        return f"ImagePerturbation(image_shape={self.image_shape}{changed})"


def warp_affine(images, theta, *, mode="bilinear", padding_mode="zeros"):
    """Resample images: output pixel ``u`` takes the input at ``A u + t``.

    Parameters
    ----------
    images : Tensor of shape (n, C, H, W)
    theta : Tensor of shape (n, 2, 3)
        ``[A | t]`` in the normalised coordinates of
        :func:`torch.nn.functional.affine_grid` (``align_corners=False``).
    mode : {"bilinear", "nearest"}, default="bilinear"
    padding_mode : {"zeros", "border", "reflection"}, default="zeros"

    Returns
    -------
    Tensor of shape (n, C, H, W)

    Examples
    --------
    The identity map leaves the images as they are:

    >>> import torch
    >>> from skmic.perturbations import warp_affine
    >>> x = torch.rand(2, 1, 5, 5)
    >>> identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(2, 2, 3)
    >>> torch.allclose(warp_affine(x, identity), x, atol=1e-6)
    True
    """
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode=mode, padding_mode=padding_mode, align_corners=False)


def inverse_affine(theta):
    """The sampling matrices of the inverse maps: ``[A^-1 | -A^-1 t]``.

    Parameters
    ----------
    theta : Tensor of shape (n, 2, 3)

    Returns
    -------
    Tensor of shape (n, 2, 3)

    Examples
    --------
    >>> import torch
    >>> from skmic.perturbations import inverse_affine
    >>> shift = torch.tensor([[[2.0, 0.0, 0.5], [0.0, 2.0, 0.0]]])  # zoom out 2x, shift right
    >>> inverse_affine(shift) + 0.0  # + 0.0: the sign of a zero depends on the kernels
    tensor([[[ 0.5000,  0.0000, -0.2500],
             [ 0.0000,  0.5000,  0.0000]]])
    """
    a_inv = torch.linalg.inv(theta[:, :, :2])
    return torch.cat([a_inv, -a_inv @ theta[:, :, 2:]], 2)


def invert_affine(maps, theta, *, mode="bilinear"):
    """Map per-pixel maps of perturbed images back onto the original pixel grid.

    If ``x' = warp_affine(x, theta)``, the content of ``x'`` at ``u`` is that
    of ``x`` at ``A u + t``, so ``invert_affine(x', theta)`` puts it back at
    ``A u + t``: the inverse map ``g^-1`` of IIC's segmentation objective.
    Locations of the original grid that the perturbed view did not show are
    zero (they then contribute nothing to IIC's joints). Normalised
    coordinates make this work at any resolution: ``maps`` may be a network
    output smaller than the images ``theta`` was drawn for.

    Parameters
    ----------
    maps : Tensor of shape (n, C, h, w)
    theta : Tensor of shape (n, 2, 3)
        The matrices returned by :meth:`ImagePerturbation.perturb`.
    mode : {"bilinear", "nearest"}, default="bilinear"

    Returns
    -------
    Tensor of shape (n, C, h, w)

    Examples
    --------
    >>> import torch
    >>> from skmic.perturbations import ImagePerturbation, invert_affine
    >>> g = ImagePerturbation((1, 8, 8), rotation=0.0, shear=0.0, scale=1.0, translate=0.0,
    ...                       crop=None, hflip=True, brightness=0.0, contrast=0.0, noise=0.0)
    >>> x = torch.rand(4, 1, 8, 8)
    >>> x_pert, theta = g.perturb(x, torch.Generator().manual_seed(0))
    >>> torch.allclose(invert_affine(x_pert, theta), x, atol=1e-6)  # flips undone exactly
    True
    """
    return warp_affine(maps, inverse_affine(theta), mode=mode)


class TabularPerturbation:
    """Gaussian noise and marginal corruption for tabular rows.

    Each entry gets ``noise`` times its feature's standard deviation (taken
    over the batch) of Gaussian noise; then a fraction ``corruption`` of the
    entries is replaced by the value of the same feature in a random other
    row of the batch, i.e. drawn from that feature's marginal.

    Parameters
    ----------
    noise : float, default=0.1
    corruption : float, default=0.2

    Examples
    --------
    >>> import torch
    >>> from skmic.perturbations import TabularPerturbation
    >>> g = TabularPerturbation()
    >>> g(torch.rand(5, 3), torch.Generator().manual_seed(0)).shape
    torch.Size([5, 3])
    """

    def __init__(self, *, noise=0.1, corruption=0.2):
        if noise < 0 or not 0 <= corruption <= 1:
            raise ValueError("noise must be >= 0 and corruption in [0, 1].")
        self.noise = noise
        self.corruption = corruption

    def __call__(self, x, generator=None):
        n, d = x.shape
        out = x
        if self.noise:
            std = x.std(0, keepdim=True) if n > 1 else torch.ones_like(x[:1])
            out = x + self.noise * std * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        if self.corruption:
            mask = torch.rand(x.shape, generator=generator, device=x.device) < self.corruption
            donors = torch.randint(n, (n, d), generator=generator, device=x.device)
            out = torch.where(mask, x.gather(0, donors), out)
        return out

    def __repr__(self):
        return f"TabularPerturbation(noise={self.noise}, corruption={self.corruption})"


class NeighborPerturbation:
    """Replace every row by one of its nearest rows of the data.

    A view for tabular data in the spirit of SCAN (Van Gansbeke et al.,
    2020): a row's nearest neighbours in the data mostly share its class,
    so a network whose output is the same for a row and its neighbours
    groups what the data's geometry groups, where noise on one row says
    nothing about the others. The distances are Euclidean on the
    reference rows' standardised features (each feature divided by its
    standard deviation, so that no feature dominates by its unit). For each
    row the ``n_neighbors + 1`` nearest reference rows are found, the
    nearest dropped (the row itself, for a row of the data), and one of the
    others is drawn at random.

    Parameters
    ----------
    reference : Tensor of shape (n_reference, n_features)
        The rows the neighbours are drawn from (see :meth:`from_rows`).
    n_neighbors : int, default=10
        How many nearest rows a row's view is drawn from (fewer when the
        reference has fewer rows).

    Examples
    --------
    >>> import torch
    >>> from skmic.perturbations import NeighborPerturbation
    >>> data = torch.rand(50, 3)
    >>> g = NeighborPerturbation(data)
    >>> view = g(data[:5], torch.Generator().manual_seed(0))
    >>> bool((view[:, None] == data[None]).all(2).any(1).all())  # every view is a row of the data
    True
    """

    #: the most rows :meth:`from_rows` takes as the reference (a random subset of larger data)
    MAX_REFERENCE_ROWS = 10000

    def __init__(self, reference, n_neighbors=10):
        if n_neighbors < 1:
            raise ValueError(f"n_neighbors must be >= 1, got {n_neighbors}.")
        if len(reference) < 2:
            raise ValueError("the neighbour perturbation needs at least 2 reference rows.")
        self.reference = reference
        self.n_neighbors = n_neighbors
        self._mean = reference.mean(0)
        std = reference.std(0)
        self._std = torch.where(std > 0, std, torch.ones_like(std))
        self._z = (reference - self._mean) / self._std
        self._sq = self._z.pow(2).sum(1)

    @classmethod
    def from_rows(cls, rows, n_neighbors=10):
        """The perturbation with the rows of ``rows`` (a :class:`~skmic._data.Rows`) as reference.

        At most :attr:`MAX_REFERENCE_ROWS` of them, a random subset drawn
        from a fixed seed (the same for the same data), so that the cost of
        a view is bounded.
        """
        return cls(rows.sample(cls.MAX_REFERENCE_ROWS, torch.Generator().manual_seed(0)), n_neighbors)

    def __call__(self, x, generator=None):
        # each distinct row is searched once: IIC passes every sample n_repeats times
        rows, inverse = torch.unique(x, dim=0, return_inverse=True)
        z = (rows - self._mean.to(x.dtype)) / self._std.to(x.dtype)
        ref = self._z.to(x.dtype)
        distances = z.pow(2).sum(1, keepdim=True) - 2 * z @ ref.T + self._sq.to(x.dtype)
        k = min(self.n_neighbors, len(ref) - 1)
        nearest = distances.topk(k + 1, dim=1, largest=False).indices[:, 1:]  # the nearest is the row itself
        pick = torch.randint(k, (len(x),), generator=generator, device=x.device)
        return self.reference[nearest[inverse, pick]].to(x.dtype)

    def __repr__(self):
        return f"NeighborPerturbation(n_reference={len(self.reference)}, n_neighbors={self.n_neighbors})"


class PointSetPerturbation:
    """Random affine maps of 2-D point sets stored as rows ``(x1, y1, x2, y2, ...)``.

    For tables whose features are the coordinates of points of one shape:
    pen trajectories (UCI pendigits: 8 points), landmarks, outlines. Each
    row's points are rotated, sheared and zoomed about the centre of their
    bounding box, shifted, and jittered point by point; shifts and jitter
    are in units of the row's extent (the longer side of its bounding box),
    so they mean the same whatever the coordinates' scale. A shape keeps its
    identity under such maps, which is the invariance IIC should learn;
    generic tabular noise (:class:`TabularPerturbation`) ignores that the
    features are coordinates. On pendigits, IIC did best with both, this
    map followed by the tabular noise (``perturbation=["points",
    "tabular"]``; see the project's results page).

    Parameters
    ----------
    rotation : float, default=15.0
        Maximum rotation in degrees.
    scale : float or (float, float), default=(0.9, 1.1)
        Zoom factor range.
    shear : float, default=10.0
        Maximum shear angle in degrees.
    translate : float, default=0.05
        Maximum shift per axis, as a fraction of the row's extent.
    noise : float, default=0.02
        Standard deviation of the per-coordinate Gaussian jitter, as a
        fraction of the row's extent.

    Examples
    --------
    >>> import torch
    >>> from skmic.perturbations import PointSetPerturbation
    >>> g = PointSetPerturbation()
    >>> x = torch.rand(3, 16)  # 3 rows of 8 (x, y) points
    >>> g(x, torch.Generator().manual_seed(0)).shape
    torch.Size([3, 16])
    """

    def __init__(self, *, rotation=15.0, scale=(0.9, 1.1), shear=10.0, translate=0.05, noise=0.02):
        self.rotation = rotation
        self.scale = _range(scale, "scale")
        self.shear = shear
        self.translate = translate
        self.noise = noise

    def __call__(self, x, generator=None):
        n, d = x.shape
        if d % 2:
            raise ValueError(f"point sets need an even number of features (x, y pairs); got {d}.")
        points = x.reshape(n, d // 2, 2)
        low, high = points.min(1, keepdim=True).values, points.max(1, keepdim=True).values
        centre = (low + high) / 2
        extent = (high - low).amax(2, keepdim=True).clamp_min(torch.finfo(x.dtype).eps)

        def u(low, high):
            return _uniform(n, low, high, generator, x.device, x.dtype)

        angle = u(-self.rotation, self.rotation) * math.pi / 180
        shear = u(-self.shear, self.shear) * math.pi / 180
        a = _rotation_shear(angle, shear) * u(*self.scale)[:, None, None]
        shift = self.translate * (2 * torch.rand(n, 1, 2, generator=generator, device=x.device, dtype=x.dtype) - 1)
        jitter = self.noise * torch.randn(points.shape, generator=generator, device=x.device, dtype=x.dtype)
        out = (points - centre) @ a.transpose(1, 2) + centre + (shift + jitter) * extent
        return out.reshape(n, d)

    def __repr__(self):
        return (
            f"PointSetPerturbation(rotation={self.rotation}, scale={self.scale}, shear={self.shear}, "
            f"translate={self.translate}, noise={self.noise})"
        )


def _gaussian_kernel(sigma, device, dtype):
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


class ElasticPerturbation:
    """Random elastic deformations (Simard et al. 2003), batched.

    A displacement field of uniform noise in [-1, 1] per pixel and axis is
    smoothed by a Gaussian of standard deviation ``sigma`` pixels, scaled to
    ``alpha`` pixels and applied with :func:`torch.nn.functional.grid_sample`.
    Small ``sigma`` gives local jitter, large ``sigma`` smooth warps.

    Parameters
    ----------
    image_shape : tuple of int
        ``(C, H, W)`` or ``(H, W)`` (one channel).
    alpha : float, default=8.0
        Strength of the displacement, in pixels (before smoothing shrinks
        it; a typical displacement is ``alpha / (2 sqrt(pi) sigma)``).
    sigma : float, default=3.0
        Smoothness, in pixels.
    padding_mode : {"zeros", "border", "reflection"}, default="zeros"

    Examples
    --------
    >>> import torch
    >>> from skmic.perturbations import ElasticPerturbation
    >>> g = ElasticPerturbation((1, 8, 8), alpha=4.0, sigma=2.0)
    >>> g(torch.rand(3, 64), torch.Generator().manual_seed(0)).shape
    torch.Size([3, 64])
    """

    def __init__(self, image_shape, *, alpha=8.0, sigma=3.0, padding_mode="zeros"):
        if alpha < 0 or sigma <= 0:
            raise ValueError("alpha must be >= 0 and sigma > 0.")
        self.image_shape = as_chw(image_shape)
        self.alpha = alpha
        self.sigma = sigma
        self.padding_mode = padding_mode

    def displacement(self, n, generator, device, dtype=torch.float32):
        """Smoothed random displacements (n, H, W, 2) in pixels."""
        return self.smooth(self.draw((n,) + self.image_shape, generator, device, dtype)["noise"])

    def draw(self, shape, generator, device, dtype=torch.float32):
        """The random numbers of perturbations of ``shape`` ``(n, C, H, W)`` images, from ``generator``.

        Unsmoothed noise, ``(2 n, 1, H, W)`` uniform in [-1, 1]; as
        :meth:`ImagePerturbation.draw`, for :func:`restart_views`.
        """
        n, _, h, w = shape
        return {"noise": 2 * torch.rand(n * 2, 1, h, w, generator=generator, device=device, dtype=dtype) - 1}

    def smooth(self, noise):
        """Displacements (n, H, W, 2) in pixels from the noise of :meth:`draw`."""
        k = _gaussian_kernel(self.sigma, noise.device, noise.dtype)
        r = len(k) // 2
        noise = F.conv2d(F.pad(noise, (r, r, 0, 0), mode="constant"), k.view(1, 1, 1, -1))
        noise = F.conv2d(F.pad(noise, (0, 0, r, r), mode="constant"), k.view(1, 1, -1, 1))
        n, h, w = noise.shape[0] // 2, noise.shape[2], noise.shape[3]
        return (self.alpha * noise).view(n, 2, h, w).permute(0, 2, 3, 1)

    def apply(self, images, draws):
        """Images ``(n, C, H, W)`` perturbed with the random numbers ``draws`` of :meth:`draw`."""
        _, _, h, w = images.shape
        ys = torch.linspace(-1 + 1 / h, 1 - 1 / h, h, device=images.device, dtype=images.dtype)
        xs = torch.linspace(-1 + 1 / w, 1 - 1 / w, w, device=images.device, dtype=images.dtype)
        base = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1)  # (H, W, 2) as (x, y)
        scale = torch.tensor([2.0 / w, 2.0 / h], device=images.device, dtype=images.dtype)
        grid = base[None] + self.smooth(draws["noise"]) * scale
        return F.grid_sample(images, grid, mode="bilinear", padding_mode=self.padding_mode, align_corners=False)

    def __call__(self, x, generator=None):
        n = x.shape[0]
        images = x.reshape((n,) + self.image_shape)
        return self.apply(images, self.draw(images.shape, generator, x.device, x.dtype)).reshape(n, -1)

    def __repr__(self):
        return f"ElasticPerturbation(image_shape={self.image_shape}, alpha={self.alpha}, sigma={self.sigma})"


class _DenseKernel:
    """``K = exp(-C / epsilon)`` for a dense (P, P) cost ``C``."""

    def __init__(self, cost, epsilon):
        self.max_cost = float(cost.max())
        self.kernel = torch.exp(-cost / epsilon)
        self.kernel_cost = self.kernel * cost

    def apply(self, v):  # rows of K v
        return v @ self.kernel

    def apply_cost(self, v):  # rows of (K * C) v
        return v @ self.kernel_cost


class _GridKernel:
    """The Gibbs kernel of squared distances on an (h, w) pixel grid, applied separably.

    ``C((i, j), (k, l)) = ((i - k)^2 + (j - l)^2) / s^2`` (``s`` the longer
    side) factorises the kernel: ``K = K_h (x) K_w``, so ``K v`` is
    ``K_h V K_w`` for ``v`` seen as an (h, w) image -- ``O(h w (h + w))``
    instead of ``O((h w)^2)`` per row ("convolutional Wasserstein
    distances", Solomon et al. 2015). ``(K * C) v`` splits the same way,
    ``C`` being a sum of a row and a column term.
    """

    def __init__(self, shape, epsilon, device, dtype):
        h, w = shape
        side = max(h, w)
        self.shape = (h, w)
        self.max_cost = ((h - 1) ** 2 + (w - 1) ** 2) / side**2
        self.factors = []
        for n in (h, w):
            r = torch.arange(n, device=device, dtype=dtype)
            c = (r[:, None] - r[None, :]).pow(2) / side**2
            k = torch.exp(-c / epsilon)
            self.factors.append((k, k * c))

    def _two_sided(self, v, left, right):
        return (left @ v.reshape(-1, *self.shape) @ right).flatten(1)

    def apply(self, v):
        (kh, _), (kw, _) = self.factors
        return self._two_sided(v, kh, kw)

    def apply_cost(self, v):
        (kh, kch), (kw, kcw) = self.factors
        return self._two_sided(v, kch, kw) + self._two_sided(v, kh, kcw)


def _sinkhorn_scaling(a, b, kernel, n_iter):
    """``<pi, C>`` by Sinkhorn's matrix scaling ``u = a / K v``, ``v = b / K u``."""
    tiny = torch.finfo(a.dtype).tiny
    v = torch.ones_like(b)
    for _ in range(n_iter):
        u = a / kernel.apply(v).clamp_min(tiny)
        v = b / kernel.apply(u).clamp_min(tiny)
    return (u * kernel.apply_cost(v)).sum(1)


def sinkhorn_w2(a, b, cost, *, epsilon=0.005, n_iter=50):
    """Entropic OT estimate of the squared 2-Wasserstein distance, batched.

    Sinkhorn's matrix-scaling iterations (Cuturi 2013; Peyre & Cuturi 2019,
    section 4.2) with the Gibbs kernel ``K = exp(-cost / epsilon)``, for the
    whole batch at once, in float64. Keeping ``cost / epsilon`` below 700
    keeps every kernel entry above 1e-304, so the scalings stay finite
    without the log-domain stabilisation (5x slower on the CPU).
    Returns ``<pi, cost>`` of the entropic plan ``pi``, which tends to the
    exact squared W2 as ``epsilon -> 0``.

    Parameters
    ----------
    a, b : Tensor of shape (n, P)
        Non-negative rows summing to 1, on the same support.
    cost : Tensor of shape (P, P), or tuple (h, w)
        Symmetric squared ground distances; or the shape of a pixel grid
        (``P = h * w``, rows of ``a`` and ``b`` are row-major images), whose
        squared distances between pixel centres, in units of the longer
        side, are applied separably: ``O(P (h + w))`` per row and iteration
        instead of ``O(P^2)``.
    epsilon : float, default=0.005
        Entropic regularisation, in the units of ``cost``; it must exceed
        ``max(cost) / 700`` (float64's exponent range).
    n_iter : int, default=50

    Returns
    -------
    Tensor of shape (n,), in the dtype of ``a``.

    Examples
    --------
    All the mass of one point moved to the other, one unit away: the squared
    distance is 1.

    >>> import torch
    >>> from skmic.perturbations import sinkhorn_w2
    >>> cost = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    >>> a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    >>> round(float(sinkhorn_w2(a, b, cost, epsilon=0.01)[0]), 4)
    1.0

    On a 1 x 2 pixel grid the same transport moves the mass one side:

    >>> round(float(sinkhorn_w2(a, b, (1, 2), epsilon=0.01)[0]), 4)
    0.25
    """
    out_dtype = a.dtype
    a, b = a.double(), b.double()
    if isinstance(cost, torch.Tensor):
        kernel = _DenseKernel(cost.to(a.device, torch.float64), epsilon)
    else:
        kernel = _GridKernel(tuple(cost), epsilon, a.device, torch.float64)
    if kernel.max_cost / epsilon > 700:
        raise ValueError(
            f"epsilon={epsilon} is too small for costs up to {kernel.max_cost:.3g}: "
            "cost / epsilon must stay below 700."
        )
    return _sinkhorn_scaling(a, b, kernel, n_iter).to(out_dtype)


class WassersteinPerturbation:
    """Perturbations whose density follows ``exp(-W2(x, x')^2 / eta^2)``.

    Each image is treated as a mass distribution on its pixel grid (its
    values shifted to be non-negative and normalised to total mass 1). A
    candidate ``x'`` is drawn from ``proposal``; it is kept with probability
    ``exp(-d^2 / eta^2)``, ``d^2`` the entropic (Sinkhorn) estimate of the
    squared 2-Wasserstein distance between ``x`` and ``x'`` (pixel
    coordinates in units of the image side). Rejected rows are re-drawn, up
    to ``max_tries`` rounds; a row never accepted keeps its closest
    candidate. So the pairs favour perturbations that move little mass a
    short way, whatever kind of transformation the proposal makes.

    Cost: the squared distances of a pixel grid make the Gibbs kernel
    separable, so one Sinkhorn iteration costs ``O(P (H + W))`` per image of
    ``P = H x W`` pixels rather than ``O(P^2)`` (see :func:`sinkhorn_w2`);
    each round solves two transport problems per pending image (candidate
    against original, candidate against itself for the debiasing), plus one
    per image for the original against itself, computed once per call. The
    transport is computed on the image average-pooled to at most
    ``grid x grid`` pixels (``grid=14`` halves MNIST's 28x28 grid, about 8x
    fewer operations); the candidate itself keeps the full resolution.

    Parameters
    ----------
    image_shape : tuple of int
        ``(C, H, W)`` or ``(H, W)`` (one channel).
    eta : float, default=0.1
        Scale of the accepted distances (same units as ``W2``: a fraction of
        the image side). Smaller ``eta`` accepts fewer, gentler candidates
        (on scikit-learn's digits with the default proposal, about 75% are
        accepted at 0.2, 30% at 0.1 and 1% at 0.05).
    proposal : callable, default=None
        ``g(x, generator)``; None composes :class:`ImagePerturbation` and
        :class:`ElasticPerturbation`.
    epsilon : float, default=0.005
        Sinkhorn regularisation (in squared image sides).
    n_iter : int, default=50
        Sinkhorn iterations.
    max_tries : int, default=5
    grid : int or None, default=14
        Side of the grid the transport is computed on; None uses full size.

    Examples
    --------
    >>> import torch
    >>> from skmic.perturbations import WassersteinPerturbation
    >>> g = WassersteinPerturbation((1, 8, 8), eta=0.2)
    >>> x = torch.rand(4, 64, generator=torch.Generator().manual_seed(0))
    >>> x_pert = g(x, torch.Generator().manual_seed(1))
    >>> x_pert.shape, x_pert.dtype
    (torch.Size([4, 64]), torch.float32)
    >>> float(g.distance(x, x).max()) < 1e-6  # identical images: distance 0
    True
    """

    def __init__(self, image_shape, *, eta=0.1, proposal=None, epsilon=0.005, n_iter=50, max_tries=5, grid=14):
        if eta <= 0 or epsilon <= 0:
            raise ValueError("eta and epsilon must be > 0.")
        self.image_shape = as_chw(image_shape)
        self.eta = eta
        self.proposal = proposal or Compose([ImagePerturbation(self.image_shape), ElasticPerturbation(self.image_shape)])
        self.epsilon = epsilon
        self.n_iter = n_iter
        self.max_tries = max_tries
        self.grid = grid

    def _masses(self, x):
        c, h, w = self.image_shape
        images = x.reshape(x.shape[0], c, h, w).mean(1, keepdim=True)
        if self.grid is not None and max(h, w) > self.grid:
            images = F.adaptive_avg_pool2d(images, (min(h, self.grid), min(w, self.grid)))
        flat = images.flatten(1)
        flat = flat - flat.min(1, keepdim=True).values
        return flat / flat.sum(1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)

    def _transport(self, a, b):
        _, h, w = self.image_shape
        grid = (h, w) if self.grid is None else (min(h, self.grid), min(w, self.grid))
        return sinkhorn_w2(a, b, grid, epsilon=self.epsilon, n_iter=self.n_iter)

    def _divergence(self, a, b, aa):
        """Debiased distances of ``b`` from ``a``, given ``aa = OT(a, a)``."""
        ab, bb = self._transport(torch.cat([a, b]), torch.cat([b, b])).split(a.shape[0])
        return (ab - (aa + bb) / 2).clamp_min(0)

    def distance(self, x, y):
        """Debiased Sinkhorn estimate of the squared W2 between rows of ``x`` and ``y``.

        ``OT(a, b) - (OT(a, a) + OT(b, b)) / 2`` (the Sinkhorn divergence of
        Feydy et al. 2019): the entropic blur of ``OT`` is subtracted, so
        identical images are at distance 0.
        """
        a = self._masses(x)
        return self._divergence(a, self._masses(y), self._transport(a, a))

    def _round(self, x, a, aa, generator):
        candidates = self.proposal(x, generator)
        d2 = self._divergence(a, self._masses(candidates), aa)
        u = torch.rand(x.shape[0], generator=generator, device=x.device, dtype=x.dtype)
        return candidates, d2, u < torch.exp(-d2 / self.eta**2)

    def propose(self, x, generator=None):
        """One round: candidates, their squared distances, and the accepted mask."""
        a = self._masses(x)
        return self._round(x, a, self._transport(a, a), generator)

    def __call__(self, x, generator=None):
        out = torch.empty_like(x)
        best = torch.full((x.shape[0],), float("inf"), device=x.device, dtype=x.dtype)
        a = self._masses(x)
        aa = self._transport(a, a)
        pending = torch.arange(x.shape[0], device=x.device)
        for _ in range(self.max_tries):
            cand, d2, ok = self._round(x[pending], a[pending], aa[pending], generator)
            take = ok | (d2 < best[pending])  # accepted, or the closest so far
            out[pending[take]] = cand[take]
            best[pending[take]] = d2[take]
            pending = pending[~ok]
            if len(pending) == 0:
                break
        return out

    def __repr__(self):
        return f"WassersteinPerturbation(image_shape={self.image_shape}, eta={self.eta})"


class Compose:
    """Apply perturbations one after the other.

    Parameters
    ----------
    perturbations : sequence of callables ``g(x, generator)``

    Examples
    --------
    >>> import torch
    >>> from skmic.perturbations import Compose, ElasticPerturbation, ImagePerturbation
    >>> g = Compose([ImagePerturbation((1, 8, 8)), ElasticPerturbation((1, 8, 8))])
    >>> g(torch.rand(2, 64), torch.Generator().manual_seed(0)).shape
    torch.Size([2, 64])
    """

    def __init__(self, perturbations):
        self.perturbations = list(perturbations)

    def __call__(self, x, generator=None):
        for g in self.perturbations:
            x = g(x, generator)
        return x

    def __repr__(self):
        return f"Compose({self.perturbations!r})"


def _named(name, image_shape, data):
    if name == "auto":
        raise ValueError(
            "perturbation='auto' is resolved by each estimator from its data (IICClustering, DECClustering, "
            "DeepInfoMaxEmbedder and IICSegmentation choose differently; a fitted estimator's perturbation_ "
            f"says what ran); make_perturbation takes a name from {sorted(PERTURBATIONS)} or a callable."
        )
    if name not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation {name!r}; choose from {sorted(PERTURBATIONS)}.")
    if name == "neighbors":
        if data is None:
            raise ValueError(
                "perturbation='neighbors' draws a row's view from the other rows of the data: "
                "only IICClustering supports it."
            )
        return NeighborPerturbation.from_rows(data)
    if name == "tabular":
        return TabularPerturbation()
    if name == "points":
        return PointSetPerturbation()
    if image_shape is None:
        raise ValueError(
            f"perturbation={name!r} works on images: pass image_shape=(C, H, W) "
            "(or (H, W)), or use perturbation='tabular'."
        )
    if name == "affine":
        return ImagePerturbation(image_shape)
    if name == "shift-rotate":
        return ImagePerturbation(
            image_shape, rotation=10.0, p_rotation=1.0, scale=(1.0, 1.0), shear=0.0, translate=0.1,
            crop=None, brightness=0.0, contrast=0.0, noise=0.0,
        )
    if name == "elastic":
        return ElasticPerturbation(image_shape)
    return WassersteinPerturbation(image_shape)  # "wasserstein"


#: The perturbation names that :func:`make_perturbation` accepts; the
#: estimators' ``perturbation`` takes them and "auto" (chosen by each
#: estimator from its data).
PERTURBATIONS = ("affine", "shift-rotate", "elastic", "wasserstein", "tabular", "neighbors", "points")


def make_perturbation(spec, image_shape=None, data=None):
    """Resolve IIC's ``perturbation`` parameter into a callable.

    Parameters
    ----------
    spec : str, callable or sequence of them
        A name from :data:`PERTURBATIONS` (``"elastic"``, ``"wasserstein"``
        and ``"points"`` with their default parameters; ``"neighbors"``: a
        :class:`NeighborPerturbation` with ``data`` as reference (IIC's
        training data, or the data it scores); ``"shift-rotate"``: rotations of up
        to 10 degrees and shifts of up to 10% of the side, nothing else, the
        augmentation of the DEC-DA paper), a callable ``g(x, generator)``, or
        a non-empty list/tuple of these, composed in order (e.g.
        ``["affine", "elastic"]``).
    image_shape : tuple of int or None
    data : skmic._data.Rows, optional
        The rows ``"neighbors"`` draws its views from.

    Returns
    -------
    callable

    Raises
    ------
    ValueError
        For an unknown name, "auto" (each estimator resolves it), an empty
        list, or an image perturbation without ``image_shape``.

    Examples
    --------
    >>> from skmic.perturbations import PERTURBATIONS, make_perturbation
    >>> PERTURBATIONS
    ('affine', 'shift-rotate', 'elastic', 'wasserstein', 'tabular', 'neighbors', 'points')
    >>> make_perturbation("affine", (1, 8, 8))
    ImagePerturbation(image_shape=(1, 8, 8))
    >>> make_perturbation("tabular")
    TabularPerturbation(noise=0.1, corruption=0.2)
    >>> make_perturbation(["affine", "elastic"], (1, 8, 8))  # doctest: +NORMALIZE_WHITESPACE
    Compose([ImagePerturbation(image_shape=(1, 8, 8)),
             ElasticPerturbation(image_shape=(1, 8, 8), alpha=8.0, sigma=3.0)])
    """
    if isinstance(spec, str):
        return _named(spec, image_shape, data)
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise ValueError(
                f"perturbation={spec!r} is empty; name at least one perturbation "
                f"(choose from {sorted(PERTURBATIONS)}) or pass a callable."
            )
        return Compose([make_perturbation(s, image_shape, data) for s in spec])
    if callable(spec):
        return spec
    raise TypeError(
        f"perturbation must be a name, a callable g(x, generator) or a list of them, got {spec!r}."
    )


def restart_views(g, x, generators):
    """Perturbed copies ``(R, m, F)`` of the flat rows ``x`` ``(R, m, F)``, block ``k`` drawn from ``generators[k]``.

    The same as stacking ``g(x[k], generators[k])``: a perturbation with
    ``draw`` and ``apply`` methods (:class:`ImagePerturbation`,
    :class:`ElasticPerturbation`) draws each block's random numbers from its
    own generator, in the order a lone call would, and perturbs all blocks
    in one call; any other is called once per block.

    Examples
    --------
    >>> import torch
    >>> from skmic.perturbations import ElasticPerturbation, restart_views
    >>> g = ElasticPerturbation((1, 8, 8))
    >>> x = torch.rand(3, 4, 64)
    >>> views = restart_views(g, x, [torch.Generator().manual_seed(k) for k in range(3)])
    >>> torch.equal(views[2], g(x[2], torch.Generator().manual_seed(2)))
    True
    """
    if not (hasattr(g, "draw") and hasattr(g, "apply")):
        return torch.stack([g(xk, gk) for xk, gk in zip(x, generators)])
    r, m = x.shape[:2]
    shape = (m,) + tuple(g.image_shape)
    per_block = [g.draw(shape, gk, x.device, x.dtype) for gk in generators]
    draws = {key: torch.cat([d[key] for d in per_block]) for key in per_block[0]}
    return g.apply(x.reshape((r * m,) + shape[1:]), draws).reshape(x.shape)


def check_perturbation(g, x, generator):
    """Call ``g`` once on a sample batch and check its output's shape and dtype."""
    try:
        out = g(x, generator)
    except Exception as exc:
        raise ValueError(f"the perturbation {g!r} failed on a batch of shape {tuple(x.shape)}: {exc}") from exc
    if not isinstance(out, torch.Tensor) or out.shape != x.shape or out.dtype != x.dtype:
        got = (tuple(out.shape), out.dtype) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"the perturbation must return a tensor of shape {tuple(x.shape)} and dtype "
            f"{x.dtype} (the input's); got {got}."
        )
    return out


class InvertiblePerturbation:
    """Perturb images and return the affine maps that undo their geometry.

    What :class:`~skmic.IICSegmentation` needs of its ``g``: the network's
    output on the perturbed images is mapped back onto the original pixel
    grid (:func:`invert_affine`) and compared with the output on the
    images pixel by pixel. So each step is either an
    :class:`ImagePerturbation`, whose random affine map is returned and
    inverted exactly (at most one), or a callable ``g(x, generator)`` on
    flat rows, as :class:`~skmic.IICClustering` takes, that must leave every
    pixel where it is (brightness, contrast, noise, colour); without an
    :class:`ImagePerturbation` the maps are the identity.

    Parameters
    ----------
    steps : sequence of callables
        Applied in order.

    Examples
    --------
    >>> import torch
    >>> from skmic.perturbations import ImagePerturbation, InvertiblePerturbation
    >>> def noise(x, generator):
    ...     return x + 0.1 * torch.randn(x.shape, generator=generator)
    >>> g = InvertiblePerturbation([ImagePerturbation((1, 8, 8)), noise])
    >>> x_pert, theta = g.perturb(torch.rand(4, 1, 8, 8), torch.Generator().manual_seed(0))
    >>> tuple(x_pert.shape), tuple(theta.shape)
    ((4, 1, 8, 8), (4, 2, 3))
    """

    def __init__(self, steps):
        self.steps = list(steps)
        if sum(isinstance(g, ImagePerturbation) for g in self.steps) > 1:
            raise ValueError(
                "the perturbation holds more than one ImagePerturbation; IICSegmentation inverts one affine "
                "map: put the geometry in one of them."
            )

    def perturb(self, images, generator=None):
        """The perturbed images ``(n, C, H, W)`` and the sampling matrices ``(n, 2, 3)`` of their geometry."""
        n, theta = images.shape[0], None
        for g in self.steps:
            if isinstance(g, ImagePerturbation):
                images, theta = g.perturb(images, generator)
                continue
            flat = images.reshape(n, -1)
            out = g(flat, generator)
            if not isinstance(out, torch.Tensor) or out.shape != flat.shape or out.dtype != flat.dtype:
                got = (tuple(out.shape), out.dtype) if isinstance(out, torch.Tensor) else type(out).__name__
                raise ValueError(
                    f"the perturbation {g!r} must return a tensor of shape {tuple(flat.shape)} and dtype "
                    f"{flat.dtype} (the flat rows it was given); got {got}."
                )
            images = out.reshape(images.shape)
        if theta is None:
            theta = torch.eye(2, 3, device=images.device, dtype=images.dtype).expand(n, 2, 3)
        return images, theta

    def __repr__(self):
        return f"InvertiblePerturbation({self.steps!r})"


#: The perturbation names that :func:`make_invertible_perturbation` (and so
#: ``IICSegmentation(perturbation=...)``) accepts: the affine ones.
INVERTIBLE_PERTURBATIONS = ("affine", "shift-rotate")


def make_invertible_perturbation(spec, image_shape):
    """Resolve IICSegmentation's ``perturbation`` into an :class:`InvertiblePerturbation`.

    Parameters
    ----------
    spec : str, callable or sequence of them
        A name from :data:`INVERTIBLE_PERTURBATIONS` (the
        :class:`ImagePerturbation` :func:`make_perturbation` gives it), an
        :class:`ImagePerturbation`, a callable ``g(x, generator)`` that
        leaves every pixel in place, or a non-empty list/tuple of these
        (at most one of them geometric), applied in order.
    image_shape : tuple of int

    Returns
    -------
    InvertiblePerturbation

    Raises
    ------
    ValueError
        For a perturbation whose geometry cannot be inverted (the names
        "elastic", "wasserstein", "tabular" and "points", an
        :class:`ElasticPerturbation`, a :class:`WassersteinPerturbation`, a
        :class:`Compose`), an empty list, or two geometric steps.

    Examples
    --------
    >>> from skmic.perturbations import make_invertible_perturbation
    >>> make_invertible_perturbation(["shift-rotate"], (1, 8, 8))  # doctest: +NORMALIZE_WHITESPACE
    InvertiblePerturbation([ImagePerturbation(image_shape=(1, 8, 8), rotation=10.0, p_rotation=1.0,
        scale=(1.0, 1.0), shear=0.0, crop=None, brightness=0.0, contrast=0.0, noise=0.0)])
    """
    specs = list(spec) if isinstance(spec, (list, tuple)) else [spec]
    if not specs:
        raise ValueError(f"perturbation={spec!r} is empty; name at least one perturbation or pass a callable.")
    steps = []
    for g in specs:
        if isinstance(g, str) and g in INVERTIBLE_PERTURBATIONS:
            g = make_perturbation(g, image_shape)
        elif isinstance(g, str) or isinstance(g, (ElasticPerturbation, WassersteinPerturbation, Compose)):
            raise ValueError(
                f"perturbation {g!r} cannot be undone on the pixel grid: IICSegmentation maps the perturbed "
                f"output back onto the pixels, so its geometry must be an affine map (the names "
                f"{list(INVERTIBLE_PERTURBATIONS)} or an ImagePerturbation), and any other callable must leave "
                "every pixel in place (pass a list of steps, not a Compose)."
            )
        elif not callable(g):
            raise TypeError(
                f"perturbation must be a name, an ImagePerturbation, a callable g(x, generator) or a list of "
                f"them, got {g!r}."
            )
        steps.append(g)
    return InvertiblePerturbation(steps)
