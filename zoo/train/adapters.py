"""Family hooks: what the one trainer needs to know about a family, registered by family name.

An adapter runs the family's training forward (through the possibly DDP-wrapped model, so gradients are
synchronised), says which parameters a stage freezes, which layer is the decoder's last (adaptive GAN weight),
which quantizers to watch (usage, entropy, dead-code restarts), and adds the family's own losses:
- vqgan, llamagen: none (pixel + VQ losses); convfsq: none (pixel losses; FSQ has no codebook to restart);
- var-vqvae: none (pixel + VAR's multi-scale VQ loss; crops at the model's size, the scales end at its latent side);
- titok / onedpiece: stage 1 = cross-entropy of the proxy-code logits against a frozen MaskGIT-VQGAN's codes,
  stage 2 = pixel losses with encoder and quantizer frozen; Tail Token Drop is the model's own (config
  ``tail_token_drop``) and the kept length is logged;
- imagefolder: the semantic branch's distillation towards a frozen DINOv2 (``loss.semantic``, ``loss.teacher``);
- unitok: CLIP contrastive loss between the quantized-token image embedding and the caption's text embedding
  (``loss.clip``; captions from ``data.captions``), the learned logit scale clamped to [0, ln 100] as upstream;
- tokenflow: the semantic decoder's distillation ``1 - cos`` towards a frozen teacher tower (``loss.semantic``);
- alit: stage 1 = per-rollout NLL of the base-code logits (weights ``loss.rollout_weights``) + the soft-code MSE
  with the base VQGAN frozen; stage 2 = pixel losses on one rollout per step, cycling through the rollouts;
- open_magvit2: LFQ commitment + MAGVIT-v2's entropy loss (per-sample minus codebook entropy, `loss.entropy`);
- ibq: the index-backpropagation quantization loss + the same entropy loss on the code logits;
Users add adapters for their own families the same way.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .recipe import Recipe


@dataclass
class StepOutput:
    """One training forward.

    recon: raw reconstruction ``[B, 3, H, W]`` ([0, 1] scale, unclamped) or None.
    quantizer: the family's `QuantizerOutput` (its `.loss` is the VQ loss) or None.
    losses: the family's own terms, already weighted (added to the generator loss as they are).
    indices: int64 codes ``[B, ...]`` for usage statistics, or None.
    pixel_losses: whether pixel / perceptual / GAN terms apply in this stage.
    logs: extra numbers to log (e.g. the kept token count of Tail Token Drop).
    """

    recon: Tensor | None
    quantizer: Any = None
    losses: dict[str, Tensor] = field(default_factory=dict)
    indices: Tensor | None = None
    pixel_losses: bool = True
    logs: dict[str, float] = field(default_factory=dict)


class FamilyAdapter:
    """Base adapter; subclasses set `families` and override what differs."""

    families: tuple[str, ...] = ()
    supported_losses: tuple[str, ...] = ()  # family-hook loss keys this adapter implements ("proxy_ce", ...)

    def check(self, recipe: Recipe) -> None:
        """Refuse family-hook losses the family does not have, and stage settings it does not know."""
        for key in ("proxy_ce", "clip", "semantic"):
            if getattr(recipe.loss, key) and key not in self.supported_losses:
                raise ConfigError(f"recipe.loss.{key} is a hook of another family; {recipe.family} does not use it "
                                  "(set it to 0)")
        if recipe.data.captions and "clip" not in self.supported_losses:
            raise ConfigError(f"recipe.data.captions: {recipe.family} does not train on captions (only CLIP-style "
                              "families such as unitok do); set it to false")
        if recipe.loss.rollout_weights is not None and "rollout_weights" not in self.supported_losses:
            raise ConfigError(f"recipe.loss.rollout_weights is ALIT's; {recipe.family} does not use it")

    def setup(self, model: nn.Module, recipe: Recipe, device: torch.device) -> None:
        """Before the optimizer is built: load teachers, initialise parts. Default: nothing."""

    def frozen(self, recipe: Recipe) -> list[str]:
        """Parameter-name patterns this stage keeps frozen."""
        return []

    def forward(self, model: nn.Module, raw: nn.Module, images: Tensor, recipe: Recipe,
                captions: list[str] | None = None) -> StepOutput:
        """One training forward. `captions` (B strings) come only when ``data.captions`` is set."""
        raise NotImplementedError

    def last_layer(self, raw: nn.Module) -> Tensor | None:
        return None

    def quantizers(self, raw: nn.Module) -> list[nn.Module]:
        """Quantizer modules (`zoo.quant` API: codebook(), restart_dead_codes, l2_norm) to watch and restart."""
        q = getattr(raw, "quantizer", None)
        return [q] if q is not None and hasattr(q, "codebook") else []


_ADAPTERS: dict[str, FamilyAdapter] = {}
_PENDING: dict[str, str] = {}


def register_adapter(adapter: FamilyAdapter) -> FamilyAdapter:
    for fam in adapter.families:
        _ADAPTERS[fam] = adapter
    return adapter


def get_adapter(family: str) -> FamilyAdapter:
    if family in _ADAPTERS:
        return _ADAPTERS[family]
    what = _PENDING.get(family, "a training adapter")
    raise NotImplementedError(
        f"training the {family!r} family is not implemented yet: it needs {what} in zoo.train.adapters "
        f"(register_adapter); families that train today: {sorted(_ADAPTERS)}"
    )


def freeze(model: nn.Module, patterns: list[str]) -> list[str]:
    """Set requires_grad=False on parameters whose name matches a pattern (fnmatch, or a name prefix)."""
    frozen = []
    for name, p in model.named_parameters():
        if any(fnmatch.fnmatch(name, pat) or name == pat or name.startswith(pat.rstrip("*").rstrip(".") + ".")
               for pat in patterns):
            p.requires_grad_(False)
            frozen.append(name)
    return frozen


# ---------------------------------------------------------------------------------------------------------------
def check_crop_size(recipe: Recipe, factor: int) -> None:
    """A conv tokenizer needs crops that its downsampling factor divides."""
    if recipe.data.crop_size % factor:
        raise ConfigError(f"recipe.data.crop_size {recipe.data.crop_size} is not a multiple of the model's "
                          f"downsampling factor {factor}")


def check_crop_is_image_size(recipe: Recipe, why: str) -> None:
    """Tokenizers that work at one size only (learned position tables, a fixed scale schedule) train on crops of
    exactly their `image_size`; `why` says which of those it is."""
    size = recipe.model.get("image_size", 256)
    if recipe.data.crop_size != size:
        raise ConfigError(f"recipe.data.crop_size {recipe.data.crop_size} must equal the model's image_size {size} "
                          f"({why})")


class VQGANAdapter(FamilyAdapter):
    families = ("vqgan",)

    def check(self, recipe):
        super().check(recipe)
        check_crop_size(recipe, 2 ** (len(recipe.model.get("channel_mult", (1, 1, 2, 2, 4))) - 1))

    def forward(self, model, raw, images, recipe, captions=None):
        recon, q = model(images)
        return StepOutput(recon=recon, quantizer=q, indices=q.indices)

    def last_layer(self, raw):
        return raw.decoder.conv_out.weight


class ConvFSQAdapter(VQGANAdapter):
    """convfsq: pixel losses only; FSQ has no codebook parameters, so no entropy term and no dead-code restarts."""

    families = ("convfsq",)

    def check(self, recipe):
        FamilyAdapter.check(self, recipe)
        check_crop_size(recipe, 2 ** len(recipe.model.get("widths", (48, 96, 192))))

    def last_layer(self, raw):
        return raw.decoder.out.weight

    def quantizers(self, raw):
        return []


class LlamaGenAdapter(VQGANAdapter):
    """LlamaGen VQ: pixel + VQ losses (+ `loss.entropy`, LlamaGen's entropy_loss_ratio), l2-normalised codebook."""

    families = ("llamagen",)

    def quantizers(self, raw):
        return [raw.quantizer]


class VARVQVAEAdapter(FamilyAdapter):
    """VAR's multi-scale VQVAE: pixel + multi-scale VQ losses. Crops must be the model's image size: the scale
    schedule ends at its latent side. Usage is counted from the indices; no entropy term or dead-code restarts."""

    families = ("var-vqvae",)

    def check(self, recipe):
        super().check(recipe)
        check_crop_is_image_size(recipe, "the multi-scale quantizer's last scale is the latent side")

    def forward(self, model, raw, images, recipe, captions=None):
        recon, q = model(images)
        return StepOutput(recon=recon, quantizer=q, indices=q.indices)

    def last_layer(self, raw):
        return raw.decoder.conv_out.weight

    def quantizers(self, raw):
        return []


class TiTokAdapter(FamilyAdapter):
    """TiTok and One-D-Piece. Two-stage models train in `train.stage` 1 or 2; single-stage ones in one stage."""

    families = ("titok", "onedpiece")
    supported_losses = ("proxy_ce",)

    def check(self, recipe):
        super().check(recipe)
        two_stage = recipe.model.get("two_stage", True)
        stage = recipe.train.stage
        if two_stage and stage not in (1, 2):
            raise ConfigError(f"recipe.train.stage: two-stage {recipe.family} trains in stage 1 (proxy codes) or 2 "
                              f"(decoder fine-tuning); got {stage!r}")
        if not two_stage and stage not in (None, 1):
            raise ConfigError(f"recipe.train.stage: single-stage {recipe.family} has one stage; got {stage!r}")
        check_crop_is_image_size(recipe, f"{recipe.family} has learned position embeddings for one size")
        if two_stage and stage == 1:
            if recipe.loss.proxy_ce <= 0:
                raise ConfigError("recipe.loss.proxy_ce must be > 0 in stage 1 (the proxy-code cross-entropy)")
            if not recipe.loss.teacher:
                raise ConfigError("recipe.loss.teacher: stage 1 needs the MaskGIT-VQGAN that makes the proxy codes "
                                  "(a registered name such as maskgit-vqgan, or a folder)")
            if recipe.loss.gan.weight:
                raise ConfigError("recipe.loss.gan.weight: stage 1 has no pixel losses; set it to 0")

    def setup(self, model, recipe, device):
        if model.config.two_stage != recipe.model.get("two_stage", True):
            raise ConfigError(f"recipe.model.two_stage: the model ({recipe.train.init or 'built'}) is "
                              f"{'two' if model.config.two_stage else 'single'}-stage; set model.two_stage: "
                              f"{str(model.config.two_stage).lower()} so the stage settings are checked against it")
        self.teacher = None
        if not recipe.loss.teacher:
            return
        from ..loading import load

        teacher = load(recipe.loss.teacher, device=device).eval().requires_grad_(False)
        cfg = model.config
        spec = teacher.spec
        if spec.image_size != cfg.image_size:
            raise ConfigError(f"recipe.loss.teacher {recipe.loss.teacher!r} takes {spec.image_size}px images, "
                              f"this model {cfg.image_size}px")
        if cfg.two_stage:
            if spec.grid != (cfg.grid, cfg.grid) or spec.codebook_sizes != (cfg.pixel_codebook_size,):
                raise ConfigError(f"recipe.loss.teacher {recipe.loss.teacher!r} makes {spec.grid} codes from "
                                  f"{spec.codebook_sizes} entries; this model predicts {cfg.grid}x{cfg.grid} codes "
                                  f"from {cfg.pixel_codebook_size}")
            if recipe.train.init is None:
                self._init_pixel_decoder(model, teacher, recipe)
        self.teacher = teacher

    @staticmethod
    def _init_pixel_decoder(model, teacher, recipe):
        """A fresh two-stage model takes its pixel decoder and codebook from the teacher (as the releases do)."""
        try:  # both parts load strictly: a size mismatch is an error, never a partial copy
            model.pixel_decoder.load_state_dict(teacher.decoder.state_dict(), strict=True)
            model.pixel_quantize.load_state_dict({"weight": teacher.quantizer.embedding.weight}, strict=True)
        except RuntimeError:
            raise ConfigError(f"recipe.loss.teacher {recipe.loss.teacher!r}: its decoder does not fit this model's "
                              "pixel decoder (pixel_* config keys); use the same MaskGIT-VQGAN sizes") from None

    def frozen(self, recipe):
        if not recipe.model.get("two_stage", True):
            return []
        if recipe.train.stage == 1:
            return ["pixel_quantize.*", "pixel_decoder.*"]
        return ["encoder.*", "quantizer.*", "latent_tokens"]

    def forward(self, model, raw, images, recipe, captions=None):
        out = model(images)
        q = out["quantizer"]
        logs = {"num_tokens": float(out["num_tokens"])}
        if raw.config.two_stage and recipe.train.stage == 1:
            with torch.no_grad():
                codes = self.teacher.encode(images.clamp(0, 1)).indices[..., 0]  # [B, g²]
            logits = out["logits"]
            ce = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), codes.reshape(-1))
            logs["proxy_accuracy"] = float((logits.argmax(-1) == codes).float().mean())
            return StepOutput(recon=out["images"], quantizer=q, losses={"proxy_ce": recipe.loss.proxy_ce * ce},
                              indices=q.indices, pixel_losses=False, logs=logs)
        return StepOutput(recon=out["images"], quantizer=q, indices=q.indices, logs=logs)

    def last_layer(self, raw):
        if raw.config.two_stage:
            return raw.pixel_decoder.conv_out.weight
        return raw.decoder.head.conv_out.weight


