"""Training protocols: each option of ``Protocol`` changes training as documented, the shared protocol is what it
was (hash and results), and ``--protocol reference`` trains every fusion on a MOSI file with records that say so."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

import fusions
from analysis.records import load_run, records_protocol
from analysis.tables import summary_frame
from benchmarks import config as config_module
from benchmarks.config import CellConfig, ConfigError, Protocol, resolve
from benchmarks.data import load_dataset, make_synthetic
from benchmarks.experiment import RunSpec, build_config, config_layers
from benchmarks.protocols import protocol_layers, with_rounded_cells
from benchmarks.run import main as run_main
from benchmarks.train import (
    build_cell_model,
    lr_factor,
    make_optimizer,
    make_schedule,
    protocol_data,
    train_cell,
)
from records.cli import run_cli
from records.layout import cell_dir
from tasks import get_task, register_task
from tests.conftest import tiny_hparams
from tests.mosi_fixtures import sample_segments, write_mult

MOSI_DESCRIBED = {"name": "mosi", "path": "/x/mosi_data.pkl", "options": {},
                  "modalities": ["text", "audio", "vision"], "fingerprint": "0123456789abcdef"}


def tiny_data():
    return make_synthetic(sizes=[48, 24, 24], seq_lens=8, dims=[12, 5, 7], seed=0)


def tiny_cell(fusion: str = "concat", **protocol) -> CellConfig:
    return CellConfig(fusion=fusion, hparams=tiny_hparams(fusion), dataset={"name": "synthetic"},
                      protocol=Protocol(**{"warmup_epochs": 1, "max_epochs": 3, "patience": 5, "batch_size": 16,
                                           **protocol}))


# ------------------------------------------------------------------------------------ the shared protocol stays


def test_existing_cell_hashes_are_unchanged(monkeypatch):
    """Hashes computed before the protocol options existed (code version fixed): new fields at their defaults are
    left out of the hashed configuration, so every stored cell keeps its folder."""
    monkeypatch.setattr(config_module, "code_version", lambda: "fixedversion")
    hparams = {"d_model": 64, "order": ["text", "vision", "audio"]}
    shared = CellConfig("grf", hparams, Protocol(), MOSI_DESCRIBED, label="grf")
    tuned = CellConfig("grf", hparams, Protocol(lr=5e-4, max_epochs=40, batch_size=24, grad_clip=0.8),
                       MOSI_DESCRIBED, label="grf")
    assert (shared.hash, tuned.hash) == ("92da26ae82", "5b4cc7aa6d")
    assert list(shared.as_dict()["protocol"]) == ["lr", "weight_decay", "warmup_epochs", "max_epochs", "patience",
                                                  "batch_size", "grad_clip", "min_lr", "eval_batch_size"]
    for changed in ({"name": "reference"}, {"optimizer": "adam"}, {"schedule": "plateau"}, {"padding": "full"},
                    {"labels": "rounded"}, {"selection": "valid_loss"}):
        other = CellConfig("grf", hparams, Protocol(**changed), MOSI_DESCRIBED, label="grf")
        assert other.hash != shared.hash and other.as_dict()["protocol"].items() >= changed.items()


def test_shared_protocol_results_are_unchanged():
    """A concat cell under the shared protocol, with the numbers it gave before the protocol options existed."""
    cell = CellConfig(fusion="concat", hparams={"d_model": 8, "dim_feedforward": 16}, dataset={"name": "synthetic"},
                      protocol=Protocol(warmup_epochs=1, max_epochs=3, patience=5, batch_size=16))
    result = train_cell(cell, tiny_data(), seed=0)
    assert result.test.metrics["mae"] == pytest.approx(1.3246565231432517, rel=1e-5)
    assert result.test.metrics["acc7"] == pytest.approx(0.20833333333333334)
    assert result.best_epoch == 1
    assert [row["lr"] for row in result.curves] == pytest.approx([0.001, 0.0005005, 1e-06])
    assert [row["train_loss"] for row in result.curves] == pytest.approx(
        [1.5183227856953938, 1.5181975364685059, 1.5173336664835613], rel=1e-5)


def test_shared_protocol_leaves_the_data_as_loaded():
    data = tiny_data()
    assert protocol_data(data, Protocol()) is data


# ------------------------------------------------------------------------------------------ optimiser


def _step_with_zero_loss(protocol: Protocol) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step of a tiny model whose loss has zero gradient: only weight decay moves a weight."""
    torch.manual_seed(0)
    model = build_cell_model(tiny_cell(), tiny_data())
    optimizer = make_optimizer(model, protocol)
    weight = next(p for p in model.parameters() if p.dim() == 2)
    before = weight.detach().clone()
    (0.0 * sum(p.sum() for p in model.parameters())).backward()
    optimizer.step()
    return before, weight.detach()


