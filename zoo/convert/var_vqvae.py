"""VAR's multi-scale VQVAE: official layout (FoundationVision/VAR `models/vqvae.py` `VQVAE`, `models/basic_vae.py`,
`models/quant.py` `VectorQuantizer2`) -> ours (`zoo.nn.taming` encoder/decoder + `MultiScaleResidualQuantizer`).

The released file ``vae_ch160v4096z32.pth`` is a plain state dict. The conv nets were named after taming's, as ours
are, so ``encoder.*`` / ``decoder.*`` / ``quant_conv`` / ``post_quant_conv`` map one to one; the quantizer's
``quantize.embedding`` -> ``quantizer.embedding`` and its φ convolutions (``quant_resi.qresi_ls.{k}`` partially
shared, ``quant_resi.qresi`` fully shared, ``quant_resi.{k}`` not shared) -> ``quantizer.phi.convs.{k}``. The usage
statistics ``quantize.ema_vocab_hit_SV`` (training only) are skipped by name.
"""
from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor

from ..errors import CheckpointError, ConfigError
from .common import count_blocks, find_state_dict, rename, shape_of

StateDict = dict[str, Tensor]

SKIP = (r"quantize\.ema_vocab_hit_SV$",)

RULES = [
    (r"quantize\.embedding\.weight", r"quantizer.embedding.weight"),
    (r"quantize\.quant_resi\.qresi_ls\.(\d+)\.(weight|bias)", r"quantizer.phi.convs.\1.\2"),
    (r"quantize\.quant_resi\.qresi\.(weight|bias)", r"quantizer.phi.convs.0.\1"),
    (r"quantize\.quant_resi\.(\d+)\.(weight|bias)", r"quantizer.phi.convs.\1.\2"),
]


def extract(obj: Any) -> tuple[StateDict, dict | None]:
    """A plain state dict (the release), or one inside ``model`` / ``vae_local`` / ``state_dict`` -> (it, None)."""
    if isinstance(obj, Mapping) and isinstance(obj.get("trainer"), Mapping) and \
            isinstance(obj["trainer"].get("vae_local"), Mapping):  # a VAR training checkpoint holds the VAE too
        return dict(obj["trainer"]["vae_local"]), None
    return find_state_dict(obj, keys=("vae_local", "model", "state_dict")), None


def convert_state_dict(state_dict: Mapping[str, Tensor], config: Any = None) -> StateDict:
    return rename(state_dict, RULES)


def phi_count(state_dict: Mapping[str, Tensor]) -> int:
    if "quantize.quant_resi.qresi.weight" in state_dict:
        return 1
    n = count_blocks(state_dict, "quantize.quant_resi.qresi_ls.") or count_blocks(state_dict, "quantize.quant_resi.")
    if n == 0:
        raise CheckpointError("no φ convolutions (quantize.quant_resi.*) in the checkpoint; quant_resi=0 (no φ) "
                              "is not supported")
    return n


def config_from_official(official: Mapping[str, Any] | None, state_dict: Mapping[str, Tensor],
                         **overrides: Any) -> Any:
    """Our `VARVQVAEConfig` from the weights' shapes; the scale schedule comes from `official` (``v_patch_nums`` /
    ``patch_nums``, e.g. VAR's ``pn``) or the default (1, 2, 3, 4, 5, 6, 8, 10, 13, 16), and must end at the
    latent side (``image_size / 16`` for the released net)."""

    official = dict(official or {})
    hidden = shape_of(state_dict, "encoder.conv_in.weight")[0]
    levels = count_blocks(state_dict, "encoder.down.")
    mult = tuple(shape_of(state_dict, f"encoder.down.{i}.block.0.conv1.weight")[0] // hidden for i in range(levels))
    codebook, dim = shape_of(state_dict, "quantize.embedding.weight")
    values: dict[str, Any] = dict(
        hidden_channels=hidden, channel_mult=mult, num_res_blocks=count_blocks(state_dict, "encoder.down.0.block."),
        z_channels=dim, codebook_size=codebook, phi_count=phi_count(state_dict),
        quant_conv_kernel=shape_of(state_dict, "quant_conv.weight")[-1],
        level_attention="encoder.down.%d.attn.0.qkv.weight" % (levels - 1) in state_dict,
        mid_attention="encoder.mid.attn_1.qkv.weight" in state_dict)
    if shape_of(state_dict, "encoder.conv_out.weight")[0] != dim:
        raise CheckpointError(f"encoder.conv_out gives {shape_of(state_dict, 'encoder.conv_out.weight')[0]} channels "
                              f"but the codebook is {dim}-d")
    scales = official.get("v_patch_nums") or official.get("patch_nums") or official.get("pn")
    if isinstance(scales, str):
        if not scales.replace("_", "").replace("-", "").isdigit():
            raise ConfigError(f"scale schedule {scales!r} is not a list of side lengths (e.g. 1_2_3_4_5_6_8_10_13_16)")
        scales = [int(v) for v in scales.replace("-", "_").split("_") if v]
    if scales is not None:
        values["scale_sides"] = tuple(int(v) for v in scales)
        values.setdefault("image_size", int(values["scale_sides"][-1]) * 2 ** (len(mult) - 1))
    for theirs, ours in (("using_znorm", "l2_norm"), ("quant_resi", "phi_ratio"), ("beta", "beta")):
        if theirs in official:
            values[ours] = official[theirs]
    values.update(overrides)
    return values
