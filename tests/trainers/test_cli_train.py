"""The training CLI after the move to the cli/ package: `rlhfkit dpo eval` and its old spelling give the same
numbers, the old `activation_checkpointing: lean` means --lean, and the flags the trainers never read are gone."""
import json

import pytest
from synthetic import write_pairs

from rlhfkit.cli import build_parser, main
from rlhfkit.config import DPOConfig, PPOConfig, SFTConfig, build_config


def test_dpo_eval_equals_the_old_eval_only_flag(tiny_model_dir, tmp_path, capsys):
    pairs = write_pairs(tmp_path / "p.jsonl", 24)
    common = ["--model", str(tiny_model_dir), "--reference", str(tiny_model_dir), "--eval-data", str(pairs),
              "--json", "--precision", "fp32", "--max-length", "64", "--max-prompt-length", "32"]
    assert main(["dpo", "eval", *common]) == 0
    new = json.loads(capsys.readouterr().out)
    assert main(["dpo", "--eval-only", *common]) == 0
    old = json.loads(capsys.readouterr().out)
    assert new == old
    # the policy is its own reference: every implicit reward is 0, so the loss is log 2 and no pair is "won"
    assert new["eval/rewards/margins"] == pytest.approx(0.0, abs=1e-6)
    assert new["eval/loss"] == pytest.approx(0.693147, abs=1e-5)
    assert new["eval/rewards/accuracies"] == 0.0


def test_dpo_eval_without_data_is_a_one_line_error(tiny_model_dir, capsys):
    assert main(["dpo", "eval", "--model", str(tiny_model_dir)]) == 2
    assert "needs --eval-data" in capsys.readouterr().err


def test_old_lean_spelling_is_the_lean_flag():
    cfg = build_config(PPOConfig, reward_fn="m:f", activation_checkpointing="lean")
    assert cfg.lean and cfg.activation_checkpointing == "selective"
    assert build_config(PPOConfig, reward_fn="m:f").lean                    # PPO's default
    assert not build_config(DPOConfig).lean
    assert not build_config(DPOConfig, lean=False, activation_checkpointing="off").lean


@pytest.mark.parametrize("verb,flag", [("ppo", "--data-format"), ("ppo", "--group-by-length"),
                                       ("sft", "--data-format"), ("sft", "--allow-base-model")])
def test_flags_no_trainer_reads_are_gone(verb, flag):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args([verb, flag, "x"] if "format" in flag else [verb, flag])
    assert e.value.code == 2
    assert not hasattr(SFTConfig(), "data_format")
