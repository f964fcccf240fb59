"""IICSegmentation, its loss, the inverse warp, the texture mosaics and pixel accuracy.

scikit-learn's common estimator checks (``parametrize_with_checks``) assume
that a clusterer labels the rows of a 2-D ``X`` (``labels_`` of shape
(n_samples,), ``predict`` on rows, fitting on random 2-D tables); an
IICSegmentation labels every pixel of every image, so those checks cannot
apply and are not run (in particular ``check_clustering``,
``check_fit2d_*``, ``check_methods_subset_invariance`` and the other checks
that feed 2-D tables and compare 1-D outputs). The checks that do apply are
run here: ``check_param_validation`` (it fails on the parameters before any
data is looked at), clone, ``get_params``/``set_params``, a pickling
round trip, input left unmodified, no change of the global random state,
same seed -> same labels, and the input validation for n-D images.
"""

import copy
import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.utils.estimator_checks import check_param_validation

from skmic import Checkpoint, IICSegmentation
from skmic.exceptions import TrainingInterruptedWarning
from skmic.datasets import TEXTURE_FAMILIES, make_texture_mosaics
from skmic.metrics import cluster_accuracy, pixel_accuracy, pixel_mapping
from skmic.nn.heads import ClusterHeads
from skmic.nn.losses import iic_joint, mutual_information, segmentation_joint, segmentation_mi
from skmic.nn.segmentation import FullyConvEncoder, PixelClassifier, pixel_heads, sobel_channels
from skmic.perturbations import (
    ElasticPerturbation, ImagePerturbation, inverse_affine, invert_affine, make_invertible_perturbation,
)
from skmic.segmentation import _PixelRestarts, interior_pixels, merge_overclusters, merged_joint, patch_features


def _soft_maps(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64).softmax(-3)


def _naive_joint(z, z_pert, d, mask=None):
    """Loops over displacements, images and pixels (one head)."""
    n, c, h, w = z.shape
    out = torch.zeros(2 * d + 1, 2 * d + 1, c, c, dtype=z.dtype)
    for dy in range(-d, d + 1):
        for dx in range(-d, d + 1):
            for i in range(n):
                for y in range(h):
                    for x in range(w):
                        yy, xx = y + dy, x + dx
                        if not (0 <= yy < h and 0 <= xx < w):
                            continue
                        if mask is not None and not (mask[i, y, x] and mask[i, yy, xx]):
                            continue
                        out[dy + d, dx + d] += torch.outer(z[i, :, y, x], z_pert[i, :, yy, xx])
    return out


# ------------------------------------------------------------------ the loss
@pytest.mark.parametrize("d", [0, 1, 3])
def test_joint_equals_naive_loop(d):
    z, zp = _soft_maps((3, 4, 7, 6), 0), _soft_maps((3, 4, 7, 6), 1)
    torch.testing.assert_close(segmentation_joint(z, zp, d), _naive_joint(z, zp, d), atol=1e-6, rtol=0)


def test_joint_with_heads_is_one_joint_per_head():
    z, zp = _soft_maps((2, 3, 4, 5, 5), 0), _soft_maps((2, 3, 4, 5, 5), 1)
    joint = segmentation_joint(z, zp, 2)
    assert joint.shape == (3, 5, 5, 4, 4)
    for head in range(3):
        torch.testing.assert_close(joint[head], _naive_joint(z[:, head], zp[:, head], 2), atol=1e-6, rtol=0)


def test_zero_displacement_is_iic_joint_over_pixels():
    z, zp = _soft_maps((3, 2, 4, 5, 6), 0), _soft_maps((3, 2, 4, 5, 6), 1)
    as_samples = lambda t: t.permute(0, 3, 4, 1, 2).reshape(-1, 2, 4)  # noqa: E731  (pixels, heads, C)
    expected = iic_joint(as_samples(z), as_samples(zp))
    torch.testing.assert_close(segmentation_joint(z, zp, 0)[:, 0, 0], expected, atol=1e-6, rtol=0)


def test_masked_pixels_contribute_nothing():
    z, zp = _soft_maps((2, 3, 6, 6), 0), _soft_maps((2, 3, 6, 6), 1)
    mask = torch.rand(2, 6, 6, generator=torch.Generator().manual_seed(2)) > 0.4
    joint = segmentation_joint(z, zp, 2, mask=mask)
    torch.testing.assert_close(joint, _naive_joint(z, zp, 2, mask), atol=1e-6, rtol=0)
    # whatever the masked pixels hold, the joints do not change
    z2, zp2 = z.clone(), zp.clone()
    z2[~mask[:, None].expand_as(z)] = 5.0
    zp2[~mask[:, None].expand_as(zp)] = -3.0
    torch.testing.assert_close(segmentation_joint(z2, zp2, 2, mask=mask), joint, atol=1e-12, rtol=0)
    assert not torch.allclose(segmentation_joint(z2, zp2, 2), joint)


