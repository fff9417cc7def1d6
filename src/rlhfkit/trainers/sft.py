"""Supervised fine-tuning: next-token loss on completion tokens (the step before RLHF).

Same plumbing as DPO (trainers/run.py): precision, LoRA, packing, checkpoints and exact resume, metrics, NaN guard.
With `packing`, several examples share a row with attention kept per example (no cross-contamination), so
no compute is spent on padding; without it each example gets its own row, padded to the longest.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from rlhfkit.config import SFTConfig
from rlhfkit.console import note
from rlhfkit.data.collate import PackedBatch, pack_groups
from rlhfkit.data.tokenize import TokenizedCompletion, pad_token_id, tokenize_completion
from rlhfkit.errors import RlhfkitError
from rlhfkit.models.forward import CompletionLogprobs, autocast, completion_logprobs
from rlhfkit.models.setup import prepare_trainable, save_final
from rlhfkit.trainers.run import Run


def tokenize_examples(examples: Sequence, tokenizer: Any, cfg: SFTConfig, what: str) -> list[TokenizedCompletion]:
    out = []
    for ex in examples:
        if ex.prompt == "":  # plain text: every token is a target, the first one is the context
            ids = tokenizer(ex.completion, add_special_tokens=False)["input_ids"][: cfg.max_length - 1]
            out.append(TokenizedCompletion(ids[:1], ids[1:] + [tokenizer.eos_token_id]))
            continue
        t = tokenize_completion(ex.prompt, ex.completion, tokenizer, max_length=cfg.max_length,
                                max_prompt_length=cfg.max_prompt_length, use_chat_template=cfg.use_chat_template)
        if not cfg.completion_only_loss:  # train on the prompt too: keep one token of context
            t = TokenizedCompletion(t.prompt_ids[:1], t.prompt_ids[1:] + t.completion_ids, t.truncated,
                                    t.prefix_mismatch)
        out.append(t)
    truncated = sum(t.truncated for t in out)
    if truncated:
        note(f"{what}: {truncated} of {len(out)} examples truncated to max_length={cfg.max_length}")
    return out


def pack(examples: Sequence[TokenizedCompletion], pad_id: int, cfg: SFTConfig, device: torch.device) -> PackedBatch:
    groups = [(e.prompt_ids, [e.completion_ids]) for e in examples]
    return pack_groups(groups, pad_id=pad_id, pack=cfg.packing, row_length=cfg.max_length).to(device)


def sft_loss(token_logps: torch.Tensor, batch: PackedBatch) -> tuple[torch.Tensor, dict]:
    """Mean negative log-likelihood over all completion tokens of the batch (token mean, as TRL's SFT)."""
    nll = -token_logps                                                   # (N,)
    loss = nll.mean()
    return loss, {"loss": loss.item(), "tokens": float(nll.numel())}


@torch.no_grad()
def evaluate(model: Any, data: list[TokenizedCompletion], cfg: SFTConfig, pad_id: int,
             device: torch.device) -> dict:
    model.eval()
    total, n = 0.0, 0
    for start in range(0, len(data), cfg.batch_size):
        batch = pack(data[start:start + cfg.batch_size], pad_id, cfg, device)
        with autocast(device, cfg.precision):
            lp = completion_logprobs(model, batch).float()
        total += -lp.sum().item()
        n += lp.numel()
    return {"eval/loss": total / max(n, 1)}


def train_sft(cfg: SFTConfig) -> Path:
    """Fine-tune cfg.model on cfg.data; returns the final model folder (out/final)."""
    from rlhfkit.data.sft import load_sft_examples, split_sft_examples
    from rlhfkit.models.load import load_model, load_tokenizer

    if not cfg.data:
        raise RlhfkitError("no training data: give --data FILE")
    with Run.start(cfg, "sft") as run:
        cfg, device = run.cfg, run.device

        # 1. data: load (errors stop here) -> split -> tokenise
        tokenizer = load_tokenizer(cfg.model)
        train_ex = load_sft_examples(cfg.data)
        eval_ex = load_sft_examples(cfg.eval_data) if cfg.eval_data else None
        if eval_ex is None and cfg.eval_fraction > 0:
            train_ex, eval_ex = split_sft_examples(train_ex, cfg.eval_fraction, cfg.seed)
        train = tokenize_examples(train_ex, tokenizer, cfg, "train")
        ev = tokenize_examples(eval_ex, tokenizer, cfg, "eval") if eval_ex else None
        pad_id = pad_token_id(tokenizer)
        run.save_config()

        # 2. model (full or LoRA), dropout off
        model = prepare_trainable(load_model(cfg.model, attn_implementation="sdpa"), cfg, device)

        # 3. optimizer and schedule, resume (weights, optimizer, schedule, RNG, data position)
        lengths = [len(t.prompt_ids) + len(t.completion_ids) for t in train]
        evaluate_fn = (lambda: evaluate(model, ev, cfg, pad_id, device)) if ev else None
        scorer = run.begin(model, CompletionLogprobs(model), tokenizer, lengths, evaluate=evaluate_fn)

        # 4. per micro-batch: per-token log-probs of the completions, the token-mean NLL, its backward
        for micro_batches in run.steps():
            for idx, sync in micro_batches:
                with sync:
                    batch = pack([train[j] for j in idx], pad_id, cfg, device)
                    with autocast(device, cfg.precision):
                        lp = scorer(batch, per_token=True).float()
                    loss, m = sft_loss(lp, batch)
                    run.backward(loss, {"train/loss": m["loss"]}, examples=len(idx), tokens=batch.num_tokens)
            # 5. clip, optimizer step (skipped on a non-finite loss or gradient), metrics, eval, checkpoint
            run.update()
        run.finish()

        # 6. the model under out/final
        final = save_final(model, tokenizer, run.out, adapter_only=cfg.save_adapter_only)
        note(f"saved {final}")
        return final
