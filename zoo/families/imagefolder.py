"""ImageFolder (Li et al., ICLR 2025): two product-quantized branches of multi-scale residual tokens, folded.

Method, as released (tokenizer ``MSVR10P2``: multi-scale, VQ, 10 scales, product quantization with 2 branches):
1. Encode. The image in [-1, 1] is cut into 16x16 patches and read by a DINOv2-B ViT re-patched from 14 to 16, after
   which come two 11x11 grids of learned latent queries, one per branch. Each grid gets the ViT's position table
   resampled to 11x11 (bicubic with antialias, on every forward) and a level embedding (0 for the class and patch
   tokens, 1 and 2 for the branches). The 242 query outputs are projected 768 -> 32 (``quant_conv``): one 32x11x11
   map per branch.
2. Quantize. Each branch has its own multi-scale residual quantizer over the scales [1, 1, 2, 3, 3, 4, 5, 6, 8, 11]
   (cosine lookup in a 4096x32 codebook, raw rows as code vectors, four shared φ convolutions): 286 tokens per
   branch. In training the first 10 % of a batch keep only a random prefix of n ~ U{3..10} scales (quantizer
   dropout), and branch 1 is pulled towards a frozen DINOv2's CLS feature (the semantic branch, `SemanticLoss`);
   branch 0 keeps the detail.
3. Fold. The two branches' tokens at the same scale position form one folded token: 286 positions holding two
   indices (``Codes.indices [B, 286, 2]``), which the generator predicts together (``codes.fold()`` gives one
   product index per position).
4. Decode. The two quantized maps are concatenated (64 channels), projected to 768 (``post_quant_conv``) and read by
   a ViT-B decoder whose sequence is [class, 256 mask tokens] + [class, 121 latents] (each part with its own class
   token and positions, levels 0 and 1); a linear head predicts each 16x16 patch. A prefix of the scales decodes to
   a coarser image.
Inputs and outputs are [0, 1] at the zoo boundary and [-1, 1] inside, as released.
"""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..api import Codes, Tokenizer, TokenizerSpec
from ..convert import imagefolder as convert
from ..convert.common import check_state_dict, load_file
from ..errors import InputError
from ..nn.dinov2 import DinoViT, resample_pos_embed
from ..quant import MultiScaleResidualQuantizer, ProductQuantizer, QuantizerOutput
from ..registry import FamilySpec, Metric, ModelEntry, register_family, register_model

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class ImageFolderConfig:
    image_size: int = 256
    patch_size: int = 16
    encoder_width: int = 768
    encoder_depth: int = 12
    encoder_heads: int = 12
    decoder_width: int = 768
    decoder_depth: int = 12
    decoder_heads: int = 12
    mlp_ratio: float = 4.0
    branches: int = 2  # product_quant
    scale_sides: tuple[int, ...] = (1, 1, 2, 3, 3, 4, 5, 6, 8, 11)  # v_patch_nums; the last is each grid's side
    codebook_size: int = 4096
    code_dim: int = 32  # codebook_embed_dim
    l2_norm: bool = True  # cosine lookup (codebook_l2_norm)
    phi_count: int = 4  # share_quant_resi: φ convolutions shared across the scales
    phi_ratio: float = 0.5  # quant_resi: h -> (1 - r) h + r conv(h)
    beta: float = 0.25  # commit_loss_beta
    quantizer_dropout: float = 0.1  # codebook_drop: leading fraction of a batch trained on a prefix of scales
    dropout_min_scales: int = 3  # start_drop: that prefix keeps n ~ U{start_drop..S} scales
    semantic_weight: float = 0.1  # sem_loss_weight (0 without semantic regularisation)
    semantic_logit_scale: float = 1.0  # sem_loss_scale
    semantic_l2_norm: bool = False  # clip_norm

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def latent_side(self) -> int:
        return self.scale_sides[-1]

    def check(self) -> None:
        if self.image_size % self.patch_size:
            raise InputError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.branches < 1 or not self.scale_sides:
            raise InputError("ImageFolder needs at least one branch and one scale")


