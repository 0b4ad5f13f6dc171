"""ALIT: official layout (ShivamDuggal4/adaptive-length-tokenizer, `AdaptiveLengthImageTokenizer`) -> ours.

Released files are ``torch.save`` dicts ``{model, ema, optimizer, epoch, args, scaler, ...}``; the evaluation code
loads ``['ema']`` strictly, so we do too. That state dict holds the ALIT modules, the fine-tuned base VQGAN under
``base_tokenizer.vqgan.*`` in taming naming (``mid.block_1``, ``up.i.upsample.conv``), and eight LPIPS +
PatchGAN copies under ``gan_losses.*`` (training only: skipped by name, `SKIP`).
The official config is flat: the checkpoint's ``args`` (``model: alit_small``, ``base_tokenizer``,
``quantize_latent``, ``input_size``) and/or ``adaptive_tokenizers/configs/adaptive_vqgan.yaml`` (``vq_*``,
``dynamic_halting*``, ``img_size``, ``patch_size``, ``num_init_latent_tokens``, ``max_rollout_iters``).
"""
from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor

from ..errors import CheckpointError, ConfigError
from .common import count_blocks, find_state_dict, rename, residual_block_rules, shape_of, to_plain
from .vqgan import sizes_from_official

StateDict = dict[str, Tensor]

SKIP = (r"gan_losses\.",)

_BLOCK = r"(encoder|decoder)\.transformer\.(\d+)\."
_BASE = r"base_tokenizer\.vqgan\."
RULES = [
    # ViT blocks (open_clip ResidualAttentionBlock with nn.MultiheadAttention)
    *residual_block_rules(_BLOCK, r"\1.transformer.blocks.\2."),
    # the recurrent encoder's tables and norms (top-level upstream)
    (r"encoder_(class_embedding|positional_embedding|mask_token)", r"encoder.\1"),
    (r"(latent_tokens|latent_token_positional_embedding|timestep_embedding)", r"encoder.\1"),
    (r"encoder_(ln_pre|ln_post|ln_recursive)\.(weight|bias)", r"encoder.\1.\2"),
    (r"pre_quantizer_mlp\.(weight|bias)", r"to_code.\1"),
    # the decoder's query tables are top-level upstream, its latent positions and norms inside `decoder`
    (r"decoder_(class_embedding|positional_embedding|mask_token)", r"decoder.body.\1"),
    (r"decoder\.(latent_token_positional_embedding|ln_pre\.(?:weight|bias)|ln_post\.(?:weight|bias))",
     r"decoder.body.\1"),
    # base VQGAN, taming naming -> zoo/nn/maskgit_vqgan.py
    (_BASE + r"(encoder|decoder)\.mid\.block_1\.(.*)", r"base_\1.mid.0.\2"),
    (_BASE + r"(encoder|decoder)\.mid\.block_2\.(.*)", r"base_\1.mid.1.\2"),
    (_BASE + r"decoder\.up\.(\d+)\.upsample\.conv\.(weight|bias)", r"base_decoder.up.\1.upsample_conv.\2"),
    (_BASE + r"(encoder|decoder)\.(.*)", r"base_\1.\2"),
    (_BASE + r"quantize\.embedding\.weight", r"base_quantize.embedding.weight"),
    (r"quantize\.(.*)", r"quantizer.\1"),  # our module is `quantizer` (`quantize` is the tokenizer's method)
]



# The official size table (`adaptive_tokenizers/__init__.py`): encoder = decoder (width, depth, heads).
SIZES = {"alit_tiny": (512, 8, 8), "alit_small": (1024, 8, 8), "alit_base": (768, 12, 12),
         "alit_semilarge": (1024, 16, 16)}

def extract(obj: Any) -> tuple[StateDict, dict | None]:
    """A released file: ``{'ema': ..., 'args': Namespace, ...}`` -> (the EMA state dict, args as a dict)."""
    args = None
    if isinstance(obj, Mapping) and "args" in obj and obj["args"] is not None:
        args = to_plain(obj["args"])
    return find_state_dict(obj, keys=("ema", "model", "state_dict")), args


def convert_state_dict(state_dict: Mapping[str, Tensor], config: Any = None) -> StateDict:
    out = rename(state_dict, RULES)
    return rename(out, [(r"decoder\.transformer\.(.*)", r"decoder.body.transformer.\1")])


