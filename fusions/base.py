"""The interface every fusion implements, and the input checks they share.

A fusion takes ``n >= 2`` modalities, each a padded tensor ``[batch, time_i, dim_i]`` with a boolean mask
``[batch, time_i]`` (True = a real step; real steps first, padding after), and returns ``[batch, out_dim]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn


@dataclass
class FusionOutput:
    """What ``Fusion.fuse`` returns.

    ``fused``: the fused representation ``[batch, out_dim]`` (for a decision-level fusion, the combined
    prediction ``[batch, num_outputs]``).
    ``states``: intermediate representations ``[batch, dim_k]`` for analysis, in order (GRF: the state after
    every fusion step; others: their final pre-head representation).
    """

    fused: Tensor
    states: list[Tensor] = field(default_factory=list)


class Fusion(nn.Module):
    """Base class: subclasses implement ``fuse(xs, masks) -> FusionOutput`` and set ``out_dim``.

    Class attributes a subclass may override:
    ``decision_level``: the fusion's output is the prediction: it owns its output layers (built with
    ``num_outputs``: late fusion's per-modality heads, TFN's and LMF's output layers as their authors' code
    builds them); the predictor adds no head on top. ``head``: the head the predictor puts on top (``"mlp"`` or
    ``"linear"``).
    ``aux_weight`` (instance): weight of the auxiliary loss on ``states[0]``; 0 means no auxiliary head.
    """

    decision_level: bool = False
    head: str = "mlp"

    def __init__(self, dims: list[int]):
        super().__init__()
        dims = [int(d) for d in dims]
        if len(dims) < 2:
            raise ValueError(f"a fusion needs at least 2 modalities, got dims={dims}")
        if any(d < 1 for d in dims):
            raise ValueError(f"every modality needs a positive feature size, got dims={dims}")
        self.dims = dims
        self.out_dim: int = 0
        self.aux_weight: float = 0.0

    @classmethod
    def max_modalities(cls, **hparams) -> int | None:
        """The most modalities this fusion can be built for with ``hparams`` (None: no limit)."""
        return None

    @classmethod
    def search_space(cls, trial, modality_names: list[str]) -> dict:
        """Hyperparameters for one tuning trial (``benchmarks.tune``), drawn with the Optuna ``trial``'s
        ``suggest_*`` methods, for a dataset with these modalities: ``__init__`` keyword arguments, every
        combination of which builds. Each fusion declares its own next to its definition."""
        name = getattr(cls, "registered_name", cls.__name__)
        raise ValueError(f"fusion {name!r} declares no search space; add a search_space classmethod to its class")

    def param_groups(self) -> list[dict]:
        """Parameters that train at their own learning rate: dicts with ``params`` (parameters of this fusion)
        and ``lr_scale`` (the factor on the protocol's learning rate, > 0); parameters in no group train at the
        protocol's rate. ``Predictor.param_groups`` turns them into optimiser groups. Default: none."""
        return []

    @property
    def n_modalities(self) -> int:
        return len(self.dims)

    def fuse(self, xs: list[Tensor], masks: list[Tensor]) -> FusionOutput:
        raise NotImplementedError

    def analytic_flops(self, seq_lens: list[int]) -> int:
        """Forward FLOPs per sample from a closed-form count (one multiply-add = 2 FLOPs) for inputs with
        ``seq_lens[i]`` real steps in modality ``i``; cross-checked against counted FLOPs in the tests."""
        raise NotImplementedError(f"{type(self).__name__} has no analytic FLOP formula")

    def forward_with_states(self, xs: list[Tensor], masks: list[Tensor]) -> FusionOutput:
        """Validate the inputs, then fuse; returns the fused tensor and the intermediate states."""
        self.check_inputs(xs, masks)
        return self.fuse(list(xs), list(masks))

    def forward(self, xs: list[Tensor], masks: list[Tensor]) -> Tensor:
        """``xs``: n tensors ``[batch, time_i, dim_i]``; ``masks``: n bool ``[batch, time_i]``.

        Returns ``[batch, out_dim]``."""
        return self.forward_with_states(xs, masks).fused

    def check_inputs(self, xs: list[Tensor], masks: list[Tensor]) -> None:
        """Raise ``ValueError`` naming the modality and the expected shape when an input does not fit."""
        check_modalities(xs, masks, self.dims)


def check_modalities(xs: list[Tensor], masks: list[Tensor], dims: list[int]) -> None:
    """Shared input check for a list of modalities against the feature sizes ``dims`` they were built for."""
    n = len(dims)
    if not isinstance(xs, (list, tuple)) or not isinstance(masks, (list, tuple)):
        raise ValueError("expected lists of modality tensors and masks, one entry per modality")
    if len(xs) != n:
        raise ValueError(f"expected {n} modalities (built for dims {dims}), got {len(xs)}")
    if len(masks) != n:
        raise ValueError(f"expected {n} masks, one per modality, got {len(masks)}")
    batch = None
    for i, (x, mask) in enumerate(zip(xs, masks)):
        if not isinstance(x, Tensor) or x.dim() != 3:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"modality {i}: expected a tensor [batch, time, {dims[i]}], got {shape}")
        if not x.is_floating_point():
            raise ValueError(f"modality {i}: expected a floating-point tensor, got {x.dtype}")
        if x.shape[-1] != dims[i]:
            raise ValueError(
                f"modality {i}: expected feature size {dims[i]} ([batch, time, {dims[i]}]), got {tuple(x.shape)}"
            )
        if x.shape[0] == 0:
            raise ValueError(f"modality {i}: empty batch ([0, time, {dims[i]}]); expected at least one sample")
        if x.shape[1] == 0:
            raise ValueError(f"modality {i}: zero time steps in {tuple(x.shape)}; expected at least one")
        if batch is None:
            batch = x.shape[0]
        elif x.shape[0] != batch:
            raise ValueError(f"modality {i}: batch size {x.shape[0]} differs from modality 0's {batch}")
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
            kind = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
            raise ValueError(f"mask {i}: expected a bool tensor [batch, time] (True = real step), got {kind}")
        if tuple(mask.shape) != tuple(x.shape[:2]):
            raise ValueError(
                f"mask {i}: expected shape {tuple(x.shape[:2])} to match modality {i} {tuple(x.shape)}, "
                f"got {tuple(mask.shape)}"
            )
    # One device sync for all modalities: every sample's first step must be real.
    starts = torch.stack([mask[:, 0] for mask in masks])
    if not bool(starts.all()):
        i, sample = (~starts).nonzero()[0].tolist()
        raise ValueError(
            f"mask {i}: every sample needs at least one real step, real steps first; sample {sample} starts "
            "with padding"
        )


def transformer_space(trial, widths: list[int], heads: list[int], max_layers: int) -> dict:
    """The searched hyperparameters every transformer-based fusion shares, for ``Fusion.search_space``:
    ``d_model`` from ``widths``, ``num_heads`` from ``heads`` (each must divide every width), ``num_layers``
    1 to ``max_layers``, ``dim_feedforward`` 1, 2 or 4 times ``d_model`` (searched as ``ff_ratio``) and
    ``dropout`` 0 to 0.3."""
    d_model = trial.suggest_categorical("d_model", widths)
    return {
        "d_model": d_model,
        "num_heads": trial.suggest_categorical("num_heads", heads),
        "num_layers": trial.suggest_int("num_layers", 1, max_layers),
        "dim_feedforward": d_model * trial.suggest_categorical("ff_ratio", [1, 2, 4]),
        "dropout": trial.suggest_float("dropout", 0.0, 0.3),
    }
