"""The report (python -m analysis.report) on a tiny stored run, its tables, embeddings, robustness and bad input.

Every statistic is tested against known values in test_stats.py; here: the report writes every table, figure and
statistics file and lists them in its index, the claims quote the computed numbers, the LaTeX table has the
booktabs structure with bold best and markers (and compiles where a TeX engine exists), silhouettes rise on states
built to separate the classes step by step, robustness curves are exact on a model whose error is known, and bad
input ends in one line.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from analysis import stats
from analysis.claims import silhouette_claims
from analysis.plots import metric_vs_modalities
from analysis.records import primary_setting
from analysis.report import main as report_main
from analysis.report import write_report
from analysis.robustness import robustness_summary
from analysis.tables import (
    SIGNIFICANCE_LEVELS,
    latex_table,
    markdown_table,
    significance_legend,
    significance_markers,
)
from benchmarks import scaling
from benchmarks.cli import run_cli
from benchmarks.data import Dataset, Split
from benchmarks.experiment import RunSpec
from benchmarks.probes import measure_probes
from benchmarks.probes.checkpoints import DatasetCache, StoredCell, load_cell, stored_prediction_gap
from benchmarks.probes.embeddings import sample_classes, silhouette
from benchmarks.probes.robustness import NOISE_LEVELS, feature_std, robustness_curves, unit_noise
from benchmarks.run import parse_args, run_benchmark
from fusions import Prediction
from tests.test_run import TINY_CONFIG

ROOT = Path(__file__).resolve().parents[1]
FUSIONS = ["grf", "pairwise", "concat"]


METRICS = ["mae", "corr"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """3 fusions x 2 seeds x 2 epochs on tiny synthetic data, and its report on the continuous metrics.

    Two-epoch models predict nearly constants, so their accuracies tie between fusions on some seeds, which trips
    the Wilcoxon bug of ``test_paired_comparison_with_one_nonzero_difference_among_zeros``; mae and corr do not tie.
    """
    folder = tmp_path_factory.mktemp("report")
    config = folder / "tiny.toml"
    config.write_text(TINY_CONFIG)
    out = folder / "run"
    spec = RunSpec(fusions=FUSIONS, seeds=[0, 1], epochs=2, config_file=str(config), out=str(out))
    run_benchmark(spec, quiet=True, report=False)
    hand_made = pd.DataFrame([  # benchmarks.scaling records: parameters ~ n for grf, ~ n^2 for pairwise
        {"fusion": fusion, "n_modalities": n, "seq_len": 8, "d_model": 8, "batch_size": 4, "device": "cpu",
         "status": "ok", "params": 1000 * n ** power}
        for fusion, power in (("grf", 1), ("pairwise", 2)) for n in (2, 4, 8, 16)
    ]).reindex(columns=list(scaling.columns()))
    scaling.write_outputs(hand_made, folder / "sweep", figures=False)  # scaling.csv and its scaling_meta.json
    for name in ("scaling.csv", "scaling_meta.json"):
        shutil.copy(folder / "sweep" / name, out / name)
    measure_probes(out, device="cpu")
    write_report(out, metrics=METRICS, quiet=True)
    return out


def test_a_run_ends_with_its_report_unless_told_not_to(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("analysis.report.write_report", lambda out, quiet: calls.append((Path(out), quiet)))
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_CONFIG)
    spec = RunSpec(fusions=["concat"], seeds=[0], epochs=1, config_file=str(config), out=str(tmp_path / "run"))
    run_benchmark(spec, quiet=True)
    assert calls == [(tmp_path / "run", True)]
    run_benchmark(spec, quiet=True, report=False)
    assert len(calls) == 1
    assert parse_args(["--fusions", "grf", "--no-report"]).no_report and not parse_args(["--fusions", "grf"]).no_report


def test_report_writes_every_table_figure_and_statistic_and_indexes_them(tiny_run):
    report = tiny_run / "report"
    tables = ["comparison.tex", "comparison.md", "comparison.txt", "per_seed.md", "robustness.md", "robustness.tex"]
    figures = ["seeds", "curves", "cd_mae", "embeddings", "robustness", "scaling"]
    csvs = {
        "summary": {"metric", "fusion", "n", "mean", "std", "ci_low", "ci_high", "t_ci_low", "t_ci_high"},
        "friedman": {"metric", "k", "n_seeds", "statistic", "pvalue", "critical_difference"},
        "nemenyi": {"metric", "fusion_a", "fusion_b", "rank_a", "rank_b", "pvalue", "significant"},
        "per_sample": {"fusion_a", "fusion_b", "seed", "measure", "difference", "ci_low", "ci_high", "bootstrap_p",
                       "mcnemar_b", "mcnemar_c", "mcnemar_p", "bootstrap_p_holm", "mcnemar_p_holm"},
        "silhouettes": {"fusion", "seed", "step", "state", "silhouette"},
        "robustness": {"fusion", "seed", "modality", "perturbation", "level", "metric", "value"},
        "robustness_summary": {"fusion", "seed", "clean", "noise text", "drop vision"},
        "scaling_exponents": {"fusion", "measure", "k"},
    }
    for name in tables:
        assert (report / "tables" / name).stat().st_size > 0, name
    for name in figures:
        for suffix in (".png", ".pdf"):
            assert (report / "figures" / f"{name}{suffix}").stat().st_size > 0, name + suffix
    for name, columns in csvs.items():
        frame = pd.read_csv(report / "stats" / f"{name}.csv")
        assert not frame.empty and columns <= set(frame.columns), name

    per_sample = pd.read_csv(report / "stats" / "per_sample.csv")
    assert set(per_sample["seed"].astype(str)) == {"0", "1", "mean"}  # each seed and the seed-averaged predictions
    assert len(per_sample) == 3 * 3 * 3  # 3 pairs x 3 prediction sets x (mae, acc2_has0, acc2_non0)
    silhouettes = pd.read_csv(report / "stats" / "silhouettes.csv")
    assert silhouettes[["fusion", "step"]].values.tolist() == [["grf", 1], ["grf", 2], ["pairwise", 1],
                                                                ["concat", 1]]  # GRF: one state per step
    assert (silhouettes["seed"] == 0).all()  # one seed per fusion by default

    index = (report / "README.md").read_text()
    listed = set(re.findall(r"\]\(([^)]+)\)", index))
    written = {p.relative_to(report).as_posix() for p in report.rglob("*") if p.is_file() and p.name != "README.md"}
    assert {p for p in written if not p.endswith(".pdf")} == listed  # every file once (a figure by its PNG)
    for section in ("Per fusion and metric", "Paired by seed, against the baseline grf", "Friedman",
                    "Per test sample", "Embeddings", "Robustness", "Not in this report"):
        assert section in index, section
    assert "runs.csv holds one modality count" in index and "baseline grf" in index
    exponents = pd.read_csv(report / "stats" / "scaling_exponents.csv").query("measure == 'params'")
    exponents = exponents.set_index("fusion")["k"]
    assert exponents["grf"] == pytest.approx(1.0) and exponents["pairwise"] == pytest.approx(2.0)


def test_claims_quote_the_computed_statistics(tiny_run):
    report = tiny_run / "report"
    index = (report / "README.md").read_text()
    paired = pd.read_csv(report / "stats" / "paired.csv")
    family = len(paired)
    assert family == len(set(paired.metric)) * 2 and set(paired.metric) <= set(METRICS)  # metrics x non-baselines
    for _, row in paired.iterrows():
        line = next(line for line in index.splitlines() if line.startswith(f"- {row.fusion} vs grf on {row.metric} "))
        assert f"paired t p = {row.t_pvalue:.3g}, Holm-adjusted {row.t_pvalue_holm:.3g} (family of {family})" in line
        assert f"mean difference {row.mean_diff:.4f}" in line
        verdict = "significant after correction" if row.t_pvalue_holm < 0.05 else "not significant after correction"
        assert line.endswith(verdict + ".")
    friedman = pd.read_csv(report / "stats" / "friedman.csv")
    for _, row in friedman.iterrows():
        assert f"chi2 = {row.statistic:.2f}, p = {row.pvalue:.3g}" in index
    for _, row in pd.read_csv(report / "stats" / "silhouettes.csv").iterrows():
        assert f"{row.state} {row.silhouette:.3f}" in index


def _records() -> pd.DataFrame:
    """Hand-made records: 'better' beats the baseline on mae by 0.2 on every seed (significant), 'close' does not."""
    rows = []
    for seed, (base_mae, base_acc) in enumerate([(1.0, 0.60), (1.1, 0.62), (1.2, 0.61)]):
        rows += [
            {"fusion": "grf", "seed": seed, "mae": base_mae, "acc2_has0": base_acc},
            {"fusion": "better", "seed": seed, "mae": base_mae - 0.2 - 0.001 * seed, "acc2_has0": base_acc + 0.01},
            {"fusion": "close_call", "seed": seed, "mae": base_mae + (-0.05, 0.04, 0.0)[seed],
             "acc2_has0": base_acc + (0.02, -0.03, 0.005)[seed]},
        ]
    return pd.DataFrame(rows)


def _mean_std(records: pd.DataFrame, fusion: str, metric: str, pm: str) -> str:
    values = records.loc[records.fusion == fusion, metric]
    return f"{values.mean():.3f} {pm} {values.std():.3f}"


def test_latex_table_structure_bold_markers_and_legend(tmp_path):
    records = _records()
    comparisons = stats.comparison_table(records, "grf", ["mae", "acc2_has0"])
    markers = significance_markers(comparisons, style="latex")
    tex = latex_table(records, ["mae", "acc2_has0"], markers=markers, legend=significance_legend(comparisons, "latex"))
    lines = tex.splitlines()
    assert lines.index(r"\toprule") < lines.index(r"\midrule") < lines.index(r"\bottomrule")
    assert r"\begin{tabular}{lcc}" in lines
    body = lines[lines.index(r"\midrule") + 1: lines.index(r"\bottomrule")]
    assert [row.split(" & ")[0] for row in body] == ["grf", "better", "close\\_call"]  # one row per fusion
    assert all(row.count(" & ") == 2 and row.endswith(r" \\") for row in body)
    better = body[1].split(" & ")
    p_mae = comparisons.set_index(["fusion", "metric"]).loc[("better", "mae"), "t_pvalue_holm"]
    assert p_mae < 0.05
    cell = _mean_std(records, "better", "mae", r"$\pm$")
    assert better[1] == r"\textbf{" + cell + r"}\textsuperscript{***}"
    assert "textsuperscript" not in body[2] and "textsuperscript" not in body[0]  # not significant / baseline
    caption = next(line for line in lines if line.startswith(r"\caption{"))
    assert "paired t-test by seed against the baseline grf" in caption
    # better's acc2_has0 is the baseline's + 0.01 on every seed: no variance, so that t-test is undefined
    assert (r"Holm-adjusted over all 3 defined tests of this table (2 metrics $\times$ 2 fusions, 1 undefined left "
            "out)") in caption
    assert "$<$" in caption and "<" not in caption.replace("$<$", "")

    engine = shutil.which("latexmk") or shutil.which("pdflatex")
    if engine is None:
        pytest.skip("no TeX engine (latexmk or pdflatex) on PATH: structure checked, compilation not")
    document = tmp_path / "table.tex"
    document.write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n" + tex +
                        "\\end{document}\n")
    command = [engine, "-pdf", "-interaction=nonstopmode", document.name] if engine.endswith("latexmk") else \
        [engine, "-interaction=nonstopmode", "-halt-on-error", document.name]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and (tmp_path / "table.pdf").exists(), result.stdout[-2000:]


def test_markers_follow_the_stats_thresholds_and_markdown_escapes_them():
    for threshold, marker in SIGNIFICANCE_LEVELS:
        assert stats.significance_marker(threshold * 0.99) == marker
    records = _records()
    comparisons = stats.comparison_table(records, "grf", ["mae", "acc2_has0"])
    text = markdown_table(records, ["mae", "acc2_has0"], markers=significance_markers(comparisons, style="markdown"),
                          legend=significance_legend(comparisons, "markdown"))
    assert f"**{_mean_std(records, 'better', 'mae', '±')}**\\*\\*\\*" in text and "\\* p < 0.05" in text


def test_silhouette_rises_over_steps_built_to_separate_the_classes():
    """States whose class signal grows with each step: the silhouette (full 16-d space) must rise."""
    rng = np.random.default_rng(0)
    labels = rng.normal(size=400)
    classes = sample_classes(labels, "sentiment").index
    assert set(classes) == {0, 1} and (classes == (labels >= 0)).all()
    direction = rng.normal(size=16)
    direction /= np.linalg.norm(direction)
    panels = []
    for step, signal in enumerate([0.2, 1.0, 4.0], start=1):
        states = rng.normal(size=(400, 16)) + signal * np.where(classes[:, None] == 1, 1.0, -1.0) * direction
        panels.append({"fusion": "grf", "seed": 0, "step": step, "state": f"step {step}", "n_samples": 400,
                       "dim": 16, "silhouette": silhouette(states, classes)})  # a row of probes/silhouettes.csv
    scores = [panel["silhouette"] for panel in panels]
    assert scores[0] < scores[1] < scores[2] and scores[0] < 0.1 and scores[2] > 0.4
    assert "rising at every step" in silhouette_claims(pd.DataFrame(panels), "sign")[0]
    assert np.isnan(silhouette(states, np.zeros(400, dtype=int)))  # one class: undefined


class MeanOfFirstFeature(nn.Module):
    """Predicts the mean of modality 0's first feature over its real steps: its MAE under noise is known."""

    def forward(self, xs, masks):
        mask = masks[0].unsqueeze(-1).float()
        output = (xs[0][..., :1] * mask).sum(1) / mask.sum(1)
        return Prediction(output=output, aux_output=None, states=[output])


