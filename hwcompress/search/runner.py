"""The search run: stages of episodes of rollouts, journaled and resumable.

A run is a :class:`SearchRun` that owns what every stage shares (context, evaluator, journal,
clock, reporter, the start student); each stage is a registered object (:mod:`.stages`) that
evaluates its seeds (a practitioner's baselines) before any policy sample; after each episode
the best share of its rollouts trains longer (:mod:`.fidelity`); shrinkage starts from the
run's best few structures; the product is the best feasible student of the whole run
(:mod:`.product`); ``--budget-minutes`` is shared among the stages (:mod:`.budget`).

Each candidate is journaled as it finishes and each episode's policy is checkpointed, so
``resume=True`` loses or repeats no evaluated candidate: sampling is seeded by (seed, stage,
episode), so an interrupted episode's replay draws the same genomes and finds them cached.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import torch

from hwcompress.arch import Genome
from hwcompress.data import DataBundle
from hwcompress.data.teachers import Teacher
from hwcompress.errors import MachineError, machine_problem
from hwcompress.files import save_atomic
from hwcompress.hardware import load_profile
from hwcompress.search.budget import StageClock
from hwcompress.search.candidate import Candidate
from hwcompress.search.config import SearchConfig
from hwcompress.search.confirm import latency_confirmation
from hwcompress.search.evaluate import CandidateEvaluator, SearchContext, structure_of
from hwcompress.search.fidelity import promote
from hwcompress.search.finish import SearchResult, finish_run
from hwcompress.search.journal import Journal
from hwcompress.search.lock import RunLock
from hwcompress.search.names import StageName
from hwcompress.search.product import ProductScore, product_size_metric, rank, select_product
from hwcompress.search.progress import SearchReporter
from hwcompress.search.setup import (
    load_init_policy,
    load_search_config,
    prepare_context,
    prepare_out,
    save_final_policies,
    start_student,
    write_config,
)
from hwcompress.search.stage_registry import stage_registry
from hwcompress.search.stages import Stage
from hwcompress.search.steer import feasibility, latency_model
from hwcompress.search.target import PREDICTED, size_caps

__all__ = ["SearchResult", "SearchRun", "load_search_config", "prepare_context", "run_search"]


class SearchRun:
    """One run's shared state and the operations its stages use.

    Args:
        config: The run's settings.
        ctx: The evaluation context (see :func:`prepare_context`).
        out: The run folder.
        reporter: Receives progress events.
        started: When the run started (its time budget counts from there).
        init_state: Policies to start from (``--init-policy``, see :func:`load_init_policy`).
    """

    def __init__(
        self,
        config: SearchConfig,
        ctx: SearchContext,
        out: Path,
        reporter: SearchReporter,
        started: float,
        init_state: dict[str, Any],
    ) -> None:
        self.config, self.ctx, self.out, self.reporter = config, ctx, out, reporter
        self.journal = Journal(out / "journal.jsonl")
        if (cut := self.journal.repair()) > 0:
            reporter.message(
                f"journal: dropped a torn last line ({cut} bytes; the process that wrote it "
                "was stopped mid-write); that candidate is evaluated again"
            )
        (out / "candidates").mkdir(exist_ok=True)
        self.evaluator = CandidateEvaluator(ctx, known=self.journal.candidates())
        self.finished = {(r["stage"], r["episode"]) for r in self.journal.episodes()}
        self.policies_dir = out / "policies"
        self.policies_dir.mkdir(exist_ok=True)
        self.init_state = init_state
        self.start, self.start_state = start_student(config, ctx)
        self.latency_model = latency_model(ctx, config, out, reporter)
        #: Predicts a student's latency (ms) from its genome where a latency budget steers
        #: the run (proposals are scaled to it); None where latency only filters.
        self.latency = (
            self.latency_model.predictor(ctx.spec) if self.latency_model is not None else None
        )
        #: Channel counts snap to multiples of it (the device's fastest kernels) where
        #: latency steers.
        self.multiple = ctx.profile.runtime.channel_multiple if self.latency else 1
        self.caps = size_caps(ctx.matrix, (*PREDICTED, "latency_ms") if self.latency else PREDICTED)
        #: Where latency steers a run ranked by accuracy within its targets, proposals under
        #: the budget are scaled up to it as well (a proposal's shape is what is decided).
        self.fill = self.latency is not None and ctx.reward_config.objective == "accuracy"
        #: Per stage: policy proposals, and how many were scaled down to the budgets.
        self.clamps: dict[str, dict[str, int]] = {}
        self.stages: dict[str, Stage] = {
            name: stage for name, stage in stage_registry().items() if name in config.stages
        }
        self.clock = StageClock(
            None if config.budget_minutes is None else config.budget_minutes * 60,
            {name: stage.planned(self) for name, stage in self.stages.items()},
            start=started,
        )
        quantizes = StageName.QUANTIZATION in config.stages
        self.score = ProductScore(
            ctx.teacher_metrics,
            ctx.teacher_accuracy,
            product_size_metric(config.method, config.size_metric, quantizes),
            ctx.reward_config.objective,
            float_ships=ctx.profile.bits.runs_float,
            val_samples=len(ctx.data.val.dataset),
        )
        self.stage_bests: dict[str, Candidate] = {}
        self.executor: Any = None

    # -- what the stages ask of the run -------------------------------------------------

    def candidates(self, stage: str | None = None) -> list[Candidate]:
        """Evaluated candidates, of one stage or all."""
        return [c for c in self.evaluator.cache.values() if stage is None or c.stage == stage]

    def floats(self) -> list[Candidate]:
        """Evaluated float (not quantized) students."""
        return [c for c in self.candidates() if not c.genome.get("weight_bits")]

    def best_of(self, cands: list[Candidate]) -> Candidate | None:
        """The best of ``cands`` by the run-wide score."""
        ranked = rank(cands, self.score)
        return ranked[0] if ranked else None

    def best_so_far(self) -> Candidate | None:
        """The run's best candidate by the run-wide score."""
        return self.best_of(self.candidates())

    def best_float(self) -> Candidate | None:
        """The run's best float (not quantized) student."""
        return self.best_of(self.floats())

    def stage_best(self, stage: str, extra: list[Candidate] | None = None) -> Candidate | None:
        """The best candidate of ``stage`` (with ``extra`` ones competing)."""
        return self.best_of([*self.candidates(stage), *(extra or [])])

    def best_structures(self, k: int, before: str | None = None) -> list[Genome]:
        """The ``k`` best distinct structures (kept units and kernels, widths reset) among
        the float students so far (not counting stage ``before``'s); the start student when
        there is none."""
        out: dict[str, Genome] = {}
        ranked = rank([c for c in self.floats() if c.stage != before], self.score)
        for cand in [c for c in ranked if c.feasible] or ranked:
            structure = Genome.from_dict(cand.genome).structure()
            out.setdefault(structure.key(), structure)
            if len(out) == k:
                break
        return list(out.values()) or [structure_of(self.start)]

    def evaluate_episode(
        self,
        genomes: list[Genome],
        stage: str,
        episode: int,
        method: str,
        *,
        labels: list[str] | None = None,
        init_state: dict[str, torch.Tensor] | None = None,
        deadline: float | None = None,
    ) -> list[Candidate]:
        """Evaluates one episode's genomes (here, or trained on the executor's workers and
        measured here one at a time), journals the new ones in order, then trains the best
        share of them longer (those that fit before the stage's ``deadline``). Returns the
        candidates in order, at their highest fidelity."""
        episodes = self.config.episodes
        labels = labels or [""] * len(genomes)
        label_of = {g.key(): lab for g, lab in zip(genomes, labels, strict=True)}
        fresh: set[str] = set()
        todo = [
            g for g in {g.key(): g for g in genomes}.values() if self.evaluator.cached(g) is None
        ]
        if self.executor is not None and init_state is None and todo:
            from hwcompress.search.executors import Job

            jobs = [
                Job(g.to_dict(), stage, episode, method, self.ctx.base_state, self.ctx.act_bits)
                for g in todo
            ]
            prepared = self.executor.prepare(jobs)
        else:
            prepared = [
                self.evaluator.prepare(
                    g, stage=stage, episode=episode, method=method, init_state=init_state
                )
                for g in todo
            ]
        for g, cand in zip(todo, prepared, strict=True):
            cand.label = label_of[g.key()]
            self.record(self.evaluator.finish(cand, episodes=episodes))
            fresh.add(g.key())
        cands = [self.evaluator.cache[g.key()] for g in genomes]
        for g, cand in zip(genomes, cands, strict=True):
            self.reporter.candidate(cand, self.best_so_far(), g.key() not in fresh)
            fresh.discard(g.key())
        return promote(
            self.evaluator,
            cands,
            fraction=self.config.promote_fraction,
            epochs=self.config.promote_epochs,
            episodes=episodes,
            record=self.record,
            deadline=deadline,
            proxy_epochs=self.config.distill_epochs,
        )

    def record(self, cand: Candidate) -> None:
        """Journals a new or refined candidate (a later record of the same genome wins)."""
        self.journal.append({"type": "candidate", "candidate": cand.to_dict()})

    def save_policy(
        self,
        stage: str,
        episode: int,
        state: dict[str, Any],
        rewards: list[float],
        loss: Any,
        clamped: int = 0,
    ) -> None:
        """Checkpoints the controller and journals the episode (and its clamped proposals)."""
        save_atomic(state, self.policies_dir / f"{stage}_ep{episode}.pt")
        save_atomic(state, self.policies_dir / f"{stage}_latest.pt")
        mean = sum(rewards) / len(rewards)
        self.journal.append(
            {
                "type": "episode",
                "stage": stage,
                "episode": episode,
                "rewards": rewards,
                "mean_reward": mean,
                "loss": loss,
                "clamped": clamped,
                "policy": f"policies/{stage}_ep{episode}.pt",
            }
        )
        self.reporter.episode(stage, episode, mean, self.best_so_far())

    # -- the run ------------------------------------------------------------------------

    def run_stages(self) -> bool:
        """Runs the stages in order; returns whether some stage's time ran out."""
        plan = self.clock.plan()
        if plan:
            self.reporter.message(
                "time budget: "
                + ", ".join(f"{name} {s / 60:.1f} min" for name, s in plan.items())
                + " (a stage that finishes early leaves its time to the next)"
            )
        cut = False
        for index, (name, stage) in enumerate(self.stages.items()):
            if self.clock.spent():
                self.reporter.message(f"{name} skipped: the time budget is spent")
                cut = True
                continue
            best, out_of_time = stage.execute(self, index)
            if best is not None:
                self.stage_bests[name] = best
            if out_of_time:
                cut = True
                self.reporter.message(f"{name}: its share of the time budget is spent; moving on")
        return cut

    def finish(self, teacher_info: dict[str, Any], out_of_time: bool) -> SearchResult:
        """Chooses the product and writes the run's results."""
        best, chosen = select_product(
            self.evaluator,
            self.score,
            contenders=self.config.contenders,
            epochs=self.config.promote_epochs,
            record=self.record,
            planned=self.journal.product_plans(),
            plan=lambda phase, ids: self.journal.append(
                {"type": "product_plan", "phase": phase, "ids": ids}
            ),
            out_of_time=self.clock.spent,
            confirm=latency_confirmation(self),
        )
        if best is not None:
            self.reporter.message(
                f"product: {best.stage} {best.method}"
                + (f" ({best.label})" if best.label else "")
                + f", chosen by {chosen['rule']}"
            )
        return finish_run(
            self.out,
            self.config,
            self.ctx,
            teacher_info,
            self.candidates(),
            best,
            chosen=chosen,
            stage_best=self.stage_bests,
            out_of_time=out_of_time,
            budget={"minutes": self.config.budget_minutes, "plan_s": self.clock.plan()}
            if self.config.budget_minutes
            else None,
            extra={
                "latency_model": None
                if self.latency_model is None
                else self.latency_model.summary(self.multiple),
                "feasibility": feasibility(self.candidates(), self.journal.episodes()),
            },
        )


