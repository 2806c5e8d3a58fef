"""The default run's data: the quick preset sizes the synthetic data for a CPU (20 steps, 4000 training samples),
so that within the default 7 epochs the fusions reach the regime the data tests (below the additive reference);
the paper preset keeps the generator's MOSI shapes. The training runs behind the choice are benchmarks, not
tests (README, "Timings of the default run")."""

from __future__ import annotations

import pytest

from benchmarks.experiment import RunSpec, build_config, load_run_dataset


def run_data(**spec):
    """The dataset and its description as ``python -m benchmarks.run --fusions grf,pairwise`` loads them."""
    spec = RunSpec(fusions=["grf", "pairwise"], **spec)
    return load_run_dataset(spec, build_config(spec))


def test_default_run_trains_on_cpu_sized_synthetic_data():
    data, described = run_data()
    assert described["options"] == {"seq_lens": 20, "sizes": [4000, 229, 686]}
    assert [len(split) for split in data.splits.values()] == [4000, 229, 686]
    assert data.dims == [300, 5, 20] and [x.shape[1] for x in data.train.xs] == [20, 20, 20]
    reference = data.info["reference_mae"]
    for split in reference.values():  # the interaction is worth half the gap between constant and oracle, or more
        assert split["oracle"] + 0.5 < split["additive"] < split["constant"] - 0.2
    # the numbers the README and the generator's docstring give for the default run
    assert reference["test"] == pytest.approx({"oracle": 0.388, "additive": 0.982, "constant": 1.260}, abs=5e-4)


def test_paper_preset_keeps_mosi_shapes():
    data, described = run_data(preset="paper")
    assert described["options"] == {}
    assert [len(split) for split in data.splits.values()] == [1284, 229, 686]
    assert [x.shape[1] for x in data.train.xs] == [50, 50, 50]
    assert data.info["reference_mae"]["test"] == pytest.approx(
        {"oracle": 0.382, "additive": 0.967, "constant": 1.280}, abs=5e-4)


def test_a_config_file_overrides_the_presets_data_options(tmp_path):
    config = tmp_path / "small.toml"
    config.write_text("[datasets.synthetic]\nsizes = [48, 24, 24]\nseq_lens = 8\n")
    data, described = run_data(config_file=str(config))
    assert described["options"] == {"seq_lens": 8, "sizes": [48, 24, 24]}
    assert [len(split) for split in data.splits.values()] == [48, 24, 24]
    assert [x.shape[1] for x in data.train.xs] == [8, 8, 8]
