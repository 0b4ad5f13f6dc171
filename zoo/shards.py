"""Shard patterns, shared by training and evaluation: brace expansion and splitting shards between readers.

``shards-{000..009}.tar`` means exactly the ten names 000 to 009 (the webdataset / bash convention), never a
glob: ``010`` or ``123`` lying next to them are not part of it, and a name of the range that is not on disk is
reported as missing instead of being skipped silently.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence, TypeVar

T = TypeVar("T")


def expand_braces(pattern: str) -> list[str]:
    """``a/{000..003}.tar`` -> 4 paths (zero padding kept); ``{a,b}`` alternatives too; no braces -> [pattern]."""
    m = re.search(r"\{([^{}]+)\}", pattern)
    if not m:
        return [pattern]
    body, head, tail = m.group(1), pattern[:m.start()], pattern[m.end():]
    rng = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if rng:
        lo, hi = rng.group(1), rng.group(2)
        width = len(lo) if lo.startswith("0") else 0
        options = [str(v).zfill(width) for v in range(int(lo), int(hi) + 1)]
    else:
        options = body.split(",")
    return [p for opt in options for p in expand_braces(head + opt + tail)]


def existing_and_missing(patterns: Sequence[str]) -> tuple[list[str], list[str]]:
    """Brace-expand every pattern: (names that are files, in order; names of the ranges that are not on disk)."""
    names = [name for pattern in patterns for name in expand_braces(pattern)]
    return [n for n in names if Path(n).is_file()], [n for n in names if not Path(n).is_file()]


def share(items: Sequence[T], slot: int, slots: int) -> list[T]:
    """Reader `slot` of `slots` (rank * workers + worker of world * workers) takes items slot, slot+slots, ...:
    disjoint shares whose union is every item."""
    return list(items[slot::slots])
