"""`rlhfkit label`: ask a judge about each candidate pair in both orders and keep the labels both orders agree on.

Judges prefer one position (often the first) on pairs they find hard. Asking (a, b) and then (b, a) and keeping a
label only when both answers name the same response removes that bias from the labels, and the share of pairs
where the orders disagree measures it (Zheng et al. 2023, "Judging LLM-as-a-judge", section 3.3).

Per pair, from the verdict on (a, b) and the verdict on (b, a) mapped back to the original names:
    agree     both name the same response -> a preference (confidence = mean of the two confidences)
    tie       both say tie -> consistent, but no preference to write
    disagree  anything else (a vs b, or a win vs a tie): position bias or noise -> no label
    failed    either order failed (winner None) -> no label; retried on a rerun (failures are not cached)
disagreement_rate = disagree / (pairs - failed); coverage = labelled / pairs.

Only "agree" pairs become preferences; every pair's outcome also goes to <stem>.outcomes.jsonl, so the ones the
judge was unsure about can be sent to people (collect/route.py) instead of being lost.
"""
from __future__ import annotations

import json
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from rlhfkit.judges.base import WINNERS, Judge, Verdict
from rlhfkit.judges.cache import VerdictCache, cache_key

STATUSES = ("agree", "tie", "disagree", "failed")
_SWAP = {"a": "b", "b": "a", "tie": "tie", None: None}


@dataclass
class PairOutcome:
    """The two verdicts on one pair and what they add up to.

    status:     "agree" | "tie" | "disagree" | "failed" (module doc)
    winner:     "a" or "b" when status == "agree", "tie" for a tie, else None
    confidence: mean confidence of the two orders in the agreed winner (None when a judge gives none)
    ab, ba:     the verdicts as asked: on (a, b) and on (b, a); ba.winner names positions of the swapped pair
    """

    status: str
    winner: Optional[str]
    confidence: Optional[float]
    ab: Verdict
    ba: Verdict


def combine(ab: Verdict, ba: Verdict) -> PairOutcome:
    """The both-order rule (module doc). `ba` was asked with the responses swapped, so its "a" means b."""
    second = _SWAP[ba.winner]
    if ab.winner is None or second is None:
        return PairOutcome("failed", None, None, ab, ba)
    if ab.winner != second:
        return PairOutcome("disagree", None, None, ab, ba)
    if ab.winner == "tie":
        return PairOutcome("tie", "tie", None, ab, ba)
    known = [c for c in (ab.confidence, ba.confidence) if c is not None]
    return PairOutcome("agree", ab.winner, sum(known) / len(known) if known else None, ab, ba)


def _checked(verdict: Any, judge_id: str) -> Verdict:
    if not isinstance(verdict, Verdict):
        raise TypeError(f"judge {judge_id} returned {type(verdict).__name__}, not a Verdict")
    if verdict.winner is not None and verdict.winner not in WINNERS:
        return Verdict(None, None, {"error": f"winner {verdict.winner!r} is not a, b or tie",
                                    "raw": verdict.raw}, verdict.judge_id)
    return verdict


def judge_pairs(judge: Judge, pairs: Sequence[tuple[Any, Any, Any]], *, cache: Optional[VerdictCache] = None,
                concurrency: int = 1, progress: bool = False) -> tuple[list[PairOutcome], dict]:
    """Ask every (prompt, a, b) in both orders (cached verdicts are reused, new ones stored as they arrive) and
    combine them. Returns (one PairOutcome per pair, {"judge_calls", "cached_verdicts"}).

    Several threads ask at once when `concurrency` > 1 and the judge allows it (HTTP judges). An exception from
    the judge (e.g. a refused API key) stops the run; verdicts already stored in the cache stay there.
    """
    jid = judge.judge_id
    queries = []
    for prompt, a, b in pairs:
        queries += [(prompt, a, b), (prompt, b, a)]
    verdicts: list[Optional[Verdict]] = [None] * len(queries)
    todo: dict[str, list[int]] = {}  # one judge call per distinct question, even if a pair repeats
    for j, (prompt, x, y) in enumerate(queries):
        hit = cache.get(prompt, x, y, jid) if cache is not None else None
        if hit is not None:
            verdicts[j] = hit
        else:
            todo.setdefault(cache_key(prompt, x, y, jid), []).append(j)
    cached = len(queries) - sum(len(js) for js in todo.values())
    jobs = [js for js in todo.values()]

    stop = threading.Event()  # set by the first failing call: the other threads take no new question

    def ask(js: list[int]) -> Optional[Verdict]:
        if stop.is_set():
            return None
        prompt, x, y = queries[js[0]]
        try:
            verdict = _checked(judge.judge(prompt, x, y), jid)
        except BaseException:
            stop.set()
            raise
        if cache is not None:
            cache.put(prompt, x, y, verdict)
        return verdict

    from tqdm.auto import tqdm

    bar = tqdm(total=len(queries), initial=cached, desc="label", unit="verdict", disable=not progress,
               dynamic_ncols=True, file=sys.stderr)
    try:
        if concurrency > 1 and getattr(judge, "concurrent", False) and len(jobs) > 1:
            from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

            pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="judge")
            try:
                futures = {pool.submit(ask, js): js for js in jobs}
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                    for fut in done:
                        verdict = fut.result()  # re-raises the judge's exception: stop everything
                        for j in futures[fut]:
                            verdicts[j] = verdict
                        bar.update(len(futures[fut]))
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        else:
            for js in jobs:
                verdict = ask(js)
                for j in js:
                    verdicts[j] = verdict
                bar.update(len(js))
    finally:
        bar.close()
    outcomes = [combine(verdicts[2 * i], verdicts[2 * i + 1]) for i in range(len(pairs))]
    return outcomes, {"judge_calls": len(jobs), "cached_verdicts": cached}


