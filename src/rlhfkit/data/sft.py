"""Supervised fine-tuning data: prompt/completion pairs from the forms practitioners have.

Accepted records (detected per file from its first records, like preference files):
- `{"prompt": ..., "completion": ...}` (TRL's prompt-completion form; `response` or `output` work too, and
  `instruction` + optional `input` stand for the prompt, as in Alpaca-style files);
- `{"messages": [{"role", "content"}, ...]}` ending with an assistant message: the prompt is every message
  before the last assistant turn, the completion that turn;
- `{"text": ...}`: plain language modelling, the loss on every token;
- a preference record (explicit, conversational or implicit): SFT on the chosen response.
Any problem is an error naming file, line and field; trainers refuse files with errors.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from rlhfkit.data.formats import RecordError, detect_format, normalize
from rlhfkit.data.io import _guarded, location, open_records, resolve_data_path, split_by_prompt
from rlhfkit.errors import DataError
from rlhfkit.types import Text

SFT_FORMATS = ("prompt_completion", "messages", "text", "preference")


@dataclass
class SFTExample:
    """prompt: str or messages ("" for plain text); completion: str or [assistant message]."""

    prompt: Text
    completion: Text
    line: Optional[int] = None


def _text(record: dict, key: str) -> str:
    v = record.get(key)
    if not isinstance(v, str):
        raise RecordError(key, f"expected a string, got {type(v).__name__}")
    if not v.strip():
        raise RecordError(key, "is empty")
    return v


def detect_sft_format(record: Any) -> str:
    if not isinstance(record, dict):
        raise RecordError("record", f"expected a JSON object, got {type(record).__name__}")
    if "messages" in record:
        return "messages"
    if "chosen" in record:
        return "preference"
    if "text" in record and "prompt" not in record:
        return "text"
    if "prompt" in record or "instruction" in record:
        return "prompt_completion"
    raise RecordError("record", "no SFT fields: expected prompt+completion, messages, text, or a preference pair "
                                f"(found keys: {', '.join(sorted(record)) or 'none'})")


def normalize_sft(record: Any, fmt: str, line: Optional[int] = None) -> SFTExample:
    if fmt == "messages":
        msgs = record.get("messages")
        if not isinstance(msgs, list) or not msgs:
            raise RecordError("messages", "expected a non-empty list of {role, content} messages")
        for i, m in enumerate(msgs):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
                raise RecordError(f"messages[{i}]", "expected {\"role\": str, \"content\": str}")
        last = max((i for i, m in enumerate(msgs) if m["role"] == "assistant"), default=None)
        if last is None:
            raise RecordError("messages", "no assistant message to learn from")
        if not msgs[last]["content"].strip():
            raise RecordError(f"messages[{last}]", "the assistant message is empty")
        return SFTExample(msgs[:last], [msgs[last]], line)
    if fmt == "text":
        return SFTExample("", _text(record, "text"), line)
    if fmt == "prompt_completion":
        if "instruction" in record and "prompt" not in record:
            prompt = _text(record, "instruction")
            if isinstance(record.get("input"), str) and record["input"].strip():
                prompt = f"{prompt}\n\n{record['input']}"
        else:
            prompt = _text(record, "prompt")
        for key in ("completion", "response", "output"):
            if key in record:
                return SFTExample(prompt, _text(record, key), line)
        raise RecordError("completion", "missing (also looked for `response` and `output`)")
    if fmt == "preference":
        ex = normalize(record, detect_format(record), line)
        return SFTExample(ex.prompt, ex.chosen, line)
    raise RecordError("record", f"unknown SFT form {fmt!r}; one of {', '.join(SFT_FORMATS)}")


def load_sft_examples(path: str, fmt: Optional[str] = None) -> list[SFTExample]:
    """All examples of an SFT file; raises DataError quoting the first problems (nothing dropped silently)."""
    p = resolve_data_path(path)
    triples, unit = open_records(p)
    out, errors = [], []
    for n, record, error in _guarded(triples):
        if record is None and error is None:
            continue  # blank line
        if error is None:
            try:
                fmt = fmt or detect_sft_format(record)
                out.append(normalize_sft(record, fmt, n))
                continue
            except RecordError as e:
                error = e
        errors.append(f"{location(str(path), unit, n)}: {error.field}: {error.message}")
    if errors:
        quoted = "\n  ".join(errors[:5])
        raise DataError(f"{path}: {len(errors)} invalid records:\n  {quoted}\nfix or remove them")
    if not out:
        raise DataError(f"{path}: no examples")
    return out


def split_sft_examples(examples: list[SFTExample], test_fraction: float,
                       seed: int = 0) -> tuple[list[SFTExample], list[SFTExample]]:
    """(train, test) by a seeded hash of the prompt (of the text itself for plain-text examples), so no prompt
    lands on both sides; the same rule as `rlhfkit data split`."""
    return split_by_prompt(examples, test_fraction, seed,
                           key=lambda ex: ex.prompt if ex.prompt != "" else ex.completion)
