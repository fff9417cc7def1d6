"""One-row packing with per-sequence causal attention (models/attention.py): the same log-probs, rewards and
gradients as the masked rows and as each sequence run on its own."""
import pytest
import torch
from conftest import make_model, make_tokenizer

from rlhfkit.data.collate import pack_groups, segment_mask
from rlhfkit.models.attention import NAME, use_packed_attention
from rlhfkit.models.forward import completion_logprobs, hidden_states


def _groups(seed=0):
    g = torch.Generator().manual_seed(seed)
    plens, rlens = [5, 1, 9, 3], [4, 7, 1, 6]
    return [(torch.randint(5, 60, (p,), generator=g).tolist(), [torch.randint(5, 60, (r,), generator=g).tolist()])
            for p, r in zip(plens, rlens)]


def test_one_row_layout_and_its_mask():
    groups = _groups()
    b = pack_groups(groups, pad_id=0, one_row=True)
    assert b.input_ids.shape == (1, sum(len(p) + len(c[0]) for p, c in groups))     # no padding at all
    assert b.attention_mask is None
    assert b.segments == ((0, 9), (9, 17), (17, 27), (27, 36))
    assert b.position_ids[0, 9:17].tolist() == list(range(8))                       # restart per sequence
    m = segment_mask(b.segments, 36)[0, 0]
    assert m[10, 9] and m[10, 10] and not m[10, 11] and not m[10, 8]               # causal, own segment only
    with pytest.raises(ValueError, match="exactly one completion"):
        pack_groups([([1, 2], [[3], [4]])], pad_id=0, one_row=True)


def test_packed_attention_matches_masked_rows_and_single_sequences():
    tok = make_tokenizer()
    model = make_model(tok, hidden=64)           # 4 query heads sharing 2 K/V heads (grouped-query attention)
    groups = _groups()
    masked = pack_groups(groups, pad_id=0)
    one_row = pack_groups(groups, pad_id=0, one_row=True)
    with torch.no_grad():
        ref = torch.cat([completion_logprobs(model, pack_groups([g], pad_id=0)) for g in groups])
        via_mask = completion_logprobs(model, one_row)           # sdpa: the one row gets the block mask
        assert use_packed_attention(model) and model.config._attn_implementation == NAME
        packed = completion_logprobs(model, one_row)              # one causal SDPA call per sequence
        rows = completion_logprobs(model, masked)                 # masked rows still work on this implementation
    for x in (via_mask, packed, rows):
        torch.testing.assert_close(x, ref, atol=1e-5, rtol=1e-5)
    # plain forwards (generation, eval) are sdpa: same logits as a fresh sdpa model
    ids = torch.tensor([groups[0][0] + groups[0][1][0]])
    fresh = make_model(tok, hidden=64)
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, fresh(input_ids=ids).logits)


def test_packed_attention_gradients_match_the_mask():
    tok = make_tokenizer()
    groups = _groups(1)
    one_row = pack_groups(groups, pad_id=0, one_row=True)
    grads = []
    for packed in (False, True):
        model = make_model(tok, hidden=64).train()
        if packed:
            assert use_packed_attention(model)
        completion_logprobs(model, one_row).sum().backward()
        grads.append([p.grad for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_other_implementations_keep_their_masks():
    """eager gets the one row's block mask (additive form) and gives what each sequence alone gives."""
    tok = make_tokenizer()
    model = make_model(tok)
    groups = _groups()
    with torch.no_grad():
        alone = torch.cat([hidden_states(model, pack_groups([g], pad_id=0))[0] for g in groups])
    model.config._attn_implementation = "eager"
    assert not use_packed_attention(model)
    with torch.no_grad():
        h = hidden_states(model, pack_groups(groups, pad_id=0, one_row=True))
    torch.testing.assert_close(h[0], alone, atol=1e-5, rtol=1e-5)
