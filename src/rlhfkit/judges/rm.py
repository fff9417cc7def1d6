"""`rm:PATH`: a reward model trained by `rlhfkit rm train` as a judge.

winner = the response with the higher raw reward (equal rewards: tie); confidence = sigmoid(|r_a - r_b|), the
Bradley-Terry probability the model puts on its answer. A reward model scores each response on its own, so it
has no position bias: the second order of a pair reuses the rewards of the first (kept in memory).
The judge id carries a fingerprint of the model folder's files, so retraining in place gives a new id.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Optional

from rlhfkit.judges.base import JudgeError, Verdict


def folder_fingerprint(path: Path) -> str:
    """8 hex digits over the names, sizes and modification times of a folder's files."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(path)}\x00{st.st_size}\x00{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:8]


class RMJudge:
    concurrent = False

    def __init__(self, path: str, *, scorer: Any = None, device: Any = None, batch_size: int = 8):
        p = Path(path).expanduser()
        if scorer is None:
            if not p.is_dir():
                raise JudgeError(f"judge rm:{path}: no such folder (give a reward model folder, e.g. runs/rm/final)")
            from rlhfkit.models.scorer import RewardScorer

            scorer = RewardScorer(str(p), device=device, batch_size=batch_size)
        if not scorer.trained:
            raise JudgeError(f"judge rm:{path} has no stored reward statistics: it is not a reward model trained by "
                             "`rlhfkit rm train` (a causal LM would get an untrained, random head)")
        self.scorer = scorer
        self.judge_id = f"rm:{path}#{folder_fingerprint(p)}" if p.is_dir() else f"rm:{path}"
        self._rewards: dict[str, float] = {}

    def reward(self, prompt: Any, response: Any) -> float:
        key = json.dumps([prompt, response], ensure_ascii=False, sort_keys=True)
        if key not in self._rewards:
            self._rewards[key] = float(self.scorer.rewards([prompt], [response])[0])
        return self._rewards[key]

    def judge(self, prompt: Any, response_a: Any, response_b: Any) -> Verdict:
        r_a, r_b = self.reward(prompt, response_a), self.reward(prompt, response_b)
        if not (math.isfinite(r_a) and math.isfinite(r_b)):
            return Verdict(None, None, {"reward_a": r_a, "reward_b": r_b, "error": "non-finite reward"},
                           self.judge_id)
        winner: Optional[str] = "a" if r_a > r_b else "b" if r_b > r_a else "tie"
        confidence = 1.0 / (1.0 + math.exp(-abs(r_a - r_b)))
        return Verdict(winner, confidence, {"reward_a": r_a, "reward_b": r_b}, self.judge_id)
