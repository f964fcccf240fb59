"""Dataset readers: verified reads of local files, clear errors otherwise."""

import gzip

import numpy as np
import pytest

from skmic.datasets import DatasetError, get_data_home, load_mnist, load_pendigits, load_usps

HAVE_DATA = (get_data_home() / "mnist" / "t10k-images-idx3-ubyte.gz").is_file()
needs_data = pytest.mark.skipif(not HAVE_DATA, reason="shared datasets not present (set SKMIC_DATA)")


def _write_idx(path, array, magic):
    header = magic.to_bytes(4, "big") + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def _fake_mnist(root, n=5, truncate=0):
    (root / "mnist").mkdir()
    images = np.random.default_rng(0).integers(0, 256, (n, 28, 28))
    _write_idx(root / "mnist" / "t10k-images-idx3-ubyte.gz", images, 0x803)
    _write_idx(root / "mnist" / "t10k-labels-idx1-ubyte.gz", np.arange(n) % 10, 0x801)
    if truncate:
        path = root / "mnist" / "t10k-images-idx3-ubyte.gz"
        with gzip.open(path) as f:
            data = f.read()
        with gzip.open(path, "wb") as f:
            f.write(data[:-truncate])
    return images


def test_reads_a_small_idx_file(tmp_path):
    images = _fake_mnist(tmp_path)
    bunch = load_mnist(tmp_path)
    assert bunch.data.shape == (5, 784) and bunch.data.dtype == np.float32
    np.testing.assert_allclose(bunch.data * 255, images.reshape(5, -1), atol=1e-4)
    assert bunch.target.tolist() == [0, 1, 2, 3, 4] and bunch.image_shape == (1, 28, 28)


def test_truncated_file_is_a_clear_error(tmp_path):
    _fake_mnist(tmp_path, truncate=100)
    with pytest.raises(DatasetError, match="truncated"):
        load_mnist(tmp_path)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte.gz not found"):
        load_mnist(tmp_path)
    with pytest.raises(DatasetError, match="pendigits.tra not found"):
        load_pendigits(tmp_path)


def test_bad_pendigits_file(tmp_path):
    (tmp_path / "pendigits").mkdir()
    (tmp_path / "pendigits" / "pendigits.tra").write_text("1,2,3\n4,5,6\n")
    with pytest.raises(DatasetError, match="17 integers"):
        load_pendigits(tmp_path, subset="train")


def test_bad_subset():
    with pytest.raises(ValueError, match="subset"):
        load_mnist(subset="validation")


@needs_data
def test_real_files():
    X, y = load_mnist(subset="test", return_X_y=True)
    assert X.shape == (10000, 784) and np.bincount(y)[0] == 980
    assert 0 <= X.min() and X.max() <= 1
    X, y = load_pendigits(return_X_y=True)
    assert X.shape == (10992, 16) and X.max() <= 1
    pytest.importorskip("h5py")
    X, y = load_usps(return_X_y=True)
    assert X.shape == (9298, 256) and np.bincount(y)[0] == 1194 + 359
