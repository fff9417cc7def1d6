"""The judge's types: `Verdict`, the `Judge` protocol, `JudgeError`, and the spec names (`parse_spec`).

Every judge module imports these from here; `rlhfkit.judges` re-exports them beside `load_judge`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Protocol

from rlhfkit.errors import RlhfkitError

WINNERS = ("a", "b", "tie")
SCHEMES = ("hf", "openai", "rm")


@dataclass(frozen=True)
class Verdict:
    """One judgement of (prompt, response_a, response_b).

    winner:     "a" | "b" | "tie", or None when the judge failed (unreadable reply, network error after retries)
    confidence: the judge's probability for its answer in [0, 1] when it has one (hf: softmax over the two answer
                tokens; rm: sigmoid(|r_a - r_b|); openai: from the answer token's log-probs when the server
                returns them), else None
    raw:        what the judge said, for inspection (JSON-serialisable: reply text, probabilities, rewards, error)
    judge_id:   the judge that gave it
    """

    winner: Optional[str]
    confidence: Optional[float]
    raw: Any
    judge_id: str

    def to_dict(self) -> dict:
        return {"winner": self.winner, "confidence": self.confidence, "raw": self.raw, "judge_id": self.judge_id}


class Judge(Protocol):
    judge_id: str
    concurrent: bool

    def judge(self, prompt: Any, response_a: Any, response_b: Any) -> Verdict: ...


class JudgeError(RlhfkitError):
    """A judge that cannot work at all (bad spec, refused API key, unknown model): stop, no retries."""


def parse_spec(spec: str) -> tuple[str, str]:
    """"hf:MODEL" -> ("hf", "MODEL"); an unknown scheme or an empty name raises JudgeError."""
    scheme, sep, name = spec.partition(":")
    if not sep or scheme not in SCHEMES:
        raise JudgeError(f"unknown judge {spec!r}: name it as hf:MODEL (local chat model), openai:MODEL "
                         "(OpenAI-compatible endpoint, with --base-url) or rm:PATH (reward model folder)")
    if not name.strip():
        raise JudgeError(f"judge {spec!r} names no model: write {scheme}:MODEL")
    return scheme, name.strip()
