"""Tokenisation: chat template, EOS once, truncation from the right side of each part, prefix mismatches."""
import pytest

from rlhfkit.data.tokenize import hh_to_messages, tokenize_completion, tokenize_pair
from rlhfkit.types import PreferenceExample


def test_chat_template_prompt_and_completion(tiny_tokenizer):
    ex = PreferenceExample("Customer: my order is wrong.", "Sorry! a refund ships today.", "Contact support.")
    t = tokenize_pair(ex, tiny_tokenizer)
    dec = tiny_tokenizer.decode
    assert dec(t.prompt_ids) == "<|im_start|>user\nCustomer: my order is wrong.<|im_end|>\n<|im_start|>assistant\n"
    assert dec(t.chosen_ids) == "Sorry! a refund ships today.<|im_end|>"
    assert dec(t.rejected_ids) == "Contact support.<|im_end|>"
    eos = tiny_tokenizer.eos_token_id
    assert t.chosen_ids.count(eos) == 1 and t.chosen_ids[-1] == eos      # EOS once, at the end
    assert not t.truncated and not t.prefix_mismatch


def test_plain_concatenation_without_template(tiny_tokenizer):
    ex = PreferenceExample("Human: hi Assistant:", " hello", " bye")
    t = tokenize_pair(ex, tiny_tokenizer, use_chat_template=False)
    assert tiny_tokenizer.decode(t.prompt_ids) == "Human: hi Assistant:"
    assert tiny_tokenizer.decode(t.chosen_ids) == " hello<|im_end|>"


def test_truncation_keeps_prompt_end_and_completion_start(tiny_tokenizer):
    prompt = "the quick brown fox jumps over the lazy dog " * 4
    ex = PreferenceExample(prompt, "refund password account billing delivery tomorrow " * 3, "no")
    full = tokenize_pair(ex, tiny_tokenizer, use_chat_template=False)
    t = tokenize_pair(ex, tiny_tokenizer, use_chat_template=False, max_length=20, max_prompt_length=8)
    assert t.truncated
    assert t.prompt_ids == full.prompt_ids[-8:]                          # the prompt keeps its last tokens
    assert t.chosen_ids == full.chosen_ids[:12]                          # the completion its first tokens
    assert t.rejected_ids == full.rejected_ids                           # short enough already
    assert len(t.prompt_ids) + len(t.chosen_ids) == 20


def test_prefix_mismatch_is_detected(tiny_tokenizer):
    """Cut words of the tokenizer's corpus at every character: where BPE merges across the cut, the prompt's own
    tokens are not a prefix of the one-string tokenisation; the completion then starts one token earlier."""
    from conftest import CORPUS

    mismatches = 0
    for word in {w for line in CORPUS[:6] for w in line.split()}:
        for cut in range(1, len(word)):
            prompt, resp = word[:cut], word[cut:]
            t = tokenize_completion(prompt, resp, tiny_tokenizer, use_chat_template=False)
            full = tiny_tokenizer(prompt + resp, add_special_tokens=False)["input_ids"]
            ids = t.prompt_ids + t.completion_ids[:-1]
            if ids[0] == tiny_tokenizer.bos_token_id != full[0]:
                ids = ids[1:]  # the whole prompt merged into the completion: a start token stands in for it
            assert ids == full                                         # always the one-string tokenisation
            own = tiny_tokenizer(prompt, add_special_tokens=False)["input_ids"]
            assert t.prefix_mismatch == (full[:len(own)] != own)
            mismatches += t.prefix_mismatch
    assert mismatches > 0


def test_hh_dialogue_becomes_messages():
    msgs = hh_to_messages("\n\nHuman: hi\n\nAssistant: hello\n\nHuman: help me\n\nAssistant:")
    assert msgs == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                    {"role": "user", "content": "help me"}]
    assert hh_to_messages("just text") is None


def test_conversational_needs_a_template(tiny_tokenizer):
    from rlhfkit.errors import DataError

    ex = PreferenceExample([{"role": "user", "content": "hi"}], [{"role": "assistant", "content": "a"}],
                           [{"role": "assistant", "content": "b"}])
    t = tokenize_pair(ex, tiny_tokenizer)
    assert tiny_tokenizer.decode(t.chosen_ids) == "a<|im_end|>"
    with pytest.raises(DataError, match="chat template"):
        tokenize_pair(ex, tiny_tokenizer, use_chat_template=False)


@pytest.mark.slow
def test_default_model_tokenizer(default_model_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(default_model_path)
    ex = PreferenceExample("Customer: My order is wrong. What should I do?", "I'm so sorry! Let me fix this.",
                           "Contact support.")
    t = tokenize_pair(ex, tok, max_length=384, max_prompt_length=256)
    assert tok.decode(t.prompt_ids).endswith("<|im_start|>assistant\n")
    assert tok.decode(t.chosen_ids) == "I'm so sorry! Let me fix this.<|im_end|>"
    assert t.chosen_ids[-1] == tok.eos_token_id == tok.pad_token_id == 2
