"""TokenFlow: official layout (ByteFlow-AI/TokenFlow ``tokenizer/vq_model.py`` ``TokenFlow``) -> ours.

Files. The released ``tokenflow_*.pt`` and the training script's checkpoints are dicts; every official loader takes
``ema`` if present, else ``model``, else ``state_dict``, and so do we. Training files also hold ``args`` (an
argparse.Namespace) whose ``teacher`` / ``enhanced_decoder`` / ``infer_interpolate`` we read when present.

Keys (official -> ours):
- ``encoder.*`` / ``decoder.*`` (LlamaGen VQGAN) -> ``pixel_encoder.*`` / ``pixel_decoder.*`` (`zoo.nn.taming`):
  ``conv_blocks.{i}.res.{j}`` -> ``down.{i}.block.{j}``; the decoder's ``conv_blocks`` run deepest first, so its
  ``conv_blocks.{i}`` becomes ``up.{L-1-i}``; ``mid.{0,1,2}`` -> ``mid.block_1 / attn_1 / block_2``; each attention
  block's separate ``q``/``k``/``v`` 1x1 convs are stacked into one ``qkv`` conv.
- ``encoder_vqkd.*`` -> ``semantic_encoder.*``: CLIP's ``transformer.resblocks.{i}`` -> ``blocks.{i}``
  (`zoo.convert.common.residual_block_rules`); SigLIP's ``vision_model.embeddings.patch_embedding`` ->
  ``patch_embed``, ``position_embedding.weight`` -> ``position_embedding``, ``encoder.layers.{i}`` -> ``blocks.{i}``
  (``layer_norm1/2`` -> ``norm1/2``, ``self_attn.{q,k,v}_proj`` -> ``attn.{q,k,v}``, ``out_proj`` -> ``attn.proj``),
  ``post_layernorm`` and ``head`` as they are.
- ``decoder_vqkd.*`` -> ``semantic_decoder.*``: ``patch_embed.proj`` -> ``patch_embed``; ``attn.q_bias`` /
  ``attn.v_bias`` -> ``attn.qkv.bias`` = [q_bias; 0; v_bias] (the release adds a zero key bias).
- ``quantize.embedding_vqkd.weight`` [K, 32] and ``quantize.embedding_vqgan.weight`` [K, 8] -> one
  ``quantizer.embedding.weight`` [K, 40] (semantic columns first).
- ``quant_conv``, ``post_quant_conv``, ``encode_task_layer``, ``decode_task_layer``: unchanged.
Skipped on purpose, by name (`SKIP`): the codebook-usage history ``quantize.codebook_used`` and SigLIP's constant
input scaling buffers ``scaling_layer.{shift,scale}`` (0.5 / 0.5, applied in code).
"""
from __future__ import annotations

import math
import re
from typing import Any, Mapping

import torch
from torch import Tensor

from ..errors import CheckpointError, ConfigError
from .common import count_blocks, find_state_dict, rename, residual_block_rules, shape_of, to_plain

StateDict = dict[str, Tensor]

SKIP = (r"quantize\.codebook_used$", r"scaling_layer\.(shift|scale)$")

_TEACHERS = {"clipb_224": "clip", "siglip_384": "siglip"}
RELEASED_SCALES = {
    ("clip", 224): (1, 2, 4, 6, 8, 10, 12, 14),
    ("clip", 256): (1, 2, 4, 6, 8, 10, 12, 14, 16),  # infer_interpolate=True, the released clipb usage
    ("siglip", 384): (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 17, 22, 27),
}


def extract(obj: Any) -> tuple[StateDict, dict | None]:
    """The official file -> (state dict from ``ema``, else ``model``, else ``state_dict``; ``args`` if stored)."""
    args = obj.get("args") if isinstance(obj, Mapping) else None
    return find_state_dict(obj, keys=("ema", "model", "state_dict")), (to_plain(args) if args is not None else None)


def _taming_rules(source: str, target: str, levels: int, decoder: bool) -> list[tuple[str, str]]:
    rules = [
        (rf"{source}\.mid\.0\.(.*)", rf"{target}.mid.block_1.\1"),
        (rf"{source}\.mid\.1\.(.*)", rf"{target}.mid.attn_1.\1"),
        (rf"{source}\.mid\.2\.(.*)", rf"{target}.mid.block_2.\1"),
    ]
    for i in range(levels):
        ours = f"up.{levels - 1 - i}" if decoder else f"down.{i}"
        rules += [(rf"{source}\.conv_blocks\.{i}\.res\.(.*)", rf"{target}.{ours}.block.\1"),
                  (rf"{source}\.conv_blocks\.{i}\.(attn|downsample|upsample)\.(.*)", rf"{target}.{ours}.\1.\2")]
    return rules + [(rf"{source}\.(conv_in|conv_out|norm_out)\.(weight|bias)", rf"{target}.\1.\2")]


