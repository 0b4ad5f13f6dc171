"""Training data: image folders, scikit-image photos, local webdataset shards, Hugging Face datasets.

Every source becomes a list of items and a `read(i) -> PIL RGB image`. The order and the random crops are pure
functions of (seed, sample number): sample n of the run is item ``perm_e[n % N]`` of epoch ``e = n // N``, cropped
with a generator seeded by (seed, n). So the data position is one integer (samples consumed), a resumed run sees
exactly the samples it would have seen, and each process of a distributed run takes its own slice of every global
batch without a distributed sampler.
"""
from __future__ import annotations

import fnmatch
import itertools
import logging
import json
import tarfile
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..errors import ConfigError, InputError
from ..images import decode_image, list_image_files, pil_to_rgb, skimage_photo, skimage_photo_names
from ..shards import expand_braces
from .recipe import DataConfig

log = logging.getLogger(__name__)


# Captions of the bundled photos, for CLIP-style recipes that run offline.
_SKIMAGE_CAPTIONS = {
    "astronaut": "a portrait photo of an astronaut in front of a flag",
    "coffee": "a cup of coffee on a saucer",
    "chelsea": "a photo of a ginger cat",
    "rocket": "a rocket on a launch pad",
    "immunohistochemistry": "a microscope image of stained tissue",
    "retina": "a photo of a human retina",
    "hubble_deep_field": "galaxies in deep space",
    "cat": "a photo of a cat",
    "motorcycle_left": "a motorcycle in a workshop",
    "motorcycle_right": "a motorcycle in a workshop",
}


# ---------------------------------------------------------------------------------------------------------------
# Sources: items + reader
# ---------------------------------------------------------------------------------------------------------------
class ImageSource:
    """A list of named items, a function that reads item i as a PIL RGB image, and optionally its caption."""

    def __init__(self, names: list[str], reader: Callable[[int], Image.Image],
                 captioner: Callable[[int], str] | None = None) -> None:
        if not names:
            raise ConfigError("recipe.data: no training images left (check data.paths and data.exclude)")
        self.names, self._reader, self._captioner = names, reader, captioner

    def __len__(self) -> int:
        return len(self.names)

    def read(self, i: int) -> Image.Image:
        return self._reader(i)

    def caption(self, i: int) -> str:
        if self._captioner is None:
            raise ConfigError("recipe.data.captions is set but this data source has no captions")
        return self._captioner(i)


def _excluded(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(Path(name).name, p) for p in patterns)


def image_source(cfg: DataConfig) -> ImageSource:
    if cfg.source == "images":
        return _files_source(cfg)
    if cfg.source == "webdataset":
        return _webdataset_source(cfg)
    return _hf_source(cfg)


def _files_source(cfg: DataConfig) -> ImageSource:
    entries: list[tuple[str, Any]] = []
    for p in cfg.paths:
        if p.startswith("skimage:"):
            entries.append((p, p.split(":", 1)[1]))
            continue
        try:
            files = list_image_files([p])
        except InputError as exc:
            raise ConfigError(f"recipe.data.paths: {exc}") from None
        entries.extend((str(f), f) for f in files)
    entries = [(n, v) for n, v in entries if not _excluded(n, cfg.exclude)]

    def read(i: int) -> Image.Image:
        value = entries[i][1]
        if isinstance(value, str):
            return Image.fromarray(skimage_photo(value))
        # JPEG: decode at a reduced scale (fast), never below the largest shorter side a crop may need
        need = max(cfg.crop_size, *(cfg.resize_range or ()), cfg.cache_shorter or 0)
        img = decode_image(value, draft=need)
        return pil_to_rgb(img if img.mode != "P" else img.convert("RGBA"))

    captioner = None
    if cfg.captions:
        captions = []
        for name, value in entries:
            if isinstance(value, str):
                captions.append(_SKIMAGE_CAPTIONS.get(value, f"a photo of {value.replace('_', ' ')}"))
                continue
            sidecar = Path(value).with_suffix(".txt")
            if not sidecar.is_file():
                raise ConfigError(f"recipe.data.captions: {value} has no caption file {sidecar} (one UTF-8 "
                                  "<stem>.txt next to each image)")
            captions.append(sidecar.read_text(encoding="utf-8").strip())
        captioner = captions.__getitem__
    return ImageSource([n for n, _ in entries], read, captioner)


