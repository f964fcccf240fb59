"""Readers for local copies of the benchmark datasets (no downloads).

The files are never shipped with skmic: point ``data_home`` at a directory
that holds ``mnist/``, ``usps/`` and ``pendigits/`` in their original formats
(see the project's ``shared/data/README.md``). Without ``data_home`` the
readers look at the environment variable ``SKMIC_DATA``, then at
``../shared/data`` next to the source checkout. Everything read is verified
(header, shape, value and label ranges) and a missing or damaged file is a
clear error naming it.
"""

import gzip
import os
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

__all__ = ["get_data_home", "load_mnist", "load_pendigits", "load_usps", "make_texture_mosaics"]


class DatasetError(ValueError):
    """A dataset file is missing, truncated or not what it should be.

    Raised by the readers of this module with a message that names the file
    and what is wrong with it. It subclasses :class:`ValueError`.

    Examples
    --------
    >>> from skmic.datasets import DatasetError, load_pendigits
    >>> try:
    ...     load_pendigits("/nonexistent")
    ... except DatasetError as exc:
    ...     print(str(exc).split(" not found")[0])
    /nonexistent/pendigits/pendigits.tra
    """


def get_data_home(data_home=None):
    """The directory the dataset readers read from.

    Parameters
    ----------
    data_home : str or path-like, optional
        Used as is when given. Otherwise ``$SKMIC_DATA``, else
        ``../shared/data`` beside the repository this package lives in (or
        beside the current directory).

    Returns
    -------
    Path

    Examples
    --------
    >>> from skmic.datasets import get_data_home
    >>> get_data_home("/data/skmic").as_posix()
    '/data/skmic'
    """
    if data_home is not None:
        return Path(data_home)
    if os.environ.get("SKMIC_DATA"):
        return Path(os.environ["SKMIC_DATA"])
    candidates = [
        Path(__file__).resolve().parent.parent.parent / "shared" / "data",
        Path.cwd().parent / "shared" / "data",
    ]
    return next((c for c in candidates if c.is_dir()), candidates[0])


def _require(path):
    if not path.is_file():
        raise DatasetError(
            f"{path} not found. Pass data_home=... (or set SKMIC_DATA) to the "
            "directory holding mnist/, usps/ and pendigits/."
        )
    return path


