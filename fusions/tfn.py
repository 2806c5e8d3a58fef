"""Tensor Fusion Network: Zadeh et al., "Tensor Fusion Network for Multimodal Sentiment Analysis", EMNLP 2017.

Each modality goes through its own embedding subnetwork to a vector ``h_i`` of size ``d_model``; the fused
representation is the outer product ``[h_1; 1] ⊗ [h_2; 1] ⊗ ... ⊗ [h_n; 1]`` (the appended 1 keeps every
unimodal and lower-order term), flattened to ``(d_model + 1) ** n`` features, and the paper's post-fusion
network ``Dropout -> Linear(P, dim_feedforward) -> ReLU -> Linear(dim_feedforward, dim_feedforward) -> ReLU``
follows (the paper: two 128-unit ReLU layers; the Predictor's single ``Linear`` is its output layer).

Embedding subnetworks, uniform over modalities: the paper encodes language with an LSTM and averages the
audio and visual features over time before small MLPs. With ``n`` generic modalities (which one is language
is unknown, and every modality is a sequence), every modality gets the language subnetwork as the LMF
authors' code builds it (``TextSubNet``, Justin1904/Low-rank-Multimodal-Fusion): a one-layer LSTM of
``d_model`` units over the real steps only (``pack_padded_sequence``, so padding is never read), its final
hidden state, Dropout and a ``Linear(d_model, d_model)``.

Size cap: the fused tensor has ``P = (d_model + 1) ** n`` entries per sample and the first post-fusion layer
``P * dim_feedforward`` weights, exponential in ``n``. Building refuses ``P > max_tensor_size`` (default
``2 ** 20``, about 7x the paper's 129 * 33 * 33 = 140,481 on MOSI) with a ``ValueError`` naming ``n``, ``P`` and
the cap; ``TensorFusion.max_modalities`` gives the largest ``n`` that fits.

FLOPs: ``FlopCounterMode`` has no formula for the fused LSTM kernels (``aten.mkldnn_rnn_layer`` on CPU, used
when all lengths in a batch are equal; ``aten._cudnn_rnn`` on CUDA) and counts only the per-step ``addmm``
calls of CPU batches with unequal lengths. ``analytic_flops`` counts the LSTM in every case.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from .base import Fusion, FusionOutput
from .layers import StackedLinear
from .registry import register_fusion

DEFAULT_MAX_TENSOR_SIZE = 2**20


class UnimodalLSTMs(nn.Module):
    """One LSTM subnetwork per modality (the LMF authors' ``TextSubNet``): ``LSTM(dim_i, hidden)`` over the
    real steps, final hidden state, Dropout, ``Linear(hidden, hidden)``.

    ``forward(xs, masks)``: ``xs`` n tensors ``[batch, time_i, dim_i]``, masks ``[batch, time_i]`` ->
    ``[n, batch, hidden]``. The n output layers run as one batched stack.
    """

    def __init__(self, dims: list[int], hidden: int, dropout: float):
        super().__init__()
        self.hidden = hidden
        self.lstms = nn.ModuleList(nn.LSTM(dim, hidden, batch_first=True) for dim in dims)
        self.dropout = nn.Dropout(dropout)
        self.out = StackedLinear(len(dims), hidden, hidden)

    def forward(self, xs: list[Tensor], masks: list[Tensor]) -> Tensor:
        finals = []
        for lstm, x, mask in zip(self.lstms, xs, masks):
            packed = pack_padded_sequence(x, mask.sum(1).cpu(), batch_first=True, enforce_sorted=False)
            _, (state, _) = lstm(packed)
            finals.append(state[-1])  # the hidden state after each sample's last real step, in batch order
        return self.out(self.dropout(torch.stack(finals)))

    def analytic_flops(self, dims: list[int], seq_lens: list[int]) -> int:
        """Per sample: 4 gates x (input + recurrent) products per real step, then the output layer."""
        h = self.hidden
        return sum(2 * 4 * h * (dim + h) * steps + 2 * h * h for dim, steps in zip(dims, seq_lens))


def tensor_product(hs: list[Tensor]) -> Tensor:
    """TFN's fusion: the flattened outer product of ``[h_i; 1]``. ``hs``: n tensors ``[batch, d_i]`` ->
    ``[batch, prod(d_i + 1)]``, ordered as ``torch.einsum('bi,bj,...->bij...')`` flattened (last index fastest).
    """
    fused = None
    for h in hs:
        h = torch.cat([h, h.new_ones(h.shape[0], 1)], dim=1)
        fused = h if fused is None else (fused.unsqueeze(2) * h.unsqueeze(1)).flatten(1)
    return fused


@register_fusion("tfn")
class TensorFusion(Fusion):
    """Tensor Fusion Network (see the module docstring). Output ``[batch, dim_feedforward]``.

    Defaults: ``d_model`` 32 (the paper's audio/visual subnetwork width, used for every modality),
    ``dim_feedforward`` 128 (the paper's post-fusion width), ``dropout`` 0.1, ``max_tensor_size`` 2 ** 20.
    """

    head = "linear"

    def __init__(
        self, dims: list[int], *, d_model: int = 32, dim_feedforward: int = 128, dropout: float = 0.1,
        max_tensor_size: int = DEFAULT_MAX_TENSOR_SIZE,
    ):
        super().__init__(dims)
        if d_model < 1 or dim_feedforward < 1:
            raise ValueError(f"tfn needs d_model >= 1 and dim_feedforward >= 1, got {d_model}, {dim_feedforward}")
        n = len(dims)
        size = (d_model + 1) ** n
        if size > max_tensor_size:
            raise ValueError(
                f"tfn: n={n} modalities with d_model={d_model} give a fused tensor of (d_model + 1)^n = {size:,} "
                f"entries, over the cap max_tensor_size={max_tensor_size:,} (at most "
                f"{self.max_modalities(d_model=d_model, max_tensor_size=max_tensor_size)} modalities fit at this "
                "d_model)"
            )
        self.tensor_size, self.out_dim = size, dim_feedforward
        self.subnetworks = UnimodalLSTMs(dims, d_model, dropout)
        self.post_fusion = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(size, dim_feedforward), nn.ReLU(),
            nn.Linear(dim_feedforward, dim_feedforward), nn.ReLU(),
        )

    @classmethod
    def max_modalities(
        cls, *, d_model: int = 32, max_tensor_size: int = DEFAULT_MAX_TENSOR_SIZE, **hparams
    ) -> int:
        """The largest ``n`` with ``(d_model + 1) ** n <= max_tensor_size``."""
        n = 0
        while (d_model + 1) ** (n + 1) <= max_tensor_size:
            n += 1
        return n

    def fuse(self, xs: list[Tensor], masks: list[Tensor]) -> FusionOutput:
        hs = self.subnetworks(xs, masks)
        fused = self.post_fusion(tensor_product(list(hs)))
        return FusionOutput(fused=fused, states=[fused])

    def analytic_flops(self, seq_lens: list[int]) -> int:
        """Subnetworks, then the post-fusion layers; the outer product is elementwise (not counted)."""
        f = self.out_dim
        return self.subnetworks.analytic_flops(self.dims, seq_lens) + 2 * self.tensor_size * f + 2 * f * f

    @classmethod
    def search_space(cls, trial, modality_names: list[str]) -> dict:
        """Small subnetworks, as the fused tensor grows as ``(d_model + 1) ** n``: d_model among 4, 8, 16 and 32
        where that tensor fits the default cap at this ``n`` (all four at 3 modalities, up to 16 at 4), the
        post-fusion width 32-128 (the paper's 128), dropout 0-0.5."""
        n = len(modality_names)
        sizes = [d for d in (4, 8, 16, 32) if (d + 1) ** n <= DEFAULT_MAX_TENSOR_SIZE]
        if not sizes:
            raise ValueError(f"tfn: no d_model >= 4 keeps the fused tensor of {n} modalities under the size cap")
        return {
            "d_model": trial.suggest_categorical("d_model", sizes),
            "dim_feedforward": trial.suggest_categorical("dim_feedforward", [32, 64, 128]),
            "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        }
