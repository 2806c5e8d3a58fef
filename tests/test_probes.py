"""Probes (python -m benchmarks.probe): robustness and embeddings measured from a run's checkpoints into records,
and the report that only reads them.

On a tiny stored run: the probes' records hold what the checkpoints compute (level 0 of every robustness curve is
the run's recorded metric, the states' classes are the labels' signs), a rerun rewrites the same bytes, the report
draws them with every checkpoint deleted and without importing a runner, a dataset or a model, and each way a
measurement can be missing, partial, stale or impossible ends in one line.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.records import load_run
from analysis.report import write_report
from analysis.report.index import Index
from analysis.report.sections import Context, probe_analyses
from benchmarks.experiment import RunSpec
from benchmarks.probe import main as probe_main
from benchmarks.probes import PROBE_FILES, measure_probes
from benchmarks.probes.embeddings import sample_classes
from benchmarks.run import run_benchmark
from records.cli import run_cli
from records.layout import cell_dir, probes_dir
from records.schema import read_document, read_table
from tests.test_run import TINY_CONFIG

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory) -> Path:
    """grf and concat x seeds 0, 1 x 2 epochs on tiny synthetic data (test split: 24 samples), no report."""
    folder = tmp_path_factory.mktemp("probes")
    (folder / "tiny.toml").write_text(TINY_CONFIG)
    out = folder / "run"
    run_benchmark(RunSpec(fusions=["grf", "concat"], seeds=[0, 1], epochs=2, config_file=str(folder / "tiny.toml"),
                          out=str(out)), quiet=True, report=False)
    return out


@pytest.fixture(scope="module")
def probed_run(stored_run, tmp_path_factory) -> Path:
    """A copy of the stored run with every seed probed."""
    out = tmp_path_factory.mktemp("probed") / "run"
    shutil.copytree(stored_run, out)
    measure_probes(out, device="cpu", cell_seeds=None)
    return out


@pytest.fixture
def run_copy(probed_run, tmp_path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(probed_run, out)
    return out


def _cell_folder(run: Path, fusion: str, seed: int) -> Path:
    records = pd.read_csv(run / "runs.csv")
    row = records[(records.fusion == fusion) & (records.seed == seed)].iloc[0]
    return cell_dir(run, fusion, row.config_hash, seed)


def test_probes_hold_what_the_checkpoints_compute_and_a_rerun_rewrites_the_same_bytes(probed_run):
    folder, records = probes_dir(probed_run), pd.read_csv(probed_run / "runs.csv")
    cells = read_table(folder / "probed_cells.csv")
    assert cells[["fusion", "seed"]].values.tolist() == [["grf", 0], ["grf", 1], ["concat", 0], ["concat", 1]]
    assert (cells["reproduction_gap"] < 1e-5).all()  # the checkpoints reproduce the stored predictions

    curves = read_table(folder / "robustness.csv")
    clean = curves[(curves.perturbation == "noise") & (curves.level == 0)]
    for row in records.itertuples():  # level 0 is the unperturbed test split: the run's own record
        values = clean[(clean.fusion == row.fusion) & (clean.seed == row.seed)]["value"].tolist()
        assert values == pytest.approx([row.mae] * 3, rel=1e-6)  # one noise curve per modality
    assert set(curves["metric"]) == {"mae"} and set(curves["modality"]) == {"text", "audio", "vision"}
    assert curves.groupby(["fusion", "seed", "modality"]).size().eq(6).all()  # 5 noise levels and the drop

    silhouettes = read_table(folder / "silhouettes.csv")
    assert silhouettes[["fusion", "seed", "step"]].values.tolist() == [
        ["grf", 0, 1], ["grf", 0, 2], ["grf", 1, 1], ["grf", 1, 2], ["concat", 0, 1], ["concat", 1, 1]]
    assert (silhouettes["n_samples"] == 24).all() and silhouettes["silhouette"].between(-1, 1).all()

    points = read_table(folder / "embeddings.csv")
    predictions = pd.read_csv(_cell_folder(probed_run, "grf", 0) / "predictions.csv")
    for _, panel in points.groupby(["fusion", "seed", "step", "method"]):
        assert panel["id"].astype(str).tolist() == predictions["id"].astype(str).tolist()  # all 24, in order
        assert panel["class"].tolist() == (predictions["label"] >= 0).astype(int).tolist()  # sentiment sign
        assert np.isfinite(panel[["x", "y"]].to_numpy()).all()
    assert len(points) == 6 * 2 * 24  # 6 states x (PCA, t-SNE) x 24 samples

    meta = read_document(folder / "meta.json")
    assert meta["classes"] == {"description": "sentiment sign (negative < 0 vs non-negative >= 0)",
                               "names": ["negative (< 0)", "non-negative (>= 0)"]}
    assert meta["cell_seeds"] is None and meta["noise_levels"] == [0.0, 0.25, 0.5, 0.75, 1.0]

    written = {name: (folder / name).read_bytes() for name in PROBE_FILES}
    measure_probes(probed_run, device="cpu", cell_seeds=None)  # idempotent and deterministic
    assert {name: (folder / name).read_bytes() for name in PROBE_FILES} == written


def test_classes_are_the_tasks():
    labels = np.array([-1.5, 0.0, 2.0, -0.1])
    sentiment = sample_classes(labels, "sentiment")
    assert sentiment.index.tolist() == [0, 1, 1, 0] and sentiment.names == ["negative (< 0)", "non-negative (>= 0)"]
    multiclass = sample_classes(np.array([2, 0, 2]), "multiclass")
    assert multiclass.index.tolist() == [2, 0, 2] and multiclass.names == ["0", "1", "2"]


def test_the_report_draws_the_probes_with_every_checkpoint_gone(run_copy, tmp_path):
    for checkpoint in run_copy.glob("cells/*/seed*/checkpoint.pt"):
        checkpoint.unlink()
    index = write_report(run_copy, quiet=True, out=tmp_path / "report")  # one seed per fusion by default
    report = index.parent
    for figure in ("embeddings", "robustness"):
        assert (report / "figures" / f"{figure}.png").stat().st_size > 0
    measured = read_table(probes_dir(run_copy) / "robustness.csv").drop(columns="schema_version")
    pd.testing.assert_frame_equal(pd.read_csv(report / "stats" / "robustness.csv"),
                                  measured[measured.seed == 0].reset_index(drop=True))
    assert pd.read_csv(report / "stats" / "silhouettes.csv")[["fusion", "seed"]].drop_duplicates().values.tolist() \
        == [["grf", 0], ["concat", 0]]
    text = index.read_text()
    assert "## Robustness" in text and "## Embeddings" in text and "not measured" not in text


def test_the_report_imports_no_runner_dataset_or_model():
    code = ("import sys, analysis.report, analysis.robustness, analysis.embeddings; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'benchmarks', 'fusions'}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr[-2000:]


def _probe_part(run: Path, out: Path, cell_seeds: int | None = 1) -> Index:
    """The report's embeddings and robustness part alone (``write_report`` runs it among the others)."""
    loaded, index = load_run(run), Index(out)
    probe_analyses(Context(loaded, loaded.records, ["mae"], ["mae"], "grf", out, index), cell_seeds)
    return index


