"""The search run: stages of episodes of rollouts, journaled and resumable.

``removal`` decides keep/remove per removable unit; ``shrinkage`` then decides a width per
channel group that is still present, starting from the best removal student (as in N2N).
``channels`` (drl-prune) decides a continuous keep ratio per channel group under a MACs
budget; ``kernels`` then crops the kernels of the best channel student by variational
pruning, one candidate per KL weight; ``quantization`` picks bit-widths for the best student
of the stage before.
Each candidate is appended to ``journal.jsonl`` as it finishes and each episode's policy is
checkpointed, so ``resume=True`` continues an interrupted run without losing or repeating
evaluated candidates: episode sampling is seeded by (seed, stage, episode), so the replayed
part of an interrupted episode draws the same genomes and finds them in the cache.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hwcompress.arch import ArchSpec, Genome, build_spec, build_student
from hwcompress.data import DataConfig, load_data
from hwcompress.data.teachers import load_checkpoint, resolve_teacher
from hwcompress.errors import HwCompressError
from hwcompress.hardware import ConstraintMatrix, load_profile
from hwcompress.search.candidate import Candidate
from hwcompress.search.config import STAGES, SearchConfig
from hwcompress.search.ddpg import (
    DDPGConfig,
    DDPGController,
    MacsBudget,
    macs_target,
    with_widths,
)
from hwcompress.search.evaluate import (
    CandidateEvaluator,
    SearchContext,
    measure_model,
    rebuild_candidate,
    structure_of,
)
from hwcompress.search.features import group_features, layer_features, unit_features
from hwcompress.search.journal import Journal
from hwcompress.search.methods import METHODS, StageController
from hwcompress.search.policies import WIDTH_CHOICES
from hwcompress.search.progress import SearchReporter
from hwcompress.search.reward import RewardConfig
from hwcompress.train import DistillConfig, TeacherLogits, distill, evaluate


@dataclass
class SearchResult:
    """The outcome of a run (also written as ``results.json``)."""

    out: Path
    teacher: dict[str, Any]
    best: Candidate | None
    stages: dict[str, Candidate]
    candidates: list[Candidate] = field(default_factory=list)
    results_path: Path | None = None
    interrupted_by_budget: bool = False
    final_distillation: dict[str, Any] | None = None
    best_info: dict[str, Any] | None = None


def best_of(cands: list[Candidate]) -> Candidate | None:
    """The best candidate: highest reward among feasible ones, else highest overall."""
    ok = [c for c in cands if c.status == "ok"]
    feasible = [c for c in ok if c.feasible]
    pool = feasible or ok
    return max(pool, key=lambda c: (c.reward, -c.metrics.get("params", 0))) if pool else None


def final_best(
    stage_best: dict[str, Candidate], stages: tuple[str, ...], candidates: list[Candidate]
) -> Candidate | None:
    """The run's product: the last stage's best student when it is feasible (each stage
    starts from the one before, and stages score size differently), else the best overall."""
    for stage in reversed(stages):
        if stage in stage_best:
            if stage_best[stage].feasible:
                return stage_best[stage]
            break
    return best_of(candidates)


def _stage_items(
    stage: str, spec: ArchSpec, base: Genome, teacher: torch.nn.Module
) -> tuple[list[str], torch.Tensor]:
    if stage == "removal":
        return [u.name for u in spec.units], unit_features(spec)
    if stage == "quantization":
        student = build_student(teacher, base, spec.input_shape, spec=spec)
        names = [
            n
            for n, m in student.named_modules()
            if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)
        ]
        return names, layer_features(spec, names)
    present = spec
    if any(not v for v in base.keep.values()):
        present = build_spec(
            build_student(teacher, base, spec.input_shape, spec=spec), spec.input_shape
        )
    keys = {g.key for g in present.shrinkable}
    groups = tuple(g for g in spec.shrinkable if g.key in keys)
    return [g.key for g in groups], group_features(spec, groups)


def _genome(
    stage: str, base: Genome, items: list[str], actions: list[int], choices: tuple[float, ...] = ()
) -> Genome:
    if stage == "quantization":
        return Genome(
            keep=dict(base.keep),
            width=dict(base.width),
            kernel=dict(base.kernel),
            weight_bits={n: int(choices[a]) for n, a in zip(items, actions, strict=True)},
        )
    if stage == "removal":
        return Genome(
            keep={n: bool(a) for n, a in zip(items, actions, strict=True)}, width=dict(base.width)
        )
    if stage == "channels":  # continuous keep ratios, already snapped to whole channels
        return with_widths(base, items, actions, complete=True)
    return Genome(
        keep=dict(base.keep),
        width={k: WIDTH_CHOICES[a] for k, a in zip(items, actions, strict=True)},
    )


def _macs_budget(matrix: ConstraintMatrix) -> float | None:
    """The profile's MACs budget: the tightest row that reads MACs alone, if any."""
    if "macs" not in matrix.metrics:
        return None
    col = matrix.metrics.index("macs")
    budgets = [
        float(matrix.b[i] / matrix.A[i, col])
        for i in range(len(matrix.rows))
        if matrix.A[i, col] > 0 and (matrix.A[i] != 0).sum() == 1
    ]
    return min(budgets) if budgets else None


