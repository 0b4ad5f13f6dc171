"""Pre-tokenization: encode a dataset's crops once with a tokenizer, keep (codes, class labels) on disk.

The cache file is safetensors: ``indices`` int64 ``[N, T, G]``, ``labels`` int64 ``[N]``, and metadata (codebook
sizes, grid, tokenizer name, class names). Its name is a hash of everything that determines it (tokenizer weights
digest, data config, crops per image, seed), so a second run with the same settings reads it instead of encoding.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from ..api import Codes, Tokenizer
from ..errors import ConfigError, InputError


def class_of(names: list[str], paths: list[str]) -> list[int]:
    """The class of each image: the index of the `paths` entry (a folder, a file, or ``skimage:NAME``) it came
    from, so ``paths: [cats/, dogs/]`` gives classes 0 and 1."""
    roots = [p if p.startswith("skimage:") else str(Path(p).resolve()) for p in paths]
    out = []
    for name in names:
        full = name if name.startswith("skimage:") else str(Path(name).resolve())
        for c, root in enumerate(roots):
            if full == root or full.startswith(root.rstrip(os.sep) + os.sep):
                out.append(c)
                break
        else:
            raise ConfigError(f"cannot tell the class of {name}: it is under none of data.paths")
    return out


def _digest(tokenizer: Tokenizer, settings: dict[str, Any]) -> str:
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for k, v in sorted(tokenizer.state_dict().items()):  # the tokenizer's weights decide the codes
        h.update(k.encode())
        h.update(v.detach().cpu().float().numpy().tobytes()[:4096])
        h.update(str(float(v.float().sum())).encode())
    return h.hexdigest()[:16]


def save_code_cache(path: Path, codes: Codes, labels: Tensor, meta: dict[str, Any]) -> Path:
    from safetensors.torch import save_file


    info = {"codebook_sizes": list(codes.codebook_sizes or ()), "grid": codes.grid, "model": codes.model, **meta}
    from ..atomic import atomic_file

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        save_file({"indices": codes.indices.contiguous(), "labels": labels.long().contiguous()}, str(tmp),
                  metadata={"zoo": json.dumps(info)})
    return path


def load_code_cache(path: str | os.PathLike) -> tuple[Codes, Tensor, dict[str, Any]]:
    """(codes ``[N, T, G]``, labels ``[N]``, metadata) of a cache file."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise InputError(f"code cache not found: {path}")
    with safe_open(str(path), "pt") as fh:
        meta = json.loads(fh.metadata()["zoo"])
        indices, labels = fh.get_tensor("indices"), fh.get_tensor("labels")
    codes = Codes(indices, grid=meta.get("grid"), codebook_sizes=tuple(meta["codebook_sizes"]), model=meta.get("model"))
    return codes, labels, meta


def build_code_cache(tokenizer: Tokenizer, data: Any, cache_dir: str | os.PathLike, crops_per_image: int = 1,
                     seed: int = 0, batch_size: int = 8,
                     progress: Callable[[int, int], None] | None = None) -> Path:
    """Encode ``crops_per_image`` crops of every image of `data` (a `zoo.train.recipe.DataConfig`) once.

    Returns the cache file path (reused when it already exists for the same tokenizer, data and seed).
    """
    from dataclasses import asdict

    from ..train.data import CropDataset, image_source

    if data.crop_size != tokenizer.spec.image_size:
        raise ConfigError(f"data.crop_size {data.crop_size} differs from the tokenizer's image size "
                          f"{tokenizer.spec.image_size}")
    settings = {"data": asdict(data), "crops_per_image": crops_per_image, "seed": seed,
                "tokenizer": getattr(tokenizer, "name", None) or tokenizer.family}
    path = Path(cache_dir) / f"codes-{_digest(tokenizer, settings)}.safetensors"
    if path.is_file():
        return path
    source = image_source(data)
    dataset = CropDataset(source, data, seed)
    class_ids = class_of(source.names, list(data.paths))
    total = crops_per_image * len(source)
    parts, labels = [], []
    for start in range(0, total, batch_size):
        ns = range(start, min(total, start + batch_size))
        images = torch.stack([dataset[n] for n in ns])
        labels.extend(class_ids[dataset.item_of(n)] for n in ns)
        parts.append(tokenizer.encode(images.to(tokenizer.device)).to("cpu"))
        if progress:
            progress(min(total, start + batch_size), total)
    codes = Codes.cat(parts)
    if codes.lengths is not None:
        raise InputError("the code cache holds fixed-length codes: encode variable-length tokenizers at one budget")
    return save_code_cache(path, codes, torch.tensor(labels), {"class_names": list(data.paths), **settings})
