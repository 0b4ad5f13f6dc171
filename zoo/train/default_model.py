"""The embedded default model: export a trained run into the package and measure it against JPEG and WebP.

    python -m zoo.train.default_model export runs/default/model   # -> zoo/weights/default (+ report.json)
    python -m zoo.train.default_model report [MODEL] [--plot docs/default_rd.png] [--grid docs/default_grid.png]

Held out: photos from packages the recipe never reads — scikit-image's bundled photos and Debian's
mate-backgrounds nature photos (those present on the machine are used; the report names them). Protocol:
each photo is brought to 256x256 with the zoo's evaluation crop and rounded to uint8. The tokenizer's size is its
codes bit-packed (tokens x ceil(log2 K) bits). JPEG (Pillow, 4:2:0, ``optimize=True``, quality 1..95) and WebP
(Pillow/libwebp, method 4 = Pillow's default, quality 0..100) are measured on their own quality curves (whole files, headers
included); the bytes a codec needs to reach a PSNR, and the PSNR it reaches at a number of bytes, are interpolated
linearly in log-bytes between the two neighbouring qualities. Where a codec's smallest file already beats the
target PSNR, it needs that smallest file (flag ``floor``); where no quality reaches it, nothing (``ceiling``);
where the target bytes lie below its smallest file, it has no PSNR there (``floor``). PSNR and SSIM (Gaussian
11x11, sigma 1.5, valid window = scikit-image's ``gaussian_weights=True, use_sample_covariance=False``) are
computed on uint8 images; the colour shift is the largest per-channel difference of the mean colours, in 1/255.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

if TYPE_CHECKING:
    from ..eval.rd import RateCurve

SKIMAGE_HELDOUT = ("astronaut", "coffee", "chelsea", "rocket", "camera")  # skimage "cat" is chelsea again
MATE_NATURE = Path("/usr/share/backgrounds/mate/nature")
PROTOCOL = ("256x256 evaluation crop, uint8; tokenizer bytes = tokens x ceil(log2 K) bits; JPEG = Pillow 4:2:0 "
            "optimize=True, q 1..95; WebP = Pillow method 4, q 0..100; codec bytes at the tokenizer's PSNR and codec "
            "PSNR at the tokenizer's bytes interpolated linearly in log-bytes on each codec's own quality curve "
            "(whole files, headers included); PSNR on uint8; SSIM Gaussian 11/1.5, valid window (= skimage "
            "structural_similarity gaussian_weights, sigma 1.5, use_sample_covariance=False); colour shift = max "
            "over channels of |mean(recon) - mean(original)| x 255")


GRID_PHOTOS = ("astronaut", "coffee", "camera", "LadyBird")  # the README grid's rows


def heldout_photos() -> list[str]:
    """The held-out photos present on this machine: scikit-image's, then mate-backgrounds' nature photos."""
    names = [f"skimage:{n}" for n in SKIMAGE_HELDOUT]
    if MATE_NATURE.is_dir():
        names += [str(p) for p in sorted(MATE_NATURE.glob("*.jpg")) if "_" not in p.stem]  # one size per photo
    return names


def _u8(images: torch.Tensor) -> torch.Tensor:
    return images.detach().float().clamp(0, 1).mul(255).round().div(255)


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SSIM (Wang et al., 2004) per image of ``[B, C, H, W]`` in [0, 1]: Gaussian window 11x11, sigma 1.5,
    K1 = 0.01, K2 = 0.03, valid positions only, averaged over channels and positions -> ``[B]``."""
    g = torch.exp(-((torch.arange(11, dtype=torch.float64) - 5) ** 2) / (2 * 1.5 ** 2))
    g = (g / g.sum()).to(a)

    def blur(x: torch.Tensor) -> torch.Tensor:  # the 11x11 Gaussian window, separably, valid positions only
        return (x.unfold(-1, 11, 1) @ g).unfold(-2, 11, 1) @ g

    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a ** 2, blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(1)


