"""How good are the human labels? Agreement statistics, per-annotator checks and the AI judge against people.

Everything here is a pure function of the row dicts the Store hands out (`Store.item_rows`, `Store.judgment_rows`,
shapes in their docstrings), so each number can be checked by hand. `project_stats` gathers them into the
JSON that `rlhfkit collect stats --json` prints and the admin dashboard shows (key names documented there).

Agreement statistics (Krippendorff's alpha, Fleiss' and Cohen's kappa, leave-one-out agreement) use the votes
A, B and tie on non-gold items: "both bad" and skips are treated as missing (no comparable preference), and gold
items are left out because they are chosen to be easy and would inflate agreement; they measure annotators instead.
Choices are in canonical terms (A, B = the item's response_a / response_b), whatever side each was shown on.
"""
from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from fractions import Fraction
from typing import Any, Hashable, Iterable, Optional, Sequence

from rlhfkit.errors import RlhfkitError
from rlhfkit.judges.agreement import cohen_kappa as _cohen_kappa

CATEGORIES = ("A", "B", "tie")                       # what agreement statistics compare
CHOICES = ("A", "B", "tie", "both_bad", "skip")      # canonical choices in judgment rows
SCREEN_CHOICES = ("left", "right", "tie", "both_bad", "skip")
ALPHA_RELIABLE = 0.8      # Krippendorff (2004, Content Analysis, 2nd ed., ch. 11): rely on alpha >= .800 ...
ALPHA_TENTATIVE = 0.667   # ... and draw only tentative conclusions from .667 <= alpha < .800
MIN_SHARED_ITEMS = 20     # Cohen's kappa of two raters is reported only on at least this many shared items
FAST_SECONDS = 3.0        # a judgment faster than this is unlikely to come from reading two responses
Z95 = 1.959963984540054   # standard normal quantile for a two-sided 95% interval
EXACT_BINOMIAL_N = 2000   # the binomial test sums exact integers up to this many trials, logs above
# flags on an annotator (hints for the admin, not verdicts)
FLAG_FAST_SHARE = 0.5     # "fast": at least half of the judgments under FAST_SECONDS
FLAG_SIDE_P = 0.01        # "side_bias": left-side rate differs from 0.5 with binomial p below this ...
FLAG_SIDE_MIN = 10        # ... on at least this many A/B choices
FLAG_GOLD_UPPER = 0.7     # "gold": the Wilson 95% upper bound of gold accuracy is below this

JUDGMENT_KEYS = ("item_id", "annotator", "choice")
ITEM_KEYS = ("item_id",)


# ----------------------------------------------------------------------------------------------
# the statistics, on plain values
# ----------------------------------------------------------------------------------------------
def coincidences(units: Iterable[Sequence[Hashable]]) -> dict[tuple, float]:
    """Krippendorff's coincidence matrix (Krippendorff 2011, "Computing Krippendorff's alpha-reliability", eq. for
    o_ck): each unit u holds the m_u values its coders gave (missing ones simply absent); every ordered pair of
    values (c, k) from different coders of one unit adds 1 / (m_u - 1). Units with fewer than two values are not
    pairable and add nothing. Returns {(c, k): o_ck}; sum over k of o_ck = n_c, the pairable count of value c."""
    o: dict[tuple, float] = defaultdict(float)
    for values in units:
        m = len(values)
        if m < 2:
            continue
        counts = Counter(values)
        for c, n_c in counts.items():
            for k, n_k in counts.items():
                pairs = n_c * (n_c - 1) if c == k else n_c * n_k   # ordered pairs of distinct coders
                o[(c, k)] += pairs / (m - 1)
    return dict(o)


def krippendorff_alpha(units: Iterable[Sequence[Hashable]]) -> Optional[float]:
    """Krippendorff's alpha for nominal data with missing values (Krippendorff 2011, section C):

        alpha = 1 - D_o / D_e = 1 - (n - 1) * sum_{c != k} o_ck / sum_{c != k} n_c n_k

    with o_ck the coincidences (`coincidences`), n_c = sum_k o_ck and n = sum_c n_c (pairable values). 1 = perfect
    agreement, 0 = chance, < 0 = systematic disagreement. None when it is undefined: fewer than two pairable values,
    or only one value used (no expected disagreement, D_e = 0)."""
    o = coincidences(units)
    n_c: dict[Hashable, float] = defaultdict(float)
    for (c, _k), v in o.items():
        n_c[c] += v
    n = sum(n_c.values())
    observed = sum(v for (c, k), v in o.items() if c != k)
    expected = sum(n_c[c] * n_c[k] for c in n_c for k in n_c if c != k)
    if n < 2 or expected == 0:
        return None
    return 1.0 - (n - 1) * observed / expected