def test_adamw_decays_weights_apart_from_the_gradient_and_adam_through_it():
    lr, decay = 1e-2, 0.5
    before, after = _step_with_zero_loss(Protocol(lr=lr, weight_decay=decay))
    assert after == pytest.approx(before * (1 - lr * decay), abs=1e-7)  # AdamW: decoupled decay, no Adam step
    before, after = _step_with_zero_loss(Protocol(optimizer="adam", lr=lr, weight_decay=decay))
    # Adam: the decay is the gradient (decay * w), normalised by Adam: a step of lr * sign(w)
    assert after == pytest.approx(before - lr * torch.sign(before), abs=1e-5)
    model = build_cell_model(tiny_cell(), tiny_data())
    assert type(make_optimizer(model, Protocol())) is torch.optim.AdamW
    assert type(make_optimizer(model, Protocol(optimizer="adam"))) is torch.optim.Adam


# ------------------------------------------------------------------------------------------ schedules


def _step_rates(monkeypatch, protocol_values: dict) -> tuple[list[float], int]:
    """The learning rate of every optimiser step of a 3-epoch tiny cell, and the steps per epoch."""
    rates = []
    real = make_optimizer

    def recording(model, protocol):
        optimizer = real(model, protocol)
        optimizer.register_step_pre_hook(lambda opt, args, kwargs: rates.append(opt.param_groups[0]["lr"]))
        return optimizer

    monkeypatch.setattr("benchmarks.train.make_optimizer", recording)
    train_cell(tiny_cell(**protocol_values), tiny_data(), seed=0)
    return rates, 3  # 48 training samples in batches of 16


def test_per_epoch_schedule_changes_the_rate_only_between_epochs(monkeypatch):
    rates, per_epoch = _step_rates(monkeypatch, {"schedule": "warmup_cosine_epoch", "warmup_epochs": 2,
                                                 "max_epochs": 3, "patience": 0})
    expected = [1e-3 * lr_factor(epoch, 2, 3, 1e-3) for epoch in range(3) for _ in range(per_epoch)]
    assert rates == pytest.approx(expected)  # 5e-4, 1e-3, then the cosine's value at epoch 2 (GRF's SequentialLR)
    assert rates[0] == rates[2] != rates[3]
    shared, _ = _step_rates(monkeypatch, {"warmup_epochs": 2, "max_epochs": 3, "patience": 0})
    assert shared[0] != shared[1]  # per optimiser step: the warm-up moves within the first epoch


def test_plateau_schedule_lowers_the_rate_after_patience_epochs_without_a_better_validation_loss():
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    schedule, steps = make_schedule(optimizer, Protocol(schedule="plateau", plateau_patience=2, plateau_factor=0.1),
                                    steps_per_epoch=5)
    assert steps == "valid"
    rates = []
    for valid_loss in (1.0, 0.9, 0.95, 0.92, 0.91, 0.93, 0.94):
        schedule.step(valid_loss)
        rates.append(optimizer.param_groups[0]["lr"])
    assert rates == pytest.approx([1e-3, 1e-3, 1e-3, 1e-3, 1e-4, 1e-4, 1e-4])
    # in training: the rate after each epoch follows the validation losses the cell recorded
    result = train_cell(tiny_cell(schedule="plateau", plateau_patience=0, plateau_factor=0.5, max_epochs=4,
                                  patience=0, lr=5e-2), tiny_data(), seed=0)
    best, rate = float("inf"), 5e-2
    for row in result.curves:
        if row["valid_loss"] < best * (1 - 1e-4):
            best = row["valid_loss"]
        else:
            rate *= 0.5
        assert row["lr"] == pytest.approx(rate)
    assert result.epochs == 4


