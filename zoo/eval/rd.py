"""Rate–distortion of the classic codecs (Pillow JPEG with ``optimize=True``, Pillow WebP): each codec's own rate
curve, and the matched point against a target byte size.

Two honest readings of "the codec at the tokenizer's bytes", both computed per image:

- at most the target: the highest quality whose whole file is no larger than the target; its real bytes are
  reported. When even quality 1 is larger, the target is *unreachable*: quality 1 is used (its real bytes are above
  the target) and the report flags it.
- interpolated at exactly the target: PSNR linearly interpolated in **log bytes** between the two neighbouring
  points of the codec's rate curve (`psnr_at_bytes`). Undefined (None) when the target is below the smallest file.

The general helpers `rate_curve`, `psnr_at_bytes` and `bytes_for_psnr` work on any per-image curve.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..errors import InputError

CODECS = {"jpeg": "JPEG", "webp": "WEBP"}
CODEC_SETTINGS = {
    "jpeg": "Pillow JPEG, optimize=True (optimised Huffman tables), 4:2:0 chroma, whole file with headers",
    "webp": "Pillow WebP, lossy, method 4, whole file with headers",
}
QUALITIES = tuple(range(1, 101))


def _check_codec(codec: str) -> str:
    fmt = CODECS.get(codec)
    if fmt is None:
        raise InputError(f"unknown codec {codec!r}; use {', '.join(CODECS)}")
    return fmt


def encode(img: Image.Image, codec: str, quality: int) -> bytes:
    """One RGB PIL image -> the codec's file bytes at `quality` (1..100)."""
    fmt = _check_codec(codec)
    buf = io.BytesIO()
    if codec == "jpeg":
        img.save(buf, format=fmt, quality=int(quality), optimize=True)
    else:
        img.save(buf, format=fmt, quality=int(quality))
    return buf.getvalue()


def decode(data: bytes) -> Tensor:
    """File bytes -> uint8 ``[3, H, W]``."""
    with Image.open(io.BytesIO(data)) as dec:
        arr = np.asarray(dec.convert("RGB"))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


def _psnr_uint8(a: Tensor, b: Tensor) -> float:
    """PSNR in dB (data range 255) of two uint8 ``[3, H, W]`` images; 100 dB for identical ones."""
    mse = float((a.double() - b.double()).pow(2).mean())
    return 100.0 if mse == 0 else min(100.0, 10 * math.log10(255.0 ** 2 / mse))


def _pil(image: Tensor | Image.Image) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] != 3:
        raise InputError(f"codecs take uint8 images [3, H, W], got {image.dtype} {tuple(image.shape)}")
    return Image.fromarray(image.permute(1, 2, 0).cpu().numpy(), "RGB")


# --------------------------------------------------------------------------------------------------------------
# Rate curves and interpolation (general helpers)
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RateCurve:
    """One image under one codec: per quality, the file bytes and the PSNR of the decoded pixels."""

    codec: str
    qualities: tuple[int, ...]
    nbytes: tuple[int, ...]
    psnr: tuple[float, ...]

    def frontier(self) -> tuple[np.ndarray, np.ndarray]:
        """The operational rate curve: points sorted by bytes, keeping only those whose PSNR beats every smaller
        file (best PSNR at or below each size). -> (bytes ``[P]``, psnr ``[P]``), both strictly increasing."""
        order = sorted(range(len(self.nbytes)), key=lambda i: (self.nbytes[i], -self.psnr[i]))
        xs, ys = [], []
        for i in order:
            if ys and self.psnr[i] <= ys[-1]:
                continue
            if xs and self.nbytes[i] == xs[-1]:
                continue
            xs.append(self.nbytes[i])
            ys.append(self.psnr[i])
        return np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)


def rate_curve(image: Tensor | Image.Image, codec: str, qualities: Iterable[int] = QUALITIES) -> RateCurve:
    """Encode uint8 ``[3, H, W]`` (or a PIL image) at every quality: the codec's rate curve for this image."""
    img = _pil(image)
    ref = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)
    qs, sizes, psnrs = [], [], []
    for q in qualities:
        data = encode(img, codec, q)
        qs.append(int(q))
        sizes.append(len(data))
        psnrs.append(_psnr_uint8(ref, decode(data)))
    return RateCurve(codec, tuple(qs), tuple(sizes), tuple(psnrs))


