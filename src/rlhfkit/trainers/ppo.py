"""PPO for RLHF (Ziegler et al. 2019; Ouyang et al. 2022), following Huang et al. 2024, "The N+ Implementation
Details of RLHF with PPO": value model initialised from the reward model, per-token KL penalty with the score
added at the last response token, GAE, advantage whitening, log-probs at the sampling temperature, dropout off,
an optional penalty for responses that never emit EOS, `num_ppo_epochs` passes over minibatches per rollout.

One plain function, read top to bottom. One update:
    1. rollout: sample one response per prompt with the policy (KV cache; log-probs of the sampled tokens come from
       the logits generation computed anyway)
    2. score: reference log-probs, values and the reward (model or function) of each (prompt, response)
    3. per-token rewards = -kl_coef * KL + score at the last token; GAE advantages and returns; whitening
    4. num_ppo_epochs x num_mini_batches optimizer steps on policy (clipped ratio) and value (clipped MSE)
    5. metrics (TRL's names), guard rails, samples, KL controller, checkpoint
"""
from __future__ import annotations

import contextlib
import importlib
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from rlhfkit.config import PPOConfig, to_dict
from rlhfkit.console import note, warn
from rlhfkit.data.collate import PackedBatch, pack_groups
from rlhfkit.data.io import split_by_prompt
from rlhfkit.data.tokenize import check_starting_model, pad_token_id, tokenize_prompt
from rlhfkit.errors import RlhfkitError
from rlhfkit.files import drop_rows_after
from rlhfkit.losses.advantages import gae, whiten
from rlhfkit.losses.kl import KLController, kl_k1, kl_k3, kl_penalized_rewards
from rlhfkit.losses.masked import masked_sum
from rlhfkit.losses.ppo import explained_variance, policy_loss, value_loss
from rlhfkit.models.forward import autocast, completion_logprobs, inference_autocast, native_bf16
from rlhfkit.models.heads import packed_rewards, packed_values
from rlhfkit.models.setup import count_params, prepare_trainable, save_final, use_packed_attention
from rlhfkit.rollout.generate import Samples, load_prompts, sample, to_padded
from rlhfkit.trainers.run import Run, apply_update, make_optimizer, make_scheduler, mean_metrics, trim_freed_memory
from rlhfkit.types import PPOModels, Rollout

RewardFn = Callable[[list, list], Sequence[float]]


# ----------------------------------------------------------------------------------------------
# models
# ----------------------------------------------------------------------------------------------
def build_models(cfg: PPOConfig, device: torch.device) -> PPOModels:
    """policy, reference, reward, value in one place.

    Full mode (4 weight copies + AdamW state of policy and value): policy (trainable), reference (frozen copy),
    reward (frozen), value (trainable copy of the reward model).
    LoRA mode (2 weight copies + adapters): policy = base + adapter, reference = the same base with the adapter
    disabled; value = the reward model + adapter (and a trained head), reward = the same weights with the adapter
    disabled (when the value model starts from the reward model, the default)."""
    from rlhfkit.models.load import load_model, load_reward_model

    frozen = torch.bfloat16 if cfg.precision == "bf16" and native_bf16(device) else torch.float32
    value_source = cfg.value_model or cfg.reward_model or cfg.model
    policy = load_model(cfg.model, attn_implementation="sdpa")
    value = load_reward_model(value_source, quiet=True)        # both loaded first: the RNG order of the heads
    policy = prepare_trainable(policy, cfg, device)
    value = prepare_trainable(value, cfg, device, task_type="SEQ_CLS")
    if cfg.lora and not cfg.reference:
        reference, ref_shared = policy, True
    else:
        reference = load_model(cfg.reference or cfg.model, dtype=frozen, attn_implementation="sdpa",
                               quiet=True).requires_grad_(False).to(device)
        ref_shared = False
    reward, reward_shared = None, False
    if cfg.reward_model:
        if cfg.lora and value_source == cfg.reward_model:
            reward, reward_shared = value, True
        else:
            reward = load_reward_model(cfg.reward_model, dtype=frozen, quiet=True).requires_grad_(False).to(device)
    for m in (policy, reference, value, reward):    # one attention call per packed sequence (models/kernels/)
        if m is not None:
            use_packed_attention(m)
    return PPOModels(policy=policy, reference=reference, reward=reward, value=value,
                     reference_is_policy_without_adapter=ref_shared, reward_is_value_without_adapter=reward_shared)


def load_reward_fn(spec: str) -> RewardFn:
    """`module:function` -> the function (the current folder is importable, as for `python -m`)."""
    mod_name, _, fn_name = spec.partition(":")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(mod_name)
    except ImportError as e:
        raise RlhfkitError(f"--reward-fn {spec}: cannot import module '{mod_name}' ({e})") from None
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise RlhfkitError(f"--reward-fn {spec}: module '{mod_name}' has no function '{fn_name}'")
    return fn


