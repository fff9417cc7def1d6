"""Causal attention over packed sequences, one kernel call per sequence ("varlen" attention on any device).

A packed row holds several sequences back to back. The masked path (`collate.pack_groups`) gives SDPA a (R, 1, L, L)
boolean mask, and SDPA then computes every (query block, key block) pair of the row, also those the mask removes:
for PPO's rollout rows that is ~3x the attention work that is needed, and the rows are padded to the longest one.
Here every sequence of the row runs its own causal SDPA call instead (`is_causal=True`, which skips the blocks above
the diagonal), so a whole batch can live in one unpadded row: no padding positions in the GEMMs either.

The function is registered with transformers as the attention implementation `rlhfkit_packed`. Called without the
`packed_segments` keyword (generation, evaluation, a plain forward) it is exactly transformers' `sdpa`, and its mask
function is sdpa's, so a model can keep this implementation for everything.
`rlhfkit.models.setup.use_packed_attention(model)` switches a loaded model to it.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F

NAME = "rlhfkit_packed"
_registered = False


def packed_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     attention_mask: Optional[torch.Tensor], dropout: float = 0.0, scaling: Optional[float] = None,
                     packed_segments: Optional[Sequence[tuple[int, int]]] = None,
                     **kwargs: Any) -> tuple[torch.Tensor, None]:
    """query (1, H, L, D), key/value (1, KVH, L, D); packed_segments: [(start, end), ...] column ranges of the
    sequences in the single row, covering [0, L) in order. Returns (1, L, H, D) as transformers expects.

    Each segment attends causally to itself only: softmax(q_s k_s^T * scaling + causal) v_s (Vaswani et al. 2017)."""
    if packed_segments is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    if query.shape[0] != 1:
        raise ValueError(f"packed attention takes one row, got {query.shape[0]}")
    from rlhfkit.models.kernels.lean import lean_attention_applies, packed_causal_attention

    if lean_attention_applies(module, query, dropout):                # training forward of a lean layer
        # in autocast's dtype: the cast to query's dtype that the path below makes is undone by the output
        # projection's autocast (bf16 -> fp32 -> bf16 is exact), so it is skipped and the output stays shared
        out = packed_causal_attention(query, key, value, packed_segments, scaling)
        if not torch.is_autocast_enabled(query.device.type):
            out = out.to(query.dtype)
        return out.transpose(1, 2), None
    groups = query.shape[1] // key.shape[1]
    if groups > 1:                                    # grouped-query attention: share each K/V head
        key = key.repeat_interleave(groups, dim=1)
        value = value.repeat_interleave(groups, dim=1)
    p = dropout if module.training else 0.0
    dtype = query.dtype
    if query.device.type == "cpu" and dtype == torch.bfloat16:
        # torch's CPU flash kernel is slower in bf16 than in fp32 (25.7 vs 34.7 ms per layer, forward + backward,
        # for the 8 sequences of a PPO rollout of SmolLM2-135M), and fp32 is exact
        query, key, value = query.float(), key.float(), value.float()
    out = [F.scaled_dot_product_attention(query[:, :, s:e], key[:, :, s:e], value[:, :, s:e], dropout_p=p,
                                          is_causal=True, scale=scaling)
           for s, e in packed_segments]               # each (1, H, e - s, D)
    return torch.cat(out, dim=2).to(dtype).transpose(1, 2).contiguous(), None


def register() -> None:
    """Make `rlhfkit_packed` known to transformers (attention function and its mask function, sdpa's)."""
    global _registered
    if _registered:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, packed_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    _registered = True
