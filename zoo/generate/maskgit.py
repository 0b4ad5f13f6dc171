"""MaskGIT class-conditional generators on 1-D token sequences: TiTok's / One-D-Piece's ImageBert (BERT layout)
and UViTBert (U-ViT layout), plus the same model as a generic generator for any zoo tokenizer with one group.

Token space of the transformer input (as released):
    0..K-1 image codes | K [MASK] | K+1..K+C class labels | K+C+1 the dropped ("null") class.
The class token is prepended; its output is dropped before the head, which predicts K code logits per position.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError, InputError
from .blocks import PostLNBlock, SkipBlock

ARCHS = ("bert", "uvit")
GUIDANCE_DECAYS = ("constant", "linear", "power-cosine")


@dataclass
class MaskGITConfig:
    """Size of a MaskGIT generator.

    arch: "bert" (HF BertModel: post-LN, separate q/k/v, embedding LayerNorm, token-type row, eps 1e-12) or
        "uvit" (pre-LN U-ViT: depth//2 in-blocks, a mid block, depth//2 out-blocks with long skips, no qkv bias).
    seq_len: image tokens per sample (T); codebook_size: K; num_classes: C.
    """

    codebook_size: int = 4096
    seq_len: int = 32
    num_classes: int = 1000
    width: int = 768
    depth: int = 24
    heads: int = 16
    mlp_dim: int = 3072
    arch: str = "bert"
    dropout: float = 0.1  # training only (BERT hidden dropout); sampling runs in eval mode

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ConfigError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        for name in ("codebook_size", "seq_len", "num_classes", "width", "depth", "heads", "mlp_dim"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.width % self.heads:
            raise ConfigError(f"width {self.width} is not divisible by heads {self.heads}")
        if self.arch == "uvit" and self.depth % 2:
            raise ConfigError(f"a uvit generator needs an even depth (in/out block pairs), got {self.depth}")

    @property
    def mask_id(self) -> int:
        return self.codebook_size

    @property
    def vocab_size(self) -> int:
        return self.codebook_size + self.num_classes + 2


@dataclass
class MaskGITSampling:
    """The released sampler's settings (`ImageBert.generate` + `demo_util.sample_fn`).

    temperature: ``randomize_temperature``: Gumbel-noise scale, annealed linearly to 0 over the steps.
    guidance: CFG scale; guidance_decay: "constant", "linear" (MUSE: scale·ratio, no guidance at step 0) or
        "power-cosine" (MDT: ``uncond + (cond-uncond)·s`` with s rising from 1 to `guidance`, power `guidance_pow`).
    softmax_annealing: divide logits by ``0.5 + 0.8·(1 - ratio)`` (TiTok's sampling script turns it on).
    """

    num_steps: int = 8
    temperature: float = 4.5
    guidance: float = 3.0
    guidance_decay: str = "constant"
    guidance_pow: float = 3.0
    softmax_annealing: bool = False

    def __post_init__(self) -> None:
        if self.guidance_decay not in GUIDANCE_DECAYS:
            raise InputError(f"guidance_decay must be one of {GUIDANCE_DECAYS}, got {self.guidance_decay!r}")
        if int(self.num_steps) < 1:
            raise InputError(f"num_steps must be at least 1, got {self.num_steps}")


class MaskGIT(nn.Module):
    """The transformer: ``(ids [B, T] in 0..K, labels [B], drop [B] bool) -> logits [B, T, K]``."""

    def __init__(self, config: MaskGITConfig) -> None:
        super().__init__()
        self.config = c = config
        self.embed = nn.Embedding(c.vocab_size, c.width)
        self.pos_embed = nn.Parameter(torch.zeros(c.seq_len + 1, c.width))
        if c.arch == "bert":
            self.type_embed = nn.Parameter(torch.zeros(2, c.width))  # BERT token types; every token is type 0
            self.embed_norm = nn.LayerNorm(c.width, eps=1e-12)
            self.embed_drop = nn.Dropout(c.dropout)
            self.blocks = nn.ModuleList(PostLNBlock(c.width, c.heads, c.mlp_dim, dropout=c.dropout)
                                        for _ in range(c.depth))
        else:
            ratio = c.mlp_dim / c.width
            self.in_blocks = nn.ModuleList(SkipBlock(c.width, c.heads, ratio) for _ in range(c.depth // 2))
            self.mid_block = SkipBlock(c.width, c.heads, ratio)
            self.out_blocks = nn.ModuleList(SkipBlock(c.width, c.heads, ratio, skip=True)
                                            for _ in range(c.depth // 2))
            self.norm = nn.LayerNorm(c.width)
        self.head = nn.Linear(c.width, c.codebook_size)
        if not self.pos_embed.is_meta:
            self.apply(self._init)
            nn.init.trunc_normal_(self.pos_embed, std=0.02)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)

    def condition_tokens(self, labels: Tensor, drop: Tensor | None = None) -> Tensor:
        """Class labels ``[B]`` -> input token ids ``[B]`` (the null class where `drop` is True)."""
        c = self.config
        tokens = labels.long() + c.codebook_size + 1
        if drop is not None:
            tokens = torch.where(drop, torch.full_like(tokens, c.codebook_size + c.num_classes + 1), tokens)
        return tokens

    def forward(self, ids: Tensor, labels: Tensor, drop: Tensor | None = None) -> Tensor:
        """ids: int64 ``[B, T]`` (codes or the mask id K); labels: int64 ``[B]``; drop: bool ``[B]`` or None.

        Returns logits ``[B, T, K]`` (float32 in float32 models).
        """
        c = self.config
        x = torch.cat([self.condition_tokens(labels, drop)[:, None], ids.long()], dim=1)
        h = self.embed(x) + self.pos_embed[: x.shape[1]]
        if c.arch == "bert":
            h = self.embed_drop(self.embed_norm(h + self.type_embed[0]))
            for blk in self.blocks:
                h = blk(h)
        else:
            skips = []
            for blk in self.in_blocks:
                h = blk(h)
                skips.append(h)
            h = self.mid_block(h)
            for blk in self.out_blocks:
                h = blk(h, skips.pop())
            h = self.norm(h)
        return self.head(h[:, 1:])

    # ------------------------------------------------------------------------------------------------------------
    def mask_tokens(self, codes: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Training corruption (as released): t ~ U(0,1), mask ratio arccos(t)/(pi/2), round(T·ratio) >= 1
        positions chosen uniformly. codes ``[B, T]`` -> (masked ids ``[B, T]``, mask bool ``[B, T]``)."""
        B, T = codes.shape
        t = torch.rand(B, generator=generator, device=codes.device)
        ratio = (torch.acos(t) / (math.pi * 0.5)).clamp(1e-6, 1.0)
        count = (T * ratio).round().clamp(min=1)
        order = torch.rand(B, T, generator=generator, device=codes.device).argsort(dim=-1)
        mask = order < count[:, None]
        return torch.where(mask, torch.full_like(codes, self.config.mask_id), codes), mask


def mlm_loss(logits: Tensor, targets: Tensor, mask: Tensor, label_smoothing: float = 0.1,
             unmasked_weight: float = 0.1) -> tuple[Tensor, Tensor]:
    """The released MaskGIT loss: label-smoothed CE, unmasked positions weighted `unmasked_weight`.

    logits ``[B, T, K]``, targets ``[B, T]``, mask bool ``[B, T]`` -> (loss, masked-token accuracy).
    """
    ce = F.cross_entropy(logits.transpose(1, 2).float(), targets, label_smoothing=label_smoothing, reduction="none")
    w = mask.float()
    weights = (1.0 - w) * unmasked_weight + w
    loss = (ce * weights).sum() / (weights.sum() + 1e-8)
    acc = ((logits.argmax(-1) == targets).float() * w).sum(1) / (w.sum(1) + 1e-8)
    return loss, acc.mean()


def _gumbel(shape: torch.Size, generator: torch.Generator | None, device: torch.device) -> Tensor:
    noise = torch.zeros(shape, device=device).uniform_(0, 1, generator=generator)
    return -torch.log((-torch.log(noise.clamp(min=1e-20))).clamp(min=1e-20))


@torch.no_grad()
def maskgit_sample(model: MaskGIT, labels: Tensor, s: MaskGITSampling,
                   generator: torch.Generator | None = None) -> Tensor:
    """The released MaskGIT sampler, step for step. labels int64 ``[B]`` -> codes int64 ``[B, T]``.

    Random draws happen in the official order (one ``[B]`` draw per official forward pass, which the official model
    spends on its label-dropout mask, also where a guided step's two passes run here as one; Gumbel noise over
    ``[B, T, K]``; confidence noise over ``[B, T]``), so with the same seed on the same device the official sampler
    and this one choose the same codes.
    """
    c = model.config
    device = labels.device
    B, T = labels.shape[0], c.seq_len
    ids = torch.full((B, T), c.mask_id, dtype=torch.long, device=device)

    def passes(*drops: bool) -> tuple[Tensor, ...]:
        """Logits ``[B, T, K]`` per entry of `drops` (True: the null class), from one model call over a batch of
        len(drops)·B. The release makes one call per entry; the rows are the same (every layer is per image), but
        one call reads each weight once for all, which is most of a call's time at small batches (a few dozen
        rows per GEMM). Each official call's label-dropout draw is still made, in order (see docstring)."""
        for _ in drops:
            torch.rand(B, generator=generator, device=device)
        drop = torch.tensor(drops, device=device).repeat_interleave(B)
        return model(ids.repeat(len(drops), 1), labels.repeat(len(drops)), drop).float().split(B)

    cfg_scale: float | Tensor = s.guidance if s.guidance_decay == "constant" else 0.0
    for step in range(s.num_steps):
        ratio = (step + 1) / s.num_steps
        temp = s.temperature * (1.0 - ratio)
        is_mask = ids == c.mask_id
        if s.guidance_decay == "power-cosine":
            # float32 tensor arithmetic, as in the official code, so the scale matches bit for bit
            pow_ = torch.ones(1, device=device) * s.guidance_pow
            scale_step = (1 - torch.cos(((step / s.num_steps) ** pow_) * torch.pi)) * 1 / 2
            cfg_scale = (s.guidance - 1) * scale_step + 1
        if not (isinstance(cfg_scale, float) and cfg_scale == 0):
            cond, uncond = passes(False, True)
            if s.guidance_decay == "power-cosine":
                logits = uncond + (cond - uncond) * cfg_scale
            else:
                logits = cond + (cond - uncond) * cfg_scale
        else:
            (logits,) = passes(False)
        if s.softmax_annealing:
            logits = logits / (0.5 + 0.8 * (1 - ratio))
        sampled = (logits + temp * _gumbel(logits.shape, generator, device)).argmax(dim=-1)
        sampled_logits = torch.gather(logits, -1, sampled[..., None]).squeeze(-1)
        sampled = torch.where(is_mask, sampled, ids)
        sampled_logits = torch.where(is_mask, sampled_logits, torch.full_like(sampled_logits, math.inf)).float()
        # re-mask the floor(T·arccos(ratio)/(pi/2)) least confident positions (at least 1, fewer than now masked);
        # the count comes from the first row, as released (all rows have the same count)
        mask_ratio = np.arccos(ratio) / (math.pi * 0.5)
        mask_len = int(max(1.0, min(float(is_mask[0].sum()) - 1, float(np.float32(np.floor(T * mask_ratio))))))
        confidence = sampled_logits + temp * _gumbel(sampled_logits.shape, generator, device)
        cut_off = confidence.sort(dim=-1).values[:, mask_len - 1:mask_len]
        # the last step keeps every sample (its confidence noise is still drawn, keeping the RNG stream aligned)
        last = step == s.num_steps - 1
        ids = sampled if last else torch.where(confidence <= cut_off, torch.full_like(sampled, c.mask_id), sampled)
        if s.guidance_decay == "linear":
            cfg_scale = ratio * s.guidance
    return ids
