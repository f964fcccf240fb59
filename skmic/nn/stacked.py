"""Restarts as one network: ``R`` copies of a model trained side by side.

A *stacked* network holds ``restarts`` independent copies of a model in one
module, so that one forward pass, one backward pass and one optimizer step
serve every restart. The copies never mix: restart ``k`` sees only its own
inputs, and its outputs depend only on its own weights.

The layout is the same everywhere: restarts are concatenated along the
feature (or channel) dimension. A batch of ``b`` samples for ``R`` restarts
is a tensor ``(b, R * F)`` (or ``(b, R * C, H, W)`` for images), whose
``k``-th block of features belongs to restart ``k``. In that layout

* a convolution is a grouped convolution with ``groups = R``,
* BatchNorm over ``R * C`` channels normalises every restart on its own,
* ReLU and max-pooling act per channel, hence per restart,
* a linear layer is :class:`StackedLinear` (one batched matrix product).

Every parameter and buffer of a stacked module is the concatenation, along
its first dimension, of the same tensor of the ``R`` lone modules (built
with ``restarts=1``), under the same name. :func:`stack_state` and
:func:`unstack_state` convert between the two, which is how restarts are
initialised exactly like lone models and how one restart is taken out of a
stack (for prediction, or to train on alone after screening).
"""

import torch
from torch import nn

__all__ = ["StackedLinear", "linear", "restart_seeds", "stack_inputs", "stack_state", "unstack_state"]


def restart_seeds(seed, n_restarts):
    """Seeds of ``n_restarts`` independent restarts of a fit seeded with ``seed``.

    The first is ``seed`` itself, so that restart 0 of any fit is the fit
    with a single restart; the others are drawn from it.
    """
    rest = torch.randint(2**31 - 1, (n_restarts - 1,), generator=torch.Generator().manual_seed(seed))
    return [int(seed)] + rest.tolist()


class StackedLinear(nn.Module):
    """``restarts`` independent linear layers on a ``(n, restarts * in)`` batch.

    The weight is ``(restarts * out, in)`` and the bias ``(restarts * out,)``:
    the lone layers' tensors concatenated. The output is ``(n, restarts * out)``.

    Parameters
    ----------
    in_features, out_features : int
        Sizes of one restart's layer.
    restarts : int
    bias : bool, default=True
    """

    def __init__(self, in_features, out_features, restarts, bias=True):
        super().__init__()
        self.in_features, self.out_features, self.restarts = in_features, out_features, restarts
        self.weight = nn.Parameter(torch.empty(restarts * out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(restarts * out_features)) if bias else None
        for k in range(restarts):  # each block initialised as nn.Linear would
            block = nn.Linear(in_features, out_features, bias=bias)
            self.weight.data[k * out_features : (k + 1) * out_features] = block.weight.data
            if bias:
                self.bias.data[k * out_features : (k + 1) * out_features] = block.bias.data

    def forward(self, x):
        r, n = self.restarts, x.shape[0]
        w = self.weight.view(r, self.out_features, self.in_features)
        xs = x.view(n, r, self.in_features).transpose(0, 1)  # (R, n, in)
        if self.bias is None:
            out = torch.bmm(xs, w.transpose(1, 2))
        else:
            out = torch.baddbmm(self.bias.view(r, 1, self.out_features), xs, w.transpose(1, 2))
        return out.transpose(0, 1).reshape(n, r * self.out_features)


def linear(in_features, out_features, restarts=1, bias=True):
    """An :class:`torch.nn.Linear` for one restart, a :class:`StackedLinear` for several."""
    if restarts == 1:
        return nn.Linear(in_features, out_features, bias=bias)
    return StackedLinear(in_features, out_features, restarts, bias=bias)


def stack_inputs(x):
    """``(R, n, F)`` per-restart batches as one ``(n, R * F)`` stacked batch."""
    r, n = x.shape[:2]
    return x.transpose(0, 1).reshape(n, r * x[0, 0].numel())


def stack_state(states):
    """The state dict of a stack from the state dicts of its lone restarts.

    Floating tensors are concatenated along their first dimension; integer
    buffers (BatchNorm's ``num_batches_tracked``) are equal in lock-step
    training and taken from the first restart.
    """
    out = {}
    for name, first in states[0].items():
        if first.is_floating_point():
            out[name] = torch.cat([s[name] for s in states])
        else:
            out[name] = first.clone()
    return out


def unstack_state(state, restarts, k):
    """The state dict of restart ``k`` alone, from the state of a stack of ``restarts``.

    ``k`` may also be a sequence of restarts: the state of their stack, in
    that order. Also takes an optimizer's per-parameter state (any dict of
    tensors laid out like the parameters, e.g. Adam's moments); tensors
    whose first dimension is not a multiple of ``restarts`` (scalars such
    as a step count) are copied whole.
    """
    ks = [k] if isinstance(k, int) else [int(i) for i in k]
    out = {}
    for name, t in state.items():
        if torch.is_tensor(t) and t.is_floating_point() and t.dim() and t.shape[0] % restarts == 0:
            chunks = t.chunk(restarts)
            out[name] = torch.cat([chunks[i] for i in ks]).clone()
        else:
            out[name] = t.clone() if torch.is_tensor(t) else t
    return out
