"""Cost measures, one home: a registered measure becomes a column, a fit and a table column; what the sweep
records is what analysis reads; latency statistics from torch.utils.benchmark; the CPU allocation events; one
training step for scaling and speed; the flags scaling and speed share with the runner; speed's paper settings."""

from __future__ import annotations

import argparse
import ast
import json
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.benchmark import Measurement

import fusions
from analysis import cost_curves
from benchmarks import cost, scaling, speed
from benchmarks.cli import add_training_arguments, parse_fusions, run_cli
from benchmarks.config import load_preset
from records.schema import SchemaError, read_table
from tests.conftest import tiny_hparams

CPU = torch.device("cpu")
TINY_SWEEP = [
    "--fusions", "concat,late", "--modalities", "2,4,8", "--seq-len", "4", "--d-model", "8", "--num-heads", "2",
    "--num-layers", "1", "--batch-size", "2", "--repeats", "2", "--warmup", "1", "--threads", "1", "--no-figures",
    "--quiet",
]


@pytest.fixture
def registry(monkeypatch):
    """The measure registry, as a copy that is thrown away after the test."""
    monkeypatch.setattr(cost.measures, "MEASURES", dict(cost.measures.MEASURES))
    return cost.measures


def test_a_registered_measure_is_a_column_a_fit_and_a_table_column(registry, tmp_path, keep_threads):
    """One registration each: a counted measure (activation bytes saved for the backward pass) and a measured one
    (the slowest timed training step) appear in scaling.csv, scaling_meta.json, the README, the fits and the
    tables of ``python -m benchmarks.scaling``."""
    saved = cost.register_measure(cost.Measure(
        "saved_kib", "KiB / sample", "saved activations", "lower",
        "activation bytes autograd saves for the backward pass, per sample", cost.COUNT,
        lambda cell: cell.counts.saved_bytes_per_sample / 1024, fit=True, short="Saved KiB",
    ))
    slowest = cost.register_measure(cost.Measure(
        "train_max_ms", "ms / batch", "slowest training step", "lower", "the slowest timed training step",
        cost.LATENCY, lambda cell: 1000 * max(cell.latency("train_step").times),
    ))
    assert scaling.main([*TINY_SWEEP, "--out", str(tmp_path)]) == 0

    records = pd.read_csv(tmp_path / "scaling.csv")
    assert list(records.columns) == list(scaling.columns())
    assert list(records.columns).index("train_max_ms") == list(records.columns).index("train_peak_mib") + 2
    assert set(records["status"]) == {"ok"} and (records["train_max_ms"] >= records["train_ms"]).all()
    for _, row in records.iterrows():
        dims = [32] * row["n_modalities"]
        build = partial(fusions.build_fusion, row["fusion"], dims, **json.loads(row["hparams"]))
        counts = cost.count_costs(build, dims, [4] * row["n_modalities"])
        assert row["saved_kib"] == pytest.approx(counts.saved_bytes_per_sample / 1024)

    meta = json.loads((tmp_path / "scaling_meta.json").read_text())
    assert meta["measures"][-2:] == [saved.record(), slowest.record()]
    assert meta["measures"][-1]["measured"] and not meta["measures"][-2]["measured"]
    assert cost_curves.read_measures(tmp_path) == [cost_curves.RecordedMeasure(**m.record())
                                                   for m in cost.list_measures()]

    exponents = pd.read_csv(tmp_path / "exponents.csv")
    fits = exponents[exponents["measure"] == "saved_kib"].set_index("fusion")["k"]
    assert set(fits.index) == {"concat", "late"} and fits.notna().all()
    assert fits["late"] == pytest.approx(1.0, abs=0.01)  # one encoder per modality: linear in n
    assert "train_max_ms" not in set(exponents["measure"])  # registered without fit
    assert "saved activations" in (tmp_path / "exponents.tex").read_text()
    assert "Saved KiB" in (tmp_path / "scaling.tex").read_text()
    readme = (tmp_path / "README.md").read_text()
    assert ("| `saved_kib` | KiB / sample | lower | activation bytes autograd saves for the backward pass, per "
            "sample |") in readme
    assert "Columns: `params`, `flops`, `train_flops`, `saved_kib`." in readme


def test_analysis_names_no_measure():
    """Which columns are fitted, drawn and tabulated comes from scaling_meta.json: no measure name is written in
    analysis.cost_curves."""
    tree = ast.parse(Path(cost_curves.__file__).read_text())
    literals = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    assert not literals & {m.name for m in cost.list_measures()}


