"""CMU-MOSEI (Zadeh et al., ACL 2018) from the processed pickles of the MulT and MMSA projects, task ``sentiment``.

MulT (github.com/yaohungt/Multimodal-Transformer): ``mosei_senti_data.pkl`` (word-aligned, 50 steps) and
``mosei_senti_data_noalign.pkl`` (text 50 steps, audio and vision 500): text GloVe ``[N, 50, 300]``, audio COVAREP
``[N, T, 74]`` (with ``-inf``), vision Facet ``[N, T, 35]``, ``labels`` ``[N, 1, 1]`` in [-3, 3], ``id`` ``[N, 3]``,
zero rows padding on the left. MMSA (github.com/thuiar/MMSA): ``aligned_50.pkl`` / ``unaligned_50.pkl`` with the
keys of MMSA's MOSI files (BERT text ``[N, 50, 768]``, ``text_bert`` ``[N, 3, 50]``, ``audio_lengths`` /
``vision_lengths`` when unaligned, ``regression_labels``, ids ``video$_$clip``). Both are read by MOSI's readers
(``affect.pickles``) and post-processing (``affect.prepare``: padding moved after the real steps, masks, non-finite
values to 0 with one warning); the metrics are MOSI's (MMSA scores both with the same function). The standard
split is 16326 / 1871 / 4659 segments; a file holding other sizes is read as it is, with one warning.

Not read: the CMU-MultimodalSDK ``.csd`` folders and the six-emotion labels.
"""

from __future__ import annotations

from pathlib import Path

from .affect.find import data_path, load_pickles
from .affect.prepare import Corpus
from .dataset import Dataset
from .registry import register_dataset

MOSEI = Corpus(
    name="mosei", title="MOSEI", standard={"train": 16326, "valid": 1871, "test": 4659}, env="MOSEI_PATH",
    pickle_names=("mosei_senti_data.pkl", "mosei_senti_data_noalign.pkl", "aligned_50.pkl", "unaligned_50.pkl"),
    accepted="a MulT pickle (mosei_senti_data.pkl, mosei_senti_data_noalign.pkl) or an MMSA pickle (aligned_50.pkl, "
             "unaligned_50.pkl), or a folder holding one of them (the CMU-MultimodalSDK .csd files are not read)",
    sources="MOSEI's processed pickles are distributed by the MulT (github.com/yaohungt/Multimodal-Transformer) and "
            "MMSA (github.com/thuiar/MMSA) projects",
)


@register_dataset("mosei")
def load_mosei(path: str | Path | None = None) -> Dataset:
    """CMU-MOSEI as a ``Dataset`` of task ``sentiment``: text / audio / vision ``[N, T, dim]`` float32 with the real
    steps first and bool masks, labels ``[N]`` in [-3, 3], ids ``video_clip`` (MMSA) or ``id[:, 0]`` (MulT).

    ``path``: a MulT or MMSA MOSEI pickle (the format is told from its keys, not its name) or a folder holding
    exactly one of ``MOSEI.pickle_names``; None reads ``$MOSEI_PATH``. A missing path, another layout, a wrong
    shape or a label outside [-3, 3] raises a one-line ``DataError``.
    """
    return load_pickles(data_path(path, MOSEI), MOSEI)
