"""Building and loading tokenizers: by name, from a local folder, from an official checkpoint, from the hub."""
from __future__ import annotations

import json
import os
import time
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
    cfg = config_from_dict(spec.config_cls, values, where=f"{family} config")
    check_buildable(spec.tokenizer_cls, cfg, f"{family} config")
    return spec.tokenizer_cls(cfg)


MAX_PARAMETERS = 20_000_000_000


def check_buildable(cls: type, config: Any, where: str) -> int:
    """Build `cls(config)` on the meta device (no memory) and count its parameters: a config that cannot build
    a model, or one of an absurd size, is a `ConfigError` before anything is allocated."""
    try:
        with torch.device("meta"):
            model = cls(config)
        n = sum(p.numel() for p in model.parameters())
    except ConfigError:
        raise
    except Exception as exc:  # a size that does not divide, a negative dimension, ...
        raise ConfigError(f"{where} does not describe a buildable {cls.__name__}: "
                          f"{' '.join(str(exc).split()) or type(exc).__name__}") from None
    if n > MAX_PARAMETERS:
        raise ConfigError(f"{where} describes a model of {n:,} parameters (more than {MAX_PARAMETERS:,}): check "
                          "its sizes")
    return n


def _place(model: Tokenizer, device: Any, dtype: Any) -> Tokenizer:
    if dtype is not None and isinstance(dtype, str):
        names = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
                 "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}
        if dtype not in names:
            raise InputError(f"dtype={dtype!r} is not one of {sorted(names)}")
        dtype = names[dtype]
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise InputError(f"dtype must be a floating torch.dtype or one of fp32/bf16/fp16, got {dtype!r}")
    if device is not None:
        try:
            device = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise InputError(f"device={device!r} is not a device (cpu, cuda, cuda:1, mps, ...): {exc}") from None
    if dtype is not None and isinstance(model, Tokenizer):
        model.fingerprint  # of the weights as loaded: a dtype move keeps it (codes stay decodable)
    try:
        model = model.to(device=device, dtype=dtype) if (device or dtype) else model
    except (RuntimeError, AssertionError) as exc:  # e.g. cuda:7 on a machine with one GPU, or no CUDA build
        raise InputError(f"cannot move the model to {device}: {str(exc).splitlines()[0]}") from None
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
    if isinstance(checkpoint, (str, os.PathLike)) and Path(checkpoint).is_dir():
        checkpoint, config = _official_folder(Path(checkpoint), config)
    raw = load_file(checkpoint, spec.allow) if isinstance(checkpoint, (str, os.PathLike)) else checkpoint
    state_dict, embedded_cfg = _extract(spec, raw, str(checkpoint) if not isinstance(checkpoint, Mapping)
                                        else "state dict")
    if isinstance(config, (str, os.PathLike)):
        official_cfg = read_config_file(config)
    elif config is None:
        official_cfg = embedded_cfg
    else:
        official_cfg = to_plain(config)
    try:
        our_config = spec.config_from_official(official_cfg, state_dict, **overrides)
    except (ConfigError, CheckpointError, InputError):
        raise
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:  # a value of the wrong kind
        raise ConfigError(f"{family}: the official config does not fit: {type(exc).__name__}: "
                          f"{' '.join(str(exc).split())}") from None
    return _from_state_dict(spec, our_config, state_dict, source=str(checkpoint) if not isinstance(checkpoint, Mapping)
                            else "state dict", device=device, dtype=dtype)


def _official_folder(folder: Path, config: Any) -> tuple[Path, Any]:
    """An official checkpoint given as a folder (the diffusers / transformers layout): its one weights file and,
    unless a config is given, its config.json."""
    weights = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".pt", ".pth", ".ckpt"))
    if len(weights) != 1:
        raise CheckpointError(f"{folder}: an official checkpoint folder must hold exactly one weights file "
                              f"(.safetensors, .bin, ...), found {[p.name for p in weights] or 'none'}")
    if config is None and (folder / CONFIG_NAME).is_file():
        config = folder / CONFIG_NAME
    return weights[0], config


