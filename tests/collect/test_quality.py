"""Agreement statistics against values worked out by hand (arithmetic in the comments) and against the
`krippendorff` package on random data with missing values."""
import json
import math
import random

import pytest

from rlhfkit.collect.quality import (
    binomial_test_half,
    cohen_kappa,
    coincidences,
    fleiss_kappa,
    krippendorff_alpha,
    plurality,
    project_stats,
    reliability,
    wilson_interval,
)
from rlhfkit.errors import RlhfkitError

SCREEN = {("A", True): "left", ("A", False): "right", ("B", True): "right", ("B", False): "left"}


def judgment(item, who, choice, *, left_is_a=True, ms=5000, gold=None, jid=None, revision=0):
    """A judgment row in Store.judgment_rows shape; screen_choice follows from choice and left_is_a."""
    screen = SCREEN.get((choice, left_is_a), choice)
    return {"judgment_id": jid or hash((item, who)) % 10**6, "item_id": item, "user_id": int(who[1:]),
            "annotator": f"a-{who}", "choice": choice, "left_is_a": left_is_a, "screen_choice": screen,
            "strength": None, "reason": None, "late": False, "elapsed_ms": ms, "created_ms": 1000,
            "revision": revision, "is_gold": gold is not None, "gold_answer": gold}


def item(i, *, gold=None, known=None, suggestion=None):
    return {"item_id": i, "prompt": f"p{i}", "response_a": f"a{i}", "response_b": f"b{i}", "meta": {},
            "is_gold": gold is not None, "gold_answer": gold, "known_label": known, "suggestion": suggestion,
            "source": None, "status": "full", "n_done": 3}


# ----------------------------------------------------------------------------------------------
# Krippendorff's alpha
# ----------------------------------------------------------------------------------------------
# Krippendorff (2011), "Computing Krippendorff's alpha-reliability", section C: 4 observers, 12 units, values 1-5,
# "." = missing. His nominal alpha is 0.743.
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]


def units_of(matrix):
    return [[row[u] for row in matrix if row[u] is not None] for u in range(len(matrix[0]))]


def test_krippendorff_worked_example():
    units = units_of(KRIPPENDORFF_2011)
    o = coincidences(units)
    # unit 6 holds 1, 2, 3, 4 (m = 4): each ordered pair of different values adds 1/3; unit 12 (one value) adds 0
    # the margins n_c of his coincidence matrix: n_1 = 9, n_2 = 13, n_3 = 10, n_4 = 5, n_5 = 3; n = 40
    n_c = {c: sum(v for (a, _), v in o.items() if a == c) for c in range(1, 6)}
    assert n_c == pytest.approx({1: 9, 2: 13, 3: 10, 4: 5, 5: 3})
    assert o[(1, 1)] == pytest.approx(7) and o[(2, 3)] == pytest.approx(4 / 3) and o[(5, 5)] == pytest.approx(3)
    # off-diagonal coincidences sum to 8; sum_{c != k} n_c n_k = 40^2 - (81 + 169 + 100 + 25 + 9) = 1216
    # alpha = 1 - (n - 1) * 8 / 1216 = 1 - 39 * 8 / 1216 = 1 - 312 / 1216 = 0.74342
    assert krippendorff_alpha(units) == pytest.approx(1 - 312 / 1216)
    assert round(krippendorff_alpha(units), 3) == 0.743


def test_krippendorff_undefined_and_perfect():
    assert krippendorff_alpha([]) is None
    assert krippendorff_alpha([["A"], ["B"]]) is None           # nothing pairable
    assert krippendorff_alpha([["A", "A"], ["A", "A", "A"]]) is None  # one value only: D_e = 0
    assert krippendorff_alpha([["A", "A"], ["B", "B"], ["tie", "tie", "tie"]]) == pytest.approx(1.0)


def test_krippendorff_matches_the_package_on_random_data_with_missing_values():
    krippendorff = pytest.importorskip("krippendorff")  # dev dependency (pyproject [dev])
    np = pytest.importorskip("numpy")
    rng = random.Random(0)
    for trial in range(40):
        coders, n_units = rng.randint(2, 6), rng.randint(3, 40)
        p_missing = rng.choice([0.0, 0.2, 0.5])
        skew = rng.random()  # some trials mostly one value (high chance agreement)
        matrix = [[None if rng.random() < p_missing else
                   (0 if rng.random() < skew else rng.randint(0, 2)) for _ in range(n_units)]
                  for _ in range(coders)]
        ours = krippendorff_alpha(units_of(matrix))
        if ours is None:
            continue
        data = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float)
        theirs = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
        assert ours == pytest.approx(theirs, abs=1e-9), trial


