"""`rlhfkit label --agreement human.jsonl`: how often a judge agrees with human labels, so a user can decide
whether to trust it.

Each human pair (chosen, rejected) is shown to the judge as (a, b) in a seeded random order, so the human label
is "a" for about half the pairs and "b" for the rest (with one fixed order every human label would be "a" and
kappa would say nothing). The judge answers in both orders (judges/label.py); only pairs where both orders agree
count as labelled. On the labelled pairs:

    accuracy = share of pairs where the judge picks the human's choice
    kappa    = Cohen's kappa (Cohen 1960): (p_o - p_e) / (1 - p_e), p_o = accuracy,
               p_e = P_human(a) P_judge(a) + P_human(b) P_judge(b), the agreement expected by chance from the two
               label distributions; 1 = perfect, 0 = chance, < 0 = worse than chance; None when p_e = 1
coverage = labelled / pairs; ties, order disagreements and failures are counted separately.
"""
from __future__ import annotations

import random
from typing import Any, Optional, Sequence

from rlhfkit.judges.base import Judge
from rlhfkit.judges.cache import VerdictCache
from rlhfkit.judges.label import count, judge_pairs


def cohen_kappa(human: Sequence[str], judge: Sequence[str]) -> Optional[float]:
    """Cohen's kappa of two equally long label lists (module doc); None when empty or chance agreement is 1."""
    n = len(human)
    if n != len(judge):
        raise ValueError(f"{n} human labels but {len(judge)} judge labels")
    if n == 0:
        return None
    labels = sorted(set(human) | set(judge))
    p_o = sum(h == j for h, j in zip(human, judge)) / n
    p_e = sum((sum(h == k for h in human) / n) * (sum(j == k for j in judge) / n) for k in labels)
    if p_e >= 1.0:
        return None
    return (p_o - p_e) / (1.0 - p_e)


def accuracy(human: Sequence[str], judge: Sequence[str]) -> Optional[float]:
    return sum(h == j for h, j in zip(human, judge)) / len(human) if len(human) else None


def present(examples: Sequence[Any], seed: int) -> list[tuple[Any, Any, Any, str]]:
    """(prompt, a, b, human label) per human pair, chosen shown as a or b by a seeded coin flip."""
    rng = random.Random(seed)
    out = []
    for ex in examples:
        if rng.random() < 0.5:
            out.append((ex.prompt, ex.chosen, ex.rejected, "a"))
        else:
            out.append((ex.prompt, ex.rejected, ex.chosen, "b"))
    return out


def agreement(judge: Judge, human_path: str, *, examples: Optional[Sequence[Any]] = None, seed: int = 0,
              cache_path: Optional[str] = None, concurrency: int = 1, progress: bool = True,
              data_format: Optional[str] = None) -> dict:
    """The judge against the human labels of a preference file (any form the preference reader accepts).
    Returns accuracy, kappa, pairs, labelled, coverage, ties, disagreements, failures, the 2x2 table
    (`table[human][judge]` over labelled pairs) and the judge's call counts. `examples` may hand in the file's
    pairs already read."""
    from rlhfkit.data.io import load_preferences

    if examples is None:
        examples = load_preferences(human_path, data_format)
    shown = present(examples, seed)
    cache = VerdictCache(cache_path) if cache_path else None
    try:
        outcomes, calls = judge_pairs(judge, [(p, a, b) for p, a, b, _ in shown], cache=cache,
                                      concurrency=concurrency, progress=progress)
    finally:
        if cache is not None:
            cache.close()
    labelled = [(h, o.winner) for (_, _, _, h), o in zip(shown, outcomes) if o.status == "agree"]
    hum, jud = [h for h, _ in labelled], [j for _, j in labelled]
    table = {h: {j: sum(x == h and y == j for x, y in labelled) for j in ("a", "b")} for h in ("a", "b")}
    c = count(outcomes)
    return {"judge": judge.judge_id, "human": str(human_path), "accuracy": accuracy(hum, jud),
            "kappa": cohen_kappa(hum, jud), "pairs": c["pairs"], "labelled": c["labelled"],
            "coverage": c["coverage"], "ties": c["ties"], "disagreements": c["disagreements"],
            "failures": c["failures"], "disagreement_rate": c["disagreement_rate"], "table": table, "seed": seed,
            **calls}


def format_report(r: dict) -> str:
    def num(x: Optional[float], pct: bool = False) -> str:
        if x is None:
            return "n/a"
        return f"{100 * x:.1f}%" if pct else f"{x:.3f}"

    t = r["table"]
    lines = [f"judge {r['judge']} against the human labels of {r['human']}",
             f"  accuracy        {num(r['accuracy'], True)}  (on {r['labelled']} labelled pairs)",
             f"  Cohen's kappa   {num(r['kappa'])}  (1 = perfect, 0 = chance)",
             f"  coverage        {num(r['coverage'], True)}  ({r['labelled']} of {r['pairs']} pairs labelled)",
             f"  not labelled    {r['disagreements']} orders disagree, {r['ties']} ties, {r['failures']} failures",
             f"  table           human a: judge a {t['a']['a']}, judge b {t['a']['b']}; "
             f"human b: judge a {t['b']['a']}, judge b {t['b']['b']}"]
    return "\n".join(lines)
