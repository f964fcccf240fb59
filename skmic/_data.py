"""Where the rows of ``X`` come from: memory, or a source streamed in batches.

skmic's estimators read their data by rows: the training loop draws
mini-batches of row indices, the full-data passes (IIC's head losses, DEC's
target distribution, k-means) and inference walk through the rows in order.
This module is the one place that turns those reads into float tensors on
the device, whatever holds the data:

* an in-memory array (NumPy, pandas, a list, ...), validated by scikit-learn
  as before and copied to the device once (:class:`Rows` over a tensor): the
  fast path;
* a *streamed source*, read a batch at a time and never as a whole
  (:class:`StreamedArray`): a :class:`numpy.memmap` (also a NumPy array whose
  memory is a mapped file, e.g. ``np.load(path, mmap_mode="r")``), an HDF5
  dataset (``h5py.Dataset``), a zarr array, or any object with ``__len__``
  and an ``__getitem__`` that returns rows (``obj[i]``: one row; ``obj[a:b]``
  or ``obj[index_array]``, when it supports them: several).

What is checked for a streamed source, since scikit-learn's ``validate_data``
needs the array in memory: its dtype is numeric (bool, int, unsigned or
float; a memmap of strings, objects, dates or complex numbers is refused
before any row is read); every batch read has the width (and image shape)
of the first row; every batch read is finite (NaN or infinity is a
ValueError naming the rows). ``fit`` reads the whole source once before
training (:meth:`StreamedArray.scan`) to check every row and the scale of
the values (see :func:`skmic._base.check_input_scale`); ``predict`` and the
other methods check each batch as they read it. Rows are converted the way
``validate_data`` converts them: float32 stays float32, every other numeric
dtype becomes float64; a streamed fit therefore computes exactly what the
fit on the same data in memory computes.

The pages of a memory-mapped file that a read touched count in the process's
resident memory until the kernel reclaims them; after every
:data:`RELEASE_BYTES` read from a shared (``mode`` "r", "r+" or "w+") memmap
(:data:`STORE_RELEASE_BYTES` read or written, for a :class:`RowStore`) they
are handed back (``madvise(MADV_DONTNEED)``: the file's contents stay in the
page cache, and nothing the caller sees changes), so that the resident
memory of a streamed fit does not grow with the file.

Per-sample results of a pass (labels, say) are written into one array
allocated for all the rows (:meth:`Rows.map_chunks`, and
``BaseTorchEstimator._batched`` for inference), never collected as a list of
per-chunk pieces: small blocks kept alive between the large temporary blocks
of every chunk fragment the C heap, and the resident memory grew by about
1 kB per row that way (``benchmarks/memory.py``).

Per-sample state of a streamed fit that grows with the number of samples
(DEC's embedding and target distribution, k-means' distances and labels) is
kept in a :class:`RowStore`: a tensor for in-memory data, a temporary file
(in :func:`tempfile.gettempdir`, deleted when the store is) for a streamed
source.
"""

import collections.abc
import math
import mmap
import numbers
import os
import tempfile
import weakref

import numpy as np
import torch

__all__ = ["Rows", "RowStore", "StreamedArray", "chunk_starts", "is_streamed", "read_rows", "take_rows"]

#: Bytes of float64 values per batch of a sequential pass over a streamed
#: source (the validation scan, inference reads are bounded by their batch size).
SCAN_BYTES = 1 << 24

#: Bytes read from a shared memmap after which its mapped pages are released.
RELEASE_BYTES = 1 << 26

#: The same for the temporary file of a :class:`RowStore`: smaller, so that the
#: pages of the per-sample state that a fit holds mapped (several stores at a
#: time, of tens of megabytes each at a million rows) do not grow with the
#: number of rows either.
STORE_RELEASE_BYTES = 1 << 22

#: Rows of a shared memmap read at random between two releases of its mapped pages.
RANDOM_ROWS = 16

#: Rows per read of :meth:`Rows.sample`.
SAMPLE_READ_ROWS = 1024

_NUMERIC_KINDS = "biuf"


def _mapping(array):
    """The :class:`mmap.mmap` under a NumPy array (or None) and whether it is shared."""
    a = array
    while a is not None:
        mm = getattr(a, "_mmap", None)
        if isinstance(mm, mmap.mmap):
            return mm, getattr(a, "mode", None) in ("r", "r+", "w+")
        if isinstance(a, mmap.mmap):
            return a, False  # its access mode is not known: never released
        a = getattr(a, "base", None)
    return None, False


