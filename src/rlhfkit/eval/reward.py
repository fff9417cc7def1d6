"""How good is a reward model? Accuracy, margin, calibration and length bias on held-out preference pairs.

Pure functions of the rewards and response lengths of N pairs; `rlhfkit rm eval` computes the rewards and prints
`format_report(reward_report(...))`. Every accuracy here (the model's and the baselines') counts a tie as half a
correct answer, so "prefer the longer" and "prefer the shorter" always add up to 1.

Notation: d = r_chosen - r_rejected (N,); P(chosen preferred) = sigmoid(d) (the Bradley-Terry model).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import Tensor

from rlhfkit.losses.preference import pairwise_accuracy

CALIBRATION_BINS = 10
LENGTH_BUCKETS = 4


def _t(x: Sequence[float] | Tensor) -> Tensor:
    return torch.as_tensor(x, dtype=torch.float64).flatten()


def calibration_bins(diff: Sequence[float] | Tensor, bins: int = CALIBRATION_BINS) -> list[dict]:
    """Reliability table of the model's confidence in the answer it gives.

    Each pair's confidence is max(p, 1 - p) with p = sigmoid(d) (the probability of the response it ranks
    higher), in [0.5, 1]; `bins` equal-width bins cover [0.5, 1] (the last one closed). A bin's accuracy is how
    often that ranking was right (a tie is half right). Reading both orders of a pair as data points gives the
    same numbers, which is why the lower half of [0, 1] needs no bins of its own. Empty bins are left out.
    """
    d = _t(diff)
    p = torch.sigmoid(d)
    conf = torch.maximum(p, 1 - p)
    correct = (d > 0).double() + 0.5 * (d == 0).double()
    idx = ((conf - 0.5) / 0.5 * bins).floor().clamp(0, bins - 1).long()
    out = []
    for b in range(bins):
        sel = idx == b
        n = int(sel.sum())
        if n:
            out.append({"lo": 0.5 + 0.5 * b / bins, "hi": 0.5 + 0.5 * (b + 1) / bins, "pairs": n,
                        "confidence": float(conf[sel].mean()), "accuracy": float(correct[sel].mean())})
    return out


def expected_calibration_error(diff: Sequence[float] | Tensor, bins: int = CALIBRATION_BINS) -> float:
    """ECE = sum over bins of (pairs in bin / N) * |accuracy - mean confidence| (Guo et al. 2017, eq. 3), on the
    table of `calibration_bins`. 0 = the model's probabilities mean what they say."""
    table = calibration_bins(diff, bins)
    n = sum(b["pairs"] for b in table)
    if n == 0:
        return float("nan")
    return sum(b["pairs"] / n * abs(b["accuracy"] - b["confidence"]) for b in table)


def pearson(x: Sequence[float] | Tensor, y: Sequence[float] | Tensor) -> Optional[float]:
    """Pearson correlation; None when either side is constant or there are fewer than 2 points."""
    a, b = _t(x), _t(y)
    if a.numel() < 2:
        return None
    a, b = a - a.mean(), b - b.mean()
    den = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum()) / den if den > 0 else None


