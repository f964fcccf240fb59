"""Restarts in training, the one mechanism of IICClustering and IICSegmentation.

``n_init`` restarts train side by side as one stacked network (see
:mod:`skmic.nn.stacked`): one forward pass, one backward pass and one
optimizer step serve them all, and restart ``k`` is initialised, shuffled
and perturbed from its own seed alone, exactly as a lone training with that
seed would be. The restart whose best sub-head has the lowest loss is kept;
with screening, only that one then trains on. An estimator describes its
loss and its sub-head losses in a subclass of :class:`Restarts`; the rest
(stacking, training, selection, warm starts, the history) lives here once.
"""

import copy
import numbers

import numpy as np
import torch

from ._training import adam, announce, continue_history, train
from .nn.stacked import stack_state, unstack_state

__all__ = ["Restarts", "fit_restarts", "restart_numbers", "restart_record"]


def restart_numbers(indices, n_total):
    """Restarts ``indices`` (from 0) of ``n_total`` in words, numbered from 1.

    >>> from skmic._restarts import restart_numbers
    >>> restart_numbers(range(8), 8), restart_numbers([2], 8), restart_numbers([1, 4, 5], 8)
    ('restarts 1-8 of 8', 'restart 3 of 8', 'restarts 2, 5, 6 of 8')
    """
    numbers = [int(i) + 1 for i in indices]
    if len(numbers) == 1:
        return f"restart {numbers[0]} of {n_total}"
    if numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"restarts {numbers[0]}-{numbers[-1]} of {n_total}"
    return f"restarts {', '.join(map(str, numbers))} of {n_total}"


def restart_record(record, ks):
    """The entries of the restarts ``ks`` in a history record of per-restart lists (one: a value)."""
    def pick(value):
        return value[ks[0]] if len(ks) == 1 else [value[i] for i in ks]

    return {key: pick(value) if isinstance(value, list) else value for key, value in record.items()}


