"""LlamaGen's VQ tokenizers (Sun et al., 2024): a taming-style conv VQGAN with a small l2-normalised codebook.

Method, as released (`tokenizer/tokenizer_image/vq_model.py`, `VQ-16` / `VQ-8`):
1. Encode. The image in [-1, 1] goes through a conv encoder (width 128, multipliers (1, 1, 2, 2, 4) for f16 or
   (1, 2, 2, 4) for f8, two residual blocks per level, self-attention at the deepest level and in the middle) to
   256 channels, then a 1x1 ``quant_conv`` to the 8-d code space: latents ``[B, 8, H/f, W/f]``.
2. Quantize. Each position is l2-normalised and replaced by the nearest l2-normalised row of a 16384 x 8 codebook
   (squared distance ``|z|² + |e|² − 2 z·e``): indices ``[B, h·w]`` row-major.
3. Decode. The normalised code vectors go through a 1x1 ``post_quant_conv`` back to 256 channels and the mirrored
   conv decoder to pixels in [-1, 1] (the reconstruction script decodes from the indices, ``decode_code``).
The nets are fully convolutional: the released f16 model is also evaluated at 384 (24x24 tokens) and 512 (32x32)
(`image_size=` override). Inputs and outputs are [0, 1] at the zoo boundary.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from ..api import GridTokenizer, TokenizerSpec
from ..convert import llamagen as convert
from ..nn.taming import TamingConvConfig, TamingDecoder, TamingEncoder
from ..quant import VectorQuantizer
from ..registry import FamilySpec, Metric, ModelEntry, register_family, register_model


@dataclass
class LlamaGenConfig:
    image_size: int = 256
    hidden_channels: int = 128
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    z_channels: int = 256
    codebook_size: int = 16384
    code_dim: int = 8  # codebook_embed_dim
    l2_norm: bool = True  # codebook_l2_norm
    beta: float = 0.25  # commit_loss_beta
    dropout: float = 0.0  # dropout_p

    def conv(self) -> TamingConvConfig:
        return TamingConvConfig(self.hidden_channels, tuple(self.channel_mult), self.num_res_blocks, self.z_channels,
                                dropout=self.dropout)


# a non-released tiny size (the parity fixtures' and the tests'): f4, 64 codes of 8 dimensions, 32x32 images
TINY_CONFIG = dict(image_size=32, hidden_channels=32, channel_mult=(1, 1, 2), num_res_blocks=1, z_channels=32,
                   codebook_size=64, code_dim=8)


class LlamaGenVQ(GridTokenizer):
    family = "llamagen"

    def __init__(self, config: LlamaGenConfig) -> None:
        super().__init__(config)
        conv = config.conv()
        self.encoder = TamingEncoder(conv)
        self.decoder = TamingDecoder(conv)
        self.quantizer = VectorQuantizer(config.codebook_size, config.code_dim, l2_norm=config.l2_norm,
                                         beta=config.beta)
        self.quant_conv = nn.Conv2d(config.z_channels, config.code_dim, 1)
        self.post_quant_conv = nn.Conv2d(config.code_dim, config.z_channels, 1)

    @property
    def spec(self) -> TokenizerSpec:
        side = self.config.image_size // self.config.conv().downsample_factor
        return TokenizerSpec(family=self.family, image_size=self.config.image_size, token_layout="2d",
                             max_tokens=side * side, grid=(side, side), codebook_sizes=(self.config.codebook_size,),
                             code_dim=self.config.code_dim, eval_crop="adm")

    # ---- the differentiable latent path (Tokenizer.encode_latents / quantize / decode_latents call these) ----
    def _encode_latents(self, images: Tensor) -> Tensor:
        """Images ``[B, 3, H, W]`` in [0, 1] -> pre-quantization latents ``[B, code_dim, H/f, W/f]``."""
        return self.quant_conv(self.encoder(images * 2 - 1))

    def _decode_latents(self, quantized: Tensor) -> Tensor:
        """Code vectors ``[B, D, h, w]`` -> raw images ``[B, 3, h·f, w·f]`` ([0, 1] scale, unclamped)."""
        return (self.decoder(self.post_quant_conv(quantized)) + 1) / 2

    # ---- discrete interface ----

register_family(FamilySpec(
    name="llamagen",
    tokenizer_cls=LlamaGenVQ,
    config_cls=LlamaGenConfig,
    convert=convert.convert_state_dict,
    config_from_official=convert.config_from_official,
    extract=convert.extract,
    skip=convert.SKIP,
    official_repo="https://github.com/FoundationVision/LlamaGen (tokenizer/tokenizer_image/vq_model.py)",
    description="LlamaGen VQ: taming-style conv VQGAN (attention at the deepest level), l2-normalised 8-d codebook",
))

_RFID_PROTOCOL = (
    "ImageNet-1k val 50k; ADM center_crop_arr to the image size (box-halve, bicubic short side, centre crop), "
    "[-1, 1]; reconstructions decoded from the indices (decode_code), to uint8 by clamp(127.5x + 128, 0, 255); "
    "OpenAI ADM TF evaluator against a val .npz of the same crops built by val.sh (not the ADM training-set "
    "reference) (tokenizer/tokenizer_image/reconstruction_vq_ddp.py)"
)
_CITATION = ("@article{sun2024autoregressive, title={Autoregressive Model Beats Diffusion: Llama for Scalable Image "
             "Generation}, author={Sun, Peize and Jiang, Yi and Chen, Shoufa and Zhang, Shilong and Peng, Bingyue and "
             "Luo, Ping and Yuan, Zehuan}, journal={arXiv preprint arXiv:2406.06525}, year={2024}}")
_CODE = "https://github.com/FoundationVision/LlamaGen"
_SOURCE = "README of FoundationVision/LlamaGen (class-conditional tokenizer table)"

register_model(ModelEntry(
    name="llamagen-vq16", family="llamagen", config={},
    description="LlamaGen VQ-16 (vq_ds16_c2i), ImageNet: f16 (16x16 tokens at 256), codebook 16384x8 l2-normalised",
    hub_repo="FoundationVision/LlamaGen", hub_file="vq_ds16_c2i.pt",
    metrics=(Metric("rFID", 2.19, "ImageNet-1k val 50k, 256x256 (16x16 tokens)", _RFID_PROTOCOL, _SOURCE),
             Metric("rFID", 0.94, "ImageNet-1k val 50k, 384x384 (24x24 tokens; image_size=384)", _RFID_PROTOCOL,
                    _SOURCE),
             Metric("rFID", 0.70, "ImageNet-1k val 50k, 512x512 (32x32 tokens; image_size=512)", _RFID_PROTOCOL,
                    _SOURCE)),
    license="mit", paper="https://arxiv.org/abs/2406.06525", code=_CODE, citation=_CITATION,
    tags=("vqgan", "2d-tokens", "l2-codebook"),
))
register_model(ModelEntry(
    name="llamagen-vq8", family="llamagen", config={"channel_mult": (1, 2, 2, 4)},
    description="LlamaGen VQ-8 (vq_ds8_c2i), ImageNet: f8 (32x32 tokens at 256), codebook 16384x8 l2-normalised",
    hub_repo="FoundationVision/LlamaGen", hub_file="vq_ds8_c2i.pt",
    metrics=(Metric("rFID", 0.59, "ImageNet-1k val 50k, 256x256 (32x32 tokens)", _RFID_PROTOCOL, _SOURCE),),
    license="mit", paper="https://arxiv.org/abs/2406.06525", code=_CODE, citation=_CITATION,
    tags=("vqgan", "2d-tokens", "l2-codebook"),
))
register_model(ModelEntry(
    name="llamagen-vq16-t2i", family="llamagen", config={},
    description="LlamaGen VQ-16 for text-to-image (vq_ds16_t2i): the VQ-16 architecture trained on LAION-COCO (50M) "
                "+ 10M internal images; 16x16 tokens at 256, codebook 16384x8",
    hub_repo="peizesun/llamagen_t2i", hub_file="vq_ds16_t2i.pt",
    license="mit", paper="https://arxiv.org/abs/2406.06525", code=_CODE, citation=_CITATION,
    tags=("vqgan", "2d-tokens", "l2-codebook", "text-to-image"),
    extra={"note": "no reconstruction number is published for this tokenizer"},
))
