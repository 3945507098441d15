"""Setting a run up: its folder, its stored config, the context candidates are evaluated in
(profile and targets, data, teacher and its measurements), the student the first stage starts
from and policies to start from."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from hwcompress.arch import Genome, build_spec
from hwcompress.data import DataBundle, DataConfig, load_data
from hwcompress.data.teachers import Teacher, check_file_teacher, resolve_teacher
from hwcompress.errors import ConfigError, HwCompressError
from hwcompress.files import save_atomic, what_file, write_atomic
from hwcompress.hardware import ConstraintMatrix, DeviceProfile, load_profile
from hwcompress.hardware.sections import SourceName
from hwcompress.search.config import STAGES, SearchConfig
from hwcompress.search.evaluate import SearchContext, measure_model, structure_of
from hwcompress.search.names import StageName
from hwcompress.search.progress import SearchReporter
from hwcompress.search.reward import RewardConfig
from hwcompress.search.target import parse_target, with_headroom, with_targets
from hwcompress.train import DistillConfig, TeacherLogits, TrainConfig, evaluate
from hwcompress.train.device import resolve_device


def prepare_out(config: SearchConfig, resume: bool) -> tuple[Path, Path | None]:
    """Checks (and creates) the run folder; writes nothing in it.

    Returns:
        The folder, and the topmost folder this call created, if any (a failed start
        removes it).

    Raises:
        HwCompressError: If ``--out`` is a file, cannot be written, already holds a run
            (without ``--resume``) or holds none (with it).
    """
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{{out}} {out} is a file; give a folder for the run")
    if resume:
        if not (out / "config.json").is_file():
            raise ConfigError(
                f"{{resume}}: {out} holds no run (no config.json); start it without {{resume}}"
            )
        return out, None
    if (out / "journal.jsonl").is_file() or (out / "config.json").is_file():
        raise ConfigError(
            f"{out} already holds a run; pass {{resume}} to continue it or choose another {{out}}"
        )
    created = None
    if not out.exists():
        created = out.absolute()
        while not created.parent.exists():
            created = created.parent
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(
            f"{{out}} {out}: cannot create the run folder ({err.strerror or err}); choose a "
            "writable place"
        ) from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ConfigError(f"{{out}} {out}: the folder is not writable; choose another")
    return out, created


def write_config(config: SearchConfig, out: Path) -> None:
    """Records the run's settings (after a successful start, so a failed one leaves none)."""
    write_atomic(out / "config.json", json.dumps(config.to_dict(), indent=2))


def load_search_config(out: str | Path, overrides: dict[str, Any]) -> SearchConfig:
    """The stored config of the run in ``out`` with resume-safe ``overrides`` applied."""
    path = Path(out) / "config.json"
    if not path.is_file():
        raise ConfigError(
            f"{{resume}}: {out} holds no run (no config.json); start it without {{resume}}"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        stored = SearchConfig.from_dict(data)
    except ConfigError as err:
        raise ConfigError(f"{{resume}}: {path}: {err.template}") from None
    except HwCompressError as err:
        raise ConfigError(f"{{resume}}: {path}: {err}") from None
    except (ValueError, TypeError, UnicodeDecodeError, OSError) as err:
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise ConfigError(
            f"{{resume}}: {path} is corrupt ({reason}), so the run's settings are unknown; "
            "start a new run with another {out}"
        ) from None
    check_file_teacher(stored.teacher, str(path), overrides.get("teacher"))
    return stored.merged_for_resume({**overrides, "out": str(out)})


def data_config(config: SearchConfig, *, limited: bool = True) -> DataConfig:
    """The data a run's settings name (``limited``: with its ``train_limit``)."""
    return DataConfig(
        name=config.dataset,
        data_dir=config.data_dir,
        download=config.download,
        seed=config.seed,
        train_limit=config.train_limit if limited else None,
    )


def prepare_context(
    config: SearchConfig,
    out: Path,
    reporter: SearchReporter | None = None,
    profile: DeviceProfile | None = None,
    *,
    teacher: Teacher | None = None,
    data: DataBundle | None = None,
) -> tuple[SearchContext, dict[str, Any]]:
    """Loads profile, data and teacher, measures the teacher, and builds the evaluation context.

    Args:
        config: The run's settings.
        out: The run folder (the teacher's ONNX model and ``spec.json`` are written there).
        reporter: Receives progress messages.
        profile: The loaded profile (default: ``config.profile``, loaded here).
        teacher: A teacher given as an object (:func:`hwcompress.compress`), instead of
            ``config.teacher``.
        data: Data given as loaders (:func:`hwcompress.compress`), instead of
            ``config.dataset``.

    Returns:
        The context candidate evaluation needs, and what was measured of the teacher.
    """
    reporter = reporter or SearchReporter()
    profile = profile or load_profile(config.profile)
    if not profile.bits.runs_float and StageName.QUANTIZATION not in config.stages:
        raise ConfigError(
            f"{{profile}} {profile.name} runs only {profile.bits.describe()}: a float student "
            "cannot ship to it; add the quantization stage to {stages} (e.g. "
            f"{','.join((*config.stages, 'quantization'))})"
        )
    matrix = ConstraintMatrix.from_profile(profile)
    device = str(resolve_device(config.device))
    if device != "cpu":
        reporter.message(f"training on {device}")
    if data is None:
        data = load_data(data_config(config))
    if teacher is None:
        teacher = resolve_teacher(
            config.teacher,
            data,
            weights=config.teacher_weights,
            reporter=reporter.message,
            train_config=TrainConfig(device=device),
        )
    model = teacher.model
    if teacher.adaptations:
        reporter.message(
            f"{config.teacher} adapted to {data.input_shape[-2]}×{data.input_shape[-1]} "
            f"inputs: {'; '.join(teacher.adaptations)}"
        )
    torch.manual_seed(config.seed)
    spec = build_spec(model, data.input_shape)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "spec.json", json.dumps(spec.to_dict(), indent=1))
    latency_kwargs = (
        {"runs": config.latency_runs}
        if (
            config.latency_runs is not None
            and profile.latency.source in (SourceName.LOCAL, SourceName.REMOTE)
        )
        else {}
    )
    reporter.message("measuring the teacher")
    t_metrics, t_latency = measure_model(
        model, data.input_shape, out / "teacher.onnx", profile, **latency_kwargs
    )
    reporter.message(f"latency: {t_latency.where}")
    if t_latency.warning:
        reporter.message(f"warning: {t_latency.warning}")
    t_acc = evaluate(model, data.val)
    targets = tuple(parse_target(t) for t in config.target)
    matrix = with_headroom(with_targets(matrix, targets, t_metrics), config.latency_headroom)
    teacher_info = {
        "spec": config.teacher,
        "source": teacher.source,
        "adaptations": list(teacher.adaptations),
        "metrics": t_metrics,
        "val_accuracy": t_acc,
        "test_accuracy": evaluate(model, data.test),
        "feasible": matrix.feasible(t_metrics),
        "constraints": matrix.report(t_metrics),
        "kernels": t_latency.kernels,
        "latency_where": t_latency.where,
        "latency_warning": t_latency.warning,
    }
    ctx = SearchContext(
        teacher=model,
        spec=spec,
        data=data,
        profile=profile,
        matrix=matrix,
        teacher_metrics=t_metrics,
        teacher_accuracy=t_acc,
        distill_config=DistillConfig(
            epochs=config.distill_epochs,
            patience=config.distill_patience,
            seed=config.seed,
            kd_weight=config.kd_weight,
            device=device,
        ),
        reward_config=RewardConfig(
            size_metric=config.size_metric,
            constraint_mode=config.constraint_mode,
            objective="accuracy" if targets else "n2n",
        ),
        run_dir=out,
        teacher_logits=_teacher_logits(model, data, config.seed, device),
        latency_kwargs=latency_kwargs,
        student_meta={
            "teacher": config.teacher,
            "teacher_weights": config.teacher_weights,
            "profile": profile.name,
            "dataset": config.dataset,
            "data_dir": config.data_dir,
            "seed": config.seed,
            "num_classes": data.num_classes,
            "input_shape": list(data.input_shape),
        },
    )
    return ctx, teacher_info


