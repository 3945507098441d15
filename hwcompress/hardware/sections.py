"""The sections of a device profile (compute, memory, bits, runtime, latency, budgets,
constraint rows), each a frozen dataclass that validates itself, and the names they may use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from hwcompress.enums import NameEnum
from hwcompress.errors import ProfileError

#: Precisions a profile may give peak compute for (GOP/s, one multiply-add = 2 ops).
PRECISIONS = ("fp32", "fp16", "bf16", "int8", "int4")
#: Bit-widths the quantization stage knows how to simulate or export.
KNOWN_BITS = (2, 3, 4, 5, 6, 7, 8, 16, 32)


class SourceName(NameEnum):
    """The built-in latency sources (equal to their plain names, as profiles spell them)."""

    #: onnxruntime on this machine.
    LOCAL = "local"
    #: A board's benchmark server (``latency.url``).
    REMOTE = "remote"
    #: The calibrated latency table (``hwcompress calibrate``).
    TABLE = "table"
    #: The roofline floor: no measurement at all.
    ROOFLINE = "roofline"


#: Names a profile's ``latency.source`` may take. The sources themselves live in
#: :mod:`hwcompress.measure.sources`, which adds the name of every source it registers here
#: (this package is data only and imports nothing above it).
LATENCY_SOURCE_NAMES: set[str] = {s.value for s in SourceName}

#: The metrics a constraint row may read (the columns of ``A`` in ``A·x ≤ b``).
METRICS = (
    "params",
    "weight_bytes",
    "macs",
    "peak_activation_bytes",
    "latency_ms",
    "unsupported_bits",
)


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
            ``auto`` in a file: the NCHWc block of the machine that loads the profile (16
            with AVX-512, 8 with AVX2), for a profile of that machine itself.
    """

    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    threads: int = 1
    machines: tuple[str, ...] = ()
    channel_multiple: int = field(default=1, metadata={"channel_multiple": True})

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
        if self.source == SourceName.REMOTE and not self.url:
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
