"""The three forms a preference record comes in, and their normalisation to `PreferenceExample`.

Names follow TRL's dataset-format guide:

    explicit        {"prompt": str, "chosen": str, "rejected": str}
    conversational  {"prompt": [messages], "chosen": [assistant messages], "rejected": [assistant messages]}
    implicit        {"chosen": dialogue, "rejected": dialogue}: two whole dialogues that share the prompt.
                    A dialogue is an Anthropic HH-RLHF transcript ("\\n\\nHuman: ...\\n\\nAssistant: ...") or a
                    message list; the prompt is everything before the final assistant reply.

A message is {"role": str, "content": str}. The optional fields id (string or integer), source (string) and
margin (finite number) are kept; null counts as absent; other keys are ignored.

Every problem with a record raises `RecordError(field, message)`; `field` names the place in the record
("chosen", "prompt[1].role") so a report can point at it, `message` says what is wrong and what to do.
"""
from __future__ import annotations

import math
import os
from typing import Any

from rlhfkit.types import PreferenceExample, Text

FORMATS = ("explicit", "conversational", "implicit")

# In an HH-RLHF transcript the reply being compared follows the last occurrence of this marker.
ASSISTANT_MARKER = "\n\nAssistant:"


class RecordError(Exception):
    """A problem with one record: `field` is where it is, `message` what is wrong and what to do."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def json_type(value: Any) -> str:
    """The JSON name of a value's type, for error messages ("null", "number", "list", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def text_of(value: Text) -> str:
    """The text of a prompt or response: the string itself, or the messages' contents joined."""
    if isinstance(value, str):
        return value
    return "".join(m["content"] for m in value)


def _absent(record: dict, key: str) -> bool:
    return record.get(key) is None


def detect_format(record: Any) -> str:
    """Which form a record is in: "explicit", "conversational" or "implicit".

    A record without a prompt is implicit (whole dialogues, strings or message lists); with a prompt it is
    conversational when any of prompt/chosen/rejected is a list, explicit otherwise. Raises RecordError when
    the record cannot be a preference pair at all (not an object, chosen or rejected missing).
    """
    if not isinstance(record, dict):
        raise RecordError("record", f"expected a JSON object, got {json_type(record)}")
    for key in ("chosen", "rejected"):
        if _absent(record, key):
            raise RecordError(key, f"missing field '{key}' (a preference record needs chosen and rejected, "
                                   "and a prompt unless both are whole dialogues)")
    if _absent(record, "prompt"):
        return "implicit"
    if any(isinstance(record[k], list) for k in ("prompt", "chosen", "rejected")):
        return "conversational"
    return "explicit"


def normalize(record: Any, fmt: str, line: int | None = None) -> PreferenceExample:
    """Read one record in form `fmt` as a PreferenceExample (line is kept for error messages).

    Raises RecordError for the first problem found: missing or wrong-typed fields, malformed messages,
    implicit dialogues whose prompts differ, chosen identical to rejected, bad optional fields. An empty
    response is legal (preferring to say nothing is a real label in HH-RLHF); `data check` warns about it.
    """
    if not isinstance(record, dict):
        raise RecordError("record", f"expected a JSON object, got {json_type(record)}")
    if fmt == "explicit":
        prompt, chosen, rejected = (_require_text(record, k) for k in ("prompt", "chosen", "rejected"))
    elif fmt == "conversational":
        if _absent(record, "prompt"):  # prompt-less conversational data is implicit message lists (TRL)
            prompt, chosen, rejected = _split_dialogues(_require_messages(record, "chosen"),
                                                        _require_messages(record, "rejected"))
        else:
            prompt = _require_messages(record, "prompt")
            chosen = _require_answer(record, "chosen")
            rejected = _require_answer(record, "rejected")
    elif fmt == "implicit":
        prompt, chosen, rejected = _split_implicit(record)
    else:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    _check_distinct(chosen, rejected)
    return PreferenceExample(prompt, chosen, rejected, line=line, **_optional_fields(record))


# ----------------------------------------------------------------------------------------------
# fields
# ----------------------------------------------------------------------------------------------
def _require(record: dict, key: str) -> Any:
    if key not in record:
        raise RecordError(key, f"missing field '{key}'")
    return record[key]


def _require_text(record: dict, key: str) -> str:
    value = _require(record, key)
    if not isinstance(value, str):
        raise RecordError(key, f"must be a string, got {json_type(value)}")
    return value


def _check_message(message: Any, where: str) -> None:
    if not isinstance(message, dict):
        raise RecordError(where, f"a message must be an object with role and content, got {json_type(message)}")
    for key in ("role", "content"):
        if key not in message:
            raise RecordError(f"{where}.{key}", f"message has no '{key}' (messages are {{\"role\", \"content\"}})")
    if not isinstance(message["role"], str) or not message["role"]:
        raise RecordError(f"{where}.role", f"role must be a non-empty string, got {json_type(message['role'])}")
    if not isinstance(message["content"], str):
        raise RecordError(f"{where}.content", f"content must be a string, got {json_type(message['content'])}")


def _require_messages(record: dict, key: str) -> list[dict]:
    value = _require(record, key)
    if not isinstance(value, list):
        raise RecordError(key, f"must be a list of {{role, content}} messages, got {json_type(value)}")
    if not value:
        raise RecordError(key, "empty message list")
    for i, message in enumerate(value):
        _check_message(message, f"{key}[{i}]")
    return value


def _require_answer(record: dict, key: str) -> list[dict]:
    """Conversational chosen/rejected: messages ending with the assistant's answer."""
    messages = _require_messages(record, key)
    last = len(messages) - 1
    if messages[last]["role"] != "assistant":
        raise RecordError(f"{key}[{last}].role",
                          f"the answer must be an assistant message, got role {messages[last]['role']!r}")
    return messages


