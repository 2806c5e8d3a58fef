"""What every MOSI format shares once read: padding moved after the real steps, masks, non-finite values, checks.

A format reader turns its file into one ``RawSplit`` per split: per modality the padded array as stored
(``[N, time, dim]``, any float dtype, non-finite values allowed), how many steps of each sample are real and on
which side the padding sits. ``build_mosi`` turns the three splits into the ``Dataset`` every loader returns:

* real steps first and zero padding after, bool masks (True = real step), float32;
* non-finite feature values (the ``-inf`` in COVAREP audio, NaN) replaced by 0, with ONE warning that gives the
  count per modality;
* every sample keeps at least one real step per modality: a sample with no real step (an all-zero modality) gets
  its first step marked real, with zero features; ``info["empty"]`` counts them per modality;
* checks that fail with a one-line ``DataError``: an empty split, labels that are non-finite or outside
  [-3, 3], a feature size that differs between splits;
* ``info``: format, path, split counts (also logged, with a warning when they are not the standard
  1284 / 229 / 686), replaced values and empty samples per modality.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ..dataset import SPLITS, DataError, Dataset, Split

logger = logging.getLogger(__name__)

MODALITIES = ("text", "audio", "vision")
STANDARD_COUNTS = {"train": 1284, "valid": 229, "test": 686}
LABEL_RANGE = (-3.0, 3.0)


@dataclass
class RawModality:
    """One modality of one split as stored. ``x``: ``[N, time, dim]``; ``lengths``: ``[N]`` number of real steps;
    ``left``: ``[N]`` bool, True where the padding comes before the real steps (left padding)."""

    x: np.ndarray
    lengths: np.ndarray
    left: np.ndarray


@dataclass
class RawSplit:
    """One split as read: ``modalities`` maps text / audio / vision to ``RawModality``; ``labels``: ``[N]``
    sentiment in [-3, 3]; ``ids``: N segment ids ``video_clip``."""

    modalities: dict[str, RawModality]
    labels: np.ndarray
    ids: list[str]


def zero_row_lengths(x: np.ndarray, side: str) -> RawModality:
    """Real lengths of ``x`` ``[N, time, dim]`` whose padding is all-zero rows, for a file that stores no lengths.

    ``side="left"``: the padding comes first, real steps run from the first non-zero row to the end (zero rows
    inside a sequence stay real). ``side="auto"``: per sample, left padding when there are leading zero rows and
    no trailing ones, right padding otherwise. A row holding a non-finite value is not a zero row.
    """
    zero = ~(x != 0).any(axis=-1)  # [N, time]
    steps = x.shape[1]
    lead = np.cumprod(zero, axis=1).sum(axis=1)
    if side == "left":
        return RawModality(x, steps - lead, np.ones(len(x), dtype=bool))
    trail = np.cumprod(zero[:, ::-1], axis=1).sum(axis=1)
    left = (lead > 0) & (trail == 0)
    return RawModality(x, np.where(left, steps - lead, steps - trail), left)


def padding_side(x: np.ndarray, lengths: np.ndarray) -> RawModality:
    """``x`` ``[N, time, dim]`` with stored real ``lengths`` ``[N]``: per sample, left padding when the first
    ``time - length`` rows are all zero and the last ``time - length`` are not; right padding otherwise."""
    zero = ~(x != 0).any(axis=-1)
    steps = np.arange(x.shape[1])
    right_ok = (zero | (steps < lengths[:, None])).all(axis=1)
    left_ok = (zero | (steps >= x.shape[1] - lengths[:, None])).all(axis=1)
    return RawModality(x, lengths, left_ok & ~right_ok)


def build_mosi(raw: dict[str, RawSplit], where: str, info: dict) -> Dataset:
    """The MOSI ``Dataset`` from the three raw splits. ``where`` names the source in error messages
    (e.g. ``"MOSI file /data/mosi_data.pkl (MulT pickle)"``); ``info`` (format, path, ...) is extended."""
    _check(raw, where)
    replaced = {m: {} for m in MODALITIES}
    empty = dict.fromkeys(MODALITIES, 0)
    splits = {name: _to_split(raw[name], replaced, empty) for name in SPLITS}
    counts = {name: len(raw[name].labels) for name in SPLITS}
    _warn_replaced(replaced, where)
    standard = counts == STANDARD_COUNTS
    info = {
        **info, "counts": counts, "standard_split": standard,
        "nonfinite_replaced": {m: sum(kinds.values()) for m, kinds in replaced.items()}, "empty": empty,
    }
    logger.info("%s: train %d, valid %d, test %d segments", where, *counts.values())
    if not standard:
        logger.warning("%s: split sizes %s differ from the standard MOSI split %s (an incomplete file?)",
                       where, "/".join(map(str, counts.values())), "/".join(map(str, STANDARD_COUNTS.values())))
    return Dataset(name="mosi", **splits, modality_names=list(MODALITIES), task="regression", info=info)


def _check(raw: dict[str, RawSplit], where: str) -> None:
    low, high = LABEL_RANGE
    for name in SPLITS:
        split = raw[name]
        if len(split.labels) == 0:
            raise DataError(f"{where}: split {name!r} is empty; expected segments "
                            f"(the standard split has {STANDARD_COUNTS[name]})")
        labels = np.asarray(split.labels, dtype=np.float64)
        bad = ~np.isfinite(labels) | (labels < low) | (labels > high)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise DataError(f"{where}: split {name!r} has {int(bad.sum())} label(s) that are non-finite or outside "
                            f"[{low:g}, {high:g}] (first: {labels[first]} for segment {split.ids[first]!r}); "
                            f"expected sentiment scores in [{low:g}, {high:g}]")
        for modality in MODALITIES:
            dim, train_dim = split.modalities[modality].x.shape[-1], raw["train"].modalities[modality].x.shape[-1]
            if dim != train_dim:
                raise DataError(f"{where}: modality {modality!r} has {dim} features in split {name!r} but "
                                f"{train_dim} in 'train'; every split must have the same feature size")


def _to_split(raw: RawSplit, replaced: dict[str, dict[str, int]], empty: dict[str, int]) -> Split:
    xs, masks = [], []
    for modality in MODALITIES:
        x, mask, empties = _real_first(raw.modalities[modality], replaced[modality])
        xs.append(x)
        masks.append(mask)
        empty[modality] += empties
    labels = torch.as_tensor(np.asarray(raw.labels, dtype=np.float32))
    return Split(xs=xs, masks=masks, labels=labels, ids=list(raw.ids))


def _real_first(raw: RawModality, replaced: dict[str, int]) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``[N, time, dim]`` float32 with the real steps first and zeros after, its mask, and how many samples had no
    real step (their first step is marked real, with zero features). Counts non-finite values into ``replaced``."""
    x = np.array(raw.x, dtype=np.float32)  # a copy: the caller's array is left as read
    bad = ~np.isfinite(x)
    if bad.any():
        for kind, hit in (("nan", np.isnan(x)), ("+inf", np.isposinf(x)), ("-inf", np.isneginf(x))):
            if count := int(hit.sum()):
                replaced[kind] = replaced.get(kind, 0) + count
        x[bad] = 0.0
    steps = np.arange(x.shape[1])
    lengths = np.clip(np.asarray(raw.lengths, dtype=np.int64), 0, x.shape[1])
    start = np.where(np.asarray(raw.left, dtype=bool), x.shape[1] - lengths, 0)
    order = (steps + start[:, None]) % x.shape[1]  # rotate left padding to the end
    x = np.take_along_axis(x, order[..., None], axis=1)
    x[steps >= lengths[:, None]] = 0.0
    mask = steps < np.maximum(lengths, 1)[:, None]
    return torch.from_numpy(x), torch.from_numpy(mask), int((lengths == 0).sum())


def _warn_replaced(replaced: dict[str, dict[str, int]], where: str) -> None:
    parts = [
        f"{modality} {sum(kinds.values())} ({', '.join(f'{kind} {n}' for kind, n in kinds.items())})"
        for modality, kinds in replaced.items() if kinds
    ]
    if parts:
        total = sum(sum(kinds.values()) for kinds in replaced.values())
        warnings.warn(f"{where}: replaced {total} non-finite feature values by 0: {'; '.join(parts)}",
                      RuntimeWarning, stacklevel=4)
