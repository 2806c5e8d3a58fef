"""A task head on any fusion: regression (one output, e.g. MOSI sentiment in [-3, 3]), K-way classification (K
logits) or multi-label classification (one logit per label)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from .base import Fusion
from .layers import mlp_head
from .registry import build_fusion, fusion_class, fusion_hparams

TASKS = ("regression", "classification", "multilabel")
"""The heads, by the kind of task they serve (``tasks.KINDS``): the number of outputs is 1, the number of classes,
or the number of labels."""


@dataclass
class Prediction:
    """``output``: ``[batch, num_outputs]`` (regression: ``[batch, 1]``; classification: logits ``[batch, K]``;
    multi-label: one logit per label ``[batch, K]``).
    ``aux_output``: the auxiliary head's output on ``states[0]`` (same shape) or None.
    ``states``: the fusion's intermediate states (see ``FusionOutput``)."""

    output: Tensor
    aux_output: Tensor | None
    states: list[Tensor]


class Predictor(nn.Module):
    """Fusion + head. The head is the suite's two-layer MLP (``Linear(d, d/2) -> ReLU -> Dropout ->
    Linear(d/2, K)``), a single ``Linear(d, K)`` for fusions whose paper uses one (``Fusion.head``), and none
    for decision-level fusions, which own theirs. A fusion with ``aux_weight > 0`` also gets an auxiliary
    head of the same shape on its first state (GRF's state after the first step)."""

    def __init__(self, fusion: Fusion, num_outputs: int, dropout: float = 0.0):
        super().__init__()
        self.fusion, self.num_outputs = fusion, num_outputs
        if fusion.decision_level:
            if fusion.out_dim != num_outputs:
                raise ValueError(f"decision-level fusion gives {fusion.out_dim} outputs, task needs {num_outputs}")
            self.head = nn.Identity()
        elif fusion.head == "linear":
            self.head = nn.Linear(fusion.out_dim, num_outputs)
        else:
            self.head = mlp_head(fusion.out_dim, num_outputs, dropout)
        self.aux_weight = float(fusion.aux_weight)
        self.aux_head = mlp_head(fusion.out_dim, num_outputs, dropout) if self.aux_weight > 0 else None

    def param_groups(self, lr: float) -> list[dict]:
        """Optimiser parameter groups at base learning rate ``lr``: first every other parameter at ``lr``, then each
        group the fusion declares (``Fusion.param_groups``) at ``lr * lr_scale``. Raises ``ValueError`` when a
        declared group holds a parameter twice or one that is not the predictor's, or its ``lr_scale`` is not
        positive."""
        own = {id(p) for p in self.parameters()}
        claimed: set[int] = set()
        scaled = []
        for group in self.fusion.param_groups():
            params, scale = list(group["params"]), group["lr_scale"]
            if not scale > 0 or any(id(p) in claimed or id(p) not in own for p in params):
                raise ValueError(f"{type(self.fusion).__name__}.param_groups: each parameter of the model in at "
                                 f"most one group, lr_scale > 0; got lr_scale={scale}")
            claimed.update(id(p) for p in params)
            scaled.append({"params": params, "lr": lr * scale})
        rest = [p for p in self.parameters() if id(p) not in claimed]
        return [group for group in [{"params": rest, "lr": lr}, *scaled] if group["params"]]

    def forward(self, xs: list[Tensor], masks: list[Tensor]) -> Prediction:
        fused = self.fusion.forward_with_states(xs, masks)
        aux = self.aux_head(fused.states[0]) if self.aux_head is not None else None
        return Prediction(output=self.head(fused.fused), aux_output=aux, states=fused.states)


def build_predictor(
    name: str, dims: list[int], task: str = "regression", num_classes: int | None = None,
    task_label_range: tuple[float, float] | None = None, **hparams,
) -> Predictor:
    """Build fusion ``name`` with ``hparams`` and put the task's head on it.

    ``task``: ``"regression"`` (1 output), ``"classification"`` (``num_classes`` >= 2 outputs) or ``"multilabel"``
    (``num_classes`` >= 1 outputs, one per label). Raises ValueError for another task or too few. The head's dropout
    is the fusion's ``dropout`` hyperparameter (or its default). A decision-level fusion gets ``num_outputs``, and
    where it takes a ``label_range`` (TFN, which bounds its output to it) ``task_label_range``, the task's
    ``(low, high)`` labels (None: unbounded), unless ``hparams`` give one. Every caller that rebuilds a trained
    model passes the task's range, so the model computes what it was trained to.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    least = {"classification": 2, "multilabel": 1}.get(task)
    if least is not None and (num_classes is None or num_classes < least):
        raise ValueError(f"{task} needs num_classes >= {least}, got {num_classes}")
    num_outputs = 1 if task == "regression" else int(num_classes)
    if fusion_class(name).decision_level:
        hparams = {**hparams, "num_outputs": num_outputs}
        if "label_range" in fusion_hparams(name):
            hparams.setdefault("label_range", task_label_range)
    fusion = build_fusion(name, dims, **hparams)
    dropout = {**fusion_hparams(name), **hparams}.get("dropout", 0.0)
    return Predictor(fusion, num_outputs, float(dropout))
