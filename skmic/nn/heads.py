"""IIC's clustering heads and the network that carries them."""

import torch
from torch import nn

from .stacked import linear

__all__ = ["ClusterHeads", "IICNet"]

#: standard deviation of the heads' initial weights (IIC's reference: 0.01);
#: None keeps torch's default initialisation
HEAD_INIT_STD = 0.01


class ClusterHeads(nn.Module):
    """``n_heads`` independent softmax sub-heads over ``n_clusters``.

    All sub-heads are one Linear layer reshaped to (n, n_heads, n_clusters),
    so they are evaluated together. Weights start from N(0, 0.01) as in the
    IIC reference code. With ``restarts`` > 1 (see :mod:`skmic.nn.stacked`)
    the input is ``(n, restarts * in_features)`` and the output
    ``(n, restarts * n_heads, n_clusters)``, restart-major.
    """

    def __init__(self, in_features, n_clusters, n_heads, restarts=1):
        super().__init__()
        self.n_clusters = n_clusters
        self.n_heads = n_heads
        self.restarts = restarts
        self.linear = linear(in_features, n_clusters * n_heads, restarts)
        if HEAD_INIT_STD is not None:
            nn.init.normal_(self.linear.weight, 0.0, HEAD_INIT_STD)
            nn.init.zeros_(self.linear.bias)

    def reset(self, generators):
        """Draw the weights afresh as at construction (zero bias), restart ``k`` from ``generators[k]``.

        Needs ``HEAD_INIT_STD``; one generator per restart keeps restart
        ``k`` of a stack equal to a lone network reset with its generator.
        """
        weight = self.linear.weight
        with torch.no_grad():
            blocks = weight.view(self.restarts, -1, weight.shape[-1])
            for block, generator in zip(blocks, generators):
                block.normal_(0.0, HEAD_INIT_STD, generator=generator)
            self.linear.bias.zero_()

    def forward(self, h):
        logits = self.linear(h).view(-1, self.restarts * self.n_heads, self.n_clusters)
        return logits.softmax(-1)


class IICNet(nn.Module):
    """A trunk with the main heads and an optional over-clustering head.

    ``restarts`` must be the trunk's own (``restarts`` copies of the whole
    network side by side, see :mod:`skmic.nn.stacked`).
    """

    def __init__(self, trunk, n_clusters, n_heads, overclustering=0, restarts=1):
        super().__init__()
        self.trunk = trunk
        self.restarts = restarts
        self.main = ClusterHeads(trunk.out_features, n_clusters, n_heads, restarts)
        self.over = ClusterHeads(trunk.out_features, overclustering, n_heads, restarts) if overclustering else None

    def forward(self, x):
        """Trunk features of ``x``."""
        return self.trunk(x)
