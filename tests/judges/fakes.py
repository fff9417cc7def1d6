"""Deterministic fake judges for the both-order logic and the cache (no model, no network)."""
from __future__ import annotations

import threading

from rlhfkit.judges import Verdict


class LongerJudge:
    """Prefers the longer response (ties on equal length) whatever the order: a judge with no position bias.
    Counts its calls; `fail_after` makes call number fail_after + 1 raise (a crash mid-way)."""

    concurrent = True

    def __init__(self, judge_id: str = "fake:longer", fail_after: int | None = None, confidence: float = 0.8):
        self.judge_id = judge_id
        self.calls = 0
        self.fail_after = fail_after
        self.confidence = confidence
        self._lock = threading.Lock()

    def judge(self, prompt, a, b):
        with self._lock:
            if self.fail_after is not None and self.calls >= self.fail_after:
                raise RuntimeError("judge crashed")
            self.calls += 1
        if len(a) == len(b):
            return Verdict("tie", 0.5, {"len": [len(a), len(b)]}, self.judge_id)
        return Verdict("a" if len(a) > len(b) else "b", self.confidence, {"len": [len(a), len(b)]}, self.judge_id)


class FirstJudge:
    """Always prefers the first position: pure position bias, every pair's orders disagree."""

    concurrent = False
    judge_id = "fake:first"

    def __init__(self):
        self.calls = 0

    def judge(self, prompt, a, b):
        self.calls += 1
        return Verdict("a", 0.9, None, self.judge_id)


class ScriptedJudge:
    """Answers from a dict {(a, b): winner or None}: any combination of verdicts a test needs."""

    concurrent = False
    judge_id = "fake:scripted"

    def __init__(self, answers: dict, confidences: dict | None = None):
        self.answers = answers
        self.confidences = confidences or {}
        self.calls = 0

    def judge(self, prompt, a, b):
        self.calls += 1
        return Verdict(self.answers[(a, b)], self.confidences.get((a, b)), None, self.judge_id)
