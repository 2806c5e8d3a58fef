"""Your own data (``--dataset arrays``): files written in the documented layout (NPZ folder, HDF5 file) load with
the right shapes, masks, labels, ids and split sizes; ``from_arrays`` / ``write_arrays`` give the same dataset;
every documented error is one line naming the file and key; a layout trains two fusions through the CLI and the
report shows the task's metrics."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from analysis.report import main as report_main
from benchmarks.cli import run_cli
from benchmarks.data import DataError, load_dataset
from benchmarks.data.arrays import from_arrays, write_arrays
from benchmarks.run import main as run_main
from tasks import get_task, list_tasks
from tests.test_run import TINY_CONFIG

SIZES = {"train": 8, "valid": 4, "test": 4}
STEPS = {"eeg": 7, "video": 5}
DIMS = {"eeg": 4, "video": 3, "gaze": 2}
MULTILABEL = pytest.mark.skipif("multilabel" not in list_tasks(), reason="no multilabel task registered")


def layout(task: str, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """The arrays of the three splits as a user writes them: ``eeg`` float64 ``[N, 7, 4]`` right-padded with NaN
    and ``lengths_eeg``; ``video`` float32 ``[N, 5, 3]`` with ``mask_video``: sample 0 full, 1 left-padded, 2 with a
    gap, the rest right-padded; ``gaze`` int16 ``[N, 2]`` (one step); labels of ``task``; string ids."""
    rng = np.random.default_rng(seed)
    splits = {}
    for split, n in SIZES.items():
        lengths = rng.integers(1, STEPS["eeg"] + 1, n)
        eeg = rng.normal(size=(n, STEPS["eeg"], DIMS["eeg"]))
        eeg[np.arange(STEPS["eeg"]) >= lengths[:, None]] = np.nan
        mask = np.arange(STEPS["video"]) < rng.integers(1, STEPS["video"] + 1, n)[:, None]
        mask[0], mask[1], mask[2] = True, [0, 0, 1, 1, 1], [1, 0, 1, 0, 1]
        video = (rng.normal(size=(n, STEPS["video"], DIMS["video"])) * mask[..., None]).astype(np.float32)
        labels = {"regression": rng.normal(size=n) * 10, "binary": rng.integers(0, 2, n).astype(bool),
                  "multiclass": rng.integers(0, 4, n).astype(np.int32), "sentiment": rng.uniform(-3, 3, n),
                  "multilabel": rng.integers(0, 2, (n, 3)).astype(np.uint8)}[task]
        splits[split] = {
            "x_eeg": eeg, "lengths_eeg": lengths, "x_video": video, "mask_video": mask,
            "x_gaze": rng.integers(-5, 5, (n, DIMS["gaze"])).astype(np.int16), "labels": labels,
            "ids": np.array([f"{split}-{row:03d}" for row in range(n)]),
        }
    return splits


def declaration(task: str) -> dict:
    extra = {"multiclass": {"num_classes": 4, "label_names": ["rest", "left", "right", "feet"]},
             "multilabel": {"label_names": ["blink", "jaw", "move"]}}.get(task, {})
    return {"task": task, "name": "motor-imagery", "modalities": ["video", "eeg", "gaze"], **extra}


def write_folder(folder: Path, splits: dict, declared: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, arrays in splits.items():
        np.savez(folder / f"{split}.npz", **arrays)
    (folder / "dataset.json").write_text(json.dumps(declared))
    return folder


def write_h5(path: Path, splits: dict, declared: dict) -> Path:
    with h5py.File(path, "w") as handle:
        handle.attrs.update(declared)
        for split, arrays in splits.items():
            group = handle.create_group(split)
            for key, value in arrays.items():
                group.create_dataset(key, data=value.astype("S") if value.dtype.kind == "U" else value)
    return path


def expected_modality(x: np.ndarray, real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per sample, its real rows in order then zero rows, and the mask; a sample without a real row keeps one
    zero row marked real (the reference, sample by sample)."""
    out, mask = np.zeros(x.shape, dtype=np.float32), np.zeros(real.shape, dtype=bool)
    for row in range(x.shape[0]):
        kept = x[row][real[row]]
        out[row, : len(kept)] = np.nan_to_num(kept, nan=0.0, posinf=0.0, neginf=0.0)
        mask[row, : max(len(kept), 1)] = True
    return out, mask