def config_from_official(official: Mapping[str, Any] | None, state_dict: Mapping[str, Tensor],
                         **overrides: Any) -> Any:
    """Our ALITConfig from the official (flat) config and the weights' shapes.

    Width, depth, grid, tokens per rollout, rollouts, codebook and base-VQGAN sizes are read from the shapes; the
    head count comes from the official size name (``model: alit_small`` in the checkpoint's args) or, for sizes
    the official table does not know, from ``heads=``.
    """

    off = dict(official or {})
    base = str(off.get("base_tokenizer", "vae" if any(k.startswith("base_tokenizer.vae.") for k in state_dict)
                       else "vqgan"))
    quantized = "quantize.embedding.weight" in state_dict
    if base != "vqgan" or not quantized:
        raise ConfigError(f"this is an ALIT {base.upper()}-based model with "
                          f"{'quantized' if quantized else 'continuous'} latents: known but not supported (the zoo "
                          "loads the VQGAN-based quantized ALIT models)")
    if off.get("quantize_latent") is False:
        raise CheckpointError("official config says quantize_latent=False but the checkpoint has a latent codebook")

    grid_rows, width = shape_of(state_dict, "encoder_positional_embedding")
    grid = int(round((grid_rows - 1) ** 0.5))
    patch = shape_of(state_dict, "patch_embed.weight")[-1]
    depth = count_blocks(state_dict, "encoder.transformer.")
    if count_blocks(state_dict, "decoder.transformer.") != depth:
        raise CheckpointError("encoder and decoder depths differ; the official ALIT sizes use the same depth")
    n, _ = shape_of(state_dict, "latent_tokens")
    rollouts = shape_of(state_dict, "timestep_embedding")[0]
    codebook, token_size = shape_of(state_dict, "quantize.embedding.weight")
    max_latents = shape_of(state_dict, "decoder.latent_token_positional_embedding")[0]
    values: dict[str, Any] = dict(width=width, depth=depth, patch_size=patch, image_size=grid * patch,
                                  tokens_per_rollout=n, max_rollouts=rollouts, codebook_size=codebook,
                                  token_size=token_size, max_latent_tokens=max_latents,
                                  beta=float(off.get("vq_commitment_cost", 0.25)),
                                  dynamic_halting=bool(off.get("dynamic_halting", True)),
                                  halting_threshold=float(off.get("dynamic_halting_threshold", 0.55)))
    if off.get("vq_use_l2_norm") is False:
        raise ConfigError("vq_use_l2_norm=False is not an ALIT release setting and is not supported")
    name = off.get("model")
    if name in SIZES:
        w, d, h = SIZES[name]
        if (w, d) != (width, depth):
            raise CheckpointError(f"official config says model={name} (width {w}, depth {d}) but the checkpoint "
                                  f"has width {width}, depth {depth}")
        values["heads"] = h
    elif "heads" not in overrides:
        raise ConfigError(f"the size {name!r} is not an official ALIT size ({sorted(SIZES)}) and the number of "
                          "attention heads cannot be read from weights: pass heads=N")
    for key, stated, found in (("vq_codebook_size", off.get("vq_codebook_size"), codebook),
                               ("vq_token_dim", off.get("vq_token_dim"), token_size),
                               ("num_init_latent_tokens", off.get("num_init_latent_tokens"), n),
                               ("max_rollout_iters", off.get("max_rollout_iters"), rollouts),
                               ("patch_size", off.get("patch_size"), patch),
                               ("img_size", off.get("img_size"), grid * patch),
                               ("input_size", off.get("input_size"), grid * patch)):
        if stated is not None and int(stated) != found:
            raise CheckpointError(f"official config says {key}={stated} but the checkpoint has {found}")
    vq = sizes_from_official(None, state_dict, encoder="base_tokenizer.vqgan.encoder.",
                             quantize="base_tokenizer.vqgan.quantize.")
    values.update(base_hidden_channels=vq["hidden_channels"], base_channel_mult=vq["channel_mult"],
                  base_num_res_blocks=vq["num_res_blocks"], base_z_channels=vq["z_channels"],
                  base_codebook_size=vq["codebook_size"])
    values.update(overrides)
    return values