def _same_vocab(a: Any, b: Any) -> bool:
    return a.get_vocab() == b.get_vocab()


# ----------------------------------------------------------------------------------------------
# pieces of one update
# ----------------------------------------------------------------------------------------------
def pack_rollout(prompt_ids: Sequence[Sequence[int]], response_ids: Sequence[Sequence[int]], pad_id: int,
                 device: torch.device) -> PackedBatch:
    """(prompt, response) groups back to back in one unpadded row, one causal attention call per group (see
    models/kernels/attention.py); completion order = response order."""
    return pack_groups([(p, [r]) for p, r in zip(prompt_ids, response_ids)], pad_id=pad_id, one_row=True).to(device)


def _disabled(model: Any, shared: bool) -> contextlib.AbstractContextManager:
    return model.disable_adapter() if shared else contextlib.nullcontext()


@torch.no_grad()
def reference_logprobs(models: PPOModels, batch: PackedBatch, cfg: PPOConfig, device: torch.device) -> torch.Tensor:
    """(N,) fp32 log-probs of the sampled tokens under the reference, at the sampling temperature."""
    with _disabled(models.reference, models.reference_is_policy_without_adapter), \
            inference_autocast(device, cfg.precision):
        return completion_logprobs(models.reference, batch, temperature=cfg.temperature).float()


@torch.no_grad()
def rollout_scores(models: PPOModels, batch: PackedBatch, prompts: list, texts: list[str], cfg: PPOConfig,
                   reward_fn: Optional[RewardFn], stats: Optional[tuple[float, float]],
                   device: torch.device) -> torch.Tensor:
    """(B,) scores: the reward model's reward standardised with the statistics stored at its training,
    (r - mean) / std (so kl_coef means the same for every reward model), or the reward function's value."""
    if reward_fn is not None:
        out = reward_fn(list(prompts), list(texts))
        scores = torch.as_tensor([float(x) for x in out], dtype=torch.float32)
        if scores.numel() != len(texts):
            raise RlhfkitError(f"--reward-fn returned {scores.numel()} scores for {len(texts)} responses")
        return scores
    with _disabled(models.reward, models.reward_is_value_without_adapter), \
            inference_autocast(device, cfg.precision):
        scores = packed_rewards(models.reward, batch).float().cpu()
    return standardized(scores, stats)


