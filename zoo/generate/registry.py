"""Named generators: what was released, where, which tokenizer it pairs with, its sampler and its gFID."""
from __future__ import annotations

import fnmatch

from ..errors import UnknownModelError, did_you_mean
from .entry import GeneratorEntry

__all__ = ["GeneratorEntry", "get_generator_entry", "list_generators", "register_generator"]


_GENERATORS: dict[str, GeneratorEntry] = {}
_BUILTINS_LOADED = False


def register_generator(entry: GeneratorEntry, overwrite: bool = False) -> GeneratorEntry:
    """Add a named generator (users may register their own); a released name needs ``overwrite=True``."""
    _builtins()
    if entry.name in _GENERATORS and not overwrite:
        raise ValueError(f"generator {entry.name!r} is already registered (pass overwrite=True to replace it)")
    _GENERATORS[entry.name] = entry
    return entry


def _builtins() -> None:
    """Register the released generators, once, on first use of the registry."""
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        from .released import RELEASED

        _GENERATORS.update((entry.name, entry) for entry in RELEASED)


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
