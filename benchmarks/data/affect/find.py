"""Finding a corpus's data (an argument or its environment variable) and reading its processed pickles.

``data_path`` and ``load_pickles`` do the finding and the pickle reading for any ``Corpus`` (MOSI, MOSEI, CH-SIMS,
...). A path read from the corpus's environment variable is named ``<path> (from $MOSI_PATH)`` in every error and
warning that names it or a file found in it (``data_path``'s ``origin``, passed to every reader)."""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path

from ..dataset import DataError, Dataset
from .cache import cached
from .pickles import read_pickle
from .prepare import Corpus, build_dataset
from .recognise import BINARY_LABELS, differences

logger = logging.getLogger(__name__)


def data_path(path: str | Path | None, corpus: Corpus) -> tuple[Path, str]:
    """``path`` (None: ``$<corpus.env>``) with ``~`` expanded, and its ``origin``: what messages add after it,
    ``" (from $<corpus.env>)"`` when it came from the environment variable, else ``""``. ``DataError`` when neither
    is given or it does not exist."""
    origin = ""
    if path is None and os.environ.get(corpus.env):
        path, origin = os.environ[corpus.env], f" (from ${corpus.env})"
    if path is None:
        raise DataError(f"no {corpus.title} data given: pass --data-path PATH or set {corpus.env} to "
                        f"{corpus.accepted}; {corpus.sources}")
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{corpus.title} path {path}{origin} does not exist; expected {corpus.accepted}; "
                        f"{corpus.sources}")
    return path, origin


def load_pickles(path: Path, corpus: Corpus, origin: str = "") -> Dataset:
    """The ``corpus``'s ``Dataset`` from a MulT, MMSA or MultiBench pickle, or from a folder holding exactly one of
    ``corpus.pickle_names``. The file is recognised from its content (``recognise``): another dataset's file is
    refused with a one-line ``DataError``; a file of this dataset is compared with its layout's documented
    feature widths and padding side and with the corpus's standard split (MultiBench's files: MultiBench's split),
    and what differs is logged in one warning each (split sizes, the rest), as is the layout's note (e.g. that
    MultiBench's MOSI split is not MulT's). ``info``: ``format`` (``"mult"``, ``"mmsa"``, ``"multibench"``),
    ``layout`` (``recognise.Layout.key``, None for a dataset without a documented layout), ``aligned`` (every
    modality has the same number of steps), for MultiBench's binary files ``label_coding`` (``Survey.coding``: the
    labels as stored, ``"-1/+1"``, ``"0/1"`` or ``"1"``), for MultiBench's files ``dropped`` (samples without text
    dropped, per split), and ``build_dataset``'s. ``origin``: ``data_path``'s."""
    if path.is_dir():
        path = single_pickle(path, corpus, origin=origin)
    # info["cache"], info["cache_file"]: see cache.py
    return cached(path, corpus, lambda: _prepare(path, corpus, origin), origin)


def _prepare(path: Path, corpus: Corpus, origin: str) -> Dataset:
    """``load_pickles``'s dataset, read and prepared from the pickle file at ``path`` (what ``cache`` stores)."""
    read = read_pickle(path, corpus, origin)
    steps = {read.splits["train"].modalities[m].x.shape[1] for m in read.splits["train"].modalities}
    info = {"format": read.fmt, "path": str(path), "aligned": len(steps) == 1,
            "layout": read.layout.key if read.layout is not None else None}
    if read.fmt == "multibench":  # MultiBench splits otherwise than MulT and MMSA: compared with its own split
        info["dropped"] = {name: len(ids) for name, ids in read.dropped.items()}
        corpus = replace(corpus, standard=read.layout.standard)
        if read.layout.labels in BINARY_LABELS:
            info["label_coding"] = read.found.coding
    if read.layout is not None and read.layout.note:
        logger.warning("%s: %s", read.where, read.layout.note)
    dataset = build_dataset(read.splits, read.where, info, corpus, in_place=True)  # it owns the arrays it read
    if differs := differences(read.layout, read.found, dataset.info["padding"]):
        logger.warning("%s %s; read as it is", read.where, differs)
    return dataset


def single_pickle(folder: Path, corpus: Corpus, lacking: str = "", origin: str = "") -> Path:
    """The one of ``corpus.pickle_names`` in ``folder``; ``lacking`` says what else the folder was searched for;
    ``origin``: ``data_path``'s."""
    found = [folder / name for name in corpus.pickle_names if (folder / name).is_file()]
    if len(found) == 1:
        return found[0]
    if found:
        raise DataError(f"{corpus.title} folder {folder}{origin} holds several pickles "
                        f"({', '.join(p.name for p in found)}); pass the one to use as the path")
    raise DataError(f"{corpus.title} folder {folder}{origin} holds {lacking}none of "
                    f"{', '.join(corpus.pickle_names)}; expected {corpus.accepted}; {corpus.sources}")
