"""Errors the zoo raises. Each says what was wrong and what to do; the CLI prints them as one line."""
from __future__ import annotations

import difflib
from typing import Iterable


class ZooError(Exception):
    """Base class of every error raised on purpose by the zoo."""


class InputError(ZooError, ValueError):
    """Bad user input: an image batch, a Codes object, an argument."""


class UnknownModelError(ZooError, KeyError):
    """A model or family name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(ZooError, ValueError):
    """A config with an unknown key, a wrong type or an impossible value."""


class CheckpointError(ZooError, RuntimeError):
    """A checkpoint that does not fit: missing, unexpected or mis-shaped keys, a corrupt file."""


class PrecisionError(ZooError, RuntimeError):
    """Reduced-precision inference that left the number range (fp16 overflow: non-finite outputs)."""


class OfflineError(ZooError, RuntimeError):
    """A file that must come from the network while the network (or the hub) cannot be reached."""


def closest(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """The registered names nearest to `name`, best first (for 'did you mean' messages)."""
    candidates = list(candidates)
    found = difflib.get_close_matches(name, candidates, n=n, cutoff=0.4)
    if not found:  # substring matches help with prefixes such as "onedpiece"
        found = [c for c in candidates if name.lower() in c.lower()][:n]
    return found


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    near = closest(name, candidates)
    return f" Did you mean: {', '.join(near)}?" if near else ""


class MissingExtraError(ZooError, ImportError):
    """An optional dependency that is not installed; the message names the extra that brings it."""
