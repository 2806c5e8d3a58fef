"""A disk cache of the datasets prepared from processed pickles (``find.load_pickles``), so that a second load of a
large file skips the unpickling and the preparation (MOSEI: about 6 GB of features in MulT's layout, 10 GB in
MMSA's).

One entry per pickle and corpus, ``<cache dir>/pickles/<corpus>-<digest of the file's resolved path>/`` (cache
dir: ``sdk.default_cache_dir()``: ``$FUSIONBENCH_CACHE``, else ``$XDG_CACHE_HOME/fusionbench``, else
``~/.cache/fusionbench``): every tensor of the prepared ``Dataset`` as a ``.npy`` file, and ``meta.json`` with the
key, the other fields (ids, info, task, ...), the shape, dtype and CRC-32 of each array and the warnings the
preparation gave. A later file or corpus at the same path replaces the entry, so stale entries do not pile up.

An entry is used only when its key matches: the file's resolved path, size, modification time (ns), inode number
and status-change time (ctime, ns), the corpus (every ``Corpus`` field), the layout ``VERSION`` and a digest of the
source of the code that prepared it (this package and ``dataset.py``), so an edited reader never serves what an
older one prepared. Size and mtime alone miss a file replaced by one of the same size and mtime (``cp -p`` or
``rsync -a`` of another version, an unpacked archive, an edit followed by ``os.utime`` or ``touch -r``): a file
renamed over the old one has another inode, and a file rewritten in place has a new ctime, which no user call
can set back (the kernel sets it on every change of content or metadata). The cost: a ``chmod``, ``chown`` or new
hard link of the file, or a copy of the data to another disk, rebuilds the entry once. A stale entry is rebuilt
(a log line at INFO); an entry that cannot be read (a missing or truncated file, a bad header, a CRC that differs)
is rebuilt with one log warning; an entry is never used unchecked. A cache that cannot be written (no permission,
a full disk) is skipped with one log warning and the dataset is returned as prepared.

A cached load memory-maps the arrays copy-on-write (``numpy.load(mmap_mode="c")``): the tensors share the page
cache's copy of the files until written to, so it allocates no second copy; the CRCs are checked first, by reading
each file once in large sequential reads (which leaves it in the page cache the maps then read). The warnings the
first load gave (``warnings.warn``: non-finite values replaced, extreme values; log warnings: non-standard split
sizes, ...) are given again, in the same order, on every cached load, with the path named as this load names it
(the entry keeps the name the first load used, e.g. ``/data/x.pkl``, and a load through ``$MOSEI_PATH`` replays
``/data/x.pkl (from $MOSEI_PATH)``). ``info["cache"]``: ``"hit"``, ``"stored"`` or ``"not stored"``;
``info["cache_file"]``: the entry's ``meta.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import hashlib
import importlib
import json
import logging
import os
import shutil
import tempfile
import warnings
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from ..dataset import Dataset, Split
from .prepare import Corpus
from .sdk import default_cache_dir

logger = logging.getLogger(__name__)

VERSION = 1  # the layout of an entry; the preparation's own version is the digest of its source
RECORDED_LOGGER = "benchmarks.data"  # the log warnings of every reader are recorded with the entry
ENTRY_CLASSES = {"Dataset": Dataset, "Split": Split}
READ_CHUNK = 4 << 20  # bytes per read while checking an array's CRC-32


class _Unusable(Exception):
    """An entry that must not be used; the message says why."""


def cached(path: Path, corpus: Corpus, build: Callable[[], Dataset], origin: str = "") -> Dataset:
    """The ``Dataset`` that ``build()`` prepares from the pickle at ``path`` for ``corpus``, read from the cache
    (``sdk.default_cache_dir()``) when an entry with the same key is there, else built and stored. Either way the
    warnings and log warnings of the preparation are given, naming the path as ``f"{path}{origin}"`` (``origin``:
    ``find.data_path``'s). Errors of ``build`` propagate (nothing is stored)."""
    key, named = _key(path, corpus), f"{path}{origin}"
    entry = default_cache_dir() / "pickles" / f"{corpus.name}-{hashlib.sha256(key['path'].encode()).hexdigest()[:16]}"
    meta_file = entry / "meta.json"
    try:
        dataset, meta = _read(entry, key)
    except _Unusable as reason:
        logger.warning("the cache %s of %s is unusable (%s); the file is read again and the cache rebuilt",
                       entry, named, reason)
    else:
        if dataset is not None:
            _replay(meta, named)
            logger.info("%s file %s: the prepared dataset read from the cache %s", corpus.title, named, entry)
            dataset.info = {**dataset.info, "cache": "hit", "cache_file": str(meta_file)}
            return dataset
    caught, logs = [], []
    try:
        with _recording(caught, logs):
            dataset = build()
    finally:
        for message in caught:
            warnings.warn_explicit(message.message, message.category, message.filename, message.lineno)
    recorded = [{"category": _category_name(m.category), "message": str(m.message), "filename": m.filename,
                 "lineno": m.lineno} for m in caught]
    stored = _write(entry, key, dataset, {"named": named, "warnings": recorded, "logs": logs})
    dataset.info = {**dataset.info, "cache": "stored" if stored else "not stored", "cache_file": str(meta_file)}
    return dataset


def _key(path: Path, corpus: Corpus) -> dict:
    """What an entry must match: the file (resolved path, size, mtime in ns, inode, ctime in ns), the corpus, the
    layout and code versions; JSON-normalised (tuples as lists) so that it compares equal to the stored key."""
    stat = path.stat()
    key = {"version": VERSION, "code": _code_digest(), "path": str(path.resolve()), "size": stat.st_size,
           "mtime_ns": stat.st_mtime_ns, "inode": stat.st_ino, "ctime_ns": stat.st_ctime_ns,
           "corpus": dataclasses.asdict(corpus)}
    return json.loads(json.dumps(key, default=lambda value: getattr(value, "__qualname__", None) or repr(value)))


@functools.cache
def _code_digest() -> str:
    """A digest of the source that reads and prepares the pickles: this package's modules and ``dataset.py``."""
    here = Path(__file__).resolve().parent
    sources = sorted(here.glob("*.py")) + [here.parent / "dataset.py"]
    return hashlib.sha256(b"".join(source.read_bytes() for source in sources)).hexdigest()[:16]


@contextlib.contextmanager
def _recording(caught: list, logs: list[dict]) -> Iterator[None]:
    """Record the warnings raised (into ``caught``, not shown) and the log records of level WARNING and above of the
    readers' loggers (into ``logs``, shown as usual) while the block runs."""
    handler = _LogRecorder(logs)
    recorded = logging.getLogger(RECORDED_LOGGER)
    recorded.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as raised:
            warnings.simplefilter("always")
            try:
                yield
            finally:
                caught.extend(raised)
    finally:
        recorded.removeHandler(handler)


class _LogRecorder(logging.Handler):
    def __init__(self, logs: list[dict]) -> None:
        super().__init__(logging.WARNING)
        self.logs = logs

    def emit(self, record: logging.LogRecord) -> None:
        self.logs.append({"logger": record.name, "level": record.levelno, "message": record.getMessage()})


def _replay(meta: dict, named: str) -> None:
    """Give again the warnings and log warnings recorded with an entry, the path named there (``meta["named"]``) now
    named as ``named``."""
    def renamed(message: str) -> str:
        return message.replace(meta["named"], named) if meta["named"] != named else message

    for message in meta["warnings"]:
        warnings.warn_explicit(renamed(message["message"]), _category(message["category"]), message["filename"],
                               message["lineno"])
    for log in meta["logs"]:
        logging.getLogger(log["logger"]).log(log["level"], "%s", renamed(log["message"]))


def _category_name(category: type[Warning]) -> str:
    return f"{category.__module__}:{category.__qualname__}"


def _category(name: str) -> type[Warning]:
    """The warning class named by ``_category_name``; ``UserWarning`` when it no longer exists."""
    module, _, qualname = name.partition(":")
    try:
        found = functools.reduce(getattr, qualname.split("."), importlib.import_module(module))
    except (ImportError, AttributeError):
        return UserWarning
    return found if isinstance(found, type) and issubclass(found, Warning) else UserWarning


def _read(entry: Path, key: dict) -> tuple[Dataset | None, dict]:
    """The dataset of the entry and its metadata; ``(None, {})`` when there is no entry or it is stale (another key).
    Raises ``_Unusable`` when the entry cannot be read or fails a check."""
    meta_file = entry / "meta.json"
    if not entry.exists():
        return None, {}
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, ValueError) as error:
        raise _Unusable(f"meta.json: {error}") from None
    if not isinstance(meta, dict) or "key" not in meta:
        raise _Unusable("meta.json holds no key")
    if meta["key"] != key:
        logger.info("the cache %s was written for another version of the file, the corpus or the readers; it is "
                    "rebuilt", entry)
        return None, {}
    if (not isinstance(meta.get("warnings"), list) or not isinstance(meta.get("logs"), list)
            or not isinstance(meta.get("named"), str)):
        raise _Unusable("meta.json holds no warnings, logs or path name")
    try:
        dataset = _decode(meta["dataset"], entry)
    except (OSError, ValueError, KeyError, TypeError) as error:  # DataError is a ValueError
        raise _Unusable(f"{type(error).__name__}: {error}") from None
    return dataset, meta


