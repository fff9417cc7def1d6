"""Aggregation policies on hand-built rows (exact records and drop counts), then the written files: they pass
`rlhfkit data check`, load with the trainers' reader, keep annotators pseudonymous and are written atomically."""
import json
from dataclasses import dataclass

import pytest

from rlhfkit.collect.export import aggregate, export_project
from rlhfkit.data.io import load_preferences
from rlhfkit.data.validate import check_file
from rlhfkit.errors import RlhfkitError

SIDE = {("A", True): "left", ("A", False): "right", ("B", True): "right", ("B", False): "left"}


def item(i, prompt=None, *, gold=None, meta=None):
    return {"item_id": i, "prompt": prompt if prompt is not None else f"p{i}", "response_a": f"a{i}",
            "response_b": f"b{i}", "meta": meta or {}, "is_gold": gold is not None, "gold_answer": gold,
            "known_label": None, "suggestion": None, "source": None, "status": "full", "n_done": 3}


def judgment(i, who, choice, *, gold=None, strength=None, left_is_a=True):
    return {"judgment_id": i * 10 + int(who[1:]), "item_id": i, "user_id": int(who[1:]), "annotator": f"a-{who}",
            "choice": choice, "left_is_a": left_is_a, "screen_choice": SIDE.get((choice, left_is_a), choice),
            "strength": strength, "reason": "why" if choice == "tie" else None, "late": False, "elapsed_ms": 4000,
            "created_ms": 1000 + i, "revision": 0, "is_gold": gold is not None, "gold_answer": gold}


# item: votes of u1, u2, u3 ("-" = no judgment)
PLAN = {
    1: ["A", "A", "B"],                # majority A 2/3
    2: ["B", "B", "B"],                # unanimous B
    3: ["tie", "tie", "A"],            # majority tie -> no pair
    4: ["both_bad", "both_bad", "-"],  # both bad -> no pair
    5: ["A", "B", "-"],                # no majority
    6: ["skip", "-", "-"],             # a skip is not a vote -> no votes
    7: ["A", "A", "B"],                # gold (answer A): never exported; u3 is wrong on it
    8: ["A", "A", "skip"],             # 2 of 2, with strengths much (u1) and slightly (u2)
}


def rows():
    items = [item(i, gold="A" if i == 7 else None, meta={"id": "c2"} if i == 2 else None) for i in PLAN]
    judgments = []
    for i, choices in PLAN.items():
        for who, choice in zip(("u1", "u2", "u3"), choices):
            if choice != "-":
                strength = {("u1", 8): "much", ("u2", 8): "slightly"}.get((who, i))
                judgments.append(judgment(i, who, choice, gold="A" if i == 7 else None, strength=strength,
                                          left_is_a=(i + int(who[1:])) % 2 == 0))
    return items, judgments


def rec(i, chosen, source, margin, ident=None):
    loser = "b" if chosen == "a" else "a"
    out = {"prompt": f"p{i}", "chosen": f"{chosen}{i}", "rejected": f"{loser}{i}"}
    if margin is not None:
        out["margin"] = margin
    return {**out, "source": source, "id": ident or f"item-{i}"}


def test_majority_exact_records_and_counts():
    records, counts = aggregate(*rows())
    # margin "votes" = (n_chosen - n_rejected) / n: item 1 (2 - 1) / 3; item 2 3/3; item 8 2/2
    assert records == [rec(1, "a", "human:majority(2/3)", 0.333333),
                       rec(2, "b", "human:majority(3/3)", 1.0, "c2"),
                       rec(8, "a", "human:majority(2/2)", 1.0)]
    assert counts["dropped"] == {"gold": 1, "no_votes": 1, "min_votes": 0, "no_majority": 1, "not_unanimous": 0,
                                 "tie": 1, "both_bad": 1, "low_agreement": 0}
    assert counts["dropped_items"]["tie"] == [3] and counts["dropped_items"]["no_majority"] == [5]
    assert (counts["items"], counts["kept"], counts["pairs"]) == (8, 3, 3)
    assert counts["kept"] + sum(counts["dropped"].values()) == counts["items"]
    # 20 judgments, 2 skips; ties/both-bad counted on kept items only (none here)
    assert (counts["judgments"], counts["skips"], counts["votes"]) == (20, 2, 18)


