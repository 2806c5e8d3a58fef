"""Shared building blocks: positional encodings, masked pooling, heads and stacked transformer layers.

Shape conventions: a sequence is ``[batch, time, dim]`` with a boolean mask ``[batch, time]`` (True = a
real step). Real steps come first, padding after, so position 0 is always the first real step.

``StackedTransformer`` runs ``P`` independent transformer stacks (same hyperparameters, separate weights)
as one batched computation: every parameter has a leading stack dimension and every matrix product is a
``baddbmm`` over that dimension. Pairwise cross-attention (``n(n-1)`` stacks), the late-fusion encoders
(``n`` stacks) and the two symmetric decoders of a GRF step (2 stacks) all use it, so every fusion gets the
same kernels and none pays Python-loop overhead that another avoids. Stacks whose inputs have different
lengths cannot share one batched call; they are grouped by shape and each group runs batched (consecutive
stacks select their parameters by a slice, a view, rather than a gather whose backward is a slow scatter).

Speed on CPU (profiled on the paper's MOSI settings): attention is ``F.scaled_dot_product_attention`` (its fused
kernel) whenever attention dropout is off; with dropout PyTorch's CPU kernel falls back to a slow math path,
so ``attend_math`` computes the same function with fewer passes over the score tensors. Dropout everywhere is
``dropout`` / ``Dropout``: the same distribution as ``F.dropout`` from a quarter of the random draws.
``layer_flops`` gives each layer's matrix-product FLOPs in closed form for the fusions' ``analytic_flops``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Stack selector: None (every stack, in order), a slice (contiguous stacks: a view, cheap backward) or a LongTensor.
StackIndex = Tensor | slice | None


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """Inverted dropout: zero each element with probability ``p``, scale the others by ``1 / (1 - p)``.

    Same shape as ``x``. ``F.dropout`` on CPU draws one Bernoulli sample per element from the serial Mersenne
    Twister; that was the largest single cost of a training step (a fifth of GRF's). On CPU the keep mask comes
    from ``keep_mask``; other devices (CUDA's fused kernel), non-float tensors and ``p`` outside
    ``[2**-16, 1)`` use ``F.dropout``.
    """
    if not training or p == 0.0:
        return x
    mask = keep_mask(x, p)
    if mask is None:
        return F.dropout(x, p, True)
    keep, scale = mask
    return x * keep.mul_(scale)


def keep_mask(x: Tensor, p: float) -> tuple[Tensor, float] | None:
    """A float 0/1 dropout mask shaped like ``x`` (CPU) and the scale ``1 / (1 - p)``; None where ``dropout``
    falls back to ``F.dropout``.

    16 random bits per element, four elements per 64-bit draw of the default (seeded) generator, so runs stay
    reproducible under ``torch.manual_seed``. ``p`` is rounded to a multiple of ``2**-16`` (error at most
    ``7.7e-6``) and the scale uses the rounded ``p``, so the expectation is exactly kept. The comparison writes
    the float mask in one pass (multiplying by a float mask vectorises; by a bool one it does not).
    """
    threshold = round(p * 65536)
    if x.device.type != "cpu" or not x.is_floating_point() or not 0 < threshold < 65536:
        return None
    numel = x.numel()
    bits = torch.empty((numel + 3) // 4, dtype=torch.int64, device=x.device).random_(-(2**63), None)
    keep = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    torch.ge(bits.view(torch.int16)[:numel].view(x.shape), threshold - 32768, out=keep)  # P = 1 - thr / 2**16
    return keep, 65536 / (65536 - threshold)


class Dropout(nn.Module):
    """``nn.Dropout`` with the fast CPU mask of ``dropout``; no parameters, so state dicts are unchanged."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _select(param: Tensor, index: StackIndex) -> Tensor:
    """The stack slices of ``param [P, ...]`` picked by ``index`` (see ``StackIndex``)."""
    if index is None:
        return param
    if isinstance(index, slice):
        return param[index]
    return param.index_select(0, index)


def attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, dropout_p: float) -> Tensor:
    """Scaled dot-product attention. ``q [N, H, Lq, dh]``, ``k``/``v [N, H, Lk, dh]``, boolean ``mask``
    broadcastable to ``[N, H, Lq, Lk]`` (True = may attend) -> ``[N, H, Lq, dh]``.

    ``F.scaled_dot_product_attention`` (its fused CPU kernel, or CUDA's flash / memory-efficient kernels),
    except on CPU with attention dropout: there PyTorch falls back to its math path (Bernoulli dropout, a
    NaN-safe softmax with extra passes); this path computes the same function with ``dropout`` above.
    """
    if dropout_p == 0.0 and k.shape[-2] == 1 and (mask is None or (q.device.type == "cpu" and bool(mask.all()))):
        # One key (GRF's single-token context after step 1): its softmax weight is exactly 1.
        return v.expand(*q.shape[:-1], v.shape[-1])
    if dropout_p == 0.0 or q.device.type != "cpu":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
    return attend_math(q, k, v, mask, dropout_p)


def attend_math(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, dropout_p: float) -> Tensor:
    """``attend`` as plain matrix products (shapes as there): ``softmax(q k^T / sqrt(dh) + bias)``, dropout,
    times ``v``; ``bias`` is 0 where ``mask`` allows and ``-inf`` elsewhere.

    The score tensors ``[N, H, Lq, Lk]`` are the largest of a layer, so passes over them are kept few: the
    softmax scale goes on ``q``, the dropout scale on ``v``, and a mask that allows everything (a batch
    without padding) is not applied. Dropout uses ``keep_mask`` (same draws as ``dropout``)."""
    scores = torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-2, -1))
    if mask is not None and not bool(mask.all()):  # a CPU-only path: the check costs no device sync
        bias = torch.zeros(mask.shape, dtype=scores.dtype, device=mask.device).masked_fill_(~mask, float("-inf"))
        scores = scores.add_(bias)  # a vectorised broadcast add, three times faster than masked_fill_
    weights = torch.softmax(scores, dim=-1)
    dropped = keep_mask(weights, dropout_p) if dropout_p > 0 else None
    if dropped is not None:
        keep, scale = dropped
        return torch.matmul(weights * keep, v * scale)
    return torch.matmul(dropout(weights, dropout_p), v)


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
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), Dropout(dropout), nn.Linear(hidden, out_dim))


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

    ``index`` (a ``StackIndex``: ``None`` = all in order, a slice, or ``LongTensor [G]``) picks which of the
    ``P`` weight sets apply.
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

    def forward(self, x: Tensor, index: StackIndex = None) -> Tensor:
        weight = _select(self.weight, index)
        shape = x.shape
        flat = x.reshape(shape[0], -1, shape[-1])
        if self.bias is None:
            out = torch.bmm(flat, weight)
        else:
            out = torch.baddbmm(_select(self.bias, index).unsqueeze(1), flat, weight)
        return out.reshape(*shape[:-1], weight.shape[-1])


