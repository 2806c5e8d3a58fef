"""The runner against faults: a cell whose training diverges, a fusion whose configuration does not fit the
modality selection, results stored for other inputs, and the training protocol's guarantees (early stopping,
the test split read only for the final evaluation)."""

from __future__ import annotations

import json
import math
import pickle
import re
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from optuna.trial import TrialState

import benchmarks.config
import benchmarks.train
from benchmarks.cli import CellsFailed, run_cli
from benchmarks.config import Variant, fit_to_modalities, load_preset, merge_layers, resolve, value_source
from benchmarks.experiment import RunSpec, config_layers
from benchmarks.grid import run_grid
from benchmarks.run import main, run_benchmark
from benchmarks.studies import StorageSpec
from benchmarks.train import Diverged, build_cell_model, evaluate, train_cell
from benchmarks.workqueue import attempts
from records.layout import cell_dir
from tests import mosi_fixtures
from tests.test_run import TINY_CONFIG, _cell


@pytest.fixture
def tiny(tmp_path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_CONFIG)
    return path


def mult_pickle(path: Path, extreme: float | None = None) -> Path:
    """A small MulT pickle (12 / 6 / 6 segments); ``extreme``: put into one real audio step of the first
    training and the first test sample (as a tool that writes -FLT_MAX for a missing value does)."""
    mosi_fixtures.write_mult(path, mosi_fixtures.sample_segments((12, 6, 6)))
    if extreme is not None:
        data = pickle.loads(path.read_bytes())
        for split in ("train", "test"):
            audio = data[split]["audio"]
            audio[0, np.nonzero(audio[0].any(-1))[0][0], 1] = extreme
        path.write_bytes(pickle.dumps(data))
    return path


def cli(capsys, *args: str) -> tuple[int, str]:
    """``python -m benchmarks.run ARGS`` in this process: exit status and stderr."""
    status = run_cli(main, ["--device", "cpu", "--no-report", *args])
    return status, capsys.readouterr().err


# --- A diverged cell (issue 12, item 3a) --------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_diverging_cell_is_recorded_as_failed_and_the_run_goes_on(tmp_path, tiny, capsys):
    """A feature value of -3e38 makes GRF's training loss NaN in epoch 1: its cell is failed (epoch and reason,
    NaN metrics, in runs.csv and its record.json), concat's cell still runs and the run ends with a summary and
    exit status 1. Concat's predictions stay finite (MAE ~1e34): by the rule, a finite result is a result."""
    data = mult_pickle(tmp_path / "mosi_data.pkl", extreme=-3e38)
    args = ["--fusions", "grf,concat", "--dataset", "mosi", "--data-path", str(data), "--seeds", "1",
            "--config", str(tiny), "--out", str(tmp_path / "out")]
    status, err = cli(capsys, *args)
    assert status == 1, err
    reason = "training diverged at epoch 1: the training loss is nan"
    assert f"error: 1 of 2 cells failed; {tmp_path / 'out' / 'runs.csv'} marks them (status 'failed')" in err
    assert f"  grf seed 0: {reason}" in err.splitlines()

    runs = pd.read_csv(tmp_path / "out" / "runs.csv").set_index("fusion")
    assert runs.loc["grf", "status"] == "failed" and runs.loc["grf", "error"] == reason
    assert runs.loc["grf", "epochs"] == 1 and runs.loc["grf", ["mae", "corr", "acc7", "valid_mae"]].isna().all()
    assert runs.loc["concat", "status"] == "done" and runs.loc["concat", "mae"] > 1e30
    folder = cell_dir(tmp_path / "out", "grf", runs.loc["grf", "config_hash"], 0)
    assert json.loads((folder / "record.json").read_text())["status"] == "failed"
    assert not (folder / "predictions.csv").exists() and not (folder / "checkpoint.pt").exists()

    status, err = cli(capsys, *args)  # a rerun tries the failed cell again, and says so; concat is reused
    assert status == 1
    assert f"grf seed 0: failed in an earlier run ({reason}); trying again" in err
    assert "concat seed 0: already done, skipped" in err


