"""One home per fact: analysis asks the task registry (``tasks``) for a metric's direction, the metric list, the
task of a records table and the Acc-2 classes, and keeps one copy of its own shared pieces (marker levels, LaTeX
escaping, figure saving)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from analysis import cost_curves, plots, stats, tables
from analysis.records import load_run
from analysis.significance import rank_tests
from tasks import get_task, metric, register_metric, registry, task_of_columns


def _records(column: str, shift: float = 0.1) -> pd.DataFrame:
    """4 fusions x 5 seeds of one metric column; "better" scores ``shift`` above "grf" on every seed (+ noise)."""
    rng = np.random.default_rng(0)
    rows = [{"fusion": fusion, "seed": seed, "config_hash": "x",
             column: 0.5 + offset + rng.normal(0, 0.02)}
            for fusion, offset in (("grf", 0.0), ("better", shift), ("same", 0.0), ("worse", -shift))
            for seed in range(5)]
    return pd.DataFrame(rows)


def test_a_metric_direction_is_asked_of_the_registry(scratch_tasks, monkeypatch):
    monkeypatch.setitem(registry._METRICS, "corr", dataclasses.replace(metric("corr"), higher_is_better=False))
    assert stats.HIGHER_IS_BETTER["corr"] is False and stats.HIGHER_IS_BETTER["mae"] is False
    records = _records("corr")
    table = stats.comparison_table(records, "grf", ["corr"]).set_index("fusion")
    assert not table.loc["better", "higher_is_better"]
    assert table.loc["better", "t_statistic"] < 0  # a higher corr is now worse: oriented statistics flip
    friedman = rank_tests(records, ["corr"]).friedman
    assert not friedman.loc[0, "higher_is_better"]
    ranks = rank_tests(records, ["corr"]).results["corr"].average_ranks
    assert ranks["worse"] < ranks["better"]  # rank 1 = best = lowest corr


def test_a_metric_registered_is_known_to_the_statistics(scratch_tasks):
    register_metric("acc3", higher_is_better=True, unit="fraction", definition="3-class accuracy")(lambda y, p: 0.0)
    assert list(stats.HIGHER_IS_BETTER)[-1] == "acc3" and stats.HIGHER_IS_BETTER["acc3"] is True
    summary = stats.summary_table(_records("acc3"), n_resamples=99)
    assert set(summary["metric"]) == {"acc3"} and summary["higher_is_better"].all()
    assert len(stats.comparison_table(_records("acc3"), "grf")) == 3
    with pytest.raises(KeyError):
        stats.HIGHER_IS_BETTER["params"]


def test_task_of_columns_from_the_metric_lists():
    assert task_of_columns(["fusion", "seed", "acc2_has0"]) == "sentiment"  # any sentiment metric, not only mae
    assert task_of_columns(["fusion", "accuracy", "f1_macro"]) == "multiclass"
    with pytest.raises(ValueError, match="no metric column .*among the columns fusion, seed"):
        task_of_columns(["fusion", "seed"])


def test_load_run_takes_the_task_from_the_registry(tmp_path):
    _records("accuracy").to_csv(tmp_path / "runs.csv", index=False)
    assert load_run(tmp_path).task == "multiclass"
    _records("accuracy").drop(columns="accuracy").to_csv(tmp_path / "runs.csv", index=False)
    with pytest.raises(ValueError, match=r"runs\.csv: no metric column"):
        load_run(tmp_path)


def test_acc2_correctness_is_the_acc2_metric_of_the_sentiment_task():
    rng = np.random.default_rng(1)
    labels = rng.integers(-3, 4, size=200).astype(float)  # about one label in seven is exactly 0
    predictions = rng.normal(0, 1.5, size=200)
    predictions[:5] = 0.0
    expected = get_task("sentiment").score(labels, predictions)
    for convention in ("has0", "non0"):
        correct = stats.acc2_correct(labels, predictions, convention=convention)
        assert correct.mean() == expected[f"acc2_{convention}"]
    assert stats.acc2_correct(labels, predictions, convention="non0").size == np.count_nonzero(labels)


def test_marker_levels_latex_escaping_and_figure_saving_have_one_home():
    assert tables.SIGNIFICANCE_LEVELS is stats.SIGNIFICANCE_LEVELS
    assert [stats.significance_marker(p) for p in (0.0009, 0.009, 0.049, 0.05)] == ["***", "**", "*", ""]
    assert cost_curves.save_figure is plots.save_figure  # written atomically, as every other figure
    record = {"fusion": "grf#2_x", "seq_len": 8, "d_model": 8, "batch_size": 4, "device": "cpu", "status": "ok",
              "n_modalities": 2, "params": 1e3, "flops": 1e6, "train_flops": 3e6, "fwd_ms": 1.0, "train_ms": 2.0,
              "train_peak_mib": 3.0}
    measures = [cost_curves.RecordedMeasure(name, "", name, "lower", "", "", name.endswith(("_ms", "_mib")), True)
                for name in ("params", "flops", "train_flops", "fwd_ms", "train_ms", "train_peak_mib")]
    tex = cost_curves.cost_table_tex(pd.DataFrame([record]), measures)
    assert tables.latex_escape("grf#2_x") == r"grf\#2\_x" and r"grf\#2\_x &" in tex