_SIGLIP = "encoder_vqkd.vision_model."
RULES_SEMANTIC = (
    *residual_block_rules(r"encoder_vqkd\.transformer\.resblocks\.(\d+)\.", r"semantic_encoder.blocks.\1."),
    (r"encoder_vqkd\.(conv1\.weight|class_embedding|positional_embedding|ln_pre\..*|ln_post\..*)",
     r"semantic_encoder.\1"),
    (r"encoder_vqkd\.vision_model\.embeddings\.patch_embedding\.(weight|bias)", r"semantic_encoder.patch_embed.\1"),
    (r"encoder_vqkd\.vision_model\.embeddings\.position_embedding\.weight", r"semantic_encoder.position_embedding"),
    (r"encoder_vqkd\.vision_model\.encoder\.layers\.(\d+)\.layer_norm(\d)\.(weight|bias)",
     r"semantic_encoder.blocks.\1.norm\2.\3"),
    (r"encoder_vqkd\.vision_model\.encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)",
     r"semantic_encoder.blocks.\1.attn.\2.\3"),
    (r"encoder_vqkd\.vision_model\.encoder\.layers\.(\d+)\.self_attn\.out_proj\.(weight|bias)",
     r"semantic_encoder.blocks.\1.attn.proj.\2"),
    (r"encoder_vqkd\.vision_model\.encoder\.layers\.(\d+)\.mlp\.(fc\d)\.(weight|bias)",
     r"semantic_encoder.blocks.\1.mlp.\2.\3"),
    (r"encoder_vqkd\.vision_model\.(post_layernorm|head)\.(.*)", r"semantic_encoder.\1.\2"),
    (r"decoder_vqkd\.patch_embed\.proj\.(weight|bias)", r"semantic_decoder.patch_embed.\1"),
    (r"decoder_vqkd\.(.*)", r"semantic_decoder.\1"),
)


def convert_state_dict(state_dict: Mapping[str, Tensor], config: Any = None) -> StateDict:
    """Official TokenFlow state dict (skipped keys already removed) -> ours. Pure; meta tensors stay meta."""
    sd = dict(state_dict)
    for prefix in ("encoder", "decoder"):  # separate q/k/v 1x1 convs -> one qkv conv
        for key in [k for k in sd if re.fullmatch(rf"{prefix}\..*\.q\.weight", k)]:
            base = key[:-len("q.weight")]
            for part in ("weight", "bias"):
                names = [f"{base}{n}.{part}" for n in "qkv"]
                if all(n in sd for n in names):
                    sd[f"{base}qkv.{part}"] = torch.cat([sd.pop(n) for n in names])
    for key in [k for k in sd if re.fullmatch(r"decoder_vqkd\.blocks\.\d+\.attn\.q_bias", k)]:
        base = key[:-len("q_bias")]
        q, v = sd.pop(key), sd.pop(f"{base}v_bias")
        sd[f"{base}qkv.bias"] = torch.cat([q, torch.zeros_like(q), v])
    if "quantize.embedding_vqkd.weight" in sd:
        sd["quantizer.embedding.weight"] = torch.cat(
            [sd.pop("quantize.embedding_vqkd.weight"), sd.pop("quantize.embedding_vqgan.weight")], dim=1)
    rules = (*_taming_rules("encoder", "pixel_encoder", count_blocks(sd, "encoder.conv_blocks."), False),
             *_taming_rules("decoder", "pixel_decoder", count_blocks(sd, "decoder.conv_blocks."), True),
             *RULES_SEMANTIC)
    return rename(sd, rules)


