"""Every loss of skmic, one function per idea, each checked against a naive
reference in ``tests/test_losses.py``. Plain torch: no scikit-learn here.

Sections: IIC (mutual information of paired assignments), DEC (Student-t
assignment, target distribution, KL), DIM (JSD, InfoNCE and DV estimators).
"""

import math

import torch

__all__ = ["iic_joint", "iic_loss", "mutual_information"]

# ---------------------------------------------------------------------- IIC


def iic_joint(z, z_pert):
    """Unnormalised joint of paired soft assignments, per head.

    ``J_h = sum_i z_hi z'_hi^T`` (Ji et al. 2019, eq. 3, before the
    symmetrisation and normalisation done by :func:`iic_loss`). Sums of
    ``iic_joint`` over batches give the joint of the whole dataset.

    Parameters
    ----------
    z, z_pert : Tensor of shape (n, C) or (n, H, C)
        Softmax outputs for samples and their perturbed copies (``H`` heads).

    Returns
    -------
    Tensor of shape (C, C) or (H, C, C)
    """
    if z.dim() == 2:
        return z.T @ z_pert
    return torch.einsum("nhc,nhd->hcd", z, z_pert)


def mutual_information(joint, lamb=1.0):
    """``sum_cc' P_cc' (ln P_cc' - lamb ln P_c - lamb ln P_c')`` of a joint.

    The joint is symmetrised, ``(J + J^T) / 2``, and normalised to sum to 1;
    its marginals are its row and column sums, taken before ``P`` and the
    marginals are clamped at machine epsilon for the logarithm (IIC's
    reference code; without the clamp empty cells give NaN). With
    ``lamb=1`` this is the exact mutual information in nats.

    Parameters
    ----------
    joint : Tensor of shape (..., C, C)
        Non-negative, e.g. from :func:`iic_joint`.
    lamb : float, default=1.0
        Exponent of the marginals; > 1 favours balanced clusters more.

    Returns
    -------
    Tensor of shape (...)
    """
    joint = (joint + joint.transpose(-1, -2)) / 2
    joint = joint / joint.sum((-1, -2), keepdim=True)
    eps = torch.finfo(joint.dtype).eps
    p_row = joint.sum(-1, keepdim=True).clamp_min(eps)
    p_col = joint.sum(-2, keepdim=True).clamp_min(eps)
    joint = joint.clamp_min(eps)
    return (joint * (joint.log() - lamb * p_row.log() - lamb * p_col.log())).sum((-1, -2))


def iic_loss(z, z_pert, lamb=1.0):
    """IIC's loss: minus the mutual information of paired assignments.

    Ji, Henriques, Vedaldi, "Invariant Information Clustering", ICCV 2019,
    eq. 3: ``-I(z, z')`` with ``P = sym(sum_i z_i z'_i^T)`` normalised.
    Negative by design; its minimum, ``-ln C``, is reached by confident,
    balanced and perturbation-consistent assignments.

    Parameters
    ----------
    z, z_pert : Tensor of shape (n, C) or (n, H, C)
    lamb : float, default=1.0

    Returns
    -------
    Tensor of shape () or (H,)
    """
    return -mutual_information(iic_joint(z, z_pert), lamb)


# ---------------------------------------------------------------------- DEC

# ---------------------------------------------------------------------- DIM
