"""Small file helpers shared by everything that writes: permissions and output locations."""
from __future__ import annotations

import os
from pathlib import Path


def umask() -> int:
    """The process's umask (read without changing it for longer than one call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def normal_mode(path: str | os.PathLike) -> Path:
    """Give a file we wrote the permissions a new file normally gets (0666 minus the umask).

    safetensors creates its files 0600 (owner only); a model folder or codes file is meant to be shared like any
    other output, so every writer calls this before moving its temporary file into place.
    """
    path = Path(path)
    os.chmod(path, 0o666 & ~umask())
    return path


def prepare_output_file(path: str | os.PathLike) -> Path:
    """Create the folder an output file goes into (``-o new_folder/codes.safetensors``) before any work runs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
