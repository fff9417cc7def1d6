"""Per-token log-probs of label tokens, computed from hidden states without materialising full logits.

DPO, IPO, PPO and GRPO need log p(label) only at completion positions. The caller runs the backbone, keeps the
hidden-state rows whose next-token label is a completion token, and calls `token_logprobs` on those rows only.
`token_logprobs` then applies the LM head in row chunks: at most `chunk_size x V` fp32 logits exist at any
time, in forward and in backward (which recomputes them instead of saving them).

Precision: the GEMMs run in the compute dtype (the autocast dtype when autocast is on for the inputs' device,
else the inputs' dtype); log-softmax runs in fp32; `grad_weight` is accumulated across chunks in fp32 and cast to
the weight's dtype once at the end. See docs/performance.md.

Imports torch only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# torch.mm(..., out_dtype=torch.float32) from bf16/fp16 inputs: CUDA only, torch >= 2.8
_MM_OUT_DTYPE = torch.__version__ >= "2.8"


def _softmax_dtype(dtype: torch.dtype) -> torch.dtype:
    """fp32 for 16- and 32-bit logits; fp64 stays fp64 (keeps float64 gradchecks meaningful)."""
    return torch.promote_types(dtype, torch.float32)


def logprobs_from_logits(logits: Tensor, labels: Tensor, temperature: float = 1.0) -> Tensor:
    """Plain reference: log_softmax(logits / T) at the label, in fp32 (fp64 for fp64 logits).

    logits: (..., V) any float dtype; labels: (...) long, every entry in [0, V).
    Returns (...) fp32 (fp64 for fp64 logits). Materialises the full fp32 log-softmax; used by generation code
    and as the parity baseline for `token_logprobs`.
    """
    logp = F.log_softmax(logits.to(_softmax_dtype(logits.dtype)) / temperature, dim=-1)  # (..., V) fp32
    return logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)


def _compute_dtype(hidden: Tensor, weight: Tensor) -> torch.dtype:
    """The dtype the LM-head GEMMs run in: autocast's if it is on for this device, else the inputs' promoted dtype."""
    device_type = hidden.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return torch.promote_types(hidden.dtype, weight.dtype)


def _chunk_logits(h: Tensor, w: Tensor, b: Tensor | None, temperature: float) -> Tensor:
    """(n, H) x (V, H) -> (n, V) fp32 logits / T. The GEMM runs in the dtype of h and w (the compute dtype)."""
    logits = h @ w.T if b is None else torch.addmm(b, h, w.T)  # (n, V) compute dtype
    logits = logits.to(_softmax_dtype(logits.dtype))
    if temperature != 1.0:
        logits = logits / temperature
    return logits


def _mm_fp32(a: Tensor, b: Tensor) -> Tensor:
    """a @ b with an fp32 (or fp64) result. 16-bit inputs: the GEMM runs in their dtype (fp32 accumulation inside
    the GEMM); on CUDA the result is written straight to fp32, elsewhere it is rounded to 16 bits and upcast."""
    if a.dtype in (torch.float32, torch.float64):
        return a @ b
    if a.is_cuda and _MM_OUT_DTYPE:
        return torch.mm(a, b, out_dtype=torch.float32)
    return (a @ b).float()


def _forward_chunks(
    hidden: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    labels: Tensor,
    chunk_size: int,
    temperature: float,
    dtype: torch.dtype,
) -> tuple[Tensor, Tensor]:
    """Chunked forward. Returns (label log-probs (N,) fp32, logsumexp of logits / T (N,) fp32)."""
    n_rows = hidden.shape[0]
    out_dtype = _softmax_dtype(dtype)
    out = torch.empty(n_rows, dtype=out_dtype, device=hidden.device)
    lse = torch.empty(n_rows, dtype=out_dtype, device=hidden.device)
    with torch.autocast(hidden.device.type, enabled=False):  # casts are explicit below
        w = weight.to(dtype)  # (V, H), cast once per call
        b = None if bias is None else bias.to(dtype)
        for start in range(0, n_rows, chunk_size):
            end = min(start + chunk_size, n_rows)
            logits = _chunk_logits(hidden[start:end].to(dtype), w, b, temperature)  # (n, V) fp32
            chunk_lse = torch.logsumexp(logits, dim=-1)  # (n,)
            out[start:end] = logits.gather(1, labels[start:end, None]).squeeze(1) - chunk_lse
            lse[start:end] = chunk_lse
    return out, lse


class _TokenLogprobs(torch.autograd.Function):
    """log softmax(hidden @ weight.T + bias)[label] / T per row, chunked; backward recomputes each chunk's logits."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, labels, chunk_size, temperature, dtype):
        out, lse = _forward_chunks(hidden, weight, bias, labels, chunk_size, temperature, dtype)
        ctx.save_for_backward(hidden, weight, bias, labels, lse)
        ctx.chunk_size, ctx.temperature, ctx.dtype = chunk_size, temperature, dtype
        return out

    @staticmethod
    def backward(ctx, grad_out):
        hidden, weight, bias, labels, lse = ctx.saved_tensors
        chunk_size, temperature, dtype = ctx.chunk_size, ctx.temperature, ctx.dtype
        need_hidden, need_weight, need_bias = ctx.needs_input_grad[:3]
        n_rows, vocab = hidden.shape[0], weight.shape[0]
        acc_dtype = _softmax_dtype(dtype)  # fp32 (fp64 for fp64 inputs)
        grad_out = grad_out.to(acc_dtype)

        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        grad_weight = None        # (V, H) fp32: the first chunk's product, later chunks added to it
        grad_bias = torch.zeros(vocab, dtype=acc_dtype, device=weight.device) if need_bias else None

        with torch.autocast(hidden.device.type, enabled=False):
            w = weight.to(dtype)
            b = None if bias is None else bias.to(dtype)
            for start in range(0, n_rows, chunk_size):
                end = min(start + chunk_size, n_rows)
                h = hidden[start:end].to(dtype)  # (n, H)
                logits = _chunk_logits(h, w, b, temperature)  # (n, V) fp32
                # d logp[label] / d logits = (onehot(label) - softmax(logits / T)) / T, scaled by the upstream grad
                g = logits.sub_(lse[start:end, None]).exp_()  # softmax(logits / T), in place: (n, V) fp32
                del logits                                      # (g is the same buffer; freed at g's cast below)
                go = grad_out[start:end]  # (n,)
                g.mul_(-go[:, None])
                g.scatter_add_(1, labels[start:end, None], go[:, None])
                if temperature != 1.0:
                    g.div_(temperature)
                if need_bias:
                    grad_bias += g.sum(dim=0)
                g = g.to(dtype)
                if need_hidden:
                    grad_hidden[start:end] = (g @ w).to(hidden.dtype)  # (n, H)
                if need_weight:
                    part = _mm_fp32(g.T, h)  # (V, H) fp32
                    grad_weight = part if grad_weight is None else grad_weight.add_(part)
                    del part

        if need_weight:
            grad_weight = (grad_weight if grad_weight is not None else torch.zeros_like(weight, dtype=acc_dtype)
                           ).to(weight.dtype)
        if need_bias:
            grad_bias = grad_bias.to(bias.dtype)
        return grad_hidden, grad_weight, grad_bias, None, None, None, None


