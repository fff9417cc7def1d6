"""Supervised fine-tuning: next-token loss on completion tokens (the step before RLHF).

Same plumbing as DPO (loop.py): precision, LoRA, packing, checkpoints and exact resume, metrics, NaN guard.
With `packing`, several examples share a row with attention kept per example (no cross-contamination), so
no compute is spent on padding; without it each example gets its own row, padded to the longest.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from rlhfkit.config import SFTConfig, save_config, to_dict
from rlhfkit.data.collate import PackedBatch, pack_groups
from rlhfkit.data.tokenize import TokenizedCompletion, tokenize_completion
from rlhfkit.errors import RlhfkitError
from rlhfkit.models.forward import CompletionLogprobs, completion_logprobs, native_bf16
from rlhfkit.trainers import loop


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
        print(f"[rlhfkit] {what}: {truncated} of {len(out)} examples truncated to max_length={cfg.max_length}",
              file=sys.stderr)
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
        with loop.autocast(device, cfg.precision):
            lp = completion_logprobs(model, batch).float()
        total += -lp.sum().item()
        n += lp.numel()
    return {"eval/loss": total / max(n, 1)}


def train_sft(cfg: SFTConfig) -> Path:
    """Fine-tune cfg.model on cfg.data; returns the final model folder (out/final)."""
    from accelerate import Accelerator

    from rlhfkit.data.sft import load_sft_examples, split_sft_examples
    from rlhfkit.models.load import load_model, load_tokenizer

    if not cfg.output:
        raise RlhfkitError("give --output DIR (rerunning on the same folder resumes)")
    if not cfg.data:
        raise RlhfkitError("no training data: give --data FILE")
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision="no")
    device, main = accelerator.device, accelerator.is_main_process
    cfg = loop.resolve_precision(cfg, device)
    loop.seed_everything(cfg.seed)

    # 1. data: load (errors stop here) -> split -> tokenise
    tokenizer = load_tokenizer(cfg.model)
    train_ex = load_sft_examples(cfg.data)
    eval_ex = load_sft_examples(cfg.eval_data) if cfg.eval_data else None
    if eval_ex is None and cfg.eval_fraction > 0:
        train_ex, eval_ex = split_sft_examples(train_ex, cfg.eval_fraction, cfg.seed)
    train = tokenize_examples(train_ex, tokenizer, cfg, "train")
    ev = tokenize_examples(eval_ex, tokenizer, cfg, "eval") if eval_ex else None
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if main:
        save_config(cfg, out / "config.yaml")

    # 2. model (full or LoRA), dropout off
    model = load_model(cfg.model, attn_implementation="sdpa")
    loop.disable_dropout(model)
    if cfg.lora:
        model = loop.apply_lora(model, cfg)
        if cfg.precision == "bf16" and not native_bf16(device):
            loop.fp32_adapters(model)
    loop.enable_activation_checkpointing(model, cfg.activation_checkpointing)
    model.to(device)

    # 3. optimizer, schedule, resume
    total_steps, per_epoch = loop.total_optimizer_steps(len(train), cfg)
    optimizer = loop.make_optimizer(model, cfg)
    scheduler = loop.make_scheduler(optimizer, cfg, total_steps)
    scorer = CompletionLogprobs(model)
    scorer, optimizer = accelerator.prepare(scorer, optimizer)
    step, micro, skipped = 0, 0, 0
    ckpts = loop.checkpoint_dirs(out)
    if ckpts:
        state = loop.load_checkpoint(ckpts[-1], model, optimizer, scheduler)
        step, micro, skipped = state["step"], state["micro_step"], state["skipped"]
        loop.set_rng_state(state["rng"])
        print(f"[rlhfkit] resuming from {ckpts[-1]} (step {step} of {total_steps})", file=sys.stderr)
    logger = loop.MetricsLogger(out, cfg.report_to, to_dict(cfg), resume_step=step, enabled=main)
    guard = loop.NanGuard(cfg.max_bad_steps, skipped)
    lengths = [len(t.prompt_ids) + len(t.completion_ids) for t in train]
    epochs: dict[int, list[list[int]]] = {}

    # 4. the loop
    bar = loop.progress_bar(total_steps, step, "sft", cfg.progress and main)
    with loop.StopRequest() as stop:
        while step < total_steps:
            t0 = time.perf_counter()
            model.train()
            rows, tokens, ok = [], 0, True
            for a in range(cfg.gradient_accumulation_steps):
                epoch, i = divmod(micro, per_epoch)
                if epoch not in epochs:  # the epoch's batch order, computed once per epoch
                    epochs.clear()
                    epochs[epoch] = loop.epoch_batches(lengths, cfg.batch_size, epoch=epoch, seed=cfg.seed,
                                                       shuffle=cfg.shuffle, group_by_length=cfg.group_by_length)
                idx = epochs[epoch][i]
                micro += 1
                batch = pack([train[j] for j in idx], pad_id, cfg, device)
                with loop.autocast(device, cfg.precision):
                    lp = scorer(batch, per_token=True).float()
                loss, m = sft_loss(lp, batch)
                loss = loss / cfg.gradient_accumulation_steps
                if guard.check(loss.detach()):
                    accelerator.backward(loss)
                else:
                    ok = False
                rows.append(m)
                tokens += batch.num_tokens
            grad_norm = loop.apply_update(accelerator, model, optimizer, scheduler, guard, cfg.max_grad_norm, ok)
            if cfg.release_memory:
                loop.trim_freed_memory()
            step += 1
            if guard.should_stop():
                bar.close()
                logger.close()
                raise loop.TrainingStopped(loop.nan_stop_message(step, guard, out))
            dt = time.perf_counter() - t0
            metrics = {"train/loss": loop.mean_metrics(rows)["loss"], "grad_norm": grad_norm,
                       "learning_rate": scheduler.get_last_lr()[0], "epoch": micro / per_epoch,
                       "train/skipped_steps": guard.skipped, "perf/tokens_per_sec": tokens / dt,
                       "perf/step_seconds": dt}
            if ev and cfg.eval_steps > 0 and step % cfg.eval_steps == 0 and step < total_steps:
                metrics.update(evaluate(model, ev, cfg, pad_id, device))
            if step % cfg.logging_steps == 0 or step == total_steps:
                logger.log(step, metrics)
            bar.set_postfix(loss=f"{metrics['train/loss']:.4f}")
            bar.update(1)
            if main and ((cfg.save_steps > 0 and step % cfg.save_steps == 0 and step < total_steps
                          and guard.in_a_row == 0) or stop.requested):
                path = loop.save_checkpoint(out, step, model, tokenizer, optimizer, scheduler,
                                            {"micro_step": micro, "skipped": guard.skipped}, cfg.save_total_limit)
                if stop.requested:
                    bar.close()
                    logger.close()
                    raise loop.Interrupted(f"stopped at step {step}; checkpoint written to {path}. "
                                           "Rerun the same command to resume.")
    bar.close()

    # 5. final evaluation and save
    if ev:
        final_eval = evaluate(model, ev, cfg, pad_id, device)
        logger.log(step, final_eval)
        print(f"[rlhfkit] eval: loss={final_eval['eval/loss']:.4f}", file=sys.stderr)
    logger.close()
    final = loop.save_final(model, tokenizer, out, adapter_only=cfg.save_adapter_only)
    print(f"[rlhfkit] saved {final}", file=sys.stderr)
    return final
