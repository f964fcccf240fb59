"""Every loss of skmic, one function per idea, each checked against a naive
reference in ``tests/test_losses.py``. Plain torch: no scikit-learn here.

Sections: IIC (mutual information of paired assignments), DEC (Student-t
assignment, target distribution, KL), DIM (JSD, InfoNCE and DV estimators).
"""


import torch

__all__ = [
    "dec_kl_loss",
    "dv_loss",
    "infonce_loss",
    "jsd_loss",
    "prior_matching_loss",
    "iic_joint",
    "iic_loss",
    "mutual_information",
    "segmentation_joint",
    "segmentation_mi",
    "student_t_assignment",
    "target_distribution",
]

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


def segmentation_joint(z, z_pert, displacement, mask=None):
    """Unnormalised joints of per-pixel assignments for every displacement.

    IIC for segmentation (Ji et al. 2019, section 3.3, eq. 5): for every
    displacement ``t`` with ``|t|_inf <= d``,
    ``J_t = sum_i sum_u z_i[:, u] z'_i[:, u + t]^T`` over images ``i`` and
    pixels ``u`` whose partner ``u + t`` lies inside the image. All
    ``(2d + 1)^2`` joints come from one convolution of the (C, n, H, W)
    tensors, ``z`` zero-padded by ``d``; the sum over the batch is the
    convolution's sum over input channels. Sub-heads are convolution groups.
    ``segmentation_joint(z, z', 0)`` is :func:`iic_joint` with every pixel a
    sample.

    Parameters
    ----------
    z, z_pert : Tensor of shape (n, C, H, W) or (n, K, C, H, W)
        Softmax outputs of the images and of their perturbed copies mapped
        back onto the images' pixel grid (``K`` sub-heads).
    displacement : int
        ``d``: the largest displacement along each axis, in pixels of ``z``.
    mask : Tensor of shape (n, H, W), optional
        1 for pixels that count, 0 for pixels that do not (unlabelled or
        outside the perturbed view); both outputs are zeroed there, so a
        masked pixel contributes to no joint.

    Returns
    -------
    Tensor of shape (2d + 1, 2d + 1, C, C) or (K, 2d + 1, 2d + 1, C, C)
        Entry ``[dy + d, dx + d, c, c']`` pairs class ``c`` at ``u`` with
        class ``c'`` at ``u + (dy, dx)`` of the perturbed map.
    """
    heads = z.dim() == 5
    if not heads:
        z, z_pert = z[:, None], z_pert[:, None]
    if mask is not None:
        mask = mask[:, None, None].to(z.dtype)
        z, z_pert = z * mask, z_pert * mask
    n, k, c, h, w = z.shape
    d = int(displacement)
    # conv input: batch = clusters of z', channels = (head, image); weight: (head x cluster of z, image)
    source = z_pert.permute(2, 1, 0, 3, 4).reshape(c, k * n, h, w)
    weight = z.permute(1, 2, 0, 3, 4).reshape(k * c, n, h, w)
    out = torch.nn.functional.conv2d(source, weight, padding=d, groups=k)  # (c', k*c, 2d+1, 2d+1)
    joint = out.reshape(c, k, c, 2 * d + 1, 2 * d + 1).permute(1, 3, 4, 2, 0)
    return joint if heads else joint[0]


def segmentation_mi(joint, lamb=1.0, reduction="mean"):
    """Mutual information of the per-displacement joints of :func:`segmentation_joint`.

    Parameters
    ----------
    joint : Tensor of shape (..., 2d + 1, 2d + 1, C, C)
    lamb : float, default=1.0
        As in :func:`mutual_information`.
    reduction : {"mean", "sum"}, default="mean"
        ``"mean"``: every displacement's joint is normalised on its own and
        the MIs are averaged (the reference code's "uncollapsed" loss, used
        by all the paper's runs): each displacement is its own prediction
        task, and pixel pairs at a region border weigh no more at one
        displacement than at another. ``"sum"``: the joints are summed into
        one C x C joint first (one MI of the pooled pairs).

    Returns
    -------
    Tensor of shape (...)
    """
    if reduction == "sum":
        return mutual_information(joint.sum((-3, -4)), lamb)
    if reduction == "mean":
        return mutual_information(joint, lamb).mean((-1, -2))
    raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}.")


# ---------------------------------------------------------------------- DEC