@torch.no_grad()
def score_rollout(models: PPOModels, samples: Samples, batch: PackedBatch, prompts: list, texts: list[str],
                  cfg: PPOConfig, reward_fn: Optional[RewardFn], stats: Optional[tuple[float, float]],
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Reference log-probs (B, T), old values (B, T) and scores (B,) of a rollout; a response without EOS
    loses `missing_eos_penalty` (Huang et al. 2024)."""
    lengths = samples.lengths
    ref = reference_logprobs(models, batch, cfg, device)
    with inference_autocast(device, cfg.precision):
        values = standardized(packed_values(models.value, batch).float(), stats if _value_from_rm(cfg) else None)
    scores = rollout_scores(models, batch, prompts, texts, cfg, reward_fn, stats, device)
    if cfg.missing_eos_penalty is not None:
        scores = scores - cfg.missing_eos_penalty * (~samples.ended).float()
    return to_padded(ref.cpu(), lengths), to_padded(values.cpu(), lengths), scores


@torch.no_grad()
def evaluate_policy(models: PPOModels, prompt_ids: list[list[int]], prompts: list, tokenizer: Any, cfg: PPOConfig,
                    reward_fn: Optional[RewardFn], stats: Optional[tuple[float, float]],
                    device: torch.device) -> dict:
    """Fresh rollouts on the held-out prompts: (metrics, one row per prompt). Metrics: eval/scores (the plain
    score, no EOS penalty), eval/kl (nats per response to the reference, k1 summed over the response),
    eval/eos_rate, eval/length_mean, eval/distinct_ratio (see distinct_ratio). Rows: prompt, response, score, kl,
    ended_with_eos.

    The responses are sampled as in training (temperature, top_p) from a fixed seed under a forked RNG, so the
    training run's random stream is untouched (resume stays exact) and two evaluations differ only through the
    policy."""
    pad_id, eos_id = pad_token_id(tokenizer), tokenizer.eos_token_id
    scores, kls, ended, lengths, texts_all, ids_all = [], [], [], [], [], []
    was_training = models.policy.training
    models.policy.eval()
    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if device.type == "cuda" else []):
        torch.manual_seed(cfg.seed + 1)
        for start in range(0, len(prompt_ids), cfg.batch_size):
            ids = prompt_ids[start:start + cfg.batch_size]
            with inference_autocast(device, cfg.precision):
                s = sample(models.policy, ids, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                           top_p=cfg.top_p, eos_id=eos_id, pad_id=pad_id, device=device)
            texts = tokenizer.batch_decode(s.response_ids, skip_special_tokens=True)
            texts_all += texts
            ids_all += s.response_ids
            batch = pack_rollout(s.prompt_ids, s.response_ids, pad_id, device)
            ref = to_padded(reference_logprobs(models, batch, cfg, device).cpu(), s.lengths)
            scores.append(rollout_scores(models, batch, prompts[start:start + cfg.batch_size], texts, cfg,
                                         reward_fn, stats, device))
            kls.append((kl_k1(s.logprobs.cpu(), ref) * s.response_mask.cpu()).sum(-1))
            ended.append(s.ended.cpu())
            lengths.append(s.lengths.cpu())
    models.policy.train(was_training)
    scores_t, kls_t, ended_t = torch.cat(scores), torch.cat(kls), torch.cat(ended)
    metrics = {"eval/scores": scores_t.mean().item(), "eval/kl": kls_t.mean().item(),
               "eval/eos_rate": ended_t.float().mean().item(),
               "eval/length_mean": torch.cat(lengths).float().mean().item(),
               "eval/distinct_ratio": distinct_ratio(ids_all), "eval/prompts": len(prompt_ids)}
    rows = [{"prompt": p, "response": t, "score": round(float(sc), 4), "kl": round(float(k), 4),
             "ended_with_eos": bool(e)} for p, t, sc, k, e in zip(prompts, texts_all, scores_t, kls_t, ended_t)]
    return metrics, rows


def _value_from_rm(cfg: PPOConfig) -> bool:
    return bool(cfg.reward_model) and cfg.value_model in (None, cfg.reward_model)


def standardized(x: torch.Tensor, stats: Optional[tuple[float, float]]) -> torch.Tensor:
    """(x - mean) / std with a reward model's stored statistics (identity without them). Applied to the score and,
    when the value model starts from that reward model, to its values, so that the value model's first
    predictions are on the scale of the returns it learns (an affine map: gradients pass through)."""
    if stats is None:
        return x
    return (x - stats[0]) / max(stats[1], 1e-6)


def advantages_and_returns(logp: torch.Tensor, ref: torch.Tensor, values: torch.Tensor, scores: torch.Tensor,
                           mask: torch.Tensor, *, kl_coef: float, kl_estimator: str, whiten_rewards: bool,
                           gamma: float, lam: float) -> dict:
    """Step 3 as a pure function of (B, T) tensors: KL, per-token rewards, GAE advantages (whitened), returns.
    kl_coef is the controller's live value (never the config's starting one): the caller passes `kl_ctl.value`."""
    kl = kl_k1(logp, ref) if kl_estimator == "k1" else kl_k3(logp, ref)
    kl = kl * mask
    rewards, non_score = kl_penalized_rewards(scores, kl, mask, kl_coef)
    if whiten_rewards:
        rewards = whiten(rewards, mask, shift_mean=False)
    adv, returns = gae(rewards, values, mask, gamma, lam)
    adv = whiten(adv, mask) if int(mask.sum()) > 1 else adv
    return {"kl": kl, "rewards": rewards, "non_score": non_score, "advantages": adv, "returns": returns}


def make_rollout(models: PPOModels, prompts: list, prompt_ids: list[list[int]], tokenizer: Any, cfg: PPOConfig,
                 reward_fn: Optional[RewardFn], stats: Optional[tuple[float, float]], device: torch.device,
                 kl_coef: float) -> tuple[Rollout, float]:
    """Steps 1-3 of an update: sample one response per prompt, score it (reference log-probs, old values,
    score), then per-token rewards, advantages and returns. Returns (the rollout, generation seconds)."""
    pad_id = pad_token_id(tokenizer)
    # 1. rollout: the policy samples (KV cache); log-probs of the sampled tokens come with the sampling
    t0 = time.perf_counter()
    models.policy.eval()
    with inference_autocast(device, cfg.precision):
        s = sample(models.policy, prompt_ids, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                   top_p=cfg.top_p, eos_id=tokenizer.eos_token_id, pad_id=pad_id, device=device)
    t_gen = time.perf_counter() - t0
    texts = tokenizer.batch_decode(s.response_ids, skip_special_tokens=True)
    # 2. reference log-probs, values, scores of the packed (prompt, response) rows
    batch = pack_rollout(s.prompt_ids, s.response_ids, pad_id, device)
    models.value.eval()
    ref, old_values, scores = score_rollout(models, s, batch, prompts, texts, cfg, reward_fn, stats, device)
    # 3. per-token rewards = -kl_coef * KL (+ score at the last token); GAE advantages and returns
    adv = advantages_and_returns(s.logprobs, ref, old_values, scores, s.response_mask, kl_coef=kl_coef,
                                 kl_estimator=cfg.kl_estimator, whiten_rewards=cfg.whiten_rewards, gamma=cfg.gamma,
                                 lam=cfg.lam)
    rollout = Rollout(prompts=list(prompts), prompt_ids=s.prompt_ids, response_ids=s.response_ids, texts=texts,
                      ended=s.ended, response_mask=s.response_mask, logprobs=s.logprobs, entropy=s.entropy,
                      ref_logprobs=ref, values=old_values, scores=scores, kl=adv["kl"], non_score=adv["non_score"],
                      advantages=adv["advantages"], returns=adv["returns"])
    return rollout, t_gen


@dataclass
class MicroBatch:
    """Rollout rows of one PPO micro-batch, on the device; b rows, T = their longest response.

    batch:      the b (prompt, response) groups packed into one unpadded row (`pack_rollout`)
    lengths:    (b,) response lengths
    mask:       (b, T) bool, True on real response tokens
    logprobs:   (b, T) fp32 log-probs at sampling time; values, advantages, returns: (b, T) fp32, the rollout's
    """

    batch: PackedBatch
    lengths: torch.Tensor
    mask: torch.Tensor
    logprobs: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor


def micro_batches(rollout: Rollout, sel: torch.Tensor, cfg: PPOConfig, device: torch.device,
                  pad_id: int) -> list[MicroBatch]:
    """Rollout rows `sel` (one minibatch) in cfg.gradient_accumulation_steps micro-batches (TRL's micro-batches
    inside a PPO minibatch), each packed into one unpadded row (`pack_rollout`)."""
    out = []
    lengths = rollout.lengths
    for micro in sel.chunk(cfg.gradient_accumulation_steps):
        rows = micro.tolist()
        mb = pack_rollout([rollout.prompt_ids[i] for i in rows], [rollout.response_ids[i] for i in rows], pad_id,
                          device)
        T = int(lengths[micro].max())
        mask, logp, values, adv, ret = (x[micro][:, :T].to(device) for x in (
            rollout.response_mask, rollout.logprobs, rollout.values, rollout.advantages, rollout.returns))
        out.append(MicroBatch(batch=mb, lengths=lengths[micro].to(device), mask=mask, logprobs=logp, values=values,
                              advantages=adv, returns=ret))
    return out


def policy_backward(accelerator: Any, policy: Any, micros: Sequence[MicroBatch], cfg: PPOConfig,
                    device: torch.device, n_tokens: int) -> dict[str, torch.Tensor]:
    """Step 4, policy half, for one minibatch: per micro-batch the forward, the clipped policy loss and its backward.
    Every per-token quantity is a masked *sum* divided by `n_tokens`, the response tokens of the whole minibatch, so
    the micro-batches' parts add up to the minibatch's masked means (and their gradients to its gradient). After a
    non-finite part nothing more is back-propagated; the caller then skips the policy's step."""
    parts = []
    for m in micros:
        with autocast(device, cfg.precision, cache=False):
            logp = completion_logprobs(policy, m.batch, temperature=cfg.temperature).float()
        logp = to_padded(logp, m.lengths)                                       # (b, T)
        pg, pg_clipped, approx_kl = policy_loss(logp, m.logprobs, m.advantages, cfg.cliprange)
        pg_loss = masked_sum(pg, m.mask) / n_tokens
        if torch.isfinite(pg_loss) and all(torch.isfinite(q["loss/policy_avg"]) for q in parts):
            accelerator.backward(pg_loss)
        parts.append({"loss/policy_avg": pg_loss.detach(),
                      "policy/approxkl_avg": masked_sum(approx_kl, m.mask) / n_tokens,
                      "policy/clipfrac_avg": masked_sum(pg_clipped, m.mask) / n_tokens,
                      "val/ratio": masked_sum(torch.exp(logp.detach() - m.logprobs), m.mask) / n_tokens})
    return {k: torch.stack([q[k] for q in parts]).sum() for k in parts[0]}


