"""A compact convolutional encoder/decoder that spends its compute at low resolution.

Resolution changes by pixel (un)shuffle (space-to-depth) with a 1x1 convolution instead of strided or
upsampling 3x3 convolutions, and there is no layer at full resolution at all, so on a CPU most multiply-adds run
at 1/4 and 1/8 of the image side, where a block of width C costs the same as a block of width C/2 one level up.
Residual blocks are pre-norm (GroupNorm), and the latents leave the encoder through a norm too, so a bounded
quantizer behind it (FSQ's tanh) starts unsaturated and stays so. This is what makes the embedded default model cheap enough to train and run
on two CPU cores.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class ShuffleConvConfig:
    """widths[i] / depths[i]: channels and residual blocks at 1/2^(i+1) of the image side (encoder), and
    decoder_depths[i] for the decoder at the same level. The downsampling factor is 2^len(widths)."""

    widths: tuple[int, ...] = (48, 96, 192)
    depths: tuple[int, ...] = (0, 1, 2)
    decoder_depths: tuple[int, ...] = (1, 1, 3)
    latent_channels: int = 3
    image_channels: int = 3

    @property
    def downsample_factor(self) -> int:
        return 2 ** len(self.widths)


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 32 groups of at least 4 channels (one group when the width does not divide)."""
    groups = min(32, channels // 4)
    return nn.GroupNorm(groups if groups and channels % groups == 0 else 1, channels, eps=1e-6)


class ResBlock(nn.Module):
    """``x + conv3x3(silu(conv3x3(silu(norm(x)))))`` on ``[B, C, H, W]``; the second conv starts at zero."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = group_norm(channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.silu(self.conv1(F.silu(self.norm(x)))))


def _blocks(channels: int, depth: int) -> nn.Sequential:
    return nn.Sequential(*(ResBlock(channels) for _ in range(depth)))


class ShuffleConvEncoder(nn.Module):
    """Image ``[B, 3, H, W]`` -> latents ``[B, latent_channels, H/f, W/f]`` (f = 2^len(widths))."""

    def __init__(self, cfg: ShuffleConvConfig) -> None:
        super().__init__()
        w = cfg.widths
        self.stem = nn.Conv2d(4 * cfg.image_channels, w[0], 3, padding=1)
        self.down = nn.ModuleList(nn.Conv2d(4 * w[i - 1], w[i], 1) for i in range(1, len(w)))
        self.stages = nn.ModuleList(_blocks(c, d) for c, d in zip(w, cfg.depths))
        self.norm_out = group_norm(w[-1])
        self.head = nn.Conv2d(w[-1], cfg.latent_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.stages[0](self.stem(F.pixel_unshuffle(x * 2 - 1, 2)))
        for down, stage in zip(self.down, self.stages[1:]):
            h = stage(down(F.pixel_unshuffle(F.silu(h), 2)))
        return self.head(F.silu(self.norm_out(h)))


class ShuffleConvDecoder(nn.Module):
    """Latents ``[B, latent_channels, h, w]`` -> image ``[B, 3, h·f, w·f]`` ([0, 1] scale, not clamped)."""

    def __init__(self, cfg: ShuffleConvConfig) -> None:
        super().__init__()
        w = cfg.widths
        self.head = nn.Conv2d(cfg.latent_channels, w[-1], 3, padding=1)
        self.stages = nn.ModuleList(_blocks(c, d) for c, d in zip(w, cfg.decoder_depths))
        self.up = nn.ModuleList(nn.Conv2d(w[i], 4 * w[i - 1], 1) for i in range(1, len(w)))
        self.norm_out = group_norm(w[0])
        self.out = nn.Conv2d(w[0], 4 * cfg.image_channels, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.stages[-1](self.head(z))
        for i in range(len(self.up) - 1, -1, -1):
            h = self.stages[i](F.pixel_shuffle(self.up[i](F.silu(h)), 2))
        return (F.pixel_shuffle(self.out(F.silu(self.norm_out(h))), 2) + 1) / 2
