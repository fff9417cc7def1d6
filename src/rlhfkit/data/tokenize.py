"""Turn prompts and completions into token ids: chat template, EOS, truncation, prefix checks.

Rules (shared by SFT, DPO, the reward model and `data check`):
- With a chat template (and `use_chat_template` not False), a plain-text prompt becomes one user message and a
  plain-text completion one assistant message; an HH-style prompt ("\\n\\nHuman: ...\\n\\nAssistant:") is split
  into its turns. The prompt is rendered with the generation prompt; the completion is the rest of the rendered
  conversation, up to and including the end-of-turn token.
- Without one, prompt and completion are concatenated as they are (TRL does the same).
- prompt + completion is tokenised as ONE string and the completion starts where the prompt's own tokens stop
  matching: a tokenizer may merge across the boundary (e.g. `:"`), then the completion starts one token earlier
  and `prefix_mismatch` is set.
- EOS is appended once (not when the completion already ends with it).
- Truncation: the prompt keeps its LAST `max_prompt_length` tokens, the completion its FIRST tokens, so that
  prompt + completion <= `max_length`.
Masks are later built from these lengths, never by comparing ids to `pad_token_id` (SmolLM2's pad is its EOS).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

from rlhfkit.errors import DataError, RlhfkitError
from rlhfkit.types import PreferenceExample, Text

_HH_TURN = re.compile(r"\n\n(Human|Assistant):")


@dataclass
class TokenizedPair:
    """Token ids of one preference pair. chosen_ids/rejected_ids are completion tokens only (EOS included)."""

    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]
    truncated: bool = False
    prefix_mismatch: bool = False


@dataclass
class TokenizedCompletion:
    """Token ids of one prompt + completion (SFT, reward scoring)."""

    prompt_ids: list[int]
    completion_ids: list[int]
    truncated: bool = False
    prefix_mismatch: bool = False


def hh_to_messages(text: str) -> Optional[list[dict]]:
    """Split an Anthropic HH dialogue "\\n\\nHuman: a\\n\\nAssistant: b\\n\\nHuman: c\\n\\nAssistant:" into messages.

    Returns None when the text is not in that style. A trailing empty "Assistant:" turn (the generation prompt)
    is dropped: the chat template adds its own.
    """
    parts = _HH_TURN.split(text)
    if len(parts) < 3 or parts[0].strip():
        return None
    messages = []
    for role, content in zip(parts[1::2], parts[2::2]):
        messages.append({"role": "user" if role == "Human" else "assistant", "content": content.strip()})
    if messages and messages[-1]["role"] == "assistant" and not messages[-1]["content"]:
        messages.pop()
    return messages or None


def _as_messages(text: Text, role: str) -> list[dict]:
    if isinstance(text, list):
        return text
    if role == "user":
        hh = hh_to_messages(text)
        if hh is not None:
            return hh
    return [{"role": role, "content": text}]


def pad_token_id(tokenizer: Any) -> int:
    """The id padding is written with (EOS when there is no pad token); masks never compare ids with it."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


BASE_MODEL_MESSAGE = (
    "the starting model '{model}' {why}. RLHF (DPO, PPO, reward models) starts from a model that already follows "
    "the chat format: run `rlhfkit sft` on it first, or start from an instruct/chat model. If you know what you "
    "are doing (plain-text data on purpose), pass --allow-base-model.")


def check_starting_model(tokenizer: Any, model_name: str, conversational: bool, cfg: Any) -> None:
    """Stop when RLHF would start from a base model: no chat template, or conversational data it cannot render.
    cfg: any config with allow_base_model and use_chat_template."""
    if cfg.allow_base_model:
        return
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if not has_template:
        why = ("has no chat template and the data is conversational" if conversational
               else "has no chat template (it looks like a base model)")
        raise RlhfkitError(BASE_MODEL_MESSAGE.format(model=model_name, why=why))
    if cfg.use_chat_template is False and conversational:
        raise RlhfkitError("conversational data needs the chat template; drop --no-use-chat-template")


def wants_chat_template(tokenizer: Any, use_chat_template: Optional[bool]) -> bool:
    has = bool(getattr(tokenizer, "chat_template", None))
    if use_chat_template and not has:
        raise DataError("the tokenizer has no chat template; pass use_chat_template=False (plain concatenation) "
                        "or use a chat model (SFT first)")
    return has if use_chat_template is None else bool(use_chat_template)


def render_prompt(prompt: Text, tokenizer: Any, use_chat_template: Optional[bool] = None) -> str:
    """The prompt as the model sees it before its answer (with the chat template's generation prompt)."""
    if wants_chat_template(tokenizer, use_chat_template):
        return tokenizer.apply_chat_template(_as_messages(prompt, "user"), tokenize=False,
                                             add_generation_prompt=True)
    if isinstance(prompt, list):
        raise DataError("conversational data needs a tokenizer with a chat template (this one has none)")
    return prompt


