"""The hub: official files of named models, and our own folders pushed to / pulled from huggingface_hub.

All network access of the zoo happens here. Offline (``HF_HUB_OFFLINE=1``, or no route to the hub) files come from
the huggingface_hub cache, laid out as huggingface_hub lays it out; a file that is not there raises `OfflineError`
saying which file is needed and how to provide it.

Caches and integrity:
- the huggingface_hub cache (``$HF_HUB_CACHE``) holds downloaded files exactly as huggingface_hub lays them out;
- the zoo cache (``$ZOO_CACHE``, default ``~/.cache/zoo``) holds official checkpoints converted once to our folder
  layout, under ``converted/{name}/{source sha256[:16]}-{hash of config and zoo version}/``, so a second load
  reads one safetensors file and never unpickles;
- folders we write carry ``weights_sha256`` in ``config.json``; a weights file that does not match is refused.

The endpoint is ``endpoint=`` when given, else ``HF_ENDPOINT`` read at call time (huggingface_hub binds it once,
at import), else ``huggingface_hub.constants.ENDPOINT``; it is passed explicitly to every huggingface_hub call.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from .errors import CheckpointError, InputError, OfflineError
from .registry import ModelEntry

if TYPE_CHECKING:
    from .api import Tokenizer

CARD_NAME = "README.md"
DIGEST_KEY = "weights_sha256"


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _endpoint(endpoint: str | None = None) -> str:
    """`endpoint`, else ``HF_ENDPOINT`` as it is now (huggingface_hub itself only reads it at import), else
    huggingface_hub's endpoint."""
    from huggingface_hub import constants

    return (endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def fetch_official(entry: ModelEntry, cache_dir: str | os.PathLike | None = None,
                   endpoint: str | None = None) -> Path:
    """Local path of a named model's official checkpoint, downloaded through the HF cache when needed."""
    by_hand = (f"zoo.load({entry.name!r}, checkpoint=PATH) in Python, or `--checkpoint PATH` on the command line")
    if entry.hub_repo is None or entry.hub_file is None:
        where = f" from {entry.url}" if entry.url else ""
        raise OfflineError(f"{entry.name} is not on the Hugging Face Hub: download its checkpoint{where} and pass it "
                           f"with {by_hand}")
    return hf_file(entry.hub_repo, entry.hub_file, entry.hub_revision, what=entry.name, cache_dir=cache_dir,
                   endpoint=endpoint, by_hand=f"or pass a copy of the file with {by_hand}")


def hf_file(repo_id: str, filename: str, revision: str | None = None, what: str | None = None,
            cache_dir: str | os.PathLike | None = None, endpoint: str | None = None, token: str | bool | None = None,
            by_hand: str = "") -> Path:
    """`hf_hub_download` with one clear error when the file is neither cached nor downloadable.

    Whether the hub is used is huggingface_hub's own decision: ``HF_HUB_OFFLINE=1`` reads the cache only; online,
    a hub that cannot be reached (no route, proxy refusal: huggingface_hub honours ``HTTPS_PROXY``) falls back to
    the cache, and a file in neither place raises `OfflineError` naming the file and how to provide it.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (EntryNotFoundError, LocalEntryNotFoundError, RemoteEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    label = what or repo_id
    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache_dir, token=token,
                                    endpoint=_endpoint(endpoint), library_name="visual-tokenizer-zoo"))
    except LocalEntryNotFoundError:  # before EntryNotFoundError: it is a subclass
        raise OfflineError(_offline_message(repo_id, filename, revision, label, endpoint, by_hand)) from None
    except RevisionNotFoundError:
        raise InputError(f"{label}: revision {revision!r} does not exist in hub repo {repo_id} (a branch, tag or "
                         "commit sha; `hf repo-info` or the repo's page lists them)") from None
    except (RemoteEntryNotFoundError, EntryNotFoundError):
        raise InputError(f"{label}: hub repo {repo_id} has no file {filename!r}"
                         + (f" at revision {revision}" if revision else "")
                         + " (is it a visual-tokenizer-zoo folder? it needs config.json + model.safetensors)") from None
    except RepositoryNotFoundError:
        raise InputError(f"{label}: hub repo {repo_id!r} does not exist (or is private: log in first)") from None
    except Exception as exc:
        if _is_connection_error(exc):
            raise OfflineError(_offline_message(repo_id, filename, revision, label, endpoint, by_hand)) from None
        raise


def _is_connection_error(exc: BaseException) -> bool:
    """A network failure (no route, refused, timed out, proxy) as raised by huggingface_hub's HTTP backend."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, (ConnectionError, TimeoutError)) or type(exc).__name__ in (
                "ConnectError", "ConnectTimeout", "ProxyError", "ReadTimeout", "OfflineModeIsEnabled"):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _offline_message(repo_id: str, filename: str, revision: str | None, label: str, endpoint: str | None,
                     by_hand: str) -> str:
    from huggingface_hub import constants

    rev = f" --revision {revision}" if revision else ""
    at = f" at revision {revision}" if revision else ""
    why = ("huggingface_hub is offline (HF_HUB_OFFLINE is set)" if _offline()
           else f"the hub at {_endpoint(endpoint)} cannot be reached")
    return (f"{label} needs {filename!r} from the hub repo {repo_id}{at}, which is not in the Hugging Face cache "
            f"({constants.HF_HUB_CACHE}) and {why}. On a machine with network run "
            f"`hf download {repo_id} {filename}{rev}` and copy the cache" + (f", {by_hand}" if by_hand else "") + ".")


