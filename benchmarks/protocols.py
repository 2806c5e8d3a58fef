"""The training protocols a command can train under (``--protocol``): ``shared`` and ``reference``.

``shared`` (the default): one protocol for every fusion, the preset's ``[protocol]`` (``config.Protocol``), so the
fusions are compared under the same training. ``reference``: each fusion trained, selected and tested as its
authors' public code does, from the layer ``benchmarks/configs/protocols/reference.toml`` (its values name the
file and line of that code they come from): merged right after the preset, so ``--config``, tuned parameters and
``--epochs`` still apply over it (``experiment.config_layers``). Fusions without public code keep the shared
protocol inside a reference run.

Every cell records its protocol (``Protocol.name``: the ``protocol`` column of ``runs.csv``, and ``meta.json``);
the report refuses a folder whose records mix protocols (``analysis.records``).

The GRF authors report Acc-7 from a second run trained, early-stopped and tested on labels rounded to integers;
the reference protocol asks for it with ``rounded_cell``, and ``benchmarks.run`` (and its shared grid) trains it
as a second cell of the same fusion, labelled ``<label>[acc7]`` (``with_rounded_cells``). Its MAE and correlation
are against the rounded labels; read its ``acc7`` beside the first cell's other metrics.
"""

from __future__ import annotations

import tomllib
from importlib import resources

from tasks import get_task

from .config import PROTOCOLS, ConfigError, Layers, Variant

ROUNDED_SUFFIX = "[acc7]"  # the label of a rounded-label companion cell: "<label>[acc7]"


def protocol_layers(name: str) -> Layers:
    """The configuration layers of protocol ``name``: none for ``shared`` (the preset's protocol), the shipped
    ``configs/protocols/<name>.toml`` otherwise. An unknown name raises ``ConfigError`` listing the protocols."""
    if name not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {name!r}; protocols: {', '.join(PROTOCOLS)}")
    if name == "shared":
        return []
    text = (resources.files("benchmarks") / "configs" / "protocols" / f"{name}.toml").read_text()
    return [(f"protocol {name!r}", tomllib.loads(text))]


def with_rounded_cells(experiment, fusions: list[str | Variant]) -> list[str | Variant]:
    """``fusions`` with, right after each one whose cell in ``experiment`` (an ``experiment.Experiment``) has
    ``protocol.rounded_cell`` set, its rounded-label companion: a ``Variant`` of the same fusion and overrides,
    labelled ``<label>[acc7]``, with ``labels = "rounded"``. None is added when the experiment's task does not
    report Acc-7 (``acc7``, MOSI-style sentiment): the companion exists for that number only, and rounded labels
    would change what another task's metrics mean (CH-SIMS's [-1, 1] would become {-1, 0, 1})."""
    if "acc7" not in get_task(experiment.data.task).metrics:
        return list(fusions)
    expanded: list[str | Variant] = []
    for fusion in fusions:
        expanded.append(fusion)
        cell = experiment.cell(fusion)
        if cell.protocol.rounded_cell:
            overrides = fusion.overrides if isinstance(fusion, Variant) else {}
            protocol = {**overrides.get("protocol", {}), "labels": "rounded", "rounded_cell": False}
            expanded.append(Variant(cell.label + ROUNDED_SUFFIX, cell.fusion, {**overrides, "protocol": protocol}))
    return expanded
