"""Sampling: stop at each row's first EOS, masks from lengths, log-probs equal to a forward pass at the same
temperature, the cached decode (packed or padded prefill) equal to re-running the whole sequence, the nucleus and
the inverse-CDF draw, seeded repeatability, prompts files."""
import json

import pytest
import torch
from conftest import make_model

from rlhfkit.data.collate import pack_groups
from rlhfkit.errors import DataError
from rlhfkit.models.attention import use_packed_attention
from rlhfkit.models.forward import completion_logprobs
from rlhfkit.rollout.generate import draw, load_prompts, nucleus, response_lengths, sample, to_padded


def test_response_lengths_stop_at_the_first_eos():
    eos = 2
    tokens = torch.tensor([[5, 6, 2, 2, 2], [5, 6, 7, 8, 9], [2, 2, 2, 2, 2]])
    lengths, ended = response_lengths(tokens, eos)
    assert lengths.tolist() == [3, 5, 1]
    assert ended.tolist() == [True, False, True]


def test_to_padded():
    flat = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    out = to_padded(flat, torch.tensor([3, 1, 2]))
    assert out.tolist() == [[1, 2, 3], [4, 0, 0], [5, 6, 0]]


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampled_logprobs_equal_a_forward_pass(tiny_tokenizer, temperature, packed):
    torch.manual_seed(0)
    model = make_model(tiny_tokenizer, seed=1)
    assert use_packed_attention(model) if packed else True
    eos = tiny_tokenizer.eos_token_id
    prompts = [[10, 11, 12, 13], [14, 15], [16, 17, 18]]
    s = sample(model, prompts, max_new_tokens=10, temperature=temperature, top_p=0.9, eos_id=eos, pad_id=eos)
    for r, n, e in zip(s.response_ids, s.lengths.tolist(), s.ended.tolist()):
        assert len(r) == n and (r[-1] == eos) == e and eos not in r[:-1]
    assert s.response_mask.sum(-1).tolist() == s.lengths.tolist()
    batch = pack_groups([(p, [r]) for p, r in zip(prompts, s.response_ids)], pad_id=eos)
    ref = to_padded(completion_logprobs(model, batch, temperature=temperature), s.lengths)
    torch.testing.assert_close(s.logprobs, ref, atol=1e-4, rtol=1e-4)
    assert (s.entropy[s.response_mask] > 0).all() and (s.entropy[~s.response_mask] == 0).all()


@pytest.mark.parametrize("packed", [False, True])
def test_cached_decode_equals_rerunning_the_whole_sequence(tiny_tokenizer, packed):
    """Greedy decoding with the KV cache (prompts of different lengths: left padding, or the packed prefill laid
    out left-padded) picks the same tokens, at the same log-probs, as a plain loop that re-runs each prompt plus
    its tokens so far through the model alone, without cache or padding."""
    model = make_model(tiny_tokenizer, seed=3, hidden=64)
    assert use_packed_attention(model) if packed else True
    eos = tiny_tokenizer.eos_token_id
    prompts = [[10, 11, 12, 13, 14, 15, 16], [17], [18, 19, 20]]
    s = sample(model, prompts, max_new_tokens=12, temperature=0, eos_id=eos, pad_id=eos)
    for i, p in enumerate(prompts):
        seq, expected, lps = list(p), [], []
        with torch.no_grad():
            for _ in range(12):
                logp = torch.log_softmax(model(input_ids=torch.tensor([seq])).logits[0, -1].float(), -1)
                tok = int(logp.argmax())
                expected.append(tok)
                lps.append(float(logp[tok]))
                seq.append(tok)
                if tok == eos:
                    break
        assert s.response_ids[i] == expected
        torch.testing.assert_close(s.logprobs[i, :len(expected)], torch.tensor(lps), atol=1e-5, rtol=1e-5)


def test_nucleus_keeps_the_smallest_set_reaching_top_p():
    probs = torch.tensor([[0.05, 0.5, 0.15, 0.3]])        # ranked: 0.5, 0.3, 0.15, 0.05; mass above: 0, .5, .8, .95
    torch.testing.assert_close(nucleus(probs, 0.75), torch.tensor([[0.0, 0.5, 0.0, 0.3]]))
    torch.testing.assert_close(nucleus(probs, 0.85), torch.tensor([[0.0, 0.5, 0.15, 0.3]]))
    torch.testing.assert_close(nucleus(probs, 0.1), torch.tensor([[0.0, 0.5, 0.0, 0.0]]))   # the top token stays
    assert nucleus(probs, 1.0) is probs


def test_draw_follows_the_weights_and_never_picks_a_zero_weight():
    torch.manual_seed(0)
    w = torch.tensor([0.0, 1.0, 3.0, 0.0, 4.0]).repeat(40_000, 1)      # unnormalised weights, one row per draw
    counts = torch.bincount(draw(w), minlength=5).double() / 40_000
    assert counts[0] == 0 and counts[3] == 0
    torch.testing.assert_close(counts, torch.tensor([0.0, 0.125, 0.375, 0.0, 0.5], dtype=torch.float64), atol=0.01,
                               rtol=0)
    edge = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])             # certain tokens at either end
    assert draw(edge).tolist() == [2, 0]


def test_sampling_is_seeded(tiny_tokenizer):
    model = make_model(tiny_tokenizer, seed=1)
    eos = tiny_tokenizer.eos_token_id
    runs = []
    for _ in range(2):
        torch.manual_seed(5)
        runs.append(sample(model, [[10, 11], [12]], max_new_tokens=8, eos_id=eos, pad_id=eos).response_ids)
    assert runs[0] == runs[1]
    greedy = [sample(model, [[10, 11]], max_new_tokens=8, temperature=0, eos_id=eos, pad_id=eos).response_ids
              for _ in range(2)]
    assert greedy[0] == greedy[1]


def test_load_prompts_from_prompt_and_preference_files(tmp_path):
    a = tmp_path / "p.jsonl"
    a.write_text(json.dumps({"prompt": "hi"}) + "\n" + json.dumps({"prompt": [{"role": "user", "content": "x"}]})
                 + "\n" + json.dumps({"prompt": "hi"}) + "\n")
    assert load_prompts(str(a)) == ["hi", [{"role": "user", "content": "x"}]]
    b = tmp_path / "pairs.jsonl"
    b.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n")
    assert load_prompts(str(b)) == ["q"]
    c = tmp_path / "bad.jsonl"
    c.write_text(json.dumps({"prompt": "ok"}) + "\n" + json.dumps({"question": "no"}) + "\n")
    with pytest.raises(DataError, match="bad.jsonl:2"):
        load_prompts(str(c))
    assert len(load_prompts("bundled:support")) > 100
