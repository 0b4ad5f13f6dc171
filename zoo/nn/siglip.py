"""SigLIP's vision tower (transformers ``SiglipVisionModel`` layout, e.g. google/siglip-so400m-patch14-384).

Layout (converters map transformers' names onto these): ``patch_embed`` (patch conv with bias),
``position_embedding`` ``[g², D]`` (no class token), ``blocks.{i}`` (`zoo.nn.vit.Block`: pre-LN with eps 1e-6,
separate q/k/v with bias, tanh-GELU MLP), ``post_layernorm`` and the attention-pooling ``head`` (a learned
``probe`` query, `nn.MultiheadAttention`, LayerNorm, MLP). The grid must equal the table's (SigLIP does not resample).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .vit import Block, Mlp


class SiglipPoolingHead(nn.Module):
    """Multihead attention pooling: ``[B, N, D] -> [B, D]`` (the probe attends to the tokens, then LN + MLP)."""

    def __init__(self, width: int, heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.probe = nn.Parameter(torch.zeros(1, 1, width))
        self.attention = nn.MultiheadAttention(width, heads, batch_first=True)
        self.layernorm = nn.LayerNorm(width, eps=1e-6)
        self.mlp = Mlp(width, mlp_dim, act="gelu_tanh")

    def forward(self, tokens: Tensor) -> Tensor:
        probe = self.probe.to(tokens.dtype).expand(tokens.shape[0], -1, -1)
        h = self.attention(probe, tokens, tokens, need_weights=False)[0]
        return (h + self.mlp(self.layernorm(h)))[:, 0]


class SiglipVisionTower(nn.Module):
    """Images ``[B, 3, H, W]`` (SigLIP's normalisation: (x - 0.5) / 0.5) -> hidden states ``[B, g², D]``.

    `forward(images, layers=n)` returns the output of the first n blocks (``hidden_states[n]`` in transformers;
    TokenFlow reads ``hidden_states[-2]``, i.e. n = depth - 1); `pooled` runs all blocks, ``post_layernorm`` and the
    head.
    """

    def __init__(self, width: int = 1152, depth: int = 27, heads: int = 16, mlp_dim: int = 4304,
                 patch_size: int = 14, grid: int = 27) -> None:
        super().__init__()
        self.patch_size, self.grid = patch_size, grid
        self.patch_embed = nn.Conv2d(3, width, patch_size, stride=patch_size)
        self.position_embedding = nn.Parameter(torch.zeros(grid * grid, width))
        self.blocks = nn.ModuleList(Block(width, heads, mlp_ratio=mlp_dim / width, act="gelu_tanh", norm_eps=1e-6,
                                          packed_qkv=False) for _ in range(depth))
        for block in self.blocks:  # the hidden width is not always width * ratio after rounding: set it exactly
            if block.mlp.fc1.out_features != mlp_dim:
                block.mlp = Mlp(width, mlp_dim, act="gelu_tanh")
        self.post_layernorm = nn.LayerNorm(width, eps=1e-6)
        self.head = SiglipPoolingHead(width, heads, mlp_dim)

    def forward(self, images: Tensor, layers: int | None = None) -> Tensor:
        x = self.patch_embed(images)
        if x.shape[-2:] != (self.grid, self.grid):
            raise ValueError(f"SigLIP takes a {self.grid}x{self.grid} patch grid "
                             f"({self.grid * self.patch_size} px), got {tuple(x.shape[-2:])}")
        x = x.flatten(2).transpose(1, 2) + self.position_embedding.to(x.dtype)
        for block in self.blocks[:len(self.blocks) if layers is None else layers]:
            x = block(x)
        return x

    def pooled(self, images: Tensor) -> Tensor:
        """The tower's image embedding ``[B, D]``."""
        return self.head(self.post_layernorm(self(images)))
