"""Helpers for offline tests and benchmarks: random-weight files in the official layouts, a tiny extractor.

Random weights give meaningless FIDs but exercise exactly the same code paths (layout, hashing, resize,
statistics), which is what the tests check.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from torch import Tensor, nn


def random_inception_state_dict(seed: int = 0) -> dict[str, Tensor]:
    """A state dict in torch-fidelity's Inception layout (566 tensors), He-scaled so features stay O(1)."""
    import unittest.mock as mock

    import torch_fidelity.feature_extractor_inceptionv3 as fe

    g = torch.Generator().manual_seed(seed)
    # build the architecture without its download: the constructor's load is skipped, we fill the tensors below
    with mock.patch.object(fe, "load_state_dict_from_url", lambda *a, **k: {}), \
            mock.patch.object(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd, strict=True: None):
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    sd = {}
    for k, v in net.state_dict().items():
        if k.endswith("conv.weight") or k == "fc.weight":
            fan_in = math.prod(v.shape[1:])
            v = torch.randn(v.shape, generator=g) * math.sqrt(2.0 / fan_in)
        elif k.endswith("bn.weight"):
            v = 1.0 + 0.1 * torch.randn(v.shape, generator=g)
        elif k.endswith("bn.bias") or k == "fc.bias":
            v = 0.1 * torch.randn(v.shape, generator=g)
        elif k.endswith("running_mean"):
            v = torch.zeros_like(v)
        elif k.endswith("running_var"):
            v = torch.ones_like(v)
        sd[k] = v.clone().contiguous()
    return sd


def write_random_inception(path: str | os.PathLike, seed: int = 0) -> Path:
    """Write a random-weight Inception file (plain tensor state dict, like the official .pth)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(random_inception_state_dict(seed), path)
    return path


def write_random_alexnet_features(path: str | os.PathLike, seed: int = 0) -> Path:
    """torchvision AlexNet ``features.*`` tensors (the part LPIPS uses), random."""
    import torchvision

    torch.manual_seed(seed)
    net = torchvision.models.alexnet(weights=None)
    sd = {k: v for k, v in net.state_dict().items() if k.startswith("features.")}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(sd, path)
    return path


class TinyExtractor(nn.Module):
    """A fixed random conv net, uint8 ``[B, 3, H, W]`` -> ``[B, 32]``: a fast stand-in for Inception in tests."""

    def __init__(self, seed: int = 0, dim: int = 32) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv1 = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(16, dim, 3, stride=2, padding=1)
        for p in self.parameters():
            p.data = torch.randn(p.shape, generator=g) * 0.3
        self.requires_grad_(False)

    def forward(self, x: Tensor) -> Tensor:
        x = (x.float() - 128) / 128
        x = torch.relu(self.conv1(x))
        return torch.tanh(self.conv2(x)).mean((2, 3))


def tiny_extractor() -> TinyExtractor:
    """Factory for ``--fid-extractor zoo.eval.testing:tiny_extractor``."""
    return TinyExtractor()
