"""Memory-lean training forwards for Llama-style decoder layers: autograd functions that save only what their
backward needs, so that no activation checkpointing is needed for about the memory of selective checkpointing.

Selective checkpointing (`models/setup.py`) keeps the matmul and attention outputs and recomputes the element-wise
ops in backward. It does so through a Python dispatch mode that sees every op twice (forward and recompute): on the
PPO peer workload that costs ~0.9 s per forward+backward of SmolLM2-135M (policy 4.9 s against 4.0 s without any
checkpointing). Plain autograd without checkpointing is fast but saves ~85% more: the normalised fp32 copies of every
RMSNorm, a bf16 copy of each weight (autocast's cast) and of each layer input per projection, the SiLU output and the
product of the gated MLP, and, in packed attention, fp32 copies of the keys and values repeated over the query heads.

Here each piece is one `torch.autograd.Function` that saves its inputs (already alive or small) and recomputes its
cheap element-wise parts in backward, with the same ops, in the same dtypes, as autograd under bf16 autocast:

- `rms_norm`: saves the input and 1/rms; returns the autocast dtype so that the projections after it share one copy.
- `cast_linear`: autocast's linear; saves the fp32 weight itself (not its bf16 cast) and casts it again in backward.
- `swiglu_down`: down(silu(gate) * up); saves gate and up, recomputes the product.
- `packed_causal_attention`: per-sequence causal flash attention (CPU); saves q, k, v as they come (k, v not
  repeated over the query heads), the output and the log-sum-exp.

`use_lean_layers(model)` switches every decoder layer of a model to these functions, when it recognises them all.
They act only when gradients are recorded (training forwards, with bf16 autocast or without); sampling and scoring
take the modules' own forwards, unchanged.
"""
from __future__ import annotations

import types
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F

# RMSNorm classes whose forward is Llama's: weight * (x * rsqrt(mean(x^2) + eps)).to(input dtype) in fp32
_NORMS = {"LlamaRMSNorm", "MistralRMSNorm", "Qwen2RMSNorm", "Qwen3RMSNorm"}


def _lean_dtype(t: torch.Tensor) -> Optional[torch.dtype]:
    """What the projections compute in when gradients are recorded: autocast's dtype where autocast is on, else t's
    own dtype. None without gradients (sampling, scoring): the modules' own forwards then run."""
    if not torch.is_grad_enabled():
        return None
    kind = t.device.type
    return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else t.dtype


class _RMSNorm(torch.autograd.Function):
    """y = w * (x * r).to(x.dtype), r = rsqrt(mean(x^2) + eps) over the last dim (Zhang & Sennrich 2019), in fp32.

    Backward, with h = x * r: dL/dw = sum(g * h), gh = g * w, and dL/dx = gh * r + (2 x / H) * (-r^3 / 2) sum(gh * x),
    the product rule through h and through r, written as the same ops autograd runs on Llama's forward (so the
    gradients are the same to the bit)."""

    @staticmethod
    def forward(ctx, x, weight, eps):
        r, y = _rms_norm_parts(x, weight, eps)
        ctx.save_for_backward(x, weight, r)
        return y

    @staticmethod
    def backward(ctx, g):
        x, weight, r = ctx.saved_tensors
        gx, gw = _rms_norm_backward(g, x, weight, r, ctx.needs_input_grad[1])
        return gx, gw, None


def _rms_norm_backward(g, x, weight, r, need_weight: bool):
    """(dL/dx, dL/dw or None) of `_RMSNorm` for the upstream gradient g."""
    g = g.to(torch.promote_types(weight.dtype, x.dtype))
    xf = x.float()
    gw = None
    if need_weight:
        gw = (g * (xf * r).to(x.dtype)).reshape(-1, g.shape[-1]).sum(0).to(weight.dtype)
    gh = (g * weight).to(x.dtype).float()                                   # dL/dh
    g_r = (gh * xf).sum(-1, keepdim=True)                                   # dL/dr (..., 1)
    g_mean = (-0.5 * g_r * r.pow(3)).expand_as(xf) / xf.shape[-1]           # dL/d mean(x^2), spread over the row
    return (gh * r + g_mean * (2.0 * xf)).to(x.dtype), gw


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return _RMSNorm.apply(x, weight, eps)