def _read_idx(path, expected_magic):
    """Read an unsigned-byte IDX file (gzip), checking its header and size."""
    try:
        with gzip.open(_require(path), "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise DatasetError(f"{path} is not a readable gzip file ({exc}).") from None
    if len(data) < 8 or int.from_bytes(data[:4], "big") != expected_magic:
        raise DatasetError(
            f"{path}: bad IDX header (expected magic {expected_magic:#010x})."
        )
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    if len(data) - offset != int(np.prod(shape)):
        raise DatasetError(
            f"{path}: holds {len(data) - offset} bytes of data, its header says "
            f"{shape} = {int(np.prod(shape))}; the file is truncated or damaged."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def _check_labels(y, path, n_classes=10):
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise DatasetError(f"{path}: labels outside 0..{n_classes - 1}.")


def _bunch(X, y, image_shape, name):
    return Bunch(
        data=X,
        target=y,
        image_shape=image_shape,
        images=X.reshape((-1,) + tuple(s for s in image_shape if s != 1)) if image_shape else None,
        DESCR=f"{name}: {X.shape[0]} samples, {X.shape[1]} features in [0, 1], 10 classes.",
    )


def _subsets(subset, loaders):
    if subset not in ("train", "test", "all"):
        raise ValueError(f"subset must be 'train', 'test' or 'all', got {subset!r}.")
    parts = ["train", "test"] if subset == "all" else [subset]
    pieces = [loaders[p]() for p in parts]
    return np.concatenate([p[0] for p in pieces]), np.concatenate([p[1] for p in pieces])


def _finish(X, y, return_X_y, image_shape, name):
    X = np.ascontiguousarray(X, dtype=np.float32)
    y = y.astype(np.int64)
    return (X, y) if return_X_y else _bunch(X, y, image_shape, name)


def load_mnist(data_home=None, *, subset="test", return_X_y=False):
    """MNIST handwritten digits, 28x28, from the original IDX gzip files.

    Parameters
    ----------
    data_home : str or path-like, optional
        Directory holding ``mnist/*-idx?-ubyte.gz`` (see :func:`get_data_home`).
    subset : {"test", "train", "all"}, default="test"
        10,000 test images, 60,000 training images, or all 70,000.
    return_X_y : bool, default=False
        Return ``(X, y)`` instead of a Bunch.

    Returns
    -------
    data : Bunch or tuple
        ``data`` (n, 784) float32 in [0, 1], ``target`` (n,) int64,
        ``images`` (n, 28, 28), ``image_shape`` ``(1, 28, 28)``.

    Raises
    ------
    DatasetError
        If a file is missing, truncated, or holds the wrong shape or labels.

    Examples
    --------
    The files are not shipped with skmic, so this example only runs where
    the MNIST files are in the data directory (hence the ``+SKIP``):

    >>> from skmic.datasets import load_mnist
    >>> X, y = load_mnist(subset="test", return_X_y=True)  # doctest: +SKIP
    >>> X.shape, X.dtype, y.shape  # doctest: +SKIP
    ((10000, 784), dtype('float32'), (10000,))

    Without the files the reader fails with a message naming the missing
    file:

    >>> load_mnist("/nonexistent")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    skmic.datasets.DatasetError: /nonexistent/mnist/t10k-images-idx3-ubyte.gz not found. ...
    """
    root = get_data_home(data_home) / "mnist"

    def part(prefix):
        def load():
            X = _read_idx(root / f"{prefix}-images-idx3-ubyte.gz", 0x803)
            ypath = root / f"{prefix}-labels-idx1-ubyte.gz"
            y = _read_idx(ypath, 0x801)
            if X.shape[1:] != (28, 28) or X.shape[0] != y.shape[0]:
                raise DatasetError(f"{root}: {prefix} images {X.shape} do not match labels {y.shape}.")
            _check_labels(y, ypath)
            return X.reshape(len(X), -1) / np.float32(255), y

        return load

    X, y = _subsets(subset, {"train": part("train"), "test": part("t10k")})
    return _finish(X, y, return_X_y, (1, 28, 28), "MNIST")


def load_usps(data_home=None, *, subset="all", return_X_y=False):
    """USPS handwritten digits, 16x16, from ``usps/usps.h5`` (needs h5py).

    Parameters
    ----------
    data_home : str or path-like, optional
    subset : {"all", "train", "test"}, default="all"
        Deep-clustering papers use all 9,298 images.
    return_X_y : bool, default=False

    Returns
    -------
    data : Bunch or tuple
        ``data`` (n, 256) float32 in [0, 1], ``target`` int64,
        ``image_shape`` ``(1, 16, 16)``.

    Raises
    ------
    DatasetError
        If the file is missing, unreadable or not USPS.

    Examples
    --------
    Needs ``usps/usps.h5`` in the data directory (not shipped with skmic,
    hence the ``+SKIP``):

    >>> from skmic.datasets import load_usps
    >>> usps = load_usps()  # doctest: +SKIP
    >>> usps.data.shape, usps.image_shape  # doctest: +SKIP
    ((9298, 256), (1, 16, 16))
    """
    path = _require(get_data_home(data_home) / "usps" / "usps.h5")
    try:
        import h5py
    except ImportError:
        raise ImportError(
            "load_usps needs h5py: pip install h5py (or skmic[bench])."
        ) from None

    def part(name):
        def load():
            try:
                with h5py.File(path, "r") as f:
                    X = np.asarray(f[f"{name}/data"], dtype=np.float32)
                    y = np.asarray(f[f"{name}/target"])
            except (OSError, KeyError) as exc:
                raise DatasetError(f"{path} is unreadable or incomplete ({exc}).") from None
            if X.ndim != 2 or X.shape[1] != 256 or X.shape[0] != y.shape[0]:
                raise DatasetError(f"{path}: {name} data {X.shape} / target {y.shape} are not USPS.")
            if X.min() < 0 or X.max() > 1:
                raise DatasetError(f"{path}: {name} values outside [0, 1].")
            _check_labels(y, path)
            return X, y

        return load

    X, y = _subsets(subset, {"train": part("train"), "test": part("test")})
    return _finish(X, y, return_X_y, (1, 16, 16), "USPS")


def load_pendigits(data_home=None, *, subset="all", return_X_y=False):
    """UCI pen-based digits: 16 pen coordinates in 0..100, scaled to [0, 1].

    Parameters
    ----------
    data_home : str or path-like, optional
    subset : {"all", "train", "test"}, default="all"
        7,494 + 3,498 = 10,992 samples.
    return_X_y : bool, default=False

    Returns
    -------
    data : Bunch or tuple
        ``data`` (n, 16) float32 in [0, 1], ``target`` int64.

    Raises
    ------
    DatasetError
        If a file is missing or is not a pendigits CSV.

    Examples
    --------
    Needs ``pendigits/pendigits.tra`` and ``.tes`` in the data directory
    (not shipped with skmic, hence the ``+SKIP``):

    >>> from skmic.datasets import load_pendigits
    >>> X, y = load_pendigits(return_X_y=True)  # doctest: +SKIP
    >>> X.shape, sorted(set(y.tolist())) == list(range(10))  # doctest: +SKIP
    ((10992, 16), True)
    """
    root = get_data_home(data_home) / "pendigits"

    def part(ext):
        def load():
            path = _require(root / f"pendigits.{ext}")
            try:
                table = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
            except ValueError as exc:
                raise DatasetError(f"{path} is not a pendigits CSV ({exc}).") from None
            if table.shape[1] != 17 or table.shape[0] == 0:
                raise DatasetError(f"{path}: expected rows of 17 integers, got shape {table.shape}.")
            X, y = table[:, :16], table[:, 16]
            if X.min() < 0 or X.max() > 100:
                raise DatasetError(f"{path}: features outside 0..100.")
            _check_labels(y, path)
            return X / np.float32(100), y

        return load

    X, y = _subsets(subset, {"train": part("tra"), "test": part("tes")})
    return _finish(X, y, return_X_y, None, "pendigits")


# ------------------------------------------------------ procedural textures

#: The texture families of :func:`make_texture_mosaics`, in the order classes
#: take them: class ``k`` is filled with family ``TEXTURE_FAMILIES[k]``. The
#: first four are distinct kinds of texture; the fifth and sixth add a second
#: kind of noise and a second orientation of grating (the hardest pairs).
TEXTURE_FAMILIES = ("horizontal-grating", "checkers", "dots", "fine-noise", "blobs", "vertical-grating")


def _band_limited_noise(rng, n, size, low, high):
    """Gaussian noise keeping spatial frequencies in ``[low, high)`` cycles per pixel, unit std."""
    f = np.fft.fftfreq(size)
    radius = np.hypot(f[:, None], f[None, :])
    band = (radius >= low) & (radius < max(high, 1.5 / size)) & (radius > 0)  # never empty, never constant
    spectrum = np.fft.fft2(rng.standard_normal((n, size, size))) * band
    noise = np.fft.ifft2(spectrum).real
    return noise / noise.std(axis=(1, 2), keepdims=True)


def _texture(family, rng, n, yy, xx):
    """``n`` random textures of one family on the pixel grid (``yy``, ``xx``), roughly in [-1, 1]."""
    def draw(low, high):
        return rng.uniform(low, high, (n, 1, 1))

    size = yy.shape[0]
    phase = draw(0, 2 * np.pi)
    if family.endswith("grating"):
        angle = np.deg2rad(draw(-10, 10)) + (np.pi / 2 if family.startswith("vertical") else 0.0)
        period = draw(5, 8)
        along = np.sin(angle) * xx - np.cos(angle) * yy  # 0 degrees: stripes along x
        return np.sin(2 * np.pi * along / period + phase)
    if family == "checkers":
        angle = np.deg2rad(draw(-10, 10))
        period = draw(8, 12)
        u = np.cos(angle) * xx + np.sin(angle) * yy
        v = -np.sin(angle) * xx + np.cos(angle) * yy
        return np.tanh(3 * np.sin(2 * np.pi * u / period + phase) * np.sin(2 * np.pi * v / period + draw(0, 2 * np.pi)))
    if family == "dots":
        period = draw(5, 7)
        oy, ox = draw(0, 2 * np.pi), phase
        bumps = (1 + np.cos(2 * np.pi * yy / period + oy)) * (1 + np.cos(2 * np.pi * xx / period + ox)) / 4
        return 2 * bumps**4 - 0.5
    if family == "blobs":
        return np.tanh(1.5 * _band_limited_noise(rng, n, size, 0.02, 0.07))
    if family == "fine-noise":
        return np.clip(_band_limited_noise(rng, n, size, 0.25, 0.5) / 2, -1, 1)
    raise ValueError(f"unknown texture family {family!r}")  # pragma: no cover


def make_texture_mosaics(n_images=200, size=64, n_classes=4, *, n_cells=None, noise=0.05, random_state=None):
    """Random mosaics of textures with exact per-pixel ground truth.

    A procedural benchmark for unsupervised segmentation. Each image is a
    Voronoi tessellation of ``n_cells`` random seed points whose cell
    borders are bent by a smooth random displacement field (so regions are
    irregular blobs, not polygons); the ``n_classes`` largest cells take
    distinct classes (so every class occurs in every image), the others
    random ones. Class ``k`` fills its regions with
    a texture of family ``TEXTURE_FAMILIES[k]``, in this order: a horizontal
    sine grating (random phase, period and +-10 degrees of tilt), a
    checkerboard, a dot lattice, fine band-limited noise, smooth
    band-limited noise blobs and a vertical grating; so up to 4 classes are
    4 distinct kinds of texture, and 5 and 6 classes add the harder pairs. Every region of every image gets its own random
    brightness (mean in [0.3, 0.7]) and contrast (standard deviation in
    [0.1, 0.2]), so neither grey level nor contrast separates the classes:
    a method has to recognise the texture. All of it is vectorised NumPy.

    Parameters
    ----------
    n_images : int, default=200
        Number of images.
    size : int, default=64
        Side of the square images, in pixels (at least 16).
    n_classes : int, default=4
        Number of texture classes, 2 to ``len(TEXTURE_FAMILIES)`` (6).
    n_cells : int, default=None
        Voronoi cells per image; None is ``n_classes + 2``, enough for every
        class plus a couple of repeats.
    noise : float, default=0.05
        Standard deviation of additive Gaussian pixel noise (the images'
        grey levels are in [0, 1] before it).
    random_state : int, RandomState instance or None, default=None
        Seed of everything drawn.

    Returns
    -------
    images : ndarray of shape (n_images, size, size), float32
        Grey-level images.
    masks : ndarray of shape (n_images, size, size), int64
        The class of every pixel.

    Examples
    --------
    >>> from skmic.datasets import make_texture_mosaics
    >>> images, masks = make_texture_mosaics(3, size=32, n_classes=4, random_state=0)
    >>> images.shape, images.dtype, masks.shape
    ((3, 32, 32), dtype('float32'), (3, 32, 32))
    >>> sorted(set(masks[0].ravel().tolist()))
    [0, 1, 2, 3]
    """
    from sklearn.utils import check_random_state

    if not 2 <= n_classes <= len(TEXTURE_FAMILIES):
        raise ValueError(f"n_classes must be in [2, {len(TEXTURE_FAMILIES)}], got {n_classes}.")
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}.")
    n_cells = n_classes + 2 if n_cells is None else n_cells
    if n_cells < n_classes:
        raise ValueError(f"n_cells={n_cells} must be at least n_classes={n_classes}.")
    rng = np.random.default_rng(check_random_state(random_state).randint(2**31 - 1))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    # layout: Voronoi cells of warped coordinates (smooth displacement ~ size / 12)
    warp = _band_limited_noise(rng, 2 * n_images, size, 0.0, 0.04).reshape(n_images, 2, size, size) * size / 12
    seeds = rng.uniform(0, size, (n_images, n_cells, 2))
    wy, wx = yy + warp[:, 0], xx + warp[:, 1]
    dist = (wy[:, None] - seeds[:, :, 0, None, None]) ** 2 + (wx[:, None] - seeds[:, :, 1, None, None]) ** 2
    cell = dist.argmin(1)  # (n, size, size)
    # the n_classes largest cells take distinct classes, the others random ones
    area = (cell.reshape(n_images, -1, 1) == np.arange(n_cells)).sum(1)
    largest = np.argsort(-area, axis=1, kind="stable")[:, :n_classes]
    cell_class = rng.integers(0, n_classes, (n_images, n_cells))
    np.put_along_axis(cell_class, largest, rng.permuted(np.tile(np.arange(n_classes), (n_images, 1)), axis=1), 1)
    masks = np.take_along_axis(cell_class, cell.reshape(n_images, -1), 1).reshape(n_images, size, size)
    # a texture of every class for every image, then each pixel takes its class's
    textures = np.stack([_texture(TEXTURE_FAMILIES[k], rng, n_images, yy, xx) for k in range(n_classes)], 1)
    textures = (textures - textures.mean((2, 3), keepdims=True)) / textures.std((2, 3), keepdims=True)
    texture = np.take_along_axis(textures, masks[:, None], 1)[:, 0]
    # per-cell brightness and contrast
    mean = rng.uniform(0.3, 0.7, (n_images, n_cells))
    amplitude = rng.uniform(0.1, 0.2, (n_images, n_cells))
    flat = cell.reshape(n_images, -1)
    grey = (np.take_along_axis(mean, flat, 1) + np.take_along_axis(amplitude, flat, 1) * texture.reshape(n_images, -1))
    images = grey.reshape(n_images, size, size) + noise * rng.standard_normal((n_images, size, size))
    return images.astype(np.float32), masks.astype(np.int64)