def fleiss_kappa(table: Sequence[Sequence[int]]) -> Optional[float]:
    """Fleiss' kappa (Fleiss 1971, "Measuring nominal scale agreement among many raters", eqs. 2-9) for N items,
    each rated by the same number n >= 2 of raters; table[i][j] = how many raters put item i in category j.

        P_i = (sum_j n_ij^2 - n) / (n (n - 1))    agreement on item i (share of agreeing rater pairs)
        P   = mean_i P_i;   p_j = sum_i n_ij / (N n);   P_e = sum_j p_j^2
        kappa = (P - P_e) / (1 - P_e)

    None for an empty table or when P_e = 1 (every rating in one category). RlhfkitError when rows differ in n."""
    if not table:
        return None
    n = sum(table[0])
    if n < 2 or any(sum(row) != n for row in table):
        raise RlhfkitError(f"Fleiss' kappa needs the same number (>= 2) of ratings per item; got row sums "
                           f"{sorted({sum(row) for row in table})}")
    n_items = len(table)
    p_bar = sum((sum(x * x for x in row) - n) / (n * (n - 1)) for row in table) / n_items
    p_j = [sum(row[j] for row in table) / (n_items * n) for j in range(len(table[0]))]
    p_e = sum(p * p for p in p_j)
    if p_e >= 1.0:
        return None
    return (p_bar - p_e) / (1.0 - p_e)


def cohen_kappa(x: Sequence[Hashable], y: Sequence[Hashable]) -> Optional[float]:
    """Cohen's kappa (Cohen 1960) of two raters over the same items, x[i] and y[i] their labels of item i:
    (p_o - p_e) / (1 - p_e), p_o = share of items they agree on, p_e = sum_c P_x(c) P_y(c), the agreement expected
    by chance from the two label distributions. None when there are no items or p_e = 1. (The same function as
    `rlhfkit label --agreement` uses, judges/agreement.py.)"""
    return _cohen_kappa(list(x), list(y))


def binomial_test_half(k: int, n: int) -> Optional[float]:
    """Exact two-sided binomial test of k successes in n trials against p = 1/2: the probability, under p = 1/2,
    of an outcome at most as likely as k. The distribution is symmetric, so with d = min(k, n - k) < n / 2:
        p = 2 * sum_{i <= d} C(n, i) / 2^n    (1 when k = n / 2). None when n = 0.
    Exact integer arithmetic up to EXACT_BINOMIAL_N trials, so small p-values are not lost to rounding; above,
    the same sum in log space (lgamma), accurate to float precision and fast for any n."""
    if n == 0:
        return None
    if not 0 <= k <= n:
        raise RlhfkitError(f"binomial test: {k} successes out of {n} trials is impossible")
    d = min(k, n - k)
    if 2 * d == n:
        return 1.0
    if n <= EXACT_BINOMIAL_N:
        tail = sum(math.comb(n, i) for i in range(d + 1))
        return float(min(Fraction(2 * tail, 2 ** n), Fraction(1)))
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2) for i in range(d + 1)]
    top = max(logs)
    return min(1.0, 2 * math.exp(top) * math.fsum(math.exp(x - top) for x in logs))


def wilson_interval(k: int, n: int, z: float = Z95) -> Optional[tuple[float, float]]:
    """Wilson score interval (Wilson 1927) for a proportion k / n; better than p +- z sqrt(p(1-p)/n) at small n and
    near 0 or 1:  (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n). None when n = 0."""
    if n == 0:
        return None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def plurality(votes: Iterable[Hashable]) -> Optional[Hashable]:
    """The value given most often, or None when there are no votes or the top count is shared."""
    ranked = Counter(votes).most_common()
    if not ranked or (len(ranked) > 1 and ranked[0][1] == ranked[1][1]):
        return None
    return ranked[0][0]


def reliability(alpha: Optional[float]) -> Optional[str]:
    """"reliable" (alpha >= 0.8), "tentative" (>= 0.667), "unreliable" (below), None when alpha is undefined."""
    if alpha is None:
        return None
    return "reliable" if alpha >= ALPHA_RELIABLE else "tentative" if alpha >= ALPHA_TENTATIVE else "unreliable"


def _rate(k: int, n: int) -> Optional[float]:
    return k / n if n else None


def _round(x: Optional[float], digits: int = 4) -> Optional[float]:
    return None if x is None else round(x, digits)


