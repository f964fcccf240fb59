"""DeepInfoMaxEmbedder end to end, on tiny networks."""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.pipeline import make_pipeline

from skmic import DeepInfoMaxEmbedder, KMeansBaseline
from skmic.metrics import cluster_accuracy


def tiny(**kw):
    params = dict(n_components=4, hidden_layer_sizes=(32,), token_channels=4, critic_dim=16, max_epochs=5,
                  batch_size=32, device="cpu", random_state=0)
    params.update(kw)
    return DeepInfoMaxEmbedder(**params)


@pytest.mark.parametrize("mi_estimator", ["jsd", "infonce", "dv"])
def test_each_mi_estimator_trains_and_raises_the_score(mi_estimator, blobs):
    X, _ = blobs
    untrained = tiny(mi_estimator=mi_estimator, max_epochs=1, learning_rate=1e-9).fit(X)
    trained = tiny(mi_estimator=mi_estimator, max_epochs=30, prior_weight=0.0).fit(X)
    assert trained.score(X) > untrained.score(X)
    assert np.isfinite(trained.history_[-1]["loss"])


def test_images_transform_dtype_and_names(digits):
    X, _ = digits
    X = X[:200]
    dim = tiny(image_shape=(8, 8), conv_channels=(4, 8), global_weight=0.5, max_locations=3).fit(X)
    Y = dim.transform(X)
    assert Y.shape == (200, 4) and Y.dtype == np.float64
    assert dim.transform(X.astype(np.float32)).dtype == np.float32
    assert list(dim.get_feature_names_out()) == [f"deepinfomaxembedder{i}" for i in range(4)]
    out = dim.set_output(transform="pandas").transform(X)
    assert isinstance(out, pd.DataFrame)


def test_prior_term_moves_codes_toward_the_prior():
    """DIM's adversarial prior game on a toy: free codes that all start at 0
    (sigmoid 0.5, far from uniform) spread out over [0, 1]."""
    from skmic.nn.critics import PriorDiscriminator, grad_reverse
    from skmic.nn.losses import prior_matching_loss

    torch.manual_seed(0)
    codes = torch.nn.Parameter(torch.zeros(256, 1))
    disc = PriorDiscriminator(1, hidden=(32, 16))
    opt = torch.optim.Adam([codes, *disc.parameters()], lr=1e-2)

    def distance():
        s = torch.sigmoid(codes.detach()).flatten().sort().values.numpy()
        return np.abs(s - (np.arange(256) + 0.5) / 256).mean()

    start = distance()
    for _ in range(1500):
        opt.zero_grad()
        fake = disc(grad_reverse(torch.sigmoid(codes + 0.01 * torch.randn_like(codes))))
        prior_matching_loss(disc(torch.rand(256, 1)), fake).backward()
        opt.step()
    assert start > 0.2 and distance() < 0.5 * start


def test_reproducible_pickle_and_pipeline(blobs):
    X, y = blobs
    a, b = tiny().fit(X), tiny().fit(X)
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    again = pickle.loads(pickle.dumps(a))
    np.testing.assert_allclose(again.transform(X), a.transform(X))
    pipe = make_pipeline(tiny(max_epochs=20), KMeansBaseline(3, random_state=0, device="cpu")).fit(X)
    assert cluster_accuracy(y, pipe.predict(X)) > 0.9


def test_bad_parameters(blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match="holds 64 values"):
        tiny(image_shape=(8, 8)).fit(X)
    with pytest.raises(ValueError, match="both 0"):
        tiny(global_weight=0, local_weight=0).fit(X)
    X = X.copy()
    X[3, 1] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        tiny().fit(X)


def test_perturbed_views_supply_the_local_features(digits):
    """With a perturbation, M comes from a perturbed copy: the callable sees every training batch."""
    X, _ = digits
    X = X[:128]
    calls = []

    def shift(x, generator):
        calls.append(x.shape[0])
        return x + 0.1 * torch.randn(x.shape, generator=generator, dtype=x.dtype)

    dim = tiny(image_shape=(8, 8), conv_channels=(4, 8), perturbation=shift, max_epochs=2, n_estimators=1).fit(X)
    assert sum(calls[1:]) == 2 * 128  # after the shape check, one copy per sample per epoch
    calls.clear()
    tiny(image_shape=(8, 8), conv_channels=(4, 8), perturbation=shift, max_epochs=2, n_estimators=3).fit(X)
    assert calls[:3] == [8, 8, 8] and sum(calls[3:]) == 3 * 2 * 128  # each network checks and perturbs its own
    assert dim.score(X) == dim.score(X)  # the view is drawn from a fixed seed
    a = tiny(image_shape=(8, 8), conv_channels=(4, 8), perturbation="elastic").fit(X).transform(X)
    b = tiny(image_shape=(8, 8), conv_channels=(4, 8), perturbation="elastic").fit(X).transform(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, tiny(image_shape=(8, 8), conv_channels=(4, 8)).fit(X).transform(X))
    with pytest.raises(ValueError, match="perturbation must return"):
        tiny(perturbation=lambda x, g: x[:, :2]).fit(X)


