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
* :class:`Compose` -- several perturbations in sequence;
* :func:`make_perturbation` -- the lookup by name used by
  :class:`~skmic.IICClustering` (``"affine"``, ``"tabular"``, ``"auto"``)
  which also accepts any user callable.
"""

import math

import torch
import torch.nn.functional as F

__all__ = ["Compose", "ImagePerturbation", "TabularPerturbation", "make_perturbation"]


def _uniform(n, low, high, generator, device, dtype):
    return low + (high - low) * torch.rand(n, generator=generator, device=device, dtype=dtype)


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
        ``(C, H, W)`` of the flat rows.
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
        self.image_shape = tuple(image_shape)
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
        cos, sin, tan = angle.cos(), angle.sin(), shear.tan()
        # rotation @ shear(x by y), then shrink by zoom and crop window side
        a = torch.stack([cos, cos * tan - sin, sin, sin * tan + cos], 1).view(n, 2, 2)
        a = a * (side / zoom)[:, None, None]
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
        images = x.reshape((n,) + self.image_shape)
        theta = self.affine_matrices(n, generator, x.device, x.dtype)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        out = F.grid_sample(images, grid, mode="bilinear", padding_mode=self.padding_mode, align_corners=False)
        out = out.reshape(n, -1)
        if self.brightness or self.contrast or self.noise:
            std = x.std(1, keepdim=True).clamp_min(1e-6)
            mean = out.mean(1, keepdim=True)
            c = _uniform(n, 1 - self.contrast, 1 + self.contrast, generator, x.device, x.dtype)[:, None]
            b = _uniform(n, -self.brightness, self.brightness, generator, x.device, x.dtype)[:, None]
            out = (out - mean) * c + mean + b * std
            if self.noise:
                out = out + self.noise * std * torch.randn(out.shape, generator=generator, device=x.device, dtype=x.dtype)
        return out

    def __repr__(self):
        return f"ImagePerturbation(image_shape={self.image_shape})"


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


class Compose:
    """Apply perturbations one after the other.

    Parameters
    ----------
    perturbations : sequence of callables ``g(x, generator)``
    """

    def __init__(self, perturbations):
        self.perturbations = list(perturbations)

    def __call__(self, x, generator=None):
        for g in self.perturbations:
            x = g(x, generator)
        return x

    def __repr__(self):
        return f"Compose({self.perturbations!r})"


def _named(name, image_shape):
    if name == "auto":
        name = "affine" if image_shape is not None else "tabular"
    if name == "tabular":
        return TabularPerturbation()
    if image_shape is None:
        raise ValueError(
            f"perturbation={name!r} works on images: pass image_shape=(C, H, W) "
            "(or (H, W)), or use perturbation='tabular'."
        )
    if name == "affine":
        return ImagePerturbation(image_shape)
    raise ValueError(f"unknown perturbation {name!r}; choose from {sorted(PERTURBATIONS)}.")


#: names :func:`make_perturbation` knows
PERTURBATIONS = ("auto", "affine", "tabular")


def make_perturbation(spec, image_shape=None):
    """Resolve IIC's ``perturbation`` parameter into a callable.

    Parameters
    ----------
    spec : str, callable or sequence of them
        A name from :data:`PERTURBATIONS` (``"auto"``: ``"affine"`` for
        images, ``"tabular"`` otherwise), a callable ``g(x, generator)``, or
        a list/tuple of these, composed in order.
    image_shape : tuple of int or None

    Returns
    -------
    callable
    """
    if isinstance(spec, str):
        return _named(spec, image_shape)
    if isinstance(spec, (list, tuple)):
        return Compose([make_perturbation(s, image_shape) for s in spec])
    if callable(spec):
        return spec
    raise TypeError(
        f"perturbation must be a name, a callable g(x, generator) or a list of them, got {spec!r}."
    )


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