@pytest.mark.parametrize("split, epoch, message", [
    ("train", 1, r"training diverged at epoch 1: the training loss is nan"),
    ("valid", 1, r"training diverged at epoch 1: validation: 1 of 24 predictions are not finite"),
    ("test", 2, r"training diverged at epoch 2: test: 1 of 24 predictions are not finite \(best-validation weights "
                r"of epoch [12]\)"),
])
def test_divergence_is_caught_on_every_split_with_its_epoch(split, epoch, message):
    cell, data = _cell(epochs=2)
    getattr(data, split).xs[1][0, 0, 0] = -3e38
    with pytest.raises(Diverged) as caught:
        train_cell(cell, data, seed=0)
    assert re.fullmatch(message, str(caught.value)) and caught.value.epoch == epoch


def test_non_finite_class_scores_are_not_scored():
    """Classification used to take the argmax of NaN logits and report an accuracy."""
    cell, data = _cell(epochs=1)
    for split in data.splits.values():
        split.labels = (split.labels > 0).long()
    data = type(data)(name="toy", train=data.train, valid=data.valid, test=data.test,
                      modality_names=data.modality_names, task="multiclass", num_classes=2)
    model = build_cell_model(cell, data)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(Diverged, match="24 of 24 predictions are not finite"):
        evaluate(model, data.test, "multiclass", torch.device("cpu"))


# --- Modality subsets against a preset (item 7) -------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_presets_order_is_fitted_to_the_selected_modalities(tmp_path, tiny, capsys):
    data = mult_pickle(tmp_path / "mosi_data.pkl")
    status, err = cli(capsys, "--fusions", "grf,concat", "--dataset", "mosi", "--data-path", str(data),
                      "--modalities", "text,audio", "--seeds", "1", "--epochs", "1", "--config", str(tiny),
                      "--out", str(tmp_path / "out"))
    assert status == 0, err
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert list(runs.status) == ["done", "done"]
    config = json.loads((cell_dir(tmp_path / "out", "grf", runs.config_hash[0], 0) / "config.json").read_text())
    assert config["hparams"]["order"] == ["text", "audio"]  # the preset's text, vision, audio without vision
    fitted = fit_to_modalities(load_preset("paper"), ["audio", "text"])
    assert fitted["datasets"]["mosi"]["fusions"]["grf"]["order"] == ["text", "audio"]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_users_order_that_does_not_fit_fails_its_fusion_only_and_names_its_source(tmp_path, tiny, capsys):
    data = mult_pickle(tmp_path / "mosi_data.pkl")
    config = tmp_path / "order.toml"
    config.write_text(TINY_CONFIG + '\n[datasets.mosi.fusions.grf]\norder = ["text", "vision", "audio"]\n')
    status, err = cli(capsys, "--fusions", "grf,concat", "--dataset", "mosi", "--data-path", str(data),
                      "--modalities", "text,audio", "--seeds", "2", "--epochs", "1", "--config", str(config),
                      "--out", str(tmp_path / "out"))
    assert status == 1, err
    error = (f"order ['text', 'vision', 'audio'] from --config {config} [datasets.mosi.fusions.grf] must name "
             "each of this run's modalities once: text, audio")
    assert f"grf: configuration error, its cells are not run: {error}" in err  # said before training starts
    assert err.index("configuration error") < err.index("concat seed 0")
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert list(zip(runs.fusion, runs.status)) == [("grf", "failed")] * 2 + [("concat", "done")] * 2
    assert (runs.error[:2] == f"configuration: {error}").all() and runs.mae[:2].isna().all()
    assert f"  grf seed 1: configuration: {error}" in err.splitlines()


def test_a_fusion_spec_order_and_a_constructor_error_are_named(tmp_path, tiny):
    variant = Variant("grf:order=audio-vision", "grf", {"order": ["audio", "vision"]})
    bad_heads = Variant("late:heads=3", "late", {"num_heads": 3})  # d_model 8 does not split into 3 heads
    spec = RunSpec(fusions=[variant, bad_heads, "concat"], seeds=[0], epochs=1, config_file=str(tiny),
                   device="cpu", out=str(tmp_path / "out"), modalities=["text", "audio"])
    records = run_benchmark(spec, quiet=True, report=False, check=False).set_index("fusion")
    assert records.loc["grf:order=audio-vision", "error"] == (
        "configuration: order ['audio', 'vision'] from fusion spec 'grf:order=audio-vision' must name each of "
        "this run's modalities once: text, audio")
    assert "divisible" in records.loc["late:heads=3", "error"]
    assert records.loc["concat", "status"] == "done"
    with pytest.raises(CellsFailed) as failed:
        run_benchmark(spec, quiet=True, report=False)
    assert len(failed.value.details) == 2


