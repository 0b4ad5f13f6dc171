"""TiTok (Yu et al., 2024) and One-D-Piece (Miwa et al., 2025): an image as a short 1-D token sequence.

Method, as released:
1. Patchify the 256x256 image (16x16 patches), prepend a class token, append N learned latent tokens, run a ViT
   encoder and keep the N latent outputs.
2. Reduce each to a 12-d vector and quantize it with an l2-normalised 4096-entry codebook.
   The released checkpoints reach the 12-d vectors through a reshape instead of a transpose (upstream calls it a
   bug and keeps it as ``is_legacy``); `legacy_reshape=True` reproduces it.
3. Decode: a ViT reads [CLS, one mask token per patch, the quantized latents] and predicts, per patch position,
   logits over the 1024 MaskGIT-VQGAN codes ("proxy codes"). The softmax-weighted mixture of the VQGAN codebook
   rows (a soft code, not an argmax) goes through the MaskGIT-VQGAN pixel decoder (two-stage models), or a linear
   pixel head predicts RGB directly (single-stage models).
One-D-Piece is the same network trained with Tail Token Drop: in training only the first L ~ U{1..N} tokens reach
the decoder, so the head of the sequence carries the most information and any prefix 1 ≤ k ≤ N decodes.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..api import Codes, Tokenizer, TokenizerSpec
from ..convert import titok as convert
from ..errors import InputError
from ..nn.latent_vit import MaskedQueryDecoder, PatchSequence
from ..nn.maskgit_vqgan import MaskGITConvConfig, MaskGITDecoder
from ..nn.vit import Transformer
from ..quant import QuantizerOutput, VectorQuantizer
from ..registry import FamilySpec, Metric, ModelEntry, register_family, register_model

VIT_SIZES = convert.VIT_SIZES  # the official code's ViT sizes (width, depth, heads), encoder and decoder alike


@dataclass
class TiTokConfig:
    image_size: int = 256
    patch_size: int = 16
    num_latent_tokens: int = 32
    encoder_width: int = 1024
    encoder_depth: int = 24
    encoder_heads: int = 16
    decoder_width: int = 1024
    decoder_depth: int = 24
    decoder_heads: int = 16
    codebook_size: int = 4096
    token_size: int = 12
    l2_norm: bool = True
    beta: float = 0.25
    legacy_reshape: bool = True  # the released is_legacy width reduction (reshape, not transpose)
    two_stage: bool = True  # decoder predicts proxy-code logits -> soft code -> MaskGIT-VQGAN pixel decoder
    pixel_codebook_size: int = 1024
    pixel_hidden_channels: int = 128
    pixel_channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    pixel_num_res_blocks: int = 2
    pixel_z_channels: int = 256
    variable_length: bool = False  # One-D-Piece: decode any prefix of the N tokens
    tail_token_drop: bool = False  # One-D-Piece training: keep only the first L ~ U{1..N} tokens per step

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    def pixel_decoder(self) -> MaskGITConvConfig:
        return MaskGITConvConfig(self.pixel_hidden_channels, tuple(self.pixel_channel_mult),
                                 self.pixel_num_res_blocks, self.pixel_z_channels)


def sized(size: str, tokens: int, **kw) -> dict:
    """Our config fields for an official (encoder = decoder) size name and token count."""
    w, d, h = VIT_SIZES[size]
    return dict(num_latent_tokens=tokens, encoder_width=w, encoder_depth=d, encoder_heads=h, decoder_width=w,
                decoder_depth=d, decoder_heads=h, **kw)


# ---------------------------------------------------------------------------------------------------------------
# 1. Encoder: patches + latent tokens -> N latent outputs -> 12-d vectors
# ---------------------------------------------------------------------------------------------------------------
class LatentEncoder(nn.Module):
    """Image ``[B, 3, H, W]`` in [0, 1] -> pre-quantization vectors ``[B, N, token_size]``."""

    def __init__(self, cfg: TiTokConfig) -> None:
        super().__init__()
        w = cfg.encoder_width
        self.num_latents, self.legacy_reshape = cfg.num_latent_tokens, cfg.legacy_reshape
        self.patches = PatchSequence(w, cfg.patch_size, cfg.grid)
        self.latent_token_positional_embedding = nn.Parameter(torch.zeros(cfg.num_latent_tokens, w))
        self.ln_pre = nn.LayerNorm(w)
        self.transformer = Transformer(w, cfg.encoder_depth, cfg.encoder_heads)
        self.ln_post = nn.LayerNorm(w)
        self.to_code = nn.Linear(w, cfg.token_size)

    def forward(self, images: Tensor, latent_tokens: Tensor) -> Tensor:
        x = self.patches(images)
        B, P, W = x.shape
        latents = (latent_tokens + self.latent_token_positional_embedding).to(x.dtype).expand(B, -1, -1)
        x = self.transformer(self.ln_pre(torch.cat([x, latents], dim=1)), keep=slice(P, None))
        latents = self.ln_post(x)  # [B, N, W]
        if self.legacy_reshape:
            # The release reshapes the contiguous [B, N, W] block to [B, W, N]: token n's input to the 1x1
            # projection is the n-th column of that reshaped block, not its own features.
            latents = latents.reshape(B, W, self.num_latents).transpose(1, 2)
        return self.to_code(latents)


# ---------------------------------------------------------------------------------------------------------------
# 3. Decoder heads: proxy-code logits (two-stage) or RGB patches (single-stage)
# ---------------------------------------------------------------------------------------------------------------
class ProxyCodeHead(nn.Module):
    """Patch features ``[B, g², D]`` -> logits over the MaskGIT-VQGAN codes ``[B, g², K]`` (Linear-Tanh-Linear)."""

    def __init__(self, width: int, num_codes: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, 2 * width)
        self.fc2 = nn.Linear(2 * width, num_codes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(torch.tanh(self.fc1(x)))


class PixelHead(nn.Module):
    """Patch features ``[B, g², D]`` -> RGB ``[B, 3, g·p, g·p]``: linear to p·p·3 per patch, depth-to-space, 3x3 conv."""

    def __init__(self, width: int, patch_size: int, grid: int) -> None:
        super().__init__()
        self.patch_size, self.grid = patch_size, grid
        self.to_pixels = nn.Linear(width, patch_size * patch_size * 3)
        self.conv_out = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        B, g, p = x.shape[0], self.grid, self.patch_size
        x = self.to_pixels(x).reshape(B, g, g, p, p, 3)  # channel index (p1·p + p2)·3 + c, as released
        return self.conv_out(x.permute(0, 5, 1, 3, 2, 4).reshape(B, 3, g * p, g * p))


class TiTokDecoder(nn.Module):
    def __init__(self, cfg: TiTokConfig) -> None:
        super().__init__()
        w = cfg.decoder_width
        self.decoder_embed = nn.Linear(cfg.token_size, w)
        self.body = MaskedQueryDecoder(w, cfg.decoder_depth, cfg.decoder_heads, cfg.grid, cfg.num_latent_tokens)
        self.head = ProxyCodeHead(w, cfg.pixel_codebook_size) if cfg.two_stage else PixelHead(w, cfg.patch_size, cfg.grid)

    def forward(self, z_q: Tensor, lengths: Tensor | None = None) -> Tensor:
        """``[B, k, token_size]`` -> proxy logits ``[B, g², K]`` (two-stage) or raw RGB ``[B, 3, H, W]``."""
        return self.head(self.body(self.decoder_embed(z_q), lengths))


# ---------------------------------------------------------------------------------------------------------------
# The tokenizer
# ---------------------------------------------------------------------------------------------------------------
class TiTok(Tokenizer):
    family = "titok"

    def __init__(self, config: TiTokConfig) -> None:
        super().__init__(config)
        cfg = config
        if cfg.image_size % cfg.patch_size:
            raise InputError(f"image_size {cfg.image_size} is not a multiple of patch_size {cfg.patch_size}")
        self.latent_tokens = nn.Parameter(torch.zeros(cfg.num_latent_tokens, cfg.encoder_width))
        self.encoder = LatentEncoder(cfg)
        self.quantizer = VectorQuantizer(cfg.codebook_size, cfg.token_size, l2_norm=cfg.l2_norm, beta=cfg.beta)
        self.decoder = TiTokDecoder(cfg)
        if cfg.two_stage:
            self.pixel_quantize = nn.Embedding(cfg.pixel_codebook_size, cfg.pixel_z_channels)
            self.pixel_decoder = MaskGITDecoder(cfg.pixel_decoder())

    @property
    def spec(self) -> TokenizerSpec:
        cfg = self.config
        return TokenizerSpec(family=self.family, image_size=cfg.image_size, token_layout="1d",
                             max_tokens=cfg.num_latent_tokens,
                             min_tokens=1 if cfg.variable_length else cfg.num_latent_tokens,
                             codebook_sizes=(cfg.codebook_size,), code_dim=cfg.token_size)

    # ---- encode ----
    def _encode_latents(self, images: Tensor) -> Tensor:
        """Images in [0, 1] -> pre-quantization latent tokens ``[B, N, token_size]``."""
        return self.encoder(images, self.latent_tokens)

    def _quantize(self, latents: Tensor) -> tuple[Codes, Tensor]:
        """``[B, N, token_size]`` -> (codes ``[B, N, 1]``, straight-through code vectors ``[B, N, token_size]``;
        l2-normalised when the codebook is)."""
        q = self.quantizer(latents)
        return Codes(q.indices[..., None]), q.quantized

    def _encode(self, images: Tensor, num_tokens: int | None) -> Codes:
        z = self._encode_latents(images)
        indices = self.quantizer.quantize(z)  # [B, N]
        if num_tokens is not None and num_tokens < indices.shape[1]:
            indices = indices[:, :num_tokens]
            lengths = torch.full((indices.shape[0],), num_tokens, dtype=torch.int64, device=indices.device)
            return Codes(indices[..., None], lengths=lengths)
        return Codes(indices[..., None])

    # ---- decode ----
    def _decode_latents(self, z_q: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Quantized latents ``[B, k, token_size]`` (k ≤ N: a prefix decodes, One-D-Piece) -> raw images
        ``[B, 3, H, W]`` ([0, 1] scale, unclamped); `lengths` ``[B]``: tokens used per image."""
        out = self.decoder(z_q, lengths)
        return self.pixels_from_logits(out) if self.config.two_stage else out

    def pixels_from_logits(self, logits: Tensor) -> Tensor:
        """Proxy logits ``[B, g², 1024]`` -> soft MaskGIT-VQGAN code -> pixel decoder -> raw images."""
        g = self.config.grid
        soft = logits.softmax(dim=-1) @ self.pixel_quantize.weight  # [B, g², C]
        return self.pixel_decoder(soft.transpose(1, 2).reshape(soft.shape[0], -1, g, g))

    def _decode(self, codes: Codes) -> Tensor:
        return self._decode_latents(self.quantizer.lookup(codes.indices[..., 0]), codes.lengths)

    # ---- training ----
    def forward(self, images: Tensor, num_tokens: int | None = None) -> dict[str, Tensor]:
        """Training pass on images in [0, 1].

        Returns ``logits`` (two-stage: proxy-code logits ``[B, g², K]`` for the stage-1 cross-entropy),
        ``images`` (raw reconstruction), ``quantizer`` (QuantizerOutput) and ``num_tokens`` (the kept length).
        With `tail_token_drop`, one keep-length L ~ U{1..N} is drawn per call from the global RNG (shared by
        the micro-batch), as One-D-Piece trains.
        """
        q: QuantizerOutput = self.quantizer(self._encode_latents(images))
        z_q = q.quantized
        keep = z_q.shape[1] if num_tokens is None else num_tokens
        if num_tokens is None and self.training and self.config.tail_token_drop:
            keep = int(torch.randint(1, z_q.shape[1] + 1, (1,)))
        out = self.decoder(z_q[:, :keep])
        result = {"quantizer": q, "num_tokens": torch.tensor(keep)}
        if self.config.two_stage:
            result["logits"] = out
            result["images"] = self.pixels_from_logits(out)
        else:
            result["images"] = out
        return result