def _exact_cell() -> StoredCell:
    generator = torch.Generator().manual_seed(0)

    def split(n: int) -> Split:
        lengths = torch.randint(1, 7, (n,), generator=generator)
        mask = torch.arange(6)[None, :] < lengths[:, None]
        xs = [torch.randn(n, 6, dim, generator=generator) * mask.unsqueeze(-1) for dim in (3, 2)]
        labels = (xs[0][..., 0] * mask).sum(1) / mask.sum(1)  # exactly what the model predicts
        return Split(xs=xs, masks=[mask, mask.clone()], labels=labels, ids=[f"s{i}" for i in range(n)])

    data = Dataset(name="exact", train=split(200), valid=split(20), test=split(100), modality_names=["a", "b"],
                   task="sentiment")
    return StoredCell("mean", 0, MeanOfFirstFeature(), data, torch.device("cpu"), 64)


def test_robustness_is_exact_on_a_model_with_known_error():
    cell = _exact_cell()
    curves = robustness_curves(cell)
    noise = curves[curves["perturbation"] == "noise"].set_index(["modality", "level"])["value"]
    assert noise[("a", 0.0)] == cell.evaluate().metrics["mae"] == pytest.approx(0.0, abs=1e-6)
    on_a = noise["a"].to_numpy()
    assert np.all(np.diff(on_a) > 0)  # nested noise: the error grows with the level ...
    assert on_a == pytest.approx(np.array(NOISE_LEVELS) * on_a[-1], rel=1e-4, abs=1e-6)  # ... linearly
    assert noise["b"].to_numpy() == pytest.approx(0.0, abs=1e-6)  # noise on an unused modality changes nothing
    drop = curves[curves["perturbation"] == "drop"].set_index("modality")["value"]
    assert drop["a"] == pytest.approx(cell.data.test.labels.abs().mean().item(), rel=1e-5)  # predicts 0
    assert drop["b"] == pytest.approx(0.0, abs=1e-6)
    pd.testing.assert_frame_equal(robustness_curves(cell), curves)  # seeded: a rerun is identical

    summary = robustness_summary(curves).iloc[0]
    assert summary["noise a"] == pytest.approx(on_a[-1] / 2, rel=1e-4)  # area under a line from 0 to v: v / 2
    assert summary["noise b"] == pytest.approx(0.0, abs=1e-6) and summary["clean"] == noise[("a", 0.0)]