# ---------------------------------------------------------------------------------------------------------------
# 1. Encoder: patches + one grid of latent queries per branch -> the queries' outputs
# ---------------------------------------------------------------------------------------------------------------
class LatentQueryEncoder(nn.Module):
    """Image ``[B, 3, H, W]`` in [-1, 1] -> latent outputs ``[B, G·s², D]`` (branch-major, each grid row-major)."""

    def __init__(self, cfg: ImageFolderConfig) -> None:
        super().__init__()
        self.branches, self.side = cfg.branches, cfg.latent_side
        self.vit = DinoViT(cfg.encoder_width, cfg.encoder_depth, cfg.encoder_heads, cfg.grid, cfg.patch_size,
                           mlp_ratio=cfg.mlp_ratio)
        self.latent_tokens = nn.Parameter(torch.zeros(1, cfg.branches * self.side ** 2, cfg.encoder_width))
        self.lvl_embed = nn.Embedding(1 + cfg.branches, cfg.encoder_width)

    def forward(self, images: Tensor) -> Tensor:
        x = self.vit.embed(self.vit.patch_embed(images))  # [B, 1 + g², D]
        B, n, s = x.shape[0], self.side ** 2, self.side
        # every grid gets the position table resampled to s x s (its class row is dropped with the class token)
        pos = resample_pos_embed(self.vit.pos_embed, (s, s))[:, 1:].to(x.dtype)
        queries = self.latent_tokens.to(x.dtype).expand(B, -1, -1) + pos.repeat(1, self.branches, 1)
        levels = convert.level_ids(x.shape[1], [n] * self.branches).to(x.device)
        x = torch.cat([x, queries], dim=1) + self.lvl_embed(levels).to(x.dtype)
        return self.vit.run(x, keep=slice(x.shape[1] - self.branches * n, None))


# ---------------------------------------------------------------------------------------------------------------
# 4. Decoder: mask tokens + latent tokens -> patches -> pixels
# ---------------------------------------------------------------------------------------------------------------
class MaskTokenDecoder(nn.Module):
    """Latent tokens ``[B, s², D]`` (row-major) -> raw image ``[B, 3, H, W]`` in [-1, 1] scale (unclamped)."""

    def __init__(self, cfg: ImageFolderConfig) -> None:
        super().__init__()
        self.grid, self.side, self.patch = cfg.grid, cfg.latent_side, cfg.patch_size
        self.vit = DinoViT(cfg.decoder_width, cfg.decoder_depth, cfg.decoder_heads, cfg.grid, patch_size=None,
                           mlp_ratio=cfg.mlp_ratio)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.decoder_width))
        self.lvl_embed = nn.Embedding(2, cfg.decoder_width)
        self.to_pixel = nn.Linear(cfg.decoder_width, 3 * cfg.patch_size ** 2)

    def unpatchify(self, x: Tensor) -> Tensor:
        """``[B, g², p·p·3]`` (each row laid out (p, q, c)) -> ``[B, 3, g·p, g·p]``."""
        B, g, p = x.shape[0], self.grid, self.patch
        return x.reshape(B, g, g, p, p, 3).permute(0, 5, 1, 3, 2, 4).reshape(B, 3, g * p, g * p)

    def forward(self, z: Tensor) -> Tensor:
        B, n = z.shape[0], self.grid ** 2
        x = self.vit.embed(self.mask_token.to(z.dtype).expand(B, n, -1))  # [B, 1 + g², D]
        z = self.vit.embed(z, (self.side, self.side))  # its own class token, positions resampled: [B, 1 + s², D]
        levels = convert.level_ids(x.shape[1], [z.shape[1]]).to(z.device)
        x = torch.cat([x, z], dim=1) + self.lvl_embed(levels).to(z.dtype)
        return self.unpatchify(self.to_pixel(self.vit.run(x, keep=slice(1, 1 + n))))


