"""Accuracy against the number of modalities: ``python -m benchmarks.scaling --train ...``.

Each fusion is trained with the runner (same preset and protocol for every fusion, paired seeds) at every
modality count:

* ``mfeat``: its six real views in a fixed order (fou, fac, kar, pix, zer, mor); for each ``n`` in
  ``--modalities`` (default 2..6) the nested prefix of ``n`` views plus ``--subsets`` other subsets of ``n``
  views drawn with a fixed seed (all of them when fewer exist);
* ``synthetic``: for each ``n`` in ``--modalities`` (default 2, 4, 8, 16) the generator with ``n`` modalities,
  whose evidence and interactions are spread over all of them (``make_synthetic``).

Every setting is a run folder ``<out>/<setting>/`` (records, cells, tables). The settings' records are
gathered in ``<out>/accuracy.csv`` (one row per fusion x setting x seed, the runner's columns plus ``setting``
and ``flops``: the fusion's forward FLOPs per sample at the data's padded lengths, counted on ``meta``),
``<out>/skipped.csv`` lists fusions refused at a modality count (e.g. TFN over its size cap), and the
figures ``<out>/figures/accuracy_vs_n`` and ``accuracy_vs_flops`` (the Pareto front over every fusion and
setting) are written as PNG and PDF. A failed cell (see ``benchmarks.run``) stays in ``accuracy.csv`` with
``status`` "failed", is left out of the figures, and the sweep ends with ``CellsFailed`` once all is written.
"""

from __future__ import annotations

import argparse
import itertools
import random
from pathlib import Path

import pandas as pd

from fusions import build_fusion, fusion_class

from .cli import add_training_arguments, parse_fusions, parse_ints, parse_seeds
from .config import Variant, resolve
from .cost import count_costs
from .metrics import main_metric, task_of_columns
from .run import RunSpec, build_config, load_run_dataset, raise_failed, run_benchmark
from .store import atomic_write_csv
from .train import resolve_hparams

MFEAT_ORDER = ("fou", "fac", "kar", "pix", "zer", "mor")
DEFAULT_COUNTS = {"mfeat": "2,3,4,5,6", "synthetic": "2,4,8,16"}


def settings(dataset: str, counts: list[int], subsets: int, seed: int = 0) -> list[tuple[str, RunSpec]]:
    """``(label, partial RunSpec)`` per modality setting: the modality selection or the generator's ``n``."""
    found = []
    if dataset == "mfeat":
        for n in counts:
            if not 2 <= n <= len(MFEAT_ORDER):
                raise ValueError(f"mfeat has {len(MFEAT_ORDER)} views: --modalities must lie in 2..6, got {n}")
            nested = list(MFEAT_ORDER[:n])
            others = [list(c) for c in itertools.combinations(MFEAT_ORDER, n) if list(c) != nested]
            chosen = [nested] + random.Random(seed + n).sample(others, min(subsets, len(others)))
            found += [(f"n{n}-{'-'.join(views)}", RunSpec(fusions=[], modalities=views)) for views in chosen]
    elif dataset == "synthetic":
        for n in counts:
            overrides = {"datasets": {"synthetic": {"n_modalities": n}}}
            found.append((f"n{n}", RunSpec(fusions=[], overrides=overrides)))
    else:
        raise ValueError(f"--train supports the datasets mfeat and synthetic, got {dataset!r}")
    return found


def _fits(config: dict, fusion: str | Variant, described: dict, n: int) -> str | None:
    """None when the fusion can be built for ``n`` modalities, else why not (its stated cap)."""
    cell = resolve(config, fusion, described)
    limit = fusion_class(cell.fusion).max_modalities(**cell.hparams)
    return None if limit is None or n <= limit else f"{cell.label} is capped at {limit} modalities"


