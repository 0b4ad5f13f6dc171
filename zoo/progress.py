"""One progress and logging convention for every long command.

- Progress: a tqdm bar on stderr with a total and an ETA when stderr is a terminal; nothing when it is piped or
  redirected (logs stay clean) or when the command runs with ``-q``.
- Messages: the standard `logging` module under the ``zoo`` logger (``log = logging.getLogger(__name__)`` in each
  module). The CLI sends them to stderr as ``zoo: message`` lines (INFO and up; WARNING and up with ``-q``); a
  library user configures logging as usual.
- Training steps (`StepReport`): on a terminal a bar whose postfix holds the latest values; otherwise one
  ``step N/M  key=value ...  ETA h:mm:ss`` INFO line per logged step, in the same format for every trainer.
"""
from __future__ import annotations

import logging
import sys
import time
from datetime import timedelta
from typing import Any, Iterable, Mapping

_state = {"quiet": False}


def setup_logging(quiet: bool = False) -> None:
    """Route the ``zoo`` logger to stderr for the command line (once per process)."""
    _state["quiet"] = quiet
    logger = logging.getLogger("zoo")
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("zoo: %(message)s"))
        logger.addHandler(handler)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time of each message (tests and tqdm swap it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def bars_enabled(quiet: bool = False) -> bool:
    """Progress bars only on a terminal, and never with -q."""
    return not (quiet or _state["quiet"]) and sys.stderr.isatty()


def progress(iterable: Iterable | None = None, total: int | None = None, desc: str = "", unit: str = "it",
             quiet: bool = False):
    """A tqdm bar (total and ETA) on a terminal; otherwise a silent tqdm, so `update` / `close` always work."""
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, disable=not bars_enabled(quiet),
                dynamic_ncols=True, leave=False)


class StepReport:
    """Training progress: ``update(step, values)`` at each logged step of `total`."""

    def __init__(self, total: int, desc: str, logger: logging.Logger, quiet: bool = False, start: int = 0) -> None:
        self.total, self.desc, self.log, self.quiet = total, desc, logger, quiet
        self._start_step, self._t0 = start, time.time()
        self.bar = progress(total=total, desc=desc, unit="step", quiet=quiet) if bars_enabled(quiet) else None
        if self.bar is not None:
            self.bar.update(start)

    def update(self, step: int, values: Mapping[str, Any]) -> None:
        shown = "  ".join(f"{k}={_fmt(v)}" for k, v in values.items())
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix_str(shown, refresh=True)
            return
        if self.quiet:
            return
        done = step - self._start_step
        eta = ""
        if 0 < done and step < self.total:
            left = (time.time() - self._t0) / done * (self.total - step)
            eta = f"  ETA {timedelta(seconds=round(left))}"
        self.log.info("%s step %d/%d  %s%s", self.desc, step, self.total, shown, eta)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