def test_a_run_without_probes_says_which_command_measures_them_and_keeps_the_rest(run_copy, tmp_path):
    shutil.rmtree(probes_dir(run_copy))
    index = write_report(run_copy, quiet=True, out=tmp_path / "report").read_text()
    assert (f"- embeddings and robustness: not measured; `python -m benchmarks.probe {run_copy} --cell-seeds 1` "
            "measures them from the stored checkpoints") in index.split("## Not in this report")[1]
    assert "## Paired by seed" in index and (tmp_path / "report" / "figures" / "curves.png").is_file()  # the rest
    assert not (tmp_path / "report" / "figures" / "robustness.png").exists()


def test_fewer_seeds_measured_than_asked_are_drawn_and_the_rest_named(run_copy, tmp_path):
    cells = pd.read_csv(probes_dir(run_copy) / "probed_cells.csv")
    cells[cells.seed == 0].to_csv(probes_dir(run_copy) / "probed_cells.csv", index=False)  # as --cell-seeds 1
    index = _probe_part(run_copy, tmp_path, cell_seeds=None)
    assert index.absent == [
        "embeddings and robustness of grf (1 of 2 seeds), concat (1 of 2 seeds): not measured for the current "
        f"cells; `python -m benchmarks.probe {run_copy} --cell-seeds all` measures them"]
    assert set(pd.read_csv(tmp_path / "stats" / "robustness.csv")["seed"]) == {0}
    assert _probe_part(run_copy, tmp_path / "one", cell_seeds=1).absent == []  # one asked, one measured


