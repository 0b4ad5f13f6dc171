"""A class-conditional next-token (GPT) generator on codes with G parallel groups per position.

LlamaGen-style, as UniTok's generation uses it: position t's input is the *sum* of its G sub-code embeddings
(one table per group), a causal pre-LN transformer runs over ``[class token, x_0, ..., x_{T-2}]``, and G heads
predict the G sub-codes of each position independently (UniTok: 8 sub-codes of 4096 each, a 4096^8 vocabulary
no single softmax could hold). G = 1 is a plain GPT over a single codebook.
Classifier-free guidance uses the null class `num_classes`, dropped in training with `class_dropout`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..api import Codes
from ..errors import InputError
from ..nn.var import sample_top_k_top_p
from ..nn.vit import Block
from .api import Generator


@dataclass
class ARConfig:
    codebook_sizes: tuple[int, ...] = (4096,)
    seq_len: int = 256
    num_classes: int = 1000
    width: int = 768
    depth: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    class_dropout: float = 0.1


@dataclass
class ARSampling:
    """guidance: CFG scale (``uncond + s·(cond − uncond)``; 1 = off); temperature divides the logits; then top-k
    and top-p per group."""

    guidance: float = 1.0
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 0.0


class GroupedGPT(nn.Module):
    """Logits of every group for every position: codes ``[B, T, G]`` + labels ``[B]`` -> G x ``[B, T, K_g]``."""

    def __init__(self, cfg: ARConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.class_embed = nn.Embedding(cfg.num_classes + 1, cfg.width)
        self.code_embed = nn.ModuleList(nn.Embedding(k, cfg.width) for k in cfg.codebook_sizes)
        self.pos_embed = nn.Parameter(torch.randn(1, cfg.seq_len, cfg.width) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg.width, cfg.heads, cfg.mlp_ratio, is_causal=True)
                                    for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.width)
        self.heads = nn.ModuleList(nn.Linear(cfg.width, k) for k in cfg.codebook_sizes)
        for emb in [self.class_embed, *self.code_embed]:
            nn.init.normal_(emb.weight, std=0.02)

    def embed_codes(self, indices: Tensor) -> Tensor:
        """``[B, t, G]`` -> ``[B, t, width]``: the sum of the G sub-code embeddings."""
        return sum(emb(indices[..., g]) for g, emb in enumerate(self.code_embed))

    def run(self, x: Tensor, start: int, caches: list[dict] | None = None) -> list[Tensor]:
        x = x + self.pos_embed[:, start:start + x.shape[1]]
        for i, block in enumerate(self.blocks):
            x = block(x, cache=None if caches is None else caches[i])
        x = self.norm(x)
        return [head(x).float() for head in self.heads]

    def forward(self, indices: Tensor, labels: Tensor) -> list[Tensor]:
        sos = self.class_embed(labels).unsqueeze(1)
        x = torch.cat((sos, self.embed_codes(indices[:, :-1])), dim=1)
        return self.run(x, 0)


class ARGenerator(Generator):
    family = "ar"
    kv_cached = True

    def __init__(self, config: ARConfig, sampling: ARSampling | None = None, tokenizer: str | None = None) -> None:
        super().__init__()
        self.config = config
        self.sampling = sampling or ARSampling()
        self.tokenizer = tokenizer
        self.num_classes = config.num_classes
        self.model = GroupedGPT(config)

    def code_layout(self) -> tuple[tuple[int, ...], int]:
        return tuple(self.config.codebook_sizes), self.config.seq_len

    def forward(self, indices: Tensor, labels: Tensor) -> list[Tensor]:
        return self.model(indices, labels)

    def loss(self, codes: Codes, labels: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Mean over groups of the next-token cross-entropy; labels are replaced by the null class with
        probability `class_dropout` in training mode (drawn on `generator`)."""
        idx = codes.indices.to(self.device)
        sizes, T = self.code_layout()
        if idx.shape[1:] != (T, len(sizes)):
            raise InputError(f"this generator models codes [B, {T}, {len(sizes)}], got {tuple(idx.shape)}")
        labels = labels.to(self.device)
        if self.training and self.config.class_dropout > 0:
            drop = torch.rand(labels.shape, generator=generator, device="cpu").to(self.device)
            labels = torch.where(drop < self.config.class_dropout, torch.full_like(labels, self.num_classes), labels)
        logits = self(idx, labels)
        return sum(F.cross_entropy(lg.reshape(-1, lg.shape[-1]), idx[..., g].reshape(-1))
                   for g, lg in enumerate(logits)) / len(logits)

    def _sample(self, labels: Tensor, s: ARSampling, rng: torch.Generator | None) -> Tensor:
        B, (sizes, T) = labels.shape[0], self.code_layout()
        guided = s.guidance != 1.0
        cls = torch.cat((labels, torch.full_like(labels, self.num_classes))) if guided else labels
        caches: list[dict] = [{} for _ in self.model.blocks]
        x = self.model.class_embed(cls).unsqueeze(1)
        out = torch.empty(B, T, len(sizes), dtype=torch.long, device=self.device)
        for t in range(T):
            logits = self.model.run(x, t, caches)
            picked = []
            for g, lg in enumerate(logits):
                lg = lg[:, -1:]
                if guided:
                    lg = lg[B:] + s.guidance * (lg[:B] - lg[B:])
                picked.append(sample_top_k_top_p(lg / max(s.temperature, 1e-5), s.top_k, s.top_p, rng)[:, 0])
            out[:, t] = torch.stack(picked, dim=-1)
            step = out[:, t:t + 1]
            x = self.model.embed_codes(torch.cat((step, step)) if guided else step)
        return out