def _encode(value: object, name: str, arrays: dict[str, np.ndarray]) -> object:
    """``value`` as JSON, its tensors set aside in ``arrays`` (by ``name``, the file stem: ``train.xs.0``, ...) and
    described by shape, dtype and CRC-32. Raises ``TypeError`` for a value that would not come back equal (e.g. a
    dict with non-str keys, a numpy scalar)."""
    def inner(part: object) -> str:
        return f"{name}.{part}" if name else str(part)

    if isinstance(value, torch.Tensor):
        array = value.detach().cpu().numpy()
        arrays[name] = array
        return {"$tensor": name, "shape": list(array.shape), "dtype": array.dtype.str,
                "crc32": zlib.crc32(np.ascontiguousarray(array))}
    if type(value) in ENTRY_CLASSES.values():
        return {"$dataclass": type(value).__name__, "fields": {
            f.name: _encode(getattr(value, f.name), inner(f.name), arrays) for f in dataclasses.fields(value)}}
    if isinstance(value, tuple):
        return {"$tuple": [_encode(item, inner(i), arrays) for i, item in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(item, inner(i), arrays) for i, item in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) and not k.startswith("$") for k in value):
        return {k: _encode(item, inner(k), arrays) for k, item in value.items()}
    if value is None or type(value) in (str, int, float, bool):
        return value
    raise TypeError(f"{name or 'the dataset'} holds a {type(value).__name__}, which the cache does not "
                    f"store")


