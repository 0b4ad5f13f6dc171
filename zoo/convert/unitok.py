"""UniTok: official layout (FoundationVision/UniTok, `models/unitok.py` class `UniTok`) -> ours.

The official file is a training checkpoint ``{"args": Args.state_dict(), "trainer": {"unitok": state_dict,
"disc": ...}, ...}``; the config is the ``args`` dict stored in it (`utils/config.py` `Args` fields: ``model``,
``img_size``, ``vocab_size``, ``vocab_width``, ``num_codebooks``, ``text_*``, ...).

Renames: the encoder's conv part sits under ``encoder.patch_embed.backbone.`` upstream; GeGLU linears are
``w0`` (gate) / ``w1`` / ``w2``; the attention projections keep ``q_bias``, a zero ``zero_k_bias`` buffer and
``v_bias`` apart (we hold the concatenation as ``attn.qkv.bias``); codebooks are ``codebook.weight``; the text
tower is open_clip's (``resblocks``, ``in_proj_weight``, ``c_fc``...). ``encoder.pos_embed`` is a frozen all-zero
parameter added as a no-op upstream: it is checked to be zero and dropped. The per-codebook ``vocab_usage``
buffers are training statistics and are skipped by name.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor

from ..errors import CheckpointError, ConfigError
from .common import count_blocks, find_state_dict, rename, residual_block_rules, shape_of, to_plain

StateDict = dict[str, Tensor]

SKIP = (r"quantizer\.codebooks\.\d+\.vocab_usage$",)

RULES = [
    (r"encoder\.patch_embed\.backbone\.(stem|stages|pool)\.(.*)", r"encoder.\1.\2"),
    (r"(.*)\.mlp\.w0\.(weight|bias)", r"\1.mlp.fc1_g.\2"),
    (r"(.*)\.mlp\.w1\.(weight|bias)", r"\1.mlp.fc1_x.\2"),
    (r"(.*)\.mlp\.w2\.(weight|bias)", r"\1.mlp.fc2.\2"),
    (r"quantizer\.codebooks\.(\d+)\.codebook\.weight", r"quantizer.codebooks.\1.embedding.weight"),
    *residual_block_rules(r"text_encoder\.transformer\.resblocks\.(\d+)\.", r"text_encoder.transformer.blocks.\1."),
]

# Official timm model names -> (stem width, stage widths, stage depths, width, depth, heads) of `models/vitamin.py`.
VITAMIN_SIZES: dict[str, tuple[int, tuple[int, ...], tuple[int, ...], int, int, int]] = {
    "vitamin_small": (64, (64, 128), (2, 4), 384, 14, 6),
    "vitamin_base": (128, (128, 256), (2, 4), 768, 14, 12),
    "vitamin_large": (160, (160, 320), (2, 4), 1024, 31, 16),
}


def extract(obj: Any) -> tuple[StateDict, dict | None]:
    """The official training checkpoint -> (``trainer.unitok`` state dict, ``args`` dict); flat files pass through."""
    if isinstance(obj, Mapping) and isinstance(obj.get("trainer"), Mapping):
        trainer = obj["trainer"]
        if not isinstance(trainer.get("unitok"), Mapping):
            raise CheckpointError(f"checkpoint['trainer'] has no 'unitok' state dict (it has {sorted(trainer)})")
        args = obj.get("args")
        return dict(trainer["unitok"]), (to_plain(args) if args is not None else None)
    return find_state_dict(obj, keys=("unitok", "state_dict", "model")), None


def convert_state_dict(state_dict: Mapping[str, Tensor], config: Any) -> StateDict:
    sd = dict(state_dict)
    pos = sd.pop("encoder.pos_embed", None)
    if pos is not None and not pos.is_meta and bool(pos.ne(0).any()):
        raise CheckpointError("encoder.pos_embed is not all zero: UniTok adds a frozen zero position embedding, "
                              "this checkpoint was not trained by the released code")
    for proj in ("quant_proj", "post_quant_proj"):
        names = [f"{proj}.attn.{n}" for n in ("q_bias", "zero_k_bias", "v_bias")]
        if all(n in sd for n in names):
            sd[f"{proj}.attn.qkv.bias"] = torch.cat([sd.pop(n) for n in names])
    return rename(sd, RULES)


def config_from_official(official: Mapping[str, Any] | None, state_dict: Mapping[str, Tensor],
                         **overrides: Any) -> Any:
    """Our UniTokConfig from the official ``args`` (as stored in ``ckpt['args']``, or a JSON/YAML of it) and shapes.

    Sizes come from the weights. The encoder's heads come from the official size table when ``args.model`` is an
    official name, else from ``heads=N``; the text tower's heads from ``args.text_heads`` or ``text_heads=N``.
    ``is_causal=True`` selects the first release's causal attention projections (nothing in a file tells them
    apart); ``image_size`` defaults to ``args.img_size``.
    """

    args = dict(official or {})
    if args.get("quant_proj", "attn") != "attn":
        raise ConfigError(f"quant_proj={args['quant_proj']!r}: the zoo loads UniTok with attention projections "
                          "('attn', as released)")
    if int(args.get("num_query", 0) or 0) != 0 or "encoder.reg_token" in state_dict:
        raise ConfigError("num_query > 0 (register tokens) is not supported; the released UniTok has none")
    bb = "encoder.patch_embed.backbone."
    n_stages = count_blocks(state_dict, bb + "stages.")
    stage_widths = tuple(shape_of(state_dict, f"{bb}stages.{s}.0.conv3_1x1.weight")[0] for s in range(n_stages))
    stage_depths = tuple(count_blocks(state_dict, f"{bb}stages.{s}.") for s in range(n_stages))
    stem = shape_of(state_dict, bb + "stem.conv1.weight")[0]
    width = shape_of(state_dict, "encoder.norm.weight")[0]
    depth = count_blocks(state_dict, "encoder.blocks.")
    hidden = shape_of(state_dict, "encoder.blocks.0.mlp.w0.weight")[0]
    dec_depth = count_blocks(state_dict, "decoder.blocks.")
    if dec_depth != depth:
        raise CheckpointError(f"decoder has {dec_depth} blocks but the encoder {depth}: upstream builds both from "
                              "the same ViTamin model")
    heads = overrides.pop("heads", None)
    name = args.get("model")
    if name in VITAMIN_SIZES:
        s_w, s_ws, s_ds, w, d, h = VITAMIN_SIZES[name]
        if (s_w, s_ws, s_ds, w, d) != (stem, stage_widths, stage_depths, width, depth):
            raise CheckpointError(f"official config says model={name} ({w} wide, {d} blocks) but the checkpoint "
                                  f"has width {width}, {depth} blocks, stages {stage_widths} x {stage_depths}")
        heads = heads or h
    elif heads is None:
        raise ConfigError(f"model {name!r} is not an official ViTamin size ({sorted(VITAMIN_SIZES)}) and the number "
                          "of attention heads cannot be read from weights: pass heads=N")

    G = count_blocks(state_dict, "quantizer.codebooks.")
    K, chunk = shape_of(state_dict, "quantizer.codebooks.0.codebook.weight")
    text_vocab, text_width = shape_of(state_dict, "text_encoder.token_embedding.weight")
    text_heads = overrides.pop("text_heads", None) or args.get("text_heads")
    if text_heads is None:
        raise ConfigError("the text tower's number of heads cannot be read from weights: give the official args "
                          "(config=...) or pass text_heads=N")
    values: dict[str, Any] = dict(
        image_size=int(args.get("img_size", 256)), stem_width=stem, stage_widths=stage_widths,
        stage_depths=stage_depths, width=width, depth=depth, heads=int(heads), mlp_ratio=hidden / width,
        decoder_widths=(shape_of(state_dict, "decoder.up_conv1.conv.weight")[0],
                        shape_of(state_dict, "decoder.up_conv3.0.conv3_1x1.weight")[0]),
        decoder_up_depths=(count_blocks(state_dict, "decoder.up_conv2."), count_blocks(state_dict, "decoder.up_conv3.")),
        num_codebooks=G, codebook_size=K, code_dim=G * chunk, projection_heads=width // (G * chunk),
        beta=float(args.get("vq_beta", 0.25)), embed_dim=shape_of(state_dict, "projection.weight")[0],
        text_vocab_size=text_vocab, text_context_length=shape_of(state_dict, "text_encoder.positional_embedding")[0],
        text_width=text_width, text_heads=int(text_heads),
        text_layers=count_blocks(state_dict, "text_encoder.transformer.resblocks."),
    )
    for key, ours in (("vocab_size", G * K), ("vocab_width", G * chunk), ("num_codebooks", G),
                      ("embed_dim", values["embed_dim"]), ("text_width", text_width),
                      ("text_vocab_size", text_vocab), ("text_layers", values["text_layers"]),
                      ("text_context_length", values["text_context_length"])):
        if args.get(key) is not None and int(args[key]) != ours:
            raise CheckpointError(f"official config says {key}={args[key]} but the checkpoint has {ours}")
    values.update(overrides)
    return values
