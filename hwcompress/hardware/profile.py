"""Device profiles: what a target board can do and what a student must fit into.

A profile is one YAML file in the package's ``profiles/`` (``hardware_profiles/`` in a checkout
links there) or anywhere, given by path. It is validated as a whole on load; every mistake is
reported as a :class:`ProfileError` naming the file, the key and the fix.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hwcompress.errors import ProfileError
from hwcompress.hardware.schema import from_mapping, to_mapping
from hwcompress.hardware.sections import (
    BitWidthSpec,
    BudgetSpec,
    ComputeSpec,
    ConstraintRow,
    LatencySpec,
    MemorySpec,
    RuntimeSpec,
)

#: Environment variable naming an extra folder searched for profiles by name.
PROFILE_DIR_ENV = "HWCOMPRESS_PROFILE_DIR"
#: The profiles shipped with the package (``hardware_profiles/`` in a checkout links here).
BUILTIN_PROFILE_DIR = Path(str(importlib.resources.files("hwcompress").joinpath("profiles")))


@dataclass(frozen=True, kw_only=True)
class DeviceProfile:
    """Everything hwcompress knows about one target device."""

    name: str
    description: str = ""
    compute: ComputeSpec
    memory: MemorySpec
    bits: BitWidthSpec
    runtime: RuntimeSpec = field(default_factory=RuntimeSpec)
    latency: LatencySpec
    budgets: BudgetSpec
    constraints: tuple[ConstraintRow, ...] = ()
    path: str | None = None

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ProfileError("must not be empty", key="name")
        names = [row.name for row in self.constraints]
        if len(set(names)) != len(names):
            raise ProfileError("constraint names must be unique", key="constraints")

    def summary(self) -> dict[str, Any]:
        """The device's key figures, for reports: name, description, peak compute, memory,
        bit-widths, runtime and latency source."""
        return {
            "name": self.name,
            "description": self.description,
            "peak_gops": dict(self.compute.peak_gops),
            "bandwidth_gbps": self.memory.bandwidth_gbps,
            "ram_bytes": self.memory.ram_bytes,
            "storage_bytes": self.memory.storage_bytes,
            "weight_bits": list(self.bits.weight),
            "activation_bits": list(self.bits.activation),
            "providers": list(self.runtime.providers),
            "threads": self.runtime.threads,
            "machines": list(self.runtime.machines),
            "latency_source": self.latency.source,
            "latency_budget_ms": self.latency.budget_ms,
        }

    def to_dict(self) -> dict[str, Any]:
        """Returns the profile as plain data (the YAML layout)."""
        return to_mapping(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, file: str | None = None) -> DeviceProfile:
        """Validates and builds a profile from plain data.

        Args:
            data: The parsed YAML mapping.
            file: The file it came from, named in error messages.

        Returns:
            The profile.

        Raises:
            ProfileError: On any invalid or missing key.
        """
        try:
            return from_mapping(cls, data, file=file)
        except ProfileError as err:
            if err.file is None and file is not None:
                raise ProfileError(err.reason, file=file, key=err.key) from None
            raise

    def latency_table_path(self) -> Path:
        """Where the calibrated latency table of this profile lives.

        ``latency.table`` when set (relative paths are taken from the profile's folder), else
        ``<name>.latency.json`` beside the profile file; for a built-in profile, in the
        current folder (the package's own folder is not the user's to write in).
        """
        builtin = self.path is None or Path(self.path).resolve().parent == BUILTIN_PROFILE_DIR
        folder = Path.cwd() if builtin else Path(str(self.path)).parent
        if self.latency.table:
            table = Path(self.latency.table).expanduser()
            return table if table.is_absolute() else folder / table
        return folder / f"{self.name}.latency.json"

    def peak_ops_per_s(self, precision: str) -> float:
        """Peak ops/s for ``precision``, falling back to the fastest float figure given."""
        gops = self.compute.peak_gops
        if precision in gops:
            return gops[precision] * 1e9
        for fallback in ("fp32", "fp16", "bf16", "int8"):
            if fallback in gops:
                return gops[fallback] * 1e9
        return next(iter(gops.values())) * 1e9


def profile_dirs() -> list[Path]:
    """The folders searched for a profile given by name, in order."""
    dirs = []
    if os.environ.get(PROFILE_DIR_ENV):
        dirs.append(Path(os.environ[PROFILE_DIR_ENV]))
    dirs.append(Path.cwd() / "hardware_profiles")
    dirs.append(BUILTIN_PROFILE_DIR)
    seen: list[Path] = []
    for d in dirs:  # a folder linking to the built-ins (a checkout's) is the built-ins
        if d.resolve() not in seen:
            seen.append(d.resolve())
    return seen


def list_profiles() -> dict[str, Path]:
    """Maps each profile name found in :func:`profile_dirs` to its file (first one wins)."""
    found: dict[str, Path] = {}
    for d in profile_dirs():
        if d.is_dir():
            for path in sorted(d.glob("*.yaml")):
                found.setdefault(path.stem, path)
    return found


def resolve_profile_path(name_or_path: str | os.PathLike[str]) -> Path:
    """Finds the file for a profile name (``jetson_nano``, ``jetson_nano.yaml``) or path.

    Raises:
        ProfileError: If no such file or profile exists.
    """
    candidate = Path(name_or_path)
    if candidate.is_file():
        return candidate
    stem = candidate.name[:-5] if candidate.name.endswith(".yaml") else candidate.name
    if candidate.parent == Path(".") and stem in (known := list_profiles()):
        return known[stem]
    known = list_profiles()
    raise ProfileError(
        f"no profile file or built-in profile named '{name_or_path}'. Built-in profiles: "
        f"{', '.join(sorted(known)) or '(none found)'}; or pass the path to a YAML file "
        "(see 'hwcompress profile list')"
    )


def _yaml_problem(err: yaml.YAMLError) -> str:
    """A YAML error in one short line: what and where (PyYAML's own text spans lines)."""
    problem = getattr(err, "problem", None) or type(err).__name__
    mark = getattr(err, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{' '.join(str(problem).split())[:120]}{where}"


def load_profile(name_or_path: str | os.PathLike[str]) -> DeviceProfile:
    """Loads and validates a device profile.

    Args:
        name_or_path: A built-in profile name (``jetson_nano``, ``jetson_nano.yaml``) or the
            path to a YAML file.

    Returns:
        The validated profile, with ``path`` set to the file it came from.

    Raises:
        ProfileError: If the file is missing, is not YAML, or fails validation. The message
            names the file, the key and the fix.
    """
    path = resolve_profile_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ProfileError(
            f"not valid YAML ({_yaml_problem(err)}); fix the syntax", file=str(path)
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ProfileError(f"cannot read the file ({err})", file=str(path)) from None
    if not isinstance(data, dict):
        raise ProfileError(
            "the file must hold a mapping of keys (name, compute, memory, ...)", file=str(path)
        )
    if "path" in data:
        raise ProfileError(
            "'path' is set by the loader; remove it from the file", file=str(path), key="path"
        )
    profile = DeviceProfile.from_dict(data, file=str(path))
    return dataclasses.replace(profile, path=str(path))
