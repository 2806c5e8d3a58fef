"""Check our models against their authors' code: ``python -m benchmarks.reference --grf-repo DIR [...]``.

For each checkout given (a flag, or its environment variable, e.g. ``FUSIONBENCH_GRF_REPO``): the reference
model is imported from the checkout and built by its own code, its weights are copied into ours, and the largest
absolute difference of the two models' eval-mode outputs is measured on the reference code's own input layout
and on right-padded inputs (goal: below 1e-5). Then a training step of each (the reference code's objective,
optimiser and clipping) is timed interleaved in this one run: ``--repeats`` pairs after ``--warmup`` untimed
pairs, the order alternating within each pair, medians and IQRs; the ratio is ours / reference (below 1:
ours is faster).

Writes ``reference.csv`` (one row per model), ``reference.md`` (the printed table) and ``meta.json`` to
``--out`` (default ``results/reference``). Exit status 1 when a difference reaches the goal, after writing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch

from records.cli import ArgumentParser
from records.io import atomic_write_json, atomic_write_text, check_writable
from records.schema import write_table

from ..cli import UsageError, add_device_argument, resolve_device, run_cli
from ..cost import count_params, summarize, time_calls
from ..store import run_metadata
from . import GOAL, LAYOUTS, REFERENCES, ReferenceCheck


def checkout_commit(repo: Path) -> str:
    """The checkout's git commit, or ``""`` when it is not a git work tree (a plain copy)."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def max_differences(check: ReferenceCheck, reference, ours, seed: int, device: torch.device) -> dict[str, float]:
    """Largest absolute eval-output difference per layout of ``LAYOUTS``."""
    reference.eval()
    ours.eval()
    differences = {}
    with torch.no_grad():
        for layout in LAYOUTS:
            batch = check.batch(layout, seed, device)
            gap = check.reference_output(reference, batch) - check.our_output(ours, batch)
            differences[layout] = float(gap.abs().max())
    return differences


def time_interleaved(reference_step, our_step, repeats: int, warmup: int, device: torch.device):
    """Seconds of ``repeats`` calls of each step, alternating which goes first, after ``warmup`` untimed pairs:
    ``(reference, ours)`` as ``torch.utils.benchmark.Measurement``s (seconds)."""
    times: dict[str, list[float]] = {"reference": [], "ours": []}
    steps = {"reference": reference_step, "ours": our_step}
    for i in range(warmup + repeats):
        for which in (("reference", "ours") if i % 2 == 0 else ("ours", "reference")):
            seconds = time_calls(steps[which], 1, device).times
            if i >= warmup:
                times[which] += seconds
    return summarize(times["reference"], "reference"), summarize(times["ours"], "ours")


def check_model(
    check: ReferenceCheck, seed: int, repeats: int, warmup: int, device: torch.device
) -> dict:
    """One row of ``reference.csv`` for ``check``: differences per layout, parameters, training-step times."""
    reference, ours = check.build(seed, device)
    differences = max_differences(check, reference, ours, seed, device)
    reference.train()
    ours.train()
    reference_step, our_step = check.training_steps(reference, ours, check.batch("own", seed, device))
    reference_time, our_time = time_interleaved(reference_step, our_step, repeats, warmup, device)
    return {
        "model": check.name, "reference": check.url, "checkout": str(check.repo),
        "commit": checkout_commit(check.repo), "own_layout": check.own_layout,
        **{f"max_abs_diff_{layout}": differences[layout] for layout in LAYOUTS}, "goal": GOAL,
        "agrees": all(value < GOAL for value in differences.values()),
        "params_ours": count_params(ours),
        "params_reference": count_params(reference),
        "train_ms_ours": 1000 * our_time.median, "train_iqr_ms_ours": 1000 * our_time.iqr,
        "train_ms_reference": 1000 * reference_time.median, "train_iqr_ms_reference": 1000 * reference_time.iqr,
        "ratio": our_time.median / reference_time.median,
    }


def table(rows: list[dict]) -> str:
    """The Markdown table of ``reference.md``."""
    lines = [
        "| model | reference code (commit) | own layout | max abs diff, own | max abs diff, padded "
        "| params ours / reference | train step ms ours (IQR) | reference (IQR) | ours / reference |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['reference']} ({r['commit'][:7] or 'no git'}) | {r['own_layout']} "
            f"| {r['max_abs_diff_own']:.1e} | {r['max_abs_diff_padded']:.1e} "
            f"| {r['params_ours']:,} / {r['params_reference']:,} | {r['train_ms_ours']:.0f} "
            f"({r['train_iqr_ms_ours']:.0f}) | {r['train_ms_reference']:.0f} ({r['train_iqr_ms_reference']:.0f}) "
            f"| {r['ratio']:.2f}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m benchmarks.reference", description=__doc__.split("\n\n")[0])
    for name, check in REFERENCES.items():
        parser.add_argument(check.flag, dest=f"{name}_repo", default=os.environ.get(check.env), metavar="DIR",
                            help=f"checkout of {check.url} (default: ${check.env})")
    parser.add_argument("--out", type=Path, default=Path("results/reference"),
                        help="folder for reference.csv, reference.md and meta.json")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=20, help="timed training steps per model")
    parser.add_argument("--warmup", type=int, default=3, help="untimed training steps per model first")
    parser.add_argument("--seed", type=int, default=0)
    add_device_argument(parser, "cpu")
    args = parser.parse_args(argv)
    chosen = {name: getattr(args, f"{name}_repo") for name in REFERENCES if getattr(args, f"{name}_repo")}
    if not chosen:
        flags = ", ".join(f"{check.flag} DIR (or ${check.env})" for check in REFERENCES.values())
        raise UsageError(f"no checkout given; give at least one of: {flags}")
    if args.repeats < 1 or args.warmup < 0 or (args.threads is not None and args.threads < 1):
        raise UsageError("--repeats and --threads must be >= 1 and --warmup >= 0")
    device = resolve_device(args.device)
    checks = [REFERENCES[name](repo) for name, repo in chosen.items()]  # every checkout checked before any work
    check_writable(args.out)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [check_model(check, args.seed, args.repeats, args.warmup, device) for check in checks]
    heading = (f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, {args.repeats} "
               f"timed training steps per model; goal: max abs diff below {GOAL:.0e}")
    text = f"{heading}\n\n{table(rows)}\n"
    write_table(args.out / "reference.csv", pd.DataFrame(rows).assign(threads=torch.get_num_threads()))
    atomic_write_text(args.out / "reference.md", text)
    atomic_write_json(args.out / "meta.json", run_metadata(
        device, threads=torch.get_num_threads(), repeats=args.repeats, warmup=args.warmup, seed=args.seed,
        checkouts={row["model"]: {"path": row["checkout"], "commit": row["commit"]} for row in rows}))
    print(f"{text}\nwritten to {args.out}")
    failed = [row for row in rows if not row["agrees"]]
    for row in failed:
        worst = max(LAYOUTS, key=lambda layout: row[f"max_abs_diff_{layout}"])
        print(f"error: {row['model']}: eval outputs differ by up to {row[f'max_abs_diff_{worst}']:.2e} on "
              f"{worst} inputs; goal: below {GOAL:.0e}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
