"""Perturbations keep shape, dtype and device, change the input, follow the seed."""

import numpy as np
import pytest
import torch

from skmic.perturbations import (
    Compose,
    ElasticPerturbation,
    ImagePerturbation,
    PointSetPerturbation,
    WassersteinPerturbation,
    TabularPerturbation,
    check_perturbation,
    make_perturbation,
    restart_views,
)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(
    "g, x",
    [
        (ImagePerturbation((1, 8, 8)), torch.rand(6, 64)),
        (ImagePerturbation((3, 5, 7), hflip=True, vflip=True), torch.rand(4, 105)),
        (TabularPerturbation(), torch.rand(9, 4)),
        (PointSetPerturbation(), torch.rand(5, 16)),
        (Compose([TabularPerturbation(noise=0.5), TabularPerturbation(corruption=0.5)]), torch.rand(9, 4)),
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_seed_and_change(g, x, dtype):
    x = x.to(dtype)
    before = x.clone()
    a, b, c = g(x, gen(0)), g(x, gen(0)), g(x, gen(1))
    assert a.shape == x.shape and a.dtype == dtype and a.device == x.device
    torch.testing.assert_close(a, b)  # reproducible from the seed
    assert not torch.allclose(a, c)  # another seed, another draw
    assert not torch.allclose(a, x)  # it does change the input
    torch.testing.assert_close(x, before)  # and leaves the input alone


@pytest.mark.parametrize("cls", [ImagePerturbation, ElasticPerturbation, WassersteinPerturbation])
def test_image_shape_may_omit_a_single_channel(cls):
    assert cls((8, 8)).image_shape == (1, 8, 8)
    if cls is not WassersteinPerturbation:  # (its search is slow; the shape is all that differs)
        x = torch.rand(4, 64)
        torch.testing.assert_close(cls((8, 8))(x, gen(0)), cls((1, 8, 8))(x, gen(0)))
    with pytest.raises(ValueError, match="image_shape must be"):
        cls((8,))


def test_shift_rotate_is_the_dec_da_papers_augmentation():
    # the callable the retired benchmarks/dec_da.py built for the DEC-DA results on digits
    explicit = ImagePerturbation((1, 8, 8), rotation=10, p_rotation=1.0, scale=[1, 1], shear=0, translate=0.1,
                                 crop=None, brightness=0, contrast=0, noise=0)
    named = make_perturbation("shift-rotate", (8, 8))
    x = torch.rand(16, 64)
    torch.testing.assert_close(named(x, gen(3)), explicit(x, gen(3)), rtol=0, atol=0)
    assert "rotation=10.0" in repr(named) and "crop=None" in repr(named) and "translate" not in repr(named)
    with pytest.raises(ValueError, match="image_shape"):
        make_perturbation("shift-rotate", None)


def test_identity_settings_give_identity():
    g = ImagePerturbation((1, 6, 6), rotation=0, scale=1.0, shear=0, translate=0, crop=None, brightness=0, contrast=0, noise=0)
    x = torch.rand(3, 36)
    torch.testing.assert_close(g(x, gen()), x, atol=1e-5, rtol=0)


def test_rotation_by_180_degrees_flips_the_image():
    g = ImagePerturbation((1, 4, 4), rotation=180, p_rotation=1, scale=1.0, shear=0, translate=0, crop=None, brightness=0, contrast=0, noise=0)
    g.affine_matrices = lambda n, generator, device, dtype: torch.tensor([[[-1.0, 0, 0], [0, -1.0, 0]]]).repeat(n, 1, 1)
    x = torch.arange(16.0).view(1, 16)
    torch.testing.assert_close(g(x, gen()).view(4, 4), x.view(4, 4).flip(0).flip(1))


def test_affine_matrices_respect_the_ranges():
    g = ImagePerturbation((1, 8, 8), rotation=0, shear=0, scale=(2.0, 2.0), crop=None, translate=0)
    theta = g.affine_matrices(5, gen(), "cpu")
    torch.testing.assert_close(theta[:, :, :2], torch.eye(2).repeat(5, 1, 1) / 2)


def test_marginal_corruption_draws_values_of_the_same_feature():
    x = torch.arange(40.0).view(10, 4)  # column j holds values = j (mod 4)
    out = TabularPerturbation(noise=0, corruption=1.0)(x, gen())
    assert ((out % 4) == torch.arange(4.0)).all()
    assert not torch.equal(out, x)


def test_make_perturbation_names_callables_and_errors():
    assert isinstance(make_perturbation("affine", (1, 8, 8)), ImagePerturbation)
    assert isinstance(make_perturbation("tabular", None), TabularPerturbation)
    for image_shape in [(1, 8, 8), None]:  # "auto" means what each estimator chooses, not one perturbation
        with pytest.raises(ValueError, match="resolved by each estimator"):
            make_perturbation("auto", image_shape)
        with pytest.raises(ValueError, match="resolved by each estimator"):
            make_perturbation(["tabular", "auto"], image_shape)
    assert isinstance(make_perturbation(["affine", "tabular"], (1, 8, 8)), Compose)

    def mine(x, generator):
        return x + 1

    assert make_perturbation(mine) is mine
    with pytest.raises(ValueError, match="image_shape"):
        make_perturbation("affine", None)
    with pytest.raises(TypeError, match="perturbation must be"):
        make_perturbation(3)


def test_check_perturbation_rejects_bad_outputs():
    x = torch.rand(4, 3)
    with pytest.raises(ValueError, match="shape"):
        check_perturbation(lambda x, g: x[:, :2], x, gen())
    with pytest.raises(ValueError, match="dtype"):
        check_perturbation(lambda x, g: x.double(), x, gen())
    with pytest.raises(ValueError, match="failed"):
        check_perturbation(lambda x: x, x, gen())


# ------------------------------------------------- elastic and Wasserstein
from scipy.optimize import linear_sum_assignment  # noqa: E402

from skmic.perturbations import (  # noqa: E402
    ElasticPerturbation,
    WassersteinPerturbation,
    sinkhorn_w2,
)


@pytest.mark.parametrize("g", [ElasticPerturbation((1, 8, 8)), WassersteinPerturbation((1, 8, 8), max_tries=2)])
def test_elastic_and_wasserstein_keep_shape_and_follow_the_seed(g):
    x = torch.rand(6, 64)
    a, b, c = g(x, gen(0)), g(x, gen(0)), g(x, gen(1))
    assert a.shape == x.shape and a.dtype == x.dtype
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c) and not torch.allclose(a, x)


def test_elastic_without_strength_is_identity():
    x = torch.rand(3, 36)
    torch.testing.assert_close(ElasticPerturbation((1, 6, 6), alpha=0.0)(x, gen()), x, atol=1e-5, rtol=0)


def _pixel_cost(h, w, device, dtype):
    """The dense reference: squared distances between pixel centres, in units of the longer side."""
    ys, xs = torch.meshgrid(
        torch.arange(h, device=device, dtype=dtype), torch.arange(w, device=device, dtype=dtype), indexing="ij"
    )
    pts = torch.stack([ys.flatten(), xs.flatten()], 1) / max(h, w)
    return torch.cdist(pts, pts).pow(2)


@pytest.mark.parametrize("geometry", ["dense", "grid"])
@pytest.mark.parametrize("seed", range(5))
def test_sinkhorn_matches_exact_ot_on_point_masses(seed, geometry):
    """Equal-mass point sets: exact squared W2 by linear_sum_assignment; Sinkhorn within 2%."""
    rng = np.random.default_rng(seed)
    cost = _pixel_cost(8, 8, "cpu", torch.float64)
    k = 6
    src, dst = rng.choice(64, k, replace=False), rng.choice(64, k, replace=False)
    a = torch.zeros(1, 64, dtype=torch.float64)
    b = torch.zeros(1, 64, dtype=torch.float64)
    a[0, src] = b[0, dst] = 1 / k
    sub = cost[src][:, dst].numpy()
    rows, cols = linear_sum_assignment(sub)
    exact = sub[rows, cols].mean()
    estimate = sinkhorn_w2(a, b, cost if geometry == "dense" else (8, 8), epsilon=0.005, n_iter=500).item()
    assert estimate == pytest.approx(exact, rel=0.02)


@pytest.mark.parametrize("shape", [(5, 7), (12, 12)])
def test_separable_grid_kernel_equals_the_dense_cost_matrix(shape):
    """The (h, w) grid geometry applied separably gives the dense cost's answer."""
    rng = np.random.default_rng(0)
    p = shape[0] * shape[1]
    a, b = (torch.tensor(rng.random((4, p)) ** 4) for _ in range(2))
    a, b = a / a.sum(1, keepdim=True), b / b.sum(1, keepdim=True)
    dense = sinkhorn_w2(a, b, _pixel_cost(*shape, "cpu", torch.float64), epsilon=0.01)
    torch.testing.assert_close(sinkhorn_w2(a, b, shape, epsilon=0.01), dense, rtol=1e-10, atol=0)


def test_sinkhorn_of_identical_images_is_about_zero_and_rejects_tiny_epsilon():
    x = torch.rand(4, 64)
    w = WassersteinPerturbation((1, 8, 8))
    assert w.distance(x, x).max().item() < 1e-8
    with pytest.raises(ValueError, match="too small"):
        sinkhorn_w2(torch.ones(1, 4) / 4, torch.ones(1, 4) / 4, torch.ones(4, 4), epsilon=1e-4)


def test_acceptance_falls_as_eta_shrinks(digits):
    X = torch.tensor(digits[0][:128], dtype=torch.float32)
    rates = [WassersteinPerturbation((1, 8, 8), eta=eta).propose(X, gen(1))[2].float().mean().item() for eta in (0.3, 0.1, 0.03)]
    assert rates[0] > rates[1] > rates[2]


def test_point_sets_rotate_rigidly_about_their_box_centre():
    """Rotation alone keeps every pairwise distance and the bounding-box centre's distances."""
    x = torch.rand(7, 16, dtype=torch.float64)
    g = PointSetPerturbation(rotation=40.0, scale=1.0, shear=0.0, translate=0.0, noise=0.0)
    out = g(x, gen()).reshape(7, 8, 2)
    pts = x.reshape(7, 8, 2)
    torch.testing.assert_close(torch.cdist(out, out), torch.cdist(pts, pts))
    centre = (pts.amin(1, keepdim=True) + pts.amax(1, keepdim=True)) / 2
    torch.testing.assert_close((out - centre).norm(dim=2), (pts - centre).norm(dim=2))
    assert not torch.allclose(out, pts)
    # zoom and shift scale with the row's extent: the same shape 10x larger moves 10x as far
    h = PointSetPerturbation(rotation=0.0, scale=(0.8, 1.2), shear=0.0, translate=0.1, noise=0.0)
    torch.testing.assert_close(h(10 * x, gen(3)), 10 * h(x, gen(3)))


def test_point_sets_need_coordinate_pairs():
    with pytest.raises(ValueError, match="even number of features"):
        check_perturbation(PointSetPerturbation(), torch.rand(4, 5), gen())


def test_names_select_the_new_models():
    assert isinstance(make_perturbation("elastic", (1, 8, 8)), ElasticPerturbation)
    assert isinstance(make_perturbation("wasserstein", (1, 8, 8)), WassersteinPerturbation)
    assert isinstance(make_perturbation("points"), PointSetPerturbation)
    assert isinstance(make_perturbation(["affine", "elastic"], (1, 8, 8)), Compose)


def test_unknown_names_and_empty_lists_are_named_errors():
    for spec in ["nope", ["tabular", "nope"], ("nope",)]:
        with pytest.raises(ValueError, match=r"unknown perturbation 'nope'; choose from \['affine'"):
            make_perturbation(spec, None)  # tabular data: the name is unknown, not an image-only one
    for spec in [[], ()]:
        with pytest.raises(ValueError, match=r"perturbation=.* is empty; name at least one"):
            make_perturbation(spec, (1, 8, 8))


@pytest.mark.parametrize("name", ["IICClustering", "DECClustering", "DeepInfoMaxEmbedder"])
def test_estimators_reject_an_empty_perturbation_list(name, blobs):
    import skmic

    X, _ = blobs
    with pytest.raises(ValueError, match="is empty"):
        getattr(skmic, name)(perturbation=[], max_epochs=1, device="cpu").fit(X)


def test_neighbor_perturbation_draws_a_near_other_row():
    import torch
    from sklearn.neighbors import NearestNeighbors

    from skmic._data import Rows
    from skmic.perturbations import NeighborPerturbation, make_perturbation

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4)) * np.array([1.0, 10.0, 100.0, 0.1])  # units that standardising evens out
    g = make_perturbation(["neighbors"], data=Rows(X, "cpu", dtype=torch.float64))
    x = torch.tensor(X)
    view = g(x, torch.Generator().manual_seed(0))
    assert view.shape == x.shape and view.dtype == x.dtype
    Z = (X - X.mean(0)) / X.std(0, ddof=1)
    near = NearestNeighbors(n_neighbors=11).fit(Z).kneighbors(Z, return_distance=False)[:, 1:]  # without itself
    drawn = np.array([np.flatnonzero((X == v).all(1))[0] for v in view.numpy()])  # each view is a row of X
    assert all(drawn[i] in near[i] for i in range(len(X)))
    assert len(np.unique(drawn)) > 100  # a random neighbour, not always the nearest
    again = g(x, torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(again.numpy(), view.numpy())
    # larger data: a fixed random subset of MAX_REFERENCE_ROWS is the reference
    big = Rows(rng.normal(size=(NeighborPerturbation.MAX_REFERENCE_ROWS + 50, 2)), "cpu")
    reference = NeighborPerturbation.from_rows(big).reference
    assert len(reference) == NeighborPerturbation.MAX_REFERENCE_ROWS
    np.testing.assert_array_equal(reference.numpy(), NeighborPerturbation.from_rows(big).reference.numpy())
    with pytest.raises(ValueError, match="only IICClustering"):
        make_perturbation("neighbors")


@pytest.mark.parametrize(
    "g, n_features",
    [
        (ImagePerturbation((1, 8, 8)), 64),
        (ImagePerturbation((3, 5, 7), hflip=True, vflip=True, noise=0.0), 105),
        (ImagePerturbation((1, 6, 6), brightness=0.0, contrast=0.0, noise=0.0), 36),
        (ElasticPerturbation((1, 8, 8)), 64),
        (TabularPerturbation(), 4),  # no draw/apply: called once per block
    ],
)
def test_restart_views_are_each_blocks_lone_perturbation(g, n_features):
    x = torch.rand(3, 5, n_features)
    x0 = x.clone()
    views = restart_views(g, x, [gen(s) for s in (4, 5, 6)])
    assert torch.equal(x, x0)
    lone = torch.stack([g(xk, gen(s)) for xk, s in zip(x, (4, 5, 6))])
    assert torch.equal(views, lone) and not torch.equal(views, x)


def test_image_perturbation_draws_do_not_depend_on_the_images():
    g = ImagePerturbation((1, 8, 8))
    a = g.draw((4, 1, 8, 8), gen(2), "cpu")
    b = g.draw((4, 1, 8, 8), gen(2), "cpu")
    assert a.keys() == {"theta", "contrast", "brightness", "noise"}
    assert all(torch.equal(a[k], b[k]) for k in a)
    images = torch.rand(4, 1, 8, 8)
    out, theta = g.perturb(images, gen(2))
    assert torch.equal(out, g.apply(images, a)) and torch.equal(theta, a["theta"])
