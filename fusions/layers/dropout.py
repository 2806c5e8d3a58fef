"""Dropout with a fast CPU mask: the same distribution as ``F.dropout`` from a quarter of the random draws."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


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
