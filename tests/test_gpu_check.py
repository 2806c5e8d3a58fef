"""benchmarks.gpu_check: refuses without CUDA in one line; every step is a command the suite parses; the steps fit
the 8-minute budget; the step runner records ok / failed / timed-out steps with their logs."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch

from benchmarks import gpu_check
from benchmarks.cli import run_cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_refuses_without_cuda_in_one_line(tmp_path, capsys):
    assert run_cli(gpu_check.main, ["--out", str(tmp_path / "gpu")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: the GPU check needs a CUDA device")
    assert not (tmp_path / "gpu").exists()


def test_every_step_is_a_command_its_module_parses(tmp_path):
    for step in gpu_check.STEPS:
        argv = gpu_check.command(step, tmp_path)[3:]
        module = step.argv[0]
        if module == "pytest":
            assert "cuda:" in (ROOT / "pyproject.toml").read_text()  # the marker -m selects is registered
            continue
        parsed = importlib.import_module(module)
        parser = parsed.build_parser() if hasattr(parsed, "build_parser") else None
        args = parser.parse_args(argv) if parser else parsed.parse_args(argv)
        assert str(tmp_path) in str(args.out), step.name


def test_the_steps_fit_the_budget():
    assert sum(step.seconds for step in gpu_check.STEPS) <= gpu_check.BUDGET_SECONDS == 8 * 60


def test_run_steps_records_each_outcome_and_keeps_going(tmp_path):
    steps = (
        gpu_check.Step("ok", ("json.tool", "--help"), 30),
        gpu_check.Step("fails", ("benchmarks.speed", "--repeats", "0", "--out", "{out}/x"), 60),
        gpu_check.Step("slow", ("http.server", "0"), 1),
    )
    results = gpu_check.run_steps(steps, tmp_path)
    assert [r["status"] for r in results] == ["ok", "failed (exit 2)", "timed out"]
    assert "--repeats must be >= 1" in (tmp_path / "fails.log").read_text()
    assert results[1]["command"] == ["benchmarks.speed", "--repeats", "0", "--out", f"{tmp_path}/x"]
    table = gpu_check.summary(results, "Test GPU")
    assert table.startswith("# GPU check on Test GPU") and "| slow | timed out |" in table


def test_make_has_the_gpu_check_target():
    makefile = (ROOT / "Makefile").read_text()
    assert "gpu-check:" in makefile and "-m benchmarks.gpu_check" in makefile
