"""Your own data (``--dataset arrays``): named arrays per split, read from files or handed over from Python.

A researcher with new modalities (sensors, EEG, video features) benchmarks every fusion on them without writing a
loader. Both entry points go through one code path (``_build``), so every check below is made the same way:

* files: ``python -m benchmarks.run --dataset arrays --data-path PATH`` (``load_dataset("arrays", PATH)``), PATH
  being either a folder holding ``train.npz``, ``valid.npz`` and ``test.npz`` (``numpy.savez``) with
  ``dataset.json`` beside them, or one HDF5 file with groups ``train``, ``valid`` and ``test`` whose root
  attributes hold the declaration;
* Python: ``from_arrays(splits, task, ...)`` returns the ``Dataset``; ``write_arrays(path, splits, task, ...)``
  checks the arrays the same way and writes them in the file layout, so every command (``run``, ``tune``,
  ``ablate``, ``probe``) reads them by path (``RunSpec(dataset="arrays", dataset_path=path)``). A loader of your
  own (``@register_dataset("eeg")`` returning ``from_arrays(..., name="eeg")``, its module named in
  ``FUSIONBENCH_PLUGINS``) makes them ``--dataset eeg``.

The arrays of a split (the keys of its npz file, HDF5 group or dict), ``N`` samples:

* ``x_<modality>``: ``[N, T, D]`` (``T`` steps of ``D`` features) or ``[N, D]`` (one step); int or float, stored
  as float32. ``T`` may differ between modalities and splits, ``D`` not between splits; at least 2 modalities,
  the same in every split.
* ``lengths_<modality>`` (optional): ``[N]`` whole numbers in ``0..T``: the first ``lengths`` steps are real, the
  rest padding (right padding).
* ``mask_<modality>`` (optional, instead of lengths): ``[N, T]`` bool or 0/1, True marking a real step wherever it
  is. The fusions read the real steps first, so each sample's real steps are moved to the front in their order:
  left padding is read as padding, and a gap (padding between real steps) is closed, with one warning.
  Without lengths or mask every step is real (an all-zero row is a real step, not padding).
* ``labels``: ``[N]`` (or ``[N, 1]``): real values for a regression task (``regression``, ``sentiment``), class
  numbers ``0..K-1`` for a classification task (``binary``, ``multiclass``; int, bool or whole floats); for a
  multi-label task (``multilabel``, ``emotions``) ``[N, K]`` of 0/1, one column per label.
* ``ids`` (optional): ``[N]`` str or int, unique over the three splits (default ``<split>_<row>``).
* ``extra_<name>`` (optional): ``[N, ...]`` numbers, kept as ``Split.extras[name]`` (float32), e.g. one label per
  modality for fusions that use auxiliary targets; the same names in every split.

The declaration (``dataset.json``, the HDF5 root attributes, or ``from_arrays``'s arguments): ``task`` (required)
a registered task (``tasks.list_tasks()``), whose loss, metrics and model selection then apply; ``name``: the data's
name in messages and ``info["name"]`` (default the folder's or file's name); ``modalities``: their order (default
the order of the train split's ``x_`` arrays as stored: as written for ``numpy.savez`` and a dict, as the file
lists them for HDF5, alphabetical unless written with ``track_order``); ``num_classes`` (classification: default
``len(label_names)``, else the largest label + 1; a multi-label task: the labels' ``K``); ``label_names``: one per
class (per label for a multi-label task). Another key is refused (a misspelt key is not ignored).

Values are treated as the affect corpora's (``affect.prepare``): padding is set to 0 whatever it holds (NaN
included); non-finite values at real steps are replaced by 0 with ONE warning per load that counts them per
modality (``info["nonfinite_replaced"]``); finite values of magnitude above 1e6 are kept with one warning per
modality (``info["extreme"]``). A sample with no real step in a modality keeps one zero step marked real
(``info["empty"]``), with one warning. Features are used as given (not standardised).

Memory: the features (``x_``, ``extra_``) are read and prepared in chunks of samples (``affect.prepare``'s
``sample_chunks``, 4 MB of values each): a numeric array of an NPZ archive is read from its stream and one of an
HDF5 file a chunk at a time, a given array (``from_arrays``) is copied once to float32 and left as given, and the
padding, non-finite values and moved steps are then done in that float32 copy where it lies, so loading holds the
float32 arrays, a few ``[N, T]`` masks and one chunk at a time (an NPZ array stored in Fortran order is read whole
first).

Every error is one ``DataError`` line naming the file (or ``from_arrays``'s split), the key, what was found and
what was expected; so is an array that cannot be read from a damaged or truncated file.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
import zlib
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from zipfile import BadZipFile

import h5py
import numpy as np
import torch

from tasks import Task, get_task, list_tasks

from .affect.prepare import NONFINITE, Found, clean_values, sample_chunks, warn_found
from .dataset import SPLITS, DataError, Dataset, Split
from .registry import register_dataset

logger = logging.getLogger(__name__)

DECLARATION = "dataset.json"
DECLARED_KEYS = ("task", "name", "modalities", "num_classes", "label_names")
PREFIXES = ("x_", "lengths_", "mask_", "extra_")
EXPECTED_KEYS = "x_<modality>, lengths_<modality>, mask_<modality>, labels, ids or extra_<name>"
LAYOUT = (f"a folder holding train.npz, valid.npz and test.npz (numpy.savez) and {DECLARATION}, or an HDF5 file "
          "with groups train, valid and test")
REGRESSION, CLASSIFICATION, MULTILABEL = "regression", "classification", "multilabel"  # tasks.KINDS
READ_ERRORS = (OSError, EOFError, BadZipFile, zlib.error)  # a damaged or truncated NPZ or HDF5 file, when read
NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


@dataclass(frozen=True)
class _Where:
    """How messages name the sources: ``declaration`` (``dataset.json``'s path, the HDF5 root attributes or
    ``from_arrays``'s arguments), ``splits`` (each split's file, HDF5 group or dict) and ``whole`` (the data as a
    whole, in warnings)."""

    declaration: str
    splits: dict[str, str]
    whole: str


def from_arrays(
    splits: Mapping[str, Mapping[str, object]], task: str, *, modalities: list[str] | None = None,
    num_classes: int | None = None, label_names: list[str] | None = None, name: str = "arrays",
) -> Dataset:
    """The ``Dataset`` of task ``task`` from the arrays of each split.

    ``splits``: ``{"train": {...}, "valid": {...}, "test": {...}}``, each a mapping of the module docstring's keys
    (``x_<modality>`` ``[N, T, D]`` or ``[N, D]``, optional ``lengths_<modality>`` ``[N]`` or ``mask_<modality>``
    ``[N, T]``, ``labels`` ``[N]`` or ``[N, K]``, optional ``ids`` ``[N]`` and ``extra_<name>`` ``[N, ...]``) to
    numpy arrays or anything ``numpy.asarray`` takes. ``modalities``: their order (default the train dict's
    order); ``num_classes``, ``label_names``: as the declaration's; ``name``: ``Dataset.name``, the records'
    ``dataset`` column: the name the data is registered under when a loader of yours returns it. The arrays
    are not modified (the features are copied once to float32, chunk by chunk). Raises ``DataError`` (one line
    naming the split and key) for anything the module docstring refuses.
    """
    declaration = {"task": task, "name": name, "modalities": modalities, "num_classes": num_classes,
                   "label_names": label_names}
    where = _Where("from_arrays", {split: f"from_arrays splits[{split!r}]" for split in SPLITS}, "from_arrays")
    return _build(splits, {k: v for k, v in declaration.items() if v is not None}, where, name,
                  {"format": "arrays", "path": None})


def write_arrays(
    path: str | Path, splits: Mapping[str, Mapping[str, object]], task: str, *, modalities: list[str] | None = None,
    num_classes: int | None = None, label_names: list[str] | None = None, name: str | None = None,
) -> Path:
    """Write ``splits`` (as ``from_arrays`` takes them) in the file layout and return ``path``: an HDF5 file when
    ``path`` ends in ``.h5`` or ``.hdf5`` (the declaration as root attributes), else a folder (created) of
    ``train.npz``, ``valid.npz``, ``test.npz`` and ``dataset.json``. The arrays are checked with ``from_arrays``
    first: ``DataError`` and nothing written when they would not load. ``name``: the declaration's (default the
    folder's or file's name when read)."""
    path = Path(path)
    from_arrays(splits, task, modalities=modalities, num_classes=num_classes, label_names=label_names)
    declaration = {"task": task, "name": name, "modalities": modalities, "num_classes": num_classes,
                   "label_names": label_names}
    declaration = {k: v for k, v in declaration.items() if v is not None}
    if path.suffix in (".h5", ".hdf5"):
        with h5py.File(path, "w") as handle:
            handle.attrs.update(declaration)
            for split in SPLITS:
                group = handle.create_group(split)
                for key, value in splits[split].items():
                    array = np.asarray(value)
                    group.create_dataset(key, data=array.astype(h5py.string_dtype()) if array.dtype.kind == "U"
                                         else array)
        return path
    path.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        np.savez(path / f"{split}.npz", **{key: np.asarray(value) for key, value in splits[split].items()})
    (path / DECLARATION).write_text(json.dumps(declaration, indent=2) + "\n")
    return path


@register_dataset("arrays")
def load_arrays(path: Path | None = None) -> Dataset:
    """The ``Dataset`` stored at ``path`` in the module docstring's layout: a folder of ``train.npz``,
    ``valid.npz``, ``test.npz`` and ``dataset.json``, or an HDF5 file (told by its content, not its name).
    ``Dataset.name`` is ``"arrays"`` (the ``--dataset`` value, which ``[datasets.arrays]`` tables and tuned
    parameters are keyed by); the declared name is ``info["name"]``. Raises ``DataError`` (one line naming the
    file and key) for a missing path, split, key or declaration and for anything ``from_arrays`` refuses."""
    if path is None:
        raise DataError(f"--dataset arrays reads your own data: pass --data-path with {LAYOUT}")
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path} does not exist; expected {LAYOUT}")
    if path.is_dir():
        return _load_folder(path)
    if h5py.is_hdf5(path):
        return _load_hdf5(path)
    raise DataError(f"{path} is a file but not an HDF5 file; expected {LAYOUT}")


def _load_folder(folder: Path) -> Dataset:
    files = {split: folder / f"{split}.npz" for split in SPLITS}
    missing = [file.name for file in files.values() if not file.is_file()]
    if missing:
        held = sorted(p.name for p in folder.iterdir() if p.suffix in (".npz", ".npy", ".h5", ".hdf5", ".json"))
        raise DataError(f"{folder}: no {', '.join(missing)}; expected {LAYOUT} (the folder holds "
                        f"{', '.join(held) if held else 'none of them'})")
    declaration = _read_json(folder / DECLARATION)
    where = _Where(str(folder / DECLARATION), {split: str(file) for split, file in files.items()},
                   f"arrays folder {folder}")
    with ExitStack() as stack:
        splits = {split: stack.enter_context(_open_npz(file)) for split, file in files.items()}
        return _build(splits, {"name": folder.name, **declaration}, where, "arrays",
                      {"format": "npz", "path": str(folder)})


def _open_npz(path: Path) -> np.lib.npyio.NpzFile:
    try:
        opened = np.load(path, allow_pickle=False)
    except (OSError, ValueError, BadZipFile) as error:
        raise DataError(f"{path}: not an NPZ archive ({_first_line(error)}); expected the file numpy.savez writes "
                        "with named arrays x_<modality>, labels, ...") from None
    if not isinstance(opened, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: holds one unnamed array (a .npy file); expected the file numpy.savez writes with "
                        "named arrays x_<modality>, labels, ...")
    return opened


def _read_json(path: Path) -> dict:
    example = '{"task": "multiclass", "modalities": ["eeg", "video"]}'
    if not path.is_file():
        raise DataError(f"{path} does not exist; expected a JSON object declaring the task, e.g. {example}")
    try:
        declaration = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: not valid JSON ({_first_line(error)}); expected an object such as "
                        f"{example}") from None
    if not isinstance(declaration, dict):
        raise DataError(f"{path}: holds a JSON {type(declaration).__name__}; expected an object such as {example}")
    return declaration


def _load_hdf5(path: Path) -> Dataset:
    with h5py.File(path, "r") as handle:
        for split in SPLITS:
            if not isinstance(handle.get(split), h5py.Group):
                raise DataError(f"{path}: no group {split!r}; expected groups train, valid and test holding "
                                f"x_<modality>, labels, ... (the file holds {', '.join(handle) or 'nothing'})")
        declaration = {key: _attribute(value) for key, value in handle.attrs.items()}
        where = _Where(f"{path} (root attributes)", {split: f"{path} group {split!r}" for split in SPLITS},
                       f"arrays file {path}")
        splits = {split: _Group(handle[split], where.splits[split]) for split in SPLITS}
        return _build(splits, {"name": path.stem, **declaration}, where, "arrays",
                      {"format": "hdf5", "path": str(path)})


def _attribute(value):
    """An HDF5 attribute as JSON would hold it: str, int, float or a list of them."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return [_attribute(item) for item in value.tolist()]
    return value.item() if isinstance(value, np.generic) else value