def _controller(
    config: SearchConfig,
    stage: str,
    choices: tuple[float, ...],
    ctx: SearchContext,
    base: Genome,
    items: list[str],
) -> StageController:
    """The stage's controller: the method's, or the DDPG agent for drl-prune's channels."""
    if stage != "channels":
        return METHODS[config.method](stage, choices)
    agent = DDPGConfig()
    target = macs_target(ctx.teacher_metrics["macs"], config.flops_target, _macs_budget(ctx.matrix))
    return DDPGController(
        MacsBudget(ctx.spec, base, items, target, agent.min_keep), agent, seed=config.seed
    )


def _prepare_out(config: SearchConfig, resume: bool) -> tuple[SearchConfig, Path]:
    out = Path(config.out)
    stored = out / "config.json"
    if resume:
        if not stored.is_file():
            raise HwCompressError(
                f"--resume: {out} holds no run (no config.json); start it without --resume"
            )
        return config, out
    if (out / "journal.jsonl").is_file():
        raise HwCompressError(
            f"{out} already holds a run; pass --resume to continue it or choose another --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    stored.write_text(json.dumps(config.to_dict(), indent=2))
    return config, out


def quantization_choices(profile: Any) -> tuple[tuple[float, ...], str | None]:
    """The integer weight bit-widths the device runs, or why there are none."""
    ints = tuple(sorted(b for b in profile.bits.weight if b <= 8))
    acts = [b for b in profile.bits.activation if b <= 8]
    if not ints or not acts:
        return (), (
            f"{profile.name} runs no integer kernels (weight bits "
            f"{', '.join(map(str, profile.bits.weight))}, activation bits "
            f"{', '.join(map(str, profile.bits.activation))}); its students stay in "
            "float"
        )
    return ints, None


def load_search_config(out: str | Path, overrides: dict[str, Any]) -> SearchConfig:
    """The stored config of the run in ``out`` with resume-safe ``overrides`` applied."""
    path = Path(out) / "config.json"
    if not path.is_file():
        raise HwCompressError(
            f"--resume: {out} holds no run (no config.json); start it without --resume"
        )
    stored = SearchConfig.from_dict(json.loads(path.read_text()))
    return stored.merged_for_resume({**overrides, "out": str(out)})


def prepare_context(
    config: SearchConfig, out: Path, reporter: SearchReporter | None = None
) -> tuple[SearchContext, dict[str, Any]]:
    """Loads profile, data and teacher, measures the teacher, and builds the evaluation context.

    Args:
        config: The run's settings.
        out: The run folder (the teacher's ONNX model and ``spec.json`` are written there).
        reporter: Receives progress messages.

    Returns:
        The context candidate evaluation needs, and what was measured of the teacher.
    """
    reporter = reporter or SearchReporter()
    profile = load_profile(config.profile)
    matrix = ConstraintMatrix.from_profile(profile)
    data = load_data(
        DataConfig(
            name=config.dataset,
            data_dir=config.data_dir,
            download=config.download,
            seed=config.seed,
            train_limit=config.train_limit,
        )
    )
    teacher = resolve_teacher(
        config.teacher, data, weights=config.teacher_weights, reporter=reporter.message
    )
    model = teacher.model
    torch.manual_seed(config.seed)
    spec = build_spec(model, data.input_shape)
    out.mkdir(parents=True, exist_ok=True)
    (out / "spec.json").write_text(json.dumps(spec.to_dict(), indent=1))
    latency_kwargs = (
        {"runs": config.latency_runs}
        if (config.latency_runs is not None and profile.latency.source in ("local", "remote"))
        else {}
    )
    reporter.message("measuring the teacher")
    t_metrics, t_kernels = measure_model(
        model, data.input_shape, out / "teacher.onnx", profile, **latency_kwargs
    )
    t_acc = evaluate(model, data.val)
    teacher_info = {
        "spec": config.teacher,
        "source": teacher.source,
        "metrics": t_metrics,
        "val_accuracy": t_acc,
        "test_accuracy": evaluate(model, data.test),
        "feasible": matrix.feasible(t_metrics),
        "constraints": matrix.report(t_metrics),
        "kernels": t_kernels,
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
        ),
        reward_config=RewardConfig(
            size_metric=config.size_metric, constraint_mode=config.constraint_mode
        ),
        run_dir=out,
        teacher_logits=TeacherLogits(model, data.train, seed=config.seed),
        latency_kwargs=latency_kwargs,
        student_meta={
            "teacher": config.teacher,
            "teacher_weights": config.teacher_weights,
            "dataset": config.dataset,
            "data_dir": config.data_dir,
            "seed": config.seed,
            "num_classes": data.num_classes,
            "input_shape": list(data.input_shape),
        },
    )
    return ctx, teacher_info


