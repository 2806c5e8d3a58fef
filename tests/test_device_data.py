"""Training data on the device once per split (``benchmarks.train.Batches``): on CUDA a split that fits is copied
once and gathered there; a larger one is copied per batch through pinned memory; CPU batches are unchanged."""

from __future__ import annotations

import pytest
import torch

from benchmarks import train
from benchmarks.data import make_synthetic

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _split():
    return make_synthetic(sizes=(40, 8, 8), dims=[6, 3, 2], seq_lens=[7, 5, 4]).train


def test_a_split_fits_when_it_takes_at_most_the_share_of_free_memory(monkeypatch):
    split = _split()
    size = sum(t.nbytes for t in (*split.xs, *split.masks, split.labels))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (int(size / train.DEVICE_SHARE), 10 * size))
    assert train._fits_on_device(split, torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (int(size / train.DEVICE_SHARE) - 8, 10 * size))
    assert not train._fits_on_device(split, torch.device("cuda"))


def test_cpu_batches_are_the_split_rows_trimmed_to_the_longest():
    split = _split()
    batches = train.Batches(split, torch.device("cpu"))
    index = torch.tensor([3, 0, 5])
    xs, masks, labels = batches.gather(index)
    for x, mask, full_x, full_mask in zip(xs, masks, split.xs, split.masks):
        steps = int(full_mask[index].sum(1).max())
        assert torch.equal(x, full_x[index, :steps]) and torch.equal(mask, full_mask[index, :steps])
    assert torch.equal(labels, split.labels[index])


@pytest.mark.cuda
@needs_cuda
def test_cuda_holds_the_split_on_the_device_and_gathers_the_same_batches():
    split = _split()
    on_device = train.Batches(split, torch.device("cuda"))
    assert not on_device.pin and all(x.is_cuda for x in on_device.split.xs) and on_device.split.labels.is_cuda
    index = torch.tensor([3, 0, 5])
    expected = train.Batches(split, torch.device("cpu")).gather(index)
    got = on_device.gather(index)
    for a, b in zip([*expected[0], *expected[1], expected[2]], [*got[0], *got[1], got[2]]):
        assert b.is_cuda and torch.equal(a, b.cpu())
