"""Accuracy against the number of modalities: ``python -m benchmarks.scaling --train ...``.

Each fusion is trained with the runner (same preset and protocol for every fusion, paired seeds) at every
modality count of any registered dataset (``--dataset``, read from ``--data-path`` as ``benchmarks.run`` reads it):

* a dataset read from files or shipped (``mfeat``, ``mosi``, ``sims``, ``arrays``, ...): its modalities in the
  dataset's order (mfeat: fou, fac, kar, pix, zer, mor); for each ``n`` in ``--modalities`` (default 2 up to the
  dataset's number of modalities; a count outside that range is refused, naming the modalities) the nested prefix
  of ``n`` modalities plus ``--subsets`` other subsets of ``n`` drawn with a fixed seed (all of them when fewer
  exist). The data is loaded once and every setting selects from it;
* ``synthetic``: for each ``n`` in ``--modalities`` (default 2, 4, 8, 16) the generator with ``n`` modalities,
  whose evidence and interactions are spread over all of them (``make_synthetic``).

Every setting is a run folder ``<out>/<setting>/`` (records, cells, tables). The settings' records are
gathered in ``<out>/accuracy.csv`` (one row per fusion x setting x seed, the runner's columns, so the metrics of
the dataset's task, plus ``setting`` and ``flops``: the fusion's forward FLOPs per sample at the data's padded
lengths, counted on ``meta``), ``<out>/skipped.csv`` lists fusions refused at a modality count (e.g. TFN over its
size cap), and the figures ``<out>/figures/accuracy_vs_n`` and ``accuracy_vs_flops`` (the Pareto front over every
fusion and setting) of the task's main metric are written as PNG and PDF. A failed cell (see ``benchmarks.run``)
stays in ``accuracy.csv`` with ``status`` "failed", is left out of the figures, and the sweep ends with
``CellsFailed`` once all is written.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pandas as pd

from records.cli import ArgumentParser
from records.schema import write_table
from tasks import get_task

from .cli import (
    UsageError,
    add_data_arguments,
    add_output_arguments,
    add_seed_arguments,
    add_training_arguments,
    experiment_fields,
    parse_fusions,
    parse_ints,
    seeds_of,
)
from .config import Variant, merge
from .experiment import Experiment, ExperimentSpec
from .run import run_experiment
from .run_folder import raise_failed

SYNTHETIC_COUNTS = [2, 4, 8, 16]
"""The generator's default modality counts (any count >= 2 can be generated)."""


def nth_combination(items: list[str], n: int, rank: int) -> list[str]:
    """The ``n``-subset of ``items`` at position ``rank`` (from 0) of ``itertools.combinations(items, n)``, found
    without listing the ones before it (there are ``C(len(items), n)``: too many to list for tens of modalities).
    Raises ``IndexError`` for a rank outside ``0..C(len(items), n) - 1``."""
    if not 0 <= rank < math.comb(len(items), n):
        raise IndexError(f"rank {rank} outside the {math.comb(len(items), n)} subsets of {n} of {len(items)} items")
    chosen, start = [], 0
    for left in range(n, 0, -1):
        for i in range(start, len(items)):
            taking = math.comb(len(items) - i - 1, left - 1)  # the subsets whose next item is items[i]
            if rank < taking:
                chosen.append(items[i])
                start = i + 1
                break
            rank -= taking
    return chosen


def modality_subsets(
    dataset: str, names: list[str], counts: list[int], subsets: int, seed: int = 0,
) -> list[list[str]]:
    """The modality selections of the sweep on a dataset whose modalities are ``names`` (in its order): per count
    ``n``, the nested prefix ``names[:n]`` and ``subsets`` other ``n``-subsets drawn with ``random.Random(seed +
    n)`` (all of them when fewer exist), each in the dataset's order. Raises ``ValueError`` (one line naming the
    dataset's modalities) for a count outside ``2..len(names)``."""
    for n in counts:
        if not 2 <= n <= len(names):
            raise ValueError(f"dataset {dataset!r} has {len(names)} modalities ({', '.join(names)}): --modalities "
                             f"must lie in 2..{len(names)}, got {n}")
    found = []
    for n in counts:
        others = math.comb(len(names), n) - 1  # the nested prefix is the first subset: ranks 1.. are the others
        ranks = random.Random(seed + n).sample(range(1, others + 1), min(subsets, others))
        found += [names[:n]] + [nth_combination(names, n, rank) for rank in ranks]
    return found


