"""Writers of small MOSI (and MOSEI) files in each distributed format, and the values a loader must return for them.

Every writer takes a list of ``Segment`` (video, clip, label, split) and returns the truth: per split the segment
ids, labels and, per modality, the list of real steps ``[n_i, dim]`` (with non-finite values already replaced by 0)
in the order a loader returns them. Segments use real MOSI video ids (from mmsdk's standard folds; MOSEI's with
``folds=MOSEI_FOLDS``) or, with the shared data present, the real segments (``real_segments``). The pickle writers
take MOSEI's feature sizes and sequence lengths as ``dims`` / ``steps``.
"""

from __future__ import annotations

import contextlib
import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from mmsdk import mmdatasdk

from tests.conftest import SHARED_MOSI

SPLITS = ("train", "valid", "test")
MODALITIES = ("text", "audio", "vision")
FOLDS = dict(zip(SPLITS, (mmdatasdk.cmu_mosi.standard_folds.standard_train_fold,
                          mmdatasdk.cmu_mosi.standard_folds.standard_valid_fold,
                          mmdatasdk.cmu_mosi.standard_folds.standard_test_fold)))
MOSEI_FOLDS = dict(zip(SPLITS, (mmdatasdk.cmu_mosei.standard_folds.standard_train_fold,
                                mmdatasdk.cmu_mosei.standard_folds.standard_valid_fold,
                                mmdatasdk.cmu_mosei.standard_folds.standard_test_fold)))
LABELS_CSD = SHARED_MOSI / "CMU_MOSI_Opinion_Labels.csd"
LABEL_CSV = SHARED_MOSI / "label.csv"


@dataclass
class Segment:
    video: str
    clip: int  # 1-based, as in label.csv
    label: float
    split: str

    @property
    def id(self) -> str:
        return f"{self.video}_{self.clip}"


