"""Probes: what a run's stored models do on its test data, measured from their checkpoints and written as records.

``measure_probes(run_folder, device=..., cell_seeds=1)`` rebuilds the best-validation model of the first
``cell_seeds`` trained seeds of each fusion (:mod:`.checkpoints`; nothing is retrained), runs it on the test
split, and writes ``<run_folder>/probes/``:

    robustness.csv    fusion, seed, modality, perturbation ("noise" / "drop"), level, metric, value
                      (:mod:`.robustness`: the main metric under seeded noise on one modality, or with it zeroed)
    silhouettes.csv   fusion, seed, step, state, n_samples, dim, silhouette (:mod:`.embeddings`: each fused state's
                      silhouette by class in the full state space)
    embeddings.csv    fusion, seed, step, state, method ("PCA" / "t-SNE"), id, class, x, y: the 2-D projections
                      of the shown test samples
    probed_cells.csv  fusion, seed, config_hash, reproduction_gap: the cells measured, and the largest difference
                      between the checkpoint's test outputs and the cell's stored ``predictions.csv``
    meta.json         how they were measured (noise levels and seed, what a class is and the class names,
                      ``cell_seeds``, device, versions, commit); with ``reason`` instead when nothing could be
                      measured (no trained cell, a missing checkpoint, weights that no longer fit the code)

The CSVs' columns and versions are in ``records.schema`` (kinds of the same names), the folder is
``records.layout.probes_dir``. Every file is rewritten atomically on each call, ``meta.json`` last: a folder with
``meta.json`` is complete.
The measures are deterministic on one device (seeded noise, subsample and projections), so a rerun rewrites the
same CSVs. ``analysis.report`` reads these files only; it never loads a model or a dataset.

CLI: ``python -m benchmarks.probe RUN_FOLDER [--device D] [--cell-seeds 1|all] [--quiet]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from analysis.records import failed_cells, load_run, primary_setting, sample_comparable
from records.io import check_writable
from records.layout import cell_dir, probes_dir
from records.schema import write_document, write_table

from ..cli import resolve_device
from ..store import run_metadata
from .checkpoints import DatasetCache, load_cell, stored_prediction_gap
from .embeddings import PROJECTION_SEED, TSNE_MAX_POINTS, cell_embeddings, sample_classes
from .robustness import NOISE_LEVELS, NOISE_SEED, robustness_curves

__all__ = ["PROBE_FILES", "ProbeRecords", "measure_probes", "probe_cells"]

PROBE_FILES = ("robustness.csv", "silhouettes.csv", "embeddings.csv", "probed_cells.csv")
"""The CSVs of a measurement, beside ``meta.json``."""


@dataclass
class ProbeRecords:
    """What :func:`measure_probes` wrote: the ``folder`` (``<run>/probes``), the cells measured (``"<fusion> seed
    <k>"``), and ``reason`` why nothing was measured (None when the cells were)."""

    folder: Path
    cells: list[str]
    reason: str | None = None


def probe_cells(records: pd.DataFrame, cell_seeds: int | None) -> pd.DataFrame:
    """The records probed: those of trained (not failed) cells on the run's own labels (``sample_comparable``),
    the first ``cell_seeds`` seeds (in seed order) of
    each fusion, fusions in their order in ``records``; every trained seed when ``cell_seeds`` is None."""
    trained, _ = sample_comparable(records[~failed_cells(records)])
    if trained.empty:
        return trained
    return pd.concat([trained[trained["fusion"] == fusion].sort_values("seed").head(cell_seeds or len(trained))
                      for fusion in dict.fromkeys(trained["fusion"])])


def measure_probes(
    run_folder: str | Path, device: str | torch.device = "auto", cell_seeds: int | None = 1,
    datasets: DatasetCache | None = None,
) -> ProbeRecords:
    """Measure robustness and embeddings of the run in ``run_folder`` from its checkpoints and write them under
    ``<run_folder>/probes/`` (see the module docstring); returns what was written.

    Args:
        run_folder: a ``benchmarks.run`` output folder (``runs.csv`` and ``cells/``). A folder holding several
            modality settings is probed on the setting the report's statistics use (``primary_setting``).
        device: where the models run: ``auto``, ``cpu``, ``cuda`` or ``cuda:K``, or a ``torch.device``.
        cell_seeds: seeds per fusion (the first ones), a positive count; None for every trained seed.
        datasets: the datasets already in memory (``DatasetCache.holding``: the run that just trained), so the
            probes read none again; default: each loaded from its stored description.

    A run that cannot be probed (no trained cell, a cell without ``checkpoint.pt``, stored weights that no longer
    fit the code or dataset) is not an error here: ``meta.json`` then holds the ``reason`` (also returned), any
    older probe CSVs are removed, and the report says why the part is absent.

    Raises:
        FileNotFoundError / ValueError: ``run_folder`` is not a run folder; ``cell_seeds`` is not a positive count;
            the cells were tested on different test samples.
        records.cli.UsageError: ``device`` is not available.
        OSError: the probes folder is not writable.
        benchmarks.train.Diverged: a model's output is not finite on the test split or a perturbed copy of it.
    """
    if cell_seeds is not None and (isinstance(cell_seeds, bool) or not isinstance(cell_seeds, int)
                                   or cell_seeds < 1):
        raise ValueError(f"cell_seeds {cell_seeds!r}: expected a positive count, or None for every seed")
    run = load_run(run_folder)
    device = resolve_device(device) if isinstance(device, str) else torch.device(device)
    folder = probes_dir(run.path)
    check_writable(folder)
    (folder / "meta.json").unlink(missing_ok=True)  # written last: absent while the CSVs are being replaced
    records, _ = primary_setting(run.records)
    rows = probe_cells(records, cell_seeds)
    described = {"cell_seeds": cell_seeds, "noise_levels": list(NOISE_LEVELS), "noise_seed": NOISE_SEED,
                 "projection_seed": PROJECTION_SEED, "projected_samples_at_most": TSNE_MAX_POINTS}

    def not_measured(reason: str) -> ProbeRecords:
        for name in PROBE_FILES:
            (folder / name).unlink(missing_ok=True)
        write_document(folder / "meta.json", run_metadata(device, **described, reason=reason))
        return ProbeRecords(folder, [], reason)

    if rows.empty:
        return not_measured("no cell trained")
    folders = [cell_dir(run.path, row["fusion"], row["config_hash"], int(row["seed"])) for _, row in rows.iterrows()]
    missing = [f"{row['fusion']} seed {row['seed']}" for (_, row), path in zip(rows.iterrows(), folders)
               if not (path / "checkpoint.pt").is_file()]
    if missing:
        return not_measured(f"no checkpoint.pt for {', '.join(missing)}")

    datasets, classes = datasets or DatasetCache(), None
    curves, silhouettes, embeddings, cells = [], [], [], []
    for (_, row), path in zip(rows.iterrows(), folders):
        try:
            cell = load_cell(path, datasets, device)
        except ValueError as error:
            return not_measured(str(error))
        cell_classes = sample_classes(cell.data.test.labels.numpy(), cell.data.task)
        if classes is None:
            classes = cell_classes
        elif not np.array_equal(classes.index, cell_classes.index):
            raise ValueError(f"{row['fusion']} seed {row['seed']} was tested on other samples than the first cell")
        evaluation = cell.evaluate(keep_states=True)
        cells.append({"fusion": cell.fusion, "seed": cell.seed, "config_hash": row["config_hash"],
                      "reproduction_gap": stored_prediction_gap(path, evaluation)})
        cell_silhouettes, cell_points = cell_embeddings(cell, evaluation.states, classes)
        silhouettes.append(cell_silhouettes)
        embeddings.append(cell_points)
        curves.append(robustness_curves(cell, clean=evaluation))
    frames = {"robustness.csv": pd.concat(curves, ignore_index=True),
              "silhouettes.csv": pd.concat(silhouettes, ignore_index=True),
              "embeddings.csv": pd.concat(embeddings, ignore_index=True), "probed_cells.csv": pd.DataFrame(cells)}
    for name in PROBE_FILES:
        write_table(folder / name, frames[name])
    write_document(folder / "meta.json", run_metadata(
        device, **described, task=run.task, classes={"description": classes.meaning, "names": classes.names}))
    return ProbeRecords(folder, [f"{c['fusion']} seed {c['seed']}" for c in cells])
