"""Per-step speed at the papers' settings on MOSI shapes: ``python -m benchmarks.speed``.

Batch 32, 50 steps, MOSI's feature sizes (300, 5, 20) (text, audio, vision), MOSI's task (``sentiment``: one
output, L1 loss), all steps real. Each fusion gets the ``paper`` preset's hyperparameters on MOSI
(``benchmarks/configs/paper.toml``, resolved as ``benchmarks.run --preset paper --dataset mosi`` resolves them):

* ``grf`` at the GRF paper's MOSI settings (d_model 64, 4 heads, 4 layers, dim_feedforward 256, dropout 0.2,
  auxiliary head with weight 0.4, the authors' initialisation and modality order);
* ``pairwise`` at MulT's sizes (d_model 30, 5 heads, 5 layers, ``memory="concat"``), ``mult`` at MulT's code's
  defaults; the other fusions at the preset's sizes.

A fusion spec overrides the preset: ``pairwise:memory=project`` is pairwise with its memory projected to d_model.
A training step is ``benchmarks.cost.Harness.train_step`` (the one measured training step of the suite):
``zero_grad``, the predictor's forward pass in train mode, the task's loss (L1 plus ``aux_weight`` times the
auxiliary head's L1 loss: ``benchmarks.train.prediction_loss``), backward and an Adam step (lr 1e-3, no gradient
clipping). An eval forward is the predictor in eval mode under ``torch.no_grad``. Times are medians (and IQRs)
over ``--repeats`` after ``--warmup`` untimed steps (``benchmarks.cost.time_calls``).

Utilisation (``benchmarks.cost.utilisation``): each step's FLOPs are counted once (``FlopCounterMode``: matrix
products and attention, forward and backward), its achieved rate is those FLOPs over the median step time, and its
utilisation that rate over the dense matmul rate of the same device, measured in the same run at the same thread
count and dtype (``--dtype bfloat16``: the steps under bf16 autocast and a bf16 matmul; CUDA only). The reference
times are
**quoted from issue 5** (the authors' GRF code and the original MulT code, measured by the issue's author on the
2-core CPU machine), not measured here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch

from fusions import build_predictor
from records.cli import ArgumentParser
from records.io import atomic_write_text, check_writable
from records.schema import write_document, write_table
from tasks import get_task

from .cli import UsageError, add_device_argument, add_output_arguments, parse_fusions, resolve_device, run_cli
from .config import CellConfig, Variant, load_preset, resolve
from .cost import Harness, count_params, make_inputs
from .cost.utilisation import matmul_rate, step_flops
from .data.synthetic import MOSI_DIMS, MOSI_NAMES
from .store import run_metadata
from .train import prediction_loss, resolve_hparams

PRESET = "paper"
DATASET = "mosi"
TASK = "sentiment"  # MOSI's task, as the mosi dataset (and the MOSI-shaped synthetic data) declares it
BATCH_SIZE, SEQ_LEN = 32, 50
DEFAULT_OUT = "results/speed"

# fusion -> (reference label, quoted train ms, quoted eval ms): quoted from issue 5.
REFERENCES: dict[str, tuple[str, float, float]] = {
    "grf": ("authors' GRF code (quoted)", 626.0, 107.0),
    "pairwise": ("original MulT code (quoted)", 1144.0, 204.0),
    "mult": ("original MulT code (quoted)", 1144.0, 204.0),
}
TARGET_SPEEDUP = 1.5
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def paper_cell(spec: str | Variant) -> CellConfig:
    """The ``paper`` preset's cell of ``spec`` (a registered name, or a ``Variant`` whose overrides win) on MOSI:
    its ``fusion``, ``label`` and ``hparams``. Raises ``ConfigError`` (a ``ValueError``) for an override the
    fusion does not take."""
    return resolve(load_preset(PRESET), spec, {"name": DATASET})


def paper_hparams(spec: str | Variant) -> dict:
    """The hyperparameters of ``paper_cell(spec)``, ready for ``build_predictor`` (a modality order given by
    names becomes indices of ``MOSI_NAMES``)."""
    return resolve_hparams(paper_cell(spec).hparams, list(MOSI_NAMES))


def measure_speed(
    spec: str | Variant, hparams: dict | None = None, batch_size: int = BATCH_SIZE, seq_len: int = SEQ_LEN,
    repeats: int = 10, warmup: int = 3, device: str | torch.device = "cpu", seed: int = 0, bf16: bool = False,
    compile: bool = False,
) -> dict:
    """Median / IQR milliseconds of a training step and an eval forward of ``spec``'s MOSI predictor on
    MOSI-shaped inputs (see the module docstring), built with ``hparams`` (default: ``paper_hparams(spec)``).
    Returns ``fusion`` (the spec's label), ``params``, ``train_ms``, ``train_iqr_ms``, ``eval_ms``,
    ``eval_iqr_ms``, and the counted FLOPs of one step (``train_flops``, ``eval_flops``) with the achieved rates
    (``train_gflops``, ``eval_gflops``: GFLOP/s at the median time). ``bf16``: the steps under bf16 autocast.
    ``compile``: the steps run the predictor through ``compiled`` (its FLOPs are still counted on the uncompiled
    one, which ``FlopCounterMode`` sees operator by operator); compilation happens in the warm-up steps, so
    ``warmup`` must be at least 1. Raises ``UsageError`` for a device that does not parse or is absent, or for
    ``compile`` with ``warmup < 1``."""
    if compile and warmup < 1:
        raise UsageError(f"--compile needs --warmup >= 1 (compilation happens in the warm-up steps), got {warmup}")
    cell = paper_cell(spec)
    device = resolve_device(str(device))
    hparams = resolve_hparams(cell.hparams, list(MOSI_NAMES)) if hparams is None else hparams
    torch.manual_seed(seed)
    predictor = build_predictor(cell.fusion, list(MOSI_DIMS), task=get_task(TASK).kind, **hparams).to(device)
    harness = speed_harness(predictor, batch_size, seq_len, device, seed, bf16)
    train_flops, eval_flops = step_flops(harness.train_step), step_flops(harness.forward)
    if compile:
        harness.model = compiled(predictor)
    trained = harness.time(harness.train_step, warmup, repeats)
    evaluated = harness.time(harness.forward, warmup, repeats)
    return {
        "fusion": cell.label, "params": count_params(predictor), "compiled": compile,
        "train_ms": 1000 * trained.median, "train_iqr_ms": 1000 * trained.iqr,
        "eval_ms": 1000 * evaluated.median, "eval_iqr_ms": 1000 * evaluated.iqr,
        "train_flops": train_flops, "eval_flops": eval_flops,
        "train_gflops": train_flops / trained.median / 1e9, "eval_gflops": eval_flops / evaluated.median / 1e9,
    }


def compiled(predictor: torch.nn.Module) -> torch.nn.Module:
    """``torch.compile(predictor)`` (inductor) with eager random numbers (``fallback_random``): dropout draws the
    same masks from the seeded generator as the eager predictor does, so a compiled training step computes the
    eager one's function (equal up to float rounding, as fused kernels reorder arithmetic). The parameters are
    the predictor's own, so an optimiser built on either trains both."""
    return torch.compile(predictor, options={"fallback_random": True})


def speed_harness(predictor, batch_size: int, seq_len: int, device: torch.device, seed: int = 0,
                  bf16: bool = False) -> Harness:
    """The timed steps of ``predictor`` (built for ``MOSI_DIMS``, on ``device``): MOSI-shaped inputs of
    ``seq_len`` real steps, a random target in [-3, 3] (``[batch_size]``), the task's loss and Adam at lr 1e-3;
    under bf16 autocast when ``bf16``."""
    dims = list(MOSI_DIMS)
    xs, masks = make_inputs(dims, [seq_len] * len(dims), batch_size, device, seed)
    target = torch.empty(batch_size, device=device).uniform_(-3, 3)
    return Harness(predictor, xs, masks, device, lr=1e-3, bf16=bf16,
                   loss=lambda prediction: prediction_loss(predictor, prediction, target, TASK))


def report(results: list[dict], fusions: list[str]) -> str:
    """A Markdown table of our times and utilisation (``train_util`` / ``eval_util``: fractions of the measured
    matmul rate) against the quoted reference times of each row's registered fusion (``fusions``, one per row),
    with the speed-up ratios (``--`` for a fusion without a quoted reference)."""
    lines = [
        "| fusion | params | train step ms (IQR) | eval forward ms (IQR) | train / eval GFLOP/s | utilisation train "
        "/ eval | reference (quoted from issue 5) | ref train / eval ms | speed-up train / eval |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for r, fusion in zip(results, fusions, strict=True):
        ours = (f"| {r['fusion']} | {r['params']:,} | {r['train_ms']:.0f} ({r['train_iqr_ms']:.0f}) "
                f"| {r['eval_ms']:.0f} ({r['eval_iqr_ms']:.0f}) | {r['train_gflops']:.1f} / {r['eval_gflops']:.1f} "
                f"| {r['train_util']:.0%} / {r['eval_util']:.0%} ")
        if fusion not in REFERENCES:
            lines.append(ours + "| none quoted | -- | -- |")
            continue
        label, ref_train, ref_eval = REFERENCES[fusion]
        train_ratio, eval_ratio = ref_train / r["train_ms"], ref_eval / r["eval_ms"]
        lines.append(ours + f"| {label} | {ref_train:.0f} / {ref_eval:.0f} | {train_ratio:.2f}x / {eval_ratio:.2f}x |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--fusions", default="grf,pairwise",
                        help="comma-separated fusion specs (name:key=value overrides the paper preset); quoted "
                             f"reference times for: {', '.join(REFERENCES)}")
    parser.add_argument("--repeats", type=int, default=10, help="timed steps per latency (>= 1)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (>= 0)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--dtype", choices=DTYPES, default="float32",
                        help="float32, or bfloat16: the steps under bf16 autocast against a bf16 matmul (CUDA only)")
    parser.add_argument("--compile", action="store_true",
                        help="time each predictor through torch.compile (inductor; compiled in the warm-up steps, "
                             "FLOPs counted on the eager one); off by default: see README, Speed")
    add_device_argument(parser, "cpu")
    add_output_arguments(parser, DEFAULT_OUT)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    specs = parse_fusions(args.fusions)
    least_warmup = 1 if args.compile else 0  # compilation happens in the warm-up steps
    if args.repeats < 1 or args.warmup < least_warmup:
        raise UsageError(f"--repeats must be >= 1 and --warmup >= {least_warmup}"
                         f"{' with --compile' if args.compile else ''}, got --repeats {args.repeats} --warmup "
                         f"{args.warmup}")
    device = resolve_device(args.device)
    if args.dtype == "bfloat16" and device.type != "cuda":
        raise UsageError(f"--dtype bfloat16 is measured on CUDA only (bf16 autocast), got --device {device}; "
                         "use --dtype float32 on CPU")
    cells = [paper_cell(spec) for spec in specs]  # ConfigError for a bad override, before any work
    settings = {cell.label: resolve_hparams(cell.hparams, list(MOSI_NAMES)) for cell in cells}
    out = Path(args.out or DEFAULT_OUT)
    check_writable(out)
    if args.threads:
        torch.set_num_threads(args.threads)
    bf16 = args.dtype == "bfloat16"
    peak = matmul_rate(device, DTYPES[args.dtype])
    results = [measure_speed(spec, settings[cell.label], repeats=args.repeats, warmup=args.warmup, device=device,
                             bf16=bf16, compile=args.compile)
               for spec, cell in zip(specs, cells, strict=True)]
    for result in results:
        result.update(dtype=args.dtype, matmul_gflops=peak / 1e9, train_util=result["train_gflops"] * 1e9 / peak,
                      eval_util=result["eval_gflops"] * 1e9 / peak)
    table = report(results, [cell.fusion for cell in cells])
    heading = (f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, {args.dtype}"
               f"{', torch.compile' if args.compile else ', eager'}, batch "
               f"{BATCH_SIZE}, {SEQ_LEN} steps, dims {'/'.join(map(str, MOSI_DIMS))}, {PRESET} preset; dense matmul "
               f"rate measured now: {peak / 1e9:.1f} GFLOP/s; target: {TARGET_SPEEDUP}x faster than the reference")
    write_table(out / "speed.csv", pd.DataFrame(results).assign(threads=torch.get_num_threads()))
    atomic_write_text(out / "speed.md", f"{heading}\n\n{table}\n")
    write_document(out / "meta.json", run_metadata(
        device, preset=PRESET, dataset=DATASET, task=TASK, hparams=settings, batch_size=BATCH_SIZE, seq_len=SEQ_LEN,
        repeats=args.repeats, warmup=args.warmup, threads=torch.get_num_threads(), compiled=args.compile))
    if not args.quiet:
        print(f"{heading}\n\n{table}\n\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