class ImageFolderAdapter(FamilyAdapter):
    """ImageFolder: product-quantized multi-scale branches; quantizer dropout is the model's own; the semantic
    branch is pulled towards a frozen DINOv2's CLS feature (`loss.semantic`, the release's `SemanticLoss`)."""

    families = ("imagefolder",)
    supported_losses = ("semantic",)

    def check(self, recipe):
        super().check(recipe)
        check_crop_is_image_size(recipe, "learned position tables and a fixed scale schedule")
        if recipe.loss.semantic and not recipe.loss.teacher:
            raise ConfigError("recipe.loss.teacher: ImageFolder's semantic loss needs the frozen DINOv2 teacher: an "
                              "official ImageFolder checkpoint file (its semantic_model.* weights)")

    def setup(self, model, recipe, device):
        self.semantic = None
        if recipe.loss.semantic:
            from ..families.imagefolder import SemanticLoss, semantic_teacher

            cfg = model.config
            # the release's teacher has the encoder's DINOv2 size, so its head count is the encoder's
            teacher = semantic_teacher(recipe.loss.teacher, heads=cfg.encoder_heads)
            self.semantic = SemanticLoss(teacher, recipe.loss.semantic, cfg.semantic_logit_scale,
                                         cfg.semantic_l2_norm).to(device)

    def forward(self, model, raw, images, recipe, captions=None):
        out = model(images)
        q = out["quantizer"]
        losses = {}
        if self.semantic is not None:
            exclude = int(images.shape[0] * raw.config.quantizer_dropout)  # samples quantizer dropout may cut
            losses["semantic"] = self.semantic(images, out["branches"][-1], raw.quant_conv, exclude=exclude)
        return StepOutput(recon=out["images"], quantizer=q, losses=losses, indices=q.indices)

    def last_layer(self, raw):
        return raw.decoder.to_pixel.weight

    def quantizers(self, raw):
        return []  # multi-scale product quantizer: usage is counted from the indices; no entropy/restarts


