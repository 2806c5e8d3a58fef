"""The commands on every dataset, each with its task's words and metrics: ``scaling --train`` on a CH-SIMS file and on
your own arrays (the counts 2 to the dataset's number of modalities, the task's metric columns, one load of the
data, a count above it refused in one line), the report's embedding sentences for a task without classes, the
ablation table with one seed, and tuning's log lines naming the score they minimise."""

from __future__ import annotations

import itertools
import random
import warnings

import pandas as pd
import pytest

from benchmarks.ablate import main as ablate_main
from benchmarks.cli import run_cli
from benchmarks.run import main as run_main
from benchmarks.scaling import main as scaling_main
from benchmarks.tune import main as tune_main
from tasks import get_task
from tests.test_data_arrays import declaration, layout, write_folder
from tests.test_data_sims import LAYOUTS, MOSI_METRICS, write_sims

ARRAYS_MODALITIES = ["video", "eeg", "gaze"]  # tests.test_data_arrays.declaration's order


@pytest.fixture
def sims_file(tmp_path, monkeypatch):
    """A CH-SIMS ``unaligned_39.pkl`` (12 / 6 / 6 samples; text, audio, vision); no SIMS_PATH from the user."""
    monkeypatch.delenv(LAYOUTS["sims"]["env"], raising=False)
    path = tmp_path / LAYOUTS["sims"]["file"]
    write_sims(path, "sims", per_split=(12, 6, 6))
    return path


def sweep(argv: list[str], capsys) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fixtures' split sizes differ from the standard ones
        status = run_cli(scaling_main, ["--train", "--fusions", "concat", "--seed", "0", "--epochs", "1",
                                        "--device", "cpu", "--quiet", *argv])
    assert status == 0, capsys.readouterr().err


