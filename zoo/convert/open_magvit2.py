"""Open-MAGVIT2 (TencentARC/SEED-Voken `src/Open_MAGVIT2/models/lfqgan*.py`): official layout -> ours.

Our encoder/decoder modules carry the official names, so the weights map one to one once the EMA copy is
picked (`seedvoken.ema_weights`). LFQ has no stored parameters. Sizes come from the official YAML
(``model.init_args.ddconfig`` and ``n_embed`` / ``embed_dim``) when given, checked against the weights' shapes.
"""
from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor

from ..errors import CheckpointError
from .common import count_blocks, shape_of
from .seedvoken import SKIP, check_stated, ddconfig, ema_weights, extract  # noqa: F401 (re-exported)

StateDict = dict[str, Tensor]


def convert_state_dict(state_dict: Mapping[str, Tensor], config: Any = None) -> StateDict:
    return ema_weights(state_dict, ("encoder.", "decoder."))


def config_from_official(official: Mapping[str, Any] | None, state_dict: Mapping[str, Tensor],
                         **overrides: Any) -> Any:

    sd = ema_weights(state_dict, ("encoder.", "decoder."))
    hidden = shape_of(sd, "encoder.conv_in.weight")[0]
    levels = count_blocks(sd, "encoder.down.")
    mult = tuple(shape_of(sd, f"encoder.down.{i}.block.0.conv1.weight")[0] // hidden for i in range(levels))
    bits = shape_of(sd, "encoder.conv_out.weight")[0]
    sizes = dict(hidden_channels=hidden, channel_mult=mult, num_res_blocks=count_blocks(sd, "encoder.down.0.block."),
                 bits=bits)
    dd, args = ddconfig(official)
    n_embed = args.get("n_embed")
    if n_embed is not None and 2 ** bits != int(n_embed):
        raise CheckpointError(f"official config says n_embed={n_embed} but the latents have {bits} channels "
                              f"(2^{bits} = {2 ** bits} codes; n_embed must be 2^bits)")
    check_stated({"hidden_channels": dd.get("ch"), "channel_mult": dd.get("ch_mult"),
                  "num_res_blocks": dd.get("num_res_blocks"), "bits": dd.get("z_channels")}, sizes)
    if args.get("embed_dim") is not None and int(args["embed_dim"]) != bits:
        raise CheckpointError(f"official config says embed_dim={args['embed_dim']} but z_channels is {bits}")
    if args.get("token_factorization"):
        raise CheckpointError("token_factorization (the AR model's split codes) is not supported; the tokenizers "
                              "index one 2^bits codebook")
    if dd.get("resolution") is not None and "image_size" not in overrides:
        # the released YAMLs all say 128 whatever the training size; the data config's size is the real one
        size = ((((official or {}).get("data") or {}).get("init_args") or {}).get("validation") or {})
        size = ((size.get("params") or {}).get("config") or {}).get("size")
        sizes["image_size"] = int(size) if size else int(dd["resolution"])
    return {**sizes, **overrides}
