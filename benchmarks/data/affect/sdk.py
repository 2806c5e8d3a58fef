"""A corpus (MOSI, MOSEI) from a folder of CMU-MultimodalSDK computational sequences (``.csd``, HDF5), aligned with
``mmsdk``.

A ``.csd`` file holds ``<root>/data/<video>/features`` ``[n, dim]`` and ``intervals`` ``[n, 2]`` (start, end in
seconds) and ``<root>/metadata``. Four are read, by the corpus's names (``Corpus.sdk_files``, the first present)
unless an option names another file in the folder:

* text (``text_csd``): one 300-d GloVe vector per word, ``CMU_MOSI_TimestampedWordVectors.csd`` (or ``_1.1``),
  ``CMU_MOSEI_TimestampedWordVectors.csd``;
* audio (``audio_csd``): 74-d COVAREP frames, ``CMU_MOSI_COVAREP.csd``, ``CMU_MOSEI_COVAREP.csd``;
* vision (``vision_csd``): MOSI's Facet 4.1 frames (``CMU_MOSI_Visual_Facet_41.csd`` or
  ``CMU_MOSI_VisualFacet_4.1.csd``, 47 features); MOSEI's Facet 4.2 (``CMU_MOSEI_VisualFacet42.csd``, 35, the
  default, as in the MulT and MMSA files) or OpenFace 2 (``CMU_MOSEI_VisualOpenFace2.csd``, 713, read when it is the
  only one or named by ``vision_csd``);
* labels (``labels_csd``): one row per opinion segment, the sentiment score in [-3, 3] first, then the corpus's
  emotion intensities (``Corpus.emotions``): MOSI's ``CMU_MOSI_Opinion_Labels.csd`` ``[k, 1]``; MOSEI's
  ``CMU_MOSEI_Labels.csd`` (``All Labels``) ``[k, 7]``: sentiment, then happy, sad, anger, surprise, disgust and
  fear in [0, 3], read into ``RawSplit.extras["emotions"]`` ``[N, 6]``. Another number of values per row, or an
  intensity outside [0, 3], raises a ``DataError`` before the alignment starts.

The SDK's own recipe: ``mmdataset.align`` to the words with the mean as collapse function (audio and vision frames
inside a word are averaged into one step; a word without frames gets a zero step, as the SDK's ``impute`` would
give, done here because ``impute`` fails on Python 3 in mmsdk 0.0.6), then a second
``align`` to the opinion-segment intervals, which cuts each video into segments of whole words: step = word,
``[words, dim]``. Segment ``k`` (0-based row of the labels file) of video ``v`` gets the id ``v_{k+1}``, the
numbering of MMSA's ``label.csv`` and MulT's ids for MOSI. Videos go to train / valid / test by the corpus's
``mmdatasdk.<Corpus.sdk_folds>.standard_folds`` (MOSI's ``cmu_mosi``: 52 / 10 / 31 videos; MOSEI's ``cmu_mosei``:
2250 / 300 / 678 in the installed mmsdk); labelled videos outside the folds are dropped with one log warning.

The SDK's alignment skips segments whose interval is shorter than 1 ms and segments in which a sequence has no
data. MMSA-style ``label.csv`` files hold 2,195 of MOSI's 2,199 labelled segments (1281 / 229 / 685): they lack
``2WGyTLYerpo_44`` (a zero-length interval, which ``align`` skips) and the last segment of three videos
(``5W7Z1C_fDaE_24``, ``BioHAh1qJAQ_30``, ``lXPQBPVc5Cw_30``), most likely because no word falls inside them.
This loader keeps every labelled segment, so a complete MOSI folder gives the standard 1284 / 229 / 686: a segment
without words gets one zero step per modality (counted in ``info["empty"]``).

A labelled video missing from one modality's file (a face detector that failed on it; the SDK's alignment would
drop it from every modality) keeps its segments: the modalities present are aligned as usual and the missing one
is empty (one masked zero step). A video missing from the text file has no words, so all its modalities are
empty. ONE warning on every load (the cached ones too) names such videos (up to ten per modality, then how many
more), their segments and the modality and file they are missing from; ``info["missing"]`` lists them all.

The alignment takes minutes on the full data, so the aligned segments are cached in ``cache_dir`` (option;
default ``$FUSIONBENCH_CACHE``, else ``$XDG_CACHE_HOME/fusionbench``, else ``~/.cache/fusionbench``) under
``<corpus>/sdk-<key>.npz`` (``mosi/``, ``mosei/``), the key hashing the four files' names, sizes, modification
times, inode numbers and status-change times (ctime), as the pickle cache's (``affect.cache``): a file replaced by
one of the same size and mtime (``cp -p``, ``rsync -a``, an archive unpacked, an edit followed by ``os.utime``) has
another inode or a new ctime, which users cannot set back. The data folder is only read. A cache that cannot be
written is skipped with a log warning. A folder read from the corpus's environment variable is named
``<folder> (from $MOSEI_PATH)`` in every message.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np

from ..dataset import SPLITS, DataError
from .prepare import MODALITIES, Corpus, RawModality, RawSplit

logger = logging.getLogger(__name__)

ROLES = (*MODALITIES, "labels")
EMOTION_RANGE = (0.0, 3.0)  # the SDK's emotion intensities (CMU_MOSEI README: "emotions in range [0,3]")
NAMED_MISSING = 10  # videos named per modality in the missing-video warning
CACHE_VERSION = 2  # bump when the alignment below changes what is cached


def default_cache_dir() -> Path:
    """``$FUSIONBENCH_CACHE``, else ``$XDG_CACHE_HOME/fusionbench``, else ``~/.cache/fusionbench``."""
    if os.environ.get("FUSIONBENCH_CACHE"):
        return Path(os.environ["FUSIONBENCH_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "fusionbench"


def read_sdk_folder(folder: Path, corpus: Corpus, names: dict[str, str | None], cache_dir: Path | None,
                    origin: str = "") -> tuple[dict[str, RawSplit], dict]:
    """The ``corpus``'s raw splits from a ``.csd`` folder (labels ``[N]`` sentiment scores; with
    ``corpus.emotions``, ``extras["emotions"]`` ``[N, len(emotions)]`` intensities) and facts for ``info``: the
    files read, the cache status and file, the labelled videos missing per modality.

    ``names``: file name per role (text / audio / vision / labels) or None for the corpus's names; ``origin``: what
    messages add after the folder (``find.data_path``). A missing file, a name that is not a ``.csd``, a labels file
    with another number of values per segment, an emotion intensity outside [0, 3] or a file the SDK cannot read
    raises a one-line ``DataError``.
    """
    where = f"{corpus.title} .csd folder {folder}{origin}"
    files = {role: _find(folder, where, corpus, role, names.get(role)) for role in ROLES}
    cache_file = (cache_dir or default_cache_dir()) / corpus.name / f"sdk-{_cache_key(files)}.npz"
    cached = _read_cache(cache_file)
    status = "hit"
    if cached is None:
        segments, dims, missing = _align(files, corpus, where)
        cached = _split_segments(segments, dims, corpus, where), missing
        status = "stored" if _write_cache(cache_file, *cached, where) else "not stored"
    splits, missing = cached
    _warn_missing(missing, where, files)
    info = {"files": {role: path.name for role, path in files.items()}, "cache": status, "cache_file": str(cache_file),
            "missing": {role: sorted(videos) for role, videos in missing.items()}}
    return splits, info


def _find(folder: Path, where: str, corpus: Corpus, role: str, name: str | None) -> Path:
    """The file of ``role``: ``name``, else the first of the corpus's names present (the others present are logged).
    ``where`` names the folder in messages."""
    if name and not name.endswith(".csd"):
        raise DataError(f"{role}_csd={name!r}: expected the name of a .csd file in {where}")
    candidates = (name,) if name else corpus.sdk_files[role]
    present = [folder / candidate for candidate in candidates if (folder / candidate).is_file()]
    if not present:
        raise DataError(f"{where} lacks the {role} sequence: expected {' or '.join(candidates)} (another file in the "
                        f"folder can be named with the option {role}_csd=FILE)")
    if len(present) > 1:
        logger.info("%s: %s read from %s; also present: %s (the option %s_csd=FILE reads another)", where, role,
                    present[0].name, ", ".join(p.name for p in present[1:]), role)
    return present[0]


def _cache_key(files: dict[str, Path]) -> str:
    """The digest naming the alignment cache of ``files``: their names, sizes, mtimes, inodes and ctimes (ns)."""
    stats = {}
    for role, path in files.items():
        stat = path.stat()
        stats[role] = [path.name, stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns]
    text = json.dumps({"version": CACHE_VERSION, "files": stats}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _align(files: dict[str, Path], corpus: Corpus,
           where: str) -> tuple[list[dict], dict[str, int], dict[str, dict[str, int]]]:
    """Every labelled segment, ``{"video", "index", "label", "emotions", "text", "audio", "vision"}`` with
    ``[words, dim]`` float32 feature arrays (no rows when the SDK found no word in the segment or the modality has no
    data for the video) and ``emotions`` ``[len(corpus.emotions)]``; the feature size per modality; the labelled
    videos missing per modality ``{role: {video: segments}}``."""
    from mmsdk import mmdatasdk  # imported here: it takes a second and only this format needs it

    with _quiet(where):
        dataset = mmdatasdk.mmdataset({role: str(files[role]) for role in MODALITIES})
        label_sequence = mmdatasdk.computational_sequence(str(files["labels"]))
        _in_memory([*dataset.computational_sequences.values(), label_sequence])
    labels = _labels(label_sequence, files["labels"], corpus, where)  # checked before the minutes of alignment
    with _quiet(where):
        dims = {role: _dim(dataset[role], files[role], where) for role in MODALITIES}
        present = {role: set(dataset[role].data) for role in MODALITIES}
        _stand_in(dataset, dims)
        dataset.align("text", collapse_functions=[_mean])
        _impute(dataset, dims)
        dataset.computational_sequences["labels"] = label_sequence
        dataset.align("labels")
    missing = {role: {video: len(labels[video]) for video in sorted(labels.keys() - present[role])}
               for role in MODALITIES}
    segments = []
    for video in sorted(labels):
        for index, row in enumerate(labels[video]):
            key = f"{video}[{index}]"
            segment = {"video": video, "index": index, "label": float(row[0]), "emotions": row[1:]}
            for role in MODALITIES:
                entry = None if video in missing[role] else dataset[role].data.get(key)
                features = np.zeros((0, dims[role])) if entry is None else entry["features"]
                segment[role] = np.asarray(features, dtype=np.float32)
            segments.append(segment)
    return segments, dims, {role: videos for role, videos in missing.items() if videos}


def _labels(sequence, path: Path, corpus: Corpus, where: str) -> dict[str, np.ndarray]:
    """Per video its label rows ``[k, 1 + len(corpus.emotions)]`` float32 (the sentiment score, then the emotion
    intensities); ``DataError`` for another number of values per row or an intensity outside ``EMOTION_RANGE``."""
    expected = "the sentiment score" + (f", then the intensities of {', '.join(corpus.emotions)}"
                                        if corpus.emotions else "")
    columns, (low, high) = 1 + len(corpus.emotions), EMOTION_RANGE
    labels = {video: np.asarray(entry["features"], dtype=np.float32) for video, entry in sequence.data.items()}
    for video, rows in sorted(labels.items()):
        if rows.ndim != 2 or rows.shape[1] != columns:
            raise DataError(f"{where}: {path.name} holds {rows.shape[-1]} value(s) per segment for video {video}; "
                            f"expected {columns} ({expected})")
        bad = ~np.isfinite(rows[:, 1:]) | (rows[:, 1:] < low) | (rows[:, 1:] > high)
        if bad.any():
            index, emotion = np.argwhere(bad)[0]
            raise DataError(f"{where}: {path.name} gives segment {video}_{index + 1} the {corpus.emotions[emotion]} "
                            f"intensity {rows[index, 1 + emotion]}; expected emotion intensities in "
                            f"[{low:g}, {high:g}]")
    return labels


def _stand_in(dataset, dims: dict[str, int]) -> None:
    """For a video with words that audio or vision lacks, a stand-in of zero frames at the words' intervals, so the
    SDK's alignment (which drops a video from every sequence unless all hold it) keeps the video's other
    modalities; ``_align`` empties the stand-in's steps afterwards."""
    words = dataset["text"].data
    for role in ("audio", "vision"):
        data = dataset[role].data
        for video in words.keys() - data.keys():
            intervals = words[video]["intervals"]
            data[video] = {"intervals": intervals, "features": np.zeros((len(intervals), dims[role]), np.float32)}