def test_constant_schedule_no_clipping_and_no_early_stopping(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("grad_clip = 0 must not clip")

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", refuse)
    rates, _ = _step_rates(monkeypatch, {"schedule": "constant", "grad_clip": 0.0, "patience": 0, "max_epochs": 3,
                                         "lr": 3e-3})
    assert rates == [3e-3] * 9  # every step of every epoch: no early stopping with patience 0


def test_valid_loss_selection_picks_the_epoch_of_the_lowest_validation_loss(scratch_tasks):
    """On a task that selects by correlation, ``task`` picks the best-correlation epoch and ``valid_loss`` the
    lowest-loss one (on the built-in tasks they agree: sentiment selects by MAE, its loss is L1)."""
    register_task(dataclasses.replace(get_task("sentiment"), name="sentiment_by_corr", selection="corr"))
    data = dataclasses.replace(tiny_data(), task="sentiment_by_corr")
    protocol = {"max_epochs": 5, "patience": 0, "lr": 3e-2, "schedule": "constant"}
    by_loss = train_cell(tiny_cell(selection="valid_loss", **protocol), data, seed=0)
    by_task = train_cell(tiny_cell(**protocol), data, seed=0)
    def without_time(curves):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in curves]

    assert without_time(by_loss.curves) == without_time(by_task.curves)  # one training; only the epoch tested differs
    assert by_loss.best_epoch == 1 + int(np.argmin([row["valid_loss"] for row in by_loss.curves])) == 4
    assert by_task.best_epoch == 1 + int(np.argmax([row["valid_corr"] for row in by_task.curves])) == 2
    assert by_loss.test.metrics != by_task.test.metrics


# ------------------------------------------------------------------------------------------ data


def test_full_padding_lays_out_every_sample_as_mults_pickles_store_it(tmp_path):
    """MulT's own (left-padded) pickle, loaded (real steps first, masks), then prepared with full padding: the
    stored arrays again, every step real."""
    path = tmp_path / "mosi_data.pkl"
    write_mult(path, sample_segments((6, 3, 3)), dims=(6, 3, 4), steps=(8, 8, 8))
    with pytest.warns(RuntimeWarning):
        data = load_dataset("mosi", path)
    assert not all(bool(m.all()) for m in data.train.masks)
    full = protocol_data(data, Protocol(padding="full"))
    stored = pd.read_pickle(path)
    for split in ("train", "valid", "test"):
        for name, x, mask in zip(full.modality_names, full.splits[split].xs, full.splits[split].masks):
            expected = np.nan_to_num(stored[split][name], neginf=0.0).astype(np.float32)
            assert torch.equal(x, torch.from_numpy(expected)), (split, name)
            assert mask.all()
        assert torch.equal(full.splits[split].labels, data.splits[split].labels)
    assert protocol_data(full, Protocol(padding="full")) is full  # preparing twice changes nothing


def test_rounded_labels_are_integers_and_the_metrics_are_against_them():
    data = tiny_data()
    rounded = protocol_data(data, Protocol(labels="rounded"))
    for split in ("train", "valid", "test"):
        labels = rounded.splits[split].labels
        assert torch.equal(labels, torch.from_numpy(np.round(data.splits[split].labels.numpy())))
        assert labels.dtype == torch.float32
    assert not torch.equal(rounded.test.labels, data.test.labels)
    result = train_cell(tiny_cell(labels="rounded", max_epochs=1), data, seed=0)
    outputs = result.test.outputs
    assert result.test.metrics["mae"] == pytest.approx(np.abs(outputs - rounded.test.labels.numpy()).mean())
    assert result.test.metrics["mae"] != pytest.approx(np.abs(outputs - data.test.labels.numpy()).mean())


