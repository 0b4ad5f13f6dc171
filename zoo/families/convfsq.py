"""Conv-FSQ: a compact convolutional autoencoder with finite scalar quantization (the zoo's embedded default).

An image is mapped by a convolutional encoder that works mostly at 1/4 and 1/8 of its side (pixel unshuffle
instead of strided convolutions, no normalisation layers) to a grid of D-channel latents, one per f x f patch.
Finite scalar quantization (Mentzer et al., 2023) rounds each channel to a few levels, so a token is one of
``prod(levels)`` codes, all usable by construction. The decoder mirrors the encoder with pixel shuffle. It is
trained from scratch with a pixel loss only; there is no released checkpoint of this architecture to convert.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor

from ..api import GridTokenizer, TokenizerSpec
from ..errors import ConfigError
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

    @property
    def spec(self) -> TokenizerSpec:
        side = self.config.image_size // self.config.conv().downsample_factor
        return TokenizerSpec(family=self.family, image_size=self.config.image_size, token_layout="2d",
                             max_tokens=side * side, grid=(side, side),
                             codebook_sizes=(math.prod(self.config.levels),), code_dim=len(self.config.levels))

    # ---- the method ----
    def _encode_latents(self, images: Tensor) -> Tensor:
        """Pre-quantization latents ``[B, D, h, w]`` of images in [0, 1]."""
        return self.encoder(images)

    def _decode_latents(self, quantized: Tensor) -> Tensor:
        """Quantized latents ``[B, D, h, w]`` (values in [-1, 1]) -> raw images ``[B, 3, H, W]``."""
        return self.decoder(quantized)


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
