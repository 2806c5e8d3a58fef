"""Metrics on hand-computed cases, including labels that are exactly 0 and labels at x.5."""

from __future__ import annotations

import numpy as np
import pytest

from tasks import get_task

LABELS = np.array([-2.4, -0.5, 0.0, 0.0, 0.5, 1.5, 2.6, 3.0])
PREDICTIONS = np.array([-1.9, 0.3, -0.2, 0.4, 0.6, 2.5, 2.4, -0.1])


def sentiment_metrics(labels, predictions) -> dict[str, float]:
    return get_task("sentiment").score(labels, predictions)


def test_mae_and_corr():
    m = sentiment_metrics(LABELS, PREDICTIONS)
    assert m["mae"] == pytest.approx(np.mean([0.5, 0.8, 0.2, 0.4, 0.1, 1.0, 0.2, 3.1]))
    y, p = LABELS - LABELS.mean(), PREDICTIONS - PREDICTIONS.mean()
    assert m["corr"] == pytest.approx((y @ p) / np.sqrt((y @ y) * (p @ p)))


def test_acc2_has0_counts_zero_labels_as_non_negative():
    # truth >= 0: F F T T T T T T ; pred >= 0: F T F T T T T F -> correct: T F F T T T T F = 5/8
    m = sentiment_metrics(LABELS, PREDICTIONS)
    assert m["acc2_has0"] == pytest.approx(5 / 8)
    # negative class: truth at {0, 1}, predicted at {0, 2, 7}: tp 1, precision 1/3, recall 1/2 -> f1 0.4
    # non-negative class: truth at {2..7}, predicted at {1, 3, 4, 5, 6}: tp 4, precision 4/5, recall 4/6
    f1_positive = 2 * (4 / 5) * (4 / 6) / (4 / 5 + 4 / 6)
    assert m["f1_has0"] == pytest.approx((2 * 0.4 + 6 * f1_positive) / 8)
    assert m["f1_macro_has0"] == pytest.approx((0.4 + f1_positive) / 2)  # the GRF authors' unweighted mean


def test_acc2_non0_drops_zero_labels():
    # non-zero labels: idx 0,1,4,5,6,7 -> truth > 0: F F T T T T ; pred > 0: F T T T T F -> 4/6
    m = sentiment_metrics(LABELS, PREDICTIONS)
    assert m["acc2_non0"] == pytest.approx(4 / 6)
    # negative class: truth F at 0,1; predicted F at 0,7 -> tp 1, precision 1/2, recall 1/2 -> f1 1/2
    # positive class: truth T at 4,5,6,7; predicted T at 1,4,5,6 -> tp 3, precision 3/4, recall 3/4 -> 3/4
    assert m["f1_non0"] == pytest.approx((2 * 0.5 + 4 * 0.75) / 6)
    assert m["f1_macro_non0"] == pytest.approx((0.5 + 0.75) / 2)


def test_acc7_and_acc5_round_half_to_even():
    # labels rounded half-to-even: -2.4->-2, -0.5->-0, 0, 0, 0.5->0, 1.5->2, 2.6->3, 3.0->3
    # predictions: -1.9->-2, 0.3->0, -0.2->-0, 0.4->0, 0.6->1, 2.5->2, 2.4->2, -0.1->-0
    # acc7 matches: T T T T F T F F = 5/8
    m = sentiment_metrics(LABELS, PREDICTIONS)
    assert m["acc7"] == pytest.approx(5 / 8)
    # acc5 (clip to [-2, 2] first): labels -2,-0,0,0,0,2,2,2 ; predictions -2,0,-0,0,1,2,2,-0 -> T T T T F T T F
    assert m["acc5"] == pytest.approx(6 / 8)


def test_half_up_rounding_would_differ():
    """A label of 0.5 and a prediction of 0.6: half-to-even puts the label in class 0, the prediction in 1."""
    m = sentiment_metrics(np.array([0.5, -1.5]), np.array([0.6, -1.6]))
    assert m["acc7"] == 0.5  # -1.5 -> -2 and -1.6 -> -2 agree; 0.5 -> 0 and 0.6 -> 1 do not


def test_all_zero_labels_give_nan_non0_metrics():
    m = sentiment_metrics(np.zeros(3), np.array([0.1, -0.1, 0.2]))
    assert np.isnan(m["acc2_non0"]) and np.isnan(m["f1_non0"]) and np.isnan(m["f1_macro_non0"])
    assert m["acc2_has0"] == pytest.approx(2 / 3)


def test_constant_predictions_have_nan_correlation():
    assert np.isnan(sentiment_metrics(LABELS, np.ones_like(LABELS))["corr"])


def test_bad_predictions_are_refused():
    with pytest.raises(ValueError, match="not finite"):
        sentiment_metrics(LABELS, np.full_like(LABELS, np.nan))
    with pytest.raises(ValueError, match="equal, non-empty"):
        sentiment_metrics(LABELS, PREDICTIONS[:3])


def test_classification_metrics():
    labels = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 1, 1, 1, 2, 0])
    m = get_task("multiclass").score(labels, predicted)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # class 0: tp 1, fp 1, fn 1 -> 1/2 ; class 1: tp 2, fp 1, fn 0 -> 4/5 ; class 2: tp 1, fp 0, fn 1 -> 2/3
    assert m["f1_macro"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    logits = np.eye(3)[predicted] * 5.0
    assert get_task("multiclass").evaluate(labels, logits) == m


def test_names():
    sentiment, multiclass = get_task("sentiment"), get_task("multiclass")
    assert sentiment.metrics[0] == "mae" and sentiment.main_metric == "mae"
    assert multiclass.metrics == ("accuracy", "f1_macro") and multiclass.main_metric == "accuracy"
