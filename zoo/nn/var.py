"""VAR's next-scale prediction transformer (Tian et al., 2024), as ImageFolder's generator uses it.

A class-conditional GPT over a pyramid of token maps: position 0..first_l-1 hold the class "start of sequence",
every later position holds the *input* of its scale (the running reconstruction downsampled to that scale), and
attention is block-causal over scales (a token sees its own scale and every coarser one). Each block is
adaptive-LayerNorm conditioned on the class embedding (six modulation vectors per block), attention is
l2-normalised on queries and keys with a learned per-head temperature, and the head is preceded by an AdaLN.

Shapes: ``L = sum(p² for p in scales)`` positions, width ``C``, code input width ``Cvae`` (all branches' channels
side by side), ``V`` logits per position (all branches' codebooks side by side; ImageFolder: 2 x 4096).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ScaleAttention(nn.Module):
    """Self-attention with zero key bias, optional l2-normalised q/k and a per-head learned temperature.

    ``qkv.bias`` holds ``[q_bias; 0; v_bias]`` (upstream keeps the zero part as a buffer). With `l2_norm`, q and k
    are unit vectors and q is scaled by ``exp(min(scale_mul, ln 100))`` per head (attention scale 1); without it
    the scale is ``0.25 / sqrt(head_dim)`` as upstream.
    """

    def __init__(self, dim: int, heads: int, l2_norm: bool = True) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads, self.head_dim, self.l2_norm = heads, dim // heads, l2_norm
        self.qkv = nn.Linear(dim, 3 * dim)
        self.scale_mul = nn.Parameter(torch.full((1, heads, 1, 1), math.log(4.0))) if l2_norm else None
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None, cache: dict | None = None) -> Tensor:
        """``x [B, L, C]`` -> ``[B, L, C]``. `cache` (a dict) keeps keys/values across calls (sampling)."""
        B, L, C = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        if self.l2_norm:
            q = F.normalize(q, dim=-1).mul(self.scale_mul.clamp_max(math.log(100)).exp())
            k = F.normalize(k, dim=-1)
            scale = 1.0
        else:
            scale = 0.25 / math.sqrt(self.head_dim)
        if cache is not None:
            if "k" in cache:
                k, v = torch.cat((cache["k"], k), dim=2), torch.cat((cache["v"], v), dim=2)
            cache["k"], cache["v"] = k, v
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=scale)
        return self.proj(out.transpose(1, 2).reshape(B, L, C))


class AdaLNBlock(nn.Module):
    """Pre-norm block whose LayerNorms (no affine) are modulated by the condition: ``ada_ln(silu(cond))`` gives
    (gamma1, gamma2, scale1, scale2, shift1, shift2); ``x += gamma1·attn(ln(x)(1+scale1)+shift1)``, then the same
    with the MLP (GELU-tanh, ratio 4). ``x [B, L, C]``, ``cond [B, D]``."""

    def __init__(self, dim: int, heads: int, cond_dim: int, mlp_ratio: float = 4.0, l2_norm: bool = True,
                 eps: float = 1e-6) -> None:
        super().__init__()
        self.dim = dim
        self.norm = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.attn = ScaleAttention(dim, heads, l2_norm)
        hidden = round(dim * mlp_ratio)
        self.mlp = nn.Sequential()
        self.mlp.fc1 = nn.Linear(dim, hidden)
        self.mlp.act = nn.GELU(approximate="tanh")
        self.mlp.fc2 = nn.Linear(hidden, dim)
        self.ada_ln = nn.Linear(cond_dim, 6 * dim)

    def modulation(self, cond: Tensor) -> tuple[Tensor, ...]:
        """``cond [B, D]`` -> (gamma1, gamma2, scale1, scale2, shift1, shift2), each ``[B, 1, C]``."""
        return self.ada_ln(F.silu(cond)).view(-1, 1, 6, self.dim).unbind(2)

    def forward(self, x: Tensor, cond: Tensor | tuple[Tensor, ...], attn_mask: Tensor | None = None,
                cache: dict | None = None) -> Tensor:
        """cond: the condition ``[B, D]``, or its `modulation` computed once (sampling reuses it at every scale)."""
        g1, g2, s1, s2, b1, b2 = self.modulation(cond) if isinstance(cond, Tensor) else cond
        x = x + self.attn(self.norm(x).mul(s1.add(1)).add(b1), attn_mask, cache).mul(g1)
        return x + self.mlp(self.norm(x).mul(s2.add(1)).add(b2)).mul(g2)


class AdaLNHead(nn.Module):
    """The AdaLN before the head: ``ln(x)(1+scale)+shift`` with (scale, shift) = ``ada_ln(silu(cond))``."""

    def __init__(self, dim: int, cond_dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.dim = dim
        self.norm = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.ada_ln = nn.Linear(cond_dim, 2 * dim)

    def modulation(self, cond: Tensor) -> tuple[Tensor, ...]:
        return self.ada_ln(F.silu(cond)).view(-1, 1, 2, self.dim).unbind(2)

    def forward(self, x: Tensor, cond: Tensor | tuple[Tensor, ...]) -> Tensor:
        scale, shift = self.modulation(cond) if isinstance(cond, Tensor) else cond
        return self.norm(x).mul(scale.add(1)).add(shift)


class NextScaleTransformer(nn.Module):
    """Class-conditional next-scale predictor.

    scales: side lengths of the token maps (coarse to fine); code_dim: width of the teacher-forcing input
    (``Cvae``); vocab: logits per position; num_classes: class labels (index `num_classes` is the null class
    used for classifier-free guidance).
    """

    def __init__(self, scales: Sequence[int], code_dim: int, vocab: int, num_classes: int = 1000, width: int = 1024,
                 depth: int = 16, heads: int = 16, mlp_ratio: float = 4.0, l2_norm: bool = True,
                 eps: float = 1e-6) -> None:
        super().__init__()
        self.scales = tuple(int(p) for p in scales)
        self.num_classes, self.width, self.vocab = num_classes, width, vocab
        self.first_l = self.scales[0] ** 2
        self.L = sum(p * p for p in self.scales)
        std = math.sqrt(1 / width / 3)
        self.input_proj = nn.Linear(code_dim, width)
        self.class_embed = nn.Embedding(num_classes + 1, width)
        self.start_pos = nn.Parameter(torch.randn(1, self.first_l, width) * std)
        self.pos_embed = nn.Parameter(torch.randn(1, self.L, width) * std)
        self.level_embed = nn.Embedding(len(self.scales), width)
        self.blocks = nn.ModuleList(AdaLNBlock(width, heads, width, mlp_ratio, l2_norm, eps) for _ in range(depth))
        self.head_norm = AdaLNHead(width, width, eps)
        self.head = nn.Linear(width, vocab)
        levels = torch.cat([torch.full((p * p,), i) for i, p in enumerate(self.scales)])
        self.register_buffer("levels", levels, persistent=False)
        mask = torch.where(levels[:, None] >= levels[None, :], 0.0, -torch.inf)
        self.register_buffer("block_causal_mask", mask.reshape(1, 1, self.L, self.L), persistent=False)

    def logits(self, x: Tensor, cond: Tensor | tuple[Tensor, ...]) -> Tensor:
        return self.head(self.head_norm(x.float(), cond)).float()

    def forward(self, labels: Tensor, inputs: Tensor) -> Tensor:
        """Teacher forcing: labels int64 ``[B]`` (num_classes = null), inputs ``[B, L - first_l, code_dim]``
        -> logits ``[B, L, vocab]`` (position t predicts the codes of position t)."""
        B = inputs.shape[0]
        cond = self.class_embed(labels)
        sos = cond.unsqueeze(1).expand(B, self.first_l, -1) + self.start_pos.expand(B, -1, -1)
        x = torch.cat((sos, self.input_proj(inputs.float())), dim=1)
        x = x + self.level_embed(self.levels[: x.shape[1]]) + self.pos_embed[:, : x.shape[1]]
        mask = self.block_causal_mask[:, :, : x.shape[1], : x.shape[1]].to(x.dtype)
        for block in self.blocks:
            x = block(x, cond, mask)
        return self.logits(x, cond)

    @torch.no_grad()
    def sample(self, labels: Tensor, next_input: Callable[[int, list[Tensor]], Tensor | None], groups: int,
               guidance: float = 1.5, top_k: int = 0, top_p: float = 0.0,
               generator: torch.Generator | None = None) -> list[Tensor]:
        """Scale-by-scale sampling with a KV cache and classifier-free guidance ramped linearly over scales
        (``t = guidance · si / (S - 1)``, ``logits = (1+t)·cond − t·uncond``), top-k then top-p per group.

        next_input(si, group_indices) receives scale si's sampled indices (one ``[B, p²]`` tensor per group) and
        returns the next scale's input ``[B, p_next², code_dim]`` (None after the last scale).
        The random draws are ``torch.multinomial`` on `generator`, group by group, scale by scale (as upstream).
        Returns per group the indices ``[B, L]`` of all scales.
        """
        B = labels.shape[0]
        cond = self.class_embed(torch.cat((labels, torch.full_like(labels, self.num_classes))))  # [2B, C]
        level_pos = self.level_embed(self.levels) + self.pos_embed  # [1, L, C]
        x = (cond.unsqueeze(1).expand(2 * B, self.first_l, -1) + self.start_pos.expand(2 * B, -1, -1)
             + level_pos[:, : self.first_l])
        # the class condition is the same at every scale: each block's AdaLN modulation is computed once
        mods = [block.modulation(cond) for block in self.blocks]
        head_mod = self.head_norm.modulation(cond)
        caches: list[dict] = [{} for _ in self.blocks]
        out: list[list[Tensor]] = [[] for _ in range(groups)]
        start, n = 0, len(self.scales)
        for si, p in enumerate(self.scales):
            h = x
            for block, mod, cache in zip(self.blocks, mods, caches):
                h = block(h, mod, None, cache)
            logits = self.logits(h, head_mod)
            t = guidance * si / (n - 1) if n > 1 else 0.0
            logits = (1 + t) * logits[:B] - t * logits[B:]
            picked = [sample_top_k_top_p(part, top_k, top_p, generator) for part in logits.chunk(groups, dim=-1)]
            for g in range(groups):
                out[g].append(picked[g])
            start += p * p
            nxt = next_input(si, picked)
            if si != n - 1:
                q = self.scales[si + 1]
                x = (self.input_proj(nxt) + level_pos[:, start: start + q * q]).repeat(2, 1, 1)
        return [torch.cat(parts, dim=1) for parts in out]


def sample_top_k_top_p(logits: Tensor, top_k: int = 0, top_p: float = 0.0,
                       generator: torch.Generator | None = None) -> Tensor:
    """``logits [B, l, V]`` -> int64 ``[B, l]``: keep the top k, then the smallest set with probability > top_p,
    then one multinomial draw per position on `generator` (VAR's ``sample_with_top_k_top_p_``, not in place)."""
    B, l, V = logits.shape
    logits = logits.clone()
    if top_k > 0:
        kth = logits.topk(top_k, largest=True, sorted=False, dim=-1)[0].amin(dim=-1, keepdim=True)
        logits.masked_fill_(logits < kth, -torch.inf)
    if top_p > 0:
        sorted_logits, sorted_idx = logits.sort(dim=-1, descending=False)
        remove = sorted_logits.softmax(dim=-1).cumsum_(dim=-1) <= (1 - top_p)
        remove[..., -1:] = False
        logits.masked_fill_(remove.scatter(sorted_idx.ndim - 1, sorted_idx, remove), -torch.inf)
    probs = logits.softmax(dim=-1).view(-1, V)
    return torch.multinomial(probs, num_samples=1, replacement=True, generator=generator).view(B, l)
