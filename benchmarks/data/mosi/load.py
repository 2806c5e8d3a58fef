"""``load_mosi``: find the MOSI data (argument or ``MOSI_PATH``), tell its format from the path, read it.

``data_path`` and ``load_pickles`` do the finding and the pickle reading for any ``Corpus`` (MOSEI's loader,
``benchmarks.data.mosei``, uses them too)."""

from __future__ import annotations

import os
from pathlib import Path

from ..dataset import DataError, Dataset
from ..registry import register_dataset
from .pickles import read_pickle
from .prepare import Corpus, build_mosi
from .sdk import read_sdk_folder

ACCEPTED = (
    "a MulT pickle (mosi_data.pkl, mosi_data_noalign.pkl), an MMSA pickle (aligned_50.pkl, unaligned_50.pkl) or a "
    "folder of CMU-MultimodalSDK .csd files (CMU_MOSI_TimestampedWordVectors, CMU_MOSI_COVAREP, "
    "CMU_MOSI_Visual_Facet_41, CMU_MOSI_Opinion_Labels)"
)
SOURCES = (
    "MOSI is distributed by the CMU MultiComp lab (CMU-MultimodalSDK, github.com/CMU-MultiComp-Lab/CMU-MultimodalSDK) "
    "and, as processed pickles, by the MulT (github.com/yaohungt/Multimodal-Transformer) and MMSA "
    "(github.com/thuiar/MMSA) projects"
)
MOSI = Corpus(name="mosi", title="MOSI", standard={"train": 1284, "valid": 229, "test": 686}, env="MOSI_PATH",
              pickle_names=("mosi_data.pkl", "mosi_data_noalign.pkl", "aligned_50.pkl", "unaligned_50.pkl"),
              accepted=ACCEPTED, sources=SOURCES)


@register_dataset("mosi")
def load_mosi(
    path: str | Path | None = None, *, cache_dir: str | Path | None = None, text_csd: str | None = None,
    audio_csd: str | None = None, vision_csd: str | None = None, labels_csd: str | None = None,
) -> Dataset:
    """CMU-MOSI as a ``Dataset`` of task ``sentiment`` (text / audio / vision, sentiment labels in [-3, 3]).

    ``path``: a MulT or MMSA pickle, a folder of ``.csd`` files, or a folder holding exactly one of the pickles
    named in ``MOSI.pickle_names``; None reads ``$MOSI_PATH``. The format is told from the content, not the name.
    ``cache_dir`` and ``*_csd`` only matter for ``.csd`` folders (see ``sdk``). Bad input raises a one-line
    ``DataError``.
    """
    path = data_path(path, MOSI)
    if path.is_dir() and not any(path.glob("*.csd")):
        path = _single_pickle(path, MOSI, "no .csd files and ")
    if not path.is_dir():
        return load_pickles(path, MOSI)
    names = {"text": text_csd, "audio": audio_csd, "vision": vision_csd, "labels": labels_csd}
    cache = Path(cache_dir).expanduser() if cache_dir is not None else None
    raw, facts = read_sdk_folder(path, names, cache)
    return build_mosi(raw, f"MOSI .csd folder {path}", {"format": "sdk", "path": str(path), **facts}, MOSI)


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
        path = _single_pickle(path, corpus)
    fmt, where, raw = read_pickle(path, corpus)
    steps = {raw["train"].modalities[m].x.shape[1] for m in raw["train"].modalities}
    return build_mosi(raw, where, {"format": fmt, "path": str(path), "aligned": len(steps) == 1}, corpus)


def _single_pickle(folder: Path, corpus: Corpus, lacking: str = "") -> Path:
    """The one of ``corpus.pickle_names`` in ``folder``; ``lacking`` says what else the folder was searched for."""
    found = [folder / name for name in corpus.pickle_names if (folder / name).is_file()]
    if len(found) == 1:
        return found[0]
    if found:
        raise DataError(f"{corpus.title} folder {folder} holds several pickles ({', '.join(p.name for p in found)}); "
                        f"pass the one to use as the path")
    raise DataError(f"{corpus.title} folder {folder} holds {lacking}none of {', '.join(corpus.pickle_names)}; "
                    f"expected {corpus.accepted}; {corpus.sources}")
