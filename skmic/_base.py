"""The shared base of skmic's torch-backed estimators.

Everything that every estimator does the same way lives here, once: the common
parameters and their constraints, input validation, the device policy, seeding
without touching global random state, batched no-grad inference, a fit skeleton
that leaves the estimator unfitted when training fails, and pickling that stores
torch objects so that a model trained on a GPU loads on a CPU-only machine.

The private scikit-learn helpers (``validate_data``, ``_fit_context`` and the
parameter-constraint types) are imported here and nowhere else.
"""

import contextlib
import copy
import io
import numbers

import numpy as np
import torch
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = [
    "BaseTorchEstimator",
    "BaseDeepEstimator",
    "check_image_shape",
    "check_layer_sizes",
    "SoftClusterMixin",
    "Interval",
    "StrOptions",
    "fit_context",
    "resolve_device",
]

#: ``@fit_context`` wraps every public ``fit``: it validates the parameters
#: against ``_parameter_constraints`` before anything else runs.
fit_context = _fit_context(prefer_skip_nested_validation=True)

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


class BaseTorchEstimator(BaseEstimator):
    """Base of every skmic estimator that computes with torch.

    Subclasses implement ``_fit(X)`` where ``X`` is the validated input as a
    NumPy array. The base class validates the input, resolves ``device_``,
    seeds torch from ``random_state`` (restoring the global RNG afterwards)
    and, if ``_fit`` raises, removes whatever fitted attributes it had set.

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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags

    # ----------------------------------------------------------- validation
    def _validate_input(self, X, *, reset):
        """Validate ``X`` as a finite 2-D float array (float64 or float32).

        On ``reset=True`` (fit) this records ``n_features_in_`` and
        ``feature_names_in_``; otherwise it checks them.
        """
        return validate_data(
            self,
            X,
            reset=reset,
            dtype=[np.float64, np.float32],
            ensure_min_samples=self._min_samples if reset else 1,
        )

    def _check_fit_data(self, X):
        """Data-dependent parameter checks (e.g. ``n_clusters`` vs samples)."""

    # ---------------------------------------------------------------- fitting
    def _fit_seed(self):
        """An int seed drawn from ``random_state`` (as scikit-learn does)."""
        return int(check_random_state(self.random_state).randint(2**31 - 1))

    @fit_context
    def fit(self, X, y=None):
        """Fit the estimator on ``X``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Training data. It is not modified.
        y : Ignored
            Present for API consistency.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        before = set(vars(self))
        try:
            X = self._validate_input(X, reset=True)
            self._check_fit_data(X)
            self.device_ = resolve_device(self.device)
            with seeded(self._fit_seed(), self.device_):
                self._fit(X)
        except BaseException:
            # leave no half-fitted state: what this fit added, and every fitted attribute
            for name in [n for n in vars(self) if n not in before or (n.endswith("_") and not n.startswith("_"))]:
                delattr(self, name)
            raise
        return self

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

    def _batched(self, fn, X, batch_size=INFERENCE_BATCH_SIZE, dtype=torch.float32):
        """Apply ``fn`` to ``X`` in batches under ``no_grad``; return NumPy.

        Parameters
        ----------
        fn : callable
            Takes a tensor batch on ``device_`` and returns a tensor (or a
            tuple of tensors) whose first dimension is the batch.
        X : ndarray of shape (n_samples, n_features)
        batch_size : int
        dtype : torch.dtype
            The dtype the batches are given to ``fn`` in.
        """
        outputs = []
        with torch.no_grad():
            for start in range(0, X.shape[0], batch_size):
                batch = torch.tensor(X[start : start + batch_size], dtype=dtype, device=self.device_)
                outputs.append(fn(batch))
        if isinstance(outputs[0], tuple):
            return tuple(torch.cat(parts).cpu().numpy() for parts in zip(*outputs))
        return torch.cat(outputs).cpu().numpy()

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

    def _train_options(self):
        """Keyword arguments of :func:`skmic._training.train` common to all."""
        return dict(
            batch_size=self.batch_size,
            device=self.device_,
            verbose=self.verbose,
            desc=type(self).__name__,
        )
