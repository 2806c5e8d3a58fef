"""MOSI from each distributed format (MulT / MMSA pickles, SDK .csd folders), and every bad input's one-line error."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from benchmarks.data import DataError, load_dataset
from benchmarks.data.affect import sdk
from tests.mosi_fixtures import (
    FOLDS,
    LABEL_CSV,
    LABELS_CSD,
    MODALITIES,
    SDK_NAMES,
    SPLITS,
    real_label_intervals,
    real_segments,
    sample_segments,
    write_mmsa,
    write_mult,
    write_sdk_folder,
)

needs_shared = pytest.mark.skipif(not LABELS_CSD.is_file() or not LABEL_CSV.is_file(),
                                  reason="the shared MOSI labels (../shared/data/mosi) are absent")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No test reads the user's MOSI_PATH or writes to the user's cache."""
    monkeypatch.delenv("MOSI_PATH", raising=False)
    monkeypatch.setenv("FUSIONBENCH_CACHE", str(tmp_path / "default-cache"))


def load_quietly(path, **options):
    """Load, returning the dataset and the warnings raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = load_dataset("mosi", path, **options)
    return dataset, [str(w.message) for w in caught]


def assert_matches(dataset, truth_of):
    """Every split: real steps first equal to the truth, zero padding after, one real step at least, float32."""
    assert dataset.modality_names == list(MODALITIES) and dataset.task == "sentiment"
    for name, split in dataset.splits.items():
        for row, segment_id in enumerate(split.ids):
            truth = truth_of(name, row, segment_id)
            for x, mask, modality in zip(split.xs, split.masks, MODALITIES):
                real = truth[modality]
                assert x.dtype == torch.float32 and mask.dtype == torch.bool
                assert torch.equal(mask[row], torch.arange(mask.shape[1]) < max(1, len(real))), (segment_id, modality)
                np.testing.assert_allclose(x[row, : len(real)].numpy(), real, atol=1e-6)
                assert not x[row, len(real):].any()


def pickle_truth(truth):
    return lambda name, row, _: {m: truth[name][m][row] for m in MODALITIES}


def check_ids_and_labels(dataset, truth):
    for name in SPLITS:
        assert dataset.splits[name].ids == truth[name]["ids"]
        assert torch.equal(dataset.splits[name].labels, torch.from_numpy(truth[name]["labels"]))


@pytest.mark.parametrize("aligned", [True, False], ids=["mosi_data", "mosi_data_noalign"])
def test_mult_pickle(tmp_path, aligned):
    path = tmp_path / ("mosi_data.pkl" if aligned else "mosi_data_noalign.pkl")
    truth = write_mult(path, sample_segments(), aligned=aligned)
    dataset, messages = load_quietly(path)
    assert_matches(dataset, pickle_truth(truth))
    check_ids_and_labels(dataset, truth)
    assert [x.shape[1] for x in dataset.train.xs] == ([50, 50, 50] if aligned else [50, 375, 500])
    assert dataset.dims == [300, 5, 20]
    assert dataset.info["format"] == "mult" and dataset.info["aligned"] is aligned
    assert dataset.info["counts"] == {"train": 12, "valid": 6, "test": 6}
    assert dataset.info["empty"] == {"text": 0, "audio": 0, "vision": 3}  # one vision-less segment per split
    assert len(messages) == 2 and "audio 24 (-inf 24)" in messages[0] and "text" not in messages[0].split(":")[-1]
    assert "modality 'vision': 3 sample(s) have no real step" in messages[1]


def test_mult_pickle_without_ids(tmp_path):
    truth = write_mult(tmp_path / "mosi_data.pkl", sample_segments((3, 2, 2)), with_ids=False)
    dataset, _ = load_quietly(tmp_path / "mosi_data.pkl")
    check_ids_and_labels(dataset, truth)
    assert dataset.valid.ids == ["valid_0", "valid_1"]


@pytest.mark.parametrize("aligned", [True, False], ids=["aligned_50", "unaligned_50"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_mmsa_pickle(tmp_path, aligned, side):
    path = tmp_path / ("aligned_50.pkl" if aligned else "unaligned_50.pkl")
    truth = write_mmsa(path, sample_segments(), aligned=aligned, side=side)
    dataset, messages = load_quietly(path)
    assert_matches(dataset, pickle_truth(truth))  # text mask from text_bert; BERT states at padding zeroed
    check_ids_and_labels(dataset, truth)  # 'video$_$clip' -> 'video_clip'
    assert dataset.dims == [768, 5, 20] and dataset.info["format"] == "mmsa" and dataset.info["aligned"] is aligned
    assert len(messages) == 1 and "audio 24 (-inf 24)" in messages[0]


def test_format_is_told_from_content_and_folders_and_env_work(tmp_path, monkeypatch):
    write_mult(tmp_path / "features.bin", sample_segments((3, 2, 2)))
    assert load_quietly(tmp_path / "features.bin")[0].info["format"] == "mult"
    folder = tmp_path / "mosi"
    folder.mkdir()
    write_mmsa(folder / "unaligned_50.pkl", sample_segments((3, 2, 2)), aligned=False)
    assert load_quietly(folder)[0].info["format"] == "mmsa"  # a folder holding one known pickle
    monkeypatch.setenv("MOSI_PATH", str(folder / "unaligned_50.pkl"))
    dataset, _ = load_quietly(None)
    assert dataset.info["path"] == str(folder / "unaligned_50.pkl")


def small_intervals():
    """Hand-made segments: consecutive ones, a zero-length one and one after a gap; videos of all three folds."""
    return {
        FOLDS["train"][0]: (np.array([[0, 2], [2, 3.5], [3.5, 5], [5, 5], [6, 7]]), np.array([1.0, -2, 0.4, 0.2, 3])),
        FOLDS["train"][1]: (np.array([[1, 2], [2, 4]]), np.array([0.0, -3])),
        FOLDS["valid"][0]: (np.array([[0, 1]]), np.array([2.0])),
        FOLDS["test"][0]: (np.array([[0, 1], [1, 1.5]]), np.array([-1.0, 1.5])),
    }


def sdk_truth(truth):
    def of(name, row, segment_id):
        video, clip = segment_id.rsplit("_", 1)
        return truth[(video, int(clip) - 1)]
    return of


def test_sdk_folder_alignment_and_folds(tmp_path):
    intervals = small_intervals()
    truth = write_sdk_folder(tmp_path / "csd", intervals)
    dataset, messages = load_quietly(tmp_path / "csd", cache_dir=tmp_path / "cache")
    # word level: text = the word vectors, audio = mean of the frames inside each word, vision = the frame or 0
    assert_matches(dataset, sdk_truth(truth))
    assert dataset.dims == [300, 74, 47] and dataset.info["format"] == "sdk"
    train, valid = FOLDS["train"], FOLDS["valid"]
    assert dataset.train.ids == [f"{train[0]}_{k}" for k in range(1, 6)] + [f"{train[1]}_1", f"{train[1]}_2"]
    assert dataset.valid.ids == [f"{valid[0]}_1"] and len(dataset.test) == 2
    assert torch.allclose(dataset.train.labels, torch.tensor([1.0, -2, 0.4, 0.2, 3, 0, -3]))
    assert dataset.train.masks[0].sum(1).tolist() == [3, 3, 3, 1, 3, 3, 3]  # zero-length segment: one zero step
    assert dataset.info["empty"] == {"text": 1, "audio": 1, "vision": 1}
    assert len(messages) == 4 and "audio 4 (-inf 4)" in messages[0]  # the first word of each of 4 videos
    assert all("1 sample(s) have no real step" in message for message in messages[1:])  # per modality


def test_sdk_second_load_uses_the_cache_and_leaves_the_data_folder_alone(tmp_path, monkeypatch):
    folder = tmp_path / "csd"
    write_sdk_folder(folder, small_intervals(), dims=(6, 4, 3))
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    first, _ = load_quietly(folder)  # default cache: $FUSIONBENCH_CACHE
    assert first.info["cache"] == "stored"
    assert first.info["cache_file"].startswith(str(tmp_path / "default-cache" / "mosi"))

    def no_alignment(*args):
        raise AssertionError("aligned again instead of reading the cache")

    monkeypatch.setattr(sdk, "_align", no_alignment)
    second, messages = load_quietly(folder)
    assert second.info["cache"] == "hit" and len(messages) == 4  # the shared post-processing runs again
    for a, b in zip(first.splits.values(), second.splits.values()):
        assert a.ids == b.ids and torch.equal(a.labels, b.labels)
        assert all(torch.equal(x, y) for x, y in zip(a.xs, b.xs)) and all(map(torch.equal, a.masks, b.masks))
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    (folder / SDK_NAMES["audio"]).touch()  # a changed file is a new cache key
    with pytest.raises(AssertionError, match="aligned again"):
        load_quietly(folder)


# ---- the shared real labels (skipped without ../shared/data/mosi) -------------------------------------------

@needs_shared
def test_label_csv_is_the_sdk_labels_less_four_segments():
    """label.csv (2,195 rows) = the 2,199 labelled segments of CMU_MOSI_Opinion_Labels.csd less the four that the
    SDK's alignment drops (one zero-length interval, three segments at video ends); same labels, same folds."""
    table = pd.read_csv(LABEL_CSV)
    segments = {s.id: s for s in real_segments()}
    assert len(segments) == 2199 and len(table) == 2195
    assert sorted(set(segments) - set(table["id"])) == [
        "2WGyTLYerpo_44", "5W7Z1C_fDaE_24", "BioHAh1qJAQ_30", "lXPQBPVc5Cw_30"]
    assert set(table["id"]) <= set(segments)
    np.testing.assert_allclose(table["label"], [segments[i].label for i in table["id"]], atol=1e-6)
    assert (table["mode"].replace({"dev": "valid"}) == [segments[i].split for i in table["id"]]).all()
    assert table["mode"].value_counts().to_dict() == {"train": 1281, "test": 685, "dev": 229}
    counts = pd.Series([s.split for s in segments.values()]).value_counts().to_dict()
    assert counts == {"train": 1284, "valid": 229, "test": 686}
    interval = real_label_intervals()["2WGyTLYerpo"][0][43]
    assert interval[1] - interval[0] < 1e-3  # 2WGyTLYerpo_44: zero length, skipped by mmsdk's align