def test_records_without_their_measures_are_refused_with_one_line(tmp_path):
    pd.DataFrame({"fusion": ["grf"], "n_modalities": [2], "seq_len": [5], "d_model": [8], "batch_size": [2],
                  "device": ["cpu"], "status": ["ok"], "params": [10]}).to_csv(tmp_path / "scaling.csv", index=False)
    with pytest.raises(SchemaError, match=r"scaling.csv has no scaling_meta.json beside it naming its measures"):
        cost_curves.read_cost_records(tmp_path)
    (tmp_path / "scaling_meta.json").write_text(json.dumps({"command": [], "time_utc": "", "git": None,
                                                            "versions": {}}))
    with pytest.raises(SchemaError, match="has no 'measures' entry"):
        cost_curves.read_cost_records(tmp_path)
    records = pd.read_csv(tmp_path / "scaling.csv").reindex(columns=list(scaling.columns()))
    scaling.write_outputs(records, tmp_path / "new", figures=False)
    meta = json.loads((tmp_path / "new" / "scaling_meta.json").read_text())
    del meta["measures"][0]["unit"]
    (tmp_path / "new" / "scaling_meta.json").write_text(json.dumps(meta))
    with pytest.raises(SchemaError, match="measure 'params' lacks 'unit'"):
        cost_curves.read_cost_records(tmp_path / "new")


@pytest.mark.skipif(not (Path(__file__).parents[1] / "results" / "scaling" / "scaling.csv").exists(),
                    reason="no committed results/scaling")
def test_the_committed_scaling_tables_still_read():
    """results/scaling*/scaling.csv read with every fitted measure's column: those written since measures are
    recorded with their scaling_meta.json; older ones (version 1) lack it, so the report lists them as absent."""
    for folder in sorted((Path(__file__).parents[1] / "results").glob("scaling*")):
        if (folder / "scaling.csv").exists():
            records = read_table(folder / "scaling.csv")
            assert {m.name for m in cost.list_measures()} <= set(records.columns), folder
            if (folder / "scaling_meta.json").exists():
                assert {m.name for m in cost_curves.read_measures(folder)} >= {"params", "flops"}, folder
            else:
                with pytest.raises(SchemaError, match="no scaling_meta.json"):
                    cost_curves.read_measures(folder)


def test_bad_registrations_are_refused(registry):
    params = registry.MEASURES["params"]
    with pytest.raises(ValueError, match="'params' is already registered"):
        cost.register_measure(cost.Measure("params", "x", "x", "lower", "x", cost.COUNT, lambda cell: 0.0))
    assert cost.register_measure(params) is params  # the same registration again is harmless
    for bad, message in (
        (dict(direction="down"), "direction must be one of lower, higher"),
        (dict(follows="nope"), "follows 'nope', which is not a registered measure"),
        (dict(name="a,b"), "a column name needs letters, digits and '_' only"),
    ):
        fields = dict(name="toy", unit="x", label="toy", direction="lower", doc="toy", method=cost.COUNT,
                      value=lambda cell: 0.0)
        with pytest.raises(ValueError, match=message):
            cost.register_measure(cost.Measure(**{**fields, **bad}))
    cost.register_measure(cost.Measure("status", "x", "x", "lower", "x", cost.COUNT, lambda cell: 0.0))
    with pytest.raises(ValueError, match="cost measure 'status' is named like a column of scaling.csv"):
        scaling.columns()


def test_latency_statistics_are_a_torch_benchmark_measurement():
    calls = []
    timing = cost.time_calls(lambda: calls.append(1), 5, CPU, warmup=2)
    assert isinstance(timing, Measurement) and len(calls) == 7 and len(timing.times) == 5
    seconds = np.array(timing.times)
    assert timing.median == pytest.approx(np.median(seconds))
    assert timing.iqr == pytest.approx(np.percentile(seconds, 75) - np.percentile(seconds, 25))
    one = cost.summarize([0.25])
    assert (one.median, one.iqr) == (0.25, 0.0)
    with pytest.raises(ValueError, match="repeats must be at least 1"):
        cost.time_calls(lambda: None, 0, CPU)


