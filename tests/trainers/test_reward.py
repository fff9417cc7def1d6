"""Reward-model trainer on tiny models: it learns, resume is exact, LoRA saves a loadable model, scoring works."""
import json
import math

import pytest
import torch
from synthetic import interrupt_after_step, make_pairs, write_pairs

from rlhfkit.cli import main
from rlhfkit.config import RewardConfig, build_config
from rlhfkit.trainers import loop, reward
from rlhfkit.trainers.loop import read_metrics


def cfg_for(model_dir, data, out, **kw):
    base = dict(model=str(model_dir), data=str(data), output=str(out), learning_rate=3e-3, batch_size=8,
                max_steps=6, precision="fp32", progress=False, save_steps=0, lr_scheduler="constant",
                max_length=64, max_prompt_length=32)
    base.update(kw)
    return build_config(RewardConfig, **base)


def losses(out):
    return [r["train/loss"] for r in read_metrics(out) if "train/loss" in r]


@pytest.fixture(scope="module")
def trained_rm(tiny_model_dir, tmp_path_factory):
    """A tiny reward model trained on the synthetic preference (shared by the tests below)."""
    tmp = tmp_path_factory.mktemp("rm")
    data = write_pairs(tmp / "p.jsonl", 240)
    cfg = cfg_for(tiny_model_dir, data, tmp / "out", eval_fraction=0.25, max_steps=40, eval_steps=20)
    final = reward.train_rm(cfg)
    return final, tmp


def test_tiny_rm_learns_the_preference(trained_rm):
    final, tmp = trained_rm
    rows = read_metrics(tmp / "out")
    ev = [r for r in rows if "eval/accuracy" in r][-1]
    assert ev["eval/accuracy"] >= 0.9, ev
    assert ev["eval/margin"] > 0
    keys = set(rows[0])
    for k in ("train/loss", "train/accuracy", "train/margin", "perf/pairs_per_sec", "grad_norm", "learning_rate"):
        assert k in keys, k
    assert any("eval/accuracy" in r and "eval/margin" in r for r in rows)


def test_saved_rm_reloads_both_ways_with_its_statistics(trained_rm):
    from transformers import AutoModelForSequenceClassification

    from rlhfkit.models.load import load_reward_model, reward_info

    final, _ = trained_rm
    ours = load_reward_model(str(final), quiet=True)
    hf = AutoModelForSequenceClassification.from_pretrained(final)
    info = reward_info(ours)
    assert info["std"] > 0 and math.isfinite(info["mean"]) and info["responses"] > 0
    assert info["use_chat_template"] is True and info["max_length"] == 64
    for (k, a), (_, b) in zip(ours.state_dict().items(), hf.state_dict().items()):
        assert torch.equal(a, b), k


