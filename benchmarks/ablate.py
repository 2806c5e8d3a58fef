"""GRF ablations: train GRF's variants with the runner and compare each with full GRF.

Library: ``run_ablation(AblationSpec(...))``; CLI: ``python -m benchmarks.ablate [--dataset ...] [--seeds ...]
[--preset ...] [--out DIR]``. The variants (``grf.py`` documents the switches), each a ``Variant`` of ``grf``
whose label names what changed:

* gate: the paper's Gated Fusion Unit against a full GRU cell, no gate (``(h + m) / 2``) and a linear map;
* attention: symmetric against context-attends-to-modality only and modality-attends-to-context only;
* context: the pooled single token against the full fused sequence carried forward;
* state: the carried context with the position table's first row and dropout (the authors' code) against bare;
* weights: one block per step against one block shared by every step;
* order: every modality order (for more than four modalities, a seeded sample of ``--orders`` of them);
* aux: the auxiliary loss on against off;
* layers: 1 to 4 decoder layers per stack.

The reference (``grf``) is the preset's GRF. Every variant is trained on the same seeds (paired), and compared
with the reference by a paired t-test per metric, Holm-corrected over all variants x metrics; the order
variants also get a Friedman test across orders. Output in ``--out`` (default ``results/ablate/<dataset>``):
the runner's records and cells, ``ablation.csv`` (one row per variant: metrics mean and std, difference to
GRF, p-values, parameters, FLOPs per sample), ``ablation.md`` / ``ablation.tex``, ``order.csv`` and the
figure ``figures/ablation.{png,pdf}``. A failed cell (see ``benchmarks.run``) is left out of them, listed in
``runs.csv`` with ``status`` "failed", and the ablation ends with ``CellsFailed`` once they are written.
"""

from __future__ import annotations

import itertools
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from records.cli import ArgumentParser
from records.io import atomic_write_text, check_writable
from records.schema import write_table
from tasks import get_task, higher_is_better

from .cli import (
    add_data_arguments,
    add_output_arguments,
    add_seed_arguments,
    add_training_arguments,
    experiment_fields,
    parse_names,
    run_cli,
    seeds_of,
)
from .config import Variant
from .experiment import Experiment, RunSpec
from .run import run_experiment
from .run_folder import raise_failed

TABLE_LEGEND = ("Metrics: mean ± std over seeds (the value alone for one seed). Δ: variant minus full GRF (mean over "
                "seeds); p: paired t-test by seed, Holm-adjusted over every variant × metric; * p < 0.05, ** p < 0.01, "
                "*** p < 0.001. FLOPs: fusion forward per sample.")
GROUPS = ("gate", "attention", "context", "state", "weights", "order", "aux", "layers")
REFERENCE = "grf"


@dataclass(frozen=True)
class Ablation:
    """One variant of GRF and the group (the switch) it belongs to."""

    group: str
    variant: Variant


def ablations(modality_names: list[str], reference: dict, groups=GROUPS, orders: int = 5, seed: int = 0):
    """The variants to train, the reference first. ``reference``: GRF's resolved hyperparameters (its
    ``num_layers`` and ``order`` are not repeated as variants)."""
    found = [Ablation("reference", Variant(REFERENCE, REFERENCE))]

    def add(group: str, name: str, **overrides) -> None:
        found.append(Ablation(group, Variant(f"{REFERENCE}:{name}", REFERENCE, overrides)))

    if "gate" in groups:
        for gate in ("gru", "none", "linear"):
            add("gate", f"gate={gate}", gate=gate)
    if "attention" in groups:
        for side in ("context", "modality"):
            add("attention", f"attention={side}", attention=side)
    if "context" in groups:
        add("context", "context=sequence", context="sequence")
    if "state" in groups:
        add("state", "state=bare", state_position=False)
    if "weights" in groups:
        add("weights", "weights=shared", share_weights=True)
    if "order" in groups:
        current = list(reference.get("order") or modality_names)
        others = [list(p) for p in itertools.permutations(modality_names) if list(p) != current]
        if len(modality_names) > 4:  # n! orders: a seeded sample
            others = random.Random(seed).sample(others, min(orders, len(others)))
        for order in others:
            add("order", "order=" + "-".join(order), order=order)
    if "aux" in groups and reference.get("aux_weight", 0.4) > 0:
        add("aux", "aux=off", aux_weight=0.0)
    if "layers" in groups:
        for layers in range(1, 5):
            if layers != reference.get("num_layers", 4):
                add("layers", f"layers={layers}", num_layers=layers)
    return found


