"""The processed affect pickles of the MulT, MMSA and MultiBench projects: ``{train, valid, test}`` dicts of numpy
arrays. Which dataset and layout a file holds is told from its content (``recognise``); a loader given another
dataset's file refuses it in one line.

Both datasets share the layouts below; MOSEI's feature sizes differ (MulT: text 300, audio COVAREP 74, vision
Facet 35, audio / vision 500 steps unaligned; MMSA: text 768, audio 74, vision 35). The readers take the sizes
the file holds.

MulT (``mosi_data.pkl`` word-aligned, ``mosi_data_noalign.pkl`` unaligned; github.com/yaohungt/Multimodal-Transformer):
each split holds ``text`` ``[N, 50, 300]`` (GloVe), ``audio`` ``[N, T_a, 5]`` (COVAREP; 50 aligned, 375 unaligned),
``vision`` ``[N, T_v, 20]`` (Facet; 50 aligned, 500 unaligned), ``labels`` ``[N, 1, 1]`` and usually ``id``
``[N, 3]`` of bytes. Sequences are padded with zero rows and no lengths are stored: MulT's own files pad on
the left, files users write themselves (``torch.nn.utils.rnn.pad_sequence``) often on the right. The side is found
per sample from where its zero rows are (``prepare.zero_row_padding``; a sample with zero rows at both ends takes
the side of the file's other samples, ``prepare.settle_padding``). The segment id is the first ``id`` column
(``video_clip``, the numbering of MMSA's ``label.csv``); without ``id``, ids are ``<split>_<index>``.

MMSA (``aligned_50.pkl``, ``unaligned_50.pkl``; github.com/thuiar/MMSA): each split holds ``text`` ``[N, 50, 768]``
(BERT features), ``text_bert`` ``[N, 3, 50]`` (token ids, attention mask, segment ids), ``audio``, ``vision``,
``regression_labels`` ``[N]``, ``id`` (``video$_$clip``, returned as ``video_clip``) and, in the unaligned file,
``audio_lengths`` / ``vision_lengths`` ``[N]``. The text mask is the BERT attention mask (``text_bert[:, 1]``,
right-padded; [CLS] and [SEP] count as real steps), since BERT features at padded positions are not zero.
Audio and vision use the stored lengths where present, else zero rows; the padding side is found per sample as
for MulT (``prepare.stored_padding``, ``prepare.zero_row_padding``). ``classification_labels``, ``annotations``
and ``raw_text`` are not used. CH-SIMS's MMSA and MMSA-FET files also hold unimodal labels, ``regression_labels_T``
/ ``_A`` / ``_V`` ``[N]``: those present go to the split's extras as ``labels_text`` / ``labels_audio`` /
``labels_vision`` (``UNIMODAL_LABELS``).

MultiBench (``humor.pkl``, ``sarcasm.pkl``, ``mosi_raw.pkl``, ``mosei_raw.pkl``; ``multibench``): MulT's keys and
left padding, read by the MulT reader, then as MultiBench reads them: samples without text dropped, sarcasm's -1
made class 0.

Only the splits ``train``, ``valid`` and ``test`` are read: another key beside them (``extra``, a ``dev`` split
beside ``valid``) is named in one log warning, except MMSA-FET's ``config`` (its feature-extraction settings,
``METADATA_KEYS``); a file without ``valid`` is refused, naming the other keys it holds (e.g. ``dev``).

Every array of the wrong shape or type (including ragged lists of unpadded sequences) ends in one ``DataError``
line that names the file, the split and the key. A path read from the corpus's environment variable is named
``<path> (from $MOSI_PATH)`` in every message (``origin``).

Unpickling can run code: read only pickles from a source you trust.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..dataset import SPLITS, DataError
from .multibench import drop_textless, positive_class
from .prepare import MODALITIES, Corpus, Padded, RawSplit, settle_padding, stored_padding, zero_row_padding
from .recognise import BINARY_LABELS, UNIMODAL_LABELS, Layout, Survey, choose, survey

logger = logging.getLogger(__name__)

MULT_KEYS = ("text", "audio", "vision", "labels")
MMSA_KEYS = ("text", "text_bert", "audio", "vision", "regression_labels", "id")
FORMAT_NAMES = {"mult": "MulT pickle", "mmsa": "MMSA pickle", "multibench": "MultiBench pickle"}
METADATA_KEYS = ("config",)  # keys beside the splits that are known and not read: MMSA-FET's settings
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


@dataclass
class PickleFile:
    """A pickle as ``read_pickle`` reads it. ``fmt``: ``"mult"``, ``"mmsa"`` or ``"multibench"``; ``where``: the
    source as named in messages (``"<title> file <path> (<format>)"``); ``splits``: the raw splits; ``layout``: the
    documented layout it is read as (``recognise.LAYOUTS``; None for a corpus without one); ``found``: the facts
    recognition saw; ``dropped``: per split, the ids of the samples dropped (MultiBench's files, else none)."""

    fmt: str
    where: str
    splits: dict[str, RawSplit]
    layout: Layout | None
    found: Survey
    dropped: dict[str, list[str]] = field(default_factory=dict)


def read_pickle(path: Path, corpus: Corpus, origin: str = "") -> PickleFile:
    """Read a MulT, MMSA or MultiBench pickle of ``corpus``, recognised from its content (``recognise``). A file of
    another dataset, or anything else, raises a one-line ``DataError`` that names the file and says what it holds
    and which ``--dataset`` reads it, or ends with ``corpus.accepted``. MultiBench's files lose their samples
    without text and sarcasm's -1 becomes class 0, as MultiBench reads them (``multibench``); the drop is logged,
    as are keys besides the splits. ``origin``: what messages add after the path (``find.data_path``)."""
    title, describe, named = corpus.title, corpus.accepted, f"{path}{origin}"
    data = _unpickle(path, f"{title} file {named}", describe)
    present = [data[name] for name in SPLITS if isinstance(data, dict) and isinstance(data.get(name), dict)]
    if not present:
        raise DataError(f"{title} file {named} is a pickle but not of {title} splits (it holds {_sketch(data)}); "
                        f"expected {describe}")
    found = survey(data)
    if found.family is None:
        raise DataError(f"{title} file {named} holds splits with keys {sorted(map(str, present[0]))}, neither MulT "
                        f"or MultiBench ({', '.join(MULT_KEYS)}) nor MMSA ({', '.join(MMSA_KEYS)}); "
                        f"expected {describe}")
    layout = choose(found, corpus, f"{title} file {named}")
    fmt = layout.reader if layout is not None else found.family
    read = _mmsa_split if fmt == "mmsa" else _mult_split
    where = f"{title} file {named} ({FORMAT_NAMES[fmt]})"
    others = [key for key in data if key not in SPLITS and key not in METADATA_KEYS]
    listed = ", ".join(map(repr, others))
    read_splits, dropped = {}, {}
    for name in SPLITS:
        if not isinstance(data.get(name), dict):
            raise DataError(f"{where}: no split {name!r}" + (f" (it also holds {listed})" if others else "")
                            + f"; expected a dict with the splits {', '.join(SPLITS)}")
        padded, labels, split_ids = read(data[name], f"{where}, split {name!r}", name)
        if fmt == "multibench":
            padded, labels, split_ids, dropped[name] = drop_textless(padded, labels, split_ids)
            if layout.labels in BINARY_LABELS:
                labels = positive_class(labels)
        read_splits[name] = padded, labels, split_ids
    _log_dropped(dropped, where)
    if others:
        several = len(others) > 1
        logger.warning("%s: the key%s %s besides the splits %s %s not read", where, "s" if several else "", listed,
                       ", ".join(SPLITS), "are" if several else "is")
    ids = {name: split_ids for name, (_, _, split_ids) in read_splits.items()}
    settled = {m: settle_padding({name: padded[m] for name, (padded, _, _) in read_splits.items()}, ids, where, m)
               for m in MODALITIES}
    splits = {name: RawSplit({m: settled[m][name] for m in MODALITIES}, labels, ids[name],
                             _unimodal_labels(data[name], len(labels), f"{where}, split {name!r}"))
              for name, (_, labels, _) in read_splits.items()}
    return PickleFile(fmt, where, splits, layout, found, dropped)


def _log_dropped(dropped: dict[str, list[str]], where: str) -> None:
    total = sum(map(len, dropped.values()))
    if total:
        name, first = next((name, ids[0]) for name, ids in dropped.items() if ids)
        logger.warning("%s: dropped %d sample(s) whose text is all zero (%s; first: %r of split %r), as MultiBench's "
                       "get_data (drop_entry) does: they hold no word for the other modalities to align to", where,
                       total, ", ".join(f"{split} {len(ids)}" for split, ids in dropped.items()), first, name)


def _unpickle(path: Path, source: str, describe: str) -> object:
    """The unpickled object; ``DataError`` for an HDF5 file (a single .csd) or anything that is not a pickle.
    ``source`` names the file in messages (``"MOSI file /data/x.pkl"``)."""
    try:
        handle = open(path, "rb")  # closed by the with below
    except OSError as error:
        raise DataError(f"cannot read {source}: {error.strerror or error}") from None
    with handle:
        if handle.read(8) == HDF5_SIGNATURE:
            raise DataError(f"{source} is a single HDF5 (.csd) file; pass the folder that holds the "
                            f"CMU-MultimodalSDK .csd files instead (expected {describe})")
        for encoding in ("ASCII", "latin1"):  # latin1 reads Python 2 pickles of numpy arrays
            handle.seek(0)
            try:
                return pickle.load(handle, encoding=encoding)
            except Exception as caught:  # any unpickling failure means "none of the formats"
                error = caught
                if not isinstance(caught, UnicodeDecodeError):
                    break
    raise DataError(f"{source} is none of the accepted formats (not a pickle: {type(error).__name__}); "
                    f"expected {describe}")


def _sketch(data: object) -> str:
    if isinstance(data, dict):
        return f"a dict with keys {sorted(map(str, data))[:8]}"
    return f"a {type(data).__name__}"


def _mult_split(split: dict, where: str, name: str) -> tuple[dict[str, Padded], np.ndarray, list[str]]:
    """One MulT split: per modality the padded arrays, the labels ``[N]`` and the segment ids."""
    _require(split, MULT_KEYS, where)
    labels = _labels(split, "labels", where)
    padded = {m: zero_row_padding(_sequence(split, m, len(labels), where)) for m in MODALITIES}
    ids = _ids(split, len(labels), where) if "id" in split else [f"{name}_{i}" for i in range(len(labels))]
    return padded, labels, ids


def _mmsa_split(split: dict, where: str, name: str) -> tuple[dict[str, Padded], np.ndarray, list[str]]:
    """One MMSA split: per modality the padded arrays, the labels ``[N]`` and the segment ids."""
    _require(split, MMSA_KEYS, where)
    labels = _labels(split, "regression_labels", where)
    n = len(labels)
    text = _sequence(split, "text", n, where)
    bert = _rows(split, "text_bert", n, where)
    if bert.ndim != 3 or bert.shape[1] != 3 or bert.shape[2] != text.shape[1]:
        raise DataError(f"{where}: 'text_bert' has shape {list(bert.shape)}; expected [{n}, 3, {text.shape[1]}] "
                        f"(token ids, attention mask, segment ids for each text step)")
    words = (bert[:, 1] != 0).sum(axis=1)
    padded = {"text": Padded(text, words, words, np.full(n, -1, dtype=np.int8))}  # BERT pads on the right
    for modality in ("audio", "vision"):
        x = _sequence(split, modality, n, where)
        key = f"{modality}_lengths"
        if key in split:
            lengths = _rows(split, key, n, where)
            lengths = lengths.reshape(n) if lengths.size == n else lengths
            if (lengths.shape != (n,) or not np.issubdtype(lengths.dtype, np.number)
                    or not np.isin(lengths, np.arange(x.shape[1] + 1)).all()):
                raise DataError(f"{where}: {key!r} has shape {list(lengths.shape)} ({lengths.dtype}); expected {n} "
                                f"whole numbers in 0..{x.shape[1]}, the real steps of each {modality} sequence")
            padded[modality] = stored_padding(x, lengths.astype(np.int64))
        else:
            padded[modality] = zero_row_padding(x)
    return padded, labels, [segment.replace("$_$", "_") for segment in _ids(split, n, where)]


def _unimodal_labels(split: dict, n: int, where: str) -> dict[str, np.ndarray]:
    """The unimodal labels the split holds (``UNIMODAL_LABELS``), each ``[n]`` float32, under their extras name."""
    found = {}
    for key, name in UNIMODAL_LABELS.items():
        if key in split:
            found[name] = _labels(split, key, where)
            if len(found[name]) != n:
                raise DataError(f"{where}: {key!r} holds {len(found[name])} values; expected {n}, one per segment")
    return found


def _require(split: dict, keys: tuple[str, ...], where: str) -> None:
    missing = [key for key in keys if key not in split]
    if missing:
        raise DataError(f"{where} lacks the key(s) {', '.join(map(repr, missing))}; expected {', '.join(keys)}")


def _array(split: dict, key: str, where: str) -> np.ndarray:
    """``split[key]`` as one numpy array; ``DataError`` when it is ragged (e.g. a list of unpadded sequences)."""
    try:
        return np.asarray(split[key])
    except (ValueError, TypeError):
        raise DataError(f"{where}: {key!r} holds items of different shapes (a list of unpadded sequences?); "
                        f"expected one array, sequences padded to one length") from None


def _rows(split: dict, key: str, n: int, where: str) -> np.ndarray:
    value = _array(split, key, where)
    if value.ndim == 0 or value.shape[0] != n:
        raise DataError(f"{where}: {key!r} has shape {list(value.shape)}; expected {n} rows, one per label")
    return value


def _ids(split: dict, n: int, where: str) -> list[str]:
    """The segment ids: ``id`` ``[N]``, or ``[N, k]`` whose first column is the id (MulT: id, start, end)."""
    stored = _rows(split, "id", n, where)
    if stored.ndim not in (1, 2):
        raise DataError(f"{where}: 'id' has shape {list(stored.shape)}; expected [{n}] segment ids or [{n}, k] "
                        f"with the segment id first")
    return [_text(value) for value in (stored[:, 0] if stored.ndim == 2 else stored)]


def _labels(split: dict, key: str, where: str) -> np.ndarray:
    labels = _array(split, key, where)
    if labels.ndim == 0 or labels.size != labels.shape[0] or not np.issubdtype(labels.dtype, np.number):
        raise DataError(f"{where}: {key!r} has shape {list(labels.shape)} ({labels.dtype}); expected one number "
                        f"per segment ([N], [N, 1] or [N, 1, 1])")
    return labels.reshape(-1).astype(np.float32)


def _sequence(split: dict, key: str, n: int, where: str) -> np.ndarray:
    x = _rows(split, key, n, where)
    if x.ndim != 3 or x.shape[1] == 0 or not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{where}: {key!r} has shape {list(x.shape)} ({x.dtype}); expected [{n}, time, dim] numbers "
                        f"with time >= 1")
    return x


def _text(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
