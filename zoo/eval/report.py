"""Reports: report.json, report.md (results table + protocol), a rate–distortion plot, a reconstruction grid."""
from __future__ import annotations

import json
import logging
import os
import platform
from pathlib import Path
from typing import Any, Sequence

import torch

from ..images import make_grid, save_image

log = logging.getLogger(__name__)

COLUMNS = [("model", "model", "{}"), ("num_tokens", "tokens", "{}"), ("images", "N", "{}"), ("crop", "crop", "{}"),
           ("bits_per_image", "bits/img", "{:.0f}"), ("psnr", "PSNR dB", "{:.2f}"), ("ssim", "SSIM", "{:.4f}"),
           ("lpips", "LPIPS", "{:.4f}"), ("rfid", "rFID", "{:.3f}"), ("perplexity", "perplexity", "{}"),
           ("dead", "dead codes", "{}"), ("images_per_s", "model img/s", "{:.1f}")]


REPORT_FILES = ("report.json", "report.md", "rd.png", "samples.png")
RUNNING_MARK = "EVAL_RUNNING.txt"


def _atomic_write(path: Path, text: str) -> None:
    from ..atomic import atomic_write_text

    atomic_write_text(path, text)


def mark_report_stale(out: Path) -> None:
    """Before an evaluation writes into `out`: move an earlier report aside (``previous/``) and leave a note that
    a run is under way, so an interrupted run never leaves the old numbers looking like its own."""
    import shutil
    import time

    old = [out / name for name in REPORT_FILES if (out / name).exists()]
    if old:
        previous = out / "previous"
        shutil.rmtree(previous, ignore_errors=True)
        previous.mkdir(exist_ok=True)
        for path in old:
            os.replace(path, previous / path.name)
    _atomic_write(out / RUNNING_MARK, f"zoo eval started writing here at {time.strftime('%Y-%m-%d %H:%M:%S')} "
                  "and has not finished: no report.json means no complete result"
                  + (" (the earlier report is in previous/)" if old else "") + ".\n")


def versions() -> dict[str, str]:
    import torchmetrics

    out = {"python": platform.python_version(), "torch": torch.__version__, "torchmetrics": torchmetrics.__version__}
    try:
        import torch_fidelity

        out["torch_fidelity"] = torch_fidelity.__version__
    except ImportError:
        pass
    return out


def model_label(r: dict) -> str:
    """The model's name, with the precision it ran in when that was not fp32 (its numbers differ from fp32's)."""
    precision = r.get("precision")
    return r["model"] if precision in (None, "fp32") else f"{r['model']} ({precision})"


def _cell(r: dict, key: str, fmt: str) -> str:
    if key in ("perplexity", "dead"):
        groups = r.get("usage")
        if not groups:
            return "–"
        vals = [g[key] for g in groups]
        return "/".join(f"{v:.1f}" if key == "perplexity" else str(v) for v in vals)
    v = r.get(key)
    if v is None:
        return "–"
    if key == "model":
        return model_label(r)
    if key == "bits_per_image" and r.get("continuous"):  # float16 latents: not a code (see the protocol notes)
        return fmt.format(v) + "*"
    try:
        return fmt.format(v)
    except (ValueError, TypeError):
        return str(v)


def markdown(results: Sequence[dict], meta: dict) -> str:
    lines = ["# Evaluation report", "", f"Data: `{meta.get('data')}`", ""]
    lines.append("| " + " | ".join(h for _, h, _ in COLUMNS) + " |")
    lines.append("|" + "---|" * len(COLUMNS))
    for r in results:
        lines.append("| " + " | ".join(_cell(r, k, f) for k, _, f in COLUMNS) + " |")
    skipped = max((r.get("skipped", 0) for r in results), default=0)
    if skipped:
        lines += ["", f"{skipped} corrupt or unreadable images were skipped."]
    for metric, why in (meta.get("skipped_metrics") or {}).items():
        lines += ["", f"Not measured: {metric} ({why})."]
    lines += baseline_lines(results)
    proto = next((r["protocol"] for r in results if "protocol" in r), {})
    crops = {r["protocol"]["crop"] for r in results if "crop" in r.get("protocol", {})}
    sizes = {r["protocol"]["size"] for r in results if "size" in r.get("protocol", {})}
    lines += ["", "## Protocol", ""]
    for k, v in proto.items():
        if k == "size" and len(sizes) > 1:
            lines.append("- **size** (per row, the model's resolution): " + ", ".join(str(x) for x in sorted(sizes)))
        elif k == "crop" and len(crops) > 1:
            lines += ["- **crop** (per row, the model's official evaluation crop):"]
            lines += [f"  - {c}" for c in sorted(crops)]
        else:
            lines.append(f"- **{k}**: {v}")
    ext = next((r["fid_extractor"] for r in results if "fid_extractor" in r), None)
    if ext:
        lines.append(f"- **FID weights**: {ext['name']}, sha256 `{ext['sha256']}` "
                     f"({'official, verified' if ext.get('verified') else 'NOT the verified official file'})")
        lines.append(f"- **reference**: the same crops of the same data (N = {results[0].get('rfid_reference_n')})")
    lp = next((r["lpips_net"] for r in results if "lpips_net" in r), None)
    if lp:
        lines.append(f"- **LPIPS**: torchmetrics linear heads, backbone {lp}")
    lines.append("- **bits/img**: tokens × Σ ceil(log2 K) over groups (fixed-rate code); codecs: real file bytes × 8")
    note = next((r["bits_note"] for r in results if r.get("continuous") and "bits_note" in r), None)
    if note:
        lines.append(f"- **bits/img\\***: {note}")
    match = next((r["rd_match"] for r in results if "rd_match" in r), None)
    if match:
        lines.append(f"- **codec match**: {match}")
    lines.append("- **versions**: " + ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items()))
    lines += ["", "![rate–distortion](rd.png)" if meta.get("rd_plot") else "", "![samples](samples.png)", ""]
    return "\n".join(lines)