def summarise(records: pd.DataFrame, groups: dict[str, str], costs: pd.DataFrame, task: str) -> pd.DataFrame:
    """One row per variant: metric means and stds, the main metric's difference to GRF with the paired t-test
    (raw and Holm-adjusted over every variant x metric), parameters and FLOPs."""
    from analysis.stats import comparison_table, significance_marker

    metrics = list(get_task(task).metrics)
    main = get_task(task).main_metric
    compared = comparison_table(records, baseline=REFERENCE, metrics=metrics)
    rows = []
    for label, frame in records.groupby("fusion", sort=False):
        row = {"group": groups[label], "fusion": label, "n_seeds": len(frame)}
        for metric in metrics:
            row[f"{metric}_mean"], row[f"{metric}_std"] = frame[metric].mean(), frame[metric].std()
        test = compared[(compared["fusion"] == label) & (compared["metric"] == main)]
        if len(test):
            test = test.iloc[0]
            row.update(diff=test["mean_diff"], t_pvalue=test["t_pvalue"], t_pvalue_holm=test["t_pvalue_holm"],
                       marker=significance_marker(test["t_pvalue_holm"]))
        row["params"] = int(frame["params"].iloc[0])
        rows.append(row)
    return pd.DataFrame(rows).merge(costs, on="fusion", how="left")


def order_test(records: pd.DataFrame, labels: list[str], task: str) -> pd.DataFrame:
    """Friedman test of the main metric across the modality orders (seeds as blocks)."""
    from analysis.stats import friedman_test, seed_matrix

    main = get_task(task).main_metric
    if len(labels) < 3:
        return pd.DataFrame()
    matrix = seed_matrix(records[records["fusion"].isin(labels)], main, fusions=labels)
    if len(matrix) < 2:
        return pd.DataFrame()
    result = friedman_test(matrix, higher_is_better=higher_is_better(main))
    ranks = result.average_ranks
    return pd.DataFrame([{"metric": main, "orders": len(labels), "seeds": result.n_blocks,
                          "friedman_statistic": result.statistic, "friedman_pvalue": result.pvalue,
                          **{f"rank[{k}]": v for k, v in ranks.items()}}])


def mean_std_text(mean: float, std: float) -> str:
    """A table cell: ``0.429 ± 0.012``; the mean alone where there is no spread (fewer than 2 seeds with a value:
    one seed's std is undefined, NaN); ``n/a`` without a value."""
    if pd.isna(mean):
        return "n/a"
    return f"{mean:.3f}" if pd.isna(std) else f"{mean:.3f} ± {std:.3f}"


def table_text(summary: pd.DataFrame, task: str, fmt: str) -> str:
    """The ablation table (``fmt``: a tabulate format, e.g. ``github`` or ``latex_booktabs``)."""
    main = get_task(task).main_metric
    shown = [m for m in get_task(task).metrics if m in (main, "corr", "acc2_non0", "f1_non0", "accuracy", "f1_macro")]
    body = []
    for _, row in summary.iterrows():
        cells = [row["group"], row["fusion"]]
        cells += [mean_std_text(row[f"{m}_mean"], row[f"{m}_std"]) for m in shown]
        marker = row.get("marker")
        diff = "" if pd.isna(row.get("diff")) else f"{row['diff']:+.3f}{marker if isinstance(marker, str) else ''}"
        p = "" if pd.isna(row.get("t_pvalue_holm")) else f"{row['t_pvalue_holm']:.3g}"
        cells += [diff, p, f"{int(row['params']):,}", f"{row['flops'] / 1e6:,.2f}"]
        body.append(cells)
    arrows = [f"{m} {'↑' if higher_is_better(m) else '↓'}" for m in shown]
    header = ["group", "variant", *arrows, f"Δ{main} vs grf", "p (Holm)", "params", "MFLOPs/sample"]
    diff_column = header.index(f"Δ{main} vs grf")  # kept as text: number parsing would drop the "+"
    return tabulate(body, headers=header, tablefmt=fmt, disable_numparse=[diff_column])


