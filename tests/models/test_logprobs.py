"""Chunked token_logprobs against the plain path: log_softmax(F.linear(hidden, weight, bias) / T).gather(label)."""

import math

import pytest
import torch
import torch.nn.functional as F

from rlhfkit.models.logprobs import logprobs_from_logits, token_logprobs

N, H, V = 37, 32, 1000


def make(seed=0, bias=False, dtype=torch.float32, requires_grad=True):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(N, H, generator=g).to(dtype).requires_grad_(requires_grad)
    weight = (torch.randn(V, H, generator=g) * 0.1).to(dtype).requires_grad_(requires_grad)
    b = (torch.randn(V, generator=g) * 0.5).to(dtype).requires_grad_(requires_grad) if bias else None
    labels = torch.randint(0, V, (N,), generator=g)
    upstream = torch.randn(N, generator=g)  # a non-uniform grad_out exercises the per-row scaling
    return hidden, weight, b, labels, upstream


def plain(hidden, weight, bias, labels, temperature=1.0):
    return logprobs_from_logits(F.linear(hidden, weight, bias), labels, temperature)


def grads(*tensors):
    out = [t.grad.clone() if t is not None and t.grad is not None else None for t in tensors]
    for t in tensors:
        if t is not None:
            t.grad = None
    return out


def test_logprobs_from_logits_by_hand():
    # logits [0, 0, ln 2]: softmax [1/4, 1/4, 1/2]; with T = 2 logits become [0, 0, ln 2 / 2]
    logits = torch.tensor([[0.0, 0.0, math.log(2.0)]]).bfloat16()
    out = logprobs_from_logits(logits, torch.tensor([2]))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([math.log(0.5)]), atol=1e-2, rtol=0)
    z = 2 + math.sqrt(2.0)
    torch.testing.assert_close(
        logprobs_from_logits(torch.tensor([[0.0, 0.0, math.log(2.0)]]), torch.tensor([0]), temperature=2.0),
        torch.tensor([-math.log(z)]),
    )