def _decode(value: object, entry: Path) -> object:
    """The value ``_encode`` described, its tensors read from ``entry`` (memory-mapped, copy-on-write) and checked
    against their shape, dtype and CRC-32 (``ValueError`` when one differs; the CRC covers every byte after the
    ``.npy`` header, so a file with bytes added is refused too)."""
    if isinstance(value, list):
        return [_decode(item, entry) for item in value]
    if not isinstance(value, dict):
        return value
    if "$tensor" in value:
        path = entry / f"{value['$tensor']}.npy"
        array = np.load(path, mmap_mode="c", allow_pickle=False)
        if list(array.shape) != value["shape"] or array.dtype.str != value["dtype"]:
            raise ValueError(f"{path.name} holds {array.dtype.str} {list(array.shape)}; the entry says "
                             f"{value['dtype']} {value['shape']}")
        if _file_crc(path, array.offset) != value["crc32"]:
            raise ValueError(f"{path.name}: its CRC-32 differs from the one stored (a damaged file)")
        return torch.from_numpy(array)
    if "$dataclass" in value:
        fields = {name: _decode(item, entry) for name, item in value["fields"].items()}
        return ENTRY_CLASSES[value["$dataclass"]](**fields)
    if "$tuple" in value:
        return tuple(_decode(item, entry) for item in value["$tuple"])
    return {k: _decode(item, entry) for k, item in value.items()}


def _file_crc(path: Path, offset: int) -> int:
    """The CRC-32 of the bytes of ``path`` from ``offset`` to its end (an ``.npy`` file's data), read in chunks of
    ``READ_CHUNK`` bytes: sequential reads fill the page cache faster than the memory map's page faults would, and
    the map then reads from there."""
    crc, buffer = 0, bytearray(READ_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        handle.seek(offset)
        while count := handle.readinto(buffer):
            crc = zlib.crc32(view[:count], crc)
    return crc


def _write(entry: Path, key: dict, dataset: Dataset, given: dict) -> bool:
    """Store ``dataset`` (its ``info`` without the cache fields) as ``entry``, replacing what is there, with what the
    preparation gave (``given``: ``named``, the path as its messages name it; ``warnings``; ``logs``): written into a
    temporary folder beside it, then renamed. False, with one log warning, when it cannot be written."""
    arrays: dict[str, np.ndarray] = {}
    try:
        info = {k: v for k, v in dataset.info.items() if k not in ("cache", "cache_file")}
        encoded = _encode(dataclasses.replace(dataset, info=info), "", arrays)
    except TypeError as error:
        logger.warning("the prepared dataset is not cached (%s); the next load reads the file again", error)
        return False
    meta = {"key": key, "dataset": encoded, **given}
    temporary = None
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        temporary = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
        for name, array in arrays.items():
            np.save(temporary / f"{name}.npy", array, allow_pickle=False)
        (temporary / "meta.json").write_text(json.dumps(meta))
        _install(temporary, entry)
        temporary = None
        return True
    except OSError as error:
        logger.warning("could not write the cache %s (%s); the next load reads the file again", entry, error)
        return False
    finally:  # also on an interruption: no half-written folder is left behind
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)


def _install(temporary: Path, entry: Path) -> None:
    """Rename ``temporary`` to ``entry``; an existing entry is moved aside first and then deleted. When another
    process installed the same entry meanwhile, ``temporary`` is deleted instead."""
    old = None
    if entry.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{entry.name}.old.", dir=entry.parent))
        os.replace(entry, old)
    try:
        os.replace(temporary, entry)
    except OSError as error:
        if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
        shutil.rmtree(temporary, ignore_errors=True)
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
