"""Shared fixtures: small random modalities and tiny hyperparameters that every fusion accepts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import fusions
from tasks import registry as task_registry

SHARED_MOSI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mosi"

TINY = dict(d_model=8, num_heads=2, num_layers=1, dim_feedforward=16, dropout=0.0)


def tiny_hparams(name: str, **overrides) -> dict:
    """The TINY hyperparameters a fusion accepts (plus overrides)."""
    accepted = fusions.fusion_hparams(name)
    return {k: v for k, v in {**TINY, **overrides}.items() if k in accepted}


def random_modalities(
    dims: list[int], lengths: list[int], batch: int = 3, seed: int = 0
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Padded modalities ``[batch, length_i, dim_i]`` with random true lengths, real steps first."""
    generator = torch.Generator().manual_seed(seed)
    xs, masks = [], []
    for dim, length in zip(dims, lengths):
        true = torch.randint(1, length + 1, (batch,), generator=generator)
        true[0] = length  # one full-length sample
        mask = torch.arange(length).unsqueeze(0) < true.unsqueeze(1)
        xs.append(torch.randn(batch, length, dim, generator=generator) * mask.unsqueeze(-1))
        masks.append(mask)
    return xs, masks


@pytest.fixture(autouse=True)
def _own_cache(monkeypatch, tmp_path_factory):
    """Every test caches prepared data (``FUSIONBENCH_CACHE``: .csd alignments, pickles) in a folder of its own,
    never in the user's cache; a test may point it elsewhere."""
    monkeypatch.setenv("FUSIONBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(params=fusions.list_fusions())
def fusion_name(request) -> str:
    return request.param


@pytest.fixture
def scratch_tasks(monkeypatch):
    """The task and metric registries (``tasks``), restored after the test: it may register toy ones freely."""
    monkeypatch.setattr(task_registry, "_TASKS", dict(task_registry._TASKS))
    monkeypatch.setattr(task_registry, "_METRICS", dict(task_registry._METRICS))


@pytest.fixture
def keep_threads():
    """Restores torch's CPU thread count after a test that sets it (``--threads``)."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def pg_url() -> str:
    """FUSIONBENCH_PG_URL, the PostgreSQL database of the multi-worker tests (``.ci/run`` starts a server and
    sets it). Without it the test skips, except under CI (``CI`` set), where a missing server is a failure:
    a broken server start must not give a green run that tested nothing shared."""
    url = os.environ.get("FUSIONBENCH_PG_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI is set but FUSIONBENCH_PG_URL is not: .ci/run could not start PostgreSQL")
        pytest.skip("needs FUSIONBENCH_PG_URL (a PostgreSQL server)")
    return url


@pytest.fixture
def no_env(monkeypatch):
    """No reference checkout named by the environment (``FUSIONBENCH_<MODEL>_REPO``): the test's own flags count."""
    from benchmarks.reference import REFERENCES

    for check in REFERENCES.values():
        monkeypatch.delenv(check.env, raising=False)


@pytest.fixture
def tiny(tmp_path) -> str:
    """A tiny training configuration file (``tests.test_run.TINY_CONFIG``), as the commands' ``--config``."""
    from tests.test_run import TINY_CONFIG

    path = tmp_path / "tiny.toml"
    path.write_text(TINY_CONFIG)
    return str(path)


@pytest.fixture
def loads(monkeypatch) -> list:
    """The names of the datasets the experiment layer loads, in order (``benchmarks.experiment.load_dataset``
    counted)."""
    import benchmarks.experiment

    calls = []
    original = benchmarks.experiment.load_dataset

    def counting(*args, **kwargs):
        calls.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(benchmarks.experiment, "load_dataset", counting)
    return calls
