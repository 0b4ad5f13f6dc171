"""Your own tokenizer behind the zoo's interface, without writing a family: `zoo.wrap(model, encode=..., decode=...)`.

A wrapped tokenizer evaluates, reconstructs and encodes like a registered one (``zoo eval -m my_module:build``).
It cannot be saved as a zoo folder: there is no family to rebuild it from; docs/your-tokenizer.md shows how to
register one when you want that.
"""
from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from .api import Codes, Tokenizer, TokenizerSpec
from .errors import InputError

__all__ = ["wrap", "WrappedTokenizer", "load_callable"]


@dataclass
class WrapConfig:
    """What the zoo needs to know of a wrapped tokenizer (the token layout is read off one probe encode)."""

    image_size: int
    codebook_sizes: tuple[int, ...]
    name: str = "wrapped"


class WrappedTokenizer(Tokenizer):
    """A `Tokenizer` around user functions.

    encode: images float ``[B, 3, S, S]`` in [0, 1] -> int64 indices ``[B, h, w]`` (a 2-D grid), ``[B, T]``
        (a sequence) or ``[B, T, G]`` (G groups); decode: indices of that same shape -> images ``[B, 3, S, S]`` in
        [0, 1] scale. encode_latents / quantize / decode_latents (optional): the differentiable path
        (`Tokenizer.encode_latents`); quantize returns ``(indices, quantized)``.
    """

    family = "wrapped"

    def __init__(self, config: WrapConfig, model: nn.Module | None, encode: Callable[[Tensor], Tensor],
                 decode: Callable[[Tensor], Tensor], encode_latents: Callable | None = None,
                 quantize: Callable | None = None, decode_latents: Callable | None = None) -> None:
        super().__init__(config)
        self.model = model if isinstance(model, nn.Module) else None  # moved by .to(), part of the fingerprint
        self._fns = {"encode": encode, "decode": decode, "encode_latents": encode_latents, "quantize": quantize,
                     "decode_latents": decode_latents}
        self.name = config.name
        self._layout: tuple[int, ...] | None = None  # the shape of one image's indices, from a probe encode

    # ---- layout, read once ----
    def _index_layout(self) -> tuple[int, ...]:
        if self._layout is None:
            probe = torch.full((1, 3, self.config.image_size, self.config.image_size), 0.5, device=self.device)
            with torch.no_grad():
                self._layout = tuple(self._indices(self._fns["encode"](probe), 1).shape[1:])
        return self._layout

    def _indices(self, out: Any, batch: int) -> Tensor:
        if not isinstance(out, Tensor) or out.is_floating_point() or out.dim() not in (2, 3, 4) or out.shape[0] != batch:
            raise InputError(f"{self.name}: encode must return integer indices [B, T], [B, h, w] or [B, T, G] "
                             f"for a batch of {batch}, got {getattr(out, 'dtype', type(out).__name__)} "
                             f"{tuple(getattr(out, 'shape', ()))}")
        return out.long()

    @property
    def spec(self) -> TokenizerSpec:
        layout = self._index_layout()
        sizes = self.config.codebook_sizes
        if len(layout) == 2 and len(sizes) == 1:  # [h, w]: a 2-D grid
            h, w = layout
            return TokenizerSpec(family=self.family, image_size=self.config.image_size, token_layout="2d",
                                 max_tokens=h * w, grid=(h, w), codebook_sizes=sizes)
        groups = layout[1] if len(layout) == 2 else 1
        if groups != len(sizes):
            raise InputError(f"{self.name}: encode gives {groups} index groups per token but "
                             f"{len(sizes)} codebook sizes were given")
        return TokenizerSpec(family=self.family, image_size=self.config.image_size, token_layout="1d",
                             max_tokens=layout[0], codebook_sizes=sizes)

    # ---- encode / decode ----
    def _to_codes(self, indices: Tensor) -> Codes:
        B, spec = indices.shape[0], self.spec
        if spec.grid is not None:
            return Codes(indices.reshape(B, -1, 1), grid=spec.grid)
        return Codes(indices.reshape(B, spec.max_tokens, spec.num_groups))

    def _from_codes(self, codes: Codes) -> Tensor:
        return codes.indices.reshape(codes.batch_size, *self._index_layout())

    def _encode(self, images: Tensor, num_tokens: int | None) -> Codes:
        return self._to_codes(self._indices(self._fns["encode"](images), images.shape[0]))

    def _decode(self, codes: Codes) -> Tensor:
        return self._fns["decode"](self._from_codes(codes))

    # ---- the differentiable path, when given ----
    def _need(self, name: str) -> Callable:
        fn = self._fns[name]
        if fn is None:
            raise NotImplementedError(f"{self.name} was wrapped without {name}=...: pass encode_latents=, quantize= "
                                      "and decode_latents= to zoo.wrap for the differentiable path")
        return fn

    def _encode_latents(self, images: Tensor) -> Tensor:
        return self._need("encode_latents")(images)

    def _quantize(self, latents: Tensor) -> tuple[Codes, Tensor]:
        indices, quantized = self._need("quantize")(latents)
        return self._to_codes(self._indices(indices, latents.shape[0])), quantized

    def _decode_latents(self, quantized: Tensor, **kwargs: Any) -> Tensor:
        return self._need("decode_latents")(quantized, **kwargs)

    def save_pretrained(self, directory: Any, **kwargs: Any) -> Any:
        raise InputError(f"{self.name} is a wrapped tokenizer: it has no family to be rebuilt from, so it cannot be "
                         "saved as a zoo folder; register it as a family (docs/your-tokenizer.md) to save and push it")

    push_to_hub = save_pretrained


