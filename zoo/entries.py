"""What the registry records about a named model and its published numbers (no behaviour: data classes only)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class Metric:
    """A published or measured number with the protocol that makes it comparable."""

    name: str  # "rFID", "gFID", "PSNR", "zero-shot top-1", ...
    value: float
    dataset: str  # "ImageNet-1k val 50k, 256x256"
    protocol: str = ""  # crop/resize, rounding, feature extractor, reference set
    source: str = ""  # README / paper table


@dataclass(frozen=True)
class ModelEntry:
    """A named, released model."""

    name: str
    family: str
    config: Mapping[str, Any]  # our config's fields
    description: str = ""
    hub_repo: str | None = None
    hub_file: str | None = None
    hub_revision: str | None = None
    url: str | None = None  # where to download the official file when it is not on the hub
    checkpoint_format: str = "official"  # "official" (converted on load) or "zoo" (our folder layout)
    metrics: tuple[Metric, ...] = ()
    license: str = ""
    paper: str = ""
    code: str = ""
    citation: str = ""
    tags: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
