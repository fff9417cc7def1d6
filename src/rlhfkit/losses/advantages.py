"""Advantages for PPO: generalised advantage estimation and whitening.

Tensors are (B, T) over response tokens, with `response_mask` (B, T) bool, True on real response tokens; every
sequence's True entries form a prefix (tokens after a sequence's end are padding).
"""
from __future__ import annotations

import torch
from torch import Tensor

from rlhfkit.losses.masked import masked_mean, masked_var


def gae(rewards: Tensor, values: Tensor, response_mask: Tensor, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016, arXiv:1506.02438, eq. 16), vectorised.

        delta_t = r_t + gamma * V_{t+1} - V_t            (V after a sequence's last token is 0: the episode ends)
        A_t     = sum_{k >= 0} (gamma * lam)^k * delta_{t+k}
        returns_t = A_t + V_t                             (the value target)

    Computed as one matrix product, A = delta @ D with D[k, t] = (gamma lam)^(k - t) for k >= t, instead of a
    Python loop over T (tests check it against the plain reverse loop `gae_loop`).

    rewards, values: (B, T) per-token reward and value; response_mask: (B, T) bool.
    Returns (advantages, returns), both (B, T), 0 on padding.
    """
    m = response_mask.to(values.dtype)
    v = values * m
    r = rewards * m
    next_v = torch.cat([v[:, 1:], torch.zeros_like(v[:, :1])], dim=1)            # (B, T), 0 past the end
    delta = (r + gamma * next_v - v) * m                                            # (B, T)
    T = delta.shape[1]
    k = torch.arange(T, device=delta.device)
    power = (k[:, None] - k[None, :]).to(delta.dtype)                               # (T, T): k - t
    discount = torch.where(power >= 0, (gamma * lam) ** power.clamp(min=0), torch.zeros((), dtype=delta.dtype,
                                                                                          device=delta.device))
    advantages = (delta @ discount) * m                                              # (B, T)
    return advantages, (advantages + v) * m


def gae_loop(rewards: Tensor, values: Tensor, response_mask: Tensor, gamma: float,
             lam: float) -> tuple[Tensor, Tensor]:
    """The same as `gae`, as the textbook reverse loop over t (the reference the tests compare with)."""
    m = response_mask.to(values.dtype)
    B, T = rewards.shape
    adv = torch.zeros_like(rewards)
    last = torch.zeros(B, dtype=rewards.dtype, device=rewards.device)
    for t in reversed(range(T)):
        next_v = values[:, t + 1] * m[:, t + 1] if t + 1 < T else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_v - values[:, t]
        last = (delta + gamma * lam * last) * m[:, t]
        adv[:, t] = last
    return adv, (adv + values) * m


def whiten(x: Tensor, response_mask: Tensor, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """(x - mean) / sqrt(var + eps) over the True entries (unbiased variance, as TRL); shift_mean=False keeps
    the mean (used for rewards: whitening must not change their sign on average). 0 on padding.

    x: (B, T); response_mask: (B, T) bool. Returns (B, T).
    """
    mean = masked_mean(x, response_mask)
    var = masked_var(x, response_mask) if int(response_mask.sum()) > 1 else torch.zeros((), dtype=x.dtype)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return torch.where(response_mask, out, torch.zeros((), dtype=x.dtype, device=x.device))
