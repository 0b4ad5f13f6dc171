"""Named generators: what was released, where, which tokenizer it pairs with, its sampler and its gFID."""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import UnknownModelError, did_you_mean
from ..registry import Metric


@dataclass(frozen=True)
class GeneratorEntry:
    """A released (or user-registered) generator.

    config: our `MaskGITConfig` fields; sampling: the published sampler settings (the defaults of `sample`);
    tokenizer: the registered tokenizer whose codes it models; hub_repo/hub_file: the official weights.
    """

    name: str
    family: str
    config: Mapping[str, Any]
    sampling: Mapping[str, Any]
    tokenizer: str
    description: str = ""
    hub_repo: str | None = None
    hub_file: str | None = None
    hub_revision: str | None = None
    url: str | None = None
    metrics: tuple[Metric, ...] = ()
    license: str = ""
    paper: str = ""
    code: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


_GENERATORS: dict[str, GeneratorEntry] = {}


def register_generator(entry: GeneratorEntry, overwrite: bool = False) -> GeneratorEntry:
    if entry.name in _GENERATORS and not overwrite:
        raise ValueError(f"generator {entry.name!r} is already registered (pass overwrite=True to replace it)")
    _GENERATORS[entry.name] = entry
    return entry


def _builtins() -> None:
    from . import released  # noqa: F401  (registers the released generators on first use)


def get_generator_entry(name: str) -> GeneratorEntry:
    _builtins()
    if name not in _GENERATORS:
        raise UnknownModelError(f"unknown generator {name!r}.{did_you_mean(name, _GENERATORS)} "
                                "(`zoo generate --list` shows every registered generator)")
    return _GENERATORS[name]


def list_generators(pattern: str | None = None) -> list[str]:
    _builtins()
    names = sorted(_GENERATORS)
    return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]
