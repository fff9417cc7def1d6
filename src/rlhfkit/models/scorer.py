"""Score (prompt, response) pairs with a trained reward model: raw rewards, or scores in 0..1.

    scorer = RewardScorer("runs/rm/final")
    scorer.score(["How do I reset my password?"], ["Open Settings > Security ..."])   # -> [0.71]

The score is sigmoid((r - mean) / std) with the mean and standard deviation of the rewards of the training
responses stored by `rlhfkit rm train`, so 0.5 is a typical training response, 0.73 one standard deviation above.
Inputs are tokenised as in training (chat template or not, truncation), as recorded with the model.
"""
from __future__ import annotations

import math
import sys
from typing import Any, Optional, Sequence

import torch

from rlhfkit.data.collate import pack_groups
from rlhfkit.data.tokenize import TokenizedCompletion, tokenize_completion
from rlhfkit.models.heads import packed_rewards
from rlhfkit.types import Text

DEFAULT_MAX_LENGTH, DEFAULT_MAX_PROMPT_LENGTH = 1024, 512


def normalized_score(rewards: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """sigmoid((r - mean) / std): (N,) raw rewards -> (N,) scores in (0, 1)."""
    return torch.sigmoid((rewards - mean) / max(std, 1e-6))


class RewardScorer:
    """A reward model and its tokenizer, loaded once; `rewards` and `score` take lists of prompts and responses."""

    def __init__(self, model: Any = None, tokenizer: Any = None, *, device: Optional[torch.device] = None,
                 batch_size: int = 8, dtype: Any = None, quiet: bool = True):
        from rlhfkit.models.load import load_reward_model, load_tokenizer, reward_info

        if model is None or isinstance(model, str):
            name = model
            model = load_reward_model(name, dtype=dtype, quiet=quiet)
            tokenizer = tokenizer or load_tokenizer(name, quiet=True)
        if tokenizer is None:
            raise ValueError("give the tokenizer with a loaded model")
        self.device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.info = reward_info(model)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    @property
    def trained(self) -> bool:
        return "mean" in self.info and "std" in self.info

    def tokenize(self, prompt: Text, response: Text) -> TokenizedCompletion:
        return tokenize_completion(prompt, response, self.tokenizer,
                                   max_length=self.info.get("max_length", DEFAULT_MAX_LENGTH),
                                   max_prompt_length=self.info.get("max_prompt_length", DEFAULT_MAX_PROMPT_LENGTH),
                                   use_chat_template=self.info.get("use_chat_template"))

    @torch.no_grad()
    def rewards_of_tokens(self, items: Sequence[TokenizedCompletion], progress: Any = None) -> torch.Tensor:
        """(N,) fp32 raw rewards of tokenised (prompt, response) items, batched by similar length."""
        out = torch.zeros(len(items))
        order = sorted(range(len(items)), key=lambda i: -(len(items[i].prompt_ids) + len(items[i].completion_ids)))
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            groups = [(items[i].prompt_ids, [items[i].completion_ids]) for i in idx]
            batch = pack_groups(groups, pad_id=self.pad_id).to(self.device)
            out[torch.tensor(idx)] = packed_rewards(self.model, batch).cpu()
            if progress is not None:
                progress.update(len(idx))
        return out

    def rewards(self, prompts: Sequence[Text], responses: Sequence[Text], progress: Any = None) -> torch.Tensor:
        """(N,) raw rewards of (prompt, response) pairs."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        items = [self.tokenize(p, r) for p, r in zip(prompts, responses)]
        truncated = sum(t.truncated for t in items)
        if truncated:
            print(f"[rlhfkit] {truncated} of {len(items)} inputs truncated to "
                  f"{self.info.get('max_length', DEFAULT_MAX_LENGTH)} tokens", file=sys.stderr)
        return self.rewards_of_tokens(items, progress)

    def normalize(self, rewards: torch.Tensor) -> torch.Tensor:
        if not self.trained:
            return torch.sigmoid(rewards)
        return normalized_score(rewards, float(self.info["mean"]), float(self.info["std"]))

    def score(self, prompts: Sequence[Text], responses: Sequence[Text], progress: Any = None) -> list[float]:
        """Scores in 0..1 (see the module doc). For a model without stored statistics: sigmoid(r)."""
        return [float(x) for x in self.normalize(self.rewards(prompts, responses, progress))]


_CACHE: dict = {}


def score(model: str, prompts: Sequence[Text] | Text, responses: Sequence[Text] | Text, **kw: Any) -> Any:
    """`rlhfkit.score(model, prompts, responses)`: scores in 0..1 for lists (or one prompt and one response).
    The reward model is loaded once per model path and kept for later calls."""
    single = isinstance(prompts, str) and isinstance(responses, str)
    if single:
        prompts, responses = [prompts], [responses]
    key = (model, tuple(sorted(kw.items())))
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = RewardScorer(model, **kw)
    out = _CACHE[key].score(list(prompts), list(responses))
    return out[0] if single else out


def stats_of(rewards: torch.Tensor) -> tuple[float, float]:
    """(mean, std) of raw rewards, std floored so that scores stay finite."""
    r = rewards.double()
    std = float(r.std(unbiased=False)) if r.numel() > 1 else 1.0
    return float(r.mean()), std if math.isfinite(std) and std > 1e-6 else 1.0
