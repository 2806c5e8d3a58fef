"""Datasets by name: ``load_dataset(name, path=None, **options)`` returns a ``Dataset`` with train/valid/test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .dataset import DataError, Dataset

_LOADERS: dict[str, Callable[..., Dataset]] = {}


def register_dataset(name: str) -> Callable[[Callable[..., Dataset]], Callable[..., Dataset]]:
    """Decorator for a loader ``fn(path: Path | None, **options) -> Dataset`` of dataset ``name`` (the
    ``--dataset`` value); the ``Dataset`` it returns declares its task. A name registered twice raises
    ``ValueError``."""

    def decorate(fn: Callable[..., Dataset]) -> Callable[..., Dataset]:
        if name in _LOADERS:
            raise ValueError(f"dataset {name!r} is already registered by {_LOADERS[name].__qualname__}")
        _LOADERS[name] = fn
        return fn

    return decorate


def list_datasets() -> list[str]:
    """The registered dataset names, sorted."""
    return sorted(_LOADERS)


def load_dataset(name: str, path: str | Path | None = None, **options) -> Dataset:
    """Load dataset ``name`` (from ``path`` where it reads files). Unknown name -> ``DataError`` listing the known."""
    if name not in _LOADERS:
        raise DataError(f"unknown dataset {name!r}; known datasets: {', '.join(list_datasets())}")
    return _LOADERS[name](Path(path) if path is not None else None, **options)