# ----------------------------------------------------------------------------------------------
# rows -> votes
# ----------------------------------------------------------------------------------------------
def check_rows(item_rows: Sequence[dict], judgment_rows: Sequence[dict]) -> None:
    """RlhfkitError naming the row and field when a row lacks a needed key or has an unknown choice."""
    for i, row in enumerate(item_rows):
        for key in ITEM_KEYS:
            if not isinstance(row, dict) or key not in row:
                raise RlhfkitError(f"item row {i}: field '{key}' missing (Store.item_rows shape)")
    for i, row in enumerate(judgment_rows):
        for key in JUDGMENT_KEYS:
            if not isinstance(row, dict) or key not in row:
                raise RlhfkitError(f"judgment row {i}: field '{key}' missing (Store.judgment_rows shape)")
        if row["choice"] not in CHOICES:
            raise RlhfkitError(f"judgment row {i} (judgment {row.get('judgment_id')}): choice {row['choice']!r} is "
                               f"not one of {', '.join(CHOICES)}")
        if row.get("screen_choice") not in (None, *SCREEN_CHOICES):
            raise RlhfkitError(f"judgment row {i} (judgment {row.get('judgment_id')}): screen_choice "
                               f"{row['screen_choice']!r} is not one of {', '.join(SCREEN_CHOICES)}")


def latest_judgments(judgment_rows: Iterable[dict]) -> list[dict]:
    """One row per (item, annotator): the highest revision (then the latest). The Store already returns only the
    latest revision; this guards the statistics against a caller that passes the history."""
    best: dict[tuple, tuple] = {}  # (item, annotator) -> (rank, row)
    for row in judgment_rows:
        key = (row["item_id"], row["annotator"])
        rank = (row.get("revision") or 0, row.get("created_ms") or 0, row.get("judgment_id") or 0)
        if key not in best or rank >= best[key][0]:
            best[key] = (rank, row)
    return [row for _, row in best.values()]


def gold_items(item_rows: Iterable[dict], judgment_rows: Iterable[dict]) -> set:
    """Ids of gold items, from either kind of row (a judgment row carries its item's is_gold)."""
    return ({r["item_id"] for r in item_rows if r.get("is_gold")}
            | {r["item_id"] for r in judgment_rows if r.get("is_gold")})


def votes_by_item(judgment_rows: Iterable[dict], exclude: set = frozenset()) -> dict[Any, dict[str, str]]:
    """{item_id: {annotator: "A"|"B"|"tie"}} over items not in `exclude`; both-bad and skips are left out."""
    out: dict[Any, dict[str, str]] = defaultdict(dict)
    for row in judgment_rows:
        if row["item_id"] not in exclude and row["choice"] in CATEGORIES:
            out[row["item_id"]][row["annotator"]] = row["choice"]
    return dict(out)


# ----------------------------------------------------------------------------------------------
# sections of project_stats
# ----------------------------------------------------------------------------------------------
def agreement_section(by_item: dict[Any, dict[str, str]]) -> dict:
    """Krippendorff's alpha over every item's votes, Fleiss' kappa over the items with the most common number of
    votes (>= 2; Fleiss needs the same count on every item), and the raw pairwise agreement."""
    units = [list(v.values()) for v in by_item.values()]
    alpha = krippendorff_alpha(units)
    sizes = Counter(len(u) for u in units if len(u) >= 2)
    fleiss, k_raters, fleiss_units = None, None, []
    if sizes:
        k_raters = max(sizes, key=lambda m: (sizes[m], m))   # the most common count; the larger on a tie
        fleiss_units = [u for u in units if len(u) == k_raters]
        fleiss = fleiss_kappa([[u.count(c) for c in CATEGORIES] for u in fleiss_units])
    agree = total = 0
    for u in units:
        counts = Counter(u)
        agree += sum(c * (c - 1) for c in counts.values())
        total += len(u) * (len(u) - 1)
    return {"categories": list(CATEGORIES), "krippendorff_alpha": _round(alpha),
            "reliability": reliability(alpha), "alpha_items": sum(len(u) >= 2 for u in units),
            "alpha_values": sum(len(u) for u in units if len(u) >= 2),
            "fleiss_kappa": _round(fleiss), "fleiss_items": len(fleiss_units), "fleiss_raters": k_raters,
            "pairwise_agreement": _round(_rate(agree, total))}