# ----------------------------------------------------------------------------------------------
# Fleiss, Cohen, binomial, Wilson
# ----------------------------------------------------------------------------------------------
def test_fleiss_small_table_by_hand():
    # 4 items x 3 raters, categories (A, B, tie)
    #   [3,0,0] P_1 = (9 - 3) / 6 = 1;  [2,1,0] P_2 = (4 + 1 - 3) / 6 = 1/3;  [0,3,0] P_3 = 1;  [1,1,1] P_4 = 0
    #   P = (1 + 1/3 + 1 + 0) / 4 = 7/12
    #   p_A = 6/12, p_B = 5/12, p_tie = 1/12  ->  P_e = (36 + 25 + 1) / 144 = 31/72
    #   kappa = (7/12 - 31/72) / (1 - 31/72) = (11/72) / (41/72) = 11/41 = 0.26829
    table = [[3, 0, 0], [2, 1, 0], [0, 3, 0], [1, 1, 1]]
    assert fleiss_kappa(table) == pytest.approx(11 / 41)


def test_fleiss_wikipedia_table():
    # the 10 items x 14 raters x 5 categories example of the Wikipedia article "Fleiss' kappa": kappa = 0.210
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert round(fleiss_kappa(table), 3) == 0.210


def test_fleiss_edge_cases():
    assert fleiss_kappa([]) is None
    assert fleiss_kappa([[3, 0], [3, 0]]) is None  # P_e = 1
    with pytest.raises(RlhfkitError, match="same number"):
        fleiss_kappa([[2, 1], [1, 1]])


def test_cohen_two_by_two_by_hand():
    # 50 items: both A 20, x=A y=B 5, x=B y=A 10, both B 15
    #   p_o = (20 + 15) / 50 = 0.7;  P_x(A) = 25/50 = 0.5, P_y(A) = 30/50 = 0.6
    #   p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5;  kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4
    x = ["A"] * 20 + ["A"] * 5 + ["B"] * 10 + ["B"] * 15
    y = ["A"] * 20 + ["B"] * 5 + ["A"] * 10 + ["B"] * 15
    assert cohen_kappa(x, y) == pytest.approx(0.4)
    assert cohen_kappa([], []) is None


def test_binomial_by_hand():
    # 9 of 10: P(X >= 9) + P(X <= 1) = 2 * (C(10,0) + C(10,1)) / 2^10 = 2 * 11 / 1024 = 0.021484375
    assert binomial_test_half(9, 10) == 22 / 1024
    assert binomial_test_half(1, 10) == 22 / 1024
    assert binomial_test_half(10, 10) == 2 / 1024
    assert binomial_test_half(5, 10) == 1.0
    assert binomial_test_half(0, 0) is None
    # 3 of 5: outcomes at most as likely as 3 (C(5,3) = 10) are all of them -> 1; capped, never above 1
    assert binomial_test_half(3, 5) == 1.0
    # a tiny p-value survives (exact integers): 0 of 200 -> 2 / 2^200
    assert binomial_test_half(0, 200) == pytest.approx(2 / 2 ** 200, rel=1e-12)
    with pytest.raises(RlhfkitError):
        binomial_test_half(11, 10)


def test_binomial_log_path_matches_exact_integers():
    # above EXACT_BINOMIAL_N trials the tail is summed in log space; it must agree with the exact integer sum
    from fractions import Fraction

    for k, n in ((1100, 2001), (950, 2500), (1500, 3000), (2400, 5000)):
        d = min(k, n - k)
        exact = float(min(Fraction(2 * sum(math.comb(n, i) for i in range(d + 1)), 2 ** n), Fraction(1)))
        assert binomial_test_half(k, n) == pytest.approx(exact, rel=1e-9, abs=1e-300), (k, n)


def test_wilson_by_hand():
    # 8 of 10, z = 1.96: z^2/n = 0.38415, denominator 1.38415
    #   centre = (0.8 + 0.19207) / 1.38415 = 0.71674
    #   half   = 1.96 * sqrt(0.8 * 0.2 / 10 + 3.8415 / 400) / 1.38415 = 1.96 * sqrt(0.025604) / 1.38415 = 0.22658
    #   -> (0.4902, 0.9433)
    lo, hi = wilson_interval(8, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)
    assert wilson_interval(0, 0) is None
    lo, hi = wilson_interval(0, 1)  # centre = half = 1.92073 / 4.84146 = 0.39672
    assert lo == 0.0 and hi == pytest.approx(0.7934, abs=1e-4)


def test_plurality_and_reliability_labels():
    assert plurality(["A", "B", "A"]) == "A"
    assert plurality(["A", "B"]) is None and plurality([]) is None
    assert [reliability(a) for a in (0.8, 0.7999, 0.667, 0.5, None)] == \
        ["reliable", "tentative", "tentative", "unreliable", None]


