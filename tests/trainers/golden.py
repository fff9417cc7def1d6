"""The tiny CPU fp32 runs whose first logged numbers are pinned in tests/assets/golden/ (one file per trainer).

They are the safety net for refactors of the training loops: the same config on the same tiny model must give the
same losses, gradient norms and metrics, step by step. `scripts/make_golden.py` writes the files from these runs;
tests/trainers/test_golden.py reruns them and compares. Regenerate only when a change is meant to alter the numbers
(a new default, a fixed bug), and say so in the commit.
"""
from __future__ import annotations

import json
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "golden"
STEPS = 6
# the numbers pinned per trainer (each also in every logged row of the run)
KEYS = {
    "sft": ["train/loss", "grad_norm", "learning_rate"],
    "dpo": ["train/loss", "grad_norm", "rewards/margins", "rewards/accuracies", "logps/chosen", "nll/chosen"],
    "rm": ["train/loss", "grad_norm", "train/accuracy", "train/margin"],
    "ppo": ["objective/scores", "objective/kl", "loss/policy_avg", "loss/value_avg", "grad_norm/policy",
            "grad_norm/value", "val/explained_variance", "response/length_mean", "kl_coef"],
}


def count_o(prompts, responses):
    """PPO's programmatic reward in the golden run: how often the letter 'o' appears."""
    return [r.count("o") / 4 for r in responses]


def _common(model_dir: Path, data: Path, out: Path) -> dict:
    return dict(model=str(model_dir), data=str(data), output=str(out), batch_size=8, max_steps=STEPS,
                precision="fp32", progress=False, save_steps=0, lr_scheduler="cosine", warmup_steps=2,
                max_length=64, max_prompt_length=32, seed=3)


def run(trainer: str, model_dir: Path, work: Path) -> list[dict]:
    """Train `trainer` for STEPS steps in `work` and return its logged rows, reduced to KEYS[trainer]."""
    from synthetic import write_pairs

    from rlhfkit.config import DPOConfig, PPOConfig, RewardConfig, SFTConfig, build_config
    from rlhfkit.trainers import dpo, ppo, reward, sft
    from rlhfkit.trainers.loop import read_metrics

    work.mkdir(parents=True, exist_ok=True)
    pairs = write_pairs(work / "pairs.jsonl", 96, seed=5)
    out = work / trainer
    if trainer == "sft":
        rows = [{"prompt": json.loads(line)["prompt"], "completion": json.loads(line)["chosen"]}
                for line in pairs.read_text().splitlines()]
        data = work / "sft.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
        sft.train_sft(build_config(SFTConfig, **_common(model_dir, data, out), learning_rate=1e-2,
                                   gradient_accumulation_steps=2))
    elif trainer == "dpo":
        dpo.train_dpo(build_config(DPOConfig, **_common(model_dir, pairs, out), learning_rate=1e-2, beta=0.1,
                                   gradient_accumulation_steps=2, rpo_alpha=0.5))
    elif trainer == "rm":
        reward.train_rm(build_config(RewardConfig, **_common(model_dir, pairs, out), learning_rate=3e-3))
    elif trainer == "ppo":
        cfg = _common(model_dir, pairs, out)
        cfg.update(max_steps=3, max_new_tokens=8, max_length=48, learning_rate=3e-3, temperature=1.0,
                   num_mini_batches=2, kl_target=6.0, reward_fn="golden:count_o")
        ppo.train_ppo(build_config(PPOConfig, **cfg))
    else:
        raise ValueError(trainer)
    keys = KEYS[trainer]
    return [{"step": r["step"], **{k: r[k] for k in keys}} for r in read_metrics(out) if keys[0] in r]
