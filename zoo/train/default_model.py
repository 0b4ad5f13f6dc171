"""The embedded default model: export a trained run into the package and compare it with JPEG at the same bytes.

    python -m zoo.train.default_model export runs/default/model   # -> zoo/weights/default (+ report.json)
    python -m zoo.train.default_model report [MODEL]              # the comparison table only

Protocol: held-out photos (never trained on) are brought to 256x256 with the zoo's evaluation crop (shorter side
bicubic+antialias, centre crop) and rounded to uint8. The tokenizer's size is its codes bit-packed
(tokens x ceil(log2 K) bits); JPEG (Pillow, 4:2:0, optimized Huffman tables, whole file with headers) takes the
highest quality whose file is not larger than that. PSNR and SSIM (Gaussian 11x11, sigma 1.5, valid window) are
computed on uint8-rounded images and averaged over photos.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

HELDOUT = ("skimage:astronaut", "skimage:coffee", "skimage:chelsea", "skimage:rocket",
           "/usr/share/backgrounds/mate/nature/LadyBird.jpg", "/usr/share/backgrounds/mate/nature/FreshFlower.jpg")
PROTOCOL = ("256x256 evaluation crop, uint8; tokenizer bytes = tokens x ceil(log2 K) bits; JPEG = Pillow 4:2:0 "
            "optimize=True, highest quality with file size <= tokenizer bytes (headers included); PSNR on uint8; "
            "SSIM Gaussian 11/1.5, valid window (= skimage structural_similarity gaussian_weights, sigma 1.5, "
            "use_sample_covariance=False)")


def available_heldout(names: Sequence[str] = HELDOUT) -> list[str]:
    return [n for n in names if n.startswith("skimage:") or Path(n).is_file()]


def _u8(images: torch.Tensor) -> torch.Tensor:
    return images.detach().float().clamp(0, 1).mul(255).round().div(255)


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SSIM (Wang et al., 2004) per image of ``[B, C, H, W]`` in [0, 1]: Gaussian window 11x11, sigma 1.5,
    K1 = 0.01, K2 = 0.03, valid positions only, averaged over channels and positions -> ``[B]``."""
    g = torch.exp(-((torch.arange(11, dtype=torch.float64) - 5) ** 2) / (2 * 1.5 ** 2))
    g = g / g.sum()
    c = a.shape[1]
    win = (g[:, None] * g[None, :]).expand(c, 1, 11, 11).to(a)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(x, win, groups=c)

    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a ** 2, blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(1)


