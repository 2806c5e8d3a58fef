"""The GPU check: ``make gpu-check`` (``python -m benchmarks.gpu_check``), everything the suite measures only on CUDA,
in one command of at most about 8 minutes, written to ``results/gpu/``.

Steps, each a subprocess of this Python with its own time limit (seconds in ``STEPS``), its output in
``<out>/<step>.log``; a step that fails or runs out of time is recorded and the next one runs:

1. ``cuda-tests``: the tests marked ``cuda`` (``pytest -m cuda``): CUDA timing and memory, autocast training,
   the bf16 speed path, the worker-to-device mapping;
2. ``scaling``: the default cost sweep on ``cuda`` (CUDA events around every timed call), to ``<out>/scaling``;
3. ``speed-fp32`` / ``speed-bf16``: the speed table of every fusion at the papers' settings, in float32 and under
   bf16 autocast, with each step's utilisation against the device's dense matmul rate measured in the same run;
4. ``study-time``: two paper-protocol epochs of every fusion on MOSI's shapes and sizes, the second timed, and
   the paper-protocol MOSI study (8 fusions x 5 seeds) estimated from them (``benchmarks.study_time``), to
   ``<out>/study-time``;
5. ``workers-1`` / ``workers-4``: the same small grid (4 fusions x 2 seeds, quick preset, 2 epochs) with one worker
   and with four workers on the device (``--cells-per-device 4``): the study's wall-clock for each.

``<out>/meta.json`` names the device (``torch.cuda.get_device_name``, capability, memory), the versions and each
step's command, exit status and seconds; ``<out>/summary.md`` is the same as a table. Without CUDA the command
refuses in one line before doing anything. Exit status 1 when a step failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from records.cli import ArgumentParser
from records.io import atomic_write_text, check_writable
from records.schema import write_document

from .cli import UsageError, run_cli
from .store import run_metadata

DEFAULT_OUT = "results/gpu"
BUDGET_SECONDS = 8 * 60
GRID = ["--fusions", "grf,pairwise,late,concat", "--seeds", "2", "--epochs", "2", "--quiet", "--no-report"]


@dataclass(frozen=True)
class Step:
    """One step: ``name`` (its log is ``<name>.log``), ``argv`` after ``python -m`` (``{out}`` is replaced by the
    output folder), ``seconds``: its time limit."""

    name: str
    argv: tuple[str, ...]
    seconds: int


STEPS: tuple[Step, ...] = (
    Step("cuda-tests", ("pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider"), 90),
    Step("scaling", ("benchmarks.scaling", "--device", "cuda", "--budget-seconds", "20", "--out", "{out}/scaling"),
         120),
    Step("speed-fp32", ("benchmarks.speed", "--fusions", "all", "--device", "cuda", "--out", "{out}/speed-fp32"), 45),
    Step("speed-bf16", ("benchmarks.speed", "--fusions", "all", "--device", "cuda", "--dtype", "bfloat16",
                        "--out", "{out}/speed-bf16"), 45),
    Step("study-time", ("benchmarks.study_time", "--device", "cuda", "--out", "{out}/study-time"), 70),
    Step("workers-1", ("benchmarks.run", *GRID, "--device", "cuda", "--out", "{out}/workers-1"), 55),
    Step("workers-4", ("benchmarks.run", *GRID, "--device", "cuda", "--workers", "4", "--cells-per-device", "4",
                       "--out", "{out}/workers-4"), 55),
)


def command(step: Step, out: Path) -> list[str]:
    """The subprocess command line of ``step`` writing under ``out``."""
    return [sys.executable, "-m", *(part.replace("{out}", str(out)) for part in step.argv)]


def run_steps(steps: tuple[Step, ...], out: Path) -> list[dict]:
    """Run ``steps`` in order, each under its time limit, the output of each in ``<out>/<name>.log``; returns one
    dict per step: ``step``, ``command``, ``status`` (``ok``, ``failed (exit N)`` or ``timed out``), ``seconds``."""
    results = []
    for step in steps:
        argv = command(step, out)
        started = time.perf_counter()
        with open(out / f"{step.name}.log", "w") as log:
            try:
                code = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, timeout=step.seconds).returncode
                status = "ok" if code == 0 else f"failed (exit {code})"
            except subprocess.TimeoutExpired:
                status = "timed out"
        results.append({"step": step.name, "command": argv[2:], "status": status, "limit_s": step.seconds,
                        "seconds": round(time.perf_counter() - started, 1)})
    return results


def summary(results: list[dict], device_name: str) -> str:
    """The steps as a Markdown table under a heading that names the device."""
    lines = [f"# GPU check on {device_name}", "", "| step | status | seconds (limit) | command |",
             "| --- | --- | ---: | --- |"]
    lines += [f"| {r['step']} | {r['status']} | {r['seconds']:.0f} ({r['limit_s']}) | `{' '.join(r['command'])}` |"
              for r in results]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="output folder (default %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not torch.cuda.is_available():
        raise UsageError("the GPU check needs a CUDA device and this machine has none (torch.cuda.is_available() is "
                         f"False; torch {torch.__version__}); run it on a machine with an NVIDIA GPU and a CUDA build "
                         "of torch")
    out = Path(args.out)
    check_writable(out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda")
    properties = torch.cuda.get_device_properties(device)
    results = run_steps(STEPS, out)
    write_document(out / "meta.json", run_metadata(
        device, gpu={"name": properties.name, "capability": list(torch.cuda.get_device_capability(device)),
                     "memory_gib": round(properties.total_memory / 2**30, 1), "cuda": torch.version.cuda},
        budget_seconds=BUDGET_SECONDS, steps=results))
    atomic_write_text(out / "summary.md", summary(results, properties.name))
    print(summary(results, properties.name))
    return 0 if all(r["status"] == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(run_cli(main))
