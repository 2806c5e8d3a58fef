"""Load time and peak memory of a full-size MOSEI pickle: ``python -m benchmarks.load_memory FILE``.

Writes a MOSEI-shaped pickle in MulT's unaligned layout (``mosei_senti_data_noalign.pkl``: text ``[N, 50, 300]``,
audio ``[N, 500, 74]`` with COVAREP's ``-inf``, vision ``[N, 500, 35]``, all left-padded with zero rows to random
lengths, ``labels`` ``[N, 1, 1]``, ``id`` ``[N, 3]``; 22,856 segments split 16326 / 1871 / 4659 by default: 6.4 GB
of float32) or, with ``--layout mmsa``, in MMSA's (``unaligned_50.pkl``: BERT text ``[N, 50, 768]``,
``text_bert``, audio ``[N, 500, 74]`` and vision ``[N, 500, 35]`` right-padded with their lengths: 8.5 GB), as a
protocol-4 pickle like the distributed files. The arrays are made one at a time while the pickle is written, so
writing holds at most two copies of the largest (2.4 GB).

Then it loads the file ``--loads`` times (default 2: from the pickle, then from the cache), each in a fresh
``python`` process (``load_dataset("mosei", FILE)``, cache in ``--cache-dir``, default a new folder beside FILE),
and prints per load: the cache status, the seconds ``load_dataset`` took, the process's peak resident memory (its
``VmHWM``, Linux) and what the load added to it (peak minus the resident memory before the call), also as a
multiple of the arrays' bytes. ``--python-path DIR`` imports the suite from DIR instead (an export of another commit, to
compare). The file and the cache (unless ``--cache-dir`` named it) are deleted at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from records.cli import ArgumentParser, run_cli

from .cli import UsageError

SPLIT = {"train": 16326, "valid": 1871, "test": 4659}  # MOSEI's standard split (MulT's and MMSA's files)
SHAPES = {  # layout -> modality -> (steps, features)
    "mult": {"text": (50, 300), "audio": (500, 74), "vision": (500, 35)},
    "mmsa": {"text": (50, 768), "audio": (500, 74), "vision": (500, 35)},
}
ROWS_PER_CHUNK = 512
CHILD = """
import json, sys, time, warnings
from benchmarks.data import load_dataset
def status(field):  # kB; VmHWM: this process's peak resident memory (reset by exec, unlike ru_maxrss)
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(field + ":"))
before = status("VmRSS")
start = time.perf_counter()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    dataset = load_dataset("mosei", sys.argv[1])
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "before_kib": before, "peak_kib": status("VmHWM"),
                  "cache": dataset.info.get("cache", "none"), "warnings": len(caught)}))
"""


class _Made:
    """An array the writer makes only when it pickles it (``make()``), so that no two are held at once."""

    def __init__(self, make: Callable[[], np.ndarray]) -> None:
        self.make = make


class _Writer(pickle.Pickler):
    def reducer_override(self, obj):
        return obj.make().__reduce_ex__(4) if isinstance(obj, _Made) else NotImplemented


def split_sizes(segments: int) -> dict[str, int]:
    """MOSEI's split, scaled to ``segments`` (the standard one for 22,856)."""
    total = sum(SPLIT.values())
    sizes = {name: max(1, round(segments * count / total)) for name, count in list(SPLIT.items())[:2]}
    sizes["test"] = segments - sum(sizes.values())
    if sizes["test"] < 1:
        raise UsageError(f"--segments {segments}: expected at least 3 (one per split)")
    return sizes


def write_mosei(path: Path, layout: str, segments: int, seed: int = 0) -> int:
    """Write the pickle (module docstring) and return its arrays' bytes."""
    rng = np.random.default_rng(seed)
    data, nbytes = {}, 0
    for name, n in split_sizes(segments).items():
        lengths = {m: rng.integers(1, steps + 1, n) for m, (steps, _) in SHAPES[layout].items()}
        split = {m: _Made(_padded(n, steps, dim, lengths[m], layout == "mult", m == "audio", seed))
                 for m, (steps, dim) in SHAPES[layout].items()}
        labels = np.round(rng.uniform(-3, 3, n) * 3).astype(np.float32) / 3
        ids = [f"video{row // 8:05d}_{row % 8 + 1}" for row in range(n)]
        if layout == "mult":
            split["labels"] = labels.reshape(n, 1, 1)
            split["id"] = np.array([[segment, b"0.0", b"1.0"] for segment in map(str.encode, ids)], dtype="S")
        else:
            bert = np.zeros((n, 3, 50), np.int64)
            bert[:, 1] = np.arange(50) < lengths["text"][:, None]
            split.update(text_bert=bert, regression_labels=labels, id=[i.replace("_", "$_$", 1) for i in ids],
                         audio_lengths=lengths["audio"], vision_lengths=lengths["vision"])
        nbytes += sum(n * steps * dim * 4 for steps, dim in SHAPES[layout].values())
        nbytes += sum(value.nbytes for value in split.values() if isinstance(value, np.ndarray))
        data[name] = split
    with open(path, "wb") as handle:
        writer = _Writer(handle, protocol=4)
        writer.fast = True  # no memo: each array's bytes are freed once written
        writer.dump(data)
    return nbytes


