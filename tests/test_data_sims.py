"""CH-SIMS (``--dataset sims``, MMSA's ``unaligned_39.pkl``) and CH-SIMS v2 (``--dataset sims2``, the MMSA-FET
pickle) from files written here in their layouts, their unimodal labels, their one-line errors, and two fusions
trained on each through the CLI with the report after."""

from __future__ import annotations

import logging
import pickle
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

import benchmarks.data.sims as sims_data
from analysis.report import main as report_main
from benchmarks.cli import run_cli
from benchmarks.data import DataError, load_dataset
from benchmarks.run import main as run_main
from tests.test_run import TINY_CONFIG

MODALITIES = ("text", "audio", "vision")
SPLITS = ("train", "valid", "test")
UNIMODAL = {"T": "labels_text", "A": "labels_audio", "V": "labels_vision"}
# Per version: the file name, text / audio / vision steps and widths, the float type MMSA-FET writes (float64:
# np.zeros) or MMSA's file holds, and the documented split sizes.
LAYOUTS = {
    "sims": {"file": "unaligned_39.pkl", "steps": (39, 400, 55), "dims": (768, 33, 709), "float": np.float32,
             "standard": "1368/456/457", "title": "CH-SIMS", "env": "SIMS_PATH"},
    "sims2": {"file": "ch-simsv2s.pkl", "steps": (50, 925, 232), "dims": (768, 25, 177), "float": np.float64,
              "standard": "2722/647/1034", "title": "CH-SIMS v2", "env": "SIMS2_PATH"},
}
SIMS_METRICS = ["mae", "corr", "sims_acc2", "sims_acc3", "sims_acc5", "sims_f1"]
MOSI_METRICS = ["acc2_has0", "acc2_non0", "f1_has0", "f1_non0", "f1_macro_has0", "acc5", "acc7"]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No test reads the user's SIMS_PATH / SIMS2_PATH or writes to the user's cache."""
    for layout in LAYOUTS.values():
        monkeypatch.delenv(layout["env"], raising=False)
    monkeypatch.setenv("FUSIONBENCH_CACHE", str(tmp_path / "cache"))


def grid(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` labels on CH-SIMS's 0.2 grid in [-1, 1] (five annotators' -1 / 0 / 1, averaged), both ends included."""
    labels = np.round(rng.integers(-5, 6, n) / 5, 1)
    labels[:2] = [-1.0, 1.0]
    return labels


