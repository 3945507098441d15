"""The package's exceptions.

Every message says what went wrong *and* what to do next; the CLI prints it as one red line
and exits with code 2. Library code raises these instead of bare ``ValueError``.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable


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


#: A setting named in a :class:`ConfigError` message: ``{field_name}``.
_SETTING = re.compile(r"\{([a-z][a-z0-9_]*)\}")


class ConfigError(HwCompressError):
    """A bad setting of a run, named by its configuration field.

    The message is written once with the settings it names in braces (``"{episodes} must be at
    least 1"``). ``str()`` names them as the Python API does (``episodes``);
    :meth:`render` names them as a caller wants, e.g. the CLI's flags (``--episodes``).

    Args:
        template: What is wrong and what to do, settings in braces.

    Attributes:
        field: The first setting the message names (the one that is wrong).
        fields: Every setting it names.
    """

    def __init__(self, template: str) -> None:
        self.template = template
        self.fields = tuple(dict.fromkeys(_SETTING.findall(template)))
        self.field = self.fields[0] if self.fields else None
        super().__init__(self.render(str))

    def render(self, name: Callable[[str], str]) -> str:
        """The message with each setting shown as ``name(field)``."""
        return _SETTING.sub(lambda m: name(m.group(1)), self.template)


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


class MachineError(HwCompressError):
    """The machine failed, not the work: a full disk, a missing permission, no memory.

    A search stops on it without recording the candidate in flight as failed (it would be
    scored −1 and never retried); ``--resume`` continues once the machine is fixed.
    """


#: OS error numbers that describe the machine rather than the work being done.
_MACHINE_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "ENOSPC",
        "EFBIG",
        "EDQUOT",
        "EROFS",
        "EACCES",
        "EPERM",
        "EIO",
        "EMFILE",
        "ENFILE",
        "ENOMEM",
    )
    if hasattr(errno, name)
)

#: How such failures read once a library has wrapped them in a ``RuntimeError``.
_MACHINE_TEXT = (
    "no space left on device",
    "file too large",
    "disk quota exceeded",
    "read-only file system",
    "permission denied",
    "file write failed",
    "can't allocate memory",
    "cannot allocate memory",
    "out of memory",
    "input/output error",
    "too many open files",
)


def machine_problem(err: BaseException) -> str | None:
    """What went wrong with the machine in ``err`` (or its causes), or ``None`` if nothing did.

    Args:
        err: An exception raised while doing some work.

    Returns:
        A short description such as ``"no space left on device"``.
    """
    seen: set[int] = set()
    e: BaseException | None = err
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, MachineError):
            return str(e)
        if isinstance(e, MemoryError):
            return "out of memory"
        if isinstance(e, OSError) and e.errno is not None and e.errno in _MACHINE_ERRNOS:
            return os.strerror(e.errno).lower()
        text = str(e).lower()
        for phrase in _MACHINE_TEXT:
            if phrase in text:
                return phrase
        e = e.__cause__ or e.__context__
    return None
