"""TokenFlow's quantizer: multi-scale residual VQ where one index picks a pair of codes (dual codebook, shared mapping).

The code dimension splits into a semantic part and a pixel part (32 + 8 in the releases). The codebook holds both
parts of every entry side by side (``embedding.weight [K, Cs + Cp]``); each part is L2-normalised separately, both in
the features and in the codebook, and the index minimises the sum of the two parts' squared distances (the same as
maximising cos_sem + cos_pix). The code vector is the pair of normalised parts.

Per scale, as released (``TokenFlow.encode`` + ``VectorQuantizer.forward``, ByteFlow-AI/TokenFlow): the residual is
area-resized to the scale (the identity at the last one), quantized, the straight-through value ``z + (q - z)`` (z the
normalised input) is bicubic-resized back to full size (the identity at the last scale) and added to the
reconstruction and subtracted from the residual. No φ convolutions. Decoding from indices (``decode_code``) sums the
bicubic-resized normalised code vectors of the scales given, so a prefix of whole scales decodes too.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .multiscale import MultiScaleResidualQuantizer
from .vq import QuantizerOutput


class SharedMappingMultiScaleQuantizer(MultiScaleResidualQuantizer):
    """Dual-codebook multi-scale residual quantizer of ``f [B, Cs + Cp, H, W]``; indices int64 ``[B, Σ p²]``.

    split: (semantic dim Cs, pixel dim Cp). scale_drop: in training, the probability that one random scale other
    than the first is left out of a step (the release's ``random_scale_drop``, 0.1).
    """

    def __init__(self, codebook_size: int, split: tuple[int, int], scales: Sequence[int], beta: float = 0.25,
                 scale_drop: float = 0.1) -> None:
        super().__init__(codebook_size, sum(split), scales, l2_norm=True, beta=beta, phi_count=0)
        self.split, self.scale_drop = (int(split[0]), int(split[1])), scale_drop
        with torch.no_grad():  # the release's init: uniform(±1/K), then each part normalised
            w = torch.empty_like(self.embedding.weight).uniform_(-1.0 / codebook_size, 1.0 / codebook_size)
            self.embedding.weight.copy_(torch.cat([F.normalize(p, dim=-1) for p in w.split(self.split, dim=-1)], -1))

    def normalized_codebook(self) -> Tensor:
        """``[K, Cs + Cp]``: each part of every row L2-normalised (the code vectors)."""
        return torch.cat([F.normalize(p, p=2, dim=-1) for p in self.embedding.weight.split(self.split, dim=-1)], -1)

    def _normalize_parts(self, z: Tensor) -> Tensor:
        return torch.cat([F.normalize(p, p=2, dim=-1) for p in z.split(self.split, dim=-1)], dim=-1)

    @torch.no_grad()
    def nearest(self, z: Tensor, table: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """Rows ``z [N, Cs + Cp]`` (raw) -> int64 ``[N]``: argmin of d_sem + d_pix on the normalised parts
        (`table` is the base class's euclidean/cosine lookup table: not used by the two-part distance)."""
        return self._lookup(z.float(), self.normalized_codebook().detach().float())

    def _lookup(self, z: Tensor, codebook: Tensor) -> Tensor:
        d = None
        for zp, ep in zip(z.split(self.split, dim=-1), codebook.split(self.split, dim=-1)):
            zp = F.normalize(zp, p=2, dim=-1)
            part = (torch.sum(zp ** 2, dim=1, keepdim=True) + torch.sum(ep ** 2, dim=1)
                    - 2 * torch.einsum("bd,dn->bn", zp, torch.einsum("n d -> d n", ep)))
            d = part if d is None else d + 1.0 * part
        return torch.argmin(d, dim=1)

    def contribution(self, idx: Tensor, si: int, size: tuple[int, int]) -> Tensor:
        """Indices ``[B, p, p]`` -> normalised code vectors bicubic-resized to ``size``: ``[B, C, H, W]``."""
        h = F.embedding(idx, self.normalized_codebook()).permute(0, 3, 1, 2).contiguous()
        return F.interpolate(h, size=size, mode="bicubic")

    def _scale_step(self, f_rest: Tensor, p: int, size: tuple[int, int], codebook: Tensor
                    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """One scale: (indices ``[B, p, p]``, straight-through map at full size, normalised input rows z and the
        raw code rows q, both ``[B·p·p, C]``)."""
        B, C = f_rest.shape[:2]
        r = F.interpolate(f_rest, size=(p, p), mode="area").permute(0, 2, 3, 1).contiguous()
        z_rows = r.view(-1, C)
        idx = self._lookup(z_rows.detach(), codebook.detach())
        z = self._normalize_parts(r)
        q = codebook[idx].view(z.shape)
        st = (z + (q - z).detach()).permute(0, 3, 1, 2)
        return idx.view(B, p, p), F.interpolate(st, size=size, mode="bicubic"), z, q

    # ---- inference ----
    @torch.no_grad()
    def quantize_with_reconstructions(self, f: Tensor, keep: bool = True) -> tuple[Tensor, list[Tensor]]:
        """``f [B, C, H, W]`` -> (indices ``[B, T]``, cumulative reconstruction after each scale ``[B, C, H, W]``;
        an empty list with ``keep=False``)."""
        self._check(f)
        B, C, H, W = f.shape
        f_rest = f.detach().float()
        f_hat = torch.zeros_like(f_rest)
        codebook = self.normalized_codebook().float()
        indices, f_hats = [], []
        for p in self.scales:
            idx, h, _, _ = self._scale_step(f_rest, p, (H, W), codebook)
            f_hat = f_hat + h
            f_rest = f_rest - h
            indices.append(idx.reshape(B, p * p))
            if keep:
                f_hats.append(f_hat)
        return torch.cat(indices, dim=1), f_hats

    # ---- training ----
    def draw_scales(self) -> tuple[int, ...]:
        """Scale indices used in one training step: all, or (with probability `scale_drop`) all but one random
        scale other than the first (the release draws with Python's `random`; we use torch's global RNG)."""
        n = len(self.scales)
        if not self.training or self.scale_drop <= 0 or n < 3 or float(torch.rand(())) >= self.scale_drop:
            return tuple(range(n))
        dropped = int(torch.randint(1, n, ()))
        return tuple(si for si in range(n) if si != dropped)

    def forward(self, f: Tensor, keep: Sequence[int] | None = None) -> QuantizerOutput:
        """Training pass: ``f [B, C, H, W]`` -> straight-through sum of the scales' code maps, indices of the scales
        used ``[B, T']`` and losses.

        keep: scale indices to use (default: `draw_scales`). Losses as released, per scale on the normalised input
        z and the code rows q: ``mse(q, sg(z))`` (codebook) and ``β·mse(sg(q), z)`` (commitment), averaged over the
        scales used; the gradient reaches `f` through every scale's normalised input.
        """
        self._check(f)
        B, C, H, W = f.shape
        used = tuple(keep) if keep is not None else self.draw_scales()
        with torch.autocast(device_type=f.device.type, enabled=False):
            f = f.float()
            codebook = self.normalized_codebook().float()
            residual, total = f, None
            codebook_loss, commitment_loss = f.new_zeros(()), f.new_zeros(())
            indices = []
            for si in used:
                p = self.scales[si]
                idx, h, z, q = self._scale_step(residual, p, (H, W), codebook)
                total = h if total is None else total + h
                residual = residual - h.detach()
                indices.append(idx.reshape(B, p * p))
                codebook_loss = codebook_loss + F.mse_loss(q, z.detach())
                commitment_loss = commitment_loss + self.beta * F.mse_loss(q.detach(), z)
            codebook_loss, commitment_loss = codebook_loss / len(used), commitment_loss / len(used)
        return QuantizerOutput(total, torch.cat(indices, dim=1), codebook_loss + commitment_loss, commitment_loss,
                               codebook_loss)

    def var_input(self, indices: Tensor) -> Tensor:
        raise NotImplementedError("TokenFlow's next-scale generator input is not implemented")

    def next_var_input(self, si: int, f_hat: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError("TokenFlow's next-scale generator input is not implemented")

    def extra_repr(self) -> str:
        return f"codebook_size={self.codebook_size}, split={self.split}, scales={self.scales}"
