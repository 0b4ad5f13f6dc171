"""MAGVIT-v2's entropy terms of a soft code assignment (LFQ and IBQ training, as SEED-Voken computes them)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def entropy_terms(logits: Tensor, temperature: float = 0.01, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    """(mean per-sample entropy, codebook entropy) of ``p = softmax(logits / temperature)``, scalars.

    logits: affinities ``[N, K]`` of N vectors to K codes (larger = closer). Per-sample entropy is
    ``mean_n -sum_k p·log_softmax(logits / temperature + eps)``, codebook entropy ``-sum_k p̄·log(p̄ + eps)`` of the
    mean assignment p̄ (the official formulas, eps placement included). The entropy loss is
    ``w_sample·per_sample - w_codebook·codebook``: each vector commits to a code while the batch spreads over all.
    """
    logits = logits.float()
    probs = F.softmax(logits / temperature, -1)
    log_probs = F.log_softmax(logits / temperature + eps, -1)
    avg = probs.mean(0)
    codebook = -(avg * torch.log(avg + eps)).sum()
    per_sample = -(probs * log_probs).sum(-1).mean()
    return per_sample, codebook
