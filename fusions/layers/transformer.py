"""Transformer layers and stacks for ``P`` independent stacks run batched (encoder, decoder and MulT's cross-modal
layer; pre- or post-norm), and their closed-form FLOPs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import StackedAttention, additive_mask, attention_mask
from .dropout import dropout
from .stacked import StackedLayerNorm, StackedLinear, StackIndex, shape_groups


def layer_flops(kind: str, target_len: int, source_len: int | None, dim: int, dim_feedforward: int) -> int:
    """Closed-form matrix-product FLOPs of one transformer layer for one sample (multiply-add = 2 FLOPs).

    With ``T = target_len``, ``S = source_len``, ``d = dim``, ``f = dim_feedforward``: self-attention
    ``8 T d^2 + 4 T^2 d`` (Q, K, V and output projections; scores and weighted sum), cross-attention
    ``4 T d^2 + 4 S d^2 + 4 T S d``, feed-forward ``4 T d f``. Elementwise work (softmax, normalisation,
    activations, dropout, residual adds, biases) is not counted, as ``FlopCounterMode`` does not count it.
    """
    t, d = target_len, dim
    total = 4 * t * d * dim_feedforward
    if kind in ("encoder", "decoder"):
        total += 8 * t * d * d + 4 * t * t * d
    if kind in ("decoder", "cross"):
        if source_len is None:
            raise ValueError(f"a {kind!r} layer needs source_len")
        total += 4 * t * d * d + 4 * source_len * d * d + 4 * t * source_len * d
    return total


def _gelu(x: Tensor) -> Tensor:
    """GELU of a fresh tensor: in place under ``no_grad`` (its backward would need the input), else a copy.
    ReLU is always applied in place (``F.relu_``: its backward needs only its output). Either saves an
    allocation of the layer's widest tensor, the feed-forward hidden ``[G, B, L, dim_feedforward]``."""
    return F.gelu(x) if torch.is_grad_enabled() else torch.ops.aten.gelu_(x)


class StackedLayer(nn.Module):
    """One transformer layer for ``P`` stacks.

    ``kind``: ``"encoder"`` (self-attention, feed-forward), ``"decoder"`` (self-attention, cross-attention,
    feed-forward: ``nn.TransformerDecoderLayer``) or ``"cross"`` (cross-attention, feed-forward: MulT's
    cross-modal layer). ``norm_first`` selects pre-norm (MulT) or post-norm (PyTorch's default).
    ``norm_source``: in pre-norm cross-attention, also normalise the source with the query's LayerNorm
    (MulT applies ``layer_norms[0]`` to query, key and value).
    """

    def __init__(
        self, stacks: int, dim: int, num_heads: int, dim_feedforward: int, dropout: float, kind: str,
        norm_first: bool, activation: str = "gelu", attn_dropout: float | None = None,
        ff_dropout: float | None = None, norm_source: bool = False,
    ):
        super().__init__()
        if kind not in ("encoder", "decoder", "cross"):
            raise ValueError(f"unknown layer kind {kind!r}")
        self.kind, self.norm_first, self.norm_source = kind, norm_first, norm_source
        self.dim, self.dim_feedforward = dim, dim_feedforward
        self.activation = {"gelu": _gelu, "relu": F.relu_}[activation]
        attn_dropout = dropout if attn_dropout is None else attn_dropout
        self.ff_dropout = dropout if ff_dropout is None else ff_dropout
        self.dropout = dropout
        self.self_attn = None if kind == "cross" else StackedAttention(stacks, dim, num_heads, attn_dropout, False)
        self.cross_attn = None if kind == "encoder" else StackedAttention(stacks, dim, num_heads, attn_dropout, True)
        self.norm_self = None if kind == "cross" else StackedLayerNorm(stacks, dim)
        self.norm_cross = None if kind == "encoder" else StackedLayerNorm(stacks, dim)
        self.ff_in = StackedLinear(stacks, dim, dim_feedforward)
        self.ff_out = StackedLinear(stacks, dim_feedforward, dim)
        self.norm_ff = StackedLayerNorm(stacks, dim)

    def flops(self, target_len: int, source_len: int | None = None) -> int:
        """Matrix-product FLOPs of this layer for one stack and one sample (one multiply-add = 2 FLOPs):
        projections, attention scores and weighted sums, feed-forward. ``target_len`` query steps,
        ``source_len`` key/value steps of the cross-attention."""
        return layer_flops(self.kind, target_len, source_len, self.dim, self.dim_feedforward)

    def _drop(self, x: Tensor, p: float) -> Tensor:
        return dropout(x, p, self.training)

    def _feedforward(self, x: Tensor, index: StackIndex) -> Tensor:
        hidden = self._drop(self.activation(self.ff_in(x, index)), self.ff_dropout)
        return self._drop(self.ff_out(hidden, index), self.dropout)

    def _block(self, x, norm, fn, index):
        """Residual sublayer. ``fn`` returns a fresh tensor (a projection, or dropout of one) whose backward
        does not need it, so the residual is added in place."""
        if self.norm_first:
            return fn(norm(x, index)).add_(x)
        return norm(fn(x).add_(x), index)

    def forward(
        self, x: Tensor, source: Tensor | None, self_mask: Tensor | None, cross_mask: Tensor | None,
        index: StackIndex,
    ) -> Tensor:
        if self.self_attn is not None:
            x = self._block(
                x, self.norm_self,
                lambda h: self._drop(self.self_attn(h, None, self_mask, index), self.dropout), index,
            )
        if self.cross_attn is not None:
            if self.norm_first and self.norm_source:
                source = self.norm_cross(source, index)
            x = self._block(
                x, self.norm_cross,
                lambda h: self._drop(self.cross_attn(h, source, cross_mask, index), self.dropout), index,
            )
        return self._block(x, self.norm_ff, lambda h: self._feedforward(h, index), index)


