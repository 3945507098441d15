"""The resolved configuration of one search run (written beside its outputs)."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields
from typing import Any

from hwcompress.errors import ConfigError, HwCompressError
from hwcompress.search.names import StageName

STAGES = tuple(s.value for s in StageName)
DEFAULT_STAGES = (StageName.REMOVAL.value, StageName.SHRINKAGE.value)
_DRL = (StageName.CHANNELS.value, StageName.KERNELS.value, StageName.QUANTIZATION.value)
#: The stages each method can run, and the ones it runs when ``--stages`` is not given.
METHOD_STAGES = {
    "n2n": (*DEFAULT_STAGES, StageName.QUANTIZATION.value),
    "random": (*DEFAULT_STAGES, StageName.QUANTIZATION.value),
    "drl-prune": _DRL,
}
METHOD_DEFAULT_STAGES = {"n2n": DEFAULT_STAGES, "random": DEFAULT_STAGES, "drl-prune": _DRL}
#: Worker processes per core a ``process`` executor may start (each trains a whole student).
MAX_LOCAL_WORKERS_PER_CORE = 4
#: Ray actors a run may start (they may live on a cluster).
MAX_RAY_WORKERS = 4096
#: Settings that may differ when a run is resumed (they do not change its results).
RESUMABLE_OVERRIDES = frozenset(
    {
        "budget_minutes",
        "out",
        "final_epochs",
        "final_min_steps",
        "final_augment",
        "executor",
        "workers",
        "ray_address",
        "worker_threads",
        "device",
    }
)


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
        teacher: The teacher: ``builtin:NAME``, ``torchvision:NAME`` or ``module.path:factory``.
        teacher_weights: The teacher's checkpoint (``weights_only``; default: train it).
        dataset: A dataset name (``digits``, ``mnist``, ``fashion_mnist``, ``cifar10``, …) or
            an image folder.
        data_dir: Folder of torchvision datasets.
        download: Allow downloading the dataset.
        stages: Stages to run in order (empty: the method's default, see
            ``METHOD_DEFAULT_STAGES``).
        episodes: Policy updates per stage.
        rollouts: Candidates sampled per episode.
        budget_minutes: Wall-clock limit for the whole run, shared among its stages (default:
            none).
        seed: Seed of data splits, sampling and training.
        method: ``n2n`` (policy gradient: removal, shrinkage), ``random`` (uniform sampling
            baseline of the same stages) or ``drl-prune`` (Zhan et al.: DDPG channel
            pruning, kernel-wise variational pruning).
        out: Output folder.
        init_policy: Policy checkpoint to start from (transfer).
        distill_epochs: Distillation epochs per candidate.
        distill_patience: Early-stopping patience per candidate.
        train_limit: Use at most this many training samples (quick runs).
        final_epochs: After the search, distil the float product this many more epochs on
            the whole training split (N2N trains its final student to convergence; the
            candidates' short distillation only ranks them). 0: off.
        final_min_steps: The final distillation runs more epochs where the training split
            is small, until it takes at least this many optimiser steps (digits: 72 epochs
            rather than 20).
        final_augment: The final distillation shows the student and the teacher the same
            shifted images (:mod:`hwcompress.train.augment`; a sixteenth of the side, at
            least a pixel), the teacher run at each step.
        kd_weight: Weight of the soft-target term (``T²·KL`` at T = 4) beside the L2 on logits,
            in every distillation of the run and the final one. 0: N2N's L2 alone.
        size_metric: ``params`` or ``weight_bytes`` for the compression reward.
        constraint_mode: ``hard`` (−1 when violated, as in N2N) or ``soft`` (scheduled penalty).
        latency_runs: Minimum timed runs per candidate.
        flops_target: The drl-prune channel agent keeps every student within this fraction
            of the teacher's MACs (and within the profile's MACs budget, if any).
        kernel_betas: KL weights tried by the kernel stage, one variational fine-tune each.
        kernel_shares: For each fine-tune, one candidate per share: the kernel bands whose σ
            passes the threshold are cropped, plus this share of all bands by σ rank.
        kernel_steps: Optimiser steps of each variational kernel fine-tune.
        student: A float student checkpoint of an earlier run to quantize (only with the
            quantization stage alone): its structure and weights replace the teacher's.
        executor: Where an episode's candidates are trained: ``serial`` (here, one by one),
            ``process`` (local worker processes) or ``ray`` (Ray actors). Latency is always
            measured here, one model at a time. Does not change the results' meaning; may
            change on ``--resume``.
        workers: Worker processes or actors (``process``, ``ray``).
        ray_address: Ray cluster to join (``ray``; default: a local instance).
        worker_threads: Torch threads per worker (default: the cores shared out).
        target: Targets as ``METRIC=VALUE`` (``params=10x``, ``weight_bytes=64KiB``,
            ``macs=2M``, ``latency_ms=0.5``): extra rows of ``A·x ≤ b``, and the reward
            becomes accuracy subject to the constraints. Empty: N2N's reward.
        seed_ratios: The seeds' ladder of parameter reductions (uniform width scaling and
            global L1 channel pruning, every layer kept). Empty: no seeds.
        carry: How many of the run's best structures the shrinkage stage starts from.
        promote_fraction: Share of each episode's rollouts trained longer.
        promote_epochs: Extra distillation epochs of a promoted candidate (0: off).
        screen_pool: Where latency steers a target run, an N2N policy draws this many
            proposals per rollout and the ones a surrogate of the proxy reward, fitted to
            the run's students, expects most of within the budget are trained (1: off, the
            default: on Fashion-MNIST at 3× the policy led random search on as many seeds
            or more without it; random search never screens).
        contenders: The run's leading students, and as many smaller challengers, brought
            to the top fidelity before the product is chosen.
        device: Where teacher training, distillation, QAT and the kernel stage run: ``auto``
            (a GPU when PyTorch sees one), ``cpu``, ``cuda`` or ``cuda:N``. Latency is
            always measured with onnxruntime and the profile's providers.
        latency_students: Where a latency budget (a target or the profile's) is tighter than
            the teacher, this many untrained students are measured first to fit the latency
            model that scales proposals to the budget.
        latency_headroom: Every latency budget (a target's or the profile's) is aimed at
            this share under it, so that the product still meets the budget when it is
            timed again on the device (timings of one small student moved by ±8 % between
            sittings on a shared 2-core machine). 0: aim at the budget itself. Runs written
            before this setting existed aimed at the budget and resume so.
    """

    profile: str
    teacher: str = "builtin:vgg"
    teacher_weights: str | None = None
    dataset: str = "digits"
    data_dir: str | None = None
    download: bool = False
    stages: tuple[str, ...] = ()
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
    final_epochs: int = 20
    final_min_steps: int = 1500
    final_augment: bool = True
    kd_weight: float = 0.0
    size_metric: str = "params"
    constraint_mode: str = "hard"
    latency_runs: int | None = 20
    flops_target: float = 0.5
    kernel_betas: tuple[float, ...] = (1.0, 10.0)
    kernel_shares: tuple[float, ...] = (0.0, 0.25, 0.5)
    kernel_steps: int = 600
    student: str | None = None
    executor: str = "serial"
    workers: int = 2
    ray_address: str | None = None
    worker_threads: int | None = None
    target: tuple[str, ...] = ()
    seed_ratios: tuple[float, ...] = (2.0, 4.0, 8.0, 16.0, 24.0, 32.0, 48.0)
    carry: int = 3
    promote_fraction: float = 0.25
    promote_epochs: int = 8
    screen_pool: int = 1
    contenders: int = 3
    device: str = "auto"
    latency_students: int = 32
    latency_headroom: float = 0.1

    def __post_init__(self) -> None:
        if self.method not in METHOD_STAGES:
            raise ConfigError(
                f"{{method}}: unknown method '{self.method}'; choose one of "
                f"{', '.join(sorted(METHOD_STAGES))}"
            )
        if not self.stages:
            object.__setattr__(self, "stages", METHOD_DEFAULT_STAGES[self.method])
        object.__setattr__(self, "kernel_betas", tuple(float(b) for b in self.kernel_betas))
        object.__setattr__(self, "kernel_shares", tuple(float(b) for b in self.kernel_shares))
        object.__setattr__(self, "seed_ratios", tuple(float(r) for r in self.seed_ratios))
        object.__setattr__(self, "target", tuple(str(t) for t in self.target))
        from hwcompress.search.target import parse_target

        for text in self.target:
            try:
                parse_target(text)
            except HwCompressError as err:
                raise ConfigError(f"{{target}} {text!r}: {err}") from None
        if any(not r >= 1 for r in self.seed_ratios):
            raise ConfigError("{seed_ratios}: give reduction factors ≥ 1, e.g. 2,4,8,16,32")
        from hwcompress.train.device import check_device

        object.__setattr__(self, "device", check_device(self.device))
        if self.carry < 1 or self.contenders < 1:
            raise ConfigError("{carry} and {contenders} must be at least 1")
        if not 0 <= self.promote_fraction <= 1:
            raise ConfigError(
                f"{{promote_fraction}} must be a share in [0, 1], got {self.promote_fraction}"
            )
        if self.promote_epochs < 0:
            raise ConfigError("{promote_epochs} must be 0 (off) or more")
        if self.screen_pool < 1:
            raise ConfigError("{screen_pool} must be 1 (off) or more")
        allowed = METHOD_STAGES[self.method]
        for stage in self.stages:
            if stage not in allowed:
                raise ConfigError(
                    f"{{stages}}: '{stage}' is not a stage of {{method}} {self.method}; use a "
                    f"subset of {','.join(allowed)}"
                )
        repeated = sorted({s for s in self.stages if list(self.stages).count(s) > 1})
        if repeated:
            raise ConfigError(
                f"{{stages}}: {', '.join(repeated)} given more than once; name each stage once"
            )
        if list(self.stages) != sorted(self.stages, key=STAGES.index):
            raise ConfigError(f"{{stages}}: give stages in the order {','.join(allowed)}")
        if not 0 < self.flops_target <= 1:
            raise ConfigError(
                f"{{flops_target}} must be a fraction of the teacher's MACs in (0, 1], got "
                f"{self.flops_target}"
            )
        if not self.kernel_betas or any(b < 0 for b in self.kernel_betas):
            raise ConfigError("{kernel_betas}: give one or more non-negative KL weights")
        if not self.kernel_shares or any(not 0 <= b <= 1 for b in self.kernel_shares):
            raise ConfigError("{kernel_shares}: give one or more shares in [0, 1]")
        if self.kernel_steps < 1:
            raise ConfigError("{kernel_steps} must be at least 1")
        if not self.kd_weight >= 0:
            raise ConfigError(f"{{kd_weight}} must be ≥ 0 (got {self.kd_weight})")
        if self.final_min_steps < 0:
            raise ConfigError("{final_min_steps} must be 0 (off) or more")
        if self.final_epochs < 0:
            raise ConfigError("{final_epochs} must be 0 (off) or more")
        for name in ("episodes", "rollouts", "distill_epochs", "distill_patience"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{{{name}}} must be at least 1 (got {getattr(self, name)})")
        if self.train_limit is not None and self.train_limit < 1:
            raise ConfigError("{train_limit} must be at least 1; leave it out to use every sample")
        if self.latency_students < 4:
            raise ConfigError(
                f"{{latency_students}} must be at least 4 (got {self.latency_students})"
            )
        if not 0 <= self.latency_headroom < 0.9:
            raise ConfigError(
                "{latency_headroom} must be a share of the latency budget in [0, 0.9), e.g. "
                f"0.1 to aim 10 % under it (got {self.latency_headroom})"
            )
        if self.latency_runs is not None and self.latency_runs < 1:
            raise ConfigError("{latency_runs} must be at least 1")
        if self.budget_minutes is not None and not 0 < self.budget_minutes < math.inf:
            raise ConfigError(
                f"{{budget_minutes}} must be a positive number of minutes (got "
                f"{self.budget_minutes}); leave it out for no limit"
            )
        if self.size_metric not in ("params", "weight_bytes"):
            raise ConfigError("{size_metric} must be params or weight_bytes")
        if self.student is not None and tuple(self.stages) != (StageName.QUANTIZATION,):
            raise ConfigError(
                "{student}: a searched student can only be quantized; set {stages} to "
                "quantization alone (removal and shrinkage start from the teacher)"
            )
        from hwcompress.search.executors import EXECUTORS

        if self.executor != "serial" and self.executor not in EXECUTORS:
            raise ConfigError(
                f"{{executor}} must be one of serial, {', '.join(EXECUTORS)} "
                f"(got {self.executor!r})"
            )
        if self.workers < 1 or (self.worker_threads is not None and self.worker_threads < 1):
            raise ConfigError("{workers} and {worker_threads} must be at least 1")
        most = MAX_LOCAL_WORKERS_PER_CORE * (os.cpu_count() or 1)
        if self.executor == "process" and self.workers > most:
            raise ConfigError(
                f"{{workers}} {self.workers}: this machine has {os.cpu_count()} cores; start "
                f"at most {most} worker processes (each one trains a whole student)"
            )
        if self.executor == "ray" and self.workers > MAX_RAY_WORKERS:
            raise ConfigError(
                f"{{workers}} {self.workers}: at most {MAX_RAY_WORKERS} Ray actors per run"
            )
        if self.constraint_mode not in ("hard", "soft"):
            raise ConfigError("{constraint_mode} must be hard or soft")

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        d = asdict(self)
        d["stages"] = list(self.stages)
        d["kernel_betas"] = list(self.kernel_betas)
        d["kernel_shares"] = list(self.kernel_shares)
        d["seed_ratios"] = list(self.seed_ratios)
        d["target"] = list(self.target)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchConfig:
        """Inverse of :meth:`to_dict`."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(
                f"unknown search settings: {', '.join(sorted(unknown))}; known ones: "
                f"{', '.join(sorted(known))}"
            )
        data = dict(data)
        data.setdefault("latency_headroom", 0.0)  # written before it existed: no headroom
        for key in ("stages", "kernel_betas", "kernel_shares", "seed_ratios", "target"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data)

    def merged_for_resume(self, overrides: dict[str, Any]) -> SearchConfig:
        """This (stored) config with ``overrides`` from a resuming command applied.

        Raises:
            HwCompressError: If an override would change the run's results.
        """
        current = self.to_dict()
        for key, value in overrides.items():
            value = list(value) if isinstance(value, tuple) else value
            if (
                key == "profile"
                and isinstance(value, str)
                and _same_profile(current["profile"], value)
            ):
                continue
            if key not in RESUMABLE_OVERRIDES and current.get(key) != value:
                raise ConfigError(
                    f"{{resume}}: this run was started with {{{key}}} {current.get(key)!r}, "
                    f"not {value!r}; drop that setting to resume, or start a new run with "
                    "another {out}"
                )
        return SearchConfig.from_dict(
            {**current, **{k: v for k, v in overrides.items() if k in RESUMABLE_OVERRIDES}}
        )
