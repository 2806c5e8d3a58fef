"""The ``fusionbench`` command: one entry point, a subcommand per job.

``fusionbench <command> [options]`` is the same as ``python -m <module> [options]`` (both forms are documented
and stay): the options, their meaning, the one-line errors and the exit statuses are those of the module's
own command-line interface; ``fusionbench <command> --help`` lists them. ``fusionbench --help`` lists the
commands.
"""

from __future__ import annotations

import importlib
import sys

from records.cli import COMMAND_NAME

from .cli import run_cli

COMMANDS = {
    "run": ("benchmarks.run", "train fusions x seeds on a dataset; records, tables and report"),
    "tune": ("benchmarks.tune", "tune one fusion's hyperparameters with Optuna, on validation data only"),
    "ablate": ("benchmarks.ablate", "train GRF's ablation variants and compare each with full GRF"),
    "scaling": ("benchmarks.scaling", "FLOPs, latency and memory against the number of modalities "
                                      "(--train: accuracy against it)"),
    "speed": ("benchmarks.speed", "training-step and forward speed at the papers' settings"),
    "reference": ("benchmarks.reference.__main__",
                  "check grf, mult, tfn and lmf against checkouts of their authors' code"),
    "probe": ("benchmarks.probe", "robustness and embeddings of a run's stored checkpoints, as records"),
    "report": ("analysis.report", "the report of a run folder: tables, tests, figures"),
}
"""Subcommand: (the module whose ``main(argv)`` it runs, one line of help)."""


def usage() -> str:
    """The text of ``fusionbench --help``: the commands with one line each."""
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return ("usage: fusionbench <command> [options]   (fusionbench <command> --help: its options)\n\n"
            "commands:\n" + "\n".join(lines) + "\n\nEach is also `python -m <module>`: "
            + ", ".join(f"{name} = {module.removesuffix('.__main__')}" for name, (module, _) in COMMANDS.items())
            + ".\n")


def main(argv: list[str] | None = None) -> int:
    """Run ``fusionbench <command> ...``; returns the exit status (2 with one line for an unknown command)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), end="", file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    token = COMMAND_NAME.set(f"fusionbench {name}")
    try:
        return run_cli(module.main, rest)
    finally:
        COMMAND_NAME.reset(token)


if __name__ == "__main__":
    sys.exit(main())
