"""UR-FUNNY (Hasan et al., EMNLP 2019), humor detection in TED-talk punchlines, from MultiBench's ``humor.pkl``;
task ``binary`` (1 humorous, 0 not), scored as MultiBench scores it: accuracy and F1 (``tasks.classification``).

``humor.pkl`` (github.com/pliang279/MultiBench, read there by ``datasets/affect/get_data.py``; ``affect.multibench``):
each split holds ``text`` ``[N, T, 300]`` (GloVe), ``audio`` ``[N, T, 81]`` (COVAREP), ``vision`` ``[N, T, 371]``
(OpenFace), word-aligned and zero-padded on the left, ``labels`` 0 / 1 and ``id``. Read as MultiBench reads it:
samples whose text is all zero are dropped (logged; ``info["dropped"]``). The split users of MultiBench report is
8074 / 1034 / 1058; a file of other sizes, widths or padding side is read as it is, with one warning.
"""

from __future__ import annotations

from pathlib import Path

from .affect.find import data_path, load_pickles
from .affect.prepare import Corpus
from .dataset import Dataset
from .registry import register_dataset

URFUNNY = Corpus(
    name="urfunny", title="UR-FUNNY", standard={"train": 8074, "valid": 1034, "test": 1058}, env="URFUNNY_PATH",
    pickle_names=("humor.pkl",), task="binary", label_range=(0.0, 1.0),
    label_words="humor labels (1 humorous punchline, 0 not)",
    accepted="MultiBench's UR-FUNNY pickle (humor.pkl) or a folder holding it",
    sources="humor.pkl is distributed by MultiBench (github.com/pliang279/MultiBench, 'Affective Computing'), "
            "UR-FUNNY itself by github.com/ROC-HCI/UR-FUNNY",
)


@register_dataset("urfunny")
def load_urfunny(path: str | Path | None = None) -> Dataset:
    """UR-FUNNY as a ``Dataset`` of task ``binary``: text / audio / vision ``[N, T, dim]`` float32 with the real
    steps first and bool masks, labels ``[N]`` int64 (1 humorous, 0 not), ids from ``id``.

    ``path``: ``humor.pkl`` (recognised from its content, not its name) or a folder holding it; None reads
    ``$URFUNNY_PATH``. A missing path, another dataset's file (e.g. MultiBench's ``sarcasm.pkl``: labels -1 / +1,
    or recoded 0 / 1 with MUStARD's string ids where UR-FUNNY's are numbers), a wrong shape or a label other than
    0 / 1 raises a one-line ``DataError``.
    """
    path, origin = data_path(path, URFUNNY)
    return load_pickles(path, URFUNNY, origin)
