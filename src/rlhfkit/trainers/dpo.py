"""Direct preference optimisation (Rafailov et al. 2023) and its variants (IPO, robust/cDPO, hinge).

One plain function, read top to bottom. What makes it fast on a CPU (docs/performance.md):
- prefix sharing: one packed group [prompt, chosen, rejected] per pair, so the prompt is computed once;
- packing: groups of a batch share rows (per-group attention mask), so no padding to the longest pair;
- completion-only log-probs: the LM head runs only on the positions that predict completion tokens;
- a frozen reference held resident in bf16 (no per-forward weight casts), or the LoRA adapter switched off,
  or its log-probs precomputed once (`precompute_ref`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from rlhfkit.config import DPOConfig, save_config, to_dict
from rlhfkit.data.collate import PackedBatch, pack_pairs
from rlhfkit.data.tokenize import TokenizedPair, tokenize_pair
from rlhfkit.errors import RlhfkitError
from rlhfkit.losses.preference import preference_loss
from rlhfkit.models.forward import CompletionLogprobs, native_bf16, sequence_logprobs
from rlhfkit.trainers import loop

REF_CACHE = "ref_logps.pt"


@dataclass
class PairData:
    """Tokenised pairs and, when precomputed, their reference log-probs (n, 2): [:, 0] chosen, [:, 1] rejected."""

    pairs: list[TokenizedPair]
    ref_logps: Optional[torch.Tensor] = None

    def lengths(self) -> list[int]:
        return [len(p.prompt_ids) + len(p.chosen_ids) + len(p.rejected_ids) for p in self.pairs]


# ----------------------------------------------------------------------------------------------
# pieces the loop composes
# ----------------------------------------------------------------------------------------------
def tokenize_pairs(examples: Sequence, tokenizer: Any, cfg: DPOConfig, what: str) -> list[TokenizedPair]:
    out = [tokenize_pair(ex, tokenizer, max_length=cfg.max_length, max_prompt_length=cfg.max_prompt_length,
                         use_chat_template=cfg.use_chat_template) for ex in examples]
    truncated = sum(p.truncated for p in out)
    mismatch = sum(p.prefix_mismatch for p in out)
    if truncated:
        print(f"[rlhfkit] {what}: {truncated} of {len(out)} pairs truncated to max_length={cfg.max_length} "
              f"(max_prompt_length={cfg.max_prompt_length})", file=sys.stderr)
    if mismatch:
        print(f"[rlhfkit] {what}: {mismatch} pairs where the prompt's tokens merge with the response's first "
              "token; their completion starts one token earlier", file=sys.stderr)
    return out


def pack(pairs: Sequence[TokenizedPair], pad_id: int, cfg: DPOConfig, device: torch.device) -> PackedBatch:
    return pack_pairs(pairs, pad_id=pad_id, prefix_sharing=cfg.prefix_sharing, row_length=cfg.pack_length,
                      pack=cfg.pack_length > 0).to(device)


def split_chosen_rejected(seq_logps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(2B,) completion sums in chosen-first order -> chosen (B,), rejected (B,)."""
    c, r = seq_logps.view(2, -1)
    return c, r


@torch.no_grad()
def reference_logps(ref_model: Any, batch: PackedBatch, precision: str, adapter_off: bool) -> torch.Tensor:
    """(2B,) reference log-probs. A resident bf16 copy runs as is; fp32 weights (a LoRA base, or a copy on a CPU
    that emulates bf16) run under autocast only where bf16 is native, else in exact fp32 (faster there)."""
    device = batch.input_ids.device
    fp32_weights = next(ref_model.parameters()).dtype == torch.float32
    use_autocast = precision == "bf16" and fp32_weights and native_bf16(device)
    with (ref_model.disable_adapter() if adapter_off else contextlib.nullcontext()), \
            (loop.autocast(device, precision) if use_autocast else contextlib.nullcontext()):
        return sequence_logprobs(ref_model, batch).float()


