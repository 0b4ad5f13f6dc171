"""MaskGIT VQGAN: official layout (bytedance/1d-tokenizer `PretrainedTokenizer`) -> ours.

The official keys are ``encoder.*``, ``decoder.*`` and ``quantize.embedding.weight``; our modules were named after
them, except the codebook: ``quantize.*`` -> ``quantizer.*`` (``quantize`` is the tokenizer's method). Sizes come
from the official conf dict (channel_mult, hidden_channels, num_res_blocks, z_channels, resolution, num_embeddings)
or, when absent, from the weights' shapes.
"""
from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor

from ..errors import CheckpointError
from .common import count_blocks, find_state_dict, rename, shape_of

StateDict = dict[str, Tensor]


def extract(obj: Any) -> tuple[StateDict, dict | None]:
    return find_state_dict(obj), None


def convert_state_dict(state_dict: Mapping[str, Tensor], config: Any = None) -> StateDict:
    return rename(state_dict, [(r"quantize\.(.*)", r"quantizer.\1")])


def config_from_official(official: Mapping[str, Any] | None, state_dict: Mapping[str, Tensor],
                         **overrides: Any) -> Any:

    return {**sizes_from_official(official, state_dict, "encoder.", "quantize."),
                                          **overrides}


def sizes_from_official(official: Mapping[str, Any] | None, state_dict: Mapping[str, Tensor], encoder: str,
                        quantize: str, decoder: str | None = None) -> dict[str, Any]:
    """Our VQGAN sizes from the official conf (when given) checked against the weights' shapes.

    encoder/quantize/decoder: key prefixes of the conv encoder, the codebook, and (when there is no encoder in the
    file, as in TiTok's pixel decoder) the conv decoder.
    """
    official = dict(official or {})
    if decoder is None:
        hidden = shape_of(state_dict, f"{encoder}conv_in.weight")[0]
        levels = count_blocks(state_dict, f"{encoder}down.")
        mult = tuple(shape_of(state_dict, f"{encoder}down.{i}.block.0.conv1.weight")[0] // hidden
                     for i in range(levels))
        blocks = count_blocks(state_dict, f"{encoder}down.0.block.")
        z = shape_of(state_dict, f"{encoder}conv_out.weight")[0]
    else:
        levels = count_blocks(state_dict, f"{decoder}up.")
        hidden = shape_of(state_dict, f"{decoder}conv_out.weight")[1]
        mult = tuple(shape_of(state_dict, f"{decoder}up.{i}.block.0.conv2.weight")[0] // hidden for i in range(levels))
        blocks = count_blocks(state_dict, f"{decoder}up.0.block.")
        z = shape_of(state_dict, f"{decoder}conv_in.weight")[1]
    codebook, dim = shape_of(state_dict, f"{quantize}embedding.weight")
    if dim != z:
        raise CheckpointError(f"codebook dim {dim} does not match the {z} latent channels")
    sizes = dict(hidden_channels=hidden, channel_mult=mult, num_res_blocks=blocks, z_channels=z, codebook_size=codebook)
    stated = {"hidden_channels": official.get("hidden_channels"), "channel_mult": official.get("channel_mult"),
              "num_res_blocks": official.get("num_res_blocks"), "z_channels": official.get("z_channels"),
              "codebook_size": official.get("num_embeddings")}
    for key, value in stated.items():
        if value is not None and (tuple(value) if isinstance(value, (list, tuple)) else value) != sizes[key]:
            raise CheckpointError(f"official config says {key}={value} but the checkpoint has {sizes[key]}")
    if official.get("resolution") is not None:
        sizes["image_size"] = int(official["resolution"])
    return sizes
