"""Tasks and metrics, one home (issue 13): a metric or a task is one registration, and every part of the suite —
training, records, predictions, tables, statistics — asks the registered task instead of branching on a name.

Each run here is one tiny cell (concat, 48/24/24 samples, 2-3 epochs): about a second each.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score, r2_score

from analysis import stats
from analysis.records import load_run
from analysis.significance import per_sample_tests
from analysis.tables import markdown_table
from benchmarks.data import DataError, Dataset, make_synthetic, register_dataset
from benchmarks.data import registry as data_registry
from benchmarks.experiment import RunSpec
from benchmarks.probes.checkpoints import DatasetCache, load_cell
from benchmarks.run import run_benchmark
from records.layout import cell_dir
from tasks import (
    Task,
    get_task,
    list_tasks,
    metric,
    register_metric,
    register_task,
    same_task,
    task_of_columns,
)
from tests.test_run import TINY_CONFIG


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_CONFIG)
    return path


def relabelled(task: str, labels, num_classes: int | None = None) -> Dataset:
    """The tiny synthetic data (48/24/24 samples, 3 modalities) with ``labels(sentiment labels) -> labels``."""
    base = make_synthetic(sizes=(48, 24, 24), seq_lens=8, dims=[12, 5, 7])
    splits = {name: dataclasses.replace(split, labels=labels(split.labels)) for name, split in base.splits.items()}
    return Dataset(name="toy", **splits, modality_names=base.modality_names, task=task, num_classes=num_classes)


@pytest.fixture
def toy_dataset(monkeypatch):
    """``register(make)``: dataset ``"toy"`` is ``make()``; the dataset registry is restored after the test."""
    monkeypatch.setattr(data_registry, "_LOADERS", dict(data_registry._LOADERS))

    def register(make) -> None:
        register_dataset("toy")(lambda path=None, **options: make())

    return register


def run_one(tmp_path, config, dataset: str = "toy", epochs: int = 2):
    """One concat cell, seed 0: the records and the cell's folder."""
    out = tmp_path / "run"
    records = run_benchmark(RunSpec(fusions=["concat"], dataset=dataset, seeds=[0], epochs=epochs,
                                    config_file=str(config), out=str(out), device="cpu"), quiet=True, report=False)
    return records, cell_dir(out, "concat", records.loc[0, "config_hash"], 0)


# ----------------------------------------------------------------------------------------------- registration


def test_unknown_names_give_one_line_listing_the_known(scratch_tasks):
    known = list_tasks()  # the built-ins first, then the modules of tasks/ in name order (tasks/multilabel.py, ...)
    assert known[:4] == ["sentiment", "regression", "multiclass", "binary"]
    assert known.index("multilabel") + 1 == known.index("emotions")
    with pytest.raises(ValueError, match=rf"^unknown task 'nope'; known tasks: {', '.join(known)}$"):
        get_task("nope")
    with pytest.raises(ValueError, match=r"'classification' is the old name of 'multiclass'"):
        get_task("classification")
    with pytest.raises(ValueError, match=r"^unknown metric 'acc9'; known metrics: mae, corr, "):
        metric("acc9")
    with pytest.raises(DataError, match=r"^dataset 'toy': unknown task 'sentimental'; known tasks: sentiment, "):
        relabelled("sentimental", lambda y: y)
    with pytest.raises(ValueError, match="unknown task 'nope'"):  # nothing registered when a task is unknown
        register_metric("half", higher_is_better=True, unit="fraction", definition="d", tasks=["sentiment", "nope"])(
            lambda y, p: 0.5)
    assert "half" not in stats.HIGHER_IS_BETTER and "half" not in get_task("sentiment").metrics
    with pytest.raises(ValueError, match="reserved, older records use it for 'multiclass'"):
        register_task(dataclasses.replace(get_task("multiclass"), name="classification"))
    with pytest.raises(ValueError, match="selection must be 'loss' or one of its metrics"):
        register_task(dataclasses.replace(get_task("multiclass"), name="toy", selection="mae"))
    assert list_tasks() == known


