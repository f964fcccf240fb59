"""The one training loop every skmic estimator uses.

An estimator describes one optimisation step as a function of a mini-batch of
sample indices (it owns its data on the device and knows how to turn indices
into a loss); :func:`train` does the rest: shuffling, batching, optimizer
steps, hooks, the per-epoch history, early stopping, divergence detection and
progress output.
"""

import math
import sys
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

__all__ = ["TrainingResult", "adam", "batches", "train"]


@dataclass
class TrainingResult:
    """What :func:`train` returns.

    Attributes
    ----------
    history : list of dict
        One record per epoch: ``epoch``, ``loss`` (mean over the epoch's
        steps; a list with one entry per restart when the step returns
        per-restart losses), ``loss_<phase>`` per named phase, and whatever the
        ``on_epoch_end`` hook added.
    n_epochs : int
        Epochs run.
    n_steps : int
        Optimizer steps taken.
    stopped_early : bool
        Whether a hook or the ``tol`` criterion ended training before
        ``max_epochs``.
    """

    history: list = field(default_factory=list)
    n_epochs: int = 0
    n_steps: int = 0
    stopped_early: bool = False


def batches(n_samples, batch_size, *, generator=None, device="cpu", shuffle=True):
    """Split ``range(n_samples)`` into index mini-batches.

    A trailing batch with a single sample is merged into the previous one,
    so that BatchNorm never sees a batch of one.

    Parameters
    ----------
    n_samples, batch_size : int
    generator : torch.Generator or sequence of them, optional
        Source of the shuffling permutation (on ``device``). With a sequence
        of ``R`` generators (one per restart of a stacked network, see
        :mod:`skmic.nn.stacked`) each draws its own permutation and every
        batch is an ``(R, b)`` tensor whose row ``k`` is restart ``k``'s.
    device : torch.device or str
    shuffle : bool

    Returns
    -------
    list of LongTensor
        Of shape ``(b,)``, or ``(R, b)`` with a sequence of generators.
    """
    several = isinstance(generator, (list, tuple))
    if not shuffle:
        order = torch.arange(n_samples, device=device)
    elif several:
        order = torch.stack([torch.randperm(n_samples, generator=g, device=device) for g in generator])
    else:
        order = torch.randperm(n_samples, generator=generator, device=device)
    parts = list(order.split(batch_size, dim=-1))
    if len(parts) > 1 and parts[-1].shape[-1] < 2:
        parts[-2:] = [torch.cat(parts[-2:], dim=-1)]
    return parts


def adam(params, lr):
    """:class:`torch.optim.Adam` in its fused implementation where torch has one.

    The fused kernel updates every parameter in one pass (on the CPU since
    torch 2.4), instead of a dozen element-wise passes per step: on IIC's
    small networks that was a fifth of a training step. Its results equal
    the default implementation's to float rounding.
    """
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError):  # older torch, or a device without the fused kernel
        return torch.optim.Adam(params, lr=lr)


class TrainingDivergedError(FloatingPointError, ValueError):
    """Training diverged: the loss (or the model's output) became NaN or infinite.

    A :class:`FloatingPointError` and, since its usual causes are the
    parameters or the input (a learning rate too large, an input far from
    unit scale), a :class:`ValueError` too, so that the callers that report
    bad parameters and bad input (the command line, a grid search) report
    it the same way.
    """


def _progress_interval(stream):
    """Seconds between progress-bar refreshes on ``stream``.

    tqdm's 0.1 s on a terminal or in a notebook; 30 s when the stream is a
    file or a pipe, where every refresh stays in the output.
    """
    from tqdm import std
    from tqdm.autonotebook import tqdm as auto

    isatty = getattr(stream, "isatty", None)
    if auto is not std.tqdm or (isatty is not None and isatty()):
        return 0.1
    return 30.0


def _as_record(loss):
    """A float for a scalar loss, a list of floats for per-restart losses."""
    return loss.item() if loss.dim() == 0 else loss.tolist()