def test_mi_reductions():
    z, zp = _soft_maps((2, 3, 6, 6), 0), _soft_maps((2, 3, 6, 6), 1)
    joint = segmentation_joint(z, zp, 1)
    per_t = torch.stack([mutual_information(joint[i, j]) for i in range(3) for j in range(3)])
    torch.testing.assert_close(segmentation_mi(joint), per_t.mean())
    torch.testing.assert_close(segmentation_mi(joint, reduction="sum"), mutual_information(joint.sum((0, 1))))
    with pytest.raises(ValueError, match="reduction"):
        segmentation_mi(joint, reduction="max")


def test_consistent_one_hot_maps_reach_log_c():
    labels = torch.arange(4).repeat_interleave(4)[None].expand(16, 16)  # vertical stripes of width 4
    onehot = torch.nn.functional.one_hot(labels, 4).permute(2, 0, 1)[None].double()
    mi0 = segmentation_mi(segmentation_joint(onehot, onehot, 0))
    torch.testing.assert_close(mi0, torch.log(torch.tensor(4.0, dtype=torch.float64)))
    # with displacements, pairs across stripe borders lower the MI
    assert segmentation_mi(segmentation_joint(onehot, onehot, 2)) < mi0


# ------------------------------------------------------------- inverse warp
def _blocky_one_hot(n, c, size, block, seed):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(c, (n, size // block, size // block), generator=g)
    labels = labels.repeat_interleave(block, 1).repeat_interleave(block, 2)
    return labels, torch.nn.functional.one_hot(labels, c).permute(0, 3, 1, 2).float()


def test_perturbed_then_inverted_one_hot_lands_on_the_original_pixels():
    """An identity network: the output is the (one-hot) input itself."""
    labels, onehot = _blocky_one_hot(16, 5, 32, 8, 0)
    g = ImagePerturbation((5, 32, 32), rotation=20.0, p_rotation=1.0, scale=(0.8, 1.2), shear=0.0,
                          translate=0.1, crop=None, hflip=True, brightness=0.0, contrast=0.0, noise=0.0)
    pert, theta = g.perturb(onehot, torch.Generator().manual_seed(1))
    back = invert_affine(pert, theta)
    inner = (slice(None), slice(8, 24), slice(8, 24))  # away from the border (what left the view)
    agree = (back.argmax(1) == labels)[inner].float().mean()
    assert agree > 0.97
    assert (pert.argmax(1) == labels)[inner].float().mean() < 0.7  # the warp did move the content
    # the wrong inverse (the forward map again) does not bring it back
    assert (invert_affine(pert, inverse_affine(theta)).argmax(1) == labels)[inner].float().mean() < 0.7


def test_inverse_of_pure_flips_is_exact_and_inverse_affine_inverts():
    g = ImagePerturbation((2, 6, 6), rotation=0.0, scale=1.0, shear=0.0, translate=0.0, crop=None,
                          hflip=True, vflip=True, brightness=0.0, contrast=0.0, noise=0.0)
    x = torch.rand(8, 2, 6, 6, generator=torch.Generator().manual_seed(0))
    pert, theta = g.perturb(x, torch.Generator().manual_seed(3))
    assert not torch.allclose(pert, x)
    torch.testing.assert_close(invert_affine(pert, theta), x, atol=1e-5, rtol=0)
    theta = ImagePerturbation((1, 8, 8)).affine_matrices(5, torch.Generator().manual_seed(0), "cpu", torch.float64)
    inv = inverse_affine(theta)
    eye = torch.eye(3, dtype=torch.float64)
    full = lambda t: torch.cat([t, eye[2:].expand(len(t), 1, 3)], 1)  # noqa: E731
    torch.testing.assert_close(full(theta) @ full(inv), eye.expand(5, 3, 3))


def test_perturb_is_the_call_on_images():
    g = ImagePerturbation((1, 8, 8), hflip=True)
    x = torch.rand(6, 64, generator=torch.Generator().manual_seed(0))
    pert, theta = g.perturb(x.view(6, 1, 8, 8), torch.Generator().manual_seed(5))
    torch.testing.assert_close(pert.reshape(6, -1), g(x, torch.Generator().manual_seed(5)))
    assert theta.shape == (6, 2, 3)


# ----------------------------------------------------------------- networks
def test_sobel_channels():
    ramp = torch.arange(6.0)[None, None, None].expand(2, 1, 5, 6)  # grey grows along x
    out = sobel_channels(torch.cat([ramp, ramp], 1))
    assert out.shape == (2, 4, 5, 6)
    torch.testing.assert_close(out[:, 2, :, 1:-1], torch.full((2, 5, 4), 8.0))  # interior x-gradient
    torch.testing.assert_close(out[:, 3], torch.zeros(2, 5, 6))  # no y-gradient


def test_encoder_and_pixel_heads():
    enc = FullyConvEncoder(1, (4, 8, 6), n_pool=2, sobel=True)
    fmap = enc(torch.rand(3, 1, 17, 20))
    assert fmap.shape == (3, 6, 4, 5) and enc.out_features == 6 and enc.stride == 4
    heads = ClusterHeads(6, 5, 2)
    z = pixel_heads(heads, fmap)
    assert z.shape == (3, 2, 5, 4, 5)
    torch.testing.assert_close(z[1, :, :, 2, 3], heads(fmap[1:2, :, 2, 3])[0])
    with pytest.raises(ValueError, match="n_pool"):
        FullyConvEncoder(1, (4,), n_pool=2)


# -------------------------------------------------------------------- data
def test_texture_mosaics():
    images, masks = make_texture_mosaics(20, size=32, n_classes=6, random_state=0)
    assert images.shape == masks.shape == (20, 32, 32) and images.dtype == np.float32
    assert all(set(np.unique(m)) == set(range(6)) for m in masks)  # every class in every image
    again, again_masks = make_texture_mosaics(20, size=32, n_classes=6, random_state=0)
    np.testing.assert_array_equal(images, again)
    np.testing.assert_array_equal(masks, again_masks)
    assert not np.array_equal(images, make_texture_mosaics(20, size=32, n_classes=6, random_state=1)[0])
    # the grey level alone does not separate the classes
    images, masks = make_texture_mosaics(200, size=16, n_classes=6, random_state=0)
    means = [images[masks == k].mean() for k in range(6)]
    stds = [images[masks == k].std() for k in range(6)]
    assert max(means) - min(means) < 0.04 and max(stds) - min(stds) < 0.04
    assert len(TEXTURE_FAMILIES) == 6
    with pytest.raises(ValueError, match="n_classes"):
        make_texture_mosaics(2, n_classes=7)
    with pytest.raises(ValueError, match="size"):
        make_texture_mosaics(2, size=8)


def test_pixel_accuracy_and_mapping():
    truth = np.array([[[0, 0, 1], [1, 2, 255]], [[2, 2, 0], [255, 1, 1]]])
    pred = np.array([[[5, 5, 3], [3, 1, 5]], [[1, 1, 5], [1, 3, 5]]])
    assert pixel_accuracy(truth, pred, ignore_label=255) == pytest.approx(9 / 10)
    assert pixel_accuracy(truth, pred) == pytest.approx(cluster_accuracy(truth.ravel(), pred.ravel()))
    mapping = pixel_mapping(truth, pred, ignore_label=255)
    assert {int(k): int(v) for k, v in mapping.items()} == {5: 0, 3: 1, 1: 2}
    with pytest.raises(ValueError, match="same shape"):
        pixel_accuracy(truth, pred[:1])


def test_patch_features():
    x = np.arange(2 * 3 * 5 * 6.0).reshape(2, 3, 5, 6)
    f = patch_features(x, 3)
    assert f.shape == (60, 27)
    np.testing.assert_array_equal(f.reshape(2, 5, 6, 3, 3, 3)[..., 1, 1], x.transpose(0, 2, 3, 1))
    with pytest.raises(ValueError, match="odd"):
        patch_features(x, 4)


# ------------------------------------------------------- merging over-clusters
def _layout_maps(n_segments, per_segment, seed, n=6, side=12):
    """One-hot over-cluster maps: images of vertical bands (segments), each band's pixels drawn among its over-clusters."""
    g = torch.Generator().manual_seed(seed)
    segment = (torch.arange(side) * n_segments // side).expand(n, side, side)  # bands
    segment = torch.stack([s.roll(int(r), 1) for s, r in zip(segment, torch.randint(side, (n,), generator=g))])
    over = segment * per_segment + torch.randint(per_segment, segment.shape, generator=g)
    perm = torch.randperm(n_segments * per_segment, generator=g)  # over-cluster ids shuffled across segments
    z = torch.nn.functional.one_hot(perm[over], n_segments * per_segment).permute(0, 3, 1, 2).double()
    return z, perm


def test_merge_overclusters_recovers_the_segments_of_neighbouring_overclusters():
    z, perm = _layout_maps(3, 4, seed=0)
    joint = segmentation_joint(z, z, 1)
    groups = merge_overclusters(joint, 3)
    truth = np.empty(12, dtype=int)
    truth[perm.numpy()] = np.arange(12) // 4  # over-cluster perm[j] belongs to segment j // 4
    assert cluster_accuracy(truth, groups) == 1.0
    # an over-cluster no pixel uses joins the first segment; too few used ones: None
    z2 = torch.cat([z, torch.zeros_like(z[:, :1])], 1)
    assert merge_overclusters(segmentation_joint(z2, z2, 1), 3)[-1] == 0
    assert merge_overclusters(segmentation_joint(z, z, 1)[..., :2, :2], 3) is None


def test_merged_joint_is_the_joint_of_the_merged_assignments():
    z, z_pert = _soft_maps((3, 6, 5, 5), 0), _soft_maps((3, 6, 5, 5), 1)
    groups = np.array([2, 0, 0, 1, 2, 1])
    G = torch.nn.functional.one_hot(torch.as_tensor(groups), 3).double()
    merge = lambda m: torch.einsum("nchw,ck->nkhw", m, G)  # noqa: E731
    torch.testing.assert_close(merged_joint(segmentation_joint(z, z_pert, 2), groups, 3),
                               _naive_joint(merge(z), merge(z_pert), 2))


# ---------------------------------------------------------------- estimator
def tiny(**kw):
    params = dict(n_clusters=2, n_init=1, n_heads=2, max_epochs=2, conv_channels=(6, 8), n_pool=1,
                  batch_size=4, refinement_rounds=0, device="cpu", random_state=0)
    params.update(kw)
    return IICSegmentation(**params)


@pytest.fixture(scope="module")
def mosaics():
    return make_texture_mosaics(8, size=16, n_classes=2, random_state=0)


@pytest.fixture(scope="module")
def fitted(mosaics):
    return tiny().fit(mosaics[0])


def test_fit_predict_shapes(fitted, mosaics):
    images, _ = mosaics
    assert fitted.labels_.shape == (8, 16, 16)
    proba = fitted.predict_proba(images)
    assert proba.shape == (8, 2, 16, 16)
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-9)
    np.testing.assert_array_equal(fitted.predict(images), fitted.labels_)
    assert fitted.transform(images).shape == (8, 8, 16, 16)
    assert fitted.transform(images).dtype == np.float32
    assert 0 <= fitted.score(images) <= np.log(2) + 1e-9
    assert fitted.score(images) == fitted.score(images)
    assert fitted.head_losses_.shape == (1, 2) and fitted.selection_ == "merged_overclusters"
    assert fitted.kept_restarts_.tolist() == [int(np.argmin(fitted.restart_losses_))]
    assert fitted.restart_losses_.shape == (1,) and fitted.n_iter_ == len(fitted.history_) == 2
    assert fitted.image_shape_ == (1, 16, 16)
    # other sizes: the network is fully convolutional
    assert fitted.predict(images[:2, 2:14, :12]).shape == (2, 12, 12)
    # one channel as (n, H, W), (n, 1, H, W) or flat rows with image_shape
    np.testing.assert_array_equal(fitted.predict(images[:, None]), fitted.labels_)


def test_merged_overclusters_predict_the_sum_of_each_segments_overclusters(fitted, mosaics):
    images = mosaics[0][:3]
    groups, head = fitted.overcluster_groups_, fitted.best_head_
    assert groups.shape == (fitted.overclustering_,) == (10,) and set(groups) == {0, 1}
    net = copy.deepcopy(fitted.network_).double()
    with torch.no_grad():  # the reference: the over-clustering sub-head's probabilities, summed by segment
        z = pixel_heads(net.over, net(torch.tensor(images[:, None], dtype=torch.float64)))[:, head]
        merged = torch.stack([z[:, groups == k].sum(1) for k in range(2)], 1)
        want = torch.nn.functional.interpolate(merged, size=(16, 16), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(fitted.predict_proba(images), want.numpy(), rtol=1e-9, atol=1e-12)
    # the kept sub-head is the one whose merge has the highest mutual information on the training images
    with torch.no_grad():
        z = pixel_heads(net.over, net(torch.tensor(mosaics[0][:, None], dtype=torch.float64)))
    joints = segmentation_joint(z, z, fitted.displacement)
    mis = [float(segmentation_mi(merged_joint(j, merge_overclusters(j, 2), 2))) for j in joints]
    assert head == int(np.argmax(mis))
    # score: the mutual information of the merged assignment between X and g(X)
    run = _PixelRestarts(fitted, fitted.network_, None, torch.tensor(images[:, None]), fitted._perturbation(), [None])
    joint = merged_joint(run.head_joints(fitted.network_.over)[head], groups, 2)
    assert fitted.score(images) == pytest.approx(float(segmentation_mi(joint)), rel=1e-12)


def test_selection_lowest_loss_and_its_rules(mosaics):
    images = mosaics[0]
    main = tiny(selection="lowest_loss").fit(images)
    assert main.overcluster_groups_ is None and main.best_head_ == int(np.argmin(main.head_losses_[0]))
    assert main.score(images) == pytest.approx(-main.head_losses_[0, main.best_head_], rel=1e-6)
    assert tiny(overclustering=0).fit(images).selection_ == "lowest_loss"  # nothing to merge
    assert tiny(overclustering=2).fit(images).selection_ == "lowest_loss"
    with pytest.raises(ValueError, match="needs more over-clusters"):
        tiny(selection="merged_overclusters", overclustering=2).fit(images)


def test_flat_input_with_image_shape(mosaics):
    images, _ = mosaics
    flat = tiny(image_shape=(16, 16)).fit(images.reshape(8, -1))
    np.testing.assert_array_equal(flat.labels_, tiny().fit(images).labels_)
    assert flat.predict(images.reshape(8, -1)).shape == (8, 16, 16)


def test_reproducible_restarts_and_no_global_rng_change(mosaics):
    images, _ = mosaics
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    a = tiny(n_init=2, random_state=3, head_reset=None).fit(images)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.random.get_state()[1].tolist() == np_state[1].tolist()
    b = tiny(n_init=2, random_state=3, head_reset=None).fit(images)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    assert a.restart_losses_.shape == (2,) and a.restart_losses_[0] != a.restart_losses_[1]
    # compared by what predicts: the kept restart's merged over-clusters' loss is minus its score
    assert a.selection_ == "merged_overclusters" and a.kept_restarts_[0] == np.argmin(a.restart_losses_)
    assert a.restart_losses_.min() == pytest.approx(-a.score(images), rel=1e-5)
    c = tiny(n_init=2, random_state=3, selection="lowest_loss").fit(images)
    assert c.restart_losses_.min() == c.head_losses_.min()


def test_restart_k_of_a_batched_fit_is_the_lone_fit_with_its_seed(mosaics):
    # the restarts of skmic._restarts, with grouped convolutions and Sobel channels per restart;
    # float64 throughout, so that grouped and lone kernels agree to rounding
    images = mosaics[0][:6]
    est = tiny(n_heads=2, n_repeats=2, batch_size=3)
    est.image_shape_, est.device_ = (1, 16, 16), torch.device("cpu")
    est._resolve_defaults(images[:, None])
    Xt = torch.tensor(images[:, None], dtype=torch.float64)
    seeds = [11, 22, 33]
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        with torch.random.fork_rng():
            batched = _PixelRestarts.start(est, Xt, est._perturbation(), seeds)
            batched.train(2)
            batched.reset_main_heads()  # head_reset: each restart's heads from its own generator
            batched.train(1)
            losses = batched.head_losses()
            for k, seed in enumerate(seeds):
                lone = _PixelRestarts.start(est, Xt, est._perturbation(), [seed])
                lone.train(2)
                lone.reset_main_heads()
                lone.train(1)
                torch.testing.assert_close(losses[k], lone.head_losses()[0], atol=1e-13, rtol=1e-9)
                ours, theirs = batched.select(k), lone.select(0)
                np.testing.assert_allclose([r["loss"] for r in ours.history], [r["loss"] for r in theirs.history],
                                           rtol=1e-9, atol=1e-15)
                for name, t in theirs.net.state_dict().items():
                    torch.testing.assert_close(ours.net.state_dict()[name], t, atol=1e-8, rtol=1e-8)
    finally:
        torch.set_default_dtype(default)
    assert not torch.allclose(losses[0], losses[1])  # the restarts differ


def test_head_reset_redraws_the_main_heads_only(mosaics):
    images = mosaics[0][:4]
    est = tiny()
    est.image_shape_, est.device_ = (1, 16, 16), torch.device("cpu")
    est._resolve_defaults(images[:, None])
    run = _PixelRestarts.start(est, torch.tensor(images[:, None]), est._perturbation(), [1, 2])
    run.train(1)
    trunk = {n: t.clone() for n, t in run.net.trunk.state_dict().items()}
    over, main = run.net.over.linear.weight.clone(), run.net.main.linear.weight.clone()
    run.reset_main_heads()
    weight = run.net.main.linear.weight
    assert not torch.equal(weight, main) and torch.equal(run.net.over.linear.weight, over)
    assert all(torch.equal(t, trunk[n]) for n, t in run.net.trunk.state_dict().items())
    assert abs(float(weight.detach().std()) - 0.01) < 0.003 and not run.net.main.linear.bias.any()
    assert weight not in run.optimizer.state and run.net.over.linear.weight in run.optimizer.state
    # a fit with a reset trains max_epochs in all, numbered on
    fit = tiny(max_epochs=4, head_reset=0.5).fit(images)
    assert fit.n_iter_ == 4 and [r["epoch"] for r in fit.history_] == [1, 2, 3, 4]


def test_warm_start_continues_training(mosaics):
    images, _ = mosaics
    est = tiny(max_epochs=3).fit(images)
    first, network = [r["loss"] for r in est.history_], est.network_
    est.set_params(warm_start=True, max_epochs=2).fit(images[:, 2:14, 2:14])  # any size, same channels
    assert est.n_iter_ == 5 and [r["epoch"] for r in est.history_] == [1, 2, 3, 4, 5]
    assert [r["loss"] for r in est.history_[:3]] == first and est.network_ is not network
    assert est.labels_.shape == (8, 12, 12)
    with pytest.raises(ValueError, match="n_heads=2"):
        est.set_params(n_heads=3).fit(images)
    with pytest.raises(ValueError, match="channels"):
        est.set_params(n_heads=2).fit(np.stack([images, images], 1))
    assert est.n_iter_ == 5


def interrupt_at(k):
    """A callback that raises KeyboardInterrupt at the end of the fit's ``k``-th epoch (all stages counted)."""
    calls = []

    def callback(record):
        calls.append(record)
        if len(calls) == k:
            raise KeyboardInterrupt

    return callback


def test_callbacks_interrupt_and_checkpoint(mosaics, tmp_path):
    images, _ = mosaics
    records = []
    est = tiny(max_epochs=4, callbacks=[lambda r: records.append(r) or r["epoch"] == 2]).fit(images)
    assert est.n_iter_ == 2 and records[-1]["stage"] == "training" and "loss" in records[-1]

    # an interrupt before the head reset (after epoch 2 of 5) keeps the trained heads, not fresh ones
    with pytest.warns(TrainingInterruptedWarning, match=r"kept \(n_iter_=1\)"):
        est = tiny(max_epochs=5, head_reset=0.5, selection="lowest_loss", callbacks=[interrupt_at(1)]).fit(images)
    assert est.head_losses_.min() == est.restart_losses_.min()  # the main heads that were compared
    # a checkpointed run interrupted after the reset resumes to the same model as a straight run
    path = tmp_path / "seg.ckpt"
    kw = dict(max_epochs=5, n_init=2, head_reset=0.5)
    with pytest.warns(TrainingInterruptedWarning, match=r"kept \(n_iter_=3\)"):
        est = tiny(**kw, callbacks=[interrupt_at(3), Checkpoint(path)]).fit(images)
    assert est.n_iter_ == 3 and est.predict(images).shape == (8, 16, 16) and path.exists()
    resumed = tiny(**kw, callbacks=[Checkpoint(path)]).fit(images)
    straight = tiny(**kw).fit(images)
    assert not path.exists() and resumed.n_iter_ == 5
    np.testing.assert_allclose([r["loss"] for r in resumed.history_], [r["loss"] for r in straight.history_],
                               rtol=1e-5)
    # the same model (a restored stage leaves the network in eval mode, so the head losses
    # computed after it do not move BatchNorm's running statistics)
    np.testing.assert_array_equal(resumed.labels_, straight.labels_)


# ---------------------------------------------------------------- refinement
def test_interior_pixels_is_a_window_without_other_labels():
    labels = torch.randint(3, (4, 9, 11), generator=torch.Generator().manual_seed(0))
    labels[0] = 1  # an image with one segment: all interior (the image's edges are no border)
    for margin in (0, 1, 2):
        want = torch.zeros_like(labels, dtype=torch.bool)
        for i, y, x in np.ndindex(*labels.shape):
            window = labels[i, max(0, y - margin):y + margin + 1, max(0, x - margin):x + margin + 1]
            want[i, y, x] = bool((window == labels[i, y, x]).all())
        assert torch.equal(interior_pixels(labels, 3, margin), want)
    assert interior_pixels(labels, 3, 2)[0].all() and not interior_pixels(labels, 3, 2)[1:].any()


def test_pixel_classifier_keeps_the_size_and_sees_15_pixels():
    net = PixelClassifier(1, 3, sobel=True).eval()
    x = torch.rand(2, 1, 40, 40, requires_grad=True)
    out = net(x)
    assert out.shape == (2, 3, 40, 40)
    out[0, :, 20, 20].sum().backward()  # the receptive field: 1 + 2 * sum(dilations) = 15, +1 for Sobel
    seen = x.grad[0, 0].abs() > 0
    rows, cols = seen.any(1).nonzero().ravel(), seen.any(0).nonzero().ravel()
    assert (int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())) == (12, 28, 12, 28)
    assert not x.grad[1].any()  # eval mode: images do not see each other


def test_refinement_predicts_scores_and_reports_its_rounds(mosaics):
    images = mosaics[0]
    records = []
    est = tiny(refinement_rounds=2, callbacks=[records.append]).fit(images)
    plain = tiny().fit(images)
    assert isinstance(est.refiner_, PixelClassifier) and plain.refiner_ is None
    # the IIC network trains as without refinement (the refinement comes after)
    assert [r["loss"] for r in est.history_] == [r["loss"] for r in plain.history_]
    # 8 images in batches of 4: 2 steps an epoch, so 25 epochs make a round of 50 steps
    stages = [r["stage"] for r in records]
    assert stages == ["training"] * 2 + ["refinement"] * 50
    net = copy.deepcopy(est.refiner_).double()
    with torch.no_grad():
        want = net(torch.tensor(images[:, None], dtype=torch.float64)).softmax(1)
    np.testing.assert_allclose(est.predict_proba(images), want.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(est.predict(images), est.labels_)
    assert est.predict(images[:2, :12, :10]).shape == (2, 12, 10)
    # score: the refined assignment's MI between X and g(X), on the trunk's output grid (2 x 2 squares)
    run = _PixelRestarts(est, est.network_, None, torch.tensor(images[:, None]), est._perturbation(), [None])
    (x, x_pert, theta), = run._fixed_views()
    with torch.no_grad():
        z, z_pert = est.refiner_(x).softmax(1), est.refiner_(x_pert).softmax(1)
        pool = torch.nn.functional.avg_pool2d
        joint = segmentation_joint(pool(z, 2).double(), pool(invert_affine(z_pert, theta), 2).double(), 1)
    assert est.score(images) == pytest.approx(float(segmentation_mi(joint)), rel=1e-9)
    assert 0 <= est.score(images) <= np.log(2) + 1e-9
    # pickled with the rest
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict(images), est.labels_)


def test_refinement_corrects_labels_near_borders():
    # given the true segments with the band along every border mislabelled, the refinement, trained
    # on the pixels away from the borders, labels most of the band right
    images, masks = make_texture_mosaics(24, size=32, n_classes=2, random_state=1)
    est = tiny(conv_channels=(4,), refinement_rounds=3, batch_size=8).fit(images[:2])
    band = ~interior_pixels(torch.as_tensor(masks), 2, 2).numpy()
    noisy = np.where(band, 1 - masks, masks)  # every pixel within 2 of a border has the other label
    with torch.random.fork_rng():  # the refinement network's initialisation, as in a fit
        torch.manual_seed(0)
        refined = est._refine(est._as_tensor(est._validate_input(images, reset=False)).float(), noisy)
    with torch.no_grad():
        labels = refined(torch.tensor(images[:, None])).argmax(1).numpy()
    right = labels == masks
    assert band.mean() > 0.2 and right[band].mean() > 0.5 and right.mean() > (noisy == masks).mean() + 0.1


def test_an_interrupted_refinement_is_dropped_and_a_checkpoint_resumes_it(mosaics, tmp_path):
    images = mosaics[0]
    path, kw = tmp_path / "refine.ckpt", dict(refinement_rounds=2)
    # 2 IIC epochs, then rounds of 25 epochs: the 30th epoch is in the second round
    with pytest.warns(TrainingInterruptedWarning, match="interrupted"):
        est = tiny(**kw, callbacks=[interrupt_at(30), Checkpoint(path)]).fit(images)
    assert est.refiner_ is None and path.exists()  # a half-done refinement is not used
    np.testing.assert_array_equal(est.labels_, tiny().fit(images).labels_)  # the IIC network's segments
    resumed = tiny(**kw, callbacks=[Checkpoint(path)]).fit(images)
    straight = tiny(**kw).fit(images)
    assert not path.exists()
    for name, t in straight.refiner_.state_dict().items():
        torch.testing.assert_close(resumed.refiner_.state_dict()[name], t, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(resumed.labels_, straight.labels_)


# ------------------------------------------------------------ perturbation
def test_auto_perturbation_is_the_image_perturbation_that_ran(fitted, mosaics):
    g = fitted.perturbation_
    assert isinstance(g, ImagePerturbation) and g.image_shape == fitted.image_shape_
    assert (g.rotation, g.p_rotation, g.scale, g.shear, g.translate, g.crop, g.hflip, g.vflip) == (
        15.0, 1.0, (0.9, 1.1), 0.0, 0.1, None, True, False)
    assert (g.brightness, g.contrast, g.noise, g.padding_mode) == (0.4, 0.4, 0.1, "reflection")
    # the same perturbation passed as an object (or in a list) trains the same model
    same = ImagePerturbation(fitted.image_shape_, rotation=15.0, p_rotation=1.0, shear=0.0, crop=None, hflip=True,
                             padding_mode="reflection")
    for spec in (same, [same]):
        np.testing.assert_array_equal(tiny(perturbation=spec).fit(mosaics[0]).labels_, fitted.labels_)


def test_steps_apply_in_order_and_the_affine_map_is_returned():
    affine = ImagePerturbation((1, 8, 8), hflip=True)

    def double(x, generator):
        return 2 * x

    x = torch.rand(3, 1, 8, 8)
    expected, theta_expected = affine.perturb(x, torch.Generator().manual_seed(0))
    out, theta = make_invertible_perturbation([affine, double], (1, 8, 8)).perturb(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, 2 * expected)
    torch.testing.assert_close(theta, theta_expected)


def test_a_callable_that_keeps_pixels_in_place_is_undone_by_the_identity(mosaics):
    def brighter(x, generator):  # one brightness offset per image: every pixel stays where it is
        return x + torch.rand(len(x), 1, generator=generator, device=x.device, dtype=x.dtype)

    x = torch.rand(3, 2, 8, 8)
    out, theta = make_invertible_perturbation(brighter, (2, 8, 8)).perturb(x, torch.Generator().manual_seed(0))
    offset = out - x
    torch.testing.assert_close(offset, offset[:, :1, :1, :1].expand_as(offset))
    torch.testing.assert_close(invert_affine(out, theta), out)  # the identity maps
    assert tiny(perturbation=brighter).fit(mosaics[0]).labels_.shape == mosaics[0].shape


@pytest.mark.parametrize("spec, message", [
    ("elastic", "perturbation"),  # a name the parameter does not take
    (["affine", "elastic"], "cannot be undone on the pixel grid"),
    (ElasticPerturbation((1, 16, 16)), "cannot be undone on the pixel grid"),
    (["affine", "shift-rotate"], "more than one ImagePerturbation"),
    ([], "empty"),
    (lambda x, generator: x[:, :-1], "failed on two training images: .* must return a tensor of shape"),
])
def test_perturbations_that_cannot_be_undone_are_refused(mosaics, spec, message):
    with pytest.raises(ValueError, match=message):
        tiny(perturbation=spec).fit(mosaics[0])


def test_input_is_not_modified(mosaics):
    images = mosaics[0].copy()
    tiny().fit(images).predict(images)
    np.testing.assert_array_equal(images, mosaics[0])


def test_clone_params_and_pickle(fitted, mosaics):
    images, _ = mosaics
    est = clone(fitted)
    assert not hasattr(est, "labels_") and est.get_params() == fitted.get_params()
    est.set_params(displacement=2, sobel=False)
    assert est.get_params()["displacement"] == 2 and not est.sobel
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.predict(images), fitted.labels_)
    assert again.device_ == torch.device("cpu")


def test_param_validation():
    check_param_validation("IICSegmentation", tiny())


def test_input_validation(fitted, mosaics):
    images, _ = mosaics
    with pytest.raises(ValueError, match="dimensions"):
        tiny().fit(images[:, None, None])
    with pytest.raises(ValueError, match="image_shape"):
        tiny().fit(images.reshape(8, -1))
    with pytest.raises(ValueError, match="empty"):
        tiny().fit(np.zeros((2, 0, 16)))
    bad = images.copy()
    bad[0, 3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        tiny().fit(bad)
    bad[0, 3, 3] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        fitted.predict(bad)
    with pytest.raises(ValueError, match="channels"):
        fitted.predict(np.stack([images, images], 1))
    with pytest.raises(ValueError, match="too small"):
        tiny(n_pool=2, conv_channels=(4, 4)).fit(images[:, :3, :3])
    with pytest.raises(ValueError, match="holds"):
        tiny(image_shape=(15, 16)).fit(images.reshape(8, -1))
    with pytest.raises(ValueError, match="channels-last"):
        tiny().fit(np.stack([images] * 3, -1))
    assert tiny(max_epochs=1).fit(images.astype(int)).labels_.shape == images.shape


@pytest.mark.slow
def test_segments_two_texture_classes():
    images, masks = make_texture_mosaics(32, size=32, n_classes=2, random_state=0)
    seg = IICSegmentation(n_clusters=2, n_init=1, max_epochs=40, conv_channels=(16, 32), device="cpu", random_state=0)
    assert pixel_accuracy(masks, seg.fit(images).labels_) > 0.85


# ---------------------------------------------------------------------- CLI
def test_cli_segment(tmp_path, mosaics, capsys):
    from skmic.cli import main

    images = tmp_path / "images.npy"
    np.save(images, mosaics[0])
    out = tmp_path / "labels.npy"
    fast = ["--params", "max_epochs=1", "n_init=1", "conv_channels=(4, 4)", "n_pool=1"]
    assert main(["segment", str(images), "--n-clusters", "2", "--output", str(out), "--device", "cpu", *fast]) == 0
    labels = np.load(out)
    assert labels.shape == (8, 16, 16) and labels.dtype.kind == "i"
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize(
    "make_input, options, message",
    [
        (lambda d: np.zeros((2, 3)), [], "image_shape"),  # a table, not images
        (lambda d: np.full((2, 8, 8), np.nan), [], "NaN"),
        (lambda d: np.zeros((2, 8, 8)), ["--n-clusters", "1"], "n_clusters"),
        (lambda d: np.zeros((2, 8, 8)), ["--params", "displacement=-1"], "displacement"),
        (lambda d: np.zeros((2, 8, 8)), ["--params", "nonsense=1"], "--params: segment takes no parameter nonsense; it takes"),
        (None, [], "no such file"),
    ],
)
def test_cli_segment_errors_are_one_line(tmp_path, capsys, make_input, options, message):
    from skmic.cli import main

    path = tmp_path / "images.npy"
    if make_input is not None:
        np.save(path, make_input(tmp_path))
    argv = ["segment", str(path), "--n-clusters", "2", "--output", str(tmp_path / "labels.npy"), "--device", "cpu"]
    assert main(argv + options) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.startswith("skmic segment: error:")
    assert not (tmp_path / "labels.npy").exists()
