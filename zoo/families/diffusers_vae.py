"""diffusers' autoencoders in the zoo: `AutoencoderKL` (continuous: SD, SDXL, FLUX VAEs) and `VQModel` (discrete).

The model inside is diffusers' own class, built from its own ``config.json`` (the `__init__` arguments that
``save_pretrained`` writes) and loaded from its ``diffusion_pytorch_model.safetensors``: the zoo adds the one
interface around it, nothing of the network is re-implemented. Images go in as [0, 1] and are mapped to the
[-1, 1] the diffusers models take.

- `AutoencoderKL`: ``encode`` gives `Latents` (the posterior's mode, ``encode(x).latent_dist.mode()``, before the
  diffusion scaling factor), ``decode`` is ``decode(z).sample``. ``spec.continuous`` is True; "bytes" are the
  latents as float16, which reports flag as not comparable with discrete codes.
- `VQModel`: ``encode`` quantizes ``encode(x).latents`` with the model's codebook (its euclidean nearest row)
  into `Codes` ``[B, h·w, 1]``; ``decode`` looks the rows up and runs ``post_quant_conv`` + the decoder (which
  also takes the quantized map when ``norm_type == "spatial"``, MoVQ), as ``VQModel.decode`` does.

Loading: `zoo.load("sd-vae-ft-mse")` (its ``config.json`` and weights through the hub cache), ``zoo.load(FOLDER)``
or ``zoo.from_official("diffusers", FOLDER)`` for a folder written by diffusers' ``save_pretrained``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from torch import Tensor

from ..api import Codes, Latents, Tokenizer, TokenizerSpec
from ..errors import CheckpointError, ConfigError
from ..extras import require
from ..quant.vq import straight_through
from ..registry import FamilySpec, Metric, ModelEntry, register_family, register_model

CLASSES = ("AutoencoderKL", "VQModel")


@dataclass
class DiffusersConfig:
    """class_name: the diffusers class; image_size: the size the zoo evaluates and encodes at (the networks are
    convolutional: any multiple of the downsampling factor works in diffusers, the zoo fixes one per model, as for
    every family); model: the diffusers ``config.json`` (its `__init__` arguments; keys starting with ``_`` are
    diffusers' bookkeeping and are dropped)."""

    class_name: str = "AutoencoderKL"
    image_size: int = 256
    model: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.class_name not in CLASSES:
            raise ConfigError(f"diffusers: class_name must be one of {list(CLASSES)}, got {self.class_name!r}")
        self.model = {k: v for k, v in dict(self.model).items() if not k.startswith("_")}

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.model.get("block_out_channels", (64,))) - 1)


# a small AutoencoderKL for tests and smoke runs (diffusers builds it; random weights)
TINY_CONFIG = dict(class_name="AutoencoderKL", image_size=32,
                   model=dict(block_out_channels=[16, 32], latent_channels=4, norm_num_groups=8, layers_per_block=1,
                              down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                              sample_size=32))


def _diffusers_class(name: str) -> type:
    diffusers = require("diffusers", "the diffusers autoencoders (sd-vae-*, sdxl-vae, flux-vae, movq)")
    return getattr(diffusers, name)


