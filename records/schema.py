"""The schema of every record the suite writes: its columns (or keys), their types and units, and its version.

Records are the files a command writes to be read again: by the report, by a resumed run, by ``--params tuned``,
or by a person with pandas. Each kind (a CSV or JSON file name) has a ``SCHEMA_VERSION``; a reader refuses a
version newer than it knows with one line::

    records in results/mosi/runs.csv were written by schema version 3; this fusionbench reads up to 2: upgrade
    fusionbench

and upgrades an older one, so that the rest of the code sees today's format only. Version 1 is every record
written before records had a version; version 2 is today's format.

Where the version is kept
-------------------------
* A CSV table holds a ``schema_version`` column, on every row. A folder-level stamp (in ``meta.json``) would
  describe the folder, not the file: ``meta.json`` is rewritten when a run starts while its cells and tables stay
  from earlier runs; a resumed run gathers cells stored by an earlier version; a shared grid gathers the records
  of every machine, each with its own version; and tables are copied and concatenated on their own. A column
  travels with the rows it describes (rows of several versions, e.g. two ``runs.csv`` concatenated by hand,
  are upgraded each from its own version). An absent column, or an empty value, is version 1.
* A cell's record (``record.json``, and the same dict as a ``runs.csv`` row and in a shared grid's study) holds
  ``schema_version`` too. It also versions the cell's other files, written by the same process just before it:
  ``predictions.csv``, ``curves.csv``, ``config.json``, ``checkpoint.pt`` (a cell without ``record.json`` is
  not finished; a folder made by hand without one is read as version 1). These per-sample and per-epoch files
  have no version column, so their columns are exactly the data.
* Any other JSON document holds ``"schema": {"kind": "<kind>", "version": N}`` (``meta.json``, the tuned
  parameters ``best_params/<dataset>/<fusion>.json``).

Writers: ``write_table(path, frame)`` checks that ``frame`` has the columns its kind requires, stamps the
version and writes atomically (``records.io``); a record carries ``RECORD_VERSION`` from where it is built;
``document_stamp(kind)`` is the ``schema`` entry of a JSON document. Readers: ``read_table``, ``read_record``,
``read_document``, ``upgrade_record``. A missing required column is one error naming the file and the column.
Files the report derives from records (``report/stats/*.csv``) are not records: they are computed again by every
report, and their columns are documented by the functions that compute them.

Upgrades from version 1
-----------------------
* ``runs.csv``, ``record.json``, ``accuracy.csv``: version 1 records predate failed cells (no ``status`` or
  ``error``): every record is a finished cell, so ``status`` is "done" and ``error`` empty. Metric columns that
  version 1 did not compute (e.g. ``f1_macro_has0``) stay absent: the report uses the metrics a file has.
* every other kind: version 1 has today's columns without the version stamp.

The schemas
-----------
Every column (or key) with its type, unit and meaning; ``<...>`` names a family of columns; *required*: a file
without it is refused. Other columns are kept as they are.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .io import atomic_write_csv, atomic_write_json

__all__ = [
    "RECORD_VERSION",
    "SCHEMAS",
    "SCHEMA_VERSION",
    "VERSION_COLUMN",
    "Column",
    "Schema",
    "SchemaError",
    "describe",
    "document_stamp",
    "read_document",
    "read_record",
    "read_table",
    "record_version",
    "upgrade_record",
    "write_document",
    "write_table",
]

VERSION_COLUMN = "schema_version"  # the version column of a CSV table and the version key of a cell's record
RECORD_VERSION = 2  # the version of a cell's record and of the files beside it, and of the tables of records


class SchemaError(ValueError):
    """A record this fusionbench cannot read: written by a newer version, or lacking a required column."""


@dataclass(frozen=True)
class Column:
    """One column of a CSV (or key of a JSON document). ``name``: the column's name, or a pattern with ``<...>``
    for a family of columns (never required); ``type``: how to read its values; ``unit``: "" when none;
    ``instead``: the prefix of a family of columns that a file may hold in place of a required column (a
    multi-label task's ``label_<name>`` columns for ``label``); "" when none."""

    name: str
    type: str
    unit: str
    doc: str
    required: bool = False
    instead: str = ""


WHERE = {  # what holds the version of a kind of record
    "column": "its schema_version column",
    "record": "its schema_version key",
    "cell": "the schema_version of the cell's record.json",
    "document": "its schema entry",
}

Upgrade = Callable[[MutableMapping], None]  # a record or a DataFrame, changed in place from version v to v + 1


@dataclass(frozen=True)
class Schema:
    """The schema of one kind of record. ``kind``: its file name (the key of ``SCHEMAS``); ``version``: what the
    writers stamp today; ``where``: what holds the version (a key of ``WHERE``); ``upgrades[v]`` turns version
    ``v`` into ``v + 1`` (identity when absent)."""

    kind: str
    version: int
    where: str
    doc: str
    columns: tuple[Column, ...]
    upgrades: dict[int, Upgrade] = field(default_factory=dict)

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def upgrade(self, table: MutableMapping, version: int) -> None:
        """Bring ``table`` (a record dict or a DataFrame of one version) from ``version`` to ``self.version``."""
        for step in range(version, self.version):
            if step in self.upgrades:
                self.upgrades[step](table)


def _finished_cells(table: MutableMapping) -> None:
    """1 -> 2: version 1 predates failed cells; each of its records is a finished cell."""
    if "status" not in table:
        table["status"] = "done"
    if "error" not in table:
        table["error"] = ""


# --------------------------------------------------------------------------------------------- the columns

_RECORD = (
    Column("fusion", "str", "", "the cell's label: a registered fusion, or a variant's label (e.g. "
           "'grf:order=audio-text-vision'); names the cell folder", required=True),
    Column("model", "str", "", "the registered fusion the label builds"),
    Column("seed", "int", "", "the training seed", required=True),
    Column("protocol", "str", "", "the training protocol that produced the record: 'shared' or 'reference' "
           "(``--protocol``); absent in records written before protocols: 'shared'"),
    Column("labels", "str", "", "the labels the cell was trained and tested on: 'raw', or 'rounded' to integers (the "
           "reference protocol's Acc-7 cell, ``<label>[acc7]``); absent in older records: 'raw'"),
    Column("dataset", "str", "", "the dataset's registered name"),
    Column("task", "str", "", "the dataset's task, a ``tasks`` registration (absent in version 1 records: their "
           "metric columns tell it)"),
    Column("modalities", "str", "", "the modalities used, comma-separated, in input order"),
    Column("n_modalities", "int", "", "number of modalities used"),
    Column("config_hash", "str", "", "10 hex digits covering everything that determines the result (configuration,"
           " data fingerprint, autocast, code version); names the cell folder", required=True),
    Column("n_train", "int", "samples", "training split size"),
    Column("n_valid", "int", "samples", "validation split size"),
    Column("n_test", "int", "samples", "test split size"),
    Column("status", "str", "", "'done', or 'failed' (metrics NaN, ``error`` says why)", required=True),
    Column("<metric>", "float", "the metric's", "one column per metric of the dataset's task, on the test split "
           "with the best-validation weights; NaN when failed or undefined (e.g. corr of constant predictions). "
           "Names, units, directions and definitions: the task's registration (``tasks``)"),
    Column("valid_<main metric>", "float", "the metric's", "the task's main metric on the validation split at the "
           "best epoch"),
    Column("valid_loss", "float", "the task's loss", "validation loss at the best epoch"),
    Column("params", "int", "parameters", "trainable parameters of the whole model (fusion and heads)"),
    Column("train_seconds", "float", "s", "wall-clock of the training epochs, validation included"),
    Column("epochs", "int", "epochs", "epochs run (early stopping may end sooner); for a failed cell the epoch it "
           "failed in, NaN when it failed before training"),
    Column("best_epoch", "int", "epoch", "the epoch of the best validation score (the weights in checkpoint.pt)"),
    Column("device", "str", "", "where the cell trained: cpu, cuda:K"),
    Column("error", "str", "", "why the cell failed, one line; empty when done"),
    Column(VERSION_COLUMN, "int", "", "the schema version of the row (absent: 1)"),
)

_PREDICTIONS = (
    Column("id", "str or int", "", "the test sample's id, as the dataset names it", required=True),
    Column("label", "float or int", "label units / class", "the true label: regression target or class index "
           "(a multi-label task has label_<name> instead)", required=True, instead="label_"),
    Column("prediction", "float or int", "label units / class", "regression: the predicted value; "
           "classification: the predicted class (argmax of the logits) (a multi-label task has prediction_<name> "
           "instead)", required=True, instead="prediction_"),
    Column("logit_<k>", "float", "logit", "classification only: the model's output for class k, before softmax"),
    Column("label_<name>", "int", "", "multi-label tasks: 1 where the label <name> is present in the sample, else 0 "
           "(one column per label, in label order)"),
    Column("prediction_<name>", "int", "", "multi-label tasks: 1 where label <name> is predicted present (its "
           "logit > 0), else 0"),
    Column("logit_<name>", "float", "logit", "multi-label tasks: the model's output for label <name>, before the "
           "sigmoid"),
)

_CURVES = (
    Column("epoch", "int", "epoch", "1, 2, ...", required=True),
    Column("train_loss", "float", "the task's loss", "mean training loss of the epoch (auxiliary losses included)",
           required=True),
    Column("valid_loss", "float", "the task's loss", "validation loss after the epoch", required=True),
    Column("valid_<metric>", "float", "the metric's", "each metric of the task on the validation split"),
    Column("lr", "float", "", "learning rate at the end of the epoch"),
    Column("seconds", "float", "s", "training wall-clock so far, validation included (cumulative)"),
)

_ABLATION = (
    Column("group", "str", "", "the switch ablated (gate, attention, context, state, weights, order, aux, "
           "layers), 'reference' for full GRF", required=True),
    Column("fusion", "str", "", "the variant's label", required=True),
    Column("n_seeds", "int", "seeds", "finished seeds of the variant"),
    Column("<metric>_mean", "float", "the metric's", "mean over the seeds, one per metric of the task"),
    Column("<metric>_std", "float", "the metric's", "sample standard deviation over the seeds"),
    Column("diff", "float", "the metric's", "mean paired difference of the main metric, variant - grf"),
    Column("t_pvalue", "float", "", "paired t-test of the main metric against grf"),
    Column("t_pvalue_holm", "float", "", "the same, Holm-adjusted over every variant x metric"),
    Column("marker", "str", "", "significance stars of the Holm p-value (*, **, ***)"),
    Column("params", "int", "parameters", "trainable parameters"),
    Column("flops", "float", "FLOPs per sample", "forward FLOPs per sample (matrix products, multiply-add = 2)"),
)

_ORDER = (
    Column("metric", "str", "", "the main metric tested"),
    Column("orders", "int", "", "modality orders compared"),
    Column("seeds", "int", "seeds", "seeds (blocks) with a value for every order"),
    Column("friedman_statistic", "float", "", "Friedman's chi-square across the orders"),
    Column("friedman_pvalue", "float", "", "its p-value"),
    Column("rank[<label>]", "float", "rank", "average rank of each order (1 = best)"),
)

_SKIPPED = (
    Column("setting", "str", "", "the modality setting (e.g. 'n3-fou-fac-kar', 'n8')", required=True),
    Column("n_modalities", "int", "", "modalities in the setting", required=True),
    Column("fusion", "str", "", "the fusion spec refused", required=True),
    Column("reason", "str", "", "why it cannot be built at this count (e.g. TFN's size cap)", required=True),
)

_SCALING = (
    Column("fusion", "str", "", "fusion spec", required=True),
    Column("n_modalities", "int", "", "number of modalities n", required=True),
    Column("seq_len", "int", "steps", "steps per modality", required=True),
    Column("d_model", "int", "", "model width", required=True),
    Column("batch_size", "int", "samples", "samples per batch", required=True),
    Column("device", "str", "", "cpu or cuda", required=True),
    Column("status", "str", "", "ok, over_budget, oom, over_cap or error", required=True),
    Column("<measure>", "float", "the measure's", "one column per cost measure (params, flops, fwd_ms, "
           "train_peak_mib, ...) and the sweep's settings: their names, units and how each is measured are "
           "documented once, with the measures (``benchmarks.scaling``), and written into the README beside every "
           "scaling.csv"),
)

_EXPONENTS = (
    Column("fusion", "str", "", "fusion spec", required=True),
    Column("seq_len", "int", "steps", "the setting's steps per modality"),
    Column("d_model", "int", "", "the setting's model width"),
    Column("batch_size", "int", "samples", "the setting's batch size"),
    Column("device", "str", "", "the setting's device"),
    Column("measure", "str", "", "the scaling.csv column fitted", required=True),
    Column("k", "float", "", "fitted exponent of measure ~ n^k (least squares on log-log)", required=True),
    Column("ci_low", "float", "", "lower end of k's confidence interval (95%)"),
    Column("ci_high", "float", "", "upper end"),
    Column("stderr", "float", "", "standard error of k"),
    Column("r2", "float", "", "coefficient of determination of the log-log fit"),
    Column("points", "int", "", "modality counts fitted"),
    Column("n_min", "int", "", "smallest modality count fitted"),
    Column("n_max", "int", "", "largest modality count fitted"),
)

_SPEED = (
    Column("fusion", "str", "", "fusion, with the papers' settings", required=True),
    Column("params", "int", "parameters", "parameters of the regression predictor"),
    Column("train_ms", "float", "ms", "training step per batch, median over the repeats", required=True),
    Column("train_iqr_ms", "float", "ms", "its interquartile range"),
    Column("eval_ms", "float", "ms", "eval forward per batch, median", required=True),
    Column("eval_iqr_ms", "float", "ms", "its interquartile range"),
    Column("threads", "int", "", "torch CPU threads"),
    Column("train_flops", "int", "FLOPs", "counted FLOPs of one training step (FlopCounterMode: forward and backward)"),
    Column("eval_flops", "int", "FLOPs", "counted FLOPs of one eval forward"),
    Column("train_gflops", "float", "GFLOP/s", "achieved rate of the training step: train_flops / median time"),
    Column("eval_gflops", "float", "GFLOP/s", "achieved rate of the eval forward"),
    Column("dtype", "str", "", "float32, or bfloat16 (bf16 autocast)"),
    Column("matmul_gflops", "float", "GFLOP/s", "dense torch.mm rate of the device, measured in the same run, "
                                                 "threads and dtype"),
    Column("train_util", "float", "fraction", "train_gflops / matmul_gflops"),
    Column("eval_util", "float", "fraction", "eval_gflops / matmul_gflops"),
    Column("compiled", "bool", "", "timed through torch.compile (--compile); FLOPs counted eagerly"),
)

_PROFILE = (
    Column("fusion", "str", "", "fusion, with the papers' settings", required=True),
    Column("step", "str", "", "train (training step) or eval (eval forward)", required=True),
    Column("op", "str", "", "the operator (torch.profiler key)", required=True),
    Column("kind", "str", "", "its kind (benchmarks.profile.KINDS): matmul, attention, element-wise, ..."),
    Column("calls", "float", "calls / step", "calls per step"),
    Column("self_cpu_ms", "float", "ms / step", "CPU time in the operator itself, per step", required=True),
    Column("self_device_ms", "float", "ms / step", "CUDA kernel time of the operator itself, per step (0 on CPU)"),
    Column("share", "float", "fraction", "share of the step's operator self time (device time on CUDA)"),
)

_STUDY_TIME = (
    Column("fusion", "str", "", "fusion, with the papers' settings", required=True),
    Column("params", "int", "parameters", "parameters of the predictor"),
    Column("epoch_s", "float", "s", "wall-clock of the last trained epoch (training and validation)", required=True),
    Column("first_epoch_s", "float", "s", "wall-clock of the first epoch (with one-off costs)"),
    Column("max_epochs", "int", "epochs", "the protocol's epoch bound"),
    Column("device", "str", "", "the device trained on"),
    Column("threads", "int", "", "torch CPU threads"),
    Column("amp", "bool", "", "bf16 autocast"),
)

_REFERENCE = (
    Column("model", "str", "", "our model checked", required=True),
    Column("reference", "str", "", "the reference code's URL"),
    Column("checkout", "str", "", "the local checkout imported"),
    Column("commit", "str", "", "its git commit ('' without git)"),
    Column("own_layout", "str", "", "the input layout the reference code uses itself"),
    Column("max_abs_diff_<layout>", "float", "output units", "largest absolute output difference, per layout"),
    Column("goal", "float", "output units", "the agreement goal"),
    Column("agrees", "bool", "", "every difference below the goal", required=True),
    Column("params_ours", "int", "parameters", "our model's parameters"),
    Column("params_reference", "int", "parameters", "the reference model's parameters"),
    Column("train_ms_ours", "float", "ms", "our training step, median of interleaved timings"),
    Column("train_iqr_ms_ours", "float", "ms", "its interquartile range"),
    Column("train_ms_reference", "float", "ms", "the reference's training step, median"),
    Column("train_iqr_ms_reference", "float", "ms", "its interquartile range"),
    Column("ratio", "float", "", "train_ms_ours / train_ms_reference"),
    Column("threads", "int", "", "torch CPU threads"),
)

_TRIALS = (
    Column("number", "int", "", "the trial's number in its study", required=True),
    Column("value", "float", "the objective's", "the best validation score of the trial (lower is better)",
           required=True),
    Column("datetime_start", "timestamp", "", "when the trial started"),
    Column("datetime_complete", "timestamp", "", "when it ended"),
    Column("duration", "timedelta", "", "its wall-clock"),
    Column("params_<name>", "as searched", "the parameter's", "one column per searched hyperparameter"),
    Column("state", "str", "", "COMPLETE, PRUNED, FAIL, RUNNING or WAITING", required=True),
)

_META = (
    Column("command", "list of str", "", "the command line", required=True),
    Column("time_utc", "ISO 8601 time", "", "when the command started (UTC)", required=True),
    Column("host", "str", "", "the machine's name"),
    Column("platform", "str", "", "operating system"),
    Column("device", "str", "", "the torch device"),
    Column("device_name", "str", "", "the accelerator's name, or the CPU's model and thread count"),
    Column("git", "object", "", "{commit, dirty} of the code that ran (null outside a checkout)", required=True),
    Column("versions", "object", "", "python and the versions of the packages that determine results",
           required=True),
    Column("<extra>", "JSON", "", "what the command adds: a run its spec, dataset, data summary, cells "
           "(configuration and hash per label), the protocol its cells train under and invalid fusions; speed and "
           "reference their settings"),
    Column("schema", "object", "", '{"kind": "meta.json", "version": N}'),
)

_BEST_PARAMS = (
    Column("fusion", "str", "", "the fusion tuned", required=True),
    Column("dataset", "str", "", "the dataset tuned on", required=True),
    Column("study_name", "str", "", "the Optuna study"),
    Column("storage", "str", "", "where the study lives (no password)"),
    Column("metric", "str", "", "the objective: validation mae (regression) or validation loss"),
    Column("value", "float", "the metric's", "the best trial's objective"),
    Column("trial", "int", "", "the best trial's number"),
    Column("trials", "object", "", "trial counts per state"),
    Column("params", "object", "", "the best trial's searched parameters, as Optuna names them"),
    Column("config", "object", "", "the configuration override ``benchmarks.run --params`` merges", required=True),
    Column("cell", "object", "", "the best trial's full cell configuration"),
    Column("config_hash", "str", "", "its hash"),
    Column("time_utc", "ISO 8601 time", "", "when the file was written"),
    Column("schema", "object", "", '{"kind": "best_params", "version": N}'),
)

_PROBE_CELL = (
    Column("fusion", "str", "", "the cell's label, as in runs.csv", required=True),
    Column("seed", "int", "", "the training seed", required=True),
)

_PROBE_STATE = (
    *_PROBE_CELL,
    Column("step", "int", "", "the state's number, 1-based (GRF: one per fusion step; other fusions: 1)",
           required=True),
    Column("state", "str", "", "'step k: a+b+...' (the modalities fused so far) or 'final'", required=True),
)

_PROBED_CELLS = (
    *_PROBE_CELL,
    Column("config_hash", "str", "", "the cell's hash: a report uses the measure only while runs.csv holds this "
           "cell", required=True),
    Column("reproduction_gap", "float", "output units", "largest absolute difference between the checkpoint's "
           "test outputs now and the cell's predictions.csv (~1e-7: reproduced; NaN without predictions.csv)",
           required=True),
)

_ROBUSTNESS = (
    *_PROBE_CELL,
    Column("modality", "str", "", "the modality perturbed", required=True),
    Column("perturbation", "str", "", "'noise' (Gaussian, level x the train split's feature std, seeded) or "
           "'drop' (the modality's features zeroed)", required=True),
    Column("level", "float", "feature std", "the noise level (0: the clean test split); NaN for 'drop'",
           required=True),
    Column("metric", "str", "", "the task's main metric", required=True),
    Column("value", "float", "the metric's", "the metric on the perturbed test split", required=True),
)

_SILHOUETTES = (
    *_PROBE_STATE,
    Column("n_samples", "int", "samples", "test samples", required=True),
    Column("dim", "int", "", "the state's width", required=True),
    Column("silhouette", "float", "", "silhouette score by class in the full state space, in [-1, 1]; NaN with "
           "fewer than 2 classes", required=True),
)

_EMBEDDINGS = (
    *_PROBE_STATE,
    Column("method", "str", "", "'PCA' or 't-SNE'", required=True),
    Column("id", "str or int", "", "the test sample's id", required=True),
    Column("class", "int", "", "the sample's class (the task's classes; names in the probes' meta.json)",
           required=True),
    Column("x", "float", "", "first projected coordinate", required=True),
    Column("y", "float", "", "second projected coordinate", required=True),
)

SCHEMAS: dict[str, Schema] = {schema.kind: schema for schema in (
    Schema("runs.csv", RECORD_VERSION, "column", "one row per (fusion, seed) cell of a run: the cells' records",
           _RECORD, {1: _finished_cells}),
    Schema("record.json", RECORD_VERSION, "record", "one cell's record, written last: it marks the cell done "
           "or failed; the same keys as a runs.csv row. Also in a shared grid's study (the trial's user attribute "
           "'record')", _RECORD, {1: _finished_cells}),
    Schema("accuracy.csv", RECORD_VERSION, "column", "accuracy against the number of modalities "
           "(benchmarks.accuracy_scaling): the runs.csv records of every setting, plus two columns",
           (*_RECORD, Column("setting", "str", "", "the modality setting (e.g. 'n3-fou-fac-kar')", required=True),
            Column("flops", "float", "FLOPs per sample", "forward FLOPs per sample of the fusion at this setting; "
                   "NaN for a fusion without a finished seed")), {1: _finished_cells}),
    Schema("predictions.csv", RECORD_VERSION, "cell", "per test sample of one cell, in the split's order",
           _PREDICTIONS),
    Schema("curves.csv", RECORD_VERSION, "cell", "per training epoch of one cell", _CURVES),
    Schema("ablation.csv", 2, "column", "one row per GRF variant (benchmarks.ablate)", _ABLATION),
    Schema("order.csv", 2, "column", "Friedman test of the main metric across modality orders (benchmarks.ablate); "
           "no row when fewer than 3 orders or 2 seeds could be compared", _ORDER),
    Schema("skipped.csv", 2, "column", "fusions refused at a modality count (benchmarks.accuracy_scaling)",
           _SKIPPED),
    Schema("scaling.csv", 2, "column", "cost against the number of modalities (benchmarks.scaling): one row per "
           "fusion x n x setting", _SCALING),
    Schema("exponents.csv", 2, "column", "fitted cost ~ n^k per fusion, setting and measure (benchmarks.scaling)",
           _EXPONENTS),
    Schema("speed.csv", 2, "column", "training-step and forward latency per fusion (benchmarks.speed)", _SPEED),
    Schema("study_time.csv", 2, "column", "seconds per epoch per fusion at the paper settings on MOSI shapes "
           "(benchmarks.study_time)", _STUDY_TIME),
    Schema("profile.csv", 2, "column", "operator self time per fusion and step (benchmarks.profile)", _PROFILE),
    Schema("reference.csv", 2, "column", "our models against their authors' code (benchmarks.reference)",
           _REFERENCE),
    Schema("trials.csv", 2, "column", "one row per trial of a tuning study (benchmarks.tune), from Optuna's "
           "trials_dataframe", _TRIALS),
    Schema("meta.json", 2, "document", "what makes a command's output reproducible (run, speed, reference)",
           _META),
    Schema("best_params", 2, "document", "best_params/<dataset>/<fusion>.json: a tuning study's best "
           "parameters (benchmarks.tune), read by benchmarks.run --params", _BEST_PARAMS),
    Schema("probed_cells.csv", 2, "column", "probes/: the cells benchmarks.probe measured from their checkpoints",
           _PROBED_CELLS),
    Schema("robustness.csv", 2, "column", "probes/: the main metric with one modality noisy or dropped at test "
           "time, per measured cell (benchmarks.probes.robustness)", _ROBUSTNESS),
    Schema("silhouettes.csv", 2, "column", "probes/: class separability of each fused state on the test set, per "
           "measured cell (benchmarks.probes.embeddings)", _SILHOUETTES),
    Schema("embeddings.csv", 2, "column", "probes/: 2-D projections of the fused states of at most 500 seeded test "
           "samples, per measured cell and state (benchmarks.probes.embeddings)", _EMBEDDINGS),
)}

SCHEMA_VERSION: dict[str, int] = {kind: schema.version for kind, schema in SCHEMAS.items()}


# --------------------------------------------------------------------------------------------- reading and writing


def _schema(kind: str) -> Schema:
    try:
        return SCHEMAS[kind]
    except KeyError:
        raise KeyError(f"no schema for {kind!r}; records: {', '.join(SCHEMAS)}") from None


def _check_version(version, schema: Schema, where) -> int:
    """``version`` as an int (None: 1); ``SchemaError`` when it is not one or newer than ``schema.version``."""
    if version is None:
        return 1
    if isinstance(version, bool) or not isinstance(version, numbers.Real) or version != int(version) or version < 1:
        raise SchemaError(f"records in {where} hold the schema version {version!r}; expected a positive integer")
    if version > schema.version:
        raise SchemaError(f"records in {where} were written by schema version {int(version)}; this fusionbench reads "
                          f"up to {schema.version}: upgrade fusionbench")
    return int(version)


def _check_columns(columns, schema: Schema, where) -> None:
    """``SchemaError`` naming ``where`` and the first required column (or key) missing from ``columns`` (and,
    where the column has an ``instead`` family, without any column of that family)."""
    noun = "key" if schema.where in ("record", "document") else "column"
    instead = {column.name: column.instead for column in schema.columns}
    for name in schema.required:
        if name not in columns and not (instead[name] and any(str(c).startswith(instead[name]) for c in columns)):
            raise SchemaError(f"{where} lacks the {noun} {name!r}, which {schema.kind} (schema version "
                              f"{schema.version}) requires")


def write_table(path: str | Path, frame: pd.DataFrame) -> None:
    """Write ``frame`` to ``path`` atomically as the table its file name names (``runs.csv``, ``scaling.csv``, ...).

    Raises ``SchemaError`` when ``frame`` lacks a required column, ``KeyError`` for a file name without a schema.
    A table versioned by a column gets ``schema_version`` (last); a cell's file (versioned by its record) is
    written as it is.
    """
    path = Path(path)
    schema = _schema(path.name)
    _check_columns(frame.columns, schema, f"the table written to {path}")
    if schema.where == "column":
        frame = frame.drop(columns=VERSION_COLUMN, errors="ignore").assign(**{VERSION_COLUMN: schema.version})
    atomic_write_csv(path, frame)


def read_table(path: str | Path, version: int | None = None) -> pd.DataFrame:
    """Read the table at ``path`` (its schema by file name) in today's format.

    ``version``: for a cell's file (``predictions.csv``, ``curves.csv``), the cell's version
    (:func:`record_version`); a table with a version column reads it per row. Older rows are upgraded (each from
    its own version), and ``schema_version`` then holds today's version. Raises ``SchemaError`` (one line naming
    the file) for a newer version or a missing required column, ``FileNotFoundError`` without the file.
    """
    path = Path(path)
    schema = _schema(path.name)
    frame = pd.read_csv(path)
    if schema.where != "column":
        schema.upgrade(frame, _check_version(version, schema, path))
    else:
        stamped = frame[VERSION_COLUMN] if VERSION_COLUMN in frame.columns else pd.Series(None, index=frame.index)
        versions = [_check_version(None if pd.isna(v) else v, schema, path) for v in stamped]
        if len(set(versions)) <= 1:  # one version (no row: the header's, i.e. 1 without the column)
            schema.upgrade(frame, versions[0] if versions else schema.version if VERSION_COLUMN in frame else 1)
        else:  # rows of several versions: each group without the columns only the others have
            groups = []
            for v in sorted(set(versions)):
                group = frame[[x == v for x in versions]].dropna(axis=1, how="all")
                schema.upgrade(group, v)
                groups.append(group)
            frame = pd.concat(groups).sort_index()
        frame[VERSION_COLUMN] = schema.version
    _check_columns(frame.columns, schema, path)
    return frame


def upgrade_record(record: dict, where) -> dict:
    """A cell's record (``record.json``, or a shared grid's copy) in today's format: a copy, upgraded from its
    ``schema_version`` (absent: 1). ``where``: what holds it, for the error. Raises ``SchemaError`` for a newer
    version or a missing required key."""
    schema = SCHEMAS["record.json"]
    record = dict(record)
    schema.upgrade(record, _check_version(record.get(VERSION_COLUMN), schema, where))
    record[VERSION_COLUMN] = schema.version
    _check_columns(record, schema, where)
    return record


def read_record(folder: str | Path) -> dict | None:
    """The record of the cell in ``folder`` (done or failed, see ``status``), upgraded to today's format; None when
    the cell has not ended (no ``record.json``). Raises ``SchemaError`` as :func:`upgrade_record`."""
    path = Path(folder) / "record.json"
    return upgrade_record(json.loads(path.read_text()), path) if path.is_file() else None


def record_version(folder: str | Path) -> int:
    """The schema version of the files of the cell in ``folder``: its ``record.json``'s (1 without one, or without
    a version in it). Raises ``SchemaError`` for a version newer than this fusionbench reads."""
    path = Path(folder) / "record.json"
    stored = json.loads(path.read_text()).get(VERSION_COLUMN) if path.is_file() else None
    return _check_version(stored, SCHEMAS["record.json"], path)


def document_stamp(kind: str) -> dict:
    """The ``schema`` entry of a JSON document of ``kind`` (``meta.json``, ``best_params``)."""
    return {"kind": kind, "version": _schema(kind).version}


def write_document(path: str | Path, document: dict, kind: str | None = None) -> None:
    """Write ``document`` to ``path`` atomically as JSON with its ``schema`` entry; ``kind`` defaults to the file
    name. Raises ``SchemaError`` when a required key is missing."""
    path = Path(path)
    kind = kind or path.name
    _check_columns(document, _schema(kind), f"the document written to {path}")
    atomic_write_json(path, {**document, "schema": document_stamp(kind)})


def read_document(path: str | Path, kind: str | None = None) -> dict:
    """The JSON document at ``path`` (``kind`` defaults to its file name) in today's format; raises ``SchemaError``
    for another kind, a newer version or a missing required key, ``json.JSONDecodeError`` for a file that is
    not JSON, ``FileNotFoundError`` without the file."""
    path = Path(path)
    kind = kind or path.name
    schema = _schema(kind)
    document = json.loads(path.read_text())
    if not isinstance(document, dict):
        raise SchemaError(f"{path} holds no JSON object; expected a {kind} document")
    stamp = document.get("schema") or {}
    if stamp.get("kind", kind) != kind:
        raise SchemaError(f"{path} is a {stamp['kind']} document; expected {kind}")
    schema.upgrade(document, _check_version(stamp.get("version"), schema, path))
    document["schema"] = document_stamp(kind)
    _check_columns(document, schema, path)
    return document


def describe(kind: str | None = None) -> str:
    """The schema of ``kind`` (default: every kind) as text: each column with its type, unit and meaning."""
    lines = []
    for schema in [_schema(kind)] if kind else SCHEMAS.values():
        lines += ["", f"{schema.kind} (version {schema.version}; in {WHERE[schema.where]}): {schema.doc}"]
        for column in schema.columns:
            unit = f", {column.unit}" if column.unit else ""
            required = ", required" if column.required else ""
            lines.append(f"    {column.name} ({column.type}{unit}{required}): {column.doc}")
    return "\n".join(lines)


if __doc__:  # (None under python -OO)
    __doc__ += describe()