def test_the_source_of_a_value_follows_resolves_precedence(tmp_path, tiny):
    config = tmp_path / "user.toml"
    config.write_text('[fusions.grf]\norder = ["audio", "text", "vision"]\n')
    layers = config_layers(RunSpec(fusions=["grf"], config_file=str(config)))
    # A later source wins at every level: the user's general table beats the preset's MOSI table.
    assert value_source(layers, "grf", "mosi", "order") == f"--config {config} [fusions.grf]"
    assert value_source(layers, "grf", "synthetic", "order") == f"--config {config} [fusions.grf]"
    assert value_source(layers, "grf", "synthetic", "d_model") == "preset 'quick' [fusions.grf]"
    assert value_source(layers, "grf", "synthetic", "share_weights") is None
    own = tmp_path / "own.toml"
    own.write_text('[fusions.grf]\norder = ["audio", "text", "vision"]\n'
                   '[datasets.mosi.fusions.grf]\norder = ["vision", "audio", "text"]\n')
    layers = config_layers(RunSpec(fusions=["grf"], config_file=str(own)))
    assert value_source(layers, "grf", "mosi", "order") == f"--config {own} [datasets.mosi.fusions.grf]"


def test_a_users_general_value_beats_the_presets_more_specific_one(tmp_path):
    """The user's ``[fusions.grf] order`` is used on MOSI although the preset sets ``[datasets.mosi.fusions.grf]``
    (it was silently overridden); ``--epochs`` beats a per-fusion ``max_epochs`` of an earlier source."""
    user = tmp_path / "user.toml"
    user.write_text('[fusions.grf]\norder = ["audio", "text", "vision"]\n'
                    '[fusions.concat.protocol]\nmax_epochs = 9\n')
    described = {"name": "mosi", "path": None, "options": {}, "modalities": ["text", "audio", "vision"]}
    config = merge_layers(config_layers(RunSpec(fusions=["grf"], dataset="mosi", config_file=str(user))))
    assert resolve(config, "grf", described).hparams["order"] == ["audio", "text", "vision"]
    assert resolve(config, "concat", described).protocol.max_epochs == 9
    config = merge_layers(config_layers(RunSpec(fusions=["grf"], dataset="mosi", config_file=str(user), epochs=2)))
    assert resolve(config, "concat", described).protocol.max_epochs == 2


# --- Resuming never reuses a result computed from other inputs ----------------------------------------------


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_changed_data_file_is_not_reused_and_a_moved_one_is(tmp_path, tiny, capsys):
    data = mult_pickle(tmp_path / "mosi_data.pkl")
    args = ["--fusions", "concat", "--dataset", "mosi", "--seeds", "1", "--epochs", "1", "--config", str(tiny),
            "--out", str(tmp_path / "out")]
    assert cli(capsys, *args, "--data-path", str(data))[0] == 0
    first = pd.read_csv(tmp_path / "out" / "runs.csv")

    moved = tmp_path / "elsewhere" / "mosi_data.pkl"
    moved.parent.mkdir()
    data.rename(moved)  # the same content at another path: the same cell
    status, err = cli(capsys, *args, "--data-path", str(moved))
    assert status == 0 and "concat seed 0: already done, skipped" in err

    content = pickle.loads(moved.read_bytes())
    content["train"]["text"][0] *= 2  # the same path, other values
    moved.write_bytes(pickle.dumps(content))
    status, err = cli(capsys, *args, "--data-path", str(moved))
    assert status == 0 and "already done" not in err
    assert (f"concat seed 0: cells/concat-{first.config_hash[0]}/seed0 holds a result from other inputs "
            "(dataset.fingerprint); training anew") in err
    assert pd.read_csv(tmp_path / "out" / "runs.csv").config_hash[0] != first.config_hash[0]


