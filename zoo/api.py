"""The one interface: images in, `Codes` out, and back.

Images cross the public boundary as float tensors ``[B, 3, H, W]`` with values in ``[0, 1]`` (RGB). Every family
converts to its own normalisation inside `_encode` / `_decode`.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence

import torch
from torch import Tensor, nn

from .errors import CheckpointError, InputError, PrecisionError

__all__ = ["Codes", "Latents", "TokenizerSpec", "Tokenizer", "check_images", "weights_fingerprint"]

FINGERPRINT_SAMPLE = 1 << 16
# `Tokenizer.set_precision` names -> the autocast dtype (None: no autocast)
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def weights_fingerprint(family: str, config: Any, state_dict: Any) -> str:
    """sha256 (16 hex digits) of a family, its config and a state dict: names, shapes and float32 values (all of
    a tensor's values up to `FINGERPRINT_SAMPLE`, else that many evenly spaced ones). Device and dtype moves of
    float32 weights do not change it."""
    import dataclasses
    import hashlib

    cfg = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config
    digest = hashlib.sha256(json.dumps([family, cfg], sort_keys=True, default=str).encode())
    for name in sorted(state_dict):
        t = state_dict[name].detach()
        digest.update(f"{name}{tuple(t.shape)}".encode())
        flat = t.reshape(-1)
        if flat.numel() > FINGERPRINT_SAMPLE:
            picks = torch.arange(FINGERPRINT_SAMPLE, dtype=torch.int64) * (flat.numel() - 1) // (FINGERPRINT_SAMPLE - 1)
            flat = flat[picks.to(flat.device)]
        digest.update(flat.to("cpu", torch.float32 if t.is_floating_point() else torch.int64).numpy().tobytes())
    return digest.hexdigest()[:16]


# --------------------------------------------------------------------------------------------------------------
# Codes
# --------------------------------------------------------------------------------------------------------------
@dataclass
class Codes:
    """Discrete tokens of a batch of images.

    Attributes:
        indices: int64 ``[B, T, G]``: T token positions, G parallel groups (sub-codebooks or branches; 1 for VQ).
        lengths: int64 ``[B]`` valid tokens per image (a prefix of T), or None when all T are valid.
        grid: ``(h, w)`` when the T positions are a row-major 2-D map, else None (1-D sequences).
        scales: tokens per scale for multi-scale residual codes (concatenated along T; ``sum(scales) == T``).
        codebook_sizes: codebook size of each of the G groups; used to validate indices.
        model: the name (or family) of the tokenizer that made them, so decoding with another one can be refused.
        folded_sizes: set by `fold()`: the codebook sizes of the G groups that were folded into one product index
            per position (`unfold()` splits them again); None for codes that are not folded.
        fingerprint: `Tokenizer.fingerprint` of the model that made them (its config and weights); `decode` refuses
            codes whose fingerprint is not its own, whatever the names say. None: not checked (e.g. generated codes).
    """

    indices: Tensor
    lengths: Tensor | None = None
    grid: tuple[int, int] | None = None
    scales: tuple[int, ...] | None = None
    codebook_sizes: tuple[int, ...] | None = None
    model: str | None = None
    folded_sizes: tuple[int, ...] | None = None
    fingerprint: str | None = None

    def __post_init__(self) -> None:
        if self.grid is not None:
            self.grid = tuple(int(v) for v in self.grid)
        if self.scales is not None:
            self.scales = tuple(int(v) for v in self.scales)
        if self.codebook_sizes is not None:
            self.codebook_sizes = tuple(int(v) for v in self.codebook_sizes)
        if self.folded_sizes is not None:
            self.folded_sizes = tuple(int(v) for v in self.folded_sizes)

    # ---- shape helpers ----
    @property
    def batch_size(self) -> int:
        return int(self.indices.shape[0])

    @property
    def num_tokens(self) -> int:
        """T, the number of token positions (the longest sequence in the batch)."""
        return int(self.indices.shape[1])

    @property
    def num_groups(self) -> int:
        return int(self.indices.shape[2])

    def token_counts(self) -> Tensor:
        """Valid tokens per image, int64 ``[B]``."""
        if self.lengths is None:
            return torch.full((self.batch_size,), self.num_tokens, dtype=torch.int64)
        return self.lengths.detach().to("cpu", torch.int64)

    def bits(self) -> Tensor:
        """Bits per image if every token is stored with ceil(log2 K) bits per group, float64 ``[B]``."""
        if self.codebook_sizes is None:
            raise InputError("Codes.bits() needs codebook_sizes")
        per_token = sum(math.ceil(math.log2(k)) for k in self.codebook_sizes)
        return self.token_counts().to(torch.float64) * per_token

    def to(self, device: torch.device | str) -> "Codes":
        lengths = None if self.lengths is None else self.lengths.to(device)
        return Codes(self.indices.to(device), lengths, self.grid, self.scales, self.codebook_sizes, self.model,
                     self.folded_sizes, self.fingerprint)

    def __getitem__(self, item: int | slice) -> "Codes":
        """The codes of some images of the batch (an int keeps the batch dimension)."""
        if isinstance(item, int):
            item = slice(item, item + 1 if item != -1 else None)
        lengths = None if self.lengths is None else self.lengths[item]
        return Codes(self.indices[item], lengths, self.grid, self.scales, self.codebook_sizes, self.model,
                     self.folded_sizes, self.fingerprint)

    @staticmethod
    def cat(parts: Sequence["Codes"]) -> "Codes":
        """Concatenate along the batch; all parts must share layout (shorter sequences are padded with 0)."""
        if not parts:
            raise InputError("Codes.cat needs at least one Codes")
        first = parts[0]
        for p in parts[1:]:
            if (p.grid, p.scales, p.codebook_sizes, p.model, p.num_groups, p.folded_sizes, p.fingerprint) != (
                first.grid, first.scales, first.codebook_sizes, first.model, first.num_groups, first.folded_sizes,
                first.fingerprint
            ):
                raise InputError("Codes.cat: parts have different layouts (grid, scales, codebooks or model)")
        T = max(p.num_tokens for p in parts)
        any_lengths = any(p.lengths is not None or p.num_tokens != T for p in parts)
        indices = torch.cat([nn.functional.pad(p.indices, (0, 0, 0, T - p.num_tokens)) for p in parts])
        lengths = torch.cat([p.token_counts() for p in parts]) if any_lengths else None
        return Codes(indices, lengths, first.grid, first.scales, first.codebook_sizes, first.model, first.folded_sizes,
                     first.fingerprint)

    # ---- folding (product codes) ----
    def fold(self) -> "Codes":
        """One index per position: the G group indices at each position folded into one product-codebook index.

        ``[B, T, G]`` -> ``[B, T, 1]`` with ``index = (...(i_0·K_1 + i_1)·K_2 + ...) + i_{G-1}`` (group 0 most
        significant) and one codebook of size ``K_0·K_1·...``: the view of a generator that predicts the G tokens
        of a position together (ImageFolder's two branches at each scale position: 286 positions, not 572).
        Exact and invertible (`unfold`); G = 1 gives the same indices. Needs `codebook_sizes`.
        """
        if self.folded_sizes is not None:
            raise InputError("these codes are already folded")
        if self.codebook_sizes is None:
            raise InputError("Codes.fold() needs codebook_sizes")
        sizes = self.codebook_sizes
        if len(sizes) != self.num_groups:
            raise InputError(f"Codes have {self.num_groups} groups but {len(sizes)} codebook sizes")
        if sum(math.log2(k) for k in sizes) >= 63:
            raise InputError(f"the product of codebook sizes {sizes} does not fit in int64")
        folded = torch.zeros_like(self.indices[..., 0])
        for g, k in enumerate(sizes):
            folded = folded * k + self.indices[..., g]
        return Codes(folded[..., None], self.lengths, self.grid, self.scales, (math.prod(sizes),), self.model,
                     folded_sizes=sizes, fingerprint=self.fingerprint)

    def unfold(self) -> "Codes":
        """The inverse of `fold`: ``[B, T, 1]`` product indices -> ``[B, T, G]`` group indices."""
        if self.folded_sizes is None:
            raise InputError("these codes are not folded (Codes.fold() makes folded codes)")
        if self.num_groups != 1:
            raise InputError(f"folded codes have one group, got {self.num_groups}")
        rest, parts = self.indices[..., 0], []
        for k in reversed(self.folded_sizes):
            parts.append(torch.remainder(rest, k))
            rest = torch.div(rest, k, rounding_mode="floor")
        return Codes(torch.stack(parts[::-1], dim=-1), self.lengths, self.grid, self.scales, self.folded_sizes,
                     self.model, fingerprint=self.fingerprint)

    # ---- validation ----
    def validate(self, codebook_sizes: Sequence[int] | None = None, max_tokens: int | None = None) -> "Codes":
        """Check dtype, rank, index ranges and lengths; raise `InputError` naming the first problem."""
        idx = self.indices
        if not isinstance(idx, Tensor):
            raise InputError(f"Codes.indices must be a torch.Tensor, got {type(idx).__name__}")
        if idx.dtype != torch.int64:
            raise InputError(f"Codes.indices must be int64, got {idx.dtype}")
        if idx.dim() != 3:
            raise InputError(f"Codes.indices must have shape [B, T, G], got {tuple(idx.shape)}")
        if idx.shape[0] == 0 or idx.shape[1] == 0:
            raise InputError(f"Codes.indices is empty: shape {tuple(idx.shape)}")
        if self.lengths is not None:
            lens = self.lengths
            if not isinstance(lens, Tensor) or lens.dtype.is_floating_point or lens.dtype == torch.bool \
                    or lens.is_complex():
                raise InputError(f"Codes.lengths must be an integer tensor, got "
                                 f"{getattr(lens, 'dtype', type(lens).__name__)}")
            if lens.dim() != 1 or lens.shape[0] != idx.shape[0]:
                raise InputError(f"Codes.lengths must have shape [{idx.shape[0]}], got {tuple(lens.shape)}")
            if int(lens.min()) < 1 or int(lens.max()) > idx.shape[1]:
                raise InputError(
                    f"Codes.lengths must be in [1, {idx.shape[1]}], got [{int(lens.min())}, {int(lens.max())}]"
                )
        if self.folded_sizes is not None and codebook_sizes is not None and len(codebook_sizes) != idx.shape[2]:
            raise InputError("these codes are folded (one product index per position); call codes.unfold() first")
        sizes = tuple(codebook_sizes) if codebook_sizes is not None else self.codebook_sizes
        if sizes is not None:
            if len(sizes) != idx.shape[2]:
                raise InputError(f"Codes have {idx.shape[2]} groups but the tokenizer has {len(sizes)} codebooks")
            for g, k in enumerate(sizes):
                col = idx[..., g]
                if self.lengths is not None:  # padding past a length is ignored
                    valid = torch.arange(idx.shape[1], device=idx.device)[None] < self.lengths[:, None].to(idx.device)
                    col = col[valid]
                if col.numel() and (int(col.min()) < 0 or int(col.max()) >= k):
                    raise InputError(
                        f"Codes group {g} has indices in [{int(col.min())}, {int(col.max())}], outside the "
                        f"codebook of size {k}: these codes were not made by this tokenizer"
                    )
        if max_tokens is not None and idx.shape[1] > max_tokens:
            raise InputError(f"Codes have {idx.shape[1]} tokens per image, this tokenizer takes at most {max_tokens}")
        if self.scales is not None and sum(self.scales) != idx.shape[1]:
            raise InputError(f"Codes.scales sum to {sum(self.scales)} but there are {idx.shape[1]} tokens")
        if self.grid is not None and self.grid[0] * self.grid[1] != idx.shape[1]:
            raise InputError(f"Codes.grid {self.grid} does not hold {idx.shape[1]} tokens")
        if self.folded_sizes is not None and (idx.shape[2] != 1 or (
                self.codebook_sizes is not None and self.codebook_sizes != (math.prod(self.folded_sizes),))):
            raise InputError(f"folded codes must have one group of size {math.prod(self.folded_sizes)}; "
                             "unfold() them first")
        return self

    # ---- files ----
    def save(self, path: str | os.PathLike) -> None:
        """Write a safetensors file (indices, lengths; layout as JSON metadata). Written atomically."""
        from safetensors.torch import save_file


        tensors = {"indices": self.indices.detach().cpu().contiguous()}
        if self.lengths is not None:
            tensors["lengths"] = self.lengths.detach().cpu().to(torch.int64).contiguous()
        layout = {"grid": self.grid, "scales": self.scales, "codebook_sizes": self.codebook_sizes, "model": self.model}
        if self.folded_sizes is not None:
            layout["folded_sizes"] = self.folded_sizes
        if self.fingerprint is not None:
            layout["fingerprint"] = self.fingerprint
        meta = {"format": "zoo.codes/1", "layout": json.dumps(layout)}
        from .atomic import atomic_file

        with atomic_file(path) as tmp:
            save_file(tensors, str(tmp), metadata=meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Codes":
        """Read a file written by `save`; a file of another kind or a corrupt one raises `InputError`."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise InputError(f"codes file not found: {path}")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                if meta.get("format") != "zoo.codes/1":
                    raise InputError(f"{path} is not a codes file written by `zoo encode` (no zoo.codes metadata)")
                indices = f.get_tensor("indices")
                lengths = f.get_tensor("lengths") if "lengths" in f.keys() else None
        except InputError:
            raise
        except Exception as exc:  # safetensors raises its own error types for corrupt headers
            raise InputError(f"cannot read codes file {path}: {exc}") from None
        layout = _read_layout(meta.get("layout"), path)
        if indices.dtype != torch.int64 or indices.dim() != 3:
            raise InputError(f"{path}: indices must be int64 [B, T, G], got {indices.dtype} {tuple(indices.shape)}")
        codes = cls(indices, lengths, **layout)
        return codes.validate()


# --------------------------------------------------------------------------------------------------------------
# Latents (continuous autoencoders)
# --------------------------------------------------------------------------------------------------------------
@dataclass
class Latents:
    """What `encode` gives for a continuous autoencoder (``spec.continuous``; e.g. an SD VAE): no codes, latents.

    Attributes:
        values: float ``[B, C, h, w]``: the deterministic latents (a VAE's posterior mode), before any scaling
            factor a diffusion model applies.
        model, fingerprint: as in `Codes`: who made them; `decode` refuses another model's latents.
    """

    values: Tensor
    model: str | None = None
    fingerprint: str | None = None

    @property
    def batch_size(self) -> int:
        return int(self.values.shape[0])

    def bits(self) -> Tensor:
        """Bits per image if the latents are stored as float16 (16 x C x h x w), float64 ``[B]``.

        Not comparable with `Codes.bits` (an entropy-free fixed-rate code): reports flag the row."""
        per_image = 16 * math.prod(self.values.shape[1:])
        return torch.full((self.batch_size,), float(per_image), dtype=torch.float64)

    def to(self, device: torch.device | str) -> "Latents":
        return Latents(self.values.to(device), self.model, self.fingerprint)

    def __getitem__(self, item: int | slice) -> "Latents":
        if isinstance(item, int):
            item = slice(item, item + 1 if item != -1 else None)
        return Latents(self.values[item], self.model, self.fingerprint)


_LAYOUT_KEYS = ("grid", "scales", "codebook_sizes", "model", "folded_sizes", "fingerprint")


def _read_layout(text: Any, path: Path) -> dict[str, Any]:
    """The ``layout`` metadata of a codes file, checked by type; `InputError` naming the bad entry."""
    where = f"{path}: codes layout metadata"
    if not isinstance(text, str):
        raise InputError(f"{where} is missing")
    try:
        layout = json.loads(text)
    except ValueError:
        raise InputError(f"{where} is not JSON (the file was changed after `zoo encode` wrote it)") from None
    if not isinstance(layout, dict):
        raise InputError(f"{where} must be a JSON object, got {type(layout).__name__}")
    unknown = sorted(set(layout) - set(_LAYOUT_KEYS))
    if unknown:
        raise InputError(f"{where} has unknown entries {unknown}")

    def ints(key: str, n: int | None = None) -> tuple[int, ...] | None:
        v = layout.get(key)
        if v is None:
            return None
        if not isinstance(v, list) or not v or (n is not None and len(v) != n) or not all(
                isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= 2 ** 40 for x in v):
            size = f"{n} " if n else ""
            raise InputError(f"{where}: {key!r} must be a list of {size}positive integers, got {v!r}")
        return tuple(v)

    out: dict[str, Any] = {"grid": ints("grid", 2), "scales": ints("scales"),
                           "codebook_sizes": ints("codebook_sizes"), "folded_sizes": ints("folded_sizes")}
    for key in ("model", "fingerprint"):
        v = layout.get(key)
        if v is not None and not isinstance(v, str):
            raise InputError(f"{where}: {key!r} must be a string, got {v!r}")
        out[key] = v
    return out


# --------------------------------------------------------------------------------------------------------------
# Spec
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TokenizerSpec:
    """What a tokenizer takes and gives, for users and for generic code (eval, training, generators)."""

    family: str
    image_size: int
    token_layout: str  # "2d" (grid), "1d" (sequence), "multiscale" (VAR-style scales)
    max_tokens: int
    codebook_sizes: tuple[int, ...]
    min_tokens: int | None = None
    grid: tuple[int, int] | None = None
    scales: tuple[int, ...] | None = None
    token_choices: tuple[int, ...] | None = None  # allowed budgets when not every count in [min, max] is
    code_dim: int | None = None
    eval_crop: str = "center"  # the official evaluation crop: a zoo.images.CROP_PROTOCOLS name ("center", "adm", ...)
    continuous: bool = False  # True: an autoencoder without a quantizer (encode gives `Latents`, not `Codes`)

    @property
    def num_groups(self) -> int:
        return len(self.codebook_sizes)

    @property
    def variable_length(self) -> bool:
        return (self.min_tokens or self.max_tokens) != self.max_tokens

    @property
    def bits_per_token(self) -> int:
        """Bits of one token: Σ ceil(log2 K) over groups; continuous models: 16 x code_dim (float16 latents)."""
        if self.continuous:
            return 16 * (self.code_dim or 0)
        return sum(math.ceil(math.log2(k)) for k in self.codebook_sizes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "family": self.family, "image_size": self.image_size, "token_layout": self.token_layout,
            "min_tokens": self.min_tokens or self.max_tokens, "max_tokens": self.max_tokens,
            "token_choices": list(self.token_choices) if self.token_choices else None,
            "groups": self.num_groups, "codebook_sizes": list(self.codebook_sizes), "code_dim": self.code_dim,
            "grid": list(self.grid) if self.grid else None, "scales": list(self.scales) if self.scales else None,
            "bits_per_token": self.bits_per_token, "eval_crop": self.eval_crop, "continuous": self.continuous,
            "bytes_per_image_at_max": self.max_tokens * self.bits_per_token / 8,
        }


# --------------------------------------------------------------------------------------------------------------
# Image validation
# --------------------------------------------------------------------------------------------------------------
def check_images(images: Any, image_size: int | None = None) -> Tensor:
    """Validate a batch at the public boundary and return it as float ``[B, 3, H, W]``.

    Raises `InputError` for a non-tensor, wrong rank or channels, an integer or non-finite tensor, values outside
    [0, 1], an empty batch, or (with `image_size`) a resolution the model cannot take.
    """
    if not isinstance(images, Tensor):
        raise InputError(
            f"images must be a float tensor [B, 3, H, W] in [0, 1], got {type(images).__name__}; "
            "use zoo.images.load_images(...) to read files, PIL images or arrays"
        )
    if images.dim() == 3:
        raise InputError(f"images must be a batch [B, 3, H, W]; got one image {tuple(images.shape)}: "
                         "add a batch dimension with images[None]")
    if images.dim() != 4:
        raise InputError(f"images must have shape [B, 3, H, W], got {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise InputError("images is an empty batch (B = 0)")
    if images.shape[1] != 3:
        hint = " (channels-last? use images.permute(0, 3, 1, 2))" if images.shape[-1] == 3 else ""
        raise InputError(f"images must have 3 RGB channels in dim 1, got shape {tuple(images.shape)}{hint}")
    if not images.is_floating_point():
        raise InputError(f"images must be a float tensor in [0, 1], got {images.dtype} "
                         "(for uint8 pixels divide by 255: images.float() / 255)")
    if not torch.isfinite(images).all():
        raise InputError("images contain NaN or infinite values")
    lo, hi = float(images.detach().min()), float(images.detach().max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        hint = " (looks like [-1, 1]: use (x + 1) / 2)" if lo < 0 and lo >= -1 - 1e-3 else ""
        hint = hint or (" (looks like [0, 255]: divide by 255)" if hi > 1.5 else "")
        raise InputError(f"images must have values in [0, 1], got [{lo:.3g}, {hi:.3g}]{hint}")
    if image_size is not None and tuple(images.shape[-2:]) != (image_size, image_size):
        raise InputError(
            f"this tokenizer takes {image_size}x{image_size} images, got {images.shape[-2]}x{images.shape[-1]}; "
            f"use zoo.images.load_images(..., size={image_size}) (the evaluation protocol's resize and crop)"
        )
    return images


# --------------------------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------------------------
def cpu_has_native(precision: str) -> bool:
    """Whether oneDNN runs `precision` ("bf16" / "fp16") natively on this CPU, rather than emulating it slowly."""
    check = {"bf16": "_is_mkldnn_bf16_supported", "fp16": "_is_mkldnn_fp16_supported"}[precision]
    try:
        return bool(getattr(torch.ops.mkldnn, check)())
    except (AttributeError, RuntimeError):
        return False


class Tokenizer(nn.Module):
    """Base class of every family.

    A family subclass sets `family`, takes its config dataclass in ``__init__`` and implements `spec`,
    `_encode(images, num_tokens)` (images float ``[B,3,H,W]`` in [0,1], already validated) and `_decode(codes)`
    (returns raw images, ``[B,3,H,W]``, [0,1] scale, not clamped).
    """

    family: ClassVar[str] = ""
    # Submodules (dotted names) that `compile()` compiles: the hot path of encode/decode. None: every direct child
    # module with parameters, except codebooks and quantizers (small, and their index logic stays eager).
    compile_modules: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config
        self.name: str | None = None  # the registered name, set by zoo.load
        self._fingerprint: tuple[tuple, str] | None = None  # (parameter identity key, fingerprint)

    # ---- to implement ----
    @property
    def spec(self) -> TokenizerSpec:
        raise NotImplementedError

    def _encode(self, images: Tensor, num_tokens: int | str | None) -> Codes:
        raise NotImplementedError

    def _decode(self, codes: Codes) -> Tensor:
        raise NotImplementedError

    def _encode_latents(self, images: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not implement the latent API (_encode_latents)")

    def _quantize(self, latents: Tensor) -> tuple[Codes, Tensor]:
        raise NotImplementedError(f"{type(self).__name__} does not implement the latent API (_quantize)")

    def _decode_latents(self, quantized: Tensor, **kwargs: Any) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not implement the latent API (_decode_latents)")

    # ---- public API ----
    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        for p in self.parameters():
            return p.dtype
        return torch.float32

    @property
    def fingerprint(self) -> str:
        """16 hex digits identifying this model: a sha256 of its family, config and weights (every tensor's name,
        shape and values: all of them for small tensors, an even sample of 65536 for large ones, as float32).

        Stamped on the codes it makes and checked by `decode`, so codes never decode silently with another model,
        named or not. Moving the model (``.to(device/dtype)``) keeps it; changing weights in place changes it.
        """
        key = self._identity_key()
        cached = getattr(self, "_fingerprint", None)
        if cached is None or cached[0] != key:
            cached = self._fingerprint = (key, weights_fingerprint(self.family, self.config, self.state_dict()))
        return cached[1]

    def _identity_key(self) -> tuple:
        return tuple((id(t), t._version) for t in list(self.parameters()) + list(self.buffers()))

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> "Tokenizer":
        """nn.Module's device/dtype moves, keeping the fingerprint of the weights as they were."""
        cached = getattr(self, "_fingerprint", None)
        valid = cached is not None and cached[0] == self._identity_key()
        out = super()._apply(fn, *args, **kwargs)
        if valid:
            self._fingerprint = (self._identity_key(), cached[1])
        return out

    def encode(self, images: Tensor, num_tokens: int | str | None = None, **kwargs: Any) -> Codes | Latents:
        """Tokenize images float ``[B,3,H,W]`` in [0,1] -> `Codes` (continuous models, `spec.continuous`: `Latents`).

        `num_tokens` picks a budget for variable-length families (see `spec`); fixed-length ones refuse any
        other count than theirs.
        """
        spec = self.spec
        images = check_images(images, spec.image_size)
        self._check_budget(num_tokens)
        with torch.no_grad(), self._autocast("encode"):
            codes = self._encode(self._input_layout(images.to(self.device, self.dtype)), num_tokens, **kwargs)
        if isinstance(codes, Latents):
            codes.values = self._full_precision(codes.values, "encode")
        return self._stamp(codes)

    def _stamp(self, codes: Codes | Latents) -> Codes | Latents:
        """Fill what a family's codes leave unset: the model's name, codebook sizes and fingerprint."""
        if codes.model is None:
            codes.model = self.name or self.family
        if isinstance(codes, Latents):
            if codes.fingerprint is None:
                codes.fingerprint = self.fingerprint
            return codes
        if codes.codebook_sizes is None:
            codes.codebook_sizes = self.spec.codebook_sizes
        if codes.fingerprint is None:
            codes.fingerprint = self.fingerprint
        return codes

    def decode(self, codes: Codes | Latents, clamp: bool = True) -> Tensor:
        """`Codes` (continuous models: `Latents`) -> images float ``[B,3,H,W]``; clamped to [0,1] unless
        `clamp=False` (raw model output)."""
        spec = self.spec
        if spec.continuous:
            return self._decode_continuous(codes, clamp)
        if not isinstance(codes, Codes):
            raise InputError(f"decode takes a zoo.Codes, got {type(codes).__name__}")
        codes.validate(spec.codebook_sizes, spec.max_tokens)
        if codes.model is not None and self.name is not None and codes.model not in (self.name, self.family):
            raise InputError(f"these codes were made by {codes.model!r}; decode them with that model, not {self.name!r}")
        if codes.fingerprint is not None and codes.fingerprint != self.fingerprint:
            raise InputError(
                f"these codes were made by another model (fingerprint {codes.fingerprint}, made by "
                f"{codes.model or 'an unnamed model'}) than this {self.name or self.family} (fingerprint "
                f"{self.fingerprint}): decode them with the model (folder and weights) that encoded them")
        self._check_layout(codes)
        self._check_decodable(codes)
        with torch.no_grad(), self._autocast("decode"):
            images = self._decode(codes.to(self.device))
        images = self._full_precision(images, "decode")
        return images.clamp(0.0, 1.0) if clamp else images

    def _decode_continuous(self, latents: Latents, clamp: bool) -> Tensor:
        if not isinstance(latents, Latents):
            raise InputError(f"{self.name or self.family} is a continuous autoencoder: decode takes the zoo.Latents "
                             f"its encode returns, got {type(latents).__name__}")
        if latents.fingerprint is not None and latents.fingerprint != self.fingerprint:
            raise InputError(f"these latents were made by another model ({latents.model or 'unnamed'}, fingerprint "
                             f"{latents.fingerprint}) than this {self.name or self.family} ({self.fingerprint})")
        with torch.no_grad(), self._autocast("decode"):
            images = self._decode_latents(latents.values.to(self.device, self.dtype))
        images = self._full_precision(images, "decode")
        return images.clamp(0.0, 1.0) if clamp else images

    def reconstruct(self, images: Tensor, num_tokens: int | str | None = None, clamp: bool = True,
                    **kwargs: Any) -> Tensor:
        """encode then decode: float ``[B,3,H,W]`` in [0,1] -> same shape."""
        return self.decode(self.encode(images, num_tokens=num_tokens, **kwargs), clamp=clamp)

    # ---- the differentiable latent path (autograd on; docs/latents.md lists every family's shapes) ----
    def encode_latents(self, images: Tensor) -> Tensor:
        """Images float ``[B,3,H,W]`` in [0,1] -> pre-quantization latents (the family's layout, e.g.
        ``[B, C, h, w]`` for 2-D grids, ``[B, N, D]`` for 1-D token sequences), with gradients.

        ``decode_latents(quantize(encode_latents(x))[1])`` equals ``decode(encode(x), clamp=False)``.
        """
        images = check_images(images, self.spec.image_size)
        return self._encode_latents(images.to(self.device, self.dtype))

    def quantize(self, latents: Tensor) -> tuple[Codes, Tensor]:
        """Pre-quantization latents -> (`Codes`, quantized latents of the same shape).

        The quantized latents carry the straight-through estimator: their forward value is the code vectors,
        their gradient flows to `latents` unchanged. Runs the family's quantizer as training does (in train mode
        an EMA codebook updates); no quantizer dropout. Continuous models (``spec.continuous``) have no quantizer.
        """
        if self.spec.continuous:
            raise InputError(f"{self.name or self.family} is a continuous autoencoder: it has no quantizer; "
                             "decode_latents(encode_latents(images)) is its differentiable path")
        if not isinstance(latents, Tensor) or not latents.is_floating_point():
            raise InputError(f"quantize takes a float tensor of latents, got {getattr(latents, 'dtype', type(latents))}")
        codes, quantized = self._quantize(latents)
        return self._stamp(codes), quantized

    def decode_latents(self, quantized: Tensor, **kwargs: Any) -> Tensor:
        """Quantized latents (as `quantize` returns them; continuous models: `encode_latents`' output) -> raw
        images ``[B,3,H,W]`` ([0,1] scale, not clamped), with gradients."""
        if not isinstance(quantized, Tensor) or not quantized.is_floating_point():
            raise InputError(f"decode_latents takes a float tensor, got {getattr(quantized, 'dtype', type(quantized))}")
        return self._decode_latents(quantized, **kwargs)

    # ---- checks shared by families ----
    def _check_budget(self, num_tokens: int | str | None) -> None:
        spec = self.spec
        if num_tokens is None:
            return
        if isinstance(num_tokens, str):
            if num_tokens != "auto" or not spec.variable_length:
                raise InputError(f"num_tokens={num_tokens!r} is not supported by {self.family}")
            return
        lo = spec.min_tokens or spec.max_tokens
        if not spec.variable_length and num_tokens != spec.max_tokens:
            raise InputError(
                f"{self.name or self.family} always uses {spec.max_tokens} tokens; num_tokens={num_tokens} is not "
                "possible (variable-length families: onedpiece-*, alit-*)"
            )
        if not lo <= num_tokens <= spec.max_tokens:
            raise InputError(f"num_tokens must be in [{lo}, {spec.max_tokens}], got {num_tokens}")
        if spec.token_choices and num_tokens not in spec.token_choices:
            raise InputError(f"num_tokens must be one of {list(spec.token_choices)}, got {num_tokens}")

    def _check_layout(self, codes: Codes) -> None:
        """The codes' token layout (2-D grid, scales) must be this model's, else the image would come out wrong."""
        spec = self.spec
        if codes.grid is not None and spec.grid is not None and tuple(codes.grid) != tuple(spec.grid):
            raise InputError(f"codes are a {codes.grid[0]}x{codes.grid[1]} grid but {self.name or self.family} "
                             f"decodes a {spec.grid[0]}x{spec.grid[1]} grid")
        if codes.grid is not None and spec.grid is None and spec.token_layout != "2d":
            raise InputError(f"codes are a 2-D grid {codes.grid} but {self.name or self.family} makes "
                             f"{spec.token_layout} tokens")
        if codes.scales is not None and spec.scales is not None and \
                tuple(codes.scales) != tuple(spec.scales)[:len(codes.scales)]:  # a prefix of the scales decodes
            raise InputError(f"codes have scales {list(codes.scales)} but the scale schedule of "
                             f"{self.name or self.family} is {list(spec.scales)} (a prefix of it decodes)")

    def _check_decodable(self, codes: Codes) -> None:
        """Families with `token_choices` (multi-scale codes: whole scales) decode those counts only; other
        fixed-length families need all tokens; variable-length ones override to accept prefixes."""
        spec = self.spec
        if spec.token_choices is not None:
            got = set(codes.token_counts().tolist()) | {codes.num_tokens}
            if not got <= set(spec.token_choices):
                raise InputError(f"{self.name or self.family} decodes whole scales: token counts must be one of "
                                 f"{list(spec.token_choices)}, got {sorted(got)}")
            return
        counts = codes.token_counts()
        if not spec.variable_length and (codes.num_tokens != spec.max_tokens or bool((counts != spec.max_tokens).any())):
            raise InputError(
                f"{self.name or self.family} decodes exactly {spec.max_tokens} tokens per image, got "
                f"{sorted(set(counts.tolist()))}"
            )

    # ---- speed ----
    def hot_modules(self) -> dict[str, nn.Module]:
        """The submodules `compile()` compiles, by (dotted) name: `compile_modules`, or by default every direct
        child with parameters that is not a quantizer or an embedding table."""
        if self.compile_modules is not None:
            return {name: self.get_submodule(name) for name in self.compile_modules if _has_module(self, name)}
        return {name: m for name, m in self.named_children()
                if any(True for _ in m.parameters()) and not _is_codebook(m)}

    def compile(self, *args: Any, **kwargs: Any) -> "Tokenizer":
        """Compile the hot path with `torch.compile` (inductor by default; keywords go to `torch.compile`).

        Each module of `hot_modules()` is compiled in place (`nn.Module.compile`): parameter names, the state dict,
        the fingerprint and the codes are unchanged, so compiled and eager models share codes and folders. The
        first call of each input shape compiles (seconds to minutes on a CPU); later calls reuse it. Returns self.
        """
        for module in self.hot_modules().values():
            module.compile(*args, **kwargs)
        return self

    def to_channels_last(self) -> "Tokenizer":
        """Store 4-D weights (convolutions) channels-last, and feed images channels-last, so that convolution stacks
        run in the layout oneDNN / cuDNN prefer. Same values (within float rounding), same codes. Returns self."""
        self.to(memory_format=torch.channels_last)
        self._channels_last = True
        return self

    def set_precision(self, precision: str = "bf16", encode: bool = False) -> "Tokenizer":
        """Run `decode` (with ``encode=True`` also `encode`) under `torch.autocast` in "bf16" or "fp16"; "fp32"
        turns it off (the default). Returns self.

        Decode only keeps the codes bit for bit: `encode` still runs in the weights' precision, so they are the
        fp32 model's codes, and only the images change (by what reduced-precision products change). With
        ``encode=True`` the encoder's features change in their last bits; every quantizer computes its distances
        in fp32, but a feature near a tie between two codes can flip, so a share of the indices differs from the
        fp32 codes, in every family (docs/speed.md, "Precision", measures how many). Weights stay as they are;
        images (and a continuous model's latents) come back in the model's dtype. fp16 can overflow where bf16
        cannot: a non-finite output raises `PrecisionError`. `encode_latents` / `decode_latents` (training) are
        not affected: wrap them in `torch.autocast` yourself.
        """
        if precision not in PRECISIONS:
            raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if PRECISIONS[precision] is None and encode:
            raise InputError("encode=True goes with a reduced precision ('bf16' or 'fp16'), not 'fp32'")
        device_type = self.device.type
        if PRECISIONS[precision] is not None and not torch.amp.is_autocast_available(device_type):
            raise InputError(f"torch.autocast is not available on {device_type}: use precision 'fp32' there")
        if PRECISIONS[precision] is not None and device_type == "cpu" and not cpu_has_native(precision):
            warnings.warn(f"this CPU has no native {precision} kernels (no AVX512-BF16 / AVX512-FP16 / AMX): "
                          f"convolutions and matrix products in {precision} run 50-400x slower than in fp32 here; "
                          "keep fp32 on this CPU (reduced precision pays on a GPU)", stacklevel=2)
        self._precision = (precision, bool(encode))
        return self

    @property
    def precision(self) -> str:
        """What `set_precision` chose: "fp32", or e.g. "bf16 decode" / "bf16 encode+decode"."""
        name, encode = getattr(self, "_precision", ("fp32", False))
        return name if PRECISIONS[name] is None else f"{name} {'encode+decode' if encode else 'decode'}"

    def _reduced(self, stage: str) -> torch.dtype | None:
        """The autocast dtype of `stage` ("encode" / "decode"), None when it runs in the weights' precision."""
        name, encode = getattr(self, "_precision", ("fp32", False))
        return None if stage == "encode" and not encode else PRECISIONS[name]

    def _autocast(self, stage: str) -> contextlib.AbstractContextManager:
        dtype = self._reduced(stage)
        return contextlib.nullcontext() if dtype is None else torch.autocast(self.device.type, dtype=dtype)

    def _full_precision(self, out: Tensor, stage: str) -> Tensor:
        """An output of `stage` run under `_autocast`: refused when it overflowed, else in the model's dtype."""
        if self._reduced(stage) is None:
            return out
        if not bool(torch.isfinite(out).all()):
            fix = ("use set_precision('bf16'), which has fp32's range, or set_precision('fp32')"
                   if self._reduced(stage) == torch.float16 else "run it in fp32 (set_precision('fp32')) to see "
                   "whether the model itself gives them")
            raise PrecisionError(f"{stage} in {self.precision} gave non-finite values (the reduced precision's "
                                 f"range overflowed inside the model): {fix}")
        return out.to(self.dtype)

    def _input_layout(self, images: Tensor) -> Tensor:
        if getattr(self, "_channels_last", False):
            return images.contiguous(memory_format=torch.channels_last)
        return images

    # ---- folders ----
    def save_pretrained(self, directory: str | os.PathLike, **kwargs: Any) -> Path:
        """Write ``config.json`` + ``model.safetensors`` into `directory` (see zoo.loading)."""
        from .loading import save_pretrained

        return save_pretrained(self, directory, **kwargs)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, *, revision: str | None = None,
                        cache_dir: str | os.PathLike | None = None, token: str | bool | None = None,
                        **kwargs: Any) -> "Tokenizer":
        """A folder written by `save_pretrained`, a registered name, or a hub repo ``user/repo`` (as in other
        Hugging Face libraries: `revision` is a branch, tag or commit; `cache_dir` and `token` go to
        huggingface_hub). Other keywords go to `zoo.load` (``device``, ``dtype``, ``checkpoint``, ...)."""
        from .loading import load, load_hub_repo, names_hub_repo

        if names_hub_repo(name_or_path):
            model = load_hub_repo(str(name_or_path), revision=revision, cache_dir=cache_dir, token=token, **kwargs)
        else:
            if revision is not None:
                raise InputError(f"revision= goes with a hub repo 'user/repo', not with {str(name_or_path)!r}")
            model = load(name_or_path, **kwargs)
        if not isinstance(model, cls):
            raise CheckpointError(f"{name_or_path} holds a {type(model).__name__}, not a {cls.__name__}")
        return model

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> dict[str, str]:
        """Push ``config.json`` + ``model.safetensors`` + a model card to the hub (see zoo.hub.push_to_hub)."""
        from .hub import push_to_hub

        return push_to_hub(self, repo_id, **kwargs)

    def extra_repr(self) -> str:
        return f"name={self.name!r}"


class GridTokenizer(Tokenizer):
    """A family whose latents are one map ``[B, D, h, w]`` quantized position by position (VQ, FSQ, LFQ, IBQ).

    Its `quantizer` takes channels-last latents ``[B, h, w, D]``: calling it gives a `QuantizerOutput` (indices
    ``[B, h, w]``, straight-through `quantized` ``[B, h, w, D]``), `quantize` gives the indices alone and `lookup`
    the code vectors ``[..., D]`` of indices. Codes are the h·w positions in row-major order (``grid=(h, w)``).
    The family supplies `_encode_latents` and `_decode_latents`; encode, decode, `_quantize` and the training
    `forward` are these.
    """

    quantizer: nn.Module

    def _quantize(self, latents: Tensor) -> tuple[Codes, Tensor]:
        """``[B, D, h, w]`` -> (codes ``[B, h·w, 1]``, straight-through code vectors ``[B, D, h, w]``)."""
        q = self.quantizer(latents.permute(0, 2, 3, 1))
        return _grid_codes(q.indices), q.quantized.permute(0, 3, 1, 2)

    def _encode(self, images: Tensor, num_tokens: int | None) -> Codes:
        return _grid_codes(self.quantizer.quantize(self._encode_latents(images).permute(0, 2, 3, 1)))

    def _decode(self, codes: Codes) -> Tensor:
        h, w = codes.grid or self.spec.grid
        rows = self.quantizer.lookup(codes.indices[..., 0]).to(self.dtype)  # [B, h·w, D]
        return self._decode_latents(rows.reshape(-1, h, w, rows.shape[-1]).permute(0, 3, 1, 2))

    def forward(self, images: Tensor) -> tuple[Tensor, Any]:
        """Training pass: images in [0, 1] -> (raw reconstruction ``[B, 3, H, W]``, the quantizer's
        `QuantizerOutput` with its losses; its `quantized` is channels-last ``[B, h, w, D]``)."""
        q = self.quantizer(self._encode_latents(images).permute(0, 2, 3, 1))
        return self._decode_latents(q.quantized.permute(0, 3, 1, 2)), q


def _grid_codes(indices: Tensor) -> Codes:
    """Indices ``[B, h, w]`` -> `Codes` ``[B, h·w, 1]`` on an (h, w) grid."""
    B, h, w = indices.shape
    return Codes(indices.reshape(B, h * w, 1), grid=(h, w))


def _has_module(root: nn.Module, name: str) -> bool:
    try:
        root.get_submodule(name)
    except AttributeError:
        return False
    return True


def _is_codebook(module: nn.Module) -> bool:
    """Quantizers and embedding tables: their work is a lookup, not worth compiling."""
    return isinstance(module, nn.Embedding) or type(module).__module__.startswith("zoo.quant")
