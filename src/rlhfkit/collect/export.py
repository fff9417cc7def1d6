"""Human judgments -> a preference file that `rlhfkit dpo` and `rlhfkit rm train` read as is.

`aggregate` turns the Store's rows (shapes in `Store.item_rows` / `Store.judgment_rows`, collect/store.py) into
preference records under a policy:

    majority      one record per item whose votes (A, B, tie, both_bad) have a unique plurality for A or B
    unanimous     one record per item whose votes are all A or all B
    per-judgment  one record per A or B vote (several annotators -> several, possibly opposite, records)

Rules, whatever the policy: skips are not votes; ties and both-bad never become pairs (counted); gold items never
reach the training file (they test annotators); with `exclude_annotators_below_gold=t` the judgments of each
annotator whose gold accuracy (correct / answered gold items) is below t are left out (annotators who answered no
gold item are kept); an item needs `min_votes` votes and a plurality share (top count / votes) of at least
`min_agreement`. Every item lands in exactly one bucket of counts["kept"] or counts["dropped"][reason], reasons:
gold, no_votes, min_votes, no_majority, not_unanimous, tie, both_bad, low_agreement (checked in that order; for
per-judgment, tie / both_bad mean the item has no A or B vote at all: only both_bad votes -> both_bad, else tie).

margin (the strength of the preference, for the reward model's margin loss, Llama 2 eq. 2), per record with
chosen c and rejected r; n = votes on the item, n_c / n_r = votes for c / r:

    "votes"     max(0, (n_c - n_r) / n): 1 when unanimous, 1/3 for 2 of 3; the item's for per-judgment records
    "strength"  max(0, mean over the item's votes of s(v)): s = +w for a vote for c, -w for r, 0 for tie and
                both_bad, with w = 1 for "much", 1/3 for "slightly", 2/3 when no strength was given (Llama 2's
                scale of 0 to 1); per-judgment records take that vote's own w
    None        no margin field

`source` says how a record was made: "human:majority(2/3)" (plurality count / votes), "human:unanimous(3/3)",
"human:<pseudonymous annotator id>" for per-judgment. `export_project` writes the file (explicit or
conversational), `<stem>.judgments.jsonl` (every judgment with pseudonymous annotator ids, no user ids) and
`<stem>.provenance.json` (policy, counts, annotators, time, project, dropped items), each atomically.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Sequence

from rlhfkit.collect.quality import check_rows, gold_items, latest_judgments, plurality
from rlhfkit.errors import RlhfkitError

POLICIES = ("majority", "unanimous", "per-judgment")
MARGINS = ("votes", "strength", None)
FORMATS = ("explicit", "conversational")
VOTES = ("A", "B", "tie", "both_bad")
STRENGTH_WEIGHT = {"much": 1.0, "slightly": 1 / 3, None: 2 / 3}   # w(strength), module doc
DROP_REASONS = ("gold", "no_votes", "min_votes", "no_majority", "not_unanimous", "tie", "both_bad",
                "low_agreement")
POLICY_KEYS = ("policy", "min_votes", "min_agreement", "exclude_annotators_below_gold", "margin")


def check_policy(policy: str, min_votes: int, min_agreement: float, exclude_annotators_below_gold: Optional[float],
                 margin: Optional[str]) -> None:
    """RlhfkitError with the allowed values when an option is out of range."""
    if policy not in POLICIES:
        raise RlhfkitError(f"unknown aggregation policy {policy!r}; choose one of {', '.join(POLICIES)}")
    if margin not in MARGINS:
        raise RlhfkitError(f"unknown margin {margin!r}; choose votes, strength or none")
    if isinstance(min_votes, bool) or not isinstance(min_votes, int) or min_votes < 1:
        raise RlhfkitError(f"min_votes must be an integer >= 1, got {min_votes!r}")
    for name, value in (("min_agreement", min_agreement), ("exclude_annotators_below_gold",
                                                          exclude_annotators_below_gold)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise RlhfkitError(f"{name} must be a number in [0, 1], got {value!r}")
    if not 0.0 <= min_agreement <= 1.0:
        raise RlhfkitError(f"min_agreement must be in [0, 1], got {min_agreement!r}")
    if exclude_annotators_below_gold is not None and not 0.0 <= exclude_annotators_below_gold <= 1.0:
        raise RlhfkitError(f"exclude_annotators_below_gold must be in [0, 1], got {exclude_annotators_below_gold!r}")


# ----------------------------------------------------------------------------------------------
# annotators and votes
# ----------------------------------------------------------------------------------------------
def gold_scores(rows: Sequence[dict], gold: set) -> dict[str, tuple[int, int]]:
    """{annotator: (gold items answered, answered correctly)}; skips are not answers."""
    scores: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        if r["item_id"] in gold and r["choice"] != "skip" and r.get("gold_answer") is not None:
            scores[r["annotator"]][0] += 1
            scores[r["annotator"]][1] += r["choice"] == r["gold_answer"]
    return {a: (s[0], s[1]) for a, s in scores.items()}


def excluded_annotators(rows: Sequence[dict], gold: set, threshold: Optional[float]) -> set:
    """Annotators whose gold accuracy is below `threshold` (None: nobody); no gold answered -> kept."""
    if threshold is None:
        return set()
    return {a for a, (n, ok) in gold_scores(rows, gold).items() if n and ok / n < threshold}


def _margin(votes: list[dict], chosen: str, margin: Optional[str], own: Optional[dict] = None) -> Optional[float]:
    """The module doc's margin for a record choosing `chosen` ("A" or "B") from an item's votes; `own` is the
    vote a per-judgment record comes from."""
    if margin is None:
        return None
    rejected = "B" if chosen == "A" else "A"
    n = len(votes)
    if margin == "votes":
        value = (sum(v["choice"] == chosen for v in votes) - sum(v["choice"] == rejected for v in votes)) / n
    elif own is not None:
        value = STRENGTH_WEIGHT.get(own.get("strength"), STRENGTH_WEIGHT[None])
    else:
        signed = [(1 if v["choice"] == chosen else -1 if v["choice"] == rejected else 0)
                  * STRENGTH_WEIGHT.get(v.get("strength"), STRENGTH_WEIGHT[None]) for v in votes]
        value = sum(signed) / n
    return round(max(0.0, value), 6)


def _record(item: dict, chosen: str, source: str, margin: Optional[float], ident: str) -> dict:
    """A preference record in the item's natural form (rlhfkit.data.candidates.preference_record: a message-list
    prompt makes the responses assistant messages): {prompt, chosen, rejected, margin?, source, id}."""
    from rlhfkit.data.candidates import Candidate, preference_record

    rec = preference_record(Candidate(item["prompt"], item["response_a"], item["response_b"]),
                            "a" if chosen == "A" else "b", source, None)
    out = {"prompt": rec["prompt"], "chosen": rec["chosen"], "rejected": rec["rejected"]}
    if margin is not None:
        out["margin"] = margin
    out.update(source=source, id=ident)
    return out


def record_id(item: dict) -> str:
    """The record's id: the id the item was imported with (meta["id"]), else "item-<item_id>"."""
    meta = item.get("meta") or {}
    return str(meta["id"]) if meta.get("id") is not None else f"item-{item['item_id']}"


