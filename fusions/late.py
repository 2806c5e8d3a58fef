"""Late (decision-level) fusion: an independent encoder and prediction head per modality, predictions combined
by learned softmax weights (or a plain mean).

Each modality: ``Linear(dim_i, d_model)``, sinusoidal positions, ``num_layers`` post-norm GELU transformer
encoder layers (the same layer as GRF's), masked-mean pooling, and the suite's two-layer head
``Linear(d, d/2) -> ReLU -> Dropout -> Linear(d/2, num_outputs)``. The ``n`` encoders and heads run as
batched stacks. Output: the combined prediction ``[batch, num_outputs]`` (this fusion owns its heads).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Fusion, FusionOutput, transformer_space
from .layers import Dropout, PositionalEncoding, StackedLinear, StackedTransformer, masked_mean
from .registry import register_fusion


@register_fusion("late")
class LateFusion(Fusion):
    """Late fusion. ``combine``: ``"softmax"`` (learned weights, initialised equal) or ``"mean"``."""

    decision_level = True

    def __init__(
        self, dims: list[int], *, d_model: int = 64, num_heads: int = 4, num_layers: int = 2,
        dim_feedforward: int = 256, dropout: float = 0.1, combine: str = "softmax", num_outputs: int = 1,
    ):
        super().__init__(dims)
        if combine not in ("softmax", "mean"):
            raise ValueError(f"combine must be 'softmax' or 'mean', got {combine!r}")
        n = len(dims)
        self.combine, self.out_dim = combine, num_outputs
        self.projections = nn.ModuleList(nn.Linear(dim, d_model) for dim in dims)
        self.position = PositionalEncoding(d_model)
        self.embed_dropout = Dropout(dropout)
        self.encoders = StackedTransformer(
            n, num_layers, d_model, num_heads, dim_feedforward, dropout, kind="encoder", norm_first=False,
        )
        hidden = max(d_model // 2, 1)
        self.head_hidden = StackedLinear(n, d_model, hidden)
        self.head_out = StackedLinear(n, hidden, num_outputs)
        self.head_dropout = Dropout(dropout)
        self.logits = nn.Parameter(torch.zeros(n)) if combine == "softmax" else None

    def analytic_flops(self, seq_lens: list[int]) -> int:
        """Forward matrix-product FLOPs per sample (multiply-add = 2): projections ``2 L_i dim_i d``, one
        encoder stack per modality, the per-modality heads ``2 d h + 2 h o`` and the softmax-weighted sum of
        the ``n`` predictions ``2 n o``. Linear in ``n``."""
        d = self.head_hidden.weight.shape[1]
        hidden, outputs = self.head_out.weight.shape[1:]
        total = sum(2 * length * dim * d + self.encoders.flops(length) for length, dim in zip(seq_lens, self.dims))
        total += self.n_modalities * (2 * d * hidden + 2 * hidden * outputs)
        return total + (2 * self.n_modalities * outputs if self.logits is not None else 0)

    def fuse(self, xs: list[Tensor], masks: list[Tensor]) -> FusionOutput:
        embedded = [self.embed_dropout(self.position(proj(x))) for proj, x in zip(self.projections, xs)]
        encoded = self.encoders(embedded, masks)
        pooled = torch.stack([masked_mean(h, mask) for h, mask in zip(encoded, masks)])  # [n, batch, d]
        predictions = self.head_out(self.head_dropout(F.relu(self.head_hidden(pooled))))  # [n, batch, out]
        if self.logits is None:
            fused = predictions.mean(0)
        else:
            fused = torch.einsum("n,nbo->bo", torch.softmax(self.logits, 0), predictions)
        return FusionOutput(fused=fused, states=[pooled.transpose(0, 1).flatten(1)])

    @classmethod
    def search_space(cls, trial, modality_names: list[str]) -> dict:
        """Per-modality encoders at GRF's scale: d_model 32-128 with 1-8 heads (each divides every d_model), 1-4
        layers, feed-forward 1-4x, dropout 0-0.3."""
        return transformer_space(trial, [32, 64, 128], [1, 2, 4, 8], max_layers=4)
