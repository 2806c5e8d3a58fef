"""Finding a corpus's data (an argument or its environment variable) and reading its processed pickles.

``data_path`` and ``load_pickles`` do the finding and the pickle reading for any ``Corpus`` (MOSI, MOSEI, CH-SIMS,
...)."""

from __future__ import annotations

import os
from pathlib import Path

from ..dataset import DataError, Dataset
from .pickles import read_pickle
from .prepare import Corpus, build_dataset


def data_path(path: str | Path | None, corpus: Corpus) -> Path:
    """``path`` (None: ``$<corpus.env>``) with ``~`` expanded; ``DataError`` when neither is given or it does not
    exist."""
    if path is None and os.environ.get(corpus.env):
        path = os.environ[corpus.env]
    if path is None:
        raise DataError(f"no {corpus.title} data given: pass --data-path PATH or set {corpus.env} to "
                        f"{corpus.accepted}; {corpus.sources}")
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{corpus.title} path {path} does not exist; expected {corpus.accepted}; {corpus.sources}")
    return path


def load_pickles(path: Path, corpus: Corpus) -> Dataset:
    """The ``corpus``'s ``Dataset`` from a MulT or MMSA pickle, or from a folder holding exactly one of
    ``corpus.pickle_names``; ``info["aligned"]``: every modality has the same number of steps."""
    if path.is_dir():
        path = single_pickle(path, corpus)
    fmt, where, raw = read_pickle(path, corpus)
    steps = {raw["train"].modalities[m].x.shape[1] for m in raw["train"].modalities}
    return build_dataset(raw, where, {"format": fmt, "path": str(path), "aligned": len(steps) == 1}, corpus)


def single_pickle(folder: Path, corpus: Corpus, lacking: str = "") -> Path:
    """The one of ``corpus.pickle_names`` in ``folder``; ``lacking`` says what else the folder was searched for."""
    found = [folder / name for name in corpus.pickle_names if (folder / name).is_file()]
    if len(found) == 1:
        return found[0]
    if found:
        raise DataError(f"{corpus.title} folder {folder} holds several pickles ({', '.join(p.name for p in found)}); "
                        f"pass the one to use as the path")
    raise DataError(f"{corpus.title} folder {folder} holds {lacking}none of {', '.join(corpus.pickle_names)}; "
                    f"expected {corpus.accepted}; {corpus.sources}")
