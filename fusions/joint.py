"""Joint-token transformer (early fusion over tokens): one transformer encoder over all modalities' tokens.

Each modality is projected to ``d_model`` (``Linear(dim_i, d_model)``), gets sinusoidal positions counted
within its own modality (0, 1, ... per modality) and a learned modality embedding (one ``d_model`` vector per
modality, added to each of its tokens), then all ``sum_i time_i`` tokens are concatenated into one sequence
``[batch, sum_i time_i, d_model]`` and encoded by ``num_layers`` post-norm GELU layers (the suite's encoder
layer, as in ``late``) with a key padding mask, so padding tokens, wherever they sit in the concatenation, are
never attended to. The output is the masked mean over all real tokens. Attention is quadratic in the total
number of tokens: the single-stream early-fusion transformer many would pick.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import Fusion, FusionOutput, transformer_space
from .layers import PositionalEncoding, StackedTransformer, masked_mean
from .registry import register_fusion


@register_fusion("joint")
class JointTransformer(Fusion):
    """Joint-token transformer (see the module docstring). Output ``[batch, d_model]``.

    Defaults follow GRF's MOSI widths (``d_model`` 64, ``num_heads`` 4, ``num_layers`` 4,
    ``dim_feedforward`` 256) with the suite's baseline ``dropout`` 0.1.
    """

    def __init__(
        self, dims: list[int], *, d_model: int = 64, num_heads: int = 4, num_layers: int = 4,
        dim_feedforward: int = 256, dropout: float = 0.1,
    ):
        super().__init__(dims)
        if num_layers < 1:
            raise ValueError(f"joint needs num_layers >= 1, got {num_layers}")
        self.out_dim = d_model
        self.projections = nn.ModuleList(nn.Linear(dim, d_model) for dim in dims)
        self.position = PositionalEncoding(d_model)
        self.modality_embedding = nn.Embedding(len(dims), d_model)
        self.embed_dropout = nn.Dropout(dropout)
        self.encoder = StackedTransformer(
            1, num_layers, d_model, num_heads, dim_feedforward, dropout, kind="encoder", norm_first=False,
        )

    def tokens(self, xs: list[Tensor]) -> Tensor:
        """The joint sequence before dropout: ``[batch, sum_i time_i, d_model]``, modality 0's tokens first."""
        embeddings = self.modality_embedding.weight
        return torch.cat([self.position(proj(x)) + e for proj, x, e in zip(self.projections, xs, embeddings)], dim=1)

    def fuse(self, xs: list[Tensor], masks: list[Tensor]) -> FusionOutput:
        mask = torch.cat(masks, dim=1)
        (encoded,) = self.encoder([self.embed_dropout(self.tokens(xs))], [mask])
        fused = masked_mean(encoded, mask)
        return FusionOutput(fused=fused, states=[fused])

    def analytic_flops(self, seq_lens: list[int]) -> int:
        """Projections, then per layer: QKV, scores and weighted sum over all ``N = sum_i time_i`` tokens, output
        projection, feed-forward."""
        d, f = self.out_dim, self.encoder.layers[0].ff_in.weight.shape[-1]
        total = sum(seq_lens)
        projections = sum(2 * steps * dim * d for steps, dim in zip(seq_lens, self.dims))
        layer = 2 * total * d * 3 * d + 2 * 2 * total * total * d + 2 * total * d * d + 2 * 2 * total * d * f
        return projections + len(self.encoder.layers) * layer

    @classmethod
    def search_space(cls, trial, modality_names: list[str]) -> dict:
        """One encoder over all tokens at GRF's scale: d_model 32-128 with 1-8 heads (each divides every
        d_model), 1-4 layers, feed-forward 1-4x, dropout 0-0.3."""
        return transformer_space(trial, [32, 64, 128], [1, 2, 4, 8], max_layers=4)
