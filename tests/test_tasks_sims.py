"""The ``sims`` task (CH-SIMS, CH-SIMS v2): MMSA's SIMS metrics against hand-computed values with a value exactly on
every bin edge, and, with ``FUSIONBENCH_MMSA_REPO`` pointing to a checkout of github.com/thuiar/MMSA, against MMSA's
own ``MetricsTop`` on random predictions."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.probes.embeddings import sample_classes
from benchmarks.reference import import_from_checkout
from tasks import get_task, metric
from tasks.sentiment import l1_loss
from tasks.sims import ACC2_CUTS, ACC3_CUTS, ACC5_CUTS, sims_bins

MMSA_REPO = os.environ.get("FUSIONBENCH_MMSA_REPO")
needs_checkout = pytest.mark.skipif(not MMSA_REPO, reason="needs FUSIONBENCH_MMSA_REPO: a checkout of "
                                                          "github.com/thuiar/MMSA")
SIMS = get_task("sims")

# Labels on CH-SIMS's 0.2 grid; raw model outputs with one exactly on every cut (-0.7, -0.1, 0, 0.1, 0.7) and two
# beyond [-1, 1] (clipped to -1 and 1), each beside a label that its bin agrees with only on the side MMSA puts it.
LABELS = np.array([-1.0, -0.8, -0.2, 0.0, 0.0, 0.2, 0.6, 1.0], dtype=np.float32)
RAW = np.array([-1.4, -0.7, -0.1, 0.0, 0.1, 0.7, 0.71, 1.3], dtype=np.float32)
CLIPPED = np.array([-1.0, -0.7, -0.1, 0.0, 0.1, 0.7, 0.71, 1.0], dtype=np.float32)


def scores(labels=LABELS, raw=RAW) -> dict[str, float]:
    """The task's metrics as training computes them: outputs ``[N, 1]`` kept as the task keeps them, then scored."""
    return SIMS.evaluate(labels, SIMS.outputs(np.asarray(raw).reshape(-1, 1)))


def test_every_bin_edge_falls_on_the_side_mmsa_puts_it():
    # Bins are open below, closed above: (low, high]; -1 and 1 (and beyond, clipped) are in the end bins.
    values = np.array([-1.4, -1.0, -0.7, -0.1, 0.0, 0.1, 0.7, 1.0, 1.3], dtype=np.float32)
    assert sims_bins(values, ACC2_CUTS).tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1]
    assert sims_bins(values, ACC3_CUTS).tolist() == [0, 0, 0, 0, 1, 1, 2, 2, 2]
    assert sims_bins(values, ACC5_CUTS).tolist() == [0, 0, 0, 1, 2, 2, 3, 4, 4]
    # Just past each cut: the next bin.
    past = np.nextafter(np.array([-0.7, -0.1, 0.0, 0.1, 0.7], dtype=np.float32), np.float32(1))
    assert sims_bins(past, ACC5_CUTS).tolist() == [1, 2, 2, 3, 4] and sims_bins(past, ACC2_CUTS).tolist()[2] == 1


def test_an_edge_read_in_float64_stays_on_its_float32_side():
    # A float32 output of 0.1 is 0.10000000149 in float64, above the float64 cut 0.1; MMSA compares its float32
    # tensors in float32, where it is on the cut (neutral). The metrics receive float64 (Task.vectors).
    edges = np.array([-0.7, -0.1, 0.1, 0.7], dtype=np.float32)
    assert sims_bins(edges.astype(np.float64), ACC5_CUTS).tolist() == [0, 1, 2, 3]
    assert sims_bins(np.array([-0.7, -0.1, 0.1, 0.7]), ACC5_CUTS).tolist() == [0, 1, 2, 3]  # float64 literals too


def test_hand_computed_metrics_with_a_value_on_every_edge():
    got = scores()
    # Acc-2 bins: labels 0 0 0 0 0 1 1 1, predictions 0 0 0 0 1 1 1 1 (0.1 is positive): 7 of 8.
    assert got["sims_acc2"] == 7 / 8
    # Acc-3: labels 0 0 0 1 1 2 2 2, predictions 0 0 0 1 1 2 2 2 (-0.1 negative, 0.1 neutral): 8 of 8.
    assert got["sims_acc3"] == 1.0
    # Acc-5: labels 0 0 1 2 2 3 3 4, predictions 0 0 1 2 2 3 4 4 (-0.7 strong, 0.7 weak, 0.71 strong): 7 of 8.
    assert got["sims_acc5"] == 7 / 8
    # Weighted F1 of the Acc-2 bins: class 0 (5 labels) TP 4, FN 1 -> 8/9; class 1 (3 labels) TP 3, FP 1 -> 6/7.
    assert got["sims_f1"] == pytest.approx((5 * 8 / 9 + 3 * 6 / 7) / 8, abs=1e-12)
    # MAE of the clipped outputs: |errors| 0, .1, .1, 0, .1, .5, .11, 0 (unclipped it would be 1.61 / 8).
    assert got["mae"] == pytest.approx(0.91 / 8, abs=1e-6)
    y, p = LABELS.astype(np.float64), CLIPPED.astype(np.float64)
    centred_y, centred_p = y - y.mean(), p - p.mean()
    expected_corr = (centred_y @ centred_p) / np.sqrt((centred_y @ centred_y) * (centred_p @ centred_p))
    assert got["corr"] == pytest.approx(expected_corr, abs=1e-6)
    assert list(got) == ["mae", "corr", "sims_acc2", "sims_acc3", "sims_acc5", "sims_f1"]


