"""The shared base: device policy, validation, seeding, pickling, fit failure."""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone

from skmic import KMeansBaseline
from skmic._base import check_image_shape, resolve_device


def test_resolve_device():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ValueError, match="not a valid device"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_bad_device_parameter_is_a_clear_error(blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match="not a valid device"):
        KMeansBaseline(3, device="quantum").fit(X)
    assert not hasattr(KMeansBaseline(3, device="quantum"), "device_")


def test_check_image_shape():
    assert check_image_shape((8, 8), 64) == (1, 8, 8)
    assert check_image_shape((3, 4, 4), 48) == (3, 4, 4)
    assert check_image_shape(None, 10) is None
    with pytest.raises(ValueError, match="holds 64 values but X has 60"):
        check_image_shape((8, 8), 60)
    with pytest.raises(ValueError, match="positive ints"):
        check_image_shape((1, 2, 3, 4), 24)


BAD_INPUTS = [
    (np.array([[0.0, np.nan], [1.0, 2.0], [3, 4]]), ValueError, "NaN"),
    (np.array([[0.0, np.inf], [1.0, 2.0], [3, 4]]), ValueError, "infinity"),
    (np.arange(6.0), ValueError, "2D array"),
    (np.zeros((3, 2, 2)), ValueError, "dim 3"),
    (np.array([["a", "b"], ["c", "d"], ["e", "f"]]), ValueError, "convert"),
    (np.zeros((0, 3)), ValueError, "0 sample"),
    (np.zeros((3, 0)), ValueError, "0 feature"),
]


@pytest.mark.parametrize("X, error, match", BAD_INPUTS)
def test_bad_input_messages(X, error, match):
    with pytest.raises(error, match=match):
        KMeansBaseline(2, device="cpu").fit(X)


def test_n_clusters_larger_than_samples():
    with pytest.raises(ValueError, match="n_samples=3 should be >= n_clusters=5"):
        KMeansBaseline(5, device="cpu").fit(np.random.rand(3, 2))


def test_wrong_number_of_features_at_predict(blobs):
    X, _ = blobs
    km = KMeansBaseline(3, device="cpu", random_state=0).fit(X)
    with pytest.raises(ValueError, match="features"):
        km.predict(X[:, :2])


def test_input_is_not_modified(blobs):
    X, _ = blobs
    X = np.asfortranarray(X)
    before = X.copy()
    km = KMeansBaseline(3, device="cpu", random_state=0).fit(X)
    km.predict(X)
    km.transform(X)
    np.testing.assert_array_equal(X, before)
    assert X.flags.f_contiguous


def test_same_seed_same_labels_and_global_rng_untouched(blobs):
    X, _ = blobs
    torch.manual_seed(123)
    np.random.seed(7)
    expected_torch = torch.rand(3)
    expected_np = np.random.rand(3)
    torch.manual_seed(123)
    np.random.seed(7)
    a = KMeansBaseline(3, n_init=1, device="cpu", random_state=4).fit(X).labels_
    b = KMeansBaseline(3, n_init=1, device="cpu", random_state=4).fit(X).labels_
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(torch.rand(3), expected_torch)
    np.testing.assert_array_equal(np.random.rand(3), expected_np)


def test_clone_and_pickle_round_trip(blobs):
    X, _ = blobs
    km = KMeansBaseline(3, device="cpu", random_state=0).fit(X)
    again = pickle.loads(pickle.dumps(km))
    np.testing.assert_array_equal(again.predict(X), km.predict(X))
    assert again.device_ == torch.device("cpu")
    np.testing.assert_array_equal(clone(km).fit(X).labels_, km.labels_)


def test_pickle_of_torch_attributes_restores_them():
    """Torch modules and tensors pickle through bytes and come back on the device."""
    km = KMeansBaseline(2, device="cpu")
    km.device_ = torch.device("cpu")
    km.module_ = torch.nn.Linear(3, 2)
    km.buffers_ = [torch.arange(3), {"w": torch.ones(2)}]
    again = pickle.loads(pickle.dumps(km))
    assert isinstance(again.module_, torch.nn.Linear)
    torch.testing.assert_close(again.module_.weight, km.module_.weight)
    torch.testing.assert_close(again.buffers_[1]["w"], torch.ones(2))
    assert km.module_.weight.device.type == "cpu"


def test_dataframe_column_names_are_kept(blobs):
    X, _ = blobs
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    km = KMeansBaseline(3, device="cpu", random_state=0).fit(df)
    assert list(km.feature_names_in_) == list(df.columns)
    assert km.set_output(transform="pandas").transform(df).columns.tolist() == [
        "kmeansbaseline0", "kmeansbaseline1", "kmeansbaseline2"
    ]


def test_failed_fit_leaves_estimator_unfitted(blobs):
    X, _ = blobs
    km = KMeansBaseline(3, device="cpu", random_state=0).fit(X)
    with pytest.raises(ValueError):
        km.set_params(n_clusters=500).fit(X)
    assert not hasattr(km, "labels_") and not hasattr(km, "n_features_in_")
