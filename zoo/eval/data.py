"""Evaluation data, streamed: image folders (recursive), file lists, webdataset tar shards, Hugging Face datasets.

Every source yields ``(key, image)`` items; `loader` turns them into batches of uint8 crops ``[b, 3, S, S]``
(the protocol's crop, then rounding to uint8, so originals and reconstructions are quantised the same way).
Memory is constant in the number of images: only file names (folders, lists) or nothing (tars, datasets) is
held. Corrupt images are skipped and counted, or raise, by `on_error`.
"""
from __future__ import annotations

import glob
import logging
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ..errors import InputError
from ..images import IMAGE_SUFFIXES, decode_image, list_image_files, prepare, to_tensor, to_uint8
from ..read_ahead import read_ahead
from ..shards import existing_and_missing, share

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataSpec:
    """Where the images are. kind: "files" (folders / lists of files), "tar" (shards) or "hf" (datasets).

    missing: names of a shard range (``{000..009}``) that are not on disk (reported, not read).
    """

    kind: str
    items: tuple[str, ...]
    split: str = "validation"
    column: str | None = None
    missing: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"{self.kind}:{','.join(self.items)}" + (f"[{self.split}]" if self.kind == "hf" else "")


def parse_data(paths: str | Sequence[str]) -> DataSpec:
    """``folder/``, ``list.txt`` (one path a line), ``shards-{000..009}.tar`` (exactly those names: brace ranges
    are expanded, not globbed) or ``*.tar`` globs, ``hf:NAME[:SPLIT]`` or a folder written by
    ``datasets.save_to_disk`` -> a `DataSpec`. Shards of a range that are not on disk are named in a warning and
    in `DataSpec.missing`; none at all is an error."""
    if isinstance(paths, str):
        paths = [paths]
    paths = [str(p) for p in paths]
    if not paths:
        raise InputError("no data given")
    if len(paths) == 1 and paths[0].startswith("hf:"):
        _, name, *rest = paths[0].split(":")
        return DataSpec("hf", (name,), rest[0] if rest else "validation")
    if len(paths) == 1 and _saved_to_disk(Path(paths[0])):
        return DataSpec("hf", (paths[0],), "validation")
    expanded: list[str] = []
    missing: list[str] = []
    for p in paths:
        if "{" in p:
            found, absent = existing_and_missing([p])
            missing.extend(absent)
            matches = found
        else:
            matches = sorted(glob.glob(p)) if any(c in p for c in "*?[") else [p]
        if not matches:
            raise InputError(f"no files match {p}" + (f" (none of {len(missing)} names exists)" if missing else ""))
        expanded.extend(matches)
    if all(p.endswith(".tar") for p in expanded):
        for p in expanded:
            if not Path(p).is_file():
                raise InputError(f"tar shard not found: {p}")
        if missing:
            log.warning("%d shard(s) of the pattern are not on disk and are skipped: %s", len(missing),
                        ", ".join(missing))
        return DataSpec("tar", tuple(expanded), missing=tuple(missing))
    files: list[str] = []
    for p in expanded:
        if p.endswith(".txt") and Path(p).is_file():
            base = Path(p).parent
            for line in Path(p).read_text().splitlines():
                if line.strip():
                    q = Path(line.strip())
                    files.append(str(q if q.is_absolute() else base / q))
        else:
            files.extend(str(f) for f in list_image_files([p]))
    if not files:
        raise InputError("no image files found in " + ", ".join(paths))
    return DataSpec("files", tuple(files))


