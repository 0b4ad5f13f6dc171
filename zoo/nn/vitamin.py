"""ViTamin (Chen et al., 2024) as UniTok builds it: a conv stem and MBConv stages with LayerNorm, a strided conv to
the transformer width, then plain pre-LN blocks with a GeGLU MLP; and the mirrored decoder (blocks, then an
inverted-MBConv upsampler) UniTok adds.

Conv parts keep the upstream module names (``stem.conv1``, ``stages.{s}.{i}.conv2_kxk``, ``up_conv2.{i}.up``...),
transformer blocks are `zoo.nn.vit.Block` (``attn.qkv``, ``mlp.fc1_g`` / ``fc1_x`` / ``fc2`` / ``norm``).
Activations in the conv parts are exact (erf) GELU; the GeGLU gate is tanh-GELU; every LayerNorm has eps 1e-6.
"""
from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from .upsample_conv import UpsampleConv2d

from .vit import Block

EPS = 1e-6


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of ``[B, C, H, W]``, optionally followed by GELU (timm's LayerNorm(Act)2d)."""

    def __init__(self, channels: int, act: bool = False, eps: float = EPS) -> None:
        super().__init__(channels, eps=eps)
        self.act = act

    def forward(self, x: Tensor) -> Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        x = x.permute(0, 3, 1, 2)
        return F.gelu(x) if self.act else x


def vitamin_block(width: int, heads: int, mlp_ratio: float = 2.0, is_causal: bool = False) -> Block:
    """The transformer block of ViTamin: pre-LN, qkv with bias, GeGLU MLP (tanh gate) with a LayerNorm on its input."""
    return Block(width, heads, mlp_ratio=mlp_ratio, act="gelu_tanh", glu=True, glu_norm=True,
                 glu_norm_position="input", norm_eps=EPS, is_causal=is_causal)


# ---------------------------------------------------------------------------------------------------------------
# Encoder side: stem, MBConv stages, strided conv
# ---------------------------------------------------------------------------------------------------------------
class ConvStem(nn.Module):
    """``[B, 3, H, W] -> [B, C, H/2, W/2]``: conv 3x3 stride 2, LayerNorm + GELU, conv 3x3."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)
        self.norm1 = LayerNorm2d(out_channels, act=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(self.norm1(self.conv1(x)))


class Downsample2d(nn.Module):
    """Shortcut of a stride-2 MBConv: 3x3 average pool (stride 2, padding not counted), then 1x1 conv if widths differ."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        self.expand = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.expand(self.pool(x))


def _shortcut(in_channels: int, out_channels: int, stride: int, resample: type[nn.Module]) -> nn.Module:
    """The residual path of an (inverted) MBConv: `resample` when strided, a 1x1 conv when widths differ."""
    if stride == 2:
        return resample(in_channels, out_channels)
    if in_channels != out_channels:
        return nn.Conv2d(in_channels, out_channels, 1)
    return nn.Identity()


class MbConvBlock(nn.Module):
    """Pre-norm inverted bottleneck: LN, 1x1 expand x4, GELU, depthwise 3x3 (stride 1 or 2), GELU, 1x1, + shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, expand_ratio: float = 4.0) -> None:
        super().__init__()
        mid = int(out_channels * expand_ratio)
        self.shortcut = _shortcut(in_channels, out_channels, stride, Downsample2d)
        self.pre_norm = LayerNorm2d(in_channels)
        self.conv1_1x1 = nn.Conv2d(in_channels, mid, 1)
        self.conv2_kxk = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, groups=mid)
        self.conv3_1x1 = nn.Conv2d(mid, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = F.gelu(self.conv1_1x1(self.pre_norm(x)))
        h = self.conv2_kxk(h)  # one op per statement: rebinding h frees the expanded map before the next op
        h = F.gelu(h)
        return self.conv3_1x1(h) + self.shortcut(x)


class StridedConv(nn.Module):
    """LayerNorm first, then conv 3x3 stride 2 to the transformer width."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm = LayerNorm2d(in_channels)
        self.proj = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.norm(x))


