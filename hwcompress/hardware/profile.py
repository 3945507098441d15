"""Device profiles: what a target board can do and what a student must fit into.

A profile is one YAML file in the package's ``profiles/`` (``hardware_profiles/`` in a checkout
links there) or anywhere, given by path. It is validated as a whole on load; every mistake is
reported as a :class:`ProfileError` naming the file, the key and the fix.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hwcompress.errors import ProfileError
from hwcompress.hardware.schema import from_mapping, to_mapping

#: Precisions a profile may give peak compute for (GOP/s, one multiply-add = 2 ops).
PRECISIONS = ("fp32", "fp16", "bf16", "int8", "int4")
#: Bit-widths the quantization stage knows how to simulate or export.
KNOWN_BITS = (2, 3, 4, 5, 6, 7, 8, 16, 32)
#: Environment variable naming an extra folder searched for profiles by name.
PROFILE_DIR_ENV = "HWCOMPRESS_PROFILE_DIR"
#: The profiles shipped with the package (``hardware_profiles/`` in a checkout links here).
#: Names a profile's ``latency.source`` may take. The sources themselves live in
#: :mod:`hwcompress.measure.sources`, which adds the name of every source it registers here
#: (this package is data only and imports nothing above it).
LATENCY_SOURCE_NAMES: set[str] = {"local", "remote", "table", "roofline"}

#: The metrics a constraint row may read (the columns of ``A`` in ``A·x ≤ b``).
METRICS = (
    "params",
    "weight_bytes",
    "macs",
    "peak_activation_bytes",
    "latency_ms",
    "unsupported_bits",
)
BUILTIN_PROFILE_DIR = Path(str(importlib.resources.files("hwcompress").joinpath("profiles")))


def _positive(value: float | None, key: str, what: str) -> None:
    if value is not None and (not math.isfinite(value) or value <= 0):
        raise ProfileError(f"must be a positive {what} (got {value})", key=key)


@dataclass(frozen=True, kw_only=True)
class ComputeSpec:
    """Peak arithmetic throughput per precision, in GOP/s (a multiply-add counts as 2 ops)."""

    peak_gops: dict[str, float]

    def __post_init__(self) -> None:
        if not self.peak_gops:
            raise ProfileError(
                "give at least one precision, e.g. 'fp32: 96'", key="compute.peak_gops"
            )
        for prec, gops in self.peak_gops.items():
            if prec not in PRECISIONS:
                raise ProfileError(
                    f"unknown precision; use one of {', '.join(PRECISIONS)}",
                    key=f"compute.peak_gops.{prec}",
                )
            _positive(gops, f"compute.peak_gops.{prec}", "number of GOP/s")


@dataclass(frozen=True, kw_only=True)
class MemorySpec:
    """Memory system of the board."""

    bandwidth_gbps: float
    ram_bytes: int = field(metadata={"bytes": True})
    storage_bytes: int = field(metadata={"bytes": True})

    def __post_init__(self) -> None:
        _positive(self.bandwidth_gbps, "memory.bandwidth_gbps", "bandwidth in GB/s")
        _positive(self.ram_bytes, "memory.ram_bytes", "size")
        _positive(self.storage_bytes, "memory.storage_bytes", "size")


@dataclass(frozen=True, kw_only=True)
class BitWidthSpec:
    """Bit-widths the device's kernels support for weights and activations."""

    weight: tuple[int, ...]
    activation: tuple[int, ...]

    def __post_init__(self) -> None:
        for kind in ("weight", "activation"):
            values = getattr(self, kind)
            if not values:
                raise ProfileError("list at least one bit-width, e.g. [8]", key=f"bits.{kind}")
            for v in values:
                if v not in KNOWN_BITS:
                    raise ProfileError(
                        f"unknown bit-width {v}; supported: {', '.join(map(str, KNOWN_BITS))}",
                        key=f"bits.{kind}",
                    )

    @property
    def runs_float(self) -> bool:
        """Whether the device runs fp32 models (32 among both its weight and activation bits)."""
        return 32 in self.weight and 32 in self.activation

    def unsupported(self, weight: Sequence[int], activation: Sequence[int]) -> int:
        """How many layers use a width the device's kernels cannot run.

        Args:
            weight: The weight bit-width of each weighted layer.
            activation: The bit-width of each weighted layer's input activation.

        Returns:
            The number of layers whose weight or input activation width is not supported.
        """
        return sum(
            w not in self.weight or a not in self.activation
            for w, a in zip(weight, activation, strict=True)
        )

    def describe(self) -> str:
        """The supported widths, in words."""
        return (
            f"weights at {'/'.join(map(str, self.weight))} bits, "
            f"activations at {'/'.join(map(str, self.activation))} bits"
        )


