"""Tune one fusion's hyperparameters with Optuna, on validation data only: ``python -m benchmarks.tune --fusion grf``.

Library: ``tune(TuneSpec(fusion="grf", ...))`` returns the best-parameters document it writes; the CLI
(``--help`` lists the options) is a thin layer over it.

* Search space: the fusion's ``search_space(trial, modality_names)``, declared next to it in ``fusions/``
  (architecture, and for GRF the auxiliary weight and modality order), plus ``protocol_space``, shared by all:
  learning rate and weight decay (log scale) and batch size. Everything else — epochs, patience, warm-up,
  pooling — comes from the preset and ``--config``, as in ``benchmarks.run``.
* Objective: the best validation score of one training run (``--train-seed``): the task's model-selection score
  (``tasks``: validation MAE for sentiment, validation loss for the others; the validation loss where the
  protocol selects by it), lower is better, named in every log line (``trial 3: validation valid_mae 0.6869 after
  7 epochs``; ``objective_metric``). ``train_cell`` gets the data with the test split replaced by the validation
  split, so tuning never reads test data. The score is reported every epoch and a ``MedianPruner`` stops trials
  below the median of earlier ones at the same epoch, once ``pruner_startup`` trials have finished and from the
  first epoch after the learning-rate warm-up. TPE draws the parameters; trial ``k`` draws with random seed
  ``--seed + k``, so one worker's study is reproducible and workers on different machines do not repeat each
  other's random start.
* Budget: ``--trials N`` is the study's total over all workers: N named units of ``benchmarks.workqueue``
  (``trial-0`` ... ``trial-{N-1}``), each run exactly once (a killed or failing trial is retried with the
  same parameters, up to twice); a later run with a larger N adds the missing ones. ``--timeout S``: a
  worker starts no trial after S seconds.
* Storage (``benchmarks.studies``): by default the SQLite file ``<out>/studies.db``; with ``--workers K`` and no
  ``--storage``, K processes on this machine (``benchmarks.workers.run_workers``, as ``benchmarks.run --workers``:
  the CPU threads split between them, a killed one started again) share the journal file
  ``<out>/studies.journal``; with
  ``--storage URL`` (e.g. PostgreSQL), every machine that runs the same command with the same storage and
  study name works on the one study. A worker that dies is noticed by the others — on a database by its
  missing heartbeats, on the journal file by its released claim lock (``benchmarks.journal_claims``) — and
  its trial runs again; one that a rerun cannot judge (claimed on another machine) is named at the end, with
  why.
* One study, one question: the study keeps, as its user attribute ``definition``, what its values depend on
  (``study_definition``: fusion, dataset, modalities, feature sizes, split sizes, objective, search space,
  the configuration that is not searched). Opening it with another raises ``ValueError`` before any trial is
  added, naming the difference: a trial of one space cannot be compared with a trial of another, and Optuna
  refuses a changed categorical parameter only once each trial runs.

Written under ``--out`` (default ``results/tune``) when the workers are done: ``best_params/<dataset>/<fusion>.json``
(value, trial, study, the searched ``params`` and the ``config`` that ``benchmarks.run --params`` merges, see
``benchmarks.tuned``) and, in ``<dataset>/<fusion>/``, ``trials.csv`` and Optuna's optimisation history and
parameter importances (``history.png``, ``importance.png``, with PDFs). Each trial keeps its configuration
(``config``), validation curve (``curve``, one row per epoch) and worker as user attributes; its duration is
Optuna's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import optuna
from optuna.distributions import distribution_to_json
from optuna.exceptions import ExperimentalWarning
from optuna.samplers import BaseSampler, TPESampler
from optuna.trial import TrialState

from fusions import fusion_class
from records.cli import ArgumentParser
from records.io import check_writable
from records.schema import write_document, write_table
from tasks import get_task

from .cli import add_data_arguments, add_training_arguments, experiment_fields, resolve_device, run_cli
from .config import CellConfig, Protocol
from .data import Dataset
from .experiment import Experiment, ExperimentSpec
from .journal_claims import Claims
from .studies import StorageSpec, open_study
from .study_definition import check_definition
from .train import Diverged, train_cell
from .tuned import DEFAULT_TUNE_OUT, best_params_path, tuned_table
from .workers import plan_workers, run_workers
from .workqueue import enqueue, last_attempts, unfinished, work


@dataclass(kw_only=True)
class TuneSpec(ExperimentSpec):
    """What to tune and where. Data and configuration as in ``benchmarks.experiment.ExperimentSpec``; ``fusion``:
    the fusion tuned; ``trials``: the study's total; ``timeout``: seconds per worker; ``storage``: an RDB URL
    (default: SQLite, or a journal file with ``workers`` > 1); ``seed``: the sampler's; ``train_seed``: every
    trial's training seed; ``out``: the output folder; ``heartbeat``: seconds between heartbeats (RDB storages);
    ``pruner_startup``: finished trials before pruning starts; ``pruner_warmup``: epochs before a trial can be
    pruned (default: the protocol's warm-up + 1); ``quiet``: no line per trial."""

    fusion: str
    trials: int = 50
    timeout: float | None = None
    storage: str | None = None
    study_name: str | None = None
    workers: int = 1
    seed: int = 0
    train_seed: int = 0
    out: str = DEFAULT_TUNE_OUT
    heartbeat: int = 30
    pruner_startup: int = 5
    pruner_warmup: int | None = None
    quiet: bool = False

    def units(self) -> list[str]:
        """The names of the study's ``trials`` units: ``trial-0`` ... ``trial-{trials-1}``."""
        return [f"trial-{k}" for k in range(self.trials)]

    def storage_spec(self) -> StorageSpec:
        """``storage`` when given; else the study file already in ``out`` (a rerun with another ``--workers``
        carries on the same study instead of starting a new one); else a journal file for several workers and
        a SQLite file for one."""
        if self.storage is not None:
            return StorageSpec(url=self.storage, heartbeat=self.heartbeat)
        journal, database = Path(self.out) / "studies.journal", Path(self.out).resolve() / "studies.db"
        if journal.exists() or (self.workers > 1 and not database.exists()):
            return StorageSpec(journal=str(journal))
        return StorageSpec(url=f"sqlite:///{database}", heartbeat=self.heartbeat)


def protocol_space(trial) -> dict:
    """The protocol values every fusion's search shares: AdamW's learning rate (1e-4 to 1e-2) and weight decay
    (1e-5 to 1e-1), both on a log scale, and the batch size (16, 32 or 64)."""
    return {
        "lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-5, 1e-1, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [16, 32, 64]),
    }


def sample_overrides(trial, fusion: str, modality_names: list[str]) -> dict:
    """One trial's values: the fusion's hyperparameters with a ``protocol`` table."""
    return {**fusion_class(fusion).search_space(trial, list(modality_names)), "protocol": protocol_space(trial)}


def objective_metric(data: Dataset, protocol: Protocol) -> str:
    """The validation score a trial minimises, as ``train_cell`` selects by it: ``valid_loss`` when ``protocol``
    selects by the validation loss (``--protocol reference`` for MulT, TFN and LMF), else the task's model-selection
    column (``tasks.Task.selection_column``: ``valid_mae`` for sentiment, ``valid_loss`` for the other built-in
    tasks)."""
    return "valid_loss" if protocol.selection == "valid_loss" else get_task(data.task).selection_column


def study_definition(spec: TuneSpec, data: Dataset, base: CellConfig) -> dict:
    """What the values of a study's trials depend on (JSON values): ``fusion``, ``dataset``, ``modalities`` (in
    order), ``feature_sizes``, ``split_sizes`` (train and validation), ``objective`` (metric and training seed),
    ``search_space`` (each parameter's Optuna distribution, from one draw: the spaces are not conditional) and
    ``fixed_configuration`` (protocol values and hyperparameters that are not searched, loader options).
    Left out: the data path (machines sharing a study keep their data in different places), the evaluation
    batch size (no effect on results), the sampler's seed and the pruner."""
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    values = sample_overrides(trial, spec.fusion, data.modality_names)  # also: the space fits the data
    protocol = {k: v for k, v in base.protocol.as_dict().items()
                if k not in values["protocol"] and k != "eval_batch_size"}
    definition = {
        "fusion": spec.fusion, "dataset": spec.dataset, "modalities": list(data.modality_names),
        "feature_sizes": data.dims, "split_sizes": {"train": len(data.train), "valid": len(data.valid)},
        "objective": {"metric": objective_metric(data, base.protocol), "train_seed": spec.train_seed},
        "search_space": {name: json.loads(distribution_to_json(d)) for name, d in trial.distributions.items()},
        "fixed_configuration": {"protocol": protocol, "hparams": {k: v for k, v in base.hparams.items()
                                                                  if k not in values},
                                "dataset_options": base.dataset["options"]},
    }
    return json.loads(json.dumps(definition, default=str))


def without_test(data: Dataset) -> Dataset:
    """``data`` with the validation split in place of the test split: tuning cannot read test data
    (``train_cell``'s final evaluation then runs on validation data, and tuning ignores it)."""
    return dataclasses.replace(data, test=data.valid)


class TrialSeededTPE(BaseSampler):
    """Optuna's TPE sampler whose random state for trial ``k`` is seeded with ``seed + k``."""

    def __init__(self, seed: int):
        self.seed = seed
        self.tpe = TPESampler(seed=seed)

    def before_trial(self, study, trial) -> None:
        self.tpe = TPESampler(seed=self.seed + trial.number)
        self.tpe.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):
        return self.tpe.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self.tpe.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self.tpe.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        self.tpe.after_trial(study, trial, state, values)


