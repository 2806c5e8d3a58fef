"""A multi-label dataset through the whole suite: ``benchmarks.run``'s command line trains grf and concat on it,
stores per-label predictions, probes the checkpoints, and the report tabulates the multi-label metrics (no MOSI
column)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from benchmarks.cli import run_cli
from benchmarks.data import Dataset, register_dataset
from benchmarks.data import registry as data_registry
from benchmarks.data.dataset import Split
from benchmarks.run import main as run_main
from records.layout import cell_dir
from tasks import get_task

CONFIG = """
[protocol]
warmup_epochs = 1
max_epochs = 1
batch_size = 16

[fusions.grf]
d_model = 8
num_heads = 2
num_layers = 1
dim_feedforward = 16

[fusions.concat]
d_model = 8
dim_feedforward = 16
"""

NAMES = ["joy", "awe", "fear"]


def _split(n: int, generator: torch.Generator) -> Split:
    """Random modalities [n, 6, 4] and [n, 3, 5] with random true lengths; labels [n, 3] of 0/1."""
    xs, masks = [], []
    for steps, dim in ((6, 4), (3, 5)):
        lengths = torch.randint(1, steps + 1, (n,), generator=generator)
        mask = torch.arange(steps) < lengths[:, None]
        xs.append(torch.randn(n, steps, dim, generator=generator) * mask[..., None])
        masks.append(mask)
    labels = (torch.rand(n, 3, generator=generator) < 0.4).float()
    labels[0], labels[1] = 1.0, 0.0  # every label both present and absent in every split
    return Split(xs=xs, masks=masks, labels=labels, ids=[f"s{i}" for i in range(n)])


@pytest.fixture
def multilabel_dataset(monkeypatch):
    """Dataset ``"tags"`` (task ``multilabel``, 3 named labels); the dataset registry is restored after the test."""
    monkeypatch.setattr(data_registry, "_LOADERS", dict(data_registry._LOADERS))
    monkeypatch.delenv("FUSIONBENCH_DEBUG", raising=False)

    def load(path=None, **options) -> Dataset:
        generator = torch.Generator().manual_seed(0)
        splits = {name: _split(n, generator) for name, n in (("train", 48), ("valid", 16), ("test", 20))}
        return Dataset("tags", **splits, modality_names=["motion", "sound"], task="multilabel", num_classes=3,
                       info={"label_names": NAMES})

    register_dataset("tags")(load)
    return load()


def test_a_multilabel_dataset_trains_through_the_cli_and_reports(multilabel_dataset, tmp_path, capsys):
    config = tmp_path / "tiny.toml"
    config.write_text(CONFIG)
    out = tmp_path / "run"
    status = run_cli(run_main, ["--dataset", "tags", "--fusions", "grf,concat", "--seed", "0", "--epochs", "1",
                                "--config", str(config), "--out", str(out), "--quiet"])  # then probes and report
    assert status == 0, capsys.readouterr().err

    task = get_task("multilabel")
    records = pd.read_csv(out / "runs.csv")
    assert list(records["status"]) == ["done"] * 2 and set(records["task"]) == {"multilabel"}
    assert {*task.metrics, "valid_wacc_avg", "valid_loss"} <= set(records.columns)
    assert not set(get_task("sentiment").metrics) & set(records.columns)  # no MOSI column

    test = multilabel_dataset.test
    for row in records.itertuples():
        folder = cell_dir(out, row.fusion, row.config_hash, row.seed)
        predictions = pd.read_csv(folder / "predictions.csv")
        assert list(predictions.columns) == ["id", *(f"{kind}_{name}" for kind in ("label", "prediction", "logit")
                                                     for name in NAMES)]
        np.testing.assert_array_equal(predictions[[f"label_{n}" for n in NAMES]], test.labels.numpy())
        logits = predictions[[f"logit_{n}" for n in NAMES]].to_numpy()
        np.testing.assert_array_equal(predictions[[f"prediction_{n}" for n in NAMES]], (logits > 0).astype(int))
        stored = task.score(test.labels.numpy(), predictions[[f"prediction_{n}" for n in NAMES]].to_numpy())
        for name, value in stored.items():
            assert getattr(row, name) == pytest.approx(value, nan_ok=True)

    probes = pd.read_csv(out / "probes" / "probed_cells.csv")
    assert (probes["reproduction_gap"] < 1e-4).all()  # the checkpoints give the stored logits again
    robustness = pd.read_csv(out / "probes" / "robustness.csv")
    assert set(robustness["metric"]) == {"wacc_avg"}
    assert pd.read_csv(out / "probes" / "silhouettes.csv")["silhouette"].isna().all()  # no class: one colour

    report = out / "report"  # analysis.report.write_report, run by benchmarks.run
    table = (report / "tables" / "comparison.md").read_text()
    for name in task.metrics:
        assert f"{name} ↑" in table
    assert not any(f"{name} " in table for name in ("mae", "corr", "acc2_has0", "acc7"))
    per_sample = pd.read_csv(report / "stats" / "per_sample.csv")
    assert set(per_sample["measure"]) == {"acc_avg"} and set(per_sample["seed"]) == {"0", "vote"}
    assert per_sample["mcnemar_p"].isna().all() and per_sample["bootstrap_p"].notna().any()
    index = (report / "README.md").read_text()
    assert "acc_avg, predictions averaged over seeds (vote)" in index
