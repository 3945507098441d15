"""Writing files so that a crash or a full disk never leaves a torn one behind.

Every file goes to a temporary name in the same folder, is flushed to disk, and is then
renamed over the target (atomic on POSIX and Windows): readers see the old file or the new
one, never half of one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def _file_mode() -> int:
    """The mode a new file gets under this process's umask (``mkstemp`` makes 0600 files,
    which other users of a shared run folder could not read)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _atomic(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary name beside ``path`` for writers that take a path (ONNX export, file
    copies); it is synced and renamed over ``path`` when the block succeeds, removed if not.

    Yields:
        The temporary path (same folder and suffix as ``path``).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        with tmp.open("rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Writes ``data`` (text as UTF-8) to ``path`` atomically."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return _atomic(path, lambda f: f.write(raw))


def save_atomic(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj, path)``, atomically."""
    import torch

    return _atomic(path, lambda f: torch.save(obj, f))


def what_file(path: str | Path) -> str:
    """A few words on what a file that is not a checkpoint seems to be."""
    try:
        with Path(path).open("rb") as fh:
            head = fh.read(512)
    except OSError as err:
        return f"cannot be read: {err.strerror or err}"
    if not head:
        return "the file is empty"
    if head.startswith(b"PK"):
        return "an archive torch cannot read: damaged, truncated or not from torch.save"
    if head.startswith(b"\x80"):
        return "a pickle in an old or damaged format"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "unrecognised binary data"
    return "it is a text file"
