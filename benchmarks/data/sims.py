"""CH-SIMS (Yu et al., ACL 2020) and CH-SIMS v2 (Liu et al., ICMI 2022), Chinese multimodal sentiment in [-1, 1],
from the MMSA-layout pickles their authors distribute; task ``sims`` (MMSA's SIMS metrics, ``tasks.sims``).

* ``sims``: MMSA's ``unaligned_39.pkl`` (github.com/thuiar/MMSA): text BERT ``[N, 39, 768]`` with ``text_bert``
  ``[N, 3, 39]``, audio librosa ``[N, 400, 33]``, vision OpenFace ``[N, 55, 709]``; standard split 1368 / 456 / 457.
* ``sims2``: CH-SIMS v2 (github.com/thuiar/ch-sims-v2; ``ch-simsv2s.pkl``, also found as ``unaligned.pkl`` or, in
  MMSA's configuration, ``sims_unaligned.pkl``), written by MMSA-FET (github.com/thuiar/MMSA-FET): text BERT
  ``[N, 50, 768]`` with ``text_bert`` ``[N, 3, 50]``, audio ``[N, 925, 25]``, vision ``[N, 232, 177]``, float64;
  standard split 2722 / 647 / 1034.

Both are MMSA pickles (``affect.pickles``): each split holds ``text``, ``text_bert``, ``audio``, ``vision``,
right-padded with ``audio_lengths`` / ``vision_lengths`` ``[N]``, ``regression_labels`` ``[N]`` in [-1, 1], ids
``video$_$clip`` (read as ``video_clip``), and the unimodal labels ``regression_labels_T`` / ``_A`` / ``_V`` (in
[-1, 1], steps of 0.2), which become ``Split.extras["labels_text" / "labels_audio" / "labels_vision"]`` ``[N]``
float32: training reads only ``labels`` (``benchmarks.train.Batches``), so they are there for a fusion or analysis
that reads the splits itself, e.g. as auxiliary targets. ``classification_labels`` (v1 only), ``annotations`` and
``raw_text`` are not used.

The file is recognised from its content and read as it holds it (``affect.recognise``): split sizes, feature widths
and a padding side that differ from the standard are logged with one warning each; a file whose widths are the other
version's is read, with one more warning naming the ``--dataset`` that reads it as that version. Another dataset's
file (MOSI's, a MulT-layout pickle, ...) is refused in one line naming what it holds.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .affect.find import data_path, load_pickles
from .affect.pickles import UNIMODAL_LABELS
from .affect.prepare import Corpus
from .affect.recognise import LAYOUTS
from .dataset import DataError, Dataset
from .registry import register_dataset

logger = logging.getLogger(__name__)

SOURCES = ("CH-SIMS's processed features are distributed with MMSA (github.com/thuiar/MMSA), CH-SIMS v2's with "
           "github.com/thuiar/ch-sims-v2 (features written by MMSA-FET)")
SHARED = dict(task="sims", label_range=(-1.0, 1.0), label_words="sentiment in [-1, 1]", sources=SOURCES)
SIMS = Corpus(name="sims", title="CH-SIMS", standard={"train": 1368, "valid": 456, "test": 457}, env="SIMS_PATH",
              pickle_names=("unaligned_39.pkl",),
              accepted="MMSA's CH-SIMS pickle (unaligned_39.pkl) or a folder holding it", **SHARED)
SIMS2 = Corpus(name="sims2", title="CH-SIMS v2", standard={"train": 2722, "valid": 647, "test": 1034},
               env="SIMS2_PATH", pickle_names=("ch-simsv2s.pkl", "unaligned.pkl", "sims_unaligned.pkl"),
               accepted="CH-SIMS v2's MMSA-FET pickle (ch-simsv2s.pkl, unaligned.pkl, sims_unaligned.pkl) or a folder "
                        "holding one of them", **SHARED)
CORPORA = {corpus.name: corpus for corpus in (SIMS, SIMS2)}


@register_dataset("sims")
def load_sims(path: str | Path | None = None) -> Dataset:
    """CH-SIMS as a ``Dataset`` of task ``sims``: text / audio / vision ``[N, T, dim]`` float32 with the real steps
    first and bool masks, labels ``[N]`` in [-1, 1], ids ``video_clip``, extras ``labels_text`` /
    ``labels_audio`` / ``labels_vision`` ``[N]``.

    ``path``: the pickle or a folder holding ``unaligned_39.pkl``; None reads ``$SIMS_PATH``. A missing path,
    another layout, a wrong shape, or a label (multimodal or unimodal) outside [-1, 1] raises a one-line
    ``DataError``.
    """
    return _load(path, SIMS)


@register_dataset("sims2")
def load_sims2(path: str | Path | None = None) -> Dataset:
    """CH-SIMS v2 as ``load_sims`` gives CH-SIMS; ``path``: the pickle or a folder holding exactly one of
    ``SIMS2.pickle_names``; None reads ``$SIMS2_PATH``."""
    return _load(path, SIMS2)


def _load(path: str | Path | None, corpus: Corpus) -> Dataset:
    path, origin = data_path(path, corpus)
    dataset = load_pickles(path, corpus, origin)
    where = f"{corpus.title} file {dataset.info['path']}{origin} (MMSA pickle)"
    dataset.info["unimodal_labels"] = _check_unimodal_labels(dataset, where, corpus)
    own = next(layout for layout in LAYOUTS if layout.dataset == corpus.name)
    kin = [layout.dataset for layout in LAYOUTS if layout.dataset in own.kin and layout.widths == tuple(dataset.dims)]
    if kin:
        other = CORPORA[kin[0]].title
        logger.warning("%s: its feature widths %s are %s's: --dataset %s reads it as %s", where,
                       "/".join(map(str, dataset.dims)), other, kin[0], other)
    return dataset


def _check_unimodal_labels(dataset: Dataset, where: str, corpus: Corpus) -> list[str]:
    """The extras names of the unimodal labels the file holds; ``DataError`` when a split lacks one another split
    holds, or one is non-finite or outside the corpus's label range. A file without any is logged."""
    held = {name: split_name for split_name, split in dataset.splits.items() for name in split.extras}
    low, high = corpus.label_range
    for key, name in UNIMODAL_LABELS.items():
        for split_name, split in dataset.splits.items() if name in held else ():
            if name not in split.extras:
                raise DataError(f"{where}: split {split_name!r} lacks {key!r}, which split {held[name]!r} holds; "
                                f"expected the unimodal labels in every split or in none")
            values = split.extras[name].numpy()
            bad = ~np.isfinite(values) | (values < low) | (values > high)
            if bad.any():
                first = int(np.flatnonzero(bad)[0])
                raise DataError(f"{where}: split {split_name!r} has {int(bad.sum())} {key!r} label(s) that are "
                                f"non-finite or outside [{low:g}, {high:g}] (first: {values[first]:g} for segment "
                                f"{split.ids[first]!r}); expected {corpus.label_words}")
    found = [name for name in UNIMODAL_LABELS.values() if name in held]
    if not found:
        logger.warning("%s holds no unimodal labels (%s); the splits carry none", where, ", ".join(UNIMODAL_LABELS))
    return found
