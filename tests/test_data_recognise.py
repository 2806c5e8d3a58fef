"""Every distributed affect pickle is told from its content (keys, label values, split sizes, feature widths), a
loader given another dataset's file refuses it in one line that says what the file holds and which --dataset reads
it, and a file whose evidence is ambiguous is read with a warning naming what differs from the documented layout."""

from __future__ import annotations

import logging
import pickle
import warnings
from dataclasses import replace

import numpy as np
import pytest

from benchmarks.cli import run_cli
from benchmarks.data import load_dataset
from benchmarks.data.affect.recognise import (
    LAYOUTS,
    MOSEI_SPLIT,
    Survey,
    candidates,
    choose,
    differences,
    survey,
)
from benchmarks.data.mosei import MOSEI
from benchmarks.data.mosi import MOSI
from benchmarks.data.mustard import MUSTARD
from benchmarks.data.urfunny import URFUNNY
from benchmarks.run import main as run_main
from tests.mosi_fixtures import MOSEI_FOLDS, sample_segments, write_mmsa, write_mult
from tests.test_data_multibench import write_multibench

SIMS_STEPS = {"sims": (400, 55), "sims2": (925, 232)}  # audio, vision steps (CH-SIMS: MMSA's config; v2: MMSA-FET)
SIMS_WIDTHS = {"sims": (33, 709), "sims2": (25, 177)}
CORPORA = {"mosi": MOSI, "mosei": MOSEI, "urfunny": URFUNNY, "mustard": MUSTARD,  # CH-SIMS's by name and title
           "sims": replace(MOSI, name="sims", title="CH-SIMS"),
           "sims2": replace(MOSI, name="sims2", title="CH-SIMS v2")}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    for name in ("URFUNNY_PATH", "MUSTARD_PATH", "MOSI_PATH", "MOSEI_PATH", "SIMS_PATH", "SIMS2_PATH"):
        monkeypatch.delenv(name, raising=False)


def write_sims(path, version="sims"):
    """An MMSA-layout CH-SIMS (``unaligned_39.pkl``) or CH-SIMS v2 (MMSA-FET) file: ``write_mmsa``'s unaligned
    layout (BERT text, ``text_bert``, right padding with ``audio_lengths`` / ``vision_lengths``) with the audio /
    vision widths and steps of ``version``, labels in [-1, 1] (steps of 0.2) and the unimodal labels
    ``regression_labels_T`` / ``_A`` / ``_V``. (The text keeps ``write_mmsa``'s 50 steps: recognition does not read
    steps.)"""
    write_mmsa(path, sample_segments(), aligned=False, side="right", dims=SIMS_WIDTHS[version],
               steps=SIMS_STEPS[version])
    data = pickle.loads(path.read_bytes())
    rng = np.random.default_rng(1)
    for split in data.values():
        n = len(split["regression_labels"])
        split["regression_labels"] = np.round(split["regression_labels"] / 3 * 5) / 5
        for key in ("regression_labels_T", "regression_labels_A", "regression_labels_V"):
            split[key] = np.round(rng.uniform(-1, 1, n) * 5) / 5
    path.write_bytes(pickle.dumps(data))


def write_binary_mosi(path):
    """A MulT MOSI file whose labels a user made 0 / 1 (sentiment >= 0): a binary task, not MOSI's."""
    write_mult(path, sample_segments())
    data = pickle.loads(path.read_bytes())
    for split in data.values():
        split["labels"] = (split["labels"] >= 0).astype(np.float32)
    path.write_bytes(pickle.dumps(data))


