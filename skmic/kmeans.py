"""k-means in torch: greedy k-means++, Lloyd iterations, all restarts at once.

The ``n_init`` restarts are run *together*: the centres of every restart are
stacked into one ``(n_init * k, d)`` matrix, so each Lloyd iteration reads the
data once for all restarts (one matrix product for the distances, one for the
centre sums). A restart that has converged drops out of the active set.
Distances are computed in row chunks whose size bounds the memory in use.

:func:`kmeans` works on tensors and is what DEC uses for its initialisation
on the device; :class:`KMeansBaseline` is the scikit-learn estimator.
"""

import math
import numbers
import sys
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm
from sklearn.base import ClassNamePrefixFeaturesOutMixin, ClusterMixin, TransformerMixin
from sklearn.exceptions import ConvergenceWarning

from . import _distributed as distributed
from ._base import CONTROL_CONSTRAINTS, BaseTorchEstimator, Interval, StrOptions
from ._data import Rows, chunk_starts
from ._training import Checkpoint, phase_label, progress_bar

__all__ = ["KMeansBaseline", "KMeansResult", "kmeans"]

#: upper bound on the elements of one chunk of the (rows x centres) distance
#: matrix; bounds the extra memory of distance computations (~64 MB in fp32).
_CHUNK_ELEMENTS = 1 << 24


