"""The runner: CLI end to end, records, determinism, resume after a real kill, bad input, other datasets."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from benchmarks.config import ConfigError, Protocol, resolve
from benchmarks.data import make_synthetic
from benchmarks.experiment import RunSpec, build_config
from benchmarks.run import run_benchmark
from benchmarks.train import build_cell_model, evaluate, lr_factor, train_cell
from records.layout import cell_dir
from tasks import get_task

ROOT = Path(__file__).resolve().parents[1]
SENTIMENT_METRICS = get_task("sentiment").metrics

TINY_CONFIG = """
[protocol]
warmup_epochs = 1
max_epochs = 2
patience = 5
batch_size = 16

[datasets.synthetic]
sizes = [48, 24, 24]
seq_lens = 8
dims = [12, 5, 7]

[fusions.grf]
d_model = 8
num_heads = 2
num_layers = 1
dim_feedforward = 16

[fusions.concat]
d_model = 8
dim_feedforward = 16

[fusions.late]
d_model = 8
num_heads = 2
num_layers = 1
dim_feedforward = 16

[fusions.pairwise]
d_model = 8
num_heads = 2
num_layers = 1
"""


@pytest.fixture
def tiny_config(tmp_path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_CONFIG)
    return path


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("FUSIONBENCH_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.run", *args], cwd=ROOT, capture_output=True, text=True,
        timeout=timeout, env=env,
    )


def test_cli_end_to_end_writes_every_file_and_column(tmp_path, tiny_config):
    out = tmp_path / "out"
    result = run_cli("--fusions", "grf,concat", "--seeds", "2", "--epochs", "2", "--config", str(tiny_config),
                     "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "mae" in result.stdout and "grf" in result.stdout  # the terminal table

    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 4 and sorted(zip(runs.fusion, runs.seed)) == [("concat", 0), ("concat", 1), ("grf", 0),
                                                                     ("grf", 1)]
    expected = ["fusion", "seed", "dataset", "n_train", "n_valid", "n_test", *SENTIMENT_METRICS, "params",
                "train_seconds", "epochs", "best_epoch", "config_hash", "valid_mae", "device", "status", "error"]
    assert set(expected) <= set(runs.columns)
    assert (runs.status == "done").all() and runs.error.isna().all()
    assert (runs[["n_train", "n_valid", "n_test"]] == [48, 24, 24]).all().all()
    assert (runs.epochs == 2).all() and runs.best_epoch.between(1, 2).all() and (runs.params > 0).all()
    assert runs[[m for m in SENTIMENT_METRICS if m != "corr"]].notna().all().all()  # corr: NaN if constant

    meta = json.loads((out / "meta.json").read_text())
    assert {"command", "versions", "git", "device", "device_name", "time_utc", "dataset", "cells"} <= set(meta)
    assert meta["versions"]["torch"] and meta["git"]["commit"]
    tex = (out / "table.tex").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"\textbf{" in tex
    assert "| fusion" in (out / "table.md").read_text()
    assert (out / "figures" / "seeds.png").stat().st_size > 0 and (out / "figures" / "seeds.pdf").exists()

    for _, row in runs.iterrows():
        folder = cell_dir(out, row.fusion, row.config_hash, row.seed)
        predictions = pd.read_csv(folder / "predictions.csv")
        assert list(predictions.columns) == ["id", "label", "prediction"] and len(predictions) == 24
        assert len(pd.read_csv(folder / "curves.csv")) == 2
        assert not (folder / "state.pt").exists()
        # The checkpoint rebuilds the model that made the stored predictions.
        checkpoint = torch.load(folder / "checkpoint.pt", weights_only=False)
        config = checkpoint["config"]
        data = make_synthetic(**config["dataset"]["options"])
        cell = resolve({"fusions": {row.fusion: config["hparams"]}}, row.fusion, config["dataset"])
        model = build_cell_model(cell, data)
        model.load_state_dict(checkpoint["state_dict"])
        outputs = evaluate(model, data.test, "sentiment", torch.device("cpu")).outputs
        assert outputs == pytest.approx(predictions.prediction.to_numpy(), abs=1e-5)

    rerun = run_cli("--fusions", "grf,concat", "--seeds", "2", "--epochs", "2", "--config", str(tiny_config),
                    "--out", str(out))
    assert rerun.returncode == 0 and rerun.stderr.count("already done") == 4
    assert pd.read_csv(out / "runs.csv").equals(runs)


def _cell(fusion: str = "grf", epochs: int = 3, **protocol):
    config = build_config(RunSpec(fusions=[fusion], config_file=None))
    config["fusions"][fusion] = {"d_model": 8, "num_heads": 2, "num_layers": 1, "dim_feedforward": 16}
    config["protocol"].update(max_epochs=epochs, warmup_epochs=1, batch_size=16, **protocol)
    data = make_synthetic(sizes=(48, 24, 24), seq_lens=8, dims=[12, 5, 7])
    return resolve(config, fusion, {"name": "synthetic", "path": None, "options": {}}), data


def test_same_cell_twice_gives_identical_metrics():
    cell, data = _cell()
    first, second = (train_cell(cell, data, seed=3) for _ in range(2))
    assert first.test.metrics == second.test.metrics
    assert [row["train_loss"] for row in first.curves] == [row["train_loss"] for row in second.curves]
    other = train_cell(cell, data, seed=4)
    assert other.test.metrics != first.test.metrics


def test_resumed_cell_equals_uninterrupted(tmp_path):
    """Stopping after every epoch and resuming from the saved state gives the uninterrupted result."""
    cell, data = _cell(epochs=4)
    reference = train_cell(cell, data, seed=1)
    state = tmp_path / "state.pt"

    class Stop(Exception):
        pass

    def stop(epoch, score, row):
        raise Stop

    for _ in range(3):
        with pytest.raises(Stop):
            train_cell(cell, data, seed=1, state_path=state, on_epoch=stop)
    resumed = train_cell(cell, data, seed=1, state_path=state)
    assert resumed.epochs == 4 and len(resumed.curves) == 4
    assert resumed.test.metrics == reference.test.metrics
    assert [r["valid_loss"] for r in resumed.curves] == [r["valid_loss"] for r in reference.curves]


@pytest.mark.slow
def test_killed_run_resumes_with_every_cell_once(tmp_path, tiny_config):
    """Kill a real run (SIGKILL) mid-grid, start it again: every cell exactly once, same records as a clean run,
    and the interrupted cell resumes at the epoch it had stored (its first epoch line is the next one), not
    from the start."""
    config = tmp_path / "resume.toml"
    config.write_text(TINY_CONFIG.replace("max_epochs = 2", "max_epochs = 6"))
    args = ["--fusions", "grf,concat", "--seeds", "2", "--config", str(config), "--no-report"]
    out = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "benchmarks.run", *args, "--quiet", "--out", str(out)],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not list(out.glob("cells/*/seed*/record.json")):
        time.sleep(0.05)
    while time.monotonic() < deadline and not list(out.glob("cells/*/seed*/state.pt")):
        time.sleep(0.05)  # the next cell has begun and stored an epoch
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert list(out.glob("cells/*/seed*/record.json")), "the run ended before the kill"
    assert len(list(out.glob("cells/*/seed*/record.json"))) < 4, "the run finished before the kill"
    (state,) = out.glob("cells/*/seed*/state.pt")
    saved_epoch = torch.load(state, weights_only=False)["epoch"]
    assert 1 <= saved_epoch < 6, "the interrupted cell had no epoch to resume from, or had finished"
    fusion, seed = state.parent.parent.name.rpartition("-")[0], state.parent.name.removeprefix("seed")

    resumed = run_cli(*args, "--out", str(out))
    assert resumed.returncode == 0, resumed.stderr
    cell = f"{fusion} seed {seed}"
    assert f"{cell}: resuming from epoch {saved_epoch} of 6 (saved training state)" in resumed.stderr
    epochs = [int(line.split(" epoch ")[1].split("/")[0]) for line in resumed.stderr.splitlines()
              if f"] {cell} epoch " in line]
    assert epochs and epochs[0] == saved_epoch + 1, resumed.stderr  # not epoch 1: it resumed, not restarted
    assert run_cli(*args, "--quiet", "--out", str(tmp_path / "clean")).returncode == 0
    killed, clean = (pd.read_csv(p / "runs.csv") for p in (out, tmp_path / "clean"))
    assert sorted(zip(killed.fusion, killed.seed)) == sorted(zip(clean.fusion, clean.seed))
    assert len(killed) == 4 and not killed.duplicated(["fusion", "seed"]).any()
    columns = ["fusion", "seed", *SENTIMENT_METRICS, "epochs", "best_epoch"]
    pd.testing.assert_frame_equal(killed[columns], clean[columns])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--fusions", "grf,nope"], "unknown fusion 'nope'; known fusions: "),
        (["--fusions", "grf", "--seeds", "1,x"], "--seeds '1,x': expected a count"),
        (["--fusions", "grf", "--seeds", "0"], "--seeds '0': expected a count"),
        (["--fusions", "grf", "--preset", "huge"], "unknown preset 'huge'; presets: paper, quick"),
        (["--fusions", "grf", "--dataset", "imagenet"], "unknown dataset 'imagenet'; known datasets: "),
        (["--fusions", "grf", "--device", "tpu"], "--device 'tpu': expected auto, cpu, cuda or cuda:K"),
        (["--fusions", "grf", "--amp", "--device", "cpu"], "--amp uses bf16 autocast on CUDA"),
        (["--fusions", "grf", "--epochs", "0"], "--epochs must be >= 1"),
    ],
)
def test_bad_input_gives_one_line_and_nonzero_exit(tmp_path, args, message):
    out = tmp_path / "never"
    result = run_cli(*args, "--out", str(out), timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert not (out / "runs.csv").exists() and not (out / "cells").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_cuda_is_refused(tmp_path):
    result = run_cli("--fusions", "grf", "--device", "cuda", "--out", str(tmp_path / "x"), timeout=120)
    assert result.returncode == 2 and "CUDA is not available" in result.stderr


def test_unknown_config_key_is_named(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[fusions.grf]\ndepth = 3\n")
    result = run_cli("--fusions", "grf", "--config", str(bad), "--out", str(tmp_path / "x"), timeout=120)
    assert result.returncode == 2 and "unknown key fusions.grf.depth" in result.stderr
    bad.write_text("[protocol]\nlearning_rate = 3\n")
    with pytest.raises(ConfigError, match="unknown key protocol.learning_rate"):
        build_config(RunSpec(fusions=["grf"], config_file=str(bad)))
    bad.write_text("[trainer]\nx = 1\n")
    with pytest.raises(ConfigError, match="unknown config key 'trainer'"):
        build_config(RunSpec(fusions=["grf"], config_file=str(bad)))


def test_unwritable_output_is_refused_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run_cli("--fusions", "grf", "--out", str(blocker / "out"), timeout=120)
    assert result.returncode == 2 and "is not writable" in result.stderr


def test_learning_rate_schedule():
    assert lr_factor(0, 4, 20, 0.01) == pytest.approx(0.25)
    assert lr_factor(3, 4, 20, 0.01) == pytest.approx(1.0)
    assert lr_factor(4, 4, 20, 0.01) == pytest.approx(1.0)
    assert lr_factor(12, 4, 20, 0.01) == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_factor(20, 4, 20, 0.01) == pytest.approx(0.01)
    assert Protocol().lr == 1e-3 and Protocol().patience == 20 and Protocol().max_epochs == 100


def test_presets_resolve_for_every_fusion():
    for preset in ("quick", "paper"):
        config = build_config(RunSpec(fusions=["grf"], preset=preset))
        for fusion in ("grf", "pairwise", "late", "concat"):
            cell = resolve(config, fusion, {"name": "mosi", "path": None, "options": {}})
            assert isinstance(cell.protocol, Protocol)
    paper = build_config(RunSpec(fusions=["grf"], preset="paper"))
    grf = resolve(paper, "grf", {"name": "mosi", "path": None, "options": {}})
    assert grf.hparams["order"] == ["text", "vision", "audio"] and grf.hparams["num_layers"] == 4


def test_mfeat_runs_as_classification(tmp_path, tiny_config):
    spec = RunSpec(fusions=["concat"], dataset="mfeat", seeds=[0], epochs=1, config_file=str(tiny_config),
                   out=str(tmp_path / "mfeat"), modalities=["fou", "zer", "mor"])
    records = run_benchmark(spec, quiet=True)
    assert {"accuracy", "f1_macro"} <= set(records.columns) and "mae" not in records.columns
    assert records.loc[0, "n_modalities"] == 3 and records.loc[0, "modalities"] == "fou,zer,mor"
    assert records[["n_train", "n_valid", "n_test"]].iloc[0].tolist() == [1200, 400, 400]
    predictions = pd.read_csv(cell_dir(tmp_path / "mfeat", "concat", records.config_hash[0], 0) / "predictions.csv")
    assert {"prediction", "logit_0", "logit_9"} <= set(predictions.columns)


@pytest.mark.parametrize("fmt", ["mult", "mmsa", "sdk"])
def test_mosi_formats_train_and_evaluate(tmp_path, tiny_config, fmt):
    from tests import mosi_fixtures

    segments = mosi_fixtures.sample_segments((12, 6, 6))
    if fmt == "mult":
        path = tmp_path / "mosi_data.pkl"
        mosi_fixtures.write_mult(path, segments)
    elif fmt == "mmsa":
        path = tmp_path / "unaligned_50.pkl"
        mosi_fixtures.write_mmsa(path, segments, aligned=False)
    else:
        path = tmp_path / "sdk"
        intervals = {}
        for segment in segments:
            spans, labels = intervals.get(segment.video, ([], []))
            spans.append([10.0 * segment.clip, 10.0 * segment.clip + 3.0])
            labels.append(segment.label)
            intervals[segment.video] = (spans, labels)
        intervals = {v: (torch.tensor(s).numpy(), torch.tensor(lab).numpy()) for v, (s, lab) in intervals.items()}
        mosi_fixtures.write_sdk_folder(path, intervals)
        os.environ["FUSIONBENCH_CACHE"] = str(tmp_path / "cache")
    try:
        spec = RunSpec(fusions=["grf"], dataset="mosi", dataset_path=str(path), seeds=[0], epochs=1,
                       config_file=str(tiny_config), out=str(tmp_path / "out"))
        records = run_benchmark(spec, quiet=True)
    finally:
        os.environ.pop("FUSIONBENCH_CACHE", None)
    assert records[["n_train", "n_valid", "n_test"]].iloc[0].tolist() == [12, 6, 6]
    assert records.loc[0, "modalities"] == "text,audio,vision" and math.isfinite(records.loc[0, "mae"])


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_with_amp():
    cell, data = _cell(epochs=2)
    result = train_cell(cell, data, seed=0, device="cuda", amp=True)
    assert math.isfinite(result.test.metrics["mae"])
