"""Pairwise preference losses: Bradley-Terry (reward model), DPO, cDPO, robust DPO, IPO, SLiC hinge.

Every function is a pure map from tensors to per-pair losses of shape (B,); the trainer picks the reduction.

Notation used throughout:
    chosen_logratios   = log pi(y_w|x) - log pi_ref(y_w|x)   (B,)   summed over completion tokens
    rejected_logratios = log pi(y_l|x) - log pi_ref(y_l|x)   (B,)
    h                  = chosen_logratios - rejected_logratios

The DPO-family definitions and sign conventions match TRL 1.16.0 (`trl/trainer/dpo_trainer.py`, `_compute_loss`)
for `loss_type` in {"sigmoid", "robust", "ipo", "hinge"}; `tests/losses/test_trl_golden.py` checks this against
values produced by TRL's own code (`scripts/make_trl_golden.py`). One deliberate difference: TRL 1.16's "sigmoid"
ignores `label_smoothing` (cDPO was dropped there); ours applies it, and equals TRL 1.16 exactly at 0.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def sigmoid_loss(
    chosen_logratios: Tensor, rejected_logratios: Tensor, beta: float, label_smoothing: float = 0.0
) -> Tensor:
    """DPO (Rafailov et al. 2023, arXiv:2305.18290, eq. 7); label_smoothing > 0 is conservative DPO (cDPO).

        loss = -(1 - eps) * log sigmoid(beta * h) - eps * log sigmoid(-beta * h)

    cDPO (Mitchell 2023, "A note on DPO with noisy preferences") treats each label as flipped with probability
    eps; the loss is the binary cross-entropy against the soft target 1 - eps, so it no longer pushes h to infinity.

    chosen_logratios, rejected_logratios: (B,) log pi - log pi_ref, summed over completion tokens.
    beta: inverse temperature of the implicit reward (larger = stay closer to the reference).
    label_smoothing: eps in [0, 0.5].
    Returns (B,) per-pair losses.
    """
    h = beta * (chosen_logratios - rejected_logratios)  # (B,)
    if label_smoothing == 0.0:
        return -F.logsigmoid(h)
    return -(1.0 - label_smoothing) * F.logsigmoid(h) - label_smoothing * F.logsigmoid(-h)


def robust_loss(
    chosen_logratios: Tensor, rejected_logratios: Tensor, beta: float, label_smoothing: float = 0.0
) -> Tensor:
    """Robust DPO, rDPO (Chowdhury et al. 2024, "Provably Robust DPO", arXiv:2403.00409).

        loss = [ -(1 - eps) * log sigmoid(beta * h) + eps * log sigmoid(-beta * h) ] / (1 - 2 * eps)

    eps (`label_smoothing`) is the known probability that a preference label was flipped. Unlike cDPO the flipped
    term enters with a minus sign and the sum is divided by (1 - 2 eps): this makes the loss an unbiased estimate of
    the clean-label DPO loss, so it can be negative for a single pair. eps = 0 gives plain DPO.

    chosen_logratios, rejected_logratios: (B,) log pi - log pi_ref, summed over completion tokens.
    label_smoothing: eps in [0, 0.5) (0.5 makes labels pure noise and the correction divides by zero).
    Returns (B,) per-pair losses.
    """
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"robust_loss needs label_smoothing (flip rate) in [0, 0.5), got {label_smoothing}")
    h = beta * (chosen_logratios - rejected_logratios)  # (B,)
    clean = -(1.0 - label_smoothing) * F.logsigmoid(h)  # loss if the label is right
    flipped = -label_smoothing * F.logsigmoid(-h)  # loss if the label is flipped
    return (clean - flipped) / (1.0 - 2.0 * label_smoothing)


def ipo_loss(chosen_logratios: Tensor, rejected_logratios: Tensor, beta: float) -> Tensor:
    """IPO (Azar et al. 2023, "A General Theoretical Paradigm...", arXiv:2310.12036, eq. 17).

        loss = (h - 1 / (2 * beta))^2        beta is the paper's tau

    IMPORTANT: pass log-ratios **divided by each completion's length** (mean over completion tokens, not the sum).
    With summed log-ratios the squared loss grows with completion length and the target margin 1/(2 beta) means
    something different for every pair. TRL (confirmed with the IPO authors) normalises each side by its own
    number of completion tokens; `preference_loss(..., loss_type="ipo")` does that for you from the lengths.

    chosen_logratios, rejected_logratios: (B,) per-token-averaged log pi - log pi_ref.
    Returns (B,) per-pair losses.
    """
    h = chosen_logratios - rejected_logratios  # (B,)
    return (h - 1.0 / (2.0 * beta)) ** 2


def hinge_loss(chosen_logratios: Tensor, rejected_logratios: Tensor, beta: float) -> Tensor:
    """SLiC hinge (Zhao et al. 2023, SLiC-HF, arXiv:2305.10425, rank calibration loss), in DPO's parametrisation.

        loss = relu(1 - beta * h)

    This is beta * max(0, delta - h): SLiC's calibration hinge with margin delta = 1/beta, measured on log-ratios
    against the reference (as TRL does) instead of on raw log-likelihoods.

    chosen_logratios, rejected_logratios: (B,) log pi - log pi_ref, summed over completion tokens.
    Returns (B,) per-pair losses.
    """
    h = chosen_logratios - rejected_logratios  # (B,)
    return torch.relu(1.0 - beta * h)


def chosen_nll(chosen_logps: Tensor, chosen_lengths: Tensor) -> Tensor:
    """Per-token negative log-likelihood of the chosen responses: the term RPO adds to DPO (Pang et al. 2024,
    "Iterative Reasoning Preference Optimization", eq. 3; TRL's `rpo_alpha`). DPO alone only moves the chosen
    response relative to the rejected one and can lower both, e.g. learn to avoid EOS when rejected answers are
    short; this term keeps the chosen answers, their ending included, likely.

    chosen_logps: (B,) summed log-probs of each chosen response; chosen_lengths: (B,) its tokens.
    Returns (B,) -chosen_logps / chosen_lengths.
    """
    return -chosen_logps / chosen_lengths.clamp(min=1).to(chosen_logps.dtype)


def bradley_terry_loss(chosen_rewards: Tensor, rejected_rewards: Tensor, margin: Tensor | None = None,
                       center_coefficient: float = 0.0) -> Tensor:
    """Bradley-Terry pairwise loss for reward models (Ouyang et al. 2022, arXiv:2203.02155, eq. 1, per pair).

        loss = -log sigmoid(r_chosen - r_rejected - margin)  +  c * (r_chosen + r_rejected)^2

    With a margin (Llama 2, Touvron et al. 2023, eq. 2) the model must separate clearly-better pairs by at least
    about `margin` before the loss gets small. The second term (c = `center_coefficient`, Eisenstein et al. 2023,
    "Helping or Herding?", sec. 3) keeps rewards centred on 0: Bradley-Terry only sees differences, so without it
    the mean reward drifts freely. The mean over pairs equals TRL 1.16's RewardTrainer loss with
    `center_rewards_coefficient=c`.

    chosen_rewards, rejected_rewards: (B,) scalar rewards of the chosen / rejected responses.
    margin: (B,) or scalar, optional; None means 0.
    Returns (B,) per-pair losses.
    """
    diff = chosen_rewards - rejected_rewards  # (B,)
    if margin is not None:
        diff = diff - margin
    loss = -F.logsigmoid(diff)
    if center_coefficient:
        loss = loss + center_coefficient * (chosen_rewards + rejected_rewards) ** 2
    return loss


# Dispatch for preference_loss: each entry takes (chosen_logratios, rejected_logratios, beta, label_smoothing).
_DPO_LOSSES: dict[str, Callable[[Tensor, Tensor, float, float], Tensor]] = {
    "sigmoid": sigmoid_loss,
    "robust": robust_loss,
    "ipo": lambda c, r, beta, _eps: ipo_loss(c, r, beta),
    "hinge": lambda c, r, beta, _eps: hinge_loss(c, r, beta),
}
_USES_LABEL_SMOOTHING = frozenset({"sigmoid", "robust"})

LOSS_TYPES: tuple[str, ...] = tuple(_DPO_LOSSES)


def preference_loss(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    *,
    loss_type: str,
    beta: float,
    label_smoothing: float = 0.0,
    chosen_lengths: Tensor | None = None,
    rejected_lengths: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """DPO-family loss of `loss_type` on summed completion log-probs, plus the implicit rewards.

    policy_*_logps, ref_*_logps: (B,) log pi(y|x) summed over completion tokens (policy with grad, ref without).
    loss_type: one of LOSS_TYPES ("sigmoid", "robust", "ipo", "hinge"); same names and values as TRL 1.16.
    beta: DPO's beta (IPO's tau).
    label_smoothing: cDPO's eps for "sigmoid", the flip rate for "robust"; must be 0 for the others.
    chosen_lengths, rejected_lengths: (B,) number of completion tokens; required by "ipo", which divides each
        log-ratio by its length (clamped to >= 1, as TRL does); ignored by the other losses.

    Returns (losses (B,), chosen_rewards (B,), rejected_rewards (B,)), where the rewards are the detached implicit
    rewards beta * (logp - ref_logp) of the *summed* log-ratios, for every loss_type (as TRL logs them).
    """
    loss_fn = _DPO_LOSSES.get(loss_type)
    if loss_fn is None:
        raise ValueError(f"unknown loss_type {loss_type!r}; valid: {', '.join(LOSS_TYPES)}")
    if label_smoothing != 0.0 and loss_type not in _USES_LABEL_SMOOTHING:
        raise ValueError(
            f"label_smoothing={label_smoothing} has no effect on loss_type {loss_type!r}; "
            f"it is used by: {', '.join(sorted(_USES_LABEL_SMOOTHING))}"
        )

    chosen_logratios = policy_chosen_logps - ref_chosen_logps  # (B,)
    rejected_logratios = policy_rejected_logps - ref_rejected_logps  # (B,)

    if loss_type == "ipo":
        if chosen_lengths is None or rejected_lengths is None:
            raise ValueError('loss_type "ipo" needs chosen_lengths and rejected_lengths (completion token counts)')
        losses = loss_fn(
            chosen_logratios / chosen_lengths.to(chosen_logratios.dtype).clamp(min=1.0),
            rejected_logratios / rejected_lengths.to(rejected_logratios.dtype).clamp(min=1.0),
            beta,
            label_smoothing,
        )
    else:
        losses = loss_fn(chosen_logratios, rejected_logratios, beta, label_smoothing)

    chosen_rewards = beta * chosen_logratios.detach()
    rejected_rewards = beta * rejected_logratios.detach()
    return losses, chosen_rewards, rejected_rewards


def pairwise_accuracy(diff: Tensor | list) -> float:
    """Share of pairs with d > 0, ties counting half (a detached statistic). diff: (N,) chosen minus rejected
    scores (a tensor or a list of numbers); nan for no pairs."""
    d = torch.as_tensor(diff, dtype=torch.float64).flatten()
    if d.numel() == 0:
        return float("nan")
    return float(((d > 0).double() + 0.5 * (d == 0).double()).mean())