class ViTaminEncoder(nn.Module):
    """Image ``[B, 3, H, W]`` (any range the model was trained on) -> tokens ``[B, (H/16)·(W/16), D]``.

    Stride 16 = stem 2 x two MBConv stages 2 x 2 x strided conv 2; tokens are row-major; no class token and no
    position embedding, so any size divisible by 16 runs. The output is after the final LayerNorm.
    """

    def __init__(self, stem_width: int, stage_widths: Sequence[int], stage_depths: Sequence[int], width: int,
                 depth: int, heads: int, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        self.stem = ConvStem(3, stem_width)
        stages, prev = [], stem_width
        for w, d in zip(stage_widths, stage_depths):
            stages.append(nn.Sequential(*[MbConvBlock(prev if i == 0 else w, w, stride=2 if i == 0 else 1)
                                          for i in range(d)]))
            prev = w
        self.stages = nn.ModuleList(stages)
        self.pool = StridedConv(prev, width)
        self.blocks = nn.ModuleList(vitamin_block(width, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(width, eps=EPS)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for stage in self.stages:
            for block in stage:  # not stage(x), which would hold the stage's input until its last block returned
                x = block(x)
        x = self.pool(x).flatten(2).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


# ---------------------------------------------------------------------------------------------------------------
# Decoder side: blocks, then an inverted-MBConv upsampler
# ---------------------------------------------------------------------------------------------------------------
class Upsample2d(nn.Module):
    """Nearest x2, then conv 3x3."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = UpsampleConv2d(in_channels, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class InvMbConvBlock(nn.Module):
    """The upsampling mirror of `MbConvBlock`: LN, 1x1 expand, GELU, [nearest x2 + full 3x3 conv when stride 2],
    depthwise 3x3, GELU, 1x1, + shortcut (`Upsample2d` when stride 2, 1x1 conv when widths differ)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, expand_ratio: float = 4.0) -> None:
        super().__init__()
        mid = int(out_channels * expand_ratio)
        self.shortcut = _shortcut(in_channels, out_channels, stride, Upsample2d)
        self.pre_norm = LayerNorm2d(in_channels)
        self.conv1_1x1 = nn.Conv2d(in_channels, mid, 1)
        self.up = Upsample2d(mid, mid) if stride == 2 else nn.Identity()
        self.conv2_kxk = nn.Conv2d(mid, mid, 3, padding=1, groups=mid)
        self.conv3_1x1 = nn.Conv2d(mid, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.up(F.gelu(self.conv1_1x1(self.pre_norm(x))))
        h = self.conv2_kxk(h)  # one op per statement: rebinding h frees the expanded map before the next op
        h = F.gelu(h)
        return self.conv3_1x1(h) + self.shortcut(x)


class InvStem(nn.Module):
    """The mirror of `ConvStem`: `Upsample2d` (same width), LayerNorm + GELU, conv 3x3 to RGB."""

    def __init__(self, in_channels: int, out_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = Upsample2d(in_channels, in_channels)
        self.norm1 = LayerNorm2d(in_channels, act=True)
        self.conv2 = nn.Conv2d(in_channels, out_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(self.norm1(self.conv1(x)))


class ViTaminDecoder(nn.Module):
    """Tokens ``[B, g·g, D]`` (row-major square grid) -> image ``[B, 3, 16g, 16g]`` (raw, the encoder's range).

    Blocks + LayerNorm, then ``up_conv1`` (nearest x2 + conv to ``widths[0]``), ``up_conv2`` (inverted MBConvs,
    the first upsamples), ``up_conv3`` (likewise, to ``widths[1]``) and ``up_conv4`` (`InvStem`, x2 to RGB).
    """

    def __init__(self, width: int, depth: int, heads: int, widths: Sequence[int] = (320, 160),
                 up_depths: Sequence[int] = (4, 2), mlp_ratio: float = 2.0) -> None:
        super().__init__()
        w1, w2 = widths
        self.blocks = nn.ModuleList(vitamin_block(width, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(width, eps=EPS)
        self.up_conv1 = Upsample2d(width, w1)
        self.up_conv2 = nn.Sequential(*[InvMbConvBlock(w1, w1, stride=2 if i == 0 else 1) for i in range(up_depths[0])])
        self.up_conv3 = nn.Sequential(*[InvMbConvBlock(w1 if i == 0 else w2, w2, stride=2 if i == 0 else 1)
                                        for i in range(up_depths[1])])
        self.up_conv4 = InvStem(w2, 3)

    def forward(self, x: Tensor) -> Tensor:
        B, L, D = x.shape
        side = int(round(L ** 0.5))
        if side * side != L:
            raise ValueError(f"the decoder needs a square token grid, got {L} tokens")
        for block in self.blocks:
            x = block(x)
        x = self.norm(x).transpose(1, 2).reshape(B, D, side, side)
        for layer in (self.up_conv1, *self.up_conv2, *self.up_conv3, self.up_conv4):
            x = layer(x)  # block by block: each map is freed as soon as the next one exists
        return x

    @property
    def last_layer(self) -> Tensor:
        """The weight an adaptive GAN loss weight is computed at (upstream `get_last_param`)."""
        return self.up_conv4.conv2.weight
