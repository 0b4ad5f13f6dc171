"""Per-image quality metrics (PSNR and SSIM as scikit-image computes them, LPIPS with torchmetrics' network) and
codebook usage, as mergeable sums.

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
    """PSNR in dB per image (data range 255, MSE over all channels and pixels) between uint8 batches ``[B, 3, H, W]``
    -> float64 ``[B]``; scikit-image's ``peak_signal_noise_ratio(data_range=255)``. Identical images: 100 dB."""
    x, y = a.double(), b.double()
    mse = (x - y).pow(2).flatten(1).mean(1)
    out = 10 * torch.log10(255.0 ** 2 / mse.clamp_min(1e-300))
    return torch.where(mse > 0, out, torch.full_like(out, 100.0)).clamp_max(100.0)


SSIM_WINDOW = 11  # Gaussian taps (radius int(3.5 * sigma + 0.5) = 5, scikit-image's truncate=3.5)
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _gaussian_window(sigma: float, radius: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """scipy.ndimage's 1-D Gaussian kernel: exp(-x²/2σ²) on -radius..radius, normalised to sum 1 -> ``[2r+1]``."""
    x = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def ssim(a: Tensor, b: Tensor) -> Tensor:
    """SSIM per image between uint8 batches ``[B, 3, H, W]`` -> float64 ``[B]`` (Wang et al. 2004).

    Gaussian 11x11 window, sigma 1.5, K1 0.01, K2 0.03, data range 255, population (co)variances, computed per
    channel on the pixels whose whole window lies inside the image, then averaged over pixels and channels: exactly
    scikit-image's ``structural_similarity(channel_axis=-1, data_range=255, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False)``. (torchmetrics' SSIM also averages the reflection-padded border, which moves
    the value by up to a few 1e-2 on small images.)
    """
    x, y = a.double(), b.double()
    if x.shape != y.shape or x.dim() != 4:
        raise InputError(f"SSIM needs two batches of the same shape [B, C, H, W], got {tuple(x.shape)} and "
                         f"{tuple(y.shape)}")
    radius = int(3.5 * SSIM_SIGMA + 0.5)
    if min(x.shape[-2:]) < 2 * radius + 1:
        raise InputError(f"SSIM needs images of at least {2 * radius + 1}x{2 * radius + 1}, got "
                         f"{x.shape[-2]}x{x.shape[-1]}")
    taps = _gaussian_window(SSIM_SIGMA, radius, x.dtype, x.device).tolist()

    def blur(t: Tensor) -> Tensor:
        """Separable Gaussian, 'valid' (only windows fully inside the image): ``[..., H, W] -> [..., H-2r, W-2r]``.
        Written as a weighted sum of shifted views, one fused multiply-add per tap: a float64 depthwise conv2d
        takes PyTorch's slow generic path on a CPU, 5-8x slower for the same sums (same values to 1e-15)."""
        for dim in (-2, -1):
            n = t.shape[dim] - 2 * radius
            out = t.narrow(dim, 0, n) * taps[0]
            for k in range(1, len(taps)):
                out.add_(t.narrow(dim, k, n), alpha=taps[k])
            t = out
        return t

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = (SSIM_K1 * 255.0) ** 2, (SSIM_K2 * 255.0) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


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
