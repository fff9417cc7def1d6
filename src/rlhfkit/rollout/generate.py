"""Sample responses from a causal LM, batched, with the KV cache (transformers' `generate`).

Each row stops at its own first EOS: the response keeps that EOS and nothing after it. Masks come from the
lengths found this way, never from comparing ids with the pad id (pad == EOS for many models). The log-probs of
the sampled tokens are read from the logits `generate` computed anyway, divided by the sampling temperature (as
the policy's training forward does: Huang et al. 2024, "The N+ implementation details of RLHF with PPO"), so no
second forward pass is spent on them; top-p only decides which tokens can be drawn.
"""
from __future__ import annotations

import contextlib
import warnings
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


@torch.no_grad()
def sample(model: Any, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, temperature: float = 1.0,
           top_p: float = 1.0, eos_id: int, pad_id: int, device: Optional[torch.device] = None) -> Samples:
    """Sample one response per prompt (temperature 0 = greedy). The global torch RNG draws the tokens, so a
    seeded run (and a resumed one, which restores the RNG) samples the same responses."""
    device = device or next(model.parameters()).device
    B = len(prompts)
    P = max(len(p) for p in prompts)
    input_ids = torch.full((B, P), pad_id, dtype=torch.long)
    attention = torch.zeros((B, P), dtype=torch.long)
    for i, p in enumerate(prompts):                                   # left padding: every row ends at column P
        input_ids[i, P - len(p):] = torch.tensor(list(p), dtype=torch.long)
        attention[i, P - len(p):] = 1
    greedy = temperature <= 0
    kw: dict = dict(do_sample=not greedy, max_new_tokens=max_new_tokens, eos_token_id=eos_id, pad_token_id=pad_id,
                    return_dict_in_generate=True, output_logits=True, use_cache=True, top_k=None)
    if not greedy:
        kw.update(temperature=temperature, top_p=top_p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # generation-config notices about flags we set on purpose
        with decode_layout(model, enabled=torch.device(device).type == "cpu"):
            out = model.generate(input_ids=input_ids.to(device), attention_mask=attention.to(device), **kw)
    tokens = out.sequences[:, P:]                                     # (B, T')
    lengths, ended = response_lengths(tokens, eos_id)
    T = tokens.shape[1]
    mask = torch.arange(T, device=tokens.device)[None, :] < lengths[:, None]
    logprobs = torch.zeros(B, T, device=tokens.device)
    entropy = torch.zeros(B, T, device=tokens.device)
    scale = 1.0 if greedy else temperature
    for t, logits in enumerate(out.logits):                           # one (B, V) per step: no (B, T, V) copy
        z = logits.float() / scale
        logprobs[:, t] = torch.log_softmax(z, -1).gather(-1, tokens[:, t:t + 1]).squeeze(-1)
        entropy[:, t] = entropy_from_logits(z)
    logprobs, entropy = logprobs * mask, entropy * mask
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
