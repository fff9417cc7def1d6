"""`rlhfkit generate`: K sampled responses per prompt from a (SFT) model, paired up for a judge to label.

Sampling is rollout.generate.sample (batched, KV cache, each row stops at its own EOS) with the global torch RNG
seeded once before the first batch: the same model, prompts, seed and batch size give the same file.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from rlhfkit.types import Text


def sample_k(model: Any, tokenizer: Any, prompt_ids: Sequence[Sequence[int]], *, num_samples: int,
             max_new_tokens: int, temperature: float, top_p: float, seed: int, batch_size: int,
             progress: Any = None) -> list[list[str]]:
    """num_samples decoded responses per prompt (prompt i's samples are rows i*K .. i*K+K-1 of the flat batch
    order); the torch RNG is seeded with `seed` first."""
    import torch

    from rlhfkit.data.tokenize import pad_token_id
    from rlhfkit.rollout.generate import sample

    torch.manual_seed(seed)
    rows = [ids for ids in prompt_ids for _ in range(num_samples)]
    eos, pad = tokenizer.eos_token_id, pad_token_id(tokenizer)
    device = next(model.parameters()).device
    texts: list[str] = []
    for start in range(0, len(rows), batch_size):
        s = sample(model, rows[start:start + batch_size], max_new_tokens=max_new_tokens, temperature=temperature,
                   top_p=top_p, eos_id=eos, pad_id=pad, device=device)
        texts += [tokenizer.decode(r, skip_special_tokens=True).strip() for r in s.response_ids]
        if progress is not None:
            progress.update(len(s.response_ids))
    return [texts[i * num_samples:(i + 1) * num_samples] for i in range(len(prompt_ids))]


def generate_candidates(model: str, prompts: str, output: str, *, num_samples: int = 4, pairing: str = "all",
                        max_new_tokens: int = 128, temperature: float = 1.0, top_p: float = 1.0, seed: int = 42,
                        batch_size: int = 8, max_prompt_length: int = 256, num_prompts: int = 0,
                        use_chat_template: Optional[bool] = None, progress: bool = True) -> dict:
    """Sample `num_samples` responses per prompt of `prompts` (a prompts file or a preference file) from `model`,
    pair the distinct ones and write them to `output` (data/candidates.py describes the lines). Returns counts."""
    import torch

    from rlhfkit.console import progress_bar
    from rlhfkit.data.candidates import candidate_rows
    from rlhfkit.data.io import write_jsonl_rows
    from rlhfkit.data.tokenize import tokenize_prompt
    from rlhfkit.models.load import load_model, load_tokenizer
    from rlhfkit.rollout.generate import load_prompts

    texts: list[Text] = load_prompts(prompts)
    if num_prompts > 0:
        texts = texts[:num_prompts]
    tok = load_tokenizer(model, quiet=True)
    lm = load_model(model, quiet=True)
    if torch.cuda.is_available():
        lm = lm.to("cuda")
    tokenized = [tokenize_prompt(p, tok, max_prompt_length=max_prompt_length, use_chat_template=use_chat_template)
                 for p in texts]
    truncated = sum(t for _, t in tokenized)
    if truncated:
        print(f"[rlhfkit] {truncated} of {len(texts)} prompts left-truncated to {max_prompt_length} tokens",
              file=sys.stderr)
    bar = progress_bar(len(texts) * num_samples, 0, "generate", progress)
    bar.unit = "sample"
    samples = sample_k(lm, tok, [ids for ids, _ in tokenized], num_samples=num_samples,
                       max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed,
                       batch_size=batch_size, progress=bar)
    bar.close()
    rows, counts = candidate_rows(texts, samples, pairing, generator=model)
    write_jsonl_rows(Path(output), rows)
    return {"prompts": len(texts), "samples": len(texts) * num_samples, "pairs": len(rows), **counts,
            "output": str(output)}