def batch_metrics(losses: torch.Tensor, pc: torch.Tensor, pr: torch.Tensor, cr: torch.Tensor,
                  rr: torch.Tensor) -> dict:
    """TRL's metric names for one batch (means over pairs)."""
    return {"loss": losses.mean().item(), "rewards/chosen": cr.mean().item(), "rewards/rejected": rr.mean().item(),
            "rewards/accuracies": (cr > rr).float().mean().item(), "rewards/margins": (cr - rr).mean().item(),
            "logps/chosen": pc.detach().mean().item(), "logps/rejected": pr.detach().mean().item()}


def dpo_losses(policy: torch.Tensor, ref: torch.Tensor, batch: PackedBatch, cfg: DPOConfig):
    pc, pr = split_chosen_rejected(policy)
    rc, rr = split_chosen_rejected(ref)
    lc, lr = split_chosen_rejected(batch.seq_lengths)
    losses, cr, rrw = preference_loss(pc, pr, rc, rr, loss_type=cfg.loss_type, beta=cfg.beta,
                                      label_smoothing=cfg.label_smoothing, chosen_lengths=lc, rejected_lengths=lr)
    return losses, batch_metrics(losses, pc, pr, cr, rrw)


def evaluate(policy: Any, ref_model: Any, data: PairData, cfg: DPOConfig, pad_id: int, device: torch.device,
             adapter_off_ref: bool) -> dict:
    """eval/... metrics over a held-out set (weighted by pairs)."""
    policy.eval()
    totals: dict[str, float] = {}
    n = 0
    lengths = data.lengths()
    order = sorted(range(len(data.pairs)), key=lambda i: -lengths[i])  # similar lengths together
    with torch.no_grad():
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            batch = pack([data.pairs[i] for i in idx], pad_id, cfg, device)
            with loop.autocast(device, cfg.precision):
                pol = sequence_logprobs(policy, batch).float()
            ref = _ref_for(idx, batch, data, ref_model, cfg, adapter_off_ref)
            _, m = dpo_losses(pol, ref, batch, cfg)
            for k, v in m.items():
                totals[k] = totals.get(k, 0.0) + v * len(idx)
            n += len(idx)
    return {f"eval/{k}": v / max(n, 1) for k, v in totals.items()}


def _ref_for(idx: Sequence[int], batch: PackedBatch, data: PairData, ref_model: Any, cfg: DPOConfig,
             adapter_off: bool) -> torch.Tensor:
    if data.ref_logps is not None:
        sel = data.ref_logps[torch.tensor(list(idx))]             # (B, 2)
        return torch.cat([sel[:, 0], sel[:, 1]]).to(batch.input_ids.device)
    return reference_logps(ref_model, batch, cfg.precision, adapter_off)


def _cache_key(pairs: Sequence[TokenizedPair], cfg: DPOConfig) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([cfg.reference or cfg.model, cfg.precision, cfg.prefix_sharing]).encode())
    for p in pairs:
        h.update(json.dumps([p.prompt_ids, p.chosen_ids, p.rejected_ids]).encode())
    return h.hexdigest()[:16]


def precompute_reference(ref_model: Any, datasets: dict[str, PairData], cfg: DPOConfig, pad_id: int,
                         device: torch.device, adapter_off: bool, out: Path) -> None:
    """Reference log-probs of every pair, computed once and stored in out/ref_logps.pt (reused on resume)."""
    path = out / REF_CACHE
    keys = {name: _cache_key(d.pairs, cfg) for name, d in datasets.items()}
    if path.exists():
        saved = torch.load(path, map_location="cpu")
        if all(saved.get(name, {}).get("key") == k for name, k in keys.items()):
            for name, d in datasets.items():
                d.ref_logps = saved[name]["logps"]
            print(f"[rlhfkit] reusing reference log-probs from {path}", file=sys.stderr)
            return
    store = {}
    for name, d in datasets.items():
        vals = torch.zeros(len(d.pairs), 2)
        bar = loop.progress_bar(math.ceil(len(d.pairs) / cfg.batch_size), 0, f"reference log-probs ({name})",
                                cfg.progress)
        for start in range(0, len(d.pairs), cfg.batch_size):
            idx = list(range(start, min(start + cfg.batch_size, len(d.pairs))))
            batch = pack([d.pairs[i] for i in idx], pad_id, cfg, device)
            c, r = split_chosen_rejected(reference_logps(ref_model, batch, cfg.precision, adapter_off))
            vals[idx, 0], vals[idx, 1] = c.cpu(), r.cpu()
            bar.update(1)
        bar.close()
        d.ref_logps = vals
        store[name] = {"key": keys[name], "logps": vals}
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(store, tmp)
    tmp.replace(path)


