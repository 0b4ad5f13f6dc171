"""Build a huggingface_hub cache by hand, laid out exactly as huggingface_hub lays it out.

``models--{org}--{name}/refs/{ref}`` holds the commit; ``snapshots/{commit}/{file}`` are relative symlinks to
``blobs/{etag}`` where the etag of a plain file is its git blob sha1 and of an LFS file its sha256.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path


def add_to_cache(cache: Path, repo_id: str, files: dict[str, bytes], commit: str | None = None,
                 ref: str = "main") -> Path:
    org, name = repo_id.split("/")
    repo = cache / f"models--{org}--{name}"
    commit = commit or hashlib.sha1(repr(sorted(files)).encode()).hexdigest()
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / ref).write_text(commit)
    snap = repo / "snapshots" / commit
    for filename, data in files.items():
        etag = hashlib.sha256(data).hexdigest()
        blob = repo / "blobs" / etag
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snap / filename
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.exists() or link.is_symlink():
            link.unlink()
        os.symlink(os.path.relpath(blob, link.parent), link)
    return snap
