"""Tasks and metrics, one home: each task's loss, output size, metrics (direction, unit, definition, when
undefined), model-selection score, predictions and classes. Everything else asks a task (``get_task(name)``) or a
metric (``metric(name)``); a dataset declares its task by name.

Registered on import: ``sentiment`` (MOSI-style, labels in [-3, 3]), ``regression`` (plain), ``multiclass`` and
``binary``; from ``tasks.multilabel``, ``multilabel`` (K labels per sample, each present or absent) and
``emotions`` (CMU-MOSEI's six emotions). A new metric is one ``@register_metric(..., tasks=[...])``; a new task
one ``register_task(Task(...))`` (see ``tasks.registry``). Every other module of this package is imported here
too, after the built-ins, so a new task is one new file in ``tasks/`` that registers it.
"""

# isort: off
from . import sentiment, regression, classification  # noqa: F401  (register the built-ins, in this order)
# isort: on
import importlib as _importlib
import pkgutil as _pkgutil

from .registry import (
    KINDS,
    LEGACY_NAMES,
    Classes,
    Metric,
    Task,
    get_task,
    higher_is_better,
    list_metrics,
    list_tasks,
    metric,
    register_metric,
    register_task,
    same_task,
    task_of_columns,
)
from .scores import NOISE_RTOL, nearly_constant
from .sentiment import acc2_classes

_INFRASTRUCTURE = {"registry", "scores", "sentiment", "regression", "classification"}
for _module in _pkgutil.iter_modules(__path__):
    if _module.name not in _INFRASTRUCTURE:
        _importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "KINDS", "LEGACY_NAMES", "NOISE_RTOL", "Classes", "Metric", "Task", "acc2_classes", "get_task", "higher_is_better",
    "list_metrics", "list_tasks", "metric", "nearly_constant", "register_metric", "register_task", "same_task",
    "task_of_columns",
]
