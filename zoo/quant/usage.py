"""Codebook health: how many codes are used and how evenly."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor


def codebook_usage(indices: Tensor, codebook_sizes: int | Sequence[int], lengths: Tensor | None = None
                   ) -> list[dict[str, float]]:
    """Usage statistics per group.

    indices: int64 ``[B, T, G]`` (or ``[N]`` / ``[N, G]``); lengths ``[B]`` masks padded positions of ``[B, T, G]``.
    Returns one dict per group: ``perplexity`` (exp of the entropy of the code histogram), ``entropy_bits``,
    ``used`` (codes seen at least once), ``used_fraction``, ``dead_fraction`` (codes never used) and ``tokens``.
    """
    if indices.dim() == 1:
        indices = indices[:, None]
    if indices.dim() == 3:
        if lengths is not None:
            valid = torch.arange(indices.shape[1], device=indices.device)[None] < lengths[:, None].to(indices.device)
            indices = indices[valid]
        else:
            indices = indices.reshape(-1, indices.shape[-1])
    G = indices.shape[-1]
    sizes = [codebook_sizes] * G if isinstance(codebook_sizes, int) else list(codebook_sizes)
    stats = []
    for g in range(G):
        counts = torch.bincount(indices[:, g].cpu(), minlength=sizes[g]).double()
        total = counts.sum().item()
        p = counts / max(total, 1)
        nz = p[p > 0]
        entropy = float(-(nz * nz.log()).sum()) if total else 0.0
        used = int((counts > 0).sum())
        stats.append({
            "perplexity": math.exp(entropy),
            "entropy_bits": entropy / math.log(2),
            "used": used,
            "used_fraction": used / sizes[g],
            "dead_fraction": 1 - used / sizes[g],
            "tokens": int(total),
            "codebook_size": sizes[g],
        })
    return stats