def test_changed_code_or_epochs_are_trained_anew(tmp_path, tiny, capsys, monkeypatch):
    args = ["--fusions", "concat", "--seeds", "1", "--config", str(tiny), "--out", str(tmp_path / "out")]
    assert cli(capsys, *args, "--epochs", "1")[0] == 0
    monkeypatch.setattr(benchmarks.config, "code_version", lambda: "edited-code")
    status, err = cli(capsys, *args, "--epochs", "1")
    assert status == 0 and "holds a result from other inputs (code); training anew" in err
    status, err = cli(capsys, *args, "--epochs", "2")
    assert status == 0 and "holds a result from other inputs (protocol.max_epochs); training anew" in err
    assert len(list((tmp_path / "out" / "cells").glob("concat-*/seed0/record.json"))) == 3


def test_the_identity_covers_autocast_and_the_data_but_not_the_datas_path():
    cell, _ = _cell()
    described = {"name": "synthetic", "path": "/a", "options": {}, "fingerprint": "f1"}
    config = {"fusions": {"grf": cell.hparams}}
    base = resolve(config, "grf", described)
    assert resolve(config, "grf", {**described, "path": "/b"}).hash == base.hash
    assert resolve(config, "grf", {**described, "fingerprint": "f2"}).hash != base.hash
    assert resolve(config, "grf", described, amp=True).hash != base.hash


def test_a_saved_training_state_is_resumed_only_for_the_same_inputs(tmp_path):
    """A state saved while training on other data is not resumed: the result is that of a fresh training."""
    cell, data = _cell(epochs=2)
    state, lines = tmp_path / "state.pt", []

    def stop(epoch, score, row):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_cell(cell, data, seed=1, state_path=state, on_epoch=stop)
    _, other = _cell(epochs=2)
    other.train.xs[0][:] *= 2
    fresh = train_cell(cell, other, seed=1)
    result = train_cell(cell, other, seed=1, state_path=state, say=lines.append)
    assert lines == ["the saved training state state.pt was computed from other inputs (data); training from "
                     "epoch 0"]
    assert result.test.metrics == fresh.test.metrics and len(result.curves) == 2

    lines.clear()
    with pytest.raises(KeyboardInterrupt):
        train_cell(cell, other, seed=2, state_path=state, on_epoch=stop)
    train_cell(cell, other, seed=1, state_path=state, say=lines.append)
    assert lines == ["the saved training state state.pt was computed from other inputs (seed); training from "
                     "epoch 0"]


def test_a_shared_grid_trains_changed_inputs_anew(tmp_path, tiny, capsys, monkeypatch):
    storage = StorageSpec(url=f"sqlite:///{tmp_path / 'grid.db'}")
    spec = RunSpec(fusions=["concat"], seeds=[0], epochs=1, config_file=str(tiny), device="cpu",
                   out=str(tmp_path / "a"))
    first = run_grid(spec, storage, study_name="named", quiet=True, report=False)
    capsys.readouterr()
    monkeypatch.setattr(benchmarks.config, "code_version", lambda: "edited-code")
    spec.out = str(tmp_path / "b")
    again = run_grid(spec, storage, study_name="named", report=False)
    assert again.config_hash[0] != first.config_hash[0]
    assert list((tmp_path / "b" / "cells").glob("concat-*/seed0/record.json"))  # trained here, not reused
    assert ("study 'named' holds results of these fusions and seeds from other inputs (code); they are trained "
            "anew") in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_diverging_grid_cell_is_retried_then_recorded_as_failed(tmp_path, tiny):
    data = mult_pickle(tmp_path / "mosi_data.pkl", extreme=-3e38)
    storage = StorageSpec(url=f"sqlite:///{tmp_path / 'grid.db'}", max_retries=1)
    spec = RunSpec(fusions=["grf", "concat"], dataset="mosi", dataset_path=str(data), seeds=[0], epochs=1,
                   config_file=str(tiny), device="cpu", out=str(tmp_path / "out"))
    with pytest.raises(CellsFailed) as failed:
        run_grid(spec, storage, study_name="diverging", quiet=True, report=False)
    assert failed.value.details == ["grf seed 0: training diverged at epoch 1: the training loss is nan"]
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert list(zip(runs.fusion, runs.status)) == [("grf", "failed"), ("concat", "done")]
    study = optuna.load_study(study_name="diverging", storage=storage.open())
    chains = attempts(study.get_trials())
    assert [[t.state for t in chain] for chain in chains.values()] == [[TrialState.FAIL] * 2, [TrialState.COMPLETE]]


