"""`hf:MODEL`: a local Hugging Face chat model as a judge, read from its answer-token probabilities.

The judging prompt (judges/prompt.py) ends by asking for the single letter A or B. Instead of sampling a reply
and parsing free text, one forward pass gives the logits of the first answer token; the verdict compares the
logits of the tokens "A" and "B":

    p_a, p_b = softmax([logit_A, logit_B])      winner = "a" if p_a > p_b, "b" if p_b > p_a, else "tie"
    confidence = max(p_a, p_b)

`raw` also keeps `answer_mass` = P(A) + P(B) under the full softmax: a small value means the model is not
answering in the asked format, and its verdicts deserve little trust.
With a chat template the prompt is one user message plus the generation prompt, and the answer tokens are "A"
and "B"; without one the prompt is plain text ending in "\\nAnswer:" and the answer tokens are " A" and " B".
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

from rlhfkit.judges.base import JudgeError, Verdict
from rlhfkit.judges.prompt import DEFAULT_RUBRIC, prompt_tag, render


def answer_token_ids(tokenizer: Any, chat: bool) -> tuple[int, int]:
    """The ids of the single tokens that spell the answers A and B (chat: "A"/"B" first, plain: " A"/" B" first)."""
    variants = (("A", "B"), (" A", " B")) if chat else ((" A", " B"), ("A", "B"))
    for a, b in variants:
        ia = tokenizer(a, add_special_tokens=False)["input_ids"]
        ib = tokenizer(b, add_special_tokens=False)["input_ids"]
        if len(ia) == 1 and len(ib) == 1 and ia != ib:
            return ia[0], ib[0]
    raise JudgeError("the judge's tokenizer spells neither 'A'/'B' nor ' A'/' B' as single tokens, so the verdict "
                     "cannot be read from answer-token probabilities")


class HFJudge:
    """A local causal LM judge. `model`/`tokenizer` may be given already loaded (then `name` is only a label)."""

    concurrent = False

    def __init__(self, name: str, *, rubric: Optional[str] = None, model: Any = None, tokenizer: Any = None,
                 device: Any = None):
        import torch

        from rlhfkit.models.load import load_model, load_tokenizer

        self.rubric = rubric or DEFAULT_RUBRIC
        self.tokenizer = tokenizer or load_tokenizer(name, quiet=True)
        if model is None:
            model = load_model(name, quiet=True)
        self.device = torch.device(device) if device else (
            torch.device("cuda") if torch.cuda.is_available() else next(model.parameters()).device)
        self.model = model.to(self.device).eval()
        self.chat = bool(getattr(self.tokenizer, "chat_template", None))
        self.id_a, self.id_b = answer_token_ids(self.tokenizer, self.chat)
        self.max_positions = getattr(model.config, "max_position_embeddings", None)
        label = str(Path(name).expanduser().resolve()) if Path(name).expanduser().is_dir() else name
        self.judge_id = f"hf:{label}|{prompt_tag(self.rubric)}"

    def input_ids(self, prompt: Any, response_a: Any, response_b: Any) -> list[int]:
        """Token ids of the judging prompt, up to where the answer letter goes."""
        text = render(prompt, response_a, response_b, self.rubric)
        if self.chat:
            text = self.tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                                      add_generation_prompt=True)
        else:
            text = text + "\nAnswer:"
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def judge(self, prompt: Any, response_a: Any, response_b: Any) -> Verdict:
        import torch

        ids = self.input_ids(prompt, response_a, response_b)
        if self.max_positions and len(ids) > self.max_positions:
            return Verdict(None, None, {"error": f"judging prompt has {len(ids)} tokens, more than the judge's "
                                                 f"{self.max_positions}"}, self.judge_id)
        with torch.no_grad():
            logits = self.model(input_ids=torch.tensor([ids], device=self.device)).logits[0, -1].float()  # (V,)
        pair = torch.stack([logits[self.id_a], logits[self.id_b]])                                       # (2,)
        p_a, p_b = (float(x) for x in torch.softmax(pair, -1))
        mass = float(torch.softmax(logits, -1)[[self.id_a, self.id_b]].sum())
        if not (math.isfinite(p_a) and math.isfinite(p_b)):
            return Verdict(None, None, {"error": "non-finite logits"}, self.judge_id)
        winner = "a" if p_a > p_b else "b" if p_b > p_a else "tie"
        return Verdict(winner, max(p_a, p_b), {"p_a": p_a, "p_b": p_b, "answer_mass": mass}, self.judge_id)
