"""KL to the reference: per-token estimators, the KL-penalised per-token reward, fixed and adaptive coefficients.

Per-token log-probs are of the sampled tokens y_t ~ pi: logp = log pi(y_t|...), ref_logp = log pi_ref(y_t|...).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


def kl_k1(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """k1 = log pi - log pi_ref: unbiased for KL(pi || pi_ref) under samples from pi, high variance, can be < 0
    (Schulman 2020, "Approximating KL divergence"). Any shape; elementwise."""
    return logp - ref_logp


def kl_k3(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """k3 = (r - 1) - log r with r = pi_ref / pi: unbiased, never negative, lower variance (Schulman 2020)."""
    log_ratio = ref_logp - logp
    return torch.expm1(log_ratio) - log_ratio


def kl_penalized_rewards(scores: Tensor, kl: Tensor, response_mask: Tensor, kl_coef: float) -> tuple[Tensor, Tensor]:
    """Per-token rewards of RLHF-PPO (Ziegler et al. 2019, arXiv:1909.08593, eq. 2; Ouyang et al. 2022, eq. 2):

        r_t = -kl_coef * kl_t          for every response token t
        r_T += score                   at the last real response token T

    scores: (B,) one score per response; kl: (B, T) per-token KL estimate; response_mask: (B, T) bool (a prefix).
    Returns (rewards (B, T), non_score_reward (B, T) = the KL part alone), 0 on padding.
    """
    m = response_mask.to(kl.dtype)
    non_score = -kl_coef * kl * m
    last = (response_mask.long().sum(-1) - 1).clamp(min=0)                        # (B,)
    rewards = non_score.clone()
    rewards[torch.arange(rewards.shape[0], device=rewards.device), last] += scores.to(rewards.dtype)
    return rewards, non_score


@dataclass
class KLController:
    """The KL coefficient: fixed (target None) or adaptive (Ziegler et al. 2019, sec. 2.2):

        error = clip(KL / target - 1, -0.2, 0.2);   coef <- coef * (1 + error * n_steps / horizon)

    so the coefficient grows while the measured KL sits above the target and shrinks below it.
    """

    value: float
    target: float | None = None
    horizon: int = 10000

    def update(self, current_kl: float, n_steps: int) -> float:
        if self.target is None or not math.isfinite(current_kl):
            return self.value
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon
        return self.value

    def state_dict(self) -> dict:
        return {"value": self.value, "target": self.target, "horizon": self.horizon}

    def load_state_dict(self, state: dict) -> None:
        self.value, self.target, self.horizon = state["value"], state["target"], state["horizon"]
