"""The search's progress reporting interface; the CLI supplies a rich implementation."""

from __future__ import annotations

from hwcompress.search.candidate import Candidate


class SearchReporter:
    """Receives progress events. The default implementation ignores them."""

    def message(self, text: str) -> None:
        """A one-line status message."""

    def stage(self, stage: str, episodes: int, rollouts: int, start_episode: int) -> None:
        """A stage starts (``start_episode`` > 0 when resuming)."""

    def seeds(self, stage: str, count: int) -> None:
        """A stage evaluates ``count`` seeds before its episodes."""

    def candidate(self, cand: Candidate, best: Candidate | None, cached: bool) -> None:
        """A candidate was evaluated (or taken from the cache)."""

    def episode(self, stage: str, episode: int, mean_reward: float, best: Candidate | None) -> None:
        """An episode finished and its policy update was applied."""
