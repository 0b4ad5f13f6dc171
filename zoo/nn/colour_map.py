"""A coarse map of block mean colours, sent beside a tokenizer's codes, and the correction that gives a
reconstruction exactly those means.

A learned decoder paints each region from its tokens with the colours its training photos made likely; on a photo
unlike them the colour drifts (a green leaf comes back lighter, a yellow flower paler). Block transform codecs
send each block's mean (the DC coefficient) exactly for this reason. Here the image is cut into ``block x block``
pixel squares, each square's mean colour is rounded to 8 bits a channel (3 tokens of 256 values per square), and
the decoder's output is shifted so that its square means become exactly those. The shift is a bilinear
upsampling of one value per square (smooth, no seams, the decoder's detail untouched); since bilinear upsampling
lets a square's value leak into its neighbours, the values are solved for: averaging an upsampled map over the
squares is ``M S Mᵀ`` per channel for a small tridiagonal ``M`` (diagonally dominant, condition number < 2), so
``S = M⁻¹ D M⁻ᵀ`` for the wanted change of the square means ``D``.
"""
from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn


LEVELS = 256  # 8 bits a channel: one square's mean is within 0.5/255 of the original's


class BlockColourMap(nn.Module):
    """Mean colours of ``block x block`` squares: ``[B, 3, H, W]`` -> ``[B, 3, H/block, W/block]``.

    Indices are the means in 1/255 steps, int64 ``[B, 3·h·w]``, channel-major then row-major (R's map, G's, B's).
    """

    def __init__(self, block: int) -> None:
        super().__init__()
        if block < 1:
            raise ValueError(f"colour block must be >= 1 pixel, got {block}")
        self.block = int(block)

    def means(self, images: Tensor) -> Tensor:
        """Block means of images ``[B, 3, H, W]``: ``[B, 3, H/block, W/block]``."""
        return F.avg_pool2d(images, self.block)

    def round(self, means: Tensor) -> Tensor:
        """Means rounded to 8 bits, straight-through (the value is the rounded mean, the gradient passes)."""
        rounded = means.detach().clamp(0, 1).mul(LEVELS - 1).round().div(LEVELS - 1)
        return means + (rounded - means).detach()

    def indices(self, means: Tensor) -> Tensor:
        """Rounded means ``[B, 3, h, w]`` -> int64 ``[B, 3·h·w]``."""
        return means.detach().mul(LEVELS - 1).round().long().clamp(0, LEVELS - 1).flatten(1)

    def lookup(self, indices: Tensor, side: tuple[int, int]) -> Tensor:
        """int64 ``[B, 3·h·w]`` -> means ``[B, 3, h, w]`` (``side`` = (h, w))."""
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= LEVELS):
            raise IndexError(f"colour index out of range [0, {LEVELS})")
        return indices.reshape(indices.shape[0], 3, *side).float().div(LEVELS - 1)

    def correct(self, images: Tensor, means: Tensor) -> Tensor:
        """Shift raw images ``[B, 3, H, W]`` so that their block means become ``means`` ``[B, 3, h, w]``."""
        wanted = means.to(images.dtype) - F.avg_pool2d(images, self.block)  # [B, 3, h, w]
        rows, cols = (_unmix(n, self.block).to(images) for n in wanted.shape[-2:])
        shift = rows @ wanted @ cols.T
        return images + F.interpolate(shift, scale_factor=self.block, mode="bilinear", align_corners=False)

    def spread(self, means: Tensor, factor: int) -> Tensor:
        """Means ``[B, 3, h, w]`` repeated over the ``(block/factor)²`` latent positions of each square (the
        latent tensor of a tokenizer with downsampling `factor` carries them as three extra channels)."""
        return means.repeat_interleave(self.block // factor, -2).repeat_interleave(self.block // factor, -1)

    def gather(self, spread: Tensor, factor: int) -> Tensor:
        """The inverse of `spread`: each square's mean of its latent positions ``[B, 3, h, w]``."""
        return F.avg_pool2d(spread, self.block // factor)

    def extra_repr(self) -> str:
        return f"block={self.block}, levels={LEVELS}"


@lru_cache(maxsize=None)
def _unmix(n: int, block: int) -> Tensor:
    """``M⁻¹`` (float64, CPU) for n squares of `block` pixels along one side: ``M[i, j]`` is the mean over square i
    of square j's value after bilinear upsampling (computed, not written out, so it is exactly what
    `F.interpolate` does). Cached: it depends on the sizes only."""
    eye = torch.eye(n, dtype=torch.float64)[:, None, :]
    up = F.interpolate(eye, scale_factor=block, mode="linear", align_corners=False)
    return torch.linalg.inv(F.avg_pool1d(up, block)[:, 0, :].T)
