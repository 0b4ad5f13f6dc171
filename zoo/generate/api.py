"""The generator interface: class labels in, `Codes` out; the paired tokenizer decodes them into images."""
from __future__ import annotations

from dataclasses import asdict
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..api import Codes, Tokenizer
from ..errors import InputError
from .maskgit import MaskGIT, MaskGITConfig, MaskGITSampling, maskgit_sample

Labels = Sequence[int] | Tensor


class Generator(nn.Module):
    """Base class. Subclasses set `family`, `config`, `sampling` (default settings), `tokenizer` (the registered
    name or family of the tokenizer whose codes it models) and implement `_sample(labels [b], settings, rng)`."""

    family: str = ""
    name: str | None = None
    tokenizer: str | None = None
    num_classes: int = 0

    # a KV-cached sampler (VAR, the grouped GPT) calls `model.blocks` one by one on a sequence that grows at every
    # step; MaskGIT calls the whole model with the same shapes at every step
    kv_cached: bool = False

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def hot_modules(self) -> dict[str, nn.Module]:
        """The submodules `compile()` compiles, by dotted name: the whole transformer, or a KV-cached sampler's
        blocks (what its sampling loop calls)."""
        if self.kv_cached:
            return {f"model.blocks.{i}": block for i, block in enumerate(self.model.blocks)}
        return {"model": self.model}

    def compile(self, *args: Any, **kwargs: Any) -> "Generator":
        """Compile the sampling hot path with `torch.compile` in place (keywords go to `torch.compile`). KV-cached
        samplers default to ``dynamic=True``: one graph with symbolic lengths serves every step instead of one
        recompilation per length. The state dict and the sampled codes are unchanged; the first `sample`
        compiles. Returns self."""
        if self.kv_cached:
            kwargs.setdefault("dynamic", True)
        for module in self.hot_modules().values():
            module.compile(*args, **kwargs)
        return self

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> dict[str, str]:
        """Push ``config.json`` + ``model.safetensors`` + a model card; ``load_generator("hf://repo")`` pulls it
        (keywords: see zoo.generate.hub.push_generator)."""
        from .hub import push_generator

        return push_generator(self, repo_id, **kwargs)

    def check_labels(self, labels: Labels) -> Tensor:
        """Labels as int64 ``[B]`` on the model's device; out-of-range labels raise `InputError`."""
        if isinstance(labels, Tensor):
            if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.ndim != 1:
                raise InputError(f"labels must be a 1-D integer tensor, got {labels.dtype} {tuple(labels.shape)}")
            t = labels.long()
        else:
            try:
                t = torch.tensor([int(v) for v in labels], dtype=torch.long)
            except (TypeError, ValueError):
                raise InputError(f"labels must be integers, got {labels!r}") from None
        if t.numel() == 0:
            raise InputError("labels is empty: give at least one class label")
        bad = t[(t < 0) | (t >= self.num_classes)]
        if bad.numel():
            raise InputError(f"class label {int(bad[0])} is out of range: {self.name or self.family} knows classes "
                             f"0..{self.num_classes - 1}")
        return t.to(self.device)

    def check_tokenizer(self, tokenizer: Tokenizer) -> None:
        """Refuse a tokenizer whose codes this generator was not trained on."""
        spec = tokenizer.spec
        sizes, T = self.code_layout()
        theirs = tuple(spec.codebook_sizes)
        name = getattr(tokenizer, "name", None)
        if self.tokenizer and name and name != self.tokenizer and tokenizer.family != self.tokenizer:
            raise InputError(f"generator {self.name or self.family} pairs with tokenizer {self.tokenizer!r}, not "
                             f"{name!r}: load zoo.load({self.tokenizer!r}) to decode its codes")
        lo = spec.min_tokens or spec.max_tokens
        if theirs != sizes or not lo <= T <= spec.max_tokens:
            raise InputError(f"generator {self.name or self.family} makes {T} tokens from codebooks {sizes}, but "
                             f"tokenizer {name or tokenizer.family} takes {lo}..{spec.max_tokens} tokens "
                             f"from codebooks {theirs}" + (f"; it pairs with {self.tokenizer!r}" if self.tokenizer
                                                           else ""))

    def code_layout(self) -> tuple[tuple[int, ...], int]:
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, labels: Labels, num_steps: int | None = None, guidance: float | None = None,
               temperature: float | None = None, seed: int | None = None, batch_size: int | None = None,
               **settings: Any) -> Codes:
        """Sample codes for class `labels` (B of them) -> `Codes` with indices ``[B, T, G]``.

        None keeps the registered default of each setting (the published sampler); other sampler settings are
        keyword arguments (e.g. ``guidance_decay="constant"``). `seed` makes the result deterministic (one
        torch.Generator drawn through in order; the same seed and batch size give the same codes).
        """
        labels_t = self.check_labels(labels)
        changes = {k: v for k, v in dict(num_steps=num_steps, guidance=guidance, temperature=temperature,
                                         **settings).items() if v is not None}
        known = set(asdict(self.sampling))
        unknown = sorted(set(changes) - known)
        if unknown:
            raise InputError(f"unknown sampler setting(s) {unknown}; known: {sorted(known)}")
        from ..config import replace_config
        from ..errors import ConfigError

        try:  # checked by type and range: finite, not negative, one of the allowed names
            chosen = replace_config(self.sampling, **changes)
        except ConfigError as exc:
            raise InputError(f"sampler setting {str(exc).replace('config.', '', 1)}") from None
        rng = None
        if seed is not None:
            rng = torch.Generator(device=self.device).manual_seed(int(seed))
        size = int(batch_size or labels_t.shape[0])
        if size < 1:
            raise InputError(f"batch_size must be at least 1, got {size}")
        was_training = self.training
        self.eval()
        try:
            parts = [self._sample(labels_t[i:i + size], chosen, rng) for i in range(0, labels_t.shape[0], size)]
        finally:
            self.train(was_training)
        sizes, _ = self.code_layout()
        return Codes(torch.cat(parts).cpu(), codebook_sizes=sizes, model=self.tokenizer)

    def _sample(self, labels: Tensor, settings: Any, rng: torch.Generator | None) -> Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def generate_images(self, tokenizer: Tokenizer, labels: Labels, **kw: Any) -> Tensor:
        """Sample and decode: float images ``[B, 3, H, W]`` in [0, 1]."""
        self.check_tokenizer(tokenizer)
        if hasattr(self, "attach"):  # generators that sample through their tokenizer (VAR's next-scale input)
            self.attach(tokenizer)
        codes = self.sample(labels, **kw)
        codes.model = getattr(tokenizer, "name", None) or codes.model
        codes.grid = tokenizer.spec.grid  # a 2-D tokenizer reads the T codes as its row-major grid
        return tokenizer.decode(codes.to(tokenizer.device)).cpu()


class MaskGITGenerator(Generator):
    """A MaskGIT generator (TiTok, One-D-Piece, or trained here on any single-group tokenizer's codes)."""

    family = "maskgit"

    def __init__(self, config: MaskGITConfig, sampling: MaskGITSampling | None = None,
                 tokenizer: str | None = None) -> None:
        super().__init__()
        self.config = config
        self.model = MaskGIT(config)
        self.sampling = sampling or MaskGITSampling()
        self.tokenizer = tokenizer
        self.num_classes = config.num_classes

    def code_layout(self) -> tuple[tuple[int, ...], int]:
        return (self.config.codebook_size,), self.config.seq_len

    def forward(self, ids: Tensor, labels: Tensor, drop: Tensor | None = None) -> Tensor:
        return self.model(ids, labels, drop)

    def _sample(self, labels: Tensor, settings: MaskGITSampling, rng: torch.Generator | None) -> Tensor:
        return maskgit_sample(self.model, labels, settings, rng)[..., None]
