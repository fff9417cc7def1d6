"""Sample responses from a causal LM, batched, with the KV cache.

Each row stops at its own first EOS: the response keeps that EOS and nothing after it. Masks come from the
lengths found this way, never from comparing ids with the pad id (pad == EOS for many models). The log-probs of
the sampled tokens are read from the logits the decode loop computes anyway, divided by the sampling temperature
(as the policy's training forward does: Huang et al. 2024, "The N+ implementation details of RLHF with PPO"), so
no second forward pass is spent on them; top-p only decides which tokens can be drawn.

The loop is ours rather than transformers' `generate`: the prompts are prefilled without padding (one packed row)
and a token costs one uniform draw instead of one random number per vocabulary entry (see `prefill`, `draw`); the
logits come from the same LM head the training forward uses, with no generation-config processors in between.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

import torch
from torch import Tensor

from rlhfkit.errors import DataError
from rlhfkit.losses.ppo import entropy_from_logits
from rlhfkit.types import Text


@dataclass
class Samples:
    """One batch of sampled responses.

    prompt_ids:    B lists of prompt token ids (as given)
    response_ids:  B lists of response token ids, each ending at (and including) its first EOS, or at the cap
    ended:         (B,) bool, True when the response emitted EOS
    logprobs:      (B, T) fp32 log-probs of the sampled tokens at the sampling temperature; 0 on padding
    entropy:       (B, T) fp32 entropy (nats) of the sampling distribution at each step (before top-p); 0 on padding
    response_mask: (B, T) bool, True on real response tokens (a prefix of each row)
    """

    prompt_ids: list[list[int]]
    response_ids: list[list[int]]
    ended: Tensor
    logprobs: Tensor
    entropy: Tensor
    response_mask: Tensor

    @property
    def lengths(self) -> Tensor:
        return self.response_mask.long().sum(-1)


def response_lengths(tokens: Tensor, eos_id: int) -> tuple[Tensor, Tensor]:
    """(B, T) generated tokens -> (lengths (B,) up to and including the first EOS, or T; ended (B,) bool)."""
    is_eos = tokens == eos_id
    ended = is_eos.any(-1)
    first = torch.where(ended, is_eos.long().argmax(-1), torch.full_like(ended, tokens.shape[1] - 1, dtype=torch.long))
    return first + 1, ended


def to_padded(flat: Tensor, lengths: Tensor) -> Tensor:
    """Per-token values of several sequences, concatenated (N,), -> (B, T=max length) with zeros after each end."""
    B = lengths.numel()
    T = int(lengths.max()) if B else 0
    mask = torch.arange(T, device=flat.device)[None, :] < lengths.to(flat.device)[:, None]
    out = torch.zeros(B, T, dtype=flat.dtype, device=flat.device)
    out[mask] = flat
    return out


@contextlib.contextmanager
def decode_layout(model: Any, enabled: bool = True) -> Iterator[None]:
    """Store the 2-D weights of `model` column-major while it decodes, then restore them.

    A decode step multiplies a few rows (one token per sequence) by every weight matrix. On CPU, `F.linear` with a
    row-major (out, in) weight takes a slower path for such thin inputs: measured on this project's 2-core Xeon,
    (16 x 576) @ (576 x 1536) alone ran in 1.45 ms row-major and 0.27 ms column-major (the transposed matrix
    contiguous), equal results; at 640+ rows (training, prefill) both take the same time. Inside a whole decode,
    where the weights stream from memory, the gain is smaller: SmolLM2-135M, 64 new tokens, 18.9 -> 16.0 s for 8
    sequences and 42.6 -> 37.8 s for 32, the same tokens sampled.
    Only the memory layout changes (`param.data` is re-strided; the Parameter objects, and so optimizer state and
    tied weights, stay the same), and the original layout is restored on exit, so training is unaffected."""
    if not enabled:
        yield
        return
    changed = []
    for prm in {id(q): q for q in model.parameters()}.values():
        if prm.dim() == 2 and prm.is_contiguous() and prm.device.type == "cpu":
            changed.append(prm)
            prm.data = prm.data.t().contiguous().t()
    try:
        yield
    finally:
        for prm in changed:
            prm.data = prm.data.contiguous()


def nucleus(probs: Tensor, top_p: float) -> Tensor:
    """(B, V) probabilities -> the same with every token outside the top-p nucleus set to 0 (not renormalised).

    The nucleus is the smallest set of most likely tokens whose mass reaches top_p (Holtzman et al. 2020): a token
    stays when the mass of the tokens ranked above it is below top_p, so the most likely token always stays."""
    if top_p >= 1.0:
        return probs
    sorted_p, order = probs.sort(-1, descending=True)
    above = sorted_p.cumsum(-1) - sorted_p                              # mass ranked strictly above each token
    keep = torch.zeros_like(probs, dtype=torch.bool).scatter_(-1, order, above < top_p)
    return probs * keep


def draw(probs: Tensor) -> Tensor:
    """One token per row (B,) from (B, V) non-negative weights, by inverse CDF: one uniform per row.

    Row i gets the first token whose cumulative weight exceeds u_i * total_i, so token v is drawn with probability
    w_v / total and a zero-weight token never. `torch.multinomial` draws an exponential per vocabulary entry
    instead (B x V random numbers per step: 8 ms of every decode step for 8 x 49,152 here)."""
    cdf = probs.double().cumsum(-1)                                     # (B, V)
    u = torch.rand(probs.shape[0], 1, dtype=torch.float64, device=probs.device) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).squeeze(-1).clamp_(max=probs.shape[-1] - 1)


def _cache_kwarg(decoder: Any) -> str:
    """The decoder's keyword for the KV cache: `cache` (transformers >= 5.2x) or `past_key_values`."""
    import inspect

    return "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"


