"""SEED-Voken (TencentARC): the Lightning checkpoints of Open-MAGVIT2 and IBQ -> ours. Shared by both families.

A released ``.ckpt`` holds the weights under ``state_dict``: the model's own keys (``encoder.*``, ``decoder.*``, and
for IBQ ``quant_conv``, ``post_quant_conv``, ``quantize.embedding.weight``), training-only keys (``loss.*``: LPIPS
and the discriminator) and the EMA shadow weights ``model_ema.<parameter name without dots>`` with
``model_ema.decay`` / ``model_ema.num_updates``. The official evaluation runs inside ``ema_scope()``, which swaps the
EMA weights in, so the EMA copy is what we load when the file has one; the raw training weights are then dropped
(their names tell which EMA entry belongs where).
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from torch import Tensor

from ..errors import CheckpointError
from .common import drop, find_state_dict

StateDict = dict[str, Tensor]

# Official keys dropped on purpose: the training losses' modules (LPIPS, discriminator), their EMA copies, and
# the EMA bookkeeping scalars.
SKIP = (r"loss\.", r"model_ema\.loss", r"model_ema\.(decay|num_updates)$")


def extract(obj: Any) -> tuple[StateDict, dict | None]:
    """A Lightning checkpoint (weights under ``state_dict``) or an already flat state dict."""
    return find_state_dict(obj, keys=("state_dict",)), None


def ema_weights(state_dict: Mapping[str, Tensor], prefixes: Iterable[str]) -> StateDict:
    """The model's weights (keys starting with one of `prefixes`), taken from the EMA copy when there is one.

    Every model key must have its ``model_ema.<key without dots>`` entry and every EMA entry must belong to a
    model key; keys other than those and the `SKIP` ones are a `CheckpointError` (nothing is dropped silently).
    """
    prefixes = tuple(prefixes)
    state_dict, _ = drop(state_dict, SKIP)
    model = {k: v for k, v in state_dict.items() if k.startswith(prefixes)}
    ema = {k[len("model_ema."):]: v for k, v in state_dict.items() if k.startswith("model_ema.")}
    other = sorted(set(state_dict) - set(model) - {f"model_ema.{k}" for k in ema})
    if other:
        raise CheckpointError(f"unexpected official key(s) {other[:8]}{' ...' if len(other) > 8 else ''}: "
                              f"expected {', '.join(p + '*' for p in prefixes)}, model_ema.* and loss.*")
    if not model:
        raise CheckpointError(f"no model weights ({', '.join(p + '*' for p in prefixes)}) in the checkpoint")
    if not ema:
        return model
    by_short = {}
    for key in model:
        short = key.replace(".", "")
        if short in by_short:
            raise CheckpointError(f"official keys {by_short[short]!r} and {key!r} have the same EMA name {short!r}")
        by_short[short] = key
    missing = sorted(k for k, s in ((k, k.replace(".", "")) for k in model) if s not in ema)
    orphans = sorted(f"model_ema.{s}" for s in ema if s not in by_short)
    if missing or orphans:
        raise CheckpointError(f"the EMA copy does not match the model: {len(missing)} weight(s) without an EMA entry "
                              f"({missing[:4]}), {len(orphans)} EMA entr(ies) without a weight ({orphans[:4]})")
    for key in model:
        if tuple(ema[key.replace('.', '')].shape) != tuple(model[key].shape):
            raise CheckpointError(f"EMA entry of {key} has shape {tuple(ema[key.replace('.', '')].shape)}, the "
                                  f"weight {tuple(model[key].shape)}")
    return {key: ema[key.replace(".", "")] for key in model}


def ddconfig(official: Mapping[str, Any] | None) -> tuple[dict, dict]:
    """(``ddconfig``, the other model init args) of an official YAML (``model.init_args``) or of that subtree."""
    official = dict(official or {})
    args = dict((official.get("model") or {}).get("init_args") or official.get("init_args") or official)
    return dict(args.get("ddconfig") or {}), args


def check_stated(stated: Mapping[str, Any], sizes: Mapping[str, Any]) -> None:
    """Raise unless every size the official config states (not None) equals the one read off the weights."""
    for key, value in stated.items():
        if value is None:
            continue
        value = tuple(value) if isinstance(value, (list, tuple)) else value
        if value != sizes[key]:
            raise CheckpointError(f"official config says {key}={value} but the checkpoint has {sizes[key]}")


def fuse_qkv(state_dict: Mapping[str, Tensor]) -> StateDict:
    """Separate 1x1 ``q`` / ``k`` / ``v`` convs of taming attention blocks -> one ``qkv`` conv (`zoo.nn.taming`).

    Each ``<prefix>.q.weight`` / ``.k`` / ``.v`` triple (and biases) becomes ``<prefix>.qkv.*``, concatenated along
    the output channels in q, k, v order; an incomplete triple is a `CheckpointError`.
    """
    import re

    import torch

    out: StateDict = {}
    groups: dict[tuple[str, str], dict[str, Tensor]] = {}
    for key, value in state_dict.items():
        m = re.fullmatch(r"(.*\.(?:attn\.\d+|attn_1))\.([qkv])\.(weight|bias)", key)
        if m:
            groups.setdefault((m.group(1), m.group(3)), {})[m.group(2)] = value
        else:
            out[key] = value
    for (prefix, kind), parts in groups.items():
        if set(parts) != {"q", "k", "v"}:
            raise CheckpointError(f"attention block {prefix} has {sorted(parts)} {kind}s, expected q, k and v")
        out[f"{prefix}.qkv.{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]])
    return out
