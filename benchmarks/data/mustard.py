"""MUStARD (Castro et al., ACL 2019), sarcasm detection in TV-show utterances, from MultiBench's ``sarcasm.pkl``;
task ``binary`` (1 sarcastic, 0 not), scored as MultiBench scores it: accuracy and F1 (``tasks.classification``).

``sarcasm.pkl`` (github.com/pliang279/MultiBench, read there by ``datasets/affect/get_data.py``;
``affect.multibench``): UR-FUNNY's layout (text ``[N, T, 300]`` GloVe, audio ``[N, T, 81]`` COVAREP, vision
``[N, T, 371]`` OpenFace, word-aligned, zero-padded on the left, ``id``) with labels stored as -1 / +1. The labels
are mapped to classes 0 / 1 (-1 -> 0, +1 -> 1), as MultiBench's reader does (class 1 when the label is > 0):
``info["labels"]`` says so. A file whose labels were already recoded to 0 / 1 is told from UR-FUNNY's ``humor.pkl``
(the same keys, widths and coding) by its ids, strings such as ``1_60`` where UR-FUNNY's are numbers
(``affect.recognise``), and read as it is; ``info["labels"]`` says that too. Samples whose text is all zero are
dropped, as MultiBench drops them (logged; ``info["dropped"]``). MultiBench documents no split sizes for it
(MUStARD has 690 utterances in all): the sizes are logged, not compared.
"""

from __future__ import annotations

from pathlib import Path

from .affect.find import data_path, load_pickles
from .affect.prepare import Corpus
from .dataset import Dataset
from .registry import register_dataset

MUSTARD = Corpus(
    name="mustard", title="MUStARD", standard=None, env="MUSTARD_PATH", pickle_names=("sarcasm.pkl",),
    task="binary", label_range=(0.0, 1.0),
    label_words="sarcasm labels (stored -1 / +1 by MultiBench, read as 0 not sarcastic / 1 sarcastic)",
    accepted="MultiBench's MUStARD pickle (sarcasm.pkl) or a folder holding it",
    sources="sarcasm.pkl is distributed by MultiBench (github.com/pliang279/MultiBench, 'Affective Computing'), "
            "MUStARD itself by github.com/soujanyaporia/MUStARD",
)
LABELS = "stored -1 / +1 (MultiBench's sarcasm.pkl), read as 0 / 1: -1 -> 0 (not sarcastic), +1 -> 1 (sarcastic)"
RECODED = ("stored 0 / 1 (already recoded from MultiBench's -1 / +1), read as they are: 0 not sarcastic, "
           "1 sarcastic")


@register_dataset("mustard")
def load_mustard(path: str | Path | None = None) -> Dataset:
    """MUStARD as a ``Dataset`` of task ``binary``: text / audio / vision ``[N, T, dim]`` float32 with the real
    steps first and bool masks, labels ``[N]`` int64 (the file's -1 / +1 as 0 / 1, or its 0 / 1 as they are;
    ``info["labels"]``), ids from ``id``.

    ``path``: ``sarcasm.pkl`` (recognised from its content, not its name) or a folder holding it; None reads
    ``$MUSTARD_PATH``. A missing path, another dataset's file (e.g. MultiBench's ``humor.pkl``: labels 0 / 1 and
    numeric ids), a wrong shape or a label other than -1 / +1 or 0 / 1 raises a one-line ``DataError``.
    """
    path, origin = data_path(path, MUSTARD)
    dataset = load_pickles(path, MUSTARD, origin)
    dataset.info["labels"] = RECODED if dataset.info["label_coding"] == "0/1" else LABELS
    return dataset