@pytest.mark.parametrize("chunk_size", [5, 16, 37, 1024])  # 5 and 16 do not divide N = 37
@pytest.mark.parametrize("use_bias", [False, True])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_fp32_forward_and_backward_match_plain(chunk_size, use_bias, temperature):
    hidden, weight, bias, labels, upstream = make(bias=use_bias)

    ref = plain(hidden, weight, bias, labels, temperature)
    (ref * upstream).sum().backward()
    ref_grads = grads(hidden, weight, bias)

    out = token_logprobs(hidden, weight, labels, bias=bias, chunk_size=chunk_size, temperature=temperature)
    (out * upstream).sum().backward()
    out_grads = grads(hidden, weight, bias)

    assert out.dtype == torch.float32 and out.shape == (N,)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    for got, want in zip(out_grads, ref_grads):
        if want is None:
            assert got is None
        else:
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(7, 5, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(11, 5, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(11, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 11, (7,), generator=g)

    def fn(h, w, b):
        out = token_logprobs(h, w, labels, bias=b, chunk_size=3, temperature=0.8)
        assert out.dtype == torch.float64
        return out

    assert torch.autograd.gradcheck(fn, (hidden, weight, bias))


def relative_error(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


@pytest.mark.parametrize("chunk_size", [8, 1024])
def test_bf16_autocast_parity(chunk_size):
    hidden, weight, bias, labels, upstream = make(seed=2, bias=True)
    ref32 = plain(hidden, weight, bias, labels).detach()  # fp32, no autocast

    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = plain(hidden, weight, bias, labels)  # plain autocast: bf16 GEMM, fp32 log-softmax
    (ref * upstream).sum().backward()
    ref_grads = grads(hidden, weight, bias)

    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = token_logprobs(hidden, weight, labels, bias=bias, chunk_size=chunk_size)
    (out * upstream).sum().backward()
    out_grads = grads(hidden, weight, bias)

    assert out.dtype == torch.float32
    # same bf16 logits as plain autocast; both within bf16 rounding of the fp32 values
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=0)
    torch.testing.assert_close(out, ref32, atol=2e-2, rtol=0)
    assert (out - ref32).abs().max() > 0  # the GEMM really ran in bf16
    for got, want, param in zip(out_grads, ref_grads, (hidden, weight, bias)):
        assert got.dtype == param.dtype == torch.float32
        assert relative_error(got, want) < 1e-2  # measured: 0 (one chunk) to ~2e-3 (chunks of 8)


def test_bf16_inputs_without_autocast_compute_in_bf16():
    hidden, weight, _, labels, upstream = make(seed=3, dtype=torch.bfloat16)
    ref = plain(hidden, weight, None, labels)
    (ref * upstream).sum().backward()
    ref_grads = grads(hidden, weight)

    out = token_logprobs(hidden, weight, labels, chunk_size=10)
    (out * upstream).sum().backward()
    out_grads = grads(hidden, weight)

    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, atol=1e-3, rtol=0)
    for got, want in zip(out_grads, ref_grads):
        assert got.dtype == torch.bfloat16
        assert relative_error(got, want) < 2e-2


def test_frozen_weight_gets_no_gradient():
    hidden, weight, _, labels, upstream = make(seed=4)
    weight.requires_grad_(False)
    ref = plain(hidden, weight, None, labels)
    (ref * upstream).sum().backward()
    (ref_hidden_grad,) = grads(hidden)

    out = token_logprobs(hidden, weight, labels, chunk_size=10)
    (out * upstream).sum().backward()
    assert weight.grad is None
    torch.testing.assert_close(hidden.grad, ref_hidden_grad, atol=1e-5, rtol=1e-5)


def test_weight_gradient_without_hidden_gradient_and_tied_use():
    # hidden is a leaf without grad (e.g. a frozen backbone); the head weight is also used as the input embedding
    hidden, weight, _, labels, upstream = make(seed=5)
    hidden = hidden.detach()
    tokens = torch.tensor([0, 3, 3])

    def loss(lp):
        return (lp * upstream).sum() + F.embedding(tokens, weight).pow(2).sum()

    loss(plain(hidden, weight, None, labels)).backward()
    (ref_grad,) = grads(weight)
    loss(token_logprobs(hidden, weight, labels, chunk_size=6)).backward()
    torch.testing.assert_close(weight.grad, ref_grad, atol=1e-5, rtol=1e-5)


def test_no_grad_path_matches_and_builds_no_graph():
    hidden, weight, _, labels, _ = make(seed=6)
    ref = plain(hidden, weight, None, labels).detach()
    with torch.no_grad():
        out = token_logprobs(hidden, weight, labels, chunk_size=5)
    assert out.grad_fn is None and not out.requires_grad
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    # grad mode on, but nothing requires grad (reference model parameters): also the plain path
    out = token_logprobs(hidden.detach(), weight.detach(), labels, chunk_size=5)
    assert out.grad_fn is None
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_zero_rows():
    hidden, weight, _, _, _ = make(seed=7)
    empty_hidden = hidden[:0]
    out = token_logprobs(empty_hidden, weight, torch.zeros(0, dtype=torch.long))
    assert out.shape == (0,) and out.dtype == torch.float32
    out.sum().backward()  # stays connected to the graph: zero gradients, no error
    torch.testing.assert_close(hidden.grad, torch.zeros(N, H))
    torch.testing.assert_close(weight.grad, torch.zeros(V, H))
    with torch.no_grad():
        assert token_logprobs(empty_hidden, weight, torch.zeros(0, dtype=torch.long)).shape == (0,)


def test_rejects_bad_arguments():
    hidden, weight, _, labels, _ = make(seed=8, requires_grad=False)
    with pytest.raises(ValueError, match="weight"):
        token_logprobs(hidden, weight[:, :5], labels)
    with pytest.raises(ValueError, match="labels"):
        token_logprobs(hidden, weight, labels[:3])
    with pytest.raises(ValueError, match="bias"):
        token_logprobs(hidden, weight, labels, bias=torch.zeros(3))
    with pytest.raises(ValueError, match="chunk_size"):
        token_logprobs(hidden, weight, labels, chunk_size=0)
    with pytest.raises(ValueError, match="temperature"):
        token_logprobs(hidden, weight, labels, temperature=0.0)
