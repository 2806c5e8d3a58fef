"""Gated Recurrent Fusion (GRF): "Gated Recursive Fusion: A Stateful Approach to Scalable Multimodal
Transformers" (arXiv 2507.02985).

The modalities are fused one after another. Each is projected to ``d_model`` and gets a sinusoidal position
encoding and dropout. The context starts as the first modality's embedded sequence ``[batch, time_0, d_model]``.
Step ``k`` fuses modality ``k`` with its own weights:

* stack A: ``num_layers`` post-norm GELU decoder layers, target = context, memory = modality;
* stack B: the same, target = modality, memory = context (symmetric cross-attention);
* both outputs masked-mean pooled: ``h`` (context side), ``m`` (modality side), ``[batch, d_model]``;
* Gated Fusion Unit: ``z = sigmoid(W_z [h; m] + b_z)``, ``c = tanh(W_c [h; m] + b_c)``,
  ``h' = LayerNorm(Dropout((1 - z) * h + z * c))``;
* the next context is the single token ``h'`` ``[batch, 1, d_model]`` with the position table's first row
  added and dropout (as in the authors' code, github.com/yushi2006/GRF).

The output is the final ``h'``; ``states`` holds ``h'`` after every step (the auxiliary head reads
``states[0]``). With the paper's MOSI settings (d_model 64, dim_feedforward 256, 4 heads, 4 layers) and
feature sizes (300, 5, 20), this fusion with the regression and auxiliary heads has 1,126,530 parameters.

Cost: ``n - 1`` steps, each of fixed size, so parameters and FLOPs grow linearly in ``n``.

Ablation switches (the paper's choice first; ``benchmarks.ablate`` trains each against full GRF):

* ``gate``: ``"gfu"`` | ``"gru"`` (a full GRU cell with a reset gate, input ``m``, hidden ``h``) |
  ``"none"`` (the plain average ``(h + m) / 2``) | ``"linear"`` (``W [h; m] + b``); every variant keeps the
  Dropout and LayerNorm after it, so only the gate changes;
* ``attention``: ``"symmetric"`` | ``"context"`` (stack A only; ``m`` is the masked mean of the projected
  modality) | ``"modality"`` (stack B only; ``h`` is the masked mean of the context);
* ``context``: ``"pooled"`` (the single token ``h'``) | ``"sequence"`` (the full fused sequence is carried
  forward: the unit is applied to every token of stack A's output with ``m`` broadcast, and the state is the
  masked mean of the new context);
* ``share_weights``: False (one block per step) | True (one block, stacks and unit, shared by every step: a
  true recurrent cell whose parameter count does not grow with ``n`` apart from the input projections);
* ``state_position``: True (the carried context gets the position table and the embedding dropout again
  before each later step, as the authors' code does: their step encoder adds positions to whatever state it
  is given, so the single token ``h'`` gets the table's first row) | False (the context is carried bare).

``init``: ``"independent"`` (every decoder layer drawn on its own, PyTorch's initialisers) | ``"reference"``
(the authors' code: ``nn.TransformerDecoder`` deep-copies one layer, so the layers of a stack start identical;
the ``paper`` preset uses it). Stacks, steps and everything else are drawn independently either way.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import Fusion, FusionOutput, transformer_space
from .layers import Dropout, PositionalEncoding, StackedTransformer, masked_mean
from .registry import register_fusion

GATES = ("gfu", "gru", "none", "linear")
ATTENTIONS = ("symmetric", "context", "modality")
CONTEXTS = ("pooled", "sequence")
INITS = ("independent", "reference")


class GatedFusionUnit(nn.Module):
    """The fusion unit ``h' = LayerNorm(Dropout(update(h, m)))``; ``h``, ``m``: ``[..., d]`` -> ``[..., d]``.

    ``update`` by ``kind``: ``"gfu"`` (the paper's) ``(1 - z) * h + z * c`` with ``z = sigmoid(W_z [h; m] + b_z)``,
    ``c = tanh(W_c [h; m] + b_c)`` (``W_z`` and ``W_c`` packed in one ``Linear(2d, 2d)``: output features
    ``[:d]`` are the gate's pre-activations, ``[d:]`` the candidate's); ``"gru"`` a GRU cell (input ``m``,
    hidden ``h``): ``r, u = sigmoid(W_{r,u} m + U_{r,u} h)``, ``c = tanh(W_c m + r * (U_c h))``,
    ``(1 - u) * c + u * h`` (``torch.nn.GRUCell``'s equations); ``"none"`` ``(h + m) / 2``; ``"linear"``
    ``W [h; m] + b``.
    """

    def __init__(self, dim: int, dropout: float, kind: str = "gfu"):
        super().__init__()
        if kind not in GATES:
            raise ValueError(f"gate must be one of {', '.join(GATES)}, got {kind!r}")
        self.kind = kind
        if kind == "gfu":
            self.gates = nn.Linear(2 * dim, 2 * dim)
        elif kind == "gru":
            self.input_gates = nn.Linear(dim, 3 * dim)
            self.hidden_gates = nn.Linear(dim, 3 * dim)
        elif kind == "linear":
            self.mix = nn.Linear(2 * dim, dim)
        self.dropout = Dropout(dropout)
        self.norm = nn.LayerNorm(dim)

    def update(self, h: Tensor, m: Tensor) -> Tensor:
        if self.kind == "gfu":
            z_pre, c_pre = self.gates(torch.cat([h, m], dim=-1)).chunk(2, dim=-1)
            z = torch.sigmoid(z_pre)
            return (1 - z) * h + z * torch.tanh(c_pre)
        if self.kind == "gru":
            i_r, i_u, i_c = self.input_gates(m).chunk(3, dim=-1)
            h_r, h_u, h_c = self.hidden_gates(h).chunk(3, dim=-1)
            reset, keep = torch.sigmoid(i_r + h_r), torch.sigmoid(i_u + h_u)
            return (1 - keep) * torch.tanh(i_c + reset * h_c) + keep * h
        if self.kind == "linear":
            return self.mix(torch.cat([h, m], dim=-1))
        return (h + m) / 2

    def forward(self, h: Tensor, m: Tensor) -> Tensor:
        return self.norm(self.dropout(self.update(h, m)))

    def flops(self, tokens: int) -> int:
        """Matrix-product FLOPs for ``tokens`` applications (multiply-add = 2)."""
        d = self.norm.normalized_shape[0]
        per_token = {"gfu": 2 * (2 * d) * (2 * d), "gru": 2 * 2 * d * (3 * d), "linear": 2 * (2 * d) * d, "none": 0}
        return tokens * per_token[self.kind]


@register_fusion("grf")
class GatedRecurrentFusion(Fusion):
    """Gated Recurrent Fusion (see the module docstring).

    ``order``: the order in which modalities are fused, a permutation of ``range(n)`` (default: as given;
    the first one seeds the context). ``aux_weight``: weight of the auxiliary loss on the state after the
    first step (paper: 0.4; 0 builds no auxiliary head). ``gate``, ``attention``, ``context``,
    ``share_weights``, ``state_position``: the ablation switches of the module docstring (defaults: the
    authors' GRF). ``init``: ``"independent"`` or ``"reference"`` (see the module docstring). A value out of
    range raises ``ValueError`` naming the hyperparameter and what it accepts.
    """

    def __init__(
        self, dims: list[int], *, d_model: int = 64, num_heads: int = 4, num_layers: int = 4,
        dim_feedforward: int = 256, dropout: float = 0.2, order: list[int] | None = None,
        aux_weight: float = 0.4, gate: str = "gfu", attention: str = "symmetric", context: str = "pooled",
        share_weights: bool = False, state_position: bool = True, init: str = "independent",
    ):
        super().__init__(dims)
        n = len(dims)
        order = list(range(n)) if order is None else [int(i) for i in order]
        if sorted(order) != list(range(n)):
            raise ValueError(f"order must be a permutation of 0..{n - 1}, got {order}")
        if aux_weight < 0:
            raise ValueError(f"aux_weight must be >= 0, got {aux_weight}")
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {', '.join(ATTENTIONS)}, got {attention!r}")
        if context not in CONTEXTS:
            raise ValueError(f"context must be one of {', '.join(CONTEXTS)}, got {context!r}")
        if init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
        for key, value in (("share_weights", share_weights), ("state_position", state_position)):
            if not isinstance(value, bool):
                raise ValueError(f"{key} must be true or false, got {value!r}")
        self.order, self.aux_weight, self.out_dim = order, float(aux_weight), d_model
        self.attention, self.context, self.state_position = attention, context, state_position
        self.projections = nn.ModuleList(nn.Linear(dim, d_model) for dim in dims)
        self.position = PositionalEncoding(d_model)
        self.embed_dropout = Dropout(dropout)
        # One block per step after the first (or one shared block): stacks A (index 0) and B (index 1) when
        # symmetric, else the one kept; and the fusion unit.
        blocks = 1 if share_weights else n - 1
        stacks = 2 if attention == "symmetric" else 1
        self.steps = nn.ModuleList(
            StackedTransformer(
                stacks, num_layers, d_model, num_heads, dim_feedforward, dropout, kind="decoder", norm_first=False,
            )
            for _ in range(blocks)
        )
        self.gates = nn.ModuleList(GatedFusionUnit(d_model, dropout, gate) for _ in range(blocks))
        if init == "reference":  # nn.TransformerDecoder's deep copies: every layer of a stack starts as its first
            with torch.no_grad():
                for stacks in self.steps:
                    for layer in stacks.layers[1:]:
                        layer.load_state_dict(stacks.layers[0].state_dict())

    def embed(self, x: Tensor, modality: int) -> Tensor:
        """``[batch, time, dim_i]`` -> ``[batch, time, d_model]``: projection, positions, dropout."""
        return self.position_and_drop(self.projections[modality](x))

    def position_and_drop(self, x: Tensor) -> Tensor:
        """``[batch, time, d_model]`` plus the position table's first ``time`` rows, then dropout."""
        return self.embed_dropout(self.position(x))

    def _block(self, step: int) -> int:
        return 0 if len(self.steps) == 1 else step

    def analytic_flops(self, seq_lens: list[int]) -> int:
        """Forward matrix-product FLOPs per sample (multiply-add = 2): the projections ``2 L_i dim_i d``; per step
        stack A (target: the context, memory: the modality) and/or stack B (the reverse), the context being the
        first modality's sequence at step 1 (every step with ``context="sequence"``) and one token after; the
        fusion unit on each context token. Linear in ``n`` for fixed lengths."""
        total = sum(2 * length * dim * self.out_dim for length, dim in zip(seq_lens, self.dims))
        context = seq_lens[self.order[0]]
        for step, modality in enumerate(self.order[1:]):
            stacks, length = self.steps[self._block(step)], seq_lens[modality]
            if self.attention != "modality":
                total += stacks.flops(context, length)
            if self.attention != "context":
                total += stacks.flops(length, context)
            total += self.gates[self._block(step)].flops(context if self.context == "sequence" else 1)
            context = context if self.context == "sequence" else 1
        return total

    def _attend(self, block: int, context: Tensor, context_mask: Tensor, x: Tensor, mask: Tensor):
        """The step's cross-attention: the context side ``[B, Lc, d]`` and the modality side ``[B, Lm, d]``
        (each the input itself when its stack is switched off)."""
        stacks = self.steps[block]
        if self.attention == "symmetric":
            return stacks([context, x], [context_mask, mask], [x, context], [mask, context_mask])
        if self.attention == "context":
            return stacks([context], [context_mask], [x], [mask])[0], x
        return context, stacks([x], [mask], [context], [context_mask])[0]

    def fuse(self, xs: list[Tensor], masks: list[Tensor]) -> FusionOutput:
        first = self.order[0]
        context, context_mask = self.embed(xs[first], first), masks[first]
        states = []
        for step, modality in enumerate(self.order[1:]):
            if step and self.state_position:  # the carried context, positioned and dropped out as the authors do
                context = self.position_and_drop(context)
            block = self._block(step)
            x, mask = self.embed(xs[modality], modality), masks[modality]
            side_a, side_b = self._attend(block, context, context_mask, x, mask)
            m = masked_mean(side_b, mask)
            if self.context == "sequence":
                context = self.gates[block](side_a, m.unsqueeze(1).expand_as(side_a))
                states.append(masked_mean(context, context_mask))
            else:
                states.append(self.gates[block](masked_mean(side_a, context_mask), m))
                context = states[-1].unsqueeze(1)
                context_mask = torch.ones_like(mask[:, :1])
        return FusionOutput(fused=states[-1], states=states)

    @classmethod
    def search_space(cls, trial, modality_names: list[str]) -> dict:
        """Around the paper's MOSI settings (d_model 64, 4 heads, 4 layers, feed-forward 256, dropout 0.2,
        aux_weight 0.4): d_model 32-128 with a feed-forward 1-4x as wide, 1-4 layers per stack, 1-8 heads (each
        divides every d_model), dropout 0-0.3, the auxiliary weight 0-1, and the modality order: any
        permutation of the names, as ``"text>vision>audio"`` (up to 6 modalities, 720 orders; with more the
        order is not searched)."""
        from itertools import permutations

        hparams = transformer_space(trial, [32, 64, 128], [1, 2, 4, 8], max_layers=4)
        hparams["aux_weight"] = trial.suggest_float("aux_weight", 0.0, 1.0)
        if len(modality_names) <= 6:
            orders = [">".join(order) for order in permutations(modality_names)]
            hparams["order"] = trial.suggest_categorical("order", orders).split(">")
        return hparams
