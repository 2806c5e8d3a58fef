"""Tuning: search spaces, the CLI on SQLite, validation-only objective, pruning, --params tuned, local journal
workers (one killed with SIGKILL), bad flags; and (with FUSIONBENCH_PG_URL) two machines' workers sharing one
study in PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pandas as pd
import pytest
import torch
from optuna.trial import TrialState

import benchmarks.train
import fusions
from benchmarks.cli import run_cli
from benchmarks.config import ConfigError, resolve
from benchmarks.data import make_synthetic
from benchmarks.experiment import RunSpec, build_config, load_run_dataset
from benchmarks.run import run_benchmark
from benchmarks.studies import StorageSpec
from benchmarks.train import resolve_hparams
from benchmarks.tune import TuneSpec, main, tune
from benchmarks.workqueue import ERROR, UNIT, WORKER, attempts
from tests.conftest import random_modalities
from tests.test_run import TINY_CONFIG

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "tiny.toml"
    path.write_text(TINY_CONFIG)
    return path


def tune_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("FUSIONBENCH_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "benchmarks.tune", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials() if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


@pytest.mark.parametrize("name", fusions.list_fusions())
def test_every_sampled_configuration_builds_and_runs(name):
    """Random draws from each fusion's search space build and run for 2, 3 and 4 modalities."""
    for n in (2, 3, 4):
        names = ["text", "audio", "vision", "extra"][:n]
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=n))
        for _ in range(6):
            trial = study.ask()
            hparams = fusions.fusion_class(name).search_space(trial, names)
            assert set(hparams) <= set(fusions.fusion_hparams(name))
            if "num_heads" in hparams:
                assert hparams["d_model"] % hparams["num_heads"] == 0
            if name == "grf":
                assert sorted(hparams["order"]) == sorted(names)
            model = fusions.build_fusion(name, [6, 3, 5, 4][:n], **resolve_hparams(hparams, names))
            xs, masks = random_modalities([6, 3, 5, 4][:n], [4, 3, 5, 2][:n], batch=2)
            assert torch.isfinite(model(xs, masks)).all()
            study.tell(trial, 0.0)


