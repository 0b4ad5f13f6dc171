"""Transformer blocks of the MaskGIT generators that `zoo.nn.vit.Block` (pre-LN) does not cover.

- `PostLNBlock`: the BERT encoder layer (``x = LN(x + attn(x))``, ``x = LN(x + mlp(x))``, separate q/k/v with
  bias, exact GELU, LayerNorm eps 1e-12), the block of TiTok's / One-D-Piece's ImageBert generators.
- `SkipBlock`: U-ViT's block, a pre-LN `Block` with an optional long-skip ``skip_linear`` Linear(2D, D) applied to
  ``cat([x, skip])`` first (the out-blocks of UViTBert).
Parameter names follow `zoo.nn.vit` (``attn.q/k/v/proj``, ``mlp.fc1/fc2``, ``norm1/norm2``).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..nn.vit import Attention, Block, Mlp


class PostLNBlock(nn.Module):
    """BERT encoder layer, ``[B, L, D] -> [B, L, D]``; `dropout` acts on both residual branches in training."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, eps: float = 1e-12, dropout: float = 0.0) -> None:
        super().__init__()
        self.attn = Attention(dim, heads, qkv_bias=True, packed=False)
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, mlp_dim, act="gelu")
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.norm1(x + self.drop(self.attn(x)))
        return self.norm2(x + self.drop(self.mlp(x)))


class SkipBlock(Block):
    """U-ViT block: ``x = skip_linear(cat([x, skip]))`` when built with ``skip=True``, then the pre-LN block."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, skip: bool = False) -> None:
        super().__init__(dim, heads, mlp_ratio=mlp_ratio, qkv_bias=False)
        self.skip_linear = nn.Linear(2 * dim, dim) if skip else None

    def forward(self, x: Tensor, skip: Tensor | None = None) -> Tensor:  # type: ignore[override]
        if self.skip_linear is not None:
            x = self.skip_linear(torch.cat([x, skip], dim=-1))
        return super().forward(x)
