"""MOSI from a folder of CMU-MultimodalSDK computational sequences (``.csd``, HDF5), aligned with ``mmsdk``.

A ``.csd`` file holds ``<root>/data/<video>/features`` ``[n, dim]`` and ``intervals`` ``[n, 2]`` (start, end in
seconds) and ``<root>/metadata``. Four are read, by these names unless an option names another file in the folder:

* text (``text_csd``): ``CMU_MOSI_TimestampedWordVectors.csd`` (or ``_1.1``) — one 300-d GloVe vector per word;
* audio (``audio_csd``): ``CMU_MOSI_COVAREP.csd`` — 74-d COVAREP frames;
* vision (``vision_csd``): ``CMU_MOSI_Visual_Facet_41.csd`` (or ``CMU_MOSI_VisualFacet_4.1.csd``) — Facet frames;
* labels (``labels_csd``): ``CMU_MOSI_Opinion_Labels.csd`` — one sentiment score in [-3, 3] per opinion segment.

The SDK's own recipe: ``mmdataset.align`` to the words with the mean as collapse function (audio and vision frames
inside a word are averaged into one step; a word without frames gets a zero step, as the SDK's ``impute`` would
give, done here because ``impute`` fails on Python 3 in mmsdk 0.0.6), then a second
``align`` to the opinion-segment intervals, which cuts each video into segments of whole words: step = word,
``[words, dim]``. Segment ``k`` (0-based row of the labels file) of video ``v`` gets the id ``v_{k+1}``, the
numbering of MMSA's ``label.csv`` and MulT's ids. Videos go to train / valid / test by
``mmdatasdk.cmu_mosi.standard_folds`` (52 / 10 / 31 videos; videos outside the folds are dropped).

The SDK's alignment skips segments whose interval is shorter than 1 ms and segments in which a sequence has no
data. MMSA-style ``label.csv`` files hold 2,195 of the 2,199 labelled segments (1281 / 229 / 685): they lack
``2WGyTLYerpo_44`` (a zero-length interval, which ``align`` skips) and the last segment of three videos
(``5W7Z1C_fDaE_24``, ``BioHAh1qJAQ_30``, ``lXPQBPVc5Cw_30``), most likely because no word falls inside them.
This loader keeps every labelled segment, so a complete folder gives the standard 1284 / 229 / 686: a segment
without words gets one zero step per modality (counted in ``info["empty"]``).

A labelled video missing from one modality's file (a face detector that failed on it; the SDK's alignment would
drop it from every modality) keeps its segments: the modalities present are aligned as usual and the missing one
is empty (one masked zero step). A video missing from the text file has no words, so all its modalities are
empty. ONE warning on every load (the cached ones too) names each such video, its segments and the modality and
file it is missing from; ``info["missing"]`` lists the videos per modality.

The alignment takes minutes on the full data, so the aligned segments are cached in ``cache_dir`` (option;
default ``$FUSIONBENCH_CACHE``, else ``$XDG_CACHE_HOME/fusionbench``, else ``~/.cache/fusionbench``) under
``mosi/sdk-<key>.npz``, the key hashing the four files' names, sizes and modification times. The data folder is
only read. A cache that cannot be written is skipped with a log warning.
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
from .prepare import MODALITIES, RawModality, RawSplit

logger = logging.getLogger(__name__)

ROLES = (*MODALITIES, "labels")
DEFAULT_FILES = {
    "text": ("CMU_MOSI_TimestampedWordVectors.csd", "CMU_MOSI_TimestampedWordVectors_1.1.csd"),
    "audio": ("CMU_MOSI_COVAREP.csd",),
    "vision": ("CMU_MOSI_Visual_Facet_41.csd", "CMU_MOSI_VisualFacet_4.1.csd"),
    "labels": ("CMU_MOSI_Opinion_Labels.csd",),
}
CACHE_VERSION = 2  # bump when the alignment below changes what is cached


def default_cache_dir() -> Path:
    """``$FUSIONBENCH_CACHE``, else ``$XDG_CACHE_HOME/fusionbench``, else ``~/.cache/fusionbench``."""
    if os.environ.get("FUSIONBENCH_CACHE"):
        return Path(os.environ["FUSIONBENCH_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "fusionbench"


def read_sdk_folder(folder: Path, names: dict[str, str | None], cache_dir: Path | None) -> tuple[dict, dict]:
    """The raw splits of a ``.csd`` folder and facts for ``info`` (files, cache status and file).

    ``names``: file name per role (text / audio / vision / labels) or None for the defaults.
    """
    files = {role: _find(folder, role, names.get(role)) for role in ROLES}
    cache_file = (cache_dir or default_cache_dir()) / "mosi" / f"sdk-{_cache_key(files)}.npz"
    cached = _read_cache(cache_file)
    status = "hit"
    if cached is None:
        segments, dims, missing = _align(folder, files)
        cached = _split_segments(segments, dims), missing
        status = "stored" if _write_cache(cache_file, *cached) else "not stored"
    splits, missing = cached
    _warn_missing(missing, folder, files)
    info = {"files": {role: path.name for role, path in files.items()}, "cache": status, "cache_file": str(cache_file),
            "missing": {role: sorted(videos) for role, videos in missing.items()}}
    return splits, info


def _find(folder: Path, role: str, name: str | None) -> Path:
    if name and not name.endswith(".csd"):
        raise DataError(f"{role}_csd={name!r}: expected the name of a .csd file in {folder}")
    candidates = (name,) if name else DEFAULT_FILES[role]
    for candidate in candidates:
        if (folder / candidate).is_file():
            return folder / candidate
    raise DataError(f"MOSI .csd folder {folder} lacks the {role} sequence: expected {' or '.join(candidates)} "
                    f"(another file in the folder can be named with the option {role}_csd=FILE)")


def _cache_key(files: dict[str, Path]) -> str:
    stats = {role: [path.name, path.stat().st_size, path.stat().st_mtime_ns] for role, path in files.items()}
    text = json.dumps({"version": CACHE_VERSION, "files": stats}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _align(folder: Path, files: dict[str, Path]) -> tuple[list[dict], dict[str, int], dict[str, dict[str, int]]]:
    """Every labelled segment, ``{"video", "index", "label", "text", "audio", "vision"}`` with ``[words, dim]``
    float32 feature arrays (no rows when the SDK found no word in the segment or the modality has no data for the
    video), the feature size per modality, and the labelled videos missing per modality ``{role: {video:
    segments}}``."""
    from mmsdk import mmdatasdk  # imported here: it takes a second and only this format needs it

    where = f"MOSI .csd folder {folder}"
    with _quiet(where):
        dataset = mmdatasdk.mmdataset({role: str(files[role]) for role in MODALITIES})
        _in_memory(dataset)
        dims = {role: _dim(dataset[role], files[role], where) for role in MODALITIES}
        present = {role: set(dataset[role].data) for role in MODALITIES}
        _stand_in(dataset, dims)
        dataset.align("text", collapse_functions=[_mean])
        _impute(dataset, dims)
        dataset.add_computational_sequences({"labels": str(files["labels"])}, None)
        _in_memory(dataset)
        labels = {video: entry["features"][:, 0] for video, entry in dataset["labels"].data.items()}
        dataset.align("labels")
    missing = {role: {video: len(labels[video]) for video in sorted(labels.keys() - present[role])}
               for role in MODALITIES}
    segments = []
    for video in sorted(labels):
        for index, label in enumerate(labels[video]):
            key = f"{video}[{index}]"
            segment = {"video": video, "index": index, "label": float(label)}
            for role in MODALITIES:
                entry = None if video in missing[role] else dataset[role].data.get(key)
                features = np.zeros((0, dims[role])) if entry is None else entry["features"]
                segment[role] = np.asarray(features, dtype=np.float32)
            segments.append(segment)
    return segments, dims, {role: videos for role, videos in missing.items() if videos}


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


def _warn_missing(missing: dict[str, dict[str, int]], folder: Path, files: dict[str, Path]) -> None:
    """ONE warning naming every labelled video missing from a modality's file, with its segments."""
    if not missing:
        return
    parts = []
    for role, videos in missing.items():
        named = ", ".join(f"{video} (segments {video}_1 to {video}_{count})" for video, count in videos.items())
        consequence = ": without its words every modality is empty" if role == "text" else ""
        parts.append(f"{role} ({files[role].name}) lacks {named}{consequence}")
    count = len({video for videos in missing.values() for video in videos})
    warnings.warn(f"MOSI .csd folder {folder}: {count} labelled video(s) missing from a .csd file keep their "
                  f"segments with the missing modality empty (one masked zero step): {'; '.join(parts)}",
                  RuntimeWarning, stacklevel=4)


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


