"""A new user's review of the affect-corpus readers (issue 15): each fault found, as a kind, on files written in the
distributed layouts. The cache keys see a file replaced with the same size and modification time; MOSI's and
MOSEI's files with the same keys and widths are told apart by their ids (or refused naming both readings); a
MUStARD file with its labels recoded to 0 / 1 is MUStARD's; a modality with empty samples warns, as an extra split
does; a path from an environment variable says so in every message; the emotions refusal names the format read."""

from __future__ import annotations

import logging
import os
import pickle
import warnings

import h5py
import numpy as np
import pytest
import torch

from benchmarks.cli import run_cli
from benchmarks.data import DataError, load_dataset
from benchmarks.data.affect.recognise import survey
from benchmarks.run import main as run_main
from tests.mosi_fixtures import MOSEI_FOLDS, sample_segments, write_mmsa, write_mult
from tests.test_data_mosei_sdk import NUMERIC, ROOTS, TEST
from tests.test_data_mosei_sdk import write_folder as write_mosei_folder
from tests.test_data_multibench import write_multibench
from tests.test_data_sims import write_sims

ENVIRONMENT = {"mosi": "MOSI_PATH", "mosei": "MOSEI_PATH", "sims": "SIMS_PATH", "sims2": "SIMS2_PATH",
               "urfunny": "URFUNNY_PATH", "mustard": "MUSTARD_PATH"}
TITLE = {"mosi": "MOSI", "mosei": "MOSEI", "sims": "CH-SIMS", "sims2": "CH-SIMS v2", "urfunny": "UR-FUNNY",
         "mustard": "MUStARD"}
MUSTARD_IDS = ["1_60", "1_70", "1_80", "2_380", "2_386", "2_169", "1_105", "2_34"]  # sarcasm_data.json's keys


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    for name in ENVIRONMENT.values():
        monkeypatch.delenv(name, raising=False)


def load(dataset, path, caplog, **options):
    """The dataset, the warnings raised and the log warnings."""
    caplog.clear()
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        data = load_dataset(dataset, path, **options)
    return data, [str(w.message) for w in caught], [r.getMessage() for r in caplog.records
                                                    if r.levelno >= logging.WARNING]


