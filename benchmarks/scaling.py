"""Cost against the number of modalities: ``python -m benchmarks.scaling``.

For each fusion x number of modalities ``n`` x sequence length x ``d_model`` it takes every registered cost
measure (``benchmarks.cost.measures``: parameters and FLOPs counted on ``meta`` for every cell; latency,
throughput and peak memory measured where the cell fits the time and memory budget), then fits ``cost ~ n^k``
(``analysis.cost_curves``) and writes ``scaling.csv`` (a column per measure), ``scaling_meta.json`` (the command,
versions, settings and the ``measures``: name, unit, label, direction, documentation, method, fitted or not),
``exponents.csv``, ``scaling.tex``, ``exponents.tex``, the log-log figure (``scaling.png``/``.pdf``) and a
``README.md`` describing how each measure is taken and every column.

Inputs are synthetic: ``n`` modalities of ``seq_len`` steps, all real; feature sizes cycle through
``--feature-dims`` (default 32 each, the synthetic generator's default for ``n != 3``). Every fusion gets the
same ``d_model``, ``num_heads``, ``num_layers``, ``dim_feedforward = 4 d_model`` and ``dropout`` (those it
accepts; pairwise's memory stacks keep their own ``max(num_layers, 3)`` rule). A fusion spec may carry
extra hyperparameters: ``pairwise:memory=concat`` is pairwise with MulT's concatenated memory width.

Accuracy against ``n`` (``--train``, an ordinary flag of this command: ``--train --help`` lists its options) trains
every fusion at every modality count of any dataset (``--dataset``, ``--data-path``), scored by its task's metrics:
``benchmarks.accuracy_scaling``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from analysis import cost_curves
from fusions import fusion_class, fusion_hparams
from records.cli import ArgumentParser
from records.io import atomic_write_text, check_writable
from records.schema import write_document, write_table

from . import cost
from .accuracy_scaling import main as train_main
from .cli import (
    UsageError,
    add_device_argument,
    add_output_arguments,
    parse_fusions,
    parse_ints,
    resolve_device,
    run_cli,
)
from .config import Variant
from .cost.utilisation import matmul_rate
from .store import run_metadata

DEFAULT_FUSIONS = "grf,pairwise,late,concat"
DEFAULT_MODALITIES = "2,3,4,8,16,32,64"
DEFAULT_OUT = "results/scaling"

# The CSV's columns around the measures (registered in benchmarks.cost.measures), in order, with their meaning
# (written to the README next to every CSV): the cell's setting and status, then one column per measure, then these.
SETTING_COLUMNS: dict[str, str] = {
    "fusion": "fusion spec: a registered name, optionally with ':key=value' hyperparameter overrides",
    "n_modalities": "number of modalities n",
    "seq_len": "steps per modality (all real)",
    "d_model": "model width",
    "batch_size": "samples per batch (latency, throughput and memory are per batch)",
    "device": "cpu or cuda",
    "status": "ok (measured) | over_budget (estimated or first iteration over --budget-seconds / "
              "--budget-memory-mib: only counted) | oom (out of memory) | over_cap (more modalities than the "
              "fusion builds for, e.g. TFN's size cap: nothing counted) | error (see note)",
}
CELL_COLUMNS: dict[str, str] = {
    "est_train_mib": "estimate of train_peak_mib before running (16 bytes per parameter + saved activations + "
                     "inputs), used for the memory budget",
    "est_seconds": "time the cell was predicted to take from its FLOPs and the rate of the previous cell (s)",
    "counted_on": "where FLOPs were counted: meta (shapes only) or cpu",
    "num_layers": "layers per transformer stack (the same for every fusion)",
    "num_heads": "attention heads",
    "dim_feedforward": "feed-forward width (4 d_model)",
    "dropout": "dropout probability (the same for every fusion)",
    "feature_dims": "input feature size of each modality, cycled over the n modalities",
    "hparams": "all hyperparameters passed to build_fusion (JSON)",
    "threads": "torch CPU threads",
    "train_gflops": "achieved rate of the training step: train_flops x batch_size / train_ms (GFLOP/s; ok cells)",
    "matmul_gflops": "dense float32 torch.mm rate of the device, measured once per sweep at the same threads "
                     "(GFLOP/s; benchmarks.cost.utilisation)",
    "train_util": "train_gflops / matmul_gflops: the training step's fraction of the dense matmul rate",
    "repeats": "timed iterations per latency",
    "warmup": "untimed iterations before timing",
    "note": "why a cell is not ok",
    "schema_version": "the version of this file's format (records.schema; stamped when written)",
}


def columns() -> dict[str, str]:
    """The columns of ``scaling.csv``, in order, with their meaning: the setting, one per registered measure
    (``benchmarks.cost.list_measures``), the cell's bookkeeping. Raises ``ValueError`` when a measure is named
    like another column."""
    measures = {m.name: m.doc for m in cost.list_measures()}
    clash = sorted(set(measures) & (set(SETTING_COLUMNS) | set(CELL_COLUMNS)))
    if clash:
        raise ValueError(f"cost measure {clash[0]!r} is named like a column of scaling.csv; rename the measure")
    return {**SETTING_COLUMNS, **measures, **CELL_COLUMNS}


def fusion_settings(spec: Variant, d_model: int, num_heads: int, num_layers: int, dropout: float) -> dict:
    """The hyperparameters one fusion gets at ``d_model``: the shared ones it accepts, then its overrides."""
    shared = dict(d_model=d_model, num_heads=num_heads, num_layers=num_layers, dim_feedforward=4 * d_model,
                  dropout=dropout)
    accepted = fusion_hparams(spec.fusion)
    return {**{k: v for k, v in shared.items() if k in accepted}, **spec.overrides}


def default_memory_budget_bytes(device: torch.device) -> float:
    """CUDA: 90% of the device's memory; CPU: half of the memory available now (``/proc/meminfo``)."""
    if device.type == "cuda":
        return 0.9 * torch.cuda.get_device_properties(device).total_memory
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return 0.5 * int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 2**30


