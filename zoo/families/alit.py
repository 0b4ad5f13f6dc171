"""ALIT (Duggal, Isola, Torralba, Freeman; ICLR 2025): adaptive-length image tokenization by recurrent allocation.

Method, as released (ShivamDuggal4/adaptive-length-tokenizer, `adaptive_tokenizers/adaptive_vqgan.py`):
1. Image tokens. The base MaskGIT VQGAN encodes the image to pre-quantization features ``[B, z, g, g]`` (and its
   own code indices, the "GT" proxy codes); a 16x16 patch embedding adds ``W - z`` channels; each of the g² tokens
   is l2-normalised over W. A class token and positional embeddings are added (not normalised).
2. Recurrent rollouts. 32 learned latent tokens (+ their positions + a per-rollout embedding) are appended and the
   sequence goes through one ViT encoder. After rollout r the last 32·(r+1) outputs are the latent tokens; then
   32 fresh latents (the same learned ones with the embedding of rollout r+1) are appended, the whole sequence is
   layer-normed (`ln_recursive`) and the *same* encoder runs again. Every rollout re-encodes every latent, so the
   tokens of rollout r are a new set of 32·(r+1) tokens, not a prefix extension of rollout r-1.
3. Quantize: LN, Linear W->12, l2-normalised lookup in a 4096x12 codebook (the normalised row is the code).
4. Decode: a ViT reads [CLS, one mask token per patch, the latents] and predicts logits over the 1024 base-VQGAN
   codes; the softmax mixture of codebook rows (a soft code) goes through the base VQGAN decoder.
5. Dynamic halting: after each rollout, image tokens whose GT code is predicted with probability p ≥ 0.55 are,
   with probability p (a Bernoulli draw), replaced by a mask token, so later rollouts attend to what is still
   unexplained. The release does this at inference too, so rollouts ≥ 1 are stochastic; `deterministic=True`
   (our default) draws from a CPU generator seeded with `seed`, the same calls in the same order as the release,
   which reproduces the release exactly when it runs with ``torch.manual_seed(seed)`` on CPU.
Token budget: `encode(num_tokens=k)` for k = 32, 64, ..., 256 keeps the tokens of rollout k/32 - 1;
`num_tokens="auto"` picks, per image, the smallest k whose reconstruction has mean |x̂ - x| < `threshold`
(the release's metric and default 0.07; the release averages the error over the batch, we decide per image),
else the k of least error; `Codes.lengths` holds each choice.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..api import Codes, Tokenizer, TokenizerSpec
from ..convert import alit as convert
from ..errors import ConfigError, InputError
from ..nn.latent_vit import MaskedQueryDecoder
from ..nn.maskgit_vqgan import MaskGITConvConfig, MaskGITDecoder, MaskGITEncoder
from ..nn.vit import Transformer
from ..quant import QuantizerOutput, VectorQuantizer
from ..registry import FamilySpec, ModelEntry, register_family, register_model

SIZES = convert.SIZES  # the official size table: encoder = decoder (width, depth, heads)


@dataclass
class ALITConfig:
    image_size: int = 256
    patch_size: int = 16
    width: int = 1024
    depth: int = 8
    heads: int = 8
    tokens_per_rollout: int = 32
    max_rollouts: int = 8
    max_latent_tokens: int = 256  # rows of the decoder's latent position table (fixed at 256 upstream)
    codebook_size: int = 4096
    token_size: int = 12
    beta: float = 0.25
    dynamic_halting: bool = True
    halting_threshold: float = 0.55
    auto_threshold: float = 0.07  # encode(num_tokens="auto"): mean |x̂ - x| in [0, 1] (the release's default)
    seed: int = 0  # the halting RNG seed of deterministic encodes (the release evaluates with seed 0)
    base: str = "vqgan"  # "vae": the released VAE-based variants, known but not supported
    quantize_latent: bool = True  # False: the released continuous variants, known but not supported
    base_hidden_channels: int = 128
    base_channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    base_num_res_blocks: int = 2
    base_z_channels: int = 256
    base_codebook_size: int = 1024

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def max_tokens(self) -> int:
        return self.tokens_per_rollout * self.max_rollouts

    def base_conv(self) -> MaskGITConvConfig:
        return MaskGITConvConfig(self.base_hidden_channels, tuple(self.base_channel_mult), self.base_num_res_blocks,
                                 self.base_z_channels)


def sized(size: str, **kw) -> dict:
    """Our config fields for an official size name (``alit_small`` ...)."""
    width, depth, heads = SIZES[size]
    return dict(width=width, depth=depth, heads=heads, **kw)


@dataclass
class Rollout:
    """What one recurrent rollout gives.

    index: r (0-based); latents: raw encoder outputs ``[B, n, W]`` with n = tokens_per_rollout·(r+1) (what the
    release's `encode` returns as the embedding); quantizer: the l2 VQ output on the 12-d vectors (indices
    ``[B, n]``); logits: base-VQGAN code logits ``[B, g², K_base]``; drop: the halting mask ``[B, g²]`` (1 =
    image token replaced by the mask token before the next rollout). Both None for a last rollout run with
    ``last_logits=False``.
    """

    index: int
    latents: Tensor
    quantizer: QuantizerOutput
    logits: Tensor | None
    drop: Tensor | None


# ---------------------------------------------------------------------------------------------------------------
# 2. The recurrent encoder
# ---------------------------------------------------------------------------------------------------------------
class RecurrentEncoder(nn.Module):
    """Image tokens ``[B, g², W]`` -> a sequence that grows by `tokens_per_rollout` latents per rollout."""

    def __init__(self, cfg: ALITConfig) -> None:
        super().__init__()
        w, n = cfg.width, cfg.tokens_per_rollout
        self.class_embedding = nn.Parameter(torch.zeros(1, w))
        self.positional_embedding = nn.Parameter(torch.zeros(cfg.grid ** 2 + 1, w))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, w))
        self.latent_tokens = nn.Parameter(torch.zeros(n, w))
        self.latent_token_positional_embedding = nn.Parameter(torch.zeros(n, w))
        self.timestep_embedding = nn.Parameter(torch.zeros(cfg.max_rollouts, n, w))
        self.ln_pre = nn.LayerNorm(w)
        self.ln_post = nn.LayerNorm(w)
        self.ln_recursive = nn.LayerNorm(w)
        self.transformer = Transformer(w, cfg.depth, cfg.heads)

    def new_latents(self, batch: int, r: int) -> Tensor:
        """The latents appended before rollout r: the same learned tokens, the embedding of rollout r."""
        x = self.latent_tokens + self.latent_token_positional_embedding + self.timestep_embedding[r]
        return x.expand(batch, -1, -1)

    def start(self, image_tokens: Tensor) -> Tensor:
        """``[B, g², W]`` -> the rollout-0 input ``[B, 1 + g² + n, W]``."""
        B = image_tokens.shape[0]
        x = torch.cat([self.class_embedding.expand(B, -1)[:, None], image_tokens], dim=1) + self.positional_embedding
        return self.ln_pre(torch.cat([x, self.new_latents(B, 0)], dim=1))

    def grow(self, x: Tensor, r: int) -> Tensor:
        """Append the latents of rollout r and layer-norm the whole sequence (image tokens included)."""
        return self.ln_recursive(torch.cat([x, self.new_latents(x.shape[0], r)], dim=1))

    def halt(self, x: Tensor, drop: Tensor) -> Tensor:
        """Replace the image tokens where ``drop [B, g²]`` is 1 by (their position + the mask token)."""
        P = drop.shape[1]
        masked = self.positional_embedding[1:] + self.mask_token  # [1, g², W]
        tokens = torch.where(drop[..., None].bool(), masked.to(x.dtype), x[:, 1:1 + P])
        return torch.cat([x[:, :1], tokens, x[:, 1 + P:]], dim=1)


# ---------------------------------------------------------------------------------------------------------------
# 4. The decoder: latents -> base-VQGAN code logits
# ---------------------------------------------------------------------------------------------------------------
class CodeDecoder(nn.Module):
    """Quantized latents ``[B, n, token_size]`` -> logits over the base-VQGAN codes ``[B, g², K_base]``."""

    def __init__(self, cfg: ALITConfig) -> None:
        super().__init__()
        w = cfg.width
        self.decoder_embed = nn.Linear(cfg.token_size, w)
        self.body = MaskedQueryDecoder(w, cfg.depth, cfg.heads, cfg.grid, cfg.max_latent_tokens)
        # Linear -> Tanh -> Linear, named as upstream (`ffn.0`, `ffn.2`)
        self.ffn = nn.Sequential(nn.Linear(w, 2 * w), nn.Tanh(), nn.Linear(2 * w, cfg.base_codebook_size))

    def forward(self, z_q: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.ffn(self.body(self.decoder_embed(z_q), lengths))


# ---------------------------------------------------------------------------------------------------------------
# The tokenizer
# ---------------------------------------------------------------------------------------------------------------
class ALIT(Tokenizer):
    family = "alit"
    compile_modules = ("base_encoder", "base_decoder", "encoder.transformer", "decoder")  # the rollouts' hot path

    def __init__(self, config: ALITConfig) -> None:
        super().__init__(config)
        cfg = config
        if cfg.base != "vqgan":
            raise ConfigError(f"ALIT with base={cfg.base!r} (the released VAE-based variants: continuous base "
                              "latents, sampled posterior) is known but not supported; the zoo loads the "
                              "VQGAN-based quantized ALIT models")
        if not cfg.quantize_latent:
            raise ConfigError("ALIT with quantize_latent=False (the released 'continuous latents' variants) has no "
                              "discrete tokens and is not supported; the zoo loads the quantized ALIT models")
        if cfg.image_size % cfg.patch_size or cfg.grid != cfg.image_size // cfg.base_conv().downsample_factor:
            raise ConfigError(f"image_size {cfg.image_size}, patch_size {cfg.patch_size} and the base VQGAN's "
                              f"downsampling x{cfg.base_conv().downsample_factor} must give the same token grid")
        if cfg.width <= cfg.base_z_channels:
            raise ConfigError(f"width {cfg.width} must exceed the base VQGAN's {cfg.base_z_channels} channels")
        if cfg.max_tokens > cfg.max_latent_tokens:
            raise ConfigError(f"{cfg.max_tokens} latents do not fit the decoder's {cfg.max_latent_tokens} positions")
        # 1. base tokenizer (fine-tuned copy inside every released checkpoint) + patch embedding
        self.base_encoder = MaskGITEncoder(cfg.base_conv())
        self.base_quantize = VectorQuantizer(cfg.base_codebook_size, cfg.base_z_channels, l2_norm=False)
        self.base_decoder = MaskGITDecoder(cfg.base_conv())
        self.patch_embed = nn.Conv2d(3, cfg.width - cfg.base_z_channels, cfg.patch_size, stride=cfg.patch_size)
        # 2.-4.
        self.encoder = RecurrentEncoder(cfg)
        self.to_code = nn.Linear(cfg.width, cfg.token_size)
        self.quantizer = VectorQuantizer(cfg.codebook_size, cfg.token_size, l2_norm=True, beta=cfg.beta)
        self.decoder = CodeDecoder(cfg)

    @property
    def spec(self) -> TokenizerSpec:
        cfg = self.config
        choices = tuple(cfg.tokens_per_rollout * (r + 1) for r in range(cfg.max_rollouts))
        return TokenizerSpec(family=self.family, image_size=cfg.image_size, token_layout="1d",
                             max_tokens=cfg.max_tokens, min_tokens=cfg.tokens_per_rollout, token_choices=choices,
                             codebook_sizes=(cfg.codebook_size,), code_dim=cfg.token_size)

    # ---- 1. image tokens ----
    def image_tokens(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Images in [0, 1] -> (l2-normalised image tokens ``[B, g², W]``, base-VQGAN code indices ``[B, g²]``)."""
        z = self.base_encoder(images)  # pre-quantization features [B, z, g, g]
        gt = self.base_quantize.quantize(z.permute(0, 2, 3, 1)).flatten(1)
        tokens = torch.cat([z, self.patch_embed(images)], dim=1).flatten(2).transpose(1, 2)
        return F.normalize(tokens, dim=-1), gt

    # ---- 2.-5. the rollouts ----
    def rollouts(self, images: Tensor, last: int | None = None, generator: torch.Generator | None = None,
                 last_logits: bool = True) -> Iterator[Rollout]:
        """Run rollouts 0..`last` (default: all) and yield each one's `Rollout`.

        generator: a CPU generator for the halting draws (deterministic); None draws from the global RNG of the
        images' device, as the release does. last_logits=False: the last rollout's `logits` and `drop` are None.
        Its decoder pass only feeds a halting draw that no later rollout reads, so skipping it changes no token;
        that is only allowed with a private `generator` (on the global RNG the release's extra draw is kept).
        """
        cfg = self.config
        last = cfg.max_rollouts - 1 if last is None else last
        tokens, gt = self.image_tokens(images)
        x = self.encoder.start(tokens)
        start = 1 + tokens.shape[1]
        if not last_logits and generator is None:
            raise ValueError("last_logits=False needs a private generator: on the global RNG the last draw is kept")
        for r in range(last + 1):
            if r == last and not last_logits:
                # nothing reads this rollout's image tokens again: the last block computes the latents alone
                latents = self.encoder.transformer(x, keep=slice(start, None))
                yield Rollout(r, latents, self.quantizer(self.to_code(self.encoder.ln_post(latents))), None, None)
                return
            x = self.encoder.transformer(x)
            latents = x[:, start:]
            q = self.quantizer(self.to_code(self.encoder.ln_post(latents)))
            logits = self.decoder(q.quantized.to(latents.dtype))
            drop = None
            if cfg.dynamic_halting:
                # the release halts after every rollout, the last one included (its skip test compares the
                # builtin `iter`), so the RNG advances by one draw per rollout
                drop = self.halting_mask(logits, gt, generator)
                x = self.encoder.halt(x, drop)
            yield Rollout(r, latents, q, logits, drop)
            if r < cfg.max_rollouts - 1:
                x = self.encoder.grow(x, r + 1)

    def halting_mask(self, logits: Tensor, gt: Tensor, generator: torch.Generator | None) -> Tensor:
        """``[B, g²]`` 0/1: Bernoulli(p) where p = P(GT code) ≥ the threshold, else 0."""
        p = logits.detach().float().softmax(dim=-1).gather(2, gt[..., None])[..., 0]  # no gradient through the draw
        draw = torch.bernoulli(p) if generator is None else torch.bernoulli(p.cpu(), generator=generator).to(p.device)
        return draw.masked_fill(p < self.config.halting_threshold, 0.0)

    def pixels_from_logits(self, logits: Tensor) -> Tensor:
        """Code logits ``[B, g², K_base]`` -> soft code (softmax mixture of base codebook rows) -> raw images."""
        g = self.config.grid
        soft = logits.softmax(dim=-1) @ self.base_quantize.embedding.weight.to(logits.dtype)  # [B, g², z]
        return self.base_decoder(soft.reshape(soft.shape[0], g, g, -1).permute(0, 3, 1, 2))

    def _generator(self, deterministic: bool, seed: int | None) -> torch.Generator | None:
        if not deterministic:
            return None
        return torch.Generator().manual_seed(self.config.seed if seed is None else int(seed))

    # ---- encode ----
    def _encode(self, images: Tensor, num_tokens: int | str | None, threshold: float | None = None,
                deterministic: bool = True, seed: int | None = None) -> Codes:
        """num_tokens: a multiple of `tokens_per_rollout` (default: the most), or "auto" (see the module doc).

        threshold: the "auto" error threshold (mean |x̂ - x| per image, [0, 1] scale); deterministic/seed: the
        halting draws come from a CPU generator seeded with `seed` (default `config.seed`), else from the global RNG.
        """
        cfg = self.config
        gen = self._generator(deterministic, seed)
        if num_tokens == "auto":
            return self._encode_auto(images, cfg.auto_threshold if threshold is None else float(threshold), gen)
        if threshold is not None:
            raise InputError("threshold= goes with num_tokens='auto'")
        k = cfg.max_tokens if num_tokens is None else int(num_tokens)
        for step in self.rollouts(images, last=k // cfg.tokens_per_rollout - 1, generator=gen,
                                  last_logits=gen is None):
            pass
        indices = step.quantizer.indices
        lengths = (None if k == cfg.max_tokens else
                   torch.full((indices.shape[0],), k, dtype=torch.int64, device=indices.device))
        return Codes(indices[..., None], lengths=lengths)

    def _encode_auto(self, images: Tensor, threshold: float, gen: torch.Generator | None) -> Codes:
        """Per image, the tokens of the first rollout whose reconstruction error is below `threshold`.

        Images that never get there keep the rollout of least error (the release's fallback).
        """
        B = images.shape[0]
        chosen = torch.full((B,), -1, dtype=torch.int64)  # the rollout below the threshold, -1 while none is
        best = torch.full((B,), float("inf"), dtype=torch.float64)  # least error so far (the fallback)
        picked: list[Tensor | None] = [None] * B
        for step in self.rollouts(images, generator=gen):
            err = (self.pixels_from_logits(step.logits) - images).abs().flatten(1).mean(1).double().cpu()
            open_ = chosen < 0
            better = open_ & (err < best)
            best = torch.where(better, err, best)
            for i in torch.nonzero(better).flatten().tolist():
                picked[i] = step.quantizer.indices[i]
            chosen = torch.where(open_ & (err < threshold), torch.full_like(chosen, step.index), chosen)
            if bool((chosen >= 0).all()):
                break
        lengths = torch.tensor([int(p.shape[0]) for p in picked], dtype=torch.int64)
        T = int(lengths.max())
        indices = torch.zeros(B, T, dtype=torch.int64, device=images.device)
        for i, p in enumerate(picked):
            indices[i, :p.shape[0]] = p
        return Codes(indices[..., None], lengths=lengths.to(images.device))

    # ---- the differentiable latent path (all rollouts: the most tokens) ----
    def _encode_latents(self, images: Tensor) -> Tensor:
        """Images in [0, 1] -> pre-quantization latents of the last rollout ``[B, max_tokens, token_size]``.

        The halting draws use the same seeded CPU generator as `encode` (``deterministic=True``), so the tokens
        `quantize` gives are `encode`'s."""
        for step in self.rollouts(images, generator=self._generator(True, None), last_logits=False):
            pass
        return self.to_code(self.encoder.ln_post(step.latents))

    def _quantize(self, latents: Tensor) -> tuple[Codes, Tensor]:
        """``[B, n, token_size]`` -> (codes ``[B, n, 1]``, straight-through l2-normalised code vectors)."""
        q = self.quantizer(latents)
        return Codes(q.indices[..., None]), q.quantized

    # ---- decode ----
    def _decode_latents(self, z_q: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Quantized latents ``[B, n, token_size]`` -> raw images ``[B, 3, H, W]`` ([0, 1] scale, unclamped).

        `lengths` ``[B]``: images of one batch with different token counts; each decodes as if alone.
        """
        return self.pixels_from_logits(self.decoder(z_q, lengths))

    def _decode(self, codes: Codes) -> Tensor:
        return self._decode_latents(self.quantizer.lookup(codes.indices[..., 0]), codes.lengths)

    def _check_decodable(self, codes: Codes) -> None:
        choices = self.spec.token_choices
        counts = sorted(set(codes.token_counts().tolist()))
        if any(c not in choices for c in counts):
            raise InputError(f"ALIT decodes the tokens of one rollout: {list(choices)} per image, got {counts}")

    # ---- training ----
    def forward(self, images: Tensor, rollouts: list[int] | None = None,
                generator: torch.Generator | None = None, pixels: bool = True) -> dict[str, object]:
        """Training pass on images in [0, 1] (the released forward; images decoded from the soft code).

        Returns ``gt_indices`` (base-VQGAN codes ``[B, g²]``, the targets of the stage-1 NLL) and, for each rollout
        r in `rollouts` (default: all), ``logits[r]``, ``images[r]`` (raw reconstruction; skipped when
        `pixels=False`, as stage 1 needs none) and ``quantizer[r]`` (straight-through VQ output with its loss).
        Halting draws from the global RNG unless a `generator` is given.
        """
        wanted = set(range(self.config.max_rollouts) if rollouts is None else rollouts)
        out: dict[str, object] = {"logits": {}, "images": {}, "quantizer": {}}
        _, out["gt_indices"] = self.image_tokens(images)
        for step in self.rollouts(images, last=max(wanted), generator=generator):
            if step.index in wanted:
                out["logits"][step.index] = step.logits
                if pixels:
                    out["images"][step.index] = self.pixels_from_logits(step.logits)
                out["quantizer"][step.index] = step.quantizer
        return out


# ---------------------------------------------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------------------------------------------
register_family(FamilySpec(
    name="alit",
    tokenizer_cls=ALIT,
    config_cls=ALITConfig,
    convert=convert.convert_state_dict,
    config_from_official=convert.config_from_official,
    extract=convert.extract,
    skip=convert.SKIP,
    official_repo="https://github.com/ShivamDuggal4/adaptive-length-tokenizer",
    description="ALIT: adaptive-length 1-D tokens (32..256) by recurrent rollouts over a MaskGIT-VQGAN base",
))

_PAPER = "https://arxiv.org/abs/2411.02393"
_CODE = "https://github.com/ShivamDuggal4/adaptive-length-tokenizer"
_CITE = ("@inproceedings{duggal2025alit, title={Adaptive Length Image Tokenization via Recurrent Allocation}, "
         "author={Duggal, Shivam and Isola, Phillip and Torralba, Antonio and Freeman, William T.}, "
         "booktitle={ICLR}, year={2025}}")
_DROPBOX = "https://www.dropbox.com/scl/fi/"
_LICENSE = "unspecified (the official repository has no license file at 8c0b4ec)"
# Published per-model reconstruction numbers (paper Table 1, L1 / rFID per token count) were not retrievable when
# this was written; none are registered. The paper's linear-probe (49.9% top-1 vs TiTok 48.0%) is not tied to a
# released file, so it is not attached to an entry either.
# (name, size, train data, file name as download.py saves it, Dropbox link as download.py lists it)
_RELEASED = (
    ("alit-small", "alit_small", "ImageNet-1K", "imagenet/alit_small_vqgan_quantized_latents.pth",
     _DROPBOX + "u8jyro5wysttp5mvs6gir/alit_vqgan_small_quantized_latent.pth?rlkey=1py1s9755gjhdyw5ifd9h2wff"
     "&st=swdbevjk&dl=1"),
    ("alit-small-in100", "alit_small", "ImageNet-100", "imagenet100/alit_small_vqgan_quantized_latents.pth",
     _DROPBOX + "iszluhiop09z3afo2gw5f/alit_small_vqgan_quantized_latents.pth?rlkey=klt0zgeunb60l1snuzhjdzdq2"
     "&st=zgwzgc2r&dl=1"),
    ("alit-base-in100", "alit_base", "ImageNet-100", "imagenet100/alit_base_vqgan_quantized_latents.pth",
     _DROPBOX + "6cygifz37knpqtkxgfj81/alit_base_vqgan_quantized_latents.pth?rlkey=r8hn0d4d8j8eg2wjorzl9c67s"
     "&st=c5iv7wor&dl=1"),
    ("alit-semilarge-in100", "alit_semilarge", "ImageNet-100",
     "imagenet100/alit_semilarge_vqgan_quantized_latents.pth",
     _DROPBOX + "wcp7s6w86slh1yy4m3egc/alit_semilarge_vqgan_quantized_latents.pth?rlkey=cf2s13c6ah3ru4ly9tb911gi7"
     "&st=d11uoq0i&dl=1"),
)
for _name, _size, _data, _file, _url in _RELEASED:
    register_model(ModelEntry(
        name=_name, family="alit", config=sized(_size),
        description=f"ALIT {_size.split('_')[1]} ({_data}), VQGAN base, quantized 1-D latents: 32..256 tokens "
                    f"in 8 rollouts, codebook 4096x12. Not on the hub: download {_file} (download.py) and pass "
                    "checkpoint=<file>",
        url=_url,
        license=_LICENSE, paper=_PAPER, code=_CODE,
        citation=_CITE, tags=("1d-tokens", "variable-length"),
        extra={"official_file": _file, "train_data": _data, "checkpoint_key": "ema"},
    ))

# Released but not supported (continuous latents have no discrete tokens; the VAE base samples its posterior).
for _name, _base, _quant, _file in (
    ("alit-small-continuous-in100", "vqgan", False, "imagenet100/alit_small_vqgan_continuous_latents.pth"),
    ("alit-small-vae-in100", "vae", True, "imagenet100/alit_small_vae_quantized_latents.pth"),
    ("alit-small-vae-continuous-in100", "vae", False, "imagenet100/alit_small_vae_continuous_latents.pth"),
):
    register_model(ModelEntry(
        name=_name, family="alit", config=sized("alit_small", base=_base, quantize_latent=_quant),
        description=f"ALIT small (ImageNet-100), {_base.upper()} base, "
                    f"{'quantized' if _quant else 'continuous'} latents: released ({_file}) but NOT SUPPORTED "
                    "(loading raises a ConfigError)",
        paper=_PAPER, code=_CODE, citation=_CITE, tags=("unsupported",), extra={"official_file": _file},
    ))
