"""Scalar reward head: one score per (prompt, response), read at the last real token of the sequence.

A reward model here is a transformers `*ForSequenceClassification` with `num_labels=1` (a decoder backbone plus a
bias-free linear `score` head), so it saves and reloads with `AutoModelForSequenceClassification`. We never use
its own forward to pick the token: transformers finds "the last non-pad token" by comparing ids with the pad id,
which for models whose pad token is their EOS (SmolLM2, Llama 3, ...) skips the EOS that ends every response.
The position comes from lengths (packed rows) or from the attention mask (padded rows) instead.

Reward position: the last token of prompt + response, i.e. the EOS the tokenizer appended to the response
(`rlhfkit.data.tokenize`), which has attended to the whole exchange.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from rlhfkit.data.collate import PackedBatch
from rlhfkit.models.forward import attention_mask_for, causal_lm, hidden_states


def last_token_index(attention_mask: Tensor) -> Tensor:
    """Index of the last position with attention_mask == 1 in each row: works for right padding, left padding
    and no padding alike, and never looks at token ids.

    attention_mask: (B, T) 0/1 or bool.  Returns (B,) long.
    """
    m = attention_mask.to(torch.long)
    T = m.shape[-1]
    # the first 1 met when reading each row backwards
    return (T - 1) - m.flip(-1).argmax(-1)


def reward_head(model: Any) -> torch.nn.Module:
    """The scalar `score` head (PEFT's trainable copy when the model is a LoRA model with the head saved)."""
    m = causal_lm(model)
    head = getattr(m, "score", None)
    if head is None:
        raise TypeError(f"{type(m).__name__} has no `score` head: a reward model must be a decoder "
                        "*ForSequenceClassification (num_labels=1)")
    return head


def _apply_head(model: Any, h: Tensor) -> Tensor:
    """(S, H) hidden states -> (S,) fp32 rewards. The head runs outside autocast in its weights' dtype (at least
    fp32), so a reward is not rounded to bf16's 3 significant digits."""
    head = reward_head(model)
    weight = next(p for p in head.parameters())
    dtype = torch.promote_types(weight.dtype, torch.float32)
    with torch.autocast(device_type=h.device.type, enabled=False):
        if dtype != weight.dtype:  # a frozen bf16 reward model: compute the dot product in fp32
            return torch.nn.functional.linear(h.to(dtype), weight.to(dtype)).squeeze(-1)
        return head(h.to(dtype)).squeeze(-1).float()


def packed_rewards(model: Any, batch: PackedBatch) -> Tensor:
    """Rewards (S,) fp32 of every completion of a packed batch, read at each completion's last token."""
    h = hidden_states(model, batch)                                      # (R, L, H)
    h = h.reshape(-1, h.shape[-1]).index_select(0, batch.last_index)     # (S, H)
    return _apply_head(model, h)


def packed_values(model: Any, batch: PackedBatch) -> Tensor:
    """Per-token values (N,) fp32 of a packed batch, aligned with batch.target_ids: the value of completion token t
    is read at the position that predicts it (the state before t is emitted), as PPO's value model does."""
    h = hidden_states(model, batch)                                      # (R, L, H)
    h = h.reshape(-1, h.shape[-1]).index_select(0, batch.target_index)   # (N, H)
    return _apply_head(model, h)


def padded_rewards(model: Any, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
    """Rewards (B,) fp32 of padded rows (left or right padding), read at the last attended position.

    The plain layout: used for parity checks and for backbones whose attention cannot take packed masks."""
    lm = causal_lm(model)
    B, T = input_ids.shape
    real = attention_mask.to(torch.bool)
    # positions count real tokens only, so a left-padded row sees the same positions as an unpadded one
    position_ids = (real.long().cumsum(-1) - 1).clamp(min=0)
    causal = torch.ones(T, T, dtype=torch.bool, device=input_ids.device).tril()
    mask = (causal[None] & real[:, None, :])
    mask = mask | torch.eye(T, dtype=torch.bool, device=input_ids.device)[None]  # pads attend to themselves
    dtype = torch.get_autocast_dtype(input_ids.device.type) if torch.is_autocast_enabled(input_ids.device.type) \
        else lm.dtype
    out = lm.get_decoder()(input_ids=input_ids, position_ids=position_ids,
                           attention_mask=attention_mask_for(model, mask[:, None], dtype), use_cache=False)
    h = out.last_hidden_state[torch.arange(B, device=input_ids.device), last_token_index(attention_mask)]
    return _apply_head(model, h)


class RewardScores(torch.nn.Module):
    """Wraps a reward model so that `forward(batch)` returns (S,) rewards of a packed batch; the trainer hands
    this module to `accelerate.prepare` (so DDP sees the forward that produced the loss)."""

    def __init__(self, model: Any):
        super().__init__()
        self.model = model

    def forward(self, batch: PackedBatch) -> Tensor:  # noqa: D401
        return packed_rewards(self.model, batch)
