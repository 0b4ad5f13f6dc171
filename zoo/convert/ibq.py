"""IBQ (TencentARC/SEED-Voken `src/IBQ/models/ibqgan.py` class `IBQ`): official layout -> ours.

The conv stack is taming's (`zoo.nn.taming`; official separate ``q``/``k``/``v`` attention convs are fused into
``qkv``), between ``quant_conv`` / ``post_quant_conv`` 1x1 convs around the codebook ``quantize.embedding.weight``
(ours: ``quantizer.embedding.weight``). Weights come from the EMA copy (`seedvoken.ema_weights`). Sizes come from
the official YAML (``model.init_args``: ``ddconfig``, ``n_embed``, ``embed_dim``) when given, checked against
the weights' shapes.
"""
from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor

from ..errors import CheckpointError
from .common import count_blocks, rename, shape_of
from .seedvoken import SKIP, check_stated, ddconfig, ema_weights, extract, fuse_qkv  # noqa: F401 (re-exported)

StateDict = dict[str, Tensor]
PREFIXES = ("encoder.", "decoder.", "quantize.", "quant_conv.", "post_quant_conv.")


def convert_state_dict(state_dict: Mapping[str, Tensor], config: Any = None) -> StateDict:
    sd = ema_weights(state_dict, PREFIXES)
    return fuse_qkv(rename(sd, [(r"quantize\.embedding\.weight", "quantizer.embedding.weight")]))


def config_from_official(official: Mapping[str, Any] | None, state_dict: Mapping[str, Tensor],
                         **overrides: Any) -> Any:

    sd = ema_weights(state_dict, PREFIXES)
    hidden = shape_of(sd, "encoder.conv_in.weight")[0]
    levels = count_blocks(sd, "encoder.down.")
    mult = tuple(shape_of(sd, f"encoder.down.{i}.block.0.conv1.weight")[0] // hidden for i in range(levels))
    attn_levels = [i for i in range(levels) if f"encoder.down.{i}.attn.0.q.weight" in sd]
    if attn_levels not in ([], [levels - 1]):
        raise CheckpointError(f"attention at encoder levels {attn_levels}: only the deepest level ({levels - 1}) "
                              "or none is supported")
    codebook, dim = shape_of(sd, "quantize.embedding.weight")
    sizes = dict(hidden_channels=hidden, channel_mult=mult, num_res_blocks=count_blocks(sd, "encoder.down.0.block."),
                 z_channels=shape_of(sd, "encoder.conv_out.weight")[0], codebook_size=codebook, code_dim=dim,
                 level_attention=bool(attn_levels))
    dd, args = ddconfig(official)
    check_stated({"hidden_channels": dd.get("ch"), "channel_mult": dd.get("ch_mult"),
                  "num_res_blocks": dd.get("num_res_blocks"), "z_channels": dd.get("z_channels"),
                  "codebook_size": args.get("n_embed"), "code_dim": args.get("embed_dim")}, sizes)
    if args.get("l2_normalize") or args.get("cosine_similarity") or args.get("remap"):
        raise CheckpointError("IBQ with l2_normalize / cosine_similarity / remap is not supported (no release uses "
                              "them)")
    if dd.get("resolution") is not None and "image_size" not in overrides:
        sizes["image_size"] = int(dd["resolution"])
        res = sizes["image_size"] // 2 ** (levels - 1)
        stated = dd.get("attn_resolutions")
        if stated is not None and bool(attn_levels) != (res in stated):
            raise CheckpointError(f"official attn_resolutions {stated} does not match the checkpoint's attention "
                                  f"layers (deepest level at {res} px: {'with' if attn_levels else 'without'})")
    if args.get("beta") is not None:
        sizes["beta"] = float(args["beta"])
    return {**sizes, **overrides}