@pytest.mark.parametrize("scale, match", [(1e30, "too large for float32"), (1e-30, "too small for float32")])
def test_deep_estimators_reject_magnitudes_float32_cannot_square(scale, match, blobs):
    import skmic

    X, _ = blobs
    for name in ("DeepInfoMaxEmbedder", "IICClustering", "DECClustering"):
        est = getattr(skmic, name)(max_epochs=1, device="cpu")
        with pytest.raises(ValueError, match=match + ".*StandardScaler"):
            est.fit(X * scale)
    fitted = tiny(max_epochs=1).fit(X)
    with pytest.raises(ValueError, match="too large"):
        fitted.transform(X * scale if scale > 1 else X * 1e30)


def test_auto_defaults_follow_the_data(digits):
    from skmic import DeepInfoMaxEmbedder

    small = dict(conv_channels=(4,), hidden_layer_sizes=(8,), critic_dim=4, max_epochs=1, random_state=0, device="cpu")
    images = DeepInfoMaxEmbedder(n_components=3, **small).fit(digits[0][:40].reshape(-1, 8, 8))
    assert (images.perturbation_, images.global_weight_, images.local_weight_, images.prior_weight_, images.batch_size_,
            images.standardize_) == (["elastic", "affine"], 1.0, 0.0, 0.0, 128, True)
    table = DeepInfoMaxEmbedder(n_components=3, token_channels=2, **small).fit(digits[0][:40, :6])
    assert (table.perturbation_, table.global_weight_, table.local_weight_, table.prior_weight_, table.batch_size_,
            table.standardize_) == (None, 0.0, 1.0, 0.1, 64, False)
    # what the user sets is what runs; the parameters themselves are never changed
    paper = DeepInfoMaxEmbedder(n_components=3, global_weight=0.0, local_weight=1.0, prior_weight=0.1, perturbation=None, batch_size=16,
                                standardize=False, **small)
    paper.fit(digits[0][:40].reshape(-1, 8, 8))
    assert (paper.perturbation_, paper.global_weight_, paper.local_weight_, paper.prior_weight_, paper.batch_size_,
            paper.standardize_) == (None, 0.0, 1.0, 0.1, 16, False)
    assert paper.get_params()["global_weight"] == 0.0 and images.get_params()["global_weight"] == "auto"
    # several networks on small images only: cheap to train, and a single one's code is a lottery there
    assert (images.n_estimators_, table.n_estimators_, paper.n_estimators_) == (4, 1, 4)
    assert images.transform(digits[0][:5].reshape(-1, 8, 8)).shape == (5, 3)
    # conv_channels="auto": the wider trunk on small images, the narrower one above 12 x 12 pixels, none on tables
    for shape, widths in [((1, 8, 8), (32, 64, 128)), ((1, 28, 28), (16, 32, 64)), (None, None)]:
        est = DeepInfoMaxEmbedder()
        est.image_shape_ = shape
        est._resolve_defaults(None)
        assert est.conv_channels_ == widths and est.conv_channels == "auto"
        assert est.n_estimators_ == (4 if shape == (1, 8, 8) else 1)
    assert images.conv_channels_ == (4,)