class StackedTransformer(nn.Module):
    """``P`` independent stacks of ``num_layers`` layers, run batched over stacks whose shapes agree.

    ``forward(targets, target_masks, sources, source_masks)`` takes lists of ``P`` tensors
    (``[B, L_p, d]`` and masks ``[B, L_p]``; sources only for ``"decoder"``/``"cross"`` layers) and returns
    the ``P`` outputs ``[B, L_p, d]``. ``final_norm`` adds a LayerNorm after the last layer (MulT's
    ``TransformerEncoder`` has one; PyTorch's ``nn.TransformerDecoder`` used without ``norm`` has none).
    """

    def __init__(
        self, stacks: int, num_layers: int, dim: int, num_heads: int, dim_feedforward: int, dropout: float,
        kind: str, norm_first: bool, final_norm: bool = False, causal: bool = False, **layer_options,
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"d_model {dim} is not divisible by num_heads {num_heads}")
        self.stacks, self.kind, self.causal = stacks, kind, causal
        self.layers = nn.ModuleList(
            StackedLayer(stacks, dim, num_heads, dim_feedforward, dropout, kind, norm_first, **layer_options)
            for _ in range(num_layers)
        )
        self.final_norm = StackedLayerNorm(stacks, dim) if final_norm else None

    def flops(self, target_len: int, source_len: int | None = None) -> int:
        """Matrix-product FLOPs of all layers for one stack and one sample (see ``layer_flops``)."""
        return sum(layer.flops(target_len, source_len) for layer in self.layers)

    def run_group(
        self, x: Tensor, x_mask: Tensor, source: Tensor | None, source_mask: Tensor | None,
        index: StackIndex,
    ) -> Tensor:
        """All layers on one group of stacks: ``x [G, B, Lq, d]``, ``x_mask [G, B, Lq]`` -> ``[G, B, Lq, d]``."""
        steps = x.shape[2]
        self_mask = None if self.kind == "cross" else attention_mask(x_mask, steps, self.causal)
        cross_mask = None if self.kind == "encoder" else attention_mask(source_mask, steps, self.causal)
        return self.run_layers(x, source, self_mask, cross_mask, index)

    def run_layers(
        self, x: Tensor, source: Tensor | None, self_mask: Tensor | None, cross_mask: Tensor | None,
        index: StackIndex,
    ) -> Tensor:
        """All layers and the final norm on one group of stacks, given its boolean attention masks
        (``attention_mask``'s layout, None where a layer has no such attention). Each mask is brought to its
        additive form once (``additive_mask``: None on CPU when it allows everything), not once per layer."""
        self_mask, cross_mask = (additive_mask(mask, x.dtype) for mask in (self_mask, cross_mask))
        for layer in self.layers:
            x = layer(x, source, self_mask, cross_mask, index)
        if self.final_norm is not None:
            x = self.final_norm(x, index)
        return x

    def forward(
        self, targets: list[Tensor], target_masks: list[Tensor],
        sources: list[Tensor] | None = None, source_masks: list[Tensor] | None = None,
    ) -> list[Tensor]:
        if len(targets) != self.stacks:
            raise ValueError(f"expected {self.stacks} target sequences, got {len(targets)}")
        needs_source = self.kind != "encoder"
        outputs: list[Tensor | None] = [None] * self.stacks
        for members, index in shape_groups(targets, sources if needs_source else None):
            x = torch.stack([targets[p] for p in members])
            x_mask = torch.stack([target_masks[p] for p in members])
            source = source_mask = None
            if needs_source:
                source = torch.stack([sources[p] for p in members])
                source_mask = torch.stack([source_masks[p] for p in members])
            result = self.run_group(x, x_mask, source, source_mask, index)
            for slot, p in enumerate(members):
                outputs[p] = result[slot]
        return outputs
