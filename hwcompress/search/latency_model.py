"""A run's latency model: a student's latency predicted from its genome alone.

Latency targets steer the search only if a proposal's latency is known *before* it is
trained: AMC clamps an action until the budget holds, which needs a prediction at every
step of a bisection, so it must cost microseconds, not an export. The model here reads what
:meth:`~hwcompress.arch.spec.ArchSpec.costs` knows of each kept layer (its channels, output
positions and MACs) and sums per-kind terms:

- convolution MACs split by output size (a GEMM over a 28×28 map runs at another speed per
  MAC than one over 3×3), the same MACs with channels padded to the device's block
  (onnxruntime's NCHWc kernels on x86 pad to 8 or 16 channels, so 17 channels cost 24 or 32),
  and the MACs of convolutions whose channels are off the block (they run slower kernels:
  here 29 channels a layer instead of 32 made a VGG 1.5× *slower*);
- depthwise and linear MACs, output elements (memory traffic), and a per-layer cost;

fitted by non-negative least squares to whole students of the teacher, measured on the
run's own device in turn with the teacher (:func:`calibrate`). The predictions are ratios
to the teacher's latency, scaled by the teacher's measurement at the start of the run, so
the machine's drift between calibration and search cancels out. The fit is stored as plain
JSON in the run folder (``latency_model.json``) and read back on resume, so a resumed run
clamps exactly as the interrupted one did.

:func:`hwcompress.search.features.group_sensitivity` tells the shrinkage policy what each
channel group costs in time: the predicted share of the student's latency saved by halving it.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hwcompress.arch.genome import Genome
from hwcompress.arch.spec import ArchSpec
from hwcompress.hardware.sections import SourceName

if TYPE_CHECKING:
    from torch import nn

    from hwcompress.hardware.profile import DeviceProfile

__all__ = [
    "FEATURES",
    "LatencyModel",
    "calibrate",
    "calibration_genomes",
    "genome_features",
]

#: The model's terms, each a sum over the student's kept layers.
FEATURES = (
    "layers",
    "conv_macs_1",
    "conv_macs_16",
    "conv_macs_256",
    "conv_macs_large",
    "padded_conv_macs",
    "unaligned_conv_macs",
    "dw_macs",
    "linear_macs",
    "elements",
)
#: Output positions up to which a convolution's MACs count in one term.
_BUCKETS = ((4, "conv_macs_1"), (64, "conv_macs_16"), (256, "conv_macs_256"))
MODEL_FORMAT = 1
FILE_NAME = "latency_model.json"
#: How many median errors of the fit a cautious prediction adds.
CAUTION = 1.5


def _pad(channels: int, block: int) -> int:
    return block * math.ceil(channels / block) if block > 1 else channels


def genome_features(spec: ArchSpec, genome: Genome, block: int = 8) -> dict[str, float]:
    """The model's terms for the student ``genome`` describes (see :data:`FEATURES`).

    Args:
        spec: The teacher's spec.
        genome: The student.
        block: The channel block the device's kernels pad to.
    """
    out = dict.fromkeys(FEATURES, 0.0)
    for c in spec.costs(genome):
        if c.kind in ("conv", "gconv"):
            out["layers"] += 1
            bucket = next((name for limit, name in _BUCKETS if c.pixels <= limit), None)
            out[bucket or "conv_macs_large"] += c.macs
            if c.kind == "conv" and c.in_channels and c.out_channels:
                # an image's few input channels take the kernels' own NCHW entry path
                cin = c.in_channels if c.in_channels > 4 else block
                pad = (_pad(cin, block) / cin) * (_pad(c.out_channels, block) / c.out_channels)
                out["padded_conv_macs"] += c.macs * pad
                if cin % block or c.out_channels % block:
                    out["unaligned_conv_macs"] += c.macs
            else:
                out["padded_conv_macs"] += c.macs
            out["elements"] += c.out_channels * c.pixels
        elif c.kind == "dwconv":
            out["layers"] += 1
            out["dw_macs"] += c.macs
            out["elements"] += c.out_channels * c.pixels
        elif c.kind == "linear":
            out["layers"] += 1
            out["linear_macs"] += c.macs
            out["elements"] += c.out_channels
        elif c.kind == "norm" and c.macs:
            out["dw_macs"] += c.macs
            out["elements"] += c.out_channels * c.pixels
    return out


@dataclass
class LatencyModel:
    """Latency ratio to the teacher ≈ ``const + Σ coef · feature / teacher_feature``.

    Attributes:
        coef: Non-negative weight of each term of :data:`FEATURES` (scaled by the teacher's
            value of it) and of ``const``.
        scale: The teacher's value of each term (1 where the teacher has none).
        teacher_ms: The teacher's latency the ratios are scaled by.
        block: The channel block the features pad to.
        fitted_on: How many whole students (the teacher among them) were measured.
        median_error: The fit's median relative error on them (leave-one-out).
        seconds: How long calibration took.
    """

    coef: dict[str, float]
    scale: dict[str, float]
    teacher_ms: float
    block: int = 8
    fitted_on: int = 0
    median_error: float = 0.0
    seconds: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)

    def ratio(self, spec: ArchSpec, genome: Genome) -> float:
        """The student's predicted latency as a share of the teacher's."""
        feats = genome_features(spec, genome, self.block)
        return self.coef.get("const", 0.0) + sum(
            self.coef.get(k, 0.0) * v / self.scale.get(k, 1.0) for k, v in feats.items()
        )

    def predict_ms(self, spec: ArchSpec, genome: Genome) -> float:
        """The student's predicted latency in milliseconds (at the run's teacher latency)."""
        return self.ratio(spec, genome) * self.teacher_ms

    def predictor(self, spec: ArchSpec, *, cautious: bool = True) -> Callable[[Genome], float]:
        """``genome ↦`` predicted milliseconds, for the clamps and seeds; ``cautious``: raised
        by :data:`CAUTION` times the fit's median error, so that a proposal scaled to the
        budget by it mostly measures within the budget too."""
        factor = 1.0 + CAUTION * self.median_error if cautious else 1.0
        return lambda genome: factor * self.predict_ms(spec, genome)

    @classmethod
    def fit(
        cls,
        spec: ArchSpec,
        genomes: Sequence[Genome],
        ratios: Sequence[float],
        teacher_ms: float,
        block: int = 8,
    ) -> LatencyModel:
        """Fits the terms to measured latency ratios (non-negative least squares).

        Args:
            spec: The teacher's spec.
            genomes: The measured students (the teacher's empty genome among them).
            ratios: Each one's latency divided by the teacher's, measured in turn.
            teacher_ms: The teacher's latency the predictions are scaled by.
            block: The channel block of the padded term.
        """
        teacher = genome_features(spec, Genome(), block)
        scale = {k: (v if v > 0 else 1.0) for k, v in teacher.items()}
        x = np.array(
            [
                [1.0] + [f[k] / scale[k] for k in FEATURES]
                for f in (genome_features(spec, g, block) for g in genomes)
            ]
        )
        y = np.asarray(ratios, dtype=float)
        w = _nnls(x, y)
        errors = []
        if len(y) > len(FEATURES) + 2:
            for i in range(len(y)):
                keep = np.arange(len(y)) != i
                wi = _nnls(x[keep], y[keep])
                errors.append(abs(float(x[i] @ wi) - y[i]) / max(y[i], 1e-9))
        coef = {"const": float(w[0]), **{k: float(v) for k, v in zip(FEATURES, w[1:], strict=True)}}
        return cls(
            coef=coef,
            scale=scale,
            teacher_ms=teacher_ms,
            block=block,
            fitted_on=len(y),
            median_error=float(np.median(errors)) if errors else 0.0,
            rows=[
                {"genome": g.to_dict(), "ratio": float(r)}
                for g, r in zip(genomes, ratios, strict=True)
            ],
        )

    def summary(self, multiple: int) -> dict[str, Any]:
        """What ``results.json`` says of the run's model (``multiple``: the channel multiple
        proposals were snapped to)."""
        return {
            "file": FILE_NAME,
            "fitted_on": self.fitted_on,
            "median_error": self.median_error,
            "seconds": self.seconds,
            "channel_multiple": multiple,
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (JSON)."""
        return {
            "format": MODEL_FORMAT,
            "coef": self.coef,
            "scale": self.scale,
            "teacher_ms": self.teacher_ms,
            "block": self.block,
            "fitted_on": self.fitted_on,
            "median_error": self.median_error,
            "seconds": self.seconds,
            "rows": self.rows,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyModel:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: If ``data`` is not a latency model of a format this version reads.
        """
        if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
            raise ValueError("not a latency model of format 1")
        return cls(
            coef={str(k): float(v) for k, v in dict(data["coef"]).items()},
            scale={str(k): float(v) for k, v in dict(data["scale"]).items()},
            teacher_ms=float(data["teacher_ms"]),
            block=int(data.get("block", 8)),
            fitted_on=int(data.get("fitted_on", 0)),
            median_error=float(data.get("median_error", 0.0)),
            seconds=float(data.get("seconds", 0.0)),
            rows=list(data.get("rows", [])),
        )

    def save(self, path: Path) -> None:
        """Writes the model as JSON (atomically)."""
        from hwcompress.files import write_atomic

        write_atomic(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: Path) -> LatencyModel:
        """Reads a model written by :meth:`save`."""
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


def _nnls(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    from scipy.optimize import nnls

    w, _ = nnls(x, y)
    return np.asarray(w)


def calibration_genomes(spec: ArchSpec, n: int, seed: int = 0, multiple: int = 1) -> list[Genome]:
    """``n`` distinct students that span the search's space: a third scaled uniformly, the
    rest with a random width per group (from the shrinkage policy's choices), half of those
    with random removals too; channel counts snapped to ``multiple`` as the search's are."""
    from hwcompress.search.policies import WIDTH_CHOICES
    from hwcompress.search.target import snap_genome

    rng = np.random.default_rng(seed)
    groups = [g.key for g in spec.shrinkable]
    units = [u.name for u in spec.units]
    out: dict[str, Genome] = {}
    attempts = 0
    while len(out) < n and attempts < 20 * n:
        attempts += 1
        i = len(out)
        if i % 3 == 0:
            q = float(rng.uniform(0.1, 1.0))
            width = {k: q for k in groups}
            keep: dict[str, bool] = {}
        else:
            width = {k: float(rng.choice(WIDTH_CHOICES)) for k in groups}
            keep = {u: bool(rng.random() > 0.3) for u in units} if i % 2 else {}
        genome = snap_genome(spec, Genome(keep=keep, width=width), multiple)
        try:
            spec.validate(genome)
        except Exception:
            continue
        out.setdefault(genome.key(), genome)
    return list(out.values())


def calibrate(
    teacher: nn.Module,
    spec: ArchSpec,
    profile: DeviceProfile,
    teacher_ms: float,
    *,
    students: int = 32,
    seed: int = 0,
    block: int = 8,
    multiple: int = 1,
    rounds: int = 10,
    progress: Callable[[str], None] | None = None,
) -> LatencyModel:
    """Measures ``students`` untrained students of ``teacher`` with the teacher and fits the
    model (latency does not depend on the weights' values).

    On a ``local`` source every model is timed in turn, round after round, so drift hits
    them all alike; other sources measure each model once with the profile's protocol.

    Args:
        teacher: The teacher (students inherit its structure).
        spec: Its spec.
        profile: The device (its latency source measures).
        teacher_ms: The teacher's latency at the start of the run.
        students: How many students to measure besides the teacher.
        seed: Chooses the students.
        block: The channel block of the padded term.
        multiple: The students' channel counts snap to it (as the search's do).
        rounds: Rounds of in-turn timing on a local source.
        progress: Receives a message when calibration starts.
    """
    from hwcompress.arch import build_student
    from hwcompress.export import export_fp32
    from hwcompress.measure.latency import measure_local_many
    from hwcompress.measure.sources import measure_latency

    start = time.perf_counter()
    genomes = [Genome(), *calibration_genomes(spec, students, seed, multiple)]
    if progress is not None:
        progress(
            f"latency model: measuring {len(genomes)} untrained students of the teacher "
            "(proposals are scaled to the latency budget by its predictions)"
        )
    with tempfile.TemporaryDirectory(prefix="hwcompress-latency-") as tmp:
        paths, kept = [], []
        for i, genome in enumerate(genomes):
            path = Path(tmp) / f"s{i}.onnx"
            try:
                student = build_student(teacher, genome, spec.input_shape, spec=spec)
                export_fp32(student, spec.input_shape, path)
            except Exception:
                if i == 0:
                    raise
                continue
            paths.append(path)
            kept.append(genome)
        if profile.latency.source == SourceName.LOCAL:
            ms = [r.median_ms for r in measure_local_many(paths, profile, rounds=rounds)]
        else:
            ms = [measure_latency(p, profile).median_ms for p in paths]
    ratios = [m / max(ms[0], 1e-9) for m in ms]
    model = LatencyModel.fit(spec, kept, ratios, teacher_ms, block)
    model.seconds = time.perf_counter() - start
    return model