@needs_shared
def test_complete_mult_pickle_gives_the_standard_split(tmp_path):
    segments = real_segments()
    write_mult(tmp_path / "mosi_data.pkl", segments, dims=(4, 2, 3), steps=(6, 6, 6))
    dataset, _ = load_quietly(tmp_path / "mosi_data.pkl")
    assert dataset.info["counts"] == {"train": 1284, "valid": 229, "test": 686}
    assert dataset.info["standard_split"] is True
    table = pd.read_csv(LABEL_CSV).set_index("id")
    for name, split in dataset.splits.items():
        known = [i for i in split.ids if i in table.index]
        assert (table.loc[known, "mode"].replace({"dev": "valid"}) == name).all()
        labels = dict(zip(split.ids, split.labels.tolist()))
        np.testing.assert_allclose([labels[i] for i in known], table.loc[known, "label"], atol=1e-6)


@needs_shared
def test_complete_sdk_folder_with_the_real_labels_gives_the_standard_split(tmp_path):
    intervals = real_label_intervals()
    write_sdk_folder(tmp_path / "csd", intervals, dims=(4, 3, 2), words_per_segment=1, labels_file=LABELS_CSD)
    dataset, _ = load_quietly(tmp_path / "csd", cache_dir=tmp_path / "cache")
    assert dataset.info["counts"] == {"train": 1284, "valid": 229, "test": 686}
    assert dataset.info["empty"] == {"text": 1, "audio": 1, "vision": 1}  # 2WGyTLYerpo_44
    row = dataset.train.ids.index("2WGyTLYerpo_44")
    assert all(int(m[row].sum()) == 1 and not x[row].any() for x, m in zip(dataset.train.xs, dataset.train.masks))
    table = pd.read_csv(LABEL_CSV).set_index("id")
    labels = {i: v for split in dataset.splits.values() for i, v in zip(split.ids, split.labels.tolist())}
    np.testing.assert_allclose([labels[i] for i in table.index], table["label"], atol=1e-6)


