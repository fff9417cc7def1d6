"""Evaluate a trained model on a preference file, without training: `rlhfkit dpo eval` (the policy's implicit
reward against its reference: accuracy, margins, log-probs) and `rlhfkit rm eval` (a reward model's accuracy,
calibration and length bias, `eval/reward.py`). Both reuse the trainers' own scoring, so the numbers are the ones a
training run logs as eval/...
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import torch

from rlhfkit.config import DPOConfig, RewardConfig
from rlhfkit.data.pairs import PairData, load_pair_data
from rlhfkit.data.tokenize import pad_token_id
from rlhfkit.errors import RlhfkitError
from rlhfkit.models.forward import resolve_precision
from rlhfkit.trainers import dpo
from rlhfkit.trainers.reward import pair_rewards


def eval_dpo(cfg: DPOConfig) -> dict:
    """`rlhfkit dpo eval` (and the old `rlhfkit dpo --eval-only`): eval/... metrics of cfg.model against
    cfg.reference on cfg.eval_data."""
    from rlhfkit.models.load import load_model, load_tokenizer

    if not cfg.eval_data:
        raise RlhfkitError("`dpo eval` needs --eval-data FILE")
    reference = cfg.reference or _reference_from_run(cfg.model)
    if not reference:
        raise RlhfkitError("`dpo eval` needs --reference MODEL (or --model pointing at a run's final/ folder, "
                           "whose config names the starting model)")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg = resolve_precision(cfg, device)
    tokenizer = load_tokenizer(cfg.model)
    _, ev, _ = load_pair_data(cfg, tokenizer)
    pad_id = pad_token_id(tokenizer)
    policy = load_model(cfg.model, attn_implementation="sdpa").to(device)
    ref = load_model(reference, dtype=dpo.frozen_dtype(cfg.precision, device), attn_implementation="sdpa",
                     quiet=True).to(device)
    return dpo.evaluate(policy, ref, ev, cfg, pad_id, device, adapter_off_ref=False)


def _reference_from_run(model: Optional[str]) -> Optional[str]:
    """For runs/x/final, the starting model recorded in runs/x/config.yaml."""
    if not model:
        return None
    cfg_path = Path(model).parent / "config.yaml"
    if cfg_path.is_file():
        import yaml

        saved = yaml.safe_load(cfg_path.read_text()) or {}
        from rlhfkit.models.load import DEFAULT_MODEL

        return saved.get("reference") or saved.get("model") or DEFAULT_MODEL
    return None


def eval_rm(model_name: str, data: str, *, data_format: Optional[str] = None, batch_size: int = 8,
            progress: bool = True) -> dict:
    """The `rlhfkit rm eval` report (rlhfkit.eval.reward.reward_report) of a reward model on a preference file."""
    from rlhfkit.data.io import load_preferences
    from rlhfkit.data.pairs import tokenize_pairs
    from rlhfkit.eval.reward import reward_report
    from rlhfkit.models.load import load_reward_model, load_tokenizer, reward_info
    from rlhfkit.models.scorer import DEFAULT_MAX_LENGTH, DEFAULT_MAX_PROMPT_LENGTH

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = load_reward_model(model_name).to(device)
    tokenizer = load_tokenizer(model_name, quiet=True)
    info = reward_info(model)
    if not info:
        print(f"[rlhfkit] {model_name} was not trained by `rlhfkit rm train` (no stored statistics): its head may "
              "be untrained", file=sys.stderr)
    cfg = RewardConfig(max_length=info.get("max_length", DEFAULT_MAX_LENGTH),
                       max_prompt_length=info.get("max_prompt_length", DEFAULT_MAX_PROMPT_LENGTH),
                       use_chat_template=info.get("use_chat_template"), batch_size=batch_size, precision="fp32",
                       progress=progress)
    examples = load_preferences(data, fmt=data_format)
    if not examples:
        raise RlhfkitError(f"{data}: no pairs to evaluate")
    pairs = PairData(tokenize_pairs(examples, tokenizer, cfg, "eval"))
    pad_id = pad_token_id(tokenizer)
    rw = pair_rewards(model, pairs, cfg, pad_id, device, desc="scoring pairs")
    lc = [len(p.chosen_ids) for p in pairs.pairs]   # response tokens (with the EOS)
    lr = [len(p.rejected_ids) for p in pairs.pairs]
    report = reward_report(rw[:, 0], rw[:, 1], lc, lr)
    report["model"], report["data"] = str(model_name), str(data)
    return report
