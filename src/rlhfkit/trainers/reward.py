"""Reward model: (prompt, response) -> scalar, trained with the Bradley-Terry loss on preference pairs.

One plain function, read top to bottom, on the same plumbing as DPO (trainers/run.py: accumulation, clipping, NaN
guard, metrics, checkpoints, exact resume; precision; LoRA). What makes it cheap on a CPU:
- one backbone forward per pair over a packed [prompt, chosen, rejected] group (the prompt computed once);
- no LM head at all: the scalar head reads one hidden state per response (its last token, models/heads.py);
- packing without padding, and selective activation checkpointing (as DPO).
After training, the mean and standard deviation of the rewards of the training responses are stored in the
model's config (with how inputs were tokenised), so `rlhfkit rm score` can map rewards to 0..1.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from rlhfkit.config import RewardConfig
from rlhfkit.console import note, progress_bar
from rlhfkit.data.augment import with_degenerate_negatives
from rlhfkit.data.pairs import PairData, load_pair_data, pack
from rlhfkit.data.tokenize import check_starting_model, pad_token_id, wants_chat_template
from rlhfkit.errors import RlhfkitError
from rlhfkit.losses.preference import bradley_terry_loss, pairwise_accuracy
from rlhfkit.models.forward import autocast, inference_autocast
from rlhfkit.models.heads import RewardScores, packed_rewards
from rlhfkit.models.scorer import stats_of
from rlhfkit.models.setup import count_params, is_peft, prepare_trainable, save_final
from rlhfkit.trainers.run import Run


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
    bar = progress_bar(len(indices), 0, desc, bool(desc) and getattr(cfg, "progress", True))
    for start in range(0, len(order), cfg.batch_size):
        ks = order[start:start + cfg.batch_size]
        batch = pack([data.pairs[indices[k]] for k in ks], pad_id, cfg, device)
        with inference_autocast(device, cfg.precision):
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

    return prepare_trainable(load_reward_model(cfg.model), cfg, device, task_type="SEQ_CLS")


def _starting_model_name(cfg: RewardConfig) -> str:
    from rlhfkit.models.load import DEFAULT_MODEL

    return cfg.model or DEFAULT_MODEL


# ----------------------------------------------------------------------------------------------
# the trainer
# ----------------------------------------------------------------------------------------------
def train_rm(cfg: RewardConfig) -> Path:
    """Train a reward model on cfg.data; returns the final model folder (out/final), loadable with
    `rlhfkit.models.load.load_reward_model` or `AutoModelForSequenceClassification.from_pretrained`."""
    from rlhfkit.models.load import REWARD_INFO_KEY, load_tokenizer

    with Run.start(cfg, "rm") as run:
        cfg, device = run.cfg, run.device

        # 1. data: load -> validate (errors stop here) -> split -> base-model guard -> tokenise
        tokenizer = load_tokenizer(cfg.model)
        train, ev, conversational = load_pair_data(cfg, tokenizer)
        check_starting_model(tokenizer, _starting_model_name(cfg), conversational, cfg)
        if not train.pairs:
            raise RlhfkitError(f"{cfg.data}: no training pairs")
        pad_id = pad_token_id(tokenizer)
        run.save_config()
        n_real = len(train.pairs)
        if cfg.degenerate_negatives > 0:
            train = with_degenerate_negatives_data(train, tokenizer, cfg)
            note(f"reward model: {len(train.pairs) - n_real} degenerate-negative pairs added to {n_real} real ones "
                 "(--degenerate-negatives)")

        # 2. model: backbone + scalar head (seeded by Run.start), LoRA or full
        model = load_rm_for_training(cfg, device)
        trainable, total = count_params(model)
        note(f"reward model: {trainable:,} trainable of {total:,} parameters{' (LoRA + head)' if cfg.lora else ''}")

        # 3. optimizer and schedule, resume (weights, optimizer, schedule, RNG, data position)
        evaluate_fn = (lambda: evaluate(model, ev, cfg, pad_id, device)) if ev else None
        scorer = run.begin(model, RewardScores(model), tokenizer, train.lengths(), evaluate=evaluate_fn,
                           show={"train/loss": "loss", "train/accuracy": "acc"}, unit="pairs")

        # 4. per micro-batch: one backbone forward over packed [prompt, chosen, rejected] rows, the rewards at the
        #    responses' last tokens, the Bradley-Terry loss, its backward
        for micro_batches in run.steps():
            for idx, sync in micro_batches:
                with sync:
                    batch = pack([train.pairs[i] for i in idx], pad_id, cfg, device)
                    with autocast(device, cfg.precision):
                        rewards = scorer(batch).float()                        # (2B,) chosen first
                    losses, m = rm_losses(rewards, margins_of(train, idx, device), cfg)
                    run.backward(losses.mean(), m, examples=len(idx), tokens=batch.num_tokens)
            # 5. clip, optimizer step (skipped on a non-finite loss or gradient), metrics, eval, checkpoint
            run.update()
        run.finish()

        # 6. reward statistics of the training responses (real pairs only), stored with the model; out/final
        mean, std, n = reward_statistics(model, PairData(train.pairs[:n_real]), cfg, pad_id, device)
        info = {"mean": mean, "std": std, "responses": n,
                "use_chat_template": wants_chat_template(tokenizer, cfg.use_chat_template),
                "max_length": cfg.max_length, "max_prompt_length": cfg.max_prompt_length}
        base = model.get_base_model() if is_peft(model) else model
        setattr(base.config, REWARD_INFO_KEY, info)
        note(f"training rewards: mean {mean:+.4f}, std {std:.4f} over {n} responses (stored with the model; scores "
             "are sigmoid((r - mean) / std))")
        final = save_final(model, tokenizer, run.out, adapter_only=cfg.save_adapter_only)
        note(f"saved {final}")
        return final