def test_unanimous_and_per_judgment():
    records, counts = aggregate(*rows(), policy="unanimous", margin=None)
    assert records == [rec(2, "b", "human:unanimous(3/3)", None, "c2"), rec(8, "a", "human:unanimous(2/2)", None)]
    assert counts["dropped"]["not_unanimous"] == 3 and counts["dropped"]["both_bad"] == 1
    assert counts["dropped_items"]["not_unanimous"] == [1, 3, 5]

    records, counts = aggregate(*rows(), policy="per-judgment", margin=None)
    # item 1: 3 votes -> 3 records; 2: 3; 3: only u3's A (the two ties counted); 5: 2; 8: 2  -> 11
    assert [(r["id"], r["chosen"], r["source"]) for r in records if r["id"].startswith("item-1:")] == [
        ("item-1:a-u1", "a1", "human:a-u1"), ("item-1:a-u2", "a1", "human:a-u2"), ("item-1:a-u3", "b1", "human:a-u3")]
    assert len(records) == 11 and counts["pairs"] == 11
    assert counts["dropped"] == {"gold": 1, "no_votes": 1, "min_votes": 0, "no_majority": 0, "not_unanimous": 0,
                                 "tie": 0, "both_bad": 1, "low_agreement": 0}
    assert counts["tie_judgments"] == 2


def test_min_votes_min_agreement_and_strength_margin():
    records, counts = aggregate(*rows(), min_votes=3)
    # items 4, 5 and 8 have 2 votes (u3 skipped 8): min_votes is checked before the outcome
    assert [r["id"] for r in records] == ["item-1", "c2"] and counts["dropped_items"]["min_votes"] == [4, 5, 8]
    records, counts = aggregate(*rows(), min_agreement=0.9)
    assert [r["id"] for r in records] == ["c2", "item-8"] and counts["dropped_items"]["low_agreement"] == [1]
    records, _ = aggregate(*rows(), margin="strength")
    # strength: w(much) = 1, w(slightly) = 1/3, w(none) = 2/3; a vote for the rejected response counts -w
    #   item 1: (2/3 + 2/3 - 2/3) / 3 = 2/9;  item 2: (3 * 2/3) / 3 = 2/3;  item 8: (1 + 1/3) / 2 = 2/3
    assert [r["margin"] for r in records] == [round(2 / 9, 6), round(2 / 3, 6), round(2 / 3, 6)]
    records, _ = aggregate(*rows(), policy="per-judgment", margin="strength")
    assert {r["id"]: r["margin"] for r in records if r["id"].startswith("item-8")} == {
        "item-8:a-u1": 1.0, "item-8:a-u2": round(1 / 3, 6)}
    records, _ = aggregate(*rows(), policy="per-judgment", margin="votes")
    # the minority vote of item 1 (B, 1 vs 2): max(0, (1 - 2) / 3) = 0
    assert {r["id"]: r["margin"] for r in records if r["id"].startswith("item-1")} == {
        "item-1:a-u1": 0.333333, "item-1:a-u2": 0.333333, "item-1:a-u3": 0.0}


def test_annotators_below_gold_accuracy_are_excluded():
    # gold item 7 (answer A): u1 A, u2 A right; u3 B wrong -> u3's accuracy 0 < 0.5
    records, counts = aggregate(*rows(), exclude_annotators_below_gold=0.5)
    assert counts["excluded_annotators"] == ["a-u3"] and counts["excluded_judgments"] == 5  # items 1, 2, 3, 7, 8
    # without u3: item 1 is A, A -> 2/2; item 2 B, B; item 3 tie, tie -> tie
    assert [(r["id"], r["source"], r["margin"]) for r in records] == [
        ("item-1", "human:majority(2/2)", 1.0), ("c2", "human:majority(2/2)", 1.0),
        ("item-8", "human:majority(2/2)", 1.0)]
    assert aggregate(*rows(), exclude_annotators_below_gold=0.0)[1]["excluded_annotators"] == []


