"""Cost against the number of modalities: ``python -m benchmarks.scaling``.

For each fusion x number of modalities ``n`` x sequence length x ``d_model`` it counts parameters and FLOPs
(on ``meta``, for every cell) and measures latency, throughput and peak memory (where the cell fits the time
and memory budget), then fits ``cost ~ n^k`` and writes ``scaling.csv``, ``exponents.csv``, ``scaling.tex``,
``exponents.tex``, the log-log figure (``scaling.png``/``.pdf``) and a ``README.md`` describing the columns.

Inputs are synthetic: ``n`` modalities of ``seq_len`` steps, all real; feature sizes cycle through
``--feature-dims`` (default 32 each, the synthetic generator's default for ``n != 3``). Every fusion gets the
same ``d_model``, ``num_heads``, ``num_layers``, ``dim_feedforward = 4 d_model`` and ``dropout`` (those it
accepts; pairwise's memory stacks keep their own ``max(num_layers, 3)`` rule). A fusion spec may carry
extra hyperparameters: ``pairwise:memory=concat`` is pairwise with MulT's concatenated memory width.

Accuracy against ``n`` (``--train``) trains every fusion at every modality count: ``benchmarks.accuracy_scaling``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from fusions import fusion_class, fusion_hparams

from . import cost
from .cli import UsageError, parse_fusions, parse_ints, resolve_device, run_cli
from .config import Variant

DEFAULT_FUSIONS = "grf,pairwise,late,concat"
DEFAULT_MODALITIES = "2,3,4,8,16,32,64"

# The CSV's columns, in order, with their meaning (written to the README next to every CSV).
COLUMNS: dict[str, str] = {
    "fusion": "fusion spec: a registered name, optionally with ':key=value' hyperparameter overrides",
    "n_modalities": "number of modalities n",
    "seq_len": "steps per modality (all real)",
    "d_model": "model width",
    "batch_size": "samples per batch (latency, throughput and memory are per batch)",
    "device": "cpu or cuda",
    "status": "ok (measured) | over_budget (estimated or first iteration over --budget-seconds / "
              "--budget-memory-mib: only counted) | oom (out of memory) | over_cap (more modalities than the "
              "fusion builds for, e.g. TFN's size cap: nothing counted) | error (see note)",
    "params": "parameters of the fusion (no task head; late fusion owns its heads)",
    "flops": "forward FLOPs per sample: matrix products only, one multiply-add = 2 FLOPs",
    "train_flops": "forward + backward FLOPs per sample of a training step (same convention; optimiser not "
                   "counted)",
    "fwd_ms": "forward latency per batch, eval mode, no_grad: median over --repeats (ms)",
    "fwd_iqr_ms": "interquartile range of the forward latency (ms)",
    "train_ms": "training-step latency per batch (zero_grad, forward, mean-square loss, backward, Adam step): "
                "median (ms)",
    "train_iqr_ms": "interquartile range of the training-step latency (ms)",
    "fwd_samples_per_s": "forward throughput: batch_size / fwd_ms (samples/s)",
    "train_samples_per_s": "training throughput: batch_size / train_ms (samples/s)",
    "fwd_peak_mib": "peak tensor memory of one forward pass, including parameters and inputs (MiB)",
    "train_peak_mib": "peak tensor memory of one training step, including parameters, gradients, Adam state "
                      "and inputs (MiB)",
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
    "repeats": "timed iterations per latency",
    "warmup": "untimed iterations before timing",
    "note": "why a cell is not ok",
}


def as_variant(spec: str | Variant) -> Variant:
    """A fusion spec as a ``Variant`` (a plain registered name is its own label)."""
    return spec if isinstance(spec, Variant) else Variant(spec, spec)


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
    """Count and measure every cell of ``config``; returns the long-form records (``COLUMNS``).

    Cells run in increasing ``n`` per fusion and setting, so the time predicted for a cell comes from the rate
    measured on the previous one. No cell can end the sweep: failures are recorded in ``status``/``note``.
    """
    device = resolve_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    memory_budget = (
        config.budget_memory_mib * cost.MIB if config.budget_memory_mib else default_memory_budget_bytes(device)
    )
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
                    rows.append(row)
                    if row["status"] == "ok":
                        seconds = (row["fwd_ms"] + row["train_ms"]) / 1000
                        rate = 2 * (row["flops"] + row["train_flops"]) * config.batch_size / seconds
                    log(describe(row, time.perf_counter() - started))
    return pd.DataFrame(rows).reindex(columns=list(COLUMNS))


def describe(row: dict, seconds: float) -> str:
    """One progress line for a finished cell."""
    head = f"{row['fusion']:>22} n={row['n_modalities']:<3} L={row['seq_len']} d={row['d_model']}"
    counts = f"params {row.get('params', math.nan):>12,.0f}  MFLOPs {row.get('flops', math.nan) / 1e6:>10,.1f}"
    if row["status"] == "ok":
        return (f"{head}  {counts}  fwd {row['fwd_ms']:8.1f} ms  train {row['train_ms']:8.1f} ms  "
                f"peak {row['train_peak_mib']:8.1f} MiB  ({seconds:.0f} s)")
    return f"{head}  {counts}  {row['status']}: {row.get('note', '')}"


def write_outputs(
    records: pd.DataFrame, out: Path, command: str = "", wall_seconds: float | None = None,
    figures: bool = True, min_n: int = 4,
) -> dict[str, object]:
    """Write the CSVs, LaTeX tables, figures and README into ``out`` (exponents fitted on ``n >= min_n``);
    returns the exponent table, the latency findings and the figure paths."""
    from analysis import scaling as analysis

    out.mkdir(parents=True, exist_ok=True)
    records.to_csv(out / "scaling.csv", index=False)
    exponents = analysis.fit_exponents(records, min_n=min_n)
    exponents.to_csv(out / "exponents.csv", index=False)
    (out / "scaling.tex").write_text(analysis.cost_table_tex(records))
    (out / "exponents.tex").write_text(analysis.exponent_table_tex(exponents, min_n=min_n))
    figure_paths = analysis.plot_scaling(records, exponents, out / "scaling", min_n=min_n) if figures else []
    findings = analysis.latency_findings(exponents)
    readme = readme_text(records, exponents, findings, command, wall_seconds, figure_paths, min_n)
    (out / "README.md").write_text(readme)
    return {"exponents": exponents, "findings": findings, "figures": figure_paths}


def readme_text(records, exponents, findings, command, wall_seconds, figure_paths, min_n: int = 4) -> str:
    """The README written next to the results: what was run, the conventions, the exponents, the columns."""
    from analysis import scaling as analysis

    devices = sorted(set(records["device"]))
    device_names = [torch.cuda.get_device_name() if d == "cuda" and torch.cuda.is_available() else d
                    for d in devices]
    counts = records["status"].value_counts().to_dict()
    lines = [
        "# Cost against the number of modalities", "",
        f"Command: `{command}`" if command else "", "",
        f"Device: {', '.join(device_names)}; torch {torch.__version__}; threads {sorted(set(records['threads']))}; "
        f"cells: {', '.join(f'{k} {v}' for k, v in counts.items())}"
        + (f"; wall-clock {wall_seconds / 60:.1f} min." if wall_seconds else "."), "",
        "**FLOPs** count matrix products only (one multiply-add = 2 FLOPs), per sample, by "
        "`FlopCounterMode` on the meta device (train mode, math attention backend); softmax, normalisation, "
        "activations, dropout, bias adds and the optimiser are not counted. **Latency** is the median (and IQR) "
        "wall-clock time per batch after warm-up. **Peak memory** counts tensor storage (CUDA: "
        "`max_memory_allocated`; CPU: PyTorch's allocator events via `torch.profiler`), including parameters, "
        "gradients, Adam state and inputs. Details: the docstring of `benchmarks/cost/__init__.py`.", "",
        f"## Fitted exponents (cost ~ n^k, least squares on log-log points with n >= {min_n}, 95% interval)", "",
        analysis.exponent_summary(exponents).to_markdown(index=False) if len(exponents) else "(no fits)", "",
    ]
    if findings:
        lines += ["## Latency against FLOPs", "", *[f"- {line}" for line in findings], ""]
    if figure_paths:
        lines += ["## Figure", "", *[f"![scaling]({p.name})" for p in figure_paths if p.suffix == ".png"], ""]
    lines += ["## Columns of scaling.csv", "", "| column | meaning |", "| --- | --- |",
              *[f"| `{name}` | {meaning} |" for name, meaning in COLUMNS.items()], ""]
    return "\n".join(line for line in lines if line is not None) + "\n"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, status 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m benchmarks.scaling", description=__doc__.split("\n\n")[0],
                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--fusions", default=DEFAULT_FUSIONS,
                        help="comma-separated fusion specs; name:key=value adds hyperparameters")
    parser.add_argument("--modalities", default=DEFAULT_MODALITIES, help="modality counts n (>= 2)")
    lengths = parser.add_mutually_exclusive_group()
    lengths.add_argument("--seq-len", type=int, default=None, help="steps per modality (default 50)")
    lengths.add_argument("--seq-lens", default=None, help="several sequence lengths (comma-separated)")
    widths = parser.add_mutually_exclusive_group()
    widths.add_argument("--d-model", type=int, default=None, help="model width (default 64)")
    widths.add_argument("--d-models", default=None, help="several model widths (comma-separated)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=5, help="timed iterations per latency")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations first (>= 1)")
    parser.add_argument("--num-layers", type=int, default=4, help="layers per stack, every fusion")
    parser.add_argument("--num-heads", type=int, default=4, help="attention heads (must divide d_model)")
    parser.add_argument("--dropout", type=float, default=0.1, help="dropout, every fusion")
    parser.add_argument("--feature-dims", default="32", help="input feature sizes, cycled over the modalities")
    parser.add_argument("--budget-seconds", type=float, default=120.0,
                        help="per-cell wall-clock budget for measuring (0: none); FLOPs/params are always counted")
    parser.add_argument("--budget-memory-mib", type=float, default=None,
                        help="per-cell estimated peak-memory budget (default: half the available RAM on CPU, 90%% "
                             "of the GPU's memory on CUDA)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=Path("results/scaling"), help="output folder")
    parser.add_argument("--min-n", type=int, default=4, help="fit the exponents on the cells with n >= this")
    parser.add_argument("--no-figures", action="store_true", help="skip the PNG/PDF figures")
    parser.add_argument("--train", action="store_true",
                        help="accuracy against n: train every fusion at every modality count (see "
                             "benchmarks/accuracy_scaling.py; --train --help lists its options)")
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
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: CUDA is not available on this machine")
    return ScalingConfig(
        fusions=[as_variant(spec) for spec in parse_fusions(args.fusions)],
        modalities=parse_ints(args.modalities, "--modalities", minimum=2),
        seq_lens=seq_lens, d_models=d_models, batch_size=args.batch_size, device=args.device,
        repeats=args.repeats, warmup=args.warmup, num_layers=args.num_layers, num_heads=args.num_heads,
        dropout=args.dropout, feature_dims=parse_ints(args.feature_dims, "--feature-dims"),
        budget_seconds=args.budget_seconds or None, budget_memory_mib=args.budget_memory_mib,
        threads=args.threads,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--train" in argv:  # accuracy against n: a separate command sharing this entry point
        from .accuracy_scaling import main as train_main  # noqa: PLC0415

        return train_main(argv)
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    command = "python -m benchmarks.scaling " + " ".join(argv)
    started = time.perf_counter()
    records = run_sweep(config)
    wall = time.perf_counter() - started
    outputs = write_outputs(records, args.out, command.strip(), wall, not args.no_figures, args.min_n)
    from analysis.scaling import exponent_summary

    print(f"\nFitted exponents k (cost ~ n^k, n >= {args.min_n}, 95% interval):\n"
          f"{exponent_summary(outputs['exponents']).to_string(index=False)}")
    for line in outputs["findings"]:
        print(line)
    print(f"\nwrote {args.out}/scaling.csv, exponents.csv, scaling.tex, exponents.tex, README.md"
          + (", scaling.png/.pdf" if outputs["figures"] else "") + f" in {wall / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