# Optimistic FLOP rates for the first cell of a sweep (no measurement yet): a prediction over budget at this
# rate is certainly over budget. Later cells use the rate measured on the previous cell (doubled, for slack).
OPTIMISTIC_RATE = {"cpu": 2e11, "cuda": 2e14}


@dataclass
class ScalingConfig:
    """Everything a sweep needs; see ``build_parser`` for the meaning of each field."""

    fusions: list[Variant]
    modalities: list[int]
    seq_lens: list[int]
    d_models: list[int]
    batch_size: int = 32
    device: str = "auto"
    repeats: int = 5
    warmup: int = 2
    num_layers: int = 4
    num_heads: int = 4
    dropout: float = 0.1
    feature_dims: list[int] = field(default_factory=lambda: [32])
    budget_seconds: float | None = 120.0
    budget_memory_mib: float | None = None
    threads: int | None = None
    seed: int = 0


def run_sweep(config: ScalingConfig, log: Callable[[str], None] = print) -> pd.DataFrame:
    """Count and measure every cell of ``config``; returns the long-form records (``columns()``).

    Cells run in increasing ``n`` per fusion and setting, so the time predicted for a cell comes from the rate
    measured on the previous one. No cell can end the sweep: failures are recorded in ``status``/``note``.
    """
    device = resolve_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    memory_budget = (
        config.budget_memory_mib * cost.MIB if config.budget_memory_mib else default_memory_budget_bytes(device)
    )
    peak = matmul_rate(device)
    rows = []
    for spec in config.fusions:
        for d_model in config.d_models:
            hparams = fusion_settings(spec, d_model, config.num_heads, config.num_layers, config.dropout)
            for seq_len in config.seq_lens:
                rate = OPTIMISTIC_RATE[device.type]
                for n in sorted(config.modalities):
                    dims = [config.feature_dims[i % len(config.feature_dims)] for i in range(n)]
                    budget = cost.Budget(config.budget_seconds, memory_budget, rate)
                    started = time.perf_counter()
                    cap = fusion_class(spec.fusion).max_modalities(**hparams)
                    if cap is not None and n > cap:
                        result = {"status": "over_cap",
                                  "note": f"{spec.fusion} builds for at most {cap} modalities at these settings"}
                    else:
                        try:
                            result = cost.measure_cell(
                                spec.fusion, dims, [seq_len] * n, config.batch_size, hparams, device,
                                config.repeats, config.warmup, budget, config.seed,
                            )
                        except Exception as error:  # counting failed: record it and go on
                            result = {"status": "error", "note": f"{type(error).__name__}: {error}"[:200]}
                    row = {
                        "fusion": spec.label, "n_modalities": n, "seq_len": seq_len, "d_model": d_model,
                        "batch_size": config.batch_size, "device": device.type, **result,
                        "num_layers": hparams.get("num_layers", math.nan),
                        "num_heads": hparams.get("num_heads", math.nan),
                        "dim_feedforward": hparams.get("dim_feedforward", math.nan),
                        "dropout": hparams.get("dropout", math.nan),
                        "feature_dims": "/".join(map(str, config.feature_dims)),
                        "hparams": json.dumps(hparams, sort_keys=True), "threads": torch.get_num_threads(),
                        "repeats": config.repeats, "warmup": config.warmup,
                    }
                    if row["status"] == "ok":
                        seconds = (row["fwd_ms"] + row["train_ms"]) / 1000
                        rate = 2 * (row["flops"] + row["train_flops"]) * config.batch_size / seconds
                        achieved = row["train_flops"] * config.batch_size / (row["train_ms"] / 1000)
                        row.update(train_gflops=achieved / 1e9, matmul_gflops=peak / 1e9, train_util=achieved / peak)
                    rows.append(row)
                    log(describe(row, time.perf_counter() - started))
    return pd.DataFrame(rows).reindex(columns=list(columns()))


