"""models/lean.py: each lean autograd function gives the outputs and gradients of the autograd graph it replaces,
under bf16 autocast, to the bit; a whole model switched to it trains like the original; it saves less than plain
autograd; it leaves sampling and fp32 forwards alone."""
import pytest
import torch
import torch.nn.functional as F
from conftest import make_model, make_tokenizer

from rlhfkit.data.collate import pack_groups
from rlhfkit.models import lean
from rlhfkit.models.attention import use_packed_attention
from rlhfkit.models.forward import completion_logprobs


def autocast():
    return torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False)


def grads_of(fn, inputs, upstream):
    """Output and input gradients of fn(*inputs) under bf16 autocast, for the upstream gradient `upstream`."""
    for t in inputs:
        t.grad = None
    with autocast():
        y = fn(*inputs)
    y.backward(upstream.to(y.dtype))
    return y.detach(), [t.grad.clone() for t in inputs]


def assert_same(a, b):
    ya, ga = a
    yb, gb = b
    assert ya.dtype == yb.dtype and torch.equal(ya, yb)
    for x, y in zip(ga, gb):
        assert x.dtype == y.dtype and torch.equal(x, y)


def test_rms_norm_then_projections_match_llama_under_autocast():
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    torch.manual_seed(0)
    norm = LlamaRMSNorm(48, eps=1e-5)
    norm.weight.data = torch.rand(48) + 0.5
    x = (torch.randn(2, 30, 48) * 3).requires_grad_()
    wq, wk = (torch.randn(16, 48) * 0.1).requires_grad_(), (torch.randn(8, 48) * 0.1).requires_grad_()
    up = torch.randn(2, 30, 24)

    def plain(x, w, wq, wk):       # Llama: fp32 norm output, each projection casts it to bf16 itself
        h = norm(x)
        return torch.cat([F.linear(h, wq), F.linear(h, wk)], -1)

    def ours(x, w, wq, wk):        # one bf16 copy shared by both projections; norm and casts in backward
        h = lean.with_cast(lean.rms_norm(x, w, 1e-5), torch.bfloat16)
        return torch.cat([lean.cast_linear(h, wq, None, torch.bfloat16), lean.cast_linear(h, wk, None, torch.bfloat16)], -1)

    inputs = [x, norm.weight, wq, wk]
    assert_same(grads_of(plain, inputs, up), grads_of(ours, inputs, up))


def test_cast_linear_matches_autocast_linear_with_bias():
    torch.manual_seed(1)
    x, w, b = torch.randn(3, 20, 32).requires_grad_(), torch.randn(40, 32).requires_grad_(), torch.randn(40).requires_grad_()
    up = torch.randn(3, 20, 40)
    assert_same(grads_of(F.linear, [x, w, b], up),
                grads_of(lambda x, w, b: lean.cast_linear(x, w, b, torch.bfloat16), [x, w, b], up))


def test_swiglu_down_matches_the_gated_mlp():
    torch.manual_seed(2)
    gate = torch.randn(50, 64).bfloat16().requires_grad_()
    up_ = torch.randn(50, 64).bfloat16().requires_grad_()
    w = (torch.randn(32, 64) * 0.1).requires_grad_()
    g = torch.randn(50, 32)
    assert_same(grads_of(lambda a, b, w: F.linear(F.silu(a) * b, w), [gate, up_, w], g),
                grads_of(lambda a, b, w: lean.swiglu_down(a, b, w, None, torch.bfloat16), [gate, up_, w], g))


@pytest.mark.parametrize("v_dtype", [torch.float32, torch.bfloat16])
def test_packed_causal_attention_matches_sdpa_per_sequence(v_dtype):
    """Grouped-query attention (6 query heads on 2 K/V heads) over three packed sequences; q and k come in fp32 (after
    RoPE), v in bf16 or fp32, as in Llama under autocast."""
    torch.manual_seed(3)
    L, segs = 40, [(0, 11), (11, 30), (30, 40)]
    q = torch.randn(1, 6, L, 16).requires_grad_()
    k = torch.randn(1, 2, L, 16).requires_grad_()
    v = torch.randn(1, 2, L, 16).to(v_dtype).requires_grad_()
    g = torch.randn(1, 6, L, 16)

    def plain(q, k, v):
        k, v = k.repeat_interleave(3, dim=1), v.repeat_interleave(3, dim=1)
        return torch.cat([F.scaled_dot_product_attention(q[:, :, s:e], k[:, :, s:e], v[:, :, s:e], is_causal=True,
                                                         scale=0.25) for s, e in segs], dim=2)

    assert_same(grads_of(plain, [q, k, v], g),
                grads_of(lambda q, k, v: lean.packed_causal_attention(q, k, v, segs, 0.25), [q, k, v], g))


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    groups = [(torch.randint(5, 60, (p,), generator=g).tolist(), [torch.randint(5, 60, (r,), generator=g).tolist()])
              for p, r in [(7, 5), (3, 9), (12, 4)]]
    return pack_groups(groups, pad_id=0, one_row=True)


