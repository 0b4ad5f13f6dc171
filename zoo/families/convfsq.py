"""Conv-FSQ: a compact convolutional autoencoder with finite scalar quantization (the zoo's embedded default).

An image is mapped by a convolutional encoder that works mostly at 1/4 and 1/8 of its side (pixel unshuffle
instead of strided convolutions, no normalisation layers) to a grid of D-channel latents, one per f x f patch.
Finite scalar quantization (Mentzer et al., 2023) rounds each channel to a few levels, so a token is one of
``prod(levels)`` codes, all usable by construction. The decoder mirrors the encoder with pixel shuffle. It is
trained from scratch with a pixel loss only; there is no released checkpoint of this architecture to convert.

With ``colour_block`` set, each ``colour_block``-pixel square's mean colour travels too, as 3 tokens of 8 bits
before the grid (`zoo.nn.colour_map`), and the decoder's output is shifted to those means: the tokens then carry
detail, and colours do not drift on photos unlike the training ones.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..api import Codes, GridTokenizer, TokenizerSpec
from ..errors import ConfigError
from ..nn.colour_map import LEVELS as COLOUR_LEVELS
from ..nn.colour_map import BlockColourMap
from ..nn.shuffle_conv import ShuffleConvConfig, ShuffleConvDecoder, ShuffleConvEncoder
from ..quant import FiniteScalarQuantizer
from ..registry import FamilySpec, register_family


@dataclass
class ConvFSQConfig:
    image_size: int = 256
    widths: tuple[int, ...] = (48, 96, 192)
    depths: tuple[int, ...] = (0, 1, 2)
    decoder_depths: tuple[int, ...] = (1, 1, 3)
    levels: tuple[int, ...] = (8, 8, 4)
    colour_block: int = 0  # side (pixels) of the squares whose 8-bit mean colours are sent as tokens; 0: none

    def __post_init__(self) -> None:
        n = len(self.widths)
        if not n or len(self.depths) != n or len(self.decoder_depths) != n:
            raise ConfigError(f"convfsq: widths, depths and decoder_depths need one entry per level; got "
                              f"{list(self.widths)}, {list(self.depths)}, {list(self.decoder_depths)}")
        if any(int(w) < 1 for w in self.widths) or any(int(d) < 0 for d in (*self.depths, *self.decoder_depths)):
            raise ConfigError("convfsq: widths must be >= 1 and depths >= 0")
        if not self.levels or any(int(v) < 2 for v in self.levels):
            raise ConfigError(f"convfsq: levels must list integers >= 2, got {list(self.levels)}")
        if self.image_size % (2 ** n):
            raise ConfigError(f"convfsq: image_size {self.image_size} is not a multiple of the downsampling "
                              f"factor {2 ** n}")
        factor = 2 ** n
        if self.colour_block < 0:
            raise ConfigError(f"convfsq: colour_block must be >= 0 (0: no colour map), got {self.colour_block}")
        if self.colour_block and (self.colour_block % factor or self.image_size % self.colour_block):
            raise ConfigError(f"convfsq: colour_block {self.colour_block} must be a multiple of the downsampling "
                              f"factor {factor} and divide image_size {self.image_size}")
        if self.colour_block and math.prod(self.levels) != COLOUR_LEVELS:
            raise ConfigError(f"convfsq: with a colour map the FSQ codebook must have {COLOUR_LEVELS} codes like the "
                              f"colour tokens (one codebook size for all tokens); levels {list(self.levels)} give "
                              f"{math.prod(self.levels)}")

    def conv(self) -> ShuffleConvConfig:
        return ShuffleConvConfig(tuple(self.widths), tuple(self.depths), tuple(self.decoder_depths),
                                 latent_channels=len(self.levels))


TINY_CONFIG = dict(image_size=64, widths=(8, 16, 32), depths=(0, 1, 1), decoder_depths=(1, 1, 1), levels=(5, 5, 4))


class ConvFSQ(GridTokenizer):
    family = "convfsq"

    def __init__(self, config: ConvFSQConfig) -> None:
        super().__init__(config)
        self.encoder = ShuffleConvEncoder(config.conv())
        self.quantizer = FiniteScalarQuantizer(config.levels)
        self.decoder = ShuffleConvDecoder(config.conv())
        self.colour_map = BlockColourMap(config.colour_block) if config.colour_block else None

    @property
    def factor(self) -> int:
        return self.config.conv().downsample_factor

    @property
    def spec(self) -> TokenizerSpec:
        side = self.config.image_size // self.factor
        grid = side * side
        if self.colour_map is None:
            return TokenizerSpec(family=self.family, image_size=self.config.image_size, token_layout="2d",
                                 max_tokens=grid, grid=(side, side),
                                 codebook_sizes=(math.prod(self.config.levels),), code_dim=len(self.config.levels))
        colour = 3 * (self.config.image_size // self.config.colour_block) ** 2
        return TokenizerSpec(family=self.family, image_size=self.config.image_size, token_layout="multiscale",
                             max_tokens=colour + grid, scales=(colour, grid), token_choices=(colour + grid,),
                             grid=(side, side), codebook_sizes=(COLOUR_LEVELS,), code_dim=len(self.config.levels))

    # ---- the method ----
    def _encode_latents(self, images: Tensor) -> Tensor:
        """Pre-quantization latents ``[B, D, h, w]`` of images in [0, 1]; with a colour map ``[B, D + 3, h, w]``,
        the last 3 channels each latent's square's mean colour (unrounded)."""
        latents = self.encoder(images)
        if self.colour_map is None:
            return latents
        return torch.cat([latents, self.colour_map.spread(self.colour_map.means(images), self.factor)], 1)

    def _decode_latents(self, quantized: Tensor) -> Tensor:
        """Quantized latents ``[B, D, h, w]`` (values in [-1, 1]; with a colour map 3 more channels of mean
        colours) -> raw images ``[B, 3, H, W]``."""
        if self.colour_map is None:
            return self.decoder(quantized)
        detail, colour = quantized.split([quantized.shape[1] - 3, 3], 1)
        return self.colour_map.correct(self.decoder(detail), self.colour_map.gather(colour, self.factor))

    # ---- with a colour map the codes are the colour tokens, then the grid ----
    def _quantize(self, latents: Tensor) -> tuple[Codes, Tensor]:
        if self.colour_map is None:
            return super()._quantize(latents)
        detail, colour = latents.split([latents.shape[1] - 3, 3], 1)
        q = self.quantizer(detail.permute(0, 2, 3, 1))
        means = self.colour_map.round(self.colour_map.gather(colour, self.factor))
        quantized = torch.cat([q.quantized.permute(0, 3, 1, 2), self.colour_map.spread(means, self.factor)], 1)
        indices = torch.cat([self.colour_map.indices(means), q.indices.flatten(1)], 1)
        return Codes(indices[..., None], scales=self.spec.scales), quantized

    def _encode(self, images: Tensor, num_tokens: int | None) -> Codes:
        if self.colour_map is None:
            return super()._encode(images, num_tokens)
        return self._quantize(self._encode_latents(images))[0]

    def _decode(self, codes: Codes) -> Tensor:
        if self.colour_map is None:
            return super()._decode(codes)
        n_colour = self.spec.scales[0]
        h, w = self.spec.grid
        side = self.config.image_size // self.config.colour_block
        means = self.colour_map.lookup(codes.indices[:, :n_colour, 0], (side, side)).to(self.dtype)
        detail = self.quantizer.lookup(codes.indices[:, n_colour:, 0]).to(self.dtype)
        detail = detail.reshape(-1, h, w, detail.shape[-1]).permute(0, 3, 1, 2)
        return self._decode_latents(torch.cat([detail, self.colour_map.spread(means, self.factor)], 1))

    def forward(self, images: Tensor) -> tuple[Tensor, object]:
        """Training pass: images in [0, 1] (any size the squares tile) -> (raw reconstruction, FSQ output)."""
        if self.colour_map is None:
            return super().forward(images)
        q = self.quantizer(self.encoder(images).permute(0, 2, 3, 1))
        means = self.colour_map.round(self.colour_map.means(images))
        return self.colour_map.correct(self.decoder(q.quantized.permute(0, 3, 1, 2)), means), q


def _no_official(*args, **kwargs):
    raise ConfigError("convfsq has no official release to convert; load a zoo folder or train with a recipe")


register_family(FamilySpec(
    name="convfsq",
    tokenizer_cls=ConvFSQ,
    config_cls=ConvFSQConfig,
    convert=_no_official,
    config_from_official=_no_official,
    extract=_no_official,
    official_repo="(none: a zoo architecture; FSQ after Mentzer et al., arXiv 2309.15505)",
    description="compact conv autoencoder with finite scalar quantization (pixel-shuffle resampling, pre-norm residual "
                "blocks); "
                "the embedded default",
))
