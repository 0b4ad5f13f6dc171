"""Feature extractors for FID: the TF-FID Inception-v3 (2048-d pool3) or any module you plug in.

An extractor takes uint8 images ``[B, 3, H, W]`` (rounded pixels, any H and W) and returns float64 ``[B, d]``.
It carries `name`, `sha256` (of its weights: part of every cached statistics file) and `num_features`.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
from typing import Callable

import torch
from torch import Tensor, nn

from ..errors import CheckpointError, InputError
from .weights import load_state_dict, resolve


@contextlib.contextmanager
def _force_weights_only():
    """torch-fidelity loads its Inception file with a full unpickler; this makes that load weights-only anyway."""
    old = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TORCH_FORCE_WEIGHTS_ONLY_LOAD", None)
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = old


class FeatureExtractor(nn.Module):
    """Base: uint8 ``[B, 3, H, W]`` -> float64 ``[B, d]``."""

    name: str = "custom"
    sha256: str = ""
    num_features: int = 0
    verified: bool = False

    def describe(self) -> dict:
        return {"name": self.name, "sha256": self.sha256, "num_features": self.num_features,
                "verified": self.verified}


class InceptionExtractor(FeatureExtractor):
    """TF-FID Inception-v3 pool3 features through torchmetrics' `NoTrainInceptionV3` with ``antialias=False``.

    ``antialias=False`` selects torch-fidelity's TF1-exact bilinear resize to 299 (torchmetrics >= 1.8 defaults
    to a torch antialiased resize that differs by up to 33 grey levels; see docs/eval.md).
    """

    def __init__(self, weights: str | os.PathLike | None = None) -> None:
        super().__init__()
        from ..extras import require

        require("torch_fidelity", "rFID (the TF-FID Inception-v3 of torch-fidelity)")
        from torchmetrics.image.fid import NoTrainInceptionV3

        found = resolve("inception", weights)
        load_state_dict(found.path)  # refuses anything but plain tensors before torch-fidelity touches the file
        try:
            with _force_weights_only():
                self.net = NoTrainInceptionV3("inception-v3-compat", ["2048"], str(found.path), antialias=False)
        except RuntimeError as exc:  # strict load_state_dict: missing / unexpected / mis-shaped keys
            raise CheckpointError(f"{found.path} does not have the Inception layout torch-fidelity expects: "
                                  f"{str(exc)[:300]}") from None
        self.name = "inception-v3-compat-2048"
        self.sha256 = found.sha256
        self.verified = found.verified
        self.num_features = 2048
        self.path = str(found.path)

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        _check_uint8(images)
        out = self.net(images)
        return (out[0] if isinstance(out, tuple) else out).double()


class CustomExtractor(FeatureExtractor):
    """Wrap any module mapping uint8 ``[B, 3, H, W]`` to ``[B, d]``; its hash is over its state dict."""

    def __init__(self, module: nn.Module | Callable[[Tensor], Tensor], name: str = "custom",
                 num_features: int | None = None) -> None:
        super().__init__()
        self.module = module
        self.name = name
        self.sha256 = state_dict_sha256(module) if isinstance(module, nn.Module) else name
        self.num_features = int(num_features or 0)

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        _check_uint8(images)
        out = self.module(images)
        out = out[0] if isinstance(out, tuple) else out
        if out.dim() != 2 or out.shape[0] != images.shape[0]:
            raise InputError(f"feature extractor {self.name} must return [B, d], got {tuple(out.shape)}")
        self.num_features = int(out.shape[1])
        return out.double()


def state_dict_sha256(module: nn.Module) -> str:
    """A stable hash of a module's tensors (names, shapes, values)."""
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(str(tuple(v.shape)).encode())
        h.update(v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _check_uint8(images: Tensor) -> None:
    if not isinstance(images, Tensor) or images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        got = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, Tensor) else type(images).__name__
        raise InputError(f"feature extractors take uint8 images [B, 3, H, W] (rounded pixels), got {got}; "
                         "use zoo.images.to_uint8(images)")


def build_extractor(spec: str | FeatureExtractor | nn.Module | None = None,
                    inception_weights: str | os.PathLike | None = None) -> FeatureExtractor:
    """"inception" (default) / an extractor / a module / "module.path:factory" -> a `FeatureExtractor`."""
    if isinstance(spec, FeatureExtractor):
        return spec
    if isinstance(spec, nn.Module):
        return CustomExtractor(spec, type(spec).__name__)
    if spec in (None, "inception"):
        return InceptionExtractor(inception_weights)
    if isinstance(spec, str) and ":" in spec:
        import importlib

        mod, _, attr = spec.partition(":")
        try:
            factory = getattr(importlib.import_module(mod), attr)
        except (ImportError, AttributeError) as exc:
            raise InputError(f"cannot import feature extractor {spec!r}: {exc}") from None
        made = factory()
        return made if isinstance(made, FeatureExtractor) else CustomExtractor(made, spec)
    raise InputError(f"unknown feature extractor {spec!r}: use 'inception' or 'package.module:factory'")
