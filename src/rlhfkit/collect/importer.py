"""Files -> NewItems for `rlhfkit collect import`, with the file:line: field: message errors of `rlhfkit data check`.

Three kinds of input, told apart by the first record (or by --from-labels):

    candidates   `rlhfkit generate` output {id, prompt, response_a, response_b, generator}; with --gold each record
                 also carries gold_answer A | B | tie
    preferences  explicit or conversational preference files {prompt, chosen, rejected}: chosen and rejected
                 become response_a / response_b in a random order per item and the hidden `known_label` says
                 which one was chosen (to measure annotators against existing labels); with --gold the chosen
                 one is the gold answer instead
    labels       `rlhfkit label` output (a preference file whose `source` is the judge id and whose `confidence`
                 is the judge's): read as preferences, the judge's verdict and confidence kept as a hidden
                 `suggestion` (human-vs-judge agreement)

With --from-labels, a `<stem>.outcomes.jsonl` file of `rlhfkit label` (one row per pair, whatever the verdict:
collect/route.py reads it) gives one item per row, the verdict as the suggestion; `--route uncertain` keeps only
the pairs the judge was unsure about (route.select_uncertain).

Every record is read: the valid ones become items, every bad one becomes an error line, and the caller reports
them all (the CLI imports the valid items and exits 1). Nothing valid is dropped silently; duplicates are counted
by `Store.add_items`. Readers are those of `rlhfkit.data` (JSONL, JSON, Parquet, `datasets` folders).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from rlhfkit.collect.store import NewItem
from rlhfkit.data.formats import RecordError, json_type, text_of
from rlhfkit.errors import DataError

KINDS = ("candidates", "preferences", "labels")
_GOLD = {"a": "A", "b": "B", "tie": "tie"}


@dataclass
class ImportResult:
    """What a file holds. errors: one "file:line: field: message" per bad record, in file order."""

    path: str
    kind: str
    items: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    records: int = 0     # non-blank records read, valid or not


def _where(name: str, unit: str, n: Optional[int]) -> str:
    from rlhfkit.data.io import location

    return location(name, unit, n)


def _records(path: Path):
    """(n, record, error) triples of any file `rlhfkit.data` reads, and the unit n counts."""
    from rlhfkit.data.io import _guarded, open_records

    try:
        triples, unit = open_records(path)
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    return _guarded(triples), unit


def _first_record(path: str) -> Optional[dict]:
    from rlhfkit.data.io import resolve_data_path

    triples, _ = _records(resolve_data_path(path))
    for _, record, _error in triples:
        if record is not None:
            return record
    return None


def detect_kind(path: str) -> str:
    """"candidates" when the first record has response_a, else "preferences" (chosen/rejected)."""
    record = _first_record(path)
    if record is None:
        return "preferences"  # no readable record: the preference reader reports why
    return "candidates" if "response_a" in record or "response_b" in record else "preferences"


def is_outcomes_file(path: str) -> bool:
    """Whether the file holds `rlhfkit label` outcome rows (response_a/response_b with a status) rather than its
    preference output."""
    record = _first_record(path)
    return record is not None and "status" in record and "response_a" in record


def read_items(path: str, *, gold: bool = False, from_labels: bool = False, seed: Optional[int] = None,
               kind: Optional[str] = None) -> ImportResult:
    """Read a file of pairs (module doc). seed fixes the random A/B order of preference pairs (None: random)."""
    kind = kind or ("labels" if from_labels else detect_kind(path))
    if kind not in KINDS:
        raise DataError(f"unknown import kind {kind!r}; one of {', '.join(KINDS)}")
    if kind == "labels" and gold:
        raise DataError("--gold and --from-labels do not go together: a judge's verdict is not a gold answer")
    rng = random.Random(seed) if seed is not None else random.SystemRandom()
    if kind == "candidates":
        return _read_candidates(path, gold)
    return _read_preferences(path, gold, rng, labels=kind == "labels")


# ----------------------------------------------------------------------------------------------
# candidates
# ----------------------------------------------------------------------------------------------
def _text(record: dict, key: str, prompt: bool = False) -> Any:
    """A prompt (text or messages) or a response (text, or assistant messages read as their text)."""
    from rlhfkit.data.formats import _check_message

    value = record.get(key)
    if value is None:
        raise RecordError(key, f"missing field '{key}' (a candidate pair has prompt, response_a and response_b)")
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value:
        for i, message in enumerate(value):
            _check_message(message, f"{key}[{i}]")
        return value if prompt else text_of(value)
    raise RecordError(key, f"must be text or a non-empty list of {{role, content}} messages, got {json_type(value)}")


def _gold_answer(record: dict) -> str:
    value = record.get("gold_answer")
    if not isinstance(value, str) or value.lower() not in _GOLD:
        raise RecordError("gold_answer", f"a gold item needs gold_answer A, B or tie, got {value!r}")
    return _GOLD[value.lower()]


def candidate_item(record: dict, gold: bool, source: str) -> NewItem:
    """One candidates record -> NewItem; RecordError(field, message) when it is not a usable pair."""
    prompt = _text(record, "prompt", prompt=True)
    a, b = _text(record, "response_a"), _text(record, "response_b")
    if a.strip() == b.strip():
        raise RecordError("response_b", "identical to response_a: no preference to collect (drop the record)")
    meta = {k: record[k] for k in ("id", "generator") if record.get(k) is not None}
    generator = record.get("generator")
    return NewItem(prompt, a, b, meta=meta, is_gold=gold, gold_answer=_gold_answer(record) if gold else None,
                   source=generator if isinstance(generator, str) else source)


def _read_candidates(path: str, gold: bool) -> ImportResult:
    from rlhfkit.data.io import resolve_data_path

    p = resolve_data_path(path)
    triples, unit = _records(p)
    out = ImportResult(str(path), "candidates")
    for n, record, error in triples:
        if record is None and error is None:
            continue  # blank line
        out.records += 1
        try:
            if error is not None:
                raise error
            out.items.append(candidate_item(record, gold, p.name))
        except RecordError as e:
            out.errors.append(f"{_where(str(path), unit, n)}: {e.field}: {e.message}")
    return out


# ----------------------------------------------------------------------------------------------
# preference files and `rlhfkit label` output
# ----------------------------------------------------------------------------------------------
def _confidence(record: Optional[dict]) -> Optional[float]:
    value = None if record is None else record.get("confidence")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise RecordError("confidence", f"must be a number in [0, 1] or null, got {value!r}")
    return float(value)


def preference_item(example: Any, rng: random.Random, *, gold: bool, labels: bool, raw: Optional[dict],
                    source: str) -> NewItem:
    """A PreferenceExample -> NewItem with chosen on a random side (known_label, gold answer or suggestion)."""
    chosen, rejected = text_of(example.chosen), text_of(example.rejected)
    chosen_is_a = rng.random() < 0.5
    a, b = (chosen, rejected) if chosen_is_a else (rejected, chosen)
    side = "A" if chosen_is_a else "B"
    meta = {k: v for k, v in (("id", example.id), ("margin", example.margin)) if v is not None}
    if labels:
        confidence = _confidence(raw)
        judge = example.source or "judge"
        suggestion = {"judge": judge, "verdict": side, "confidence": confidence, "status": "agree"}
        return NewItem(example.prompt, a, b, meta=meta, suggestion=suggestion, source=source)
    if gold:
        return NewItem(example.prompt, a, b, meta=meta, is_gold=True, gold_answer=side,
                       source=example.source or source)
    return NewItem(example.prompt, a, b, meta=meta, known_label=side, source=example.source or source)


def _raw_by_line(path: Path) -> dict:
    triples, _ = _records(path)
    return {n: record for n, record, _ in triples if record is not None}


def _read_preferences(path: str, gold: bool, rng: random.Random, labels: bool) -> ImportResult:
    from rlhfkit.data.io import PreferenceReader

    reader = PreferenceReader(path)
    raw = _raw_by_line(reader.path) if labels else {}  # the label output's confidence (the reader drops it)
    out = ImportResult(str(path), "labels" if labels else "preferences")
    for n, example, error in reader:
        out.records += 1
        try:
            if error is not None:
                raise error
            out.items.append(preference_item(example, rng, gold=gold, labels=labels, raw=raw.get(n),
                                             source=reader.path.name))
        except RecordError as e:
            out.errors.append(f"{_where(reader.name, reader.unit, n)}: {e.field}: {e.message}")
    return out


# ----------------------------------------------------------------------------------------------
# `rlhfkit label` outcomes routed to people (collect/route.py selects them)
# ----------------------------------------------------------------------------------------------
def outcome_items(rows: list, source: str) -> list:
    """Outcome rows of `rlhfkit label` (route.py: prompt, response_a, response_b, status, winner, confidence,
    judge) -> NewItems whose hidden suggestion is the judge's verdict."""
    from rlhfkit.collect import route

    out = []
    for row in rows:
        meta = {"id": row["id"]} if row.get("id") is not None else {}
        suggestion = {**route.suggestion(row), "judge": str(row.get("judge") or "judge")}
        out.append(NewItem(row["prompt"], text_of(row["response_a"]), text_of(row["response_b"]), meta=meta,
                           suggestion=suggestion, source=source))
    return out
