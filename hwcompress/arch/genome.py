"""Genome: one student, as one choice at each of a teacher's decision points.

Plain frozen data (JSON round-trip); per-layer decisions are keyed by module name.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Genome"]


@dataclass(frozen=True, kw_only=True)
class Genome:
    """One student: which units to keep, each group's width factor, kernel sizes and
    bit-widths.

    Missing entries mean "keep", width 1.0, the teacher's kernel and the default precision.
    ``kernel`` maps a conv's module name to the centred crop of its kernel that the student
    keeps (kernel-wise pruning), e.g. ``[3, 1]`` for a 3×3 kernel cut to 3×1.
    """

    keep: dict[str, bool] = field(default_factory=dict)
    width: dict[str, float] = field(default_factory=dict)
    kernel: dict[str, list[int]] = field(default_factory=dict)
    weight_bits: dict[str, int] = field(default_factory=dict)
    act_bits: dict[str, int] = field(default_factory=dict)

    def structure(self) -> Genome:
        """What this genome keeps and crops, with widths and bit-widths reset."""
        return Genome(keep=dict(self.keep), kernel=dict(self.kernel))

    def key(self) -> str:
        """A canonical string: equal genomes (after dropping defaults) have equal keys."""
        data = {
            "keep": {k: v for k, v in sorted(self.keep.items()) if not v},
            "width": {k: round(v, 6) for k, v in sorted(self.width.items()) if v != 1.0},
            "weight_bits": dict(sorted(self.weight_bits.items())),
            "act_bits": dict(sorted(self.act_bits.items())),
        }
        if self.kernel:
            data["kernel"] = {k: list(v) for k, v in sorted(self.kernel.items())}
        return json.dumps(data, sort_keys=True)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Genome:
        """Inverse of :meth:`to_dict`."""
        fields = {k: dict(v) for k, v in data.items()}
        if "kernel" in fields:
            fields["kernel"] = {k: [int(x) for x in v] for k, v in fields["kernel"].items()}
        return cls(**fields)