# ----------------------------------------------------------------------------------------------
# one item
# ----------------------------------------------------------------------------------------------
def _drop_reason(votes: list[dict], policy: str, min_votes: int, min_agreement: float) -> Optional[str]:
    """Why an item with these votes gives no record (module doc order), or None when it gives one or more."""
    if not votes:
        return "no_votes"
    if len(votes) < min_votes:
        return "min_votes"
    counts = Counter(v["choice"] for v in votes)
    if policy == "majority":
        top = plurality(v["choice"] for v in votes)
        if top is None:
            return "no_majority"
        if top in ("tie", "both_bad"):
            return top
    elif policy == "unanimous":
        if len(counts) > 1:
            return "not_unanimous"
        only = next(iter(counts))
        if only in ("tie", "both_bad"):
            return only
    elif not counts["A"] + counts["B"]:   # per-judgment: no A or B vote to make a record of
        return "both_bad" if counts["both_bad"] == len(votes) else "tie"
    if max(counts.values()) / len(votes) < min_agreement:
        return "low_agreement"
    return None


def item_records(item: dict, votes: list[dict], policy: str, margin: Optional[str]) -> list[dict]:
    """The records of an item that passed `_drop_reason` (module doc)."""
    ident = record_id(item)
    if policy == "per-judgment":
        return [_record(item, v["choice"], f"human:{v['annotator']}", _margin(votes, v["choice"], margin, own=v),
                        f"{ident}:{v['annotator']}")
                for v in sorted(votes, key=lambda v: v["annotator"]) if v["choice"] in ("A", "B")]
    top = plurality(v["choice"] for v in votes)
    n_top = sum(v["choice"] == top for v in votes)
    source = f"human:{policy}({n_top}/{len(votes)})"
    return [_record(item, top, source, _margin(votes, top, margin), ident)]


