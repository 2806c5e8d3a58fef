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
  its first step marked real, with zero features, with one warning per modality giving the count and the first
  such sample; ``info["empty"]`` counts them per modality;
* checks that fail with a one-line ``DataError``: an empty split, labels that are non-finite or outside the
  corpus's range (MOSI's [-3, 3]) or, for a classification task, not whole class numbers, a feature size that
  differs between splits;
* ``info``: format, path, split counts (also logged, with a one-line warning when they are not the corpus's
  standard split, MOSI's 1284 / 229 / 686, MOSEI's 16326 / 1871 / 4659), per modality the replaced values
  (``nonfinite_replaced``), the extreme values (``extreme``), the empty samples (``empty``) and the samples read
  as padded on each side (``padding``: ``{"left": n, "right": n}``; samples with no padding or no real step count
  in neither).

Memory: every operation on the features runs over chunks of samples (``sample_chunks``, ``CHUNK_VALUES`` values
each), so no temporary ``[N, time, dim]`` array is built; ``build_dataset(..., in_place=True)`` (the pickle readers,
which own the arrays they unpickled) turns float32 arrays into the dataset's tensors where they lie, so preparing
adds a few ``[N, time]`` arrays to what was read (22,856 MOSEI segments: about 6 GB of features, 11 MB per
``[N, 500]`` bool array).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from tasks import get_task

from ..dataset import SPLITS, DataError, Dataset, Split

logger = logging.getLogger(__name__)

MODALITIES = ("text", "audio", "vision")
LABEL_RANGE = (-3.0, 3.0)
EXTREME_MAGNITUDE = 1e6  # finite feature values beyond it are warned about (see the module docstring)
CHUNK_VALUES = 1 << 20  # feature values per chunk of samples (4 MB of float32): the size of every temporary
NONFINITE = ("nan", "+inf", "-inf")  # the kinds of non-finite values counted, in the order warnings list them


@dataclass(frozen=True)
class Corpus:
    """What tells one dataset read by these readers from another (MOSI, MOSEI, ...). ``name``: the ``--dataset``
    value and ``Dataset.name``; ``title``: the dataset as named in messages; ``standard``: the documented split
    sizes (train / valid / test), a file that differs is read with one warning (None: not documented, the sizes
    are logged and not compared); ``env``: the environment variable
    read when no path is given; ``pickle_names``: the pickles a data folder may hold; ``accepted`` / ``sources``:
    the accepted formats and where they are distributed, as said in error messages. ``task``: the registered task
    of its labels; ``label_range``: the closed range every label lies in (for a classification task, the class
    numbers ``0..K-1``); ``label_words``: the labels as named in messages."""

    name: str
    title: str
    standard: dict[str, int] | None
    env: str
    pickle_names: tuple[str, ...]
    accepted: str
    sources: str
    task: str = "sentiment"
    label_range: tuple[float, float] = LABEL_RANGE
    label_words: str = "sentiment scores"
    # CMU-MultimodalSDK .csd folders (affect.sdk): ``sdk_files``, the accepted file names per role (text / audio /
    # vision / labels; the first present is read); ``sdk_folds``, the ``mmdatasdk`` module whose ``standard_folds``
    # split the videos (``"cmu_mosi"``); ``emotions``, the emotions whose intensities follow the sentiment score in
    # each row of the labels file (read into ``RawSplit.extras["emotions"]`` ``[N, len(emotions)]``).
    sdk_files: dict[str, tuple[str, ...]] | None = None
    sdk_folds: str | None = None
    emotions: tuple[str, ...] = ()


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