def settings(
    base: ExperimentSpec, fusions: list[str | Variant], counts: list[int] | None, subsets: int, seed: int = 0,
) -> Iterator[tuple[str, Experiment]]:
    """``(label, Experiment)`` per modality setting of ``base.dataset``, built as they are asked for: ``synthetic``
    generated with each ``n`` of ``counts`` (default ``SYNTHETIC_COUNTS``), labelled ``n<n>``; any other dataset
    loaded once and each ``modality_subsets`` selection of it (``counts`` default: 2 up to its number of
    modalities; ``base.modalities``, when given, is the pool they are drawn from), labelled ``n<n>-<names>``.
    Raises ``ValueError`` for a count the dataset does not have (before the first setting), and what
    ``Experiment.build`` raises."""
    if base.dataset == "synthetic":
        for n in counts or SYNTHETIC_COUNTS:
            overrides = merge(base.overrides or {}, {"datasets": {"synthetic": {"n_modalities": n}}})
            yield f"n{n}", Experiment.build(replace(base, overrides=overrides), fusions)
        return
    full = Experiment.build(base, fusions)
    names = list(full.data.modality_names)
    for views in modality_subsets(base.dataset, names, counts or list(range(2, len(names) + 1)), subsets, seed):
        yield f"n{len(views)}-{'-'.join(views)}", Experiment.build(replace(base, modalities=views), fusions, full.data)


def run_accuracy_scaling(
    fusions: list[str | Variant], base: ExperimentSpec, counts: list[int] | None, seeds: list[int], out: Path,
    subsets: int = 2, quiet: bool = False,
) -> pd.DataFrame:
    """Train every fusion at every modality setting of ``base.dataset`` (``settings``: any registered dataset;
    ``counts`` None: its default counts); returns the gathered records, with the metrics of the dataset's task
    (see the module docstring). ``base``: the data and configuration every setting shares. Raises ``ValueError``
    for a count the dataset does not have, or when no fusion could be trained at any count; ``CellsFailed`` when a
    cell failed (after writing everything)."""
    records, skipped, task = [], [], None
    for label, experiment in settings(base, fusions, counts, subsets):
        task = experiment.data.task
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
        _figures(done, out, task)
    raise_failed(gathered, out / "accuracy.csv")
    return gathered


def _figures(records: pd.DataFrame, out: Path, task: str) -> None:
    """The main metric of ``task`` against the number of modalities and against FLOPs (``<out>/figures``)."""
    from analysis.plots import metric_vs_flops, metric_vs_modalities

    main = get_task(task).main_metric
    metric_vs_modalities(records, [main], out / "figures" / "accuracy_vs_n")
    metric_vs_flops(records, main, out / "figures" / "accuracy_vs_flops")


def main(argv: list[str] | None = None) -> int:
    """The ``--train`` mode of ``python -m benchmarks.scaling``."""
    parser = ArgumentParser(prog="python -m benchmarks.scaling --train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", action="store_true", required=True)
    add_data_arguments(parser, dataset_default="mfeat", modalities=False)
    parser.add_argument("--fusions", default="grf,pairwise,late,concat", help="fusion specs (name:key=value)")
    parser.add_argument("--modalities", dest="counts", default=None,
                        help="modality counts, comma-separated (default: 2 up to the dataset's number of "
                             f"modalities; synthetic: any >= 2, default {','.join(map(str, SYNTHETIC_COUNTS))})")
    parser.add_argument("--subsets", type=int, default=2,
                        help="random subsets of the modalities per count beside the nested one (every dataset but "
                             "synthetic)")
    add_seed_arguments(parser)
    add_training_arguments(parser)
    add_output_arguments(parser, "results/scaling-train/<dataset>")
    args = parser.parse_args(argv)
    counts = parse_ints(args.counts, "--modalities", minimum=2) if args.counts else None
    if args.subsets < 0:
        raise UsageError(f"--subsets must be at least 0, got {args.subsets}")
    base = ExperimentSpec(**experiment_fields(args))
    records = run_accuracy_scaling(
        parse_fusions(args.fusions), base, counts, seeds_of(args),
        Path(args.out or Path("results") / "scaling-train" / args.dataset), args.subsets, args.quiet,
    )
    if not args.quiet:
        main_column = get_task(records["task"].iloc[0]).main_metric
        table = records.groupby(["fusion", "n_modalities"])[main_column].agg(["mean", "std", "count"])
        print(table.to_string(na_rep="n/a"))  # one seed: no std
    return 0