@dataclass(frozen=True, kw_only=True)
class RuntimeSpec:
    """How onnxruntime is run when latency is measured.

    Attributes:
        providers: Execution providers in order of preference (the first available runs).
        threads: Intra-op threads.
        machines: What ``platform.machine()`` says on the board (``aarch64``, ``x86_64``);
            when set, a ``local`` measurement on another machine is labelled as this host's
            and warned about. Empty: unknown (only a provider fallback is warned about).
        channel_multiple: The channel counts the device's convolution kernels run fastest
            are multiples of it (onnxruntime's NCHWc blocks: 16 with AVX-512, 8 with AVX2;
            TensorRT and CMSIS-NN users name their own). Where latency steers a search,
            students' channel counts snap to it (counts below it to powers of two). 1: any.
    """

    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    threads: int = 1
    machines: tuple[str, ...] = ()
    channel_multiple: int = 1

    def __post_init__(self) -> None:
        if not self.providers:
            raise ProfileError(
                "list at least one execution provider, e.g. [CPUExecutionProvider]",
                key="runtime.providers",
            )
        if self.threads < 1:
            raise ProfileError(f"must be at least 1 (got {self.threads})", key="runtime.threads")
        if not 1 <= self.channel_multiple <= 1024:
            raise ProfileError(
                f"must be between 1 and 1024 (got {self.channel_multiple}); 1 means any count",
                key="runtime.channel_multiple",
            )


@dataclass(frozen=True, kw_only=True)
class LatencySpec:
    """Where latency comes from and what it must stay under.

    Attributes:
        source: ``local`` (onnxruntime here), ``remote`` (a ``hwcompress serve`` benchmark
            server on the board), ``table`` (predicted from a calibrated per-layer table) or
            ``roofline`` (estimated from peak compute and bandwidth).
        budget_ms: The latency budget, one row of the constraint matrix.
        runs: Minimum timed runs per measurement.
        warmup: Untimed runs first.
        min_time_s: Minimum timed duration per measurement.
        roofline_efficiency: Share of peak the kernels reach (``roofline`` source).
        url: The benchmark server, e.g. ``http://192.168.1.20:8765`` (``remote`` source; for
            ``table``, where ``hwcompress calibrate`` measures — this machine when unset).
        token_env: The environment variable holding the server's bearer token.
        timeout_s: Seconds one request to the server may take before it is retried.
        retries: Retries after a network failure (exponential backoff) before the
            candidate fails with the reason.
        table: The calibrated table file (``table`` source), relative to the profile's folder;
            default ``<profile name>.latency.json`` beside the profile.
    """

    source: str = "local"
    budget_ms: float
    runs: int = 50
    warmup: int = 10
    min_time_s: float = 0.5
    roofline_efficiency: float = 1.0
    url: str | None = None
    token_env: str = "HWCOMPRESS_TOKEN"
    timeout_s: float = 120.0
    retries: int = 3
    table: str | None = None

    def __post_init__(self) -> None:
        if self.source not in LATENCY_SOURCE_NAMES:
            raise ProfileError(
                f"unknown latency source {self.source!r}; use one of "
                f"{', '.join(sorted(LATENCY_SOURCE_NAMES))}",
                key="latency.source",
            )
        _positive(self.budget_ms, "latency.budget_ms", "number of milliseconds")
        if self.runs < 1 or self.warmup < 0:
            raise ProfileError("runs must be ≥ 1 and warmup ≥ 0", key="latency.runs")
        if self.min_time_s < 0:
            raise ProfileError("must not be negative", key="latency.min_time_s")
        if not 0 < self.roofline_efficiency <= 1:
            raise ProfileError(
                "must be in (0, 1]: the share of peak the kernels reach",
                key="latency.roofline_efficiency",
            )
        if self.source == "remote" and not self.url:
            raise ProfileError(
                "the remote source needs the benchmark server's address, e.g. "
                "url: http://192.168.1.20:8765 (start it on the board with 'hwcompress serve')",
                key="latency.url",
            )
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ProfileError(
                f"expected an http:// or https:// address, got {self.url!r}", key="latency.url"
            )
        if not self.token_env.strip():
            raise ProfileError("name an environment variable", key="latency.token_env")
        _positive(self.timeout_s, "latency.timeout_s", "number of seconds")
        if self.retries < 0:
            raise ProfileError("must not be negative", key="latency.retries")


@dataclass(frozen=True, kw_only=True)
class BudgetSpec:
    """Resource budgets; each becomes one row of the constraint matrix."""

    weight_bytes: int = field(metadata={"bytes": True})
    peak_activation_bytes: int = field(metadata={"bytes": True})
    macs: int | None = None
    params: int | None = None

    def __post_init__(self) -> None:
        for name in ("weight_bytes", "peak_activation_bytes", "macs", "params"):
            value = getattr(self, name)
            _positive(value, f"budgets.{name}", "budget")


@dataclass(frozen=True, kw_only=True)
class ConstraintRow:
    """One extra linear constraint ``sum(coeffs[m] * metric[m]) <= bound``."""

    name: str
    coeffs: dict[str, float]
    bound: float

    def __post_init__(self) -> None:
        if not self.coeffs:
            raise ProfileError("give at least one coefficient", key=f"constraints.{self.name}")
        for metric in self.coeffs:
            if metric not in METRICS:
                raise ProfileError(
                    f"unknown metric {metric!r}; use one of {', '.join(METRICS)}",
                    key=f"constraints.{self.name}.coeffs",
                )
        for metric, coeff in self.coeffs.items():
            if not math.isfinite(coeff):
                raise ProfileError(
                    f"must be a finite number (got {coeff})",
                    key=f"constraints.{self.name}.coeffs.{metric}",
                )
        if not math.isfinite(self.bound):
            raise ProfileError("must be a finite number", key=f"constraints.{self.name}.bound")
        if self.bound <= 0 and all(c >= 0 for c in self.coeffs.values()):
            raise ProfileError(
                f"must be positive (got {self.bound}): with non-negative coefficients no "
                "model could meet it",
                key=f"constraints.{self.name}.bound",
            )


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
