"""Writes that readers never see half-done: unique temp names, atomic file replace, staged folders swapped in.

- `atomic_write_text` / `atomic_write_bytes`: a unique temp file beside the target, then ``os.replace``; two
  writers of one path never share a temp name, and a reader sees the old file or the new one.
- `staged_folder(final)`: a context manager giving a fresh private folder beside `final`; on success it is
  published with one atomic directory exchange (Linux ``renameat2(RENAME_EXCHANGE)``; elsewhere two renames), so a
  reader that opens the folder once (`FolderView`) sees the old pair of files or the new pair, never a mix.
- Temp names carry the writer's pid: `clean_stale` removes those of writers that died (killed saves and
  conversions) on the next write, and any older than a day.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator

STAGING = ".staging"
MAX_AGE_S = 24 * 3600


def _prefix(name: str) -> str:
    return f".{name}{STAGING}-{os.getpid()}-"


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` through a unique temp file in the same folder, then rename it into place."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=_prefix(path.name), dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """A unique temp path beside `path` to write to (by any library); renamed onto `path` when the block ends."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=_prefix(path.name), dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------------------------------------------------------
# Folders
# ---------------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def staged_folder(final: str | os.PathLike, keep_other_files: bool = True) -> Iterator[Path]:
    """Yield an empty staging folder beside `final`; publish it as `final` atomically when the block succeeds.

    keep_other_files: files already in `final` that the new contents do not replace (a README.md, ...) are
    linked into the staged folder before the swap, so they survive it.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(final.parent)  # temps of any writer here that died (a killed save or conversion)
    stage = Path(tempfile.mkdtemp(prefix=_prefix(final.name), dir=final.parent))
    try:
        os.chmod(stage, 0o777 & ~_umask())
        yield stage
        for written in stage.iterdir():  # safetensors creates its files 0600; outputs are shared like any file
            if written.is_file():
                os.chmod(written, 0o666 & ~_umask())
        if keep_other_files and final.is_dir():
            _carry_over(final, stage)
        publish(stage, final)
    finally:
        shutil.rmtree(stage, ignore_errors=True)  # after a swap it holds the old contents


def publish(stage: Path, final: Path) -> None:
    """Make `stage` visible as `final` in one step (the old `final`, if any, ends up at `stage`)."""
    for _ in range(100):
        if not final.exists():
            try:
                os.rename(stage, final)
                return
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                continue  # another writer published first: exchange with theirs
        if _exchange(stage, final):
            return
        # no atomic exchange on this system: move the old one aside, then the new one in (a brief gap, never a mix)
        aside = Path(tempfile.mkdtemp(prefix=_prefix(final.name), dir=final.parent))
        try:
            os.rename(final, aside / "old")
        except FileNotFoundError:
            shutil.rmtree(aside, ignore_errors=True)
            continue
        try:
            os.rename(stage, final)
        except OSError:
            os.rename(aside / "old", final)
            shutil.rmtree(aside, ignore_errors=True)
            raise
        shutil.rmtree(aside, ignore_errors=True)
        return
    raise OSError(f"could not publish {final}: it keeps changing under concurrent writers")


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False when unsupported here."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err == errno.ENOENT:
        raise FileNotFoundError(err, f"cannot swap {a} and {b}")
    return False  # EINVAL / ENOSYS: the filesystem or kernel cannot exchange


def _carry_over(old: Path, stage: Path, attempts: int = 100) -> None:
    """Link into `stage` the entries of the folder named `old` that `stage` lacks (not hidden temps).

    A concurrent writer may swap its own folder in at `old` and delete the one being read: a listing taken from
    that folder then misses what was already deleted (a user's README.md), and publishing `stage` would drop it.
    So the listing is trusted only if `old` still names the folder it was read from, unchanged (same inode, and
    the same times, which a rename or a new entry would move); otherwise the folder now there, which its writer
    carried the files into, is read again."""
    for _ in range(attempts):
        try:
            before = _identity(old)
            names = os.listdir(old)
        except FileNotFoundError:
            return
        for name in names:
            target = stage / name
            if name.startswith(".") or target.exists():
                continue
            entry = old / name
            try:
                if entry.is_dir():
                    shutil.copytree(entry, target, copy_function=_link_or_copy)
                else:
                    _link_or_copy(entry, target)
            except FileNotFoundError:  # deleted by the writer that swapped `old` away: read its folder next
                pass
        try:
            if _identity(old) == before:
                return
        except FileNotFoundError:
            return


def _identity(path: Path) -> tuple[int, ...]:
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns


def _link_or_copy(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def clean_stale(parent: Path, name: str | None = None, max_age_s: float = MAX_AGE_S) -> int:
    """Remove temp files/folders left in `parent` by writers that died (or older than `max_age_s`); count them."""
    removed = 0
    pattern = f".{name}{STAGING}-*" if name is not None else f".*{STAGING}-*"
    try:
        candidates = list(parent.glob(pattern))
    except OSError:
        return 0
    now = time.time()
    for path in candidates:
        pid_text = path.name.rsplit(STAGING + "-", 1)[-1].split("-", 1)[0]
        try:
            dead = not _alive(int(pid_text))
            old = now - path.lstat().st_mtime > max_age_s
        except (ValueError, OSError):
            continue
        if dead or old:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    path.unlink()
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---------------------------------------------------------------------------------------------------------------
# Reading a folder consistently
# ---------------------------------------------------------------------------------------------------------------
class FolderView:
    """One folder opened once: every file read through it comes from the same directory, even if a writer
    swaps a new folder in meanwhile (the view keeps the one it opened). ``with FolderView(path) as v: ...``"""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        self._open: list[int] = []

    def __enter__(self) -> "FolderView":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for fd in self._open:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._open.clear()
        with contextlib.suppress(OSError):
            os.close(self.fd)

    def swapped(self) -> bool:
        """True when the path now names another folder than the one this view holds."""
        try:
            a, b = os.stat(self.path), os.fstat(self.fd)
        except OSError:
            return True
        return (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino)

    def exists(self, name: str) -> bool:
        try:
            os.stat(name, dir_fd=self.fd)
            return True
        except OSError:
            return False

    def read_bytes(self, name: str) -> bytes:
        fd = os.open(name, os.O_RDONLY, dir_fd=self.fd)
        with os.fdopen(fd, "rb") as fh:
            return fh.read()

    def open_fd(self, name: str) -> int:
        """An fd of `name` in this folder (closed with the view)."""
        fd = os.open(name, os.O_RDONLY, dir_fd=self.fd)
        self._open.append(fd)
        return fd

    def path_of(self, name: str) -> str:
        """A path that names exactly the file this view sees (``/proc/self/fd/N`` on Linux)."""
        fd = self.open_fd(name)
        proc = f"/proc/self/fd/{fd}"
        return proc if os.path.exists(proc) else str(self.path / name)
