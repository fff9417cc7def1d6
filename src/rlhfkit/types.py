"""Shared dataclasses. Shapes are written on every tensor field."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Union

# A prompt or response is either plain text or a list of chat messages {"role", "content"}.
Message = dict
Text = Union[str, list]


@dataclass
class PreferenceExample:
    """One preference pair, whatever form it was read from.

    prompt:   str, or list of {"role", "content"} messages (conversational form)
    chosen:   str, or list of assistant messages (usually one)
    rejected: same type as chosen
    id:       optional identifier kept from the record
    source:   optional provenance (file, judge id, annotator)
    margin:   optional strength of the preference (used by the reward model's loss)
    line:     1-based line (JSONL) or record index the example came from, for error messages
    """

    prompt: Text
    chosen: Text
    rejected: Text
    id: Optional[str] = None
    source: Optional[str] = None
    margin: Optional[float] = None
    line: Optional[int] = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}
        for k in ("id", "source", "margin"):
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        return d


@dataclass
class PPOModels:
    """The four models of PPO, named once (docs/ppo.md has a glossary: actor = policy, critic = value,
    ref_policy / initial model = reference).

    policy:    trainable causal LM that generates (maybe PEFT-wrapped)
    reference: frozen causal LM, the KL anchor; the policy itself when `reference_is_policy_without_adapter`
    reward:    frozen reward model scoring whole responses; None with a reward function; the value model itself
               when `reward_is_value_without_adapter`
    value:     trainable reward-model architecture giving per-token values (initialised from the reward model)
    """

    policy: Any
    reference: Any
    reward: Any
    value: Any
    reference_is_policy_without_adapter: bool = False
    reward_is_value_without_adapter: bool = False
