"""Building and loading tokenizers: by name, from a local folder, from an official checkpoint, from the hub."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch

from .api import Tokenizer
from .config import config_from_dict, config_to_dict
from .convert.common import check_state_dict, load_file, load_strict, read_config_file, to_plain
from .errors import CheckpointError, ConfigError, InputError
from .registry import get_entry, get_family

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = "zoo.tokenizer/1"


def build(family: str, config: Any = None, **overrides: Any) -> Tokenizer:
    """A freshly initialised tokenizer of `family` with `config` (dict or config dataclass) and overrides."""
    spec = get_family(family)
    values = dict(config_to_dict(config) if hasattr(config, "__dataclass_fields__") else (config or {}))
    values.update(overrides)
    return spec.tokenizer_cls(config_from_dict(spec.config_cls, values, where=f"{family} config"))


def _place(model: Tokenizer, device: Any, dtype: Any) -> Tokenizer:
    if dtype is not None and isinstance(dtype, str):
        dtype = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
                 "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}[dtype]
    model = model.to(device=device, dtype=dtype) if (device or dtype) else model
    return model.eval()


def from_official(family: str, checkpoint: str | os.PathLike | Mapping, config: Any = None,
                  device: Any = None, dtype: Any = None, **overrides: Any) -> Tokenizer:
    """Load a checkpoint written by a family's official code, at any size.

    checkpoint: a file (safetensors or torch pickle, loaded weights-only) or an already loaded state dict.
    config: that repository's own config: a YAML/JSON file path, a dict, an argparse.Namespace, or None to use
        the config stored in the checkpoint (if any). Sizes it does not name are read from the weights' shapes;
        `overrides` (our config keys, e.g. ``heads=8``) give what shapes cannot tell.
    """
    if family in ("maskgit", "var"):  # generators (zoo.generate) load through the same entry point
        from .generate import from_official as generator_from_official

        return generator_from_official(checkpoint, config=config, device=device, dtype=dtype, family=family,
                                       **overrides)
    spec = get_family(family)
    raw = load_file(checkpoint, spec.allow) if isinstance(checkpoint, (str, os.PathLike)) else checkpoint
    state_dict, embedded_cfg = spec.extract(raw)
    if isinstance(config, (str, os.PathLike)):
        official_cfg = read_config_file(config)
    elif config is None:
        official_cfg = embedded_cfg
    else:
        official_cfg = to_plain(config)
    our_config = spec.config_from_official(official_cfg, state_dict, **overrides)
    return _from_state_dict(spec, our_config, state_dict, source=str(checkpoint) if not isinstance(checkpoint, Mapping)
                            else "state dict", device=device, dtype=dtype)


def _from_state_dict(spec: Any, config: Any, official: Mapping, source: str, device: Any = None,
                     dtype: Any = None) -> Tokenizer:
    """Convert an official state dict and load it strictly into a model built from `config`."""
    from .convert.common import drop

    kept, _ = drop(official, spec.skip)
    ours = spec.convert(kept, config)
    return _place(materialize(spec.tokenizer_cls, config, ours, source), device, dtype)


def materialize(cls: type, config: Any, state_dict: Mapping, source: str) -> Tokenizer:
    """Build `cls(config)` on the meta device, check keys and shapes strictly, then adopt the tensors.

    No random initialisation runs (a large model loads as fast as its file reads); non-persistent buffers are
    rebuilt by a real construction when the model has any.
    """
    with torch.device("meta"):
        model = cls(config)
    check_state_dict(model, state_dict, source)
    model.load_state_dict({k: v.contiguous() for k, v in state_dict.items()}, strict=True, assign=True)
    if any(t.is_meta for t in list(model.parameters()) + list(model.buffers())):
        model = cls(config)
        load_strict(model, state_dict, source)
    return model


def load(name_or_path: str | os.PathLike, checkpoint: str | os.PathLike | None = None, device: Any = None,
         dtype: Any = None, **overrides: Any) -> Tokenizer:
    """Load a tokenizer.

    name_or_path: a registered name (``zoo.list_models()``), a folder written by `save_pretrained`, or
        ``hf://user/repo[@revision]``.
    checkpoint: for a registered name, a local file in the *official* layout (downloaded by hand); it is
        converted with the released config. Without it, the official file is resolved through the hub cache.
    """
    target = str(name_or_path)
    if target.startswith("hf://"):
        return load_hub_repo(target, device=device, dtype=dtype)
    path = Path(target)
    if path.is_dir():
        if checkpoint is not None:
            raise InputError("checkpoint= (--checkpoint on the command line) goes with a registered model name, not "
                             "with a folder")
        return _place(load_folder(path), device, dtype)
    if path.suffix in (".safetensors", ".bin", ".pt", ".pth", ".ckpt") and path.exists():
        raise InputError(f"{path} is a checkpoint file: pass it as checkpoint= with the model name it belongs to "
                         "(zoo.load('onedpiece-s-256', checkpoint=...) in Python, `-m onedpiece-s-256 --checkpoint "
                         "FILE` on the command line), or use zoo.from_official(family, file)")
    entry = get_entry(target)
    spec = get_family(entry.family)
    config = config_from_dict(spec.config_cls, {**entry.config, **overrides}, where=f"{entry.name} config")
    if checkpoint is None:
        if entry.checkpoint_format == "zoo" and entry.extra.get("package_dir"):
            model = load_folder(Path(entry.extra["package_dir"]))
            model.name = entry.name
            return _place(model, device, dtype)
        from .hub import load_converted  # the official file, converted once and kept in the zoo cache

        def convert(path: Path) -> Tokenizer:
            return _from_state_dict(spec, config, spec.extract(load_file(path, spec.allow))[0], source=str(path))

        model = load_converted(entry, config, convert)
        model.name = entry.name
        return _place(model, device, dtype)
    raw = load_file(checkpoint, spec.allow)
    state_dict, _ = spec.extract(raw)
    model = _from_state_dict(spec, config, state_dict, source=str(checkpoint), device=device, dtype=dtype)
    model.name = entry.name
    return model


def names_hub_repo(name_or_path: str | os.PathLike) -> bool:
    """True for ``hf://...`` and for ``user/repo`` that is neither an existing path nor a registered name."""
    import re

    from .registry import list_models

    text = str(name_or_path)
    if text.startswith("hf://"):
        return True
    return (re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?", text) is not None
            and not Path(text.partition("@")[0]).exists() and text not in list_models())


