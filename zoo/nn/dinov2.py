"""DINOv2-style ViT in timm's `VisionTransformer` layout (the layout DINOv2 weights are stored in through timm).

Parameter names follow timm so that converters stay one-to-one: ``patch_embed.proj`` (conv, kernel = stride =
patch), ``cls_token`` ``[1, 1, D]``, ``pos_embed`` ``[1, 1 + g², D]`` (class row first, then the g×g grid
row-major), ``blocks.{i}`` (`zoo.nn.vit.Block`: pre-LN, packed qkv with bias, exact GELU, LayerScale ``ls1``/``ls2``)
and the final ``norm``. LayerNorms use eps 1e-6 as DINOv2 does. The class token gets position row 0 (timm's
"cat then add"); a token grid of another size gets the grid part of the table resampled on the fly, bicubic with
antialias, exactly as `timm.layers.resample_abs_pos_embed` does.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .vit import Block, run_blocks


def resample_pos_embed(pos_embed: Tensor, size: tuple[int, int], num_prefix_tokens: int = 1) -> Tensor:
    """``[1, prefix + g², D]`` -> ``[1, prefix + h·w, D]``: the square grid part resized to ``size`` (h, w).

    Bicubic with antialias, computed in float32 and cast back, prefix rows kept as they are; a square ``size`` with
    as many positions as the table returns the table itself (timm's early exit).
    """
    n = pos_embed.shape[1] - num_prefix_tokens
    side = math.isqrt(n)
    if side * side != n:
        raise ValueError(f"position table of {n} grid rows is not a square grid")
    h, w = int(size[0]), int(size[1])
    if h == w and h * w == n:
        return pos_embed
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    dim, dtype = grid.shape[-1], grid.dtype
    grid = grid.float().reshape(1, side, side, dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(h, w), mode="bicubic", antialias=True)
    grid = grid.permute(0, 2, 3, 1).reshape(1, h * w, dim).to(dtype)
    return torch.cat([prefix, grid], dim=1)


class PatchEmbed(nn.Module):
    """Image ``[B, C, H, W]`` -> patch tokens ``[B, (H/p)·(W/p), D]`` (row-major), one conv ``proj``."""

    def __init__(self, patch_size: int, width: int, in_channels: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, width, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: Tensor) -> Tensor:
        return self.proj(images).flatten(2).transpose(1, 2)


class DinoViT(nn.Module):
    """A ViT body with a class token and a learned ``grid × grid`` position table.

    patch_size: the patch embedding's patch; None builds no patch embedding (decoders that start from tokens).
    layer_scale: LayerScale init value (DINOv2: 1e-5), None for none.
    `forward(images)` returns the class token after the final norm ``[B, D]`` (DINOv2's CLS feature, what a
    classifier-free timm model returns); encoders and decoders use `embed` and `run` to build their own sequences.
    """

    def __init__(self, width: int, depth: int, heads: int, grid: int, patch_size: int | None = None,
                 mlp_ratio: float = 4.0, layer_scale: float | None = 1e-5, norm_eps: float = 1e-6,
                 in_channels: int = 3) -> None:
        super().__init__()
        self.width, self.grid = width, grid
        self.patch_embed = PatchEmbed(patch_size, width, in_channels) if patch_size else None
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, width))
        self.blocks = nn.ModuleList(
            Block(width, heads, mlp_ratio=mlp_ratio, act="gelu", norm_eps=norm_eps, layer_scale=layer_scale)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(width, eps=norm_eps)

    def embed(self, tokens: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        """Row-major tokens of an h×w grid ``[B, h·w, D]`` -> ``[B, 1 + h·w, D]``: class token prepended, then the
        position table (resampled to h×w when that is not the table's own grid) added."""
        size = size or (self.grid, self.grid)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1).to(tokens.dtype)
        return torch.cat([cls, tokens], dim=1) + resample_pos_embed(self.pos_embed, size).to(tokens.dtype)

    def run(self, x: Tensor, keep: slice | None = None) -> Tensor:
        """The blocks and the final norm, ``[B, L, D] -> [B, L, D]`` (only the rows `keep` with it, computed
        as `zoo.nn.vit.run_blocks` does)."""
        return self.norm(run_blocks(self.blocks, x, keep=keep))

    def forward(self, images: Tensor) -> Tensor:
        if self.patch_embed is None:
            raise RuntimeError("this DinoViT has no patch embedding (built with patch_size=None)")
        return self.run(self.embed(self.patch_embed(images)), keep=slice(0, 1))[:, 0]
