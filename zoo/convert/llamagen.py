"""LlamaGen VQ tokenizers: official layout (FoundationVision/LlamaGen `tokenizer/tokenizer_image/vq_model.py`,
`VQModel`) -> ours (`zoo.nn.taming` encoder/decoder + `VectorQuantizer`).

Official files are ``torch.save({"model": state_dict, ...})``. Renames: encoder ``conv_blocks.{i}.res.{j}`` ->
``down.{i}.block.{j}``, ``mid.{0,1,2}`` -> ``mid.block_1 / attn_1 / block_2``; the decoder's ``conv_blocks.{i}``
runs deepest first, so it becomes ``up.{L-1-i}``; each attention block's separate ``q``/``k``/``v`` 1x1 convs are
concatenated into one ``qkv``; ``quantize.embedding`` -> ``quantizer.embedding``. The usage ring buffer
``quantize.codebook_used`` (65,536 recent indices, training only) is skipped by name.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

import torch
from torch import Tensor

from ..errors import CheckpointError
from .common import count_blocks, find_state_dict, rename, shape_of

StateDict = dict[str, Tensor]

SKIP = (r"quantize\.codebook_used$",)


def extract(obj: Any) -> tuple[StateDict, dict | None]:
    """``{"model": state_dict, ...}`` (or a flat state dict) -> (state dict, None): the file holds no config."""
    return find_state_dict(obj, keys=("model", "ema", "state_dict")), None


def _fuse_qkv(sd: StateDict) -> StateDict:
    out: StateDict = {}
    for key, value in sd.items():
        m = re.fullmatch(r"(.*)\.([qkv])\.(weight|bias)", key)
        if m is None:
            out[key] = value
            continue
        if m.group(2) != "q":
            continue
        prefix, kind = m.group(1), m.group(3)
        parts = [f"{prefix}.{n}.{kind}" for n in "qkv"]
        if not all(p in sd for p in parts):
            raise CheckpointError(f"attention block {prefix} lacks one of q/k/v.{kind}")
        out[f"{prefix}.qkv.{kind}"] = torch.cat([sd[p] for p in parts])
    return out


def convert_state_dict(state_dict: Mapping[str, Tensor], config: Any = None) -> StateDict:
    sd = dict(state_dict)
    levels = count_blocks(sd, "decoder.conv_blocks.")
    rules = [
        (r"encoder\.conv_blocks\.(\d+)\.res\.(\d+)\.(.*)", r"encoder.down.\1.block.\2.\3"),
        (r"encoder\.conv_blocks\.(\d+)\.(attn|downsample)\.(.*)", r"encoder.down.\1.\2.\3"),
        (r"(encoder|decoder)\.mid\.0\.(.*)", r"\1.mid.block_1.\2"),
        (r"(encoder|decoder)\.mid\.1\.(.*)", r"\1.mid.attn_1.\2"),
        (r"(encoder|decoder)\.mid\.2\.(.*)", r"\1.mid.block_2.\2"),
        (r"quantize\.embedding\.weight", r"quantizer.embedding.weight"),
    ]
    sd = rename(sd, rules)
    # the decoder's conv_blocks run deepest first: official i is our level L-1-i
    out: StateDict = {}
    for key, value in sd.items():
        m = re.fullmatch(r"decoder\.conv_blocks\.(\d+)\.(res|attn|upsample)\.(.*)", key)
        if m:
            part = "block" if m.group(2) == "res" else m.group(2)
            key = f"decoder.up.{levels - 1 - int(m.group(1))}.{part}.{m.group(3)}"
        out[key] = value
    return _fuse_qkv(out)


def config_from_official(official: Mapping[str, Any] | None, state_dict: Mapping[str, Tensor],
                         **overrides: Any) -> Any:
    """Our `LlamaGenConfig` from the weights' shapes (the files hold no config; `official` may give ModelArgs
    fields such as ``codebook_l2_norm`` or an ``image_size``)."""

    official = dict(official or {})
    hidden = shape_of(state_dict, "encoder.conv_in.weight")[0]
    levels = count_blocks(state_dict, "encoder.conv_blocks.")
    mult = tuple(shape_of(state_dict, f"encoder.conv_blocks.{i}.res.0.conv1.weight")[0] // hidden
                 for i in range(levels))
    dec_levels = count_blocks(state_dict, "decoder.conv_blocks.")
    dec_mult = tuple(shape_of(state_dict, f"decoder.conv_blocks.{dec_levels - 1 - i}.res.0.conv1.weight")[0] // hidden
                     for i in range(dec_levels))
    if dec_mult != mult:
        raise CheckpointError(f"encoder channel multipliers {mult} differ from the decoder's {dec_mult}; "
                              "the zoo builds them mirrored")
    codebook, dim = shape_of(state_dict, "quantize.embedding.weight")
    values: dict[str, Any] = dict(
        hidden_channels=hidden, channel_mult=mult,
        num_res_blocks=count_blocks(state_dict, "encoder.conv_blocks.0.res."),
        z_channels=shape_of(state_dict, "encoder.conv_out.weight")[0], codebook_size=codebook, code_dim=dim)
    if shape_of(state_dict, "quant_conv.weight")[:2] != (dim, values["z_channels"]):
        raise CheckpointError(f"quant_conv {shape_of(state_dict, 'quant_conv.weight')} does not map "
                              f"{values['z_channels']} channels to the {dim}-d codebook")
    for theirs, ours in (("codebook_l2_norm", "l2_norm"), ("commit_loss_beta", "beta"),
                         ("image_size", "image_size")):
        if theirs in official:
            values[ours] = official[theirs]
    values.update(overrides)
    return values
