"""Losses against naive NumPy references and hand-computed values."""

import math

import numpy as np
import pytest
import torch

from skmic.nn.losses import iic_joint, iic_loss, mutual_information


# ---------------------------------------------------------------------- IIC
def naive_mi(joint, lamb=1.0):
    """Mutual information of a symmetrised, normalised joint, cell by cell."""
    P = (joint + joint.T) / 2
    P = P / P.sum()
    pi, pj = P.sum(1), P.sum(0)
    eps = np.finfo(P.dtype).eps
    total = 0.0
    for c in range(P.shape[0]):
        for d in range(P.shape[1]):
            p = max(P[c, d], eps)
            total += p * (math.log(p) - lamb * math.log(max(pi[c], eps)) - lamb * math.log(max(pj[d], eps)))
    return total


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("lamb", [1.0, 1.5])
def test_mi_matches_naive_reference(seed, lamb):
    rng = np.random.default_rng(seed)
    joint = rng.random((4, 4)) ** 3
    got = mutual_information(torch.tensor(joint), lamb).item()
    assert got == pytest.approx(naive_mi(joint, lamb), abs=1e-6)


def test_loss_matches_naive_on_soft_assignments():
    rng = np.random.default_rng(0)
    z = rng.dirichlet(np.ones(5), size=40)
    zt = rng.dirichlet(np.ones(5), size=40)
    got = iic_loss(torch.tensor(z), torch.tensor(zt)).item()
    assert got == pytest.approx(-naive_mi(z.T @ zt), abs=1e-6)


def test_perfect_uniform_pairs_give_ln_c():
    C = 6
    onehot = torch.eye(C).repeat(5, 1).double()  # balanced, confident, paired
    assert (-iic_loss(onehot, onehot)).item() == pytest.approx(math.log(C), abs=1e-9)


def test_independent_assignments_give_zero():
    C = 4
    # every (c, c') pair equally often: the joint is the product of marginals
    a = torch.eye(C).repeat_interleave(C, 0).double()
    b = torch.eye(C).repeat(C, 1).double()
    assert iic_loss(a, b).item() == pytest.approx(0.0, abs=1e-9)
    # a single cluster for everything carries no information either
    one = torch.zeros(10, C, dtype=torch.float64)
    one[:, 0] = 1
    assert iic_loss(one, one).item() == pytest.approx(0.0, abs=1e-9)


def test_heads_are_independent_and_batched():
    rng = np.random.default_rng(1)
    z = torch.tensor(rng.dirichlet(np.ones(3), size=(20, 4)))  # (n, H, C)
    zt = torch.tensor(rng.dirichlet(np.ones(3), size=(20, 4)))
    per_head = iic_loss(z, zt)
    assert per_head.shape == (4,)
    for h in range(4):
        assert per_head[h].item() == pytest.approx(iic_loss(z[:, h], zt[:, h]).item(), abs=1e-12)
    # joints add over batches: the loss of the dataset from batch sums
    whole = iic_joint(z[:, 0], zt[:, 0])
    parts = iic_joint(z[:10, 0], zt[:10, 0]) + iic_joint(z[10:, 0], zt[10:, 0])
    torch.testing.assert_close(whole, parts)


def test_empty_cells_do_not_give_nan_and_gradients_flow():
    z = torch.zeros(8, 3, dtype=torch.float64)
    z[:, 0] = 1
    logits = torch.zeros(8, 3, requires_grad=True)
    loss = iic_loss(z.float(), logits.softmax(1))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    for n in (1, 2, 3):  # any batch size
        assert torch.isfinite(iic_loss(torch.rand(n, 4).softmax(1), torch.rand(n, 4).softmax(1)))


# ---------------------------------------------------------------------- DEC
from skmic.nn.losses import dec_kl_loss, student_t_assignment, target_distribution  # noqa: E402


def naive_q(z, mu, alpha):
    q = np.array([[(1 + np.sum((zi - mj) ** 2) / alpha) ** (-(alpha + 1) / 2) for mj in mu] for zi in z])
    return q / q.sum(1, keepdims=True)


def naive_p(q):
    w = q**2 / q.sum(0)
    return w / w.sum(1, keepdims=True)


@pytest.mark.parametrize("alpha", [1.0, 0.5, 3.0])
def test_student_t_and_target_match_naive(alpha):
    rng = np.random.default_rng(0)
    z, mu = rng.normal(size=(7, 3)), rng.normal(size=(4, 3))
    q = student_t_assignment(torch.tensor(z), torch.tensor(mu), alpha)
    np.testing.assert_allclose(q.numpy(), naive_q(z, mu, alpha), atol=1e-6)
    np.testing.assert_allclose(target_distribution(q).numpy(), naive_p(naive_q(z, mu, alpha)), atol=1e-6)