def aggregate(item_rows: Sequence[dict], judgment_rows: Sequence[dict], *, policy: str = "majority",
              min_votes: int = 1, min_agreement: float = 0.0, exclude_annotators_below_gold: Optional[float] = None,
              margin: Optional[str] = "votes") -> tuple[list[dict], dict]:
    """(records, counts): preference records in item order under the policy (module doc), and counts:
    items, kept, pairs (records), dropped {reason: n}, dropped_items {reason: [item ids]}, judgments (latest
    revision per item and annotator), skips, votes, tie_judgments / both_bad_judgments (votes of those kinds on
    kept items), excluded_annotators (ids), excluded_judgments."""
    check_policy(policy, min_votes, min_agreement, exclude_annotators_below_gold, margin)
    check_rows(item_rows, judgment_rows)
    rows = latest_judgments(judgment_rows)
    gold = gold_items(item_rows, rows)
    excluded = excluded_annotators(rows, gold, exclude_annotators_below_gold)
    votes: dict[Any, list[dict]] = defaultdict(list)
    for r in rows:
        if r["choice"] != "skip" and r["annotator"] not in excluded:
            votes[r["item_id"]].append(r)
    records: list[dict] = []
    dropped: dict[str, list] = {reason: [] for reason in DROP_REASONS}
    kept = ties = both_bad = 0
    for item in item_rows:
        mine = votes.get(item["item_id"], [])
        reason = "gold" if item["item_id"] in gold else _drop_reason(mine, policy, min_votes, min_agreement)
        if reason is not None:
            dropped[reason].append(item["item_id"])
            continue
        kept += 1
        ties += sum(v["choice"] == "tie" for v in mine)
        both_bad += sum(v["choice"] == "both_bad" for v in mine)
        records += item_records(item, mine, policy, margin)
    counts = {"items": len(item_rows), "kept": kept, "pairs": len(records),
              "dropped": {k: len(v) for k, v in dropped.items()}, "dropped_items": dropped,
              "judgments": len(rows), "skips": sum(r["choice"] == "skip" for r in rows),
              "votes": sum(r["choice"] != "skip" for r in rows), "tie_judgments": ties,
              "both_bad_judgments": both_bad, "excluded_annotators": sorted(excluded),
              "excluded_judgments": sum(r["annotator"] in excluded for r in rows)}
    return records, counts


# ----------------------------------------------------------------------------------------------
# files
# ----------------------------------------------------------------------------------------------
def conform(records: list[dict], fmt: Optional[str]) -> tuple[list[dict], str]:
    """(records, form) with every record in one form, as a preference file must be. fmt None: conversational when
    any prompt is a message list, else explicit. Conversational turns a text prompt into one user message and text
    responses into assistant messages; explicit cannot hold message lists (RlhfkitError)."""
    if fmt is not None and fmt not in FORMATS:
        raise RlhfkitError(f"unknown export format {fmt!r}; choose explicit or conversational (or leave it out)")
    form = fmt or ("conversational" if any(isinstance(r["prompt"], list) for r in records) else "explicit")
    if form == "explicit":
        for r in records:
            if any(isinstance(r[k], list) for k in ("prompt", "chosen", "rejected")):
                raise RlhfkitError(f"record {r.get('id')}: a message-list prompt has no explicit (plain-text) form; "
                                   "export as conversational (the default for such projects)")
        return records, form
    out = []
    for r in records:
        r = dict(r)
        if isinstance(r["prompt"], str):
            r["prompt"] = [{"role": "user", "content": r["prompt"]}]
        for k in ("chosen", "rejected"):
            if isinstance(r[k], str):
                r[k] = [{"role": "assistant", "content": r[k]}]
        out.append(r)
    return out, form


def sidecar(path: Path, what: str) -> Path:
    """prefs.jsonl -> prefs.<what> beside it."""
    stem = path.name[:-len(".jsonl")] if path.name.endswith(".jsonl") else path.stem
    return path.with_name(f"{stem}.{what}")


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically: a temporary file in the same folder, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(obj, indent=1, ensure_ascii=False) + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def judgment_lines(item_rows: Sequence[dict], judgment_rows: Sequence[dict], excluded: set) -> list[dict]:
    """The raw judgments for `<stem>.judgments.jsonl`: pseudonymous annotator ids, never user ids or names."""
    ids = {item["item_id"]: record_id(item) for item in item_rows}
    keys = ("item_id", "annotator", "choice", "screen_choice", "left_is_a", "strength", "reason", "late",
            "elapsed_ms", "created_ms", "revision", "is_gold", "gold_answer")
    out = []
    for r in sorted(judgment_rows, key=lambda r: (str(r["item_id"]), r["annotator"])):
        line = {"id": ids.get(r["item_id"]), **{k: r.get(k) for k in keys}}
        line["excluded_annotator"] = r["annotator"] in excluded
        out.append(line)
    return out