class _Group(Mapping):
    """An HDF5 group's datasets as numpy arrays (strings as ``str``), read when asked for."""

    def __init__(self, group: h5py.Group, where: str):
        self.group, self.where = group, where

    def __getitem__(self, key: str) -> np.ndarray:
        item = self.group[key]
        if not isinstance(item, h5py.Dataset):
            raise DataError(f"{self.where}: key {key!r} is a group; expected an array")
        if h5py.check_string_dtype(item.dtype) is not None:
            return np.asarray(item.asstr()[()], dtype=str)
        return item[()]

    def __contains__(self, key) -> bool:  # Mapping's would read the array
        return key in self.group

    def __iter__(self) -> Iterator[str]:
        return iter(self.group)

    def __len__(self) -> int:
        return len(self.group)


class _NpyMember:
    """One array of an NPZ archive, read from its stream in chunks of samples without reading the rest first:
    ``shape``, ``ndim`` and ``dtype`` from its ``.npy`` header; ``member[rows]`` (``rows`` a slice of samples, each
    starting where the previous one stopped, as ``sample_chunks`` gives them) the next samples ``[rows, ...]`` of
    ``dtype``. Raises ``EOFError`` when the data ends before the header's shape."""

    def __init__(self, stream, shape: tuple[int, ...], dtype: np.dtype):
        self.stream, self.shape, self.ndim, self.dtype = stream, shape, len(shape), dtype
        self.sample_bytes = dtype.itemsize * math.prod(shape[1:])

    def __getitem__(self, rows: slice) -> np.ndarray:
        count = len(range(*rows.indices(self.shape[0])))
        data = self.stream.read(count * self.sample_bytes)
        if len(data) < count * self.sample_bytes:
            raise EOFError(f"the data ends within sample {rows.start + len(data) // self.sample_bytes} of "
                           f"{self.shape[0]}")
        return np.frombuffer(data, dtype=self.dtype).reshape(count, *self.shape[1:])


