"""Sharing ``--budget-minutes`` among a run's stages.

Each stage gets a share of the time left when it starts, in proportion to the candidates it
plans to evaluate (its seeds and rollouts) against those of the stages after it; a stage
that finishes early leaves its time to the next ones, and a stage that runs out hands over
instead of ending the run. The planned split is recorded in ``results.json``.
"""

from __future__ import annotations

import time


class StageClock:
    """Deadlines per stage within one wall-clock budget.

    Args:
        budget_s: The whole run's budget in seconds (None: no limit).
        weights: Each stage's planned work, in run order.
        start: When the run started (``time.perf_counter()``).
    """

    def __init__(
        self, budget_s: float | None, weights: dict[str, float], start: float | None = None
    ) -> None:
        self.budget_s = budget_s
        self.weights = {k: max(float(v), 1e-9) for k, v in weights.items()}
        self.start = time.perf_counter() if start is None else start
        self.used: dict[str, float] = {}

    @property
    def end(self) -> float | None:
        """When the whole budget runs out."""
        return None if self.budget_s is None else self.start + self.budget_s

    def plan(self) -> dict[str, float]:
        """The split of the whole budget in seconds, as planned at the start."""
        if self.budget_s is None:
            return {}
        total = sum(self.weights.values())
        return {k: self.budget_s * w / total for k, w in self.weights.items()}

    def deadline(self, stage: str) -> float | None:
        """The deadline of ``stage``, which starts now: its share of the time left."""
        if self.end is None:
            return None
        stages = list(self.weights)
        later = stages[stages.index(stage) :]
        share = self.weights[stage] / sum(self.weights[s] for s in later)
        now = time.perf_counter()
        return now + max(self.end - now, 0.0) * share

    def spent(self) -> bool:
        """True when the whole budget is gone."""
        return self.end is not None and time.perf_counter() > self.end