def _warn_missing(missing: dict[str, dict[str, int]], where: str, files: dict[str, Path]) -> None:
    """ONE warning naming the labelled videos missing from a modality's file, with their segments: per modality
    the first ``NAMED_MISSING`` and how many more (``info["missing"]`` lists them all)."""
    if not missing:
        return
    parts = []
    for role, videos in missing.items():
        named = ", ".join(f"{video} (segments {video}_1 to {video}_{count})"
                          for video, count in list(videos.items())[:NAMED_MISSING])
        if len(videos) > NAMED_MISSING:
            named += f" and {len(videos) - NAMED_MISSING} more (info['missing'] lists them all)"
        consequence = ": without its words every modality is empty" if role == "text" else ""
        parts.append(f"{role} ({files[role].name}) lacks {named}{consequence}")
    count = len({video for videos in missing.values() for video in videos})
    warnings.warn(f"{where}: {count} labelled video(s) missing from a .csd file keep their segments with the "
                  f"missing modality empty (one masked zero step): {'; '.join(parts)}", RuntimeWarning, stacklevel=4)


def _mean(intervals: np.ndarray, features: np.ndarray) -> np.ndarray:
    """The SDK collapse function: the mean of the frames inside one word, ``[dim]``."""
    return np.mean(features, axis=0)