def run_search(
    config: SearchConfig, *, resume: bool = False, reporter: SearchReporter | None = None
) -> SearchResult:
    """Runs (or resumes) a search.

    Args:
        config: The run's settings (for a resume, the stored settings; see
            :func:`load_search_config`).
        resume: Continue the run in ``config.out``.
        reporter: Receives progress events.

    Returns:
        The result; ``results.json``, ``best/`` and the journal are in ``config.out``.

    Raises:
        HwCompressError: On bad settings, data, teacher or profile.
    """
    reporter = reporter or SearchReporter()
    started = time.perf_counter()
    config, out = _prepare_out(config, resume)
    ctx, teacher_info = prepare_context(config, out, reporter)
    journal = Journal(out / "journal.jsonl")
    (out / "candidates").mkdir(exist_ok=True)
    evaluator = CandidateEvaluator(ctx, known=journal.candidates())
    finished = {(r["stage"], r["episode"]) for r in journal.episodes()}
    deadline = (started + config.budget_minutes * 60) if config.budget_minutes else None
    policies_dir = out / "policies"
    policies_dir.mkdir(exist_ok=True)
    init_state = _load_init_policy(config.init_policy)
    base, student_state = _start_student(config, ctx)
    stage_best: dict[str, Candidate] = {}
    out_of_time = False
    executor = None
    if config.executor != "serial":
        from hwcompress.search.executors import make_executor

        executor = make_executor(
            config.executor, config.workers, config.ray_address, config.worker_threads
        )
        reporter.message(f"starting {config.workers} {config.executor} workers")
        executor.start(ctx)
    try:
        out_of_time = _run_stages(
            config,
            ctx,
            out,
            evaluator,
            journal,
            finished,
            init_state,
            policies_dir,
            base,
            student_state,
            stage_best,
            reporter,
            deadline,
            executor,
        )
    finally:
        if executor is not None:
            executor.close()
    _save_final_policies(policies_dir, config.stages)
    return _finish(out, config, ctx, teacher_info, evaluator, stage_best, out_of_time)


def _run_stages(
    config: SearchConfig,
    ctx: SearchContext,
    out: Path,
    evaluator: CandidateEvaluator,
    journal: Journal,
    finished: set[tuple[str, int]],
    init_state: dict[str, Any],
    policies_dir: Path,
    base: Genome,
    student_state: dict[str, Any] | None,
    stage_best: dict[str, Candidate],
    reporter: SearchReporter,
    deadline: float | None,
    executor: Any,
) -> bool:
    """Runs the stages in order; returns whether the time budget ran out."""
    out_of_time = False
    for si, stage in enumerate(config.stages):
        prev = stage_best.get(config.stages[si - 1]) if si else None
        choices: tuple[float, ...] = ()
        if stage == "quantization":
            choices, reason = quantization_choices(ctx.profile)
            if reason:
                reporter.message(f"quantization skipped: {reason}")
                continue
            ctx.act_bits = (
                8
                if 8 in ctx.profile.bits.activation
                else min(b for b in ctx.profile.bits.activation if b <= 8)
            )
            ctx.base_state = (
                load_checkpoint(out / prev.artifacts["weights"])["state_dict"]
                if prev is not None
                else student_state
            )
        if stage == "kernels":
            if prev is None:
                reporter.message("kernels skipped: no float student to start from")
                continue
            best, out_of_time = _kernel_stage(
                config, ctx, evaluator, journal, finished, prev, reporter, deadline
            )
        else:
            best, out_of_time = _policy_stage(
                stage,
                si,
                choices,
                base,
                config=config,
                ctx=ctx,
                evaluator=evaluator,
                journal=journal,
                finished=finished,
                init_state=init_state,
                policies_dir=policies_dir,
                reporter=reporter,
                deadline=deadline,
                executor=executor,
            )
        if best is not None:
            stage_best[stage] = best
            base = Genome.from_dict(best.genome)
        if out_of_time:
            reporter.message(
                f"the {config.budget_minutes:g}-minute budget is spent; "
                "stopping (resume with --resume and a larger --budget-minutes)"
            )
            break
    return out_of_time