def accuracy_by_length(diff: Sequence[float] | Tensor, chosen_lengths: Sequence[float] | Tensor,
                       rejected_lengths: Sequence[float] | Tensor, buckets: int = LENGTH_BUCKETS) -> list[dict]:
    """Accuracy per bucket of the pair's mean response length (equal-count buckets, shortest first)."""
    d, lc, lr = _t(diff), _t(chosen_lengths), _t(rejected_lengths)
    mean_len = (lc + lr) / 2
    order = torch.argsort(mean_len, stable=True)
    n = d.numel()
    out = []
    for k in range(buckets):
        sel = order[k * n // buckets:(k + 1) * n // buckets]
        if sel.numel():
            out.append({"min_length": float(mean_len[sel].min()), "max_length": float(mean_len[sel].max()),
                        "pairs": int(sel.numel()), "accuracy": pairwise_accuracy(d[sel])})
    return out


def reward_report(chosen_rewards: Sequence[float] | Tensor, rejected_rewards: Sequence[float] | Tensor,
                  chosen_lengths: Sequence[float] | Tensor, rejected_lengths: Sequence[float] | Tensor) -> dict:
    """The `rlhfkit rm eval` report (stable keys) from N pairs' rewards and response lengths (tokens).

    accuracy, margin_mean, ece: see the functions above. length_correlation: Pearson correlation of the reward
    with the response's length over all 2N responses (near +1: the model may mostly reward length).
    baselines: the accuracy of "prefer the longer response", "prefer the shorter" and chance on the same pairs.
    by_chosen_length: the model's accuracy on pairs whose chosen response is the longer / the shorter one (a
    model that only tracks length is right on one and wrong on the other).
    """
    rc, rr, lc, lr = _t(chosen_rewards), _t(rejected_rewards), _t(chosen_lengths), _t(rejected_lengths)
    d = rc - rr
    longer = lc > lr
    shorter = lc < lr
    return {
        "pairs": int(d.numel()),
        "accuracy": pairwise_accuracy(d),
        "margin_mean": float(d.mean()) if d.numel() else float("nan"),
        "ece": expected_calibration_error(d),
        "length_correlation": pearson(torch.cat([rc, rr]), torch.cat([lc, lr])),
        "baselines": {"longer": pairwise_accuracy(lc - lr), "shorter": pairwise_accuracy(lr - lc), "chance": 0.5},
        "by_chosen_length": {
            "chosen_longer": {"pairs": int(longer.sum()), "accuracy": pairwise_accuracy(d[longer])},
            "chosen_shorter": {"pairs": int(shorter.sum()), "accuracy": pairwise_accuracy(d[shorter])},
        },
        "by_length": accuracy_by_length(d, lc, lr),
        "calibration": calibration_bins(d),
        "reward_mean": float(torch.cat([rc, rr]).mean()) if d.numel() else float("nan"),
    }


def _pct(x: Optional[float]) -> str:
    return "  n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:5.3f}"


def format_report(report: dict, title: str = "") -> str:
    """The report as a person reads it: the model next to its baselines, then where it is right or wrong."""
    b = report["baselines"]
    corr = report["length_correlation"]
    lines = [title] if title else []
    lines += [
        f"pairs                {report['pairs']}",
        f"accuracy             {_pct(report['accuracy'])}   (prefer longer {_pct(b['longer'])}, "
        f"prefer shorter {_pct(b['shorter'])}, chance {b['chance']:.3f})",
        f"mean margin          {report['margin_mean']:+.3f}   (r_chosen - r_rejected)",
        f"calibration (ECE)    {_pct(report['ece'])}   (0 = P(chosen) = sigmoid(margin) means what it says)",
        f"length correlation   {'  n/a' if corr is None else f'{corr:+.3f}'}   (reward vs response tokens)",
    ]
    best_rule = max(b["longer"], b["shorter"])
    if report["accuracy"] <= best_rule + 0.02:
        lines.append(f"WARNING: no better than a length rule ({best_rule:.3f}): this reward model may only be "
                     "measuring length")
    if corr is not None and abs(corr) > 0.5:
        lines.append(f"WARNING: rewards correlate strongly with length ({corr:+.2f}); a policy optimised against "
                     "it may learn to change length instead of quality")
    bc = report["by_chosen_length"]
    lines.append("accuracy when the chosen response is   "
                 f"longer: {_pct(bc['chosen_longer']['accuracy'])} ({bc['chosen_longer']['pairs']} pairs)   "
                 f"shorter: {_pct(bc['chosen_shorter']['accuracy'])} ({bc['chosen_shorter']['pairs']} pairs)")
    lines.append("accuracy by mean response length (tokens):")
    for row in report["by_length"]:
        lines.append(f"  {row['min_length']:6.0f} - {row['max_length']:<6.0f} {row['pairs']:5d} pairs   "
                     f"{_pct(row['accuracy'])}")
    lines.append("calibration: confidence bin -> pairs, mean confidence, accuracy")
    for row in report["calibration"]:
        lines.append(f"  {row['lo']:.2f}-{row['hi']:.2f}  {row['pairs']:5d}   {row['confidence']:.3f}   "
                     f"{row['accuracy']:.3f}")
    return "\n".join(lines)