def test_cpu_allocations_are_the_events_of_the_public_trace(tmp_path):
    """The private profiler results that ``cost.cpu_allocations`` reads give every CPU allocation and free in
    order, exactly as the public Chrome trace export lists them; a torch release that changes them fails here."""

    def step():
        a = torch.ones(2**16)
        b = torch.ones(2**17)
        del a
        torch.ones(2**17) + b

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    trace = tmp_path / "trace.json"
    prof.export_chrome_trace(str(trace))
    events = [e for e in json.loads(trace.read_text())["traceEvents"]
              if e.get("name") == "[memory]" and e["args"]["Device Type"] == 0]
    public = [e["args"]["Bytes"] for e in sorted(events, key=lambda e: e["ts"])]
    assert cost.cpu_allocations(prof) == public
    assert public[:2] == [2**18, 2**19] and sum(public) == 0


def test_scaling_and_speed_time_one_training_step(monkeypatch, keep_threads):
    """The measured training step is ``cost.Harness.train_step`` for both commands (fusion and predictor)."""
    steps = []
    original = cost.Harness.train_step

    def counted(self):
        steps.append(type(self.model).__name__)
        original(self)

    monkeypatch.setattr(cost.Harness, "train_step", counted)
    cost.measure_cell("concat", [4, 3], [5, 5], 2, tiny_hparams("concat"), CPU, repeats=2, warmup=1)
    assert len(steps) == 1 + 2 + 1  # the first iteration, the repeats, the memory measurement
    speed.measure_speed("concat", dict(d_model=8, dim_feedforward=16), batch_size=2, seq_len=3, repeats=2, warmup=1)
    assert steps[4:] == ["Predictor"] * 4  # warmup, 2 repeats, and the one step whose FLOPs are counted


def test_scaling_and_speed_take_the_runners_device_flag(monkeypatch, tmp_path, capsys):
    """``--device cuda:K`` as the runner takes it: the same help, checked by ``resolve_device``."""
    runner = argparse.ArgumentParser()
    add_training_arguments(runner)
    for parser in (runner, scaling.build_parser(), speed.build_parser()):
        assert "--device DEVICE auto, cpu, cuda or cuda:K" in " ".join(parser.format_help().split())
    absent = "cuda:1" if not torch.cuda.is_available() else f"cuda:{torch.cuda.device_count()}"
    for main, argv in ((scaling.main, TINY_SWEEP), (speed.main, [])):
        assert run_cli(main, [*argv, "--device", absent, "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: --device {absent}: ") and len(err.splitlines()) == 1
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert scaling.config_from_args(scaling.build_parser().parse_args(["--device", "cuda:1"])).device == "cuda:1"


def test_train_is_an_ordinary_flag(monkeypatch, capsys):
    """argparse reads ``--train`` (also as the abbreviation argparse allows) and passes everything on to the
    accuracy sweep; ``--help`` lists it, ``--train --help`` gives the sweep's own help."""
    assert "--train" in scaling.build_parser().format_help()
    passed = []
    monkeypatch.setattr(scaling, "train_main", lambda argv: passed.append(argv) or 0)
    assert scaling.main(["--dataset", "mfeat", "--tra", "--seeds", "2"]) == 0
    assert scaling.main(["--modalities", "2,3", "--train"]) == 0
    assert passed == [["--dataset", "mfeat", "--tra", "--seeds", "2"], ["--modalities", "2,3", "--train"]]
    monkeypatch.undo()
    with pytest.raises(SystemExit) as exit_info:
        scaling.main(["--train", "--help"])
    assert exit_info.value.code == 0 and "python -m benchmarks.scaling --train" in capsys.readouterr().out


def test_speed_reads_the_paper_settings_from_the_preset(monkeypatch, keep_threads):
    preset = load_preset("paper")
    mosi = preset["datasets"]["mosi"]["fusions"]["grf"]["order"]
    assert speed.paper_hparams("grf") == {**preset["fusions"]["grf"],
                                          "order": [list(speed.MOSI_NAMES).index(name) for name in mosi]}
    assert speed.paper_hparams("pairwise") == preset["fusions"]["pairwise"]
    projected = speed.paper_hparams(parse_fusions("pairwise:memory=project")[0])
    assert projected == {**preset["fusions"]["pairwise"], "memory": "project"}

    tiny = {**preset, "fusions": {**preset["fusions"], "concat": dict(d_model=8, dim_feedforward=16)}}
    monkeypatch.setattr(speed, "load_preset", lambda name: tiny)
    result = speed.measure_speed("concat", batch_size=2, seq_len=3, repeats=1, warmup=0)
    built = fusions.build_predictor("concat", list(speed.MOSI_DIMS), d_model=8, dim_feedforward=16)
    assert result["params"] == sum(p.numel() for p in built.parameters())

