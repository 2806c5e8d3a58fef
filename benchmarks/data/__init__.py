"""Datasets: the ``Dataset`` / ``Split`` structures, the registry and the loaders."""

from . import loaders as _loaders  # noqa: F401  (registers the datasets)
from .dataset import SPLITS, TASKS, DataError, Dataset, Split
from .registry import list_datasets, load_dataset, register_dataset
from .synthetic import make_synthetic

__all__ = [
    "SPLITS", "TASKS", "DataError", "Dataset", "Split", "list_datasets", "load_dataset", "make_synthetic",
    "register_dataset",
]