def baseline_lines(results: Sequence[dict]) -> list[str]:
    """The codec rows explained: real bytes against the target, PSNR interpolated at the target, and a flag for
    every codec that cannot reach the target on some images."""
    rows = [r for r in results if r.get("family") == "codec" and r.get("target_bytes") is not None]
    if not rows:
        return []
    out = ["", "## Baselines at the tokenizer's bytes", ""]
    for r in rows:
        target, real, n = r["target_bytes"], r.get("bytes_per_image"), r.get("images", 0)
        at = r.get("psnr_at_target")
        line = (f"- **{r['model']}** ({r.get('codec', '')}), target {target:.0f} B/img: real {real:.0f} B/img "
                f"at the highest quality that fits" if real is not None else f"- **{r['model']}**")
        if at is not None:
            line += (f"; PSNR at exactly {target:.0f} B, interpolated linearly in log bytes on each image's rate "
                     f"curve: {at:.2f} dB ({r.get('psnr_at_target_images')} images)")
        out.append(line)
        bad = r.get("unreachable", 0)
        if bad:
            out.append(f"  - **FLAG: {r['model']} cannot reach {target:.0f} B on {bad} of {n} images**: even quality "
                       f"1 needs {r.get('unreachable_bytes_mean') or 0:.0f} B on average there; those images use "
                       f"quality 1, so this row spends more bytes than the tokenizer and is not a matched point.")
        if r.get("saturated"):
            out.append(f"  - {r['model']} at quality 100 stays below the target on {r['saturated']} of {n} images "
                       f"(its best is used there).")
    return out


def rd_plot(results: Sequence[dict], path: Path) -> Path | None:
    """Quality against bits per image: one series per model (budgets joined) and per codec."""
    points = [r for r in results if r.get("bits_per_image") is not None]
    metrics = [m for m in ("psnr", "ssim", "lpips", "rfid") if any(m in r for r in points)]
    if not points or not metrics:
        return None
    from ..extras import available, install_hint

    if not available("matplotlib"):
        log.warning("rd.png not written: the plot needs matplotlib (%s)", install_hint("matplotlib"))
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.4), squeeze=False)
    series: dict[str, list[dict]] = {}
    for r in points:
        series.setdefault(model_label(r), []).append(r)
    for ax, m in zip(axes[0], metrics):
        for name, rs in series.items():
            rs = sorted((r for r in rs if m in r), key=lambda r: r["bits_per_image"])
            ax.plot([r["bits_per_image"] for r in rs], [r[m] for r in rs], "o-" if len(rs) > 1 else "o",
                    label=name, linestyle="--" if rs and rs[0].get("family") == "codec" else "-")
        ax.set_xscale("log")
        ax.set_xlabel("bits per image")
        ax.set_ylabel(m.upper() if m != "rfid" else "rFID")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    from ..atomic import atomic_file

    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def _resized(images: Any, size: Any) -> Any:
    """A batch ``[N, 3, h, w]`` at `size` (bilinear, antialiased; unchanged when it already is that size)."""
    import torch.nn.functional as F

    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images, size=tuple(size), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


def write_report(results: Sequence[dict], out: str | os.PathLike, meta: dict[str, Any]) -> dict[str, Path]:
    """Write report.json, report.md, rd.png (two or more points) and samples.png into `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta = dict(meta, versions=versions())
    written: dict[str, Path] = {}
    samples = [(r, r["_samples"]) for r in results if "_samples" in r]
    clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in results]
    if len(clean) >= 2 and rd_plot(clean, out / "rd.png"):
        written["rd"] = out / "rd.png"
        meta["rd_plot"] = True
    if samples:
        rows = [samples[0][1][0].float() / 255] + [s[1].float() / 255 for _, s in samples]
        rows = [_resized(r, rows[0].shape[-2:]) for r in rows]  # models of other sizes: shown at the first one's
        written["samples"] = save_image(make_grid(rows), out / "samples.png")
    _atomic_write(out / "report.json", json.dumps({"meta": meta, "results": clean}, indent=2, default=str))
    _atomic_write(out / "report.md", markdown(clean, meta))
    written["json"], written["md"] = out / "report.json", out / "report.md"
    import shutil

    shutil.rmtree(out / "previous", ignore_errors=True)  # this run's report replaces it
    (out / RUNNING_MARK).unlink(missing_ok=True)
    return written
