"""The cache of datasets prepared from pickles (``affect.cache``) and the memory a load takes (issue 15, "Memory and
speed on real sizes"), on MOSEI files written in MulT's and MMSA's layouts."""

from __future__ import annotations

import logging
import os
import pickle
import tracemalloc
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

from benchmarks.data import load_dataset
from benchmarks.data.affect import cache, prepare
from benchmarks.data.mosei import MOSEI
from tests.mosi_fixtures import MOSEI_FOLDS, sample_segments, write_mmsa, write_mult
from tests.test_data_mosi import assert_matches, check_ids_and_labels, pickle_truth
from tests.test_data_sims import write_sims

FILES = {"mult": ("mosei", "mosei_senti_data_noalign.pkl"), "mmsa": ("mosei", "unaligned_50.pkl"),
         "sims2": ("sims2", "sims2.pkl")}  # layout: the dataset that reads it, a file name


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No test reads the user's MOSEI_PATH or writes to the user's cache."""
    monkeypatch.delenv("MOSEI_PATH", raising=False)
    monkeypatch.setenv("FUSIONBENCH_CACHE", str(tmp_path / "cache"))


def write_file(path, layout, per_split=(6, 3, 3), seed=0):
    """A pickle in ``layout`` (``FILES``): MOSEI's MulT noalign or MMSA unaligned file (float32, ``-inf`` in audio),
    CH-SIMS v2's MMSA-FET file (float64, unimodal labels); the truth its loader must give."""
    if layout == "sims2":
        return write_sims(path, "sims2", per_split, seed)
    segments = sample_segments(per_split, folds=MOSEI_FOLDS)
    if layout == "mult":
        return write_mult(path, segments, aligned=False, dims=(300, 74, 35), steps=(50, 500, 500), seed=seed)
    return write_mmsa(path, segments, aligned=False, dims=(74, 35), steps=(500, 375), seed=seed)


def load(path, caplog, dataset="mosei"):
    """The dataset, the messages of the warnings raised and those of the log warnings."""
    caplog.clear()
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        dataset = load_dataset(dataset, path)
    logs = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    return dataset, [str(w.message) for w in caught], logs


def assert_same(first, second):
    """Equal tensors, ids, extras and facts (the cache fields aside)."""
    assert (first.name, first.task, first.num_classes, first.modality_names) == (
        second.name, second.task, second.num_classes, second.modality_names)
    for name, split in first.splits.items():
        other = second.splits[name]
        assert split.ids == other.ids and torch.equal(split.labels, other.labels)
        for a, b, m, n in zip(split.xs, other.xs, split.masks, other.masks):
            assert a.dtype == b.dtype and torch.equal(a, b) and torch.equal(m, n)
        assert split.extras.keys() == other.extras.keys()
        assert all(torch.equal(split.extras[k], other.extras[k]) for k in split.extras)
    drop = ("cache", "cache_file")
    assert {k: v for k, v in first.info.items() if k not in drop} == {
        k: v for k, v in second.info.items() if k not in drop}


@pytest.mark.parametrize("layout", list(FILES))
def test_a_second_load_reads_the_cache_and_gives_the_same_dataset_and_warnings(tmp_path, caplog, monkeypatch,
                                                                               layout):
    dataset, name = FILES[layout]
    path = tmp_path / name
    truth = write_file(path, layout)
    first, first_warnings, first_logs = load(path, caplog, dataset)
    assert first.info["cache"] == "stored"
    entry = tmp_path / "cache" / "pickles"
    assert first.info["cache_file"].startswith(str(entry)) and os.path.isfile(first.info["cache_file"])
    assert any("split sizes 6/3/3 differ" in message for message in first_logs)
    if layout != "sims2":
        assert len(first_warnings) == (2 if layout == "mult" else 1)  # MulT's: and the samples without vision
        assert "audio 12 (-inf 12)" in first_warnings[0]

    def unread(*_):
        raise AssertionError("a cached load read the pickle")

    monkeypatch.setattr("benchmarks.data.affect.find.read_pickle", unread)
    second, second_warnings, second_logs = load(path, caplog, dataset)
    assert second.info["cache"] == "hit" and second.info["cache_file"] == first.info["cache_file"]
    assert_same(first, second)  # the first load's own values: test_data_mosei.py, test_data_sims.py
    if layout != "sims2":
        assert_matches(second, pickle_truth(truth))
    check_ids_and_labels(second, truth)
    for split_name, split in second.splits.items():
        assert split.extras.keys() == truth[split_name].get("extras", {}).keys()
        for extra, values in truth[split_name].get("extras", {}).items():
            np.testing.assert_array_equal(split.extras[extra].numpy(), values)
    assert second_warnings == first_warnings and second_logs == first_logs  # the same warnings, every load


