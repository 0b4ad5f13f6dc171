"""The sub-pixel form of nearest x2 upsampling + 3x3 conv (zoo/nn/upsample_conv.py) against the two-step form."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from zoo.nn.upsample_conv import UpsampleConv2d, upsample_conv3x3


def two_step(x, weight, bias):
    return F.conv2d(F.interpolate(x, scale_factor=2.0, mode="nearest"), weight, bias, padding=1)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("shape", [(2, 8, 5, 7, 9), (1, 3, 4, 1, 1), (3, 6, 6, 4, 2)])
def test_equals_upsample_then_conv(shape, channels_last):
    """Exact in float64 (only the order of the additions differs), any size including 1x1 maps, either layout."""
    B, I, O, H, W = shape
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, I, H, W, generator=g, dtype=torch.float64)
    weight = torch.randn(O, I, 3, 3, generator=g, dtype=torch.float64)
    bias = torch.randn(O, generator=g, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    out = upsample_conv3x3(x, weight, bias)
    assert out.shape == (B, O, 2 * H, 2 * W)
    torch.testing.assert_close(out, two_step(x, weight, bias), rtol=0, atol=1e-12)
    if H * W > 1:  # a 1x1 map is both layouts at once
        assert out.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    torch.testing.assert_close(upsample_conv3x3(x, weight, None), two_step(x, weight, None), rtol=0, atol=1e-12)


def test_module_keys_gradients_and_float32():
    torch.manual_seed(0)
    conv, reference = UpsampleConv2d(16, 8), nn.Conv2d(16, 8, 3, padding=1)
    assert conv.state_dict().keys() == reference.state_dict().keys()
    reference.load_state_dict(conv.state_dict())
    x = torch.randn(2, 16, 12, 10)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = conv(x1)
    ref = reference(F.interpolate(x2, scale_factor=2.0, mode="nearest"))
    assert (out - ref).abs().max() < 1e-5
    g = torch.randn_like(out)
    out.backward(g)
    ref.backward(g)
    for a, b in ((x1.grad, x2.grad), (conv.weight.grad, reference.weight.grad), (conv.bias.grad, reference.bias.grad)):
        assert (a - b).abs().max() < 1e-4 * b.abs().max()


def test_kernels_follow_the_weight_and_are_not_kept():
    """The 2x2 kernels are built from the weight at each call: an update in place, a load or a cast is used at once,
    and the module holds no tensor besides its parameters (kept kernels cost 16/9 of the weight)."""
    torch.manual_seed(0)
    conv = UpsampleConv2d(4, 4).eval()
    x = torch.randn(1, 4, 5, 5)
    with torch.no_grad():
        first = conv(x)
        assert torch.equal(conv(x), first)
        conv.weight.mul_(2)
        assert (conv(x) - two_step(x, conv.weight, conv.bias)).abs().max() < 1e-5
        conv.load_state_dict({"weight": torch.randn(4, 4, 3, 3), "bias": torch.zeros(4)})
        assert (conv(x) - two_step(x, conv.weight, None)).abs().max() < 1e-5
        conv.double()
        out = conv(x.double())
        assert out.dtype == torch.float64
        assert (out - two_step(x.double(), conv.weight, conv.bias)).abs().max() < 1e-12
    held = [v for v in vars(conv).values() if isinstance(v, torch.Tensor)]
    assert held == [] and list(conv.buffers()) == []


def test_inductor_compiles_it_without_a_graph_break():
    """Compiled (inductor, the kernels built inside the graph), channels-last: the two-step result within 1e-5."""
    from torch._dynamo.utils import counters

    torch.manual_seed(0)
    conv = UpsampleConv2d(8, 6).eval().to(memory_format=torch.channels_last)
    x = torch.randn(2, 8, 6, 5).contiguous(memory_format=torch.channels_last)
    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(conv)
    with torch.no_grad():
        out = compiled(x)
        assert (out - two_step(x, conv.weight, conv.bias)).abs().max() < 1e-5
        conv.weight.mul_(-1)  # built in the graph from the weight: an update is seen at once
        assert (compiled(x) + out - 2 * conv.bias[:, None, None]).abs().max() < 1e-5
    assert dict(counters["graph_break"]) == {}
