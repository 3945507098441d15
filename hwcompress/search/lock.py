"""One process per run folder: an advisory lock held while a search writes there.

The lock is ``fcntl.flock`` on ``<out>/.lock``: the operating system drops it when the process
ends in any way (``kill -9`` included), so a stale lock never blocks a resume. The file holds
the owner's process id for the message a second process gets. Where ``fcntl`` does not exist
(Windows) runs are not locked.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

from hwcompress.errors import HwCompressError

__all__ = ["LOCK_NAME", "RunFolderBusy", "RunLock"]

#: The lock file's name inside a run folder.
LOCK_NAME = ".lock"


class RunFolderBusy(HwCompressError):
    """Another process is writing to the run folder."""


class RunLock:
    """Holds ``<out>/.lock`` for as long as a search runs in ``out``.

    Args:
        out: The run folder (it must exist).
    """

    def __init__(self, out: Path) -> None:
        self.path = out / LOCK_NAME
        self._fh: IO[str] | None = None

    def acquire(self) -> RunLock:
        """Takes the lock.

        Raises:
            RunFolderBusy: If another process holds it.
        """
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        fh = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            owner = fh.read().strip() or "unknown"
            fh.close()
            raise RunFolderBusy(
                f"{self.path.parent} is in use by another search (process {owner}); wait for "
                "it to finish or stop it, then --resume, or choose another --out"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        """Lets the lock go (closing the file releases it)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
