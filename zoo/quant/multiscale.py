"""Multi-scale residual quantization (VAR, ImageFolder): a feature map is quantized coarse to fine.

At scale s the remaining residual is area-downsampled to ``p_s x p_s``, quantized, looked up, bicubic-upsampled
back to full size, refined by one of a few shared convolutions φ (chosen by the scale's relative position), added
to the reconstruction and subtracted from the residual. The token sequence is the concatenation of the scales'
row-major maps, so a prefix of scales decodes to a coarser image.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .vq import QuantizerOutput


class Phi(nn.Conv2d):
    """``h -> (1-r)·h + r·conv3x3(h)``: the residual refinement applied to every upsampled scale."""

    def __init__(self, dim: int, resi_ratio: float) -> None:
        super().__init__(dim, dim, kernel_size=3, stride=1, padding=1)
        self.resi_ratio = abs(resi_ratio)

    def forward(self, h: Tensor) -> Tensor:
        return h * (1 - self.resi_ratio) + super().forward(h) * self.resi_ratio


class SharedPhi(nn.Module):
    """K convolutions φ shared across scales; scale position ``t in [0, 1]`` picks the one with the nearest tick."""

    def __init__(self, dim: int, count: int, resi_ratio: float) -> None:
        super().__init__()
        self.convs = nn.ModuleList(Phi(dim, resi_ratio) for _ in range(count))
        k = count
        self.ticks = np.linspace(1 / 3 / k, 1 - 1 / 3 / k, k) if k == 4 else np.linspace(1 / 2 / k, 1 - 1 / 2 / k, k)

    def pick(self, position: float) -> Phi:
        return self.convs[int(np.argmin(np.abs(self.ticks - position)))]


class MultiScaleResidualQuantizer(nn.Module):
    """Residual quantization of ``f [B, C, H, W]`` over square scales (`scales` = side lengths, last = H).

    Indices come back as int64 ``[B, T]`` with ``T = sum(p*p for p in scales)``.
    `dropout_prob`: in training, with this probability the quantization stops after a random number of scales
    (quantizer dropout), which teaches the decoder to work from any prefix.
    """

    def __init__(self, codebook_size: int, dim: int, scales: Sequence[int], l2_norm: bool = True,
                 beta: float = 0.25, phi_count: int = 4, resi_ratio: float = 0.5, dropout_prob: float = 0.0) -> None:
        super().__init__()
        self.codebook_size, self.dim, self.scales = codebook_size, dim, tuple(scales)
        self.l2_norm, self.beta, self.dropout_prob = l2_norm, beta, dropout_prob
        self.embedding = nn.Embedding(codebook_size, dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / codebook_size, 1.0 / codebook_size)
        self.phi = SharedPhi(dim, phi_count, resi_ratio)

    @property
    def tokens_per_scale(self) -> tuple[int, ...]:
        return tuple(p * p for p in self.scales)

    def _nearest(self, rest: Tensor) -> Tensor:
        e = self.embedding.weight
        if self.l2_norm:
            return (F.normalize(rest, dim=-1) @ F.normalize(e, dim=-1).t()).argmax(dim=1)
        d = rest.pow(2).sum(1, keepdim=True) + e.pow(2).sum(1) - 2 * rest @ e.t()
        return d.argmin(dim=1)

    def _scale_contribution(self, idx: Tensor, si: int, size: tuple[int, int]) -> Tensor:
        """Indices ``[B, p, p]`` of scale `si` -> its refined contribution ``[B, C, H, W]``."""
        h = self.embedding(idx).permute(0, 3, 1, 2)
        if si != len(self.scales) - 1:
            h = F.interpolate(h, size=size, mode="bicubic")
        return self.phi.pick(si / max(len(self.scales) - 1, 1))(h)

    def forward(self, f: Tensor) -> QuantizerOutput:
        """``f [B, C, H, W]`` -> quantized ``[B, C, H, W]`` (straight-through), indices ``[B, T]``."""
        B, C, H, W = f.shape
        with torch.autocast(device_type=f.device.type, enabled=False):
            f = f.float()
            f_rest, f_hat = f.detach().clone(), torch.zeros_like(f)
            stop = len(self.scales)
            if self.training and self.dropout_prob > 0 and torch.rand(()) < self.dropout_prob:
                stop = int(torch.randint(1, len(self.scales) + 1, ()))
            all_idx, loss = [], f.new_zeros(())
            for si, p in enumerate(self.scales[:stop]):
                last = si == len(self.scales) - 1
                rest = f_rest if last else F.interpolate(f_rest, size=(p, p), mode="area")
                idx = self._nearest(rest.permute(0, 2, 3, 1).reshape(-1, C)).view(B, p, p)
                h = self._scale_contribution(idx, si, (H, W))
                f_hat = f_hat + h
                f_rest = f_rest - h
                all_idx.append(idx.reshape(B, -1))
                loss = loss + self.beta * F.mse_loss(f_hat.detach(), f) + F.mse_loss(f_hat, f.detach())
            loss = loss / max(stop, 1)
            quantized = (f_hat.detach() - f.detach()) + f
        indices = torch.cat(all_idx, dim=1)
        return QuantizerOutput(quantized, indices, loss, loss.detach() * 0, loss.detach() * 0)

    def lookup(self, indices: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        """int64 ``[B, T']`` covering a prefix of the scales -> the reconstruction ``f_hat [B, C, H, W]``."""
        B = indices.shape[0]
        side = self.scales[-1]
        size = size or (side, side)
        f_hat, start = None, 0
        for si, p in enumerate(self.scales):
            if start >= indices.shape[1]:
                break
            idx = indices[:, start:start + p * p]
            if idx.shape[1] != p * p:
                raise ValueError(f"indices stop inside scale {si} ({idx.shape[1]} of {p * p} tokens)")
            h = self._scale_contribution(idx.reshape(B, p, p), si, size)
            f_hat = h if f_hat is None else f_hat + h
            start += p * p
        if f_hat is None:
            raise ValueError("no tokens to decode")
        return f_hat
