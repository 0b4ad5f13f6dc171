"""Discriminators: taming's PatchGAN, the MaskBit-style one of TiTok stage 2, and the frozen-DINO one of the releases.

Every discriminator takes images ``[B, 3, H, W]`` in [0, 1] and returns logits ``[B, ...]``.
"""
from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..convert.common import find_state_dict, load_file
from ..errors import CheckpointError, ConfigError
from .perceptual import find_weights, torch_hub_checkpoints


def _norm2d(kind: str, ch: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(ch)
    if kind == "group":
        return nn.GroupNorm(min(32, ch), ch)
    return nn.Identity()


class PatchGAN(nn.Module):
    """taming-transformers' ``NLayerDiscriminator`` (pix2pix PatchGAN): 4x4 convs, ``[B,3,H,W] -> [B,1,h,w]``.

    Inputs are mapped to [-1, 1] inside. Weights start as taming's ``weights_init`` (N(0, 0.02); norms N(1, 0.02)).
    """

    def __init__(self, channels: int = 64, layers: int = 3, norm: str = "batch") -> None:
        super().__init__()
        bias = norm == "none"
        seq: list[nn.Module] = [nn.Conv2d(3, channels, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, layers):
            prev, mult = mult, min(2 ** n, 8)
            seq += [nn.Conv2d(channels * prev, channels * mult, 4, 2, 1, bias=bias), _norm2d(norm, channels * mult),
                    nn.LeakyReLU(0.2, True)]
        prev, mult = mult, min(2 ** layers, 8)
        seq += [nn.Conv2d(channels * prev, channels * mult, 4, 1, 1, bias=bias), _norm2d(norm, channels * mult),
                nn.LeakyReLU(0.2, True), nn.Conv2d(channels * mult, 1, 4, 1, 1)]
        self.main = nn.Sequential(*seq)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.main(x * 2 - 1)


class _BlurDown(nn.Module):
    """Blur with the (1,3,3,1) binomial filter, then stride 2 (halves H and W)."""

    def __init__(self) -> None:
        super().__init__()
        k = torch.tensor([1.0, 3.0, 3.0, 1.0])
        self.register_buffer("kernel", (k[:, None] * k[None, :] / 64.0)[None, None], persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        c = x.shape[1]
        x = F.pad(x, (1, 2, 1, 2), mode="reflect")
        return F.conv2d(x, self.kernel.to(x.dtype).expand(c, 1, 4, 4), stride=2, groups=c)


class MaskBitDiscriminator(nn.Module):
    """TiTok/One-D-Piece stage-2 discriminator (MaskBit style), ``[B,3,H,W] -> [B,1,16,16]``.

    Conv5x5 3->c, LeakyReLU(0.1); three stages of Conv3x3, blur-downsample, GroupNorm(32), LeakyReLU(0.1) with
    c -> c -> 2c -> 4c; adaptive max-pool to 16x16; Conv1x1, LeakyReLU, Conv5x5 -> 1. (Released: c = 128.)
    """

    def __init__(self, channels: int = 128, pool: int = 16) -> None:
        super().__init__()
        chans = (channels, channels, 2 * channels, 4 * channels)
        self.conv_in = nn.Conv2d(3, channels, 5, padding=2)
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Conv2d(chans[i], chans[i + 1], 3, padding=1), _BlurDown(),
                          nn.GroupNorm(min(32, chans[i + 1]), chans[i + 1]), nn.LeakyReLU(0.1))
            for i in range(3)
        )
        self.pool = nn.AdaptiveMaxPool2d(pool)
        self.to_logits = nn.Sequential(nn.Conv2d(chans[-1], chans[-1], 1), nn.LeakyReLU(0.1),
                                       nn.Conv2d(chans[-1], 1, 5, padding=2))

    def forward(self, x: Tensor) -> Tensor:
        h = F.leaky_relu(self.conv_in(x * 2 - 1), 0.1)
        for stage in self.stages:
            h = stage(h)
        return self.to_logits(self.pool(h))


# ---------------------------------------------------------------------------------------------------------------
# Frozen DINO ViT-S/16 + trainable 1-D heads (VAR / StyleGAN-T "dinodisc", used by ImageFolder and UniTok)
# ---------------------------------------------------------------------------------------------------------------
DINO_FILE = "dino_deitsmall16_pretrain.pth"


class _DinoBlock(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = nn.Module()
        self.attn.qkv = nn.Linear(dim, 3 * dim)
        self.attn.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(dim, 4 * dim)
        self.mlp.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        B, N, C = x.shape
        qkv = self.attn.qkv(self.norm1(x)).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        x = x + self.attn.proj(a.transpose(1, 2).reshape(B, N, C))
        return x + self.mlp.fc2(F.gelu(self.mlp.fc1(self.norm2(x))))


class DinoViTS16(nn.Module):
    """DINO's ViT-S/16 in the layout of ``dino_deitsmall16_pretrain.pth`` (``blocks.{i}.attn.qkv`` ...), 224x224."""

    def __init__(self, dim: int = 384, depth: int = 12, heads: int = 6, patch: int = 16, image: int = 224) -> None:
        super().__init__()
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, (image // patch) ** 2 + 1, dim))
        self.blocks = nn.ModuleList(_DinoBlock(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def tokens(self, x: Tensor, taps: tuple[int, ...]) -> list[Tensor]:
        """Token sequences ``[B, N, dim]`` after the embedding (tap -1) and after each block index in `taps`."""
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        out = [x] if -1 in taps else []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in taps:
                out.append(x)
        return out


class _SpectralConv1d(nn.Module):
    def __init__(self, cin: int, cout: int, k: int) -> None:
        super().__init__()
        self.conv = nn.utils.parametrizations.spectral_norm(
            nn.Conv1d(cin, cout, k, padding=k // 2, padding_mode="circular"))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class _DinoHead(nn.Module):
    """``[B, C, N] -> [B, 1, N]``: block(k=1), residual block(k=9) / √2, then a k=1 classifier (spectral norm)."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.block1 = nn.Sequential(_SpectralConv1d(ch, ch, 1), nn.BatchNorm1d(ch), nn.LeakyReLU(0.2))
        self.block2 = nn.Sequential(_SpectralConv1d(ch, ch, 9), nn.BatchNorm1d(ch), nn.LeakyReLU(0.2))
        self.cls = _SpectralConv1d(ch, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.block1(x)
        return self.cls((h + self.block2(h)) / math.sqrt(2))


class DinoDiscriminator(nn.Module):
    """Frozen DINO ViT-S/16 features (embedding and blocks 2, 5, 8, 11) -> five trainable heads -> logits ``[B, 5N]``.

    weights: the official DINO file (``dino_deitsmall16_pretrain.pth``; default: the torch hub cache). The key part
    of the qkv bias is zeroed, as the releases do. Inputs are resized to 224 and ImageNet-normalised.
    """

    TAPS = (-1, 2, 5, 8, 11)

    def __init__(self, weights: str | os.PathLike | None = None) -> None:
        super().__init__()
        path = find_weights("the DINO discriminator", weights, [torch_hub_checkpoints() / DINO_FILE],
                            "Copy DINO's dino_deitsmall16_pretrain.pth there, set loss.gan.dino_weights, or use "
                            "loss.gan.discriminator: patchgan.")
        with torch.device("meta"):  # no random initialisation: the backbone comes from the file
            self.backbone = DinoViTS16()
        sd = find_state_dict(load_file(path), ("teacher", "student", "state_dict", "model"))
        sd = {k.removeprefix("module.").removeprefix("backbone."): v for k, v in sd.items()}
        sd = {k: v for k, v in sd.items() if not k.startswith("head.")}
        try:
            self.backbone.load_state_dict(sd, strict=True, assign=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{path} is not a DINO ViT-S/16 file: {str(exc).splitlines()[0]}") from None
        with torch.no_grad():
            for block in self.backbone.blocks:
                dim = block.attn.qkv.bias.shape[0] // 3
                block.attn.qkv.bias[dim:2 * dim] = 0
        self.backbone.requires_grad_(False)
        self.backbone.eval()
        self.heads = nn.ModuleList(_DinoHead(384) for _ in self.TAPS)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> "DinoDiscriminator":
        super().train(mode)
        self.backbone.eval()  # frozen features in every mode
        return self

    def forward(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
        feats = self.backbone.tokens((x - self.mean) / self.std, self.TAPS)
        return torch.cat([head(f.transpose(1, 2)).flatten(1) for head, f in zip(self.heads, feats)], dim=1)


def build_discriminator(kind: str, channels: int = 64, layers: int = 3, norm: str = "batch",
                        dino_weights: str | None = None) -> nn.Module:
    if kind == "patchgan":
        return PatchGAN(channels, layers, norm)
    if kind == "maskbit":
        if channels % 32 and channels >= 32:
            raise ConfigError(f"recipe.loss.gan.channels: the maskbit discriminator uses GroupNorm(32); "
                              f"{channels} is not a multiple of 32")
        return MaskBitDiscriminator(channels)
    if kind == "dino":
        return DinoDiscriminator(dino_weights)
    raise ConfigError(f"recipe.loss.gan.discriminator: unknown discriminator {kind!r}")


__all__ = ["PatchGAN", "MaskBitDiscriminator", "DinoDiscriminator", "DinoViTS16", "build_discriminator",
           "DINO_FILE"]
