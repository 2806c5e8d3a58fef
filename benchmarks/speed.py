"""Per-step speed at the papers' settings on MOSI shapes: ``python -m benchmarks.speed``.

Batch 32, 50 steps, feature sizes (300, 5, 20) (text, audio, vision), regression head, all steps real:

* ``grf`` at the GRF paper's MOSI settings (d_model 64, 4 heads, 4 layers, dim_feedforward 256, dropout 0.2,
  auxiliary head with weight 0.4);
* ``pairwise`` and ``mult`` at MulT's MOSI defaults (d_model 30, 5 heads, 5 layers; their own dropouts).

A training step is ``zero_grad``, the predictor's forward pass in train mode, the L1 loss (plus
``aux_weight`` times the auxiliary head's L1 loss), backward and an Adam step (no gradient clipping). An eval
forward is the predictor in eval mode under ``torch.no_grad``. Times are medians (and IQRs) over ``--repeats``
after ``--warmup`` untimed steps. The reference times are **quoted from issue 5** (the authors' GRF code and
the original MulT code, measured by the issue's author on the 2-core CPU machine), not measured here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch

from fusions import build_predictor, list_fusions

from .cli import resolve_device
from .cost import Summary, make_inputs, time_iterations
from .store import atomic_write_csv, atomic_write_json, atomic_write_text, check_writable, run_metadata
from .train import prediction_loss

MOSI_DIMS = [300, 5, 20]
GRF_PAPER = dict(d_model=64, num_heads=4, num_layers=4, dim_feedforward=256, dropout=0.2)
MULT_DEFAULTS = dict(d_model=30, num_heads=5, num_layers=5)

# fusion -> (hyperparameters, reference label, quoted train ms, quoted eval ms): quoted from issue 5.
SETTINGS: dict[str, tuple[dict, str, float, float]] = {
    "grf": (GRF_PAPER, "authors' GRF code (quoted)", 626.0, 107.0),
    "pairwise": (MULT_DEFAULTS, "original MulT code (quoted)", 1144.0, 204.0),
    "mult": (MULT_DEFAULTS, "original MulT code (quoted)", 1144.0, 204.0),
}
TARGET_SPEEDUP = 1.5


def training_step(predictor, optimizer, xs, masks, target) -> None:
    """One optimisation step of ``predictor`` on one batch (``target`` [batch]): the training objective of
    ``benchmarks.train`` (L1 plus the weighted auxiliary L1 loss), backward, optimiser step."""
    optimizer.zero_grad(set_to_none=True)
    prediction_loss(predictor, predictor(xs, masks), target, "regression").backward()
    optimizer.step()


def measure_speed(
    name: str, hparams: dict | None = None, batch_size: int = 32, seq_len: int = 50, repeats: int = 10,
    warmup: int = 3, device: str = "cpu", seed: int = 0,
) -> dict:
    """Median / IQR milliseconds of a training step and an eval forward of ``name``'s regression predictor on
    MOSI-shaped inputs (see the module docstring). Returns ``train_ms``, ``train_iqr_ms``, ``eval_ms``,
    ``eval_iqr_ms``, ``params``."""
    device = resolve_device(device)
    hparams = SETTINGS[name][0] if hparams is None else hparams
    torch.manual_seed(seed)
    predictor = build_predictor(name, MOSI_DIMS, task="regression", **hparams).to(device)
    xs, masks = make_inputs(MOSI_DIMS, [seq_len] * 3, batch_size, device, seed)
    target = torch.empty(batch_size, device=device).uniform_(-3, 3)
    optimizer = torch.optim.Adam(predictor.parameters(), lr=1e-3)

    def train():
        training_step(predictor, optimizer, xs, masks, target)

    def evaluate():
        with torch.no_grad():
            predictor(xs, masks)

    predictor.train()
    time_iterations(train, warmup, device)
    trained = Summary.of(time_iterations(train, repeats, device))
    predictor.eval()
    time_iterations(evaluate, warmup, device)
    evaluated = Summary.of(time_iterations(evaluate, repeats, device))
    return {
        "fusion": name, "params": sum(p.numel() for p in predictor.parameters()),
        "train_ms": trained.median_ms, "train_iqr_ms": trained.iqr_ms,
        "eval_ms": evaluated.median_ms, "eval_iqr_ms": evaluated.iqr_ms,
    }


def report(results: list[dict]) -> str:
    """A Markdown table of our times against the quoted reference times, with the speed-up ratios."""
    lines = [
        "| fusion | params | train step ms (IQR) | eval forward ms (IQR) | reference (quoted from issue 5) "
        "| ref train / eval ms | speed-up train / eval |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for r in results:
        _, label, ref_train, ref_eval = SETTINGS[r["fusion"]]
        train_ratio, eval_ratio = ref_train / r["train_ms"], ref_eval / r["eval_ms"]
        lines.append(
            f"| {r['fusion']} | {r['params']:,} | {r['train_ms']:.0f} ({r['train_iqr_ms']:.0f}) "
            f"| {r['eval_ms']:.0f} ({r['eval_iqr_ms']:.0f}) | {label} | {ref_train:.0f} / {ref_eval:.0f} "
            f"| {train_ratio:.2f}x / {eval_ratio:.2f}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--fusions", default="grf,pairwise", help=f"comma-separated, of: {', '.join(SETTINGS)}")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--out", type=Path, default=Path("results/speed"),
                        help="folder for speed.csv (one row per fusion), speed.md and meta.json")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.fusions.split(",")]
    unknown = [name for name in names if name not in SETTINGS or name not in list_fusions()]
    if unknown:
        known = [name for name in SETTINGS if name in list_fusions()]
        print(f"{parser.prog}: error: no speed setting for {unknown[0]!r}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    if args.repeats < 1 or args.warmup < 0:
        print(f"{parser.prog}: error: --repeats must be >= 1 and --warmup >= 0", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    check_writable(args.out)
    results = [measure_speed(name, repeats=args.repeats, warmup=args.warmup, device=args.device) for name in names]
    heading = (f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, batch 32, "
               f"50 steps, dims 300/5/20; target: {TARGET_SPEEDUP}x faster than the reference")
    atomic_write_csv(args.out / "speed.csv", pd.DataFrame(results).assign(threads=torch.get_num_threads()))
    atomic_write_text(args.out / "speed.md", f"{heading}\n\n{report(results)}\n")
    atomic_write_json(args.out / "meta.json", run_metadata(resolve_device(args.device), repeats=args.repeats,
                                                           warmup=args.warmup, threads=torch.get_num_threads()))
    print(f"{heading}\n\n{report(results)}\n\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
