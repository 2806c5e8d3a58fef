"""Command-line plumbing shared by the runners: the flags of the commands that train, and their parsing.

The one-line errors every command shares (``run_cli``, ``UsageError``, ``CellsFailed``, ``debug``,
``parse_names``) are ``records.cli``'s, imported here for the commands: bad input ends in ``error: <message>`` on
one line and exit status 2 (``FUSIONBENCH_DEBUG=1`` shows the traceback), failed cells in a summary and status 1.
"""

from __future__ import annotations

import ast
import re

import torch

from fusions import fusion_hparams, list_fusions
from records.cli import CellsFailed, UsageError, debug, parse_names, run_cli  # noqa: F401 (re-exported)

from .config import Variant

SEED_LIMIT = 2**32
"""Seeds lie in ``[0, 2**32)``: NumPy's seeds do, and a larger one would repeat a smaller one's result."""
MAX_SEEDS = 10_000
"""The most seeds one command takes (a count beyond it is a typo, not a study)."""


def parse_seeds(text: str) -> list[int]:
    """The seeds of ``--seeds``: ``"3"`` -> a count: seeds 0, 1, 2; ``"0,4,7"`` -> those seeds; ``"5-9"`` -> seeds
    5 to 9 inclusive; ``"7,"`` -> seed 7 alone (a one-item list). Numbers are plain decimal digits; seeds lie in
    ``[0, SEED_LIMIT)``, at most ``MAX_SEEDS`` of them. Anything else (or a repeated seed) raises ``UsageError``.
    ``--seed K`` (``add_seed_arguments``) is the plain way to run one seed."""
    text = str(text).strip()
    expected = (f"--seeds {text!r}: expected a count (3 -> seeds 0,1,2), a list (0,4,7), a range (5-9) or one seed "
                "with a trailing comma (7,); --seed 7 runs seed 7 alone")
    if not re.fullmatch(r"\d+(,\d+)*,?|\d+-\d+", text):
        raise UsageError(expected)
    if "," in text:
        seeds = [int(part) for part in text.removesuffix(",").split(",")]
    elif "-" in text:
        first, last = (int(part) for part in text.split("-"))
        if last < first:
            raise UsageError(expected)
        seeds = list(range(first, min(last, first + MAX_SEEDS) + 1))
    else:
        seeds = list(range(min(int(text), MAX_SEEDS + 1)))
        if not seeds:
            raise UsageError(expected)
    if len(seeds) > MAX_SEEDS:
        raise UsageError(f"--seeds {text!r}: at most {MAX_SEEDS:,} seeds")
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds {text!r}: seeds must be distinct")
    return [check_seed(seed, "--seeds") for seed in seeds]


def check_seed(seed: int, flag: str = "--seed") -> int:
    """``seed`` when it lies in ``[0, SEED_LIMIT)``; else ``UsageError`` naming ``flag``."""
    if not 0 <= seed < SEED_LIMIT:
        raise UsageError(f"{flag} {seed}: a seed must lie in [0, 2**32)")
    return seed


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


def add_data_arguments(parser, dataset_default: str = "synthetic", modalities: bool = True) -> None:
    """``--dataset``, ``--data-path`` and ``--modalities``, as every training command takes them (read back
    with ``experiment_fields``); without ``--modalities`` when ``modalities`` is False (a command whose
    ``--modalities`` means something else: the modality counts of ``scaling --train``)."""
    from .data import list_datasets  # the loaders only for commands that train

    parser.add_argument("--dataset", default=dataset_default, help=f"one of: {', '.join(list_datasets())}")
    parser.add_argument("--data-path", default=None,
                        help="dataset file or folder (without it, a dataset read from files reads its environment "
                             "variable: MOSI_PATH, MOSEI_PATH, SIMS_PATH, SIMS2_PATH, URFUNNY_PATH, MUSTARD_PATH)")
    if modalities:
        parser.add_argument("--modalities", default=None, help="comma-separated modality names to use, in order")


def add_training_arguments(parser) -> None:
    """``--preset``, ``--protocol``, ``--config``, ``--epochs``, ``--device`` and ``--amp``, as every command that
    trains takes them (read back with ``experiment_fields``)."""
    parser.add_argument("--preset", default="quick", help="quick (CPU-sized) or paper (the papers' settings)")
    parser.add_argument("--protocol", default="shared",
                        help="shared (one protocol for every fusion) or reference (each fusion as its public code "
                             "trains it; benchmarks/configs/protocols/reference.toml)")
    parser.add_argument("--config", default=None, help="TOML file merged over the preset")
    parser.add_argument("--epochs", type=int, default=None, help="maximum epochs (overrides the preset)")
    add_device_argument(parser)
    parser.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA only)")


def add_device_argument(parser, default: str = "auto") -> None:
    """``--device``: ``auto``, ``cpu``, ``cuda`` or ``cuda:K`` (checked by ``resolve_device``)."""
    parser.add_argument("--device", default=default, help=f"auto, cpu, cuda or cuda:K (default {default})")


def add_seed_arguments(parser, default: str = "3") -> None:
    """``--seeds`` (a count, a list, a range: ``parse_seeds``) and ``--seed K`` (seed K alone), exclusive."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--seeds", default=None, help="a count (3 -> seeds 0,1,2), a list (0,4,7), a range (5-9) or "
                                                     f"one seed as 7, (default {default})")
    group.add_argument("--seed", type=int, default=None, help="run this one seed (e.g. --seed 7: seed 7 alone)")
    parser.set_defaults(default_seeds=default)  # not the flag's default: argparse would not see it repeated


def add_output_arguments(parser, default_out: str) -> None:
    """``--out`` (``default_out`` names the default in the help) and ``--quiet``."""
    parser.add_argument("--out", default=None, help=f"output folder (default {default_out})")
    parser.add_argument("--quiet", action="store_true", help="no progress and no table on the terminal")


def seeds_of(args) -> list[int]:
    """The seeds of ``add_seed_arguments``' flags: ``[--seed]`` when given, else ``parse_seeds(--seeds)``."""
    if args.seed is not None:
        return [check_seed(args.seed)]
    return parse_seeds(args.default_seeds if args.seeds is None else args.seeds)


def experiment_fields(args) -> dict:
    """The ``benchmarks.experiment.ExperimentSpec`` fields of the flags of ``add_data_arguments`` and
    ``add_training_arguments`` (those a parser has)."""
    fields = {"dataset": "dataset", "data_path": "dataset_path", "preset": "preset", "config": "config_file",
              "epochs": "epochs", "device": "device", "amp": "amp", "protocol": "protocol"}
    values = {field: getattr(args, flag) for flag, field in fields.items() if hasattr(args, flag)}
    if hasattr(args, "modalities"):
        values["modalities"] = modality_names(args)
    return values


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