# ---------------------------------------------------------------------------------------------------------------
# The tokenizer
# ---------------------------------------------------------------------------------------------------------------
class ImageFolder(Tokenizer):
    family = "imagefolder"

    def __init__(self, config: ImageFolderConfig) -> None:
        super().__init__(config)
        cfg = config
        cfg.check()
        self.encoder = LatentQueryEncoder(cfg)
        self.quant_conv = nn.Conv2d(cfg.encoder_width, cfg.code_dim, 1)
        self.quantizer = ProductQuantizer(
            [MultiScaleResidualQuantizer(cfg.codebook_size, cfg.code_dim, cfg.scale_sides, l2_norm=cfg.l2_norm,
                                         beta=cfg.beta, phi_count=cfg.phi_count, resi_ratio=cfg.phi_ratio,
                                         dropout_fraction=cfg.quantizer_dropout,
                                         dropout_min_scales=cfg.dropout_min_scales)
             for _ in range(cfg.branches)],
            dim=1, loss_reduction="mean")
        self.post_quant_conv = nn.Conv2d(cfg.branches * cfg.code_dim, cfg.decoder_width, 1)
        self.decoder = MaskTokenDecoder(cfg)

    @property
    def spec(self) -> TokenizerSpec:
        cfg = self.config
        per_scale = tuple(p * p for p in cfg.scale_sides)
        prefixes = tuple(itertools.accumulate(per_scale))
        return TokenizerSpec(family=self.family, image_size=cfg.image_size, token_layout="multiscale",
                             max_tokens=prefixes[-1], min_tokens=prefixes[0], token_choices=prefixes,
                             codebook_sizes=(cfg.codebook_size,) * cfg.branches, scales=per_scale,
                             code_dim=cfg.code_dim, eval_crop="adm")  # ADM center_crop_arr, as the official eval

    # ---- 1. encode ----
    def features(self, images: Tensor) -> list[Tensor]:
        """Images in [0, 1] -> one pre-quantization map ``[B, code_dim, s, s]`` per branch."""
        h = self.encoder(images * 2 - 1)  # [B, G·s², D]
        B, L, D = h.shape
        f = self.quant_conv(h.view(B, L, 1, D).permute(0, 3, 1, 2))  # [B, C, G·s², 1], tokens on the height axis
        s = self.config.latent_side
        return [part.reshape(B, -1, s, s) for part in f.chunk(self.config.branches, dim=2)]

    # ---- 2./3. quantize: indices [B, T, G], one column per branch ----
    def _encode(self, images: Tensor, num_tokens: int | str | None) -> Codes:
        if isinstance(num_tokens, str):
            raise InputError(f"{self.family} has no automatic budget; num_tokens is one of "
                             f"{list(self.spec.token_choices)} (whole scales)")
        indices = self.quantizer.quantize(self.features(images))  # [B, 286, G]
        per_scale = self.spec.scales
        if num_tokens is not None and num_tokens < indices.shape[1]:
            indices = indices[:, :num_tokens]
            per_scale = per_scale[:self.spec.token_choices.index(num_tokens) + 1]
        return Codes(indices, scales=per_scale)

    # ---- the differentiable latent path: branches side by side on channels ----
    def _encode_latents(self, images: Tensor) -> Tensor:
        """Images in [0, 1] -> pre-quantization maps of all branches ``[B, G·C, s, s]`` (`features`, concatenated)."""
        return torch.cat(self.features(images), dim=1)

    def _quantize(self, latents: Tensor) -> tuple[Codes, Tensor]:
        """``[B, G·C, s, s]`` -> (codes ``[B, 286, G]`` of all scales, straight-through reconstruction of every
        branch ``[B, G·C, s, s]``); no quantizer dropout (all scales kept)."""
        feats = list(latents.chunk(self.config.branches, dim=1))
        keep = torch.full((latents.shape[0],), len(self.config.scale_sides), dtype=torch.int64, device=latents.device)
        q = self.quantizer(feats, keep=keep)
        return Codes(q.indices, scales=self.spec.scales), q.quantized

    # ---- 4. decode ----
    def _decode_latents(self, quantized: Tensor) -> Tensor:
        """Quantized maps of all branches ``[B, G·C, s, s]`` (concatenated on channels) -> raw images, [0, 1] scale."""
        z = self.post_quant_conv(quantized).flatten(2).permute(0, 2, 1)  # [B, s², D]
        return (self.decoder(z) + 1) / 2

    def _decode(self, codes: Codes) -> Tensor:
        lengths = None if codes.lengths is None else codes.lengths.to(codes.indices.device)
        f_hats = self.quantizer.lookup(codes.indices, lengths=lengths)
        return self._decode_latents(torch.cat(f_hats, dim=1))

    # ---- generators ----
    def teacher_forcing_input(self, codes: Codes) -> Tensor:
        """Next-scale AR input of full codes: ``[B, T - 1, G·C]`` (each branch's running reconstruction
        area-downsampled to the next scale, branches concatenated on channels; the release's idxBl_to_var_input)."""
        codes.validate(self.spec.codebook_sizes, self.spec.max_tokens)
        if codes.num_tokens != self.spec.max_tokens:
            raise InputError("teacher_forcing_input needs all scales")
        branches = self.quantizer.branches
        return torch.cat([q.var_input(codes.indices[..., g].to(self.device)) for g, q in enumerate(branches)], -1)

    @torch.no_grad()
    def next_scale_input(self, state: list[Tensor] | None, si: int,
                         indices: Sequence[Tensor]) -> tuple[list[Tensor], Tensor | None]:
        """One step of next-scale generation (the release's ``get_next_autoregressive_input``, per branch).

        state: each branch's running reconstruction ``[B, C, s, s]`` (None before scale 0); indices: scale
        `si`'s sampled codes, one int64 ``[B, p²]`` per branch. Returns the new state and the next scale's input
        ``[B, p_next², G·C]`` (branches side by side), or None after the last scale.
        """
        branches = self.quantizer.branches
        if len(indices) != len(branches):
            raise InputError(f"next_scale_input needs one index tensor per branch ({len(branches)}), got {len(indices)}")
        p, side = self.config.scale_sides[si], self.config.latent_side
        B = indices[0].shape[0]
        if state is None:
            state = [torch.zeros(B, q.dim, side, side, device=self.device) for q in branches]
        maps = []
        for g, (q, idx) in enumerate(zip(branches, indices)):
            h = q.embedding(idx.to(self.device).reshape(B, p, p)).permute(0, 3, 1, 2)
            state[g], nxt = q.next_var_input(si, state[g], h)
            maps.append(nxt)
        if si == len(self.config.scale_sides) - 1:
            return state, None
        return state, torch.cat([m.flatten(2).transpose(1, 2) for m in maps], dim=-1)

    # ---- training ----
    def forward(self, images: Tensor, keep: Tensor | None = None) -> dict[str, Any]:
        """Training pass on images in [0, 1].

        Returns ``images`` (raw reconstruction, [0, 1] scale: the release's losses are computed on [-1, 1], i.e.
        on ``2·images - 1``), ``quantizer`` (`QuantizerOutput`, branch losses averaged; ``quantized`` is
        ``[B, G·C, s, s]``), ``branches`` (each branch's straight-through map; the last one is the semantic branch)
        and ``keep`` (scales kept per sample). In training mode the quantizer dropout is drawn once per call and
        shared by the branches, as released.
        """
        feats = self.features(images)
        first = self.quantizer.branches[0]
        if keep is None and self.training and self.config.quantizer_dropout > 0:
            keep = first.draw_keep(images.shape[0], images.device)
        q: QuantizerOutput = self.quantizer(feats, keep=keep)
        return {"images": self._decode_latents(q.quantized), "quantizer": q,
                "branches": list(q.quantized.chunk(self.config.branches, dim=1)), "keep": keep}


