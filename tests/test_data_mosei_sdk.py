"""CMU-MOSEI from a folder of CMU-MultimodalSDK ``.csd`` files written in the SDK's layout (``--dataset mosei``):
alignment, standard folds, the six emotions, FACET 4.2 or OpenFace 2, the cache, the one-line errors, training."""

from __future__ import annotations

import logging
import shutil
import warnings
from contextlib import nullcontext

import numpy as np
import pandas as pd
import pytest
import torch

from benchmarks.cli import run_cli
from benchmarks.data import DataError, load_dataset
from benchmarks.data.affect import sdk
from benchmarks.run import main as run_main
from tasks import registry as task_registry
from tests.mosi_fixtures import FOLDS, MOSEI_FOLDS, SPLITS, write_mult, write_sdk_folder
from tests.test_data_mosei import segments as mosei_segments
from tests.test_data_mosi import assert_matches, sdk_truth
from tests.test_run import TINY_CONFIG

# the SDK's names (mmsdk/mmdatasdk/dataset/standard_datasets/CMU_MOSEI/cmu_mosei.py) and root names
NAMES = {"text": "CMU_MOSEI_TimestampedWordVectors.csd", "audio": "CMU_MOSEI_COVAREP.csd",
         "vision": "CMU_MOSEI_VisualFacet42.csd", "labels": "CMU_MOSEI_Labels.csd"}
ROOTS = {"text": "glove_vectors", "audio": "COVAREP", "vision": "FACET 4.2", "labels": "All Labels"}
OPENFACE = {**NAMES, "vision": "CMU_MOSEI_VisualOpenFace2.csd"}
OPENFACE_ROOTS = {**ROOTS, "vision": "OpenFace_2"}
FACET_DIMS, OPENFACE_DIMS = (300, 74, 35), (300, 74, 713)
EMOTIONS = ["happy", "sad", "anger", "surprise", "disgust", "fear"]

# real MOSEI videos of mmdatasdk.cmu_mosei.standard_folds: a numeric id, one with '_' inside, one starting with '-'
NUMERIC, UNDERSCORE, DASH = "81406", "Or-9Nc_GAq8", "-iRBcNs9oI8"  # train
VALID, TEST = "188343", "7l3BNtSE0xc"
OUTSIDE = "2iD-tVS8NPw"  # a MOSI video: labelled here, outside MOSEI's folds


