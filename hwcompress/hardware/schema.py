"""A small validating loader from plain dicts (parsed YAML/JSON) into frozen dataclasses.

Every failure raises :class:`~hwcompress.errors.ProfileError` naming the file, the dotted key
and the fix, so a user never sees a bare ``TypeError`` from a typo in a YAML file.
"""

from __future__ import annotations

import dataclasses
import math
import re
import reprlib
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

from hwcompress.errors import ProfileError

T = TypeVar("T")

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
#: The largest number a profile may hold (sizes, counts, budgets): 2**63, far beyond any device.
MAX_MAGNITUDE = 2**63
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict = 2, 4, 4


def show(value: Any) -> str:
    """A short, bounded ``repr`` for error messages (a hostile file can hold huge values)."""
    return _REPR.repr(value)


def _check_magnitude(value: int | float, *, file: str | None, key: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ProfileError(f"must be a finite number (got {value})", file=file, key=key)
    if abs(value) > MAX_MAGNITUDE:
        raise ProfileError(
            f"is too large (over 2**63); got a number of {len(str(int(value)))} digits",
            file=file,
            key=key,
        )


_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$")


def parse_bytes(value: Any, *, file: str | None, key: str) -> int:
    """Parses a byte size given as an integer or a string such as ``"512 KiB"`` or ``"4 GB"``.

    Args:
        value: The raw value from the file.
        file: The file it came from, for the error message.
        key: The dotted key, for the error message.

    Returns:
        The size in bytes.

    Raises:
        ProfileError: If the value is not a non-negative size.
    """
    if isinstance(value, bool):
        raise ProfileError(
            "expected a byte size such as 4194304 or '4 MiB', got a boolean", file=file, key=key
        )
    if isinstance(value, int | float):
        _check_magnitude(value, file=file, key=key)
        if value < 0:
            raise ProfileError(
                f"must not be negative (got {value}); give a size in bytes", file=file, key=key
            )
        return int(value)
    if isinstance(value, str):
        match = _SIZE_RE.match(value)
        unit = match.group(2).lower() if match else None
        if match is None or unit not in _UNITS:
            raise ProfileError(
                f"cannot read {show(value)} as a byte size; write e.g. 1048576, '512 KiB', '2 MiB' "
                "or '4 GB'",
                file=file,
                key=key,
            )
        size = float(match.group(1)) * _UNITS[unit]
        _check_magnitude(size, file=file, key=key)
        return int(size)
    raise ProfileError(
        f"expected a byte size such as 4194304 or '4 MiB', got {show(value)}", file=file, key=key
    )


def _cpuinfo(cpuinfo: str | None) -> dict[str, str]:
    """The first value of each key of ``/proc/cpuinfo`` (read from this machine when None;
    empty when it cannot be read)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as f:
                cpuinfo = f.read()
        except OSError:
            return {}
    info: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    return info


def host_channel_block(cpuinfo: str | None = None) -> int:
    """The channel block onnxruntime's NCHWc convolutions use on this machine: 16 with
    AVX-512, 8 with AVX or AVX2 (MLAS' blocked kernels), 1 (any count) elsewhere or when the
    CPU cannot be read.

    Args:
        cpuinfo: The text of ``/proc/cpuinfo`` (read from this machine when None).
    """
    flags = set(_cpuinfo(cpuinfo).get("flags", "").split())
    if "avx512f" in flags:
        return 16
    return 8 if flags & {"avx", "avx2"} else 1


def host_cpu(cpuinfo: str | None = None) -> str:
    """This machine's CPU in a few words (model, family, widest vector unit), so figures
    measured on different machines are told apart."""
    import platform

    info = _cpuinfo(cpuinfo)
    if not info:
        return platform.processor() or platform.machine()
    flags = set(info.get("flags", "").split())
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{info.get('model name', '?')} (family {info.get('cpu family', '?')}, {vector})"


def parse_channel_multiple(value: Any, *, file: str | None, key: str) -> int:
    """A channel multiple: an integer, or ``auto`` for this machine's
    (:func:`host_channel_block`), for a profile of the machine that loads it."""
    if value == "auto":
        return host_channel_block()
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProfileError(
            f"expected an integer or 'auto' (this machine's NCHWc block), got {show(value)}",
            file=file,
            key=key,
        )
    return value


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, meta: Mapping[str, Any], *, file: str | None, key: str) -> Any:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(value, inner, meta, file=file, key=key)
    if meta.get("bytes"):
        return parse_bytes(value, file=file, key=key)
    if meta.get("channel_multiple"):
        return parse_channel_multiple(value, file=file, key=key)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, file=file, prefix=key)
    if origin is tuple:
        inner = get_args(tp)[0]
        if not isinstance(value, list | tuple):
            raise ProfileError(f"expected a list, got {show(value)}", file=file, key=key)
        return tuple(
            _convert(v, inner, {}, file=file, key=f"{key}[{i}]") for i, v in enumerate(value)
        )
    if origin is dict:
        key_tp, val_tp = get_args(tp)
        if not isinstance(value, Mapping):
            raise ProfileError(f"expected a mapping, got {show(value)}", file=file, key=key)
        return {
            _convert(k, key_tp, {}, file=file, key=key): _convert(
                v, val_tp, {}, file=file, key=f"{key}.{k}"
            )
            for k, v in value.items()
        }
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ProfileError(f"expected a number, got {show(value)}", file=file, key=key)
        _check_magnitude(value, file=file, key=key)
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProfileError(f"expected an integer, got {show(value)}", file=file, key=key)
        _check_magnitude(value, file=file, key=key)
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ProfileError(f"expected true or false, got {show(value)}", file=file, key=key)
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ProfileError(f"expected a string, got {show(value)}", file=file, key=key)
        return value
    raise ProfileError(f"unsupported field type {_type_name(tp)}", file=file, key=key)


def from_mapping(cls: type[T], data: Any, *, file: str | None = None, prefix: str = "") -> T:
    """Builds the dataclass ``cls`` from a mapping, checking keys and types.

    Args:
        cls: A dataclass type whose fields carry type hints.
        data: The mapping, e.g. one section of a parsed YAML file.
        file: The source file, for error messages.
        prefix: The dotted key of ``data`` inside the file.

    Returns:
        An instance of ``cls``.

    Raises:
        ProfileError: On an unknown key, a missing required key or a wrongly typed value.
    """
    where = prefix or "(top level)"
    if not isinstance(data, Mapping):
        raise ProfileError(
            f"expected a mapping of keys to values, got {show(data)}", file=file, key=where
        )
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted((k for k in data if k not in fields), key=str)
    if unknown:
        name = str(unknown[0]) if len(str(unknown[0])) <= 60 else str(unknown[0])[:57] + "..."
        bad = f"{prefix}.{name}" if prefix else name
        raise ProfileError(
            f"unknown key; allowed keys here are: {', '.join(sorted(fields))}", file=file, key=bad
        )
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name not in data:
            has_default = (
                field.default is not dataclasses.MISSING
                or field.default_factory is not dataclasses.MISSING
            )
            if not has_default:
                raise ProfileError(
                    f"missing required key; add '{name}:' under '{where}'", file=file, key=key
                )
            continue
        kwargs[name] = _convert(data[name], hints[name], field.metadata, file=file, key=key)
    return cls(**kwargs)


def to_mapping(obj: Any) -> Any:
    """Turns a (nested) dataclass into plain dicts, lists and scalars for JSON or YAML.

    Args:
        obj: A dataclass instance, or a value found inside one.

    Returns:
        A JSON-serialisable structure that :func:`from_mapping` reads back.
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_mapping(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, tuple | list):
        return [to_mapping(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_mapping(v) for k, v in obj.items()}
    return obj