def _evaluate_logged(
    evaluator: CandidateEvaluator,
    journal: Journal,
    reporter: SearchReporter,
    genome: Genome,
    **kwargs: Any,
) -> Candidate:
    """Evaluates ``genome``; a new candidate is appended to the journal, every one reported."""
    cached = evaluator.cached(genome) is not None
    cand = evaluator.evaluate(genome, **kwargs)
    if not cached:
        journal.append({"type": "candidate", "candidate": cand.to_dict()})
    reporter.candidate(cand, best_of(list(evaluator.cache.values())), cached)
    return cand


def _evaluate_batch(
    executor: Any,
    evaluator: CandidateEvaluator,
    journal: Journal,
    reporter: SearchReporter,
    genomes: list[Genome],
    *,
    ctx: SearchContext,
    stage: str,
    episode: int,
    method: str,
    episodes: int,
) -> list[Candidate]:
    """Evaluates one episode's rollouts: one by one here, or trained together on the
    executor's workers and then measured here one at a time (journaled in rollout order)."""
    kwargs = {"stage": stage, "episode": episode, "method": method, "episodes": episodes}
    if executor is None:
        return [_evaluate_logged(evaluator, journal, reporter, g, **kwargs) for g in genomes]
    from hwcompress.search.executors import Job

    todo: dict[str, Job] = {}
    for g in genomes:
        if evaluator.cached(g) is None and g.key() not in todo:
            todo[g.key()] = Job(g.to_dict(), stage, episode, method, ctx.base_state, ctx.act_bits)
    fresh: set[str] = set()
    for key, cand in zip(todo, executor.prepare(list(todo.values())), strict=True):
        cand = evaluator.finish(cand, episodes=episodes)
        journal.append({"type": "candidate", "candidate": cand.to_dict()})
        fresh.add(key)
    out = []
    for g in genomes:
        cand = evaluator.cache[g.key()]
        reporter.candidate(cand, best_of(list(evaluator.cache.values())), g.key() not in fresh)
        fresh.discard(g.key())
        out.append(cand)
    return out


