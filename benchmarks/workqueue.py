"""Named units of work shared through one Optuna study by any number of processes and machines; each runs once.

A unit (a cell of the runner's grid, one trial of a tuning budget) is a trial of the study with the user
attribute ``unit`` (its name). ``enqueue`` adds a WAITING trial for every unit that has none; ``work`` claims
WAITING trials one at a time and runs them until every unit is finished.

Claiming is Optuna's pop of a waiting trial: a compare-and-set from WAITING to RUNNING, under a row lock in an
RDB storage and in log order in a journal file, so exactly one process wins each trial. (``Study.ask`` pops the
same way but creates a fresh trial when none is waiting, and ``Study.optimize`` looks for dead workers only
before asking; hence this loop, which also keeps looking while others run the last units. Its storage calls
are public storage methods, reached through ``benchmarks.optuna_adapter``.)

Attempts. A unit's attempts form a chain: its first trial, then after each FAILED attempt a retry, the WAITING
copy that ``RetryHeartbeatStaleTrialCallback`` makes (same parameters and user attributes; the failed number in
the system attribute ``retry_history``), at most ``max_retries`` times. An attempt fails when the unit raises
(the message is the trial's user attribute ``error``) or, in an RDB storage, when its worker stops sending
heartbeats for the grace period (killed, frozen or cut off), or, in a journal file, when its worker ended
without finishing it (its claim lock is free): the next worker that looks marks it FAIL and the retry is
queued. An attempt whose worker is stopped (``KeyboardInterrupt``: Ctrl-C, or the SIGTERM that
``benchmarks.workers`` turns into one) has not failed: the worker hands it back, RUNNING to WAITING (a change
both storages accept from the trial's own process), and the next claim runs it again in the same place of its
chain, so interrupting and resuming a study never spends a unit's retries.

Where two trials compete for one place in a chain — a unit added by two processes that started together, a
retry made twice — only the lower-numbered counts (a study numbers its trials in one locked sequence, so every
process agrees); the other is dropped unrun when claimed.

Hence each unit has at most one attempt that counts and is not finished, so nothing runs twice — unless a
live worker loses contact for the whole grace period: the retry then runs too, and the late worker's result is
discarded — and nothing is lost: a worker records a heartbeat before it claims (a claim without one would never
go stale), a FAIL with retries left but no retry (its worker died between the two writes) is retried by whoever
sees it, and workers wait for running units until they finish or go stale. Without heartbeats (a journal
file) the claim locks of ``benchmarks.journal_claims`` tell the two apart: a worker holds the trial's lock from
before its claim until the study knows the outcome, so a RUNNING trial whose lock is free and names this host
is stale: the next worker that looks marks it FAIL (the reason in ``error``) and queues the retry. A claim made
on another machine cannot be judged here; it is not waited for, and ``unfinished`` says why.
"""

from __future__ import annotations

import copy
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager, suppress

import optuna
from optuna.exceptions import ExperimentalWarning, StorageInternalError, UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from .journal_claims import WORKER, Claims, Verdict, judge, worker_name
from .optuna_adapter import storage_of, trial_id

UNIT = "unit"
ERROR = "error"

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


def work(
    study: optuna.Study, names: list[str], run: Runner, retry: Retry, timeout: float | None = None,
    poll: float | None = None, claims: Claims | None = None,
) -> None:
    """Claim and run the named units of ``study`` until each is finished (COMPLETE, PRUNED, or FAILED with no
    retries left), or ``timeout`` seconds have passed (the unit in progress is finished first).

    ``run(trial)`` returns the trial's value; raising ``optuna.TrialPruned`` prunes it, any other exception
    fails it (``retry`` then queues it again). ``poll``: seconds between looks while others run the last units
    (default: the storage's heartbeat interval, or 1). ``claims``: the claim locks of a storage without
    heartbeats (``Claims.of(storage_spec)``); such a storage without them raises ``ValueError``, as nothing
    could tell a killed worker's unit from a running one.
    """
    storage = storage_of(study)
    interval = storage.get_heartbeat_interval() if hasattr(storage, "get_heartbeat_interval") else None
    if interval is None and claims is None:
        raise ValueError("a storage without heartbeats needs claim locks (benchmarks.journal_claims.Claims) to "
                         "tell a killed worker's units from running ones")
    deadline = None if timeout is None else time.monotonic() + timeout
    wanted = set(names)
    while deadline is None or time.monotonic() < deadline:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # silent RUNNING trials -> FAIL, retried by the storage
        if claims is not None:
            _fail_dead_claims(study, claims, last_attempts(study, names).values())
        for last in last_attempts(study, names).values():
            if last.state == TrialState.FAIL:
                retry(study, copy.deepcopy(last))  # an orphan (its worker died before queueing the retry); a
                # spent unit is left alone. (The callback appends to the trial's retry history in place.)
        trials = study.get_trials(deepcopy=False)
        latest = [chain[-1] for name, chain in attempts(trials).items() if name in wanted]
        claimed = _claim(study, trials, latest, interval is not None, claims)
        if claimed is not None:
            trial, hold = claimed
            with hold:
                _run(study, trial, run, retry, interval)
        elif any(_pending(study, last, interval is not None, claims) for last in latest):
            time.sleep(poll or interval or 1)
        else:
            return