def test_a_measure_of_a_cell_retrained_since_is_left_out(run_copy, tmp_path):
    cells = pd.read_csv(probes_dir(run_copy) / "probed_cells.csv")
    cells.loc[cells.fusion == "concat", "config_hash"] = "0123abcdef"  # measured on another configuration
    cells.to_csv(probes_dir(run_copy) / "probed_cells.csv", index=False)
    index = _probe_part(run_copy, tmp_path)
    assert index.absent == ["embeddings and robustness of concat (0 of 1 seeds): not measured for the current "
                            f"cells; `python -m benchmarks.probe {run_copy} --cell-seeds 1` measures them"]
    assert set(pd.read_csv(tmp_path / "stats" / "robustness.csv")["fusion"]) == {"grf"}


def test_a_checkpoint_that_no_longer_reproduces_its_predictions_is_a_warning(run_copy, tmp_path):
    predictions_path = _cell_folder(run_copy, "grf", 0) / "predictions.csv"
    predictions = pd.read_csv(predictions_path)
    predictions["prediction"] += 0.01
    predictions.to_csv(predictions_path, index=False)
    measure_probes(run_copy, device="cpu")
    gap = read_table(probes_dir(run_copy) / "probed_cells.csv").set_index("fusion")["reproduction_gap"]
    assert gap["grf"] == pytest.approx(0.01, rel=1e-3) and gap["concat"] < 1e-5
    warnings = _probe_part(run_copy, tmp_path).warnings
    assert len(warnings) == 1 and warnings[0].startswith(
        "grf seed 0: its checkpoint no longer reproduces its stored test predictions (largest difference 0.01)")


def test_a_missing_checkpoint_is_recorded_and_one_line(run_copy, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FUSIONBENCH_DEBUG", raising=False)
    (_cell_folder(run_copy, "concat", 0) / "checkpoint.pt").unlink()
    assert run_cli(probe_main, [str(run_copy), "--device", "cpu", "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == "error: nothing measured: no checkpoint.pt for concat seed 0"
    folder = probes_dir(run_copy)
    assert not any((folder / name).exists() for name in PROBE_FILES)  # no measure of an earlier state is left
    assert json.loads((folder / "meta.json").read_text())["reason"] == "no checkpoint.pt for concat seed 0"
    assert _probe_part(run_copy, tmp_path).absent == ["embeddings and robustness: no checkpoint.pt for concat seed 0"]


def test_a_cell_of_a_newer_schema_is_not_probed(run_copy, capsys, monkeypatch):
    """record.json versions the checkpoint beside it: a newer version is refused before the checkpoint is read."""
    monkeypatch.delenv("FUSIONBENCH_DEBUG", raising=False)
    record = _cell_folder(run_copy, "concat", 0) / "record.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "schema_version": 99}))
    assert run_cli(probe_main, [str(run_copy), "--device", "cpu", "--quiet"]) == 2
    assert "schema version 99" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["{missing}"], "does not exist"),
    (["{run}", "--cell-seeds", "0"], "--cell-seeds '0': expected a positive count or 'all'"),
    (["{run}", "--device", "tpu"], "--device 'tpu': expected auto, cpu, cuda or cuda:K"),
])
def test_bad_input_gives_one_line(probed_run, tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.delenv("FUSIONBENCH_DEBUG", raising=False)
    argv = [arg.format(missing=tmp_path / "missing", run=probed_run) for arg in args]
    before = {p: p.stat().st_mtime_ns for p in probes_dir(probed_run).iterdir()}
    assert run_cli(probe_main, argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert {p: p.stat().st_mtime_ns for p in probes_dir(probed_run).iterdir()} == before  # nothing rewritten


def test_cli_entry_point_measures_and_reports_its_error_in_one_line(run_copy, tmp_path):
    result = subprocess.run([sys.executable, "-m", "benchmarks.probe", str(run_copy), "--device", "cpu"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.startswith(f"probes: {probes_dir(run_copy)} (2 cells: grf seed "
                                                               "0, concat seed 0)"), result.stderr[-2000:]
    result = subprocess.run([sys.executable, "-m", "benchmarks.probe", str(tmp_path)], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.strip() == f"error: {tmp_path} holds no runs.csv; pass the " \
                                                               "--out folder of a finished benchmarks.run"
