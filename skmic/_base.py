"""The shared base of skmic's torch-backed estimators.

Everything that every estimator does the same way lives here, once: the common
parameters and their constraints, input validation, the device policy, seeding
without touching global random state, batched no-grad inference, a fit skeleton
that is all or nothing (a failed or interrupted fit leaves the estimator as it
was) and checks the scale of the input and the sanity of the fitted model, and
pickling that stores torch objects so that a model trained on a GPU loads on a
CPU-only machine.

The private scikit-learn helpers (``validate_data``, ``_fit_context`` and the
parameter-constraint types) are imported here and nowhere else.
"""

import contextlib
import copy
import hashlib
import io
import math
import numbers
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ._data import Rows, StreamedArray, is_streamed, read_rows, take_rows
from ._heap import kept_heap
from . import _distributed as distributed
from ._training import TrainingControl, progress_bar
from .exceptions import TrainingDivergedError, TrainingInterruptedWarning

__all__ = [
    "BaseTorchEstimator",
    "BaseDeepEstimator",
    "check_image_shape",
    "check_input_scale",
    "check_layer_sizes",
    "CONTROL_CONSTRAINTS",
    "SoftClusterMixin",
    "Interval",
    "StrOptions",
    "fit_context",
    "resolve_device",
    "validate_params",
]

#: ``@fit_context`` wraps every public ``fit``: it validates the parameters
#: against ``_parameter_constraints`` before anything else runs.
fit_context = _fit_context(prefer_skip_nested_validation=True)

#: Constraints of the parameters of training a user controls, which every
#: estimator that trains a network in stages a user may stop and continue has
#: (``warm_start``, ``callbacks``; see :meth:`BaseTorchEstimator.fit`).
CONTROL_CONSTRAINTS = {
    "warm_start": ["boolean"],
    "callbacks": [list, tuple, None],
}

#: Rows per forward pass at inference time (no gradients are kept, so this
#: only bounds activation memory).
INFERENCE_BATCH_SIZE = 4096


def as_chw(image_shape):
    """``(C, H, W)`` from ``(C, H, W)`` or ``(H, W)`` (one channel) of positive ints.

    Raises
    ------
    ValueError
        If ``image_shape`` is neither.
    """
    shape = tuple(image_shape)
    if len(shape) == 2:
        shape = (1,) + shape
    if len(shape) != 3 or not all(isinstance(s, numbers.Integral) and s > 0 for s in shape):
        raise ValueError(
            f"image_shape must be (channels, height, width) or (height, width) of "
            f"positive ints, got {image_shape!r}."
        )
    return tuple(int(s) for s in shape)


#: images whose larger side has at most this many pixels are small: IIC perturbs them elastically
#: rather than affinely, and conv_channels="auto" gives them the wider trunk
SMALL_IMAGE = 12

#: conv_channels="auto": the image trunk's widths on small images and on larger ones
CONV_CHANNELS = {"small": (32, 64, 128), "large": (16, 32, 64)}


def is_small_image(image_shape):
    """Whether the larger side of ``(C, H, W)`` has at most :data:`SMALL_IMAGE` pixels."""
    return max(image_shape[1:]) <= SMALL_IMAGE


def auto_conv_channels(image_shape):
    """The conv widths that ``conv_channels="auto"`` gives images of ``image_shape`` (None for tables).

    (32, 64, 128) on small images (scikit-learn's 8 x 8 digits), (16, 32,
    64) on larger ones: a step of a conv trunk costs in proportion to the
    pixels times the squared widths, and on the 28 x 28 MNIST images the
    narrower trunk clustered as well as the wider one in a third of the
    time (the IIC and DIM user guides have the measurements).
    """
    if image_shape is None:
        return None
    return CONV_CHANNELS["small" if is_small_image(image_shape) else "large"]