# ---------------------------------------------------------------------------------------------------------------
# Semantic regularisation (training)
# ---------------------------------------------------------------------------------------------------------------
class SemanticLoss(nn.Module):
    """ImageFolder's semantic regularisation of one branch (released: the last one) against a frozen DINOv2.

    The teacher's CLS feature of the ImageNet-normalised image goes through the tokenizer's own ``quant_conv``
    (trainable, so it learns from this loss); the student is the spatial mean of the branch's quantized map. Loss:
    ``weight · (CE(s·t @ q.T) + CE(s·q @ t.T)) / 2`` over the batch (CLIP InfoNCE, logit scale s, features
    gathered across processes with gradients), leaving out the leading samples that quantizer dropout may cut.
    teacher: images ``[B, 3, H, W]`` (ImageNet-normalised) -> ``[B, D]``; `semantic_teacher` builds the release's.
    """

    def __init__(self, teacher: nn.Module, weight: float = 0.1, logit_scale: float = 1.0,
                 l2_norm: bool = False) -> None:
        super().__init__()
        self.teacher = teacher.eval().requires_grad_(False)
        self.weight, self.logit_scale, self.l2_norm = weight, logit_scale, l2_norm
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def for_tokenizer(cls, tokenizer: ImageFolder, teacher: nn.Module) -> "SemanticLoss":
        cfg = tokenizer.config
        return cls(teacher, cfg.semantic_weight, cfg.semantic_logit_scale, cfg.semantic_l2_norm)

    def train(self, mode: bool = True) -> "SemanticLoss":
        super().train(mode)
        self.teacher.eval()  # frozen: never in training mode
        return self

    def forward(self, images: Tensor, branch: Tensor, project: nn.Module, exclude: int = 0,
                epoch: int | None = None) -> Tensor:
        """images ``[B, 3, H, W]`` in [0, 1]; branch: the semantic branch's quantized map ``[B, C, s, s]``;
        project: the tokenizer's ``quant_conv``; exclude: leading samples left out (the release leaves out
        ``int(B · quantizer_dropout)``); epoch: only for the l2-normalised variant, whose logit scale ramps to 100
        over 200 epochs as released."""
        with torch.no_grad():
            cls_feature = self.teacher((images - self.mean) / self.std)
        target = project(cls_feature[..., None, None].to(branch.dtype)).mean(dim=(2, 3))
        student = branch.mean(dim=(2, 3))
        with torch.autocast(device_type=images.device.type, enabled=False):
            t, q = target[exclude:].float(), student[exclude:].float()
            scale = self.logit_scale
            if self.l2_norm:
                t, q = t / t.norm(dim=1, keepdim=True), q / q.norm(dim=1, keepdim=True)
                if epoch is not None:
                    scale = (epoch % 200) / 200 * (100 - scale) + scale if epoch < 200 else 100
            t, q = _gather_with_grad(t), _gather_with_grad(q)
            labels = torch.arange(t.shape[0], device=t.device)
            loss = (F.cross_entropy(scale * t @ q.T, labels) + F.cross_entropy(scale * q @ t.T, labels)) / 2
        return loss * self.weight