def test_rounded_labels_refuse_a_classification_task():
    base = tiny_data()  # as a two-class task
    classes = base.train.labels.gt(0).long()
    toy = type(base)(name="toy", train=type(base.train)(base.train.xs, base.train.masks, classes, base.train.ids),
                     valid=type(base.train)(base.valid.xs, base.valid.masks, base.valid.labels.gt(0).long(),
                                            base.valid.ids),
                     test=type(base.train)(base.test.xs, base.test.masks, base.test.labels.gt(0).long(),
                                           base.test.ids),
                     modality_names=base.modality_names, task="binary", num_classes=2)
    with pytest.raises(ValueError, match="applies to regression tasks"):
        protocol_data(toy, Protocol(labels="rounded"))
    experiment = SimpleNamespace(data=toy, cell=lambda fusion: pytest.fail("not asked for a classification task"))
    assert with_rounded_cells(experiment, ["grf"]) == ["grf"]


# ------------------------------------------------------------------------------------------ configuration


@pytest.mark.parametrize("values,message", [
    ({"schedule": "cosine"}, "protocol.schedule must be one of warmup_cosine"),
    ({"optimizer": "sgd"}, "protocol.optimizer must be one of adamw, adam"),
    ({"padding": 3}, "protocol.padding must be a string"),
    ({"rounded_cell": "yes"}, "protocol.rounded_cell must be true or false"),
    ({"plateau_factor": 1.5}, "protocol.plateau_factor must be between 0 and 1"),
    ({"patience": -1}, "protocol.patience must be >= 0"),
    ({"name": "mine"}, "protocol.name must be one of shared, reference"),
    ({"labels": "rounded", "rounded_cell": True}, "labels are rounded already"),
])
def test_bad_protocol_values_name_the_key(values, message):
    with pytest.raises(ConfigError, match=message):
        Protocol.from_dict(values)


def test_reference_layer_follows_the_preset_and_precedes_the_users_settings(tmp_path):
    override = tmp_path / "mine.toml"
    override.write_text("[fusions.mult.protocol]\nbatch_size = 12\n")
    spec = RunSpec(fusions=["mult"], protocol="reference", config_file=str(override), epochs=2)
    assert [where for where, _ in config_layers(spec)] == [
        "preset 'quick'", "protocol 'reference'", f"--config {override}", "--epochs"]
    config = build_config(spec)
    described = {"name": "mosi", "path": None, "options": {}}
    mult = resolve(config, "mult", described)
    assert (mult.protocol.optimizer, mult.protocol.schedule, mult.protocol.selection, mult.protocol.padding) == (
        "adam", "plateau", "valid_loss", "full")
    assert (mult.protocol.batch_size, mult.protocol.max_epochs, mult.protocol.grad_clip) == (12, 2, 0.8)
    assert mult.hparams["padding"] == "reference" and mult.protocol.name == "reference"
    grf = resolve(config, "grf", described)
    assert grf.protocol.schedule == "warmup_cosine_epoch" and grf.protocol.rounded_cell
    concat = resolve(config, "concat", described)  # no public code: the shared protocol's values
    shared = resolve(build_config(RunSpec(fusions=["concat"], epochs=2)), "concat", described)
    assert concat.protocol == Protocol(**{**shared.protocol.as_dict(), "name": "reference"})
    assert protocol_layers("shared") == []
    with pytest.raises(ConfigError, match="unknown protocol 'paper'; protocols: shared, reference"):
        protocol_layers("paper")


# ------------------------------------------------------------------------------------------ records


