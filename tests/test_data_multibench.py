"""MultiBench's affect pickles (humor.pkl -> --dataset urfunny, sarcasm.pkl -> mustard, mosi_raw.pkl -> mosi,
mosei_raw.pkl -> mosei) from files written in their layout, read as MultiBench's get_data reads them, and trained
and reported through the CLI with the binary task's metrics."""

from __future__ import annotations

import logging
import pickle
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from benchmarks.cli import run_cli
from benchmarks.data import load_dataset
from benchmarks.run import main as run_main
from tasks import get_task
from tests.mosi_fixtures import FOLDS, MODALITIES, MOSEI_FOLDS, SPLITS, _pad, _steps
from tests.test_run import TINY_CONFIG

STEPS = 50  # get_data's _glove_embeddings pads every segment to 50 words (its max_seq_len default is 50 too)
WIDTHS = {"humor": (300, 81, 371), "sarcasm": (300, 81, 371), "mosi": (300, 74, 35), "mosei": (300, 74, 713)}
DATASET = {"humor": "urfunny", "sarcasm": "mustard", "mosi": "mosi", "mosei": "mosei"}
TITLE = {"humor": "UR-FUNNY", "sarcasm": "MUStARD", "mosi": "MOSI", "mosei": "MOSEI"}
FILE = {"humor": "humor.pkl", "sarcasm": "sarcasm.pkl", "mosi": "mosi_raw.pkl", "mosei": "mosei_raw.pkl"}
TEXTLESS = {"train": [1], "valid": [], "test": [0]}  # rows written with an all-zero text


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    """No test reads the user's data paths."""
    for name in ("URFUNNY_PATH", "MUSTARD_PATH", "MOSI_PATH", "MOSEI_PATH"):
        monkeypatch.delenv(name, raising=False)


def _ids(kind: str, split: str, n: int) -> np.ndarray:
    """Segment ids as each file stores them: UR-FUNNY's numeric ids ``[N, 1]`` (get_data's ``int(vid[0])``),
    MUStARD's ``<show>_<n>`` strings, MOSI / MOSEI segment names."""
    if kind == "humor":
        return np.arange(n, dtype=np.int64).reshape(n, 1) + {"train": 1000, "valid": 5000, "test": 8000}[split]
    if kind == "sarcasm":
        return np.array([f"{split[0]}{k}_{100 + k}" for k in range(n)])
    folds = FOLDS if kind == "mosi" else MOSEI_FOLDS
    return np.array([f"{folds[split][k // 3]}_{k % 3 + 1}" for k in range(n)])