def config_from_official(official: Mapping[str, Any] | None, state_dict: Mapping[str, Tensor],
                         **overrides: Any) -> Any:
    """Our config read off the official state dict (sizes) and the official ``ModelArgs`` / training ``args``
    (``teacher``, ``infer_interpolate``); `overrides` (our field names) win. Attention heads are not stored: CLIP's
    follow its loader (width / 64), SigLIP's and the semantic decoder's default to the releases' (16, 12)."""

    off = dict(official or {})
    overrides = dict(overrides)
    if f"{_SIGLIP}embeddings.patch_embedding.weight" in state_dict:
        teacher = "siglip"
        width, _, patch, _ = shape_of(state_dict, f"{_SIGLIP}embeddings.patch_embedding.weight")
        table = math.isqrt(shape_of(state_dict, f"{_SIGLIP}embeddings.position_embedding.weight")[0])
        depth = count_blocks(state_dict, f"{_SIGLIP}encoder.layers.")
        mlp = shape_of(state_dict, f"{_SIGLIP}encoder.layers.0.mlp.fc1.weight")[0]
        heads = 16
    elif "encoder_vqkd.conv1.weight" in state_dict:
        teacher = "clip"
        width, _, patch, _ = shape_of(state_dict, "encoder_vqkd.conv1.weight")
        table = math.isqrt(shape_of(state_dict, "encoder_vqkd.positional_embedding")[0] - 1)
        depth = count_blocks(state_dict, "encoder_vqkd.transformer.resblocks.")
        mlp = 4 * width
        heads = width // 64
    else:
        raise ConfigError("no supported semantic tower in the checkpoint (encoder_vqkd.conv1 for CLIP or "
                          "encoder_vqkd.vision_model.* for SigLIP; the ViTamin teacher was never released)")
    said = off.get("teacher")
    if said is not None and _TEACHERS.get(said) != teacher:
        raise CheckpointError(f"official config says teacher={said!r} but the checkpoint holds a {teacher} tower")
    if teacher == "clip":
        image_size = 256 if off.get("infer_interpolate", True) else table * patch
    else:  # SigLIP's image size is its processor's (384 for so400m-patch14-384: 27 patches of 14, 6 px unread)
        image_size = 384 if (table, patch) == (27, 14) else table * patch
    image_size = int(overrides.get("image_size", image_size))
    scales = overrides.pop("scale_sides", None) or RELEASED_SCALES.get((teacher, image_size))
    if scales is None:
        raise ConfigError(f"no released scale schedule for a {teacher} model at {image_size} px: give scale_sides")
    levels = count_blocks(state_dict, "encoder.conv_blocks.")
    enc_ch = shape_of(state_dict, "encoder.conv_in.weight")[0]
    dec_ch = shape_of(state_dict, "decoder.conv_out.weight")[1]
    mult = tuple(shape_of(state_dict, f"encoder.conv_blocks.{i}.res.0.conv1.weight")[0] // enc_ch
                 for i in range(levels))
    dec_width = shape_of(state_dict, "decoder_vqkd.cls_token")[-1]
    if dec_width != width:
        raise CheckpointError(f"decoder_vqkd width {dec_width} differs from the semantic tower's {width}")
    codebook, sem_code = shape_of(state_dict, "quantize.embedding_vqkd.weight")
    pix_code = shape_of(state_dict, "quantize.embedding_vqgan.weight")[1]
    values: dict[str, Any] = dict(
        image_size=image_size, teacher=teacher, semantic_width=width, semantic_depth=depth, semantic_heads=heads,
        semantic_mlp_dim=mlp, semantic_patch=patch, semantic_table_grid=table,
        semantic_feature_dim=shape_of(state_dict, "decode_task_layer.2.weight")[0],
        semantic_decoder_depth=count_blocks(state_dict, "decoder_vqkd.blocks."), semantic_decoder_heads=12,
        semantic_decoder_grid=math.isqrt(shape_of(state_dict, "decoder_vqkd.pos_embed")[1] - 1),
        semantic_code_dim=sem_code, pixel_code_dim=pix_code, codebook_size=codebook,
        scale_sides=tuple(int(p) for p in scales), channel_mult=mult, encoder_channels=enc_ch,
        encoder_res_blocks=count_blocks(state_dict, "encoder.conv_blocks.0.res."), decoder_channels=dec_ch,
        decoder_res_blocks=count_blocks(state_dict, "decoder.conv_blocks.0.res.") - 1,
        z_channels=shape_of(state_dict, "quant_conv.weight")[1],
    )
    stated = {"codebook_size": codebook, "codebook_embed_dim": pix_code, "semantic_code_dim": sem_code}
    for key, found in stated.items():
        if off.get(key) is not None and int(off[key]) != found:
            raise CheckpointError(f"official config says {key}={off[key]} but the checkpoint has {found}")
    if off.get("commit_loss_beta") is not None:
        values["beta"] = float(off["commit_loss_beta"])
    values.update(overrides)
    return values
