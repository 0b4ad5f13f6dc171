"""Official MaskGIT generator checkpoints (bytedance/1d-tokenizer `modeling/maskgit.py`, One-D-Piece's copy of it)
-> our `MaskGITGenerator` state dict. Pure functions on state dicts: renames, plus one reshape (UViT's
``pos_embed`` [1, T+1, D] -> [T+1, D]).
"""
from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor

from ..convert.common import count_blocks, rename, shape_of
from ..errors import CheckpointError
from .maskgit import MaskGITConfig, MaskGITSampling

StateDict = dict[str, Tensor]

# Buffers some transformers versions saved (non-persistent in newer ones): dropped on purpose, by name.
SKIP = (r"model\.embeddings\.position_ids$", r"model\.embeddings\.token_type_ids$")

_L = r"model\.encoder\.layer\.(\d+)\."
BERT_RULES = (
    (r"model\.embeddings\.word_embeddings\.weight", "model.embed.weight"),
    (r"model\.embeddings\.position_embeddings\.weight", "model.pos_embed"),
    (r"model\.embeddings\.token_type_embeddings\.weight", "model.type_embed"),
    (r"model\.embeddings\.LayerNorm\.(weight|bias)", r"model.embed_norm.\1"),
    (_L + r"attention\.self\.query\.(weight|bias)", r"model.blocks.\1.attn.q.\2"),
    (_L + r"attention\.self\.key\.(weight|bias)", r"model.blocks.\1.attn.k.\2"),
    (_L + r"attention\.self\.value\.(weight|bias)", r"model.blocks.\1.attn.v.\2"),
    (_L + r"attention\.output\.dense\.(weight|bias)", r"model.blocks.\1.attn.proj.\2"),
    (_L + r"attention\.output\.LayerNorm\.(weight|bias)", r"model.blocks.\1.norm1.\2"),
    (_L + r"intermediate\.dense\.(weight|bias)", r"model.blocks.\1.mlp.fc1.\2"),
    (_L + r"output\.dense\.(weight|bias)", r"model.blocks.\1.mlp.fc2.\2"),
    (_L + r"output\.LayerNorm\.(weight|bias)", r"model.blocks.\1.norm2.\2"),
    (r"model\.lm_head\.(weight|bias)", r"model.head.\1"),
)
UVIT_RULES = (
    (r"embeddings\.weight", "model.embed.weight"),
    (r"pos_embed", "model.pos_embed"),
    (r"lm_head\.(weight|bias)", r"model.head.\1"),
    (r"((?:in_blocks|out_blocks)\.\d+|mid_block)\.(.+)", r"model.\1.\2"),
    (r"norm\.(weight|bias)", r"model.norm.\1"),
)


def official_arch(state_dict: Mapping[str, Tensor]) -> str:
    if "model.embeddings.word_embeddings.weight" in state_dict:
        return "bert"
    if "embeddings.weight" in state_dict and "pos_embed" in state_dict:
        return "uvit"
    raise CheckpointError("not an official MaskGIT generator state dict: it has neither "
                          "'model.embeddings.word_embeddings.weight' (ImageBert) nor 'embeddings.weight' + "
                          f"'pos_embed' (UViTBert); first keys: {list(state_dict)[:5]}")


def convert_state_dict(state_dict: Mapping[str, Tensor], config: MaskGITConfig | None = None) -> StateDict:
    """Official ImageBert / UViTBert keys -> ours (``model.`` + our MaskGIT names); `SKIP` keys must be dropped
    first."""
    arch = official_arch(state_dict)
    out = rename(state_dict, BERT_RULES if arch == "bert" else UVIT_RULES)
    if arch == "uvit":
        out["model.pos_embed"] = out["model.pos_embed"].reshape(out["model.pos_embed"].shape[-2:])
    return out


def _generator_cfg(official: Mapping | None) -> dict:
    if not official:
        return {}
    model = official.get("model", official)
    return dict(model.get("generator", {}) or {}) if isinstance(model, Mapping) else {}


def config_from_official(official: Mapping | None, state_dict: Mapping[str, Tensor], **overrides: Any) -> MaskGITConfig:
    """Our config from the official config (``model.generator`` block, when given) and the weights' shapes.

    Shapes give everything except the number of heads: it comes from ``num_attention_heads`` in the official
    config, else ``heads=`` in `overrides`, else 16 (every released generator).
    """
    arch = official_arch(state_dict)
    g = _generator_cfg(official)
    if arch == "bert":
        vocab, width = shape_of(state_dict, "model.embeddings.word_embeddings.weight")
        positions = shape_of(state_dict, "model.embeddings.position_embeddings.weight")[0]
        K = shape_of(state_dict, "model.lm_head.weight")[0]
        depth = count_blocks(state_dict, "model.encoder.layer.")
        mlp = shape_of(state_dict, "model.encoder.layer.0.intermediate.dense.weight")[0]
    else:
        vocab, width = shape_of(state_dict, "embeddings.weight")
        positions = shape_of(state_dict, "pos_embed")[1]
        K = shape_of(state_dict, "lm_head.weight")[0]
        depth = 2 * count_blocks(state_dict, "in_blocks.")
        mlp = shape_of(state_dict, "mid_block.mlp.fc1.weight")[0]
    values = dict(codebook_size=K, seq_len=positions - 1, num_classes=vocab - K - 2, width=width, depth=depth,
                  heads=int(g.get("num_attention_heads", 16)), mlp_dim=mlp, arch=arch,
                  dropout=float(g.get("dropout", 0.1)))
    values.update(overrides)
    return MaskGITConfig(**values)


def sampling_from_official(official: Mapping | None, **overrides: Any) -> MaskGITSampling:
    """Sampler defaults from an official config's ``model.generator`` block (missing keys: the code defaults)."""
    g = _generator_cfg(official)
    values = {}
    for ours, theirs in (("num_steps", "num_steps"), ("temperature", "randomize_temperature"),
                         ("guidance", "guidance_scale"), ("guidance_decay", "guidance_decay")):
        if theirs in g:
            values[ours] = g[theirs]
    values.update(overrides)
    return MaskGITSampling(**values)
