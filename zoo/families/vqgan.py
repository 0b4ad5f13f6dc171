"""MaskGIT VQGAN (Chang et al., 2022): the f16 convolutional VQGAN with a 1024 x 256 codebook.

A 256x256 image is encoded by a conv net without attention to a 16x16x256 map, each position is replaced by its
nearest codebook row (plain euclidean lookup, no normalisation), and the conv decoder maps the 16x16 codes back to
pixels. Inputs and outputs are in [0, 1] (no normalisation inside). Its decoder is the pixel decoder inside every
TiTok / One-D-Piece checkpoint, and it is ALIT's base tokenizer.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from ..api import GridTokenizer, TokenizerSpec
from ..convert import vqgan as convert
from ..nn.maskgit_vqgan import MaskGITConvConfig, MaskGITDecoder, MaskGITEncoder
from ..quant import VectorQuantizer
from ..registry import FamilySpec, Metric, ModelEntry, register_family, register_model


@dataclass
class VQGANConfig:
    image_size: int = 256
    hidden_channels: int = 128
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    z_channels: int = 256
    codebook_size: int = 1024
    beta: float = 0.25

    def conv(self) -> MaskGITConvConfig:
        return MaskGITConvConfig(self.hidden_channels, tuple(self.channel_mult), self.num_res_blocks, self.z_channels)


TINY_CONFIG = dict(image_size=64, hidden_channels=32, channel_mult=(1, 1, 2, 2, 2), num_res_blocks=2, z_channels=32,
                   codebook_size=64)


class MaskGITVQGAN(GridTokenizer):
    family = "vqgan"

    def __init__(self, config: VQGANConfig) -> None:
        super().__init__(config)
        self.encoder = MaskGITEncoder(config.conv())
        self.quantizer = VectorQuantizer(config.codebook_size, config.z_channels, l2_norm=False, beta=config.beta)
        self.decoder = MaskGITDecoder(config.conv())

    @property
    def spec(self) -> TokenizerSpec:
        side = self.config.image_size // self.config.conv().downsample_factor
        return TokenizerSpec(family=self.family, image_size=self.config.image_size, token_layout="2d",
                             max_tokens=side * side, grid=(side, side), codebook_sizes=(self.config.codebook_size,),
                             code_dim=self.config.z_channels)

    # ---- the method ----
    def _encode_latents(self, images: Tensor) -> Tensor:
        """Pre-quantization latents ``[B, z, h, w]`` of images in [0, 1]."""
        return self.encoder(images)

    def _decode_latents(self, quantized: Tensor) -> Tensor:
        """Code vectors ``[B, z, h, w]`` (quantized, or any soft mixture of codebook rows) -> raw images."""
        return self.decoder(quantized)


register_family(FamilySpec(
    name="vqgan",
    tokenizer_cls=MaskGITVQGAN,
    config_cls=VQGANConfig,
    convert=convert.convert_state_dict,
    config_from_official=convert.config_from_official,
    extract=convert.extract,
    official_repo="https://github.com/bytedance/1d-tokenizer (modeling/modules/maskgit_vqgan.py)",
    description="MaskGIT-style VQGAN: conv encoder/decoder without attention (any downsampling factor and codebook)",
))

register_model(ModelEntry(
    name="maskgit-vqgan",
    family="vqgan",
    config={},
    description="MaskGIT VQGAN, ImageNet 256x256, f16 (16x16 tokens), codebook 1024x256 (the TiTok port of "
                "open-muse's MaskGIT VQGAN; TiTok's stage-1 proxy-code teacher)",
    hub_repo="fun-research/TiTok",
    hub_file="maskgit-vqgan-imagenet-f16-256.bin",
    metrics=(Metric("rFID", 2.28, "ImageNet-1k val 50k, 256x256",
                    "as reported in the TiTok paper's comparison table (MaskGIT's own tokenizer)",
                    "TiTok paper, arXiv 2406.07550"),),
    license="apache-2.0",
    paper="https://arxiv.org/abs/2202.04200",
    code="https://github.com/bytedance/1d-tokenizer",
    citation="@inproceedings{chang2022maskgit, title={MaskGIT: Masked Generative Image Transformer}, "
             "author={Chang, Huiwen and Zhang, Han and Jiang, Lu and Liu, Ce and Freeman, William T.}, "
             "booktitle={CVPR}, year={2022}}",
    tags=("vqgan", "2d-tokens"),
))