def test_records_of_two_protocols_are_refused_by_the_tables_and_the_report(tmp_path):
    frame = pd.DataFrame({"fusion": ["grf", "grf"], "seed": [0, 0], "protocol": ["shared", "reference"],
                          "mae": [1.0, 0.9], "status": ["done", "done"]})
    with pytest.raises(ValueError, match="the records mix the protocols shared, reference"):
        summary_frame(frame, ["mae"])
    assert records_protocol(frame.iloc[:1]) == "shared" and records_protocol(frame.drop(columns="protocol")) == \
        "shared"
    (tmp_path / "runs.csv").write_text(frame.assign(config_hash="abc", task="sentiment").to_csv(index=False))
    with pytest.raises(ValueError, match="runs.csv: the records mix the protocols"):
        load_run(tmp_path)


def tiny_toml() -> str:
    lines = []
    for name in fusions.list_fusions():
        lines.append(f"[fusions.{name}]")
        lines += [f"{key} = {value}" for key, value in tiny_hparams(name, memory_layers=1).items()]
    return "\n".join(lines) + "\n"


@pytest.mark.slow  # nine cells of one epoch and the run's tables: about 15 s on two CPU cores
def test_reference_protocol_trains_every_fusion_on_a_mosi_file(tmp_path):
    path = tmp_path / "mosi_data.pkl"
    write_mult(path, sample_segments(), dims=(6, 3, 4), steps=(8, 8, 8))
    config = tmp_path / "tiny.toml"
    config.write_text(tiny_toml())
    out = tmp_path / "out"
    with pytest.warns(RuntimeWarning, match="non-finite"):  # the fixture's -inf audio values
        assert run_main(["--fusions", "all", "--dataset", "mosi", "--data-path", str(path), "--protocol", "reference",
                         "--epochs", "1", "--seed", "0", "--config", str(config), "--out", str(out), "--no-report",
                         "--quiet", "--device", "cpu"]) == 0
    runs = pd.read_csv(out / "runs.csv")
    assert list(runs.fusion) == [x for name in fusions.list_fusions()
                                 for x in ([name, "grf[acc7]"] if name == "grf" else [name])]
    assert (runs.status == "done").all() and (runs.protocol == "reference").all() and (runs.epochs == 1).all()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["protocol"] == "reference" and meta["spec"]["protocol"] == "reference"
    assert meta["cells"]["grf[acc7]"]["protocol"]["labels"] == "rounded"
    assert meta["cells"]["mult"]["hparams"]["padding"] == "reference"
    for _, row in runs.iterrows():
        labels = pd.read_csv(cell_dir(out, row.fusion, row.config_hash, 0) / "predictions.csv")["label"]
        assert (labels == labels.round()).all() == (row.fusion == "grf[acc7]")
    assert load_run(out).records["protocol"].eq("reference").all()


def test_unknown_protocol_is_one_error_line(tmp_path, capsys):
    assert run_cli(run_main, ["--fusions", "concat", "--protocol", "papers", "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == "error: unknown protocol 'papers'; protocols: shared, reference"


def test_a_reference_run_with_its_rounded_cell_ends_with_probes_and_report(tmp_path):
    """The rounded-label cell (``grf[acc7]``) scores other targets for the same samples: it stays in the tables
    and is left out of the per-sample tests and the probes, with a line in the report's index (before, the run
    stopped at the probes: 'grf[acc7] seed 0 was tested on other samples than the first cell')."""
    config = tmp_path / "tiny.toml"
    config.write_text(tiny_toml() + "[datasets.synthetic]\nsizes = [48, 24, 24]\nseq_lens = 8\n")
    out = tmp_path / "out"
    assert run_main(["--fusions", "grf,concat", "--protocol", "reference", "--epochs", "1", "--seed", "0",
                     "--config", str(config), "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    runs = pd.read_csv(out / "runs.csv")
    assert list(runs.fusion) == ["grf", "grf[acc7]", "concat"] and list(runs.labels) == ["raw", "rounded", "raw"]
    assert set(pd.read_csv(out / "probes" / "probed_cells.csv").fusion) == {"grf", "concat"}
    assert "grf[acc7]" in (out / "report" / "tables" / "comparison.md").read_text()
    assert "grf[acc7]: trained and tested on rounded labels" in (out / "report" / "README.md").read_text()
