"""Data-parallel training with torch.distributed: the one place skmic talks to it.

When ``fit`` runs in a process whose default :mod:`torch.distributed` process
group is initialised (``torchrun``, or ``torch.distributed.init_process_group``
called by the user) with more than one process, the estimators train with
the semantics of :class:`~torch.nn.parallel.DistributedDataParallel`:

* every rank is given the same data (the same ``X``, e.g. the same file or
  memmap) and owns a strided shard of its rows (:func:`shard`): rank ``r`` of
  ``W`` trains on rows ``r, r + W, r + 2W, ...``, the shards padded by
  wrapping around to equal lengths so that every rank takes the same number
  of steps;
* every rank draws its own shuffles and perturbations (:func:`split_streams`),
  while everything else random (weight initialisation, k-means seeding,
  restart seeds) comes from one seed shared by all ranks (:func:`broadcast_seed`);
* the parameter gradients are averaged over the ranks after every backward
  pass (:func:`average_gradients`), so every rank takes the same optimizer step
  and the replicas stay identical;
* what a loss needs from all the data is summed over the ranks before it is
  used -- IIC's joint matrices (:func:`all_reduce_sum` with
  ``differentiable=True``), the k-means sums, counts and inertia, DEC's soft
  cluster frequencies and its count of changed labels -- so that the ranks
  compute the global quantity, not an average of per-rank ones;
* only rank 0 writes: progress bars, verbose lines, checkpoints, the command
  line's output files (:func:`is_main`).

The estimators call this module; it never imports them. In an ordinary
process (no process group, or a group of one) every function is the identity
or a no-op, so a fit is exactly what it was without distribution.

Why gradients are averaged here instead of wrapping the networks in
``DistributedDataParallel``: one training loop serves networks trained in
stages on different subsets of their parameters (DEC's greedy layers), bare
parameters outside any module (DEC's centroids), several restarts stacked
into one network, and losses computed from several forward passes; DDP needs
one module that owns every trained parameter and is called once per step, and
renames its state. Averaging the gradients of the optimizers' parameters with
one flat all-reduce per step is what DDP does per bucket, without overlapping
communication with the backward pass, which these small networks do not need.

Why the joint matrix is summed with a differentiable all-reduce whose backward
is again a sum: every rank computes the same global loss ``L(J)`` with
``J = sum_r J_r``; the exact adjoint of "every rank receives the sum" hands
rank ``r`` the gradient ``sum_s dL_s/dJ = W dL/dJ`` for its ``J_r``; averaging
the parameter gradients over the ``W`` ranks then gives
``dL/dJ sum_r dJ_r/dtheta``, the gradient of the global mutual information,
exactly what one process computes on the union of the shards
(``tests/test_distributed.py`` checks both).
"""

import contextlib
import os

import torch

__all__ = [
    "all_gather_cat",
    "all_reduce_sum",
    "average_gradients",
    "block",
    "broadcast_seed",
    "global_mean",
    "broadcast_state",
    "check_same_shape",
    "group_from_env",
    "is_main",
    "rank",
    "join_streams",
    "mean_over_ranks",
    "split_streams",
    "rows_per_rank",
    "shard",
    "shard_chunks",
    "shard_position",
    "shard_size",
    "world_size",
]


def _group_ready():
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def world_size():
    """Processes of the default process group (1 when there is none)."""
    return torch.distributed.get_world_size() if _group_ready() else 1


def rank():
    """This process's rank in the default process group (0 when there is none)."""
    return torch.distributed.get_rank() if _group_ready() else 0


def is_main():
    """Whether this process is the one that writes (rank 0, or the only process)."""
    return rank() == 0


def _comm_device():
    """Where the collectives' buffers must live: the current CUDA device under NCCL, else the CPU."""
    if torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


class _SumOverRanks(torch.autograd.Function):
    """``sum_r x_r`` on every rank; its adjoint, again a sum over the ranks."""

    @staticmethod
    def forward(ctx, tensor):
        out = tensor.clone(memory_format=torch.contiguous_format)
        torch.distributed.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone(memory_format=torch.contiguous_format)
        torch.distributed.all_reduce(grad)
        return grad


