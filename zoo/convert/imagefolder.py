"""ImageFolder / XQ-GAN multi-scale tokenizer: official layout (lxa9867/ImageFolder `VQModel` with dinov2 encoder
and decoder and one `VectorQuantizer2` per branch; the Adobe release is the same layout) -> ours.

Files. The training scripts (``xqgan_train.py``, ``msvq_train.py``) write ``torch.save({"model", "ema", "optimizer",
"discriminator", "optimizer_disc", "steps", "args"})``; the release's own loaders take ``ema``, else ``model``, else
``state_dict``, and so do we. VAR files hold the tokenizer under ``trainer.vae_local``. ``args`` is the training
script's argparse.Namespace, filled from a YAML file read with ruamel.yaml's round-trip loader, so its floats are
ruamel ``ScalarFloat`` and its lists ``CommentedSeq`` (carrying ``LineCol`` and ``Format`` objects). Those load under
``weights_only=True`` through inert stand-ins (`ALLOWED_GLOBALS`); ruamel is never imported or unpickled.

Keys. ``encoder.model.*`` / ``decoder.model.*`` (timm ViTs) become ``encoder.vit.*`` / ``decoder.vit.*``,
``decoder.to_pixel.model`` becomes ``decoder.to_pixel``, ``quantizes.{b}.embedding`` becomes
``quantizer.branches.{b}.embedding`` and the φ convolutions ``quantizes.{b}.quant_resi.qresi_ls.{k}`` become
``quantizer.branches.{b}.phi.convs.{k}``. Skipped on purpose, by name (`SKIP`): the frozen DINOv2 teacher of the
semantic loss (``semantic_model.*``, ~86M parameters, not used by encode/decode; `teacher_state_dict` reads it),
XQ-GAN's frozen CLIP teacher (``detail_model.*``) and the codebook-usage statistics (``ema_vocab_hit_SV``). The level
id buffers (``lvl1LC``) are checked against the layout we rebuild and then dropped.
"""
from __future__ import annotations

import math
import re
from typing import Any, Mapping

import torch
from torch import Tensor

from ..errors import CheckpointError, ConfigError
from .common import count_blocks, find_state_dict, rename, shape_of, to_plain

StateDict = dict[str, Tensor]


# ---------------------------------------------------------------------------------------------------------------
# Safe loading of the training script's args
# ---------------------------------------------------------------------------------------------------------------
class YamlFloat(float):
    """Stand-in for ruamel.yaml's ScalarFloat (a float that remembers how it was written)."""


class YamlInt(int):
    """Stand-in for ruamel.yaml's ScalarInt."""


class YamlSeq(list):
    """Stand-in for ruamel.yaml's CommentedSeq (a list with formatting attributes)."""


class YamlMap(dict):
    """Stand-in for ruamel.yaml's CommentedMap."""


class YamlAttribute:
    """Stand-in for ruamel.yaml's formatting records (LineCol, Format): attributes only, never used."""


class YamlLineCol(YamlAttribute):
    pass


class YamlFormat(YamlAttribute):
    pass


ALLOWED_GLOBALS: tuple[Any, ...] = (
    (YamlFloat, "ruamel.yaml.scalarfloat.ScalarFloat"),
    (YamlInt, "ruamel.yaml.scalarint.ScalarInt"),
    (YamlSeq, "ruamel.yaml.comments.CommentedSeq"),
    (YamlMap, "ruamel.yaml.comments.CommentedMap"),
    (YamlLineCol, "ruamel.yaml.comments.LineCol"),
    (YamlFormat, "ruamel.yaml.comments.Format"),
)

SKIP = (r"semantic_model\.", r"detail_model\.", r"quantizes\.\d+\.ema_vocab_hit_SV$")

RULES = (
    (r"encoder\.model\.(.*)", r"encoder.vit.\1"),
    (r"decoder\.to_pixel\.model\.(weight|bias)", r"decoder.to_pixel.\1"),
    (r"decoder\.model\.(.*)", r"decoder.vit.\1"),
    (r"quantizes\.(\d+)\.embedding\.weight", r"quantizer.branches.\1.embedding.weight"),
    (r"quantizes\.(\d+)\.quant_resi\.qresi_ls\.(\d+)\.(weight|bias)", r"quantizer.branches.\1.phi.convs.\2.\3"),
    (r"quantizes\.(\d+)\.quant_resi\.qresi\.(weight|bias)", r"quantizer.branches.\1.phi.convs.0.\2"),
    (r"quantizes\.(\d+)\.quant_resi\.(\d+)\.(weight|bias)", r"quantizer.branches.\1.phi.convs.\2.\3"),
)


