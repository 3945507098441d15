"""The N2N search: policies, REINFORCE, reward, candidate evaluation, resumable runs.

:class:`SearchConfig` is light (the CLI builds its options from it); the runner, which needs
PyTorch, is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hwcompress.search.config import SearchConfig

if TYPE_CHECKING:
    from hwcompress.search.runner import SearchResult, load_search_config, run_search

__all__ = ["SearchConfig", "SearchResult", "load_search_config", "run_search"]

_RUNNER = frozenset({"SearchResult", "load_search_config", "run_search"})


def __getattr__(name: str) -> Any:
    if name in _RUNNER:
        from hwcompress.search import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'hwcompress.search' has no attribute {name!r}")
