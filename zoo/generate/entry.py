"""What the generator registry records about a named generator."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..entries import Metric


@dataclass(frozen=True)
class GeneratorEntry:
    """A released (or user-registered) generator.

    config: our `MaskGITConfig` fields; sampling: the published sampler settings (the defaults of `sample`);
    tokenizer: the registered tokenizer whose codes it models; hub_repo/hub_file: the official weights.
    """

    name: str
    family: str
    config: Mapping[str, Any]
    sampling: Mapping[str, Any]
    tokenizer: str
    description: str = ""
    hub_repo: str | None = None
    hub_file: str | None = None
    hub_revision: str | None = None
    url: str | None = None
    metrics: tuple[Metric, ...] = ()
    license: str = ""
    paper: str = ""
    code: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