def value_backward(accelerator: Any, value: Any, micros: Sequence[MicroBatch], cfg: PPOConfig,
                   device: torch.device, n_tokens: int,
                   stats: Optional[tuple[float, float]] = None) -> dict[str, torch.Tensor]:
    """Step 4, value half: per micro-batch the value forward (standardised with the reward model's `stats` when the
    value model starts from it), the clipped value loss (times vf_coef) and its backward; sums as in
    `policy_backward`. The two models share no parameters, so the two halves leave exactly the gradients of
    `pg_loss + vf_coef * vf_loss`."""
    parts = []
    for m in micros:
        with autocast(device, cfg.precision, cache=False):
            values = standardized(packed_values(value, m.batch).float(), stats)
        values = to_padded(values, m.lengths)                                   # (b, T)
        vf, vf_clipped = value_loss(values, m.values, m.returns, cfg.cliprange_value)
        vf_loss = masked_sum(vf, m.mask) / n_tokens
        if torch.isfinite(vf_loss) and all(torch.isfinite(q["loss/value_avg"]) for q in parts):
            accelerator.backward(cfg.vf_coef * vf_loss)
        parts.append({"loss/value_avg": vf_loss.detach(),
                      "val/clipfrac_avg": masked_sum(vf_clipped, m.mask) / n_tokens})
    return {k: torch.stack([q[k] for q in parts]).sum() for k in parts[0]}


