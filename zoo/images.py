"""Images in and out: any path / PIL image / array / tensor -> float RGB in [0, 1]; crop protocols; PNGs, grids."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from .errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm", ".jfif")


# -------------------------------------------------------------------------------------------------------------
# Reading
# -------------------------------------------------------------------------------------------------------------
# Bounds checked from the header, before any pixel is decoded: memory stays bounded for any input file.
MAX_PIXELS = int(os.environ.get("ZOO_MAX_IMAGE_PIXELS", 1 << 26))  # 67 M pixels (8192 x 8192)
MAX_ASPECT = float(os.environ.get("ZOO_MAX_IMAGE_ASPECT", 64.0))  # long side / short side


def check_image_size(width: int, height: int, what: str = "image") -> None:
    """`InputError` for an empty image, one with more than `MAX_PIXELS` pixels, or a long side more than
    `MAX_ASPECT` times the short one (bringing its short side to the model's resolution would blow up the long
    one). Both bounds can be raised with ``ZOO_MAX_IMAGE_PIXELS`` / ``ZOO_MAX_IMAGE_ASPECT``."""
    if width < 1 or height < 1:
        raise InputError(f"{what} is empty ({width}x{height} pixels)")
    if width * height > MAX_PIXELS:
        raise InputError(f"{what} is {width}x{height} = {width * height:,} pixels, more than the {MAX_PIXELS:,} "
                         "the zoo decodes (set ZOO_MAX_IMAGE_PIXELS to allow more)")
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise InputError(f"{what} is {width}x{height} pixels: an aspect ratio beyond {MAX_ASPECT:g}:1 "
                         "(set ZOO_MAX_IMAGE_ASPECT to allow more)")


def decode_image(source: str | os.PathLike | bytes, what: str | None = None, draft: int | None = None) -> Image.Image:
    """Open a file (path or bytes), check its size from the header, then decode it fully, honouring its EXIF
    orientation. Anything wrong with the file (corrupt, truncated, not an image, a decompression bomb, too large)
    raises `InputError` naming it. draft: JPEGs may be decoded at a reduced scale whose shorter side stays
    at least `draft` (fast training reads)."""
    label = what or (str(source) if not isinstance(source, bytes) else "(in-memory data)")
    if isinstance(source, bytes):
        import io

        fp: Any = io.BytesIO(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise InputError(f"image file not found: {path}")
        fp = path
    try:
        with Image.open(fp) as img:
            check_image_size(*img.size, what=f"image {label}")
            if draft is not None and img.format == "JPEG":
                w, h = img.size
                scale = max(1.0, min(w, h) / draft)
                img.draft("RGB", (int(w / scale), int(h / scale)))
            img.load()  # decode now, so truncated data fails here rather than later
            out = ImageOps.exif_transpose(img)
            return out.copy() if out is img else out
    except InputError:
        raise
    except Image.DecompressionBombError as exc:
        raise InputError(f"cannot read image {label}: {exc}") from None
    except MemoryError:
        raise InputError(f"cannot read image {label}: not enough memory to decode it") from None
    except Exception as exc:  # Pillow's decoders raise many kinds (OSError, SyntaxError, struct.error, ...)
        raise InputError(f"cannot read image {label}: {' '.join(str(exc).split()) or type(exc).__name__} "
                         "(corrupt, truncated or not an image)") from None


def open_image(path: str | os.PathLike) -> Image.Image:
    """Open and fully decode an image file; corrupt, truncated or oversized files raise `InputError` naming it."""
    return decode_image(path)


def pil_to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode (L, LA, RGBA, P, CMYK, I;16, I, F, ...) -> RGB; transparency is composited on white."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        scale = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / scale * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        arr = arr * 255.0 if arr.max() <= 1.0 else arr
        return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if mode in ("RGBA", "LA", "PA") or img.mode == "RGBA":
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def to_tensor(image: Any) -> Tensor:
    """One image -> float ``[3, H, W]`` in [0, 1].

    Accepts a path, a PIL image (any mode), a numpy array (HxW, HxWx{1,3,4}; uint8, uint16 or float in [0, 1]) or a
    tensor ``[3, H, W]`` / ``[H, W, 3]`` (uint8 or float in [0, 1]).
    """
    if isinstance(image, (str, os.PathLike)):
        image = open_image(image)
    if isinstance(image, Image.Image):
        check_image_size(*image.size)
        if image.getexif().get(0x0112, 1) != 1:  # EXIF orientation: as a file path would be read
            image = ImageOps.exif_transpose(image)
        arr = np.asarray(pil_to_rgb(image), dtype=np.uint8)
        return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)
    if isinstance(image, np.ndarray):
        return _array_to_tensor(image)
    if isinstance(image, Tensor):
        t = image.detach().cpu()
        if t.dim() == 3 and t.shape[0] not in (1, 3, 4) and t.shape[-1] in (1, 3, 4):
            t = t.permute(2, 0, 1)
        return _array_to_tensor(t.permute(1, 2, 0).numpy() if t.dim() == 3 else t.numpy())
    raise InputError(f"cannot read an image from {type(image).__name__}; give a path, PIL image, array or tensor")


def _array_to_tensor(arr: np.ndarray) -> Tensor:
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise InputError(f"an image array must be HxW or HxWxC with C in 1, 3, 4; got shape {arr.shape}")
    check_image_size(arr.shape[1], arr.shape[0])
    if arr.dtype == np.uint8:
        x = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        x = arr.astype(np.float32) / 65535.0
    elif np.issubdtype(arr.dtype, np.floating):
        x = arr.astype(np.float32)
        if not np.isfinite(x).all():
            raise InputError("image array contains NaN or infinite values")
        if x.min() < -1e-3 or x.max() > 1 + 1e-3:
            raise InputError(f"a float image array must be in [0, 1], got [{x.min():.3g}, {x.max():.3g}]")
        x = np.clip(x, 0.0, 1.0)
    elif arr.dtype == np.bool_:
        x = arr.astype(np.float32)
    else:
        raise InputError(f"unsupported image array dtype {arr.dtype} (use uint8, uint16 or float in [0, 1])")
    if x.shape[2] == 1:
        x = np.repeat(x, 3, axis=2)
    elif x.shape[2] == 4:  # composite on white like PIL inputs
        alpha = x[:, :, 3:4]
        x = x[:, :, :3] * alpha + (1.0 - alpha)
    return torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1).contiguous()


# The evaluation crops, by name: what each family's official evaluation code does to an image file. Written into
# every evaluation report. Both run Pillow on the decoded 8-bit image, exactly as the official pipelines do.
CROP_PROTOCOLS: dict[str, str] = {
    "center": "torchvision Resize(size, BICUBIC) + CenterCrop(size) on the PIL image: Pillow bicubic, shorter side "
              "to size, longer side int(size*long/short); crop offset int(round((H-size)/2)) "
              "(TiTok, One-D-Piece, MaskGIT-VQGAN, UniTok, ALIT)",
    "center-bilinear": "torchvision Resize(size) (bilinear, antialias) + CenterCrop(size) on the PIL image: Pillow "
                       "bilinear, otherwise as 'center' (Open-MAGVIT2)",
    "albumentations": "albumentations SmallestMaxSize(size) + CenterCrop(size): OpenCV INTER_LINEAR resize of the "
                      "uint8 image, sides round(side*size/short), crop offset (H-size)//2 (IBQ; needs opencv)",
    "adm": "ADM center_crop_arr: Pillow BOX halving while the shorter side >= 2*size, Pillow BICUBIC shorter side to "
           "size (round), crop offset (H-size)//2 (ImageFolder, LlamaGen)",
    "var": "VAR's val transform: torchvision Resize(round(1.125*size), LANCZOS) + CenterCrop(size) on the PIL image "
           "(shorter side to round(1.125*size), longer int(that*long/short); crop offset int(round((H-size)/2))) "
           "(VAR's VQVAE)",
    "none": "as is (must be size x size)",
}


def describe_crop(crop: str) -> str:
    """The one-line description of a crop protocol (for reports); unknown names raise `InputError`."""
    if crop not in CROP_PROTOCOLS:
        raise InputError(f"unknown crop protocol {crop!r}; use {', '.join(repr(c) for c in CROP_PROTOCOLS)}")
    return CROP_PROTOCOLS[crop]


def load_images(images: Any, size: int | None = None, crop: str = "center") -> Tensor:
    """Many images -> a batch float ``[B, 3, S, S]`` in [0, 1].

    images: one or a list of paths / PIL images / arrays / tensors, or a float batch tensor ``[B, 3, H, W]``.
    size: the model's resolution; each image is brought to it with `crop` (see `CROP_PROTOCOLS`): "center"
        (torchvision ``Resize(size, BICUBIC) + CenterCrop(size)`` on the PIL image: the TiTok / One-D-Piece /
        UniTok / ALIT evaluation pipeline), "adm" (ADM's ``center_crop_arr``: ImageFolder) or "none" (must
        already be size x size). A file gives bit for bit the official pipeline's tensor.
    """
    if isinstance(images, Tensor) and images.dim() == 4:
        batch = images
        check_image_size(int(batch.shape[-1]), int(batch.shape[-2]), "each image of the batch")
        if size is not None and tuple(batch.shape[-2:]) != (size, size):
            batch = torch.stack([prepare(img, size, crop) for img in batch])
        return batch
    if not isinstance(images, (list, tuple)):
        images = [images]
    if len(images) == 0:
        raise InputError("no images given")
    tensors = [to_tensor(img) if size is None else prepare(img, size, crop) for img in images]
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) > 1:
        raise InputError(f"images have different sizes {sorted(shapes)}; pass size= to bring them to one")
    return torch.stack(tensors)


def prepare(image: Any, size: int, crop: str = "center") -> Tensor:
    """One image (path, PIL image, array, ``[3, H, W]`` tensor) -> float ``[3, size, size]`` with the named protocol.

    8-bit images (files, PIL images, uint8 arrays, float tensors on the k/255 grid) go through Pillow in RGB mode,
    exactly as the official code; other float images through the same Pillow filters on float32 planes.
    """
    describe_crop(crop)
    if crop == "none":
        t = to_tensor(image)
        if tuple(t.shape[-2:]) != (size, size):
            raise InputError(f"image is {t.shape[-2]}x{t.shape[-1]}, expected {size}x{size} (crop='none')")
        return t
    if crop == "albumentations":
        return _opencv_smallest_center_crop(image, size)
    planes = _pillow_planes(image)
    if crop == "adm":
        planes = _adm_center_crop(planes, size)
    elif crop == "var":
        planes = _resize_center_crop(planes, size, resize_to=round(1.125 * size), resample=Image.LANCZOS)
    else:
        planes = _resize_center_crop(planes, size,
                                     resample=Image.BILINEAR if crop == "center-bilinear" else Image.BICUBIC)
    return _planes_to_tensor(planes)


def center_crop_resize(image: Any, size: int) -> Tensor:
    """The "center" protocol on one image: ``[3, H, W]`` (or a path / PIL image / array) -> ``[3, size, size]``."""
    if isinstance(image, Tensor) and image.dim() == 4:
        return torch.stack([prepare(x, size, "center") for x in image])
    return prepare(image, size, "center")


def adm_center_crop(image: Any, size: int) -> Tensor:
    """ADM's ``center_crop_arr`` on one image -> ``[3, size, size]``."""
    return prepare(image, size, "adm")