class OneDPiece(TiTok):
    """TiTok trained with Tail Token Drop: `encode(num_tokens=k)` keeps the head k tokens, any 1 ≤ k ≤ N decodes."""

    family = "onedpiece"

    def _check_decodable(self, codes: Codes) -> None:  # any prefix length is fine
        return None


# ---------------------------------------------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------------------------------------------
for _family, _cls, _desc in (
    ("titok", TiTok, "TiTok: 1-D latent tokens (ViT encoder/decoder, l2 VQ, MaskGIT-VQGAN proxy codes)"),
    ("onedpiece", OneDPiece, "One-D-Piece: TiTok with Tail Token Drop, any prefix of 256 tokens decodes"),
):
    register_family(FamilySpec(
        name=_family, tokenizer_cls=_cls, config_cls=TiTokConfig, convert=convert.convert_state_dict,
        config_from_official=convert.config_from_official_onedpiece if _family == "onedpiece"
        else convert.config_from_official,
        extract=convert.extract,
        official_repo=("https://github.com/turingmotors/One-D-Piece" if _family == "onedpiece"
                       else "https://github.com/bytedance/1d-tokenizer"),
        description=_desc,
    ))

_RFID = "ImageNet-1k val 50k, 256x256"
_PROTOCOL = ("shorter side 256 bicubic antialias + centre crop; reconstructions clamped and rounded to uint8; "
             "torch-fidelity Inception (pt_inception-2015-12-05), float64 statistics; reference = the same crops")