def test_a_fusion_without_a_search_space_says_so():
    class Bare(fusions.Fusion):
        registered_name = "bare"

    with pytest.raises(ValueError, match="fusion 'bare' declares no search space"):
        Bare.search_space(optuna.trial.FixedTrial({}), ["a", "b"])


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, tiny_config) -> Path:
    """A 3-trial CLI tuning of concat on tiny synthetic data with the default SQLite storage."""
    out = tmp_path_factory.mktemp("tuned")
    result = tune_cli("--fusion", "concat", "--trials", "3", "--config", str(tiny_config), "--out", str(out),
                      "--sampler-seed", "1", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("trial ") >= 3 and "best: trial" in result.stdout
    return out


def test_cli_tuning_writes_study_best_params_and_plots(tuned):
    best = json.loads((tuned / "best_params" / "synthetic" / "concat.json").read_text())
    assert best["fusion"] == "concat" and best["dataset"] == "synthetic" and best["metric"] == "valid_mae"
    assert set(best["params"]) == {"d_model", "ff_ratio", "dropout", "lr", "weight_decay", "batch_size"}
    assert set(best["config"]) == {"d_model", "dim_feedforward", "dropout", "protocol"}
    assert best["config"]["dim_feedforward"] == best["params"]["d_model"] * best["params"]["ff_ratio"]
    assert set(best["config"]["protocol"]) == {"lr", "weight_decay", "batch_size"}

    study = optuna.load_study(study_name=best["study_name"], storage=f"sqlite:///{tuned / 'studies.db'}")
    trials = study.get_trials()
    assert len(trials) == 3 and all(t.state == TrialState.COMPLETE for t in trials)
    assert best["trial"] == study.best_trial.number and best["value"] == study.best_value
    for trial in trials:  # every trial keeps its configuration, validation curve, worker and duration
        curve = trial.user_attrs["curve"]
        assert len(curve) == 2 and trial.value == min(row["valid_mae"] for row in curve)
        assert trial.user_attrs["config"]["hparams"]["d_model"] == trial.params["d_model"]
        assert trial.user_attrs["worker"] and trial.duration is not None
        assert sorted(trial.intermediate_values) == [1, 2]
    folder = tuned / "synthetic" / "concat"
    for name in ("history.png", "history.pdf", "importance.png", "importance.pdf"):
        assert (folder / name).stat().st_size > 0
    assert len(pd.read_csv(folder / "trials.csv")) == 3


def test_params_tuned_is_picked_up_by_the_runner(tuned, tiny_config, tmp_path, monkeypatch):
    best = json.loads((tuned / "best_params" / "synthetic" / "concat.json").read_text())
    untuned_spec = RunSpec(fusions=["concat"], config_file=str(tiny_config), seeds=[0], out=str(tmp_path / "run"))
    spec = RunSpec(**{**untuned_spec.__dict__, "params": str(tuned)})
    config = build_config(spec)
    _, described = load_run_dataset(spec, config)
    cell = resolve(config, "concat", described)
    assert cell.hparams["d_model"] == best["config"]["d_model"] and cell.hparams["dropout"] == best["config"]["dropout"]
    assert cell.protocol.lr == best["config"]["protocol"]["lr"]
    assert cell.hash == best["config_hash"]  # the very configuration of the best trial
    untuned = resolve(build_config(untuned_spec), "concat", described)
    assert cell.hash != untuned.hash
    with pytest.raises(ConfigError, match=r"was tuned under --protocol shared; this run trains under --protocol "
                                          r"reference: tune again with --protocol reference"):
        build_config(RunSpec(**{**spec.__dict__, "protocol": "reference"}))  # another question's answer

    records = run_benchmark(spec, quiet=True, report=False)
    assert records.loc[0, "config_hash"] == cell.hash

    monkeypatch.chdir(tmp_path)  # no results/tune here
    with pytest.raises(ConfigError, match="results/tune/best_params/synthetic/grf.json does not exist; create it "
                                          "with python -m benchmarks.tune --fusion grf --dataset synthetic"):
        build_config(RunSpec(fusions=["grf"], params="tuned"))


def test_tuning_reads_validation_data_only(tmp_path, tiny_config, monkeypatch):
    """A spy on ``evaluate``: tuning never evaluates the test split, and each value is a validation score."""
    test_ids = make_synthetic(sizes=(48, 24, 24), seq_lens=8, dims=[12, 5, 7]).test.ids
    evaluated = []
    original = benchmarks.train.evaluate

    def spy(model, split, *args, **kwargs):
        evaluated.append(split.ids)
        return original(model, split, *args, **kwargs)

    monkeypatch.setattr(benchmarks.train, "evaluate", spy)
    spec = TuneSpec(fusion="concat", trials=2, config_file=str(tiny_config), out=str(tmp_path), device="cpu",
                    quiet=True)
    best = tune(spec)
    assert evaluated and all(ids != test_ids for ids in evaluated)
    study = optuna.load_study(study_name=best["study_name"], storage=f"sqlite:///{tmp_path / 'studies.db'}")
    for trial in study.get_trials():
        assert trial.value == min(row["valid_mae"] for row in trial.user_attrs["curve"])
        assert "mae" not in trial.user_attrs  # no test metric is kept


@pytest.mark.filterwarnings("ignore:Fixed parameter lr")
def test_a_bad_configuration_is_pruned(tmp_path, tiny_config):
    """Two sound trials, then one with a learning rate of 1: the median pruner stops it at its first epoch."""
    spec = TuneSpec(fusion="concat", trials=3, config_file=str(tiny_config), out=str(tmp_path), device="cpu",
                    epochs=4, pruner_startup=2, pruner_warmup=1, study_name="prune", quiet=True)
    study = optuna.create_study(study_name="prune", storage=f"sqlite:///{tmp_path / 'studies.db'}")
    fixed = {"d_model": 32, "ff_ratio": 2, "dropout": 0.0, "weight_decay": 1e-2, "batch_size": 16}
    for k, lr in enumerate([1e-3, 2e-3, 1.0]):  # the slots' parameters, fixed before tuning starts
        study.enqueue_trial({**fixed, "lr": lr}, user_attrs={UNIT: f"trial-{k}"})
    tune(spec)
    states = [t.state for t in optuna.load_study(study_name="prune", storage=study._storage).get_trials()]
    assert states == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED]