def test_noise_sits_on_real_steps_with_the_train_feature_std():
    cell = _exact_cell()
    test = cell.data.test
    eps = unit_noise(test, 0)
    assert (eps[~test.masks[0]] == 0).all() and eps[test.masks[0]].std().item() == pytest.approx(1.0, abs=0.05)
    assert torch.equal(eps, unit_noise(test, 0)) and not torch.equal(eps[..., :2], unit_noise(test, 1))
    std = feature_std(cell.data.train)[0]
    assert std.shape == (3,) and std == pytest.approx(cell.data.train.xs[0][cell.data.train.masks[0]].std(0), rel=0.01)


def test_stored_cell_reproduces_the_run_and_its_robustness_starts_at_the_record(tiny_run):
    records = pd.read_csv(tiny_run / "runs.csv")
    row = records[(records.fusion == "grf") & (records.seed == 1)].iloc[0]
    folder = tiny_run / "cells" / f"grf-{row.config_hash}" / "seed1"
    cell = load_cell(folder, DatasetCache())
    evaluation = cell.evaluate(keep_states=True)
    assert stored_prediction_gap(folder, evaluation) < 1e-5
    assert [s.shape for s in evaluation.states] == [(24, 8), (24, 8)]  # GRF: the state after each of 2 steps
    curves = robustness_curves(cell)
    clean = curves[(curves.perturbation == "noise") & (curves.level == 0)]["value"]
    assert (clean == evaluation.metrics["mae"]).all() and clean.iloc[0] == pytest.approx(row.mae, rel=1e-6)