def _webdataset_source(cfg: DataConfig) -> ImageSource:
    """Local tar shards in the webdataset layout (``key.jpg``, ``key.json``, ...): one item per image member."""
    members: list[tuple[str, str]] = []
    texts: dict[tuple[str, str], str] = {}  # (shard, sample key) -> caption member
    suffixes = tuple("." + k.lower() for k in cfg.webdataset_image_keys)
    for pattern in cfg.paths:
        for shard in expand_braces(pattern):
            try:
                with tarfile.open(shard) as tar:
                    for m in tar.getmembers():
                        if not m.isfile():
                            continue
                        if m.name.lower().endswith(suffixes):
                            members.append((shard, m.name))
                        elif cfg.captions and m.name.lower().endswith((".txt", ".json")):
                            key = (shard, _sample_key(m.name))
                            if m.name.lower().endswith(".txt") or key not in texts:
                                texts[key] = m.name
            except (tarfile.TarError, OSError) as exc:
                raise ConfigError(f"recipe.data.paths: cannot read shard {shard}: {exc}") from None
    members = [m for m in members if not _excluded(f"{m[0]}/{m[1]}", cfg.exclude)]
    if cfg.captions:
        missing = [f"{s}/{n}" for s, n in members if (s, _sample_key(n)) not in texts]
        if missing:
            raise ConfigError(f"recipe.data.captions: {len(missing)} image(s) have no .txt/.json caption in their "
                              f"webdataset sample, e.g. {missing[0]}")
    handles: dict[str, tarfile.TarFile] = {}

    def read(i: int) -> Image.Image:
        shard, name = members[i]
        tar = handles.get(shard)
        if tar is None:
            tar = handles[shard] = tarfile.open(shard)
        try:
            data = tar.extractfile(name).read()
        except (tarfile.TarError, OSError, AttributeError) as exc:
            raise InputError(f"cannot read {shard}/{name}: {exc}") from None
        return pil_to_rgb(decode_image(data, what=f"{shard}/{name}"))

    def caption(i: int) -> str:
        shard, name = members[i]
        member = texts[(shard, _sample_key(name))]
        tar = handles.get(shard)
        if tar is None:
            tar = handles[shard] = tarfile.open(shard)
        raw = tar.extractfile(member).read().decode("utf-8")
        if member.lower().endswith(".txt"):
            return raw.strip()
        meta = json.loads(raw)
        for key in ("caption", "text", "txt"):
            if isinstance(meta.get(key), str):
                return meta[key].strip()
        raise InputError(f"{shard}/{member} has no 'caption' or 'text' string field")

    return ImageSource([f"{s}/{n}" for s, n in members], read, caption if cfg.captions else None)


def _sample_key(member: str) -> str:
    """webdataset's sample key: the member name up to the first dot of its last path component."""
    head, _, base = member.rpartition("/")
    return f"{head}/{base.split('.', 1)[0]}" if head else base.split(".", 1)[0]


def _hf_source(cfg: DataConfig) -> ImageSource:
    try:
        import datasets  # noqa: F401
    except ImportError:
        raise ConfigError("recipe.data.source is 'hf' but the `datasets` package is not installed: "
                          "pip install datasets (or use source: images with a folder)") from None
    name = cfg.paths[0]
    try:
        if Path(name).is_dir():
            ds = datasets.load_from_disk(name)
            ds = ds[cfg.hf_split] if isinstance(ds, datasets.DatasetDict) else ds
        else:
            ds = datasets.load_dataset(name, split=cfg.hf_split)
    except Exception as exc:  # offline, unknown name, missing split
        raise ConfigError(f"recipe.data.paths[0]: cannot open Hugging Face dataset {name!r} "
                          f"(split {cfg.hf_split!r}): {exc}") from None
    if cfg.hf_image_key not in ds.column_names:
        raise ConfigError(f"recipe.data.hf_image_key: {cfg.hf_image_key!r} is not a column of {name!r}; "
                          f"columns: {ds.column_names}")

    if cfg.captions and cfg.hf_text_key not in ds.column_names:
        raise ConfigError(f"recipe.data.hf_text_key: {cfg.hf_text_key!r} is not a column of {name!r}; "
                          f"columns: {ds.column_names}")

    def read(i: int) -> Image.Image:
        try:
            img = ds[i][cfg.hf_image_key]
            return pil_to_rgb(img if isinstance(img, Image.Image) else Image.fromarray(np.asarray(img)))
        except InputError:
            raise
        except Exception as exc:  # a corrupt row: the datasets decoder raises what PIL raises
            raise InputError(f"cannot read {name}[{i}]: {' '.join(str(exc).split())}") from None

    def caption(i: int) -> str:
        return str(ds[i][cfg.hf_text_key])

    return ImageSource([f"{name}[{i}]" for i in range(len(ds))], read, caption if cfg.captions else None)


