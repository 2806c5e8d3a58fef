"""Registry entries: each dataset name maps to its loader."""

from __future__ import annotations

from pathlib import Path

from .dataset import DataError, Dataset
from .mfeat import load_mfeat
from .mosi import load_mosi
from .registry import register_dataset
from .synthetic import make_synthetic


@register_dataset("synthetic")
def load_synthetic(path: Path | None = None, **options) -> Dataset:
    """The seeded MOSI-shaped generator; options are ``make_synthetic``'s arguments (no files read)."""
    if path is not None:
        raise DataError("the synthetic dataset is generated, not read: drop --data-path")
    return make_synthetic(**options)


register_dataset("mosi")(load_mosi)  # options: cache_dir, text_csd, audio_csd, vision_csd, labels_csd
register_dataset("mfeat")(load_mfeat)  # options: modalities, split_seed
