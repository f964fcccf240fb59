"""Networks for per-pixel clustering: a fully convolutional trunk, Sobel input
channels and IIC's sub-heads applied at every pixel.

Plain torch: nothing here knows about scikit-learn.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .encoders import conv_block

__all__ = ["FullyConvEncoder", "PixelClassifier", "pixel_heads", "sobel_channels"]

#: Sobel kernel of the horizontal derivative (its transpose is the vertical one)
_SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))


def sobel_channels(images):
    """Append the Sobel x and y gradients of the grey level as two channels.

    The grey level is the mean over the input channels; the gradients are
    taken with replicated borders, so a flat image has zero gradient
    everywhere. IIC's segmentation runs on COCO-Stuff fed the network the
    colour image plus these two channels.

    Parameters
    ----------
    images : Tensor of shape (n, C, H, W)

    Returns
    -------
    Tensor of shape (n, C + 2, H, W)
    """
    grey = images.mean(1, keepdim=True)
    kx = torch.tensor(_SOBEL_X, dtype=images.dtype, device=images.device)
    kernels = torch.stack([kx, kx.T])[:, None]  # (2, 1, 3, 3)
    grad = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), kernels)
    return torch.cat([images, grad], 1)


class FullyConvEncoder(nn.Module):
    """Conv blocks (3x3 conv -> BatchNorm -> ReLU, :func:`~skmic.nn.encoders.conv_block`) with ``n_pool`` 2x2 max-pools.

    A fully convolutional trunk for per-pixel outputs: it maps (n, C, H, W)
    images to (n, ``out_features``, H / 2^n_pool, W / 2^n_pool) feature maps
    (sizes rounded down by the pools). Block ``i`` is followed by a pool when
    ``i < n_pool``, so the early, cheap blocks work at full resolution and
    the wide ones at the reduced one. Pooling both widens the receptive field
    (a texture must be seen over a few periods to be recognised) and cuts
    the cost of every later layer and of the per-displacement joints. With
    BatchNorm running statistics a pixel's output in eval mode does not
    depend on its batch.

    Parameters
    ----------
    in_channels : int
        Channels of the input (after any Sobel channels are appended).
    channels : sequence of int, default=(32, 64, 128)
        Width of each block.
    n_pool : int, default=2
        Number of blocks followed by a 2x2 max-pool (at most
        ``len(channels)``).
    sobel : bool, default=False
        Append the Sobel gradients of the grey level to the input
        (:func:`sobel_channels`) before the first block; ``in_channels`` is
        then the count without them.
    restarts : int, default=1
        Independent copies trained side by side (see :mod:`skmic.nn.stacked`):
        grouped convolutions over ``(n, restarts * in_channels, H, W)``
        inputs, each copy's Sobel channels from its own input;
        ``out_features`` stays the width of one copy's output.
    """

    def __init__(self, in_channels, channels=(32, 64, 128), n_pool=2, *, sobel=False, restarts=1):
        super().__init__()
        self.sobel, self.restarts, self.in_channels = sobel, restarts, in_channels
        if n_pool > len(channels):
            raise ValueError(f"n_pool={n_pool} exceeds the number of blocks ({len(channels)}).")
        layers = []
        width = in_channels + 2 if sobel else in_channels
        for i, out in enumerate(channels):
            conv = nn.Conv2d(restarts * width, restarts * out, 3, padding=1, bias=False, groups=restarts)
            layers += conv_block(conv, pool=i < n_pool)
            width = out
        self.blocks = nn.Sequential(*layers)
        self.out_features = width
        self.stride = 2**n_pool

    def forward(self, x):
        if self.sobel:  # each restart's gradients from its own channels
            n, _, h, w = x.shape
            x = sobel_channels(x.reshape(n * self.restarts, self.in_channels, h, w)).view(n, -1, h, w)
        return self.blocks(x)


class PixelClassifier(nn.Module):
    """A small full-resolution net: 3x3 conv blocks without pooling and a 1x1 conv to class logits.

    Every block is a 3x3 convolution (dilated by its entry of
    ``dilations``, padded to keep the size), BatchNorm and ReLU; a 1x1
    convolution then gives ``n_classes`` logits at every pixel. It keeps
    the input's size, so its output needs no upsampling, and its receptive
    field is ``1 + 2 * sum(dilations)`` pixels a side (15 by default): enough
    to see a few periods of a fine texture, small enough that a pixel near a
    region border is judged mostly by its own side.

    Parameters
    ----------
    in_channels : int
        Channels of the input (without Sobel channels).
    n_classes : int
        Logits per pixel.
    width : int, default=32
        Channels of every block.
    dilations : sequence of int, default=(1, 1, 1, 2, 2)
        One block per entry, with that dilation.
    sobel : bool, default=False
        Append the Sobel gradients of the grey level to the input
        (:func:`sobel_channels`).
    """

    def __init__(self, in_channels, n_classes, width=32, dilations=(1, 1, 1, 2, 2), *, sobel=False):
        super().__init__()
        self.sobel = sobel
        layers, c = [], in_channels + 2 if sobel else in_channels
        for d in dilations:
            layers += [
                nn.Conv2d(c, width, 3, padding=d, dilation=d, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            ]
            c = width
        layers.append(nn.Conv2d(c, n_classes, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        """Logits ``(n, n_classes, H, W)`` of images ``(n, in_channels, H, W)``."""
        return self.layers(sobel_channels(x) if self.sobel else x)


def pixel_heads(heads, feature_map):
    """Apply sub-heads built for feature vectors at every pixel of a map.

    Parameters
    ----------
    heads : torch.nn.Module
        Maps (N, F) features to (N, K, C) soft assignments (K sub-heads),
        e.g. :class:`skmic.nn.heads.ClusterHeads`: at each pixel it is a
        1x1 convolution.
    feature_map : Tensor of shape (n, F, h, w)

    Returns
    -------
    Tensor of shape (n, K, C, h, w)
    """
    n, f, h, w = feature_map.shape
    z = heads(feature_map.permute(0, 2, 3, 1).reshape(-1, f))
    return z.reshape(n, h, w, *z.shape[1:]).permute(0, 3, 4, 1, 2)