def pair_section(by_item: dict[Any, dict[str, str]]) -> list[dict]:
    """Per pair of annotators who share items: shared items, raw agreement, Cohen's kappa (None under
    MIN_SHARED_ITEMS shared items: too few to tell chance from skill)."""
    shared: dict[tuple, list[tuple[str, str]]] = defaultdict(list)
    for votes in by_item.values():
        names = sorted(votes)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                shared[(a, b)].append((votes[a], votes[b]))
    out = []
    for (a, b), labels in sorted(shared.items()):
        x, y = [p[0] for p in labels], [p[1] for p in labels]
        kappa = cohen_kappa(x, y) if len(labels) >= MIN_SHARED_ITEMS else None
        out.append({"a": a, "b": b, "shared": len(labels),
                    "agreement": _round(sum(p == q for p, q in labels) / len(labels)), "cohen_kappa": _round(kappa)})
    return out


def leave_one_out(annotator: str, by_item: dict[Any, dict[str, str]]) -> tuple[int, int]:
    """(items compared, items agreed): the annotator's vote against the plurality of the other annotators' votes
    on each item where the others have a unique plurality."""
    compared = agreed = 0
    for votes in by_item.values():
        if annotator not in votes:
            continue
        others = plurality(v for name, v in votes.items() if name != annotator)
        if others is not None:
            compared += 1
            agreed += votes[annotator] == others
    return compared, agreed


def annotator_stats(rows: Sequence[dict], by_item: dict[Any, dict[str, str]], gold: set) -> dict:
    """One annotator's numbers from their judgment rows (docstring of project_stats lists them)."""
    n = len(rows)
    votes = [r for r in rows if r["choice"] != "skip"]
    seconds = [r["elapsed_ms"] / 1000 for r in rows if r.get("elapsed_ms") is not None]
    ab = [r for r in votes if r["choice"] in ("A", "B") and r.get("screen_choice") in ("left", "right")]
    left = sum(r["screen_choice"] == "left" for r in ab)
    gold_rows = [r for r in votes if r["item_id"] in gold and r.get("gold_answer") is not None]
    gold_ok = sum(r["choice"] == r["gold_answer"] for r in gold_rows)
    ci = wilson_interval(gold_ok, len(gold_rows))
    compared, agreed = leave_one_out(rows[0]["annotator"], by_item)
    s = {
        "annotator": rows[0]["annotator"], "user_id": rows[0].get("user_id"), "judgments": n, "votes": len(votes),
        "median_seconds": _round(statistics.median(seconds), 2) if seconds else None,
        "share_under_3s": _round(_rate(sum(x < FAST_SECONDS for x in seconds), len(seconds))),
        "skip_rate": _round(_rate(n - len(votes), n)),
        "tie_rate": _round(_rate(sum(r["choice"] == "tie" for r in votes), len(votes))),
        "both_bad_rate": _round(_rate(sum(r["choice"] == "both_bad" for r in votes), len(votes))),
        "late": sum(bool(r.get("late")) for r in rows),
        "ab_choices": len(ab), "left_rate": _round(_rate(left, len(ab))),
        "left_p_value": _round(binomial_test_half(left, len(ab)), 6),
        "gold_answered": len(gold_rows), "gold_correct": gold_ok,
        "gold_accuracy": _round(_rate(gold_ok, len(gold_rows))),
        "gold_ci95": None if ci is None else [round(ci[0], 4), round(ci[1], 4)],
        "loo_items": compared, "loo_agreement": _round(_rate(agreed, compared)),
    }
    s["flags"] = [name for name, hit in (
        ("fast", s["share_under_3s"] is not None and s["share_under_3s"] >= FLAG_FAST_SHARE),
        ("side_bias", len(ab) >= FLAG_SIDE_MIN and s["left_p_value"] < FLAG_SIDE_P),
        ("gold", ci is not None and ci[1] < FLAG_GOLD_UPPER)) if hit]
    return s


def judge_section(item_rows: Sequence[dict], by_item: dict[Any, dict[str, str]]) -> dict:
    """The AI judge's hidden suggestions against the human plurality (items both labelled, A/B/tie) and against
    `known_label` (the label an imported preference file carried), per judge id; and the humans against
    `known_label`."""
    per: dict[str, dict[str, list]] = defaultdict(lambda: {"h": [], "j": [], "kj": [], "kk": [], "status": []})
    human_known = []
    for item in item_rows:
        majority = plurality(by_item.get(item["item_id"], {}).values())
        known = item.get("known_label")
        if known is not None and majority is not None:
            human_known.append(majority == known)
        sug = item.get("suggestion")
        if not sug:
            continue
        d = per[str(sug.get("judge"))]
        d["status"].append(sug.get("status"))
        verdict = sug.get("verdict")
        if verdict in CATEGORIES and majority is not None:
            d["h"].append(majority)
            d["j"].append(verdict)
        if verdict in CATEGORIES and known is not None:
            d["kj"].append(verdict)
            d["kk"].append(known)
    judges = []
    for jid, d in sorted(per.items()):
        n, nk = len(d["h"]), len(d["kk"])
        judges.append({
            "judge": jid, "suggestions": len(d["status"]), "by_status": dict(Counter(map(str, d["status"]))),
            "vs_humans": {"items": n, "agreed": sum(a == b for a, b in zip(d["h"], d["j"])),
                          "accuracy": _round(_rate(sum(a == b for a, b in zip(d["h"], d["j"])), n)),
                          "cohen_kappa": _round(cohen_kappa(d["h"], d["j"])) if n >= MIN_SHARED_ITEMS else None},
            "vs_known": {"items": nk, "accuracy": _round(_rate(sum(a == b for a, b in zip(d["kk"], d["kj"])), nk))},
        })
    return {"judges": judges,
            "humans_vs_known": {"items": len(human_known), "accuracy": _round(_rate(sum(human_known),
                                                                                    len(human_known)))}}