# ---------------------------------------------------------------------------------------------------------------
# Crops
# ---------------------------------------------------------------------------------------------------------------
def _shrink(img: Image.Image, shorter: int) -> Image.Image:
    w, h = img.size
    if min(w, h) <= shorter:
        return img
    s = shorter / min(w, h)
    return img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BICUBIC, reducing_gap=3.0)


def make_crop(img: Image.Image, cfg: DataConfig, gen: torch.Generator) -> Tensor:
    """One training crop ``[3, S, S]`` float in [0, 1] (S = crop_size), drawn with `gen`."""
    S = cfg.crop_size
    w, h = img.size
    if cfg.random_crop:
        lo, hi = cfg.resize_range or (S, S)
        target = int(torch.randint(lo, hi + 1, (1,), generator=gen))
        target = max(S, min(target, max(S, min(w, h))))  # no upscaling beyond what the crop needs
    else:
        target = S
    s = target / min(w, h)
    nw, nh = max(S, round(w * s)), max(S, round(h * s))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.BICUBIC, reducing_gap=3.0 if s < 1 else None)
    if cfg.random_crop:
        top = int(torch.randint(0, nh - S + 1, (1,), generator=gen))
        left = int(torch.randint(0, nw - S + 1, (1,), generator=gen))
    else:
        top, left = (nh - S) // 2, (nw - S) // 2
    x = torch.from_numpy(np.asarray(img.crop((left, top, left + S, top + S)), dtype=np.uint8).copy())
    x = x.permute(2, 0, 1).float().div_(255.0)
    if cfg.flip and bool(torch.rand((), generator=gen) < 0.5):
        x = x.flip(-1)
    if cfg.permute_channels:
        x = x[torch.randperm(3, generator=gen)]
    if cfg.saturation is not None:
        lo, hi = cfg.saturation
        factor = lo + (hi - lo) * float(torch.rand((), generator=gen))
        x = scale_saturation(x, factor)
    return x


LUMA_BT601 = (0.299, 0.587, 0.114)


def scale_saturation(x: Tensor, factor: float) -> Tensor:
    """``[3, H, W]`` in [0, 1] with its chroma scaled by `factor` about each pixel's BT.601 luma, clipped to [0, 1]
    (factor 0: grey, 1: unchanged; PIL's ImageEnhance.Color does the same)."""
    luma = torch.tensordot(torch.tensor(LUMA_BT601, dtype=x.dtype), x, dims=1)
    return (luma + factor * (x - luma)).clamp_(0, 1)