@contextmanager
def _read_errors(where: str, key: str) -> Iterator[None]:
    """Reading ``key`` of a damaged or truncated file (``READ_ERRORS``) raises one ``DataError`` line."""
    try:
        yield
    except READ_ERRORS as error:
        raise DataError(f"{where}: key {key!r} cannot be read ({_first_line(error)}); expected the array as it was "
                        "written (the file is damaged or truncated: write it again)") from None


@contextmanager
def _chunked(arrays: Mapping, key: str, where: str) -> Iterator:
    """``arrays[key]`` (bool, int, unsigned int or float, else ``_array``'s ``DataError``) to read in chunks of
    samples: ``shape``, ``ndim``, ``dtype`` and ``x[rows]`` for the slices of ``sample_chunks``, in order. A
    numeric array of an NPZ archive is read from its stream (``_NpyMember``, closed on leaving) and one of an HDF5
    group chunk by chunk (its ``h5py.Dataset``), so no whole copy of it is made; anything else is ``_array``'s (a
    given array; a stored one numpy does not read by its header or that is not stored sample by sample: read
    whole, or refused with its error)."""
    with ExitStack() as stack:
        with _read_errors(where, key):
            stored = _stored(arrays, key, stack)
        yield _array(arrays, key, where, "biuf") if stored is None else stored