# ----------------------------------------------------------------------------------------------
# project_stats on hand-built rows
# ----------------------------------------------------------------------------------------------
def small_project():
    """3 annotators, items 1-4 normal, item 5 gold (answer A):
         item 1: u1 A, u2 A, u3 A       item 2: u1 A, u2 B, u3 A
         item 3: u1 B, u2 B, u3 skip    item 4: u1 tie, u2 both_bad, u3 A
         gold 5: u1 A, u2 B, u3 A
    u1 picks the left side on all 4 of its A/B choices; u1's times are 1, 2, 4, 5, 10 s."""
    votes = {1: ["A", "A", "A"], 2: ["A", "B", "A"], 3: ["B", "B", "skip"], 4: ["tie", "both_bad", "A"],
             5: ["A", "B", "A"]}
    u1_ms = {1: 1000, 2: 2000, 3: 4000, 4: 5000, 5: 10000}
    rows = []
    for i, choices in votes.items():
        gold = "A" if i == 5 else None
        for who, choice in zip(("u1", "u2", "u3"), choices):
            # u1 always clicks left: left_is_a when it chose A, not when it chose B
            left_is_a = (choice != "B") if who == "u1" else (i % 2 == 0)
            rows.append(judgment(i, who, choice, left_is_a=left_is_a, gold=gold,
                                 ms=u1_ms[i] if who == "u1" else 8000))
    items = [item(1, known="A", suggestion={"judge": "rm:x", "verdict": "A", "confidence": 0.9, "status": "agree"}),
             item(2, suggestion={"judge": "rm:x", "verdict": None, "confidence": None, "status": "disagree"}),
             item(3, known="B", suggestion={"judge": "rm:x", "verdict": "A", "confidence": 0.6, "status": "agree"}),
             item(4, suggestion={"judge": "rm:x", "verdict": "tie", "confidence": None, "status": "tie"}),
             item(5, gold="A")]
    return items, rows


def test_project_stats_by_hand():
    items, rows = small_project()
    s = project_stats(items, rows)
    json.dumps(s)  # JSON-serialisable
    assert set(s) == {"items", "judgments", "agreement", "pairs", "annotators", "judge", "thresholds"}
    assert s["items"] == {"total": 5, "gold": 1, "by_status": {"full": 5}, "with_votes": 4}
    assert s["judgments"]["by_choice"] == {"A": 8, "B": 4, "tie": 1, "both_bad": 1, "skip": 1}
    a = s["agreement"]
    # alpha units (non-gold, A/B/tie): [A,A,A], [A,B,A], [B,B], [tie,A]
    #   o_AA = 6/2 + 2/2 = 4, o_AB = o_BA = 2/2 = 1, o_BB = 2/1 = 2, o_Atie = o_tieA = 1
    #   n_A = 6, n_B = 3, n_tie = 1, n = 10; sum_{c!=k} o = 4; sum_{c!=k} n_c n_k = 2 (18 + 6 + 3) = 54
    #   alpha = 1 - 9 * 4 / 54 = 1/3
    assert a["krippendorff_alpha"] == round(1 / 3, 4) and a["reliability"] == "unreliable"
    assert (a["alpha_items"], a["alpha_values"]) == (4, 10)
    # Fleiss on the two items with 3 votes: [3,0,0] P=1, [2,1,0] P=1/3 -> P = 2/3; p_A = 5/6, p_B = 1/6
    #   P_e = 26/36; kappa = (24/36 - 26/36) / (10/36) = -0.2
    assert (a["fleiss_kappa"], a["fleiss_items"], a["fleiss_raters"]) == (-0.2, 2, 3)
    # agreeing ordered vote pairs: 6/6 + 2/6 + 2/2 + 0/2 -> 10 / 16
    assert a["pairwise_agreement"] == 0.625
    pairs = {(p["a"], p["b"]): p for p in s["pairs"]}
    assert pairs[("a-u1", "a-u2")] == {"a": "a-u1", "b": "a-u2", "shared": 3, "agreement": round(2 / 3, 4),
                                       "cohen_kappa": None}  # under 20 shared items
    assert pairs[("a-u2", "a-u3")]["shared"] == 2 and pairs[("a-u2", "a-u3")]["agreement"] == 0.5
    by = {x["annotator"]: x for x in s["annotators"]}
    u1, u2, u3 = by["a-u1"], by["a-u2"], by["a-u3"]
    assert (u1["judgments"], u1["votes"], u1["skip_rate"], u1["tie_rate"]) == (5, 5, 0.0, 0.2)
    assert u1["median_seconds"] == 4.0 and u1["share_under_3s"] == 0.4   # 1 s and 2 s of 5
    # u1: 4 A/B choices all on the left -> p = 2 * 1 / 2^4 = 0.125
    assert (u1["ab_choices"], u1["left_rate"], u1["left_p_value"]) == (4, 1.0, 0.125)
    # leave-one-out: u1 item 1 (others A, A) yes; item 2 (others B, A: no plurality) not compared;
    #   item 3 (others: B) yes; item 4 (others: A; u2's both_bad is missing) vs tie: no -> 2 of 3
    assert (u1["loo_items"], u1["loo_agreement"]) == (3, round(2 / 3, 4))
    assert (u3["loo_items"], u3["loo_agreement"]) == (2, 0.5) and u3["skip_rate"] == 0.2
    assert (u2["gold_answered"], u2["gold_correct"], u2["gold_accuracy"]) == (1, 0, 0.0)
    assert u2["gold_ci95"] == [0.0, 0.7935] and u2["both_bad_rate"] == 0.2
    assert u1["gold_accuracy"] == 1.0 and u1["flags"] == []
    j = s["judge"]["judges"][0]
    # vs the human plurality: item 1 A = A, item 3 A != B; item 2 has no verdict, item 4 no plurality
    assert j["vs_humans"] == {"items": 2, "agreed": 1, "accuracy": 0.5, "cohen_kappa": None}
    assert j["vs_known"] == {"items": 2, "accuracy": 0.5} and j["suggestions"] == 4
    assert s["judge"]["humans_vs_known"] == {"items": 2, "accuracy": 1.0}


