"""The folders a run writes, and the one name the runner and the report both build: a cell's folder.

A run folder (``--out``) holds ``meta.json`` (command, package versions, git commit, device, time), ``runs.csv``
(one row per fusion x seed), ``table.tex`` / ``table.md`` / figures, ``report/``, and one folder per cell:

    cells/<fusion>-<config_hash>/seed<k>/
        config.json       the cell's configuration (``CellConfig.as_dict`` and the seed), written first
        record.json       the cell's row of runs.csv; written last: with ``status`` "done" it marks the cell
                          done, with "failed" (the ``error``, NaN metrics) a cell to try again
        predictions.csv   per test sample: id, label, prediction (regression) or predicted class + logits;
                          multi-label: label_<name>, prediction_<name>, logit_<name> per label
        curves.csv        per epoch: train/valid loss, valid metrics, learning rate, seconds
        checkpoint.pt     best-validation weights with what is needed to rebuild the model
        state.pt          resumable training state while the cell runs (removed when it is done; kept when it
                          failed, so that a retry resumes from its last finished epoch)

``fusion`` is the cell's label (a registered fusion name, or a variant's label such as
``grf:order=audio-text-vision``). A cell that failed in training has only ``config.json``, ``record.json`` and
perhaps ``state.pt`` (one whose configuration does not fit the data has no folder: its record is in runs.csv).
The ``config_hash`` (``benchmarks.config.CellConfig.hash``) covers everything that determines a result, so a
folder never holds a result of other inputs. Every file is written atomically (``records.io``); the columns and
versions of each are in ``records.schema``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["cell_dir", "probes_dir"]


def cell_dir(out: str | Path, fusion: str, config_hash: str, seed: int) -> Path:
    """The folder of one (fusion, configuration, seed) cell under the run folder ``out``."""
    return Path(out) / "cells" / f"{fusion}-{config_hash}" / f"seed{seed}"


def probes_dir(out: str | Path) -> Path:
    """The folder of the run ``out``'s probes (``benchmarks.probe``: robustness.csv, silhouettes.csv,
    embeddings.csv, probed_cells.csv and meta.json, measured from the cells' checkpoints; read by the report)."""
    return Path(out) / "probes"