def check_image_shape(image_shape, n_features):
    """Normalise ``image_shape`` to ``(C, H, W)`` and check it against the data.

    Parameters
    ----------
    image_shape : tuple of int or None
        ``(C, H, W)`` or ``(H, W)`` (one channel); None means tabular data.
    n_features : int
        Columns of the flat input.

    Returns
    -------
    tuple of int or None

    Raises
    ------
    ValueError
        If the shape is malformed or its product differs from ``n_features``.
    """
    if image_shape is None:
        return None
    shape = as_chw(image_shape)
    if int(np.prod(shape)) != n_features:
        raise ValueError(
            f"image_shape={image_shape!r} holds {int(np.prod(shape))} values but X has "
            f"{n_features} features per sample; pass the shape each row of X "
            "was flattened from, or image_shape=None for tabular data."
        )
    return shape


def resolve_device(device):
    """Turn a ``device`` parameter into a usable :class:`torch.device`.

    Parameters
    ----------
    device : str or torch.device
        ``"auto"`` picks CUDA when it is available and the CPU otherwise;
        anything else is parsed by :class:`torch.device` (``"cpu"``,
        ``"cuda"``, ``"cuda:1"``, ``"mps"``).

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        If the string is not a device, or names an accelerator that this
        machine does not have.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device={device!r} is not a valid device; use 'auto', 'cpu', "
            "'cuda' or 'cuda:N'."
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available on "
                "this machine; use device='auto' or device='cpu'."
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} does not exist: this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)."
            )
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(
                "device='mps' was requested but MPS is not available; use "
                "device='auto' or device='cpu'."
            )
    elif dev.type != "cpu":
        raise ValueError(
            f"device={device!r} is not supported; use 'auto', 'cpu', 'cuda' "
            "or 'mps'."
        )
    return dev


@contextlib.contextmanager
def seeded(seed, device):
    """Seed torch for a block of code and restore the global RNG state after.

    Parameters
    ----------
    seed : int
    device : torch.device
        The CUDA RNG of this device is forked too, when it is a CUDA device.
    """
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _holds_torch(value):
    if isinstance(value, (torch.nn.Module, torch.Tensor)):
        return True
    if isinstance(value, (list, tuple)):
        return any(_holds_torch(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_torch(v) for v in value.values())
    return False


class _TorchPayload:
    """A torch object (module, tensor or a container of them), serialised.

    The bytes are written with every tensor moved to the CPU, so they load on
    a machine without the accelerator the model was trained on.
    """

    def __init__(self, value):
        buffer = io.BytesIO()
        torch.save(_to_cpu(value), buffer)
        self.data = buffer.getvalue()

    def load(self, device):
        value = torch.load(
            io.BytesIO(self.data), map_location="cpu", weights_only=False
        )
        return _to(value, device)


def _to_cpu(value):
    """A CPU copy of ``value``; the original object is left where it is."""
    if isinstance(value, torch.nn.Module):
        if all(t.device.type == "cpu" for t in _module_tensors(value)):
            return value
        buffer = io.BytesIO()
        torch.save(value, buffer)
        buffer.seek(0)
        return torch.load(buffer, map_location="cpu", weights_only=False)
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    return value


def _to(value, device):
    if isinstance(value, (torch.nn.Module, torch.Tensor)):
        return value.to(device)
    if isinstance(value, (list, tuple)):
        return type(value)(_to(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _to(v, device) for k, v in value.items()}
    return value


def _module_tensors(module):
    yield from module.parameters()
    yield from module.buffers()


#: Headroom of :func:`check_input_scale`: after centring, two points within
#: ``R`` of the origin are at most ``4 R`` apart, so a squared distance (or a
#: squared deviation from a batch mean) is at most ``16 R**2``.
_SQUARE_HEADROOM = 16.0

#: Rows of the training data on which ``fit`` checks the fitted model's
#: outputs (evenly spaced; bounds the cost of the check on large data).
_CHECKED_ROWS = 1024


def check_input_scale(X, dtype):
    """Raise a ValueError when sums of squares of ``X`` leave ``dtype``'s range.

    Every estimator sums squares of its input: k-means its squared
    distances and inertia, the networks the variances of their batch
    normalisation. With ``R`` the largest Euclidean norm of a row of ``X``
    and ``n`` its number of rows, ``n * 16 * R**2`` bounds all of these
    sums (``16 R**2`` bounds a squared distance after centring), so it must
    stay below the largest finite number of ``dtype``; and the largest
    magnitude's square must stay above its smallest normal number, or every
    square underflows. For float32, the dtype of the networks, on 1000 rows
    of 10 features this admits magnitudes of about 1.1e-19 to 4e16 (float64:
    about 1.5e-154 to 1e150).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features) or StreamedArray
        Finite floats; of a streamed source, the statistics of its scan.
    dtype : numpy dtype
        The dtype the estimator computes in.

    Raises
    ------
    ValueError
        Naming the largest magnitude and what to do.
    """
    n, d = X.shape
    if n * d == 0:
        return
    streamed = isinstance(X, StreamedArray)
    info = np.finfo(dtype)
    largest = _largest(X)
    if largest == 0:
        return
    advice = "rescale X, e.g. with sklearn.preprocessing.StandardScaler"
    if 2 * math.log(largest) < math.log(float(info.tiny)):
        raise ValueError(
            f"X's values are too small for {np.dtype(dtype).name} arithmetic: the largest magnitude is "
            f"{largest:.3g}, whose square underflows below {info.tiny:.3g}; {advice}."
        )
    limit = math.log(float(info.max)) - math.log(_SQUARE_HEADROOM * n)
    if 2 * math.log(largest) + math.log(d) < limit:
        return  # the bound R**2 <= d * largest**2 suffices
    if streamed:
        log_norm_sq = X.stats["log_norm_sq"]
    else:
        step = max(1, (1 << 20) // d)  # rows per chunk: about a million values
        norm_sq = max(float(np.square(X[s : s + step] / largest, dtype=np.float64).sum(1).max())
                      for s in range(0, n, step))
        log_norm_sq = 2 * math.log(largest) + math.log(norm_sq)
    if log_norm_sq >= limit:
        raise ValueError(
            f"X's values are too large for {np.dtype(dtype).name} arithmetic: the largest magnitude is "
            f"{largest:.3g}, and sums of squares over its {n} rows would exceed {float(info.max):.3g}; "
            f"{advice}."
        )


def _non_numeric_columns(X):
    """``{column: first value that is not a number}`` of a DataFrame (empty otherwise)."""
    bad = {}
    for column in getattr(X, "columns", ()):
        values = X[column]
        try:
            np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            for value in values:
                try:
                    float(value)
                except (TypeError, ValueError):
                    bad[column] = value
                    break
            else:
                bad[column] = values.iloc[0]
    return bad


def _is_float_data(value):
    return isinstance(value, (float, np.floating)) or (
        isinstance(value, np.ndarray) and value.dtype.kind in "fc"
    )


def _largest(X):
    """The largest magnitude in an in-memory array or a scanned :class:`StreamedArray`."""
    return (X.stats or X.scan())["largest"] if isinstance(X, StreamedArray) else float(np.max(np.abs(X)))


def _same_rows(A, rtol=0.0):
    """Whether every row of ``A`` equals the first, up to ``rtol`` of A's largest magnitude."""
    A = np.asarray(A, dtype=np.float64).reshape(len(A), -1)
    return bool(np.abs(A - A[:1]).max(initial=0.0) <= rtol * np.abs(A).max(initial=0.0))


