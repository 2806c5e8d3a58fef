"""Named units of work shared through one Optuna study by any number of processes and machines; each runs once.

A unit (a cell of the runner's grid, one trial of a tuning budget) is a trial of the study with the user
attribute ``unit`` (its name). ``enqueue`` adds a WAITING trial for every unit that has none; ``work`` claims
WAITING trials one at a time and runs them until every unit is finished.

Claiming is Optuna's pop of a waiting trial: a compare-and-set from WAITING to RUNNING, under a row lock in an
RDB storage and in log order in a journal file, so exactly one process wins each trial. (``Study.ask`` pops the
same way but creates a fresh trial when none is waiting, and ``Study.optimize`` looks for dead workers only
before asking; hence this loop, which also keeps looking while others run the last units.)

Attempts. A unit's attempts form a chain: its first trial, then after each FAILED attempt a retry, the WAITING
copy that ``RetryHeartbeatStaleTrialCallback`` makes (same parameters and user attributes; the failed number in
the system attribute ``retry_history``), at most ``max_retries`` times. An attempt fails when the unit raises
(the message is the trial's user attribute ``error``) or, in an RDB storage, when its worker stops sending
heartbeats for the grace period (killed, frozen or cut off): the next worker that looks marks it FAIL and the
storage's callback queues the retry. Where two trials compete for one place in a chain — a unit added by two
processes that started together, a retry made twice — only the lower-numbered counts (a study numbers its
trials in one locked sequence, so every process agrees); the other is dropped unrun when claimed.

Hence each unit has at most one attempt that counts and is not finished, so nothing runs twice — unless a
live worker loses contact for the whole grace period: the retry then runs too, and the late worker's result is
discarded — and nothing is lost: a worker records a heartbeat before it claims (a claim without one would never
go stale), a FAIL with retries left but no retry (its worker died between the two writes) is retried by whoever
sees it, and workers on a heartbeat storage wait for running units until they finish or go stale. Without
heartbeats (journal file) a unit whose process was killed stays RUNNING and is not waited for.
"""

from __future__ import annotations

import copy
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager, suppress

import optuna
from optuna.exceptions import ExperimentalWarning, StorageInternalError, UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

UNIT = "unit"
ERROR = "error"
WORKER = "worker"

Runner = Callable[[optuna.Trial], float]
Retry = Callable[[optuna.Study, FrozenTrial], None]


def enqueue(study: optuna.Study, units: Mapping[str, dict]) -> None:
    """Add a WAITING trial (user attributes: ``unit`` and the given ones) for each unit without a trial."""
    present = {trial.user_attrs.get(UNIT) for trial in study.get_trials(deepcopy=False)}
    for name, attrs in units.items():
        if name not in present:
            study.enqueue_trial({}, user_attrs={**attrs, UNIT: name})


def attempts(trials: Iterable[FrozenTrial]) -> dict[str, list[FrozenTrial]]:
    """Each unit's chain of attempts: the lowest-numbered trial that is not a retry, then each time the
    lowest-numbered retry of the previous attempt. Trials off every chain are duplicates."""
    firsts: dict[str, FrozenTrial] = {}
    retries: dict[int, FrozenTrial] = {}
    for trial in sorted(trials, key=lambda t: t.number):
        name = trial.user_attrs.get(UNIT)
        history = trial.system_attrs.get("retry_history")
        if name is None:
            continue
        if history:
            retries.setdefault(history[-1], trial)
        else:
            firsts.setdefault(name, trial)
    chains = {}
    for name, first in firsts.items():
        chain = [first]
        while chain[-1].number in retries:
            chain.append(retries[chain[-1].number])
        chains[name] = chain
    return chains


def last_attempts(study: optuna.Study, names: Iterable[str]) -> dict[str, FrozenTrial]:
    """The latest attempt of each named unit that has one."""
    chains = attempts(study.get_trials(deepcopy=False))
    return {name: chains[name][-1] for name in names if name in chains}


