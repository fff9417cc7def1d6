"""The RLAIF-to-human loop by hand: `rlhfkit label` keeps every pair's outcome, the uncertain ones are routed to
people (budget: least confident first), and the judge's confident labels merge with the human ones."""
import json

import pytest

from rlhfkit.collect.route import judge_records, merge_labels, pair_key, select_uncertain, suggestion
from rlhfkit.data.io import load_preferences
from rlhfkit.errors import RlhfkitError
from rlhfkit.judges import Verdict
from rlhfkit.judges.label import label_file


class TableJudge:
    """Answers from {(a, b): (winner, confidence)}; counts its calls."""

    concurrent = False
    judge_id = "fake:table"

    def __init__(self, answers):
        self.answers, self.calls = answers, 0

    def judge(self, prompt, a, b):
        self.calls += 1
        winner, conf = self.answers[(a, b)]
        return Verdict(winner, conf, None, self.judge_id)


# pairs (a, b) and the verdicts on (a, b) and on (b, a); the second is in swapped positions
ANSWERS = {
    ("x1", "y1"): ("a", 0.9), ("y1", "x1"): ("b", 0.8),    # agree a, confidence (0.9 + 0.8) / 2 = 0.85
    ("x2", "y2"): ("b", 0.6), ("y2", "x2"): ("a", 0.6),    # agree b, 0.6: low confidence
    ("x3", "y3"): ("a", 0.9), ("y3", "x3"): ("a", 0.9),    # disagree: position bias
    ("x4", "y4"): ("tie", 0.5), ("y4", "x4"): ("tie", 0.5),  # tie
    ("x5", "y5"): (None, None), ("y5", "x5"): ("a", 0.7),  # failed
}


def labelled(tmp_path):
    src = tmp_path / "pairs.jsonl"
    src.write_text("".join(json.dumps({"id": f"c{i}", "prompt": f"q{i}", "response_a": f"x{i}",
                                       "response_b": f"y{i}"}) + "\n" for i in range(1, 6)))
    out = tmp_path / "prefs.jsonl"
    summary = label_file(TableJudge(ANSWERS), str(src), str(out), progress=False)
    return out, summary


def test_label_writes_every_outcome_beside_the_preferences(tmp_path):
    out, s = labelled(tmp_path)
    assert s["outcomes"] == str(tmp_path / "prefs.outcomes.jsonl")
    assert json.loads((tmp_path / "prefs.summary.json").read_text())["outcomes"] == s["outcomes"]
    rows = [json.loads(x) for x in (tmp_path / "prefs.outcomes.jsonl").read_text().splitlines()]
    assert [(r["id"], r["status"], r["winner"], r["confidence"]) for r in rows] == [
        ("c1", "agree", "a", 0.85), ("c2", "agree", "b", 0.6), ("c3", "disagree", None, None),
        ("c4", "tie", "tie", None), ("c5", "failed", None, None)]
    assert rows[0] == {"id": "c1", "line": 1, "prompt": "q1", "response_a": "x1", "response_b": "y1",
                       "status": "agree", "winner": "a", "confidence": 0.85, "judge": "fake:table"}
    # the preference file itself is unchanged: the two agreeing pairs
    assert [e.id for e in load_preferences(out)] == ["c1", "c2"] and s["labelled"] == 2


def test_select_uncertain_from_the_label_output(tmp_path):
    out, _ = labelled(tmp_path)
    # the labelled output's path finds its outcomes file
    to_humans, confident, report = select_uncertain(out, min_confidence=0.7)
    # uncertain: c2 (0.6 < 0.7), c3 disagree, c4 tie, c5 failed; confident: c1 (0.85)
    assert [r["id"] for r in to_humans] == ["c2", "c3", "c4", "c5"] and [r["id"] for r in confident] == ["c1"]
    assert report["by_status"] == {"agree": 2, "tie": 1, "disagree": 1, "failed": 1}
    assert (report["uncertain"], report["to_humans"], report["low_confidence"], report["labels_saved"]) == \
        (4, 4, 1, 1)
    assert report["judges"] == ["fake:table"]
    # a lower threshold: c2 at 0.6 is confident now; without ties the tie is "confident" (it gives no label)
    to_humans, confident, report = select_uncertain(tmp_path / "prefs.outcomes.jsonl", min_confidence=0.5,
                                                    send_ties=False)
    assert [r["id"] for r in to_humans] == ["c3", "c5"] and [r["id"] for r in confident] == ["c1", "c2", "c4"]
    assert report["labels_saved"] == 2


