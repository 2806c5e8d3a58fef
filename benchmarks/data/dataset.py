"""The in-memory form every loader returns: splits of padded modality tensors with masks, labels and ids."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from tasks import get_task

SPLITS = ("train", "valid", "test")


class DataError(ValueError):
    """A dataset that cannot be used as given; the message says what is wrong and what is expected."""


@dataclass
class Split:
    """One split. ``xs``: n float32 tensors ``[N, time_i, dim_i]`` with real steps first and zero padding after;
    ``masks``: n bool ``[N, time_i]`` (True = real step); ``labels``: ``[N]`` (float32 for a regression task,
    int64 class indices for a classification task) or float32 0/1 ``[N, K]`` for a multi-label task (1: the
    label is present); ``ids``: N segment ids; ``extras``: per-sample tensors
    ``[N, ...]`` that some datasets carry (e.g. the synthetic generator's latent signal)."""

    xs: list[Tensor]
    masks: list[Tensor]
    labels: Tensor
    ids: list[str]
    extras: dict[str, Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: Tensor) -> Split:
        """The samples at ``index`` (a LongTensor), in that order."""
        index = torch.as_tensor(index, dtype=torch.long)
        return Split(
            xs=[x[index] for x in self.xs],
            masks=[m[index] for m in self.masks],
            labels=self.labels[index],
            ids=[self.ids[i] for i in index.tolist()],
            extras={k: v[index] for k, v in self.extras.items()},
        )

    def select(self, modalities: list[int]) -> Split:
        """The same samples with only the modalities at the given indices, in that order."""
        return Split(
            xs=[self.xs[i] for i in modalities], masks=[self.masks[i] for i in modalities],
            labels=self.labels, ids=self.ids, extras=self.extras,
        )


@dataclass
class Dataset:
    """Train / valid / test splits of one dataset with its modality names and task.

    ``task``: the name of a registered task (``tasks.list_tasks()``: ``"sentiment"``, ``"regression"``,
    ``"multiclass"``, ``"binary"``, ``"multilabel"``, ``"emotions"``, ...), which trains and scores it;
    ``num_classes`` is set for a classification task (the number of classes) and a multi-label task (K, the number
    of labels). ``info``: provenance and facts about the data (source format, path, counts, known ceilings), stored
    with every run's records; a multi-label dataset may name its labels in ``info["label_names"]`` (K strings, in
    label order; default ``0..K-1``, or the task's own names).
    """

    name: str
    train: Split
    valid: Split
    test: Split
    modality_names: list[str]
    task: str
    num_classes: int | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.check()

    @property
    def dims(self) -> list[int]:
        """Feature size of each modality."""
        return [int(x.shape[-1]) for x in self.train.xs]

    @property
    def label_names(self) -> tuple[str, ...] | None:
        """A multi-label task's name of each label (``tasks.Task.names_of_labels``); None for other tasks."""
        return get_task(self.task).names_of_labels(self.num_classes, self.info.get("label_names"))

    @property
    def splits(self) -> dict[str, Split]:
        return {"train": self.train, "valid": self.valid, "test": self.test}

    def select_modalities(self, names: list[str]) -> Dataset:
        """A dataset with only the named modalities, in the order given."""
        unknown = [name for name in names if name not in self.modality_names]
        if unknown:
            raise DataError(
                f"unknown modality {', '.join(map(repr, unknown))} for dataset {self.name!r}; "
                f"known: {', '.join(self.modality_names)}"
            )
        if len(set(names)) != len(names) or len(names) < 2:
            raise DataError(f"select at least 2 distinct modalities, got {names}")
        index = [self.modality_names.index(name) for name in names]
        return Dataset(
            name=self.name, train=self.train.select(index), valid=self.valid.select(index),
            test=self.test.select(index), modality_names=list(names), task=self.task,
            num_classes=self.num_classes, info={**self.info, "modalities": list(names)},
        )

    def check(self) -> None:
        """Raise ``DataError`` (one line naming the split and modality) when the task is not registered or does
        not fit ``num_classes`` (or ``info["label_names"]``), the splits are inconsistent, or labels do not fit the
        task (``tasks.Task.label_problem``)."""
        try:
            task = get_task(self.task)
            task.output_size(self.num_classes)
            task.names_of_labels(self.num_classes, self.info.get("label_names"))
        except ValueError as error:
            raise DataError(f"dataset {self.name!r}: {error}") from None
        n = len(self.modality_names)
        for split_name, split in self.splits.items():
            where = f"dataset {self.name!r}, split {split_name!r}"
            if len(split) == 0:
                raise DataError(f"{where} is empty; expected at least one sample")
            if len(split.xs) != n or len(split.masks) != n:
                raise DataError(f"{where}: expected {n} modalities ({', '.join(self.modality_names)}), "
                                f"got {len(split.xs)} tensors and {len(split.masks)} masks")
            if len(split.ids) != len(split):
                raise DataError(f"{where}: {len(split.ids)} ids for {len(split)} labels")
            for i, (x, mask) in enumerate(zip(split.xs, split.masks)):
                name = self.modality_names[i]
                if x.dim() != 3 or x.shape[0] != len(split):
                    raise DataError(f"{where}, modality {name!r}: expected [{len(split)}, time, dim], "
                                    f"got {tuple(x.shape)}")
                if x.shape[-1] != self.train.xs[i].shape[-1]:
                    raise DataError(f"{where}, modality {name!r}: feature size {x.shape[-1]} differs from "
                                    f"train's {self.train.xs[i].shape[-1]}")
                if x.dtype != torch.float32 or mask.dtype != torch.bool or mask.shape != x.shape[:2]:
                    raise DataError(f"{where}, modality {name!r}: expected float32 [N, time, dim] with a "
                                    f"bool mask [N, time], got {x.dtype} {tuple(x.shape)} / {mask.dtype} "
                                    f"{tuple(mask.shape)}")
                if not bool(mask[:, 0].all()):
                    raise DataError(f"{where}, modality {name!r}: every sample needs a real first step")
            problem = task.label_problem(split.labels.numpy(), self.num_classes)
            if problem is not None:
                raise DataError(f"{where}: {problem}")

    def summary(self) -> dict:
        """Counts and shapes for records: split sizes and per-modality ``[time, dim]``."""
        return {
            "dataset": self.name, "task": self.task,
            **{f"n_{name}": len(split) for name, split in self.splits.items()},
            "modalities": list(self.modality_names),
            "shapes": {name: list(x.shape[1:]) for name, x in zip(self.modality_names, self.train.xs)},
        }
