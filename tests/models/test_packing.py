"""Packed, prefix-shared rows give the same log-probs as one plain forward per sequence."""
import random

import pytest
import torch
from conftest import make_model, make_tokenizer

from rlhfkit.data.collate import pack_groups, pack_pairs
from rlhfkit.data.tokenize import TokenizedPair
from rlhfkit.models.forward import sequence_logprobs
from rlhfkit.models.logprobs import logprobs_from_logits


def random_pairs(n, vocab, seed=0):
    g = random.Random(seed)
    ids = lambda k: [g.randrange(3, vocab) for _ in range(k)]  # noqa: E731
    return [TokenizedPair(ids(g.randint(1, 9)), ids(g.randint(1, 7)), ids(g.randint(1, 7))) for _ in range(n)]


def plain_logp(model, prompt, completion):
    """Reference: one unpadded sequence, full logits, log_softmax, gather."""
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0]          # (T, V)
    P = len(prompt)
    return logprobs_from_logits(logits[P - 1:-1], ids[0, P:]).sum()


@pytest.fixture(scope="module")
def model_and_pairs():
    tok = make_tokenizer()
    model = make_model(tok, seed=1)
    return model, random_pairs(7, len(tok)), tok.pad_token_id


@pytest.mark.parametrize("prefix_sharing", [True, False])
@pytest.mark.parametrize("row_length", [None, 16, 64])
def test_packed_logprobs_equal_plain_forward(model_and_pairs, prefix_sharing, row_length):
    model, pairs, pad = model_and_pairs
    batch = pack_pairs(pairs, pad_id=pad, prefix_sharing=prefix_sharing, row_length=row_length)
    with torch.no_grad():
        got = sequence_logprobs(model, batch)                       # (2B,) chosen first
    want = torch.stack([plain_logp(model, p.prompt_ids, p.chosen_ids) for p in pairs]
                       + [plain_logp(model, p.prompt_ids, p.rejected_ids) for p in pairs])
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-5)


def test_prefix_sharing_saves_prompt_tokens(model_and_pairs):
    _, pairs, pad = model_and_pairs
    shared = pack_pairs(pairs, pad_id=pad, prefix_sharing=True)
    plain = pack_pairs(pairs, pad_id=pad, prefix_sharing=False)
    prompts = sum(len(p.prompt_ids) for p in pairs)
    assert plain.num_tokens - shared.num_tokens == prompts
    assert shared.target_ids.numel() == plain.target_ids.numel() == sum(
        len(p.chosen_ids) + len(p.rejected_ids) for p in pairs)


def test_mask_keeps_completions_apart():
    # one group: prompt [a b], chosen [c d], rejected [e]
    b = pack_groups([([10, 11], [[12, 13], [14]])], pad_id=0, row_length=8)
    m = b.attention_mask[0, 0]
    assert b.input_ids.tolist() == [[10, 11, 12, 13, 14]]           # rows cut to the fullest one
    assert b.position_ids.tolist() == [[0, 1, 2, 3, 2]]             # rejected continues from the prompt
    # rejected token (col 4) sees the prompt and itself, not the chosen tokens
    assert m[4].tolist() == [True, True, False, False, True]
    assert m[3].tolist() == [True, True, True, True, False]
    # the first token of both completions is predicted by the last prompt token
    assert b.target_index.tolist() == [1, 2, 1]
    assert b.target_ids.tolist() == [12, 13, 14]
    assert b.last_index.tolist() == [3, 4]


def test_padding_attends_only_to_itself_and_groups_stay_apart():
    b = pack_groups([([1, 2, 3], [[4]]), ([5], [[6]]), ([7, 8], [[9, 9, 9]])], pad_id=0, row_length=0, pack=False)
    assert b.input_ids.shape == (3, 5)
    m = b.attention_mask[:, 0]
    assert m[1, 3].tolist() == [False, False, False, True, False]    # a padding token: itself only
    packed = pack_groups([([1, 2, 3], [[4]]), ([5], [[6]]), ([7, 8], [[9, 9, 9]])], pad_id=0, row_length=8)
    # first-fit decreasing into 8-token rows: [g2 (5) + g1 (2)], [g0 (4)]
    row_tokens = sorted(int((r != 0).sum()) for r in packed.input_ids)
    assert sum(row_tokens) == 11 and packed.input_ids.shape[0] == 2
    m = packed.attention_mask[:, 0]
    gid = packed.position_ids  # groups restart positions at 0
    for r in range(packed.input_ids.shape[0]):
        starts = (gid[r] == 0).nonzero().flatten().tolist()
        for s, e in zip(starts, starts[1:]):
            assert not m[r, e:, s:e].any()                           # a later group never sees an earlier one


def test_completion_needs_a_token():
    with pytest.raises(ValueError):
        pack_groups([([1], [[]])], pad_id=0)