def _policy_stage(
    stage: str,
    si: int,
    choices: tuple[float, ...],
    base: Genome,
    *,
    config: SearchConfig,
    ctx: SearchContext,
    evaluator: CandidateEvaluator,
    journal: Journal,
    finished: set[tuple[str, int]],
    init_state: dict[str, Any],
    policies_dir: Path,
    reporter: SearchReporter,
    deadline: float | None,
    executor: Any = None,
) -> tuple[Candidate | None, bool]:
    """Episodes of rollouts from the stage's controller, each episode journaled and its
    controller checkpointed; a resumed stage continues after its last finished episode.

    Returns:
        The stage's best candidate (None when nothing was evaluated) and whether the time
        budget ran out.
    """
    items, features = _stage_items(stage, ctx.spec, base, ctx.teacher)
    if not items:
        reporter.message(f"{stage}: nothing to decide for this teacher; skipped")
        return None, False
    controller = _controller(config, stage, choices, ctx, base, items)
    if stage in init_state:
        controller.load_state_dict({"policy": init_state[stage]["policy"]})
    done = sorted(ep for st, ep in finished if st == stage)
    start_ep = done[-1] + 1 if done else 0
    latest = policies_dir / f"{stage}_latest.pt"
    if done and latest.is_file():
        controller.load_state_dict(torch.load(latest, weights_only=True))
    reporter.stage(stage, config.episodes, config.rollouts, start_ep)
    out_of_time = False
    for ep in range(start_ep, config.episodes):
        if deadline is not None and time.perf_counter() > deadline:
            out_of_time = True
            break
        gen = torch.Generator().manual_seed(config.seed * 1_000_003 + si * 10_007 + ep)
        samples = [controller.sample(features, gen) for _ in range(config.rollouts)]
        cands = _evaluate_batch(
            executor,
            evaluator,
            journal,
            reporter,
            [_genome(stage, base, items, s.actions, choices) for s in samples],
            ctx=ctx,
            stage=stage,
            episode=ep,
            method=config.method,
            episodes=config.episodes,
        )
        rewards = [c.reward for c in cands]
        loss = controller.update(samples, rewards)
        state = controller.state_dict()
        torch.save(state, policies_dir / f"{stage}_ep{ep}.pt")
        torch.save(state, latest)
        journal.append(
            {
                "type": "episode",
                "stage": stage,
                "episode": ep,
                "rewards": rewards,
                "mean_reward": sum(rewards) / len(rewards),
                "loss": loss,
                "policy": f"policies/{stage}_ep{ep}.pt",
            }
        )
        reporter.episode(
            stage, ep, sum(rewards) / len(rewards), best_of(list(evaluator.cache.values()))
        )
    return best_of([c for c in evaluator.cache.values() if c.stage == stage]), out_of_time


def _kernel_stage(
    config: SearchConfig,
    ctx: SearchContext,
    evaluator: CandidateEvaluator,
    journal: Journal,
    finished: set[tuple[str, int]],
    prev: Candidate,
    reporter: SearchReporter,
    deadline: float | None,
) -> tuple[Candidate, bool]:
    """Kernel-wise variational pruning of the previous stage's best student.

    For each KL weight in ``config.kernel_betas``, one fine-tune with information-dropout
    noise on the kernel positions; then one episode per share in ``config.kernel_shares``:
    crop the bands the σ maps call unimportant (by the threshold, plus that share of the
    noisiest bands), real surgery, then evaluate the cropped student like any candidate
    (distil from its fine-tuned weights, export, measure, reward). Finished episodes are in
    the journal and are not repeated (a fine-tune is redone, identically, only when one of
    its episodes is missing).

    Returns:
        The stage's best (the previous student when no crop beats it) and whether the
        time budget ran out.
    """
    from hwcompress.prune.kernel import (
        KernelPruneConfig,
        crop_kernels,
        kernel_masks,
        variational_fine_tune,
    )

    stage = "kernels"
    base = Genome.from_dict(prev.genome)
    state = load_checkpoint(ctx.run_dir / prev.artifacts["weights"])["state_dict"]
    start = build_student(ctx.teacher, structure_of(base), ctx.data.input_shape, spec=ctx.spec)
    start.load_state_dict(state)
    shares = config.kernel_shares
    episodes = len(config.kernel_betas) * len(shares)
    done = {ep for st, ep in finished if st == stage}
    reporter.stage(stage, episodes, 1, min(set(range(episodes)) - done, default=episodes))
    out_of_time = False
    for bi, beta in enumerate(config.kernel_betas):
        todo = [si for si in range(len(shares)) if bi * len(shares) + si not in done]
        if not todo:
            continue
        if deadline is not None and time.perf_counter() > deadline:
            out_of_time = True
            break
        prune_config = KernelPruneConfig(
            beta=beta, steps=config.kernel_steps, seed=config.seed + bi
        )
        tuned = copy.deepcopy(start)
        sigma = variational_fine_tune(
            tuned, ctx.teacher, ctx.data, prune_config, teacher_logits=ctx.teacher_logits
        )
        maps = {n: torch.tensor(v) for n, v in sigma.items()}
        for si in todo:
            ep = bi * len(shares) + si
            if deadline is not None and time.perf_counter() > deadline:
                out_of_time = True
                break
            model = copy.deepcopy(tuned)
            sizes = kernel_masks(maps, prune_config.prune_sigma, shares[si])
            cropped = crop_kernels(model, sizes)
            kernel = dict(base.kernel)
            for name, size in sizes.items():
                if tuple(size) != tuple(ctx.spec.layer(name).kernel):
                    kernel[name] = list(size)
            cand = _evaluate_logged(
                evaluator,
                journal,
                reporter,
                Genome(keep=dict(base.keep), width=dict(base.width), kernel=kernel),
                stage=stage,
                episode=ep,
                method=config.method,
                episodes=episodes,
                init_state=model.state_dict(),
            )
            journal.append(
                {
                    "type": "episode",
                    "stage": stage,
                    "episode": ep,
                    "rewards": [cand.reward],
                    "mean_reward": cand.reward,
                    "loss": None,
                    "beta": beta,
                    "share": shares[si],
                    "cropped": cropped,
                }
            )
            reporter.episode(stage, ep, cand.reward, best_of(list(evaluator.cache.values())))
        if out_of_time:
            break
    mine = [c for c in evaluator.cache.values() if c.stage == stage]
    best = best_of([*mine, prev]) or prev
    if best is prev:
        reporter.message("kernels: no cropped student beat the channel student; it carries on")
    return best, out_of_time


