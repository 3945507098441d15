"""What a stage may ask of the run it belongs to: a protocol below both.

:class:`~hwcompress.search.runner.SearchRun` implements it; the stages
(:mod:`hwcompress.search.stages`, :mod:`hwcompress.search.kernel_stage`) are written against
it, so they never import the runner that imports their registry.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch

    from hwcompress.arch import Genome
    from hwcompress.search.budget import StageClock
    from hwcompress.search.candidate import Candidate
    from hwcompress.search.config import SearchConfig
    from hwcompress.search.evaluate import CandidateEvaluator, SearchContext
    from hwcompress.search.journal import Journal
    from hwcompress.search.product import ProductScore
    from hwcompress.search.progress import SearchReporter


class StageRun(Protocol):
    """The run as its stages see it (state shared by every stage, and its operations)."""

    config: SearchConfig
    ctx: SearchContext
    evaluator: CandidateEvaluator
    #: The run-wide score the product is chosen by.
    score: ProductScore
    out: Path
    reporter: SearchReporter
    journal: Journal
    clock: StageClock
    policies_dir: Path
    #: ``(stage, episode)`` pairs already journaled (a resumed run skips them).
    finished: set[tuple[str, int]]
    init_state: dict[str, Any]
    start: Genome
    start_state: dict[str, torch.Tensor] | None
    #: Size and latency caps proposals are clamped to.
    caps: dict[str, float]
    #: ``genome ↦`` predicted latency (ms) where latency steers the run, else None.
    latency: Callable[[Genome], float] | None
    #: Channel counts snap to multiples of it.
    multiple: int
    #: Whether proposals under the budgets are scaled up to them.
    fill: bool

    def candidates(self, stage: str | None = None) -> list[Candidate]: ...

    def floats(self) -> list[Candidate]: ...

    def best_of(self, cands: list[Candidate]) -> Candidate | None: ...

    def best_so_far(self) -> Candidate | None: ...

    def best_float(self) -> Candidate | None: ...

    def stage_best(self, stage: str, extra: list[Candidate] | None = None) -> Candidate | None: ...

    def best_structures(self, k: int, before: str | None = None) -> list[Genome]: ...

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
    ) -> list[Candidate]: ...

    def record(self, cand: Candidate) -> None: ...

    def save_policy(
        self,
        stage: str,
        episode: int,
        state: dict[str, Any],
        rewards: list[float],
        loss: Any,
        clamped: int = 0,
    ) -> None: ...
