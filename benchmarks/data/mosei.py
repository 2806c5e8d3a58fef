"""CMU-MOSEI (Zadeh et al., ACL 2018) from the processed pickles of the MulT and MMSA projects or from a folder of
CMU-MultimodalSDK ``.csd`` files; task ``sentiment``, or ``emotions`` (the six emotions, ``.csd`` folders only).

MulT (github.com/yaohungt/Multimodal-Transformer): ``mosei_senti_data.pkl`` (word-aligned, 50 steps) and
``mosei_senti_data_noalign.pkl`` (text 50 steps, audio and vision 500): text GloVe ``[N, 50, 300]``, audio COVAREP
``[N, T, 74]`` (with ``-inf``), vision Facet ``[N, T, 35]``, ``labels`` ``[N, 1, 1]`` in [-3, 3], ``id`` ``[N, 3]``,
zero rows padding on the left. MMSA (github.com/thuiar/MMSA): ``aligned_50.pkl`` / ``unaligned_50.pkl`` with the
keys of MMSA's MOSI files (BERT text ``[N, 50, 768]``, ``text_bert`` ``[N, 3, 50]``, ``audio_lengths`` /
``vision_lengths`` when unaligned, ``regression_labels``, ids ``video$_$clip``). Both are read by MOSI's readers
(``affect.pickles``) and post-processing (``affect.prepare``: padding moved after the real steps, masks, non-finite
values to 0 with one warning); the metrics are MOSI's (MMSA scores both with the same function). The standard
split is 16326 / 1871 / 4659 segments; a file holding other sizes is read as it is, with one warning. MultiBench's
``mosei_raw.pkl`` (github.com/pliang279/MultiBench; MulT's keys, vision OpenFace 2 713; ``affect.multibench``) is
read too, as MultiBench reads it (samples without text dropped); its split is not the MulT / MMSA one, and the log
says so.

The SDK's ``.csd`` folder (``affect.sdk``, as MOSI's): ``CMU_MOSEI_TimestampedWordVectors.csd`` (GloVe 300),
``CMU_MOSEI_COVAREP.csd`` (74), ``CMU_MOSEI_VisualFacet42.csd`` (Facet 4.2, 35; the default vision, as in the
pickles) or ``CMU_MOSEI_VisualOpenFace2.csd`` (OpenFace 2, 713; read when it is the only one, or with
``vision_csd``), ``CMU_MOSEI_Labels.csd`` (``All Labels`` ``[k, 7]``: sentiment in [-3, 3], then happy, sad, anger,
surprise, disgust, fear intensities in [0, 3]); aligned to words then to the labelled segments, the videos split by
``mmdatasdk.cmu_mosei.standard_folds``, cached. Every segment carries its six intensities in
``Split.extras["emotions"]`` ``[N, 6]``; ``labels="emotions"`` makes them the labels.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tasks import list_tasks

from .affect.find import data_path, load_pickles, single_pickle
from .affect.prepare import Corpus, build_dataset
from .affect.recognise import LAYOUTS
from .affect.sdk import read_sdk_folder
from .dataset import DataError, Dataset
from .registry import register_dataset

MOSEI = Corpus(
    name="mosei", title="MOSEI", standard={"train": 16326, "valid": 1871, "test": 4659}, env="MOSEI_PATH",
    pickle_names=("mosei_senti_data.pkl", "mosei_senti_data_noalign.pkl", "aligned_50.pkl", "unaligned_50.pkl",
                  "mosei_raw.pkl"),
    accepted="a MulT pickle (mosei_senti_data.pkl, mosei_senti_data_noalign.pkl), an MMSA pickle (aligned_50.pkl, "
             "unaligned_50.pkl), MultiBench's mosei_raw.pkl, a folder holding one of them, or a folder of "
             "CMU-MultimodalSDK .csd files (CMU_MOSEI_TimestampedWordVectors, CMU_MOSEI_COVAREP, "
             "CMU_MOSEI_VisualFacet42 or CMU_MOSEI_VisualOpenFace2, CMU_MOSEI_Labels)",
    sources="MOSEI is distributed by the CMU MultiComp lab (CMU-MultimodalSDK, "
            "github.com/CMU-MultiComp-Lab/CMU-MultimodalSDK) and, as processed pickles, by the MulT "
            "(github.com/yaohungt/Multimodal-Transformer), MMSA (github.com/thuiar/MMSA) and MultiBench "
            "(github.com/pliang279/MultiBench) projects",
    sdk_files={"text": ("CMU_MOSEI_TimestampedWordVectors.csd",), "audio": ("CMU_MOSEI_COVAREP.csd",),
               "vision": ("CMU_MOSEI_VisualFacet42.csd", "CMU_MOSEI_VisualOpenFace2.csd"),
               "labels": ("CMU_MOSEI_Labels.csd",)},
    sdk_folds="cmu_mosei", emotions=("happy", "sad", "anger", "surprise", "disgust", "fear"),
)
LABELS = {"sentiment": "the sentiment score in [-3, 3], task 'sentiment'",
          "emotions": "the six emotions present (intensity > 0) or not, task 'emotions'; .csd folders only"}


@register_dataset("mosei")
def load_mosei(
    path: str | Path | None = None, *, labels: str = "sentiment", cache_dir: str | Path | None = None,
    text_csd: str | None = None, audio_csd: str | None = None, vision_csd: str | None = None,
    labels_csd: str | None = None,
) -> Dataset:
    """CMU-MOSEI as a ``Dataset``: text / audio / vision ``[N, T, dim]`` float32 with the real steps first and bool
    masks; ids ``video_clip`` (MMSA, ``.csd``: the clip is the segment's 1-based row in the labels file) or
    ``id[:, 0]`` (MulT).

    ``path``: a MulT or MMSA MOSEI pickle (the format is told from its keys, not its name), a folder of ``.csd``
    files, or a folder holding exactly one of ``MOSEI.pickle_names``; None reads ``$MOSEI_PATH``.
    ``labels``: ``"sentiment"`` (task ``sentiment``, labels ``[N]`` in [-3, 3]) or ``"emotions"`` (task
    ``emotions``, ``num_classes`` 6, labels float32 ``[N, 6]``: 1 where happy, sad, anger, surprise, disgust, fear
    has an intensity > 0; ``.csd`` folders only, the pickles hold no emotions). From a ``.csd`` folder every split
    carries ``extras["emotions"]`` ``[N, 6]`` (the intensities in [0, 3]), and with ``labels="emotions"`` also
    ``extras["sentiment"]`` ``[N]``. ``cache_dir`` and ``*_csd`` only matter for ``.csd`` folders (see
    ``affect.sdk``; ``vision_csd="CMU_MOSEI_VisualOpenFace2.csd"`` reads OpenFace 2 where Facet 4.2 is present too).
    A missing path, another layout, a wrong shape, a label outside its range, an unknown ``labels``, emotions asked
    of a pickle (the error names the layout read) or a task ``emotions`` that is not registered raises a one-line
    ``DataError``; a path from ``$MOSEI_PATH`` is named so in every message.
    """
    if labels not in LABELS:
        raise DataError(f"MOSEI labels={labels!r}: expected " + " or ".join(f"{k!r} ({v})" for k, v in LABELS.items()))
    path, origin = data_path(path, MOSEI)
    if path.is_dir() and not any(path.glob("*.csd")):
        path = single_pickle(path, MOSEI, origin=origin)
    if not path.is_dir():
        data = load_pickles(path, MOSEI, origin)  # read first: the error names what the file is, and it is cached
        if labels == "emotions":
            held = next(layout.title for layout in LAYOUTS if layout.key == data.info["layout"])
            raise DataError(f"MOSEI file {path}{origin} is {held}, which holds the sentiment score only, no emotion "
                            f"labels: labels='emotions' needs the folder of CMU-MultimodalSDK .csd files, whose "
                            f"CMU_MOSEI_Labels.csd holds the six emotions")
        return data
    if labels == "emotions" and "emotions" not in list_tasks():
        raise DataError("MOSEI labels='emotions': the task 'emotions' (multi-label emotion presence) is unavailable: "
                        f"it is not registered (known tasks: {', '.join(list_tasks())})")
    names = {"text": text_csd, "audio": audio_csd, "vision": vision_csd, "labels": labels_csd}
    cache = Path(cache_dir).expanduser() if cache_dir is not None else None
    raw, facts = read_sdk_folder(path, MOSEI, names, cache, origin)
    info = {"format": "sdk", "path": str(path), **facts, "emotions": list(MOSEI.emotions)}
    data = build_dataset(raw, f"MOSEI .csd folder {path}{origin}", info, MOSEI)
    return _emotions(data) if labels == "emotions" else data


def _emotions(data: Dataset) -> Dataset:
    """``data`` (task ``sentiment``, ``extras["emotions"]`` ``[N, 6]``) with task ``emotions``: labels float32
    ``[N, 6]``, 1 where the intensity is > 0; the sentiment scores kept in ``extras["sentiment"]`` ``[N]``."""
    splits = {name: replace(split, labels=(split.extras["emotions"] > 0).float(),
                            extras={**split.extras, "sentiment": split.labels})
              for name, split in data.splits.items()}
    return Dataset(name=data.name, **splits, modality_names=data.modality_names, task="emotions",
                   num_classes=len(MOSEI.emotions),
                   info={**data.info, "label_names": list(MOSEI.emotions)})