@dataclass
class Session:
    """A worker's view of the tuning: the experiment (configuration and data) and the study."""

    spec: TuneSpec
    experiment: Experiment
    study: optuna.Study

    @property
    def data(self) -> Dataset:
        return self.experiment.data

    @property
    def protocol(self) -> Protocol:
        """The protocol of the tuned fusion's cells (a trial searches none of what names its score)."""
        return self.experiment.cell(self.spec.fusion).protocol

    def score_text(self, score: float) -> str:
        """A trial's validation ``score`` named, for the log: ``validation valid_mae 0.6869`` (``objective_metric``),
        shown as the column's value (a selection metric where higher is better is minimised negated)."""
        metric = objective_metric(self.data, self.protocol)
        negated = metric != "valid_loss" and get_task(self.data.task).selection_higher_is_better
        return f"validation {metric} {-score if negated else score:.4f}"

    @classmethod
    def open(cls, spec: TuneSpec) -> Session:
        experiment = Experiment.build(spec, [spec.fusion])
        data, base = experiment.data, experiment.cell(spec.fusion)
        definition = study_definition(spec, data, base)
        warmup = base.protocol.warmup_epochs + 1 if spec.pruner_warmup is None else spec.pruner_warmup
        name = spec.study_name or f"tune-{spec.dataset}-{spec.fusion}-{base.hash}"
        study = open_study(
            spec.storage_spec(), name, sampler=TrialSeededTPE(spec.seed),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=spec.pruner_startup, n_warmup_steps=warmup),
        )
        check_definition(study, definition, spec.storage_spec().describe())
        return cls(spec, experiment, study)

    def objective(self, trial: optuna.Trial) -> float:
        """Train the trial's configuration; its best validation score."""
        spec = self.spec
        values = sample_overrides(trial, spec.fusion, self.data.modality_names)
        cell = self.experiment.cell(spec.fusion, tuned_table(spec.dataset, spec.fusion, values))
        trial.set_user_attr("config", cell.as_dict())
        trial.set_user_attr("config_hash", cell.hash)
        curve, best = [], math.inf

        def on_epoch(epoch: int, score: float, row: dict) -> None:
            nonlocal best
            best = min(best, score)
            curve.append(row)
            trial.set_user_attr("curve", curve)
            trial.report(score, epoch)
            if math.isnan(score) or trial.should_prune():  # a diverged trial is pruned, not failed and retried
                self.say(f"trial {trial.number}: pruned at epoch {epoch} ({self.score_text(score)})")
                raise optuna.TrialPruned(f"{self.score_text(score)} at epoch {epoch}")

        try:
            result = train_cell(cell, without_test(self.data), spec.train_seed, self.experiment.device, spec.amp,
                                on_epoch=on_epoch)
        except Diverged as error:  # pruned like a NaN score above: retrying the same parameters diverges again
            self.say(f"trial {trial.number}: pruned, {error}")
            raise optuna.TrialPruned(str(error)) from None
        self.say(f"trial {trial.number}: {self.score_text(best)} after {result.epochs} epochs "
                 f"({result.train_seconds:.1f} s)")
        return best

    def work(self) -> None:
        storage = self.spec.storage_spec()
        work(self.study, self.spec.units(), self.objective, storage.retry(), timeout=self.spec.timeout,
             claims=Claims.of(storage))

    def say(self, line: str) -> None:
        if not self.spec.quiet:
            print(line, flush=True)


