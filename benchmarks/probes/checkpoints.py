"""Rebuild a stored cell: its best-validation model from ``checkpoint.pt`` and the dataset it was trained on.

The one loader behind every probe that runs a model (embeddings, robustness); nothing is retrained.
``checkpoint.pt`` holds the cell's configuration (fusion, hparams, protocol, dataset {name, path, options,
modalities}), seed, feature sizes, task, number of classes, modality names and the weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fusions import Predictor, build_predictor
from records.schema import record_version
from tasks import get_task, same_task

from ..config import Protocol
from ..data import Dataset, load_dataset
from ..train import Evaluation, evaluate, protocol_data, resolve_hparams


class DatasetCache:
    """Datasets by their stored description, each loaded once (cells of one run share one dataset). ``known``:
    datasets already in memory with their descriptions (the run that just trained on it), so none is read again."""

    def __init__(self, known: dict[str, Dataset] | None = None):
        self._loaded: dict[str, Dataset] = dict(known or {})

    @staticmethod
    def key(described: dict) -> str:
        """The cache key of a dataset description (as a cell's ``config.json`` stores it)."""
        return json.dumps(described, sort_keys=True, default=str)

    @classmethod
    def holding(cls, described: dict, data: Dataset) -> DatasetCache:
        """A cache that already holds ``data``, described as ``described`` (a cell's ``dataset``)."""
        return cls({cls.key(described): data})

    def load(self, described: dict) -> Dataset:
        """The dataset ``{"name", "path", "options", "modalities"}`` with its modalities selected in order."""
        key = self.key(described)
        if key not in self._loaded:
            data = load_dataset(described["name"], described.get("path"), **described.get("options", {}))
            modalities = described.get("modalities")
            if modalities and list(modalities) != list(data.modality_names):
                data = data.select_modalities(list(modalities))
            self._loaded[key] = data
        return self._loaded[key]


@dataclass
class StoredCell:
    """A cell rebuilt from its checkpoint: the model in eval mode on ``device`` and its dataset, as its protocol
    scored it (``train.protocol_data``: e.g. rounded labels, full-length padding)."""

    fusion: str
    seed: int
    model: Predictor
    data: Dataset
    device: torch.device
    eval_batch_size: int

    def evaluate(self, split=None, keep_states: bool = False) -> Evaluation:
        """``benchmarks.train.evaluate`` of the model on ``split`` (default: the test split)."""
        split = self.data.test if split is None else split
        return evaluate(self.model, split, self.data.task, self.device, self.eval_batch_size, keep_states=keep_states)


def load_cell(folder: str | Path, datasets: DatasetCache, device: torch.device | str = "cpu") -> StoredCell:
    """The cell stored in ``folder`` (``cells/<fusion>-<hash>/seed<k>``); ``FileNotFoundError`` without a
    checkpoint, ``ValueError`` when the dataset no longer fits the stored feature sizes or task (a task name of an
    older version is read with ``tasks.same_task``) or the weights no longer fit the fusion's code;
    ``records.schema.SchemaError`` when the cell's ``record.json`` (which versions the checkpoint beside it) was
    written by a newer schema version."""
    path = Path(folder) / "checkpoint.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    record_version(folder)  # a newer version is refused before its checkpoint is read
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    config = checkpoint["config"]
    data = datasets.load(config["dataset"])
    if data.dims != list(checkpoint["dims"]):
        raise ValueError(f"{path}: the dataset's feature sizes {data.dims} differ from the stored {checkpoint['dims']}")
    if not same_task(checkpoint["task"], data.task):
        raise ValueError(f"{path}: the cell was trained for task {checkpoint['task']!r}; its dataset now declares "
                         f"{data.task!r}")
    model = build_predictor(
        config["fusion"], checkpoint["dims"], task=get_task(data.task).kind, num_classes=checkpoint["num_classes"],
        task_label_range=get_task(data.task).label_range,
        **resolve_hparams(config["hparams"], checkpoint["modality_names"]),
    )
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        raise ValueError(
            f"{path}: the stored weights do not fit the current {config['fusion']!r} code "
            f"({str(error).splitlines()[-1].strip()}); retrain the cell or check out the commit in meta.json"
        ) from None
    device = torch.device(device)
    model.to(device).eval()
    return StoredCell(
        fusion=config.get("label", config["fusion"]), seed=int(checkpoint["seed"]), model=model,
        data=protocol_data(data, Protocol.from_dict(config.get("protocol", {}))), device=device,  # as it was scored
        eval_batch_size=int(config.get("protocol", {}).get("eval_batch_size", 256)),
    )


def stored_prediction_gap(folder: str | Path, evaluation: Evaluation) -> float:
    """Largest absolute difference between ``evaluation``'s test outputs and the cell's ``predictions.csv``
    (regression: the prediction; classification and multi-label: every ``logit_*`` column, in the file's order,
    which is the outputs' order); NaN without the file.

    Near 0 (CSV rounding, ~1e-7) when the checkpoint reproduces the run; larger when the model code or the
    dataset changed after training, so that the stored weights now compute something else.
    """
    path = Path(folder) / "predictions.csv"
    if not path.is_file():
        return float("nan")
    stored = pd.read_csv(path)
    outputs = evaluation.outputs
    if outputs.ndim == 1:
        expected = stored["prediction"].to_numpy()[:, None]
        outputs = outputs[:, None]
    else:
        expected = stored[[c for c in stored.columns if c.startswith("logit_")]].to_numpy()
    if expected.shape != outputs.shape:
        return float("inf")
    return float(np.abs(outputs - expected).max())
