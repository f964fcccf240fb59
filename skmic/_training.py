"""The one training loop every skmic estimator uses.

An estimator describes one optimisation step as a function of a mini-batch of
sample indices (it owns its data on the device and knows how to turn indices
into a loss); :func:`train` does the rest: shuffling, batching, optimizer
steps, hooks, the per-epoch history, early stopping, divergence detection and
progress output. What the user controls of a fit's training -- callbacks, an
interruption that keeps the model trained so far, checkpoints to resume a
killed run from -- is one :class:`TrainingControl` per fit, handed to every
:func:`train` call of that fit.
"""

import math
import numbers
import os
import sys
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from . import _distributed as distributed
from .exceptions import TrainingDivergedError

__all__ = [
    "Checkpoint", "TrainingControl", "TrainingResult", "adam", "announce", "announce_run", "batches", "continue_history",
    "mean_over_runs", "phase_label", "progress_bar", "train",
]


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
        Whether something ended training before ``max_epochs``.
    stop_reason : {None, "hook", "tol", "callback", "interrupt"}
        What asked to stop (also in the last epoch): None when nothing did;
        "hook" for
        ``before_step`` or ``on_epoch_end``, "tol" for the early-stopping
        criterion, "callback" for a user callback of the
        :class:`TrainingControl`, "interrupt" for a KeyboardInterrupt (then
        also in an earlier call of the same fit, which ends the later ones
        before their first epoch).
    interrupted : bool
        Whether a KeyboardInterrupt ended training (``stop_reason ==
        "interrupt"``).
    """

    history: list = field(default_factory=list)
    n_epochs: int = 0
    n_steps: int = 0
    stopped_early: bool = False
    stop_reason: str = None

    @property
    def interrupted(self):
        return self.stop_reason == "interrupt"

    def stop(self, reason):
        self.stopped_early, self.stop_reason = True, reason


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


def mean_over_runs(record, prefix):
    """A history record whose per-run lists become their mean, each list kept as ``<prefix>_<key>``.

    The one form of ``history_`` for estimators that train several networks
    together (IIC's restarts, DIM's members): ``loss`` is always a float.
    """
    out = {}
    for key, value in record.items():
        if isinstance(value, list) and not key.startswith(f"{prefix}_"):
            out[key], out[f"{prefix}_{key}"] = float(sum(value) / len(value)), value
        else:
            out[key] = value
    return out


def continue_history(history, records):
    """``history`` followed by ``records`` of a later training, their epochs numbered on."""
    return list(history) + [dict(r, epoch=r["epoch"] + len(history)) for r in records]


def announce(verbose, estimator, message):
    """With ``verbose >= 1``, write ``"<estimator's class>: <message>"`` on standard error.

    The line goes through tqdm, so that it does not break a progress bar.
    """
    if verbose >= 1:
        tqdm.write(f"{type(estimator).__name__}: {message}", file=sys.stderr)


def announce_run(verbose, estimator, index, n_runs):
    """With ``verbose >= 1`` and several runs, say on standard error which run starts (``index`` from 0).

    For the estimators whose ``n_init`` runs train one after another, each
    with its own progress bars.
    """
    if n_runs > 1:
        announce(verbose, estimator, f"run {index + 1} of {n_runs}")


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


class Checkpoint:
    """Save a fit's training state to a file every ``every`` epochs; resume from it.

    Put one in an estimator's ``callbacks``. While ``fit`` trains, the state
    of every training stage (network weights, optimizer state, random
    generators, history) is written to ``path`` after every ``every``-th
    epoch and at the end of each stage, replacing the file atomically (a
    run killed while writing leaves the previous checkpoint). When ``fit``
    starts and ``path`` exists, the fit resumes from it: the stages it
    completed are restored instead of trained, and the stage it was in
    continues from its last saved epoch. A fit that completes deletes the
    file; one that is interrupted or fails keeps it.

    A checkpoint belongs to one fit: the estimator's class, its parameters
    (those with plain values), the training data and the fitted state it
    started from. Starting another fit on an existing file raises a
    ValueError.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    every : int, default=1
        Epochs between two saves; each save costs a copy of the networks
        and optimizer state.

    Examples
    --------
    >>> from skmic import Checkpoint, DeepInfoMaxEmbedder
    >>> dim = DeepInfoMaxEmbedder(callbacks=[Checkpoint("dim.ckpt", every=5)])
    """

    def __init__(self, path, every=1):
        if not isinstance(every, numbers.Integral) or isinstance(every, bool) or every < 1:
            raise ValueError(f"Checkpoint's every must be a positive int, got {every!r}.")
        self.path = os.fspath(path)
        self.every = int(every)

    def __call__(self, record):
        """A callback that never stops training (the saving is the control's)."""
        return False

    def __repr__(self):
        return f"Checkpoint({self.path!r}, every={self.every})"


def _cpu_copy(value):
    """A copy of ``value`` whose tensors are detached CPU clones."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _cpu_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cpu_copy(v) for v in value)
    return value


class TrainingControl:
    """What the user controls of one fit's training.

    The estimator base makes one per ``fit`` and hands it to every
    :func:`train` call of that fit (a *stage*: a pretraining layer, the
    restarts, the clustering phase). It holds:

    * the user's ``callbacks``, called with each epoch's record (plus
      ``stage``, the stage's name); one that returns True stops training,
      this stage and the fit's later ones;
    * the interruption: :func:`train` stops at a KeyboardInterrupt and
      records it here, and the fit's later stages then train no epoch;
    * the :class:`Checkpoint` among the callbacks, if any: the state each
      stage saves and, on a resumed fit, restores.

    Parameters
    ----------
    callbacks : sequence of callable, default=()
        At most one of them a :class:`Checkpoint`.
    fingerprint : callable, default=None
        Returns the string that identifies the fit (called only with a
        checkpoint); a checkpoint saved under another one is refused.

    Attributes
    ----------
    interrupted, stopped : bool
        Whether a KeyboardInterrupt or a callback ended training.
    n_epochs : int
        Epochs trained by all stages so far (restored ones included).
    """

    def __init__(self, callbacks=(), fingerprint=None):
        callbacks = list(callbacks or ())
        for callback in callbacks:
            if not callable(callback):
                raise ValueError(
                    f"callbacks must hold callables (called with each epoch's record), got {callback!r}."
                )
        checkpoints = [c for c in callbacks if isinstance(c, Checkpoint)]
        if len(checkpoints) > 1:
            raise ValueError(f"callbacks holds {len(checkpoints)} Checkpoints; a fit saves to one.")
        if checkpoints and distributed.world_size() > 1:
            raise ValueError(
                "A Checkpoint cannot resume a distributed fit (each rank's random streams differ); "
                "remove it from callbacks, or fit in one process."
            )
        self.callbacks = [c for c in callbacks if not isinstance(c, Checkpoint)]
        self.checkpoint = checkpoints[0] if checkpoints else None
        self.fingerprint = (fingerprint or str)() if self.checkpoint is not None else ""
        self.interrupted = self.stopped = False
        self.n_epochs = 0
        self._stages = []  # the saved state of each stage of this fit so far
        self._resume = self._load()

    @property
    def ended(self):
        """Whether training has ended for the rest of the fit."""
        return self.interrupted or self.stopped

    def _load(self):
        if self.checkpoint is None or not os.path.exists(self.checkpoint.path):
            return []
        saved = torch.load(self.checkpoint.path, map_location="cpu", weights_only=True)
        if saved.get("fingerprint") != self.fingerprint:
            raise ValueError(
                f"The checkpoint {self.checkpoint.path!r} was saved by another fit (another "
                "estimator, other parameters, other data or another starting state); delete it "
                "or give the Checkpoint another path."
            )
        return saved["stages"]

    def begin(self, modules, optimizers, generators):
        """Open the next stage; restore and return its checkpointed state (or None)."""
        index = len(self._stages)
        saved = self._resume[index] if index < len(self._resume) else None
        self._stages.append(saved)
        if saved is None:
            return None
        for module, state in zip(modules, saved["modules"]):
            module.load_state_dict(state)
        for opt, state in zip(optimizers, saved["optimizers"]):
            opt.load_state_dict(state)
        with torch.no_grad():
            for param, value in zip(_parameters(optimizers), saved["params"]):
                param.copy_(value)
        for gen, state in zip(generators, saved["generators"]):
            gen.set_state(state)
        torch.set_rng_state(saved["rng"])
        self.n_epochs += saved["epoch"]
        if saved["stop_reason"] == "callback":
            self.stopped = True
        return saved

    def save(self, result, modules, optimizers, generators, *, complete, best=math.inf, stale=0):
        """Record the current stage's state and write the checkpoint file (if any)."""
        if self.checkpoint is None:
            return
        self._stages[-1] = _cpu_copy(dict(
            complete=complete, epoch=result.n_epochs, n_steps=result.n_steps, history=result.history,
            stop_reason=result.stop_reason, best=best, stale=stale,
            modules=[m.state_dict() for m in modules], optimizers=[o.state_dict() for o in optimizers],
            params=list(_parameters(optimizers)), generators=[g.get_state() for g in generators],
            rng=torch.get_rng_state(),
        ))
        tmp = self.checkpoint.path + ".tmp"
        torch.save({"fingerprint": self.fingerprint, "stages": self._stages}, tmp)
        os.replace(tmp, self.checkpoint.path)

    def finish(self):
        """The fit completed: delete the checkpoint file."""
        if self.checkpoint is not None and os.path.exists(self.checkpoint.path):
            os.remove(self.checkpoint.path)

    def epoch_end(self, record, stage):
        """Count the epoch and call the callbacks; whether one asked to stop."""
        self.n_epochs += 1
        stop = False
        for callback in self.callbacks:
            stop = bool(callback(dict(record, stage=stage))) or stop
        self.stopped = self.stopped or stop
        return stop


def _parameters(optimizers):
    return (p for opt in optimizers for group in opt.param_groups for p in group["params"])


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


def phase_label(desc, owner=None):
    """``"<owner>: <desc>"``, or ``desc`` alone: how progress bars and lines name a phase of a fit."""
    return desc if owner is None else f"{owner}: {desc}"


def progress_bar(iterable, verbose, desc, owner=None, **kwargs):
    """A tqdm progress bar on standard error labelled ``"<owner>: <desc>"``, shown with ``verbose >= 1``.

    Shown on the main process only (rank 0 of a distributed fit), refreshed
    at :func:`_progress_interval`'s pace, and removed when closed. The bar
    of every phase of a fit (a training stage, k-means, a pass over the
    data) comes from here.
    """
    return tqdm(
        iterable, desc=phase_label(desc, owner), disable=verbose < 1 or not distributed.is_main(),
        file=sys.stderr, leave=False, mininterval=_progress_interval(sys.stderr), **kwargs,
    )


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
    owner=None,
    control=None,
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
        The stage's name: the ``stage`` the callbacks see, and the progress
        bar's label.
    owner : str, optional
        The estimator's class name: the progress bar reads ``"<owner>:
        <desc>"``.
    control : TrainingControl, optional
        The fit's callbacks, interruption and checkpoint. With one, a
        KeyboardInterrupt stops training and returns what was trained (the
        result says ``interrupted``), a fit whose training has ended
        (interrupted, or stopped by a callback) trains no epoch, and a
        checkpointed stage is restored. Without one a KeyboardInterrupt
        propagates.

    Returns
    -------
    TrainingResult

    Raises
    ------
    TrainingDivergedError
        If an epoch's loss is NaN or infinite.
    """
    optimizers = optimizer if isinstance(optimizer, (list, tuple)) else [optimizer]
    generators = [] if generator is None else list(generator) if isinstance(generator, (list, tuple)) else [generator]
    result = TrainingResult()
    best, stale = math.inf, 0
    if control is not None:
        if control.ended:  # interrupted, or stopped by a callback, in an earlier stage of this fit
            result.stop("interrupt" if control.interrupted else "callback")
            return result
        saved = control.begin(modules, optimizers, generators)
        if saved is not None:
            result.history, result.n_epochs, result.n_steps = list(saved["history"]), saved["epoch"], saved["n_steps"]
            result.stopped_early, result.stop_reason = saved["stop_reason"] is not None, saved["stop_reason"]
            best, stale = saved["best"], saved["stale"]
            if saved["complete"]:  # restored, not trained: leave the modules in eval mode, as training does
                for module in modules:
                    module.eval()
                return result
    rows = distributed.shard(n_samples, device)  # this rank's rows; None: all of them (one process)
    main = distributed.is_main()
    distributed.split_streams(generators)
    for module in modules:
        module.train()
    progress = progress_bar(
        range(result.n_epochs, max_epochs), verbose, desc, owner, initial=result.n_epochs, total=max_epochs,
    )
    try:
        for epoch in progress:
            record = {"epoch": epoch + 1}
            totals = []
            stop = None
            for phase in phases:
                total, count = 0.0, 0
                for indices in batches(
                    n_samples if rows is None else len(rows), batch_size, generator=generator, device=device
                ):
                    if rows is not None:
                        indices = rows[indices]
                    if before_step is not None and before_step(result.n_steps):
                        stop = "hook"
                        break
                    for opt in optimizers:
                        opt.zero_grad(set_to_none=True)
                    loss = step(indices, phase)
                    loss.sum().backward()
                    distributed.average_gradients(_parameters(optimizers))
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
                result.stop(stop)
                break
            mean = distributed.mean_over_ranks(sum(t for _, t in totals) / len(totals))
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
                stop = "hook"
            result.history.append(record)
            result.n_epochs = epoch + 1
            progress.set_postfix(loss=f"{float(mean.sum()):.4f}", refresh=False)  # at tqdm's own pace
            if verbose >= 2 and main:
                tqdm.write(
                    f"{progress.desc}: epoch {epoch + 1}/{max_epochs} loss "
                    + " ".join(f"{v:.5f}" for v in mean.reshape(-1).tolist()),
                    file=sys.stderr,
                )
            if tol is not None and n_iter_no_change is not None:
                if float(mean.sum()) < best - tol:
                    best, stale = float(mean.sum()), 0
                else:
                    stale += 1
                    if stale >= n_iter_no_change:
                        stop = stop or "tol"
            if control is not None and control.epoch_end(record, desc):
                stop = stop or "callback"
            if stop:
                result.stop(stop)
                result.stopped_early = result.n_epochs < max_epochs
                break
            if control is not None and result.n_epochs % getattr(control.checkpoint, "every", 1) == 0:
                control.save(result, modules, optimizers, generators, complete=False, best=best, stale=stale)
    except KeyboardInterrupt:
        if control is None:
            raise
        control.interrupted = True
        result.stop("interrupt")
    finally:
        progress.close()
        for module in modules:
            module.eval()
        distributed.join_streams(generators)
        distributed.broadcast_state(modules)  # rank 0's BatchNorm statistics everywhere (weights agree)
    if control is not None and not result.interrupted:
        control.save(result, modules, optimizers, generators, complete=True, best=best, stale=stale)
    return result