def project_stats(item_rows: Sequence[dict], judgment_rows: Sequence[dict]) -> dict:
    """Every quality number of one project, JSON-serialisable, with stable keys (`rlhfkit collect stats --json`,
    GET /api/p/{slug}/stats and the admin dashboard):

    items       total, gold, by_status {open, full, retired}, with_votes (non-gold items with >= 1 A/B/tie vote)
    judgments   total (latest revision per item and annotator), by_choice {A, B, tie, both_bad, skip}, late
    agreement   over A/B/tie votes on non-gold items (both-bad and skips count as missing):
                krippendorff_alpha (nominal, missing data; 1 perfect, 0 chance; None if undefined), reliability
                ("reliable" alpha >= 0.8, "tentative" >= 0.667, else "unreliable"; Krippendorff's thresholds),
                alpha_items / alpha_values (pairable items and votes), fleiss_kappa on the fleiss_items items that
                have the most common vote count fleiss_raters, pairwise_agreement (share of agreeing vote pairs)
    pairs       per annotator pair: a, b, shared items, agreement, cohen_kappa (None under 20 shared items)
    annotators  per annotator (pseudonymous id, and user_id for the admin): judgments (incl. skips), votes,
                median_seconds (server time from lease to submit), share_under_3s, skip_rate (of judgments),
                tie_rate / both_bad_rate (of votes), late, ab_choices + left_rate (share of A/B choices made
                on the left side: sides are random, so any departure from 0.5 is the annotator's bias) with
                left_p_value (exact two-sided binomial test against 0.5), gold_answered / gold_correct /
                gold_accuracy with gold_ci95 (Wilson 95% interval), loo_items / loo_agreement (agreement with
                the plurality of the other annotators), flags ("fast": >= half under 3 s; "side_bias": p < 0.01
                on >= 10 choices; "gold": Wilson upper bound under 0.7)
    judge       judges: per AI judge id: suggestions, by_status, vs_humans {items, agreed, accuracy,
                cohen_kappa (>= 20 items)} against the human plurality, vs_known {items, accuracy} against the
                imported known_label; humans_vs_known {items, accuracy}
    thresholds  the constants above, so a reader of the JSON knows what the labels mean
    Rates are None when their denominator is 0.
    """
    check_rows(item_rows, judgment_rows)
    rows = latest_judgments(judgment_rows)
    gold = gold_items(item_rows, rows)
    by_item = votes_by_item(rows, exclude=gold)
    per_annotator: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        per_annotator[r["annotator"]].append(r)
    choices = Counter(r["choice"] for r in rows)
    return {
        "items": {"total": len(item_rows), "gold": sum(bool(r.get("is_gold")) for r in item_rows),
                  "by_status": dict(Counter(str(r.get("status")) for r in item_rows)),
                  "with_votes": sum(bool(v) for v in by_item.values())},
        "judgments": {"total": len(rows), "by_choice": {c: choices.get(c, 0) for c in CHOICES},
                      "late": sum(bool(r.get("late")) for r in rows)},
        "agreement": agreement_section(by_item),
        "pairs": pair_section(by_item),
        "annotators": [annotator_stats(per_annotator[a], by_item, gold) for a in sorted(per_annotator)],
        "judge": judge_section(item_rows, by_item),
        "thresholds": {"alpha_reliable": ALPHA_RELIABLE, "alpha_tentative": ALPHA_TENTATIVE,
                       "min_shared_items": MIN_SHARED_ITEMS, "fast_seconds": FAST_SECONDS,
                       "flag_side_p": FLAG_SIDE_P, "flag_gold_upper": FLAG_GOLD_UPPER},
    }
