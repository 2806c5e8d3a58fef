"""Shared building blocks: positional encodings, masked pooling, heads and stacked transformer layers.

Shape conventions: a sequence is ``[batch, time, dim]`` with a boolean mask ``[batch, time]`` (True = a
real step). Real steps come first, padding after, so position 0 is always the first real step.

``StackedTransformer`` runs ``P`` independent transformer stacks (same hyperparameters, separate weights)
as one batched computation: every parameter has a leading stack dimension and every matrix product is a
``baddbmm`` over that dimension. Pairwise cross-attention (``n(n-1)`` stacks), the late-fusion encoders
(``n`` stacks) and the two symmetric decoders of a GRF step (2 stacks) all use it, so every fusion gets the
same kernels and none pays Python-loop overhead that another avoids. Stacks whose inputs have different
lengths cannot share one batched call; they are grouped by shape and each group runs batched.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def sinusoidal_table(length: int, dim: int) -> Tensor:
    """Sinusoidal position table ``[length, dim]`` (Vaswani et al., 2017): sin on even, cos on odd features."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * div)
    table[:, 1::2] = torch.cos(position * div[: dim // 2])
    return table


class PositionalEncoding(nn.Module):
    """Adds a sinusoidal position table to ``[batch, time, dim]``; the table is built once and grown on need."""

    def __init__(self, dim: int, max_len: int = 512):
        super().__init__()
        self.dim = dim
        self.register_buffer("table", sinusoidal_table(max_len, dim), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        steps = x.shape[-2]
        if steps > self.table.shape[0]:
            self.table = sinusoidal_table(max(steps, 2 * self.table.shape[0]), self.dim).to(self.table.device)
        return x + self.table[:steps].to(x.dtype)


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean over the real steps: ``x [..., time, dim]``, ``mask [..., time]`` -> ``[..., dim]``."""
    weights = mask.to(x.dtype).unsqueeze(-1)
    return (x * weights).sum(-2) / weights.sum(-2).clamp_min(1.0)


def last_real_step(x: Tensor, mask: Tensor) -> Tensor:
    """The last real step of each sequence (real steps first): ``[..., time, dim]`` -> ``[..., dim]``."""
    last = (mask.sum(-1, keepdim=True) - 1).clamp_min(0)
    index = last.unsqueeze(-1).expand(*last.shape, x.shape[-1])
    return x.gather(-2, index).squeeze(-2)


def pool(x: Tensor, mask: Tensor, how: str) -> Tensor:
    """Pool ``[..., time, dim]`` over real steps by ``how``: ``"mean"`` or ``"last"``."""
    if how == "mean":
        return masked_mean(x, mask)
    if how == "last":
        return last_real_step(x, mask)
    raise ValueError(f"unknown pooling {how!r}: expected 'mean' or 'last'")


def mlp_head(in_dim: int, out_dim: int, dropout: float) -> nn.Sequential:
    """The task head used throughout: ``Linear(in, in // 2) -> ReLU -> Dropout -> Linear(in // 2, out)``."""
    hidden = max(in_dim // 2, 1)
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim))


def _init_linear_(weight: Tensor, bias: Tensor | None) -> None:
    """``nn.Linear``'s default init for each stack slice of ``weight [P, in, out]``: U(-1/sqrt(in), 1/sqrt(in))."""
    bound = 1.0 / math.sqrt(weight.shape[1])
    nn.init.uniform_(weight, -bound, bound)
    if bias is not None:
        nn.init.uniform_(bias, -bound, bound)


def _init_attention_(weight: Tensor) -> None:
    """``nn.MultiheadAttention``'s in-projection init: Xavier uniform over the packed ``[3 * in, in]`` matrix."""
    bound = math.sqrt(6.0 / (4 * weight.shape[1]))
    nn.init.uniform_(weight, -bound, bound)


class StackedLinear(nn.Module):
    """``P`` independent affine maps: ``x [G, ..., in]`` -> ``[G, ..., out]`` for the stacks in ``index``.

    ``index`` (``LongTensor [G]``) picks which of the ``P`` weight sets apply; ``None`` means all, in order.
    """

    def __init__(self, stacks: int, in_dim: int, out_dim: int, bias: bool = True, init: str = "linear"):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(stacks, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(stacks, out_dim)) if bias else None
        if init == "attention":
            _init_attention_(self.weight)
            if self.bias is not None:
                nn.init.zeros_(self.bias)
        elif init == "linear":
            _init_linear_(self.weight, self.bias)
        else:
            raise ValueError(f"unknown init {init!r}")

    def forward(self, x: Tensor, index: Tensor | None = None) -> Tensor:
        weight = self.weight if index is None else self.weight.index_select(0, index)
        shape = x.shape
        flat = x.reshape(shape[0], -1, shape[-1])
        if self.bias is None:
            out = torch.bmm(flat, weight)
        else:
            bias = self.bias if index is None else self.bias.index_select(0, index)
            out = torch.baddbmm(bias.unsqueeze(1), flat, weight)
        return out.reshape(*shape[:-1], weight.shape[-1])


class StackedLayerNorm(nn.Module):
    """``P`` independent LayerNorms over the last dimension of ``x [G, ..., dim]``."""

    def __init__(self, stacks: int, dim: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(stacks, dim))
        self.bias = nn.Parameter(torch.zeros(stacks, dim))
        self.eps = eps

    def forward(self, x: Tensor, index: Tensor | None = None) -> Tensor:
        dim = x.shape[-1]
        if x.shape[0] == 1:  # one stack: the fused kernel with its affine parameters
            weight = self.weight[0] if index is None else self.weight[index[0]]
            bias = self.bias[0] if index is None else self.bias[index[0]]
            return F.layer_norm(x, (dim,), weight, bias, self.eps)
        weight = self.weight if index is None else self.weight.index_select(0, index)
        bias = self.bias if index is None else self.bias.index_select(0, index)
        view = (x.shape[0],) + (1,) * (x.dim() - 2) + (dim,)
        return torch.addcmul(bias.view(view), F.layer_norm(x, (dim,), eps=self.eps), weight.view(view))


def attention_mask(key_mask: Tensor, query_len: int, causal: bool) -> Tensor:
    """Boolean mask for ``scaled_dot_product_attention`` (True = may attend).

    ``key_mask [G, B, Lk]`` -> ``[G * B, 1, 1 or Lq, Lk]``. ``causal`` lets query ``t`` see keys ``<= t``
    (aligned sequences; with different lengths, the MulT convention of its ``buffered_future_mask`` is used:
    the diagonal is offset by ``|Lk - Lq|``).
    """
    groups, batch, key_len = key_mask.shape
    mask = key_mask.reshape(groups * batch, 1, 1, key_len)
    if causal:
        offset = abs(key_len - query_len)
        allowed = torch.ones(query_len, key_len, dtype=torch.bool, device=key_mask.device).tril(offset)
        mask = mask & allowed
    return mask


class StackedAttention(nn.Module):
    """Multi-head attention for ``P`` stacks; self-attention packs Q, K, V in one product (as PyTorch does)."""

    def __init__(self, stacks: int, dim: int, num_heads: int, dropout: float, cross: bool):
        super().__init__()
        self.num_heads, self.dropout, self.cross = num_heads, dropout, cross
        if cross:
            self.q = StackedLinear(stacks, dim, dim, init="attention")
            self.kv = StackedLinear(stacks, dim, 2 * dim, init="attention")
        else:
            self.qkv = StackedLinear(stacks, dim, 3 * dim, init="attention")
        self.out = StackedLinear(stacks, dim, dim)
        nn.init.zeros_(self.out.bias)

    def _heads(self, x: Tensor) -> Tensor:
        groups, batch, steps, dim = x.shape
        return x.reshape(groups * batch, steps, self.num_heads, dim // self.num_heads).transpose(1, 2)

    def forward(
        self, x: Tensor, source: Tensor | None, mask: Tensor, index: Tensor | None
    ) -> Tensor:
        """``x [G, B, Lq, d]``; ``source [G, B, Lk, d]`` (cross) or None (self); ``mask`` from attention_mask."""
        groups, batch, steps, dim = x.shape
        if self.cross:
            q = self.q(x, index)
            k, v = self.kv(source, index).chunk(2, dim=-1)
        else:
            q, k, v = self.qkv(x, index).chunk(3, dim=-1)
        attended = F.scaled_dot_product_attention(
            self._heads(q), self._heads(k), self._heads(v), attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
        )
        attended = attended.transpose(1, 2).reshape(groups, batch, steps, dim)
        return self.out(attended, index)


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
        self.activation = {"gelu": F.gelu, "relu": F.relu}[activation]
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

    def _drop(self, x: Tensor, p: float) -> Tensor:
        return F.dropout(x, p, self.training) if p > 0 else x

    def _feedforward(self, x: Tensor, index: Tensor | None) -> Tensor:
        hidden = self._drop(self.activation(self.ff_in(x, index)), self.ff_dropout)
        return self._drop(self.ff_out(hidden, index), self.dropout)

    def _block(self, x, norm, fn, index):
        if self.norm_first:
            return x + fn(norm(x, index))
        return norm(x + fn(x), index)

    def forward(
        self, x: Tensor, source: Tensor | None, self_mask: Tensor | None, cross_mask: Tensor | None,
        index: Tensor | None,
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


def shape_groups(
    targets: list[Tensor], sources: list[Tensor] | None = None
) -> list[tuple[list[int], Tensor | None]]:
    """Group stack indices whose inputs share a shape (so they can run as one batched call).

    Returns ``(members, index)`` pairs; ``index`` is None when one group holds every stack in order (the
    stacked parameters are then used as they are, without a gather), else a ``LongTensor`` of ``members``.
    """
    groups: dict[tuple, list[int]] = {}
    for p, target in enumerate(targets):
        key = (tuple(target.shape), tuple(sources[p].shape) if sources is not None else None)
        groups.setdefault(key, []).append(p)
    if len(groups) == 1:
        return [(list(range(len(targets))), None)]
    device = targets[0].device
    return [(members, torch.tensor(members, device=device)) for members in groups.values()]


def stacked_apply(module: nn.Module, tensors: list[Tensor]) -> list[Tensor]:
    """Apply a stacked module (``forward(x [G, ...], index)``) to one tensor per stack, batched by shape."""
    outputs: list[Tensor | None] = [None] * len(tensors)
    for members, index in shape_groups(tensors):
        result = module(torch.stack([tensors[p] for p in members]), index)
        for slot, p in enumerate(members):
            outputs[p] = result[slot]
    return outputs


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

    def run_group(
        self, x: Tensor, x_mask: Tensor, source: Tensor | None, source_mask: Tensor | None,
        index: Tensor | None,
    ) -> Tensor:
        """All layers on one group of stacks: ``x [G, B, Lq, d]``, ``x_mask [G, B, Lq]`` -> ``[G, B, Lq, d]``."""
        steps = x.shape[2]
        self_mask = None if self.kind == "cross" else attention_mask(x_mask, steps, self.causal)
        cross_mask = None if self.kind == "encoder" else attention_mask(source_mask, steps, self.causal)
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