def psnr_at_bytes(curve: RateCurve, target_bytes: float) -> float | None:
    """PSNR of the codec at exactly `target_bytes`, interpolated linearly in log bytes between the two neighbouring
    points of the curve's frontier. None when the target is below the smallest file (the codec cannot get there);
    the best PSNR of the curve when the target is above its largest file."""
    xs, ys = curve.frontier()
    if target_bytes < xs[0]:
        return None
    if target_bytes >= xs[-1]:
        return float(ys[-1])
    return float(np.interp(math.log(target_bytes), np.log(xs), ys))


def bytes_for_psnr(curve: RateCurve, target_psnr: float) -> float | None:
    """Bytes the codec needs to reach `target_psnr`, interpolated linearly in log bytes on the curve's frontier
    (the inverse of `psnr_at_bytes`). None when even the best point of the curve stays below the target; the
    smallest file when every point reaches it."""
    xs, ys = curve.frontier()
    if target_psnr > ys[-1]:
        return None
    if target_psnr <= ys[0]:
        return float(xs[0])
    return float(math.exp(np.interp(target_psnr, ys, np.log(xs))))


# --------------------------------------------------------------------------------------------------------------
# The matched point of the evaluation baselines
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Matched:
    """One image at a target size: the decoded file at the highest quality that fits (quality 1 if none does)."""

    decoded: Tensor  # uint8 [3, H, W]
    nbytes: int  # real bytes of that file
    quality: int
    reachable: bool  # False: even quality 1 is larger than the target (then nbytes > target)
    saturated: bool  # True: quality 100 fits, the codec never needs the whole target
    psnr_at_target: float | None  # PSNR interpolated in log bytes at exactly the target (None if unreachable)


def match_bytes(image: Tensor | Image.Image, codec: str, target_bytes: float) -> Matched:
    """Binary search (qualities 1..100, ~8 encodes) for the highest quality whose file is at most `target_bytes`,
    and the PSNR at exactly the target from that point and the next quality (the curve's two neighbours)."""
    img = _pil(image)
    ref = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)
    sizes: dict[int, bytes] = {}

    def enc(q: int) -> bytes:
        if q not in sizes:
            sizes[q] = encode(img, codec, q)
        return sizes[q]

    lo, hi, best = 1, 100, None
    while lo <= hi:
        mid = (lo + hi) // 2
        if len(enc(mid)) <= target_bytes:
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    if best is None:  # even quality 1 is larger than the target
        data = enc(1)
        return Matched(decode(data), len(data), 1, False, False, None)
    data = enc(best)
    decoded = decode(data)
    p_lo = _psnr_uint8(ref, decoded)
    if best == 100:
        return Matched(decoded, len(data), best, True, True, p_lo)
    up = enc(best + 1)  # tested by the search: larger than the target
    curve = RateCurve(codec, (best, best + 1), (len(data), len(up)), (p_lo, _psnr_uint8(ref, decode(up))))
    return Matched(decoded, len(data), best, True, False, psnr_at_bytes(curve, target_bytes))


@dataclass(frozen=True)
class MatchedBatch:
    decoded: Tensor  # uint8 [B, 3, H, W]
    nbytes: Tensor  # int64 [B], real file bytes
    quality: Tensor  # int64 [B]
    reachable: Tensor  # bool [B]
    saturated: Tensor  # bool [B]
    psnr_at_target: Tensor  # float64 [B], NaN where unreachable


def codec_roundtrip(batch: Tensor, codec: str, target_bytes: float) -> MatchedBatch:
    """uint8 ``[B, 3, H, W]`` -> each image through `match_bytes` (see `MatchedBatch`)."""
    _check_codec(codec)
    ms: Sequence[Matched] = [match_bytes(x, codec, target_bytes) for x in batch.cpu()]
    return MatchedBatch(
        decoded=torch.stack([m.decoded for m in ms]),
        nbytes=torch.tensor([m.nbytes for m in ms], dtype=torch.int64),
        quality=torch.tensor([m.quality for m in ms], dtype=torch.int64),
        reachable=torch.tensor([m.reachable for m in ms], dtype=torch.bool),
        saturated=torch.tensor([m.saturated for m in ms], dtype=torch.bool),
        psnr_at_target=torch.tensor([math.nan if m.psnr_at_target is None else m.psnr_at_target for m in ms],
                                    dtype=torch.float64),
    )