def sample_segments(per_split: tuple[int, int, int] = (12, 6, 6), seed: int = 0, folds=FOLDS) -> list[Segment]:
    """A few segments per split, 3 per video of that split's standard fold (``folds``: MOSI's, or
    ``MOSEI_FOLDS``), labels in [-3, 3] in steps of 0.2."""
    rng = np.random.default_rng(seed)
    segments = []
    for split, count in zip(SPLITS, per_split):
        for k in range(count):
            label = float(np.round(rng.uniform(-3, 3) * 5) / 5)
            segments.append(Segment(folds[split][k // 3], k % 3 + 1, label, split))
    return segments


def real_label_intervals() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per video of the shared ``CMU_MOSI_Opinion_Labels.csd``: intervals ``[k, 2]`` (s) and labels ``[k]``."""
    with h5py.File(LABELS_CSD, "r") as handle:
        data = handle[next(iter(handle))]["data"]
        return {video: (data[video]["intervals"][()], data[video]["features"][()][:, 0]) for video in data}


def real_segments() -> list[Segment]:
    """All 2,199 labelled MOSI segments with their real labels and standard-fold split."""
    split_of = {video: split for split, videos in FOLDS.items() for video in videos}
    return [Segment(video, k + 1, float(label), split_of[video])
            for video, (_, labels) in sorted(real_label_intervals().items()) for k, label in enumerate(labels)]


def by_split(segments: list[Segment]) -> dict[str, list[Segment]]:
    return {split: [s for s in segments if s.split == split] for split in SPLITS}


def _steps(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """``[n, dim]`` real steps: non-zero values, and an all-zero row inside when ``n >= 3`` (a real zero step)."""
    x = rng.uniform(0.5, 1.5, (n, dim)).astype(np.float32) * rng.choice([-1, 1], (n, dim))
    if n >= 3:
        x[n // 2] = 0.0
    return x


def _pad(sequences: list[np.ndarray], steps: int, dim: int, side: str) -> np.ndarray:
    """``[N, steps, dim]`` with zero rows before (``side="left"``) or after (``"right"``) each sequence."""
    x = np.zeros((len(sequences), steps, dim), np.float32)
    for row, seq in enumerate(sequences):
        start = steps - len(seq) if side == "left" else 0
        x[row, start : start + len(seq)] = seq
    return x


def _truth(parts: dict[str, list[Segment]]) -> dict:
    return {split: {"ids": [s.id for s in segs], "labels": np.array([s.label for s in segs], np.float32),
                    **{m: [] for m in MODALITIES}} for split, segs in parts.items()}


def write_mult(path: Path, segments: list[Segment], aligned: bool = True, dims=(300, 5, 20), steps=None,
               with_ids: bool = True, seed: int = 0, side: str = "left") -> dict:
    """A MulT pickle (``mosi_data.pkl`` / ``mosi_data_noalign.pkl``; MOSEI's ``mosei_senti_data[_noalign].pkl``
    with ``dims=(300, 74, 35)``, ``steps=(50, 500, 500)`` unaligned): zero padding on ``side`` (MulT's own files:
    left; the same ``seed`` gives the same real steps on either side), ``-inf`` in audio, ``labels`` ``[N, 1, 1]``,
    ``id`` ``[N, 3]`` bytes (``video_clip``, start, end). The first segment of each split has no vision (all-zero
    rows)."""
    rng = np.random.default_rng(seed)
    steps = steps or ((50, 50, 50) if aligned else (50, 375, 500))
    parts = by_split(segments)
    truth, data = _truth(parts), {}
    for split, segs in parts.items():
        n = len(segs)
        words = rng.integers(1, steps[0] + 1, n)
        arrays = {}
        for m, dim, length in zip(MODALITIES, dims, steps):
            lengths = words if aligned else rng.integers(1, length + 1, n)
            real = [_steps(rng, int(k), dim) for k in lengths]
            if m == "vision" and n:
                real[0] = np.zeros((0, dim), np.float32)
            if m == "audio":
                for r in real:
                    r[-1, 0] = -np.inf  # COVAREP's -inf; never turns a row all-zero
            truth[split][m] = [np.where(np.isfinite(r), r, 0) for r in real]
            arrays[m] = _pad(real, length, dim, side)
        data[split] = {**arrays, "labels": truth[split]["labels"].reshape(n, 1, 1)}
        if with_ids:
            data[split]["id"] = np.array([[s.id, f"{s.clip * 4.1:.3f}", f"{s.clip * 4.1 + 3:.3f}"] for s in segs],
                                         dtype="S")
        else:
            truth[split]["ids"] = [f"{split}_{i}" for i in range(n)]
    with open(path, "wb") as handle:
        pickle.dump(data, handle)
    return truth


def write_mmsa(path: Path, segments: list[Segment], aligned: bool = True, side: str = "left", seed: int = 0,
               dims=(5, 20), steps=(375, 500)) -> dict:
    """An MMSA pickle (``aligned_50.pkl`` / ``unaligned_50.pkl``): BERT ``text`` ``[N, 50, 768]`` whose padded
    positions are NOT zero, ``text_bert`` ``[N, 3, 50]``, audio / vision of ``dims`` features (MOSI 5, 20; MOSEI
    74, 35) padded on ``side`` (``steps`` when unaligned, with stored ``audio_lengths`` / ``vision_lengths``; 50
    when aligned), ``regression_labels`` ``[N]``, ids ``video$_$clip``."""
    rng = np.random.default_rng(seed)
    steps = {"text": 50, **dict(zip(("audio", "vision"), (50, 50) if aligned else steps))}
    dims = {"text": 768, **dict(zip(("audio", "vision"), dims))}
    parts = by_split(segments)
    truth, data = _truth(parts), {}
    for split, segs in parts.items():
        n = len(segs)
        tokens = rng.integers(2, 51, n)  # [CLS] ... [SEP]
        text = rng.normal(size=(n, 50, 768)).astype(np.float32)  # BERT states exist at padded positions too
        bert = np.zeros((n, 3, 50), np.int64)
        for row, k in enumerate(tokens):
            bert[row, 0, :k] = [101, *rng.integers(1000, 3000, k - 2), 102]
            bert[row, 1, :k] = 1
        truth[split]["text"] = [text[row, :k].copy() for row, k in enumerate(tokens)]
        entry = {"text": text, "text_bert": bert}
        for m in ("audio", "vision"):
            lengths = tokens if aligned else rng.integers(1, steps[m] + 1, n)
            real = [_steps(rng, int(k), dims[m]) for k in lengths]
            if m == "audio":
                for r in real:
                    r[0, 1] = -np.inf
            truth[split][m] = [np.where(np.isfinite(r), r, 0) for r in real]
            entry[m] = _pad(real, steps[m], dims[m], side)
            if not aligned:
                entry[f"{m}_lengths"] = [int(k) for k in lengths]
        entry.update(
            regression_labels=truth[split]["labels"].copy(),
            classification_labels=np.sign(truth[split]["labels"]).astype(np.float32) + 1,
            annotations=["Positive" if s.label > 0 else "Negative" for s in segs],
            raw_text=[f"segment {s.id}" for s in segs], id=[f"{s.video}$_${s.clip}" for s in segs],
        )
        data[split] = entry
    with open(path, "wb") as handle:
        pickle.dump(data, handle)
    return truth


CSD_METADATA = {
    "computational sequence description": "test fixture", "computational sequence version": "1.0",
    "alignment compatible": "true", "dataset name": "CMU-MOSI", "dataset version": "1.0", "creator": "tests",
    "contact": "none", "featureset bib citation": "none", "dataset bib citation": "none",
}


def write_csd(path: Path, root: str, data: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """A computational sequence written by mmsdk's own writer: ``{video: (intervals [n, 2], features [n, d])}``."""
    entries = {video: {"intervals": np.asarray(iv, np.float64), "features": np.asarray(f, np.float32)}
               for video, (iv, f) in data.items()}
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        sequence = mmdatasdk.computational_sequence(root)
        sequence.setData(entries, root)
        sequence.setMetadata({**CSD_METADATA, "root name": root}, root)
        sequence.deploy(str(path))


SDK_NAMES = {"text": "CMU_MOSI_TimestampedWordVectors.csd", "audio": "CMU_MOSI_COVAREP.csd",
             "vision": "CMU_MOSI_Visual_Facet_41.csd", "labels": "CMU_MOSI_Opinion_Labels.csd"}
SDK_ROOTS = {"text": "glove_vectors", "audio": "COVAREP", "vision": "FACET 4.1", "labels": "Opinion Segment Labels"}


def write_sdk_folder(folder: Path, intervals: dict[str, tuple[np.ndarray, np.ndarray]], dims=(300, 74, 47),
                     words_per_segment: int = 3, labels_file: Path | None = None, seed: int = 0,
                     missing: dict[str, list[str]] | None = None, names=SDK_NAMES, roots=SDK_ROOTS) -> dict:
    """A ``.csd`` folder for the given label intervals ``{video: (intervals [k, 2], labels [k] or [k, c])}``
    (written too, unless ``labels_file`` is copied instead), files named ``names`` with root names ``roots`` per
    role (MOSI's by default). Each segment longer than 1 ms holds ``words_per_segment`` words
    that split it evenly; each word has two COVAREP frames (the first word of a video has a ``-inf``) and one
    Facet frame, except every third word, which has none (the loader must give it a zero step). ``missing``:
    per modality, videos left out of that modality's ``.csd`` (a face detector that failed on a video).

    Returns the truth per video segment ``{(video, k): {"text", "audio", "vision"}}`` (word-level, ``[w, d]``):
    no rows for a modality missing from the video, and none in any modality where the words are missing.
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    streams = {m: {} for m in MODALITIES}  # modality -> video -> (intervals, features)
    truth = {}
    for video, (spans, _) in intervals.items():
        rows = {m: ([], []) for m in MODALITIES}
        absent = {m for m in MODALITIES if video in (missing or {}).get(m, ())}
        for k, (start, end) in enumerate(spans):
            segment = {m: [] for m in MODALITIES}
            bounds = np.linspace(start, end, words_per_segment + 1) if end - start > 1e-3 else []
            for w, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
                vector = rng.normal(size=dims[0]).astype(np.float32)
                frames = rng.normal(size=(2, dims[1])).astype(np.float32)
                if not rows["text"][0]:
                    frames[0, 0] = -np.inf
                face = rng.normal(size=dims[2]).astype(np.float32) if w % 3 != 2 else np.zeros(dims[2], np.float32)
                rows["text"][0].append([a, b])
                rows["text"][1].append(vector)
                rows["audio"][0].extend([[a, (a + b) / 2], [(a + b) / 2, b]])
                rows["audio"][1].extend(frames)
                if w % 3 != 2:
                    rows["vision"][0].append([a, b])
                    rows["vision"][1].append(face)
                mean = frames.mean(axis=0)
                segment["text"].append(vector)
                segment["audio"].append(np.where(np.isfinite(mean), mean, 0))
                segment["vision"].append(face)
            truth[(video, k)] = {m: np.array(segment[m] if "text" not in absent and m not in absent else [],
                                             np.float32).reshape(-1, d) for m, d in zip(MODALITIES, dims)}
        for m, d in zip(MODALITIES, dims):
            if m not in absent:
                streams[m][video] = (np.array(rows[m][0]).reshape(-1, 2), np.array(rows[m][1]).reshape(-1, d))
    for m in MODALITIES:
        write_csd(folder / names[m], roots[m], streams[m])
    if labels_file is None:
        write_csd(folder / names["labels"], roots["labels"],
                  {v: (iv, lab.reshape(len(iv), -1)) for v, (iv, lab) in intervals.items()})
    else:
        (folder / names["labels"]).write_bytes(labels_file.read_bytes())
    return truth