def run_accuracy_scaling(
    fusions: list[str | Variant], dataset: str, counts: list[int], seeds: list[int], out: Path,
    preset: str = "quick", config_file: str | None = None, epochs: int | None = None, device: str = "auto",
    subsets: int = 2, quiet: bool = False,
) -> pd.DataFrame:
    """Train every fusion at every modality setting; returns the gathered records (see the module docstring)."""
    records, skipped = [], []
    for label, partial in settings(dataset, counts, subsets):
        spec = RunSpec(fusions=list(fusions), dataset=dataset, seeds=seeds, preset=preset, config_file=config_file,
                       epochs=epochs, device=device, out=str(out / label), modalities=partial.modalities,
                       overrides=partial.overrides)
        config = build_config(spec)
        data, described = load_run_dataset(spec, config)
        n = len(data.modality_names)
        fitting = []
        for fusion in fusions:
            reason = _fits(config, fusion, described, n)
            if reason is None:
                fitting.append(fusion)
            else:
                skipped.append({"setting": label, "n_modalities": n, "fusion": str(fusion), "reason": reason})
        if not fitting:
            continue
        spec.fusions = fitting
        frame = run_benchmark(spec, quiet=quiet, report=False, check=False)
        lengths, dims = [int(x.shape[1]) for x in data.train.xs], data.dims
        flops = {}
        trained = set(frame.loc[frame["status"].eq("done"), "fusion"])
        for fusion in fitting:
            cell = resolve(config, fusion, described)
            if cell.label not in trained:  # failed on every seed (perhaps a configuration that does not build)
                continue
            hparams = resolve_hparams(cell.hparams, data.modality_names)
            counted = count_costs(lambda f=cell.fusion, h=hparams, d=dims: build_fusion(f, d, **h), dims, lengths)
            flops[cell.label] = counted.flops
        records.append(frame.assign(setting=label, flops=frame["fusion"].map(flops)))
        atomic_write_csv(out / "accuracy.csv", pd.concat(records, ignore_index=True))
    columns = ["setting", "n_modalities", "fusion", "reason"]
    atomic_write_csv(out / "skipped.csv", pd.DataFrame(skipped, columns=columns))
    if not records:
        raise ValueError("no fusion could be trained at any modality count")
    gathered = pd.concat(records, ignore_index=True)
    done = gathered[gathered["status"].eq("done")]
    if not done.empty:
        _figures(done, out)
    raise_failed(gathered, out / "accuracy.csv")
    return gathered


def _figures(records: pd.DataFrame, out: Path) -> None:
    from analysis.plots import metric_vs_flops, metric_vs_modalities  # noqa: PLC0415

    main = main_metric(task_of_columns(records.columns))
    metric_vs_modalities(records, [main], out / "figures" / "accuracy_vs_n")
    metric_vs_flops(records, main, out / "figures" / "accuracy_vs_flops")


def main(argv: list[str] | None = None) -> int:
    """The ``--train`` mode of ``python -m benchmarks.scaling``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaling --train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", action="store_true", required=True)
    parser.add_argument("--dataset", default="mfeat", choices=["mfeat", "synthetic"])
    parser.add_argument("--fusions", default="grf,pairwise,late,concat", help="fusion specs (name:key=value)")
    parser.add_argument("--modalities", default=None, help="modality counts (mfeat: 2..6; synthetic: any >= 2)")
    parser.add_argument("--subsets", type=int, default=2, help="mfeat: random subsets per count beside the nested")
    parser.add_argument("--seeds", default="3")
    add_training_arguments(parser)
    parser.add_argument("--out", type=Path, default=None, help="default results/scaling-train/<dataset>")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    counts = parse_ints(args.modalities or DEFAULT_COUNTS[args.dataset], "--modalities", minimum=2)
    records = run_accuracy_scaling(
        parse_fusions(args.fusions), args.dataset, counts, parse_seeds(args.seeds),
        args.out or Path("results") / "scaling-train" / args.dataset, args.preset, args.config, args.epochs,
        args.device, max(args.subsets, 0), args.quiet,
    )
    if not args.quiet:
        main_column = main_metric(task_of_columns(records.columns))
        table = records.groupby(["fusion", "n_modalities"])[main_column].agg(["mean", "std", "count"])
        print(table.to_string())
    return 0