def test_kl_and_its_gradient_match_naive():
    rng = np.random.default_rng(1)
    z, mu = rng.normal(size=(6, 2)), rng.normal(size=(3, 2))
    p = naive_p(naive_q(z, mu, 1.0))
    zt = torch.tensor(z, requires_grad=True)
    mut = torch.tensor(mu, requires_grad=True)
    loss = dec_kl_loss(torch.tensor(p), student_t_assignment(zt, mut, 1.0))
    q = naive_q(z, mu, 1.0)
    assert loss.item() == pytest.approx(np.sum(p * np.log(p / q)) / len(z), abs=1e-6)
    loss.backward()
    # the paper's gradients (eq. 4 and 5), divided by n for the batch mean
    dist = 1 + ((z[:, None] - mu[None]) ** 2).sum(2)
    coef = (p - q) / dist
    dz = 2 * (coef[:, :, None] * (z[:, None] - mu[None])).sum(1) / len(z)
    dmu = -2 * (coef[:, :, None] * (z[:, None] - mu[None])).sum(0) / len(z)
    np.testing.assert_allclose(zt.grad.numpy(), dz, atol=1e-6)
    np.testing.assert_allclose(mut.grad.numpy(), dmu, atol=1e-6)


def test_target_sharpens_and_is_fixed():
    q = torch.tensor([[0.6, 0.4], [0.5, 0.5], [0.2, 0.8]], dtype=torch.float64)
    p = target_distribution(q)
    assert p[0, 0] > q[0, 0] and p[2, 1] > q[2, 1]
    qg = q.clone().requires_grad_(True)
    dec_kl_loss(target_distribution(qg), qg).backward()  # p is detached: only q's term
    np.testing.assert_allclose(qg.grad.numpy(), -(p / q).numpy() / 3, atol=1e-12)


# ---------------------------------------------------------------------- DIM
from skmic.nn.critics import grad_reverse  # noqa: E402
from skmic.nn.losses import dv_loss, infonce_loss, jsd_loss, prior_matching_loss  # noqa: E402


def softplus(x):
    return np.log1p(np.exp(x))


def naive_parts(u):
    """Positive and negative scores by explicit loops (diagonal = positives)."""
    pos, neg = [], []
    n = u.shape[0]
    for i in range(n):
        for j in range(n):
            cells = u[i, j] if u.ndim == 3 else [u[i, j]]
            (pos if i == j else neg).extend(np.atleast_1d(cells))
    return np.array(pos), np.array(neg)


@pytest.mark.parametrize("shape", [(5, 5), (4, 4, 3)])
def test_jsd_matches_naive(shape):
    u = np.random.default_rng(0).normal(size=shape) * 2
    pos, neg = naive_parts(u)
    expected = softplus(-pos).mean() + softplus(neg).mean()
    assert jsd_loss(torch.tensor(u)).item() == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("shape", [(5, 5), (4, 4, 3)])
def test_infonce_matches_naive(shape):
    u = np.random.default_rng(1).normal(size=shape)
    terms = []
    n = shape[0]
    for i in range(n):
        for l in range(shape[2] if len(shape) == 3 else 1):
            row = np.array([u[i, j, l] if len(shape) == 3 else u[i, j] for j in range(n)])
            terms.append(-(row[i] - np.log(np.exp(row).sum())))
    assert infonce_loss(torch.tensor(u)).item() == pytest.approx(np.mean(terms), abs=1e-9)


@pytest.mark.parametrize("shape", [(5, 5), (4, 4, 3)])
def test_dv_matches_naive_and_uses_exactly_the_diagonal(shape):
    u = np.random.default_rng(2).normal(size=shape) * 3
    pos, neg = naive_parts(u)
    expected = np.log(np.exp(neg).mean()) - pos.mean()
    assert dv_loss(torch.tensor(u)).item() == pytest.approx(expected, abs=1e-9)
    # raising one positive changes the positive mean only; a negative, the log-mean-exp only
    v = u.copy()
    v[0, 0] += 1.0
    assert dv_loss(torch.tensor(v)).item() == pytest.approx(expected - np.size(u[0, 0]) / len(pos), abs=1e-9)
    # huge scores do not overflow (max-shift)
    assert np.isfinite(dv_loss(torch.tensor(u * 1000)).item())


def test_prior_matching_and_gradient_reversal():
    logits = torch.tensor([2.0, -1.0])
    expected = softplus(-2.0) / 1 * 0.5 + softplus(1.0) * 0.5  # mean BCE with ones
    loss = prior_matching_loss(logits, torch.tensor([0.5, -0.5]))
    assert loss.item() == pytest.approx(expected + (softplus(0.5) + softplus(-0.5)) / 2, abs=1e-6)
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    (grad_reverse(x) * 3).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([-3.0, -3.0]))


def test_iic_joint_of_repeated_pairs_is_the_joint_with_summed_copies():
    # IICClustering's step pairs each sample with r perturbed copies through the summed copies
    g = torch.Generator().manual_seed(0)
    z = torch.rand(6, 2, 4, generator=g).softmax(-1)
    z_pert = torch.rand(3 * 6, 2, 4, generator=g).softmax(-1)
    torch.testing.assert_close(
        iic_loss(z.repeat(3, 1, 1), z_pert), iic_loss(z, z_pert.view(3, 6, 2, 4).sum(0)), atol=1e-6, rtol=1e-6
    )