WRITERS = {  # name: (writer, the layout it is read as, the datasets the evidence leaves)
    "mosi_data": (lambda p: write_mult(p, sample_segments()), "mult-mosi", {"mosi"}),
    "mosi_data_noalign": (lambda p: write_mult(p, sample_segments(), aligned=False), "mult-mosi", {"mosi"}),
    # MOSEI's widths are also MultiBench MOSI's; a small file's split sizes are neither's: its ids tell
    "mosei_senti_data_noalign": (lambda p: write_mult(p, sample_segments(folds=MOSEI_FOLDS), aligned=False,
                                                      dims=(300, 74, 35), steps=(50, 500, 500)),
                                 "mult-mosei", {"mosei"}),
    "mosi_aligned_50": (lambda p: write_mmsa(p, sample_segments()), "mmsa-mosi", {"mosi"}),
    "mosei_unaligned_50": (lambda p: write_mmsa(p, sample_segments(folds=MOSEI_FOLDS), aligned=False, dims=(74, 35),
                                                steps=(500, 375)), "mmsa-mosei", {"mosei"}),
    "sims_unaligned_39": (write_sims, "mmsa-sims", {"sims"}),
    "sims2": (lambda p: write_sims(p, "sims2"), "mmsa-sims2", {"sims2"}),
    "humor": (lambda p: write_multibench(p, "humor"), "multibench-humor", {"urfunny"}),
    "sarcasm": (lambda p: write_multibench(p, "sarcasm"), "multibench-sarcasm", {"mustard"}),
    "mosi_raw": (lambda p: write_multibench(p, "mosi"), "multibench-mosi", {"mosi"}),
    "mosei_raw": (lambda p: write_multibench(p, "mosei"), "multibench-mosei", {"mosei"}),
    "binary_mosi": (write_binary_mosi, "multibench-humor", {"urfunny", "mustard"}),  # 0 / 1: humor or recoded
}
LAYOUT = {layout.key: layout for layout in LAYOUTS}


def surveyed(tmp_path, name):
    path = tmp_path / f"{name}.pkl"
    WRITERS[name][0](path)
    return path, survey(pickle.loads(path.read_bytes()))


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_each_layout_is_recognised_from_its_content(tmp_path, name):
    _, found = surveyed(tmp_path, name)
    _, key, datasets = WRITERS[name]
    assert {layout.dataset for layout in candidates(found)} == datasets
    layout = LAYOUT[key]
    assert choose(found, CORPORA[layout.dataset], "file") == layout


def test_split_sizes_tell_mosei_from_multibench_mosi_where_widths_cannot():
    found = Survey(family="mult", keys=("text", "audio", "vision", "labels", "id"), unimodal=False,
                   widths=(300, 74, 35), counts=MOSEI_SPLIT, coding=None, low=-3.0, high=3.0, whole=False)
    assert [layout.key for layout in candidates(found)] == ["mult-mosei"]
    assert [layout.key for layout in candidates(replace(found, counts=(1283, 214, 686)))] == ["multibench-mosi"]


def test_a_dataset_without_a_documented_layout_reads_any_file_of_its_format(tmp_path):
    _, found = surveyed(tmp_path, "humor")
    assert choose(found, replace(MOSI, name="my-corpus"), "file") is None


def test_ch_sims_and_v2_read_each_others_file_with_a_warning_naming_the_other(tmp_path):
    _, found = surveyed(tmp_path, "sims2")
    assert choose(found, CORPORA["sims"], "file") == LAYOUT["mmsa-sims"]  # they share the task
    padding = {m: {"left": 0, "right": 12} for m in ("text", "audio", "vision")}
    assert differences(LAYOUT["mmsa-sims"], found, padding) == (
        "differs from an MMSA CH-SIMS pickle (unaligned_39.pkl): feature widths audio 25, vision 177 where it "
        "documents audio 33, vision 709 (the widths of a CH-SIMS v2 pickle (MMSA-FET layout), which --dataset sims2 "
        "reads)")


