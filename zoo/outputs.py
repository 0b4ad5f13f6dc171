"""Where commands write, checked before any work starts; output names that never collide; option value types.

Every command that writes goes through `output_dir` (a folder of results) or `output_file` (one file): a missing
parent is created, and an unwritable place, a file where a folder is needed (or the reverse) is an `InputError`
naming the option, so the command exits 2 with one line before it loads a model.
"""
from __future__ import annotations

import argparse
import math
import os
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

from .errors import InputError


def _writable(folder: Path, flag: str, target: Path) -> None:
    """Create and remove a probe file: permissions, read-only file systems and /proc alike (root included)."""
    import tempfile

    try:
        fd, probe = tempfile.mkstemp(prefix=".zoo-write-probe-", dir=folder)
    except OSError as exc:
        raise InputError(f"{flag} {target}: cannot write into {folder} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)


def _make_dirs(folder: Path, flag: str, target: Path) -> None:
    existing = folder
    while not existing.exists():  # the nearest existing ancestor must be a writable folder
        if existing.is_symlink():
            raise InputError(f"{flag} {target}: {existing} is a broken link")
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"{flag} {target}: {existing} is a file, not a folder")
    if existing != folder:
        _writable(existing, flag, target)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise InputError(f"{flag} {target}: {folder} exists and is not a folder") from None
    except OSError as exc:
        raise InputError(f"{flag} {target}: cannot create {folder}: {exc.strerror or exc}") from None


def output_dir(path: str | os.PathLike, flag: str = "-o") -> Path:
    """A folder to write results into: created if missing; `InputError` if it is a file or not writable."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise InputError(f"{flag} {target}: exists and is a file, not a folder (give a folder to write into)")
    _make_dirs(target, flag, target)
    _writable(target, flag, target)
    return target


def output_file(path: str | os.PathLike, flag: str = "-o") -> Path:
    """A file to write: its folder is created if missing; `InputError` if `path` is a folder or not writable."""
    target = Path(path)
    if str(path).endswith(os.sep) or target.is_dir():
        raise InputError(f"{flag} {target}: is a folder; give a file name (e.g. {target / 'codes.safetensors'})")
    _make_dirs(target.parent if str(target.parent) else Path("."), flag, target)
    _writable(target.parent if str(target.parent) else Path("."), flag, target)
    if target.exists() and not os.access(target, os.W_OK):
        raise InputError(f"{flag} {target}: the file exists and is read-only")
    return target


def unique_stems(files: Sequence[str | os.PathLike], reserved: Iterable[str] = ()) -> list[str]:
    """One output name (no suffix) per input file, all different: the file's stem when that is unique, else
    its path below the inputs' common folder with '/' as '__' (and its suffix when still needed), so
    ``a/x.png`` and ``b/x.png`` become ``a__x`` and ``b__x``. Names in `reserved` (e.g. ``grid``) get ``_1``."""
    paths = [Path(f) for f in files]
    stems = [p.stem for p in paths]
    taken = set(reserved)
    counts = Counter(stems)
    if any(counts[s] > 1 for s in stems):
        try:
            root = Path(os.path.commonpath([str(p.resolve().parent) for p in paths]))
        except ValueError:
            root = None
        names = []
        for p, s in zip(paths, stems):
            if counts[s] == 1:
                names.append(s)
                continue
            rel = p.resolve().relative_to(root) if root is not None else p
            names.append("__".join(rel.with_suffix("").parts))
        if len(set(names)) < len(names):  # same path without suffix: x.png and x.jpg
            names = [n if Counter(names)[n] == 1 else f"{n}_{p.suffix.lstrip('.')}" for n, p in zip(names, paths)]
        stems = names
    out, seen = [], set(taken)
    for s in stems:
        name, k = s, 1
        while name in seen:
            name, k = f"{s}_{k}", k + 1
        seen.add(name)
        out.append(name)
    return out


def renamed_note(files: Sequence[str | os.PathLike], names: Sequence[str]) -> str:
    """'' when every output is named after its file's stem, else a note saying how many were renamed."""
    changed = [(Path(f), n) for f, n in zip(files, names) if Path(f).stem != n]
    if not changed:
        return ""
    first = changed[0]
    return (f" ({len(changed)} renamed so that inputs with the same file name do not overwrite each other, "
            f"e.g. {first[0]} -> {first[1]}.png)")


# ---------------------------------------------------------------------------------------------------------------
# Option value types (argparse `type=`): a bad value is an argparse error (exit 2, one line)
# ---------------------------------------------------------------------------------------------------------------
def positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def nonnegative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def nonnegative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
