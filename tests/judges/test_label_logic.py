"""The both-order rule, the verdict cache (reruns and crashes cost nothing twice) and the labelled file, with
deterministic fake judges."""
import json

import pytest
from fakes import FirstJudge, LongerJudge, ScriptedJudge

from rlhfkit.data.candidates import read_candidates
from rlhfkit.data.io import load_preferences
from rlhfkit.judges import Verdict
from rlhfkit.judges.cache import VerdictCache
from rlhfkit.judges.label import combine, count, judge_pairs, label_file, sidecar


def v(winner, confidence=None):
    return Verdict(winner, confidence, None, "j")


@pytest.mark.parametrize("ab, ba, status, winner", [
    ("a", "b", "agree", "a"),        # (b, a) asked: its "b" is our a
    ("b", "a", "agree", "b"),
    ("a", "a", "disagree", None),    # always the first position: position bias
    ("b", "b", "disagree", None),
    ("tie", "tie", "tie", "tie"),
    ("a", "tie", "disagree", None),  # a win and a tie do not agree
    (None, "b", "failed", None),
    ("a", None, "failed", None),
])
def test_both_order_rule(ab, ba, status, winner):
    o = combine(v(ab), v(ba))
    assert (o.status, o.winner) == (status, winner)


def test_confidence_is_the_mean_of_both_orders():
    assert combine(v("a", 0.8), v("b", 0.6)).confidence == pytest.approx(0.7)
    assert combine(v("a", 0.8), v("b", None)).confidence == pytest.approx(0.8)
    assert combine(v("a"), v("b")).confidence is None


def test_counts_by_hand():
    # pairs: x/yy agree (b), p/q tie, m/n disagree, f/g failed
    answers = {("x", "yy"): "b", ("yy", "x"): "a", ("p", "q"): "tie", ("q", "p"): "tie",
               ("m", "n"): "a", ("n", "m"): "a", ("f", "g"): "a", ("g", "f"): None}
    judge = ScriptedJudge(answers)
    outcomes, calls = judge_pairs(judge, [("P", "x", "yy"), ("P", "p", "q"), ("P", "m", "n"), ("P", "f", "g")])
    assert [o.status for o in outcomes] == ["agree", "tie", "disagree", "failed"]
    assert outcomes[0].winner == "b"
    c = count(outcomes)
    # disagreement rate = 1 disagreement / 3 pairs with both verdicts; coverage = 1 labelled / 4 pairs
    assert c == {"pairs": 4, "labelled": 1, "ties": 1, "disagreements": 1, "failures": 1,
                 "disagreement_rate": pytest.approx(1 / 3), "coverage": 0.25}
    assert calls == {"judge_calls": 8, "cached_verdicts": 0} and judge.calls == 8


def test_position_biased_judge_labels_nothing():
    outcomes, _ = judge_pairs(FirstJudge(), [("p", "short", "much longer"), ("p", "aa", "b")])
    c = count(outcomes)
    assert c["labelled"] == 0 and c["disagreement_rate"] == 1.0 and c["coverage"] == 0.0


def test_threads_give_the_same_outcomes_in_input_order():
    pairs = [("p", "x" * i, "y" * (7 - i)) for i in range(8)]
    serial, _ = judge_pairs(LongerJudge(), pairs, concurrency=1)
    judge = LongerJudge()
    threaded, calls = judge_pairs(judge, pairs, concurrency=4)
    assert [(o.status, o.winner) for o in threaded] == [(o.status, o.winner) for o in serial]
    assert calls["judge_calls"] == 16 == judge.calls


def test_a_repeated_question_is_asked_once():
    judge = LongerJudge()
    judge_pairs(judge, [("p", "a", "bb"), ("p", "a", "bb")])
    assert judge.calls == 2