def _stored(arrays: Mapping, key: str, stack: ExitStack):
    """The numeric array ``key`` of an NPZ archive (``_NpyMember``, its stream closed by ``stack``) or of an HDF5
    group (``_Group``: its ``h5py.Dataset``), not yet read; None for anything else (see ``_chunked``)."""
    if isinstance(arrays, _Group):
        item = arrays.group[key]
        numeric = isinstance(item, h5py.Dataset) and item.shape is not None and item.dtype.kind in "biuf"
        return item if numeric else None
    if not isinstance(arrays, np.lib.npyio.NpzFile):
        return None
    names = arrays.zip.namelist()
    if key in names or f"{key}.npy" not in names:  # as NpzFile finds the member
        return None
    stream = stack.enter_context(arrays.zip.open(f"{key}.npy"))
    try:
        version = np.lib.format.read_magic(stream)
        if version not in NPY_HEADERS:  # 3.0: only for field names that need UTF-8, not a numeric array
            return None
        shape, fortran, dtype = NPY_HEADERS[version](stream)
    except ValueError:  # not an .npy array: NpzFile's reading says what it is
        return None
    return _NpyMember(stream, shape, dtype) if not fortran and dtype.kind in "biuf" else None


def _to_float32(x, shape: tuple[int, ...], where: str, key: str) -> np.ndarray:
    """A new float32 array of ``shape`` (``x``'s, or ``[N, 1, D]`` for ``x`` ``[N, D]``) holding the values of
    ``x`` (a ``_chunked`` array), read and converted chunk by chunk; a float64 value beyond float32's range becomes
    inf. Raises ``DataError`` when ``x``'s file cannot be read."""
    out = np.empty(shape, dtype=np.float32)
    for rows in sample_chunks(out):
        part = out[rows]
        with _read_errors(where, key), np.errstate(over="ignore"):
            part[...] = x[rows].reshape(part.shape)
    return out


