"""MultiBench's processed affect pickles (Liang et al., NeurIPS 2021 Datasets and Benchmarks;
github.com/pliang279/MultiBench, read there by ``datasets/affect/get_data.py``): ``humor.pkl`` (UR-FUNNY),
``sarcasm.pkl`` (MUStARD), ``mosi_raw.pkl`` and ``mosei_raw.pkl``.

The layout is MulT's (``affect.pickles``): ``{"train", "valid", "test"}``, each a dict of ``text`` ``[N, T, 300]``
(GloVe 840B), ``audio`` ``[N, T, a]`` (COVAREP, with ``-inf``, which ``get_data`` sets to 0), ``vision``
``[N, T, v]``, ``labels`` and ``id``; word-aligned sequences padded with zero rows on the left (``get_data``'s
``_glove_embeddings`` pads "with zeros at the front"; its reader starts every modality at the first non-zero text
row). Widths: humor and sarcasm audio 81, vision 371 (OpenFace; MultiBench's examples build their encoders as
``GRU(371, ...)``, ``GRU(81, ...)``, ``GRU(300, ...)``); ``mosi_raw`` audio 74, vision 35 (Facet; the examples'
``GRU(35, ...)``, ``GRU(74, ...)``); ``mosei_raw`` audio 74, vision 713 (OpenFace 2, as MultiBench's MOSEI runs
build it). Labels: humor 0 / 1 (``[N, 1]``: the collate reads ``labels[i][0]``); sarcasm -1 / +1, which
``get_data`` turns into class 1 when the label is > 0, else 0 (``_get_class``); MOSI / MOSEI sentiment in [-3, 3]
(``[N, 1, 1]``). Split sizes: MOSI 1283 / 214 / 686 (MulT and MMSA: 1284 / 229 / 686); UR-FUNNY 8074 / 1034 / 1058
as users of ``get_data`` report (10,166 punchlines, UR-FUNNY v2); sarcasm's and MOSEI's are not documented.

Read here as ``get_data`` reads them, so that scores compare with MultiBench's:

* samples whose text is all zero are dropped, as ``get_data.drop_entry`` drops from every array of a split the
  samples whose text sums to 0 before anything else (``drop_textless``). Such a sample has no word, and in these
  word-aligned files its audio and vision belong to no word: MultiBench's reader, which starts every modality at
  the first non-zero text row, cannot read it at all. The loader logs the count and ``info["dropped"]`` holds it
  per split. (MulT and MMSA files keep such samples, with an empty text counted in ``info["empty"]`` and warned
  about, as their own readers keep them.) The test here is "no non-zero value" where ``drop_entry`` sums the
  values; the two differ only for a text whose values cancel exactly.
* sarcasm's -1 becomes class 0 (``positive_class``), so both binary files have classes 0 / 1, 1 the positive
  (humorous, sarcastic) class, and are scored as MultiBench scores them: accuracy, and F1 (``tasks`` ``binary``).
"""

from __future__ import annotations

import numpy as np

from .prepare import Padded, keep_rows


def drop_textless(padded: dict[str, Padded], labels: np.ndarray,
                  ids: list[str]) -> tuple[dict[str, Padded], np.ndarray, list[str], list[str]]:
    """One split as read (per modality ``Padded`` ``[N, ...]``, labels ``[N]``, N ids) without the samples whose
    text has no non-zero value, and the ids of those dropped. Nothing is copied when none is dropped."""
    keep = padded["text"].lengths_left > 0  # a sample with a non-zero text row has at least one real step
    if keep.all():
        return padded, labels, ids, []
    kept = {m: Padded(keep_rows(p.x, keep), p.lengths_left[keep], p.lengths_right[keep], p.votes[keep])
            for m, p in padded.items()}
    dropped = [segment for segment, kept_one in zip(ids, keep) if not kept_one]
    return kept, labels[keep], [segment for segment, kept_one in zip(ids, keep) if kept_one], dropped


def positive_class(labels: np.ndarray) -> np.ndarray:
    """Binary labels ``[N]`` with MultiBench's sarcasm coding -1 made class 0 (0 and 1 stay; any other value is
    left for the loader's class check to name)."""
    return np.where(labels == -1, 0, labels).astype(np.float32)