class StackedLayerNorm(nn.Module):
    """``P`` independent LayerNorms over the last dimension of ``x [G, ..., dim]``."""

    def __init__(self, stacks: int, dim: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(stacks, dim))
        self.bias = nn.Parameter(torch.zeros(stacks, dim))
        self.eps = eps

    def forward(self, x: Tensor, index: StackIndex = None) -> Tensor:
        dim = x.shape[-1]
        weight, bias = _select(self.weight, index), _select(self.bias, index)
        if x.shape[0] == 1:  # one stack: the fused kernel with its affine parameters
            return F.layer_norm(x, (dim,), weight[0], bias[0], self.eps)
        view = (x.shape[0],) + (1,) * (x.dim() - 2) + (dim,)
        normed = F.layer_norm(x, (dim,), eps=self.eps)
        if not torch.is_grad_enabled():  # inference: the affine step in place, no second allocation
            return normed.mul_(weight.view(view)).add_(bias.view(view))
        return torch.addcmul(bias.view(view), normed, weight.view(view))


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
        self, x: Tensor, source: Tensor | None, mask: Tensor, index: StackIndex
    ) -> Tensor:
        """``x [G, B, Lq, d]``; ``source [G, B, Lk, d]`` (cross) or None (self); ``mask`` from attention_mask."""
        groups, batch, steps, dim = x.shape
        if self.cross:
            q = self.q(x, index)
            k, v = self.kv(source, index).chunk(2, dim=-1)
        else:
            q, k, v = self.qkv(x, index).chunk(3, dim=-1)
        attended = attend(
            self._heads(q), self._heads(k), self._heads(v), mask, self.dropout if self.training else 0.0
        )
        attended = attended.transpose(1, 2).reshape(groups, batch, steps, dim)
        return self.out(attended, index)


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


def shape_groups(
    targets: list[Tensor], sources: list[Tensor] | None = None
) -> list[tuple[list[int], StackIndex]]:
    """Group stack indices whose inputs share a shape (so they can run as one batched call).

    Returns ``(members, index)`` pairs, ``index`` a ``StackIndex``: None when one group holds every stack in
    order (the stacked parameters are used as they are), a slice when the members are consecutive (a view of
    the parameters, whose backward is a cheap copy), else a ``LongTensor`` of ``members`` (a gather).
    """
    groups: dict[tuple, list[int]] = {}
    for p, target in enumerate(targets):
        key = (tuple(target.shape), tuple(sources[p].shape) if sources is not None else None)
        groups.setdefault(key, []).append(p)
    if len(groups) == 1:
        return [(list(range(len(targets))), None)]
    device = targets[0].device
    return [
        (members, slice(members[0], members[-1] + 1) if members[-1] - members[0] == len(members) - 1
         else torch.tensor(members, device=device))
        for members in groups.values()
    ]


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