# One image as Pillow planes: [an RGB image] for 8-bit pixels, or three float32 "F" images (the same Pillow
# resampling code, without the 8-bit rounding) for float pixels that are not on the k/255 grid.
def _pillow_planes(image: Any) -> list[Image.Image]:
    if isinstance(image, (str, os.PathLike)):
        image = open_image(image)
    if isinstance(image, Image.Image):
        return [pil_to_rgb(image)]
    t = to_tensor(image)  # [3, H, W] float32 in [0, 1]
    levels = (t * 255).round()
    if torch.equal(levels / 255, t):
        return [Image.fromarray(levels.to(torch.uint8).permute(1, 2, 0).numpy(), "RGB")]
    return [Image.fromarray(c.numpy(), "F") for c in t.float().contiguous()]


def _planes_to_tensor(planes: list[Image.Image]) -> Tensor:
    if len(planes) == 1:
        return to_tensor(planes[0])
    arr = np.stack([np.asarray(p, dtype=np.float32) for p in planes])
    return torch.from_numpy(arr).clamp_(0.0, 1.0)


def _resize(planes: list[Image.Image], wh: tuple[int, int], resample: int) -> list[Image.Image]:
    return [p.resize(wh, resample=resample) for p in planes]


def _crop(planes: list[Image.Image], left: int, top: int, size: int) -> list[Image.Image]:
    return [p.crop((left, top, left + size, top + size)) for p in planes]


