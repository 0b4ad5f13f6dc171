"""Streamed feature statistics (float64 sums, constant memory), exact cross-process sums, Fréchet distance,
and cached reference statistics files (``.npz``: mu, sigma, n, protocol, extractor hash)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import InputError


class FeatureStats:
    """Running ``sum`` [d], ``outer`` = Σ f fᵀ [d, d] and ``n`` in float64: memory O(d²), not O(N·d)."""

    def __init__(self, dim: int | None = None) -> None:
        self.n = 0
        self.sum: Tensor | None = None
        self.outer: Tensor | None = None
        if dim:
            self._alloc(dim)

    def _alloc(self, dim: int) -> None:
        self.sum = torch.zeros(dim, dtype=torch.float64)
        self.outer = torch.zeros(dim, dim, dtype=torch.float64)

    def update(self, feats: Tensor) -> None:
        """feats: ``[B, d]`` (any float dtype; accumulated in float64 on the CPU)."""
        f = feats.detach().to("cpu", torch.float64)
        if self.sum is None:
            self._alloc(f.shape[1])
        self.sum += f.sum(0)
        self.outer += f.T @ f
        self.n += int(f.shape[0])

    def all_reduce(self) -> None:
        """Sum over all processes (torch.distributed), so every rank holds the statistics of the whole set."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        n = torch.tensor([float(self.n)], dtype=torch.float64)
        dist.all_reduce(n)
        if self.sum is None:
            raise InputError("a process saw no images; use fewer processes than images")
        dist.all_reduce(self.sum)
        dist.all_reduce(self.outer)
        self.n = int(n.item())

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """mu ``[d]`` and the unbiased covariance ``[d, d]`` (divides by n - 1, like numpy.cov)."""
        if self.n < 2:
            raise InputError(f"FID needs at least 2 images per side, got {self.n}")
        mu = self.sum / self.n
        cov = (self.outer - self.n * torch.outer(mu, mu)) / (self.n - 1)
        return mu.numpy(), cov.numpy()


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
    """‖mu1 − mu2‖² + tr Σ1 + tr Σ2 − 2 tr (Σ1^½ Σ2 Σ1^½)^½, in float64.

    The trace of the square root is taken on the symmetric PSD matrix Σ1^½ Σ2 Σ1^½ (same eigenvalues as Σ1 Σ2),
    so it stays real and stable when N < d (rank-deficient covariances), where `scipy.linalg.sqrtm(Σ1 Σ2)` can
    return complex noise.
    """
    mu1, mu2 = (torch.as_tensor(np.asarray(m), dtype=torch.float64) for m in (mu1, mu2))
    s1, s2 = (torch.as_tensor(np.asarray(s), dtype=torch.float64) for s in (sigma1, sigma2))
    if mu1.shape != mu2.shape or s1.shape != s2.shape:
        raise InputError(f"statistics have different feature sizes: {tuple(mu1.shape)} vs {tuple(mu2.shape)}")
    w, v = torch.linalg.eigh((s1 + s1.T) / 2)
    root1 = (v * w.clamp_min(0).sqrt()) @ v.T
    m = root1 @ s2 @ root1
    tr_covmean = torch.linalg.eigvalsh((m + m.T) / 2).clamp_min(0).sqrt().sum()
    diff = mu1 - mu2
    return float(diff @ diff + s1.trace() + s2.trace() - 2 * tr_covmean)


# --------------------------------------------------------------------------------------------------------------
class ReferenceStats:
    """mu, sigma and n of a dataset's real side, with the protocol and extractor they were computed with."""

    def __init__(self, mu: np.ndarray, sigma: np.ndarray, n: int, protocol: dict, extractor: dict) -> None:
        self.mu, self.sigma, self.n = mu, sigma, int(n)
        self.protocol, self.extractor = protocol, extractor

    @classmethod
    def from_stats(cls, stats: FeatureStats, protocol: dict, extractor: dict) -> "ReferenceStats":
        mu, sigma = stats.mean_cov()
        return cls(mu, sigma, stats.n, protocol, extractor)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the ``.npz`` atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        from ..atomic import atomic_file

        with atomic_file(path) as tmp, open(tmp, "wb") as fh:  # a file object: np.savez adds no suffix
            np.savez(fh, mu=self.mu, sigma=self.sigma, n=np.int64(self.n),
                     protocol=np.array(json.dumps(self.protocol, sort_keys=True)),
                     extractor=np.array(json.dumps(self.extractor, sort_keys=True)))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ReferenceStats":
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(z["mu"], z["sigma"], int(z["n"]), json.loads(str(z["protocol"])),
                           json.loads(str(z["extractor"])))
        except FileNotFoundError:
            raise InputError(f"reference statistics not found: {path}") from None
        except (KeyError, ValueError, OSError) as exc:
            raise InputError(f"{path} is not a zoo reference statistics file (mu, sigma, n, protocol, extractor): "
                             f"{exc}") from None

    def check(self, protocol: dict, extractor: dict, path: str | os.PathLike = "") -> None:
        """Refuse statistics made with another protocol or feature extractor (FIDs would not be comparable)."""
        problems = []
        if self.extractor.get("sha256") != extractor.get("sha256"):
            problems.append(f"feature extractor {self.extractor.get('name')} sha256 "
                            f"{str(self.extractor.get('sha256'))[:12]} vs this run's {extractor.get('name')} "
                            f"{str(extractor.get('sha256'))[:12]}")
        for key in sorted(set(self.protocol) | set(protocol)):
            if key in ("n",):
                continue
            if self.protocol.get(key) != protocol.get(key):
                problems.append(f"protocol {key}: {self.protocol.get(key)!r} vs this run's {protocol.get(key)!r}")
        if problems:
            raise InputError(f"reference statistics {path} do not match this run: " + "; ".join(problems)
                             + ". Recompute them (delete the file or pass another --ref-stats path).")
