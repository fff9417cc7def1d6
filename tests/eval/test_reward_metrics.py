"""`rlhfkit rm eval` maths on fixed scores, checked by hand."""
import math

import pytest

from rlhfkit.eval.reward import (
    accuracy_by_length,
    calibration_bins,
    expected_calibration_error,
    format_report,
    pairwise_accuracy,
    pearson,
    reward_report,
)


def test_accuracy_counts_ties_as_half():
    assert pairwise_accuracy([1.0, -1.0, 0.0, 2.0]) == pytest.approx((1 + 0 + 0.5 + 1) / 4)


def test_ece_by_hand():
    # d = 0  -> conf 0.5 (bin 0.50-0.55), tie: half right          gap |0.5 - 0.5| = 0
    # d = ln 3 -> p = 0.75, conf 0.75 (bin 0.75-0.80), right         \ same bin: conf 0.75, accuracy 1/2
    # d = -ln 3 -> p = 0.25, conf 0.75, wrong                        /   gap 0.25 over 2 pairs
    # d = ln 11.5 -> p = 0.92, conf 0.92 (bin 0.90-0.95), right      gap 0.08
    diffs = [0.0, math.log(3), -math.log(3), math.log(11.5)]
    table = calibration_bins(diffs)
    assert [(round(b["lo"], 2), b["pairs"]) for b in table] == [(0.5, 1), (0.75, 2), (0.9, 1)]
    assert table[1]["confidence"] == pytest.approx(0.75) and table[1]["accuracy"] == pytest.approx(0.5)
    want = 1 / 4 * 0 + 2 / 4 * 0.25 + 1 / 4 * 0.08
    assert expected_calibration_error(diffs) == pytest.approx(want)


def test_ece_of_a_perfectly_calibrated_set_is_zero():
    # 4 pairs at p = 0.75: 3 right, 1 wrong -> accuracy 0.75 = confidence
    d = math.log(3)
    assert expected_calibration_error([d, d, d, -d]) == pytest.approx(0.0, abs=1e-12)


def test_pearson_by_hand():
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # x - mean = [-1.5, -.5, .5, 1.5], y - mean = [-.5, .5, -.5, .5]: sum xy = 1, sum x^2 = 5, sum y^2 = 1
    assert pearson([0, 1, 2, 3], [0, 1, 0, 1]) == pytest.approx(1 / math.sqrt(5))
    assert pearson([1, 1, 1], [1, 2, 3]) is None


def test_report_on_fixed_scores():
    rc = [2.0, 1.0, 0.5, -1.0]
    rr = [1.0, 1.5, 0.0, 0.0]
    lc = [10, 20, 30, 40]
    lr = [20, 10, 30, 10]
    rep = reward_report(rc, rr, lc, lr)
    assert rep["pairs"] == 4
    assert rep["accuracy"] == pytest.approx(0.5)                     # d = [1, -0.5, 0.5, -1]
    assert rep["margin_mean"] == pytest.approx(0.0)
    # prefer the longer: pair 1 wrong, pair 2 right, pair 3 tie (half), pair 4 right -> 2.5 / 4
    assert rep["baselines"] == {"longer": pytest.approx(0.625), "shorter": pytest.approx(0.375), "chance": 0.5}
    assert rep["by_chosen_length"]["chosen_longer"] == {"pairs": 2, "accuracy": pytest.approx(0.0)}
    assert rep["by_chosen_length"]["chosen_shorter"] == {"pairs": 1, "accuracy": pytest.approx(1.0)}
    assert rep["length_correlation"] == pytest.approx(pearson(rc + rr, lc + lr))
    # ECE: |d| = 1 -> conf sigmoid(1) = 0.7311 (2 pairs, 1 right); |d| = 0.5 -> 0.6225 (2 pairs, 1 right)
    s1, s05 = 1 / (1 + math.exp(-1)), 1 / (1 + math.exp(-0.5))
    assert rep["ece"] == pytest.approx(0.5 * abs(0.5 - s1) + 0.5 * abs(0.5 - s05))
    for key in ("accuracy", "margin_mean", "ece", "length_correlation", "baselines", "pairs"):
        assert key in rep
    text = format_report(rep)
    assert "prefer longer 0.625" in text and "WARNING: no better than a length rule" in text


def test_accuracy_by_length_buckets_are_equal_count_and_sorted():
    rows = accuracy_by_length([1, -1, 1, 1, -1, 1, 1, 1], [1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6, 7, 8])
    assert [r["pairs"] for r in rows] == [2, 2, 2, 2]
    assert [r["accuracy"] for r in rows] == [0.5, 1.0, 0.5, 1.0]
    assert [r["min_length"] for r in rows] == [1, 3, 5, 7]
