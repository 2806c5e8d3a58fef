"""One experiment: the configuration resolved once and the data loaded once, handed to every command.

Every command that trains (``run``, ``ablate``, ``tune``, the accuracy sweep of ``scaling --train``) describes
its data and configuration with the fields of ``ExperimentSpec`` and builds one ``Experiment`` from it
(``Experiment.build``); the cells it trains, the costs it counts and the checks it makes are then asked of that
object, so no command reads the configuration or loads the dataset a second time.

Library::

    experiment = Experiment.build(RunSpec(fusions=["grf"], dataset="mosi"))
    cell = experiment.cell("grf")            # CellConfig: hyperparameters, protocol, data description
    experiment.forward_flops(cell)           # fusion forward FLOPs per sample at the data's padded lengths
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from fusions import build_fusion, fusion_class

from .cli import resolve_device
from .config import (
    CellConfig,
    ConfigError,
    Layers,
    Variant,
    dataset_options,
    fit_to_modalities,
    load_config_file,
    load_preset,
    merge,
    merge_layers,
    resolve,
    value_source,
)
from .cost import count_costs
from .data import Dataset, list_datasets, load_dataset
from .protocols import protocol_layers
from .train import build_cell_model, data_fingerprint, resolve_hparams


@dataclass(kw_only=True)
class ExperimentSpec:
    """The data and configuration of an experiment, as every training command takes them.

    ``dataset``: a registered dataset; ``dataset_path``: its file or folder (None: the loader's default, e.g.
    ``MOSI_PATH``); ``modalities``: a selection and order of modality names (None: all); ``preset``: a shipped
    configuration (``quick``, ``paper``); ``config_file``: a TOML file merged over it; ``params``: tuned
    parameters (``"tuned"`` or a tuning run's folder, see ``benchmarks.tuned``); ``overrides``: a configuration
    dict merged over those; ``epochs``: the maximum epochs, over everything; ``device``: ``auto``, ``cpu``,
    ``cuda`` or ``cuda:K``; ``amp``: bf16 autocast (CUDA only); ``protocol``: ``shared`` or ``reference``
    (``benchmarks.protocols``)."""

    dataset: str = "synthetic"
    dataset_path: str | None = None
    modalities: list[str] | None = None
    preset: str = "quick"
    config_file: str | None = None
    params: str | None = None
    overrides: dict | None = None
    epochs: int | None = None
    device: str = "auto"
    amp: bool = False
    protocol: str = "shared"


@dataclass(kw_only=True)
class RunSpec(ExperimentSpec):
    """What ``benchmarks.run`` trains: ``fusions`` (registered names and/or ``Variant``s: named configurations,
    e.g. ablations) x ``seeds``, written to ``out`` (default ``results/<dataset>``); the data and configuration
    as in ``ExperimentSpec``."""

    fusions: list[str | Variant]
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    out: str | None = None


def fusion_names(fusions: list[str | Variant]) -> list[str]:
    """The registered fusions behind ``fusions`` (names and variants), sorted and distinct."""
    return sorted({Variant.of(f).fusion for f in fusions})


def config_layers(spec: ExperimentSpec, fusions: list[str | Variant] = ()) -> Layers:
    """Where the configuration comes from, lowest precedence first: the preset (its modality orders fitted to
    ``spec.modalities``), the protocol's layer (``benchmarks.protocols``; none for ``shared``), the ``--config``
    file, the tuned parameters of ``fusions``, ``spec.overrides``, ``--epochs``. ``fusions`` defaults to the spec's
    own (a ``RunSpec``'s ``fusions``)."""
    fusions = fusions or getattr(spec, "fusions", ())
    preset = load_preset(spec.preset)
    layers = [(f"preset {spec.preset!r}", fit_to_modalities(preset, spec.modalities) if spec.modalities else preset)]
    layers += protocol_layers(spec.protocol)
    if spec.config_file:
        layers.append((f"--config {spec.config_file}", load_config_file(spec.config_file)))
    if spec.params:
        from .tuned import tuned_overrides  # tuning is optional

        tuned = tuned_overrides(spec.params, spec.dataset, fusion_names(fusions), spec.protocol)
        layers.append((f"--params {spec.params}", tuned))
    if spec.overrides:
        layers.append(("the run's overrides", spec.overrides))
    if spec.epochs is not None:
        if spec.epochs < 1:
            raise ConfigError(f"--epochs must be >= 1, got {spec.epochs}")
        layers.append(("--epochs", {"protocol": {"max_epochs": spec.epochs}}))
    return layers


def build_config(spec: ExperimentSpec, fusions: list[str | Variant] = ()) -> dict:
    """The merged ``config_layers``, validated (unknown keys raise ``ConfigError``)."""
    return merge_layers(config_layers(spec, fusions))


def load_run_dataset(spec: ExperimentSpec, config: dict, loaded: Dataset | None = None) -> tuple[Dataset, dict]:
    """The dataset with the configuration's loader options and the modality selection; and its description
    (``{"name", "path", "options", "modalities", "fingerprint"}``, the ``dataset`` of its cells). ``loaded``: the
    dataset as those options load it, every modality, when the caller has it already (it is not read again). An
    unknown dataset raises ``ValueError`` listing the known."""
    if spec.dataset not in list_datasets():
        raise ValueError(f"unknown dataset {spec.dataset!r}; known datasets: {', '.join(list_datasets())}")
    options = dataset_options(config, spec.dataset)
    data = load_dataset(spec.dataset, spec.dataset_path, **options) if loaded is None else loaded
    if spec.modalities:
        data = data.select_modalities(spec.modalities)
    described = {
        "name": spec.dataset, "path": data.info.get("path", spec.dataset_path), "options": options,
        "modalities": list(data.modality_names), "fingerprint": data_fingerprint(data),
    }
    return data, described


@dataclass
class Experiment:
    """An experiment ready to train: its configuration ``layers`` and their merge ``config``, the loaded
    ``data`` and its description ``described`` (the ``dataset`` of every cell), and the ``device``."""

    spec: ExperimentSpec
    layers: Layers
    config: dict
    data: Dataset
    described: dict
    device: torch.device

    @classmethod
    def build(
        cls, spec: ExperimentSpec, fusions: list[str | Variant] = (), loaded: Dataset | None = None,
    ) -> Experiment:
        """Check the device, resolve the configuration and load the data, once. ``fusions``: whose tuned
        parameters to read with ``spec.params`` (default: the spec's own); ``loaded``: the dataset already loaded
        with every modality (``load_run_dataset``: another experiment's ``data`` on the same data, e.g. one setting
        of the accuracy sweep). Raises ``ValueError`` (bad device, ``--amp`` off CUDA, unknown key, unknown
        dataset, unreadable data) before anything trains."""
        device = resolve_device(spec.device)
        if spec.amp and device.type != "cuda":
            raise ValueError(f"--amp uses bf16 autocast on CUDA; the device is {device}")
        layers = config_layers(spec, fusions)
        config = merge_layers(layers)
        data, described = load_run_dataset(spec, config, loaded)
        if spec.params:
            from .tuned import check_tuned_data  # tuning is optional

            check_tuned_data(spec.params, spec.dataset, fusion_names(fusions or getattr(spec, "fusions", ())),
                             described)
        return cls(spec, layers, config, data, described, device)

    def cell(self, fusion: str | Variant, overrides: dict | None = None) -> CellConfig:
        """The cell configuration of ``fusion`` (a registered name or a ``Variant``) in this experiment;
        ``overrides``: a configuration table merged over the experiment's first (e.g. a tuning trial's)."""
        config = self.config if overrides is None else merge(self.config, overrides)
        return resolve(config, fusion, self.described, amp=self.spec.amp)

    def configuration_error(self, fusion: str | Variant) -> str | None:
        """Why ``fusion``'s cell cannot be built for this data (None when it can): a modality ``order`` that does
        not name each of the modalities once, with where it was set, or the fusion's own error (built on the
        ``meta`` device: no memory, no time)."""
        cell = self.cell(fusion)
        order = cell.hparams.get("order")
        names = self.data.modality_names
        if order is not None:
            try:
                fits = sorted(resolve_hparams({"order": order}, names)["order"]) == list(range(len(names)))
            except (ValueError, TypeError):
                fits = False
            if not fits:
                where = value_source(self.layers, fusion, self.data.name, "order") or "the fusion's default"
                return f"order {order} from {where} must name each of this run's modalities once: {', '.join(names)}"
        try:
            with torch.device("meta"):
                build_cell_model(cell, self.data)
        except Exception as error:  # noqa: BLE001 (whatever a constructor refuses is this fusion's error)
            return one_line(error)
        return None

    def modality_cap(self, fusion: str | Variant) -> str | None:
        """Why ``fusion`` is not built for this many modalities (its stated cap, e.g. TFN's), or None."""
        cell = self.cell(fusion)
        limit = fusion_class(cell.fusion).max_modalities(**cell.hparams)
        n = len(self.data.modality_names)
        return None if limit is None or n <= limit else f"{cell.label} is capped at {limit} modalities"

    def forward_flops(self, cell: CellConfig) -> float:
        """The fusion's forward FLOPs per sample (``benchmarks.cost`` conventions) at the data's padded lengths,
        every step real; counted on the ``meta`` device."""
        hparams = resolve_hparams(cell.hparams, self.data.modality_names)
        lengths = [int(x.shape[1]) for x in self.data.train.xs]
        dims = self.data.dims
        return count_costs(lambda: build_fusion(cell.fusion, dims, **hparams), dims, lengths).flops


def one_line(error: BaseException) -> str:
    """An exception as one line: its message (a ``ValueError``'s) or ``Type: message``."""
    text = (str(error).strip().splitlines() or [""])[0]
    if isinstance(error, ValueError) and text:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