def test_cohen_kappa_needs_twenty_shared_items():
    # both A on 8, both B on 6, u1 A / u2 B on 4, u1 B / u2 A on 2: p_o = 14/20 = 0.7
    #   P_u1(A) = 12/20 = 0.6, P_u2(A) = 10/20 = 0.5 -> p_e = 0.3 + 0.2 = 0.5 -> kappa = 0.4
    plan = [("A", "A")] * 8 + [("B", "B")] * 6 + [("A", "B")] * 4 + [("B", "A")] * 2
    rows = [r for i, (x, y) in enumerate(plan) for r in (judgment(i, "u1", x), judgment(i, "u2", y))]
    items = [item(i) for i in range(len(plan))]
    assert project_stats(items, rows)["pairs"][0]["cohen_kappa"] == 0.4
    fewer = [r for r in rows if r["item_id"] != 0]
    assert project_stats(items, fewer)["pairs"][0] == {"a": "a-u1", "b": "a-u2", "shared": 19,
                                                       "agreement": round(13 / 19, 4), "cohen_kappa": None}


def test_side_bias_and_fast_flags():
    # 10 A/B choices all on the left side in 1 s each: p = 2 / 1024 < 0.01, and every judgment under 3 s
    rows = [judgment(i, "u7", "A" if i % 2 else "B", left_is_a=bool(i % 2), ms=1000) for i in range(10)]
    s = project_stats([item(i) for i in range(10)], rows)["annotators"][0]
    assert s["left_rate"] == 1.0 and s["left_p_value"] == round(2 / 1024, 6)
    assert s["flags"] == ["fast", "side_bias"]
    # sides random and 50/50: no flag
    even = [judgment(i, "u8", "A", left_is_a=i < 5) for i in range(10)]
    s = project_stats([item(i) for i in range(10)], even)["annotators"][0]
    assert (s["left_rate"], s["left_p_value"], s["flags"]) == (0.5, 1.0, [])


def test_only_the_latest_revision_counts():
    rows = [judgment(1, "u1", "A", jid=1, revision=0), judgment(1, "u1", "B", jid=1, revision=1),
            judgment(1, "u2", "B", jid=2)]
    s = project_stats([item(1)], rows)
    assert s["judgments"]["total"] == 2 and s["pairs"][0]["agreement"] == 1.0


def test_empty_project_and_bad_rows():
    s = project_stats([], [])
    assert s["agreement"]["krippendorff_alpha"] is None and s["annotators"] == [] and s["pairs"] == []
    with pytest.raises(RlhfkitError, match=r"judgment row 0 .*choice 'C'"):
        project_stats([item(1)], [dict(judgment(1, "u1", "A"), choice="C")])
    with pytest.raises(RlhfkitError, match=r"judgment row 0: field 'annotator' missing"):
        project_stats([item(1)], [{"item_id": 1, "choice": "A"}])
    assert math.isfinite(project_stats([item(1)], [judgment(1, "u1", "A")])["annotators"][0]["median_seconds"])


def test_quality_export_route_import_no_torch():
    import subprocess
    import sys

    code = ("import sys, rlhfkit.collect.quality, rlhfkit.collect.export, rlhfkit.collect.route; "
            "print(sorted(m for m in ('torch', 'transformers', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