def check_loaded(dataset, splits: dict, task: str) -> None:
    assert dataset.name == "arrays" and dataset.task == task
    assert dataset.modality_names == ["video", "eeg", "gaze"]
    assert dataset.dims == [DIMS["video"], DIMS["eeg"], DIMS["gaze"]]
    assert dataset.info["counts"] == SIZES and dataset.info["name"] == "motor-imagery"
    for split, arrays in splits.items():
        loaded = getattr(dataset, split)
        assert len(loaded) == SIZES[split] and loaded.ids == arrays["ids"].tolist()
        n = SIZES[split]
        reals = {"video": arrays["mask_video"], "eeg": np.arange(STEPS["eeg"]) < arrays["lengths_eeg"][:, None],
                 "gaze": np.ones((n, 1), dtype=bool)}
        raws = {"video": arrays["x_video"], "eeg": arrays["x_eeg"], "gaze": arrays["x_gaze"][:, None, :]}
        for i, modality in enumerate(dataset.modality_names):
            x, mask = expected_modality(raws[modality], reals[modality])
            assert loaded.xs[i].dtype == torch.float32 and loaded.masks[i].dtype == torch.bool
            assert np.array_equal(loaded.masks[i].numpy(), mask), (split, modality)
            assert np.array_equal(loaded.xs[i].numpy(), x), (split, modality)
        kind = get_task(task).kind
        labels = arrays["labels"]
        if kind == "classification":
            assert loaded.labels.dtype == torch.int64 and loaded.labels.tolist() == labels.astype(int).tolist()
        else:
            assert loaded.labels.dtype == torch.float32
            assert np.array_equal(loaded.labels.numpy(), labels.astype(np.float32))
    # video: sample 1 left-padded and sample 2 with a gap, in each split: moved to the front
    assert dataset.info["padding"]["video"]["left"] == 3 and dataset.info["padding"]["video"]["gaps"] == 3
    assert dataset.info["nonfinite_replaced"] == {"video": 0, "eeg": 0, "gaze": 0}  # NaN padding is padding


