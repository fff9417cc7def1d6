"""Reward model: (prompt, response) -> scalar, trained with the Bradley-Terry loss on preference pairs.

One plain function, read top to bottom, on the same plumbing as DPO (loop.fit: accumulation, clipping, NaN guard,
metrics, checkpoints, exact resume; precision; LoRA). What makes it cheap on a CPU:
- one backbone forward per pair over a packed [prompt, chosen, rejected] group (the prompt computed once);
- no LM head at all: the scalar head reads one hidden state per response (its last token, models/heads.py);
- packing without padding, and selective activation checkpointing (as DPO).
After training, the mean and standard deviation of the rewards of the training responses are stored in the
model's config (with how inputs were tokenised), so `rlhfkit rm score` can map rewards to 0..1.
"""
from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from rlhfkit.config import RewardConfig
from rlhfkit.data.augment import with_degenerate_negatives
from rlhfkit.data.pairs import PairData, pack
from rlhfkit.data.tokenize import wants_chat_template
from rlhfkit.errors import RlhfkitError
from rlhfkit.eval.reward import pairwise_accuracy
from rlhfkit.losses.preference import bradley_terry_loss
from rlhfkit.models.forward import native_bf16
from rlhfkit.models.heads import RewardScores, packed_rewards
from rlhfkit.models.scorer import stats_of
from rlhfkit.trainers import loop


# ----------------------------------------------------------------------------------------------
# pieces the loop composes
# ----------------------------------------------------------------------------------------------
def margins_of(data: PairData, idx: Sequence[int], device: torch.device) -> Optional[torch.Tensor]:
    """(B,) margins of the pairs (0 where a pair has none), or None when no pair of the batch has one."""
    vals = [data.margins[i] if i < len(data.margins) else None for i in idx]
    if all(v is None for v in vals):
        return None
    return torch.tensor([0.0 if v is None else float(v) for v in vals], device=device)


def rm_losses(rewards: torch.Tensor, margin: Optional[torch.Tensor], cfg: RewardConfig) -> tuple[torch.Tensor, dict]:
    """(2B,) rewards in chosen-first order -> (B,) Bradley-Terry losses and the batch's metrics."""
    c, r = rewards.view(2, -1)                                             # (B,), (B,)
    losses = bradley_terry_loss(c, r, margin if cfg.use_margin else None, cfg.center_rewards_coefficient)
    d = (c - r).detach()
    return losses, {"train/loss": losses.detach().mean().item(),
                    "train/accuracy": pairwise_accuracy(d),
                    "train/margin": d.mean().item(),
                    "rewards/chosen": c.detach().mean().item(), "rewards/rejected": r.detach().mean().item()}


@torch.no_grad()
def pair_rewards(model: Any, data: PairData, cfg: Any, pad_id: int, device: torch.device,
                 indices: Optional[Sequence[int]] = None, desc: Optional[str] = None) -> torch.Tensor:
    """(n, 2) fp32 rewards of the pairs (all, or `indices`): [:, 0] chosen, [:, 1] rejected. Batches group
    similar lengths; the order of the result follows `indices`."""
    model.eval()
    indices = list(range(len(data.pairs))) if indices is None else list(indices)
    lengths = data.lengths()
    order = sorted(range(len(indices)), key=lambda k: -lengths[indices[k]])
    out = torch.zeros(len(indices), 2)
    bar = loop.progress_bar(len(indices), 0, desc, bool(desc) and getattr(cfg, "progress", True))
    for start in range(0, len(order), cfg.batch_size):
        ks = order[start:start + cfg.batch_size]
        batch = pack([data.pairs[indices[k]] for k in ks], pad_id, cfg, device)
        with loop.inference_autocast(device, cfg.precision):
            rewards = packed_rewards(model, batch).float().cpu()           # (2B,)
        out[torch.tensor(ks)] = rewards.view(2, -1).T
        bar.update(len(ks))
    bar.close()
    return out


def evaluate(model: Any, data: PairData, cfg: RewardConfig, pad_id: int, device: torch.device) -> dict:
    """eval/loss, eval/accuracy, eval/margin over a held-out set."""
    rw = pair_rewards(model, data, cfg, pad_id, device)
    margin = margins_of(data, range(len(data.pairs)), torch.device("cpu"))
    losses = bradley_terry_loss(rw[:, 0], rw[:, 1], margin if cfg.use_margin else None)
    d = rw[:, 0] - rw[:, 1]
    return {"eval/loss": losses.mean().item(),
            "eval/accuracy": pairwise_accuracy(d),
            "eval/margin": d.mean().item()}


def reward_statistics(model: Any, train: PairData, cfg: RewardConfig, pad_id: int,
                      device: torch.device) -> tuple[float, float, int]:
    """(mean, std, responses) of the rewards of training responses (both sides of up to cfg.stats_pairs pairs,
    a seeded sample)."""
    n = len(train.pairs)
    idx = list(range(n))
    if 0 < cfg.stats_pairs < n:
        idx = sorted(random.Random(cfg.seed).sample(idx, cfg.stats_pairs))
    rw = pair_rewards(model, train, cfg, pad_id, device, idx, desc="reward statistics")
    mean, std = stats_of(rw.flatten())
    return mean, std, rw.numel()


