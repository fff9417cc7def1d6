"""The RLAIF-to-human loop: send people only the pairs the AI judge was unsure about, then merge both label sets.

`rlhfkit label` asks a judge about every candidate pair in both orders and writes one outcome per pair to
<stem>.outcomes.jsonl (judges/label.py: id, prompt, response_a, response_b, status agree|tie|disagree|failed,
winner a|b|tie|None, confidence, judge). A pair is uncertain when

    status is "disagree" (the two orders named different winners: position bias or a hard pair),
    status is "failed"   (the judge gave no usable verdict),
    status is "agree" with a confidence below `min_confidence`, or
    status is "tie" (both orders said tie: consistent, but no preference to train on), unless send_ties=False.

An "agree" pair without a confidence (a judge that reports none) counts as confident: both orders agreeing is the
only evidence there is. Uncertain pairs go to people (`rlhfkit collect import --route uncertain`); the confident
ones keep the judge's label. With a budget (`max_items`) the least confident go first: failed and disagreeing
pairs (no confidence at all), then ties, then agreeing pairs by rising confidence; equal ones in a seeded order.

`merge_labels` joins the human records (export.aggregate) with the judge's confident ones (`judge_records`):
where people labelled a pair their label wins, and the pairs both labelled measure how often the judge agreed.
"""
from __future__ import annotations

import hashlib
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from rlhfkit.errors import RlhfkitError

STATUSES = ("agree", "tie", "disagree", "failed")   # as in judges/label.py
WINNERS = {"agree": ("a", "b"), "tie": ("tie",), "disagree": (None,), "failed": (None,)}


# ----------------------------------------------------------------------------------------------
# reading outcomes
# ----------------------------------------------------------------------------------------------
def _outcomes_file(path: Path) -> Path:
    """The outcomes file itself, or the one `rlhfkit label` wrote beside its preference output."""
    from rlhfkit.judges.label import sidecar

    if path.name.endswith(".outcomes.jsonl"):
        return path
    beside = sidecar(path, "outcomes.jsonl")
    if beside.is_file():
        return beside
    raise RlhfkitError(f"{path}: no outcomes file beside it ({beside.name}); `rlhfkit label` writes one per run "
                       "(older versions did not: run the same `rlhfkit label` command again, its verdict cache "
                       "makes it free) and give that file or the labelled output here")


def check_outcome(row: Any, where: str) -> dict:
    """RlhfkitError `where: field: problem` unless `row` is an outcome line (module doc)."""
    if not isinstance(row, dict):
        raise RlhfkitError(f"{where}: expected a JSON object (an outcome line of `rlhfkit label`)")
    for key in ("prompt", "response_a", "response_b", "status"):
        if row.get(key) is None:
            raise RlhfkitError(f"{where}: field '{key}' missing (not an outcomes file of `rlhfkit label`?)")
    status = row["status"]
    if status not in STATUSES:
        raise RlhfkitError(f"{where}: field 'status': {status!r} is not one of {', '.join(STATUSES)}")
    if row.get("winner") not in WINNERS[status]:
        raise RlhfkitError(f"{where}: field 'winner': {row.get('winner')!r} does not go with status {status!r}")
    conf = row.get("confidence")
    if conf is not None and (isinstance(conf, bool) or not isinstance(conf, (int, float))
                             or not math.isfinite(conf) or not 0 <= conf <= 1):
        raise RlhfkitError(f"{where}: field 'confidence': must be a number in [0, 1] or null, got {conf!r}")
    return row


def read_outcomes(source: str | Path | Sequence[dict]) -> list[dict]:
    """Outcome rows from a path (the outcomes file, or the labelled output it sits beside) or a list of rows."""
    if isinstance(source, (str, Path)):
        from rlhfkit.data.io import read_json_objects

        path = _outcomes_file(Path(source))
        if not path.is_file():
            raise RlhfkitError(f"{path}: no such file")
        return [check_outcome(row, f"{path}:{n}") for n, row in read_json_objects(path)]
    return [check_outcome(row, f"outcome {i}") for i, row in enumerate(source)]


# ----------------------------------------------------------------------------------------------
# selecting
# ----------------------------------------------------------------------------------------------
def is_uncertain(row: dict, min_confidence: float, send_ties: bool = True) -> bool:
    """The rule of the module doc."""
    status, conf = row["status"], row.get("confidence")
    if status == "tie":
        return send_ties
    return status != "agree" or (conf is not None and conf < min_confidence)


def _ident(row: dict, index: int) -> Any:
    """The pair's id, or its position when it has none."""
    return row["id"] if row.get("id") is not None else index


def _priority(row: dict, index: int, seed: int) -> tuple:
    """Sort key, least confident first; equal keys in an order fixed by the seed and the pair's id."""
    status, conf = row["status"], row.get("confidence")
    rank = 0 if status in ("disagree", "failed") else 1 if status == "tie" else 2
    salt = hashlib.sha256(f"{seed}:{_ident(row, index)}:{index}".encode()).hexdigest()
    return rank, conf if conf is not None else 0.0, salt


