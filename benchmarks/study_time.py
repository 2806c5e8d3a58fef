"""How long the paper-protocol MOSI study takes, from measured epochs: ``python -m benchmarks.study_time``.

For each fusion, the ``paper`` preset's cell on MOSI (as ``benchmarks.speed`` resolves it) is trained for
``--epochs`` epochs (default 2) on data of MOSI's shapes and sizes (the synthetic generator's default: 1284 / 229 /
686 segments, 50 steps, features 300 / 5 / 20; the time of an epoch depends on the shapes, not the values), and
``epoch_s`` is the wall-clock of its last epoch (training and validation; the first carries one-off costs such as
allocation and kernel selection). The study (every fusion x ``--seeds`` seeds, default 5) is then estimated as
``sum over fusions of epoch_s x epochs x seeds`` for two epoch counts: the protocol's ``max_epochs`` (100: the bound,
as if no cell stopped early) and ``--typical-epochs`` (default 40: early stopping with patience 20 ends a cell 20
epochs after its best one; pass what your runs' ``epochs`` column shows). One worker trains the cells one after
another; with ``K`` workers on devices that each hold ``c`` cells at full speed the time divides by up to ``K``:
``benchmarks.run --workers`` measures that.

Writes ``study_time.csv`` (one row per fusion) and ``study_time.md`` (the table and the estimates) to ``--out``
(default ``results/speed/study-time``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import pandas as pd
import torch

from records.cli import ArgumentParser
from records.io import atomic_write_text, check_writable
from records.schema import write_document, write_table

from .cli import UsageError, add_device_argument, add_output_arguments, parse_fusions, resolve_device, run_cli
from .data.synthetic import make_synthetic
from .speed import PRESET, paper_cell
from .store import run_metadata
from .train import train_cell

DEFAULT_OUT = "results/speed/study-time"


def epoch_seconds(spec, data, epochs: int, device: torch.device, amp: bool = False) -> dict:
    """Train ``spec``'s paper cell for ``epochs`` epochs on ``data`` (early stopping off); returns ``fusion``,
    ``params``, ``epoch_s`` (the last epoch's wall-clock, seconds), ``first_epoch_s`` and ``max_epochs`` (the
    protocol's). Raises ``ValueError`` for ``epochs < 2`` (the first epoch is not representative)."""
    if epochs < 2:
        raise ValueError(f"epochs must be >= 2 (the first epoch carries one-off costs), got {epochs}")
    cell = paper_cell(spec)
    protocol = dataclasses.replace(cell.protocol, max_epochs=epochs, patience=epochs)
    result = train_cell(dataclasses.replace(cell, protocol=protocol), data, seed=0, device=device, amp=amp)
    seconds = [row["seconds"] for row in result.curves]
    return {"fusion": cell.label, "params": result.params, "epoch_s": seconds[-1] - seconds[-2],
            "first_epoch_s": seconds[0], "max_epochs": cell.protocol.max_epochs}


def estimate(rows: pd.DataFrame, seeds: int, typical_epochs: int) -> dict:
    """The study's estimated wall-clock in hours on one worker: at ``max_epochs`` per cell (``bound_h``) and at
    ``typical_epochs`` (``typical_h``), each ``sum(epoch_s x epochs) x seeds``."""
    return {"bound_h": float((rows["epoch_s"] * rows["max_epochs"]).sum() * seeds / 3600),
            "typical_h": float(rows["epoch_s"].sum() * typical_epochs * seeds / 3600)}


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m benchmarks.study_time", description=__doc__.split("\n\n")[0])
    parser.add_argument("--fusions", default="all", help="comma-separated fusion specs, or 'all' (default)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs trained per fusion (>= 2; the last is timed)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds of the estimated study (default 5)")
    parser.add_argument("--typical-epochs", type=int, default=40, help="epochs a cell typically trains")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA only), as benchmarks.run --amp")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    add_device_argument(parser, "auto")
    add_output_arguments(parser, DEFAULT_OUT)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.epochs < 2 or args.seeds < 1 or args.typical_epochs < 1:
        raise UsageError(f"--epochs must be >= 2, --seeds and --typical-epochs >= 1; got --epochs {args.epochs}, "
                         f"--seeds {args.seeds}, --typical-epochs {args.typical_epochs}")
    device = resolve_device(args.device)
    if args.amp and device.type != "cuda":
        raise UsageError(f"--amp is bf16 autocast on CUDA; the device is {device}")
    specs = parse_fusions(args.fusions)
    for spec in specs:
        paper_cell(spec)  # ConfigError for a bad override, before any work
    out = Path(args.out or DEFAULT_OUT)
    check_writable(out)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = make_synthetic()
    rows = pd.DataFrame([epoch_seconds(spec, data, args.epochs, device, args.amp) for spec in specs])
    rows = rows.assign(device=str(device), threads=torch.get_num_threads(), amp=args.amp)
    hours = estimate(rows, args.seeds, args.typical_epochs)
    table = "\n".join(["| fusion | params | epoch (s) | first epoch (s) |", "| --- | ---: | ---: | ---: |"]
                      + [f"| {r.fusion} | {r.params:,} | {r.epoch_s:.1f} | {r.first_epoch_s:.1f} |"
                         for r in rows.itertuples()])
    text = (f"# The paper-protocol MOSI study, estimated\n\ndevice {device}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads{', bf16 autocast' if args.amp else ''}; MOSI shapes and sizes, "
            f"{PRESET} preset, the last of {args.epochs} epochs timed\n\n{table}\n\n"
            f"{len(rows)} fusions x {args.seeds} seeds on one worker: {hours['bound_h']:.2f} h at "
            f"{int(rows['max_epochs'].max())} epochs per cell (the bound), {hours['typical_h']:.2f} h at "
            f"{args.typical_epochs} epochs per cell\n")
    write_table(out / "study_time.csv", rows)
    atomic_write_text(out / "study_time.md", text)
    write_document(out / "meta.json", run_metadata(device, preset=PRESET, epochs=args.epochs, seeds=args.seeds,
                                                   typical_epochs=args.typical_epochs, estimate_hours=hours))
    if not args.quiet:
        print(f"{text}\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