def _build(splits: Mapping[str, Mapping], declaration: dict, where: _Where, name: str, info: dict) -> Dataset:
    """The dataset: the one code path of ``from_arrays`` and the file readers (see the module docstring)."""
    task = _task(declaration, where.declaration)
    if sorted(splits) != sorted(SPLITS):
        raise DataError(f"{where.whole}: splits {', '.join(map(repr, splits)) or 'none'}; expected train, valid and "
                        "test")
    keys = {split: _keys(splits[split], where.splits[split]) for split in SPLITS}
    modalities = _modalities(keys, declaration.get("modalities"), where)
    extras = list(keys["train"]["extra_"])
    for split in SPLITS[1:]:
        _same_names(keys[split]["extra_"], extras, "extra_", where.splits[split], where.splits["train"])
    found = {m: Found() for m in modalities}
    gaps = dict.fromkeys(modalities, 0)
    first_empty: dict[str, str] = {}
    dims: dict[str, int] = {}  # train's feature sizes
    built, labels = {}, {}
    for split in SPLITS:
        arrays, at = splits[split], where.splits[split]
        labels[split] = _labels(_array(arrays, "labels", at), task, at)
        n = len(labels[split])
        ids = _ids(arrays, n, at) if "ids" in arrays else [f"{split}_{row}" for row in range(n)]
        xs, masks = [], []
        for modality in modalities:
            x, mask, closed, empty = _modality(arrays, modality, n, dims.get(modality), at, found[modality])
            dims.setdefault(modality, x.shape[-1])
            gaps[modality] += closed
            if empty is not None and modality not in first_empty:
                first_empty[modality] = f"{ids[empty]!r} of split {split!r}"
            xs.append(x)
            masks.append(mask)
        extra = {key: _extra(arrays, key, n, at) for key in extras}
        built[split] = (xs, masks, ids, extra)
    _unique_ids({split: built[split][2] for split in SPLITS}, where)
    num_classes = _num_classes(task, declaration, labels, where)
    for split in SPLITS:
        problem = task.label_problem(labels[split], num_classes)
        if problem is not None:
            raise DataError(f"{where.splits[split]}: key 'labels': {problem}; expected {_expected_labels(task)}")
    warn_found(found, where.whole)
    _warn_steps(found, gaps, first_empty, where.whole)
    counts = {split: len(labels[split]) for split in SPLITS}
    logger.info("%s: task %s, train %d, valid %d, test %d samples, modalities %s", where.whole, task.name,
                *counts.values(), ", ".join(modalities))
    info = {
        **info, "name": str(declaration["name"]), "counts": counts, "label_names": declaration.get("label_names"),
        "extras": extras, "nonfinite_replaced": {m: sum(f.nonfinite.values()) for m, f in found.items()},
        "extreme": {m: f.extreme for m, f in found.items()}, "empty": {m: f.empty for m, f in found.items()},
        "padding": {m: {"left": f.left, "right": f.right, "gaps": gaps[m]} for m, f in found.items()},
    }
    made = {split: Split(xs=xs, masks=masks, labels=torch.from_numpy(labels[split]), ids=ids, extras=extra)
            for split, (xs, masks, ids, extra) in built.items()}
    return Dataset(name=name, **made, modality_names=modalities, task=task.name, num_classes=num_classes, info=info)


def _task(declaration: dict, where: str) -> Task:
    unknown = [key for key in declaration if key not in DECLARED_KEYS]
    if unknown:
        raise DataError(f"{where}: unknown key {unknown[0]!r}; expected {', '.join(DECLARED_KEYS)}")
    if "task" not in declaration:
        raise DataError(f"{where}: no key 'task'; expected the name of a registered task, e.g. \"binary\"")
    if declaration["task"] not in list_tasks():
        raise DataError(f"{where}: key 'task' is {declaration['task']!r}, not a registered task; expected one of "
                        f"{', '.join(list_tasks())}")
    return get_task(declaration["task"])


def _keys(arrays: Mapping, where: str) -> dict[str, list[str]]:
    """The split's keys by prefix (``x_``: modality names as stored, ...); an unknown key raises."""
    keys: dict[str, list[str]] = {prefix: [] for prefix in PREFIXES}
    for key in arrays:
        prefix = next((p for p in PREFIXES if key.startswith(p) and len(key) > len(p)), None)
        if prefix is not None:
            keys[prefix].append(key[len(prefix):])
        elif key not in ("labels", "ids"):
            raise DataError(f"{where}: unknown key {key!r}; expected {EXPECTED_KEYS}")
    if "labels" not in arrays:
        raise DataError(f"{where}: no key 'labels'; expected one label per sample, [N] (or [N, K] for a multi-label "
                        "task)")
    for prefix in ("lengths_", "mask_"):
        for modality in keys[prefix]:
            if modality not in keys["x_"]:
                raise DataError(f"{where}: key {prefix + modality!r} has no features x_{modality}; expected "
                                f"{prefix}<modality> beside x_<modality>")
    return keys


