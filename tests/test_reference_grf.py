"""``benchmarks.reference`` for GRF: the weight mapping from the authors' state dict (checked without their code,
against PyTorch's own layers keyed as their model keys them), the command's plumbing and errors, and, with
``FUSIONBENCH_GRF_REPO`` pointing to a checkout of github.com/yushi2006/GRF, the end-to-end agreement."""

from __future__ import annotations

import os
import sys

import pandas as pd
import pytest
import torch
from torch import nn

from benchmarks.cli import run_cli
from benchmarks.reference import REFERENCES, Batch, ReferenceCheck, import_from_checkout
from benchmarks.reference import grf as grf_reference
from benchmarks.reference.__main__ import main, max_differences
from fusions import build_predictor
from fusions.layers import sinusoidal_table

NAMES, DIMS, ORDER = ["text", "audio", "vision"], [5, 3, 4], ["text", "vision", "audio"]
D, HEADS, FF, LAYERS = 8, 2, 16, 2
GRF_REPO = os.environ.get("FUSIONBENCH_GRF_REPO")
needs_checkout = pytest.mark.skipif(not GRF_REPO, reason="needs FUSIONBENCH_GRF_REPO: a checkout of "
                                                         "github.com/yushi2006/GRF")


def authors_layout(seed: int = 0) -> nn.Module:
    """Random weights keyed as the authors' ``HierarchicalFusionModel`` keys its state dict, built from PyTorch's
    own layers (``nn.TransformerDecoder`` of post-norm GELU ``nn.TransformerDecoderLayer``, ``nn.Linear``,
    ``nn.LayerNorm``), every parameter drawn at random so that a misplaced tensor shows."""
    torch.manual_seed(seed)

    def module(**children) -> nn.Module:
        parent = nn.Module()
        for name, child in children.items():
            parent.add_module(name, child)
        return parent

    def decoder() -> nn.TransformerDecoder:
        layer = nn.TransformerDecoderLayer(D, HEADS, FF, 0.0, batch_first=True, activation="gelu")
        return nn.TransformerDecoder(layer, LAYERS)

    def head() -> nn.Module:
        return module(regressor=nn.Sequential(nn.Linear(D, D // 2), nn.ReLU(), nn.Dropout(0.0), nn.Linear(D // 2, 1)))

    encoders = []
    for _ in ORDER[1:]:
        encoder = module(pos_encoder=nn.Module(), decoder_1=decoder(), decoder_2=decoder())
        encoder.pos_encoder.register_buffer("pe", sinusoidal_table(60, D))
        encoders.append(encoder)
    model = module(
        projectors=nn.ModuleDict({name: nn.Linear(dim, D) for name, dim in zip(NAMES, DIMS)}),
        fusion_encoders=nn.ModuleList(encoders),
        gfus=nn.ModuleList(module(linear_candidate=nn.Linear(2 * D, D), linear_gate=nn.Linear(2 * D, D),
                                  norm=nn.LayerNorm(D)) for _ in ORDER[1:]),
        regressor=head(), auxiliary_regressor=head(),
    )
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.3)
    return model.eval()


def ours_from(reference: nn.Module) -> nn.Module:
    ours = build_predictor("grf", DIMS, d_model=D, num_heads=HEADS, num_layers=LAYERS, dim_feedforward=FF,
                           dropout=0.0, aux_weight=0.4, order=[NAMES.index(n) for n in ORDER])
    ours.load_state_dict(grf_reference.map_weights(reference.state_dict(), NAMES))  # strict: every key, shape
    return ours.eval()


def padded(batch: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    true = torch.randint(1, length + 1, (batch,), generator=generator)
    mask = torch.arange(length) < true.unsqueeze(1)
    return torch.randn(batch, length, D, generator=generator), mask


def test_mapped_decoder_stacks_compute_pytorchs_decoders():
    """Stack 0 of each step is the authors' decoder_1 (target: the state), stack 1 their decoder_2; layer by
    layer, with the packed and split projections in place."""
    reference = authors_layout()
    ours = ours_from(reference)
    (state, state_mask), (modality, modality_mask) = padded(3, 5, 1), padded(3, 7, 2)
    for step, encoder in enumerate(reference.fusion_encoders):
        side_a, side_b = ours.fusion.steps[step]([state, modality], [state_mask, modality_mask],
                                                 [modality, state], [modality_mask, state_mask])
        with torch.no_grad():
            expected_a = encoder.decoder_1(state, modality, tgt_key_padding_mask=~state_mask,
                                           memory_key_padding_mask=~modality_mask)
            expected_b = encoder.decoder_2(modality, state, tgt_key_padding_mask=~modality_mask,
                                           memory_key_padding_mask=~state_mask)
        torch.testing.assert_close(side_a[state_mask], expected_a[state_mask], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(side_b[modality_mask], expected_b[modality_mask], atol=1e-5, rtol=1e-5)


def test_mapped_gate_projections_and_heads_compute_the_authors_layers():
    reference = authors_layout()
    ours = ours_from(reference)
    h, m = torch.randn(4, D), torch.randn(4, D)
    for step, gfu in enumerate(reference.gfus):
        both = torch.cat([h, m], -1)
        z, c = torch.sigmoid(gfu.linear_gate(both)), torch.tanh(gfu.linear_candidate(both))
        torch.testing.assert_close(ours.fusion.gates[step](h, m), gfu.norm((1 - z) * h + z * c))
    for index, (name, dim) in enumerate(zip(NAMES, DIMS)):  # our modalities by position, theirs by name
        x = torch.randn(2, 3, dim)
        torch.testing.assert_close(ours.fusion.projections[index](x), reference.projectors[name](x))
    torch.testing.assert_close(ours.head(h), reference.regressor.regressor(h))
    torch.testing.assert_close(ours.aux_head(h), reference.auxiliary_regressor.regressor(h))


def test_mapping_refuses_a_state_dict_of_another_layout():
    state = authors_layout().state_dict()
    with pytest.raises(ValueError, match="not the authors' GRF state dict"):
        grf_reference.map_weights({}, NAMES)
    with pytest.raises(ValueError, match="has no 'projectors.vision.weight'"):
        grf_reference.map_weights({k: v for k, v in state.items() if k != "projectors.vision.weight"}, NAMES)
    with pytest.raises(ValueError, match="left unmapped: projectors.video.weight"):
        grf_reference.map_weights({**state, "projectors.video.weight": torch.zeros(D, 2)}, NAMES)


def test_checkout_imports_stay_apart(tmp_path):
    """Two checkouts with a same-named package (both have ``src``) each import their own, and leave nothing
    of theirs in ``sys.modules`` or ``sys.path``."""
    modules = []
    for tag, package_init in (("a", True), ("b", False)):  # a regular package, then a namespace package
        (tmp_path / tag / "src").mkdir(parents=True)
        if package_init:
            (tmp_path / tag / "src" / "__init__.py").write_text("")
        (tmp_path / tag / "src" / "helper.py").write_text(f"VALUE = {tag!r}\n")
        (tmp_path / tag / "src" / "model.py").write_text("from src.helper import VALUE\n")
        modules.append(import_from_checkout(tmp_path / tag, "src/model.py", f"checkout_{tag}"))
    assert [module.VALUE for module in modules] == ["a", "b"]
    assert "src" not in sys.modules and "src.helper" not in sys.modules
    assert not any(str(tmp_path) in entry for entry in sys.path)


def errors(capsys, argv) -> tuple[int, list[str]]:
    code = run_cli(main, argv)
    return code, [line for line in capsys.readouterr().err.splitlines() if line]


def test_bad_checkouts_get_one_error_line(tmp_path, capsys, no_env):
    out = ["--out", str(tmp_path / "out")]
    code, lines = errors(capsys, ["--grf-repo", str(tmp_path / "nope"), *out])
    assert code == 2 and lines == [f"error: --grf-repo {tmp_path / 'nope'}: no such folder; expected a checkout of "
                                   "https://github.com/yushi2006/GRF"]
    code, lines = errors(capsys, ["--grf-repo", str(tmp_path), *out])
    assert code == 2 and lines == [f"error: --grf-repo {tmp_path}: no src/model.py in this folder; expected a "
                                   "checkout of https://github.com/yushi2006/GRF"]
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "model.py").write_text("import not_a_module_anywhere\n")
    code, lines = errors(capsys, ["--grf-repo", str(tmp_path), *out])
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith(f"error: cannot import {tmp_path / 'src' / 'model.py'}: ModuleNotFoundError")
    code, lines = errors(capsys, out)
    assert code == 2 and lines[0].startswith("error: no checkout given; give at least one of: --grf-repo DIR "
                                             "(or $FUSIONBENCH_GRF_REPO)")
    assert not (tmp_path / "out").exists()  # nothing written before the inputs are checked


class FakeCheck(ReferenceCheck):
    """A one-layer 'reference' from a checkout folder, ours a copy shifted by ``shift`` (0: they agree)."""

    flag, env, url = "--fake-repo", "FUSIONBENCH_FAKE_REPO", "https://example.invalid/fake"
    model_file, own_layout = "model.py", "as given"
    name, shift = "fake", 0.0

    def build(self, seed, device):
        torch.manual_seed(seed)
        reference = self.module.Model(3, 2)
        ours = nn.Linear(3, 2)
        ours.load_state_dict({"weight": reference.weight, "bias": reference.bias + self.shift})
        return reference, ours

    def batch(self, layout, seed, device):
        x = torch.randn(4, 3, generator=torch.Generator().manual_seed(seed))
        return Batch((x,), [x], [torch.ones(4, 1, dtype=torch.bool)], torch.zeros(4))

    def reference_output(self, model, batch):
        return model(*batch.reference)

    def our_output(self, model, batch):
        return model(batch.xs[0])

    def training_steps(self, reference, ours, batch):
        def step(model, output):
            return lambda: output(model, batch).square().sum().backward()

        return step(reference, self.reference_output), step(ours, self.our_output)


@pytest.mark.parametrize("shift", [0.0, 0.1])
def test_command_writes_the_check_and_fails_on_a_difference(tmp_path, capsys, monkeypatch, no_env, shift):
    (tmp_path / "model.py").write_text("import torch\n\n\nclass Model(torch.nn.Linear):\n    pass\n")
    monkeypatch.setitem(REFERENCES, "fake", type("Shifted", (FakeCheck,), {"shift": shift}))
    out = tmp_path / "out"
    code = run_cli(main, ["--fake-repo", str(tmp_path), "--out", str(out), "--repeats", "3", "--warmup", "1"])
    captured = capsys.readouterr()
    row = pd.read_csv(out / "reference.csv").iloc[0]
    assert row["model"] == "fake" and pd.isna(row["commit"])  # a plain folder: no git commit
    assert row["max_abs_diff_own"] == pytest.approx(shift, abs=1e-6) and row["agrees"] == (shift == 0)
    assert row["ratio"] == pytest.approx(row["train_ms_ours"] / row["train_ms_reference"])
    assert (out / "meta.json").is_file() and "| fake |" in (out / "reference.md").read_text()
    assert "| fake |" in captured.out
    if shift:
        assert code == 1 and captured.err.splitlines() == [
            "error: fake: eval outputs differ by up to 1.00e-01 on own inputs; goal: below 1e-05"]
    else:
        assert code == 0 and not captured.err


@needs_checkout
def test_grf_agrees_with_the_authors_code():
    """The authors' weights in ours: eval outputs (head and auxiliary head) agree below 1e-5 on their full-length
    layout and on right-padded inputs; carrying the state bare (the old behaviour) does not."""
    check = REFERENCES["grf"](GRF_REPO)
    cpu = torch.device("cpu")
    reference, ours = check.build(0, cpu)
    differences = max_differences(check, reference, ours, 1, cpu)
    assert max(differences.values()) < 1e-5, differences
    bare = build_predictor("grf", grf_reference.DIMS, order=[grf_reference.NAMES.index(n) for n in grf_reference.ORDER],
                           state_position=False, **grf_reference.HPARAMS)
    bare.load_state_dict(ours.state_dict())
    assert min(max_differences(check, reference, bare, 1, cpu).values()) > 1e-2


@needs_checkout
def test_command_against_the_authors_code(tmp_path, capsys, monkeypatch, no_env):
    code = run_cli(main, ["--grf-repo", GRF_REPO, "--out", str(tmp_path), "--repeats", "1", "--warmup", "0"])
    assert code == 0, capsys.readouterr().err
    row = pd.read_csv(tmp_path / "reference.csv").iloc[0]
    assert row["model"] == "grf" and bool(row["agrees"]) and row["params_ours"] == row["params_reference"] == 1_126_530