def test_rm_eval_cli_json_and_text(trained_rm, tmp_path, capsys):
    final, tmp = trained_rm
    held = tmp_path / "held.jsonl"
    held.write_text("".join(json.dumps(r) + "\n" for r in make_pairs(40, seed=7)))
    assert main(["rm", "eval", "--model", str(final), "--data", str(held), "--json", "--no-progress"]) == 0
    rep = json.loads(capsys.readouterr().out)
    for key in ("accuracy", "margin_mean", "ece", "length_correlation", "baselines", "pairs"):
        assert key in rep
    assert rep["pairs"] == 40 and rep["accuracy"] >= 0.9
    assert set(rep["baselines"]) == {"longer", "shorter", "chance"}
    assert 0 <= rep["ece"] <= 1
    assert main(["rm", "eval", "--model", str(final), "--data", str(held), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "accuracy" in text and "prefer longer" in text and "calibration (ECE)" in text


def test_rm_score_round_trip(trained_rm, tmp_path, capsys):
    from rlhfkit.models.scorer import RewardScorer

    final, _ = trained_rm
    rows = [{"prompt": "Customer: my order is wrong 3. What should I do?", "response": "Sorry! delivery tomorrow.",
             "id": "a"},
            {"prompt": "Customer: my order is wrong 3. What should I do?", "response": "not our problem.",
             "id": "b"}]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    dst = tmp_path / "out.jsonl"
    assert main(["rm", "score", "--model", str(final), "--input", str(src), "--output", str(dst)]) == 0
    out = [json.loads(line) for line in dst.read_text().splitlines()]
    assert [r["id"] for r in out] == ["a", "b"]                     # every field kept, order kept
    scorer = RewardScorer(str(final))
    raw = scorer.rewards([r["prompt"] for r in rows], [r["response"] for r in rows])
    mean, std = scorer.info["mean"], scorer.info["std"]
    for r, x in zip(out, raw.tolist()):
        assert r["reward"] == pytest.approx(x, abs=1e-5)
        assert r["score"] == pytest.approx(1 / (1 + math.exp(-(x - mean) / std)), abs=1e-5)
        assert 0 < r["score"] < 1
    assert out[0]["score"] > out[1]["score"]                          # the learned preference
    capsys.readouterr()
    assert main(["rm", "score", "--model", str(final), "--prompt", rows[0]["prompt"],
                 "--response", rows[0]["response"]]) == 0
    assert float(capsys.readouterr().out) == pytest.approx(out[0]["score"], abs=1e-4)
    import rlhfkit

    assert rlhfkit.score(str(final), rows[0]["prompt"], rows[0]["response"]) == pytest.approx(out[0]["score"],
                                                                                              abs=1e-5)


def test_rm_score_bad_input_names_the_line(trained_rm, tmp_path, capsys):
    final, _ = trained_rm
    src = tmp_path / "bad.jsonl"
    src.write_text(json.dumps({"prompt": "a", "response": "b"}) + "\n" + json.dumps({"prompt": "a"}) + "\n")
    assert main(["rm", "score", "--model", str(final), "--input", str(src)]) == 2
    err = capsys.readouterr().err
    assert f"{src}:2: field 'response'" in err and "Traceback" not in err
    assert main(["rm", "score", "--model", str(final), "--prompt", "x"]) == 2


def test_resume_after_sigint_reproduces_losses_exactly(tiny_model_dir, tmp_path, monkeypatch):
    data = write_pairs(tmp_path / "p.jsonl", 120)
    dpo_like = dict(max_steps=8, shuffle=True, save_steps=100)
    reward.train_rm(cfg_for(tiny_model_dir, data, tmp_path / "a", **dpo_like))
    want = losses(tmp_path / "a")
    assert len(want) == 8
    interrupt_after_step(monkeypatch, 3)
    cut = cfg_for(tiny_model_dir, data, tmp_path / "b", **dpo_like)
    with pytest.raises(loop.Interrupted, match="step 3"):
        reward.train_rm(cut)
    monkeypatch.undo()
    reward.train_rm(cut)
    assert losses(tmp_path / "b") == want


def test_lora_rm_saves_merged_model_with_trained_head(tiny_model_dir, tmp_path):
    from rlhfkit.models.load import load_reward_model
    from rlhfkit.models.scorer import RewardScorer

    data = write_pairs(tmp_path / "p.jsonl", 64)
    cfg = cfg_for(tiny_model_dir, data, tmp_path / "o", lora=True, lora_r=4, lora_alpha=8, max_steps=4)
    final = reward.train_rm(cfg)
    assert (final / "adapter" / "adapter_config.json").is_file()
    merged = load_reward_model(str(final), quiet=True)
    torch.manual_seed(0)
    fresh = load_reward_model(str(tiny_model_dir), quiet=True)
    assert not torch.equal(merged.score.weight, fresh.score.weight)   # the head was trained and saved
    # the merged model scores exactly as the stored statistics were computed: mean of training rewards
    scorer = RewardScorer(str(final))
    rows = make_pairs(64)  # no eval split: the statistics cover all 128 training responses
    r = scorer.rewards([x["prompt"] for x in rows] * 2, [x["chosen"] for x in rows] + [x["rejected"] for x in rows])
    assert float(r.mean()) == pytest.approx(scorer.info["mean"], abs=1e-4)
    assert float(r.std(unbiased=False)) == pytest.approx(scorer.info["std"], abs=1e-4)


def test_margin_field_enters_the_loss(tiny_model_dir, tmp_path):
    rows = make_pairs(16)
    for r in rows:
        r["margin"] = 5.0
    data = tmp_path / "m.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with_m = cfg_for(tiny_model_dir, data, tmp_path / "a", max_steps=1, learning_rate=0.0, shuffle=False)
    without = cfg_for(tiny_model_dir, data, tmp_path / "b", max_steps=1, learning_rate=0.0, shuffle=False,
                      use_margin=False)
    reward.train_rm(with_m)
    reward.train_rm(without)
    a, b = losses(tmp_path / "a")[0], losses(tmp_path / "b")[0]
    assert a > b + 1.0  # subtracting 5 from every difference makes an untrained model's loss far larger


def test_degenerate_negatives_teach_the_rm_to_rank_degenerate_text_last(tiny_model_dir, tmp_path):
    """Two tiny RMs on the same pairs, one with --degenerate-negatives 1: on held-out prompts, only the augmented one
    puts runs of repeated tokens below the real, rejected reply; both still rank the real pairs. (Measured when
    written: 0.0 plain, 1.0 augmented. The tiny model's tokenizer is nearly character-level, so shuffled "words"
    are scrambled letters it cannot tell from text: the default model's numbers are in docs/reward.md.)"""
    import random

    from transformers import AutoTokenizer

    from rlhfkit.data.augment import degenerate_response
    from rlhfkit.models.scorer import RewardScorer

    data = write_pairs(tmp_path / "p.jsonl", 240)
    held = make_pairs(30, seed=9)
    prompts = [r["prompt"] for r in held]
    acc = {}
    for name, extra in (("plain", 0.0), ("augmented", 1.0)):
        final = reward.train_rm(cfg_for(tiny_model_dir, data, tmp_path / name, max_steps=60,
                                        degenerate_negatives=extra))
        tok = AutoTokenizer.from_pretrained(final)
        vocab = [i for i in range(len(tok)) if i not in set(tok.all_special_ids)]
        rng = random.Random(1)
        runs = [tok.decode(degenerate_response(tok(r["chosen"])["input_ids"] + [tok.eos_token_id],
                                               eos_id=tok.eos_token_id, rng=rng, vocab=vocab, kind="token_run"),
                           skip_special_tokens=True) for r in held]
        scorer = RewardScorer(str(final), batch_size=16)
        s_rej = scorer.score(prompts, [r["rejected"] for r in held])
        s_run = scorer.score(prompts, runs)
        s_cho = scorer.score(prompts, [r["chosen"] for r in held])
        acc[name] = (sum(a > b for a, b in zip(s_rej, s_run)) / 30, sum(a > b for a, b in zip(s_cho, s_rej)) / 30)
    assert acc["augmented"][0] >= 0.8 and acc["plain"][0] <= 0.4, acc
    assert acc["augmented"][1] >= 0.9 and acc["plain"][1] >= 0.9, acc