def _is_pandas(X):
    return type(X).__module__.split(".")[0] == "pandas"


def is_streamed(X):
    """Whether ``X`` is read as a streamed source (True) or validated in memory (False).

    Raises
    ------
    TypeError
        If ``X`` is neither: a generator or iterator, a dict or other
        mapping, a set, or an object without rows.
    """
    if isinstance(X, np.ndarray):
        return X.ndim >= 2 and _mapping(X)[0] is not None
    if isinstance(X, (list, tuple, str, bytes, numbers.Number, torch.Tensor)) or X is None or _is_pandas(X):
        return False
    if hasattr(X, "format") and hasattr(X, "tocsr"):  # scipy.sparse: validate_data refuses it clearly
        return False
    array_like = all(hasattr(X, a) for a in ("shape", "dtype", "__getitem__"))
    if array_like and len(getattr(X, "shape", ())) >= 2:
        return True  # h5py.Dataset, zarr.Array, and the like
    if hasattr(X, "__array__") or hasattr(X, "__array_interface__"):
        return False
    if isinstance(X, (collections.abc.Mapping, collections.abc.Set)):
        raise TypeError(
            f"X must be an array-like of shape (n_samples, n_features) or an object with __len__ and "
            f"__getitem__ over rows, got a {type(X).__name__}: a mapping or set has no rows in order."
        )
    if hasattr(X, "__len__") and hasattr(X, "__getitem__"):
        return True
    raise TypeError(
        f"X must be an array-like of shape (n_samples, n_features), a numpy memmap, an HDF5 or zarr "
        f"array, or an object with __len__ and __getitem__ over rows; got a {type(X).__name__}"
        + (", which can only be read once (materialise it, e.g. np.asarray(list(X)))."
           if isinstance(X, collections.abc.Iterator) else ".")
    )


def chunk_starts(n_rows, rows_per_chunk):
    """``[(start, stop), ...]`` covering ``range(n_rows)`` in consecutive chunks."""
    step = max(1, int(rows_per_chunk))
    return [(s, min(s + step, n_rows)) for s in range(0, n_rows, step)]


