"""Perceptual losses that need pretrained weight files: LPIPS (VGG) and TiTok's ConvNeXt-S logit loss.

Nothing is downloaded: the files are looked up in an explicit path, then in the standard caches (the torch hub
checkpoint folder, the `lpips` and `torchmetrics` packages' bundled LPIPS heads); when none is found an
`OfflineError` lists where it looked and how to provide the file.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..convert.common import find_state_dict, load_file
from ..errors import CheckpointError, OfflineError

VGG16_FILE = "vgg16-397923af.pth"  # torchvision's ImageNet VGG16
CONVNEXT_SMALL_FILE = "convnext_small-0c510722.pth"  # torchvision's convnext_small IMAGENET1K_V1
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def torch_hub_checkpoints() -> Path:
    """``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch/hub/checkpoints``), where torchvision caches."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def find_weights(what: str, explicit: str | os.PathLike | None, candidates: Sequence[Path], how: str) -> Path:
    """The first existing file among `explicit` and `candidates`, else an `OfflineError` naming all of them."""
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise OfflineError(f"{what}: weight file not found: {path}")
        return path
    for path in candidates:
        if path.is_file():
            return path
    looked = ", ".join(str(p) for p in candidates) or "(no standard place)"
    raise OfflineError(f"{what} needs pretrained weights that are not on this machine (looked in: {looked}); "
                       f"nothing is downloaded by the zoo. {how}")


def _lpips_lin_candidates() -> list[Path]:
    out = []
    for module, rel in (("lpips", "weights/v0.1/vgg.pth"), ("torchmetrics.functional.image", "lpips_models/vgg.pth")):
        try:
            mod = __import__(module, fromlist=["__file__"])
        except Exception:
            continue
        out.append(Path(mod.__file__).parent / rel)
    return out + [torch_hub_checkpoints() / "lpips_vgg_v0.1.pth"]


# ---------------------------------------------------------------------------------------------------------------
class VGG16Features(nn.Module):
    """torchvision's ``vgg16().features`` (same keys, ``features.{i}``), returning the 5 LPIPS taps (relu_k_last)."""

    _CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
    TAPS = (3, 8, 15, 22, 29)  # indices of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        ch = 3
        for v in self._CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(ch, v, 3, padding=1), nn.ReLU(inplace=False)]
                ch = v
        self.features = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> list[Tensor]:
        taps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.TAPS:
                taps.append(x)
                if len(taps) == len(self.TAPS):
                    break
        return taps


class LPIPS(nn.Module):
    """LPIPS (Zhang et al., 2018), VGG variant, as the `lpips` package computes it; frozen.

    ``forward(x, y)`` with images ``[B, 3, H, W]`` in [0, 1] -> ``[B]`` distances.
    vgg: torchvision vgg16 weights (full model or features only); lin: the LPIPS heads (``lin{k}.model.1.weight``).

    Kept beside eval's torchmetrics LPIPS (zoo.eval.metrics) on purpose: the official training code of the families
    calls the `lpips` package, which normalises features as ``f / (||f|| + 1e-10)``; torchmetrics' ``_LPIPS`` uses
    ``f / sqrt(||f||² + 1e-8)``, a different loss near zero. Eval reports torchmetrics' number (what papers' tables
    compare); training reproduces the official objective.
    """

    def __init__(self, vgg: str | os.PathLike | None = None, lin: str | os.PathLike | None = None) -> None:
        super().__init__()
        with torch.device("meta"):  # no random initialisation: every weight comes from the files
            self.net = VGG16Features()
            self.lin = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in (64, 128, 256, 512, 512))
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)
        how = ("Copy torchvision's vgg16-397923af.pth into that folder, or set loss.lpips_vgg / loss.lpips_lin to "
               "files you have, or set loss.lpips: 0.")
        vgg_path = find_weights("LPIPS (VGG16 backbone)", vgg, [torch_hub_checkpoints() / VGG16_FILE], how)
        lin_path = find_weights("LPIPS (linear heads)", lin, _lpips_lin_candidates(), how)
        self._load(vgg_path, lin_path)
        self.requires_grad_(False)
        self.eval()

    def _load(self, vgg_path: Path, lin_path: Path) -> None:
        vgg = find_state_dict(load_file(vgg_path))
        feats = {k: v for k, v in vgg.items() if k.startswith("features.")}
        if not feats:  # a features-only file
            feats = {f"features.{k}": v for k, v in vgg.items()}
        try:
            self.net.load_state_dict(feats, strict=True, assign=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{vgg_path} is not a torchvision vgg16 file: {str(exc).splitlines()[0]}") from None
        lin = find_state_dict(load_file(lin_path))
        want = {f"{i}.weight": f"lin{i}.model.1.weight" for i in range(5)}
        missing = [v for v in want.values() if v not in lin]
        if missing:
            raise CheckpointError(f"{lin_path} is not an LPIPS VGG head file: missing {missing}")
        self.lin.load_state_dict({k: lin[v].float() for k, v in want.items()}, strict=True, assign=True)

    def train(self, mode: bool = True) -> "LPIPS":
        return super().train(False)  # always frozen, always eval

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        fx = self.net((x.float() * 2 - 1 - self.shift) / self.scale)
        fy = self.net((y.float() * 2 - 1 - self.shift) / self.scale)
        total = 0.0
        for lin, a, b in zip(self.lin, fx, fy):
            a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + lin((a - b).pow(2)).mean(dim=(2, 3))
        return total.flatten()


class ConvNeXtLogitLoss(nn.Module):
    """TiTok's "perceptual" term: MSE between torchvision ``convnext_small`` logits of the two images (frozen).

    Both are resized to 224 (bilinear, antialias) and ImageNet-normalised first. ``forward -> scalar``.
    """

    def __init__(self, weights: str | os.PathLike | None = None) -> None:
        super().__init__()
        from torchvision.models import convnext_small

        path = find_weights("ConvNeXt-S perceptual loss", weights, [torch_hub_checkpoints() / CONVNEXT_SMALL_FILE],
                            "Copy torchvision's convnext_small-0c510722.pth there, set loss.convnext_weights, or "
                            "set loss.convnext: 0.")
        self.net = convnext_small(weights=None)
        try:
            self.net.load_state_dict(find_state_dict(load_file(path)), strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{path} is not a torchvision convnext_small file: "
                                  f"{str(exc).splitlines()[0]}") from None
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "ConvNeXtLogitLoss":
        return super().train(False)

    def _logits(self, x: Tensor) -> Tensor:
        x = F.interpolate(x.float(), size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
        return self.net((x - self.mean) / self.std)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return F.mse_loss(self._logits(x), self._logits(y))
