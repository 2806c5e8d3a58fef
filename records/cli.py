"""The command-line conventions every fusionbench command shares: one-line errors and their exit statuses.

Bad input never ends in a traceback wall: ``run_cli`` prints ``error: <message>`` on one line and exits with
status 2. Set ``FUSIONBENCH_DEBUG=1`` to see the traceback instead. A run whose cells failed (``CellsFailed``)
ends with ``error: <summary>``, one indented line per failed cell, and exit status 1; Ctrl-C ends with status 130
and a line saying that finished cells are kept.
"""

from __future__ import annotations

import argparse
import contextvars
import importlib
import os
import sys
from collections.abc import Callable

__all__ = ["CellsFailed", "UsageError", "debug", "parse_cell_seeds", "parse_names", "run_cli"]


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


def parse_names(text: str, flag: str) -> list[str]:
    """A comma-separated list of names (no empty items, no repeats); else ``UsageError`` naming ``flag``."""
    names = [part.strip() for part in str(text).split(",")]
    if not all(names) or len(set(names)) != len(names):
        raise UsageError(f"{flag} {text!r}: expected a comma-separated list of distinct names")
    return names


def parse_cell_seeds(text: str) -> int | None:
    """``--cell-seeds`` (``benchmarks.probe``, ``analysis.report``): seeds per fusion, the first ones, as a positive
    count, or ``"all"`` (None); else ``UsageError``."""
    text = str(text).strip()
    if text == "all":
        return None
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise UsageError(f"--cell-seeds {text!r}: expected a positive count or 'all'")


COMMAND_NAME: contextvars.ContextVar[str | None] = contextvars.ContextVar("command_name", default=None)
"""The name a command was started by when not its ``python -m`` form (``fusionbench run``): its usage and error
lines say that name."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser for every command: a flag that does not parse is one line on stderr,
    ``error: <what argparse says> (<prog> --help lists the options)``, and exit status 2 (argparse's own error
    prints the whole usage before it). ``prog`` is ``COMMAND_NAME`` when that is set."""

    def __init__(self, *args, **kwargs):
        if COMMAND_NAME.get() and kwargs.get("add_help", True):
            kwargs["prog"] = COMMAND_NAME.get()
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        print(f"error: {message} ({self.prog} --help lists the options)", file=sys.stderr)
        sys.exit(2)


PLUGINS = "FUSIONBENCH_PLUGINS"
"""The environment variable naming the user's modules (comma-separated, importable from ``sys.path``) that every
command imports before it starts: their registrations (a fusion, dataset, task, metric or cost measure defined
outside this project's packages) then reach every command, e.g. the report of a run that used them."""


def import_plugins() -> list[str]:
    """Import the modules named by ``FUSIONBENCH_PLUGINS``; returns their names. One that cannot be imported
    raises ``ValueError`` naming it and why."""
    names = [part.strip() for part in os.environ.get(PLUGINS, "").split(",") if part.strip()]
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise ValueError(f"{PLUGINS} names the module {name!r}, which cannot be imported: {error}") from None
    return names


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Import the user's plugins (``FUSIONBENCH_PLUGINS``), then run ``main(argv)``; a bad-input error
    (``ValueError``, ``OSError``, ``KeyError``) becomes one line and exit status 2, failed cells (``CellsFailed``)
    the summary and exit status 1, Ctrl-C exit status 130."""
    try:
        import_plugins()
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
