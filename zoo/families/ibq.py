"""IBQ (Shi et al., 2024, "Taming Scalable Visual Tokenizer for Autoregressive Image Generation";
TencentARC/SEED-Voken): a taming-style VQGAN whose codebook (1024 ... 262144 rows of 256) is trained by index
backpropagation.

A 256x256 image (in [-1, 1]) goes through taming's conv encoder (attention at 16x16), a 1x1 ``quant_conv``, and
each of the 16x16 positions takes the codebook row of largest dot product (`IndexBackpropQuantizer`: no
normalisation); ``post_quant_conv`` and taming's decoder map the rows back to pixels. Official evaluation:
albumentations ``SmallestMaxSize`` + ``CenterCrop`` (OpenCV bilinear; our crop 'albumentations', which needs
OpenCV), ``x/127.5 - 1``; the EMA weights (see `zoo.convert.seedvoken`).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from ..api import GridTokenizer, TokenizerSpec
from ..convert import ibq as convert
from ..nn.taming import TamingConvConfig, TamingDecoder, TamingEncoder
from ..quant import IndexBackpropQuantizer, QuantizerOutput
from ..registry import FamilySpec, Metric, ModelEntry, register_family, register_model


@dataclass
class IBQConfig:
    image_size: int = 256
    hidden_channels: int = 128
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 4
    z_channels: int = 256
    codebook_size: int = 16384
    code_dim: int = 256
    level_attention: bool = True  # attention after each residual block of the deepest level (16x16 at 256 px)
    beta: float = 0.25

    def conv(self) -> TamingConvConfig:
        return TamingConvConfig(self.hidden_channels, tuple(self.channel_mult), self.num_res_blocks, self.z_channels,
                                level_attention=self.level_attention)


TINY_CONFIG = dict(image_size=32, hidden_channels=32, channel_mult=(1, 2), num_res_blocks=1, z_channels=32,
                   codebook_size=64, code_dim=16)


class IBQ(GridTokenizer):
    """Latents ``[B, code_dim, h, w]`` (after ``quant_conv``); codes ``[B, h·w, 1]`` in [0, codebook_size)."""

    family = "ibq"

    def __init__(self, config: IBQConfig) -> None:
        super().__init__(config)
        self.encoder = TamingEncoder(config.conv())
        self.quant_conv = nn.Conv2d(config.z_channels, config.code_dim, 1)
        self.quantizer = IndexBackpropQuantizer(config.codebook_size, config.code_dim, beta=config.beta)
        self.post_quant_conv = nn.Conv2d(config.code_dim, config.z_channels, 1)
        self.decoder = TamingDecoder(config.conv())

    @property
    def spec(self) -> TokenizerSpec:
        side = self.config.image_size // self.config.conv().downsample_factor
        return TokenizerSpec(family=self.family, image_size=self.config.image_size, token_layout="2d",
                             max_tokens=side * side, grid=(side, side), codebook_sizes=(self.config.codebook_size,),
                             code_dim=self.config.code_dim, eval_crop="albumentations")

    # ---- the differentiable latent path (Tokenizer.encode_latents / quantize / decode_latents call these) ----
    def _encode_latents(self, images: Tensor) -> Tensor:
        """Images ``[B, 3, H, W]`` in [0, 1] -> pre-quantization latents ``[B, code_dim, h, w]``."""
        return self.quant_conv(self.encoder(images * 2 - 1))

    def _decode_latents(self, quantized: Tensor) -> Tensor:
        """Code vectors ``[B, code_dim, h, w]`` -> raw images ``[B, 3, H, W]`` ([0, 1] scale, unclamped)."""
        return (self.decoder(self.post_quant_conv(quantized)) + 1) / 2

    # ---- training (GridTokenizer's forward, plus the latents the entropy loss needs) ----
    def forward(self, images: Tensor) -> tuple[Tensor, QuantizerOutput, Tensor]:
        """Training pass: images in [0, 1] -> (raw reconstruction, IBQ output with the quantization loss, the
        pre-quantization latents ``[B, h, w, code_dim]`` for the entropy loss)."""
        z = self._encode_latents(images).permute(0, 2, 3, 1)
        q = self.quantizer(z)
        return self._decode_latents(q.quantized.permute(0, 3, 1, 2)), q, z


register_family(FamilySpec(
    name="ibq",
    tokenizer_cls=IBQ,
    config_cls=IBQConfig,
    convert=convert.convert_state_dict,
    config_from_official=convert.config_from_official,
    extract=convert.extract,
    skip=convert.SKIP,
    official_repo="https://github.com/TencentARC/SEED-Voken (src/IBQ/models/ibqgan.py, class IBQ)",
    description="IBQ: taming conv encoder/decoder + a dot-product codebook trained by index backpropagation",
))

_CODE = "https://github.com/TencentARC/SEED-Voken"
_PAPER = "https://arxiv.org/abs/2412.02692"
_CITATION = ("@article{shi2024taming, title={Taming Scalable Visual Tokenizer for Autoregressive Image Generation}, "
             "author={Shi, Fengyuan and Luo, Zhuoyan and Ge, Yixiao and Yang, Yujiu and Shan, Ying and Wang, Limin}, "
             "journal={arXiv preprint arXiv:2412.02692}, year={2024}}")
_PROTOCOL = ("official evaluation_image.py: albumentations SmallestMaxSize(256) + CenterCrop(256) (OpenCV "
             "bilinear), x/127.5-1, EMA weights, reconstructions clamped to [-1,1], rFID with pytorch-fid's "
             "InceptionV3 on float images (no uint8 rounding); LPIPS: lpips package (alex)")
_SOURCE = "SEED-Voken docs/IBQ.md"
_IN1K = "ImageNet-1k val 50k, 256x256"

for _name, _k, _repo, _file, _desc, _metrics in (
    ("ibq-1024", 1024, "TencentARC/IBQ-Tokenizer-1024", "imagenet256_1024.ckpt", "ImageNet 256x256, 1024 codes",
     (Metric("rFID", 2.24, _IN1K, _PROTOCOL, _SOURCE), Metric("LPIPS", 0.2580, _IN1K, _PROTOCOL, _SOURCE))),
    ("ibq-8192", 8192, "TencentARC/IBQ-Tokenizer-8192", "imagenet256_8192.ckpt", "ImageNet 256x256, 8192 codes",
     (Metric("rFID", 1.87, _IN1K, _PROTOCOL, _SOURCE), Metric("LPIPS", 0.2437, _IN1K, _PROTOCOL, _SOURCE))),
    ("ibq-16384", 16384, "TencentARC/IBQ-Tokenizer-16384", "imagenet256_16384.ckpt",
     "ImageNet 256x256, 16384 codes",
     (Metric("rFID", 1.37, _IN1K, _PROTOCOL, _SOURCE), Metric("LPIPS", 0.2235, _IN1K, _PROTOCOL, _SOURCE))),
    ("ibq-262144", 262144, "TencentARC/IBQ-Tokenizer-262144", "imagenet256_262144.ckpt",
     "ImageNet 256x256, 262144 codes",
     (Metric("rFID", 1.00, _IN1K, _PROTOCOL, _SOURCE), Metric("LPIPS", 0.2030, _IN1K, _PROTOCOL, _SOURCE))),
    ("ibq-pretrain-16384", 16384, "TencentARC/IBQ-Tokenizer-16384-Pretrain", "IBQ_pretrain_16384.ckpt",
     "pretrained on 200M images, 256x256, 16384 codes",
     (Metric("rFID", 2.06, _IN1K, _PROTOCOL, _SOURCE), Metric("PSNR", 22.01, _IN1K, _PROTOCOL, _SOURCE),
      Metric("rFID", 7.67, "COCO val, 256x256", _PROTOCOL, _SOURCE))),
    ("ibq-pretrain-262144", 262144, "TencentARC/IBQ-Tokenizer-262144-Pretrain", "IBQ_pretrain_262144.ckpt",
     "pretrained on 200M images, 256x256, 262144 codes",
     (Metric("rFID", 1.53, _IN1K, _PROTOCOL, _SOURCE), Metric("PSNR", 22.69, _IN1K, _PROTOCOL, _SOURCE),
      Metric("rFID", 6.79, "COCO val, 256x256", _PROTOCOL, _SOURCE))),
):
    register_model(ModelEntry(
        name=_name, family="ibq", config=dict(codebook_size=_k),
        description=f"IBQ, {_desc}, f16 (16x16 tokens), 256-d codes", hub_repo=_repo, hub_file=_file,
        metrics=_metrics, license="apache-2.0", paper=_PAPER, code=_CODE, citation=_CITATION,
        tags=("vq", "ibq", "2d-tokens"),
    ))