_TITOK_CITE = ("@article{yu2024titok, title={An Image is Worth 32 Tokens for Reconstruction and Generation}, "
               "author={Yu, Qihang and Weber, Mark and Deng, Xueqing and Shen, Xiaohui and Cremers, Daniel and "
               "Chen, Liang-Chieh}, journal={NeurIPS}, year={2024}}")
_ODP_CITE = ("@article{miwa2025onedpiece, title={One-D-Piece: Image Tokenizer Meets Quality-Controllable "
             "Compression}, author={Miwa, Keita and Sasaki, Kento and Arai, Hidehisa and Takahashi, Tsubasa and "
             "Yamaguchi, Yu}, journal={arXiv preprint arXiv:2501.10064}, year={2025}}")

for _name, _size, _n, _rfid, _gfid in (("titok-l32", "large", 32, 2.21, 2.77), ("titok-b64", "base", 64, 1.70, 2.48),
                                        ("titok-s128", "small", 128, 1.71, 1.97)):
    register_model(ModelEntry(
        name=_name, family="titok", config=sized(_size, _n),
        description=f"TiTok-{_size[0].upper()}-{_n}: {_n} 1-D tokens, codebook 4096x12, two-stage (ImageNet 256)",
        hub_repo=f"yucornetto/tokenizer_titok_{_name.split('-')[1]}_imagenet", hub_file="model.safetensors",
        metrics=(Metric("rFID", _rfid, _RFID, _PROTOCOL, "README_TiTok"),
                 Metric("gFID", _gfid, "ImageNet 256 class-conditional, 50k samples",
                        "MaskGIT generator; ADM evaluator vs VIRTUAL_imagenet256_labeled.npz", "README_TiTok")),
        license="apache-2.0", paper="https://arxiv.org/abs/2406.07550",
        code="https://github.com/bytedance/1d-tokenizer", citation=_TITOK_CITE, tags=("1d-tokens",),
    ))