def rows_for_budget():
    mk = lambda i, status, winner, conf: {"id": f"r{i}", "prompt": "p", "response_a": f"a{i}",
                                          "response_b": f"b{i}", "status": status, "winner": winner,
                                          "confidence": conf, "judge": "j"}
    return [mk(0, "agree", "a", 0.65), mk(1, "agree", "b", 0.55), mk(2, "disagree", None, None),
            mk(3, "agree", "a", 0.95), mk(4, "agree", "a", None), mk(5, "failed", None, None),
            mk(6, "agree", "b", 0.69)]


def test_budget_takes_the_least_confident_first():
    rows = rows_for_budget()
    # uncertain: r0 0.65, r1 0.55, r2 disagree, r5 failed, r6 0.69; r3 (0.95) and r4 (no confidence) are confident
    # order: disagree/failed first (seeded between them), then 0.55, 0.65, 0.69
    to_humans, confident, report = select_uncertain(rows, max_items=3)
    assert {r["id"] for r in to_humans} == {"r1", "r2", "r5"}
    assert [r["id"] for r in to_humans] == ["r1", "r2", "r5"]   # returned in input order
    assert [r["id"] for r in confident] == ["r3", "r4"]
    assert report["left_out_ids"] == ["r0", "r6"] and report["no_confidence"] == 1
    one = [select_uncertain(rows, max_items=1, seed=s)[0][0]["id"] for s in range(20)]
    assert set(one) == {"r2", "r5"}                              # the seed only orders equals
    assert one == [select_uncertain(rows, max_items=1, seed=s)[0][0]["id"] for s in range(20)]  # deterministic
    assert select_uncertain(rows, max_items=0)[0] == []


@pytest.mark.parametrize("row, message", [
    ({"prompt": "p", "response_a": "a", "response_b": "b"}, "field 'status' missing"),
    ({"prompt": "p", "response_a": "a", "response_b": "b", "status": "sure"}, "'sure' is not one of"),
    ({"prompt": "p", "response_a": "a", "response_b": "b", "status": "agree", "winner": None}, "does not go"),
    ({"prompt": "p", "response_a": "a", "response_b": "b", "status": "agree", "winner": "a", "confidence": 2},
     "confidence"),
])
def test_bad_outcomes_name_the_line(tmp_path, row, message):
    path = tmp_path / "x.outcomes.jsonl"
    good = {"prompt": "p", "response_a": "a", "response_b": "b", "status": "tie", "winner": "tie"}
    path.write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(RlhfkitError, match=f"x.outcomes.jsonl:2: .*{message}"):
        select_uncertain(path)


def test_labelled_file_without_outcomes_says_what_to_do(tmp_path):
    (tmp_path / "old.jsonl").write_text("")
    with pytest.raises(RlhfkitError, match=r"old.outcomes.jsonl.*run the same `rlhfkit label`"):
        select_uncertain(tmp_path / "old.jsonl")


def test_suggestion_and_judge_records(tmp_path):
    rows = rows_for_budget()
    assert suggestion(rows[1]) == {"judge": "j", "verdict": "B", "confidence": 0.55, "status": "agree"}
    assert suggestion(rows[2])["verdict"] is None
    recs = judge_records(rows)
    assert [(r["id"], r["chosen"], r["source"]) for r in recs] == [
        ("r0", "a0", "j"), ("r1", "b1", "j"), ("r3", "a3", "j"), ("r4", "a4", "j"), ("r6", "b6", "j")]
    path = tmp_path / "j.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert len(load_preferences(path)) == 5


def human(prompt, chosen, rejected, source="human:majority(2/3)"):
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected, "source": source, "id": prompt}