def wrap(model: Any = None, *, encode: Callable[[Tensor], Tensor] | None = None,
         decode: Callable[[Tensor], Tensor] | None = None, image_size: int, codebook_size: int | Sequence[int],
         name: str = "wrapped", encode_latents: Callable | None = None, quantize: Callable | None = None,
         decode_latents: Callable | None = None) -> WrappedTokenizer:
    """A zoo `Tokenizer` around your model: ``zoo.wrap(net, encode=net.tokenize, decode=net.detokenize,
    image_size=256, codebook_size=1024)``.

    model: your `nn.Module` (moved with ``.to(device)``, part of the fingerprint) or any object; without `encode` /
        `decode`, its own ``encode`` / ``decode`` methods are used (any object with those two satisfies the
        protocol).
    encode: images float ``[B, 3, image_size, image_size]`` in [0, 1] -> int64 indices ``[B, h, w]``, ``[B, T]`` or
        ``[B, T, G]``; decode: those indices -> images in [0, 1] scale (clamping is the zoo's).
    codebook_size: K, or one K per group for ``[B, T, G]`` indices.
    """
    encode = encode or getattr(model, "encode", None)
    decode = decode or getattr(model, "decode", None)
    if not callable(encode) or not callable(decode):
        raise InputError("zoo.wrap needs encode= and decode= callables (or a model with encode and decode methods)")
    sizes = (codebook_size,) if isinstance(codebook_size, int) else tuple(int(k) for k in codebook_size)
    if not sizes or any(k < 2 for k in sizes) or int(image_size) < 1:
        raise InputError(f"zoo.wrap: codebook_size must be >= 2 and image_size >= 1, got {codebook_size}, {image_size}")
    tok = WrappedTokenizer(WrapConfig(int(image_size), sizes, name), model, encode, decode, encode_latents, quantize,
                           decode_latents)
    return tok.eval()


_CALLABLE = re.compile(r"(?P<target>[^:]+):(?P<attr>[A-Za-z_][\w.]*)")


def load_callable(target: str) -> Tokenizer | None:
    """``my_pkg.my_module:build`` or ``path/to/file.py:build`` -> the `Tokenizer` that `build()` returns; None when
    `target` is not of that form."""
    m = _CALLABLE.fullmatch(target)
    if m is None or (not m["target"].endswith(".py") and not re.fullmatch(r"[A-Za-z_][\w.]*", m["target"])):
        return None
    where = m["target"]
    try:
        if where.endswith(".py"):
            path = Path(where).resolve()
            if not path.is_file():
                raise InputError(f"{target}: no file {where}")
            module_name = f"zoo_user_{path.stem}_{abs(hash(str(path)))}"
            spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except ImportError as exc:
        raise InputError(f"{target}: cannot import {where} ({exc})") from None
    obj: Any = module
    for part in m["attr"].split("."):
        if not hasattr(obj, part):
            raise InputError(f"{target}: {where} has no {m['attr']!r}")
        obj = getattr(obj, part)
    model = obj() if callable(obj) and not isinstance(obj, Tokenizer) else obj
    if not isinstance(model, Tokenizer):
        raise InputError(f"{target} gave a {type(model).__name__}, not a zoo.Tokenizer: return zoo.wrap(your_model, "
                         "encode=..., decode=..., image_size=..., codebook_size=...) from it")
    return model
