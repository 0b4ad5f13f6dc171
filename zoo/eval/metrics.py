"""Per-image quality metrics on torchmetrics (PSNR, SSIM, LPIPS) and codebook usage, as mergeable sums.

All image metrics take uint8 ``[B, 3, H, W]`` pairs (originals and rounded reconstructions), so every number
is computed on the pixels that would be saved.
"""
from __future__ import annotations

import math
import os

import torch
from torch import Tensor, nn

from ..api import Codes
from ..errors import CheckpointError, InputError
from .features import _force_weights_only
from .weights import load_state_dict, resolve


def psnr(a: Tensor, b: Tensor) -> Tensor:
    """PSNR in dB per image (data range 255) between uint8 batches -> float64 ``[B]``."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    x, y = a.double(), b.double()
    out = peak_signal_noise_ratio(x, y, data_range=255.0, reduction="none", dim=(1, 2, 3))
    return out.clamp_max(100.0)  # identical images: report 100 dB instead of inf


def ssim(a: Tensor, b: Tensor) -> Tensor:
    """SSIM per image (Gaussian 11x11, sigma 1.5, on [0, 1]) between uint8 batches -> float64 ``[B]``."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    x, y = a.double() / 255, b.double() / 255
    return structural_similarity_index_measure(x, y, data_range=1.0, reduction="none").double()


class LPIPS(nn.Module):
    """torchmetrics' LPIPS (linear heads shipped in its wheel) with the torchvision backbone loaded by the zoo:
    looked up offline, hash-checked, weights-only. uint8 pairs -> float64 ``[B]``."""

    def __init__(self, net: str = "alex", weights: str | os.PathLike | None = None) -> None:
        super().__init__()
        from torchmetrics.functional.image.lpips import _LPIPS

        if net not in ("alex", "vgg"):
            raise InputError(f"LPIPS backbone must be 'alex' or 'vgg', got {net!r}")
        found = resolve(net, weights)
        sd = load_state_dict(found.path)
        with _force_weights_only():
            self.model = _LPIPS(pretrained=True, net=net, pnet_rand=True)  # random backbone, no download
        target = self.model.net.state_dict()
        mapped = {}
        for k in target:
            _, idx, leaf = k.split(".")  # sliceN.<torchvision features index>.<weight|bias>
            src = f"features.{idx}.{leaf}"
            if src not in sd or sd[src].shape != target[k].shape:
                raise CheckpointError(f"{found.path} lacks {src} with shape {tuple(target[k].shape)}: not a "
                                      f"torchvision {net} checkpoint")
            mapped[k] = sd[src]
        self.model.net.load_state_dict(mapped, strict=True)
        self.model.eval().requires_grad_(False)
        self.net_name, self.sha256, self.verified = net, found.sha256, found.verified

    @torch.no_grad()
    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        x, y = a.float() / 127.5 - 1, b.float() / 127.5 - 1
        return self.model(x, y).flatten().double()


class CodeUsage:
    """Counts of every code of every group over valid tokens (respecting `Codes.lengths`); mergeable sums."""

    def __init__(self, codebook_sizes: tuple[int, ...]) -> None:
        self.sizes = tuple(codebook_sizes)
        self.counts = [torch.zeros(k, dtype=torch.float64) for k in self.sizes]
        self.bits = 0.0
        self.tokens = 0.0

    def update(self, codes: Codes) -> None:
        idx = codes.indices.detach().cpu()
        counts = codes.token_counts()
        valid = torch.arange(idx.shape[1])[None] < counts[:, None]  # [B, T]
        for g, k in enumerate(self.sizes):
            self.counts[g] += torch.bincount(idx[..., g][valid], minlength=k)[:k].double()
        self.tokens += float(counts.sum())
        self.bits += float(counts.double().sum()) * sum(math.ceil(math.log2(k)) for k in self.sizes)

    def all_reduce(self) -> None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            for c in self.counts:
                dist.all_reduce(c)
            t = torch.tensor([self.bits, self.tokens], dtype=torch.float64)
            dist.all_reduce(t)
            self.bits, self.tokens = float(t[0]), float(t[1])

    def summary(self, images: int) -> dict:
        """Per group: perplexity (exp of the usage entropy), used and dead codes; bits and tokens per image."""
        groups = []
        for g, c in enumerate(self.counts):
            total = float(c.sum())
            p = c[c > 0] / max(total, 1.0)
            entropy = float(-(p * p.log()).sum()) if total else 0.0
            used = int((c > 0).sum())
            groups.append({"group": g, "codebook_size": self.sizes[g], "perplexity": math.exp(entropy),
                           "used": used, "dead": self.sizes[g] - used, "usage": used / self.sizes[g],
                           "entropy_bits": entropy / math.log(2)})
        n = max(images, 1)
        return {"groups": groups, "bits_per_image": self.bits / n, "tokens_per_image": self.tokens / n}
