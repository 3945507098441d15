"""Evaluating one candidate: build → distil → export → measure → reward.

Identical genomes are evaluated once (a cache keyed by the genome). A candidate that fails
(a genome that cannot be built, an export error) is recorded with its reason and reward −1,
and the search goes on. When the machine fails instead (a full disk, a missing permission,
no memory) nothing is recorded: :class:`~hwcompress.errors.MachineError` stops the run, which
``--resume`` continues once the machine is fixed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hwcompress.arch import ArchSpec, Genome, build_student
from hwcompress.errors import HwCompressError, MachineError, machine_problem
from hwcompress.files import save_atomic
from hwcompress.hardware import ConstraintMatrix, DeviceProfile
from hwcompress.measure.result import LatencyResult
from hwcompress.search.candidate import Candidate, Status, candidate_seed, genome_id
from hwcompress.search.latency_memo import LatencyMemo
from hwcompress.search.pipeline import (
    count_step,
    export_step,
    float_counting,
    measure_candidate,
    measure_model,
    rebuild_candidate,
    structure_of,
    train_step,
)
from hwcompress.search.reward import STAGE_SIZE_METRIC, RewardConfig, reward
from hwcompress.train import DistillConfig, TeacherLogits

__all__ = [
    "CandidateEvaluator",
    "SearchContext",
    "float_counting",
    "measure_model",
    "rebuild_candidate",
    "structure_of",
]

#: Status of a candidate whose evaluation was stopped by the machine (a full disk, no
#: memory), not by the candidate; :meth:`CandidateEvaluator.finish` raises on it.
MACHINE = Status.MACHINE


@dataclass
class SearchContext:
    """Everything candidate evaluation needs, fixed for a run."""

    teacher: nn.Module
    spec: ArchSpec
    data: Any
    profile: DeviceProfile
    matrix: ConstraintMatrix
    teacher_metrics: dict[str, float]
    teacher_accuracy: float
    distill_config: DistillConfig
    reward_config: RewardConfig
    run_dir: Path
    teacher_logits: TeacherLogits | None = None
    latency_kwargs: dict[str, Any] = field(default_factory=dict)
    base_state: dict[str, torch.Tensor] | None = None  # the quantization stage starts here
    act_bits: int = 8
    #: What a student checkpoint needs to be rebuilt alone (teacher spec, input shape, ...).
    student_meta: dict[str, Any] = field(default_factory=dict)
    #: The teacher's ONNX file: where latency steers a local run, each candidate is timed in
    #: turn with it and its latency is that ratio times the teacher's latency at the start.
    latency_reference: Path | None = None
    #: Where latency steers a local run: each structure's first timing, read by later ones
    #: (:mod:`hwcompress.search.latency_memo`).
    latencies: LatencyMemo | None = None


class CandidateEvaluator:
    """Evaluates genomes for one run, caching by genome.

    Args:
        ctx: The run's fixed context.
        known: Candidates evaluated earlier (a resumed run's journal).
    """

    def __init__(self, ctx: SearchContext, known: list[Candidate] | None = None) -> None:
        self.ctx = ctx
        self.cache: dict[str, Candidate] = {}
        for cand in known or []:
            self.cache[Genome.from_dict(cand.genome).key()] = cand

    def cached(self, genome: Genome) -> Candidate | None:
        """The earlier evaluation of ``genome``, if any."""
        return self.cache.get(genome.key())

    def evaluate(
        self,
        genome: Genome,
        *,
        stage: str,
        episode: int,
        method: str,
        episodes: int = 1,
        init_state: dict[str, torch.Tensor] | None = None,
    ) -> Candidate:
        """Evaluates ``genome`` (or returns the cached result).

        Never raises for a bad candidate: failures are recorded with their reason.

        Args:
            genome: The student.
            stage: The stage proposing it.
            episode: Its episode.
            method: The search method proposing it (recorded).
            episodes: Episodes of the stage (the soft penalty's schedule).
            init_state: Weights the float student starts from instead of the teacher's
                inherited ones (the kernel stage's cropped, fine-tuned student).
        """
        key = genome.key()
        if key in self.cache:
            return self.cache[key]
        cand = self.prepare(
            genome, stage=stage, episode=episode, method=method, init_state=init_state
        )
        return self.finish(cand, episodes=episodes)

    def prepare(
        self,
        genome: Genome,
        *,
        stage: str,
        episode: int,
        method: str,
        init_state: dict[str, torch.Tensor] | None = None,
    ) -> Candidate:
        """The part of an evaluation that may run anywhere, in parallel with others: build,
        distil (or quantize and fine-tune), export, save, static metrics and accuracy.

        Returns:
            The candidate without latency and reward (``status == "failed"`` with the reason
            when it could not be built, trained or exported). :meth:`finish` completes it.
        """
        ctx = self.ctx
        cid = genome_id(genome.key())
        cand = Candidate(
            id=cid, stage=stage, episode=episode, method=method, genome=genome.to_dict()
        )
        start = time.perf_counter()
        shape = ctx.data.input_shape
        rel_onnx = Path("candidates") / f"{cid}.onnx"
        rel_pt = Path("candidates") / f"{cid}.pt"
        try:
            # Layers the surgery creates are initialised from the global generator: seed it
            # from the run's seed and the genome, so a genome trains to the same student
            # whatever was evaluated before it, in whichever process or executor.
            torch.manual_seed(candidate_seed(ctx.distill_config.seed, cid))
            student = build_student(ctx.teacher, structure_of(genome), shape, spec=ctx.spec)
            if init_state is not None and not genome.weight_bits:
                student.load_state_dict(init_state)
            model = self._quantized(student, genome) if genome.weight_bits else student
            accuracy = train_step(
                model, genome, ctx.teacher, ctx.data, ctx.distill_config, ctx.teacher_logits
            )
            measured = export_step(model, genome, shape, ctx.run_dir / rel_onnx, ctx.data.val)
            # what the deployed model scores, beside the PyTorch (fake-quant) accuracy
            metrics = {
                **count_step(student, genome, shape, ctx.profile, ctx.act_bits),
                **measured,
            }
            meta = {
                **ctx.student_meta,
                "genome": genome.to_dict(),
                "quantized": bool(genome.weight_bits),
                "act_bits": ctx.act_bits,
            }
            if genome.weight_bits:
                from hwcompress.quant.convert import default_weight_range_bits

                meta["weight_range_bits"] = default_weight_range_bits()
            save_atomic(
                {"state_dict": model.state_dict(), "genome": genome.to_dict(), "meta": meta},
                ctx.run_dir / rel_pt,
            )
            metrics["val_accuracy"] = accuracy
            cand.metrics = metrics
            cand.artifacts = {"onnx": str(rel_onnx), "weights": str(rel_pt)}
        except (HwCompressError, RuntimeError, MemoryError, ValueError, OSError) as err:
            _failed(cand, err)
        cand.seconds = time.perf_counter() - start
        return cand

    def finish(self, cand: Candidate, *, episodes: int = 1) -> Candidate:
        """Measures a prepared candidate's latency and scores it; caches the result.

        Measurements run here, one at a time, in the process that owns the device (or on the
        board through the remote source), so parallel training never disturbs a timing.
        """
        ctx = self.ctx
        start = time.perf_counter()
        genome = Genome.from_dict(cand.genome)
        if cand.status == MACHINE:  # found where it was prepared (perhaps another process)
            raise MachineError(cand.reason)
        if cand.status == Status.OK:
            try:
                lat, ratio = self.measure(ctx.run_dir / cand.artifacts["onnx"], genome)
                cand.metrics = {**cand.metrics, "latency_ms": lat.median_ms}
                if ratio is not None:
                    cand.metrics["latency_ratio"] = ratio
                cand.kernels = lat.kernels
                self.score(cand, episodes=episodes)
            except (HwCompressError, RuntimeError, MemoryError, ValueError, OSError) as err:
                _failed(cand, err)
                if cand.status == MACHINE:
                    raise MachineError(cand.reason) from err
        cand.seconds += time.perf_counter() - start
        self.cache[genome.key()] = cand
        return cand

    def measure(
        self, onnx_path: Path, genome: Genome | None = None
    ) -> tuple[LatencyResult, float | None]:
        """The latency of a candidate's file (see :func:`~.pipeline.measure_candidate`); with
        its ``genome``, the run's kept timing of that structure where there is one."""
        ctx = self.ctx
        teacher_ms = float(ctx.teacher_metrics["latency_ms"])

        def timed() -> tuple[LatencyResult, float | None]:
            return measure_candidate(
                onnx_path,
                ctx.profile,
                ctx.latency_kwargs,
                reference=ctx.latency_reference,
                teacher_ms=teacher_ms,
            )

        if ctx.latencies is None or genome is None:
            return timed()
        return ctx.latencies.measured(genome.key(), teacher_ms, timed)

    def score(self, cand: Candidate, *, episodes: int = 1) -> None:
        """Sets the reward, feasibility, slack and compression of a measured candidate, and
        records them in its history at its fidelity."""
        ctx = self.ctx
        genome = Genome.from_dict(cand.genome)
        metrics = cand.metrics
        reward_config = ctx.reward_config
        if cand.stage in STAGE_SIZE_METRIC:
            reward_config = replace(reward_config, size_metric=STAGE_SIZE_METRIC[cand.stage])
        if genome.weight_bits:
            # quantized students count size in weight bytes at the chosen bits
            reward_config = replace(reward_config, size_metric="weight_bytes")
        metrics["compression"] = ctx.teacher_metrics["params"] / max(metrics["params"], 1)
        metrics["weight_compression"] = ctx.teacher_metrics["weight_bytes"] / max(
            metrics["weight_bytes"], 1
        )
        cand.reward, cand.feasible = reward(
            metrics,
            ctx.teacher_metrics,
            metrics["val_accuracy"],
            ctx.teacher_accuracy,
            ctx.matrix,
            reward_config,
            episode=cand.episode,
            episodes=episodes,
        )
        cand.slack = dict(zip(ctx.matrix.rows, map(float, ctx.matrix.slack(metrics)), strict=True))
        cand.history = [h for h in cand.history if h["fidelity"] < cand.fidelity]
        cand.history.append(
            {
                "fidelity": cand.fidelity,
                "val_accuracy": metrics["val_accuracy"],
                "reward": cand.reward,
            }
        )

    def refine(self, cand: Candidate, epochs: int, *, episodes: int = 1) -> Candidate:
        """Trains an evaluated candidate ``epochs`` more (distillation, or QAT for a quantized
        one) from its saved weights: the next fidelity. Its architecture and so its latency
        are unchanged; accuracy, reward and artifacts are replaced (new files, the old ones
        stay). A failure leaves the candidate as it was.

        Returns:
            The refined candidate (also cached).
        """
        from hwcompress.data.teachers import load_checkpoint

        if cand.status != Status.OK:
            return cand
        ctx = self.ctx
        start = time.perf_counter()
        genome = Genome.from_dict(cand.genome)
        shape = ctx.data.input_shape
        level = cand.fidelity + 1
        rel_onnx = Path("candidates") / f"{cand.id}-f{level}.onnx"
        rel_pt = Path("candidates") / f"{cand.id}-f{level}.pt"
        try:
            ckpt = load_checkpoint(ctx.run_dir / cand.artifacts["weights"])
            model = rebuild_candidate(
                ctx.teacher,
                genome,
                shape,
                ckpt["state_dict"],
                spec=ctx.spec,
                act_bits=int(ckpt.get("meta", {}).get("act_bits", ctx.act_bits)),
                weight_range_bits=ckpt.get("meta", {}).get("weight_range_bits"),
            )
            config = replace(ctx.distill_config, epochs=epochs, patience=epochs)
            accuracy = train_step(model, genome, ctx.teacher, ctx.data, config, ctx.teacher_logits)
            # a new integer model is scored anew, not by the accuracy it had before training
            measured = export_step(model, genome, shape, ctx.run_dir / rel_onnx, ctx.data.val)
            save_atomic(
                {"state_dict": model.state_dict(), "genome": cand.genome, "meta": ckpt["meta"]},
                ctx.run_dir / rel_pt,
            )
        except (HwCompressError, RuntimeError, MemoryError, ValueError, KeyError, OSError) as err:
            if (why := _machine_reason(err)) is not None:
                raise MachineError(why) from err
            return cand
        new = replace(
            cand,
            metrics={**cand.metrics, **measured, "val_accuracy": accuracy},
            artifacts={**cand.artifacts, "onnx": str(rel_onnx), "weights": str(rel_pt)},
            fidelity=level,
            history=list(cand.history),
        )
        self.score(new, episodes=episodes)
        new.seconds += time.perf_counter() - start
        self.cache[genome.key()] = new
        return new

    def _quantized(self, student: nn.Module, genome: Genome) -> nn.Module:
        """The quantized model of ``student`` (from the run's float product where the
        quantization stage starts from one), calibrated on training data, ready for QAT."""
        from hwcompress.quant.convert import post_training_quantize

        ctx = self.ctx
        if ctx.base_state is not None:
            student.load_state_dict(ctx.base_state)
        return post_training_quantize(
            student,
            ctx.data.train_in_order(),
            weight_bits=genome.weight_bits,
            act_bits=ctx.act_bits,
        )


def _first_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"


def _machine_reason(err: BaseException) -> str | None:
    """How a failure of the machine behind ``err`` reads, or ``None`` if it was not one."""
    problem = machine_problem(err)
    return None if problem is None else f"{problem} ({_first_line(err)})"


def _failed(cand: Candidate, err: BaseException) -> None:
    """Marks ``cand`` failed (scored −1), or, when the machine failed rather than the
    candidate, with status :data:`MACHINE` (never journaled: the run stops instead)."""
    if (why := _machine_reason(err)) is not None:
        cand.status = MACHINE
        cand.reason = why
        return
    cand.status = Status.FAILED
    cand.reason = _first_line(err)
    cand.reward = -1.0
