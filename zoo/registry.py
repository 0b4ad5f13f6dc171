"""The registry: families (how to build and convert) and named models (what was released, where, how good)."""
from __future__ import annotations

import fnmatch
import importlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from torch import Tensor

from .entries import Metric, ModelEntry
from .errors import UnknownModelError, did_you_mean

StateDict = dict[str, Tensor]


@dataclass(frozen=True)
class FamilySpec:
    """How a family is built from our config and from an official checkpoint.

    convert: official state dict -> ours (a pure function; it may return meta tensors for meta inputs).
    config_from_official: (official config as a plain dict or None, official state dict, **overrides) -> our config.
        The converter's function may return the config's values as a dict (so that a converter needs nothing from
        its family's module: a family imports its converter, never the reverse); the spec turns them into
        `config_cls`, so callers always get the config object.
    extract: the loaded official file -> (official state dict, official config found inside the file or None).
    skip: regular expressions of official keys that are dropped on purpose (training-only parts), by name.
    allow: extra globals an official pickle may hold besides tensors (``torch.load(weights_only=True)`` allow-list:
        classes, or ``(stand_in, "module.Name")`` pairs that map a class name to an inert stand-in).
    """

    name: str
    tokenizer_cls: type
    config_cls: type
    convert: Callable[[StateDict, Any], StateDict]
    config_from_official: Callable[..., Any]
    extract: Callable[[Any], tuple[StateDict, dict | None]]
    skip: tuple[str, ...] = ()
    official_repo: str = ""
    description: str = ""
    allow: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        convert_config = self.config_from_official

        def config_from_official(official: Any, state_dict: StateDict, **overrides: Any) -> Any:
            values = convert_config(official, state_dict, **overrides)
            if not isinstance(values, Mapping):
                return values
            from .config import config_from_dict

            return config_from_dict(self.config_cls, dict(values), where=f"{self.name} config")

        config_from_official.__doc__ = convert_config.__doc__
        object.__setattr__(self, "config_from_official", config_from_official)


_FAMILIES: dict[str, FamilySpec] = {}
_MODELS: dict[str, ModelEntry] = {}
_BUILTINS_LOADED = False


def register_family(spec: FamilySpec) -> FamilySpec:
    _FAMILIES[spec.name] = spec
    return spec


def register_model(entry: ModelEntry, overwrite: bool = False) -> ModelEntry:
    """Add a named model (users may register their own)."""
    if entry.name in _MODELS and not overwrite:
        raise ValueError(f"model {entry.name!r} is already registered (pass overwrite=True to replace it)")
    _MODELS[entry.name] = entry
    return entry


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        from .families import BUILTIN_FAMILIES

        for module in BUILTIN_FAMILIES:
            importlib.import_module(f"zoo.families.{module}")
        from .weights import default_entry

        default = default_entry()  # the embedded `default` model, when its weights are packaged
        if default is not None and default.name not in _MODELS:
            _MODELS[default.name] = default


def get_family(name: str) -> FamilySpec:
    _load_builtins()
    if name not in _FAMILIES:
        raise UnknownModelError(f"unknown family {name!r}; known families: {sorted(_FAMILIES)}."
                                f"{did_you_mean(name, _FAMILIES)}")
    return _FAMILIES[name]


def list_families() -> list[str]:
    _load_builtins()
    return sorted(_FAMILIES)


def get_entry(name: str) -> ModelEntry:
    _load_builtins()
    if name not in _MODELS:
        hub = (f"; for a folder pushed to the hub, use hf://{name} (or Tokenizer.from_pretrained({name!r}))"
               if name.count("/") == 1 and not name.startswith(("/", ".")) else "")
        raise UnknownModelError(f"unknown model {name!r}.{did_you_mean(name, _MODELS)} "
                                f"(`zoo list` shows every registered name{hub})")
    return _MODELS[name]


def list_models(pattern: str | None = None, family: str | None = None) -> list[str]:
    """Registered model names, sorted; `pattern` is a shell-style wildcard (``"onedpiece-*"``)."""
    _load_builtins()
    names = sorted(_MODELS)
    if family is not None:
        names = [n for n in names if _MODELS[n].family == family]
    if pattern is not None:
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    return names