def train(
    step,
    *,
    n_samples,
    optimizer,
    max_epochs,
    batch_size,
    device,
    generator=None,
    modules=(),
    phases=(None,),
    before_step=None,
    on_epoch_end=None,
    tol=None,
    n_iter_no_change=None,
    verbose=0,
    desc="training",
):
    """Run mini-batch training.

    Parameters
    ----------
    step : callable
        ``step(indices, phase) -> loss``: the loss of the mini-batch
        ``indices`` (a LongTensor on ``device``) for the current phase; a
        scalar, or one loss per restart (shape ``(R,)``) for a stacked
        network trained with ``R`` generators, whose sum is minimised and
        whose entries are recorded apart.
    n_samples : int
        Size of the index range to draw mini-batches from.
    optimizer : torch.optim.Optimizer or sequence of them
        Zeroed, back-propagated into and stepped once per mini-batch.
    max_epochs : int
    batch_size : int
    device : torch.device
    generator : torch.Generator, optional
        Shuffling source; pass one seeded from ``random_state``.
    modules : sequence of torch.nn.Module
        Put in training mode during training and back in eval mode after.
    phases : sequence
        Each epoch makes one full pass over the data per entry, in order,
        handing the entry to ``step``. IIC uses ``("main", "main", "over")``
        to alternate its heads; most estimators use a single pass.
    before_step : callable, optional
        ``before_step(step_index) -> bool``, called before every optimizer
        step (DEC updates its target distribution here); returning True
        stops training.
    on_epoch_end : callable, optional
        ``on_epoch_end(record) -> bool``; may add entries to the epoch's
        record; returning True stops training.
    tol, n_iter_no_change : float and int, optional
        Early stopping: stop when the epoch loss has not improved by at least
        ``tol`` for ``n_iter_no_change`` consecutive epochs.
    verbose : int
        0: silent; 1: a tqdm progress bar over epochs (refreshed every 30 s
        only when standard error is not a terminal, so that logs stay
        small); 2: also one line per epoch.
    desc : str
        Label of the progress bar.

    Returns
    -------
    TrainingResult

    Raises
    ------
    TrainingDivergedError
        If an epoch's loss is NaN or infinite.
    """
    optimizers = optimizer if isinstance(optimizer, (list, tuple)) else [optimizer]
    result = TrainingResult()
    best, stale = math.inf, 0
    for module in modules:
        module.train()
    progress = tqdm(
        range(max_epochs), desc=desc, disable=verbose < 1, file=sys.stderr, leave=False,
        mininterval=_progress_interval(sys.stderr),
    )
    try:
        for epoch in progress:
            record = {"epoch": epoch + 1}
            totals = []
            stop = False
            for phase in phases:
                total, count = 0.0, 0
                for indices in batches(
                    n_samples, batch_size, generator=generator, device=device
                ):
                    if before_step is not None and before_step(result.n_steps):
                        stop = True
                        break
                    for opt in optimizers:
                        opt.zero_grad(set_to_none=True)
                    loss = step(indices, phase)
                    loss.sum().backward()
                    for opt in optimizers:
                        opt.step()
                    total = total + loss.detach()
                    count += 1
                    result.n_steps += 1
                if count:
                    totals.append((phase, total / count))
                if stop:
                    break
            if not totals:  # stopped before the epoch's first step
                result.stopped_early = True
                break
            mean = sum(t for _, t in totals) / len(totals)
            record["loss"] = _as_record(mean)
            if not bool(torch.isfinite(mean).all()):
                raise TrainingDivergedError(
                    f"Training diverged: the loss became {record['loss']} in epoch "
                    f"{epoch + 1}. Try a smaller learning_rate, or scale the input "
                    "(e.g. with StandardScaler)."
                )
            if len(phases) > 1:
                for phase in dict.fromkeys(p for p, _ in totals):
                    values = [t for p, t in totals if p == phase]
                    record[f"loss_{phase}"] = _as_record(sum(values) / len(values))
            if on_epoch_end is not None and on_epoch_end(record):
                stop = True
            result.history.append(record)
            result.n_epochs = epoch + 1
            progress.set_postfix(loss=f"{float(mean.sum()):.4f}", refresh=False)  # at tqdm's own pace
            if verbose >= 2:
                tqdm.write(
                    f"[{desc}] epoch {epoch + 1}/{max_epochs} loss "
                    + " ".join(f"{v:.5f}" for v in mean.reshape(-1).tolist()),
                    file=sys.stderr,
                )
            if tol is not None and n_iter_no_change is not None:
                if float(mean.sum()) < best - tol:
                    best, stale = float(mean.sum()), 0
                else:
                    stale += 1
                    stop = stop or stale >= n_iter_no_change
            if stop:
                result.stopped_early = result.n_epochs < max_epochs
                break
    finally:
        progress.close()
        for module in modules:
            module.eval()
    return result