def _modalities(keys: dict[str, dict], declared, where: _Where) -> list[str]:
    """The modality names in order: the declared order, else the train split's."""
    train = keys["train"]["x_"]
    if len(train) < 2:
        raise DataError(f"{where.splits['train']}: {len(train)} modality array(s) ({', '.join(train) or 'none'}); "
                        "expected at least 2 arrays x_<modality>, [N, T, D] or [N, D]")
    bad = [m for m in train if "," in m]
    if bad:
        raise DataError(f"{where.splits['train']}: key 'x_{bad[0]}': a modality name with a comma; expected names "
                        "that --modalities can list (no commas)")
    if declared is not None:
        if (not isinstance(declared, (list, tuple)) or not all(isinstance(m, str) for m in declared)
                or sorted(declared) != sorted(train)):
            raise DataError(f"{where.declaration}: key 'modalities' is {declared!r}; expected a list naming each "
                            f"x_ array of {where.splits['train']} once: {', '.join(train)}")
        train = list(declared)
    for split in SPLITS[1:]:
        _same_names(keys[split]["x_"], train, "x_", where.splits[split], where.splits["train"])
    return train


def _same_names(names: list[str], train: list[str], prefix: str, where: str, train_where: str) -> None:
    missing = [name for name in train if name not in names]
    if missing:
        raise DataError(f"{where}: no key {prefix + missing[0]!r} ({train_where} has it); expected the same "
                        f"{prefix} arrays in every split: {', '.join(prefix + name for name in train)}")
    extra = [name for name in names if name not in train]
    if extra:
        raise DataError(f"{where}: key {prefix + extra[0]!r} is not in {train_where}; expected the same {prefix} "
                        f"arrays in every split: {', '.join(prefix + name for name in train) or 'none'}")


def _array(arrays: Mapping, key: str, where: str, kinds: str = "biuf") -> np.ndarray:
    """``arrays[key]`` as a numpy array whose dtype kind is one of ``kinds``; else ``DataError``."""
    try:
        with _read_errors(where, key):
            value = np.asarray(arrays[key])
    except ValueError as error:  # a ragged list, or an object array in an npz read without pickle
        raise DataError(f"{where}: key {key!r} cannot be read as one array ({_first_line(error)}); expected a "
                        "numeric array, sequences padded to one length (with lengths_ or mask_)") from None
    if value.dtype.kind not in kinds:
        what = {"b": "bool", "i": "int", "u": "unsigned int", "f": "float", "U": "str", "S": "bytes"}
        raise DataError(f"{where}: key {key!r} has dtype {value.dtype}; expected "
                        f"{' or '.join(what[kind] for kind in kinds)} values")
    return value


def _whole(values: np.ndarray) -> np.ndarray:
    """Where ``values`` are not whole numbers (bool ``[...]``)."""
    if values.dtype.kind in "biu":
        return np.zeros(values.shape, dtype=bool)
    return ~np.isfinite(values) | (values != np.round(values))


def _modality(arrays: Mapping, modality: str, n: int, train_dim: int | None, where: str,
              found: Found) -> tuple[torch.Tensor, torch.Tensor, int, int | None]:
    """``x_<modality>`` as float32 ``[N, T, D]`` with the real steps first, zeros after, and its bool mask; the
    number of samples whose gaps were closed and the row of the first sample without a real step (or None).
    What is replaced or found is counted in ``found``. The array is read into a new float32 array and done there
    chunk by chunk (see the module docstring's memory)."""
    key = f"x_{modality}"
    with _chunked(arrays, key, where) as x:
        if x.ndim not in (2, 3) or x.shape[0] != n or 0 in x.shape:
            raise DataError(f"{where}: key {key!r} has shape {x.shape}; expected [N, T, D] or [N, D] with N = {n} "
                            "(the samples of 'labels') and T, D >= 1")
        shape = x.shape if x.ndim == 3 else (n, 1, x.shape[1])
        if train_dim is not None and shape[2] != train_dim:
            raise DataError(f"{where}: key {key!r} has {shape[2]} features; expected {train_dim}, as in train")
        real = _real(arrays, modality, n, shape[1], where)
        out = _to_float32(x, shape, where, key)  # a copy: the caller's array is left as given
    count = real.sum(axis=1)
    first = real.argmax(axis=1)
    last = shape[1] - 1 - real[:, ::-1].argmax(axis=1)
    empty = count == 0
    gap = ~empty & (last - first + 1 > count)
    left = ~empty & ~gap & (first > 0)
    found.left += int(left.sum())
    found.right += int((~empty & ~gap & ~left & (count < shape[1])).sum())
    found.empty += int(empty.sum())
    moved = gap | left
    nonfinite = dict.fromkeys(NONFINITE, 0)
    for rows in sample_chunks(out):
        part = out[rows]  # a view: the chunk is done in out itself
        np.copyto(part, 0.0, where=~real[rows, :, None])  # padding holds no feature value, whatever was stored there
        clean_values(part, found, nonfinite)
        shift = moved[rows]
        if shift.any():  # real steps to the front, in their order
            order = np.argsort(~real[rows][shift], axis=1, kind="stable")
            part[shift] = np.take_along_axis(part[shift], order[..., None], axis=1)
    found.add_nonfinite(nonfinite)
    np.less(np.arange(shape[1]), np.maximum(count, 1)[:, None], out=real)  # the mask: real steps first, at least one
    return (torch.from_numpy(out), torch.from_numpy(real), int(gap.sum()),
            int(np.flatnonzero(empty)[0]) if empty.any() else None)


