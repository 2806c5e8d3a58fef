"""The synthetic generator: MOSI shapes and sizes, seeding, and a signal that only fusion can fully recover."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from benchmarks.data import DataError, load_dataset, make_synthetic


@pytest.fixture(scope="module")
def default():
    return load_dataset("synthetic")


def test_default_has_mosi_shapes_and_sizes(default):
    assert default.modality_names == ["text", "audio", "vision"]
    assert default.dims == [300, 5, 20]
    assert [len(s) for s in default.splits.values()] == [1284, 229, 686]
    for split in default.splits.values():
        assert [tuple(x.shape[1:]) for x in split.xs] == [(50, 300), (50, 5), (50, 20)]
        assert all(x.dtype == torch.float32 for x in split.xs)
        assert split.labels.min() >= -3 and split.labels.max() <= 3


def test_padding_after_real_steps(default):
    for x, mask in zip(default.train.xs, default.train.masks):
        lengths = mask.sum(1)
        assert torch.equal(mask, torch.arange(mask.shape[1]) < lengths[:, None])  # real steps first
        assert (x[~mask] == 0).all()
        assert lengths.min() >= 3 and lengths.max() == 50 and lengths.float().std() > 5


def test_seeding():
    a, b, c = (make_synthetic(sizes=(20, 5, 5), seed=s) for s in (1, 1, 2))
    for x, y in zip(a.train.xs, b.train.xs):
        assert torch.equal(x, y)
    assert torch.equal(a.test.labels, b.test.labels)
    assert not torch.equal(a.train.labels, c.train.labels)


def test_any_number_of_modalities():
    data = make_synthetic(n_modalities=6, dims=[4, 5, 6, 7, 8, 9], seq_lens=[5, 6, 7, 8, 9, 10], sizes=(10, 4, 4))
    assert data.dims == [4, 5, 6, 7, 8, 9]
    assert [x.shape[1] for x in data.test.xs] == [5, 6, 7, 8, 9, 10]
    assert data.modality_names == [f"m{i}" for i in range(6)]
    with pytest.raises(DataError, match="at least 2 modalities"):
        make_synthetic(n_modalities=1)


def _binned_oracle_mae(train_keys, train_y, test_keys, test_y, bins=12) -> float:
    """MAE of the per-cell median of y, cells from quantile bins of the continuous key and the switch."""
    edges = np.quantile(train_keys[:, 0], np.linspace(0, 1, bins + 1)[1:-1])

    def cell(keys):
        return np.digitize(keys[:, 0], edges) * 2 + (keys[:, 1] > 0)

    train_cell, test_cell = cell(train_keys), cell(test_keys)
    medians = {c: np.median(train_y[train_cell == c]) for c in np.unique(train_cell)}
    prediction = np.array([medians.get(c, np.median(train_y)) for c in test_cell])
    return float(np.abs(prediction - test_y).mean())


def test_true_signal_beats_every_single_modality_and_additive_model():
    data = make_synthetic(sizes=(20000, 10, 5000), dims=[4, 4, 4], seq_lens=4)
    train, test = data.train, data.test
    oracle = float((test.labels - test.extras["signal"]).abs().mean())
    assert oracle == pytest.approx(data.info["reference_mae"]["test"]["oracle"])
    assert oracle == pytest.approx(0.5 * math.sqrt(2 / math.pi), abs=0.03)
    y_train, y_test = train.labels.numpy(), test.labels.numpy()
    for i in range(3):
        train_keys = np.stack([train.extras["evidence"][:, i], train.extras["switch"][:, i]], 1)
        test_keys = np.stack([test.extras["evidence"][:, i], test.extras["switch"][:, i]], 1)
        single = _binned_oracle_mae(train_keys, y_train, test_keys, y_test)
        assert single > oracle + 0.3, f"modality {i} alone reaches {single:.3f} vs oracle {oracle:.3f}"
    # The best additive model in the latents (least squares on e_i and s_i, all modalities) misses the
    # interaction term.
    design = lambda s: np.column_stack([s.extras["evidence"], s.extras["switch"], np.ones(len(s))])  # noqa: E731
    coef, *_ = np.linalg.lstsq(design(train), y_train, rcond=None)
    additive = float(np.abs(design(test) @ coef - y_test).mean())
    assert additive > oracle + 0.15
    assert additive == pytest.approx(data.info["reference_mae"]["test"]["additive"], abs=1e-4)
    assert data.info["reference_mae"]["test"]["constant"] > additive + 0.15
