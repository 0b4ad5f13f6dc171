"""The MaskGIT VQGAN convolutional encoder and decoder (no attention layers).

Used by the `maskgit-vqgan` family, as the pixel decoder inside every TiTok / One-D-Piece checkpoint, and as
ALIT's base tokenizer. Two quirks of the released weights are reproduced:
- when a residual block changes width, its 1x1 shortcut is applied to the block's *output* h, not to its input
  (``h + shortcut(h)``), and the input is dropped (`shortcut_on_output=True`, the released behaviour);
- downsampling is a 2x2 average pool, upsampling nearest x2 followed by a 3x3 convolution.
Convolutions use symmetric padding, which equals TF "SAME" padding for stride 1 and odd kernels.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from .upsample_conv import UpsampleConv2d


@dataclass
class MaskGITConvConfig:
    """Sizes of the MaskGIT conv encoder/decoder (the release: 128, (1,1,2,2,4), 2, 256: f16, 256-d codes)."""

    hidden_channels: int = 128
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    z_channels: int = 256
    image_channels: int = 3
    dropout: float = 0.0
    shortcut_on_output: bool = True

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.channel_mult) - 1)


class ResnetBlock(nn.Module):
    """GN-SiLU-conv3x3 twice (convs without bias), with a residual connection; ``[B, Cin, H, W] -> [B, Cout, H, W]``."""

    def __init__(self, in_ch: int, out_ch: int, dropout: float = 0.0, shortcut_on_output: bool = True) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(32, in_ch, eps=1e-6)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(32, out_ch, eps=1e-6)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.shortcut_on_output = shortcut_on_output
        if in_ch != out_ch:
            # The released weights are (out, out, 1, 1) because the port applies this conv to h.
            self.nin_shortcut = nn.Conv2d(out_ch if shortcut_on_output else in_ch, out_ch, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        # one op per statement: each rebinding of h frees the map before it (conv1's output, then the norm's),
        # so the block holds three full-size maps at most: x, the op's input and its output
        h = self.norm2(h)
        h = F.silu(h)
        h = self.conv2(self.dropout(h))
        if not hasattr(self, "nin_shortcut"):
            return x + h
        return h + self.nin_shortcut(h if self.shortcut_on_output else x)


class _Level(nn.Module):
    """One resolution level: `num_res_blocks` ResnetBlocks (``block.{j}``), optionally an up-sampling conv.

    The encoder and decoder run its `layers()` in their own loop rather than calling the level: a level called as
    a module would hold its input until its last block returned (one full-size map more at the peak)."""

    def __init__(self, in_ch: int, out_ch: int, cfg: MaskGITConvConfig, upsample: bool = False) -> None:
        super().__init__()
        self.block = nn.ModuleList(
            ResnetBlock(in_ch if j == 0 else out_ch, out_ch, cfg.dropout, cfg.shortcut_on_output)
            for j in range(cfg.num_res_blocks)
        )
        if upsample:
            self.upsample_conv = UpsampleConv2d(out_ch, out_ch)  # nearest x2, then conv 3x3

    def layers(self) -> list[nn.Module]:
        """The level's modules in the order they run: its blocks, then the up-sampling conv if it has one."""
        return [*self.block, *((self.upsample_conv,) if hasattr(self, "upsample_conv") else ())]


class MaskGITEncoder(nn.Module):
    """Image ``[B, 3, H, W]`` (in [0, 1]) -> pre-quantization features ``[B, z, H/f, W/f]``."""

    def __init__(self, cfg: MaskGITConvConfig) -> None:
        super().__init__()
        ch, mult = cfg.hidden_channels, cfg.channel_mult
        self.conv_in = nn.Conv2d(cfg.image_channels, ch, 3, padding=1, bias=False)
        ins = (1,) + tuple(mult)
        self.down = nn.ModuleList(_Level(ch * ins[i], ch * mult[i], cfg) for i in range(len(mult)))
        mid = ch * mult[-1]
        self.mid = nn.ModuleList(ResnetBlock(mid, mid, cfg.dropout) for _ in range(cfg.num_res_blocks))
        self.norm_out = nn.GroupNorm(32, mid, eps=1e-6)
        self.conv_out = nn.Conv2d(mid, cfg.z_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)
        for i, level in enumerate(self.down):
            for layer in level.layers():
                h = layer(h)
            if i != len(self.down) - 1:
                h = F.avg_pool2d(h, kernel_size=2, stride=2)
        for block in self.mid:
            h = block(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class MaskGITDecoder(nn.Module):
    """Latents ``[B, z, h, w]`` -> image ``[B, 3, h·f, w·f]`` ([0, 1] scale, not clamped).

    Levels are stored as ``up.{i}`` (i = 0 finest) and run from the coarsest (i = L-1) to i = 0; every level but
    0 ends with nearest x2 upsampling and a 3x3 conv.
    """

    def __init__(self, cfg: MaskGITConvConfig) -> None:
        super().__init__()
        ch, mult = cfg.hidden_channels, cfg.channel_mult
        top = ch * mult[-1]
        self.conv_in = nn.Conv2d(cfg.z_channels, top, 3, padding=1)
        self.mid = nn.ModuleList(ResnetBlock(top, top, cfg.dropout) for _ in range(cfg.num_res_blocks))
        levels = []
        for i in range(len(mult)):
            in_ch = ch * (mult[-1] if i == len(mult) - 1 else mult[i + 1])
            levels.append(_Level(in_ch, ch * mult[i], cfg, upsample=i != 0))
        self.up = nn.ModuleList(levels)
        self.norm_out = nn.GroupNorm(32, ch * mult[0], eps=1e-6)
        self.conv_out = nn.Conv2d(ch * mult[0], cfg.image_channels, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.conv_in(z)
        for block in self.mid:
            h = block(h)
        for level in reversed(self.up):
            for layer in level.layers():
                h = layer(h)
        return self.conv_out(F.silu(self.norm_out(h)))