def write_candidates(path, n=5):
    rows = [{"id": f"c{i}", "prompt": f"question {i}", "response_a": "ok " * (i + 1), "response_b": "fine " * (5 - i)}
            for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def test_rerun_makes_zero_judge_calls(tmp_path):
    src = tmp_path / "pairs.jsonl"
    write_candidates(src)
    out = tmp_path / "prefs.jsonl"
    first = LongerJudge()
    s1 = label_file(first, str(src), str(out), progress=False)
    assert first.calls == 10 and s1["judge_calls"] == 10
    text = out.read_text()
    again = LongerJudge()
    s2 = label_file(again, str(src), str(out), progress=False)
    assert again.calls == 0 and s2["judge_calls"] == 0 and s2["cached_verdicts"] == 10
    assert out.read_text() == text
    assert sidecar(out, "judge-cache.jsonl").is_file()
    summary = json.loads(sidecar(out, "summary.json").read_text())
    assert summary["cached_verdicts"] == 10 and summary["labelled"] == s1["labelled"]
    # another judge id never reuses these verdicts
    other = LongerJudge(judge_id="fake:other")
    label_file(other, str(src), str(out), progress=False)
    assert other.calls == 10


def test_a_crash_keeps_the_finished_verdicts(tmp_path):
    src = tmp_path / "pairs.jsonl"
    write_candidates(src)
    out = tmp_path / "prefs.jsonl"
    with pytest.raises(RuntimeError, match="crashed"):
        label_file(LongerJudge(fail_after=3), str(src), str(out), progress=False)
    assert not out.exists()
    cache_lines = sidecar(out, "judge-cache.jsonl").read_text().splitlines()
    assert len(cache_lines) == 3
    resumed = LongerJudge()
    s = label_file(resumed, str(src), str(out), progress=False)
    assert resumed.calls == 10 - 3 and s["cached_verdicts"] == 3


def test_a_crash_in_threads_keeps_the_finished_verdicts(tmp_path):
    src = tmp_path / "pairs.jsonl"
    write_candidates(src)
    out = tmp_path / "prefs.jsonl"
    with pytest.raises(RuntimeError):
        label_file(LongerJudge(fail_after=4), str(src), str(out), concurrency=3, progress=False)
    stored = len(sidecar(out, "judge-cache.jsonl").read_text().splitlines())
    assert stored == 4
    resumed = LongerJudge()
    label_file(resumed, str(src), str(out), concurrency=3, progress=False)
    assert resumed.calls == 10 - stored


def test_cache_survives_a_cut_off_last_line(tmp_path):
    path = tmp_path / "c.jsonl"
    with VerdictCache(path) as cache:
        cache.put("p", "a", "b", Verdict("a", 0.9, {"x": 1}, "j"))
    with open(path, "a") as f:
        f.write('{"key": "abc", "winn')  # a crash mid-write
    with VerdictCache(path) as cache:
        assert cache.skipped_lines == 1 and len(cache) == 1
        assert cache.get("p", "a", "b", "j") == Verdict("a", 0.9, {"x": 1}, "j")
        assert cache.get("p", "b", "a", "j") is None  # the order is part of the key
        cache.put("p", "b", "a", Verdict("b", 0.7, None, "j"))
    with VerdictCache(path) as cache:
        assert len(cache) == 2 and cache.get("p", "b", "a", "j").winner == "b"


def test_failures_are_not_cached_and_are_retried(tmp_path):
    judge = ScriptedJudge({("a", "bb"): None, ("bb", "a"): "a"})
    with VerdictCache(tmp_path / "c.jsonl") as cache:
        judge_pairs(judge, [("p", "a", "bb")], cache=cache)
        assert len(cache) == 1
        judge_pairs(judge, [("p", "a", "bb")], cache=cache)
    assert judge.calls == 3  # the failed order is asked again, the good one comes from the cache


def test_labelled_file_is_a_preference_file(tmp_path):
    src = tmp_path / "pairs.jsonl"
    rows = write_candidates(src)
    rows.append({"id": "conv", "prompt": [{"role": "user", "content": "hi"}], "response_a": "hello there friend",
                 "response_b": "yo"})
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "prefs.jsonl"
    s = label_file(LongerJudge(), str(src), str(out), progress=False)
    assert s["pairs"] == 6
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == s["labelled"]
    for line in lines:
        assert set(line) == {"prompt", "chosen", "rejected", "source", "confidence", "id"}
        assert line["source"] == "fake:longer" and line["confidence"] == pytest.approx(0.8)
    explicit = [x for x in lines if x["id"] != "conv"]
    assert all(len(x["chosen"]) > len(x["rejected"]) for x in explicit)
    conv = next(x for x in lines if x["id"] == "conv")
    assert conv["chosen"] == [{"role": "assistant", "content": "hello there friend"}]
    # the project's preference reader accepts it (explicit lines; the conversational line in its own file)
    (tmp_path / "explicit.jsonl").write_text("".join(json.dumps(x) + "\n" for x in explicit))
    (tmp_path / "conv.jsonl").write_text(json.dumps(conv) + "\n")
    examples = load_preferences(tmp_path / "explicit.jsonl")
    assert len(examples) == len(explicit) and all(e.source == "fake:longer" for e in examples)
    assert load_preferences(tmp_path / "conv.jsonl")[0].chosen[0]["content"] == "hello there friend"


def test_bad_candidate_lines_name_the_line(tmp_path):
    from rlhfkit.errors import DataError

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "p", "response_a": "x", "response_b": "y"}) + "\n"
                   + json.dumps({"prompt": "p", "response_a": "x"}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:2: missing field 'response_b'"):
        read_candidates(str(bad))
    same = tmp_path / "same.jsonl"
    same.write_text(json.dumps({"prompt": "p", "response_a": "x ", "response_b": "x"}) + "\n")
    with pytest.raises(DataError, match=r"same.jsonl:1: .*identical"):
        read_candidates(str(same))