def token_logprobs(
    hidden: Tensor,
    weight: Tensor,
    labels: Tensor,
    *,
    bias: Tensor | None = None,
    chunk_size: int = 1024,
    temperature: float = 1.0,
    compute_dtype: torch.dtype | None = None,
) -> Tensor:
    """log softmax((hidden @ weight.T + bias) / temperature)[labels], row by row, in chunks of rows.

    hidden: (N, H) hidden states of ONLY the positions to score (the caller selects completion rows).
    weight: (V, H) LM-head weight (may be tied to the input embeddings; the gradient is accumulated either way).
    labels: (N,) long, the token whose log-prob is wanted at each row, in [0, V) (no -100 here).
    bias: (V,) optional LM-head bias.
    chunk_size: rows per chunk; peak extra memory is about chunk_size x V fp32 (x2 in backward).
    temperature: logits are divided by it before the softmax (sampling temperature for PPO/GRPO).
    Returns (N,) fp32 log-probs (fp64 if the compute dtype is fp64). Gradients flow to hidden, weight and bias
    where they require grad; when none does (or grad mode is off, e.g. the reference forward) the plain chunked
    loop runs without autograd.
    compute_dtype: the dtype of the LM-head GEMMs; default: autocast's if it is on, else the inputs'. Callers
        pass fp32 on CPUs without native bf16 (no AMX / AVX512-BF16), where fp32 GEMMs are ~3x faster.
    Under autocast the GEMMs run in the autocast dtype; the log-softmax always runs in fp32.
    """
    if hidden.dim() != 2 or weight.dim() != 2 or hidden.shape[1] != weight.shape[1]:
        raise ValueError(
            f"expected hidden (N, H) and weight (V, H), got {tuple(hidden.shape)} and {tuple(weight.shape)}"
        )
    if labels.shape != hidden.shape[:1]:
        raise ValueError(f"labels must have shape ({hidden.shape[0]},), got {tuple(labels.shape)}")
    if bias is not None and bias.shape != weight.shape[:1]:
        raise ValueError(f"bias must have shape ({weight.shape[0]},), got {tuple(bias.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")

    dtype = compute_dtype or _compute_dtype(hidden, weight)
    needs_grad = torch.is_grad_enabled() and (
        hidden.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
    )
    if not needs_grad:
        return _forward_chunks(hidden, weight, bias, labels, chunk_size, temperature, dtype)[0]
    return _TokenLogprobs.apply(hidden, weight, bias, labels, chunk_size, float(temperature), dtype)
