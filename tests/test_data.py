"""Streamed data sources (skmic._data): memmaps, HDF5, zarr and row-indexable objects.

A fit on a streamed source must compute exactly what the fit on the same
data in memory computes (same seed, same labels, same outputs, bit for bit),
and bad sources must be refused with an error that names the problem.
"""

import gc
import os

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits, make_blobs

from skmic import DECClustering, DeepInfoMaxEmbedder, IICClustering, KMeansBaseline
from skmic._data import RowStore, StreamedArray, is_streamed


def _estimators():
    return [
        IICClustering(3, n_init=2, max_epochs=2, hidden_layer_sizes=(16,), random_state=0, device="cpu"),
        DECClustering(3, hidden_layer_sizes=(16,), n_components=2, pretrain_epochs=2, max_epochs=3,
                      kmeans_n_init=2, update_interval=3, random_state=0, device="cpu"),
        DeepInfoMaxEmbedder(n_components=3, max_epochs=2, hidden_layer_sizes=(16,), random_state=0, device="cpu"),
        KMeansBaseline(3, n_init=3, random_state=0, device="cpu"),
    ]


@pytest.fixture(scope="module")
def blobs32():
    X, _ = make_blobs(150, n_features=5, centers=3, random_state=0)
    return X.astype(np.float32)


def _memmap(tmp_path, X, name="x.npy"):
    path = tmp_path / name
    np.save(path, X)
    return np.load(path, mmap_mode="r")


class Rows:
    """A row-indexable object: ``__len__`` and ``__getitem__`` of one int, nothing else."""

    def __init__(self, X):
        self._X = X

    def __len__(self):
        return len(self._X)

    def __getitem__(self, i):
        if not isinstance(i, (int, np.integer)):
            raise TypeError("one row at a time")
        return list(self._X[i])


def _outputs(est, X):
    """Everything a fitted estimator says about ``X``."""
    out = {"transform": est.transform(X), "score": est.score(X)}
    for method in ("predict", "predict_proba"):
        if hasattr(est, method):
            out[method] = getattr(est, method)(X)
    return out


def _assert_same_fit(a, b, X_a, X_b):
    for name in ("labels_", "cluster_centers_", "head_losses_", "restart_losses_", "inertia_"):
        if hasattr(a, name):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert [r["loss"] for r in getattr(a, "history_", [])] == [r["loss"] for r in getattr(b, "history_", [])]
    for (name, x), y in zip(_outputs(a, X_a).items(), _outputs(b, X_b).values()):
        np.testing.assert_array_equal(x, y, err_msg=name)