def _model_grads(model, batch, bf16=True):
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False, enabled=bf16):
        lp = completion_logprobs(model, batch)
    (lp * torch.linspace(-1, 1, lp.numel())).sum().backward()
    return lp.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("bf16", [True, False], ids=["bf16-autocast", "fp32"])
def test_lean_model_has_the_same_logprobs_and_gradients_as_the_original(bf16):
    """On a tiny model the lean layers reproduce autograd to the bit. (On SmolLM2-135M in bf16 the lower layers'
    gradients then differ by ~1% in norm: bf16 rounding amplifies any 1-ulp change through 30 layers; scaling the
    top layer's input gradient by 1 + 2^-22 in the plain model moves them as much.)"""
    tok = make_tokenizer()
    model = make_model(tok, hidden=64, layers=2).train()
    use_packed_attention(model)
    batch = _batch()
    lp0, g0 = _model_grads(model, batch, bf16)
    assert lean.use_lean_layers(model)
    lp1, g1 = _model_grads(model, batch, bf16)
    assert torch.equal(lp0, lp1)
    bad = {n: ((g0[n] - g1[n]).norm() / g0[n].norm()).item() for n in g0 if not torch.equal(g0[n], g1[n])}
    if bf16:   # to the bit, except the tied embedding / LM-head matrix: its two fp32 parts add in another order
        assert set(bad) <= {"model.embed_tokens.weight"} and all(v < 1e-6 for v in bad.values()), bad
    else:      # fp32 sums in another order, nothing rounds them back to the same bf16 value: within 1e-6
        assert all(v < 1e-6 for v in bad.values()), bad
    kinds = set()

    def walk(fn):
        if fn is not None and fn not in kinds:
            kinds.add(fn)
            for nxt, _ in fn.next_functions:
                walk(nxt)

    with torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False, enabled=bf16):
        walk(completion_logprobs(model, batch).grad_fn)
    names = {type(f).__name__ for f in kinds}
    assert {"_RMSNormBackward", "_CastLinearBackward", "_PackedCausalAttentionBackward",
            "_PostAttentionBlockBackward"} <= names


def test_lean_lora_model_trains_the_same_adapters():
    """PEFT LoRA on every projection: the frozen base layers run the lean linear, the adapters their own modules;
    the MLP is not fused (its projections are wrapped). The adapters get the same gradients as without lean."""
    from peft import LoraConfig, get_peft_model

    tok = make_tokenizer()
    base = make_model(tok, hidden=64, layers=2)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=targets, init_lora_weights=False)).train()
    use_packed_attention(model)
    batch = _batch(1)
    lp0, g0 = _model_grads(model, batch)
    assert lean.use_lean_layers(model)
    lp1, g1 = _model_grads(model, batch)
    assert torch.equal(lp0, lp1)
    assert g0.keys() == g1.keys() and all("lora_" in n for n in g0) and len(g0) == 2 * 2 * len(targets)
    assert all(torch.equal(g0[n], g1[n]) for n in g0)


def test_sampling_and_scoring_forwards_are_untouched():
    tok = make_tokenizer()
    model = make_model(tok, hidden=64, layers=2)
    use_packed_attention(model)
    ids = torch.tensor([[5, 9, 14, 20, 33, 41]])
    with torch.no_grad():
        before = model(input_ids=ids).logits
    lean.use_lean_layers(model)
    with torch.no_grad(), autocast():
        assert not lean.lean_attention_applies(model.model.layers[0].self_attn, ids.float(), 0.0)
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, before)


def test_unrecognised_layers_fall_back_to_selective_checkpointing(capsys):
    from transformers import GPT2Config, GPT2LMHeadModel

    from rlhfkit.trainers import loop

    model = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_embd=32, n_layer=2, n_head=2, n_positions=64))
    assert not lean.use_lean_layers(model)
    loop.enable_activation_checkpointing(model, "lean")
    assert "using selective" in capsys.readouterr().err
    assert model.is_gradient_checkpointing
