"""benchmarks.study_time: the last of the trained epochs timed per fusion, the study estimated from it."""

from __future__ import annotations

import pandas as pd
import pytest

from benchmarks import study_time
from benchmarks.cli import run_cli
from benchmarks.data import make_synthetic


def test_the_estimate_is_epoch_seconds_times_epochs_times_seeds():
    rows = pd.DataFrame({"epoch_s": [2.0, 3.0], "max_epochs": [100, 100]})
    hours = study_time.estimate(rows, seeds=5, typical_epochs=40)
    assert hours == {"bound_h": pytest.approx(5 * 100 * 5 / 3600), "typical_h": pytest.approx(5 * 40 * 5 / 3600)}


def test_epoch_seconds_trains_the_paper_cell_for_the_epochs_asked(monkeypatch, keep_threads):
    data = make_synthetic(sizes=(16, 4, 4), seq_lens=4)
    row = study_time.epoch_seconds("concat", data, epochs=2, device="cpu")
    assert row["fusion"] == "concat" and row["max_epochs"] == 100 and row["params"] > 0
    assert 0 < row["epoch_s"] and 0 < row["first_epoch_s"]
    with pytest.raises(ValueError, match="epochs must be >= 2"):
        study_time.epoch_seconds("concat", data, epochs=1, device="cpu")


def test_cli_writes_the_table_and_the_estimate(tmp_path, monkeypatch, keep_threads):
    monkeypatch.setattr(study_time, "make_synthetic", lambda: make_synthetic(sizes=(16, 4, 4), seq_lens=4))
    assert study_time.main(["--fusions", "concat,late", "--device", "cpu", "--threads", "1", "--out", str(tmp_path),
                            "--quiet"]) == 0
    frame = pd.read_csv(tmp_path / "study_time.csv")
    assert list(frame["fusion"]) == ["concat", "late"] and (frame["epoch_s"] > 0).all()
    text = (tmp_path / "study_time.md").read_text()
    assert "2 fusions x 5 seeds on one worker" in text and "at 100 epochs per cell (the bound)" in text


@pytest.mark.parametrize(("argv", "expected"), [
    (["--epochs", "1"], "--epochs must be >= 2"),
    (["--device", "cpu", "--amp"], "--amp is bf16 autocast on CUDA"),
])
def test_bad_flags_are_one_line(argv, expected, tmp_path, capsys):
    assert run_cli(study_time.main, [*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and expected in err
