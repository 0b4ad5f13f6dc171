"""How many full-size feature maps the shared conv encoders and decoders hold at once.

Counted exactly (not by RSS, which depends on the allocator): a dispatch mode notes the storage of every tensor an
op creates and drops it when the storage is freed; parameters and the input are not counted. At the finest level a
residual block needs its input (for the residual), the map being convolved and the convolution's output: three
maps. Before the levels were run layer by layer from the encoder / decoder, and a block's second half one op per
statement, a level's input, the first conv's output and the second norm's output stayed alive too: five.
"""
from __future__ import annotations

import weakref

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from zoo.nn.maskgit_vqgan import MaskGITConvConfig, MaskGITDecoder, MaskGITEncoder
from zoo.nn.taming import TamingConvConfig, TamingDecoder, TamingEncoder
from zoo.nn.vitamin import InvMbConvBlock, MbConvBlock


class LiveTensors(TorchDispatchMode):
    """`peak`: the most bytes held at once by storages that ops created (minus those in `ignore`)."""

    def __init__(self, ignore: set[int]) -> None:
        super().__init__()
        self.ignore, self.live, self.peak, self.alive = ignore, 0, 0, set()

    def _freed(self, key: int, nbytes: int) -> None:
        self.alive.discard(key)
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key = storage.data_ptr()
                if key in self.alive or key in self.ignore or storage.nbytes() == 0:
                    continue
                self.alive.add(key)
                self.live += storage.nbytes()
                weakref.finalize(storage, self._freed, key, storage.nbytes())
        self.peak = max(self.peak, self.live)
        return out


def peak_maps(module: torch.nn.Module, x: torch.Tensor, map_bytes: int) -> float:
    ignore = {p.untyped_storage().data_ptr() for p in module.parameters()} | {x.untyped_storage().data_ptr()}
    with torch.no_grad():
        module(x)  # a first call outside the count: whatever a library sets up once is not the model's
        counter = LiveTensors(ignore)
        with counter:
            module(x)
    return counter.peak / map_bytes


MASKGIT = MaskGITConvConfig(hidden_channels=32, channel_mult=(1, 1, 2), num_res_blocks=2, z_channels=8)
TAMING = TamingConvConfig(hidden_channels=32, channel_mult=(1, 1, 2), num_res_blocks=2, z_channels=8,
                          level_attention=False, mid_attention=False)


@pytest.mark.parametrize("decoder", [MaskGITDecoder(MASKGIT), TamingDecoder(TAMING)], ids=["maskgit", "taming"])
def test_decoder_holds_three_full_size_maps(decoder):
    torch.manual_seed(0)
    z = torch.randn(2, 8, 12, 12)
    full_map = 2 * 32 * 48 * 48 * 4  # batch x finest width x output side^2 x fp32
    assert peak_maps(decoder.eval(), z, full_map) <= 3.2


@pytest.mark.parametrize("encoder", [MaskGITEncoder(MASKGIT), TamingEncoder(TAMING)], ids=["maskgit", "taming"])
def test_encoder_holds_three_full_size_maps(encoder):
    torch.manual_seed(0)
    x = torch.rand(2, 3, 48, 48)
    full_map = 2 * 32 * 48 * 48 * 4
    assert peak_maps(encoder.eval(), x, full_map) <= 3.2


@pytest.mark.parametrize("block", [MbConvBlock(32, 32), InvMbConvBlock(32, 32)], ids=["mbconv", "inverted"])
def test_mbconv_holds_two_expanded_maps(block):
    """ViTamin's (inverted) MBConv: the x4 expanded map and the depthwise conv's output (the input is not
    counted). Before its second half ran one op per statement, the GELU's output made a third."""
    torch.manual_seed(0)
    x = torch.randn(2, 32, 24, 24)
    expanded_map = 2 * 128 * 24 * 24 * 4
    assert peak_maps(block.eval(), x, expanded_map) <= 2.1
