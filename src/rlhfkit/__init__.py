"""rlhfkit: align a fine-tuned language model with human preferences.

The Python API mirrors the CLI: `train_dpo(DPOConfig(...))`, `train_sft(SFTConfig(...))`,
`train_rm(RewardConfig(...))`, `train_ppo(PPOConfig(...), reward_fn=None)`,
`score(reward_model, prompts, responses)`, `evaluate(policy, prompts, reward_model=...)`,
`write_report(run_dirs)`, `run_demo(method="dpo")`, `load_judge("rm:PATH")`. Heavy modules
(torch, transformers) load on first use, so `import rlhfkit` stays fast.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["DPOConfig", "PPOConfig", "RewardConfig", "SFTConfig", "train_ppo", "train_dpo", "train_rm", "train_sft",
           "score", "RewardScorer", "load_reward_model", "load_preferences", "evaluate", "write_report", "run_demo",
           "load_judge", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "train_ppo":
        from rlhfkit.trainers.ppo import train_ppo

        return train_ppo
    if name == "train_rm":
        from rlhfkit.trainers.reward import train_rm

        return train_rm
    if name in ("score", "RewardScorer"):
        from rlhfkit.models import scorer

        return getattr(scorer, name)
    if name == "load_reward_model":
        from rlhfkit.models.load import load_reward_model

        return load_reward_model
    if name in ("DPOConfig", "SFTConfig", "RewardConfig", "PPOConfig"):
        from rlhfkit import config

        return getattr(config, name)
    if name == "train_dpo":
        from rlhfkit.trainers.dpo import train_dpo

        return train_dpo
    if name == "train_sft":
        from rlhfkit.trainers.sft import train_sft

        return train_sft
    if name == "load_preferences":
        from rlhfkit.data.io import load_preferences

        return load_preferences
    if name == "evaluate":
        from rlhfkit.eval.winrate import evaluate

        return evaluate
    if name == "write_report":
        from rlhfkit.eval.report import write_report

        return write_report
    if name == "run_demo":
        from rlhfkit.demo import run_demo

        return run_demo
    if name == "load_judge":
        from rlhfkit.judges import load_judge

        return load_judge
    raise AttributeError(f"module 'rlhfkit' has no attribute {name!r}")