def sample_chunks(x: np.ndarray) -> Iterator[slice]:
    """Slices of consecutive samples (first axis) of ``x`` ``[N, ...]`` covering all N, each holding about
    ``CHUNK_VALUES`` values (at least one sample): the unit of work of every per-value operation on features."""
    per = max(1, CHUNK_VALUES // max(1, math.prod(x.shape[1:])))
    return (slice(start, start + per) for start in range(0, x.shape[0], per))


def zero_rows(x: np.ndarray) -> np.ndarray:
    """``[N, time]`` bool, True where every feature of a step of ``x`` ``[N, time, dim]`` is zero (NaN is not)."""
    zero = np.empty(x.shape[:2], dtype=bool)
    for rows in sample_chunks(x):
        np.logical_not(x[rows].any(axis=-1), out=zero[rows])
    return zero


def keep_rows(x: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The samples of ``x`` ``[N, ...]`` where ``keep`` ``[N]`` (bool) is True, in their order: moved to the front
    of ``x`` itself chunk by chunk and returned as the view ``x[:kept]``, so no copy of ``x`` is made (``x`` is
    overwritten: for an array its reader owns). A read-only ``x`` is copied instead (``x[keep]``)."""
    if not x.flags.writeable:
        return x[keep]
    rows = np.flatnonzero(keep)
    kept = x[: len(rows)]
    for chunk in sample_chunks(kept):  # rows[i] >= i: each chunk is read (a copy) before it is written over
        kept[chunk] = x[rows[chunk]]
    return kept


def zero_row_padding(x: np.ndarray) -> Padded:
    """``x`` ``[N, time, dim]`` padded with all-zero rows and no stored lengths. Left padding: the real steps run
    from the first non-zero row to the end; right padding: from the start to the last non-zero row (zero rows
    inside a sequence stay real). A sample votes for the side where its zero rows are: left when it has leading
    zero rows and no trailing ones, right in the mirror case; none when it has zero rows at both ends (then one
    end holds real all-zero steps), at neither end (no padding) or only zero rows (no real step). A row holding a
    non-finite value is not a zero row."""
    zero = zero_rows(x)
    lead = np.cumprod(zero, axis=1).sum(axis=1)
    trail = np.cumprod(zero[:, ::-1], axis=1).sum(axis=1)
    votes = ((lead > 0) & (trail == 0)).astype(np.int8) - ((trail > 0) & (lead == 0)).astype(np.int8)
    return Padded(x, x.shape[1] - lead, x.shape[1] - trail, votes)


def stored_padding(x: np.ndarray, lengths: np.ndarray) -> Padded:
    """``x`` ``[N, time, dim]`` with stored real ``lengths`` ``[N]`` (e.g. MMSA's ``audio_lengths``). A sample votes
    left when its first ``time - length`` rows are all zero and its last ``time - length`` are not, right in the
    mirror case; none when both or neither are all zero."""
    zero = zero_rows(x)
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
class Found:
    """What the preparation finds in one modality over the splits (``_real_first`` here, ``arrays._modality``):
    non-finite values replaced (count per kind; kinds listed by split, in ``NONFINITE`` order within a split),
    extreme finite values (count, largest magnitude), samples with no real step, samples read as padded on the
    left / right."""

    nonfinite: dict[str, int] = field(default_factory=dict)
    extreme: int = 0
    largest: float = 0.0
    empty: int = 0
    left: int = 0
    right: int = 0

    def add_nonfinite(self, counts: dict[str, int]) -> None:
        """Add the counts ``{kind: n}`` of one modality of one split (``clean_values``'s ``nonfinite``)."""
        for kind, count in counts.items():
            if count:
                self.nonfinite[kind] = self.nonfinite.get(kind, 0) + count


def clean_values(part: np.ndarray, found: Found, nonfinite: dict[str, int]) -> None:
    """In the float32 chunk ``part`` (any shape, changed in place): non-finite values replaced by 0 and counted per
    kind into ``nonfinite`` (the counts of one modality of one split, keys ``NONFINITE``, added to ``found`` by
    ``Found.add_nonfinite`` once the split is done); finite values of magnitude above ``EXTREME_MAGNITUDE``
    counted into ``found`` (count, largest magnitude)."""
    finite = np.isfinite(part)
    if not finite.all():
        nan, positive = int(np.isnan(part).sum()), int(np.isposinf(part).sum())
        nonfinite["nan"] += nan
        nonfinite["+inf"] += positive
        nonfinite["-inf"] += int(finite.size - finite.sum()) - nan - positive
        np.copyto(part, 0.0, where=~finite)
    magnitude = np.abs(part)
    extreme = magnitude > EXTREME_MAGNITUDE
    if extreme.any():
        found.extreme += int(extreme.sum())
        found.largest = max(found.largest, float(magnitude[extreme].max()))


def build_dataset(raw: dict[str, RawSplit], where: str, info: dict, corpus: Corpus, in_place: bool = False) -> Dataset:
    """The ``corpus``'s ``Dataset`` (task ``corpus.task``) from the three raw splits. ``where`` names the source in
    error messages and warnings (e.g. ``"MOSI file /data/mosi_data.pkl (MulT pickle)"``); ``info`` (format, path,
    ...) is extended. Raises ``DataError`` (one line) for the failed checks of the module docstring.

    ``in_place``: the caller hands the raw splits over (a reader that owns the arrays it read): writeable float32
    feature arrays become the dataset's tensors, overwritten where they lie, and each split's modalities are taken
    out of ``raw`` as they are done, so an array of another dtype is freed once converted. Without it the raw
    splits are left as they are and the features are copied (a second copy of the data in memory)."""
    _check(raw, where, corpus)
    found = {m: Found() for m in MODALITIES}
    classification = get_task(corpus.task).kind == "classification"
    counts = {name: len(raw[name].labels) for name in SPLITS}
    first_empty: dict[str, str] = {}
    splits = {name: _to_split(raw[name], name, found, first_empty, classification, in_place) for name in SPLITS}
    warn_found(found, where)
    warn_empty(found, first_empty, where)
    standard = counts == corpus.standard if corpus.standard is not None else None
    info = {
        **info, "counts": counts, "standard_split": standard,
        "nonfinite_replaced": {m: sum(f.nonfinite.values()) for m, f in found.items()},
        "extreme": {m: f.extreme for m, f in found.items()}, "empty": {m: f.empty for m, f in found.items()},
        "padding": {m: {"left": f.left, "right": f.right} for m, f in found.items()},
    }
    logger.info("%s: train %d, valid %d, test %d segments", where, *counts.values())
    if standard is False:
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
            raise DataError(f"{where}: split {name!r} is empty; expected segments"
                            + (f" (the standard split has {standard[name]})" if standard else ""))
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


def _to_split(raw: RawSplit, name: str, found: dict[str, Found], first_empty: dict[str, str], classification: bool,
              in_place: bool) -> Split:
    """Split ``name`` as tensors; with ``in_place`` its modalities are taken out of ``raw`` one by one (see
    ``build_dataset``). ``first_empty`` gets, per modality, the first sample without a real step (as named in the
    warning), unless an earlier split had one."""
    xs, masks = [], []
    for modality in MODALITIES:
        read = raw.modalities.pop(modality) if in_place else raw.modalities[modality]
        empty = np.flatnonzero(np.asarray(read.lengths) <= 0)
        if empty.size and modality not in first_empty:
            first_empty[modality] = f"{raw.ids[empty[0]]!r} of split {name!r}"
        x, mask = _real_first(read, found[modality], in_place)
        del read  # the last reference to an array that was converted to float32
        xs.append(x)
        masks.append(mask)
    labels = torch.as_tensor(np.asarray(raw.labels, dtype=np.int64 if classification else np.float32))
    extras = {key: torch.as_tensor(np.asarray(value, dtype=np.float32)) for key, value in raw.extras.items()}
    return Split(xs=xs, masks=masks, labels=labels, ids=list(raw.ids), extras=extras)


def _real_first(raw: RawModality, found: Found, in_place: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``[N, time, dim]`` float32 with the real steps first and zeros after, and its mask ``[N, time]``; a sample
    with no real step gets its first step marked real (zero features). What it finds is added to ``found``.

    With ``in_place`` a writeable float32 ``raw.x`` is overwritten and returned; otherwise the result is a new
    array and ``raw.x`` is left as read. The work runs chunk by chunk over the samples (``sample_chunks``)."""
    source = raw.x
    reuse = in_place and source.dtype == np.float32 and source.flags.writeable
    x = source if reuse else np.empty(source.shape, dtype=np.float32)
    time = x.shape[1]
    steps = np.arange(time)
    lengths = np.clip(np.asarray(raw.lengths, dtype=np.int64), 0, time)
    left = np.asarray(raw.left, dtype=bool)
    shift = np.where(left, time - lengths, 0)  # a left-padded sample's real steps start there
    padding = steps >= lengths[:, None]  # [N, time]
    nonfinite = dict.fromkeys(NONFINITE, 0)
    for rows in sample_chunks(x):
        part = x[rows]  # a view: the chunk is done in x itself
        if not reuse:
            part[...] = source[rows]
        clean_values(part, found, nonfinite)
        moved = np.flatnonzero(shift[rows])
        if moved.size:  # rotate the left padding to the end
            order = (steps + shift[rows][moved, None]) % time
            part[moved] = np.take_along_axis(part[moved], order[..., None], axis=1)
        np.copyto(part, 0.0, where=padding[rows][..., None])
    found.add_nonfinite(nonfinite)
    padded = (lengths > 0) & (lengths < time)
    found.left += int((padded & left).sum())
    found.right += int((padded & ~left).sum())
    found.empty += int((lengths == 0).sum())
    mask = steps < np.maximum(lengths, 1)[:, None]
    return torch.from_numpy(x), torch.from_numpy(mask)


def warn_empty(found: dict[str, Found], first_empty: dict[str, str], where: str) -> None:
    """One warning per modality with samples that have no real step (``Found.empty``), naming the first such sample
    (``first_empty``: per modality, e.g. ``"'v_1' of split 'train'"``); the wording of ``arrays``' own."""
    for modality, f in found.items():
        if f.empty:
            warnings.warn(f"{where}: modality {modality!r}: {f.empty} sample(s) have no real step (first: "
                          f"{first_empty[modality]}); each keeps one zero step marked real", RuntimeWarning,
                          stacklevel=4)


def warn_found(found: dict[str, Found], where: str) -> None:
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
