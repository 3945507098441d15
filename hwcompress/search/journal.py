"""The append-only run journal: one JSON line per evaluated candidate or finished episode.

Every line is flushed and synced as it is written, so a killed run loses at most the
candidate in flight; ``--resume`` reads the journal back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hwcompress.errors import HwCompressError
from hwcompress.search.candidate import Candidate


class Journal:
    """Appends records to ``path`` and reads them back.

    Args:
        path: The ``journal.jsonl`` file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, record: dict[str, Any]) -> None:
        """Writes one record durably."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

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
