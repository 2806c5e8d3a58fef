"""Command-line plumbing shared by the runners: flag parsing and one-line errors.

Bad input never ends in a traceback wall: ``run_cli`` prints ``error: <message>`` on one line and exits with
status 2. Set ``FUSIONBENCH_DEBUG=1`` to see the traceback instead. A run whose cells failed (``CellsFailed``)
ends with ``error: <summary>``, one indented line per failed cell, and exit status 1.
"""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Callable

import torch

from fusions import fusion_hparams, list_fusions

from .config import Variant


class UsageError(ValueError):
    """A flag that does not parse or does not fit this machine."""


class CellsFailed(RuntimeError):
    """Some cells of a run failed after the run went through every cell and wrote its records. The message is
    the summary; ``details``: one line per failed cell (``<fusion> seed <k>: <error>``)."""

    def __init__(self, summary: str, details: list[str]):
        super().__init__(summary)
        self.details = details


def debug() -> bool:
    """Whether ``FUSIONBENCH_DEBUG`` asks for tracebacks instead of one-line errors."""
    return bool(os.environ.get("FUSIONBENCH_DEBUG"))


def parse_seeds(text: str) -> list[int]:
    """``"3"`` -> seeds 0, 1, 2; ``"0,4,7"`` -> those seeds. Anything else raises ``UsageError``."""
    text = str(text).strip()
    try:
        if "," not in text:
            count = int(text)
            if count < 1:
                raise ValueError
            return list(range(count))
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise UsageError(
            f"--seeds {text!r}: expected a count (e.g. 3) or a comma-separated list (e.g. 0,1,2)"
        ) from None
    if len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise UsageError(f"--seeds {text!r}: seeds must be distinct non-negative integers")
    return seeds


def parse_names(text: str, flag: str) -> list[str]:
    """A comma-separated list of names (no empty items, no repeats)."""
    names = [part.strip() for part in str(text).split(",")]
    if not all(names) or len(set(names)) != len(names):
        raise UsageError(f"{flag} {text!r}: expected a comma-separated list of distinct names")
    return names


def parse_ints(text: str, flag: str, minimum: int = 1) -> list[int]:
    """``"2,3,4"`` -> ``[2, 3, 4]``: distinct integers of at least ``minimum``; else ``UsageError`` naming the flag."""
    try:
        values = [int(part) for part in str(text).split(",")]
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected comma-separated integers, e.g. 2,4,8") from None
    if min(values) < minimum:
        raise UsageError(f"{flag} {text!r}: every value must be at least {minimum}")
    if len(set(values)) != len(values):
        raise UsageError(f"{flag} {text!r}: repeated value")
    return values


def parse_value(text: str):
    """A hyperparameter value: ``"3"`` -> 3, ``"0.1"`` -> 0.1, ``"true"`` -> True, ``"none"`` -> None,
    ``"[0,2,1]"`` -> a list; anything else stays a string."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def add_data_arguments(parser) -> None:
    """``--dataset``, ``--data-path`` and ``--modalities``, as every training command takes them (read back
    with ``modality_names``)."""
    from .data import list_datasets  # noqa: PLC0415 (the loaders only for commands that train)

    parser.add_argument("--dataset", default="synthetic", help=f"one of: {', '.join(list_datasets())}")
    parser.add_argument("--data-path", default=None, help="dataset file or folder (MOSI also reads MOSI_PATH)")
    parser.add_argument("--modalities", default=None, help="comma-separated modality names to use, in order")


def add_training_arguments(parser) -> None:
    """``--preset``, ``--config``, ``--epochs`` and ``--device``, as every command that trains takes them."""
    parser.add_argument("--preset", default="quick", help="quick (CPU-sized) or paper (the papers' settings)")
    parser.add_argument("--config", default=None, help="TOML file merged over the preset")
    parser.add_argument("--epochs", type=int, default=None, help="maximum epochs (overrides the preset)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:K")


def modality_names(args) -> list[str] | None:
    """The ``--modalities`` of ``add_data_arguments``, parsed; None when not given (every modality)."""
    return parse_names(args.modalities, "--modalities") if args.modalities else None


def parse_fusions(text: str) -> list[str | Variant]:
    """``"all"`` or a comma-separated list of fusion specs: a registered name, or ``name:key=value[:key=value]``
    for that fusion with hyperparameters set (a ``Variant`` labelled by the spec as written, e.g.
    ``pairwise:memory=concat``). An unknown fusion or hyperparameter raises ``UsageError`` listing the known."""
    if str(text).strip() == "all":
        return list_fusions()
    specs: list[str | Variant] = []
    for item in parse_names(text, "--fusions"):
        name, *assignments = item.split(":")
        if name not in list_fusions():
            raise UsageError(f"unknown fusion {name!r}; known fusions: {', '.join(list_fusions())}")
        overrides = {}
        for assignment in assignments:
            key, sep, value = assignment.partition("=")
            if not sep or not key:
                raise UsageError(f"--fusions {item!r}: expected name:key=value[:key=value], got {assignment!r}")
            if key not in fusion_hparams(name):
                raise UsageError(f"--fusions {item!r}: fusion {name!r} has no hyperparameter {key!r}; it accepts: "
                                 f"{', '.join(sorted(fusion_hparams(name)))}")
            overrides[key] = parse_value(value)
        specs.append(Variant(item, name, overrides) if assignments else name)
    return specs


def resolve_device(text: str) -> torch.device:
    """``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:K``; CUDA asked for but absent is an error."""
    text = str(text).strip()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except RuntimeError:
        raise UsageError(f"--device {text!r}: expected auto, cpu, cuda or cuda:K") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {text}: CUDA is not available on this machine; use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {text}: only {torch.cuda.device_count()} CUDA device(s) present")
    elif device.type != "cpu":
        raise UsageError(f"--device {text!r}: expected auto, cpu, cuda or cuda:K")
    return device


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Run ``main(argv)``; a bad-input error (``ValueError``, ``OSError``, ``KeyError``) becomes one line and
    exit status 2, failed cells (``CellsFailed``) the summary and exit status 1, Ctrl-C exit status 130."""
    try:
        return int(main(argv) or 0)
    except KeyboardInterrupt:
        print("interrupted: finished cells are stored; run the same command again to resume", file=sys.stderr)
        return 130
    except CellsFailed as error:
        print(f"error: {error}", file=sys.stderr)
        for line in error.details:
            print(f"  {line}", file=sys.stderr)
        return 1
    except (ValueError, OSError, KeyError) as error:
        if debug():
            raise
        message = str(error).strip().strip('"') or type(error).__name__
        print(f"error: {message.splitlines()[0]}", file=sys.stderr)
        return 2
