"""benchmarks.speed: per-step times at given settings, the ratio table against the quoted references, the files."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from benchmarks import speed
from fusions import build_predictor

TINY = dict(d_model=8, num_heads=2, num_layers=1, dim_feedforward=16)


def test_measure_speed_times_a_training_step_and_an_eval_forward(keep_threads):
    result = speed.measure_speed("grf", TINY, batch_size=4, seq_len=6, repeats=2, warmup=1)
    assert result["params"] == sum(p.numel() for p in build_predictor("grf", speed.MOSI_DIMS, **TINY).parameters())
    assert result["train_ms"] > 0 and result["eval_ms"] > 0
    assert result["train_iqr_ms"] >= 0 and result["eval_iqr_ms"] >= 0


def test_a_training_step_changes_the_weights_and_uses_the_auxiliary_head():
    torch.manual_seed(0)
    predictor = build_predictor("grf", [6, 3], task="regression", aux_weight=0.4, **TINY)
    head = [p.detach().clone() for p in predictor.aux_head.parameters()]
    optimizer = torch.optim.Adam(predictor.parameters(), lr=1e-2)
    xs = [torch.randn(4, 5, 6), torch.randn(4, 5, 3)]
    masks = [torch.ones(4, 5, dtype=torch.bool)] * 2
    speed.training_step(predictor, optimizer, xs, masks, torch.randn(4))
    assert any(not torch.equal(before, after) for before, after in zip(head, predictor.aux_head.parameters()))


def test_report_gives_the_ratios_to_the_quoted_references():
    result = {"fusion": "grf", "params": 10, "train_ms": 313.0, "train_iqr_ms": 1.0, "eval_ms": 53.5,
              "eval_iqr_ms": 1.0}
    _, _, ref_train, ref_eval = speed.SETTINGS["grf"]
    table = speed.report([result])
    assert f"{ref_train / 313.0:.2f}x / {ref_eval / 53.5:.2f}x" in table and "(quoted" in table


def test_cli_stores_its_measurements(tmp_path, monkeypatch, keep_threads):
    monkeypatch.setitem(speed.SETTINGS, "concat", (dict(d_model=8, dim_feedforward=16), "a reference", 100.0, 10.0))
    assert speed.main(["--fusions", "concat", "--repeats", "2", "--warmup", "1", "--threads", "1",
                       "--out", str(tmp_path)]) == 0
    frame = pd.read_csv(tmp_path / "speed.csv")
    assert list(frame["fusion"]) == ["concat"] and frame.loc[0, "train_ms"] > 0 and frame.loc[0, "threads"] == 1
    assert "| concat |" in (tmp_path / "speed.md").read_text() and (tmp_path / "meta.json").exists()


@pytest.mark.parametrize("args", [["--fusions", "nope"], ["--repeats", "0"]])
def test_bad_flags_give_one_line(args, tmp_path, capsys):
    assert speed.main([*args, "--out", str(tmp_path)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