def _gather_with_grad(x: Tensor) -> Tensor:
    """All processes' rows, with gradients flowing back to each process's own (the release gathers so)."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        from torch.distributed.nn import all_gather

        return torch.cat(all_gather(x), dim=0)
    return x


def semantic_teacher(checkpoint: str | os.PathLike | Mapping[str, Tensor], heads: int | None = None) -> DinoViT:
    """The frozen DINOv2 stored in a release (``semantic_model.*``), as a `DinoViT` returning the CLS feature.

    checkpoint: an official file or its (already extracted) state dict. heads: needed only for non-DINOv2 widths.
    """
    state = checkpoint
    if isinstance(checkpoint, (str, os.PathLike)):
        state = convert.extract(load_file(checkpoint, convert.ALLOWED_GLOBALS))[0]
    ours = convert.teacher_state_dict(state)
    prefixed = {f"semantic_model.{k}": v for k, v in ours.items()}
    sizes = convert.vit_sizes(prefixed, "semantic_model.")
    heads = convert.heads_for(None, sizes["width"], heads, "semantic")
    with torch.device("meta"):
        teacher = DinoViT(sizes["width"], sizes["depth"], heads, sizes["grid"], sizes["patch"],
                          mlp_ratio=sizes["mlp_ratio"])
    check_state_dict(teacher, ours, "semantic_model")
    teacher.load_state_dict({k: v.contiguous() for k, v in ours.items()}, strict=True, assign=True)
    return teacher.eval().requires_grad_(False)


# ---------------------------------------------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------------------------------------------
register_family(FamilySpec(
    name="imagefolder",
    tokenizer_cls=ImageFolder,
    config_cls=ImageFolderConfig,
    convert=convert.convert_state_dict,
    config_from_official=convert.config_from_official,
    extract=convert.extract,
    skip=convert.SKIP,
    allow=convert.ALLOWED_GLOBALS,
    official_repo="https://github.com/lxa9867/ImageFolder (tokenizer/tokenizer_image/xqgan_model.py)",
    description="ImageFolder: 2 product-quantized branches x 10-scale residual VQ (286 folded positions), "
                "DINOv2-B ViT encoder with latent queries, ViT-B mask-token decoder",
))

_RFID_PROTOCOL = (
    "ImageNet-1k val 50k, ADM center_crop_arr 256 (box-halve, bicubic short side 256, centre crop); reconstruction "
    "clamped to [-1, 1]; reconstructions and originals to uint8 by clamp(127.5x + 128, 0, 255) then truncation; "
    "OpenAI ADM TF evaluator (InceptionV3 pool3, batch 32), reconstruction set vs the same crops; best-rFID checkpoint"
)
_CITATION = ("@inproceedings{li2025imagefolder, title={ImageFolder: Autoregressive Image Generation with Folded "
             "Tokens}, author={Li, Xiang and Qiu, Kai and Chen, Hao and Kuen, Jason and Gu, Jiuxiang and Raj, "
             "Bhiksha and Lin, Zhe}, booktitle={ICLR}, year={2025}}")

for _k, _rfid in ((4096, 0.80), (8192, 0.70), (16384, 0.67)):
    _metrics = [Metric("rFID", _rfid, "ImageNet-1k val 50k, 256x256", _RFID_PROTOCOL,
                       "README of adobe-research/ImageFolder (model zoo table)")]
    if _k == 4096:
        _metrics.append(Metric(
            "gFID", 2.60, "ImageNet 256x256 class-conditional, 50k samples",
            "VAR-d17 (362M) on these tokens (imagenet-var-4096.pt), cfg 3.25 ramped linearly over the scales, top-k "
            "750, top-p 0.95; ADM evaluator vs VIRTUAL_imagenet256_labeled.npz",
            "README of adobe-research/ImageFolder (generator table, ablation row 8)"))
        _metrics.append(Metric("linear-probe top-1", 58.0, "ImageNet-1k val", "linear probing of the tokenizer's "
                               "features (tokenizer/tokenizer_image/linear_probing.py)", "README ablation row 8"))
    register_model(ModelEntry(
        name=f"imagefolder-{_k}",
        family="imagefolder",
        config={"codebook_size": _k},
        description=f"ImageFolder tokenizer (MSVR10P2-{_k}), ImageNet 256x256: 2 branches x 286 tokens "
                    f"(10 scales 1..11), codebooks {_k}x32, DINOv2-B encoder / ViT-B decoder",
        hub_repo="ang9867/imagefolder",
        hub_file=f"imagenet-{_k}.pt",
        metrics=tuple(_metrics),
        license="Adobe Research License (non-commercial research use)",
        paper="https://arxiv.org/abs/2410.01756",
        code="https://github.com/adobe-research/ImageFolder",
        citation=_CITATION,
        tags=("multiscale", "product-quantization", "2-branches"),
        extra={"official_config": f"configs/MSVR10P2-{_k}.yaml (lxa9867/ImageFolder); XQ-GAN hub copy: "
                                  f"qiuk6/XQ-GAN MSVR10P2-{_k}/best_ckpt.pt"},
    ))
