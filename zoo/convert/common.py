"""Shared conversion helpers: safe loading of official files, regex renames, strict key/shape checks."""
from __future__ import annotations

import argparse
import collections
import os
import pickle
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import Tensor, nn

from ..errors import CheckpointError

StateDict = dict[str, Tensor]

# Globals that official checkpoints store next to their tensors (argparse args, OmegaConf-free plain types).
DEFAULT_ALLOWED_GLOBALS: tuple[Any, ...] = (argparse.Namespace, collections.OrderedDict)


def load_file(path: str | os.PathLike, allow: Sequence[Any] = ()) -> Any:
    """Load a checkpoint file: safetensors, or a torch pickle with ``weights_only=True`` and an allow-list.

    Raises `CheckpointError` for a missing, truncated or corrupt file, or a pickle that needs a global outside the
    allow-list (naming it, so the family can allow it on purpose).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint file is empty: {path}")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if path.suffix == ".safetensors" or _looks_like_safetensors(path, head):
        from safetensors.torch import load_file as st_load

        try:
            return st_load(str(path))
        except Exception as exc:
            raise CheckpointError(f"corrupt or truncated safetensors file {path}: {exc}") from None
    try:
        with torch.serialization.safe_globals(list(DEFAULT_ALLOWED_GLOBALS) + list(allow)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        msg = str(exc).splitlines()[0] if str(exc) else "unpickling failed"
        raise CheckpointError(
            f"{path} cannot be loaded safely (weights_only=True): {msg}. The zoo never unpickles arbitrary "
            "objects; if this is an official checkpoint, report the global it needs so it can be allow-listed."
        ) from None
    except Exception as exc:  # torch.load on a file that is not a checkpoint raises anything (KeyError, ...)
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"corrupt or truncated checkpoint {path} (not a torch or safetensors checkpoint?): "
                              f"{type(exc).__name__}: {text}") from None


def _looks_like_safetensors(path: Path, head: bytes) -> bool:
    # safetensors starts with a little-endian u64 header length followed by '{'
    if len(head) < 8:
        return False
    n = int.from_bytes(head, "little")
    if not 0 < n < 100_000_000 or path.stat().st_size < 8 + n:
        return False
    with open(path, "rb") as fh:
        fh.seek(8)
        return fh.read(1) == b"{"


def find_state_dict(obj: Any, keys: Sequence[str] = ("state_dict", "model", "ema", "module")) -> StateDict:
    """The tensor dict inside a loaded file: the file itself when it is flat, else the first of `keys` present."""
    if isinstance(obj, Mapping) and obj and all(isinstance(v, Tensor) for v in obj.values()):
        return dict(obj)
    if isinstance(obj, Mapping):
        for key in keys:
            if key in obj and isinstance(obj[key], Mapping):
                return find_state_dict(obj[key], keys)
    top = list(obj.keys())[:10] if isinstance(obj, Mapping) else type(obj).__name__
    raise CheckpointError(f"no state dict found in checkpoint (looked for {list(keys)}; top-level: {top})")


def to_plain(obj: Any) -> Any:
    """argparse.Namespace / nested mappings -> plain dicts (official configs stored in checkpoints)."""
    if isinstance(obj, argparse.Namespace):
        return {k: to_plain(v) for k, v in vars(obj).items()}
    if isinstance(obj, Mapping):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


def read_config_file(path: str | os.PathLike) -> dict:
    """An official config file (YAML or JSON) as a plain dict. ``${...}`` interpolations stay strings."""
    import json

    import yaml

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"config file not found: {path}")
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except Exception as exc:
        raise CheckpointError(f"cannot parse config file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"config file {path} does not hold a mapping")
    return data


def rename(state_dict: Mapping[str, Tensor], rules: Sequence[tuple[str, str]]) -> StateDict:
    """Apply the first matching ``(regex, replacement)`` rule to every key (keys without a match are kept)."""
    compiled = [(re.compile(p), r) for p, r in rules]
    out: StateDict = {}
    for key, value in state_dict.items():
        new = key
        for pattern, repl in compiled:
            if pattern.fullmatch(key):
                new = pattern.sub(repl, key)
                break
        if new in out:
            raise CheckpointError(f"two official keys map to {new!r} (one of them is {key!r})")
        out[new] = value
    return out


def residual_block_rules(source: str, target: str) -> list[tuple[str, str]]:
    """Renames of open_clip's / CLIP's ``ResidualAttentionBlock`` onto `zoo.nn.vit.Block` names.

    ``ln_1``/``ln_2`` -> ``norm1``/``norm2``, ``attn.in_proj_*`` -> ``attn.qkv.*``, ``attn.out_proj`` ->
    ``attn.proj``, ``mlp.c_fc``/``mlp.c_proj`` -> ``mlp.fc1``/``mlp.fc2``. source: a regex of the block prefix
    (ending with ``\\.``), whose groups `target` may use (``\\1`` ...); target: our block prefix.
    """
    g = re.compile(source).groups + 1  # the group holding "weight" / "bias"
    pairs = [(r"ln_1", "norm1"), (r"ln_2", "norm2"), (r"attn\.out_proj", "attn.proj"), (r"mlp\.c_fc", "mlp.fc1"),
             (r"mlp\.c_proj", "mlp.fc2")]
    rules = [(source + ours + r"\.(weight|bias)", target + theirs + rf".\{g}") for ours, theirs in pairs]
    return rules + [(source + r"attn\.in_proj_(weight|bias)", target + rf"attn.qkv.\{g}")]


def drop(state_dict: Mapping[str, Tensor], patterns: Iterable[str]) -> tuple[StateDict, list[str]]:
    """Remove keys matching any regex in `patterns` (parts skipped on purpose); returns (kept, dropped keys)."""
    compiled = [re.compile(p) for p in patterns]
    kept, dropped = {}, []
    for key, value in state_dict.items():
        if any(p.match(key) for p in compiled):
            dropped.append(key)
        else:
            kept[key] = value
    return kept, dropped


def check_state_dict(model: nn.Module, state_dict: Mapping[str, Tensor], source: str = "checkpoint") -> None:
    """Raise `CheckpointError` unless `state_dict` has exactly the model's keys with the same shapes."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state_dict.items()}
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    mismatched = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s): {_short(missing)}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s): {_short(unexpected)}")
        if mismatched:
            parts.append("shape mismatch: " + _short([f"{k} {got[k]} vs model {expected[k]}" for k in mismatched]))
        raise CheckpointError(f"{source} does not fit {type(model).__name__}: " + "; ".join(parts))
    check_dtypes(model, state_dict, source)


