"""Tasks and metrics by name: ``register_metric`` / ``register_task``, ``metric(name)`` / ``get_task(name)``.

A :class:`Metric` is one column of the records (its name), with its direction, unit, definition, when it is
undefined (NaN) and how it is computed from labels and predictions. A :class:`Task` owns its loss, its output
size, its ordered metrics (the first is the main metric: early stopping's report, the tables' lead), the
validation score that selects the model, how raw outputs become predictions, and what a "class" is.

Every other part of the suite asks a task: nothing outside this package branches on a task's name.

Names written by older versions (:data:`LEGACY_NAMES`): before tasks were registered, records, checkpoints and
``meta.json`` said ``"regression"`` for MOSI-style sentiment and ``"classification"`` for multiclass. The
name ``"regression"`` now means plain regression, so a stored name is read against the task the data
declares now (:func:`same_task`), and records without a ``task`` column get theirs from their metric columns
(:func:`task_of_columns`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

KINDS = ("regression", "classification", "multilabel")
"""What a task's model outputs: one real value per sample (``"regression"``; float32 labels ``[N]``), one logit per
class (``"classification"``; int64 class-index labels ``[N]``), or one logit per label (``"multilabel"``: K labels
per sample, each present or absent; float32 0/1 labels ``[N, K]``, a label predicted present where its logit is
> 0). The same words name the head ``fusions.build_predictor`` puts on a fusion."""

LEGACY_NAMES = {"regression": "sentiment", "classification": "multiclass"}
"""Task names that older versions wrote, and the task each meant: ``"regression"`` was MOSI-style sentiment
regression (its metrics, clipping to [-3, 3] for Acc-7, classes by the label's sign), ``"classification"`` was
multiclass classification. ``"classification"`` is reserved (no task may take it); ``"regression"`` is also the
current plain-regression task, so a stored ``"regression"`` is read against the data's task (:func:`same_task`)."""

RESERVED_NAMES = frozenset({"classification"})
"""Legacy names no task may take (``"regression"`` was taken on purpose by plain regression)."""


@dataclass(frozen=True)
class Metric:
    """One metric column of the records.

    ``compute(labels, predictions) -> float``: both numpy arrays as :meth:`Task.vectors` gives them, ``[N]`` for
    regression (float64, label units) and classification (class indices), ``[N, K]`` int64 0/1 for a multi-label
    task (sample x label; ``predictions`` as :meth:`Task.predict` gives them); NaN where the metric is undefined.
    ``higher_is_better``: its direction for tables, tests and ranks. ``unit``: e.g. ``"fraction"`` (in [0, 1]),
    ``"label units"``, ``"dimensionless"``. ``definition``: one sentence for the documentation.
    ``undefined_when``: when it is NaN although the cell trained, in words (empty: defined for any non-empty test
    split). ``per_sample(labels, predictions) -> [n_kept]``: the per-sample scores whose mean is the metric
    (booleans for an accuracy, floats for an error), for the per-sample tests (``[N]`` also for a multi-label task:
    one score per sample); None when the metric is not a mean over samples.
    """

    name: str
    compute: Callable[[np.ndarray, np.ndarray], float]
    higher_is_better: bool
    unit: str
    definition: str
    undefined_when: str = ""
    per_sample: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None


@dataclass(frozen=True)
class Classes:
    """What a "class" is for a task's labels: the colour of a sample in the embedding figures and the silhouette
    score's classes. ``of(values) -> [N]`` int classes ``0..k-1`` of ``values`` ``[N]`` (labels, or predictions
    in label units); ``names``: the legend's name of each class (None: the class indices); ``description``: the
    classes in words, e.g. ``"class"`` or ``"sentiment sign (negative < 0 vs non-negative >= 0)"``."""

    of: Callable[[np.ndarray], np.ndarray]
    description: str
    names: tuple[str, ...] | None = None

    def names_for(self, classes: np.ndarray) -> list[str]:
        """Legend names of the classes ``0..max(classes)``."""
        return list(self.names) if self.names is not None else [str(k) for k in range(int(np.max(classes)) + 1)]


@dataclass(frozen=True)
class Task:
    """A learning task: what the model outputs, its loss, its metrics and how a model is selected.

    * ``name``; ``description``: one line for the documentation.
    * ``kind``: ``"regression"``, ``"classification"`` or ``"multilabel"`` (:data:`KINDS`): the output size (1,
      the number of classes, or the number of labels), the labels' type and shape, how outputs become
      predictions, the columns of ``predictions.csv``, how predictions are averaged over seeds.
    * ``loss(outputs, labels) -> scalar tensor``: ``outputs`` ``[batch, output size]`` float32, ``labels``
      ``[batch]`` (float32 for regression, int64 for classification) or ``[batch, K]`` float32 0/1 (multi-label);
      the training objective and ``valid_loss``.
    * ``metrics``: ordered registered metric names; the first is the main metric (early stopping's progress,
      ``valid_<main>`` in ``runs.csv``, robustness, single-metric figures; the tables lead with it).
    * ``selection``: ``"loss"`` or one of ``metrics``: the validation score whose best epoch is kept (and that
      tuning minimises); its direction is the metric's (the loss: lower is better).
    * ``num_classes``: the fixed number of classes (binary: 2) or of labels (multi-label, e.g. MOSEI's six
      emotions); None: the dataset's (classification, multi-label) or none (regression).
    * ``label_names``: a multi-label task's fixed names of its labels, in label order (``len(label_names)`` is
      ``num_classes``); None: the dataset's (:meth:`names_of_labels`). Only multi-label tasks have them.
    * ``label_range``: ``(low, high)`` every label must lie in, or None.
    * ``classes``: :class:`Classes`, or None where a class is undefined (plain regression; multi-label, where a
      sample may hold several labels).
    * ``sample_tests``: the metrics the per-sample tests compare (each has ``per_sample``; boolean scores also
      get McNemar's test).
    * ``summary_metrics``: the metrics of the short terminal table and the per-seed figure (default all).
    * ``curve_metric``: the validation metric drawn beside the losses in the learning curves (default the main
      metric; sentiment draws ``corr`` since its loss is its MAE).
    """

    name: str
    description: str
    kind: Literal["regression", "classification", "multilabel"]
    loss: Callable
    metrics: tuple[str, ...]
    selection: str = "loss"
    num_classes: int | None = None
    label_range: tuple[float, float] | None = None
    classes: Classes | None = None
    sample_tests: tuple[str, ...] = ()
    summary_metrics: tuple[str, ...] | None = None
    curve_metric: str | None = None
    label_names: tuple[str, ...] | None = None

    @property
    def main_metric(self) -> str:
        return self.metrics[0]

    @property
    def shown_metrics(self) -> tuple[str, ...]:
        """The metrics of the short terminal table (``summary_metrics``, default all)."""
        return self.summary_metrics or self.metrics

    @property
    def learning_curve_metric(self) -> str:
        return self.curve_metric or self.main_metric

    @property
    def selection_column(self) -> str:
        """The validation column of the model-selection score: ``valid_loss`` or ``valid_<metric>``."""
        return f"valid_{self.selection}"

    @property
    def selection_higher_is_better(self) -> bool:
        return self.selection != "loss" and metric(self.selection).higher_is_better

    @property
    def seed_average(self) -> str:
        """How per-sample predictions are averaged over seeds: ``"mean"`` (regression) or ``"vote"`` (the most
        frequent class; multi-label: per label, present or absent by majority, a tie absent)."""
        return "mean" if self.kind == "regression" else "vote"

    def selection_score(self, metrics: Mapping[str, float], loss: float) -> float:
        """The validation score to minimise (the best epoch has the lowest): the ``selection`` metric's value
        from ``metrics``, or ``loss``; negated when higher is better."""
        value = loss if self.selection == "loss" else metrics[self.selection]
        return -value if self.selection_higher_is_better else value

    def output_size(self, num_classes: int | None) -> int:
        """Outputs per sample: 1 (regression), else the number of classes (classification) or labels (multi-label).
        Raises ValueError when a classification task gets fewer than 2 classes, a multi-label task fewer than 1
        label, or either another number than its fixed ``num_classes``."""
        if self.kind == "regression":
            return 1
        least = 1 if self.kind == "multilabel" else 2
        if num_classes is None or num_classes < least:
            raise ValueError(f"task {self.name!r} needs num_classes >= {least}, got {num_classes}")
        if self.num_classes is not None and num_classes != self.num_classes:
            raise ValueError(f"task {self.name!r} has {self.num_classes} classes, got num_classes={num_classes}")
        return int(num_classes)

    def names_of_labels(self, num_classes: int | None, given=None) -> tuple[str, ...] | None:
        """A multi-label task's name of each of its ``num_classes`` labels, in label order: its fixed
        ``label_names``, else ``given`` (a dataset's ``info["label_names"]``), else ``"0".."K-1"``; None for the
        other kinds. They name the columns of ``predictions.csv`` (``label_<name>``, ``prediction_<name>``,
        ``logit_<name>``). Raises ValueError when ``given`` is not ``num_classes`` distinct non-empty strings or
        differs from the task's fixed names."""
        if self.kind != "multilabel":
            return None
        size = self.output_size(num_classes)
        if given is None:
            return self.label_names or tuple(str(k) for k in range(size))
        names = tuple(given) if isinstance(given, (list, tuple)) else ()
        if len(names) != size or len(set(names)) != size or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"label_names {given!r}: expected {size} distinct non-empty strings, one per label of "
                             f"task {self.name!r}")
        if self.label_names is not None and names != self.label_names:
            raise ValueError(f"label_names {list(names)} differ from task {self.name!r}'s: "
                             f"{', '.join(self.label_names)}")
        return names

    def label_problem(self, labels: np.ndarray, num_classes: int | None) -> str | None:
        """What is wrong with ``labels`` for this task (None when nothing): non-finite or out-of-range regression
        labels ``[N]``; classification labels that are not int64 class indices ``[N]`` in ``0..num_classes-1``;
        multi-label labels that are not float32 ``[N, num_classes]`` of 0 and 1."""
        if self.kind == "multilabel":
            size = self.output_size(num_classes)
            if labels.dtype != np.float32 or labels.ndim != 2 or labels.shape[1] != size:
                return (f"labels of task {self.name!r} must be float32 [N, {size}] (one 0/1 column per label), got "
                        f"{labels.dtype} {list(labels.shape)}")
            other = int((~np.isin(labels, (0.0, 1.0))).sum())
            return f"{other} labels are not 0 or 1 (absent or present)" if other else None
        if self.kind == "regression":
            if not np.isfinite(labels).all():
                return "labels hold non-finite values"
            if self.label_range is not None:
                low, high = self.label_range
                outside = int(((labels < low) | (labels > high)).sum())
                if outside:
                    return f"{outside} labels lie outside [{low:g}, {high:g}], the range of task {self.name!r}"
            return None
        if labels.dtype != np.int64:
            return f"labels of task {self.name!r} must be int64 class indices, got {labels.dtype}"
        size = self.output_size(num_classes)
        if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= size):
            return f"labels outside 0..{size - 1}"
        return None

    def outputs(self, raw: np.ndarray) -> np.ndarray:
        """Model outputs ``[N, output size]`` as evaluations keep them: ``[N]`` for regression, ``[N, K]`` logits
        (of the classes, or of the labels)."""
        return raw[:, 0] if self.kind == "regression" else raw

    def predict(self, outputs: np.ndarray) -> np.ndarray:
        """Predictions from :meth:`outputs`: the value ``[N]`` (regression), the arg-max class ``[N]``
        (classification), or int64 0/1 ``[N, K]``, 1 where a label's logit is > 0 (multi-label)."""
        outputs = np.asarray(outputs)
        if self.kind == "multilabel":
            return (outputs > 0).astype(np.int64)
        return outputs.reshape(-1) if self.kind == "regression" else outputs.argmax(-1)

    def prediction_record(self, labels: np.ndarray, outputs: np.ndarray,
                          label_names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """The columns of ``predictions.csv`` after ``id``, from the test ``labels`` and :meth:`outputs`:
        ``label``, ``prediction`` (:meth:`predict`) and, for classification, every logit ``logit_0..logit_{K-1}``;
        for a multi-label task, per label (``label_names``, :meth:`names_of_labels`) ``label_<name>`` and
        ``prediction_<name>`` (0/1), then every ``logit_<name>``."""
        predictions = self.predict(outputs)
        if self.kind != "multilabel":
            columns = {"label": np.asarray(labels), "prediction": predictions}
            if self.kind == "classification":
                columns.update({f"logit_{k}": outputs[:, k] for k in range(outputs.shape[1])})
            return columns
        names = self.names_of_labels(outputs.shape[1], label_names)
        labels = np.asarray(labels).astype(np.int64)
        return {**{f"label_{n}": labels[:, k] for k, n in enumerate(names)},
                **{f"prediction_{n}": predictions[:, k] for k, n in enumerate(names)},
                **{f"logit_{n}": outputs[:, k] for k, n in enumerate(names)}}

    def result_columns(self, columns) -> tuple[str | list[str], str | list[str]]:
        """The label and the prediction column(s) of a ``predictions.csv`` whose columns are ``columns``:
        ``("label", "prediction")`` (read as ``[N]`` arrays), or for a multi-label task the lists of every label's
        ``label_<name>`` and ``prediction_<name>``, in the file's order (read as ``[N, K]`` arrays). Raises
        ValueError (one line) when a column is missing."""
        columns = list(map(str, columns))
        if self.kind != "multilabel":
            labels, predictions = ["label"], ["prediction"]
        else:
            labels = [c for c in columns if c.startswith("label_")] or ["label_<name>"]
            predictions = [f"prediction_{c.removeprefix('label_')}" for c in labels]
        missing = [c for c in [*labels, *predictions] if c not in columns]
        if missing:
            raise ValueError(f"predictions of task {self.name!r} lack the column {missing[0]!r}; columns: "
                             f"{', '.join(columns)}")
        return (labels, predictions) if self.kind == "multilabel" else (labels[0], predictions[0])

    def vectors(self, labels, predictions) -> tuple[np.ndarray, np.ndarray]:
        """``labels`` and ``predictions`` as the metrics read them: ``[N]`` each (float64 for regression), or for a
        multi-label task int64 0/1 ``[N, K]`` each. Raises ValueError when they differ in shape or are empty, a
        regression prediction is not finite, or a multi-label array is not ``[N, K]`` of 0 and 1."""
        if self.kind == "multilabel":
            y, p = np.asarray(labels), np.asarray(predictions)
            if y.shape != p.shape or y.ndim != 2 or y.size == 0:
                raise ValueError(f"expected equal, non-empty [N, K] label and prediction arrays, got {y.shape} and "
                                 f"{p.shape}")
            if not (np.isin(y, (0, 1)).all() and np.isin(p, (0, 1)).all()):
                raise ValueError("multi-label labels and predictions must be 0 (absent) or 1 (present)")
            return y.astype(np.int64), p.astype(np.int64)
        y, p = np.asarray(labels).reshape(-1), np.asarray(predictions).reshape(-1)
        if y.shape != p.shape or y.size == 0:
            raise ValueError(f"expected equal, non-empty label and prediction vectors, got {y.shape} and {p.shape}")
        if self.kind == "regression":
            y, p = y.astype(np.float64), p.astype(np.float64)
            if not np.isfinite(p).all():
                raise ValueError(f"{int((~np.isfinite(p)).sum())} predictions are not finite")
        return y, p

    def score(self, labels, predictions) -> dict[str, float]:
        """Every metric of the task, ``{name: value}`` in order, from ``labels`` and ``predictions`` (both ``[N]``,
        or ``[N, K]`` for a multi-label task; see :class:`Metric` and :meth:`vectors`, whose errors it raises)."""
        y, p = self.vectors(labels, predictions)
        return {name: metric(name).compute(y, p) for name in self.metrics}

    def sample_scores(self, name: str, labels, predictions) -> np.ndarray:
        """Metric ``name``'s per-sample scores ``[n_kept]`` (:attr:`Metric.per_sample`): booleans for an
        accuracy, floats for an error. Raises ValueError as :meth:`vectors`, or when ``name`` has no per-sample
        form."""
        per_sample = metric(name).per_sample
        if per_sample is None:
            raise ValueError(f"metric {name!r} is not a mean over samples: it has no per-sample scores")
        return per_sample(*self.vectors(labels, predictions))

    def evaluate(self, labels: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
        """:meth:`score` of the predictions of raw ``outputs`` (``[N]`` or ``[N, K]``, as :meth:`outputs`) against
        ``labels`` (``[N]``, or ``[N, K]`` for a multi-label task)."""
        return self.score(labels, self.predict(outputs))


_METRICS: dict[str, Metric] = {}
_TASKS: dict[str, Task] = {}


def register_metric(
    name: str | None = None, *, higher_is_better: bool, unit: str, definition: str, undefined_when: str = "",
    per_sample: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None, tasks: Iterable[str] = (),
) -> Callable[[Callable], Callable]:
    """Decorator for a metric's ``compute(labels, predictions) -> float`` (see :class:`Metric`); ``name``
    defaults to the function's name. ``tasks``: registered tasks the metric is added to, after their metrics
    (so their main metric stays). Returns the function unchanged.

    Raises:
        ValueError: the name is registered with other properties, or a task is unknown.
    """

    def decorate(compute: Callable) -> Callable:
        new = Metric(name or compute.__name__, compute, higher_is_better, unit, definition, undefined_when,
                     per_sample)
        old = _METRICS.get(new.name)
        if old is not None and old != new:
            raise ValueError(f"metric {new.name!r} is already registered ({old.definition})")
        targets = [get_task(task) for task in tasks]  # every name checked before anything is registered
        _METRICS[new.name] = new
        for task in targets:
            if new.name not in task.metrics:
                _TASKS[task.name] = dataclasses.replace(task, metrics=(*task.metrics, new.name))
        return compute

    return decorate


def register_task(task: Task) -> Task:
    """Register ``task`` under ``task.name``; returns it.

    Raises:
        ValueError: the name is taken by another task or reserved (:data:`LEGACY_NAMES`), the kind is unknown,
            a metric is not registered or repeated, ``selection`` is neither ``"loss"`` nor one of its metrics,
            a sample test has no per-sample form, a summary or curve metric is not one of its metrics, or
            ``label_names`` are given to a task that is not multi-label, repeat a name or do not number
            ``num_classes``.
    """
    where = f"task {task.name!r}"
    if task.name in RESERVED_NAMES:
        raise ValueError(f"{where}: the name is reserved, older records use it for {LEGACY_NAMES[task.name]!r}")
    old = _TASKS.get(task.name)
    if old is not None and old != task:
        raise ValueError(f"{where} is already registered ({old.description})")
    if task.kind not in KINDS:
        raise ValueError(f"{where}: kind must be one of {', '.join(KINDS)}, got {task.kind!r}")
    if not task.metrics or len(set(task.metrics)) != len(task.metrics):
        raise ValueError(f"{where}: needs distinct metric names, got {list(task.metrics)}")
    for name in task.metrics:
        metric(name)
    if task.selection != "loss" and task.selection not in task.metrics:
        raise ValueError(f"{where}: selection must be 'loss' or one of its metrics, got {task.selection!r}")
    for name in task.sample_tests:
        if name not in task.metrics or metric(name).per_sample is None:
            raise ValueError(f"{where}: sample test {name!r} must be one of its metrics with a per-sample form")
    extra = [m for m in (*(task.summary_metrics or ()), task.curve_metric) if m is not None and m not in task.metrics]
    if extra:
        raise ValueError(f"{where}: summary and curve metrics must be among its metrics, got {extra}")
    names = task.label_names
    if names is not None and (task.kind != "multilabel" or len(set(names)) != len(names)
                              or task.num_classes != len(names)):
        raise ValueError(f"{where}: label_names belong to a multi-label task, distinct, one per label of its "
                         f"num_classes; got {list(names)} with kind {task.kind!r}, num_classes {task.num_classes}")
    _TASKS[task.name] = task
    return task


def list_tasks() -> list[str]:
    """The registered task names, in registration order."""
    return list(_TASKS)


def get_task(name: str) -> Task:
    """The task registered as ``name``; an unknown name raises ValueError listing the known (and, for a legacy
    name, the task it meant)."""
    try:
        return _TASKS[name]
    except KeyError:
        hint = f" ('{name}' is the old name of '{LEGACY_NAMES[name]}')" if name in LEGACY_NAMES else ""
        raise ValueError(f"unknown task {name!r}{hint}; known tasks: {', '.join(list_tasks())}") from None


def list_metrics() -> list[str]:
    """Every registered metric name, in registration order (sentiment's first)."""
    return list(_METRICS)


def metric(name: str) -> Metric:
    """The metric registered as ``name``; an unknown name raises ValueError listing the known."""
    try:
        return _METRICS[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; known metrics: {', '.join(list_metrics())}") from None


def higher_is_better(name: str) -> bool:
    """The direction of registered metric ``name`` (:attr:`Metric.higher_is_better`); ValueError when unknown."""
    return metric(name).higher_is_better


def same_task(stored: str, current: str) -> bool:
    """Whether a task name read from a stored file (a checkpoint, written by this or an older version) names
    ``current``, the task the data declares now: the same name, or its legacy name (:data:`LEGACY_NAMES`)."""
    return stored == current or LEGACY_NAMES.get(stored) == current


def task_of_columns(columns: Iterable[str]) -> str:
    """The task of a records table that has no ``task`` column (written by an older version), from its column
    names: the registered task with the most of its metrics among the columns, the first registered on a tie
    (old sentiment records: ``sentiment``; old classification records: ``multiclass``).

    Raises:
        ValueError: no column is a registered metric.
    """
    columns = set(map(str, columns))
    counts = {name: len(columns & set(task.metrics)) for name, task in _TASKS.items()}
    best = max(counts, key=counts.get, default=None)
    if best is None or counts[best] == 0:
        examples = " or ".join(task.main_metric for task in _TASKS.values())
        raise ValueError(f"no metric column (e.g. {examples}) among the columns {', '.join(sorted(columns))}")
    return best
