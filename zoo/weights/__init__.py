"""Weights shipped inside the package: the `default` tokenizer (``zoo.load("default")``), usable offline.

`default/` holds ``config.json`` + ``model.safetensors`` (a zoo folder) and ``report.json`` (how it was trained and
how it compares with JPEG on held-out photos; written by ``python -m zoo.train.default_model export``).
Importing this module registers the entry; `zoo.registry` imports it with the built-in families.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..registry import Metric, ModelEntry, _MODELS, register_model

DEFAULT_DIR = Path(__file__).resolve().parent / "default"


def _metrics(report: dict) -> tuple[Metric, ...]:
    held = report.get("heldout", {})
    if not held:
        return ()
    where = f"{len(held.get('images', []))} held-out photos, 256x256 ({', '.join(held.get('images', []))})"
    protocol = held.get("protocol", "")
    ours = held.get("tokenizer", {})
    jpeg = held.get("jpeg_same_bytes", {})
    out = [Metric("PSNR", round(ours["psnr"], 2), where, protocol, "zoo/weights/default/report.json"),
           Metric("SSIM", round(ours["ssim"], 4), where, protocol, "zoo/weights/default/report.json")]
    if jpeg:
        out += [Metric("JPEG PSNR at the same bytes", round(jpeg["psnr"], 2), where, protocol,
                       "zoo/weights/default/report.json"),
                Metric("JPEG SSIM at the same bytes", round(jpeg["ssim"], 4), where, protocol,
                       "zoo/weights/default/report.json")]
    return tuple(out)


def register_default() -> ModelEntry | None:
    """Register `default` when its weights are in the package (they are, in a normal install)."""
    config_path = DEFAULT_DIR / "config.json"
    if not config_path.is_file() or not (DEFAULT_DIR / "model.safetensors").is_file() or "default" in _MODELS:
        return None
    meta = json.loads(config_path.read_text())
    report_path = DEFAULT_DIR / "report.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    return register_model(ModelEntry(
        name="default",
        family=meta["family"],
        config=meta["config"],
        description=report.get("description", "the zoo's embedded default tokenizer (trained offline on photos)"),
        checkpoint_format="zoo",
        metrics=_metrics(report),
        license="apache-2.0",
        code="recipes/vqgan/default.yaml",
        tags=("embedded", "offline", meta["family"]),
        extra={"package_dir": str(DEFAULT_DIR), "report": report},
    ))


register_default()