class BaseTorchEstimator(BaseEstimator):
    """Base of every skmic estimator that computes with torch.

    Subclasses implement ``_fit(X)`` where ``X`` is the validated input as a
    NumPy array. The base class validates the input (including its scale,
    :func:`check_input_scale`), resolves ``device_``, seeds torch from
    ``random_state`` (restoring the global RNG afterwards), checks the fitted
    model (:meth:`_check_fit_result`), and makes ``fit`` all or nothing
    (:meth:`_fit_transaction`). ``_fit`` must therefore assign new fitted
    objects rather than modify the previous fit's in place.

    Parameters shared by all subclasses: ``device``, ``random_state`` and
    ``verbose``.
    """

    _parameter_constraints = {
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    #: smallest number of samples that ``fit`` accepts
    _min_samples = 2

    #: the dtype the estimator computes in (None: the validated input's)
    _compute_dtype = None

    #: inference methods whose outputs ``fit`` checks (:meth:`_check_fit_result`)
    _checked_outputs = ()

    #: whether ``X`` may be images, (n, H, W) or (n, C, H, W) (:meth:`_flatten_images`);
    #: such estimators have an ``image_shape`` parameter and set ``image_shape_``
    _takes_images = False

    #: whether a fitted model takes images of the training height and width only
    #: (else any size with the training channels: a fully convolutional network)
    _fixed_image_size = True

    #: whether ``fit`` and the inference methods read a memmap, an HDF5 or zarr
    #: array or a row-indexable object in batches (:mod:`skmic._data`)
    #: instead of validating it into memory
    _streams_input = False

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags

    # ----------------------------------------------------------- validation
    def _validate_input(self, X, *, reset):
        """Validate ``X`` as a finite 2-D float array (float64 or float32).

        On ``reset=True`` (fit) this records ``n_features_in_`` and
        ``feature_names_in_``; otherwise it checks them. The columns of a
        DataFrame that are not numbers are named in the error, and values
        whose squares overflow the compute dtype are rejected
        (:func:`check_input_scale`).
        """
        if self._streams_input and is_streamed(X):
            return self._validate_streamed(X, reset=reset)
        X, images = self._flatten_images(X, reset=reset)
        try:
            X_checked = validate_data(
                self,
                X,
                reset=reset,
                dtype=[np.float64, np.float32],
                ensure_min_samples=self._min_samples if reset else 1,
            )
        except ValueError:
            bad = _non_numeric_columns(X)
            if not bad:
                raise
            shown = ", ".join(f"{c!r} (e.g. {v!r})" for c, v in list(bad.items())[:5])
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            raise ValueError(
                f"X has non-numeric columns: {shown}{more}; encode them as numbers or drop them."
            ) from None
        check_input_scale(X_checked, self._compute_dtype or X_checked.dtype)
        if reset and self._takes_images:
            self.image_shape_ = self._fit_image_shape(images, X_checked.shape[1])
        return X_checked

    def _validate_streamed(self, X, *, reset):
        """Validate a streamed source (:mod:`skmic._data`); return it as a :class:`StreamedArray`.

        Its dtype must be numeric and its rows of one shape (images as in
        :meth:`_flatten_images`); ``n_features_in_`` is recorded or checked
        as for an array. ``fit`` reads every row once to check that it is
        finite and to check the scale of the values
        (:func:`check_input_scale`); the inference methods check each batch
        they read.
        """
        source = StreamedArray(X)
        n, d = source.shape
        images = None
        if source.ndim > 2:
            images = self._image_rows_shape((n,) + source.row_shape, reset=reset)
        # n_features_in_ and feature names, with scikit-learn's own rules and messages
        validate_data(self, np.empty((0, d)), reset=reset, ensure_min_samples=0)
        minimum = self._min_samples if reset else 1
        if n < minimum:
            raise ValueError(
                f"Found array with {n} sample(s) (shape={(n,) + source.row_shape}) while a minimum of "
                f"{minimum} is required by {type(self).__name__}."
            )
        if reset:
            source.scan()
            check_input_scale(source, self._compute_dtype or source.dtype)
            if self._takes_images:
                self.image_shape_ = self._fit_image_shape(images, d)
        return source

    def _flatten_images(self, X, *, reset):
        """Images as flat rows: ``(X_flat, (C, H, W))``; 2-D input is returned as is, with None.

        The one rule: a 3-D array is ``(n, H, W)`` (one channel) and a 4-D
        array is ``(n, C, H, W)``, channels first, as torch lays images out.
        A 4-D array that looks channels-last (``(n, H, W, C)`` with C of 1,
        3 or 4 and a larger second axis) is refused rather than guessed.
        """
        ndim = getattr(X, "ndim", None)
        if ndim is None or ndim <= 2:
            return X, None
        shape = self._image_rows_shape(tuple(X.shape), reset=reset)
        X = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
        return X.reshape(len(X), int(np.prod(shape))), shape  # (also with no rows)

    def _image_rows_shape(self, X_shape, *, reset):
        """``(C, H, W)`` of images in an array of shape ``X_shape`` (:meth:`_flatten_images`'s rule)."""
        ndim = len(X_shape)
        name = type(self).__name__
        if not self._takes_images:
            raise ValueError(
                f"{name} takes 2-D input (n_samples, n_features), got an array of shape "
                f"{X_shape}; flatten it with X.reshape(len(X), -1)."
            )
        if ndim > 4:
            raise ValueError(
                f"{name} takes images as (n, H, W) or (n, C, H, W) arrays (or flat rows with "
                f"image_shape), got {ndim} dimensions: shape {X_shape}."
            )
        shape = tuple(int(s) for s in ((1,) + X_shape[1:] if ndim == 3 else X_shape[1:]))
        if min(shape) == 0:
            raise ValueError(f"{name} got images of shape {shape} (channels, height, width): an axis is empty.")
        if ndim == 4 and shape[2] in (1, 3, 4) and shape[0] not in (1, 3, 4):
            raise ValueError(
                f"{name} reads 4-D input as (n, channels, height, width), and X of shape "
                f"{X_shape} looks channels-last (n, height, width, channels); pass "
                "X.transpose(0, 3, 1, 2) (or flat rows with image_shape)."
            )
        fitted = getattr(self, "image_shape_", None)
        if not reset and not self._fixed_image_size and fitted is not None:
            if shape[0] != fitted[0]:
                raise ValueError(
                    f"X has {shape[0]} channels per image, but {name} was fitted on images with "
                    f"{fitted[0]}."
                )
        elif not reset and shape != fitted:
            raise ValueError(
                f"X holds images of shape {shape} (channels, height, width), but {name} was fitted on "
                + (f"images of shape {fitted}." if fitted else "tabular data (2-D X without image_shape).")
            )
        return shape

    def _fit_image_shape(self, images, n_features):
        """``image_shape_``: the shape of n-D training images, else the ``image_shape`` parameter's.

        Raises ValueError when both are given and differ, or when the
        parameter does not fit the flat rows.
        """
        declared = check_image_shape(self.image_shape, n_features)
        if images is not None and declared is not None and declared != images:
            raise ValueError(
                f"image_shape={self.image_shape!r} contradicts X, which holds images of shape "
                f"{images} (channels, height, width); drop image_shape or reshape X."
            )
        return images or declared

    def _check_fit_data(self, X):
        """Data-dependent parameter checks (e.g. ``n_clusters`` vs samples)."""

    def _auto_defaults(self, X):
        """``{parameter: value}``: what each parameter that may be "auto" becomes on ``X``.

        The estimator's table of data-dependent defaults, in one place;
        each estimator documents it in its docstring.
        """
        return {}

    def _resolve_defaults(self, X):
        """Set ``<name>_`` for every parameter of :meth:`_auto_defaults`.

        To the parameter's value, or to the table's choice for ``X`` when it
        is "auto", so that the fitted estimator shows what ran.
        """
        for name, choice in self._auto_defaults(X).items():
            given = getattr(self, name)
            setattr(self, name + "_", choice if isinstance(given, str) and given == "auto" else given)

    # ---------------------------------------------------------------- fitting
    def _fit_seed(self):
        """An int seed drawn from ``random_state`` (as scikit-learn does); rank 0's in a distributed fit."""
        return distributed.broadcast_seed(int(check_random_state(self.random_state).randint(2**31 - 1)))

    @fit_context
    def fit(self, X, y=None):
        """Fit the estimator on ``X``.

        A fit is all or nothing (:meth:`_fit_transaction`), with one
        exception: a KeyboardInterrupt while the networks train stops
        training and keeps the model trained so far, with a
        :class:`~skmic.exceptions.TrainingInterruptedWarning` (``n_iter_``
        tells how far it got); one before the first epoch ends, or outside
        training, leaves the estimator as it was. With ``warm_start=True``
        (the estimators that have it) a fitted estimator trains on from its
        fitted model (:meth:`_fit_warm`) instead of starting over.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Training data. It is not modified. The estimators that take
            images also accept arrays of shape (n_samples, H, W) and
            (n_samples, C, H, W) (:meth:`_flatten_images`). With
            ``warm_start=True`` it must have the fitted features.
            IICClustering, DECClustering, DeepInfoMaxEmbedder and
            KMeansBaseline also take a numpy memmap, an HDF5 or zarr array,
            or an object with ``__len__`` and ``__getitem__`` over rows, and
            read it in batches, never as a whole (:mod:`skmic._data`; the
            user guide's "Data larger than memory").
        y : Ignored
            Present for API consistency.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        with self._fit_transaction():
            warm = bool(getattr(self, "warm_start", False)) and hasattr(self, "_network_config_fitted")
            X = self._validate_input(X, reset=not warm)
            distributed.check_same_shape(X.shape)
            self.world_size_ = distributed.world_size()
            self._resolve_defaults(X)
            if warm:
                self._check_warm_start()
            self._check_fit_data(X)
            if not warm:  # a warm start trains on where the fitted networks are
                self.device_ = resolve_device(self.device)
            control = TrainingControl(getattr(self, "callbacks", None), lambda: self._fingerprint(X, warm))
            self._training_control = control  # read by _train_options, for this fit only
            try:
                with seeded(self._fit_seed(), self.device_), kept_heap():
                    (self._fit_warm if warm else self._fit)(X)
            finally:
                del self._training_control
            if control.interrupted:
                self._keep_interrupted(control)
            self._check_fit_result(X)
            self._network_config_fitted = self._network_config()
            if not control.interrupted:
                control.finish()
        return self

    #: parameters that shape the fitted networks (their resolved ``<name>_``
    #: where there is one); a warm start needs them unchanged
    _network_params = ()

    def _network_config(self):
        def plain(value):
            return tuple(value) if isinstance(value, list) else value

        return {name: plain(getattr(self, name + "_", getattr(self, name))) for name in self._network_params}

    def _check_warm_start(self):
        """Raise a ValueError if a parameter that shapes the fitted networks changed."""
        for name, value in self._network_config().items():
            fitted = self._network_config_fitted[name]
            if value != fitted:
                raise ValueError(
                    f"warm_start=True trains on the fitted network, which has {name}={fitted!r}, but "
                    f"{name} is now {value!r}; set it back, or fit with warm_start=False to start over."
                )

    def _fit_warm(self, X):  # pragma: no cover - the estimators with warm_start implement it
        raise NotImplementedError

    def _keep_interrupted(self, control):
        """After a KeyboardInterrupt in training: keep the model, or (before any epoch) re-raise."""
        if control.n_epochs == 0:
            raise KeyboardInterrupt
        more = (
            "fit again with warm_start=True to train it further" if hasattr(self, "warm_start")
            else "fit again to train a new one"
        )
        warnings.warn(
            f"{type(self).__name__}'s training was interrupted (KeyboardInterrupt) after "
            f"{control.n_epochs} epoch(s); the model trained so far is kept (n_iter_={getattr(self, 'n_iter_', 0)}); "
            f"{more}.",
            TrainingInterruptedWarning,
        )

    def _fingerprint(self, X, warm):
        """What identifies this fit for a checkpoint: class, plain parameters, data, starting state."""
        params = {
            name: value for name, value in self.get_params(deep=False).items()
            if name not in ("callbacks", "verbose", "device")
            and (value is None or isinstance(value, (str, numbers.Number, tuple, list)))
        }
        if isinstance(X, StreamedArray):
            sha = hashlib.sha1()
            for _, rows in X.chunks():
                sha.update(np.ascontiguousarray(rows).view(np.uint8))
            digest = sha.hexdigest()
        else:
            digest = hashlib.sha1(np.ascontiguousarray(X).view(np.uint8)).hexdigest()
        start = self.n_iter_ if warm else None
        return f"{type(self).__name__} {sorted(params.items())!r} {X.shape} {digest} {start}"

    @contextlib.contextmanager
    def _fit_transaction(self):
        """Make a fit all or nothing: on any exception, restore ``vars(self)``.

        Whatever ends the block -- an error, a failed check, a
        ``KeyboardInterrupt`` -- the estimator is left exactly as it was
        before: the previous fitted model intact (``n_features_in_`` and
        ``feature_names_in_`` included) or, on a first fit, unfitted. The
        snapshot is shallow: ``_fit`` replaces fitted objects, it never
        modifies the previous ones. This is the one place that decides what
        a fit that did not finish leaves behind.
        """
        before = dict(vars(self))
        try:
            yield
        except BaseException:
            vars(self).clear()
            vars(self).update(before)
            raise

    def _check_fit_result(self, X):
        """Check the fitted model before ``fit`` returns it.

        Raises :class:`~skmic.exceptions.TrainingDivergedError` (a
        ValueError) if a fitted attribute, or an output of the methods in
        ``_checked_outputs`` on up to 1024 evenly spaced training rows,
        holds NaN or infinity. Warns if those outputs are the same for every
        row although the rows differ: the model ignores its input (one code
        for all, the same probabilities for all -- unless they are one-hot,
        a collapse into one cluster that says nothing about the input).
        """
        name = type(self).__name__
        advice = (
            "rescale X (e.g. with sklearn.preprocessing.StandardScaler) or, for the networks, "
            "lower learning_rate"
        )
        for attribute, value in vars(self).items():
            if attribute.endswith("_") and not attribute.startswith("_") and _is_float_data(value):
                if not np.isfinite(value).all():
                    raise TrainingDivergedError(
                        f"{name}.{attribute} holds NaN or infinity after fitting: the arithmetic "
                        f"overflowed or training diverged; {advice}."
                    )
        methods = [m for m in self._checked_outputs if hasattr(self, m)]
        if not methods:
            return
        rows = take_rows(X, np.unique(np.linspace(0, len(X) - 1, min(len(X), _CHECKED_ROWS)).astype(int)))
        if hasattr(self, "feature_names_in_"):
            import pandas as pd

            rows = pd.DataFrame(rows, columns=self.feature_names_in_)
        for method in methods:
            out = np.asarray(getattr(self, method)(rows))
            if not np.isfinite(out).all():
                raise TrainingDivergedError(
                    f"{name}.{method} gives NaN or infinity on the training data: the arithmetic "
                    f"overflowed or training diverged; {advice}."
                )
            one_hot = method == "predict_proba" and out[0].max() >= 1 - 1e-6
            if len(out) > 1 and not one_hot and _same_rows(out, rtol=1e-6) and not _same_rows(rows):
                warnings.warn(
                    f"{name}.{method} gives the same output for every training sample although the "
                    f"samples differ (largest magnitude of X: {_largest(X):.3g}): the "
                    f"fitted model ignores its input. Standardise X (e.g. with "
                    f"sklearn.preprocessing.StandardScaler); for the networks, also try another "
                    f"learning_rate or more epochs.",
                    UserWarning,
                )

    def _fit(self, X):  # pragma: no cover - abstract
        raise NotImplementedError

    def _make_generator(self):
        """A :class:`torch.Generator` on ``device_`` seeded from this fit's seed.

        Only meaningful inside ``_fit`` (where torch has been seeded from
        ``random_state``); each call returns a fresh generator in the same
        state, so independent streams should come from one generator.
        """
        return torch.Generator(self.device_).manual_seed(torch.initial_seed())

    # --------------------------------------------------------------- inference
    def _as_tensor(self, X):
        """A copy of a validated NumPy array on ``device_``, dtype kept."""
        return torch.tensor(X, device=self.device_)  # a copy: the caller's array is never shared

    def _rows(self, X, dtype=torch.float32, scale=None):
        """The rows of validated ``X`` on ``device_`` (:class:`skmic._data.Rows`).

        An in-memory array is copied to the device once; a streamed source
        is read a batch at a time.
        """
        return Rows(X, self.device_, dtype=dtype, scale=scale)

    def _batched(self, fn, X, batch_size=INFERENCE_BATCH_SIZE, dtype=torch.float32):
        """Apply ``fn`` to ``X`` in batches under ``no_grad``; return NumPy.

        Parameters
        ----------
        fn : callable
            Takes a tensor batch on ``device_`` and returns a tensor (or a
            tuple of tensors) whose first dimension is the batch.
        X : ndarray of shape (n_samples, n_features) or StreamedArray
        batch_size : int
        dtype : torch.dtype
            The dtype the batches are given to ``fn`` in.

        Notes
        -----
        Each batch's output is copied into one NumPy array per output,
        allocated at the first batch for all ``n_samples`` rows, rather than
        kept as a list of small tensors joined at the end: small blocks kept
        between the large temporary ones of every batch (the rows read, the
        activations) fragment the C heap, and the resident memory of a pass
        over a streamed source then grew with the number of rows (about
        1 kB per row for IIC's labels, see ``benchmarks/memory.py``).
        """
        outputs, single = None, False
        n = X.shape[0]
        # a pass inside fit (the training data's labels, features or assignments) has its progress bar
        verbose = self.verbose if hasattr(self, "_training_control") else 0
        with torch.no_grad():
            for start in progress_bar(range(0, n, batch_size), verbose, "inference", type(self).__name__):
                part = read_rows(X, start, start + batch_size)
                batch = torch.tensor(part, dtype=dtype, device=self.device_)
                result = fn(batch)
                single = not isinstance(result, tuple)
                parts = [r.cpu().numpy() for r in ((result,) if single else result)]
                if outputs is None:
                    outputs = [np.empty((n, *p.shape[1:]), dtype=p.dtype) for p in parts]
                for out, p in zip(outputs, parts):
                    out[start : start + len(p)] = p
        return outputs[0] if single else tuple(outputs)

    def _for_inference(self, module):
        """The module to run inference with, and the dtype to feed it.

        On the CPU a float64 copy of the module is used: float32 matrix
        kernels round differently for different batch sizes, so a sample's
        output would depend (in the last bits) on the batch it is predicted
        in. On accelerators the trained float32 module is used as is.
        """
        if self.device_.type == "cpu":
            return copy.deepcopy(module).double(), torch.float64
        return module, torch.float32

    def _infer(self, module, fn, X):
        """``fn(module, batch)`` over the rows of ``X``, batched, under no_grad.

        Uses the inference copy of ``module`` (see :meth:`_for_inference`)
        and feeds it batches in the matching dtype; returns NumPy.
        """
        module, dtype = self._for_inference(module)
        return self._batched(lambda x: fn(module, x), X, dtype=dtype)

    def _check_fitted_input(self, X):
        check_is_fitted(self)
        return self._validate_input(X, reset=False)

    # ---------------------------------------------------------------- pickling
    def __getstate__(self):
        state = dict(super().__getstate__())
        for name, value in state.items():
            if _holds_torch(value):
                state[name] = _TorchPayload(value)
        return state

    def __setstate__(self, state):
        state = dict(state)
        device = state.get("device_")
        if device is not None:
            try:
                device = resolve_device(device)
            except ValueError:  # trained on an accelerator this machine lacks
                device = torch.device("cpu")
            state["device_"] = device
        for name, value in state.items():
            if isinstance(value, _TorchPayload):
                state[name] = value.load(device or torch.device("cpu"))
        super().__setstate__(state)


def validate_params(estimator):
    """Check ``estimator``'s parameters against its constraints, as ``fit`` does first.

    Raises
    ------
    sklearn.utils._param_validation.InvalidParameterError
        A ValueError (and TypeError) naming the parameter.
    """
    estimator._validate_params()


def check_layer_sizes(name, sizes):
    """Raise a clear ValueError unless ``sizes`` holds positive ints."""
    if not all(isinstance(s, numbers.Integral) and s > 0 for s in sizes):
        raise ValueError(f"{name} must hold positive ints, got {sizes!r}.")


class SoftClusterMixin:
    """``predict`` as the most probable cluster of ``predict_proba``."""

    def predict(self, X):
        """Cluster of each sample: the argmax of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        return self.predict_proba(X).argmax(1)


class BaseDeepEstimator(BaseTorchEstimator):
    """Base of the estimators that train a network with :func:`skmic._training.train`.

    Adds the training parameters every such estimator has: ``batch_size``,
    ``max_epochs`` and ``learning_rate``.
    """

    _parameter_constraints = {
        **BaseTorchEstimator._parameter_constraints,
        "batch_size": [Interval(numbers.Integral, 2, None, closed="left")],
        "max_epochs": [Interval(numbers.Integral, 1, None, closed="left")],
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
    }

    #: the networks train in float32
    _compute_dtype = np.float32
    _checked_outputs = ("predict_proba", "transform")

    def _train_options(self):
        """Keyword arguments of :func:`skmic._training.train` common to all."""
        return dict(
            batch_size=self.batch_size,
            device=self.device_,
            verbose=self.verbose,
            desc="training",
            owner=type(self).__name__,
            control=getattr(self, "_training_control", None),
        )