def prefill(lm: Any, prompts: Sequence[Sequence[int]], device: torch.device, key: str) -> tuple[Any, Tensor, Tensor]:
    """Run the prompts through the decoder of `lm` (the causal LM, adapters active) once; `key` is its cache keyword.
    Returns (cache, last hidden state (B, H) of each prompt, attention (B, P) long with the prompts left-padded to
    P = the longest).

    With the packed attention (models/kernels/attention.py) the prompts run as one unpadded row, one causal attention
    call each, and their keys and values are then laid out left-padded (B, KVH, P, D) for the batched decode steps: no
    GEMM work on padding (the HH prompts of the PPO benchmark are ~45% padding at 8 per batch). Other attention
    implementations, and caches with sliding-window layers, take the plain left-padded batch with a mask."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    from rlhfkit.models.kernels.attention import NAME as PACKED

    decoder = lm.get_decoder()
    B = len(prompts)
    lens = torch.tensor([len(p) for p in prompts])
    P = int(lens.max())
    attention = (torch.arange(P)[None, :] >= (P - lens)[:, None]).long().to(device)   # (B, P) left padding
    cache = DynamicCache(config=lm.config)
    packed = getattr(lm.config, "_attn_implementation", None) == PACKED and \
        all(type(layer) is DynamicLayer for layer in cache.layers)
    if not packed:
        ids = torch.full((B, P), 0, dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, P - len(p):] = torch.tensor(list(p), dtype=torch.long)
        positions = (attention.cumsum(-1) - 1).clamp_(min=0)
        h = decoder(input_ids=ids.to(device), attention_mask=attention, position_ids=positions, use_cache=True,
                    **{key: cache}).last_hidden_state                   # (B, P, H)
        return cache, h[:, -1], attention
    ends = lens.cumsum(0)
    starts = ends - lens
    ids = torch.tensor([t for p in prompts for t in p], dtype=torch.long)[None].to(device)          # (1, N)
    positions = torch.cat([torch.arange(n) for n in lens.tolist()])[None].to(device)                # (1, N)
    packed_cache = DynamicCache(config=lm.config)
    h = decoder(input_ids=ids, position_ids=positions, attention_mask=None, use_cache=True,
                packed_segments=tuple(zip(starts.tolist(), ends.tolist())), **{key: packed_cache}).last_hidden_state
    for i, layer in enumerate(packed_cache.layers):                   # (1, KVH, N, D) -> (B, KVH, P, D)
        k, v = layer.keys, layer.values
        kp = k.new_zeros(B, k.shape[1], P, k.shape[3])
        vp = v.new_zeros(B, v.shape[1], P, v.shape[3])
        for b, (s, e) in enumerate(zip(starts.tolist(), ends.tolist())):
            kp[b, :, P - (e - s):] = k[0, :, s:e]
            vp[b, :, P - (e - s):] = v[0, :, s:e]
        cache.update(kp, vp, i)
    return cache, h[0, ends - 1], attention


@torch.no_grad()
def sample(model: Any, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, temperature: float = 1.0,
           top_p: float = 1.0, eos_id: int, pad_id: int, device: Optional[torch.device] = None) -> Samples:
    """Sample one response per prompt (temperature 0 = greedy) with the KV cache. The global torch RNG draws the
    tokens (one uniform per row and step), so a seeded run (and a resumed one, which restores the RNG) samples the
    same responses.

    Each step: logits of the last token (B, V) = LM head(hidden), z = logits / temperature; the sampled token's
    log-prob is log_softmax(z) (before top-p, as the policy's training forward computes it) and top-p only decides
    which tokens can be drawn. Rows that have emitted EOS get pad tokens until every row has ended."""
    from rlhfkit.models.forward import causal_lm

    device = torch.device(device) if device is not None else next(model.parameters()).device
    lm = causal_lm(model)
    decoder, head = lm.get_decoder(), lm.get_output_embeddings()
    key = _cache_kwarg(decoder)
    B = len(prompts)
    lens = torch.tensor([len(p) for p in prompts], device=device)
    greedy = temperature <= 0
    scale = 1.0 if greedy else temperature
    tokens = torch.full((B, max_new_tokens), pad_id, dtype=torch.long, device=device)
    logprobs = torch.zeros(B, max_new_tokens, device=device)
    entropy = torch.zeros(B, max_new_tokens, device=device)
    done = torch.zeros(B, dtype=torch.bool, device=device)
    T = 0
    with decode_layout(model, enabled=device.type == "cpu"):
        cache, h, attention = prefill(lm, prompts, device, key)          # h (B, H)
        for t in range(max_new_tokens):
            z = head(h).float() / scale                                   # (B, V)
            logp = torch.log_softmax(z, -1)
            tok = z.argmax(-1) if greedy else draw(nucleus(logp.exp(), top_p))
            tok = torch.where(done, torch.full_like(tok, pad_id), tok)
            tokens[:, t] = tok
            logprobs[:, t] = logp.gather(-1, tok[:, None]).squeeze(-1)
            entropy[:, t] = entropy_from_logits(z)
            done |= tok == eos_id
            T = t + 1
            if bool(done.all()) or T == max_new_tokens:
                break
            attention = torch.cat([attention, attention.new_ones(B, 1)], dim=-1)
            h = decoder(input_ids=tok[:, None], attention_mask=attention, position_ids=(lens + t)[:, None],
                        use_cache=True, **{key: cache}).last_hidden_state[:, -1]
    tokens = tokens[:, :T]
    lengths, ended = response_lengths(tokens, eos_id)
    mask = torch.arange(T, device=device)[None, :] < lengths[:, None]
    logprobs, entropy = logprobs[:, :T] * mask, entropy[:, :T] * mask
    Tmax = int(lengths.max())
    return Samples(prompt_ids=[list(p) for p in prompts],
                   response_ids=[tokens[i, :int(lengths[i])].tolist() for i in range(B)],
                   ended=ended.cpu(), logprobs=logprobs[:, :Tmax].cpu(), entropy=entropy[:, :Tmax].cpu(),
                   response_mask=mask[:, :Tmax].cpu())


def load_prompts(path: str) -> list[Text]:
    """Prompts from a file: records with a `prompt` field (text or chat messages), or any preference file (its
    prompts). Exact repeats are kept once, in file order. Errors name the file and line."""
    from rlhfkit.data.formats import RecordError, detect_format, normalize
    from rlhfkit.data.io import _guarded, location, open_records, resolve_data_path

    p = resolve_data_path(path)
    triples, unit = open_records(p)
    seen: set = set()
    out: list[Text] = []
    for n, record, error in _guarded(triples):
        if error is not None:
            raise DataError(f"{location(str(path), unit, n)}: {error}")
        if isinstance(record.get("prompt"), (str, list)) and "chosen" not in record:
            prompt = record["prompt"]
        else:
            try:
                prompt = normalize(record, detect_format(record), n).prompt
            except RecordError as e:
                raise DataError(f"{location(str(path), unit, n)}: {e} (a prompts file needs a `prompt` on every "
                                "record)") from None
        key = repr(prompt)
        if key not in seen:
            seen.add(key)
            out.append(prompt)
    if not out:
        raise DataError(f"{path}: no prompts")
    return out