# --- The protocol: early stopping, and the test split read once, at the end ---------------------------------


def test_early_stopping_stops_after_patience_epochs_without_improvement():
    cell, data = _cell(epochs=40, patience=2, lr=1e-2)
    result = train_cell(cell, data, seed=0)
    scores = [row["valid_mae"] for row in result.curves]
    assert result.epochs < 40 and len(scores) == result.epochs  # it stopped early
    assert result.epochs == result.best_epoch + 2 and scores[result.best_epoch - 1] == min(scores)
    assert all(score >= min(scores) for score in scores[result.best_epoch:])


def test_the_runner_reads_the_test_split_only_for_the_final_evaluation(tmp_path, tiny, monkeypatch):
    """A spy on every batch source the training builds (``Batches``, which ``evaluate`` uses too): per cell the
    training split, then the validation split once per epoch, then the test split once, with the
    best-validation weights, and nothing after it but the final validation pass."""
    events = []
    original_init, original_evaluate = benchmarks.train.Batches.__init__, benchmarks.train.evaluate

    def spy_init(self, split, device):
        events.append(("batches", tuple(split.ids)))
        original_init(self, split, device)

    def spy_evaluate(model, split, *args, **kwargs):
        weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        events.append(("weights", weights))
        return original_evaluate(model, split, *args, **kwargs)

    monkeypatch.setattr(benchmarks.train.Batches, "__init__", spy_init)
    monkeypatch.setattr(benchmarks.train, "evaluate", spy_evaluate)
    config = tmp_path / "patience.toml"
    config.write_text(TINY_CONFIG.replace("max_epochs = 2", "max_epochs = 6").replace("patience = 5",
                                                                                      "patience = 1"))
    spec = RunSpec(fusions=["concat"], seeds=[0, 1], config_file=str(config), device="cpu", out=str(tmp_path))
    records = run_benchmark(spec, quiet=True, report=False)
    from benchmarks.data import make_synthetic

    data = make_synthetic(sizes=(48, 24, 24), seq_lens=8, dims=[12, 5, 7])
    names = {tuple(data.train.ids): "train", tuple(data.valid.ids): "valid", tuple(data.test.ids): "test"}
    sources = [names[ids] for kind, ids in events if kind == "batches"]
    expected = []
    for row in records.itertuples():
        expected += ["train", *["valid"] * row.epochs, "test", "valid"]
    assert sources == expected
    tested = [events[k - 1][1] for k, (kind, ids) in enumerate(events) if kind == "batches" and names[ids] == "test"]
    for weights, row in zip(tested, records.itertuples()):
        checkpoint = torch.load(cell_dir(tmp_path, "concat", row.config_hash, row.seed) / "checkpoint.pt",
                                weights_only=False)["state_dict"]
        assert all(torch.equal(weights[k], checkpoint[k]) for k in checkpoint)  # the best-validation weights
    assert math.isfinite(records.mae.sum())


@pytest.mark.filterwarnings("ignore:Fixed parameter lr")
def test_a_diverging_tuning_trial_is_pruned_not_retried(tmp_path, tiny):
    from benchmarks.tune import TuneSpec, tune
    from benchmarks.workqueue import UNIT

    spec = TuneSpec(fusion="concat", trials=2, config_file=str(tiny), out=str(tmp_path), device="cpu",
                    study_name="diverge", quiet=True)
    study = optuna.create_study(study_name="diverge", storage=f"sqlite:///{tmp_path / 'studies.db'}")
    fixed = {"d_model": 32, "ff_ratio": 2, "dropout": 0.0, "weight_decay": 1e-2, "batch_size": 16}
    for k, lr in enumerate([1e30, 1e-3]):  # a learning rate of 1e30 makes the loss NaN in the first epoch
        study.enqueue_trial({**fixed, "lr": lr}, user_attrs={UNIT: f"trial-{k}"})
    tune(spec)
    trials = optuna.load_study(study_name="diverge", storage=study._storage).get_trials()
    assert [t.state for t in trials] == [TrialState.PRUNED, TrialState.COMPLETE]  # no retry of trial 0
