"""Memory of loading your own data (``--dataset arrays``; issue 15, "Memory and speed on real sizes"): an NPZ
folder, an HDF5 file and ``from_arrays`` of a 109 MB set allocate at most 1.5 times its arrays (the caller's own
arrays not counted), give the values the sample-by-sample reference gives and leave the caller's arrays as they
were; the work in chunks of samples gives the same dataset and warnings whatever the chunk size; a damaged file is
one error line."""

from __future__ import annotations

import hashlib
import tracemalloc
import warnings

import h5py
import numpy as np
import pytest
import torch

from benchmarks.data import DataError, load_dataset
from benchmarks.data.affect import prepare
from benchmarks.data.arrays import from_arrays
from tests.test_data_arrays import declaration, expected_modality, layout, load_quietly, write_folder, write_h5

BIG_SIZES = {"train": 640, "valid": 80, "test": 80}
BIG_SHAPES = {"video": (50, 640, np.float32), "audio": (40, 48, np.float32), "gaze": (10, 8, np.float64)}
DECLARED = {"task": "binary", "name": "big", "modalities": list(BIG_SHAPES)}


def big_layout(seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """109 MB over the three splits (800 samples), most of it one modality of the train split, as with a large
    video feature: ``video`` float32 ``[N, 50, 640]`` left-padded (``mask_video``; every fifth sample with gaps
    too) with NaN / -inf at a few real steps; ``audio`` float32 ``[N, 40, 48]`` with ``lengths_audio`` and NaN in
    its padding; ``gaze`` float64 ``[N, 10, 8]`` with one -FLT_MAX per split; binary labels; string ids."""
    rng = np.random.default_rng(seed)
    splits = {}
    for split, n in BIG_SIZES.items():
        xs = {m: rng.standard_normal((n, steps, dim), dtype=dtype) for m, (steps, dim, dtype) in BIG_SHAPES.items()}
        steps = BIG_SHAPES["video"][0]
        mask = np.arange(steps) >= steps - rng.integers(1, steps + 1, n)[:, None]  # left padding
        mask[::5, 1:-1] = np.arange(steps - 2) % 2 == 0  # gaps
        xs["video"] *= mask[..., None]
        xs["video"][:7, -1, 0] = np.nan  # the last step is real
        xs["video"][7:10, -1, 1] = -np.inf
        lengths = rng.integers(1, BIG_SHAPES["audio"][0] + 1, n)
        xs["audio"][np.arange(BIG_SHAPES["audio"][0]) >= lengths[:, None]] = np.nan
        xs["gaze"][n // 2, 3, 4] = -3.4e38
        splits[split] = {
            **{f"x_{m}": x for m, x in xs.items()}, "mask_video": mask, "lengths_audio": lengths,
            "labels": rng.integers(0, 2, n), "ids": np.array([f"{split}-{row:04d}" for row in range(n)]),
        }
    return splits


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """The arrays, an NPZ folder and an HDF5 file holding them."""
    splits = big_layout()
    root = tmp_path_factory.mktemp("big")
    return splits, write_folder(root / "folder", splits, DECLARED), write_h5(root / "big.h5", splits, DECLARED)


def _digest(splits: dict) -> str:
    hasher = hashlib.blake2b()
    for arrays in splits.values():
        for value in arrays.values():
            hasher.update(value.tobytes())
    return hasher.hexdigest()


def _load(splits, folder, h5, source):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if source == "from_arrays":
            dataset = from_arrays(splits, "binary", modalities=DECLARED["modalities"], name="big")
        else:
            dataset = load_dataset("arrays", folder if source == "npz" else h5)
    return dataset, [str(w.message) for w in caught]


@pytest.mark.parametrize("source", ["npz", "hdf5", "from_arrays"])
def test_loading_peaks_under_one_and_a_half_times_the_arrays(big, source):
    """Traced allocations (numpy's included) while loading; the arrays the test holds were made before."""
    splits, folder, h5 = big
    arrays = sum(value.nbytes for split in splits.values() for value in split.values())
    before = _digest(splits)
    tracemalloc.start()
    try:
        dataset, messages = _load(splits, folder, h5, source)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= 1.5 * arrays, f"{source}: peak {peak / arrays:.2f}x the arrays' {arrays / 1e6:.0f} MB"
    assert _digest(splits) == before  # from_arrays left the caller's arrays as they were
    for split, given in splits.items():
        loaded = getattr(dataset, split)
        reals = {"video": given["mask_video"],
                 "audio": np.arange(BIG_SHAPES["audio"][0]) < given["lengths_audio"][:, None],
                 "gaze": np.ones(given["x_gaze"].shape[:2], dtype=bool)}
        for i, modality in enumerate(dataset.modality_names):
            x, mask = expected_modality(given[f"x_{modality}"], reals[modality])
            assert np.array_equal(loaded.masks[i].numpy(), mask), (split, modality)
            assert np.array_equal(loaded.xs[i].numpy(), x), (split, modality)
    assert dataset.info["nonfinite_replaced"] == {"video": 30, "audio": 0, "gaze": 0}  # NaN padding is padding
    assert dataset.info["extreme"] == {"video": 0, "audio": 0, "gaze": 3}
    assert messages[0].endswith(": replaced 30 non-finite feature values by 0: video 30 (nan 21, -inf 9)")


def _values_layout() -> dict:
    """The test layout of ``test_data_arrays`` with non-finite values at real steps, -inf in the first sample of
    train and NaN in the second (so a count made per chunk would list them in another order), and an extreme
    value."""
    splits = layout("binary")
    splits["train"]["x_eeg"][0, 0, 0] = -np.inf
    splits["train"]["x_eeg"][1, 0, 1] = np.nan
    splits["valid"]["x_eeg"][2, 0, 0] = np.inf
    splits["test"]["x_gaze"] = splits["test"]["x_gaze"].astype(np.float64)
    splits["test"]["x_gaze"][3, 1] = 2e9
    for arrays in splits.values():
        arrays["extra_aux"] = np.arange(len(arrays["labels"]) * 6, dtype=np.int32).reshape(-1, 2, 3)
    return splits


def _write(tmp_path, splits, source):
    if source == "npz-compressed":
        folder = tmp_path / "data"
        folder.mkdir()
        for split, arrays in splits.items():
            np.savez_compressed(folder / f"{split}.npz", **arrays)
        (folder / "dataset.json").write_text('{"task": "binary", "modalities": ["video", "eeg", "gaze"]}')
        return folder
    if source == "hdf5-gzip":
        with h5py.File(tmp_path / "data.h5", "w") as handle:
            handle.attrs.update(task="binary", modalities=["video", "eeg", "gaze"])
            for split, arrays in splits.items():
                group = handle.create_group(split)
                for key, value in arrays.items():
                    group.create_dataset(key, data=value.astype("S") if value.dtype.kind == "U" else value,
                                         compression="gzip", fletcher32=True,
                                         chunks=(3, *value.shape[1:]))
        return tmp_path / "data.h5"
    if source == "npz-fortran":  # not stored sample by sample: read whole
        splits = {split: {k: np.asfortranarray(v) for k, v in arrays.items()} for split, arrays in splits.items()}
    return write_folder(tmp_path / "data", splits, {"task": "binary", "modalities": ["video", "eeg", "gaze"]})


@pytest.mark.parametrize("source", ["npz", "npz-compressed", "npz-fortran", "hdf5-gzip", "from_arrays"])
def test_chunks_of_one_sample_give_the_same_dataset_and_warnings(tmp_path, monkeypatch, source):
    splits = _values_layout()
    path = None if source == "from_arrays" else _write(tmp_path, splits, source)

    def load():
        if path is not None:
            return load_quietly(path)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            return from_arrays(splits, "binary", modalities=["video", "eeg", "gaze"]), [str(w.message)
                                                                                         for w in caught]

    whole, whole_messages = load()
    monkeypatch.setattr(prepare, "CHUNK_VALUES", 1)  # one sample per chunk
    chunked, chunked_messages = load()
    assert chunked_messages == whole_messages and any("eeg 3 (nan 1, -inf 1, +inf 1)" in m for m in whole_messages)
    assert chunked.info == whole.info and whole.info["extreme"]["gaze"] == 1
    for split in ("train", "valid", "test"):
        a, b = getattr(whole, split), getattr(chunked, split)
        assert all(torch.equal(x, y) for x, y in zip(a.xs + a.masks, b.xs + b.masks))
        assert torch.equal(a.extras["aux"], b.extras["aux"]) and a.extras["aux"].dtype == torch.float32
        assert torch.equal(a.extras["aux"], torch.from_numpy(splits[split]["extra_aux"].astype(np.float32)))


def test_a_damaged_npz_member_is_one_error_line(tmp_path):
    splits = layout("binary")
    folder = write_folder(tmp_path / "data", splits, declaration("binary"))
    archive = folder / "train.npz"
    data = bytearray(archive.read_bytes())
    at = data.find(splits["train"]["x_video"][4].tobytes()[:12])  # inside x_video's values
    assert at > 0
    data[at] ^= 0x01
    archive.write_bytes(bytes(data))
    with pytest.raises(DataError) as caught:
        load_quietly(folder)
    text = str(caught.value)
    assert "\n" not in text and text.startswith(
        f"{archive}: key 'x_video' cannot be read (Bad CRC-32 for file 'x_video.npy'); expected"), text


def test_a_damaged_hdf5_dataset_is_one_error_line(tmp_path):
    splits = layout("binary")
    path = _write(tmp_path, splits, "hdf5-gzip")
    with h5py.File(path, "r") as handle:
        info = handle["valid/x_eeg"].id.get_chunk_info(0)
    data = bytearray(path.read_bytes())
    data[info.byte_offset + info.size // 2: info.byte_offset + info.size // 2 + 4] = b"\xff\x00\xff\x00"
    path.write_bytes(bytes(data))
    with pytest.raises(DataError) as caught:
        load_quietly(path)
    text = str(caught.value)
    assert "\n" not in text and text.startswith(f"{path} group 'valid': key 'x_eeg' cannot be read ("), text
    assert "expected" in text