class DiffusersAutoencoder(Tokenizer):
    family = "diffusers"
    # the zoo calls vae.encode / vae.decode (methods, not the module's forward): compile the networks they run
    compile_modules = ("vae.encoder", "vae.decoder", "vae.quant_conv", "vae.post_quant_conv")

    def __init__(self, config: DiffusersConfig) -> None:
        super().__init__(config)
        if config.image_size % config.downsample_factor:
            raise ConfigError(f"diffusers: image_size {config.image_size} is not a multiple of the downsampling "
                              f"factor {config.downsample_factor}")
        self.vae = _diffusers_class(config.class_name).from_config(config.model)

    @property
    def continuous(self) -> bool:
        return self.config.class_name == "AutoencoderKL"

    @property
    def spec(self) -> TokenizerSpec:
        cfg = self.config
        side = cfg.image_size // cfg.downsample_factor
        if self.continuous:
            return TokenizerSpec(family=self.family, image_size=cfg.image_size, token_layout="2d",
                                 max_tokens=side * side, grid=(side, side), codebook_sizes=(),
                                 code_dim=int(cfg.model.get("latent_channels", 4)), continuous=True)
        embed_dim = cfg.model.get("vq_embed_dim") or cfg.model.get("latent_channels", 3)
        return TokenizerSpec(family=self.family, image_size=cfg.image_size, token_layout="2d",
                             max_tokens=side * side, grid=(side, side),
                             codebook_sizes=(int(cfg.model.get("num_vq_embeddings", 256)),), code_dim=int(embed_dim))

    # ---- the differentiable latent path ----
    def _encode_latents(self, images: Tensor) -> Tensor:
        """Images in [0, 1] -> ``[B, C, h, w]``: AutoencoderKL's posterior mode (``latent_dist.mode()``), VQModel's
        pre-quantization ``encode(x).latents``."""
        x = images * 2 - 1
        if self.continuous:
            return self.vae.encode(x).latent_dist.mode()
        return self.vae.encode(x).latents

    def _quantize(self, latents: Tensor) -> tuple[Codes, Tensor]:
        """VQModel: ``[B, C, h, w]`` -> (codes ``[B, h·w, 1]``, straight-through code vectors ``[B, C, h, w]``)."""
        indices = self._nearest(latents)
        z_q = self._lookup(indices, latents.shape[-2:])
        B, h, w = latents.shape[0], latents.shape[-2], latents.shape[-1]
        return Codes(indices.reshape(B, h * w, 1), grid=(h, w)), straight_through(z_q, latents)

    def _decode_latents(self, quantized: Tensor) -> Tensor:
        """``[B, C, h, w]`` (AutoencoderKL: latents; VQModel: code vectors) -> raw images in [0, 1] scale."""
        if self.continuous:
            return (self.vae.decode(quantized).sample + 1) / 2
        vae = self.vae
        spatial = quantized if vae.config.norm_type == "spatial" else None
        return (vae.decoder(vae.post_quant_conv(quantized), spatial) + 1) / 2

    # ---- codes (VQModel) ----
    def _nearest(self, latents: Tensor) -> Tensor:
        """Indices ``[B, h, w]`` of the nearest codebook rows (VQModel's own quantizer: cdist argmin)."""
        _, _, (_, _, indices) = self.vae.quantize(latents)
        return indices.reshape(latents.shape[0], latents.shape[-2], latents.shape[-1])

    def _lookup(self, indices: Tensor, size: tuple[int, int]) -> Tensor:
        B = indices.shape[0]
        weight = self.vae.quantize.embedding.weight
        return weight[indices.reshape(B, -1)].reshape(B, size[0], size[1], -1).permute(0, 3, 1, 2).contiguous()

    def _encode(self, images: Tensor, num_tokens: int | None) -> Codes | Latents:
        latents = self._encode_latents(images)
        if self.continuous:
            return Latents(latents)
        indices = self._nearest(latents)
        B, h, w = indices.shape
        return Codes(indices.reshape(B, h * w, 1), grid=(h, w))

    def _decode(self, codes: Codes) -> Tensor:
        h, w = codes.grid or self.spec.grid
        return self._decode_latents(self._lookup(codes.indices[..., 0], (h, w)))


# ---------------------------------------------------------------------------------------------------------------
# Official layout: a diffusers folder (config.json + diffusion_pytorch_model.safetensors)
# ---------------------------------------------------------------------------------------------------------------
def extract(obj: Any) -> tuple[dict, None]:
    """The loaded weights file is the state dict itself (diffusers writes a flat safetensors)."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"a diffusers weights file holds a flat state dict, got {type(obj).__name__}")
    return dict(obj), None


def convert_state_dict(state_dict: Mapping[str, Tensor], config: Any = None) -> dict[str, Tensor]:
    """diffusers' keys sit under our ``vae.`` module, unchanged."""
    return {f"vae.{k}": v for k, v in state_dict.items()}


def config_from_official(official: Mapping[str, Any] | None, state_dict: Mapping[str, Tensor],
                         **overrides: Any) -> DiffusersConfig:
    """Our config from diffusers' ``config.json`` (``_class_name`` names the class) and overrides
    (``image_size=``)."""
    from ..config import config_from_dict

    if not official or "_class_name" not in official:
        raise ConfigError("a diffusers autoencoder needs its config.json (with _class_name): pass the folder, or "
                          "config=PATH/config.json")
    values = {"class_name": official["_class_name"], "model": dict(official)}
    if "sample_size" in official and "image_size" not in overrides:
        size = official["sample_size"]
        values["image_size"] = int(size[0] if isinstance(size, (list, tuple)) else size)
    overrides.pop("model", None)
    return config_from_dict(DiffusersConfig, {**values, **overrides}, where="diffusers config")


register_family(FamilySpec(
    name="diffusers",
    tokenizer_cls=DiffusersAutoencoder,
    config_cls=DiffusersConfig,
    convert=convert_state_dict,
    config_from_official=config_from_official,
    extract=extract,
    official_repo="https://github.com/huggingface/diffusers (AutoencoderKL, VQModel)",
    description="diffusers' autoencoders through diffusers itself: AutoencoderKL (continuous latents) and VQModel",
))

# ---------------------------------------------------------------------------------------------------------------
# Named models
# ---------------------------------------------------------------------------------------------------------------
_COCO = "COCO 2017 val, 5000 images, 256x256"
_SD_PROTOCOL = ("as published on the model card (Stability AI's evaluation script; not this zoo's protocol): "
                "256x256 COCO val crops, rFID against the originals")