def _real(arrays: Mapping, modality: str, n: int, steps: int, where: str) -> np.ndarray:
    """The real steps ``[N, T]`` bool (a new array) from ``lengths_<modality>``, ``mask_<modality>`` or neither
    (every step real)."""
    lengths_key, mask_key = f"lengths_{modality}", f"mask_{modality}"
    if lengths_key in arrays and mask_key in arrays:
        raise DataError(f"{where}: keys {lengths_key!r} and {mask_key!r} both given; expected one of them (lengths "
                        "for real steps first, a mask for any other layout)")
    if lengths_key in arrays:
        lengths = _array(arrays, lengths_key, where, "iuf")
        if lengths.shape != (n,) or _whole(lengths).any() or (lengths < 0).any() or (lengths > steps).any():
            raise DataError(f"{where}: key {lengths_key!r} (shape {lengths.shape}, values "
                            f"{_span(lengths)}); expected [N] = [{n}] whole numbers in 0..{steps}, the real steps of "
                            f"x_{modality}")
        return np.arange(steps) < lengths.astype(np.int64)[:, None]
    if mask_key in arrays:
        mask = _array(arrays, mask_key, where, "biuf")
        if mask.shape != (n, steps) or (mask.dtype.kind != "b" and not np.isin(mask, (0, 1)).all()):
            raise DataError(f"{where}: key {mask_key!r} (shape {mask.shape}, values {_span(mask)}); expected "
                            f"[N, T] = [{n}, {steps}] of bool or 0/1, True marking the real steps of x_{modality}")
        return mask.astype(bool)
    return np.ones((n, steps), dtype=bool)


def _span(values: np.ndarray) -> str:
    """``min..max`` of ``values`` for messages (``empty`` when there are none)."""
    return f"{values.min()}..{values.max()}" if values.size else "empty"


def _labels(labels: np.ndarray, task: Task, where: str) -> np.ndarray:
    """The labels as the task trains on them: float32 ``[N]`` (regression), int64 ``[N]`` (classification) or
    float32 ``[N, K]`` (multi-label; its 0/1 values are checked by ``Task.label_problem``)."""
    if task.kind != MULTILABEL and labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != (2 if task.kind == MULTILABEL else 1) or 0 in labels.shape:
        raise DataError(f"{where}: key 'labels' has shape {labels.shape}; expected {_expected_labels(task)}")
    if task.kind != CLASSIFICATION:
        return labels.astype(np.float32)
    bad = _whole(labels)
    if bad.any():
        raise DataError(f"{where}: key 'labels' holds {int(bad.sum())} value(s) that are not whole class numbers "
                        f"(first: {labels[bad][0]}); expected {_expected_labels(task)}")
    return labels.astype(np.int64)


def _expected_labels(task: Task) -> str:
    if task.kind == REGRESSION:
        bounds = f" in [{task.label_range[0]:g}, {task.label_range[1]:g}]" if task.label_range else ""
        return f"[N] finite real values{bounds} for task {task.name!r}"
    if task.kind == CLASSIFICATION:
        return f"[N] class numbers 0..num_classes-1 for task {task.name!r}"
    return f"[N, K] of 0/1, one column per label, for task {task.name!r}"


