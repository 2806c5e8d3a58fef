"""Which dataset a processed affect pickle holds, told from its content (keys, label values, split sizes, feature
widths, ids), never from its name; and the one-line refusal when a loader is given another dataset's file.

``LAYOUTS`` lists the distributed files (widths: text / audio / vision features; splits: train / valid / test):

=================  =========  ======================  ================  ===================  ==================
layout             dataset    keys                    labels            widths               splits
=================  =========  ======================  ================  ===================  ==================
MulT MOSI          mosi       text, audio, vision,    [-3, 3]           300 / 5 / 20         1284 / 229 / 686
                              labels, id
MulT MOSEI         mosei      as MulT MOSI            [-3, 3]           300 / 74 / 35        16326 / 1871 / 4659
MMSA MOSI          mosi       text, text_bert, audio, [-3, 3]           768 / 5 / 20         1284 / 229 / 686
                              vision,
                              regression_labels, id
MMSA MOSEI         mosei      as MMSA MOSI            [-3, 3]           768 / 74 / 35        16326 / 1871 / 4659
MMSA CH-SIMS       sims       MMSA's, and             [-1, 1]           768 / 33 / 709       1368 / 456 / 457
                              regression_labels_T/A/V
CH-SIMS v2         sims2      as CH-SIMS              [-1, 1]           768 / 25 / 177       2722 / 647 / 1034
MultiBench humor   urfunny    as MulT MOSI            0 / 1             300 / 81 / 371       8074 / 1034 / 1058
MultiBench sarcasm mustard    as MulT MOSI            -1 / +1 (or 0/1)  300 / 81 / 371       not documented
MultiBench MOSI    mosi       as MulT MOSI            [-3, 3]           300 / 74 / 35        1283 / 214 / 686
MultiBench MOSEI   mosei      as MulT MOSI            [-3, 3]           300 / 74 / 713       not documented
=================  =========  ======================  ================  ===================  ==================

The MultiBench facts are in ``affect.multibench``. Ids (``ID_FORMS``; the first ``id`` column, MMSA's ``$_$`` read
as ``_``): MOSI's and MOSEI's name their segments ``video_clip`` (MulT's MOSEI file: the video alone), the videos
those of ``mmdatasdk.cmu_mosi.standard_folds`` / ``cmu_mosei.standard_folds`` (the installed CMU-MultimodalSDK;
the two sets share no video); UR-FUNNY's are whole numbers (MultiBench's ``get_data`` reads them as ``int``);
MUStARD's are strings (its ``sarcasm_data.json`` keys, ``1_60``, ``2_380``); CH-SIMS's are not used as evidence.

The evidence, strongest first (``candidates``):

1. keys: ``regression_labels`` or ``text_bert`` make an MMSA-layout file (with the unimodal labels
   ``regression_labels_T`` / ``_A`` / ``_V``: CH-SIMS or v2); ``labels`` a MulT-layout one (MulT or MultiBench).
2. label values: -1 and +1 only are MultiBench's sarcasm coding; 0 and 1 only its humor coding, or a sarcasm file
   whose labels were recoded as MultiBench's reader recodes them; values in [-3, 3] of which some are not whole
   numbers are sentiment scores, in [-1, 1] also CH-SIMS's. Labels that fit no layout (non-finite, out of range,
   whole numbers other than a binary coding, not one per sample) are no evidence: the loader's own checks name them.
3. split sizes equal to a layout's documented ones.
4. feature widths equal to a layout's documented ones.
5. ids (``Survey.id_form``), where the steps above leave layouts of several datasets: the form of the layouts'
   ids. It tells MulT MOSEI from MultiBench MOSI (the same keys and widths, 300 / 74 / 35) when the split sizes
   are neither's, and UR-FUNNY from a MUStARD file recoded to 0 / 1.

Each step keeps the layouts that fit, unless none does (then it is no evidence). A loader reads the file when its
dataset is among the datasets the evidence leaves (``choose``), as the first such layout; the file's own sizes,
widths and padding side are kept, and where they differ from that layout's documented ones ``differences`` names
them. Otherwise it refuses in one line that says what the file holds and which ``--dataset`` reads it. When the
evidence leaves the loader's dataset and another (not its kin) and the file matched a documented split size or
feature width of both, the file is refused in one line naming both readings (e.g. a small file with MulT MOSEI's
widths and no ids: MulT MOSEI or MultiBench MOSI, which read it differently); when it matched none, nothing tells
the file's origin and the loader reads it as its own. So a file is never refused for a width alone when its labels
and keys fit the dataset (e.g. a MOSI file with other features), but a MOSI file whose widths are MOSEI's is
refused by ``--dataset mosi`` when its ids or split sizes are MOSEI's.

CH-SIMS and v2 share their task; either loader reads the other's file (``Layout.kin``), and the width warning
names the other ``--dataset``. A loader of a dataset not in ``LAYOUTS`` reads any file of its format.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..dataset import SPLITS, DataError
from .prepare import MODALITIES, Corpus

LABEL_KEYS = {"mmsa": "regression_labels", "mult": "labels"}
"""The labels' key of each key family (``Survey.family``)."""
UNIMODAL_LABELS = {"regression_labels_T": "labels_text", "regression_labels_A": "labels_audio",
                   "regression_labels_V": "labels_vision"}
