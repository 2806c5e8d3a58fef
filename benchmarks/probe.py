"""Measure a run's robustness and embeddings from its stored checkpoints, as records the report reads.

``python -m benchmarks.probe RUN_FOLDER [--device D] [--cell-seeds 1|all] [--quiet]`` rebuilds the
best-validation model of the first ``--cell-seeds`` trained seeds of each fusion (nothing is retrained) and writes
``RUN_FOLDER/probes/`` (robustness curves, silhouettes, 2-D projections, the cells measured; see
:mod:`benchmarks.probes`). Rerunning rewrites the same files. Bad input, or a run with nothing to measure (no
trained cell, a missing checkpoint, weights that no longer fit the code), ends in one ``error:`` line, exit status 2.
"""

from __future__ import annotations

import argparse
import sys
import time

from records.cli import (
    ArgumentParser,
    parse_cell_seeds,
    run_cli,
)

from .cli import add_device_argument
from .probes import measure_probes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="python -m benchmarks.probe", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("run_folder", help="a benchmarks.run output folder (holds runs.csv and cells/)")
    add_device_argument(parser)
    parser.add_argument("--cell-seeds", default="1", help="seeds per fusion (the first ones): a count, or 'all'")
    parser.add_argument("--quiet", action="store_true", help="print nothing")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    probes = measure_probes(args.run_folder, device=args.device, cell_seeds=parse_cell_seeds(args.cell_seeds))
    if probes.reason is not None:
        raise ValueError(f"nothing measured: {probes.reason}")
    if not args.quiet:
        print(f"probes: {probes.folder} ({len(probes.cells)} cells: {', '.join(probes.cells)}) in "
              f"{time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
