"""Tuning faults that lost or mixed up trials (issue 12, items 5 and 6): a worker killed on a journal-file storage
(a real process, a real SIGKILL) leaves a trial that is run again, a live one is waited for, one claimed on
another machine is reported lost; a study resumed on other modalities, another fusion, configuration or
objective is refused before any trial is added, also a study made before definitions were stored."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from benchmarks.cli import run_cli
from benchmarks.journal_claims import Claims, judge
from benchmarks.studies import StorageSpec, open_study
from benchmarks.study_definition import DEFINITION
from benchmarks.tune import Session, TuneSpec, main, sample_overrides, tune, write_results
from benchmarks.workqueue import ERROR, UNIT, WORKER, attempts, enqueue, work
from tests.test_run import TINY_CONFIG

ROOT = Path(__file__).resolve().parents[1]

UNIT_WORKER = """
import sys, time
from benchmarks.journal_claims import Claims
from benchmarks.studies import StorageSpec, open_study
from benchmarks.workqueue import UNIT, work

journal, seconds, names = sys.argv[1], float(sys.argv[2]), sys.argv[3].split(",")
storage = StorageSpec(journal=journal)

def run(trial):
    print("claimed", trial.user_attrs[UNIT], flush=True)
    time.sleep(seconds)
    return 1.0