def _worker_process(device: str, spec: TuneSpec) -> None:
    """One of ``--workers`` processes (started by ``tune`` through ``workers.run_workers``) on ``device``."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    Session.open(dataclasses.replace(spec, device=device)).work()


def tune(spec: TuneSpec) -> dict:
    """Run the tuning of ``spec`` (with ``spec.workers`` local processes) and write its results; returns the
    best-parameters document. Bad input raises ``ValueError`` before any training starts."""
    fusion_class(spec.fusion)  # an unknown fusion lists the known ones
    for flag, value in (("--trials", spec.trials), ("--workers", spec.workers)):
        if value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    if spec.timeout is not None and spec.timeout <= 0:
        raise ValueError(f"--timeout must be > 0 seconds, got {spec.timeout}")
    resolve_device(spec.device)
    check_writable(Path(spec.out))
    session = Session.open(spec)  # the experiment checks --amp, the configuration and the data
    enqueue(session.study, {name: {} for name in spec.units()})
    if spec.workers == 1:
        session.work()
    else:
        def work_left() -> bool:
            return any(last.state in (TrialState.WAITING, TrialState.RUNNING)
                       for last in last_attempts(session.study, spec.units()).values())

        run_workers(plan_workers(spec.device, spec.workers), _worker_process, (spec,), work_left=work_left,
                    tick=lambda: None, say=lambda line: print(line, file=sys.stderr, flush=True))
    return write_results(session)


def write_results(session: Session) -> dict:
    """The best-parameters file, ``trials.csv`` and the plots; returns the best-parameters document."""
    spec, study = session.spec, session.study
    trials = study.get_trials(deepcopy=False)
    counts = {state.name.lower(): sum(t.state == state for t in trials) for state in TrialState}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    running = unfinished(study, spec.units(), Claims.of(spec.storage_spec()))
    if running:
        lost = sum(verdict.alive is None for verdict in running.values())
        print(f"warning: {len(running)} of {spec.trials} trials are not finished and are left out of the results "
              f"({lost} lost to this machine, which cannot tell whether their workers live): "
              + "; ".join(f"{name} ({verdict.reason})" for name, verdict in running.items()),
              file=sys.stderr, flush=True)
    if not complete:
        raise ValueError(f"no trial of study {study.study_name!r} completed ({counts}); no best parameters written")
    best = min(complete, key=lambda t: t.value)
    document = {
        "fusion": spec.fusion, "dataset": spec.dataset, "study_name": study.study_name,
        "storage": spec.storage_spec().describe(), "metric": objective_metric(session.data, session.protocol),
        "value": best.value,
        "trial": best.number, "trials": counts, "params": best.params,
        "config": sample_overrides(optuna.trial.FixedTrial(best.params), spec.fusion, session.data.modality_names),
        "cell": best.user_attrs.get("config"), "config_hash": best.user_attrs.get("config_hash"),
        "time_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    path = best_params_path(spec.out, spec.dataset, spec.fusion)
    write_document(path, document, "best_params")
    folder = Path(spec.out) / spec.dataset / spec.fusion
    columns = ("number", "state", "value", "duration", "datetime_start", "datetime_complete", "params")
    write_table(folder / "trials.csv", study.trials_dataframe(attrs=columns))
    notes = write_plots(study, folder, len(complete), spec.seed)
    session.say(f"best: trial {best.number}, {session.score_text(best.value)} ({counts}); {path}")
    for note in notes:
        session.say(note)
    return document


def write_plots(study: optuna.Study, folder: Path, n_complete: int, seed: int) -> list[str]:
    """Optuna's optimisation history and parameter importances (``history``, ``importance``; PNG and PDF);
    returns notes on what could not be drawn. Importances are fANOVA's (seeded), which unlike Optuna 5's
    default (PED-ANOVA) still separates parameters in studies of a few trials."""
    from analysis.plots import save_figure  # matplotlib only when plotting

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        save_figure(optuna.visualization.matplotlib.plot_optimization_history(study).figure, folder / "history")
        if n_complete < 2:
            return [f"parameter importances need 2 complete trials, the study has {n_complete}; no importance plot"]
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
        axes = optuna.visualization.matplotlib.plot_param_importances(study, evaluator=evaluator)
        save_figure(axes.figure, folder / "importance")
    return []


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="python -m benchmarks.tune", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--fusion", required=True, help="the fusion to tune")
    add_data_arguments(parser)
    parser.add_argument("--trials", type=int, default=50, help="trials in the study, over all workers")
    parser.add_argument("--timeout", type=float, default=None, help="seconds after which a worker starts no trial")
    parser.add_argument("--storage", default=None, help="Optuna RDB URL shared by every worker, e.g. "
                        "postgresql://user:password@host/db (default: <out>/studies.db, or a journal file with "
                        "--workers)")
    parser.add_argument("--study-name", default=None, help="default: tune-<dataset>-<fusion>-<config hash>")
    parser.add_argument("--workers", type=int, default=1, help="worker processes on this machine")
    parser.add_argument("--sampler-seed", type=int, default=0,
                        help="the TPE sampler's seed (trial k draws with seed + k)")
    parser.add_argument("--train-seed", type=int, default=0, help="the training seed of every trial")
    parser.add_argument("--out", default=DEFAULT_TUNE_OUT, help="output folder (benchmarks.run --params reads "
                                                               "results/tune, or --params <out>)")
    add_training_arguments(parser)
    parser.add_argument("--heartbeat", type=int, default=30,
                        help="seconds between heartbeats (RDB storages); a trial silent for 3 runs again")
    parser.add_argument("--quiet", action="store_true", help="no line per trial")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tune(TuneSpec(
        fusion=args.fusion, trials=args.trials, timeout=args.timeout, storage=args.storage,
        study_name=args.study_name, workers=args.workers, seed=args.sampler_seed, train_seed=args.train_seed,
        out=args.out, heartbeat=args.heartbeat, quiet=args.quiet, **experiment_fields(args),
    ))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