def all_reduce_sum(tensor, *, differentiable=False):
    """The sum of ``tensor`` over the ranks, on every rank (``tensor`` itself at world size 1).

    Parameters
    ----------
    tensor : Tensor
        The same shape on every rank. Not modified.
    differentiable : bool, default=False
        Keep the autograd graph: the backward pass sums the incoming
        gradients over the ranks (see the module's docstring for why this,
        with :func:`average_gradients`, gives the gradient of the global
        loss).

    Returns
    -------
    Tensor
    """
    if world_size() == 1:
        return tensor
    device = tensor.device
    if differentiable:
        return _SumOverRanks.apply(tensor.to(_comm_device())).to(device)
    out = tensor.detach().to(_comm_device(), copy=True).contiguous()
    torch.distributed.all_reduce(out)
    return out.to(device)


def all_gather_cat(tensor):
    """The ``tensor`` of every rank, concatenated along the first dimension in rank order.

    ``tensor`` must have the same shape on every rank.
    """
    if world_size() == 1:
        return tensor
    device = tensor.device
    mine = tensor.detach().to(_comm_device()).contiguous()
    parts = [torch.empty_like(mine) for _ in range(world_size())]
    torch.distributed.all_gather(parts, mine)
    return torch.cat(parts).to(device)


def average_gradients(parameters):
    """Replace every gradient of ``parameters`` by its mean over the ranks (one flat all-reduce).

    A parameter without a gradient on this rank counts as a zero gradient;
    one without a gradient on every rank keeps none (an optimizer skips it,
    as it would in one process). The averaged gradient has its parameter's
    memory layout (a channels-last convolution's weight gets a channels-last
    gradient), as autograd's would: torch's fused Adam on the CPU reads a
    gradient as if it had its parameter's strides, and a contiguous gradient
    of a channels-last weight silently updates it with scrambled entries.
    """
    world = world_size()
    if world == 1:
        return
    params = list(parameters)
    flat = torch.cat([
        (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params
    ] + [torch.tensor([float(p.grad is not None) for p in params], device=params[0].device)])
    flat = all_reduce_sum(flat)
    has_grad = flat[len(flat) - len(params):] > 0
    flat /= world
    offset = 0
    for p, used in zip(params, has_grad.tolist()):
        n = p.numel()
        p.grad = torch.empty_like(p).copy_(flat[offset : offset + n].view(p.shape)) if used else None
        offset += n


def shard(n_samples, device="cpu", *, pad=True):
    """The rows this rank works on: ``None`` (all of them) at world size 1.

    Rank ``r`` of ``W`` owns rows ``r, r + W, r + 2W, ...``. Together the
    shards cover every row once.

    Parameters
    ----------
    n_samples : int
    device : torch.device or str
    pad : bool, default=True
        Repeat the shard's first row where it is one row short of
        ``ceil(n_samples / W)``, so that every rank has the same number
        (training, where every rank must take the same number of steps);
        False for the full-data passes whose sums must count every row once.

    Returns
    -------
    LongTensor or None
    """
    world = world_size()
    if world == 1:
        return None
    rows = torch.arange(rank(), n_samples, world, device=device)
    missing = -(-n_samples // world) - len(rows)
    return torch.cat([rows, rows[:missing]]) if pad and missing else rows


def block(n_samples):
    """``(start, stop)``: this rank's contiguous block of the rows (``(0, n_samples)`` in one process).

    Rank ``r`` of ``W`` owns rows ``r * n // W`` to ``(r + 1) * n // W - 1``;
    together the blocks cover every row once. For the full-data passes over
    the data in chunks (k-means, DEC's target distribution, IIC's head
    losses), whose per-rank sums are then summed over the ranks: a
    contiguous block is read from a streamed source in order.
    """
    world, me = world_size(), rank()
    return me * n_samples // world, (me + 1) * n_samples // world


def shard_size(n_samples):
    """How many rows :func:`shard` gives this rank without padding (``n_samples`` in one process)."""
    return len(range(rank(), n_samples, world_size()))


def shard_position(index):
    """The positions in this rank's shard of row numbers ``index`` of that shard (``index`` in one process).

    Per-sample state of the shard's rows (DEC's target) is stored by
    position: row ``r + k W`` of rank ``r`` is at position ``k``.
    """
    world = world_size()
    return index if world == 1 else torch.div(index - rank(), world, rounding_mode="floor")


def shard_chunks(rows, rows_per_chunk):
    """Yield ``(position, x)``: this rank's shard of ``rows`` (without padding), in order, chunk by chunk.

    ``rows`` (a :class:`skmic._data.Rows`) is read in consecutive chunks of
    ``rows_per_chunk * W`` rows (sequential reads, also of a streamed
    source) and each yields this rank's rows of it, ``x``; ``position`` is
    the position in the shard of ``x``'s first row (:func:`shard_position`).
    In one process: every chunk of ``rows_per_chunk`` rows and its start.
    """
    world, me = world_size(), rank()
    for start, x in rows.chunks(rows_per_chunk * world):  # every chunk starts at a multiple of W
        yield start // world, (x if world == 1 else x[me::world])


def rows_per_rank(n_samples):
    """Rows each rank trains on per epoch: ``ceil(n_samples / W)`` (``n_samples`` in one process)."""
    return -(-n_samples // world_size())


def broadcast_seed(seed):
    """Rank 0's ``seed`` on every rank (``seed`` itself at world size 1)."""
    if world_size() == 1:
        return seed
    value = torch.tensor([seed], dtype=torch.int64, device=_comm_device())
    torch.distributed.broadcast(value, src=0)
    return int(value.item())


def broadcast_state(modules):
    """Overwrite every parameter and buffer of ``modules`` with rank 0's values."""
    if world_size() == 1:
        return
    with torch.no_grad():
        for module in modules:
            for tensor in list(module.parameters()) + list(module.buffers()):
                buffer = tensor.detach().to(_comm_device()).contiguous()
                torch.distributed.broadcast(buffer, src=0)
                tensor.copy_(buffer)


def split_streams(generators):
    """Give every rank its own random streams (undone by :func:`join_streams`).

    Each generator is reseeded from a number it draws (the same on every
    rank) plus the rank, so the ranks shuffle their shards and perturb their
    samples independently. A no-op at world size 1.
    """
    if world_size() == 1:
        return
    for g in generators:
        base = int(torch.randint(2**62, (1,), generator=g, device=g.device))
        g.manual_seed(base + rank())


def join_streams(generators):
    """Give every rank rank 0's generator states again, after :func:`split_streams`.

    Whatever the fit draws next (a k-means seeding, the next restart) is then
    the same on all ranks. A no-op at world size 1.
    """
    if world_size() == 1:
        return
    for g in generators:
        state = g.get_state().to(_comm_device())
        torch.distributed.broadcast(state, src=0)
        g.set_state(state.cpu())


def global_mean(tensor):
    """The mean of the entries of every rank's ``tensor`` (``tensor.mean()`` at world size 1).

    The ranks' tensors may hold different numbers of entries (e.g. the rows
    of unequal shards).
    """
    if world_size() == 1:
        return tensor.mean()
    sums = all_reduce_sum(torch.stack([tensor.sum(), torch.tensor(tensor.numel(), device=tensor.device)]).to(tensor.dtype))
    return sums[0] / sums[1]


def mean_over_ranks(tensor):
    """The mean of ``tensor`` over the ranks, on every rank (``tensor`` itself at world size 1)."""
    world = world_size()
    return tensor if world == 1 else all_reduce_sum(tensor) / world


def check_same_shape(shape, what="X"):
    """Raise a ValueError on every rank unless all ranks passed data of the same shape.

    Parameters
    ----------
    shape : tuple of int
        ``(n_samples, n_features)`` of this rank's data.
    what : str
        How the error names the data.
    """
    world = world_size()
    if world == 1:
        return
    mine = torch.tensor(list(shape), dtype=torch.int64, device=_comm_device())
    gathered = [torch.empty_like(mine) for _ in range(world)]
    torch.distributed.all_gather(gathered, mine)
    shapes = [tuple(int(v) for v in t.tolist()) for t in gathered]
    if len(set(shapes)) > 1:
        listed = ", ".join(f"rank {r}: {s[0]} samples x {s[1]} features" for r, s in enumerate(shapes))
        raise ValueError(
            f"The {world} ranks of this distributed fit passed {what} of different shapes ({listed}); "
            "every rank must pass the same data (each trains on its own shard of it)."
        )
    if shape[0] < world:
        raise ValueError(
            f"{what} has {shape[0]} samples, fewer than the {world} ranks of this distributed fit; "
            "every rank needs at least one."
        )


@contextlib.contextmanager
def group_from_env(device="auto"):
    """The default process group that ``torchrun``'s environment describes, for a block.

    Does nothing when the group is already initialised or the environment
    has no ``WORLD_SIZE`` above 1. Otherwise initialises it -- NCCL when
    CUDA is available and ``device`` is not the CPU (``LOCAL_RANK``'s GPU
    becomes the current device), gloo otherwise -- and destroys it after the
    block.
    """
    if _group_ready() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield
        return
    use_cuda = torch.cuda.is_available() and not str(device).startswith("cpu")
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    torch.distributed.init_process_group("nccl" if use_cuda else "gloo")
    try:
        yield
    finally:
        torch.distributed.destroy_process_group()