"""CH-SIMS's unimodal labels: the key in the file, the name in ``Split.extras`` (``affect.pickles``)."""


@dataclass(frozen=True)
class Layout:
    """One distributed file layout. ``key``: its name in ``info["layout"]``; ``title``: as named in messages;
    ``reader``: ``"mult"``, ``"mmsa"`` or ``"multibench"`` (which reader of ``affect.pickles`` reads it);
    ``dataset``: the ``--dataset`` that reads it; ``widths``: text / audio / vision features; ``labels``:
    ``"sentiment"`` ([-3, 3]), ``"sims"`` ([-1, 1]), ``"humor"`` (0 / 1) or ``"sarcasm"`` (-1 / +1); ``splits``:
    the documented train / valid / test sizes (None: not documented); ``padding``: the documented side of the zero
    padding (None: not one side, or not documented); ``ids``: the form of its ids, a key of ``ID_FORMS`` (None: not
    evidence); ``kin``: other datasets that read it too (same task); ``note``: what the loader logs as a warning
    whenever it reads this layout."""

    key: str
    title: str
    reader: str
    dataset: str
    widths: tuple[int, int, int]
    labels: str
    splits: tuple[int, int, int] | None
    padding: str | None = None
    ids: str | None = None
    kin: tuple[str, ...] = ()
    note: str = ""

    @property
    def family(self) -> str:
        """The key family (``Survey.family``): MultiBench's files have MulT's keys."""
        return "mmsa" if self.reader == "mmsa" else "mult"

    @property
    def standard(self) -> dict[str, int] | None:
        """The documented split sizes by split name, as ``Corpus.standard``."""
        return dict(zip(SPLITS, self.splits)) if self.splits else None


ID_FORMS = {
    "cmu_mosi": "MOSI's segment names (videos of mmdatasdk.cmu_mosi.standard_folds)",
    "cmu_mosei": "MOSEI's segment names (videos of mmdatasdk.cmu_mosei.standard_folds)",
    "numbers": "whole numbers (UR-FUNNY's)",
    "strings": "strings (MUStARD's, e.g. '1_60')",
}
"""The forms of a file's ids (``id_form``), as named in messages; ``cmu_mosi`` / ``cmu_mosei`` name the
``mmdatasdk`` module whose ``standard_folds`` hold the videos."""

MOSI_SPLIT, MOSEI_SPLIT = (1284, 229, 686), (16326, 1871, 4659)
LAYOUTS = (
    Layout("mult-mosi", "a MulT MOSI pickle (mosi_data.pkl, mosi_data_noalign.pkl)", "mult", "mosi", (300, 5, 20),
           "sentiment", MOSI_SPLIT, "left", ids="cmu_mosi"),
    Layout("mult-mosei", "a MulT MOSEI pickle (mosei_senti_data.pkl, mosei_senti_data_noalign.pkl)", "mult", "mosei",
           (300, 74, 35), "sentiment", MOSEI_SPLIT, "left", ids="cmu_mosei"),
    Layout("mmsa-mosi", "an MMSA MOSI pickle (aligned_50.pkl, unaligned_50.pkl)", "mmsa", "mosi", (768, 5, 20),
           "sentiment", MOSI_SPLIT, ids="cmu_mosi"),
    Layout("mmsa-mosei", "an MMSA MOSEI pickle (aligned_50.pkl, unaligned_50.pkl)", "mmsa", "mosei", (768, 74, 35),
           "sentiment", MOSEI_SPLIT, ids="cmu_mosei"),
    Layout("mmsa-sims", "an MMSA CH-SIMS pickle (unaligned_39.pkl)", "mmsa", "sims", (768, 33, 709), "sims",
           (1368, 456, 457), "right", kin=("sims2",)),
    Layout("mmsa-sims2", "a CH-SIMS v2 pickle (MMSA-FET layout)", "mmsa", "sims2", (768, 25, 177), "sims",
           (2722, 647, 1034), "right", kin=("sims",)),
    Layout("multibench-humor", "MultiBench's UR-FUNNY pickle (humor.pkl)", "multibench", "urfunny", (300, 81, 371),
           "humor", (8074, 1034, 1058), "left", ids="numbers"),
    Layout("multibench-sarcasm", "MultiBench's MUStARD pickle (sarcasm.pkl)", "multibench", "mustard",
           (300, 81, 371), "sarcasm", None, "left", ids="strings",
           note="MultiBench does not document the split of sarcasm.pkl (MUStARD has 690 utterances in all); "
                "read as the file holds it"),
    Layout("multibench-mosi", "MultiBench's MOSI pickle (mosi_raw.pkl)", "multibench", "mosi", (300, 74, 35),
           "sentiment", (1283, 214, 686), "left", ids="cmu_mosi",
           note="MultiBench's mosi_raw.pkl splits MOSI 1283 / 214 / 686, not 1284 / 229 / 686 as the MulT and MMSA "
                "files do: its scores are not comparable with scores on those files"),
    Layout("multibench-mosei", "MultiBench's MOSEI pickle (mosei_raw.pkl)", "multibench", "mosei", (300, 74, 713),
           "sentiment", None, "left", ids="cmu_mosei",
           note="MultiBench's mosei_raw.pkl splits MOSEI otherwise than the MulT and MMSA files (16326 / 1871 / "
                "4659): its scores are not comparable with scores on those files"),
)
DATASETS = frozenset(layout.dataset for layout in LAYOUTS)

