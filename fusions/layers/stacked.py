"""Parameters with a leading stack dimension: ``P`` independent affine maps and LayerNorms run as one batched
computation, and the grouping of stacks whose inputs share a shape.

A ``StackIndex`` selects stacks: None (every stack, in order), a slice (contiguous stacks: a view of the
parameters, whose backward is a cheap copy) or a ``LongTensor`` (a gather).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Stack selector: None (every stack, in order), a slice (contiguous stacks: a view, cheap backward) or a LongTensor.
StackIndex = Tensor | slice | None


def _select(param: Tensor, index: StackIndex) -> Tensor:
    """The stack slices of ``param [P, ...]`` picked by ``index`` (see ``StackIndex``)."""
    if index is None:
        return param
    if isinstance(index, slice):
        return param[index]
    return param.index_select(0, index)


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
