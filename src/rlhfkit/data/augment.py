"""Degenerate negatives for reward-model training (`rlhfkit rm train --degenerate-negatives F`).

A reward model only learns the preferences it is shown. One trained on a few hundred real answers has never seen
degenerate text (a run of one emoji, a phrase repeated to the length cap, word salad) and scores it anywhere; PPO
then finds that place. On the bundled support data a policy went from real answers to "🌟🌟🌟..." within 8 updates
because the reward model scored such runs above the starting model's answers (docs/experiments/ppo-runs.md, run 3).

Each extra pair puts a degenerate response below a real one of the same prompt: (prompt, winner = the pair's
*rejected* response, loser = a degenerate version of its chosen response). Below the rejected answer, not only the
chosen one: a vague but real answer still beats text that is no answer at all, and the chosen side stays where the
real pairs put it. The degenerate response keeps the chosen response's length (so length alone does not decide the
pair) and, half of the time, its final EOS.
"""
from __future__ import annotations

import random
from typing import Sequence

from rlhfkit.data.tokenize import TokenizedPair

KINDS = ("token_run", "span_run", "shuffled")


def degenerate_response(ids: Sequence[int], *, eos_id: int, rng: random.Random, vocab: Sequence[int],
                        kind: str) -> list[int]:
    """A degenerate version of one response (token ids, completion only, EOS possibly last), same length:

    token_run  1-3 random ordinary vocabulary tokens repeated (runs of emoji, punctuation, word pieces)
    span_run   1-4 consecutive tokens of the response repeated ("no, no, no")
    shuffled   the response's own tokens in random order (its words, no sentence)

    Half of the results end with EOS (as the response did, if it did), half are cut without one, as a response that
    hits the length cap is."""
    body = [t for t in ids if t != eos_id] or [eos_id]
    n = len(ids)
    if kind == "token_run":
        unit = [rng.choice(vocab) for _ in range(rng.randint(1, 3))]
    elif kind == "span_run":
        k = min(len(body), rng.randint(1, 4))
        start = rng.randrange(len(body) - k + 1)
        unit = body[start:start + k]
    elif kind == "shuffled":
        unit = list(body)
        rng.shuffle(unit)
    else:
        raise ValueError(f"unknown kind {kind!r}; one of {KINDS}")
    out = (unit * (n // len(unit) + 1))[:n]                            # repeated to the response's length
    if ids and ids[-1] == eos_id and rng.random() < 0.5:
        out[-1] = eos_id
    return out


def with_degenerate_negatives(pairs: Sequence[TokenizedPair], fraction: float, *, seed: int, eos_id: int,
                              vocab: Sequence[int]) -> list[TokenizedPair]:
    """`pairs` followed by round(fraction * len(pairs)) extra pairs (prompt, rejected, degenerate(chosen)), built
    from a seeded sample of the pairs (with repeats when fraction > 1), the three kinds in turn. `vocab`: the
    token ids a token run may use (ordinary tokens: no special tokens)."""
    rng = random.Random(seed)
    n = round(fraction * len(pairs))
    extra = []
    for j in range(n):
        p = pairs[rng.randrange(len(pairs))]
        bad = degenerate_response(p.chosen_ids, eos_id=eos_id, rng=rng, vocab=vocab, kind=KINDS[j % len(KINDS)])
        extra.append(TokenizedPair(prompt_ids=list(p.prompt_ids), chosen_ids=list(p.rejected_ids),
                                   rejected_ids=bad, truncated=p.truncated))
    return list(pairs) + extra
