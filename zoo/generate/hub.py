"""Generators on the Hugging Face Hub: push a generator folder (config.json + model.safetensors + a short model
card) and pull it back with ``load_generator("hf://user/repo[@revision]")``. The network goes through zoo.hub."""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import Generator

CARD = """---
{front}
---

# {title}

A class-conditional {family} generator over the codes of the `{tokenizer}` tokenizer, saved with
visual-tokenizer-zoo ({num_classes} classes, {tokens} tokens per image).

```python
import zoo

gen = zoo.load_generator("hf://{repo_id}")
images = gen.generate_images(zoo.load(gen.tokenizer), [0, 1], seed=0)   # float [2, 3, H, W] in [0, 1]
```

Default sampler settings: `{sampling}`
"""


def generator_card(gen: "Generator", repo_id: str, base_model: str | None = None,
                   datasets: list[str] | None = None) -> str:
    """README.md for a pushed generator: hub front matter (library, tags, base_model, datasets) and usage."""
    import yaml

    from ..cards import LIBRARY_NAME

    sizes, tokens = gen.code_layout()
    front: dict[str, Any] = {"library_name": LIBRARY_NAME,
                             "tags": sorted({LIBRARY_NAME, "image-generation", "class-conditional", gen.family})}
    if base_model:
        front["base_model"] = base_model
    if datasets:
        front["datasets"] = list(datasets)
    return CARD.format(front=yaml.safe_dump(front, sort_keys=True).strip(), title=gen.name or repo_id.split("/")[1],
                       family=gen.family, tokenizer=gen.tokenizer, num_classes=gen.num_classes, tokens=tokens,
                       repo_id=repo_id, sampling=json.dumps(asdict(gen.sampling)))


def push_generator(gen: "Generator", repo_id: str, *, commit_message: str | None = None, private: bool = False,
                   token: str | None = None, endpoint: str | None = None, branch: str | None = None,
                   tag: str | None = None, base_model: str | None = None,
                   datasets: list[str] | None = None) -> dict[str, str]:
    """Push `gen` as ``config.json`` + ``model.safetensors`` + ``README.md`` in one commit (see zoo.hub)."""
    from ..hub import parse_hub_id, upload_folder
    from .loading import save_generator

    parse_hub_id(repo_id)
    with tempfile.TemporaryDirectory(prefix="zoo-push-generator-") as tmp:
        save_generator(gen, tmp)
        (Path(tmp) / "README.md").write_text(generator_card(gen, repo_id, base_model, datasets))
        return upload_folder(tmp, repo_id, what=f"{gen.name or gen.family} generator", commit_message=commit_message,
                             private=private, token=token, endpoint=endpoint, branch=branch, tag=tag)


def pull_generator_folder(target: str, cache_dir: str | os.PathLike | None = None,
                          token: str | bool | None = None) -> Path:
    """``user/repo[@revision]`` -> the snapshot folder holding its config.json and model.safetensors."""
    from ..errors import CheckpointError
    from ..hub import hf_file, parse_hub_id
    from .loading import CONFIG_NAME, WEIGHTS_NAME

    repo_id, revision = parse_hub_id(target)
    what = f"hf://{target}"
    config = hf_file(repo_id, CONFIG_NAME, revision, what=what, cache_dir=cache_dir, token=token)
    weights = hf_file(repo_id, WEIGHTS_NAME, revision, what=what, cache_dir=cache_dir, token=token)
    if config.parent != weights.parent:
        raise CheckpointError(f"{repo_id}: config and weights resolved to different snapshots; pin a revision")
    return config.parent
