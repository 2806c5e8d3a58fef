"""Tensor Fusion Network: Zadeh et al., "Tensor Fusion Network for Multimodal Sentiment Analysis", EMNLP 2017.

Each modality goes through its own embedding subnetwork to a vector ``h_i`` of width ``d_i``; the fused
representation is the outer product ``[1; h_1] ⊗ [1; h_2] ⊗ ... ⊗ [1; h_n]`` (the prepended 1 keeps every
unimodal and lower-order term), flattened to ``prod(d_i + 1)`` features (the first modality's index slowest),
then the post-fusion network ``Dropout -> Linear(P, dim_feedforward) -> ReLU -> Linear(dim_feedforward,
dim_feedforward) -> ReLU -> Linear(dim_feedforward, num_outputs)``. This is how the LMF authors' TFN code
builds it (github.com/Justin1904/TensorFusionNetworks, ``model.py``, class ``TFN``), so the fusion owns its
output layer (``decision_level``: the predictor puts no head on top).

Output bound: that code's output is ``sigmoid(y) * 6 - 3``, bounded to MOSI's label range [-3, 3]. Here a
regression output is bounded the same way to the task's label range ``(low, high)``: ``sigmoid(y) * (high - low)
+ low`` (``label_range``, which ``build_predictor`` passes from the task: MOSI sentiment's [-3, 3], the authors'
bound; a task without a label range, e.g. plain regression, stays unbounded). ``bound_output = False`` switches it
off. Classification (``num_outputs >= 2``: the suite's regression tasks have one output, its classification tasks
at least two logits) always gets unbounded logits.

Embedding subnetworks (``subnetwork``, one kind for all or one per modality):

- ``"lstm"`` (the default): the authors' ``TextSubNet``: ``LSTM(dim_i, lstm_hidden)`` over the real steps only
  (its hidden state after each sample's last real step), Dropout, ``Linear(lstm_hidden, d_i)``.
- ``"mean"``: the authors' ``SubNet`` on the time average: the mean over the real steps, ``BatchNorm1d(dim_i)``,
  Dropout, then three ``Linear -> ReLU`` layers of width ``d_i``. The authors' TFN and LMF code average audio and
  vision over time before the model and give them this subnetwork; text gets the LSTM.

The default gives every modality the LSTM subnetwork at one width (``d_model`` 32), since with ``n`` generic
modalities which one is language is not known. ``subnetwork``, ``d_model`` and ``subnet_dropout`` may be lists,
one value per modality (a preset gives them by modality name). The ``paper`` preset sets MOSI's subnetworks and
sizes as that repository's ``train.py`` builds them: text LSTM 128 into 64, audio 4, vision 16, post-fusion 32,
every dropout 0.3. The TFN paper's table differs: language 128, audio and visual 32 (a fused tensor of
129 * 33 * 33), two post-fusion layers of 128; the defaults keep its widths 32 and 128.

Size cap: the fused tensor has ``P = prod(d_i + 1)`` entries per sample and the first post-fusion layer
``P * dim_feedforward`` weights, exponential in ``n``. Building refuses ``P > max_tensor_size`` (default ``2 ** 20``,
about 7x the TFN paper's 129 * 33 * 33 = 140,481 on MOSI) with a ``ValueError`` naming ``n``, ``P`` and the cap;
``TensorFusion.max_modalities`` gives the largest ``n`` that fits.

FLOPs: ``FlopCounterMode`` has no formula for the fused LSTM kernels (``aten.mkldnn_rnn_layer`` on CPU, used
when all lengths in a batch are equal; ``aten._cudnn_rnn`` on CUDA) and counts only the per-step ``addmm``
calls of CPU batches with unequal lengths. ``analytic_flops`` counts the LSTM in every case.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from .base import Fusion, FusionOutput
from .layers import Dropout, masked_mean
from .registry import register_fusion

DEFAULT_MAX_TENSOR_SIZE = 2**20
SUBNETWORKS = ("lstm", "mean")


def per_modality(value, n: int, name: str, fusion: str) -> list:
    """``value`` once per modality: a list or tuple of ``n`` values as given, any other value repeated ``n``
    times. A list of another length raises ``ValueError`` naming the hyperparameter and ``n``."""
    if isinstance(value, dict):
        raise ValueError(f"{fusion}: {name} {value} is given by modality name; the fusion takes a list in modality "
                         "order (a run's configuration converts names)")
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{fusion}: {name} gives {len(value)} values {list(value)}; expected one per modality "
                             f"({n}) or a single value for all")
        return list(value)
    return [value] * n


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


class LSTMSubnetwork(nn.Module):
    """The authors' ``TextSubNet``: ``LSTM(dim, hidden)`` over the real steps, the hidden state after each sample's
    last real step, Dropout, ``Linear(hidden, width)``.

    ``forward(x [batch, time, dim], mask [batch, time]) -> [batch, width]``. Padding is never read: the LSTM
    runs on a packed sequence, or on ``x`` as it is when every step of the batch is real.
    """

    def __init__(self, dim: int, hidden: int, width: int, dropout: float):
        super().__init__()
        self.lstm = nn.LSTM(dim, hidden, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, width)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        if bool(mask[:, -1].all()):  # real steps come first: every sample is full length
            _, (state, _) = self.lstm(x)
        else:
            packed = pack_padded_sequence(x, mask.sum(1).cpu(), batch_first=True, enforce_sorted=False)
            _, (state, _) = self.lstm(packed)
        return self.out(self.dropout(state[-1]))

    def analytic_flops(self, steps: int) -> int:
        """Per sample: 4 gates x (input + recurrent) products per real step, then the output layer."""
        h = self.lstm.hidden_size
        return 2 * 4 * h * (self.lstm.input_size + h) * steps + 2 * h * self.out.out_features


class MeanSubnetwork(nn.Module):
    """The authors' ``SubNet`` on the time average: the mean over the real steps, ``BatchNorm1d(dim)``, Dropout,
    three ``Linear -> ReLU`` layers of ``width``.

    ``forward(x [batch, time, dim], mask [batch, time]) -> [batch, width]``; a modality of one step per sample
    (stored as one vector, as the authors' data stores audio and vision) is read as it is. A training batch of
    one sample (the last batch of an epoch can be one) has no batch statistics: it is normalised with the running
    ones, which it leaves unchanged (the authors' code would stop with an error there).
    """

    def __init__(self, dim: int, width: int, dropout: float):
        super().__init__()
        self.norm = nn.BatchNorm1d(dim)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList([nn.Linear(dim, width), nn.Linear(width, width), nn.Linear(width, width)])

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        mean = x[:, 0] if x.shape[1] == 1 else masked_mean(x, mask)  # a first step is always real
        if self.training and x.shape[0] == 1:
            norm = self.norm
            normed = F.batch_norm(mean, norm.running_mean, norm.running_var, norm.weight, norm.bias, False, 0.0,
                                  norm.eps)
        else:
            normed = self.norm(mean)
        y = self.dropout(normed)
        for layer in self.layers:
            y = F.relu(layer(y))
        return y

    def analytic_flops(self, steps: int) -> int:
        """Per sample: the three layers (the mean and the normalisation are elementwise, not counted)."""
        return sum(2 * layer.in_features * layer.out_features for layer in self.layers)


class Subnetworks(nn.Module):
    """One embedding subnetwork per modality (see the module docstring): ``kinds[i]`` (``"lstm"`` or ``"mean"``)
    of output width ``widths[i]``, dropout ``dropouts[i]``; LSTMs of ``lstm_hidden`` units (None: the modality's
    width). ``forward(xs, masks) -> list of n tensors [batch, widths[i]]``."""

    def __init__(self, dims: list[int], kinds: list[str], widths: list[int], lstm_hidden: int | None,
                 dropouts: list[float], fusion: str):
        super().__init__()
        for kind in kinds:
            if kind not in SUBNETWORKS:
                raise ValueError(f"{fusion}: unknown subnetwork {kind!r}; expected one of {', '.join(SUBNETWORKS)}")
        if not all(_positive_int(w) for w in widths) or not (lstm_hidden is None or _positive_int(lstm_hidden)):
            raise ValueError(f"{fusion} needs d_model >= 1 and lstm_hidden >= 1, got d_model={widths}, "
                             f"lstm_hidden={lstm_hidden}")
        if not all(isinstance(p, (int, float)) and not isinstance(p, bool) and 0 <= p < 1 for p in dropouts):
            raise ValueError(f"{fusion}: every subnetwork dropout must lie in [0, 1), got {dropouts}")
        self.nets = nn.ModuleList(
            LSTMSubnetwork(dim, lstm_hidden or width, width, p) if kind == "lstm" else MeanSubnetwork(dim, width, p)
            for dim, kind, width, p in zip(dims, kinds, widths, dropouts)
        )

    def forward(self, xs: list[Tensor], masks: list[Tensor]) -> list[Tensor]:
        return [net(x, mask) for net, x, mask in zip(self.nets, xs, masks)]

    def analytic_flops(self, seq_lens: Sequence[int]) -> int:
        return sum(net.analytic_flops(steps) for net, steps in zip(self.nets, seq_lens))


def build_subnetworks(
    dims: list[int], fusion: str, d_model, subnetwork, lstm_hidden: int | None, dropout: float, subnet_dropout,
) -> Subnetworks:
    """The ``Subnetworks`` of TFN and LMF from their hyperparameters (each per modality or one for all;
    ``subnet_dropout`` None: ``dropout``). Bad values raise ``ValueError`` naming the hyperparameter."""
    n = len(dims)
    widths = per_modality(d_model, n, "d_model", fusion)
    kinds = per_modality(subnetwork, n, "subnetwork", fusion)
    dropouts = per_modality(dropout if subnet_dropout is None else subnet_dropout, n, "subnet_dropout", fusion)
    return Subnetworks(dims, kinds, widths, lstm_hidden, dropouts, fusion)


def tensor_product(hs: list[Tensor]) -> Tensor:
    """TFN's fusion: the flattened outer product of ``[1; h_i]``. ``hs``: n tensors ``[batch, d_i]`` ->
    ``[batch, prod(d_i + 1)]``, ordered as ``torch.einsum('bi,bj,...->bij...')`` flattened (last index fastest),
    entry 0 of each factor the constant 1 (as the authors' code)."""
    fused = None
    for h in hs:
        h = torch.cat([h.new_ones(h.shape[0], 1), h], dim=1)
        fused = h if fused is None else (fused.unsqueeze(2) * h.unsqueeze(1)).flatten(1)
    return fused


@register_fusion("tfn")
class TensorFusion(Fusion):
    """Tensor Fusion Network (see the module docstring). Output ``[batch, num_outputs]``: the prediction
    (regression: bounded to ``label_range``; classification: logits); ``states``: the post-fusion
    representation ``[batch, dim_feedforward]``.

    Defaults: ``d_model`` 32 (the TFN paper's audio/visual subnetwork width, for every modality), LSTM subnetworks
    of ``d_model`` units, ``dim_feedforward`` 128 (the paper's post-fusion width), ``dropout`` 0.1 (post-fusion,
    and every subnetwork's unless ``subnet_dropout``), ``bound_output`` True (to ``label_range``, the authors'
    code on MOSI), cap ``2 ** 20``. Raises ``ValueError`` for a ``label_range`` that is not ``(low, high)`` with
    ``low < high``.
    """

    decision_level = True

    def __init__(
        self, dims: list[int], *, d_model: int | list[int] = 32, subnetwork: str | list[str] = "lstm",
        lstm_hidden: int | None = None, dim_feedforward: int = 128, dropout: float = 0.1,
        subnet_dropout: float | list[float] | None = None, bound_output: bool = True,
        label_range: Sequence[float] | None = None, num_outputs: int = 1,
        max_tensor_size: int = DEFAULT_MAX_TENSOR_SIZE,
    ):
        super().__init__(dims)
        if dim_feedforward < 1 or num_outputs < 1:
            raise ValueError(f"tfn needs dim_feedforward >= 1 and num_outputs >= 1, got {dim_feedforward}, "
                             f"{num_outputs}")
        if label_range is not None and not (len(label_range) == 2 and float(label_range[0]) < float(label_range[1])):
            raise ValueError(f"tfn: label_range must be (low, high) with low < high, got {label_range}")
        n = len(dims)
        self.subnetworks = build_subnetworks(self.dims, "tfn", d_model, subnetwork, lstm_hidden, dropout,
                                             subnet_dropout)
        widths = per_modality(d_model, n, "d_model", "tfn")
        size = math.prod(w + 1 for w in widths)
        if size > max_tensor_size:
            fit = self.max_modalities(d_model=d_model, max_tensor_size=max_tensor_size)
            raise ValueError(
                f"tfn: n={n} modalities with d_model={d_model} give a fused tensor of prod(d_model + 1) = {size:,} "
                f"entries, over the cap max_tensor_size={max_tensor_size:,} (at most {fit} modalities fit at this "
                "d_model)"
            )
        self.tensor_size, self.out_dim = size, num_outputs
        bounded = bound_output and num_outputs == 1 and label_range is not None
        self.bounds = (float(label_range[0]), float(label_range[1])) if bounded else None
        self.post_fusion = nn.Sequential(
            Dropout(dropout), nn.Linear(size, dim_feedforward), nn.ReLU(),
            nn.Linear(dim_feedforward, dim_feedforward), nn.ReLU(),
        )
        self.output = nn.Linear(dim_feedforward, num_outputs)

    @classmethod
    def max_modalities(
        cls, *, d_model: int | list[int] = 32, max_tensor_size: int = DEFAULT_MAX_TENSOR_SIZE, **hparams
    ) -> int:
        """The largest ``n`` with ``(d_model + 1) ** n <= max_tensor_size``; for ``d_model`` given per modality (a
        list, or a configuration's table by modality name), its length if that tensor fits, else 0 (it builds for
        no other ``n``)."""
        if isinstance(d_model, (list, tuple, dict)):
            widths = list(d_model.values()) if isinstance(d_model, dict) else d_model
            return len(widths) if math.prod(w + 1 for w in widths) <= max_tensor_size else 0
        n = 0
        while (d_model + 1) ** (n + 1) <= max_tensor_size:
            n += 1
        return n

    def fuse(self, xs: list[Tensor], masks: list[Tensor]) -> FusionOutput:
        hidden = self.post_fusion(tensor_product(self.subnetworks(xs, masks)))
        output = self.output(hidden)
        if self.bounds is not None:
            low, high = self.bounds
            output = torch.sigmoid(output) * (high - low) + low
        return FusionOutput(fused=output, states=[hidden])

    def analytic_flops(self, seq_lens: list[int]) -> int:
        """Subnetworks, then the post-fusion layers; the outer product is elementwise (not counted)."""
        f = self.output.in_features
        return (self.subnetworks.analytic_flops(seq_lens) + 2 * self.tensor_size * f + 2 * f * f
                + 2 * f * self.out_dim)

    @classmethod
    def search_space(cls, trial, modality_names: list[str]) -> dict:
        """Small subnetworks, as the fused tensor grows as ``(d_model + 1) ** n``: d_model among 4, 8, 16 and 32
        where that tensor fits the default cap at this ``n`` (all four at 3 modalities, up to 16 at 4), the
        post-fusion width 32-128 (the authors' code 32, the paper's 128), dropout 0-0.5."""
        n = len(modality_names)
        sizes = [d for d in (4, 8, 16, 32) if (d + 1) ** n <= DEFAULT_MAX_TENSOR_SIZE]
        if not sizes:
            raise ValueError(f"tfn: no d_model >= 4 keeps the fused tensor of {n} modalities under the size cap")
        return {
            "d_model": trial.suggest_categorical("d_model", sizes),
            "dim_feedforward": trial.suggest_categorical("dim_feedforward", [32, 64, 128]),
            "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        }
