"""A 'same' convolution that runs as a matrix product on small maps.

On a map of a few pixels (the 2 x 2 maps of digits' last conv block) a
3 x 3 convolution with padding 1 is a dense linear map between whole maps:
every output pixel sees every input pixel, most kernel taps fall on the
padding, and the CPU's convolution kernels spend their time on per-pixel
overhead rather than arithmetic. :class:`SmallMapConv2d` computes the same
function there as one batched matrix product per group, whose matrix is
built from the kernel by a product with a 0/1 tap matrix (differentiably, so
the kernel is what trains).
On larger maps it is an ordinary :class:`torch.nn.Conv2d`.

The parameters, their names and shapes are those of ``nn.Conv2d``, so
state dicts, initialisation and stacking (:mod:`skmic.nn.stacked`) are
unchanged; outputs equal the convolution's up to float rounding.
"""

import functools

import torch
from torch import nn

__all__ = ["SmallMapConv2d", "DENSE_MAX_PIXELS"]

#: Largest map (height x width) computed as a matrix product. Measured on the
#: 2-core CPU (2 threads; 8 stacked restarts, 192 images, the layer with its
#: BatchNorm and ReLU, forward and backward): on 2 x 2 maps (64 -> 128
#: channels) the matrix product takes 0.53-0.59 of the convolution's time,
#: on 4 x 4 maps (32 -> 64) 2.5 times it, on 8 x 8 maps 1.7 times it.
DENSE_MAX_PIXELS = 4


@functools.lru_cache(maxsize=32)
def _tap_matrix(height, width, kernel_size, padding, device):
    """``(kh * kw, P * P)`` 0/1 matrix: entry ``(t, p * P + q)`` is 1 when output pixel p sees input pixel q through tap t.

    Cached: every training step asks for the same few map sizes, and the
    matrix is only read.
    """
    kh, kw = kernel_size
    y, x = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
    y, x = y.reshape(-1), x.reshape(-1)
    dy = y[None, :] - y[:, None] + padding[0]
    dx = x[None, :] - x[:, None] + padding[1]
    inside = (dy >= 0) & (dy < kh) & (dx >= 0) & (dx < kw)
    taps = torch.arange(kh * kw, device=device)[:, None, None]
    return ((dy * kw + dx)[None] == taps).logical_and(inside[None]).reshape(kh * kw, -1).float()


class SmallMapConv2d(nn.Conv2d):
    """``nn.Conv2d`` (stride 1, 'same' padding) that is a matrix product on maps of at most ``dense_max_pixels`` pixels.

    Takes ``nn.Conv2d``'s arguments; stride and dilation must be 1 and the
    padding ``(kernel_size - 1) // 2`` with zeros, so that the output map
    has the input's size.

    Parameters
    ----------
    *args, **kwargs
        Those of :class:`torch.nn.Conv2d`.
    dense_max_pixels : int, default=DENSE_MAX_PIXELS
        Maps of at most this many pixels run as a matrix product; 0 never.
    """

    def __init__(self, *args, dense_max_pixels=DENSE_MAX_PIXELS, **kwargs):
        super().__init__(*args, **kwargs)
        same = tuple((k - 1) // 2 for k in self.kernel_size)
        if (self.stride != (1, 1) or self.dilation != (1, 1) or self.padding != same
                or self.padding_mode != "zeros"):
            raise ValueError(
                "SmallMapConv2d takes stride 1, dilation 1 and zero padding (kernel_size - 1) // 2; "
                f"got stride={self.stride}, dilation={self.dilation}, padding={self.padding}, "
                f"padding_mode={self.padding_mode!r}."
            )
        self.dense_max_pixels = dense_max_pixels

    def dense_weight(self, height, width):
        """The ``(groups, out/groups * P, in/groups * P)`` matrices of the convolution on ``height x width`` maps.

        A matrix product of the kernel with the 0/1 tap matrix (each entry
        is the one tap that links its two pixels, or 0), so that its
        gradient is a matrix product too: gathering the entries with an
        index instead made the backward pass scatter-add into the kernel,
        which took as long as the layer's own products.
        """
        out_c, in_g = self.weight.shape[:2]
        p, taps = height * width, self.kernel_size[0] * self.kernel_size[1]
        matrix = _tap_matrix(height, width, self.kernel_size, self.padding, self.weight.device).to(self.weight.dtype)
        dense = (self.weight.reshape(out_c * in_g, taps) @ matrix).view(out_c, in_g, p, p)
        return dense.permute(0, 2, 1, 3).reshape(self.groups, out_c // self.groups * p, in_g * p)

    def forward(self, x):
        n, _, h, w = x.shape
        if h * w > self.dense_max_pixels:
            return super().forward(x)
        g = self.groups
        rows = x.reshape(n, g, -1).transpose(0, 1)  # (groups, n, in_g * P), pixels within channels
        out = torch.bmm(rows, self.dense_weight(h, w).transpose(1, 2))
        if self.bias is not None:
            out = out + self.bias.view(g, 1, -1, 1).expand(-1, -1, -1, h * w).reshape(g, 1, -1)
        out = out.transpose(0, 1).reshape(n, self.out_channels, h, w)
        if x.is_contiguous(memory_format=torch.channels_last):  # as the convolution would: BatchNorm is fast on it
            out = out.contiguous(memory_format=torch.channels_last)
        return out