def _impute(dataset, dims: dict[str, int]) -> None:
    """After the word alignment, a zero step ``[1, dim]`` for every word that audio or vision has no frame for."""
    words = dataset["text"].data
    for role in ("audio", "vision"):
        data = dataset[role].data
        for key in words.keys() - data.keys():
            data[key] = {"intervals": words[key]["intervals"], "features": np.zeros((1, dims[role]), np.float32)}


@contextlib.contextmanager
def _quiet(where: str):
    """Silence the SDK's status lines and progress bars; its errors become one-line ``DataError``s."""
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield
    except (RuntimeError, KeyError, OSError) as error:
        message = re.sub(r"\x1b\[[0-9;]*m|<Error>: ", "", str(error)).strip() or type(error).__name__
        raise DataError(f"{where}: the CMU-MultimodalSDK could not read or align it: {message}") from None


def _in_memory(sequences: list) -> None:
    """Read each computational sequence's HDF5 datasets into numpy arrays and close its file, so the alignment
    reads no disk."""
    for sequence in sequences:
        handle = getattr(sequence, "h5handle", None)
        if handle is not None and handle.id.valid:
            sequence.data = {video: {"intervals": entry["intervals"][()], "features": entry["features"][()]}
                             for video, entry in sequence.data.items()}
            handle.close()


