"""Optional dependencies: what each extra of the package brings, and one clear error when one is missing.

``pip install visual-tokenizer-zoo`` runs load / reconstruct / encode / decode / list / info / convert / push /
generate and ``zoo eval`` with PSNR, SSIM, LPIPS and usage. The extras add:

- ``[eval]``: torch-fidelity (rFID's TF-FID Inception through torchmetrics), matplotlib (``rd.png``) and OpenCV
  (the 'albumentations' crop of IBQ's official evaluation);
- ``[train]``: scikit-image (its bundled photos, ``skimage:NAME`` in the shipped recipes);
- ``[unitok]``: open_clip_torch (UniTok's CLIP text tokenizer and zero-shot templates);
- ``[diffusers]``: diffusers (its autoencoders as zoo models: sd-vae-*, sdxl-vae, flux-vae, movq-kandinsky-2-2).
"""
from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtraError

# import name -> (distribution, extra)
EXTRAS: dict[str, tuple[str, str]] = {
    "torch_fidelity": ("torch-fidelity", "eval"),
    "matplotlib": ("matplotlib", "eval"),
    "cv2": ("opencv-python-headless", "eval"),
    "skimage": ("scikit-image", "train"),
    "open_clip": ("open_clip_torch", "unitok"),
    "diffusers": ("diffusers", "diffusers"),
}


def install_hint(module: str) -> str:
    dist, extra = EXTRAS[module.split(".")[0]]
    return f"pip install 'visual-tokenizer-zoo[{extra}]' (or pip install {dist})"


def require(module: str, purpose: str) -> ModuleType:
    """Import `module` (a key of EXTRAS, or a submodule of one) or raise MissingExtraError naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        dist, extra = EXTRAS[module.split(".")[0]]
        raise MissingExtraError(f"{purpose} needs {dist}, which is not installed ({exc}): "
                                f"{install_hint(module)}") from None


def available(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