class Restarts:
    """An estimator's restarts in training: a stacked network, its optimizer and data.

    ``net`` holds ``R = len(generators)`` restarts side by side; restart
    ``k`` draws its mini-batches and perturbations from ``generators[k]``
    only. Subclasses implement :meth:`network`, :meth:`step` and
    :meth:`head_losses`, and may override :meth:`phases`.

    Parameters
    ----------
    est : estimator
        The estimator being fitted (its parameters and ``_train_options``).
    net : torch.nn.Module
        The stacked network (a lone one when ``R`` is 1).
    optimizer : torch.optim.Optimizer or None
        None for evaluation only.
    Xt : Tensor
        The training data on the device.
    g : callable or object
        The perturbation, as the subclass uses it.
    generators : list of torch.Generator
        One per restart.
    indices : sequence of int, optional
        The fit's numbers (from 0) of these restarts, for the progress lines
        (default: ``0 .. R-1``).
    n_total : int, optional
        Restarts the fit started with (default: ``R``).
    """

    def __init__(self, est, net, optimizer, Xt, g, generators, indices=None, n_total=None):
        self.est, self.net, self.optimizer = est, net, optimizer
        self.Xt, self.g, self.generators = Xt, g, generators
        self.indices = list(range(len(generators))) if indices is None else [int(i) for i in indices]
        self.n_total = len(generators) if n_total is None else int(n_total)
        self.history = []

    # ------------------------------------------------------- to implement
    @classmethod
    def network(cls, est, Xt, restarts):
        """A fresh network of ``restarts`` stacked restarts for ``est`` and data ``Xt``."""
        raise NotImplementedError

    def step(self, idx, phase):
        """Per-restart losses ``(R,)`` of the mini-batches ``idx`` ``(R, b)``."""
        raise NotImplementedError

    def head_losses(self):
        """Loss ``(R, n_heads)`` of every main sub-head over all the data."""
        raise NotImplementedError

    def phases(self):
        """The passes of one epoch (see :func:`skmic._training.train`)."""
        return ("joint",) if self.net.over is not None else ("main",)

    # ------------------------------------------------------------- shared
    @property
    def n_restarts(self):
        return len(self.generators)

    @classmethod
    def start(cls, est, Xt, g, seeds):
        """One untrained restart per seed, stacked: each initialised as a lone network with its seed."""
        lone = []
        for seed in seeds:
            torch.manual_seed(seed)
            lone.append(cls.network(est, Xt, 1).state_dict())
        net = cls.network(est, Xt, len(seeds))
        net.load_state_dict(stack_state(lone))
        generators = [torch.Generator(est.device_).manual_seed(seed) for seed in seeds]
        return cls(est, net, adam(net.parameters(), est.learning_rate), Xt, g, generators)

    @classmethod
    def resume(cls, est, Xt, g):
        """The fitted ``est.network_`` (a copy), to train on alone (``warm_start``).

        A fresh Adam optimizer, a generator seeded from this fit's seed, and
        the fitted history to number the new epochs on from.
        """
        net = copy.deepcopy(est.network_)
        kept, n_total = [int(np.argmin(est.restart_losses_))], len(est.restart_losses_)
        run = cls(est, net, adam(net.parameters(), est.learning_rate), Xt, g, [est._make_generator()], kept, n_total)
        run.history = list(est.history_)
        return run

    def train(self, n_epochs, stage="training"):
        """Train every restart for ``n_epochs`` more epochs, as the stage ``stage``.

        ``stage`` names the phase ("screening": every restart trains before
        the best are kept; "training") for the callbacks and the progress
        bar. With ``verbose >= 1`` and several restarts in the fit, a line
        first says which train (numbered from 1), e.g. ``restarts 1-8 of 8
        train together for 5 epochs`` or ``restart 3 of 8 trains on for 2
        epochs``.
        """
        if self.n_total > 1:
            verb = ("trains" if len(self.indices) == 1 else "train") + (" on" if self.history else "")
            verb += " together" if len(self.indices) > 1 and not self.history else ""
            epochs = f"{n_epochs} epoch{'s' if n_epochs != 1 else ''}"
            announce(self.est.verbose, self.est, f"{restart_numbers(self.indices, self.n_total)} {verb} for {epochs}")
        result = train(
            self.step, n_samples=self.Xt.shape[0], optimizer=self.optimizer, max_epochs=n_epochs,
            generator=self.generators, modules=[self.net], phases=self.phases(),
            **dict(self.est._train_options(), desc=stage),
        )
        records = result.history if self.n_restarts > 1 else [restart_record(r, [0]) for r in result.history]
        self.history = continue_history(self.history, records)

    def reset_main_heads(self):
        """Re-initialise every restart's main sub-heads (from its own generator); drop their Adam state.

        The trunk and the over-clustering heads keep their weights: fresh
        main heads learn on a trained trunk (IICSegmentation's ``head_reset``).
        """
        self.net.main.reset(self.generators)
        for param in self.net.main.parameters():
            self.optimizer.state.pop(param, None)

    def restart_losses(self, head_losses):
        """What the restarts are compared by ``(R,)``, lowest best: here their lowest main sub-head loss.

        ``head_losses`` ``(R, n_heads)`` is :meth:`head_losses` (as a
        NumPy array); an estimator that predicts with something else than
        its main sub-heads compares the restarts by that instead.
        """
        return head_losses.min(1)

    def criterion(self, n_kept):
        """The phrase of :meth:`restart_losses` for the line that says which restarts are kept."""
        return "lowest sub-head " + ("losses" if n_kept > 1 else "loss")

    def select(self, k):
        """Restart ``k`` alone (or the restarts in the sequence ``k``, stacked in that order).

        A new run with their weights, optimizer state and history; a single
        restart is a lone network. With ``verbose >= 1`` a line says which
        restarts are kept (numbered from 1).
        """
        r = self.n_restarts
        ks = [k] if isinstance(k, numbers.Integral) else [int(i) for i in k]
        net = self.network(self.est, self.Xt, len(ks))
        net.load_state_dict(unstack_state(self.net.state_dict(), r, ks))
        net.eval()
        optimizer = adam(net.parameters(), self.est.learning_rate)
        for stacked, kept in zip(self.net.parameters(), net.parameters()):
            if stacked in self.optimizer.state:
                optimizer.state[kept] = unstack_state(self.optimizer.state[stacked], r, ks)
        kept = [self.indices[i] for i in ks]
        run = type(self)(self.est, net, optimizer, self.Xt, self.g, [self.generators[i] for i in ks], kept, self.n_total)
        if self.n_total > 1:
            announce(self.est.verbose, self.est, f"kept {restart_numbers(kept, self.n_total)} ({self.criterion(len(kept))})")
        run.history = self.history if r == 1 else [restart_record(rec, ks) for rec in self.history]
        return run


def fit_restarts(run_class, est, Xt, g, seeds, n_epochs, screen_epochs=None):
    """Train a restart per seed, keep the one with the lowest :meth:`Restarts.restart_losses`.

    Parameters
    ----------
    run_class : subclass of Restarts
    est, Xt, g
        As :class:`Restarts` takes them.
    seeds : list of int
        One per restart (:func:`skmic.nn.stacked.restart_seeds`).
    n_epochs : int
        Epochs of the kept restart.
    screen_epochs : int, optional
        Train all restarts this many epochs only (if fewer than
        ``n_epochs``), then only the kept one on to ``n_epochs``.

    Returns
    -------
    run : Restarts
        The kept restart, alone (:meth:`Restarts.select`), trained.
    head_losses : ndarray of shape (1, n_heads)
        Its main sub-heads' final losses.
    restart_losses : ndarray of shape (len(seeds),)
        Every restart's :meth:`Restarts.restart_losses` (after the screening
        epochs when screening): its lowest sub-head loss by default.
    """
    first = n_epochs if screen_epochs is None else min(n_epochs, screen_epochs)
    run = run_class.start(est, Xt, g, seeds)
    run.train(first, stage="screening" if first < n_epochs else "training")
    losses = run.head_losses().cpu().numpy()
    restart_losses = run.restart_losses(losses)
    best = int(np.argmin(restart_losses))
    run = run.select(best)
    head_losses = losses[[best]]
    if first < n_epochs:  # screening: only the best restart trains on
        run.train(n_epochs - first)
        head_losses = run.head_losses().cpu().numpy()
    return run, head_losses, restart_losses