class CropDataset(torch.utils.data.Dataset):
    """Sample number n -> a crop ``[3, S, S]``; a pure function of (seed, n) (see the module docstring)."""

    def __init__(self, source: ImageSource, cfg: DataConfig, seed: int) -> None:
        self.source, self.cfg, self.seed = source, cfg, seed
        self._cache: dict[int, Image.Image] = {}
        self._perms: dict[int, list[int]] = {}
        self.skipped: set[int] = set()  # items that could not be read (see `readable_image`)

    def __len__(self) -> int:  # the sample stream is endless; DataLoader only needs indexing
        return 2 ** 62

    def item_of(self, n: int) -> int:
        N = len(self.source)
        epoch, k = divmod(n, N)
        perm = self._perms.get(epoch)
        if perm is None:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            perm = self._perms[epoch] = torch.randperm(N, generator=g).tolist()
            if len(self._perms) > 2:
                self._perms.pop(min(self._perms))
        return perm[k]

    def image(self, i: int) -> Image.Image:
        if self.cfg.cache_shorter is None:
            return self.source.read(i)
        img = self._cache.get(i)
        if img is None:
            img = self._cache[i] = _shrink(self.source.read(i), self.cfg.cache_shorter)
        return img

    def readable_image(self, i: int) -> tuple[int, Image.Image]:
        """Item i's image, or, when it cannot be read (corrupt, truncated, too large: the same bad-image policy as
        ``zoo eval``), the next readable item's: the bad one is skipped, counted in `skipped` (this process)
        and reported once on stderr. Deterministic, so a resumed run reads exactly what it would have read."""
        N = len(self.source)
        for k in range(N):
            j = (i + k) % N
            if j in self.skipped:
                continue
            try:
                return j, self.image(j)
            except InputError as exc:
                self.skipped.add(j)
                log.warning("skipping an unreadable training image (%d so far): %s", len(self.skipped), exc)
        raise InputError(f"none of the {N} training images can be read")

    def __getitem__(self, n: int) -> Tensor | tuple[Tensor, str]:
        """The crop ``[3, S, S]``; with ``captions``, ``(crop, caption)`` (batches: ``[B, 3, S, S]``, B strings)."""
        gen = torch.Generator().manual_seed((self.seed + 1) * 7_919_000_001 + n)
        i, img = self.readable_image(self.item_of(n))
        crop = make_crop(img, self.cfg, gen)
        return (crop, self.source.caption(i)) if self.cfg.captions else crop


class SampleStream:
    """Global batches of a run: process `rank` of `world` takes its slice of each batch of ``B * world`` samples.

    `position` is the number of samples consumed by all processes so far (saved in checkpoints).
    """

    def __init__(self, dataset: CropDataset, batch_size: int, rank: int = 0, world: int = 1,
                 num_workers: int = 0, position: int = 0) -> None:
        self.dataset, self.batch_size, self.rank, self.world = dataset, batch_size, rank, world
        self.num_workers, self.position = num_workers, position
        self._iter: Iterator[Tensor] | None = None

    def _indices(self, start: int) -> Iterator[int]:
        B, W = self.batch_size, self.world
        for step in itertools.count():
            base = start + step * B * W + self.rank * B
            yield from range(base, base + B)

    def _loader(self) -> Iterator[Tensor]:
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_size=self.batch_size, sampler=self._indices(self.position),
            num_workers=self.num_workers, persistent_workers=False, drop_last=False,
            generator=torch.Generator(),  # its own: creating the iterator must not draw from the global RNG
        )
        return iter(loader)

    def next(self) -> Tensor | list:
        """The next batch of this process: ``[B, 3, S, S]``, or ``[images, captions]`` with data.captions."""
        if self._iter is None:
            self._iter = self._loader()
        batch = next(self._iter)
        self.position += self.batch_size * self.world
        return batch

    def state_dict(self) -> dict[str, int]:
        return {"position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.position = int(state["position"])
        self._iter = None  # restart the loader at the restored position


def build_stream(cfg: DataConfig, seed: int, rank: int = 0, world: int = 1) -> SampleStream:
    source = image_source(cfg)
    return SampleStream(CropDataset(source, cfg, seed), cfg.batch_size, rank, world, cfg.num_workers)


def center_crops(paths_or_names: list[str], size: int) -> Tensor:
    """Evaluation crops (the zoo protocol: shorter side bicubic+antialias, centre crop) of files or skimage names."""
    from ..images import load_images

    images = [skimage_photo(p.split(":", 1)[1]) if p.startswith("skimage:") else p for p in paths_or_names]
    return load_images(images, size=size)


__all__ = ["ImageSource", "CropDataset", "SampleStream", "build_stream", "image_source", "make_crop",
           "expand_braces", "skimage_photo", "skimage_photo_names", "center_crops"]