# --------------------------------------------------------------------------------------------------------------
class ImageStream(IterableDataset):
    """Items ``(key, uint8 [3, S, S] or None)`` of this process's shard (rank::world) and this worker's part.

    None marks a corrupt or unreadable image (counted by the loader; raised when ``on_error="fail"``).
    """

    def __init__(self, spec: DataSpec, size: int, crop: str = "center", on_error: str = "skip",
                 rank: int = 0, world: int = 1, limit: int | None = None) -> None:
        if on_error not in ("skip", "fail"):
            raise InputError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
        self.spec, self.size, self.crop, self.on_error = spec, size, crop, on_error
        self.rank, self.world, self.limit = rank, world, limit

    def _raw(self) -> Iterator[tuple[str, Callable[[], Any]]]:
        """(key, reader of the path / bytes / PIL image) in a fixed global order; a reader reads only when called."""
        if self.spec.kind == "files":
            for f in self.spec.items:
                yield f, lambda f=f: f
        elif self.spec.kind == "tar":
            for shard in self.spec.items:
                yield from _tar_members(shard)
        else:
            for key, value in _hf_items(self.spec):
                yield key, lambda value=value: value

    def __iter__(self) -> Iterator[tuple[str, Tensor | None]]:
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        slot, slots = self.rank * nw + wid, self.world * nw
        if self.spec.kind == "tar" and self.limit is None and len(self.spec.items) >= slots:
            # whole shards per reader: each process / worker opens only its own shards
            for shard in share(self.spec.items, slot, slots):
                for key, read in _tar_members(shard):
                    yield key, self._decode(key, read())
            return
        for i, (key, read) in enumerate(self._raw()):
            if self.limit is not None and i >= self.limit:
                break
            j = i - self.rank
            if j % self.world or (j // self.world) % nw != wid:
                continue
            yield key, self._decode(key, read())

    def _decode(self, key: str, raw: Any) -> Tensor | None:
        try:
            if isinstance(raw, bytes):
                raw = decode_image(raw, what=key)
            img = to_tensor(raw)
            return to_uint8(prepare(img, self.size, self.crop))
        except (InputError, OSError, SyntaxError, ValueError, MemoryError, Image.DecompressionBombError) as exc:
            if self.on_error == "fail":
                raise InputError(f"cannot read image {key}: {exc} (use --on-error skip to skip corrupt images)") \
                    from None
            return None


def _tar_members(shard: str) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """(key, reader of the bytes) of every image member of one tar shard, in the archive's order."""
    with tarfile.open(shard) as tar:
        for member in tar:
            if member.isfile() and Path(member.name).suffix.lower() in IMAGE_SUFFIXES:
                yield f"{shard}/{member.name}", lambda member=member: tar.extractfile(member).read()
def _saved_to_disk(path: Path) -> bool:
    """A folder written by ``datasets``' ``save_to_disk`` (a Dataset or a DatasetDict); other folders (parquet,
    image folders) are loaded by name with ``load_dataset``."""
    return path.is_dir() and any((path / f).exists() for f in ("dataset_info.json", "state.json",
                                                              "dataset_dict.json"))


def _hf_items(spec: DataSpec) -> Iterator[tuple[str, Any]]:
    try:
        import datasets
    except ImportError:
        raise InputError("Hugging Face datasets input needs `pip install datasets`") from None
    name = spec.items[0]
    if _saved_to_disk(Path(name)):
        ds = datasets.load_from_disk(name)
        if isinstance(ds, datasets.DatasetDict):
            if spec.split not in ds:
                raise InputError(f"{name} has splits {list(ds)}, not {spec.split!r}")
            ds = ds[spec.split]
    else:
        ds = datasets.load_dataset(name, split=spec.split, streaming=True)
    column = spec.column
    for i, row in enumerate(ds):
        if column is None:
            column = next((k for k, v in row.items() if isinstance(v, Image.Image)), None) or \
                next((k for k in ("image", "img") if k in row), None)
            if column is None:
                raise InputError(f"no image column in {name} (columns: {list(row)})")
        yield f"{name}[{i}]", row[column]


def _collate(items: list[tuple[str, Tensor | None]]) -> tuple[list[str], Tensor | None, int]:
    good = [(k, x) for k, x in items if x is not None]
    skipped = len(items) - len(good)
    if not good:
        return [], None, skipped
    return [k for k, _ in good], torch.stack([x for _, x in good]), skipped


class Batches:
    """Iterate ``(keys, uint8 [b, 3, S, S])``; `skipped` counts corrupt images seen so far (this process).

    With `num_workers` processes the DataLoader reads ahead (4 batches per worker); without, a background thread
    reads up to `ahead` batches ahead (0: none, each batch is read when the loop asks for it).
    """

    def __init__(self, stream: ImageStream, batch_size: int, num_workers: int = 0, pin_memory: bool = False,
                 ahead: int = 2) -> None:
        self.loader = DataLoader(stream, batch_size=batch_size, num_workers=num_workers, collate_fn=_collate,
                                 pin_memory=pin_memory, prefetch_factor=4 if num_workers else None,
                                 persistent_workers=False)
        self.ahead = 0 if num_workers else ahead
        self.skipped = 0

    def __iter__(self) -> Iterator[tuple[list[str], Tensor]]:
        for keys, batch, skipped in (read_ahead(self.loader, self.ahead) if self.ahead else self.loader):
            self.skipped += skipped
            if batch is not None:
                yield keys, batch


def loader(data: str | Sequence[str] | DataSpec, size: int, batch_size: int = 16, crop: str = "center",
           on_error: str = "skip", rank: int = 0, world: int = 1, limit: int | None = None,
           num_workers: int = 0, pin_memory: bool = False, ahead: int = 2) -> Batches:
    """Batches of this process's share of the data, cropped to `size` with `crop`, as uint8; `num_workers`
    processes (else a thread, `ahead` batches) read ahead while the model runs (`pin_memory`: page-locked, for
    fast copies to a GPU)."""
    spec = data if isinstance(data, DataSpec) else parse_data(data)
    return Batches(ImageStream(spec, size, crop, on_error, rank, world, limit), batch_size, num_workers, pin_memory,
                   ahead)
