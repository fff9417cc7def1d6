"""PPO losses (Schulman et al. 2017, arXiv:1707.06347): clipped policy loss, clipped value loss, entropy.

Per-token tensors are (B, T) over response tokens with `response_mask` (B, T) bool; the functions return per-token
losses and the trainer names the reduction (PPO: masked sums over a minibatch's response tokens, so micro-batches
add up to the minibatch's token mean, trainers/ppo.py; `rlhfkit.losses.masked.reduce_loss` has the usual token and
sequence means).
"""
from __future__ import annotations

import torch
from torch import Tensor


def policy_loss(logp: Tensor, old_logp: Tensor, advantages: Tensor, cliprange: float) -> tuple[Tensor, Tensor, Tensor]:
    """Clipped surrogate (PPO paper, eq. 7), as a loss to minimise:

        ratio = exp(logp - old_logp)
        loss_t = max(-A_t * ratio, -A_t * clip(ratio, 1 - eps, 1 + eps))

    logp: (B, T) log-probs of the sampled tokens under the policy being trained; old_logp: (B, T) the same at
    sampling time (no grad); advantages: (B, T); cliprange: eps.
    Returns (per-token loss, per-token clipped indicator (1.0 where the clipped term was taken), per-token
    approx KL 0.5 * (logp - old_logp)^2), all (B, T).
    """
    log_ratio = logp - old_logp
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = torch.maximum(unclipped, clipped)
    return loss, (clipped > unclipped).to(logp.dtype).detach(), (0.5 * log_ratio.detach() ** 2)


def value_loss(values: Tensor, old_values: Tensor, returns: Tensor, cliprange_value: float) -> tuple[Tensor, Tensor]:
    """Clipped value loss (as in OpenAI's baselines / TRL's PPO):

        v_clip = old_v + clip(v - old_v, -eps_v, eps_v)
        loss_t = 0.5 * max((v - R)^2, (v_clip - R)^2)

    values: (B, T) current value predictions; old_values: (B, T) at rollout time; returns: (B, T) GAE targets.
    Returns (per-token loss, per-token clipped indicator), both (B, T).
    """
    v_clipped = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    unclipped = (values - returns) ** 2
    clipped = (v_clipped - returns) ** 2
    return 0.5 * torch.maximum(unclipped, clipped), (clipped > unclipped).to(values.dtype).detach()


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Entropy of the categorical distribution at each position: H = logsumexp(z) - sum softmax(z) * z.

    logits: (..., V). Returns (...,) in nats."""
    z = logits.float()
    return torch.logsumexp(z, dim=-1) - (torch.softmax(z, dim=-1) * z).sum(dim=-1)


def explained_variance(values: Tensor, returns: Tensor, response_mask: Tensor) -> float:
    """1 - Var(R - V) / Var(R) over real tokens: 1 = the value model predicts the returns perfectly, 0 = no better
    than their mean, < 0 = worse."""
    r = returns[response_mask].double()
    v = values[response_mask].double()
    var_r = r.var(unbiased=False)
    if r.numel() < 2 or var_r == 0:
        return float("nan")
    return float(1.0 - (r - v).var(unbiased=False) / var_r)