def _labels(kind: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """The stored labels: humor 0 / 1 ``[N, 1]``, sarcasm -1 / +1 ``[N, 1]``, sentiment in [-3, 3] ``[N, 1, 1]``;
    both classes in every split."""
    if kind in ("humor", "sarcasm"):
        classes = np.arange(n) % 2
        rng.shuffle(classes)
        return (classes if kind == "humor" else 2 * classes - 1).astype(np.float64).reshape(n, 1)
    return (np.round(rng.uniform(-3, 3, n) * 5) / 5).astype(np.float32).reshape(n, 1, 1)


def write_multibench(path: Path, kind: str, per_split=(6, 3, 3), seed: int = 0) -> dict:
    """A MultiBench affect pickle of ``kind`` (``humor``, ``sarcasm``, ``mosi``, ``mosei``) in get_data's layout:
    per split ``text`` ``[N, 50, 300]`` float64 (as _glove_embeddings builds it), ``audio`` / ``vision``
    ``[N, 50, width]`` float32 (``WIDTHS``), word-aligned (one real length per sample for all modalities), zero rows
    on the left, a ``-inf`` in each sample's audio (COVAREP; get_data zeroes them), ``labels``, ``id``. The rows in
    ``TEXTLESS`` have an all-zero text but real audio and vision (get_data drops them by their text alone).

    Returns per split what a loader must give: ids, labels as classes (sarcasm's -1 -> 0) or scores, the real
    steps per modality (``-inf`` -> 0), and the dropped ids."""
    rng = np.random.default_rng(seed)
    data, truth = {}, {}
    for split, n in zip(SPLITS, per_split):
        lengths = rng.integers(1, STEPS + 1, n)
        lengths[0] = STEPS  # one full-length segment
        real = {m: [_steps(rng, int(k), dim) for k in lengths] for m, dim in zip(MODALITIES, WIDTHS[kind])}
        for row in TEXTLESS[split]:
            real["text"][row][:] = 0.0
        for steps in real["audio"]:
            steps[-1, 2] = -np.inf
        ids, labels = _ids(kind, split, n), _labels(kind, rng, n)
        data[split] = {m: _pad(real[m], STEPS, dim, "left") for m, dim in zip(MODALITIES, WIDTHS[kind])}
        data[split]["text"] = data[split]["text"].astype(np.float64)
        data[split].update(labels=labels, id=ids)
        keep = [row for row in range(n) if row not in TEXTLESS[split]]
        flat = labels.reshape(n)
        truth[split] = {
            "ids": [str(ids[row, 0] if ids.ndim == 2 else ids[row]) for row in keep],
            "labels": (flat[keep] > 0).astype(np.int64) if kind in ("humor", "sarcasm") else flat[keep],
            "dropped": [str(ids[row, 0] if ids.ndim == 2 else ids[row]) for row in TEXTLESS[split]],
            **{m: [np.where(np.isfinite(real[m][row]), real[m][row], 0) for row in keep] for m in MODALITIES},
        }
    path.write_bytes(pickle.dumps(data))
    return truth


def load(kind: str, path: Path, caplog) -> tuple:
    """The dataset of ``kind``'s ``--dataset`` and the warnings logged while loading it."""
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING):
        warnings.simplefilter("ignore")
        dataset = load_dataset(DATASET[kind], path)
    return dataset, [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def assert_read_as_written(dataset, truth):
    """Ids, labels, and per modality the real steps first, zero padding after, the mask on the real steps."""
    for name, split in dataset.splits.items():
        assert split.ids == truth[name]["ids"]
        expected = torch.as_tensor(truth[name]["labels"])
        assert split.labels.dtype == expected.dtype and torch.equal(split.labels, expected)
        for x, mask, modality in zip(split.xs, split.masks, MODALITIES):
            assert x.dtype == torch.float32 and mask.dtype == torch.bool and x.shape[1] == STEPS
            for row, real in enumerate(truth[name][modality]):
                assert torch.equal(mask[row], torch.arange(STEPS) < len(real)), (name, row, modality)
                np.testing.assert_allclose(x[row, : len(real)].numpy(), real, atol=1e-6)
                assert not x[row, len(real):].any()


@pytest.mark.parametrize("kind", ["humor", "sarcasm"])
def test_humor_and_sarcasm_load_as_binary_classes(tmp_path, caplog, kind):
    path = tmp_path / FILE[kind]
    truth = write_multibench(path, kind)
    dataset, logged = load(kind, path, caplog)
    assert dataset.name == DATASET[kind] and dataset.task == "binary" and dataset.num_classes == 2
    assert dataset.dims == [300, 81, 371] and dataset.modality_names == list(MODALITIES)
    assert_read_as_written(dataset, truth)  # left padding moved after the real steps; -inf -> 0
    assert {int(v) for split in dataset.splits.values() for v in split.labels} == {0, 1}
    assert dataset.info["format"] == "multibench" and dataset.info["layout"] == f"multibench-{kind}"
    assert dataset.info["counts"] == {"train": 5, "valid": 3, "test": 2}
    assert dataset.info["dropped"] == {"train": 1, "valid": 0, "test": 1}
    assert all(p["right"] == 0 < p["left"] for p in dataset.info["padding"].values())
    dropped = [m for m in logged if "dropped" in m]
    assert dropped == [f"{TITLE[kind]} file {path} (MultiBench pickle): dropped 2 sample(s) whose text is all zero "
                       f"(train 1, valid 0, test 1; first: {truth['train']['dropped'][0]!r} of split 'train'), as "
                       f"MultiBench's get_data (drop_entry) does: they hold no word for the other modalities to align "
                       f"to"]
    split_sizes = [m for m in logged if "split sizes" in m or "split of sarcasm.pkl" in m]
    if kind == "humor":  # compared with the split MultiBench's users report
        assert len(split_sizes) == 1
        assert "5/3/2 differ from the standard UR-FUNNY split 8074/1034/1058" in split_sizes[0]
    else:  # MultiBench documents none: said once, nothing compared
        assert dataset.info["standard_split"] is None and len(split_sizes) == 1
        assert "does not document the split of sarcasm.pkl" in split_sizes[0]
        assert "-1 -> 0" in dataset.info["labels"]
    assert not [m for m in logged if "differs from" in m]  # widths and padding side are the documented ones


@pytest.mark.parametrize("kind,other", [("mosi", (1284, 229, 686)), ("mosei", (16326, 1871, 4659))])
def test_mosi_raw_and_mosei_raw_load_as_sentiment_and_say_their_split_is_not_mults(tmp_path, caplog, kind, other):
    path = tmp_path / FILE[kind]
    truth = write_multibench(path, kind)
    dataset, logged = load(kind, path, caplog)
    assert dataset.name == kind and dataset.task == "sentiment" and dataset.dims == list(WIDTHS[kind])
    assert_read_as_written(dataset, truth)
    assert dataset.info["format"] == "multibench" and dataset.info["layout"] == f"multibench-{kind}"
    assert dataset.info["dropped"] == {"train": 1, "valid": 0, "test": 1}
    note = [m for m in logged if "not comparable" in m]
    assert len(note) == 1 and f"{FILE[kind]} splits {kind.upper()} " in note[0]
    assert " / ".join(map(str, other)) in note[0]
    split_sizes = [m for m in logged if "split sizes" in m]
    if kind == "mosi":  # compared with MultiBench's MOSI split, not MulT's
        assert len(split_sizes) == 1 and "standard MOSI split 1283/214/686" in split_sizes[0]
    else:
        assert split_sizes == [] and dataset.info["standard_split"] is None


def test_a_folder_and_the_environment_find_the_pickle(tmp_path, monkeypatch, caplog):
    write_multibench(tmp_path / "humor.pkl", "humor")
    monkeypatch.setenv("URFUNNY_PATH", str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = load_dataset("urfunny")
    assert dataset.info["path"] == str(tmp_path / "humor.pkl")


def test_a_label_that_is_not_a_class_is_named(tmp_path, capsys):
    path = tmp_path / "humor.pkl"
    write_multibench(path, "humor")
    data = pickle.loads(path.read_bytes())
    data["valid"]["labels"][2, 0] = 2.0  # 0 / 1 / 2: not humor's coding, but nothing else's either
    path.write_bytes(pickle.dumps(data))
    status = run_cli(run_main, ["--fusions", "concat", "--dataset", "urfunny", "--data-path", str(path), "--seeds",
                                "1", "--epochs", "1", "--device", "cpu", "--quiet", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: UR-FUNNY file {path} (MultiBench pickle): split 'valid' has 1 label(s) that are "
                             f"not whole class numbers in [0, 1] (first: 2.0"), err[0]


@pytest.mark.parametrize("kind", ["humor", "sarcasm"])
def test_two_fusions_train_one_epoch_and_the_report_has_the_binary_metrics(tmp_path, capsys, kind):
    path = tmp_path / FILE[kind]
    write_multibench(path, kind, per_split=(16, 8, 8))
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_CONFIG)
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        status = run_cli(run_main, ["--fusions", "grf,concat", "--dataset", DATASET[kind], "--data-path", str(path),
                                    "--seeds", "1", "--epochs", "1", "--config", str(config), "--device", "cpu",
                                    "--quiet", "--out", str(out)])
    assert status == 0, capsys.readouterr().err
    runs = pd.read_csv(out / "runs.csv")
    assert sorted(runs.fusion) == ["concat", "grf"] and set(runs.dataset) == {DATASET[kind]}
    assert set(runs.status) == {"done"} and runs[["n_train", "n_valid", "n_test"]].iloc[0].tolist() == [15, 8, 7]
    assert {"accuracy", "f1", "f1_weighted"} <= set(runs.columns)
    assert not {"mae", "corr", "acc2_has0", "acc7"} & set(runs.columns)
    assert runs["accuracy"].between(0, 1).all() and runs["f1_weighted"].between(0, 1).all()
    for name in ("comparison.md", "per_seed.md"):
        table = (out / "report" / "tables" / name).read_text().splitlines()
        headers = [{cell.split()[0] for cell in line.split("|") if cell.strip()}  # "accuracy ↑" -> "accuracy"
                   for line in table if line.startswith("| fusion")]
        assert headers and all({"accuracy", "f1", "f1_weighted"} <= header for header in headers), name
        assert not any(set(get_task("sentiment").metrics) & header for header in headers), name
