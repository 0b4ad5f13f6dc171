"""Rate–distortion: Pillow JPEG / WebP at a matched byte size per image (the classic-codec baselines)."""
from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..errors import InputError

CODECS = {"jpeg": "JPEG", "webp": "WEBP"}


def encode_at_size(img: Image.Image, codec: str, target_bytes: float) -> bytes:
    """The highest quality (1..100, binary search) whose file is at most `target_bytes`; quality 1 if even that
    is larger (then the baseline spends more bytes than the tokenizer: the report shows the real size)."""
    fmt = CODECS.get(codec)
    if fmt is None:
        raise InputError(f"unknown codec {codec!r}; use {', '.join(CODECS)}")

    def enc(q: int) -> bytes:
        buf = io.BytesIO()
        img.save(buf, format=fmt, quality=q)
        return buf.getvalue()

    lo, hi, best = 1, 100, enc(1)
    while lo <= hi:
        mid = (lo + hi) // 2
        data = enc(mid)
        if len(data) <= target_bytes:
            best, lo = data, mid + 1
        else:
            hi = mid - 1
    return best


def codec_roundtrip(batch: Tensor, codec: str, target_bytes: float) -> tuple[Tensor, Tensor]:
    """uint8 ``[B, 3, H, W]`` -> (decoded uint8 ``[B, 3, H, W]``, bytes used ``[B]``)."""
    out, sizes = [], []
    for x in batch.cpu():
        img = Image.fromarray(x.permute(1, 2, 0).numpy(), "RGB")
        data = encode_at_size(img, codec, target_bytes)
        with Image.open(io.BytesIO(data)) as dec:
            arr = np.asarray(dec.convert("RGB"))
        out.append(torch.from_numpy(arr.copy()).permute(2, 0, 1))
        sizes.append(len(data))
    return torch.stack(out), torch.tensor(sizes, dtype=torch.int64)