def load_pair_data(cfg: DPOConfig, tokenizer: Any) -> tuple[PairData, Optional[PairData], bool]:
    """(train, eval or None, conversational?) from cfg.data / cfg.eval_data / cfg.eval_fraction."""
    from rlhfkit.data.io import load_preferences, split_examples

    if not cfg.data and not cfg.eval_only:
        raise RlhfkitError("no training data: give --data FILE (or bundled:support)")
    train_ex = load_preferences(cfg.data, fmt=cfg.data_format) if cfg.data else []
    eval_ex = None
    if cfg.eval_data:
        eval_ex = load_preferences(cfg.eval_data, fmt=cfg.data_format)
    elif cfg.eval_fraction > 0 and train_ex:
        train_ex, eval_ex = split_examples(train_ex, cfg.eval_fraction, cfg.seed)
    conversational = any(isinstance(e.prompt, list) or isinstance(e.chosen, list)
                         for e in (train_ex or []) + (eval_ex or []))
    train = PairData(tokenize_pairs(train_ex, tokenizer, cfg, "train")) if train_ex else PairData([])
    ev = PairData(tokenize_pairs(eval_ex, tokenizer, cfg, "eval")) if eval_ex else None
    return train, ev, conversational


def load_models(cfg: DPOConfig, device: torch.device) -> tuple[Any, Any, bool]:
    """(policy, reference or None when the LoRA adapter is switched off instead, adapter_off_ref)."""
    from rlhfkit.models.load import load_model

    policy = load_model(cfg.model, attn_implementation="sdpa")
    loop.disable_dropout(policy)
    if cfg.lora:
        policy = loop.apply_lora(policy, cfg)
        if cfg.precision == "bf16" and not native_bf16(device):
            loop.fp32_adapters(policy)
    loop.enable_activation_checkpointing(policy, cfg.activation_checkpointing)
    policy.to(device)
    if cfg.lora and not cfg.reference:
        return policy, policy, True  # reference = same weights, adapter disabled: no second copy
    ref = load_model(cfg.reference or cfg.model, dtype=frozen_dtype(cfg.precision, device),
                     attn_implementation="sdpa", quiet=True)
    ref.requires_grad_(False)
    return policy, ref.to(device), False


def frozen_dtype(precision: str, device: torch.device) -> torch.dtype:
    """Frozen models (reference) are held resident in bf16 when bf16 is native (no per-forward weight casts,
    half the memory); on CPUs that emulate bf16, fp32 is ~3x faster and exact, so they stay fp32."""
    return torch.bfloat16 if precision == "bf16" and native_bf16(device) else torch.float32


def _starting_model_name(cfg: DPOConfig) -> str:
    from rlhfkit.models.load import DEFAULT_MODEL

    return cfg.model or DEFAULT_MODEL


