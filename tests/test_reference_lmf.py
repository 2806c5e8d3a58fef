"""``benchmarks.reference`` for LMF: the weight mapping from the authors' ``LMF`` state dict (checked without their
code, against PyTorch's own layers keyed as their model keys them and their forward written out), the ``paper``
preset's MOSI settings, the factor learning rate as the trainer's optimiser receives it, and, with
``FUSIONBENCH_LMF_REPO`` pointing to a checkout of github.com/Justin1904/Low-rank-Multimodal-Fusion, the
end-to-end agreement and the command."""

from __future__ import annotations

import os

import pandas as pd
import pytest
import torch
from torch import nn

from benchmarks.cli import run_cli
from benchmarks.config import resolve
from benchmarks.data import make_synthetic
from benchmarks.reference import GOAL, REFERENCES
from benchmarks.reference import lmf as lmf_reference
from benchmarks.reference import tfn as tfn_reference
from benchmarks.reference.__main__ import main, max_differences
from benchmarks.train import train_cell
from fusions import build_predictor
from tests.conftest import random_modalities
from tests.test_reference_tfn import NAMES, module, randomise, subnet, text_subnet

DIMS = [7, 3, 5]
WIDTHS = {"audio": 2, "video": 3, "text": 4}
LSTM_HIDDEN, RANK, OUT = 6, 3, 2
LMF_REPO = os.environ.get("FUSIONBENCH_LMF_REPO")
needs_checkout = pytest.mark.skipif(not LMF_REPO, reason="needs FUSIONBENCH_LMF_REPO: a checkout of "
                                                         "github.com/Justin1904/Low-rank-Multimodal-Fusion")


def authors_layout(seed: int = 0) -> nn.Module:
    """Random weights keyed as the authors' ``LMF`` keys its state dict, built from PyTorch's own layers."""
    dims = dict(zip(NAMES, DIMS))
    model = module(
        audio_subnet=subnet(dims["audio"], WIDTHS["audio"]), video_subnet=subnet(dims["video"], WIDTHS["video"]),
        text_subnet=text_subnet(dims["text"], LSTM_HIDDEN, WIDTHS["text"]), post_fusion_dropout=nn.Dropout(0.0),
    )
    for name in ("audio", "video", "text"):
        model.register_parameter(f"{name}_factor", nn.Parameter(torch.empty(RANK, WIDTHS[name] + 1, OUT)))
    model.fusion_weights = nn.Parameter(torch.empty(1, RANK))
    model.fusion_bias = nn.Parameter(torch.empty(1, OUT))
    return randomise(model, seed)


