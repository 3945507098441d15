"""The append-only run journal: one JSON line per evaluated candidate or finished episode.

Every line is flushed and synced as it is written, so a killed run loses at most the
candidate in flight; ``--resume`` reads the journal back. A run cuts off a line torn by a
kill or a full disk before it appends again, so a torn line never ends up mid-journal.
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

    def append(self, record: dict[str, Any]) -> None:
        """Writes one record durably.

        Raises:
            MachineError: If the journal cannot be written (a full disk, no permission).
        """
        line = json.dumps(record) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as err:
            raise MachineError(
                f"cannot write the journal {self.path}: {machine_problem(err) or err}"
            ) from err

    def repair(self) -> int:
        """Cuts off a torn last line (a write a kill or a full disk interrupted); a whole last
        record that only lost its newline gets it back. A run calls this before appending.

        Returns:
            How many bytes were cut off.
        """
        if not self.path.is_file():
            return 0
        data = self.path.read_bytes()
        if not data or data.endswith(b"\n"):
            return 0
        keep = data.rfind(b"\n") + 1
        try:
            json.loads(data[keep:])
        except ValueError:
            with self.path.open("rb+") as fh:
                fh.truncate(keep)
                fh.flush()
                os.fsync(fh.fileno())
            return len(data) - keep
        with self.path.open("ab") as fh:  # only the newline was lost: the record is whole
            fh.write(b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        return 0

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

    def product_plans(self) -> dict[str, list[str]]:
        """The candidates the product's choice decided to refine, by phase (``leaders``,
        ``challengers``), as journaled before the refinements; only while nothing but those
        refinements followed (a resumed run that searched on chooses again)."""
        plans: dict[str, list[str]] = {}
        for r in self.records():
            if r.get("type") == "product_plan":
                plans[r["phase"]] = list(r["ids"])
            elif not (
                r.get("type") == "candidate"
                and any(r["candidate"]["id"] in ids for ids in plans.values())
            ):
                plans = {}
        return plans
