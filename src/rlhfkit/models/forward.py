"""Forward passes over packed rows (completion-only log-probs, hidden states) and the precision they run in.

The backbone (`model.get_decoder()`) runs once over the packed rows; only the hidden states that predict
completion tokens go through the LM head (`rlhfkit.models.kernels.logprobs.token_logprobs`, chunked over rows). For
SmolLM2 on the HH workload that is ~700 of ~1,600 positions, and no full-vocabulary logits of the prompt are
ever made. See docs/performance.md.
"""
from __future__ import annotations

import contextlib
import dataclasses
import sys
from typing import Any

import torch

from rlhfkit.data.collate import PackedBatch, segment_mask
from rlhfkit.models.kernels.attention import NAME as PACKED
from rlhfkit.models.kernels.logprobs import token_logprobs


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 GEMMs are fast here: CUDA with bf16 support, or a CPU with AMX or AVX512-BF16.

    Without them (e.g. AVX512 without BF16) a CPU emulates bf16 and its GEMMs run ~3x slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        cpu = torch.cpu
        return bool(getattr(cpu, "_is_amx_tile_supported", lambda: False)()
                    or getattr(cpu, "_is_avx512_bf16_supported", lambda: False)())
    return True


def resolve_precision(cfg: Any, device: torch.device) -> Any:
    """The config with `precision` made concrete for this device ("auto" -> bf16 where native, else fp32).
    Asking for bf16 on a CPU that emulates it works, with a warning that it is ~3x slower than fp32 there."""
    native = native_bf16(device)
    if cfg.precision == "auto":
        return dataclasses.replace(cfg, precision="bf16" if native else "fp32")
    if cfg.precision == "bf16" and not native:
        print(f"[rlhfkit] warning: this {device.type.upper()} has no native bf16 (no AMX / AVX512-BF16): bf16 "
              "autocast is emulated and ~3x slower than fp32 here; --precision fp32 (or auto) is faster",
              file=sys.stderr)
    return cfg


def autocast(device: torch.device, precision: str, cache: bool = True) -> contextlib.AbstractContextManager:
    """bf16 autocast for one forward/loss region. Never let a region span an optimizer step: its weight cache
    would keep serving the bf16 copies made before the update (the updates become invisible).
    cache=False casts each weight where it is used instead of keeping a bf16 copy of every weight until the region
    ends: the same arithmetic, one model's bf16 copy less at the forward's peak, for forwards that use each weight
    once (training forwards; generation reuses them every token and keeps the cache)."""
    if precision != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, cache_enabled=cache)


def inference_autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast for forwards without gradients (sampling, reference, reward, evaluation): bf16 only where it is
    native. On CPUs that emulate bf16, fp32 runs these ~3x faster and exactly."""
    return autocast(device, precision) if native_bf16(device) else contextlib.nullcontext()


def causal_lm(model: Any) -> Any:
    """The transformers *ForCausalLM inside a PEFT or accelerate/DDP wrapper."""
    m = getattr(model, "module", model)  # DDP
    if hasattr(m, "get_base_model"):  # PEFT
        m = m.get_base_model()
    return m


def attention_mask_for(model: Any, mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The packed boolean mask in the form the model's attention implementation takes.

    sdpa takes bool (True = attend); eager adds the mask to the scores, so it gets 0 / -inf in the compute dtype.
    FlashAttention cannot take an arbitrary 4D mask.
    """
    impl = getattr(causal_lm(model).config, "_attn_implementation", "sdpa") or "sdpa"
    if impl in ("sdpa", "flex_attention", PACKED):
        return mask
    if impl == "eager":
        out = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
        return out.masked_fill(~mask, torch.finfo(dtype).min)
    raise ValueError(f"attention implementation '{impl}' cannot take the packed per-sequence mask; "
                     "load the model with attn_implementation='sdpa'")


def hidden_states(model: Any, batch: PackedBatch) -> torch.Tensor:
    """Last hidden states (R, L, H) of the packed rows. `model` may be PEFT-wrapped (adapters active).

    A one-row batch with `segments` runs one causal attention call per segment when the model uses the
    `rlhfkit_packed` attention (models/kernels/attention.py); on any other implementation it gets the equivalent
    mask."""
    lm = causal_lm(model)
    decoder = lm.get_decoder()
    compute_dtype = torch.get_autocast_dtype(batch.input_ids.device.type) \
        if torch.is_autocast_enabled(batch.input_ids.device.type) else lm.dtype
    kw: dict = {}
    if batch.segments is not None and getattr(lm.config, "_attn_implementation", None) == PACKED:
        kw["packed_segments"] = batch.segments
        mask = None
    else:
        mask = batch.attention_mask if batch.segments is None \
            else segment_mask(batch.segments, batch.input_ids.shape[1]).to(batch.input_ids.device)
        mask = attention_mask_for(model, mask, compute_dtype)
    out = decoder(input_ids=batch.input_ids, position_ids=batch.position_ids, attention_mask=mask,
                  use_cache=False, **kw)
    return out.last_hidden_state


def completion_logprobs(model: Any, batch: PackedBatch, *, temperature: float = 1.0,
                        chunk_size: int = 1024) -> torch.Tensor:
    """Per-token log-probs (N,) fp32 of every completion token in `batch` (order of batch.target_ids)."""
    h = hidden_states(model, batch)                                    # (R, L, H)
    h = h.reshape(-1, h.shape[-1]).index_select(0, batch.target_index)  # (N, H)
    head = causal_lm(model).get_output_embeddings()
    # The LM head's GEMMs follow autocast where bf16 is native; on CPUs that emulate bf16 they run in fp32,
    # which is both exact and ~3x faster there (TRL's CPU path also runs this head's backward in fp32).
    dtype = None if native_bf16(h.device) else torch.promote_types(head.weight.dtype, torch.float32)
    return token_logprobs(h, head.weight, batch.target_ids, bias=getattr(head, "bias", None),
                          chunk_size=chunk_size, temperature=temperature, compute_dtype=dtype)


def sequence_logprobs(model: Any, batch: PackedBatch, **kw: Any) -> torch.Tensor:
    """Summed completion log-probs (S,) fp32, one per completion, in the order the completions were packed."""
    tok = completion_logprobs(model, batch, **kw)
    out = torch.zeros(batch.seq_lengths.shape[0], dtype=tok.dtype, device=tok.device)
    return out.index_add(0, batch.target_seq, tok)


class CompletionLogprobs(torch.nn.Module):
    """Wraps a causal LM so that one `forward(batch)` returns completion log-probs: summed per completion (S,),
    or per token (N,) with `per_token=True`.

    The trainers hand this module (not the bare backbone) to `accelerate.prepare` and call it, so that under DDP
    the gradient all-reduce hooks see the forward that produced the loss.
    """

    def __init__(self, model: Any):
        super().__init__()
        self.model = model

    def forward(self, batch: PackedBatch, per_token: bool = False) -> torch.Tensor:  # noqa: D401
        if per_token:
            return completion_logprobs(self.model, batch)
        return sequence_logprobs(self.model, batch)