def test_conversational_items():
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    items = [item(1, msgs), item(2)]
    judgments = [judgment(1, "u1", "B"), judgment(2, "u1", "A")]
    records, _ = aggregate(items, judgments, margin=None)
    assert records[0] == {"prompt": msgs, "chosen": [{"role": "assistant", "content": "b1"}],
                          "rejected": [{"role": "assistant", "content": "a1"}], "source": "human:majority(1/1)",
                          "id": "item-1"}


@pytest.mark.parametrize("options, message", [
    ({"policy": "mean"}, "unknown aggregation policy 'mean'"),
    ({"margin": "length"}, "unknown margin"),
    ({"min_votes": 0}, "min_votes must be an integer >= 1"),
    ({"min_agreement": 1.5}, r"min_agreement must be in \[0, 1\]"),
    ({"exclude_annotators_below_gold": -1}, "exclude_annotators_below_gold"),
    ({"min_agreement": "high"}, "min_agreement must be a number"),
])
def test_bad_options(options, message):
    with pytest.raises(RlhfkitError, match=message):
        aggregate(*rows(), **options)


# ----------------------------------------------------------------------------------------------
# files
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FakeProject:
    id: int
    slug: str = "demo"
    name: str = "Demo"


class FakeStore:
    """The two reads export_project makes of a Store."""

    def __init__(self, items, judgments):
        self.items, self.judgments = items, judgments

    def item_rows(self, project_id):
        assert project_id == 7
        return self.items

    def judgment_rows(self, project_id):
        assert project_id == 7
        return self.judgments


def test_export_files_pass_data_check_and_load_for_training(tmp_path):
    out = tmp_path / "out" / "prefs.jsonl"
    s = export_project(FakeStore(*rows()), FakeProject(7), out, margin="strength", now_ms=1_700_000_000_000)
    assert s["records"] == 3 and s["format"] == "explicit" and s["output"] == str(out)
    report = check_file(out)
    assert report.errors == [] and report.format == "explicit" and report.stats["valid_pairs"] == 3
    examples = load_preferences(out)   # what `rlhfkit dpo` and `rlhfkit rm train` read (data/pairs.py)
    assert [e.source for e in examples] == ["human:majority(2/3)", "human:majority(3/3)", "human:majority(2/2)"]
    assert [e.margin for e in examples] == [round(2 / 9, 6), round(2 / 3, 6), round(2 / 3, 6)]
    lines = [json.loads(x) for x in (tmp_path / "out" / "prefs.judgments.jsonl").read_text().splitlines()]
    assert len(lines) == 20 and all("user_id" not in x for x in lines)
    assert {x["annotator"] for x in lines} == {"a-u1", "a-u2", "a-u3"}
    assert next(x for x in lines if x["item_id"] == 2)["id"] == "c2"
    prov = json.loads((tmp_path / "out" / "prefs.provenance.json").read_text())
    assert prov["project"] == {"id": 7, "slug": "demo", "name": "Demo"}
    assert prov["created"].startswith("2023-11-14T22:13:20")
    assert prov["policy"]["policy"] == "majority" and prov["policy"]["margin"] == "strength"
    assert prov["counts"]["dropped"]["tie"] == 1 and prov["counts"]["dropped_items"]["gold"] == [7]
    assert [a["annotator"] for a in prov["annotators"]] == ["a-u1", "a-u2", "a-u3"]
    assert prov["annotators"][2]["gold_accuracy"] == 0.0
    assert "krippendorff_alpha" in prov["agreement"] and prov["merge"] is None
    # nothing left behind by the temporary-file-and-rename writes; a second export replaces the files
    assert sorted(p.name for p in out.parent.iterdir()) == ["prefs.jsonl", "prefs.judgments.jsonl",
                                                            "prefs.provenance.json"]
    export_project(FakeStore(*rows()), FakeProject(7), out, policy="unanimous")
    assert len(load_preferences(out)) == 2 and len(list(out.parent.iterdir())) == 3