def ppo_minibatch_step(accelerator: Any, models: PPOModels, opts: dict, rollout: Rollout, sel: torch.Tensor,
                       cfg: PPOConfig, device: torch.device, pad_id: int,
                       value_stats: Optional[tuple[float, float]]) -> tuple[dict, int]:
    """One PPO optimizer step on minibatch `sel`: the policy's forwards, backwards and optimizer step first, then the
    value model's. Stepping the policy before the value model runs frees the policy's gradients (one fp32 copy of
    its weights) before the value model's activations and gradients exist: a lower peak than one summed loss.
    Each model steps when its own loss and gradients are finite; the caller's NaN guard counts the minibatch once.
    Returns (logged row, packed positions)."""
    n_tokens = max(int(rollout.response_mask[sel].sum()), 1)
    micros = micro_batches(rollout, sel, cfg, device, pad_id)
    pol = policy_backward(accelerator, models.policy, micros, cfg, device, n_tokens)
    g_p = apply_update(accelerator, models.policy, opts["policy_optimizer"], opts["policy_scheduler"], None,
                       cfg.max_grad_norm, bool(torch.isfinite(pol["loss/policy_avg"])))
    val = value_backward(accelerator, models.value, micros, cfg, device, n_tokens, value_stats)
    g_v = apply_update(accelerator, models.value, opts["value_optimizer"], opts["value_scheduler"], None,
                       cfg.max_grad_norm, bool(torch.isfinite(val["loss/value_avg"])))
    row = {k: v.item() for k, v in {**pol, **val}.items()}
    row.update({"grad_norm/policy": g_p, "grad_norm/value": g_v})
    return row, sum(m.batch.num_tokens for m in micros)


def ppo_epochs(run: Run, models: PPOModels, opts: dict, rollout: Rollout, cfg: PPOConfig, pad_id: int,
               value_stats: Optional[tuple[float, float]]) -> tuple[list[dict], int]:
    """Step 4: num_ppo_epochs passes over num_mini_batches shuffled minibatches of the rollout, one optimizer step
    of policy and of value each; the NaN guard counts each minibatch. Returns (one row per minibatch, positions)."""
    models.policy.train()
    models.value.train()
    rows, positions = [], 0
    B = len(rollout.texts)
    mb_size = B // cfg.num_mini_batches
    for _ in range(cfg.num_ppo_epochs):
        perm = torch.randperm(B)
        for start in range(0, B, mb_size):
            row, n = ppo_minibatch_step(run.accelerator, models, opts, rollout, perm[start:start + mb_size], cfg,
                                        run.device, pad_id, value_stats)
            run.guard.check(torch.tensor([row[k] for k in ("loss/policy_avg", "loss/value_avg",
                                                           "grad_norm/policy", "grad_norm/value")]))
            rows.append(row)
            positions += n
    return rows, positions


def update_metrics(rollout: Rollout, rows: list[dict], kl_coef: float) -> dict:
    """Step 5's numbers of one update under TRL's names (docs/ppo.md defines each): objective/* from the rollout
    (nats and scores per response), the minibatch rows' means, val/* and response/* statistics."""
    kl_seq = rollout.kl.sum(-1)                                             # (B,) nats per response
    non_score = rollout.non_score.sum(-1)                                   # (B,)
    return {
        "objective/kl": kl_seq.mean().item(),
        "objective/entropy": rollout.entropy.sum(-1).mean().item(),
        "objective/non_score_reward": non_score.mean().item(),
        "objective/rlhf_reward": (rollout.scores + non_score).mean().item(),
        "objective/scores": rollout.scores.mean().item(),
        **mean_metrics(rows),
        "val/explained_variance": explained_variance(rollout.values, rollout.returns, rollout.response_mask),
        "val/num_eos_tokens": int(rollout.ended.sum()),
        "val/eos_rate": rollout.ended.float().mean().item(),
        "response/length_mean": rollout.lengths.float().mean().item(),
        "response/distinct_ratio": distinct_ratio(rollout.response_ids),
        "kl_coef": kl_coef,
    }


def distinct_ratio(response_ids: Sequence[Sequence[int]]) -> float:
    """Mean over responses of (distinct tokens / tokens): ~0.6-0.8 for ordinary answers of 50-100 tokens, near 0
    for a response that repeats one token or a short loop ("🌟🌟🌟..."), the usual face of reward hacking."""
    ratios = [len(set(r)) / len(r) for r in response_ids if len(r) > 0]
    return sum(ratios) / len(ratios) if ratios else 1.0