def worker_name() -> str:
    """``host:pid`` of this process (the ``worker`` user attribute of the trials it claims)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def work(
    study: optuna.Study, names: list[str], run: Runner, retry: Retry, timeout: float | None = None,
    poll: float | None = None,
) -> None:
    """Claim and run the named units of ``study`` until each is finished (COMPLETE, PRUNED, or FAILED with no
    retries left), or ``timeout`` seconds have passed (the unit in progress is finished first).

    ``run(trial)`` returns the trial's value; raising ``optuna.TrialPruned`` prunes it, any other exception
    fails it (``retry`` then queues it again). ``poll``: seconds between looks while others run the last units
    (default: the storage's heartbeat interval).
    """
    storage = study._storage  # noqa: SLF001 (Optuna has no public "pop a waiting trial, never create one")
    interval = storage.get_heartbeat_interval() if hasattr(storage, "get_heartbeat_interval") else None
    deadline = None if timeout is None else time.monotonic() + timeout
    wanted = set(names)
    while deadline is None or time.monotonic() < deadline:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # silent RUNNING trials -> FAIL, retried by the storage
        for last in last_attempts(study, names).values():
            if last.state == TrialState.FAIL:
                retry(study, copy.deepcopy(last))  # an orphan (its worker died before queueing the retry); a
                # spent unit is left alone. (The callback appends to the trial's retry history in place.)
        trials = study.get_trials(deepcopy=False)
        latest = [chain[-1] for name, chain in attempts(trials).items() if name in wanted]
        claimed = _claim(study, trials, latest, interval is not None)
        if claimed is not None:
            _run(study, claimed, run, retry, interval)
        elif any(_pending(last, interval is not None) for last in latest):
            time.sleep(poll or interval or 1)
        else:
            return


def _pending(last: FrozenTrial, heartbeats: bool) -> bool:
    """Whether a unit whose latest attempt is ``last`` may still need this worker."""
    return last.state == TrialState.WAITING or (heartbeats and last.state == TrialState.RUNNING)


def _claim(
    study: optuna.Study, trials: list[FrozenTrial], latest: list[FrozenTrial], heartbeats: bool,
) -> FrozenTrial | None:
    """Pop the first waiting latest attempt of a unit in ``latest``; duplicates met on the way are dropped."""
    storage = study._storage  # noqa: SLF001
    current = {last.number for last in latest}
    names = {last.user_attrs[UNIT] for last in latest}
    for trial in trials:
        if trial.state != TrialState.WAITING or trial.user_attrs.get(UNIT) not in names:
            continue
        trial_id = trial._trial_id  # noqa: SLF001
        if heartbeats:  # before the claim, so that a worker killed right after it leaves a heartbeat to go stale
            storage.record_heartbeat(trial_id)
        try:
            if not storage.set_trial_state_values(trial_id, TrialState.RUNNING):
                continue
        except UpdateFinishedTrialError:
            continue
        if trial.number in current:
            return trial
        storage.set_trial_user_attr(trial_id, ERROR, "duplicate of an earlier trial of this unit; not run")
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
    return None


@contextmanager
def _heartbeat(storage, trial_id: int, interval: int | None):
    """Record the trial's heartbeat every ``interval`` seconds in a thread while the body runs."""
    if interval is None:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            with suppress(StorageInternalError):  # a database blip: the next beat tries again
                storage.record_heartbeat(trial_id)

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _run(study: optuna.Study, claimed: FrozenTrial, run: Runner, retry: Retry, interval: int | None) -> None:
    """Run one claimed attempt and tell the study how it ended."""
    trial = optuna.Trial(study, claimed._trial_id)  # noqa: SLF001
    trial.set_user_attr(WORKER, worker_name())
    try:
        with _heartbeat(study._storage, claimed._trial_id, interval):  # noqa: SLF001
            value = run(trial)
    except optuna.TrialPruned:
        study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
    except BaseException as error:  # the unit failed, or this worker is being stopped (Ctrl-C): hand it back
        before = copy.deepcopy(study._storage.get_trial(claimed._trial_id))  # noqa: SLF001 (what the retry copies)
        try:
            trial.set_user_attr(ERROR, f"{type(error).__name__}: {error}")
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        except UpdateFinishedTrialError:
            pass  # another worker declared it dead and queued the retry
        else:
            retry(study, before)
        if not isinstance(error, Exception):
            raise
    else:
        study.tell(trial, value, skip_if_finished=True)
