"""SmallMapConv2d: the matrix-product path against torch's own convolution."""

import pytest
import torch
from torch import nn

from skmic.nn.small_conv import SmallMapConv2d


def _pair(in_c, out_c, groups, kernel_size=3, bias=False):
    """A SmallMapConv2d that always takes the matrix path and an nn.Conv2d with its weights, in float64."""
    torch.manual_seed(0)
    dense = SmallMapConv2d(in_c, out_c, kernel_size, padding=kernel_size // 2, groups=groups, bias=bias,
                           dense_max_pixels=10**6).double()
    conv = nn.Conv2d(in_c, out_c, kernel_size, padding=kernel_size // 2, groups=groups, bias=bias).double()
    conv.load_state_dict(dense.state_dict())
    return dense, conv


@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (3, 2), (4, 4), (5, 3)])
@pytest.mark.parametrize("groups, bias, kernel_size", [(1, False, 3), (4, False, 3), (2, True, 3), (2, False, 5)])
def test_matrix_path_equals_the_convolution_and_its_gradients(shape, groups, bias, kernel_size):
    dense, conv = _pair(4 * groups, 3 * groups, groups, kernel_size, bias)
    x = torch.randn(7, 4 * groups, *shape, dtype=torch.float64)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_dense, out_conv = dense(xa), conv(xb)
    assert out_dense.shape == out_conv.shape
    torch.testing.assert_close(out_dense, out_conv, rtol=0, atol=1e-12)
    weights = torch.randn_like(out_conv)
    (out_dense * weights).sum().backward()
    (out_conv * weights).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(dense.weight.grad, conv.weight.grad, rtol=0, atol=1e-12)
    if bias:
        torch.testing.assert_close(dense.bias.grad, conv.bias.grad, rtol=0, atol=1e-12)


def test_channels_last_input_gives_the_same_output():
    dense, _ = _pair(8, 6, 2)
    x = torch.randn(5, 8, 2, 2, dtype=torch.float64)
    torch.testing.assert_close(dense(x.contiguous(memory_format=torch.channels_last)), dense(x), rtol=0, atol=0)


def test_only_maps_up_to_dense_max_pixels_take_the_matrix_path(monkeypatch):
    layer = SmallMapConv2d(2, 3, 3, padding=1, dense_max_pixels=4)
    calls = []
    original = SmallMapConv2d.dense_weight
    monkeypatch.setattr(SmallMapConv2d, "dense_weight", lambda self, h, w: calls.append((h, w)) or original(self, h, w))
    layer(torch.randn(2, 2, 4, 4))
    layer(torch.randn(2, 2, 2, 2))
    assert calls == [(2, 2)]


def test_state_dict_is_that_of_conv2d():
    layer = SmallMapConv2d(4, 6, 3, padding=1, groups=2)
    conv = nn.Conv2d(4, 6, 3, padding=1, groups=2)
    assert {k: v.shape for k, v in layer.state_dict().items()} == {k: v.shape for k, v in conv.state_dict().items()}


@pytest.mark.parametrize("kwargs", [dict(padding=0), dict(padding=1, stride=2), dict(padding=2, dilation=2),
                                    dict(padding=1, padding_mode="reflect")])
def test_only_same_size_convolutions(kwargs):
    with pytest.raises(ValueError, match="SmallMapConv2d takes stride 1"):
        SmallMapConv2d(2, 2, 3, **kwargs)


def test_channels_last_input_gives_channels_last_output():
    conv = SmallMapConv2d(8, 16, 3, padding=1, groups=2)
    x = torch.randn(5, 8, 2, 2)
    assert conv(x).is_contiguous()
    assert conv(x.contiguous(memory_format=torch.channels_last)).is_contiguous(memory_format=torch.channels_last)
