"""Training logs: always a JSONL file (one object per logged step); tensorboard too when it is installed.

accelerate silently drops logs when a requested tracker is not installed; here the JSONL file is always written,
tensorboard is requested only when importable, and the run says which trackers are active.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Mapping

from ..progress import StepReport

log = logging.getLogger(__name__)


class TrainLogger:
    def __init__(self, accelerator: Any, output: Path, mode: str, config: Mapping[str, Any], quiet: bool = False):
        self.accelerator, self.quiet = accelerator, quiet
        self.main = accelerator.is_main_process
        self.path = Path(output) / "log.jsonl"
        self.trackers: list[str] = ["jsonl"]
        self._t0 = time.time()
        self.report: StepReport | None = None
        if not self.main:
            return
        total = int(config.get("train", {}).get("max_steps", 0)) if isinstance(config, Mapping) else 0
        self.report = StepReport(total, "train", log, quiet=quiet)
        if accelerator.log_with:  # the trainer asked for tensorboard because it is installed
            accelerator.init_trackers("zoo-train", config=_flat(config))
            if accelerator.trackers:
                self.trackers.append("tensorboard")
        if mode in ("auto", "tensorboard") and "tensorboard" not in self.trackers:
            self.echo(f"tensorboard is not installed: logging to {self.path} only (pip install tensorboard)")

    def rewind(self, step: int) -> int:
        """Drop the rows logged after `step` (a run killed after its last checkpoint logged steps that the
        resumed run logs again); returns how many were dropped. The file is rewritten atomically."""
        if not self.main or not self.path.is_file():
            return 0
        from ..atomic import atomic_write_text

        kept, dropped = [], 0
        for line in self.path.read_text().splitlines():
            try:
                row_step = json.loads(line).get("step")
            except (ValueError, AttributeError):
                dropped += 1  # a line cut short by the kill
                continue
            if isinstance(row_step, int) and row_step > step:
                dropped += 1
                continue
            kept.append(line)
        if dropped:
            atomic_write_text(self.path, "".join(f"{line}\n" for line in kept))
        return dropped

    def echo(self, text: str) -> None:
        if self.main and not self.quiet:
            log.info("%s", text)

    def log(self, step: int, values: Mapping[str, float]) -> None:
        if not self.main:
            return
        row = {"step": step, "time": round(time.time() - self._t0, 3), **{k: float(v) for k, v in values.items()}}
        with open(self.path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
        if "tensorboard" in self.trackers:
            self.accelerator.log(dict(values), step=step)
        if self.report is not None:
            self.report.update(step, {k: float(v) for k, v in values.items() if k in _SHOWN})

    def close(self) -> None:
        if self.report is not None:
            self.report.close()
        if "tensorboard" in self.trackers:
            self.accelerator.end_training()


_SHOWN = ("loss/total", "loss/l1", "loss/l2", "loss/proxy_ce", "loss/d", "psnr", "codebook/used_fraction", "lr")


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return out


def tensorboard_available() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True