def _padded(n: int, steps: int, dim: int, lengths: np.ndarray, left: bool, minus_inf: bool,
            seed: int) -> Callable[[], np.ndarray]:
    """A maker of ``[n, steps, dim]`` float32: random real steps, zero rows padding on the left or the right, a
    ``-inf`` in each sample's last real step when ``minus_inf`` (COVAREP's)."""
    def make() -> np.ndarray:
        rng = np.random.default_rng([seed, n, steps, dim])
        x = np.empty((n, steps, dim), np.float32)
        positions = np.arange(steps)
        for start in range(0, n, ROWS_PER_CHUNK):
            rows = slice(start, start + ROWS_PER_CHUNK)
            real = (positions >= steps - lengths[rows, None]) if left else (positions < lengths[rows, None])
            x[rows] = rng.standard_normal((len(real), steps, dim), dtype=np.float32)
            x[rows] *= real[..., None]
            if minus_inf:
                last = steps - 1 if left else lengths[rows] - 1
                x[rows][np.arange(len(real)), last, 0] = -np.inf
        return x
    return make


def measure(path: Path, cache_dir: Path, python_path: str | None) -> dict:
    """One load in a fresh process: the child's report (``seconds`` in ``load_dataset``, ``before_kib`` its resident
    memory before the call, ``peak_kib`` its peak, ``VmHWM``) plus ``wall`` (seconds from process start to exit).
    ``RuntimeError`` with the end of the child's error output when it fails."""
    env = {**os.environ, "FUSIONBENCH_CACHE": str(cache_dir)}
    if python_path:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (python_path, env.get("PYTHONPATH"))))
    start = time.perf_counter()
    child = subprocess.run([sys.executable, "-c", CHILD, str(path.resolve())], env=env, cwd=python_path,
                           capture_output=True, text=True)  # -c imports from the cwd first
    wall = time.perf_counter() - start
    if child.returncode:
        raise RuntimeError(f"the load failed (exit {child.returncode}): {child.stderr.strip()[-500:]}")
    return {**json.loads(child.stdout.strip().splitlines()[-1]), "wall": wall}


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m benchmarks.load_memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="the pickle to write (deleted at the end unless --keep)")
    parser.add_argument("--layout", choices=sorted(SHAPES), default="mult", help="MulT's (default) or MMSA's")
    parser.add_argument("--segments", type=int, default=sum(SPLIT.values()), help="segments (default 22856)")
    parser.add_argument("--loads", type=int, default=2, help="loads in fresh processes (default 2)")
    parser.add_argument("--cache-dir", default=None, help="FUSIONBENCH_CACHE of the loads (default: a new folder)")
    parser.add_argument("--python-path", default=None, help="import the suite from this folder instead")
    parser.add_argument("--keep", action="store_true", help="keep the file and the cache")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.loads < 1:
        raise UsageError(f"--loads must be >= 1, got {args.loads}")
    sizes = split_sizes(args.segments)
    path = Path(args.file)
    if path.exists():
        raise UsageError(f"{path} exists; name a new file (it is written, then deleted)")
    cache_dir = Path(args.cache_dir) if args.cache_dir else Path(tempfile.mkdtemp(prefix="load-memory-cache-",
                                                                                  dir=path.parent))
    try:
        start = time.perf_counter()
        nbytes = write_mosei(path, args.layout, args.segments)
        print(f"wrote {path} ({args.layout}, {'/'.join(map(str, sizes.values()))} segments): {nbytes / 1e9:.2f} GB "
              f"of arrays, a {path.stat().st_size / 1e9:.2f} GB file, in {time.perf_counter() - start:.0f} s",
              flush=True)
        print("\n| load | cache | load_dataset (s) | process (s) | peak RSS (GB) | added by the load (GB) | "
              "added / arrays |\n|---|---|---|---|---|---|---|", flush=True)
        for number in range(1, args.loads + 1):
            report = measure(path, cache_dir, args.python_path)
            peak, added = report["peak_kib"] * 1024, (report["peak_kib"] - report["before_kib"]) * 1024
            print(f"| {number} | {report['cache']} | {report['seconds']:.1f} | {report['wall']:.1f} | "
                  f"{peak / 1e9:.2f} | {added / 1e9:.2f} | {added / nbytes:.2f}x |", flush=True)
    finally:
        if not args.keep:
            path.unlink(missing_ok=True)
            if not args.cache_dir:
                shutil.rmtree(cache_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
