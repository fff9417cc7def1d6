"""`rlhfkit eval`: win-rate and interval maths by hand, the KL estimate against exact values on tiny models, and the
command end to end on tiny models."""
import json
import math

import pytest
import torch
import yaml
from conftest import make_model

from rlhfkit.cli import main
from rlhfkit.eval.winrate import evaluate, outcomes, sequence_kl, starting_model, token_kl, wilson_interval, win_rate


def test_win_rate_counts_ties_as_half():
    assert win_rate(3, 2, 5) == pytest.approx(0.4)
    assert win_rate(10, 0, 0) == 1.0
    assert math.isnan(win_rate(0, 0, 0))


def test_wilson_interval_by_hand():
    # 14 wins of 20: z = 1.96, d = 1 + z^2/20 = 1.19207; centre = (0.7 + z^2/40) / d = 0.66777;
    # half = z * sqrt(0.7 * 0.3 / 20 + z^2 / 1600) / d = 0.18675
    lo, hi = wilson_interval(0.7, 20)
    assert lo == pytest.approx(0.48102, abs=2e-4) and hi == pytest.approx(0.85451, abs=2e-4)
    # at the edges the interval stays inside [0, 1] and is not empty (unlike the normal approximation)
    lo, hi = wilson_interval(1.0, 10)
    assert hi == pytest.approx(1.0) and lo == pytest.approx(10 / (10 + 1.959964 ** 2), abs=1e-6)
    assert wilson_interval(0.5, 0) == (0.0, 1.0)


def test_outcomes_with_tie_margin_and_identical_texts():
    assert outcomes([0.9, 0.2, 0.50, 0.7], [0.1, 0.8, 0.52, 0.1], tie_margin=0.05, same=[False, False, False, True]) \
        == ["policy", "baseline", "tie", "tie"]


def test_token_kl_by_hand():
    p = torch.log(torch.tensor([0.5, 0.5]))
    q = torch.log(torch.tensor([0.25, 0.75]))
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)  # 0.143841
    assert float(token_kl(p, q)) == pytest.approx(expected, abs=1e-6)
    assert float(token_kl(p, p)) == pytest.approx(0.0, abs=1e-7)
    # temperature divides the logits of both distributions
    assert float(token_kl(2 * p, 2 * q, temperature=2.0)) == pytest.approx(expected, abs=1e-6)


def _two_models(tiny_tokenizer):
    return make_model(tiny_tokenizer, seed=1), make_model(tiny_tokenizer, seed=2)


def test_sequence_kl_one_token_is_the_exact_kl(tiny_tokenizer):
    """For one-token responses the estimate is the exact KL of the two next-token distributions at the prompt."""
    pol, base = _two_models(tiny_tokenizer)
    prompts = [[5, 6, 7], [8, 9]]
    kl = sequence_kl(pol, base, prompts, [[11], [12]], temperature=0.7, pad_id=2)
    for i, p in enumerate(prompts):
        with torch.no_grad():
            lp = torch.log_softmax(pol(torch.tensor([p])).logits[0, -1] / 0.7, -1)
            lq = torch.log_softmax(base(torch.tensor([p])).logits[0, -1] / 0.7, -1)
        exact = float((lp.exp() * (lp - lq)).sum())
        assert exact > 1e-4
        assert float(kl[i]) == pytest.approx(exact, rel=1e-4)


def test_sequence_kl_matches_a_plain_loop_over_prefixes(tiny_tokenizer):
    pol, base = _two_models(tiny_tokenizer)
    prompts, responses = [[5, 6, 7, 8], [9]], [[10, 11, 12], [13, 14, 15, 16, 17]]
    kl = sequence_kl(pol, base, prompts, responses, temperature=1.0, pad_id=2, batch_size=2)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        total = 0.0
        for t in range(len(r)):                           # one forward per prefix: the slow, obvious way
            prefix = torch.tensor([p + r[:t]])
            with torch.no_grad():
                lp = torch.log_softmax(pol(prefix).logits[0, -1], -1)
                lq = torch.log_softmax(base(prefix).logits[0, -1], -1)
            total += float((lp.exp() * (lp - lq)).sum())
        assert float(kl[i]) == pytest.approx(total, rel=1e-4)
    # same model on both sides: zero
    assert torch.allclose(sequence_kl(pol, pol, prompts, responses, temperature=1.0, pad_id=2), torch.zeros(2),
                          atol=1e-6)