def describe(row: dict, seconds: float) -> str:
    """One progress line for a finished cell."""
    head = f"{row['fusion']:>22} n={row['n_modalities']:<3} L={row['seq_len']} d={row['d_model']}"
    counts = f"params {row.get('params', math.nan):>12,.0f}  MFLOPs {row.get('flops', math.nan) / 1e6:>10,.1f}"
    if row["status"] == "ok":
        return (f"{head}  {counts}  fwd {row['fwd_ms']:8.1f} ms  train {row['train_ms']:8.1f} ms  "
                f"peak {row['train_peak_mib']:8.1f} MiB  ({seconds:.0f} s)")
    return f"{head}  {counts}  {row['status']}: {row.get('note', '')}"


def sweep_metadata(
    records: pd.DataFrame, command: list[str] | None = None, config: ScalingConfig | None = None,
) -> dict:
    """The content of ``scaling_meta.json``: ``benchmarks.store.run_metadata`` (command, versions, git, device,
    host, time), the sweep's ``config`` when given, and the registered ``measures`` (``Measure.record``: what
    ``analysis.cost_curves`` reads) with each method's conventions (``methods``)."""
    device = resolve_device(config.device) if config else torch.device(sorted(set(records["device"]))[0])
    extra = {} if command is None else {"command": command}
    if config is not None:
        extra["sweep"] = {**dataclasses.asdict(config), "fusions": [spec.label for spec in config.fusions]}
    return run_metadata(device, **extra, measures=[m.record() for m in cost.list_measures()],
                        methods={method.name: method.doc for method in cost.measures.methods()})


def write_outputs(
    records: pd.DataFrame, out: Path, command: str = "", wall_seconds: float | None = None,
    figures: bool = True, min_n: int = 4, config: ScalingConfig | None = None,
) -> dict[str, object]:
    """Write ``scaling.csv``, ``scaling_meta.json`` (``sweep_metadata``), the exponents, LaTeX tables, figures and
    README into ``out`` (exponents fitted on ``n >= min_n``, for the measures as ``scaling_meta.json`` records
    them: what the report reads); returns the exponent table, the latency findings and the figure paths."""
    out = Path(out)
    write_table(out / "scaling.csv", records)
    write_document(out / cost_curves.META, sweep_metadata(records, command.split() or None, config), "meta.json")
    measures = cost_curves.read_measures(out)
    exponents = cost_curves.fit_exponents(records, measures, min_n=min_n)
    write_table(out / "exponents.csv", exponents)
    atomic_write_text(out / "scaling.tex", cost_curves.cost_table_tex(records, measures))
    atomic_write_text(out / "exponents.tex", cost_curves.exponent_table_tex(exponents, measures, min_n=min_n))
    figure_paths = cost_curves.plot_scaling(records, exponents, out / "scaling", measures, min_n) if figures else []
    findings = cost_curves.latency_findings(exponents, measures)
    summary = cost_curves.exponent_summary(exponents, measures) if len(exponents) else None
    readme = readme_text(records, summary, findings, command, wall_seconds, figure_paths, min_n)
    atomic_write_text(out / "README.md", readme)
    return {"exponents": exponents, "summary": summary, "findings": findings, "figures": figure_paths}


