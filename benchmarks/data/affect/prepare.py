"""What every distributed format of the affect corpora shares once read: padding moved after the real steps, masks,
suspect values, checks.

A format reader turns its file into one ``RawSplit`` per split: per modality the padded array as stored
(``[N, time, dim]``, any float dtype, non-finite values allowed), how many steps of each sample are real and on
which side the padding sits. A reader whose file does not say the side gives ``Padded`` arrays to
``settle_padding`` (the rule is in its docstring). ``build_dataset`` turns the three splits into the ``Dataset``
every loader returns (MOSI's, MOSEI's, ..., which differ only in the ``Corpus`` facts: name, task and label range,
standard split sizes, where the data is found):

* real steps first and zero padding after, bool masks (True = real step), float32;
* non-finite feature values (the ``-inf`` in COVAREP audio, NaN) replaced by 0, with ONE warning that gives the
  count per modality;
* finite feature values of magnitude above ``EXTREME_MAGNITUDE`` (1e6) kept as read, with one warning per
  modality giving their count, the largest magnitude and the threshold. No distributed MOSI feature comes near
  1e6 (GloVe and BERT values stay below 100, COVAREP below 1e3, Facet and OpenFace, pixel coordinates included,
  below 1e4), while the sentinels some tools write for a missing value (-FLT_MAX = -3.4e38 instead of ``-inf``,
  1e10, 1e30) are far above it; such a value makes training diverge;
* every sample keeps at least one real step per modality: a sample with no real step (an all-zero modality) gets
  its first step marked real, with zero features; ``info["empty"]`` counts them per modality;
* checks that fail with a one-line ``DataError``: an empty split, labels that are non-finite or outside the
  corpus's range (MOSI's [-3, 3]) or, for a classification task, not whole class numbers, a feature size that
  differs between splits;
* ``info``: format, path, split counts (also logged, with a one-line warning when they are not the corpus's
  standard split, MOSI's 1284 / 229 / 686, MOSEI's 16326 / 1871 / 4659), per modality the replaced values
  (``nonfinite_replaced``), the extreme values (``extreme``), the empty samples (``empty``) and the samples read
  as padded on each side (``padding``: ``{"left": n, "right": n}``; samples with no padding or no real step count
  in neither).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from tasks import get_task

from ..dataset import SPLITS, DataError, Dataset, Split

logger = logging.getLogger(__name__)

MODALITIES = ("text", "audio", "vision")
LABEL_RANGE = (-3.0, 3.0)
EXTREME_MAGNITUDE = 1e6  # finite feature values beyond it are warned about (see the module docstring)


@dataclass(frozen=True)
class Corpus:
    """What tells one dataset read by these readers from another (MOSI, MOSEI, ...). ``name``: the ``--dataset``
    value and ``Dataset.name``; ``title``: the dataset as named in messages; ``standard``: the documented split
    sizes (train / valid / test), a file that differs is read with one warning; ``env``: the environment variable
    read when no path is given; ``pickle_names``: the pickles a data folder may hold; ``accepted`` / ``sources``:
    the accepted formats and where they are distributed, as said in error messages. ``task``: the registered task
    of its labels; ``label_range``: the closed range every label lies in (for a classification task, the class
    numbers ``0..K-1``); ``label_words``: the labels as named in messages."""

    name: str
    title: str
    standard: dict[str, int]
    env: str
    pickle_names: tuple[str, ...]
    accepted: str
    sources: str
    task: str = "sentiment"
    label_range: tuple[float, float] = LABEL_RANGE
    label_words: str = "sentiment scores"


@dataclass
class RawModality:
    """One modality of one split as stored. ``x``: ``[N, time, dim]``; ``lengths``: ``[N]`` number of real steps;
    ``left``: ``[N]`` bool, True where the padding comes before the real steps (left padding)."""

    x: np.ndarray
    lengths: np.ndarray
    left: np.ndarray


@dataclass
class RawSplit:
    """One split as read: ``modalities`` maps text / audio / vision to ``RawModality``; ``labels``: ``[N]`` in the
    corpus's label range; ``ids``: N segment ids ``video_clip``; ``extras``: further per-sample arrays ``[N, ...]``
    kept in ``Split.extras`` (e.g. CH-SIMS's unimodal labels)."""

    modalities: dict[str, RawModality]
    labels: np.ndarray
    ids: list[str]
    extras: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Padded:
    """One modality of one split of a file that does not store the padding side. ``x``: ``[N, time, dim]``;
    ``lengths_left`` / ``lengths_right``: ``[N]`` real steps if the sample is padded on the left / on the right;
    ``votes``: ``[N]`` int8, +1 where the sample's own rows show left padding, -1 right padding, 0 where they do
    not tell (see ``settle_padding``)."""

    x: np.ndarray
    lengths_left: np.ndarray
    lengths_right: np.ndarray
    votes: np.ndarray


def zero_row_padding(x: np.ndarray) -> Padded:
    """``x`` ``[N, time, dim]`` padded with all-zero rows and no stored lengths. Left padding: the real steps run
    from the first non-zero row to the end; right padding: from the start to the last non-zero row (zero rows
    inside a sequence stay real). A sample votes for the side where its zero rows are: left when it has leading
    zero rows and no trailing ones, right in the mirror case; none when it has zero rows at both ends (then one
    end holds real all-zero steps), at neither end (no padding) or only zero rows (no real step). A row holding a
    non-finite value is not a zero row."""
    zero = ~(x != 0).any(axis=-1)  # [N, time]
    lead = np.cumprod(zero, axis=1).sum(axis=1)
    trail = np.cumprod(zero[:, ::-1], axis=1).sum(axis=1)
    votes = ((lead > 0) & (trail == 0)).astype(np.int8) - ((trail > 0) & (lead == 0)).astype(np.int8)
    return Padded(x, x.shape[1] - lead, x.shape[1] - trail, votes)


def stored_padding(x: np.ndarray, lengths: np.ndarray) -> Padded:
    """``x`` ``[N, time, dim]`` with stored real ``lengths`` ``[N]`` (e.g. MMSA's ``audio_lengths``). A sample votes
    left when its first ``time - length`` rows are all zero and its last ``time - length`` are not, right in the
    mirror case; none when both or neither are all zero."""
    zero = ~(x != 0).any(axis=-1)
    steps = np.arange(x.shape[1])
    right_ok = (zero | (steps < lengths[:, None])).all(axis=1)
    left_ok = (zero | (steps >= x.shape[1] - lengths[:, None])).all(axis=1)
    votes = (left_ok & ~right_ok).astype(np.int8) - (right_ok & ~left_ok).astype(np.int8)
    return Padded(x, lengths, lengths, votes)


def settle_padding(parts: dict[str, Padded], ids: dict[str, list[str]], where: str,
                   modality: str) -> dict[str, RawModality]:
    """The side and real lengths of every sample of one modality over a file's splits (``parts`` and ``ids`` by
    split name; ``where`` and ``modality`` name the source in the error).

    A sample whose rows vote for a side is read on that side (per sample, so a file may mix sides). A sample
    whose rows do not tell takes the side most voting samples of this modality in the file show: in a
    left-padded file a sample with zero rows at both ends keeps its trailing all-zero steps (a silent last frame)
    as real steps. When the reading of such a sample depends on the side and the votes are tied (none at all,
    e.g. every other sequence is full length), ``DataError``. All-zero rows next to the padding cannot be told
    from it and are read as padding (they carry no feature value; the mask drops them).
    """
    votes = np.concatenate([part.votes for part in parts.values()])
    left_votes, right_votes = int((votes > 0).sum()), int((votes < 0).sum())
    settled, unknown = {}, []
    for name, part in parts.items():
        undecided = part.votes == 0
        same = (part.lengths_left == part.lengths_right) & (
            (part.lengths_left == 0) | (part.lengths_left == part.x.shape[1]))
        unknown += [(name, int(row)) for row in np.flatnonzero(undecided & ~same)]
        left = np.where(undecided, left_votes > right_votes, part.votes > 0)
        settled[name] = RawModality(part.x, np.where(left, part.lengths_left, part.lengths_right), left)
    if unknown and left_votes == right_votes:
        name, row = unknown[0]
        raise DataError(
            f"{where}: modality {modality!r}: the padding side of {len(unknown)} sample(s) cannot be told from their "
            f"rows (first: segment {ids[name][row]!r} of split {name!r}: zero rows at both ends, or a stored length "
            f"that fits both ends or neither) nor from the other samples (left-padded {left_votes}, right-padded "
            f"{right_votes}); expected every sequence of a modality padded with zero rows on one side")
    return settled


@dataclass
class _Found:
    """What ``_real_first`` finds in one modality over the splits: non-finite values replaced (count per kind:
    nan, +inf, -inf), extreme finite values (count, largest magnitude), samples with no real step, samples read
    as padded on the left / right."""

    nonfinite: dict[str, int] = field(default_factory=dict)
    extreme: int = 0
    largest: float = 0.0
    empty: int = 0
    left: int = 0
    right: int = 0


def build_dataset(raw: dict[str, RawSplit], where: str, info: dict, corpus: Corpus) -> Dataset:
    """The ``corpus``'s ``Dataset`` (task ``corpus.task``) from the three raw splits. ``where`` names the source in
    error messages and warnings (e.g. ``"MOSI file /data/mosi_data.pkl (MulT pickle)"``); ``info`` (format, path,
    ...) is extended. Raises ``DataError`` (one line) for the failed checks of the module docstring."""
    _check(raw, where, corpus)
    found = {m: _Found() for m in MODALITIES}
    classification = get_task(corpus.task).kind == "classification"
    splits = {name: _to_split(raw[name], found, classification) for name in SPLITS}
    counts = {name: len(raw[name].labels) for name in SPLITS}
    _warn(found, where)
    standard = counts == corpus.standard
    info = {
        **info, "counts": counts, "standard_split": standard,
        "nonfinite_replaced": {m: sum(f.nonfinite.values()) for m, f in found.items()},
        "extreme": {m: f.extreme for m, f in found.items()}, "empty": {m: f.empty for m, f in found.items()},
        "padding": {m: {"left": f.left, "right": f.right} for m, f in found.items()},
    }
    logger.info("%s: train %d, valid %d, test %d segments", where, *counts.values())
    if not standard:
        logger.warning("%s: split sizes %s differ from the standard %s split %s (an incomplete file?); read as "
                       "they are", where, "/".join(map(str, counts.values())), corpus.title,
                       "/".join(map(str, corpus.standard.values())))
    num_classes = int(corpus.label_range[1]) + 1 if classification else None
    return Dataset(name=corpus.name, **splits, modality_names=list(MODALITIES), task=corpus.task,
                   num_classes=num_classes, info=info)


def _check(raw: dict[str, RawSplit], where: str, corpus: Corpus) -> None:
    low, high = corpus.label_range
    standard = corpus.standard
    classification = get_task(corpus.task).kind == "classification"
    for name in SPLITS:
        split = raw[name]
        if len(split.labels) == 0:
            raise DataError(f"{where}: split {name!r} is empty; expected segments "
                            f"(the standard split has {standard[name]})")
        labels = np.asarray(split.labels, dtype=np.float64)
        bad = ~np.isfinite(labels) | (labels < low) | (labels > high)
        if classification:
            bad |= labels != np.round(labels)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            what = "not whole class numbers in" if classification else "non-finite or outside"
            raise DataError(f"{where}: split {name!r} has {int(bad.sum())} label(s) that are {what} "
                            f"[{low:g}, {high:g}] (first: {labels[first]} for segment {split.ids[first]!r}); "
                            f"expected {corpus.label_words} in [{low:g}, {high:g}]")
        for modality in MODALITIES:
            dim, train_dim = split.modalities[modality].x.shape[-1], raw["train"].modalities[modality].x.shape[-1]
            if dim != train_dim:
                raise DataError(f"{where}: modality {modality!r} has {dim} features in split {name!r} but "
                                f"{train_dim} in 'train'; every split must have the same feature size")


def _to_split(raw: RawSplit, found: dict[str, _Found], classification: bool) -> Split:
    xs, masks = [], []
    for modality in MODALITIES:
        x, mask = _real_first(raw.modalities[modality], found[modality])
        xs.append(x)
        masks.append(mask)
    labels = torch.as_tensor(np.asarray(raw.labels, dtype=np.int64 if classification else np.float32))
    extras = {key: torch.as_tensor(np.asarray(value, dtype=np.float32)) for key, value in raw.extras.items()}
    return Split(xs=xs, masks=masks, labels=labels, ids=list(raw.ids), extras=extras)


def _real_first(raw: RawModality, found: _Found) -> tuple[torch.Tensor, torch.Tensor]:
    """``[N, time, dim]`` float32 with the real steps first and zeros after, and its mask; a sample with no real
    step gets its first step marked real (zero features). What it finds is added to ``found``."""
    x = np.array(raw.x, dtype=np.float32)  # a copy: the caller's array is left as read
    magnitude = np.abs(x[np.isfinite(x)])
    extreme = magnitude[magnitude > EXTREME_MAGNITUDE]
    if extreme.size:
        found.extreme += int(extreme.size)
        found.largest = max(found.largest, float(extreme.max()))
    bad = ~np.isfinite(x)
    if bad.any():
        for kind, hit in (("nan", np.isnan(x)), ("+inf", np.isposinf(x)), ("-inf", np.isneginf(x))):
            if count := int(hit.sum()):
                found.nonfinite[kind] = found.nonfinite.get(kind, 0) + count
        x[bad] = 0.0
    steps = np.arange(x.shape[1])
    lengths = np.clip(np.asarray(raw.lengths, dtype=np.int64), 0, x.shape[1])
    left = np.asarray(raw.left, dtype=bool)
    padded = (lengths > 0) & (lengths < x.shape[1])
    found.left += int((padded & left).sum())
    found.right += int((padded & ~left).sum())
    found.empty += int((lengths == 0).sum())
    start = np.where(left, x.shape[1] - lengths, 0)
    order = (steps + start[:, None]) % x.shape[1]  # rotate left padding to the end
    x = np.take_along_axis(x, order[..., None], axis=1)
    x[steps >= lengths[:, None]] = 0.0
    mask = steps < np.maximum(lengths, 1)[:, None]
    return torch.from_numpy(x), torch.from_numpy(mask)


def _warn(found: dict[str, _Found], where: str) -> None:
    """One warning for the non-finite values of all modalities; one per modality with extreme values."""
    parts = [
        f"{modality} {sum(f.nonfinite.values())} ({', '.join(f'{kind} {n}' for kind, n in f.nonfinite.items())})"
        for modality, f in found.items() if f.nonfinite
    ]
    if parts:
        total = sum(sum(f.nonfinite.values()) for f in found.values())
        warnings.warn(f"{where}: replaced {total} non-finite feature values by 0: {'; '.join(parts)}",
                      RuntimeWarning, stacklevel=4)
    for modality, f in found.items():
        if f.extreme:
            warnings.warn(
                f"{where}: modality {modality!r} has {f.extreme} finite feature value(s) of magnitude above "
                f"{EXTREME_MAGNITUDE:g} (largest {f.largest:.3g}), kept as read; a sentinel such as -FLT_MAX "
                f"written for a missing value makes training diverge: write it as -inf or NaN (replaced by 0)",
                RuntimeWarning, stacklevel=4)
