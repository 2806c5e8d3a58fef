"""MOSI data that used to be read wrongly without a word (issue 12): the padding side of pickles, a video missing
from one ``.csd`` file, extreme finite feature values, and the wrong-shape errors of the pickle readers as the CLI
shows them."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch

from benchmarks.cli import run_cli
from benchmarks.data import DataError, load_dataset
from benchmarks.data.affect.prepare import EXTREME_MAGNITUDE
from benchmarks.run import main as run_main
from tests.mosi_fixtures import (
    FOLDS,
    MODALITIES,
    SPLITS,
    sample_segments,
    write_mmsa,
    write_mult,
    write_sdk_folder,
)
from tests.test_data_mosi import assert_matches, pickle_truth, sdk_truth, small_intervals


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No test reads the user's MOSI_PATH or writes to the user's cache."""
    monkeypatch.delenv("MOSI_PATH", raising=False)
    monkeypatch.setenv("FUSIONBENCH_CACHE", str(tmp_path / "default-cache"))


def load_warned(path, **options):
    """The dataset and the messages of the warnings raised while loading it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = load_dataset("mosi", path, **options)
    return dataset, [str(w.message) for w in caught]


def edit_pickle(path, edit):
    data = pickle.loads(path.read_bytes())
    edit(data)
    path.write_bytes(pickle.dumps(data))


# ---- 1. the padding side of pickles that store no lengths -----------------------------------------------------

@pytest.mark.parametrize("aligned", [True, False], ids=["mosi_data", "mosi_data_noalign"])
def test_mult_left_and_right_padded_copies_load_identically(tmp_path, aligned):
    segments = sample_segments()
    truth = write_mult(tmp_path / "left.pkl", segments, aligned=aligned, side="left")
    write_mult(tmp_path / "right.pkl", segments, aligned=aligned, side="right")
    left, _ = load_warned(tmp_path / "left.pkl")
    right, _ = load_warned(tmp_path / "right.pkl")
    assert_matches(right, pickle_truth(truth))  # real lengths, real steps first, padding zero and masked
    for a, b in zip(left.splits.values(), right.splits.values()):
        assert a.ids == b.ids and torch.equal(a.labels, b.labels)
        assert all(map(torch.equal, a.xs, b.xs)) and all(map(torch.equal, a.masks, b.masks))
    for modality in MODALITIES:
        assert left.info["padding"][modality]["right"] == 0 < left.info["padding"][modality]["left"]
        assert right.info["padding"][modality]["left"] == 0 < right.info["padding"][modality]["right"]
        assert left.info["padding"][modality]["left"] == right.info["padding"][modality]["right"]


@pytest.mark.parametrize("side", ["left", "right"])
def test_a_real_all_zero_step_away_from_the_padding_stays_real(tmp_path, side):
    """Train sample 1's text: 4 real steps of 6 whose step farthest from the padding is all-zero (a silent frame),
    so the sample has zero rows at both ends; the file's other samples show the side, the rest is real."""
    path = tmp_path / "mosi_data.pkl"
    write_mult(path, sample_segments((6, 3, 3)), dims=(4, 2, 3), steps=(6, 6, 6), side=side)
    real = np.arange(1, 17, dtype=np.float32).reshape(4, 4)
    real[-1 if side == "left" else 0] = 0.0

    def edit(data):
        data["train"]["text"][1] = 0.0
        data["train"]["text"][1, slice(2, 6) if side == "left" else slice(0, 4)] = real

    edit_pickle(path, edit)
    dataset, _ = load_warned(path)
    assert dataset.train.masks[0][1].tolist() == [True] * 4 + [False] * 2
    np.testing.assert_array_equal(dataset.train.xs[0][1, :4].numpy(), real)


def test_mmsa_without_lengths_takes_the_files_side_for_zero_rows_at_both_ends(tmp_path):
    """MMSA's aligned file stores no lengths: a left-padded sample whose last real audio step is all-zero was read
    as right-padded (its padding counted as real steps)."""
    path = tmp_path / "aligned_50.pkl"
    truth = write_mmsa(path, sample_segments(), aligned=True, side="left")
    row = next(i for i, steps in enumerate(truth["train"]["audio"]) if 3 <= len(steps) < 50)
    truth["train"]["audio"][row][-1] = 0.0
    edit_pickle(path, lambda data: data["train"]["audio"][row].__setitem__(-1, 0.0))
    dataset, _ = load_warned(path)
    assert_matches(dataset, pickle_truth(truth))