def write_tables(out: Path, summary: pd.DataFrame, task: str) -> None:
    """``ablation.md`` and ``ablation.tex`` (pdfLaTeX-safe symbols) from the summary of ``ablation.csv``."""
    from analysis.tables import latex_symbols  # as the other analysis imports here

    atomic_write_text(out / "ablation.md", table_text(summary, task, "github") + f"\n\n{TABLE_LEGEND}\n")
    tex = table_text(summary, task, "latex_booktabs") + f"\n% {TABLE_LEGEND}\n"
    atomic_write_text(out / "ablation.tex", latex_symbols(tex))


def ablation_figure(records: pd.DataFrame, groups: dict[str, str], task: str, path: Path) -> list[Path]:
    """Every seed's main metric per variant (points) with the mean, grouped by switch; a line at GRF's mean."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from analysis.plots import save_figure

    main = get_task(task).main_metric
    frame = records.assign(group=records["fusion"].map(groups))
    order = list(dict.fromkeys(frame["fusion"]))
    sns.set_theme(style="whitegrid", context="paper")
    figure, ax = plt.subplots(figsize=(6.5, 0.32 * len(order) + 1.2))
    sns.stripplot(data=frame, y="fusion", x=main, order=order, hue="group", ax=ax, size=4, alpha=0.6, jitter=0.1)
    sns.pointplot(data=frame, y="fusion", x=main, order=order, ax=ax, color="black", errorbar=None,
                  markers="|", linestyles="none")
    reference = frame.loc[frame["fusion"] == REFERENCE, main].mean()
    ax.axvline(reference, color="0.4", linestyle="--", linewidth=1)
    ax.set_xlabel(f"{main} ({'higher' if higher_is_better(main) else 'lower'} is better; dashed: full GRF)")
    ax.set_ylabel("")
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.02, 1), title="switch")
    figure.tight_layout()
    return save_figure(figure, path)


def run_ablation(run: RunSpec, groups=GROUPS, orders: int = 5, quiet: bool = False) -> pd.DataFrame:
    """Train every variant on every seed with the runner, then write the ablation table, tests and figure.

    ``run``: the dataset, seeds, preset, config, device and output folder (its ``fusions`` are replaced by the
    variants; ``out`` defaults to ``results/ablate/<dataset>``); ``groups``: which switches to ablate."""
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise ValueError(f"unknown ablation group {unknown[0]!r}; groups: {', '.join(GROUPS)}")
    out = Path(run.out or Path("results") / "ablate" / run.dataset)
    check_writable(out)
    experiment = Experiment.build(run, [REFERENCE])
    data = experiment.data
    found = ablations(data.modality_names, experiment.cell(REFERENCE).hparams, groups, orders)
    variants = [a.variant for a in found]
    every = run_experiment(experiment, variants, run.seeds, out, quiet=quiet, report=False, check=False)
    records = every[every["status"].eq("done")]
    if REFERENCE not in set(records["fusion"]) or records["fusion"].nunique() < 2:
        raise_failed(every, out / "runs.csv")  # nothing to compare: say why
    groups = {a.variant.label: a.group for a in found}
    costs = pd.DataFrame([{"fusion": v.label, "flops": experiment.forward_flops(experiment.cell(v))}
                          for v in variants if v.label in set(records["fusion"])])
    summary = summarise(records, groups, costs, data.task)
    write_table(out / "ablation.csv", summary)
    write_tables(out, summary, data.task)
    order_labels = [a.variant.label for a in found if a.group in ("reference", "order")]
    write_table(out / "order.csv", order_test(records, order_labels, data.task))
    ablation_figure(records, groups, data.task, out / "figures" / "ablation")
    if not quiet:
        print(table_text(summary, data.task, "simple"))
        print(TABLE_LEGEND)
    raise_failed(every, out / "runs.csv")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m benchmarks.ablate", description=__doc__.split("\n\n")[0])
    add_data_arguments(parser)
    add_seed_arguments(parser)
    add_training_arguments(parser)
    parser.add_argument("--groups", default=",".join(GROUPS), help=f"subset of {','.join(GROUPS)}")
    parser.add_argument("--orders", type=int, default=5, help="orders sampled when there are > 4 modalities")
    add_output_arguments(parser, "results/ablate/<dataset>")
    args = parser.parse_args(argv)
    run = RunSpec(fusions=[REFERENCE], seeds=seeds_of(args), out=args.out, **experiment_fields(args))
    run_ablation(run, tuple(parse_names(args.groups, "--groups")), args.orders, quiet=args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