def parse_hub_id(target: str) -> tuple[str, str | None]:
    """``user/repo[@revision]`` -> (repo_id, revision)."""
    repo, _, revision = target.partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise InputError(f"hub id must look like 'user/repo' or 'user/repo@revision', got {target!r}")
    return repo, revision or None


# ---------------------------------------------------------------------------------------------------------------
# Integrity: folders we write record the sha256 of their weights
# ---------------------------------------------------------------------------------------------------------------
def file_sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_folder(model: "Tokenizer", directory: str | os.PathLike, extra: Mapping[str, Any] | None = None,
                 stamp: bool = True) -> Path:
    """`save_pretrained` (which records ``weights_sha256`` in config.json); kept for callers of the hub API.

    stamp: remember that this file was verified, so its first load skips the hash (False for temporary folders).
    """
    from .loading import CONFIG_NAME, WEIGHTS_NAME, save_pretrained

    directory = save_pretrained(model, directory, extra=extra)
    if stamp:  # save_pretrained just hashed it: the next load need not
        try:
            fd = os.open(directory / WEIGHTS_NAME, os.O_RDONLY)
        except OSError:
            return directory
        try:
            expected = json.loads((directory / CONFIG_NAME).read_text()).get(DIGEST_KEY)
            if expected:
                _write_stamp(os.fstat(fd), expected)
        except (OSError, ValueError):
            pass
        finally:
            os.close(fd)
    return directory


def load_verified(directory: str | os.PathLike, what: str | None = None) -> "Tokenizer":
    """`load_folder` (which checks the weights against ``weights_sha256``), naming `what` in its errors."""
    from .loading import load_folder

    return load_folder(directory, what=what)


def verify_weights(fd: int, expected: str, what: str, weights: Path) -> None:
    """Check the open weights file `fd` against the sha256 its config records; `CheckpointError` when it differs.

    A successful check is remembered (see `_stamp_path`), so an unchanged file is hashed once.
    """
    from .loading import CONFIG_NAME

    st = os.fstat(fd)
    if _stamp_matches(st, expected):
        return
    digest = hashlib.sha256()
    with os.fdopen(os.dup(fd), "rb") as fh:
        fh.seek(0)
        while block := fh.read(1 << 22):
            digest.update(block)
    actual = digest.hexdigest()
    if actual != expected:
        raise CheckpointError(
            f"{what}: {weights.name} was changed after it was written (sha256 {actual[:12]}… but {CONFIG_NAME} "
            f"records {expected[:12]}…): refusing to load it. Delete {weights.resolve()} (and its folder) so that "
            "it is downloaded or converted again, or save the model there again.")
    _write_stamp(st, expected)


# Hashing a multi-GB file on every load would cost seconds, so a successful check is remembered with the file's
# identity (device, inode, size, mtime and ctime: any write changes ctime, which utime cannot set back; a rename
# keeps them all); the next load of the same unchanged file skips the hash.
def _stamp_path(expected: str) -> Path:
    return zoo_cache_dir() / "verified" / f"{expected}.json"


def _identity(st: os.stat_result) -> dict[str, Any]:
    return {"dev": st.st_dev, "ino": st.st_ino, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "ctime_ns": st.st_ctime_ns}