def load_hub_repo(repo: str, revision: str | None = None, cache_dir: str | os.PathLike | None = None,
                  token: str | bool | None = None, device: Any = None, dtype: Any = None) -> Tokenizer:
    """One of our folders from the hub: ``user/repo`` (or ``hf://user/repo[@revision]``) at `revision`."""
    from .hub import load_from_hub

    target = repo[5:] if repo.startswith("hf://") else repo
    if revision is not None:
        if "@" in target:
            raise InputError(f"{repo} already names a revision; do not also pass revision={revision!r}")
        target = f"{target}@{revision}"
    return _place(load_from_hub(target, cache_dir=cache_dir, token=token), device, dtype)


# ---------------------------------------------------------------------------------------------------------------
# Our own folder layout: config.json + model.safetensors
# ---------------------------------------------------------------------------------------------------------------
def save_pretrained(model: Tokenizer, directory: str | os.PathLike, extra: Mapping[str, Any] | None = None) -> Path:
    """Write `config.json` (family, config, name, zoo version) and `model.safetensors`, each atomically."""
    from safetensors.torch import save_model

    from . import __version__
    from .files import normal_mode

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "family": model.family, "name": model.name, "zoo_version": __version__,
            "config": config_to_dict(model.config), **(extra or {})}
    tmp = directory / (WEIGHTS_NAME + ".tmp")
    save_model(model, str(tmp), metadata={"format": FORMAT, "family": model.family})
    normal_mode(tmp)
    os.replace(tmp, directory / WEIGHTS_NAME)
    tmp = directory / (CONFIG_NAME + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, directory / CONFIG_NAME)
    return directory


def read_folder_config(directory: Path) -> dict:
    cfg_path = directory / CONFIG_NAME
    if not cfg_path.is_file():
        raise CheckpointError(f"{directory} has no {CONFIG_NAME}: not a folder written by save_pretrained")
    try:
        meta = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{cfg_path} is not valid JSON: {exc}") from None
    for key in ("family", "config"):
        if key not in meta:
            raise CheckpointError(f"{cfg_path} has no {key!r} entry")
    return meta


def load_folder(directory: str | os.PathLike) -> Tokenizer:
    """Load a folder written by `save_pretrained`; strict: the weights must fit the config exactly."""
    from safetensors.torch import load_file as st_load

    directory = Path(directory)
    meta = read_folder_config(directory)
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"{directory} has no {WEIGHTS_NAME}")
    spec = get_family(meta["family"])
    try:
        config = config_from_dict(spec.config_cls, meta["config"], where=f"{directory / CONFIG_NAME}")
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None
    try:
        state_dict = st_load(str(weights))
    except Exception as exc:
        raise CheckpointError(f"corrupt or truncated weights file {weights}: {exc}") from None
    model = materialize(spec.tokenizer_cls, config, state_dict, source=str(weights))
    model.name = meta.get("name")
    return model.eval()
