"""The same palette VQ registered as a zoo family (docs/your-tokenizer.md, "Register it as a family").

A family is a config dataclass, a `zoo.Tokenizer` subclass and a `FamilySpec` (how to build it and how to convert
the official checkpoint); a named model is a `ModelEntry`. Once registered, everything else of the zoo works: saved
folders (`save_pretrained` / `zoo.load(folder)`), the hub, `zoo eval -m NAME`, the CLI.

    python examples/my_family.py
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

import zoo
import zoo.images
from zoo import Codes, Tokenizer, TokenizerSpec
from zoo.registry import FamilySpec, ModelEntry, register_family, register_model

sys.path.insert(0, str(Path(__file__).parent))
from my_tokenizer import PaletteVQ  # noqa: E402  (the network itself: your nn.Module)


@dataclass
class PaletteConfig:  # every size the model is built from; config.json stores it
    image_size: int = 256
    patch: int = 8
    levels: int = 4


class PaletteTokenizer(Tokenizer):
    family = "palette"

    def __init__(self, config: PaletteConfig) -> None:
        super().__init__(config)
        self.net = PaletteVQ(config.patch, config.levels)

    @property
    def spec(self) -> TokenizerSpec:
        side = self.config.image_size // self.config.patch
        return TokenizerSpec(family=self.family, image_size=self.config.image_size, token_layout="2d",
                             max_tokens=side * side, grid=(side, side), codebook_sizes=(self.config.levels ** 3,),
                             code_dim=3)

    # the differentiable path (autograd on): latents [B, 3, h, w] -> (codes, quantized) -> images
    def _encode_latents(self, images: Tensor) -> Tensor:
        return self.net.encode_latents(images)

    def _quantize(self, latents: Tensor) -> tuple[Codes, Tensor]:
        indices, quantized = self.net.quantize(latents)
        B, h, w = indices.shape
        return Codes(indices.reshape(B, h * w, 1), grid=(h, w)), quantized

    def _decode_latents(self, quantized: Tensor) -> Tensor:
        return self.net.decode_latents(quantized)

    # encode / decode (run under no_grad by the base class, which also validates inputs and codes)
    def _encode(self, images: Tensor, num_tokens: int | None) -> Codes:
        return self._quantize(self._encode_latents(images))[0]

    def _decode(self, codes: Codes) -> Tensor:
        h, w = codes.grid
        return self.net.decode(codes.indices[..., 0].reshape(-1, h, w))


def convert(official: dict, config: PaletteConfig) -> dict:
    """The official checkpoint's keys -> ours (a pure function; here the release calls it `palette`)."""
    return {"net.codebook": official["palette"]}


def config_from_official(official: dict | None, state_dict: dict, **overrides) -> PaletteConfig:
    levels = round(state_dict["palette"].shape[0] ** (1 / 3))
    return PaletteConfig(**{"levels": levels, **(official or {}), **overrides})


register_family(FamilySpec(
    name="palette", tokenizer_cls=PaletteTokenizer, config_cls=PaletteConfig, convert=convert,
    config_from_official=config_from_official, extract=lambda obj: (obj, None),
    description="8x8 patch means, nearest of a fixed RGB palette (the docs' example family)",
))
register_model(ModelEntry(name="palette-64", family="palette", config={"levels": 4},
                          description="64-colour palette, 32x32 tokens at 256 px"), overwrite=True)


if __name__ == "__main__":
    official = {"palette": PaletteVQ(8, 4).codebook.detach().clone()}  # stands for a released file
    tok = zoo.from_official("palette", official)
    folder = tok.save_pretrained("palette-folder")
    again = zoo.load(folder)  # a zoo folder: config.json + model.safetensors (the family must be registered)
    images = zoo.images.load_images([str(Path(__file__).parent / "coffee.jpg")], size=256)
    assert torch.equal(again.encode(images).indices, tok.encode(images).indices)
    print(f"{again.family}: {again.spec.max_tokens} tokens, saved in {folder}")
