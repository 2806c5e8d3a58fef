"""Scaled dot-product attention (fused kernel, or a lean math path on CPU with dropout), its boolean masks, and
multi-head attention for ``P`` stacks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .dropout import dropout, keep_mask
from .stacked import StackedLinear, StackIndex


def attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, dropout_p: float) -> Tensor:
    """Scaled dot-product attention. ``q [N, H, Lq, dh]``, ``k``/``v [N, H, Lk, dh]``; ``mask`` broadcastable to
    ``[N, H, Lq, Lk]``: boolean (True = may attend), additive (0 = may attend, ``-inf`` = may not: what
    ``additive_mask`` builds once for all layers) or None (everything allowed) -> ``[N, H, Lq, dh]``.

    ``F.scaled_dot_product_attention`` (its fused CPU kernel, or CUDA's flash / memory-efficient kernels),
    except on CPU with attention dropout: there PyTorch falls back to its math path (Bernoulli dropout, a
    NaN-safe softmax with extra passes); this path computes the same function with ``dropout`` above.
    """
    mask = additive_mask(mask, q.dtype)  # None for a CPU mask allowing everything; q's dtype under autocast
    if dropout_p == 0.0 and k.shape[-2] == 1 and mask is None:
        # One key (GRF's single-token context after step 1): its softmax weight is exactly 1.
        return v.expand(*q.shape[:-1], v.shape[-1])
    if dropout_p == 0.0 or q.device.type != "cpu":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
    return attend_math(q, k, v, mask, dropout_p)


def attend_math(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, dropout_p: float) -> Tensor:
    """``attend`` as plain matrix products (shapes and masks as there): ``softmax(q k^T / sqrt(dh) + bias)``,
    dropout, times ``v``; ``bias`` is the additive form of ``mask``.

    The score tensors ``[N, H, Lq, Lk]`` are the largest of a layer, so passes over them are kept few: the
    softmax scale goes on ``q``, the dropout scale on ``v``, and a mask that allows everything (a batch
    without padding) is not applied. Dropout uses ``keep_mask`` (same draws as ``dropout``)."""
    scores = torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-2, -1))
    bias = additive_mask(mask, scores.dtype)
    if bias is not None:
        scores = scores.add_(bias)  # a vectorised broadcast add, three times faster than masked_fill_
    weights = torch.softmax(scores, dim=-1)
    dropped = keep_mask(weights, dropout_p) if dropout_p > 0 else None
    if dropped is not None:
        keep, scale = dropped
        return torch.matmul(weights * keep, v * scale)
    return torch.matmul(dropout(weights, dropout_p), v)


def additive_mask(mask: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """A mask as ``scaled_dot_product_attention`` applies it: ``0`` where it allows, ``-inf`` where not, in
    ``dtype``; same shape. None stays None, an additive mask is only cast to ``dtype`` (under autocast the
    queries are narrower than the layer input it was built for), and a boolean CPU mask that allows everything
    gives None (checking costs nothing there; on CUDA it would wait for the device).

    Built once per group of stacks for all its layers (``StackedTransformer.run_group``): SDPA converts a
    boolean mask to this form on every call, and without a mask its fused CPU kernel skips reading one. A row
    that allows no key gives NaN rows (softmax over ``-inf`` only); the masks built here (key padding with the
    first step real, causal masks whose first key is always allowed) have none."""
    if mask is None or mask.is_floating_point():
        return None if mask is None else mask.to(dtype)
    if mask.device.type == "cpu" and bool(mask.all()):
        return None
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, float("-inf"))


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
        """``x [G, B, Lq, d]``; ``source [G, B, Lk, d]`` (cross) or None (self); ``mask`` as ``attend`` takes it
        (``[G * B, 1, 1 or Lq, Lk]``, from ``attention_mask``, additive from ``additive_mask``, or None)."""
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
