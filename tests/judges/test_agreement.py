"""Agreement with human labels: accuracy and Cohen's kappa by hand, the seeded a/b presentation, coverage."""
import json

import pytest
from fakes import FirstJudge, LongerJudge

from rlhfkit.judges.agreement import accuracy, agreement, cohen_kappa, present
from rlhfkit.types import PreferenceExample


def test_kappa_on_a_fixed_table_by_hand():
    # human \ judge   a    b
    #      a         20    5
    #      b         10   15        n = 50
    human = ["a"] * 25 + ["b"] * 25
    judge = ["a"] * 20 + ["b"] * 5 + ["a"] * 10 + ["b"] * 15
    # p_o = (20 + 15) / 50 = 0.7
    # p_e = P_h(a) P_j(a) + P_h(b) P_j(b) = 0.5 * 0.6 + 0.5 * 0.4 = 0.5
    # kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4
    assert accuracy(human, judge) == pytest.approx(0.7)
    assert cohen_kappa(human, judge) == pytest.approx(0.4)


def test_kappa_edges():
    assert cohen_kappa(["a", "b", "a"], ["a", "b", "a"]) == pytest.approx(1.0)
    # always the opposite: p_o = 0, p_e = 0.5 * 0.5 + 0.5 * 0.5 = 0.5 -> kappa = -1
    assert cohen_kappa(["a", "b"], ["b", "a"]) == pytest.approx(-1.0)
    # one label everywhere on both sides: chance agreement is 1, kappa undefined
    assert cohen_kappa(["a", "a"], ["a", "a"]) is None
    assert cohen_kappa([], []) is None and accuracy([], []) is None
    # a judge that always says "a" against balanced humans: p_o = 0.5, p_e = 0.5 -> kappa 0 (no better than chance)
    assert cohen_kappa(["a", "b", "a", "b"], ["a"] * 4) == pytest.approx(0.0)


def examples(n):
    return [PreferenceExample(f"q{i}", "a long and helpful answer " + "x" * i, f"no{i}") for i in range(n)]


def test_presentation_is_seeded_and_shows_both_labels():
    shown = present(examples(40), seed=3)
    assert shown == present(examples(40), seed=3)
    labels = [h for *_, h in shown]
    assert 10 < labels.count("a") < 30  # both labels occur
    for (prompt, a, b, h), ex in zip(shown, examples(40)):
        assert (a, b) == ((ex.chosen, ex.rejected) if h == "a" else (ex.rejected, ex.chosen))


def write_human(path, n):
    path.write_text("".join(json.dumps({"prompt": e.prompt, "chosen": e.chosen, "rejected": e.rejected}) + "\n"
                            for e in examples(n)))
    return path


def test_a_judge_that_agrees_with_humans(tmp_path):
    # chosen is always the longer answer, so the length judge agrees on every pair
    r = agreement(LongerJudge(), str(write_human(tmp_path / "h.jsonl", 20)), seed=0, progress=False)
    assert r["accuracy"] == 1.0 and r["kappa"] == pytest.approx(1.0)
    assert (r["pairs"], r["labelled"], r["coverage"]) == (20, 20, 1.0)
    t = r["table"]
    assert t["a"]["b"] == t["b"]["a"] == 0 and t["a"]["a"] + t["b"]["b"] == 20 and t["a"]["a"] > 0 and t["b"]["b"] > 0


def test_a_position_biased_judge_has_no_coverage(tmp_path):
    r = agreement(FirstJudge(), str(write_human(tmp_path / "h.jsonl", 10)), progress=False)
    assert r["labelled"] == 0 and r["coverage"] == 0.0 and r["disagreements"] == 10
    assert r["accuracy"] is None and r["kappa"] is None
