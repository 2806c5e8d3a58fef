"""``benchmarks.reference`` for TFN: the weight mapping from the authors' ``TFN`` state dict (checked without their
code, against PyTorch's own layers keyed as their model keys them and their forward written out), the ``paper``
preset's MOSI settings with their per-modality tables, and, with ``FUSIONBENCH_TFN_REPO`` pointing to a checkout
of github.com/Justin1904/TensorFusionNetworks, the end-to-end agreement and the command."""

from __future__ import annotations

import math
import os

import pandas as pd
import pytest
import torch
from torch import nn

from benchmarks.cli import run_cli
from benchmarks.config import fit_to_modalities, load_preset
from benchmarks.reference import GOAL, REFERENCES
from benchmarks.reference import tfn as tfn_reference
from benchmarks.reference.__main__ import main, max_differences
from benchmarks.train import resolve_hparams
from fusions import build_predictor
from tests.conftest import random_modalities

NAMES = ["text", "audio", "video"]  # the authors' names of our modalities 0, 1, 2
DIMS = [7, 3, 5]
WIDTHS = {"audio": 2, "video": 3, "text": 4}
LSTM_HIDDEN, POST = 6, 5
TFN_REPO = os.environ.get("FUSIONBENCH_TFN_REPO")
needs_checkout = pytest.mark.skipif(not TFN_REPO, reason="needs FUSIONBENCH_TFN_REPO: a checkout of "
                                                         "github.com/Justin1904/TensorFusionNetworks")


def module(**children) -> nn.Module:
    parent = nn.Module()
    for name, child in children.items():
        parent.add_module(name, child)
    return parent


def subnet(dim: int, width: int) -> nn.Module:
    """Keyed as the authors' ``SubNet``: ``norm``, ``drop``, ``linear_1..3``."""
    return module(norm=nn.BatchNorm1d(dim), drop=nn.Dropout(0.0), linear_1=nn.Linear(dim, width),
                  linear_2=nn.Linear(width, width), linear_3=nn.Linear(width, width))


def text_subnet(dim: int, hidden: int, width: int) -> nn.Module:
    """Keyed as the authors' ``TextSubNet``: ``rnn``, ``dropout``, ``linear_1``."""
    return module(rnn=nn.LSTM(dim, hidden, batch_first=True), dropout=nn.Dropout(0.0),
                  linear_1=nn.Linear(hidden, width))


