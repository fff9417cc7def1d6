"""Degenerate negatives for reward-model training: each kind of degenerate response, the extra pairs' layout."""
import random

import pytest

from rlhfkit.data.augment import KINDS, degenerate_response, with_degenerate_negatives
from rlhfkit.data.tokenize import TokenizedPair

EOS = 2
VOCAB = list(range(100, 120))


def periodic(seq, k):
    return all(seq[i] == seq[i % k] for i in range(len(seq)))


def test_token_run_repeats_vocabulary_tokens():
    rng = random.Random(0)
    ids = [5, 6, 7, 8, 9, 10, 11, 12, 13, EOS]
    for _ in range(50):
        out = degenerate_response(ids, eos_id=EOS, rng=rng, vocab=VOCAB, kind="token_run")
        assert len(out) == len(ids)
        body = out[:-1] if out[-1] == EOS else out
        assert set(body) <= set(VOCAB)
        assert any(periodic(body, k) for k in (1, 2, 3))


def test_span_run_repeats_a_span_of_the_response():
    rng = random.Random(1)
    ids = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, EOS]
    for _ in range(50):
        out = degenerate_response(ids, eos_id=EOS, rng=rng, vocab=VOCAB, kind="span_run")
        body = out[:-1] if out[-1] == EOS else out
        k = next(k for k in (1, 2, 3, 4) if periodic(body, k))
        span = body[:k]
        assert any(ids[i:i + k] == span for i in range(len(ids) - k))       # consecutive tokens of the response


def test_shuffled_keeps_the_words_and_loses_the_order():
    rng = random.Random(2)
    ids = list(range(20, 40)) + [EOS]
    out = degenerate_response(ids, eos_id=EOS, rng=rng, vocab=VOCAB, kind="shuffled")
    body = out[:-1] if out[-1] == EOS else out
    assert set(body) <= set(ids[:-1]) and body != ids[:len(body)]


def test_eos_kept_about_half_the_time_and_never_inside():
    rng = random.Random(3)
    ids = [5, 6, 7, 8, EOS]
    outs = [degenerate_response(ids, eos_id=EOS, rng=rng, vocab=VOCAB, kind=k) for k in KINDS for _ in range(200)]
    ended = sum(o[-1] == EOS for o in outs) / len(outs)
    assert 0.4 < ended < 0.6
    assert all(EOS not in o[:-1] for o in outs)
    no_eos = [5, 6, 7, 8]                                    # a response cut at the cap stays without EOS
    assert all(degenerate_response(no_eos, eos_id=EOS, rng=rng, vocab=VOCAB, kind=k)[-1] != EOS
               for k in KINDS for _ in range(20))


def test_extra_pairs_put_the_degenerate_response_below_the_rejected_one():
    pairs = [TokenizedPair(prompt_ids=[1, i], chosen_ids=[10 + i, 11, 12, EOS], rejected_ids=[30 + i, EOS])
             for i in range(10)]
    out = with_degenerate_negatives(pairs, 0.5, seed=0, eos_id=EOS, vocab=VOCAB)
    assert out[:10] == pairs and len(out) == 15
    for p in out[10:]:
        src = next(q for q in pairs if q.prompt_ids == p.prompt_ids)
        assert p.chosen_ids == src.rejected_ids                # winner: the real, rejected answer
        assert len(p.rejected_ids) == len(src.chosen_ids)      # loser: degenerate, the chosen answer's length
        assert p.rejected_ids != src.chosen_ids
    again = with_degenerate_negatives(pairs, 0.5, seed=0, eos_id=EOS, vocab=VOCAB)
    assert [p.rejected_ids for p in again] == [p.rejected_ids for p in out]
    assert with_degenerate_negatives(pairs, 0.0, seed=0, eos_id=EOS, vocab=VOCAB) == pairs
    with pytest.raises(ValueError):
        degenerate_response([5, EOS], eos_id=EOS, rng=random.Random(0), vocab=VOCAB, kind="nonsense")