def extract(obj: Any) -> tuple[StateDict, dict | None]:
    """A loaded official file -> (tokenizer state dict, the training args as a plain dict or None)."""
    if isinstance(obj, Mapping) and isinstance(obj.get("trainer"), Mapping) and "vae_local" in obj["trainer"]:
        return dict(obj["trainer"]["vae_local"]), None  # a VAR file: the tokenizer it was trained on
    state_dict = find_state_dict(obj, keys=("ema", "model", "state_dict"))
    args = obj.get("args") if isinstance(obj, Mapping) else None
    return state_dict, (to_plain(args) if args is not None else None)


# ---------------------------------------------------------------------------------------------------------------
# State dict
# ---------------------------------------------------------------------------------------------------------------
def level_ids(prefix: int, groups: list[int]) -> Tensor:
    """Level ids of a sequence: ``prefix`` zeros, then ``groups[i]`` copies of i + 1 (the release's lvl1LC)."""
    # built from Python ints (no data-dependent shape), so torch.compile traces it without a graph break
    return torch.cat([torch.full((n,), i, dtype=torch.int64) for i, n in enumerate([prefix, *groups])])


def _check_levels(state_dict: Mapping[str, Tensor], key: str, expected: Tensor) -> None:
    if key not in state_dict or state_dict[key].is_meta:
        return
    got = state_dict[key].reshape(-1).to(torch.int64)
    if got.shape != expected.shape or not torch.equal(got, expected):
        raise CheckpointError(
            f"{key} ({tuple(got.shape)}) is not the level layout of this config ({tuple(expected.shape)}: class + "
            "patch tokens 0, then one id per latent grid); the release builds it from patch_size² + 1, which equals "
            "the patch count only when image_size = patch_size² (256 = 16²)"
        )


def convert_state_dict(state_dict: Mapping[str, Tensor], config: Any) -> StateDict:
    """Official tensors (skipped keys already dropped) -> our names; the level-id buffers are checked and dropped."""
    grid = config.image_size // config.patch_size
    tokens = config.scale_sides[-1] ** 2
    _check_levels(state_dict, "encoder.lvl1LC", level_ids(1 + grid * grid, [tokens] * config.branches))
    _check_levels(state_dict, "decoder.lvl1LC", level_ids(1 + grid * grid, [1 + tokens]))
    kept = {k: v for k, v in state_dict.items() if not k.endswith(".lvl1LC")}
    return rename(kept, RULES)


def teacher_state_dict(state_dict: Mapping[str, Tensor]) -> StateDict:
    """The frozen DINOv2 teacher stored in a release (``semantic_model.*``) -> a `zoo.nn.dinov2.DinoViT` state dict
    (timm names, so only the prefix goes)."""
    out = {k[len("semantic_model."):]: v for k, v in state_dict.items() if k.startswith("semantic_model.")}
    if not out:
        raise CheckpointError("checkpoint has no semantic_model.* (the frozen DINOv2 teacher of the semantic loss)")
    return out


# ---------------------------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------------------------
# heads of the DINOv2 sizes the official code accepts (encoder_model / decoder_model are timm names)
DINOV2_HEADS = {"small": (384, 6), "base": (768, 12), "large": (1024, 16), "giant": (1536, 24)}
_DINOV2_NAME = re.compile(r"vit_(small|base|large|giant)_patch14(_reg4)?_dinov2(\.lvd142m)?$")

RELEASED_SCALES = (1, 1, 2, 3, 3, 4, 5, 6, 8, 11)  # v_patch_nums of every released MSVR10 config

# argparse defaults of xqgan_train.py for the keys the YAML may leave out
_TRAIN_DEFAULTS = {"codebook_drop": 0.0, "start_drop": 1, "sem_loss_weight": 0.1, "sem_loss_scale": 1.0,
                   "clip_norm": False, "commit_loss_beta": 0.25, "codebook_l2_norm": True, "semantic_guide": "none"}


