"""The hf judge (verdict from the answer-token probabilities, checked against a hand softmax of the model's
logits) and the rm judge (higher reward wins, confidence = sigmoid(|r_a - r_b|)) on tiny models."""
import math
from types import SimpleNamespace

import pytest
import torch
from conftest import make_model
from tiny_rm import save_tiny_rm

from rlhfkit.judges import JudgeError
from rlhfkit.judges.hf import HFJudge
from rlhfkit.judges.label import judge_pairs
from rlhfkit.judges.prompt import render
from rlhfkit.judges.rm import RMJudge

PROMPT = "Customer: My order is wrong. What should I do?"
RUBRIC = "Prefer the helpful answer."  # short: the tiny models see 512 positions, the default rubric is longer
GOOD = "I'm so sorry! Let me fix this right away: a replacement ships today."
BAD = "Contact support."


@pytest.fixture(scope="module")
def hf_judge(tiny_tokenizer):
    return HFJudge("tiny", model=make_model(tiny_tokenizer, seed=3), tokenizer=tiny_tokenizer, rubric=RUBRIC)


def test_hf_confidence_is_the_softmax_of_the_two_answer_tokens(hf_judge, tiny_tokenizer):
    v = hf_judge.judge(PROMPT, GOOD, BAD)
    # by hand: render the judging prompt as the chat template's user turn, one forward, last position's logits
    text = tiny_tokenizer.apply_chat_template([{"role": "user", "content": render(PROMPT, GOOD, BAD, RUBRIC)}],
                                              tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = hf_judge.model(input_ids=torch.tensor([ids])).logits[0, -1]
    (id_a,), (id_b,) = (tiny_tokenizer(x, add_special_tokens=False)["input_ids"] for x in ("A", "B"))
    la, lb = float(logits[id_a]), float(logits[id_b])
    p_a = math.exp(la) / (math.exp(la) + math.exp(lb))
    assert v.winner == ("a" if p_a > 0.5 else "b")
    assert v.confidence == pytest.approx(max(p_a, 1 - p_a), abs=1e-6)
    assert v.raw["p_a"] == pytest.approx(p_a, abs=1e-6) and v.raw["p_b"] == pytest.approx(1 - p_a, abs=1e-6)
    full = torch.softmax(logits, -1)
    assert v.raw["answer_mass"] == pytest.approx(float(full[id_a] + full[id_b]), rel=1e-5)


class FixedLogits(torch.nn.Module):
    """A 'model' whose next-token logits are fixed: the verdict must follow them, whatever the text says."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.nn.Parameter(logits, requires_grad=False)
        self.config = SimpleNamespace(max_position_embeddings=4096)

    def forward(self, input_ids):
        return SimpleNamespace(logits=self.logits.expand(1, input_ids.shape[1], -1))


def test_hf_verdict_follows_the_answer_token_logits(tiny_tokenizer):
    (id_a,), (id_b,) = (tiny_tokenizer(x, add_special_tokens=False)["input_ids"] for x in ("A", "B"))
    logits = torch.zeros(len(tiny_tokenizer))
    logits[id_b] = math.log(3.0)  # P(B) / P(A) = 3 -> p_b = 0.75
    logits[0] = 10.0              # another token is far likelier: it must not matter
    judge = HFJudge("fixed", model=FixedLogits(logits), tokenizer=tiny_tokenizer)
    v = judge.judge("p", "x", "y")
    assert v.winner == "b" and v.confidence == pytest.approx(0.75)
    assert v.raw["answer_mass"] < 0.01
    logits[id_b] = 0.0
    assert judge.judge("p", "x", "y").winner == "tie"


def test_hf_judge_id_carries_the_prompt_hash(tiny_tokenizer, tiny_model_dir):
    from rlhfkit.judges.prompt import prompt_hash

    default = HFJudge(str(tiny_model_dir))
    other = HFJudge(str(tiny_model_dir), rubric=RUBRIC)
    assert default.judge_id == f"hf:{tiny_model_dir.resolve()}|prompt-v1-{prompt_hash(default.rubric)}"
    assert default.judge_id != other.judge_id
    assert other.judge(PROMPT, GOOD, BAD).winner in ("a", "b", "tie")


def test_hf_judge_without_chat_template(tiny_base_model_dir):
    judge = HFJudge(str(tiny_base_model_dir), rubric=RUBRIC)
    assert not judge.chat
    ids = judge.input_ids("p", "x", "y")
    assert judge.tokenizer.decode(ids).endswith("\nAnswer:")
    assert judge.judge("p", "x", "y").winner in ("a", "b", "tie")


def test_hf_judge_too_long_is_a_failed_verdict(hf_judge):
    v = hf_judge.judge(PROMPT, "refund " * 400, BAD)
    assert v.winner is None and "more than the judge's 512" in v.raw["error"]


def test_hf_both_orders(hf_judge):
    outcomes, calls = judge_pairs(hf_judge, [(PROMPT, GOOD, BAD), (PROMPT, BAD, GOOD)])
    assert calls["judge_calls"] == 2  # the second pair asks the same two questions: answered once
    # the same pair asked either way round gives mirrored outcomes
    assert outcomes[0].status == outcomes[1].status
    if outcomes[0].status == "agree":
        assert {outcomes[0].winner, outcomes[1].winner} == {"a", "b"}


# ----------------------------------------------------------------------------------------------
# rm
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rm_dir(tiny_tokenizer, tmp_path_factory):
    return save_tiny_rm(tmp_path_factory.mktemp("rm") / "final", tiny_tokenizer)


def test_rm_judge_higher_reward_wins(rm_dir):
    from rlhfkit.models.scorer import RewardScorer

    r = RewardScorer(str(rm_dir)).rewards([PROMPT, PROMPT], [GOOD, BAD])
    r_good, r_bad = float(r[0]), float(r[1])
    assert r_good != r_bad
    judge = RMJudge(str(rm_dir))
    v = judge.judge(PROMPT, GOOD, BAD)
    assert v.winner == ("a" if r_good > r_bad else "b")
    assert v.confidence == pytest.approx(1 / (1 + math.exp(-abs(r_good - r_bad))), abs=1e-5)
    assert v.raw["reward_a"] == pytest.approx(r_good, abs=1e-5)
    # no position bias: the other order names the same response, with the same confidence
    w = judge.judge(PROMPT, BAD, GOOD)
    assert w.winner == {"a": "b", "b": "a"}[v.winner] and w.confidence == v.confidence
    assert judge.judge(PROMPT, GOOD, GOOD).winner == "tie"
    assert judge.judge_id.startswith(f"rm:{rm_dir}#")


def test_rm_judge_scores_each_response_once(rm_dir):
    judge = RMJudge(str(rm_dir))
    calls = []
    real = judge.scorer.rewards
    judge.scorer.rewards = lambda p, r: calls.append(r) or real(p, r)
    outcomes, _ = judge_pairs(judge, [(PROMPT, GOOD, BAD)])
    assert outcomes[0].status == "agree" and len(calls) == 2


def test_rm_judge_refuses_an_untrained_model(tiny_tokenizer, tmp_path, tiny_model_dir):
    with pytest.raises(JudgeError, match="no such folder"):
        RMJudge(str(tmp_path / "missing"))
    untrained = save_tiny_rm(tmp_path / "untrained", tiny_tokenizer, trained=False)
    with pytest.raises(JudgeError, match="not a reward model trained by `rlhfkit rm train`"):
        RMJudge(str(untrained))
