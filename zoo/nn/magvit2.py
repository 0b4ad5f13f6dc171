"""The MAGVIT-v2-style convolutional encoder and decoder of Open-MAGVIT2 (SEED-Voken `improved_model.py`).

No attention. Residual blocks are GroupNorm(32, eps 1e-6) - SiLU - bias-free conv3x3, twice, with a bias-free 1x1
``nin_shortcut`` on the input when the width changes. The encoder downsamples with stride-2 3x3 convs (symmetric
padding 1) and ends with GroupNorm - SiLU - a 1x1 ``conv_out``. The decoder conditions each level on the quantized
latent by adaptive GroupNorm (``adaptive.{i}``) and upsamples by a 3x3 conv to 4x the channels followed by a
depth-to-space whose channel order differs from `nn.PixelShuffle` (see `depth_to_space`).

Levels are stored finest first (``down.{i}`` / ``up.{i}`` / ``adaptive.{i}``, i = 0 at full resolution); the
decoder runs from the deepest level to level 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class Magvit2ConvConfig:
    """Sizes: `hidden_channels` x `channel_mult` per level (multiples of 32 for GroupNorm), `z_channels` latent
    channels; downsampling factor ``2 ** (len(channel_mult) - 1)``. Released: 128, (1,1,2,2,4), 4, 18 (f16)."""

    hidden_channels: int = 128
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 4
    z_channels: int = 18
    image_channels: int = 3

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.channel_mult) - 1)

    def check(self) -> None:
        widths = [self.hidden_channels * m for m in self.channel_mult]
        if not widths or any(w <= 0 or w % 32 for w in widths):
            raise ValueError(f"level widths {widths} must be positive multiples of 32 (GroupNorm with 32 groups)")
        if self.num_res_blocks < 1 or self.z_channels < 1:
            raise ValueError("num_res_blocks and z_channels must be >= 1")


def group_norm(channels: int, affine: bool = True) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels, eps=1e-6, affine=affine)


class ResBlock(nn.Module):
    """``shortcut(x) + conv2(silu(gn2(conv1(silu(gn1(x))))))``, convs without bias: ``[B, Cin, H, W] -> [B, Cout,
    H, W]``."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.norm1 = group_norm(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False)
        self.norm2 = group_norm(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.nin_shortcut = nn.Conv2d(in_ch, out_ch, 1, bias=False) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.nin_shortcut(x)


def depth_to_space(x: Tensor, block: int = 2) -> Tensor:
    """``[B, C·s², H, W] -> [B, C, H·s, W·s]`` with channel ``(i·s + j)·C + c`` going to pixel ``(s·h + i, s·w + j)``
    (the official "DCR" order; `nn.PixelShuffle` uses channel ``c·s² + i·s + j``)."""
    B, C, H, W = x.shape
    c = C // (block * block)
    x = x.reshape(B, block, block, c, H, W).permute(0, 3, 4, 1, 5, 2)
    return x.reshape(B, c, H * block, W * block)


class Upsampler(nn.Module):
    """3x3 conv to 4x the channels, then `depth_to_space`: ``[B, C, H, W] -> [B, C, 2H, 2W]``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels * 4, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return depth_to_space(self.conv1(x), 2)


class AdaptiveGroupNorm(nn.Module):
    """GroupNorm without affine, then ``gamma(std(q)) · x + beta(mean(q))`` from the quantized latent q.

    The statistics are per channel of ``q [B, z, h, w]`` over its positions: mean, and
    ``sqrt(var + eps)`` with torch's UNBIASED (N-1) variance, as the official code computes it.
    """

    def __init__(self, z_channels: int, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.gn = group_norm(channels, affine=False)
        self.gamma = nn.Linear(z_channels, channels)
        self.beta = nn.Linear(z_channels, channels)
        self.eps = eps

    def forward(self, x: Tensor, q: Tensor) -> Tensor:
        flat = q.flatten(2)  # [B, z, h·w]
        scale = self.gamma((flat.var(dim=-1) + self.eps).sqrt())[:, :, None, None]
        bias = self.beta(flat.mean(dim=-1))[:, :, None, None]
        return self.gn(x) * scale + bias


class _Level(nn.Module):
    """``block.{j}``: the residual blocks of one level (the resampler is attached by the encoder/decoder)."""

    def __init__(self, in_ch: int, out_ch: int, blocks: int) -> None:
        super().__init__()
        self.block = nn.ModuleList(ResBlock(in_ch if j == 0 else out_ch, out_ch) for j in range(blocks))

    def forward(self, h: Tensor) -> Tensor:
        for block in self.block:
            h = block(h)
        return h


class Magvit2Encoder(nn.Module):
    """Image ``[B, 3, H, W]`` in [-1, 1] -> latents ``[B, z, H/f, W/f]``."""

    def __init__(self, cfg: Magvit2ConvConfig) -> None:
        super().__init__()
        cfg.check()
        ch, mult, n = cfg.hidden_channels, tuple(cfg.channel_mult), len(cfg.channel_mult)
        self.conv_in = nn.Conv2d(cfg.image_channels, ch, 3, padding=1, bias=False)
        ins = (1,) + mult
        self.down = nn.ModuleList()
        for i in range(n):
            level = _Level(ch * ins[i], ch * mult[i], cfg.num_res_blocks)
            if i != n - 1:
                level.downsample = nn.Conv2d(ch * mult[i], ch * mult[i], 3, stride=2, padding=1)
            self.down.append(level)
        top = ch * mult[-1]
        self.mid_block = nn.ModuleList(ResBlock(top, top) for _ in range(cfg.num_res_blocks))
        self.norm_out = group_norm(top)
        self.conv_out = nn.Conv2d(top, cfg.z_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)
        for level in self.down:
            h = level(h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        for block in self.mid_block:
            h = block(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Magvit2Decoder(nn.Module):
    """Quantized latents ``[B, z, h, w]`` -> raw image ``[B, 3, h·f, w·f]`` ([-1, 1] scale, unclamped)."""

    def __init__(self, cfg: Magvit2ConvConfig) -> None:
        super().__init__()
        cfg.check()
        ch, mult, n = cfg.hidden_channels, tuple(cfg.channel_mult), len(cfg.channel_mult)
        top = ch * mult[-1]
        self.conv_in = nn.Conv2d(cfg.z_channels, top, 3, padding=1)
        self.mid_block = nn.ModuleList(ResBlock(top, top) for _ in range(cfg.num_res_blocks))
        levels, adaptive = [], []
        for i in range(n):
            in_ch = ch * mult[min(i + 1, n - 1)]
            adaptive.append(AdaptiveGroupNorm(cfg.z_channels, in_ch))
            level = _Level(in_ch, ch * mult[i], cfg.num_res_blocks)
            if i != 0:
                level.upsample = Upsampler(ch * mult[i])
            levels.append(level)
        self.up = nn.ModuleList(levels)
        self.adaptive = nn.ModuleList(adaptive)
        self.norm_out = group_norm(ch * mult[0])
        self.conv_out = nn.Conv2d(ch * mult[0], cfg.image_channels, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.conv_in(z)
        for block in self.mid_block:
            h = block(h)
        for i in reversed(range(len(self.up))):
            h = self.up[i](self.adaptive[i](h, z))
            if hasattr(self.up[i], "upsample"):
                h = self.up[i].upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))
