"""The ablation command: variants, table, tests and figure on tiny synthetic data."""

from __future__ import annotations

import pandas as pd
import pytest

from benchmarks.ablate import GROUPS, ablations, run_ablation
from benchmarks.experiment import RunSpec
from tests.test_run import TINY_CONFIG


def test_variant_list():
    found = ablations(["text", "audio", "vision"], {"num_layers": 2, "aux_weight": 0.4, "order": None})
    labels = [a.variant.label for a in found]
    assert labels[0] == "grf" and len(set(labels)) == len(labels)
    assert {a.group for a in found} == {"reference", *GROUPS}
    orders = [a for a in found if a.group == "order"]
    assert len(orders) == 5  # the 6 permutations of three modalities, less the reference's own order
    assert [a.variant.overrides["num_layers"] for a in found if a.group == "layers"] == [1, 3, 4]
    assert not [a for a in ablations(["a", "b"], {"aux_weight": 0.0}, ("aux",))][1:]
    many = ablations([f"m{i}" for i in range(6)], {}, ("order",), orders=4)
    assert len(many) == 5  # reference + a seeded sample of 4 of the 719 other orders


def test_ablation_command_writes_table_tests_and_figure(tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_CONFIG)
    out = tmp_path / "ablate"
    run = RunSpec(fusions=[], seeds=[0, 1, 2], epochs=1, config_file=str(config), out=str(out))
    summary = run_ablation(run, groups=("gate", "weights", "order"), quiet=True)
    assert list(summary["fusion"])[:2] == ["grf", "grf:gate=gru"] and len(summary) == 1 + 3 + 1 + 5
    assert {"group", "mae_mean", "mae_std", "diff", "t_pvalue_holm", "params", "flops"} <= set(summary.columns)
    reference = summary.set_index("fusion").loc["grf"]
    shared = summary.set_index("fusion").loc["grf:weights=shared"]
    assert shared["params"] < reference["params"] and shared["flops"] == reference["flops"]
    assert summary.set_index("fusion").loc["grf:gate=none", "flops"] < reference["flops"]
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 10 * 3 and set(runs["model"]) == {"grf"}
    assert "grf:order=vision-audio-text" in set(runs["fusion"])
    for name in ("ablation.csv", "ablation.md", "ablation.tex", "order.csv", "figures/ablation.png",
                 "figures/ablation.pdf"):
        assert (out / name).stat().st_size > 0, name
    tex = (out / "ablation.tex").read_text()
    assert r"\toprule" in tex and r"$\Delta$mae" in tex and r"$\pm$" in tex
    assert tex.isascii(), "pdfLaTeX without Unicode set-up stops at the first non-ASCII character"
    differences = [line.split("|")[7].strip() for line in (out / "ablation.md").read_text().splitlines()[3:]
                   if line.startswith("|")]
    assert differences and all(d[0] in "+-" for d in differences), differences  # signed, as the legend says
    order = pd.read_csv(out / "order.csv")
    assert order.loc[0, "orders"] == 6 and 0 <= order.loc[0, "friedman_pvalue"] <= 1


def test_unknown_group_is_refused():
    with pytest.raises(ValueError, match="unknown ablation group 'gates'; groups: gate, attention"):
        run_ablation(RunSpec(fusions=[]), groups=("gates",), quiet=True)