def unfinished(study: optuna.Study, names: Iterable[str], claims: Claims | None) -> dict[str, Verdict]:
    """The named units whose latest attempt is RUNNING, each with whether its worker is alive and why; with
    ``claims`` (a journal file), a verdict of None means this machine cannot tell, so it will never run the unit
    again; without (a heartbeat storage), every verdict is True. Changes nothing."""
    heartbeats = Verdict(True, "its worker sends heartbeats; once they stop, the next worker to look runs it again")
    return {
        name: heartbeats if claims is None else claims.verdict(last, trial_id(study, last))
        for name, last in last_attempts(study, names).items() if last.state == TrialState.RUNNING
    }


def _pending(study: optuna.Study, last: FrozenTrial, heartbeats: bool, claims: Claims | None) -> bool:
    """Whether a unit whose latest attempt is ``last`` may still need this worker: it waits, or it runs and its
    worker may yet go silent (heartbeats), or its claim can be judged here (alive: wait; just ended: take over)."""
    if last.state != TrialState.RUNNING:
        return last.state == TrialState.WAITING
    return heartbeats or (claims is not None and claims.verdict(last, trial_id(study, last)).alive is not None)


def _fail_dead_claims(study: optuna.Study, claims: Claims, lasts: Iterable[FrozenTrial]) -> None:
    """Mark FAIL each RUNNING attempt in ``lasts`` whose worker is gone, the reason in ``error`` (the orphan step
    of ``work`` then queues its retry). Judged under the trial's lock, on the trial as it is then."""
    storage = storage_of(study)
    for last in lasts:
        if last.state != TrialState.RUNNING:
            continue
        identity = trial_id(study, last)
        handle = claims.lock(identity)
        if handle is None:
            continue  # its worker holds it
        with handle:
            trial = storage.get_trial(identity)
            if trial.state != TrialState.RUNNING:
                continue  # finished before its worker let go of the lock
            verdict = judge(trial, handle.read())
            if verdict.alive is False:
                storage.set_trial_user_attr(identity, ERROR, f"not finished: {verdict.reason}")
                study.tell(trial.number, state=TrialState.FAIL)


def _claim(
    study: optuna.Study, trials: list[FrozenTrial], latest: list[FrozenTrial], heartbeats: bool,
    claims: Claims | None,
) -> tuple[FrozenTrial, AbstractContextManager] | None:
    """Pop the first waiting latest attempt of a unit in ``latest``, with what holds its claim lock until the
    caller has told the study how it ended (with ``claims``); duplicates met on the way are dropped."""
    storage = storage_of(study)
    current = {last.number for last in latest}
    names = {last.user_attrs[UNIT] for last in latest}
    for trial in trials:
        if trial.state != TrialState.WAITING or trial.user_attrs.get(UNIT) not in names:
            continue
        identity = trial_id(study, trial)
        with ExitStack() as hold:
            if claims is not None:
                handle = claims.lock(identity)
                if handle is None:
                    continue  # another worker is claiming it
                hold.enter_context(handle)
                Claims.stake(handle)  # before the claim, so that a worker killed right after it leaves its name
            if heartbeats:  # before the claim, so that a worker killed right after it leaves a heartbeat to go stale
                storage.record_heartbeat(identity)
            try:
                claimed = storage.set_trial_state_values(identity, TrialState.RUNNING)
            except UpdateFinishedTrialError:
                claimed = False
            if not claimed:
                if claims is not None:
                    Claims.stake(handle, "")  # claimed by a worker without a lock: the record must not name this one
                continue
            if trial.number in current:
                return trial, hold.pop_all()
            storage.set_trial_user_attr(identity, ERROR, "duplicate of an earlier trial of this unit; not run")
            storage.set_trial_state_values(identity, TrialState.FAIL)  # not Study.tell: the sampler never saw it
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
    storage, identity = storage_of(study), trial_id(study, claimed)
    trial = optuna.Trial(study, identity)
    trial.set_user_attr(WORKER, worker_name())
    try:
        with _heartbeat(storage, identity, interval):
            value = run(trial)
    except optuna.TrialPruned:
        study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
    except Exception as error:  # the unit failed
        before = copy.deepcopy(storage.get_trial(identity))  # what the retry copies (without the error)
        try:
            trial.set_user_attr(ERROR, f"{type(error).__name__}: {error}")
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        except UpdateFinishedTrialError:
            pass  # another worker declared it dead and queued the retry
        else:
            retry(study, before)
    except BaseException:  # this worker is being stopped (Ctrl-C, SIGTERM): the attempt is handed back unfinished
        with suppress(UpdateFinishedTrialError):  # (unless another worker declared it dead meanwhile)
            storage.set_trial_state_values(identity, TrialState.WAITING)
        raise
    else:
        study.tell(trial, value, skip_if_finished=True)