def _start_student(
    config: SearchConfig, ctx: SearchContext
) -> tuple[Genome, dict[str, torch.Tensor] | None]:
    """The genome and weights the first stage starts from: the teacher's, or ``--student``'s.

    Raises:
        HwCompressError: If the student checkpoint does not belong to this teacher and data.
    """
    if config.student is None:
        return Genome(), None
    from hwcompress.export.student import load_student

    student = load_student(config.student)
    meta = student.meta
    if student.quantized:
        raise HwCompressError(
            f"--student {config.student}: this student is already quantized; give the float "
            "student of a removal/shrinkage run"
        )
    mine = (config.teacher, list(ctx.data.input_shape), ctx.data.num_classes)
    theirs = (meta["teacher"], list(meta["input_shape"]), meta["num_classes"])
    if mine != theirs:
        raise HwCompressError(
            f"--student {config.student}: it was searched from teacher {theirs[0]} on inputs "
            f"{theirs[1]} with {theirs[2]} classes, but this run has {mine[0]}, {mine[1]}, "
            f"{mine[2]}; pass the same --teacher and --dataset"
        )
    genome = Genome.from_dict(meta["genome"])
    return structure_of(genome), student.model.state_dict()


def _load_init_policy(path: str | None) -> dict[str, Any]:
    """Loads ``--init-policy``: a ``final.pt`` (all stages) or one stage's checkpoint."""
    if path is None:
        return {}
    p = Path(path)
    if not p.is_file():
        raise HwCompressError(
            f"--init-policy {path}: no such file; give a run's "
            "policies/final.pt or policies/STAGE_latest.pt"
        )
    try:
        state = torch.load(p, weights_only=True)
    except Exception as err:
        raise HwCompressError(f"--init-policy {path}: not a policy checkpoint ({err})") from None
    if isinstance(state, dict) and "policy" in state:
        stage = "removal" if any(k.startswith("lstm.") for k in state["policy"]) else "shrinkage"
        return {stage: state}
    if isinstance(state, dict) and state and set(state) <= set(STAGES):
        return dict(state)
    raise HwCompressError(f"--init-policy {path}: not a policy checkpoint")


def _save_final_policies(policies_dir: Path, stages: tuple[str, ...]) -> None:
    final = {}
    for stage in stages:
        latest = policies_dir / f"{stage}_latest.pt"
        if latest.is_file():
            state = torch.load(latest, weights_only=True)
            if state:
                final[stage] = {"policy": state["policy"]}
    if final:
        torch.save(final, policies_dir / "final.pt")


def _final_distill(
    config: SearchConfig, ctx: SearchContext, student: torch.nn.Module, onnx_path: Path
) -> tuple[dict[str, Any], Any]:
    """Distils the product ``config.final_epochs`` more epochs on the whole training split and
    re-exports it; the candidate's own record keeps its search-time figures.

    Returns:
        What the fine-tune did, and the data it used.
    """
    from hwcompress.export import export_fp32

    data = ctx.data
    logits = ctx.teacher_logits
    if config.train_limit is not None:
        data = load_data(
            DataConfig(
                name=config.dataset,
                data_dir=config.data_dir,
                download=config.download,
                seed=config.seed,
            )
        )
        logits = TeacherLogits(ctx.teacher, data.train, seed=config.seed)
    before = evaluate(student, data.val)
    result = distill(
        student,
        ctx.teacher,
        data,
        DistillConfig(
            epochs=config.final_epochs,
            patience=config.final_epochs,
            seed=config.seed,
            kd_weight=config.kd_weight,
        ),
        teacher_logits=logits,
    )
    export_fp32(student, data.input_shape, onnx_path)
    return {
        "epochs": config.final_epochs,
        "train_samples": len(data.train.dataset),
        "val_accuracy_before": before,
        "val_accuracy": result.val_accuracy,
        "seconds": result.seconds,
    }, data


