"""VAR next-scale generators (ImageFolder's VAR-d17): the `Generator` interface over `zoo.nn.var`.

The transformer predicts, per position of the 286-position scale pyramid, the codes of all G branches at once
(logits of the branches side by side: ImageFolder's folded tokens, 2 x 4096). Its next-scale input is the
tokenizer's running reconstruction, so sampling needs the paired tokenizer: `attach(tokenizer)` (done by
`generate_images`) gives it one with ``next_scale_input(state, si, indices)`` (ImageFolder has it).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..api import Codes, Tokenizer
from ..errors import ConfigError, InputError
from ..nn.var import NextScaleTransformer
from .api import Generator


@dataclass
class VARConfig:
    """`NextScaleTransformer` sizes; `groups`: branches predicted per position (logits split evenly)."""

    scales: list[int] = field(default_factory=lambda: [1, 1, 2, 3, 3, 4, 5, 6, 8, 11])
    code_dim: int = 64
    vocab: int = 8192
    num_classes: int = 1000
    width: int = 1088
    depth: int = 17
    heads: int = 17
    mlp_ratio: float = 4.0
    l2_norm: bool = True
    groups: int = 2

    def __post_init__(self) -> None:
        self.scales = [int(p) for p in self.scales]
        if self.vocab % self.groups:
            raise ConfigError(f"vocab {self.vocab} does not split into {self.groups} equal codebooks")


@dataclass
class VARSampling:
    """VAR's `autoregressive_infer_cfg`: guidance ramped linearly over the scales (0 at the first, `guidance` at
    the last: ``(1+t)·cond − t·uncond``), top-k then top-p per branch, one multinomial draw per token."""

    guidance: float = 3.25
    top_k: int = 750
    top_p: float = 0.95

    def __post_init__(self) -> None:
        if self.top_k < 0 or not 0.0 <= self.top_p <= 1.0:
            raise InputError(f"top_k must be >= 0 and top_p in [0, 1], got {self.top_k}, {self.top_p}")


class VARGenerator(Generator):
    family = "var"
    kv_cached = True

    def __init__(self, config: VARConfig, sampling: VARSampling | None = None, tokenizer: str | None = None) -> None:
        super().__init__()
        self.config = c = config
        self.model = NextScaleTransformer(c.scales, c.code_dim, c.vocab, c.num_classes, c.width, c.depth, c.heads,
                                          c.mlp_ratio, c.l2_norm)
        self.sampling = sampling or VARSampling()
        self.tokenizer = tokenizer
        self.num_classes = c.num_classes
        self._attached: list[Tokenizer] = []  # a plain list: the tokenizer is not part of this module's weights

    def code_layout(self) -> tuple[tuple[int, ...], int]:
        c = self.config
        return (c.vocab // c.groups,) * c.groups, sum(p * p for p in c.scales)

    def attach(self, tokenizer: Tokenizer) -> "VARGenerator":
        """Use `tokenizer` (the paired one) to build each next-scale input while sampling."""
        self.check_tokenizer(tokenizer)
        if not hasattr(tokenizer, "next_scale_input"):
            raise InputError(f"{getattr(tokenizer, 'name', None) or tokenizer.family} cannot feed a next-scale "
                             "generator (it has no next_scale_input)")
        self._attached[:] = [tokenizer]
        return self

    def check_tokenizer(self, tokenizer: Tokenizer) -> None:
        super().check_tokenizer(tokenizer)
        scales = tuple(p * p for p in self.config.scales)
        if tuple(tokenizer.spec.scales or ()) != scales:
            raise InputError(f"generator {self.name or self.family} predicts scales of {list(scales)} tokens, "
                             f"tokenizer has {tokenizer.spec.scales}")

    def forward(self, labels: Tensor, inputs: Tensor) -> Tensor:
        return self.model(labels, inputs)

    def _sample(self, labels: Tensor, settings: VARSampling, rng: torch.Generator | None) -> Tensor:
        if not self._attached:
            raise InputError(f"{self.name or 'this VAR generator'} samples through its tokenizer: call "
                             f"gen.attach(zoo.load({self.tokenizer!r})) first (generate_images does it)")
        tok = self._attached[0]
        state: list[Any] = [None]

        def next_input(si: int, indices: list[Tensor]) -> Tensor | None:
            state[0], x = tok.next_scale_input(state[0], si, indices)
            return None if x is None else x.to(labels.device)

        parts = self.model.sample(labels, next_input, groups=self.config.groups, guidance=settings.guidance,
                                  top_k=settings.top_k, top_p=settings.top_p, generator=rng)
        return torch.stack(parts, dim=-1)

    def sample(self, labels, *args: Any, **kw: Any) -> Codes:  # type: ignore[override]
        codes = super().sample(labels, *args, **kw)
        codes.scales = tuple(p * p for p in self.config.scales)
        return codes
