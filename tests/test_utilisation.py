"""benchmarks.cost.utilisation and the utilisation columns of benchmarks.speed: counted FLOPs, the measured matmul
rate, achieved rates and their fraction, and the bf16 path (CUDA only)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from benchmarks import speed
from benchmarks.cli import run_cli
from benchmarks.cost.utilisation import _measured_rate, matmul_rate, step_flops

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_step_flops_counts_matrix_products_forward_and_backward():
    a = torch.randn(8, 16, requires_grad=True)
    b = torch.randn(16, 4, requires_grad=True)
    assert step_flops(lambda: a @ b) == 2 * 8 * 16 * 4
    # backward: one product for each input's gradient, each as large as the forward one
    assert step_flops(lambda: (a @ b).sum().backward()) == 3 * 2 * 8 * 16 * 4


def test_matmul_rate_is_flops_over_the_timed_product(monkeypatch):
    """The rate is 2 n^3 over the median time torch.utils.benchmark measured (a stand-in Timer returns 0.5 s)."""

    class Median:
        median = 0.5

    class FakeTimer:
        def __init__(self, stmt, globals, num_threads, label):
            assert stmt == "torch.mm(a, b)" and globals["a"].shape == (64, 64) and num_threads >= 1

        def timeit(self, number):
            return Median()

        def blocked_autorange(self, min_run_time):
            return Median()

    monkeypatch.setattr("benchmarks.cost.utilisation.Timer", FakeTimer)
    _measured_rate.cache_clear()
    try:
        assert matmul_rate(torch.device("cpu"), size=64) == 2 * 64**3 / 0.5
        assert matmul_rate(torch.device("cpu"), size=64) == 2 * 64**3 / 0.5  # measured once: cached
    finally:
        _measured_rate.cache_clear()  # no stand-in rate for later tests
    with pytest.raises(ValueError, match="size must be at least 1"):
        matmul_rate(torch.device("cpu"), size=-1)


def test_matmul_rate_measures_a_real_rate_on_cpu():
    rate = matmul_rate(torch.device("cpu"), size=256, min_run_time=0.05)
    assert 1e7 < rate < 1e14  # FLOP/s: between 10 MFLOP/s and 100 TFLOP/s


def test_speed_cli_writes_utilisation_against_the_measured_rate(tmp_path, keep_threads):
    assert speed.main(["--fusions", "concat", "--repeats", "2", "--warmup", "1", "--threads", "1",
                       "--out", str(tmp_path), "--quiet"]) == 0
    row = pd.read_csv(tmp_path / "speed.csv").iloc[0]
    assert row["train_flops"] > row["eval_flops"] > 0 and row["dtype"] == "float32"
    assert row["train_gflops"] == pytest.approx(row["train_flops"] / (row["train_ms"] / 1000) / 1e9)
    assert row["train_util"] == pytest.approx(row["train_gflops"] / row["matmul_gflops"])
    assert row["eval_util"] == pytest.approx(row["eval_gflops"] / row["matmul_gflops"])
    assert "dense matmul rate measured now" in (tmp_path / "speed.md").read_text()


def test_bf16_is_refused_on_cpu_in_one_line(tmp_path, capsys):
    assert run_cli(speed.main, ["--fusions", "concat", "--dtype", "bfloat16", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--dtype bfloat16 is measured on CUDA only" in err


@pytest.mark.cuda
@needs_cuda
def test_speed_measures_bf16_on_cuda(tmp_path):
    assert speed.main(["--fusions", "concat", "--repeats", "2", "--warmup", "1", "--device", "cuda",
                       "--dtype", "bfloat16", "--out", str(tmp_path), "--quiet"]) == 0
    row = pd.read_csv(tmp_path / "speed.csv").iloc[0]
    assert row["dtype"] == "bfloat16" and 0 < row["train_util"] and row["matmul_gflops"] > 0


def test_scaling_sweep_rows_carry_the_achieved_rate_and_utilisation():
    from benchmarks.config import Variant
    from benchmarks.scaling import ScalingConfig, run_sweep

    config = ScalingConfig(fusions=[Variant.of("concat")], modalities=[2], d_models=[16], seq_lens=[4],
                           batch_size=2, repeats=1, warmup=1, num_layers=1, num_heads=2, feature_dims=[4],
                           device="cpu")
    row = run_sweep(config, log=lambda line: None).iloc[0]
    assert row["status"] == "ok"
    assert row["train_gflops"] == pytest.approx(row["train_flops"] * 2 / (row["train_ms"] / 1000) / 1e9)
    assert row["train_util"] == pytest.approx(row["train_gflops"] / row["matmul_gflops"])
