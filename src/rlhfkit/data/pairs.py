"""Preference pairs ready for a pairwise trainer (DPO, reward model): loaded, split, tokenised, packed.

`load_pair_data(cfg, tokenizer)` reads cfg.data / cfg.eval_data / cfg.eval_fraction (any config with the
TrainConfig fields), reports truncation and prompt/response token merges, and keeps each pair's optional `margin`.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch

from rlhfkit.data.collate import PackedBatch, pack_pairs
from rlhfkit.data.tokenize import TokenizedPair, tokenize_pair
from rlhfkit.errors import RlhfkitError


@dataclass
class PairData:
    """Tokenised pairs; their optional margins; when precomputed, reference log-probs (n, 2): [:, 0] chosen,
    [:, 1] rejected."""

    pairs: list[TokenizedPair]
    ref_logps: Optional[torch.Tensor] = None
    margins: list = field(default_factory=list)  # per pair: float or None (no margin given)

    def lengths(self) -> list[int]:
        return [len(p.prompt_ids) + len(p.chosen_ids) + len(p.rejected_ids) for p in self.pairs]


def tokenize_pairs(examples: Sequence, tokenizer: Any, cfg: Any, what: str) -> list[TokenizedPair]:
    out = [tokenize_pair(ex, tokenizer, max_length=cfg.max_length, max_prompt_length=cfg.max_prompt_length,
                         use_chat_template=cfg.use_chat_template) for ex in examples]
    truncated = sum(p.truncated for p in out)
    mismatch = sum(p.prefix_mismatch for p in out)
    if truncated:
        print(f"[rlhfkit] {what}: {truncated} of {len(out)} pairs truncated to max_length={cfg.max_length} "
              f"(max_prompt_length={cfg.max_prompt_length})", file=sys.stderr)
    if mismatch:
        print(f"[rlhfkit] {what}: {mismatch} pairs where the prompt's tokens merge with the response's first "
              "token; their completion starts one token earlier", file=sys.stderr)
    return out


def pack(pairs: Sequence[TokenizedPair], pad_id: int, cfg: Any, device: torch.device) -> PackedBatch:
    return pack_pairs(pairs, pad_id=pad_id, prefix_sharing=cfg.prefix_sharing, row_length=cfg.pack_length,
                      pack=cfg.pack_length > 0).to(device)


def load_pair_data(cfg: Any, tokenizer: Any) -> tuple[PairData, Optional[PairData], bool]:
    """(train, eval or None, conversational?) from cfg.data / cfg.eval_data / cfg.eval_fraction."""
    from rlhfkit.data.io import load_preferences, split_examples

    if not cfg.data and not getattr(cfg, "eval_only", False):
        raise RlhfkitError("no training data: give --data FILE (or bundled:support)")
    train_ex = load_preferences(cfg.data, fmt=cfg.data_format) if cfg.data else []
    eval_ex = None
    if cfg.eval_data:
        eval_ex = load_preferences(cfg.eval_data, fmt=cfg.data_format)
    elif cfg.eval_fraction > 0 and train_ex:
        train_ex, eval_ex = split_examples(train_ex, cfg.eval_fraction, cfg.seed)
    conversational = any(isinstance(e.prompt, list) or isinstance(e.chosen, list)
                         for e in (train_ex or []) + (eval_ex or []))
    train = PairData(tokenize_pairs(train_ex, tokenizer, cfg, "train"), margins=[e.margin for e in train_ex]) \
        if train_ex else PairData([])
    ev = PairData(tokenize_pairs(eval_ex, tokenizer, cfg, "eval"), margins=[e.margin for e in eval_ex]) \
        if eval_ex else None
    return train, ev, conversational