def annotator_lines(rows: Sequence[dict], gold: set, excluded: set) -> list[dict]:
    """Per annotator for the provenance: judgments, votes, gold answered / correct / accuracy, excluded."""
    scores = gold_scores(rows, gold)
    per = Counter(r["annotator"] for r in rows)
    votes = Counter(r["annotator"] for r in rows if r["choice"] != "skip")
    out = []
    for a in sorted(per):
        n, ok = scores.get(a, (0, 0))
        out.append({"annotator": a, "judgments": per[a], "votes": votes[a], "gold_answered": n, "gold_correct": ok,
                    "gold_accuracy": round(ok / n, 4) if n else None, "excluded": a in excluded})
    return out


def _human_pairs(item_rows: Sequence[dict], rows: Sequence[dict]) -> list[tuple]:
    """(prompt, response_a, response_b) of the items people voted on (their verdict beats the judge's)."""
    voted = {r["item_id"] for r in rows if r["choice"] != "skip"}
    return [(i["prompt"], i["response_a"], i["response_b"]) for i in item_rows if i["item_id"] in voted]


def export_project(store: Any, project: Any, path: str | Path, *, fmt: Optional[str] = None,
                   judge_outcomes: Any = None, min_confidence: float = 0.7, now_ms: Optional[int] = None,
                   **policy: Any) -> dict:
    """Export one project: `path` (the preference file), `<stem>.judgments.jsonl` and `<stem>.provenance.json`.

    store: anything with item_rows(project_id) and judgment_rows(project_id) (collect.store.Store); project: a
    Project (id, slug, name). policy: the keyword options of `aggregate`. judge_outcomes: `rlhfkit label`
    outcomes (a path or rows, collect/route.py); its confident labels (min_confidence) join the human ones via
    route.merge_labels, people's verdict winning on pairs they voted on. Returns the summary: output, judgments,
    provenance, records, format, policy, counts, merge (None without judge_outcomes).
    """
    from rlhfkit import __version__
    from rlhfkit.collect import quality, route
    from rlhfkit.data.io import write_jsonl_rows

    unknown = sorted(set(policy) - set(POLICY_KEYS))
    if unknown:
        raise RlhfkitError(f"unknown export option(s) {', '.join(unknown)}; known: {', '.join(POLICY_KEYS)}")
    items, judgments = store.item_rows(project.id), store.judgment_rows(project.id)
    records, counts = aggregate(items, judgments, **policy)
    rows = latest_judgments(judgments)
    merge = None
    if judge_outcomes is not None:
        _, confident, routed = route.select_uncertain(judge_outcomes, min_confidence=min_confidence)
        records, merge = route.merge_labels(records, route.judge_records(confident),
                                            human_pairs=_human_pairs(items, rows))
        merge["route"] = routed
    records, form = conform(records, fmt)
    out = Path(path)
    gold = gold_items(items, rows)
    excluded = set(counts["excluded_annotators"])
    stats = quality.project_stats(items, judgments)
    created = int(time.time() * 1000) if now_ms is None else now_ms
    options = {"policy": "majority", "min_votes": 1, "min_agreement": 0.0, "exclude_annotators_below_gold": None,
               "margin": "votes", **policy, "format": form, "min_confidence": min_confidence if merge else None}
    provenance = {
        "project": {"id": project.id, "slug": getattr(project, "slug", None), "name": getattr(project, "name", None)},
        "created_ms": created, "created": datetime.fromtimestamp(created / 1000, timezone.utc).isoformat(),
        "rlhfkit_version": __version__, "policy": options, "counts": counts,
        "annotators": annotator_lines(rows, gold, excluded), "agreement": stats["agreement"],
        "judge": stats["judge"], "merge": merge,
        "files": {"preferences": out.name, "judgments": sidecar(out, "judgments.jsonl").name},
    }
    write_jsonl_rows(sidecar(out, "judgments.jsonl"), judgment_lines(items, rows, excluded))
    write_json(sidecar(out, "provenance.json"), provenance)
    write_jsonl_rows(out, records)   # last: a preference file on disk always has its sidecars
    return {"output": str(out), "judgments": str(sidecar(out, "judgments.jsonl")),
            "provenance": str(sidecar(out, "provenance.json")), "records": len(records), "format": form,
            "policy": options, "counts": counts, "merge": merge}
