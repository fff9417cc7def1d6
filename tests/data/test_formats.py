"""Each record form -> PreferenceExample, and the RecordError each kind of bad record raises."""
import pytest

from rlhfkit.data.formats import RecordError, detect_format, normalize, split_transcript


def msg(role, content):
    return {"role": role, "content": content}


def test_explicit():
    record = {"prompt": "Hi?", "chosen": "Hello.", "rejected": "Go away.", "id": "a1", "source": "x", "margin": 2}
    assert detect_format(record) == "explicit"
    ex = normalize(record, "explicit", line=7)
    assert (ex.prompt, ex.chosen, ex.rejected) == ("Hi?", "Hello.", "Go away.")
    assert (ex.id, ex.source, ex.margin, ex.line) == ("a1", "x", 2.0, 7)
    assert ex.to_dict() == {"prompt": "Hi?", "chosen": "Hello.", "rejected": "Go away.", "id": "a1",
                            "source": "x", "margin": 2.0}


def test_integer_id_is_kept_as_text_and_null_optionals_are_absent():
    ex = normalize({"prompt": "p", "chosen": "c", "rejected": "r", "id": 12, "source": None, "margin": None},
                   "explicit")
    assert (ex.id, ex.source, ex.margin) == ("12", None, None)


def test_conversational():
    record = {"prompt": [msg("system", "Be brief."), msg("user", "Hi?")],
              "chosen": [msg("assistant", "Hello.")], "rejected": [msg("assistant", "Go away.")]}
    assert detect_format(record) == "conversational"
    ex = normalize(record, "conversational")
    assert ex.prompt == record["prompt"]
    assert ex.chosen == [msg("assistant", "Hello.")] and ex.rejected == [msg("assistant", "Go away.")]


def test_implicit_hh_strings_split_at_the_last_assistant_turn():
    chosen = "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Refund?\n\nAssistant:  Sure, here is how."
    rejected = "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Refund?\n\nAssistant: No."
    record = {"chosen": chosen, "rejected": rejected}
    assert detect_format(record) == "implicit"
    ex = normalize(record, "implicit")
    assert ex.prompt == "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Refund?\n\nAssistant:"
    assert ex.chosen == "Sure, here is how."   # leading whitespace of the reply only is stripped
    assert ex.rejected == "No."


def test_implicit_message_lists_prompt_is_all_but_the_final_assistant_message():
    dialogue = [msg("user", "Hi"), msg("assistant", "Hello"), msg("user", "Refund?")]
    record = {"chosen": dialogue + [msg("assistant", "Sure.")], "rejected": dialogue + [msg("assistant", "No.")]}
    assert detect_format(record) == "implicit"
    for fmt in ("implicit", "conversational"):  # prompt-less conversational data is the same thing (TRL)
        ex = normalize(record, fmt)
        assert ex.prompt == dialogue
        assert ex.chosen == [msg("assistant", "Sure.")] and ex.rejected == [msg("assistant", "No.")]


def test_split_transcript():
    assert split_transcript("\n\nHuman: a\n\nAssistant:\n b ") == ("\n\nHuman: a\n\nAssistant:", "b ")
    with pytest.raises(RecordError) as e:
        split_transcript("Human: a Assistant: b", "rejected")
    assert e.value.field == "rejected"


@pytest.mark.parametrize("record, fmt, field, words", [
    ([1, 2], "explicit", "record", "got list"),
    ({"prompt": "p", "chosen": "c"}, "explicit", "rejected", "missing field 'rejected'"),
    ({"prompt": 3, "chosen": "c", "rejected": "r"}, "explicit", "prompt", "got number"),
    ({"prompt": "p", "chosen": "c", "rejected": "c "}, "explicit", "rejected", "identical to chosen"),
    ({"prompt": "p", "chosen": "c", "rejected": "r", "margin": "x"}, "explicit", "margin", "finite number"),
    ({"prompt": "p", "chosen": "c", "rejected": "r", "id": 1.5}, "explicit", "id", "string or an integer"),
    ({"prompt": [msg("user", "q")], "chosen": [{"content": "a"}], "rejected": [msg("assistant", "b")]},
     "conversational", "chosen[0].role", "no 'role'"),
    ({"prompt": [msg("user", "q")], "chosen": [msg("assistant", "a")], "rejected": [msg("user", "b")]},
     "conversational", "rejected[0].role", "got role 'user'"),
    ({"prompt": [msg("user", "q")], "chosen": [msg("assistant", None)], "rejected": [msg("assistant", "b")]},
     "conversational", "chosen[0].content", "got null"),
    ({"prompt": "p", "chosen": "c", "rejected": "r"}, "implicit", "prompt", "has a prompt"),
    ({"chosen": [msg("assistant", "a")], "rejected": [msg("assistant", "b")]}, "implicit", "chosen",
     "no prompt"),
    ({"chosen": "\n\nHuman: a\n\nAssistant: x", "rejected": "\n\nHuman: b\n\nAssistant: y"}, "implicit",
     "chosen/rejected", "differ after character 9"),
])
def test_bad_records(record, fmt, field, words):
    with pytest.raises(RecordError) as e:
        normalize(record, fmt)
    assert e.value.field == field
    assert words in e.value.message


def test_empty_response_is_legal_but_both_empty_is_identical():
    assert normalize({"prompt": "p", "chosen": " ", "rejected": "r"}, "explicit").chosen == " "
    with pytest.raises(RecordError) as e:
        normalize({"prompt": "p", "chosen": "", "rejected": "\n"}, "explicit")
    assert e.value.field == "rejected"


def test_detect_format_needs_chosen_and_rejected():
    with pytest.raises(RecordError) as e:
        detect_format({"prompt": "p", "rejected": "r"})
    assert e.value.field == "chosen"
    assert detect_format({"prompt": "p", "chosen": [msg("assistant", "a")], "rejected": "r"}) == "conversational"
