"""TokenFlow (Qu et al., CVPR 2025): one index selects a semantic code and a pixel code (dual codebook, shared
mapping), over a VAR-style multi-scale residual layout, so one token sequence serves understanding and generation.

Method, as released (ByteFlow-AI/TokenFlow ``tokenizer/vq_model.py``, ``TokenFlow``):
1. Encode. The image in [-1, 1] takes two paths.
   - Semantic: a teacher's vision tower, fine-tuned: OpenAI CLIP ViT-B/16 (raw [-1, 1] input; at 256 px its 14x14
     position table is resampled to 16x16 by the DINO "+0.1" rule) -> patch tokens after ``ln_post``; or SigLIP
     so400m-patch14-384 (SigLIP's 0.5/0.5 normalisation) -> ``hidden_states[-2]``. ``encode_task_layer`` (Linear,
     Tanh, Linear) maps them to 32 channels on the patch grid.
   - Pixel: a LlamaGen VQGAN conv encoder (ch 128, mult 1,1,2,2,4, stride 16) + ``quant_conv`` -> 8 channels. The
     SigLIP model first resizes the image (bicubic) to 16 x its 27-token grid = 432 px.
   The two maps are stacked: ``[B, 40, s, s]`` (s = 16 or 27).
2. Quantize (`SharedMappingMultiScaleQuantizer`): per scale, the 32 + 8 parts are L2-normalised separately, one index
   into 32768 entries minimises the sum of both parts' distances; scales 1..16 (817 tokens) or 1..27 (2227 tokens).
3. Decode. Summed code maps are split again: the semantic part goes through a 3-block BEiT-style ViT
   (``decoder_vqkd``) and ``decode_task_layer`` to the teacher's feature space (512 or 1152 per token: what the
   distillation loss compares, `decode_semantic`); the pixel part through ``post_quant_conv`` and the VQGAN decoder
   (the clipb release has the "enhanced" ch-256 decoder) to the image (SigLIP: resized back to 384).
The understanding model (TokenFlow-XL's LLaVA) consumes the summed quantized code map as ``[B, s², 40]``
(`encode_semantic`). Inputs and outputs are [0, 1] at the zoo boundary and [-1, 1] inside.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..api import Codes, Tokenizer, TokenizerSpec, check_images
from ..convert import tokenflow as convert
from ..errors import InputError
from ..nn.clip_vision import CLIPVisionTower, resample_pos_table_dino
from ..nn.siglip import SiglipVisionTower
from ..nn.taming import TamingConvConfig, TamingDecoder, TamingEncoder
from ..nn.vit import Block, run_blocks
from ..quant import QuantizerOutput
from ..quant.shared_mapping import SharedMappingMultiScaleQuantizer
from ..registry import FamilySpec, Metric, ModelEntry, register_family, register_model

TEACHERS = ("clip", "siglip")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class TokenFlowConfig:
    image_size: int = 256
    teacher: str = "clip"  # the semantic tower: "clip" (OpenAI CLIP ViT) or "siglip"
    semantic_width: int = 768
    semantic_depth: int = 12  # blocks stored (SigLIP reads the output of depth - 1 of them)
    semantic_heads: int = 12
    semantic_mlp_dim: int = 3072
    semantic_patch: int = 16
    semantic_table_grid: int = 14  # side of the semantic tower's position table
    semantic_feature_dim: int = 512  # teacher feature per token that the semantic decoder predicts
    semantic_decoder_depth: int = 3
    semantic_decoder_heads: int = 12
    semantic_decoder_grid: int = 14  # side of decoder_vqkd's position table
    semantic_code_dim: int = 32
    pixel_code_dim: int = 8
    codebook_size: int = 32768
    scale_sides: tuple[int, ...] = (1, 2, 4, 6, 8, 10, 12, 14, 16)
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    encoder_channels: int = 128
    encoder_res_blocks: int = 2
    decoder_channels: int = 256  # 256 with 4 (+1) blocks per level: the "enhanced" decoder
    decoder_res_blocks: int = 4
    z_channels: int = 256
    beta: float = 0.25  # commit_loss_beta of the training scripts
    scale_drop: float = 0.1  # probability of leaving one scale out of a training step
    semantic_weight: float = 1.0  # weight of the 1 - cos distillation loss

    @property
    def latent_side(self) -> int:
        """Patch grid side (the patch conv drops a remainder: SigLIP reads 27 patches of 14 from 384 px)."""
        return self.image_size // self.semantic_patch

    @property
    def pixel_size(self) -> int:
        """Resolution the pixel branch runs at (16 px per latent position)."""
        return self.latent_side * 2 ** (len(self.channel_mult) - 1)

    @property
    def code_dim(self) -> int:
        return self.semantic_code_dim + self.pixel_code_dim

    def pixel_conv(self, decoder: bool) -> TamingConvConfig:
        return TamingConvConfig(
            hidden_channels=self.decoder_channels if decoder else self.encoder_channels,
            channel_mult=tuple(self.channel_mult),
            num_res_blocks=self.decoder_res_blocks if decoder else self.encoder_res_blocks,
            z_channels=self.z_channels)

    def check(self) -> None:
        if self.teacher not in TEACHERS:
            raise InputError(f"teacher must be one of {TEACHERS}, got {self.teacher!r}")
        if self.image_size < self.semantic_patch:
            raise InputError(f"image_size {self.image_size} is smaller than the patch {self.semantic_patch}")
        if not self.scale_sides or self.scale_sides[-1] != self.latent_side:
            raise InputError(f"the last scale must be the latent side {self.latent_side}, got {self.scale_sides}")
        if self.teacher == "siglip" and self.latent_side != self.semantic_table_grid:
            raise InputError(f"SigLIP runs at its table's grid {self.semantic_table_grid}: image_size must be "
                             f"{self.semantic_table_grid * self.semantic_patch}")


# ---------------------------------------------------------------------------------------------------------------
# Semantic decoder (BEiT-v2 VQKD decoder)
# ---------------------------------------------------------------------------------------------------------------
class SemanticDecoder(nn.Module):
    """Semantic codes ``[B, Cs, s, s]`` -> patch tokens ``[B, s², D]`` after ``fc_norm``.

    A 1x1 conv (``patch_embed``), a class token, the position table (resampled by the "+0.1" rule at another
    grid), pre-LN blocks (eps 1e-6, exact GELU, q/v biases: our ``qkv.bias`` holds [q; 0; v]) and ``fc_norm``.
    """

    def __init__(self, code_dim: int, width: int, depth: int, heads: int, grid: int) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(code_dim, width, 1)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, width))
        self.blocks = nn.ModuleList(Block(width, heads, act="gelu", norm_eps=1e-6) for _ in range(depth))
        self.fc_norm = nn.LayerNorm(width, eps=1e-6)

    def forward(self, codes: Tensor) -> Tensor:
        x = self.patch_embed(codes)
        B, D, h, w = x.shape
        x = torch.cat([self.cls_token.to(x.dtype).expand(B, -1, -1), x.flatten(2).transpose(1, 2)], dim=1)
        pos = self.pos_embed if x.shape[1] == self.pos_embed.shape[1] else resample_pos_table_dino(
            self.pos_embed, (h, w))
        x = x + pos.to(x.dtype)
        return self.fc_norm(run_blocks(self.blocks, x, keep=slice(1, None)))


def task_layer(width: int, out: int) -> nn.Sequential:
    """``Linear(width, width) -> Tanh -> Linear(width, out)`` (keys ``0`` and ``2``)."""
    return nn.Sequential(nn.Linear(width, width), nn.Tanh(), nn.Linear(width, out))


# ---------------------------------------------------------------------------------------------------------------
# The tokenizer
# ---------------------------------------------------------------------------------------------------------------
class TokenFlow(Tokenizer):
    family = "tokenflow"

    def __init__(self, config: TokenFlowConfig) -> None:
        super().__init__(config)
        cfg = config
        cfg.check()
        if cfg.teacher == "clip":
            self.semantic_encoder: nn.Module = CLIPVisionTower(cfg.semantic_width, cfg.semantic_depth,
                                                               cfg.semantic_heads, cfg.semantic_patch,
                                                               cfg.semantic_table_grid)
        else:
            self.semantic_encoder = SiglipVisionTower(cfg.semantic_width, cfg.semantic_depth, cfg.semantic_heads,
                                                      cfg.semantic_mlp_dim, cfg.semantic_patch,
                                                      cfg.semantic_table_grid)
        self.encode_task_layer = task_layer(cfg.semantic_width, cfg.semantic_code_dim)
        self.pixel_encoder = TamingEncoder(cfg.pixel_conv(decoder=False))
        self.quant_conv = nn.Conv2d(cfg.z_channels, cfg.pixel_code_dim, 1)
        self.quantizer = SharedMappingMultiScaleQuantizer(
            cfg.codebook_size, (cfg.semantic_code_dim, cfg.pixel_code_dim), cfg.scale_sides, beta=cfg.beta,
            scale_drop=cfg.scale_drop)
        self.semantic_decoder = SemanticDecoder(cfg.semantic_code_dim, cfg.semantic_width,
                                                cfg.semantic_decoder_depth, cfg.semantic_decoder_heads,
                                                cfg.semantic_decoder_grid)
        self.decode_task_layer = task_layer(cfg.semantic_width, cfg.semantic_feature_dim)
        self.post_quant_conv = nn.Conv2d(cfg.pixel_code_dim, cfg.z_channels, 1)
        self.pixel_decoder = TamingDecoder(cfg.pixel_conv(decoder=True))

    @property
    def spec(self) -> TokenizerSpec:
        cfg = self.config
        per_scale = tuple(p * p for p in cfg.scale_sides)
        prefixes = tuple(itertools.accumulate(per_scale))
        return TokenizerSpec(family=self.family, image_size=cfg.image_size, token_layout="multiscale",
                             max_tokens=prefixes[-1], min_tokens=prefixes[0], token_choices=prefixes,
                             codebook_sizes=(cfg.codebook_size,), scales=per_scale, code_dim=cfg.code_dim,
                             eval_crop="adm")  # ADM center_crop_arr, as the official reconstruction eval

    # ---- 1. encode ----
    def semantic_features(self, x: Tensor) -> Tensor:
        """Images in [-1, 1] -> the semantic tower's tokens ``[B, s², D]`` (CLIP: after ln_post, patch tokens;
        SigLIP: the output of all blocks but the last)."""
        if self.config.teacher == "clip":
            return self.semantic_encoder(x)
        v = ((x + 1.0) * 127.5).clamp(0, 255.0) / 255.0  # the release's ScalingLayerForSigLip
        v = (v - 0.5) / 0.5
        return self.semantic_encoder(v, layers=self.config.semantic_depth - 1)

    def _encode_latents(self, images: Tensor) -> Tensor:
        """Images in [0, 1] -> pre-quantization latents ``[B, Cs + Cp, s, s]`` (semantic channels first)."""
        x = images * 2 - 1
        sem = self.encode_task_layer(self.semantic_features(x))
        B, N, C = sem.shape
        s = math.isqrt(N)
        sem = sem.transpose(1, 2).reshape(B, C, s, s)
        if x.shape[-1] != self.config.pixel_size or x.shape[-2] != self.config.pixel_size:
            x = F.interpolate(x, size=(self.config.pixel_size, self.config.pixel_size), mode="bicubic")
        pix = self.quant_conv(self.pixel_encoder(x))
        return torch.cat([sem, pix], dim=1)

    def _encode(self, images: Tensor, num_tokens: int | str | None) -> Codes:
        if isinstance(num_tokens, str):
            raise InputError(f"{self.family} has no automatic budget; num_tokens is one of "
                             f"{list(self.spec.token_choices)} (whole scales)")
        indices = self.quantizer.quantize(self._encode_latents(images))  # [B, T]
        per_scale = self.spec.scales
        if num_tokens is not None and num_tokens < indices.shape[1]:
            indices = indices[:, :num_tokens]
            per_scale = per_scale[:self.spec.token_choices.index(num_tokens) + 1]
        return Codes(indices[..., None], scales=per_scale)

    def _quantize(self, latents: Tensor) -> tuple[Codes, Tensor]:
        """Latents ``[B, C, s, s]`` -> (codes of all scales, straight-through quantized latents, same shape)."""
        q = self.quantizer(latents, keep=range(len(self.config.scale_sides)))
        return Codes(q.indices[..., None], scales=self.spec.scales), q.quantized

    # ---- the understanding side ----
    def encode_semantic(self, images: Tensor) -> Tensor:
        """Images ``[B, 3, H, W]`` in [0, 1] -> the features TokenFlow's understanding model consumes: the quantized
        code map summed over all scales, ``[B, s², Cs + Cp]`` (the LLaVA vision tower's ``final_quantize``)."""
        images = check_images(images, self.spec.image_size).to(self.device, self.dtype)
        with torch.no_grad():
            codes = self._encode(images, None)
            f_hat = self.quantizer.lookup(codes.indices[..., 0])
        return f_hat.flatten(2).transpose(1, 2)

    def decode_semantic_latents(self, quantized: Tensor) -> Tensor:
        """Quantized latents ``[B, C, s, s]`` -> predicted teacher features ``[B, s², semantic_feature_dim]``."""
        sem = quantized[:, :self.config.semantic_code_dim]
        return self.decode_task_layer(self.semantic_decoder(sem))

    def decode_semantic(self, codes: Codes) -> Tensor:
        """`Codes` -> the semantic decoder's reconstruction of the teacher features ``[B, s², D_teacher]`` (what
        the distillation loss compares with the teacher)."""
        self._check_layout(codes)
        self._check_decodable(codes)
        with torch.no_grad():
            return self.decode_semantic_latents(self._lookup(codes.to(self.device)))

    # ---- 4. decode ----
    def _decode_latents(self, quantized: Tensor) -> Tensor:
        """Quantized latents ``[B, C, s, s]`` -> raw images (pixel part only), [0, 1] scale."""
        x = self.pixel_decoder(self.post_quant_conv(quantized[:, self.config.semantic_code_dim:]))
        size = self.config.image_size
        if x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(x, size=(size, size), mode="bicubic")
        return (x + 1) / 2

    def _lookup(self, codes: Codes) -> Tensor:
        lengths = None if codes.lengths is None else codes.lengths.to(codes.indices.device)
        return self.quantizer.lookup(codes.indices[..., 0], lengths=lengths)

    def _decode(self, codes: Codes) -> Tensor:
        return self._decode_latents(self._lookup(codes))

    # ---- training ----
    def forward(self, images: Tensor, keep: Any = None) -> dict[str, Any]:
        """Training pass on images in [0, 1] -> ``images`` (raw reconstruction, [0, 1] scale), ``semantic``
        (predicted teacher features ``[B, s², D_teacher]``) and ``quantizer`` (`QuantizerOutput`; in training
        mode one random scale may be left out, as released; `keep` picks the scale indices instead)."""
        q: QuantizerOutput = self.quantizer(self._encode_latents(images), keep=keep)
        return {"images": self._decode_latents(q.quantized), "semantic": self.decode_semantic_latents(q.quantized),
                "quantizer": q}


# ---------------------------------------------------------------------------------------------------------------
# Distillation teacher (training)
# ---------------------------------------------------------------------------------------------------------------
class SemanticTeacher(nn.Module):
    """The frozen teacher of the distillation loss: images in [0, 1] -> target features ``[B, s², D_teacher]``.

    CLIP: the tower on CLIP-mean/std-normalised images, all patch tokens after ``ln_post`` times CLIP's ``proj``
    ``[D, 512]``; SigLIP: ``hidden_states[-2]`` on (x - 0.5) / 0.5. The release initialises the student tower from
    the teacher, so `for_tokenizer` copies the tokenizer's current tower; CLIP's ``proj`` (not in TokenFlow's files)
    is given, or drawn from a seed when training from scratch.
    """

    def __init__(self, tower: nn.Module, teacher: str, proj: Tensor | None = None, depth: int | None = None) -> None:
        super().__init__()
        self.tower, self.teacher, self.depth = tower.eval().requires_grad_(False), teacher, depth
        mean, std = (CLIP_MEAN, CLIP_STD) if teacher == "clip" else ((0.5,) * 3, (0.5,) * 3)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("proj", proj, persistent=False)  # CLIP's [D, D_teacher]; None for SigLIP

    @classmethod
    def for_tokenizer(cls, tokenizer: TokenFlow, proj: Tensor | None = None, seed: int = 0) -> "SemanticTeacher":
        import copy

        cfg = tokenizer.config
        tower = copy.deepcopy(tokenizer.semantic_encoder)
        if cfg.teacher == "clip" and proj is None:
            g = torch.Generator().manual_seed(seed)
            proj = torch.randn(cfg.semantic_width, cfg.semantic_feature_dim, generator=g) * cfg.semantic_width ** -0.5
        return cls(tower, cfg.teacher, proj, cfg.semantic_depth - 1).to(tokenizer.device)

    def train(self, mode: bool = True) -> "SemanticTeacher":
        super().train(mode)
        self.tower.eval()
        return self

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        x = (images - self.mean) / self.std
        if self.teacher == "clip":
            return self.tower(x) @ self.proj.to(x.dtype)
        return self.tower(x, layers=self.depth)


def distillation_loss(predicted: Tensor, target: Tensor) -> Tensor:
    """``mean(1 - cos(predicted, target))`` over tokens (the release's ``calculate_clip_rec_loss``)."""
    t = target / target.norm(dim=-1, keepdim=True)
    p = predicted / predicted.norm(dim=-1, keepdim=True)
    return (1 - (t * p).sum(-1)).mean()


# ---------------------------------------------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------------------------------------------
register_family(FamilySpec(
    name="tokenflow",
    tokenizer_cls=TokenFlow,
    config_cls=TokenFlowConfig,
    convert=convert.convert_state_dict,
    config_from_official=convert.config_from_official,
    extract=convert.extract,
    skip=convert.SKIP,
    official_repo="https://github.com/ByteFlow-AI/TokenFlow (tokenflow/tokenizer/vq_model.py)",
    description="TokenFlow: dual codebook with shared mapping (one index -> a 32-d semantic + an 8-d pixel code) "
                "over multi-scale residual VQ; CLIP-B/16 or SigLIP semantic tower, LlamaGen VQGAN pixel branch",
))

_CITATION = ("@inproceedings{qu2025tokenflow, title={TokenFlow: Unified Image Tokenizer for Multimodal Understanding "
             "and Generation}, author={Qu, Liao and Zhang, Huichao and Liu, Yiheng and Wang, Xu and Jiang, Yi and "
             "Gao, Yiming and Ye, Hu and Du, Daniel K. and Yuan, Zehuan and Wu, Xinglong}, booktitle={CVPR}, "
             "year={2025}}")
_PROTOCOL = ("ImageNet-1k val 50k, ADM center_crop_arr at {size}; reconstructions saved as PNG by clamp(127.5x + "
             "128, 0, 255) then truncation; pytorch-fid (InceptionV3 pool3) folder against folder "
             "(tokenizer/reconstruction_vq_ddp.py)")

register_model(ModelEntry(
    name="tokenflow-clipb-32k-enhanced",
    family="tokenflow",
    config={},
    description="TokenFlow tokenizer of the TokenFlow-t2i model, 256x256: CLIP ViT-B/16 semantic tower (trained at "
                "224, position table resampled), 9 scales 1..16 = 817 tokens, 32768 shared entries (32 + 8 dims), "
                "enhanced ch-256 pixel decoder",
    hub_repo="ByteFlow-AI/TokenFlow",
    hub_file="tokenflow_clipb_32k_enhanced.pt",
    license="apache-2.0",
    paper="https://arxiv.org/abs/2412.03069",
    code="https://github.com/ByteFlow-AI/TokenFlow",
    citation=_CITATION,
    tags=("multiscale", "dual-codebook", "semantic", "clip"),
    extra={"official_config": "TokenFlow(ModelArgs(codebook_size=32768, codebook_embed_dim=8, semantic_code_dim=32, "
                              "teacher='clipb_224', enhanced_decoder=True, infer_interpolate=True))",
           "teacher": "OpenAI CLIP ViT-B/16 (fine-tuned; distillation target: patch tokens @ proj, 512-d)"},
))

register_model(ModelEntry(
    name="tokenflow-siglip-32k",
    family="tokenflow",
    config=dict(image_size=384, teacher="siglip", semantic_width=1152, semantic_depth=27, semantic_heads=16,
                semantic_mlp_dim=4304, semantic_patch=14, semantic_table_grid=27, semantic_feature_dim=1152,
                semantic_decoder_grid=27, scale_sides=(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 17, 22, 27),
                decoder_channels=128, decoder_res_blocks=2),
    description="TokenFlow-XL tokenizer (understanding model's), 384x384: SigLIP so400m-patch14-384 semantic tower, "
                "15 scales 1..27 = 2227 tokens, 32768 shared entries (32 + 8 dims), pixel branch at 432 px",
    hub_repo="ByteFlow-AI/TokenFlow",
    hub_file="tokenflow_siglip_32k.pt",
    metrics=(Metric("rFID", 0.63, "ImageNet-1k val 50k, 384x384", _PROTOCOL.format(size=384),
                    "TokenFlow paper abstract (arXiv 2412.03069)"),),
    license="apache-2.0",
    paper="https://arxiv.org/abs/2412.03069",
    code="https://github.com/ByteFlow-AI/TokenFlow",
    citation=_CITATION,
    tags=("multiscale", "dual-codebook", "semantic", "siglip"),
    extra={"official_config": "TokenFlow(ModelArgs(codebook_size=32768, teacher='siglip_384'))",
           "teacher": "google/siglip-so400m-patch14-384 (fine-tuned; distillation target: hidden_states[-2], 1152-d)"},
))