class TokenFlowAdapter(FamilyAdapter):
    """TokenFlow: pixel + VQ losses on the pixel branch, plus the release's semantic loss (`loss.semantic`, weight 1
    as released): ``mean(1 - cos)`` between the semantic decoder's per-token prediction and a frozen teacher's
    features (CLIP: patch tokens @ proj; SigLIP: hidden_states[-2]).

    The teacher is a frozen copy of the model's semantic tower as training starts (the release initialises the
    student tower from the teacher, so both start equal; a resumed run rebuilds the same initial tower before loading
    its checkpoint, so its teacher is the same). CLIP's projection to the feature size is not part of
    TokenFlow's files: it is drawn from ``recipe.seed``. SigLIP's last block, post-LayerNorm and pooling head are
    unused by the tokenizer and stay frozen, as released. One scale may be left out per step (the model's own
    ``scale_drop``)."""

    families = ("tokenflow",)
    supported_losses = ("semantic",)

    def check(self, recipe):
        super().check(recipe)
        check_crop_is_image_size(recipe, "learned position tables and a fixed scale schedule")
        if recipe.loss.teacher:
            raise ConfigError("recipe.loss.teacher: TokenFlow's teacher is a frozen copy of the model's own semantic "
                              "tower at the start of training; leave loss.teacher empty")

    def setup(self, model, recipe, device):
        from ..families.tokenflow import SemanticTeacher

        self.teacher = SemanticTeacher.for_tokenizer(model, seed=recipe.seed).to(device) if recipe.loss.semantic \
            else None
        cfg = model.config
        self._frozen = ([f"semantic_encoder.blocks.{cfg.semantic_depth - 1}", "semantic_encoder.post_layernorm",
                         "semantic_encoder.head"] if cfg.teacher == "siglip" else [])

    def frozen(self, recipe):
        return list(getattr(self, "_frozen", []))

    def forward(self, model, raw, images, recipe, captions=None):
        from ..families.tokenflow import distillation_loss

        out = model(images)
        q = out["quantizer"]
        losses = {}
        if self.teacher is not None:
            losses["semantic"] = recipe.loss.semantic * distillation_loss(out["semantic"], self.teacher(images))
        return StepOutput(recon=out["images"], quantizer=q, losses=losses, indices=q.indices)

    def last_layer(self, raw):
        return raw.pixel_decoder.conv_out.weight

    def quantizers(self, raw):
        return []  # multi-scale shared-mapping quantizer: usage is counted from the indices; no entropy/restarts


