"""Open-MAGVIT2 (Luo et al., 2024; TencentARC/SEED-Voken): a MAGVIT-v2-style conv tokenizer with lookup-free
quantization over 2^18 codes.

A 256x256 image (in [-1, 1]) is encoded by a conv net without attention to a 16x16x18 map (f16; the 128-px model
is f8 and also gives 16x16), each position becomes the 18 sign bits of its latent (`LookupFreeQuantizer`: index
``sum_d [z_d > 0]·2^d``, codes ±1), and the decoder, conditioned on the quantized map by adaptive GroupNorm, maps
the codes back to pixels. Official evaluation: torchvision ``Resize(size)`` (bilinear) + ``CenterCrop`` on the PIL
image, ``x/127.5 - 1``; the EMA weights (see `zoo.convert.seedvoken`).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from ..api import GridTokenizer, TokenizerSpec
from ..convert import open_magvit2 as convert
from ..nn.magvit2 import Magvit2ConvConfig, Magvit2Decoder, Magvit2Encoder
from ..quant import LookupFreeQuantizer, QuantizerOutput
from ..registry import FamilySpec, Metric, ModelEntry, register_family, register_model


@dataclass
class OpenMagvit2Config:
    image_size: int = 256
    hidden_channels: int = 128
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 4
    bits: int = 18  # latent channels = bits per code; 2^bits codes
    commitment_beta: float = 0.25  # the official `commit_weight` (training only)

    def conv(self) -> Magvit2ConvConfig:
        return Magvit2ConvConfig(self.hidden_channels, tuple(self.channel_mult), self.num_res_blocks, self.bits)


TINY_CONFIG = dict(image_size=64, hidden_channels=32, channel_mult=(1, 1, 2), num_res_blocks=1, bits=10)


class OpenMagvit2(GridTokenizer):
    """Latents ``[B, bits, h, w]`` (h = w = image_size / 2^(levels-1)); codes ``[B, h·w, 1]`` in [0, 2^bits)."""

    family = "open_magvit2"

    def __init__(self, config: OpenMagvit2Config) -> None:
        super().__init__(config)
        self.encoder = Magvit2Encoder(config.conv())
        self.quantizer = LookupFreeQuantizer(config.bits, beta=config.commitment_beta)
        self.decoder = Magvit2Decoder(config.conv())

    @property
    def spec(self) -> TokenizerSpec:
        side = self.config.image_size // self.config.conv().downsample_factor
        return TokenizerSpec(family=self.family, image_size=self.config.image_size, token_layout="2d",
                             max_tokens=side * side, grid=(side, side), codebook_sizes=(2 ** self.config.bits,),
                             code_dim=self.config.bits, eval_crop="center-bilinear")

    # ---- the differentiable latent path (Tokenizer.encode_latents / quantize / decode_latents call these) ----
    def _encode_latents(self, images: Tensor) -> Tensor:
        """Images ``[B, 3, H, W]`` in [0, 1] -> pre-quantization latents ``[B, bits, h, w]``."""
        return self.encoder(images * 2 - 1)

    def _decode_latents(self, quantized: Tensor) -> Tensor:
        """Quantized latents ``[B, bits, h, w]`` -> raw images ``[B, 3, H, W]`` ([0, 1] scale, unclamped)."""
        return (self.decoder(quantized) + 1) / 2

    # ---- training (GridTokenizer's forward, plus the latents the entropy loss needs) ----
    def forward(self, images: Tensor) -> tuple[Tensor, QuantizerOutput, Tensor]:
        """Training pass: images in [0, 1] -> (raw reconstruction, LFQ output with the commitment loss, the
        pre-quantization latents ``[B, h, w, bits]`` for the entropy loss)."""
        z = self._encode_latents(images).permute(0, 2, 3, 1)
        q = self.quantizer(z)
        return self._decode_latents(q.quantized.permute(0, 3, 1, 2)), q, z


register_family(FamilySpec(
    name="open_magvit2",
    tokenizer_cls=OpenMagvit2,
    config_cls=OpenMagvit2Config,
    convert=convert.convert_state_dict,
    config_from_official=convert.config_from_official,
    extract=convert.extract,
    skip=convert.SKIP,
    official_repo="https://github.com/TencentARC/SEED-Voken (src/Open_MAGVIT2/models/lfqgan.py)",
    description="Open-MAGVIT2: MAGVIT-v2-style conv encoder/decoder (adaptive GroupNorm decoder) + lookup-free "
                "quantization (2^bits sign codes)",
))

_CODE = "https://github.com/TencentARC/SEED-Voken"
_PAPER = "https://arxiv.org/abs/2409.04410"
_CITATION = ("@article{luo2024open, title={Open-MAGVIT2: An Open-Source Project Toward Democratizing "
             "Auto-regressive Visual Generation}, author={Luo, Zhuoyan and Shi, Fengyuan and Ge, Yixiao and Yang, "
             "Yujiu and Wang, Limin and Shan, Ying}, journal={arXiv preprint arXiv:2409.04410}, year={2024}}")
_PROTOCOL = ("official evaluation_image.py: torchvision Resize(size) bilinear + CenterCrop on the PIL image, "
             "x/127.5-1, EMA weights, reconstructions clamped to [-1,1], rFID with pytorch-fid's InceptionV3 on "
             "float images (no uint8 rounding); PSNR on truncated uint8")
_SOURCE = "SEED-Voken docs/Open-MAGVIT2.md"

for _name, _size, _mult, _bits, _repo, _file, _desc, _metrics in (
    ("open-magvit2-256", 256, (1, 1, 2, 2, 4), 18, "TencentARC/Open-MAGVIT2-Tokenizer-256-resolution",
     "imagenet_256_L.ckpt", "Open-MAGVIT2, ImageNet 256x256, f16 (16x16 tokens), 2^18 LFQ codes",
     (Metric("rFID", 1.17, "ImageNet-1k val 50k, 256x256", _PROTOCOL, _SOURCE),
      Metric("PSNR", 21.90, "ImageNet-1k val 50k, 256x256", _PROTOCOL, _SOURCE))),
    ("open-magvit2-128", 128, (1, 2, 2, 4), 18, "TencentARC/Open-MAGVIT2-Tokenizer-128-resolution",
     "imagenet_128_L.ckpt", "Open-MAGVIT2, ImageNet 128x128, f8 (16x16 tokens), 2^18 LFQ codes",
     (Metric("rFID", 1.18, "ImageNet-1k val 50k, 128x128", _PROTOCOL, _SOURCE),
      Metric("PSNR", 25.08, "ImageNet-1k val 50k, 128x128", _PROTOCOL, _SOURCE))),
    ("open-magvit2-pretrain-16384", 256, (1, 1, 2, 2, 4), 14, "TencentARC/Open-MAGVIT2-Tokenizer-16384-Pretrain",
     "pretrain256_16384.ckpt", "Open-MAGVIT2 pretrained on 100M images, 256x256, f16, 2^14 LFQ codes",
     (Metric("rFID", 2.55, "ImageNet-1k val 50k, 256x256", _PROTOCOL, _SOURCE),
      Metric("PSNR", 22.21, "ImageNet-1k val 50k, 256x256", _PROTOCOL, _SOURCE),
      Metric("rFID", 7.93, "COCO val, 256x256", _PROTOCOL, _SOURCE))),
    ("open-magvit2-pretrain-262144", 256, (1, 1, 2, 2, 4), 18, "TencentARC/Open-MAGVIT2-Tokenizer-262144-Pretrain",
     "pretrain256_262144.ckpt", "Open-MAGVIT2 pretrained on 100M images, 256x256, f16, 2^18 LFQ codes",
     (Metric("rFID", 1.67, "ImageNet-1k val 50k, 256x256", _PROTOCOL, _SOURCE),
      Metric("PSNR", 22.70, "ImageNet-1k val 50k, 256x256", _PROTOCOL, _SOURCE),
      Metric("rFID", 6.76, "COCO val, 256x256", _PROTOCOL, _SOURCE))),
):
    register_model(ModelEntry(
        name=_name, family="open_magvit2",
        config=dict(image_size=_size, channel_mult=_mult, bits=_bits),
        description=_desc, hub_repo=_repo, hub_file=_file, metrics=_metrics, license="apache-2.0",
        paper=_PAPER, code=_CODE, citation=_CITATION, tags=("lfq", "2d-tokens"),
    ))