def is_diffusers_folder(path: Path) -> bool:
    """A folder written by diffusers' ``save_pretrained`` (config.json with ``_diffusers_version``)."""
    try:
        meta = json.loads((path / CONFIG_NAME).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and "_diffusers_version" in meta and "format" not in meta


def _extract(spec: Any, raw: Any, source: str) -> tuple[Mapping, Any]:
    """The family's state dict (and embedded config) of a loaded official file; odd contents are a CheckpointError."""
    try:
        state_dict, cfg = spec.extract(raw)
    except (CheckpointError, ConfigError, InputError):
        raise
    except (KeyError, IndexError, ValueError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{source}: no {spec.name} state dict in it ({type(exc).__name__}: "
                              f"{' '.join(str(exc).split())[:200]})") from None
    bad = [k for k, v in state_dict.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{source}: its state dict holds {len(bad)} entries that are not named tensors, "
                              f"e.g. {bad[0]!r}")
    return state_dict, cfg


def _from_state_dict(spec: Any, config: Any, official: Mapping, source: str, device: Any = None,
                     dtype: Any = None) -> Tokenizer:
    """Convert an official state dict and load it strictly into a model built from `config`."""
    from .convert.common import drop

    kept, _ = drop(official, spec.skip)
    try:
        ours = spec.convert(kept, config)
    except (CheckpointError, ConfigError, InputError):
        raise
    except (KeyError, IndexError, ValueError, TypeError, AttributeError, RuntimeError) as exc:
        raise CheckpointError(f"{source} does not fit the {spec.name} converter: {type(exc).__name__}: "
                              f"{' '.join(str(exc).split())[:300]}") from None
    return _place(materialize(spec.tokenizer_cls, config, ours, source), device, dtype)


def materialize(cls: type, config: Any, state_dict: Mapping, source: str) -> Tokenizer:
    """Build `cls(config)` on the meta device, check keys and shapes strictly, then adopt the tensors.

    No random initialisation runs (a large model loads as fast as its file reads); non-persistent buffers are
    rebuilt by a real construction when the model has any.
    """
    check_buildable(cls, config, source)
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
    if overrides and (target.startswith("hf://") or Path(target).is_dir()):
        raise InputError(f"config overrides {sorted(overrides)} only apply to registered names loaded from their "
                         f"official checkpoint; {target} is a saved folder with its own config.json")
    if target.startswith("hf://"):
        return load_hub_repo(target, device=device, dtype=dtype)
    path = Path(target)
    if ":" in target and not path.exists():  # my_pkg.my_module:build or my_file.py:build (zoo.wrap)
        from .wrap import load_callable

        model = load_callable(target)
        if model is not None:
            if overrides or checkpoint is not None:
                raise InputError(f"{target} builds its own model: config overrides and checkpoint= do not apply")
            return _place(model, device, dtype)
    if path.is_dir():
        if checkpoint is not None:
            raise InputError("checkpoint= (--checkpoint on the command line) goes with a registered model name, not "
                             "with a folder")
        if is_diffusers_folder(path):  # diffusers' own layout: converted through the diffusers family
            return from_official("diffusers", path, device=device, dtype=dtype)
        return _place(load_folder(path), device, dtype)
    if path.suffix in (".safetensors", ".bin", ".pt", ".pth", ".ckpt") and path.exists():
        raise InputError(f"{path} is a checkpoint file: pass it as checkpoint= with the model name it belongs to "
                         "(zoo.load('onedpiece-s-256', checkpoint=...) in Python, `-m onedpiece-s-256 --checkpoint "
                         "FILE` on the command line), or use zoo.from_official(family, file)")
    entry = get_entry(target)
    spec = get_family(entry.family)
    config = config_from_dict(spec.config_cls, {**entry.config, **overrides}, where=f"{entry.name} config")
    if checkpoint is None:
        if entry.checkpoint_format == "zoo" and overrides:
            raise InputError(f"config overrides {sorted(overrides)} do not apply to {entry.name}: it is stored "
                             "in the zoo format with its own config")
        if entry.checkpoint_format == "zoo" and entry.extra.get("package_dir"):
            model = load_folder(Path(entry.extra["package_dir"]))
            model.name = entry.name
            return _place(model, device, dtype)
        from .hub import load_converted  # the official file, converted once and kept in the zoo cache

        def convert(path: Path) -> Tokenizer:
            state_dict = _extract(spec, load_file(path, spec.allow), str(path))[0]
            return _from_state_dict(spec, _entry_config(entry, spec, config, state_dict, overrides), state_dict,
                                    source=str(path))

        model = load_converted(entry, config, convert)
        model.name = entry.name
        return _place(model, device, dtype)
    if Path(checkpoint).is_dir():
        checkpoint = _official_folder(Path(checkpoint), None)[0]
    raw = load_file(checkpoint, spec.allow)
    state_dict, _ = _extract(spec, raw, str(checkpoint))
    config = _entry_config(entry, spec, config, state_dict, overrides, beside=Path(checkpoint).parent)
    model = _from_state_dict(spec, config, state_dict, source=str(checkpoint), device=device, dtype=dtype)
    model.name = entry.name
    return model


def _entry_config(entry: Any, spec: Any, config: Any, state_dict: Mapping, overrides: Mapping,
                  beside: Path | None = None) -> Any:
    """A named model's config. Entries that name their official config file (``extra["hub_config_file"]``, e.g.
    a diffusers ``config.json`` beside the weights) read it from the hub cache, or from beside a local
    checkpoint, and build the config from it with the entry's own values on top."""
    name = entry.extra.get("hub_config_file")
    if not name:
        return config
    if beside is not None:
        path = beside / Path(name).name
        if not path.is_file():
            raise CheckpointError(f"{entry.name} needs its official {Path(name).name} beside the checkpoint "
                                  f"(looked for {path})")
    else:
        from .hub import hf_file

        path = hf_file(entry.hub_repo, name, entry.hub_revision, what=entry.name)
    return spec.config_from_official(read_config_file(path), state_dict, **{**entry.config, **overrides})


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
STORAGE_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def save_pretrained(model: Tokenizer, directory: str | os.PathLike, extra: Mapping[str, Any] | None = None,
                    storage_dtype: str | None = None) -> Path:
    """Write `config.json` (family, config, name, zoo version, ``weights_sha256``) and `model.safetensors`.

    storage_dtype: "float16" or "bfloat16" stores the floating-point weights at half size (the embedded default
    does, to ship small); config.json records it and loading casts them back to float32.

    The pair is written into a private staging folder beside `directory` and swapped in atomically
    (`zoo.atomic.staged_folder`): a reader sees the old pair or the new pair, never a mix, and concurrent saves into
    one folder never collide (the last one wins). Other files already in `directory` are kept.
    """
    from safetensors.torch import save_file, save_model

    from . import __version__
    from .atomic import staged_folder
    from .hub import DIGEST_KEY, file_sha256

    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise InputError(f"cannot save a model to {directory}: it is a file, not a folder")
    meta = {"format": FORMAT, "family": model.family, "name": model.name, "zoo_version": __version__,
            "config": config_to_dict(model.config), **(extra or {})}
    if storage_dtype is not None:
        if storage_dtype not in STORAGE_DTYPES:
            raise InputError(f"storage_dtype must be one of {sorted(STORAGE_DTYPES)}, got {storage_dtype!r}")
        meta["storage_dtype"] = storage_dtype
    try:
        with staged_folder(directory) as stage:
            if storage_dtype is None:
                save_model(model, str(stage / WEIGHTS_NAME), metadata={"format": FORMAT, "family": model.family})
            else:
                half = {k: (v.detach().to(STORAGE_DTYPES[storage_dtype]) if v.is_floating_point() else v.detach())
                        .contiguous() for k, v in model.state_dict().items()}
                save_file(half, str(stage / WEIGHTS_NAME), metadata={"format": FORMAT, "family": model.family})
            meta[DIGEST_KEY] = file_sha256(stage / WEIGHTS_NAME)
            (stage / CONFIG_NAME).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    except OSError as exc:  # unwritable, a file where a folder is needed, disk full
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        raise InputError(f"cannot save a model to {directory}{where}: {exc.strerror or exc}") from None
    return directory


def read_folder_config(directory: Path, view: Any = None) -> dict:
    """config.json of a folder written by `save_pretrained`, checked for its required entries."""
    cfg_path = directory / CONFIG_NAME
    try:
        text = view.read_bytes(CONFIG_NAME) if view is not None else cfg_path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{directory} has no {CONFIG_NAME}: not a folder written by save_pretrained") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {cfg_path}: {exc.strerror or exc}") from None
    try:
        meta = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{cfg_path} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{cfg_path} must hold a JSON object, got {type(meta).__name__}")
    for key in ("family", "config"):
        if key not in meta:
            raise CheckpointError(f"{cfg_path} has no {key!r} entry")
    if not isinstance(meta["family"], str):
        raise CheckpointError(f"{cfg_path}: 'family' must be a string, got {meta['family']!r}")
    if not isinstance(meta["config"], dict):
        raise CheckpointError(f"{cfg_path}: 'config' must be a JSON object, got {type(meta['config']).__name__}")
    digest = meta.get("weights_sha256")
    if digest is not None and not (isinstance(digest, str) and len(digest) == 64):
        raise CheckpointError(f"{cfg_path}: 'weights_sha256' must be 64 hex digits, got {digest!r}")
    if meta.get("name") is not None and not isinstance(meta["name"], str):
        raise CheckpointError(f"{cfg_path}: 'name' must be a string or null, got {meta['name']!r}")
    return meta


def load_folder(directory: str | os.PathLike, what: str | None = None) -> Tokenizer:
    """Load a folder written by `save_pretrained`; strict: the weights must fit the config exactly, and their
    sha256 must be the one config.json records.

    The folder is opened once (`zoo.atomic.FolderView`), so config and weights come from the same save even while
    another process saves into it; a save that swapped the folder mid-read is retried.
    """
    from .atomic import FolderView

    directory = Path(directory)
    attempts = 50  # a busy writer can swap the folder several times while a slow reader reads
    for attempt in range(attempts):
        if attempt:
            time.sleep(min(0.05, 0.002 * attempt))
        try:
            view = FolderView(directory)
        except FileNotFoundError:
            raise CheckpointError(f"model folder not found: {directory}") from None
        except NotADirectoryError:
            raise CheckpointError(f"{directory} is not a folder") from None
        try:
            return _load_view(view, directory, what)
        except CheckpointError:
            if attempt < attempts - 1 and view.swapped():  # a writer replaced the folder while we read it: read the new one
                continue
            raise
        finally:
            view.close()
    raise CheckpointError(f"{directory} keeps changing while it is read")  # pragma: no cover


def _load_view(view: Any, directory: Path, what: str | None) -> Tokenizer:
    from safetensors.torch import load_file as st_load

    from .hub import DIGEST_KEY, verify_weights

    meta = read_folder_config(directory, view)
    weights = directory / WEIGHTS_NAME
    try:
        fd = view.open_fd(WEIGHTS_NAME)
    except FileNotFoundError:
        raise CheckpointError(f"{directory} has no {WEIGHTS_NAME}") from None
    if meta.get(DIGEST_KEY):
        verify_weights(fd, meta[DIGEST_KEY], what or str(directory), weights)
    spec = get_family(meta["family"])
    try:
        config = config_from_dict(spec.config_cls, meta["config"], where=f"{directory / CONFIG_NAME}")
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None
    try:
        state_dict = st_load(view.path_of(WEIGHTS_NAME))
    except Exception as exc:
        raise CheckpointError(f"corrupt or truncated weights file {weights}: {exc}") from None
    stored = meta.get("storage_dtype")
    if stored is not None:  # weights kept at half size on disk: computed in float32
        if stored not in STORAGE_DTYPES:
            raise CheckpointError(f"{directory / CONFIG_NAME}: unknown storage_dtype {stored!r}")
        state_dict = {k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()}
    try:
        model = materialize(spec.tokenizer_cls, config, state_dict, source=str(weights))
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None
    model.name = meta.get("name")
    model.weights_sha256 = meta.get(DIGEST_KEY)
    return model.eval()
