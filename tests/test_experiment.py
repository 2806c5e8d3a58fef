"""The experiment layer and the one command line: data loaded once per experiment, ablate / tune / the accuracy
sweep as grids of the runner, shared flags with one meaning, ``--seeds`` / ``--seed``, the ``fusionbench``
entry point."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from benchmarks import commands
from benchmarks.ablate import run_ablation
from benchmarks.accuracy_scaling import run_accuracy_scaling
from benchmarks.cli import (
    UsageError,
    add_data_arguments,
    add_seed_arguments,
    add_training_arguments,
    experiment_fields,
    parse_seeds,
    seeds_of,
)
from benchmarks.experiment import Experiment, ExperimentSpec, RunSpec
from benchmarks.run import run_benchmark
from benchmarks.tune import TuneSpec, tune


@pytest.mark.parametrize("text, seeds", [
    ("3", [0, 1, 2]), ("1", [0]), ("0,4,7", [0, 4, 7]), ("5-7", [5, 6, 7]), ("7,", [7]), ("2-2", [2]),
])
def test_seeds_count_list_range_and_one(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", [
    "0", "a", "1,,2", "3-1", "-1", "1,1", ",", "1-2-3", "1_000", "10000000000", "99999999999999999999", "4294967296,",
    "0-20000",
])
def test_bad_seeds_are_one_usage_error(text):
    with pytest.raises(UsageError, match="--seeds"):
        parse_seeds(text)


def _parser():
    parser = argparse.ArgumentParser()
    add_data_arguments(parser)
    add_seed_arguments(parser)
    add_training_arguments(parser)
    return parser


def test_seed_runs_one_seed_and_excludes_seeds():
    assert seeds_of(_parser().parse_args(["--seed", "7"])) == [7]
    assert seeds_of(_parser().parse_args(["--seeds", "7"])) == list(range(7))
    assert seeds_of(_parser().parse_args([])) == [0, 1, 2]
    with pytest.raises(UsageError, match=r"--seed 4294967296: a seed must lie in \[0, 2\*\*32\)"):
        seeds_of(_parser().parse_args(["--seed", "4294967296"]))  # NumPy would take it as seed 0
    with pytest.raises(SystemExit):
        _parser().parse_args(["--seed", "7", "--seeds", "3"])


def test_shared_flags_map_to_the_experiment_spec():
    args = _parser().parse_args(["--dataset", "mfeat", "--data-path", "x", "--modalities", "fou,fac", "--preset",
                                 "paper", "--config", "c.toml", "--epochs", "4", "--device", "cuda:1", "--amp"])
    spec = ExperimentSpec(**experiment_fields(args))
    assert spec == ExperimentSpec(dataset="mfeat", dataset_path="x", modalities=["fou", "fac"], preset="paper",
                                  config_file="c.toml", epochs=4, device="cuda:1", amp=True)


def test_ablation_loads_its_data_once(tmp_path, tiny, loads):
    run = RunSpec(fusions=["grf"], seeds=[0], config_file=tiny, device="cpu", out=str(tmp_path / "ablate"),
                  modalities=["text", "audio"], epochs=1)
    summary = run_ablation(run, groups=("aux",), quiet=True)
    assert list(summary["fusion"]) == ["grf", "grf:aux=off"]
    assert loads == ["synthetic"]


def test_accuracy_sweep_loads_each_setting_once(tmp_path, loads):
    config = tmp_path / "sweep.toml"
    config.write_text("[datasets.synthetic]\nsizes = [48, 24, 24]\nseq_lens = 8\n[protocol]\nbatch_size = 16\n"
                      "[fusions.concat]\nd_model = 8\ndim_feedforward = 16\n")
    base = ExperimentSpec(config_file=str(config), device="cpu", epochs=1)
    records = run_accuracy_scaling(["concat"], base, [2, 3], [0], tmp_path / "sweep", quiet=True)
    assert sorted(records["n_modalities"]) == [2, 3]
    assert loads == ["synthetic", "synthetic"]


def test_tuning_loads_its_data_once(tmp_path, tiny, loads):
    tune(TuneSpec(fusion="concat", trials=2, config_file=tiny, out=str(tmp_path), device="cpu", quiet=True,
                  epochs=1))
    assert loads == ["synthetic"]


def test_experiment_cells_and_costs_come_from_one_configuration(tiny):
    experiment = Experiment.build(ExperimentSpec(config_file=tiny, device="cpu", modalities=["text", "audio"]))
    cell = experiment.cell("grf")
    assert cell.dataset["modalities"] == ["text", "audio"]
    deeper = experiment.cell("grf", {"fusions": {"grf": {"num_layers": 2}}})
    assert (cell.hparams["num_layers"], deeper.hparams["num_layers"]) == (1, 2)
    assert experiment.forward_flops(deeper) > experiment.forward_flops(cell)
    assert experiment.configuration_error("grf") is None


def test_fusionbench_lists_its_commands_and_refuses_an_unknown_one(capsys):
    assert commands.main(["--help"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in commands.COMMANDS)
    assert commands.main(["nope"]) == 2
    assert "unknown command 'nope'; commands: run, tune" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:  # argparse's error, as one line
        commands.main(["run", "--fusions", "grf", "--bogus"])
    assert stopped.value.code == 2
    assert capsys.readouterr().err == ("error: unrecognized arguments: --bogus (fusionbench run --help lists the "
                                       "options)\n")


def test_fusionbench_run_is_benchmarks_run(tmp_path, tiny):
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.commands", "run", "--fusions", "concat", "--seed", "4", "--config",
         tiny, "--device", "cpu", "--epochs", "1", "--out", str(out), "--quiet", "--no-report"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert (out / "runs.csv").read_text().count("\n") == 2  # header and seed 4 alone
    assert ",4," in (out / "runs.csv").read_text().splitlines()[1]
    bad = subprocess.run([sys.executable, "-m", "benchmarks.commands", "run", "--fusions", "concat", "--seeds", "x"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --seeds 'x'")


def test_a_run_with_its_probes_and_report_loads_its_data_once(tmp_path, tiny, loads, monkeypatch):
    import benchmarks.probes.checkpoints as stored

    original = stored.load_dataset
    monkeypatch.setattr(stored, "load_dataset", lambda *args, **kwargs: loads.append(args[0]) or original(
        *args, **kwargs))
    out = tmp_path / "run"
    run_benchmark(RunSpec(fusions=["concat"], seeds=[0], config_file=tiny, device="cpu", out=str(out), epochs=1),
                  quiet=True)
    assert (out / "probes" / "robustness.csv").is_file() and (out / "report" / "README.md").is_file()
    assert loads == ["synthetic"]  # the probes rebuild the cell on the run's data in memory
