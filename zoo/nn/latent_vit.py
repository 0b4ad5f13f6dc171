"""Pieces of 1-D latent-token ViTs (TiTok, One-D-Piece, ALIT): image patches in, a few latent tokens out, and back.

The encoder appends learned latent tokens after the [CLS] + patch sequence and keeps their outputs; the decoder
reads [CLS] + one mask token per patch position + the (quantized) latent tokens and keeps the patch positions.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .vit import Transformer


class PatchSequence(nn.Module):
    """Image ``[B, 3, H, W]`` -> ``[B, 1 + g², D]``: conv patch embedding, a class token, positional embeddings."""

    def __init__(self, width: int, patch_size: int, grid: int, in_channels: int = 3) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(in_channels, width, kernel_size=patch_size, stride=patch_size)
        self.class_embedding = nn.Parameter(torch.zeros(1, width))
        self.positional_embedding = nn.Parameter(torch.zeros(grid * grid + 1, width))

    def forward(self, images: Tensor) -> Tensor:
        x = self.patch_embed(images).flatten(2).transpose(1, 2)  # row-major patches
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], -1, -1)
        return torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)


class MaskedQueryDecoder(nn.Module):
    """Latent tokens ``[B, k, D]`` -> patch features ``[B, g², D]``.

    Sequence ``[CLS, mask × g², latents]`` (+ positional embeddings; the latents take the first k rows of their
    table, so any prefix length decodes), pre-LN, transformer, post-LN on the g² patch positions.
    `lengths` ``[B]`` lets images of one batch use different prefixes: the tokens past an image's length are
    masked out of attention, which gives the same result as decoding that image alone.
    """

    def __init__(self, width: int, depth: int, heads: int, grid: int, max_latents: int, **block_kwargs) -> None:
        super().__init__()
        self.grid = grid
        self.class_embedding = nn.Parameter(torch.zeros(1, width))
        self.positional_embedding = nn.Parameter(torch.zeros(grid * grid + 1, width))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        self.latent_token_positional_embedding = nn.Parameter(torch.zeros(max_latents, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, depth, heads, **block_kwargs)
        self.ln_post = nn.LayerNorm(width)

    def forward(self, latents: Tensor, lengths: Tensor | None = None) -> Tensor:
        B, k, _ = latents.shape
        n = self.grid * self.grid
        latents = latents + self.latent_token_positional_embedding[:k].to(latents.dtype)
        queries = torch.cat([self.class_embedding.expand(B, -1)[:, None], self.mask_token.expand(B, n, -1)], dim=1)
        queries = queries.to(latents.dtype) + self.positional_embedding.to(latents.dtype)
        x = self.ln_pre(torch.cat([queries, latents], dim=1))
        mask = None
        if lengths is not None and bool((lengths < k).any()):
            keep = torch.arange(k, device=latents.device)[None] < lengths.to(latents.device)[:, None]
            keep = torch.cat([keep.new_ones(B, 1 + n), keep], dim=1)
            mask = keep[:, None, None, :]  # [B, 1, 1, L]: True = may be attended to
        return self.ln_post(self.transformer(x, mask, keep=slice(1, 1 + n)))