# ---- bad input: one clear line each ------------------------------------------------------------------------

def error_of(path, **options) -> str:
    with pytest.raises(DataError) as caught, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_dataset("mosi", path, **options)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_missing_path_names_the_formats_and_where_mosi_comes_from():
    message = error_of(None)
    for expected in ("MOSI_PATH", "mosi_data.pkl", "aligned_50.pkl", ".csd", "CMU MultiComp", "MulT", "MMSA"):
        assert expected in message


def test_path_that_does_not_exist(tmp_path):
    assert "does not exist" in error_of(tmp_path / "nowhere.pkl")


@pytest.mark.parametrize("content", [b"video,label\nabc,1.0\n", pickle.dumps([1, 2, 3]), pickle.dumps({"a": 1})],
                         ids=["csv", "pickled-list", "pickled-dict"])
def test_a_file_that_is_none_of_the_formats(tmp_path, content):
    (tmp_path / "data.pkl").write_bytes(content)
    message = error_of(tmp_path / "data.pkl")
    assert "MulT pickle" in message and "MMSA pickle" in message


def test_a_single_csd_file_asks_for_its_folder(tmp_path):
    write_sdk_folder(tmp_path / "csd", small_intervals(), dims=(4, 3, 2))
    assert "pass the folder" in error_of(tmp_path / "csd" / SDK_NAMES["text"])


