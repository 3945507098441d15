"""The N2N search: policies, REINFORCE, reward, candidate evaluation, resumable runs."""

from hwcompress.search.config import SearchConfig
from hwcompress.search.runner import SearchResult, load_search_config, run_search

__all__ = ["SearchConfig", "SearchResult", "load_search_config", "run_search"]
