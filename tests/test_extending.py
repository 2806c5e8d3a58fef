"""Adding a fusion is one class with ``@register_fusion``: a toy one registered here is built by name, accepted by
``--fusions``, trained by the runner and tabulated, with nothing else changed. (The
other extension paths have their own toy registrations: a dataset, a metric and a task in ``test_tasks.py``, a
cost measure in ``test_measures.py``.)"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

import fusions.registry
from benchmarks.cli import parse_fusions
from benchmarks.experiment import RunSpec
from benchmarks.run import run_benchmark
from fusions import Fusion, FusionOutput, build_fusion, list_fusions, register_fusion
from fusions.layers import masked_mean
from tests.test_run import TINY_CONFIG


@pytest.fixture
def toy_fusion(monkeypatch):
    """``maxmean``: the masked means of the modalities, projected and maxed; the registry is restored after."""
    monkeypatch.setattr(fusions.registry, "_FUSIONS", dict(fusions.registry._FUSIONS))

    @register_fusion("maxmean")
    class MaxMean(Fusion):
        def __init__(self, dims: list[int], *, d_model: int = 8):
            super().__init__(dims)
            self.out_dim = d_model
            self.projections = nn.ModuleList(nn.Linear(dim, d_model) for dim in dims)

        def fuse(self, xs: list[Tensor], masks: list[Tensor]) -> FusionOutput:
            pooled = torch.stack([p(masked_mean(x, m)) for p, x, m in zip(self.projections, xs, masks)])
            fused = pooled.max(0).values
            return FusionOutput(fused=fused, states=[fused])

    return MaxMean


def test_a_registered_fusion_is_built_parsed_and_trained_by_name(toy_fusion, tmp_path):
    assert "maxmean" in list_fusions() and "maxmean" in parse_fusions("all")
    assert parse_fusions("maxmean:d_model=4")[0].overrides == {"d_model": 4}
    fusion = build_fusion("maxmean", [3, 5], d_model=4)
    out = fusion([torch.randn(2, 6, 3), torch.randn(2, 4, 5)], [torch.ones(2, 6, dtype=torch.bool),
                                                                  torch.ones(2, 4, dtype=torch.bool)])
    assert out.shape == (2, 4)
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_CONFIG + "\n[fusions.maxmean]\nd_model = 6\n")
    records = run_benchmark(RunSpec(fusions=["maxmean"], seeds=[0], epochs=1, config_file=str(config),
                                    out=str(tmp_path / "run"), device="cpu"), quiet=True, report=False)
    assert records.loc[0, "status"] == "done" and records.loc[0, "fusion"] == "maxmean"
    assert records.loc[0, "params"] == (12 + 5 + 7 + 3) * 6 + (6 * 3 + 3 + 3 + 1)  # projections + the suite's head
    assert (tmp_path / "run" / "table.md").read_text().count("maxmean") >= 1


def test_a_name_registered_twice_is_refused(toy_fusion):
    with pytest.raises(ValueError, match="fusion 'maxmean' is already registered by"):
        register_fusion("maxmean")(type("Other", (Fusion,), {}))


def test_plugins_named_in_the_environment_reach_every_command(tmp_path, monkeypatch, capsys, scratch_tasks):
    """A metric registered in the user's own module, named in ``FUSIONBENCH_PLUGINS``, is known to a command
    that never imports that module itself (e.g. a later report of a run that used it)."""
    import sys

    import tasks
    from records.cli import run_cli

    (tmp_path / "my_metrics.py").write_text(
        "import numpy as np\nfrom tasks import register_metric\n\n"
        "@register_metric(higher_is_better=False, unit='label units', definition='largest absolute error',\n"
        "                 tasks=['sentiment'])\n"
        "def plugin_max_error(labels, predictions):\n"
        "    return float(np.abs(labels - predictions).max())\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_metrics", raising=False)
    monkeypatch.setenv("FUSIONBENCH_PLUGINS", "my_metrics")
    assert run_cli(lambda argv: 0 if "plugin_max_error" in tasks.get_task("sentiment").metrics else 3, []) == 0
    monkeypatch.setenv("FUSIONBENCH_PLUGINS", "my_metrics, not_a_module")
    assert run_cli(lambda argv: 0, []) == 2
    assert capsys.readouterr().err.startswith(
        "error: FUSIONBENCH_PLUGINS names the module 'not_a_module', which cannot be imported")
