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

KINDS = ("regression", "classification")
"""What a task's model outputs: one real value per sample (``"regression"``; float labels), or one logit per
class (``"classification"``; int64 class-index labels). The same words name the head ``fusions.build_predictor``
puts on a fusion."""

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

    ``compute(labels, predictions) -> float``: both ``[N]`` numpy arrays, ``predictions`` as
    :meth:`Task.predict` gives them (label units for regression tasks, class indices for classification);
    NaN where the metric is undefined. ``higher_is_better``: its direction for tables, tests and ranks.
    ``unit``: e.g. ``"fraction"`` (in [0, 1]), ``"label units"``, ``"dimensionless"``. ``definition``: one
    sentence for the documentation. ``undefined_when``: when it is NaN although the cell trained, in words
    (empty: defined for any non-empty test split). ``per_sample(labels, predictions) -> [n_kept]``: the
    per-sample scores whose mean is the metric (booleans for an accuracy, floats for an error), for the
    per-sample tests; None when the metric is not a mean over samples.
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
    * ``kind``: ``"regression"`` or ``"classification"`` (:data:`KINDS`): the output size (1, or the number of
      classes), the labels' type, how outputs become predictions, how predictions are averaged over seeds.
    * ``loss(outputs, labels) -> scalar tensor``: ``outputs`` ``[batch, output size]`` float32, ``labels``
      ``[batch]`` (float32 for regression, int64 for classification); the training objective and
      ``valid_loss``.
    * ``metrics``: ordered registered metric names; the first is the main metric (early stopping's progress,
      ``valid_<main>`` in ``runs.csv``, robustness, single-metric figures; the tables lead with it).
    * ``selection``: ``"loss"`` or one of ``metrics``: the validation score whose best epoch is kept (and that
      tuning minimises); its direction is the metric's (the loss: lower is better).
    * ``num_classes``: the fixed number of classes (binary: 2); None: the dataset's (classification) or none
      (regression).
    * ``label_range``: ``(low, high)`` every label must lie in, or None.
    * ``classes``: :class:`Classes`, or None where a class is undefined (plain regression).
    * ``sample_tests``: the metrics the per-sample tests compare (each has ``per_sample``; boolean scores also
      get McNemar's test).
    * ``summary_metrics``: the metrics of the short terminal table and the per-seed figure (default all).
    * ``curve_metric``: the validation metric drawn beside the losses in the learning curves (default the main
      metric; sentiment draws ``corr`` since its loss is its MAE).
    """

    name: str
    description: str
    kind: Literal["regression", "classification"]
    loss: Callable
    metrics: tuple[str, ...]
    selection: str = "loss"
    num_classes: int | None = None
    label_range: tuple[float, float] | None = None
    classes: Classes | None = None
    sample_tests: tuple[str, ...] = ()
    summary_metrics: tuple[str, ...] | None = None
    curve_metric: str | None = None

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
        frequent class)."""
        return "mean" if self.kind == "regression" else "vote"

    def selection_score(self, metrics: Mapping[str, float], loss: float) -> float:
        """The validation score to minimise (the best epoch has the lowest): the ``selection`` metric's value
        from ``metrics``, or ``loss``; negated when higher is better."""
        value = loss if self.selection == "loss" else metrics[self.selection]
        return -value if self.selection_higher_is_better else value

    def output_size(self, num_classes: int | None) -> int:
        """Outputs per sample: 1 (regression), else the number of classes. Raises ValueError when a
        classification task gets fewer than 2 classes, or another number than its fixed ``num_classes``."""
        if self.kind == "regression":
            return 1
        if num_classes is None or num_classes < 2:
            raise ValueError(f"task {self.name!r} needs num_classes >= 2, got {num_classes}")
        if self.num_classes is not None and num_classes != self.num_classes:
            raise ValueError(f"task {self.name!r} has {self.num_classes} classes, got num_classes={num_classes}")
        return int(num_classes)

    def label_problem(self, labels: np.ndarray, num_classes: int | None) -> str | None:
        """What is wrong with ``labels`` ``[N]`` for this task (None when nothing): non-finite or out-of-range
        regression labels; classification labels that are not int64 class indices in ``0..num_classes-1``."""
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
        """Model outputs ``[N, output size]`` as evaluations keep them: ``[N]`` for regression, ``[N, K]`` logits."""
        return raw[:, 0] if self.kind == "regression" else raw

    def predict(self, outputs: np.ndarray) -> np.ndarray:
        """Predictions ``[N]`` from :meth:`outputs`: the value (regression) or the arg-max class."""
        outputs = np.asarray(outputs)
        return outputs.reshape(-1) if self.kind == "regression" else outputs.argmax(-1)

    def prediction_columns(self, outputs: np.ndarray) -> dict[str, np.ndarray]:
        """The columns of ``predictions.csv`` after ``id`` and ``label``: ``prediction`` (:meth:`predict`) and,
        for classification, every logit ``logit_0..logit_{K-1}``."""
        columns = {"prediction": self.predict(outputs)}
        if self.kind == "classification":
            columns.update({f"logit_{k}": outputs[:, k] for k in range(outputs.shape[1])})
        return columns

    def vectors(self, labels, predictions) -> tuple[np.ndarray, np.ndarray]:
        """``labels`` and ``predictions`` as the metrics read them: ``[N]`` each, float64 for regression.
        Raises ValueError when they differ in shape or are empty, or a regression prediction is not finite."""
        y, p = np.asarray(labels).reshape(-1), np.asarray(predictions).reshape(-1)
        if y.shape != p.shape or y.size == 0:
            raise ValueError(f"expected equal, non-empty label and prediction vectors, got {y.shape} and {p.shape}")
        if self.kind == "regression":
            y, p = y.astype(np.float64), p.astype(np.float64)
            if not np.isfinite(p).all():
                raise ValueError(f"{int((~np.isfinite(p)).sum())} predictions are not finite")
        return y, p

    def score(self, labels, predictions) -> dict[str, float]:
        """Every metric of the task, ``{name: value}`` in order, from ``labels`` and ``predictions`` (both
        ``[N]``; see :class:`Metric` and :meth:`vectors`, whose errors it raises)."""
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
        """:meth:`score` of the predictions of raw ``outputs`` (``[N]`` or ``[N, K]``, as :meth:`outputs`)."""
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
            a sample test has no per-sample form, or a summary or curve metric is not one of its metrics.
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
