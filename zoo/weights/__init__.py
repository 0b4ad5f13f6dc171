"""Weights shipped inside the package: the `default` tokenizer (``zoo.load("default")``), usable offline.

`default/` holds ``config.json`` + ``model.safetensors`` (a zoo folder) and ``report.json`` (how it was trained and
how it compares with JPEG on held-out photos; written by ``python -m zoo.train.default_model export``).
`zoo.registry` registers `default_entry()` with the built-in families.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..entries import Metric, ModelEntry

DEFAULT_DIR = Path(__file__).resolve().parent / "default"


def _metrics(report: dict) -> tuple[Metric, ...]:
    """The report's averages as registry metrics (`zoo info default`, the model card)."""
    held = report.get("heldout", {})
    summary = held.get("summary")
    if not summary:
        return ()
    where = f"{len(held.get('images', []))} held-out photos, 256x256 ({', '.join(held.get('images', []))})"
    protocol = held.get("protocol", "")
    source = "zoo/weights/default/report.json"
    out = [Metric("bytes per image", round(summary["bytes"]), where, protocol, source),
           Metric("PSNR", round(summary["psnr"], 2), where, protocol, source),
           Metric("SSIM", round(summary["ssim"], 4), where, protocol, source),
           Metric("max mean-colour shift (1/255)", round(summary["colour_shift_max"], 2), where, protocol, source),
           Metric("codes used (fraction)", round(summary["codes_used_fraction"], 4), where, protocol, source)]
    for codec, label in (("jpeg", "JPEG"), ("webp", "WebP")):
        c = summary.get(codec) or {}
        if c.get("bytes_ratio") is not None:
            out.append(Metric(f"{label} bytes at the same PSNR / ours", round(c["bytes_ratio"], 2), where, protocol,
                              source))
        if c.get("psnr_at_bytes") is not None:
            out.append(Metric(f"{label} PSNR at the same bytes", round(c["psnr_at_bytes"], 2), where, protocol,
                              source))
    return tuple(out)


def _recipe(report: dict) -> str:
    """How the shipped weights were made, for `zoo info` and the model card (the report names the stages)."""
    stages = report.get("training", {}).get("recipes") or ["recipes/convfsq/default.yaml"]
    return (" && ".join(f"zoo train {r}" for r in stages) + ", then python -m zoo.train.default_model export "
            "<the last run>/model (seeded stages on 2 CPU threads; docs/train.md#the-embedded-default-model)")


def default_entry() -> ModelEntry | None:
    """The registry entry of `default` when its weights are in the package (they are, in a normal install)."""
    config_path = DEFAULT_DIR / "config.json"
    if not config_path.is_file() or not (DEFAULT_DIR / "model.safetensors").is_file():
        return None
    meta = json.loads(config_path.read_text())
    report_path = DEFAULT_DIR / "report.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    return ModelEntry(
        name="default",
        family=meta["family"],
        config=meta["config"],
        description=report.get("description", "the zoo's embedded default tokenizer (trained offline on photos)"),
        checkpoint_format="zoo",
        metrics=_metrics(report),
        license="apache-2.0",
        code="recipes/convfsq/default.yaml",
        tags=("embedded", "offline", meta["family"]),
        extra={"package_dir": str(DEFAULT_DIR), "report": report, "recipe": _recipe(report)},
    )