def _resize_center_crop(planes: list[Image.Image], size: int, resize_to: int | None = None,
                        resample: int = Image.BICUBIC) -> list[Image.Image]:
    """torchvision ``Resize(resize_to or size, resample)`` then ``CenterCrop(size)`` on PIL images (their size and
    offset rules)."""
    w, h = planes[0].size
    short, long = (w, h) if w <= h else (h, w)
    target = resize_to or size
    new_short, new_long = target, int(target * long / short)
    nw, nh = (new_short, new_long) if w <= h else (new_long, new_short)
    if (nw, nh) != (w, h):
        planes = _resize(planes, (nw, nh), resample)
    top, left = int(round((nh - size) / 2.0)), int(round((nw - size) / 2.0))
    return _crop(planes, left, top, size)


def _opencv_smallest_center_crop(image: Any, size: int) -> Tensor:
    """albumentations ``SmallestMaxSize(size)`` (cv2.resize INTER_LINEAR, sides ``round(side·scale)``, skipped
    at scale 1) then ``CenterCrop(size, size)`` (offsets ``(H - size) // 2``) on the uint8 image (float pixels off
    the k/255 grid are resized as float32)."""
    from .extras import require

    cv2 = require("cv2", "the 'albumentations' crop (IBQ's official evaluation)")
    t = to_tensor(open_image(image) if isinstance(image, (str, os.PathLike)) else image)  # [3, H, W] in [0, 1]
    levels = (t * 255).round()
    on_grid = torch.equal(levels / 255, t)
    arr = (levels.to(torch.uint8) if on_grid else t.float()).permute(1, 2, 0).contiguous().numpy()
    h, w = arr.shape[:2]
    scale = size / min(h, w)
    if scale != 1.0:
        nh, nw = round(h * scale), round(w * scale)
        arr = cv2.resize(arr, (nw, nh), interpolation=cv2.INTER_LINEAR)
    h, w = arr.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    out = torch.from_numpy(np.ascontiguousarray(arr[top:top + size, left:left + size])).permute(2, 0, 1)
    return out.float() / 255 if on_grid else out.float().clamp_(0.0, 1.0)