class UniTokAdapter(FamilyAdapter):
    """UniTok: pixel + VQ losses on the multi-codebook reconstruction, plus CLIP contrastive (`loss.clip`) between
    the image embedding of the *quantized* tokens and the text tower's embedding of each image's caption."""

    families = ("unitok",)
    supported_losses = ("clip",)

    def check(self, recipe):
        super().check(recipe)
        if recipe.loss.clip and not recipe.data.captions:
            raise ConfigError("recipe.loss.clip needs captions: set data.captions: true (sidecar .txt files, "
                              "webdataset .txt members or an hf text column)")
        if recipe.data.crop_size % 16:
            raise ConfigError(f"recipe.data.crop_size {recipe.data.crop_size} is not a multiple of 16 "
                              "(UniTok's encoder stride)")

    def forward(self, model, raw, images, recipe, captions=None):
        import math

        from .losses import clip_contrastive_loss

        tokens = None
        if recipe.loss.clip:
            if captions is None:
                raise ConfigError("recipe.loss.clip is set but the batch has no captions (data.captions)")
            with torch.no_grad():  # upstream clamps after each step; before each forward is the same thing
                raw.logit_scale.clamp_(0, math.log(100))
            tokens = raw.tokenize(captions).to(images.device)
        out = model(images, tokens)
        q = out["quantizer"]
        losses, logs = {}, {}
        if tokens is not None:
            clip = clip_contrastive_loss(out["image_features"], out["text_features"], out["logit_scale"])
            losses["clip"] = recipe.loss.clip * clip
            logs["clip_logit_scale"] = float(out["logit_scale"].detach())
        return StepOutput(recon=out["images"], quantizer=q, losses=losses, indices=q.indices, logs=logs)

    def last_layer(self, raw):
        return raw.decoder.last_layer

    def quantizers(self, raw):
        return []  # G sub-codebooks: usage is counted from the indices


