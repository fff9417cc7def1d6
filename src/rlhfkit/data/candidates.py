"""Candidate pairs for AI labelling: the file `rlhfkit generate` writes and `rlhfkit label` reads.

One JSON object per line:
    {"id": "3-0-2", "prompt": str | [messages], "response_a": str, "response_b": str, "generator": "MODEL"}
`id` is "<prompt index>-<sample i>-<sample j>"; `generator` (optional) is the model that sampled the responses.
Any file with prompt, response_a and response_b on every record can be labelled (JSONL, JSON, Parquet).

`preference_record` turns a labelled pair into a line of a preference file that `rlhfkit dpo` and
`rlhfkit rm train` read as is: {prompt, chosen, rejected, source, confidence, id}.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Any, Optional

from rlhfkit.errors import DataError
from rlhfkit.types import Text

PAIRINGS = ("all", "adjacent")


@dataclass
class Candidate:
    """Two responses to one prompt, to be compared. line: where it was read (for messages)."""

    prompt: Text
    response_a: Text
    response_b: Text
    id: Optional[str] = None
    line: Optional[int] = None


# ----------------------------------------------------------------------------------------------
# pairing the samples of one prompt
# ----------------------------------------------------------------------------------------------
def distinct_indices(texts: list[str]) -> list[int]:
    """Indices of the first occurrence of each distinct text (compared stripped): two identical samples carry no
    preference, so they are never paired."""
    seen: set = set()
    out = []
    for i, t in enumerate(texts):
        key = t.strip()
        if key not in seen:
            seen.add(key)
            out.append(i)
    return out


def pair_indices(indices: list[int], pairing: str = "all") -> list[tuple[int, int]]:
    """Pairs of sample indices: "all" = every pair (K choose 2), "adjacent" = disjoint neighbours (0,1), (2,3), ..."""
    if pairing == "all":
        return list(combinations(indices, 2))
    if pairing == "adjacent":
        return [(indices[k], indices[k + 1]) for k in range(0, len(indices) - 1, 2)]
    raise ValueError(f"unknown pairing {pairing!r}; choose one of {', '.join(PAIRINGS)}")


def candidate_rows(prompts: list[Text], samples: list[list[str]], pairing: str = "all",
                   generator: Optional[str] = None) -> tuple[list[dict], dict]:
    """Lines of a candidates file from K samples per prompt; returns (rows, counts) where counts has
    `duplicate_samples` (samples equal to an earlier one of the same prompt, dropped) and `prompts_without_pair`
    (prompts left with fewer than two distinct samples)."""
    rows, dupes, lonely = [], 0, 0
    for p, (prompt, texts) in enumerate(zip(prompts, samples)):
        keep = distinct_indices(texts)
        dupes += len(texts) - len(keep)
        pairs = pair_indices(keep, pairing)
        lonely += not pairs
        for i, j in pairs:
            row = {"id": f"{p}-{i}-{j}", "prompt": prompt, "response_a": texts[i], "response_b": texts[j]}
            if generator is not None:
                row["generator"] = generator
            rows.append(row)
    return rows, {"duplicate_samples": dupes, "prompts_without_pair": lonely}


# ----------------------------------------------------------------------------------------------
# reading and writing
# ----------------------------------------------------------------------------------------------
def _text_field(record: dict, key: str, where: str) -> Text:
    from rlhfkit.data.formats import json_type

    if key not in record or record[key] is None:
        raise DataError(f"{where}: missing field '{key}' (a candidate pair has prompt, response_a and response_b)")
    value = record[key]
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(m, dict) and isinstance(m.get("content"), str)
                                                 and isinstance(m.get("role"), str) for m in value):
        return value
    raise DataError(f"{where}: field '{key}' must be text or a list of {{role, content}} messages, "
                    f"got {json_type(value)}")


def read_candidates(path: str) -> list[Candidate]:
    """All candidate pairs of a file; the first bad record raises DataError naming its line and field."""
    from rlhfkit.data.formats import text_of
    from rlhfkit.data.io import _guarded, location, open_records, resolve_data_path

    p = resolve_data_path(path)
    triples, unit = open_records(p)
    out = []
    for n, record, error in _guarded(triples):
        where = location(str(path), unit, n)
        if error is not None:
            raise DataError(f"{where}: {error}")
        if record is None:
            continue
        prompt = _text_field(record, "prompt", where)
        a, b = _text_field(record, "response_a", where), _text_field(record, "response_b", where)
        if text_of(a).strip() == text_of(b).strip():
            raise DataError(f"{where}: response_a and response_b are identical: no preference to label "
                            "(drop the record)")
        ident = record.get("id")
        out.append(Candidate(prompt, a, b, id=None if ident is None else str(ident), line=n))
    if not out:
        raise DataError(f"{path}: no candidate pairs (the file is empty)")
    return out




def preference_record(candidate: Candidate, winner: str, source: str, confidence: Optional[float]) -> dict[str, Any]:
    """A labelled pair as a preference-file line. With a message-list prompt, text responses become one assistant
    message each (the conversational form the preference reader expects)."""
    if winner not in ("a", "b"):
        raise ValueError(f"a preference needs winner 'a' or 'b', got {winner!r}")
    chosen, rejected = ((candidate.response_a, candidate.response_b) if winner == "a"
                        else (candidate.response_b, candidate.response_a))
    if isinstance(candidate.prompt, list):
        chosen, rejected = ([{"role": "assistant", "content": r}] if isinstance(r, str) else r
                            for r in (chosen, rejected))
    rec: dict[str, Any] = {"prompt": candidate.prompt, "chosen": chosen, "rejected": rejected, "source": source,
                           "confidence": None if confidence is None else round(float(confidence), 6)}
    if candidate.id is not None:
        rec["id"] = candidate.id
    return rec