def test_labels_must_fit_the_declared_task():
    with pytest.raises(DataError, match=r"split 'train': \d+ labels lie outside \[-3, 3\], the range of task "
                                        r"'sentiment'"):
        relabelled("sentiment", lambda y: 10 * y)
    with pytest.raises(DataError, match=r"labels of task 'multiclass' must be int64 class indices, got float32"):
        relabelled("multiclass", lambda y: y, num_classes=2)
    with pytest.raises(DataError, match=r"task 'binary' has 2 classes, got num_classes=3"):
        relabelled("binary", lambda y: (y > 0).long(), num_classes=3)
    with pytest.raises(DataError, match=r"task 'multiclass' needs num_classes >= 2, got None"):
        relabelled("multiclass", lambda y: (y > 0).long())
    assert relabelled("regression", lambda y: 10 * y).task == "regression"


def test_legacy_task_names_are_read_in_one_place():
    assert same_task("regression", "sentiment") and same_task("classification", "multiclass")
    assert same_task("regression", "regression") and same_task("binary", "binary")
    assert not same_task("regression", "multiclass") and not same_task("sentiment", "regression")
    # runs.csv written before it had a task column: the task with the most of its metrics among the columns
    assert task_of_columns(["fusion", "mae", "corr", "acc2_has0", "acc7"]) == "sentiment"
    assert task_of_columns(["fusion", "rmse", "mae", "corr", "r2"]) == "regression"
    assert task_of_columns(["fusion", "accuracy", "f1_macro"]) == "multiclass"
    assert task_of_columns(["fusion", "accuracy", "f1", "f1_weighted"]) == "binary"


# ------------------------------------------------------------------------------------------------ end to end


def test_a_registered_metric_reaches_the_records_and_the_tables(scratch_tasks, tmp_path, tiny_config):
    register_metric("max_error", higher_is_better=False, unit="label units", definition="largest absolute error",
                    tasks=["sentiment"])(lambda y, p: float(np.abs(y - p).max()))
    records, folder = run_one(tmp_path, tiny_config, dataset="synthetic")
    predictions = pd.read_csv(folder / "predictions.csv")
    expected = (predictions["prediction"] - predictions["label"]).abs().max()
    assert records.loc[0, "max_error"] == pytest.approx(expected, rel=1e-5)
    assert get_task("sentiment").main_metric == "mae"  # added after the task's metrics: the main metric stays
    assert "valid_max_error" in pd.read_csv(folder / "curves.csv").columns
    assert stats.HIGHER_IS_BETTER["max_error"] is False
    table = markdown_table(load_run(tmp_path / "run").records, ["mae", "max_error"])
    assert "max_error ↓" in table and "mae ↓" in table


def test_a_registered_task_trains_and_selects_on_its_own_score(scratch_tasks, toy_dataset, tmp_path, tiny_config):
    register_task(Task(name="ordinal", description="toy: Huber loss", kind="regression",
                       loss=lambda outputs, labels: F.smooth_l1_loss(outputs.squeeze(-1).float(), labels),
                       metrics=("mae",)))
    register_metric("within_half", higher_is_better=True, unit="fraction", definition="|error| <= 0.5",
                    per_sample=lambda y, p: np.abs(p - y) <= 0.5, tasks=["ordinal"])(
        lambda y, p: float(np.mean(np.abs(p - y) <= 0.5)))
    register_task(dataclasses.replace(get_task("ordinal"), name="ordinal_best", selection="within_half",
                                      sample_tests=("mae", "within_half")))
    toy_dataset(lambda: relabelled("ordinal_best", lambda y: y))
    records, folder = run_one(tmp_path, tiny_config, epochs=3)
    assert records.loc[0, "task"] == "ordinal_best" and records.loc[0, "status"] == "done"
    assert {"mae", "within_half", "valid_mae"} <= set(records.columns) and "acc7" not in records.columns
    curves = pd.read_csv(folder / "curves.csv")
    assert records.loc[0, "best_epoch"] == int(curves["valid_within_half"].idxmax()) + 1  # higher is better
    run = load_run(tmp_path / "run")
    assert run.task == "ordinal_best"
    predictions = pd.read_csv(folder / "predictions.csv").assign(fusion="concat", seed=0)
    both = pd.concat([predictions, predictions.assign(fusion="copy")])
    tests = per_sample_tests(both, run.task, ["concat", "copy"], n_resamples=99)
    assert set(tests["measure"]) == {"mae", "within_half"}
    within = tests[tests["measure"] == "within_half"]
    assert within["mcnemar_p"].eq(1.0).all()  # a boolean per-sample score gets McNemar's test
    assert tests.loc[tests["measure"] == "mae", "mcnemar_p"].isna().all()


