"""``lmf`` against its authors' code: github.com/Justin1904/Low-rank-Multimodal-Fusion, ``model.py`` (``LMF``).

The reference is built as that repository's ``train_mosi.py`` builds it (``LMF(dims, (a, v, t), t // 2, (a_drop,
v_drop, t_drop, 0.5), output_dim=1, rank)``) at the setting its ``hyperparams.txt`` gives for sentiment (audio and
video subnetworks of 16 units, a 64-unit text LSTM into 32, dropouts 0.5 / 0.5 / 0.2, rank 4, factor learning
rate 0.003 against 0.001, weight decay 0.002; the file gives no MOSI row, and this setting lies on the MOSI grid of
``train_mosi.py``), at MOSI's feature sizes of this suite (text 300, audio 5, vision 20). Ours is ``lmf`` with the
``paper`` preset's MOSI hyperparameters (so the check also proves that preset): fused straight to the one output.

Inputs as for ``benchmarks.reference.tfn`` (the authors' LMF takes the same ``(audio, video, text)``; their MOSI
pickles store audio and vision as one time-averaged vector per sample). The BatchNorm layers get random affine
weights and running statistics, as there.

Training step (timed, on the ``own`` batch): ``train_mosi.py``'s objective and optimiser for both: L1 loss summed
over the batch; Adam with weight decay 0.002 over two groups, the three modality factors at 0.003 (their
``list(model.parameters())[:3]``) and everything else at 0.001 (ours: ``Predictor.param_groups`` from the fusion's
``factor_lr_scale``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from fusions import build_predictor

from . import StateReader, register_reference
from .tfn import (
    DIMS,
    REFERENCE_NAMES,
    REFERENCE_ORDER,
    AuthorsCheck,
    paper_hparams,
    randomise_batchnorm,
    subnetwork_weights,
)

# train_mosi.py at hyperparams.txt's sentiment row: hidden (audio, video, text), text_out = text // 2, dropouts
# (audio, video, text, post-fusion), output_dim, rank
LMF_ARGS = dict(hidden_dims=(16, 16, 64), text_out=32, dropouts=(0.5, 0.5, 0.2, 0.5), output_dim=1, rank=4)
LR, FACTOR_LR, WEIGHT_DECAY = 1e-3, 3e-3, 2e-3


def map_weights(reference: Mapping[str, Tensor], names: Sequence[str] = REFERENCE_NAMES) -> dict[str, Tensor]:
    """The authors' ``LMF`` state dict as the state dict of our ``lmf`` predictor (fused straight to the output)
    for modalities ``names`` (the authors' name of each of ours, in our order); a pure function (tensors are
    shared or transposed into new ones, never changed).

    ``{name}_subnet`` becomes ``fusion.subnetworks.nets.{i}`` (see ``benchmarks.reference.tfn.subnetwork_weights``),
    ``{name}_factor`` (``[rank, d + 1, out]``) ``fusion.fusion.factors.{i}`` in our layout ``[d + 1, rank * out]``
    (``fusions.lmf.LowRankFusion``); ``fusion_weights`` and
    ``fusion_bias`` keep their names under ``fusion.fusion``. Raises ``ValueError`` naming the key when a key is
    missing or a weight is left unmapped (not the authors' LMF).
    """
    seen = StateReader(reference, "the authors' LMF layout")
    out: dict[str, Tensor] = {}
    for i, name in enumerate(names):
        out.update(subnetwork_weights(seen, f"{name}_subnet.", f"fusion.subnetworks.nets.{i}."))
        out[f"fusion.fusion.factors.{i}"] = seen[f"{name}_factor"].transpose(0, 1).flatten(1)
    for key in ("fusion_weights", "fusion_bias"):
        out[f"fusion.fusion.{key}"] = seen[key]
    seen.check_all_read()
    return out


@register_reference("lmf")
class LMFReference(AuthorsCheck):
    flag, env = "--lmf-repo", "FUSIONBENCH_LMF_REPO"
    url = "https://github.com/Justin1904/Low-rank-Multimodal-Fusion"
    model_file = "model.py"

    def __init__(self, repo):
        super().__init__(repo)
        if not hasattr(self.module, "LMF"):
            raise ValueError(f"{self.flag} {repo}: {self.model_file} defines no LMF; expected a checkout of "
                             f"{self.url}")

    def build(self, seed: int, device: torch.device) -> tuple[nn.Module, nn.Module]:
        torch.manual_seed(seed)
        dims = tuple(DIMS[REFERENCE_NAMES.index(name)] for name in REFERENCE_ORDER)
        reference = self.build_reference("LMF", dims, **LMF_ARGS)
        randomise_batchnorm(reference, seed)
        ours = build_predictor("lmf", DIMS, task="regression", **paper_hparams("lmf"))
        ours.load_state_dict(map_weights(reference.state_dict(), REFERENCE_NAMES))
        return reference.to(device), ours.to(device)

    def optimisers(self, reference: nn.Module, ours: nn.Module):
        parameters = list(reference.parameters())  # train_mosi.py: the first three are the modality factors
        groups = [{"params": parameters[:3], "lr": FACTOR_LR}, {"params": parameters[3:], "lr": LR}]
        return (torch.optim.Adam(groups, weight_decay=WEIGHT_DECAY),
                torch.optim.Adam(ours.param_groups(LR), lr=LR, weight_decay=WEIGHT_DECAY))