class ALITAdapter(FamilyAdapter):
    """ALIT's two released stages (main_pretrain.py, main_full_finetuning.py).

    Stage 1 (latent distillation): the base VQGAN is frozen (copied from `loss.teacher` when training from
    scratch); every rollout r adds ``w_r·NLL(code logits, base codes) + MSE(soft code, base code row)`` and its VQ
    loss; no pixel losses. Stage 2 (full fine-tuning): everything trains; each step reconstructs one rollout,
    cycling 0..R-1, and the pixel / GAN losses apply to it. The release keeps one discriminator per rollout and
    runs 8 discriminator steps per generator step; here one discriminator serves all rollouts.
    """

    families = ("alit",)
    supported_losses = ("rollout_weights",)

    def check(self, recipe):
        super().check(recipe)
        stage, weights = recipe.train.stage, recipe.loss.rollout_weights
        if stage not in (1, 2):
            raise ConfigError(f"recipe.train.stage: ALIT trains in stage 1 (latent distillation) or 2 (full "
                              f"fine-tuning); got {stage!r}")
        rollouts = recipe.model.get("max_rollouts", 8)
        if weights is not None and len(weights) != rollouts:
            raise ConfigError(f"recipe.loss.rollout_weights needs one weight per rollout ({rollouts}), got {weights}")
        if stage == 1 and recipe.loss.gan.weight:
            raise ConfigError("recipe.loss.gan.weight: stage 1 has no pixel losses; set it to 0")
        if stage == 2 and weights is not None and any(w != 1.0 for w in weights):
            raise ConfigError("recipe.loss.rollout_weights: stage 2 trains one rollout per step, unweighted (as "
                              "released); leave them at 1.0")

    def setup(self, model, recipe, device):
        self.step = 0
        if recipe.train.stage == 1 and recipe.loss.teacher and recipe.train.init is None:
            from ..loading import load

            teacher = load(recipe.loss.teacher, device=device)
            try:  # strict: a size mismatch is an error, never a partial copy
                model.base_encoder.load_state_dict(teacher.encoder.state_dict(), strict=True)
                model.base_quantize.load_state_dict(teacher.quantizer.state_dict(), strict=True)
                model.base_decoder.load_state_dict(teacher.decoder.state_dict(), strict=True)
            except (RuntimeError, AttributeError):
                raise ConfigError(f"recipe.loss.teacher {recipe.loss.teacher!r} does not fit this model's base VQGAN "
                                  "(base_* config keys); use a MaskGIT-VQGAN of the same sizes") from None

    def frozen(self, recipe):
        return ["base_encoder.*", "base_quantize.*", "base_decoder.*"] if recipe.train.stage == 1 else []

    def forward(self, model, raw, images, recipe, captions=None):
        R = raw.config.max_rollouts
        if recipe.train.stage == 2:
            r = self.step % R
            self.step += 1
            out = model(images, rollouts=[r])
            q = out["quantizer"][r]
            return StepOutput(recon=out["images"][r], quantizer=q, indices=q.indices, logs={"rollout": float(r)})
        out = model(images, pixels=False)
        weights = recipe.loss.rollout_weights or [1.0] * R
        gt = out["gt_indices"]
        codebook = raw.base_quantize.embedding.weight.float()
        target = F.embedding(gt, codebook)
        nll = code = vq = 0.0
        for r in range(R):
            logits = out["logits"][r].float()
            nll = nll + weights[r] * F.cross_entropy(logits.reshape(-1, logits.shape[-1]), gt.reshape(-1))
            code = code + F.mse_loss(logits.softmax(-1) @ codebook, target)
            if r < R - 1:  # the last rollout's VQ loss goes through StepOutput.quantizer
                vq = vq + out["quantizer"][r].loss
        q = out["quantizer"][R - 1]
        losses = {"rollout_nll": nll, "code_mse": code}
        if recipe.loss.quantizer:
            losses["quantizer_rollouts"] = recipe.loss.quantizer * vq
        acc = float((out["logits"][R - 1].argmax(-1) == gt).float().mean())
        return StepOutput(recon=None, quantizer=q, losses=losses, indices=q.indices, pixel_losses=False,
                          logs={"code_accuracy": acc})

    def last_layer(self, raw):
        return raw.base_decoder.conv_out.weight


