"""Find, verify and load the feature-extractor weights (Inception for FID, AlexNet/VGG for LPIPS) offline.

Lookup order for a known file: an explicit path, ``$ZOO_WEIGHTS_DIR/<file>``, the torch hub cache
``$TORCH_HOME/hub/checkpoints/<file>`` (where torch-fidelity, torchmetrics, pytorch-fid and torchvision put it).
A file found under its official name must match the SHA-256 prefix in that name (the torch.hub ``check_hash``
convention); a file given by explicit path may be anything in the same layout (random-weight files for tests,
converted weights) and its SHA-256 is recorded in every report. Nothing is ever downloaded here: a missing
file raises `OfflineError` naming the file, its hash and where to put it.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import CheckpointError, InputError, OfflineError


@dataclass(frozen=True)
class KnownWeights:
    """An official weights file: its file name, SHA-256 prefix and where it comes from."""

    key: str
    filename: str
    sha256_prefix: str
    url: str
    used_for: str


KNOWN: dict[str, KnownWeights] = {
    "inception": KnownWeights(
        "inception", "weights-inception-2015-12-05-6726825d.pth", "6726825d",
        "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
        "FID (TF-FID Inception-v3 pool3, torch-fidelity / torchmetrics layout)"),
    "alex": KnownWeights(
        "alex", "alexnet-owt-7be5be79.pth", "7be5be79",
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth", "LPIPS (AlexNet backbone, torchvision)"),
    "vgg": KnownWeights(
        "vgg", "vgg16-397923af.pth", "397923af",
        "https://download.pytorch.org/models/vgg16-397923af.pth", "LPIPS (VGG16 backbone, torchvision)"),
}


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _torch_home() -> Path:
    return Path(os.environ.get("TORCH_HOME") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "torch")


def search_dirs() -> list[Path]:
    """Folders searched for a known file, in order."""
    dirs = []
    if os.environ.get("ZOO_WEIGHTS_DIR"):
        dirs.append(Path(os.environ["ZOO_WEIGHTS_DIR"]))
    dirs.append(_torch_home() / "hub" / "checkpoints")
    return dirs


@dataclass(frozen=True)
class ResolvedWeights:
    path: Path
    sha256: str
    verified: bool  # True when the hash matched the official name's prefix


def resolve(key: str, path: str | os.PathLike | None = None) -> ResolvedWeights:
    """The weights file for `key` ("inception", "alex", "vgg"): explicit `path` or the caches; hashed.

    Raises `OfflineError` (missing, with what to do), `CheckpointError` (a cached file whose hash does not match).
    """
    if key not in KNOWN:
        raise InputError(f"unknown weights {key!r}; known: {', '.join(KNOWN)}")
    known = KNOWN[key]
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise InputError(f"weights file not found: {p} (needed for {known.used_for})")
        digest = sha256_file(p)
        return ResolvedWeights(p, digest, digest.startswith(known.sha256_prefix))
    for d in search_dirs():
        p = d / known.filename
        if p.is_file():
            digest = sha256_file(p)
            if not digest.startswith(known.sha256_prefix):
                raise CheckpointError(
                    f"{p} has SHA-256 {digest[:16]}..., but the official {known.filename} starts with "
                    f"{known.sha256_prefix}: the file is corrupt or not the official one. Delete it and put the "
                    f"official file there, or pass a non-official file explicitly by path (it is then reported as "
                    f"unverified)."
                )
            return ResolvedWeights(p, digest, True)
    places = " or ".join(str(d / known.filename) for d in search_dirs())
    raise OfflineError(
        f"{known.used_for} needs the weights file {known.filename} (SHA-256 starting {known.sha256_prefix}), "
        f"which is not on this machine and is never downloaded by the zoo. Download it from {known.url} on a "
        f"machine with network access and put it at {places} (or set ZOO_WEIGHTS_DIR to its folder, or pass "
        f"its path explicitly)."
    )


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A plain tensor state dict, loaded with ``weights_only=True``; anything else raises `CheckpointError`."""
    try:
        sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors, truncated zip, non-allow-listed globals
        raise CheckpointError(f"cannot load weights {path} as a plain tensor state dict: {exc}") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{path} is not a state dict of tensors")
    return sd
