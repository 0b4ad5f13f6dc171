"""Loading generators: by registered name (official weights, converted on load), from an official file, and from
our own folders (``config.json`` + ``model.safetensors``). Loading is strict, as for tokenizers."""
from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping


from ..config import config_from_dict
from ..convert import var as var_convert
from ..convert.common import drop, find_state_dict, load_file, read_config_file, to_plain
from ..errors import CheckpointError, ConfigError, InputError
from .api import Generator, MaskGITGenerator
from .convert import SKIP, config_from_official, convert_state_dict, sampling_from_official
from .maskgit import MaskGITConfig, MaskGITSampling
from .registry import get_generator_entry
from .var import VARConfig, VARGenerator, VARSampling

FORMAT = "zoo.generator/1"
CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"


def _maskgit_official(raw: Any, official: Mapping | None, sampling: Mapping, overrides: Mapping):
    state_dict = find_state_dict(raw)
    config = config_from_official(official, state_dict, **overrides)
    return config, sampling_from_official(official, **sampling), convert_state_dict(drop(state_dict, SKIP)[0])


def _var_official(raw: Any, official: Mapping | None, sampling: Mapping, overrides: Mapping):
    state_dict, args = var_convert.extract(raw)
    overrides = dict(overrides)
    groups = overrides.pop("groups", 2)
    kwargs = var_convert.config_from_official(official or args, state_dict, **overrides)
    config = VARConfig(**{**kwargs, "scales": list(kwargs["scales"]), "groups": groups})
    ours = var_convert.convert_state_dict(drop(state_dict, var_convert.SKIP)[0])
    return config, VARSampling(**sampling), {f"model.{k}": v for k, v in ours.items()}


# family -> (generator class, config class, sampling class, official loader, pickle allow-list)
FAMILIES: dict[str, tuple] = {
    "maskgit": (MaskGITGenerator, MaskGITConfig, MaskGITSampling, _maskgit_official, ()),
    "var": (VARGenerator, VARConfig, VARSampling, _var_official, ()),
}


def _ar_family() -> tuple:
    from .ar import ARConfig, ARGenerator, ARSampling

    return (ARGenerator, ARConfig, ARSampling, None, ())