def test_plain_regression_gets_rmse_and_r2_and_no_sentiment_metric(toy_dataset, tmp_path, tiny_config):
    toy_dataset(lambda: relabelled("regression", lambda y: 10 * y + 100))
    records, folder = run_one(tmp_path, tiny_config)
    assert list(records.columns[records.columns.isin(get_task("regression").metrics)]) == ["rmse", "mae", "corr",
                                                                                           "r2"]
    assert not {"acc7", "acc5", "acc2_has0", "f1_has0"} & set(records.columns)
    assert "valid_rmse" in records.columns
    predictions = pd.read_csv(folder / "predictions.csv")
    assert list(predictions.columns) == ["id", "label", "prediction"]
    y, p = predictions["label"].to_numpy(), predictions["prediction"].to_numpy()
    assert records.loc[0, "rmse"] == pytest.approx(math.sqrt(np.mean((y - p) ** 2)), rel=1e-5)
    assert records.loc[0, "r2"] == pytest.approx(r2_score(y, p), rel=1e-4, abs=1e-4)


def test_binary_gets_accuracy_positive_f1_and_weighted_f1(toy_dataset, tmp_path, tiny_config):
    toy_dataset(lambda: relabelled("binary", lambda y: (y > 0).long(), num_classes=2))
    records, folder = run_one(tmp_path, tiny_config)
    assert {"accuracy", "f1", "f1_weighted", "valid_accuracy"} <= set(records.columns)
    assert not {"f1_macro", "mae"} & set(records.columns)
    predictions = pd.read_csv(folder / "predictions.csv")
    assert list(predictions.columns) == ["id", "label", "prediction", "logit_0", "logit_1"]
    y, p = predictions["label"].to_numpy(), predictions["prediction"].to_numpy()
    assert records.loc[0, "accuracy"] == pytest.approx(np.mean(y == p))
    assert records.loc[0, "f1"] == pytest.approx(f1_score(y, p, zero_division=np.nan), nan_ok=True)
    assert records.loc[0, "f1_weighted"] == pytest.approx(f1_score(y, p, average="weighted", zero_division=0))


def test_binary_f1_is_undefined_without_a_positive_sample():
    binary = get_task("binary")
    scores = binary.score(np.array([0, 0, 0]), np.array([0, 0, 0]))
    assert scores["accuracy"] == 1.0 and math.isnan(scores["f1"]) and scores["f1_weighted"] == 1.0
    assert binary.score(np.array([1, 0, 1, 0]), np.array([1, 1, 0, 0]))["f1"] == 0.5


def test_a_checkpoint_written_with_a_legacy_task_name_still_loads(tmp_path, tiny_config):
    records, folder = run_one(tmp_path, tiny_config, dataset="synthetic")
    path = folder / "checkpoint.pt"
    checkpoint = torch.load(path, weights_only=False)
    assert checkpoint["task"] == "sentiment"
    torch.save({**checkpoint, "task": "regression"}, path)  # as versions before the task registry wrote it
    stored = pd.read_csv(folder / "predictions.csv")["prediction"].to_numpy()
    assert load_cell(folder, DatasetCache()).evaluate().outputs == pytest.approx(stored, abs=1e-5)
    torch.save({**checkpoint, "task": "multiclass"}, path)
    with pytest.raises(ValueError, match="trained for task 'multiclass'; its dataset now declares 'sentiment'"):
        load_cell(folder, DatasetCache())
