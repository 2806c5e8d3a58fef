"""benchmarks.speed: per-step times at the paper preset's settings, the ratio table against the quoted references,
the files and the errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from benchmarks import speed
from benchmarks.cli import run_cli
from benchmarks.config import load_preset
from fusions import build_predictor

TINY = dict(d_model=8, num_heads=2, num_layers=1, dim_feedforward=16)


def test_measure_speed_times_a_training_step_and_an_eval_forward(keep_threads):
    result = speed.measure_speed("grf", TINY, batch_size=4, seq_len=6, repeats=2, warmup=1)
    expected = build_predictor("grf", list(speed.MOSI_DIMS), **TINY)
    assert result["params"] == sum(p.numel() for p in expected.parameters())
    assert result["train_ms"] > 0 and result["eval_ms"] > 0
    assert result["train_iqr_ms"] >= 0 and result["eval_iqr_ms"] >= 0


def test_a_training_step_changes_the_weights_and_uses_the_auxiliary_head():
    torch.manual_seed(0)
    predictor = build_predictor("grf", list(speed.MOSI_DIMS), task="regression", aux_weight=0.4, **TINY)
    head = [p.detach().clone() for p in predictor.aux_head.parameters()]
    harness = speed.speed_harness(predictor, 4, 5, torch.device("cpu"))
    harness.train_step()
    assert any(not torch.equal(before, after) for before, after in zip(head, predictor.aux_head.parameters()))


def test_report_gives_the_ratios_to_the_quoted_references():
    result = {"fusion": "grf", "params": 10, "train_ms": 313.0, "train_iqr_ms": 1.0, "eval_ms": 53.5,
              "eval_iqr_ms": 1.0, "train_gflops": 30.04, "eval_gflops": 12.0, "train_util": 0.234, "eval_util": 0.1}
    _, ref_train, ref_eval = speed.REFERENCES["grf"]
    table = speed.report([result, {**result, "fusion": "concat"}], ["grf", "concat"])
    assert f"{ref_train / 313.0:.2f}x / {ref_eval / 53.5:.2f}x" in table and "(quoted" in table
    assert "| concat | 10 | 313 (1) | 54 (1) | 30.0 / 12.0 | 23% / 10% | none quoted | -- | -- |" in table


def test_cli_stores_its_measurements_at_the_paper_settings(tmp_path, keep_threads):
    """concat at the paper preset's sizes (no quoted reference: its row says so); meta.json records the preset's
    hyperparameters that were measured."""
    assert speed.main(["--fusions", "concat", "--repeats", "2", "--warmup", "1", "--threads", "1",
                       "--out", str(tmp_path), "--quiet"]) == 0
    frame = pd.read_csv(tmp_path / "speed.csv")
    assert list(frame["fusion"]) == ["concat"] and frame.loc[0, "train_ms"] > 0 and frame.loc[0, "threads"] == 1
    preset = load_preset("paper")["fusions"]["concat"]
    expected = build_predictor("concat", list(speed.MOSI_DIMS), **preset)
    assert frame.loc[0, "params"] == sum(p.numel() for p in expected.parameters())
    assert "| concat |" in (tmp_path / "speed.md").read_text()
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["hparams"] == {"concat": preset} and meta["preset"] == "paper" and meta["schema"]["kind"] == "meta.json"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--fusions", "nope"], "unknown fusion 'nope'"),
        (["--repeats", "0"], "--repeats must be >= 1"),
        (["--fusions", "pairwise:depth=3"], "has no hyperparameter 'depth'"),
        (["--device", "cuda:1"] if not torch.cuda.is_available() else ["--device", "cuda:99"], "--device cuda"),
    ],
)
def test_bad_flags_give_one_line(args, message, tmp_path, capsys):
    assert run_cli(speed.main, [*args, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "speed.csv").exists()