REFUSED = {  # case: (file, --dataset, what the file is said to hold, the --dataset named)
    "humor-as-mosi": ("humor", "mosi", "holds MultiBench's UR-FUNNY pickle (humor.pkl)", "urfunny"),
    "mmsa-mosi-as-mosei": ("mosi_aligned_50", "mosei", "holds an MMSA MOSI pickle (aligned_50.pkl, unaligned_50.pkl)",
                           "mosi"),
    "ch-sims-as-mosi": ("sims_unaligned_39", "mosi", "holds an MMSA CH-SIMS pickle (unaligned_39.pkl)", "sims"),
    "ch-sims2-as-mosei": ("sims2", "mosei", "holds a CH-SIMS v2 pickle (MMSA-FET layout)", "sims2"),
    "humor-as-mustard": ("humor", "mustard", "holds MultiBench's UR-FUNNY pickle (humor.pkl)", "urfunny"),
    "sarcasm-as-urfunny": ("sarcasm", "urfunny", "holds MultiBench's MUStARD pickle (sarcasm.pkl)", "mustard"),
    "mult-mosi-as-urfunny": ("mosi_data", "urfunny", "holds a MulT MOSI pickle (mosi_data.pkl, mosi_data_noalign.pkl)",
                             "mosi"),
    "mosei-raw-as-mosi": ("mosei_raw", "mosi", "holds MultiBench's MOSEI pickle (mosei_raw.pkl)", "mosei"),
    "binary-labels-as-mosi": ("binary_mosi", "mosi", "holds another dataset's data", "urfunny or --dataset mustard"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_another_datasets_file_is_refused_in_one_line(tmp_path, capsys, case):
    name, dataset, held, reader = REFUSED[case]
    path, found = surveyed(tmp_path, name)
    title = CORPORA[dataset].title
    status = run_cli(run_main, ["--fusions", "concat", "--dataset", dataset, "--data-path", str(path), "--seeds", "1",
                                "--epochs", "1", "--device", "cpu", "--quiet", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    assert err[0] == (f"error: {title} file {path} {held}, not {title} data ({found.describe()}); read it with "
                      f"--dataset {reader}")


def test_the_refusal_says_what_was_found():
    found = Survey(family="mult", keys=("text", "audio", "vision", "labels", "id"), unimodal=False,
                   widths=(300, 81, 371), counts=(6, 3, 3), coding="0/1", low=0.0, high=1.0, whole=True)
    assert found.describe() == ("keys text, audio, vision, labels, id; widths text 300, audio 81, vision 371; "
                                "labels 0/1; splits 6/3/3")
    assert "labels in [-2.8, 3]" in replace(found, coding=None, low=-2.8, high=3.0, whole=False).describe()
    assert "labels -1/+1" in replace(found, coding="-1/+1").describe()


def load_logged(dataset, path, caplog):
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING):
        warnings.simplefilter("ignore")
        data = load_dataset(dataset, path)
    return data, [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_mosi_file_with_other_widths_is_read_with_a_warning_naming_them(tmp_path, caplog):
    path = tmp_path / "features.pkl"
    write_mult(path, sample_segments((6, 3, 3)), dims=(4, 2, 3), steps=(6, 6, 6))
    dataset, logged = load_logged("mosi", path, caplog)
    assert dataset.dims == [4, 2, 3] and dataset.info["layout"] == "mult-mosi" and dataset.task == "sentiment"
    assert [m for m in logged if "differs from" in m] == [
        f"MOSI file {path} (MulT pickle) differs from a MulT MOSI pickle (mosi_data.pkl, mosi_data_noalign.pkl): "
        f"feature widths text 4, audio 2, vision 3 where it documents text 300, audio 5, vision 20; read as it is"]


def test_a_right_padded_mult_file_is_read_with_a_warning_naming_the_side(tmp_path, caplog):
    path = tmp_path / "mosi_data.pkl"
    write_mult(path, sample_segments((6, 3, 3)), side="right")
    dataset, logged = load_logged("mosi", path, caplog)
    sides = dataset.info["padding"]
    assert all(counts["left"] == 0 for counts in sides.values())
    assert [m for m in logged if "differs from" in m] == [
        f"MOSI file {path} (MulT pickle) differs from a MulT MOSI pickle (mosi_data.pkl, mosi_data_noalign.pkl): "
        f"padded on the right (" + ", ".join(f"{m} {c['right']} samples" for m, c in sides.items())
        + ") where it pads on the left; read as it is"]


@pytest.mark.parametrize("dataset,layout", [("mosei", "mult-mosei")])
def test_moseis_widths_in_a_small_file_are_read_as_mosei_by_its_ids(tmp_path, caplog, dataset, layout):
    """300 / 74 / 35 are MulT MOSEI's widths and MultiBench MOSI's: without their split sizes, the ids tell (the
    other loader's refusal: test_data_review.py)."""
    path, _ = surveyed(tmp_path, "mosei_senti_data_noalign")
    data, logged = load_logged(dataset, path, caplog)
    assert data.name == dataset and data.info["layout"] == layout and data.dims == [300, 74, 35]
    assert not [m for m in logged if "differs from" in m]
