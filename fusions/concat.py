"""Concatenation (early) fusion: per-modality projection to ``d_model``, masked-mean pooling over time,
concatenation of the ``n`` vectors, and an MLP ``Linear(n * d, dim_feedforward) -> GELU -> Dropout ->
Linear(dim_feedforward, d_model)``.

The projection is affine, so it commutes with the mean: the code pools the raw features first and projects
the pooled vector (the same function, ``time`` times fewer multiply-adds).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Fusion, FusionOutput
from .layers import Dropout, masked_mean
from .registry import register_fusion


@register_fusion("concat")
class ConcatFusion(Fusion):
    """Concatenation fusion (see the module docstring). Output ``[batch, d_model]``."""

    def __init__(
        self, dims: list[int], *, d_model: int = 64, dim_feedforward: int = 256, dropout: float = 0.1,
    ):
        super().__init__(dims)
        self.out_dim = d_model
        self.projections = nn.ModuleList(nn.Linear(dim, d_model) for dim in dims)
        self.hidden = nn.Linear(len(dims) * d_model, dim_feedforward)
        self.out = nn.Linear(dim_feedforward, d_model)
        self.dropout = Dropout(dropout)

    def analytic_flops(self, seq_lens: list[int]) -> int:
        """Forward matrix-product FLOPs per sample (multiply-add = 2): the projections of the pooled vectors
        ``2 dim_i d`` (independent of the lengths: pooling comes first), then ``2 n d f + 2 f d``."""
        d, hidden = self.out_dim, self.hidden.out_features
        return sum(2 * dim * d for dim in self.dims) + 2 * self.hidden.in_features * hidden + 2 * hidden * d

    def fuse(self, xs: list[Tensor], masks: list[Tensor]) -> FusionOutput:
        pooled = torch.cat([proj(masked_mean(x, m)) for proj, x, m in zip(self.projections, xs, masks)], -1)
        fused = self.out(self.dropout(F.gelu(self.hidden(pooled))))
        return FusionOutput(fused=fused, states=[fused])

    @classmethod
    def search_space(cls, trial, modality_names: list[str]) -> dict:
        """An MLP has no heads or layers to choose: d_model 32-256, a hidden layer 1-4x as wide, dropout 0-0.5."""
        d_model = trial.suggest_categorical("d_model", [32, 64, 128, 256])
        return {
            "d_model": d_model,
            "dim_feedforward": d_model * trial.suggest_categorical("ff_ratio", [1, 2, 4]),
            "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        }
