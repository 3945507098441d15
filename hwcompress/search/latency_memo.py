"""Measured latencies kept by student structure (``latencies.json`` in the run folder).

Where latency steers a run, a student is timed when a latency-matched seed is chosen (its
untrained copy, in a bisection) and again when it is evaluated; on a shared machine the two
timings of one structure can differ by 20–40 %, so a seed chosen as within the budget could
then measure over it. Latency does not depend on the weights' values, so the first timing of a
structure is kept here and every later one reads it: a seed is judged on the timing that chose
it, a resumed run makes the same choices, and two runs on one device that are handed the same
file (``benchmarks/search_vs_random.py`` does, for the runs of a pair) judge a student they
share on one measurement. The product's leaders are still timed again before the choice
(:mod:`hwcompress.search.confirm`).

Timings made in turn with the teacher are kept as the ratio to it, and read back as that ratio
times this run's teacher latency.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hwcompress.files import write_atomic
from hwcompress.measure.result import LatencyResult

__all__ = ["FILE_NAME", "LatencyMemo"]

FILE_NAME = "latencies.json"
#: The file's layout version.
VERSION = 1


class LatencyMemo:
    """Measured latencies by genome key, saved after every new one.

    Args:
        path: The file (read if it exists; written as timings come).
        context: What the timings hold for (profile, teacher); a file written for another
            context is not read.
    """

    def __init__(self, path: Path, context: dict[str, Any]) -> None:
        self.path = path
        self.context = dict(context)
        self.entries: dict[str, dict[str, Any]] = {}
        #: Second timings (the product's leaders, timed again): ratio to the teacher.
        self.again_ratios: dict[str, float] = {}
        self.ignored = ""
        if path.is_file():
            self._read()

    def _read(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            entries = data["entries"]
            if data.get("version") != VERSION or not isinstance(entries, dict):
                raise ValueError("another layout")
            if data.get("context") != self.context:
                self.ignored = f"{self.path} holds timings for another profile or teacher"
                return
            for entry in entries.values():
                LatencyResult.from_dict(entry["result"])  # every entry is readable
                if entry.get("ratio") is not None:
                    float(entry["ratio"])
            again = {str(k): float(v) for k, v in dict(data.get("again", {})).items()}
            self.entries = dict(entries)
            self.again_ratios = again
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            self.ignored = f"{self.path} is unreadable ({err}); its timings are measured again"

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def get(self, key: str, teacher_ms: float) -> tuple[LatencyResult, float | None] | None:
        """The kept timing of the structure ``key`` (a ratio scaled to ``teacher_ms``), or
        None if it was never timed."""
        entry = self.entries.get(key)
        if entry is None:
            return None
        lat = LatencyResult.from_dict(entry["result"])
        ratio = entry.get("ratio")
        if ratio is None:
            return lat, None
        ratio = float(ratio)
        lat = lat.scaled(
            ratio * teacher_ms / max(lat.median_ms, 1e-12),
            f"kept timing ({FILE_NAME}): {ratio:.3f}× the teacher's latency",
        )
        return lat, ratio

    def measured(
        self,
        key: str,
        teacher_ms: float,
        measure: Callable[[], tuple[LatencyResult, float | None]],
    ) -> tuple[LatencyResult, float | None]:
        """The kept timing of the structure ``key``, else ``measure()``'s, kept."""
        kept = self.get(key, teacher_ms)
        if kept is not None:
            return kept
        lat, ratio = measure()
        self.put(key, lat, ratio)
        return lat, ratio

    def put(self, key: str, lat: LatencyResult, ratio: float | None) -> None:
        """Keeps the first timing of the structure ``key`` and saves the file."""
        if key in self.entries:
            return
        self.entries[key] = {"result": lat.to_dict(), "ratio": ratio}
        self._save()

    def again(self, key: str) -> float | None:
        """The kept second timing of the structure ``key`` (ratio to the teacher), if any."""
        return self.again_ratios.get(key)

    def put_again(self, key: str, ratio: float) -> None:
        """Keeps the second timing of the structure ``key`` and saves the file."""
        if key in self.again_ratios:
            return
        self.again_ratios[key] = float(ratio)
        self._save()

    def _save(self) -> None:
        data = {
            "version": VERSION,
            "context": self.context,
            "entries": self.entries,
            "again": self.again_ratios,
        }
        write_atomic(self.path, json.dumps(data, indent=1, sort_keys=True))