def _dim(sequence, path: Path, where: str) -> int:
    entries = list(sequence.data.values())
    if not entries:
        raise DataError(f"{where}: {path.name} holds no videos; expected <root>/data/<video>/features")
    return int(entries[0]["features"].shape[1])


def _split_segments(segments: list[dict], dims: dict[str, int], corpus: Corpus, where: str) -> dict[str, RawSplit]:
    """Segments into the corpus's standard folds, each modality right-padded to its longest segment."""
    from mmsdk import mmdatasdk

    folds = getattr(mmdatasdk, corpus.sdk_folds).standard_folds
    fold_of = {video: name for name, videos in zip(SPLITS, (
        folds.standard_train_fold, folds.standard_valid_fold, folds.standard_test_fold)) for video in videos}
    outside = sorted({s["video"] for s in segments} - fold_of.keys())
    if outside:
        logger.warning("%s: %d labelled video(s) outside mmdatasdk.%s.standard_folds dropped: %s%s", where,
                       len(outside), corpus.sdk_folds, ", ".join(outside[:5]), ", ..." if len(outside) > 5 else "")
    splits = {}
    for name in SPLITS:
        chosen = [s for s in segments if fold_of.get(s["video"]) == name]
        extras = {"emotions": np.array([s["emotions"] for s in chosen], np.float32).reshape(
            len(chosen), len(corpus.emotions))} if corpus.emotions else {}
        splits[name] = RawSplit(
            modalities={m: _pad_rows(np.concatenate([np.zeros((0, dims[m]), np.float32), *(s[m] for s in chosen)]),
                                     np.array([len(s[m]) for s in chosen], dtype=np.int64)) for m in MODALITIES},
            labels=np.array([s["label"] for s in chosen], dtype=np.float32),
            ids=[f"{s['video']}_{s['index'] + 1}" for s in chosen], extras=extras,
        )
    return splits