def authors_forward(model: nn.Module, audio: torch.Tensor, video: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """The authors' ``LMF.forward`` written out: subnetworks, each ``[1; h]`` times its factor, the product over
    modalities, weighted over the rank, plus the bias."""

    def mlp(net, x):
        for layer in (net.linear_1, net.linear_2, net.linear_3):
            x = torch.relu(layer(x))
        return x

    _, (state, _) = model.text_subnet.rnn(text)
    hs = {"audio": mlp(model.audio_subnet, model.audio_subnet.norm(audio)),
          "video": mlp(model.video_subnet, model.video_subnet.norm(video)),
          "text": model.text_subnet.linear_1(state[0])}
    product = 1
    for name, h in hs.items():
        product = product * torch.matmul(torch.cat([torch.ones(h.shape[0], 1), h], dim=1), model.get_parameter(
            f"{name}_factor"))
    return torch.matmul(model.fusion_weights, product.permute(1, 0, 2)).squeeze(1) + model.fusion_bias


def ours_from(reference: nn.Module) -> nn.Module:
    ours = build_predictor("lmf", DIMS, task="classification", num_classes=OUT, subnetwork=["lstm", "mean", "mean"],
                           d_model=[WIDTHS[n] for n in NAMES], lstm_hidden=LSTM_HIDDEN, rank=RANK, dropout=0.0)
    ours.load_state_dict(lmf_reference.map_weights(reference.state_dict(), NAMES))  # strict: every key, shape
    return ours.eval()


def test_mapped_lmf_computes_the_authors_forward_on_full_and_padded_inputs():
    reference = authors_layout()
    ours = ours_from(reference)
    xs, masks = random_modalities(DIMS, [6, 5, 7], batch=4, seed=1)
    full = [torch.ones_like(mask) for mask in masks]
    with torch.no_grad():
        expected = authors_forward(reference, xs[1].mean(1), xs[2].mean(1), xs[0])
        torch.testing.assert_close(ours(xs, full).output, expected, atol=1e-5, rtol=1e-5)
        cut = [[x[b:b + 1, mask[b]] for x, mask in zip(xs, masks)] for b in range(4)]
        expected = torch.cat([authors_forward(reference, a.mean(1), v.mean(1), t) for t, a, v in cut])
        torch.testing.assert_close(ours(xs, masks).output, expected, atol=1e-5, rtol=1e-5)
    assert expected.std() > 0.1  # the outputs spread, so a misplaced weight shows


def test_mapping_refuses_a_state_dict_of_another_layout():
    state = authors_layout().state_dict()
    with pytest.raises(ValueError, match="has no 'video_factor'"):
        lmf_reference.map_weights({k: v for k, v in state.items() if k != "video_factor"}, NAMES)
    with pytest.raises(ValueError, match="left unmapped: post_fusion_layer_1.weight"):
        lmf_reference.map_weights({**state, "post_fusion_layer_1.weight": torch.zeros(2, 3)}, NAMES)


def test_paper_preset_is_the_authors_sentiment_setting_on_mosi():
    """The preset's MOSI ``lmf`` is ``LMF(dims, (16, 16, 64), 32, (0.5, 0.5, 0.2, 0.5), 1, 4)`` with the factors at
    3x the learning rate: its parameter count is the authors' layer sizes summed."""
    hparams = tfn_reference.paper_hparams("lmf")
    assert hparams == dict(rank=4, factor_lr_scale=3.0, dropout=0.2, subnetwork=["lstm", "mean", "mean"],
                           d_model=[32, 16, 16], lstm_hidden=64, subnet_dropout=[0.2, 0.5, 0.5])
    predictor = build_predictor("lmf", tfn_reference.DIMS, **hparams)

    def linear(i, o):
        return i * o + o

    audio = 2 * 5 + linear(5, 16) + 2 * linear(16, 16)
    video = 2 * 20 + linear(20, 16) + 2 * linear(16, 16)
    text = 4 * 64 * (300 + 64) + 8 * 64 + linear(64, 32)
    fusion = 4 * (17 + 17 + 33) * 1 + 4 + 1
    assert sum(p.numel() for p in predictor.parameters()) == audio + video + text + fusion == 97_619
    base, factors = predictor.param_groups(lmf_reference.LR)
    assert factors["lr"] == pytest.approx(lmf_reference.FACTOR_LR) and base["lr"] == lmf_reference.LR


def test_trainer_optimiser_trains_the_factors_at_their_rate(monkeypatch):
    """``benchmarks.train``'s optimiser takes the fusion's groups: the factors start at ``factor_lr_scale`` times
    the protocol's rate (before the warm-up factor), everything else at the rate."""
    built = []

    class Recorded(torch.optim.AdamW):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(self)

    monkeypatch.setattr(torch.optim, "AdamW", Recorded)
    config = {"protocol": {"max_epochs": 1, "warmup_epochs": 0, "batch_size": 16, "lr": 2e-3},
              "fusions": {"lmf": {"d_model": 4, "rank": 2, "factor_lr_scale": 3.0}}}
    cell = resolve(config, "lmf", {"name": "synthetic", "path": None, "options": {}})
    train_cell(cell, make_synthetic(sizes=(32, 16, 16), seq_lens=4, dims=[6, 3, 5]), seed=0)
    (optimizer,) = built
    assert [group["initial_lr"] for group in optimizer.param_groups] == pytest.approx([2e-3, 6e-3])
    assert [tuple(p.shape) for p in optimizer.param_groups[1]["params"]] == [(5, 2)] * 3  # [d + 1, rank * out]


def test_a_checkout_without_lmf_gets_one_error_line(tmp_path, capsys, no_env):
    (tmp_path / "model.py").write_text("import torch\n")
    code = run_cli(main, ["--lmf-repo", str(tmp_path), "--out", str(tmp_path / "out")])
    assert code == 2 and capsys.readouterr().err.splitlines() == [
        f"error: --lmf-repo {tmp_path}: model.py defines no LMF; expected a checkout of "
        "https://github.com/Justin1904/Low-rank-Multimodal-Fusion"]


@needs_checkout
def test_lmf_agrees_with_the_authors_code():
    """Their weights in ours: eval outputs agree below 1e-5 on their layout and on padded inputs; with two
    factors exchanged (audio's and video's, of one shape) they do not."""
    check = REFERENCES["lmf"](LMF_REPO)
    cpu = torch.device("cpu")
    reference, ours = check.build(0, cpu)
    assert max(max_differences(check, reference, ours, 1, cpu).values()) < GOAL
    state = lmf_reference.map_weights(reference.state_dict())
    state["fusion.fusion.factors.1"], state["fusion.fusion.factors.2"] = (state["fusion.fusion.factors.2"],
                                                                          state["fusion.fusion.factors.1"])
    ours.load_state_dict(state)
    assert min(max_differences(check, reference, ours, 1, cpu).values()) > 1e-3


@needs_checkout
def test_command_against_the_authors_code(tmp_path, capsys, no_env):
    code = run_cli(main, ["--lmf-repo", LMF_REPO, "--out", str(tmp_path), "--repeats", "1", "--warmup", "0"])
    assert code == 0, capsys.readouterr().err
    row = pd.read_csv(tmp_path / "reference.csv").iloc[0]
    assert row["model"] == "lmf" and bool(row["agrees"]) and row["params_ours"] == row["params_reference"] == 97_619
