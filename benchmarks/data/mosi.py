"""CMU-MOSI (Zadeh et al., IEEE Intelligent Systems 2016) from whichever distributed format the user holds.

``load_mosi(path)`` (registered as ``mosi``) reads a MulT pickle, an MMSA pickle, MultiBench's ``mosi_raw.pkl``
(its split, 1283 / 214 / 686, is not the MulT / MMSA one, and the log says so; ``affect.multibench``) or a folder of
CMU-MultimodalSDK ``.csd`` files (``affect.pickles``, ``affect.sdk``) and hands the splits to the shared
post-processing (``affect.prepare``): real steps first whatever the padding side, masks, float32, non-finite values
to 0 with one warning, a warning per modality for extreme finite values, the checks.
"""

from __future__ import annotations

from pathlib import Path

from .affect.find import data_path, load_pickles, single_pickle
from .affect.prepare import Corpus, build_dataset
from .affect.sdk import read_sdk_folder
from .dataset import Dataset
from .registry import register_dataset

ACCEPTED = (
    "a MulT pickle (mosi_data.pkl, mosi_data_noalign.pkl), an MMSA pickle (aligned_50.pkl, unaligned_50.pkl), "
    "MultiBench's mosi_raw.pkl or a folder of CMU-MultimodalSDK .csd files (CMU_MOSI_TimestampedWordVectors, "
    "CMU_MOSI_COVAREP, CMU_MOSI_Visual_Facet_41, CMU_MOSI_Opinion_Labels)"
)
SOURCES = (
    "MOSI is distributed by the CMU MultiComp lab (CMU-MultimodalSDK, github.com/CMU-MultiComp-Lab/CMU-MultimodalSDK) "
    "and, as processed pickles, by the MulT (github.com/yaohungt/Multimodal-Transformer) and MMSA "
    "(github.com/thuiar/MMSA) and MultiBench (github.com/pliang279/MultiBench) projects"
)
MOSI = Corpus(name="mosi", title="MOSI", standard={"train": 1284, "valid": 229, "test": 686}, env="MOSI_PATH",
              pickle_names=("mosi_data.pkl", "mosi_data_noalign.pkl", "aligned_50.pkl", "unaligned_50.pkl",
                            "mosi_raw.pkl"),
              accepted=ACCEPTED, sources=SOURCES,
              sdk_files={"text": ("CMU_MOSI_TimestampedWordVectors.csd", "CMU_MOSI_TimestampedWordVectors_1.1.csd"),
                         "audio": ("CMU_MOSI_COVAREP.csd",),
                         "vision": ("CMU_MOSI_Visual_Facet_41.csd", "CMU_MOSI_VisualFacet_4.1.csd"),
                         "labels": ("CMU_MOSI_Opinion_Labels.csd",)},
              sdk_folds="cmu_mosi")


@register_dataset("mosi")
def load_mosi(
    path: str | Path | None = None, *, cache_dir: str | Path | None = None, text_csd: str | None = None,
    audio_csd: str | None = None, vision_csd: str | None = None, labels_csd: str | None = None,
) -> Dataset:
    """CMU-MOSI as a ``Dataset`` of task ``sentiment`` (text / audio / vision, sentiment labels in [-3, 3]).

    ``path``: a MulT or MMSA pickle, a folder of ``.csd`` files, or a folder holding exactly one of the pickles
    named in ``MOSI.pickle_names``; None reads ``$MOSI_PATH``. The format is told from the content, not the name.
    ``cache_dir`` and ``*_csd`` only matter for ``.csd`` folders (see ``sdk``). Bad input raises a one-line
    ``DataError`` (a path from ``$MOSI_PATH`` is named so in every message).
    """
    path, origin = data_path(path, MOSI)
    if path.is_dir() and not any(path.glob("*.csd")):
        path = single_pickle(path, MOSI, "no .csd files and ", origin)
    if not path.is_dir():
        return load_pickles(path, MOSI, origin)
    names = {"text": text_csd, "audio": audio_csd, "vision": vision_csd, "labels": labels_csd}
    cache = Path(cache_dir).expanduser() if cache_dir is not None else None
    raw, facts = read_sdk_folder(path, MOSI, names, cache, origin)
    return build_dataset(raw, f"MOSI .csd folder {path}{origin}", {"format": "sdk", "path": str(path), **facts},
                         MOSI)
