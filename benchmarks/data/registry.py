"""Datasets by name: ``load_dataset(name, path=None, **options)`` returns a ``Dataset`` with train/valid/test."""

from __future__ import annotations

import inspect
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
    """Load dataset ``name`` (from ``path`` where it reads files) with the loader's keyword ``options`` (a
    ``[datasets.<name>]`` table of a ``--config`` file). An unknown name, or an option the loader does not take,
    raises ``DataError`` listing the known ones. A loader that passes ``**options`` on names the function whose
    parameters they are as its ``options_signature`` attribute."""
    if name not in _LOADERS:
        raise DataError(f"unknown dataset {name!r}; known datasets: {', '.join(list_datasets())}")
    loader = _LOADERS[name]
    parameters = list(inspect.signature(getattr(loader, "options_signature", loader)).parameters.values())
    known = [p.name for p in parameters if p.kind is p.KEYWORD_ONLY
             or (p.kind is p.POSITIONAL_OR_KEYWORD and p.name != "path")]
    unknown = sorted(set(options) - set(known))
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in parameters):
        raise DataError(f"dataset {name!r} takes no option {', '.join(map(repr, unknown))}; its options: "
                        f"{', '.join(known) or 'none'}")
    return loader(Path(path) if path is not None else None, **options)