def _row_chunks(n_rows, n_cols):
    step = max(1, _CHUNK_ELEMENTS // max(1, n_cols))
    return [(s, min(s + step, n_rows)) for s in range(0, n_rows, step)]


def _sq_dist_min(X, x_sq, centers):
    """Nearest centre and its squared distance for every row of ``X``.

    Parameters
    ----------
    X : Tensor (n, d)
    x_sq : Tensor (n,)
        Squared row norms of ``X``.
    centers : Tensor (r, k, d)
        ``r`` independent sets of ``k`` centres.

    Returns
    -------
    dist : Tensor (n, r)
        Squared distance to the nearest centre of each set (clamped at 0).
    labels : LongTensor (n, r)
    """
    r, k, d = centers.shape
    flat = centers.reshape(r * k, d)
    c_sq = (flat * flat).sum(1)
    dist = torch.empty(X.shape[0], r, dtype=X.dtype, device=X.device)
    labels = torch.empty(X.shape[0], r, dtype=torch.long, device=X.device)
    for s, e in _row_chunks(X.shape[0], r * k):
        block = torch.addmm(c_sq, X[s:e], flat.T, alpha=-2.0)
        block += x_sq[s:e, None]
        best, arg = block.view(e - s, r, k).min(dim=2)
        dist[s:e] = best.clamp_min_(0)
        labels[s:e] = arg
    return dist, labels


def _sq_dist(X, x_sq, points):
    """Squared distances (n, m) between rows of ``X`` and ``points`` (m, d)."""
    out = torch.addmm((points * points).sum(1), X, points.T, alpha=-2.0)
    out += x_sq[:, None]
    return out.clamp_min_(0)


#: rows of the data per chunk of a pass, in values (4 Mi): what one read of a
#: streamed source holds; the distance matrices of a chunk are split further
#: by :data:`_CHUNK_ELEMENTS`
_PASS_ELEMENTS = 1 << 22

#: and at most this many rows per chunk of a pass: each row of a chunk also
#: costs its distances, labels and per-restart state (a few hundred bytes for
#: DEC's 10-dimensional embedding and 5 restarts), so that without this bound
#: the chunks of narrow data (419 430 rows of 10 values) made the memory of a
#: pass grow with the number of rows up to that size
_PASS_ROWS = 1 << 17


def _passes(rows, shard=False):
    """``[(start, stop), ...]``: the chunks of a pass over ``rows`` (in memory and streamed alike).

    With ``shard``, only this rank's block of the rows in a distributed fit
    (:func:`skmic._distributed.block`; all of them in one process): the
    passes whose per-chunk sums are then summed over the ranks.
    """
    start, stop = distributed.block(len(rows)) if shard else (0, len(rows))
    step = max(1, min(_PASS_ROWS, _PASS_ELEMENTS // max(1, rows.shape[1])))
    return [(s + start, e + start) for s, e in chunk_starts(stop - start, step)]


def _centred(rows, mean, start, stop):
    """Rows ``start:stop`` minus ``mean``, and their squared norms."""
    xc = rows.slice(start, stop) - mean
    return xc, (xc * xc).sum(1)


def _kmeans_plusplus(rows, mean, n_clusters, n_init, generator):
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007), ``n_init`` at once, in passes over ``rows``.

    At each step ``2 + ln(k)`` candidates are drawn with probability
    proportional to the squared distance to the nearest chosen centre, and
    the one that lowers the potential most is kept (scikit-learn's variant).
    Each step makes three passes over the data (the potential and the draws'
    rows, the candidates' potentials, the new nearest distances); the
    nearest distances, ``n_init`` values a sample, are kept in a
    :class:`~skmic._data.RowStore`.
    """
    (n, d), dtype, device = rows.shape, mean.dtype, mean.device
    trials = 2 + int(math.log(n_clusters))
    runs = torch.arange(n_init, device=device)
    centers = torch.empty(n_init, n_clusters, d, dtype=dtype, device=device)
    first = torch.randint(n, (n_init,), generator=generator, device=device)
    centers[:, 0] = rows.rows(first) - mean
    closest = rows.store(n_init, dtype)  # (n, r)
    for s, e in _passes(rows):
        xc, x_sq = _centred(rows, mean, s, e)
        closest.write(s, _sq_dist(xc, x_sq, centers[:, 0]))
    for c in range(1, n_clusters):
        potential = sum(closest.slice(s, e).sum(0) for s, e in _passes(rows))  # (r,)
        draws = torch.rand(n_init, trials, generator=generator, device=device, dtype=torch.float64)
        draws = draws * potential.double()[:, None]
        # the first row whose cumulative potential reaches each draw, chunk by chunk
        candidates = torch.full((n_init, trials), n - 1, dtype=torch.long, device=device)
        found = torch.zeros(n_init, trials, dtype=torch.bool, device=device)
        offset = torch.zeros(n_init, dtype=torch.float64, device=device)
        for s, e in _passes(rows):
            cumulative = closest.slice(s, e).double().cumsum(0) + offset  # (m, r)
            pos = torch.searchsorted(cumulative.T.contiguous(), draws)
            new = ~found & (pos < e - s)
            candidates = torch.where(new, pos + s, candidates)
            found |= new
            offset = cumulative[-1]
        cand_points = rows.rows(candidates.reshape(-1)) - mean  # (r * trials, d)
        cand_potential = torch.zeros(n_init, trials, dtype=dtype, device=device)
        for s, e in _passes(rows):
            xc, x_sq = _centred(rows, mean, s, e)
            cand_dist = _sq_dist(xc, x_sq, cand_points).view(e - s, n_init, trials)
            cand_potential += torch.minimum(cand_dist, closest.slice(s, e)[:, :, None]).sum(0)
        best = cand_potential.argmin(1)  # (r,)
        centers[:, c] = cand_points.view(n_init, trials, d)[runs, best]
        for s, e in _passes(rows):
            xc, x_sq = _centred(rows, mean, s, e)
            closest.write(s, torch.minimum(_sq_dist(xc, x_sq, centers[:, c]), closest.slice(s, e)))
    return centers


def _centre_sums(X, labels, n_init, n_clusters):
    """Per-cluster sums (r, k, d) and counts (r, k) through one-hot products."""
    n, d = X.shape
    sums = torch.zeros(n_init * n_clusters, d, dtype=X.dtype, device=X.device)
    offsets = torch.arange(n_init, device=X.device) * n_clusters
    flat = labels + offsets  # (n, r) ids into the stacked centres
    for s, e in _row_chunks(n, n_init * n_clusters):
        onehot = torch.zeros(e - s, n_init * n_clusters, dtype=X.dtype, device=X.device)
        onehot.scatter_(1, flat[s:e], 1.0)
        sums.addmm_(onehot.T, X[s:e])
    counts = torch.bincount(flat.reshape(-1), minlength=n_init * n_clusters)
    return sums.view(n_init, n_clusters, d), counts.view(n_init, n_clusters)


def _relocate_empty(rows, mean, centers, counts, far):
    """Move the centres of empty clusters onto the points farthest from theirs.

    ``far`` holds, per restart, the largest distances to the nearest centre
    and their rows (:func:`_farthest`).
    """
    for r in torch.nonzero(counts.min(1).values == 0).flatten().tolist():
        empty = torch.nonzero(counts[r] == 0).flatten()
        centers[r, empty] = rows.rows(far[1][: len(empty), r]) - mean


def _farthest_over_ranks(far, count, n_restarts, device):
    """The ``count`` largest distances per restart over every rank's ``far`` (:func:`_farthest`).

    Each rank's ``(values, rows)`` is padded to ``count`` entries (distance
    -inf) before the gather, so that the ranks exchange tensors of one shape.
    ``far`` itself at world size 1.
    """
    if distributed.world_size() == 1:
        return far
    values = torch.full((count, n_restarts), -math.inf, dtype=torch.float64, device=device)
    index = torch.zeros(count, n_restarts, dtype=torch.long, device=device)
    if far is not None:
        values[: len(far[0])], index[: len(far[1])] = far[0], far[1]
    values, index = distributed.all_gather_cat(values), distributed.all_gather_cat(index)
    values, pick = torch.topk(values, count, dim=0)
    return values, torch.gather(index, 0, pick)


def _farthest(top, dist, start, count):
    """Merge the ``count`` largest distances per restart of a chunk into ``top = (values, rows)``."""
    values, index = torch.topk(dist, min(count, dist.shape[0]), dim=0)  # (<= count, r)
    if top is None:
        return values, index + start
    values, pick = torch.topk(torch.cat([top[0], values]), min(count, len(top[0]) + len(values)), dim=0)
    return values, torch.gather(torch.cat([top[1], index + start]), 0, pick)


@dataclass(frozen=True)
class KMeansResult:
    """What :func:`kmeans` returns; unpacks as ``centers, labels, inertia, n_iter``.

    Attributes
    ----------
    centers : Tensor (n_clusters, n_features)
        The kept restart's centres.
    labels : LongTensor (n_samples,)
        The nearest of ``centers`` for every row.
    inertia : float
        Sum of squared distances to the nearest centre, of the kept restart.
    n_iter : int
        Lloyd iterations of the kept restart.
    history : list of dict
        One record per Lloyd iteration of the kept restart: ``epoch`` (the
        iteration, from 1) and ``loss`` (the inertia of that iteration's
        assignment step, before its centres moved).
    restart_inertia : ndarray of shape (n_init,)
        Final inertia of every restart (one with an explicit ``init``); the
        kept one is the lowest.
    best : int
        The kept restart (index into ``restart_inertia``).
    restart_counts : ndarray of shape (n_init, n_clusters)
        Every restart's cluster sizes in its final assignment.
    interrupted : bool
        Whether a KeyboardInterrupt stopped the Lloyd iterations (only
        under a ``control``).

    Examples
    --------
    >>> import torch
    >>> from skmic.kmeans import kmeans
    >>> X = torch.tensor([[0.0], [1.0], [10.0], [11.0]])
    >>> result = kmeans(X, 2, n_init=3, generator=torch.Generator().manual_seed(0))
    >>> centers, labels, inertia, n_iter = result
    >>> inertia, result.restart_inertia.shape, bool(result.restart_inertia[result.best] == inertia)
    (1.0, (3,), True)
    """

    centers: torch.Tensor
    labels: torch.Tensor
    inertia: float
    n_iter: int
    history: list = field(default_factory=list)
    restart_inertia: np.ndarray = None
    best: int = 0
    restart_counts: np.ndarray = None
    interrupted: bool = False

    def __iter__(self):
        return iter((self.centers, self.labels, self.inertia, self.n_iter))


def kmeans(
    X, n_clusters, *, n_init=10, max_iter=300, tol=1e-4, init="k-means++", generator=None, verbose=0,
    control=None, desc="k-means", owner=None, select="inertia",
):
    """k-means on a tensor, on the tensor's device, with ``n_init`` restarts.

    Parameters
    ----------
    X : Tensor of shape (n_samples, n_features) or skmic._data.Rows
        Float32 or float64; computations keep its dtype and device. The
        data is read in chunks, one pass per Lloyd iteration and three per
        k-means++ step, so rows of a streamed source are never all in
        memory; the per-sample state (``n_init`` distances and labels a
        sample) is kept in a :class:`~skmic._data.RowStore`, on disk for a
        streamed source.
    n_clusters : int
    n_init : int, default=10
        Independent restarts, run together; the one of lowest inertia wins.
    max_iter : int, default=300
        Lloyd iterations per restart.
    tol : float, default=1e-4
        Convergence when the squared shift of the centres falls below
        ``tol`` times the mean per-feature variance (scikit-learn's rule), or
        when no label changes.
    init : {"k-means++", "random"} or Tensor of shape (n_clusters, n_features)
        Seeding; an explicit tensor implies ``n_init=1``.
    generator : torch.Generator, optional
        On ``X.device``.
    verbose : int, default=0
        0: silent; 1: a progress bar over the Lloyd iterations and one line
        per restart on standard error (its inertia and iterations, and which
        is kept); 2: also one line per Lloyd iteration.
    control : skmic._training.TrainingControl, optional
        A fit's callbacks and interruption. After every Lloyd iteration its
        callbacks get the record ``epoch``, ``loss`` (the lowest inertia
        among the restarts, each at its latest assignment), ``restart_loss``
        (those inertias) and ``stage`` (``desc``); one that returns True
        stops the iterations. A KeyboardInterrupt after the first iteration
        stops them too (``interrupted``); either way the result is the
        centres reached so far, with a final assignment pass. Without a
        control a KeyboardInterrupt propagates.
    desc : str, default="k-means"
        The ``stage`` the callbacks see, and the progress bar's label.
    owner : str, optional
        The estimator's class name, which starts the progress bar and the
        lines (``"<owner>: <desc>"``).
    select : {"inertia", "balance"}, default="inertia"
        Which restart is kept: "inertia", the lowest inertia (k-means'
        own criterion); "balance", the most balanced cluster sizes (the
        highest entropy of ``restart_counts / n``; ties go to the lower
        inertia), for data whose clusters are known to be of similar size.

    Returns
    -------
    result : KMeansResult
        Unpacks as ``centers, labels, inertia, n_iter`` (the kept
        restart's); also holds its ``history`` and every restart's
        ``restart_inertia``.

    See Also
    --------
    KMeansBaseline : The scikit-learn estimator built on this function.

    Notes
    -----
    In a distributed fit (:mod:`skmic._distributed`) every rank passes the
    same ``X`` and ``generator`` state. The mean and variance and every Lloyd
    iteration read only the rank's block of the rows, and the chunked
    passes' partial sums (centre sums, counts, label changes, inertia, the
    farthest points of empty clusters) are summed over the ranks; the
    seeding and the final assignment run on every rank on all of ``X`` (the
    same draws and the same labels everywhere). The result is the
    one-process result up to the order of float additions.

    Examples
    --------
    >>> import torch
    >>> from skmic.kmeans import kmeans
    >>> X = torch.tensor([[0.0, 0.0], [0.0, 1.0], [5.0, 5.0], [5.0, 6.0]])
    >>> centers, labels, inertia, n_iter = kmeans(
    ...     X, 2, n_init=3, generator=torch.Generator().manual_seed(0))
    >>> sorted(centers.tolist())
    [[0.0, 0.5], [5.0, 5.5]]
    >>> bool(labels[0] == labels[1]), bool(labels[0] != labels[2]), inertia
    (True, True, 1.0)
    """
    if select not in ("inertia", "balance"):  # before any pass over the data
        raise ValueError(f"select must be 'inertia' or 'balance', got {select!r}.")
    rows = X if isinstance(X, Rows) else Rows(X, X.device, dtype=X.dtype)
    (n, d), dtype, device = rows.shape, rows.dtype, rows.device
    # centring keeps the |x|^2 - 2 x.c + |c|^2 expansion accurate
    total = sum(rows.slice(s, e).double().sum(0) for s, e in _passes(rows, shard=True))
    mean = (distributed.all_reduce_sum(total) / n).to(dtype)
    squares = sum(((rows.slice(s, e) - mean).double() ** 2).sum(0) for s, e in _passes(rows, shard=True))
    variance = distributed.all_reduce_sum(squares) / n
    if isinstance(init, torch.Tensor):
        n_init = 1
        centers = (init.to(device=device, dtype=dtype) - mean)[None].clone()
    elif init == "random":
        idx = torch.stack([torch.randperm(n, generator=generator, device=device)[:n_clusters] for _ in range(n_init)])
        centers = rows.rows(idx) - mean
    else:
        centers = _kmeans_plusplus(rows, mean, n_clusters, n_init, generator)

    n_iter = torch.zeros(n_init, dtype=torch.long)
    prev_labels = rows.store(n_init, torch.int32 if n_clusters < 2**31 else torch.long, fill=-1)  # (n, r)
    inertias = []  # (active restarts, their inertia) of every iteration
    try:
        _lloyd(rows, mean, centers, tol * variance.mean().to(dtype), max_iter, n_iter, prev_labels, inertias,
               verbose=verbose, control=control, desc=desc, owner=owner)
        interrupted = False
    except KeyboardInterrupt:
        if control is None or int(n_iter.max()) == 0:
            raise
        control.interrupted = interrupted = True
    # final assignment, consistent with the final centres
    inertia = torch.zeros(n_init, dtype=torch.float64, device=device)
    counts = torch.zeros(n_init, n_clusters, dtype=torch.long, device=device)
    for s, e in _passes(rows):
        xc, x_sq = _centred(rows, mean, s, e)
        dist, labels = _sq_dist_min(xc, x_sq, centers)
        inertia += dist.double().sum(0)
        counts.scatter_add_(1, labels.T.long(), torch.ones_like(labels.T, dtype=torch.long))
        prev_labels.write(s, labels)
    best = _select_restart(inertia, counts, select)
    if verbose >= 1 and distributed.is_main():
        label = phase_label(desc, owner)
        for r in range(n_init):
            kept = " (kept)" if r == best else ""
            tqdm.write(f"{label} restart {r + 1} of {n_init}: inertia {float(inertia[r]):.6g} after "
                       f"{int(n_iter[r])} iteration(s){kept}", file=sys.stderr)
    history = [
        {"epoch": it + 1, "loss": float(values[(restarts == best).nonzero()[0, 0]])}
        for it, (restarts, values) in enumerate(inertias[: int(n_iter[best])])
    ]
    return KMeansResult(
        centers[best] + mean, prev_labels.column(best).long(), float(inertia[best]), int(n_iter[best]), history,
        inertia.cpu().numpy(), best, counts.cpu().numpy(), interrupted,
    )


def size_entropy(counts):
    """Entropy (in nats, float64) of each row of cluster sizes ``counts``: ``log(k)`` for equal sizes.

    Parameters
    ----------
    counts : tensor or array-like of shape (..., n_clusters)
        Samples per cluster (empty clusters count nothing).

    Returns
    -------
    tensor of shape (...)
    """
    counts = torch.as_tensor(counts)
    p = counts.double() / counts.sum(-1, keepdim=True).clamp_min(1)
    return -(p * p.clamp_min(1e-300).log()).sum(-1)


def _select_restart(inertia, counts, select):
    """The kept restart: lowest ``inertia``, or (``select="balance"``) highest entropy of the ``counts``."""
    if select == "inertia":
        return int(inertia.argmin())
    entropy = size_entropy(counts).cpu()
    # the highest entropy; among restarts within float noise of it, the lowest inertia
    candidates = (entropy >= entropy.max() - 1e-12).nonzero()[:, 0]
    return int(candidates[inertia.cpu()[candidates].argmin()])


def _lloyd(rows, mean, centers, tol_abs, max_iter, n_iter, prev_labels, inertias, *, verbose, control, desc, owner):
    """Lloyd iterations of every restart at once: ``centers`` (r, k, d), ``n_iter`` and ``prev_labels`` in place.

    Appends ``(active restarts, their inertia)`` of every iteration to
    ``inertias``; the arguments are :func:`kmeans`'s.
    """
    (n_init, n_clusters, d), dtype, device = centers.shape, centers.dtype, centers.device
    active = torch.arange(n_init, device=device)
    latest = torch.full((n_init,), math.inf, dtype=torch.float64, device=device)  # inertia at the latest assignment
    for it in progress_bar(range(max_iter), verbose, desc, owner):
        sub = centers[active]
        r = len(active)
        sums = torch.zeros(r, n_clusters, d, dtype=dtype, device=device)
        counts = torch.zeros(r, n_clusters, dtype=torch.long, device=device)
        same = torch.ones(r, dtype=torch.bool, device=device)
        far = None
        inertia_it = torch.zeros(r, dtype=torch.float64, device=device)
        for s, e in _passes(rows, shard=True):
            xc, x_sq = _centred(rows, mean, s, e)
            dist, labels = _sq_dist_min(xc, x_sq, sub)
            inertia_it += dist.double().sum(0)
            chunk_sums, chunk_counts = _centre_sums(xc, labels, r, n_clusters)
            sums += chunk_sums
            counts += chunk_counts
            same &= (labels == prev_labels.slice(s, e)[:, active]).all(0)
            prev_labels.write(s, labels, columns=active)
            far = _farthest(far, dist, s, n_clusters)
        # a distributed fit: every rank's partial sums of its block, summed (the identity in one process)
        sums, counts, inertia_it = map(distributed.all_reduce_sum, (sums, counts, inertia_it))
        same = distributed.all_reduce_sum((~same).to(torch.long)) == 0
        inertias.append((active, inertia_it))
        latest[active] = inertia_it
        new = sums / counts.clamp_min(1)[:, :, None].to(dtype)
        keep_old = (counts == 0)[:, :, None]
        new = torch.where(keep_old, sub, new)
        if bool(keep_old.any()):
            _relocate_empty(rows, mean, new, counts, _farthest_over_ranks(far, n_clusters, r, device))
        shift = ((new - sub) ** 2).sum((1, 2))
        centers[active] = new
        n_iter[active.cpu()] = it + 1
        done = same | (shift <= tol_abs)
        active = active[~done]
        if verbose >= 2 and distributed.is_main():
            tqdm.write(f"{phase_label(desc, owner)} iteration {it + 1}: {len(active)} of {n_init} restart(s) still "
                       "moving", file=sys.stderr)
        if control is not None:
            values = latest.tolist()
            if control.epoch_end({"epoch": it + 1, "loss": min(values), "restart_loss": values}, desc):
                break
        if len(active) == 0:
            break


def _torch_dtype(X):
    """The torch dtype of validated ``X`` (float32 or float64)."""
    return torch.float32 if X.dtype == np.float32 else torch.float64


def nearest(X, centers):
    """Labels and squared distances of rows of ``X`` to the nearest centre."""
    x_sq = (X * X).sum(1)
    dist, labels = _sq_dist_min(X, x_sq, centers[None])
    return labels[:, 0], dist[:, 0]


class KMeansBaseline(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, BaseTorchEstimator
):
    """k-means clustering in torch, on the GPU when one is present.

    Greedy k-means++ seeding, ``n_init`` restarts (run simultaneously, so the
    data is read once per iteration for all of them) and Lloyd iterations,
    with the same convergence rule and attributes as
    :class:`sklearn.cluster.KMeans`. Computations keep the input's float
    dtype.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters.
    init : {"k-means++", "random"} or array-like of shape (n_clusters, n_features), default="k-means++"
        Seeding method, or explicit initial centres (then ``n_init`` is 1).
    n_init : int, default=10
        Restarts; the result of lowest inertia is kept.
    max_iter : int, default=300
        Maximum Lloyd iterations per restart.
    tol : float, default=1e-4
        Relative tolerance on the centre shift (in units of the mean
        per-feature variance) that declares convergence.
    device : str or torch.device, default="auto"
        ``"auto"``: CUDA when available, else CPU.
    random_state : int, RandomState instance or None, default=None
        Seed of the initialisation.
    verbose : int, default=0
        0: silent; 1: a progress bar over the Lloyd iterations ("k-means")
        and one line per restart on standard error (inertia, iterations,
        which is kept); 2: also one line per Lloyd iteration.
    callbacks : list of callable, default=None
        Called after every Lloyd iteration (a pass over the data, for all
        restarts at once) with its record: ``epoch``, ``loss`` (the lowest
        inertia among the restarts), ``restart_loss`` (every restart's)
        and ``stage``; one that returns True stops the iterations. A
        KeyboardInterrupt after the first iteration also stops them: ``fit``
        keeps the centres reached so far, with a warning. A
        :class:`~skmic.Checkpoint` is refused (a fit is short to redo).

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
    labels_ : ndarray of shape (n_samples,)
    inertia_ : float
        Sum of squared distances of the training samples to their centre.
    restart_losses_ : ndarray of shape (n_init,)
        Final inertia of every restart (one entry with explicit ``init``
        centres); the lowest is kept.
    kept_restarts_ : ndarray of int of shape (1,)
        The restart kept (index into ``restart_losses_``).
    n_iter_ : int
        Lloyd iterations of the kept restart (each a pass over the data: its
        epochs).
    history_ : list of dict
        One record per Lloyd iteration of the kept restart: ``epoch`` and
        ``loss``, the inertia of that iteration's assignment.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (``n_features_in_``,)
        Defined when ``X`` has string column names.
    device_ : torch.device
    world_size_ : int
        Processes that trained the model together: 1 for an ordinary fit,
        ``W`` for a fit in each of the ``W`` processes of a
        ``torch.distributed`` group (``torchrun``; see the user guide's
        "Distributed" page).

    See Also
    --------
    sklearn.cluster.KMeans : The reference implementation (Cython, CPU).
    DECClustering : Uses this k-means to initialise its centroids.

    Notes
    -----
    Unlike scikit-learn's ``KMeans``, ``fit`` takes no ``sample_weight`` and
    ``n_init`` defaults to 10 rather than ``"auto"``. Like it, ``fit`` warns
    (ConvergenceWarning) when duplicate points leave fewer distinct clusters
    than ``n_clusters``. Data whose sums of squares overflow the input's
    dtype (float64: magnitudes beyond about 1e150 on small data) is refused
    with a ValueError rather than clustered into NaN.

    Examples
    --------
    >>> import numpy as np
    >>> from skmic import KMeansBaseline
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [10, 2], [10, 4], [10, 0]], dtype=float)
    >>> km = KMeansBaseline(n_clusters=2, random_state=0, device="cpu").fit(X)
    >>> sorted(km.cluster_centers_.tolist())
    [[1.0, 2.0], [10.0, 2.0]]
    >>> km.predict([[0.0, 0.0], [12.0, 3.0]]).tolist() == km.predict([[1, 2], [10, 2]]).tolist()
    True
    """

    _parameter_constraints = {
        **BaseTorchEstimator._parameter_constraints,
        "n_clusters": [Interval(numbers.Integral, 1, None, closed="left")],
        "init": [StrOptions({"k-means++", "random"}), "array-like"],
        "n_init": [Interval(numbers.Integral, 1, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "callbacks": CONTROL_CONSTRAINTS["callbacks"],
    }
    _min_samples = 1
    _streams_input = True

    def __init__(
        self,
        n_clusters=8,
        *,
        init="k-means++",
        n_init=10,
        max_iter=300,
        tol=1e-4,
        device="auto",
        random_state=None,
        verbose=0,
        callbacks=None,
    ):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks

    def _check_fit_data(self, X):
        if any(isinstance(c, Checkpoint) for c in self.callbacks or ()):
            raise ValueError(
                "KMeansBaseline saves no Checkpoint (its Lloyd iterations are quick to redo); "
                "remove it from callbacks."
            )
        if X.shape[0] < self.n_clusters:
            raise ValueError(
                f"n_samples={X.shape[0]} should be >= n_clusters={self.n_clusters}; "
                "ask for fewer clusters or pass more samples."
            )
        if not isinstance(self.init, str):
            init = np.asarray(self.init)
            if init.shape != (self.n_clusters, X.shape[1]):
                raise ValueError(
                    f"init has shape {init.shape}, expected ({self.n_clusters}, "
                    f"{X.shape[1]}) = (n_clusters, n_features)."
                )
            if not np.isfinite(init).all():
                raise ValueError("init contains NaN or infinity.")

    def _fit(self, X):
        Xt = self._rows(X, dtype=_torch_dtype(X))
        generator = self._make_generator()
        init = self.init if isinstance(self.init, str) else torch.as_tensor(np.asarray(self.init))
        result = kmeans(
            Xt,
            self.n_clusters,
            n_init=self.n_init,
            max_iter=self.max_iter,
            tol=self.tol,
            init=init,
            generator=generator,
            verbose=self.verbose,
            control=getattr(self, "_training_control", None),
            owner=type(self).__name__,
        )
        self.cluster_centers_ = result.centers.cpu().numpy()
        self.labels_ = result.labels.cpu().numpy()
        self.inertia_ = result.inertia
        self.restart_losses_ = result.restart_inertia
        self.kept_restarts_ = np.array([result.best])
        self.n_iter_ = result.n_iter
        self.history_ = result.history
        self._n_features_out = self.n_clusters
        distinct = len(np.unique(self.labels_))
        if distinct < self.n_clusters:
            warnings.warn(
                f"Number of distinct clusters ({distinct}) found smaller than n_clusters "
                f"({self.n_clusters}). Possibly due to duplicate points in X.",
                ConvergenceWarning,
            )

    def _centers_for(self, X):
        """Validated ``X``, its torch dtype, and a function of a batch with the centres in that dtype."""
        X = self._check_fitted_input(X)
        dtype = _torch_dtype(X)
        centers = torch.as_tensor(self.cluster_centers_, device=self.device_).to(dtype)
        return X, dtype, centers

    def _nearest(self, X):
        X, dtype, centers = self._centers_for(X)
        return self._batched(lambda x: tuple(v.double() if v.is_floating_point() else v for v in nearest(x, centers)),
                             X, dtype=dtype)

    def predict(self, X):
        """Index of the nearest centre of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        return self._nearest(X)[0]

    def transform(self, X):
        """Euclidean distances of each sample to every centre.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        distances : ndarray of shape (n_samples, n_clusters)
        """
        X, dtype, centers = self._centers_for(X)
        return self._batched(lambda x: torch.cdist(x, centers), X, dtype=dtype)

    def score(self, X, y=None):
        """Opposite of the inertia of ``X`` (higher is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored

        Returns
        -------
        score : float
        """
        return -float(self._nearest(X)[1].sum())