def intervals() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per video the labelled segments (start, end in s) and ``All Labels`` rows ``[k, 7]``: sentiment in [-3, 3],
    then happy, sad, anger, surprise, disgust, fear intensities in [0, 3] (MOSEI's thirds of annotator votes)."""
    third = 1 / 3
    return {
        DASH: (np.array([[0, 2], [2, 3.5], [4, 6]]),
               np.array([[1.0, 4 * third, 0, 0, third, 0, 0], [-2.0, 0, 2, 2 * third, 0, 1, 0],
                         [0.0, 0, 0, 0, 0, 0, 0]])),
        NUMERIC: (np.array([[0.5, 2]]), np.array([[3.0, 3, 0, 0, 0, 0, 0]])),
        UNDERSCORE: (np.array([[0, 1], [1, 2]]),
                     np.array([[-2 * third, 0, third, 5 * third, 0, 2 * third, third],
                               [third, 2 * third, 0, 0, 0, 0, 0]])),
        VALID: (np.array([[0, 1.5], [1.5, 3]]), np.array([[-1.0, 0, 1, 0, 0, 0, 2], [2.0, 1, 0, 0, 1, 0, 0]])),
        TEST: (np.array([[0, 1], [2, 3]]), np.array([[0.6, 0, 0, 0, 0, 0, 0], [-3.0, 0, 3, 3, 0, 3, 3]])),
        OUTSIDE: (np.array([[0, 1]]), np.array([[1.0, 1, 0, 0, 0, 0, 0]])),
    }


IDS = {"train": [f"{DASH}_1", f"{DASH}_2", f"{DASH}_3", f"{NUMERIC}_1", f"{UNDERSCORE}_1", f"{UNDERSCORE}_2"],
       "valid": [f"{VALID}_1", f"{VALID}_2"], "test": [f"{TEST}_1", f"{TEST}_2"]}


def label_rows(split: str) -> np.ndarray:
    """The ``All Labels`` rows ``[N, 7]`` of a split's segments, in ``IDS`` order."""
    rows = intervals()
    return np.array([rows[i.rsplit("_", 1)[0]][1][int(i.rsplit("_", 1)[1]) - 1] for i in IDS[split]], np.float32)


def write_folder(folder, dims=FACET_DIMS, names=NAMES, roots=ROOTS, **options):
    return write_sdk_folder(folder, intervals(), dims=dims, names=names, roots=roots, **options)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No test reads the user's MOSEI_PATH or writes to the user's cache."""
    monkeypatch.delenv("MOSEI_PATH", raising=False)
    monkeypatch.setenv("FUSIONBENCH_CACHE", str(tmp_path / "default-cache"))


def load(path, caplog=None, **options):
    """The dataset, the warnings raised and the log warnings."""
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.INFO) if caplog else nullcontext():
        warnings.simplefilter("always")
        dataset = load_dataset("mosei", path, **options)
    logged = [r.getMessage() for r in caplog.records] if caplog else []
    return dataset, [str(w.message) for w in caught], logged


def test_the_fixture_uses_real_fold_videos():
    assert {NUMERIC, UNDERSCORE, DASH} <= set(MOSEI_FOLDS["train"])
    assert VALID in MOSEI_FOLDS["valid"] and TEST in MOSEI_FOLDS["test"]
    assert OUTSIDE in FOLDS["train"] and not any(OUTSIDE in videos for videos in MOSEI_FOLDS.values())


def test_csd_folder_facet_alignment_folds_labels_and_emotions(tmp_path, caplog):
    folder = tmp_path / "CMU_MOSEI"
    truth = write_folder(folder, missing={"vision": [NUMERIC]})  # FACET failed on one video
    dataset, messages, logged = load(folder, caplog, cache_dir=tmp_path / "cache")
    assert dataset.name == "mosei" and dataset.task == "sentiment" and dataset.num_classes is None
    assert_matches(dataset, sdk_truth(truth))  # words: GloVe, mean COVAREP frames, the FACET frame or a zero step
    assert dataset.dims == [300, 74, 35]
    for split in SPLITS:
        part, rows = dataset.splits[split], label_rows(split)
        assert part.ids == IDS[split]
        assert torch.equal(part.labels, torch.from_numpy(rows[:, 0]))
        assert part.extras["emotions"].shape == (len(IDS[split]), 6)
        assert torch.equal(part.extras["emotions"], torch.from_numpy(rows[:, 1:]))
    info = dataset.info
    assert info["format"] == "sdk" and info["files"] == NAMES and info["emotions"] == EMOTIONS
    assert info["counts"] == {"train": 6, "valid": 2, "test": 2} and info["cache"] == "stored"
    assert info["missing"] == {"vision": [NUMERIC]} and info["cache_file"].startswith(str(tmp_path / "cache" / "mosei"))
    where = f"MOSEI .csd folder {folder}"
    assert len(messages) == 3 and messages[0].startswith(f"{where}: 1 labelled video(s) missing")
    assert f"vision (CMU_MOSEI_VisualFacet42.csd) lacks {NUMERIC} (segments {NUMERIC}_1 to {NUMERIC}_1)" in messages[0]
    assert "audio 5 (-inf 5)" in messages[1]  # the first word of each of the 5 fold videos
    assert any(m.startswith(f"{where}: 1 labelled video(s) outside mmdatasdk.cmu_mosei.standard_folds dropped: "
                            f"{OUTSIDE}") for m in logged)
    assert any("split sizes 6/2/2 differ from the standard MOSEI split 16326/1871/4659" in m for m in logged)


def test_openface_or_facet_by_vision_csd(tmp_path, caplog):
    facet, openface = tmp_path / "facet", tmp_path / "openface"
    facet_truth = write_folder(facet)
    openface_truth = write_folder(openface, dims=OPENFACE_DIMS, names=OPENFACE, roots=OPENFACE_ROOTS)
    alone, _, _ = load(openface, cache_dir=tmp_path / "cache")  # the only vision file: read without an option
    assert alone.dims == [300, 74, 713] and alone.info["files"]["vision"] == OPENFACE["vision"]
    assert_matches(alone, sdk_truth(openface_truth))

    shutil.copy(openface / OPENFACE["vision"], facet / OPENFACE["vision"])  # the same words: both visions fit
    default, _, logged = load(facet, caplog, cache_dir=tmp_path / "cache")
    assert default.dims == [300, 74, 35] and default.info["files"]["vision"] == NAMES["vision"]
    assert any(f"vision read from {NAMES['vision']}; also present: {OPENFACE['vision']}" in m for m in logged)
    chosen, _, _ = load(facet, vision_csd=OPENFACE["vision"], cache_dir=tmp_path / "cache")
    assert chosen.dims == [300, 74, 713] and chosen.info["files"]["vision"] == OPENFACE["vision"]
    assert chosen.info["cache_file"] != default.info["cache_file"]  # the vision file is part of the cache key
    assert_matches(chosen, sdk_truth({key: {**facet_truth[key], "vision": openface_truth[key]["vision"]}
                                      for key in facet_truth}))


def test_second_load_hits_the_cache_with_the_emotions(tmp_path, monkeypatch):
    folder = tmp_path / "CMU_MOSEI"
    write_folder(folder, dims=(6, 4, 3))
    first, _, _ = load(folder)  # default cache: $FUSIONBENCH_CACHE/mosei
    assert first.info["cache"] == "stored"
    assert first.info["cache_file"].startswith(str(tmp_path / "default-cache" / "mosei" / "sdk-"))

    def no_alignment(*args):
        raise AssertionError("aligned again instead of reading the cache")

    monkeypatch.setattr(sdk, "_align", no_alignment)
    second, _, _ = load(folder)
    assert second.info["cache"] == "hit"
    for a, b in zip(first.splits.values(), second.splits.values()):
        assert a.ids == b.ids and torch.equal(a.labels, b.labels)
        assert torch.equal(a.extras["emotions"], b.extras["emotions"])
        assert all(map(torch.equal, a.xs, b.xs)) and all(map(torch.equal, a.masks, b.masks))
    emotions, _, _ = load(folder, labels="emotions")  # the same cache serves both label sets
    assert emotions.info["cache"] == "hit" and emotions.task == "emotions"


def test_labels_emotions_gives_the_multilabel_task(tmp_path):
    folder = tmp_path / "CMU_MOSEI"
    write_folder(folder, dims=(6, 4, 3))
    dataset, _, _ = load(folder, labels="emotions", cache_dir=tmp_path / "cache")
    assert dataset.task == "emotions" and dataset.num_classes == 6 and dataset.info["label_names"] == EMOTIONS
    for split in SPLITS:
        part, rows = dataset.splits[split], label_rows(split)
        assert part.labels.dtype == torch.float32 and part.labels.shape == (len(IDS[split]), 6)
        assert torch.equal(part.labels, torch.from_numpy((rows[:, 1:] > 0).astype(np.float32)))
        assert torch.equal(part.extras["sentiment"], torch.from_numpy(rows[:, 0]))
        assert torch.equal(part.extras["emotions"], torch.from_numpy(rows[:, 1:]))
    assert dataset.train.labels[0].tolist() == [1, 0, 0, 1, 0, 0]  # happy 4/3 and surprise 1/3 present
    assert dataset.train.labels[2].tolist() == [0] * 6  # no emotion


def test_emotions_without_the_task_is_one_error(tmp_path, scratch_tasks):
    folder = tmp_path / "CMU_MOSEI"
    write_folder(folder, dims=(6, 4, 3))
    task_registry._TASKS.pop("emotions", None)
    with pytest.raises(DataError, match="the task 'emotions' .* is unavailable: it is not registered"):
        load_dataset("mosei", folder, labels="emotions", cache_dir=tmp_path / "cache")


def cli(tmp_path, path, config_text=""):
    """``python -m benchmarks.run`` in process on ``path``: the exit status, stderr lines and the out folder."""
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_CONFIG + config_text)
    out = tmp_path / "out"
    status = run_cli(run_main, ["--fusions", "concat,late", "--dataset", "mosei", "--data-path", str(path),
                                "--seeds", "1", "--epochs", "1", "--device", "cpu", "--quiet", "--no-report",
                                "--config", str(config), "--out", str(out)])
    return status, out


@pytest.mark.parametrize("labels", ["sentiment", "emotions"])
def test_two_fusions_train_one_epoch_on_a_csd_folder_through_the_cli(tmp_path, capsys, labels):
    """Sentiment on OpenFace 2 vision; the six emotions (task ``emotions``, multi-label) on FACET 4.2."""
    folder = tmp_path / "CMU_MOSEI"
    if labels == "sentiment":
        write_folder(folder, dims=OPENFACE_DIMS, names=OPENFACE, roots=OPENFACE_ROOTS)
    else:
        write_folder(folder)
    options = f'\n[datasets.mosei]\ncache_dir = "{tmp_path / "cache"}"\nlabels = "{labels}"\n'
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        status, out = cli(tmp_path, folder, options)
    assert status == 0, capsys.readouterr().err
    runs = pd.read_csv(out / "runs.csv")
    assert sorted(runs.fusion) == ["concat", "late"] and (runs.status == "done").all() and (runs.epochs == 1).all()
    assert (runs.dataset == "mosei").all() and (runs[["n_train", "n_valid", "n_test"]] == [6, 2, 2]).all().all()
    assert (runs.task == labels).all()
    metrics = ["mae", "acc7"] if labels == "sentiment" else ["wacc_avg", "f1_micro", "wacc_sad", "f1_fear"]
    assert runs[metrics].notna().all().all()
    assert list((tmp_path / "cache" / "mosei").glob("sdk-*.npz"))  # the options reached the loader


@pytest.mark.parametrize("case", ["pickle", "unknown-labels"])
def test_emotions_of_a_pickle_or_unknown_labels_is_one_error_line(tmp_path, capsys, case):
    path = tmp_path / "mosei_senti_data.pkl"
    write_mult(path, mosei_segments(), dims=(300, 74, 35))
    labels = {"pickle": "emotions", "unknown-labels": "emotion"}[case]
    expected = {"pickle": f"error: MOSEI file {path} is a MulT MOSEI pickle (mosei_senti_data.pkl, "
                          f"mosei_senti_data_noalign.pkl), which holds the sentiment score only, no emotion labels: "
                          f"labels='emotions' needs the folder of CMU-MultimodalSDK .csd files, whose "
                          f"CMU_MOSEI_Labels.csd holds the six emotions",
                "unknown-labels": "error: MOSEI labels='emotion': expected 'sentiment' (the sentiment score in "
                                  "[-3, 3], task 'sentiment') or 'emotions' ("}[case]
    status, _ = cli(tmp_path, path, f'\n[datasets.mosei]\nlabels = "{labels}"\n')
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and err[0].startswith(expected), err


def test_a_labels_file_without_the_emotions_is_refused_before_aligning(tmp_path, monkeypatch):
    folder = tmp_path / "CMU_MOSEI"
    mosi_style = {video: (spans, rows[:, 0]) for video, (spans, rows) in intervals().items()}  # [k] sentiment only
    write_sdk_folder(folder, mosi_style, dims=(6, 4, 3), names=NAMES, roots=ROOTS)

    def no_alignment(*args):
        raise AssertionError("started aligning before checking the labels")

    monkeypatch.setattr(sdk, "_stand_in", no_alignment)  # the first step of the alignment
    with pytest.raises(DataError) as caught:
        load_dataset("mosei", folder, cache_dir=tmp_path / "cache")
    assert str(caught.value) == (
        f"MOSEI .csd folder {folder}: CMU_MOSEI_Labels.csd holds 1 value(s) per segment for video {DASH}; expected 7 "
        f"(the sentiment score, then the intensities of happy, sad, anger, surprise, disgust, fear)")


@pytest.mark.parametrize("value", [3.5, -0.5, np.nan])
def test_an_emotion_intensity_outside_0_3_is_named(tmp_path, value):
    rows = intervals()
    rows[UNDERSCORE][1][1, 4] = value  # the second segment's surprise
    write_sdk_folder(tmp_path / "csd", rows, dims=(6, 4, 3), names=NAMES, roots=ROOTS)
    with pytest.raises(DataError) as caught:
        load_dataset("mosei", tmp_path / "csd", cache_dir=tmp_path / "cache")
    assert str(caught.value) == (f"MOSEI .csd folder {tmp_path / 'csd'}: CMU_MOSEI_Labels.csd gives segment "
                                 f"{UNDERSCORE}_2 the surprise intensity {np.float32(value)}; expected emotion "
                                 f"intensities in [0, 3]")


def test_a_missing_vision_file_names_both_and_the_option(tmp_path):
    write_folder(tmp_path / "csd", dims=(6, 4, 3))
    (tmp_path / "csd" / NAMES["vision"]).unlink()
    with pytest.raises(DataError) as caught:
        load_dataset("mosei", tmp_path / "csd", cache_dir=tmp_path / "cache")
    assert str(caught.value) == (f"MOSEI .csd folder {tmp_path / 'csd'} lacks the vision sequence: expected "
                                 f"CMU_MOSEI_VisualFacet42.csd or CMU_MOSEI_VisualOpenFace2.csd (another file in the "
                                 f"folder can be named with the option vision_csd=FILE)")


def test_many_videos_missing_from_facet_are_counted_in_one_bounded_warning(tmp_path):
    """FACET failed on 12 videos: the one warning names the first ten (sorted) with their segments and counts the
    rest; ``info["missing"]`` lists all twelve, whose segments keep text and audio."""
    videos = sorted(MOSEI_FOLDS["train"][20:32])
    rows = {**intervals(), **{video: (np.array([[0.0, 1.0]]), np.array([[0.5, 1, 0, 0, 0, 0, 0]])) for video in videos}}
    truth = write_sdk_folder(tmp_path / "csd", rows, dims=(6, 4, 3), names=NAMES, roots=ROOTS,
                             missing={"vision": videos})
    dataset, messages, _ = load(tmp_path / "csd", cache_dir=tmp_path / "cache")
    assert_matches(dataset, sdk_truth(truth))
    assert dataset.info["missing"] == {"vision": videos} and len(dataset.train) == 6 + 12
    [warned] = [m for m in messages if "missing from a .csd file" in m]
    named = ", ".join(f"{video} (segments {video}_1 to {video}_1)" for video in videos[:10])
    assert warned.endswith(f"vision (CMU_MOSEI_VisualFacet42.csd) lacks {named} and 2 more (info['missing'] lists "
                           f"them all)") and warned.startswith(f"MOSEI .csd folder {tmp_path / 'csd'}: 12 labelled")
