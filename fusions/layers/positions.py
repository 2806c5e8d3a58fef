"""Sinusoidal position encodings (Vaswani et al., 2017)."""

from __future__ import annotations

import math

import torch
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