BINARY_LABELS = ("humor", "sarcasm")
"""The ``Layout.labels`` of MultiBench's binary files (read as classes 0 / 1)."""
BINARY_CODINGS = {"0/1": BINARY_LABELS, "-1/+1": ("sarcasm",), "1": BINARY_LABELS}
"""Label codings that only MultiBench's binary files use (``Survey.coding``), and the label kinds they fit (0 / 1:
humor's, or sarcasm's -1 / +1 recoded as MultiBench's reader recodes them)."""
RANGES = {"sentiment": (-3.0, 3.0), "sims": (-1.0, 1.0)}


@dataclass(frozen=True)
class Survey:
    """What a pickle's splits hold, as far as they can be read (None where not). ``family``: ``"mmsa"`` (keys
    ``regression_labels`` / ``text_bert``), ``"mult"`` (``labels``) or None; ``keys``: the first split's keys;
    ``unimodal``: it holds ``regression_labels_T`` / ``_A`` / ``_V``; ``widths``: text / audio / vision features
    of the first split; ``counts``: samples per split (``SPLITS`` order); ``coding``: ``"0/1"``, ``"-1/+1"``, ``"1"``
    (every label 1) or None (other values); ``low`` / ``high``: the labels' range, ``whole``: every label is a
    whole number (None, None, False when the labels are not finite numbers, one per sample); ``ids``: the ids of
    the splits in order, as text (the first ``id`` column; empty when there are none or they cannot be read)."""

    family: str | None
    keys: tuple[str, ...]
    unimodal: bool
    widths: tuple[int | None, int | None, int | None]
    counts: tuple[int | None, int | None, int | None]
    coding: str | None
    low: float | None
    high: float | None
    whole: bool
    ids: tuple[str, ...] = ()

    def describe(self) -> str:
        """The facts as said in messages: keys, widths, labels, split sizes and, when there are ids, their form."""
        widths = ", ".join(f"{m} {w if w is not None else '?'}" for m, w in zip(MODALITIES, self.widths))
        if self.coding == "1":
            labels = "labels all 1"
        elif self.coding is not None:
            labels = f"labels {self.coding}"
        elif self.low is not None:
            labels = f"labels in [{self.low:g}, {self.high:g}]"
        else:
            labels = "labels not finite numbers one per sample"
        splits = "/".join(str(n) if n is not None else "-" for n in self.counts)
        ids = f"; ids like {self.ids[0]!r}, {ID_FORMS[id_form(self.ids)]}" if self.ids else ""
        return f"keys {', '.join(self.keys)}; widths {widths}; {labels}; splits {splits}{ids}"


