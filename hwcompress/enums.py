"""The base of the package's name enums (stage names, latency sources, candidate status):
members equal their plain strings and print as them, as journals, profiles and the command
line spell them. Below every package (``hardware`` included), importing nothing."""

from __future__ import annotations

from enum import Enum

__all__ = ["NameEnum"]


class NameEnum(str, Enum):
    """A ``str`` enum whose members print as their values (``enum.StrEnum`` on 3.11+)."""

    def __str__(self) -> str:
        return str(self.value)
