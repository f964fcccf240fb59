"""The shared base: device policy, validation, seeding, pickling, fit failure."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import adjusted_rand_score

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
    (np.zeros((3, 2, 2)), ValueError, "takes 2-D input"),
    (np.array([["a", "b"], ["c", "d"], ["e", "f"]]), ValueError, "convert"),
    (np.zeros((0, 3)), ValueError, "0 sample"),
    (np.zeros((3, 0)), ValueError, "0 feature"),
]


def test_non_numeric_dataframe_columns_are_named():
    df = pd.DataFrame({"a": [1.0, 2, 3], "name": ["x", "y", "z"], "b": pd.Series([1, 2, 3], dtype=object),
                       "when": pd.Categorical(["u", "v", "u"])})
    with pytest.raises(ValueError, match=r"non-numeric columns: 'name' \(e.g. 'x'\), 'when' \(e.g. 'u'\);"):
        KMeansBaseline(2, device="cpu").fit(df)
    KMeansBaseline(2, device="cpu").fit(df[["a", "b"]])  # numbers in an object column are numbers


def test_images_without_rows_are_a_clear_error():
    from skmic import DeepInfoMaxEmbedder

    with pytest.raises(ValueError, match="0 sample"):
        DeepInfoMaxEmbedder(device="cpu").fit(np.zeros((0, 4, 4)))


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


def _interrupting_perturbation(after):
    """A user perturbation that presses Ctrl-C on its ``after``-th call (the probe is call 1)."""
    calls = []

    def g(x, generator):
        calls.append(1)
        if len(calls) >= after:
            raise KeyboardInterrupt
        return x

    return g


def test_failed_refit_keeps_the_previous_model(blobs):
    X, _ = blobs
    df = pd.DataFrame(X, columns=list("abcd"))
    km = KMeansBaseline(3, device="cpu", random_state=0).fit(df)
    before = dict(vars(km))
    labels, names = km.predict(df), km.get_feature_names_out()
    for bad in [np.vstack([X[:5], [[np.nan] * 4]]), X[:2], X[:, :2] * 1e200]:
        with pytest.raises(ValueError):
            km.fit(bad)  # fails in validation, in _check_fit_data, in the scale check
        assert vars(km).keys() == before.keys()
        assert all(vars(km)[k] is v for k, v in before.items())
        np.testing.assert_array_equal(km.predict(df), labels)
        assert list(km.get_feature_names_out()) == list(names) and list(km.feature_names_in_) == list("abcd")


def test_interrupted_fit_restores_the_estimator(blobs):
    from skmic import IICClustering

    X, _ = blobs
    iic = IICClustering(3, n_heads=1, n_init=1, max_epochs=2, hidden_layer_sizes=(8,), device="cpu", random_state=0)
    with pytest.raises(KeyboardInterrupt):  # a first fit: left unfitted, nothing added
        iic.set_params(perturbation=_interrupting_perturbation(3)).fit(X)
    assert set(vars(iic)) == set(iic.get_params())
    df = pd.DataFrame(X, columns=list("abcd"))
    iic.set_params(perturbation="tabular").fit(df)
    before, proba = dict(vars(iic)), iic.predict_proba(df)
    with pytest.raises(KeyboardInterrupt):  # a refit: the previous model is kept whole
        iic.set_params(perturbation=_interrupting_perturbation(3)).fit(X[:, :3])
    assert vars(iic).keys() == before.keys()
    assert all(vars(iic)[k] is v for k, v in before.items() if k != "perturbation")
    np.testing.assert_array_equal(iic.predict_proba(df), proba)
    assert iic.n_features_in_ == 4 and list(iic.feature_names_in_) == list("abcd")


# ------------------------------------------------------ numerical guards
def test_check_input_scale_limits():
    from skmic._base import check_input_scale

    ok = np.ones((1000, 10))
    check_input_scale(ok * 4e16, np.float32)
    check_input_scale(ok * 2e-19, np.float32)
    check_input_scale(ok * 1e150, np.float64)
    check_input_scale(np.zeros((3, 2)), np.float32)  # all zeros: nothing to overflow
    with pytest.raises(ValueError, match="too large for float32.*largest magnitude is 1e\\+17"):
        check_input_scale(ok * 1e17, np.float32)
    with pytest.raises(ValueError, match="too large for float64"):
        check_input_scale(ok * 1e153, np.float64)
    with pytest.raises(ValueError, match="too small for float32.*StandardScaler"):
        check_input_scale(ok * 1e-20, np.float32)
    # the exact row norms decide near the limit: one large value is not d large values
    one = np.zeros((1000, 10))
    one[0, 0] = 1.3e17
    check_input_scale(one, np.float32)


def test_kmeans_on_extreme_magnitudes_is_exact_or_an_error(blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match="too large for float64"):
        KMeansBaseline(3, device="cpu").fit(X * 1e154)
    with pytest.raises(ValueError, match="too large for float32.*rescale X"):
        KMeansBaseline(3, device="cpu").fit((X * 1e19).astype(np.float32))
    small = KMeansBaseline(3, device="cpu", random_state=0).fit(X)
    for scale in (1e150, 1e-150):
        km = KMeansBaseline(3, device="cpu", random_state=0).fit(X * scale)
        assert np.isfinite(km.inertia_) and np.isfinite(km.transform(X * scale)).all()
        np.testing.assert_array_equal(km.predict(X * scale), km.labels_)
        assert adjusted_rand_score(km.labels_, small.labels_) == 1
    with pytest.raises(ValueError, match="too large"):
        small.predict(X * 1e154)


def test_fitted_outputs_are_checked(blobs):
    from skmic import DeepInfoMaxEmbedder
    from skmic._training import TrainingDivergedError

    X, _ = blobs

    class NaNCentres(KMeansBaseline):  # a k-means whose fit goes wrong
        def _fit(self, X):
            super()._fit(X)
            self.cluster_centers_ = self.cluster_centers_ * np.nan

    with pytest.raises(TrainingDivergedError, match="NaN or infinity") as exc:
        NaNCentres(3, device="cpu", random_state=0).fit(X)
    assert isinstance(exc.value, ValueError)
    dim = DeepInfoMaxEmbedder(n_components=3, hidden_layer_sizes=(16,), token_channels=4, critic_dim=8,
                              max_epochs=2, batch_size=16, device="cpu", random_state=0)
    with pytest.warns(UserWarning, match=r"same output for every training sample.*largest magnitude of X: [\d.]+e-1"):
        dim.fit(X * 1e-12)  # the biases drown the input in float32: one code for all
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        KMeansBaseline(1, device="cpu", random_state=0).fit(np.ones((5, 2)) * [1, 2])  # constant input: no warning
