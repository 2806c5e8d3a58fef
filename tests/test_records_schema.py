"""Records with a schema (``records.schema``): a run folder written today loads; records of an older version are
upgraded; a newer version is refused with one line; a missing required column is one error naming the file and
the column. Also: every figure and table is written atomically (``records.io``, ``analysis.plots.save_figure``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from analysis.plots import save_figure
from analysis.records import cell_files, load_run
from analysis.report import main as report_main
from benchmarks import scaling
from benchmarks.experiment import RunSpec
from benchmarks.run import run_benchmark
from benchmarks.tuned import tuned_overrides
from records.cli import run_cli
from records.layout import cell_dir
from records.schema import (
    RECORD_VERSION,
    SCHEMA_VERSION,
    SchemaError,
    read_document,
    read_record,
    read_table,
    upgrade_record,
    write_document,
    write_table,
)
from tests.test_run import TINY_CONFIG

ROOT = Path(__file__).resolve().parents[1]
OLD_RUNS = ROOT / "results" / "ablate" / "synthetic" / "runs.csv"  # committed before records had a version
NEWER = "were written by schema version 3; this fusionbench reads up to 2: upgrade fusionbench"


@pytest.fixture(scope="module")
def today(tmp_path_factory) -> Path:
    """A run folder written by this fusionbench: concat, 1 seed, 2 epochs on tiny synthetic data."""
    folder = tmp_path_factory.mktemp("today")
    (folder / "tiny.toml").write_text(TINY_CONFIG)
    spec = RunSpec(fusions=["concat"], seeds=[0], epochs=2, config_file=str(folder / "tiny.toml"),
                   out=str(folder / "run"))
    run_benchmark(spec, quiet=True, report=False)
    return folder / "run"


def copy_run(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def test_a_folder_written_today_carries_its_versions_and_loads(today):
    assert SCHEMA_VERSION["runs.csv"] == RECORD_VERSION == 2
    assert pd.read_csv(today / "runs.csv")["schema_version"].tolist() == [2]
    row = pd.read_csv(today / "runs.csv").iloc[0]
    folder = cell_dir(today, row.fusion, row.config_hash, int(row.seed))
    assert json.loads((folder / "record.json").read_text())["schema_version"] == 2
    assert json.loads((today / "meta.json").read_text())["schema"] == {"kind": "meta.json", "version": 2}
    assert "schema_version" not in pd.read_csv(folder / "predictions.csv").columns  # versioned by record.json
    run = load_run(today)
    assert run.records["status"].tolist() == ["done"] and run.meta["schema"]["version"] == 2
    predictions, missing = cell_files(run, run.records, "predictions.csv")
    assert not missing and len(predictions) == 24 and {"fusion", "seed", "id", "label", "prediction"} <= set(
        predictions.columns)
    assert read_record(folder)["status"] == "done"


def test_records_of_version_1_are_upgraded(tmp_path):
    old = pd.read_csv(OLD_RUNS)
    assert not {"status", "error", "schema_version"} & set(old.columns)  # the committed file is a version 1 one
    shutil.copy(OLD_RUNS, tmp_path / "runs.csv")
    run = load_run(tmp_path)
    assert (run.records["status"] == "done").all() and (run.records["error"] == "").all()
    assert (run.records["schema_version"] == 2).all() and run.records["mae"].notna().all()
    assert len(run.records) == len(old)

    cell = tmp_path / "cell"
    cell.mkdir()
    (cell / "record.json").write_text(json.dumps(old.iloc[0].to_dict()))  # a version 1 record: no status
    assert read_record(cell)["status"] == "done" and read_record(cell)["schema_version"] == 2


def test_rows_of_several_versions_are_upgraded_each_from_its_own(today, tmp_path):
    today_rows = pd.read_csv(today / "runs.csv").assign(status="failed", error="diverged", mae=float("nan"))
    old_rows = pd.read_csv(OLD_RUNS).head(2)
    pd.concat([old_rows, today_rows], ignore_index=True).to_csv(tmp_path / "runs.csv", index=False)
    records = read_table(tmp_path / "runs.csv")
    assert records["status"].tolist() == ["done", "done", "failed"]
    assert records["error"].tolist() == ["", "", "diverged"] and (records["schema_version"] == 2).all()


@pytest.mark.parametrize("where", ["runs.csv", "record.json", "meta.json"])
def test_a_newer_version_is_refused_with_one_line(today, tmp_path, capsys, monkeypatch, where):
    run = copy_run(today, tmp_path / "run")
    row = pd.read_csv(run / "runs.csv").iloc[0]
    record = cell_dir(run, row.fusion, row.config_hash, int(row.seed)) / "record.json"
    path = {"runs.csv": run / "runs.csv", "record.json": record, "meta.json": run / "meta.json"}[where]
    if where == "runs.csv":
        pd.read_csv(path).assign(schema_version=3).to_csv(path, index=False)
    elif where == "record.json":
        path.write_text(json.dumps({**json.loads(path.read_text()), "schema_version": 3}))
    else:
        path.write_text(json.dumps({**json.loads(path.read_text()), "schema": {"kind": "meta.json", "version": 3}}))
    monkeypatch.delenv("FUSIONBENCH_DEBUG", raising=False)
    assert run_cli(report_main, [str(run), "--quiet"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"error: records in {path} {NEWER}"]
    if where == "record.json":
        with pytest.raises(SchemaError, match=NEWER):
            read_record(path.parent)  # the runner refuses to reuse the cell, too


def test_a_newer_record_from_a_shared_grid_or_tuned_parameters_is_refused(tmp_path):
    with pytest.raises(SchemaError, match=rf"records in trial 4 of study 'g' {NEWER}"):
        upgrade_record({"fusion": "grf", "seed": 0, "config_hash": "x", "status": "done", "schema_version": 3},
                       "trial 4 of study 'g'")
    path = tmp_path / "best_params" / "synthetic" / "grf.json"
    write_document(path, {"fusion": "grf", "dataset": "synthetic", "config": {"num_layers": 2}}, "best_params")
    assert read_document(path, "best_params")["schema"] == {"kind": "best_params", "version": 2}
    assert tuned_overrides(str(tmp_path), "synthetic", ["grf"]) == {
        "datasets": {"synthetic": {"fusions": {"grf": {"num_layers": 2}}}}}
    document = json.loads(path.read_text())
    path.write_text(json.dumps({**document, "schema": {"kind": "best_params", "version": 3}}))
    with pytest.raises(SchemaError, match=NEWER):
        tuned_overrides(str(tmp_path), "synthetic", ["grf"])


def test_a_missing_required_column_is_one_error_naming_file_and_column(today, tmp_path, capsys, monkeypatch):
    run = copy_run(today, tmp_path / "run")
    pd.read_csv(run / "runs.csv").drop(columns="status").to_csv(run / "runs.csv", index=False)
    monkeypatch.delenv("FUSIONBENCH_DEBUG", raising=False)
    assert run_cli(report_main, [str(run), "--quiet"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {run / 'runs.csv'} lacks the column 'status', which runs.csv (schema version 2) requires"]

    row = pd.read_csv(today / "runs.csv").iloc[0]
    predictions = cell_dir(run, row.fusion, row.config_hash, int(row.seed)) / "predictions.csv"
    pd.read_csv(predictions).drop(columns="prediction").to_csv(predictions, index=False)
    with pytest.raises(SchemaError, match=rf"^{predictions} lacks the column 'prediction', which predictions.csv"):
        read_table(predictions, 2)


def test_a_writer_refuses_a_table_without_a_required_column_and_writes_nothing(tmp_path):
    with pytest.raises(SchemaError, match=r"the table written to .*runs.csv lacks the column 'config_hash'"):
        write_table(tmp_path / "runs.csv", pd.DataFrame({"fusion": ["grf"], "seed": [0], "status": ["done"]}))
    assert not list(tmp_path.iterdir())
    with pytest.raises(KeyError, match="no schema for 'notes.csv'"):
        write_table(tmp_path / "notes.csv", pd.DataFrame({"a": [1]}))


def test_scaling_outputs_are_versioned_and_atomic(tmp_path):
    records = pd.DataFrame([
        {"fusion": "grf", "n_modalities": n, "seq_len": 8, "d_model": 8, "batch_size": 4, "device": "cpu",
         "status": "ok", "params": 1000 * n} for n in (2, 4, 8, 16)
    ]).reindex(columns=list(scaling.columns()))
    scaling.write_outputs(records, tmp_path, figures=False)
    written = pd.read_csv(tmp_path / "scaling.csv")
    assert list(written.columns) == list(scaling.columns()) and (written["schema_version"] == 2).all()
    assert (pd.read_csv(tmp_path / "exponents.csv")["schema_version"] == 2).all()
    assert read_table(tmp_path / "exponents.csv").set_index("measure").loc["params", "k"] == pytest.approx(1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "README.md", "exponents.csv", "exponents.tex", "scaling.csv", "scaling.tex",
        "scaling_meta.json"]  # no temporary file left


def test_a_failed_figure_save_leaves_the_previous_file_and_no_temporary_one(tmp_path, monkeypatch):
    figure, _ = plt.subplots()
    save_figure(figure, tmp_path / "seeds")
    before = (tmp_path / "seeds.png").read_bytes()

    def half_written(self, path, **kwargs):
        Path(path).write_bytes(b"half a png")
        raise OSError("No space left on device")

    monkeypatch.setattr(type(figure), "savefig", half_written)
    figure, _ = plt.subplots()
    with pytest.raises(OSError, match="No space left"):
        save_figure(figure, tmp_path / "seeds")
    assert (tmp_path / "seeds.png").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seeds.pdf", "seeds.png"]
    assert not plt.fignum_exists(figure.number)  # closed, even though saving failed