def test_merge_labels_by_hand():
    humans = [human("p1", "good", "bad"), human("p2", "x", "y"),
              human("p3", "u", "v", "human:a-1"), human("p3", "v", "u", "human:a-2")]   # per-judgment, split
    judge = [
        {"prompt": "p1", "chosen": "good", "rejected": "bad", "source": "j"},     # both labelled, agrees
        {"prompt": "p2", "chosen": "y", "rejected": "x", "source": "j"},          # both labelled, disagrees
        {"prompt": "p3", "chosen": "u", "rejected": "v", "source": "j"},          # people split: not compared
        {"prompt": "p4", "chosen": "m", "rejected": "n", "source": "j"},          # people said tie on p4
        {"prompt": "p5", "chosen": "s", "rejected": "t", "source": "j"},          # only the judge: saved
    ]
    records, report = merge_labels(humans, judge, human_pairs=[("p4", "n", "m")])
    assert records == humans + [judge[4]]
    # overridden: p1, p2, p3, p4 (4); both labelled: p1, p2, p3; compared: p1, p2; agreed: p1 -> 1/2
    assert report == {"human_records": 4, "judge_records": 5, "judge_used": 1, "labels_saved": 1,
                      "judge_overridden": 4, "both_labelled": 3, "compared": 2, "agreed": 1, "agreement": 0.5,
                      "by_source": {"human:majority(2/3)": 2, "human:a-1": 1, "human:a-2": 1, "j": 1}}


def test_pair_key_ignores_order_and_spacing():
    assert pair_key("hi  there", "a", "b") == pair_key("hi there", "b ", "a")
    assert pair_key([{"role": "user", "content": "hi"}], [{"role": "assistant", "content": "a"}], "b") == \
        pair_key([{"role": "user", "content": "hi"}], "b", "a")
    assert pair_key("hi", "a", "b") != pair_key("hi", "a", "c")


def test_the_loop_through_the_real_store(store, tmp_path):
    """Outcomes -> uncertain pairs into a project (with hidden suggestions) -> a person labels them -> export merges
    the judge's confident label; the stats compare the judge with the person where both answered."""
    from rlhfkit.collect.export import export_project
    from rlhfkit.collect.quality import project_stats
    from rlhfkit.collect.store import NewItem

    mk = lambda i, status, winner, conf: {"id": f"r{i}", "prompt": f"q{i}", "response_a": f"a{i}",
                                          "response_b": f"b{i}", "status": status, "winner": winner,
                                          "confidence": conf, "judge": "rm:tiny"}
    outcomes = [mk(1, "agree", "a", 0.95), mk(2, "agree", "a", 0.55), mk(3, "disagree", None, None)]
    to_humans, _, report = select_uncertain(outcomes)
    assert [r["id"] for r in to_humans] == ["r2", "r3"] and report["labels_saved"] == 1
    project = store.create_project("loop", overlap=1)
    store.add_items(project.id, [NewItem(r["prompt"], r["response_a"], r["response_b"], meta={"id": r["id"]},
                                         suggestion=suggestion(r), source="prefs.jsonl") for r in to_humans])
    user = store.add_user("rater")
    store.add_member(project.id, user.id)
    for _ in range(2):   # the person prefers b2 (the judge said a2) and a3
        a = store.next_assignment(project.id, user.id)
        want_left = a.left_is_a == (a.prompt == "q3")
        store.submit(a.uid, user.id, "left" if want_left else "right", nonce=a.nonce)
    s = export_project(store, project, tmp_path / "loop.jsonl", judge_outcomes=outcomes)
    examples = load_preferences(tmp_path / "loop.jsonl")
    assert [(e.id, e.chosen, e.source) for e in examples] == [
        ("r2", "b2", "human:majority(1/1)"), ("r3", "a3", "human:majority(1/1)"), ("r1", "a1", "rm:tiny")]
    assert s["merge"]["labels_saved"] == 1 and s["merge"]["both_labelled"] == 0
    judge = project_stats(store.item_rows(project.id), store.judgment_rows(project.id))["judge"]["judges"][0]
    # r2: judge A vs human B -> 0 of 1 (r3 has no verdict to compare)
    assert judge["judge"] == "rm:tiny" and judge["vs_humans"] == {"items": 1, "agreed": 0, "accuracy": 0.0,
                                                                  "cohen_kappa": None}
    assert judge["by_status"] == {"agree": 1, "disagree": 1}
