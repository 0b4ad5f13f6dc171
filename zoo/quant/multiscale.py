"""Multi-scale residual quantization (VAR, ImageFolder): a feature map is quantized coarse to fine.

At scale s the remaining residual is area-downsampled to ``p_s x p_s`` (the last scale uses it as it is), looked up
in the codebook, the code vectors are bicubic-upsampled back to full size (not at the last scale), refined by one of
a few shared 3x3 convolutions φ (picked by the scale's relative position), added to the reconstruction and
subtracted from the residual. The token sequence is the concatenation of the scales' row-major maps, so a prefix
of scales decodes to a coarser image.

The arithmetic follows the released `VectorQuantizer2` (VAR, and ImageFolder's copy of it) operation by operation:
the cosine lookup ``argmax(normalize(z) @ normalize(E.T, dim=0))``, the euclidean one ``argmin`` of
``|z|² + |e|² - 2 z·e`` (addmm), raw (un-normalised) codebook rows as code vectors, the residual updated with the
post-φ vector, and the training losses and quantizer dropout of the training forward.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .vq import QuantizerOutput, straight_through


class Phi(nn.Conv2d):
    """``h -> (1-r)·h + r·conv3x3(h)``: the residual refinement applied to every upsampled scale."""

    def __init__(self, dim: int, resi_ratio: float) -> None:
        super().__init__(dim, dim, kernel_size=3, stride=1, padding=1)
        self.resi_ratio = abs(resi_ratio)

    def forward(self, h: Tensor) -> Tensor:
        return h.mul(1 - self.resi_ratio) + super().forward(h).mul_(self.resi_ratio)


class SharedPhi(nn.Module):
    """K convolutions φ shared across scales; scale position ``t in [0, 1]`` picks the one with the nearest tick.

    K = 1 is VAR's "fully shared" φ and K = number of scales its "non-shared" one; the released models use K = 4
    ("partially shared"), whose ticks are ``linspace(1/12, 11/12, 4)``.
    """

    def __init__(self, dim: int, count: int, resi_ratio: float) -> None:
        super().__init__()
        self.convs = nn.ModuleList(Phi(dim, resi_ratio) for _ in range(count))
        k = count
        self.ticks = np.linspace(1 / 3 / k, 1 - 1 / 3 / k, k) if k == 4 else np.linspace(1 / 2 / k, 1 - 1 / 2 / k, k)

    def index(self, position: float) -> int:
        return int(np.argmin(np.abs(self.ticks - position)))

    def pick(self, position: float) -> Phi:
        return self.convs[self.index(position)]


class MultiScaleResidualQuantizer(nn.Module):
    """Residual quantization of ``f [B, C, H, W]`` over square scales (`scales` = side lengths, last = H = W).

    Indices come back as int64 ``[B, T]`` with ``T = sum(p*p for p in scales)``.
    l2_norm: cosine lookup (ImageFolder) instead of euclidean (VAR).
    phi_count: shared φ convolutions (0: none, the code vectors are added as they are).
    dropout_fraction, dropout_min_scales: quantizer dropout in training (ImageFolder's ``codebook_drop`` and
        ``start_drop``): the first ``int(B * fraction)`` samples of a batch keep only their first n scales,
        n ~ U{min_scales, ..., S} drawn per sample, so the decoder learns to work from any prefix.
    commitment_mean: average the commitment term over the scales as VAR's `VectorQuantizer2.forward` does (both
        terms ``/ S``); ImageFolder's copy sums it (the default).
    """

    def __init__(self, codebook_size: int, dim: int, scales: Sequence[int], l2_norm: bool = True,
                 beta: float = 0.25, phi_count: int = 4, resi_ratio: float = 0.5, dropout_fraction: float = 0.0,
                 dropout_min_scales: int = 1, commitment_mean: bool = False) -> None:
        super().__init__()
        self.commitment_mean = commitment_mean
        if not scales:
            raise ValueError("a multi-scale quantizer needs at least one scale")
        self.codebook_size, self.dim, self.scales = codebook_size, dim, tuple(int(p) for p in scales)
        self.l2_norm, self.beta = l2_norm, beta
        self.dropout_fraction, self.dropout_min_scales = dropout_fraction, dropout_min_scales
        self.embedding = nn.Embedding(codebook_size, dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / codebook_size, 1.0 / codebook_size)
        self.phi = SharedPhi(dim, phi_count, resi_ratio) if phi_count else None  # 0: no φ (TokenFlow)
        n = len(self.scales)
        # the release calls quant_resi[si / (S - 1)] (quant_resi[0] when S = 1)
        self.phi_index = tuple(self.phi.index(si / (n - 1)) if n > 1 and self.phi else 0 for si in range(n))

    @property
    def tokens_per_scale(self) -> tuple[int, ...]:
        return tuple(p * p for p in self.scales)

    # ---- the pieces ----
    @torch.no_grad()
    def lookup_table(self) -> tuple[Tensor, Tensor]:
        """What `nearest` compares against, computed once per call of the quantizer (not once per scale):
        ``[C, K]`` (the normalised codebook's columns for cosine, the raw transposed codebook for euclidean) and
        ``[K]`` squared row norms (euclidean; empty for cosine)."""
        weight = self.embedding.weight.detach().float()
        if self.l2_norm:
            return F.normalize(weight.T, dim=0), weight.new_empty(0)
        return weight.T, torch.sum(weight.square(), dim=1, keepdim=False)

    @torch.no_grad()
    def nearest(self, z: Tensor, table: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """Rows ``z [N, C]`` -> int64 ``[N]``: nearest codebook row (cosine or euclidean, as released).
        table: `lookup_table()`, passed in when several scales share it."""
        columns, sq_norms = table if table is not None else self.lookup_table()
        if self.l2_norm:
            return torch.argmax(F.normalize(z, dim=-1) @ columns, dim=1)
        d = torch.sum(z.square(), dim=1, keepdim=True) + sq_norms
        d.addmm_(z, columns, alpha=-2, beta=1)
        return torch.argmin(d, dim=1)

    def contribution(self, idx: Tensor, si: int, size: tuple[int, int]) -> Tensor:
        """Indices ``[B, p, p]`` of scale `si` -> its refined contribution ``[B, C, H, W]`` (raw codebook rows,
        bicubic-upsampled except at the last scale, then φ)."""
        h = self.embedding(idx).permute(0, 3, 1, 2)
        if si != len(self.scales) - 1:
            h = F.interpolate(h, size=size, mode="bicubic")
        return self.phi.convs[self.phi_index[si]](h.contiguous())

    def _residual_input(self, f_rest: Tensor, si: int) -> Tensor:
        """The residual at scale `si`, ``[B·p·p, C]``. At the last scale it is used as it is (the release's
        test there compares p with 16; area-resizing a map to its own size is the identity, so nothing changes)."""
        p, C = self.scales[si], f_rest.shape[1]
        if si != len(self.scales) - 1 or p != f_rest.shape[-1]:
            f_rest = F.interpolate(f_rest, size=(p, p), mode="area")
        return f_rest.permute(0, 2, 3, 1).reshape(-1, C)

    def _check(self, f: Tensor) -> None:
        if f.dim() != 4 or f.shape[1] != self.dim or f.shape[-1] != self.scales[-1] or f.shape[-2] != self.scales[-1]:
            raise ValueError(f"expected features [B, {self.dim}, {self.scales[-1]}, {self.scales[-1]}], "
                             f"got {tuple(f.shape)}")

    # ---- inference ----
    @torch.no_grad()
    def quantize_with_reconstructions(self, f: Tensor, keep: bool = True) -> tuple[Tensor, list[Tensor]]:
        """``f [B, C, H, W]`` -> (indices ``[B, T]``, cumulative reconstruction after each scale ``[B, C, H, W]``;
        an empty list with ``keep=False``, which saves a copy per scale)."""
        self._check(f)
        B, C, H, W = f.shape
        f = f.detach().float()
        f_rest, f_hat = f.clone(), torch.zeros_like(f)
        indices, f_hats = [], []
        table = self.lookup_table()
        for si, p in enumerate(self.scales):
            idx = self.nearest(self._residual_input(f_rest, si), table).view(B, p, p)
            h = self.contribution(idx, si, (H, W))
            f_rest.sub_(h)
            indices.append(idx.reshape(B, p * p))
            if keep:
                f_hat.add_(h)
                f_hats.append(f_hat.clone())
        return torch.cat(indices, dim=1), f_hats

    def quantize(self, f: Tensor) -> Tensor:
        """Indices only: ``f [B, C, H, W]`` -> int64 ``[B, T]``."""
        return self.quantize_with_reconstructions(f, keep=False)[0]

    def lookup(self, indices: Tensor, size: tuple[int, int] | None = None, lengths: Tensor | None = None) -> Tensor:
        """int64 ``[B, T']`` covering a prefix of the scales -> the reconstruction ``f_hat [B, C, H, W]``.

        lengths: int64 ``[B]`` tokens used per image (each a scale boundary); the scales past an image's length
        do not contribute to its reconstruction.
        """
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
            h = self.contribution(idx.reshape(B, p, p), si, size)
            if lengths is not None:
                h = h * (start + p * p <= lengths.to(h.device))[:, None, None, None].to(h.dtype)
            f_hat = h if f_hat is None else f_hat + h
            start += p * p
        if f_hat is None:
            raise ValueError("no tokens to decode")
        return f_hat

    # ---- training ----
    def draw_keep(self, batch: int, device: torch.device | str = "cpu") -> Tensor:
        """Scales kept per sample ``[B]`` for one training step (quantizer dropout).

        One integer n ~ U{min_scales, ..., S} per sample from the global RNG (as released: one
        ``torch.randint(start_drop, S + 1, (B,))`` per step, shared by all branches of a product quantizer); only the
        first ``int(B * dropout_fraction)`` samples use it, the others keep all S scales.
        """
        n_scales = len(self.scales)
        drawn = torch.randint(self.dropout_min_scales, n_scales + 1, (batch,))
        keep = torch.full((batch,), n_scales, dtype=torch.int64)
        n_drop = int(batch * self.dropout_fraction)
        keep[:n_drop] = drawn[:n_drop]
        return keep.to(device)

    def forward(self, f: Tensor, keep: Tensor | None = None) -> QuantizerOutput:
        """Training pass: ``f [B, C, H, W]`` -> straight-through reconstruction, indices ``[B, T]`` and losses.

        keep: scales kept per sample ``[B]`` (quantizer dropout); drawn with `draw_keep` in training mode when
        `dropout_fraction` > 0 and not given, else all scales. The losses are the release's: per scale, over the
        kept samples, ``mse(f_hat, sg(f))`` (codebook term, averaged over scales) and ``β·mse(sg(f_hat), f)``
        (commitment term, summed over scales, or averaged with `commitment_mean`); `loss` is their sum.
        """
        self._check(f)
        B, C, H, W = f.shape
        n_scales = len(self.scales)
        if keep is None and self.training and self.dropout_fraction > 0:
            keep = self.draw_keep(B, f.device)
        with torch.autocast(device_type=f.device.type, enabled=False):
            f = f.float()
            f_no_grad = f.detach()
            f_rest, f_hat = f_no_grad.clone(), torch.zeros_like(f_no_grad)
            kept = (keep if keep is not None else torch.full((B,), n_scales)).to(f.device)
            codebook_loss, commitment_loss = f.new_zeros(()), f.new_zeros(())
            indices = []
            table = self.lookup_table()
            for si, p in enumerate(self.scales):
                idx = self.nearest(self._residual_input(f_rest.detach(), si), table).view(B, p, p)
                h = self.contribution(idx, si, (H, W))
                mask = (si < kept)[:, None, None, None].to(h.dtype)
                f_hat = f_hat + h * mask
                f_rest = f_rest - h
                indices.append(idx.reshape(B, p * p))
                ratio = mask.sum() / B
                codebook_loss = codebook_loss + F.mse_loss(f_hat, f_no_grad, reduction="none").mul(mask).mean() / ratio
                commitment_loss = commitment_loss + F.mse_loss(f_hat.detach(), f, reduction="none").mul(mask).mul(
                    self.beta / ratio).mean()
            codebook_loss = codebook_loss / n_scales
            if self.commitment_mean:
                commitment_loss = commitment_loss / n_scales
            quantized = straight_through(f_hat, f)
        return QuantizerOutput(quantized, torch.cat(indices, dim=1), codebook_loss + commitment_loss,
                               commitment_loss, codebook_loss)

    # ---- next-scale prediction (VAR) ----
    @torch.no_grad()
    def var_input(self, indices: Tensor) -> Tensor:
        """Teacher-forcing input of a next-scale AR model: int64 ``[B, T]`` -> ``[B, T - p_1², C]``.

        For each scale but the last, its contribution is added to the running reconstruction and the result is
        area-downsampled to the next scale's size (the release's ``idxBl_to_var_input``).
        """
        B, C, side = indices.shape[0], self.dim, self.scales[-1]
        n_scales = len(self.scales)
        f_hat = torch.zeros(B, C, side, side, device=indices.device, dtype=torch.float32)
        out, start = [], 0
        for si in range(n_scales - 1):
            p = self.scales[si]
            idx = indices[:, start:start + p * p].reshape(B, p, p)
            h = F.interpolate(self.embedding(idx).permute(0, 3, 1, 2), size=(side, side), mode="bicubic")
            f_hat.add_(self.phi.convs[self.phi_index[si]](h))
            nxt = self.scales[si + 1]
            out.append(F.interpolate(f_hat, size=(nxt, nxt), mode="area").view(B, C, -1).transpose(1, 2))
            start += p * p
        return torch.cat(out, dim=1) if out else f_hat.new_zeros(B, 0, C)

    @torch.no_grad()
    def next_var_input(self, si: int, f_hat: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """One sampling step: code vectors ``h [B, C, p, p]`` of scale `si` are added to ``f_hat [B, C, H, W]``
        (in place); returns (f_hat, the next scale's input map) (the release's ``get_next_autoregressive_input``)."""
        side, n_scales = self.scales[-1], len(self.scales)
        if si != n_scales - 1:
            f_hat.add_(self.phi.convs[self.phi_index[si]](F.interpolate(h, size=(side, side), mode="bicubic")))
            nxt = self.scales[si + 1]
            return f_hat, F.interpolate(f_hat, size=(nxt, nxt), mode="area")
        f_hat.add_(self.phi.convs[self.phi_index[si]](h))
        return f_hat, f_hat

    def extra_repr(self) -> str:
        return (f"codebook_size={self.codebook_size}, dim={self.dim}, scales={self.scales}, l2_norm={self.l2_norm}, "
                f"phi={len(self.phi.convs) if self.phi else 0}")
