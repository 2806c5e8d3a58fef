"""The processed MOSI pickles of the MulT and MMSA projects: ``{train, valid, test}`` dicts of numpy arrays.

MulT (``mosi_data.pkl`` word-aligned, ``mosi_data_noalign.pkl`` unaligned; github.com/yaohungt/Multimodal-Transformer):
each split holds ``text`` ``[N, 50, 300]`` (GloVe), ``audio`` ``[N, T_a, 5]`` (COVAREP; 50 aligned, 375 unaligned),
``vision`` ``[N, T_v, 20]`` (Facet; 50 aligned, 500 unaligned), ``labels`` ``[N, 1, 1]`` and usually ``id``
``[N, 3]`` of bytes. Sequences are left-padded with zero rows and no lengths are stored: a sample's real steps
run from its first non-zero row to the end. The segment id is the first ``id`` column (``video_clip``, the
numbering of MMSA's ``label.csv``); without ``id``, ids are ``<split>_<index>``.

MMSA (``aligned_50.pkl``, ``unaligned_50.pkl``; github.com/thuiar/MMSA): each split holds ``text`` ``[N, 50, 768]``
(BERT features), ``text_bert`` ``[N, 3, 50]`` (token ids, attention mask, segment ids), ``audio``, ``vision``,
``regression_labels`` ``[N]``, ``id`` (``video$_$clip``, returned as ``video_clip``) and, in the unaligned file,
``audio_lengths`` / ``vision_lengths`` ``[N]``. The text mask is the BERT attention mask (``text_bert[:, 1]``,
right-padded; [CLS] and [SEP] count as real steps), since BERT features at padded positions are not zero.
Audio and vision use the stored lengths where present, else zero rows; the padding side is found per sample
(see ``prepare.padding_side`` and ``prepare.zero_row_lengths``). ``classification_labels``, ``annotations`` and
``raw_text`` are not used.

Unpickling can run code: read only pickles from a source you trust.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from ..dataset import SPLITS, DataError
from .prepare import MODALITIES, RawModality, RawSplit, padding_side, zero_row_lengths

MULT_KEYS = ("text", "audio", "vision", "labels")
MMSA_KEYS = ("text", "text_bert", "audio", "vision", "regression_labels", "id")
FORMAT_NAMES = {"mult": "MulT pickle", "mmsa": "MMSA pickle"}
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def read_pickle(path: Path, describe: str) -> tuple[str, str, dict[str, RawSplit]]:
    """Read a MulT or MMSA pickle: its format (``"mult"`` / ``"mmsa"``), the source as named in messages and the
    raw splits. ``describe`` is the one-line list of accepted formats used when the file is none of them."""
    data = _unpickle(path, describe)
    present = [data[name] for name in SPLITS if isinstance(data, dict) and isinstance(data.get(name), dict)]
    if not present:
        raise DataError(f"MOSI file {path} is a pickle but not of MOSI splits (it holds {_sketch(data)}); "
                        f"expected {describe}")
    if "regression_labels" in present[0] or "text_bert" in present[0]:
        fmt, read = "mmsa", _mmsa_split
    elif "labels" in present[0]:
        fmt, read = "mult", _mult_split
    else:
        raise DataError(f"MOSI file {path} holds splits with keys {sorted(map(str, present[0]))}, neither MulT "
                        f"({', '.join(MULT_KEYS)}) nor MMSA ({', '.join(MMSA_KEYS)}); expected {describe}")
    where = f"MOSI file {path} ({FORMAT_NAMES[fmt]})"
    splits = {}
    for name in SPLITS:
        if not isinstance(data.get(name), dict):
            raise DataError(f"{where}: no split {name!r}; expected a dict with the splits {', '.join(SPLITS)}")
        splits[name] = read(data[name], f"{where}, split {name!r}", name)
    return fmt, where, splits


def _unpickle(path: Path, describe: str) -> object:
    """The unpickled object; ``DataError`` for an HDF5 file (a single .csd) or anything that is not a pickle."""
    try:
        handle = open(path, "rb")  # closed by the with below
    except OSError as error:
        raise DataError(f"cannot read MOSI file {path}: {error.strerror or error}") from None
    with handle:
        if handle.read(8) == HDF5_SIGNATURE:
            raise DataError(f"MOSI file {path} is a single HDF5 (.csd) file; pass the folder that holds the "
                            f"CMU-MultimodalSDK .csd files instead (expected {describe})")
        for encoding in ("ASCII", "latin1"):  # latin1 reads Python 2 pickles of numpy arrays
            handle.seek(0)
            try:
                return pickle.load(handle, encoding=encoding)
            except Exception as caught:  # any unpickling failure means "none of the formats"
                error = caught
                if not isinstance(caught, UnicodeDecodeError):
                    break
    raise DataError(f"MOSI file {path} is none of the accepted formats (not a pickle: {type(error).__name__}); "
                    f"expected {describe}")


def _sketch(data: object) -> str:
    if isinstance(data, dict):
        return f"a dict with keys {sorted(map(str, data))[:8]}"
    return f"a {type(data).__name__}"


def _mult_split(split: dict, where: str, name: str) -> RawSplit:
    _require(split, MULT_KEYS, where)
    labels = _labels(split, "labels", where)
    modalities = {m: zero_row_lengths(_sequence(split, m, len(labels), where), side="left") for m in MODALITIES}
    if "id" in split:
        stored = _rows(split, "id", len(labels), where)
        ids = [_text(value) for value in (stored[:, 0] if stored.ndim == 2 else stored)]
    else:
        ids = [f"{name}_{index}" for index in range(len(labels))]
    return RawSplit(modalities, labels, ids)


def _mmsa_split(split: dict, where: str, name: str) -> RawSplit:
    _require(split, MMSA_KEYS, where)
    labels = _labels(split, "regression_labels", where)
    n = len(labels)
    text = _sequence(split, "text", n, where)
    bert = _rows(split, "text_bert", n, where)
    if bert.ndim != 3 or bert.shape[1] != 3 or bert.shape[2] != text.shape[1]:
        raise DataError(f"{where}: 'text_bert' has shape {list(bert.shape)}; expected [{n}, 3, {text.shape[1]}] "
                        f"(token ids, attention mask, segment ids for each text step)")
    modalities = {"text": RawModality(text, (bert[:, 1] != 0).sum(axis=1), np.zeros(n, dtype=bool))}
    for modality in ("audio", "vision"):
        x = _sequence(split, modality, n, where)
        key = f"{modality}_lengths"
        if key in split:
            lengths = _rows(split, key, n, where).reshape(-1).astype(np.int64)
            if lengths.shape != (n,) or lengths.min() < 0 or lengths.max() > x.shape[1]:
                raise DataError(f"{where}: {key!r} must hold {n} lengths in 0..{x.shape[1]}")
            modalities[modality] = padding_side(x, lengths)
        else:
            modalities[modality] = zero_row_lengths(x, side="auto")
    ids = [_text(value).replace("$_$", "_") for value in _rows(split, "id", n, where)]
    return RawSplit(modalities, labels, ids)


def _require(split: dict, keys: tuple[str, ...], where: str) -> None:
    missing = [key for key in keys if key not in split]
    if missing:
        raise DataError(f"{where} lacks the key(s) {', '.join(map(repr, missing))}; expected {', '.join(keys)}")


def _rows(split: dict, key: str, n: int, where: str) -> np.ndarray:
    value = np.asarray(split[key])
    if value.ndim == 0 or value.shape[0] != n:
        raise DataError(f"{where}: {key!r} has shape {list(value.shape)}; expected {n} rows, one per label")
    return value


def _labels(split: dict, key: str, where: str) -> np.ndarray:
    labels = np.asarray(split[key])
    if labels.ndim == 0 or labels.size != labels.shape[0] or not np.issubdtype(labels.dtype, np.number):
        raise DataError(f"{where}: {key!r} has shape {list(labels.shape)} ({labels.dtype}); expected one "
                        f"sentiment score per segment")
    return labels.reshape(-1).astype(np.float32)


def _sequence(split: dict, key: str, n: int, where: str) -> np.ndarray:
    x = _rows(split, key, n, where)
    if x.ndim != 3 or x.shape[1] == 0 or not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{where}: {key!r} has shape {list(x.shape)} ({x.dtype}); expected [{n}, time, dim] numbers "
                        f"with time >= 1")
    return x


def _text(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
