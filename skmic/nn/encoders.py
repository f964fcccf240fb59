"""Encoders: an MLP for tabular data and a small VGG-like conv net for images.

Both keep BatchNorm running statistics, so that in eval mode (``predict``)
the output of a sample does not depend on the rest of its batch. Plain torch:
nothing here knows about scikit-learn.
"""

import torch
from torch import nn

from .small_conv import SmallMapConv2d
from .stacked import linear

__all__ = ["ConvEncoder", "FeatureTokens", "LocalGlobalEncoder", "MLP", "conv_block", "image_batch", "init_weights"]


def conv_block(conv, pool):
    """The layers of a conv block: ``conv`` -> BatchNorm -> ReLU, with a 2x2 max-pool if ``pool``.

    The pool comes before the ReLU: max-pooling and ReLU commute exactly
    (``max(relu(a)) == relu(max(a))``, and the gradient reaches the same
    pixel or is zero), so the block computes the conv -> BN -> ReLU -> pool
    of VGG and IIC bit for bit, with the ReLU on a map four times smaller.
    """
    layers = [conv, nn.BatchNorm2d(conv.out_channels)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return layers + [nn.ReLU(inplace=True)]


class MLP(nn.Sequential):
    """Linear layers with BatchNorm and ReLU between them.

    Parameters
    ----------
    in_features : int
    hidden : sequence of int
        Widths of the hidden layers (each Linear -> BatchNorm1d -> ReLU).
    out_features : int or None
        Width of a final plain Linear layer; ``None`` ends on the last
        hidden layer's activation.
    batchnorm : bool, default=True
    restarts : int, default=1
        Independent copies trained side by side (see :mod:`skmic.nn.stacked`):
        the input is ``(n, restarts * in_features)`` and the output
        ``(n, restarts * out_features)``.
    """

    def __init__(self, in_features, hidden, out_features=None, *, batchnorm=True, restarts=1):
        layers = []
        width = in_features
        for h in hidden:
            layers.append(linear(width, h, restarts, bias=not batchnorm))
            if batchnorm:
                layers.append(nn.BatchNorm1d(restarts * h))
            layers.append(nn.ReLU(inplace=True))
            width = h
        if out_features is not None:
            layers.append(linear(width, out_features, restarts))
            width = out_features
        super().__init__(*layers)
        self.out_features = width


class ConvEncoder(nn.Module):
    """A small VGG-like conv net: (conv 3x3 -> BN -> ReLU [-> max-pool]) blocks (:func:`conv_block`).

    Each block is followed by a 2x2 max-pool while the map is at least 4x4,
    so 8x8 inputs (scikit-learn's digits) and 28x28 inputs (MNIST) both work.
    Convolutions on maps of a few pixels run as matrix products
    (:class:`~skmic.nn.small_conv.SmallMapConv2d`; the same function, faster
    on the CPU).
    After the blocks the map is flattened (``out_features``); the last map is
    available from :meth:`feature_map` (Deep InfoMax's local features).

    Parameters
    ----------
    image_shape : tuple of int
        ``(channels, height, width)``.
    channels : sequence of int, default=(32, 64, 128)
        Width of each conv block.
    pool_last : bool, default=False
        Whether the last block may pool too.
    restarts : int, default=1
        Independent copies trained side by side (see :mod:`skmic.nn.stacked`):
        grouped convolutions over ``(n, restarts * C, H, W)`` maps; the
        input is ``(n, restarts * C * H * W)`` and ``out_features`` stays the
        size of one copy's output.
    """

    def __init__(self, image_shape, channels=(32, 64, 128), *, pool_last=False, restarts=1):
        super().__init__()
        c, h, w = image_shape
        self.image_shape = tuple(image_shape)
        self._input_shape = (restarts * c, h, w)
        blocks = []
        for i, width in enumerate(channels):
            pool = min(h, w) >= 4 and (pool_last or i < len(channels) - 1)
            conv = SmallMapConv2d(restarts * c, restarts * width, 3, padding=1, bias=False, groups=restarts)
            blocks += conv_block(conv, pool)
            if pool:
                h, w = h // 2, w // 2
            c = width
        self.blocks = nn.Sequential(*blocks).to(memory_format=torch.channels_last)
        self.map_shape = (c, h, w)
        self.out_features = c * h * w

    def feature_map(self, x):
        """The last conv map, shape (n, *map_shape), of flat or image input.

        The maps are channels-last in memory (the values and shapes are
        those of the usual layout): on tiny maps with hundreds of channels,
        BatchNorm and max-pooling run several times faster in that layout.
        """
        x = x.reshape((-1,) + self._input_shape).contiguous(memory_format=torch.channels_last)
        return self.blocks(x)

    def forward(self, x):
        return _FlatMaps.apply(self.feature_map(x))


class _FlatMaps(torch.autograd.Function):
    """``maps.flatten(1)`` of channels-last maps whose gradient comes back channels-last.

    Flattening copies the maps into the usual (C, H, W) order, and autograd
    would hand the gradient back in that order too; BatchNorm and ReLU then
    run their backward pass on a gradient laid out unlike their input, on
    a slow path (digits' last block, 192 x 1024 x 2 x 2: 4.4 ms against 0.5 ms).
    """

    @staticmethod
    def forward(ctx, maps):
        ctx.shape = maps.shape
        return maps.flatten(1)

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(ctx.shape).contiguous(memory_format=torch.channels_last)


def init_weights(module, linear_std=None):
    """Kaiming-normal convs; linear layers N(0, linear_std) if given.

    IIC's reference initialises convolutions with Kaiming's rule and linear
    layers with N(0, 0.01); torch's defaults are kept when ``linear_std`` is
    None.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0.0, linear_std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


def image_batch(x, image_shape):
    """View a flat batch (n, C*H*W) as images (n, C, H, W)."""
    return x.reshape((x.shape[0],) + tuple(image_shape))



class FeatureTokens(nn.Module):
    """Per-feature tokens for tabular data: ``t_j = ReLU(x_j * w_j + b_j)``.

    Each of the ``n_features`` columns gets its own ``channels``-wide
    embedding, scaled by its value; the (n, n_features, channels) result
    plays the role of a local feature map (one "location" per feature).
    """

    def __init__(self, n_features, channels):
        super().__init__()
        self.weight = nn.Parameter(nn.init.normal_(torch.empty(n_features, channels)))
        self.bias = nn.Parameter(torch.zeros(n_features, channels))

    def forward(self, x):
        return (x[:, :, None] * self.weight + self.bias).relu()


class LocalGlobalEncoder(nn.Module):
    """An encoder with a local feature map M and a global code Y = f(M).

    For images M is the last conv map of a :class:`ConvEncoder`; for tabular
    data it is a :class:`FeatureTokens` layer. ``forward`` returns
    ``(local, code)`` with ``local`` of shape (n, locations, channels).
    """

    def __init__(self, n_features, n_components, *, image_shape=None, conv_channels=(32, 64, 128), token_channels=16, hidden=(512,)):
        super().__init__()
        if image_shape is not None:
            self.local = ConvEncoder(image_shape, conv_channels)
            channels, h, w = self.local.map_shape
            self.n_locations, self.channels = h * w, channels
        else:
            self.local = FeatureTokens(n_features, token_channels)
            self.n_locations, self.channels = n_features, token_channels
        self.is_image = image_shape is not None
        self.head = MLP(self.n_locations * self.channels, hidden, n_components)

    def forward(self, x):
        if self.is_image:
            m = self.local.feature_map(x)  # (n, C, H, W)
            local = m.flatten(2).transpose(1, 2)
        else:
            local = self.local(x)  # (n, F, C)
        return local, self.head(local.flatten(1))
