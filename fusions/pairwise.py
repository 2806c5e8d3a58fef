"""Pairwise cross-modal attention: MulT's architecture (Tsai et al., "Multimodal Transformer for Unaligned
Multimodal Language Sequences", ACL 2019) generalised from 3 to ``n`` modalities, as a baseline built from the
suite's shared parts. ``mult`` is MulT's code itself; this is not (see the list below).

For every ordered pair ``(i, j)``, ``i != j``, a cross-modal stack lets modality ``i`` attend to modality
``j`` (queries from ``i``, keys and values from ``j``): ``n(n-1)`` stacks, quadratic in ``n`` by design.
As in MulT, each stack scales its inputs by ``sqrt(d_model)``, adds sinusoidal positions, applies pre-norm
ReLU layers (the query's LayerNorm also normalises key and value) and a final LayerNorm. For each target
``i`` the ``n - 1`` outputs are concatenated on features and passed through a self-attention ("memory")
stack of ``max(num_layers, 3)`` layers, then pooled (default: the last real step). The targets' vectors are
concatenated and a residual projection ``h + W2 Dropout(ReLU(W1 h))`` follows; the predictor puts the suite's
two-layer head on top.

Memory width: MulT's memory stack for a target is ``(n - 1) * d_model`` wide, the concatenation of its
``n - 1`` cross outputs (``2 * d_model`` at its three modalities). Carried to ``n`` modalities
(``memory="concat"``, as MultiBench generalises MulT, and as the ``paper`` preset uses it), the ``n`` memory
stacks cost ``O(n^3)`` FLOPs and the residual projection ``O(n^4)`` parameters, which is no longer the
quadratic pairwise method the GRF paper compares against. The default, ``memory="project"``, projects the
concatenation linearly to ``memory_dim`` (default ``d_model``, the width of every other stack) before the
memory stack: each target's memory then costs about one cross-modal stack, and the whole fusion
``n(n - 1)`` cross stacks plus ``n`` memory stacks, ``O(n^2)``.

At three modalities ``memory="concat"`` has MulT's stacks, widths and layer counts (the fusion's parameters
are MulT's 1,071,211 less its 181-parameter output layer at MOSI's sizes), but differs from MulT's code
(``mult``) in: no causal masks by default (``causal=True`` adds them); positions are Vaswani's interleaved
sin/cos table from position 0 (MulT: fairseq's half-sin/half-cos table from position 1); one ``dropout``
(default 0.1) for everything (MulT: embedding 0.25 plus 0.25 on the text input, attention 0.1 where text is
the key and 0 for audio and vision, output 0; ReLU and residual 0.1 as here); PyTorch's default init for the
attention output and feed-forward weights (MulT: Xavier-uniform, zero biases); every modality is projected
(MulT skips a modality already ``d_model`` wide); padding is masked; and the suite's two-layer head (16,200
more parameters than MulT's one ``Linear`` at MOSI's sizes).

All stacks run batched (``StackedTransformer``): one call per layer for all pairs whose sequence lengths
agree. Padding masks are applied (so appended padding never changes the output); ``causal=True`` adds
MulT's future masks, their diagonal offset by each sample's real lengths (``mult``'s
``real_length_causal_mask``), so that holds with them too.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .base import Fusion, FusionOutput, transformer_space
from .layers import Dropout, PositionalEncoding, StackedLinear, pool, stacked_apply
from .mult import CausalStacks
from .registry import register_fusion


@register_fusion("pairwise")
class PairwiseCrossAttention(Fusion):
    """Pairwise cross-modal attention (MulT's architecture generalised to n modalities; see the module docstring
    for how it differs from MulT's code).

    ``dim_feedforward`` defaults to ``4 * d_model`` (MulT); the memory stacks use the same ratio.
    ``pool``: ``"last"`` (MulT) or ``"mean"``. ``memory``: ``"project"`` (width ``memory_dim``, default
    ``d_model``) or ``"concat"`` (MulT's ``(n - 1) * d_model``).
    """

    def __init__(
        self, dims: list[int], *, d_model: int = 30, num_heads: int = 5, num_layers: int = 5,
        dim_feedforward: int | None = None, dropout: float = 0.1, memory: str = "project",
        memory_dim: int | None = None, memory_layers: int | None = None, pool: str = "last",
        causal: bool = False,
    ):
        super().__init__(dims)
        n = len(dims)
        if memory not in ("project", "concat"):
            raise ValueError(f"memory must be 'project' or 'concat', got {memory!r}")
        if pool not in ("last", "mean"):
            raise ValueError(f"pool must be 'last' or 'mean', got {pool!r}")
        if memory == "concat" and memory_dim is not None:
            raise ValueError("memory_dim applies to memory='project' only; 'concat' is (n - 1) * d_model wide")
        concat_dim = (n - 1) * d_model
        memory_dim = concat_dim if memory == "concat" else (memory_dim or d_model)
        dim_feedforward = dim_feedforward or 4 * d_model
        memory_layers = memory_layers or max(num_layers, 3)
        self.pool, self.d_model, self.memory_dim = pool, d_model, memory_dim
        self.pairs = [(i, j) for i in range(n) for j in range(n) if j != i]  # target i attends to source j
        self.out_dim = n * memory_dim

        self.projections = nn.ModuleList(nn.Linear(dim, d_model, bias=False) for dim in dims)
        self.position = PositionalEncoding(d_model)
        self.memory_position = PositionalEncoding(memory_dim)
        self.embed_dropout = Dropout(dropout)
        layer = dict(norm_first=True, final_norm=True, causal=causal, activation="relu")
        self.cross = CausalStacks(
            len(self.pairs), num_layers, d_model, num_heads, dim_feedforward, dropout, kind="cross",
            norm_source=True, **layer,
        )
        self.memory_projection = (
            StackedLinear(n, concat_dim, memory_dim, bias=False) if memory_dim != concat_dim else None
        )
        self.memory = CausalStacks(
            n, memory_layers, memory_dim, num_heads, dim_feedforward * memory_dim // d_model, dropout,
            kind="encoder", **layer,
        )
        self.proj1 = nn.Linear(self.out_dim, self.out_dim)
        self.proj2 = nn.Linear(self.out_dim, self.out_dim)
        self.out_dropout = Dropout(dropout)

    def analytic_flops(self, seq_lens: list[int]) -> int:
        """Forward matrix-product FLOPs per sample (multiply-add = 2): projections ``2 L_i dim_i d``; one cross
        stack per ordered pair (target ``L_i``, source ``L_j``); per target the memory projection
        ``2 L_i (n-1) d m`` (when present) and the memory stack of width ``m``; the residual head
        ``2 * 2 (n m)^2``. ``O(n^2)`` with ``memory="project"``, ``O(n^3)`` with ``"concat"``."""
        n, d, m = self.n_modalities, self.d_model, self.memory_dim
        total = sum(2 * length * dim * d for length, dim in zip(seq_lens, self.dims))
        total += sum(self.cross.flops(seq_lens[i], seq_lens[j]) for i, j in self.pairs)
        for length in seq_lens:
            if self.memory_projection is not None:
                total += 2 * length * (n - 1) * d * m
            total += self.memory.flops(length)
        return total + 2 * 2 * self.out_dim * self.out_dim

    def _embed(self, x: Tensor, position: PositionalEncoding) -> Tensor:
        """MulT's stack input: ``sqrt(dim) * x`` plus positions, then dropout. ``[batch, time, dim]``."""
        return self.embed_dropout(position(x * math.sqrt(x.shape[-1])))

    def fuse(self, xs: list[Tensor], masks: list[Tensor]) -> FusionOutput:
        n = self.n_modalities
        embedded = [self._embed(proj(x), self.position) for proj, x in zip(self.projections, xs)]
        crossed = self.cross(
            [embedded[i] for i, _ in self.pairs], [masks[i] for i, _ in self.pairs],
            [embedded[j] for _, j in self.pairs], [masks[j] for _, j in self.pairs],
        )
        per_target = [torch.cat(crossed[i * (n - 1):(i + 1) * (n - 1)], dim=-1) for i in range(n)]
        if self.memory_projection is not None:
            per_target = stacked_apply(self.memory_projection, per_target)
        remembered = self.memory([self._embed(h, self.memory_position) for h in per_target], masks)
        pooled = torch.cat([pool(h, mask, self.pool) for h, mask in zip(remembered, masks)], dim=-1)
        fused = pooled + self.proj2(self.out_dropout(torch.relu(self.proj1(pooled))))
        return FusionOutput(fused=fused, states=[fused])

    @classmethod
    def search_space(cls, trial, modality_names: list[str]) -> dict:
        """At MulT's scale (its code: 30-d per modality, 5 heads, 5 cross-modal layers, feed-forward 4x, dropout
        0.1): d_model 20-60 with 1, 2 or 5 heads (each divides every d_model, and so every memory width),
        1-5 layers (the costly choice: ``n(n - 1)`` cross stacks), feed-forward 1-4x, dropout 0-0.3."""
        return transformer_space(trial, [20, 30, 40, 60], [1, 2, 5], max_layers=5)