def _render_completion(prompt_text: str, prompt: Text, completion: Text, tokenizer: Any, chat: bool) -> str:
    if not chat:
        if isinstance(completion, list):
            raise DataError("conversational data needs a tokenizer with a chat template (this one has none)")
        return completion
    full = tokenizer.apply_chat_template(_as_messages(prompt, "user") + _as_messages(completion, "assistant"),
                                         tokenize=False)
    if full.startswith(prompt_text):
        # drop what follows the end-of-turn (e.g. the "\n" after <|im_end|>): EOS ends the completion
        return full[len(prompt_text):].rstrip()
    # a template that renders the prompt differently inside a longer conversation: fall back to the content
    return completion if isinstance(completion, str) else "".join(m["content"] for m in completion)


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _split_at_prompt(prompt_ids: list[int], full_ids: list[int]) -> tuple[int, bool]:
    """Index where the completion starts in `full_ids`, and whether the prompt ids were not a prefix."""
    n = min(len(prompt_ids), len(full_ids))
    k = 0
    while k < n and prompt_ids[k] == full_ids[k]:
        k += 1
    return k, k != len(prompt_ids)


def _prompt_and_completion_ids(prompt_text: str, completion_text: str, tokenizer: Any,
                               prompt_ids: Optional[list[int]] = None) -> tuple[list[int], list[int], bool]:
    prompt_ids = _encode(tokenizer, prompt_text) if prompt_ids is None else prompt_ids
    full_ids = _encode(tokenizer, prompt_text + completion_text)
    k, mismatch = _split_at_prompt(prompt_ids, full_ids)
    completion_ids = full_ids[k:]
    eos = tokenizer.eos_token_id
    if eos is not None and (not completion_ids or completion_ids[-1] != eos):
        completion_ids.append(eos)
    return full_ids[:k], completion_ids, mismatch


def _start_token(tokenizer: Any) -> list[int]:
    """An empty prompt still needs one position to predict the first completion token from: BOS (or EOS)."""
    tid = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    return [tid] if tid is not None else []


def _truncate(prompt_ids: list[int], completions: list[list[int]], max_length: Optional[int],
              max_prompt_length: Optional[int]) -> tuple[list[int], list[list[int]], bool]:
    """Left-truncate the prompt, right-truncate completions so prompt + longest completion <= max_length."""
    truncated = False
    longest = max(len(c) for c in completions)
    cap = max_prompt_length
    if cap is None and max_length is not None:
        # no explicit prompt cap: keep the whole prompt if it fits beside the longest completion,
        # otherwise keep at most half of max_length for it
        cap = max(max_length - longest, max_length // 2)
    if cap is not None and len(prompt_ids) > cap:
        prompt_ids = prompt_ids[len(prompt_ids) - cap:] if cap > 0 else []
        truncated = True
    if max_length is not None:
        room = max(max_length - len(prompt_ids), 1)
        if longest > room:
            completions = [c[:room] for c in completions]
            truncated = True
    return prompt_ids, completions, truncated


def tokenize_pair(example: PreferenceExample, tokenizer: Any, *, max_length: Optional[int] = None,
                  max_prompt_length: Optional[int] = None,
                  use_chat_template: Optional[bool] = None) -> TokenizedPair:
    """Token ids of a preference pair; both completions share the prompt ids (see module doc)."""
    chat = wants_chat_template(tokenizer, use_chat_template)
    prompt_text = render_prompt(example.prompt, tokenizer, chat)
    prompt_ids = _encode(tokenizer, prompt_text)
    outs = []
    for completion in (example.chosen, example.rejected):
        text = _render_completion(prompt_text, example.prompt, completion, tokenizer, chat)
        outs.append(_prompt_and_completion_ids(prompt_text, text, tokenizer, prompt_ids))
    (p_c, chosen, mm_c), (p_r, rejected, mm_r) = outs
    # A boundary merge can shorten the prompt for one side only: keep the common prompt prefix for both and move
    # the rest into each completion, so chosen and rejected are scored on the same conditioning.
    k = min(len(p_c), len(p_r))
    chosen, rejected = p_c[k:] + chosen, p_r[k:] + rejected
    shared = prompt_ids[:k] or _start_token(tokenizer)
    shared, (chosen, rejected), truncated = _truncate(shared, [chosen, rejected], max_length, max_prompt_length)
    return TokenizedPair(shared, chosen, rejected, truncated, mm_c or mm_r)


def tokenize_completion(prompt: Text, completion: Text, tokenizer: Any, *, max_length: Optional[int] = None,
                        max_prompt_length: Optional[int] = None,
                        use_chat_template: Optional[bool] = None) -> TokenizedCompletion:
    """Token ids of one prompt + completion (SFT examples, reward scoring)."""
    chat = wants_chat_template(tokenizer, use_chat_template)
    prompt_text = render_prompt(prompt, tokenizer, chat)
    text = _render_completion(prompt_text, prompt, completion, tokenizer, chat)
    p, c, mismatch = _prompt_and_completion_ids(prompt_text, text, tokenizer)
    p = p or _start_token(tokenizer)
    p, (c,), truncated = _truncate(p, [c], max_length, max_prompt_length)
    return TokenizedCompletion(p, c, truncated, mismatch)


def tokenize_prompt(prompt: Text, tokenizer: Any, *, max_prompt_length: Optional[int] = None,
                    use_chat_template: Optional[bool] = None) -> tuple[list[int], bool]:
    """Token ids a model generates from (with the chat template's generation prompt), left-truncated to
    max_prompt_length; returns (ids, truncated)."""
    ids = _encode(tokenizer, render_prompt(prompt, tokenizer, use_chat_template)) or _start_token(tokenizer)
    if max_prompt_length is not None and len(ids) > max_prompt_length:
        return ids[len(ids) - max_prompt_length:], True
    return ids, False