def _in_memory(dataset) -> None:
    """Read every sequence's HDF5 datasets into numpy arrays and close its file, so the alignment reads no disk."""
    for sequence in dataset.computational_sequences.values():
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


def _split_segments(segments: list[dict], dims: dict[str, int]) -> dict[str, RawSplit]:
    """Segments into the standard folds, each modality right-padded to its longest segment."""
    from mmsdk.mmdatasdk import cmu_mosi

    folds = cmu_mosi.standard_folds
    fold_of = {video: name for name, videos in zip(SPLITS, (
        folds.standard_train_fold, folds.standard_valid_fold, folds.standard_test_fold)) for video in videos}
    outside = sorted({s["video"] for s in segments} - fold_of.keys())
    if outside:
        logger.warning("MOSI .csd: %d video(s) outside the standard folds dropped: %s", len(outside),
                       ", ".join(outside[:5]))
    splits = {}
    for name in SPLITS:
        chosen = [s for s in segments if fold_of.get(s["video"]) == name]
        splits[name] = RawSplit(
            modalities={m: _pad_right([s[m] for s in chosen], dims[m]) for m in MODALITIES},
            labels=np.array([s["label"] for s in chosen], dtype=np.float32),
            ids=[f"{s['video']}_{s['index'] + 1}" for s in chosen],
        )
    return splits


