"""The taming-transformers / latent-diffusion convolutional encoder and decoder (with self-attention).

The conv stack of LlamaGen's VQ tokenizers and of VAR's multi-scale VQVAE (both copied from taming / LDM):
- ``conv_in``, then per level `num_res_blocks` residual blocks (GroupNorm(32, eps 1e-6) - SiLU - conv3x3, twice;
  a 1x1 ``nin_shortcut`` on the input when the width changes), a single-head self-attention block after each
  residual block of the deepest level (`level_attention`), and a stride-2 conv after right/bottom zero padding
  between levels;
- a middle of residual block, attention (`mid_attention`), residual block;
- GroupNorm - SiLU - ``conv_out``.
The decoder mirrors it with one more residual block per level and nearest x2 upsampling followed by a 3x3 conv.
Attention blocks hold one fused ``qkv`` 1x1 conv (VAR's layout; LlamaGen's separate q/k/v are concatenated by its
converter).

Levels are stored finest first in both (``down.{i}`` / ``up.{i}``, i = 0 at full resolution); the decoder runs
``up`` from the deepest level to level 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .upsample_conv import UpsampleConv2d


@dataclass
class TamingConvConfig:
    """Sizes of the conv encoder/decoder: `hidden_channels` x `channel_mult` per level (widths must be multiples
    of 32 for GroupNorm), `z_channels` at the bottleneck; downsampling factor ``2 ** (len(channel_mult) - 1)``."""

    hidden_channels: int = 128
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    z_channels: int = 256
    level_attention: bool = True  # attention after each residual block of the deepest level
    mid_attention: bool = True
    image_channels: int = 3
    dropout: float = 0.0

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.channel_mult) - 1)

    def check(self) -> None:
        widths = [self.hidden_channels * m for m in self.channel_mult]
        if any(w % 32 for w in widths) or not widths:
            raise ValueError(f"level widths {widths} must be positive multiples of 32 (GroupNorm with 32 groups)")


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels, eps=1e-6)


class ResnetBlock(nn.Module):
    """``x + conv2(drop(silu(gn2(conv1(silu(gn1(x)))))))`` (shortcut conv when widths differ):
    ``[B, Cin, H, W] -> [B, Cout, H, W]``."""

    def __init__(self, in_ch: int, out_ch: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = group_norm(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm2 = group_norm(out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        # one op per statement: each rebinding of h frees the map before it (conv1's output, then the norm's),
        # so the block holds three full-size maps at most: x, the op's input and its output
        h = self.norm2(h)
        h = F.silu(h)
        h = self.conv2(self.dropout(h))
        return self.nin_shortcut(x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the H·W positions, scale ``C^-1/2``, residual: ``[B, C, H, W]`` -> same."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, C, H * W).unbind(1)
        weights = torch.bmm(q.transpose(1, 2), k).mul(C ** -0.5).softmax(dim=2)  # [B, HW(q), HW(k)]
        h = torch.bmm(v, weights.transpose(1, 2)).reshape(B, C, H, W)
        return x + self.proj_out(h)


class Downsample(nn.Module):
    """Zero-pad right and bottom by one, then a stride-2 3x3 conv: ``[B, C, H, W] -> [B, C, H/2, W/2]``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest x2, then a 3x3 conv: ``[B, C, H, W] -> [B, C, 2H, 2W]``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = UpsampleConv2d(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class _Level(nn.Module):
    """Residual blocks ``block.{j}``, attention ``attn.{j}`` after each (deepest level only) and the resampler.

    The encoder and decoder run its `layers()` in their own loop rather than calling the level: a level called as
    a module would hold its input until its last block returned (one full-size map more at the peak)."""

    def __init__(self, in_ch: int, out_ch: int, blocks: int, attention: bool, dropout: float) -> None:
        super().__init__()
        self.block = nn.ModuleList(ResnetBlock(in_ch if j == 0 else out_ch, out_ch, dropout) for j in range(blocks))
        self.attn = nn.ModuleList(AttnBlock(out_ch) for _ in range(blocks)) if attention else nn.ModuleList()

    def layers(self) -> list[nn.Module]:
        """The level's modules in the order they run: each block (and its attention), then the resampler."""
        order: list[nn.Module] = []
        for j, block in enumerate(self.block):
            order += [block, self.attn[j]] if len(self.attn) else [block]
        for name in ("downsample", "upsample"):
            if hasattr(self, name):
                order.append(getattr(self, name))
        return order


class _Middle(nn.Module):
    def __init__(self, channels: int, attention: bool, dropout: float) -> None:
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels, dropout)
        self.attn_1 = AttnBlock(channels) if attention else nn.Identity()
        self.block_2 = ResnetBlock(channels, channels, dropout)

    def forward(self, h: Tensor) -> Tensor:
        return self.block_2(self.attn_1(self.block_1(h)))


class TamingEncoder(nn.Module):
    """Image ``[B, 3, H, W]`` (the family's normalisation) -> features ``[B, z, H/f, W/f]``."""

    def __init__(self, cfg: TamingConvConfig) -> None:
        super().__init__()
        cfg.check()
        ch, mult, n = cfg.hidden_channels, tuple(cfg.channel_mult), len(cfg.channel_mult)
        self.conv_in = nn.Conv2d(cfg.image_channels, ch, 3, padding=1)
        ins = (1,) + mult
        self.down = nn.ModuleList()
        for i in range(n):
            level = _Level(ch * ins[i], ch * mult[i], cfg.num_res_blocks, cfg.level_attention and i == n - 1,
                           cfg.dropout)
            if i != n - 1:
                level.downsample = Downsample(ch * mult[i])
            self.down.append(level)
        top = ch * mult[-1]
        self.mid = _Middle(top, cfg.mid_attention, cfg.dropout)
        self.norm_out = group_norm(top)
        self.conv_out = nn.Conv2d(top, cfg.z_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)
        for level in self.down:
            for layer in level.layers():
                h = layer(h)
        return self.conv_out(F.silu(self.norm_out(self.mid(h))))


class TamingDecoder(nn.Module):
    """Features ``[B, z, h, w]`` -> raw image ``[B, 3, h·f, w·f]`` (the family's normalisation, unclamped)."""

    def __init__(self, cfg: TamingConvConfig) -> None:
        super().__init__()
        cfg.check()
        ch, mult, n = cfg.hidden_channels, tuple(cfg.channel_mult), len(cfg.channel_mult)
        top = ch * mult[-1]
        self.conv_in = nn.Conv2d(cfg.z_channels, top, 3, padding=1)
        self.mid = _Middle(top, cfg.mid_attention, cfg.dropout)
        levels: list[nn.Module] = []
        for i in range(n):
            in_ch = ch * mult[min(i + 1, n - 1)]
            level = _Level(in_ch, ch * mult[i], cfg.num_res_blocks + 1, cfg.level_attention and i == n - 1,
                           cfg.dropout)
            if i != 0:
                level.upsample = Upsample(ch * mult[i])
            levels.append(level)
        self.up = nn.ModuleList(levels)
        self.norm_out = group_norm(ch * mult[0])
        self.conv_out = nn.Conv2d(ch * mult[0], cfg.image_channels, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            for layer in level.layers():
                h = layer(h)
        return self.conv_out(F.silu(self.norm_out(h)))