def test_a_changed_file_corpus_or_reader_is_read_again(tmp_path, caplog, monkeypatch):
    path = tmp_path / "mosei_senti_data_noalign.pkl"
    write_file(path, "mult")
    load(path, caplog)
    before = path.stat()
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))  # touched: same bytes, new mtime
    touched, _, _ = load(path, caplog)
    assert touched.info["cache"] == "stored"
    assert load(path, caplog)[0].info["cache"] == "hit"

    truth = write_file(path, "mult", per_split=(7, 3, 3), seed=1)  # other contents, then the old mtime again
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    assert path.stat().st_size != before.st_size
    rewritten, _, logs = load(path, caplog)
    assert rewritten.info["cache"] == "stored" and rewritten.info["counts"]["train"] == 7
    assert_matches(rewritten, pickle_truth(truth))
    assert not any("unusable" in message for message in logs)  # stale, not corrupt: no warning

    monkeypatch.setattr("benchmarks.data.mosei.MOSEI", replace(MOSEI, standard={"train": 7, "valid": 3, "test": 3}))
    corpus_changed, _, logs = load(path, caplog)  # another corpus: its own checks and warnings, not the cached ones
    assert corpus_changed.info["cache"] == "stored" and corpus_changed.info["standard_split"]
    assert not any("split sizes" in message for message in logs)

    monkeypatch.setattr(cache, "_code_digest", lambda: "an edited reader")
    assert load(path, caplog)[0].info["cache"] == "stored"
    assert load(path, caplog)[0].info["cache"] == "hit"


def _flip_a_byte(entry):
    array = entry / "train.xs.1.npy"  # audio
    data = bytearray(array.read_bytes())
    data[len(data) // 2] ^= 0x40
    array.write_bytes(bytes(data))


def _truncate(entry):
    array = entry / "test.xs.0.npy"
    array.write_bytes(array.read_bytes()[:200])


def _garble_meta(entry):
    (entry / "meta.json").write_text('{"key": ')


def _lose_an_array(entry):
    (entry / "valid.masks.2.npy").unlink()


@pytest.mark.parametrize("damage", [_flip_a_byte, _truncate, _garble_meta, _lose_an_array],
                         ids=["flipped-byte", "truncated-array", "garbled-meta", "missing-array"])
def test_a_damaged_cache_is_rebuilt_with_one_warning(tmp_path, caplog, damage):
    path = tmp_path / "mosei_senti_data_noalign.pkl"
    truth = write_file(path, "mult")
    first, first_warnings, _ = load(path, caplog)
    entry = tmp_path / "cache" / "pickles" / os.path.basename(os.path.dirname(first.info["cache_file"]))
    damage(entry)
    rebuilt, rebuilt_warnings, logs = load(path, caplog)
    unusable = [message for message in logs if "unusable" in message]
    assert len(unusable) == 1 and unusable[0].startswith(f"the cache {entry} of {path} is unusable (")
    assert rebuilt.info["cache"] == "stored" and rebuilt_warnings == first_warnings
    assert_matches(rebuilt, pickle_truth(truth))
    again, _, logs = load(path, caplog)
    assert again.info["cache"] == "hit" and not any("unusable" in message for message in logs)
    assert_same(first, again)


def test_an_unwritable_cache_loads_with_one_warning(tmp_path, caplog, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("FUSIONBENCH_CACHE", str(blocker / "cache"))
    path = tmp_path / "mosei_senti_data_noalign.pkl"
    truth = write_file(path, "mult")
    for _ in range(2):
        dataset, _, logs = load(path, caplog)
        assert dataset.info["cache"] == "not stored"
        assert_matches(dataset, pickle_truth(truth))
        unwritten = [message for message in logs if "could not write the cache" in message]
        assert len(unwritten) == 1 and unwritten[0].endswith("; the next load reads the file again")


def test_loading_a_large_file_peaks_under_one_and_a_half_times_its_arrays(tmp_path):
    """Traced allocations (numpy's included) while loading a MOSEI-shaped MulT noalign pickle of 400 segments
    (111 MB of float32 features), first from the pickle, then from the cache."""
    path = tmp_path / "mosei_senti_data_noalign.pkl"
    write_file(path, "mult", per_split=(286, 33, 81))
    with open(path, "rb") as handle:
        arrays = sum(a.nbytes for split in pickle.load(handle).values() for a in split.values())
    peaks = []
    for _ in range(2):
        tracemalloc.start()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                dataset = load_dataset("mosei", path)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        del dataset
    assert peaks[0] <= 1.5 * arrays, f"first load: peak {peaks[0] / arrays:.2f}x the arrays' {arrays / 1e6:.0f} MB"
    assert peaks[1] <= cache.READ_CHUNK + 0.02 * arrays, f"cached load: peak {peaks[1] / 1e6:.1f} MB"  # no copy


def test_dropped_samples_leave_the_kept_ones_in_the_same_memory(monkeypatch):
    """MultiBench's files drop the samples without text (``multibench.drop_textless``): the kept samples move to the
    front of the array read, in chunks (here of 2 samples), instead of a second copy of the array."""
    monkeypatch.setattr(prepare, "CHUNK_VALUES", 24)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(37, 3, 4)).astype(np.float32)
    keep = rng.random(37) < 0.6
    keep[[0, 5, 6]] = False
    expected = x[keep]
    kept = prepare.keep_rows(x, keep)
    assert np.shares_memory(kept, x) and np.array_equal(kept, expected)
    frozen = expected.copy()
    frozen.flags.writeable = False  # an array its reader does not own: copied, left as it is
    assert np.array_equal(prepare.keep_rows(frozen, keep[keep]), expected) and np.array_equal(frozen, expected)