def psnr(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    """Per-image PSNR (dB) of two float batches ``[B, 3, H, W]`` in [0, 1] after uint8 rounding."""
    mse = (_u8(a).double() - _u8(b).double()).pow(2).flatten(1).mean(1).clamp_min(1e-12)
    return (10 * torch.log10(1.0 / mse)).tolist()


def psnr_ssim(a: torch.Tensor, b: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-image PSNR (dB) and SSIM of two float batches ``[B, 3, H, W]`` in [0, 1] after uint8 rounding."""
    return psnr(a, b), ssim(_u8(a).double(), _u8(b).double()).tolist()


def colour_shift(recon: torch.Tensor, images: torch.Tensor) -> list[float]:
    """Per image, the largest per-channel difference of mean colours, in 1/255 (uint8-rounded inputs)."""
    diff = _u8(recon).double().mean((2, 3)) - _u8(images).double().mean((2, 3))
    return (diff.abs().amax(1) * 255).tolist()


# ---------------------------------------------------------------------------------------------------------------
# Codec quality curves (zoo.eval.rd measures them; here: which qualities, and what a missing point means)
# ---------------------------------------------------------------------------------------------------------------
QUALITIES = {"jpeg": range(1, 96), "webp": range(0, 101)}


def codec_curve(image: torch.Tensor, codec: str) -> "RateCurve":
    """The codec's rate curve (bytes and PSNR per quality) of one ``[3, H, W]`` image in [0, 1]."""
    from ..eval.rd import rate_curve

    return rate_curve(_u8(image).mul(255).byte(), codec, QUALITIES[codec])


def bytes_at_psnr(curve: "RateCurve", target: float) -> tuple[float | None, str]:
    """Bytes the codec needs to reach `target` dB: (bytes, flag) with flag "" (interpolated in log-bytes),
    "floor" (its smallest file already reaches it) or "ceiling" (no quality does: bytes None)."""
    from ..eval.rd import bytes_for_psnr

    needed = bytes_for_psnr(curve, target)
    if needed is None:
        return None, "ceiling"
    return needed, "floor" if needed <= min(curve.nbytes) else ""


def psnr_at(curve: "RateCurve", nbytes: float) -> tuple[float | None, str]:
    """The codec's PSNR at `nbytes` (log-bytes interpolation): (psnr, "") or (None, "floor") below its smallest
    file."""
    from ..eval.rd import psnr_at_bytes

    got = psnr_at_bytes(curve, nbytes)
    return got, "" if got is not None else "floor"


# ---------------------------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------------------------
def _short(name: str) -> str:
    return name.split(":", 1)[1] if name.startswith("skimage:") else Path(name).stem


def compare_with_codecs(tok: Any, names: Sequence[str] | None = None,
                        codecs: Sequence[str] = ("jpeg", "webp")) -> dict[str, Any]:
    """Per held-out photo: the tokenizer's bytes, PSNR, SSIM, colour shift, and each codec's bytes at the same
    PSNR and PSNR at the same bytes (see the module docstring); averages and codebook usage."""
    from ..quant import codebook_usage
    from .data import center_crops

    names = list(names) if names is not None else heldout_photos()
    images = _u8(center_crops(names, tok.spec.image_size))
    with torch.no_grad():
        codes = tok.encode(images)
        recon = tok.decode(codes)
    nbytes = float(codes.bits().mean()) / 8
    p_tok, s_tok = psnr_ssim(recon, images)
    shift = colour_shift(recon, images)
    grid = tok.spec.grid[0] * tok.spec.grid[1]  # usage of the grid's codes (a colour map's tokens come first)
    usage = codebook_usage(codes.indices[:, -grid:], tok.spec.codebook_sizes)[0]
    rows = []
    for i, name in enumerate(names):
        row: dict[str, Any] = {"image": _short(name), "bytes": nbytes, "psnr": p_tok[i], "ssim": s_tok[i],
                               "colour_shift": shift[i]}
        for codec in codecs:
            curve = codec_curve(images[i], codec)
            b, flag_b = bytes_at_psnr(curve, p_tok[i])
            p, flag_p = psnr_at(curve, nbytes)
            row[codec] = {"bytes_at_psnr": b, "bytes_flag": flag_b, "psnr_at_bytes": p, "psnr_flag": flag_p,
                          "smallest_file": min(curve.nbytes),
                          "curve": {"quality": list(curve.qualities), "bytes": list(curve.nbytes),
                                    "psnr": [round(x, 4) for x in curve.psnr]}}
        rows.append(row)
    summary: dict[str, Any] = {
        "bytes": nbytes, "psnr": _mean(p_tok), "ssim": _mean(s_tok), "colour_shift_max": max(shift),
        "colour_shift_mean": _mean(shift), "codes_used_fraction": usage["used_fraction"],
        "codes_used": int(usage["used"]), "codebook_size": int(tok.spec.codebook_sizes[0]),
    }
    for key in codecs:
        needed = [r[key]["bytes_at_psnr"] for r in rows]
        reached = [r[key]["psnr_at_bytes"] for r in rows]
        summary[key] = {
            "bytes_at_psnr": _mean(needed) if None not in needed else None,
            "bytes_ratio": (_mean(needed) / nbytes) if None not in needed else None,
            "floor_images": [r["image"] for r in rows if r[key]["bytes_flag"] == "floor"],
            "psnr_at_bytes": _mean(reached) if None not in reached else None,
            "unreachable_images": [r["image"] for r in rows if r[key]["psnr_flag"] == "floor"],
        }
    return {"images": [r["image"] for r in rows], "protocol": PROTOCOL, "rows": rows, "summary": summary}


def _mean(xs: Sequence[float | None]) -> float:
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    return sum(xs) / len(xs) if xs else float("nan")


def _fmt(x: float | None, spec: str, flag: str = "") -> str:
    text = "—" if x is None else format(x, spec)
    return text + ("*" if flag == "floor" else "†" if flag == "ceiling" else "")


def format_report(held: dict[str, Any]) -> str:
    """The per-photo table and the averages as plain text (the README's table is made from the same dict)."""
    s = held["summary"]
    head = (f"{'photo':14} {'bytes':>6} {'PSNR':>6} {'SSIM':>6} {'colour':>6} | {'JPEG B @PSNR':>12} "
            f"{'WebP B @PSNR':>12} | {'JPEG dB @B':>10} {'WebP dB @B':>10}")
    lines = [f"held-out photos ({len(held['rows'])}), 256x256; colour = mean-colour shift in 1/255", head,
             "-" * len(head)]
    for r in held["rows"]:
        j, w = r["jpeg"], r["webp"]
        lines.append(f"{r['image'][:14]:14} {r['bytes']:>6.0f} {r['psnr']:>6.2f} {r['ssim']:>6.3f} "
                     f"{r['colour_shift']:>6.2f} | {_fmt(j['bytes_at_psnr'], '12.0f', j['bytes_flag']):>12} "
                     f"{_fmt(w['bytes_at_psnr'], '12.0f', w['bytes_flag']):>12} | "
                     f"{_fmt(j['psnr_at_bytes'], '10.2f', j['psnr_flag']):>10} "
                     f"{_fmt(w['psnr_at_bytes'], '10.2f', w['psnr_flag']):>10}")
    j, w = s["jpeg"], s["webp"]
    lines.append("-" * len(head))
    lines.append(f"{'mean':14} {s['bytes']:>6.0f} {s['psnr']:>6.2f} {s['ssim']:>6.3f} {s['colour_shift_mean']:>6.2f} | "
                 f"{_fmt(j['bytes_at_psnr'], '12.0f'):>12} {_fmt(w['bytes_at_psnr'], '12.0f'):>12} | "
                 f"{_fmt(j['psnr_at_bytes'], '10.2f'):>10} {_fmt(w['psnr_at_bytes'], '10.2f'):>10}")
    for codec, c in (("JPEG", j), ("WebP", w)):
        ratio = "—" if c["bytes_ratio"] is None else f"{c['bytes_ratio']:.2f}x"
        lines.append(f"{codec} needs {ratio} the default's bytes to reach its PSNR (mean over photos)"
                     + (f"; its smallest file already does on {', '.join(c['floor_images'])} (*)"
                        if c["floor_images"] else ""))
    lines.append(f"colour shift: max {s['colour_shift_max']:.2f}/255; codes used: {s['codes_used']} of "
                 f"{s['codebook_size']} ({100 * s['codes_used_fraction']:.1f}%)")
    return "\n".join(lines)


def markdown_summary(held: dict[str, Any]) -> str:
    """The README's table of the default against JPEG and WebP (tests check the README holds exactly this)."""
    s, j, w = held["summary"], held["summary"]["jpeg"], held["summary"]["webp"]
    n = len(held["rows"])
    return "\n".join([
        f"| on {n} held-out photos, 256x256 | zoo `default` | JPEG | WebP |",
        "|---|---|---|---|",
        f"| bytes per image | {s['bytes']:.0f} | {j['bytes_at_psnr']:.0f} at the same PSNR "
        f"({j['bytes_ratio']:.2f}x) | {w['bytes_at_psnr']:.0f} at the same PSNR ({w['bytes_ratio']:.2f}x) |",
        f"| PSNR at {s['bytes']:.0f} bytes | {s['psnr']:.2f} dB | {_reachable_psnr(held, 'jpeg')} | "
        f"{_reachable_psnr(held, 'webp')} |",
        f"| SSIM | {s['ssim']:.3f} | | |",
        f"| mean-colour shift (max over photos) | {s['colour_shift_max']:.2f}/255 | | |",
        f"| codes used | {s['codes_used']} of {s['codebook_size']} | | |",
    ])


def _reachable_psnr(held: dict[str, Any], codec: str) -> str:
    """The codec's mean PSNR at the default's bytes over the photos where it can make a file that small."""
    got = [r[codec]["psnr_at_bytes"] for r in held["rows"] if r[codec]["psnr_at_bytes"] is not None]
    mine = [r["psnr"] for r in held["rows"] if r[codec]["psnr_at_bytes"] is not None]
    if not got:
        return "no file that small"
    return (f"{_mean(got):.2f} dB on the {len(got)} of {len(held['rows'])} photos it can reach "
            f"(default there: {_mean(mine):.2f} dB)")


# ---------------------------------------------------------------------------------------------------------------
# Pictures for the docs
# ---------------------------------------------------------------------------------------------------------------
def plot_rate_distortion(held: dict[str, Any], path: str | os.PathLike) -> Path:
    """PSNR against bytes per image, averaged over the photos at each quality: JPEG's and WebP's curves (from the
    report's rows) and the default's point (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for codec, label, colour in (("jpeg", "JPEG", "tab:red"), ("webp", "WebP", "tab:blue")):
        curves = [row[codec]["curve"] for row in held["rows"]]
        sizes = np.mean([c["bytes"] for c in curves], 0)
        psnrs = np.mean([c["psnr"] for c in curves], 0)
        keep = sizes <= 4 * held["summary"]["bytes"]
        ax.plot(sizes[keep], psnrs[keep], "-", color=colour, label=f"{label} (Pillow), mean over qualities")
    s = held["summary"]
    ax.plot([s["bytes"]], [s["psnr"]], "o", color="black", markersize=8, label="zoo default")
    ax.set_xscale("log")
    ax.set_xlabel("bytes per 256x256 image (log scale)")
    ax.set_ylabel("PSNR (dB), mean over photos")
    ax.set_title(f"Held-out photos ({len(held['rows'])}): the default against JPEG and WebP")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def reconstruction_grid(tok: Any, names: Sequence[str], path: str | os.PathLike) -> Path:
    """Rows of original | default | JPEG | WebP, each codec at the highest quality whose file fits in the
    default's bytes (quality 1 where none does) (PNG)."""
    from ..eval.rd import match_bytes
    from ..images import make_grid, save_image
    from .data import center_crops

    images = _u8(center_crops(list(names), tok.spec.image_size))
    with torch.no_grad():
        codes = tok.encode(images)
        recon = _u8(tok.decode(codes))
    nbytes = float(codes.bits().mean()) / 8
    rows = []
    for img, rec in zip(images, recon):
        row = [img, rec]
        for codec in ("jpeg", "webp"):
            row.append(match_bytes(img.mul(255).round().byte(), codec, nbytes).decoded.float() / 255)
        rows.append(torch.stack(row))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_image(make_grid(rows), path)


# ---------------------------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------------------------
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
    save_pretrained(tok, staging, storage_dtype="float16")  # 14 MB instead of 29 MB; computed in float32
    tok = load_folder(staging)  # measure what ships: the float16-rounded weights
    tok.name = "default"
    held = compare_with_codecs(tok)
    n_params = sum(p.numel() for p in tok.parameters())
    spec = tok.spec
    colour = (f" + {spec.scales[0]} colour tokens (8-bit mean colours of "
              f"{tok.config.colour_block}x{tok.config.colour_block} squares)" if getattr(tok.config, "colour_block", 0)
              else "")
    report = {
        "description": (f"zoo default: {tok.family} f{spec.image_size // spec.grid[0]} conv autoencoder with FSQ "
                        f"levels {'x'.join(map(str, tok.config.levels))}, {n_params / 1e6:.2f}M parameters, "
                        f"{spec.grid[0]}x{spec.grid[1]} tokens from {spec.codebook_sizes[0]} codes{colour} "
                        f"({spec.max_tokens * spec.bits_per_token // 8} bytes/image), trained on CPU on offline "
                        f"photos ({', then '.join(training['recipes'])})"),
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


RECIPES = ("recipes/convfsq/default.yaml", "recipes/convfsq/default_colour.yaml",
           "recipes/convfsq/default_colour_map.yaml")  # the stages that make the shipped weights, in order


def _training_summary(run_dir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"recipes": list(RECIPES)}
    recipe = run_dir / "recipe.yaml"
    if recipe.is_file():
        from .recipe import yaml_load

        rec = yaml_load(recipe.read_text())
        out.update({"threads": rec.get("train", {}).get("threads"), "seed": rec.get("seed"),
                    "train_paths": rec.get("data", {}).get("paths"), "exclude": rec.get("data", {}).get("exclude")})
    log = run_dir / "log.jsonl"
    if log.is_file():
        rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        if rows:
            out.update({"steps": rows[-1]["step"], "final_train_psnr": rows[-1].get("psnr"),
                        "wall_seconds": rows[-1].get("time")})
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zoo.train.default_model")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("export", help="copy a trained model folder into zoo/weights/default and write its report")
    p.add_argument("model_dir")
    p.add_argument("--target", help="the folder to write (default: the package's zoo/weights/default)")
    _picture_options(p)
    p = sub.add_parser("report", help="compare a model (default: the embedded one) with JPEG and WebP on the "
                                      "held-out photos")
    p.add_argument("model", nargs="?", default="default")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--markdown", action="store_true", help="print the README's summary table")
    _picture_options(p)
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    from ..loading import load

    if args.cmd == "export":
        held = export(args.model_dir, args.target)["heldout"]
        tok = load(args.target or "default")
        print(format_report(held))
    else:
        tok = load(args.model)
        held = compare_with_codecs(tok)
        print(json.dumps(held, indent=2) if args.json else markdown_summary(held) if args.markdown else
              format_report(held))
    if args.plot:
        print(f"wrote {plot_rate_distortion(held, args.plot)}")
    if args.grid:
        names = [n for n in heldout_photos() if _short(n) in GRID_PHOTOS]
        print(f"wrote {reconstruction_grid(tok, names, args.grid)}")
    return 0


def _picture_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plot", help="also write the rate-distortion picture here (PNG; needs matplotlib)")
    p.add_argument("--grid", help="also write original | default | JPEG | WebP rows here (PNG)")


if __name__ == "__main__":
    sys.exit(main())