def select_uncertain(outcomes_path_or_rows: str | Path | Sequence[dict], *, min_confidence: float = 0.7,
                     max_items: Optional[int] = None, seed: int = 0,
                     send_ties: bool = True) -> tuple[list[dict], list[dict], dict]:
    """Split `rlhfkit label` outcomes into (to_humans, confident, report).

    to_humans: the uncertain pairs (module doc), at most `max_items` of them, least confident first, returned in
               input order; confident: the pairs that are not uncertain. Uncertain pairs over the budget are in
               neither list (report["left_out_ids"]): a later round can route them.
    report keys: pairs, by_status, low_confidence (agree below the threshold), no_confidence (agree without a
    confidence, counted confident), uncertain, to_humans, left_out, left_out_ids, confident, labels_saved
    (confident agreeing pairs: judge labels nobody has to give), min_confidence, max_items, seed, send_ties, judges.
    """
    if not 0 <= min_confidence <= 1:
        raise RlhfkitError(f"min_confidence must be in [0, 1], got {min_confidence}")
    if max_items is not None and max_items < 0:
        raise RlhfkitError(f"max_items must be >= 0, got {max_items}")
    rows = read_outcomes(outcomes_path_or_rows)
    uncertain = [i for i, r in enumerate(rows) if is_uncertain(r, min_confidence, send_ties)]
    ranked = sorted(uncertain, key=lambda i: _priority(rows[i], i, seed))
    chosen = set(ranked if max_items is None else ranked[:max_items])
    left_out = sorted(set(uncertain) - chosen)  # uncertain, but over the budget: in neither list
    to_humans = [rows[i] for i in sorted(chosen)]
    unsure = set(uncertain)
    confident = [r for i, r in enumerate(rows) if i not in unsure]
    agree = [r for r in rows if r["status"] == "agree"]
    report = {
        "pairs": len(rows), "by_status": {s: sum(r["status"] == s for r in rows) for s in STATUSES},
        "low_confidence": sum(r.get("confidence") is not None and r["confidence"] < min_confidence for r in agree),
        "no_confidence": sum(r.get("confidence") is None for r in agree),
        "uncertain": len(uncertain), "to_humans": len(to_humans), "left_out": len(left_out),
        "left_out_ids": [_ident(rows[i], i) for i in left_out], "confident": len(confident),
        "labels_saved": sum(r["status"] == "agree" for r in confident),
        "min_confidence": min_confidence, "max_items": max_items, "seed": seed, "send_ties": send_ties,
        "judges": sorted({str(r.get("judge")) for r in rows}),
    }
    return to_humans, confident, report


def suggestion(row: dict) -> dict:
    """The hidden AI suggestion the Store keeps with an item imported from an outcome row (NewItem.suggestion):
    {"judge", "verdict": "A" | "B" | "tie" | None, "confidence", "status"}."""
    verdict = {"a": "A", "b": "B", "tie": "tie"}.get(row.get("winner"))
    return {"judge": row.get("judge"), "verdict": verdict, "confidence": row.get("confidence"),
            "status": row["status"]}


def judge_records(rows: Iterable[dict]) -> list[dict]:
    """Preference records (rlhfkit.data.candidates.preference_record: source = the judge id, confidence kept) of
    the agreeing outcome rows; ties and the rest carry no preference and give none."""
    from rlhfkit.data.candidates import Candidate, preference_record

    out = []
    for r in rows:
        if r["status"] == "agree":
            cand = Candidate(r["prompt"], r["response_a"], r["response_b"],
                             id=None if r.get("id") is None else str(r["id"]))
            out.append(preference_record(cand, r["winner"], str(r.get("judge")), r.get("confidence")))
    return out


# ----------------------------------------------------------------------------------------------
# merging
# ----------------------------------------------------------------------------------------------
def pair_key(prompt: Any, x: Any, y: Any) -> str:
    """The same key for a pair whichever response is first (and whichever is chosen): prompt and responses with
    whitespace runs collapsed, the two responses sorted."""
    from rlhfkit.data.formats import text_of
    from rlhfkit.data.io import prompt_key

    responses = sorted(" ".join(text_of(r).split()) for r in (x, y))
    return hashlib.sha256(repr((prompt_key(prompt), responses)).encode("utf-8")).hexdigest()


def _chosen_text(record: dict) -> str:
    from rlhfkit.data.formats import text_of

    return " ".join(text_of(record["chosen"]).split())


def merge_labels(human_records: Sequence[dict], judge_records: Sequence[dict], *,
                 human_pairs: Iterable[tuple[Any, Any, Any]] = ()) -> tuple[list[dict], dict]:
    """Human records followed by the judge records of pairs people did not label; each keeps its `source`.

    A judge record is replaced when a human record has the same pair (`pair_key`) or when the pair is in
    `human_pairs` ((prompt, response_a, response_b) of items people voted on: their tie or both-bad also
    overrides the judge). report: human_records, judge_records, judge_used (= labels_saved: judge-labelled pairs
    nobody had to label), judge_overridden, both_labelled (pairs with records from both), compared (those with a
    unique human plurality), agreed, agreement (agreed / compared, None when 0), by_source.
    """
    human_by_key: dict[str, list[dict]] = defaultdict(list)
    for rec in human_records:
        human_by_key[pair_key(rec["prompt"], rec["chosen"], rec["rejected"])].append(rec)
    seen = set(human_by_key) | {pair_key(*p) for p in human_pairs}
    used, overridden, both, compared, agreed = [], 0, 0, 0, 0
    for rec in judge_records:
        key = pair_key(rec["prompt"], rec["chosen"], rec["rejected"])
        if key not in seen:
            used.append(rec)
            continue
        overridden += 1
        if key in human_by_key:
            both += 1
            ranked = Counter(_chosen_text(r) for r in human_by_key[key]).most_common()
            if len(ranked) == 1 or ranked[0][1] > ranked[1][1]:
                compared += 1
                agreed += ranked[0][0] == _chosen_text(rec)
    records = list(human_records) + used
    report = {"human_records": len(human_records), "judge_records": len(judge_records), "judge_used": len(used),
              "labels_saved": len(used), "judge_overridden": overridden, "both_labelled": both,
              "compared": compared, "agreed": agreed, "agreement": agreed / compared if compared else None,
              "by_source": dict(Counter(str(r.get("source")) for r in records))}
    return records, report
