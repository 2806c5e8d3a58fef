"""Scaled dot-product attention (fused kernel, or a lean math path on CPU with dropout), its boolean masks, and
multi-head attention for ``P`` stacks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .dropout import dropout, keep_mask
from .stacked import StackedLinear, StackIndex


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
