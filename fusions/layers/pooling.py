"""Pooling over the real steps of a masked sequence ``[..., time, dim]`` (real steps first), and the task head."""

from __future__ import annotations

from torch import Tensor, nn

from .dropout import Dropout


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
