"""CMU-MOSEI (``--dataset mosei``) from MulT and MMSA pickles written in their layouts, and its one-line errors."""

from __future__ import annotations

import logging
import math
import pickle
import warnings
from dataclasses import replace

import numpy as np
import pytest

from benchmarks.cli import run_cli
from benchmarks.data import DataError, load_dataset
from benchmarks.data.mosei import MOSEI
from benchmarks.experiment import RunSpec
from benchmarks.run import main as run_main
from benchmarks.run import run_benchmark
from tests.mosi_fixtures import MOSEI_FOLDS, sample_segments, write_mmsa, write_mult
from tests.test_data_mosi import assert_matches, check_ids_and_labels, pickle_truth
from tests.test_run import TINY_CONFIG

MULT_DIMS, MMSA_DIMS = (300, 74, 35), (74, 35)  # MulT: GloVe, COVAREP, Facet; MMSA: BERT 768 + COVAREP, Facet


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    """No test reads the user's MOSEI_PATH."""
    monkeypatch.delenv("MOSEI_PATH", raising=False)


def segments(per_split=(6, 3, 3)):
    return sample_segments(per_split, folds=MOSEI_FOLDS)


def write_mosei_mult(path, aligned=True):
    return write_mult(path, segments(), aligned=aligned, dims=MULT_DIMS, steps=None if aligned else (50, 500, 500))


def load_mosei(path, caplog):
    """The dataset, the warnings raised and the split-size log warnings."""
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        dataset = load_dataset("mosei", path)
    split_warnings = [r.getMessage() for r in caplog.records if "split sizes" in r.getMessage()]
    return dataset, [str(w.message) for w in caught], split_warnings


@pytest.mark.parametrize("aligned", [True, False], ids=["mosei_senti_data", "mosei_senti_data_noalign"])
def test_mult_pickles(tmp_path, caplog, aligned):
    path = tmp_path / ("mosei_senti_data.pkl" if aligned else "mosei_senti_data_noalign.pkl")
    truth = write_mosei_mult(path, aligned)
    dataset, messages, split_warnings = load_mosei(path, caplog)
    assert dataset.name == "mosei" and dataset.task == "sentiment"
    assert_matches(dataset, pickle_truth(truth))  # left padding moved after the real steps, -inf -> 0
    check_ids_and_labels(dataset, truth)
    assert dataset.dims == [300, 74, 35]
    assert [x.shape[1] for x in dataset.train.xs] == ([50, 50, 50] if aligned else [50, 500, 500])
    assert dataset.info["format"] == "mult" and dataset.info["aligned"] is aligned
    assert dataset.info["padding"]["audio"]["right"] == 0 and dataset.info["padding"]["audio"]["left"] > 0
    assert dataset.info["counts"] == {"train": 6, "valid": 3, "test": 3} and not dataset.info["standard_split"]
    assert len(messages) == 2 and messages[0].startswith(f"MOSEI file {path} (MulT pickle): replaced 12 ")
    assert "modality 'vision': 3 sample(s) have no real step" in messages[1]
    assert "audio 12 (-inf 12)" in messages[0]
    assert split_warnings == [f"MOSEI file {path} (MulT pickle): split sizes 6/3/3 differ from the standard MOSEI "
                              f"split 16326/1871/4659 (an incomplete file?); read as they are"]


@pytest.mark.parametrize("aligned", [True, False], ids=["aligned_50", "unaligned_50"])
def test_mmsa_pickles(tmp_path, caplog, aligned):
    path = tmp_path / ("aligned_50.pkl" if aligned else "unaligned_50.pkl")
    truth = write_mmsa(path, segments(), aligned=aligned, dims=MMSA_DIMS, steps=(500, 375))
    dataset, messages, split_warnings = load_mosei(path, caplog)
    assert dataset.name == "mosei" and dataset.task == "sentiment"
    assert_matches(dataset, pickle_truth(truth))  # text mask from text_bert, audio / vision from the lengths
    check_ids_and_labels(dataset, truth)  # 'video$_$clip' -> 'video_clip'
    assert dataset.dims == [768, 74, 35] and dataset.info["format"] == "mmsa" and dataset.info["aligned"] is aligned
    assert [x.shape[1] for x in dataset.train.xs] == ([50, 50, 50] if aligned else [50, 500, 375])
    assert len(messages) == 1 and "audio 12 (-inf 12)" in messages[0] and len(split_warnings) == 1


def test_mosei_path_and_a_folder_holding_one_pickle(tmp_path, monkeypatch, caplog):
    write_mosei_mult(tmp_path / "mosei_senti_data_noalign.pkl", aligned=False)
    monkeypatch.setenv("MOSEI_PATH", str(tmp_path))
    dataset, _, _ = load_mosei(None, caplog)
    assert dataset.info["path"] == str(tmp_path / "mosei_senti_data_noalign.pkl") and dataset.dims == [300, 74, 35]


def test_the_standard_split_sizes_load_without_a_split_warning(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr("benchmarks.data.mosei.MOSEI", replace(MOSEI, standard={"train": 6, "valid": 3, "test": 3}))
    path = tmp_path / "mosei_senti_data.pkl"
    write_mosei_mult(path)
    dataset, _, split_warnings = load_mosei(path, caplog)
    assert dataset.info["standard_split"] and split_warnings == []


def wrong_layout(path):
    with open(path, "wb") as handle:
        pickle.dump({"train": {"features": np.zeros((2, 4, 3)), "y": np.zeros(2)}}, handle)


@pytest.mark.parametrize("case", ["missing-file", "wrong-layout", "folder-without-pickle", "no-path"])
def test_bad_input_ends_in_one_error_line(tmp_path, capsys, case):
    path = tmp_path / "mosei_senti_data.pkl"
    expected = {"missing-file": f"error: MOSEI path {path} does not exist; expected a MulT pickle",
                "wrong-layout": f"error: MOSEI file {path} holds splits with keys ['features', 'y'], neither MulT",
                "folder-without-pickle": f"error: MOSEI folder {tmp_path} holds none of mosei_senti_data.pkl",
                "no-path": "error: no MOSEI data given: pass --data-path PATH or set MOSEI_PATH"}[case]
    if case == "wrong-layout":
        wrong_layout(path)
    data_path = {"folder-without-pickle": [str(tmp_path)], "no-path": []}.get(case, [str(path)])
    status = run_cli(run_main, ["--fusions", "concat", "--dataset", "mosei", *(["--data-path"] if data_path else []),
                                *data_path, "--seeds", "1", "--epochs", "1", "--device", "cpu", "--quiet",
                                "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and err[0].startswith(expected), err
    with pytest.raises(DataError):
        load_dataset("mosei", data_path[0] if data_path else None)


def test_concat_trains_one_cell_on_mosei(tmp_path):
    path = tmp_path / "unaligned_50.pkl"
    write_mmsa(path, segments((12, 6, 6)), aligned=False, dims=MMSA_DIMS, steps=(500, 375))
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_CONFIG)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        records = run_benchmark(RunSpec(fusions=["concat"], dataset="mosei", dataset_path=str(path), seeds=[0],
                                        epochs=1, config_file=str(config), out=str(tmp_path / "out")), quiet=True)
    assert len(records) == 1 and records.loc[0, "dataset"] == "mosei"
    assert records[["n_train", "n_valid", "n_test"]].iloc[0].tolist() == [12, 6, 6]
    assert math.isfinite(records.loc[0, "mae"]) and math.isfinite(records.loc[0, "acc7"])