def test_conversational_export_passes_data_check(tmp_path):
    msgs = [{"role": "user", "content": "hi"}]
    items = [item(1, msgs), item(2), item(3)]
    judgments = [judgment(1, "u1", "B"), judgment(2, "u1", "A"), judgment(3, "u1", "B", strength="much")]
    out = tmp_path / "conv.jsonl"
    s = export_project(FakeStore(items, judgments), FakeProject(7), out)
    assert s["format"] == "conversational" and s["records"] == 3
    report = check_file(out)
    assert report.errors == [] and report.format == "conversational"
    examples = load_preferences(out)
    assert examples[1].prompt == [{"role": "user", "content": "p2"}]   # text prompt -> one user message
    assert examples[0].chosen == [{"role": "assistant", "content": "b1"}]
    with pytest.raises(RlhfkitError, match="no explicit"):
        export_project(FakeStore(items, judgments), FakeProject(7), tmp_path / "x.jsonl", fmt="explicit")
    with pytest.raises(RlhfkitError, match="unknown export option"):
        export_project(FakeStore(items, judgments), FakeProject(7), tmp_path / "x.jsonl", aggregate="majority")
    assert not (tmp_path / "x.jsonl").exists()


def test_export_merges_the_judges_confident_labels(tmp_path):
    outcomes = [
        # a pair people never saw, judged confidently: kept with the judge's source (a label saved)
        {"id": "j1", "prompt": "q1", "response_a": "long answer", "response_b": "short", "status": "agree",
         "winner": "a", "confidence": 0.95, "judge": "rm:demo"},
        # item 1's pair (people voted: majority A): the human label wins, the judge agrees
        {"id": "j2", "prompt": "p1", "response_a": "b1", "response_b": "a1", "status": "agree", "winner": "b",
         "confidence": 0.9, "judge": "rm:demo"},
        # item 3's pair (people said tie): the judge's label is not used either
        {"id": "j3", "prompt": "p3", "response_a": "a3", "response_b": "b3", "status": "agree", "winner": "b",
         "confidence": 0.9, "judge": "rm:demo"},
        # uncertain: it went to people, never becomes a judge label
        {"id": "j4", "prompt": "q4", "response_a": "x", "response_b": "y", "status": "disagree", "winner": None,
         "confidence": None, "judge": "rm:demo"},
    ]
    out = tmp_path / "merged.jsonl"
    s = export_project(FakeStore(*rows()), FakeProject(7), out, judge_outcomes=outcomes)
    examples = load_preferences(out)
    assert [(e.id, e.source) for e in examples] == [("item-1", "human:majority(2/3)"), ("c2", "human:majority(3/3)"),
                                                    ("item-8", "human:majority(2/2)"), ("j1", "rm:demo")]
    m = s["merge"]
    assert (m["judge_records"], m["labels_saved"], m["judge_overridden"]) == (3, 1, 2)
    assert (m["both_labelled"], m["compared"], m["agreed"], m["agreement"]) == (1, 1, 1, 1.0)
    assert m["route"]["to_humans"] == 1 and check_file(out).errors == []
    assert json.loads((tmp_path / "merged.provenance.json").read_text())["merge"]["labels_saved"] == 1


def test_export_from_the_real_store(store, tmp_path):
    from rlhfkit.collect.store import NewItem

    project = store.create_project("real", overlap=2)
    store.add_items(project.id, [NewItem("q1", "first", "second", meta={"id": "g-1"}),
                                 NewItem("q2", "third", "fourth")])
    users = [store.add_user(n) for n in ("xavier", "yolanda")]
    for u in users:
        store.add_member(project.id, u.id)
        for _ in range(2):
            a = store.next_assignment(project.id, u.id)
            want_a = a.item_id == store.item_rows(project.id)[0]["item_id"] or u.name == "xavier"
            screen = ("left" if a.left_is_a else "right") if want_a else ("right" if a.left_is_a else "left")
            store.submit(a.uid, u.id, screen, nonce=a.nonce)
    # item q1: both chose A; item q2: xavier A, yolanda B -> no majority
    s = export_project(store, project, tmp_path / "real.jsonl")
    assert s["records"] == 1 and s["counts"]["dropped"]["no_majority"] == 1
    assert load_preferences(tmp_path / "real.jsonl")[0].to_dict() == {
        "prompt": "q1", "chosen": "first", "rejected": "second", "id": "g-1", "source": "human:majority(2/2)",
        "margin": 1.0}
    lines = (tmp_path / "real.judgments.jsonl").read_text()
    assert "xavier" not in lines and "yolanda" not in lines and '"user_id"' not in lines