def _adm_center_crop(planes: list[Image.Image], size: int) -> list[Image.Image]:
    """ADM ``center_crop_arr``: BOX-halve while the shorter side >= 2*size, bicubic to size (round), floor offsets."""
    while min(*planes[0].size) >= 2 * size:
        planes = _resize(planes, tuple(x // 2 for x in planes[0].size), Image.BOX)
    scale = size / min(*planes[0].size)
    planes = _resize(planes, tuple(round(x * scale) for x in planes[0].size), Image.BICUBIC)
    w, h = planes[0].size
    return _crop(planes, (w - size) // 2, (h - size) // 2, size)


def list_image_files(paths: Iterable[str | os.PathLike], recursive: bool = True) -> list[Path]:
    """Expand files and folders into a sorted list of image files (folders searched recursively)."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = p.rglob("*") if recursive else p.glob("*")
            out.extend(sorted(f for f in found if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES))
        elif p.is_file():
            out.append(p)
        else:
            raise InputError(f"no such file or folder: {p}")
    if not out:
        raise InputError("no image files found in " + ", ".join(str(p) for p in paths))
    return out


# -------------------------------------------------------------------------------------------------------------
# Writing
# -------------------------------------------------------------------------------------------------------------
def to_uint8(images: Tensor) -> Tensor:
    """float [0, 1] -> uint8 by clamping and rounding (the evaluation protocol's quantisation)."""
    return images.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)


def to_pil(image: Tensor) -> Image.Image:
    """``[3, H, W]`` float in [0, 1] -> PIL RGB (rounded)."""
    return Image.fromarray(to_uint8(image).permute(1, 2, 0).cpu().numpy(), "RGB")


def save_image(image: Tensor, path: str | os.PathLike) -> Path:
    """Write ``[3, H, W]`` as a PNG (atomically)."""
    from .atomic import atomic_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        to_pil(image).save(tmp, format="PNG")
    return path


def make_grid(rows: Sequence[Tensor], pad: int = 2, value: float = 1.0) -> Tensor:
    """Rows of images (each ``[N, 3, H, W]``) -> one image ``[3, H', W']`` with padding. Cells are as large as the
    largest image; smaller ones (models of other resolutions in one report) sit centred in theirs."""
    if not rows:
        raise InputError("make_grid needs at least one row")
    n = max(r.shape[0] for r in rows)
    c = rows[0].shape[1]
    h, w = max(r.shape[-2] for r in rows), max(r.shape[-1] for r in rows)
    grid = torch.full((c, len(rows) * (h + pad) + pad, n * (w + pad) + pad), value)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            ih, iw = img.shape[-2:]
            top, left = pad + i * (h + pad) + (h - ih) // 2, pad + j * (w + pad) + (w - iw) // 2
            grid[:, top:top + ih, left:left + iw] = img.detach().float().cpu().clamp(0, 1)
    return grid


def psnr(a: Tensor, b: Tensor) -> Tensor:
    """PSNR in dB per image between two float batches in [0, 1], after uint8 rounding of both (``[B]``)."""
    x, y = to_uint8(a).double() / 255, to_uint8(b).double() / 255
    mse = (x - y).pow(2).flatten(1).mean(1).clamp_min(1e-12)
    return 10 * torch.log10(1.0 / mse)


# scikit-image's bundled colour photos (no download needed); grey or synthetic images are left out.
_SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "retina", "hubble_deep_field",
                   "cat", "motorcycle_left", "motorcycle_right")


def skimage_photo_names() -> list[str]:
    """The names ``skimage:NAME`` accepts (training data, `zoo` commands)."""
    return list(_SKIMAGE_PHOTOS)


def skimage_photo(name: str) -> np.ndarray:
    """A bundled scikit-image photo, ``[H, W, 3]`` uint8."""
    from .extras import require

    photos = require("skimage.data", f"the photo skimage:{name}")
    if name in ("motorcycle_left", "motorcycle_right"):
        left, right, _ = photos.stereo_motorcycle()
        return left if name.endswith("left") else right
    return getattr(photos, name)()