def check_dtypes(model: nn.Module, state_dict: Mapping[str, Tensor], source: str = "checkpoint") -> None:
    """Raise `CheckpointError` for integer/bool tensors where the model has float ones (and the reverse), and
    for floating tensors of more than one dtype (a stray fp16 tensor in an fp32 file would crash the forward)."""
    wanted = model.state_dict()
    wrong_kind = sorted(k for k, v in state_dict.items() if k in wanted
                        and wanted[k].is_floating_point() != v.is_floating_point())
    if wrong_kind:
        k = wrong_kind[0]
        raise CheckpointError(f"{source}: {len(wrong_kind)} tensor(s) have the wrong kind of dtype, e.g. {k} is "
                              f"{state_dict[k].dtype} where the model has {wanted[k].dtype}: "
                              f"{_short(wrong_kind, 4)}")
    floats: dict[torch.dtype, list[str]] = {}
    for k, v in state_dict.items():
        if v.is_floating_point():
            floats.setdefault(v.dtype, []).append(k)
    if len(floats) > 1:
        main = max(floats, key=lambda d: len(floats[d]))
        stray = sorted(k for d, ks in floats.items() if d != main for k in ks)
        raise CheckpointError(f"{source}: mixed floating dtypes: {len(floats[main])} tensor(s) are {main} but "
                              f"{len(stray)} are not ({_short([f'{k} {state_dict[k].dtype}' for k in stray], 4)}); "
                              "save all weights in one dtype")


def load_strict(model: nn.Module, state_dict: Mapping[str, Tensor], source: str = "checkpoint") -> nn.Module:
    """`check_state_dict`, then copy the tensors in (dtype cast to the model's)."""
    check_state_dict(model, state_dict, source)
    model.load_state_dict(dict(state_dict), strict=True)
    return model


def _short(items: list[str], n: int = 12) -> str:
    shown = ", ".join(items[:n])
    return shown + (f", ... (+{len(items) - n} more)" if len(items) > n else "")


def shape_of(state_dict: Mapping[str, Tensor], key: str) -> tuple[int, ...]:
    """The shape of an official key, or a `CheckpointError` naming it (used to read sizes off checkpoints)."""
    if key not in state_dict:
        raise CheckpointError(f"checkpoint has no key {key!r}, needed to infer the model size")
    return tuple(state_dict[key].shape)


def count_blocks(state_dict: Mapping[str, Tensor], prefix: str) -> int:
    """Number of numbered sub-modules ``{prefix}{i}.`` in a state dict (depth of a block list)."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = {int(m.group(1)) for k in state_dict for m in [pattern.match(k)] if m}
    return max(found) + 1 if found else 0


def meta_state_dict(shapes: Mapping[str, Sequence[int]]) -> StateDict:
    """Meta tensors with the given shapes: run a converter on a key/shape manifest without allocating memory."""
    return {k: torch.empty(tuple(s), device="meta") for k, s in shapes.items()}