class _CastLinear(torch.autograd.Function):
    """y = x.to(d) @ w.to(d).T + b.to(d): autocast's linear, saving x.to(d) and w itself (the cast is redone in
    backward, as selective checkpointing recomputes it); gradients in d, cast to each input's dtype."""

    @staticmethod
    def forward(ctx, x, weight, bias, dtype):
        xc = _cast(x, dtype)
        y = F.linear(xc, weight.to(dtype), None if bias is None else bias.to(dtype))
        ctx.save_for_backward(xc, weight, bias)
        ctx.dtype, ctx.x_dtype = dtype, x.dtype
        return y

    @staticmethod
    def backward(ctx, g):
        xc, weight, bias = ctx.saved_tensors
        need = ctx.needs_input_grad
        gx = (g @ weight.to(ctx.dtype)).to(ctx.x_dtype) if need[0] else None
        gw, gb = _linear_grads(g, xc, weight, bias, need[1], need[2])
        return gx, gw, gb, None


def with_cast(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """x with its cast to dtype attached: every `cast_linear` reading x (q, k and v after one norm) then saves that one
    copy instead of a copy each, while x's gradient still adds up the projections' parts in x's own dtype."""
    x._rlhfkit_cast = x.detach().to(dtype)
    return x


def _cast(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    cached = getattr(x, "_rlhfkit_cast", None)
    return cached if cached is not None and cached.dtype == dtype else x.to(dtype)


def cast_linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                dtype: torch.dtype) -> torch.Tensor:
    return _CastLinear.apply(x, weight, bias, dtype)


class _SwiGLUDown(torch.autograd.Function):
    """y = (silu(gate) * up) @ w.T + b (Shazeer 2020), gate and up (N, I) in the autocast dtype; saves gate and up and
    recomputes a = silu(gate) * up in backward (autograd would also keep silu(gate) and a: 2 x N x I more)."""

    @staticmethod
    def forward(ctx, gate, up, weight, bias, dtype):
        a = F.silu(gate) * up
        y = F.linear(a, weight.to(dtype), None if bias is None else bias.to(dtype))
        ctx.save_for_backward(gate, up, weight, bias)
        ctx.dtype = dtype
        return y

    @staticmethod
    def backward(ctx, g):
        gate, up, weight, bias = ctx.saved_tensors
        need = ctx.needs_input_grad
        g_gate, g_up, gw, gb = _swiglu_down_backward(g, gate, up, weight, bias, ctx.dtype, need[2], need[3])
        return g_gate, g_up, gw, gb, None


def _swiglu_down_backward(g, gate, up, weight, bias, dtype, need_w: bool, need_b: bool):
    """(dL/dgate, dL/dup, dL/dw, dL/db) of y = (silu(gate) * up) @ w.T + b for dL/dy = g in the compute dtype, with
    the product recomputed; the ops autograd runs on that graph (mul's and silu's backward)."""
    s = F.silu(gate)
    gw, gb = _linear_grads(g, s * up, weight, bias, need_w, need_b)
    ga = g @ weight.to(dtype)                                           # dL/d(silu(gate) * up)
    return torch.ops.aten.silu_backward(ga * up, gate), ga * s, gw, gb


def swiglu_down(gate: torch.Tensor, up: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                dtype: torch.dtype) -> torch.Tensor:
    return _SwiGLUDown.apply(gate, up, weight, bias, dtype)


def _cast_or_none(b: Optional[torch.Tensor], dtype: torch.dtype) -> Optional[torch.Tensor]:
    return None if b is None else b.to(dtype)


def _rms_norm_parts(h: torch.Tensor, weight: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(r, y) of Llama's RMSNorm: r = rsqrt(mean(h^2) + eps) (..., 1) fp32, y = weight * (h * r).to(h.dtype)."""
    hf = h.float()
    r = torch.rsqrt(hf.pow(2).mean(-1, keepdim=True) + eps)
    return r, weight * (hf * r).to(h.dtype)


class _PostAttentionBlock(torch.autograd.Function):
    """The second half of a Llama layer in one function: h = x + o, n = rms_norm(h),
    out = h + down(silu(gate(n)) * up(n)); x the layer input (fp32 under autocast), o the attention output
    projection (autocast dtype). Saves x (the layer's input norm keeps it anyway), o, 1/rms, gate and up; h, n, its
    cast and the gated product are recomputed in backward. Plain autograd keeps h, n's cast, silu(gate) and the
    product besides: ~2.2x the bytes per position."""

    @staticmethod
    def forward(ctx, x, o, wn, eps, wg, bg, wu, bu, wd, bd, dtype):
        h = x + o
        r, n = _rms_norm_parts(h, wn, eps)
        nc = n.to(dtype)
        gate = F.linear(nc, wg.to(dtype), _cast_or_none(bg, dtype))
        up = F.linear(nc, wu.to(dtype), _cast_or_none(bu, dtype))
        y = F.linear(F.silu(gate) * up, wd.to(dtype), _cast_or_none(bd, dtype))
        ctx.save_for_backward(x, o, wn, r, wg, bg, wu, bu, wd, bd, gate, up)
        ctx.eps, ctx.dtype = eps, dtype
        return h + y

    @staticmethod
    def backward(ctx, g):
        x, o, wn, r, wg, bg, wu, bu, wd, bd, gate, up = ctx.saved_tensors
        dtype, need = ctx.dtype, ctx.needs_input_grad
        h = x + o
        n = wn * (h.float() * r).to(h.dtype)
        nc = n.to(dtype).reshape(-1, n.shape[-1])                           # (N, H)
        gy = g.to(dtype)                                                    # out = h + y: y's part, in y's dtype
        g_gate, g_up, gwd, gbd = _swiglu_down_backward(gy, gate, up, wd, bd, dtype, need[8], need[9])
        gwg, gbg = _linear_grads(g_gate, nc, wg, bg, need[4], need[5])
        gwu, gbu = _linear_grads(g_up, nc, wu, bu, need[6], need[7])
        gn = (g_gate @ wg.to(dtype)).to(n.dtype) + (g_up @ wu.to(dtype)).to(n.dtype)     # each cast's grad, fp32
        gh, gwn = _rms_norm_backward(gn, h, wn, r, need[2])
        gh = g + gh                                                         # h feeds the norm and the residual
        return gh.to(x.dtype), gh.to(o.dtype), gwn, None, gwg, gbg, gwu, gbu, gwd, gbd, None


def _linear_grads(g: torch.Tensor, x2: torch.Tensor, w: torch.Tensor, b: Optional[torch.Tensor], need_w: bool,
                  need_b: bool) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    """(dL/dw, dL/db) of y = x @ w.T + b for dL/dy = g (..., out); x2 is x as (N, in), both in the compute dtype."""
    g2 = g.reshape(-1, g.shape[-1])
    gw = (g2.t() @ x2.reshape(-1, x2.shape[-1])).to(w.dtype) if need_w else None
    gb = g2.sum(0).to(b.dtype) if b is not None and need_b else None
    return gw, gb


def post_attention_block(x: torch.Tensor, o: torch.Tensor, norm: Any, mlp: Any, dtype: torch.dtype) -> torch.Tensor:
    """`_PostAttentionBlock` with the weights of a layer's post-attention norm and its gated MLP."""
    return _PostAttentionBlock.apply(x, o, norm.weight, norm.variance_epsilon, mlp.gate_proj.weight,
                                     mlp.gate_proj.bias, mlp.up_proj.weight, mlp.up_proj.bias, mlp.down_proj.weight,
                                     mlp.down_proj.bias, dtype)


class _PackedCausalAttention(torch.autograd.Function):
    """Causal attention of each packed sequence with itself, softmax(q_s k_s^T * scale + causal) v_s, by the CPU flash
    kernel, in `dtype` (autocast's: SDPA is a bf16 op under CPU autocast). q (1, H, L, D), k/v (1, KVH, L, D).
    Saves q, k, v cast to dtype (k, v not repeated over the H / KVH query heads), and each sequence's output and
    log-sum-exp; backward calls the kernel's backward per sequence and sums the repeated heads' key/value grads."""

    @staticmethod
    def forward(ctx, q, k, v, segments, scale, dtype):
        qc, kc, vc = q.to(dtype), k.to(dtype), v.to(dtype)
        ke, ve = _repeated(kc, vc, q.shape[1] // k.shape[1])
        out = q.new_empty(q.shape[0], q.shape[2], q.shape[1], q.shape[3], dtype=dtype)     # (1, L, H, D)
        lses = []
        for s, e in segments:
            o, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
                qc[:, :, s:e], ke[:, :, s:e], ve[:, :, s:e], 0.0, True, scale=scale)
            out[:, s:e] = o.transpose(1, 2)
            lses.append(lse)
        ctx.save_for_backward(qc, kc, vc, out, *lses)
        ctx.segments, ctx.scale, ctx.dtypes = segments, scale, (q.dtype, k.dtype, v.dtype)
        # (1, H, L, D) view of (1, L, H, D): the caller's transpose back is contiguous without a copy, so the output
        # projection saves this same buffer as its input
        return out.transpose(1, 2)

    @staticmethod
    def backward(ctx, g):
        qc, kc, vc, out, *lses = ctx.saved_tensors
        groups = qc.shape[1] // kc.shape[1]
        ke, ve = _repeated(kc, vc, groups)
        g = g.to(qc.dtype)
        gq, gk, gv = torch.empty_like(qc), torch.empty_like(ke), torch.empty_like(ve)
        for (s, e), lse in zip(ctx.segments, lses):
            a, b, c = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(
                g[:, :, s:e], qc[:, :, s:e], ke[:, :, s:e], ve[:, :, s:e], out[:, s:e].transpose(1, 2), lse, 0.0,
                True, scale=ctx.scale)
            gq[:, :, s:e], gk[:, :, s:e], gv[:, :, s:e] = a, b, c
        qd, kd, vd = ctx.dtypes
        gq, gk, gv = gq.to(qd), gk.to(kd), gv.to(vd)
        if groups > 1:                      # each K/V head served `groups` query heads: sum their gradients (in
            gk, gv = _group_sum(gk, groups), _group_sum(gv, groups)     # the input's dtype, as autograd does)
        return gq, gk, gv, None, None, None


def _group_sum(g: torch.Tensor, groups: int) -> torch.Tensor:
    """(1, KVH * groups, L, D) -> (1, KVH, L, D): the gradient of `repeat_interleave(groups, dim=1)`."""
    return g.unflatten(1, (g.shape[1] // groups, groups)).sum(2)


def _repeated(k: torch.Tensor, v: torch.Tensor, groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Grouped-query attention: each K/V head repeated for the `groups` query heads it serves."""
    if groups == 1:
        return k, v
    return k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)


def attention_dtype(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.dtype:
    """What SDPA computes in: autocast's dtype when autocast is on, else the widest input dtype, with bf16 taken to
    fp32 on the CPU (without autocast, as `kernels/attention.py` does)."""
    if torch.is_autocast_enabled(q.device.type):
        return torch.get_autocast_dtype(q.device.type)
    dtype = torch.promote_types(torch.promote_types(q.dtype, k.dtype), v.dtype)
    return torch.float32 if dtype == torch.bfloat16 else dtype


def packed_causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, segments: Sequence[tuple[int, int]],
                            scale: Optional[float]) -> torch.Tensor:
    """(1, H, L, D) attention output in `attention_dtype`; see `_PackedCausalAttention`."""
    return _PackedCausalAttention.apply(q, k, v, tuple(segments), scale, attention_dtype(q, k, v))


def lean_attention_applies(module: Any, q: torch.Tensor, dropout: float) -> bool:
    """True when the packed attention of `module` should take `packed_causal_attention`: the module's layer was
    switched by `use_lean_layers`, gradients are recorded, no dropout, and the tensors are on the CPU."""
    return (getattr(module, "_rlhfkit_lean", False) and torch.is_grad_enabled() and q.device.type == "cpu"
            and not (dropout > 0 and module.training))


# ----------------------------------------------------------------------------------------------
# switching a model's layers
# ----------------------------------------------------------------------------------------------
def _norm_forward(self, x):
    dtype = _lean_dtype(x)
    if dtype is None:
        return self._rlhfkit_forward(x)
    return with_cast(rms_norm(x, self.weight, self.variance_epsilon), dtype)


def _linear_forward(self, x):
    dtype = _lean_dtype(x)
    if dtype is None:
        return self._rlhfkit_forward(x)
    return cast_linear(x, self.weight, self.bias, dtype)


def _mlp_forward(self, x):
    dtype = _lean_dtype(x)
    if dtype is None:
        return self._rlhfkit_forward(x)
    gate, up = self.gate_proj(x), self.up_proj(x)
    return swiglu_down(gate.to(dtype), up.to(dtype), self.down_proj.weight, self.down_proj.bias, dtype)


def _patch(module: Any, fn: Any) -> None:
    if not hasattr(module, "_rlhfkit_forward"):
        module._rlhfkit_forward = module.forward
    module.forward = types.MethodType(fn, module)


def _plain_linear(m: Any) -> bool:
    return type(m) is torch.nn.Linear


def _base_linear(m: Any) -> Any:
    """The nn.Linear under a PEFT LoRA wrapper (its adapters stay as they are), or m itself."""
    base = getattr(m, "base_layer", m)
    return base if _plain_linear(base) else None


def _recognised(layer: Any) -> bool:
    """True when a decoder layer has the Llama structure the lean functions reproduce."""
    attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
    norms = [getattr(layer, n, None) for n in ("input_layernorm", "post_attention_layernorm")]
    if attn is None or mlp is None or any(type(n).__name__ not in _NORMS for n in norms):
        return False
    if type(getattr(mlp, "act_fn", None)).__name__ not in ("SiLUActivation", "SiLU"):
        return False
    return all(p is not None and _base_linear(p) is not None for p in _projections(layer))


def _projections(layer: Any) -> list:
    return [getattr(layer.self_attn, n, None) for n in ("q_proj", "k_proj", "v_proj", "o_proj")] + \
        [getattr(layer.mlp, n, None) for n in ("gate_proj", "up_proj", "down_proj")]


def _layer_forward(self, hidden_states, *args, **kwargs):
    """A Llama decoder layer's forward with the post-attention half as one `_PostAttentionBlock` (training forwards
    under autocast; anything else takes the layer's own forward)."""
    dtype = _lean_dtype(hidden_states)
    if dtype is None or args:
        return self._rlhfkit_forward(hidden_states, *args, **kwargs)
    if "past_key_values" in kwargs:                                     # the name before transformers 5.2x
        kwargs["cache"] = kwargs.pop("past_key_values")
    o, _ = self.self_attn(hidden_states=self.input_layernorm(hidden_states), **kwargs)
    return post_attention_block(hidden_states, o, self.post_attention_layernorm, self.mlp, dtype)


def _lean_layer(layer: Any) -> None:
    for n in (layer.input_layernorm, layer.post_attention_layernorm):
        _patch(n, _norm_forward)
    for p in _projections(layer):
        _patch(_base_linear(p), _linear_forward)
    mlp = layer.mlp
    if all(_plain_linear(p) for p in (mlp.gate_proj, mlp.up_proj, mlp.down_proj)):
        _patch(layer, _layer_forward)               # post-attention half fused (no adapters in the MLP)
    elif _plain_linear(mlp.down_proj):              # fused down projection; a LoRA-wrapped one keeps its own
        _patch(mlp, _mlp_forward)
    layer.self_attn._rlhfkit_lean = True


def use_lean_layers(model: Any) -> bool:
    """Switch every decoder layer of a transformers model (or PEFT-wrapped one) to the lean functions above; True
    when done. When any layer is not recognised nothing is changed and False is returned."""
    layers = [m for m in model.modules() if hasattr(m, "self_attn") and hasattr(m, "mlp")]
    if not layers or not all(_recognised(layer) for layer in layers):
        return False
    for layer in layers:
        _lean_layer(layer)
    return True