def real_steps(rng: np.random.Generator, n: int, dim: int, dtype) -> np.ndarray:
    """``[n, dim]`` real steps: non-zero values, with an all-zero row inside when ``n >= 3`` (a real zero step)."""
    x = (rng.uniform(0.5, 1.5, (n, dim)) * rng.choice([-1, 1], (n, dim))).astype(dtype)
    if n >= 3:
        x[n // 2] = 0.0
    return x


def right_padded(sequences: list[np.ndarray], steps: int, dim: int, dtype) -> np.ndarray:
    x = np.zeros((len(sequences), steps, dim), dtype)
    for row, sequence in enumerate(sequences):
        x[row, : len(sequence)] = sequence
    return x


def write_sims(path, version: str = "sims", per_split=(6, 3, 3), seed: int = 0) -> dict:
    """A CH-SIMS pickle in ``version``'s layout; returns per split the ids, labels, unimodal labels and the real
    steps of each modality, as the loader must return them.

    Both: per split ``text`` BERT ``[N, T_t, 768]`` with ``text_bert`` ``[N, 3, T_t]`` (token ids, attention mask,
    segment ids; right-padded), ``audio`` / ``vision`` right-padded with ``audio_lengths`` / ``vision_lengths``,
    ``regression_labels`` and ``regression_labels_T`` / ``_A`` / ``_V`` on the 0.2 grid, ``annotations``,
    ``raw_text``, ``id`` ``video$_$clip``. ``sims`` (MMSA's ``unaligned_39.pkl``): float32, BERT states at the
    padded text positions too, lengths as lists, ``classification_labels`` (0 negative, 1 neutral, 2 positive).
    ``sims2`` (MMSA-FET): float64 everywhere (``text_bert`` too), zero padding, lengths as int64 arrays, no
    ``classification_labels``, a top-level ``config``, and the first train sample with no vision frame (a face
    detector that found no face: length 0, all-zero rows).
    """
    layout = LAYOUTS[version]
    rng, dtype = np.random.default_rng(seed), layout["float"]
    steps, dims = dict(zip(MODALITIES, layout["steps"])), dict(zip(MODALITIES, layout["dims"]))
    data, truth, video = {}, {}, 0
    for split, n in zip(SPLITS, per_split):
        ids = [f"video_{video + row // 2:04d}$_${row % 2 + 1:04d}" for row in range(n)]
        video += n
        labels = grid(rng, n)
        unimodal = {m: grid(rng, n) for m in UNIMODAL}
        tokens = rng.integers(2, steps["text"] + 1, n)
        tokens[0] = steps["text"]
        text = (rng.normal(size=(n, steps["text"], 768)) if version == "sims"
                else right_padded([real_steps(rng, int(k), 768, dtype) for k in tokens], steps["text"], 768, dtype))
        bert = np.zeros((n, 3, steps["text"]), np.int64 if version == "sims" else np.float64)
        for row, k in enumerate(tokens):
            bert[row, 0, :k] = [101, *rng.integers(1000, 8000, k - 2), 102]
            bert[row, 1, :k] = 1
        split_truth = {"ids": [i.replace("$_$", "_") for i in ids], "labels": labels.astype(np.float32),
                       "extras": {UNIMODAL[m]: v.astype(np.float32) for m, v in unimodal.items()},
                       "text": [text[row, :k].astype(np.float32) for row, k in enumerate(tokens)]}
        entry = {"text": text.astype(dtype), "text_bert": bert}
        for m in ("audio", "vision"):
            lengths = rng.integers(1, steps[m] + 1, n)
            lengths[-1] = steps[m]  # one full-length sequence
            if version == "sims2" and m == "vision" and split == "train":
                lengths[0] = 0
            real = [real_steps(rng, int(k), dims[m], dtype) for k in lengths]
            split_truth[m] = [r.astype(np.float32) for r in real]
            entry[m] = right_padded(real, steps[m], dims[m], dtype)
            entry[f"{m}_lengths"] = [int(k) for k in lengths] if version == "sims" else lengths.astype(np.int64)
        words = np.array(["Negative", "Neutral", "Positive"])[np.sign(labels).astype(int) + 1]
        entry.update(
            regression_labels=labels.astype(dtype), **{f"regression_labels_{m}": v.astype(dtype)
                                                       for m, v in unimodal.items()},
            annotations=list(words) if version == "sims" else words, id=np.array(ids),
            raw_text=[f"第{row}句话" for row in range(n)] if version == "sims" else np.array([f"第{row}句" for row in
                                                                                          range(n)]),
        )
        if version == "sims":
            entry["classification_labels"] = (np.sign(labels) + 1).astype(np.float32)
        data[split], truth[split] = entry, split_truth
    if version == "sims2":
        data["config"] = {"audio": {"tool": "opensmile"}, "video": {"tool": "openface"}, "text": {"model": "bert"}}
    with open(path, "wb") as handle:
        pickle.dump(data, handle, protocol=pickle.HIGHEST_PROTOCOL)
    return truth


def load(version: str, path, caplog):
    """The dataset, the warnings raised and the logged warnings."""
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        dataset = load_dataset(version, path)
    return dataset, [str(w.message) for w in caught], [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize("version", sorted(LAYOUTS))
def test_each_layout_loads_with_its_shapes_masks_labels_and_unimodal_labels(tmp_path, caplog, version):
    layout = LAYOUTS[version]
    path = tmp_path / layout["file"]
    truth = write_sims(path, version)
    dataset, messages, logged = load(version, path, caplog)
    assert dataset.name == version and dataset.task == "sims" and dataset.modality_names == list(MODALITIES)
    assert dataset.dims == list(layout["dims"]) and [x.shape[1] for x in dataset.train.xs] == list(layout["steps"])
    for name, split in dataset.splits.items():
        assert split.ids == truth[name]["ids"]  # video$_$clip -> video_clip
        assert torch.equal(split.labels, torch.from_numpy(truth[name]["labels"]))
        assert sorted(split.extras) == ["labels_audio", "labels_text", "labels_vision"]
        for key, values in truth[name]["extras"].items():
            assert split.extras[key].dtype == torch.float32 and torch.equal(split.extras[key],
                                                                            torch.from_numpy(values))
        for x, mask, modality in zip(split.xs, split.masks, MODALITIES):
            assert x.dtype == torch.float32 and mask.dtype == torch.bool
            for row, real in enumerate(truth[name][modality]):
                # the text mask is BERT's attention mask (sims: non-zero states at the padded positions)
                assert torch.equal(mask[row], torch.arange(mask.shape[1]) < max(1, len(real))), (name, row, modality)
                np.testing.assert_allclose(x[row, : len(real)].numpy(), real, rtol=1e-6)
                assert not x[row, len(real):].any()
    empty = {"text": 0, "audio": 0, "vision": 1 if version == "sims2" else 0}
    assert dataset.info["empty"] == empty and dataset.info["format"] == "mmsa" and not dataset.info["aligned"]
    assert dataset.info["padding"]["audio"]["left"] == 0 and dataset.info["padding"]["audio"]["right"] > 0
    assert dataset.info["counts"] == {"train": 6, "valid": 3, "test": 3} and not dataset.info["standard_split"]
    assert dataset.info["unimodal_labels"] == ["labels_text", "labels_audio", "labels_vision"]
    assert [m for m in messages if "no real step" not in m] == []  # nothing non-finite, nothing extreme
    assert logged == [f"{layout['title']} file {path} (MMSA pickle): split sizes 6/3/3 differ from the standard "
                      f"{layout['title']} split {layout['standard']} (an incomplete file?); read as they are"]


def test_unimodal_labels_follow_subsets_and_modality_selections(tmp_path, caplog):
    path = tmp_path / "unaligned_39.pkl"
    truth = write_sims(path)
    dataset, _, _ = load("sims", path, caplog)
    picked = dataset.select_modalities(["vision", "text"]).train.subset(torch.tensor([4, 1]))
    assert picked.extras["labels_audio"].tolist() == truth["train"]["extras"]["labels_audio"][[4, 1]].tolist()


def test_a_second_load_from_the_cache_keeps_the_unimodal_labels(tmp_path, caplog):
    path = tmp_path / "ch-simsv2s.pkl"
    truth = write_sims(path, "sims2")
    first, _, _ = load("sims2", path, caplog)
    again, _, logged = load("sims2", path, caplog)
    assert first.info["cache"] == "stored" and again.info["cache"] == "hit"
    assert again.info["unimodal_labels"] == ["labels_text", "labels_audio", "labels_vision"]
    for name, split in again.splits.items():
        for key, values in truth[name]["extras"].items():
            assert torch.equal(split.extras[key], torch.from_numpy(values))


@pytest.mark.parametrize("version", sorted(LAYOUTS))
def test_the_standard_split_sizes_load_without_a_split_warning(tmp_path, caplog, monkeypatch, version):
    corpus = "SIMS" if version == "sims" else "SIMS2"
    monkeypatch.setattr(sims_data, corpus, replace(getattr(sims_data, corpus), standard={"train": 6, "valid": 3,
                                                                                          "test": 3}))
    path = tmp_path / LAYOUTS[version]["file"]
    write_sims(path, version)
    dataset, _, logged = load(version, path, caplog)
    assert dataset.info["standard_split"] and logged == []


def test_the_environment_variable_and_a_folder_holding_one_pickle(tmp_path, caplog, monkeypatch):
    write_sims(tmp_path / "unaligned.pkl", "sims2")  # a CH-SIMS v2 name seen in use
    monkeypatch.setenv("SIMS2_PATH", str(tmp_path))
    dataset, _, _ = load("sims2", None, caplog)
    assert dataset.info["path"] == str(tmp_path / "unaligned.pkl") and dataset.dims == [768, 25, 177]


def test_a_v2_file_read_as_sims_is_read_with_a_warning_naming_sims2(tmp_path, caplog):
    path = tmp_path / "unaligned_39.pkl"
    write_sims(path, "sims2")
    dataset, _, logged = load("sims", path, caplog)
    assert dataset.dims == [768, 25, 177]
    assert f"CH-SIMS file {path} (MMSA pickle): its feature widths 768/25/177 are CH-SIMS v2's: --dataset sims2 " \
           f"reads it as CH-SIMS v2" in logged


def edit_pickle(path, edit) -> None:
    with open(path, "rb") as handle:
        data = pickle.load(handle)
    edit(data)
    with open(path, "wb") as handle:
        pickle.dump(data, handle)


def write_mult_layout(path) -> None:
    """A MulT-layout pickle (text, audio, vision, labels [N, 1, 1]) whose labels lie in [-1, 1]."""
    rng = np.random.default_rng(0)
    split = {"text": rng.normal(size=(3, 4, 5)).astype(np.float32), "audio": rng.normal(size=(3, 4, 2)),
             "vision": rng.normal(size=(3, 4, 3)), "labels": grid(rng, 3).reshape(3, 1, 1)}
    with open(path, "wb") as handle:
        pickle.dump({name: split for name in SPLITS}, handle)


def _set(split: str, key: str, change):
    def edit(data):
        data[split][key] = change(data[split][key])
    return edit


FILE = "error: CH-SIMS file {path} (MMSA pickle): "
BAD_INPUT = {  # case: (edit of a written CH-SIMS file, the error line's start, a fragment it holds)
    "unimodal-label-outside": (
        _set("valid", "regression_labels_A", lambda v: np.where(np.arange(len(v)) == 1, 1.4, v)), FILE,
        "split 'valid' has 1 'regression_labels_A' label(s) that are non-finite or outside [-1, 1] (first: 1.4"),
    "unimodal-label-nan": (
        _set("train", "regression_labels_T", lambda v: np.where(np.arange(len(v)) == 0, np.nan, v)), FILE,
        "split 'train' has 1 'regression_labels_T' label(s) that are non-finite or outside [-1, 1] (first: nan"),
    "unimodal-labels-in-some-splits": (
        lambda data: data["test"].pop("regression_labels_V"), FILE,
        "split 'test' lacks 'regression_labels_V', which split 'valid' holds; expected the unimodal labels in every "
        "split or in none"),
    "unimodal-labels-too-few": (
        _set("train", "regression_labels_T", lambda v: v[:-1]), "error: CH-SIMS file {path} (MMSA pickle), split "
        "'train': ", "'regression_labels_T' holds 5 values; expected 6, one per segment"),
    "mosi-scale-labels": (
        _set("test", "regression_labels", lambda v: v * 3), FILE,
        "label(s) that are non-finite or outside [-1, 1] (first: -3.0 for segment 'video_0009_0001'); expected "
        "sentiment in [-1, 1]"),
    "mult-layout": (None, "error: CH-SIMS file {path} holds ", "not CH-SIMS data (keys text, audio, vision, labels"),
    "folder-without-pickle": (None, "error: CH-SIMS folder {folder} holds none of unaligned_39.pkl; ",
                              "expected MMSA's CH-SIMS pickle"),
    "no-path": (None, "error: no CH-SIMS data given: pass --data-path PATH or set SIMS_PATH", ""),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_ends_in_one_error_line(tmp_path, capsys, case):
    edit, start, fragment = BAD_INPUT[case]
    path = tmp_path / "unaligned_39.pkl"
    if case == "mult-layout":
        write_mult_layout(path)
    elif edit is not None:
        write_sims(path)
        edit_pickle(path, edit)
    data_path = {"no-path": [], "folder-without-pickle": ["--data-path", str(tmp_path)]}.get(
        case, ["--data-path", str(path)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        status = run_cli(run_main, ["--fusions", "concat", "--dataset", "sims", *data_path, "--seeds", "1",
                                    "--epochs", "1", "--device", "cpu", "--quiet", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    assert err[0].startswith(start.format(path=path, folder=tmp_path)) and fragment in err[0], err[0]
    with pytest.raises(DataError):
        load_dataset("sims", data_path[1] if data_path else None)


@pytest.mark.parametrize("version", sorted(LAYOUTS))
def test_two_fusions_train_through_the_cli_and_the_report_shows_the_sims_metrics(tmp_path, capsys, version):
    path = tmp_path / LAYOUTS[version]["file"]
    write_sims(path, version, per_split=(12, 6, 6))
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_CONFIG)
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        status = run_cli(run_main, ["--fusions", "concat,late", "--dataset", version, "--data-path", str(path),
                                    "--seeds", "1", "--epochs", "1", "--config", str(config), "--device", "cpu",
                                    "--quiet", "--no-report", "--out", str(out)])
        assert status == 0, capsys.readouterr().err
        runs = pd.read_csv(out / "runs.csv")
        assert sorted(runs.fusion) == ["concat", "late"] and (runs.status == "done").all()
        assert (runs.dataset == version).all() and (runs.task == "sims").all()
        assert (runs[["n_train", "n_valid", "n_test"]] == [12, 6, 6]).all().all()
        assert set(SIMS_METRICS) <= set(runs.columns) and not set(MOSI_METRICS) & set(runs.columns)
        assert runs[[m for m in SIMS_METRICS if m != "corr"]].notna().all().all()  # corr: NaN if constant
        assert run_cli(report_main, [str(out), "--quiet"]) == 0, capsys.readouterr().err
    header = (out / "report" / "tables" / "comparison.md").read_text().splitlines()[0]
    assert [cell.strip() for cell in header.strip("|").split("|")] == \
        ["fusion", "mae ↓", "corr ↑", "sims_acc2 ↑", "sims_acc3 ↑", "sims_acc5 ↑", "sims_f1 ↑"]
    per_seed = pd.read_csv(out / "report" / "stats" / "summary.csv")
    assert set(per_seed.metric) == set(SIMS_METRICS)