def refusal(dataset, path, tmp_path, capsys) -> str:
    """The one error line of ``run`` given ``path`` as ``--dataset`` (status 2)."""
    status = run_cli(run_main, ["--fusions", "concat", "--dataset", dataset, "--data-path", str(path), "--seeds", "1",
                                "--epochs", "1", "--device", "cpu", "--quiet", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    return err[0]


def edit(path, change) -> None:
    data = pickle.loads(path.read_bytes())
    change(data)
    path.write_bytes(pickle.dumps(data))


# 1. the caches' keys ----------------------------------------------------------------------------------------------

def _replace_keeping_size_and_mtime(path, how) -> None:
    """Other labels in a file of the same size and modification time: rewritten in place (``cp -p`` onto it, an
    edit with ``os.utime``) or written beside it and renamed over it (``rsync -a``, an unpacked archive)."""
    before = path.stat()
    data = pickle.loads(path.read_bytes())
    for split in data.values():
        split["labels"] = -split["labels"]
    if how == "in place":
        path.write_bytes(pickle.dumps(data))
    else:
        other = path.with_name("incoming.pkl")
        other.write_bytes(pickle.dumps(data))
        os.replace(other, path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


@pytest.mark.parametrize("how", ["in place", "renamed over"])
def test_the_pickle_cache_sees_a_replacement_of_the_same_size_and_mtime(tmp_path, caplog, how):
    path = tmp_path / "mosi_data.pkl"
    write_mult(path, sample_segments((6, 3, 3)))
    first, _, _ = load("mosi", path, caplog)
    assert first.info["cache"] == "stored"
    _replace_keeping_size_and_mtime(path, how)
    second, _, _ = load("mosi", path, caplog)
    assert second.info["cache"] == "stored"  # read again, not served from the entry of the old file
    assert torch.equal(second.train.labels, -first.train.labels)


def test_the_csd_alignment_cache_sees_an_edit_with_the_mtime_restored(tmp_path, caplog):
    folder = tmp_path / "CMU_MOSEI"
    write_mosei_folder(folder, dims=(6, 4, 3))
    first, _, _ = load("mosei", folder, caplog, cache_dir=tmp_path / "cache")
    assert first.info["cache"] == "stored"
    labels = folder / "CMU_MOSEI_Labels.csd"
    before = labels.stat()
    with h5py.File(labels, "r+") as handle:  # the test video's first sentiment score, edited where it lies
        handle[f"{ROOTS['labels']}/data/{TEST}/features"][0, 0] = 2.5
    os.utime(labels, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (labels.stat().st_size, labels.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    second, _, _ = load("mosei", folder, caplog, cache_dir=tmp_path / "cache")
    assert second.info["cache"] == "stored"
    assert second.test.labels[0].item() == 2.5 and first.test.labels[0].item() != 2.5


# 2. MOSI's and MOSEI's files told apart by their ids ---------------------------------------------------------------

def write_mosei_mult(path, with_ids=True):
    """A small MulT MOSEI file: widths 300 / 74 / 35 (MultiBench MOSI's too), split sizes neither's, ids of MOSEI's
    standard-fold videos."""
    write_mult(path, sample_segments((6, 3, 3), folds=MOSEI_FOLDS), dims=(300, 74, 35), with_ids=with_ids)


def test_a_mult_mosei_file_is_mosei_by_its_ids(tmp_path, caplog, capsys):
    path = tmp_path / "mosei_senti_data.pkl"
    write_mosei_mult(path)
    assert refusal("mosi", path, tmp_path, capsys) == (
        f"error: MOSI file {path} holds a MulT MOSEI pickle (mosei_senti_data.pkl, mosei_senti_data_noalign.pkl), "
        f"not MOSI data ({survey(pickle.loads(path.read_bytes())).describe()}); read it with --dataset mosei")
    data, _, _ = load("mosei", path, caplog)
    assert data.info["format"] == "mult" and data.info["layout"] == "mult-mosei"


def test_multibench_mosi_raw_is_mosi_by_its_ids(tmp_path, caplog, capsys):
    path = tmp_path / "mosi_raw.pkl"
    truth = write_multibench(path, "mosi")
    line = refusal("mosei", path, tmp_path, capsys)
    assert line.startswith(f"error: MOSEI file {path} holds MultiBench's MOSI pickle (mosi_raw.pkl), not MOSEI data")
    assert line.endswith("read it with --dataset mosi")
    data, _, _ = load("mosi", path, caplog)
    assert data.info["layout"] == "multibench-mosi" and data.train.ids == truth["train"]["ids"]
    assert data.info["dropped"] == {"train": 1, "valid": 0, "test": 1}  # read as MultiBench reads it


@pytest.mark.parametrize("dataset", ["mosi", "mosei"])
def test_without_ids_the_file_is_refused_naming_both_readings(tmp_path, capsys, dataset):
    path = tmp_path / "features.pkl"
    write_mosei_mult(path, with_ids=False)
    line = refusal(dataset, path, tmp_path, capsys)
    title = TITLE[dataset]
    readings = ["MultiBench's MOSI pickle (mosi_raw.pkl), which --dataset mosi reads",
                "a MulT MOSEI pickle (mosei_senti_data.pkl, mosei_senti_data_noalign.pkl), which --dataset mosei reads"]
    found = survey(pickle.loads(path.read_bytes()))
    assert line == (
        f"error: {title} file {path} could be read as {', or as '.join(readings[::1 if dataset == 'mosi' else -1])}"
        f": its keys, labels and feature widths fit each and it holds no ids ({found.describe()}); expected ids (key "
        f"'id', the segment's first) that tell them apart: " + " or ".join(
            f"{corpus}'s segment names (videos of mmdatasdk.cmu_{corpus.lower()}.standard_folds)"
            for corpus in (["MOSI", "MOSEI"] if dataset == "mosi" else ["MOSEI", "MOSI"])))


# 3. a MUStARD file whose labels were recoded to 0 / 1 ---------------------------------------------------------------

@pytest.mark.parametrize("ids", ["fixture", "mustard"])
def test_a_sarcasm_file_recoded_to_0_1_is_mustards(tmp_path, caplog, capsys, ids):
    path = tmp_path / "sarcasm.pkl"
    truth = write_multibench(path, "sarcasm", per_split=(8, 4, 4))

    def recode(data):
        for name, split in data.items():
            split["labels"] = (split["labels"] > 0).astype(np.float64)
            if ids == "mustard":  # MUStARD's own ids ('1_60': sarcasm_data.json's keys)
                split["id"] = np.array(MUSTARD_IDS[: len(split["labels"])])
                truth[name]["ids"] = [MUSTARD_IDS[row] for row, _ in enumerate(split["labels"])
                                      if row not in {"train": [1], "valid": [], "test": [0]}[name]]

    edit(path, recode)
    data, _, _ = load("mustard", path, caplog)
    assert data.info["layout"] == "multibench-sarcasm" and data.train.ids == truth["train"]["ids"]
    for name, split in data.splits.items():
        assert torch.equal(split.labels, torch.as_tensor(truth[name]["labels"]))
    assert data.info["labels"].startswith("stored 0 / 1 (already recoded")
    line = refusal("urfunny", path, tmp_path, capsys)
    assert "holds MultiBench's MUStARD pickle (sarcasm.pkl)" in line and line.endswith("read it with --dataset mustard")


def test_humor_with_its_numeric_ids_stays_ur_funnys(tmp_path, caplog, capsys):
    path = tmp_path / "humor.pkl"
    write_multibench(path, "humor")
    assert load("urfunny", path, caplog)[0].info["layout"] == "multibench-humor"
    assert refusal("mustard", path, tmp_path, capsys).endswith("read it with --dataset urfunny")


# 4. a modality with samples that have no real step ------------------------------------------------------------------

def test_pickle_samples_without_a_real_step_warn_once_per_modality(tmp_path, caplog):
    path = tmp_path / "mosi_data.pkl"
    truth = write_mult(path, sample_segments((6, 3, 3)))  # the first segment of every split has no vision
    data, messages, _ = load("mosi", path, caplog)
    assert data.info["empty"] == {"text": 0, "audio": 0, "vision": 3}
    first = truth["train"]["ids"][0]
    assert [m for m in messages if "no real step" in m] == [
        f"MOSI file {path} (MulT pickle): modality 'vision': 3 sample(s) have no real step (first: {first!r} of split "
        f"'train'); each keeps one zero step marked real"]
    again, repeated, _ = load("mosi", path, caplog)
    assert again.info["cache"] == "hit" and repeated == messages  # a cached load warns as the first did


def test_csd_segments_without_a_real_step_warn_too(tmp_path, caplog):
    folder = tmp_path / "CMU_MOSEI"
    write_mosei_folder(folder, dims=(6, 4, 3), missing={"vision": [NUMERIC]})  # one segment, no FACET frame
    data, messages, _ = load("mosei", folder, caplog, cache_dir=tmp_path / "cache")
    assert data.info["empty"]["vision"] == 1
    assert [m for m in messages if "no real step" in m] == [
        f"MOSEI .csd folder {folder}: modality 'vision': 1 sample(s) have no real step (first: '{NUMERIC}_1' of "
        f"split 'train'); each keeps one zero step marked real"]


# 5. keys besides the three splits -----------------------------------------------------------------------------------

@pytest.mark.parametrize("extra", ["extra", "dev"])
def test_a_split_besides_train_valid_test_is_named_in_one_warning(tmp_path, caplog, extra):
    path = tmp_path / "mosi_data.pkl"
    write_mult(path, sample_segments((6, 3, 3)))
    edit(path, lambda data: data.update({extra: data["valid"]}))
    data, _, logs = load("mosi", path, caplog)
    assert data.info["counts"] == {"train": 6, "valid": 3, "test": 3}
    assert [m for m in logs if "besides the splits" in m] == [
        f"MOSI file {path} (MulT pickle): the key {extra!r} besides the splits train, valid, test is not read"]


def test_a_dev_split_without_valid_stays_an_error_that_names_it(tmp_path):
    path = tmp_path / "mosi_data.pkl"
    write_mult(path, sample_segments((6, 3, 3)))
    edit(path, lambda data: data.update(dev=data.pop("valid")))
    with pytest.raises(DataError) as caught:
        load_dataset("mosi", path)
    assert str(caught.value) == (f"MOSI file {path} (MulT pickle): no split 'valid' (it also holds 'dev'); expected a "
                                 f"dict with the splits train, valid, test")


def test_mmsa_fets_config_is_not_an_extra_split(tmp_path, caplog):
    path = tmp_path / "ch-simsv2s.pkl"
    write_sims(path, "sims2")  # MMSA-FET writes its settings beside the splits, as 'config'
    assert "config" in pickle.loads(path.read_bytes())
    assert not [m for m in load("sims2", path, caplog)[2] if "besides the splits" in m]


# 6. a path from the environment -------------------------------------------------------------------------------------

WRITERS = {
    "mosi": lambda p: write_mult(p, sample_segments((6, 3, 3))),
    "mosei": lambda p: write_mmsa(p, sample_segments((6, 3, 3), folds=MOSEI_FOLDS), aligned=False, dims=(74, 35),
                                  steps=(500, 375)),
    "sims": lambda p: write_sims(p, "sims"), "sims2": lambda p: write_sims(p, "sims2"),
    "urfunny": lambda p: write_multibench(p, "humor"), "mustard": lambda p: write_multibench(p, "sarcasm"),
}
OTHER = {"mosi": "urfunny", "mosei": "urfunny", "sims": "mosi", "sims2": "mosi", "urfunny": "mosi",
         "mustard": "mosi"}


@pytest.mark.parametrize("dataset", sorted(ENVIRONMENT))
def test_messages_about_a_path_from_the_environment_say_so(tmp_path, caplog, monkeypatch, dataset):
    env, title = ENVIRONMENT[dataset], TITLE[dataset]
    origin = f"(from ${env})"
    missing = tmp_path / "nowhere.pkl"
    monkeypatch.setenv(env, str(missing))
    with pytest.raises(DataError, match=rf"^{title} path {missing} \(from \${env}\) does not exist"):
        load_dataset(dataset)

    monkeypatch.setenv(env, str(tmp_path))  # a folder without the dataset's pickles
    with pytest.raises(DataError, match=rf"^{title} folder {tmp_path} \(from \${env}\) holds "):
        load_dataset(dataset)

    other = tmp_path / "other.pkl"
    WRITERS[OTHER[dataset]](other)
    monkeypatch.setenv(env, str(other))
    with pytest.raises(DataError, match=rf"^{title} file {other} \(from \${env}\) holds "):
        load_dataset(dataset)

    own = tmp_path / "own" / "data.pkl"
    own.parent.mkdir()
    WRITERS[dataset](own)
    by_argument, warned, logged = load(dataset, own, caplog)  # stored in the cache with the plain path
    named = [m for m in warned + logged if str(own) in m]
    assert named and not any(origin in m for m in named)
    monkeypatch.setenv(env, str(own))
    by_environment, warned, logged = load(dataset, None, caplog)  # replayed from the cache
    assert by_environment.info["cache"] == "hit"
    named = [m for m in warned + logged if str(own) in m]
    assert len(named) == len([m for m in named if f"{own} {origin}" in m]) > 0


def test_a_csd_folder_from_the_environment_says_so(tmp_path, monkeypatch):
    folder = tmp_path / "CMU_MOSEI"
    write_mosei_folder(folder, dims=(6, 4, 3))
    (folder / "CMU_MOSEI_COVAREP.csd").unlink()
    monkeypatch.setenv("MOSEI_PATH", str(folder))
    with pytest.raises(DataError, match=rf"^MOSEI .csd folder {folder} \(from \$MOSEI_PATH\) lacks the audio "):
        load_dataset("mosei")


# 7. emotions asked of a pickle --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["multibench", "mmsa"])
def test_emotions_of_a_pickle_name_the_format_read(tmp_path, kind):
    path = tmp_path / "data.pkl"
    if kind == "multibench":
        write_multibench(path, "mosei")
        held = "MultiBench's MOSEI pickle (mosei_raw.pkl)"
    else:
        write_mmsa(path, sample_segments((6, 3, 3), folds=MOSEI_FOLDS), dims=(74, 35))
        held = "an MMSA MOSEI pickle (aligned_50.pkl, unaligned_50.pkl)"
    with pytest.raises(DataError) as caught, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the file's -inf replaced: read before it is refused
        load_dataset("mosei", path, labels="emotions")
    assert str(caught.value).startswith(f"MOSEI file {path} is {held}, which holds the sentiment score only, no "
                                        f"emotion labels: labels='emotions' needs the folder of CMU-MultimodalSDK "
                                        f".csd files")


def test_a_label_array_of_another_shape_is_not_called_sentiment_in_a_humor_file(tmp_path):
    path = tmp_path / "humor.pkl"
    write_multibench(path, "humor")
    edit(path, lambda data: data["train"].update(labels=np.repeat(data["train"]["labels"], 2, axis=1)))
    with pytest.raises(DataError) as caught:
        load_dataset("urfunny", path)
    assert str(caught.value) == (f"UR-FUNNY file {path} (MultiBench pickle), split 'train': 'labels' has shape [6, 2] "
                                 f"(float64); expected one number per segment ([N], [N, 1] or [N, 1, 1])")
