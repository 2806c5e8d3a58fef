"""What ``benchmarks.workqueue`` assumes of Optuna, checked on the installed release, on both storages it uses.

Each assertion names the assumption, so that an Optuna release that changes one fails here with what to update
(``benchmarks.optuna_adapter``, or the work queue's use of a public storage method), not somewhere in a grid run.
"""

from __future__ import annotations

import optuna
import pytest
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from benchmarks.optuna_adapter import storage_of, trial_id
from benchmarks.studies import StorageSpec, open_study

VERSION = f"optuna {optuna.__version__}"


@pytest.fixture(params=["sqlite", "journal"])
def spec(request, tmp_path) -> StorageSpec:
    if request.param == "sqlite":
        return StorageSpec(url=f"sqlite:///{tmp_path / 'studies.db'}", heartbeat=7)
    return StorageSpec(journal=str(tmp_path / "studies.journal"))


def test_a_study_keeps_its_storage_where_storage_of_reads_it(spec):
    study = open_study(spec, "adapter")
    assert isinstance(getattr(study, "_storage", None), optuna.storages.BaseStorage), (
        f"{VERSION}: optuna.Study no longer has the attribute `_storage` holding its BaseStorage; update "
        "benchmarks.optuna_adapter.storage_of")
    storage = storage_of(study)
    study.enqueue_trial({}, user_attrs={"unit": "a"})
    assert storage.get_all_trials(storage.get_study_id_from_name("adapter"))[0].user_attrs == {"unit": "a"}, (
        f"{VERSION}: Study._storage is not the storage the study writes to")


def test_storage_of_fails_naming_the_attribute_when_optuna_moves_it():
    class Moved:  # a Study of a release that keeps its storage elsewhere
        study_name = "moved"

    with pytest.raises(RuntimeError, match=r"no longer keeps its storage in `_storage`"):
        storage_of(Moved())


def test_trial_ids_come_from_public_storage_methods(spec):
    study = open_study(spec, "ids")
    for unit in ("a", "b", "c"):
        study.enqueue_trial({}, user_attrs={"unit": unit})
    storage = storage_of(study)
    for trial in study.get_trials():
        identity = trial_id(study, trial)
        assert storage.get_trial(identity).number == trial.number, (
            f"{VERSION}: BaseStorage.get_trial_id_from_study_id_trial_number no longer maps a trial number to the "
            "storage id that get_trial takes")
        assert trial_id(study, trial.number) == identity
    with pytest.raises(KeyError):
        trial_id(study, 99)


def test_claiming_a_waiting_trial_is_a_compare_and_set(spec):
    """Exactly-once claiming: set_trial_state_values(RUNNING) succeeds on a WAITING trial, returns False on a
    RUNNING one, and raises UpdateFinishedTrialError on a finished one."""
    study = open_study(spec, "claims")
    study.enqueue_trial({}, user_attrs={"unit": "a"})
    storage = storage_of(study)
    identity = trial_id(study, 0)
    assert storage.set_trial_state_values(identity, TrialState.RUNNING) is True, (
        f"{VERSION}: BaseStorage.set_trial_state_values(RUNNING) on a WAITING trial no longer returns True")
    assert storage.set_trial_state_values(identity, TrialState.RUNNING) is False, (
        f"{VERSION}: BaseStorage.set_trial_state_values(RUNNING) on a RUNNING trial no longer returns False: two "
        "workers could claim one unit")
    trial = optuna.Trial(study, identity)  # the live trial of the claimed unit, as workqueue._run builds it
    assert trial.number == 0 and trial.user_attrs == {"unit": "a"}, (
        f"{VERSION}: optuna.Trial(study, trial_id) no longer builds the trial of that storage id")
    study.tell(trial, 1.0)
    with pytest.raises(UpdateFinishedTrialError):
        storage.set_trial_state_values(identity, TrialState.RUNNING)


def test_heartbeats_and_user_attributes_of_another_workers_trial(tmp_path):
    spec = StorageSpec(url=f"sqlite:///{tmp_path / 'studies.db'}", heartbeat=7)
    study = open_study(spec, "beats")
    study.enqueue_trial({}, user_attrs={"unit": "a"})
    storage = storage_of(study)
    assert storage.get_heartbeat_interval() == 7, (
        f"{VERSION}: RDBStorage.get_heartbeat_interval no longer returns the interval it was opened with")
    identity = trial_id(study, 0)
    storage.record_heartbeat(identity)
    storage.set_trial_state_values(identity, TrialState.RUNNING)
    storage.set_trial_user_attr(identity, "error", "not finished: killed")
    assert storage.get_trial(identity).user_attrs["error"] == "not finished: killed", (
        f"{VERSION}: BaseStorage.set_trial_user_attr no longer sets a user attribute of a RUNNING trial")


def test_the_retry_callback_chains_attempts_by_retry_history(spec):
    """``workqueue.attempts`` chains a unit's attempts by the system attribute ``retry_history`` the retry
    callback writes, and finds the unit in the copied user attributes."""
    study = open_study(spec, "retries")
    study.enqueue_trial({}, user_attrs={"unit": "a"})
    storage = storage_of(study)
    storage.set_trial_state_values(trial_id(study, 0), TrialState.RUNNING)
    study.tell(0, state=TrialState.FAIL)
    spec.retry()(study, study.get_trials()[0])
    retry = study.get_trials()[1]
    assert retry.state == TrialState.WAITING and retry.user_attrs == {"unit": "a"}, (
        f"{VERSION}: RetryHeartbeatStaleTrialCallback no longer queues a WAITING copy with the user attributes")
    assert retry.system_attrs.get("retry_history") == [0], (
        f"{VERSION}: RetryHeartbeatStaleTrialCallback no longer records the failed numbers in the system attribute "
        "`retry_history`; update benchmarks.workqueue.attempts")