work(open_study(storage, "units"), names, run, storage.retry(), claims=Claims.of(storage))
"""


@pytest.fixture
def tiny_config(tmp_path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_CONFIG)
    return path


def journal_units(tmp_path: Path, names: list[str]) -> tuple[StorageSpec, optuna.Study]:
    storage = StorageSpec(journal=str(tmp_path / "studies.journal"))
    study = open_study(storage, "units")
    enqueue(study, {name: {} for name in names})
    return storage, study


def start_unit_worker(storage: StorageSpec, seconds: float, names: str) -> subprocess.Popen:
    """A worker process on the journal that announces each unit it claims, then sleeps ``seconds`` in it."""
    return subprocess.Popen([sys.executable, "-c", UNIT_WORKER, storage.journal, str(seconds), names], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_killed_workers_unit_on_a_journal_runs_again(tmp_path):
    """A worker SIGKILLed while it runs unit a: the next worker marks a FAIL (naming the dead worker) and runs
    it again, with b; nothing is left RUNNING."""
    storage, study = journal_units(tmp_path, ["a", "b"])
    worker = start_unit_worker(storage, 600, "a,b")
    assert worker.stdout.readline() == "claimed a\n", worker.stderr.read()
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    killed = study.get_trials()[0]
    assert killed.state == TrialState.RUNNING and killed.user_attrs[WORKER].endswith(f":{worker.pid}")

    ran = []
    work(study, ["a", "b"], lambda trial: ran.append(trial.user_attrs[UNIT]) or 1.0, storage.retry(),
         claims=Claims.of(storage))
    assert sorted(ran) == ["a", "b"]
    chain = attempts(study.get_trials())["a"]
    assert [t.state for t in chain] == [TrialState.FAIL, TrialState.COMPLETE]
    assert f"its worker {socket.gethostname()}:{worker.pid} ended while running it" in chain[0].user_attrs[ERROR]
    assert chain[1].system_attrs["retry_history"] == [chain[0].number]
    assert not [t for t in study.get_trials() if t.state == TrialState.RUNNING]


def test_a_live_workers_unit_on_a_journal_is_waited_for_not_run_twice(tmp_path):
    """Another process runs unit a for 3 s: this worker runs b, waits for a to finish, and never runs a."""
    storage, study = journal_units(tmp_path, ["a", "b"])
    worker = start_unit_worker(storage, 3, "a")
    assert worker.stdout.readline() == "claimed a\n", worker.stderr.read()
    ran = []
    work(study, ["a", "b"], lambda trial: ran.append(trial.user_attrs[UNIT]) or 1.0, storage.retry(), poll=0.2,
         claims=Claims.of(storage))
    chains = attempts(study.get_trials())  # as work returned: it waited for a
    assert [t.state for t in chains["a"]] == [TrialState.COMPLETE] and [len(chains[n]) for n in "ab"] == [1, 1]
    assert ran == ["b"] and worker.wait(timeout=30) == 0


def test_a_storage_without_heartbeats_needs_claims(tmp_path):
    storage, study = journal_units(tmp_path, ["a"])
    with pytest.raises(ValueError, match="a storage without heartbeats needs claim locks"):
        work(study, ["a"], lambda trial: 1.0, storage.retry())


def test_a_free_claim_is_judged_by_its_lock_record_or_the_worker_it_names():
    """With the lock free: a record of this host is stale; another host cannot be judged here; without a record
    (a claim made without a lock), a process of this host that is gone is stale, one that exists is unknown."""
    host = socket.gethostname()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()

    def running(worker: str | None = None) -> optuna.trial.FrozenTrial:
        return optuna.trial.create_trial(state=TrialState.RUNNING, user_attrs={WORKER: worker} if worker else {})

    assert judge(running(), f"{host}:{gone.pid}").alive is False
    assert judge(running(f"{host}:{gone.pid}"), "").alive is False
    elsewhere = judge(running(), "elsewhere:4242")
    assert elsewhere.alive is None and "elsewhere:4242 runs on another machine" in elsewhere.reason
    assert judge(running("elsewhere:4242"), "").alive is None
    assert judge(running(f"{host}:{os.getpid()}"), "").alive is None
    assert judge(running(), "").alive is None


def test_a_trial_claimed_on_another_machine_is_reported_lost(tmp_path, tiny_config, capsys):
    """A journal study whose trial-0 another machine claimed: this worker runs trial-1 only, and the results
    come with one warning that counts the lost trial and says why."""
    spec = TuneSpec(fusion="concat", trials=2, workers=2, config_file=str(tiny_config), out=str(tmp_path),
                    device="cpu", quiet=True)
    session = Session.open(spec)
    enqueue(session.study, {name: {} for name in spec.units()})  # as tune() does before its workers start
    first = session.study.get_trials()[0]
    session.study._storage.set_trial_state_values(first._trial_id, TrialState.RUNNING)
    session.study._storage.set_trial_user_attr(first._trial_id, WORKER, "elsewhere:4242")
    session.work()
    document = write_results(session)
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert line.startswith("warning: 1 of 2 trials are not finished and are left out of the results (1 lost to "
                           "this machine, which cannot tell whether their workers live): trial-0 (its worker "
                           "elsewhere:4242 runs on another machine"), line
    assert [t.state for t in session.study.get_trials()] == [TrialState.RUNNING, TrialState.COMPLETE]
    assert document["trials"]["running"] == 1 and document["trial"] == 1


# --- a study resumed with another definition ------------------------------------------------------------------

@pytest.fixture(scope="module")
def grf_text_audio(tmp_path_factory) -> tuple[Path, Path, dict]:
    """GRF tuned on text and audio (1 trial) as study 'shared' in <out>/studies.db; its definition."""
    out = tmp_path_factory.mktemp("shared")
    config = out / "tiny.toml"
    config.write_text(TINY_CONFIG)
    tune(TuneSpec(fusion="grf", modalities=["text", "audio"], trials=1, study_name="shared", config_file=str(config),
                  out=str(out), device="cpu", quiet=True))
    return out, config, load(out, "shared").user_attrs[DEFINITION]


def load(out: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'studies.db'}")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--modalities", "text,audio,vision"], "was tuned with modalities text, audio (this run: text, audio, vision)"
                                                " (also different: feature sizes, search space); "),
        (["--modalities", "audio,text"], "was tuned with modalities text, audio (this run: audio, text)"),
        (["--fusion", "concat"], "was tuned with fusion grf (this run: concat)"),
        (["--epochs", "3"], "was tuned with other fixed configuration: protocol.max_epochs 2 (this run: 3); "),
        (["--train-seed", "1"], "was tuned with other objective: train_seed 0 (this run: 1); "),
    ],
)
def test_a_study_resumed_with_another_definition_is_refused_before_any_trial(grf_text_audio, capsys, args, message):
    out, config, definition = grf_text_audio
    before = load(out, "shared").get_trials()
    base = ["--fusion", "grf", "--modalities", "text,audio", "--trials", "3", "--study-name", "shared"]
    status = run_cli(main, [*base, *args, "--config", str(config), "--out", str(out), "--device", "cpu", "--quiet"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"error: study 'shared' in sqlite:///{out.resolve() / 'studies.db'} {message}"), lines
    assert lines[0].endswith("use another --study-name (or another --out)")
    study = load(out, "shared")
    assert study.get_trials() == before and study.user_attrs[DEFINITION] == definition  # nothing added


def test_a_study_resumed_with_its_own_definition_goes_on(grf_text_audio, tmp_path):
    """The same command with a larger budget adds the missing trial (the stored definition survives storage)."""
    out, config, definition = grf_text_audio
    copy = tmp_path / "studies.db"
    copy.write_bytes((out / "studies.db").read_bytes())  # the module's study stays as it was for the others
    tune(TuneSpec(fusion="grf", modalities=["text", "audio"], trials=2, study_name="shared", config_file=str(config),
                  out=str(tmp_path), device="cpu", quiet=True))
    study = load(tmp_path, "shared")
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE] * 2
    assert study.user_attrs[DEFINITION] == definition
    assert json.loads(json.dumps(definition)) == definition


def legacy_study(out: Path, modalities: list[str]) -> optuna.Study:
    """A study as an earlier version left it: one GRF trial on ``modalities``, no definition."""
    study = optuna.create_study(study_name="legacy", storage=f"sqlite:///{out / 'studies.db'}")
    trial = study.ask()
    sample_overrides(trial, "grf", modalities)
    trial.set_user_attr("config", {"fusion": "grf", "dataset": {"name": "synthetic", "modalities": modalities}})
    trial.set_user_attr(UNIT, "trial-0")
    study.tell(trial, 1.0)
    return study


def test_a_study_made_before_definitions_is_checked_on_what_its_trials_show(tmp_path, tiny_config, capsys):
    legacy_study(tmp_path, ["text", "audio"])
    status = run_cli(main, ["--fusion", "grf", "--trials", "2", "--study-name", "legacy", "--config",
                            str(tiny_config), "--out", str(tmp_path), "--device", "cpu", "--quiet"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(lines) == 1, lines
    assert "was tuned with modalities text, audio (this run: text, audio, vision) (also different: search space)" \
        in lines[0]
    study = load(tmp_path, "legacy")
    assert len(study.get_trials()) == 1 and DEFINITION not in study.user_attrs

    tune(TuneSpec(fusion="grf", modalities=["text", "audio"], trials=2, study_name="legacy",
                  config_file=str(tiny_config), out=str(tmp_path), device="cpu", quiet=True))
    study = load(tmp_path, "legacy")
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE] * 2
    assert study.user_attrs[DEFINITION]["modalities"] == ["text", "audio"]


def test_a_rerun_with_another_worker_count_carries_on_the_study_in_its_folder(tmp_path):
    """The default storage is the study file already in --out: ``--workers 2`` after ``--workers 1`` goes on with
    ``studies.db`` (and the reverse with ``studies.journal``) instead of silently starting another study."""
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    one, two = (TuneSpec(fusion="concat", out=str(tmp_path / "a"), workers=k) for k in (1, 2))
    assert one.storage_spec().url.endswith("/a/studies.db") and two.storage_spec().journal is not None
    open_study(one.storage_spec(), "s")  # the first run made studies.db
    assert two.storage_spec() == one.storage_spec()
    later = TuneSpec(fusion="concat", out=str(tmp_path / "b"), workers=2)
    open_study(later.storage_spec(), "s")  # the first run made studies.journal
    assert TuneSpec(fusion="concat", out=str(tmp_path / "b"), workers=1).storage_spec() == later.storage_spec()