for _name, _enc, _dec, _n, _rfid in (("titok-bl64-vq8k", "base", "large", 64, 2.06),
                                      ("titok-bl128-vq8k", "base", "large", 128, 1.49),
                                      ("titok-sl256-vq8k", "small", "large", 256, 1.03)):
    (ew, ed, eh), (dw, dd, dh) = VIT_SIZES[_enc], VIT_SIZES[_dec]
    register_model(ModelEntry(
        name=_name, family="titok",
        config=dict(num_latent_tokens=_n, encoder_width=ew, encoder_depth=ed, encoder_heads=eh, decoder_width=dw,
                    decoder_depth=dd, decoder_heads=dh, codebook_size=8192, token_size=64, l2_norm=False,
                    legacy_reshape=False, two_stage=False),
        description=f"TiTok-{_enc[0].upper()}{_dec[0].upper()}-{_n} VQ: single-stage, codebook 8192x64, RGB head",
        hub_repo=f"yucornetto/tokenizer_titok_{_name.split('-')[1]}_vq8k_imagenet", hub_file="model.safetensors",
        metrics=(Metric("rFID", _rfid, _RFID, _PROTOCOL, "README_TiTok"),),
        license="apache-2.0", paper="https://arxiv.org/abs/2406.07550",
        code="https://github.com/bytedance/1d-tokenizer", citation=_TITOK_CITE, tags=("1d-tokens",),
    ))

for _name, _size, _rfid, _gfid in (("onedpiece-s-256", "small", 1.48, 2.67), ("onedpiece-b-256", "base", 1.11, 2.70),
                                    ("onedpiece-l-256", "large", 1.08, 2.35)):
    register_model(ModelEntry(
        name=_name, family="onedpiece", config=sized(_size, 256, variable_length=True, tail_token_drop=True),
        description=f"One-D-Piece-{_size[0].upper()}-256: 1..256 tokens (Tail Token Drop), codebook 4096x12",
        hub_repo=f"turing-motors/One-D-Piece-{_size[0].upper()}-256", hub_file="pytorch_model.bin",
        metrics=(Metric("rFID", _rfid, _RFID + " (all 256 tokens)", _PROTOCOL, "One-D-Piece README"),
                 Metric("gFID", _gfid, "ImageNet 256 class-conditional, 50k samples",
                        "MaskGIT generator, 16 steps; ADM evaluator", "One-D-Piece README")),
        license="apache-2.0", paper="https://arxiv.org/abs/2501.10064",
        code="https://github.com/turingmotors/One-D-Piece", citation=_ODP_CITE,
        tags=("1d-tokens", "variable-length"),
    ))
