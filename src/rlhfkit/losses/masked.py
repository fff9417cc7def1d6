"""Masked reductions. A mask is a bool tensor named by what True means (e.g. `response_mask`: True on real
response tokens); only True entries count. Masked-out entries are never multiplied in, so a NaN or inf sitting
in padding cannot leak into a result.
"""

from __future__ import annotations

import torch
from torch import Tensor

REDUCE_MODES = ("token_mean", "seq_mean")


def masked_sum(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Sum of x over True entries of mask.

    x: any shape; mask: bool, same shape as x.
    dim: None sums everything (0-dim result); an int sums along that dimension only.
    """
    selected = torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device))
    return selected.sum() if dim is None else selected.sum(dim=dim)


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of x over True entries of mask: masked_sum / count.

    x: any shape; mask: bool, same shape as x.
    dim: None averages everything (0-dim result); an int averages along that dimension only.
    A slice with no True entry gives 0 (its count is clamped to 1), not NaN.
    """
    count = mask.sum() if dim is None else mask.sum(dim=dim)
    return masked_sum(x, mask, dim) / count.clamp(min=1).to(x.dtype)


def masked_var(x: Tensor, mask: Tensor, unbiased: bool = True) -> Tensor:
    """Variance of x over all True entries of mask (one scalar over the whole tensor).

        var = sum_i m_i (x_i - mean)^2 / (n - 1)     (n if unbiased=False),   n = number of True entries

    x: any shape; mask: bool, same shape as x. Raises ValueError if there are too few entries (n < 2 unbiased,
    n < 1 biased); checking this reads n on the host.
    """
    n = int(mask.sum().item())
    if n < (2 if unbiased else 1):
        raise ValueError(f"masked_var needs at least {2 if unbiased else 1} True entries, got {n}")
    mean = masked_mean(x, mask)
    sq_dev = masked_sum((x - mean) ** 2, mask)
    return sq_dev / (n - 1 if unbiased else n)


def reduce_loss(per_token: Tensor, mask: Tensor, mode: str = "token_mean") -> Tensor:
    """Reduce a per-token loss to a scalar.

    per_token: (B, T) loss at each position; mask: (B, T) bool, True where the token counts.
    mode:
      "token_mean": sum over all True tokens / number of True tokens (every token weighs the same; long
                    sequences weigh more).
      "seq_mean":   mean over sequences of each sequence's token mean (every sequence weighs the same).
                    A sequence with no True token contributes 0 but still counts in the batch mean.
    """
    if mode == "token_mean":
        return masked_mean(per_token, mask)
    if mode == "seq_mean":
        return masked_mean(per_token, mask, dim=-1).mean()
    raise ValueError(f"unknown reduce mode {mode!r}; valid: {', '.join(REDUCE_MODES)}")