@pytest.fixture
def models_dir(tmp_path, tiny_tokenizer):
    """Two different tiny chat models saved as folders, plus a run folder whose final/ is the first."""
    a, b = _two_models(tiny_tokenizer)
    for name, m in (("a", a), ("b", b)):
        m.save_pretrained(tmp_path / name)
        tiny_tokenizer.save_pretrained(tmp_path / name)
    run = tmp_path / "run"
    (run / "final").mkdir(parents=True)
    a.save_pretrained(run / "final")
    tiny_tokenizer.save_pretrained(run / "final")
    (run / "config.yaml").write_text(yaml.safe_dump({"model": str(tmp_path / "b"), "lora": True}))
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps({"prompt": f"Customer: my order {i} is wrong."}) + "\n"
                                                    for i in range(6)))
    return tmp_path


def test_starting_model_read_from_the_run(models_dir):
    assert starting_model(str(models_dir / "run")) == (str(models_dir / "run" / "final"), str(models_dir / "b"))
    assert starting_model(str(models_dir / "run" / "final"))[1] == str(models_dir / "b")
    assert starting_model(str(models_dir / "a")) == (str(models_dir / "a"), None)


def test_evaluate_same_model_is_all_ties(models_dir):
    r = evaluate(str(models_dir / "a"), str(models_dir / "prompts.jsonl"), reward_model=str(models_dir / "b"),
                 baseline=str(models_dir / "a"), max_new_tokens=6, progress=False)
    assert (r["wins"], r["ties"], r["losses"], r["n"]) == (0, 6, 0, 6)
    assert r["win_rate"] == 0.5 and r["kl"] == pytest.approx(0.0, abs=1e-6)
    assert r["score_policy"] == pytest.approx(r["score_baseline"])