def randomise(model: nn.Module, seed: int) -> nn.Module:
    """Every trainable parameter and BatchNorm statistic drawn at random, so that a misplaced tensor shows."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.normal_(0.0, 0.3)
        for layer in model.modules():
            if isinstance(layer, nn.BatchNorm1d):
                layer.running_mean.normal_()
                layer.running_var.uniform_(0.5, 2.0)
    return model.eval()


def authors_layout(seed: int = 0, shift: float = -3.0) -> nn.Module:
    """Random weights keyed as the authors' ``TFN`` keys its state dict, built from PyTorch's own layers."""
    dims = dict(zip(NAMES, DIMS))
    size = math.prod(WIDTHS[name] + 1 for name in tfn_reference.REFERENCE_ORDER)
    model = module(
        audio_subnet=subnet(dims["audio"], WIDTHS["audio"]), video_subnet=subnet(dims["video"], WIDTHS["video"]),
        text_subnet=text_subnet(dims["text"], LSTM_HIDDEN, WIDTHS["text"]), post_fusion_dropout=nn.Dropout(0.0),
        post_fusion_layer_1=nn.Linear(size, POST), post_fusion_layer_2=nn.Linear(POST, POST),
        post_fusion_layer_3=nn.Linear(POST, 1),
    )
    model.output_range = nn.Parameter(torch.tensor([6.0]), requires_grad=False)
    model.output_shift = nn.Parameter(torch.tensor([shift]), requires_grad=False)
    return randomise(model, seed)


def authors_forward(model: nn.Module, audio: torch.Tensor, video: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """The authors' ``TFN.forward`` written out: subnetworks, ``[1; h]`` of audio, video, text multiplied out in
    that order, three post-fusion layers, ``sigmoid * 6 - 3``."""

    def mlp(net, x):
        for layer in (net.linear_1, net.linear_2, net.linear_3):
            x = torch.relu(layer(x))
        return x

    _, (state, _) = model.text_subnet.rnn(text)
    hs = [mlp(model.audio_subnet, model.audio_subnet.norm(audio)),
          mlp(model.video_subnet, model.video_subnet.norm(video)), model.text_subnet.linear_1(state[0])]
    a, v, t = (torch.cat([torch.ones(h.shape[0], 1), h], dim=1) for h in hs)
    fused = torch.einsum("ba,bv,bt->bavt", a, v, t).flatten(1)
    y = model.post_fusion_layer_3(torch.relu(model.post_fusion_layer_2(torch.relu(model.post_fusion_layer_1(fused)))))
    return torch.sigmoid(y) * model.output_range + model.output_shift


def ours_from(reference: nn.Module) -> nn.Module:
    ours = build_predictor("tfn", DIMS, subnetwork=["lstm", "mean", "mean"], d_model=[WIDTHS[n] for n in NAMES],
                           lstm_hidden=LSTM_HIDDEN, dim_feedforward=POST, dropout=0.0, task_label_range=(-3.0, 3.0))
    ours.load_state_dict(tfn_reference.map_weights(reference.state_dict(), NAMES))  # strict: every key, shape
    return ours.eval()


def test_mapped_tfn_computes_the_authors_forward_on_full_and_padded_inputs():
    """Subnetworks, the reordered columns of the first post-fusion layer (their product: audio, video, text;
    ours: our modality order) and the bounded output; on padded inputs ours with masks equals their forward
    on each sample cut to its real steps."""
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
    unordered = tfn_reference.map_weights(reference.state_dict(), NAMES)
    unordered["fusion.post_fusion.1.weight"] = reference.post_fusion_layer_1.weight  # columns in their order
    ours.load_state_dict(unordered)
    with torch.no_grad():
        assert (ours(xs, masks).output - expected).abs().max() > 1e-3  # the test sees a misplaced weight


def test_mapping_refuses_a_state_dict_of_another_layout():
    state = authors_layout().state_dict()
    with pytest.raises(ValueError, match="has no 'audio_subnet.norm.running_var'"):
        tfn_reference.map_weights({k: v for k, v in state.items() if k != "audio_subnet.norm.running_var"}, NAMES)
    with pytest.raises(ValueError, match="left unmapped: audio_factor"):
        tfn_reference.map_weights({**state, "audio_factor": torch.zeros(2, 3, 1)}, NAMES)
    with pytest.raises(ValueError, match=r"output is sigmoid\(y\) \* 6 \+ -2, not ours bounded to \[-3, 3\]"):
        tfn_reference.map_weights(authors_layout(shift=-2.0).state_dict(), NAMES)


def test_paper_preset_is_the_authors_train_py_on_mosi():
    """The preset's MOSI ``tfn`` is ``TFN(dims, (4, 16, 128), 64, (0.3,) * 4, 32)``: its parameter count is the
    authors' layer sizes summed (their model has two more, the fixed output range and shift)."""
    hparams = tfn_reference.paper_hparams("tfn")
    assert hparams == dict(dim_feedforward=32, dropout=0.3, subnetwork=["lstm", "mean", "mean"],
                           d_model=[64, 4, 16], lstm_hidden=128)
    predictor = build_predictor("tfn", tfn_reference.DIMS, task_label_range=(-3.0, 3.0), **hparams)
    assert predictor.fusion.bounds == (-3.0, 3.0)

    def linear(i, o):
        return i * o + o

    audio = 2 * 5 + linear(5, 4) + 2 * linear(4, 4)
    video = 2 * 20 + linear(20, 16) + 2 * linear(16, 16)
    text = 4 * 128 * (300 + 128) + 8 * 128 + linear(128, 64)
    post = linear(5 * 17 * 65, 32) + linear(32, 32) + linear(32, 1)
    assert sum(p.numel() for p in predictor.parameters()) == audio + video + text + post == 407_331


