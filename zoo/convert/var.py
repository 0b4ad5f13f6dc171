"""VAR next-scale generator: official layout (FoundationVision/VAR `models/var.py`, vendored unchanged by
lxa9867/ImageFolder) -> `zoo.nn.var.NextScaleTransformer`.

Official files are training checkpoints ``{"trainer": {"var_wo_ddp": state_dict, "vae_local": tokenizer, ...},
"args": {...}}``; `extract` returns the generator's state dict and the args. The buffers ``lvl_1L`` and
``attn_bias_for_masking`` are rebuilt from the scales (the mask is padded to a multiple of 8 when xformers was
importable at training time, so its shape is not even fixed) and are skipped by name, as is ``empty_emb`` (the
MLM-style token drop of training, ``p_drop > 0``, unused at inference).
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor

from ..errors import CheckpointError, ConfigError
from .common import count_blocks, find_state_dict, rename, shape_of, to_plain

StateDict = dict[str, Tensor]

SKIP = (r"lvl_1L$", r"attn_bias_for_masking$", r"empty_emb\.weight$")

RULES = [
    (r"word_embed\.(weight|bias)", r"input_proj.\1"),
    (r"class_emb\.weight", r"class_embed.weight"),
    (r"pos_start", r"start_pos"),
    (r"pos_1LC", r"pos_embed"),
    (r"lvl_embed\.weight", r"level_embed.weight"),
    (r"blocks\.(\d+)\.attn\.mat_qkv\.weight", r"blocks.\1.attn.qkv.weight"),
    (r"blocks\.(\d+)\.attn\.scale_mul_1H11", r"blocks.\1.attn.scale_mul"),
    (r"blocks\.(\d+)\.ffn\.(fc1|fc2)\.(weight|bias)", r"blocks.\1.mlp.\2.\3"),
    (r"blocks\.(\d+)\.ada_lin\.1\.(weight|bias)", r"blocks.\1.ada_ln.\2"),
    (r"head_nm\.ada_lin\.1\.(weight|bias)", r"head_norm.ada_ln.\1"),
]


def extract(obj: Any) -> tuple[StateDict, dict | None]:
    """An official VAR training checkpoint -> (``trainer.var_wo_ddp``, ``args``); flat state dicts pass through."""
    if isinstance(obj, Mapping) and isinstance(obj.get("trainer"), Mapping):
        trainer = obj["trainer"]
        if not isinstance(trainer.get("var_wo_ddp"), Mapping):
            raise CheckpointError(f"checkpoint['trainer'] has no 'var_wo_ddp' generator (it has {sorted(trainer)})")
        args = obj.get("args")
        return dict(trainer["var_wo_ddp"]), (to_plain(args) if args is not None else None)
    return find_state_dict(obj, keys=("var_wo_ddp", "ema", "model", "state_dict")), None


def convert_state_dict(state_dict: Mapping[str, Tensor]) -> StateDict:
    sd = dict(state_dict)
    for i in range(count_blocks(sd, "blocks.")):
        names = [f"blocks.{i}.attn.{n}" for n in ("q_bias", "zero_k_bias", "v_bias")]
        if all(n in sd for n in names):
            sd[f"blocks.{i}.attn.qkv.bias"] = torch.cat([sd.pop(n) for n in names])
    return rename(sd, RULES)


def parse_scales(value: Any) -> tuple[int, ...]:
    """``"1_1_2_3"`` / ``"1-2-3"`` / a list -> side lengths."""
    if isinstance(value, str):
        return tuple(int(v) for v in value.replace("-", "_").split("_") if v)
    return tuple(int(v) for v in value)


def config_from_official(official: Mapping[str, Any] | None, state_dict: Mapping[str, Tensor],
                         **overrides: Any) -> dict[str, Any]:
    """Our `NextScaleTransformer` keyword arguments from the official args (``pn`` or ``patch_nums``) and shapes.

    Widths, depth, heads (from the per-head temperature), classes and vocabulary are read from the weights; the
    scale schedule must come from the args (``pn``) or ``scales=`` because only its total length is in the file.
    """
    args = dict(official or {})
    scales = overrides.pop("scales", None) or args.get("patch_nums") or args.get("pn")
    if scales is None:
        raise ConfigError("the VAR scale schedule is not in the weights: give the official args (pn, e.g. "
                          "'1_1_2_3_3_4_5_6_8_11') or scales=[...]")
    scales = parse_scales(scales)
    width = shape_of(state_dict, "pos_start")[-1]
    L = shape_of(state_dict, "pos_1LC")[1]
    if L != sum(p * p for p in scales):
        raise CheckpointError(f"pos_1LC has {L} positions but the scales {list(scales)} give "
                              f"{sum(p * p for p in scales)}")
    l2_norm = "blocks.0.attn.scale_mul_1H11" in state_dict
    if l2_norm:
        heads = shape_of(state_dict, "blocks.0.attn.scale_mul_1H11")[1]
    else:
        heads = overrides.pop("heads", None) or args.get("depth")
        if heads is None:
            raise ConfigError("without l2-normalised attention the number of heads is not in the weights: "
                              "pass heads=N (build_vae_var uses heads = depth)")
    if "blocks.0.ada_gss" in state_dict or "shared_ada_lin.1.weight" in state_dict:
        raise ConfigError("shared AdaLN (saln=True) is not supported; the released generators use saln=False")
    hidden = shape_of(state_dict, "blocks.0.ffn.fc1.weight")[0]
    values = dict(scales=scales, code_dim=shape_of(state_dict, "word_embed.weight")[1],
                  vocab=shape_of(state_dict, "head.weight")[0],
                  num_classes=shape_of(state_dict, "class_emb.weight")[0] - 1, width=width,
                  depth=count_blocks(state_dict, "blocks."), heads=int(heads), mlp_ratio=hidden / width,
                  l2_norm=l2_norm)
    values.update(overrides)
    return values
