"""The multi-label task kind: metrics against hand-computed values (a label without positives included), the
emotions task's columns, labels, predictions, loss, the predictions.csv columns and the per-label seed vote."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, f1_score

from analysis import claims, stats
from analysis.significance import per_sample_tests
from benchmarks.data import DataError, Dataset
from benchmarks.data.dataset import Split
from fusions import build_predictor
from tasks import KINDS, get_task, list_metrics, register_task
from tasks.multilabel import MOSEI_EMOTIONS, weighted_accuracies
from tests.conftest import tiny_hparams

# 4 samples x 3 labels. Label 0: right everywhere (P = 2, N = 2). Label 1: TP 1, FP 1, FN 1, TN 1. Label 2: never
# present (P = 0), one false positive.
Y = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
P = np.array([[1, 1, 0], [0, 0, 0], [1, 1, 0], [0, 0, 1]])


def test_generic_metrics_equal_hand_computed_values():
    scores = get_task("multilabel").score(Y, P)
    # WA = (TP * N/P + TN) / (2N): label 0 (2 * 2/2 + 2) / 4 = 1; label 1 (1 * 2/2 + 1) / 4 = 0.5; label 2 has no
    # positive label, so N/P is undefined: its WA is NaN and the mean is over labels 0 and 1.
    np.testing.assert_array_equal(weighted_accuracies(Y, P), [1.0, 0.5, np.nan])
    assert scores["wacc_avg"] == pytest.approx(0.75)
    # F1 = 2TP / (2TP + FP + FN): label 0 1, label 1 2/4, label 2 (no positive label, one positive prediction) 0
    assert scores["f1_avg"] == pytest.approx((1 + 0.5 + 0) / 3)
    # pooled: TP 3, FP 2, FN 1 -> 6 / 9
    assert scores["f1_micro"] == pytest.approx(6 / 9)
    # right: label 0 4 of 4, label 1 2 of 4, label 2 3 of 4 -> 9 / 12
    assert scores["acc_avg"] == pytest.approx(0.75)
    assert list(scores) == ["wacc_avg", "f1_avg", "f1_micro", "acc_avg"]


def test_a_label_without_positive_label_or_prediction_has_no_f1_and_no_wa():
    quiet = P.copy()
    quiet[3, 2] = 0  # label 2: no positive label, no positive prediction: F1 0/0 and WA with P = 0, both NaN
    scores = get_task("multilabel").score(Y, quiet)
    assert scores["f1_avg"] == pytest.approx((1 + 0.5) / 2)  # left out of the mean, not counted as 0 or 1
    assert scores["wacc_avg"] == pytest.approx(0.75)
    assert scores["acc_avg"] == pytest.approx(10 / 12)
    none = np.zeros((3, 2), dtype=int)
    nothing = get_task("multilabel").score(none, none)
    assert math.isnan(nothing["wacc_avg"]) and math.isnan(nothing["f1_avg"]) and math.isnan(nothing["f1_micro"])
    assert nothing["acc_avg"] == 1.0
    everywhere = np.ones((3, 1), dtype=int)  # present in every sample: N = 0, WA undefined; F1 defined
    assert math.isnan(get_task("multilabel").score(everywhere, everywhere)["wacc_avg"])
    assert get_task("multilabel").score(everywhere, everywhere)["f1_avg"] == 1.0


def test_metrics_agree_with_scikit_learn_on_random_labels():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 2, (200, 5)), rng.integers(0, 2, (200, 5))
    scores = get_task("multilabel").score(y, p)
    assert scores["f1_avg"] == pytest.approx(f1_score(y, p, average="macro", zero_division=np.nan))
    assert scores["f1_micro"] == pytest.approx(f1_score(y, p, average="micro", zero_division=np.nan))
    # WA is the mean of the two recalls, scikit-learn's balanced accuracy of each label
    balanced = [balanced_accuracy_score(y[:, k], p[:, k]) for k in range(5)]
    np.testing.assert_allclose(weighted_accuracies(y, p), balanced)
    assert scores["wacc_avg"] == pytest.approx(np.mean(balanced))


def test_emotions_has_the_six_mosei_emotions_in_sdk_order_with_their_columns():
    emotions = get_task("emotions")
    assert MOSEI_EMOTIONS == ("happy", "sad", "anger", "surprise", "disgust", "fear")
    assert emotions.kind == "multilabel" and emotions.num_classes == 6 and emotions.label_names == MOSEI_EMOTIONS
    assert emotions.metrics[:4] == get_task("multilabel").metrics and emotions.main_metric == "wacc_avg"
    assert emotions.metrics[4:] == tuple(f"{m}_{e}" for e in MOSEI_EMOTIONS for m in ("wacc", "f1"))
    assert emotions.selection == "loss" and emotions.classes is None
    y = np.zeros((4, 6), dtype=int)
    p = np.zeros((4, 6), dtype=int)
    y[:, 2], p[:, 2] = Y[:, 1], P[:, 1]  # anger gets label 1 of the example: WA 0.5, F1 0.5
    y[:, 0], p[:, 0] = Y[:, 0], P[:, 0]  # happy: WA 1, F1 1
    scores = emotions.score(y, p)
    assert scores["wacc_anger"] == pytest.approx(0.5) and scores["f1_anger"] == pytest.approx(0.5)
    assert scores["wacc_happy"] == 1.0 and scores["f1_happy"] == 1.0
    assert math.isnan(scores["wacc_fear"]) and math.isnan(scores["f1_fear"])  # never present nor predicted
    assert scores["wacc_avg"] == pytest.approx(0.75)
    sentiment_like = {"mae", "corr", "acc2_has0", "acc7", "accuracy", "f1", "f1_macro", "f1_weighted"}
    assert not sentiment_like & set(emotions.metrics)
    assert len(set(list_metrics())) == len(list_metrics())


def test_labels_predictions_and_loss_of_the_multilabel_kind():
    task = get_task("multilabel")
    assert "multilabel" in KINDS and task.seed_average == "vote"
    assert task.output_size(3) == 3 and task.output_size(1) == 1
    with pytest.raises(ValueError, match="task 'multilabel' needs num_classes >= 1, got None"):
        task.output_size(None)
    with pytest.raises(ValueError, match="task 'emotions' has 6 classes, got num_classes=3"):
        get_task("emotions").output_size(3)
    logits = np.array([[0.5, 0.0, -1.0], [-0.1, 2.0, 1e-6]], dtype=np.float32)
    np.testing.assert_array_equal(task.predict(logits), [[1, 0, 0], [0, 1, 1]])  # present where the logit is > 0
    labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    by_hand = -np.mean([np.log(1 / (1 + np.exp(-x))) if t else np.log(1 - 1 / (1 + np.exp(-x)))
                        for x, t in zip(logits.ravel().astype(np.float64), labels.numpy().ravel())])
    assert float(task.loss(torch.from_numpy(logits), labels)) == pytest.approx(by_hand, rel=1e-6)
    assert task.label_problem(labels.numpy(), 3) is None
    assert task.label_problem(labels.numpy(), 2) == ("labels of task 'multilabel' must be float32 [N, 2] (one 0/1 "
                                                     "column per label), got float32 [2, 3]")
    assert "got int64 [2, 3]" in task.label_problem(labels.long().numpy(), 3)
    assert "got float32 [2]" in task.label_problem(labels[:, 0].numpy(), 3)
    assert task.label_problem(labels.numpy() * 2, 3) == "4 labels are not 0 or 1 (absent or present)"
    with pytest.raises(ValueError, match=r"expected equal, non-empty \[N, K\] label and prediction arrays"):
        task.score(Y[:, 0], P[:, 0])
    with pytest.raises(ValueError, match="must be 0 \\(absent\\) or 1 \\(present\\)"):
        task.score(Y, P * 2)


def test_label_names_come_from_the_task_or_the_dataset(scratch_tasks):
    task = get_task("multilabel")
    assert task.names_of_labels(3) == ("0", "1", "2")
    assert task.names_of_labels(2, ["joy", "awe"]) == ("joy", "awe")
    assert get_task("emotions").names_of_labels(6) == MOSEI_EMOTIONS
    assert get_task("sentiment").names_of_labels(None) is None
    with pytest.raises(ValueError, match=r"label_names \['joy', 'joy'\]: expected 2 distinct non-empty strings"):
        task.names_of_labels(2, ["joy", "joy"])
    with pytest.raises(ValueError, match="differ from task 'emotions'"):
        get_task("emotions").names_of_labels(6, list(reversed(MOSEI_EMOTIONS)))
    with pytest.raises(ValueError, match="label_names belong to a multi-label task"):
        register_task(dataclasses.replace(get_task("binary"), name="named", label_names=("no", "yes")))
    with pytest.raises(ValueError, match="label_names belong to a multi-label task"):
        register_task(dataclasses.replace(get_task("emotions"), name="five", label_names=MOSEI_EMOTIONS[:5]))


def _split(labels: torch.Tensor) -> Split:
    n = len(labels)
    return Split(xs=[torch.randn(n, 2, 3), torch.randn(n, 1, 2)], masks=[torch.ones(n, 2, dtype=torch.bool),
                 torch.ones(n, 1, dtype=torch.bool)], labels=labels, ids=[str(i) for i in range(n)])


def test_a_dataset_checks_multilabel_labels_and_names_in_one_line():
    good = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    data = Dataset("ml", _split(good), _split(good), _split(good), ["a", "b"], "multilabel", num_classes=2,
                   info={"label_names": ["joy", "awe"]})
    assert data.label_names == ("joy", "awe")
    with pytest.raises(DataError, match=r"^dataset 'ml', split 'train': labels of task 'multilabel' must be "
                                        r"float32 \[N, 2\]"):
        Dataset("ml", _split(good[:, 0]), _split(good), _split(good), ["a", "b"], "multilabel", num_classes=2)
    with pytest.raises(DataError, match=r"^dataset 'ml': label_names \['joy'\]: expected 2 distinct"):
        Dataset("ml", _split(good), _split(good), _split(good), ["a", "b"], "multilabel", num_classes=2,
                info={"label_names": ["joy"]})
    with pytest.raises(DataError, match=r"^dataset 'ml', split 'valid': 1 labels are not 0 or 1"):
        Dataset("ml", _split(good), _split(good * torch.tensor([1.0, 0.5])), _split(good), ["a", "b"],
                "multilabel", num_classes=2)


@pytest.mark.parametrize("fusion", ["grf", "late", "lmf"])
def test_the_predictor_gives_one_logit_per_label(fusion):
    model = build_predictor(fusion, [3, 2], task="multilabel", num_classes=4, **tiny_hparams(fusion))
    xs, masks = [torch.randn(5, 2, 3), torch.randn(5, 1, 2)], [torch.ones(5, 2, dtype=torch.bool),
                                                              torch.ones(5, 1, dtype=torch.bool)]
    assert model(xs, masks).output.shape == (5, 4)
    assert build_predictor("concat", [3, 2], task="multilabel", num_classes=1, **tiny_hparams("concat"))(
        xs, masks).output.shape == (5, 1)
    with pytest.raises(ValueError, match="multilabel needs num_classes >= 1, got 0"):
        build_predictor(fusion, [3, 2], task="multilabel", num_classes=0, **tiny_hparams(fusion))


def test_predictions_columns_round_trip_and_a_missing_column_is_named():
    task = get_task("multilabel")
    logits = np.array([[0.3, -0.2], [-1.0, 0.7], [2.0, 0.1]], dtype=np.float32)
    labels = np.array([[1, 0], [0, 0], [1, 1]], dtype=np.float32)
    record = task.prediction_record(labels, logits, ("joy", "awe"))
    assert list(record) == ["label_joy", "label_awe", "prediction_joy", "prediction_awe", "logit_joy", "logit_awe"]
    frame = pd.DataFrame({"id": ["a", "b", "c"], **record})
    label_cols, pred_cols = task.result_columns(frame.columns)
    assert (label_cols, pred_cols) == (["label_joy", "label_awe"], ["prediction_joy", "prediction_awe"])
    assert task.score(frame[label_cols].to_numpy(), frame[pred_cols].to_numpy()) == task.evaluate(labels, logits)
    with pytest.raises(ValueError, match="predictions of task 'multilabel' lack the column 'prediction_awe'"):
        task.result_columns(frame.drop(columns="prediction_awe").columns)
    with pytest.raises(ValueError, match="lack the column 'label_<name>'"):
        task.result_columns(["id", "label", "prediction"])
    assert get_task("sentiment").result_columns(["id", "label", "prediction"]) == ("label", "prediction")


def test_seeds_are_averaged_by_a_vote_per_label_and_compared_by_the_fraction_of_labels_right():
    rows = []
    votes = {0: [[1, 0], [1, 1], [0, 0]], 1: [[1, 1], [0, 1], [0, 0]], 2: [[0, 0], [0, 1], [1, 0]]}  # seed: samples
    for seed, predicted in votes.items():
        for sample, (label, pred) in enumerate(zip([[1, 0], [1, 1], [0, 0]], predicted)):
            rows.append({"fusion": "a", "seed": seed, "id": sample, "label_x": label[0], "label_y": label[1],
                         "prediction_x": pred[0], "prediction_y": pred[1]})
    frame = pd.DataFrame(rows)
    voted = stats.average_over_seeds(frame, how="vote", label_col=["label_x", "label_y"],
                                     pred_col=["prediction_x", "prediction_y"])
    np.testing.assert_array_equal(voted[["prediction_x", "prediction_y"]].to_numpy(), [[1, 0], [0, 1], [0, 0]])
    two = frame[frame["seed"] < 2]  # 2 seeds: a 1-1 tie is absent
    tied = stats.average_over_seeds(two, how="vote", label_col=["label_x", "label_y"],
                                    pred_col=["prediction_x", "prediction_y"])
    np.testing.assert_array_equal(tied[["prediction_x", "prediction_y"]].to_numpy(), [[1, 0], [0, 1], [0, 0]])

    both = pd.concat([frame, frame.assign(fusion="b", prediction_x=frame["label_x"], prediction_y=frame["label_y"])])
    tests = per_sample_tests(both, "multilabel", ["a", "b"], n_resamples=99)
    assert list(tests["seed"]) == ["0", "1", "2", "vote"] and set(tests["measure"]) == {"acc_avg"}
    # the fraction of labels right per sample, a - b (b predicts the labels): seed 0 (1, 1, 1) - 1, seed 1
    # (1/2, 1/2, 1) - 1, seed 2 (1/2, 1/2, 1/2) - 1, the vote (1, 1/2, 1) - 1
    np.testing.assert_allclose(tests["difference"], [0, -1 / 3, -1 / 2, -1 / 6])
    assert tests["mcnemar_p"].isna().all()
    assert (tests["mcnemar_note"] == "not run: McNemar's test needs right/wrong per sample, not acc_avg's "
                                     "per-sample scores (fraction)").all()


def test_sample_claims_take_the_direction_from_the_metric_and_mcnemar_only_where_it_ran():
    row = {"fusion_a": "a", "fusion_b": "b", "n": 20, "difference": -0.1, "ci_low": -0.2, "ci_high": 0.0,
           "bootstrap_p": 0.04, "bootstrap_p_holm": 0.08, "bootstrap_note": "", "mcnemar_b": np.nan,
           "mcnemar_c": np.nan, "mcnemar_p": np.nan, "mcnemar_p_holm": np.nan, "mcnemar_note": "not run"}
    frame = pd.DataFrame([{**row, "seed": seed, "measure": measure} for measure in ("acc_avg", "rmse")
                          for seed in ("0", "vote")])
    acc_avg, rmse = claims.sample_claims(frame)
    assert "(a - b; positive = a better)" in acc_avg and "(a - b; negative = a better)" in rmse  # rmse: an error
    assert "McNemar" not in acc_avg + rmse  # not run on fractions or errors (per_sample.csv's note says why)
