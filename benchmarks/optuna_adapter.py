"""The one place fusionbench reaches past Optuna's public API, and the public storage calls built on it.

``benchmarks.workqueue`` shares named units of work through a study: it claims one given WAITING trial, records
heartbeats while it runs, and marks a dead worker's trial FAIL with the reason. Optuna's storages do each of these
through public methods (``BaseStorage.set_trial_state_values`` is a compare-and-set from WAITING to RUNNING,
``record_heartbeat``, ``set_trial_user_attr``, ``get_trial``), but ``Study`` has none of them:

* ``Study.ask`` pops whichever trial waits, and creates a fresh trial when none does (a unit must never be
  created by a claim, and a worker must claim the unit its claim lock covers);
* ``Study.optimize`` records heartbeats only for the trials it asks, and looks for dead workers only before
  asking;
* ``Study.tell`` finishes a trial and hands it to the sampler's ``after_trial``, which must not see a duplicate
  trial that never ran; no ``Study`` method sets a user attribute of a trial another process ran.

So the work queue needs the study's storage, which ``Study`` keeps in its private attribute ``_storage``:
:func:`storage_of` is the only private access in the suite. A trial's storage id (what every storage method
takes) is found through public storage methods (:func:`trial_id`), as Optuna's own ``Study.tell`` does for a trial
number, not through ``FrozenTrial._trial_id``. ``tests/test_optuna_adapter.py`` checks these assumptions on the
installed Optuna and fails with a message naming the one that changed.
"""

from __future__ import annotations

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial

__all__ = ["storage_of", "trial_id"]


def storage_of(study: optuna.Study) -> BaseStorage:
    """The storage ``study`` reads and writes (the one ``create_study`` / ``load_study`` opened it with).

    Private access: ``Study._storage`` (Optuna 3 to 5 keep it there and offer no public accessor; see the module
    docstring for why the work queue needs it). Raises ``RuntimeError`` naming the attribute when the installed
    Optuna keeps it elsewhere.
    """
    storage = getattr(study, "_storage", None)
    if not isinstance(storage, BaseStorage):
        raise RuntimeError(f"optuna {optuna.__version__}: optuna.Study no longer keeps its storage in `_storage`; "
                           "benchmarks.optuna_adapter.storage_of needs updating for this Optuna release")
    return storage


def trial_id(study: optuna.Study, trial: FrozenTrial | int) -> int:
    """The storage id of ``trial`` (a trial of ``study``, or its number): public storage methods only
    (``get_study_id_from_name``, ``get_trial_id_from_study_id_trial_number``). ``KeyError`` for a number the
    study does not have."""
    storage = storage_of(study)
    number = trial if isinstance(trial, int) else trial.number
    return storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study.study_name), number)