def test_several_modality_settings_give_the_modalities_figure(tmp_path):
    records = pd.DataFrame([
        {"fusion": f, "seed": s, "modalities": m, "n_modalities": m.count(",") + 1, "accuracy": acc + 0.01 * s}
        for f, base in (("grf", 0.8), ("concat", 0.7)) for s in (0, 1)
        for m, acc in (("fou,zer", base - 0.1), ("fou,zer,mor", base), ("fou,mor,zer", base - 0.05))
        if m != "fou,mor,zer" or s == 0  # the other 3-modality subset has fewer records: not the chosen one
    ])
    kept, note = primary_setting(records)
    assert set(kept["modalities"]) == {"fou,zer,mor"} and len(kept) == 4 and "3 modality settings" in note
    same, note = primary_setting(kept)
    assert same is kept and note == ""  # one setting: every record, no note
    paths = metric_vs_modalities(records, ["accuracy"], tmp_path / "modalities")
    assert [p.suffix for p in paths] == [".png", ".pdf"] and all(p.stat().st_size > 0 for p in paths)


@pytest.mark.parametrize("args, message", [
    (["{missing}"], "does not exist"),
    (["{empty}"], "holds no runs.csv"),
    (["{run}", "--baseline", "nope"], "unknown baseline 'nope'; fusions in "),
    (["{run}", "--metrics", "mae,acc9"], "unknown metric 'acc9'; metrics in "),
    (["{run}", "--cell-seeds", "0"], "--cell-seeds '0': expected a positive count or 'all'"),
])
def test_bad_input_gives_one_line(tiny_run, tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.delenv("FUSIONBENCH_DEBUG", raising=False)
    (tmp_path / "empty").mkdir()
    paths = {"missing": tmp_path / "missing", "empty": tmp_path / "empty", "run": tiny_run}
    argv = [arg.format(**paths) for arg in args] + ["--out", str(tmp_path / "report")]
    assert run_cli(report_main, argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not (tmp_path / "report").exists()


def test_cli_entry_point_reports_an_error_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "analysis.report", str(tmp_path)], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.strip() == f"error: {tmp_path} holds no runs.csv; pass the " \
                                                               "--out folder of a finished benchmarks.run"