def start_student(
    config: SearchConfig, ctx: SearchContext
) -> tuple[Genome, dict[str, torch.Tensor] | None]:
    """The genome and weights the first stage starts from: the teacher's, or ``--student``'s.

    Raises:
        HwCompressError: If the student checkpoint does not belong to this teacher and data.
    """
    if config.student is None:
        return Genome(), None
    from hwcompress.export.student import load_student

    student = load_student(config.student, teacher=config.teacher)
    meta = student.meta
    if student.quantized:
        raise ConfigError(
            f"{{student}} {config.student}: this student is already quantized; give the "
            "float student of a removal/shrinkage run"
        )
    mine = (config.teacher, list(ctx.data.input_shape), ctx.data.num_classes)
    theirs = (meta["teacher"], list(meta["input_shape"]), meta["num_classes"])
    if mine != theirs:
        raise ConfigError(
            f"{{student}} {config.student}: it was searched from teacher {theirs[0]} on inputs "
            f"{theirs[1]} with {theirs[2]} classes, but this run has {mine[0]}, {mine[1]}, "
            f"{mine[2]}; give the same {{teacher}} and {{dataset}}"
        )
    genome = Genome.from_dict(meta["genome"])
    return structure_of(genome), student.model.state_dict()


def load_init_policy(path: str | None) -> dict[str, Any]:
    """Loads ``--init-policy``: a ``final.pt`` (all stages) or one stage's checkpoint."""
    if path is None:
        return {}
    p = Path(path)
    if not p.is_file():
        raise ConfigError(
            f"{{init_policy}} {path}: no such file; give a run's "
            "policies/final.pt or policies/STAGE_latest.pt"
        )
    try:
        state = torch.load(p, weights_only=True)
    except Exception:
        raise ConfigError(
            f"{{init_policy}} {path}: not a policy checkpoint ({what_file(p)}); give a run's "
            "policies/final.pt or policies/STAGE_latest.pt"
        ) from None
    if isinstance(state, dict) and "policy" in state:
        stage = (
            StageName.REMOVAL
            if any(k.startswith("lstm.") for k in state["policy"])
            else StageName.SHRINKAGE
        )
        return {stage: state}
    if isinstance(state, dict) and state and set(state) <= set(STAGES):
        return dict(state)
    raise ConfigError(f"{{init_policy}} {path}: not a policy checkpoint")


def save_final_policies(policies_dir: Path, stages: tuple[str, ...]) -> None:
    final = {}
    for stage in stages:
        latest = policies_dir / f"{stage}_latest.pt"
        if latest.is_file():
            state = torch.load(latest, weights_only=True)
            if state:
                final[stage] = {"policy": state["policy"]}
    if final:
        save_atomic(final, policies_dir / "final.pt")


def _teacher_logits(model: torch.nn.Module, data: Any, seed: int, device: str) -> TeacherLogits:
    """The teacher's logits over the training split, computed on ``device`` (the teacher
    stays on the CPU afterwards)."""
    model.to(device)
    try:
        return TeacherLogits(model, data.train, seed=seed)
    finally:
        model.cpu()
