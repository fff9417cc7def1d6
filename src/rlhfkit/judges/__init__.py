"""AI feedback (RLAIF): judges turn `(prompt, response_a, response_b)` into a `Verdict` with provenance.

A judge is any object with
    judge_id:   str, the judge's identity (model, prompt template version and hash): goes into `source` and the
                verdict cache's key, so changing the model or the rubric never reuses old verdicts;
    concurrent: bool, whether `judge` may be called from several threads at once (HTTP judges);
    judge(prompt, response_a, response_b) -> Verdict.

Three kinds, named on the command line by a scheme (`load_judge`):
    hf:MODEL      a local HF chat model; the verdict is read from the probabilities of the answer tokens "A"/"B"
    openai:MODEL  any OpenAI-compatible chat-completions endpoint (--base-url), standard library HTTP only
    rm:PATH       a reward model trained by `rlhfkit rm train`: the higher reward wins

Judges run offline, never inside a trainer: `rlhfkit label` (judges/label.py) asks each pair in both orders and
writes a preference file; `rlhfkit label --agreement` (judges/agreement.py) measures a judge against human labels.
Heavy modules (torch, transformers) are imported by the judge that needs them, when it is built.
"""
from __future__ import annotations

from typing import Any, Optional

from rlhfkit.judges.base import SCHEMES, WINNERS, Judge, JudgeError, Verdict, parse_spec

__all__ = ["SCHEMES", "WINNERS", "Judge", "JudgeError", "Verdict", "load_judge", "parse_spec"]


def load_judge(spec: str, *, rubric: Optional[str] = None, **options: Any) -> Judge:
    """Build the judge a spec names. `options` go to that judge's constructor (openai: base_url, api_key_env,
    timeout, max_retries, rate_limit, ...; hf: device; rm: batch_size); options for other kinds are ignored."""
    scheme, name = parse_spec(spec)
    if scheme == "openai":
        from rlhfkit.judges.http import OpenAIJudge

        keys = ("base_url", "api_key_env", "timeout", "max_retries", "backoff", "rate_limit", "max_tokens",
                "logprobs")
        return OpenAIJudge(name, rubric=rubric, **{k: v for k, v in options.items() if k in keys and v is not None})
    if scheme == "hf":
        from rlhfkit.judges.hf import HFJudge

        return HFJudge(name, rubric=rubric, **{k: v for k, v in options.items() if k in ("device",)})
    from rlhfkit.judges.rm import RMJudge

    return RMJudge(name, **{k: v for k, v in options.items() if k in ("device", "batch_size")})