def count(outcomes: Sequence[PairOutcome]) -> dict:
    """pairs, labelled, ties, disagreements, failures, disagreement_rate, coverage (module doc)."""
    n = len(outcomes)
    by = {s: sum(o.status == s for o in outcomes) for s in STATUSES}
    answered = n - by["failed"]
    return {"pairs": n, "labelled": by["agree"], "ties": by["tie"], "disagreements": by["disagree"],
            "failures": by["failed"], "disagreement_rate": by["disagree"] / answered if answered else None,
            "coverage": by["agree"] / n if n else None}


def sidecar(output: Path | str, what: str) -> Path:
    """A file beside the output: prefs.jsonl -> prefs.summary.json / prefs.judge-cache.jsonl / prefs.outcomes.jsonl."""
    out = Path(output)
    stem = out.name[:-len(".jsonl")] if out.name.endswith(".jsonl") else out.stem
    return out.with_name(f"{stem}.{what}")


def outcome_row(candidate: Any, outcome: PairOutcome, judge_id: str) -> dict:
    """One line of <stem>.outcomes.jsonl: every candidate pair with what the judge made of it, so the pairs it was
    unsure about (disagree, failed, low confidence) can go to people (`rlhfkit collect import --route uncertain`,
    collect/route.py). winner is "a" | "b" | "tie" | None as in PairOutcome; line is the candidate's line."""
    return {"id": candidate.id, "line": candidate.line, "prompt": candidate.prompt,
            "response_a": candidate.response_a, "response_b": candidate.response_b, "status": outcome.status,
            "winner": outcome.winner,
            "confidence": None if outcome.confidence is None else round(float(outcome.confidence), 6),
            "judge": judge_id}


def label_file(judge: Judge, input_path: str, output: str, *, candidates: Optional[list] = None,
               cache_path: Optional[str] = None, concurrency: int = 1, progress: bool = True) -> dict:
    """Label a candidates file (data/candidates.py) with `judge` in both orders; write the agreed preferences to
    `output`, one outcome line per candidate pair (`outcome_row`) to <output stem>.outcomes.jsonl, and the
    summary (returned too) to <output stem>.summary.json. The verdict cache is `cache_path`, by default
    <output stem>.judge-cache.jsonl. `candidates` may hand in the file's pairs already read."""
    from rlhfkit.data.candidates import preference_record, read_candidates
    from rlhfkit.data.io import write_jsonl_rows

    if candidates is None:
        candidates = read_candidates(input_path)
    cache_file = Path(cache_path) if cache_path else sidecar(output, "judge-cache.jsonl")
    with VerdictCache(cache_file) as cache:
        outcomes, calls = judge_pairs(judge, [(c.prompt, c.response_a, c.response_b) for c in candidates],
                                      cache=cache, concurrency=concurrency, progress=progress)
    rows = [preference_record(c, o.winner, judge.judge_id, o.confidence)
            for c, o in zip(candidates, outcomes) if o.status == "agree"]
    outcomes_file = sidecar(output, "outcomes.jsonl")
    write_jsonl_rows(outcomes_file, [outcome_row(c, o, judge.judge_id) for c, o in zip(candidates, outcomes)])
    write_jsonl_rows(output, rows)
    summary = {"judge": judge.judge_id, "input": str(input_path), "output": str(output), **count(outcomes),
               **calls, "cache": str(cache_file), "outcomes": str(outcomes_file)}
    sidecar(output, "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return summary
