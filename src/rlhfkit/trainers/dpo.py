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
from pathlib import Path
from typing import Any, Sequence

import torch

from rlhfkit.config import DPOConfig
from rlhfkit.console import note, progress_bar
from rlhfkit.data.collate import PackedBatch
from rlhfkit.data.pairs import PairData, load_pair_data, pack
from rlhfkit.data.tokenize import TokenizedPair, check_starting_model, pad_token_id
from rlhfkit.errors import RlhfkitError
from rlhfkit.losses.preference import chosen_nll, preference_loss
from rlhfkit.models.forward import CompletionLogprobs, autocast, native_bf16, sequence_logprobs
from rlhfkit.models.setup import count_params, prepare_trainable, save_final
from rlhfkit.trainers.run import Run

REF_CACHE = "ref_logps.pt"


# ----------------------------------------------------------------------------------------------
# pieces the loop composes
# ----------------------------------------------------------------------------------------------
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
            (autocast(device, precision) if use_autocast else contextlib.nullcontext()):
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
    nll = chosen_nll(pc, lc)                                                   # (B,)
    if cfg.rpo_alpha:
        losses = losses + cfg.rpo_alpha * nll
    m = batch_metrics(losses, pc, pr, cr, rrw)
    m["nll/chosen"] = nll.detach().mean().item()
    return losses, m


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
            with autocast(device, cfg.precision):
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
            note(f"reusing reference log-probs from {path}")
            return
    store = {}
    for name, d in datasets.items():
        vals = torch.zeros(len(d.pairs), 2)
        bar = progress_bar(math.ceil(len(d.pairs) / cfg.batch_size), 0, f"reference log-probs ({name})",
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


def load_models(cfg: DPOConfig, device: torch.device) -> tuple[Any, Any, bool]:
    """(policy, reference or None when the LoRA adapter is switched off instead, adapter_off_ref)."""
    from rlhfkit.models.load import load_model

    policy = prepare_trainable(load_model(cfg.model, attn_implementation="sdpa"), cfg, device)
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
    from rlhfkit.models.load import load_tokenizer

    with Run.start(cfg, "dpo") as run:
        cfg, device = run.cfg, run.device

        # 1. data: load -> validate (errors stop here) -> split -> base-model guard -> tokenise
        tokenizer = load_tokenizer(cfg.model)
        train, ev, conversational = load_pair_data(cfg, tokenizer)
        check_starting_model(tokenizer, _starting_model_name(cfg), conversational, cfg)
        if not train.pairs:
            raise RlhfkitError(f"{cfg.data}: no training pairs")
        pad_id = pad_token_id(tokenizer)
        run.save_config()

        # 2. models: policy (trainable), reference (frozen bf16 copy, or the adapter switched off)
        policy, ref_model, adapter_off = load_models(cfg, device)
        trainable, total = count_params(policy)
        note(f"policy: {trainable:,} trainable of {total:,} parameters{' (LoRA)' if cfg.lora else ''}; reference: "
             f"{'same weights, adapter disabled' if adapter_off else 'frozen copy'}")
        if cfg.precompute_ref:
            datasets = {"train": train, **({"eval": ev} if ev else {})}
            precompute_reference(ref_model, datasets, cfg, pad_id, device, adapter_off, run.out)
            if not adapter_off:
                ref_model = None  # freed: only the policy stays in memory

        # 3. optimizer and schedule, resume (weights, optimizer, schedule, RNG, data position)
        evaluate_fn = (lambda: evaluate(policy, ref_model, ev, cfg, pad_id, device, adapter_off)) if ev else None
        scorer = run.begin(policy, CompletionLogprobs(policy), tokenizer, train.lengths(), evaluate=evaluate_fn,
                           show={"train/loss": "loss", "rewards/accuracies": "acc"}, unit="pairs")

        # 4. per optimizer step, gradient_accumulation_steps micro-batches: reference log-probs (no grad), one
        #    policy forward over packed [prompt, chosen, rejected] rows, the loss, its backward
        for micro_batches in run.steps():
            for idx, sync in micro_batches:
                with sync:
                    batch = pack([train.pairs[i] for i in idx], pad_id, cfg, device)
                    ref = _ref_for(idx, batch, train, ref_model, cfg, adapter_off)
                    with autocast(device, cfg.precision):
                        pol = scorer(batch).float()
                    losses, m = dpo_losses(pol, ref, batch, cfg)
                    m["train/loss"] = m.pop("loss")
                    run.backward(losses.mean(), m, examples=len(idx), tokens=batch.num_tokens)
            # 5. clip, optimizer step (skipped on a non-finite loss or gradient), metrics, eval, checkpoint
            run.update()
        run.finish()

        # 6. the model under out/final
        final = save_final(policy, tokenizer, run.out, adapter_only=cfg.save_adapter_only)
        note(f"saved {final}")
        return final
