"""Datasets: the ``Dataset`` / ``Split`` structures, the registry and the loaders.

Every module (or subpackage) of this package other than the infrastructure is imported here, and registers its
loader with ``@register_dataset("name")``: adding a dataset is adding one file.
"""

import importlib
import pkgutil

from .arrays import from_arrays, write_arrays
from .dataset import SPLITS, DataError, Dataset, Split
from .registry import list_datasets, load_dataset, register_dataset
from .synthetic import make_synthetic

_INFRASTRUCTURE = {"dataset", "registry"}
for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _INFRASTRUCTURE:
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "SPLITS", "DataError", "Dataset", "Split", "from_arrays", "list_datasets", "load_dataset", "make_synthetic",
    "register_dataset", "write_arrays",
]