# ----------------------------------------------------------------------------------------------
# the trainer
# ----------------------------------------------------------------------------------------------
def train_dpo(cfg: DPOConfig) -> Path:
    """Train a policy with the DPO-family loss `cfg.loss_type`; returns the final model folder (out/final)."""
    from accelerate import Accelerator

    from rlhfkit.models.load import load_tokenizer

    if not cfg.output:
        raise RlhfkitError("give --output DIR (rerunning on the same folder resumes)")
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision="no")
    device = accelerator.device
    main = accelerator.is_main_process
    cfg = loop.resolve_precision(cfg, device)
    loop.seed_everything(cfg.seed)

    # 1. data: load -> validate (errors stop here) -> split -> base-model guard -> tokenise
    tokenizer = load_tokenizer(cfg.model)
    train, ev, conversational = load_pair_data(cfg, tokenizer)
    loop.check_starting_model(tokenizer, _starting_model_name(cfg), conversational, cfg)
    if not train.pairs:
        raise RlhfkitError(f"{cfg.data}: no training pairs")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if main:
        save_config(cfg, out / "config.yaml")

    # 2. models: policy (trainable), reference (frozen bf16 copy, or the adapter switched off)
    policy, ref_model, adapter_off = load_models(cfg, device)
    trainable, total = loop.count_params(policy)
    print(f"[rlhfkit] policy: {trainable:,} trainable of {total:,} parameters"
          f"{' (LoRA)' if cfg.lora else ''}; reference: "
          f"{'same weights, adapter disabled' if adapter_off else 'frozen copy'}", file=sys.stderr)
    if cfg.precompute_ref:
        datasets = {"train": train, **({"eval": ev} if ev else {})}
        precompute_reference(ref_model, datasets, cfg, pad_id, device, adapter_off, out)
        if not adapter_off:
            ref_model = None  # freed: only the policy stays in memory

    # 3. optimizer, schedule, resume
    total_steps, per_epoch = loop.total_optimizer_steps(len(train.pairs), cfg)
    optimizer = loop.make_optimizer(policy, cfg)
    scheduler = loop.make_scheduler(optimizer, cfg, total_steps)
    scorer = CompletionLogprobs(policy)
    scorer, optimizer = accelerator.prepare(scorer, optimizer)
    step, micro, skipped = 0, 0, 0
    ckpts = loop.checkpoint_dirs(out)
    if ckpts:
        state = loop.load_checkpoint(ckpts[-1], policy, optimizer, scheduler)
        step, micro, skipped = state["step"], state["micro_step"], state["skipped"]
        loop.set_rng_state(state["rng"])
        print(f"[rlhfkit] resuming from {ckpts[-1]} (step {step} of {total_steps})", file=sys.stderr)
    logger = loop.MetricsLogger(out, cfg.report_to, to_dict(cfg), resume_step=step, enabled=main)
    guard = loop.NanGuard(cfg.max_bad_steps, skipped)
    lengths = train.lengths()
    epoch_cache: dict[int, list[list[int]]] = {}

    def batch_indices(m: int) -> list[int]:
        epoch, i = divmod(m, per_epoch)
        if epoch not in epoch_cache:
            epoch_cache.clear()
            epoch_cache[epoch] = loop.epoch_batches(lengths, cfg.batch_size, epoch=epoch, seed=cfg.seed,
                                                    shuffle=cfg.shuffle, group_by_length=cfg.group_by_length)
        return epoch_cache[epoch][i]

    def checkpoint() -> Path:
        return loop.save_checkpoint(out, step, policy, tokenizer, optimizer, scheduler,
                                    {"micro_step": micro, "skipped": guard.skipped}, cfg.save_total_limit)

    # 4. the loop: one optimizer step = gradient_accumulation_steps packed micro-batches
    bar = loop.progress_bar(total_steps, step, "dpo", cfg.progress and main)
    with loop.StopRequest() as stop:
        while step < total_steps:
            t0 = time.perf_counter()
            policy.train()
            rows: list[dict] = []
            pairs_seen = tokens_seen = 0
            ok = True
            for a in range(cfg.gradient_accumulation_steps):
                idx = batch_indices(micro)
                micro += 1
                batch = pack([train.pairs[i] for i in idx], pad_id, cfg, device)
                # 4a. reference log-probs (precomputed, frozen copy, or adapter off) -- no grad
                ref = _ref_for(idx, batch, train, ref_model, cfg, adapter_off)
                # 4b. one policy forward over [prompt, chosen, rejected] rows; loss; backward
                last = a == cfg.gradient_accumulation_steps - 1
                sync = contextlib.nullcontext() if last else accelerator.no_sync(scorer)
                with sync:
                    with loop.autocast(device, cfg.precision):
                        pol = scorer(batch).float()
                    losses, m = dpo_losses(pol, ref, batch, cfg)
                    loss = losses.mean() / cfg.gradient_accumulation_steps
                    if not guard.check(loss.detach()):
                        ok = False
                    else:
                        accelerator.backward(loss)
                rows.append(m)
                pairs_seen += len(idx)
                tokens_seen += batch.num_tokens
            # 4c. clip, NaN guard, optimizer step (skipped on a non-finite loss or gradient)
            grad_norm = loop.apply_update(accelerator, policy, optimizer, scheduler, guard, cfg.max_grad_norm, ok)
            if cfg.release_memory:
                loop.trim_freed_memory()
            step += 1
            if guard.should_stop():
                bar.close()
                logger.close()
                raise loop.TrainingStopped(loop.nan_stop_message(step, guard, out))
            # 4d. metrics, eval, checkpoint
            dt = time.perf_counter() - t0
            metrics = {("train/loss" if k == "loss" else k): v for k, v in loop.mean_metrics(rows).items()}
            metrics.update({"grad_norm": grad_norm, "learning_rate": scheduler.get_last_lr()[0],
                            "epoch": micro / per_epoch, "train/skipped_steps": guard.skipped,
                            "perf/pairs_per_sec": pairs_seen / dt, "perf/tokens_per_sec": tokens_seen / dt,
                            "perf/step_seconds": dt})
            if ev is not None and cfg.eval_steps > 0 and step % cfg.eval_steps == 0 and step < total_steps:
                metrics.update(evaluate(policy, ref_model, ev, cfg, pad_id, device, adapter_off))
            if step % cfg.logging_steps == 0 or step == total_steps:
                logger.log(step, metrics)
            bar.set_postfix(loss=f"{metrics['train/loss']:.4f}", acc=f"{metrics['rewards/accuracies']:.2f}")
            bar.update(1)
            # periodic checkpoints only after a good update: the last checkpoint is always a good one
            if main and ((cfg.save_steps > 0 and step % cfg.save_steps == 0 and step < total_steps
                          and guard.in_a_row == 0) or stop.requested):
                path = checkpoint()
                if stop.requested:
                    bar.close()
                    logger.close()
                    raise loop.Interrupted(f"stopped at step {step}; checkpoint written to {path}. "
                                           "Rerun the same command to resume.")
    bar.close()

    # 5. final evaluation and the model under out/final
    if ev is not None:
        final_eval = evaluate(policy, ref_model, ev, cfg, pad_id, device, adapter_off)
        logger.log(step, final_eval)
        print("[rlhfkit] eval: " + ", ".join(f"{k}={v:.4f}" for k, v in final_eval.items()), file=sys.stderr)
    logger.close()
    final = loop.save_final(accelerator.unwrap_model(scorer).model, tokenizer, out,
                            adapter_only=cfg.save_adapter_only)
    print(f"[rlhfkit] saved {final}", file=sys.stderr)
    return final


def eval_dpo(cfg: DPOConfig) -> dict:
    """`rlhfkit dpo --eval-only`: eval/... metrics of cfg.model against cfg.reference on cfg.eval_data."""
    from rlhfkit.models.load import load_model, load_tokenizer

    if not cfg.eval_data:
        raise RlhfkitError("--eval-only needs --eval-data FILE")
    reference = cfg.reference or _reference_from_run(cfg.model)
    if not reference:
        raise RlhfkitError("--eval-only needs --reference MODEL (or --model pointing at a run's final/ folder, "
                           "whose config names the starting model)")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg = loop.resolve_precision(cfg, device)
    tokenizer = load_tokenizer(cfg.model)
    _, ev, _ = load_pair_data(cfg, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    policy = load_model(cfg.model, attn_implementation="sdpa").to(device)
    ref = load_model(reference, dtype=frozen_dtype(cfg.precision, device), attn_implementation="sdpa", quiet=True).to(device)
    return evaluate(policy, ref, ev, cfg, pad_id, device, adapter_off_ref=False)


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
