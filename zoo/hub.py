"""The hub: official files of named models, and our own folders pushed to / pulled from huggingface_hub.

All network access of the zoo happens here. Offline (``HF_HUB_OFFLINE=1``, or no route to the hub) files come from
the huggingface_hub cache, laid out as huggingface_hub lays it out; a file that is not there raises `OfflineError`
saying which file is needed and how to provide it.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .errors import CheckpointError, InputError, OfflineError
from .registry import ModelEntry


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def hub_reachable(timeout: float = 2.0) -> bool:
    """True when the hub endpoint accepts a TCP connection (checked once, quickly, instead of 20 s of retries)."""
    if _offline():
        return False
    url = urlparse(_endpoint())
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def fetch_official(entry: ModelEntry) -> Path:
    """Local path of a named model's official checkpoint, downloaded through the HF cache when needed."""
    if entry.hub_repo is None or entry.hub_file is None:
        where = f" from {entry.url}" if entry.url else ""
        raise OfflineError(
            f"{entry.name} is not on the Hugging Face Hub: download its checkpoint{where} and pass it with "
            f"zoo.load({entry.name!r}, checkpoint=PATH) (or `--checkpoint PATH` on the command line)"
        )
    return hf_file(entry.hub_repo, entry.hub_file, entry.hub_revision, what=entry.name)


def hf_file(repo_id: str, filename: str, revision: str | None = None, what: str | None = None,
            cache_dir: str | os.PathLike | None = None) -> Path:
    """`hf_hub_download` with one clear error when the file is neither cached nor reachable."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import (EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    label = what or repo_id
    if not hub_reachable():
        cached = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir, revision=revision)
        if isinstance(cached, str):
            return Path(cached)
        raise OfflineError(_offline_message(repo_id, filename, revision, label))
    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache_dir))
    except RevisionNotFoundError:
        raise InputError(f"{label}: revision {revision!r} does not exist in hub repo {repo_id}") from None
    except EntryNotFoundError:
        raise InputError(f"{label}: hub repo {repo_id} has no file {filename!r}"
                         + (f" at revision {revision}" if revision else "")) from None
    except RepositoryNotFoundError:
        raise InputError(f"{label}: hub repo {repo_id!r} does not exist (or is private: log in first)") from None
    except LocalEntryNotFoundError:
        raise OfflineError(_offline_message(repo_id, filename, revision, label)) from None


def _offline_message(repo_id: str, filename: str, revision: str | None, label: str) -> str:
    from huggingface_hub import constants

    rev = f" --revision {revision}" if revision else ""
    return (f"{label} needs {filename!r} from the hub repo {repo_id}, which is not in the Hugging Face cache "
            f"({constants.HF_HUB_CACHE}) and the hub cannot be reached (offline). On a machine with network run "
            f"`huggingface-cli download {repo_id} {filename}{rev}` and copy the cache, or pass the file with "
            f"checkpoint=PATH.")


def parse_hub_id(target: str) -> tuple[str, str | None]:
    """``user/repo[@revision]`` -> (repo_id, revision)."""
    repo, _, revision = target.partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise InputError(f"hub id must look like 'user/repo' or 'user/repo@revision', got {target!r}")
    return repo, revision or None


def load_from_hub(target: str, cache_dir: str | os.PathLike | None = None) -> Any:
    """Load one of our folders (config.json + model.safetensors) from the hub: ``user/repo[@revision]``."""
    from .loading import CONFIG_NAME, WEIGHTS_NAME, load_folder

    repo_id, revision = parse_hub_id(target)
    config = hf_file(repo_id, CONFIG_NAME, revision, cache_dir=cache_dir)
    weights = hf_file(repo_id, WEIGHTS_NAME, revision, cache_dir=cache_dir)
    if config.parent != weights.parent:
        raise CheckpointError(f"{repo_id}: config and weights resolved to different snapshots")
    return load_folder(config.parent)