def _latency_check(
    ctx: SearchContext, teacher_info: dict[str, Any], out: Path, onnx_path: Path, best: Candidate
) -> dict[str, Any] | None:
    """With the ``table`` source, measures the teacher and the product for real (on the board
    when the profile names a server): the table's predictions beside the measurements."""
    from hwcompress.measure.sources import measure_with, real_source

    profile = ctx.profile
    if profile.latency.source != "table":
        return None
    source = real_source(profile)
    try:
        teacher_ms = measure_with(source, out / "teacher.onnx", profile).median_ms
        best_ms = measure_with(source, onnx_path, profile).median_ms
    except HwCompressError as err:
        return {"source": source, "error": str(err)}
    teacher_pred = float(teacher_info["metrics"]["latency_ms"])
    best_pred = float(best.metrics["latency_ms"])
    return {
        "source": source,
        "teacher_ms": teacher_ms,
        "teacher_predicted_ms": teacher_pred,
        "best_ms": best_ms,
        "best_predicted_ms": best_pred,
        "speedup": teacher_ms / best_ms if best_ms > 0 else None,
    }


def _write_report(out: Path) -> None:
    """The HTML report of the run; a failure to draw it never loses the run's results."""
    from hwcompress.report import write_report

    try:
        write_report(out)
    except Exception as err:
        warnings.warn(f"the report of {out} could not be written: {err}", stacklevel=2)


def _finish(
    out: Path,
    config: SearchConfig,
    ctx: SearchContext,
    teacher_info: dict[str, Any],
    evaluator: CandidateEvaluator,
    stage_best: dict[str, Candidate],
    out_of_time: bool,
) -> SearchResult:
    data, teacher, matrix, act_bits = ctx.data, ctx.teacher, ctx.matrix, ctx.act_bits
    candidates = sorted(evaluator.cache.values(), key=lambda c: (c.stage, c.episode, c.id))
    best = final_best(stage_best, config.stages, candidates)
    best_info: dict[str, Any] | None = None
    if best is not None:
        best_dir = out / "best"
        best_dir.mkdir(exist_ok=True)
        shutil.copyfile(out / best.artifacts["onnx"], best_dir / "student.onnx")
        ckpt = load_checkpoint(out / best.artifacts["weights"])
        genome = Genome.from_dict(best.genome)
        student = rebuild_candidate(
            teacher, genome, data.input_shape, ckpt["state_dict"], act_bits=act_bits
        )
        final: dict[str, Any] | None = None
        if config.final_epochs and not genome.weight_bits:
            final, data = _final_distill(config, ctx, student, best_dir / "student.onnx")
        torch.save(
            {
                "state_dict": student.state_dict(),
                "meta": {
                    **ctx.student_meta,
                    "genome": best.genome,
                    "quantized": bool(genome.weight_bits),
                    "act_bits": act_bits,
                    "metrics": best.metrics,
                },
            },
            best_dir / "student.pt",
        )
        best_info = {
            **best.to_dict(),
            "test_accuracy": evaluate(student, data.test),
            "final_distillation": final,
            "latency_check": _latency_check(
                ctx, teacher_info, out, best_dir / "student.onnx", best
            ),
            "constraints": matrix.report(best.metrics),
            "artifacts": {
                **best.artifacts,
                "onnx_best": "best/student.onnx",
                "weights_best": "best/student.pt",
            },
        }
    results = {
        "version": 1,
        "profile": config.profile,
        "method": config.method,
        "seed": config.seed,
        "teacher": teacher_info,
        "best": best_info,
        "stages": {s: c.to_dict() for s, c in stage_best.items()},
        "candidates": [c.to_dict() for c in candidates],
        "stopped_by_budget": out_of_time,
    }
    path = out / "results.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2))
    tmp.replace(path)
    _write_report(out)
    return SearchResult(
        out=out,
        teacher=teacher_info,
        best=best,
        stages=stage_best,
        candidates=candidates,
        results_path=path,
        interrupted_by_budget=out_of_time,
        final_distillation=best_info["final_distillation"] if best_info else None,
        best_info=best_info,
    )
