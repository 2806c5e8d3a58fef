"""Faults a new user's review found: tuned parameters from other data, and the Acc-7 companion cell of the
reference protocol on a task without Acc-7."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from benchmarks.config import ConfigError
from benchmarks.data import from_arrays, make_synthetic
from benchmarks.experiment import Experiment
from benchmarks.protocols import with_rounded_cells
from benchmarks.run import RunSpec
from benchmarks.tuned import best_params_path
from records.schema import write_document

TINY_DATA = "[datasets.synthetic]\nsizes = [24, 8, 8]\nseq_lens = 4\n"


def _tuned_on(folder, fingerprint: str) -> None:
    write_document(best_params_path(folder, "synthetic", "concat"), {
        "fusion": "concat", "dataset": "synthetic", "config": {"dropout": 0.25},
        "cell": {"protocol": {"name": "shared"}, "dataset": {"name": "synthetic", "path": "/elsewhere/data.pkl",
                                                             "options": {}, "modalities": ["text", "audio"],
                                                             "fingerprint": fingerprint}},
    }, "best_params")


def test_parameters_tuned_on_other_data_are_refused_in_one_line(tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_DATA)
    spec = RunSpec(fusions=["concat"], config_file=str(config), seeds=[0], out=str(tmp_path / "run"),
                   params=str(tmp_path / "tune"))
    _tuned_on(tmp_path / "tune", "0123456789abcdef")
    with pytest.raises(ConfigError) as caught:
        Experiment.build(spec)
    message = str(caught.value)
    assert "\n" not in message and "was tuned on other synthetic data (path /elsewhere/data.pkl" in message
    assert "fingerprint 0123456789abcdef) than this run's" in message and "tune on this data" in message

    fingerprint = Experiment.build(RunSpec(**{**spec.__dict__, "params": None})).described["fingerprint"]
    _tuned_on(tmp_path / "tune", fingerprint)  # tuned on this very data: used
    assert Experiment.build(spec).cell("concat").hparams["dropout"] == 0.25


def test_the_acc7_companion_cell_is_only_for_tasks_that_report_acc7():
    regression = from_arrays(
        {name: {"x_a": split.xs[0].numpy(), "x_b": split.xs[1].numpy(), "labels": split.labels.numpy()}
         for name, split in make_synthetic(sizes=(12, 4, 4), seq_lens=3).splits.items()},
        task="regression", name="toy")
    experiment = SimpleNamespace(data=regression, cell=lambda fusion: pytest.fail("no companion for regression"))
    assert with_rounded_cells(experiment, ["grf"]) == ["grf"]
    sentiment = SimpleNamespace(data=make_synthetic(sizes=(12, 4, 4), seq_lens=3),
                                cell=lambda fusion: SimpleNamespace(protocol=SimpleNamespace(rounded_cell=True),
                                                                    label="grf", fusion="grf"))
    expanded = with_rounded_cells(sentiment, ["grf"])
    assert expanded[0] == "grf" and expanded[1].label == "grf[acc7]"