def test_mmsa_lengths_that_fit_both_sides_take_the_files_side(tmp_path):
    """A stored length of 365 of 375 with the first and the last 10 rows zero fits either side; the file's other
    samples are left-padded, so the real steps are rows 10..374 (they were read as rows 0..364)."""
    path = tmp_path / "unaligned_50.pkl"
    truth = write_mmsa(path, sample_segments(), aligned=False, side="left")
    real = np.random.default_rng(1).uniform(0.5, 1.5, (365, 5)).astype(np.float32)
    real[-10:] = 0.0  # the segment ends in silence
    truth["train"]["audio"][2] = real

    def edit(data):
        data["train"]["audio"][2] = 0.0
        data["train"]["audio"][2, 10:] = real
        data["train"]["audio_lengths"][2] = 365

    edit_pickle(path, edit)
    dataset, _ = load_warned(path)
    assert_matches(dataset, pickle_truth(truth))


def ambiguous_text(data):
    """Every text sequence full length (no padding shows a side) but one, which has zero rows at both ends."""
    for split in SPLITS:
        x = data[split]["text"]
        x[:] = np.random.default_rng(0).uniform(0.5, 1.5, x.shape)
    data["valid"]["text"][1, [0, -1]] = 0.0


def test_a_file_whose_padding_side_cannot_be_told_is_refused(tmp_path):
    path = tmp_path / "mosi_data.pkl"
    write_mult(path, sample_segments((3, 2, 2)), dims=(4, 2, 3), steps=(6, 6, 6))
    edit_pickle(path, ambiguous_text)
    with pytest.raises(DataError) as caught:
        load_warned(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    assert "'text'" in message and f"{FOLDS['valid'][0]}_2" in message and "padding side" in message


# ---- 2. a video missing from one .csd file --------------------------------------------------------------------

def missing_warnings(messages):
    return [m for m in messages if "lack" in m]


def test_a_video_missing_from_the_vision_csd_keeps_its_text_and_audio(tmp_path):
    video = FOLDS["train"][0]  # 5 segments, one of them zero-length (no words)
    truth = write_sdk_folder(tmp_path / "csd", small_intervals(), dims=(6, 4, 3), missing={"vision": [video]})
    for attempt in ("aligned", "cached"):
        dataset, messages = load_warned(tmp_path / "csd", cache_dir=tmp_path / "cache")
        assert dataset.info["cache"] == ("stored" if attempt == "aligned" else "hit")
        assert_matches(dataset, sdk_truth(truth))  # text and audio steps kept; vision one masked zero step
        rows = [i for i, s in enumerate(dataset.train.ids) if s.startswith(video)]
        assert [int(dataset.train.masks[0][i].sum()) for i in rows] == [3, 3, 3, 1, 3]
        assert dataset.info["empty"] == {"text": 1, "audio": 1, "vision": 5}
        assert dataset.info["missing"] == {"vision": [video]}
        (warned,) = missing_warnings(messages)  # exactly one, on every load
        assert f"vision (CMU_MOSI_Visual_Facet_41.csd) lacks {video} (segments {video}_1 to {video}_5)" in warned
        assert "audio (" not in warned and "text (" not in warned


def test_videos_missing_from_several_csd_files_are_named_in_one_warning(tmp_path):
    lost_audio, lost_text = FOLDS["train"][1], FOLDS["test"][0]
    truth = write_sdk_folder(tmp_path / "csd", small_intervals(), dims=(6, 4, 3),
                             missing={"audio": [lost_audio], "text": [lost_text]})
    dataset, messages = load_warned(tmp_path / "csd", cache_dir=tmp_path / "cache")
    assert_matches(dataset, sdk_truth(truth))  # without words, a video's segments have no step in any modality
    assert dataset.info["missing"] == {"text": [lost_text], "audio": [lost_audio]}
    (warned,) = missing_warnings(messages)
    for name in (lost_audio, f"{lost_audio}_2", lost_text, f"{lost_text}_2", "audio", "text"):
        assert name in warned


# ---- 3a. finite values beyond a sane magnitude ----------------------------------------------------------------

def test_extreme_finite_values_are_warned_about_per_modality(tmp_path):
    path = tmp_path / "mosi_data.pkl"
    truth = write_mult(path, sample_segments((3, 2, 2)), dims=(4, 2, 3), steps=(6, 6, 6))
    flt_max = float(np.finfo(np.float32).max)

    def edit(data):
        data["train"]["audio"][0, -1, 1] = -flt_max  # a tool wrote -FLT_MAX where it meant -inf
        data["test"]["audio"][1, -1, 1] = -flt_max
        data["valid"]["vision"][1, -1, 2] = 2.5e6
        data["valid"]["text"][1, -1, 0] = 0.99 * EXTREME_MAGNITUDE  # large but below the threshold

    edit_pickle(path, edit)
    dataset, messages = load_warned(path)
    extreme = [m for m in messages if "magnitude" in m]
    assert len(extreme) == 2  # one line per modality that has such values
    audio = next(m for m in extreme if "'audio'" in m)
    vision = next(m for m in extreme if "'vision'" in m)
    assert "2 finite" in audio and f"{flt_max:.3g}" in audio and f"{EXTREME_MAGNITUDE:g}" in audio
    assert "1 finite" in vision and "2.5e+06" in vision and str(path) in vision
    assert dataset.info["extreme"] == {"text": 0, "audio": 2, "vision": 1}
    assert dataset.train.xs[1][0, len(truth["train"]["audio"][0]) - 1, 1] == -flt_max  # kept as read


# ---- the wrong-shape errors of the pickle readers, as the CLI shows them --------------------------------------

def mult_edit(key, value):
    return write_mult, lambda data: data["train"].__setitem__(key, value(data["train"]))


def mmsa_edit(key, value):
    return (lambda path, segments: write_mmsa(path, segments, aligned=False),
            lambda data: data["train"].__setitem__(key, value(data["train"])))


WRONG_SHAPES = {  # case: (writer, edit, what the error names)
    "mult-audio-2d": (*mult_edit("audio", lambda s: s["audio"][..., 0]), "'audio' has shape"),
    "mult-labels-2-per-row": (*mult_edit("labels", lambda s: np.concatenate([s["labels"]] * 2, axis=1)),
                              "'labels' has shape"),
    "mult-vision-rows": (*mult_edit("vision", lambda s: s["vision"][:-1]), "'vision' has shape"),
    "mult-id-3d": (*mult_edit("id", lambda s: s["id"][..., None]), "'id' has shape"),
    "mult-text-not-numbers": (*mult_edit("text", lambda s: s["text"].astype(str)), "'text' has shape"),
    "mult-feature-size-between-splits": (
        write_mult, lambda data: data["valid"].update(text=data["valid"]["text"][..., :7]), "7 features"),
    "mmsa-text-bert": (*mmsa_edit("text_bert", lambda s: s["text_bert"][:, :2]), "'text_bert' has shape"),
    "mmsa-audio-ragged": (*mmsa_edit("audio", lambda s: [x[: 3 + i] for i, x in enumerate(s["audio"])]),
                          "'audio' holds items of different shapes"),
    "mmsa-lengths-count": (*mmsa_edit("audio_lengths", lambda s: s["audio_lengths"][:-1]),
                           "'audio_lengths' has shape"),
    "mmsa-lengths-beyond-time": (*mmsa_edit("vision_lengths", lambda s: [501] * len(s["vision_lengths"])),
                                 "'vision_lengths' has shape"),
    "mmsa-lengths-not-numbers": (*mmsa_edit("audio_lengths", lambda s: ["n/a"] * len(s["audio_lengths"])),
                                 "'audio_lengths' has shape"),
    "mmsa-labels-ragged": (*mmsa_edit("regression_labels", lambda s: [[v] * (i + 1) for i, v in
                                                                       enumerate(s["regression_labels"])]),
                           "'regression_labels' holds items of different shapes"),
    "mult-padding-side-unknown": (lambda path, segments: write_mult(path, segments, dims=(4, 2, 3), steps=(6, 6, 6)),
                                  ambiguous_text, "padding side"),
}


@pytest.mark.parametrize("case", sorted(WRONG_SHAPES))
def test_wrong_shapes_end_in_one_error_line_naming_the_file(tmp_path, capsys, case):
    writer, edit, named = WRONG_SHAPES[case]
    path = tmp_path / "features.pkl"
    writer(path, sample_segments((3, 2, 2)))
    edit_pickle(path, edit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        status = run_cli(run_main, ["--fusions", "concat", "--dataset", "mosi", "--data-path", str(path),
                                    "--seeds", "1", "--epochs", "1", "--device", "cpu", "--quiet",
                                    "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: MOSI file {path} (") and named in err[0], err[0]
