"""The append-only run journal: one JSON line per evaluated candidate or finished episode.

Every line is flushed and synced as it is written, so a killed run loses at most the
candidate in flight; ``--resume`` reads the journal back. A line torn by a kill or a full disk
is cut off before the next record is appended, so it never corrupts the journal's middle.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hwcompress.errors import HwCompressError, MachineError, machine_problem
from hwcompress.search.candidate import Candidate


class Journal:
    """Appends records to ``path`` and reads them back.

    Args:
        path: The ``journal.jsonl`` file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._repaired = False

    def append(self, record: dict[str, Any]) -> None:
        """Writes one record durably (after cutting off a torn last line, once).

        Raises:
            MachineError: If the journal cannot be written (a full disk, no permission).
        """
        line = json.dumps(record) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self._repaired:
                self.repair()
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as err:
            raise MachineError(
                f"cannot write the journal {self.path}: {machine_problem(err) or err}"
            ) from err

    def repair(self) -> int:
        """Cuts off a torn last line (a write a kill or a full disk interrupted).

        Returns:
            How many bytes were cut off.
        """
        self._repaired = True
        if not self.path.is_file():
            return 0
        with self.path.open("rb+") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size == 0:
                return 0
            fh.seek(max(0, size - 1))
            if fh.read(1) == b"\n":
                return 0
            # find the end of the last complete line
            pos, keep = size, 0
            while pos > 0:
                step = min(65536, pos)
                pos -= step
                fh.seek(pos)
                chunk = fh.read(step)
                nl = chunk.rfind(b"\n")
                if nl >= 0:
                    keep = pos + nl + 1
                    break
            fh.seek(keep)
            tail = fh.read()
            try:  # only the newline was lost: the record is whole
                json.loads(tail)
            except ValueError:
                fh.truncate(keep)
            else:
                fh.seek(0, os.SEEK_END)
                fh.write(b"\n")
                keep = size
            fh.flush()
            os.fsync(fh.fileno())
            return size - keep

    def records(self) -> list[dict[str, Any]]:
        """All complete records; a torn last line (a kill mid-write) is ignored.

        Raises:
            HwCompressError: If a line other than the last is corrupt.
        """
        if not self.path.is_file():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        out = []
        for i, line in enumerate(lines):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                if i == len(lines) - 1:
                    break
                raise HwCompressError(
                    f"{self.path}: line {i + 1} is corrupt; the run cannot "
                    "be resumed from this journal"
                ) from None
        return out

    def candidates(self) -> list[Candidate]:
        """The candidate records, in order."""
        return [
            Candidate.from_dict(r["candidate"])
            for r in self.records()
            if r.get("type") == "candidate"
        ]

    def episodes(self) -> list[dict[str, Any]]:
        """The finished-episode records, in order."""
        return [r for r in self.records() if r.get("type") == "episode"]