def test_eval_cli_on_a_run_folder(models_dir, capsys):
    rc = main(["eval", "--policy", str(models_dir / "run"), "--prompts", str(models_dir / "prompts.jsonl"),
               "--reward-model", str(models_dir / "b"), "--max-new-tokens", "6", "--json", "--no-progress",
               "--batch-size", "4"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((models_dir / "run" / "eval" / "eval.json").read_text())
    assert printed == saved
    for key in ("win_rate", "ci95", "wins", "ties", "losses", "score_policy", "score_baseline", "kl",
                "length_policy", "length_baseline"):
        assert key in saved
    assert saved["baseline"] == str(models_dir / "b")                  # read from the run's config.yaml
    assert saved["wins"] + saved["ties"] + saved["losses"] == saved["n"] == 6
    assert saved["win_rate"] == pytest.approx(win_rate(saved["wins"], saved["ties"], saved["losses"]))
    assert saved["kl"] > 0                                              # two different models
    rows = [json.loads(x) for x in (models_dir / "run" / "eval" / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and {r["winner"] for r in rows} <= {"policy", "baseline", "tie"}
    for r in rows:
        want = "tie" if r["policy"] == r["baseline"] or r["score_policy"] == r["score_baseline"] else \
            ("policy" if r["score_policy"] > r["score_baseline"] else "baseline")
        assert r["winner"] == want
    assert sum(r["length_policy"] for r in rows) / 6 == pytest.approx(saved["length_policy"])


def test_eval_is_seeded(models_dir):
    kw = dict(reward_model=str(models_dir / "b"), baseline=str(models_dir / "b"), max_new_tokens=6, progress=False)
    r1 = evaluate(str(models_dir / "a"), str(models_dir / "prompts.jsonl"), output=str(models_dir / "e1"), **kw)
    r2 = evaluate(str(models_dir / "a"), str(models_dir / "prompts.jsonl"), output=str(models_dir / "e2"), **kw)
    # the same answers (the judge here is an untrained head, new at every load: only the texts are compared)
    texts = [[(r["policy"], r["baseline"]) for r in map(json.loads, (models_dir / e / "samples.jsonl").open())]
             for e in ("e1", "e2")]
    assert texts[0] == texts[1] and len(texts[0]) == 6
    assert r1["length_policy"] == r2["length_policy"] and r1["kl"] == pytest.approx(r2["kl"])


def test_eval_cli_errors(models_dir, capsys):
    assert main(["eval", "--policy", str(models_dir / "nope"), "--prompts", str(models_dir / "prompts.jsonl"),
                 "--reward-model", str(models_dir / "b")]) == 2
    assert "no such folder" in capsys.readouterr().err
    # not a run folder and no --baseline / --output: says what to give
    assert main(["eval", "--policy", str(models_dir / "a"), "--prompts", str(models_dir / "prompts.jsonl"),
                 "--reward-model", str(models_dir / "b")]) == 2
    assert "--output" in capsys.readouterr().err
    assert main(["eval", "--policy", str(models_dir / "a"), "--prompts", str(models_dir / "prompts.jsonl"),
                 "--reward-model", str(models_dir / "b"), "-o", str(models_dir / "o")]) == 2
    assert "--baseline" in capsys.readouterr().err
    assert main(["eval", "--policy", str(models_dir / "run"), "--prompts", str(models_dir / "prompts.jsonl")]) == 2
    assert "--judge" in capsys.readouterr().err
    (models_dir / "bad.jsonl").write_text('{"prompt": "ok"}\n{"prompt": \n')
    assert main(["eval", "--policy", str(models_dir / "run"), "--prompts", str(models_dir / "bad.jsonl"),
                 "--reward-model", str(models_dir / "b")]) == 2
    assert "bad.jsonl" in capsys.readouterr().err


class _Longer:
    """Prefers the longer answer whatever its position; counts its calls."""

    judge_id = "fake:longer"
    concurrent = False

    def __init__(self):
        self.calls = 0

    def judge(self, prompt, a, b):
        from rlhfkit.judges import Verdict

        self.calls += 1
        return Verdict("tie" if len(a) == len(b) else ("a" if len(a) > len(b) else "b"), 0.9, None, self.judge_id)


class _First(_Longer):
    judge_id = "fake:first"

    def judge(self, prompt, a, b):
        from rlhfkit.judges import Verdict

        return Verdict("a", 0.9, None, self.judge_id)


def test_judged_outcomes_both_orders():
    from rlhfkit.eval.winrate import judged_outcomes

    j = _Longer()
    out, counts = judged_outcomes(j, ["p1", "p2", "p3", "p4"], ["long answer", "x", "same", "abc"],
                                  ["short", "longer one", "same", "xyz"])
    assert out == ["policy", "baseline", "tie", "tie"]
    assert counts == {"agree": 2, "tie": 2, "disagree": 0, "failed": 0}
    assert j.calls == 6                                   # both orders of 3 pairs; identical answers never asked
    # a judge that always picks the first position agrees with itself on nothing: every pair is a tie
    out, counts = judged_outcomes(_First(), ["p"] * 2, ["a", "bb"], ["cc", "d"])
    assert out == ["tie", "tie"] and counts["disagree"] == 2


def test_evaluate_with_a_judge_and_no_reward_model(models_dir):
    r = evaluate(str(models_dir / "run"), str(models_dir / "prompts.jsonl"), judge=_Longer(), max_new_tokens=6,
                 progress=False, output=str(models_dir / "ej"))
    assert r["judge"] == "fake:longer" and r["score_policy"] is None
    assert r["wins"] + r["ties"] + r["losses"] == 6 and sum(r["judge_verdicts"].values()) == 6
    rows = [json.loads(x) for x in (models_dir / "ej" / "samples.jsonl").read_text().splitlines()]
    for row in rows:
        a, b = row["policy"], row["baseline"]
        assert row["winner"] == ("tie" if len(a) == len(b) else "policy" if len(a) > len(b) else "baseline")
    def no_nan(c):
        raise AssertionError(f"{c} in eval.json")

    json.loads((models_dir / "ej" / "eval.json").read_text(), parse_constant=no_nan)   # missing scores are null