@pytest.mark.parametrize("est", _estimators(), ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_memmap_fit_equals_in_memory_fit(est, dtype, blobs32, tmp_path, recwarn):
    X = blobs32.astype(dtype)
    M = _memmap(tmp_path, X)
    assert is_streamed(M) and not is_streamed(X)
    a = type(est)(**est.get_params()).fit(X)
    b = type(est)(**est.get_params()).fit(M)
    _assert_same_fit(a, b, X, M)
    assert b.n_features_in_ == X.shape[1]
    assert not hasattr(b, "feature_names_in_")
    assert b.transform(M).dtype == a.transform(X).dtype


@pytest.mark.parametrize("est", _estimators()[:2], ids=lambda e: type(e).__name__)
def test_row_indexable_object_and_hdf5(est, blobs32, tmp_path, recwarn):
    h5py = pytest.importorskip("h5py")
    a = type(est)(**est.get_params()).fit(blobs32)
    b = type(est)(**est.get_params()).fit(Rows(blobs32))
    _assert_same_fit(a, b, blobs32, Rows(blobs32))
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_dataset("X", data=blobs32, chunks=(16, 5))
    with h5py.File(tmp_path / "x.h5", "r") as f:
        c = type(est)(**est.get_params()).fit(f["X"])
        _assert_same_fit(a, c, blobs32, f["X"])


def test_zarr_array(blobs32, recwarn):
    zarr = pytest.importorskip("zarr")
    z = zarr.create_array(store=zarr.storage.MemoryStore(), shape=blobs32.shape, chunks=(16, 5), dtype="f4")
    z[:] = blobs32
    est = _estimators()[0]
    a = type(est)(**est.get_params()).fit(blobs32)
    b = type(est)(**est.get_params()).fit(z)
    _assert_same_fit(a, b, blobs32, z)


def test_memmap_of_images(tmp_path, recwarn):
    X = load_digits().data[:120].reshape(-1, 8, 8)
    M = _memmap(tmp_path, X)
    params = dict(n_init=1, max_epochs=1, encoder="mlp", hidden_layer_sizes=(16,), random_state=0, device="cpu")
    a = IICClustering(4, **params).fit(X)
    b = IICClustering(4, **params).fit(M)
    assert b.image_shape_ == a.image_shape_ == (1, 8, 8)
    _assert_same_fit(a, b, X, M)
    with pytest.raises(ValueError, match="channels-last"):
        IICClustering(4, **params).fit(_memmap(tmp_path, np.zeros((5, 8, 8, 3)), "rgb.npy"))


@pytest.mark.parametrize("bad", [(x for x in [[1.0, 2.0]]), {"a": [1.0, 2.0]}, {1, 2}, object()],
                         ids=["generator", "dict", "set", "object"])
def test_unsupported_sources_are_a_type_error(bad):
    for est in _estimators():
        with pytest.raises(TypeError, match="X must be"):
            est.fit(bad)


@pytest.mark.parametrize("dtype", ["U3", object, "datetime64[s]", np.complex64])
def test_non_numeric_memmap_is_refused(dtype, tmp_path):
    X = np.zeros((10, 3), dtype=dtype)
    path = tmp_path / "x.npy"
    if dtype is object:  # no memmap of objects exists: a row-indexable object of them
        source = Rows(np.array([["a", 1, 2]] * 10, dtype=object))
    else:
        np.save(path, X)
        source = np.load(path, mmap_mode="r")
    with pytest.raises(ValueError, match="not a real number type"):
        KMeansBaseline(2).fit(source)


def test_nan_rows_in_a_streamed_source(blobs32, tmp_path):
    X = blobs32.copy()
    X[100] = np.nan
    M = _memmap(tmp_path, X)
    for est in _estimators():
        with pytest.raises(ValueError, match="NaN or infinity"):
            est.fit(M)
    fitted = KMeansBaseline(3, random_state=0, device="cpu").fit(blobs32)
    with pytest.raises(ValueError, match=r"contains NaN or infinity \(in rows"):
        fitted.predict(M)
    X[100] = np.inf
    with pytest.raises(ValueError, match="NaN or infinity"):
        IICClustering(3).fit(Rows(X))


def test_width_and_row_shape_are_checked(blobs32, tmp_path):
    fitted = KMeansBaseline(3, random_state=0, device="cpu").fit(blobs32)
    with pytest.raises(ValueError, match="X has 4 features, but KMeansBaseline is expecting 5"):
        fitted.predict(_memmap(tmp_path, blobs32[:, :4]))
    ragged = [[1.0, 2.0], [3.0, 4.0], [5.0]]
    with pytest.raises(ValueError, match=r"row 2 has shape \(1,\), but its first row has shape \(2,\)"):
        KMeansBaseline(2).fit(Rows(np.array(ragged, dtype=object)))
    with pytest.raises(ValueError, match="minimum of 2 is required"):
        IICClustering(1).fit(_memmap(tmp_path, blobs32[:1], "one.npy"))


def test_a_streamed_source_is_read_in_batches(monkeypatch):
    """Training reads mini-batches, the full-data passes and inference chunks: never every row at once."""
    import skmic._data as data

    X, _ = make_blobs(5000, n_features=4, centers=3, random_state=0)
    monkeypatch.setattr(data, "SCAN_BYTES", 8 * 4 * 100)  # the scan: 100 rows a chunk (of 4 float64 values)
    takes, reads = [], []
    real_take, real_read = StreamedArray.take, StreamedArray.read

    def take(self, idx):  # the reads of X; the fit's own per-sample state on disk is read in chunks of bounded bytes
        if self.name == "X":
            takes.append(len(idx))
        return real_take(self, idx)

    def read(self, s, e):
        if self.name == "X":
            reads.append(min(e, len(self)) - s)
        return real_read(self, s, e)

    monkeypatch.setattr(StreamedArray, "take", take)
    monkeypatch.setattr(StreamedArray, "read", read)
    est = IICClustering(3, n_init=1, max_epochs=1, batch_size=256, hidden_layer_sizes=(8,), random_state=0,
                        device="cpu")
    est.fit(Rows(X)).predict(Rows(X))
    assert takes.count(256) >= len(X) // 256 - 1  # the training batches
    assert max(takes) <= 1024  # and the rows on which fit checks the fitted model
    assert reads and max(reads) <= 4096 < len(X)  # the scan, the head losses, labels_, predict


def test_the_callers_memmap_is_untouched(blobs32, tmp_path, recwarn):
    M = _memmap(tmp_path, blobs32)
    before = np.array(M)
    for est in _estimators():
        est.fit(M).transform(M)
    np.testing.assert_array_equal(np.asarray(M), before)


def test_row_store_on_disk_is_deleted_with_it():
    store = RowStore(10, 3, torch.float32, "cpu", on_disk=True, fill=-1)
    path = store._array.filename
    assert os.path.exists(path)
    store.write(2, torch.ones(3, 3))
    assert store.slice(0, 5)[:, 0].tolist() == [-1, -1, 1, 1, 1]
    del store
    gc.collect()
    assert not os.path.exists(path)


def _rss_file_kb():
    for line in open("/proc/self/status"):
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    pytest.skip("no RssFile in /proc/self/status")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux's /proc")
def test_pages_of_a_memmap_are_released(tmp_path):
    """Streamed reads hand the mapped pages back: resident memory does not grow with the file."""
    X = np.ones((250_000, 100), dtype=np.float32)  # 100 MB
    M = _memmap(tmp_path, X)
    del X
    before = _rss_file_kb()
    StreamedArray(M).scan()
    assert _rss_file_kb() - before < 40_000  # without the release: + 100,000 kB
    np.asarray(M).sum()  # the same pages read through the mapping itself stay resident
    assert _rss_file_kb() - before > 90_000


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux's /proc")
def test_pages_of_a_row_store_are_released():
    """A fit's per-sample store hands its mapped pages back too, long before the 64 MB of a data source."""
    store = RowStore(1_000_000, 10, torch.float32, "cpu", on_disk=True)  # 40 MB: a million rows of DEC's P
    before, most = _rss_file_kb(), 0
    for start in range(0, len(store), 50_000):
        store.write(start, torch.ones(50_000, 10))
        most = max(most, _rss_file_kb() - before)
    for _ in store.chunks(50_000):
        most = max(most, _rss_file_kb() - before)
    assert most < 12_000  # released after every 64 MB only (as a data source's pages): + 40,000 kB


def _results_kept_alive(run):
    """How many of the per-batch results of ``run(fn)`` were still alive when the next-but-one batch came."""
    results, alive = [], []

    def fn(x):
        alive.append(sum(r() is not None for r in results[:-1]))
        out = x[:, 0] * 2
        results.append(__import__("weakref").ref(out))
        return out

    return run(fn), alive


def test_per_batch_results_are_not_kept(blobs32):
    """Inference and chunked passes copy each batch's result into one array and drop it.

    Small per-batch blocks kept until the end, between the large temporary
    blocks of each batch, fragment the C heap: a streamed fit's memory grew
    by about 1 kB a row that way (benchmarks/memory.py).
    """
    from skmic._data import Rows as DataRows

    est = KMeansBaseline(3, n_init=1, random_state=0, device="cpu").fit(blobs32)
    X = np.tile(blobs32, (10, 1))
    out, alive = _results_kept_alive(lambda fn: est._batched(fn, X, batch_size=100))
    np.testing.assert_array_equal(out, X[:, 0] * 2)
    assert len(alive) == 15 and max(alive) == 0
    rows = DataRows(X, "cpu")
    out, alive = _results_kept_alive(lambda fn: rows.map_chunks(fn, 100))
    np.testing.assert_array_equal(out.numpy(), X[:, 0] * 2)
    assert len(alive) == 15 and max(alive) == 0