def student_t_assignment(z, centers, alpha=1.0):
    """DEC's soft assignment of embeddings to centroids (Xie et al. 2016, eq. 1).

    ``q_ij = (1 + |z_i - mu_j|^2 / alpha) ** (-(alpha + 1) / 2)``, normalised
    over ``j``: a Student's t kernel with ``alpha`` degrees of freedom.

    Parameters
    ----------
    z : Tensor (n, d)
    centers : Tensor (k, d)
    alpha : float, default=1.0

    Returns
    -------
    q : Tensor (n, k), rows summing to 1.
    """
    sq = torch.cdist(z, centers).pow(2)
    log_kernel = -(alpha + 1.0) / 2.0 * torch.log1p(sq / alpha)
    return log_kernel.softmax(dim=1)  # normalising in log space avoids underflow


def target_distribution(q, frequencies=None):
    """DEC's auxiliary target (eq. 3): ``p_ij = (q_ij^2 / f_j) / sum_j' (q_ij'^2 / f_j')``.

    ``f_j = sum_i q_ij`` are the soft cluster frequencies; squaring sharpens
    the assignments and dividing by ``f_j`` keeps large clusters from
    absorbing the others. Compute it on the whole dataset, not per batch:
    ``q`` holds every sample, or ``frequencies`` gives the ``f_j`` of the
    whole dataset and ``q`` is a batch of it.
    """
    weight = q.pow(2) / (q.sum(0, keepdim=True) if frequencies is None else frequencies)
    return weight / weight.sum(1, keepdim=True)


def dec_kl_loss(p, q):
    """``KL(P || Q) = (1/n) sum_ij p_ij log(p_ij / q_ij)`` (eq. 2), batch mean.

    ``p`` is a fixed target (no gradient flows into it).
    """
    p = p.detach()
    eps = torch.finfo(q.dtype).tiny
    return (p * (torch.log(p.clamp_min(eps)) - torch.log(q.clamp_min(eps)))).sum(1).mean()


# ---------------------------------------------------------------------- DIM
#
# Each estimator takes a score tensor ``u`` of shape (n, n) or (n, n, L):
# ``u[i, j, l]`` scores the code of sample i against the features of sample
# j (at location l). Positives are exactly the diagonal i == j; every other
# entry is a negative. Each returns a loss to minimise, minus a lower bound
# (or a proxy) of the mutual information.


def _diagonal(u):
    n = u.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=u.device)
    if u.dim() == 3:
        eye = eye[:, :, None].expand_as(u)
    return eye


def jsd_loss(u):
    """Jensen-Shannon estimator (Hjelm et al. 2019, eq. 4; Nowozin et al. 2016).

    ``E_pos[softplus(-u)] + E_neg[softplus(u)]``, i.e. minus
    ``E_pos[-softplus(-u)] - E_neg[softplus(u)]``.
    """
    pos = _diagonal(u)
    return torch.nn.functional.softplus(-u[pos]).mean() + torch.nn.functional.softplus(u[~pos]).mean()


def infonce_loss(u):
    """InfoNCE (van den Oord et al. 2018; Hjelm et al. 2019, eq. 5).

    For every code i (and location l) a softmax over the samples j picks
    the positive j = i among the n - 1 negatives of the batch:
    ``mean_{i,l} -log softmax_j(u[i, :, l])[i]``. Its negative plus
    ``log n`` lower-bounds the mutual information.
    """
    target = torch.arange(u.shape[0], device=u.device)
    if u.dim() == 3:
        target = target[:, None].expand(u.shape[0], u.shape[2])
    return torch.nn.functional.cross_entropy(u, target)


def dv_loss(u):
    """Donsker-Varadhan estimator (MINE, Belghazi et al. 2018).

    ``log mean_neg exp(u) - mean_pos u``, the log-mean-exp computed with the
    max-shift (logsumexp) trick. The negatives are exactly the off-diagonal
    entries (the DIM reference code's broadcast mask got this wrong).
    """
    pos = _diagonal(u)
    neg = u[~pos]
    log_mean_exp = torch.logsumexp(neg, 0) - torch.log(torch.tensor(float(neg.numel()), dtype=u.dtype, device=u.device))
    return log_mean_exp - u[pos].mean()


#: estimator name -> loss function
MI_ESTIMATORS = {"jsd": jsd_loss, "infonce": infonce_loss, "dv": dv_loss}


def prior_matching_loss(d_prior, d_code):
    """Discriminator loss of DIM's prior matching (eq. 7), to minimise.

    ``-E_prior[log D] - E_code[log(1 - D)]`` from the discriminator's logits
    on prior samples and on codes. The encoder plays the other side: it
    maximises this loss (see :func:`skmic.nn.critics.grad_reverse`).
    """
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    return bce(d_prior, torch.ones_like(d_prior)) + bce(d_code, torch.zeros_like(d_code))
