"""scripts/rlaif_to_human.py end to end on a tiny reward model: the real CLI, a real `rlhfkit collect serve` child
process and simulated annotators over HTTP. The report's numbers are checked against the files the run wrote
(the judge's outcomes, the known answers, the merged file), not against the script's own arithmetic."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from rlhfkit.errors import RlhfkitError

ROOT = Path(__file__).resolve().parents[2]


def load_script():
    spec = importlib.util.spec_from_file_location("rlaif_to_human", ROOT / "scripts" / "rlaif_to_human.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


loop = load_script()


@pytest.fixture(scope="module")
def tiny_rm(tmp_path_factory):
    """An untrained tiny reward model saved as `rlhfkit rm train` would, its head scaled by 20 so that reward gaps
    (and confidences sigmoid(|r_a - r_b|)) spread over 0.5..1: some pairs confident, some not."""
    import torch

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import make_model, make_tokenizer

    from rlhfkit.models.load import REWARD_INFO_KEY, load_reward_model

    base, out = tmp_path_factory.mktemp("tiny-chat"), tmp_path_factory.mktemp("tiny-rm")
    tok = make_tokenizer()
    make_model(tok).save_pretrained(base)
    tok.save_pretrained(base)
    torch.manual_seed(0)
    rm = load_reward_model(str(base), quiet=True)
    with torch.no_grad():
        rm.score.weight.mul_(20.0)
    setattr(rm.config, REWARD_INFO_KEY, {"mean": 0.0, "std": 1.0, "max_length": 128, "max_prompt_length": 64,
                                         "use_chat_template": True})
    rm.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def jsonl(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def chosen_is_known(rec: dict, cands: dict, answers: dict) -> bool:
    c = cands[rec["id"]]
    return rec["chosen"] == (c["response_a"] if answers[rec["id"]] == "A" else c["response_b"])


def check_common(r: dict, work: Path, min_conf: float) -> tuple[list[dict], list[dict], dict, dict]:
    """What holds for every run; returns (outcomes, merged records, candidates by id, answers)."""
    from rlhfkit.data.validate import check_file

    outcomes = jsonl(work / "prefs.outcomes.jsonl")
    cands = {c["id"]: c for c in jsonl(work / "candidates.jsonl")}
    answers = json.loads((work / "answers.json").read_text())
    confident = [o for o in outcomes if o["status"] == "agree" and o["confidence"] >= min_conf]
    assert r["pairs"] == len(outcomes) == len(cands)
    assert r["confident"] == len(confident) and 0 < r["confident"] < r["pairs"]
    assert r["routed"] + r["left_out"] + r["confident"] == r["pairs"]
    assert r["labels_saved"] == r["confident"] - r["audited"]
    assert r["labels_saved_share"] == round(r["labels_saved"] / r["pairs"], 4)
    # every routed or audited pair got `overlap` human labels, each through a POST the server stored
    assert r["human_labels"] == r["items_for_people"] * r["overlap"] == (r["routed"] + r["audited"]) * r["overlap"]
    report = check_file(r["merged"]["file"])
    assert not report.errors and report.stats["valid_pairs"] == r["merged"]["records"]
    merged = jsonl(r["merged"]["file"])
    judge = r["judge"]
    assert all(m["source"] == judge or m["source"].startswith("human:majority(") for m in merged)
    human = [m for m in merged if m["source"] != judge]
    assert len(human) == r["human_labelled_pairs"]
    assert len(merged) - len(human) == r["labels_saved"]
    assert len(merged) == r["human_labelled_pairs"] + r["labels_saved"]
    # the judge's records are exactly its confident pairs that people were not asked about, with its winner
    judged = {m["id"]: m for m in merged if m["source"] == judge}
    audited = {o["id"] for o in jsonl(work / "audit.outcomes.jsonl")} if r["audited"] else set()
    assert set(judged) == {o["id"] for o in confident} - audited
    for o in confident:
        if o["id"] in judged:
            assert judged[o["id"]]["chosen"] == o["response_" + o["winner"]]
    right = sum(o["winner"].upper() == answers[o["id"]] for o in confident)
    assert r["judge_confident_vs_known"] == {"pairs": len(confident), "correct": right,
                                             "accuracy": round(right / len(confident), 4)}
    # the script's judge-human count is the same as `collect stats`' (quality.judge_section)
    agree, stats = r["judge_human_agreement"], r["stats_judge_vs_humans"]
    assert (agree["pairs"], agree["agreed"], agree["accuracy"]) == (stats["items"], stats["agreed"],
                                                                    stats["accuracy"])
    return outcomes, merged, cands, answers


def test_loop_with_perfect_people_and_an_audit(tiny_rm, tmp_path):
    work = tmp_path / "w"
    r = loop.main(["--reward-model", str(tiny_rm), "--work", str(work), "--max-pairs", "24", "--annotators", "3",
                   "--human-accuracy", "1.0", "--audit", "3", "--min-confidence", "0.7", "--seed", "1"])
    outcomes, merged, cands, answers = check_common(r, work, 0.7)
    assert r["left_out"] == 0 and r["routed"] + r["confident"] == r["pairs"] and r["audited"] == 3
    unsure = [o for o in outcomes if o["status"] != "agree" or o["confidence"] < 0.7]
    assert r["routed"] == r["uncertain"] == len(unsure)
    human = [m for m in merged if m["source"] != r["judge"]]
    assert len(human) == r["routed"] + r["audited"]
    assert all(m["source"] == "human:majority(2/2)" for m in human)   # perfect people always agree
    assert all(chosen_is_known(m, cands, answers) for m in human)
    assert r["merged"]["records"] == r["pairs"]
    # people are the known answers here, so the judge's agreement with them is its accuracy on those pairs
    shared = [o for o in outcomes if o["id"] in {m["id"] for m in human}]
    hits = sum(o["winner"].upper() == answers[o["id"]] for o in shared)
    assert r["judge_human_agreement"]["pairs"] == len(shared) and r["judge_human_agreement"]["agreed"] == hits
    groups = r["judge_human_agreement"]["by_group"]
    assert groups["routed"]["pairs"] == r["routed"] and groups["audit"]["pairs"] == 3
    known = r["merged"]["known"]
    assert known["by_source"]["human"] == {"records": len(human), "match": len(human), "accuracy": 1.0}
    assert known["match"] == len(human) + sum(chosen_is_known(m, cands, answers) for m in merged
                                              if m["source"] == r["judge"])
    assert r["krippendorff_alpha"] == 1.0


def test_loop_with_a_budget_and_contrary_people_on_own_candidates(tiny_rm, tmp_path):
    """--candidates (ids missing on some lines, known_label given), --max-items binding, people who always pick
    the other response: every human record is the wrong one, and the pairs over the budget are in no list."""
    from rlhfkit.data.io import load_preferences

    own = tmp_path / "own.jsonl"
    lines = []
    for i, ex in enumerate(load_preferences("bundled:support")[:18]):
        a, b, known = (ex.chosen, ex.rejected, "A") if i % 2 else (ex.rejected, ex.chosen, "B")
        row = {"prompt": ex.prompt, "response_a": a, "response_b": b, "known_label": known}
        lines.append(json.dumps({"id": f"own-{i}", **row} if i % 3 else row))
    own.write_text("\n".join(lines) + "\n")
    work = tmp_path / "w"
    r = loop.main(["--reward-model", str(tiny_rm), "--work", str(work), "--candidates", str(own), "--annotators",
                   "2", "--human-accuracy", "0.0", "--max-items", "2", "--min-confidence", "0.8"])
    outcomes, merged, cands, answers = check_common(r, work, 0.8)
    assert len(answers) == 18 and {c for c in cands if not c.startswith("own-")} == {f"pair-{n}" for n in (1, 4, 7,
                                                                                                          10, 13, 16)}
    assert r["routed"] == 2 and r["left_out"] == r["uncertain"] - 2 > 0
    human = [m for m in merged if m["source"] != r["judge"]]
    assert len(human) == 2 and not any(chosen_is_known(m, cands, answers) for m in human)
    assert r["merged"]["known"]["by_source"]["human"]["match"] == 0
    assert r["merged"]["records"] == r["pairs"] - r["left_out"]
    # the two routed pairs are the least confident ones (route.py's budget order)
    ranked = sorted(outcomes, key=lambda o: o["confidence"])
    assert {m["id"] for m in human} == {o["id"] for o in ranked[:2]}


def test_bad_input_is_a_clear_error(tmp_path):
    (tmp_path / "collect.db").write_text("")
    with pytest.raises(RlhfkitError, match="collect.db exists"):
        loop.main(["--reward-model", "x", "--work", str(tmp_path)])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "p", "response_a": "x", "response_b": "y", "known_label": "left"}) + "\n")
    with pytest.raises(RlhfkitError, match=r"bad.jsonl:1: known_label: must be A or B"):
        loop.main(["--reward-model", "x", "--work", str(tmp_path / "w"), "--candidates", str(bad)])