def _pad_right(sequences: list[np.ndarray], dim: int) -> RawModality:
    """``[n_i, dim]`` arrays into ``[N, max n_i, dim]`` with zero rows after each (at least one step)."""
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    x = np.zeros((len(sequences), max(1, int(lengths.max(initial=0))), dim), dtype=np.float32)
    for row, sequence in enumerate(sequences):
        x[row, : len(sequence)] = sequence
    return RawModality(x, lengths, np.zeros(len(sequences), dtype=bool))


def _read_cache(path: Path) -> tuple[dict[str, RawSplit], dict[str, dict[str, int]]] | None:
    """The cached splits and missing videos (as ``_align`` gives them), or None when the file is missing or
    unreadable. Stored ragged: per split and modality the real rows of all samples concatenated ``[sum n_i, dim]``
    with their lengths ``[N]``; the missing videos as JSON text."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            splits = {
                name: RawSplit(
                    modalities={m: _pad_right(_unconcat(stored[f"{name}.{m}.rows"], stored[f"{name}.{m}.lengths"]),
                                              stored[f"{name}.{m}.rows"].shape[1]) for m in MODALITIES},
                    labels=stored[f"{name}.labels"], ids=[str(i) for i in stored[f"{name}.ids"]],
                ) for name in SPLITS
            }
            return splits, json.loads(str(stored["missing"]))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


def _unconcat(rows: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    return np.split(rows, np.cumsum(lengths)[:-1]) if len(lengths) else []


def _write_cache(path: Path, splits: dict[str, RawSplit], missing: dict[str, dict[str, int]]) -> bool:
    arrays = {"missing": np.array(json.dumps(missing))}
    for name, split in splits.items():
        arrays[f"{name}.labels"] = split.labels
        arrays[f"{name}.ids"] = np.array(split.ids, dtype=str)
        for m, raw in split.modalities.items():
            rows = [x[:n] for x, n in zip(raw.x, raw.lengths)]
            arrays[f"{name}.{m}.rows"] = np.concatenate([np.zeros((0, raw.x.shape[-1]), np.float32), *rows])
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
        logger.warning("MOSI .csd: could not write the alignment cache %s (%s); the next load aligns again",
                       path, error)
        return False