class GuardRails:
    """Warnings (once each) for the usual ways PPO goes wrong: KL past a bound, EOS share collapsing, responses
    drifting to the length cap, responses collapsing into repetition. Repeated NaN stops the run (run.NanGuard)."""

    def __init__(self, cfg: PPOConfig):
        self.cfg = cfg
        self.first_eos: Optional[float] = None
        self.first_len: Optional[float] = None
        self.first_distinct: Optional[float] = None
        self.warned: set = set()

    def check(self, step: int, kl: float, eos_rate: float, mean_len: float, distinct: float = 1.0) -> list[str]:
        msgs = []
        if self.first_eos is None:
            self.first_eos, self.first_len, self.first_distinct = eos_rate, mean_len, distinct
        if kl > self.cfg.kl_warn and "kl" not in self.warned:
            msgs.append(f"step {step}: KL to the reference is {kl:.2f} nats per response, past the bound "
                        f"{self.cfg.kl_warn} (--kl-warn): the policy is drifting; raise --kl-coef or lower the LR")
            self.warned.add("kl")
        if self.first_eos >= 0.2 and eos_rate < 0.5 * self.first_eos and "eos" not in self.warned:
            msgs.append(f"step {step}: only {eos_rate:.0%} of responses end with EOS (was {self.first_eos:.0%}): "
                        "the policy stops finishing its answers; consider --missing-eos-penalty")
            self.warned.add("eos")
        cap = self.cfg.max_new_tokens
        if mean_len > 0.95 * cap and self.first_len is not None and self.first_len < 0.8 * cap \
                and "len" not in self.warned:
            msgs.append(f"step {step}: responses drifted to the length cap (mean {mean_len:.1f} of {cap} tokens, "
                        f"was {self.first_len:.1f}): possible length hacking")
            self.warned.add("len")
        first = self.first_distinct if self.first_distinct is not None else 1.0
        if distinct < 0.5 * first and "repeat" not in self.warned:
            msgs.append(f"step {step}: responses repeat themselves (distinct-token share {distinct:.2f}, was "
                        f"{first:.2f}): the policy is likely exploiting the reward model (reward hacking), which "
                        "the KL bound may not catch; read samples.jsonl, lower the LR or raise --kl-coef")
            self.warned.add("repeat")
        return msgs

    def state_dict(self) -> dict:
        return {"first_eos": self.first_eos, "first_len": self.first_len, "first_distinct": self.first_distinct,
                "warned": sorted(self.warned)}

    def load_state_dict(self, s: dict) -> None:
        self.first_eos, self.first_len, self.warned = s["first_eos"], s["first_len"], set(s["warned"])
        self.first_distinct = s.get("first_distinct")      # absent in checkpoints written before this guard


# ----------------------------------------------------------------------------------------------
# prompts and the held-out evaluation
# ----------------------------------------------------------------------------------------------
@dataclass
class Prompts:
    """PPO's prompts, read and tokenised: `texts` as read (text or messages) and `ids` left-truncated so that
    prompt + response fits max_length; the held-out ones (`eval_texts`, `eval_ids`) are never trained on."""

    texts: list
    ids: list[list[int]]
    eval_texts: list
    eval_ids: list[list[int]]


def load_ppo_prompts(cfg: PPOConfig, tokenizer: Any) -> Prompts:
    """Step 1: prompts loaded (errors stop here), held-out ones split off by prompt hash, the base-model guard,
    tokenised."""
    from rlhfkit.models.load import DEFAULT_MODEL

    prompts = load_prompts(cfg.data)
    eval_prompts = load_prompts(cfg.eval_data) if cfg.eval_data else []
    if not cfg.eval_data and cfg.eval_fraction > 0:
        prompts, eval_prompts = split_by_prompt(prompts, cfg.eval_fraction, cfg.seed)
        if not eval_prompts or not prompts:
            raise RlhfkitError(f"--eval-fraction {cfg.eval_fraction} of {len(prompts) + len(eval_prompts)} prompts "
                               "leaves one side empty; give more prompts, another fraction or --eval-data")
    conversational = any(isinstance(p, list) for p in prompts)
    check_starting_model(tokenizer, cfg.model or DEFAULT_MODEL, conversational, cfg)
    cap = min(cfg.max_prompt_length or cfg.max_length, cfg.max_length - cfg.max_new_tokens)
    if cap < 1:
        raise RlhfkitError(f"max_length ({cfg.max_length}) leaves no room for a prompt beside max_new_tokens "
                           f"({cfg.max_new_tokens})")

    def tokenized(texts: list) -> list[tuple[list[int], bool]]:
        return [tokenize_prompt(p, tokenizer, max_prompt_length=cap, use_chat_template=cfg.use_chat_template)
                for p in texts]

    train = tokenized(prompts)
    if sum(t for _, t in train):
        note(f"{sum(t for _, t in train)} of {len(prompts)} prompts left-truncated to {cap} tokens")
    if len(prompts) < cfg.batch_size:
        raise RlhfkitError(f"{cfg.data}: {len(prompts)} prompts, fewer than one rollout batch "
                           f"(--batch-size {cfg.batch_size})")
    return Prompts(prompts, [ids for ids, _ in train], eval_prompts, [ids for ids, _ in tokenized(eval_prompts)])