def _stamp_matches(st: os.stat_result, expected: str) -> bool:
    try:
        return json.loads(_stamp_path(expected).read_text()) == _identity(st)
    except (OSError, ValueError):
        return False


def _write_stamp(st: os.stat_result, expected: str) -> None:
    from .atomic import atomic_write_text

    stamp = _stamp_path(expected)
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(stamp, json.dumps(_identity(st)))
    except OSError:  # a read-only cache only costs the hash next time
        pass


# ---------------------------------------------------------------------------------------------------------------
# Pull: hf://user/repo[@revision]
# ---------------------------------------------------------------------------------------------------------------
def load_from_hub(target: str, cache_dir: str | os.PathLike | None = None, endpoint: str | None = None,
                  token: str | bool | None = None) -> Any:
    """Load one of our folders (config.json + model.safetensors) from the hub: ``user/repo[@revision]``.

    The revision (branch, tag or commit sha) is pinned: both files come from the same commit. Offline, both
    come from the huggingface_hub cache. Loading is strict and the weights' sha256 is checked.
    """
    from .loading import CONFIG_NAME, WEIGHTS_NAME

    repo_id, revision = parse_hub_id(target)
    what = f"hf://{target}"
    config = hf_file(repo_id, CONFIG_NAME, revision, what=what, cache_dir=cache_dir, endpoint=endpoint, token=token)
    weights = hf_file(repo_id, WEIGHTS_NAME, revision, what=what, cache_dir=cache_dir, endpoint=endpoint,
                      token=token)
    if config.parent != weights.parent:
        raise CheckpointError(f"{repo_id}: config and weights resolved to different snapshots "
                              f"({config.parent.name} and {weights.parent.name}); pin a revision with @sha")
    return load_verified(config.parent, what=what)


# ---------------------------------------------------------------------------------------------------------------
# Push
# ---------------------------------------------------------------------------------------------------------------
def push_to_hub(model: "Tokenizer", repo_id: str, *, commit_message: str | None = None, private: bool = False,
                token: str | None = None, endpoint: str | None = None, branch: str | None = None,
                tag: str | None = None, eval_report: str | os.PathLike | None = None,
                entry: ModelEntry | None = None, recipe: str | None = None, base_model: str | None = None,
                datasets: list[str] | None = None) -> dict[str, str]:
    """Push `model` as ``config.json`` + ``model.safetensors`` + ``README.md`` (its model card) in one commit.

    entry: the registered entry whose published metrics, license and citation go into the card (default: the
        entry named ``model.name``, if any). eval_report: a ``zoo eval`` report.json (or a JSON list of
        {metric, value, dataset, protocol}) whose numbers go into the card as measured. tag: also tag the commit
        (e.g. ``v1``) so that ``hf://repo@v1`` pins it. base_model / datasets: the card's front matter (hub ids;
        defaults from the entry, see `zoo.cards.card_info`). Returns {"repo_id", "commit", "url", "revision"}.
    """
    from .cards import card_info, read_eval_report, render_card
    from .registry import _MODELS

    parse_hub_id(repo_id)
    if _offline():
        raise OfflineError(f"cannot push to {repo_id}: huggingface_hub is offline (HF_HUB_OFFLINE is set)")
    if entry is None and model.name:
        entry = _MODELS.get(model.name)
    measured, source = (read_eval_report(eval_report, model.name or model.family) if eval_report is not None
                        else ([], ""))
    card = render_card(card_info(model, entry, measured, source, repo_id=repo_id, recipe=recipe,
                                 base_model=base_model, datasets=datasets))
    with tempfile.TemporaryDirectory(prefix="zoo-push-") as tmp:
        write_folder(model, tmp, stamp=False)
        card.save(str(Path(tmp) / CARD_NAME))
        return upload_folder(tmp, repo_id, what=f"{model.name or model.family} tokenizer",
                             commit_message=commit_message, private=private, token=token, endpoint=endpoint,
                             branch=branch, tag=tag)