def readme_text(records, summary, findings, command, wall_seconds, figure_paths, min_n: int = 4) -> str:
    """The README written next to the results: what was run, how each measure is taken (``cost.conventions``),
    the exponents (``summary``: ``analysis.cost_curves.exponent_summary``, None without fits), the columns."""
    devices = sorted(set(records["device"]))
    device_names = [torch.cuda.get_device_name() if d == "cuda" and torch.cuda.is_available() else d
                    for d in devices]
    counts = records["status"].value_counts().to_dict()
    measures = {m.name: m for m in cost.list_measures()}
    rows = [f"| `{name}` | {measures[name].unit if name in measures else ''} | "
            f"{measures[name].direction if name in measures else ''} | {meaning} |"
            for name, meaning in columns().items()]
    lines = [
        "# Cost against the number of modalities", "",
        f"Command: `{command}`" if command else "", "",
        f"Device: {', '.join(device_names)}; torch {torch.__version__}; threads {sorted(set(records['threads']))}; "
        f"cells: {', '.join(f'{k} {v}' for k, v in counts.items())}"
        + (f"; wall-clock {wall_seconds / 60:.1f} min." if wall_seconds else "."), "",
        "## How each measure is taken", "", cost.conventions(), "",
        f"## Fitted exponents (cost ~ n^k, least squares on log-log points with n >= {min_n}, 95% interval)", "",
        summary.to_markdown(index=False) if summary is not None else "(no fits)", "",
    ]
    if findings:
        lines += ["## Latency against FLOPs", "", *[f"- {line}" for line in findings], ""]
    if figure_paths:
        lines += ["## Figure", "", *[f"![scaling]({p.name})" for p in figure_paths if p.suffix == ".png"], ""]
    lines += [f"## Columns of scaling.csv (the measures also in {cost_curves.META})", "",
              "| column | unit | better | meaning |", "| --- | --- | --- | --- |", *rows, ""]
    return "\n".join(lines) + "\n"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, status 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m benchmarks.scaling", description=__doc__.split("\n\n")[0])
    parser.add_argument("--fusions", default=DEFAULT_FUSIONS,
                        help="comma-separated fusion specs; name:key=value adds hyperparameters (default %(default)s)")
    parser.add_argument("--modalities", default=DEFAULT_MODALITIES,
                        help="modality counts n (>= 2; default %(default)s)")
    lengths = parser.add_mutually_exclusive_group()
    lengths.add_argument("--seq-len", type=int, default=None, help="steps per modality (default 50)")
    lengths.add_argument("--seq-lens", default=None, help="several sequence lengths (comma-separated)")
    widths = parser.add_mutually_exclusive_group()
    widths.add_argument("--d-model", type=int, default=None, help="model width (default 64)")
    widths.add_argument("--d-models", default=None, help="several model widths (comma-separated)")
    parser.add_argument("--batch-size", type=int, default=32, help="samples per batch (default %(default)s)")
    add_device_argument(parser)
    parser.add_argument("--repeats", type=int, default=5, help="timed iterations per latency (default %(default)s)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations first (>= 1; default %(default)s)")
    parser.add_argument("--num-layers", type=int, default=4,
                        help="layers per stack, every fusion (default %(default)s)")
    parser.add_argument("--num-heads", type=int, default=4,
                        help="attention heads (must divide d_model; default %(default)s)")
    parser.add_argument("--dropout", type=float, default=0.1, help="dropout, every fusion (default %(default)s)")
    parser.add_argument("--feature-dims", default="32",
                        help="input feature sizes, cycled over the modalities (default %(default)s)")
    parser.add_argument("--budget-seconds", type=float, default=120.0,
                        help="per-cell wall-clock budget for measuring (0: none; default %(default)s); FLOPs and "
                             "parameters are always counted")
    parser.add_argument("--budget-memory-mib", type=float, default=None,
                        help="per-cell estimated peak-memory budget (default: half the available RAM on CPU, 90%% "
                             "of the GPU's memory on CUDA)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    add_output_arguments(parser, DEFAULT_OUT)
    parser.add_argument("--min-n", type=int, default=4,
                        help="fit the exponents on the cells with n >= this (default %(default)s)")
    parser.add_argument("--no-figures", action="store_true", help="skip the PNG/PDF figures")
    parser.add_argument("--train", action="store_true",
                        help="accuracy against n: train every fusion at every modality count of a dataset "
                             "(--dataset, --data-path; see benchmarks/accuracy_scaling.py; --train --help lists "
                             "its options)")
    return parser


def _default(value, default):
    return default if value is None else value


def config_from_args(args: argparse.Namespace) -> ScalingConfig:
    """Validate the parsed flags; raises ``UsageError`` with one clear sentence."""
    seq_lens = parse_ints(args.seq_lens, "--seq-lens") if args.seq_lens else [_default(args.seq_len, 50)]
    d_models = parse_ints(args.d_models, "--d-models") if args.d_models else [_default(args.d_model, 64)]
    for name, value, minimum in (("--seq-len", min(seq_lens), 1), ("--d-model", min(d_models), 1),
                                 ("--batch-size", args.batch_size, 1), ("--repeats", args.repeats, 1),
                                 ("--warmup", args.warmup, 1), ("--num-layers", args.num_layers, 1),
                                 ("--num-heads", args.num_heads, 1)):
        if value < minimum:
            raise UsageError(f"{name} must be at least {minimum}, got {value}")
    bad = [d for d in d_models if d % args.num_heads]
    if bad:
        raise UsageError(f"--num-heads {args.num_heads} does not divide d_model {bad[0]}")
    if not 0 <= args.dropout < 1:
        raise UsageError(f"--dropout must be in [0, 1), got {args.dropout}")
    resolve_device(args.device)  # UsageError for a device that does not parse or is absent
    return ScalingConfig(
        fusions=[Variant.of(spec) for spec in parse_fusions(args.fusions)],
        modalities=parse_ints(args.modalities, "--modalities", minimum=2),
        seq_lens=seq_lens, d_models=d_models, batch_size=args.batch_size, device=args.device,
        repeats=args.repeats, warmup=args.warmup, num_layers=args.num_layers, num_heads=args.num_heads,
        dropout=args.dropout, feature_dims=parse_ints(args.feature_dims, "--feature-dims"),
        budget_seconds=args.budget_seconds or None, budget_memory_mib=args.budget_memory_mib,
        threads=args.threads,
    )


def wants_training(argv: list[str]) -> bool:
    """Whether ``argv`` holds ``--train``: read by argparse (``parse_known_args`` of that flag alone), so that the
    accuracy sweep's own flags, and its ``--help``, pass through to it."""
    first = ArgumentParser(add_help=False)
    first.add_argument("--train", action="store_true")
    return first.parse_known_args(argv)[0].train


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if wants_training(argv):  # accuracy against n: a separate command sharing this entry point
        return train_main(argv)
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    out = Path(args.out or DEFAULT_OUT)
    check_writable(out)
    command = " ".join(["python -m benchmarks.scaling", *argv])
    started = time.perf_counter()
    records = run_sweep(config, log=(lambda line: None) if args.quiet else print)
    wall = time.perf_counter() - started
    outputs = write_outputs(records, out, command, wall, not args.no_figures, args.min_n, config)
    if args.quiet:
        return 0
    if outputs["summary"] is not None:
        print(f"\nFitted exponents k (cost ~ n^k, n >= {args.min_n}, 95% interval):\n"
              f"{outputs['summary'].to_string(index=False)}")
    for line in outputs["findings"]:
        print(line)
    print(f"\nwrote {out}/scaling.csv, {cost_curves.META}, exponents.csv, scaling.tex, exponents.tex, README.md"
          + (", scaling.png/.pdf" if outputs["figures"] else "") + f" in {wall / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
