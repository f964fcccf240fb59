"""Images as images: the deep estimators take (n, H, W) and (n, C, H, W) arrays."""

import warnings

import numpy as np
import pytest
import torch

from skmic import DECClustering, DeepInfoMaxEmbedder, IICClustering, KMeansBaseline


def tiny(cls, **kwargs):
    common = dict(random_state=0, device="cpu")
    if cls is IICClustering:
        return cls(n_clusters=3, n_init=2, max_epochs=1, conv_channels=(4,), n_heads=2, **common, **kwargs)
    if cls is DECClustering:
        return cls(n_clusters=3, hidden_layer_sizes=(8,), n_components=2, pretrain_epochs=2, max_epochs=5,
                   update_interval=5, perturbation="affine", **common, **kwargs)
    return cls(n_components=3, conv_channels=(4,), hidden_layer_sizes=(8,), critic_dim=4, max_epochs=1,
               batch_size=16, **common, **kwargs)


DEEP = [IICClustering, DECClustering, DeepInfoMaxEmbedder]


@pytest.fixture
def images(digits):
    return digits[0][:90].reshape(-1, 8, 8)


def outputs(est, X):
    return est.predict(X) if hasattr(est, "predict") else est.transform(X)


@pytest.mark.parametrize("cls", DEEP, ids=lambda c: c.__name__)
def test_images_fit_like_flat_rows_with_image_shape(cls, images):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = tiny(cls).fit(images)
        b = tiny(cls, image_shape=(8, 8)).fit(images.reshape(len(images), -1))
    assert a.image_shape_ == b.image_shape_ == (1, 8, 8)
    assert a.n_features_in_ == 64
    flat = images.reshape(len(images), -1)
    np.testing.assert_array_equal(outputs(a, images), outputs(b, flat))
    # (n, H, W), (n, 1, H, W), flat rows and a torch tensor are one input
    np.testing.assert_array_equal(outputs(a, images[:, None]), outputs(a, flat))
    np.testing.assert_array_equal(outputs(a, torch.tensor(images)), outputs(a, flat))


def test_channels_first_colour_images(rng=np.random.default_rng(0)):
    X = rng.random((40, 3, 6, 5))
    est = tiny(IICClustering).fit(X)
    assert est.image_shape_ == (3, 6, 5) and est.n_features_in_ == 90
    assert est.predict(X).shape == (40,)


def test_images_are_not_modified(images):
    before = images.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tiny(IICClustering).fit(images).predict(images)
    np.testing.assert_array_equal(images, before)


@pytest.mark.parametrize(
    "X, match",
    [
        (np.zeros((10, 2, 3, 4, 5)), "5 dimensions"),
        (np.zeros((10, 0, 8)), "empty"),
        (np.zeros((10, 16, 16, 3)), "channels-last"),
        (np.full((10, 8, 8), np.nan), "NaN"),
    ],
    ids=["5-D", "zero-size", "channels-last", "nan"],
)
@pytest.mark.parametrize("cls", DEEP, ids=lambda c: c.__name__)
def test_bad_images_are_refused_with_a_reason(cls, X, match):
    with pytest.raises(ValueError, match=match):
        tiny(cls).fit(X)


@pytest.mark.parametrize("cls", DEEP, ids=lambda c: c.__name__)
def test_image_shape_must_agree_with_the_images(cls, images):
    with pytest.raises(ValueError, match="contradicts X"):
        tiny(cls, image_shape=(4, 16)).fit(images)


def test_predict_checks_the_image_shape(images, blobs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = tiny(IICClustering).fit(images)
        tabular = IICClustering(3, n_init=1, max_epochs=1, hidden_layer_sizes=(4,), device="cpu").fit(blobs[0])
    with pytest.raises(ValueError, match=r"fitted on images of shape \(1, 8, 8\)"):
        est.predict(images.reshape(-1, 4, 16))
    with pytest.raises(ValueError, match="fitted on tabular data"):
        tabular.predict(np.zeros((5, 2, 2)))


def test_kmeans_takes_rows_only(images):
    with pytest.raises(ValueError, match="takes 2-D input"):
        KMeansBaseline(3).fit(images)
