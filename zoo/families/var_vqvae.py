"""VAR's multi-scale VQVAE (Tian et al., NeurIPS 2024): the tokenizer of VAR's next-scale generators.

Method, as released (`models/vqvae.py` `VQVAE`, `vae_ch160v4096z32.pth`):
1. Encode. The image in [-1, 1] goes through a taming / LDM f16 conv encoder (width 160, multipliers
   (1, 1, 2, 2, 4), two residual blocks per level, attention at the deepest level and in the middle) to 32
   channels and a 3x3 ``quant_conv``: features ``f [B, 32, 16, 16]`` at 256 px.
2. Quantize, coarse to fine. Over the scales (1, 2, 3, 4, 5, 6, 8, 10, 13, 16) the residual is area-downsampled to
   p x p (not at the last scale), each position replaced by its nearest row (euclidean, no normalisation) of one
   shared 4096 x 32 codebook, the code map bicubic-upsampled back to 16 x 16, refined by one of 4 shared 3x3 φ
   convolutions (``h -> 0.5 h + 0.5 conv(h)``) and added to the reconstruction ``f_hat`` (and taken off the
   residual): 680 tokens, ``Codes.scales`` = (1, 4, 9, ..., 256). A prefix of whole scales decodes to a coarser
   image. The quantizer is `zoo.quant.MultiScaleResidualQuantizer`, shared with ImageFolder.
3. Decode. ``f_hat`` -> 3x3 ``post_quant_conv`` -> the mirrored conv decoder -> pixels in [-1, 1].
VAR's generators (VAR-d16 ... d30, `zoo generate`) predict these codes scale by scale; their next-scale input is this
tokenizer's running ``f_hat`` (`next_scale_input`). Inputs and outputs are [0, 1] at the zoo boundary.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

from ..api import Codes, Tokenizer, TokenizerSpec
from ..convert import var_vqvae as convert
from ..errors import ConfigError, InputError
from ..nn.taming import TamingConvConfig, TamingDecoder, TamingEncoder
from ..quant import MultiScaleResidualQuantizer, QuantizerOutput
from ..registry import FamilySpec, ModelEntry, register_family, register_model


@dataclass
class VARVQVAEConfig:
    image_size: int = 256
    hidden_channels: int = 160  # ch
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    z_channels: int = 32  # Cvae: the codebook dimension and the encoder's output width
    codebook_size: int = 4096  # vocab_size
    scale_sides: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)  # v_patch_nums; the last is the latent side
    l2_norm: bool = False  # using_znorm: cosine lookup
    phi_count: int = 4  # share_quant_resi
    phi_ratio: float = 0.5  # quant_resi
    beta: float = 0.25
    quant_conv_kernel: int = 3  # quant_conv_ks
    level_attention: bool = True  # using_sa
    mid_attention: bool = True  # using_mid_sa
    dropout: float = 0.0

    def conv(self) -> TamingConvConfig:
        return TamingConvConfig(self.hidden_channels, tuple(self.channel_mult), self.num_res_blocks, self.z_channels,
                                level_attention=self.level_attention, mid_attention=self.mid_attention,
                                dropout=self.dropout)

    def check(self) -> None:
        side = self.image_size // self.conv().downsample_factor
        if not self.scale_sides or self.scale_sides[-1] != side or self.image_size % self.conv().downsample_factor:
            raise ConfigError(f"the last scale ({self.scale_sides[-1] if self.scale_sides else None}) must be the "
                              f"latent side {self.image_size} / {self.conv().downsample_factor} = {side}")


# a non-released tiny size (the parity fixtures' and the tests'): f4, 6 scales up to 8x8, 64 codes of 8 dims
TINY_CONFIG = dict(image_size=32, hidden_channels=32, channel_mult=(1, 1, 2), num_res_blocks=1, z_channels=8,
                   codebook_size=64, scale_sides=(1, 2, 3, 4, 6, 8))


class VARVQVAE(Tokenizer):
    family = "var-vqvae"

    def __init__(self, config: VARVQVAEConfig) -> None:
        super().__init__(config)
        config.check()
        c, k = config, config.quant_conv_kernel
        self.encoder = TamingEncoder(c.conv())
        self.decoder = TamingDecoder(c.conv())
        self.quantizer = MultiScaleResidualQuantizer(c.codebook_size, c.z_channels, c.scale_sides, l2_norm=c.l2_norm,
                                                     beta=c.beta, phi_count=c.phi_count, resi_ratio=c.phi_ratio,
                                                     commitment_mean=True)
        self.quant_conv = nn.Conv2d(c.z_channels, c.z_channels, k, padding=k // 2)
        self.post_quant_conv = nn.Conv2d(c.z_channels, c.z_channels, k, padding=k // 2)

    @property
    def spec(self) -> TokenizerSpec:
        c = self.config
        per_scale = tuple(p * p for p in c.scale_sides)
        prefixes = tuple(itertools.accumulate(per_scale))
        return TokenizerSpec(family=self.family, image_size=c.image_size, token_layout="multiscale",
                             max_tokens=prefixes[-1], min_tokens=prefixes[0], token_choices=prefixes,
                             codebook_sizes=(c.codebook_size,), scales=per_scale, code_dim=c.z_channels,
                             eval_crop="var")  # VAR's val transform: Resize(1.125x, Lanczos) + CenterCrop

    # ---- the differentiable latent path (Tokenizer.encode_latents / quantize / decode_latents call these) ----
    def _encode_latents(self, images: Tensor) -> Tensor:
        """Images ``[B, 3, H, W]`` in [0, 1] -> features ``f [B, z, H/16, W/16]`` before the multi-scale quantizer."""
        return self.quant_conv(self.encoder(images * 2 - 1))

    def _quantize(self, latents: Tensor) -> tuple[Codes, Tensor]:
        """``f [B, z, s, s]`` -> (codes of all scales ``[B, T, 1]``, straight-through ``f_hat [B, z, s, s]``)."""
        out = self.quantizer(latents)
        codes = Codes(out.indices.unsqueeze(-1), scales=self.spec.scales, codebook_sizes=(self.config.codebook_size,),
                      model=self.name or self.family)
        return codes, out.quantized

    def _decode_latents(self, quantized: Tensor) -> Tensor:
        """``f_hat [B, z, s, s]`` -> raw images ``[B, 3, 16s, 16s]`` ([0, 1] scale, unclamped)."""
        return (self.decoder(self.post_quant_conv(quantized)) + 1) / 2

    # ---- discrete interface ----
    def _encode(self, images: Tensor, num_tokens: int | str | None) -> Codes:
        if isinstance(num_tokens, str):
            raise InputError(f"{self.family} has no automatic budget; num_tokens is one of "
                             f"{list(self.spec.token_choices)} (whole scales)")
        indices = self.quantizer.quantize(self._encode_latents(images))  # [B, T]
        per_scale = self.spec.scales
        if num_tokens is not None and num_tokens < indices.shape[1]:
            indices = indices[:, :num_tokens]
            per_scale = per_scale[:self.spec.token_choices.index(num_tokens) + 1]
        return Codes(indices.unsqueeze(-1), scales=per_scale)

    def _decode(self, codes: Codes) -> Tensor:
        lengths = None if codes.lengths is None else codes.lengths.to(codes.indices.device)
        f_hat = self.quantizer.lookup(codes.indices[..., 0], lengths=lengths)
        return self._decode_latents(f_hat.to(self.post_quant_conv.weight.dtype))

    # ---- generators (VAR) ----
    def teacher_forcing_input(self, codes: Codes) -> Tensor:
        """Next-scale AR input of full codes: ``[B, T - 1, z]`` (the running ``f_hat`` area-downsampled to each next
        scale; the release's ``idxBl_to_var_input``)."""
        codes.validate(self.spec.codebook_sizes, self.spec.max_tokens)
        if codes.num_tokens != self.spec.max_tokens:
            raise InputError("teacher_forcing_input needs all scales")
        return self.quantizer.var_input(codes.indices[..., 0].to(self.device))

    @torch.no_grad()
    def next_scale_input(self, state: Tensor | None, si: int,
                         indices: Sequence[Tensor]) -> tuple[Tensor, Tensor | None]:
        """One step of next-scale generation (the release's ``get_next_autoregressive_input``).

        state: the running ``f_hat [B, z, s, s]`` (None before scale 0); indices: scale `si`'s sampled codes, one
        int64 ``[B, p²]`` (a one-element list: VAR has one codebook). Returns the new state and the next scale's
        input ``[B, p_next², z]``, or None after the last scale.
        """
        if len(indices) != 1:
            raise InputError(f"next_scale_input needs one index tensor (one codebook), got {len(indices)}")
        p, side = self.config.scale_sides[si], self.config.scale_sides[-1]
        idx = indices[0].to(self.device)
        B = idx.shape[0]
        if state is None:
            state = torch.zeros(B, self.config.z_channels, side, side, device=self.device)
        h = self.quantizer.embedding(idx.reshape(B, p, p)).permute(0, 3, 1, 2).float()
        state, nxt = self.quantizer.next_var_input(si, state, h)
        if si == len(self.config.scale_sides) - 1:
            return state, None
        return state, nxt.flatten(2).transpose(1, 2)

    # ---- training ----
    def forward(self, images: Tensor) -> tuple[Tensor, QuantizerOutput]:
        """Training pass: images in [0, 1] -> (raw reconstruction, quantizer output with VAR's VQ losses;
        ``quantized`` is the straight-through ``f_hat [B, z, s, s]``)."""
        q = self.quantizer(self._encode_latents(images))
        return self._decode_latents(q.quantized), q


register_family(FamilySpec(
    name="var-vqvae",
    tokenizer_cls=VARVQVAE,
    config_cls=VARVQVAEConfig,
    convert=convert.convert_state_dict,
    config_from_official=convert.config_from_official,
    extract=convert.extract,
    skip=convert.SKIP,
    official_repo="https://github.com/FoundationVision/VAR (models/vqvae.py, models/quant.py)",
    description="VAR's multi-scale VQVAE: taming f16 conv net, 10-scale residual VQ (680 tokens) with one 4096x32 "
                "codebook and 4 shared φ convs",
))

register_model(ModelEntry(
    name="var-vqvae", family="var-vqvae", config={},
    description="VAR's VQVAE (vae_ch160v4096z32), ImageNet 256x256: 10 scales 1..16 (680 tokens), codebook 4096x32, "
                "f16 conv net of width 160; the tokenizer of VAR-d16 ... d30",
    hub_repo="FoundationVision/var", hub_file="vae_ch160v4096z32.pth",
    license="mit", paper="https://arxiv.org/abs/2404.02905", code="https://github.com/FoundationVision/VAR",
    citation="@inproceedings{tian2024visual, title={Visual Autoregressive Modeling: Scalable Image Generation via "
             "Next-Scale Prediction}, author={Tian, Keyu and Jiang, Yi and Yuan, Zehuan and Peng, Bingyue and Wang, "
             "Liwei}, booktitle={NeurIPS}, year={2024}}",
    tags=("multiscale", "residual-vq"),
    extra={"note": "VAR publishes no reconstruction number for this tokenizer; its gFIDs are those of the generators "
                   "(zoo generate --list: var-d16 ... var-d30). Official evaluation preprocessing (utils/data.py val "
                   "transform): Resize(round(1.125 x 256) = 288, LANCZOS) + CenterCrop(256), [-1, 1]."},
))
