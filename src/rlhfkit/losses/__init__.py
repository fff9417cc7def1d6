"""Pure loss math: tensors in, per-example or per-token losses out. Imports only torch."""

from rlhfkit.losses.masked import REDUCE_MODES, masked_mean, masked_sum, masked_var, reduce_loss
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