def survey(data: dict) -> Survey:
    """The facts of an unpickled ``{train, valid, test}`` dict of split dicts (split dicts missing or of other
    layouts are skipped; nothing raises)."""
    present = [data[name] if isinstance(data.get(name), dict) else None for name in SPLITS]
    first = next((split for split in present if split is not None), {})
    family = ("mmsa" if "regression_labels" in first or "text_bert" in first
              else "mult" if "labels" in first else None)
    labels = [_one_per_sample(split.get(LABEL_KEYS[family])) if split is not None and family else None
              for split in present]
    counts = tuple(len(values) if values is not None else None for values in labels)
    read = [values for values, split in zip(labels, present) if split is not None]
    readable = read and all(values is not None for values in read)
    coding, low, high, whole = _coding(read) if readable else (None, None, None, False)
    return Survey(family=family, keys=tuple(map(str, first)), unimodal=all(key in first for key in UNIMODAL_LABELS),
                  widths=tuple(_width(first.get(m)) for m in MODALITIES), counts=counts, coding=coding, low=low,
                  high=high, whole=whole, ids=tuple(i for split in present if split is not None
                                                    for i in _ids(split.get("id"))))


def _ids(value: object) -> list[str]:
    """The ids of one split as text: ``id`` ``[N]`` or its first column ``[N, k]``; bytes decoded, whole numbers
    written without a fraction; none when it is absent or of another shape."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):
        return []
    array = array[:, 0] if array.ndim == 2 and array.shape[1] else array
    if array.ndim != 1:
        return []
    if np.issubdtype(array.dtype, np.floating) and np.isfinite(array).all() and (array == np.round(array)).all():
        array = array.astype(np.int64)
    return [item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item) for item in array.tolist()]


def id_form(ids: tuple[str, ...]) -> str | None:
    """The form of the ``ids`` (a key of ``ID_FORMS``; None when there are none): MOSI's or MOSEI's when more than
    half name a segment (``video_clip``, MMSA's ``video$_$clip``) or a video of that corpus's standard folds, else
    ``numbers`` when every id is a whole number, else ``strings``."""
    if not ids:
        return None
    for module in ("cmu_mosi", "cmu_mosei"):
        videos = _fold_videos(module)
        named = sum(i in videos or i.replace("$_$", "_").rsplit("_", 1)[0] in videos for i in ids)
        if 2 * named > len(ids):
            return module
    return "numbers" if all(i.isdigit() for i in ids) else "strings"


@functools.cache
def _fold_videos(module: str) -> frozenset[str]:
    """The videos of ``mmdatasdk.<module>.standard_folds`` (train, valid and test)."""
    from mmsdk import mmdatasdk  # imported here: it takes seconds, and only the ids of a tie need it

    folds = getattr(mmdatasdk, module).standard_folds
    return frozenset(folds.standard_train_fold) | set(folds.standard_valid_fold) | set(folds.standard_test_fold)


def _one_per_sample(value: object) -> np.ndarray | None:
    """``value`` as ``[N]`` numbers when it holds one number per sample (``[N]``, ``[N, 1]``, ``[N, 1, 1]``)."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):
        return None
    if array.ndim == 0 or array.size != array.shape[0] or not np.issubdtype(array.dtype, np.number):
        return None
    return array.reshape(-1)


def _coding(parts: list[np.ndarray]) -> tuple[str | None, float | None, float | None, bool]:
    """The labels' coding, range and wholeness (``Survey``) over the splits' labels ``parts``."""
    values = np.concatenate(parts).astype(np.float64)
    if not values.size or not np.isfinite(values).all():
        return None, None, None, False
    distinct = set(np.unique(values).tolist())
    coding = next((name for name, allowed in (("1", {1.0}), ("0/1", {0.0, 1.0}), ("-1/+1", {-1.0, 1.0}))
                   if distinct <= allowed), None)
    return coding, float(values.min()), float(values.max()), bool((values == np.round(values)).all())


def _width(value: object) -> int | None:
    shape = getattr(value, "shape", None)
    return int(shape[-1]) if shape is not None and len(shape) == 3 else None


def _fits_labels(layout: Layout, found: Survey) -> bool:
    if found.coding in BINARY_CODINGS:
        return layout.labels in BINARY_CODINGS[found.coding]
    if layout.labels not in RANGES or found.low is None or found.whole:
        return False
    low, high = RANGES[layout.labels]
    return low <= found.low and found.high <= high


def candidates(found: Survey) -> list[Layout]:
    """The layouts the evidence leaves, in ``LAYOUTS`` order (module docstring): each step keeps the layouts that
    fit, unless none does (then it is no evidence). The ids are read only when the other steps leave layouts of
    several datasets."""
    kept = [layout for layout in LAYOUTS if layout.family == found.family
            and (layout.labels == "sims" or not found.unimodal)]
    for fits in (lambda layout: _fits_labels(layout, found),
                 lambda layout: layout.splits is not None and layout.splits == found.counts,
                 lambda layout: layout.widths == found.widths):
        kept = [layout for layout in kept if fits(layout)] or kept
    if len({layout.dataset for layout in kept}) > 1:
        form = id_form(found.ids)
        kept = [layout for layout in kept if form is not None and layout.ids == form] or kept
    return kept


def choose(found: Survey, corpus: Corpus, source: str) -> Layout | None:
    """The layout ``corpus`` reads the surveyed file as (None: ``corpus`` is not in ``LAYOUTS``, any file of its
    format is read). ``source`` names the file (``"MOSI file /data/humor.pkl"``). Raises ``DataError`` in one line
    when the evidence leaves only other datasets (what the file holds and which ``--dataset`` reads it), or leaves
    this one and another that the file's split sizes or widths fit as well (``_refuse_readings``)."""
    if corpus.name not in DATASETS:
        return None
    left = candidates(found)
    own = [layout for layout in left if layout.dataset == corpus.name]
    others = [layout for layout in left if layout.dataset != corpus.name and corpus.name not in layout.kin]
    if own and others and any(layout.widths == found.widths or layout.splits == found.counts for layout in left):
        readings = {own[0].dataset: own[0]}
        for layout in others:
            readings.setdefault(layout.dataset, layout)
        _refuse_readings(found, source, list(readings.values()))
    if own:
        return own[0]
    kin = [layout for layout in left if corpus.name in layout.kin]
    if kin:
        return next(layout for layout in LAYOUTS if layout.dataset == corpus.name and layout.reader == kin[0].reader)
    datasets = list(dict.fromkeys(layout.dataset for layout in left))
    if len(datasets) > 1:
        held = "holds another dataset's data"
    elif None in found.widths or found.widths == left[0].widths:
        held = f"holds {left[0].title}"
    else:
        evidence = "keys, labels and ids" if found.ids and left[0].ids == id_form(found.ids) else "keys and labels"
        held = f"holds, by its {evidence}, {left[0].title}"
    raise DataError(f"{source} {held}, not {corpus.title} data ({found.describe()}); read it with "
                    + " or ".join(f"--dataset {name}" for name in datasets))


def _refuse_readings(found: Survey, source: str, readings: list[Layout]) -> None:
    """The one-line ``DataError`` for a file that fits ``readings`` (layouts of several datasets, the loader's
    first) by its keys, labels and documented split sizes or widths, and whose ids tell none of them."""
    matched = "split sizes" if any(layout.splits == found.counts for layout in readings) else "feature widths"
    ids = (f"its ids (like {found.ids[0]!r}) are {ID_FORMS[id_form(found.ids)]}, none of theirs" if found.ids
           else "it holds no ids")
    wanted = " or ".join(dict.fromkeys(ID_FORMS[layout.ids] for layout in readings if layout.ids is not None))
    raise DataError(f"{source} could be read as " + ", or as ".join(
        f"{layout.title}, which --dataset {layout.dataset} reads" for layout in readings)
        + f": its keys, labels and {matched} fit each and {ids} ({found.describe()}); expected ids (key 'id', the "
        f"segment's first) that tell them apart: {wanted}")


def differences(layout: Layout | None, found: Survey, padding: dict[str, dict[str, int]]) -> str:
    """What differs from ``layout``'s documented feature widths (naming the layout whose widths they are, if any:
    CH-SIMS v2's read as CH-SIMS) and padding side ('' when nothing, or no layout); ``padding``: ``info["padding"]``
    of the loaded dataset (samples read as padded on each side, per modality). The split sizes are compared by
    ``prepare.build_dataset``."""
    if layout is None:
        return ""
    parts = []
    widths = [(m, w, d) for m, w, d in zip(MODALITIES, found.widths, layout.widths) if w is not None and w != d]
    if widths:
        other = next((other for other in LAYOUTS if other.family == layout.family
                      and other.dataset != layout.dataset and other.widths == found.widths), None)
        parts.append("feature widths " + ", ".join(f"{m} {w}" for m, w, _ in widths) + " where it documents "
                     + ", ".join(f"{m} {d}" for m, _, d in widths)
                     + (f" (the widths of {other.title}, which --dataset {other.dataset} reads)" if other else ""))
    if layout.padding is not None:
        other = "right" if layout.padding == "left" else "left"
        sides = {m: counts for m, counts in padding.items() if counts[other] > counts[layout.padding]}
        if sides:
            parts.append(f"padded on the {other} (" + ", ".join(f"{m} {c[other]} samples" for m, c in sides.items())
                         + f") where it pads on the {layout.padding}")
    return f"differs from {layout.title}: " + "; ".join(parts) if parts else ""
