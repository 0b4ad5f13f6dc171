"""UniTok (Ma et al., 2025): one discrete tokenizer for generation and understanding, via multi-codebook quantization.

Method, as released (FoundationVision/UniTok):
1. Encode: a ViTamin-L hybrid (conv stem + MBConv stages, then 31 GeGLU transformer blocks of width 1024) turns a
   256x256 image in [-1, 1] into 16x16 row-major tokens.
2. Attention factorization: a one-layer attention projection takes each token from 1024 to 64 channels
   (16 heads of 64, averaged over heads).
3. Multi-codebook quantization (MCQ): the 64 channels split into 8 chunks of 8; each chunk is l2-normalised and
   matched by cosine (argmax) against its own 4096-entry normalised codebook. A position carries 8 sub-codes:
   `Codes.indices` ``[B, 256, 8]``, a vocabulary of 4096^8 while every lookup stays small.
4. Decode: the 8 normalised sub-codewords, concatenated (64), go back to 1024 through the mirror attention
   projection (heads concatenated), then a ViTamin decoder (31 blocks, then an inverted-MBConv upsampler).
5. Understand: mean of the post-quantization tokens -> LayerNorm -> Linear 1024->768 is a CLIP image embedding,
   trained contrastively against an open_clip text tower, so zero-shot classification runs on the discrete codes.
The attention projections were causal (raster order) in the first release (2025-02) and bidirectional in the
2025-04-02 checkpoint, published under the same file name with the same keys: `is_causal` picks the version.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..api import Codes, Tokenizer, TokenizerSpec, check_images
from ..convert import unitok as convert
from ..errors import ConfigError, InputError, OfflineError
from ..nn.clip_text import CLIPTextTransformer, clip_tokenize
from ..nn.vit import GluMlp
from ..nn.vitamin import ViTaminDecoder, ViTaminEncoder
from ..quant import MultiCodebookQuantizer, QuantizerOutput
from ..registry import FamilySpec, Metric, ModelEntry, register_family, register_model


@dataclass
class UniTokConfig:
    image_size: int = 256
    stem_width: int = 160
    stage_widths: tuple[int, ...] = (160, 320)
    stage_depths: tuple[int, ...] = (2, 4)
    width: int = 1024
    depth: int = 31  # encoder and decoder blocks
    heads: int = 16
    mlp_ratio: float = 2.0
    decoder_widths: tuple[int, ...] = (320, 160)
    decoder_up_depths: tuple[int, ...] = (4, 2)
    num_codebooks: int = 8
    codebook_size: int = 4096  # entries of each sub-codebook
    code_dim: int = 64  # channels of all sub-codebooks together (8 x 8)
    projection_heads: int = 16  # width // code_dim upstream
    is_causal: bool = False  # True: the first release's causal attention projections
    beta: float = 0.25
    embed_dim: int = 768  # CLIP embedding
    text_vocab_size: int = 49408
    text_context_length: int = 77
    text_width: int = 768
    text_heads: int = 12
    text_layers: int = 12

    @property
    def grid(self) -> int:
        return self.image_size // 16


# ---------------------------------------------------------------------------------------------------------------
# 2. Attention factorization: the width-changing attention projection around the quantizer
# ---------------------------------------------------------------------------------------------------------------
class ProjectionAttention(nn.Module):
    """Self-attention from ``in_dim`` to ``out_dim`` channels, ``[B, L, in] -> [B, L, out]``.

    q, k, v have ``max(in, out)`` channels in `heads` heads. Narrowing (in > out), the heads' outputs are averaged
    (then average-pooled to `out` if a head is wider); widening, they are concatenated. Upstream's key bias is a
    zero buffer; we hold ``[q_bias; 0; v_bias]`` as ``qkv.bias`` (a key bias cannot change a softmax anyway).
    """

    def __init__(self, in_dim: int, out_dim: int, heads: int, is_causal: bool = False) -> None:
        super().__init__()
        inner = max(in_dim, out_dim)
        if inner % heads:
            raise ConfigError(f"attention projection width {inner} is not divisible by {heads} heads")
        self.in_dim, self.out_dim, self.heads, self.head_dim = in_dim, out_dim, heads, inner // heads
        self.is_causal = is_causal
        self.qkv = nn.Linear(in_dim, 3 * inner)
        self.proj = nn.Linear(out_dim, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        B, L, _ = x.shape
        q, k, v = self.qkv(x).reshape(B, L, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(q, k, v, is_causal=self.is_causal)  # [B, heads, L, head_dim]
        if self.in_dim > self.out_dim:
            x = x.mean(dim=1)
            if self.head_dim != self.out_dim:
                x = F.adaptive_avg_pool1d(x, self.out_dim)
        else:
            x = x.transpose(1, 2).reshape(B, L, -1)
        return self.proj(x)


class AttnProjection(nn.Module):
    """``y = proj(norm3(x)) + attn(norm1(x)); y + mlp(norm2(y))``, ``[B, L, in] -> [B, L, out]``.

    norm1/2/3 are LayerNorms with eps 1e-5 (the GeGLU's own input norm has 1e-6); the GeGLU is 2x wide.
    """

    def __init__(self, in_dim: int, out_dim: int, heads: int, is_causal: bool = False) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(in_dim)
        self.attn = ProjectionAttention(in_dim, out_dim, heads, is_causal)
        self.proj = nn.Linear(in_dim, out_dim)
        self.norm3 = nn.LayerNorm(in_dim)
        self.norm2 = nn.LayerNorm(out_dim)
        self.mlp = GluMlp(out_dim, 2 * out_dim, act="gelu_tanh", norm=True, norm_eps=1e-6, norm_position="input")

    def forward(self, x: Tensor) -> Tensor:
        y = self.proj(self.norm3(x)) + self.attn(self.norm1(x))
        return y + self.mlp(self.norm2(y))


# ---------------------------------------------------------------------------------------------------------------
# The tokenizer
# ---------------------------------------------------------------------------------------------------------------
class UniTok(Tokenizer):
    family = "unitok"
    compile_modules = ("encoder", "quant_proj", "post_quant_proj", "decoder", "text_encoder")

    def __init__(self, config: UniTokConfig) -> None:
        super().__init__(config)
        cfg = config
        if cfg.image_size % 16:
            raise ConfigError(f"image_size {cfg.image_size} is not a multiple of 16 (the encoder's stride)")
        if cfg.code_dim % cfg.num_codebooks:
            raise ConfigError(f"code_dim {cfg.code_dim} is not divisible by num_codebooks {cfg.num_codebooks}")
        if len(cfg.stage_widths) != 2 or len(cfg.decoder_widths) != 2:
            raise ConfigError("UniTok's ViTamin has two MBConv stages and two inverted-MBConv upsampling stages")
        # 1. encoder
        self.encoder = ViTaminEncoder(cfg.stem_width, cfg.stage_widths, cfg.stage_depths, cfg.width, cfg.depth,
                                      cfg.heads, cfg.mlp_ratio)
        # 2.-3. attention factorization and multi-codebook quantization
        self.quant_proj = AttnProjection(cfg.width, cfg.code_dim, cfg.projection_heads, cfg.is_causal)
        self.quantizer = MultiCodebookQuantizer(cfg.num_codebooks, cfg.codebook_size, cfg.code_dim, l2_norm=True,
                                                beta=cfg.beta, similarity="dot")
        bound = (cfg.code_dim // cfg.num_codebooks) ** -0.5 / 36  # upstream vocab_init=-1
        for q in self.quantizer.codebooks:
            nn.init.uniform_(q.embedding.weight, -bound, bound)
        # 4. decoder
        self.post_quant_proj = AttnProjection(cfg.code_dim, cfg.width, cfg.projection_heads, cfg.is_causal)
        self.decoder = ViTaminDecoder(cfg.width, cfg.depth, cfg.heads, cfg.decoder_widths, cfg.decoder_up_depths,
                                      cfg.mlp_ratio)
        # 5. CLIP side
        self.text_encoder = CLIPTextTransformer(cfg.text_vocab_size, cfg.text_context_length, cfg.text_width,
                                                cfg.text_heads, cfg.text_layers, cfg.embed_dim)
        self.fc_norm = nn.LayerNorm(cfg.width, eps=1e-6)
        self.projection = nn.Linear(cfg.width, cfg.embed_dim)
        self.logit_scale = nn.Parameter(torch.full((), math.log(1 / 0.07)))

    @property
    def spec(self) -> TokenizerSpec:
        cfg, g = self.config, self.config.grid
        return TokenizerSpec(family=self.family, image_size=cfg.image_size, token_layout="2d", max_tokens=g * g,
                             grid=(g, g), codebook_sizes=(cfg.codebook_size,) * cfg.num_codebooks,
                             code_dim=cfg.code_dim)

    # ---- 1.-3. encode ----
    def _encode_latents(self, images: Tensor) -> Tensor:
        """Images ``[B, 3, H, W]`` in [0, 1] -> pre-quantization latents ``[B, L, code_dim]`` (L = g·g, row-major)."""
        return self.quant_proj(self.encoder(images * 2 - 1))

    def _quantize(self, latents: Tensor) -> tuple[Codes, Tensor]:
        """``[B, L, code_dim]`` -> (codes ``[B, L, G]``, straight-through concatenated normalised sub-codewords
        ``[B, L, code_dim]``)."""
        q = self.quantizer(latents)
        return Codes(q.indices, grid=(self.config.grid, self.config.grid)), q.quantized

    def _encode(self, images: Tensor, num_tokens: int | None) -> Codes:
        indices = self.quantizer.quantize(self._encode_latents(images))  # [B, L, G]
        return Codes(indices, grid=(self.config.grid, self.config.grid))

    # ---- 4. decode ----
    def codes_to_latents(self, codes: Codes) -> Tensor:
        """Codes -> the concatenated normalised sub-codewords ``[B, T, code_dim]`` (upstream ``idx_to_f``)."""
        return self.quantizer.lookup(codes.indices.to(self.device))

    def codes_to_features(self, codes: Codes) -> Tensor:
        """Codes -> post-quantization tokens ``[B, T, width]``: what UniTok's LLaVA vision tower feeds its projector."""
        return self.post_quant_proj(self.codes_to_latents(codes))

    def _decode_latents(self, quantized: Tensor) -> Tensor:
        """Quantized latents ``[B, g·g, code_dim]`` -> raw images ``[B, 3, 16g, 16g]`` ([0, 1] scale, unclamped)."""
        return self.features_to_images(self.post_quant_proj(quantized))

    def features_to_images(self, features: Tensor) -> Tensor:
        """Post-quantization tokens ``[B, g·g, width]`` (`codes_to_features`) -> raw images ([0, 1] scale)."""
        return (self.decoder(features) + 1) / 2

    def _decode(self, codes: Codes) -> Tensor:
        return self._decode_latents(self.codes_to_latents(codes))

    def codes_to_embeddings(self, codes: Codes, tables: Sequence[nn.Embedding | Tensor] | None = None) -> Tensor:
        """The per-position sum of the G sub-code embeddings, ``[B, T, D]``: the input of LlamaGen-style AR models.

        tables: one ``[K, D]`` table per sub-codebook (a generator's ``TokenEmbedder.codebooks``, `nn.Embedding`
            or tensors). Without them, each sub-code's own normalised codeword, placed in its channel chunk, is
            the embedding (D = code_dim), so the sum is the tokenizer's own quantized latent (`codes_to_latents`).
        """
        codes.validate(self.spec.codebook_sizes)
        idx = codes.indices.to(self.device)
        if tables is None:
            return self.codes_to_latents(codes)
        if len(tables) != self.config.num_codebooks:
            raise InputError(f"codes_to_embeddings needs {self.config.num_codebooks} tables, got {len(tables)}")
        weights = [t.weight if isinstance(t, nn.Embedding) else t for t in tables]
        for g, w in enumerate(weights):
            if w.dim() != 2 or w.shape[0] != self.config.codebook_size or w.shape[1] != weights[0].shape[1]:
                raise InputError(f"table {g} must be [{self.config.codebook_size}, D] like table 0, "
                                 f"got {tuple(w.shape)}")
        return torch.stack([F.embedding(idx[..., g], w.to(idx.device)) for g, w in enumerate(weights)]).sum(dim=0)

    # ---- 5. understanding (CLIP side) ----
    def embed_features(self, features: Tensor, normalize: bool = True) -> Tensor:
        """Post-quantization tokens ``[B, L, width]`` -> CLIP image embeddings ``[B, embed_dim]``."""
        emb = self.projection(self.fc_norm(features.mean(dim=1)))
        return F.normalize(emb, dim=-1) if normalize else emb

    def encode_image_features(self, images: Tensor, normalize: bool = True) -> Tensor:
        """Images ``[B, 3, H, W]`` in [0, 1] -> CLIP embeddings ``[B, embed_dim]`` of their *quantized* tokens."""
        images = check_images(images, self.config.image_size)
        with torch.no_grad():
            codes = self._encode(images.to(self.device, self.dtype), None)
            return self.embed_features(self.codes_to_features(codes), normalize)

    def tokenize(self, texts: str | Sequence[str]) -> Tensor:
        """open_clip's CLIP BPE tokenizer at this tower's context length: int64 ``[N, text_context_length]``."""
        return clip_tokenize(texts, self.config.text_context_length)

    def encode_text(self, texts: str | Sequence[str] | Tensor, normalize: bool = True) -> Tensor:
        """Strings (or token ids int64 ``[N, L]``) -> CLIP text embeddings ``[N, embed_dim]``."""
        tokens = texts if isinstance(texts, Tensor) else self.tokenize(texts)
        with torch.no_grad():
            emb = self.text_encoder(tokens.to(self.device))
        return F.normalize(emb, dim=-1) if normalize else emb

    def zero_shot_classifier(self, class_names: Sequence[str],
                             templates: Sequence[str | Callable[[str], str]] | None = None) -> Tensor:
        """Class weights ``[embed_dim, C]``: per class, the normalised mean of its normalised template embeddings
        (open_clip's ``build_zero_shot_classifier``). Templates are ``"{}"`` strings or callables; None = the 80
        OpenAI ImageNet templates (the published zero-shot protocol)."""
        if isinstance(class_names, str) or not class_names:
            raise InputError("class_names must be a non-empty list of strings")
        templates = list(templates) if templates is not None else _openai_templates()
        if not templates:
            raise InputError("templates must not be empty")
        texts = [t.format(c) if isinstance(t, str) else t(c) for c in class_names for t in templates]
        emb = self.encode_text(texts).reshape(len(class_names), len(templates), -1).mean(dim=1)
        return F.normalize(emb, dim=-1).t()

    def zero_shot(self, images: Tensor, class_names: Sequence[str],
                  templates: Sequence[str | Callable[[str], str]] | None = None, scale: float = 100.0) -> Tensor:
        """CLIP zero-shot classification: probabilities ``[B, C]`` = softmax(scale · cos(image, class)).

        The logit scale is 100, as upstream's ImageNet evaluation uses (not the learned ``logit_scale``).
        """
        classifier = self.zero_shot_classifier(class_names, templates)
        logits = scale * self.encode_image_features(images) @ classifier.to(self.dtype)
        return logits.softmax(dim=-1)

    # ---- training ----
    def forward(self, images: Tensor, text_tokens: Tensor | None = None) -> dict[str, Tensor | QuantizerOutput]:
        """Training pass on images in [0, 1] (straight-through quantization, as upstream ``forward``).

        Returns ``images`` (raw reconstruction, [0, 1] scale), ``quantizer`` (`QuantizerOutput`: indices
        ``[B, L, G]``, VQ loss averaged over sub-codebooks), ``image_features`` (normalised CLIP embeddings of the
        quantized tokens), ``text_features`` (normalised, when `text_tokens` are given) and ``logit_scale``
        (exponentiated, as upstream's contrastive loss takes it).
        """
        q: QuantizerOutput = self.quantizer(self._encode_latents(images))
        features = self.post_quant_proj(q.quantized.to(images.dtype))
        out: dict[str, Tensor | QuantizerOutput] = {
            "images": self.features_to_images(features), "quantizer": q,
            "image_features": self.embed_features(features), "logit_scale": self.logit_scale.exp(),
        }
        if text_tokens is not None:
            out["text_features"] = F.normalize(self.text_encoder(text_tokens), dim=-1)
        return out


def _openai_templates() -> list[Callable[[str], str]]:
    try:
        from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES
    except ImportError as exc:
        raise OfflineError(f"the default zero-shot templates come from open_clip, which cannot be imported ({exc}); "
                           "`pip install 'visual-tokenizer-zoo[unitok]'` (or open_clip_torch) or pass templates=[...]") from None
    return list(OPENAI_IMAGENET_TEMPLATES)


# ---------------------------------------------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------------------------------------------
register_family(FamilySpec(
    name="unitok", tokenizer_cls=UniTok, config_cls=UniTokConfig, convert=convert.convert_state_dict,
    config_from_official=convert.config_from_official, extract=convert.extract, skip=convert.SKIP,
    official_repo="https://github.com/FoundationVision/UniTok",
    description="UniTok: ViTamin encoder, attention factorization, multi-codebook quantization (8 x 4096), "
                "CLIP text tower",
))

_CITE = ("@article{ma2025unitok, title={UniTok: A Unified Tokenizer for Visual Generation and Understanding}, "
         "author={Ma, Chuofan and Jiang, Yi and Wu, Junfeng and Yang, Jihan and Yu, Xin and Yuan, Zehuan and "
         "Peng, Bingyue and Qi, Xiaojuan}, journal={arXiv preprint arXiv:2502.20321}, year={2025}}")
_RFID_DATA = "ImageNet-1k val 50k, 256x256"
_RFID_PROTOCOL = ("CenterCrop 256 of the 256x256 reference batch (FoundationVision/imagenet_reference_batch) -> [-1,1]; "
                  "reconstructions by the straight-through path, clamped, (x+1)*127.5 rounded to PNG; torch-fidelity "
                  "inception-v3-compat (weights-inception-2015-12-05), pool 2048, folder vs reference folder")
_ZS_DATA = "ImageNet-1k val 50k"
_ZS_PROTOCOL = ("open_clip eval transform: Resize 256 bicubic (shorter side) + CenterCrop 256 -> [-1,1]; 80 OpenAI "
                "ImageNet templates and class names; logits = 100 x cosine of the quantized-token image embedding")
_RELEASED = dict(image_size=256, stem_width=160, stage_widths=(160, 320), stage_depths=(2, 4), width=1024, depth=31,
                 heads=16, mlp_ratio=2.0, decoder_widths=(320, 160), decoder_up_depths=(4, 2), num_codebooks=8,
                 codebook_size=4096, code_dim=64, projection_heads=16, beta=0.25, embed_dim=768,
                 text_vocab_size=49408, text_context_length=77, text_width=768, text_heads=12, text_layers=12)

register_model(ModelEntry(
    name="unitok", family="unitok", config={**_RELEASED, "is_causal": False},
    description="UniTok-Large (2025-04-02 checkpoint, full-attention projections): 16x16 positions x 8 sub-codes "
                "of 4096, CLIP zero-shot; trained from scratch on DataComp-1B",
    hub_repo="FoundationVision/unitok_tokenizer", hub_file="unitok_tokenizer.pth",
    metrics=(Metric("rFID", 0.41, _RFID_DATA, _RFID_PROTOCOL, "UniTok README"),
             Metric("zero-shot top-1", 70.8, _ZS_DATA, _ZS_PROTOCOL, "UniTok README"),
             Metric("gFID", 2.51, "ImageNet 256 class-conditional, 50k samples",
                    "LlamaGen-XXL, no classifier-free guidance (cfg 1.0, temperature 0.9); ADM evaluator vs "
                    "VIRTUAL_imagenet256_labeled.npz", "UniTok README (2025-05-19)")),
    license="mit", paper="https://arxiv.org/abs/2502.20321", code="https://github.com/FoundationVision/UniTok",
    citation=_CITE, tags=("2d-tokens", "multi-codebook", "clip"),
    extra={"preprocess": "Resize(288, bilinear) + CenterCrop(256) in upstream inference.py"},
))

register_model(ModelEntry(
    name="unitok-causal", family="unitok", config={**_RELEASED, "is_causal": True},
    description="UniTok-Large, first release (2025-02-28, causal attention projections; also what the Liquid "
                "MLLM code uses). Its file was replaced on the hub by the 2025-04-02 one under the same name: "
                "pass the old unitok_tokenizer.pth with checkpoint=",
    url="https://huggingface.co/FoundationVision/unitok_tokenizer (revision before 2025-04-02)",
    metrics=(Metric("rFID", 0.39, _RFID_DATA, _RFID_PROTOCOL, "UniTok README (before 2025-04-02)"),
             Metric("zero-shot top-1", 70.5, _ZS_DATA, _ZS_PROTOCOL, "UniTok README (before 2025-04-02)")),
    license="mit", paper="https://arxiv.org/abs/2502.20321", code="https://github.com/FoundationVision/UniTok",
    citation=_CITE, tags=("2d-tokens", "multi-codebook", "clip"),
))
