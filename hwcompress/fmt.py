"""Human-readable formatting of sizes and counts for tables and reports."""

from __future__ import annotations


def human_bytes(n: float) -> str:
    """Formats a byte count with binary units (``1.5 MiB``)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"


def human_count(n: float) -> str:
    """Formats a large count with SI suffixes (``2.39 M``)."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f}"


def human_metric(name: str, value: float) -> str:
    """Formats a value of one of the constraint metrics by its unit."""
    if name.endswith("bytes"):
        return human_bytes(value)
    if name.endswith("_ms"):
        return f"{value:.3f} ms"
    if name == "unsupported_bits":
        return f"{value:.0f} layers"
    return human_count(value)


def bit_widths(widths: tuple[int, ...] | list[int]) -> str:
    """The distinct bit-widths of a model's layers (``8/4``), or ``none``."""
    return "/".join(str(b) for b in sorted(set(widths), reverse=True)) or "none"