def test_scaling_train_on_a_sims_file_records_the_sims_metrics(tmp_path, tiny, sims_file, loads, capsys):
    out = tmp_path / "sweep"
    sweep(["--dataset", "sims", "--data-path", str(sims_file), "--modalities", "2,3", "--subsets", "0",
           "--config", tiny, "--out", str(out)], capsys)
    records = pd.read_csv(out / "accuracy.csv")
    assert loads == ["sims"]  # loaded once; every setting selects from it
    assert (records["status"] == "done").all() and set(records["task"]) == {"sims"}
    assert list(records["setting"]) == ["n2-text-audio", "n3-text-audio-vision"] and (records["flops"] > 0).all()
    metrics = get_task("sims").metrics
    assert set(metrics) <= set(records.columns) and not set(MOSI_METRICS) & set(records.columns)
    assert records[[m for m in metrics if m != "corr"]].notna().all().all()  # corr: NaN for a constant prediction
    for name in ("accuracy_vs_n", "accuracy_vs_flops"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 0


def test_scaling_train_on_your_own_arrays_takes_every_count_by_default(tmp_path, tiny, loads, capsys):
    folder = write_folder(tmp_path / "eeg", layout("binary"), declaration("binary"))
    out = tmp_path / "sweep"
    sweep(["--dataset", "arrays", "--data-path", str(folder), "--subsets", "1", "--config", tiny,
           "--out", str(out)], capsys)
    records = pd.read_csv(out / "accuracy.csv")
    assert loads == ["arrays"]
    others = [["video", "gaze"], ["eeg", "gaze"]]  # the pairs after the nested video-eeg, in itertools' order
    drawn = random.Random(0 + 2).sample(others, 1)[0]  # the sweep's seed 0 + the count
    assert list(records["setting"]) == ["n2-video-eeg", f"n2-{'-'.join(drawn)}", "n3-video-eeg-gaze"]  # 2..3
    assert set(get_task("binary").metrics) <= set(records.columns) and "acc7" not in records.columns


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "sims", "--modalities", "2,4"],
     "error: dataset 'sims' has 3 modalities (text, audio, vision): --modalities must lie in 2..3, got 4"),
    (["--dataset", "arrays", "--modalities", "5"],
     "error: dataset 'arrays' has 3 modalities (video, eeg, gaze): --modalities must lie in 2..3, got 5"),
])
def test_a_count_above_the_datasets_modalities_is_one_line_naming_them(tmp_path, sims_file, capsys, argv, message):
    data = {"sims": sims_file, "arrays": write_folder(tmp_path / "own", layout("binary"), declaration("binary"))}
    status = run_cli(scaling_main, ["--train", *argv, "--data-path", str(data[argv[1]]), "--fusions", "concat",
                                    "--out", str(tmp_path / "sweep"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert status == 2 and err == message
    assert not (tmp_path / "sweep" / "accuracy.csv").exists()  # refused before anything trains


def test_subsets_are_drawn_as_itertools_lists_them():
    """``nth_combination`` is ``itertools.combinations``' order without listing it, so the drawn subsets are the
    ones the sweep drew when it listed them (mfeat's committed settings)."""
    from benchmarks.accuracy_scaling import modality_subsets, nth_combination

    views = ["fou", "fac", "kar", "pix", "zer", "mor"]
    for n in range(1, 7):
        listed = [list(c) for c in itertools.combinations(views, n)]
        assert [nth_combination(views, n, rank) for rank in range(len(listed))] == listed
    with pytest.raises(IndexError):
        nth_combination(views, 3, 20)
    drawn = modality_subsets("mfeat", views, [2, 3, 6], subsets=2)
    expected = []
    for n in (2, 3, 6):
        others = [list(c) for c in itertools.combinations(views, n)][1:]
        expected += [views[:n]] + random.Random(n).sample(others, min(2, len(others)))
    assert drawn == expected and len(drawn) == 3 + 3 + 1
    assert nth_combination([f"m{i}" for i in range(40)], 20, 10**10)  # C(40, 20) = 1.4e11 subsets: none listed


def test_the_report_of_a_task_without_classes_says_so(tmp_path, tiny, capsys):
    folder = write_folder(tmp_path / "own", layout("regression"), declaration("regression"))
    out = tmp_path / "run"
    status = run_cli(run_main, ["--dataset", "arrays", "--data-path", str(folder), "--fusions", "concat", "--seed",
                                "0", "--epochs", "1", "--config", tiny, "--device", "cpu", "--out", str(out),
                                "--quiet"])  # then the probes and the report
    assert status == 0, capsys.readouterr().err
    assert pd.read_csv(out / "probes" / "silhouettes.csv")["silhouette"].isna().all()
    index = (out / "report" / "README.md").read_text()
    assert "coloured by class" not in index and "class separability of the fused states" not in index.split(
        "## Not in this report")[0]
    assert ("PCA and t-SNE, every sample in one colour (task 'regression' defines no classes, so no silhouette)"
            in index)
    assert "no silhouette (NaN): task 'regression' defines no classes" in index
    assert "- class separability of the fused states (silhouettes): task 'regression' defines no classes" in index


def test_an_ablation_with_one_seed_prints_each_value_alone(tmp_path, tiny, capsys):
    status = run_cli(ablate_main, ["--groups", "aux", "--seed", "0", "--epochs", "1", "--config", tiny,
                                   "--modalities", "text,audio", "--device", "cpu", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert status == 0
    summary = pd.read_csv(tmp_path / "ablation.csv")
    assert list(summary["n_seeds"]) == [1, 1] and summary["mae_std"].isna().all()
    rows = [line for line in printed.splitlines() if line.split()[:2] in (["reference", "grf"], ["aux", "grf:aux=off"])]
    assert len(rows) == 2 and "nan" not in printed and "±" not in "".join(rows)
    for row, mae in zip(rows, summary["mae_mean"]):
        assert f"{mae:.3f}" in row.split()
    assert "± nan" not in (tmp_path / "ablation.md").read_text()


@pytest.mark.parametrize("fusion, protocol, metric", [
    ("concat", "shared", "valid_mae"),  # sentiment selects by validation MAE
    ("tfn", "reference", "valid_loss"),  # TFN's code selects by the validation loss
])
def test_tuning_names_the_score_it_minimises(tmp_path, tiny, capsys, fusion, protocol, metric):
    status = run_cli(tune_main, ["--fusion", fusion, "--protocol", protocol, "--trials", "1", "--epochs", "1",
                                 "--config", tiny, "--device", "cpu", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert status == 0
    trials = pd.read_csv(tmp_path / "synthetic" / fusion / "trials.csv")
    value = f"{trials['value'].iloc[0]:.4f}"
    assert f"trial 0: validation {metric} {value} after 1 epochs" in printed
    assert f"best: trial 0, validation {metric} {value} (" in printed and "validation score" not in printed