def psnr_ssim(a: torch.Tensor, b: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-image PSNR (dB) and SSIM of two float batches ``[B, 3, H, W]`` in [0, 1] after uint8 rounding."""
    a, b = _u8(a).double(), _u8(b).double()
    mse = (a - b).pow(2).flatten(1).mean(1).clamp_min(1e-12)
    return (10 * torch.log10(1.0 / mse)).tolist(), ssim(a, b).tolist()


def jpeg_roundtrip(image: torch.Tensor, quality: int) -> tuple[torch.Tensor, int]:
    """``[3, H, W]`` in [0, 1] -> (decoded JPEG ``[3, H, W]``, file bytes)."""
    arr = _u8(image).mul(255).byte().permute(1, 2, 0).cpu().numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality, optimize=True)
    data = buf.getvalue()
    dec = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    return torch.from_numpy(dec.copy()).permute(2, 0, 1).float() / 255, len(data)


def jpeg_at_most(image: torch.Tensor, max_bytes: float) -> tuple[torch.Tensor, int, int]:
    """The highest JPEG quality whose file fits in `max_bytes` (quality 1 if none does): (image, bytes, quality)."""
    best = None
    lo, hi = 1, 95
    while lo <= hi:  # file size grows with quality (monotone in practice): binary search
        q = (lo + hi) // 2
        dec, n = jpeg_roundtrip(image, q)
        if n <= max_bytes:
            best, lo = (dec, n, q), q + 1
        else:
            hi = q - 1
    if best is None:
        dec, n = jpeg_roundtrip(image, 1)
        best = (dec, n, 1)
    return best


def jpeg_bytes_for_psnr(image: torch.Tensor, target_psnr: float) -> tuple[int, int]:
    """The smallest JPEG (over qualities 1..95) reaching `target_psnr`: (bytes, quality); (-1, -1) if none does."""
    ref = _u8(image).double()
    for q in range(1, 96):
        dec, n = jpeg_roundtrip(image, q)
        mse = float((dec.double() - ref).pow(2).mean())
        if 10 * math.log10(1.0 / max(mse, 1e-12)) >= target_psnr:
            return n, q
    return -1, -1


def compare_with_jpeg(tok: Any, names: Sequence[str] | None = None, match_psnr: bool = True) -> dict[str, Any]:
    """PSNR/SSIM of `tok` and of JPEG at the same bytes on held-out photos (see the module docstring).

    match_psnr: also find, per photo, the smallest JPEG that reaches the tokenizer's PSNR.
    """
    from .data import center_crops

    names = list(names) if names is not None else available_heldout()
    images = _u8(center_crops(names, tok.spec.image_size))
    codes = tok.encode(images)
    recon = tok.decode(codes)
    nbytes = float(codes.bits().mean()) / 8
    p_tok, s_tok = psnr_ssim(recon, images)
    jpeg_imgs, jpeg_bytes, jpeg_q = [], [], []
    for img in images:
        dec, n, q = jpeg_at_most(img, nbytes)
        jpeg_imgs.append(dec)
        jpeg_bytes.append(n)
        jpeg_q.append(q)
    p_jpg, s_jpg = psnr_ssim(torch.stack(jpeg_imgs), images)
    match = [jpeg_bytes_for_psnr(img, p) if match_psnr else (-1, -1) for img, p in zip(images, p_tok)]
    short = [Path(n).stem if not n.startswith("skimage:") else n.split(":", 1)[1] for n in names]
    return {
        "images": short, "protocol": PROTOCOL,
        "tokenizer": {"bytes": nbytes, "psnr": _mean(p_tok), "ssim": _mean(s_tok), "per_image_psnr": p_tok,
                      "per_image_ssim": s_tok},
        "jpeg_same_bytes": {"bytes": _mean(jpeg_bytes), "psnr": _mean(p_jpg), "ssim": _mean(s_jpg),
                            "quality": jpeg_q, "per_image_bytes": jpeg_bytes, "per_image_psnr": p_jpg,
                            "per_image_ssim": s_jpg},
        "jpeg_same_psnr": {"per_image_bytes": [m[0] for m in match], "quality": [m[1] for m in match],
                           "bytes": _mean([m[0] for m in match if m[0] > 0]) if any(m[0] > 0 for m in match)
                           else None},
    }


def _mean(xs: Sequence[float]) -> float:
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    return sum(xs) / len(xs) if xs else float("nan")


def format_report(held: dict[str, Any]) -> str:
    t, j, m = held["tokenizer"], held["jpeg_same_bytes"], held["jpeg_same_psnr"]
    lines = [f"held-out photos ({len(held['images'])}): {', '.join(held['images'])}",
             f"{'':26} {'bytes/image':>12} {'PSNR dB':>8} {'SSIM':>7}",
             f"{'default tokenizer':26} {t['bytes']:>12.0f} {t['psnr']:>8.2f} {t['ssim']:>7.4f}",
             f"{'JPEG, same bytes or fewer':26} {j['bytes']:>12.0f} {j['psnr']:>8.2f} {j['ssim']:>7.4f}"]
    if m.get("bytes"):
        lines.append(f"JPEG needs {m['bytes']:.0f} bytes/image on average to reach the tokenizer's PSNR per photo")
    return "\n".join(lines)


def export(model_dir: str | os.PathLike, target: str | os.PathLike | None = None,
           run_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Copy a trained zoo folder into the package as `default` and write its report.json (atomically)."""
    from ..loading import load_folder, save_pretrained
    from ..weights import DEFAULT_DIR

    target = Path(target) if target is not None else DEFAULT_DIR
    tok = load_folder(model_dir)
    tok.name = "default"
    run_dir = Path(run_dir) if run_dir is not None else Path(model_dir).parent
    training = _training_summary(run_dir)
    staging = target.with_name(target.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    save_pretrained(tok, staging)
    held = compare_with_jpeg(tok)
    n_params = sum(p.numel() for p in tok.parameters())
    spec = tok.spec
    report = {
        "description": (f"zoo default: {tok.family} f{tok.spec.image_size // spec.grid[0]} conv VQGAN, "
                        f"{n_params / 1e6:.2f}M parameters, {spec.grid[0]}x{spec.grid[1]} tokens from "
                        f"{spec.codebook_sizes[0]} codes ({spec.max_tokens * spec.bits_per_token // 8} bytes/image), "
                        "trained on CPU on offline photos (recipes/vqgan/default.yaml)"),
        "parameters": n_params, "training": training, "heldout": held,
    }
    (staging / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    old = target.with_name(target.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)
    return report


def _training_summary(run_dir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"recipe": "recipes/vqgan/default.yaml"}
    log = run_dir / "log.jsonl"
    if log.is_file():
        rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        if rows:
            out.update({"steps": rows[-1]["step"], "final_train_psnr": rows[-1].get("psnr"),
                        "wall_seconds": rows[-1].get("time"), "threads": 1})
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zoo.train.default_model")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("export", help="copy a trained model folder into zoo/weights/default and write its report")
    p.add_argument("model_dir")
    p.add_argument("--target")
    p = sub.add_parser("report", help="compare a model (default: the embedded one) with JPEG on held-out photos")
    p.add_argument("model", nargs="?", default="default")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.cmd == "export":
        report = export(args.model_dir, args.target)
        print(format_report(report["heldout"]))
        return 0
    from ..loading import load

    print(format_report(compare_with_jpeg(load(args.model))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
