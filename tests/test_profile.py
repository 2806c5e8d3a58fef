"""benchmarks.profile: operator self times per step, grouped into kinds, stored and reported."""

from __future__ import annotations

import pandas as pd
import pytest

from benchmarks import profile
from benchmarks.cli import run_cli


@pytest.mark.parametrize(("op", "kind"), [
    ("aten::addmm", "matmul"), ("aten::bmm", "matmul"), ("aten::_softmax", "attention"),
    ("aten::native_layer_norm", "normalisation"), ("aten::bernoulli_", "dropout"), ("aten::copy_", "copies and layout"),
    ("aten::add_", "element-wise"), ("Optimizer.step#Adam.step", "optimiser"), ("aten::_fused_adam_", "optimiser"),
    ("aten::lstm", "other"),
])
def test_operators_fall_into_their_kind(op, kind):
    assert profile.kind_of(op) == kind


def test_profile_cli_writes_per_operator_times_and_the_kinds(tmp_path, keep_threads):
    assert profile.main(["--fusions", "concat", "--steps", "1", "--warmup", "1", "--threads", "1",
                         "--out", str(tmp_path), "--quiet"]) == 0
    frame = pd.read_csv(tmp_path / "profile.csv")
    assert set(frame["step"]) == {"train", "eval"} and set(frame["fusion"]) == {"concat"}
    for _, group in frame.groupby("step"):
        assert group["share"].sum() == pytest.approx(1.0) and (group["self_cpu_ms"] > 0).all()
    assert "matmul" in set(frame["kind"])
    text = (tmp_path / "profile.md").read_text()
    assert "### concat, train step" in text and "| kind | ms / step | share |" in text


def test_bad_step_counts_are_one_line(tmp_path, capsys):
    assert run_cli(profile.main, ["--steps", "0", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--steps must be >= 1" in err