def with_degenerate_negatives_data(train: PairData, tokenizer: Any, cfg: RewardConfig) -> PairData:
    """train with cfg.degenerate_negatives extra pairs per real pair (data/augment.py), appended after the real
    ones; they carry no margin (`margins_of` reads pairs past the end of `margins` as margin-less)."""
    special = set(tokenizer.all_special_ids)
    vocab = [i for i in range(len(tokenizer)) if i not in special]
    pairs = with_degenerate_negatives(train.pairs, cfg.degenerate_negatives, seed=cfg.seed,
                                      eos_id=tokenizer.eos_token_id, vocab=vocab)
    return PairData(pairs, margins=train.margins)


def load_rm_for_training(cfg: RewardConfig, device: torch.device) -> Any:
    """The starting reward model: a new scalar head on cfg.model's backbone (or a reward model's own head), with
    LoRA adapters (and a fully trained head) when cfg.lora."""
    from rlhfkit.models.load import load_reward_model

    model = load_reward_model(cfg.model)
    loop.disable_dropout(model)
    if cfg.lora:
        model = loop.apply_lora(model, cfg, task_type="SEQ_CLS")
        if cfg.precision == "bf16" and not native_bf16(device):
            loop.fp32_adapters(model)
    loop.enable_activation_checkpointing(model, cfg.activation_checkpointing)
    return model.to(device)


def _starting_model_name(cfg: RewardConfig) -> str:
    from rlhfkit.models.load import DEFAULT_MODEL

    return cfg.model or DEFAULT_MODEL


# ----------------------------------------------------------------------------------------------
# the trainer
# ----------------------------------------------------------------------------------------------
def train_rm(cfg: RewardConfig) -> Path:
    """Train a reward model on cfg.data; returns the final model folder (out/final), loadable with
    `rlhfkit.models.load.load_reward_model` or `AutoModelForSequenceClassification.from_pretrained`."""
    from rlhfkit.models.load import REWARD_INFO_KEY

    cfg, out, accelerator = loop.start_run(cfg)
    device = accelerator.device

    # 1. data: load -> validate (errors stop here) -> split -> base-model guard -> tokenise
    tokenizer, train, ev, pad_id = loop.prepare_pairs(cfg, out, accelerator, _starting_model_name(cfg))
    n_real = len(train.pairs)
    if cfg.degenerate_negatives > 0:
        train = with_degenerate_negatives_data(train, tokenizer, cfg)
        print(f"[rlhfkit] reward model: {len(train.pairs) - n_real} degenerate-negative pairs added to {n_real} "
              "real ones (--degenerate-negatives)", file=sys.stderr)

    # 2. model: backbone + scalar head (seeded by start_run), LoRA or full
    model = load_rm_for_training(cfg, device)
    trainable, total = loop.count_params(model)
    print(f"[rlhfkit] reward model: {trainable:,} trainable of {total:,} parameters"
          f"{' (LoRA + head)' if cfg.lora else ''}", file=sys.stderr)

    # 3. one micro-batch: one backbone forward over [prompt, chosen, rejected] rows, rewards at the last tokens
    def micro_step(scorer: torch.nn.Module, idx: list[int]) -> tuple[torch.Tensor, dict, int]:
        batch = pack([train.pairs[i] for i in idx], pad_id, cfg, device)
        with loop.autocast(device, cfg.precision):
            rewards = scorer(batch).float()                                # (2B,) chosen first
        losses, m = rm_losses(rewards, margins_of(train, idx, device), cfg)
        return losses.mean(), m, batch.num_tokens

    # 4. the loop (loop.fit: accumulation, clipping, NaN guard, metrics, eval, checkpoints, resume)
    evaluate_fn = (lambda: evaluate(model, ev, cfg, pad_id, device)) if ev else None
    loop.fit(cfg, out, name="rm", accelerator=accelerator, model=model, module=RewardScores(model),
             tokenizer=tokenizer, lengths=train.lengths(), micro_step=micro_step, evaluate=evaluate_fn,
             show={"train/loss": "loss", "train/accuracy": "acc"}, unit="pairs")

    # 5. reward statistics of the training responses, stored with the model; then out/final
    mean, std, n = reward_statistics(model, PairData(train.pairs[:n_real]), cfg, pad_id, device)   # real pairs only
    info = {"mean": mean, "std": std, "responses": n, "use_chat_template": wants_chat_template(tokenizer, cfg.use_chat_template),
            "max_length": cfg.max_length, "max_prompt_length": cfg.max_prompt_length}
    base = model.get_base_model() if loop.is_peft(model) else model
    setattr(base.config, REWARD_INFO_KEY, info)
    print(f"[rlhfkit] training rewards: mean {mean:+.4f}, std {std:.4f} over {n} responses "
          "(stored with the model; scores are sigmoid((r - mean) / std))", file=sys.stderr)
    final = loop.save_final(model, tokenizer, out, adapter_only=cfg.save_adapter_only)
    print(f"[rlhfkit] saved {final}", file=sys.stderr)
    return final


# ----------------------------------------------------------------------------------------------
# rlhfkit rm eval
# ----------------------------------------------------------------------------------------------
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
    pad_id = loop.pad_token_id(tokenizer)
    rw = pair_rewards(model, pairs, cfg, pad_id, device, desc="scoring pairs")
    lc = [len(p.chosen_ids) for p in pairs.pairs]   # response tokens (with the EOS)
    lr = [len(p.rejected_ids) for p in pairs.pairs]
    report = reward_report(rw[:, 0], rw[:, 1], lc, lr)
    report["model"], report["data"] = str(model_name), str(data)
    return report
