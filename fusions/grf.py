"""Gated Recurrent Fusion (GRF): "Gated Recursive Fusion: A Stateful Approach to Scalable Multimodal
Transformers" (arXiv 2507.02985).

The modalities are fused one after another. Each is projected to ``d_model`` and gets a sinusoidal position
encoding. The context starts as the first modality's projected sequence ``[batch, time_0, d_model]``. Step
``k`` fuses modality ``k`` with its own weights:

* stack A: ``num_layers`` post-norm GELU decoder layers, target = context, memory = modality;
* stack B: the same, target = modality, memory = context (symmetric cross-attention);
* both outputs masked-mean pooled: ``h`` (context side), ``m`` (modality side), ``[batch, d_model]``;
* Gated Fusion Unit: ``z = sigmoid(W_z [h; m] + b_z)``, ``c = tanh(W_c [h; m] + b_c)``,
  ``h' = LayerNorm(Dropout((1 - z) * h + z * c))``;
* the next context is the single token ``h'`` ``[batch, 1, d_model]``.

The output is the final ``h'``; ``states`` holds ``h'`` after every step (the auxiliary head reads
``states[0]``). With the paper's MOSI settings (d_model 64, dim_feedforward 256, 4 heads, 4 layers) and
feature sizes (300, 5, 20), this fusion with the regression and auxiliary heads has 1,126,530 parameters.

Cost: ``n - 1`` steps, each of fixed size, so parameters and FLOPs grow linearly in ``n``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import Fusion, FusionOutput
from .layers import Dropout, PositionalEncoding, StackedTransformer, masked_mean
from .registry import register_fusion


class GatedFusionUnit(nn.Module):
    """``h' = LayerNorm(Dropout((1 - z) * h + z * c))`` with ``z``, ``c`` from ``[h; m]``.

    ``W_z`` and ``W_c`` are packed in one ``Linear(2d, 2d)``: output features ``[:d]`` are the update-gate
    pre-activations, ``[d:]`` the candidate's. ``h``, ``m``: ``[batch, d]`` -> ``[batch, d]``.
    """

    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.gates = nn.Linear(2 * dim, 2 * dim)
        self.dropout = Dropout(dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, h: Tensor, m: Tensor) -> Tensor:
        z_pre, c_pre = self.gates(torch.cat([h, m], dim=-1)).chunk(2, dim=-1)
        z, candidate = torch.sigmoid(z_pre), torch.tanh(c_pre)
        return self.norm(self.dropout((1 - z) * h + z * candidate))


@register_fusion("grf")
class GatedRecurrentFusion(Fusion):
    """Gated Recurrent Fusion (see the module docstring).

    ``order``: the order in which modalities are fused, a permutation of ``range(n)`` (default: as given;
    the first one seeds the context). ``aux_weight``: weight of the auxiliary loss on the state after the
    first step (paper: 0.4; 0 builds no auxiliary head).
    """

    def __init__(
        self, dims: list[int], *, d_model: int = 64, num_heads: int = 4, num_layers: int = 4,
        dim_feedforward: int = 256, dropout: float = 0.2, order: list[int] | None = None,
        aux_weight: float = 0.4,
    ):
        super().__init__(dims)
        n = len(dims)
        order = list(range(n)) if order is None else [int(i) for i in order]
        if sorted(order) != list(range(n)):
            raise ValueError(f"order must be a permutation of 0..{n - 1}, got {order}")
        if aux_weight < 0:
            raise ValueError(f"aux_weight must be >= 0, got {aux_weight}")
        self.order, self.aux_weight, self.out_dim = order, float(aux_weight), d_model
        self.projections = nn.ModuleList(nn.Linear(dim, d_model) for dim in dims)
        self.position = PositionalEncoding(d_model)
        self.embed_dropout = Dropout(dropout)
        # One step per modality after the first; each step holds stacks A (index 0) and B (index 1).
        self.steps = nn.ModuleList(
            StackedTransformer(
                2, num_layers, d_model, num_heads, dim_feedforward, dropout, kind="decoder", norm_first=False,
            )
            for _ in range(n - 1)
        )
        self.gates = nn.ModuleList(GatedFusionUnit(d_model, dropout) for _ in range(n - 1))

    def embed(self, x: Tensor, modality: int) -> Tensor:
        """``[batch, time, dim_i]`` -> ``[batch, time, d_model]``: projection, positions, dropout."""
        return self.embed_dropout(self.position(self.projections[modality](x)))

    def analytic_flops(self, seq_lens: list[int]) -> int:
        """Forward matrix-product FLOPs per sample (multiply-add = 2): the projections ``2 L_i dim_i d``; step 1
        stack A (target ``L_first``, memory ``L_k``) and stack B (the reverse); later steps the same with a
        one-token context; each Gated Fusion Unit ``2 (2d)(2d)``. Linear in ``n`` for fixed lengths."""
        d = self.out_dim
        total = sum(2 * length * dim * d for length, dim in zip(seq_lens, self.dims))
        context = seq_lens[self.order[0]]
        for step, modality in enumerate(self.order[1:]):
            length = seq_lens[modality]
            total += self.steps[step].flops(context, length) + self.steps[step].flops(length, context)
            total += 2 * (2 * d) * (2 * d)
            context = 1
        return total

    def fuse(self, xs: list[Tensor], masks: list[Tensor]) -> FusionOutput:
        first = self.order[0]
        context, context_mask = self.embed(xs[first], first), masks[first]
        states = []
        for step, modality in enumerate(self.order[1:]):
            x, mask = self.embed(xs[modality], modality), masks[modality]
            side_a, side_b = self.steps[step]([context, x], [context_mask, mask], [x, context], [mask, context_mask])
            h, m = masked_mean(side_a, context_mask), masked_mean(side_b, mask)
            state = self.gates[step](h, m)
            states.append(state)
            context = state.unsqueeze(1)
            context_mask = torch.ones_like(mask[:, :1])
        return FusionOutput(fused=states[-1], states=states)