def held_out_eval(run: Run, models: PPOModels, prompts: Prompts, tokenizer: Any, reward_fn: Optional[RewardFn],
                  stats: Optional[tuple[float, float]]) -> None:
    """Fresh rollouts on the held-out prompts (evaluate_policy): eval/... metrics logged at this update, every
    answer appended to eval_samples.jsonl (paired comparisons later), one line for the user."""
    if not run.main or not prompts.eval_ids:
        return
    metrics, rows = evaluate_policy(models, prompts.eval_ids, prompts.eval_texts, tokenizer, run.cfg, reward_fn,
                                    stats, run.device)
    run.log(metrics)
    with open(run.out / "eval_samples.jsonl", "a") as fh:
        fh.writelines(json.dumps({"step": run.step, **row}) + "\n" for row in rows)
    note(f"update {run.step}: held-out score {metrics['eval/scores']:.3f}, KL {metrics['eval/kl']:.2f}, "
         f"EOS rate {metrics['eval/eos_rate']:.2f} ({len(prompts.eval_ids)} prompts)")


def reward_model_stats(models: PPOModels, cfg: PPOConfig, tokenizer: Any) -> Optional[tuple[float, float]]:
    """(mean, std) of the reward model's training rewards (None without them or with a reward function); stops
    when the reward model's tokenizer is not the policy's (PPO scores the policy's tokens directly)."""
    from rlhfkit.models.load import load_tokenizer, reward_info

    if not cfg.reward_model:
        return None
    if not _same_vocab(tokenizer, load_tokenizer(cfg.reward_model, quiet=True)):
        raise RlhfkitError(f"the reward model {cfg.reward_model} uses another tokenizer than the policy; PPO "
                           "scores the policy's tokens directly, so train the reward model from the same family")
    info = reward_info(models.reward)
    return (info["mean"], info["std"]) if "mean" in info else None


def describe(models: PPOModels, cfg: PPOConfig, reward_fn: Optional[RewardFn]) -> str:
    reward = ("= " + cfg.reward_fn if reward_fn else
              "= value model, adapter disabled" if models.reward_is_value_without_adapter else "frozen copy")
    reference = "= policy, adapter disabled" if models.reference_is_policy_without_adapter else "frozen copy"
    return (f"PPO: policy {count_params(models.policy)[0]:,} trainable, value {count_params(models.value)[0]:,} "
            f"trainable; reference {reference}; reward {reward}")


def optimizers(models: PPOModels, cfg: PPOConfig, opt_steps: int) -> dict:
    """AdamW and a schedule for each trainable model (the value model at value_learning_rate when given)."""
    opt_p = make_optimizer(models.policy, cfg)
    opt_v = make_optimizer(models.value, cfg, lr=cfg.value_learning_rate or cfg.learning_rate)
    return {"policy_optimizer": opt_p, "value_optimizer": opt_v,
            "policy_scheduler": make_scheduler(opt_p, cfg, opt_steps),
            "value_scheduler": make_scheduler(opt_v, cfg, opt_steps)}