@pytest.mark.slow
def test_two_local_workers_share_a_journal_and_a_killed_workers_trial_runs_again(tmp_path):
    """``--workers 2`` on the journal file, one worker SIGKILLed in the middle of a trial: the command says so and
    starts it again (``workers.run_workers``), a worker finds the trial's claim lock free, marks it failed and runs
    it again, and the command exits 0 with each of the 4 trials finished exactly once; the same command run again
    trains nothing."""
    config = tmp_path / "slow.toml"
    epochs = 150  # a trial lasts a few seconds: long enough to kill its worker in the middle of it
    config.write_text(TINY_CONFIG.replace("max_epochs = 2", f"max_epochs = {epochs}")
                      .replace("patience = 5", f"patience = {epochs}"))
    out = tmp_path / "journal"
    args = ["--fusion", "concat", "--trials", "4", "--workers", "2", "--config", str(config), "--out", str(out),
            "--device", "cpu", "--quiet"]
    command = subprocess.Popen([sys.executable, "-m", "benchmarks.tune", *args], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    journal = StorageSpec(journal=str(out / "studies.journal"))
    deadline, victim = time.monotonic() + 240, None
    while victim is None and time.monotonic() < deadline and command.poll() is None:
        time.sleep(0.05)
        names = optuna.get_all_study_names(journal.open()) if (out / "studies.journal").exists() else []
        victim = next((t for name in names for t in optuna.load_study(study_name=name, storage=journal.open())
                       .get_trials() if t.state == TrialState.RUNNING and WORKER in t.user_attrs
                       and 1 <= len(t.intermediate_values) <= epochs // 10), None)  # far from finished
    assert victim is not None, command.communicate()
    pid = int(victim.user_attrs[WORKER].rsplit(":", 1)[1])
    os.kill(pid, signal.SIGKILL)
    _, stderr = command.communicate(timeout=300)
    assert command.returncode == 0, stderr
    assert "stopped: killed by SIGKILL" in stderr and "started again" in stderr, stderr

    rerun = tune_cli(*args)
    assert rerun.returncode == 0 and "warning" not in rerun.stderr, rerun.stderr
    assert (out / "studies.journal").exists() and not (out / "studies.db").exists()
    best = json.loads((out / "best_params" / "synthetic" / "concat.json").read_text())
    assert best["trials"]["running"] == 0
    study = optuna.load_study(study_name=best["study_name"], storage=journal.open())
    chains = attempts(study.get_trials())
    assert sorted(chains) == [f"trial-{k}" for k in range(4)] and len(study.get_trials()) == 5
    assert [t.state for t in chains[victim.user_attrs[UNIT]]] == [TrialState.FAIL, TrialState.COMPLETE]
    assert f"{victim.user_attrs[WORKER]} ended while running it" in chains[victim.user_attrs[UNIT]][0].user_attrs[ERROR]
    assert all([t.state for t in chain] == [TrialState.COMPLETE] for name, chain in chains.items()
               if name != victim.user_attrs[UNIT])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--fusion", "nope"], "unknown fusion 'nope'; known fusions: "),
        (["--fusion", "concat", "--trials", "0"], "--trials must be >= 1, got 0"),
        (["--fusion", "concat", "--workers", "0"], "--workers must be >= 1, got 0"),
        (["--fusion", "concat", "--storage", "not a url"], "--storage 'not a url' is not a database URL"),
        (["--fusion", "concat", "--storage", "nosuchdb://host/db"], "--storage nosuchdb://host/db: cannot open"),
        (["--fusion", "concat", "--storage", "postgresql://user:secret@127.0.0.1:9/db"],
         "--storage postgresql://user:***@127.0.0.1:9/db: cannot open the database (connection to server"),
    ],
)
def test_bad_flags_give_one_line(tmp_path, tiny_config, capsys, args, message):
    status = run_cli(main, [*args, "--config", str(tiny_config), "--out", str(tmp_path / "out"), "--device", "cpu"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert "secret" not in lines[0]


@pytest.mark.postgres
def test_two_machines_share_one_study_in_postgres(tmp_path, tiny_config, pg_url):
    """Two workers (as on two machines: same command, own --out) fill one study of exactly 4 trials."""
    name = f"test-tune-{uuid.uuid4().hex[:8]}"
    args = ["--fusion", "concat", "--trials", "4", "--config", str(tiny_config), "--storage", pg_url,
            "--study-name", name, "--device", "cpu", "--heartbeat", "1"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    workers = [subprocess.Popen([sys.executable, "-m", "benchmarks.tune", *args, "--out", str(tmp_path / f"m{k}")],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
               for k in range(2)]
    try:
        outputs = [worker.communicate(timeout=300) for worker in workers]
        assert [worker.returncode for worker in workers] == [0, 0], outputs
        study = optuna.load_study(study_name=name, storage=StorageSpec(url=pg_url).open())
        trials = study.get_trials()
        assert len(finished(study)) == 4
        assert sorted(t.user_attrs[UNIT] for t in finished(study)) == [f"trial-{k}" for k in range(4)]
        assert len({t.number for t in trials}) == len(trials)
        duplicates = [t for t in trials if t.state == TrialState.FAIL]  # both machines may have added the slots
        assert all("duplicate" in t.user_attrs["error"] for t in duplicates)
        bests = [json.loads((tmp_path / f"m{k}" / "best_params/synthetic/concat.json").read_text()) for k in range(2)]
        assert bests[0]["trial"] == bests[1]["trial"] == study.best_trial.number
    finally:
        optuna.delete_study(study_name=name, storage=StorageSpec(url=pg_url).open())