def test_a_folder_with_neither_csd_nor_pickle(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing")
    assert "no .csd files" in error_of(tmp_path)


def edited_pickle(tmp_path, writer, edit):
    path = tmp_path / "edited.pkl"
    writer(path, sample_segments((3, 2, 2)))
    data = pickle.loads(path.read_bytes())
    edit(data)
    path.write_bytes(pickle.dumps(data))
    return path


def test_missing_split_is_named(tmp_path):
    path = edited_pickle(tmp_path, write_mult, lambda d: d.pop("valid"))
    assert "no split 'valid'" in error_of(path)


@pytest.mark.parametrize("writer,key", [(write_mult, "audio"), (write_mmsa, "text_bert"),
                                        (write_mmsa, "regression_labels")])
def test_missing_key_is_named(tmp_path, writer, key):
    path = edited_pickle(tmp_path, writer, lambda d: d["test"].pop(key))
    message = error_of(path)
    assert f"'{key}'" in message and "'test'" in message


def test_missing_csd_file_is_named(tmp_path):
    write_sdk_folder(tmp_path / "csd", small_intervals(), dims=(4, 3, 2))
    (tmp_path / "csd" / SDK_NAMES["audio"]).unlink()
    message = error_of(tmp_path / "csd", cache_dir=tmp_path / "cache")
    assert "audio" in message and "CMU_MOSI_COVAREP.csd" in message and "audio_csd" in message


def test_dims_that_differ_between_splits(tmp_path):
    path = edited_pickle(tmp_path, write_mult, lambda d: d["valid"].update(audio=d["valid"]["audio"][..., :4]))
    message = error_of(path)
    assert "modality 'audio' has 4 features in split 'valid' but 5 in 'train'" in message


@pytest.mark.parametrize("value", [np.nan, np.inf, 3.5, -4.0])
def test_labels_non_finite_or_outside_the_range(tmp_path, value):
    def edit(data):
        data["train"]["labels"][1, 0, 0] = value

    message = error_of(edited_pickle(tmp_path, write_mult, edit))
    assert "'train'" in message and "[-3, 3]" in message


def test_empty_split(tmp_path):
    def edit(data):
        data["test"] = {key: value[:0] for key, value in data["test"].items()}

    assert "split 'test' is empty" in error_of(edited_pickle(tmp_path, write_mult, edit))


def test_unknown_dataset_lists_the_known():
    with pytest.raises(DataError) as caught:
        load_dataset("no-such-dataset")
    assert all(name in str(caught.value) for name in ("mfeat", "mosei", "mosi", "synthetic"))