_SD_SOURCE = "stabilityai/sd-vae-ft-mse model card (Evaluation table)"
_LDM_CITE = ("@inproceedings{rombach2022ldm, title={High-Resolution Image Synthesis with Latent Diffusion Models}, "
             "author={Rombach, Robin and Blattmann, Andreas and Lorenz, Dominik and Esser, Patrick and Ommer, "
             "Bj{\\\"o}rn}, booktitle={CVPR}, year={2022}}")
# The architectures below describe the entries (spec, `zoo info`, cards) before any download; loading reads the
# released config.json itself (`extra["hub_config_file"]`), which replaces `model`.
_SD_ARCH = dict(block_out_channels=[128, 256, 512, 512], down_block_types=["DownEncoderBlock2D"] * 4,
                up_block_types=["UpDecoderBlock2D"] * 4, layers_per_block=2, latent_channels=4, norm_num_groups=32)
_KL = dict(class_name="AutoencoderKL", image_size=256, model=_SD_ARCH)

for _name, _repo, _rfid, _psnr, _ssim, _what in (
    ("sd-vae-ft-ema", "stabilityai/sd-vae-ft-ema", 4.42, 23.8, 0.69, "decoder fine-tuned with EMA (L1 + LPIPS)"),
    ("sd-vae-ft-mse", "stabilityai/sd-vae-ft-mse", 4.70, 24.5, 0.71,
     "ft-EMA fine-tuned further with MSE + 0.1 LPIPS (smoother)"),
):
    register_model(ModelEntry(
        name=_name, family="diffusers", config=_KL,
        description=f"Stable Diffusion 1.x VAE (kl-f8, 4 latent channels), {_what}; continuous latents",
        hub_repo=_repo, hub_file="diffusion_pytorch_model.safetensors",
        metrics=(Metric("rFID", _rfid, _COCO, _SD_PROTOCOL, _SD_SOURCE),
                 Metric("PSNR", _psnr, _COCO, _SD_PROTOCOL, _SD_SOURCE),
                 Metric("SSIM", _ssim, _COCO, _SD_PROTOCOL, _SD_SOURCE)),
        license="mit", paper="https://arxiv.org/abs/2112.10752", code="https://github.com/CompVis/stable-diffusion",
        citation=_LDM_CITE, tags=("continuous", "vae", "diffusers"), extra={"hub_config_file": "config.json"},
    ))

register_model(ModelEntry(
    name="sdxl-vae", family="diffusers", config=_KL,
    description="SDXL VAE (kl-f8, 4 latent channels, same architecture as SD 1.x, retrained); continuous latents",
    hub_repo="stabilityai/sdxl-vae", hub_file="diffusion_pytorch_model.safetensors",
    license="mit", paper="https://arxiv.org/abs/2307.01952", code="https://github.com/Stability-AI/generative-models",
    tags=("continuous", "vae", "diffusers"), extra={"hub_config_file": "config.json"},
))

register_model(ModelEntry(
    name="flux-vae", family="diffusers",
    config=dict(_KL, model=dict(_SD_ARCH, latent_channels=16, use_quant_conv=False, use_post_quant_conv=False)),
    description="FLUX.1 VAE (f8, 16 latent channels, no quant convs; from FLUX.1-schnell, Apache-2.0); continuous",
    hub_repo="black-forest-labs/FLUX.1-schnell", hub_file="vae/diffusion_pytorch_model.safetensors",
    license="apache-2.0", code="https://github.com/black-forest-labs/flux",
    tags=("continuous", "vae", "diffusers"), extra={"hub_config_file": "vae/config.json"},
))

register_model(ModelEntry(
    name="movq-kandinsky-2-2", family="diffusers",
    config=dict(class_name="VQModel", image_size=256, model=dict(
        block_out_channels=[128, 256, 256, 512], down_block_types=["DownEncoderBlock2D"] * 3 + ["AttnDownEncoderBlock2D"],
        up_block_types=["AttnUpDecoderBlock2D"] + ["UpDecoderBlock2D"] * 3, layers_per_block=2, latent_channels=4,
        num_vq_embeddings=16384, vq_embed_dim=4, norm_type="spatial")),
    description="Kandinsky 2.2's MoVQ (VQModel, f8, spatially modulated decoder norm), diffusers layout",
    hub_repo="kandinsky-community/kandinsky-2-2-decoder", hub_file="movq/diffusion_pytorch_model.safetensors",
    license="apache-2.0", paper="https://arxiv.org/abs/2209.09002", code="https://github.com/ai-forever/Kandinsky-2",
    tags=("vq", "2d-tokens", "diffusers"), extra={"hub_config_file": "movq/config.json"},
))
