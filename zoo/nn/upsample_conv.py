"""Nearest x2 upsampling followed by a 3x3 convolution, computed at the low resolution (sub-pixel form).

``conv3x3(upsample_nearest_x2(x))`` is what the decoders of VQGAN-style tokenizers do at every resolution step
(MaskGIT-VQGAN's ``upsample_conv``, taming's ``Upsample``, ViTamin's ``Upsample2d``). Each output pixel
``(2i + a, 2j + b)`` sees the low-resolution rows ``{i - 1, i}`` (a = 0) or ``{i, i + 1}`` (a = 1), and likewise
columns, so each of the four phases (a, b) is a 2x2 convolution of ``x`` whose taps are sums of the 3x3 taps:

    phase a = 0: low-res row i - 1 <- kernel row 0;       row i     <- kernel rows 1 + 2
    phase a = 1: low-res row i     <- kernel rows 0 + 1;  row i + 1 <- kernel row 2

The four phases run as one 2x2 convolution with 4·C_out outputs on ``x`` padded by one (zero padding of the
upsampled image is zero padding of ``x``), then are interleaved. That is 16 instead of 36 multiply-adds per
input channel and low-resolution pixel (2.25x fewer), and the 4x larger upsampled input is never materialised.
The result equals the two-step form up to float rounding (the summed taps round differently: ~1e-7 relative).
The parameters are the 3x3 convolution's own (``weight`` ``[C_out, C_in, 3, 3]``, ``bias``), so checkpoints load
unchanged and training updates the same tensors.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def subpixel_kernels(weight: Tensor) -> Tensor:
    """3x3 kernels ``[O, I, 3, 3]`` -> the four phases' 2x2 kernels ``[4·O, I, 2, 2]`` (phase (a, b) = block 2a + b)."""
    rows = (torch.stack([weight[:, :, 0], weight[:, :, 1] + weight[:, :, 2]], dim=2),   # a = 0: rows i-1, i
            torch.stack([weight[:, :, 0] + weight[:, :, 1], weight[:, :, 2]], dim=2))   # a = 1: rows i, i+1
    phases = []
    for r in rows:  # [O, I, 2, 3] -> the same merge along columns
        phases.append(torch.stack([r[..., 0], r[..., 1] + r[..., 2]], dim=-1))  # b = 0
        phases.append(torch.stack([r[..., 0] + r[..., 1], r[..., 2]], dim=-1))  # b = 1
    return torch.cat(phases, dim=0)


def upsample_conv3x3(x: Tensor, weight: Tensor, bias: Tensor | None = None, kernels: Tensor | None = None) -> Tensor:
    """``conv2d(interpolate(x, scale_factor=2, mode="nearest"), weight, bias, padding=1)`` for a 3x3 `weight`,
    at the low resolution: ``[B, I, H, W] -> [B, O, 2H, 2W]``, in `x`'s memory format (channels-last stays so).
    `kernels`: ``subpixel_kernels(weight)`` when the caller keeps them."""
    B, _, H, W = x.shape
    O = weight.shape[0]
    k = subpixel_kernels(weight) if kernels is None else kernels
    y = F.conv2d(x, k, None if bias is None else bias.repeat(4), padding=1)  # [B, 4·O, H + 1, W + 1]
    # phase (a, b) is y's channel block 2a + b over the window [a:a+H, b:b+W]; it lands on pixels (2i + a, 2j + b)
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        y = y.permute(0, 2, 3, 1).unflatten(3, (2, 2, O))  # [B, H + 1, W + 1, a, b, O]
        out = y.new_empty(B, H, 2, W, 2, O)
        for a in (0, 1):
            for b in (0, 1):
                out[:, :, a, :, b] = y[:, a:a + H, b:b + W, a, b]
        return out.view(B, 2 * H, 2 * W, O).permute(0, 3, 1, 2)
    y = y.unflatten(1, (2, 2, O))  # [B, a, b, O, H + 1, W + 1]
    out = y.new_empty(B, O, H, 2, W, 2)
    for a in (0, 1):
        for b in (0, 1):
            out[:, :, :, a, :, b] = y[:, a, b, :, a:a + H, b:b + W]
    return out.view(B, O, 2 * H, 2 * W)


class UpsampleConv2d(nn.Conv2d):
    """A 3x3, stride-1, padding-1 `nn.Conv2d` applied to the nearest x2 upsampling of its input, run in the
    sub-pixel form above: ``[B, I, H, W] -> [B, O, 2H, 2W]``. Same parameters and keys as the `nn.Conv2d`.

    Without autograd the 2x2 kernels are kept between calls (16/9 of the weight's memory) and rebuilt when the
    weight changes (moved, cast, loaded or updated in place); with autograd, or inside `torch.compile`, they are
    built from the weight on every call, so gradients reach it.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, 3, padding=1, bias=bias)
        self._kernels: tuple[tuple, Tensor] | None = None

    def subpixel_kernels(self) -> Tensor:
        w = self.weight
        if torch.compiler.is_compiling() or (torch.is_grad_enabled() and w.requires_grad):
            return subpixel_kernels(w)
        key = (w.data_ptr(), w._version, w.dtype, w.device, w.shape)
        if self._kernels is None or self._kernels[0] != key:
            self._kernels = (key, subpixel_kernels(w.detach()))
        return self._kernels[1]

    def forward(self, x: Tensor) -> Tensor:
        return upsample_conv3x3(x, self.weight, self.bias, self.subpixel_kernels())
