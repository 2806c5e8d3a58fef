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

import itertools
import random
from dataclasses import replace
from pathlib import Path

import pandas as pd

from records.cli import ArgumentParser
from records.schema import write_table
from tasks import get_task, task_of_columns

from .cli import (
    add_output_arguments,
    add_seed_arguments,
    add_training_arguments,
    experiment_fields,
    parse_fusions,
    parse_ints,
    seeds_of,
)
from .config import Variant
from .data.mfeat import VIEWS
from .experiment import Experiment, ExperimentSpec
from .run import run_experiment
from .run_folder import raise_failed

DEFAULT_COUNTS = {"mfeat": "2,3,4,5,6", "synthetic": "2,4,8,16"}


def settings(dataset: str, counts: list[int], subsets: int, seed: int = 0) -> list[tuple[str, ExperimentSpec]]:
    """``(label, partial ExperimentSpec)`` per modality setting: the modality selection or the generator's ``n``."""
    found = []
    if dataset == "mfeat":
        for n in counts:
            if not 2 <= n <= len(VIEWS):
                raise ValueError(f"mfeat has {len(VIEWS)} views: --modalities must lie in 2..6, got {n}")
            nested = list(VIEWS[:n])
            others = [list(c) for c in itertools.combinations(VIEWS, n) if list(c) != nested]
            chosen = [nested] + random.Random(seed + n).sample(others, min(subsets, len(others)))
            found += [(f"n{n}-{'-'.join(views)}", ExperimentSpec(modalities=views)) for views in chosen]
    elif dataset == "synthetic":
        for n in counts:
            overrides = {"datasets": {"synthetic": {"n_modalities": n}}}
            found.append((f"n{n}", ExperimentSpec(overrides=overrides)))
    else:
        raise ValueError(f"--train supports the datasets mfeat and synthetic, got {dataset!r}")
    return found


def run_accuracy_scaling(
    fusions: list[str | Variant], base: ExperimentSpec, counts: list[int], seeds: list[int], out: Path,
    subsets: int = 2, quiet: bool = False,
) -> pd.DataFrame:
    """Train every fusion at every modality setting of ``base.dataset`` (``mfeat`` or ``synthetic``); returns the
    gathered records (see the module docstring). ``base``: the data and configuration every setting shares (its
    ``modalities`` and ``overrides`` are set per setting)."""
    records, skipped = [], []
    for label, partial in settings(base.dataset, counts, subsets):
        spec = replace(base, modalities=partial.modalities, overrides=partial.overrides)
        experiment = Experiment.build(spec, fusions)
        n = len(experiment.data.modality_names)
        fitting = []
        for fusion in fusions:
            reason = experiment.modality_cap(fusion)
            if reason is None:
                fitting.append(fusion)
            else:
                skipped.append({"setting": label, "n_modalities": n, "fusion": str(fusion), "reason": reason})
        if not fitting:
            continue
        frame = run_experiment(experiment, fitting, seeds, out / label, quiet=quiet, report=False, check=False)
        trained = set(frame.loc[frame["status"].eq("done"), "fusion"])
        cells = [experiment.cell(fusion) for fusion in fitting]
        # a fusion that failed on every seed (perhaps a configuration that does not build) is not counted
        flops = {cell.label: experiment.forward_flops(cell) for cell in cells if cell.label in trained}
        records.append(frame.assign(setting=label, flops=frame["fusion"].map(flops)))
        write_table(out / "accuracy.csv", pd.concat(records, ignore_index=True))
    columns = ["setting", "n_modalities", "fusion", "reason"]
    write_table(out / "skipped.csv", pd.DataFrame(skipped, columns=columns))
    if not records:
        raise ValueError("no fusion could be trained at any modality count")
    gathered = pd.concat(records, ignore_index=True)
    done = gathered[gathered["status"].eq("done")]
    if not done.empty:
        _figures(done, out)
    raise_failed(gathered, out / "accuracy.csv")
    return gathered


def _figures(records: pd.DataFrame, out: Path) -> None:
    from analysis.plots import metric_vs_flops, metric_vs_modalities

    main = get_task(task_of_columns(records.columns)).main_metric
    metric_vs_modalities(records, [main], out / "figures" / "accuracy_vs_n")
    metric_vs_flops(records, main, out / "figures" / "accuracy_vs_flops")


def main(argv: list[str] | None = None) -> int:
    """The ``--train`` mode of ``python -m benchmarks.scaling``."""
    parser = ArgumentParser(prog="python -m benchmarks.scaling --train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", action="store_true", required=True)
    parser.add_argument("--dataset", default="mfeat", choices=["mfeat", "synthetic"])
    parser.add_argument("--fusions", default="grf,pairwise,late,concat", help="fusion specs (name:key=value)")
    parser.add_argument("--modalities", default=None, help="modality counts (mfeat: 2..6; synthetic: any >= 2)")
    parser.add_argument("--subsets", type=int, default=2, help="mfeat: random subsets per count beside the nested")
    add_seed_arguments(parser)
    add_training_arguments(parser)
    add_output_arguments(parser, "results/scaling-train/<dataset>")
    args = parser.parse_args(argv)
    counts = parse_ints(args.modalities or DEFAULT_COUNTS[args.dataset], "--modalities", minimum=2)
    base = ExperimentSpec(**experiment_fields(args))
    records = run_accuracy_scaling(
        parse_fusions(args.fusions), base, counts, seeds_of(args),
        Path(args.out or Path("results") / "scaling-train" / args.dataset), max(args.subsets, 0), args.quiet,
    )
    if not args.quiet:
        main_column = get_task(task_of_columns(records.columns)).main_metric
        table = records.groupby(["fusion", "n_modalities"])[main_column].agg(["mean", "std", "count"])
        print(table.to_string())
    return 0
