"""Pure loss math: tensors in, per-example or per-token losses out. Imports only torch."""

from rlhfkit.losses.advantages import gae, gae_loop, whiten
from rlhfkit.losses.kl import KLController, kl_k1, kl_k3, kl_penalized_rewards
from rlhfkit.losses.masked import REDUCE_MODES, masked_mean, masked_sum, masked_var, reduce_loss
from rlhfkit.losses.ppo import entropy_from_logits, explained_variance, policy_loss, value_loss
from rlhfkit.losses.preference import (
    LOSS_TYPES,
    bradley_terry_loss,
    hinge_loss,
    ipo_loss,
    preference_loss,
    robust_loss,
    sigmoid_loss,
)

__all__ = [
    "KLController",
    "entropy_from_logits",
    "explained_variance",
    "gae",
    "gae_loop",
    "kl_k1",
    "kl_k3",
    "kl_penalized_rewards",
    "policy_loss",
    "value_loss",
    "whiten",
    "LOSS_TYPES",
    "REDUCE_MODES",
    "bradley_terry_loss",
    "hinge_loss",
    "ipo_loss",
    "masked_mean",
    "masked_sum",
    "masked_var",
    "preference_loss",
    "reduce_loss",
    "robust_loss",
    "sigmoid_loss",
]
