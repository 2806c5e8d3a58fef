"""Low-rank Multimodal Fusion: Liu et al., "Efficient Low-rank Multimodal Fusion with Modality-Specific
Factors", ACL 2018.

TFN's fused representation is ``h = W · Z + b`` with ``Z = ⊗_i [1; h_i]``; LMF factorises the weight tensor as
``W = sum_r w_r ⊗_i W_i^(r)`` and never forms ``Z``:

    h = sum_r w_r * prod_i ([1; h_i] W_i^(r)) + b

(elementwise product over modalities), so cost and parameters are linear in ``n``. Structure as the authors'
code builds it (Justin1904/Low-rank-Multimodal-Fusion, ``model.py``): per modality a factor of shape
``[rank, d_i + 1, out]`` applied to ``[1; h_i]`` (the 1 first), ``fusion_weights [1, rank]``,
``fusion_bias [1, out]``, factors and fusion weights Xavier-normal initialised, the bias zero. Here the ``n``
factors are one parameter ``[n, rank, d_model + 1, out]`` so all modalities run as one batched product.

The authors' code makes ``out`` the task's output size and uses ``h`` as the prediction; the paper calls ``h``
the multimodal representation used for the prediction. Here ``h`` is a ``d_model``-wide representation and the
Predictor's single ``Linear`` maps it to the task. The unimodal subnetworks are TFN's (``UnimodalLSTMs``, see
``fusions.tfn``), as the paper compares LMF and TFN with the same subnetworks.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import Fusion, FusionOutput
from .registry import register_fusion
from .tfn import UnimodalLSTMs


class LowRankFusion(nn.Module):
    """``h = sum_r w_r * prod_i ([1; h_i] W_i^(r)) + b``: ``hs [n, batch, in_dim]`` -> ``[batch, out_dim]``."""

    def __init__(self, n: int, in_dim: int, out_dim: int, rank: int):
        super().__init__()
        self.factors = nn.Parameter(torch.empty(n, rank, in_dim + 1, out_dim))
        self.fusion_weights = nn.Parameter(torch.empty(1, rank))
        self.fusion_bias = nn.Parameter(torch.zeros(1, out_dim))
        for factor in self.factors:  # each modality's [rank, in + 1, out] factor, as the authors initialise it
            nn.init.xavier_normal_(factor)
        nn.init.xavier_normal_(self.fusion_weights)

    def forward(self, hs: Tensor) -> Tensor:
        ones = hs.new_ones(*hs.shape[:2], 1)
        per_modality = torch.einsum("nbi,nrio->nrbo", torch.cat([ones, hs], dim=-1), self.factors)
        return torch.einsum("r,rbo->bo", self.fusion_weights[0], per_modality.prod(0)) + self.fusion_bias

    def analytic_flops(self) -> int:
        """Per sample: every modality's factor product, then the weighted sum over ranks."""
        n, rank, in_dim, out_dim = self.factors.shape
        return 2 * n * in_dim * rank * out_dim + 2 * rank * out_dim


@register_fusion("lmf")
class LowRankMultimodalFusion(Fusion):
    """Low-rank Multimodal Fusion (see the module docstring). Output ``[batch, d_model]``.

    Defaults: ``d_model`` 32 (TFN's subnetwork width, also the width of ``h``), ``rank`` 4 (from the authors'
    MOSI grid 1, 4, 8, 16), ``dropout`` 0.1.
    """

    head = "linear"

    def __init__(self, dims: list[int], *, d_model: int = 32, rank: int = 4, dropout: float = 0.1):
        super().__init__(dims)
        if d_model < 1 or rank < 1:
            raise ValueError(f"lmf needs d_model >= 1 and rank >= 1, got d_model={d_model}, rank={rank}")
        self.out_dim = d_model
        self.subnetworks = UnimodalLSTMs(dims, d_model, dropout)
        self.fusion = LowRankFusion(len(dims), d_model, d_model, rank)

    def fuse(self, xs: list[Tensor], masks: list[Tensor]) -> FusionOutput:
        fused = self.fusion(self.subnetworks(xs, masks))
        return FusionOutput(fused=fused, states=[fused])

    def analytic_flops(self, seq_lens: list[int]) -> int:
        return self.subnetworks.analytic_flops(self.dims, seq_lens) + self.fusion.analytic_flops()

    @classmethod
    def search_space(cls, trial, modality_names: list[str]) -> dict:
        """LSTM subnetworks of 16-64 units (TFN's 32 in the middle), the rank from the authors' MOSI grid (1, 4,
        8, 16), dropout 0-0.5; no attention, so no heads or layers."""
        return {
            "d_model": trial.suggest_categorical("d_model", [16, 32, 64]),
            "rank": trial.suggest_categorical("rank", [1, 4, 8, 16]),
            "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        }
