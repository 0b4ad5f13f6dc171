"""Finite scalar quantization (Mentzer et al., 2023, "Finite Scalar Quantization: VQ-VAE Made Simple").

Each of the D channels is bounded to a small interval and rounded to one of ``levels[d]`` values; the code of a
vector is the mixed-radix number of its D digits, so the implicit codebook has ``prod(levels)`` entries, needs no
parameters, no commitment or codebook loss, and has no dead codes by construction (every combination of digits is
a valid code, and training cannot collapse a code it never stores). Gradients pass by the straight-through
estimator of the rounding.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

from .vq import QuantizerOutput, straight_through


class FiniteScalarQuantizer(nn.Module):
    """``[..., D]`` (D = len(levels)) -> quantized ``[..., D]`` with values in [-1, 1] and int64 indices ``[...]``.

    levels: values per channel, e.g. ``(8, 8, 4)`` (256 codes, 8 bits) or ``(8, 5, 5, 5)`` (1000 codes).
    The bounding follows the paper's reference code: ``tanh(z + shift) * half_l - offset`` puts the rounding
    boundaries symmetrically for even level counts too.
    """

    def __init__(self, levels: Sequence[int], eps: float = 1e-3) -> None:
        super().__init__()
        levels = tuple(int(v) for v in levels)
        if not levels or any(v < 2 for v in levels):
            raise ValueError(f"FSQ levels must be a non-empty list of integers >= 2, got {list(levels)}")
        self.levels, self.eps = levels, eps
        self.dim = len(levels)
        self.codebook_size = math.prod(levels)
        basis = [1]
        for v in levels[:-1]:
            basis.append(basis[-1] * v)
        self.register_buffer("_levels", torch.tensor(levels, dtype=torch.float32), persistent=False)
        self.register_buffer("_basis", torch.tensor(basis, dtype=torch.int64), persistent=False)

    def bound(self, z: Tensor) -> Tensor:
        """Squash ``[..., D]`` into the open interval whose integer points are the channel's levels."""
        levels = self._levels.to(z.dtype)
        half_l = (levels - 1) * (1 + self.eps) / 2
        offset = torch.where(levels % 2 == 0, 0.5, 0.0).to(z.dtype)
        shift = torch.atanh(offset / half_l)
        return torch.tanh(z + shift) * half_l - offset

    def _half_width(self, like: Tensor) -> Tensor:
        return torch.div(self._levels, 2, rounding_mode="floor").to(like.dtype)

    def forward(self, z: Tensor) -> QuantizerOutput:
        """Training pass: straight-through quantized ``[..., D]`` in [-1, 1], indices ``[...]``, zero losses."""
        bounded = self.bound(z)
        rounded = straight_through(torch.round(bounded), bounded)
        quantized = rounded / self._half_width(z)
        zero = z.new_zeros(())
        return QuantizerOutput(quantized, self.indices_from_digits(torch.round(bounded).detach()), zero, zero, zero)

    def indices_from_digits(self, digits: Tensor) -> Tensor:
        """Rounded bounded values ``[..., D]`` (integers centred on 0) -> mixed-radix indices ``[...]``."""
        shifted = (digits + self._half_width(digits)).round().long()
        return (shifted * self._basis).sum(-1)

    @torch.no_grad()
    def quantize(self, z: Tensor) -> Tensor:
        """Indices ``[...]`` of pre-quantization vectors ``[..., D]`` (bounded and rounded in fp32, also under
        autocast: a reduced-precision tanh would move values across the rounding boundaries)."""
        return self.indices_from_digits(torch.round(self.bound(z.float())))

    def lookup(self, indices: Tensor) -> Tensor:
        """Indices ``[...]`` -> quantized vectors ``[..., D]`` in [-1, 1]."""
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.codebook_size):
            raise IndexError(f"FSQ index out of range [0, {self.codebook_size})")
        digits = torch.remainder(torch.div(indices[..., None], self._basis, rounding_mode="floor"),
                                 self._levels.long())
        half = self._half_width(self._levels)
        return (digits.to(torch.float32) - half) / half

    def codebook(self) -> Tensor:
        """Every code vector ``[K, D]`` (the implicit codebook, for inspection and usage statistics)."""
        return self.lookup(torch.arange(self.codebook_size, device=self._basis.device))

    def extra_repr(self) -> str:
        return f"levels={list(self.levels)}, codebook_size={self.codebook_size}"