# ----------------------------------------------------------------------------------------------
# the trainer
# ----------------------------------------------------------------------------------------------
def train_ppo(cfg: PPOConfig, reward_fn: Optional[RewardFn] = None) -> Path:
    """PPO on cfg.data's prompts against cfg.reward_model, cfg.reward_fn or `reward_fn`; returns out/final."""
    from rlhfkit.models.load import load_tokenizer
    from rlhfkit.trainers.run import epoch_batches

    if reward_fn is not None:  # the Python API: a callable instead of --reward-fn / --reward-model
        cfg = type(cfg)(**{**to_dict(cfg), "reward_fn": getattr(reward_fn, "__name__", "callable") + ":python",
                           "reward_model": None})
    if not cfg.data:
        raise RlhfkitError("no prompts: give --prompts FILE (JSONL with a `prompt` field, or a preference file)")
    with Run.start(cfg, "ppo") as run:
        cfg, device = run.cfg, run.device
        if reward_fn is None and cfg.reward_fn:
            reward_fn = load_reward_fn(cfg.reward_fn)

        # 1. prompts: load -> hold out -> base-model guard -> tokenise (left-truncated to leave room for answers)
        tokenizer = load_tokenizer(cfg.model)
        prompts = load_ppo_prompts(cfg, tokenizer)
        pad_id = pad_token_id(tokenizer)
        run.save_config()

        # 2. the four models, and the reward model's statistics (scores are standardised with them)
        models = build_models(cfg, device)
        stats = reward_model_stats(models, cfg, tokenizer)
        value_stats = stats if _value_from_rm(cfg) else None
        note(describe(models, cfg, reward_fn))

        # 3. optimizers, schedules, KL controller, guard rails; resume all of them (and RNG, prompt position)
        per_epoch = len(prompts.ids) // cfg.batch_size          # full rollout batches only
        total = cfg.max_steps if cfg.max_steps > 0 else max(1, math.ceil(per_epoch * cfg.num_epochs))
        opts = optimizers(models, cfg, total * cfg.num_ppo_epochs * cfg.num_mini_batches)
        kl_ctl = KLController(cfg.kl_coef, cfg.kl_target, cfg.kl_horizon)
        guard_rails = GuardRails(cfg)
        run.resume({"model": models.policy, "value": models.value},
                   {**opts, "kl_controller": kl_ctl, "guard_rails": guard_rails}, tokenizer, total_steps=total,
                   unit="update")
        if run.main:
            for name in ("samples.jsonl", "eval_samples.jsonl"):
                drop_rows_after(run.out / name, run.step)
        lengths = [len(p) for p in prompts.ids]
        if run.step == 0:
            held_out_eval(run, models, prompts, tokenizer, reward_fn, stats)   # the curve's first point

        while run.step < run.total_steps:
            t0 = time.perf_counter()
            epoch, i = divmod(run.step, per_epoch)
            idx = epoch_batches(lengths, cfg.batch_size, epoch=epoch, seed=cfg.seed, shuffle=cfg.shuffle,
                                group_by_length=False)[:per_epoch][i]
            # 1-3. rollout, scores, advantages and returns under the controller's current KL coefficient
            rollout, t_gen = make_rollout(models, [prompts.texts[j] for j in idx], [prompts.ids[j] for j in idx],
                                          tokenizer, cfg, reward_fn, stats, device, kl_ctl.value)
            # 4. PPO epochs over minibatches: policy, then value, one optimizer step each per minibatch
            t1 = time.perf_counter()
            rows, train_tokens = ppo_epochs(run, models, opts, rollout, cfg, pad_id, value_stats)
            if cfg.release_memory:
                # once per update, not per minibatch: every minibatch needs the same pages again, and re-faulting
                # them after each trim cost ~4 s per update on the peer workload at the same peak RSS
                trim_freed_memory()
            run.end_step()
            # 5. metrics (TRL's names), KL controller, guard rails, samples, held-out eval, checkpoint
            metrics = update_metrics(rollout, rows, kl_ctl.value)
            metrics.update({"learning_rate": opts["policy_scheduler"].get_last_lr()[0],
                            "epoch": run.step / per_epoch, "train/skipped_steps": run.guard.skipped,
                            "perf/generation_tokens_per_sec": int(rollout.lengths.sum()) / max(t_gen, 1e-9),
                            "perf/training_tokens_per_sec": train_tokens / max(time.perf_counter() - t1, 1e-9),
                            "perf/generation_seconds": t_gen, "perf/step_seconds": time.perf_counter() - t0})
            kl_ctl.update(metrics["objective/kl"], cfg.batch_size)
            for msg in guard_rails.check(run.step, metrics["objective/kl"], metrics["val/eos_rate"],
                                         metrics["response/length_mean"], metrics["response/distinct_ratio"]):
                warn(msg)
            if run.log_due():
                run.log(metrics)
            if run.main and cfg.sample_steps > 0 and (run.step % cfg.sample_steps == 0 or run.step == 1):
                write_samples(run.out, run.step, rollout.prompts, rollout.texts, rollout.scores.tolist(),
                              rollout.ended.tolist())
            run.bar.set_postfix(score=f"{metrics['objective/scores']:.3f}", kl=f"{metrics['objective/kl']:.3f}")
            run.bar.update(1)
            if (cfg.eval_steps > 0 and run.step % cfg.eval_steps == 0) or run.step == run.total_steps:
                held_out_eval(run, models, prompts, tokenizer, reward_fn, stats)
            run.save_if_due()
        run.bar.close()

        # 6. the policy under out/final
        final = save_final(models.policy, tokenizer, run.out, adapter_only=cfg.save_adapter_only)
        note(f"saved {final}")
        return final


def write_samples(out: Path, step: int, prompts: list, responses: list[str], scores: list[float],
                  ended: list[bool], n: int = 4) -> None:
    """Append a few (prompt, response, score) rows of this update to out/samples.jsonl."""
    with open(out / "samples.jsonl", "a") as fh:
        for p, r, s, e in list(zip(prompts, responses, scores, ended))[:n]:
            fh.write(json.dumps({"step": step, "prompt": p, "response": r, "score": round(s, 4),
                                 "ended_with_eos": e}) + "\n")
