"""Deep InfoMax's critics and prior discriminator, and a gradient-reversal layer.

The critics "encode and dot-product" (Hjelm et al. 2019, appendix A.2): two
small networks map the local features and the global code into one space,
and a pair's score is the dot product there. Every pairing of a batch is
scored at once, giving a score tensor whose diagonal holds the positives
(a code with features of its own sample) and the rest the negatives.
"""

import torch
from torch import nn

__all__ = ["GlobalCritic", "LocalCritic", "PriorDiscriminator", "grad_reverse"]


def _embedder(in_features, dim):
    return nn.Sequential(nn.Linear(in_features, dim), nn.ReLU(inplace=True), nn.Linear(dim, dim))


class LocalCritic(nn.Module):
    """Scores every (code, sample, location) triple of a batch.

    Parameters
    ----------
    channels : int
        Channels of the local feature map.
    code_dim : int
        Size of the global code.
    dim : int
        Size of the shared space.

    ``forward(local, code)`` takes ``local`` of shape (n, L, channels) (L
    locations) and ``code`` (n, code_dim); it returns (n, n, L) scores,
    ``scores[i, j, l] = <phi(local[j, l]), psi(code[i])>``.
    """

    def __init__(self, channels, code_dim, dim=128):
        super().__init__()
        self.phi = _embedder(channels, dim)  # a 1x1-conv MLP, applied per location
        self.psi = _embedder(code_dim, dim)

    def forward(self, local, code):
        return torch.einsum("jld,id->ijl", self.phi(local), self.psi(code))


class GlobalCritic(nn.Module):
    """Scores every (code, sample) pair: (n, n) with positives on the diagonal.

    The whole local map is flattened and embedded (the global objective
    pairs the code with the complete input summary).
    """

    def __init__(self, in_features, code_dim, dim=128):
        super().__init__()
        self.phi = _embedder(in_features, dim)
        self.psi = _embedder(code_dim, dim)

    def forward(self, local, code):
        return self.psi(code) @ self.phi(local.flatten(1)).T


class PriorDiscriminator(nn.Module):
    """Tells samples of the prior from squashed codes (logits)."""

    def __init__(self, code_dim, hidden=(256, 64)):
        super().__init__()
        layers, width = [], code_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, y):
        return self.net(y).squeeze(1)


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -grad


def grad_reverse(x):
    """Identity forward, negated gradient backward.

    Put between the encoder and the prior discriminator, it lets one
    optimizer step train the discriminator to minimise its loss while the
    encoder maximises it: the adversarial game of DIM's prior matching.
    """
    return _GradReverse.apply(x)