def _family(name: str) -> tuple:
    if name == "ar" and name not in FAMILIES:  # the grouped next-token GPT: trained here, no official layout
        FAMILIES["ar"] = _ar_family()
    if name not in FAMILIES:
        raise ConfigError(f"unknown generator family {name!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[name]


def _allow(family: str) -> tuple:
    if family == "var":  # VAR training checkpoints carry the ImageFolder tokenizer's args next to the weights
        from ..convert.imagefolder import ALLOWED_GLOBALS

        return tuple(ALLOWED_GLOBALS)
    return ()


def build_generator(config: Any, sampling: Any = None, tokenizer: str | None = None,
                    family: str = "maskgit") -> Generator:
    """A freshly initialised generator (config: the family's config dataclass or its fields as a dict)."""
    cls, config_cls, sampling_cls, _, _ = _family(family)
    if not isinstance(config, config_cls):
        config = config_from_dict(config_cls, dict(config), where=f"{family} generator config")
    if sampling is not None and not isinstance(sampling, sampling_cls):
        sampling = config_from_dict(sampling_cls, dict(sampling), where=f"{family} generator sampling")
    return cls(config, sampling, tokenizer)


def _materialize(family: str, config: Any, sampling: Any, tokenizer: str | None, state_dict: Mapping,
                 source: str) -> Generator:
    """Build on the meta device, check keys and shapes strictly, adopt the tensors (`zoo.loading.materialize`)."""
    from ..loading import materialize

    gen = materialize(_family(family)[0], config, state_dict, source)
    gen.sampling, gen.tokenizer = sampling, tokenizer
    return gen.eval()


def _place(gen: Generator, device: Any, dtype: Any) -> Generator:
    return (gen.to(device=device, dtype=dtype) if (device or dtype) else gen).eval()


def from_official(checkpoint: str | os.PathLike | Mapping, config: Any = None, tokenizer: str | None = None,
                  device: Any = None, dtype: Any = None, sampling: Mapping | None = None, family: str | None = None,
                  **overrides: Any) -> Generator:
    """Load an official generator checkpoint at any size: MaskGIT (ImageBert / UViTBert of 1d-tokenizer and
    One-D-Piece) or VAR (ImageFolder's training checkpoints, ``trainer.var_wo_ddp``); the family is recognised
    from the file unless given.

    config: the official config (YAML/JSON path or dict; MaskGIT: its ``model.generator`` block gives heads and
        sampler settings; VAR: the args with ``pn``), or None. overrides: our config keys.
    """
    raw = load_file(checkpoint, _allow(family or "var")) if isinstance(checkpoint, (str, os.PathLike)) else checkpoint
    if family is None:
        family = "var" if isinstance(raw, Mapping) and ("trainer" in raw or "pos_1LC" in raw) else "maskgit"
    official = read_config_file(config) if isinstance(config, (str, os.PathLike)) else to_plain(config)
    our, samp, converted = _family(family)[3](raw, official, sampling or {}, overrides)
    src = str(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else "state dict"
    return _place(_materialize(family, our, samp, tokenizer, converted, src), device, dtype)


def load_generator(name_or_path: str | os.PathLike, checkpoint: str | os.PathLike | None = None, device: Any = None,
                   dtype: Any = None) -> Generator:
    """Load a generator: a registered name (``zoo.generate.list_generators()``), a folder we wrote, or one pushed
    to the hub (``hf://user/repo[@revision]``).

    checkpoint: for a registered name, its official file (downloaded by hand); without it the file is resolved
    through the Hugging Face cache (an `OfflineError` says which file to fetch when it is not there).
    """
    if str(name_or_path).startswith("hf://"):  # a generator folder pushed with push_to_hub
        from .hub import pull_generator_folder

        return _place(load_folder(pull_generator_folder(str(name_or_path)[5:])), device, dtype)
    path = Path(str(name_or_path))
    if path.is_dir():
        if checkpoint is not None:
            raise InputError("checkpoint= (--checkpoint on the command line) goes with a registered generator name, "
                             "not with a folder")
        return _place(load_folder(path), device, dtype)
    entry = get_generator_entry(str(name_or_path))
    _, config_cls, sampling_cls, official_loader, _ = _family(entry.family)
    config = config_from_dict(config_cls, dict(entry.config), where=f"{entry.name} config")
    sampling = config_from_dict(sampling_cls, dict(entry.sampling), where=f"{entry.name} sampling")
    if checkpoint is None:
        from ..hub import hf_file

        by_hand = (f"load_generator({entry.name!r}, checkpoint=PATH) in Python, or `--checkpoint PATH` on the "
                   "command line")
        if not entry.hub_repo or not entry.hub_file:
            raise InputError(f"{entry.name} has no hub file: pass its official file with {by_hand}")
        checkpoint = hf_file(entry.hub_repo, entry.hub_file, entry.hub_revision, what=entry.name,
                             by_hand=f"or pass a copy of the file with {by_hand}")
    raw = load_file(checkpoint, _allow(entry.family))
    # the registered config decides the sizes; the official loader converts the keys (what the weights cannot
    # tell, heads or the scale schedule, comes from the registered config) and the strict load checks every shape
    hints = {"heads": config.heads} if entry.family == "maskgit" else {"scales": config.scales, "groups": config.groups}
    _, _, converted = official_loader(raw, None, {}, hints)
    gen = _materialize(entry.family, config, sampling, entry.tokenizer, converted, str(checkpoint))
    gen.name = entry.name
    return _place(gen, device, dtype)


def save_generator(gen: Generator, directory: str | os.PathLike, extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``config.json`` and ``model.safetensors`` atomically; `load_generator(directory)` reads them back."""
    from safetensors.torch import save_model

    from .. import __version__

    from ..atomic import staged_folder

    directory = Path(directory)
    meta = {"format": FORMAT, "family": gen.family, "name": gen.name, "tokenizer": gen.tokenizer,
            "config": asdict(gen.config), "sampling": asdict(gen.sampling), "zoo_version": __version__,
            **(extra or {})}
    with staged_folder(directory) as stage:  # the pair appears at once (zoo.atomic)
        save_model(gen, str(stage / WEIGHTS_NAME), metadata={"format": FORMAT})
        (stage / CONFIG_NAME).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return directory


def load_folder(directory: str | os.PathLike) -> Generator:
    from safetensors.torch import load_file as st_load

    directory = Path(directory)
    cfg_path, weights = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    if not cfg_path.is_file() or not weights.is_file():
        raise CheckpointError(f"{directory} is not a generator folder: it needs {CONFIG_NAME} and {WEIGHTS_NAME}")
    try:
        meta = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{cfg_path} is not valid JSON: {exc}") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{cfg_path} is not a generator config (format {meta.get('format')!r}, want {FORMAT})")
    family = meta.get("family", "maskgit")
    _, config_cls, sampling_cls, _, _ = _family(family)
    config = config_from_dict(config_cls, meta["config"], where=str(cfg_path))
    sampling = config_from_dict(sampling_cls, meta["sampling"], where=str(cfg_path))
    try:
        state_dict = st_load(str(weights))
    except Exception as exc:
        raise CheckpointError(f"corrupt or truncated weights file {weights}: {exc}") from None
    gen = _materialize(family, config, sampling, meta.get("tokenizer"), state_dict, str(weights))
    gen.name = meta.get("name")
    return gen