def test_per_modality_tables_follow_the_modalities_of_a_run():
    """A preset's per-modality table keeps the selected modalities; a run's configuration turns one into a list
    in the dataset's order, and refuses one that does not name each modality once."""
    fitted = fit_to_modalities(load_preset("paper"), ["text", "audio"])["datasets"]["mosi"]["fusions"]["tfn"]
    assert fitted["d_model"] == {"text": 64, "audio": 4} and fitted["subnetwork"] == {"text": "lstm", "audio": "mean"}
    resolved = resolve_hparams(fitted, ["audio", "text"])
    assert resolved["d_model"] == [4, 64] and resolved["subnetwork"] == ["mean", "lstm"]
    assert build_predictor("tfn", [5, 300], **resolved).fusion.tensor_size == 5 * 65
    with pytest.raises(ValueError, match=r"d_model \{'text': 64\} must name each modality once; this dataset's "
                                         "modalities: text, audio"):
        resolve_hparams({"d_model": {"text": 64}}, ["text", "audio"])


def test_check_batches_are_the_authors_layout():
    """``own``: zero rows first and every row a step for ours; audio and video one averaged vector per sample,
    to ours a one-step sequence. ``padded``: real steps first, each sample given to the reference alone, cut to
    them, twice."""
    cpu = torch.device("cpu")
    own = tfn_reference.make_batch("own", 0, cpu, batch_size=3, steps=4)
    assert all(mask.all() for mask in own.masks)
    text, audio = own.xs[0], own.xs[1]
    assert text.shape == (3, 4, tfn_reference.DIMS[0]) and audio.shape == (3, 1, tfn_reference.DIMS[1])
    real = text.abs().sum(-1) > 0
    assert (real.int().diff(dim=1) >= 0).all() and real[:, -1].all()  # zero rows first, real steps last
    assert real[0].all() and not real.all()  # sample 0 full, some padded
    torch.testing.assert_close(own.reference[0], audio[:, 0])
    assert own.reference[2] is text
    padded = tfn_reference.make_batch("padded", 0, cpu, batch_size=3, steps=4)
    assert not padded.masks[0].all() and padded.masks[0][:, 0].all()
    for b, (audio_b, video_b, text_b) in enumerate(padded.reference):
        real = padded.masks[0][b]
        assert text_b.shape == (2, int(real.sum()), tfn_reference.DIMS[0])
        torch.testing.assert_close(text_b[1], padded.xs[0][b, real])
        torch.testing.assert_close(audio_b[0], padded.xs[1][b, padded.masks[1][b]].mean(0))
        torch.testing.assert_close(video_b[1], padded.xs[2][b, padded.masks[2][b]].mean(0))


def test_a_checkout_without_tfn_gets_one_error_line(tmp_path, capsys, no_env):
    (tmp_path / "model.py").write_text("import torch\n")
    code = run_cli(main, ["--tfn-repo", str(tmp_path), "--out", str(tmp_path / "out")])
    assert code == 2 and capsys.readouterr().err.splitlines() == [
        f"error: --tfn-repo {tmp_path}: model.py defines no TFN; expected a checkout of "
        "https://github.com/Justin1904/TensorFusionNetworks"]


@needs_checkout
def test_tfn_agrees_with_the_authors_code():
    """Their weights in ours: eval outputs agree below 1e-5 on their layout and on padded inputs; the first
    post-fusion layer's columns left in their product's order do not."""
    check = REFERENCES["tfn"](TFN_REPO)
    cpu = torch.device("cpu")
    reference, ours = check.build(0, cpu)
    assert max(max_differences(check, reference, ours, 1, cpu).values()) < GOAL
    state = tfn_reference.map_weights(reference.state_dict())
    state["fusion.post_fusion.1.weight"] = reference.state_dict()["post_fusion_layer_1.weight"]
    ours.load_state_dict(state)
    assert min(max_differences(check, reference, ours, 1, cpu).values()) > 1e-3


@needs_checkout
def test_command_against_the_authors_code(tmp_path, capsys, no_env):
    code = run_cli(main, ["--tfn-repo", TFN_REPO, "--out", str(tmp_path), "--repeats", "1", "--warmup", "0"])
    assert code == 0, capsys.readouterr().err
    row = pd.read_csv(tmp_path / "reference.csv").iloc[0]
    assert row["model"] == "tfn" and bool(row["agrees"])
    assert (row["params_ours"], row["params_reference"]) == (407_331, 407_333)
