"""Where a step's time goes: ``python -m benchmarks.profile --fusions grf,mult``.

Each fusion's training step and eval forward at the papers' settings on MOSI shapes (the steps ``benchmarks.speed``
times: ``speed.speed_harness``), run ``--steps`` times under ``torch.profiler`` after ``--warmup`` untimed steps.
Every operator's self time (time in the operator itself, not in the operators it calls; CPU time, and on CUDA the
device time of its kernels) is averaged per step and grouped into kinds (``KINDS``: matrix products, attention,
normalisation, dropout, element-wise, copies and layout, optimiser, other) so that the largest items say what to
fix. Writes ``profile.csv`` (one row per fusion x step x operator) and ``profile.md`` (per fusion and step: the
kinds' shares and the top operators) to ``--out`` (default ``results/speed/profile``).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd
import torch
from torch.profiler import ProfilerActivity, profile

from fusions import build_predictor
from records.cli import ArgumentParser
from records.io import atomic_write_text, check_writable
from records.schema import write_document, write_table
from tasks import get_task

from .cli import UsageError, add_device_argument, add_output_arguments, parse_fusions, resolve_device, run_cli
from .data.synthetic import MOSI_DIMS, MOSI_NAMES
from .speed import BATCH_SIZE, PRESET, SEQ_LEN, TASK, paper_cell, speed_harness
from .store import run_metadata
from .train import resolve_hparams

DEFAULT_OUT = "results/speed/profile"
TOP = 12

# Operator kinds, first match wins (aten operator names, lower case).
KINDS: tuple[tuple[str, str], ...] = (
    ("optimiser", r"adam|_foreach|optimizer"),
    ("attention", r"attention|softmax|sdpa|_scaled_dot"),
    ("matmul", r"^aten::(mm|bmm|addmm|matmul|linear|baddbmm|addbmm|_addmm_activation|einsum)$"),
    ("normalisation", r"layer_norm|batch_norm|native_layer_norm"),
    ("dropout", r"dropout|bernoulli|rand|uniform"),
    ("copies and layout", r"copy|contiguous|cat|stack|clone|transpose|permute|view|reshape|expand|index|gather|"
                          r"select|slice|split|chunk|narrow|unsqueeze|squeeze|t$|empty|zeros|ones|fill|to$|_to_copy"),
    ("element-wise", r"add|mul|sub|div|relu|gelu|tanh|sigmoid|exp|where|masked|sum|mean|abs|neg|pow|sqrt|clamp|"
                     r"l1_loss|threshold|max|min|ge|gt|lt|le|eq|ne|bitwise|logical"),
)


def kind_of(name: str) -> str:
    """The kind (``KINDS``) of an operator ``name`` such as ``"aten::addmm"``; ``"other"`` when none matches."""
    lowered = name.lower()
    return next((kind for kind, pattern in KINDS if re.search(pattern, lowered)), "other")


def profile_steps(spec, steps: int = 5, warmup: int = 2, device: torch.device | None = None) -> pd.DataFrame:
    """Per operator of ``spec``'s training step and eval forward: ``step`` (``train`` / ``eval``), ``op``, ``kind``,
    ``calls`` per step, ``self_cpu_ms`` and ``self_device_ms`` per step, ``share`` of the step's self time (CPU
    time on CPU, device time on CUDA). Raises ``ValueError`` for ``steps < 1`` or ``warmup < 0``."""
    if steps < 1 or warmup < 0:
        raise ValueError(f"steps must be >= 1 and warmup >= 0, got steps={steps}, warmup={warmup}")
    device = device or torch.device("cpu")
    cell = paper_cell(spec)
    torch.manual_seed(0)
    predictor = build_predictor(cell.fusion, list(MOSI_DIMS), task=get_task(TASK).kind,
                                **resolve_hparams(cell.hparams, list(MOSI_NAMES))).to(device)
    harness = speed_harness(predictor, BATCH_SIZE, SEQ_LEN, device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    frames = []
    for step, fn in (("train", harness.train_step), ("eval", harness.forward)):
        for _ in range(warmup):
            fn()
        with profile(activities=activities) as prof:
            for _ in range(steps):
                fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
        rows = [{
            "op": event.key, "calls": event.count / steps,
            "self_cpu_ms": event.self_cpu_time_total / 1000 / steps,
            "self_device_ms": getattr(event, "self_device_time_total", 0.0) / 1000 / steps,
        } for event in prof.key_averages()]
        frame = pd.DataFrame(rows)
        time_column = "self_device_ms" if device.type == "cuda" else "self_cpu_ms"
        frame = frame[frame[time_column] > 0].sort_values(time_column, ascending=False)
        frames.append(frame.assign(fusion=cell.label, step=step, kind=frame["op"].map(kind_of),
                                   share=frame[time_column] / frame[time_column].sum()))
    columns = ["fusion", "step", "op", "kind", "calls", "self_cpu_ms", "self_device_ms", "share"]
    return pd.concat(frames, ignore_index=True)[columns]


def report(frame: pd.DataFrame, top: int = TOP) -> str:
    """Markdown: per fusion and step, the kinds' shares of the self time, then the ``top`` operators."""
    parts = []
    for (fusion, step), group in frame.groupby(["fusion", "step"], sort=False):
        time_column = "self_device_ms" if group["self_device_ms"].sum() > 0 else "self_cpu_ms"
        total = group[time_column].sum()
        kinds = group.groupby("kind")[time_column].sum().sort_values(ascending=False)
        parts += [f"### {fusion}, {step} step: {total:.1f} ms of operator self time per step", "",
                  "| kind | ms / step | share |", "| --- | ---: | ---: |"]
        parts += [f"| {kind} | {ms:.2f} | {ms / total:.0%} |" for kind, ms in kinds.items()]
        parts += ["", "| operator | kind | calls / step | ms / step | share |", "| --- | --- | ---: | ---: | ---: |"]
        parts += [f"| `{r.op}` | {r.kind} | {r.calls:.0f} | {getattr(r, time_column):.2f} | {r.share:.1%} |"
                  for r in group.head(top).itertuples()]
        parts.append("")
    return "\n".join(parts)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m benchmarks.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--fusions", default="grf,mult", help="comma-separated fusion specs, or 'all'")
    parser.add_argument("--steps", type=int, default=5, help="profiled steps per fusion and kind (>= 1)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (>= 0)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    add_device_argument(parser, "cpu")
    add_output_arguments(parser, DEFAULT_OUT)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        raise UsageError(f"--steps must be >= 1 and --warmup >= 0, got --steps {args.steps} --warmup {args.warmup}")
    specs = parse_fusions(args.fusions)
    device = resolve_device(args.device)
    for spec in specs:
        paper_cell(spec)  # ConfigError for a bad override, before any work
    out = Path(args.out or DEFAULT_OUT)
    check_writable(out)
    if args.threads:
        torch.set_num_threads(args.threads)
    frame = pd.concat([profile_steps(spec, args.steps, args.warmup, device) for spec in specs], ignore_index=True)
    heading = (f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH_SIZE}, "
               f"{SEQ_LEN} steps, {PRESET} preset, {args.steps} profiled steps after {args.warmup} warm-up steps")
    text = f"# Where the time goes\n\n{heading}\n\n{report(frame)}"
    write_table(out / "profile.csv", frame)
    atomic_write_text(out / "profile.md", text)
    write_document(out / "meta.json", run_metadata(device, preset=PRESET, steps=args.steps, warmup=args.warmup,
                                                   threads=torch.get_num_threads()))
    if not args.quiet:
        print(f"{text}\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
