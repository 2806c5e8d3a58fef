"""Run configuration: the training protocol and each fusion's hyperparameters, from TOML presets and files.

A configuration is a TOML document with three tables, all optional in an override file:

```toml
[protocol]                 # Protocol fields: one training protocol for every fusion
lr = 1e-3
[fusions.grf]              # a fusion's hyperparameters (its constructor's keyword arguments)
d_model = 64
[fusions.grf.protocol]     # protocol fields for this fusion only (e.g. a tuned learning rate)
lr = 5e-4
[datasets.synthetic]       # options passed to the dataset's loader
sizes = [1284, 229, 686]
[datasets.mosi.fusions.grf]  # hyperparameters for one fusion on one dataset (e.g. GRF's modality order)
order = ["text", "vision", "audio"]
```

Presets live in ``benchmarks/configs/<name>.toml``; ``--config FILE`` and tuned parameters are merged over the
preset. A key that does not exist anywhere raises ``ConfigError`` naming it.

A preset is written for a dataset's full set of modalities; its values that depend on that set (GRF's modality
``order``, given by names; per-modality tables such as TFN's ``d_model = {text = 64, ...}``) are fitted to a
run's selection by ``fit_to_modalities``. Values a user gives are never changed: ``value_source`` says where
one came from, so that an error can name it.

A cell is identified by ``CellConfig.hash``: its configuration, the dataset (options, modality selection and
order, a fingerprint of the loaded arrays; not the path), bf16 autocast, and ``code_version()``, a digest of the
code that computes a result. A change to any of them gives another hash, hence another cell folder.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import functools
import hashlib
import json
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import fusions
from fusions import fusion_class, fusion_hparams


class ConfigError(ValueError):
    """A configuration key or value that does not exist or does not fit; the message names it."""


PROTOCOLS = ("shared", "reference")
"""The protocols a run can be trained under (``--protocol``): ``shared`` (one protocol for every fusion, the
preset's) and ``reference`` (each fusion as its public code trains it: ``benchmarks/configs/protocols``)."""

PROTOCOL_CHOICES = {
    "name": PROTOCOLS,
    "optimizer": ("adamw", "adam"),
    "schedule": ("warmup_cosine", "warmup_cosine_epoch", "plateau", "constant"),
    "selection": ("task", "valid_loss"),
    "padding": ("masked", "full"),
    "labels": ("raw", "rounded"),
}


@dataclass(frozen=True)
class Protocol:
    """The training protocol (defaults: the shared protocol, from the GRF paper's code).

    ``optimizer`` ``"adamw"`` (decoupled weight decay) or ``"adam"`` (``weight_decay`` as an L2 term in the
    gradient, as ``torch.optim.Adam`` applies it) at ``lr``; ``batch_size`` samples per step; gradient norm clipped
    at ``grad_clip`` (0: no clipping); at most ``max_epochs`` epochs, stopped early after ``patience`` epochs
    without a better validation score (0: no early stopping); ``eval_batch_size`` samples per evaluation step (no
    effect on results).

    ``schedule`` of the learning rate: ``"warmup_cosine"``: ``warmup_epochs`` of linear warm-up then cosine decay
    to ``min_lr`` at ``max_epochs``, stepped after every optimiser step; ``"warmup_cosine_epoch"``: the same curve
    stepped once per epoch (the GRF authors' ``SequentialLR``: epoch ``e`` trains at its value for step ``e``);
    ``"plateau"``: ``ReduceLROnPlateau`` on the validation loss, the rate times ``plateau_factor`` after
    ``plateau_patience`` epochs without a better one (MulT); ``"constant"``: ``lr`` throughout (TFN, LMF).
    ``warmup_epochs`` and ``min_lr`` apply to the two cosine schedules only.

    ``selection``: the validation score that picks the epoch whose weights are tested and that early stopping
    watches: ``"task"`` (the task's selection score: MAE for sentiment, the loss for the other built-in tasks) or
    ``"valid_loss"`` (the task's loss; MulT, TFN, LMF).

    ``padding``: ``"masked"`` (masks as loaded, every batch trimmed to its longest real sequence) or ``"full"``
    (every sample as long as its split's padded length: its zero rows moved before its real steps, as MulT's
    pickles store them, and every mask True, so attention and pooling see the zero rows and positions count from
    the first row: the layout the GRF authors' loader gives its model). ``labels``: ``"raw"``, or ``"rounded"``
    (regression tasks: every split's labels rounded to integers, half to even as ``numpy.round``, so the cell
    trains, early-stops and is tested on them and its MAE and correlation are against them: the GRF authors'
    separate Acc-7 run). ``rounded_cell``: the runner also trains this cell with ``labels = "rounded"``, labelled
    ``<label>[acc7]`` (``benchmarks.protocols.with_rounded_cells``). ``name``: the protocol that set these values,
    one of ``PROTOCOLS`` (the ``protocol`` column of the records).

    Fields after ``eval_batch_size`` came after the first cells were stored: ``as_dict`` (the stored and hashed
    form) leaves them out while they hold their defaults, so a cell configured before them keeps its hash. Bad
    values raise ``ConfigError`` naming the key.
    """

    lr: float = 1e-3
    weight_decay: float = 1e-2
    warmup_epochs: int = 5
    max_epochs: int = 100
    patience: int = 20
    batch_size: int = 32
    grad_clip: float = 1.0
    min_lr: float = 1e-6
    eval_batch_size: int = 256
    name: str = "shared"
    optimizer: str = "adamw"
    schedule: str = "warmup_cosine"
    plateau_patience: int = 20
    plateau_factor: float = 0.1
    selection: str = "task"
    padding: str = "masked"
    labels: str = "raw"
    rounded_cell: bool = False

    def __post_init__(self) -> None:
        for name in ("lr", "max_epochs", "batch_size", "eval_batch_size"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"protocol.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("weight_decay", "warmup_epochs", "min_lr", "patience", "grad_clip", "plateau_patience"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"protocol.{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0 < self.plateau_factor < 1:
            raise ConfigError(f"protocol.plateau_factor must be between 0 and 1, got {self.plateau_factor!r}")
        for name, choices in PROTOCOL_CHOICES.items():
            if getattr(self, name) not in choices:
                raise ConfigError(f"protocol.{name} must be one of {', '.join(choices)}, got {getattr(self, name)!r}")
        if self.rounded_cell and self.labels == "rounded":
            raise ConfigError("protocol.rounded_cell adds a cell with rounded labels; this cell's labels are rounded "
                              "already: set one of them")

    def as_dict(self) -> dict:
        """The protocol as stored and hashed (``CellConfig.as_dict``): every field, except that the fields added
        after ``eval_batch_size`` are left out while they hold their defaults."""
        names = [f.name for f in dataclasses.fields(self)]
        added, default = names[names.index("eval_batch_size") + 1:], Protocol()
        return {key: value for key, value in dataclasses.asdict(self).items()
                if key not in added or value != getattr(default, key)}

    @classmethod
    def from_dict(cls, values: dict, where: str = "protocol") -> Protocol:
        fields = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ConfigError(f"unknown key {where}.{unknown[0]}; protocol keys: {', '.join(fields)}")
        cast = {}
        for key, value in values.items():
            if fields[key] in ("str", "bool"):
                kind = str if fields[key] == "str" else bool
                if not isinstance(value, kind):
                    raise ConfigError(f"{where}.{key} must be {'a string' if kind is str else 'true or false'}, "
                                      f"got {value!r}")
                cast[key] = value
                continue
            kind = int if fields[key] == "int" else float
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
                raise ConfigError(f"{where}.{key} must be {'an integer' if kind is int else 'a number'}, got {value!r}")
            cast[key] = kind(value)
        return cls(**cast)


TOP_LEVEL = ("protocol", "fusions", "datasets")


def preset_names() -> list[str]:
    """The presets shipped in ``benchmarks/configs``."""
    folder = resources.files("benchmarks") / "configs"
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_preset(name: str) -> dict:
    """The preset ``name`` as a dict; an unknown name raises ``ConfigError`` listing the presets."""
    if name not in preset_names():
        raise ConfigError(f"unknown preset {name!r}; presets: {', '.join(preset_names())}")
    return tomllib.loads((resources.files("benchmarks") / "configs" / f"{name}.toml").read_text())


def load_config_file(path: str | Path) -> dict:
    """A TOML override file; a missing or malformed file raises ``ConfigError``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; expected a TOML file")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None


def merge(base: dict, override: dict) -> dict:
    """Deep merge: tables merge key by key, any other value in ``override`` replaces the base's."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


Layers = list[tuple[str, dict]]
"""A configuration as its sources, lowest precedence first: ``(where, table)``, e.g. ``("preset 'quick'", {...})``,
``("--config run.toml", {...})``; merged in order they give the configuration."""


def merge_layers(layers: Layers) -> dict:
    """The configuration of ``layers`` (each merged over the ones before it), validated: an unknown key raises
    ``ConfigError`` naming it.

    A later source wins over an earlier one at every level: a value a layer sets also replaces that key in the
    more specific tables of the layers before it (``[protocol]`` in ``[fusions.<f>.protocol]`` and
    ``[datasets.<d>.fusions.<f>.protocol]``; ``[fusions.<f>]`` in ``[datasets.<d>.fusions.<f>]``). So an
    ``order`` in your ``[fusions.grf]`` beats the preset's ``[datasets.mosi.fusions.grf]``, and ``--epochs``
    beats a preset's per-fusion ``max_epochs``; within one source the more specific table wins."""
    config = functools.reduce(lambda base, layer: merge(_shadowed(base, layer), layer),
                              (table for _, table in layers), {})
    validate(config)
    return config


def _shadowed(base: dict, layer: dict) -> dict:
    """``base`` without the values that ``layer`` sets at a less specific level (see ``merge_layers``)."""
    base = copy.deepcopy(base)
    protocol_keys = set(layer.get("protocol", {}))
    for path, table in _fusion_tables(base):
        fusion = path.rsplit(".", 1)[1]
        above = layer.get("fusions", {}).get(fusion, {}) if path.startswith("datasets.") else {}
        for key in set(above) - {"protocol"}:
            table.pop(key, None)
        for key in protocol_keys | set(above.get("protocol", {})):
            table.get("protocol", {}).pop(key, None)
    return base


def _fusion_tables(config: dict):
    """Every fusion table of ``config`` with its dotted path: ``fusions.<f>`` and ``datasets.<d>.fusions.<f>``."""
    for fusion, table in config.get("fusions", {}).items():
        yield f"fusions.{fusion}", table
    for dataset, dataset_table in config.get("datasets", {}).items():
        for fusion, table in dataset_table.get("fusions", {}).items():
            yield f"datasets.{dataset}.fusions.{fusion}", table


def fit_to_modalities(preset: dict, modalities: list[str]) -> dict:
    """``preset`` with every modality ``order`` given by names restricted to ``modalities``, the preset's
    relative order kept (e.g. text, vision, audio on text and audio: text, audio), and every per-modality
    table (a value keyed by modality name, e.g. TFN's ``d_model = {text = 64, audio = 4, vision = 16}``)
    restricted to ``modalities``. These are the only preset values that depend on the modality set; orders
    given by index are left as they are."""
    fitted = copy.deepcopy(preset)
    for _, table in _fusion_tables(fitted):
        order = table.get("order")
        if isinstance(order, list) and all(isinstance(name, str) for name in order):
            table["order"] = [name for name in order if name in modalities]
        for key, value in table.items():
            if key != "protocol" and isinstance(value, dict):
                table[key] = {name: item for name, item in value.items() if name in modalities}
    return fitted


def value_source(layers: Layers, fusion: str | Variant, dataset: str, key: str) -> str | None:
    """Where the value of hyperparameter ``key`` that ``resolve`` gives ``fusion`` on ``dataset`` was set, e.g.
    ``"--config run.toml [datasets.mosi.fusions.grf]"`` or ``"fusion spec 'grf:order=...'"``; None when no
    layer sets it (the fusion's default). Follows ``resolve``'s precedence: a variant's overrides, then the
    layer that sets it (``merge_layers``), and within it the dataset's fusion table before the fusion table."""
    variant = Variant.of(fusion)
    if key in variant.overrides:
        return f"fusion spec {variant.label!r}"
    for where, layer in reversed(layers):
        for path in (("datasets", dataset, "fusions", variant.fusion), ("fusions", variant.fusion)):
            table = layer
            for part in path:
                table = table.get(part, {}) if isinstance(table, dict) else {}
            if isinstance(table, dict) and key in table:
                return f"{where} [{'.'.join(path)}]"
    return None


class _WithoutDocstrings(ast.NodeTransformer):
    """Drops string statements (docstrings): they do not change what code computes."""

    def visit_Expr(self, node: ast.Expr):
        return None if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str) else node


@functools.cache
@functools.cache
def code_version() -> str:
    """A 12-hex digest of the code that computes a cell's result: every module of the ``fusions`` package,
    ``benchmarks.train`` and the ``tasks`` package, as syntax trees without docstrings (so comments, docstrings
    and formatting do not count; any change to what the code does does). The loaders are not in it: the data
    fingerprint covers what they return. Computed once per process (the code does not change under it; every
    ``CellConfig.hash`` and ``as_dict`` asks for it)."""
    package = Path(fusions.__file__).resolve().parent
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in [*sorted(package.rglob("*.py")), here / "train.py", *sorted((here.parent / "tasks").rglob("*.py"))]:
        tree = _WithoutDocstrings().visit(ast.parse(path.read_text(), filename=str(path)))
        base = package.parent if package in path.parents else here.parent
        digest.update(f"{path.relative_to(base).as_posix()}\n".encode())
        digest.update(ast.dump(tree).encode())
    return digest.hexdigest()[:12]


def _check_fusion_table(table: dict, fusion: str, where: str) -> None:
    fusion_class(fusion)  # unknown fusion -> ValueError listing the known
    accepted = set(fusion_hparams(fusion))
    for key, value in table.items():
        if key == "protocol":
            Protocol.from_dict(value, f"{where}.protocol")
        elif key not in accepted:
            raise ConfigError(f"unknown key {where}.{key}; fusion {fusion!r} accepts: {', '.join(sorted(accepted))}")


def validate(config: dict) -> None:
    """Raise ``ConfigError`` naming the first key that does not exist."""
    for key in config:
        if key not in TOP_LEVEL:
            raise ConfigError(f"unknown config key {key!r}; top-level tables: {', '.join(TOP_LEVEL)}")
    Protocol.from_dict(config.get("protocol", {}))
    for fusion, table in config.get("fusions", {}).items():
        _check_fusion_table(table, fusion, f"fusions.{fusion}")
    for dataset, table in config.get("datasets", {}).items():
        for fusion, fusion_table in table.get("fusions", {}).items():
            _check_fusion_table(fusion_table, fusion, f"datasets.{dataset}.fusions.{fusion}")


@dataclass(frozen=True)
class Variant:
    """A named configuration of a registered fusion: ``label`` (the ``fusion`` column of the records) builds
    ``fusion`` with ``overrides`` merged over the configuration's table for it (e.g. an ablation of GRF)."""

    label: str
    fusion: str
    overrides: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, fusion: str | Variant) -> Variant:
        """``fusion`` as a variant: a registered name becomes the variant of that name with no overrides."""
        return fusion if isinstance(fusion, Variant) else cls(fusion, fusion)

    def __post_init__(self) -> None:
        if not self.label or "/" in self.label or self.label.startswith("."):
            raise ConfigError(f"variant label {self.label!r} must be a non-empty name without '/'")
        _check_fusion_table(self.overrides, self.fusion, f"variant {self.label}")


@dataclass(frozen=True)
class CellConfig:
    """Everything that defines one training cell except its seed. ``label`` names the cell in records (the
    fusion's name, or a variant's label); ``dataset``: ``{"name", "path", "options", "modalities",
    "fingerprint"}`` (the runner's description, see ``benchmarks.run.load_run_dataset``); ``amp``: bf16
    autocast (CUDA)."""

    fusion: str
    hparams: dict
    protocol: Protocol
    dataset: dict
    label: str = ""
    amp: bool = False

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", self.fusion)

    def as_dict(self) -> dict:
        """The cell as stored (``config.json``, checkpoints, ``meta.json``), with the ``code`` version."""
        return {
            "fusion": self.fusion, "label": self.label, "hparams": self.hparams,
            "protocol": self.protocol.as_dict(), "dataset": self.dataset, "amp": self.amp,
            "code": code_version(),
        }

    @property
    def hash(self) -> str:
        """A short stable digest (the ``config_hash`` column) of everything that determines the cell's result:
        ``as_dict`` without the label (a name) and the dataset's path (where the data lies; its fingerprint
        says what it holds)."""
        described = {k: v for k, v in self.as_dict().items() if k != "label"}
        described["dataset"] = {k: v for k, v in self.dataset.items() if k != "path"}
        return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:10]


def resolve(config: dict, fusion: str | Variant, dataset: dict, amp: bool = False) -> CellConfig:
    """The cell configuration of ``fusion`` (a registered name or a ``Variant``) on ``dataset``
    (``{"name", "path", "options", "modalities", "fingerprint"}``), trained with bf16 autocast when ``amp``."""
    variant = Variant.of(fusion)
    fusion_table = merge(
        merge(
            config.get("fusions", {}).get(variant.fusion, {}),
            config.get("datasets", {}).get(dataset["name"], {}).get("fusions", {}).get(variant.fusion, {}),
        ),
        variant.overrides,
    )
    protocol_values = merge(config.get("protocol", {}), fusion_table.pop("protocol", {}))
    return CellConfig(fusion=variant.fusion, hparams=fusion_table, protocol=Protocol.from_dict(protocol_values),
                      dataset=dataset, label=variant.label, amp=amp)


def dataset_options(config: dict, dataset: str) -> dict:
    """Loader options for ``dataset`` from the configuration (``[datasets.<name>]`` minus ``fusions``)."""
    return {k: v for k, v in config.get("datasets", {}).get(dataset, {}).items() if k != "fusions"}
