"""Reward head: the last real token from the mask (left/right padding, pad == EOS), packed == padded == HF."""
import torch
from conftest import make_model

from rlhfkit.data.collate import pack_groups
from rlhfkit.models.heads import last_token_index, packed_rewards, padded_rewards


def test_last_token_index_right_left_and_no_padding():
    mask = torch.tensor([[1, 1, 1, 0, 0],     # right padding -> 2
                         [0, 0, 1, 1, 1],     # left padding  -> 4
                         [1, 1, 1, 1, 1],     # none          -> 4
                         [0, 1, 1, 0, 0]])    # both sides    -> 2
    assert last_token_index(mask).tolist() == [2, 4, 4, 2]
    assert last_token_index(mask.bool()).tolist() == [2, 4, 4, 2]


def test_last_token_index_ignores_ids_when_pad_is_eos():
    # pad id == EOS id == 2: the real EOS at position 3 counts, the padding after it does not
    ids = torch.tensor([[5, 6, 7, 2, 2, 2]])
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]])
    assert last_token_index(mask).tolist() == [3]
    # transformers' rule, "the rightmost id that is not the pad id", skips that EOS
    assert (torch.arange(6) * (ids != 2)).argmax(-1).tolist() == [2]


def _tiny_rm(tokenizer, tmp_path):
    from rlhfkit.models.load import load_reward_model

    d = tmp_path / "lm"
    make_model(tokenizer, seed=3).save_pretrained(d)
    tokenizer.save_pretrained(d)
    torch.manual_seed(0)
    return load_reward_model(str(d), quiet=True)


def test_packed_equals_left_and_right_padded_and_hf(tiny_tokenizer, tmp_path):
    rm = _tiny_rm(tiny_tokenizer, tmp_path)
    eos = tiny_tokenizer.eos_token_id
    assert tiny_tokenizer.pad_token_id == eos
    # (prompt, response ending with EOS) of different lengths
    seqs = [([10, 11, 12], [20, 21, eos]), ([13], [22, eos]), ([14, 15, 16, 17], [23, 24, 25, 26, eos])]
    packed = packed_rewards(rm, pack_groups([(p, [c]) for p, c in seqs], pad_id=eos))
    full = [p + c for p, c in seqs]
    T = max(map(len, full))
    right = torch.tensor([s + [eos] * (T - len(s)) for s in full])
    left = torch.tensor([[eos] * (T - len(s)) + s for s in full])
    mr = torch.tensor([[1] * len(s) + [0] * (T - len(s)) for s in full])
    ml = mr.flip(-1)
    torch.testing.assert_close(padded_rewards(rm, right, mr), packed, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(padded_rewards(rm, left, ml), packed, atol=1e-5, rtol=1e-5)
    # one unpadded sequence through transformers' own forward reads the same position (the last token)
    for k, s in enumerate(full):
        hf = rm(input_ids=torch.tensor([s[:-1]])).logits[0, 0]
        ours = padded_rewards(rm, torch.tensor([s[:-1]]), torch.ones(1, len(s) - 1))[0]
        torch.testing.assert_close(ours, hf, atol=1e-5, rtol=1e-5)


def test_reward_depends_on_the_response_not_the_padding(tiny_tokenizer, tmp_path):
    rm = _tiny_rm(tiny_tokenizer, tmp_path)
    eos = tiny_tokenizer.eos_token_id
    a = packed_rewards(rm, pack_groups([([10, 11], [[20, eos]])], pad_id=eos))
    b = packed_rewards(rm, pack_groups([([10, 11], [[20, eos]]), ([12, 13, 14, 15, 16], [[21, 22, eos]])], pad_id=eos))
    torch.testing.assert_close(a, b[:1], atol=1e-5, rtol=1e-5)
    c = packed_rewards(rm, pack_groups([([10, 11], [[21, eos]])], pad_id=eos))
    assert not torch.allclose(a, c)
