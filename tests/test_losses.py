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