def _optional_fields(record: dict) -> dict:
    out: dict[str, Any] = {}
    ident = record.get("id")
    if ident is not None:
        if isinstance(ident, bool) or not isinstance(ident, (str, int)):
            raise RecordError("id", f"must be a string or an integer, got {json_type(ident)}")
        out["id"] = str(ident)
    source = record.get("source")
    if source is not None:
        if not isinstance(source, str):
            raise RecordError("source", f"must be a string, got {json_type(source)}")
        out["source"] = source
    margin = record.get("margin")
    if margin is not None:
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not math.isfinite(margin):
            shown = repr(margin) if isinstance(margin, float) else json_type(margin)
            raise RecordError("margin", f"must be a finite number (how strongly chosen is preferred), got {shown}")
        out["margin"] = float(margin)
    return out


def _check_distinct(chosen: Text, rejected: Text) -> None:
    if text_of(chosen).strip() == text_of(rejected).strip():
        raise RecordError("rejected", "identical to chosen: the same answer twice carries no preference "
                                      "(drop the record)")


# ----------------------------------------------------------------------------------------------
# implicit prompt: two whole dialogues sharing a prefix
# ----------------------------------------------------------------------------------------------
def _split_implicit(record: dict) -> tuple[Text, Text, Text]:
    if not _absent(record, "prompt"):
        raise RecordError("prompt", "implicit-prompt records hold only chosen and rejected dialogues, "
                                    "this one has a prompt (read it as explicit or conversational)")
    chosen, rejected = _require(record, "chosen"), _require(record, "rejected")
    if isinstance(chosen, str) and isinstance(rejected, str):
        return _split_transcripts(chosen, rejected)
    if isinstance(chosen, list) and isinstance(rejected, list):
        return _split_dialogues(_require_messages(record, "chosen"), _require_messages(record, "rejected"))
    for key, value in (("chosen", chosen), ("rejected", rejected)):
        if not isinstance(value, (str, list)):
            raise RecordError(key, f"must be a dialogue (transcript string or message list), got {json_type(value)}")
    raise RecordError("rejected", f"chosen is a {json_type(chosen)} but rejected a {json_type(rejected)}: "
                                  "both dialogues must be transcript strings or both message lists")


def split_transcript(text: str, key: str = "chosen") -> tuple[str, str]:
    """Split an HH-RLHF transcript into (prompt ending with "Assistant:", reply without leading whitespace)."""
    i = text.rfind(ASSISTANT_MARKER)
    if i < 0:
        raise RecordError(key, "no '\\n\\nAssistant:' turn: implicit-prompt strings are Human/Assistant "
                               "transcripts (HH-RLHF style); give plain prompt/response text in explicit form")
    cut = i + len(ASSISTANT_MARKER)
    return text[:cut], text[cut:].lstrip()


def _snippet(text: str, start: int, width: int = 40) -> str:
    piece = text[start:start + width]
    return repr(piece + "...") if len(text) > start + width else repr(piece)


def _where_text_differs(chosen: str, rejected: str) -> str:
    k = len(os.path.commonprefix([chosen, rejected]))

    def rest(name: str, text: str) -> str:
        return f"{name}'s continues with {_snippet(text, k)}" if k < len(text) else f"{name}'s ends"

    before = chosen[max(0, k - 30):k]
    return f"differ after character {k} ({before!r}): {rest('chosen', chosen)}, {rest('rejected', rejected)}"


def _split_transcripts(chosen: str, rejected: str) -> tuple[str, str, str]:
    prompt_c, reply_c = split_transcript(chosen, "chosen")
    prompt_r, reply_r = split_transcript(rejected, "rejected")
    if prompt_c != prompt_r:
        raise RecordError("chosen/rejected", f"the two dialogues' prompts (text up to the last "
                                             f"'\\n\\nAssistant:') {_where_text_differs(prompt_c, prompt_r)}; "
                                             "both must share the dialogue before the final reply")
    return prompt_c, reply_c, reply_r


def _describe(message: dict) -> str:
    return f"{message['role']} {_snippet(message['content'], 0)}"


def _split_dialogues(chosen: list[dict], rejected: list[dict]) -> tuple[list, list, list]:
    """Message-list dialogues: prompt = all but the final assistant message, which must be the same in both."""
    for key, dialogue in (("chosen", chosen), ("rejected", rejected)):
        last = len(dialogue) - 1
        if dialogue[last]["role"] != "assistant":
            raise RecordError(f"{key}[{last}].role", "a dialogue must end with the assistant reply being "
                                                     f"compared, got role {dialogue[last]['role']!r}")
        if last == 0:
            raise RecordError(key, "the dialogue is only the assistant reply: there is no prompt before it")
    prompt_c, prompt_r = chosen[:-1], rejected[:-1]
    if prompt_c != prompt_r:
        same = 0
        while same < min(len(prompt_c), len(prompt_r)) and prompt_c[same] == prompt_r[same]:
            same += 1
        if same < min(len(prompt_c), len(prompt_r)):
            where = (f"message {same}: chosen has {_describe(prompt_c[same])}, "
                     f"rejected has {_describe(prompt_r[same])}")
        else:
            where = (f"length: chosen's prompt has {len(prompt_c)} messages, rejected's {len(prompt_r)} "
                     f"(the first {same} agree)")
        raise RecordError("chosen/rejected", f"the two dialogues' prompts (all but the final assistant "
                                             f"message) differ at {where}; both must share the dialogue "
                                             "before the final reply")
    return prompt_c, chosen[-1:], rejected[-1:]