def vit_sizes(state_dict: Mapping[str, Tensor], prefix: str) -> dict[str, Any]:
    """Width, depth, grid, MLP ratio (and patch, when there is a patch embedding) of a timm ViT under `prefix`."""
    _, n_pos, width = shape_of(state_dict, f"{prefix}pos_embed")
    grid = math.isqrt(n_pos - 1)
    if grid * grid != n_pos - 1:
        raise CheckpointError(f"{prefix}pos_embed has {n_pos} rows: not a class row plus a square grid")
    if f"{prefix}reg_token" in state_dict:
        raise ConfigError(f"{prefix} has register tokens (a *_reg4_dinov2 backbone); the zoo builds the plain one")
    depth = count_blocks(state_dict, f"{prefix}blocks.")
    if f"{prefix}blocks.0.mlp.fc1.weight" not in state_dict:
        raise ConfigError(f"{prefix}blocks have no mlp.fc1 (a SwiGLU giant backbone?): not supported")
    hidden = shape_of(state_dict, f"{prefix}blocks.0.mlp.fc1.weight")[0]
    sizes = {"width": width, "depth": depth, "grid": grid, "mlp_ratio": hidden / width,
             "layer_scale": f"{prefix}blocks.0.ls1.gamma" in state_dict}
    if f"{prefix}patch_embed.proj.weight" in state_dict:
        sizes["patch"] = shape_of(state_dict, f"{prefix}patch_embed.proj.weight")[-1]
    return sizes


def heads_for(model_name: str | None, width: int, override: int | None, role: str) -> int:
    """Attention heads: the override, else the DINOv2 size named by the official config (checked against the
    width), else (no name given) the DINOv2 size of that width."""
    if override is not None:
        return int(override)
    if model_name is None:
        for known_width, heads in DINOV2_HEADS.values():
            if known_width == width:
                return heads
        raise ConfigError(f"{role} width {width} is not a DINOv2 size and no official config names the model: "
                          f"pass {role}_heads=N (or heads=N for encoder and decoder)")
    match = _DINOV2_NAME.match(model_name)
    if match is None:
        raise ConfigError(
            f"official {role}_model {model_name!r} is not one of the DINOv2 sizes the official code knows "
            f"(vit_{{small,base,large,giant}}_patch14_dinov2.lvd142m), so its heads cannot be read from the weights: "
            f"pass {role}_heads=N (or heads=N for encoder and decoder)"
        )
    known_width, heads = DINOV2_HEADS[match.group(1)]
    if known_width != width:
        raise CheckpointError(f"official {role}_model {model_name!r} has width {known_width}, the checkpoint {width}")
    return heads