def test_labels_on_the_edges_and_at_the_ends():
    # Labels exactly at 0 and +-1 against predictions in the neighbouring bins.
    labels = np.array([-1.0, 0.0, 0.0, 1.0], dtype=np.float32)
    got = scores(labels, np.array([-0.71, -0.05, 0.05, 0.71], dtype=np.float32))
    assert got["sims_acc2"] == 3 / 4  # 0 is negative-or-neutral: -0.05 agrees, 0.05 does not
    assert got["sims_acc3"] == 1.0  # -0.05 and 0.05 are neutral like 0; -0.71 and 0.71 are the end classes
    assert got["sims_acc5"] == 1.0


def test_the_stored_prediction_is_the_clipped_output_and_a_non_finite_one_stays():
    assert SIMS.outputs(RAW.reshape(-1, 1)).tolist() == CLIPPED.tolist()
    assert SIMS.predict(RAW).tolist() == CLIPPED.tolist()  # predictions of raw outputs are clipped too
    kept = SIMS.outputs(RAW.reshape(-1, 1))  # what an evaluation keeps equals the stored predictions, so a probe's
    assert SIMS.predict(kept).tolist() == kept.tolist()  # reproduction gap (outputs vs predictions.csv) stays 0
    kept = SIMS.outputs(np.array([[np.inf], [-np.inf], [np.nan], [2.0]], dtype=np.float32))
    assert np.isposinf(kept[0]) and np.isneginf(kept[1]) and np.isnan(kept[2]) and kept[3] == 1.0
    with pytest.raises(ValueError, match="not finite"):
        SIMS.score(LABELS[:4], kept)


def test_task_facts():
    assert SIMS.kind == "regression" and SIMS.label_range == (-1.0, 1.0) and SIMS.loss is l1_loss
    assert SIMS.selection == "loss" and SIMS.main_metric == "mae"  # MMSA's KeyEval "Loss": the L1 loss, unclipped
    outputs, labels = torch.tensor([[2.0], [-0.5]]), torch.tensor([1.0, -0.5])
    assert float(SIMS.loss(outputs, labels)) == pytest.approx(0.5)  # the loss reads the unclipped output
    assert SIMS.classes.of(np.array([-1.0, -0.1, 0.0, 0.1, 1.0])).tolist() == [0, 0, 0, 1, 1]
    assert SIMS.classes.names == ("negative or neutral (<= 0)", "positive (> 0)")
    embedded = sample_classes(LABELS, "sims")  # the embedding figures' colours and the silhouettes' classes
    assert embedded.index.tolist() == [0, 0, 0, 0, 0, 1, 1, 1]
    assert embedded.names == ["negative or neutral (<= 0)", "positive (> 0)"] and "sims_acc2" in embedded.meaning
    assert SIMS.sample_tests == ("mae", "sims_acc2")
    assert SIMS.sample_scores("sims_acc2", LABELS, CLIPPED).tolist() == [True] * 4 + [False] + [True] * 3
    assert SIMS.label_problem(np.array([-1.0, 1.0], np.float32), None) is None
    assert "outside [-1, 1]" in SIMS.label_problem(np.array([-1.2, 0.0], np.float32), None)
    for name in ("sims_acc2", "sims_acc3", "sims_acc5", "sims_f1"):
        assert metric(name).higher_is_better and metric(name).unit == "fraction"
        assert name not in get_task("sentiment").metrics


@needs_checkout
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equal_to_mmsa_metrics_top_on_random_predictions(seed):
    metrics_top = import_from_checkout(Path(MMSA_REPO), "src/MMSA/utils/metricsTop.py",
                                       "fusionbench_reference_mmsa_metrics")
    evaluate = metrics_top.MetricsTop("regression").getMetics("SIMS")
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.round(rng.uniform(-1, 1, 400) * 5) / 5, LABELS]).astype(np.float32)
    raw = np.concatenate([rng.normal(0, 0.7, 400), RAW]).astype(np.float32)  # some beyond [-1, 1], every edge
    theirs = evaluate(torch.from_numpy(raw), torch.from_numpy(labels))
    ours = scores(labels, raw)
    pairs = {"Mult_acc_2": "sims_acc2", "Mult_acc_3": "sims_acc3", "Mult_acc_5": "sims_acc5", "F1_score": "sims_f1"}
    assert {key: round(ours[name], 4) for key, name in pairs.items()} == {key: theirs[key] for key in pairs}
    # MMSA averages in float32 and rounds to 4 decimals; ours is float64, unrounded.
    assert ours["mae"] == pytest.approx(theirs["MAE"], abs=5e-5 + 1e-6)
    assert ours["corr"] == pytest.approx(theirs["Corr"], abs=5e-5 + 1e-6)
