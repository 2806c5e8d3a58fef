"""Tuned hyperparameters on disk: ``<folder>/best_params/<dataset>/<fusion>.json``, written by
``benchmarks.tune`` under its ``--out`` and read by ``benchmarks.run --params``.

``--params tuned`` reads ``results/tune`` (``benchmarks.tune``'s default ``--out``); ``--params DIR`` reads the
``--out`` folder of another tuning run. A file's ``config`` (the best trial's searched hyperparameters and
protocol values) is merged over the run's configuration at ``[datasets.<dataset>.fusions.<fusion>]``, the most
specific level: tuned values win over the preset's (including its dataset-specific ones, such as GRF's MOSI
modality order), a variant's overrides (e.g. an ablation) win over tuned values, and everything not searched
(epochs, patience, pooling, ...) still comes from the preset and ``--config``. Parameters tuned on other data
than the run's (``check_tuned_data``: another file under the same ``--dataset`` name, other loader options such
as MOSEI's ``labels = "emotions"``, other modalities) are refused: they answer another question.
"""

from __future__ import annotations

import json
from pathlib import Path

from records.schema import read_document

from .config import ConfigError, merge

DEFAULT_TUNE_OUT = "results/tune"


def best_params_path(folder: str | Path, dataset: str, fusion: str) -> Path:
    """Where a tuning run with ``--out folder`` keeps the best parameters of ``fusion`` on ``dataset``."""
    return Path(folder) / "best_params" / dataset / f"{fusion}.json"


def tuned_table(dataset: str, fusion: str, values: dict) -> dict:
    """A configuration override that sets ``values`` (hyperparameters, plus a ``protocol`` table) for
    ``fusion`` on ``dataset``."""
    return {"datasets": {dataset: {"fusions": {fusion: values}}}}


def tuned_overrides(params: str, dataset: str, fusions: list[str], protocol: str = "shared") -> dict:
    """The configuration override holding each fusion's tuned values on ``dataset``; ``params`` is ``"tuned"``
    or a tuning run's ``--out`` folder. A missing file raises ``ConfigError`` naming it and its command; so does a
    file tuned under another ``--protocol`` than ``protocol`` (its values answer another question)."""
    folder = Path(DEFAULT_TUNE_OUT if params == "tuned" else params)
    if params != "tuned" and not folder.is_dir():
        raise ConfigError(f"--params {params!r}: expected 'tuned' or the --out folder of a benchmarks.tune run")
    override: dict = {}
    for fusion in fusions:
        path = best_params_path(folder, dataset, fusion)
        if not path.is_file():
            command = f"python -m benchmarks.tune --fusion {fusion} --dataset {dataset}"
            raise ConfigError(
                f"no tuned parameters for {fusion} on {dataset}: {path} does not exist; create it with {command}"
                + ("" if params == "tuned" else f" --out {folder}")
            )
        try:
            document = read_document(path, "best_params")
        except json.JSONDecodeError:
            raise ConfigError(f"{path} is not a best-parameters file written by benchmarks.tune") from None
        tuned_under = ((document.get("cell") or {}).get("protocol") or {}).get("name", "shared")
        if tuned_under != protocol:
            raise ConfigError(f"{path} was tuned under --protocol {tuned_under}; this run trains under --protocol "
                              f"{protocol}: tune again with --protocol {protocol} (into another --out)")
        values = document["config"]
        override = merge(override, tuned_table(dataset, fusion, values))
    return override


def check_tuned_data(params: str, dataset: str, fusions: list[str], described: dict) -> None:
    """Raise ``ConfigError`` (one line) when a fusion's tuned parameters (``params`` as in ``tuned_overrides``,
    whose files exist) were tuned on other data than ``described`` (the run's dataset description: ``path``,
    ``options``, ``modalities``, ``fingerprint``, a digest of the task, labels, features and ids). A file without
    the tuned cell's description (written before it was stored) is not checked."""
    folder = Path(DEFAULT_TUNE_OUT if params == "tuned" else params)
    for fusion in fusions:
        path = best_params_path(folder, dataset, fusion)
        tuned = (read_document(path, "best_params").get("cell") or {}).get("dataset") or {}
        if "fingerprint" in tuned and tuned["fingerprint"] != described["fingerprint"]:
            raise ConfigError(
                f"{path} was tuned on other {dataset} data (path {tuned.get('path')}, options "
                f"{tuned.get('options') or {}}, modalities {','.join(tuned.get('modalities') or [])}; fingerprint "
                f"{tuned['fingerprint']}) than this run's (path {described.get('path')}, options "
                f"{described.get('options') or {}}, modalities {','.join(described['modalities'])}; fingerprint "
                f"{described['fingerprint']}): tune on this data (into another --out) and pass that --params")