def config_from_official(official: Mapping[str, Any] | None, state_dict: Mapping[str, Tensor],
                         **overrides: Any) -> Any:
    """Our config from the official one (YAML / args; None: released training values) checked against the weights.

    Sizes come from the weights; what they cannot tell comes from the official config: the scale schedule
    (``v_patch_nums``), the heads (from the timm model names, or `heads`/`encoder_heads`/`decoder_heads`
    overrides for sizes the official tables do not know) and the training-only settings.
    """

    off = dict(official or {})
    overrides = dict(overrides)
    both_heads = overrides.pop("heads", None)
    enc_heads = overrides.pop("encoder_heads", both_heads)
    dec_heads = overrides.pop("decoder_heads", both_heads)
    if off.get("lfq"):
        raise ConfigError("binary spherical (LFQ, MSBR*) configs are not supported; the zoo loads the VQ ones (MSVR*)")
    for role in ("enc_type", "dec_type"):
        if off.get(role, "dinov2") != "dinov2":
            raise ConfigError(f"official {role}={off[role]!r}: only the dinov2 ViT tokenizer is supported")
    if off.get("abs_pos_embed") is False or "encoder.latent_pos_embed" in state_dict:
        raise ConfigError("abs_pos_embed=false (learned latent position table) is not a released ImageFolder setting")

    enc = vit_sizes(state_dict, "encoder.model.")
    dec = vit_sizes(state_dict, "decoder.model.")
    if "patch" not in enc:
        raise CheckpointError("checkpoint has no encoder.model.patch_embed.proj.weight")
    if dec["grid"] != enc["grid"]:
        raise CheckpointError(f"decoder grid {dec['grid']} differs from the encoder's {enc['grid']}")
    if dec["mlp_ratio"] != enc["mlp_ratio"] or dec["layer_scale"] != enc["layer_scale"]:
        raise CheckpointError("encoder and decoder blocks differ in MLP ratio or LayerScale")
    if not enc["layer_scale"]:
        raise CheckpointError("blocks have no LayerScale (ls1.gamma): not a DINOv2 backbone")
    patch = enc["patch"]
    pixels = shape_of(state_dict, "decoder.to_pixel.model.weight")[0]
    if pixels != 3 * patch * patch:
        raise CheckpointError(f"decoder.to_pixel predicts {pixels} values per token, not 3·{patch}²")
    branches = count_blocks(state_dict, "quantizes.")
    if branches == 0:
        raise CheckpointError("checkpoint has no quantizes.* (single-quantizer product_quant=1 files are not "
                              "supported)")
    codebook, code_dim = shape_of(state_dict, "quantizes.0.embedding.weight")
    if shape_of(state_dict, "quant_conv.weight")[:2] != (code_dim, enc["width"]):
        raise CheckpointError(f"quant_conv is {shape_of(state_dict, 'quant_conv.weight')}, expected "
                              f"({code_dim}, {enc['width']}, 1, 1)")
    n_latent = shape_of(state_dict, "encoder.latent_tokens")[1]
    side = math.isqrt(n_latent // branches)
    if side * side * branches != n_latent:
        raise CheckpointError(f"{n_latent} latent tokens are not {branches} square grids")
    phi_count = count_blocks(state_dict, "quantizes.0.quant_resi.qresi_ls.") or count_blocks(
        state_dict, "quantizes.0.quant_resi.") or (1 if "quantizes.0.quant_resi.qresi.weight" in state_dict else 0)
    if phi_count == 0:
        raise ConfigError("quantizers without φ convolutions (quant_resi = 0) are not supported")

    scales = overrides.pop("scale_sides", None) or off.get("v_patch_nums")
    usage_rows = [shape_of(state_dict, k)[0] for k in state_dict if k.endswith("ema_vocab_hit_SV")]
    if scales is None and official is None and side == RELEASED_SCALES[-1] and usage_rows[:1] == [
            len(RELEASED_SCALES)]:
        scales = RELEASED_SCALES  # a bare released state dict: 10 scales ending at 11 are the released schedule
    if scales is None:
        raise ConfigError("the scale schedule is not stored in the weights: give the official config "
                          "(v_patch_nums) or scale_sides=[...]")
    scales = [int(p) for p in scales]
    if len(scales) == 1:
        raise ConfigError("single-scale configs (VP2/VQ*) are not supported; the zoo loads the multi-scale ones")
    if scales[-1] != side:
        raise CheckpointError(f"the last scale {scales[-1]} is not the latent grid side {side}")
    if any(rows != len(scales) for rows in usage_rows):
        raise CheckpointError(f"ema_vocab_hit_SV counts {usage_rows[0]} scales, the config {len(scales)}")

    stated = {"codebook_size": (off.get("codebook_size"), codebook), "codebook_embed_dim": (
        off.get("codebook_embed_dim"), code_dim), "product_quant": (off.get("product_quant"), branches),
        "num_latent_tokens": (off.get("num_latent_tokens"), side * side),
        "image_size": (off.get("image_size"), enc["grid"] * patch)}
    if off.get("share_quant_resi") is not None:  # 0: one φ per scale, 1: one φ, K: K shared φ
        share = int(off["share_quant_resi"])
        stated["share_quant_resi (φ count)"] = ({0: len(scales), 1: 1}.get(share, share), phi_count)
    for key, (said, found) in stated.items():
        if said is not None and int(said) != found:
            raise CheckpointError(f"official config says {key}={said} but the checkpoint has {found}")

    train = {k: off.get(k, v) for k, v in _TRAIN_DEFAULTS.items()} if official is not None else {}
    values: dict[str, Any] = dict(
        image_size=enc["grid"] * patch, patch_size=patch, mlp_ratio=enc["mlp_ratio"],
        encoder_width=enc["width"], encoder_depth=enc["depth"],
        encoder_heads=heads_for(off.get("encoder_model"), enc["width"], enc_heads, "encoder"),
        decoder_width=dec["width"], decoder_depth=dec["depth"],
        decoder_heads=heads_for(off.get("decoder_model"), dec["width"], dec_heads, "decoder"),
        branches=branches, scale_sides=tuple(scales), codebook_size=codebook, code_dim=code_dim,
        phi_count=phi_count,
    )
    if train:
        values.update(
            l2_norm=bool(train["codebook_l2_norm"]), beta=float(train["commit_loss_beta"]),
            quantizer_dropout=float(train["codebook_drop"]), dropout_min_scales=int(train["start_drop"]),
            semantic_weight=float(train["sem_loss_weight"]) if train["semantic_guide"] == "dinov2" else 0.0,
            semantic_logit_scale=float(train["sem_loss_scale"]), semantic_l2_norm=bool(train["clip_norm"]),
        )
    values.update(overrides)
    return values