def load_quietly(path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = load_dataset("arrays", path)
    return dataset, [str(w.message) for w in caught]


@pytest.mark.parametrize("task", ["regression", "binary", "multiclass", "sentiment",
                                  pytest.param("multilabel", marks=MULTILABEL)])
def test_npz_folder_loads_shapes_masks_labels_ids_and_sizes(tmp_path, task):
    splits = layout(task)
    dataset, messages = load_quietly(write_folder(tmp_path / "data", splits, declaration(task)))
    check_loaded(dataset, splits, task)
    assert dataset.info["format"] == "npz" and dataset.info["path"] == str(tmp_path / "data")
    assert dataset.num_classes == {"binary": 2, "multiclass": 4, "multilabel": 3}.get(task)
    assert messages == [f"arrays folder {tmp_path / 'data'}: modality 'video': 3 sample(s) have padding between "
                        "real steps (mask_ False between True); their real steps were moved together, in order"]
    if task == "multilabel":
        assert dataset.label_names == ("blink", "jaw", "move")


@pytest.mark.parametrize("task", ["binary", pytest.param("multilabel", marks=MULTILABEL)])
def test_hdf5_file_loads_as_the_npz_folder_does(tmp_path, task):
    splits = layout(task, seed=3)
    from_h5, _ = load_quietly(write_h5(tmp_path / "data.h5", splits, declaration(task)))
    from_npz, _ = load_quietly(write_folder(tmp_path / "npz", splits, declaration(task)))
    check_loaded(from_h5, splits, task)
    assert from_h5.info["format"] == "hdf5" and from_h5.info["path"] == str(tmp_path / "data.h5")
    for split in SIZES:
        a, b = getattr(from_h5, split), getattr(from_npz, split)
        assert all(torch.equal(x, y) for x, y in zip(a.xs + a.masks, b.xs + b.masks))
        assert torch.equal(a.labels, b.labels) and a.ids == b.ids


def test_from_arrays_and_write_arrays_give_the_same_dataset(tmp_path):
    splits = layout("multiclass", seed=5)
    declared = {k: v for k, v in declaration("multiclass").items() if k != "task"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        direct = from_arrays(splits, "multiclass", **declared)
        for path in (tmp_path / "folder", tmp_path / "data.h5"):
            written = load_dataset("arrays", write_arrays(path, splits, "multiclass", **declared))
            assert written.modality_names == direct.modality_names and written.num_classes == 4
            for split in SIZES:
                a, b = getattr(direct, split), getattr(written, split)
                assert all(torch.equal(x, y) for x, y in zip(a.xs + a.masks, b.xs + b.masks))
                assert torch.equal(a.labels, b.labels) and a.ids == b.ids
    assert direct.name == "motor-imagery" and direct.info["format"] == "arrays"
    assert np.isnan(splits["train"]["x_eeg"]).any()  # the caller's arrays are left as given


def test_defaults_one_step_modalities_inferred_classes_and_extras(tmp_path):
    rng = np.random.default_rng(1)
    splits = {split: {"x_b": rng.normal(size=(n, 3)), "x_a": rng.normal(size=(n, 2, 5)),
                      "labels": np.arange(n) % 3, "extra_aux": rng.normal(size=(n, 2))}
              for split, n in SIZES.items()}
    dataset, messages = load_quietly(write_folder(tmp_path / "mine", splits, {"task": "multiclass"}))
    assert messages == [] and dataset.modality_names == ["b", "a"]  # the order np.savez wrote them
    assert dataset.num_classes == 3 and dataset.info["name"] == "mine"  # the largest label + 1; the folder's name
    assert dataset.train.ids == [f"train_{row}" for row in range(SIZES["train"])]
    assert dataset.valid.xs[0].shape == (4, 1, 3) and dataset.valid.masks[1].all()  # every step real
    assert torch.equal(dataset.test.extras["aux"], torch.from_numpy(splits["test"]["extra_aux"].astype(np.float32)))


def test_values_are_treated_as_the_affect_corpora_treat_them(tmp_path):
    splits = layout("binary")
    train = splits["train"]
    train["x_eeg"][0, 0, :2] = [np.nan, -np.inf]  # real steps (every sample has at least one)
    train["x_gaze"] = train["x_gaze"].astype(np.float64)
    train["x_gaze"][1, 0] = -3.4e38
    train["mask_video"][3] = False  # no real step
    dataset, messages = load_quietly(write_folder(tmp_path / "data", splits, declaration("binary")))
    folder = f"arrays folder {tmp_path / 'data'}"
    assert dataset.info["nonfinite_replaced"]["eeg"] == 2 and dataset.info["extreme"]["gaze"] == 1
    assert dataset.info["empty"] == {"video": 1, "eeg": 0, "gaze": 0}
    assert dataset.train.xs[1][0, 0, :2].tolist() == [0.0, 0.0]
    assert dataset.train.masks[0][3].tolist() == [True, False, False, False, False]
    assert dataset.train.xs[0][3].abs().sum() == 0
    assert f"{folder}: replaced 2 non-finite feature values by 0: eeg 2 (nan 1, -inf 1)" in messages
    assert any(m.startswith(f"{folder}: modality 'gaze' has 1 finite feature value(s) of magnitude above 1e+06 "
                            "(largest 3.4e+38), kept as read") for m in messages)
    assert (f"{folder}: modality 'video': 1 sample(s) have no real step (first: 'train-003' of split 'train'); "
            "each keeps one zero step marked real") in messages


def _set(split, key, value):
    return lambda s, d: s[split].__setitem__(key, value(s[split]) if callable(value) else value)


def _drop(split, key):
    return lambda s, d: s[split].pop(key)


N = SIZES["train"]
ERRORS = {  # case: (change to the binary layout, file, the line after "<file>: ")
    "unknown task": (lambda s, d: d.update(task="humour"), "dataset.json",
                     "key 'task' is 'humour', not a registered task; expected one of sentiment, regression, "),
    "no task": (lambda s, d: d.pop("task"), "dataset.json", "no key 'task'; expected the name of a registered task"),
    "unknown declared key": (lambda s, d: d.update(modality=["eeg"]), "dataset.json",
                             "unknown key 'modality'; expected task, name, modalities, num_classes, label_names"),
    "modalities not the arrays": (lambda s, d: d.update(modalities=["video", "eeg"]), "dataset.json",
                                  "key 'modalities' is ['video', 'eeg']; expected a list naming each x_ array of "),
    "wrong shape": (_set("valid", "x_eeg", lambda a: a["x_eeg"][..., None]), "valid.npz",
                    "key 'x_eeg' has shape (4, 7, 4, 1); expected [N, T, D] or [N, D] with N = 4"),
    "N differs between modalities": (_set("train", "x_gaze", lambda a: a["x_gaze"][:-1]), "train.npz",
                                     f"key 'x_gaze' has shape ({N - 1}, 2); expected [N, T, D] or [N, D] with N = {N}"),
    "feature size differs from train": (_set("test", "x_gaze", lambda a: a["x_gaze"][:, :1]), "test.npz",
                                        "key 'x_gaze' has 1 features; expected 2, as in train"),
    "modality in train only": (_drop("test", "x_gaze"), "test.npz",
                               "no key 'x_gaze' ("),
    "modality in test only": (_set("test", "x_emg", lambda a: a["x_gaze"]), "test.npz",
                              "key 'x_emg' is not in "),
    "one modality": (lambda s, d: [(a.pop("x_video"), a.pop("mask_video"), a.pop("x_eeg"), a.pop("lengths_eeg"))
                                   for a in s.values()] and d.pop("modalities"), "train.npz",
                     "1 modality array(s) (gaze); expected at least 2 arrays x_<modality>"),
    "string features": (_set("train", "x_gaze", lambda a: a["x_gaze"].astype(str)), "train.npz",
                        "key 'x_gaze' has dtype <U6; expected bool or int or unsigned int or float values"),
    "ragged object array": (_set("train", "x_gaze", lambda a: np.array([np.zeros(k) for k in range(N)],
                                                                       dtype=object)), "train.npz",
                            "key 'x_gaze' cannot be read as one array (Object arrays cannot be loaded when "
                            "allow_pickle=False); expected a numeric array"),
    "labels not 0/1": (_set("valid", "labels", np.array([0, 1, 2, 1])), "valid.npz",
                       "key 'labels': labels outside 0..1; expected [N] class numbers 0..num_classes-1 for task "
                       "'binary'"),
    "labels not whole": (_set("train", "labels", lambda a: a["labels"] + 0.5), "train.npz",
                         f"key 'labels' holds {N} value(s) that are not whole class numbers (first: "),
    "labels [N, 2]": (_set("train", "labels", lambda a: np.stack([a["labels"]] * 2, 1)), "train.npz",
                      f"key 'labels' has shape ({N}, 2); expected [N] class numbers"),
    "no labels": (_drop("test", "labels"), "test.npz", "no key 'labels'; expected one label per sample"),
    "misspelt key": (_set("train", "label", np.zeros(N)), "train.npz",
                     "unknown key 'label'; expected x_<modality>, lengths_<modality>, mask_<modality>, labels, ids"),
    "lengths out of range": (_set("train", "lengths_eeg", lambda a: a["lengths_eeg"] + 7), "train.npz",
                             "key 'lengths_eeg' (shape (8,), values "),
    "lengths and mask": (_set("train", "mask_eeg", np.ones((N, 7), dtype=bool)), "train.npz",
                         "keys 'lengths_eeg' and 'mask_eeg' both given; expected one of them"),
    "mask not 0/1": (_set("train", "mask_video", lambda a: a["mask_video"] * 2), "train.npz",
                     "key 'mask_video' (shape (8, 5), values 0..2); expected [N, T] = [8, 5] of bool or 0/1"),
    "lengths without features": (_set("valid", "lengths_emg", np.ones(4)), "valid.npz",
                                 "key 'lengths_emg' has no features x_emg; expected lengths_<modality> beside"),
    "repeated id": (_set("test", "ids", lambda a: np.array(["train-001", "b", "c", "d"])), "test.npz",
                    "key 'ids': 'train-001' repeats (also in split 'train'); expected ids unique"),
    "num_classes for regression": (lambda s, d: [a.__setitem__("labels", a["labels"].astype(float)) for a in
                                                 s.values()] and d.update(task="regression", num_classes=2),
                                   "dataset.json", "key 'num_classes' applies to classification tasks; expected "
                                                   "neither num_classes nor label_names for task 'regression'"),
    "label_names count": (lambda s, d: d.update(label_names=["no", "yes", "maybe"]), "dataset.json",
                          "key 'label_names' has 3 names; expected 2, one per class"),
    "sentiment out of range": (lambda s, d: [a.__setitem__("labels", a["labels"] * 4.0) for a in s.values()] and
                               d.update(task="sentiment"), "train.npz",
                               "key 'labels': "),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_each_documented_error_is_one_line_naming_file_and_key(tmp_path, case):
    change, file, message = ERRORS[case]
    splits, declared = layout("binary"), declaration("binary")
    change(splits, declared)
    folder = write_folder(tmp_path / "data", splits, declared)
    with pytest.raises(DataError) as caught, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_dataset("arrays", folder)
    text = str(caught.value)
    assert "\n" not in text and text.startswith(f"{folder / file}: {message}"), text
    assert "expected" in text


def test_sentiment_labels_outside_its_range_are_named(tmp_path):
    splits = layout("sentiment")
    splits["valid"]["labels"][2] = 3.5
    folder = write_folder(tmp_path / "data", splits, declaration("sentiment"))
    with pytest.raises(DataError, match=r"valid\.npz: key 'labels': 1 labels lie outside \[-3, 3\], the range of "
                                        r"task 'sentiment'; expected \[N\] finite real values in \[-3, 3\]"):
        load_quietly(folder)


@pytest.mark.parametrize("case", ["no split file", "no declaration", "bad json", "npy file", "not hdf5", "no group",
                                  "no path", "missing path"])
def test_layout_errors_are_one_line(tmp_path, case):
    folder = write_folder(tmp_path / "data", layout("binary"), declaration("binary"))
    path, expected = folder, ""
    if case == "no split file":
        (folder / "valid.npz").rename(folder / "val.npz")
        expected = (f"{folder}: no valid.npz; expected a folder holding train.npz, valid.npz and test.npz "
                    "(numpy.savez) and dataset.json, or an HDF5 file with groups train, valid and test (the folder "
                    "holds dataset.json, test.npz, train.npz, val.npz)")
    elif case == "no declaration":
        (folder / "dataset.json").unlink()
        expected = f"{folder / 'dataset.json'} does not exist; expected a JSON object declaring the task"
    elif case == "bad json":
        (folder / "dataset.json").write_text('{"task": binary}')
        expected = f"{folder / 'dataset.json'}: not valid JSON (Expecting value: line 1 column 10 (char 9))"
    elif case == "npy file":
        np.save(folder / "test.npz", np.zeros(3))
        (folder / "test.npz.npy").rename(folder / "test.npz")
        expected = f"{folder / 'test.npz'}: holds one unnamed array (a .npy file); expected the file numpy.savez"
    elif case == "not hdf5":
        path = folder / "train.npz"
        expected = f"{path} is a file but not an HDF5 file; expected a folder holding train.npz"
    elif case == "no group":
        path = tmp_path / "data.h5"
        splits = layout("binary")
        del splits["test"]
        write_h5(path, splits, declaration("binary"))
        expected = f"{path}: no group 'test'; expected groups train, valid and test"
    elif case == "no path":
        path, expected = None, "--dataset arrays reads your own data: pass --data-path with a folder holding"
    else:
        path = tmp_path / "nowhere"
        expected = f"{path} does not exist; expected a folder holding train.npz"
    with pytest.raises(DataError) as caught:
        load_quietly(path)
    assert "\n" not in str(caught.value) and str(caught.value).startswith(expected), str(caught.value)


def test_from_arrays_errors_name_the_split_and_key():
    splits = layout("binary")
    splits["valid"]["x_video"] = splits["valid"]["x_video"][:, :, :2]
    with pytest.raises(DataError, match=r"^from_arrays splits\['valid'\]: key 'x_video' has 2 features; expected "
                                        r"3, as in train$"):
        from_arrays(splits, "binary")
    with pytest.raises(DataError, match=r"^from_arrays: splits 'train', 'test'; expected train, valid and test$"):
        from_arrays({"train": splits["train"], "test": splits["test"]}, "binary")


def test_write_arrays_refuses_what_would_not_load(tmp_path):
    splits = layout("binary")
    splits["test"]["labels"] = splits["test"]["labels"].astype(int) + 1
    with pytest.raises(DataError, match="labels outside 0..1"):
        write_arrays(tmp_path / "out", splits, "binary")
    assert not (tmp_path / "out").exists()


def test_cli_error_is_one_line(tmp_path, capsys):
    splits = layout("binary")
    splits["test"].pop("x_eeg")
    folder = write_folder(tmp_path / "data", splits, declaration("binary"))
    status = run_cli(run_main, ["--fusions", "concat", "--dataset", "arrays", "--data-path", str(folder), "--seeds",
                                "1", "--epochs", "1", "--device", "cpu", "--quiet", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and err == [f"error: {folder / 'test.npz'}: key 'lengths_eeg' has no features x_eeg; expected "
                                   "lengths_<modality> beside x_<modality>"]


@pytest.mark.slow
def test_a_layout_trains_two_fusions_through_the_cli_and_reports_its_metrics(tmp_path, capsys):
    folder = write_folder(tmp_path / "data", layout("binary"), declaration("binary"))
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_CONFIG)
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        status = run_cli(run_main, ["--dataset", "arrays", "--data-path", str(folder), "--fusions", "grf,concat",
                                    "--seeds", "1", "--epochs", "1", "--config", str(config), "--device", "cpu",
                                    "--no-report", "--quiet", "--out", str(out)])
        assert status == 0, capsys.readouterr().err
        assert report_main([str(out), "--quiet"]) == 0
    records = pd.read_csv(out / "runs.csv")
    assert records["fusion"].tolist() == ["grf", "concat"] and set(records["status"]) == {"done"}
    assert set(records["dataset"]) == {"arrays"} and set(records["task"]) == {"binary"}
    assert records[["n_train", "n_valid", "n_test"]].iloc[0].tolist() == list(SIZES.values())
    assert records.loc[0, "modalities"] == "video,eeg,gaze"
    meta = json.loads((out / "meta.json").read_text())
    assert meta["data_info"]["name"] == "motor-imagery" and meta["data_info"]["format"] == "npz"
    table = (out / "report" / "tables" / "comparison.md").read_text()
    header = table.splitlines()[0]
    assert all(f" {name} " in header for name in get_task("binary").metrics), header
    assert "mae" not in table and "acc7" not in table