class OpenMagvit2Adapter(FamilyAdapter):
    """Open-MAGVIT2: pixel + commitment losses (``loss.quantizer`` times the LFQ's ``commitment_beta`` · MSE), plus
    MAGVIT-v2's entropy loss (``loss.entropy`` · (per-sample entropy - codebook entropy) of the soft assignment to
    all 2^bits corners at ``loss.entropy_temperature``; the official ``codebook_weight`` 0.1, temperature 0.01).
    LFQ has no codebook parameters: nothing to restart."""

    families = ("open_magvit2",)

    def check(self, recipe):
        super().check(recipe)
        check_crop_size(recipe, 2 ** (len(recipe.model.get("channel_mult", (1, 1, 2, 2, 4))) - 1))

    def forward(self, model, raw, images, recipe, captions=None):
        recon, q, z = model(images)
        losses, logs = {}, {}
        if recipe.loss.entropy:
            per_sample, codebook = raw.quantizer.entropy_terms(z, recipe.loss.entropy_temperature)
            losses["entropy"] = recipe.loss.entropy * (per_sample - codebook)
            logs = {"entropy/per_sample": float(per_sample.detach()), "entropy/codebook": float(codebook.detach())}
        return StepOutput(recon=recon, quantizer=q, losses=losses, indices=q.indices, logs=logs)

    def last_layer(self, raw):
        return raw.decoder.conv_out.weight

    def quantizers(self, raw):
        return []  # the entropy term is this adapter's (the trainer's generic one would measure distances)


class IBQAdapter(OpenMagvit2Adapter):
    """IBQ: pixel losses + the index-backpropagation quantization loss (``loss.quantizer``; official
    ``quant_loss_weight`` 1) + the entropy loss on the code logits (``loss.entropy``; official 0.05, temperature
    0.01). Every codebook row gets gradient through the softmax, so no dead-code restarts."""

    families = ("ibq",)


register_adapter(VQGANAdapter())
register_adapter(ConvFSQAdapter())
register_adapter(UniTokAdapter())
register_adapter(ImageFolderAdapter())
register_adapter(TiTokAdapter())
register_adapter(ALITAdapter())
register_adapter(OpenMagvit2Adapter())
register_adapter(IBQAdapter())
register_adapter(LlamaGenAdapter())
register_adapter(VARVQVAEAdapter())
register_adapter(TokenFlowAdapter())

__all__ = ["FamilyAdapter", "StepOutput", "register_adapter", "get_adapter", "freeze"]
