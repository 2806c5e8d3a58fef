"""Degenerate results: undefined metrics, undefined tests, failed cells and empty figure panels (issue 12, 3b/3c).

A test split of one sample, test labels that are all 0, or predictions that are constant (up to float noise) make
``corr`` (and the non0 metrics) undefined: the metric is NaN, shown as "n/a", left out of the tests with a note,
never marked best, and the run still ends with its figures and report. A test without variance or with too few
pairs (a paired t-test over seeds whose differences are all equal, a bootstrap over one sample, McNemar on no
sample, Friedman on tied blocks) has no p-value to mark: no significance marker, and the report says why. Failed
cells (``status`` "failed", NaN metrics) read "failed" and are left out of every test.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis import plots, stats
from analysis.report import main as report_main
from analysis.report import write_report
from analysis.significance import per_sample_tests, rank_tests, usable_metrics
from analysis.tables import markdown_table, per_seed_table, terminal_table
from benchmarks.cli import run_cli
from benchmarks.run import main as run_main
from tasks import get_task, nearly_constant
from tests.test_run import TINY_CONFIG


def sentiment_metrics(labels, predictions) -> dict[str, float]:
    return get_task("sentiment").score(labels, predictions)


# Accuracies on 24 test samples that differ from the baseline's by one sample on both seeds: 15/24 - 14/24 and
# 14/24 - 13/24 are equal, but the two float subtractions differ in the last bit.
ONE_SAMPLE_BETTER = ([0.625, 0.5833333333333334], [0.5833333333333334, 0.5416666666666666])


def write_run(folder: Path, predictions: dict[tuple[str, int], np.ndarray], labels: np.ndarray,
              failed: dict[tuple[str, int], str] | None = None) -> Path:
    """A benchmarks.run output folder made by hand: per (fusion, seed) test predictions ``[N]`` on ``labels``
    ``[N]``, their records computed by task ``sentiment``; each failed cell a record with status "failed",
    NaN metrics and its error, and no files (as the runner stores one)."""
    rows = []
    for (fusion, seed), prediction in predictions.items():
        cell = folder / "cells" / f"{fusion}-hash{fusion}" / f"seed{seed}"
        cell.mkdir(parents=True)
        pd.DataFrame({"id": np.arange(len(labels)), "label": labels, "prediction": prediction}).to_csv(
            cell / "predictions.csv", index=False)
        rows.append({"fusion": fusion, "seed": seed, "config_hash": f"hash{fusion}", "dataset": "handmade",
                     "status": "done", "error": "", **sentiment_metrics(labels, prediction)})
    for (fusion, seed), error in (failed or {}).items():
        rows.append({"fusion": fusion, "seed": seed, "config_hash": f"hash{fusion}", "dataset": "handmade",
                     "status": "failed", "error": error, **dict.fromkeys(get_task("sentiment").metrics, np.nan)})
    pd.DataFrame(rows).to_csv(folder / "runs.csv", index=False)
    return folder


def table_rows(markdown: str) -> list[list[str]]:
    """The stripped cells of every row of the Markdown tables in ``markdown``."""
    return [[cell.strip() for cell in line.split("|")[1:-1]] for line in markdown.splitlines() if line.startswith("|")]


def index_line(report: Path, start: str) -> str:
    return next(line for line in (report / "README.md").read_text().splitlines() if line.startswith(start))


# ------------------------------------------------------------------------------------------------ metrics (3b)


def test_corr_of_predictions_constant_up_to_float_noise_is_nan():
    labels = np.random.default_rng(0).uniform(-3, 3, 50)
    for offset in (0.1, 0.0):  # noise on a constant, also on a constant 0 (then the labels give the scale)
        noisy = offset + 1e-8 * labels  # spread ~6e-8, perfectly correlated noise
        assert math.isnan(sentiment_metrics(labels, noisy)["corr"])
    assert math.isnan(sentiment_metrics(labels, np.float32(0.3) + np.zeros(50, np.float32))["corr"])
    small = 0.1 + 1e-3 * labels  # a real, if small, signal keeps its correlation
    assert sentiment_metrics(labels, small)["corr"] == pytest.approx(1.0)
    assert nearly_constant([0.3, 0.3 + 2e-6]) and not nearly_constant([0.3, 0.3 + 5e-6])
    assert nearly_constant([1e-8, -1e-8], scale=3.0) and not nearly_constant([1e-8, -1e-8])


def test_metrics_of_all_zero_labels_and_of_one_sample():
    zero = sentiment_metrics(np.zeros(6), np.linspace(-1, 1, 6))
    assert all(math.isnan(zero[m]) for m in ("corr", "acc2_non0", "f1_non0"))
    assert zero["acc2_has0"] == pytest.approx(0.5) and zero["f1_has0"] == pytest.approx(2 * 0.5 / 1.5)
    one = sentiment_metrics(np.array([1.0]), np.array([-0.5]))
    assert math.isnan(one["corr"]) and one["acc2_has0"] == 0.0 and one["f1_non0"] == 0.0


def test_a_run_with_a_one_sample_test_split_ends_with_figures_and_report(tmp_path, capsys):
    config = tmp_path / "one.toml"
    config.write_text(TINY_CONFIG.replace("sizes = [48, 24, 24]", "sizes = [48, 24, 1]"))
    out = tmp_path / "run"
    status = run_cli(run_main, ["--fusions", "concat,late", "--seeds", "2", "--epochs", "1", "--config",
                                str(config), "--out", str(out), "--quiet"])
    assert status == 0, capsys.readouterr().err  # was: error: List of boxplot statistics and `positions` ...
    records = pd.read_csv(out / "runs.csv")
    assert records["corr"].isna().all() and records["mae"].notna().all()
    for figure in ("figures/seeds.png", "report/figures/seeds.png", "report/figures/curves.png"):
        assert (out / figure).stat().st_size > 0, figure
    report = out / "report"
    assert "| n/a " in (report / "tables" / "comparison.md").read_text()
    index = (report / "README.md").read_text()
    assert "corr is n/a for concat seeds 0, 1; late seeds 0, 1 (undefined when the test labels" in index
    assert "a 2-d projection needs at least 2 test samples; the test split has 1" in index
    per_sample = pd.read_csv(report / "stats" / "per_sample.csv")
    assert per_sample["bootstrap_p"].isna().all()
    assert (per_sample["bootstrap_note"] == "1 test sample: a bootstrap needs at least 2").all()


def test_report_on_all_zero_test_labels(tmp_path):
    labels = np.zeros(12)
    rng = np.random.default_rng(1)
    predictions = {(f, s): rng.normal(0, 0.5, 12) for f in ("grf", "late", "concat") for s in (0, 1)}
    run = write_run(tmp_path, predictions, labels)
    assert run_cli(report_main, [str(run), "--quiet"]) == 0  # was: error: scores_a and scores_b are empty
    report = run / "report"
    table = (report / "tables" / "comparison.txt").read_text()
    corr, non0 = (table.splitlines()[0].split().index(m) for m in ("corr", "acc2_non0"))
    assert table.count("n/a") == 4 * 3  # corr, acc2_non0, f1_non0, f1_macro_non0 of every fusion
    assert corr < non0
    assert "acc2_non0 is n/a for grf seeds 0, 1; late seeds 0, 1; concat seeds 0, 1 (undefined when every test " \
           "label is 0); left out of every statistic" in (report / "README.md").read_text()
    per_sample = pd.read_csv(report / "stats" / "per_sample.csv")
    non0 = per_sample[per_sample["measure"] == "acc2_non0"]
    assert (non0["n"] == 0).all() and non0["bootstrap_p"].isna().all() and non0["mcnemar_p"].isna().all()
    assert (non0["mcnemar_note"] == "no test sample: McNemar's test is undefined").all()
    assert (report / "figures" / "seeds.png").stat().st_size > 0


def test_noise_constant_predictions_are_not_marked_best_on_corr(tmp_path):
    labels = np.random.default_rng(2).uniform(-3, 3, 30)
    noise = np.random.default_rng(3)
    predictions = {("grf", s): labels + noise.normal(0, 1.0, 30) for s in (0, 1)}
    predictions |= {("late", s): 0.2 + 1e-8 * labels for s in (0, 1)}  # collapsed: corr of its noise would be 1.0
    run = write_run(tmp_path, predictions, labels)
    write_report(run, metrics=["mae", "corr"], quiet=True)
    rows = {line.split("|")[1].strip(): line for line in
            (run / "report" / "tables" / "comparison.md").read_text().splitlines()[2:4]}
    assert rows["late"].split("|")[3].strip() == "n/a"
    assert rows["grf"].split("|")[3].strip().startswith("**")  # the only corr, so the best one


# ------------------------------------------------------------------------------------------------ tests (3c)


def test_paired_t_test_without_variance_is_undefined_and_says_why():
    for fusion, baseline in (([1.0, 2.0, 3.0], [0.0, 1.0, 2.0]), ONE_SAMPLE_BETTER):
        result = stats.paired_comparison(fusion, baseline, higher_is_better=True)
        assert math.isnan(result.t_pvalue) and result.t_statistic == math.inf and result.d_z == math.inf
        assert "(no variance): the t-test is undefined" in result.t_note
        assert stats.significance_marker(result.t_pvalue) == ""
    one = stats.paired_comparison([0.8], [0.7], higher_is_better=True)
    assert math.isnan(one.t_pvalue) and one.t_note == "1 paired seed: a t-test needs at least 2"
    same = stats.paired_comparison([0.7, 0.8], [0.7, 0.8 + 1e-12], higher_is_better=True)
    assert same.t_pvalue == 1.0 and "identical results" in same.t_note
    assert same.wilcoxon_method == "no non-zero difference"
    usual = stats.paired_comparison([0.8, 0.9, 0.7], [0.7, 0.7, 0.65], higher_is_better=True)
    assert usual.t_note == "" and usual.t_pvalue == pytest.approx(sps.ttest_rel([0.8, 0.9, 0.7],
                                                                               [0.7, 0.7, 0.65]).pvalue)


def test_wilcoxon_sees_ties_that_differ_only_by_rounding():
    fusion = [0.625, 0.5833333333333334, 0.75]
    baseline = [0.5833333333333334, 0.5416666666666666, 2 / 3]  # differences 1/24, 1/24, 2/24
    result = stats.paired_comparison(fusion, baseline, higher_is_better=True)
    exact_ties = stats.paired_comparison([1 / 24, 1 / 24, 2 / 24], [0.0, 0.0, 0.0], higher_is_better=True)
    assert result.wilcoxon_method == exact_ties.wilcoxon_method == "exact permutation"
    assert result.wilcoxon_pvalue == exact_ties.wilcoxon_pvalue


def test_friedman_and_nemenyi_tie_values_equal_up_to_rounding():
    block = np.array([0.5, 0.5 + 1e-12, 0.5 - 1e-12])
    scores = pd.DataFrame(np.stack([block, block[::-1], block]), columns=["a", "b", "c"])
    friedman = stats.friedman_test(scores, higher_is_better=True)
    assert math.isnan(friedman.statistic) and friedman.pvalue == 1.0 and "identical results" in friedman.note
    nemenyi = stats.nemenyi_test(scores, higher_is_better=True)
    assert (nemenyi.average_ranks == 2.0).all() and (nemenyi.pvalues.to_numpy() == 1.0).all()


def test_bootstrap_and_mcnemar_without_samples_or_variance():
    one = stats.paired_bootstrap([1.0], [0.0])
    assert one.observed == 1.0 and math.isnan(one.pvalue) and math.isnan(one.ci_low) and one.n == 1
    assert one.note == "1 test sample: a bootstrap needs at least 2"
    empty = stats.paired_bootstrap_accuracy(np.zeros(0, bool), np.zeros(0, bool))
    assert math.isnan(empty.observed) and math.isnan(empty.pvalue) and empty.note.startswith("0 test samples")
    for a, b in (([1, 1, 1], [0, 0, 0]), ([0.3, 0.3 + 1e-9, 0.3], [0.1, 0.1, 0.1 + 1e-9])):
        flat = stats.paired_bootstrap(a, b, n_resamples=99)
        assert math.isnan(flat.pvalue) and "the bootstrap distribution is one point" in flat.note
        assert flat.ci_low == flat.ci_high == flat.observed
    same = stats.paired_bootstrap([0.3, 0.4], [0.3, 0.4 + 1e-12], n_resamples=99)
    assert same.pvalue == 1.0 and "identical scores" in same.note
    nothing = stats.mcnemar_exact(np.zeros(0, bool), np.zeros(0, bool))
    assert math.isnan(nothing.pvalue) and nothing.n == 0 and "undefined" in nothing.note
    concordant = stats.mcnemar_exact([True, False], [True, False])
    assert concordant.pvalue == 1.0 and "no discordant sample" in concordant.note


def test_report_of_two_seeds_one_sample_apart_has_no_marker_and_says_why(tmp_path):
    records = pd.DataFrame({
        "fusion": ["grf", "grf", "concat", "concat"], "seed": [0, 1, 0, 1], "config_hash": "h", "dataset": "toy",
        "mae": [0.9, 0.8, 1.0, 0.95], "acc2_has0": [*ONE_SAMPLE_BETTER[1], *ONE_SAMPLE_BETTER[0]],
    })
    records.to_csv(tmp_path / "runs.csv", index=False)
    write_report(tmp_path, metrics=["mae", "acc2_has0"], quiet=True)
    report = tmp_path / "report"
    paired = pd.read_csv(report / "stats" / "paired.csv").set_index("metric")
    assert math.isnan(paired.loc["acc2_has0", "t_pvalue"])  # was 8.5e-16
    tables = report / "tables"
    assert "*" not in (tables / "comparison.txt").read_text().split("\n\n")[0]  # was: 0.583 ± 0.029***
    assert "\\*" not in (tables / "comparison.md").read_text().split("\n\n")[0]
    assert "\\textsuperscript{*" not in (tables / "comparison.tex").read_text().split("\\caption")[0]
    line = index_line(report, "- concat vs grf on acc2_has0 ")
    assert "all 2 paired differences equal 0.04167 (no variance): the t-test is undefined" in line
    assert line.endswith("t-test undefined, so no significance marker.")
    assert "Holm-adjusted over all 1 defined tests of this table (2 metrics x 1 fusions, 1 undefined left out)" \
        in (report / "tables" / "comparison.txt").read_text()


# ------------------------------------------------------------------------------------------------ failed cells


def test_failed_cells_read_failed_and_are_left_out_of_every_test(tmp_path):
    labels = np.random.default_rng(4).uniform(-3, 3, 20)
    rng = np.random.default_rng(5)
    predictions = {(f, s): labels + rng.normal(0, 1 + k, 20) for k, f in enumerate(("grf", "late", "concat"))
                   for s in (0, 1, 2) if (f, s) != ("late", 2)}
    failed = {("late", 2): "diverged at epoch 3: non-finite loss", ("tfn", 0): "diverged at epoch 1: nan",
              ("tfn", 1): "diverged at epoch 1: nan", ("tfn", 2): "diverged at epoch 2: nan"}
    run = write_run(tmp_path, predictions, labels, failed)
    runs = pd.read_csv(run / "runs.csv")
    runs.loc[(runs["fusion"] == "late") & (runs["seed"] == 2), "mae"] = 1e34  # a number a failed cell may hold
    runs.to_csv(run / "runs.csv", index=False)
    write_report(run, metrics=["mae", "corr"], quiet=True)  # was: no metric has a finite value for every fusion
    report = run / "report"
    readme = (report / "README.md").read_text()
    assert "- late seed 2 failed: diverged at epoch 3: non-finite loss" in readme.split("## Files")[0]
    table = (report / "tables" / "comparison.md").read_text()
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in table.splitlines()[2:6]}
    assert rows["tfn"] == "failed" and rows["late"].endswith("(2/3 seeds)")
    assert "failed: the cell's training failed" in table and ["tfn", "0", "failed", "failed"] in table_rows(table)
    paired = pd.read_csv(report / "stats" / "paired.csv").set_index(["metric", "fusion"])
    assert paired.loc[("mae", "late"), "n"] == 2 and paired.loc[("mae", "tfn"), "n"] == 0
    summary = pd.read_csv(report / "stats" / "summary.csv").set_index(["metric", "fusion"])
    assert summary.loc[("mae", "late"), "n"] == 2 and summary.loc[("mae", "late"), "mean"] < 10
    assert paired.loc[("mae", "tfn"), "t_note"] == "no seed where both tfn and grf have a value of mae"
    friedman = pd.read_csv(report / "stats" / "friedman.csv").set_index("metric")
    assert friedman.loc["mae", "k"] == 3 and friedman.loc["mae", "n_seeds"] == 2
    assert "Friedman, Nemenyi and the CD diagram of mae leave out tfn (no value) and seed 2 (a fusion has no " \
           "value): 3 fusions over 2 seeds" in readme
    per_sample = pd.read_csv(report / "stats" / "per_sample.csv")
    assert "tfn" not in set(per_sample["fusion_a"]) | set(per_sample["fusion_b"])
    assert len(per_sample[(per_sample["seed"] == "2") & (per_sample["measure"] == "mae")]) == 1  # grf vs concat


def test_tables_without_a_status_column_and_with_partial_values():
    records = pd.DataFrame({"fusion": ["a", "a", "b", "b"], "seed": [0, 1, 0, 1], "corr": [0.5, np.nan, 0.9, 0.8]})
    text = terminal_table(records, ["corr"])
    assert "0.500 (1/2 seeds)" in text and "0.850 ± 0.071 (best)" in text
    assert "(k/n seeds): mean over the k seeds with a value" in markdown_table(records, ["corr"])
    assert ["a", "1", "n/a"] in table_rows(per_seed_table(records, ["corr"]))


def test_rank_tests_leave_out_a_fusion_without_values_and_usable_metrics_name_it():
    records = pd.DataFrame({"fusion": np.repeat(["a", "b", "c", "d"], 3), "seed": [0, 1, 2] * 4,
                            "corr": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, np.nan, np.nan, np.nan]})
    kept, notes = usable_metrics(records, ["corr"])
    assert kept == ["corr"] and notes == ["corr is n/a for d seeds 0, 1, 2 (undefined when the test labels or the "
                                          "predictions are constant, up to rounding); those cells are left out of "
                                          "its tests"]
    ranks = rank_tests(records, ["corr"])
    assert ranks.friedman["k"].tolist() == [3] and ranks.friedman["pvalue"].iloc[0] == pytest.approx(
        sps.friedmanchisquare([0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]).pvalue)


def test_per_sample_tests_skip_pairs_without_a_common_seed():
    labels = np.array([1.0, -1.0, 2.0])
    frame = pd.DataFrame([{"fusion": f, "seed": s, "id": i, "label": y, "prediction": y + 0.1 * (k + 1) * (i - 1)}
                          for k, (f, s) in enumerate((("a", 0), ("a", 1), ("b", 0), ("c", 1)))
                          for i, y in enumerate(labels)])
    result = per_sample_tests(frame, "sentiment", ["a", "b", "c"], n_resamples=99)
    pairs = set(zip(result["fusion_a"], result["fusion_b"], result["seed"]))
    assert pairs == {("a", "b", "0"), ("a", "c", "1")}  # no seed common to all three: no averaged predictions


# ------------------------------------------------------------------------------------------------ figures


def test_figures_leave_out_panels_without_values(tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(plots, "save_figure", lambda figure, path: drawn.append(len(figure.axes)) or [path, path])
    records = pd.DataFrame({"fusion": ["a", "a", "b", "b"], "seed": [0, 1, 0, 1], "mae": [1.0, 0.9, 0.8, 0.7],
                            "corr": np.nan, "acc2_non0": [0.5, np.nan, np.nan, np.nan], "n_modalities": 2,
                            "setting": "x", "flops": 10.0})
    assert plots.seed_distribution(records, ["mae", "corr", "acc2_non0"], tmp_path / "s")
    assert plots.seed_distribution(records, ["corr"], tmp_path / "s") == []
    curves = pd.DataFrame({"fusion": "a", "seed": 0, "epoch": [1, 2], "train_loss": [1.0, 0.5], "valid_corr": np.nan})
    assert plots.learning_curves(curves, ["train_loss", "valid_corr"], tmp_path / "c")
    assert plots.metric_vs_modalities(records, ["corr", "mae"], tmp_path / "m")
    assert plots.metric_vs_flops(records, "corr", tmp_path / "f") == []
    assert drawn == [2, 1, 1]  # mae and acc2_non0; train_loss; mae
