"""``load_mosi``: find the MOSI data (argument or ``MOSI_PATH``), tell its format from the path, read it."""

from __future__ import annotations

import os
from pathlib import Path

from ..dataset import DataError, Dataset
from ..registry import register_dataset
from .pickles import read_pickle
from .prepare import build_mosi
from .sdk import read_sdk_folder

PICKLE_NAMES = ("mosi_data.pkl", "mosi_data_noalign.pkl", "aligned_50.pkl", "unaligned_50.pkl")
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


@register_dataset("mosi")
def load_mosi(
    path: str | Path | None = None, *, cache_dir: str | Path | None = None, text_csd: str | None = None,
    audio_csd: str | None = None, vision_csd: str | None = None, labels_csd: str | None = None,
) -> Dataset:
    """CMU-MOSI as a ``Dataset`` of task ``sentiment`` (text / audio / vision, sentiment labels in [-3, 3]).

    ``path``: a MulT or MMSA pickle, a folder of ``.csd`` files, or a folder holding exactly one of the pickles
    named in ``PICKLE_NAMES``; None reads ``$MOSI_PATH``. The format is told from the content, not the name.
    ``cache_dir`` and ``*_csd`` only matter for ``.csd`` folders (see ``sdk``). Bad input raises a one-line
    ``DataError``.
    """
    if path is None and os.environ.get("MOSI_PATH"):
        path = os.environ["MOSI_PATH"]
    if path is None:
        raise DataError(f"no MOSI data given: pass --data-path PATH or set MOSI_PATH to {ACCEPTED}; {SOURCES}")
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"MOSI path {path} does not exist; expected {ACCEPTED}; {SOURCES}")
    if path.is_dir() and not any(path.glob("*.csd")):
        path = _single_pickle(path)
    if path.is_dir():
        names = {"text": text_csd, "audio": audio_csd, "vision": vision_csd, "labels": labels_csd}
        cache = Path(cache_dir).expanduser() if cache_dir is not None else None
        raw, facts = read_sdk_folder(path, names, cache)
        where, info = f"MOSI .csd folder {path}", {"format": "sdk", "path": str(path), **facts}
    else:
        fmt, where, raw = read_pickle(path, ACCEPTED)
        steps = {raw["train"].modalities[m].x.shape[1] for m in raw["train"].modalities}
        info = {"format": fmt, "path": str(path), "aligned": len(steps) == 1}
    return build_mosi(raw, where, info)


def _single_pickle(folder: Path) -> Path:
    """The one MOSI pickle in a folder without ``.csd`` files."""
    found = [folder / name for name in PICKLE_NAMES if (folder / name).is_file()]
    if len(found) == 1:
        return found[0]
    if found:
        raise DataError(f"MOSI folder {folder} holds several pickles ({', '.join(p.name for p in found)}); "
                        f"pass the one to use as the path")
    raise DataError(f"MOSI folder {folder} holds no .csd files and none of {', '.join(PICKLE_NAMES)}; "
                    f"expected {ACCEPTED}; {SOURCES}")