def _pad_rows(rows: np.ndarray, lengths: np.ndarray) -> RawModality:
    """The real steps of N samples one after another, ``rows`` ``[sum lengths, dim]`` with ``lengths`` ``[N]``, into
    ``[N, max(1, max lengths), dim]`` float32 with zero rows after each sample's steps."""
    x = np.zeros((len(lengths), max(1, int(lengths.max(initial=0))), rows.shape[1]), dtype=np.float32)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    x[np.repeat(np.arange(len(lengths)), lengths), np.arange(len(rows)) - starts] = rows
    return RawModality(x, lengths, np.zeros(len(lengths), dtype=bool))


def _read_cache(path: Path) -> tuple[dict[str, RawSplit], dict[str, dict[str, int]]] | None:
    """The cached splits and missing videos (as ``_align`` gives them), or None when the file is missing or
    unreadable. Stored ragged: per split and modality the real rows of all samples concatenated ``[sum n_i, dim]``
    (``<split>.<modality>.rows``) with their lengths ``[N]``; the extras as ``<split>.extras.<name>``; the missing
    videos as JSON text."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            splits = {
                name: RawSplit(
                    modalities={m: _pad_rows(stored[f"{name}.{m}.rows"], stored[f"{name}.{m}.lengths"])
                                for m in MODALITIES},
                    labels=stored[f"{name}.labels"], ids=[str(i) for i in stored[f"{name}.ids"]],
                    extras={key.split(".", 2)[2]: stored[key] for key in stored.files
                            if key.startswith(f"{name}.extras.")},
                ) for name in SPLITS
            }
            return splits, json.loads(str(stored["missing"]))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


def _write_cache(path: Path, splits: dict[str, RawSplit], missing: dict[str, dict[str, int]], where: str) -> bool:
    arrays = {"missing": np.array(json.dumps(missing))}
    for name, split in splits.items():
        arrays[f"{name}.labels"] = split.labels
        arrays[f"{name}.ids"] = np.array(split.ids, dtype=str)
        arrays.update({f"{name}.extras.{key}": value for key, value in split.extras.items()})
        for m, raw in split.modalities.items():
            arrays[f"{name}.{m}.rows"] = raw.x[np.arange(raw.x.shape[1]) < raw.lengths[:, None]]
            arrays[f"{name}.{m}.lengths"] = raw.lengths
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as handle:
            temporary = Path(handle.name)
            np.savez(handle, **arrays)
        os.replace(temporary, path)
        return True
    except OSError as error:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
        logger.warning("%s: could not write the alignment cache %s (%s); the next load aligns again", where, path,
                       error)
        return False