def _num_classes(task: Task, declaration: dict, labels: dict[str, np.ndarray], where: _Where) -> int | None:
    """None for a regression task; for a multi-label task the labels' ``K`` (a declared ``num_classes`` must
    agree); for classification the declared ``num_classes``, else the task's own (binary: 2), else
    ``len(label_names)``, else the largest label + 1 (logged)."""
    declared, names = declaration.get("num_classes"), declaration.get("label_names")
    at, at_labels = where.declaration, f"{where.splits['train']}: key 'labels'"
    if task.kind == REGRESSION:
        if declared is not None or names is not None:
            raise DataError(f"{at}: key {'num_classes' if declared is not None else 'label_names'!r} applies to "
                            f"classification tasks; expected neither num_classes nor label_names for task "
                            f"{task.name!r}, a regression")
        return None
    if declared is not None and (isinstance(declared, bool) or not isinstance(declared, int) or declared < 1):
        raise DataError(f"{at}: key 'num_classes' is {declared!r}; expected a whole number of classes (labels)")
    if names is not None and (not isinstance(names, (list, tuple)) or not all(isinstance(s, str) and s for s in names)
                              or len(set(names)) != len(names)):
        raise DataError(f"{at}: key 'label_names' is {names!r}; expected a list of distinct names, one per "
                        f"{'label' if task.kind == MULTILABEL else 'class'}")
    if task.kind == MULTILABEL:
        for split, y in labels.items():
            if y.shape[1] != labels["train"].shape[1]:
                raise DataError(f"{where.splits[split]}: key 'labels' has {y.shape[1]} columns; expected "
                                f"{labels['train'].shape[1]}, as in train")
        num_classes, origin = labels["train"].shape[1], at_labels
        if declared is not None and declared != num_classes:
            raise DataError(f"{at}: key 'num_classes' is {declared}; expected {num_classes}, the columns of "
                            f"{at_labels}")
    elif declared is not None or task.num_classes is not None or names is not None:
        num_classes, origin = declared or task.num_classes or len(names), at
    else:
        num_classes = max(int(y.max()) for y in labels.values()) + 1
        origin = f"{at_labels} (the largest label + 1 classes; declare num_classes)"
        logger.info("%s: %d classes, the largest label + 1 (declare num_classes to set it)", where.whole, num_classes)
    try:
        task.output_size(num_classes)
    except ValueError as error:
        raise DataError(f"{origin}: {error}") from None
    if names is not None and len(names) != num_classes:
        raise DataError(f"{at}: key 'label_names' has {len(names)} names; expected {num_classes}, one per "
                        f"{'label' if task.kind == MULTILABEL else 'class'}")
    if task.kind == MULTILABEL:
        try:
            task.names_of_labels(num_classes, names)
        except ValueError as error:
            raise DataError(f"{at}: {error}") from None
    return num_classes


def _ids(arrays: Mapping, n: int, where: str) -> list[str]:
    ids = _array(arrays, "ids", where, "iuUS")
    if ids.shape != (n,):
        raise DataError(f"{where}: key 'ids' has shape {ids.shape}; expected [N] = [{n}], one id per sample")
    return [item.decode() if isinstance(item, bytes) else str(item) for item in ids.tolist()]


def _unique_ids(ids: dict[str, list[str]], where: _Where) -> None:
    seen: dict[str, str] = {}
    for split, names in ids.items():
        for name in names:
            if name in seen:
                raise DataError(f"{where.splits[split]}: key 'ids': {name!r} repeats (also in {seen[name]}); "
                                "expected ids unique over the three splits (predictions are paired by id)")
            seen[name] = f"split {split!r}"


def _extra(arrays: Mapping, name: str, n: int, where: str) -> torch.Tensor:
    """``extra_<name>`` ``[N, ...]`` as a new float32 tensor, read chunk by chunk as the features are."""
    key = f"extra_{name}"
    with _chunked(arrays, key, where) as value:
        if value.ndim == 0 or value.shape[0] != n:
            raise DataError(f"{where}: key {key!r} has shape {value.shape}; expected [N, ...] with N = {n}, one row "
                            "per sample")
        return torch.from_numpy(_to_float32(value, value.shape, where, key))


def _warn_steps(found: dict[str, Found], gaps: dict[str, int], first_empty: dict[str, str], whole: str) -> None:
    """One warning per modality with closed gaps, and per modality with samples that have no real step."""
    for modality, f in found.items():
        if gaps[modality]:
            warnings.warn(f"{whole}: modality {modality!r}: {gaps[modality]} sample(s) have padding between real "
                          "steps (mask_ False between True); their real steps were moved together, in order",
                          RuntimeWarning, stacklevel=4)
        if f.empty:
            warnings.warn(f"{whole}: modality {modality!r}: {f.empty} sample(s) have no real step (first: "
                          f"{first_empty[modality]}); each keeps one zero step marked real", RuntimeWarning,
                          stacklevel=4)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
