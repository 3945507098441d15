"""The package's exceptions.

Every message says what went wrong *and* what to do next; the CLI prints it as one red line
and exits with code 2. Library code raises these instead of bare ``ValueError``.
"""

from __future__ import annotations


class HwCompressError(Exception):
    """Base class of every error hwcompress raises on purpose."""

    exit_code = 2


class ProfileError(HwCompressError):
    """A device profile is missing, malformed, or has values that make no sense.

    Args:
        message: What is wrong and how to fix it.
        file: The profile file concerned, when there is one.
        key: The dotted key concerned, when there is one.
    """

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None) -> None:
        self.file = file
        self.key = key
        self.reason = message
        where = ""
        if file:
            where += f"{file}: "
        if key:
            shown = key if len(key) <= 100 else key[:97] + "..."
            where += f"'{shown}': "
        super().__init__(where + message)


class ModelError(HwCompressError):
    """A model (PyTorch module or ONNX file) cannot be loaded, traced or measured."""


class ConstraintError(HwCompressError):
    """A constraint row names an unknown metric or a metric vector is incomplete."""


class LatencyError(HwCompressError):
    """Latency could not be measured (runtime failure, unavailable source)."""


class DataError(HwCompressError):
    """A dataset is missing, in the wrong layout, or cannot be read."""


class TeacherError(HwCompressError):
    """A teacher spec cannot be resolved, or its checkpoint cannot be loaded safely."""


class GenomeError(HwCompressError):
    """A genome cannot be built into a valid student (the search scores it −1)."""