def test_standardized_codes_are_the_raw_codes_scaled_by_their_training_statistics(digits):
    X = digits[0][:120].reshape(-1, 8, 8)
    small = dict(n_components=5, n_estimators=1, conv_channels=(4,), hidden_layer_sizes=(16,), critic_dim=8,
                 max_epochs=2, batch_size=32, random_state=0, device="cpu")
    std = DeepInfoMaxEmbedder(**small).fit(X)
    raw = DeepInfoMaxEmbedder(standardize=False, **small).fit(X)
    assert std.standardize_ is True and raw.standardize_ is False
    assert raw.code_mean_ is None and raw.code_scale_ is None
    Y, R = std.transform(X), raw.transform(X)  # the same network: standardising does not change training
    assert np.abs(R.std(0) - 1).max() > 0.1  # the raw code is not standardised by itself
    np.testing.assert_allclose(std.code_mean_, R.mean(0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(std.code_scale_, R.std(0), rtol=1e-6)
    np.testing.assert_allclose(Y, (R - std.code_mean_) / std.code_scale_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(Y.mean(0), 0, atol=1e-9)
    np.testing.assert_allclose(Y.std(0), 1, rtol=1e-9)
    # new rows are scaled with the training statistics, not their own
    np.testing.assert_allclose(std.transform(X[:7]), Y[:7], rtol=1e-6, atol=1e-9)
    # a warm start trains on, and the statistics follow the new network
    mean = std.code_mean_.copy()
    std.set_params(warm_start=True, max_epochs=1).fit(X)
    assert not np.allclose(std.code_mean_, mean)
    np.testing.assert_allclose(std.transform(X).std(0), 1, rtol=1e-9)


def test_code_statistics_keeps_constant_components():
    from skmic.dim import code_statistics

    Y = np.array([[1.0, 3.0, 0.0], [3.0, 3.0, 1e-3], [5.0, 3.0, 2e-3]])
    mean, scale = code_statistics(Y)
    np.testing.assert_allclose(mean, [3.0, 3.0, 1e-3])
    np.testing.assert_allclose(scale, [np.sqrt(8 / 3), 1.0, np.sqrt(2 / 3) * 1e-3])


def test_several_networks_train_as_lone_fits_and_transform_to_n_components(digits):
    """n_estimators networks train side by side, each as it would alone (the first is the lone fit);
    transform projects their codes, side by side, on their n_components principal axes."""
    X = digits[0][:160].reshape(-1, 8, 8)
    small = dict(n_components=3, conv_channels=(4,), hidden_layer_sizes=(8,), critic_dim=4, max_epochs=2,
                 batch_size=32, random_state=0, device="cpu")
    lone = DeepInfoMaxEmbedder(n_estimators=1, **small).fit(X)
    ens = DeepInfoMaxEmbedder(n_estimators=3, **small).fit(X)
    assert ens.n_estimators_ == 3 and len(ens.network_.members) == 3 and lone.components_ is None
    x = torch.as_tensor(X.reshape(160, 64), dtype=torch.float32)
    with torch.no_grad():
        codes = [member.encoder(x)[1].double().numpy() for member in ens.network_.members]
        alone = lone.network_.members[0].encoder(x)[1].double().numpy()
    np.testing.assert_allclose(codes[0], alone, rtol=1e-5, atol=1e-6)
    assert not np.allclose(codes[1], codes[0], atol=1e-2) and not np.allclose(codes[2], codes[1], atol=1e-2)
    losses = [r["member_loss"] for r in ens.history_]
    assert all(len(loss) == 3 for loss in losses)
    np.testing.assert_allclose([r["loss"] for r in ens.history_], np.mean(losses, axis=1), rtol=1e-12)
    np.testing.assert_allclose([loss[0] for loss in losses], [r["loss"] for r in lone.history_], rtol=1e-5)
    assert "member_loss" not in lone.history_[0]
    # the projection: standardised codes side by side, on orthonormal axes of decreasing variance
    Y = ens.transform(X)
    assert Y.shape == (160, 3) and ens.components_.shape == (3, 9) and ens.code_mean_.shape == (9,)
    np.testing.assert_allclose(ens.components_ @ ens.components_.T, np.eye(3), atol=1e-9)
    side = (np.hstack(codes) - ens.code_mean_) / ens.code_scale_
    np.testing.assert_allclose(Y, side @ ens.components_.T, rtol=1e-4, atol=1e-4)
    assert np.all(np.diff(Y.var(0)) <= 1e-9)
    assert ens.score(X) == ens.score(X)
    again = pickle.loads(pickle.dumps(ens))
    np.testing.assert_allclose(again.transform(X), Y)
    ens.set_params(warm_start=True, max_epochs=1).fit(X)
    assert ens.n_iter_ == 3 and len(ens.history_[-1]["member_loss"]) == 3
    with pytest.raises(ValueError, match="n_estimators"):
        ens.set_params(n_estimators=2).fit(X)
    # fewer samples than n_components: still n_components columns, as the feature names say
    few = DeepInfoMaxEmbedder(**{**small, "n_components": 12, "n_estimators": 2}).fit(X[:10])
    assert few.transform(X[:10]).shape == (10, 12) and len(few.get_feature_names_out()) == 12
    np.testing.assert_allclose(few.components_ @ few.components_.T, np.eye(12), atol=1e-9)
