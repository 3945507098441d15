"""The resolved configuration of one search run (written beside its outputs)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from hwcompress.errors import HwCompressError

STAGES = ("removal", "shrinkage", "quantization")
DEFAULT_STAGES = ("removal", "shrinkage")
#: Settings that may differ when a run is resumed (they do not change its results).
RESUMABLE_OVERRIDES = frozenset({"budget_minutes", "out"})


def _same_profile(a: str, b: str) -> bool:
    from hwcompress.hardware.profile import resolve_profile_path

    try:
        return resolve_profile_path(a).resolve() == resolve_profile_path(b).resolve()
    except HwCompressError:
        return a == b


@dataclass(frozen=True, kw_only=True)
class SearchConfig:
    """Everything that defines a search run.

    Attributes:
        profile: Device profile name or path.
        teacher: Teacher spec.
        teacher_weights: Checkpoint for the teacher.
        dataset: Dataset name.
        data_dir: Folder of torchvision datasets.
        download: Allow downloading the dataset.
        stages: Stages to run in order.
        episodes: Policy updates per stage.
        rollouts: Candidates sampled per episode.
        budget_minutes: Wall-clock limit for the whole run (None: none).
        seed: Seed of data splits, sampling and training.
        method: ``n2n`` (policy gradient) or ``random`` (uniform sampling baseline).
        out: Output folder.
        init_policy: Policy checkpoint to start from (transfer).
        distill_epochs: Distillation epochs per candidate.
        distill_patience: Early-stopping patience per candidate.
        train_limit: Use at most this many training samples (quick runs).
        size_metric: ``params`` or ``weight_bytes`` for the compression reward.
        constraint_mode: ``hard`` (−1 when violated, as in N2N) or ``soft`` (scheduled penalty).
        latency_runs: Minimum timed runs per candidate (None: the profile's).
        student: A float student checkpoint of an earlier run to quantize (only with the
            quantization stage alone): its structure and weights replace the teacher's.
    """

    profile: str
    teacher: str = "builtin:vgg"
    teacher_weights: str | None = None
    dataset: str = "digits"
    data_dir: str | None = None
    download: bool = False
    stages: tuple[str, ...] = DEFAULT_STAGES
    episodes: int = 6
    rollouts: int = 4
    budget_minutes: float | None = None
    seed: int = 0
    method: str = "n2n"
    out: str = "runs/search"
    init_policy: str | None = None
    distill_epochs: int = 4
    distill_patience: int = 2
    train_limit: int | None = None
    size_metric: str = "params"
    constraint_mode: str = "hard"
    latency_runs: int | None = 20
    student: str | None = None

    def __post_init__(self) -> None:
        from hwcompress.search.methods import METHODS

        for stage in self.stages:
            if stage not in STAGES:
                raise HwCompressError(
                    f"--stages: unknown stage '{stage}'; use a comma-separated "
                    f"subset of {','.join(STAGES)}"
                )
        if list(self.stages) != sorted(self.stages, key=STAGES.index):
            raise HwCompressError(f"--stages: give stages in the order {','.join(STAGES)}")
        if not self.stages:
            raise HwCompressError("--stages: give at least one stage")
        if self.method not in METHODS:
            raise HwCompressError(
                f"--method: unknown method '{self.method}'; choose one of "
                f"{', '.join(sorted(METHODS))}"
            )
        for name in ("episodes", "rollouts", "distill_epochs"):
            if getattr(self, name) < 1:
                raise HwCompressError(f"--{name.replace('_', '-')} must be at least 1")
        if self.budget_minutes is not None and self.budget_minutes <= 0:
            raise HwCompressError("--budget-minutes must be positive")
        if self.size_metric not in ("params", "weight_bytes"):
            raise HwCompressError("--size-metric must be params or weight_bytes")
        if self.student is not None and tuple(self.stages) != ("quantization",):
            raise HwCompressError(
                "--student: a searched student can only be quantized; pass --stages "
                "quantization (removal and shrinkage start from the teacher)"
            )
        if self.constraint_mode not in ("hard", "soft"):
            raise HwCompressError("--constraint-mode must be hard or soft")

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        d = asdict(self)
        d["stages"] = list(self.stages)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchConfig:
        """Inverse of :meth:`to_dict`."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise HwCompressError(f"unknown search settings: {', '.join(sorted(unknown))}")
        data = dict(data)
        if "stages" in data:
            data["stages"] = tuple(data["stages"])
        return cls(**data)

    def merged_for_resume(self, overrides: dict[str, Any]) -> SearchConfig:
        """This (stored) config with ``overrides`` from a resuming command applied.

        Raises:
            HwCompressError: If an override would change the run's results.
        """
        current = self.to_dict()
        for key, value in overrides.items():
            value = list(value) if isinstance(value, tuple) else value
            if key == "profile" and _same_profile(current["profile"], value):
                continue
            if key not in RESUMABLE_OVERRIDES and current.get(key) != value:
                raise HwCompressError(
                    f"--resume: this run was started with {key}={current.get(key)!r}, not "
                    f"{value!r}; drop that option to resume, or start a new run with another "
                    "--out"
                )
        return SearchConfig.from_dict(
            {**current, **{k: v for k, v in overrides.items() if k in RESUMABLE_OVERRIDES}}
        )
