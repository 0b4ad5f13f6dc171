"""OpenAI CLIP's vision tower (as TokenFlow keeps it: no projection) and the DINO "+0.1" position-table resampling.

Layout (converters map OpenAI's names onto these): ``conv1`` (patch conv, no bias), ``class_embedding`` ``[D]``,
``positional_embedding`` ``[1 + g², D]`` (class row first, then the g×g grid row-major), ``ln_pre``, ``blocks.{i}``
(`zoo.nn.vit.Block`: pre-LN with eps 1e-5, packed qkv with bias, QuickGELU MLP ×4) and ``ln_post``.

At a token grid other than the table's, the grid part of the table is resized with
``F.interpolate(scale_factor=((h + 0.1) / g, (w + 0.1) / g), mode="bicubic")`` (DINO's trick against rounding,
kept by CLIP-derived code such as TokenFlow and BEiT-v2). That is not the same as resizing to ``size=(h, w)``: the
sampling positions differ, by up to 0.45 on random tables.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .vit import Block


def resample_pos_table_dino(table: Tensor, size: tuple[int, int], num_prefix_tokens: int = 1) -> Tensor:
    """Position table ``[..., prefix + g², D]`` -> ``[..., prefix + h·w, D]`` by the DINO "+0.1" scale-factor rule.

    Returns the table itself when it already has h·w grid rows and the grid is square (the release's early exit).
    A leading batch axis of 1 is kept if present.
    """
    squeeze = table.dim() == 2
    t = table[None] if squeeze else table
    n, dim = t.shape[1] - num_prefix_tokens, t.shape[-1]
    side = math.isqrt(n)
    if side * side != n:
        raise ValueError(f"position table of {n} grid rows is not a square grid")
    h, w = int(size[0]), int(size[1])
    if n == h * w and h == w:
        return table
    grid = t[:, num_prefix_tokens:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, scale_factor=((h + 0.1) / side, (w + 0.1) / side), mode="bicubic")
    if grid.shape[-2:] != (h, w):
        raise ValueError(f"resampling a {side}x{side} table gave {tuple(grid.shape[-2:])}, not {(h, w)}")
    out = torch.cat([t[:, :num_prefix_tokens], grid.permute(0, 2, 3, 1).reshape(1, h * w, dim)], dim=1)
    return out[0] if squeeze else out


class CLIPVisionTower(nn.Module):
    """Images ``[B, 3, H, W]`` (the caller's normalisation) -> patch tokens after ``ln_post`` ``[B, h·w, D]``.

    table_grid: side g of the stored position table (14 for ViT-B/16 at 224); other input grids resample it.
    """

    def __init__(self, width: int = 768, depth: int = 12, heads: int = 12, patch_size: int = 16,
                 table_grid: int = 14) -> None:
        super().__init__()
        self.patch_size, self.table_grid = patch_size, table_grid
        self.conv1 = nn.Conv2d(3, width, patch_size, stride=patch_size, bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(width))
        self.positional_embedding = nn.Parameter(torch.zeros(table_grid ** 2 + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.blocks = nn.ModuleList(Block(width, heads, act="quick_gelu", norm_eps=1e-5) for _ in range(depth))
        self.ln_post = nn.LayerNorm(width)

    def forward(self, images: Tensor, all_tokens: bool = False) -> Tensor:
        """all_tokens: keep the class token first (``[B, 1 + h·w, D]``)."""
        x = self.conv1(images)  # [B, D, h, w]
        B, D, h, w = x.shape
        x = x.flatten(2).transpose(1, 2)
        cls = self.class_embedding.to(x.dtype).expand(B, 1, D)
        x = torch.cat([cls, x], dim=1)
        pos = self.positional_embedding
        if x.shape[1] != pos.shape[0]:
            pos = resample_pos_table_dino(pos, (h, w))
        x = self.ln_pre(x + pos.to(x.dtype))
        for block in self.blocks:
            x = block(x)
        x = self.ln_post(x)
        return x if all_tokens else x[:, 1:]