def scan_rows(n_features):
    """Rows per chunk of a sequential pass: :data:`SCAN_BYTES` of float64 values."""
    return max(1, SCAN_BYTES // (8 * max(1, n_features)))


class StreamedArray:
    """A data source read in batches of rows, validated batch by batch.

    Parameters
    ----------
    data : numpy memmap, h5py.Dataset, zarr array or row-indexable object
        Rows of ``n_features`` values, or of images ``(H, W)`` or
        ``(C, H, W)``, which are read as flat rows.
    name : str, default="X"
        How errors name the data.

    Attributes
    ----------
    shape : tuple of int
        ``(n_samples, n_features)``, the rows flattened.
    row_shape : tuple of int
        The shape of one row as the source holds it.
    dtype : numpy dtype
        What rows are read as: float32 for float32 data, else float64.
    stats : dict or None
        After :meth:`scan`: ``largest`` (largest magnitude),
        ``log_norm_sq`` (log of the largest squared row norm, or -inf) and
        ``sum_sq`` (sum of squares, float64, in :func:`scan_rows` chunks).

    Raises
    ------
    ValueError
        If the source has no rows of at least one value, or a non-numeric dtype.
    """

    def __init__(self, data, name="X"):
        self.data, self.name = data, name
        shape = getattr(data, "shape", None)
        if shape is not None and not isinstance(data, np.ndarray) and not hasattr(data, "dtype"):
            shape = None
        n = int(shape[0]) if shape is not None else len(data)  # (zarr 3 arrays have no len)
        if shape is not None:
            row_shape, dtype = tuple(int(s) for s in shape[1:]), np.dtype(data.dtype)
        elif n == 0:
            raise ValueError(f"{name} has no rows, and no shape to tell its width.")
        else:
            first = np.asarray(data[0])
            row_shape, dtype = first.shape, first.dtype
        self._check_dtype(dtype)
        if len(row_shape) == 0:
            raise ValueError(
                f"The rows of {name} are scalars; {name} must hold rows of features (2-D: n_samples x n_features)."
            )
        self.row_shape = row_shape
        self.shape = (n, int(np.prod(row_shape)))
        self.dtype = np.dtype(np.float32) if dtype == np.float32 else np.dtype(np.float64)
        self.ndim = 1 + len(row_shape)
        self.stats = None
        self._mm, self._release = (_mapping(data) if isinstance(data, np.ndarray) else (None, False))
        self._unreleased, self.release_bytes = 0, RELEASE_BYTES
        self._take_mode = self._slice_mode = "native"
        if not isinstance(data, np.ndarray) and shape is None and n:  # a plain row-indexable object
            self._take_mode = "native" if self._probe(lambda: data[np.arange(min(n, 2))], min(n, 2)) else "rows"
            self._slice_mode = "native" if self._probe(lambda: data[0 : min(n, 2)], min(n, 2)) else "rows"

    def __len__(self):
        return self.shape[0]

    def __repr__(self):
        return f"StreamedArray({type(self.data).__name__}, shape={self.shape})"

    def _probe(self, read, count):
        try:
            return np.shape(np.asarray(read())) == (count, *self.row_shape)
        except Exception:  # the object does not index that way: read it row by row
            return False

    def _check_dtype(self, dtype):
        if dtype.kind not in _NUMERIC_KINDS:
            kind = "complex numbers" if dtype.kind == "c" else f"dtype {dtype}"
            raise ValueError(
                f"{self.name} holds {kind}, which is not a real number type; a streamed {self.name} "
                f"(e.g. a numpy memmap or HDF5 dataset) must hold bool, int or float values."
            )

    def _checked(self, batch, start, stop):
        """``batch`` as flat float rows, after checking dtype, shape and finiteness."""
        batch = np.asarray(batch)
        self._check_dtype(batch.dtype)
        where = f"rows {start} to {stop - 1}" if stop - start > 1 else f"row {start}"
        if batch.shape[1:] != self.row_shape:
            raise ValueError(
                f"{self.name}'s {where} have shape {batch.shape[1:]}, but its first row has shape "
                f"{self.row_shape}: every row of a streamed {self.name} must have the same shape."
            )
        out = batch.reshape(len(batch), self.shape[1]).astype(self.dtype)  # always a copy
        if not np.isfinite(out).all():
            bad = np.nonzero(~np.isfinite(out).all(1))[0]
            raise ValueError(
                f"Input {self.name} contains NaN or infinity (in {where} of the streamed input, e.g. "
                f"row {start + int(bad[0])} if read in order); remove or impute those values."
            )
        self._unreleased += batch.nbytes
        if self._release and self._unreleased >= self.release_bytes:
            self.release()
        return out

    def release(self):
        """Hand the memory-mapped pages read so far back to the kernel (shared memmaps only)."""
        self._unreleased = 0
        if self._release and hasattr(mmap, "MADV_DONTNEED"):
            try:
                self._mm.madvise(mmap.MADV_DONTNEED)
            except (OSError, ValueError):  # closed, or not supported here: nothing to release
                pass

    def read(self, start, stop):
        """Rows ``start`` to ``stop - 1`` (clipped to the data) as a 2-D array of :attr:`dtype`."""
        data, stop = self.data, min(stop, len(self))
        if self._slice_mode == "native":
            batch = data[start:stop]
        else:
            batch = self._stack(range(start, stop))
        return self._checked(batch, start, stop)

    def _stack(self, index):
        """The rows ``index`` read one by one, each checked for the shape of the first."""
        rows = []
        for i in index:
            row = np.asarray(self.data[int(i)])
            if row.shape != self.row_shape:
                raise ValueError(
                    f"{self.name}'s row {int(i)} has shape {row.shape}, but its first row has shape "
                    f"{self.row_shape}: every row of a streamed {self.name} must have the same shape."
                )
            rows.append(row)
        return np.stack(rows) if rows else np.empty((0, *self.row_shape))

    def take(self, index):
        """Rows ``index`` (any order, repeats allowed) as an array of :attr:`dtype`."""
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        if len(index) == 0:
            return np.empty((0, self.shape[1]), dtype=self.dtype)
        lo, hi = int(index.min()), int(index.max())
        if lo < 0 or hi >= len(self):
            raise IndexError(f"row index out of range for {self.name} with {len(self)} rows")
        if hi - lo + 1 == len(index) and np.all(np.diff(index) == 1):
            return self.read(lo, hi + 1)
        unique, inverse = np.unique(index, return_inverse=True)  # h5py reads increasing indices only
        data = self.data
        if isinstance(data, np.ndarray) and self._release:
            # a page fault on a mapped file may map a whole large folio around the row (up to
            # megabytes): rows read at random are read a few at a time, the mapping released after each
            parts = []
            for g in range(0, len(unique), RANDOM_ROWS):
                parts.append(data[unique[g : g + RANDOM_ROWS]])
                self.release()
            batch = np.concatenate(parts)
        elif isinstance(data, np.ndarray):
            batch = data[unique]
        elif self._take_mode == "rows":
            batch = self._stack(unique)
        elif hasattr(data, "oindex"):  # zarr
            batch = data.oindex[unique]
        else:
            batch = data[unique]
        return self._checked(batch, lo, hi + 1)[inverse]

    def chunks(self, rows_per_chunk=None):
        """Yield ``(start, rows)`` over all rows in order."""
        for start, stop in chunk_starts(len(self), rows_per_chunk or scan_rows(self.shape[1])):
            yield start, self.read(start, stop)

    def scan(self):
        """Read every row once: check it, and record :attr:`stats`; returns them."""
        largest, log_norm_sq, sum_sq = 0.0, -math.inf, 0.0
        for _, rows in self.chunks():
            if rows.size:
                top = float(np.max(np.abs(rows)))
                sum_sq += float(np.square(rows, dtype=np.float64).sum())
                if top > 0:
                    norm = float(np.square(rows / top, dtype=np.float64).sum(1).max())
                    log_norm_sq = max(log_norm_sq, 2 * math.log(top) + math.log(norm))
                largest = max(largest, top)
        self.release()
        self.stats = dict(largest=largest, log_norm_sq=log_norm_sq, sum_sq=sum_sq)
        return self.stats


def read_rows(X, start, stop):
    """Rows ``start`` to ``stop - 1`` of an in-memory array or a :class:`StreamedArray`."""
    return X.read(start, stop) if isinstance(X, StreamedArray) else X[start:stop]


def take_rows(X, index):
    """Rows ``index`` of an in-memory array or a :class:`StreamedArray`, as a NumPy array."""
    return X.take(index) if isinstance(X, StreamedArray) else X[np.asarray(index)]


def mean_square(X):
    """Mean of the squared entries of ``X`` (float64), summed in :func:`scan_rows` chunks.

    The same sum in memory and for a streamed source (whose scan computed it).
    """
    n, d = X.shape
    if n * d == 0:
        return 0.0
    if isinstance(X, StreamedArray):
        total = (X.stats or X.scan())["sum_sq"]
    else:
        total = sum(float(np.square(X[s:e], dtype=np.float64).sum()) for s, e in chunk_starts(n, scan_rows(d)))
    return total / (n * d)


class Rows:
    """The rows of a data set as float tensors on a device.

    What the training loop's step functions, the full-data passes and
    k-means index. Over an in-memory array the data is copied to the device
    once, and reads are views or gathers of that tensor; over a
    :class:`StreamedArray` every read goes to the source.

    Parameters
    ----------
    X : ndarray, Tensor or StreamedArray
    device : torch.device
    dtype : torch.dtype, default=torch.float32
        What the rows are converted to, after the source's own dtype.
    scale : float, default=None
        A factor the rows are multiplied by (after the conversion).
    """

    def __init__(self, X, device, dtype=torch.float32, scale=None):
        self.device, self.dtype, self.scale = torch.device(device), dtype, scale
        self.source = X if isinstance(X, StreamedArray) else None
        self.tensor = None
        if self.source is None:
            t = X if isinstance(X, torch.Tensor) else torch.tensor(X, device=self.device)  # a copy
            self.tensor = self._convert(t.to(self.device))
        self.shape = tuple(self.source.shape if self.source is not None else self.tensor.shape)

    @property
    def streamed(self):
        """Whether the rows are read from a streamed source."""
        return self.source is not None

    def __len__(self):
        return self.shape[0]

    def _convert(self, t):
        t = t.to(self.dtype)
        return t * self.scale if self.scale is not None else t

    def _from_numpy(self, a):
        return self._convert(torch.from_numpy(a).to(self.device))

    def rows(self, index):
        """The rows ``index`` (a LongTensor of any shape): a tensor of shape ``index.shape + (n_features,)``."""
        if self.tensor is not None:
            return self.tensor[index]
        flat = self.source.take(index.reshape(-1).cpu().numpy())
        return self._from_numpy(flat).reshape(*index.shape, self.shape[1])

    def sample(self, max_rows, generator):
        """At most ``max_rows`` rows as one tensor: all of them, or a random subset (in row order).

        The subset is drawn with ``generator`` (on its device); a streamed
        source is read :data:`SAMPLE_READ_ROWS` rows at a time.
        """
        index = torch.arange(len(self), device=generator.device)
        if len(self) > max_rows:
            index = torch.randperm(len(self), generator=generator, device=generator.device)[:max_rows].sort().values
        index = index.to(self.device)
        return torch.cat([self.rows(index[s:e]) for s, e in chunk_starts(len(index), SAMPLE_READ_ROWS)])

    def slice(self, start, stop):
        """Rows ``start`` to ``stop - 1`` (clipped to the data)."""
        stop = min(stop, len(self))
        if self.tensor is not None:
            return self.tensor[start:stop]
        return self._from_numpy(self.source.read(start, stop))

    def chunks(self, rows_per_chunk):
        """Yield ``(start, rows)`` over all rows in order, ``rows_per_chunk`` at a time."""
        for start, stop in chunk_starts(len(self), rows_per_chunk):
            yield start, self.slice(start, stop)

    def map_chunks(self, fn, rows_per_chunk):
        """``fn(rows)`` of every chunk of rows in order, joined into one tensor with a row per row.

        The result is allocated once, at the first chunk, and filled chunk by
        chunk: a per-sample result kept as a list of small per-chunk tensors
        between the large reads of a streamed pass fragments the C heap, and
        the resident memory then grows with the number of rows.
        """
        out = None
        for start, rows in self.chunks(rows_per_chunk):
            value = fn(rows)
            if out is None:
                out = torch.empty((len(self), *value.shape[1:]), dtype=value.dtype, device=value.device)
            out[start : start + len(value)] = value
        return out

    def store(self, n_columns, dtype=torch.float32, fill=0, n_rows=None):
        """A :class:`RowStore` of ``n_columns`` per row: in memory, or on disk for a streamed source.

        One row per row of the data, or ``n_rows`` (one per row of a rank's
        shard, :mod:`skmic._distributed`).
        """
        n_rows = len(self) if n_rows is None else n_rows
        return RowStore(n_rows, n_columns, dtype, self.device, on_disk=self.streamed, fill=fill)


_TORCH_TO_NUMPY = {torch.float32: np.float32, torch.float64: np.float64, torch.int64: np.int64,
                   torch.int32: np.int32, torch.int16: np.int16, torch.bool: np.bool_}


class RowStore(Rows):
    """Per-sample state (one row of ``n_columns`` values per sample) that a fit writes and reads.

    In memory, a tensor on the device. On disk (the per-sample state of a
    streamed fit, so that it does not grow the process's memory with the
    number of samples), a temporary ``.npy`` file read and written in
    batches; the file is deleted when the store is.

    Parameters
    ----------
    n_rows, n_columns : int
    dtype : torch.dtype
    device : torch.device
    on_disk : bool
    fill : number, default=0
        The initial value of every entry.
    """

    def __init__(self, n_rows, n_columns, dtype, device, on_disk, fill=0):
        self.device, self.dtype, self.scale = torch.device(device), dtype, None
        self.shape = (n_rows, n_columns)
        self.tensor = self.source = None
        if not on_disk:
            self.tensor = torch.full(self.shape, fill, dtype=dtype, device=self.device)
            return
        handle, path = tempfile.mkstemp(prefix="skmic-rows-", suffix=".npy")
        os.close(handle)
        self._finalizer = weakref.finalize(self, _remove, path)
        self._array = np.lib.format.open_memmap(path, mode="w+", dtype=_TORCH_TO_NUMPY[dtype], shape=self.shape)
        if fill != 0:
            for s, e in chunk_starts(n_rows, scan_rows(n_columns)):
                self._array[s:e] = fill
        self.source = StreamedArray(self._array, name="the fit's per-sample state")
        self.source.dtype = self._array.dtype  # read back as stored
        self.source.release_bytes = STORE_RELEASE_BYTES

    def write(self, start, values, columns=None):
        """Set rows ``start`` to ``start + len(values) - 1`` (of ``columns`` only, if given) to ``values``."""
        stop = start + len(values)
        values = values.to(self.dtype)
        if self.tensor is not None:
            if columns is None:
                self.tensor[start:stop] = values
            else:
                self.tensor[start:stop, columns] = values
            return
        values = values.detach().cpu().numpy()
        if columns is None:
            self._array[start:stop] = values
        else:
            self._array[start:stop, np.asarray(columns.cpu())] = values
        self.source._unreleased += values.nbytes
        if self.source._unreleased >= self.source.release_bytes:
            self.source.release()

    def column(self, j):
        """Column ``j`` of every row, as a tensor (in memory: for per-sample outputs such as labels)."""
        if self.tensor is not None:
            return self.tensor[:, j].clone()
        return self.map_chunks(lambda rows: rows[:, j], scan_rows(self.shape[1]))


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass
