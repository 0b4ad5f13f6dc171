"""TiTok / One-D-Piece: official layout (bytedance/1d-tokenizer, turingmotors/One-D-Piece) -> ours.

Official blocks are open_clip-style ``ResidualAttentionBlock`` s with `nn.MultiheadAttention` (packed
``in_proj_weight``), 1x1 convolutions where we use Linear layers, and the pixel decoder under ``pixel_decoder.``.
The official config is the repo's YAML (``model.vq_model.*``, ``dataset.preprocessing.crop_size``); Hub
``config.json`` files hold the same tree.
"""
from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor

from ..errors import CheckpointError, ConfigError
from .common import count_blocks, find_state_dict, rename, residual_block_rules, shape_of
from .vqgan import sizes_from_official

StateDict = dict[str, Tensor]

_BLOCK = r"(encoder|decoder)\.transformer\.(\d+)\."
RULES = [
    *residual_block_rules(_BLOCK, r"\1.transformer.blocks.\2."),
    (r"encoder\.(patch_embed\.(?:weight|bias)|class_embedding|positional_embedding)", r"encoder.patches.\1"),
    (r"encoder\.conv_out\.(weight|bias)", r"encoder.to_code.\1"),
    (r"decoder\.(class_embedding|positional_embedding|mask_token|latent_token_positional_embedding"
     r"|ln_pre\.(?:weight|bias)|ln_post\.(?:weight|bias))", r"decoder.body.\1"),
    (r"decoder\.ffn\.0\.(weight|bias)", r"decoder.head.fc1.\1"),  # two-stage; single-stage handled below
    (r"decoder\.ffn\.2\.(weight|bias)", r"decoder.head.fc2.\1"),
    (r"decoder\.conv_out\.(weight|bias)", r"decoder.head.conv_out.\1"),
    (r"pixel_quantize\.embedding\.weight", r"pixel_quantize.weight"),
    (r"quantize\.(.*)", r"quantizer.\1"),  # our module is `quantizer` (`quantize` is the tokenizer's method)
]



# The ViT sizes of the official code (encoder and decoder use the same table): width, depth, heads.
VIT_SIZES = {"small": (512, 8, 8), "base": (768, 12, 12), "large": (1024, 24, 16)}

def extract(obj: Any) -> tuple[StateDict, dict | None]:
    """A tokenizer file: flat state dict (Hub safetensors / .bin), or a training checkpoint wrapping one."""
    return find_state_dict(obj, keys=("state_dict", "model", "ema_model", "module")), None


def convert_state_dict(state_dict: Mapping[str, Tensor], config: Any) -> StateDict:
    sd = dict(state_dict)
    if not config.two_stage and "decoder.ffn.0.weight" in sd:
        sd["decoder.head.to_pixels.weight"] = sd.pop("decoder.ffn.0.weight")
        sd["decoder.head.to_pixels.bias"] = sd.pop("decoder.ffn.0.bias")
    out = rename(rename(sd, RULES), [(r"decoder\.transformer\.(.*)", r"decoder.body.transformer.\1")])
    # 1x1 convolutions -> Linear weights
    for key in ("encoder.to_code.weight", "decoder.head.fc1.weight", "decoder.head.fc2.weight",
                "decoder.head.to_pixels.weight"):
        if key in out and out[key].dim() == 4:
            out[key] = out[key].reshape(out[key].shape[0], out[key].shape[1])
    # the decoder's mask token is [1, 1, W] upstream and in ours; class embeddings [1, W] in both
    return out


def config_from_official(official: Mapping[str, Any] | None, state_dict: Mapping[str, Tensor],
                         **overrides: Any) -> Any:
    """Our TiTokConfig from the official YAML tree (or the Hub config.json) and the weights' shapes.

    Official size names (small/base/large) give width/depth/heads; other names (sizes users added to the official
    tables) are read from the shapes, and the head counts must then come as overrides: ``heads=`` (both),
    ``encoder_heads=`` / ``decoder_heads=``.
    """
    return _config(official, state_dict, variable_length=False, **overrides)


def config_from_official_onedpiece(official: Mapping[str, Any] | None, state_dict: Mapping[str, Tensor],
                                   **overrides: Any) -> Any:
    return _config(official, state_dict, variable_length=True, **overrides)


def _config(official: Mapping[str, Any] | None, state_dict: Mapping[str, Tensor], variable_length: bool,
            **overrides: Any) -> Any:

    official = dict(official or {})
    vq = dict((official.get("model") or {}).get("vq_model") or {})
    crop = ((official.get("dataset") or {}).get("preprocessing") or {}).get("crop_size")
    heads = overrides.pop("heads", None)
    values: dict[str, Any] = {}

    for side, key in (("encoder", "vit_enc_model_size"), ("decoder", "vit_dec_model_size")):
        width = shape_of(state_dict, "encoder.patch_embed.weight")[0] if side == "encoder" else \
            shape_of(state_dict, "decoder.decoder_embed.weight")[0]
        depth = count_blocks(state_dict, f"{side}.transformer.")
        name = vq.get(key)
        if name in VIT_SIZES:
            w, d, h = VIT_SIZES[name]
            if (w, d) != (width, depth):
                raise CheckpointError(f"official config says {key}={name} (width {w}, depth {d}) but the "
                                      f"checkpoint has width {width}, depth {depth}")
        else:
            h = overrides.get(f"{side}_heads", heads)
            if h is None:
                raise ConfigError(f"the {side} size {name!r} is not an official size ({sorted(VIT_SIZES)}) and the "
                                  f"number of attention heads cannot be read from weights: pass heads=N "
                                  f"(or {side}_heads=N)")
        values.update({f"{side}_width": width, f"{side}_depth": depth, f"{side}_heads": h})

    n_latent, width = shape_of(state_dict, "latent_tokens")
    token_size = shape_of(state_dict, "encoder.conv_out.weight")[0]
    codebook, code_dim = shape_of(state_dict, "quantize.embedding.weight")
    patch = shape_of(state_dict, "encoder.patch_embed.weight")[-1]
    grid = int(round((shape_of(state_dict, "encoder.positional_embedding")[0] - 1) ** 0.5))
    two_stage = "pixel_decoder.conv_in.weight" in state_dict
    values.update(num_latent_tokens=n_latent, token_size=token_size, codebook_size=codebook, patch_size=patch,
                  image_size=grid * patch, two_stage=two_stage, variable_length=variable_length,
                  tail_token_drop=variable_length,
                  l2_norm=bool(vq.get("use_l2_norm", True)), beta=float(vq.get("commitment_cost", 0.25)),
                  legacy_reshape=bool(vq.get("is_legacy", True)))
    if vq.get("quantize_mode", "vq") != "vq":
        raise ConfigError(f"quantize_mode {vq.get('quantize_mode')!r} (continuous VAE tokens) is not supported; "
                          "the zoo loads the VQ TiTok models")
    if bool(vq.get("finetune_decoder", two_stage)) != two_stage:
        raise CheckpointError(f"official config says finetune_decoder={vq.get('finetune_decoder')} but the "
                              f"checkpoint {'has' if two_stage else 'has no'} pixel decoder")
    for name, stated, found in (("num_latent_tokens", vq.get("num_latent_tokens"), n_latent),
                                ("token_size", vq.get("token_size"), token_size),
                                ("codebook_size", vq.get("codebook_size"), codebook),
                                ("crop_size", crop, grid * patch)):
        if stated is not None and int(stated) != found:
            raise CheckpointError(f"official config says {name}={stated} but the checkpoint has {found}")
    if two_stage:
        pix = sizes_from_official(None, state_dict, encoder="", quantize="pixel_quantize.", decoder="pixel_decoder.")
        values.update(pixel_codebook_size=pix["codebook_size"], pixel_hidden_channels=pix["hidden_channels"],
                      pixel_channel_mult=pix["channel_mult"], pixel_num_res_blocks=pix["num_res_blocks"],
                      pixel_z_channels=pix["z_channels"])
    values.update(overrides)
    return values