def upload_folder(folder: str | os.PathLike, repo_id: str, *, what: str, commit_message: str | None = None,
                  private: bool = False, token: str | None = None, endpoint: str | None = None,
                  branch: str | None = None, tag: str | None = None) -> dict[str, str]:
    """Upload every file of `folder` to `repo_id` in one commit (creating the repo), optionally tag it.

    Returns {"repo_id", "commit", "url", "revision"}; a hub that cannot be reached raises `OfflineError`.
    """
    from huggingface_hub import HfApi

    if _offline():
        raise OfflineError(f"cannot push to {repo_id}: huggingface_hub is offline (HF_HUB_OFFLINE is set)")
    api = HfApi(endpoint=_endpoint(endpoint), token=token, library_name="visual-tokenizer-zoo")
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), revision=branch,
                                 commit_message=commit_message or f"Upload {what} with visual-tokenizer-zoo")
        commit = info.oid
        if tag:
            api.create_tag(repo_id, tag=tag, revision=commit)
    except Exception as exc:
        if _is_connection_error(exc):
            raise OfflineError(f"cannot push to {repo_id}: the hub at {_endpoint(endpoint)} cannot be reached "
                               f"({type(exc).__name__})") from None
        raise
    return {"repo_id": repo_id, "commit": commit, "url": str(info.commit_url), "revision": tag or branch or "main"}


# ---------------------------------------------------------------------------------------------------------------
# Named models: official file -> converted once -> our folder in the zoo cache
# ---------------------------------------------------------------------------------------------------------------
def zoo_cache_dir() -> Path:
    """``$ZOO_CACHE``, else ``$XDG_CACHE_HOME/zoo``, else ``~/.cache/zoo`` (read at call time)."""
    if os.environ.get("ZOO_CACHE"):
        return Path(os.environ["ZOO_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "zoo"


def source_sha256(path: Path) -> str:
    """sha256 of an official file: the blob name when huggingface_hub stored it by its sha256 (LFS files), else
    computed (one read)."""
    blob = Path(os.path.realpath(path)).name
    if re.fullmatch(r"[0-9a-f]{64}", blob):
        return blob
    return file_sha256(path)


def converted_dir(entry: ModelEntry, config: Any, source_digest: str) -> Path:
    """Where the converted copy of `entry` (with `config`) made from the file with `source_digest` lives."""
    from . import __version__
    from .config import config_to_dict
    from .loading import FORMAT

    # the zoo version is part of the key: a release that fixes a converter converts again instead of reusing
    key = hashlib.sha256(json.dumps([FORMAT, __version__, entry.family, config_to_dict(config)], sort_keys=True,
                                    default=str).encode()).hexdigest()[:8]
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", entry.name)
    return zoo_cache_dir() / "converted" / safe / f"{source_digest[:16]}-{key}"


def _remove_legacy_temps(parent: Path, max_age_s: float = 3600.0) -> None:
    """Temp folders of conversions killed under zoo versions that named them ``.tmp-*`` (no pid to check)."""
    import time

    for tmp in parent.glob(".tmp-*") if parent.is_dir() else ():
        try:
            if time.time() - tmp.stat().st_mtime > max_age_s:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            pass


def load_converted(entry: ModelEntry, config: Any, convert: Callable[[Path], "Tokenizer"]) -> "Tokenizer":
    """A named model from its official file, converted at most once.

    The official file resolves through the huggingface_hub cache (`fetch_official`); its sha256 keys a folder in
    the zoo cache. The first load converts (`convert(official_path)`) and writes that folder atomically; later
    loads read its safetensors (no pickle, weights' sha256 checked). An entry registered with
    ``checkpoint_format="zoo"`` and a hub repo is one of our folders already: it is pulled like ``hf://repo@rev``.
    """
    if entry.checkpoint_format == "zoo":  # already our layout (a repo pushed with the zoo): nothing to convert
        if not entry.hub_repo:
            raise CheckpointError(f"{entry.name} is registered in the zoo format but names no hub repo")
        return load_from_hub(entry.hub_repo + (f"@{entry.hub_revision}" if entry.hub_revision else ""))
    source = fetch_official(entry)
    digest = source_sha256(source)
    folder = converted_dir(entry, config, digest)
    if (folder / "config.json").is_file():
        return load_verified(folder, what=f"{entry.name} (converted copy in {folder})")
    model = convert(source)
    model.name = entry.name
    _remove_legacy_temps(folder.parent)
    # staged beside `folder` under a name with our pid and swapped in atomically (zoo.atomic): a killed conversion
    # leaves a temp folder that the next save here removes; a concurrent conversion publishes the same contents
    write_folder(model, folder, extra={"source": {"repo": entry.hub_repo, "file": entry.hub_file,
                                                  "revision": entry.hub_revision, "sha256": digest}})
    return model
