"""Command-line plumbing shared by the runners: flag parsing and one-line errors.

Bad input never ends in a traceback wall: ``run_cli`` prints ``error: <message>`` on one line and exits with
status 2. Set ``FUSIONBENCH_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import torch

from fusions import list_fusions


class UsageError(ValueError):
    """A flag that does not parse or does not fit this machine."""


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


def parse_ints(text: str, flag: str) -> list[int]:
    """A comma-separated list of positive integers."""
    try:
        values = [int(part) for part in str(text).split(",")]
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected comma-separated positive integers") from None
    if min(values) < 1:
        raise UsageError(f"{flag} {text!r}: expected comma-separated positive integers")
    return values


def parse_fusions(text: str) -> list[str]:
    """``"all"`` or a comma-separated list of registered fusions; an unknown one lists the known."""
    if str(text).strip() == "all":
        return list_fusions()
    names = parse_names(text, "--fusions")
    unknown = [name for name in names if name not in list_fusions()]
    if unknown:
        raise UsageError(f"unknown fusion {unknown[0]!r}; known fusions: {', '.join(list_fusions())}")
    return names


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
    exit status 2, Ctrl-C exit status 130."""
    try:
        return int(main(argv) or 0)
    except KeyboardInterrupt:
        print("interrupted: finished cells are stored; run the same command again to resume", file=sys.stderr)
        return 130
    except (ValueError, OSError, KeyError) as error:
        if os.environ.get("FUSIONBENCH_DEBUG"):
            raise
        message = str(error).strip().strip('"') or type(error).__name__
        print(f"error: {message.splitlines()[0]}", file=sys.stderr)
        return 2
