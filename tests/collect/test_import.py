"""Import: `rlhfkit generate` candidates, preference files and `rlhfkit label` output -> NewItems, with every bad
record reported as file:line: field: message and the valid ones kept; dedup counts through the store."""
from __future__ import annotations

import json

import pytest

from rlhfkit.collect.importer import outcome_items, read_items
from rlhfkit.data.candidates import Candidate, candidate_rows, preference_record
from rlhfkit.data.io import write_jsonl_rows
from rlhfkit.errors import DataError


def lines(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_generate_output_becomes_items(tmp_path):
    rows, _ = candidate_rows(["p0", [{"role": "user", "content": "p1"}]], [["a", "b", "c"], ["x", "y", "x"]],
                             generator="tiny-model")
    path = tmp_path / "cands.jsonl"
    write_jsonl_rows(path, rows)
    result = read_items(str(path))
    assert result.kind == "candidates" and result.errors == [] and result.records == 4
    assert [(i.prompt, i.response_a, i.response_b) for i in result.items] == [
        ("p0", "a", "b"), ("p0", "a", "c"), ("p0", "b", "c"), ([{"role": "user", "content": "p1"}], "x", "y")]
    first = result.items[0]
    assert first.meta == {"id": "0-0-1", "generator": "tiny-model"} and first.source == "tiny-model"
    assert not first.is_gold and first.known_label is None and first.suggestion is None


def test_malformed_candidates_are_all_listed_and_valid_ones_kept(tmp_path):
    path = lines(tmp_path / "bad.jsonl", [
        {"prompt": "q", "response_a": "x", "response_b": "y"},
        {"prompt": "q", "response_a": "x"},
        "",
        "{not json",
        {"prompt": "q", "response_a": "same", "response_b": "same "},
        {"prompt": 3, "response_a": "x", "response_b": "y"},
        {"prompt": [{"role": "user"}], "response_a": "x", "response_b": "y"},
        [1, 2],
        {"prompt": "r", "response_a": [{"role": "assistant", "content": "m"}], "response_b": "n"},
    ])
    result = read_items(path, kind="candidates")
    assert result.records == 8 and len(result.items) == 2
    assert result.items[1].response_a == "m"  # an assistant message list is read as its text
    assert result.errors == [
        f"{path}:2: response_b: missing field 'response_b' (a candidate pair has prompt, response_a and response_b)",
        f"{path}:4: json: invalid JSON: Expecting property name enclosed in double quotes at column 2",
        f"{path}:5: response_b: identical to response_a: no preference to collect (drop the record)",
        f"{path}:6: prompt: must be text or a non-empty list of {{role, content}} messages, got number",
        f"{path}:7: prompt[0].content: message has no 'content' (messages are {{\"role\", \"content\"}})",
        f"{path}:8: record: expected one JSON object per line, got list",
    ]


def test_gold_candidates_need_an_answer(tmp_path):
    path = lines(tmp_path / "gold.jsonl", [
        {"prompt": "q", "response_a": "good", "response_b": "bad", "gold_answer": "a"},
        {"prompt": "q", "response_a": "x", "response_b": "y", "gold_answer": "tie"},
        {"prompt": "q", "response_a": "x", "response_b": "z"},
    ])
    result = read_items(path, gold=True)
    assert [(i.is_gold, i.gold_answer) for i in result.items] == [(True, "A"), (True, "tie")]
    assert result.errors == [f"{path}:3: gold_answer: a gold item needs gold_answer A, B or tie, got None"]


def test_preference_file_hides_the_known_label_on_a_random_side(tmp_path):
    rows = [{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}", "id": i} for i in range(20)]
    rows.insert(3, {"prompt": "q", "chosen": "same", "rejected": "same"})
    path = lines(tmp_path / "prefs.jsonl", rows)
    result = read_items(path, seed=1)
    assert result.kind == "preferences" and len(result.items) == 20
    assert result.errors == [f"{path}:4: rejected: identical to chosen: the same answer twice carries no preference "
                             "(drop the record)"]
    for item in result.items:
        chosen = item.response_a if item.known_label == "A" else item.response_b
        assert chosen.startswith("good") and item.meta["id"] == item.prompt[1:]
    assert {i.known_label for i in result.items} == {"A", "B"}  # 20 fair coins, all equal with p = 2^-19
    again = read_items(path, seed=1)
    assert [i.known_label for i in again.items] == [i.known_label for i in result.items]  # seeded


def test_conversational_preferences_and_gold(tmp_path):
    prompt = [{"role": "user", "content": "hi"}]
    rows = [{"prompt": prompt, "chosen": [{"role": "assistant", "content": "hello!"}],
             "rejected": [{"role": "assistant", "content": "go away"}]}]
    path = lines(tmp_path / "conv.jsonl", rows)
    item = read_items(path, seed=0).items[0]
    assert item.prompt == prompt and {item.response_a, item.response_b} == {"hello!", "go away"}
    gold = read_items(path, gold=True, seed=0).items[0]
    assert gold.is_gold and gold.known_label is None
    assert (gold.response_a if gold.gold_answer == "A" else gold.response_b) == "hello!"


def test_label_output_becomes_a_hidden_suggestion(tmp_path):
    cands = [Candidate("q0", "a0", "b0", id="0-0-1"), Candidate("q1", "a1", "b1", id="1-0-1")]
    recs = [preference_record(cands[0], "a", "rm:/runs/rm", 0.8), preference_record(cands[1], "b", "rm:/runs/rm", None)]
    recs.append({**preference_record(Candidate("q2", "a2", "b2"), "a", "rm:/runs/rm", 0.5), "confidence": "high"})
    path = lines(tmp_path / "labels.jsonl", recs)
    result = read_items(path, from_labels=True, seed=3)
    assert result.kind == "labels" and len(result.items) == 2
    assert result.errors == [f"{path}:3: confidence: must be a number in [0, 1] or null, got 'high'"]
    for item, winner, conf in zip(result.items, ("a0", "b1"), (0.8, None)):
        s = item.suggestion
        assert (s["judge"], s["confidence"], s["status"]) == ("rm:/runs/rm", conf, "agree")
        assert (item.response_a if s["verdict"] == "A" else item.response_b) == winner
        assert item.known_label is None and not item.is_gold
    with pytest.raises(DataError, match="--gold and --from-labels"):
        read_items(path, from_labels=True, gold=True)


def test_outcome_rows_become_items_with_the_judges_verdict():
    rows = [{"id": "7", "prompt": "q", "response_a": "x", "response_b": "y", "status": "disagree", "winner": None,
             "confidence": None, "judge": "hf:tiny"},
            {"prompt": "q", "response_a": "x", "response_b": "z", "status": "agree", "winner": "b",
             "confidence": 0.55, "judge": "hf:tiny"}]
    items = outcome_items(rows, "out.outcomes.jsonl")
    assert items[0].meta == {"id": "7"} and items[0].suggestion == {"judge": "hf:tiny", "verdict": None,
                                                                    "confidence": None, "status": "disagree"}
    assert items[1].suggestion["verdict"] == "B" and items[1].source == "out.outcomes.jsonl"


def test_dedup_counts_through_the_store(store, tmp_path):
    project = store.create_project("p")
    rows, _ = candidate_rows(["p0", "p1"], [["a", "b", "c"], ["x", "y", "z"]])
    path = tmp_path / "c.jsonl"
    write_jsonl_rows(path, rows + rows[:2])  # two lines repeated
    result = read_items(str(path))
    assert store.add_items(project.id, result.items) == {"added": 6, "duplicates": 2}
    assert store.add_items(project.id, read_items(str(path)).items) == {"added": 0, "duplicates": 8}
    prefs = lines(tmp_path / "prefs.jsonl", [{"prompt": "p0", "chosen": "a", "rejected": "b"},
                                              {"prompt": "p9", "chosen": "a", "rejected": "b"}])
    # the same pair in another file, on whatever sides: a duplicate; a new prompt: added
    assert store.add_items(project.id, read_items(prefs, seed=5).items) == {"added": 1, "duplicates": 1}


def test_missing_file_and_unknown_kind(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_items(str(tmp_path / "nope.jsonl"))
    with pytest.raises(DataError, match="unknown import kind"):
        read_items(lines(tmp_path / "x.jsonl", [{"a": 1}]), kind="other")