def run_search(
    config: SearchConfig,
    *,
    resume: bool = False,
    reporter: SearchReporter | None = None,
    teacher: Teacher | None = None,
    data: DataBundle | None = None,
) -> SearchResult:
    """Runs (or resumes) a search.

    Args:
        config: The run's settings (for a resume, the stored settings; see
            :func:`load_search_config`).
        resume: Continue the run in ``config.out``.
        reporter: Receives progress events.
        teacher: The teacher as an object instead of ``config.teacher`` (see
            :func:`hwcompress.compress`).
        data: The data as a bundle instead of ``config.dataset``.

    Returns:
        The result; ``results.json``, ``best/`` and the journal are in ``config.out``.

    Raises:
        HwCompressError: On bad settings, data, teacher or profile.
    """
    reporter = reporter or SearchReporter()
    started = time.perf_counter()
    profile = load_profile(config.profile)  # reported before anything about --out
    init_state = load_init_policy(config.init_policy)  # reported before the teacher is measured
    out, created = prepare_out(config, resume)
    lock = RunLock(out)
    try:
        lock.acquire()
        try:
            ctx, teacher_info = prepare_context(
                config, out, reporter, profile, teacher=teacher, data=data
            )
            run = SearchRun(config, ctx, out, reporter, started, init_state)
        except BaseException:
            if created is not None:  # a failed start leaves no folder behind
                lock.release()
                shutil.rmtree(created, ignore_errors=True)
            raise
        if not resume:
            write_config(config, out)
        try:
            return _run(run, teacher_info)
        except Exception as err:
            problem = machine_problem(err)
            if problem is None:
                raise
            raise MachineError(
                f"the search stopped: {problem}. Every finished candidate is in "
                f"{out / 'journal.jsonl'}; fix the machine (free space, permissions, memory), "
                f"then continue with: hwcompress search --resume --out {out}"
            ) from err
    finally:
        lock.release()


def _run(run: SearchRun, teacher_info: dict[str, Any]) -> SearchResult:
    config, ctx, reporter = run.config, run.ctx, run.reporter
    if config.executor != "serial":
        from hwcompress.search.executors import make_executor

        run.executor = make_executor(
            config.executor, config.workers, config.ray_address, config.worker_threads
        )
        reporter.message(f"starting {config.workers} {config.executor} workers")
        run.executor.start(ctx)
    try:
        out_of_time = run.run_stages()
    finally:
        if run.executor is not None:
            run.executor.close()
    save_final_policies(run.policies_dir, config.stages)
    return run.finish(teacher_info, out_of_time)
