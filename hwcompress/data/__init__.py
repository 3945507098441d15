"""Datasets and teachers."""

from hwcompress.data.datasets import DATASETS, DataBundle, DataConfig, load_data

__all__ = ["DATASETS", "DataBundle", "DataConfig", "load_data"]
